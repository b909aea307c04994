//! Test support: weightless models behind the engine seam and helpers to
//! call the router in-process (`tower::ServiceExt::oneshot`).
#![allow(dead_code)]

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use axum::Router;
use gptoss_engine::{EngineError, LanguageModel, LogitsFor, ScriptedCache, ScriptedModel};
use gptoss_harmony::tokenizer::{END, RETURN, START};
use gptoss_harmony::Tokenizer;
use gptoss_server::{router, Engine, SchedulerConfig, ServerConfig};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const VOCAB: usize = 201_088;
pub const MODEL_ID: &str = "test-model";

pub fn tokens(text: &str) -> Vec<u32> {
    Tokenizer::o200k_harmony().encode_with_special_tokens(text)
}

/// A scripted model that continues any prompt with `script` (harmony text).
pub fn scripted(script: &str) -> ScriptedModel {
    ScriptedModel::new(VOCAB, 8192, tokens(script))
}

pub fn app_with<M: LanguageModel + Send + 'static>(
    model: M,
    scheduler: SchedulerConfig,
    config: ServerConfig,
) -> (Router, Engine) {
    let engine = Engine::spawn(model, scheduler).expect("engine starts");
    (router(engine.clone(), config), engine)
}

pub fn config() -> ServerConfig {
    ServerConfig {
        model_id: MODEL_ID.into(),
        ..ServerConfig::default()
    }
}

pub fn app(script: &str) -> (Router, Engine) {
    app_with(
        scripted(script),
        SchedulerConfig {
            context_tokens: 4096,
            ..SchedulerConfig::default()
        },
        config(),
    )
}

pub async fn send(
    app: &Router,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, Bytes) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .header("content-type", "application/json")
        .body(
            body.map(|b| Body::from(b.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .expect("request builds");
    let resp = app.clone().oneshot(req).await.expect("router answers");
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .expect("body reads")
        .to_bytes();
    (status, bytes)
}

pub async fn post_json(app: &Router, path: &str, body: &str) -> (StatusCode, Value) {
    let (status, bytes) = send(app, "POST", path, Some(body), &[]).await;
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    (status, v)
}

pub async fn get_json(app: &Router, path: &str) -> (StatusCode, Value) {
    let (status, bytes) = send(app, "GET", path, None, &[]).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// SSE body -> (event name or "", data) frames. Fails on a malformed frame.
pub fn sse_frames(body: &[u8]) -> Vec<(String, String)> {
    let text = std::str::from_utf8(body).expect("SSE is UTF-8");
    let mut frames = Vec::new();
    for block in text.split("\n\n") {
        if block.trim().is_empty() {
            continue;
        }
        let mut event = String::new();
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
            } else if line.starts_with(':') {
            } else {
                panic!("unexpected SSE line {line:?}");
            }
        }
        if !data.is_empty() {
            frames.push((event, data.join("\n")));
        }
    }
    frames
}

/// Assert an OpenAI-shaped error.
pub fn assert_error(v: &Value, param: Option<&str>) {
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("code").is_some() && e.get("param").is_some(), "{v}");
    if let Some(p) = param {
        assert_eq!(e["param"], p, "{v}");
    }
}

/// A model that answers every prompt by copying the last user message into
/// the final channel: `<|channel|>final<|message|>{user text}<|return|>`. A
/// pure function of the cache contents (like a real model), so concurrent
/// requests that got mixed up would answer with someone else's text.
#[derive(Clone)]
pub struct EchoModel {
    pub delay: Duration,
}

impl EchoModel {
    fn next_token(history: &[u32]) -> u32 {
        let user = tokens("<|start|>user<|message|>");
        let assistant = tokens("<|start|>assistant");
        let Some(a) = rfind(history, &assistant) else {
            return RETURN;
        };
        let generated = &history[a + assistant.len()..];
        let before = &history[..a];
        let Some(u) = rfind(before, &user) else {
            return RETURN;
        };
        let start = u + user.len();
        let end = before[start..]
            .iter()
            .position(|&t| t == END)
            .map(|p| start + p)
            .unwrap_or(before.len());
        let mut answer = tokens("<|channel|>final<|message|>");
        answer.extend_from_slice(&before[start..end]);
        answer.push(RETURN);
        // Once the answer is complete, anything more is an end of turn.
        answer.get(generated.len()).copied().unwrap_or(START)
    }
}

fn rfind(hay: &[u32], needle: &[u32]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - needle.len())
        .rev()
        .find(|&i| hay[i..].starts_with(needle))
}

impl LanguageModel for EchoModel {
    type Cache = ScriptedCache;
    fn vocab_size(&self) -> usize {
        VOCAB
    }
    fn max_context(&self) -> usize {
        8192
    }
    fn new_cache(&self, max_tokens: usize) -> ScriptedCache {
        ScriptedModel::new(VOCAB, 8192, Vec::new()).new_cache(max_tokens)
    }
    fn forward(
        &self,
        tokens: &[u32],
        cache: &mut ScriptedCache,
        which: LogitsFor,
        logits: &mut Vec<f32>,
    ) -> Result<(), EngineError> {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        // Let the scripted cache do the bookkeeping (it stores the ids), then
        // overwrite the logits with our prediction.
        let inner = ScriptedModel::new(VOCAB, 8192, Vec::new());
        inner.forward(tokens, cache, LogitsFor::Last, logits)?;
        let _ = which;
        logits.clear();
        logits.resize(VOCAB, 0.0);
        let next = Self::next_token(cache.tokens());
        logits[next as usize] = 1.0e4;
        Ok(())
    }
}

/// A scripted model that sleeps before every forward call (to hold requests
/// in flight long enough to observe them).
#[derive(Clone)]
pub struct SlowModel {
    pub inner: ScriptedModel,
    pub delay: Duration,
}

impl LanguageModel for SlowModel {
    type Cache = ScriptedCache;
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
    fn max_context(&self) -> usize {
        self.inner.max_context()
    }
    fn new_cache(&self, max_tokens: usize) -> ScriptedCache {
        self.inner.new_cache(max_tokens)
    }
    fn forward(
        &self,
        tokens: &[u32],
        cache: &mut ScriptedCache,
        which: LogitsFor,
        logits: &mut Vec<f32>,
    ) -> Result<(), EngineError> {
        std::thread::sleep(self.delay);
        self.inner.forward(tokens, cache, which, logits)
    }
}

/// POST a JSON body; the status, the response headers and the JSON body.
pub async fn post_with_headers(
    app: &Router,
    path: &str,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let req = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request builds");
    let resp = app.clone().oneshot(req).await.expect("router answers");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body reads").to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, v)
}
