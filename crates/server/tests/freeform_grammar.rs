//! `custom` (freeform) tools with a grammar, end to end on `/v1/responses`:
//! the embedded demo model (assets/demo-model) sampled at temperature 1 on
//! several seeds, the call forced by a named `tool_choice`. A regex grammar
//! is enforced on the call's `input`; a grammar that cannot be enforced (a
//! recursive Lark grammar) is named in the `x-gpt-oss-warning` header and
//! the call is still a well-formed `custom_tool_call`.

mod common;

use std::io::Read;

use axum::http::StatusCode;
use common::{config, post_with_headers, MODEL_ID};
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
            max_concurrency: 2,
            max_queue: 8,
            context_tokens: 2048,
        },
        config(),
    )
    .0
}

/// The one `custom_tool_call` of a response.
fn the_call(r: &Value) -> &Value {
    let calls: Vec<&Value> = r["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["type"] == "custom_tool_call")
        .collect();
    assert_eq!(calls.len(), 1, "{r}");
    calls[0]
}

fn is_code(input: &str) -> bool {
    let b = input.as_bytes();
    b.len() == 6
        && b[..3].iter().all(u8::is_ascii_digit)
        && b[3] == b'-'
        && b[4..].iter().all(u8::is_ascii_lowercase)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_grammar_is_enforced_on_the_input() {
    let app = app();
    let tools = json!([{"type": "custom", "name": "book", "description": "Books a room by its code.",
        "format": {"type": "grammar", "syntax": "regex", "definition": "^(?:[0-9]{3}-[a-z]{2})$"}}]);
    for seed in 1..=4 {
        let body = json!({"model": MODEL_ID, "input": "Book room 12 on the east side.", "tools": tools,
            "tool_choice": {"type": "custom", "name": "book"}, "temperature": 1.0, "seed": seed,
            "max_output_tokens": 64, "store": false});
        let (status, headers, r) =
            post_with_headers(&app, "/v1/responses", &body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert!(!headers.contains_key("x-gpt-oss-warning"), "{headers:?}");
        let call = the_call(&r);
        assert_eq!(call["name"], "book");
        let input = call["input"].as_str().unwrap_or_default();
        assert!(is_code(input), "seed {seed}: {input:?} does not match: {r}");
    }
    assert!(!is_code("12-ab") && !is_code("123-aB") && is_code("123-ab"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recursive_lark_grammar_warns_and_the_call_stays_well_formed() {
    let app = app();
    let tools = json!([{"type": "custom", "name": "calc", "description": "Evaluates arithmetic.",
        "format": {"type": "grammar", "syntax": "lark",
                   "definition": "start: expr\nexpr: term ((\"+\" | \"-\") term)*\nterm: INT | \"(\" expr \")\"\n%import common.INT\n"}}]);
    for seed in [5, 6] {
        let body = json!({"model": MODEL_ID, "input": "What is (1+2)-3?", "tools": tools,
            "tool_choice": {"type": "custom", "name": "calc"}, "temperature": 1.0, "seed": seed,
            "max_output_tokens": 48, "store": false});
        let (status, headers, r) =
            post_with_headers(&app, "/v1/responses", &body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        let warning = headers
            .get("x-gpt-oss-warning")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            warning.contains("calc")
                && warning.contains("not enforced")
                && warning.contains("recursive"),
            "{warning:?}"
        );
        let call = the_call(&r);
        assert_eq!(call["name"], "calc", "{r}");
        assert!(call["input"].is_string(), "{r}");
        assert!(
            call["call_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{r}"
        );
    }
}
