//! Structured output end to end with a real network: the embedded demo model
//! (assets/demo-model, trained to speak harmony: analysis, then a final
//! answer or a tool call), sampled at temperature 1 on several seeds. The
//! final content must parse and match the json_schema; the analysis is not
//! constrained (it stays the model's prose); strict tool arguments match
//! their schema; schemas that cannot be compiled are 400s.

mod common;

use std::io::Read;

use axum::http::StatusCode;
use common::{assert_error, config, post_json};
use gptoss_model::Model;
use gptoss_server::SchedulerConfig;
use serde_json::{json, Value};

fn demo_model() -> Model {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/demo-model");
    let config = std::fs::read(dir.join("config.json")).expect("demo config");
    let gz = std::fs::read(dir.join("model.safetensors.gz")).expect("demo weights");
    let mut weights = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut weights)
        .expect("gunzip");
    Model::from_memory(&config, weights).expect("demo model loads")
}

fn app() -> axum::Router {
    common::app_with(
        demo_model(),
        SchedulerConfig {
            max_concurrency: 4,
            max_queue: 16,
            context_tokens: 2048,
        },
        config(),
    )
    .0
}

fn answer_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "answer": {"type": "integer"},
            "unit": {"enum": ["cm", "km", "none"]},
            "note": {"type": "string"}
        },
        "required": ["answer", "unit", "note"],
        "additionalProperties": false
    })
}

/// Exactly the keys of [`answer_schema`] with the right types.
fn check_answer(content: &str) {
    let v: Value = serde_json::from_str(content).unwrap_or_else(|e| panic!("{e}: {content:?}"));
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {content}"));
    assert_eq!(obj.len(), 3, "{content}");
    assert!(
        obj["answer"].is_i64() || obj["answer"].is_u64(),
        "{content}"
    );
    assert!(
        ["cm", "km", "none"].contains(&obj["unit"].as_str().unwrap_or("")),
        "{content}"
    );
    assert!(obj["note"].is_string(), "{content}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_schema_final_answers_match_the_schema_and_analysis_is_free() {
    let app = app();
    let mut free_reasoning = 0;
    for seed in 1..=4 {
        let body = json!({
            "messages": [{"role": "user", "content": "What is 12 + 35?"}],
            "temperature": 1.0,
            "seed": seed,
            "max_tokens": 160,
            "response_format": {"type": "json_schema", "json_schema": {"name": "sum", "strict": true, "schema": answer_schema()}},
        });
        let (status, v) = post_json(&app, "/v1/chat/completions", &body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let message = &v["choices"][0]["message"];
        let content = message["content"]
            .as_str()
            .unwrap_or_else(|| panic!("no content: {v}"));
        check_answer(content);
        let reasoning = message["reasoning_content"].as_str().unwrap_or("");
        // The analysis is the model's own text, not JSON.
        if !reasoning.is_empty() && serde_json::from_str::<Value>(reasoning).is_err() {
            free_reasoning += 1;
        }
        assert!(!content.contains("<|"), "{content}");
    }
    assert!(
        free_reasoning >= 2,
        "the analysis channel looks constrained"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_budget_still_closes_the_json() {
    let app = app();
    // Effort none: the prompt opens the final channel, the body is JSON from
    // the first token; 16 tokens must suffice to close it.
    for seed in [7, 8] {
        let body = json!({
            "messages": [{"role": "user", "content": "Convert 3 km to m."}],
            "temperature": 1.0,
            "seed": seed,
            "max_tokens": 16,
            "reasoning_effort": "none",
            "response_format": {"type": "json_schema", "json_schema": {"name": "sum", "schema": answer_schema()}},
        });
        let (status, v) = post_json(&app, "/v1/chat/completions", &body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        check_answer(v["choices"][0]["message"]["content"].as_str().unwrap_or(""));
        // Closed early by the budget: a length stop, not a natural one.
        let finish = v["choices"][0]["finish_reason"].as_str().unwrap_or("");
        assert!(finish == "length" || finish == "stop", "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_object_and_strict_tool_arguments() {
    let app = app();
    let body = json!({
        "messages": [{"role": "user", "content": "Sort 5, 2, 9."}],
        "temperature": 1.0, "seed": 3, "max_tokens": 200,
        "response_format": {"type": "json_object"},
    });
    let (status, v) = post_json(&app, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let content = v["choices"][0]["message"]["content"].as_str().unwrap_or("");
    let parsed: Value =
        serde_json::from_str(content).unwrap_or_else(|e| panic!("{e}: {content:?}"));
    assert!(parsed.is_object(), "{content}");

    let params = json!({
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"],
        "additionalProperties": false
    });
    for seed in [1, 2, 3] {
        let body = json!({
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
            "temperature": 1.0, "seed": seed, "max_tokens": 120,
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "strict": true, "parameters": params}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        });
        let (status, v) = post_json(&app, "/v1/chat/completions", &body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let call = &v["choices"][0]["message"]["tool_calls"][0]["function"];
        assert_eq!(call["name"], "get_weather", "{v}");
        let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{e}: {v}"));
        assert!(args["city"].is_string(), "{args}");
        assert!(
            ["celsius", "fahrenheit"].contains(&args["unit"].as_str().unwrap_or("")),
            "{args}"
        );
        assert_eq!(args.as_object().map(|o| o.len()), Some(2), "{args}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_text_format_is_enforced() {
    let app = app();
    for seed in [1, 2] {
        let body = json!({
            "input": "What is 12 + 35?",
            "temperature": 1.0, "seed": seed, "max_output_tokens": 160,
            "text": {"format": {"type": "json_schema", "name": "sum", "strict": true, "schema": answer_schema()}},
        });
        let (status, v) = post_json(&app, "/v1/responses", &body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let texts: Vec<&str> = v["output"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|item| item["type"] == "message")
            .flat_map(|item| item["content"].as_array().into_iter().flatten())
            .filter_map(|part| part["text"].as_str())
            .collect();
        assert_eq!(texts.len(), 1, "{v}");
        check_answer(texts[0]);
    }
}

#[tokio::test]
async fn uncompilable_schemas_are_400() {
    let (app, _engine) = common::app("<|channel|>final<|message|>{}<|return|>");
    let body = json!({
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/$defs/nowhere"}}},
    });
    let (status, v) = post_json(&app, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_error(&v, Some("response_format.json_schema.schema"));

    let body = json!({
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "strict": true, "parameters": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 1}}, "required": ["n"]}}}],
    });
    let (status, v) = post_json(&app, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");

    let body = json!({
        "input": "hi",
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {"$ref": "#/$defs/nowhere"}}},
    });
    let (status, v) = post_json(&app, "/v1/responses", &body.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
}

/// With a response format the answer is the final message alone: a model
/// that starts with a commentary preamble (here a scripted one) is steered
/// off it, so `content` is JSON and nothing else.
#[tokio::test]
async fn no_preamble_beside_a_json_answer() {
    let (app, _) = common::app(
        "<|channel|>commentary<|message|>Here is the JSON.<|end|><|start|>assistant<|channel|>final<|message|>{\"a\": 1}<|return|>",
    );
    let body = json!({
        "messages": [{"role": "user", "content": "JSON please."}],
        "temperature": 0, "max_tokens": 64,
        "response_format": {"type": "json_object"},
    });
    let (status, v) = post_json(&app, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // Steered off its script, the model may still be reasoning when the
    // budget ends (empty content); whatever content there is, is the JSON.
    let content = v["choices"][0]["message"]["content"].as_str().unwrap_or("");
    assert!(
        !content.contains("Here is"),
        "a preamble reached content: {content:?}"
    );
    assert!(
        content.is_empty() || serde_json::from_str::<Value>(content).is_ok_and(|j| j.is_object()),
        "content must be the JSON answer alone: {content:?}"
    );
}
