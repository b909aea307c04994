//! NEON kernels of the 8-bit integer MXFP4 path (aarch64 only): int8 activations ([`Q8Rows`])
//! times FP4 codes widened to int8, run by `q8::matmul_q8_mxfp4w`. Owns only the tiles; the
//! layout, the numerics contract and the scalar oracle are in `q8.rs`, and every kernel here
//! gives the oracle's bits, with `sdot` or without (see `int8.rs`).
//!
//! Per pair of 32-blocks: the 32 packed bytes (16 per block) split into low nibbles (the even
//! elements) and high nibbles (the odd ones); one table lookup (`vqtbl1q_s8`) turns each code
//! into `2·value`, a signed byte in -12..=12, which lines up byte for byte with the activations'
//! pair order. NEON multiplies signed bytes directly, so the AVX2 offset trick (and
//! `Q8Rows::c`) is not needed. The exact lane sums then get one convert and one FMA per
//! 4-lane half: `acc = fma(isum, d_x · scale / 2, acc)`, the oracle's order.
//!
//! Decode (one token): 4 weight rows per pass share each activation load. Batches: a group of
//! 16 weight rows is decoded once into a per-task scratch (signed weights and half scales) and
//! every tile of 4 tokens runs over the whole group, its activations staying in L1.

use std::arch::aarch64::*;

use super::int8::{IntDot, Sdot, Smull};
use crate::dtype::HALF_SCALE;
use crate::matmul::reduce8;
use crate::q8::{Q8Rows, FP4_X2_I8, PAIR_BYTES, PAIR_SCALES};

/// Weight rows per decode pass.
const R_DECODE: usize = 4;
/// Tokens per batch pass over one decoded weight row.
const T_BATCH: usize = 4;
/// f32 slots per pair in the decoded-row scratch: 64 bytes of signed weights (in the pair
/// order) and 8 half scales.
const SCRATCH_PAIR: usize = 16 + 8;
/// Weight rows decoded together in batches (16 rows of 2880 inputs: ~69 KB, L2-resident).
const ROW_GROUP: usize = 16;

/// The 8 accumulator lanes summed in the contract's order.
#[inline(always)]
fn sum_lanes(a: &[float32x4_t; 2]) -> f32 {
    let mut l = [0f32; 8];
    // SAFETY: `l` holds 8 floats.
    unsafe {
        vst1q_f32(l.as_mut_ptr(), a[0]);
        vst1q_f32(l.as_mut_ptr().add(4), a[1]);
    }
    reduce8(&l)
}

/// Signed weights (`2·value`) of the pair of blocks at `p`, in the pair order (even elements
/// of block 0, of block 1, odd elements of block 0, of block 1). `full` false: only one block
/// (16 bytes) exists at `p`; the missing one reads as code 0, value 0.
#[inline(always)]
unsafe fn pair_weights(p: *const u8, full: bool, lut: int8x16_t) -> [int8x16_t; 4] {
    // SAFETY: the caller guarantees 32 readable bytes at p (16 when !full).
    unsafe {
        let m = vdupq_n_u8(0x0F);
        let b0 = vld1q_u8(p);
        let b1 = if full {
            vld1q_u8(p.add(16))
        } else {
            vdupq_n_u8(0)
        };
        [
            vqtbl1q_s8(lut, vandq_u8(b0, m)),
            vqtbl1q_s8(lut, vandq_u8(b1, m)),
            vqtbl1q_s8(lut, vshrq_n_u8::<4>(b0)),
            vqtbl1q_s8(lut, vshrq_n_u8::<4>(b1)),
        ]
    }
}

/// `[hs(blk) ×4, hs(blk + 1) ×4]` (half E8M0 scales), the second zero when `!full`.
#[inline(always)]
unsafe fn pair_half_scales(sc: *const u8, full: bool) -> [float32x4_t; 2] {
    // SAFETY: the caller guarantees 2 readable scale bytes at sc (1 when !full).
    unsafe {
        let h0 = HALF_SCALE[*sc as usize];
        let h1 = if full {
            HALF_SCALE[*sc.add(1) as usize]
        } else {
            0.0
        };
        [vdupq_n_f32(h0), vdupq_n_f32(h1)]
    }
}

/// The 64 activation bytes of one pair at `p`.
#[inline(always)]
unsafe fn load_pair(p: *const i8) -> [int8x16_t; 4] {
    // SAFETY: the caller guarantees 64 readable bytes at p.
    unsafe {
        [
            vld1q_s8(p),
            vld1q_s8(p.add(16)),
            vld1q_s8(p.add(32)),
            vld1q_s8(p.add(48)),
        ]
    }
}

/// `acc + isum · (dx · hs)` per lane: the oracle's float step for one pair.
#[inline(always)]
fn pair_step(
    acc: [float32x4_t; 2],
    i: [int32x4_t; 2],
    dx: [float32x4_t; 2],
    hs: [float32x4_t; 2],
) -> [float32x4_t; 2] {
    // SAFETY: NEON is baseline on aarch64; register-only.
    unsafe {
        [
            vfmaq_f32(acc[0], vcvtq_f32_s32(i[0]), vmulq_f32(dx[0], hs[0])),
            vfmaq_f32(acc[1], vcvtq_f32_s32(i[1]), vmulq_f32(dx[1], hs[1])),
        ]
    }
}

/// One token (`xq` row bytes, `xd` its pair scales) against R MXFP4 rows (`blocks` with `nb`
/// blocks per row, `scales`); writes the R dots + bias to `out[0..R]`.
#[allow(clippy::needless_range_loop)] // r indexes acc and the weight rows
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn dot_rows<D: IntDot, const R: usize>(
    blocks: *const u8,
    scales: *const u8,
    nb: usize,
    xq: *const i8,
    xd: *const f32,
    bias: Option<&[f32]>,
    out: *mut f32,
    lut: int8x16_t,
) {
    let np = nb.div_ceil(2);
    let rb = nb * 16;
    // SAFETY: the caller guarantees R rows of nb blocks and nb scales, a quantized row of np
    // pairs, R writable outputs, and the instructions of `D`.
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); 2]; R];
        for p in 0..np {
            let full = 2 * p + 1 < nb;
            let x = load_pair(xq.add(p * PAIR_BYTES));
            let dx = [
                vld1q_f32(xd.add(p * PAIR_SCALES)),
                vld1q_f32(xd.add(p * PAIR_SCALES + 4)),
            ];
            for r in 0..R {
                let w = pair_weights(blocks.add(r * rb + 32 * p), full, lut);
                let i = D::pair(&w, &x);
                let hs = pair_half_scales(scales.add(r * nb + 2 * p), full);
                acc[r] = pair_step(acc[r], i, dx, hs);
            }
        }
        for r in 0..R {
            *out.add(r) = sum_lanes(&acc[r]) + bias.map_or(0.0, |b| b[r]);
        }
    }
}

/// Decodes one MXFP4 row (`nb` blocks at `blocks`, scales at `scales`) into `ws` (f32
/// [np, SCRATCH_PAIR], see [`SCRATCH_PAIR`]).
#[inline(always)]
unsafe fn decode_row(
    blocks: *const u8,
    scales: *const u8,
    nb: usize,
    ws: *mut f32,
    lut: int8x16_t,
) {
    // SAFETY: the caller guarantees nb blocks and scales, and np · SCRATCH_PAIR writable f32.
    unsafe {
        for p in 0..nb.div_ceil(2) {
            let full = 2 * p + 1 < nb;
            let w = pair_weights(blocks.add(32 * p), full, lut);
            let d = ws.add(p * SCRATCH_PAIR);
            let db = d as *mut i8;
            for (j, v) in w.iter().enumerate() {
                vst1q_s8(db.add(16 * j), *v);
            }
            let hs = pair_half_scales(scales.add(2 * p), full);
            vst1q_f32(d.add(16), hs[0]);
            vst1q_f32(d.add(20), hs[1]);
        }
    }
}

/// One decoded row (`ws`) against T tokens (`xq` + t · `rq` bytes, `xd` + t · `rd` scales);
/// writes token t's dot + `bias` to `out[t]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn row_tokens<D: IntDot, const T: usize>(
    ws: *const f32,
    np: usize,
    xq: *const i8,
    rq: usize,
    xd: *const f32,
    rd: usize,
    bias: f32,
    out: *mut f32,
) {
    // SAFETY: the caller guarantees np decoded pairs at ws, T quantized rows, T outputs, and
    // the instructions of `D`.
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); 2]; T];
        for p in 0..np {
            let wp = ws.add(p * SCRATCH_PAIR);
            let w = load_pair(wp as *const i8);
            let hs = [vld1q_f32(wp.add(16)), vld1q_f32(wp.add(20))];
            for (t, a) in acc.iter_mut().enumerate() {
                let x = load_pair(xq.add(t * rq + p * PAIR_BYTES));
                let xs = xd.add(t * rd + p * PAIR_SCALES);
                let dx = [vld1q_f32(xs), vld1q_f32(xs.add(4))];
                *a = pair_step(*a, D::pair(&w, &x), dx, hs);
            }
        }
        for (t, a) in acc.iter().enumerate() {
            *out.add(t) = sum_lanes(a) + bias;
        }
    }
}

/// MXFP4 rows (`blocks` [rows, d_in/32, 16], `scales` [rows, d_in/32]) against every row of
/// `xq`; `out` f32 [rows, n] (by output row). `scratch` holds a decoded row group for batches.
///
/// # Safety
/// The CPU must have what `D` uses (`dotprod` for [`Sdot`]).
#[inline(always)]
unsafe fn q8_mxfp4_rows<D: IntDot>(
    blocks: &[u8],
    scales: &[u8],
    xq: &Q8Rows,
    rows: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let (n, d_in) = (xq.n_rows, xq.d_in);
    let nb = d_in / 32;
    let np = xq.n_pairs();
    let (rb, rq, rd) = (d_in / 2, xq.row_q(), xq.row_d());
    assert!(d_in.is_multiple_of(32) && blocks.len() >= rows * rb && scales.len() >= rows * nb);
    assert!(xq.q.len() >= n * rq && xq.d.len() >= n * rd);
    assert!(out.len() >= rows * n);
    assert!(bias.is_none_or(|b| b.len() >= rows));
    let (bp, sp) = (blocks.as_ptr(), scales.as_ptr());
    let (qp, dp) = (xq.q.as_ptr(), xq.d.as_ptr());
    // SAFETY: `D`'s instructions by the caller's contract; every offset is bounded by the
    // asserts above.
    unsafe {
        let lut = vld1q_s8(FP4_X2_I8.as_ptr());
        if n == 1 {
            let mut r = 0;
            while r + R_DECODE <= rows {
                let b = bias.map(|b| &b[r..]);
                let o = out.as_mut_ptr().add(r);
                dot_rows::<D, R_DECODE>(bp.add(r * rb), sp.add(r * nb), nb, qp, dp, b, o, lut);
                r += R_DECODE;
            }
            while r < rows {
                let b = bias.map(|b| &b[r..]);
                let o = out.as_mut_ptr().add(r);
                dot_rows::<D, 1>(bp.add(r * rb), sp.add(r * nb), nb, qp, dp, b, o, lut);
                r += 1;
            }
            return;
        }
        // Decode a group of rows, then run every token tile over the whole group.
        let per_row = np * SCRATCH_PAIR;
        scratch.resize(ROW_GROUP.min(rows) * per_row, 0.0);
        let ws = scratch.as_mut_ptr();
        let mut g0 = 0;
        while g0 < rows {
            let gr = ROW_GROUP.min(rows - g0);
            for r in 0..gr {
                let row = g0 + r;
                let dst = ws.add(r * per_row);
                decode_row(bp.add(row * rb), sp.add(row * nb), nb, dst, lut);
            }
            let mut t = 0;
            while t < n {
                let tt = T_BATCH.min(n - t);
                let (q, d) = (qp.add(t * rq), dp.add(t * rd));
                for r in 0..gr {
                    let row = g0 + r;
                    let w = ws.add(r * per_row);
                    let b = bias.map_or(0.0, |b| b[row]);
                    let o = out.as_mut_ptr().add(row * n + t);
                    match tt {
                        T_BATCH => row_tokens::<D, T_BATCH>(w, np, q, rq, d, rd, b, o),
                        1 => row_tokens::<D, 1>(w, np, q, rq, d, rd, b, o),
                        2 => row_tokens::<D, 2>(w, np, q, rq, d, rd, b, o),
                        _ => row_tokens::<D, 3>(w, np, q, rq, d, rd, b, o),
                    }
                }
                t += tt;
            }
            g0 += gr;
        }
    }
}

/// [`q8_mxfp4_rows`] with `sdot`.
///
/// # Safety
/// The CPU must have `dotprod`.
#[target_feature(enable = "dotprod")]
pub(crate) unsafe fn q8_mxfp4_rows_sdot(
    blocks: &[u8],
    scales: &[u8],
    xq: &Q8Rows,
    rows: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    // SAFETY: `dotprod` by the caller's contract.
    unsafe { q8_mxfp4_rows::<Sdot>(blocks, scales, xq, rows, bias, out, scratch) }
}

/// [`q8_mxfp4_rows`] with widening multiplies (any NEON CPU).
pub(crate) fn q8_mxfp4_rows_smull(
    blocks: &[u8],
    scales: &[u8],
    xq: &Q8Rows,
    rows: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    // SAFETY: `Smull` needs only NEON, baseline on aarch64.
    unsafe { q8_mxfp4_rows::<Smull>(blocks, scales, xq, rows, bias, out, scratch) }
}
