//! LoRA training against PyTorch: for every case under testdata/lora/train/ (made by
//! scripts/golden/lora/make_train_golden.py with transformers + peft + torch on the tiny golden
//! checkpoints), our loss and LoRA gradients on both layouts against autograd's (loss within
//! 1e-4, relative error of every LoRA tensor's gradient <= 1e-3), AdamW steps against
//! torch.optim.AdamW's, and a short training run whose saved adapter loads back through the
//! `--lora` loader and moves the logits the way training asked.

use std::path::{Path, PathBuf};

mod golden_files;
use golden_files::materialize;

use gptoss_model::train::{
    loss_and_grads, loss_and_grads_with, Activations, AdamW, Head, LoraSet, Proj, TrainLora,
};
use gptoss_model::{ExpertPath, LogitsFor, Model};
use safetensors::SafeTensors;

const LOSS_TOL: f32 = 1e-4;
const GRAD_REL_TOL: f64 = 1e-3;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

struct Case {
    name: String,
    dir: PathBuf,
    golden: serde_json::Value,
    tokens: Vec<u32>,
    targets: Vec<Option<u32>>,
    base: tempfile::TempDir,
}

fn cases() -> Vec<Case> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("lora/train"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("golden.json").exists())
        .collect();
    dirs.sort();
    let out: Vec<Case> = dirs
        .into_iter()
        .map(|dir| {
            let golden: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap();
            let name = golden["case"].as_str().unwrap().to_string();
            let tokens = golden["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap() as u32)
                .collect();
            let targets = golden["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_i64().unwrap())
                .map(|t| (t >= 0).then_some(t as u32))
                .collect();
            let base = tempfile::tempdir().unwrap();
            materialize(&root().join("model").join(&name), base.path());
            Case {
                name,
                dir,
                golden,
                tokens,
                targets,
                base,
            }
        })
        .collect();
    assert!(!out.is_empty(), "no cases under testdata/lora/train");
    out
}

/// The f32 tensors of a safetensors file by name.
fn tensors(path: &Path) -> std::collections::BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            let data = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (n, data)
        })
        .collect()
}

/// Mean cross-entropy of logits f32 [n, v] over the positions with a target.
fn mean_ce(l: &[f32], targets: &[Option<u32>], v: usize) -> f32 {
    let mut s = 0f64;
    let mut n = 0;
    for (t, tgt) in targets.iter().enumerate() {
        if let Some(tgt) = tgt {
            let row = &l[t * v..(t + 1) * v];
            let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let z: f64 = row.iter().map(|&x| ((x - m) as f64).exp()).sum();
            s += z.ln() + (m - row[*tgt as usize]) as f64;
            n += 1;
        }
    }
    (s / n as f64) as f32
}

/// ‖a − b‖ / ‖b‖.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let d: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let n: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (d / n).sqrt()
}

fn start(case: &Case, model: &Model) -> TrainLora {
    let adapter = model.load_lora(&case.dir.join("adapter")).unwrap();
    TrainLora::from_adapter(&adapter, model.config()).unwrap()
}

#[test]
fn loss_and_gradients_match_torch_autograd_on_both_layouts() {
    let mut report = vec![];
    for case in cases() {
        let want = tensors(&case.dir.join("grads.safetensors"));
        let want_loss = case.golden["loss"].as_f64().unwrap() as f32;
        for layout in ["original", "hf"] {
            let model = Model::load(&case.base.path().join(layout)).unwrap();
            let lora = start(&case, &model);
            let (loss, grads) = loss_and_grads(&model, &lora, &case.tokens, &case.targets)
                .unwrap_or_else(|e| panic!("{}/{layout}: {e}", case.name));
            let dl = (loss - want_loss).abs();
            assert!(
                dl <= LOSS_TOL,
                "{}/{layout}: loss {loss} vs torch {want_loss}",
                case.name
            );
            let named = grads.named();
            assert_eq!(named.len(), want.len(), "{}: gradient count", case.name);
            let mut worst = (0f64, String::new());
            let mut worst_experts = 0f64;
            for (name, _, g) in named {
                let w = want
                    .get(&name)
                    .unwrap_or_else(|| panic!("{}: no reference for {name}", case.name));
                assert!(
                    w.iter().any(|v| *v != 0.0),
                    "{name}: zero reference gradient"
                );
                let e = rel_err(g, w);
                assert!(
                    e <= GRAD_REL_TOL,
                    "{}/{layout}: {name}: relative error {e:.3e}",
                    case.name
                );
                if name.contains("experts") {
                    worst_experts = worst_experts.max(e);
                }
                if e > worst.0 {
                    worst = (e, name);
                }
            }
            report.push(format!(
                "{}/{layout}: loss diff {dl:.2e}; worst gradient rel err {:.2e} ({}); worst of \
                 the experts' {worst_experts:.2e}",
                case.name, worst.0, worst.1
            ));
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn adamw_steps_match_torch() {
    let mut worst = 0f64;
    for case in cases() {
        let model = Model::load(&case.base.path().join("hf")).unwrap();
        let lora0 = start(&case, &model);
        // The reference gradients, so the optimizer is checked on its own.
        let want_g = tensors(&case.dir.join("grads.safetensors"));
        let mut grads = lora0.params.zeros_like();
        for (v, (name, _, _)) in grads.values_mut().into_iter().zip(lora0.params.named()) {
            v.copy_from_slice(&want_g[&name]);
        }
        let halved = {
            let mut h = grads.clone();
            for v in h.values_mut() {
                v.iter_mut().for_each(|x| *x *= 0.5);
            }
            h
        };
        let steps = tensors(&case.dir.join("adamw.safetensors"));
        let runs: [(&str, f64, Vec<&LoraSet>); 2] = [
            ("wd0", 0.0, vec![&grads, &halved]),
            ("wd0.1", 0.1, vec![&grads]),
        ];
        for (run, wd, gs) in runs {
            let mut params = lora0.params.clone();
            let mut opt = AdamW::new(2e-4, wd);
            for (i, g) in gs.into_iter().enumerate() {
                opt.step(&mut params, g);
                for ((name, _, got), (_, _, was)) in
                    params.named().into_iter().zip(lora0.params.named())
                {
                    let want = &steps[&format!("{run}_step{}.{name}", i + 1)];
                    // Compare the moves from the start: they are ~lr, the values ~0.1.
                    let d_got: Vec<f32> = got.iter().zip(was).map(|(a, b)| a - b).collect();
                    let d_want: Vec<f32> = want.iter().zip(was).map(|(a, b)| a - b).collect();
                    let e = rel_err(&d_got, &d_want);
                    assert!(
                        e <= 1e-3,
                        "{}: {run} step {}: {name}: rel err {e:.2e}",
                        case.name,
                        i + 1
                    );
                    worst = worst.max(e);
                }
            }
        }
    }
    eprintln!("AdamW: worst relative error of a step's update {worst:.2e}");
}

#[test]
fn training_lowers_the_loss_and_the_saved_adapter_loads_back() {
    let case = cases().into_iter().next().unwrap();
    // The exact expert path: the training forward's arithmetic.
    let mut model = Model::load(&case.base.path().join("hf")).unwrap();
    model.set_expert_path(ExpertPath::Exact);
    let c = model.config().clone();
    let mut lora = TrainLora::new(&c, 4, 8.0, &Proj::ALL, 7);
    let mut opt = AdamW::new(1e-2, 0.0);
    let (tokens, targets) = (&case.tokens, &case.targets);
    let mut losses = vec![];
    for _ in 0..6 {
        let (loss, grads) = loss_and_grads(&model, &lora, tokens, targets).unwrap();
        losses.push(loss);
        opt.step(&mut lora.params, &grads);
    }
    let (last, _) = loss_and_grads(&model, &lora, tokens, targets).unwrap();
    assert!(
        last < losses[0] - 0.1,
        "loss did not go down: {losses:?} then {last}"
    );
    eprintln!("training losses {losses:?} then {last}");

    let dir = tempfile::tempdir().unwrap();
    lora.save(dir.path(), "testdata/model/tiny-2of4/hf")
        .unwrap();
    let mut with = Model::load(&case.base.path().join("hf")).unwrap();
    with.set_expert_path(ExpertPath::Exact);
    let adapter = with.load_lora(dir.path()).unwrap();
    assert_eq!(
        (adapter.rank(), adapter.target_counts()),
        (4, (4 * c.num_hidden_layers, 0))
    );
    with.set_lora(Some(adapter)).unwrap();
    let logits = |m: &Model| {
        let mut cache = m.new_cache(tokens.len());
        m.forward(tokens, &mut cache, LogitsFor::All).unwrap()
    };
    let (base, tuned) = (logits(&model), logits(&with));
    // The inference path's loss with the saved adapter is the training path's.
    let v = c.vocab_size;
    let ce = |l: &[f32]| mean_ce(l, targets, v);
    assert!(
        (ce(&base) - losses[0]).abs() < 1e-4,
        "base loss {} vs {}",
        ce(&base),
        losses[0]
    );
    assert!(
        (ce(&tuned) - last).abs() < 1e-4,
        "tuned loss {} vs {last}",
        ce(&tuned)
    );
    assert!(base.iter().zip(&tuned).any(|(a, b)| (a - b).abs() > 1e-2));
}

#[test]
fn saved_adapters_read_back_the_same_with_expert_targets() {
    for case in cases() {
        let model = Model::load(&case.base.path().join("original")).unwrap();
        let lora = start(&case, &model);
        assert!(lora.params.experts.iter().flatten().any(Option::is_some));
        let dir = tempfile::tempdir().unwrap();
        lora.save(dir.path(), "base").unwrap();
        let adapter = model.load_lora(dir.path()).unwrap();
        let again = TrainLora::from_adapter(&adapter, model.config()).unwrap();
        // The inference path with the saved adapter gives the training path's loss.
        let (loss, _) = loss_and_grads(&model, &lora, &case.tokens, &case.targets).unwrap();
        let mut with = Model::load(&case.base.path().join("original")).unwrap();
        with.set_expert_path(ExpertPath::Exact);
        with.set_lora(Some(adapter)).unwrap();
        let mut cache = with.new_cache(case.tokens.len());
        let logits = with
            .forward(&case.tokens, &mut cache, LogitsFor::All)
            .unwrap();
        let l = mean_ce(&logits, &case.targets, with.config().vocab_size);
        assert!((l - loss).abs() < 1e-4, "{}: {l} vs {loss}", case.name);
        assert_eq!(again.params, lora.params, "{}", case.name);
        assert_eq!(
            (again.r, again.alpha, again.rslora),
            (lora.r, lora.alpha, lora.rslora)
        );
        // The same names as PEFT wrote.
        let want = tensors(&case.dir.join("adapter/adapter_model.safetensors"));
        let got = tensors(&dir.path().join("adapter_model.safetensors"));
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
    }
}

#[test]
fn training_expert_targets_lowers_the_loss_and_loads_back() {
    let case = cases().into_iter().nth(1).unwrap();
    let mut model = Model::load(&case.base.path().join("original")).unwrap();
    model.set_expert_path(ExpertPath::Exact);
    let c = model.config().clone();
    let mut lora = TrainLora::new(&c, 4, 8.0, &[Proj::V], 3);
    lora.add_experts(&c, &[0, 2], 3).unwrap();
    assert!(lora.add_experts(&c, &[c.num_hidden_layers], 3).is_err());
    let mut opt = AdamW::new(1e-2, 0.0);
    let (tokens, targets) = (&case.tokens, &case.targets);
    let (first, _) = loss_and_grads(&model, &lora, tokens, targets).unwrap();
    for _ in 0..5 {
        let (_, grads) = loss_and_grads(&model, &lora, tokens, targets).unwrap();
        // B starts at zero, so only the B tensors move on the first step; all are non-zero
        // after it.
        opt.step(&mut lora.params, &grads);
    }
    let (last, grads) = loss_and_grads(&model, &lora, tokens, targets).unwrap();
    assert!(last < first - 0.1, "loss {first} -> {last}");
    for (name, _, g) in grads.named() {
        assert!(g.iter().any(|v| *v != 0.0), "{name}: zero gradient");
    }
    let dir = tempfile::tempdir().unwrap();
    lora.save(dir.path(), "tiny").unwrap();
    let adapter = model.load_lora(dir.path()).unwrap();
    assert_eq!(adapter.target_counts(), (c.num_hidden_layers, 4));
    model.set_lora(Some(adapter)).unwrap();
    let mut cache = model.new_cache(tokens.len());
    let logits = model.forward(tokens, &mut cache, LogitsFor::All).unwrap();
    let l = mean_ce(&logits, targets, c.vocab_size);
    assert!((l - last).abs() < 1e-4, "inference {l} vs training {last}");
}

#[test]
fn bad_inputs_are_errors() {
    let case = cases().into_iter().next().unwrap();
    let model = Model::load(&case.base.path().join("hf")).unwrap();
    let lora = start(&case, &model);
    let t = &case.tokens;
    let none = vec![None; t.len()];
    assert!(loss_and_grads(&model, &lora, t, &none).is_err());
    assert!(loss_and_grads(&model, &lora, t, &case.targets[1..]).is_err());
    let mut bad = case.targets.clone();
    bad[5] = Some(u32::MAX);
    assert!(loss_and_grads(&model, &lora, t, &bad).is_err());
    let other = TrainLora::new(&gptoss_model::Config::gpt_oss_20b(), 8, 16.0, &[Proj::Q], 1);
    assert!(loss_and_grads(&model, &other, t, &case.targets).is_err());
}

/// assets/demo-model unpacked into `dir`.
fn demo_model(dir: &Path) -> Model {
    use std::io::Read;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/demo-model");
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let gz = std::fs::read(src.join("model.safetensors.gz")).unwrap();
    let mut raw = vec![];
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    std::fs::write(dir.join("model.safetensors"), raw).unwrap();
    let mut model = Model::load(dir).unwrap();
    model.set_expert_path(ExpertPath::Exact);
    model
}

#[test]
fn the_loss_head_skipping_zero_rows_equals_the_full_softmax_and_recompute_equals_keep() {
    // The demo model's unembedding has 199,004 all-zero rows (tokens its data never used):
    // the training head counts them instead of multiplying them. Its loss must equal the
    // cross-entropy of the inference forward's full 201,088 logits, a target among the zero
    // rows included.
    let dir = tempfile::tempdir().unwrap();
    let model = demo_model(dir.path());
    let c = model.config().clone();
    let tokens: Vec<u32> = vec![200006, 1428, 200008, 4827, 382, 220, 17, 659, 220, 17, 30];
    let mut targets: Vec<Option<u32>> = tokens[1..].iter().map(|&t| Some(t)).collect();
    targets.push(None);
    targets[4] = Some(150_000); // a token whose unembedding row is zero
    let mut lora = TrainLora::new(&c, 4, 8.0, &Proj::ALL, 11);
    lora.add_experts(&c, &[1], 12).unwrap();
    let (loss, _) = loss_and_grads(&model, &lora, &tokens, &targets).unwrap();
    let mut cache = model.new_cache(tokens.len());
    let logits = model.forward(&tokens, &mut cache, LogitsFor::All).unwrap();
    assert_eq!(logits[4 * c.vocab_size + 150_000], 0.0, "not a zero row");
    let full = mean_ce(&logits, &targets, c.vocab_size);
    assert!(
        (loss - full).abs() < 1e-4,
        "head {loss} vs full softmax {full}"
    );

    // Activation recomputation: the same numbers, bit for bit, after one step moved B off 0.
    let (_, g) = loss_and_grads(&model, &lora, &tokens, &targets).unwrap();
    AdamW::new(1e-2, 0.0).step(&mut lora.params, &g);
    let head = Head::new(&model);
    let run = |m| loss_and_grads_with(&model, &head, &lora, &tokens, &targets, m).unwrap();
    let (keep, recompute) = (run(Activations::Keep), run(Activations::Recompute));
    assert_eq!(keep.0.to_bits(), recompute.0.to_bits());
    assert!(keep.1 == recompute.1, "gradients differ with recomputation");
}
