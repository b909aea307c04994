//! `POST /v1/chat/completions`: OpenAI Chat Completions request -> harmony
//! prompt -> engine -> `chat.completion` JSON or `chat.completion.chunk` SSE
//! (`data: {...}` frames, then `data: [DONE]`).
//!
//! Reasoning (what OpenAI's API does not define; we follow vLLM, SGLang and
//! llama.cpp): the analysis channel is returned as `reasoning_content` and,
//! for clients that read the newer name, also as `reasoning`, both on the
//! message and in stream deltas. On input an assistant message's earlier
//! reasoning is read from `reasoning_content`, `reasoning` or `thinking`.
//! Tool calls are returned as `tool_calls` (arguments streamed as deltas).

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::prompt::{self, FunctionTool, PromptSpec, ResponseFormat, ToolChoice};
use crate::turn::{SegmentKind, Turn, TurnEvent, TurnOptions, TurnOutput, TurnUsage};
use crate::{ids, parse_body, AppState, Generation};

#[derive(Debug, Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    reasoning_effort: Option<String>,
    #[serde(default)]
    tools: Option<Vec<ToolSpec>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    stop: Option<StopField>,
    #[serde(default)]
    n: Option<u64>,
    #[serde(default)]
    response_format: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StopField {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallIn>>,
    #[serde(default)]
    tool_call_id: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ToolCallIn {
    #[serde(default)]
    id: Option<String>,
    function: FunctionCallIn,
}

#[derive(Debug, Deserialize)]
struct FunctionCallIn {
    name: String,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ToolSpec {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    function: Option<FunctionSpec>,
}

#[derive(Debug, Deserialize)]
struct FunctionSpec {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

/// Text of a Chat Completions message's `content`.
fn content_text(content: Option<&Value>, param: &str) -> Result<String, ApiError> {
    prompt::content_text(content, param, &["text", "input_text", "output_text"])
}

fn convert_messages(
    messages: &[ChatMessage],
) -> Result<(Vec<String>, Vec<gptoss_harmony::Message>), ApiError> {
    use gptoss_harmony::{Message, Role};
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "'messages' must contain at least one message.",
            Some("messages"),
        ));
    }
    let mut instructions = Vec::new();
    let mut history = Vec::new();
    // tool_call id -> function name, from earlier assistant messages
    let mut call_names: Vec<(String, String)> = Vec::new();
    for (idx, m) in messages.iter().enumerate() {
        let param = format!("messages[{idx}].content");
        match m.role.as_str() {
            "system" | "developer" => instructions.push(content_text(m.content.as_ref(), &param)?),
            "user" => history.push(Message::from_role_and_content(Role::User, content_text(m.content.as_ref(), &param)?)),
            "assistant" => {
                let reasoning = m.reasoning_content.as_ref().or(m.reasoning.as_ref()).or(m.thinking.as_ref());
                if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
                    history.push(Message::from_role_and_content(Role::Assistant, r.clone()).with_channel("analysis"));
                }
                let text = content_text(m.content.as_ref(), &param)?;
                let calls = m.tool_calls.as_deref().unwrap_or_default();
                if !text.is_empty() {
                    // Text next to tool calls is a preamble (commentary); alone it is the answer.
                    let channel = if calls.is_empty() { "final" } else { "commentary" };
                    history.push(Message::from_role_and_content(Role::Assistant, text).with_channel(channel));
                }
                for call in calls {
                    let args = call.function.arguments.clone().unwrap_or_else(|| "{}".into());
                    history.push(prompt::function_call_message(&call.function.name, &args));
                    if let Some(id) = &call.id {
                        call_names.push((id.clone(), call.function.name.clone()));
                    }
                }
            }
            "tool" | "function" => {
                let output = content_text(m.content.as_ref(), &param)?;
                let by_id = m
                    .tool_call_id
                    .as_ref()
                    .and_then(|id| call_names.iter().rev().find(|(cid, _)| cid == id).map(|(_, n)| n.clone()));
                let name = by_id.or_else(|| m.name.clone()).ok_or_else(|| {
                    ApiError::invalid(
                        format!(
                            "messages[{idx}]: a tool message must answer an earlier assistant tool call: \
                             its 'tool_call_id' matches none and it has no 'name'."
                        ),
                        Some(&format!("messages[{idx}].tool_call_id")),
                    )
                })?;
                history.push(prompt::function_output_message(&name, &output));
            }
            other => {
                return Err(ApiError::invalid(
                    format!(
                        "Invalid value for 'messages[{idx}].role': {other:?}. Supported values are: 'system', \
                         'developer', 'user', 'assistant' and 'tool'."
                    ),
                    Some(&format!("messages[{idx}].role")),
                ))
            }
        }
    }
    Ok((instructions, history))
}

fn convert_tools(tools: Option<&[ToolSpec]>) -> Result<Vec<FunctionTool>, ApiError> {
    let mut out = Vec::new();
    for (idx, tool) in tools.unwrap_or_default().iter().enumerate() {
        if tool.kind != "function" {
            return Err(ApiError::invalid(
                format!("Invalid value for 'tools[{idx}].type': {:?}. Only 'function' tools are supported.", tool.kind),
                Some(&format!("tools[{idx}].type")),
            ));
        }
        let Some(f) = &tool.function else {
            return Err(ApiError::invalid(
                format!("Missing required parameter: 'tools[{idx}].function'."),
                Some(&format!("tools[{idx}].function")),
            ));
        };
        let param = format!("tools[{idx}].function");
        out.push(prompt::function_tool(
            f.name.as_deref(),
            f.description.as_deref(),
            f.parameters.as_ref(),
            f.strict.unwrap_or(false),
            &param,
        )?);
    }
    Ok(out)
}

/// Parse `tool_choice` (Chat Completions shape `{"type":"function","function":{"name"}}`
/// or the Responses shape `{"type":"function","name"}`).
pub(crate) fn parse_tool_choice(
    value: Option<&Value>,
    tools: &[FunctionTool],
) -> Result<ToolChoice, ApiError> {
    let choice = match value {
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(ApiError::invalid(
                    format!("Invalid value for 'tool_choice': {other:?}. Supported values are: 'none', 'auto' and 'required', or a function."),
                    Some("tool_choice"),
                ))
            }
        },
        Some(obj @ Value::Object(_)) => {
            let name = obj
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| obj.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid("'tool_choice' names no function.", Some("tool_choice")))?;
            ToolChoice::Named(name.to_string())
        }
        Some(other) => {
            return Err(ApiError::invalid(
                format!("'tool_choice' must be a string or an object, found {}.", prompt::type_name(other)),
                Some("tool_choice"),
            ))
        }
    };
    match &choice {
        ToolChoice::Named(name) if !tools.iter().any(|t| t.name == *name) => {
            Err(ApiError::invalid(
                format!("'tool_choice' names the function {name:?}, which is not in 'tools'."),
                Some("tool_choice"),
            ))
        }
        ToolChoice::Required if tools.is_empty() => Err(ApiError::invalid(
            "'tool_choice' is 'required' but no tools were given.",
            Some("tool_choice"),
        )),
        _ => Ok(choice),
    }
}

/// Parse `response_format` (Chat Completions) or `text.format` (Responses,
/// where the schema fields sit beside `type`).
pub(crate) fn parse_response_format(
    value: Option<&Value>,
    param: &str,
) -> Result<ResponseFormat, ApiError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(ResponseFormat::Text);
    };
    let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => {
            let spec = value.get("json_schema").unwrap_or(value);
            let name = spec.get("name").and_then(Value::as_str).unwrap_or("response").to_string();
            let schema = spec.get("schema").cloned().unwrap_or_else(|| json!({}));
            let schema_param = format!("{param}.json_schema.schema");
            prompt::check_schema(&schema, &schema_param, false)
                .and_then(|()| crate::structured::check_response_schema(&schema))
                .map_err(|m| {
                    ApiError::invalid(format!("Invalid schema for response_format '{name}': {m}"), Some(&schema_param))
                })?;
            Ok(ResponseFormat::JsonSchema {
                name,
                description: spec.get("description").and_then(Value::as_str).map(str::to_string),
                schema,
                strict: spec.get("strict").and_then(Value::as_bool).unwrap_or(false),
            })
        }
        other => Err(ApiError::invalid(
            format!("Invalid value for '{param}.type': {other:?}. Supported values are: 'text', 'json_object' and 'json_schema'."),
            Some(&format!("{param}.type")),
        )),
    }
}

/// The handler.
pub(crate) async fn chat_completions(State(state): State<AppState>, body: Bytes) -> Response {
    match handle(state, &body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn handle(state: AppState, body: &[u8]) -> Result<Response, ApiError> {
    let req: ChatRequest = parse_body(body)?;
    state.check_model(req.model.as_deref())?;
    if let Some(n) = req.n {
        if n != 1 {
            return Err(ApiError::invalid(
                format!(
                    "n = {n} is not supported: this server returns exactly one choice (n = 1)."
                ),
                Some("n"),
            ));
        }
    }
    let effort = match &req.reasoning_effort {
        Some(e) => prompt::parse_effort(e, "reasoning_effort")?,
        None => state.config.default_effort,
    };
    let (instructions, history) = convert_messages(&req.messages)?;
    let tools = convert_tools(req.tools.as_deref())?;
    let tool_choice = parse_tool_choice(req.tool_choice.as_ref(), &tools)?;
    let response_format = parse_response_format(req.response_format.as_ref(), "response_format")?;
    let stop = match req.stop {
        None => Vec::new(),
        Some(StopField::One(s)) => vec![s],
        Some(StopField::Many(v)) => v,
    };
    if stop.len() > 4 {
        return Err(ApiError::invalid(
            "'stop' accepts at most 4 sequences.",
            Some("stop"),
        ));
    }
    let max_tokens = req.max_completion_tokens.or(req.max_tokens);
    let spec = PromptSpec {
        instructions,
        history,
        effort,
        tools: tools.clone(),
        tool_choice,
        response_format,
        ..PromptSpec::default()
    };
    let generation = Generation {
        spec,
        max_tokens,
        max_tokens_param: if req.max_completion_tokens.is_some() {
            "max_completion_tokens"
        } else {
            "max_tokens"
        },
        temperature: req.temperature,
        top_p: req.top_p,
        seed: req.seed,
        options: TurnOptions {
            stop,
            tool_names: tools.iter().map(|t| t.name.clone()).collect(),
        },
    };
    let turn = state.start(generation)?;
    let model = state.config.model_id.clone();
    if req.stream.unwrap_or(false) {
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        Ok(stream(turn, model, include_usage).into_response())
    } else {
        let mut turn = turn;
        let mut output = TurnOutput::default();
        while let Some(event) = turn.next().await {
            output.push(&event);
        }
        if let Some(message) = output.error {
            return Err(ApiError::internal(format!("generation failed: {message}")));
        }
        Ok(Json(completion_json(&output, &model)).into_response())
    }
}

fn usage_json(u: &TurnUsage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    })
}

fn completion_json(out: &TurnOutput, model: &str) -> Value {
    let content = out.content();
    let reasoning = out.reasoning();
    let calls = out.tool_calls();
    let mut message = json!({
        "role": "assistant",
        "content": if content.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(content) },
        "refusal": null,
    });
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
        message["reasoning"] = json!(reasoning);
    }
    if !calls.is_empty() {
        message["tool_calls"] = calls
            .iter()
            .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
            .collect();
    }
    let finish = out.finish.map(|f| f.as_str()).unwrap_or("stop");
    json!({
        "id": ids::new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": ids::unix_seconds(),
        "model": model,
        "system_fingerprint": null,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage_json(&out.usage),
    })
}

fn stream(
    mut turn: Turn,
    model: String,
    include_usage: bool,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let id = ids::new_id("chatcmpl-");
        let created = ids::unix_seconds();
        let chunk = |delta: Value, finish: Option<&str>| {
            let mut c = json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": null,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            });
            if include_usage {
                c["usage"] = Value::Null;
            }
            Event::default().data(c.to_string())
        };
        if tx
            .send(chunk(json!({"role": "assistant", "content": ""}), None))
            .await
            .is_err()
        {
            return;
        }
        let mut n_calls = 0usize;
        let mut current: Option<SegmentKind> = None;
        while let Some(event) = turn.next().await {
            let frame = match &event {
                TurnEvent::Start(kind) => {
                    current = Some(kind.clone());
                    match kind {
                        SegmentKind::ToolCall { id, name } => {
                            n_calls += 1;
                            Some(chunk(
                                json!({"tool_calls": [{"index": n_calls - 1, "id": id, "type": "function",
                                    "function": {"name": name, "arguments": ""}}]}),
                                None,
                            ))
                        }
                        _ => None,
                    }
                }
                TurnEvent::Delta(text) => match &current {
                    Some(SegmentKind::Reasoning) => Some(chunk(
                        json!({"reasoning_content": text, "reasoning": text}),
                        None,
                    )),
                    Some(SegmentKind::Content) => Some(chunk(json!({"content": text}), None)),
                    Some(SegmentKind::ToolCall { .. }) => Some(chunk(
                        json!({"tool_calls": [{"index": n_calls.saturating_sub(1), "function": {"arguments": text}}]}),
                        None,
                    )),
                    None => None,
                },
                TurnEvent::End { .. } => {
                    current = None;
                    None
                }
                TurnEvent::Finished { finish, usage } => {
                    if tx
                        .send(chunk(json!({}), Some(finish.as_str())))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if include_usage {
                        let c = json!({
                            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                            "system_fingerprint": null, "choices": [], "usage": usage_json(usage),
                        });
                        if tx.send(Event::default().data(c.to_string())).await.is_err() {
                            return;
                        }
                    }
                    None
                }
                TurnEvent::Error(message) => {
                    let e = ApiError::internal(format!("generation failed: {message}"));
                    Some(Event::default().data(e.body().to_string()))
                }
            };
            if let Some(frame) = frame {
                if tx.send(frame).await.is_err() {
                    // The client went away: dropping `turn` cancels the request.
                    return;
                }
            }
        }
        let _ = tx.send(Event::default().data("[DONE]")).await;
    });
    Sse::new(crate::receiver_stream(rx)).keep_alive(KeepAlive::default())
}
