//! Our wrapping equals CPython's textwrap on the golden cases made by
//! scripts/golden/textwrap_cases.py (testdata/textwrap/).

use std::path::Path;

#[test]
fn wrap_matches_cpython_textwrap() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/textwrap/cases.json");
    let text = std::fs::read_to_string(&path).expect("read golden cases");
    let json: serde_json::Value = serde_json::from_str(&text).expect("parse golden cases");
    let cases = json["cases"].as_array().expect("cases");
    assert!(cases.len() >= 300);
    let mut failures = Vec::new();
    for c in cases {
        let line = c["line"].as_str().expect("line");
        let width = c["width"].as_u64().expect("width") as usize;
        let want: Vec<String> = serde_json::from_value(c["wrapped"].clone()).expect("wrapped");
        let got = gptoss_tools::textwrap::wrap(line, width);
        if got != want {
            failures.push(format!(
                "width {width} line {line:?}\n want {want:?}\n  got {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        cases.len(),
        failures[..failures.len().min(5)].join("\n")
    );
}
