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
    /// `{"effort": ...}`: where OpenRouter-style clients put the effort.
    #[serde(default)]
    reasoning: Option<ReasoningField>,
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
    #[serde(default)]
    logprobs: Option<bool>,
    #[serde(default)]
    top_logprobs: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ReasoningField {
    #[serde(default)]
    effort: Option<String>,
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
    let lora = state.check_model(req.model.as_deref())?;
    let n = req.n.unwrap_or(1);
    if n == 0 || n > MAX_CHOICES {
        return Err(ApiError::invalid(
            format!("Invalid 'n': {n}. Expected a value between 1 and {MAX_CHOICES}."),
            Some("n"),
        ));
    }
    let logprobs = parse_logprobs(req.logprobs, req.top_logprobs)?;
    let effort = match (
        &req.reasoning_effort,
        req.reasoning.as_ref().and_then(|r| r.effort.as_ref()),
    ) {
        (Some(e), _) => prompt::parse_effort(e, "reasoning_effort")?,
        (None, Some(e)) => prompt::parse_effort(e, "reasoning.effort")?,
        (None, None) => state.config.default_effort,
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
            logprobs,
        },
        lora,
    };
    // n choices: n generations of the same prompt (each its own seed when
    // one is given), run side by side by the batching scheduler.
    let mut turns = Vec::new();
    for i in 0..n {
        let mut g = generation.clone();
        g.seed = g.seed.map(|seed| seed.wrapping_add(i as i64));
        turns.push(state.start(g)?);
    }
    // The adapter's id when one was chosen, as OpenAI echoes the model used.
    let model = match (lora, req.model) {
        (Some(_), Some(m)) => m,
        _ => state.config.model_id.clone(),
    };
    if req.stream.unwrap_or(false) {
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        Ok(stream(turns, model, include_usage, logprobs.is_some()).into_response())
    } else {
        let outputs =
            futures_util::future::join_all(turns.into_iter().map(|mut turn| async move {
                let mut output = TurnOutput::default();
                while let Some(event) = turn.next().await {
                    output.push(&event);
                }
                output
            }))
            .await;
        if let Some(message) = outputs.iter().find_map(|o| o.error.clone()) {
            return Err(ApiError::internal(format!("generation failed: {message}")));
        }
        Ok(Json(completion_json(&outputs, &model, logprobs.is_some())).into_response())
    }
}

/// Most choices one request may ask for (`n`).
pub const MAX_CHOICES: u64 = 8;

/// The usage of n choices of one prompt: the prompt counted once, as OpenAI
/// bills it.
fn total_usage(usages: &[TurnUsage]) -> TurnUsage {
    let mut total = usages.first().copied().unwrap_or_default();
    for u in usages.iter().skip(1) {
        total.completion_tokens += u.completion_tokens;
        total.reasoning_tokens += u.reasoning_tokens;
    }
    total
}

/// `logprobs` / `top_logprobs` -> how many alternatives to report (`None`:
/// no log probabilities).
fn parse_logprobs(logprobs: Option<bool>, top: Option<u64>) -> Result<Option<usize>, ApiError> {
    if let Some(top) = top {
        if top > crate::scheduler::MAX_TOP_LOGPROBS as u64 {
            return Err(ApiError::invalid(
                format!("Invalid 'top_logprobs': {top}. Expected a value between 0 and 20."),
                Some("top_logprobs"),
            ));
        }
        if logprobs != Some(true) {
            return Err(ApiError::invalid(
                "'top_logprobs' requires 'logprobs' to be true.",
                Some("top_logprobs"),
            ));
        }
    }
    Ok((logprobs == Some(true)).then_some(top.unwrap_or(0) as usize))
}

fn logprobs_json(lps: &[crate::TokenLogprob]) -> Value {
    json!({"content": lps.iter().map(crate::turn::logprob_json).collect::<Vec<_>>(), "refusal": null})
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

fn completion_json(outputs: &[TurnOutput], model: &str, with_logprobs: bool) -> Value {
    let choices: Vec<Value> = outputs
        .iter()
        .enumerate()
        .map(|(i, out)| choice_json(i, out, with_logprobs))
        .collect();
    let usages: Vec<TurnUsage> = outputs.iter().map(|o| o.usage).collect();
    json!({
        "id": ids::new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": ids::unix_seconds(),
        "model": model,
        "system_fingerprint": null,
        "choices": choices,
        "usage": usage_json(&total_usage(&usages)),
    })
}

fn choice_json(index: usize, out: &TurnOutput, with_logprobs: bool) -> Value {
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
    json!({"index": index, "message": message,
           "logprobs": if with_logprobs { logprobs_json(&out.logprobs) } else { Value::Null },
           "finish_reason": finish})
}

/// What every chunk of one streamed completion shares.
#[derive(Clone)]
struct ChunkHead {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    with_logprobs: bool,
}

impl ChunkHead {
    fn chunk(&self, index: usize, delta: Value, finish: Option<&str>, logprobs: Value) -> Event {
        let mut c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "system_fingerprint": null,
            "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
        });
        if self.include_usage {
            c["usage"] = Value::Null;
        }
        Event::default().data(c.to_string())
    }
}

/// SSE of the n choices: each choice's chunks (tagged with its index) as
/// they come, then the usage chunk (if asked) and `[DONE]` once all ended.
fn stream(
    turns: Vec<Turn>,
    model: String,
    include_usage: bool,
    with_logprobs: bool,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    let head = ChunkHead {
        id: ids::new_id("chatcmpl-"),
        created: ids::unix_seconds(),
        model,
        include_usage,
        with_logprobs,
    };
    tokio::spawn(async move {
        let choices = turns.into_iter().enumerate().map(|(index, turn)| {
            tokio::spawn(stream_choice(turn, index, head.clone(), tx.clone()))
        });
        let mut usages = Vec::new();
        for result in futures_util::future::join_all(choices).await {
            match result {
                Ok(Some(usage)) => usages.push(usage),
                // The client went away or the choice failed (its error was sent).
                _ => return,
            }
        }
        if include_usage {
            let c = json!({
                "id": head.id, "object": "chat.completion.chunk", "created": head.created, "model": head.model,
                "system_fingerprint": null, "choices": [], "usage": usage_json(&total_usage(&usages)),
            });
            if tx.send(Event::default().data(c.to_string())).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Event::default().data("[DONE]")).await;
    });
    Sse::new(crate::receiver_stream(rx)).keep_alive(KeepAlive::default())
}

/// One choice's chunks; its usage, or `None` when the stream must end (the
/// client is gone: dropping `turn` cancels the request; or it failed).
async fn stream_choice(
    mut turn: Turn,
    index: usize,
    head: ChunkHead,
    tx: tokio::sync::mpsc::Sender<Event>,
) -> Option<TurnUsage> {
    let chunk = |delta: Value, finish: Option<&str>| head.chunk(index, delta, finish, Value::Null);
    tx.send(chunk(json!({"role": "assistant", "content": ""}), None))
        .await
        .ok()?;
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
            // The tokens of the content delta just sent.
            TurnEvent::Logprobs(lps) if head.with_logprobs => {
                Some(head.chunk(index, json!({}), None, logprobs_json(lps)))
            }
            TurnEvent::Logprobs(_) => None,
            TurnEvent::Finished { finish, usage } => {
                tx.send(chunk(json!({}), Some(finish.as_str())))
                    .await
                    .ok()?;
                return Some(*usage);
            }
            TurnEvent::Error(message) => {
                let e = ApiError::internal(format!("generation failed: {message}"));
                tx.send(Event::default().data(e.body().to_string()))
                    .await
                    .ok()?;
                return Some(TurnUsage::default());
            }
        };
        if let Some(frame) = frame {
            tx.send(frame).await.ok()?;
        }
    }
    None
}
