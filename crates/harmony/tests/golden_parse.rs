//! Parsing against openai-harmony 0.0.8: testdata/harmony/parse.json.
//! Strict mode must give the same messages, or fail where the reference
//! fails; lenient mode must give the reference's `strict=False` messages
//! wherever that succeeds, and never fail; the streaming state after every
//! token must match `StreamableParser`.

mod common;

use gptoss_harmony::{parse_messages_from_completion_tokens, ParseMode, Role, StreamParser};
use serde_json::{json, Value};

fn role_of(case: &Value) -> Option<Role> {
    case["role"]
        .as_str()
        .map(|r| r.parse().expect("fixture role"))
}

fn outcome(tokens: &[u32], role: Option<Role>, mode: ParseMode) -> Value {
    match parse_messages_from_completion_tokens(tokens, role, mode) {
        Ok(out) => json!({ "messages": out.messages }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

#[test]
fn strict_parse_matches_openai_harmony() {
    let fx = common::fixture("parse.json");
    let mut failures = Vec::new();
    for case in common::cases(&fx) {
        let name = case["name"].as_str().expect("name");
        let tokens = common::ids(&case["tokens"]);
        let got = outcome(&tokens, role_of(case), ParseMode::Strict);
        let expected = &case["strict"];
        let ok = if expected.get("error").is_some() {
            got.get("error").is_some()
        } else {
            &got == expected
        };
        if !ok {
            failures.push(format!("{name}:\n ours {got}\n ref  {expected}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches: {:#?}",
        failures.len(),
        failures
    );
}

#[test]
fn lenient_parse_matches_non_strict_and_never_fails() {
    let fx = common::fixture("parse.json");
    let mut failures = Vec::new();
    for case in common::cases(&fx) {
        let name = case["name"].as_str().expect("name");
        let tokens = common::ids(&case["tokens"]);
        let got = outcome(&tokens, role_of(case), ParseMode::Lenient);
        if got.get("error").is_some() {
            failures.push(format!("{name}: lenient failed: {got}"));
            continue;
        }
        let expected = &case["non_strict"];
        if expected.get("error").is_none() && &got != expected {
            failures.push(format!("{name}:\n ours {got}\n ref  {expected}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches: {:#?}",
        failures.len(),
        failures
    );
}

fn state_name(s: &str) -> &str {
    match s {
        "StreamState.EXPECT_START" => "ExpectStart",
        "StreamState.HEADER" => "Header",
        "StreamState.CONTENT" => "Content",
        other => other,
    }
}

#[test]
fn streaming_state_matches_streamable_parser() {
    let fx = common::fixture("parse.json");
    let mut failures = Vec::new();
    for case in common::cases(&fx) {
        let Some(stream) = case["stream"].as_array() else {
            continue;
        };
        let name = case["name"].as_str().expect("name");
        let tokens = common::ids(&case["tokens"]);
        let mut parser = StreamParser::new(role_of(case), ParseMode::Strict);
        let mut deltas = String::new();
        for (i, entry) in stream.iter().enumerate() {
            if entry.get("eos").is_some() {
                let res = parser.finish();
                match (entry.get("error"), res) {
                    (Some(_), Err(_)) => {}
                    (None, Ok(events)) => {
                        for ev in events {
                            if let gptoss_harmony::ParseEvent::ContentDelta(d) = ev {
                                deltas.push_str(&d);
                            }
                        }
                        let got = json!(parser.messages());
                        if got != entry["messages"] {
                            failures.push(format!("{name}: EOS messages differ: {got}"));
                        }
                    }
                    (e, r) => {
                        failures.push(format!("{name}: EOS outcome differs: ref {e:?} ours {r:?}"))
                    }
                }
                break;
            }
            let Some(&token) = tokens.get(i) else {
                failures.push(format!("{name}: stream longer than tokens"));
                break;
            };
            let res = parser.push(token);
            if entry.get("error").is_some() {
                if res.is_ok() {
                    failures.push(format!("{name}: token {i} should fail"));
                }
                break;
            }
            let events = match res {
                Ok(ev) => ev,
                Err(e) => {
                    failures.push(format!("{name}: token {i} failed: {e}"));
                    break;
                }
            };
            for ev in events {
                if let gptoss_harmony::ParseEvent::ContentDelta(d) = ev {
                    deltas.push_str(&d);
                }
            }
            let got = json!({
                "current_role": parser.current_role().map(|r| r.as_str()),
                "current_channel": parser.current_channel(),
                "current_recipient": parser.current_recipient(),
                "current_content_type": parser.current_content_type(),
                "last_content_delta": parser.last_content_delta(),
                "state": parser.state().as_str(),
            });
            let mut expected = entry.clone();
            if let Some(s) = entry["state"].as_str() {
                expected["state"] = json!(state_name(s));
            }
            if got != expected {
                failures.push(format!(
                    "{name}: after token {i}:\n ours {got}\n ref  {expected}"
                ));
                break;
            }
        }
        // Deltas (events) add up to the messages' text.
        if parser.state() == gptoss_harmony::StreamState::ExpectStart {
            let text: String = parser.messages().iter().map(|m| m.text()).collect();
            if deltas != text && !failures.iter().any(|f| f.starts_with(name)) {
                failures.push(format!("{name}: deltas {deltas:?} != text {text:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches: {:#?}",
        failures.len(),
        failures
    );
}
