//! o200k_harmony encoding against tiktoken (`encode_ordinary`) and
//! openai-harmony (`encode(text, allowed_special="all")`):
//! testdata/harmony/tokenizer.json.

mod common;

use gptoss_harmony::Tokenizer;

#[test]
fn tokenizer_matches_tiktoken_and_openai_harmony() {
    let fx = common::fixture("tokenizer.json");
    let tok = Tokenizer::o200k_harmony();
    let cases = common::cases(&fx);
    assert!(cases.len() > 100, "expected the full fixture");
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().expect("text");
        let ordinary = common::ids(&case["ordinary"]);
        let with_special = common::ids(&case["with_special"]);
        if tok.encode_ordinary(text) != ordinary {
            failures.push(format!("ordinary: {text:?}"));
        }
        if tok.encode_with_special_tokens(text) != with_special {
            failures.push(format!("with_special: {text:?}"));
        }
        // Decoding gives the text back, both ways.
        if tok.decode_utf8(&ordinary).as_deref() != Ok(text) {
            failures.push(format!("decode ordinary: {text:?}"));
        }
        if tok.decode_utf8(&with_special).as_deref() != Ok(text) {
            failures.push(format!("decode with_special: {text:?}"));
        }
        // Streaming decode equals whole decode.
        let mut dec = tok.incremental_decoder();
        let mut streamed = String::new();
        for &id in &ordinary {
            streamed.push_str(&dec.push(id).expect("known id"));
        }
        streamed.push_str(&dec.finish());
        if streamed != text {
            failures.push(format!("incremental decode: {text:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches, first ones: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
}
