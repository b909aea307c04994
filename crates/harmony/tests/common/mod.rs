//! Shared helpers for the golden tests: load a fixture from
//! `testdata/harmony/` (made by `scripts/golden/harmony/` with tiktoken and
//! openai-harmony; see the README there).

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

pub fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/harmony")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

pub fn cases(fixture: &Value) -> &Vec<Value> {
    fixture["cases"]
        .as_array()
        .expect("fixture has a cases array")
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("token id array")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("token id is an integer")).expect("id fits u32"))
        .collect()
}
