//! Prefix reuse is keyed by LoRA adapter: a KV cache a request left behind under one adapter is
//! never reused (rolled back, copied) by a request under another, which gets exactly the tokens
//! of a plain greedy loop under its own adapter; a request under the same adapter reuses it.
//! The real network: the tiny golden checkpoint testdata/model/tiny-2of4 with its PEFT adapter
//! (A) and the same adapter at three times the scale (B).

use std::path::{Path, PathBuf};

use gptoss_engine::sampler::argmax;
use gptoss_engine::{LoraId, SamplingParams};
use gptoss_model::{LogitsFor, Model};
use gptoss_server::scheduler::{
    Engine, FinishReason, GenerationRequest, SchedulerConfig, TokenEvent, TokenUsage,
};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// The model with adapters A and B registered.
fn model(b_dir: &Path) -> (Model, LoraId, LoraId) {
    let mut m = Model::load(&testdata().join("model/tiny-2of4/hf")).unwrap();
    let a = m
        .load_lora(&testdata().join("lora/tiny-2of4/adapter"))
        .unwrap();
    let a = m.add_lora(a).unwrap();
    let b = m.load_lora(b_dir).unwrap();
    let b = m.add_lora(b).unwrap();
    (m, a, b)
}

/// testdata/lora/tiny-2of4/adapter with lora_alpha tripled, in `dir`.
fn write_b(dir: &Path) {
    let src = testdata().join("lora/tiny-2of4/adapter");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("adapter_config.json")).unwrap()).unwrap();
    cfg["lora_alpha"] = serde_json::json!(cfg["lora_alpha"].as_f64().unwrap() * 3.0);
    std::fs::write(
        dir.join("adapter_config.json"),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        src.join("adapter_model.safetensors"),
        dir.join("adapter_model.safetensors"),
    )
    .unwrap();
}

/// Greedy tokens of a plain loop over `Model::forward` under `lora`.
fn greedy(m: &Model, lora: Option<LoraId>, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut cache = m.new_cache(64);
    cache.set_lora(lora);
    let mut logits = m.forward(prompt, &mut cache, LogitsFor::Last).unwrap();
    let mut out = vec![];
    for _ in 0..n {
        let t = argmax(&logits).unwrap();
        out.push(t);
        logits = m.forward(&[t], &mut cache, LogitsFor::Last).unwrap();
    }
    out
}

fn run(engine: &Engine, prompt: &[u32], lora: Option<LoraId>, n: usize) -> (Vec<u32>, TokenUsage) {
    let mut handle = engine
        .submit(GenerationRequest {
            prompt: prompt.to_vec(),
            sampling: SamplingParams::greedy(),
            max_tokens: Some(n),
            stop_tokens: vec![],
            constraint: None,
            logprobs: None,
            lora,
        })
        .unwrap();
    let mut out = vec![];
    loop {
        match handle.events.blocking_recv() {
            Some(TokenEvent::Token(t)) => out.push(t),
            Some(TokenEvent::Finished { reason, usage }) => {
                assert_eq!(reason, FinishReason::MaxTokens);
                return (out, usage);
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
}

#[test]
fn a_cache_is_only_reused_under_its_own_adapter() {
    const N: usize = 4;
    let b_dir = tempfile::tempdir().unwrap();
    write_b(b_dir.path());
    // Longer than the scheduler's copy threshold (16), so a copy would be tried too.
    let prompt: Vec<u32> = (0..40).map(|i| (i * 37 + 11) % 500).collect();
    let (reference, a, b) = model(b_dir.path());
    let want = |lora| greedy(&reference, lora, &prompt, N);
    let (want_a, want_b, want_base) = (want(Some(a)), want(Some(b)), want(None));
    assert_ne!(want_a, want_b);
    assert_ne!(want_a, want_base);
    // One slot: every request lands on the cache the last one left. Two slots: the second
    // request takes the empty slot and could copy the first one's cache.
    for slots in [1, 2] {
        let (m, a2, b2) = model(b_dir.path());
        assert_eq!((a2, b2), (a, b));
        let engine = Engine::spawn(
            m,
            SchedulerConfig {
                max_concurrency: slots,
                max_queue: 8,
                context_tokens: 64,
            },
        )
        .unwrap();
        let reused_all = prompt.len() - 1;
        let steps = [
            (Some(a), &want_a, 0),
            (Some(b), &want_b, 0),
            (Some(b), &want_b, reused_all),
            (None, &want_base, 0),
            // Two slots: the base request took A's (least recently used) slot; B's is intact.
            (Some(b), &want_b, if slots == 1 { 0 } else { reused_all }),
        ];
        for (i, (lora, want, reused)) in steps.into_iter().enumerate() {
            let (got, usage) = run(&engine, &prompt, lora, N);
            assert_eq!(&got, want, "{slots} slots, request {i} ({lora:?})");
            assert_eq!(
                usage.reused_tokens, reused,
                "{slots} slots, request {i} ({lora:?}): reused"
            );
        }
        assert_eq!(engine.metrics().copied_tokens_total, 0);
        assert!(engine.shutdown(std::time::Duration::from_secs(10)));
    }
}
