//! Ollama's native API (`/api/*`) over the same engine, so the `ollama`
//! clients, Open WebUI's Ollama connection and `codex --oss` work unchanged
//! when pointed at this server.
//!
//! - `GET /api/version`, `GET /api/tags`, `POST /api/show`, `GET /api/ps`:
//!   the one served model, described from [`ModelFacts`] and the engine.
//! - `POST /api/chat` and `POST /api/generate`: mapped to a
//!   [`PromptSpec`] like Chat Completions (tools, `think` → reasoning effort,
//!   `format` → the structured-output path of `response_format`), answered
//!   as one JSON object or, by default (`stream` is true in Ollama), as
//!   NDJSON lines ending with exactly one `done: true` line that carries the
//!   counts and durations (nanoseconds).
//! - `POST /api/pull` succeeds for the served model (it is already local);
//!   embeddings and model management answer a clear error.
//!
//! With a `format`, `content` is the final message alone: the sampling
//! constraint rules out a commentary preamble beside a formatted answer, so
//! the JSON always parses.
//!
//! `logprobs` / `top_logprobs` (≤ 20) give the answer tokens' log
//! probabilities (`{token, logprob, bytes, top_logprobs}`), on the line of
//! their text when streamed.
//!
//! Errors are Ollama's `{"error": "message"}` with the status code; a failure
//! after a stream has started is one last `{"error": …}` line.
//!
//! Tool-call arguments are a JSON object on Ollama's wire (not a string).
//! Every generation's arguments are constrained to the tool's schema
//! (`structured`), so they parse; should they not (a call cut short by a
//! cancellation), they come back as `{"raw_arguments": TEXT}`.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gptoss_chat::Effort;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::prompt::{self, FunctionTool, PromptSpec, ResponseFormat, ToolChoice};
use crate::turn::{logprob_json, Finish, SegmentKind, Turn, TurnEvent, TurnOptions, TurnUsage};
use crate::{ids, parse_body, AppState, Generation, LoraId};

/// The Ollama version `/api/version` reports. Codex (`--oss`, ollama
/// provider) refuses servers older than 0.13.4, the first Ollama with
/// `/v1/responses`; this server implements the API of that generation.
pub const OLLAMA_VERSION: &str = "0.13.5";

/// The family, architecture and quantization every gpt-oss checkpoint has
/// (MXFP4 experts).
const FAMILY: &str = "gpt-oss";
const QUANTIZATION: &str = "MXFP4";

/// Most `options.stop` strings (each is checked against every delta).
const MAX_STOP: usize = 64;

/// What the CLI knows about the loaded checkpoint, for `/api/show`,
/// `/api/tags` and `/api/ps` (the engine only knows the vocabulary and the
/// served context). All zeros: unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ModelFacts {
    pub parameter_count: u64,
    pub block_count: usize,
    pub embedding_length: usize,
    pub head_count: usize,
    pub head_count_kv: usize,
    pub expert_count: usize,
    pub expert_used_count: usize,
    pub sliding_window: usize,
    /// The longest context the checkpoint was trained for (the served one
    /// is `EngineInfo::context_tokens`).
    pub context_length: usize,
    /// Bytes of the checkpoint's weight files.
    pub file_bytes: u64,
}

/// Whether `path` belongs to this API (its errors use Ollama's shape).
pub(crate) fn is_ollama_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// An error in Ollama's shape: `{"error": "message"}` with the status.
pub(crate) fn error_response(e: ApiError) -> Response {
    (e.status, Json(json!({ "error": e.message }))).into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    let mut e = ApiError::invalid(message, None);
    e.status = status;
    e
}

fn reply(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(error_response)
}

// ---------------------------------------------------------------- models

impl AppState {
    /// `name` is the served model: its id, `ID:latest` for an untagged id
    /// (Ollama clients add the default tag), or `ID:ADAPTER`.
    pub(crate) fn serves(&self, name: &str) -> bool {
        let id = self.config.model_id.as_str();
        name == id
            || (!id.contains(':') && name.strip_suffix(":latest") == Some(id))
            || self.adapter_named(name).is_some()
    }

    /// The model a request names, and the adapter it chooses (None: the
    /// model as served).
    fn ollama_model(&self, model: Option<&str>) -> Result<(String, Option<LoraId>), ApiError> {
        match model.map(str::trim) {
            None | Some("") => Err(error(StatusCode::BAD_REQUEST, "model is required")),
            Some(name) if self.serves(name) => Ok((name.to_string(), self.adapter_named(name))),
            Some(name) => Err(model_not_found(name, &self.served_list())),
        }
    }

    fn facts(&self) -> ModelFacts {
        self.config.model_facts.clone().unwrap_or_default()
    }
}

fn model_not_found(name: &str, served: &str) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        format!("model {name:?} not found: this server serves `{served}` only"),
    )
}

/// `20.9B`, `116.8B`, `105.2M`: Ollama's `parameter_size`.
fn human_count(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}K", n / 1e3)
    } else {
        format!("{n}")
    }
}

fn details(state: &AppState) -> Value {
    let facts = state.facts();
    let size = if facts.parameter_count > 0 {
        human_count(facts.parameter_count)
    } else {
        "unknown".to_string()
    };
    json!({
        "parent_model": "",
        "format": "safetensors",
        "family": FAMILY,
        "families": [FAMILY],
        "parameter_size": size,
        "quantization_level": QUANTIZATION,
    })
}

/// A stable identifier of a served model (its id, shape and context), in
/// Ollama's `sha256:` form. Not a hash of the weights: hashing gigabytes at
/// start would cost seconds for a field clients only compare.
fn digest(state: &AppState, id: &str) -> String {
    let info = state.engine.info();
    let text = format!(
        "{}\n{:?}\n{}\n{}",
        id,
        state.facts(),
        info.vocab_size,
        info.context_tokens
    );
    format!("sha256:{:x}", Sha256::digest(text.as_bytes()))
}

fn modified_at(state: &AppState) -> String {
    ids::rfc3339_nanos(UNIX_EPOCH + Duration::from_secs(state.created))
}

/// One model of `/api/tags` and `/api/ps`: the served one or `ID:ADAPTER`.
fn model_entry(state: &AppState, id: &str) -> Value {
    json!({
        "name": id,
        "model": id,
        "modified_at": modified_at(state),
        "size": state.facts().file_bytes,
        "digest": digest(state, id),
        "details": details(state),
    })
}

/// `GET /api/version`.
pub(crate) async fn version() -> Json<Value> {
    Json(json!({ "version": OLLAMA_VERSION }))
}

/// `GET /api/tags`: the served model and one entry per adapter.
pub(crate) async fn tags(State(state): State<AppState>) -> Json<Value> {
    let models: Vec<Value> = state
        .model_ids()
        .iter()
        .map(|id| model_entry(&state, id))
        .collect();
    Json(json!({ "models": models }))
}

/// `GET /api/ps`: the served model is always loaded.
pub(crate) async fn ps(State(state): State<AppState>) -> Json<Value> {
    let mut entry = model_entry(&state, &state.config.model_id);
    entry["context_length"] = json!(state.engine.info().context_tokens);
    // Loaded for good; Ollama reports a never-expiring model this way too
    // (now + the longest Go duration, ~292 years).
    entry["expires_at"] = json!(ids::rfc3339_nanos(
        SystemTime::now() + Duration::from_secs(9_223_372_036)
    ));
    if let Some(obj) = entry.as_object_mut() {
        obj.remove("modified_at");
    }
    Json(json!({ "models": [entry] }))
}

#[derive(Debug, Deserialize)]
struct NameRequest {
    #[serde(default)]
    model: Option<String>,
    /// The older spelling of `model`.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
}

impl NameRequest {
    fn model(&self) -> Option<&str> {
        self.model.as_deref().or(self.name.as_deref())
    }
}

/// `POST /api/show`.
pub(crate) async fn show(State(state): State<AppState>, body: Bytes) -> Response {
    reply(show_inner(&state, &body))
}

fn show_inner(state: &AppState, body: &[u8]) -> Result<Response, ApiError> {
    let req: NameRequest = parse_body(body)?;
    let (name, _) = state.ollama_model(req.model())?;
    let facts = state.facts();
    let info = state.engine.info();
    let context = if facts.context_length > 0 {
        facts.context_length
    } else {
        info.context_tokens
    };
    let mut model_info = Map::new();
    let mut put = |key: &str, value: Value| {
        model_info.insert(key.to_string(), value);
    };
    put("general.architecture", json!(FAMILY));
    put("general.basename", json!(state.config.model_id));
    put("general.file_type", json!(QUANTIZATION));
    put("general.quantization_version", json!(2));
    if facts.parameter_count > 0 {
        put("general.parameter_count", json!(facts.parameter_count));
    }
    put("gpt-oss.context_length", json!(context));
    put("gpt-oss.vocab_size", json!(info.vocab_size));
    for (key, value) in [
        ("gpt-oss.block_count", facts.block_count),
        ("gpt-oss.embedding_length", facts.embedding_length),
        ("gpt-oss.attention.head_count", facts.head_count),
        ("gpt-oss.attention.head_count_kv", facts.head_count_kv),
        ("gpt-oss.attention.sliding_window", facts.sliding_window),
        ("gpt-oss.expert_count", facts.expert_count),
        ("gpt-oss.expert_used_count", facts.expert_used_count),
    ] {
        if value > 0 {
            put(key, json!(value));
        }
    }
    put("tokenizer.ggml.model", json!("o200k_harmony"));
    Ok(Json(json!({
        "license": "",
        "modelfile": format!(
            "# Served by gpt-oss-rs: the model is loaded from a checkpoint folder, not built from a Modelfile.\nFROM {name}\n"
        ),
        "parameters": "temperature 1\ntop_p 1",
        "template": "{{ harmony }} (the server renders OpenAI's harmony format itself: system, developer with # Instructions and tools, messages, then <|start|>assistant)",
        "details": details(state),
        "model_info": model_info,
        "capabilities": ["completion", "tools", "thinking"],
        "modified_at": modified_at(state),
    }))
    .into_response())
}

/// `POST /api/pull`: the served model is already here; any other is an error.
pub(crate) async fn pull(State(state): State<AppState>, body: Bytes) -> Response {
    reply(pull_inner(&state, &body))
}

fn pull_inner(state: &AppState, body: &[u8]) -> Result<Response, ApiError> {
    let req: NameRequest = parse_body(body)?;
    let name = match req.model().map(str::trim) {
        None | Some("") => return Err(error(StatusCode::BAD_REQUEST, "model is required")),
        Some(name) => name.to_string(),
    };
    if !state.serves(&name) {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!(
                "pull model {name:?}: this server cannot download models; it serves {:?}, which is already local",
                state.config.model_id
            ),
        ));
    }
    let done = json!({ "status": "success" });
    if req.stream.unwrap_or(true) {
        Ok(ndjson_once(&done))
    } else {
        Ok(Json(done).into_response())
    }
}

/// `POST /api/embed` and `/api/embeddings`.
pub(crate) async fn embed(State(state): State<AppState>) -> Response {
    error_response(error(
        StatusCode::BAD_REQUEST,
        format!(
            "{:?} does not support embeddings: gpt-oss is a generative model and this server has no embedding model",
            state.config.model_id
        ),
    ))
}

/// `/api/create`, `/api/copy`, `/api/delete`, `/api/push`, `/api/blobs/…`.
pub(crate) async fn unsupported(State(state): State<AppState>) -> Response {
    error_response(error(
        StatusCode::NOT_IMPLEMENTED,
        format!(
            "this server serves one model ({:?}) loaded at start; models cannot be created, copied, deleted or pushed",
            state.config.model_id
        ),
    ))
}

// ------------------------------------------------------------ generation

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StopField {
    One(String),
    Many(Vec<String>),
}

/// The `options` this server uses; every other Ollama option (`num_ctx`,
/// `top_k`, `repeat_penalty`, `num_gpu`, …) is accepted and ignored.
#[derive(Debug, Default, Deserialize)]
struct Options {
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    num_predict: Option<i64>,
    #[serde(default)]
    stop: Option<StopField>,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Option<Vec<ChatMessage>>,
    #[serde(default)]
    tools: Option<Vec<ToolSpec>>,
    #[serde(default)]
    think: Option<Value>,
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    options: Option<Options>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    logprobs: Option<bool>,
    #[serde(default)]
    top_logprobs: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    images: Option<Vec<Value>>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallIn>>,
    #[serde(default)]
    tool_name: Option<String>,
    #[serde(default)]
    tool_call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
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
    arguments: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ToolSpec {
    #[serde(rename = "type", default)]
    kind: Option<String>,
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
}

#[derive(Debug, Deserialize)]
struct GenerateRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    suffix: Option<String>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    context: Option<Vec<Value>>,
    #[serde(default)]
    raw: Option<bool>,
    #[serde(default)]
    images: Option<Vec<Value>>,
    #[serde(default)]
    think: Option<Value>,
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    options: Option<Options>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    logprobs: Option<bool>,
    #[serde(default)]
    top_logprobs: Option<u64>,
}

/// `think`: absent or true → the server's default effort; "low" / "medium"
/// / "high" → that effort; false → low effort with the thinking not returned
/// (gpt-oss always reasons first). Returns (effort, return the thinking).
fn parse_think(value: Option<&Value>, default: Effort) -> Result<(Effort, bool), ApiError> {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(true)) => Ok((default, true)),
        Some(Value::Bool(false)) => Ok((Effort::Low, false)),
        Some(Value::String(s)) => match s.as_str() {
            "low" => Ok((Effort::Low, true)),
            "medium" => Ok((Effort::Medium, true)),
            "high" => Ok((Effort::High, true)),
            other => Err(error(
                StatusCode::BAD_REQUEST,
                format!("invalid think value {other:?}: use true, false, \"low\", \"medium\" or \"high\""),
            )),
        },
        Some(other) => Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "think must be a boolean or \"low\", \"medium\" or \"high\", found {}",
                prompt::type_name(other)
            ),
        )),
    }
}

/// `format`: "json" or a JSON schema, enforced like Chat Completions'
/// `response_format` (json_object / strict json_schema).
fn parse_format(value: Option<&Value>) -> Result<ResponseFormat, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(ResponseFormat::Text),
        Some(Value::String(s)) if s.is_empty() => Ok(ResponseFormat::Text),
        Some(Value::String(s)) if s == "json" => Ok(ResponseFormat::JsonObject),
        Some(schema @ Value::Object(_)) => {
            prompt::check_schema(schema, "format", false)
                .and_then(|()| crate::structured::check_response_schema(schema))
                .map_err(|m| {
                    error(
                        StatusCode::BAD_REQUEST,
                        format!("invalid format schema: {m}"),
                    )
                })?;
            Ok(ResponseFormat::JsonSchema {
                name: "response".into(),
                description: None,
                schema: schema.clone(),
                strict: true,
            })
        }
        Some(other) => Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "invalid format: expected \"json\" or a JSON schema object, found {}",
                match other {
                    Value::String(s) => format!("{s:?}"),
                    v => prompt::type_name(v).to_string(),
                }
            ),
        )),
    }
}

fn convert_tools(tools: Option<&[ToolSpec]>) -> Result<Vec<FunctionTool>, ApiError> {
    let mut out = Vec::new();
    for (idx, tool) in tools.unwrap_or_default().iter().enumerate() {
        if let Some(kind) = tool.kind.as_deref().filter(|k| *k != "function") {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("tools[{idx}].type {kind:?} is not supported: only \"function\" tools"),
            ));
        }
        let Some(f) = &tool.function else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("tools[{idx}].function is required"),
            ));
        };
        out.push(prompt::function_tool(
            f.name.as_deref(),
            f.description.as_deref(),
            f.parameters.as_ref(),
            false,
            &format!("tools[{idx}].function"),
        )?);
    }
    Ok(out)
}

/// The arguments of an earlier call, as harmony's JSON text.
fn arguments_text(arguments: Option<&Value>) -> String {
    match arguments {
        None | Some(Value::Null) => "{}".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn convert_messages(
    messages: &[ChatMessage],
) -> Result<(Vec<String>, Vec<gptoss_harmony::Message>), ApiError> {
    use gptoss_harmony::{Message, Role};
    let mut instructions = Vec::new();
    let mut history = Vec::new();
    // (id, name) of every call so far, and the latest assistant message's
    // calls not answered yet (for tool messages that name neither).
    let mut calls: Vec<(String, String)> = Vec::new();
    let mut pending: VecDeque<String> = VecDeque::new();
    for (idx, m) in messages.iter().enumerate() {
        if m.images.as_ref().is_some_and(|i| !i.is_empty()) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("messages[{idx}].images: this model reads text only"),
            ));
        }
        let content = m.content.clone().unwrap_or_default();
        match m.role.as_str() {
            "system" | "developer" => instructions.push(content),
            "user" => history.push(Message::from_role_and_content(Role::User, content)),
            "assistant" => {
                if let Some(t) = m.thinking.as_ref().filter(|t| !t.is_empty()) {
                    history.push(
                        Message::from_role_and_content(Role::Assistant, t.clone())
                            .with_channel("analysis"),
                    );
                }
                let tool_calls = m.tool_calls.as_deref().unwrap_or_default();
                if !content.is_empty() {
                    // Text next to tool calls is a preamble (commentary).
                    let channel = if tool_calls.is_empty() {
                        "final"
                    } else {
                        "commentary"
                    };
                    history.push(
                        Message::from_role_and_content(Role::Assistant, content)
                            .with_channel(channel),
                    );
                }
                pending.clear();
                for call in tool_calls {
                    let name = &call.function.name;
                    history.push(prompt::function_call_message(
                        name,
                        &arguments_text(call.function.arguments.as_ref()),
                    ));
                    if let Some(id) = &call.id {
                        calls.push((id.clone(), name.clone()));
                    }
                    pending.push_back(name.clone());
                }
            }
            "tool" => {
                let by_id = m.tool_call_id.as_ref().and_then(|id| {
                    calls
                        .iter()
                        .rev()
                        .find(|(cid, _)| cid == id)
                        .map(|(_, n)| n.clone())
                });
                let name = m
                    .tool_name
                    .clone()
                    .or(by_id)
                    .or_else(|| m.name.clone())
                    .or_else(|| pending.front().cloned())
                    .ok_or_else(|| {
                        error(
                            StatusCode::BAD_REQUEST,
                            format!(
                                "messages[{idx}]: a tool message must answer an earlier assistant tool call; \
                                 set tool_name"
                            ),
                        )
                    })?;
                if let Some(pos) = pending.iter().position(|p| *p == name) {
                    pending.remove(pos);
                }
                history.push(prompt::function_output_message(&name, &content));
            }
            other => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "messages[{idx}].role {other:?} is not supported: use system, user, assistant or tool"
                    ),
                ))
            }
        }
    }
    Ok((instructions, history))
}

/// Sampling and length settings from `options`.
fn generation(
    spec: PromptSpec,
    options: Option<Options>,
    tools: &[FunctionTool],
    logprobs: Option<usize>,
    lora: Option<LoraId>,
) -> Result<Generation, ApiError> {
    let options = options.unwrap_or_default();
    let max_tokens = match options.num_predict {
        // -1: no limit, -2: until the context is full.
        None | Some(-1) | Some(-2) => None,
        Some(n) if n >= 0 => Some(n as u64),
        Some(n) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("invalid options.num_predict {n}: use a positive count, -1 (no limit) or -2 (fill the context)"),
            ))
        }
    };
    let stop = match options.stop {
        None => Vec::new(),
        Some(StopField::One(s)) => vec![s],
        Some(StopField::Many(v)) => v,
    };
    if stop.len() > MAX_STOP {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "options.stop has {} strings; at most {MAX_STOP}",
                stop.len()
            ),
        ));
    }
    Ok(Generation {
        spec,
        max_tokens,
        max_tokens_param: "options.num_predict",
        temperature: options.temperature,
        top_p: options.top_p,
        seed: options.seed,
        options: TurnOptions {
            stop,
            tool_names: tools.iter().map(|t| t.name.clone()).collect(),
            logprobs,
        },
        lora,
    })
}

/// `logprobs` / `top_logprobs` → how many alternatives per answer token
/// (`None`: not asked for).
fn parse_logprobs(logprobs: Option<bool>, top: Option<u64>) -> Result<Option<usize>, ApiError> {
    if let Some(top) = top {
        if top > crate::scheduler::MAX_TOP_LOGPROBS as u64 {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("invalid top_logprobs {top}: use 0 to 20"),
            ));
        }
        if top > 0 && logprobs != Some(true) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "top_logprobs requires logprobs: true",
            ));
        }
    }
    Ok((logprobs == Some(true)).then_some(top.unwrap_or(0) as usize))
}

/// Which endpoint a turn answers (the shape of its lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Chat,
    Generate,
}

/// Everything a reply needs besides the turn.
struct Reply {
    api: Api,
    model: String,
    show_thinking: bool,
    /// Answer tokens' log probabilities were asked for.
    logprobs: bool,
    started: Instant,
}

impl Reply {
    /// One line (or the whole non-streamed answer) without the final fields.
    fn chunk(&self, content: &str, thinking: &str, tool_calls: &[Value]) -> Value {
        let mut v =
            json!({"model": self.model, "created_at": ids::rfc3339_nanos(SystemTime::now())});
        let with_thinking = self.show_thinking && !thinking.is_empty();
        match self.api {
            Api::Chat => {
                let mut message = json!({"role": "assistant", "content": content});
                if with_thinking {
                    message["thinking"] = json!(thinking);
                }
                if !tool_calls.is_empty() {
                    message["tool_calls"] = json!(tool_calls);
                }
                v["message"] = message;
            }
            Api::Generate => {
                v["response"] = json!(content);
                if with_thinking {
                    v["thinking"] = json!(thinking);
                }
            }
        }
        v["done"] = json!(false);
        v
    }

    /// Mark `v` as the last line: reason, counts and durations (ns).
    fn finish(&self, v: &mut Value, done_reason: &str, usage: &TurnUsage, first: Option<Instant>) {
        let end = Instant::now();
        let first = first.unwrap_or(end);
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        v["done"] = json!(true);
        v["done_reason"] = json!(done_reason);
        v["total_duration"] = json!(nanos(end - self.started));
        v["load_duration"] = json!(0);
        v["prompt_eval_count"] = json!(usage.prompt_tokens);
        v["prompt_eval_duration"] = json!(nanos(first - self.started));
        v["eval_count"] = json!(usage.completion_tokens);
        v["eval_duration"] = json!(nanos(end - first));
    }
}

fn done_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Length => "length",
        Finish::Stop | Finish::ToolCalls | Finish::Cancelled => "stop",
    }
}

/// A tool call as Ollama writes it: arguments are an object.
fn tool_call_json(index: usize, id: &str, name: &str, arguments: &str) -> Value {
    let arguments = match serde_json::from_str::<Value>(arguments.trim()) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ if arguments.trim().is_empty() => json!({}),
        _ => json!({ "raw_arguments": arguments }),
    };
    json!({"id": id, "function": {"index": index, "name": name, "arguments": arguments}})
}

fn ndjson_line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

fn ndjson_once(v: &Value) -> Response {
    ndjson_response(Body::from(ndjson_line(v)))
}

fn ndjson_response(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

/// `POST /api/chat`.
pub(crate) async fn chat(State(state): State<AppState>, body: Bytes) -> Response {
    reply(chat_inner(state, &body).await)
}

async fn chat_inner(state: AppState, body: &[u8]) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: ChatRequest = parse_body(body)?;
    let (model, lora) = state.ollama_model(req.model.as_deref())?;
    let logprobs = parse_logprobs(req.logprobs, req.top_logprobs)?;
    let (effort, show_thinking) = parse_think(req.think.as_ref(), state.config.default_effort)?;
    let response_format = parse_format(req.format.as_ref())?;
    let tools = convert_tools(req.tools.as_deref())?;
    let messages = req.messages.unwrap_or_default();
    let stream = req.stream.unwrap_or(true);
    let reply = Reply {
        api: Api::Chat,
        model,
        show_thinking,
        logprobs: logprobs.is_some(),
        started,
    };
    if messages.is_empty() {
        // Ollama's "load the model" request: nothing to generate.
        return Ok(loaded(&reply, stream));
    }
    let (instructions, history) = convert_messages(&messages)?;
    let spec = PromptSpec {
        instructions,
        history,
        effort,
        tools: tools.clone(),
        tool_choice: ToolChoice::Auto,
        response_format,
        ..PromptSpec::default()
    };
    let turn = state.start(generation(spec, req.options, &tools, logprobs, lora)?)?;
    run(turn, reply, stream).await
}

/// `POST /api/generate`: one user turn (`prompt`, with `system` as the
/// instructions).
pub(crate) async fn generate(State(state): State<AppState>, body: Bytes) -> Response {
    reply(generate_inner(state, &body).await)
}

async fn generate_inner(state: AppState, body: &[u8]) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: GenerateRequest = parse_body(body)?;
    let (model, lora) = state.ollama_model(req.model.as_deref())?;
    let logprobs = parse_logprobs(req.logprobs, req.top_logprobs)?;
    let unsupported = |what: &str| Err(error(StatusCode::BAD_REQUEST, what.to_string()));
    if req.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return unsupported("suffix (fill-in-the-middle) is not supported by gpt-oss");
    }
    if req.images.as_ref().is_some_and(|i| !i.is_empty()) {
        return unsupported("images are not supported: this model reads text only");
    }
    if req.raw == Some(true) {
        return unsupported(
            "raw prompts are not supported: the server always renders the harmony format; send the text as prompt without raw",
        );
    }
    if req.template.as_deref().is_some_and(|t| !t.is_empty()) {
        return unsupported(
            "template is not supported: the server always renders the harmony format",
        );
    }
    if req.context.as_ref().is_some_and(|c| !c.is_empty()) {
        return unsupported(
            "context (token ids of an earlier answer) is not supported: send the conversation to /api/chat",
        );
    }
    let (effort, show_thinking) = parse_think(req.think.as_ref(), state.config.default_effort)?;
    let response_format = parse_format(req.format.as_ref())?;
    let stream = req.stream.unwrap_or(true);
    let reply = Reply {
        api: Api::Generate,
        model,
        show_thinking,
        logprobs: logprobs.is_some(),
        started,
    };
    let prompt = req.prompt.unwrap_or_default();
    if prompt.is_empty() {
        return Ok(loaded(&reply, stream));
    }
    let spec = PromptSpec {
        instructions: req.system.into_iter().collect(),
        history: vec![gptoss_harmony::Message::from_role_and_content(
            gptoss_harmony::Role::User,
            prompt,
        )],
        effort,
        response_format,
        ..PromptSpec::default()
    };
    let turn = state.start(generation(spec, req.options, &[], logprobs, lora)?)?;
    run(turn, reply, stream).await
}

/// The answer to a request with nothing to generate (`done_reason: "load"`).
fn loaded(reply: &Reply, stream: bool) -> Response {
    let mut v = reply.chunk("", "", &[]);
    v["done"] = json!(true);
    v["done_reason"] = json!("load");
    if stream {
        ndjson_once(&v)
    } else {
        Json(v).into_response()
    }
}

async fn run(turn: Turn, reply: Reply, stream: bool) -> Result<Response, ApiError> {
    if stream {
        return Ok(run_stream(turn, reply));
    }
    let mut turn = turn;
    let (mut content, mut thinking) = (String::new(), String::new());
    let mut calls = Vec::new();
    let mut logprobs = Vec::new();
    let mut first = None;
    while let Some(event) = turn.next().await {
        match event {
            TurnEvent::Start(_) => {}
            TurnEvent::Logprobs(lps) => logprobs.extend(lps.iter().map(logprob_json)),
            TurnEvent::Delta(_) => {
                first.get_or_insert_with(Instant::now);
            }
            TurnEvent::End { kind, text } => match kind {
                SegmentKind::Reasoning => thinking.push_str(&text),
                SegmentKind::Content => content.push_str(&text),
                SegmentKind::ToolCall { id, name } => {
                    if reply.api == Api::Chat {
                        calls.push(tool_call_json(calls.len(), &id, &name, &text));
                    } else {
                        eprintln!("warning: /api/generate: the model called {name:?}; dropped (generate has no tools)");
                    }
                }
            },
            TurnEvent::Finished { finish, usage } => {
                let mut v = reply.chunk(&content, &thinking, &calls);
                if reply.logprobs {
                    v["logprobs"] = Value::Array(logprobs);
                }
                reply.finish(&mut v, done_reason(finish), &usage, first);
                return Ok(Json(v).into_response());
            }
            TurnEvent::Error(message) => {
                return Err(ApiError::internal(format!("generation failed: {message}")));
            }
        }
    }
    Err(ApiError::internal("generation ended without a result"))
}

fn run_stream(mut turn: Turn, reply: Reply) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut current: Option<SegmentKind> = None;
        let mut first = None;
        let mut n_calls = 0usize;
        // The latest answer line, held back so the log probabilities of its
        // tokens (the next event) ride on it, as in Ollama.
        let mut held: Option<Value> = None;
        while let Some(event) = turn.next().await {
            if let TurnEvent::Logprobs(lps) = &event {
                let line = held.get_or_insert_with(|| reply.chunk("", "", &[]));
                let list = line["logprobs"].as_array().cloned().unwrap_or_default();
                line["logprobs"] = Value::Array(
                    list.into_iter()
                        .chain(lps.iter().map(logprob_json))
                        .collect(),
                );
                continue;
            }
            if let Some(line) = held.take() {
                if tx.send(ndjson_line(&line)).await.is_err() {
                    return;
                }
            }
            let line = match event {
                TurnEvent::Logprobs(_) => None,
                TurnEvent::Start(kind) => {
                    current = Some(kind);
                    None
                }
                TurnEvent::Delta(text) => {
                    first.get_or_insert_with(Instant::now);
                    match &current {
                        Some(SegmentKind::Content) if reply.logprobs => {
                            held = Some(reply.chunk(&text, "", &[]));
                            None
                        }
                        Some(SegmentKind::Content) => Some(reply.chunk(&text, "", &[])),
                        Some(SegmentKind::Reasoning) if reply.show_thinking => {
                            Some(reply.chunk("", &text, &[]))
                        }
                        // Tool calls go out whole, when their arguments are complete.
                        _ => None,
                    }
                }
                TurnEvent::End { kind, text } => {
                    current = None;
                    match kind {
                        SegmentKind::ToolCall { id, name } if reply.api == Api::Chat => {
                            n_calls += 1;
                            let call = tool_call_json(n_calls - 1, &id, &name, &text);
                            Some(reply.chunk("", "", &[call]))
                        }
                        SegmentKind::ToolCall { name, .. } => {
                            eprintln!("warning: /api/generate: the model called {name:?}; dropped (generate has no tools)");
                            None
                        }
                        _ => None,
                    }
                }
                TurnEvent::Finished { finish, usage } => {
                    let mut v = reply.chunk("", "", &[]);
                    reply.finish(&mut v, done_reason(finish), &usage, first);
                    Some(v)
                }
                TurnEvent::Error(message) => {
                    Some(json!({ "error": format!("generation failed: {message}") }))
                }
            };
            if let Some(line) = line {
                if tx.send(ndjson_line(&line)).await.is_err() {
                    // The client went away: dropping `turn` cancels the request.
                    return;
                }
            }
        }
    });
    ndjson_response(Body::from_stream(crate::receiver_stream(rx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sizes() {
        assert_eq!(human_count(20_914_757_184), "20.9B");
        assert_eq!(human_count(116_829_156_672), "116.8B");
        assert_eq!(human_count(105_200_000), "105.2M");
        assert_eq!(human_count(512), "512");
    }

    #[test]
    fn think_values() {
        let d = Effort::Medium;
        assert_eq!(parse_think(None, d).ok(), Some((Effort::Medium, true)));
        assert_eq!(
            parse_think(Some(&json!(false)), d).ok(),
            Some((Effort::Low, false))
        );
        assert_eq!(
            parse_think(Some(&json!("high")), d).ok(),
            Some((Effort::High, true))
        );
        assert!(parse_think(Some(&json!("max")), d).is_err());
        assert!(parse_think(Some(&json!(1)), d).is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(
            parse_format(Some(&json!(""))).ok(),
            Some(ResponseFormat::Text)
        );
        assert_eq!(
            parse_format(Some(&json!("json"))).ok(),
            Some(ResponseFormat::JsonObject)
        );
        assert!(matches!(
            parse_format(Some(
                &json!({"type": "object", "properties": {"a": {"type": "string"}}})
            )),
            Ok(ResponseFormat::JsonSchema { strict: true, .. })
        ));
        assert!(parse_format(Some(&json!("yaml"))).is_err());
        assert!(parse_format(Some(&json!({"type": "strin"}))).is_err());
    }

    #[test]
    fn tool_call_arguments_are_objects() {
        let c = tool_call_json(0, "call_1", "f", r#"{"a": 1}"#);
        assert_eq!(c["function"]["arguments"], json!({"a": 1}));
        let c = tool_call_json(1, "call_2", "f", "");
        assert_eq!(c["function"]["arguments"], json!({}));
        let c = tool_call_json(2, "call_3", "f", "[1, 2");
        assert_eq!(
            c["function"]["arguments"],
            json!({"raw_arguments": "[1, 2"})
        );
        assert_eq!(c["function"]["index"], 2);
    }
}
