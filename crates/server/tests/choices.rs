//! `n > 1` on Chat Completions: n choices of one prompt, each a complete
//! answer with its own index (stream and not), usage counting the prompt once,
//! and the prompt prefilled once (the other choices start from a copy).

mod common;

use common::*;
use gptoss_server::SchedulerConfig;
use serde_json::{json, Value};

const ANSWER: &str = "<|channel|>final<|message|>Four.<|return|>";

#[tokio::test]
async fn n_choices_each_complete() {
    let (app, _) = app(ANSWER);
    let one = json!({"model": MODEL_ID, "messages": [{"role": "user", "content": "2+2?"}], "temperature": 0});
    let (_, single) = post_json(&app, "/v1/chat/completions", &one.to_string()).await;
    let mut body = one.clone();
    body["n"] = json!(3);
    let (s, r) = post_json(&app, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(s, 200, "{r}");
    let choices = r["choices"].as_array().cloned().unwrap_or_default();
    assert_eq!(choices.len(), 3, "{r}");
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["message"]["content"], "Four.");
        assert_eq!(c["finish_reason"], "stop");
    }
    let tokens = |v: &Value, k: &str| v["usage"][k].as_u64().unwrap_or(0);
    assert_eq!(
        tokens(&r, "prompt_tokens"),
        tokens(&single, "prompt_tokens")
    );
    assert_eq!(
        tokens(&r, "completion_tokens"),
        3 * tokens(&single, "completion_tokens")
    );

    // Streamed: every index gets its text and one finish; one [DONE] at the end.
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (s, raw) = send(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(&body.to_string()),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let frames = sse_frames(&raw);
    assert_eq!(frames.last().map(|(_, d)| d.as_str()), Some("[DONE]"));
    let mut text = vec![String::new(); 3];
    let mut finishes = vec![0; 3];
    let mut usage = Value::Null;
    for (_, data) in &frames {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        if !v["usage"].is_null() {
            usage = v["usage"].clone();
        }
        for c in v["choices"].as_array().into_iter().flatten() {
            let i = c["index"].as_u64().unwrap_or(99) as usize;
            text[i].push_str(c["delta"]["content"].as_str().unwrap_or(""));
            if c["finish_reason"].is_string() {
                finishes[i] += 1;
            }
        }
    }
    assert_eq!(text, vec!["Four."; 3]);
    assert_eq!(finishes, vec![1; 3]);
    assert_eq!(usage["completion_tokens"], r["usage"]["completion_tokens"]);
}

#[tokio::test]
async fn n_out_of_range_is_a_400() {
    let (app, _) = app(ANSWER);
    for n in [0, 9] {
        let body = json!({"messages": [{"role": "user", "content": "x"}], "n": n});
        let (s, r) = post_json(&app, "/v1/chat/completions", &body.to_string()).await;
        assert_eq!(s, 400, "{r}");
        assert_error(&r, Some("n"));
    }
}

/// The prompt is prefilled once: choice 0 prefills all but its last token,
/// the other choices start from that (a copy of its cache while it runs).
/// The model sleeps 30 ms per forward so the three requests are in flight
/// together whatever the machine's speed.
#[tokio::test]
async fn n_choices_share_one_prefill() {
    let model = SlowModel {
        inner: scripted(ANSWER),
        delay: std::time::Duration::from_millis(30),
    };
    let (app, engine) = app_with(
        model,
        SchedulerConfig {
            context_tokens: 4096,
            ..SchedulerConfig::default()
        },
        config(),
    );
    let body = json!({
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": "What is two plus two, written as a word?"}],
        "n": 3,
        "temperature": 0,
    });
    let (s, r) = post_json(&app, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["choices"].as_array().map(Vec::len), Some(3), "{r}");
    let prompt = r["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
    assert!(prompt > 20, "{r}");
    let m = engine.metrics();
    assert_eq!(m.copied_tokens_total, 2 * (prompt - 1), "{m:?}");
    assert_eq!(m.reused_tokens_total, 2 * (prompt - 1), "{m:?}");
    assert_eq!(m.prompt_tokens_total, 3 * prompt, "{m:?}");

    // On a model too fast for the requests to overlap, a later choice reuses
    // the finished first one's slot instead: still one prefill.
    let (app, engine) = common::app(ANSWER);
    let (s, r) = post_json(&app, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(s, 200, "{r}");
    let prompt = r["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
    let m = engine.metrics();
    assert_eq!(m.reused_tokens_total, 2 * (prompt - 1), "{m:?}");
}
