//! `/v1/responses` with the tools Codex CLI sends: namespaces, freeform
//! (`custom`) tools, `local_shell`, hosted tools left out; sealed reasoning
//! (`include: ["reasoning.encrypted_content"]`) that a stateless client
//! hands back on the next request; `reasoning.summary`.

mod common;

use common::*;
use serde_json::{json, Value};

const NAMESPACED_CALL: &str = "<|channel|>analysis<|message|>Spawn a helper.<|end|><|start|>assistant<|channel|>commentary to=multi_agent_v1.spawn_agent <|constrain|>json<|message|>{\"task\":\"lint\"}<|call|>";
const PATCH_CALL: &str = "<|channel|>commentary to=functions.apply_patch <|constrain|>json<|message|>{\"input\":\"*** Begin Patch\\n*** End Patch\\n\"}<|call|>";
const SHELL_CALL: &str = "<|channel|>commentary to=functions.local_shell <|constrain|>json<|message|>{\"command\":[\"ls\",\"-la\"],\"workdir\":\"/tmp\"}<|call|>";
const THINK_THEN_ANSWER: &str = "<|channel|>analysis<|message|>The user greets me; answer kindly.<|end|><|start|>assistant<|channel|>final<|message|>Hello!<|return|>";

/// Codex's tools, as Codex 0.171 sends them (abridged).
fn codex_tools() -> Value {
    json!([
        {"type": "function", "name": "exec_command", "description": "Runs a command.", "strict": false,
         "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"], "additionalProperties": false}},
        {"type": "namespace", "name": "multi_agent_v1", "description": "Tools for sub-agents.",
         "tools": [{"type": "function", "name": "spawn_agent", "description": "Spawn.", "strict": false,
                    "parameters": {"type": "object", "properties": {"task": {"type": "string"}}, "additionalProperties": false}}]},
        {"type": "custom", "name": "apply_patch", "description": "Edit files.",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}},
        {"type": "local_shell"},
        {"type": "web_search", "external_web_access": false},
        {"type": "image_generation"}
    ])
}

#[tokio::test]
async fn codex_request_is_accepted_and_namespaced_calls_name_their_namespace() {
    let (app, _) = app(NAMESPACED_CALL);
    let body = json!({"model": MODEL_ID, "temperature": 0, "input": "lint it", "tools": codex_tools(), "tool_choice": "auto",
        "parallel_tool_calls": true, "store": false, "prompt_cache_key": "abc", "client_metadata": {"x": "y"}});
    let (s, headers, r) = post_with_headers(&app, "/v1/responses", &body.to_string()).await;
    assert_eq!(s, 200, "{r}");
    let warning = headers
        .get("x-gpt-oss-warning")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        warning.contains("web_search") && warning.contains("image_generation"),
        "{warning}"
    );
    let tools: Vec<&str> = r["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["type"].as_str())
        .collect();
    assert_eq!(tools, ["function", "namespace", "custom", "local_shell"]);
    let call = &r["output"][1];
    assert_eq!(call["type"], "function_call", "{r}");
    assert_eq!(call["name"], "spawn_agent");
    assert_eq!(call["namespace"], "multi_agent_v1");
    assert_eq!(call["arguments"], "{\"task\":\"lint\"}");

    // The call and its output go back in a stateless follow-up.
    let follow = json!({"model": MODEL_ID, "tools": codex_tools(), "store": false, "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "lint it"}]},
        call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "agent 7 started"}
    ]});
    let (s, r) = post_json(&app, "/v1/responses", &follow.to_string()).await;
    assert_eq!(s, 200, "{r}");

    // Items of hosted tools are skipped with a warning; unknown ones are 400s.
    let mut with_hosted = follow.clone();
    with_hosted["input"].as_array_mut().expect("list").insert(
        1,
        json!({"type": "web_search_call", "id": "ws_1", "status": "completed"}),
    );
    let (s, headers, r) = post_with_headers(&app, "/v1/responses", &with_hosted.to_string()).await;
    assert_eq!(s, 200, "{r}");
    assert!(headers.contains_key("x-gpt-oss-warning"));
    let mut with_unknown = follow.clone();
    with_unknown["input"]
        .as_array_mut()
        .expect("list")
        .insert(1, json!({"type": "hologram"}));
    let (s, r) = post_json(&app, "/v1/responses", &with_unknown.to_string()).await;
    assert_eq!(s, 400, "{r}");
    assert_error(&r, Some("input[1].type"));
}

#[tokio::test]
async fn freeform_calls_come_back_as_custom_tool_calls() {
    let (app, _) = app(PATCH_CALL);
    let body =
        json!({"model": MODEL_ID, "temperature": 0, "input": "fix it", "tools": codex_tools()});
    let (s, r) = post_json(&app, "/v1/responses", &body.to_string()).await;
    assert_eq!(s, 200, "{r}");
    let call = &r["output"][0];
    assert_eq!(call["type"], "custom_tool_call", "{r}");
    assert_eq!(call["name"], "apply_patch");
    assert_eq!(call["input"], "*** Begin Patch\n*** End Patch\n");

    // Streamed: the input arrives in custom_tool_call_input events, and the
    // done item equals the non-streamed one.
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let (s, raw) = send(&app, "POST", "/v1/responses", Some(&sbody.to_string()), &[]).await;
    assert_eq!(s, 200);
    let frames = sse_frames(&raw);
    let kinds: Vec<&str> = frames.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        kinds.contains(&"response.custom_tool_call_input.done"),
        "{kinds:?}"
    );
    let done: Value = frames
        .iter()
        .find(|(k, _)| k == "response.output_item.done")
        .and_then(|(_, d)| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null);
    assert_eq!(done["item"]["input"], call["input"]);
    assert_eq!(done["item"]["type"], "custom_tool_call");

    // Its output is accepted on the next turn.
    let follow = json!({"model": MODEL_ID, "tools": codex_tools(), "input": [
        {"type": "message", "role": "user", "content": "fix it"},
        call,
        {"type": "custom_tool_call_output", "call_id": call["call_id"], "output": "Done!"}
    ]});
    let (s, r) = post_json(&app, "/v1/responses", &follow.to_string()).await;
    assert_eq!(s, 200, "{r}");
}

#[tokio::test]
async fn local_shell_calls_carry_an_exec_action() {
    let (app, _) = app(SHELL_CALL);
    let body = json!({"model": MODEL_ID, "temperature": 0, "input": "list", "tools": [{"type": "local_shell"}]});
    let (s, r) = post_json(&app, "/v1/responses", &body.to_string()).await;
    assert_eq!(s, 200, "{r}");
    let call = &r["output"][0];
    assert_eq!(call["type"], "local_shell_call", "{r}");
    assert_eq!(call["action"]["type"], "exec");
    assert_eq!(call["action"]["command"], json!(["ls", "-la"]));
    assert_eq!(call["action"]["working_directory"], "/tmp");
    let follow = json!({"model": MODEL_ID, "tools": [{"type": "local_shell"}], "input": [
        {"type": "message", "role": "user", "content": "list"}, call,
        {"type": "local_shell_call_output", "call_id": call["call_id"], "output": "total 0"}
    ]});
    let (s, r) = post_json(&app, "/v1/responses", &follow.to_string()).await;
    assert_eq!(s, 200, "{r}");
}

/// The analysis comes back sealed; handed back, it is opened into the
/// prompt (more input tokens than the same request with a blob this server
/// did not seal, which is dropped).
#[tokio::test]
async fn encrypted_reasoning_round_trips_and_forgeries_are_dropped() {
    let (app, _) = app(THINK_THEN_ANSWER);
    let body = json!({"model": MODEL_ID, "temperature": 0, "input": "hi", "store": false,
        "include": ["reasoning.encrypted_content"], "reasoning": {"effort": "low", "summary": "auto"}});
    let (s, r) = post_json(&app, "/v1/responses", &body.to_string()).await;
    assert_eq!(s, 200, "{r}");
    let reasoning = &r["output"][0];
    assert_eq!(reasoning["type"], "reasoning");
    let blob = reasoning["encrypted_content"].as_str().unwrap_or_default();
    assert!(blob.starts_with("gptoss1."), "{reasoning}");
    assert!(!blob.contains("greets"), "the blob must not show the text");
    assert_eq!(r["reasoning"]["summary"], "auto");
    assert_eq!(
        reasoning["summary"],
        json!([{"type": "summary_text", "text": "The user greets me; answer kindly."}])
    );

    // Without `include`, no blob.
    let plain = json!({"model": MODEL_ID, "temperature": 0, "input": "hi"});
    let (_, r2) = post_json(&app, "/v1/responses", &plain.to_string()).await;
    assert!(r2["output"][0].get("encrypted_content").is_none(), "{r2}");

    // A stateless follow-up within the same turn (a tool call pending),
    // as Codex sends it: reasoning with only the blob.
    let follow = |blob: &str| {
        json!({"model": MODEL_ID, "temperature": 0, "store": false, "tools": [{"type": "function", "name": "f"}], "input": [
            {"type": "message", "role": "user", "content": "hi"},
            {"type": "reasoning", "summary": [], "encrypted_content": blob},
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "ok"}
        ]})
    };
    let (s, opened) = post_json(&app, "/v1/responses", &follow(blob).to_string()).await;
    assert_eq!(s, 200, "{opened}");
    let (s, forged) = post_json(
        &app,
        "/v1/responses",
        &follow("gptoss1.AAAAforged").to_string(),
    )
    .await;
    assert_eq!(s, 200, "{forged}");
    let tokens = |v: &Value| v["usage"]["input_tokens"].as_u64().unwrap_or(0);
    assert!(
        tokens(&opened) > tokens(&forged) + 5,
        "opened {} vs forged {}",
        tokens(&opened),
        tokens(&forged)
    );
}

#[tokio::test]
async fn streamed_summary_events_follow_the_reasoning() {
    let (app, _) = app(THINK_THEN_ANSWER);
    let body = json!({"model": MODEL_ID, "temperature": 0, "input": "hi", "stream": true, "reasoning": {"summary": "detailed"}});
    let (s, raw) = send(&app, "POST", "/v1/responses", Some(&body.to_string()), &[]).await;
    assert_eq!(s, 200);
    let frames = sse_frames(&raw);
    let summary: String = frames
        .iter()
        .filter(|(k, _)| k == "response.reasoning_summary_text.delta")
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"].as_str().map(str::to_string))
        .collect();
    assert_eq!(summary, "The user greets me; answer kindly.");
    let kinds: Vec<&str> = frames.iter().map(|(k, _)| k.as_str()).collect();
    let pos = |k: &str| kinds.iter().position(|x| *x == k);
    assert!(
        pos("response.reasoning_summary_part.added") < pos("response.reasoning_summary_text.delta")
    );
    assert!(
        pos("response.reasoning_summary_text.done") < pos("response.reasoning_summary_part.done")
    );
    assert!(pos("response.reasoning_summary_part.done").is_some());
}

#[tokio::test]
async fn malformed_tools_and_summaries_are_400s() {
    let (app, _) = app(THINK_THEN_ANSWER);
    for (body, param) in [
        (
            json!({"model": MODEL_ID, "input": "x", "tools": [{"type": "namespace", "name": "functions", "tools": []}]}),
            "tools[0].name",
        ),
        (
            json!({"model": MODEL_ID, "input": "x", "tools": [{"name": "f"}]}),
            "tools[0].type",
        ),
        (
            json!({"model": MODEL_ID, "input": "x", "reasoning": {"summary": "long"}}),
            "reasoning.summary",
        ),
    ] {
        let (s, r) = post_json(&app, "/v1/responses", &body.to_string()).await;
        assert_eq!(s, 400, "{r}");
        assert_error(&r, Some(param));
    }
}
