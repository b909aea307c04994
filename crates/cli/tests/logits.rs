//! `gpt-oss logits` end to end on a small random checkpoint: the .npy holds the same numbers as
//! the library's forward pass, --top prints sorted JSON, bad input gives clear errors.

use std::process::Command;

use gptoss_model::synth::{self, SynthLayout};
use gptoss_model::{ExpertPath, LogitsFor, Model};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gpt-oss"))
}

/// A float32 .npy file written by `logits`: (its header text, its values).
fn read_npy(path: &std::path::Path) -> (String, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + hlen])
        .unwrap()
        .to_string();
    let data = bytes[10 + hlen..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (header, data)
}

#[test]
fn writes_npy_and_top_k() {
    let dir = tempfile::tempdir().unwrap();
    let c = synth::tiny_config();
    let ckpt = dir.path().join("ckpt");
    synth::write_checkpoint(&ckpt, &c, 4, SynthLayout::HuggingFace { shards: 2 }).unwrap();
    let out = dir.path().join("logits.npy");
    let res = bin()
        .args(["logits", "--model"])
        .arg(&ckpt)
        .args(["--tokens", "3,1,4,1,5", "--top", "3", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let (header, data) = read_npy(&out);
    assert!(
        header.contains(&format!("'shape': (5, {})", c.vocab_size)),
        "{header}"
    );
    // `logits` runs the exact expert path unless told otherwise (it is for comparing numerics).
    let mut model = Model::load(&ckpt).unwrap();
    model.set_expert_path(ExpertPath::Exact);
    let mut cache = model.new_cache(8);
    let want = model
        .forward(&[3, 1, 4, 1, 5], &mut cache, LogitsFor::All)
        .unwrap();
    assert_eq!(data, want);
    let stdout = String::from_utf8(res.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5);
    let last: serde_json::Value = serde_json::from_str(lines[4]).unwrap();
    let top = last.as_array().unwrap();
    assert_eq!(top.len(), 3);
    let row = &want[4 * c.vocab_size..];
    let best = (0..row.len())
        .max_by(|&a, &b| row[a].total_cmp(&row[b]))
        .unwrap();
    assert_eq!(top[0]["token"].as_u64().unwrap() as usize, best);
    assert!(top[0]["logit"].as_f64().unwrap() >= top[1]["logit"].as_f64().unwrap());

    // `--experts int8` writes the int8 path's logits instead (different numbers on this model).
    let res = bin()
        .args(["logits", "--experts", "int8", "--model"])
        .arg(&ckpt)
        .args(["--tokens", "3,1,4,1,5", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let (_, int8_data) = read_npy(&out);
    model.set_expert_path(ExpertPath::Int8);
    let mut cache = model.new_cache(8);
    let want_int8 = model
        .forward(&[3, 1, 4, 1, 5], &mut cache, LogitsFor::All)
        .unwrap();
    assert_eq!(int8_data, want_int8);
    assert_ne!(int8_data, data);
}

#[test]
fn clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let res = bin()
        .args(["logits", "--model"])
        .arg(dir.path())
        .args(["--tokens", "1", "--top", "1"])
        .output()
        .unwrap();
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("config.json"), "{err}");
    let c = synth::tiny_config();
    synth::write_checkpoint(dir.path(), &c, 4, SynthLayout::Original).unwrap();
    let res = bin()
        .args(["logits", "--model"])
        .arg(dir.path())
        .args(["--tokens", "1,abc", "--top", "1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&res.stderr).contains("abc"));
    let res = bin()
        .args(["logits", "--model"])
        .arg(dir.path())
        .args(["--tokens", "100000", "--top", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success() && err.contains("100000"), "{err}");
}
