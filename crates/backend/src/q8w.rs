//! 8-bit weights (Q8_0, as llama.cpp's q8_0: blocks of 32 int8 codes with one scale) for the
//! dense bf16/f32 matrices, quantized once at load, and their product with 8-bit activations
//! ([`Q8Rows`]). Owns the weight container [`Q8Weights`], its quantizers, the scalar oracle
//! [`matmul_q8_q8w_scalar`] and the dispatching [`matmul_q8_q8w`] / [`matmul_q8_q8w_each`];
//! the SIMD kernels live under `cpu/` (`cpu/avx2/q8w.rs`, …). Which matrices get quantized is the model's choice.
//!
//! Format: per output row, per 32-block of inputs, `d = max|w| / 127` (f32) and
//! `q = round_ties_even(w / d)` in -127..=127 (an all-zero block: d = 0, q = 0; a block holding
//! NaN or ±inf: d = NaN, q = 0, so NaN reaches the outputs as in f32). The scale is an f32, not
//! an f16: f16 would save 1/16 byte per weight but cannot hold the scale of a block of small
//! bf16 weights (below ~6e-5 · 127 an f16 scale loses precision, below ~8e-6 it is zero), and an
//! f32 scale keeps the same float operations as the activations' scales. The codes of a row are
//! stored in the pair-of-blocks order of [`Q8Rows`] (per pair: even elements of both blocks,
//! then odd ones), so a weight row and an activation row line up byte for byte; a missing last
//! block (odd `d_in / 32`) is zero codes with scale 0.
//!
//! Numerics (identical in the oracle and the SIMD kernels of every level, bit for bit): per (output row, token)
//! an 8-lane f32 accumulator walks the blocks two at a time; lane `l < 4` takes the exact integer
//! sum `Σ w_q · x_q` over elements `8l .. 8l + 8` of the pair's first block, lane `4 + l` the same
//! of its second block; then `acc[L] = fma(isum[L] as f32, d_x[L] · d_w[L], acc[L])`. Lanes are
//! summed as `((0+1)+(2+3))+((4+5)+(6+7))`, then the bias added. The order does not depend on how
//! many tokens share the call, so one token alone gives the same bits as inside a batch.
//!
//! Accuracy: beyond the activations' rounding (see `q8.rs`), each weight moves by at most half a
//! step, `max|w| / 254` of its block.

use rayon::prelude::*;

use crate::dtype::{bf16, bf16_to_f32, MXFP4_BLOCK};
use crate::q8::{q_index, Q8Rows, PAIR_BYTES, PAIR_SCALES};

/// Why a matrix cannot be stored as [`Q8Weights`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Q8WeightsError {
    #[error("8-bit weights need a row length that is a positive multiple of 32, got {d_in}")]
    RowLength { d_in: usize },
    #[error("{len} weights do not make a [{d_out}, {d_in}] matrix")]
    Shape {
        len: usize,
        d_in: usize,
        d_out: usize,
    },
}

/// A [d_out, d_in] matrix quantized to 8 bits per weight, one f32 scale per 32-block.
#[derive(Clone, Debug, Default)]
pub struct Q8Weights {
    /// i8 [d_out, n_pairs, 64], each row in the pair order of [`Q8Rows`]
    pub(crate) q: Vec<i8>,
    /// f32 [d_out, 2 · n_pairs]: block scales (0 for a missing last block)
    pub(crate) d: Vec<f32>,
    pub(crate) d_in: usize,
    pub(crate) d_out: usize,
}

impl Q8Weights {
    /// An all-zero matrix of this shape, to be filled with [`Q8Weights::quantize_rows_bf16`] /
    /// [`Q8Weights::quantize_rows_f32`] (e.g. a few rows at a time, so the source can be
    /// released as it goes).
    pub fn zeros(d_in: usize, d_out: usize) -> Result<Q8Weights, Q8WeightsError> {
        if d_in == 0 || !d_in.is_multiple_of(MXFP4_BLOCK) {
            return Err(Q8WeightsError::RowLength { d_in });
        }
        let np = (d_in / MXFP4_BLOCK).div_ceil(2);
        Ok(Q8Weights {
            q: vec![0; d_out * np * PAIR_BYTES],
            d: vec![0.0; d_out * np * 2],
            d_in,
            d_out,
        })
    }

    /// Quantizes a whole bf16 matrix `w` [d_out, d_in] (row-major).
    pub fn from_bf16(w: &[bf16], d_in: usize, d_out: usize) -> Result<Q8Weights, Q8WeightsError> {
        let mut q = Q8Weights::zeros(d_in, d_out)?;
        q.quantize_rows_bf16(0, w)?;
        Ok(q)
    }

    /// Quantizes a whole f32 matrix `w` [d_out, d_in] (row-major).
    pub fn from_f32(w: &[f32], d_in: usize, d_out: usize) -> Result<Q8Weights, Q8WeightsError> {
        let mut q = Q8Weights::zeros(d_in, d_out)?;
        q.quantize_rows_f32(0, w)?;
        Ok(q)
    }

    /// Quantizes `w` (bf16 [rows, d_in]) into rows `row0 .. row0 + rows`. Parallel over rows.
    pub fn quantize_rows_bf16(&mut self, row0: usize, w: &[bf16]) -> Result<(), Q8WeightsError> {
        self.quantize_rows(row0, w, |src, out| {
            for (o, &v) in out.iter_mut().zip(src) {
                *o = bf16_to_f32(v);
            }
        })
    }

    /// Quantizes `w` (f32 [rows, d_in]) into rows `row0 .. row0 + rows`. Parallel over rows.
    pub fn quantize_rows_f32(&mut self, row0: usize, w: &[f32]) -> Result<(), Q8WeightsError> {
        self.quantize_rows(row0, w, |src, out| out.copy_from_slice(src))
    }

    fn quantize_rows<T: Sync>(
        &mut self,
        row0: usize,
        w: &[T],
        widen: impl Fn(&[T], &mut [f32]) + Sync,
    ) -> Result<(), Q8WeightsError> {
        let d_in = self.d_in;
        let rows = w.len() / d_in;
        if !w.len().is_multiple_of(d_in) || row0 + rows > self.d_out {
            return Err(Q8WeightsError::Shape {
                len: w.len(),
                d_in,
                d_out: self.d_out.saturating_sub(row0),
            });
        }
        let (rq, rd) = (self.row_q(), self.row_d());
        self.q[row0 * rq..(row0 + rows) * rq]
            .par_chunks_mut(rq)
            .zip(self.d[row0 * rd..(row0 + rows) * rd].par_chunks_mut(rd))
            .zip(w.par_chunks(d_in))
            .for_each_init(
                || vec![0f32; d_in],
                |buf, ((q, d), src)| {
                    widen(src, buf);
                    quantize_weight_row(buf, q, d);
                },
            );
        Ok(())
    }

    /// Elements per row.
    pub fn d_in(&self) -> usize {
        self.d_in
    }

    /// Number of rows.
    pub fn d_out(&self) -> usize {
        self.d_out
    }

    /// Bytes held (codes and scales): what one pass over the matrix reads.
    pub fn bytes(&self) -> usize {
        self.q.len() + 4 * self.d.len()
    }

    /// Row `row` back in f32 (`out` [d_in]): the weights the product multiplies with.
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        assert!(
            row < self.d_out && out.len() == self.d_in,
            "q8w: dequantize shapes"
        );
        let (rq, rd) = (self.row_q(), self.row_d());
        let (q, d) = (&self.q[row * rq..], &self.d[row * rd..]);
        for (i, o) in out.iter_mut().enumerate() {
            let (k, _) = q_index(i);
            *o = q[k] as f32 * d[i / MXFP4_BLOCK];
        }
    }

    pub(crate) fn n_pairs(&self) -> usize {
        (self.d_in / MXFP4_BLOCK).div_ceil(2)
    }

    pub(crate) fn row_q(&self) -> usize {
        self.n_pairs() * PAIR_BYTES
    }

    pub(crate) fn row_d(&self) -> usize {
        self.n_pairs() * 2
    }
}

/// Quantizes one row (`w` f32 [d_in]) into `q` (its pairs, padded) and `d` (its block scales).
fn quantize_weight_row(w: &[f32], q: &mut [i8], d: &mut [f32]) {
    q.fill(0);
    d.fill(0.0);
    for (blk, wb) in w.chunks_exact(MXFP4_BLOCK).enumerate() {
        let finite = wb.iter().all(|v| v.is_finite());
        let amax = wb.iter().fold(0f32, |m, v| m.max(v.abs()));
        if !finite {
            d[blk] = f32::NAN;
            continue;
        }
        let scale = amax / 127.0;
        d[blk] = scale;
        if scale == 0.0 {
            continue;
        }
        for (e, &v) in wb.iter().enumerate() {
            // A division, not a multiply by 1/scale: 1/scale overflows for subnormal scales.
            // |v / scale| <= 127 up to rounding; the clamp only guards that rounding.
            let (k, _) = q_index(blk * MXFP4_BLOCK + e);
            q[k] = round_ties_even_small(v / scale).clamp(-127.0, 127.0) as i8;
        }
    }
}

/// `y.round_ties_even()` for |y| < 2^22: adding and subtracting 1.5 · 2^23 rounds to an
/// integer in the default round-to-nearest-even mode. `f32::round_ties_even` is a libc `rintf`
/// call without SSE4.1 (the build baseline), which would make quantizing gpt-oss-20b's 1.2 G
/// weights take seconds longer.
#[inline(always)]
fn round_ties_even_small(y: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    (y + MAGIC) - MAGIC
}

fn check_dims(xq: &Q8Rows, w: &Q8Weights, bias: Option<&[f32]>) {
    assert_eq!(
        xq.d_in, w.d_in,
        "q8w matmul: activations have {} elements per row, weights {}",
        xq.d_in, w.d_in
    );
    if let Some(b) = bias {
        assert_eq!(b.len(), w.d_out, "q8w matmul: bias is not [{}]", w.d_out);
    }
}

/// Exact lane sums and the float epilogue of one (weight row, activation row) pair, in the
/// order of the module header. `wq`/`wd`: the weight row's codes and block scales; `xq`/`xd`:
/// the activation row's codes and pair scales.
fn dot_scalar(wq: &[i8], wd: &[f32], xq: &[i8], xd: &[f32], d_in: usize) -> f32 {
    let np = (d_in / MXFP4_BLOCK).div_ceil(2);
    let mut acc = [0f32; 8];
    for p in 0..np {
        let mut isum = [0i32; 8];
        for half in 0..2 {
            let blk = 2 * p + half;
            if blk * MXFP4_BLOCK >= d_in {
                continue;
            }
            for e in 0..MXFP4_BLOCK {
                let (k, _) = q_index(blk * MXFP4_BLOCK + e);
                isum[half * 4 + e / 8] += wq[k] as i32 * xq[k] as i32;
            }
        }
        for l in 0..8 {
            let s = xd[p * PAIR_SCALES + l] * wd[2 * p + l / 4];
            acc[l] = (isum[l] as f32).mul_add(s, acc[l]);
        }
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// Scalar oracle: `y[n, d_out] = dequant(xq)[n, d_in] · dequant(w)[d_out, d_in]ᵀ + b`, with
/// exact integer block dots and the float order of the module header. Sequential; for tests
/// and as the reference of the SIMD kernels.
pub fn matmul_q8_q8w_scalar(xq: &Q8Rows, w: &Q8Weights, bias: Option<&[f32]>, y: &mut [f32]) {
    check_dims(xq, w, bias);
    let d_out = w.d_out;
    assert_eq!(
        y.len(),
        xq.n_rows * d_out,
        "q8w matmul: y is not [n, {d_out}]"
    );
    let (rq, rd) = (xq.row_q(), xq.row_d());
    let (wrq, wrd) = (w.row_q(), w.row_d());
    for (t, yt) in y.chunks_exact_mut(d_out.max(1)).enumerate() {
        let (xqt, xdt) = (&xq.q[t * rq..(t + 1) * rq], &xq.d[t * rd..(t + 1) * rd]);
        for (o, yv) in yt.iter_mut().enumerate() {
            let (wqo, wdo) = (&w.q[o * wrq..(o + 1) * wrq], &w.d[o * wrd..(o + 1) * wrd]);
            *yv = dot_scalar(wqo, wdo, xqt, xdt, w.d_in) + bias.map_or(0.0, |b| b[o]);
        }
    }
}

/// `y[n, d_out] = dequant(xq)[n, d_in] · dequant(w)[d_out, d_in]ᵀ + b`: the running level's SIMD
/// kernels split over rayon threads by output rows (see [`crate::kernel_level`]), else
/// the scalar oracle; the same bits either way.
pub fn matmul_q8_q8w(xq: &Q8Rows, w: &Q8Weights, bias: Option<&[f32]>, y: &mut [f32]) {
    assert_eq!(
        y.len(),
        xq.n_rows * w.d_out,
        "q8w matmul: y is not [n, {}]",
        w.d_out
    );
    q8w_into(xq, w, bias, Outs::Matrix(y));
}

/// As [`matmul_q8_q8w`], token t's output row written to its own buffer `outs[t]` (f32
/// [d_out] each; `xq` holds `outs.len()` rows): a batched decode step writes each sequence's
/// logits in place. Same bits as [`matmul_q8_q8w`].
pub fn matmul_q8_q8w_each(
    xq: &Q8Rows,
    w: &Q8Weights,
    bias: Option<&[f32]>,
    outs: &mut [&mut [f32]],
) {
    assert_eq!(outs.len(), xq.n_rows, "q8w matmul: one output per row");
    assert!(
        outs.iter().all(|o| o.len() == w.d_out),
        "q8w matmul: an output row is not [{}]",
        w.d_out
    );
    q8w_into(xq, w, bias, Outs::Rows(outs));
}

/// Where the product writes token t's `d_out` results (shapes checked by the callers).
enum Outs<'a, 'b> {
    /// One [n, d_out] matrix.
    Matrix(&'a mut [f32]),
    /// One buffer per token (each [d_out]).
    Rows(&'a mut [&'b mut [f32]]),
}

impl Outs<'_, '_> {
    fn row(&mut self, t: usize, d_out: usize) -> &mut [f32] {
        match self {
            Outs::Matrix(y) => &mut y[t * d_out..(t + 1) * d_out],
            Outs::Rows(rows) => rows[t],
        }
    }
}

fn q8w_into(xq: &Q8Rows, w: &Q8Weights, bias: Option<&[f32]>, mut outs: Outs<'_, '_>) {
    check_dims(xq, w, bias);
    let (n, d_out) = (xq.n_rows, w.d_out);
    if d_out == 0 || n == 0 {
        return;
    }
    if let Some(k) = crate::cpu::simd() {
        // Token output pointers on the stack for decode-sized batches: nothing allocated.
        let mut on_stack = [std::ptr::null_mut::<f32>(); 32];
        let mut on_heap = Vec::new();
        let ptrs: &mut [*mut f32] = if n <= on_stack.len() {
            &mut on_stack[..n]
        } else {
            on_heap.resize(n, std::ptr::null_mut());
            &mut on_heap
        };
        // All pointers from one borrow of the outputs, so none invalidates another.
        match &mut outs {
            Outs::Matrix(y) => {
                for (p, row) in ptrs.iter_mut().zip(y.chunks_exact_mut(d_out)) {
                    *p = row.as_mut_ptr();
                }
            }
            Outs::Rows(rows) => {
                for (p, row) in ptrs.iter_mut().zip(rows.iter_mut()) {
                    *p = row.as_mut_ptr();
                }
            }
        }
        let out = crate::cpu::OutRows { tok: ptrs };
        // Multiples of 4 rows keep the decode tiles whole.
        let per_task = crate::matmul::rows_per_task(d_out, n * w.d_in * d_out, 4);
        let run = |o0: usize| {
            let rows = per_task.min(d_out - o0);
            // SAFETY: each task writes rows o0..o0 + rows
            // of every output, disjoint from the other tasks' rows, through pointers into
            // `outs`, which this call borrows mutably for its whole duration (and does not
            // touch while the tasks run); shapes checked by the callers and `check_dims`.
            unsafe { k.q8_q8w_rows(xq, w, o0, rows, bias, out) }
        };
        if per_task >= d_out {
            run(0);
        } else {
            (0..d_out.div_ceil(per_task))
                .into_par_iter()
                .for_each(|i| run(i * per_task));
        }
        return;
    }
    let (rq, rd) = (xq.row_q(), xq.row_d());
    let (wrq, wrd) = (w.row_q(), w.row_d());
    for t in 0..n {
        let (xqt, xdt) = (&xq.q[t * rq..(t + 1) * rq], &xq.d[t * rd..(t + 1) * rd]);
        for (o, yv) in outs.row(t, d_out).iter_mut().enumerate() {
            let (wqo, wdo) = (&w.q[o * wrq..(o + 1) * wrq], &w.d[o * wrd..(o + 1) * wrd]);
            *yv = dot_scalar(wqo, wdo, xqt, xdt, w.d_in) + bias.map_or(0.0, |b| b[o]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::matmul_f32_f32w_scalar;
    use crate::test_rng::Rng;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Weights with per-row magnitudes from subnormal to huge, zero blocks and zero rows.
    fn weights(r: &mut Rng, d_in: usize, d_out: usize) -> Vec<f32> {
        let mags = [1.0f32, 1e-3, 3e-39, 1e-30, 1e20, 0.0, 250.0];
        let mut w = Vec::with_capacity(d_in * d_out);
        for o in 0..d_out {
            let m = mags[o % mags.len()];
            for i in 0..d_in {
                let zero_block = (o + i / 32) % 11 == 3;
                w.push(if zero_block { 0.0 } else { r.f() * m });
            }
        }
        w
    }

    fn activations(r: &mut Rng, n: usize, d_in: usize) -> Vec<f32> {
        let mags = [1.0f32, 1e-20, 4e15, 0.5];
        (0..n * d_in)
            .map(|i| r.f() * mags[(i / d_in) % mags.len()])
            .collect()
    }

    #[test]
    fn quantization_round_trips_within_half_a_step() {
        let mut r = Rng(41);
        let (d_in, d_out) = (96, 13);
        let w = weights(&mut r, d_in, d_out);
        let q = Q8Weights::from_f32(&w, d_in, d_out).unwrap();
        let mut row = vec![0f32; d_in];
        for o in 0..d_out {
            q.dequantize_row(o, &mut row);
            for (blk, (got, want)) in row.chunks(32).zip(w[o * d_in..].chunks(32)).enumerate() {
                let amax = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (g, v) in got.iter().zip(want) {
                    // Half a step, plus the f32 rounding of scale and product.
                    let tol = amax / 254.0 * (1.0 + 1e-5) + amax * 1e-6;
                    assert!((g - v).abs() <= tol, "row {o} block {blk}: {g} vs {v}");
                }
            }
        }
        // bf16 input quantizes to the same codes as its f32 value.
        let wb: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
        let wbf: Vec<f32> = wb.iter().map(|v| v.to_f32()).collect();
        let (a, b) = (
            Q8Weights::from_bf16(&wb, d_in, d_out).unwrap(),
            Q8Weights::from_f32(&wbf, d_in, d_out).unwrap(),
        );
        assert_eq!(a.q, b.q);
        assert_eq!(bits(&a.d), bits(&b.d));
        // 3 blocks: the last pair is padded (a fourth block of zero codes, scale 0).
        assert_eq!(a.bytes(), d_out * (128 + 4 * 4));
        assert_eq!(
            Q8Weights::zeros(2880, 2).unwrap().bytes(),
            2 * (2880 + 4 * 90)
        );
    }

    #[test]
    fn inline_rounding_equals_round_ties_even() {
        let mut r = Rng(45);
        let halves = (-300..=300).map(|i| i as f32 * 0.5);
        let randoms = (0..100_000).map(|_| r.f() * 140.0);
        for y in halves
            .chain(randoms)
            .chain([0.0, -0.0, 0.49999997, 127.49999])
        {
            assert_eq!(round_ties_even_small(y), y.round_ties_even(), "{y}");
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert_eq!(
            Q8Weights::from_f32(&[0.0; 40], 20, 2).unwrap_err(),
            Q8WeightsError::RowLength { d_in: 20 }
        );
        assert!(matches!(
            Q8Weights::from_f32(&[0.0; 70], 32, 2),
            Err(Q8WeightsError::Shape { .. })
        ));
        assert!(Q8Weights::zeros(0, 3).is_err());
        let mut q = Q8Weights::zeros(32, 2).unwrap();
        assert!(q.quantize_rows_f32(1, &[1.0; 64]).is_err());
        assert!(q.quantize_rows_f32(1, &[1.0; 32]).is_ok());
    }

    #[test]
    fn non_finite_weights_give_nan_outputs() {
        let mut w = vec![0.5f32; 64 * 3];
        w[70] = f32::INFINITY;
        w[150] = f32::NAN;
        let q = Q8Weights::from_f32(&w, 64, 3).unwrap();
        let mut x = Q8Rows::new();
        x.quantize(&[1.0; 64], 64);
        let mut y = vec![0f32; 3];
        matmul_q8_q8w(&x, &q, None, &mut y);
        assert!(y[0].is_finite() && y[1].is_nan() && y[2].is_nan());
    }

    /// The dispatching kernel equals the scalar oracle bit for bit: odd token counts and row
    /// counts (partial 4-row and 4-token tiles), odd block counts (a padded last pair), the real
    /// row lengths, extreme weight and activation scales, with and without bias; and each token
    /// alone gives the bits it gets inside the batch.
    #[test]
    fn fast_kernel_equals_scalar_oracle_bitwise() {
        let mut r = Rng(43);
        for &(n, d_in, d_out) in &[
            (1, 32, 1),
            (1, 96, 7),
            (2, 64, 5),
            (3, 160, 13),
            (5, 2880, 37),
            (1, 2880, 301),
            (7, 4096, 9),
            (9, 224, 1001),
            (33, 64, 6),
        ] {
            let w = weights(&mut r, d_in, d_out);
            let q = Q8Weights::from_f32(&w, d_in, d_out).unwrap();
            let x = activations(&mut r, n, d_in);
            let mut xq = Q8Rows::new();
            xq.quantize(&x, d_in);
            let b: Vec<f32> = (0..d_out).map(|_| r.f()).collect();
            for bias in [None, Some(&b[..])] {
                let (mut y, mut ys) = (vec![0f32; n * d_out], vec![0f32; n * d_out]);
                matmul_q8_q8w(&xq, &q, bias, &mut y);
                matmul_q8_q8w_scalar(&xq, &q, bias, &mut ys);
                assert_eq!(bits(&y), bits(&ys), "n={n} d_in={d_in} d_out={d_out}");
                let mut one = Q8Rows::new();
                let mut y1 = vec![0f32; d_out];
                for t in 0..n {
                    one.quantize(&x[t * d_in..(t + 1) * d_in], d_in);
                    matmul_q8_q8w(&one, &q, bias, &mut y1);
                    assert_eq!(bits(&y1), bits(&y[t * d_out..(t + 1) * d_out]), "t={t}");
                }
                let mut bufs = vec![vec![f32::NAN; d_out]; n];
                let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(|v| &mut v[..]).collect();
                matmul_q8_q8w_each(&xq, &q, bias, &mut outs);
                assert_eq!(bits(&bufs.concat()), bits(&y), "each n={n}");
            }
        }
    }

    /// Against the f32 product of the unquantized weights and activations: at real shapes
    /// with model-like activations the error stays small relative to the output scale.
    #[test]
    fn q8_weights_within_tolerance_of_f32() {
        let mut r = Rng(47);
        let (n, d_in, d_out) = (3, 2880, 200);
        let mut x: Vec<f32> = (0..n * d_in)
            .map(|_| (r.f() + r.f() + r.f()) * 0.6)
            .collect();
        for i in (0..x.len()).step_by(331) {
            x[i] *= 8.0;
        }
        let w: Vec<f32> = (0..d_in * d_out).map(|_| r.f() * 0.05).collect();
        let q = Q8Weights::from_f32(&w, d_in, d_out).unwrap();
        let mut xq = Q8Rows::new();
        xq.quantize(&x, d_in);
        let (mut y, mut yf) = (vec![0f32; n * d_out], vec![0f32; n * d_out]);
        matmul_q8_q8w(&xq, &q, None, &mut y);
        matmul_f32_f32w_scalar(&x, &w, None, &mut yf, d_in, d_out);
        let rms = (yf.iter().map(|v| v * v).sum::<f32>() / yf.len() as f32).sqrt();
        let err: Vec<f32> = y.iter().zip(&yf).map(|(a, b)| a - b).collect();
        let max_err = err.iter().fold(0f32, |m, e| m.max(e.abs()));
        let rms_err = (err.iter().map(|e| e * e).sum::<f32>() / err.len() as f32).sqrt();
        eprintln!(
            "q8 x q8w vs f32: rms err {:.3} %, max err {:.3} % of output rms",
            100.0 * rms_err / rms,
            100.0 * max_err / rms
        );
        assert!(rms_err <= 0.01 * rms && max_err <= 0.05 * rms);
        assert!(max_err > 0.0);
    }
}
