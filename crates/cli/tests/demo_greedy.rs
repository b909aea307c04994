//! The built-in demo model through our engine must decode exactly what Hugging
//! Face `transformers` decodes greedily on the same prompts.
//!
//! Oracle: `testdata/demo/hf_greedy.json`, written by `scripts/demo/hf_greedy.py`
//! (transformers, float32 activations, the same bf16/MXFP4 weights). We unpack
//! `assets/demo-model` into a temp folder and run `gpt-oss generate` on it, so
//! the checkpoint loader, forward pass, KV cache and greedy sampler are all the
//! real ones.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn unpack_demo_model(dir: &Path) {
    let assets = repo_root().join("assets/demo-model");
    std::fs::copy(assets.join("config.json"), dir.join("config.json")).expect("copy config");
    let gz = std::fs::read(assets.join("model.safetensors.gz")).expect("read demo weights");
    let mut weights = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut weights)
        .expect("gunzip demo weights");
    std::fs::write(dir.join("model.safetensors"), weights).expect("write demo weights");
}

#[test]
fn demo_model_greedy_matches_transformers() {
    greedy_matches_transformers("cpu");
}

/// The same cases through the GPU backend (`--device gpu`; lavapipe in CI). Without an adapter
/// the test says it was skipped, unless `GPTOSS_REQUIRE_GPU=1` (then it fails).
#[test]
fn demo_model_greedy_matches_transformers_on_the_gpu() {
    let out = Command::new(env!("CARGO_BIN_EXE_gpt-oss"))
        .args(["devices", "--json"])
        .output()
        .expect("run gpt-oss devices");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("devices --json");
    if list.as_array().is_none_or(|a| a.is_empty()) {
        let required = std::env::var("GPTOSS_REQUIRE_GPU").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "GPTOSS_REQUIRE_GPU=1 but `gpt-oss devices` lists no adapter"
        );
        eprintln!("demo greedy on the GPU: SKIPPED, no GPU adapter found");
        return;
    }
    greedy_matches_transformers("gpu");
}

fn greedy_matches_transformers(device: &str) {
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("testdata/demo/hf_greedy.json"))
            .expect("read hf_greedy.json"),
    )
    .expect("parse hf_greedy.json");
    let max_new = golden["meta"]["max_new"].as_u64().expect("meta.max_new");
    let cases = golden["cases"].as_array().expect("cases");
    assert!(cases.len() >= 20, "expected the 22 committed cases");

    let model_dir = tempfile::tempdir().expect("tempdir");
    unpack_demo_model(model_dir.path());

    let mut mismatches = Vec::new();
    for case in cases {
        let id = case["id"].as_str().expect("id");
        let prompt: Vec<u64> =
            serde_json::from_value(case["prompt_tokens"].clone()).expect("prompt");
        let expected: Vec<u64> = serde_json::from_value(case["greedy"].clone()).expect("greedy");
        let prompt_arg = serde_json::to_string(&prompt).expect("json");
        let output = Command::new(env!("CARGO_BIN_EXE_gpt-oss"))
            .args(["generate", "--model"])
            .arg(model_dir.path())
            .args([
                "--tokens",
                &prompt_arg,
                "--temperature",
                "0",
                "--device",
                device,
            ])
            .args([
                "--max-tokens",
                &max_new.to_string(),
                "--stop",
                "200002,200012",
            ])
            .output()
            .expect("run gpt-oss generate");
        assert!(
            output.status.success(),
            "{id}: gpt-oss generate failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let ours: Vec<u64> =
            serde_json::from_slice(&output.stdout).expect("generate prints JSON ids");
        if ours != expected {
            let first_diff = ours
                .iter()
                .zip(&expected)
                .take_while(|(a, b)| a == b)
                .count();
            mismatches.push(format!(
                "{device} {id}: differs at token {first_diff} (ours {} tokens, transformers {})",
                ours.len(),
                expected.len()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from transformers:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
}
