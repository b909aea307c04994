//! Malformed LoRA adapters: each one is refused at load with a `LoraError` naming the file at
//! fault and the problem (never a panic). Each case starts from a valid PEFT adapter
//! (testdata/lora/tiny-2of4/adapter) copied to a temporary folder and breaks one thing.

use std::path::{Path, PathBuf};

use gptoss_model::{LoraError, LoraProblem, Model, ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn model(case: &str) -> Model {
    Model::load(&testdata().join("model").join(case).join("hf")).unwrap()
}

/// A copy of a valid adapter.
fn adapter_copy(case: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = testdata().join("lora").join(case).join("adapter");
    for f in [ADAPTER_CONFIG, ADAPTER_WEIGHTS] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let p = dir.join(ADAPTER_CONFIG);
    let mut v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    edit(v.as_object_mut().unwrap());
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// One tensor of the file: (name, dtype, shape, bytes).
type Entry = (String, Dtype, Vec<usize>, Vec<u8>);

/// Rewrites adapter_model.safetensors through `edit` over its tensors.
fn edit_tensors(dir: &Path, edit: impl FnOnce(&mut Vec<Entry>)) {
    let p = dir.join(ADAPTER_WEIGHTS);
    let bytes = std::fs::read(&p).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut entries: Vec<Entry> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    edit(&mut entries);
    let views: Vec<(String, TensorView<'_>)> = entries
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let out = safetensors::serialize(views, None).unwrap();
    std::fs::write(&p, out).unwrap();
}

fn load_err(model: &Model, dir: &Path) -> LoraError {
    match model.load_lora(dir) {
        Ok(_) => panic!("the adapter in {} was accepted", dir.display()),
        Err(e) => e,
    }
}

/// Checks that the error names `file` (inside the adapter folder) and returns its problem.
fn problem_in(e: LoraError, file: &str) -> LoraProblem {
    let msg = e.to_string();
    assert!(
        e.path.ends_with(file),
        "error path {} does not name {file}: {msg}",
        e.path.display()
    );
    assert!(msg.contains(file), "{msg}");
    e.problem
}

const Q_A: &str = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
const Q_B: &str = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";

#[test]
fn the_valid_adapter_loads() {
    let m = model("tiny-2of4");
    let dir = adapter_copy("tiny-2of4");
    let a = m.load_lora(dir.path()).unwrap();
    assert_eq!((a.rank(), a.alpha(), a.scale()), (8, 16.0, 2.0));
    // 4 layers x q/k/v/o, and gate_up + down in layers 1 and 2
    assert_eq!(a.target_counts(), (16, 4));
    // r·(d_in + d_out) per product: q 8·(64+64), k and v 8·(64+32), o 8·(64+64) per layer;
    // gate_up 8·(64+128) and down 8·(64+64) times 2 routed experts, in 2 layers.
    let attn = 4 * (8 * 128 + 2 * 8 * 96 + 8 * 128);
    let experts = 2 * 2 * (8 * 192 + 8 * 128);
    assert_eq!(a.extra_macs_per_token(2), (attn + experts) as u64);
}

#[test]
fn missing_folder_and_files() {
    let m = model("tiny-2of4");
    let dir = adapter_copy("tiny-2of4");
    let e = load_err(&m, &dir.path().join("nope"));
    assert_eq!(e.problem, LoraProblem::NotAFolder);

    std::fs::remove_file(dir.path().join(ADAPTER_WEIGHTS)).unwrap();
    let p = problem_in(load_err(&m, dir.path()), ADAPTER_WEIGHTS);
    assert_eq!(p, LoraProblem::MissingFile);
    std::fs::write(dir.path().join("adapter_model.bin"), b"pickle").unwrap();
    let p = problem_in(load_err(&m, dir.path()), ADAPTER_WEIGHTS);
    assert_eq!(p, LoraProblem::PickleOnly);

    std::fs::remove_file(dir.path().join(ADAPTER_CONFIG)).unwrap();
    let p = problem_in(load_err(&m, dir.path()), ADAPTER_CONFIG);
    assert_eq!(p, LoraProblem::MissingFile);
}

#[test]
fn bad_config_json() {
    let m = model("tiny-2of4");
    let dir = adapter_copy("tiny-2of4");
    std::fs::write(dir.path().join(ADAPTER_CONFIG), b"{ not json").unwrap();
    let p = problem_in(load_err(&m, dir.path()), ADAPTER_CONFIG);
    assert!(
        matches!(p, LoraProblem::BadConfig(ref s) if s.contains("not JSON")),
        "{p}"
    );
}

#[test]
fn bad_rank() {
    let m = model("tiny-2of4");
    for bad in [
        Value::from(0),
        Value::from(-8),
        Value::from("8"),
        Value::from(2.5),
    ] {
        let dir = adapter_copy("tiny-2of4");
        edit_config(dir.path(), |c| {
            c.insert("r".into(), bad.clone());
        });
        let p = problem_in(load_err(&m, dir.path()), ADAPTER_CONFIG);
        assert_eq!(p, LoraProblem::BadRank(bad.to_string()));
    }
    // A valid rank that is not the tensors' rank: the first tensor read is named.
    let dir = adapter_copy("tiny-2of4");
    edit_config(dir.path(), |c| {
        c.insert("r".into(), Value::from(4));
    });
    let e = load_err(&m, dir.path());
    assert!(e.to_string().contains("expected [4, 64]"), "{e}");
    match problem_in(e, ADAPTER_WEIGHTS) {
        LoraProblem::WrongShape {
            expected, found, ..
        } => assert_eq!((expected[0], found[0]), (4, 8)),
        other => panic!("{other}"),
    }
}

#[test]
fn unsupported_options() {
    let m = model("tiny-2of4");
    let cases: Vec<(&str, Value)> = vec![
        ("use_dora", Value::Bool(true)),
        ("bias", Value::from("all")),
        ("bias", Value::from("lora_only")),
        ("lora_bias", Value::Bool(true)),
        ("modules_to_save", serde_json::json!(["lm_head"])),
        ("rank_pattern", serde_json::json!({"q_proj": 4})),
        ("alpha_pattern", serde_json::json!({"q_proj": 4})),
        ("layer_replication", serde_json::json!([[0, 2]])),
        ("peft_type", Value::from("IA3")),
        ("fan_in_fan_out", Value::Bool(true)),
    ];
    for (field, value) in cases {
        let dir = adapter_copy("tiny-2of4");
        edit_config(dir.path(), |c| {
            c.insert(field.into(), value.clone());
        });
        let e = load_err(&m, dir.path());
        let msg = e.to_string();
        match problem_in(e, ADAPTER_CONFIG) {
            LoraProblem::Unsupported { field: f, .. } => assert_eq!(f, field, "{msg}"),
            other => panic!("{field}: {other}"),
        }
        assert!(msg.contains("not supported"), "{msg}");
    }
}

#[test]
fn unknown_modules_and_parameters() {
    let m = model("tiny-2of4");
    let dir = adapter_copy("tiny-2of4");
    edit_config(dir.path(), |c| {
        c.insert(
            "target_modules".into(),
            serde_json::json!(["q_proj", "gate_proj"]),
        );
    });
    let p = problem_in(load_err(&m, dir.path()), ADAPTER_CONFIG);
    assert_eq!(
        p,
        LoraProblem::UnknownModule {
            module: "gate_proj".into()
        }
    );

    let dir = adapter_copy("tiny-2of4");
    edit_config(dir.path(), |c| {
        c.insert(
            "target_parameters".into(),
            serde_json::json!(["1.mlp.experts.gate_up_proj", "1.mlp.router.weight"]),
        );
    });
    let p = problem_in(load_err(&m, dir.path()), ADAPTER_CONFIG);
    assert_eq!(
        p,
        LoraProblem::UnknownParameter {
            name: "1.mlp.router.weight".into()
        }
    );
}

#[test]
fn unknown_tensor_names() {
    let m = model("tiny-2of4");
    for bad in [
        "base_model.model.model.layers.0.mlp.router.lora_A.weight",
        "base_model.model.lm_head.lora_A.weight",
        "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector",
    ] {
        let dir = adapter_copy("tiny-2of4");
        edit_tensors(dir.path(), |t| {
            let e = t.iter_mut().find(|e| e.0 == Q_A).unwrap();
            e.0 = bad.to_string();
        });
        let e = load_err(&m, dir.path());
        assert!(e.to_string().contains(bad), "{e}");
        let p = problem_in(e, ADAPTER_WEIGHTS);
        assert_eq!(
            p,
            LoraProblem::UnknownTensor {
                name: bad.to_string()
            }
        );
    }
}

#[test]
fn layer_out_of_range() {
    let m = model("tiny-2of4");
    let dir = adapter_copy("tiny-2of4");
    let name = "base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight";
    edit_tensors(dir.path(), |t| {
        t.iter_mut().find(|e| e.0 == Q_A).unwrap().0 = name.to_string();
    });
    let p = problem_in(load_err(&m, dir.path()), ADAPTER_WEIGHTS);
    assert_eq!(
        p,
        LoraProblem::LayerOutOfRange {
            name: name.into(),
            layer: 7,
            n_layers: 4
        }
    );
}

#[test]
fn shape_mismatch_with_the_base() {
    // The tiny-4of8 adapter (hidden 96) on the tiny-2of4 model (hidden 64).
    let m = model("tiny-2of4");
    let dir = adapter_copy("tiny-4of8-sharded");
    let e = load_err(&m, dir.path());
    let msg = e.to_string();
    match problem_in(e, ADAPTER_WEIGHTS) {
        LoraProblem::WrongShape {
            name,
            expected,
            found,
            ..
        } => {
            assert!(msg.contains(&name), "{msg}");
            assert_ne!(expected, found);
        }
        other => panic!("{other}"),
    }

    // An expert lora_B with the wrong number of rows is named with the shape it should have.
    let dir = adapter_copy("tiny-2of4");
    let b = "base_model.model.model.layers.1.mlp.experts.base_layer.lora_B.weight";
    edit_tensors(dir.path(), |t| {
        let e = t.iter_mut().find(|e| e.0 == b).unwrap();
        // [128, 32] -> [96, 32]
        e.2 = vec![96, 32];
        e.3.truncate(96 * 32 * 2);
    });
    let p = problem_in(load_err(&m, dir.path()), ADAPTER_WEIGHTS);
    assert!(
        matches!(&p, LoraProblem::WrongShape { name, expected, found, .. }
            if name == b && expected == &vec![128, 32] && found == &vec![96, 32]),
        "{p}"
    );

    // An attention lora_B of the wrong width.
    let dir = adapter_copy("tiny-2of4");
    edit_tensors(dir.path(), |t| {
        let e = t.iter_mut().find(|e| e.0 == Q_B).unwrap();
        e.2 = vec![32, 8];
        e.3.truncate(32 * 8 * 2);
    });
    let p = problem_in(load_err(&m, dir.path()), ADAPTER_WEIGHTS);
    assert_eq!(
        p,
        LoraProblem::WrongShape {
            name: Q_B.into(),
            expected: vec![64, 8],
            found: vec![32, 8],
            why: "lora_B: [out_features, r]".into()
        }
    );
}

#[test]
fn unpaired_dtype_nonfinite_empty_and_garbage() {
    let m = model("tiny-2of4");

    let dir = adapter_copy("tiny-2of4");
    edit_tensors(dir.path(), |t| t.retain(|e| e.0 != Q_B));
    let p = problem_in(load_err(&m, dir.path()), ADAPTER_WEIGHTS);
    assert_eq!(p, LoraProblem::Unpaired { name: Q_A.into() });

    let dir = adapter_copy("tiny-2of4");
    edit_tensors(dir.path(), |t| {
        let e = t.iter_mut().find(|e| e.0 == Q_A).unwrap();
        e.1 = Dtype::I16;
    });
    let p = problem_in(load_err(&m, dir.path()), ADAPTER_WEIGHTS);
    assert_eq!(
        p,
        LoraProblem::WrongDtype {
            name: Q_A.into(),
            found: "I16".into()
        }
    );

    let dir = adapter_copy("tiny-2of4");
    edit_tensors(dir.path(), |t| {
        let e = t.iter_mut().find(|e| e.0 == Q_A).unwrap();
        // bf16 NaN at element 3
        e.3[6..8].copy_from_slice(&0x7fc0u16.to_le_bytes());
    });
    let p = problem_in(load_err(&m, dir.path()), ADAPTER_WEIGHTS);
    assert!(
        matches!(&p, LoraProblem::NotFinite { name, index: 3, .. } if name == Q_A),
        "{p}"
    );

    let dir = adapter_copy("tiny-2of4");
    edit_tensors(dir.path(), |t| t.clear());
    let p = problem_in(load_err(&m, dir.path()), ADAPTER_WEIGHTS);
    assert_eq!(p, LoraProblem::Empty);

    let dir = adapter_copy("tiny-2of4");
    std::fs::write(
        dir.path().join(ADAPTER_WEIGHTS),
        b"\xff\xff\xff\xff garbage",
    )
    .unwrap();
    let p = problem_in(load_err(&m, dir.path()), ADAPTER_WEIGHTS);
    assert!(matches!(p, LoraProblem::BadFile(_)), "{p}");
}

#[test]
fn an_adapter_checked_against_another_model_is_refused() {
    let big = model("tiny-4of8-sharded");
    let adapter = big
        .load_lora(&testdata().join("lora/tiny-4of8-sharded/adapter"))
        .unwrap();
    let mut small = model("tiny-2of4");
    let e = small.set_lora(Some(adapter)).unwrap_err();
    assert_eq!(e.problem, LoraProblem::OtherModel);
    assert!(small.lora().is_none());
}
