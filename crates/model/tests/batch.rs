//! `Model::forward_batch` (one decode step for several sequences) against the single-sequence
//! `Model::forward`: for every row, the same logits bit for bit and the same cache afterwards,
//! with rows at different depths (below, at and past the sliding window), batch sizes 1, 3 and 8,
//! over several steps, rows joining and leaving; and bad rows failing alone.

use gptoss_model::synth;
use gptoss_model::{DecodeRow, ForwardError, KvCache, LogitsFor, Model};

fn tiny() -> Model {
    let c = synth::tiny_config();
    let (cfg, st) = synth::original_bytes(&c, 3);
    Model::from_memory(&cfg, st).unwrap()
}

fn token(seq: usize, pos: usize, vocab: usize) -> u32 {
    ((seq * 7919 + pos * 104_729 + 13) % vocab) as u32
}

/// A cache holding the first `depth` tokens of sequence `seq`.
fn prefilled(m: &Model, seq: usize, depth: usize, max_tokens: usize) -> KvCache {
    let mut cache = m.new_cache(max_tokens);
    if depth > 0 {
        let v = m.config().vocab_size;
        let toks: Vec<u32> = (0..depth).map(|p| token(seq, p, v)).collect();
        m.forward(&toks, &mut cache, LogitsFor::Last).unwrap();
    }
    cache
}

/// Runs `steps` batched decode steps over sequences starting at `depths` and the same steps one
/// sequence at a time with `forward`; asserts every row's logits are identical.
fn check_against_single(m: &Model, depths: &[usize], steps: usize) {
    let v = m.config().vocab_size;
    let max = depths.iter().max().unwrap() + steps + 1;
    let mut batch: Vec<KvCache> = depths
        .iter()
        .enumerate()
        .map(|(s, &d)| prefilled(m, s, d, max))
        .collect();
    let mut single: Vec<KvCache> = depths
        .iter()
        .enumerate()
        .map(|(s, &d)| prefilled(m, s, d, max))
        .collect();
    let mut logits = vec![Vec::new(); depths.len()];
    for step in 0..steps {
        let mut rows: Vec<DecodeRow<'_>> = batch
            .iter_mut()
            .zip(logits.iter_mut())
            .enumerate()
            .map(|(s, (cache, logits))| DecodeRow {
                token: token(s, depths[s] + step, v),
                cache,
                logits,
            })
            .collect();
        let results = m.forward_batch(&mut rows);
        assert_eq!(results.len(), depths.len());
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        for (s, cache) in single.iter_mut().enumerate() {
            let want = m
                .forward(&[token(s, depths[s] + step, v)], cache, LogitsFor::Last)
                .unwrap();
            assert_eq!(logits[s].len(), v);
            assert!(
                logits[s] == want,
                "depths {depths:?} step {step} row {s}: batched logits differ from forward"
            );
            assert_eq!(batch[s].len(), depths[s] + step + 1);
        }
    }
}

#[test]
fn batch_equals_single_forward_at_mixed_depths() {
    let m = tiny(); // sliding window 8
    check_against_single(&m, &[5], 4);
    check_against_single(&m, &[0, 8, 20], 6);
    check_against_single(&m, &[0, 1, 7, 8, 9, 15, 16, 33], 5);
    // All rows at the same depth (the identical-position case).
    check_against_single(&m, &[4, 4, 4], 3);
}

#[test]
fn rows_join_and_leave_between_steps() {
    let m = tiny();
    let v = m.config().vocab_size;
    let mut a = prefilled(&m, 0, 3, 64);
    let mut b = prefilled(&m, 1, 12, 64);
    let mut a_ref = prefilled(&m, 0, 3, 64);
    let mut b_ref = prefilled(&m, 1, 12, 64);
    let (mut la, mut lb) = (Vec::new(), Vec::new());
    // Step 1: only a. Step 2: a and b. Step 3: only b.
    let plan: [&[usize]; 3] = [&[0], &[0, 1], &[1]];
    for (step, members) in plan.iter().enumerate() {
        let mut rows = vec![];
        let mut a_slot = Some((&mut a, &mut la));
        let mut b_slot = Some((&mut b, &mut lb));
        for &s in members.iter() {
            let (cache, logits) = if s == 0 {
                a_slot.take().unwrap()
            } else {
                b_slot.take().unwrap()
            };
            let tok = token(s, cache.len(), v);
            rows.push(DecodeRow {
                token: tok,
                cache,
                logits,
            });
        }
        let results = m.forward_batch(&mut rows);
        assert!(results.iter().all(Result::is_ok), "step {step}");
        drop(rows);
        for &s in members.iter() {
            let (r, got) = if s == 0 {
                (&mut a_ref, &la)
            } else {
                (&mut b_ref, &lb)
            };
            let tok = token(s, r.len(), v);
            let want = m.forward(&[tok], r, LogitsFor::Last).unwrap();
            assert!(*got == want, "step {step} seq {s}");
        }
    }
    assert_eq!((a.len(), b.len()), (5, 14));
}

#[test]
fn bad_rows_fail_alone() {
    let m = tiny();
    let v = m.config().vocab_size;
    let mut good = prefilled(&m, 0, 6, 32);
    let mut good_ref = prefilled(&m, 0, 6, 32);
    let mut full = prefilled(&m, 1, 4, 4);
    let mut fresh = m.new_cache(8);
    let other_model = {
        let mut c = synth::tiny_config();
        c.num_hidden_layers = 2;
        let (cfg, st) = synth::original_bytes(&c, 1);
        Model::from_memory(&cfg, st).unwrap()
    };
    let mut foreign = other_model.new_cache(8);
    let mut logits = vec![vec![]; 4];
    let sentinel = vec![42.0f32; 3];
    logits[1] = sentinel.clone();
    logits[2] = sentinel.clone();
    logits[3] = sentinel.clone();
    let [l0, l1, l2, l3] = &mut logits[..] else {
        unreachable!()
    };
    let mut rows = vec![
        DecodeRow {
            token: token(0, 6, v),
            cache: &mut good,
            logits: l0,
        },
        DecodeRow {
            token: 1,
            cache: &mut full,
            logits: l1,
        },
        DecodeRow {
            token: v as u32,
            cache: &mut fresh,
            logits: l2,
        },
        DecodeRow {
            token: 1,
            cache: &mut foreign,
            logits: l3,
        },
    ];
    let results = m.forward_batch(&mut rows);
    drop(rows);
    assert_eq!(results[0], Ok(()));
    assert_eq!(
        results[1],
        Err(ForwardError::ContextFull { needed: 5, max: 4 })
    );
    assert_eq!(
        results[2],
        Err(ForwardError::InvalidToken {
            token: v as u32,
            vocab_size: v
        })
    );
    assert!(matches!(
        results[3],
        Err(ForwardError::CacheMismatch { .. })
    ));
    // Failed rows are untouched; the good row equals a single forward.
    assert_eq!((full.len(), fresh.len(), foreign.len()), (4, 0, 0));
    assert!(logits[1..].iter().all(|l| *l == sentinel));
    let want = m
        .forward(&[token(0, 6, v)], &mut good_ref, LogitsFor::Last)
        .unwrap();
    assert!(logits[0] == want);
    // An empty batch is fine.
    assert!(m.forward_batch(&mut []).is_empty());
}

#[test]
fn batch_rows_keep_rollback_and_snapshots_working() {
    // After batched steps, rolling a cache back and recomputing equals a fresh run.
    let m = tiny();
    let v = m.config().vocab_size;
    let mut caches: Vec<KvCache> = (0..3).map(|s| prefilled(&m, s, 5, 64)).collect();
    for c in caches.iter_mut() {
        c.mark_snapshot();
    }
    let mut logits = vec![Vec::new(); 3];
    for _ in 0..4 {
        let mut rows: Vec<DecodeRow<'_>> = caches
            .iter_mut()
            .zip(logits.iter_mut())
            .enumerate()
            .map(|(s, (cache, logits))| DecodeRow {
                token: token(s, cache.len(), v),
                cache,
                logits,
            })
            .collect();
        assert!(m.forward_batch(&mut rows).iter().all(Result::is_ok));
    }
    for (s, cache) in caches.iter_mut().enumerate() {
        assert_eq!(cache.len(), 9);
        assert_eq!(cache.rollback_to(7), 7);
        let got = m
            .forward(&[token(s, 7, v)], cache, LogitsFor::Last)
            .unwrap();
        let mut fresh = prefilled(&m, s, 7, 64);
        let want = m
            .forward(&[token(s, 7, v)], &mut fresh, LogitsFor::Last)
            .unwrap();
        assert!(got == want, "seq {s}");
    }
}

#[test]
fn forward_into_reuses_the_buffer() {
    let m = tiny();
    let v = m.config().vocab_size;
    let mut a = m.new_cache(16);
    let mut b = m.new_cache(16);
    let mut buf = Vec::with_capacity(4 * v);
    let cap = buf.capacity();
    m.forward_into(&[1, 2, 3], &mut a, LogitsFor::All, &mut buf)
        .unwrap();
    assert_eq!(buf, m.forward(&[1, 2, 3], &mut b, LogitsFor::All).unwrap());
    m.forward_into(&[4], &mut a, LogitsFor::Last, &mut buf)
        .unwrap();
    assert_eq!(buf.len(), v);
    assert_eq!(buf.capacity(), cap);
    assert_eq!(buf, m.forward(&[4], &mut b, LogitsFor::Last).unwrap());
    // On error the buffer is unchanged.
    let before = buf.clone();
    assert!(m
        .forward_into(&[v as u32], &mut a, LogitsFor::Last, &mut buf)
        .is_err());
    assert_eq!(buf, before);
}

#[test]
fn batches_run_in_parallel_threads() {
    // Several batches at once from rayon tasks (a worker can re-enter while it waits inside a
    // kernel): every row still equals its single-sequence forward.
    use rayon::prelude::*;
    let m = tiny();
    let v = m.config().vocab_size;
    let groups: Vec<Vec<usize>> = (0..6).map(|g| vec![g, g + 9, 2 * g + 1]).collect();
    let got: Vec<Vec<Vec<f32>>> = groups
        .par_iter()
        .enumerate()
        .map(|(g, depths)| {
            let mut caches: Vec<KvCache> = depths
                .iter()
                .enumerate()
                .map(|(r, &d)| prefilled(&m, g * 3 + r, d, 64))
                .collect();
            let mut logits = vec![Vec::new(); depths.len()];
            for _ in 0..3 {
                let mut rows: Vec<DecodeRow<'_>> = caches
                    .iter_mut()
                    .zip(logits.iter_mut())
                    .enumerate()
                    .map(|(r, (cache, logits))| DecodeRow {
                        token: token(g * 3 + r, cache.len(), v),
                        cache,
                        logits,
                    })
                    .collect();
                assert!(m.forward_batch(&mut rows).iter().all(Result::is_ok));
            }
            logits
        })
        .collect();
    for (g, depths) in groups.iter().enumerate() {
        for (r, &d) in depths.iter().enumerate() {
            let seq = g * 3 + r;
            let mut cache = prefilled(&m, seq, d, 64);
            let mut want = vec![];
            for step in 0..3 {
                want = m
                    .forward(&[token(seq, d + step, v)], &mut cache, LogitsFor::Last)
                    .unwrap();
            }
            assert!(got[g][r] == want, "group {g} row {r}");
        }
    }
}
