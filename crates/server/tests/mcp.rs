//! MCP tools in `/v1/responses` behind a scripted model, where no MCP server
//! is needed: a server that cannot be reached (a closed loopback port) and
//! the approval round trip. The script continues past a tool message only
//! if the next round's prompt ends with exactly that message (see
//! `builtin_tools.rs`), so a final answer proves the server appended what
//! the model was meant to read. Calls that reach a real MCP server are in
//! `tests/clients/test_mcp.py` (MCP's reference SDK).

mod common;

use common::*;
use gptoss_engine::ScriptedModel;
use gptoss_harmony::{render_message, Author, Message, RenderOptions, Role};
use gptoss_server::mcp_client::{Endpoint, McpSettings, Session};
use gptoss_server::{SchedulerConfig, ServerConfig};
use serde_json::{json, Value};

fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    format!("http://127.0.0.1:{port}/mcp")
}

/// A call to `calc.add`, the tool message holding `result`, then `answer`.
fn script_through_call(args: &str, result: &str, answer: &str) -> Vec<u32> {
    let call = Message::from_role_and_content(Role::Assistant, args.to_string())
        .with_channel("commentary")
        .with_recipient("calc.add")
        .with_content_type("<|constrain|>json");
    let tool =
        Message::from_author_and_content(Author::new(Role::Tool, "calc.add"), result.to_string())
            .with_recipient("assistant")
            .with_channel("commentary");
    let options = RenderOptions::default();
    let call_tokens = render_message(&call, &options).expect("render");
    let head = tokens("<|start|>assistant");
    assert!(call_tokens.starts_with(&head));
    let mut script = call_tokens[head.len()..].to_vec();
    script.extend(render_message(&tool, &options).expect("render"));
    script.extend(tokens(&format!(
        "<|start|>assistant<|channel|>final<|message|>{answer}<|return|>"
    )));
    script
}

fn mcp_app(script: Vec<u32>) -> axum::Router {
    app_with(
        ScriptedModel::new(VOCAB, 8192, script),
        SchedulerConfig {
            context_tokens: 4096,
            ..SchedulerConfig::default()
        },
        ServerConfig {
            mcp: Some(McpSettings::default()),
            ..config()
        },
    )
    .0
}

/// The tools of server `calc`, as a client passes an earlier listing back.
fn listed(label: &str) -> Value {
    json!({"type": "mcp_list_tools", "id": "mcpl_1", "server_label": label, "tools": [
        {"name": "add", "description": "Adds.", "input_schema":
            {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}
    ]})
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_item_not_an_error() {
    let app = mcp_app(tokens("<|channel|>final<|message|>hi<|return|>"));
    let body = json!({"model": MODEL_ID, "temperature": 0, "input": "x", "tool_choice": "required",
        "tools": [{"type": "mcp", "server_label": "calc", "server_url": closed_url(), "authorization": "secret"}]});
    let (s, r) = post_json(&app, "/v1/responses", &body.to_string()).await;
    assert_eq!(s, 200, "{r}");
    let out = r["output"].as_array().cloned().unwrap_or_default();
    assert_eq!(out[0]["type"], "mcp_list_tools", "{r}");
    assert_eq!(out[0]["tools"], json!([]));
    assert!(
        out[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot reach")),
        "{r}"
    );
    assert_eq!(out[1]["content"][0]["text"], "hi");
    assert_eq!(r["tools"][0]["server_label"], "calc");
    assert!(
        !r.to_string().contains("secret"),
        "the token is not echoed: {r}"
    );
}

#[tokio::test]
async fn a_failed_call_is_read_by_the_model() {
    let url = closed_url();
    let err = Session::connect(
        Endpoint {
            url: url.parse().expect("url"),
            headers: Default::default(),
        },
        &McpSettings::default(),
    )
    .await
    .err()
    .expect("unreachable");
    let args = r#"{"a":1,"b":2}"#;
    let script = script_through_call(args, &format!("Error: {err}"), "The server is down.");
    let app = mcp_app(script);
    // The listing passed back: the server connects only for the call.
    let body = json!({"model": MODEL_ID, "temperature": 0, "input": [{"role": "user", "content": "1+2?"}, listed("calc")],
        "tools": [{"type": "mcp", "server_label": "calc", "server_url": url, "require_approval": "never"}]});
    let (s, r) = post_json(&app, "/v1/responses", &body.to_string()).await;
    assert_eq!(s, 200, "{r}");
    let out = r["output"].as_array().cloned().unwrap_or_default();
    assert_eq!(out.len(), 2, "{r}");
    let call = &out[0];
    assert_eq!(
        (
            call["type"].as_str(),
            call["name"].as_str(),
            call["arguments"].as_str()
        ),
        (Some("mcp_call"), Some("add"), Some(args))
    );
    assert_eq!(call["status"], "failed");
    assert_eq!(call["error"]["type"], "mcp_protocol_error");
    assert_eq!(call["error"]["code"], -32000);
    assert_eq!(out[1]["content"][0]["text"], "The server is down.");
    assert_eq!(r["status"], "completed");
}

#[tokio::test]
async fn approval_requests_end_the_response_and_a_refusal_is_read_by_the_model() {
    let url = closed_url();
    let args = r#"{"a":1,"b":2}"#;
    let refusal = "The user declined this call; it was not run. Reason: not now";
    let app = mcp_app(script_through_call(args, refusal, "As you wish."));
    let tools = json!([{"type": "mcp", "server_label": "calc", "server_url": url}]);
    let body = json!({"model": MODEL_ID, "temperature": 0, "input": [{"role": "user", "content": "1+2?"}, listed("calc")], "tools": tools});
    let (s, r1) = post_json(&app, "/v1/responses", &body.to_string()).await;
    assert_eq!(s, 200, "{r1}");
    let out = r1["output"].as_array().cloned().unwrap_or_default();
    assert_eq!(out.len(), 1, "{r1}");
    assert_eq!(out[0]["type"], "mcp_approval_request");
    assert_eq!(out[0]["arguments"], args);
    let request_id = out[0]["id"].as_str().unwrap_or_default();

    let unknown = json!({"model": MODEL_ID, "temperature": 0, "previous_response_id": r1["id"], "tools": tools,
        "input": [{"type": "mcp_approval_response", "approval_request_id": "mcpr_nope", "approve": true}]});
    let (s, e) = post_json(&app, "/v1/responses", &unknown.to_string()).await;
    assert_eq!(s, 400, "{e}");
    assert_error(&e, Some("input[0].approval_request_id"));

    // The listing passed back again (it was in the first input, not in an output).
    let answer = json!({"model": MODEL_ID, "temperature": 0, "previous_response_id": r1["id"], "tools": tools,
        "input": [listed("calc"), {"type": "mcp_approval_response", "approval_request_id": request_id, "approve": false, "reason": "not now"}]});
    let (s, r2) = post_json(&app, "/v1/responses", &answer.to_string()).await;
    assert_eq!(s, 200, "{r2}");
    let out = r2["output"].as_array().cloned().unwrap_or_default();
    assert_eq!(out.len(), 1, "a refusal runs nothing: {r2}");
    assert_eq!(out[0]["content"][0]["text"], "As you wish.");
}
