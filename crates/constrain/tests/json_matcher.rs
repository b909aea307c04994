//! The JSON matcher over the real o200k_harmony vocabulary: valid JSON is
//! accepted token by token (every token in the mask), invalid JSON is
//! rejected, bad schemas are errors, and any walk through the masks that
//! ends complete is JSON that satisfies the schema.

mod common;

use common::{random_walk, violation};
use gptoss_constrain::{Error, Format, Grammar};
use gptoss_harmony::Tokenizer;
use proptest::prelude::*;
use serde_json::{json, Value};

fn person() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b", "c"]}, "maxItems": 4},
            "pet": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"kind": {"const": "cat"}}, "required": ["kind"], "additionalProperties": false}]},
            "score": {"type": "number"},
            "ok": {"type": "boolean"}
        },
        "required": ["name", "age", "ok"],
        "additionalProperties": false
    })
}

/// Feed `text` (as tiktoken tokenizes it); `Ok(complete)` or the first rejection.
fn run(grammar: &Grammar, text: &str) -> Result<bool, Error> {
    let tok = Tokenizer::o200k_harmony();
    let mut m = grammar.matcher();
    for id in tok.encode_ordinary(text) {
        let allowed = m.allowed()?;
        if !allowed.contains(id) {
            return Err(Error::Rejected {
                token: id,
                message: "not in mask".into(),
            });
        }
        m.accept(id)?;
    }
    Ok(m.is_complete())
}

#[test]
fn valid_json_is_accepted_token_by_token() {
    let g = Grammar::compile(&Format::JsonSchema(person())).unwrap();
    for text in [
        r#"{"name":"Ada","age":36,"ok":true}"#,
        r#"{"name": "Ada Lovelace", "age": 36, "tags": ["a", "c"], "pet": null, "score": -1.5e3, "ok": false}"#,
        "{\n  \"name\": \"\\u00e9t\\u00e9 \\\"q\\\"\",\n  \"age\": 0,\n  \"pet\": {\"kind\": \"cat\"},\n  \"ok\": true\n}",
        r#"{"name":"日本語 ✓","age":150,"ok":true}"#,
    ] {
        assert_eq!(run(&g, text), Ok(true), "{text}");
    }
    // Properties come in the schema's order (as with OpenAI's structured
    // outputs): the engine generates them in that order.
    assert!(run(&g, r#"{"ok":true,"age":150,"name":"x"}"#).is_err());
    // A valid prefix is accepted but not complete.
    assert_eq!(run(&g, r#"{"name":"Ada","age":3"#), Ok(false));
}

#[test]
fn invalid_json_is_rejected() {
    let g = Grammar::compile(&Format::JsonSchema(person())).unwrap();
    for text in [
        r#"{"name":"Ada","age":"36","ok":true}"#,     // wrong type
        r#"{"name":"Ada","ok":true}"#,                // missing required age
        r#"{"name":"Ada","age":36,"ok":true,"x":1}"#, // additionalProperties false
        r#"{"name":"Ada","age":36,"ok":true,"tags":["d"]}"#, // enum
        r#"{"name":"Ada","age":36,"ok":true,"pet":{"kind":"dog"}}"#, // const in anyOf
        r#"{"name":"Ada","age":36,"ok":true} trailing"#, // garbage after the value
        r#"{'name':'Ada'}"#,                          // not JSON
        r#"{"name":"Ada","age":36,"ok":tru}"#,
        r#"[1]"#,
    ] {
        assert!(run(&g, text).is_err(), "accepted {text}");
    }
}

#[test]
fn json_object_accepts_any_object_only() {
    let g = Grammar::compile(&Format::JsonObject).unwrap();
    assert_eq!(run(&g, r#"{"a":[1,{"b":null}],"c":"d"}"#), Ok(true));
    assert_eq!(run(&g, "{}"), Ok(true));
    assert!(run(&g, "[1,2]").is_err());
    assert!(run(&g, "\"text\"").is_err());
    assert!(run(&g, "42").is_err());
}

#[test]
fn special_tokens_are_never_json() {
    let g = Grammar::compile(&Format::JsonObject).unwrap();
    let mut m = g.matcher();
    let allowed = m.allowed().unwrap();
    for id in 199_998..=201_088u32 {
        assert!(!allowed.contains(id));
    }
    assert!(m.accept(gptoss_harmony::tokenizer::RETURN).is_err());
}

#[test]
fn bad_schemas_are_errors() {
    for schema in [
        json!("object"),
        json!(42),
        json!({"type": "strin"}),
        json!({"$ref": "#/$defs/missing"}),
        json!({"type": "object", "properties": {"a": {"type": "integer", "minimum": 5, "maximum": 1}}, "required": ["a"]}),
    ] {
        let e = Grammar::compile(&Format::JsonSchema(schema.clone()));
        assert!(
            matches!(e, Err(Error::InvalidSchema { .. })),
            "{schema}: {e:?}"
        );
    }
    // $defs / $ref inside the document work.
    let g = Grammar::compile(&Format::JsonSchema(json!({
        "$defs": {"p": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"], "additionalProperties": false}},
        "type": "array", "items": {"$ref": "#/$defs/p"}
    })))
    .unwrap();
    assert_eq!(run(&g, r#"[{"x":1},{"x":2}]"#), Ok(true));
    assert!(run(&g, r#"[{"y":1}]"#).is_err());
}

#[test]
fn steering_closes_quickly() {
    let g = Grammar::compile(&Format::JsonSchema(person())).unwrap();
    let tok = Tokenizer::o200k_harmony();
    let mut m = g.matcher();
    for id in tok.encode_ordinary(r#"{"name":"A very long name that goes on"#) {
        m.accept(id).unwrap();
    }
    let path = m.closing_path(100).expect("closes");
    // `","age":0,"ok":true}` and maybe an optional key: a handful of tokens.
    assert!(path.len() <= 24, "{path:?}");
    assert!(m.closing_path(path.len() - 1).is_none());
    for &id in &path {
        assert!(!m.is_complete());
        assert!(m.allowed().unwrap().contains(id));
        m.accept(id).unwrap();
    }
    assert!(m.is_complete(), "{:?}", tok.decode_lossy(&path));
    let text = tok
        .decode_utf8(&tok.encode_ordinary(r#"{"name":"A very long name that goes on"#))
        .unwrap()
        + &tok.decode_utf8(&path).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(violation(&person(), &value), None, "{text}");
}

fn check_walk(schema: &Value, seed: u64, free_steps: usize) {
    let g = Grammar::compile(&Format::JsonSchema(schema.clone())).unwrap();
    let mut m = g.matcher();
    let ids = random_walk(&mut m, seed, free_steps);
    let bytes = Tokenizer::o200k_harmony().decode_bytes(&ids).unwrap();
    let text = String::from_utf8(bytes).expect("complete JSON is UTF-8");
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    if let Some(v) = violation(schema, &value) {
        panic!("{v}: {text}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn any_allowed_walk_is_valid_json_for_the_schema(seed in any::<u64>(), free in 0usize..40, which in 0usize..4) {
        let schemas = [
            person(),
            json!({"type": "array", "items": {"type": "object", "properties": {"k": {"enum": [1, "two", null]}, "v": {"type": "number"}}, "required": ["k"]}}),
            json!({"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}]}),
            json!({"type": "object"}),
        ];
        check_walk(&schemas[which], seed, free);
    }
}
