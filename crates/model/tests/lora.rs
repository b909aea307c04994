//! LoRA golden logits: for every case under testdata/lora/ (made by
//! scripts/golden/lora/make_lora_golden.py with transformers + peft on the tiny golden
//! checkpoints: attention projections and the experts of some layers targeted, non-zero random
//! lora_B), load the base checkpoint of testdata/model/<case>/ in each layout (original/, hf/)
//! with the PEFT adapter and compare with the reference's float32 logits: max abs diff <= 2e-3
//! on every prompt, the same bits in both layouts, and the same logits when the prompt is
//! decoded one token at a time through batched decode steps (two sequences per step).

use std::path::{Path, PathBuf};

mod golden_files;
use golden_files::{materialize, read_npy};

use gptoss_model::{DecodeRow, ExpertPath, LogitsFor, Model};

const TOL: f32 = 2e-3;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

struct Case {
    name: String,
    adapter: PathBuf,
    prompts: Vec<Vec<u32>>,
    /// f32 [len(prompt), vocab] per prompt
    logits: Vec<Vec<f32>>,
    vocab: usize,
    /// a copy of testdata/model/<case> with every file gunzipped
    base: tempfile::TempDir,
}

fn cases() -> Vec<Case> {
    let mut out = vec![];
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("lora"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("golden.json").exists())
        .collect();
    dirs.sort();
    for dir in dirs {
        let golden: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap();
        // finetune/ holds the round trip of our own adapter (crates/cli/tests/finetune.rs),
        // another kind of golden file (one `prompt`, some logit columns).
        if !golden["prompts"].is_array() {
            continue;
        }
        let name = golden["case"].as_str().unwrap().to_string();
        let prompts: Vec<Vec<u32>> = golden["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                p.as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect();
        let mut logits = vec![];
        let mut vocab = 0;
        for (i, f) in golden["logits"].as_array().unwrap().iter().enumerate() {
            let (shape, data) = read_npy(&dir.join(f.as_str().unwrap()));
            assert_eq!(shape[0], prompts[i].len());
            vocab = shape[1];
            logits.push(data);
        }
        let base = tempfile::tempdir().unwrap();
        materialize(&root().join("model").join(&name), base.path());
        out.push(Case {
            name,
            adapter: dir.join("adapter"),
            prompts,
            logits,
            vocab,
            base,
        });
    }
    assert!(!out.is_empty(), "no cases under testdata/lora");
    out
}

fn load(case: &Case, layout: &str, path: ExpertPath) -> Model {
    let mut model = Model::load(&case.base.path().join(layout))
        .unwrap_or_else(|e| panic!("{}/{layout}: {e}", case.name));
    model.set_expert_path(path);
    let adapter = model
        .load_lora(&case.adapter)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    model.set_lora(Some(adapter)).unwrap();
    model
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

#[test]
fn adapter_logits_match_transformers_peft_on_both_layouts() {
    let mut report = vec![];
    for case in cases() {
        let mut per_layout: Vec<Vec<Vec<f32>>> = vec![];
        for layout in ["original", "hf"] {
            let model = load(&case, layout, ExpertPath::Exact);
            assert_eq!(model.config().vocab_size, case.vocab);
            let lora = model.lora().unwrap();
            assert_eq!(lora.rank(), 8);
            let mut outs = vec![];
            for (p, want) in case.prompts.iter().zip(&case.logits) {
                let mut cache = model.new_cache(p.len() + 8);
                let got = model.forward(p, &mut cache, LogitsFor::All).unwrap();
                let d = max_abs_diff(&got, want);
                assert!(
                    d <= TOL,
                    "{}/{layout}: max abs diff {d:.3e} > {TOL:e} from transformers + peft",
                    case.name
                );
                report.push(format!("{}/{layout}: max abs diff {d:.2e}", case.name));
                outs.push(got);
            }
            per_layout.push(outs);
        }
        assert_eq!(
            per_layout[0], per_layout[1],
            "{}: the original and HF layouts give different logits with the same adapter",
            case.name
        );
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn adapter_bites_and_can_be_removed() {
    for case in cases() {
        let mut model = load(&case, "hf", ExpertPath::Exact);
        let p = &case.prompts[0];
        let with = model
            .forward(p, &mut model.new_cache(64), LogitsFor::All)
            .unwrap();
        model.set_lora(None).unwrap();
        assert!(model.lora().is_none());
        let without = model
            .forward(p, &mut model.new_cache(64), LogitsFor::All)
            .unwrap();
        let d = max_abs_diff(&with, &without);
        assert!(
            d > 0.5,
            "{}: the adapter moves the logits by {d} only",
            case.name
        );
        assert!(max_abs_diff(&with, &case.logits[0]) <= TOL);
    }
}

/// Every prompt decoded one token per step, both prompts in one batched step while both last:
/// each step's logits equal the reference's row of that position (the decode path, n = 1 per
/// sequence, applies the adapter as prefill does), and on the int8 expert path batched rows
/// equal single-sequence decoding bit for bit.
#[test]
fn batched_decode_with_adapter_matches_reference_and_single_decode() {
    for case in cases() {
        for path in [ExpertPath::Exact, ExpertPath::Int8] {
            let model = load(&case, "original", path);
            let n_prompts = case.prompts.len();
            let mut caches: Vec<_> = (0..n_prompts).map(|_| model.new_cache(64)).collect();
            let mut outs: Vec<Vec<f32>> = vec![vec![]; n_prompts];
            let steps = case.prompts.iter().map(Vec::len).max().unwrap();
            for step in 0..steps {
                let live: Vec<usize> = (0..n_prompts)
                    .filter(|&i| step < case.prompts[i].len())
                    .collect();
                let mut rows: Vec<DecodeRow<'_>> = vec![];
                for (i, (cache, out)) in caches.iter_mut().zip(outs.iter_mut()).enumerate() {
                    if live.contains(&i) {
                        rows.push(DecodeRow {
                            token: case.prompts[i][step],
                            cache,
                            logits: out,
                        });
                    }
                }
                for r in model.forward_batch(&mut rows) {
                    r.unwrap();
                }
                drop(rows);
                for &i in &live {
                    let v = case.vocab;
                    if path == ExpertPath::Exact {
                        let want = &case.logits[i][step * v..(step + 1) * v];
                        let d = max_abs_diff(&outs[i], want);
                        assert!(
                            d <= TOL,
                            "{} prompt {i} step {step}: batched decode differs by {d:.3e}",
                            case.name
                        );
                    }
                    // The same token alone, from a cache replayed to the same point.
                    let mut single = model.new_cache(64);
                    if step > 0 {
                        model
                            .forward(&case.prompts[i][..step], &mut single, LogitsFor::Nothing)
                            .unwrap();
                    }
                    let one = model
                        .forward(&case.prompts[i][step..=step], &mut single, LogitsFor::Last)
                        .unwrap();
                    if path == ExpertPath::Int8 {
                        assert_eq!(
                            one, outs[i],
                            "{} prompt {i} step {step}: batched row != single decode (int8)",
                            case.name
                        );
                    }
                }
            }
        }
    }
}

/// A second adapter for `case`'s model: the same tensors with lora_alpha tripled (every update
/// three times as large), in a temporary folder.
fn tripled_alpha(case: &Case) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(case.adapter.join("adapter_config.json")).unwrap())
            .unwrap();
    let alpha = cfg["lora_alpha"].as_f64().unwrap();
    cfg["lora_alpha"] = serde_json::json!(alpha * 3.0);
    std::fs::write(
        dir.path().join("adapter_config.json"),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        case.adapter.join("adapter_model.safetensors"),
        dir.path().join("adapter_model.safetensors"),
    )
    .unwrap();
    dir
}

/// Rows of one batched decode step under different adapters (row 0 adapter A, row 1 none, row 2
/// adapter B, row 3 A again, so the rows of one adapter are not side by side): each row's
/// logits equal its own single-sequence decode under its own adapter, bit for bit on the int8
/// expert path and within float rounding on the exact one; the three adapters give three
/// different results; a cache naming an adapter the model lacks fails alone.
#[test]
fn batched_decode_mixes_adapters_per_row() {
    for case in cases() {
        for path in [ExpertPath::Int8, ExpertPath::Exact] {
            let mut model = Model::load(&case.base.path().join("original")).unwrap();
            model.set_expert_path(path);
            let a = model.load_lora(&case.adapter).unwrap();
            let a = model.add_lora(a).unwrap();
            let b_dir = tripled_alpha(&case);
            let b = model.load_lora(b_dir.path()).unwrap();
            let b = model.add_lora(b).unwrap();
            assert_ne!(a, b);
            assert!(model.lora().is_none());
            let choices = [Some(a), None, Some(b), Some(a)];
            // Every row decodes the same prompt, so rows differ by their adapter only.
            let prompt = &case.prompts[0];
            let mut caches: Vec<_> = choices
                .iter()
                .map(|&c| {
                    let mut cache = model.new_cache(64);
                    cache.set_lora(c);
                    cache
                })
                .collect();
            let mut outs: Vec<Vec<f32>> = vec![vec![]; choices.len()];
            for step in 0..prompt.len() {
                let mut rows: Vec<DecodeRow<'_>> = caches
                    .iter_mut()
                    .zip(outs.iter_mut())
                    .map(|(cache, logits)| DecodeRow {
                        token: prompt[step],
                        cache,
                        logits,
                    })
                    .collect();
                for r in model.forward_batch(&mut rows) {
                    r.unwrap();
                }
                drop(rows);
                for (i, &choice) in choices.iter().enumerate() {
                    let mut single = model.new_cache(64);
                    single.set_lora(choice);
                    if step > 0 {
                        model
                            .forward(&prompt[..step], &mut single, LogitsFor::Nothing)
                            .unwrap();
                    }
                    let one = model
                        .forward(&prompt[step..=step], &mut single, LogitsFor::Last)
                        .unwrap();
                    let what = format!("{} {path:?} row {i} step {step}", case.name);
                    if path == ExpertPath::Int8 {
                        assert_eq!(one, outs[i], "{what}: batched row != single decode");
                    } else {
                        let d = max_abs_diff(&one, &outs[i]);
                        assert!(d <= 1e-4, "{what}: batched row differs by {d:.3e}");
                    }
                }
                assert_eq!(outs[0], outs[3], "{}: two rows under A differ", case.name);
            }
            for (x, y) in [(0, 1), (0, 2), (1, 2)] {
                let d = max_abs_diff(&outs[x], &outs[y]);
                assert!(d > 1e-3, "{}: rows {x} and {y} agree ({d})", case.name);
            }
            // Adapter A in a batch equals the reference's transformers + peft logits.
            if path == ExpertPath::Exact {
                let v = case.vocab;
                let last = &case.logits[0][(prompt.len() - 1) * v..];
                assert!(max_abs_diff(&outs[0], last) <= TOL);
            }
            // A cache naming an adapter this model does not hold: that row fails, the rest run.
            let mut bad = model.new_cache(8);
            bad.set_lora(Some(gptoss_model::LoraId(7)));
            let mut good = model.new_cache(8);
            let (mut l1, mut l2) = (vec![], vec![]);
            let mut rows = vec![
                DecodeRow {
                    token: prompt[0],
                    cache: &mut bad,
                    logits: &mut l1,
                },
                DecodeRow {
                    token: prompt[0],
                    cache: &mut good,
                    logits: &mut l2,
                },
            ];
            let results = model.forward_batch(&mut rows);
            assert!(matches!(
                results[0],
                Err(gptoss_model::ForwardError::UnknownAdapter { id: 7 })
            ));
            assert!(results[1].is_ok());
        }
    }
}

/// Changing a cache's adapter forgets its positions: keys and values of one adapter are never
/// read under another.
#[test]
fn changing_a_caches_adapter_clears_it() {
    let case = &cases()[0];
    let mut model = Model::load(&case.base.path().join("hf")).unwrap();
    let a = model.load_lora(&case.adapter).unwrap();
    let a = model.add_lora(a).unwrap();
    let mut cache = model.new_cache(64);
    model
        .forward(&case.prompts[0], &mut cache, LogitsFor::Nothing)
        .unwrap();
    assert_eq!(cache.len(), case.prompts[0].len());
    cache.set_lora(None);
    assert_eq!(cache.len(), case.prompts[0].len(), "same adapter: kept");
    cache.set_lora(Some(a));
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.lora(), Some(a));
}
