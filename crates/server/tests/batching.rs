//! Continuous batching through the scheduler with the real network (a tiny random
//! `gptoss_model::Model`): concurrent requests are decoded together (the metrics show more than
//! one row per decode step) and each gets exactly the tokens it gets when it runs alone, which
//! are the tokens of a plain greedy loop over `Model::forward`.

use gptoss_engine::sampler::argmax;
use gptoss_engine::SamplingParams;
use gptoss_model::{synth, LogitsFor, Model};
use gptoss_server::scheduler::{
    Engine, FinishReason, GenerationRequest, RequestHandle, SchedulerConfig, TokenEvent,
};

fn model() -> Model {
    let mut c = synth::tiny_config();
    c.vocab_size = 211;
    let (cfg, st) = synth::original_bytes(&c, 7);
    Model::from_memory(&cfg, st).unwrap()
}

fn request(i: usize, max_tokens: usize) -> GenerationRequest {
    let prompt: Vec<u32> = (0..3 + i % 4)
        .map(|p| ((i * 31 + p * 17 + 5) % 211) as u32)
        .collect();
    GenerationRequest {
        prompt,
        sampling: SamplingParams::greedy(),
        max_tokens: Some(max_tokens),
        stop_tokens: vec![],
        constraint: None,
        logprobs: None,
        lora: None,
    }
}

fn collect(mut handle: RequestHandle) -> Vec<u32> {
    let mut out = vec![];
    loop {
        match handle.events.blocking_recv() {
            Some(TokenEvent::Token(t)) => out.push(t),
            Some(TokenEvent::Finished { reason, .. }) => {
                assert_eq!(reason, FinishReason::MaxTokens);
                return out;
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
}

#[test]
fn concurrent_requests_are_batched_and_equal_solo_runs() {
    const N: usize = 8;
    const MAX: usize = 20;
    let config = SchedulerConfig {
        max_concurrency: N,
        max_queue: 64,
        context_tokens: 64,
    };
    // Each request alone, on its own engine (no batching, no prefix reuse across them).
    let solo: Vec<Vec<u32>> = (0..N)
        .map(|i| {
            let engine = Engine::spawn(model(), config.clone()).unwrap();
            collect(engine.submit(request(i, MAX)).unwrap())
        })
        .collect();
    // Solo runs are the model's own greedy continuation: a plain loop over `Model::forward`
    // (whole prompt at once, then token by token) picks the same tokens.
    let m = model();
    for (i, solo_tokens) in solo.iter().enumerate() {
        let prompt = request(i, MAX).prompt;
        let mut cache = m.new_cache(64);
        let mut logits = m.forward(&prompt, &mut cache, LogitsFor::Last).unwrap();
        let mut greedy = vec![];
        for _ in 0..MAX {
            let token = argmax(&logits).unwrap();
            greedy.push(token);
            logits = m.forward(&[token], &mut cache, LogitsFor::Last).unwrap();
        }
        assert_eq!(
            &greedy, solo_tokens,
            "request {i}: scheduler vs plain greedy loop"
        );
    }
    // All together on one engine.
    let engine = Engine::spawn(model(), config).unwrap();
    let handles: Vec<RequestHandle> = (0..N)
        .map(|i| engine.submit(request(i, MAX)).unwrap())
        .collect();
    let together: Vec<Vec<u32>> = handles.into_iter().map(collect).collect();
    for i in 0..N {
        assert_eq!(together[i].len(), MAX);
        assert_eq!(
            together[i], solo[i],
            "request {i} differs from its solo run"
        );
    }
    let m = engine.metrics();
    assert_eq!(m.generated_tokens_total, (N * MAX) as u64);
    // Rows fed per batched decode step: well above 1 when the requests run together.
    let mean_batch = m.decode_rows_total as f64 / m.decode_steps_total as f64;
    assert!(
        mean_batch > 4.0,
        "mean decode batch {mean_batch:.2} ({} rows / {} steps)",
        m.decode_rows_total,
        m.decode_steps_total
    );
}
