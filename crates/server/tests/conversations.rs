//! The Conversations API over the SQLite store: items in, listed, deleted;
//! responses that read and extend a conversation; a new router on the same
//! file (a restarted server) still has it; errors in OpenAI's shape.

mod common;

use std::path::Path;

use axum::Router;
use common::*;
use gptoss_server::store::{Limits, ResponseStore};
use gptoss_server::{SchedulerConfig, ServerConfig};
use serde_json::{json, Value};

const ANSWER: &str = "<|channel|>final<|message|>Sunny, 21 C.<|return|>";

fn server(path: &Path) -> Router {
    let store = ResponseStore::sqlite(path, Limits::default()).expect("store opens");
    app_with(
        scripted(ANSWER),
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

async fn ok(app: &Router, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string());
    let (s, bytes) = send(app, method, path, body.as_deref(), &[]).await;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert_eq!(s, 200, "{method} {path}: {v}");
    v
}

async fn err(app: &Router, method: &str, path: &str, body: Option<Value>, status: u16) -> Value {
    let body = body.map(|b| b.to_string());
    let (s, bytes) = send(app, method, path, body.as_deref(), &[]).await;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert_eq!(s.as_u16(), status, "{method} {path}: {v}");
    assert_error(&v, None);
    v
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|i| i["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn texts(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|i| {
                    i["content"][0]["text"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn items_are_added_listed_and_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = server(&dir.path().join("store.sqlite3"));
    let conv = ok(
        &app,
        "POST",
        "/v1/conversations",
        Some(json!({"items": [{"role": "user", "content": "one"},
                               {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "two"}]}],
                    "metadata": {"topic": "demo"}})),
    )
    .await;
    let id = conv["id"].as_str().unwrap_or_default().to_string();
    assert!(id.starts_with("conv_"), "{conv}");
    assert_eq!(conv["object"], "conversation");
    assert_eq!(conv["metadata"], json!({"topic": "demo"}));
    assert!(conv["created_at"]
        .as_u64()
        .is_some_and(|t| t > 1_600_000_000));
    let base = format!("/v1/conversations/{id}");
    assert_eq!(ok(&app, "GET", &base, None).await, conv);

    let added = ok(
        &app,
        "POST",
        &format!("{base}/items"),
        Some(json!({"items": [{"role": "user", "content": "three"}, {"role": "user", "content": "four"}]})),
    )
    .await;
    assert_eq!(added["object"], "list");
    assert_eq!(texts(&added), ["three", "four"]);
    assert_eq!(added["has_more"], false);

    // Default order: newest first.
    let all = ok(&app, "GET", &format!("{base}/items"), None).await;
    assert_eq!(texts(&all), ["four", "three", "two", "one"]);
    let asc = ok(
        &app,
        "GET",
        &format!("{base}/items?order=asc&limit=3"),
        None,
    )
    .await;
    assert_eq!(texts(&asc), ["one", "two", "three"]);
    assert_eq!(asc["has_more"], true);
    let item_ids = ids(&asc);
    assert_eq!(asc["first_id"], item_ids[0].as_str());
    assert_eq!(asc["last_id"], item_ids[2].as_str());
    assert!(item_ids.iter().all(|i| i.starts_with("msg_")), "{asc}");
    let first = &asc["data"][0];
    assert_eq!(first["type"], "message");
    assert_eq!(first["status"], "completed");
    assert_eq!(first["content"][0]["type"], "input_text");
    let page2 = ok(
        &app,
        "GET",
        &format!("{base}/items?order=asc&limit=3&after={}", item_ids[2]),
        None,
    )
    .await;
    assert_eq!(texts(&page2), ["four"]);
    assert_eq!(page2["has_more"], false);

    // One item, then deleted: the conversation comes back.
    let two = ok(&app, "GET", &format!("{base}/items/{}", item_ids[1]), None).await;
    assert_eq!(two["content"][0]["text"], "two");
    let after_delete = ok(
        &app,
        "DELETE",
        &format!("{base}/items/{}", item_ids[1]),
        None,
    )
    .await;
    assert_eq!(after_delete["id"], id.as_str());
    assert_eq!(after_delete["object"], "conversation");
    err(
        &app,
        "GET",
        &format!("{base}/items/{}", item_ids[1]),
        None,
        404,
    )
    .await;
    let all = ok(&app, "GET", &format!("{base}/items?order=asc"), None).await;
    assert_eq!(texts(&all), ["one", "three", "four"]);

    // Metadata update, then delete.
    let updated = ok(
        &app,
        "POST",
        &base,
        Some(json!({"metadata": {"topic": "new"}})),
    )
    .await;
    assert_eq!(updated["metadata"], json!({"topic": "new"}));
    assert_eq!(
        ok(&app, "GET", &base, None).await["metadata"]["topic"],
        "new"
    );
    let deleted = ok(&app, "DELETE", &base, None).await;
    assert_eq!(
        deleted,
        json!({"id": id, "object": "conversation.deleted", "deleted": true})
    );
    err(&app, "GET", &base, None, 404).await;
    err(&app, "GET", &format!("{base}/items"), None, 404).await;
    err(&app, "DELETE", &base, None, 404).await;
}

#[tokio::test]
async fn responses_extend_the_conversation_and_it_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("store.sqlite3");
    let app = server(&file);
    let conv = ok(
        &app,
        "POST",
        "/v1/conversations",
        Some(json!({"items": [{"role": "user", "content": "I live in Paris."}]})),
    )
    .await;
    let id = conv["id"].as_str().unwrap_or_default().to_string();
    let items_path = format!("/v1/conversations/{id}/items?order=asc&limit=100");

    let r1 = ok(
        &app,
        "POST",
        "/v1/responses",
        Some(json!({"model": MODEL_ID, "input": "Weather?", "conversation": id, "temperature": 0})),
    )
    .await;
    assert_eq!(r1["status"], "completed", "{r1}");
    assert_eq!(r1["conversation"]["id"], id.as_str());
    let items = ok(&app, "GET", &items_path, None).await;
    let data = items["data"].as_array().cloned().unwrap_or_default();
    // The first item, the input as a user message, then the response's output items.
    let outputs = r1["output"].as_array().cloned().unwrap_or_default();
    assert_eq!(data.len(), 2 + outputs.len(), "{items}");
    assert_eq!(data[1]["role"], "user");
    assert_eq!(data[1]["content"][0]["text"], "Weather?");
    for (stored, out) in data[2..].iter().zip(&outputs) {
        assert_eq!(stored["id"], out["id"], "{items}");
        assert_eq!(stored["type"], out["type"]);
    }
    assert!(data
        .iter()
        .any(|i| i["role"] == "assistant" && i["content"][0]["text"] == "Sunny, 21 C."));

    // The next response sees the whole conversation: more input tokens
    // than the same input alone.
    let r2 = ok(
        &app,
        "POST",
        "/v1/responses",
        Some(json!({"model": MODEL_ID, "input": "Weather?", "conversation": {"id": id}, "temperature": 0})),
    )
    .await;
    let alone = ok(
        &app,
        "POST",
        "/v1/responses",
        Some(json!({"model": MODEL_ID, "input": "Weather?", "temperature": 0})),
    )
    .await;
    let tokens = |r: &Value| r["usage"]["input_tokens"].as_u64().unwrap_or(0);
    assert!(
        tokens(&r2) > tokens(&r1),
        "{} vs {}",
        tokens(&r2),
        tokens(&r1)
    );
    assert!(
        tokens(&r1) > tokens(&alone),
        "{} vs {}",
        tokens(&r1),
        tokens(&alone)
    );
    assert!(alone["conversation"].is_null());

    // Streaming extends it too.
    let (s, _) = send(
        &app,
        "POST",
        "/v1/responses",
        Some(
            &json!({"model": MODEL_ID, "input": [{"role": "user", "content": "And tomorrow?"}],
                    "conversation": id, "stream": true, "temperature": 0})
            .to_string(),
        ),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let before_restart = ok(&app, "GET", &items_path, None).await;
    assert!(texts(&before_restart).iter().any(|t| t == "And tomorrow?"));

    // A new server on the same file has it all.
    drop(app);
    let again = server(&file);
    assert_eq!(
        ok(&again, "GET", &format!("/v1/conversations/{id}"), None).await,
        conv
    );
    assert_eq!(ok(&again, "GET", &items_path, None).await, before_restart);
    let r3 = ok(
        &again,
        "POST",
        "/v1/responses",
        Some(json!({"model": MODEL_ID, "input": "Thanks.", "conversation": id, "temperature": 0})),
    )
    .await;
    assert!(tokens(&r3) > tokens(&r2));
}

#[tokio::test]
async fn errors_are_openai_shaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = server(&dir.path().join("store.sqlite3"));
    let conv = ok(&app, "POST", "/v1/conversations", Some(json!({}))).await;
    let id = conv["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(conv["metadata"], json!({}));
    let base = format!("/v1/conversations/{id}");

    // Unknown conversation in /v1/responses: 404 naming the parameter.
    let e = err(
        &app,
        "POST",
        "/v1/responses",
        Some(json!({"input": "hi", "conversation": "conv_nope"})),
        404,
    )
    .await;
    assert_eq!(e["error"]["param"], "conversation");
    // With previous_response_id: 400.
    let r = ok(&app, "POST", "/v1/responses", Some(json!({"input": "hi"}))).await;
    let e = err(
        &app,
        "POST",
        "/v1/responses",
        Some(json!({"input": "hi", "conversation": id, "previous_response_id": r["id"]})),
        400,
    )
    .await;
    assert_eq!(e["error"]["param"], "conversation");
    err(
        &app,
        "POST",
        "/v1/responses",
        Some(json!({"input": "hi", "conversation": 5})),
        400,
    )
    .await;
    // A rejected request leaves the conversation as it was.
    assert!(ids(&ok(&app, "GET", &format!("{base}/items"), None).await).is_empty());

    // Bad items: named, nothing added.
    let e = err(
        &app,
        "POST",
        &format!("{base}/items"),
        Some(json!({"items": [{"role": "user", "content": "ok"}, {"role": "wizard", "content": "x"}]})),
        400,
    )
    .await;
    assert_eq!(e["error"]["param"], "items[1].role");
    let e = err(
        &app,
        "POST",
        &format!("{base}/items"),
        Some(json!({"items": [{"type": "function_call_output", "call_id": "call_x", "output": "1"}]})),
        400,
    )
    .await;
    assert_eq!(e["error"]["param"], "items[0].call_id");
    assert!(ids(&ok(&app, "GET", &format!("{base}/items"), None).await).is_empty());
    // A tool output answering a call already in the conversation is fine.
    ok(
        &app,
        "POST",
        &format!("{base}/items"),
        Some(json!({"items": [{"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}]})),
    )
    .await;
    ok(
        &app,
        "POST",
        &format!("{base}/items"),
        Some(json!({"items": [{"type": "function_call_output", "call_id": "call_1", "output": "42"}]})),
    )
    .await;
    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"role": "user", "content": format!("{i}")}))
        .collect();
    err(
        &app,
        "POST",
        &format!("{base}/items"),
        Some(json!({"items": too_many})),
        400,
    )
    .await;
    err(
        &app,
        "POST",
        &format!("{base}/items"),
        Some(json!({"items": []})),
        400,
    )
    .await;
    err(
        &app,
        "POST",
        &format!("{base}/items"),
        Some(json!({"items": "x"})),
        400,
    )
    .await;
    err(
        &app,
        "POST",
        "/v1/conversations/conv_nope/items",
        Some(json!({"items": [{"role": "user", "content": "x"}]})),
        404,
    )
    .await;

    // List parameters.
    for q in ["limit=0", "limit=101", "limit=x", "order=sideways"] {
        err(&app, "GET", &format!("{base}/items?{q}"), None, 400).await;
    }
    // Metadata rules.
    err(
        &app,
        "POST",
        "/v1/conversations",
        Some(json!({"metadata": {"n": 1}})),
        400,
    )
    .await;
    err(&app, "POST", &base, Some(json!({"metadata": "x"})), 400).await;
    err(
        &app,
        "POST",
        "/v1/conversations/conv_nope",
        Some(json!({"metadata": {}})),
        404,
    )
    .await;
    err(&app, "POST", "/v1/conversations", Some(json!([1])), 400).await;
    err(&app, "DELETE", &format!("{base}/items/msg_nope"), None, 404).await;
    err(
        &app,
        "GET",
        "/v1/conversations/conv_nope/items/msg_nope",
        None,
        404,
    )
    .await;
}
