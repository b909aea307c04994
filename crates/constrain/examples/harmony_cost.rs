//! Cost per decode step of the guarded harmony constraint (what every
//! request with tools pays): one typical assistant turn with Codex-sized
//! tools is fed token by token (a header, 300 tokens of analysis, a call
//! header naming a declared function, its JSON arguments), timing
//! `mask()` (on a full 201,088-logit row) and `accept()` per step, grouped by
//! what the step was in. Also times building the constraint (grammar
//! compilation of the headers and each tool's schema), paid once per request.
//!
//!     cargo run --release -p gptoss-constrain --example harmony_cost

use std::time::Instant;

use gptoss_constrain::{Format, Grammar, HarmonyConstraint, HeaderGrammar, StructuredOutput};
use gptoss_harmony::Tokenizer;
use serde_json::json;

fn main() -> Result<(), gptoss_constrain::Error> {
    let tok = Tokenizer::o200k_harmony();
    let t = Instant::now();
    gptoss_constrain::Vocab::o200k_harmony()?;
    println!(
        "vocabulary + token trie (once per process): {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    // Ten functions shaped like Codex's (strings, numbers, arrays, enums).
    let schema = json!({"type": "object", "properties": {
        "cmd": {"type": "string"}, "workdir": {"type": "string"},
        "timeout_ms": {"type": "number"}, "tty": {"type": "boolean"},
        "prefix_rule": {"type": "array", "items": {"type": "string"}},
        "sandbox_permissions": {"enum": ["use_default", "require_escalated"]}},
        "required": ["cmd"], "additionalProperties": false});
    let names: Vec<String> = (0..10).map(|i| format!("tool_{i}")).collect();

    let mut rows = Vec::new();
    for round in 0..5 {
        let t = Instant::now();
        let recipients: Vec<String> = names.iter().map(|n| format!("functions.{n}")).collect();
        let tool_args = names
            .iter()
            .map(|n| {
                Ok((
                    n.clone(),
                    Grammar::compile(&Format::JsonSchema(schema.clone()))?,
                ))
            })
            .collect::<Result<Vec<_>, gptoss_constrain::Error>>()?;
        let mut constraint = HarmonyConstraint::new(StructuredOutput {
            final_answer: None,
            tool_args,
            headers: Some(HeaderGrammar::new(&recipients)?),
        })?
        .with_token_budget(Some(4096));
        let build_ms = t.elapsed().as_secs_f64() * 1e3;

        let analysis: String = "Let me think about which command lists the files here. ".repeat(30);
        let turn = [
            ("header", "<|channel|>analysis<|message|>".to_string()),
            ("free text (analysis)", analysis),
            (
                "header",
                "<|end|><|start|>assistant<|channel|>commentary to=functions.tool_3 <|constrain|>json<|message|>".to_string(),
            ),
            (
                "JSON arguments",
                r#"{"cmd":"ls -la /tmp","workdir":"/tmp","timeout_ms":1000,"prefix_rule":["ls"],"sandbox_permissions":"use_default"}"#.to_string(),
            ),
            ("header", "<|call|>".to_string()),
        ];
        let mut logits = vec![0.0f32; 201_088];
        let mut by_kind: Vec<(&str, Vec<f64>)> = Vec::new();
        for (kind, text) in &turn {
            for id in tok.encode_with_special_tokens(text) {
                let t = Instant::now();
                constraint.mask(&mut logits);
                let allowed = logits[id as usize] > f32::NEG_INFINITY;
                constraint.accept(id);
                let us = t.elapsed().as_secs_f64() * 1e6;
                logits.fill(0.0);
                assert!(allowed, "the typical turn was refused at {kind}: {text}");
                match by_kind.iter_mut().find(|(k, _)| k == kind) {
                    Some((_, v)) => v.push(us),
                    None => by_kind.push((kind, vec![us])),
                }
            }
        }
        if round > 0 {
            // round 0 warms caches and lazy tables
            rows.push((build_ms, by_kind));
        }
    }
    let builds: Vec<f64> = rows.iter().map(|r| r.0).collect();
    println!(
        "build (10 tool schemas + headers): median {:.1} ms over {} requests",
        median(builds),
        rows.len()
    );
    let mut all_steps = Vec::new();
    for kind in ["header", "free text (analysis)", "JSON arguments"] {
        let v: Vec<f64> = rows
            .iter()
            .flat_map(|r| {
                r.1.iter()
                    .filter(|(k, _)| *k == kind)
                    .flat_map(|(_, v)| v.clone())
            })
            .collect();
        all_steps.extend(v.iter().copied());
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "{kind}: {} steps, mean {mean:.0} us, median {:.0} us, max {:.0} us",
            v.len(),
            median(v.clone()),
            v.iter().cloned().fold(0.0, f64::max)
        );
    }
    let mean = all_steps.iter().sum::<f64>() / all_steps.len() as f64;
    println!("whole turn: mean {mean:.0} us per step");
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
