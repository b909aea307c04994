//! The harmony-aware constraint: JSON applies only inside a final answer
//! (with a response format) or a function call body with an argument
//! grammar, never to analysis or commentary preambles; it closes the JSON
//! within a token budget; with guarded headers, calls name declared tools
//! only and no stray control token appears in a body.

mod common;

use common::violation;
use gptoss_constrain::{Format, Grammar, HarmonyConstraint, HeaderGrammar, StructuredOutput};
use gptoss_harmony::tokenizer::{
    CALL, CHANNEL, END, FIRST_SPECIAL_ID, MAX_TOKEN_ID, MESSAGE, RETURN, START,
};
use gptoss_harmony::Tokenizer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

fn ids(text: &str) -> Vec<u32> {
    Tokenizer::o200k_harmony().encode_with_special_tokens(text)
}

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": false
    })
}

fn spec(final_answer: bool, strict_tool: bool) -> StructuredOutput {
    let grammar = || Grammar::compile(&Format::JsonSchema(schema())).unwrap();
    StructuredOutput {
        final_answer: final_answer.then(grammar),
        tool_args: if strict_tool {
            vec![("get_weather".to_string(), grammar())]
        } else {
            Vec::new()
        },
        headers: None,
    }
}

/// Feed `text`; assert every token is unconstrained (`free`) or allowed.
fn feed(c: &mut HarmonyConstraint, text: &str, free: bool) {
    for id in ids(text) {
        match c.allowed() {
            None => assert!(free, "unconstrained at {id} in {text:?}"),
            Some(set) => {
                assert!(!free, "constrained at {id} in {text:?}");
                assert!(set.contains(id), "token {id} of {text:?} not allowed");
            }
        }
        c.accept(id);
    }
}

#[test]
fn analysis_and_headers_are_free_final_is_json() {
    let mut c = HarmonyConstraint::new(spec(true, false)).unwrap();
    // Analysis: non-JSON text and control tokens, nothing masked.
    feed(
        &mut c,
        "<|channel|>analysis<|message|>User wants {weather; not JSON!",
        true,
    );
    feed(
        &mut c,
        "<|end|><|start|>assistant<|channel|>final<|message|>",
        true,
    );
    assert!(c.is_constraining());
    // The final body: JSON only, no control token until complete.
    let mut first = c.allowed().unwrap();
    for id in FIRST_SPECIAL_ID..=MAX_TOKEN_ID {
        assert!(!first.contains(id), "{id}");
    }
    assert!(!first.contains(ids("Sure")[0]));
    first.remove(0);
    feed(&mut c, r#"{"city": "Paris", "days": 3"#, false);
    let set = c.allowed().unwrap();
    assert!(!set.contains(RETURN) && !set.contains(END));
    feed(&mut c, "}", false);
    let set = c.allowed().unwrap();
    assert!(set.contains(RETURN));
    assert!(!set.contains(END) && !set.contains(CALL));
    c.accept(RETURN);
    assert!(c.allowed().is_none());
}

#[test]
fn strict_tool_bodies_are_json_then_call() {
    let mut c = HarmonyConstraint::new(spec(false, true)).unwrap();
    feed(
        &mut c,
        "<|channel|>analysis<|message|>Need the tool.<|end|><|start|>assistant",
        true,
    );
    feed(
        &mut c,
        "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>",
        true,
    );
    assert!(c.is_constraining());
    feed(&mut c, r#"{"city":"Oslo","days":1}"#, false);
    let set = c.allowed().unwrap();
    assert!(set.contains(CALL) && !set.contains(RETURN) && !set.contains(END));
    c.accept(CALL);
    assert!(!c.is_constraining());
}

#[test]
fn only_the_branch_taken_is_constrained() {
    // A strict tool but no response format (tool_choice auto): a free-text
    // final answer stays free.
    let mut c = HarmonyConstraint::new(spec(false, true)).unwrap();
    feed(
        &mut c,
        "<|channel|>final<|message|>It is sunny, no tool needed.<|return|>",
        true,
    );
    // A non-strict tool's arguments are free.
    let mut c = HarmonyConstraint::new(spec(true, false)).unwrap();
    feed(
        &mut c,
        "<|channel|>commentary to=functions.other <|constrain|>json<|message|>[not, json",
        true,
    );
    // A commentary preamble is free.
    let mut c = HarmonyConstraint::new(spec(true, true)).unwrap();
    feed(&mut c, "<|channel|>commentary<|message|>Let me check.<|end|><|start|>assistant<|channel|>final<|message|>", true);
    assert!(c.is_constraining());
}

#[test]
fn prefeed_opens_the_body() {
    // reasoning effort none: the prompt ends with the final channel opened.
    let mut c = HarmonyConstraint::new(spec(true, false)).unwrap();
    c.prefeed(&ids("<|channel|>final<|message|>"));
    assert!(c.is_constraining());
    // tool_choice named: the call header is in the prompt.
    let mut c = HarmonyConstraint::new(spec(false, true)).unwrap();
    c.prefeed(&ids(
        "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>",
    ));
    assert!(c.is_constraining());
    feed(&mut c, r#"{"city":"Rome","days":2}"#, false);
}

/// Random sampling among allowed tokens with a budget: the body always ends
/// as complete, valid JSON followed by `<|return|>` within the budget.
#[test]
fn budget_closes_the_json() {
    let tok = Tokenizer::o200k_harmony();
    for (seed, budget) in [(1u64, 12usize), (2, 20), (3, 40), (4, 80), (5, 150)] {
        let mut c = HarmonyConstraint::new(spec(true, false))
            .unwrap()
            .with_token_budget(Some(budget));
        c.prefeed(&ids("<|channel|>final<|message|>"));
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut body = Vec::new();
        let mut ended = false;
        for _ in 0..budget {
            let set = c.allowed().expect("constrained until the end").to_vec();
            let id = set[rng.random_range(0..set.len())];
            c.accept(id);
            if id == RETURN {
                ended = true;
                break;
            }
            body.push(id);
        }
        assert!(
            ended,
            "seed {seed} budget {budget}: no <|return|> in {:?}",
            tok.decode_lossy(&body)
        );
        let text = tok.decode_utf8(&body).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(violation(&schema(), &value), None, "{text}");
    }
}

fn guarded(recipients: &[&str]) -> HarmonyConstraint {
    let recipients: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
    let mut spec = spec(false, true);
    spec.headers = Some(HeaderGrammar::new(&recipients).unwrap());
    HarmonyConstraint::new(spec).unwrap()
}

#[test]
fn guarded_headers_name_declared_tools_only() {
    let mut c = guarded(&["functions.get_weather"]);
    // Analysis: free text, but no control token other than <|end|>.
    feed_checked(&mut c, "<|channel|>analysis<|message|>I should call it.");
    let set = c.allowed().unwrap();
    assert!(set.contains(END));
    for id in [RETURN, CALL, CHANNEL, MESSAGE, START] {
        assert!(!set.contains(id), "{id} allowed inside analysis");
    }
    feed_checked(&mut c, "<|end|>");
    // Between messages: only <|start|>.
    assert_eq!(c.allowed().unwrap().to_vec(), vec![START]);
    feed_checked(
        &mut c,
        "<|start|>assistant<|channel|>commentary to=functions.",
    );
    // The name: only the declared one can follow.
    let set = c.allowed().unwrap();
    assert!(!set.contains(ids("python")[0]));
    feed_checked(&mut c, "get_weather <|constrain|>json<|message|>");
    assert!(c.is_constraining());
    feed_checked(&mut c, r#"{"city":"Oslo","days":1}"#);
    assert!(c.allowed().unwrap().contains(CALL));

    // An undeclared recipient cannot even be started.
    let mut c = guarded(&["functions.get_weather"]);
    feed_checked(&mut c, "<|channel|>analysis to=");
    let set = c.allowed().unwrap();
    assert!(!set.contains(ids("python")[0]));
    // No tools at all: no recipient.
    let mut c = guarded(&[]);
    feed_checked(&mut c, "<|channel|>analysis");
    let set = c.allowed().unwrap();
    assert!(!set.contains(ids(" to")[0]));
    assert!(set.contains(MESSAGE));
}

#[test]
fn guarded_mask_matches_allowed() {
    // The fast mask of free bodies and of the gap between messages forbids
    // exactly what `allowed` forbids.
    let mut c = guarded(&["functions.get_weather"]);
    for text in [
        "<|channel|>analysis<|message|>Thinking",
        "<|end|>",
        "<|start|>assistant<|channel|>final<|message|>Hello",
    ] {
        feed_checked(&mut c, text);
        let allowed = c.allowed().unwrap();
        let mut logits = vec![0.0f32; (MAX_TOKEN_ID + 1) as usize];
        c.mask(&mut logits);
        for (id, l) in logits.iter().enumerate() {
            assert_eq!(
                l.is_finite(),
                allowed.contains(id as u32),
                "{id} after {text:?}"
            );
        }
    }
}

/// Feed `text`, asserting each token is allowed (constrained or not).
fn feed_checked(c: &mut HarmonyConstraint, text: &str) {
    for id in ids(text) {
        if let Some(set) = c.allowed() {
            assert!(set.contains(id), "token {id} of {text:?} not allowed");
        }
        c.accept(id);
    }
}
