//! Corrupted and inconsistent checkpoints: every case must return an error that names the file,
//! tensor or config field at fault, and nothing may panic.

use std::path::Path;

use gptoss_model::synth::{self, RawTensor, SynthLayout};
use gptoss_model::{Config, LoadError, LogitsFor, Model};

fn write(dir: &Path, config_json: &str, tensors: &[RawTensor]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config_json).unwrap();
    std::fs::write(
        dir.join("model.safetensors"),
        synth::safetensors_bytes(tensors),
    )
    .unwrap();
}

fn original(c: &Config) -> Vec<RawTensor> {
    synth::checkpoint_tensors(c, 3, SynthLayout::Original)
}

fn load_err(dir: &Path) -> (LoadError, String) {
    match Model::load(dir) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => {
            let s = e.to_string();
            (e, s)
        }
    }
}

#[test]
fn truncated_file() {
    let c = synth::tiny_config();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &c.to_original_json(), &original(&c));
    let f = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    for keep in [bytes.len() - 1, bytes.len() / 2, 100, 9, 3, 0] {
        std::fs::write(&f, &bytes[..keep]).unwrap();
        let (e, s) = load_err(dir.path());
        assert!(matches!(e, LoadError::Truncated { .. }), "keep {keep}: {s}");
        assert!(s.contains("model.safetensors"), "{s}");
    }
}

#[test]
fn corrupted_header_bytes() {
    let c = synth::tiny_config();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &c.to_original_json(), &original(&c));
    let f = dir.path().join("model.safetensors");
    let good = std::fs::read(&f).unwrap();
    // A flipped JSON byte.
    let mut bad = good.clone();
    bad[8] = b'[';
    std::fs::write(&f, &bad).unwrap();
    let (e, s) = load_err(dir.path());
    assert!(matches!(e, LoadError::BadHeader { .. }), "{s}");
    assert!(s.contains("model.safetensors"), "{s}");
    // A huge header length.
    let mut bad = good.clone();
    bad[7] = 0x7F;
    std::fs::write(&f, &bad).unwrap();
    let (e, s) = load_err(dir.path());
    assert!(
        matches!(e, LoadError::BadHeader { .. } | LoadError::Truncated { .. }),
        "{s}"
    );
    // Every single-byte corruption of the header either loads or errors, never panics.
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    for i in (0..8 + header_len).step_by(13) {
        let mut bad = good.clone();
        bad[i] ^= 0x5A;
        std::fs::write(&f, &bad).unwrap();
        if let Ok(m) = Model::load(dir.path()) {
            // A corruption that still parses must still run.
            let mut cache = m.new_cache(4);
            let _ = m.forward(&[1, 2], &mut cache, LogitsFor::Last);
        }
    }
}

#[test]
fn config_disagreeing_with_tensors() {
    let c = synth::tiny_config();
    let dir = tempfile::tempdir().unwrap();
    let tensors = original(&c);
    // More layers in the config than in the file.
    let mut more = c.clone();
    more.num_hidden_layers += 1;
    write(dir.path(), &more.to_original_json(), &tensors);
    let (e, s) = load_err(dir.path());
    assert!(matches!(e, LoadError::MissingTensor { .. }), "{s}");
    assert!(s.contains("block.3."), "{s}");
    // Fewer layers.
    let mut fewer = c.clone();
    fewer.num_hidden_layers -= 1;
    write(dir.path(), &fewer.to_original_json(), &tensors);
    let (e, s) = load_err(dir.path());
    assert!(matches!(e, LoadError::BadConfig { .. }), "{s}");
    assert!(s.contains("num_hidden_layers"), "{s}");
    // Wrong hidden size.
    let mut wide = c.clone();
    wide.hidden_size = 96;
    write(dir.path(), &wide.to_original_json(), &tensors);
    let (e, s) = load_err(dir.path());
    assert!(matches!(e, LoadError::WrongShape { .. }), "{s}");
    assert!(s.contains("embedding.weight"), "{s}");
    // Wrong vocab size.
    let mut v = c.clone();
    v.vocab_size += 1;
    write(dir.path(), &v.to_original_json(), &tensors);
    let (_, s) = load_err(dir.path());
    assert!(s.contains("embedding.weight"), "{s}");
    // Wrong expert count: the router is checked first.
    let mut ex = c.clone();
    ex.num_experts = 8;
    write(dir.path(), &ex.to_original_json(), &tensors);
    let (_, s) = load_err(dir.path());
    assert!(s.contains("block.0.mlp"), "{s}");
    // Unparseable config.
    write(dir.path(), "{\"num_hidden_layers\": \"three\"}", &tensors);
    let (e, s) = load_err(dir.path());
    assert!(matches!(e, LoadError::BadConfig { .. }), "{s}");
    assert!(
        s.contains("num_hidden_layers") || s.contains("hidden_size"),
        "{s}"
    );
}

#[test]
fn missing_tensor_and_wrong_dtype() {
    let c = synth::tiny_config();
    let dir = tempfile::tempdir().unwrap();
    for victim in [
        "block.1.attn.sinks",
        "block.2.mlp.mlp2_weight.scales",
        "unembedding.weight",
        "norm.scale",
    ] {
        let tensors: Vec<RawTensor> = original(&c)
            .into_iter()
            .filter(|t| t.name != victim)
            .collect();
        write(dir.path(), &c.to_original_json(), &tensors);
        let (e, s) = load_err(dir.path());
        assert!(matches!(e, LoadError::MissingTensor { .. }), "{s}");
        assert!(s.contains(victim), "{s}");
    }
    // bf16 weight relabelled as F16 (same size, different meaning).
    let mut tensors = original(&c);
    let t = tensors
        .iter_mut()
        .find(|t| t.name == "block.0.attn.qkv.weight")
        .unwrap();
    t.dtype = "F16";
    write(dir.path(), &c.to_original_json(), &tensors);
    let (e, s) = load_err(dir.path());
    assert!(matches!(e, LoadError::WrongDtype { .. }), "{s}");
    assert!(
        s.contains("block.0.attn.qkv.weight") && s.contains("F16"),
        "{s}"
    );
    // MXFP4 blocks relabelled as I8.
    let mut tensors = original(&c);
    let t = tensors
        .iter_mut()
        .find(|t| t.name == "block.1.mlp.mlp1_weight.blocks")
        .unwrap();
    t.dtype = "I8";
    write(dir.path(), &c.to_original_json(), &tensors);
    let (e, s) = load_err(dir.path());
    assert!(matches!(e, LoadError::WrongDtype { .. }), "{s}");
    assert!(s.contains("block.1.mlp.mlp1_weight.blocks"), "{s}");
    // Wrong shape of one tensor (same byte count).
    let mut tensors = original(&c);
    let t = tensors
        .iter_mut()
        .find(|t| t.name == "block.0.mlp.gate.weight")
        .unwrap();
    t.shape.reverse();
    write(dir.path(), &c.to_original_json(), &tensors);
    let (e, s) = load_err(dir.path());
    assert!(matches!(e, LoadError::WrongShape { .. }), "{s}");
    assert!(s.contains("block.0.mlp.gate.weight"), "{s}");
}

#[test]
fn non_finite_small_tensor() {
    let c = synth::tiny_config();
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = original(&c);
    let t = tensors
        .iter_mut()
        .find(|t| t.name == "block.0.mlp.norm.scale")
        .unwrap();
    t.data[2..4].copy_from_slice(&0x7FC0u16.to_le_bytes()); // bf16 NaN
    write(dir.path(), &c.to_original_json(), &tensors);
    let (e, s) = load_err(dir.path());
    assert!(matches!(e, LoadError::BadValue { .. }), "{s}");
    assert!(s.contains("block.0.mlp.norm.scale"), "{s}");
}

#[test]
fn unsupported_quantization() {
    let c = synth::tiny_config();
    let dir = tempfile::tempdir().unwrap();
    synth::write_checkpoint(dir.path(), &c, 3, SynthLayout::HuggingFace { shards: 1 }).unwrap();
    let cfg = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        cfg.replace("\"mxfp4\"", "\"bitsandbytes\""),
    )
    .unwrap();
    let (e, s) = load_err(dir.path());
    assert!(
        matches!(e, LoadError::UnsupportedQuantization { .. }),
        "{s}"
    );
    assert!(s.contains("bitsandbytes"), "{s}");
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (e, s) = load_err(&dir.path().join("nope"));
    assert!(
        matches!(e, LoadError::Io { .. }) && s.contains("nope"),
        "{s}"
    );
    let (e, s) = load_err(dir.path());
    assert!(
        matches!(e, LoadError::MissingFiles { .. }) && s.contains("config.json"),
        "{s}"
    );
    let c = synth::tiny_config();
    std::fs::write(dir.path().join("config.json"), c.to_original_json()).unwrap();
    let (_, s) = load_err(dir.path());
    assert!(s.contains("safetensors"), "{s}");
    // A sharded HF folder with one shard deleted.
    let hf = dir.path().join("hf");
    synth::write_checkpoint(&hf, &c, 3, SynthLayout::HuggingFace { shards: 3 }).unwrap();
    std::fs::remove_file(hf.join("model-00002-of-00003.safetensors")).unwrap();
    let (e, s) = load_err(&hf);
    assert!(matches!(e, LoadError::MissingFiles { .. }), "{s}");
    assert!(s.contains("model-00002-of-00003.safetensors"), "{s}");
}

#[test]
fn unaligned_tensor_data_and_f32_norms_load() {
    // A header of odd length puts every bf16 tensor at an odd address.
    let c = synth::tiny_config();
    let tensors = original(&c);
    let mut header = serde_json::Map::new();
    let mut off = 0;
    for t in &tensors {
        header.insert(t.name.clone(), serde_json::json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [off, off + t.data.len()]}));
        off += t.data.len();
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    if h.len().is_multiple_of(2) {
        h.push(b' ');
    }
    let mut file = (h.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&h);
    for t in &tensors {
        file.extend_from_slice(&t.data);
    }
    let toks = [5u32, 9, 1, 40, 2];
    let aligned = Model::from_memory(
        c.to_original_json().as_bytes(),
        synth::safetensors_bytes(&tensors),
    )
    .unwrap();
    let odd = Model::from_memory(c.to_original_json().as_bytes(), file.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), c.to_original_json()).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), &file).unwrap();
    let mapped_odd = Model::load(dir.path()).unwrap();
    let run = |m: &Model| {
        let mut cache = m.new_cache(8);
        m.forward(&toks, &mut cache, LogitsFor::All).unwrap()
    };
    let want = run(&aligned);
    assert_eq!(run(&odd), want);
    assert_eq!(run(&mapped_odd), want);
    // Norm scales and sinks stored as F32 (HF may keep them in fp32) give the same logits.
    let f32_tensors: Vec<RawTensor> = tensors
        .into_iter()
        .map(|mut t| {
            if t.name.ends_with("norm.scale") || t.name.ends_with("sinks") {
                t.data = t
                    .data
                    .chunks(2)
                    .flat_map(|b| {
                        f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)
                            .to_le_bytes()
                    })
                    .collect();
                t.dtype = "F32";
            }
            t
        })
        .collect();
    let m = Model::from_memory(
        c.to_original_json().as_bytes(),
        synth::safetensors_bytes(&f32_tensors),
    )
    .unwrap();
    assert_eq!(run(&m), want);
}
