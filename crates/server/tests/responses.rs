//! In-process tests of `/v1/responses`: output items, the streamed event
//! sequence (and that it builds the same output as the non-streamed call),
//! function calls with `function_call_output`, `previous_response_id`, errors.

mod common;

use common::*;
use serde_json::{json, Value};

const THINK_THEN_ANSWER: &str =
    "<|channel|>analysis<|message|>Think first.<|end|><|start|>assistant<|channel|>final<|message|>The answer is 4.<|return|>";
const TOOL_CALL: &str = "<|channel|>analysis<|message|>Use the tool.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>";

fn tools() -> Value {
    json!([{"type": "function", "name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])
}

fn strip_ids(v: &Value) -> Value {
    // Item ids are random per request; compare everything else.
    let mut v = v.clone();
    if let Some(items) = v.as_array_mut() {
        for item in items {
            if let Some(o) = item.as_object_mut() {
                o.remove("id");
                o.remove("call_id");
            }
        }
    }
    v
}

#[tokio::test]
async fn output_items_and_stream_sequence_agree() {
    let (app, _) = app(THINK_THEN_ANSWER);
    let body = json!({"model": MODEL_ID, "input": "What is 2+2?", "temperature": 0, "reasoning": {"effort": "high"}});
    let (s, r) = post_json(&app, "/v1/responses", &body.to_string()).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["object"], "response");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["reasoning"]["effort"], "high");
    let out = r["output"].as_array().cloned().unwrap_or_default();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0]["type"], "reasoning");
    assert_eq!(out[0]["content"][0]["type"], "reasoning_text");
    assert_eq!(out[0]["content"][0]["text"], "Think first.");
    assert_eq!(out[1]["type"], "message");
    assert_eq!(out[1]["content"][0]["type"], "output_text");
    assert_eq!(out[1]["content"][0]["text"], "The answer is 4.");
    assert!(
        r["usage"]["output_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );

    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let (s, raw) = send(&app, "POST", "/v1/responses", Some(&sbody.to_string()), &[]).await;
    assert_eq!(s, 200);
    let frames = sse_frames(&raw);
    let events: Vec<Value> = frames
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap_or_default())
        .collect();
    for ((name, _), e) in frames.iter().zip(&events) {
        assert_eq!(
            name,
            e["type"].as_str().unwrap_or_default(),
            "event: line matches the type"
        );
    }
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        dedup_deltas(&types),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.reasoning_text.delta",
            "response.reasoning_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"].as_u64(), Some(i as u64));
    }
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(text, "The answer is 4.");
    let last = events.last().cloned().unwrap_or_default();
    assert_eq!(
        strip_ids(&last["response"]["output"]),
        strip_ids(&r["output"])
    );
    assert_eq!(
        last["response"]["usage"]["output_tokens"],
        r["usage"]["output_tokens"]
    );
    assert_eq!(
        last["response"]["usage"]["output_tokens_details"],
        r["usage"]["output_tokens_details"]
    );
}

/// Collapse runs of the same delta type (their number depends on tokenization).
fn dedup_deltas<'a>(types: &[&'a str]) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for t in types {
        if t.ends_with(".delta") && out.last() == Some(t) {
            continue;
        }
        out.push(t);
    }
    out
}

#[tokio::test]
async fn function_call_and_previous_response_id() {
    let (app, _) = app(TOOL_CALL);
    let body = json!({"model": MODEL_ID, "input": "Weather in Paris?", "tools": tools(), "temperature": 0,
        "instructions": "Use tools."});
    let (s, r) = post_json(&app, "/v1/responses", &body.to_string()).await;
    assert_eq!(s, 200, "{r}");
    let call = r["output"]
        .as_array()
        .and_then(|o| o.iter().find(|i| i["type"] == "function_call"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(call["status"], "completed");
    let call_id = call["call_id"].as_str().unwrap_or_default().to_string();
    assert!(call_id.starts_with("call_"));

    // Continue with the function's output; instructions are inherited.
    let follow = json!({"model": MODEL_ID, "previous_response_id": r["id"], "tools": tools(), "temperature": 0,
        "input": [{"type": "function_call_output", "call_id": call_id, "output": "21 C"}]});
    let (s, r2) = post_json(&app, "/v1/responses", &follow.to_string()).await;
    assert_eq!(s, 200, "{r2}");
    assert_eq!(r2["instructions"], "Use tools.");
    assert_eq!(r2["previous_response_id"], r["id"]);
    assert!(r2["usage"]["input_tokens"].as_u64() > r["usage"]["input_tokens"].as_u64());
    // The current turn's analysis stays in the prompt across the call: the
    // prompt of the follow-up is a continuation of the first prompt.
    assert!(
        r2["usage"]["input_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0)
            >= r["usage"]["input_tokens"].as_u64().unwrap_or(0) - 1
    );

    let (s, got) = get_json(
        &app,
        &format!("/v1/responses/{}", r["id"].as_str().unwrap_or_default()),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(got["id"], r["id"]);

    // Errors: unknown previous id, unknown call id, bad effort, bad item.
    let cases = [
        (
            json!({"model": MODEL_ID, "input": "x", "previous_response_id": "resp_nope"}),
            404,
            Some("previous_response_id"),
        ),
        (
            json!({"model": MODEL_ID, "input": [{"type": "function_call_output", "call_id": "nope", "output": "x"}]}),
            400,
            Some("input[0].call_id"),
        ),
        (
            json!({"model": MODEL_ID, "input": "x", "reasoning": {"effort": "max"}}),
            400,
            Some("reasoning.effort"),
        ),
        (
            json!({"model": MODEL_ID, "input": [{"type": "image", "url": "x"}]}),
            400,
            Some("input[0].type"),
        ),
        (json!({"model": MODEL_ID, "input": 5}), 400, Some("input")),
        (
            json!({"model": MODEL_ID, "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}),
            400,
            Some("input[0].content[0].type"),
        ),
        (
            json!({"model": MODEL_ID, "input": [{"role": "user", "content": [{"type": "input_text", "text": 7}]}]}),
            400,
            Some("input[0].content[0].text"),
        ),
        (json!({"model": MODEL_ID}), 400, Some("input")),
        (json!({"model": "other", "input": "x"}), 404, Some("model")),
    ];
    for (body, status, param) in cases {
        let (s, v) = post_json(&app, "/v1/responses", &body.to_string()).await;
        assert_eq!(s.as_u16(), status, "{body} -> {v}");
        assert_error(&v, param);
    }
}

#[tokio::test]
async fn store_false_is_not_kept_and_delete_works() {
    let (app, _) = app(THINK_THEN_ANSWER);
    let (_, r) = post_json(
        &app,
        "/v1/responses",
        &json!({"model": MODEL_ID, "input": "x", "store": false, "temperature": 0}).to_string(),
    )
    .await;
    let (s, _) = get_json(
        &app,
        &format!("/v1/responses/{}", r["id"].as_str().unwrap_or_default()),
    )
    .await;
    assert_eq!(s, 404);
    let (_, r) = post_json(
        &app,
        "/v1/responses",
        &json!({"model": MODEL_ID, "input": "x", "temperature": 0}).to_string(),
    )
    .await;
    let path = format!("/v1/responses/{}", r["id"].as_str().unwrap_or_default());
    let (s, _) = send(&app, "DELETE", &path, None, &[]).await;
    assert_eq!(s, 200);
    let (s, _) = get_json(&app, &path).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn max_output_tokens_gives_incomplete() {
    let (app, _) = app(THINK_THEN_ANSWER);
    let body = json!({"model": MODEL_ID, "input": "x", "max_output_tokens": 4, "temperature": 0});
    let (_, r) = post_json(&app, "/v1/responses", &body.to_string()).await;
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let (_, raw) = send(&app, "POST", "/v1/responses", Some(&sbody.to_string()), &[]).await;
    let frames = sse_frames(&raw);
    assert_eq!(
        frames.last().map(|f| f.0.as_str()),
        Some("response.incomplete")
    );
}
