//! gptoss-server: an OpenAI-compatible HTTP server (axum on tokio) in front of
//! the gpt-oss engine. The only crate that knows HTTP and OpenAI's wire JSON.
//!
//! # Endpoints
//! - `GET /`, `GET /static/{file}`: the web chat page (`web`; no auth).
//! - `GET /health`: liveness plus the scheduler's live counters (no auth).
//! - `GET /metrics`: the counters alone, JSON.
//! - `GET /v1/models`: the served model, and `MODEL:ADAPTER` for each LoRA
//!   adapter a request may choose by its `model` field (`ServerConfig::adapters`).
//! - `POST /v1/chat/completions` (`chat_api`), `POST /v1/responses` and
//!   `GET /v1/responses/{id}` (`responses_api`).
//! - `/v1/conversations[/{id}[/items[/{item_id}]]]` (`conversations_api`).
//! - `POST /v1/messages`, `POST /v1/messages/count_tokens`, `GET|HEAD
//!   /api/hello` (no auth): Anthropic's Messages API (`anthropic_api`).
//! - `/api/*`: Ollama's native API (`ollama_api`): version, tags, show, ps,
//!   chat, generate, pull.
//!
//! # One request, traced
//! 1. The handler reads the body, parses it into typed request structs
//!    (`serde_path_to_error` names the offending field in a 400), validates
//!    it, and maps it to a [`prompt::PromptSpec`]: instructions, harmony
//!    messages, effort, function tools, tool choice, response format.
//! 2. [`prompt::build`] renders the harmony prompt (system message with
//!    today's date and `Reasoning: …`, developer message with instructions
//!    and tools, history with closed turns' analysis dropped, then
//!    `<|start|>assistant`, plus a forced opening for effort `none` or a
//!    forced tool call).
//! 3. [`scheduler::Engine::submit`] queues the token ids (429 when the queue is
//!    full, 400 when the prompt exceeds the context). The engine thread
//!    batches it with the other active requests and sends back token ids.
//! 4. [`turn::Turn`] parses the tokens with harmony's lenient streaming parser
//!    into reasoning / content / tool-call segments, applies `stop` strings,
//!    and yields events. Streaming handlers turn each event into an SSE frame;
//!    non-streaming ones fold the same events, so both give the same split.
//! 5. Dropping the response (client gone) drops the `Turn`, which drops the
//!    engine handle: the engine cancels the sequence before its next step
//!    and frees its slot (visible in `/metrics`: `active` falls).
//!
//! # Threads
//! The tokio runtime runs HTTP, JSON, rendering, tokenizing and parsing. One
//! `gptoss-engine` OS thread per model owns the model, the KV cache slots and
//! the samplers (see `scheduler`). Channels connect them; no lock is shared
//! with the engine's hot loop except atomic counters.
//!
//! # Invariants
//! - No request can panic the server: every input is validated into a 4xx
//!   with OpenAI's error JSON; the model's malformed output is repaired by the
//!   lenient parser and never becomes a 5xx.
//! - No harmony control token or analysis-channel text reaches `content`.
//! - A request's tokens only reach its own channel (one sender per sequence).

pub mod anthropic_api;
pub mod builtin;
pub mod chat_api;
pub mod conversations_api;
pub mod error;
pub mod ids;
pub mod mcp_client;
mod mcp_tools;
pub mod ollama_api;
pub mod prompt;
pub mod responses_api;
mod responses_tools;
pub mod scheduler;
pub mod sealed;
pub mod store;
mod structured;
pub mod turn;
pub mod web;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use gptoss_chat::Effort;
use gptoss_engine::{SamplingParams, HARMONY_STOP_TOKENS};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

pub use error::ApiError;
pub use gptoss_engine::LoraId;
pub use ollama_api::ModelFacts;
pub use scheduler::{Engine, EngineInfo, MetricsSnapshot, SchedulerConfig, TokenLogprob};

use prompt::PromptSpec;
use scheduler::GenerationRequest;
use turn::{Turn, TurnOptions};

/// Largest request body accepted (bytes).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The id reported by `/v1/models` and accepted in `model` fields.
    pub model_id: String,
    /// When set, every request but `/health` and the web page needs `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// Reasoning effort when a request names none.
    pub default_effort: Effort,
    /// Where `store: true` responses are kept for `previous_response_id`:
    /// in memory by default; `gpt-oss serve` opens an SQLite file
    /// ([`store::ResponseStore::sqlite`]).
    pub response_store: store::ResponseStore,
    /// Built-in tools `/v1/responses` may run (`gpt-oss serve --browser`,
    /// `--python on`, `--handoff on`); empty: none.
    pub tools: gptoss_tools::ToolKit,
    /// Key of sealed reasoning (`reasoning.encrypted_content`, Anthropic
    /// thinking signatures); `None`: a random key made at start.
    pub reasoning_key: Option<sealed::Sealer>,
    /// The checkpoint's shape and size for Ollama's `/api/show`, `/api/tags`
    /// and `/api/ps` (`gpt-oss serve` fills it); `None`: unknown.
    pub model_facts: Option<ModelFacts>,
    /// `/v1/responses` connects to the MCP servers of `mcp` tools
    /// (`gpt-oss serve --mcp on`); `None`: those tools are left out.
    pub mcp: Option<mcp_client::McpSettings>,
    /// LoRA adapters the engine's model holds, each chosen by requests whose
    /// `model` is `<model_id>:<name>` (`gpt-oss serve --lora NAME=DIR`).
    pub adapters: Vec<ServedAdapter>,
}

/// A LoRA adapter requests may choose by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedAdapter {
    /// `[A-Za-z0-9._-]+`, unique: the part after `<model_id>:`.
    pub name: String,
    /// The adapter's id in the engine's model (`Model::add_lora`).
    pub lora: LoraId,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            model_id: "gpt-oss".into(),
            api_key: None,
            default_effort: Effort::Medium,
            response_store: store::ResponseStore::default(),
            tools: gptoss_tools::ToolKit::default(),
            reasoning_key: None,
            model_facts: None,
            mcp: None,
            adapters: Vec::new(),
        }
    }
}

struct Inner {
    engine: Engine,
    config: ServerConfig,
    /// Seals the analysis text handed to stateless clients.
    sealer: sealed::Sealer,
    store: store::ResponseStore,
    created: u64,
}

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// What a handler asks the engine for.
#[derive(Clone)]
pub(crate) struct Generation {
    pub spec: PromptSpec,
    pub max_tokens: Option<u64>,
    pub max_tokens_param: &'static str,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<i64>,
    pub options: TurnOptions,
    /// The LoRA adapter chosen by the request's `model` (None: as served).
    pub lora: Option<LoraId>,
}

impl AppState {
    /// What a request's `model` field chooses: the served model as it is
    /// (None: no or an empty field, the served id, Ollama's `ID:latest`) or
    /// one of its adapters (`ID:NAME`); any other name is a 404
    /// `model_not_found`.
    fn check_model(&self, model: Option<&str>) -> Result<Option<LoraId>, ApiError> {
        match model {
            None | Some("") => Ok(None),
            Some(m) => match self.adapter_named(m) {
                Some(lora) => Ok(Some(lora)),
                None if self.serves(m) => Ok(None),
                None => Err(ApiError::model_not_found(m, &self.served_list())),
            },
        }
    }

    /// The adapter `<model_id>:<name>` names, if any.
    pub(crate) fn adapter_named(&self, model: &str) -> Option<LoraId> {
        let name = model
            .strip_prefix(self.config.model_id.as_str())?
            .strip_prefix(':')?;
        self.config
            .adapters
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.lora)
    }

    /// Every model id a request may name: the served model, then
    /// `<model_id>:<adapter>` for each adapter.
    pub(crate) fn model_ids(&self) -> Vec<String> {
        let id = &self.config.model_id;
        std::iter::once(id.clone())
            .chain(
                self.config
                    .adapters
                    .iter()
                    .map(|a| format!("{id}:{}", a.name)),
            )
            .collect()
    }

    /// The served ids for an error message: `a`, or `a`, `a:x`.
    pub(crate) fn served_list(&self) -> String {
        self.model_ids().join("`, `")
    }

    /// Validate sampling settings, render the prompt and queue it.
    fn start(&self, g: Generation) -> Result<Turn, ApiError> {
        let temperature = g.temperature.unwrap_or(1.0);
        if !(temperature.is_finite() && (0.0..=2.0).contains(&temperature)) {
            return Err(ApiError::invalid(
                format!("Invalid 'temperature': {temperature}. Expected a number between 0 and 2."),
                Some("temperature"),
            ));
        }
        let top_p = g.top_p.unwrap_or(1.0);
        if !(top_p.is_finite() && (0.0..=1.0).contains(&top_p)) {
            return Err(ApiError::invalid(
                format!("Invalid 'top_p': {top_p}. Expected a number between 0 and 1."),
                Some("top_p"),
            ));
        }
        if g.max_tokens == Some(0) {
            return Err(ApiError::invalid(
                format!("Invalid '{}': 0. Expected at least 1.", g.max_tokens_param),
                Some(g.max_tokens_param),
            ));
        }
        let sampling = SamplingParams {
            // top_p = 0 keeps only the most likely token: greedy.
            temperature: if top_p == 0.0 {
                0.0
            } else {
                temperature as f32
            },
            top_p: if top_p == 0.0 { 1.0 } else { top_p as f32 },
            seed: g.seed.map(|s| s as u64),
            ..SamplingParams::default()
        };
        let built = prompt::build(&g.spec)?;
        let max_tokens = g
            .max_tokens
            .map(|m| usize::try_from(m).unwrap_or(usize::MAX));
        // Structured output closes its JSON within what can be generated.
        let budget = max_tokens.unwrap_or(usize::MAX).min(
            self.engine
                .info()
                .context_tokens
                .saturating_sub(built.tokens.len()),
        );
        let constraint = structured::constraint_for(&g.spec, &built.prefeed, budget)?;
        let handle = self.engine.submit(GenerationRequest {
            prompt: built.tokens,
            sampling,
            max_tokens,
            stop_tokens: HARMONY_STOP_TOKENS.to_vec(),
            constraint,
            logprobs: g.options.logprobs,
            lora: g.lora,
        })?;
        Ok(Turn::new(handle, &built.prefeed, g.options))
    }
}

/// Parse a request body: malformed JSON and wrong field types are 400s that
/// name the field.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            format!(
                "We could not parse the JSON body of your request ({e}). The body must be valid JSON \
                 (set Content-Type: application/json)."
            ),
            None,
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::invalid(
            format!(
                "The request body must be a JSON object, found {}.",
                prompt::type_name(&value)
            ),
            None,
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::invalid(format!("Invalid request: {inner}."), None)
        } else {
            ApiError::invalid(format!("Invalid value for '{path}': {inner}."), Some(&path))
        }
    })
}

/// An SSE body from a channel of events.
pub(crate) fn receiver_stream<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = Result<T, Infallible>> {
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

/// Constant-time comparison of two byte strings (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

async fn auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.config.api_key {
        let path = request.uri().path();
        if path != "/health" && path != "/api/hello" && !web::is_public(path) {
            // OpenAI and Ollama clients send `Authorization: Bearer KEY`,
            // Anthropic's send `x-api-key: KEY`; either one will do.
            let headers = request.headers();
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
                .map(str::trim)
                .unwrap_or("");
            if !constant_time_eq(given.as_bytes(), key.as_bytes()) {
                if anthropic_api::is_anthropic_path(path) {
                    return anthropic_api::unauthorized();
                }
                return error_for(path, ApiError::unauthorized());
            }
        }
    }
    next.run(request).await
}

/// An error in the shape of the API `path` belongs to (Anthropic's for
/// `/v1/messages*`, Ollama's for `/api/*`, OpenAI's otherwise).
fn error_for(path: &str, e: ApiError) -> Response {
    if anthropic_api::is_anthropic_path(path) {
        anthropic_api::error_response(&e)
    } else if ollama_api::is_ollama_path(path) {
        ollama_api::error_response(e)
    } else {
        e.into_response()
    }
}

/// Read a request body up to [`MAX_BODY_BYTES`], as JSON errors.
async fn limit_body(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(_) => error_for(
            parts.uri.path(),
            ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: format!(
                    "The request body is larger than {MAX_BODY_BYTES} bytes or could not be read."
                ),
                kind: "invalid_request_error",
                param: None,
                code: Some("request_too_large"),
            },
        ),
    }
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    let m = state.engine.metrics();
    Json(json!({
        "status": "ok",
        "model": state.config.model_id,
        "active_requests": m.active,
        "queued_requests": m.queued,
        "cache_slots_busy": m.active,
        "cache_slots_total": m.slots_total,
        "context_tokens": state.engine.info().context_tokens,
        "stored_responses": state.store.count().await.unwrap_or(0),
    }))
}

async fn metrics(State(state): State<AppState>) -> Json<MetricsSnapshot> {
    Json(state.engine.metrics())
}

async fn models(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Json<Value> {
    // Anthropic's SDKs always send `anthropic-version` and read their own shape.
    if headers.contains_key("anthropic-version") {
        return Json(anthropic_api::models_list(&state));
    }
    let data: Vec<Value> = state
        .model_ids()
        .iter()
        .map(|id| model_json(&state, id))
        .collect();
    Json(json!({
        "object": "list",
        "data": data,
    }))
}

async fn model(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    if id == state.config.model_id && headers.contains_key("anthropic-version") {
        Json(anthropic_api::model_info(&state)).into_response()
    } else if id == state.config.model_id || state.adapter_named(&id).is_some() {
        Json(model_json(&state, &id)).into_response()
    } else {
        ApiError::model_not_found(&id, &state.served_list()).into_response()
    }
}

/// One entry of `/v1/models`: the served model or one of its adapters.
fn model_json(state: &AppState, id: &str) -> Value {
    json!({"id": id, "object": "model", "created": state.created, "owned_by": "gpt-oss-rs",
           "context_length": state.engine.info().context_tokens})
}

async fn not_found(request: Request) -> Response {
    let path = request.uri().path();
    error_for(
        path,
        ApiError::not_found(
            format!("Unknown endpoint {} {path}.", request.method()),
            None,
        ),
    )
}

async fn method_not_allowed(request: Request) -> Response {
    let mut e = ApiError::invalid(
        format!(
            "Method {} is not allowed on {}.",
            request.method(),
            request.uri().path()
        ),
        None,
    );
    e.status = StatusCode::METHOD_NOT_ALLOWED;
    error_for(request.uri().path(), e)
}

/// The application: every route, auth and body limit.
pub fn router(engine: Engine, config: ServerConfig) -> Router {
    // Build the shared tokenizer now (it takes a noticeable fraction of a
    // second) instead of inside the first request.
    let _ = gptoss_harmony::Tokenizer::o200k_harmony().encode_ordinary("warm up");
    let store = config.response_store.clone();
    let sealer = match config.reasoning_key.clone() {
        Some(sealer) => sealer,
        None => sealed::Sealer::random().unwrap_or_else(|e| {
            eprintln!("warning: {e}; sealed reasoning uses a key derived from the clock");
            let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
            sealed::Sealer::from_seed(seed.as_bytes())
        }),
    };
    let state = AppState(Arc::new(Inner {
        engine,
        config,
        sealer,
        store,
        created: ids::unix_seconds(),
    }));
    Router::new()
        .route("/", get(web::index))
        .route("/index.html", get(web::index))
        .route("/static/{file}", get(web::asset))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/v1/chat/completions", post(chat_api::chat_completions))
        .route("/v1/responses", post(responses_api::create))
        .route(
            "/v1/responses/{id}",
            get(responses_api::retrieve).delete(responses_api::delete),
        )
        .route("/v1/conversations", post(conversations_api::create))
        .route(
            "/v1/conversations/{id}",
            get(conversations_api::retrieve)
                .post(conversations_api::update)
                .delete(conversations_api::delete),
        )
        .route(
            "/v1/conversations/{id}/items",
            get(conversations_api::list_items).post(conversations_api::add_items),
        )
        .route(
            "/v1/conversations/{id}/items/{item_id}",
            get(conversations_api::get_item).delete(conversations_api::delete_item),
        )
        .route("/v1/messages", post(anthropic_api::messages))
        .route(
            "/v1/messages/count_tokens",
            post(anthropic_api::count_tokens),
        )
        .route("/api/hello", get(anthropic_api::hello))
        .route("/api/version", get(ollama_api::version))
        .route("/api/tags", get(ollama_api::tags))
        .route("/api/show", post(ollama_api::show))
        .route("/api/ps", get(ollama_api::ps))
        .route("/api/chat", post(ollama_api::chat))
        .route("/api/generate", post(ollama_api::generate))
        .route("/api/pull", post(ollama_api::pull))
        .route("/api/embed", post(ollama_api::embed))
        .route("/api/embeddings", post(ollama_api::embed))
        .route("/api/create", post(ollama_api::unsupported))
        .route("/api/copy", post(ollama_api::unsupported))
        .route("/api/push", post(ollama_api::unsupported))
        .route("/api/delete", delete(ollama_api::unsupported))
        .route(
            "/api/blobs/{digest}",
            post(ollama_api::unsupported).head(ollama_api::unsupported),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(limit_body))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// Serve `app` on `listener` until `shutdown` resolves; then refuse new
/// requests, let in-flight ones finish for up to `grace`, cancel what is
/// left (their streams end cleanly with a finish reason and `[DONE]`), and
/// return once every connection is closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    engine: Engine,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    // Build the structured-output vocabulary (token trie, ~1 s of CPU) now,
    // in the background, not on the first json_schema request.
    structured::warm_up();
    let signal = async move {
        shutdown.await;
        engine.stop_accepting();
        let engine2 = engine.clone();
        tokio::spawn(async move {
            if !engine2.wait_idle(grace).await {
                engine2.cancel_all();
            }
        });
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(signal)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
