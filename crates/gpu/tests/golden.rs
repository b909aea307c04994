//! The whole model on the device against the golden fixtures (testdata/model/, made by
//! OpenAI's torch reference): every case and layout, logits within 2e-3 of the float32
//! reference at every position, the reference's greedy continuation reproduced, and greedy
//! decoding through the cache equal to the CPU path's token for token. Batched decode
//! (`forward_batch`) rows must match single-sequence decode.

use std::path::{Path, PathBuf};

use gptoss_engine::language_model::DecodeRow;
use gptoss_engine::{KvState, LanguageModel, LogitsFor};
use gptoss_gpu::{GpuModel, SharedGpuModel};
use gptoss_model::{ExpertPath, Model};

#[path = "../../model/tests/golden_files/mod.rs"]
mod golden_files;
mod support;

use golden_files::{materialize, read_npy};

const TOL: f32 = 2e-3;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/model");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("testdata/model")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("golden.json").exists())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no golden cases");
    cases
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Greedy decoding of `steps` tokens after `prompt`, through the model's cache.
fn greedy<M: LanguageModel>(m: &M, prompt: &[u32], steps: usize) -> Vec<u32> {
    let mut cache = m.new_cache(prompt.len() + steps + 1);
    let mut logits = Vec::new();
    m.forward(prompt, &mut cache, LogitsFor::Last, &mut logits)
        .unwrap();
    let mut out = vec![];
    for _ in 0..steps {
        let t = argmax(&logits);
        out.push(t);
        m.forward(&[t], &mut cache, LogitsFor::Last, &mut logits)
            .unwrap();
    }
    out
}

fn upload(model: &Model) -> Option<SharedGpuModel> {
    let ctx = support::open("golden")?;
    let gpu = GpuModel::upload(ctx, model, &mut |_, _| {}).expect("upload");
    Some(SharedGpuModel(std::sync::Arc::new(gpu)))
}

#[test]
fn golden_logits_on_the_device() {
    for case in cases() {
        let tmp = tempfile::tempdir().unwrap();
        materialize(&case, tmp.path());
        let dir = tmp.path();
        let golden: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap();
        let ids = |k: &str| -> Vec<u32> {
            golden[k]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_u64().unwrap() as u32).collect())
                .unwrap_or_default()
        };
        let tokens = ids("tokens");
        let (shape, want) = read_npy(&dir.join("logits_f32.npy"));
        assert_eq!(shape[0], tokens.len());
        for layout in ["original", "hf", "hf-bf16"] {
            let p = dir.join(layout);
            if !p.exists() {
                continue;
            }
            let name = format!("{}/{layout}", case.file_name().unwrap().to_string_lossy());
            let mut cpu = Model::load(&p).unwrap();
            cpu.set_expert_path(ExpertPath::Exact);
            let Some(gpu) = upload(&cpu) else { return };
            let mut cache = gpu.new_cache(tokens.len() + 64);
            let mut got = Vec::new();
            gpu.forward(&tokens, &mut cache, LogitsFor::All, &mut got)
                .unwrap();
            assert_eq!(got.len(), want.len(), "{name}");
            let max = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!("{name}: max abs diff {max:.3e} over {} logits", got.len());
            assert!(max <= TOL, "{name}: max abs diff {max} > {TOL}");

            let prompt = ids("greedy_prompt");
            let expected = ids("greedy_f32");
            if !prompt.is_empty() {
                let on_gpu = greedy(&gpu, &prompt, expected.len());
                assert_eq!(
                    on_gpu, expected,
                    "{name}: greedy continuation vs the reference"
                );
                let on_cpu = greedy(&cpu, &prompt, expected.len());
                assert_eq!(
                    on_gpu, on_cpu,
                    "{name}: greedy continuation vs the CPU path"
                );
            }
        }
    }
}

/// One token per sequence through `forward_batch` for sequences at different depths equals
/// each sequence's own `forward`, and rollback + replay (prefix reuse) gives the same logits.
#[test]
fn batched_decode_and_rollback_match_single_sequences() {
    let case = cases()
        .into_iter()
        .find(|c| c.ends_with("window128"))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    materialize(&case, tmp.path());
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("golden.json")).unwrap()).unwrap();
    let tokens: Vec<u32> = golden["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let mut cpu = Model::load(&tmp.path().join("original")).unwrap();
    cpu.set_expert_path(ExpertPath::Exact);
    let Some(gpu) = upload(&cpu) else { return };
    let depths = [1usize, 7, tokens.len() - 1];
    let mut caches: Vec<_> = depths
        .iter()
        .map(|_| gpu.new_cache(tokens.len() + 8))
        .collect();
    let mut singles = Vec::new();
    for (c, &d) in caches.iter_mut().zip(&depths) {
        let mut l = Vec::new();
        gpu.forward(&tokens[..d], c, LogitsFor::Nothing, &mut l)
            .unwrap();
        let mut solo = gpu.new_cache(tokens.len() + 8);
        gpu.forward(&tokens[..d], &mut solo, LogitsFor::Nothing, &mut l)
            .unwrap();
        gpu.forward(&tokens[d..d + 1], &mut solo, LogitsFor::Last, &mut l)
            .unwrap();
        singles.push(l);
    }
    let mut outs: Vec<Vec<f32>> = vec![Vec::new(); depths.len()];
    let mut rows: Vec<DecodeRow<'_, _>> = caches
        .iter_mut()
        .zip(outs.iter_mut())
        .zip(&depths)
        .map(|((cache, logits), &d)| DecodeRow {
            token: tokens[d],
            cache,
            logits,
        })
        .collect();
    for r in gpu.forward_batch(&mut rows) {
        r.unwrap();
    }
    drop(rows);
    for ((o, s), d) in outs.iter().zip(&singles).zip(&depths) {
        let max = o
            .iter()
            .zip(s)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            max <= 1e-5,
            "depth {d}: batched vs single max abs diff {max}"
        );
    }

    // Prefix reuse: snapshot, go on, roll back, replay: same logits as the first time.
    let mut cache = gpu.new_cache(tokens.len() + 8);
    let mut first = Vec::new();
    let half = tokens.len() / 2;
    gpu.forward(&tokens[..half], &mut cache, LogitsFor::Nothing, &mut first)
        .unwrap();
    cache.mark_snapshot();
    gpu.forward(&tokens[half..], &mut cache, LogitsFor::Last, &mut first)
        .unwrap();
    let kept = cache.rollback_to(half);
    assert_eq!(kept, half);
    let mut again = Vec::new();
    gpu.forward(&tokens[half..], &mut cache, LogitsFor::Last, &mut again)
        .unwrap();
    assert_eq!(first, again, "replay after rollback");

    // A copy (into a cache that held other tokens) carries positions and snapshots: rolled back
    // to the snapshot and replayed, it gives the same logits too.
    let mut twin = gpu.new_cache(tokens.len() + 8);
    let mut scratch = Vec::new();
    gpu.forward(&tokens[..3], &mut twin, LogitsFor::Nothing, &mut scratch)
        .unwrap();
    assert!(twin.copy_from(&cache));
    assert_eq!(twin.len(), cache.len());
    assert_eq!(twin.rollback_to(half), half);
    let mut from_twin = Vec::new();
    gpu.forward(&tokens[half..], &mut twin, LogitsFor::Last, &mut from_twin)
        .unwrap();
    assert_eq!(first, from_twin, "replay on a copy");
}
