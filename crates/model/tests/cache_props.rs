//! Property test of the KV cache bookkeeping: random sequences of prefill/decode chunks,
//! snapshots and rollbacks always give the logits of a fresh run over the tokens the cache
//! claims to hold, rollback never keeps more than asked, and snapshots never outlive the length.

use gptoss_model::synth;
use gptoss_model::{KvCache, LogitsFor, Model, MAX_SNAPSHOTS};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Forward(Vec<u32>),
    Mark,
    Rollback(usize),
    /// Continue on a copy made into a second cache that held these other tokens.
    CopyInto(Vec<u32>),
}

fn op(vocab: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(0..vocab, 1..12).prop_map(Op::Forward),
        1 => Just(Op::Mark),
        2 => (0usize..40).prop_map(Op::Rollback),
        1 => proptest::collection::vec(0..vocab, 0..30).prop_map(Op::CopyInto),
    ]
}

fn model() -> Model {
    let (cfg, st) = synth::original_bytes(&synth::tiny_config(), 11);
    Model::from_memory(&cfg, st).unwrap()
}

fn check_invariants(cache: &KvCache, held: &[u32]) {
    assert_eq!(cache.len(), held.len());
    assert!(cache.len() <= cache.max_tokens());
    let snaps = cache.snapshot_lens();
    assert!(snaps.len() <= MAX_SNAPSHOTS);
    assert!(
        snaps.windows(2).all(|w| w[0] < w[1]),
        "snapshots sorted: {snaps:?}"
    );
    assert!(snaps.iter().all(|&s| s <= cache.len()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_ops_match_fresh_runs(ops in proptest::collection::vec(op(97), 1..25)) {
        let m = model();
        let mut cache = m.new_cache(200);
        let mut held: Vec<u32> = vec![];
        for op in ops {
            match op {
                Op::Forward(toks) => {
                    if held.len() + toks.len() > cache.max_tokens() {
                        continue;
                    }
                    let got = m.forward(&toks, &mut cache, LogitsFor::All).unwrap();
                    held.extend(&toks);
                    let mut fresh = m.new_cache(held.len());
                    let want = m.forward(&held, &mut fresh, LogitsFor::All).unwrap();
                    let tail = &want[want.len() - got.len()..];
                    let d = got.iter().zip(tail).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                    prop_assert!(d <= 1e-5, "diff {} after holding {}", d, held.len());
                }
                Op::Mark => cache.mark_snapshot(),
                Op::Rollback(n) => {
                    let before = cache.len();
                    let kept = cache.rollback_to(n);
                    prop_assert!(kept <= before);
                    prop_assert!(n >= before || kept <= n);
                    if n >= before {
                        prop_assert_eq!(kept, before);
                    }
                    held.truncate(kept);
                }
                Op::CopyInto(other_tokens) => {
                    let mut other = m.new_cache(200);
                    if !other_tokens.is_empty() {
                        m.forward(&other_tokens, &mut other, LogitsFor::Nothing).unwrap();
                        other.mark_snapshot();
                    }
                    prop_assert!(other.copy_from(&cache));
                    prop_assert_eq!(other.snapshot_lens(), cache.snapshot_lens());
                    cache = other;
                }
            }
            check_invariants(&cache, &held);
        }
    }
}

#[test]
fn copy_refuses_another_shape() {
    let m = model();
    let mut small = m.new_cache(20);
    let big = m.new_cache(200);
    assert!(!small.copy_from(&big));
}

#[test]
fn pages_grow_on_demand_and_rings_stay_bounded() {
    let m = model();
    let c = m.config().clone();
    let mut cache = m.new_cache(2000);
    assert_eq!(cache.allocated_bytes(), 0, "nothing allocated up front");
    let toks: Vec<u32> = (0..600).map(|i| i % 97).collect();
    m.forward(&toks[..10], &mut cache, LogitsFor::Last).unwrap();
    let kv = c.kv_dim() * 4 * 2; // bytes per position for K and V
    let full_layers = (0..c.num_hidden_layers)
        .filter(|&i| !c.is_sliding(i))
        .count();
    let ring_layers = c.num_hidden_layers - full_layers;
    let ring = c.sliding_window;
    assert_eq!(
        cache.allocated_bytes(),
        (full_layers * gptoss_model::PAGE_LEN + ring_layers * ring) * kv
    );
    for &t in &toks[10..] {
        m.forward(&[t], &mut cache, LogitsFor::Last).unwrap();
    }
    // 600 positions: 3 pages per full layer; rings unchanged.
    assert_eq!(
        cache.allocated_bytes(),
        (full_layers * 3 * gptoss_model::PAGE_LEN + ring_layers * ring) * kv
    );
    cache.clear();
    assert_eq!(cache.allocated_bytes(), 0);
    assert!(cache.is_empty());
}

#[test]
fn model_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model>();
    assert_send_sync::<KvCache>();
}
