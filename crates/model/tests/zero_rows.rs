//! The unembedding's zero-row skipping on the demo model (assets/demo-model: 2,084 trained rows
//! of 201,088, the rest exactly zero): the model detects its nonzero rows at load, and its
//! logits (prefill, decode and batched decode) are bit-identical to the same model with the
//! skipping turned off (the dense product over every row). The kernel-level cases (±0 rows,
//! all-negative and non-finite activations, f32 tables, dense tables) are unit tests in
//! `src/unembed.rs`.

mod helpers;

use gptoss_model::{LogitsFor, Model};
use helpers::{batch_step, bits, demo_model, prefill_bitwise_equal, DEMO_PROMPT};

#[test]
fn demo_model_zero_rows_give_the_dense_logits_bit_for_bit() {
    let sparse = demo_model();
    assert_eq!(sparse.unembedding_nonzero_rows(), Some(2084));
    let mut dense = demo_model();
    dense.disable_zero_row_skipping();
    assert_eq!(dense.unembedding_nonzero_rows(), None);
    let v = sparse.config().vocab_size;

    // All positions' logits of a harmony-shaped prompt.
    let prompt = DEMO_PROMPT;
    let (_, _, ls) = prefill_bitwise_equal(&sparse, &dense, &prompt);
    // The skipped rows really are the zero logits; the used ones are not all zero.
    assert!(ls[..v].iter().filter(|&&l| l != 0.0).count() <= 2084);
    assert!(ls[..v].iter().any(|&l| l != 0.0));

    // Batched decode steps: 3 sequences at different depths, each step's rows against dense.
    let (mut sc, mut dc): (Vec<_>, Vec<_>) = (0..3)
        .map(|s| {
            let p = &prompt[..4 + 3 * s];
            let (mut a, mut b) = (sparse.new_cache(64), dense.new_cache(64));
            sparse.forward(p, &mut a, LogitsFor::Nothing).unwrap();
            dense.forward(p, &mut b, LogitsFor::Nothing).unwrap();
            (a, b)
        })
        .unzip();
    let (mut sl, mut dl) = (vec![Vec::new(); 3], vec![Vec::new(); 3]);
    for step in 0..3u32 {
        let token = |s: usize| [200005, 1428, 12, 200008, 17][(s + step as usize) % 5];
        batch_step(&sparse, &mut sc, &mut sl, token);
        batch_step(&dense, &mut dc, &mut dl, token);
        for s in 0..3 {
            assert_eq!(bits(&sl[s]), bits(&dl[s]), "step {step}, row {s}");
        }
    }
}

#[test]
fn random_dense_checkpoint_keeps_the_dense_path() {
    let c = gptoss_model::synth::tiny_config();
    let (cfg, st) = gptoss_model::synth::original_bytes(&c, 9);
    let m = Model::from_memory(&cfg, st).unwrap();
    assert_eq!(m.unembedding_nonzero_rows(), None);
}
