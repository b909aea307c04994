//! The Responses API over the SQLite response store: what one router stores,
//! a new router (a restarted server, or another process) on the same file
//! continues; `store: false` stays out; DELETE and eviction reach the file.

mod common;

use std::path::Path;

use axum::Router;
use common::*;
use gptoss_server::store::{Limits, ResponseStore};
use gptoss_server::{SchedulerConfig, ServerConfig};
use serde_json::{json, Value};

const TOOL_CALL: &str = "<|channel|>analysis<|message|>Use the tool.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>";
const ANSWER: &str = "<|channel|>final<|message|>Sunny, 21 C.<|return|>";

fn tools() -> Value {
    json!([{"type": "function", "name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])
}

/// A fresh server (its own engine and connection) on the store file.
fn server(script: &str, path: &Path, limits: Limits) -> Router {
    let store = ResponseStore::sqlite(path, limits).expect("store opens");
    assert!(store.describe().contains(&path.display().to_string()));
    app_with(
        scripted(script),
        SchedulerConfig {
            context_tokens: 4096,
            ..SchedulerConfig::default()
        },
        ServerConfig {
            response_store: store,
            ..config()
        },
    )
    .0
}

/// POST /v1/responses, greedy (the scripted model's script is only likely,
/// not certain, at temperature 1).
async fn create(app: &Router, mut body: Value) -> Value {
    body["temperature"] = json!(0);
    let (s, r) = post_json(app, "/v1/responses", &body.to_string()).await;
    assert_eq!(s, 200, "{r}");
    r
}

async fn stored_count(app: &Router) -> u64 {
    let (s, h) = get_json(app, "/health").await;
    assert_eq!(s, 200);
    h["stored_responses"].as_u64().unwrap_or(u64::MAX)
}

fn path_of(r: &Value) -> String {
    format!("/v1/responses/{}", r["id"].as_str().unwrap_or_default())
}

#[tokio::test]
async fn a_new_server_on_the_same_file_continues_the_conversation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("responses.sqlite3");
    let first = server(TOOL_CALL, &file, Limits::default());
    let r = create(
        &first,
        json!({"model": MODEL_ID, "input": "Weather in Paris?", "tools": tools(),
               "instructions": "Use tools."}),
    )
    .await;
    let call_id = r["output"]
        .as_array()
        .and_then(|o| o.iter().find(|i| i["type"] == "function_call"))
        .and_then(|c| c["call_id"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(call_id.starts_with("call_"), "{r}");
    // A streamed response is stored the same way.
    let (s, _) = send(
        &first,
        "POST",
        "/v1/responses",
        Some(
            &json!({"model": MODEL_ID, "input": "hi", "stream": true, "temperature": 0})
                .to_string(),
        ),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(stored_count(&first).await, 2);
    drop(first);

    // "Restart": a new engine, router and connection on the same file.
    let second = server(ANSWER, &file, Limits::default());
    assert_eq!(stored_count(&second).await, 2);
    let (s, got) = get_json(&second, &path_of(&r)).await;
    assert_eq!(s, 200);
    assert_eq!(got, r, "the stored object comes back unchanged");

    // The function_call_output only resolves through the stored call ids;
    // instructions and history come from the file too.
    let r2 = create(
        &second,
        json!({"model": MODEL_ID, "previous_response_id": r["id"], "tools": tools(),
               "input": [{"type": "function_call_output", "call_id": call_id, "output": "21 C"}]}),
    )
    .await;
    assert_eq!(r2["previous_response_id"], r["id"]);
    assert_eq!(r2["instructions"], "Use tools.");
    assert_eq!(r2["output"][0]["content"][0]["text"], "Sunny, 21 C.");
    let total = |v: &Value| v["usage"]["total_tokens"].as_u64().unwrap_or(u64::MAX);
    let input = |v: &Value| v["usage"]["input_tokens"].as_u64().unwrap_or(0);
    assert!(input(&r2) > total(&r), "{} <= {}", input(&r2), total(&r));
    assert_eq!(stored_count(&second).await, 3);

    // And a third generation continues the second.
    let third = server(ANSWER, &file, Limits::default());
    let r3 = create(
        &third,
        json!({"model": MODEL_ID, "previous_response_id": r2["id"], "tools": tools(), "input": "Thanks!"}),
    )
    .await;
    assert_eq!(r3["instructions"], "Use tools.");
    // The whole conversation again, plus the answer and the new message
    // (less the closed turn's analysis, which harmony drops).
    assert!(input(&r3) > input(&r2), "{} <= {}", input(&r3), input(&r2));
}

#[tokio::test]
async fn store_false_is_not_persisted_and_delete_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("responses.sqlite3");
    let first = server(ANSWER, &file, Limits::default());
    let unstored = create(
        &first,
        json!({"model": MODEL_ID, "input": "x", "store": false}),
    )
    .await;
    assert_eq!(unstored["store"], false);
    let kept = create(&first, json!({"model": MODEL_ID, "input": "x"})).await;
    assert_eq!(stored_count(&first).await, 1);
    drop(first);

    let second = server(ANSWER, &file, Limits::default());
    let (s, v) = get_json(&second, &path_of(&unstored)).await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = post_json(
        &second,
        "/v1/responses",
        &json!({"model": MODEL_ID, "input": "y", "previous_response_id": unstored["id"]})
            .to_string(),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(v["error"]["code"], "previous_response_not_found");
    assert_eq!(v["error"]["param"], "previous_response_id");

    let (s, body) = send(&second, "DELETE", &path_of(&kept), None, &[]).await;
    assert_eq!(s, 200);
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    assert_eq!(body["deleted"], true);
    assert_eq!(body["id"], kept["id"]);
    drop(second);

    let third = server(ANSWER, &file, Limits::default());
    assert_eq!(stored_count(&third).await, 0);
    let (s, _) = get_json(&third, &path_of(&kept)).await;
    assert_eq!(s, 404);
    let (s, body) = send(&third, "DELETE", &path_of(&kept), None, &[]).await;
    assert_eq!(s, 404);
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    assert_error(&body, None);
}

#[tokio::test]
async fn two_servers_share_one_file_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("shared.sqlite3");
    let a = server(ANSWER, &file, Limits::default());
    let b = server(ANSWER, &file, Limits::default());
    let ra = create(
        &a,
        json!({"model": MODEL_ID, "input": "one", "instructions": "Be terse."}),
    )
    .await;
    let rb = create(
        &b,
        json!({"model": MODEL_ID, "input": "two", "previous_response_id": ra["id"]}),
    )
    .await;
    assert_eq!(rb["instructions"], "Be terse.");
    let (s, got) = get_json(&a, &path_of(&rb)).await;
    assert_eq!(s, 200);
    assert_eq!(got["id"], rb["id"]);
    assert_eq!(stored_count(&a).await, 2);
    assert_eq!(stored_count(&b).await, 2);
}

#[tokio::test]
async fn the_oldest_responses_are_evicted_from_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("small.sqlite3");
    let limits = Limits {
        max_responses: 2,
        max_bytes: 1 << 20,
    };
    let app = server(ANSWER, &file, limits);
    let mut made = Vec::new();
    for i in 0..3 {
        made.push(create(&app, json!({"model": MODEL_ID, "input": format!("q{i}")})).await);
    }
    assert_eq!(stored_count(&app).await, 2);
    let (s, v) = post_json(
        &app,
        "/v1/responses",
        &json!({"model": MODEL_ID, "input": "y", "previous_response_id": made[0]["id"]})
            .to_string(),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(v["error"]["code"], "previous_response_not_found");
    for r in &made[1..] {
        let (s, _) = get_json(&app, &path_of(r)).await;
        assert_eq!(s, 200);
    }

    // By size: a bound smaller than any response keeps only the newest.
    let file = dir.path().join("tiny.sqlite3");
    let app = server(
        ANSWER,
        &file,
        Limits {
            max_responses: 100,
            max_bytes: 1,
        },
    );
    let a = create(&app, json!({"model": MODEL_ID, "input": "a"})).await;
    let b = create(&app, json!({"model": MODEL_ID, "input": "b"})).await;
    assert_eq!(stored_count(&app).await, 1);
    assert_eq!(get_json(&app, &path_of(&a)).await.0, 404);
    assert_eq!(get_json(&app, &path_of(&b)).await.0, 200);
}
