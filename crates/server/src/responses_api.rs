//! `POST /v1/responses`, `GET|DELETE /v1/responses/{id}`: OpenAI's Responses
//! API. Input items map to harmony as in OpenAI's reference server
//! (`gpt_oss/responses_api`): user messages stay user messages, assistant
//! messages go to `final`, `function_call` items become commentary calls to
//! `functions.NAME`, `function_call_output` items become tool messages,
//! `reasoning` items become analysis (kept only within the turn in progress).
//!
//! Tools: `responses_tools` sorts the request's tools (functions,
//! namespaces, freeform `custom` tools, `local_shell`, `shell`,
//! `apply_patch`; hosted tools the server does not run are left out with an
//! `x-gpt-oss-warning` header) and shapes each call's item; their call and
//! output items in `input` map back to harmony calls and tool messages.
//!
//! Stateless clients (Codex: `store: false`): with `include:
//! ["reasoning.encrypted_content"]` each reasoning item carries its text
//! sealed by this server (`sealed`); handed back in `input`, it is opened
//! into analysis again, so the chain of thought survives tool calls.
//! `reasoning.summary` gives the reasoning text as the summary too.
//!
//! Output items: `reasoning` (with `reasoning_text` content), `message`
//! (`output_text`), `function_call`, `custom_tool_call`, `local_shell_call`,
//! `shell_call`, `apply_patch_call`. Streaming sends the Responses event
//! sequence (`response.created`, `response.in_progress`,
//! `response.output_item.added`, `response.content_part.added`,
//! `response.reasoning_text.delta/done`, `response.output_text.delta/done`,
//! `response.function_call_arguments.delta/done`, `response.content_part.done`,
//! `response.output_item.done`, `response.completed` or `response.incomplete`),
//! each `event: TYPE` / `data: JSON` with a `sequence_number`. The same
//! [`OutputBuilder`] builds the items in both modes.
//!
//! Built-in tools (`builtin`): request tools `browser_search` / `web_search`
//! / `web_search_preview`, `code_interpreter` and `handoff` run here when the
//! server was started with them; each call becomes a `web_search_call`,
//! `code_interpreter_call` or `handoff_call` output item, its result is
//! appended, and generation continues (at most [`MAX_BUILTIN_ROUNDS`] calls
//! per response). Function calls still end the response.
//!
//! MCP (`mcp_tools`, with `--mcp on`): the servers' tools are listed before
//! generation (`mcp_list_tools` items first in the output), their calls run
//! in the same loop (`mcp_call` items), or end the response with an
//! `mcp_approval_request` that the next request's `mcp_approval_response`
//! answers.
//!
//! `previous_response_id`: responses are kept in the response store
//! (`store`: in memory or an SQLite file, bounded, oldest dropped first)
//! unless `store: false`; a follow-up continues the stored conversation and
//! inherits its instructions.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gptoss_chat::Effort;
use gptoss_harmony::{Message, Role};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::builtin;
use crate::chat_api::{parse_response_format, parse_tool_choice};
use crate::error::ApiError;
use crate::mcp_tools::{self, McpCatalog, McpOutcome, McpRunner};
use crate::prompt::{self, PromptSpec, ToolChoice};
use crate::responses_tools::{self, ClientTool};
use crate::sealed::Sealer;
use crate::store::StoredResponse;
use crate::turn::{Finish, SegmentKind, Turn, TurnEvent, TurnOptions, TurnUsage};
use crate::{ids, parse_body, AppState, Generation, LoraId};

/// Most built-in tool calls run for one response; a further call ends the
/// response (its item stays `in_progress`, status `incomplete`).
pub const MAX_BUILTIN_ROUNDS: usize = 8;

#[derive(Debug, Deserialize)]
struct ResponsesRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    reasoning: Option<ReasoningParam>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    store: Option<bool>,
    #[serde(default)]
    previous_response_id: Option<String>,
    /// A conversation (`conversations_api`) this response reads and extends.
    #[serde(default)]
    conversation: Option<Value>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    text: Option<TextParam>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    /// `reasoning.encrypted_content`: reasoning items carry their text
    /// sealed; `message.output_text.logprobs`: answer tokens carry their log
    /// probabilities.
    #[serde(default)]
    include: Option<Vec<String>>,
    #[serde(default)]
    top_logprobs: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ReasoningParam {
    #[serde(default)]
    effort: Option<String>,
    /// `auto` / `concise` / `detailed`: reasoning items get a summary (we
    /// have no summarizer: it is the reasoning text itself).
    #[serde(default)]
    summary: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TextParam {
    #[serde(default)]
    format: Option<Value>,
}

/// Text of a Responses item's `content` / `summary` / `output` parts.
fn text_of_parts(content: Option<&Value>, param: &str) -> Result<String, ApiError> {
    prompt::content_text(
        content,
        param,
        &[
            "input_text",
            "output_text",
            "text",
            "reasoning_text",
            "summary_text",
        ],
    )
}

/// Input items -> (instructions, harmony messages), recording tool call
/// ids. Reasoning sealed by this server (`encrypted_content`) is opened back
/// into analysis; item types with nothing for the model are skipped (noted
/// in `warnings`).
pub(crate) fn convert_input(
    input: Option<&Value>,
    call_names: &mut Vec<(String, String)>,
    sealer: &Sealer,
    warnings: &mut Vec<String>,
) -> Result<(Vec<String>, Vec<Message>), ApiError> {
    let mut instructions = Vec::new();
    let mut history = Vec::new();
    let items = match input {
        None | Some(Value::Null) => return Ok((instructions, history)),
        Some(Value::String(s)) => {
            history.push(Message::from_role_and_content(Role::User, s.clone()));
            return Ok((instructions, history));
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ApiError::invalid(
                format!(
                    "'input' must be a string or a list of items, found {}.",
                    prompt::type_name(other)
                ),
                Some("input"),
            ))
        }
    };
    for (idx, item) in items.iter().enumerate() {
        let p = |field: &str| format!("input[{idx}].{field}");
        let str_field = |field: &str| -> Result<String, ApiError> {
            item.get(field)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    ApiError::invalid(
                        format!("Missing or non-string parameter '{}'.", p(field)),
                        Some(&p(field)),
                    )
                })
        };
        if !item.is_object() {
            return Err(ApiError::invalid(
                format!("'input[{idx}]' must be an object."),
                Some(&format!("input[{idx}]")),
            ));
        }
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        match kind {
            "message" => {
                let role = str_field("role")?;
                let text = text_of_parts(item.get("content"), &p("content"))?;
                match role.as_str() {
                    "user" => history.push(Message::from_role_and_content(Role::User, text)),
                    "assistant" => {
                        history.push(Message::from_role_and_content(Role::Assistant, text).with_channel("final"))
                    }
                    "system" | "developer" => instructions.push(text),
                    other => {
                        return Err(ApiError::invalid(
                            format!("Invalid value for '{}': {other:?}. Supported values are: 'user', 'assistant', 'system' and 'developer'.", p("role")),
                            Some(&p("role")),
                        ))
                    }
                }
            }
            "reasoning" => {
                let sealed = item
                    .get("encrypted_content")
                    .and_then(Value::as_str)
                    .and_then(|blob| sealer.open(blob));
                let mut text = match sealed {
                    Some(text) => text,
                    None => text_of_parts(item.get("content"), &p("content"))?,
                };
                if text.is_empty() {
                    text = text_of_parts(item.get("summary"), &p("summary"))?;
                }
                if !text.is_empty() {
                    history.push(Message::from_role_and_content(Role::Assistant, text).with_channel("analysis"));
                }
            }
            "mcp_call" | "mcp_approval_request" | "mcp_list_tools" | "mcp_approval_response" => {
                history.extend(mcp_tools::input_messages(kind, item, items).unwrap_or_default());
            }
            kind if responses_tools::is_call_output(kind) => {
                let call_id = item
                    .get("call_id")
                    .or_else(|| item.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::invalid(format!("Missing or non-string parameter '{}'.", p("call_id")), Some(&p("call_id"))))?;
                let mut output = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(chunks)) if kind == "shell_call_output" => responses_tools::shell_output_text(chunks),
                    other => text_of_parts(other, &p("output"))?,
                };
                if kind == "apply_patch_call_output" {
                    let status = item.get("status").and_then(Value::as_str).unwrap_or("completed");
                    output = format!("{status}\n{output}").trim_end().to_string();
                }
                let name = call_names.iter().rev().find(|(id, _)| *id == call_id).map(|(_, n)| n.clone()).ok_or_else(|| {
                    ApiError::invalid(
                        format!("No tool call found for call_id {call_id:?} in 'input[{idx}]' (nor in the previous response)."),
                        Some(&p("call_id")),
                    )
                })?;
                history.push(prompt::function_output_message(&name, &output));
            }
            kind => match responses_tools::input_call(kind, item) {
                Some((name, arguments)) => {
                    let call_id = str_field("call_id")?;
                    history.push(prompt::function_call_message(&name, &arguments));
                    call_names.push((call_id, name));
                }
                None if responses_tools::is_skippable_item(kind) => warnings.push(format!(
                    "input item of type {kind:?} (input[{idx}]) skipped: nothing in it for this model"
                )),
                None => {
                    return Err(ApiError::invalid(
                        format!("Unsupported input item type {kind:?} in 'input[{idx}]'. Supported: message, reasoning, function_call, custom_tool_call, local_shell_call, shell_call, apply_patch_call and their outputs."),
                        Some(&p("type")),
                    ))
                }
            },
        }
    }
    Ok((instructions, history))
}

/// Most earlier responses searched for MCP tool lists.
const MCP_CHAIN_DEPTH: usize = 16;

/// The MCP items (tool lists, approval requests) of the output of the
/// previous response and the ones before it, oldest first: a tool list
/// anywhere in the chain is not fetched again, as OpenAI does.
async fn earlier_mcp_items(state: &AppState, previous: Option<Value>) -> Vec<Value> {
    let mut items = Vec::new();
    let mut next = previous;
    for _ in 0..MCP_CHAIN_DEPTH {
        let Some(json) = next.take() else { break };
        if let Some(Value::Array(output)) = json.get("output") {
            items.splice(0..0, output.iter().filter(|i| is_mcp_item(i)).cloned());
        }
        let Some(id) = json.get("previous_response_id").and_then(Value::as_str) else {
            break;
        };
        next = state.store.get(id).await.ok().flatten().map(|s| s.json);
    }
    items
}

fn is_mcp_item(item: &Value) -> bool {
    matches!(
        item.get("type").and_then(Value::as_str),
        Some("mcp_list_tools" | "mcp_approval_request" | "mcp_call")
    )
}

/// Fixed fields of the response object, set once per request.
struct ResponseHead {
    id: String,
    created_at: u64,
    model: String,
    instructions: Option<String>,
    effort: Effort,
    /// The request's tools as given (those left out excepted).
    tools: Vec<Value>,
    /// `reasoning.summary` as asked.
    summary: Option<String>,
    tool_choice: Value,
    previous_response_id: Option<String>,
    conversation: Option<String>,
    store: bool,
    temperature: f64,
    top_p: f64,
    max_output_tokens: Option<u64>,
    metadata: Value,
    parallel_tool_calls: bool,
    text_format: Value,
}

impl ResponseHead {
    fn json(
        &self,
        status: &str,
        output: &[Value],
        usage: Option<&TurnUsage>,
        finish: Option<Finish>,
        error: Option<&str>,
    ) -> Value {
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error.map(|m| json!({"code": "server_error", "message": m})),
            "incomplete_details": if finish == Some(Finish::Length) { json!({"reason": "max_output_tokens"}) } else { Value::Null },
            "instructions": self.instructions,
            "max_output_tokens": self.max_output_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": self.parallel_tool_calls,
            "previous_response_id": self.previous_response_id,
            "conversation": self.conversation.as_ref().map(|id| json!({"id": id})),
            "reasoning": {"effort": self.effort.as_str(), "summary": self.summary},
            "store": self.store,
            "temperature": self.temperature,
            "text": {"format": self.text_format},
            "tool_choice": self.tool_choice,
            "tools": self.tools,
            "top_p": self.top_p,
            "truncation": "disabled",
            "usage": usage.map(|u| json!({
                "input_tokens": u.prompt_tokens,
                "input_tokens_details": {"cached_tokens": u.cached_tokens},
                "output_tokens": u.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
                "total_tokens": u.prompt_tokens + u.completion_tokens,
            })),
            "metadata": self.metadata,
        })
    }
}

/// Builds output items from turn events; returns the stream events each
/// turn event causes (without `sequence_number`).
#[derive(Default)]
pub(crate) struct OutputBuilder {
    items: Vec<Value>,
    // (output_index, item id) of the open item
    open: Option<(usize, String)>,
    // function call ids and names, for the store
    calls: Vec<(String, String)>,
    /// Built-in namespaces of the request: calls to them become built-in items.
    builtin: Vec<String>,
    /// The open segment is a built-in call (recipient); its item is made at its end.
    open_builtin: Option<String>,
    /// Output index of the built-in call waiting for its result.
    pending_builtin: Option<usize>,
    /// The client's tools: the shape of each call's item.
    client: Vec<ClientTool>,
    /// Seals reasoning into `encrypted_content` (`include` asked for it).
    sealer: Option<Sealer>,
    /// Reasoning items also carry their text as a summary.
    summarize: bool,
    /// Log probabilities of the open message's tokens (when asked for).
    logprobs: Vec<Value>,
    /// Stream each `output_text.delta` with its tokens' log probabilities:
    /// a delta is held until the log probability of its token arrives.
    stream_logprobs: bool,
    held_delta: Option<Value>,
    unsent_logprobs: Vec<Value>,
    /// The request's MCP tools: calls to them become MCP items.
    mcp: McpCatalog,
    /// Output index of the MCP call waiting for its result.
    pending_mcp: Option<usize>,
}

impl OutputBuilder {
    fn new(
        builtin: Vec<String>,
        client: Vec<ClientTool>,
        sealer: Option<Sealer>,
        summarize: bool,
        mcp: McpCatalog,
    ) -> OutputBuilder {
        OutputBuilder {
            builtin,
            client,
            sealer,
            summarize,
            mcp,
            ..OutputBuilder::default()
        }
    }

    /// The held `output_text.delta`, now carrying the log probabilities
    /// that arrived since the last one was sent.
    fn release_delta(&mut self) -> Vec<Value> {
        match self.held_delta.take() {
            Some(mut event) => {
                event["logprobs"] = json!(std::mem::take(&mut self.unsent_logprobs));
                vec![event]
            }
            None => Vec::new(),
        }
    }

    /// Items made before generation (MCP tool lists, approved MCP calls),
    /// first in the output; their stream events.
    fn prelude(&mut self, items: Vec<Value>) -> Vec<Value> {
        let mut events = Vec::new();
        for item in items {
            events.extend(mcp_tools::prelude_events(&item, self.items.len()));
            self.items.push(item);
        }
        events
    }

    /// The result of the pending MCP call: completes its item.
    fn on_mcp_result(&mut self, outcome: &McpOutcome) -> Vec<Value> {
        match self.pending_mcp.take() {
            Some(idx) => mcp_tools::call_finished(&mut self.items[idx], outcome, idx),
            None => Vec::new(),
        }
    }

    /// The result of the pending built-in call: completes its item.
    fn on_tool_result(&mut self, output: &gptoss_tools::ToolOutput) -> Vec<Value> {
        match self.pending_builtin.take() {
            Some(idx) => builtin::item_finished(&mut self.items[idx], output, idx),
            None => Vec::new(),
        }
    }

    /// A built-in call that will get no result (too many rounds, an error).
    fn abandon_pending(&mut self) {
        if let Some(idx) = self.pending_builtin.take() {
            self.items[idx]["status"] = json!("incomplete");
        }
        if let Some(idx) = self.pending_mcp.take() {
            self.items[idx]["status"] = json!("incomplete");
        }
    }

    fn on_event(&mut self, event: &TurnEvent) -> Vec<Value> {
        if let Some(recipient) = self.open_builtin.clone() {
            // Arguments of a built-in call are not streamed: its item (with
            // the query or code) is announced once they are complete.
            if let TurnEvent::End { text, .. } = event {
                self.open_builtin = None;
                let idx = self.items.len();
                let (item, events) = builtin::item_started(&recipient, text, idx);
                self.items.push(item);
                self.pending_builtin = Some(idx);
                return events;
            }
            if !matches!(event, TurnEvent::Start(_)) {
                return Vec::new();
            }
            self.open_builtin = None;
        }
        match event {
            TurnEvent::Start(SegmentKind::ToolCall { name, .. })
                if self.mcp.find(name).is_some() =>
            {
                let Some(entry) = self.mcp.find(name) else {
                    return Vec::new();
                };
                let output_index = self.items.len();
                let (item, events) = mcp_tools::call_started(entry, output_index);
                let item_id = item["id"].as_str().unwrap_or_default().to_string();
                self.items.push(item);
                self.open = Some((output_index, item_id));
                events
            }
            TurnEvent::Start(SegmentKind::ToolCall { name, .. })
                if builtin::is_builtin(&self.builtin, name) =>
            {
                self.open_builtin = Some(name.clone());
                Vec::new()
            }
            TurnEvent::Start(kind) => {
                let output_index = self.items.len();
                let (item, part) = match kind {
                    SegmentKind::Reasoning => (
                        json!({"type": "reasoning", "id": ids::new_id("rs_"), "summary": [], "content": [], "status": "in_progress"}),
                        Some(json!({"type": "reasoning_text", "text": ""})),
                    ),
                    SegmentKind::Content => (
                        json!({"type": "message", "id": ids::new_id("msg_"), "status": "in_progress", "role": "assistant", "content": []}),
                        Some(
                            json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []}),
                        ),
                    ),
                    SegmentKind::ToolCall { id, name } => {
                        self.calls.push((id.clone(), name.clone()));
                        let tool = self.client.iter().find(|t| t.call_name == *name);
                        (
                            responses_tools::call_item(tool, name, id, "", "in_progress"),
                            None,
                        )
                    }
                };
                let item_id = item["id"].as_str().unwrap_or_default().to_string();
                self.items.push(item.clone());
                self.open = Some((output_index, item_id.clone()));
                let mut events = vec![
                    json!({"type": "response.output_item.added", "output_index": output_index, "item": item}),
                ];
                if let Some(part) = part {
                    events.push(
                        json!({"type": "response.content_part.added", "item_id": item_id,
                        "output_index": output_index, "content_index": 0, "part": part}),
                    );
                }
                if self.summarize && *kind == SegmentKind::Reasoning {
                    events.push(json!({"type": "response.reasoning_summary_part.added", "item_id": item_id,
                        "output_index": output_index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}));
                }
                events
            }
            TurnEvent::Delta(text) => {
                let Some((output_index, item_id)) = self.open.clone() else {
                    return Vec::new();
                };
                let kind = self.items[output_index]["type"]
                    .as_str()
                    .unwrap_or_default();
                match kind {
                    "reasoning" => {
                        let mut events = vec![
                            json!({"type": "response.reasoning_text.delta", "item_id": item_id,
                        "output_index": output_index, "content_index": 0, "delta": text}),
                        ];
                        if self.summarize {
                            events.push(json!({"type": "response.reasoning_summary_text.delta", "item_id": item_id,
                                "output_index": output_index, "summary_index": 0, "delta": text}));
                        }
                        events
                    }
                    "message" => {
                        let event = json!({"type": "response.output_text.delta", "item_id": item_id,
                        "output_index": output_index, "content_index": 0, "delta": text, "logprobs": []});
                        if !self.stream_logprobs {
                            return vec![event];
                        }
                        let released = self.release_delta();
                        self.held_delta = Some(event);
                        released
                    }
                    "function_call" => vec![
                        json!({"type": "response.function_call_arguments.delta", "item_id": item_id,
                        "output_index": output_index, "delta": text}),
                    ],
                    "mcp_call" => {
                        mcp_tools::arguments_delta(&self.items[output_index], output_index, text)
                    }
                    // Other calls are JSON to us, not to the client: their
                    // fields are known once the arguments are complete.
                    _ => Vec::new(),
                }
            }
            TurnEvent::End { text, .. } => {
                let Some((output_index, item_id)) = self.open.take() else {
                    return Vec::new();
                };
                let mut events = self.release_delta();
                self.unsent_logprobs.clear();
                let kind = self.items[output_index]["type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if kind == "mcp_call" || kind == "mcp_approval_request" {
                    if kind == "mcp_call" {
                        self.pending_mcp = Some(output_index);
                    }
                    let item = &mut self.items[output_index];
                    events.extend(mcp_tools::arguments_done(item, output_index, text));
                    return events;
                }
                let item = &mut self.items[output_index];
                item["status"] = json!("completed");
                match kind.as_str() {
                    "reasoning" => {
                        let part = json!({"type": "reasoning_text", "text": text});
                        item["content"] = json!([part.clone()]);
                        if let Some(sealer) = &self.sealer {
                            item["encrypted_content"] = json!(sealer.seal(text));
                        }
                        if self.summarize {
                            let summary = json!({"type": "summary_text", "text": text});
                            item["summary"] = json!([summary.clone()]);
                            events.push(json!({"type": "response.reasoning_summary_text.done", "item_id": item_id,
                                "output_index": output_index, "summary_index": 0, "text": text}));
                            events.push(json!({"type": "response.reasoning_summary_part.done", "item_id": item_id,
                                "output_index": output_index, "summary_index": 0, "part": summary}));
                        }
                        events.push(
                            json!({"type": "response.reasoning_text.done", "item_id": item_id,
                            "output_index": output_index, "content_index": 0, "text": text}),
                        );
                        events.push(
                            json!({"type": "response.content_part.done", "item_id": item_id,
                            "output_index": output_index, "content_index": 0, "part": part}),
                        );
                    }
                    "message" => {
                        let logprobs = std::mem::take(&mut self.logprobs);
                        let part = json!({"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs});
                        item["content"] = json!([part.clone()]);
                        events.push(json!({"type": "response.output_text.done", "item_id": item_id,
                            "output_index": output_index, "content_index": 0, "text": text, "logprobs": logprobs}));
                        events.push(
                            json!({"type": "response.content_part.done", "item_id": item_id,
                            "output_index": output_index, "content_index": 0, "part": part}),
                        );
                    }
                    "function_call" => {
                        item["arguments"] = json!(text);
                        events.push(json!({"type": "response.function_call_arguments.done", "item_id": item_id,
                            "output_index": output_index, "name": item["name"], "arguments": text}));
                    }
                    _ => {
                        // Rebuild the item from the complete arguments (same id).
                        let call_id = item["call_id"].as_str().unwrap_or_default().to_string();
                        let call_name = self
                            .calls
                            .iter()
                            .rev()
                            .find(|(id, _)| *id == call_id)
                            .map(|(_, n)| n.clone())
                            .unwrap_or_default();
                        let tool = self.client.iter().find(|t| t.call_name == call_name);
                        let mut full = responses_tools::call_item(
                            tool,
                            &call_name,
                            &call_id,
                            text,
                            "completed",
                        );
                        full["id"] = item["id"].clone();
                        *item = full;
                        if kind == "custom_tool_call" {
                            let input = item["input"].clone();
                            events.push(json!({"type": "response.custom_tool_call_input.delta", "item_id": item_id,
                                "output_index": output_index, "delta": input}));
                            events.push(json!({"type": "response.custom_tool_call_input.done", "item_id": item_id,
                                "output_index": output_index, "input": input}));
                        }
                    }
                }
                events.push(json!({"type": "response.output_item.done", "output_index": output_index, "item": item.clone()}));
                events
            }
            TurnEvent::Logprobs(lps) => {
                let values: Vec<Value> = lps.iter().map(crate::turn::logprob_json).collect();
                self.logprobs.extend(values.iter().cloned());
                if !self.stream_logprobs {
                    return Vec::new();
                }
                self.unsent_logprobs.extend(values);
                self.release_delta()
            }
            TurnEvent::Finished { .. } | TurnEvent::Error(_) => Vec::new(),
        }
    }
}

/// `POST /v1/responses`.
pub(crate) async fn create(State(state): State<AppState>, body: Bytes) -> Response {
    match handle(state, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(state: AppState, body: &[u8]) -> Result<Response, ApiError> {
    let req: ResponsesRequest = parse_body(body)?;
    let lora = state.check_model(req.model.as_deref())?;
    let effort = match req.reasoning.as_ref().and_then(|r| r.effort.as_deref()) {
        Some(e) => prompt::parse_effort(e, "reasoning.effort")?,
        None => state.config.default_effort,
    };
    let includes = |what: &str| req.include.iter().flatten().any(|i| i == what);
    let top_logprobs = match req.top_logprobs {
        Some(top) if top > crate::scheduler::MAX_TOP_LOGPROBS as u64 => {
            return Err(ApiError::invalid(
                format!("Invalid 'top_logprobs': {top}. Expected a value between 0 and 20."),
                Some("top_logprobs"),
            ))
        }
        top => top.map(|t| t as usize),
    };
    let logprobs = if includes("message.output_text.logprobs") || top_logprobs.is_some() {
        Some(top_logprobs.unwrap_or(0))
    } else {
        None
    };
    let summary = match req.reasoning.as_ref().and_then(|r| r.summary.as_deref()) {
        None | Some("none") => None,
        Some(s @ ("auto" | "concise" | "detailed")) => Some(s.to_string()),
        Some(other) => {
            return Err(ApiError::invalid(
                format!("Invalid value for 'reasoning.summary': {other:?}. Supported values are: 'auto', 'concise', 'detailed' and 'none'."),
                Some("reasoning.summary"),
            )
            .with_code("invalid_value"))
        }
    };

    // A conversation's items come first (not with previous_response_id).
    let conversation = match &req.conversation {
        None | Some(Value::Null) => None,
        Some(_) if req.previous_response_id.is_some() => {
            return Err(ApiError::invalid(
                "Mutually exclusive parameters: give either 'previous_response_id' or 'conversation', not both.",
                Some("conversation"),
            ))
        }
        Some(c) => Some(crate::conversations_api::load(&state, c).await?),
    };

    // Continue a stored conversation.
    let (mut history, mut call_names, inherited, previous_json) = match &req.previous_response_id {
        None => (Vec::new(), Vec::new(), None, None),
        Some(id) => {
            let prev = state.store.get(id).await?.ok_or_else(|| {
                ApiError::not_found(
                    format!("Previous response with id {id:?} not found."),
                    Some("previous_response_id"),
                )
                .with_code("previous_response_not_found")
            })?;
            (
                prev.history.clone(),
                prev.call_names.clone(),
                prev.instructions.clone(),
                Some(prev.json.clone()),
            )
        }
    };
    let mut warnings = Vec::new();
    let mut conversation_instructions = Vec::new();
    if let Some((_, items)) = &conversation {
        let (ins, hist) = convert_input(
            Some(&Value::Array(items.clone())),
            &mut call_names,
            &state.sealer,
            &mut warnings,
        )
        .map_err(|mut e| {
            e.param = Some("conversation".into());
            e
        })?;
        conversation_instructions = ins;
        history.extend(hist);
    }
    let (input_instructions, input_history) = convert_input(
        req.input.as_ref(),
        &mut call_names,
        &state.sealer,
        &mut warnings,
    )?;
    if input_history.is_empty() && history.is_empty() {
        return Err(ApiError::invalid(
            "'input' is empty: give a string or at least one item.",
            Some("input"),
        ));
    }
    history.extend(input_history);
    let instructions = req.instructions.clone().or(inherited);
    let mut all_instructions: Vec<String> = instructions.iter().cloned().collect();
    all_instructions.extend(conversation_instructions);
    all_instructions.extend(input_instructions);

    let tools = responses_tools::convert(req.tools.as_deref(), &state.config.tools)?;
    warnings.extend(tools.warnings.iter().cloned());
    let builtin_namespaces = tools.builtin_namespaces.clone();
    let text_format = req.text.as_ref().and_then(|t| t.format.clone());
    let response_format = parse_response_format(text_format.as_ref(), "text.format")?;

    // MCP servers: list their tools, run the calls this request approves.
    let mut earlier = Vec::new();
    if !tools.mcp.is_empty() {
        if let Some((_, items)) = &conversation {
            earlier.extend(items.iter().filter(|i| is_mcp_item(i)).cloned());
        }
        earlier.extend(earlier_mcp_items(&state, previous_json).await);
    }
    let carried = mcp_tools::carried(&earlier, req.input.as_ref())?;
    let taken: Vec<String> = tools.namespaces.iter().map(|n| n.name.clone()).collect();
    let mut mcp =
        mcp_tools::prepare(&tools.mcp, state.config.mcp, &taken, carried, &mut history).await?;
    let choice = mcp.tool_choice(
        req.tool_choice.as_ref(),
        tools.functions.is_empty() && tools.namespaces.is_empty(),
    )?;
    warnings.append(&mut mcp.warnings);
    // A choice may name any client tool, namespaced ones as `NS.NAME`.
    let mut choosable = tools.functions.clone();
    for ns in &tools.namespaces {
        choosable.extend(ns.tools.iter().map(|t| prompt::FunctionTool {
            name: format!("{}.{}", ns.name, t.name),
            ..t.clone()
        }));
    }
    choosable.extend(mcp.choosable());
    let tool_choice = parse_tool_choice(choice.as_ref(), &choosable)?;
    let mcp_catalog = mcp.catalog();

    let registry = if builtin_namespaces.is_empty() || tool_choice == ToolChoice::None {
        None
    } else {
        Some(builtin::registry(&state.config.tools, &builtin_namespaces).await?)
    };
    let mut tool_names = tools.call_names();
    if registry.is_some() {
        tool_names.extend(builtin::recipients(&builtin_namespaces));
    }
    tool_names.extend(mcp_catalog.recipients());
    let mut namespaces = tools.namespaces.clone();
    namespaces.extend(std::mem::take(&mut mcp.namespaces));
    let spec = PromptSpec {
        instructions: all_instructions,
        history: history.clone(),
        effort,
        tools: tools.functions.clone(),
        namespaces,
        tool_choice,
        response_format,
        builtin_tools: registry
            .as_ref()
            .map(|r| r.namespace_configs())
            .unwrap_or_default(),
    };
    let template = RoundTemplate {
        spec,
        max_tokens: req.max_output_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        seed: req.seed,
        lora,
        options: TurnOptions {
            stop: Vec::new(),
            tool_names,
            logprobs,
        },
    };
    let turn = state.start(template.generation(None)).map_err(|mut e| {
        if e.param.as_deref() == Some("messages") {
            e.param = Some("input".into());
        }
        e
    })?;
    let builtin_active = if registry.is_some() {
        builtin_namespaces.clone()
    } else {
        Vec::new()
    };
    let driver = Driver {
        state: state.clone(),
        turn,
        template,
        registry,
        namespaces: builtin_active.clone(),
        mcp: mcp.runner.take(),
        rounds: 0,
        added: Vec::new(),
        usage: TurnUsage::default(),
        queued: None,
    };
    let head = ResponseHead {
        id: ids::new_id("resp_"),
        created_at: ids::unix_seconds(),
        model: match (lora, &req.model) {
            (Some(_), Some(m)) => m.clone(),
            _ => state.config.model_id.clone(),
        },
        instructions,
        effort,
        tools: tools.echo.iter().chain(&mcp.echo).cloned().collect(),
        summary: summary.clone(),
        tool_choice: req.tool_choice.clone().unwrap_or_else(|| json!("auto")),
        previous_response_id: req.previous_response_id.clone(),
        conversation: conversation.as_ref().map(|(id, _)| id.clone()),
        store: req.store.unwrap_or(true),
        temperature: req.temperature.unwrap_or(1.0),
        top_p: req.top_p.unwrap_or(1.0),
        max_output_tokens: req.max_output_tokens,
        metadata: req.metadata.clone().unwrap_or_else(|| json!({})),
        parallel_tool_calls: req.parallel_tool_calls.unwrap_or(false),
        text_format: text_format.unwrap_or_else(|| json!({"type": "text"})),
    };
    let sealer = includes("reasoning.encrypted_content").then(|| state.sealer.clone());
    let run = Run {
        state,
        head,
        history,
        call_names,
        conversation: conversation.map(|(id, _)| {
            (
                id,
                crate::conversations_api::input_items(req.input.as_ref()),
            )
        }),
    };
    let mut builder = OutputBuilder::new(
        builtin_active,
        tools.client,
        sealer,
        summary.is_some(),
        mcp_catalog,
    );
    let prelude = builder.prelude(std::mem::take(&mut mcp.items));
    builder.stream_logprobs = logprobs.is_some();
    for w in &warnings {
        eprintln!("warning: /v1/responses: {w}");
    }
    let mut response = if req.stream.unwrap_or(false) {
        run.stream(driver, builder, prelude).into_response()
    } else {
        let mut driver = driver;
        let mut finished = None;
        let mut error = None;
        while let Some(step) = driver.next().await {
            match step {
                Step::ToolResult(output) => {
                    builder.on_tool_result(&output);
                }
                Step::McpResult(outcome) => {
                    builder.on_mcp_result(&outcome);
                }
                Step::Event(event) => {
                    builder.on_event(&event);
                    match event {
                        TurnEvent::Finished { finish, usage } => finished = Some((finish, usage)),
                        TurnEvent::Error(m) => error = Some(m),
                        _ => {}
                    }
                }
            }
        }
        if let Some(m) = error {
            return Err(ApiError::internal(format!("generation failed: {m}")));
        }
        builder.abandon_pending();
        let (finish, usage) = finished.unwrap_or((Finish::Cancelled, TurnUsage::default()));
        let json = run.finish(driver.messages(), builder, finish, usage).await;
        Json(json).into_response()
    };
    if let Some(value) = warning_header(&warnings) {
        response.headers_mut().insert(WARNING_HEADER, value);
    }
    Ok(response)
}

/// Response header listing what the server left out of a request (tools it
/// does not run, input items with nothing for the model).
pub const WARNING_HEADER: &str = "x-gpt-oss-warning";

fn warning_header(warnings: &[String]) -> Option<axum::http::HeaderValue> {
    if warnings.is_empty() {
        return None;
    }
    let text: String = warnings
        .join("; ")
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect();
    axum::http::HeaderValue::from_str(&text).ok()
}

/// What every generation round of one response shares.
struct RoundTemplate {
    spec: PromptSpec,
    max_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<i64>,
    lora: Option<LoraId>,
    options: TurnOptions,
}

impl RoundTemplate {
    /// The request for a round: the first (`added` = None) as asked; a
    /// continuation with the messages added since, no forced tool call,
    /// and the output tokens left.
    fn generation(&self, continuation: Option<(&[Message], u64)>) -> Generation {
        let mut spec = self.spec.clone();
        let mut max_tokens = self.max_tokens;
        if let Some((added, used)) = continuation {
            spec.history.extend(added.iter().cloned());
            if matches!(
                spec.tool_choice,
                ToolChoice::Named(_) | ToolChoice::Required
            ) {
                spec.tool_choice = ToolChoice::Auto;
            }
            max_tokens = max_tokens.map(|m| m.saturating_sub(used).max(1));
        }
        Generation {
            spec,
            max_tokens,
            max_tokens_param: "max_output_tokens",
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed,
            options: self.options.clone(),
            lora: self.lora,
        }
    }
}

/// One step of a response: an event of the current round, or the result of
/// a built-in call (after which the next round's events follow).
enum Step {
    Event(TurnEvent),
    ToolResult(gptoss_tools::ToolOutput),
    McpResult(McpOutcome),
}

/// Runs the rounds of one response: each built-in call is answered and
/// generation continues; every other ending is passed on, with the usage
/// summed over the rounds.
struct Driver {
    state: AppState,
    turn: Turn,
    template: RoundTemplate,
    registry: Option<gptoss_tools::ToolRegistry>,
    namespaces: Vec<String>,
    /// The response's MCP servers (calls not waiting for approval run here).
    mcp: Option<McpRunner>,
    rounds: usize,
    /// Messages of finished rounds: assistant messages and tool results.
    added: Vec<Message>,
    /// Usage of finished rounds.
    usage: TurnUsage,
    /// An event to give before reading the turn again (the end, when a
    /// continuation could not start).
    queued: Option<TurnEvent>,
}

impl Driver {
    async fn next(&mut self) -> Option<Step> {
        if let Some(event) = self.queued.take() {
            return Some(Step::Event(event));
        }
        let event = self.turn.next().await?;
        let TurnEvent::Finished { finish, usage } = event else {
            return Some(Step::Event(event));
        };
        let total = TurnUsage {
            prompt_tokens: self.usage.prompt_tokens + usage.prompt_tokens,
            cached_tokens: self.usage.cached_tokens + usage.cached_tokens,
            completion_tokens: self.usage.completion_tokens + usage.completion_tokens,
            reasoning_tokens: self.usage.reasoning_tokens + usage.reasoning_tokens,
        };
        let finished = Step::Event(TurnEvent::Finished {
            finish,
            usage: total,
        });
        if finish != Finish::ToolCalls || self.rounds >= MAX_BUILTIN_ROUNDS {
            return Some(finished);
        }
        let messages = self.turn.messages();
        let mcp_call = self.mcp.as_ref().and_then(|m| m.pending_call(&messages));
        let (step, tool, message) = if let Some((recipient, channel, arguments)) =
            builtin::pending_call(&messages, &self.namespaces)
        {
            let Some(registry) = self.registry.take() else {
                return Some(finished);
            };
            let (registry, output) = builtin::call(registry, recipient, arguments).await;
            self.registry = Some(registry);
            let message = output.to_message(channel.as_deref());
            let tool = Some(output.author.clone());
            (Step::ToolResult(output), tool, message)
        } else if let (Some((entry, channel, arguments)), Some(mcp)) = (mcp_call, self.mcp.as_mut())
        {
            if entry.approval {
                // The response ends with the approval request.
                return Some(finished);
            }
            let outcome = mcp.call(&entry.server_label, &entry.name, &arguments).await;
            let message = outcome.message(&entry.recipient, channel.as_deref());
            (Step::McpResult(outcome), Some(entry.recipient), message)
        } else {
            return Some(finished);
        };
        self.rounds += 1;
        self.added.extend(messages);
        self.added.push(message);
        self.usage = total;
        let used = total.completion_tokens as u64;
        if self.template.max_tokens.is_some_and(|m| used >= m) {
            self.queued = Some(TurnEvent::Finished {
                finish: Finish::Length,
                usage: total,
            });
        } else {
            match self
                .state
                .start(self.template.generation(Some((&self.added, used))))
            {
                Ok(turn) => self.turn = turn,
                Err(e) => {
                    // The tool result did not fit in the context (or the
                    // queue is full): end here, as a cut answer.
                    eprintln!(
                        "warning: cannot continue after the {} call: {}",
                        tool.as_deref().unwrap_or("tool"),
                        e.message
                    );
                    self.queued = Some(TurnEvent::Finished {
                        finish: Finish::Length,
                        usage: total,
                    });
                }
            }
        }
        Some(step)
    }

    /// Every assistant and tool message of the response so far.
    fn messages(&self) -> Vec<Message> {
        let mut all = self.added.clone();
        if self.queued.is_none() {
            all.extend(self.turn.messages());
        }
        all
    }
}

struct Run {
    state: AppState,
    head: ResponseHead,
    history: Vec<Message>,
    call_names: Vec<(String, String)>,
    /// The conversation to extend, and the request's input items.
    conversation: Option<(String, Vec<Value>)>,
}

impl Run {
    /// The final response object; stores it when asked.
    async fn finish(
        self,
        messages: Vec<Message>,
        builder: OutputBuilder,
        finish: Finish,
        usage: TurnUsage,
    ) -> Value {
        let status = if finish == Finish::Length {
            "incomplete"
        } else {
            "completed"
        };
        let json = self
            .head
            .json(status, &builder.items, Some(&usage), Some(finish), None);
        if let Some((id, input)) = &self.conversation {
            crate::conversations_api::append(&self.state, id, input, &json["output"]).await;
        }
        if self.head.store {
            let mut history = self.history;
            history.extend(messages);
            let mut call_names = self.call_names;
            call_names.extend(builder.calls);
            let stored = StoredResponse {
                json: json.clone(),
                history,
                instructions: self.head.instructions.clone(),
                call_names,
            };
            if let Err(e) = self.state.store.put(self.head.id.clone(), stored).await {
                eprintln!("warning: response {} not stored: {e}", self.head.id);
            }
        }
        json
    }

    fn stream(
        self,
        mut driver: Driver,
        mut builder: OutputBuilder,
        prelude: Vec<Value>,
    ) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
        tokio::spawn(async move {
            let mut seq = 0u64;
            let mut frame = |mut event: Value| {
                event["sequence_number"] = json!(seq);
                seq += 1;
                let kind = event["type"].as_str().unwrap_or_default().to_string();
                Event::default().event(kind).data(event.to_string())
            };
            let start = self.head.json("in_progress", &[], None, None, None);
            for kind in ["response.created", "response.in_progress"] {
                if tx
                    .send(frame(json!({"type": kind, "response": start})))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            for e in prelude {
                if tx.send(frame(e)).await.is_err() {
                    return;
                }
            }
            while let Some(step) = driver.next().await {
                let event = match step {
                    Step::ToolResult(output) => {
                        for e in builder.on_tool_result(&output) {
                            if tx.send(frame(e)).await.is_err() {
                                return;
                            }
                        }
                        continue;
                    }
                    Step::McpResult(outcome) => {
                        for e in builder.on_mcp_result(&outcome) {
                            if tx.send(frame(e)).await.is_err() {
                                return;
                            }
                        }
                        continue;
                    }
                    Step::Event(event) => event,
                };
                for e in builder.on_event(&event) {
                    if tx.send(frame(e)).await.is_err() {
                        return; // client gone: dropping `driver` cancels the request
                    }
                }
                match event {
                    TurnEvent::Finished { finish, usage } => {
                        builder.abandon_pending();
                        let kind = if finish == Finish::Length {
                            "response.incomplete"
                        } else {
                            "response.completed"
                        };
                        let json = self.finish(driver.messages(), builder, finish, usage).await;
                        let _ = tx
                            .send(frame(json!({"type": kind, "response": json})))
                            .await;
                        return;
                    }
                    TurnEvent::Error(m) => {
                        let json = self
                            .head
                            .json("failed", &builder.items, None, None, Some(&m));
                        let _ = tx
                            .send(frame(json!({"type": "response.failed", "response": json})))
                            .await;
                        return;
                    }
                    _ => {}
                }
            }
        });
        Sse::new(crate::receiver_stream(rx)).keep_alive(KeepAlive::default())
    }
}

/// `GET /v1/responses/{id}`.
pub(crate) async fn retrieve(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.store.get(&id).await {
        Err(e) => ApiError::from(e).into_response(),
        Ok(Some(stored)) => Json(stored.json).into_response(),
        Ok(None) => {
            ApiError::not_found(format!("Response with id {id:?} not found."), None).into_response()
        }
    }
}

/// `DELETE /v1/responses/{id}`.
pub(crate) async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let removed = match state.store.delete(&id).await {
        Ok(removed) => removed,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if removed {
        Json(json!({"id": id, "object": "response", "deleted": true})).into_response()
    } else {
        ApiError::not_found(format!("Response with id {id:?} not found."), None).into_response()
    }
}
