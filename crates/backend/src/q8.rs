//! The 8-bit integer activation path of the MXFP4 matrix products: activations quantized per
//! 32-element block to int8 with one f32 scale (as llama.cpp's q8_0), multiplied with the FP4
//! codes as small integers, and scaled once per block. Owns the quantized-activation container
//! [`Q8Rows`], the scalar oracle [`matmul_q8_mxfp4w_scalar`] and the dispatching
//! [`matmul_q8_mxfp4w`]; the SIMD kernels live under `cpu/` (`cpu/avx2/q8.rs`, …). The exact f32 path stays in
//! `matmul.rs` (`matmul_f32_mxfp4w`); which one a model uses is the caller's choice.
//!
//! Numerics (identical in the oracle and the SIMD kernels of every level, bit for bit):
//! - Quantization, per 32-block of a row: `d = max|x| / 127`, `q = round_ties_even(x / d)`
//!   computed as `x * (1 / d)` (q in -127..=127; an all-zero block gives d = 0, q = 0; a block
//!   holding NaN or ±inf gives d = NaN so the outputs it touches are NaN, as in f32).
//! - Weights: twice the E2M1 value of each code, an integer in -12..=12, so
//!   `w = w2 · 2^(e - 127) / 2` with `e` the E8M0 scale byte.
//! - Per (output row, token) one f32 accumulator walks the 32-blocks in order: for block b,
//!   `isum` is the exact integer sum `Σ w2·q` over its 32 elements, then
//!   `acc = fma(isum as f32, d(b) · hs(b), acc)` with `hs = 2^(e - 128)`; the bias is added
//!   last. Integer sums are exact in any order, so a kernel may split a block's products over
//!   lanes, instructions or passes as it likes; only the per-block float step is ordered. The
//!   order does not depend on how many tokens share the call, so one token alone gives the same
//!   bits as inside a batch. (One float step per 32 products, not per lane: with `vpdpbusd` the
//!   float work, not the integer dots, bounded the earlier 8-lane contract.)
//!
//! Accuracy: the only error beyond f32 rounding is the activation rounding, at most half a
//! quantization step (`max|x| / 254`) per element; relative to the block's largest element that
//! is ≤ 0.4 %, and it averages out over the dot product (see docs/numerics.md for the model-level
//! effect on the golden fixtures).

use rayon::prelude::*;

use crate::dtype::{e8m0_to_f32, MXFP4_BLOCK};

/// Twice the FP4 E2M1 values, indexed by code: exact small integers.
pub(crate) const FP4_X2_I8: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// Added to the doubled FP4 weights (-12..=12) so the kernels can use them as the unsigned
/// operand of `maddubs` (0..=24); the `W_OFFSET · Σ q` this adds is subtracted per lane.
pub(crate) const W_OFFSET: i32 = 12;

/// `2·value + W_OFFSET` of each FP4 code, as unsigned bytes: the weights as the int8 kernels
/// multiply them (unsigned operand of `maddubs` / `vpdpbusd`).
/// (The NEON kernels multiply signed bytes and need neither this nor `Q8Rows::cb`.)
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) static FP4_X2_U8: [u8; 16] = offset_table();

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const fn offset_table() -> [u8; 16] {
    let mut t = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        t[i] = (FP4_X2_I8[i] as i32 + W_OFFSET) as u8;
        i += 1;
    }
    t
}

/// Bytes of quantized activations per pair of 32-blocks (see [`Q8Rows`]).
pub(crate) const PAIR_BYTES: usize = 64;
/// Scale floats per pair of 32-blocks (each block's scale repeated 4 times, one per lane).
pub(crate) const PAIR_SCALES: usize = 8;

/// Rows of activations quantized to int8 per 32-element block, laid out for the kernels.
///
/// Each row of `d_in` (a multiple of 32) elements is stored as `d_in / 64` rounded up pairs of
/// blocks. Pair p (blocks 2p and 2p+1) is 64 bytes: the 16 even-indexed elements of block 2p,
/// the 16 even ones of block 2p+1, then the 16 odd ones of block 2p, then those of block 2p+1
/// (the order in which the packed FP4 nibbles of two consecutive blocks decode); its scales are
/// 8 floats `[d(2p) ×4, d(2p+1) ×4]`. A missing last block (odd `d_in / 32`) is zeros.
///
/// The buffers grow on demand and are reused: quantizing or gathering into a `Q8Rows` that
/// has held as many rows before allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct Q8Rows {
    /// i8 [n_rows, n_pairs, 64]
    pub(crate) q: Vec<i8>,
    /// f32 [n_rows, n_pairs, 8]
    pub(crate) d: Vec<f32>,
    /// i32 [n_rows, 2 · n_pairs]: `-W_OFFSET · Σ q` over each whole block (zero for a missing
    /// last block): the x86 kernels multiply offset, unsigned weights and start each block's
    /// integer sum from this.
    pub(crate) cb: Vec<i32>,
    pub(crate) d_in: usize,
    pub(crate) n_rows: usize,
}

impl Q8Rows {
    /// An empty container (no allocation until first use).
    pub fn new() -> Q8Rows {
        Q8Rows::default()
    }

    /// Elements per row.
    pub fn d_in(&self) -> usize {
        self.d_in
    }

    /// Number of rows held.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    pub(crate) fn n_pairs(&self) -> usize {
        pairs(self.d_in)
    }

    /// Replaces the contents with `x` (f32 [n, d_in]) quantized. Panics unless `d_in` is a
    /// positive multiple of 32 and `x.len()` a multiple of `d_in` (kernel shapes, not user input).
    pub fn quantize(&mut self, x: &[f32], d_in: usize) {
        self.reset(d_in);
        assert_eq!(x.len() % d_in, 0, "q8: x is not [n, {d_in}]");
        let n = x.len() / d_in;
        let (rq, rd) = (self.row_q(), self.row_d());
        self.q.resize(n * rq, 0);
        self.d.resize(n * rd, 0.0);
        let rb = self.row_blocks();
        self.cb.resize(n * rb, 0);
        self.n_rows = n;
        let k = crate::cpu::simd();
        for (((xr, qr), dr), br) in x
            .chunks_exact(d_in)
            .zip(self.q.chunks_exact_mut(rq))
            .zip(self.d.chunks_exact_mut(rd))
            .zip(self.cb.chunks_exact_mut(rb))
        {
            match k {
                Some(k) => k.quantize_q8_row(xr, qr, dr, br),
                None => quantize_row(xr, qr, dr, br),
            }
        }
    }

    /// Empties the container and sets the row length for [`Q8Rows::push_row_of`].
    pub fn reset(&mut self, d_in: usize) {
        assert!(
            d_in > 0 && d_in.is_multiple_of(MXFP4_BLOCK),
            "q8: d_in {d_in} is not a positive multiple of 32"
        );
        self.d_in = d_in;
        self.n_rows = 0;
        self.q.clear();
        self.d.clear();
        self.cb.clear();
    }

    /// Appends a copy of `src`'s row `row` (same `d_in`): gathers the rows routed to one
    /// expert from the rows quantized once for all experts.
    pub fn push_row_of(&mut self, src: &Q8Rows, row: usize) {
        assert_eq!(src.d_in, self.d_in, "q8: row length differs");
        assert!(row < src.n_rows, "q8: row {row} out of {}", src.n_rows);
        let (rq, rd) = (self.row_q(), self.row_d());
        self.q.extend_from_slice(&src.q[row * rq..(row + 1) * rq]);
        self.d.extend_from_slice(&src.d[row * rd..(row + 1) * rd]);
        let rb = self.row_blocks();
        self.cb.extend_from_slice(&src.cb[row * rb..(row + 1) * rb]);
        self.n_rows += 1;
    }

    /// Row `row` back in f32 (`out` [d_in]): the values the int8 path multiplies with.
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        assert!(
            row < self.n_rows && out.len() == self.d_in,
            "q8: dequantize shapes"
        );
        let (rq, rd) = (self.row_q(), self.row_d());
        let (q, d) = (&self.q[row * rq..], &self.d[row * rd..]);
        for (i, o) in out.iter_mut().enumerate() {
            let (k, scale) = q_index(i);
            *o = q[k] as f32 * d[(i / MXFP4_BLOCK / 2) * PAIR_SCALES + scale];
        }
    }

    pub(crate) fn row_q(&self) -> usize {
        self.n_pairs() * PAIR_BYTES
    }

    pub(crate) fn row_d(&self) -> usize {
        self.n_pairs() * PAIR_SCALES
    }

    /// Entries of `cb` per row (blocks, rounded up to pairs).
    pub(crate) fn row_blocks(&self) -> usize {
        self.n_pairs() * 2
    }
}

fn pairs(d_in: usize) -> usize {
    (d_in / MXFP4_BLOCK).div_ceil(2)
}

/// Where element `i` of a row sits in the quantized row: (byte index, scale slot within its
/// pair's 8 scales).
#[inline(always)]
pub(crate) fn q_index(i: usize) -> (usize, usize) {
    let (blk, e) = (i / MXFP4_BLOCK, i % MXFP4_BLOCK);
    let (pair, half) = (blk / 2, blk % 2);
    let k = pair * PAIR_BYTES + (e % 2) * 32 + half * 16 + e / 2;
    (k, half * 4)
}

/// Quantizes one row (`x` [d_in]) into `q` (the row's pairs), `d` (its scales) and `cb` (its
/// per-block offset corrections, negated).
pub(crate) fn quantize_row(x: &[f32], q: &mut [i8], d: &mut [f32], cb: &mut [i32]) {
    q.fill(0);
    d.fill(0.0);
    cb.fill(0);
    for (blk, xb) in x.chunks_exact(MXFP4_BLOCK).enumerate() {
        let mut amax = 0f32;
        let mut finite = true;
        for &v in xb {
            finite &= v.is_finite();
            amax = amax.max(v.abs());
        }
        let scale = if finite { amax / 127.0 } else { f32::NAN };
        let inv = if scale != 0.0 && finite {
            1.0 / scale
        } else {
            0.0
        };
        let (pair, half) = (blk / 2, blk % 2);
        d[pair * PAIR_SCALES + half * 4..pair * PAIR_SCALES + half * 4 + 4].fill(scale);
        let base = pair * PAIR_BYTES + half * 16;
        for (e, &v) in xb.iter().enumerate() {
            // |v · inv| <= 127 up to rounding; the clamp only guards that rounding.
            let qv = round_ties_even_small(v * inv).clamp(-127.0, 127.0) as i8;
            q[base + (e % 2) * 32 + e / 2] = qv;
            cb[blk] -= W_OFFSET * qv as i32;
        }
    }
}

/// `y.round_ties_even()` for |y| < 2^22 (and NaN to NaN), inline on every x86-64: adding and
/// subtracting 1.5 · 2^23 rounds to an integer in the default round-to-nearest-even mode.
/// `f32::round_ties_even` compiles to a libc `rintf` call without SSE4.1 (the build baseline),
/// which was ~5 % of a small model's batched decode step.
#[inline(always)]
fn round_ties_even_small(y: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    (y + MAGIC) - MAGIC
}

/// Half of an E8M0 scale, 2^(s - 128): the weight scale of the doubled FP4 values (exact).
#[inline(always)]
pub(crate) fn half_scale(s: u8) -> f32 {
    e8m0_to_f32(s) * 0.5
}

fn check_q8_dims(
    xq: &Q8Rows,
    blocks: &[u8],
    scales: &[u8],
    bias: Option<&[f32]>,
    y: &[f32],
    d_out: usize,
) {
    let d_in = xq.d_in;
    assert!(d_in > 0 && d_out > 0, "q8 matmul: zero dimension");
    assert_eq!(
        y.len(),
        xq.n_rows * d_out,
        "q8 matmul: y is not [n, {d_out}]"
    );
    assert_eq!(blocks.len(), d_out * d_in / 2, "q8 matmul: blocks shape");
    assert_eq!(
        scales.len(),
        d_out * d_in / MXFP4_BLOCK,
        "q8 matmul: scales shape"
    );
    if let Some(b) = bias {
        assert_eq!(b.len(), d_out, "q8 matmul: bias is not [{d_out}]");
    }
}

/// Scalar oracle of the int8 path: `y[n, d_out] = dequant(xq)[n, d_in] · W[d_out, d_in]ᵀ + b`
/// with W in MXFP4 (`blocks` u8 [d_out, d_in/32, 16], `scales` u8 [d_out, d_in/32], as in
/// [`crate::matmul_f32_mxfp4w_scalar`]), integer block dots and the float order of the module
/// header. Sequential; for tests and as the reference of the SIMD kernels.
pub fn matmul_q8_mxfp4w_scalar(
    xq: &Q8Rows,
    blocks: &[u8],
    scales: &[u8],
    bias: Option<&[f32]>,
    y: &mut [f32],
    d_out: usize,
) {
    check_q8_dims(xq, blocks, scales, bias, y, d_out);
    let d_in = xq.d_in;
    let nb = d_in / MXFP4_BLOCK;
    let (rq, rd) = (xq.row_q(), xq.row_d());
    for (t, yt) in y.chunks_exact_mut(d_out).enumerate() {
        let q = &xq.q[t * rq..(t + 1) * rq];
        let d = &xq.d[t * rd..(t + 1) * rd];
        for (o, yv) in yt.iter_mut().enumerate() {
            let packed = &blocks[o * d_in / 2..(o + 1) * d_in / 2];
            let sc = &scales[o * nb..(o + 1) * nb];
            let mut acc = 0f32;
            for (blk, &e8) in sc.iter().enumerate() {
                let mut isum = 0i32;
                for e in 0..MXFP4_BLOCK {
                    let byte = packed[blk * 16 + e / 2];
                    let code = if e % 2 == 0 { byte & 15 } else { byte >> 4 };
                    let (k, _) = q_index(blk * MXFP4_BLOCK + e);
                    isum += FP4_X2_I8[code as usize] as i32 * q[k] as i32;
                }
                let s = d[(blk / 2) * PAIR_SCALES + (blk % 2) * 4] * half_scale(e8);
                acc = (isum as f32).mul_add(s, acc);
            }
            *yv = acc + bias.map_or(0.0, |b| b[o]);
        }
    }
}

/// The int8 path: `y[n, d_out] = dequant(xq)[n, d_in] · W[d_out, d_in]ᵀ + b` with W in MXFP4
/// (layout as in [`matmul_q8_mxfp4w_scalar`]). The running level's SIMD kernels split over rayon
/// threads (see [`crate::kernel_level`]); at the scalar level the oracle, same bits.
/// One token runs a fused dot per 4 output rows; many tokens decode each weight row once to
/// int8 and run it against every token (the grouped per-expert GEMM of a prefill).
pub fn matmul_q8_mxfp4w(
    xq: &Q8Rows,
    blocks: &[u8],
    scales: &[u8],
    bias: Option<&[f32]>,
    y: &mut [f32],
    d_out: usize,
) {
    check_q8_dims(xq, blocks, scales, bias, y, d_out);
    if let Some(k) = crate::cpu::simd() {
        let n = xq.n_rows;
        if n == 0 {
            return;
        }
        let d_in = xq.d_in;
        let (rb, rs) = (d_in / 2, d_in / MXFP4_BLOCK);
        // Token output pointers on the stack for decode-sized batches: nothing allocated.
        let mut on_stack = [std::ptr::null_mut::<f32>(); 32];
        let mut on_heap = Vec::new();
        let ptrs: &mut [*mut f32] = if n <= on_stack.len() {
            &mut on_stack[..n]
        } else {
            on_heap.resize(n, std::ptr::null_mut());
            &mut on_heap
        };
        for (p, row) in ptrs.iter_mut().zip(y.chunks_exact_mut(d_out)) {
            *p = row.as_mut_ptr();
        }
        let out = crate::cpu::OutRows { tok: ptrs };
        // Multiples of 48 rows keep every level's tiles whole (4-row decode, 2- and 3-row
        // batch, 16-row AVX-512 groups).
        let per_task = crate::matmul::rows_per_task(d_out, n * d_in * d_out, 48);
        let run = |o0: usize, scratch: &mut Vec<f32>| {
            let rows = per_task.min(d_out - o0);
            // SAFETY: each task writes rows o0..o0 + rows of every token's output, disjoint
            // from the other tasks' rows, through pointers into `y`, which this call borrows
            // mutably for its whole duration (and does not touch while the tasks run); the
            // weight slices hold exactly those rows (shapes checked by `check_q8_dims`).
            unsafe {
                k.q8_mxfp4_rows_to(
                    &blocks[o0 * rb..(o0 + rows) * rb],
                    &scales[o0 * rs..(o0 + rows) * rs],
                    xq,
                    rows,
                    bias.map(|b| &b[o0..]),
                    out,
                    o0,
                    scratch,
                )
            }
        };
        if per_task >= d_out {
            run(0, &mut Vec::new());
        } else {
            (0..d_out.div_ceil(per_task))
                .into_par_iter()
                .for_each_init(Vec::new, |scratch, i| run(i * per_task, scratch));
        }
        return;
    }
    matmul_q8_mxfp4w_scalar(xq, blocks, scales, bias, y, d_out)
}

/// Whether [`matmul_q8_mxfp4w`] runs SIMD kernels on this machine (else its scalar oracle,
/// slower than the exact f32 path's fallback: callers should then prefer the exact path).
pub fn int8_kernels() -> bool {
    crate::fast_kernels()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::{decode_mxfp4_row, fp4_e2m1_to_f32};
    use crate::matmul::{matmul_f32_mxfp4w, matmul_f32_mxfp4w_scalar};
    use crate::test_rng::Rng;

    fn random_weights(r: &mut Rng, d_in: usize, d_out: usize) -> (Vec<u8>, Vec<u8>) {
        let blocks: Vec<u8> = (0..d_out * d_in / 2).map(|_| r.byte()).collect();
        let scales: Vec<u8> = (0..d_out * d_in / 32)
            .map(|_| 118 + r.byte() % 10)
            .collect();
        (blocks, scales)
    }

    /// The inline rounding equals `round_ties_even` on the whole range quantization feeds it
    /// (|y| <= 127 plus rounding), on every half-way point and on NaN.
    #[test]
    fn inline_rounding_equals_round_ties_even() {
        let mut r = Rng(5);
        let halves = (-300..=300).map(|i| i as f32 * 0.5);
        let randoms = (0..100_000).map(|_| r.f() * 140.0);
        let edges = [0.0, -0.0, 0.49999997, -0.49999997, 126.5, -126.5, 127.49999];
        for y in halves.chain(randoms).chain(edges) {
            assert_eq!(round_ties_even_small(y), y.round_ties_even(), "{y}");
        }
        assert!(round_ties_even_small(f32::NAN).is_nan());
    }

    #[test]
    fn quantization_roundtrip_within_half_step() {
        let mut r = Rng(21);
        let d_in = 96; // 3 blocks: a pair and a lone last block
        let mut x: Vec<f32> = (0..2 * d_in).map(|_| r.f() * 3.0).collect();
        x[32..64].fill(0.0); // an all-zero block
        let mut q8 = Q8Rows::new();
        q8.quantize(&x, d_in);
        assert_eq!(q8.n_rows(), 2);
        let mut back = vec![0f32; d_in];
        for t in 0..2 {
            q8.dequantize_row(t, &mut back);
            for (blk, (xb, bb)) in x[t * d_in..(t + 1) * d_in]
                .chunks(32)
                .zip(back.chunks(32))
                .enumerate()
            {
                let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
                for (a, b) in xb.iter().zip(bb) {
                    assert!(
                        (a - b).abs() <= amax / 254.0 * 1.0001,
                        "row {t} block {blk}: {a} -> {b}"
                    );
                }
                // The largest element is exact up to the scale's rounding.
                if amax > 0.0 {
                    assert!(bb.iter().any(|v| (v.abs() - amax).abs() <= amax * 1e-6));
                }
            }
        }
        // The all-zero block stays zero, its scale 0.
        q8.dequantize_row(0, &mut back);
        assert!(back[32..64].iter().all(|&v| v == 0.0));
        assert_eq!(q8.d[4..8], [0.0; 4]);
    }

    #[test]
    fn nonfinite_activations_propagate() {
        let d_in = 64;
        let mut x = vec![0.25f32; d_in];
        x[3] = f32::NAN;
        let mut q8 = Q8Rows::new();
        q8.quantize(&x, d_in);
        let blocks = vec![0x22u8; d_in / 2]; // all weights 1.0
        let scales = vec![127u8; d_in / 32];
        for f in [matmul_q8_mxfp4w, matmul_q8_mxfp4w_scalar] {
            let mut y = [0f32; 1];
            f(&q8, &blocks, &scales, None, &mut y, 1);
            assert!(y[0].is_nan(), "{}", y[0]);
        }
    }

    /// The oracle is what it claims: the exact dot of the dequantized activations with the
    /// dequantized weights, up to f32 rounding (f64 reference).
    #[test]
    fn oracle_is_the_dequantized_product() {
        let mut r = Rng(22);
        for &(n, d_in, d_out) in &[(1, 32, 3), (3, 96, 7), (2, 2880, 5)] {
            let x: Vec<f32> = (0..n * d_in).map(|_| r.f()).collect();
            let (blocks, scales) = random_weights(&mut r, d_in, d_out);
            let b: Vec<f32> = (0..d_out).map(|_| r.f()).collect();
            let mut q8 = Q8Rows::new();
            q8.quantize(&x, d_in);
            let mut y = vec![0f32; n * d_out];
            matmul_q8_mxfp4w_scalar(&q8, &blocks, &scales, Some(&b), &mut y, d_out);
            let mut xd = vec![0f32; d_in];
            let mut w = vec![0f32; d_in];
            for t in 0..n {
                q8.dequantize_row(t, &mut xd);
                for o in 0..d_out {
                    decode_mxfp4_row(
                        &blocks[o * d_in / 2..(o + 1) * d_in / 2],
                        &scales[o * d_in / 32..(o + 1) * d_in / 32],
                        &mut w,
                    );
                    let want: f64 = b[o] as f64
                        + xd.iter()
                            .zip(&w)
                            .map(|(&a, &c)| a as f64 * c as f64)
                            .sum::<f64>();
                    let mag: f64 = xd.iter().zip(&w).map(|(&a, &c)| (a * c).abs() as f64).sum();
                    let got = y[t * d_out + o] as f64;
                    assert!((got - want).abs() <= 1e-6 * (1.0 + mag), "{got} vs {want}");
                }
            }
        }
        let _ = fp4_e2m1_to_f32(0);
    }

    /// The SIMD kernels (decode tiles of 4 rows, batch tiles of 4 tokens) equal the oracle
    /// bit for bit on odd sizes: rows not a multiple of 4 or 12, token counts not a multiple
    /// of 4, d_in with an odd number of blocks, extreme scales (0, 1, 254, inf).
    #[test]
    fn fast_equals_oracle_bitwise_odd_sizes() {
        let mut r = Rng(23);
        for &(n, d_in, d_out) in &[
            (1, 32, 5),
            (1, 96, 13),
            (1, 2880, 45),
            (2, 64, 7),
            (3, 160, 30),
            (5, 96, 301),
            (7, 2880, 25),
            (9, 320, 77),
            (13, 32, 11),
        ] {
            let x: Vec<f32> = (0..n * d_in).map(|_| r.f() * 4.0).collect();
            let (blocks, mut scales) = random_weights(&mut r, d_in, d_out);
            for (i, s) in scales.iter_mut().enumerate() {
                if i % 53 == 7 {
                    *s = [0u8, 1, 254, 255][i % 4];
                }
            }
            let b: Vec<f32> = (0..d_out).map(|_| r.f()).collect();
            let mut q8 = Q8Rows::new();
            q8.quantize(&x, d_in);
            for bias in [None, Some(&b[..])] {
                let mut y = vec![0f32; n * d_out];
                let mut ys = vec![0f32; n * d_out];
                matmul_q8_mxfp4w(&q8, &blocks, &scales, bias, &mut y, d_out);
                matmul_q8_mxfp4w_scalar(&q8, &blocks, &scales, bias, &mut ys, d_out);
                for (i, (a, s)) in y.iter().zip(&ys).enumerate() {
                    assert!(
                        a.to_bits() == s.to_bits() || (a.is_nan() && s.is_nan()),
                        "n={n} d_in={d_in} d_out={d_out} at {i}: {a} vs {s}"
                    );
                }
            }
        }
    }

    /// One token alone gives the same bits as inside a batch, and gathering rows with
    /// `push_row_of` equals quantizing them directly.
    #[test]
    fn batch_invariant_and_gather() {
        let mut r = Rng(24);
        let (n, d_in, d_out) = (6, 2880, 97);
        let x: Vec<f32> = (0..n * d_in).map(|_| r.f()).collect();
        let (blocks, scales) = random_weights(&mut r, d_in, d_out);
        let mut all = Q8Rows::new();
        all.quantize(&x, d_in);
        let mut yb = vec![0f32; n * d_out];
        matmul_q8_mxfp4w(&all, &blocks, &scales, None, &mut yb, d_out);
        let mut one = Q8Rows::new();
        let mut gathered = Q8Rows::new();
        let mut y1 = vec![0f32; d_out];
        for t in 0..n {
            one.quantize(&x[t * d_in..(t + 1) * d_in], d_in);
            matmul_q8_mxfp4w(&one, &blocks, &scales, None, &mut y1, d_out);
            assert_eq!(&yb[t * d_out..(t + 1) * d_out], &y1[..], "token {t}");
            gathered.reset(d_in);
            gathered.push_row_of(&all, t);
            assert_eq!(
                (&gathered.q, &gathered.d, &gathered.cb),
                (&one.q, &one.d, &one.cb)
            );
        }
    }

    /// Documented tolerance of the int8 path against the exact f32 path at real expert shapes
    /// with activations like the model's (roughly Gaussian, a few large outliers), relative to
    /// the output scale (the RMS of the exact outputs): RMS error <= 1 %, worst output <= 5 %
    /// (see docs/numerics.md for the measured values).
    #[test]
    fn int8_path_within_tolerance_of_exact() {
        let mut r = Rng(25);
        let (n, d_in, d_out) = (4, 2880, 256);
        let mut x: Vec<f32> = (0..n * d_in)
            .map(|_| (r.f() + r.f() + r.f()) * 0.6)
            .collect();
        for i in (0..x.len()).step_by(331) {
            x[i] *= 8.0; // outliers, as hidden states have
        }
        let (blocks, scales) = random_weights(&mut r, d_in, d_out);
        let mut q8 = Q8Rows::new();
        q8.quantize(&x, d_in);
        let mut yq = vec![0f32; n * d_out];
        let mut yf = vec![0f32; n * d_out];
        matmul_q8_mxfp4w(&q8, &blocks, &scales, None, &mut yq, d_out);
        matmul_f32_mxfp4w(&x, &blocks, &scales, None, &mut yf, d_in, d_out);
        let mut ys = vec![0f32; n * d_out];
        matmul_f32_mxfp4w_scalar(&x, &blocks, &scales, None, &mut ys, d_in, d_out);
        let rms = (yf.iter().map(|v| v * v).sum::<f32>() / yf.len() as f32).sqrt();
        let max_err = yq
            .iter()
            .zip(&yf)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let rms_err = (yq
            .iter()
            .zip(&yf)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            / yf.len() as f32)
            .sqrt();
        eprintln!(
            "int8 vs exact: rms err {:.3} %, max err {:.3} % of output rms",
            100.0 * rms_err / rms,
            100.0 * max_err / rms
        );
        assert!(rms_err <= 0.01 * rms, "rms err {rms_err} vs rms {rms}");
        assert!(max_err <= 0.05 * rms, "max err {max_err} vs rms {rms}");
        // And it is a real approximation, not the exact path by accident.
        assert!(max_err > 0.0);
        let f32_err = yf
            .iter()
            .zip(&ys)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(f32_err < max_err);
    }
}
