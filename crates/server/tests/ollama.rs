//! Ollama's native API (`/api/*`) over real HTTP: the router is served on a
//! loopback socket and called with reqwest, like an Ollama client would.
//! Weightless scripted models sit behind the engine seam, so the expected
//! text, thinking and tool calls are known exactly.

mod common;

use axum::Router;
use common::*;
use gptoss_server::{ModelFacts, SchedulerConfig, ServerConfig};
use serde_json::{json, Value};

const THINK_THEN_ANSWER: &str = "<|channel|>analysis<|message|>Let me think.<|end|><|start|>assistant<|channel|>final<|message|>Hello there!<|return|>";
const TOOL_CALL: &str = "<|channel|>analysis<|message|>Need the weather tool.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>";

fn facts() -> ModelFacts {
    ModelFacts {
        parameter_count: 20_914_757_184,
        block_count: 24,
        embedding_length: 2880,
        head_count: 64,
        head_count_kv: 8,
        expert_count: 32,
        expert_used_count: 4,
        sliding_window: 128,
        context_length: 131_072,
        file_bytes: 13_761_264_768,
    }
}

fn config_with(api_key: Option<&str>) -> ServerConfig {
    ServerConfig {
        model_id: MODEL_ID.into(),
        api_key: api_key.map(str::to_string),
        model_facts: Some(facts()),
        ..ServerConfig::default()
    }
}

/// Serve `app` on a free loopback port; returns the base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

async fn server(script: &str) -> String {
    let (app, _engine) = app_with(
        scripted(script),
        SchedulerConfig {
            context_tokens: 4096,
            ..SchedulerConfig::default()
        },
        config_with(None),
    );
    serve(app).await
}

struct Reply {
    status: u16,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }

    /// Every NDJSON line, parsed (each must be one JSON object).
    fn lines(&self) -> Vec<Value> {
        assert!(
            self.text.ends_with('\n'),
            "NDJSON ends with a newline: {:?}",
            self.text
        );
        self.text
            .lines()
            .map(|l| {
                let v: Value =
                    serde_json::from_str(l).unwrap_or_else(|_| panic!("line is not JSON: {l:?}"));
                assert!(v.is_object(), "{l}");
                v
            })
            .collect()
    }

    /// Assert an Ollama-shaped error: `{"error": "…"}` and nothing else.
    fn assert_error(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.text);
        let v = self.json();
        let obj = v.as_object().expect("object");
        assert_eq!(obj.len(), 1, "{v}");
        assert!(v["error"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
}

async fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
    call_with(base, method, path, body, None).await
}

async fn call_with(
    base: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> Reply {
    let client = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, format!("{base}{path}"));
    if let Some(body) = body {
        req = req.json(&body);
    }
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.expect("body");
    Reply {
        status,
        content_type,
        text,
    }
}

fn chat_body(extra: Value) -> Value {
    let mut body = json!({"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}],
                          "options": {"temperature": 0}});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    body
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

/// The final line's counts and durations are present and consistent.
fn assert_final_stats(v: &Value) {
    assert_eq!(v["done"], true, "{v}");
    for key in [
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ] {
        assert!(v[key].is_u64(), "{key} missing in {v}");
    }
    assert!(v["prompt_eval_count"].as_u64() > Some(0), "{v}");
    assert!(v["eval_count"].as_u64() > Some(0), "{v}");
    let total = v["total_duration"].as_u64().unwrap_or(0);
    let parts =
        v["prompt_eval_duration"].as_u64().unwrap_or(0) + v["eval_duration"].as_u64().unwrap_or(0);
    assert!(parts <= total + 1, "durations add up beyond the total: {v}");
    assert!(
        v["created_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{v}"
    );
}

/// (content, thinking, tool calls, final line) of a chat NDJSON stream;
/// asserts exactly one `done: true`, last.
fn assemble_chat(lines: &[Value]) -> (String, String, Vec<Value>, Value) {
    let done: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i]["done"] == true)
        .collect();
    assert_eq!(
        done,
        vec![lines.len() - 1],
        "exactly one done:true, last: {lines:?}"
    );
    let (mut content, mut thinking, mut calls) = (String::new(), String::new(), Vec::new());
    for line in lines {
        assert_eq!(line["model"], MODEL_ID, "{line}");
        assert!(line["done"].is_boolean(), "{line}");
        let m = &line["message"];
        assert_eq!(m["role"], "assistant", "{line}");
        content.push_str(
            m["content"]
                .as_str()
                .unwrap_or_else(|| panic!("content: {line}")),
        );
        if let Some(t) = m.get("thinking") {
            thinking.push_str(t.as_str().expect("thinking is a string"));
        }
        if let Some(c) = m.get("tool_calls") {
            calls.extend(c.as_array().expect("tool_calls is a list").iter().cloned());
        }
    }
    let last = lines.last().cloned().unwrap_or(Value::Null);
    (content, thinking, calls, last)
}

#[tokio::test]
async fn version_is_new_enough_for_codex() {
    let base = server(THINK_THEN_ANSWER).await;
    let r = call(&base, "GET", "/api/version", None).await;
    assert_eq!(r.status, 200);
    let v = r.json()["version"].as_str().expect("version").to_string();
    let parts: Vec<u64> = v
        .split('.')
        .map(|p| p.parse().expect("numeric semver"))
        .collect();
    assert_eq!(parts.len(), 3, "{v}");
    // Codex's `--oss` refuses Ollama older than 0.13.4 (its Responses support).
    assert!((parts[0], parts[1], parts[2]) >= (0, 13, 4), "{v}");
}

#[tokio::test]
async fn tags_show_and_ps_describe_the_served_model() {
    let base = server(THINK_THEN_ANSWER).await;
    let tags = call(&base, "GET", "/api/tags", None).await;
    assert_eq!(tags.status, 200);
    let tags = tags.json();
    let models = tags["models"].as_array().expect("models");
    assert_eq!(models.len(), 1);
    let m = &models[0];
    assert_eq!(m["name"], MODEL_ID);
    assert_eq!(m["model"], MODEL_ID);
    assert_eq!(m["size"], facts().file_bytes);
    assert!(m["digest"]
        .as_str()
        .is_some_and(|d| d.len() == 7 + 64 && d.starts_with("sha256:")));
    assert!(m["modified_at"]
        .as_str()
        .is_some_and(|t| t.len() >= 20 && t.ends_with('Z')));
    let d = &m["details"];
    assert_eq!(d["family"], "gpt-oss");
    assert_eq!(d["families"], json!(["gpt-oss"]));
    assert_eq!(d["parameter_size"], "20.9B");
    assert_eq!(d["quantization_level"], "MXFP4");

    for name in [MODEL_ID.to_string(), format!("{MODEL_ID}:latest")] {
        let show = call(&base, "POST", "/api/show", Some(json!({"model": name}))).await;
        assert_eq!(show.status, 200, "{}", show.text);
        let s = show.json();
        assert_eq!(s["model_info"]["general.architecture"], "gpt-oss");
        assert_eq!(
            s["model_info"]["general.parameter_count"],
            facts().parameter_count
        );
        assert_eq!(s["model_info"]["gpt-oss.context_length"], 131_072);
        assert_eq!(s["model_info"]["gpt-oss.block_count"], 24);
        assert_eq!(s["model_info"]["gpt-oss.expert_count"], 32);
        assert_eq!(
            s["capabilities"],
            json!(["completion", "tools", "thinking"])
        );
        assert!(
            s["template"].is_string() && s["parameters"].is_string() && s["modelfile"].is_string()
        );
        assert_eq!(s["details"], *d);
    }
    // The older spelling of the field.
    let show = call(&base, "POST", "/api/show", Some(json!({"name": MODEL_ID}))).await;
    assert_eq!(show.status, 200);

    call(
        &base,
        "POST",
        "/api/show",
        Some(json!({"model": "llama3.2"})),
    )
    .await
    .assert_error(404);
    call(&base, "POST", "/api/show", Some(json!({})))
        .await
        .assert_error(400);

    let ps = call(&base, "GET", "/api/ps", None).await;
    assert_eq!(ps.status, 200);
    let ps = ps.json();
    let p = &ps["models"][0];
    assert_eq!(p["name"], MODEL_ID);
    assert_eq!(
        p["context_length"], 4096,
        "the served context, not the trained one"
    );
    assert!(p["expires_at"].as_str().is_some_and(|t| t > "2100"), "{p}");
    assert_eq!(p["details"], *d);
}

#[tokio::test]
async fn chat_non_streamed_splits_thinking_and_content() {
    let base = server(THINK_THEN_ANSWER).await;
    let r = call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(json!({"stream": false}))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.content_type.starts_with("application/json"),
        "{}",
        r.content_type
    );
    let v = r.json();
    assert_eq!(v["model"], MODEL_ID);
    assert_eq!(v["message"]["role"], "assistant");
    assert_eq!(v["message"]["content"], "Hello there!");
    assert_eq!(v["message"]["thinking"], "Let me think.");
    assert!(v["message"].get("tool_calls").is_none(), "{v}");
    assert_eq!(v["done_reason"], "stop");
    assert_final_stats(&v);
}

#[tokio::test]
async fn chat_streams_ndjson_by_default() {
    let base = server(THINK_THEN_ANSWER).await;
    let whole = call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(json!({"stream": false}))),
    )
    .await
    .json();
    // No `stream` field: Ollama streams by default.
    let r = call(&base, "POST", "/api/chat", Some(chat_body(json!({})))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.content_type, "application/x-ndjson");
    let lines = r.lines();
    assert!(lines.len() > 3, "deltas come line by line: {lines:?}");
    let (content, thinking, calls, last) = assemble_chat(&lines);
    assert_eq!(content, "Hello there!");
    assert_eq!(thinking, "Let me think.");
    assert!(calls.is_empty());
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["message"]["content"], "");
    assert_final_stats(&last);
    // Same counts as the non-streamed answer of the same script.
    assert_eq!(last["eval_count"], whole["eval_count"]);
    assert_eq!(last["prompt_eval_count"], whole["prompt_eval_count"]);
}

#[tokio::test]
async fn think_false_hides_thinking_and_think_levels_are_checked() {
    let base = server(THINK_THEN_ANSWER).await;
    let v = call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(json!({"stream": false, "think": false}))),
    )
    .await
    .json();
    assert_eq!(v["message"]["content"], "Hello there!");
    assert!(v["message"].get("thinking").is_none(), "{v}");

    let r = call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(json!({"think": false}))),
    )
    .await;
    let (content, thinking, _, _) = assemble_chat(&r.lines());
    assert_eq!(content, "Hello there!");
    assert!(thinking.is_empty());
    for line in r.lines() {
        assert!(line["message"].get("thinking").is_none(), "{line}");
    }

    for level in ["low", "medium", "high"] {
        let v = call(
            &base,
            "POST",
            "/api/chat",
            Some(chat_body(json!({"stream": false, "think": level}))),
        )
        .await
        .json();
        assert_eq!(v["message"]["thinking"], "Let me think.", "{level}");
    }
    call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(json!({"think": "max"}))),
    )
    .await
    .assert_error(400);
    call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(json!({"think": 3}))),
    )
    .await
    .assert_error(400);
}

#[tokio::test]
async fn chat_with_tools_returns_object_arguments_and_takes_results_back() {
    let base = server(TOOL_CALL).await;
    let v = call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(
            json!({"stream": false, "tools": weather_tools()}),
        )),
    )
    .await
    .json();
    let calls = v["message"]["tool_calls"].as_array().expect("tool_calls");
    assert_eq!(calls.len(), 1, "{v}");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["function"]["arguments"], json!({"city": "Paris"}));
    assert_eq!(calls[0]["function"]["index"], 0);
    assert_eq!(v["message"]["content"], "");
    assert_eq!(v["done_reason"], "stop");

    let r = call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(json!({"tools": weather_tools()}))),
    )
    .await;
    let (_, thinking, calls, last) = assemble_chat(&r.lines());
    assert_eq!(thinking, "Need the weather tool.");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["function"]["arguments"], json!({"city": "Paris"}));
    assert_final_stats(&last);

    // The client runs the tool and sends the result back (Ollama's shape).
    let follow = chat_body(
        json!({"stream": false, "tools": weather_tools(), "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "thinking": "Need the weather tool.",
             "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                        {"function": {"name": "get_weather", "arguments": {"city": "Lyon"}}}]},
            {"role": "tool", "tool_name": "get_weather", "content": "{\"temp\": 21}"},
            // No tool_name: answers the call still pending.
            {"role": "tool", "content": "sunny"}
        ]}),
    );
    let r = call(&base, "POST", "/api/chat", Some(follow)).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let bad = chat_body(json!({"messages": [{"role": "tool", "content": "x"}]}));
    call(&base, "POST", "/api/chat", Some(bad))
        .await
        .assert_error(400);
    let bad = chat_body(json!({"tools": [{"type": "retrieval"}]}));
    call(&base, "POST", "/api/chat", Some(bad))
        .await
        .assert_error(400);
}

#[tokio::test]
async fn generate_answers_one_prompt() {
    let (app, _engine) = app_with(
        EchoModel {
            delay: std::time::Duration::ZERO,
        },
        SchedulerConfig::default(),
        config_with(None),
    );
    let base = serve(app).await;
    let body = json!({"model": MODEL_ID, "prompt": "echo this", "system": "Be brief.",
                      "stream": false, "options": {"temperature": 0}});
    let v = call(&base, "POST", "/api/generate", Some(body))
        .await
        .json();
    assert_eq!(v["response"], "echo this");
    assert!(v.get("message").is_none());
    assert_eq!(v["done_reason"], "stop");
    assert_final_stats(&v);

    let body = json!({"model": MODEL_ID, "prompt": "echo this", "options": {"temperature": 0}});
    let r = call(&base, "POST", "/api/generate", Some(body)).await;
    assert_eq!(r.content_type, "application/x-ndjson");
    let lines = r.lines();
    assert_eq!(lines.iter().filter(|l| l["done"] == true).count(), 1);
    assert_eq!(lines.last().map(|l| l["done"].clone()), Some(json!(true)));
    let text: String = lines
        .iter()
        .map(|l| l["response"].as_str().expect("response").to_string())
        .collect();
    assert_eq!(text, "echo this");
    assert_final_stats(lines.last().expect("a line"));

    for extra in [
        json!({"suffix": "}"}),
        json!({"images": ["aGk="]}),
        json!({"raw": true}),
        json!({"context": [1, 2, 3]}),
    ] {
        let mut body = json!({"model": MODEL_ID, "prompt": "x"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        call(&base, "POST", "/api/generate", Some(body))
            .await
            .assert_error(400);
    }
    // An empty prompt only "loads" the model.
    let v = call(
        &base,
        "POST",
        "/api/generate",
        Some(json!({"model": MODEL_ID, "stream": false})),
    )
    .await
    .json();
    assert_eq!(v["done"], true);
    assert_eq!(v["done_reason"], "load");
}

#[tokio::test]
async fn format_json_yields_parseable_json() {
    // The script would answer "Hello there!"; the format must win.
    let base = server(THINK_THEN_ANSWER).await;
    for format in [
        json!("json"),
        json!({"type": "object", "properties": {"greeting": {"type": "string"}}, "required": ["greeting"]}),
    ] {
        let body = chat_body(
            json!({"stream": false, "format": format, "options": {"temperature": 0, "num_predict": 48}}),
        );
        let r = call(&base, "POST", "/api/chat", Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        let content = v["message"]["content"].as_str().expect("content");
        let parsed: Value = serde_json::from_str(content)
            .unwrap_or_else(|e| panic!("format {format}: not JSON ({e}): {content:?}"));
        assert!(parsed.is_object(), "{parsed}");
        if format.is_object() {
            assert!(parsed["greeting"].is_string(), "{parsed}");
        }
    }
    // A commentary preamble before the final message is never part of the JSON.
    let base2 = server("<|channel|>commentary<|message|>Working on it.<|end|><|start|>assistant<|channel|>final<|message|>{\"a\": 1}<|return|>").await;
    for stream in [false, true] {
        let r = call(
            &base2,
            "POST",
            "/api/chat",
            Some(chat_body(json!({"stream": stream, "format": "json"}))),
        )
        .await;
        let (content, thinking) = if stream {
            let (c, t, _, _) = assemble_chat(&r.lines());
            (c, t)
        } else {
            let v = r.json();
            (
                v["message"]["content"].as_str().unwrap_or("").to_string(),
                v["message"]["thinking"].as_str().unwrap_or("").to_string(),
            )
        };
        // The constraint rules out a preamble beside a formatted answer: the
        // scripted model is steered off it (and may still be thinking when
        // the budget ends); the preamble never reaches content.
        assert!(!content.contains("Working on it"), "{content:?}");
        assert!(
            content.is_empty() || serde_json::from_str::<Value>(&content).is_ok(),
            "{content:?} / {thinking:?}"
        );
    }
    // Without a format the preamble is text for the user, as in the other APIs.
    let v = call(
        &base2,
        "POST",
        "/api/chat",
        Some(chat_body(json!({"stream": false}))),
    )
    .await
    .json();
    assert_eq!(v["message"]["content"], "Working on it.{\"a\": 1}");
    call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(json!({"format": "yaml"}))),
    )
    .await
    .assert_error(400);
    call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(json!({"format": {"type": "strin"}}))),
    )
    .await
    .assert_error(400);
}

#[tokio::test]
async fn options_limit_and_stop_the_answer() {
    let base = server(THINK_THEN_ANSWER).await;
    let v = call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(json!({"stream": false,
            "options": {"temperature": 0, "num_predict": 3, "num_ctx": 2048, "top_k": 40, "repeat_penalty": 1.1}}))),
    )
    .await
    .json();
    assert_eq!(v["done_reason"], "length", "{v}");
    assert_eq!(v["eval_count"], 3);

    let v = call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(
            json!({"stream": false, "options": {"temperature": 0, "stop": ["there"]}}),
        )),
    )
    .await
    .json();
    assert_eq!(v["message"]["content"], "Hello ");
    assert_eq!(v["done_reason"], "stop");

    for options in [
        json!({"num_predict": -5}),
        json!({"temperature": "hot"}),
        json!({"temperature": 9}),
    ] {
        call(
            &base,
            "POST",
            "/api/chat",
            Some(chat_body(json!({"options": options}))),
        )
        .await
        .assert_error(400);
    }
    // No messages: Ollama's "load the model" request.
    let v = call(
        &base,
        "POST",
        "/api/chat",
        Some(json!({"model": MODEL_ID, "messages": [], "stream": false})),
    )
    .await
    .json();
    assert_eq!(v["done_reason"], "load");
}

#[tokio::test]
async fn pull_is_a_no_op_for_the_served_model() {
    let base = server(THINK_THEN_ANSWER).await;
    let r = call(&base, "POST", "/api/pull", Some(json!({"model": MODEL_ID}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/x-ndjson");
    assert_eq!(r.lines(), vec![json!({"status": "success"})]);
    let r = call(
        &base,
        "POST",
        "/api/pull",
        Some(json!({"model": format!("{MODEL_ID}:latest"), "stream": false})),
    )
    .await;
    assert_eq!(r.json(), json!({"status": "success"}));
    call(
        &base,
        "POST",
        "/api/pull",
        Some(json!({"model": "llama3.2:1b"})),
    )
    .await
    .assert_error(404);
}

#[tokio::test]
async fn unsupported_endpoints_and_bad_requests_answer_ollama_errors() {
    let base = server(THINK_THEN_ANSWER).await;
    for path in ["/api/embed", "/api/embeddings"] {
        let r = call(
            &base,
            "POST",
            path,
            Some(json!({"model": MODEL_ID, "input": "hi"})),
        )
        .await;
        r.assert_error(400);
        assert!(r.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("embeddings"));
    }
    call(&base, "POST", "/api/create", Some(json!({"model": "x"})))
        .await
        .assert_error(501);
    call(
        &base,
        "DELETE",
        "/api/delete",
        Some(json!({"model": MODEL_ID})),
    )
    .await
    .assert_error(501);
    call(&base, "GET", "/api/nothing", None)
        .await
        .assert_error(404);
    call(&base, "GET", "/api/chat", None)
        .await
        .assert_error(405);

    // Malformed JSON, wrong types, unknown model, unknown role.
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{base}/api/chat"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.expect("JSON error");
    assert_eq!(status, 400);
    assert!(
        v["error"].is_string() && v.as_object().map(|o| o.len()) == Some(1),
        "{v}"
    );
    call(
        &base,
        "POST",
        "/api/chat",
        Some(json!({"model": MODEL_ID, "messages": "hi"})),
    )
    .await
    .assert_error(400);
    call(
        &base,
        "POST",
        "/api/chat",
        Some(json!({"messages": [{"role": "user", "content": "x"}]})),
    )
    .await
    .assert_error(400);
    call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(json!({"model": "llama3.2"}))),
    )
    .await
    .assert_error(404);
    call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(
            json!({"messages": [{"role": "robot", "content": "x"}]}),
        )),
    )
    .await
    .assert_error(400);
    call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(
            json!({"messages": [{"role": "user", "content": "x", "images": ["aGk="]}]}),
        )),
    )
    .await
    .assert_error(400);
    call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(json!({"top_logprobs": 3}))),
    )
    .await
    .assert_error(400);
    call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(json!({"logprobs": true, "top_logprobs": 21}))),
    )
    .await
    .assert_error(400);
}

#[tokio::test]
async fn logprobs_cover_the_answer_tokens() {
    let base = server(THINK_THEN_ANSWER).await;
    let body = chat_body(json!({"stream": false, "logprobs": true, "top_logprobs": 2}));
    let v = call(&base, "POST", "/api/chat", Some(body)).await.json();
    let lps = v["logprobs"].as_array().expect("logprobs");
    let text: String = lps
        .iter()
        .map(|l| l["token"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        text, "Hello there!",
        "answer tokens only, not the thinking: {v}"
    );
    for l in lps {
        assert!(l["logprob"].as_f64().is_some_and(|p| p <= 0.0), "{l}");
        assert_eq!(l["top_logprobs"].as_array().map(Vec::len), Some(2), "{l}");
    }

    let body = chat_body(json!({"logprobs": true}));
    let lines = call(&base, "POST", "/api/chat", Some(body)).await.lines();
    let (content, _, _, _) = assemble_chat(&lines);
    let streamed: String = lines
        .iter()
        .filter_map(|l| l["logprobs"].as_array())
        .flatten()
        .map(|l| l["token"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(streamed, content);
    // Each answer line carries its own tokens' log probabilities.
    for l in &lines {
        let text = l["message"]["content"].as_str().unwrap_or("");
        if !text.is_empty() {
            let own: String = l["logprobs"]
                .as_array()
                .expect("logprobs on an answer line")
                .iter()
                .map(|x| x["token"].as_str().unwrap_or("?").to_string())
                .collect();
            assert_eq!(own, text, "{l}");
        }
    }
    // Not asked for: none.
    let v = call(
        &base,
        "POST",
        "/api/chat",
        Some(chat_body(json!({"stream": false}))),
    )
    .await
    .json();
    assert!(v.get("logprobs").is_none());
}

#[tokio::test]
async fn api_key_applies_with_ollama_shaped_401() {
    let (app, _engine) = app_with(
        scripted(THINK_THEN_ANSWER),
        SchedulerConfig::default(),
        config_with(Some("sekret")),
    );
    let base = serve(app).await;
    call(&base, "GET", "/api/tags", None)
        .await
        .assert_error(401);
    call_with(&base, "GET", "/api/tags", None, Some("wrong"))
        .await
        .assert_error(401);
    let r = call_with(&base, "GET", "/api/tags", None, Some("sekret")).await;
    assert_eq!(r.status, 200);
    // The OpenAI API keeps its own error shape, and `:latest` names the model there too.
    let r = call(&base, "GET", "/v1/models", None).await;
    assert_eq!(r.status, 401);
    assert!(r.json()["error"]["message"].is_string());
    let body = json!({"model": format!("{MODEL_ID}:latest"), "temperature": 0,
                      "messages": [{"role": "user", "content": "Hi"}]});
    let r = call_with(
        &base,
        "POST",
        "/v1/chat/completions",
        Some(body),
        Some("sekret"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}
