//! Forward pass against an independent f64 reference, layouts against each other, and the KV
//! cache: incremental decode (token by token and in chunks) equals one full forward, at lengths
//! past the sliding window; rollback then recompute equals a fresh run.

mod common;

use common::{max_abs_diff, reference_forward};
use gptoss_model::synth::{self, SynthLayout};
use gptoss_model::{Config, ExpertPath, ForwardError, Layout, LogitsFor, Model};

fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    (0..n as u64)
        .map(|i| ((i * 7919 + seed * 104729 + 13) % vocab as u64) as u32)
        .collect()
}

fn tiny() -> (Config, Model) {
    let c = synth::tiny_config();
    let (cfg, st) = synth::original_bytes(&c, 1);
    let m = Model::from_memory(&cfg, st).unwrap();
    (c, m)
}

fn full(m: &Model, toks: &[u32]) -> Vec<f32> {
    let mut cache = m.new_cache(toks.len());
    m.forward(toks, &mut cache, LogitsFor::All).unwrap()
}

#[test]
fn matches_f64_reference_forward() {
    let c = synth::tiny_config();
    for (seed, n) in [(1u64, 5usize), (2, 20)] {
        let (cfg, st) = synth::original_bytes(&c, seed);
        let reference = reference_forward(&c, &st, &tokens(n, c.vocab_size, seed));
        let mut m = Model::from_memory(&cfg, st).unwrap();
        // 1e-3 holds on the exact expert path (the int8 one: golden.rs, golden_logits_int8).
        m.set_expert_path(ExpertPath::Exact);
        let got = full(&m, &tokens(n, c.vocab_size, seed));
        let want: Vec<f32> = reference.iter().map(|&v| v as f32).collect();
        let d = max_abs_diff(&got, &want);
        let scale = want.iter().fold(0f32, |a, &v| a.max(v.abs()));
        assert!(
            d < 1e-3,
            "seed {seed} n {n}: max abs diff {d} (logit scale {scale})"
        );
    }
}

#[test]
fn incremental_decode_equals_full_forward() {
    let (c, m) = tiny();
    let v = c.vocab_size;
    // Lengths below, at and well past the sliding window (8) and past a page boundary is not
    // needed for correctness of the arithmetic but exercised in cache tests.
    for n in [1usize, 7, 8, 9, 17, 40] {
        let toks = tokens(n, v, n as u64);
        let want = full(&m, &toks);
        // Token by token.
        let mut cache = m.new_cache(64);
        let mut got = vec![];
        for &t in &toks {
            got.extend(m.forward(&[t], &mut cache, LogitsFor::All).unwrap());
        }
        assert_eq!(cache.len(), n);
        assert!(
            max_abs_diff(&got, &want) <= 1e-5,
            "n={n} token by token: {}",
            max_abs_diff(&got, &want)
        );
        // In chunks of 3, 5 and 11 (chunks longer than the window too).
        for chunk in [3usize, 5, 11] {
            let mut cache = m.new_cache(64);
            let mut got = vec![];
            for part in toks.chunks(chunk) {
                got.extend(m.forward(part, &mut cache, LogitsFor::All).unwrap());
            }
            assert!(max_abs_diff(&got, &want) <= 1e-5, "n={n} chunk={chunk}");
        }
        // Last-only logits equal the last row.
        let mut cache = m.new_cache(64);
        let last = m.forward(&toks, &mut cache, LogitsFor::Last).unwrap();
        assert_eq!(last.len(), v);
        assert_eq!(&last[..], &want[(n - 1) * v..]);
    }
}

#[test]
fn long_sequence_past_page_boundary() {
    // 300 positions cross the 256-position page of full-attention layers.
    let (c, m) = tiny();
    let toks = tokens(300, c.vocab_size, 9);
    let want = full(&m, &toks);
    let mut cache = m.new_cache(512);
    let mut got = m.forward(&toks[..250], &mut cache, LogitsFor::All).unwrap();
    for &t in &toks[250..] {
        got.extend(m.forward(&[t], &mut cache, LogitsFor::All).unwrap());
    }
    assert!(max_abs_diff(&got, &want) <= 1e-5);
}

#[test]
fn rollback_then_recompute_equals_fresh_run() {
    let (c, m) = tiny();
    let v = c.vocab_size;
    let prefix = tokens(20, v, 3);
    let mut a = prefix.clone();
    a.extend(tokens(6, v, 4));
    let mut b = prefix.clone();
    b.extend(tokens(9, v, 5));
    let want_b = full(&m, &b);

    let mut cache = m.new_cache(64);
    m.forward(&prefix, &mut cache, LogitsFor::Last).unwrap();
    cache.mark_snapshot();
    m.forward(&a[20..], &mut cache, LogitsFor::Last).unwrap();
    let kept = cache.rollback_to(20);
    assert_eq!(kept, 20, "snapshot at 20 allows an exact rollback");
    let got = m.forward(&b[kept..], &mut cache, LogitsFor::All).unwrap();
    assert!(max_abs_diff(&got, &want_b[kept * v..]) <= 1e-5);

    // Without a snapshot, a wrapped ring cannot roll back: everything is dropped.
    let mut cache = m.new_cache(64);
    m.forward(&a, &mut cache, LogitsFor::Last).unwrap();
    assert_eq!(cache.rollback_to(20), 0);
    assert_eq!(cache.len(), 0);
    let got = m.forward(&b, &mut cache, LogitsFor::All).unwrap();
    assert!(max_abs_diff(&got, &want_b) <= 1e-5);

    // A short sequence never wraps the ring (8): rollback is exact without snapshots.
    let mut cache = m.new_cache(64);
    m.forward(&b[..7], &mut cache, LogitsFor::Last).unwrap();
    assert_eq!(cache.rollback_to(3), 3);
    let got = m.forward(&b[3..12], &mut cache, LogitsFor::All).unwrap();
    assert!(max_abs_diff(&got, &want_b[3 * v..12 * v]) <= 1e-5);
}

#[test]
fn rollback_merges_snapshot_with_current_ring() {
    // Snapshot at 18, run to 24 (ring 8 keeps 16..24), roll back to 21: positions 13..16 come
    // from the snapshot, 16..21 from the current ring.
    let (c, m) = tiny();
    let v = c.vocab_size;
    let toks = tokens(30, v, 6);
    let want = full(&m, &toks);
    let mut cache = m.new_cache(64);
    m.forward(&toks[..18], &mut cache, LogitsFor::Last).unwrap();
    cache.mark_snapshot();
    m.forward(&toks[18..24], &mut cache, LogitsFor::Last)
        .unwrap();
    assert_eq!(cache.rollback_to(21), 21);
    let got = m.forward(&toks[21..], &mut cache, LogitsFor::All).unwrap();
    assert!(max_abs_diff(&got, &want[21 * v..]) <= 1e-5);
    // Too far from the snapshot to merge: falls back to the snapshot's length.
    let mut cache = m.new_cache(64);
    m.forward(&toks[..10], &mut cache, LogitsFor::Last).unwrap();
    cache.mark_snapshot();
    m.forward(&toks[10..30], &mut cache, LogitsFor::Last)
        .unwrap();
    assert_eq!(cache.rollback_to(15), 10);
    let got = m.forward(&toks[10..], &mut cache, LogitsFor::All).unwrap();
    assert!(max_abs_diff(&got, &want[10 * v..]) <= 1e-5);
}

#[test]
fn original_and_hf_layouts_are_bit_identical() {
    let c = synth::tiny_config();
    let dir = tempfile::tempdir().unwrap();
    let toks = tokens(13, c.vocab_size, 2);
    let mut results = vec![];
    for (name, layout) in [
        ("original", SynthLayout::Original),
        ("hf", SynthLayout::HuggingFace { shards: 1 }),
        ("hf-sharded", SynthLayout::HuggingFace { shards: 3 }),
        ("hf-bf16", SynthLayout::HuggingFaceBf16),
    ] {
        let p = dir.path().join(name);
        synth::write_checkpoint(&p, &c, 5, layout).unwrap();
        let mut m = Model::load(&p).unwrap();
        // Exact expert path: the dequantized layout (dense experts) always runs exact.
        m.set_expert_path(ExpertPath::Exact);
        let expected_layout = match layout {
            SynthLayout::Original => Layout::Original,
            SynthLayout::HuggingFace { .. } => Layout::HuggingFace,
            SynthLayout::HuggingFaceBf16 => Layout::HuggingFaceDequantized,
        };
        assert_eq!(m.layout(), expected_layout);
        results.push(full(&m, &toks));
    }
    assert_eq!(results[0], results[1], "original vs HF");
    assert_eq!(results[0], results[2], "original vs sharded HF");
    // Dequantized experts are the same numbers, summed in another order.
    assert!(max_abs_diff(&results[0], &results[3]) < 1e-4);
    // from_memory equals load.
    let (cfg, st) = synth::original_bytes(&c, 5);
    let mut m = Model::from_memory(&cfg, st).unwrap();
    m.set_expert_path(ExpertPath::Exact);
    assert_eq!(full(&m, &toks), results[0]);
}

#[test]
fn parent_folder_of_original_loads() {
    let c = synth::tiny_config();
    let dir = tempfile::tempdir().unwrap();
    synth::write_checkpoint(&dir.path().join("original"), &c, 5, SynthLayout::Original).unwrap();
    let m = Model::load(dir.path()).unwrap();
    assert_eq!(m.layout(), Layout::Original);
    // A path to a file inside the folder works too.
    let m = Model::load(&dir.path().join("original").join("model.safetensors")).unwrap();
    assert_eq!(m.config().num_hidden_layers, c.num_hidden_layers);
}

#[test]
fn forward_errors() {
    let (c, m) = tiny();
    let mut cache = m.new_cache(4);
    assert_eq!(
        m.forward(&[], &mut cache, LogitsFor::All),
        Err(ForwardError::EmptyInput)
    );
    assert_eq!(
        m.forward(&[c.vocab_size as u32], &mut cache, LogitsFor::All),
        Err(ForwardError::InvalidToken {
            token: c.vocab_size as u32,
            vocab_size: c.vocab_size
        })
    );
    assert_eq!(
        m.forward(&[1, 2, 3, 4, 5], &mut cache, LogitsFor::All),
        Err(ForwardError::ContextFull { needed: 5, max: 4 })
    );
    assert_eq!(cache.len(), 0, "a failed call leaves the cache unchanged");
    m.forward(&[1, 2, 3, 4], &mut cache, LogitsFor::Last)
        .unwrap();
    assert!(matches!(
        m.forward(&[1], &mut cache, LogitsFor::Last),
        Err(ForwardError::ContextFull { .. })
    ));
    // A cache from another model is refused.
    let mut other = c.clone();
    other.num_hidden_layers = 2;
    let (cfg, st) = synth::original_bytes(&other, 1);
    let m2 = Model::from_memory(&cfg, st).unwrap();
    let mut cache2 = m2.new_cache(8);
    assert!(matches!(
        m.forward(&[1], &mut cache2, LogitsFor::Last),
        Err(ForwardError::CacheMismatch { .. })
    ));
}

#[test]
fn max_tokens_clamped_to_max_context() {
    let (c, m) = tiny();
    assert_eq!(m.new_cache(1 << 30).max_tokens(), c.max_context());
}

/// `LogitsFor::Nothing` fills the cache exactly as `Last` does (same later logits, bit for
/// bit) and returns no logits; past the sliding window too.
#[test]
fn logits_for_nothing_fills_the_same_cache() {
    let (c, m) = tiny();
    let toks = tokens(c.sliding_window + 9, c.vocab_size, 4);
    let (prompt, next) = toks.split_at(toks.len() - 1);
    let mut with_last = m.new_cache(toks.len());
    let mut with_nothing = m.new_cache(toks.len());
    assert_eq!(
        m.forward(prompt, &mut with_last, LogitsFor::Last)
            .unwrap()
            .len(),
        c.vocab_size
    );
    assert!(m
        .forward(prompt, &mut with_nothing, LogitsFor::Nothing)
        .unwrap()
        .is_empty());
    assert_eq!(with_nothing.len(), prompt.len());
    let a = m.forward(next, &mut with_last, LogitsFor::Last).unwrap();
    let b = m.forward(next, &mut with_nothing, LogitsFor::Last).unwrap();
    assert_eq!(a, b);
}
