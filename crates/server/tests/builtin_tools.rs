//! Built-in tools run server-side in `/v1/responses`, with the real tools
//! (a web browser pointed at a closed loopback port, the python sandbox)
//! behind a scripted model. The script continues past the tool result only
//! if the prompt of the next round holds exactly the tool's message (the
//! scripted model plays its script from the longest prefix the history ends
//! with), so a final answer proves the result was appended and the
//! generation continued.

mod common;

use std::sync::Arc;

use common::*;
use gptoss_harmony::{render_message, Message, RenderOptions, Role};
use gptoss_server::{SchedulerConfig, ServerConfig};
use gptoss_tools::browser::web::{WebBackend, WebConfig};
use gptoss_tools::browser::{Backend, BrowserConfig, BrowserTool};
use gptoss_tools::python::{PythonConfig, PythonTool};
use gptoss_tools::{Tool, ToolKit};
use serde_json::{json, Value};

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn web_kit(search_url: String) -> ToolKit {
    let mut kit = ToolKit::new();
    kit.add(
        "browser",
        Arc::new(move || {
            let backend: Box<dyn Backend> = Box::new(WebBackend::new(WebConfig {
                search_url: Some(search_url.clone()),
                ..WebConfig::default()
            })?);
            Ok(Box::new(BrowserTool::new(backend, BrowserConfig::default())) as Box<dyn Tool>)
        }),
    );
    kit
}

/// The script: a call to `recipient` (as harmony renders it, after
/// `<|start|>assistant`), the tool message the server must append, then a
/// final answer.
fn script_through_tool(
    recipient: &str,
    content_type: Option<&str>,
    arguments: &str,
    kit: &ToolKit,
    answer: &str,
) -> Vec<u32> {
    let mut call = Message::from_role_and_content(Role::Assistant, arguments.to_string())
        .with_channel("analysis")
        .with_recipient(recipient);
    if let Some(ct) = content_type {
        call = call.with_content_type(ct);
    }
    // Tools block (the web backend's HTTP client owns a runtime): run them on a
    // plain thread, as the server does with spawn_blocking.
    let output = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut registry = kit.registry(|_| true).expect("tools start");
                registry.call(recipient, arguments)
            })
            .join()
            .expect("tool thread")
    });
    let tool = output.to_message(Some("analysis"));
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

fn app_with_kit(script: Vec<u32>, kit: ToolKit) -> axum::Router {
    app_with(
        ScriptedModel::new(VOCAB, 8192, script),
        SchedulerConfig {
            context_tokens: 4096,
            ..SchedulerConfig::default()
        },
        ServerConfig {
            tools: kit,
            ..config()
        },
    )
    .0
}

use gptoss_engine::ScriptedModel;

#[tokio::test]
async fn offline_web_search_becomes_an_error_the_model_reads() {
    let port = closed_port();
    let kit = web_kit(format!("http://127.0.0.1:{port}/search"));
    let args = r#"{"query":"volcanoes"}"#;
    let script = script_through_tool(
        "browser.search",
        Some("<|constrain|>json"),
        args,
        &kit,
        "The search service is unreachable.",
    );
    let app = app_with_kit(script, kit);
    let body = json!({"model": MODEL_ID, "input": "Find volcanoes.", "temperature": 0, "tools": [{"type": "browser_search"}]});
    let (s, r) = post_json(&app, "/v1/responses", &body.to_string()).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "completed", "{r}");
    let out = r["output"].as_array().cloned().unwrap_or_default();
    assert_eq!(out.len(), 2, "{r}");
    assert_eq!(out[0]["type"], "web_search_call");
    assert_eq!(
        out[0]["action"],
        json!({"type": "search", "query": "volcanoes"})
    );
    assert_eq!(out[0]["status"], "incomplete", "the search failed: {r}");
    assert_eq!(out[1]["type"], "message");
    assert_eq!(
        out[1]["content"][0]["text"],
        "The search service is unreachable."
    );
    assert!(r["tools"]
        .as_array()
        .is_some_and(|t| t.contains(&json!({"type": "browser_search"}))));

    // Streamed: the web_search_call events, then the answer.
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let (s, raw) = send(&app, "POST", "/v1/responses", Some(&sbody.to_string()), &[]).await;
    assert_eq!(s, 200);
    let events: Vec<Value> = sse_frames(&raw)
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap_or_default())
        .collect();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default())
        .collect();
    let pos = |t: &str| {
        types
            .iter()
            .position(|x| *x == t)
            .unwrap_or_else(|| panic!("no {t} in {types:?}"))
    };
    assert!(
        pos("response.web_search_call.in_progress") < pos("response.web_search_call.searching")
    );
    assert!(pos("response.web_search_call.searching") < pos("response.web_search_call.completed"));
    assert!(pos("response.web_search_call.completed") < pos("response.output_text.done"));
    assert_eq!(types.last(), Some(&"response.completed"));
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64);
    }
    let done = events.last().cloned().unwrap_or_default();
    assert_eq!(done["response"]["output"][0]["type"], "web_search_call");
    assert_eq!(
        done["response"]["output"][1]["content"][0]["text"],
        "The search service is unreachable."
    );
}

/// A hosted tool the server does not run is left out of the prompt and
/// the response's tools, with a warning header naming the flag: never a 400
/// (Codex sends `web_search` by default).
#[tokio::test]
async fn hosted_tools_the_server_does_not_run_are_left_out_with_a_warning() {
    let app = app_with_kit(
        tokens("<|channel|>final<|message|>hi<|return|>"),
        ToolKit::new(),
    );
    for (kind, hint) in [
        ("code_interpreter", "--python on"),
        ("web_search", "--browser"),
        ("browser_search", "--browser"),
        ("handoff", "--handoff on"),
        ("image_generation", "does not run"),
        ("file_search", "does not run"),
        ("mcp", "does not run"),
    ] {
        let body = json!({"model": MODEL_ID, "input": "x", "temperature": 0, "tools": [{"type": kind}, {"type": "function", "name": "f"}]});
        let (s, headers, r) = post_with_headers(&app, "/v1/responses", &body.to_string()).await;
        assert_eq!(s, 200, "{kind}: {r}");
        let warning = headers
            .get("x-gpt-oss-warning")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            warning.contains(kind) && warning.contains(hint),
            "{kind}: {warning:?}"
        );
        assert_eq!(
            r["tools"],
            json!([{"type": "function", "name": "f"}]),
            "{kind}"
        );
        assert_eq!(r["output"][0]["content"][0]["text"], "hi");
    }
}

#[tokio::test]
async fn code_interpreter_runs_in_the_sandbox() {
    let bwrap = std::process::Command::new("bwrap")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !bwrap {
        eprintln!("SKIPPED: bubblewrap (bwrap) is not installed; .ci/run installs it");
        return;
    }
    let mut kit = ToolKit::new();
    kit.add(
        "python",
        Arc::new(|| Ok(Box::new(PythonTool::new(PythonConfig::default())?) as Box<dyn Tool>)),
    );
    let code = "print(6 * 7)";
    let script = script_through_tool("python", Some("code"), code, &kit, "6 * 7 = 42");
    let app = app_with_kit(script, kit);
    let body = json!({"model": MODEL_ID, "input": "What is 6 * 7?", "temperature": 0, "tools": [{"type": "code_interpreter"}]});
    let (s, r) = post_json(&app, "/v1/responses", &body.to_string()).await;
    assert_eq!(s, 200, "{r}");
    let out = r["output"].as_array().cloned().unwrap_or_default();
    assert_eq!(out.len(), 2, "{r}");
    assert_eq!(out[0]["type"], "code_interpreter_call");
    assert_eq!(out[0]["code"], code);
    assert_eq!(out[0]["status"], "completed");
    assert_eq!(out[0]["outputs"], json!([{"type": "logs", "logs": "42\n"}]));
    assert_eq!(out[1]["content"][0]["text"], "6 * 7 = 42");
    // Both rounds are billed.
    let usage = &r["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap_or(0) > 0);
}
