//! Helpers shared by the integration tests that load the demo model, compare logits bit for
//! bit, step `forward_batch`, or read resident memory. Each test binary uses a subset.

#![allow(dead_code)]

use std::io::Read;
use std::path::Path;

use gptoss_model::{DecodeRow, KvCache, LogitsFor, Model};

/// The built-in demo model (assets/demo-model), inflated in memory.
pub fn demo_model() -> Model {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/demo-model");
    let config = std::fs::read(dir.join("config.json")).unwrap();
    let gz = std::fs::File::open(dir.join("model.safetensors.gz")).unwrap();
    let mut bytes = vec![];
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut bytes)
        .unwrap();
    Model::from_memory(&config, bytes).unwrap()
}

/// The bit patterns of `v`, so that assertions compare logits exactly (-0.0 and NaNs included).
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// One `forward_batch` step: row s feeds `token(s)` into `caches[s]`, logits into `logits[s]`.
pub fn batch_step(
    model: &Model,
    caches: &mut [KvCache],
    logits: &mut [Vec<f32>],
    token: impl Fn(usize) -> u32,
) {
    let mut rows: Vec<DecodeRow<'_>> = caches
        .iter_mut()
        .zip(logits.iter_mut())
        .enumerate()
        .map(|(s, (cache, logits))| DecodeRow {
            token: token(s),
            cache,
            logits,
        })
        .collect();
    assert!(model.forward_batch(&mut rows).iter().all(Result::is_ok));
}

/// This process's resident memory in KiB (Linux: VmRSS of /proc/self/status), None elsewhere.
pub fn vm_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A harmony-shaped prompt (`<|start|>user<|message|>…<|end|><|start|>`) of demo-model tokens.
pub const DEMO_PROMPT: [u32; 11] = [
    200006, 1428, 200008, 23, 659, 220, 1, 19, 30, 200007, 200006,
];

/// Prefills `prompt` into a fresh cache of each model and asserts that every position's logits
/// agree bit for bit; returns both caches and `a`'s logits (f32 [prompt.len(), vocab]).
pub fn prefill_bitwise_equal(a: &Model, b: &Model, prompt: &[u32]) -> (KvCache, KvCache, Vec<f32>) {
    let (mut ca, mut cb) = (a.new_cache(64), b.new_cache(64));
    let la = a.forward(prompt, &mut ca, LogitsFor::All).unwrap();
    let lb = b.forward(prompt, &mut cb, LogitsFor::All).unwrap();
    assert_eq!(la.len(), prompt.len() * a.config().vocab_size);
    assert_eq!(bits(&la), bits(&lb));
    (ca, cb, la)
}
