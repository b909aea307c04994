//! Mask cost per token on the 201k o200k_harmony vocabulary: walks a JSON
//! value token by token (random allowed tokens, then the greedy close) and
//! times `allowed()` + `TokenSet::apply` at each step.
//!
//!     cargo run --release -p gptoss-constrain --example mask_cost

use std::time::Instant;

use gptoss_constrain::{Format, Grammar};
use serde_json::json;

fn main() -> Result<(), gptoss_constrain::Error> {
    let t0 = Instant::now();
    let vocab = gptoss_constrain::Vocab::o200k_harmony()?;
    println!(
        "vocabulary + token trie: {} ids, built in {:.0} ms",
        vocab.n_vocab(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    let schemas = [
        ("json_object", Format::JsonObject),
        (
            "person schema",
            Format::JsonSchema(json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "age": {"type": "integer"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}, "required": ["city"]}
                },
                "required": ["name", "age", "tags", "address"],
                "additionalProperties": false
            })),
        ),
    ];
    let mut logits = vec![0.0f32; 201_088];
    let tok = gptoss_harmony::Tokenizer::o200k_harmony();
    for (name, format) in schemas {
        let t = Instant::now();
        let grammar = Grammar::compile(&format)?;
        let compile_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut times = Vec::new();
        let mut matcher = grammar.matcher();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for step in 0..400 {
            let t = Instant::now();
            let allowed = matcher.allowed()?;
            allowed.apply(&mut logits);
            times.push(t.elapsed().as_secs_f64() * 1e6);
            if matcher.is_complete() && allowed.is_empty() {
                break;
            }
            let next = if step < 150 {
                // Random tokens, but no `}` so that objects keep growing.
                let mut ids = allowed.to_vec();
                let open: Vec<u32> = ids
                    .iter()
                    .copied()
                    .filter(|&id| !tok.token_bytes(id).unwrap_or_default().contains(&b'}'))
                    .collect();
                if !open.is_empty() {
                    ids = open;
                }
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ids[(state % ids.len() as u64) as usize]
            } else {
                match matcher.closing_token(allowed) {
                    Some(id) => id,
                    None => break,
                }
            };
            matcher.accept(next)?;
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        println!(
            "{name}: compile {compile_ms:.1} ms; mask over {} steps: mean {mean:.0} us, median {:.0} us, p90 {:.0} us, max {:.0} us",
            times.len(),
            times[times.len() / 2],
            times[times.len() * 9 / 10],
            times[times.len() - 1],
        );
    }
    Ok(())
}
