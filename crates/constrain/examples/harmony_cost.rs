//! Cost per decode step of the guarded harmony constraint (what every
//! request with tools pays): one typical assistant turn with Codex-sized
//! tools is fed token by token (a header, 300 tokens of analysis, a call
//! header naming a declared function, its JSON arguments), timing
//! `mask()` (on a full 201,088-logit row) and `accept()` per step, grouped by
//! what the step was in. Also times building the constraint (grammar
//! compilation of the headers and each tool's schema), paid once per request.
//! Then the same for a freeform tool: Codex's `apply_patch` Lark grammar
//! (translation to one regex and compilation, paid once per distinct
//! grammar) and the steps of a patch written under it.
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
    freeform_apply_patch(&tok)
}

/// Codex CLI's apply_patch freeform grammar (as Codex sends it).
const APPLY_PATCH: &str = r#"start: begin_patch hunk+ end_patch
begin_patch: "*** Begin Patch" LF
end_patch: "*** End Patch" LF?

hunk: add_hunk | delete_hunk | update_hunk
add_hunk: "*** Add File: " filename LF add_line+
delete_hunk: "*** Delete File: " filename LF
update_hunk: "*** Update File: " filename LF change_move? change?

filename: /(.+)/
add_line: "+" /(.*)/ LF -> line

change_move: "*** Move to: " filename LF
change: (change_context | change_line)+ eof_line?
change_context: ("@@" | "@@ " /(.+)/) LF
change_line: ("+" | "-" | " ") /(.*)/ LF
eof_line: "*** End of File" LF

%import common.LF
"#;

/// The freeform `apply_patch` tool: translating its Lark grammar and
/// compiling the arguments grammar (once per distinct grammar: the server
/// caches it), then the cost per step of a call that edits two files.
fn freeform_apply_patch(tok: &Tokenizer) -> Result<(), gptoss_constrain::Error> {
    let mut compile_ms = Vec::new();
    let mut translate_us = Vec::new();
    let mut grammar = None;
    for _ in 0..6 {
        let t = Instant::now();
        let schema = gptoss_constrain::freeform_arguments_schema(
            gptoss_constrain::FreeformSyntax::Lark,
            APPLY_PATCH,
        )
        .map_err(|e| gptoss_constrain::Error::InvalidSchema {
            message: e.to_string(),
        })?;
        translate_us.push(t.elapsed().as_secs_f64() * 1e6);
        grammar = Some(Grammar::compile(&Format::JsonSchema(schema))?);
        compile_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let pattern_len =
        gptoss_constrain::freeform_pattern(gptoss_constrain::FreeformSyntax::Lark, APPLY_PATCH)
            .map(|p| p.len())
            .unwrap_or(0);
    println!(
        "apply_patch grammar: Lark -> regex ({pattern_len} chars) median {:.0} us; + compile median {:.1} ms (first {:.1} ms)",
        median(translate_us.clone()),
        median(compile_ms[1..].to_vec()),
        compile_ms[0]
    );
    let Some(grammar) = grammar else {
        return Ok(());
    };
    let patch = "*** Begin Patch\n*** Update File: src/main.rs\n@@ fn main() {\n-    println!(\"Hello\");\n+    println!(\"Hello, world!\");\n     let args: Vec<String> = std::env::args().collect();\n*** Add File: docs/NOTES.md\n+# Notes\n+\n+Say hello to the world.\n*** End Patch\n";
    let args = serde_json::json!({ "input": patch }).to_string();
    let mut steps = Vec::new();
    for round in 0..5 {
        let mut constraint = HarmonyConstraint::new(StructuredOutput {
            final_answer: None,
            tool_args: vec![("apply_patch".to_string(), grammar.clone())],
            headers: Some(HeaderGrammar::new(&["functions.apply_patch".to_string()])?),
        })?
        .with_token_budget(Some(4096));
        let header = "<|channel|>commentary to=functions.apply_patch <|constrain|>json<|message|>";
        for id in tok.encode_with_special_tokens(header) {
            constraint.accept(id);
        }
        let mut logits = vec![0.0f32; 201_088];
        for id in tok.encode_ordinary(&args) {
            let t = Instant::now();
            constraint.mask(&mut logits);
            let allowed = logits[id as usize] > f32::NEG_INFINITY;
            constraint.accept(id);
            let us = t.elapsed().as_secs_f64() * 1e6;
            logits.fill(0.0);
            assert!(allowed, "the patch was refused");
            if round > 0 {
                steps.push(us);
            }
        }
    }
    let mean = steps.iter().sum::<f64>() / steps.len() as f64;
    println!(
        "apply_patch input (grammar-constrained JSON string): {} steps, mean {mean:.0} us, median {:.0} us, max {:.0} us",
        steps.len(),
        median(steps.clone()),
        steps.iter().cloned().fold(0.0, f64::max)
    );
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
