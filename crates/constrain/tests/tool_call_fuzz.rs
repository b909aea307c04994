//! Property test of well-formed tool calls: thousands of steps sampled from
//! random logits (not a model's) through the guarded harmony constraint.
//! Every completion must parse with harmony's *strict* parser, every call
//! must name a declared tool, every function call's arguments must be JSON
//! valid for that tool's schema (checked by the independent checker in
//! `common`), and no control token may appear inside a message body.

mod common;

use common::violation;
use gptoss_constrain::{Format, Grammar, HarmonyConstraint, HeaderGrammar, StructuredOutput};
use gptoss_harmony::tokenizer::{CALL, END, FIRST_SPECIAL_ID, MAX_TOKEN_ID, MESSAGE, RETURN};
use gptoss_harmony::{parse_messages_from_completion_tokens, ParseMode, Role, Tokenizer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// The declared function tools: a strict-style schema, a loose one (extra
/// properties allowed), and one with no parameters (any object).
fn tools() -> Vec<(&'static str, Value)> {
    vec![
        (
            "get_weather",
            json!({"type": "object",
                   "properties": {"city": {"type": "string", "maxLength": 12},
                                  "unit": {"enum": ["c", "f"]}},
                   "required": ["city", "unit"], "additionalProperties": false}),
        ),
        (
            "search",
            json!({"type": "object",
                   "properties": {"query": {"type": "string"}, "top": {"type": "integer"}},
                   "required": ["query"]}),
        ),
        ("ping", json!({"type": "object"})),
    ]
}

fn constraint(budget: usize) -> HarmonyConstraint {
    let mut recipients: Vec<String> = tools()
        .iter()
        .map(|(n, _)| format!("functions.{n}"))
        .collect();
    recipients.push("python".to_string());
    let tool_args = tools()
        .into_iter()
        .map(|(n, s)| {
            let g = Grammar::compile(&Format::JsonSchema(s)).expect("schema compiles");
            (n.to_string(), g)
        })
        .collect();
    HarmonyConstraint::new(StructuredOutput {
        final_answer: None,
        tool_args,
        headers: Some(HeaderGrammar::new(&recipients).expect("header grammar")),
    })
    .expect("constraint")
    .with_token_budget(Some(budget))
}

/// One token from random logits through the constraint. Mostly a uniform
/// pick among allowed ids (fast); every `MASK_EVERY`th step the full path:
/// random logits, `mask`, argmax, after checking that the mask forbids
/// exactly what `allowed` forbids. Control tokens get extra weight so turns
/// end and headers get written.
const MASK_EVERY: usize = 25;

fn sample(c: &mut HarmonyConstraint, rng: &mut ChaCha8Rng, step: usize) -> u32 {
    let allowed = c.allowed().expect("guarded: every step is constrained");
    assert!(!allowed.is_empty(), "dead end at step {step}");
    if step.is_multiple_of(MASK_EVERY) {
        let mut logits: Vec<f32> = (0..=MAX_TOKEN_ID)
            .map(|id| {
                let bias = if id >= FIRST_SPECIAL_ID { 6.0 } else { 0.0 };
                rng.random::<f32>() * 10.0 + bias
            })
            .collect();
        c.mask(&mut logits);
        let mut best = (f32::NEG_INFINITY, 0u32);
        for (id, &l) in logits.iter().enumerate() {
            assert_eq!(
                l.is_finite(),
                allowed.contains(id as u32),
                "mask vs allowed at {id}"
            );
            if l > best.0 {
                best = (l, id as u32);
            }
        }
        return best.1;
    }
    if rng.random::<f32>() < 0.12 {
        let specials: Vec<u32> = (FIRST_SPECIAL_ID..=MAX_TOKEN_ID)
            .filter(|&id| allowed.contains(id))
            .collect();
        if !specials.is_empty() {
            return specials[rng.random_range(0..specials.len())];
        }
    }
    for _ in 0..48 {
        let id = rng.random_range(0..FIRST_SPECIAL_ID);
        if allowed.contains(id) {
            return id;
        }
    }
    let all = allowed.to_vec();
    all[rng.random_range(0..all.len())]
}

#[derive(Default, Debug)]
struct Tally {
    steps: usize,
    completions: usize,
    function_calls: usize,
    python_calls: usize,
    finals: usize,
}

fn check_completion(tokens: &[u32], tally: &mut Tally) {
    // Token level: inside a body only its closer may be a control token.
    let mut in_body = false;
    for (i, &t) in tokens.iter().enumerate() {
        if t == MESSAGE {
            in_body = true;
        } else if in_body && t >= FIRST_SPECIAL_ID {
            assert!(
                matches!(t, END | RETURN | CALL),
                "control token {t} inside a body at {i}"
            );
            in_body = false;
        }
    }
    // Structure: the strict parser accepts everything up to the last closer.
    let Some(last) = tokens
        .iter()
        .rposition(|t| matches!(*t, END | RETURN | CALL))
    else {
        return;
    };
    let parsed = parse_messages_from_completion_tokens(
        &tokens[..=last],
        Some(Role::Assistant),
        ParseMode::Strict,
    )
    .unwrap_or_else(|e| {
        let text = Tokenizer::o200k_harmony().decode_lossy(tokens);
        panic!("strict parse failed: {e}\n{text:?}")
    });
    tally.completions += 1;
    let schemas = tools();
    for m in &parsed.messages {
        match m.recipient.as_deref() {
            None | Some("all") => {
                if m.channel.as_deref() == Some("final") {
                    tally.finals += 1;
                }
            }
            Some("python") => tally.python_calls += 1,
            Some(r) => {
                let name = r
                    .strip_prefix("functions.")
                    .unwrap_or_else(|| panic!("undeclared recipient {r:?}"));
                let (_, schema) = schemas
                    .iter()
                    .find(|(n, _)| *n == name)
                    .unwrap_or_else(|| panic!("undeclared function {name:?}"));
                let text = m.text();
                let value: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("arguments of {name} are not JSON ({e}): {text}"));
                assert_eq!(violation(schema, &value), None, "{name}: {text}");
                tally.function_calls += 1;
            }
        }
    }
}

#[test]
fn random_logits_always_give_well_formed_tool_calls() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x7001_ca11);
    let mut tally = Tally::default();
    for walk in 0..160 {
        let budget = 40 + (walk % 7) * 30;
        let mut c = constraint(budget);
        let mut tokens = Vec::new();
        for step in 0..budget {
            let t = sample(&mut c, &mut rng, step);
            c.accept(t);
            tokens.push(t);
            tally.steps += 1;
            if matches!(t, RETURN | CALL) {
                break;
            }
        }
        check_completion(&tokens, &mut tally);
    }
    eprintln!("{tally:?}");
    assert!(tally.steps >= 5_000, "{tally:?}");
    assert!(
        tally.function_calls >= 20,
        "too few calls to be a test: {tally:?}"
    );
    assert!(tally.finals >= 5, "{tally:?}");
}
