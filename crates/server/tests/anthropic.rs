//! The Anthropic Messages API over a real socket: the router served on
//! 127.0.0.1 by axum, a scripted model behind the engine seam, and reqwest
//! as the client. Checks the wire shapes Anthropic clients parse: content
//! blocks, SSE event order (every block started and stopped, indices in
//! order), tool_use round trips, sealed thinking signatures, count_tokens,
//! and errors in Anthropic's shape.

mod common;

use common::*;
use gptoss_engine::ScriptedModel;
use gptoss_server::{SchedulerConfig, ServerConfig};
use serde_json::{json, Value};

const THINK_THEN_ANSWER: &str =
    "<|channel|>analysis<|message|>The user greets me. I should greet back.<|end|><|start|>assistant<|channel|>final<|message|>Hello there! How can I help?<|return|>";
const TOOL_CALL: &str = "<|channel|>analysis<|message|>Need the weather tool.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>";
/// The call alone: what follows a forced opening of the call (tool_choice).
const FORCED_CALL: &str = "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>";
const KEY: &str = "test-key-123";

struct Server {
    base: String,
    http: reqwest::Client,
}

/// Serve a scripted model's router on a free loopback port.
async fn serve_with(model: ScriptedModel, config: ServerConfig) -> Server {
    let (app, _engine) = app_with(
        model,
        SchedulerConfig {
            context_tokens: 4096,
            ..SchedulerConfig::default()
        },
        config,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
    }
}

async fn serve(script: &str) -> Server {
    serve_model(scripted(script)).await
}

async fn serve_model(model: ScriptedModel) -> Server {
    serve_with(
        model,
        ServerConfig {
            api_key: Some(KEY.into()),
            ..config()
        },
    )
    .await
}

impl Server {
    async fn raw(&self, path: &str, body: &Value, key: &str) -> (u16, String) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .header(
                "anthropic-beta",
                "interleaved-thinking-2025-05-14,some-future-beta",
            )
            .json(body)
            .send()
            .await
            .expect("request sent");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body read"))
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, text) = self.raw(path, body, KEY).await;
        let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, v)
    }

    async fn message(&self, body: &Value) -> Value {
        let (status, v) = self.post("/v1/messages", body).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    async fn count(&self, body: &Value) -> u64 {
        let (status, v) = self.post("/v1/messages/count_tokens", body).await;
        assert_eq!(status, 200, "{v}");
        v["input_tokens"].as_u64().expect("input_tokens")
    }

    /// A streamed message: its SSE events (name, data), checked for order.
    async fn stream(&self, body: &Value) -> Vec<(String, Value)> {
        let mut body = body.clone();
        body["stream"] = json!(true);
        let (status, text) = self.raw("/v1/messages?beta=true", &body, KEY).await;
        assert_eq!(status, 200, "{text}");
        let events: Vec<(String, Value)> = sse_frames(text.as_bytes())
            .into_iter()
            .map(|(name, data)| {
                let v: Value = serde_json::from_str(&data)
                    .unwrap_or_else(|_| panic!("event data is not JSON: {data}"));
                (name, v)
            })
            .collect();
        check_event_order(&events);
        events
    }
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn body(messages: Value, extra: Value) -> Value {
    // Greedy: the scripted model's logits favour its script, not absolutely.
    let mut b = json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": messages, "temperature": 0});
    if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    b
}

fn weather_tools() -> Value {
    json!([{"name": "get_weather", "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

/// Anthropic's stream grammar: `message_start` first; blocks started at the
/// next index, given deltas of their own kind only while open
/// (`signature_delta` on thinking blocks), stopped once; then one
/// `message_delta` and `message_stop` last. `ping` may come anywhere after
/// `message_start`; every event's `type` is its name.
fn check_event_order(events: &[(String, Value)]) {
    assert!(!events.is_empty());
    assert_eq!(events[0].0, "message_start", "{events:?}");
    assert_eq!(events.last().map(|e| e.0.as_str()), Some("message_stop"));
    let mut open: Option<(u64, String)> = None;
    let mut next_index = 0u64;
    let mut saw_delta = false;
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str(), "event {i}: {data}");
        match name.as_str() {
            "message_start" => {
                assert_eq!(i, 0);
                let m = &data["message"];
                assert_eq!(m["type"], "message");
                assert_eq!(m["role"], "assistant");
                assert!(m["id"].as_str().is_some_and(|id| id.starts_with("msg_")));
                assert_eq!(m["content"], json!([]));
                assert!(m["usage"]["input_tokens"].as_u64().is_some_and(|n| n > 0));
            }
            "ping" => {}
            "content_block_start" => {
                assert!(open.is_none(), "block started inside another: {data}");
                assert!(!saw_delta, "block after message_delta");
                assert_eq!(data["index"], next_index, "{data}");
                let kind = data["content_block"]["type"]
                    .as_str()
                    .expect("block type")
                    .to_string();
                assert!(
                    ["thinking", "text", "tool_use"].contains(&kind.as_str()),
                    "{data}"
                );
                open = Some((next_index, kind));
                next_index += 1;
            }
            "content_block_delta" => {
                let (index, kind) = open.as_ref().expect("delta outside a block");
                assert_eq!(data["index"], *index, "{data}");
                let delta = data["delta"]["type"].as_str().unwrap_or("");
                let allowed: &[&str] = match kind.as_str() {
                    "thinking" => &["thinking_delta", "signature_delta"],
                    "text" => &["text_delta"],
                    _ => &["input_json_delta"],
                };
                assert!(allowed.contains(&delta), "{delta} in a {kind} block");
            }
            "content_block_stop" => {
                let (index, _) = open.take().expect("stop outside a block");
                assert_eq!(data["index"], index, "{data}");
            }
            "message_delta" => {
                assert!(open.is_none(), "message_delta with a block open");
                assert!(!saw_delta, "two message_delta events");
                saw_delta = true;
                assert!(data["delta"]["stop_reason"].is_string(), "{data}");
                assert!(data["usage"]["output_tokens"].as_u64().is_some());
            }
            "message_stop" => assert!(saw_delta && i == events.len() - 1),
            other => panic!("unexpected event {other}: {data}"),
        }
    }
}

/// Blocks rebuilt from the stream, as the SDKs accumulate them.
fn assemble(events: &[(String, Value)]) -> (Vec<Value>, Value) {
    let mut blocks: Vec<Value> = Vec::new();
    let mut json_bufs: Vec<String> = Vec::new();
    let mut delta = Value::Null;
    for (name, data) in events {
        match name.as_str() {
            "content_block_start" => {
                blocks.push(data["content_block"].clone());
                json_bufs.push(String::new());
            }
            "content_block_delta" => {
                let i = data["index"].as_u64().expect("index") as usize;
                let d = &data["delta"];
                let block = &mut blocks[i];
                match d["type"].as_str().unwrap_or("") {
                    "text_delta" => {
                        let t = format!(
                            "{}{}",
                            block["text"].as_str().unwrap_or(""),
                            d["text"].as_str().unwrap_or("")
                        );
                        block["text"] = json!(t);
                    }
                    "thinking_delta" => {
                        let t = format!(
                            "{}{}",
                            block["thinking"].as_str().unwrap_or(""),
                            d["thinking"].as_str().unwrap_or("")
                        );
                        block["thinking"] = json!(t);
                    }
                    "signature_delta" => block["signature"] = d["signature"].clone(),
                    "input_json_delta" => {
                        json_bufs[i].push_str(d["partial_json"].as_str().unwrap_or(""))
                    }
                    other => panic!("unknown delta {other}"),
                }
            }
            "content_block_stop" => {
                let i = data["index"].as_u64().expect("index") as usize;
                if blocks[i]["type"] == "tool_use" {
                    blocks[i]["input"] = serde_json::from_str(&json_bufs[i])
                        .unwrap_or_else(|_| panic!("tool input is not JSON: {}", json_bufs[i]));
                }
            }
            "message_delta" => delta = data.clone(),
            _ => {}
        }
    }
    (blocks, delta)
}

/// The blocks without their per-response ids and signatures.
fn comparable(blocks: &[Value]) -> Vec<Value> {
    blocks
        .iter()
        .map(|b| {
            let mut b = b.clone();
            if let Some(o) = b.as_object_mut() {
                for key in ["id", "signature"] {
                    if o.contains_key(key) {
                        o.insert(key.into(), json!("*"));
                    }
                }
            }
            b
        })
        .collect()
}

fn assert_anthropic_error(v: &Value, kind: &str) {
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

#[tokio::test]
async fn non_stream_text_with_thinking() {
    let s = serve(THINK_THEN_ANSWER).await;
    let req = body(json!([user("Hi")]), json!({}));
    let v = s.message(&req).await;
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("msg_")));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(
        v["model"], "claude-sonnet-4-5",
        "the request's model is echoed"
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    let content = v["content"].as_array().expect("content");
    assert_eq!(content.len(), 2, "{v}");
    assert_eq!(content[0]["type"], "thinking");
    assert_eq!(
        content[0]["thinking"],
        "The user greets me. I should greet back."
    );
    assert!(content[0]["signature"]
        .as_str()
        .is_some_and(|s| s.starts_with("gptoss1.")));
    assert_eq!(
        content[1],
        json!({"type": "text", "text": "Hello there! How can I help?"})
    );
    let usage = &v["usage"];
    assert_eq!(usage["input_tokens"].as_u64(), Some(s.count(&req).await));
    assert!(usage["output_tokens"].as_u64().is_some_and(|n| n > 10));
    assert_eq!(usage["cache_creation_input_tokens"], 0);
    assert_eq!(usage["cache_read_input_tokens"], 0);
}

#[tokio::test]
async fn stream_is_well_formed_and_matches_non_stream() {
    let s = serve(THINK_THEN_ANSWER).await;
    let req = body(json!([user("Hi")]), json!({"system": "Be brief."}));
    let events = s.stream(&req).await;
    let names: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(&names[..2], ["message_start", "ping"]);
    // The signature comes before the thinking block stops.
    let sig = names
        .iter()
        .zip(&events)
        .position(|(_, e)| e.1["delta"]["type"] == "signature_delta")
        .expect("a signature_delta");
    assert_eq!(events[sig + 1].0, "content_block_stop");
    assert_eq!(events[sig + 1].1["index"], 0);
    let (blocks, delta) = assemble(&events);
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    let once = s.message(&req).await;
    assert_eq!(
        comparable(&blocks),
        comparable(once["content"].as_array().expect("content"))
    );
    assert_eq!(
        delta["usage"]["output_tokens"],
        once["usage"]["output_tokens"]
    );
    assert_eq!(
        events[0].1["message"]["usage"]["input_tokens"],
        once["usage"]["input_tokens"]
    );
    assert_eq!(events[0].1["message"]["model"], "claude-sonnet-4-5");
}

#[tokio::test]
async fn tool_use_round_trip() {
    let s = serve(TOOL_CALL).await;
    let question = user("Weather in Paris?");
    let req = body(json!([question]), json!({"tools": weather_tools()}));
    let v = s.message(&req).await;
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    let content = v["content"].as_array().expect("content");
    let call = content.last().expect("a block");
    assert_eq!(call["type"], "tool_use");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["input"], json!({"city": "Paris"}));
    let id = call["id"].as_str().expect("id");
    assert!(id.starts_with("toolu_"), "{id}");

    // Streamed: the same blocks, the arguments as input_json_delta.
    let events = s.stream(&req).await;
    let (blocks, delta) = assemble(&events);
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(comparable(&blocks), comparable(content));

    // Turn 2: the answer goes back with the tool's result.
    let turn2 = body(
        json!([question, {"role": "assistant", "content": content},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id,
                 "content": [{"type": "text", "text": "18 C, sunny"}]}]}]),
        json!({"tools": weather_tools()}),
    );
    s.message(&turn2).await;
    // The result is in the prompt: it grows with the result's text.
    let mut longer = turn2.clone();
    longer["messages"][2]["content"][0]["content"] = json!("18 C, sunny, light wind from the west");
    assert!(s.count(&longer).await > s.count(&turn2).await);
    // is_error is said in the text; other result blocks (Claude Code's
    // tool_reference) are passed on as JSON, not refused.
    let mut failed = turn2.clone();
    failed["messages"][2]["content"][0]["is_error"] = json!(true);
    assert!(s.count(&failed).await > s.count(&turn2).await);
    let mut reference = turn2.clone();
    reference["messages"][2]["content"][0]["content"] =
        json!([{"type": "tool_reference", "tool_name": "get_weather"}]);
    s.message(&reference).await;
    // A result for a call that never happened is a 400.
    let mut orphan = turn2.clone();
    orphan["messages"][2]["content"][0]["tool_use_id"] = json!("toolu_nope");
    let (status, e) = s.post("/v1/messages", &orphan).await;
    assert_eq!(status, 400);
    assert_anthropic_error(&e, "invalid_request_error");
    assert!(e["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("toolu_nope")));
}

#[tokio::test]
async fn tool_choice_forces_a_declared_tool() {
    // The server opens the call (`tool`: up to `<|message|>`, `any`: up to
    // `functions.`); the script continues from either opening, token for
    // token as the prompt ends.
    let named = scripted(FORCED_CALL);
    let mut any = tokens("<|channel|>commentary to=functions.");
    any.extend(tokens(
        "get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>",
    ));
    let any = ScriptedModel::new(VOCAB, 8192, any);
    for (model, choice) in [
        (named, json!({"type": "tool", "name": "get_weather"})),
        (any, json!({"type": "any"})),
    ] {
        let s = serve_model(model).await;
        let req = body(
            json!([user("Anything")]),
            json!({"tools": weather_tools(), "tool_choice": choice}),
        );
        let v = s.message(&req).await;
        let calls: Vec<&Value> = v["content"]
            .as_array()
            .expect("content")
            .iter()
            .filter(|b| b["type"] == "tool_use")
            .collect();
        assert_eq!(calls.len(), 1, "{choice}: {v}");
        assert_eq!(calls[0]["name"], "get_weather", "{choice}: {v}");
        assert!(calls[0]["input"].is_object());
        assert_eq!(v["stop_reason"], "tool_use");
        let events = s.stream(&req).await;
        let (blocks, _) = assemble(&events);
        assert!(blocks
            .iter()
            .any(|b| b["type"] == "tool_use" && b["name"] == "get_weather"));
    }
    let s = serve(FORCED_CALL).await;
    // tool_choice none hides the tools: the prompt shrinks.
    let with = body(
        json!([user("x")]),
        json!({"tools": weather_tools(), "tool_choice": {"type": "auto"}}),
    );
    let without = body(
        json!([user("x")]),
        json!({"tools": weather_tools(), "tool_choice": {"type": "none"}}),
    );
    assert!(s.count(&without).await < s.count(&with).await);
    // A tool that is not declared cannot be chosen.
    let bad = body(
        json!([user("x")]),
        json!({"tools": weather_tools(), "tool_choice": {"type": "tool", "name": "nope"}}),
    );
    let (status, e) = s.post("/v1/messages", &bad).await;
    assert_eq!(status, 400);
    assert_anthropic_error(&e, "invalid_request_error");
}

#[tokio::test]
async fn thinking_signature_round_trip() {
    let s = serve(TOOL_CALL).await;
    let question = user("Weather in Paris?");
    let first = s
        .message(&body(json!([question]), json!({"tools": weather_tools()})))
        .await;
    let content = first["content"].as_array().expect("content").clone();
    assert_eq!(content[0]["type"], "thinking");
    let signature = content[0]["signature"].as_str().expect("signature");
    let id = content[1]["id"].clone();
    let turn2 = |assistant: Value| {
        body(
            json!([question, {"role": "assistant", "content": assistant},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "18 C"}]}]),
            json!({"tools": weather_tools()}),
        )
    };
    let no_thinking = turn2(json!([content[1]]));
    let kept = turn2(json!(content));
    let forged = turn2(json!([
        {"type": "thinking", "thinking": "Need the weather tool.", "signature": "EqQKCkYIBxgCKkA-not-ours"},
        content[1]
    ]));
    let mut tampered_sig = signature.to_string();
    let last = if tampered_sig.ends_with('A') {
        "B"
    } else {
        "A"
    };
    tampered_sig.replace_range(tampered_sig.len() - 1.., last);
    let tampered = turn2(json!([
        {"type": "thinking", "thinking": "Need the weather tool.", "signature": tampered_sig},
        content[1]
    ]));
    let base = s.count(&no_thinking).await;
    // Our signature brings the analysis back in front of the call: exactly
    // the tokens of that harmony message.
    let analysis =
        tokens("<|start|>assistant<|channel|>analysis<|message|>Need the weather tool.<|end|>");
    assert_eq!(s.count(&kept).await, base + analysis.len() as u64);
    // Foreign or tampered signatures are dropped silently.
    assert_eq!(s.count(&forged).await, base);
    assert_eq!(s.count(&tampered).await, base);
    for req in [&kept, &forged, &tampered] {
        s.message(req).await;
    }
    // `display: omitted` hides the text but keeps a signature that works.
    let omitted =
        json!({"tools": weather_tools(), "thinking": {"type": "adaptive", "display": "omitted"}});
    let hidden = s.message(&body(json!([question]), omitted.clone())).await;
    let (streamed, _) = assemble(&s.stream(&body(json!([question]), omitted)).await);
    for blocks in [hidden["content"].as_array().expect("content"), &streamed] {
        assert_eq!(blocks[0]["type"], "thinking");
        assert_eq!(blocks[0]["thinking"], "");
        let kept = turn2(json!([blocks[0], content[1]]));
        assert_eq!(s.count(&kept).await, base + analysis.len() as u64);
    }
    // The visible thinking text is not trusted: the signature decides.
    let edited = turn2(json!([
        {"type": "thinking", "thinking": "Something else entirely, and much longer than before.", "signature": signature},
        content[1]
    ]));
    assert_eq!(s.count(&edited).await, base + analysis.len() as u64);
}

#[tokio::test]
async fn count_tokens_grows_with_text() {
    let s = serve(THINK_THEN_ANSWER).await;
    let short = s.count(&body(json!([user("Hi")]), json!({}))).await;
    let long = s
        .count(&body(
            json!([user(
                "Hi, tell me about the weather in Paris today, please."
            )]),
            json!({}),
        ))
        .await;
    assert!(short > 0 && long > short, "{short} {long}");
    let with_system = s
        .count(&body(
            json!([user("Hi")]),
            json!({"system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]}),
        ))
        .await;
    assert!(with_system > short);
    let with_tools = s
        .count(&body(
            json!([user("Hi")]),
            json!({"tools": weather_tools()}),
        ))
        .await;
    assert!(with_tools > short);
}

#[tokio::test]
async fn stop_sequences_and_max_tokens() {
    let s = serve(THINK_THEN_ANSWER).await;
    let req = body(json!([user("Hi")]), json!({"stop_sequences": ["How can"]}));
    let v = s.message(&req).await;
    assert_eq!(v["stop_reason"], "stop_sequence", "{v}");
    assert_eq!(v["stop_sequence"], "How can");
    assert_eq!(v["content"][1]["text"], "Hello there! ");
    let (blocks, delta) = assemble(&s.stream(&req).await);
    assert_eq!(delta["delta"]["stop_reason"], "stop_sequence");
    assert_eq!(delta["delta"]["stop_sequence"], "How can");
    assert_eq!(blocks[1]["text"], "Hello there! ");

    let short = body(json!([user("Hi")]), json!({"max_tokens": 3}));
    let v = s.message(&short).await;
    assert_eq!(v["stop_reason"], "max_tokens", "{v}");
    assert_eq!(v["usage"]["output_tokens"], 3);
    let (_, delta) = assemble(&s.stream(&short).await);
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
}

#[tokio::test]
async fn unknown_fields_and_server_tools_are_ignored() {
    let s = serve(TOOL_CALL).await;
    let mut tools = weather_tools();
    tools[0]["cache_control"] = json!({"type": "ephemeral"});
    tools[0]["defer_loading"] = json!(true);
    tools[0]["some_future_field"] = json!({"x": 1});
    if let Some(list) = tools.as_array_mut() {
        list.push(json!({"type": "web_search_20250305", "name": "web_search", "max_uses": 5}));
        list.push(json!({"type": "bash_20250124", "name": "bash"}));
        list.push(json!({"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}));
    }
    let req = body(
        json!([
            {"role": "system", "content": "Extra instructions."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather?", "cache_control": {"type": "ephemeral"}, "citations": null}
            ]}
        ]),
        json!({
            "system": [{"type": "text", "text": "You are helpful.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "tools": tools,
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "metadata": {"user_id": "u-1"},
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "output_config": {"effort": "medium", "format": null},
            "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
            "top_k": 40,
            "temperature": 0.0,
            "top_p": 0.9,
            "service_tier": "auto",
            "container": null,
            "mcp_servers": [],
            "a_field_from_2030": {"nested": [1, 2, 3]}
        }),
    );
    let v = s.message(&req).await;
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    // The server tools are left out of the prompt: same count as without them.
    let mut plain = req.clone();
    plain["tools"] = weather_tools();
    assert_eq!(s.count(&req).await, s.count(&plain).await);
    // A system-role message in `messages` joins the instructions.
    let mut no_extra = req.clone();
    if let Some(m) = no_extra["messages"].as_array_mut() {
        m.remove(0);
    }
    assert!(s.count(&req).await > s.count(&no_extra).await);
    // max_tokens may be missing.
    let mut no_max = body(json!([user("Hi")]), json!({}));
    if let Some(o) = no_max.as_object_mut() {
        o.remove("max_tokens");
    }
    s.message(&no_max).await;
}

#[tokio::test]
async fn errors_are_anthropic_shaped() {
    let s = serve(THINK_THEN_ANSWER).await;
    // No messages.
    let (status, v) = s
        .post(
            "/v1/messages",
            &json!({"model": "claude-sonnet-4-5", "max_tokens": 10}),
        )
        .await;
    assert_eq!(status, 400);
    assert_anthropic_error(&v, "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("messages")));
    // Bad key, on both endpoints.
    for path in ["/v1/messages", "/v1/messages/count_tokens"] {
        let (status, text) = s
            .raw(path, &body(json!([user("Hi")]), json!({})), "wrong-key")
            .await;
        assert_eq!(status, 401, "{text}");
        let v: Value = serde_json::from_str(&text).expect("JSON");
        assert_anthropic_error(&v, "authentication_error");
    }
    // Images.
    let image = json!([{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "text", "text": "What is this?"}]}]);
    let (status, v) = s.post("/v1/messages", &body(image, json!({}))).await;
    assert_eq!(status, 400);
    assert_anthropic_error(&v, "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("images not supported")));
    // Wrong types, bad JSON, bad roles, bad values.
    for bad in [
        json!({"messages": "hi", "max_tokens": 5}),
        json!({"messages": [{"role": "robot", "content": "hi"}], "max_tokens": 5}),
        json!({"messages": [], "max_tokens": 5}),
        json!({"messages": [{"role": "user", "content": 5}], "max_tokens": 5}),
        json!({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}], "max_tokens": 5}),
        json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}),
        json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 7}),
        json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "tools": [{"name": "f"}]}),
        json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "tool_choice": {"type": "any"}}),
    ] {
        let (status, v) = s.post("/v1/messages", &bad).await;
        assert_eq!(status, 400, "{bad} -> {v}");
        assert_anthropic_error(&v, "invalid_request_error");
    }
    let resp = s
        .http
        .post(format!("{}/v1/messages", s.base))
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 400);
    let v: Value = resp.json().await.expect("JSON");
    assert_anthropic_error(&v, "invalid_request_error");
    // A prompt over the context (4096 tokens here).
    let long = "word ".repeat(6000);
    let (status, v) = s
        .post("/v1/messages", &body(json!([user(&long)]), json!({})))
        .await;
    assert_eq!(status, 400);
    assert_anthropic_error(&v, "invalid_request_error");
    let message = v["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("prompt is too long: ") && message.ends_with(" > 4096 maximum"),
        "{message}"
    );
}

#[tokio::test]
async fn hello_models_and_auth_headers() {
    let s = serve(THINK_THEN_ANSWER).await;
    // Claude Code's probe: no key needed, HEAD and GET.
    for method in [reqwest::Method::HEAD, reqwest::Method::GET] {
        let resp = s
            .http
            .request(method.clone(), format!("{}/api/hello", s.base))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 200, "{method}");
    }
    // A Bearer token (ANTHROPIC_AUTH_TOKEN) works as well as x-api-key.
    let resp = s
        .http
        .post(format!("{}/v1/messages", s.base))
        .bearer_auth(KEY)
        .json(&body(json!([user("Hi")]), json!({"max_tokens": 4})))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    // The models list: Anthropic's shape for Anthropic clients, OpenAI's otherwise.
    let get = |anthropic: bool| {
        let mut r = s.http.get(format!("{}/v1/models", s.base)).bearer_auth(KEY);
        if anthropic {
            r = r.header("anthropic-version", "2023-06-01");
        }
        async move {
            r.send()
                .await
                .expect("sent")
                .json::<Value>()
                .await
                .expect("JSON")
        }
    };
    let a = get(true).await;
    assert_eq!(a["data"][0]["type"], "model");
    assert_eq!(a["data"][0]["id"], MODEL_ID);
    assert!(a["data"][0]["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z') && t.len() == 20));
    assert_eq!(a["has_more"], false);
    let o = get(false).await;
    assert_eq!(o["object"], "list");
    assert_eq!(o["data"][0]["object"], "model");
}
