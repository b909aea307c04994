//! 8-bit weights (`Model::set_weights_q8`, docs/numerics.md "Q8 weights"): the switch itself
//! (on changes the logits, off gives back the bf16 bits), the compact unembedding on the demo
//! model (only its 2,084 nonzero rows quantized) against the dense 8-bit unembedding bit for bit
//! in prefill, decode and batched decode, and a clear error for shapes it cannot quantize. The
//! accuracy against the reference is in golden.rs (`golden_logits_q8_weights`), resident memory
//! in q8_memory.rs.

mod helpers;

use gptoss_model::synth;
use gptoss_model::{KvCache, LogitsFor, Model};
use helpers::{batch_step, bits, demo_model, prefill_bitwise_equal, DEMO_PROMPT};

#[test]
fn demo_model_compact_q8_unembedding_equals_the_dense_one() {
    let mut sparse = demo_model();
    sparse.set_weights_q8(true).unwrap();
    assert_eq!(sparse.unembedding_nonzero_rows(), Some(2084));
    let mut dense = demo_model();
    dense.disable_zero_row_skipping();
    dense.set_weights_q8(true).unwrap();
    assert!(sparse.weights_q8() && dense.weights_q8());

    let prompt = DEMO_PROMPT;
    let (mut cs, mut cd, _) = prefill_bitwise_equal(&sparse, &dense, &prompt);
    // Decode one token on each, then batched steps of 3 sequences at different depths; each
    // batched row also equals a single-sequence decode of the same token.
    let ls = sparse.forward(&[17], &mut cs, LogitsFor::Last).unwrap();
    let ld = dense.forward(&[17], &mut cd, LogitsFor::Last).unwrap();
    assert_eq!(bits(&ls), bits(&ld));
    let fill = |m: &Model, s: usize| {
        let mut c = m.new_cache(64);
        m.forward(&prompt[..4 + 3 * s], &mut c, LogitsFor::Nothing)
            .unwrap();
        c
    };
    let mut sc: Vec<KvCache> = (0..3).map(|s| fill(&sparse, s)).collect();
    let mut dc: Vec<KvCache> = (0..3).map(|s| fill(&dense, s)).collect();
    let mut one: Vec<KvCache> = (0..3).map(|s| fill(&sparse, s)).collect();
    let (mut sl, mut dl) = (vec![Vec::new(); 3], vec![Vec::new(); 3]);
    for step in 0..3usize {
        let token = |s: usize| [200005, 1428, 12, 200008, 17][(s + step) % 5];
        batch_step(&sparse, &mut sc, &mut sl, token);
        batch_step(&dense, &mut dc, &mut dl, token);
        for s in 0..3 {
            assert_eq!(bits(&sl[s]), bits(&dl[s]), "step {step}, row {s}");
            let single = sparse
                .forward(&[token(s)], &mut one[s], LogitsFor::Last)
                .unwrap();
            assert_eq!(bits(&sl[s]), bits(&single), "step {step}, row {s}: batch");
        }
    }
}

#[test]
fn switching_on_changes_the_logits_and_off_restores_them() {
    let c = synth::tiny_config();
    let (cfg, st) = synth::original_bytes(&c, 3);
    let mut m = Model::from_memory(&cfg, st).unwrap();
    assert!(!m.weights_q8(), "off by default");
    let tokens = [1u32, 5, 9, 2, 40];
    let run = |m: &Model| {
        let mut cache = m.new_cache(16);
        m.forward(&tokens, &mut cache, LogitsFor::All).unwrap()
    };
    let bf16 = run(&m);
    m.set_weights_q8(true).unwrap();
    m.set_weights_q8(true).unwrap(); // idempotent: quantized once
    let q8 = run(&m);
    assert_ne!(bits(&bf16), bits(&q8));
    let max = bf16
        .iter()
        .zip(&q8)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let scale = bf16.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        max < 0.1 * scale,
        "q8 moved the logits by {max} (scale {scale})"
    );
    m.set_weights_q8(false).unwrap();
    assert!(!m.weights_q8());
    assert_eq!(bits(&run(&m)), bits(&bf16));
}

#[test]
fn unquantizable_shapes_are_a_clear_error_and_stay_off() {
    // Attention width 3 · 12 = 36: not a multiple of 32.
    let mut c = synth::tiny_config();
    c.num_attention_heads = 3;
    c.num_key_value_heads = 1;
    c.head_dim = 12;
    let (cfg, st) = synth::original_bytes(&c, 4);
    let mut m = Model::from_memory(&cfg, st).unwrap();
    let e = m.set_weights_q8(true).unwrap_err().to_string();
    assert!(e.contains("multiple of 32") && e.contains("36"), "{e}");
    assert!(!m.weights_q8());
    let mut cache = m.new_cache(4);
    assert!(m.forward(&[1, 2], &mut cache, LogitsFor::Last).is_ok());
}
