//! Built-in tools run by the server in `/v1/responses`, as OpenAI's reference
//! server does: a request lists `{"type": "browser_search"}` (or
//! `web_search`, `web_search_preview`), `{"type": "code_interpreter"}` or
//! our `{"type": "handoff"}`; when `gpt-oss serve` was started with that
//! tool, it is declared in the system message, its calls run here (in
//! `spawn_blocking`: the tools block), the result is appended as the tool's
//! message, and generation continues with a new engine submission (prefix
//! reuse makes the repeated prompt cheap).
//!
//! Owns: request tool types -> namespaces, the output items and stream
//! events of built-in calls (`web_search_call`, `code_interpreter_call`,
//! `handoff_call`). Does not own the tools (`gptoss_tools`) or the loop
//! (`responses_api`).

use gptoss_harmony::Message;
use gptoss_tools::{ToolKit, ToolOutput, ToolRegistry};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::ids;

/// The namespace behind a Responses tool type, if it is a built-in one.
pub fn namespace_of(tool_type: &str) -> Option<&'static str> {
    match tool_type {
        "browser_search" | "web_search" | "web_search_preview" => Some("browser"),
        "code_interpreter" => Some("python"),
        "handoff" => Some("handoff"),
        _ => None,
    }
}

/// The flag that enables a namespace on `gpt-oss serve`.
pub(crate) fn flag_of(namespace: &str) -> &'static str {
    match namespace {
        "browser" => "--browser offline|web",
        "python" => "--python on",
        _ => "--handoff on",
    }
}

/// A fresh registry with the requested namespaces (tools block while they
/// start: an index opens, a scratch folder is made).
pub async fn registry(kit: &ToolKit, namespaces: &[String]) -> Result<ToolRegistry, ApiError> {
    let kit = kit.clone();
    let namespaces = namespaces.to_vec();
    tokio::task::spawn_blocking(move || kit.registry(|n| namespaces.iter().any(|w| w == n)))
        .await
        .map_err(|_| ApiError::internal("starting the built-in tools failed"))?
        .map_err(|e| ApiError::internal(format!("cannot start the built-in tools: {e}")))
}

/// Run one call off the async threads; returns the registry with the result.
pub async fn call(
    mut registry: ToolRegistry,
    recipient: String,
    arguments: String,
) -> (ToolRegistry, ToolOutput) {
    let fallback = recipient.clone();
    match tokio::task::spawn_blocking(move || {
        let out = registry.call(&recipient, &arguments);
        (registry, out)
    })
    .await
    {
        Ok(pair) => pair,
        Err(_) => (
            ToolRegistry::new(),
            ToolOutput::error(fallback, "[ERROR] the tool crashed"),
        ),
    }
}

/// The recipients the model may use for `namespaces` (so they are not
/// reported as undeclared tools).
pub fn recipients(namespaces: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for ns in namespaces {
        match ns.as_str() {
            "browser" => out.extend(
                ["browser.search", "browser.open", "browser.find"]
                    .iter()
                    .map(|s| s.to_string()),
            ),
            "handoff" => out.push("handoff.ask".to_string()),
            other => out.push(other.to_string()),
        }
    }
    out
}

/// Whether `recipient` belongs to one of `namespaces`.
pub fn is_builtin(namespaces: &[String], recipient: &str) -> bool {
    namespaces.iter().any(|ns| {
        recipient == ns
            || (recipient.len() > ns.len()
                && recipient.starts_with(ns.as_str())
                && recipient.as_bytes()[ns.len()] == b'.')
    })
}

/// The last assistant message when it is a call to a built-in tool:
/// (recipient, channel, arguments).
pub fn pending_call(
    messages: &[Message],
    namespaces: &[String],
) -> Option<(String, Option<String>, String)> {
    let last = messages.last()?;
    let recipient = last.recipient.as_deref()?;
    if !is_builtin(namespaces, recipient) {
        return None;
    }
    Some((recipient.to_string(), last.channel.clone(), last.text()))
}

/// The output item of a built-in call, still in progress, and the stream
/// events announcing it (without `sequence_number`).
pub fn item_started(recipient: &str, arguments: &str, output_index: usize) -> (Value, Vec<Value>) {
    let args: Value = serde_json::from_str(arguments).unwrap_or(Value::Null);
    let arg = |k: &str| args.get(k).cloned().unwrap_or(Value::Null);
    let (item, kind) = if recipient == "python" {
        (
            json!({"type": "code_interpreter_call", "id": ids::new_id("ci_"), "status": "in_progress",
                   "code": arguments, "container_id": null, "outputs": null}),
            "code_interpreter_call",
        )
    } else if let Some(function) = recipient.strip_prefix("browser.") {
        let action = match function {
            "search" => json!({"type": "search", "query": arg("query")}),
            "open" => {
                let url = match arg("id") {
                    Value::String(s) => Value::String(s),
                    _ => Value::Null,
                };
                json!({"type": "open_page", "url": url})
            }
            _ => json!({"type": "find", "pattern": arg("pattern"), "url": null}),
        };
        (
            json!({"type": "web_search_call", "id": ids::new_id("ws_"), "status": "in_progress", "action": action}),
            "web_search_call",
        )
    } else {
        let task = match arg("task") {
            Value::Null => Value::String(arguments.to_string()),
            t => t,
        };
        (
            json!({"type": "handoff_call", "id": ids::new_id("ho_"), "status": "in_progress",
                   "name": recipient, "task": task, "output": null}),
            "handoff_call",
        )
    };
    let item_id = item["id"].clone();
    let mut events = vec![
        json!({"type": "response.output_item.added", "output_index": output_index, "item": item}),
    ];
    match kind {
        "web_search_call" => {
            for t in [
                "response.web_search_call.in_progress",
                "response.web_search_call.searching",
            ] {
                events.push(json!({"type": t, "output_index": output_index, "item_id": item_id}));
            }
        }
        "code_interpreter_call" => {
            events.push(json!({"type": "response.code_interpreter_call.in_progress", "output_index": output_index, "item_id": item_id}));
            events.push(json!({"type": "response.code_interpreter_call_code.delta", "output_index": output_index, "item_id": item_id, "delta": arguments}));
            events.push(json!({"type": "response.code_interpreter_call_code.done", "output_index": output_index, "item_id": item_id, "code": arguments}));
            events.push(json!({"type": "response.code_interpreter_call.interpreting", "output_index": output_index, "item_id": item_id}));
        }
        _ => {}
    }
    (item, events)
}

/// Complete a built-in call's item with the tool's output; the stream
/// events that close it.
pub fn item_finished(item: &mut Value, output: &ToolOutput, output_index: usize) -> Vec<Value> {
    let item_id = item["id"].clone();
    let mut events = Vec::new();
    match item["type"].as_str().unwrap_or_default() {
        "code_interpreter_call" => {
            item["outputs"] = json!([{"type": "logs", "logs": output.text}]);
            item["status"] = json!(if output.is_error {
                "failed"
            } else {
                "completed"
            });
            events.push(json!({"type": "response.code_interpreter_call.completed", "output_index": output_index, "item_id": item_id}));
        }
        "web_search_call" => {
            // Like the reference: the page text goes to the model only.
            item["status"] = json!(if output.is_error {
                "incomplete"
            } else {
                "completed"
            });
            events.push(json!({"type": "response.web_search_call.completed", "output_index": output_index, "item_id": item_id}));
        }
        _ => {
            item["output"] = json!(output.text);
            item["status"] = json!(if output.is_error {
                "incomplete"
            } else {
                "completed"
            });
        }
    }
    events.push(json!({"type": "response.output_item.done", "output_index": output_index, "item": item.clone()}));
    events
}
