//! Anthropic's Messages API, so Anthropic clients (Claude Code, the
//! `anthropic` SDKs) run unchanged against this server:
//! `POST /v1/messages` (JSON or SSE), `POST /v1/messages/count_tokens`,
//! `GET|HEAD /api/hello` (Claude Code's connectivity probe), the models list
//! in Anthropic's shape, and errors as `{"type":"error","error":{type,message}}`.
//!
//! Only translation lives here: the request becomes a [`PromptSpec`] (system
//! text and tools in the developer message, `tool_use` an assistant call to
//! `functions.NAME`, `tool_result` a tool message) and the [`Turn`] events
//! become content blocks (`thinking`, `text`, `tool_use`). Any `model` id is
//! accepted and echoed; the served model answers.
//!
//! Thinking: the analysis channel comes back as `thinking` blocks whose
//! `signature` is the analysis text sealed by the server ([`crate::sealed`]).
//! A later request that hands the block back gets that (authenticated) text
//! into the prompt as the analysis before the tool call, so gpt-oss keeps its
//! chain of thought across tool calls; blocks with any other signature (real
//! Anthropic ones, another key, tampering) are dropped. With
//! `thinking.display: "omitted"` (Claude Code sends it) the blocks come back
//! with an empty `thinking` and the signature only.
//!
//! Effort (gpt-oss has low/medium/high, not a token budget):
//! `output_config.effort` low/medium/high (`max` = high) wins; else
//! `thinking: {type: enabled, budget_tokens: B}`: B ≤ 4096 low, ≤ 16384
//! medium, more high (Claude Code's "think" / "think hard" / "ultrathink"
//! land on the three levels); `{type: disabled}`: low (effort `none` would
//! force the final channel and forbid tool calls); `adaptive` or absent:
//! the server's `--effort`.
//!
//! Deliberately lenient: unknown fields, `anthropic-beta` headers,
//! `cache_control`, `metadata`, `context_management`, `top_k` are ignored,
//! and server tools (`web_search_*`, `bash_*`, `text_editor_*`: a `type` and
//! no `input_schema`) are left out with a warning, never a 400.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gptoss_chat::Effort;
use gptoss_harmony::{Message, Role};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::prompt::{self, FunctionTool, PromptSpec, ResponseFormat, ToolChoice};
use crate::sealed::Sealer;
use crate::turn::{Finish, SegmentKind, Turn, TurnEvent, TurnOptions, TurnOutput, TurnUsage};
use crate::{ids, parse_body, AppState, Generation};

/// Paths whose errors (401 included) use Anthropic's shape.
pub(crate) fn is_anthropic_path(path: &str) -> bool {
    path == "/v1/messages" || path.starts_with("/v1/messages/")
}

/// Anthropic's error `type` for an HTTP status.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// An [`ApiError`] in Anthropic's shape. A full queue is Anthropic's
/// "overloaded" (529), which its clients retry with backoff.
pub(crate) fn error_response(e: &ApiError) -> Response {
    let status = if e.code == Some("queue_full") {
        StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
    } else {
        e.status
    };
    (status, Json(error_body(error_type(status), &e.message))).into_response()
}

/// The 401 of the auth middleware, for Anthropic paths.
pub(crate) fn unauthorized() -> Response {
    let message = "invalid x-api-key: send the server's key as `x-api-key: KEY` \
                   (or `Authorization: Bearer KEY`)";
    (
        StatusCode::UNAUTHORIZED,
        Json(error_body("authentication_error", message)),
    )
        .into_response()
}

/// `GET|HEAD /api/hello`: Claude Code checks that its base URL answers.
pub(crate) async fn hello() -> Json<Value> {
    Json(json!({"message": "hello"}))
}

/// The models list in Anthropic's shape (`anthropic.models.list()`).
pub(crate) fn models_list(state: &AppState) -> Value {
    let model = model_info(state);
    json!({
        "data": [model],
        "has_more": false,
        "first_id": state.config.model_id,
        "last_id": state.config.model_id,
    })
}

/// One model in Anthropic's shape.
pub(crate) fn model_info(state: &AppState) -> Value {
    json!({
        "type": "model",
        "id": state.config.model_id,
        "display_name": state.config.model_id,
        "created_at": ids::rfc3339_utc(state.created),
    })
}

#[derive(Debug, Deserialize)]
struct MessagesRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    system: Option<Value>,
    #[serde(default)]
    messages: Option<Vec<InMessage>>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    thinking: Option<Value>,
    #[serde(default)]
    output_config: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

fn invalid(message: impl Into<String>, param: &str) -> ApiError {
    ApiError::invalid(message, Some(param))
}

fn block_type(block: &Value) -> &str {
    block.get("type").and_then(Value::as_str).unwrap_or("")
}

/// The string field `key` of a content block, `""` when absent.
fn block_str<'a>(block: &'a Value, key: &str, param: &str) -> Result<&'a str, ApiError> {
    match block.get(key) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(invalid(
            format!(
                "{param}.{key}: expected a string, found {}.",
                prompt::type_name(other)
            ),
            &format!("{param}.{key}"),
        )),
    }
}

fn unsupported_media(kind: &str, param: &str) -> ApiError {
    let what = if kind == "image" {
        "images"
    } else {
        "documents"
    };
    invalid(
        format!("{what} not supported: this model reads text only ({param})."),
        param,
    )
}

/// A content field as a list of blocks (a string is one text block).
fn blocks(content: &Value, param: &str) -> Result<Vec<Value>, ApiError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(items) => {
            for (idx, item) in items.iter().enumerate() {
                if !item.is_object() {
                    return Err(invalid(
                        format!(
                            "{param}[{idx}]: expected a content block object, found {}.",
                            prompt::type_name(item)
                        ),
                        &format!("{param}[{idx}]"),
                    ));
                }
            }
            Ok(items.clone())
        }
        other => Err(invalid(
            format!(
                "{param}: expected a string or a list of content blocks, found {}.",
                prompt::type_name(other)
            ),
            param,
        )),
    }
}

/// Text blocks joined by blank lines (`system`, `tool_result` content).
/// `lenient`: other blocks (a tool result's `tool_reference`, `search_result`,
/// ...) go in as their JSON, for the model to read, instead of a 400.
fn text_of(content: &Value, param: &str, lenient: bool) -> Result<String, ApiError> {
    let mut parts = Vec::new();
    for (idx, block) in blocks(content, param)?.iter().enumerate() {
        let here = format!("{param}[{idx}]");
        match block_type(block) {
            "text" => parts.push(block_str(block, "text", &here)?.to_string()),
            kind @ ("image" | "document") => return Err(unsupported_media(kind, &here)),
            _ if lenient => parts.push(block.to_string()),
            other => {
                return Err(invalid(
                    format!("{here}.type: unsupported block type {other:?} here; expected 'text'."),
                    &format!("{here}.type"),
                ))
            }
        }
    }
    Ok(join_texts(parts))
}

fn join_texts(parts: Vec<String>) -> String {
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// `messages` -> harmony history; `system`-role messages go to `instructions`.
fn convert_messages(
    messages: &[InMessage],
    sealer: &Sealer,
    instructions: &mut Vec<String>,
) -> Result<Vec<Message>, ApiError> {
    if messages.is_empty() {
        return Err(invalid(
            "messages: at least one message is required.",
            "messages",
        ));
    }
    let mut history = Vec::new();
    // tool_use id -> tool name, from earlier assistant messages
    let mut call_names: Vec<(String, String)> = Vec::new();
    for (m_idx, m) in messages.iter().enumerate() {
        let param = format!("messages[{m_idx}].content");
        match m.role.as_str() {
            "system" => instructions.push(text_of(&m.content, &param, false)?),
            "user" => {
                let mut texts = Vec::new();
                for (idx, block) in blocks(&m.content, &param)?.iter().enumerate() {
                    let here = format!("{param}[{idx}]");
                    match block_type(block) {
                        "text" => texts.push(block_str(block, "text", &here)?.to_string()),
                        "tool_result" => {
                            // Text before a result is its own user message, in order.
                            let before = join_texts(std::mem::take(&mut texts));
                            if !before.is_empty() {
                                history.push(Message::from_role_and_content(Role::User, before));
                            }
                            let id = block_str(block, "tool_use_id", &here)?;
                            let name = call_names
                                .iter()
                                .rev()
                                .find(|(cid, _)| cid == id)
                                .map(|(_, n)| n.clone())
                                .ok_or_else(|| {
                                    invalid(
                                        format!(
                                            "{here}: tool_result block with tool_use_id {id:?} answers no \
                                             tool_use block of an earlier assistant message."
                                        ),
                                        &format!("{here}.tool_use_id"),
                                    )
                                })?;
                            let content = block.get("content").unwrap_or(&Value::Null);
                            let mut output = text_of(content, &format!("{here}.content"), true)?;
                            if block.get("is_error").and_then(Value::as_bool) == Some(true) {
                                // Harmony has no error flag; say it in the text.
                                output = format!("Error: {output}");
                            }
                            history.push(prompt::function_output_message(&name, &output));
                        }
                        "thinking" | "redacted_thinking" => {}
                        kind @ ("image" | "document") => {
                            return Err(unsupported_media(kind, &here))
                        }
                        other => {
                            return Err(invalid(
                                format!(
                                    "{here}.type: unsupported content block type {other:?} in a user \
                                     message; supported: 'text', 'tool_result'."
                                ),
                                &format!("{here}.type"),
                            ))
                        }
                    }
                }
                let text = join_texts(texts);
                if !text.is_empty() {
                    history.push(Message::from_role_and_content(Role::User, text));
                }
            }
            "assistant" => {
                let content = blocks(&m.content, &param)?;
                let has_calls = content.iter().any(|b| block_type(b) == "tool_use");
                // Text beside tool calls is a preamble (commentary); alone it is the answer.
                let text_channel = if has_calls { "commentary" } else { "final" };
                for (idx, block) in content.iter().enumerate() {
                    let here = format!("{param}[{idx}]");
                    match block_type(block) {
                        "text" => {
                            let text = block_str(block, "text", &here)?;
                            if !text.is_empty() {
                                history.push(
                                    Message::from_role_and_content(Role::Assistant, text)
                                        .with_channel(text_channel),
                                );
                            }
                        }
                        "thinking" => {
                            // Only our own sealed analysis goes back in; the
                            // signature, not the visible text, is trusted.
                            let signature = block_str(block, "signature", &here)?;
                            if let Some(analysis) = sealer.open(signature) {
                                if !analysis.is_empty() {
                                    history.push(
                                        Message::from_role_and_content(Role::Assistant, analysis)
                                            .with_channel("analysis"),
                                    );
                                }
                            }
                        }
                        "redacted_thinking" => {}
                        "tool_use" => {
                            let name = block_str(block, "name", &here)?;
                            if name.is_empty() {
                                return Err(invalid(
                                    format!("{here}.name: a tool_use block needs a name."),
                                    &format!("{here}.name"),
                                ));
                            }
                            let input = match block.get("input") {
                                None | Some(Value::Null) => "{}".to_string(),
                                Some(v) => v.to_string(),
                            };
                            history.push(prompt::function_call_message(name, &input));
                            let id = block_str(block, "id", &here)?;
                            call_names.push((id.to_string(), name.to_string()));
                        }
                        kind @ ("image" | "document") => {
                            return Err(unsupported_media(kind, &here))
                        }
                        other => {
                            return Err(invalid(
                                format!(
                                    "{here}.type: unsupported content block type {other:?} in an assistant \
                                     message; supported: 'text', 'thinking', 'redacted_thinking', 'tool_use'."
                                ),
                                &format!("{here}.type"),
                            ))
                        }
                    }
                }
            }
            other => {
                return Err(invalid(
                    format!(
                        "messages[{m_idx}].role: unexpected role {other:?}; supported: 'user', 'assistant'."
                    ),
                    &format!("messages[{m_idx}].role"),
                ))
            }
        }
    }
    Ok(history)
}

/// Client tools with an `input_schema` -> function tools; server tools
/// (a `type` but no schema) are left out.
fn convert_tools(tools: &[Value]) -> Result<Vec<FunctionTool>, ApiError> {
    let mut out = Vec::new();
    for (idx, tool) in tools.iter().enumerate() {
        let param = format!("tools[{idx}]");
        if !tool.is_object() {
            return Err(invalid(
                format!(
                    "{param}: expected a tool object, found {}.",
                    prompt::type_name(tool)
                ),
                &param,
            ));
        }
        let kind = tool.get("type").and_then(Value::as_str);
        let name = tool.get("name").and_then(Value::as_str);
        let schema = tool.get("input_schema").filter(|s| !s.is_null());
        let Some(schema) = schema else {
            if kind.is_some_and(|k| k != "custom") {
                eprintln!(
                    "warning: /v1/messages: server tool {:?} (type {:?}) is not available here; left out",
                    name.unwrap_or(""),
                    kind.unwrap_or("")
                );
                continue;
            }
            return Err(invalid(
                format!("{param}.input_schema: Field required."),
                &format!("{param}.input_schema"),
            ));
        };
        let description = tool.get("description").and_then(Value::as_str);
        let strict = tool.get("strict").and_then(Value::as_bool).unwrap_or(false);
        out.push(prompt::function_tool(
            name,
            description,
            Some(schema),
            strict,
            &param,
        )?);
    }
    Ok(out)
}

fn convert_tool_choice(
    value: Option<&Value>,
    tools: &[FunctionTool],
) -> Result<ToolChoice, ApiError> {
    let kind = match value {
        None | Some(Value::Null) => return Ok(ToolChoice::Auto),
        Some(Value::String(s)) => s.as_str(),
        Some(v @ Value::Object(_)) => v.get("type").and_then(Value::as_str).unwrap_or(""),
        Some(other) => {
            return Err(invalid(
                format!(
                    "tool_choice: expected an object, found {}.",
                    prompt::type_name(other)
                ),
                "tool_choice",
            ))
        }
    };
    match kind {
        "auto" => Ok(ToolChoice::Auto),
        "none" => Ok(ToolChoice::None),
        "any" if tools.is_empty() => Err(invalid(
            "tool_choice: 'any' needs at least one tool with an input_schema in 'tools'.",
            "tool_choice",
        )),
        "any" => Ok(ToolChoice::Required),
        "tool" => {
            let name = value
                .and_then(|v| v.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if tools.iter().any(|t| t.name == name) {
                Ok(ToolChoice::Named(name.to_string()))
            } else {
                Err(invalid(
                    format!("tool_choice: the tool {name:?} is not among 'tools'."),
                    "tool_choice.name",
                ))
            }
        }
        other => Err(invalid(
            format!(
                "tool_choice.type: unexpected value {other:?}; supported: 'auto', 'any', 'tool', 'none'."
            ),
            "tool_choice.type",
        )),
    }
}

/// gpt-oss effort from `output_config.effort` and `thinking` (see the
/// module doc for the mapping).
fn effort(req: &MessagesRequest, default: Effort) -> Effort {
    let named = req
        .output_config
        .as_ref()
        .and_then(|c| c.get("effort"))
        .and_then(Value::as_str);
    match named {
        Some("low") => return Effort::Low,
        Some("medium") => return Effort::Medium,
        Some("high" | "max") => return Effort::High,
        Some(other) => {
            eprintln!("warning: /v1/messages: unknown output_config.effort {other:?}; ignored")
        }
        None => {}
    }
    let Some(thinking) = req.thinking.as_ref() else {
        return default;
    };
    match thinking.get("type").and_then(Value::as_str) {
        Some("enabled") => match thinking.get("budget_tokens").and_then(Value::as_u64) {
            Some(b) if b <= 4096 => Effort::Low,
            Some(b) if b <= 16_384 => Effort::Medium,
            Some(_) => Effort::High,
            None => default,
        },
        Some("disabled") => Effort::Low,
        _ => default,
    }
}

/// The prompt a request describes.
fn prompt_spec(state: &AppState, req: &MessagesRequest) -> Result<PromptSpec, ApiError> {
    let mut instructions = Vec::new();
    if let Some(system) = &req.system {
        instructions.push(text_of(system, "system", false)?);
    }
    let Some(messages) = req.messages.as_deref() else {
        return Err(invalid("messages: Field required.", "messages"));
    };
    let history = convert_messages(messages, &state.sealer, &mut instructions)?;
    let tools = convert_tools(req.tools.as_deref().unwrap_or_default())?;
    let tool_choice = convert_tool_choice(req.tool_choice.as_ref(), &tools)?;
    Ok(PromptSpec {
        instructions,
        history,
        effort: effort(req, state.config.default_effort),
        tools,
        tool_choice,
        response_format: ResponseFormat::Text,
        ..PromptSpec::default()
    })
}

/// Tokens of the rendered prompt; 400 when it cannot fit the context. The
/// stream's `message_start` needs the count before the engine reports it, so
/// the prompt is rendered here and again by `AppState::start` (~5 ms for an
/// 18k-token prompt in a release build, against seconds of prefill).
fn prompt_tokens(state: &AppState, spec: &PromptSpec) -> Result<usize, ApiError> {
    let n = prompt::build(spec)?.tokens.len();
    let max = state.engine.info().context_tokens;
    if n > max {
        return Err(invalid(
            format!("prompt is too long: {n} tokens > {max} maximum"),
            "messages",
        ));
    }
    Ok(n)
}

/// `POST /v1/messages/count_tokens`.
pub(crate) async fn count_tokens(State(state): State<AppState>, body: Bytes) -> Response {
    let counted = parse_body::<MessagesRequest>(&body)
        .and_then(|req| prompt_spec(&state, &req))
        .and_then(|spec| prompt::build(&spec));
    match counted {
        Ok(built) => Json(json!({"input_tokens": built.tokens.len()})).into_response(),
        Err(e) => error_response(&e),
    }
}

/// `POST /v1/messages`.
pub(crate) async fn messages(State(state): State<AppState>, body: Bytes) -> Response {
    match handle(state, &body).await {
        Ok(response) => response,
        Err(e) => error_response(&e),
    }
}

async fn handle(state: AppState, body: &[u8]) -> Result<Response, ApiError> {
    let req: MessagesRequest = parse_body(body)?;
    let model = req
        .model
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| state.config.model_id.clone());
    // Claude clients name their own models, which all mean the served one; only
    // `<model_id>:<adapter>` chooses something, and must name a served adapter.
    let lora = match model.strip_prefix(state.config.model_id.as_str()) {
        Some(rest) if rest.starts_with(':') => state.check_model(Some(&model))?,
        _ => None,
    };
    let spec = prompt_spec(&state, &req)?;
    let input_tokens = prompt_tokens(&state, &spec)?;
    let tool_names = spec.tools.iter().map(|t| t.name.clone()).collect();
    let stop = req
        .stop_sequences
        .unwrap_or_default()
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    let generation = Generation {
        spec,
        // Missing (Anthropic requires it): up to the end of the context.
        max_tokens: req.max_tokens,
        max_tokens_param: "max_tokens",
        temperature: req.temperature,
        top_p: req.top_p,
        seed: None,
        options: TurnOptions {
            stop,
            tool_names,
            logprobs: None,
        },
        lora,
    };
    let mut turn = state.start(generation)?;
    let sealer = state.sealer.clone();
    // `thinking.display: "omitted"`: thinking blocks keep their signature
    // (the round trip still works) but not their text.
    let show_thinking = req
        .thinking
        .as_ref()
        .and_then(|t| t.get("display"))
        .and_then(Value::as_str)
        != Some("omitted");
    if req.stream.unwrap_or(false) {
        return Ok(stream(turn, sealer, model, input_tokens, show_thinking).into_response());
    }
    let mut output = TurnOutput::default();
    while let Some(event) = turn.next().await {
        output.push(&event);
    }
    if let Some(message) = output.error {
        return Err(ApiError::internal(format!("generation failed: {message}")));
    }
    let content: Vec<Value> = output
        .segments
        .iter()
        .filter_map(|(kind, text)| content_block(kind, text, &sealer, show_thinking))
        .collect();
    let finish = output.finish.unwrap_or(Finish::Stop);
    let stop_sequence = turn.stop_sequence();
    Ok(Json(json!({
        "id": ids::new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish, stop_sequence),
        "stop_sequence": stop_sequence,
        "usage": usage_json(&output.usage),
    }))
    .into_response())
}

/// One segment of the turn as a content block; empty text and thinking
/// segments give none (the stream opens a block on its first text too).
fn content_block(
    kind: &SegmentKind,
    text: &str,
    sealer: &Sealer,
    show_thinking: bool,
) -> Option<Value> {
    match kind {
        SegmentKind::Reasoning if !text.is_empty() => Some(json!({
            "type": "thinking", "thinking": if show_thinking { text } else { "" },
            "signature": sealer.seal(text),
        })),
        SegmentKind::Content if !text.is_empty() => Some(json!({"type": "text", "text": text})),
        SegmentKind::ToolCall { name, .. } => Some(json!({
            "type": "tool_use", "id": ids::new_id("toolu_"), "name": name,
            "input": tool_input(text).1,
        })),
        _ => None,
    }
}

/// A tool call's arguments as Anthropic's `input` object: (wire text, value).
/// Arguments that are not a JSON object (a cut-off call, a malformed one)
/// become `{}`: clients parse `input` as an object and fail on anything else.
fn tool_input(arguments: &str) -> (String, Value) {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => (arguments.trim().to_string(), v),
        _ => ("{}".to_string(), json!({})),
    }
}

fn stop_reason(finish: Finish, stop_sequence: Option<&str>) -> &'static str {
    match finish {
        _ if stop_sequence.is_some() => "stop_sequence",
        Finish::ToolCalls => "tool_use",
        Finish::Length => "max_tokens",
        Finish::Stop | Finish::Cancelled => "end_turn",
    }
}

fn usage_json(u: &TurnUsage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "output_tokens": u.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    })
}

fn frame(name: &str, data: Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

/// The content block being streamed.
struct OpenBlock {
    kind: SegmentKind,
    /// Index of its `content_block_start`, once sent.
    index: Option<usize>,
}

/// Anthropic SSE: `message_start`, `ping`, per block `content_block_start`
/// / `_delta`s / `_stop`, then `message_delta` (stop reason, usage) and
/// `message_stop`; a failure mid-stream is an `error` event. Tool arguments
/// go out as one `input_json_delta` when the call is complete, checked to be
/// a JSON object as in the non-streamed answer.
fn stream(
    mut turn: Turn,
    sealer: Sealer,
    model: String,
    input_tokens: usize,
    show_thinking: bool,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let start = json!({"type": "message_start", "message": {
            "id": ids::new_id("msg_"), "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 0,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }});
        for f in [
            frame("message_start", start),
            frame("ping", json!({"type": "ping"})),
        ] {
            if tx.send(f).await.is_err() {
                return;
            }
        }
        let mut n_blocks = 0usize;
        let mut open: Option<OpenBlock> = None;
        while let Some(event) = turn.next().await {
            let mut frames = Vec::new();
            match event {
                TurnEvent::Start(kind) => {
                    let mut block = OpenBlock { kind, index: None };
                    if let SegmentKind::ToolCall { name, .. } = &block.kind {
                        frames.push(block_start(
                            n_blocks,
                            json!({"type": "tool_use", "id": ids::new_id("toolu_"), "name": name, "input": {}}),
                        ));
                        block.index = Some(n_blocks);
                        n_blocks += 1;
                    }
                    open = Some(block);
                }
                TurnEvent::Delta(text) => {
                    // Tool arguments are sent whole at the end of the call.
                    let text_block = open
                        .as_mut()
                        .filter(|b| !matches!(b.kind, SegmentKind::ToolCall { .. }));
                    if let Some(block) = text_block {
                        // A text or thinking block opens on its first text.
                        let index = match block.index {
                            Some(index) => index,
                            None => {
                                let empty = match block.kind {
                                    SegmentKind::Reasoning => {
                                        json!({"type": "thinking", "thinking": "", "signature": ""})
                                    }
                                    _ => json!({"type": "text", "text": ""}),
                                };
                                frames.push(block_start(n_blocks, empty));
                                block.index = Some(n_blocks);
                                n_blocks += 1;
                                n_blocks - 1
                            }
                        };
                        let delta = match &block.kind {
                            SegmentKind::Reasoning if !show_thinking => None,
                            SegmentKind::Reasoning => {
                                Some(json!({"type": "thinking_delta", "thinking": text}))
                            }
                            _ => Some(json!({"type": "text_delta", "text": text})),
                        };
                        if let Some(delta) = delta {
                            frames.push(frame(
                                "content_block_delta",
                                json!({"type": "content_block_delta", "index": index, "delta": delta}),
                            ));
                        }
                    }
                }
                TurnEvent::End { kind, text } => {
                    if let Some(index) = open.take().and_then(|b| b.index) {
                        let last = match kind {
                            SegmentKind::Reasoning => Some(
                                json!({"type": "signature_delta", "signature": sealer.seal(&text)}),
                            ),
                            SegmentKind::ToolCall { .. } => Some(
                                json!({"type": "input_json_delta", "partial_json": tool_input(&text).0}),
                            ),
                            SegmentKind::Content => None,
                        };
                        if let Some(delta) = last {
                            frames.push(frame(
                                "content_block_delta",
                                json!({"type": "content_block_delta", "index": index, "delta": delta}),
                            ));
                        }
                        frames.push(frame(
                            "content_block_stop",
                            json!({"type": "content_block_stop", "index": index}),
                        ));
                    }
                }
                TurnEvent::Finished { finish, usage } => {
                    let stop_sequence = turn.stop_sequence();
                    frames.push(frame(
                        "message_delta",
                        json!({"type": "message_delta",
                               "delta": {"stop_reason": stop_reason(finish, stop_sequence), "stop_sequence": stop_sequence},
                               "usage": usage_json(&usage)}),
                    ));
                    frames.push(frame("message_stop", json!({"type": "message_stop"})));
                }
                TurnEvent::Logprobs(_) => {}
                TurnEvent::Error(message) => frames.push(frame(
                    "error",
                    error_body("api_error", &format!("generation failed: {message}")),
                )),
            }
            for f in frames {
                if tx.send(f).await.is_err() {
                    // The client went away: dropping `turn` cancels the request.
                    return;
                }
            }
        }
    });
    let ping = frame("ping", json!({"type": "ping"}));
    Sse::new(crate::receiver_stream(rx)).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .event(ping),
    )
}

fn block_start(index: usize, block: Value) -> Event {
    frame(
        "content_block_start",
        json!({"type": "content_block_start", "index": index, "content_block": block}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(extra: Value) -> MessagesRequest {
        let mut body = json!({"messages": [{"role": "user", "content": "hi"}]});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        serde_json::from_value(body).expect("request parses")
    }

    #[test]
    fn effort_mapping() {
        let d = Effort::Medium;
        assert_eq!(effort(&request(json!({})), d), d);
        let budget = |b: u64| json!({"thinking": {"type": "enabled", "budget_tokens": b}});
        assert_eq!(effort(&request(budget(1024)), d), Effort::Low);
        assert_eq!(effort(&request(budget(4096)), d), Effort::Low);
        assert_eq!(effort(&request(budget(10_000)), d), Effort::Medium);
        assert_eq!(effort(&request(budget(31_999)), d), Effort::High);
        assert_eq!(
            effort(&request(json!({"thinking": {"type": "disabled"}})), d),
            Effort::Low
        );
        assert_eq!(
            effort(
                &request(json!({"thinking": {"type": "adaptive"}})),
                Effort::High
            ),
            Effort::High
        );
        // output_config.effort wins over the budget.
        let both = json!({"thinking": {"type": "enabled", "budget_tokens": 1024},
                          "output_config": {"effort": "high"}});
        assert_eq!(effort(&request(both), d), Effort::High);
    }

    #[test]
    fn tool_input_is_always_an_object() {
        assert_eq!(tool_input(r#"{"a":1}"#).1, json!({"a": 1}));
        assert_eq!(tool_input(r#"{"a":1"#), ("{}".to_string(), json!({})));
        assert_eq!(tool_input("[1]").1, json!({}));
    }

    #[test]
    fn error_types() {
        assert_eq!(error_type(StatusCode::BAD_REQUEST), "invalid_request_error");
        assert_eq!(error_type(StatusCode::UNAUTHORIZED), "authentication_error");
        assert_eq!(error_type(StatusCode::NOT_FOUND), "not_found_error");
        assert_eq!(error_type(StatusCode::INTERNAL_SERVER_ERROR), "api_error");
    }
}
