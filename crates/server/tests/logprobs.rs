//! `logprobs` / `top_logprobs` on Chat Completions (message and stream) and
//! on the Responses API (`include: ["message.output_text.logprobs"]`): one
//! entry per answer token, whose texts join to the answer; alternatives
//! most likely first; reasoning tokens have none.

mod common;

use common::*;
use serde_json::{json, Value};

const THINK_THEN_ANSWER: &str = "<|channel|>analysis<|message|>Add them.<|end|><|start|>assistant<|channel|>final<|message|>The answer is 4.<|return|>";

fn tokens_text(entries: &[Value]) -> String {
    entries.iter().filter_map(|e| e["token"].as_str()).collect()
}

fn check_entries(entries: &[Value], top: usize) {
    assert!(!entries.is_empty());
    for e in entries {
        let lp = e["logprob"].as_f64().unwrap_or(1.0);
        assert!(lp <= 0.0, "{e}");
        let alts = e["top_logprobs"].as_array().cloned().unwrap_or_default();
        assert_eq!(alts.len(), top, "{e}");
        // Greedy: the chosen token is the most likely one.
        if top > 0 {
            assert_eq!(alts[0]["token"], e["token"], "{e}");
            assert!((alts[0]["logprob"].as_f64().unwrap_or(0.0) - lp).abs() < 1e-6);
            for pair in alts.windows(2) {
                assert!(pair[0]["logprob"].as_f64() >= pair[1]["logprob"].as_f64());
            }
        }
        let bytes: Vec<u8> = e["bytes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b.as_u64().map(|b| b as u8))
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            e["token"].as_str().unwrap_or("")
        );
    }
}

#[tokio::test]
async fn chat_logprobs_cover_the_answer_tokens() {
    let (app, _) = app(THINK_THEN_ANSWER);
    let body = json!({"model": MODEL_ID, "messages": [{"role": "user", "content": "2+2?"}],
        "temperature": 0, "logprobs": true, "top_logprobs": 3});
    let (s, r) = post_json(&app, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(s, 200, "{r}");
    let content = r["choices"][0]["message"]["content"].as_str().unwrap_or("");
    assert_eq!(content, "The answer is 4.");
    let entries = r["choices"][0]["logprobs"]["content"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    check_entries(&entries, 3);
    assert_eq!(
        tokens_text(&entries),
        content,
        "reasoning tokens must have none"
    );

    // Streamed: the chunks' logprobs join to the same answer.
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let (s, raw) = send(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(&sbody.to_string()),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let mut streamed = Vec::new();
    for (_, data) in sse_frames(&raw) {
        if let Ok(v) = serde_json::from_str::<Value>(&data) {
            if let Some(list) = v["choices"][0]["logprobs"]["content"].as_array() {
                streamed.extend(list.iter().cloned());
            }
        }
    }
    assert_eq!(tokens_text(&streamed), content);

    // Without `logprobs`, none.
    let plain = json!({"model": MODEL_ID, "messages": [{"role": "user", "content": "2+2?"}], "temperature": 0});
    let (_, r) = post_json(&app, "/v1/chat/completions", &plain.to_string()).await;
    assert!(r["choices"][0]["logprobs"].is_null(), "{r}");
}

#[tokio::test]
async fn responses_logprobs_when_included() {
    let (app, _) = app(THINK_THEN_ANSWER);
    let body = json!({"model": MODEL_ID, "input": "2+2?", "temperature": 0,
        "include": ["message.output_text.logprobs"], "top_logprobs": 2});
    let (s, r) = post_json(&app, "/v1/responses", &body.to_string()).await;
    assert_eq!(s, 200, "{r}");
    let part = &r["output"][1]["content"][0];
    let entries = part["logprobs"].as_array().cloned().unwrap_or_default();
    check_entries(&entries, 2);
    assert_eq!(tokens_text(&entries), part["text"].as_str().unwrap_or("-"));

    // Streamed: every output_text.delta carries the log probabilities of its
    // own tokens (their texts join to the delta), the done event all of them.
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let (s, raw) = send(&app, "POST", "/v1/responses", Some(&sbody.to_string()), &[]).await;
    assert_eq!(s, 200);
    let mut deltas = 0;
    let mut streamed = Vec::new();
    let mut done = Vec::new();
    for (_, data) in sse_frames(&raw) {
        let Ok(v) = serde_json::from_str::<Value>(&data) else {
            continue;
        };
        match v["type"].as_str() {
            Some("response.output_text.delta") => {
                deltas += 1;
                let list = v["logprobs"].as_array().cloned().unwrap_or_default();
                assert!(!list.is_empty(), "{v}");
                assert_eq!(tokens_text(&list), v["delta"].as_str().unwrap_or("-"));
                check_entries(&list, 2);
                streamed.extend(list);
            }
            Some("response.output_text.done") => {
                done = v["logprobs"].as_array().cloned().unwrap_or_default();
            }
            _ => {}
        }
    }
    assert!(deltas > 1, "{deltas}");
    assert_eq!(streamed, done);
    assert_eq!(tokens_text(&streamed), part["text"].as_str().unwrap_or("-"));
}

#[tokio::test]
async fn bad_logprob_settings_are_400s() {
    let (app, _) = app(THINK_THEN_ANSWER);
    for (path, body, param) in [
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21}),
            "top_logprobs",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}),
            "top_logprobs",
        ),
        (
            "/v1/responses",
            json!({"input": "x", "top_logprobs": 50}),
            "top_logprobs",
        ),
    ] {
        let (s, r) = post_json(&app, path, &body.to_string()).await;
        assert_eq!(s, 400, "{r}");
        assert_error(&r, Some(param));
    }
}
