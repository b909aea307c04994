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

/// Positions of a [`KvPages`] as runs that are contiguous in memory (see [`KvPages::runs`]).
struct PastRuns<'p, 'a> {
    past: &'p KvPages<'a>,
    pos: usize,
    hi: usize,
    kv_dim: usize,
}

impl<'a> Iterator for PastRuns<'_, 'a> {
    /// (first position, k rows, v rows), rows f32 [run length, kv_dim].
    type Item = (usize, &'a [f32], &'a [f32]);

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.hi {
            return None;
        }
        let p = self.past;
        let slot = match p.ring_len {
            Some(r) => self.pos % r,
            None => self.pos,
        };
        let (page, r0) = (slot / p.page_len, slot % p.page_len);
        let mut n = (p.page_len - r0).min(self.hi - self.pos);
        if let Some(r) = p.ring_len {
            n = n.min(r - slot);
        }
        let rows = r0 * self.kv_dim..(r0 + n) * self.kv_dim;
        let run = (
            self.pos,
            &p.k_pages[page][rows.clone()],
            &p.v_pages[page][rows],
        );
        self.pos += n;
        Some(run)
    }
}

impl<'a> KvPages<'a> {
    /// Positions `lo..hi` (all stored) as runs that are contiguous in memory. Walking runs
    /// instead of looking up every position keeps divisions out of the per-key loops.
    #[inline(always)]
    fn runs<'p>(&'p self, lo: usize, hi: usize, kv_dim: usize) -> PastRuns<'p, 'a> {
        PastRuns {
            past: self,
            pos: lo,
            hi,
            kv_dim,
        }
    }
}

/// Keys `lo..end` of one attention call, stored ones then the call's own new rows, as runs
/// contiguous in memory: (first position, k rows, v rows), rows f32 [run length, kv_dim].
/// An iterator rather than a callback so that the loops over it are compiled inside
/// an ISA level's attention task (a callback ends up as its own function, built for baseline SSE2).
#[inline(always)]
fn key_runs<'s>(
    a: &'s GroupArgs<'s, '_>,
    lo: usize,
    end: usize,
    kv_dim: usize,
) -> impl Iterator<Item = (usize, &'s [f32], &'s [f32])> {
    let past_end = end.min(a.n_past);
    let new_lo = lo.max(a.n_past);
    let new_rows = (new_lo < end).then(|| {
        let (r0, r1) = (new_lo - a.n_past, end - a.n_past);
        (
            new_lo,
            &a.k_new[r0 * kv_dim..r1 * kv_dim],
            &a.v_new[r0 * kv_dim..r1 * kv_dim],
        )
    });
    a.past.runs(lo, past_end.max(lo), kv_dim).chain(new_rows)
}

/// Asserts the shapes both attention versions take; returns (new queries, query heads per KV head).
fn check_sdpa_shapes(
    q: &[f32],
    k_new: &[f32],
    v_new: &[f32],
    sinks: &[f32],
    p: &SdpaParams,
    out: &[f32],
) -> (usize, usize) {
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
    (n, p.n_heads / p.n_kv_heads)
}

/// Attention for `n` new queries at positions `n_past .. n_past + n` (arguments as in
/// [`sdpa_sinks_f32_scalar`]): the fast version. One task per (query, KV head) serves that KV
/// head's whole group of query heads, so each key and value row is read once per group; scores
/// are computed first (8-lane dot products), then one softmax including the sink (exactly the
/// reference's concat-softmax-drop), then the weighted sum of values. The running SIMD level's
/// per-key loops where it has them (same arithmetic either way; no FMA contraction). Keys are
/// visited in increasing position, so one token alone gives the same bits as inside a batch.
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
    let (n, group) = check_sdpa_shapes(q, k_new, v_new, sinks, p, out);
    let args = GroupArgs {
        q,
        k_new,
        v_new,
        past,
        n_past,
        sinks,
        p,
        group,
    };
    let simd = crate::cpu::simd();
    let task = |idx: usize, o: &mut [f32], scores: &mut Vec<f32>| match simd {
        Some(k) => k.attention_group(&args, idx, o, scores),
        None => group_task::<PortableKeyOps>(&args, idx, o, scores),
    };
    let keys = n_past + n;
    // Scores and values: two multiply-adds per (query, head, key, dim).
    if 2 * n * p.n_heads * keys * d < crate::matmul::TASK_MIN_WORK {
        let mut scores = Vec::new();
        out.chunks_exact_mut(group * d)
            .enumerate()
            .for_each(|(idx, o)| task(idx, o, &mut scores));
    } else {
        out.par_chunks_exact_mut(group * d)
            .enumerate()
            .for_each_init(Vec::new, |scores, (idx, o)| task(idx, o, scores));
    }
}

/// One attention call's inputs, shared by its tasks (see [`group_task`]).
pub(crate) struct GroupArgs<'a, 'b> {
    pub(crate) q: &'a [f32],
    pub(crate) k_new: &'a [f32],
    pub(crate) v_new: &'a [f32],
    pub(crate) past: &'a KvPages<'b>,
    pub(crate) n_past: usize,
    pub(crate) sinks: &'a [f32],
    pub(crate) p: &'a SdpaParams,
    pub(crate) group: usize,
}

/// The per-key loops [`group_task`] runs: the portable ones ([`PortableKeyOps`], vectorized
/// where the compiler manages) or an ISA level's (`cpu/`), which must give the same bits.
pub(crate) trait KeyOps {
    /// Scores of four consecutive heads (`q` f32 [4, d]) against one key row (`k` f32 [d]):
    /// the bits of [`dot8_x4`].
    fn dot_x4(q: &[f32], k: &[f32], d: usize) -> [f32; 4];
    /// The bits of [`max8`].
    fn max(init: f32, xs: &[f32]) -> f32;
    /// The bits of [`exp_shifted`].
    fn exp_shifted(xs: &mut [f32], m: f32);
    /// The bits of [`add_weighted_values`].
    fn add_weighted_values(o: &mut [f32], w: &[f32], v: &[f32], stride: usize);
}

/// The portable per-key loops.
pub(crate) struct PortableKeyOps;

impl KeyOps for PortableKeyOps {
    #[inline(always)]
    fn dot_x4(q: &[f32], k: &[f32], d: usize) -> [f32; 4] {
        let heads = [&q[..d], &q[d..2 * d], &q[2 * d..3 * d], &q[3 * d..4 * d]];
        dot8_x4(heads, k)
    }
    #[inline(always)]
    fn max(init: f32, xs: &[f32]) -> f32 {
        max8(init, xs)
    }
    #[inline(always)]
    fn exp_shifted(xs: &mut [f32], m: f32) {
        exp_shifted(xs, m)
    }
    #[inline(always)]
    fn add_weighted_values(o: &mut [f32], w: &[f32], v: &[f32], stride: usize) {
        add_weighted_values(o, w, v, stride)
    }
}

/// Query `idx / n_kv_heads`, KV head `idx % n_kv_heads`: writes that group's heads into `out`
/// (f32 [group, head_dim]).
#[inline(always)]
pub(crate) fn group_task<K: KeyOps>(
    a: &GroupArgs<'_, '_>,
    idx: usize,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    let p = a.p;
    let d = p.head_dim;
    let kv_dim = p.n_kv_heads * d;
    let (i, g) = (idx / p.n_kv_heads, idx % p.n_kv_heads);
    let pos = a.n_past + i;
    let lo = p.window.map_or(0, |w| (pos + 1).saturating_sub(w));
    let n_keys = pos + 1 - lo;
    let h0 = g * a.group;
    // f32 [group, n_keys]
    scores.clear();
    scores.resize(a.group * n_keys, 0.0);
    let q_base = (i * p.n_heads + h0) * d;
    let qs = &a.q[q_base..q_base + a.group * d];
    // Up to four heads per pass over a key: independent accumulator chains instead of one
    // latency-bound chain per dot product; each head's sum is still dot8's, in dot8's order.
    for (first, ks, _) in key_runs(a, lo, pos + 1, kv_dim) {
        let n_run = ks.len() / kv_dim;
        for r in 0..n_run {
            let jj = first + r - lo;
            let kh = &ks[r * kv_dim + g * d..r * kv_dim + (g + 1) * d];
            if r + PREFETCH_KEYS < n_run {
                let ahead = (r + PREFETCH_KEYS) * kv_dim + g * d;
                prefetch_row(&ks[ahead..ahead + d]);
            }
            let mut hh = 0;
            while hh + 4 <= a.group {
                let s4 = K::dot_x4(&qs[hh * d..(hh + 4) * d], kh, d);
                for (t, s) in s4.into_iter().enumerate() {
                    scores[(hh + t) * n_keys + jj] = s * p.sm_scale;
                }
                hh += 4;
            }
            for hh in hh..a.group {
                scores[hh * n_keys + jj] = dot8(&qs[hh * d..(hh + 1) * d], kh) * p.sm_scale;
            }
        }
    }
    // Softmax over [scores, sink] per head; the sink only joins the denominator.
    let mut inv_l = [0f32; 64];
    let mut inv_l_vec;
    let inv: &mut [f32] = if a.group <= 64 {
        &mut inv_l[..a.group]
    } else {
        inv_l_vec = vec![0f32; a.group];
        &mut inv_l_vec
    };
    for (hh, inv_h) in inv.iter_mut().enumerate() {
        let sink = a.sinks[h0 + hh];
        let srow = &mut scores[hh * n_keys..(hh + 1) * n_keys];
        let m = K::max(sink, srow);
        K::exp_shifted(srow, m);
        *inv_h = 1.0 / (exp_f32(sink - m) + sum8(srow));
    }
    out.fill(0.0);
    // Values in blocks of keys: each head's output row stays in registers over a block (one
    // load and store per head per block, not per key) while the block's value rows stay in
    // L1 for the group's other heads. Every output element still adds its keys' terms one by
    // one in increasing position, so the bits do not depend on the blocking.
    for (first, _, vs) in key_runs(a, lo, pos + 1, kv_dim) {
        let n_run = vs.len() / kv_dim;
        let mut r0 = 0;
        while r0 < n_run {
            let r1 = (r0 + VALUE_BLOCK).min(n_run);
            for r in r1..(r1 + VALUE_BLOCK).min(n_run) {
                prefetch_row(&vs[r * kv_dim + g * d..r * kv_dim + (g + 1) * d]);
            }
            let (j0, j1) = (first + r0 - lo, first + r1 - lo);
            let block = &vs[r0 * kv_dim + g * d..];
            for (hh, o) in out.chunks_exact_mut(d).enumerate() {
                let w = &scores[hh * n_keys + j0..hh * n_keys + j1];
                K::add_weighted_values(o, w, block, kv_dim);
            }
            r0 = r1;
        }
    }
    for (hh, &il) in inv.iter().enumerate() {
        for o in out[hh * d..(hh + 1) * d].iter_mut() {
            *o *= il;
        }
    }
}

/// Keys per block of the values pass: a block's value rows of one KV head (32 × 256 bytes at
/// gpt-oss's head_dim 64) stay in L1 while every head of the group reads them.
const VALUE_BLOCK: usize = 32;

/// `o[l] += w[j] · v[j · stride + l]` for j = 0, 1, … in order (`o` is one head's output row,
/// `v` the block's value rows of its KV head at `stride` floats apart).
#[inline(always)]
pub(crate) fn add_weighted_values(o: &mut [f32], w: &[f32], v: &[f32], stride: usize) {
    let d = o.len();
    for (j, &wj) in w.iter().enumerate() {
        for (a, &x) in o.iter_mut().zip(&v[j * stride..j * stride + d]) {
            *a += wj * x;
        }
    }
}

/// The largest of `init` and `xs`, NaNs skipped: 8 lanes each folding every 8th element with
/// `x > m ? x : m`, then [`max8_finish`]. The max of numbers does not depend on the order
/// (only ±0 may differ, and exp(x - (+0)) = exp(x - (-0))), but the lanes keep the AVX2 twin
/// to the same steps.
#[inline(always)]
pub(crate) fn max8(init: f32, xs: &[f32]) -> f32 {
    let mut lanes = [init; 8];
    let n8 = xs.len() / 8 * 8;
    for c in xs[..n8].chunks_exact(8) {
        for (m, &x) in lanes.iter_mut().zip(c) {
            *m = if x > *m { x } else { *m };
        }
    }
    max8_finish(lanes, &xs[n8..])
}

/// Folds the tail elements and then the lanes of [`max8`] in order.
#[inline(always)]
pub(crate) fn max8_finish(lanes: [f32; 8], tail: &[f32]) -> f32 {
    let m = lanes[1..]
        .iter()
        .fold(lanes[0], |m, &x| if x > m { x } else { m });
    tail.iter().fold(m, |m, &x| if x > m { x } else { m })
}

/// `s = exp_f32(s - m)` for every element.
#[inline(always)]
pub(crate) fn exp_shifted(xs: &mut [f32], m: f32) {
    for s in xs.iter_mut() {
        *s = exp_f32(*s - m);
    }
}

/// Sum in 8 interleaved lanes (lane l adds elements 8c + l in order, the tail into lanes
/// 0.., then ((0+1)+(2+3))+((4+5)+(6+7))): a fixed order that vectorizes.
#[inline(always)]
fn sum8(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let n8 = xs.len() / 8 * 8;
    for c in xs[..n8].chunks_exact(8) {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    for (a, &x) in acc.iter_mut().zip(&xs[n8..]) {
        *a += x;
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// exp(x) for x <= 0 (softmax arguments after subtracting the max), inline and vectorizable
/// instead of a libm call: x = n·ln 2 + r with n = round(x·log2 e) (ln 2 split in two so n·ln 2
/// is exact), e^r by a degree-7 polynomial on |r| <= ln 2 / 2, times 2^n built in the exponent
/// bits. Within 2 ulp of exp over [-87.3, 0] (tested); exactly 1 at 0; 0 below -87.3 (where
/// exp is under 2^-126, nothing next to the softmax's largest term, which is 1); NaN stays NaN.
/// Positive x is outside its domain.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    if x < EXP_LO {
        return 0.0;
    }
    let t = x * EXP_LOG2_E + EXP_MAGIC;
    let n = t - EXP_MAGIC;
    let r = (x - n * EXP_LN2_HI) - n * EXP_LN2_LO;
    let mut p = EXP_C[0];
    for &k in &EXP_C[1..] {
        p = p * r + k;
    }
    let y = (p * (r * r) + r) + 1.0;
    // t = 1.5·2^23 + n in one binade: its low mantissa bits are n (two's complement).
    let e = t.to_bits().wrapping_sub(EXP_MAGIC.to_bits()) as i32;
    y * f32::from_bits(((e + 127) as u32) << 23)
}

/// Below this, [`exp_f32`] returns 0 (exp(-87.33) ≈ 2^-126).
pub(crate) const EXP_LO: f32 = -87.33;
pub(crate) const EXP_LOG2_E: f32 = std::f32::consts::LOG2_E;
/// 1.5 · 2^23: adding it rounds to an integer (round to nearest even).
pub(crate) const EXP_MAGIC: f32 = 12_582_912.0;
/// ln 2 = EXP_LN2_HI + EXP_LN2_LO, the high part short enough that n · EXP_LN2_HI is exact.
pub(crate) const EXP_LN2_HI: f32 = 0.693_359_4;
pub(crate) const EXP_LN2_LO: f32 = -2.121_944_4e-4;
/// e^r ≈ 1 + r + r² · (c0·r⁵ + c1·r⁴ + … + c5), Horner from c0 (the classic single-precision
/// minimax coefficients, close to 1/7!, 1/6!, …, 1/2!).
pub(crate) const EXP_C: [f32; 6] = [
    1.987_569_1e-4,
    1.398_2e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// How many keys ahead a pass over the cache asks for the next rows: a row of one KV head is
/// a few cache lines at a stride of the whole KV row, too sparse for the hardware prefetcher
/// to run far enough ahead at long depths.
const PREFETCH_KEYS: usize = 16;

/// Hints the cache lines of `row` into L1 (no effect on results).
#[inline(always)]
fn prefetch_row(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in row.chunks(16) {
        // SAFETY: prefetching never faults and reads nothing into the program; the address is
        // inside `row`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// Four of [`dot8`] against the same `b`, interleaved: the same operations in the same order
/// per head, so each result has the same bits as `dot8(a[t], b)`.
#[inline(always)]
pub(crate) fn dot8_x4(a: [&[f32]; 4], b: &[f32]) -> [f32; 4] {
    let mut acc = [[0f32; 8]; 4];
    let n8 = b.len() / 8 * 8;
    for c in (0..n8).step_by(8) {
        let bc = &b[c..c + 8];
        for t in 0..4 {
            let ac = &a[t][c..c + 8];
            for l in 0..8 {
                acc[t][l] += ac[l] * bc[l];
            }
        }
    }
    for t in 0..4 {
        for (l, (x, y)) in a[t][n8..].iter().zip(&b[n8..]).enumerate() {
            acc[t][l] += x * y;
        }
    }
    acc.map(|s| ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])))
}

/// Dot product in 8 interleaved lanes (vectorizes; fixed order).
#[inline(always)]
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let n8 = a.len() / 8 * 8;
    for (ac, bc) in a[..n8].chunks_exact(8).zip(b[..n8].chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += ac[l] * bc[l];
        }
    }
    for (l, (x, y)) in a[n8..].iter().zip(&b[n8..]).enumerate() {
        acc[l] += x * y;
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// Scalar oracle: attention for `n` new queries at positions `n_past .. n_past + n`.
///
/// * `q`: f32 [n, n_heads, head_dim] (already rotated); query head h uses KV head
///   h / (n_heads / n_kv_heads).
/// * `k_new`, `v_new`: f32 [n, n_kv_heads, head_dim], the same positions' keys and values.
/// * `past`: positions `< n_past` (only those inside the window are read).
/// * `sinks`: f32 [n_heads].
/// * `out`: f32 [n, n_heads, head_dim].
#[allow(clippy::too_many_arguments)]
pub fn sdpa_sinks_f32_scalar(
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
    let (n, group) = check_sdpa_shapes(q, k_new, v_new, sinks, p, out);

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
    // Scores and values: two multiply-adds per (query, head, key, dim).
    if 2 * n * p.n_heads * keys * d < crate::matmul::TASK_MIN_WORK {
        out.chunks_exact_mut(d)
            .enumerate()
            .for_each(|(idx, acc)| one(idx, acc));
    } else {
        out.par_chunks_exact_mut(d)
            .enumerate()
            .for_each(|(idx, acc)| one(idx, acc));
    }
}

/// Checks an ISA level's per-key loops against the portable ones, bit for bit, piece by
/// piece: max and exp over score rows of every tail length with NaN, -inf and very negative
/// scores, four heads' dots against a key, the weighted value sums (head_dim 64). Call only
/// once the CPU was checked for `K`'s level.
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn check_key_ops<K: KeyOps>() {
    let mut r = crate::test_rng::Rng(17);
    for len in [0usize, 1, 7, 8, 9, 15, 16, 17, 63, 130] {
        let mut xs: Vec<f32> = (0..len).map(|_| 90.0 * r.f()).collect();
        if len > 5 {
            xs[5] = f32::NAN;
            xs[len - 1] = f32::NEG_INFINITY;
        }
        let init = r.f();
        let m = K::max(init, &xs);
        assert_eq!(m.to_bits(), max8(init, &xs).to_bits());
        let (mut a, mut b) = (xs.clone(), xs);
        K::exp_shifted(&mut a, m);
        exp_shifted(&mut b, m);
        for (x, y) in a.iter().zip(&b) {
            assert!(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()));
        }
    }
    let q: Vec<f32> = (0..4 * 64).map(|_| r.f()).collect();
    let k: Vec<f32> = (0..64).map(|_| r.f()).collect();
    let heads = [&q[..64], &q[64..128], &q[128..192], &q[192..]];
    let want = dot8_x4(heads, &k).map(f32::to_bits);
    assert_eq!(K::dot_x4(&q, &k, 64).map(f32::to_bits), want);
    let stride = 3 * 64;
    let v: Vec<f32> = (0..9 * stride).map(|_| r.f()).collect();
    let w: Vec<f32> = (0..9).map(|_| r.f()).collect();
    let mut a: Vec<f32> = (0..64).map(|_| r.f()).collect();
    let mut b = a.clone();
    K::add_weighted_values(&mut a, &w, &v, stride);
    add_weighted_values(&mut b, &w, &v, stride);
    assert_eq!(a, b);
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_rng::Rng;

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

    /// The four-head dot product gives each head exactly `dot8`'s bits, odd lengths included.
    #[test]
    fn dot8_x4_equals_dot8_bit_for_bit() {
        let mut r = Rng(5);
        for len in [1usize, 7, 8, 13, 64, 67] {
            let heads: Vec<Vec<f32>> = (0..4)
                .map(|_| (0..len).map(|_| 3.0 * r.f()).collect())
                .collect();
            let b: Vec<f32> = (0..len).map(|_| r.f()).collect();
            let got = dot8_x4([&heads[0], &heads[1], &heads[2], &heads[3]], &b);
            for (t, h) in heads.iter().enumerate() {
                assert_eq!(
                    got[t].to_bits(),
                    dot8(h, &b).to_bits(),
                    "len {len} head {t}"
                );
            }
        }
    }

    /// The fast kernel against its scalar twin (online softmax, one head at a time), over a
    /// paged past and new rows, odd head dims and group sizes, windows and large inputs that take
    /// the parallel path.
    #[test]
    fn fast_matches_scalar_twin() {
        for &(n_heads, n_kv, d, n_past, n, window) in &[
            (4usize, 2usize, 7usize, 5usize, 3usize, None),
            (6, 3, 16, 0, 9, Some(4)),
            (8, 1, 13, 40, 1, None),
            (64, 8, 64, 300, 2, Some(128)),
            (64, 8, 64, 700, 1, None),
        ] {
            let p = SdpaParams {
                n_heads,
                n_kv_heads: n_kv,
                head_dim: d,
                sm_scale: 1.0 / (d as f32).sqrt(),
                window,
            };
            let kvd = n_kv * d;
            let (q, k, v, s) = inputs(n, &p, 21 + n_past as u64);
            let mut r = Rng(99);
            let page_len = 7;
            let pages = n_past.div_ceil(page_len);
            let kp: Vec<Vec<f32>> = (0..pages)
                .map(|_| (0..page_len * kvd).map(|_| 2.0 * r.f()).collect())
                .collect();
            let vp: Vec<Vec<f32>> = (0..pages)
                .map(|_| (0..page_len * kvd).map(|_| r.f()).collect())
                .collect();
            let past = KvPages {
                k_pages: &kp,
                v_pages: &vp,
                page_len,
                ring_len: None,
            };
            let mut fast = vec![0f32; q.len()];
            let mut slow = vec![0f32; q.len()];
            sdpa_sinks_f32(&q, &k, &v, &past, n_past, &s, &p, &mut fast);
            sdpa_sinks_f32_scalar(&q, &k, &v, &past, n_past, &s, &p, &mut slow);
            for (a, b) in fast.iter().zip(&slow) {
                assert!(
                    (a - b).abs() < 2e-5,
                    "{n_heads}/{n_kv}/{d} past {n_past}: {a} vs {b}"
                );
            }
        }
    }

    /// `exp_f32` against f64 exp: within 2 ulp over its domain, exact at 0, 0 below the
    /// cut-off and for -inf, NaN kept.
    #[test]
    fn exp_f32_within_two_ulp() {
        let mut r = Rng(8);
        let grid = (0..=87_300).map(|i| -(i as f32) * 1e-3);
        let randoms = (0..200_000).map(|_| (r.f() - 1.0) * 43.65);
        let mut worst = 0f64;
        for x in grid.chain(randoms) {
            let got = exp_f32(x) as f64;
            let want = (x as f64).exp();
            // ulp of the f32 nearest to `want`
            let ulp = (want as f32).to_bits();
            let ulp = (f32::from_bits(ulp + 1) - f32::from_bits(ulp)) as f64;
            worst = worst.max((got - want).abs() / ulp);
            assert!(
                (got - want).abs() <= 2.0 * ulp,
                "exp({x}) = {got}, want {want}"
            );
        }
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert_eq!(exp_f32(-90.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        println!("exp_f32: worst {worst:.2} ulp");
    }

    /// Every SIMD level's attention tasks equal the portable loops bit for bit at head_dim 64
    /// and at another head size (odd key counts, windows, a long past).
    #[test]
    fn simd_levels_equal_portable_bitwise() {
        for level in crate::cpu::available_levels() {
            let Some(k) = crate::cpu::simd_at(level) else {
                continue;
            };
            for head_dim in [64usize, 40] {
                for &(n_past, n, window) in
                    &[(0usize, 5usize, None), (37, 3, Some(16)), (300, 1, None)]
                {
                    let p = SdpaParams {
                        n_heads: 16,
                        n_kv_heads: 2,
                        head_dim,
                        sm_scale: 0.125,
                        window,
                    };
                    let (q, kk, v, sinks) = inputs(n_past + n, &p, 3 + n_past as u64);
                    let kvd = p.n_kv_heads * p.head_dim;
                    let (k_past, k_new) = kk.split_at(n_past * kvd);
                    let (v_past, v_new) = v.split_at(n_past * kvd);
                    let kp = vec![k_past.to_vec()];
                    let vp = vec![v_past.to_vec()];
                    let past = KvPages {
                        k_pages: &kp,
                        v_pages: &vp,
                        page_len: n_past.max(1),
                        ring_len: None,
                    };
                    let q = &q[n_past * p.n_heads * head_dim..];
                    let args = GroupArgs {
                        q,
                        k_new,
                        v_new,
                        past: &past,
                        n_past,
                        sinks: &sinks,
                        p: &p,
                        group: p.n_heads / p.n_kv_heads,
                    };
                    let len = args.group * head_dim;
                    for idx in 0..n * p.n_kv_heads {
                        let (mut a, mut b) = (vec![0f32; len], vec![0f32; len]);
                        let mut scores = Vec::new();
                        k.attention_group(&args, idx, &mut a, &mut scores);
                        group_task::<PortableKeyOps>(&args, idx, &mut b, &mut scores);
                        assert_eq!(a, b, "{level} d {head_dim} past {n_past} n {n} task {idx}");
                    }
                }
            }
        }
    }
}
