//! In-process router tests (no sockets): status codes, OpenAI error JSON, SSE
//! framing, the reasoning/content/tool-call split, malformed model output,
//! auth, queue limits, cancellation. Weightless models sit behind the engine
//! seam (`ScriptedModel` from gptoss-engine, and the models in `common`).

mod common;

use std::time::Duration;

use common::*;
use gptoss_server::{SchedulerConfig, ServerConfig};
use serde_json::{json, Value};

const THINK_THEN_ANSWER: &str =
    "<|channel|>analysis<|message|>The user greets me. I should greet back.<|end|><|start|>assistant<|channel|>final<|message|>Hello there! How can I help?<|return|>";
const TOOL_CALL: &str = "<|channel|>analysis<|message|>Need the weather tool.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>";

fn chat_body(extra: Value) -> String {
    let mut body = json!({"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "temperature": 0});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    body.to_string()
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

/// (id, name, arguments) of a streamed tool call.
type StreamedCall = (String, String, String);
/// content, reasoning, tool calls, finish_reason, usage.
type Assembled = (String, String, Vec<StreamedCall>, String, Option<Value>);

/// Content, reasoning and tool calls assembled from chat SSE frames.
fn assemble_chat_stream(frames: &[(String, String)]) -> Assembled {
    assert_eq!(
        frames.last().map(|f| f.1.as_str()),
        Some("[DONE]"),
        "stream must end with [DONE]"
    );
    let (mut content, mut reasoning, mut calls, mut finish, mut usage) = (
        String::new(),
        String::new(),
        Vec::new(),
        String::new(),
        None,
    );
    for (_, data) in &frames[..frames.len() - 1] {
        let v: Value =
            serde_json::from_str(data).unwrap_or_else(|_| panic!("frame is not JSON: {data}"));
        assert_eq!(v["object"], "chat.completion.chunk");
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            usage = Some(u.clone());
        }
        let Some(choice) = v["choices"].get(0) else {
            continue;
        };
        let d = &choice["delta"];
        if let Some(c) = d["content"].as_str() {
            content.push_str(c);
        }
        if let Some(r) = d["reasoning_content"].as_str() {
            assert_eq!(
                d["reasoning"].as_str(),
                Some(r),
                "reasoning and reasoning_content agree"
            );
            reasoning.push_str(r);
        }
        if let Some(tc) = d["tool_calls"].as_array() {
            for call in tc {
                let idx = call["index"].as_u64().unwrap_or(0) as usize;
                if calls.len() <= idx {
                    calls.push((String::new(), String::new(), String::new()));
                }
                if let Some(id) = call["id"].as_str() {
                    calls[idx].0 = id.to_string();
                }
                if let Some(n) = call["function"]["name"].as_str() {
                    calls[idx].1 = n.to_string();
                }
                if let Some(a) = call["function"]["arguments"].as_str() {
                    calls[idx].2.push_str(a);
                }
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            finish = f.to_string();
        }
    }
    (content, reasoning, calls, finish, usage)
}

#[tokio::test]
async fn health_and_models() {
    let (app, _) = app(THINK_THEN_ANSWER);
    let (s, v) = get_json(&app, "/health").await;
    assert_eq!(s, 200);
    assert_eq!(v["status"], "ok");
    let (s, v) = get_json(&app, "/v1/models").await;
    assert_eq!(s, 200);
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], MODEL_ID);
    let (s, v) = get_json(&app, "/v1/models/other").await;
    assert_eq!(s, 404);
    assert_error(&v, Some("model"));
    let (s, v) = get_json(&app, "/v1/nothing").await;
    assert_eq!(s, 404);
    assert_error(&v, None);
}

#[tokio::test]
async fn chat_splits_reasoning_from_content_and_stream_matches() {
    let (app, _) = app(THINK_THEN_ANSWER);
    let (s, v) = post_json(&app, "/v1/chat/completions", &chat_body(json!({}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["role"], "assistant");
    assert_eq!(msg["content"], "Hello there! How can I help?");
    assert_eq!(
        msg["reasoning_content"],
        "The user greets me. I should greet back."
    );
    assert_eq!(msg["reasoning"], msg["reasoning_content"]);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let usage = &v["usage"];
    assert_eq!(
        usage["completion_tokens"].as_u64(),
        Some(tokens(THINK_THEN_ANSWER).len() as u64)
    );
    assert!(
        usage["completion_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    assert!(usage["prompt_tokens"].as_u64().unwrap_or(0) > 10);

    let (s, body) = send(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(&chat_body(
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        )),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let frames = sse_frames(&body);
    let (content, reasoning, calls, finish, usage) = assemble_chat_stream(&frames);
    assert_eq!(content, msg["content"].as_str().unwrap_or_default());
    assert_eq!(
        reasoning,
        msg["reasoning_content"].as_str().unwrap_or_default()
    );
    assert!(calls.is_empty());
    assert_eq!(finish, "stop");
    let usage = usage.expect("include_usage sends a usage chunk");
    assert_eq!(usage["completion_tokens"], v["usage"]["completion_tokens"]);
    assert_eq!(
        usage["completion_tokens_details"],
        v["usage"]["completion_tokens_details"]
    );
}

#[tokio::test]
async fn stream_and_non_stream_agree_when_sampling_with_a_seed() {
    // Temperature 1 with a seed: the scripted logits leave real randomness,
    // so this checks that the same seed gives the same split both ways.
    let (app, _) = app(THINK_THEN_ANSWER);
    for seed in [1, 7, 42] {
        let extra = json!({"temperature": 1.0, "seed": seed, "max_tokens": 40});
        let (_, v) = post_json(&app, "/v1/chat/completions", &chat_body(extra.clone())).await;
        let mut extra_stream = extra.clone();
        extra_stream["stream"] = json!(true);
        let (_, body) = send(
            &app,
            "POST",
            "/v1/chat/completions",
            Some(&chat_body(extra_stream)),
            &[],
        )
        .await;
        let (content, reasoning, _, finish, _) = assemble_chat_stream(&sse_frames(&body));
        let msg = &v["choices"][0]["message"];
        assert_eq!(
            content,
            msg["content"].as_str().unwrap_or_default(),
            "seed {seed}"
        );
        assert_eq!(
            reasoning,
            msg["reasoning_content"].as_str().unwrap_or_default(),
            "seed {seed}"
        );
        assert_eq!(
            finish,
            v["choices"][0]["finish_reason"]
                .as_str()
                .unwrap_or_default()
        );
        assert!(
            !content.contains("<|"),
            "no control token in content: {content:?}"
        );
    }
}

#[tokio::test]
async fn tool_calls_non_stream_and_stream() {
    let (app, _) = app(TOOL_CALL);
    let body = chat_body(json!({"tools": weather_tools()}));
    let (s, v) = post_json(&app, "/v1/chat/completions", &body).await;
    assert_eq!(s, 200, "{v}");
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    assert_eq!(
        choice["message"]["reasoning_content"],
        "Need the weather tool."
    );
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert!(call["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("call_")));

    let mut sbody: Value = serde_json::from_str(&body).unwrap_or_default();
    sbody["stream"] = json!(true);
    let (_, raw) = send(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(&sbody.to_string()),
        &[],
    )
    .await;
    let (content, reasoning, calls, finish, _) = assemble_chat_stream(&sse_frames(&raw));
    assert_eq!(content, "");
    assert_eq!(reasoning, "Need the weather tool.");
    assert_eq!(finish, "tool_calls");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1, "get_weather");
    assert_eq!(calls[0].2, "{\"city\":\"Paris\"}");

    // Round trip: the call and its result go back in; the server accepts them
    // and the prompt grows by the call and the result.
    let id = call["id"].as_str().unwrap_or_default();
    let follow = json!({"model": MODEL_ID, "temperature": 0, "tools": weather_tools(), "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": null, "reasoning_content": "Need the weather tool.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": id, "content": "{\"temp_c\": 21}"}
    ]});
    let (s, v2) = post_json(&app, "/v1/chat/completions", &follow.to_string()).await;
    assert_eq!(s, 200, "{v2}");
    assert!(v2["usage"]["prompt_tokens"].as_u64() > v["usage"]["prompt_tokens"].as_u64());
    // An answer to an unknown call id is rejected.
    let bad = json!({"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}, {"role": "tool", "tool_call_id": "nope", "content": "x"}]});
    let (s, v3) = post_json(&app, "/v1/chat/completions", &bad.to_string()).await;
    assert_eq!(s, 400);
    assert_error(&v3, Some("messages[1].tool_call_id"));
}

#[tokio::test]
async fn malformed_model_output_is_steered_into_well_formed_answers() {
    let cases: [(&str, &str); 7] = [
        // a final with no channel markup
        ("Just an answer.<|return|>", "content"),
        // a broken channel name: not trusted as an answer
        ("<|channel|>fnial<|message|>hidden<|return|>", "reasoning"),
        // arguments that are not JSON
        ("<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>city=Paris<|call|>", "tool"),
        // array-wrapped arguments
        ("<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>[{\"city\":\"Paris\"}]<|call|>", "tool"),
        // a call to an unknown tool
        ("<|channel|>commentary to=functions.launch_rocket <|constrain|>json<|message|>{}<|call|>", "tool"),
        // a missing <|end|> between messages
        ("<|channel|>analysis<|message|>thinking<|start|>assistant<|channel|>final<|message|>ok<|return|>", "any"),
        // stray control tokens and a missing stop token
        ("<|message|><|channel|><|constrain|>final<|message|>x<|end|>", "any"),
    ];
    for (script, expect) in cases {
        let (app, _) = app(script);
        for stream in [false, true] {
            let body =
                chat_body(json!({"tools": weather_tools(), "max_tokens": 60, "stream": stream}));
            let (s, raw) = send(&app, "POST", "/v1/chat/completions", Some(&body), &[]).await;
            assert_eq!(
                s,
                200,
                "script {script:?}: {}",
                String::from_utf8_lossy(&raw)
            );
            let (content, reasoning, calls) = if stream {
                let (c, r, calls, _, _) = assemble_chat_stream(&sse_frames(&raw));
                (c, r, calls)
            } else {
                let v: Value = serde_json::from_slice(&raw).unwrap_or_default();
                let m = &v["choices"][0]["message"];
                let calls = m["tool_calls"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|c| {
                        (
                            String::new(),
                            c["function"]["name"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                            c["function"]["arguments"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                        )
                    })
                    .collect();
                (
                    m["content"].as_str().unwrap_or_default().to_string(),
                    m["reasoning_content"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    calls,
                )
            };
            assert!(
                !content.contains("<|") && !reasoning.contains("<|"),
                "control token leaked: {content:?} {reasoning:?}"
            );
            // The tool-call constraint steers malformed output into
            // well-formed harmony: a call can only name the declared tool,
            // with a JSON object for arguments; analysis never becomes content.
            for (_, name, arguments) in &calls {
                assert_eq!(name, "get_weather", "{script}");
                assert!(
                    serde_json::from_str::<Value>(arguments).is_ok_and(|v| v.is_object()),
                    "{script}: {arguments}"
                );
            }
            if expect != "content" {
                assert!(
                    !content.contains("thinking") && !content.contains("hidden"),
                    "analysis leaked into content: {content:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn request_errors_have_openai_shape() {
    let (app, _) = app_with(
        scripted(THINK_THEN_ANSWER),
        SchedulerConfig {
            context_tokens: 200,
            ..SchedulerConfig::default()
        },
        config(),
    );
    let path = "/v1/chat/completions";
    let cases: Vec<(String, u16, Option<&str>)> = vec![
        ("{not json".into(), 400, None),
        ("[1,2]".into(), 400, None),
        (json!({"model": MODEL_ID}).to_string(), 400, None),
        (json!({"messages": "hi"}).to_string(), 400, Some("messages")),
        (
            chat_body(json!({"temperature": "hot"})),
            400,
            Some("temperature"),
        ),
        (
            chat_body(json!({"temperature": 3.5})),
            400,
            Some("temperature"),
        ),
        (chat_body(json!({"top_p": -1})), 400, Some("top_p")),
        (chat_body(json!({"max_tokens": 0})), 400, Some("max_tokens")),
        (
            chat_body(json!({"max_tokens": -5})),
            400,
            Some("max_tokens"),
        ),
        (chat_body(json!({"n": 9})), 400, Some("n")),
        (chat_body(json!({"model": "gpt-4o"})), 404, Some("model")),
        (
            chat_body(json!({"reasoning_effort": "extreme"})),
            400,
            Some("reasoning_effort"),
        ),
        (
            chat_body(json!({"reasoning": {"effort": "extreme"}})),
            400,
            Some("reasoning.effort"),
        ),
        (
            chat_body(json!({"messages": [{"role": "wizard", "content": "x"}]})),
            400,
            Some("messages[0].role"),
        ),
        (chat_body(json!({"messages": []})), 400, Some("messages")),
        (
            chat_body(
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
            ),
            400,
            Some("messages[0].content[0].type"),
        ),
        (
            chat_body(
                json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "strng"}}}}}]}),
            ),
            400,
            Some("tools[0].function.parameters"),
        ),
        (
            chat_body(json!({"tools": [{"type": "function", "function": {"name": "bad name!"}}]})),
            400,
            Some("tools[0].function.name"),
        ),
        (
            chat_body(json!({"tools": [{"type": "retrieval"}]})),
            400,
            Some("tools[0].type"),
        ),
        (
            chat_body(
                json!({"tools": weather_tools(), "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
            ),
            400,
            Some("tool_choice"),
        ),
        (
            chat_body(json!({"response_format": {"type": "xml"}})),
            400,
            Some("response_format.type"),
        ),
        (
            chat_body(json!({"stop": ["a", "b", "c", "d", "e"]})),
            400,
            Some("stop"),
        ),
        (
            chat_body(json!({"messages": [{"role": "user", "content": "word ".repeat(400)}]})),
            400,
            Some("messages"),
        ),
    ];
    for (body, status, param) in cases {
        let (s, raw) = send(&app, "POST", path, Some(&body), &[]).await;
        let v: Value = serde_json::from_slice(&raw)
            .unwrap_or_else(|_| panic!("error body is JSON for {body}"));
        assert_eq!(s.as_u16(), status, "{body} -> {v}");
        assert_error(&v, param);
    }
    // The context error says the numbers.
    let body = chat_body(json!({"messages": [{"role": "user", "content": "word ".repeat(400)}]}));
    let (_, v) = post_json(&app, path, &body).await;
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("200") && v["error"]["code"] == "context_length_exceeded",
        "{msg}"
    );
}

#[tokio::test]
async fn fuzzed_bodies_never_crash() {
    let (app, _) = app(THINK_THEN_ANSWER);
    // Mutations of valid bodies: every value replaced by values of other types.
    let base = json!({"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi", "name": "x"}], "temperature": 0,
        "max_tokens": 5, "stream": false, "tools": weather_tools(), "tool_choice": "auto", "stop": ["x"], "seed": 1,
        "reasoning_effort": "low", "response_format": {"type": "json_object"}, "top_p": 1});
    let replacements = [
        json!(null),
        json!(-1),
        json!(1e300),
        json!("s"),
        json!([]),
        json!({}),
        json!([{}]),
        json!(true),
        json!([null]),
    ];
    let mut bodies = Vec::new();
    if let Some(obj) = base.as_object() {
        for key in obj.keys() {
            for r in &replacements {
                let mut b = base.clone();
                b[key] = r.clone();
                bodies.push(b);
            }
        }
    }
    for key in [
        "role",
        "content",
        "name",
        "tool_calls",
        "tool_call_id",
        "reasoning_content",
    ] {
        for r in &replacements {
            let mut b = base.clone();
            b["messages"][0][key] = r.clone();
            bodies.push(b);
        }
    }
    for body in &bodies {
        for path in ["/v1/chat/completions", "/v1/responses"] {
            let (s, raw) = send(&app, "POST", path, Some(&body.to_string()), &[]).await;
            assert!(
                s.as_u16() < 500,
                "{path} {body} -> {s} {}",
                String::from_utf8_lossy(&raw)
            );
            if s != 200 {
                let v: Value = serde_json::from_slice(&raw).unwrap_or_default();
                assert_error(&v, None);
            }
        }
    }
}

#[tokio::test]
async fn api_key_is_required_when_set() {
    let (app, _) = app_with(
        scripted(THINK_THEN_ANSWER),
        SchedulerConfig::default(),
        ServerConfig {
            api_key: Some("sekrit".into()),
            ..config()
        },
    );
    let body = chat_body(json!({}));
    let (s, raw) = send(&app, "POST", "/v1/chat/completions", Some(&body), &[]).await;
    assert_eq!(s, 401);
    assert_error(&serde_json::from_slice(&raw).unwrap_or_default(), None);
    let (s, _) = send(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(&body),
        &[("authorization", "Bearer wrong")],
    )
    .await;
    assert_eq!(s, 401);
    let (s, _) = send(
        &app,
        "GET",
        "/v1/models",
        None,
        &[("authorization", "Bearer sekri")],
    )
    .await;
    assert_eq!(s, 401);
    let (s, _) = send(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(&body),
        &[("authorization", "Bearer sekrit")],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = send(&app, "GET", "/health", None, &[]).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn effort_none_answers_in_the_final_channel_and_stop_strings_cut() {
    // With effort none the prompt already opened the final channel: the
    // model's first tokens are answer text.
    let (app, _) = app("Paris is the capital. More text here.<|return|>");
    let (s, v) = post_json(
        &app,
        "/v1/chat/completions",
        &chat_body(json!({"reasoning_effort": "none"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Paris is the capital. More text here."
    );
    assert!(v["choices"][0]["message"]
        .get("reasoning_content")
        .is_none());
    let (_, v) = post_json(
        &app,
        "/v1/chat/completions",
        &chat_body(json!({"reasoning_effort": "none", "stop": [" More"]})),
    )
    .await;
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Paris is the capital."
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let (_, raw) = send(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(&chat_body(
            json!({"reasoning_effort": "none", "stop": "capital", "stream": true}),
        )),
        &[],
    )
    .await;
    let (content, _, _, finish, _) = assemble_chat_stream(&sse_frames(&raw));
    assert_eq!(content, "Paris is the ");
    assert_eq!(finish, "stop");
}

#[tokio::test]
async fn max_tokens_gives_length() {
    let (app, _) = app(THINK_THEN_ANSWER);
    let (_, v) = post_json(
        &app,
        "/v1/chat/completions",
        &chat_body(json!({"max_completion_tokens": 3})),
    )
    .await;
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn prefix_is_reused_across_requests() {
    let (app, _) = app(THINK_THEN_ANSWER);
    let (_, first) = post_json(&app, "/v1/chat/completions", &chat_body(json!({}))).await;
    let (_, second) = post_json(&app, "/v1/chat/completions", &chat_body(json!({}))).await;
    let prompt = second["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
    let cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(
        cached,
        prompt - 1,
        "all but the last prompt token come from the cache"
    );
}

#[tokio::test]
async fn full_queue_gives_429() {
    let slow = SlowModel {
        inner: scripted(THINK_THEN_ANSWER),
        delay: Duration::from_millis(30),
    };
    let (app, engine) = app_with(
        slow,
        SchedulerConfig {
            max_concurrency: 1,
            max_queue: 1,
            context_tokens: 4096,
        },
        config(),
    );
    let body = chat_body(json!({"stream": true}));
    // One active, one queued, the third is refused.
    let a = tokio::spawn({
        let app = app.clone();
        let body = body.clone();
        async move { send(&app, "POST", "/v1/chat/completions", Some(&body), &[]).await }
    });
    wait_for(|| engine.metrics().active == 1).await;
    let b = tokio::spawn({
        let app = app.clone();
        let body = body.clone();
        async move { send(&app, "POST", "/v1/chat/completions", Some(&body), &[]).await }
    });
    wait_for(|| engine.metrics().queued == 1).await;
    let (s, raw) = send(&app, "POST", "/v1/chat/completions", Some(&body), &[]).await;
    assert_eq!(s, 429);
    let v: Value = serde_json::from_slice(&raw).unwrap_or_default();
    assert_error(&v, None);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("busy"));
    let (sa, _) = a.await.unwrap_or_else(|e| panic!("{e}"));
    let (sb, _) = b.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((sa.as_u16(), sb.as_u16()), (200, 200));
}

async fn wait_for(cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test]
async fn dropping_a_stream_frees_its_slot() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    // A long answer (~2000 tokens at 2 ms each): it cannot finish on its own
    // during the test.
    let long = format!(
        "<|channel|>final<|message|>{}<|return|>",
        "word ".repeat(2000)
    );
    let slow = SlowModel {
        inner: scripted(&long),
        delay: Duration::from_millis(2),
    };
    let (app, engine) = app_with(
        slow,
        SchedulerConfig {
            max_concurrency: 2,
            max_queue: 4,
            context_tokens: 4096,
        },
        config(),
    );
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(chat_body(json!({"stream": true}))))
        .unwrap_or_default();
    let resp = app
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let mut body = resp.into_body();
    // Read a few frames: the request is generating.
    for _ in 0..3 {
        let _ = body.frame().await;
    }
    let m = engine.metrics();
    assert_eq!(m.active, 1);
    assert_eq!(m.cancelled_total, 0);
    drop(body);
    wait_for(|| engine.metrics().active == 0).await;
    let m = engine.metrics();
    assert_eq!(m.cancelled_total, 1);
    assert_eq!(m.completed_total, 0);
    assert!(m.generated_tokens_total < 1000, "stopped early: {m:?}");
    let (_, h) = get_json(&app, "/health").await;
    assert_eq!(h["active_requests"], 0);
    assert_eq!(h["cache_slots_busy"], 0);
}

#[tokio::test]
async fn concurrent_streams_never_mix() {
    let (app, engine) = app_with(
        EchoModel {
            delay: Duration::ZERO,
        },
        SchedulerConfig {
            max_concurrency: 8,
            max_queue: 64,
            context_tokens: 4096,
        },
        config(),
    );
    let mut tasks = Vec::new();
    for i in 0..32 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let text = format!("request {i}: {}", "abc ".repeat(i % 7 + 1));
            let body = json!({"model": MODEL_ID, "stream": true, "messages": [{"role": "user", "content": text}]});
            let (s, raw) = send(&app, "POST", "/v1/chat/completions", Some(&body.to_string()), &[]).await;
            assert_eq!(s, 200);
            let (content, _, _, finish, _) = assemble_chat_stream(&sse_frames(&raw));
            (text, content, finish)
        }));
    }
    for t in tasks {
        let (text, content, finish) = t.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(content, text);
        assert_eq!(finish, "stop");
    }
    let m = engine.metrics();
    assert_eq!(m.completed_total, 32);
    assert!(
        m.decode_rows_total > m.decode_steps_total,
        "steps were batched: {m:?}"
    );
}
