//! Test helpers: an independent checker for the JSON-schema subset the tests
//! use (type, properties, required, additionalProperties, enum, const, items,
//! anyOf, minItems/maxItems, minLength/maxLength, minimum/maximum), and a
//! random walk that samples only tokens the mask allows.
#![allow(dead_code)]

use gptoss_constrain::Matcher;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// Why `value` does not satisfy `schema`, or `None` when it does.
pub fn violation(schema: &Value, value: &Value) -> Option<String> {
    let Some(s) = schema.as_object() else {
        return None; // `true`
    };
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "number" => value.is_number(),
            "integer" => value.as_f64().is_some_and(|x| x.fract() == 0.0),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => false,
        });
        if !ok {
            return Some(format!("{value} is not of type {t}"));
        }
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            return Some(format!("{value} not in enum"));
        }
    }
    if let Some(c) = s.get("const") {
        if c != value {
            return Some(format!("{value} != const {c}"));
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        if any.iter().all(|sub| violation(sub, value).is_some()) {
            return Some(format!("{value} matches no anyOf branch"));
        }
    }
    if let Value::Object(map) = value {
        let props = s.get("properties").and_then(Value::as_object);
        for req in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(k) = req.as_str() {
                if !map.contains_key(k) {
                    return Some(format!("missing required {k}"));
                }
            }
        }
        for (k, v) in map {
            match props.and_then(|p| p.get(k)) {
                Some(sub) => {
                    if let Some(e) = violation(sub, v) {
                        return Some(format!("{k}: {e}"));
                    }
                }
                None => {
                    if s.get("additionalProperties") == Some(&Value::Bool(false)) {
                        return Some(format!("additional property {k}"));
                    }
                }
            }
        }
    }
    if let Value::Array(items) = value {
        if let Some(sub) = s.get("items") {
            for (i, v) in items.iter().enumerate() {
                if let Some(e) = violation(sub, v) {
                    return Some(format!("[{i}]: {e}"));
                }
            }
        }
        if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
            if (items.len() as u64) < min {
                return Some("too few items".into());
            }
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
            if (items.len() as u64) > max {
                return Some("too many items".into());
            }
        }
    }
    if let Value::String(text) = value {
        let n = text.chars().count() as u64;
        if s.get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
        {
            return Some("string too short".into());
        }
        if s.get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| n > m)
        {
            return Some("string too long".into());
        }
    }
    if let Some(x) = value.as_f64() {
        if s.get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| x < m)
        {
            return Some("below minimum".into());
        }
        if s.get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| x > m)
        {
            return Some("above maximum".into());
        }
    }
    None
}

/// Sample `matcher` to completion: uniformly among allowed tokens for
/// `free_steps` steps, then steered to a close. Returns the token ids.
pub fn random_walk(matcher: &mut Matcher, seed: u64, free_steps: usize) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for _ in 0..free_steps {
        let allowed = matcher.allowed().expect("mask");
        if matcher.is_complete() && (allowed.is_empty() || rng.random_bool(0.3)) {
            return out;
        }
        let ids = allowed.to_vec();
        assert!(!ids.is_empty(), "dead end after {out:?}");
        let id = ids[rng.random_range(0..ids.len())];
        matcher.accept(id).expect("an allowed token is accepted");
        out.push(id);
    }
    let path = matcher.closing_path(400).expect("closes within 400 tokens");
    for id in path {
        assert!(matcher.allowed().expect("mask").contains(id));
        matcher.accept(id).expect("a closing token is accepted");
        out.push(id);
    }
    assert!(matcher.is_complete());
    out
}
