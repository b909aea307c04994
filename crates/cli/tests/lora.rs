//! `--lora DIR` end to end: `logits` with the PEFT adapter of testdata/lora/tiny-2of4 on both
//! layouts of its base checkpoint writes logits within 2e-3 of transformers + peft; `generate`
//! with it continues greedily from the same logits; a wrong adapter stops the command before
//! anything runs, with an error naming the adapter file and the problem.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gpt-oss"))
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// A float32 .npy file: its values.
fn read_npy(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    bytes[10 + hlen..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn golden() -> (Vec<u32>, Vec<f32>) {
    let dir = testdata().join("lora/tiny-2of4");
    let g: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap();
    let prompt = g["prompts"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    (prompt, read_npy(&dir.join("logits_0.npy")))
}

fn ids(tokens: &[u32]) -> String {
    tokens
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn logits_with_lora_match_the_reference_on_both_layouts() {
    let (prompt, want) = golden();
    let tmp = tempfile::tempdir().unwrap();
    for layout in ["original", "hf"] {
        let out = tmp.path().join(format!("{layout}.npy"));
        let res = bin()
            .args(["logits", "--device", "cpu", "--model"])
            .arg(testdata().join("model/tiny-2of4").join(layout))
            .arg("--lora")
            .arg(testdata().join("lora/tiny-2of4/adapter"))
            .args(["--tokens", &ids(&prompt), "--out"])
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert!(res.status.success(), "{stderr}");
        assert!(stderr.contains("lora: "), "{stderr}");
        let got = read_npy(&out);
        assert_eq!(got.len(), want.len());
        let d = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d <= 2e-3, "{layout}: max abs diff {d}");
    }
}

#[test]
fn generate_with_lora_follows_the_adapted_logits() {
    let (prompt, want) = golden();
    let vocab = want.len() / prompt.len();
    let last = &want[(prompt.len() - 1) * vocab..];
    let argmax = (0..vocab)
        .max_by(|&a, &b| last[a].total_cmp(&last[b]))
        .unwrap();
    let res = bin()
        .args([
            "generate",
            "--device",
            "cpu",
            "--temperature",
            "0",
            "--model",
        ])
        .arg(testdata().join("model/tiny-2of4/hf"))
        .arg("--lora")
        .arg(testdata().join("lora/tiny-2of4/adapter"))
        .args(["--tokens", &ids(&prompt), "--max-tokens", "1"])
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let out: Vec<usize> = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!(out, vec![argmax]);
}

#[test]
fn a_wrong_adapter_is_a_clear_error() {
    // The tiny-4of8 adapter (hidden 96) on the tiny-2of4 model (hidden 64).
    let res = bin()
        .args(["logits", "--device", "cpu", "--top", "1", "--tokens", "1,2"])
        .arg("--model")
        .arg(testdata().join("model/tiny-2of4/hf"))
        .arg("--lora")
        .arg(testdata().join("lora/tiny-4of8-sharded/adapter"))
        .output()
        .unwrap();
    assert!(!res.status.success());
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("adapter_model.safetensors") && stderr.contains("has shape"),
        "{stderr}"
    );
    assert!(res.stdout.is_empty());

    let res = bin()
        .args(["generate", "--device", "cpu", "--tokens", "1,2", "--lora"])
        .arg(testdata().join("lora/no-such-adapter"))
        .arg("--model")
        .arg(testdata().join("model/tiny-2of4/hf"))
        .output()
        .unwrap();
    assert!(!res.status.success());
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("no-such-adapter") && stderr.contains("not a folder"),
        "{stderr}"
    );
}
