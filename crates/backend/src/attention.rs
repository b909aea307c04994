//! Scaled dot-product attention with per-head sinks (reference §2.3): grouped-query heads, causal
//! mask, optional sliding window, and one learned sink logit per query head that joins the softmax
//! denominator only (unscaled, no value vector), so the weights sum to less than 1.
//!
//! Keys come from two places: the positions before this call, stored by a cache in fixed-size
//! pages (or a ring for sliding-window layers; see [`KvPages`]), and the call's own new positions,
//! passed as contiguous rows. Keeping the new rows separate means a long prefill never needs more
//! ring space than the window.
//!
//! Numerics: online softmax in f32 seeded with the sink (running max starts at the sink, the
//! denominator at exp(0) = 1), keys visited in increasing position, so one token decoded alone
//! gives the same bits as the same token inside a batch.

use rayon::prelude::*;

/// Shape and masking parameters of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct SdpaParams {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Multiplies q·k (1/sqrt(head_dim)); not applied to the sinks.
    pub sm_scale: f32,
    /// Keys j with j >= i - window + 1 are visible (None: full causal attention).
    pub window: Option<usize>,
}

/// Keys/values of earlier positions as a cache stores them: pages of `page_len` positions, each
/// page f32 [page_len, n_kv_heads, head_dim]. Position p lives in slot p (paged) or p % ring_len
/// (ring), at page slot / page_len, row slot % page_len. A ring holds at least the last
/// `window - 1` positions before the call.
#[derive(Clone, Copy, Debug)]
pub struct KvPages<'a> {
    pub k_pages: &'a [Vec<f32>],
    pub v_pages: &'a [Vec<f32>],
    pub page_len: usize,
    pub ring_len: Option<usize>,
}

impl<'a> KvPages<'a> {
    /// No earlier positions.
    pub fn empty() -> KvPages<'static> {
        KvPages {
            k_pages: &[],
            v_pages: &[],
            page_len: 1,
            ring_len: None,
        }
    }

    #[inline(always)]
    fn row(&self, pos: usize, kv_dim: usize) -> (&'a [f32], &'a [f32]) {
        let slot = match self.ring_len {
            Some(r) => pos % r,
            None => pos,
        };
        let (page, r) = (slot / self.page_len, slot % self.page_len);
        (
            &self.k_pages[page][r * kv_dim..(r + 1) * kv_dim],
            &self.v_pages[page][r * kv_dim..(r + 1) * kv_dim],
        )
    }
}

/// Attention for `n` new queries at positions `n_past .. n_past + n`.
///
/// * `q`: f32 [n, n_heads, head_dim] (already rotated); query head h uses KV head
///   h / (n_heads / n_kv_heads).
/// * `k_new`, `v_new`: f32 [n, n_kv_heads, head_dim], the same positions' keys and values.
/// * `past`: positions `< n_past` (only those inside the window are read).
/// * `sinks`: f32 [n_heads].
/// * `out`: f32 [n, n_heads, head_dim].
#[allow(clippy::too_many_arguments)]
pub fn sdpa_sinks_f32(
    q: &[f32],
    k_new: &[f32],
    v_new: &[f32],
    past: &KvPages<'_>,
    n_past: usize,
    sinks: &[f32],
    p: &SdpaParams,
    out: &mut [f32],
) {
    let d = p.head_dim;
    let kv_dim = p.n_kv_heads * d;
    assert!(
        p.n_kv_heads > 0 && p.n_heads.is_multiple_of(p.n_kv_heads),
        "sdpa: head counts"
    );
    let n = q.len() / (p.n_heads * d);
    assert_eq!(q.len(), n * p.n_heads * d, "sdpa: q shape");
    assert_eq!(k_new.len(), n * kv_dim, "sdpa: k shape");
    assert_eq!(v_new.len(), n * kv_dim, "sdpa: v shape");
    assert_eq!(out.len(), q.len(), "sdpa: out shape");
    assert_eq!(sinks.len(), p.n_heads, "sdpa: sinks shape");
    let group = p.n_heads / p.n_kv_heads;

    let one = |idx: usize, acc: &mut [f32]| {
        let (i, h) = (idx / p.n_heads, idx % p.n_heads);
        let pos = n_past + i;
        let g = h / group;
        let qh = &q[(i * p.n_heads + h) * d..(i * p.n_heads + h + 1) * d];
        let lo = p.window.map_or(0, |w| (pos + 1).saturating_sub(w));
        // Online softmax seeded with the sink logit.
        let mut m = sinks[h];
        let mut l = 1.0f32;
        acc.fill(0.0);
        let mut visit = |k: &[f32], v: &[f32]| {
            let kh = &k[g * d..(g + 1) * d];
            let vh = &v[g * d..(g + 1) * d];
            let mut s = 0f32;
            for (a, b) in qh.iter().zip(kh) {
                s += a * b;
            }
            let s = s * p.sm_scale;
            if s > m {
                let c = (m - s).exp();
                l *= c;
                for a in acc.iter_mut() {
                    *a *= c;
                }
                m = s;
            }
            let w = (s - m).exp();
            l += w;
            for (a, &vv) in acc.iter_mut().zip(vh) {
                *a += w * vv;
            }
        };
        for j in lo..n_past.min(pos + 1) {
            let (k, v) = past.row(j, kv_dim);
            visit(k, v);
        }
        for j in lo.max(n_past)..=pos {
            let r = j - n_past;
            visit(
                &k_new[r * kv_dim..(r + 1) * kv_dim],
                &v_new[r * kv_dim..(r + 1) * kv_dim],
            );
        }
        let inv = 1.0 / l;
        for a in acc.iter_mut() {
            *a *= inv;
        }
    };

    let keys = n_past + n;
    if n * p.n_heads * keys * d < (1 << 14) {
        out.chunks_exact_mut(d)
            .enumerate()
            .for_each(|(idx, acc)| one(idx, acc));
    } else {
        out.par_chunks_exact_mut(d)
            .enumerate()
            .for_each(|(idx, acc)| one(idx, acc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn f(&mut self) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    /// Two-pass f64 reference over all positions at once, as the torch reference writes it:
    /// concat the sink column, softmax, drop it. Returns (output, weight sums).
    #[allow(clippy::too_many_arguments)]
    fn sdpa_ref(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        sinks: &[f32],
        p: &SdpaParams,
        n: usize,
    ) -> (Vec<f32>, Vec<f64>) {
        let (d, kvd, group) = (
            p.head_dim,
            p.n_kv_heads * p.head_dim,
            p.n_heads / p.n_kv_heads,
        );
        let mut out = vec![0f32; n * p.n_heads * d];
        let mut sums = vec![];
        for i in 0..n {
            for h in 0..p.n_heads {
                let g = h / group;
                let mut logits = vec![];
                for j in 0..n {
                    let visible = j <= i && p.window.is_none_or(|w| i - j < w);
                    let s: f64 = (0..d)
                        .map(|t| {
                            q[(i * p.n_heads + h) * d + t] as f64 * k[j * kvd + g * d + t] as f64
                        })
                        .sum::<f64>()
                        * p.sm_scale as f64;
                    logits.push(if visible { s } else { f64::NEG_INFINITY });
                }
                logits.push(sinks[h] as f64);
                let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = logits.iter().map(|&s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                sums.push(e[..n].iter().sum::<f64>() / z);
                for t in 0..d {
                    let a: f64 = (0..n)
                        .map(|j| e[j] / z * v[j * kvd + g * d + t] as f64)
                        .sum();
                    out[(i * p.n_heads + h) * d + t] = a as f32;
                }
            }
        }
        (out, sums)
    }

    fn params(window: Option<usize>) -> SdpaParams {
        SdpaParams {
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 8,
            sm_scale: 1.0 / 8f32.sqrt(),
            window,
        }
    }

    fn inputs(n: usize, p: &SdpaParams, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut r = Rng(seed);
        let q = (0..n * p.n_heads * p.head_dim)
            .map(|_| 2.0 * r.f())
            .collect();
        let k = (0..n * p.n_kv_heads * p.head_dim)
            .map(|_| 2.0 * r.f())
            .collect();
        let v = (0..n * p.n_kv_heads * p.head_dim).map(|_| r.f()).collect();
        let s = (0..p.n_heads).map(|_| r.f()).collect();
        (q, k, v, s)
    }

    #[test]
    fn matches_reference_full_and_sliding() {
        for window in [None, Some(1), Some(3), Some(100)] {
            let p = params(window);
            let n = 11;
            let (q, k, v, s) = inputs(n, &p, 5);
            let mut out = vec![0f32; q.len()];
            sdpa_sinks_f32(&q, &k, &v, &KvPages::empty(), 0, &s, &p, &mut out);
            let (want, _) = sdpa_ref(&q, &k, &v, &s, &p, n);
            for (a, b) in out.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "window {window:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn sink_weights_sum_below_one() {
        let p = params(None);
        let (q, k, v, s) = inputs(6, &p, 9);
        let (_, sums) = sdpa_ref(&q, &k, &v, &s, &p, 6);
        assert!(sums.iter().all(|&x| x < 1.0 && x > 0.0));
        // With v = 1 everywhere the output equals the weight sum: the sink takes the rest.
        let ones = vec![1f32; v.len()];
        let mut out = vec![0f32; q.len()];
        sdpa_sinks_f32(&q, &k, &ones, &KvPages::empty(), 0, &s, &p, &mut out);
        for (idx, chunk) in out.chunks(p.head_dim).enumerate() {
            assert!((chunk[0] as f64 - sums[idx]).abs() < 1e-6);
            assert!(chunk[0] < 1.0);
        }
        // A huge negative sink gives an ordinary softmax (weights sum to 1).
        let neg = vec![-1e30f32; p.n_heads];
        sdpa_sinks_f32(&q, &k, &ones, &KvPages::empty(), 0, &neg, &p, &mut out);
        assert!(out.iter().all(|&x| (x - 1.0).abs() < 1e-6));
    }

    #[test]
    fn paged_and_ring_past_equal_one_pass() {
        for (window, ring) in [(None, None), (Some(4), Some(4)), (Some(4), Some(6))] {
            let p = params(window);
            let n = 13;
            let kvd = p.n_kv_heads * p.head_dim;
            let (q, k, v, s) = inputs(n, &p, 11);
            let mut full = vec![0f32; q.len()];
            sdpa_sinks_f32(&q, &k, &v, &KvPages::empty(), 0, &s, &p, &mut full);
            // Feed positions one at a time, storing earlier ones in pages of 3 (or a ring).
            let page_len = ring.unwrap_or(3);
            let mut kp: Vec<Vec<f32>> = vec![];
            let mut vp: Vec<Vec<f32>> = vec![];
            let qd = p.n_heads * p.head_dim;
            for i in 0..n {
                let past = KvPages {
                    k_pages: &kp,
                    v_pages: &vp,
                    page_len,
                    ring_len: ring,
                };
                let mut o = vec![0f32; qd];
                sdpa_sinks_f32(
                    &q[i * qd..(i + 1) * qd],
                    &k[i * kvd..(i + 1) * kvd],
                    &v[i * kvd..(i + 1) * kvd],
                    &past,
                    i,
                    &s,
                    &p,
                    &mut o,
                );
                assert_eq!(&o[..], &full[i * qd..(i + 1) * qd], "pos {i}");
                let slot = ring.map_or(i, |r| i % r);
                let page = slot / page_len;
                while kp.len() <= page {
                    kp.push(vec![0.0; page_len * kvd]);
                    vp.push(vec![0.0; page_len * kvd]);
                }
                let r = slot % page_len;
                kp[page][r * kvd..(r + 1) * kvd].copy_from_slice(&k[i * kvd..(i + 1) * kvd]);
                vp[page][r * kvd..(r + 1) * kvd].copy_from_slice(&v[i * kvd..(i + 1) * kvd]);
            }
        }
    }
}
