//! NEON kernels of the 8-bit integer MXFP4 path (aarch64 only): int8 activations ([`Q8Rows`])
//! times FP4 codes widened to int8, run by `q8::matmul_q8_mxfp4w`. Owns only the tiles; the
//! layout, the numerics contract and the scalar oracle are in `q8.rs`, and every kernel here
//! gives the oracle's bits, with `sdot` or without (widening multiplies).
//!
//! One table lookup (`vqtbl1q_s8`) turns each FP4 code into `2·value`, a signed byte in
//! -12..=12; NEON multiplies signed bytes directly, so neither the unsigned offset nor
//! `Q8Rows::cb` is needed. The contract takes one float step per 32-block, so output rows
//! sit in the 4 vector lanes: each block ends in one vector of 4 rows' exact integer sums, then
//! one convert, one `d · hs` multiply and one FMA serve all 4 rows.
//!
//! Decode (one token): 4 rows per pass read their packed bytes in place; each row's block dot
//! lands in 4 lanes, and pairwise adds (`addp`) fold 4 rows into one vector of block sums.
//! Batches: a group of 16 rows is decoded once into a per-task scratch, TRANSPOSED: per block
//! and step j (4 bytes of the block's even or odd half), lane r holds row r's 4 weight bytes,
//! so a step multiplies them by the token's matching 4 activation bytes (`sdot` by element, or
//! a dword broadcast and widening multiplies) and each lane sums its row's whole block with no
//! horizontal work. Every tile of tokens runs over the whole group, its activations in L1.

use std::arch::aarch64::*;
use std::arch::asm;

use super::int8::{sdot, Sdot, Smull};
use crate::cpu::OutRows;
use crate::q8::{Q8Rows, FP4_X2_I8, PAIR_BYTES, PAIR_SCALES};

/// Row vectors (of 4 rows each) per batch tile.
const RV: usize = 2;
/// Row vectors per decode pass: one, so the row pointers and accumulator stay in registers.
const RV_DECODE: usize = 1;
/// Weight rows decoded together in batches (2 tiles; 52 KB of scratch at 2880 inputs).
const ROW_GROUP: usize = 16;
/// Bytes of decoded scratch per block and row vector: 8 steps of 16 weight bytes, then the
/// 4 rows' half scales.
const BLOCK_VEC_BYTES: usize = 9 * 16;

/// The exact integer block sums of one variant (`sdot`, or widening multiplies), with 4 output
/// rows in the lanes of the result.
trait BlockDot {
    /// A batch accumulator: one block's partial sums of 4 rows.
    type Acc: Copy;
    /// Tokens per batch tile (what the registers hold).
    const T_BATCH: usize;
    /// An empty accumulator.
    unsafe fn zero() -> Self::Acc;
    /// `acc` plus, per row lane, its 4 weight bytes in `w` times dword `J` of `x`.
    unsafe fn step<const J: i32>(acc: Self::Acc, w: int8x16_t, x: int8x16_t) -> Self::Acc;
    /// The 4 rows' block sums.
    unsafe fn finish(acc: Self::Acc) -> int32x4_t;
    /// `[Σ we[r]·xe + wo[r]·xo for r in 0..4]`: one block of 4 rows from their even and odd
    /// weight vectors (the Q8Rows byte order) and the token's even and odd activations.
    unsafe fn rows4(
        we: &[int8x16_t; 4],
        wo: &[int8x16_t; 4],
        xe: int8x16_t,
        xo: int8x16_t,
    ) -> int32x4_t;
}

/// `acc + Σ` of each lane's four bytes of `a` times the four bytes of lane `J` of `b` (`sdot`
/// by element: the broadcast is free).
#[inline(always)]
unsafe fn sdot_lane<const J: i32>(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: as `int8::sdot`.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.4b[{j}]",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            j = const J,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// Only inlined into functions compiled with `dotprod` (the assembler rejects `sdot`
/// elsewhere).
impl BlockDot for Sdot {
    type Acc = int32x4_t;
    const T_BATCH: usize = 4;

    #[inline(always)]
    unsafe fn zero() -> int32x4_t {
        // SAFETY: register-only.
        unsafe { vdupq_n_s32(0) }
    }

    #[inline(always)]
    unsafe fn step<const J: i32>(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        // SAFETY: the caller's `dotprod` guarantee.
        unsafe { sdot_lane::<J>(acc, w, x) }
    }

    #[inline(always)]
    unsafe fn finish(acc: int32x4_t) -> int32x4_t {
        acc
    }

    #[inline(always)]
    unsafe fn rows4(
        we: &[int8x16_t; 4],
        wo: &[int8x16_t; 4],
        xe: int8x16_t,
        xo: int8x16_t,
    ) -> int32x4_t {
        // SAFETY: the caller's `dotprod` guarantee; register-only.
        unsafe {
            let z = vdupq_n_s32(0);
            // No closure: it would not inherit `dotprod`.
            let s0 = sdot(sdot(z, we[0], xe), wo[0], xo);
            let s1 = sdot(sdot(z, we[1], xe), wo[1], xo);
            let s2 = sdot(sdot(z, we[2], xe), wo[2], xo);
            let s3 = sdot(sdot(z, we[3], xe), wo[3], xo);
            vpaddq_s32(vpaddq_s32(s0, s1), vpaddq_s32(s2, s3))
        }
    }
}

/// The i16 sums below never wrap: a product is at most 12 · 127 = 1524 in magnitude (codes
/// never reach -128), and no i16 lane sums more than 16 of them (24,384).
impl BlockDot for Smull {
    /// Rows 0-1 (4 byte positions each), rows 2-3: each lane sums ≤ 8 products.
    type Acc = (int16x8_t, int16x8_t);
    const T_BATCH: usize = 2;

    #[inline(always)]
    unsafe fn zero() -> Self::Acc {
        // SAFETY: register-only.
        unsafe { (vdupq_n_s16(0), vdupq_n_s16(0)) }
    }

    #[inline(always)]
    unsafe fn step<const J: i32>(acc: Self::Acc, w: int8x16_t, x: int8x16_t) -> Self::Acc {
        // SAFETY: NEON is baseline on aarch64; register-only.
        unsafe {
            let xj = vreinterpretq_s8_s32(vdupq_laneq_s32::<J>(vreinterpretq_s32_s8(x)));
            (
                vmlal_s8(acc.0, vget_low_s8(w), vget_low_s8(xj)),
                vmlal_high_s8(acc.1, w, xj),
            )
        }
    }

    #[inline(always)]
    unsafe fn finish(acc: Self::Acc) -> int32x4_t {
        // SAFETY: register-only. [r0, r0, r1, r1, r2, r2, r3, r3] (16 products each), widened.
        unsafe { vpaddlq_s16(vpaddq_s16(acc.0, acc.1)) }
    }

    #[inline(always)]
    unsafe fn rows4(
        we: &[int8x16_t; 4],
        wo: &[int8x16_t; 4],
        xe: int8x16_t,
        xo: int8x16_t,
    ) -> int32x4_t {
        // SAFETY: register-only.
        unsafe {
            // Per row 8 lanes of 4 products each, then pairwise: 8, 16 products, widened to 32.
            let s: [int16x8_t; 4] = std::array::from_fn(|r| {
                let lo = vmull_s8(vget_low_s8(we[r]), vget_low_s8(xe));
                let lo = vmlal_s8(lo, vget_low_s8(wo[r]), vget_low_s8(xo));
                let lo = vmlal_high_s8(lo, we[r], xe);
                vmlal_high_s8(lo, wo[r], xo)
            });
            vpaddlq_s16(vpaddq_s16(vpaddq_s16(s[0], s[1]), vpaddq_s16(s[2], s[3])))
        }
    }
}

/// `HALF_SCALE[e]` of 4 exponents at once: `e << 23` is 2^(e-127) for e in 1..=254 and +inf
/// for 255; e = 0 becomes 2^-127 by the max; halving is then exact (subnormals included).
#[inline(always)]
fn half_scales4(e: uint32x4_t) -> float32x4_t {
    // SAFETY: NEON is baseline on aarch64; register-only.
    unsafe {
        let bits = vmaxq_u32(vshlq_n_u32::<23>(e), vdupq_n_u32(0x0040_0000));
        vmulq_n_f32(vreinterpretq_f32_u32(bits), 0.5)
    }
}

/// The half scales of block `b` of 4 rows (scale rows at `sc`).
#[inline(always)]
unsafe fn block_half_scales(sc: &[*const u8; 4], b: usize) -> float32x4_t {
    // SAFETY: the caller guarantees b < the rows' block count.
    unsafe {
        let e: [u32; 4] = std::array::from_fn(|k| *sc[k].add(b) as u32);
        half_scales4(vld1q_u32(e.as_ptr()))
    }
}

/// The even and odd signed weights (`2·value`) of the block of 16 packed bytes at `p`.
#[inline(always)]
unsafe fn block_weights(p: *const u8, lut: int8x16_t) -> (int8x16_t, int8x16_t) {
    // SAFETY: the caller guarantees 16 readable bytes at p.
    unsafe {
        let b = vld1q_u8(p);
        (
            vqtbl1q_s8(lut, vandq_u8(b, vdupq_n_u8(0x0F))),
            vqtbl1q_s8(lut, vshrq_n_u8::<4>(b)),
        )
    }
}

/// Row pointers of a tile: rows `r0 + 4·v + k`, clamped to the last row (their results are
/// dropped).
#[inline(always)]
unsafe fn tile_rows<T, const V: usize>(
    base: *const T,
    stride: usize,
    r0: usize,
    rows: usize,
) -> [[*const T; 4]; V] {
    // SAFETY: the clamped rows are < rows; the caller guarantees rows of `stride` at base.
    std::array::from_fn(|v| {
        std::array::from_fn(|k| unsafe { base.add((r0 + 4 * v + k).min(rows - 1) * stride) })
    })
}

/// `acc + isum · (d · hs)`: the oracle's float step for one block of 4 rows.
#[inline(always)]
fn block_step(acc: float32x4_t, isum: int32x4_t, d: float32x4_t, hs: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is baseline on aarch64; register-only.
    unsafe { vfmaq_f32(acc, vcvtq_f32_s32(isum), vmulq_f32(d, hs)) }
}

/// Writes the 4 rows from `r0` in `acc` (+ bias) that are below `rows`, row r of token t to
/// `out.tok[t]` + `o0` + r.
#[inline(always)]
unsafe fn store_rows(
    acc: float32x4_t,
    bias: Option<&[f32]>,
    r0: usize,
    rows: usize,
    out: OutRows<'_>,
    o0: usize,
    t: usize,
) {
    let mut l = [0f32; 4];
    // SAFETY: `l` holds 4 floats; the caller guarantees row o0 + row of token t writable for
    // every row < rows.
    unsafe {
        vst1q_f32(l.as_mut_ptr(), acc);
        for (k, v) in l.iter().enumerate() {
            let row = r0 + k;
            if row < rows {
                // The oracle adds 0.0 without a bias (-0.0 becomes +0.0).
                *out.tok[t].add(o0 + row) = v + bias.map_or(0.0, |b| b[row]);
            }
        }
    }
}

/// One token (`xq` its bytes, `xd` its pair scales) against the tile of rows `r0 .. r0 + 4·V`
/// (clamped), read in place from `blocks` (`nb` blocks of 16 bytes per row) and `scales`;
/// writes row `o0 + row` of `out`'s only token for the rows below `rows`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn decode_tile<D: BlockDot, const V: usize>(
    blocks: *const u8,
    scales: *const u8,
    nb: usize,
    rows: usize,
    r0: usize,
    xq: *const i8,
    xd: *const f32,
    bias: Option<&[f32]>,
    out: OutRows<'_>,
    o0: usize,
    lut: int8x16_t,
) {
    // SAFETY: the caller guarantees `rows` rows of nb blocks and scales, a quantized row of
    // nb.div_ceil(2) pairs, `rows` writable outputs, and the instructions of `D`.
    unsafe {
        let bp = tile_rows::<_, V>(blocks, nb * 16, r0, rows);
        let sp = tile_rows::<_, V>(scales, nb, r0, rows);
        let mut acc = [vdupq_n_f32(0.0); V];
        for p in 0..nb / 2 {
            let x = xq.add(p * PAIR_BYTES);
            let (xe0, xe1, xo0, xo1) = (
                vld1q_s8(x),
                vld1q_s8(x.add(16)),
                vld1q_s8(x.add(32)),
                vld1q_s8(x.add(48)),
            );
            let d0 = vld1q_f32(xd.add(p * PAIR_SCALES));
            let d1 = vld1q_f32(xd.add(p * PAIR_SCALES + 4));
            for v in 0..V {
                let mut w = [[vdupq_n_s8(0); 4]; 4]; // even 0, odd 0, even 1, odd 1 per row
                for k in 0..4 {
                    let (e0, o0) = block_weights(bp[v][k].add(32 * p), lut);
                    let (e1, o1) = block_weights(bp[v][k].add(32 * p + 16), lut);
                    w[0][k] = e0;
                    w[1][k] = o0;
                    w[2][k] = e1;
                    w[3][k] = o1;
                }
                // Both scale bytes of the pair per row: e0 | e1 << 8.
                let e: [u32; 4] = std::array::from_fn(|k| {
                    (sp[v][k].add(2 * p) as *const u16).read_unaligned() as u32
                });
                let e = vld1q_u32(e.as_ptr());
                let hs0 = half_scales4(vandq_u32(e, vdupq_n_u32(0xFF)));
                let hs1 = half_scales4(vshrq_n_u32::<8>(e));
                let i0 = D::rows4(&w[0], &w[1], xe0, xo0);
                let i1 = D::rows4(&w[2], &w[3], xe1, xo1);
                acc[v] = block_step(acc[v], i0, d0, hs0);
                acc[v] = block_step(acc[v], i1, d1, hs1);
            }
        }
        if nb % 2 == 1 {
            // The last pair holds one block; its missing partner takes no float step.
            let (b, p) = (nb - 1, nb / 2);
            let x = xq.add(p * PAIR_BYTES);
            let (xe, xo) = (vld1q_s8(x), vld1q_s8(x.add(32)));
            let d = vld1q_f32(xd.add(p * PAIR_SCALES));
            for v in 0..V {
                let mut w = [[vdupq_n_s8(0); 4]; 2];
                for k in 0..4 {
                    (w[0][k], w[1][k]) = block_weights(bp[v][k].add(16 * b), lut);
                }
                let i = D::rows4(&w[0], &w[1], xe, xo);
                acc[v] = block_step(acc[v], i, d, block_half_scales(&sp[v], b));
            }
        }
        for (v, a) in acc.iter().enumerate() {
            store_rows(*a, bias, r0 + 4 * v, rows, out, o0, 0);
        }
    }
}

/// Decodes the tile of rows `r0 .. r0 + 4·RV` (clamped) into `ws`: per block, for each step
/// s (0..4 the even half's dwords, 4..8 the odd half's) and row vector v, the 16 bytes at
/// `(s · RV + v) · 16` hold rows 4v..4v+4's 4 weight bytes of that step; then their half scales
/// at `(8 · RV + v) · 16`. Blocks follow each other every `RV · BLOCK_VEC_BYTES`.
#[inline(always)]
unsafe fn transpose_tile(
    blocks: *const u8,
    scales: *const u8,
    nb: usize,
    rows: usize,
    r0: usize,
    ws: *mut u8,
    lut: int8x16_t,
) {
    // SAFETY: the caller guarantees `rows` rows of nb blocks and scales and nb · RV ·
    // BLOCK_VEC_BYTES writable bytes at ws.
    unsafe {
        let bp = tile_rows::<_, RV>(blocks, nb * 16, r0, rows);
        let sp = tile_rows::<_, RV>(scales, nb, r0, rows);
        for b in 0..nb {
            let dst = ws.add(b * RV * BLOCK_VEC_BYTES);
            for v in 0..RV {
                let mut e = [vdupq_n_s8(0); 4];
                let mut o = [vdupq_n_s8(0); 4];
                for k in 0..4 {
                    (e[k], o[k]) = block_weights(bp[v][k].add(16 * b), lut);
                }
                for (h, half) in [e, o].iter().enumerate() {
                    for (j, s) in transpose4(half).iter().enumerate() {
                        vst1q_s8(dst.add(((4 * h + j) * RV + v) * 16) as *mut i8, *s);
                    }
                }
                let hs = block_half_scales(&sp[v], b);
                vst1q_f32(dst.add((8 * RV + v) * 16) as *mut f32, hs);
            }
        }
    }
}

/// 4×4 transpose of dwords: result j = `[a[0].j, a[1].j, a[2].j, a[3].j]`.
#[inline(always)]
fn transpose4(a: &[int8x16_t; 4]) -> [int8x16_t; 4] {
    // SAFETY: NEON is baseline on aarch64; register-only.
    unsafe {
        let s: [int32x4_t; 4] = std::array::from_fn(|k| vreinterpretq_s32_s8(a[k]));
        let t0 = vreinterpretq_s64_s32(vtrn1q_s32(s[0], s[1])); // a0.0 a1.0 a0.2 a1.2
        let t1 = vreinterpretq_s64_s32(vtrn2q_s32(s[0], s[1])); // a0.1 a1.1 a0.3 a1.3
        let t2 = vreinterpretq_s64_s32(vtrn1q_s32(s[2], s[3]));
        let t3 = vreinterpretq_s64_s32(vtrn2q_s32(s[2], s[3]));
        [
            vreinterpretq_s8_s64(vtrn1q_s64(t0, t2)),
            vreinterpretq_s8_s64(vtrn1q_s64(t1, t3)),
            vreinterpretq_s8_s64(vtrn2q_s64(t0, t2)),
            vreinterpretq_s8_s64(vtrn2q_s64(t1, t3)),
        ]
    }
}

/// The 4 steps of one half (even or odd) of a block: weights at `wp` (4 steps × RV vectors),
/// the T tokens' 16 activation bytes of that half in `x`.
#[inline(always)]
unsafe fn half_steps<D: BlockDot, const T: usize>(
    acc: &mut [[D::Acc; RV]; T],
    wp: *const i8,
    x: &[int8x16_t; T],
) {
    // SAFETY: the caller guarantees 4 · RV · 16 readable bytes at wp and `D`'s instructions.
    unsafe {
        macro_rules! step {
            ($j:literal) => {
                for v in 0..RV {
                    let w = vld1q_s8(wp.add(($j * RV + v) * 16));
                    for t in 0..T {
                        acc[t][v] = D::step::<$j>(acc[t][v], w, x[t]);
                    }
                }
            };
        }
        step!(0);
        step!(1);
        step!(2);
        step!(3);
    }
}

/// One block of a decoded tile (`wb`) against T tokens: activation bytes at `xq` + t · `rq`
/// (even half; the odd one 32 bytes on), scales at `xd` + t · `rd`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn batch_block<D: BlockDot, const T: usize>(
    acc: &mut [[float32x4_t; RV]; T],
    wb: *const u8,
    xq: *const i8,
    rq: usize,
    xd: *const f32,
    rd: usize,
) {
    // SAFETY: the caller guarantees a decoded block at wb, T quantized rows and `D`'s
    // instructions.
    unsafe {
        let mut isum = [[D::zero(); RV]; T];
        for h in 0..2 {
            let x: [int8x16_t; T] = std::array::from_fn(|t| vld1q_s8(xq.add(t * rq + 32 * h)));
            half_steps::<D, T>(&mut isum, (wb as *const i8).add(h * 4 * RV * 16), &x);
        }
        let hs: [float32x4_t; RV] =
            std::array::from_fn(|v| vld1q_f32(wb.add((8 * RV + v) * 16) as *const f32));
        for t in 0..T {
            let d = vld1q_f32(xd.add(t * rd));
            for v in 0..RV {
                acc[t][v] = block_step(acc[t][v], D::finish(isum[t][v]), d, hs[v]);
            }
        }
    }
}

/// A decoded tile (`ws`, rows `r0 ..`) against T tokens (`xq` + t · `rq` bytes, `xd` + t ·
/// `rd` scales); writes token t0 + t's results to row `o0 + row` of `out` for the rows below
/// `rows`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn batch_tile<D: BlockDot, const T: usize>(
    ws: *const u8,
    nb: usize,
    xq: *const i8,
    rq: usize,
    xd: *const f32,
    rd: usize,
    r0: usize,
    rows: usize,
    bias: Option<&[f32]>,
    out: OutRows<'_>,
    o0: usize,
    t0: usize,
) {
    // SAFETY: the caller guarantees nb decoded blocks at ws, T quantized rows, the outputs
    // and `D`'s instructions.
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); RV]; T];
        let bs = RV * BLOCK_VEC_BYTES;
        for p in 0..nb / 2 {
            let (x, d) = (xq.add(p * PAIR_BYTES), xd.add(p * PAIR_SCALES));
            batch_block::<D, T>(&mut acc, ws.add(2 * p * bs), x, rq, d, rd);
            batch_block::<D, T>(
                &mut acc,
                ws.add((2 * p + 1) * bs),
                x.add(16),
                rq,
                d.add(4),
                rd,
            );
        }
        if nb % 2 == 1 {
            let p = nb / 2;
            let (x, d) = (xq.add(p * PAIR_BYTES), xd.add(p * PAIR_SCALES));
            batch_block::<D, T>(&mut acc, ws.add((nb - 1) * bs), x, rq, d, rd);
        }
        for (t, a) in acc.iter().enumerate() {
            for (v, av) in a.iter().enumerate() {
                store_rows(*av, bias, r0 + 4 * v, rows, out, o0, t0 + t);
            }
        }
    }
}

/// MXFP4 rows (`blocks` [rows, d_in/32, 16], `scales` [rows, d_in/32]) against every row of
/// `xq`; token t's results go to `out.tok[t]` at offsets `o0..o0 + rows`. `scratch` holds a
/// decoded row group for batches.
///
/// # Safety
/// The CPU must have what `D` uses (`dotprod` for [`Sdot`]); `out` as
/// `SimdKernels::q8_mxfp4_rows_to` requires.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn q8_mxfp4_rows<D: BlockDot>(
    blocks: &[u8],
    scales: &[u8],
    xq: &Q8Rows,
    rows: usize,
    bias: Option<&[f32]>,
    out: OutRows<'_>,
    o0: usize,
    scratch: &mut Vec<f32>,
) {
    let (n, d_in) = (xq.n_rows, xq.d_in);
    let nb = d_in / 32;
    let (rb, rq, rd) = (d_in / 2, xq.row_q(), xq.row_d());
    assert!(d_in.is_multiple_of(32) && blocks.len() >= rows * rb && scales.len() >= rows * nb);
    assert!(xq.q.len() >= n * rq && xq.d.len() >= n * rd);
    assert!(out.tok.len() >= n);
    assert!(bias.is_none_or(|b| b.len() >= rows));
    if rows == 0 || n == 0 {
        return;
    }
    let (bp, sp) = (blocks.as_ptr(), scales.as_ptr());
    let (qp, dp) = (xq.q.as_ptr(), xq.d.as_ptr());
    // SAFETY: `D`'s instructions by the caller's contract; every offset is bounded by the
    // asserts above (tile rows past `rows` are clamped, their results dropped).
    unsafe {
        let lut = vld1q_s8(FP4_X2_I8.as_ptr());
        if n == 1 {
            for r0 in (0..rows).step_by(4 * RV_DECODE) {
                decode_tile::<D, RV_DECODE>(bp, sp, nb, rows, r0, qp, dp, bias, out, o0, lut);
            }
            return;
        }
        let tile = 4 * RV;
        // Decode a group of rows, then run every token tile over the whole group.
        let tile_bytes = nb * RV * BLOCK_VEC_BYTES;
        let group_tiles = ROW_GROUP / tile;
        scratch.resize(group_tiles * tile_bytes / 4, 0.0);
        let ws = scratch.as_mut_ptr() as *mut u8;
        for g0 in (0..rows).step_by(ROW_GROUP) {
            let gr = ROW_GROUP.min(rows - g0);
            let tiles = gr.div_ceil(tile);
            for k in 0..tiles {
                transpose_tile(bp, sp, nb, rows, g0 + k * tile, ws.add(k * tile_bytes), lut);
            }
            let mut t = 0;
            while t < n {
                let tt = D::T_BATCH.min(n - t);
                let (q, d) = (qp.add(t * rq), dp.add(t * rd));
                for k in 0..tiles {
                    let (w, r0) = (ws.add(k * tile_bytes) as *const u8, g0 + k * tile);
                    match tt {
                        4 if D::T_BATCH >= 4 => {
                            batch_tile::<D, 4>(w, nb, q, rq, d, rd, r0, rows, bias, out, o0, t)
                        }
                        3 if D::T_BATCH >= 3 => {
                            batch_tile::<D, 3>(w, nb, q, rq, d, rd, r0, rows, bias, out, o0, t)
                        }
                        2 => batch_tile::<D, 2>(w, nb, q, rq, d, rd, r0, rows, bias, out, o0, t),
                        _ => batch_tile::<D, 1>(w, nb, q, rq, d, rd, r0, rows, bias, out, o0, t),
                    }
                }
                t += tt;
            }
        }
    }
}

/// [`q8_mxfp4_rows`] with `sdot`.
///
/// # Safety
/// The CPU must have `dotprod`; `out` as `SimdKernels::q8_mxfp4_rows_to` requires.
#[target_feature(enable = "dotprod")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn q8_mxfp4_rows_sdot(
    blocks: &[u8],
    scales: &[u8],
    xq: &Q8Rows,
    rows: usize,
    bias: Option<&[f32]>,
    out: OutRows<'_>,
    o0: usize,
    scratch: &mut Vec<f32>,
) {
    // SAFETY: `dotprod` by the caller's contract.
    unsafe { q8_mxfp4_rows::<Sdot>(blocks, scales, xq, rows, bias, out, o0, scratch) }
}

/// [`q8_mxfp4_rows`] with widening multiplies (any NEON CPU).
///
/// # Safety
/// `out` as `SimdKernels::q8_mxfp4_rows_to` requires.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn q8_mxfp4_rows_smull(
    blocks: &[u8],
    scales: &[u8],
    xq: &Q8Rows,
    rows: usize,
    bias: Option<&[f32]>,
    out: OutRows<'_>,
    o0: usize,
    scratch: &mut Vec<f32>,
) {
    // SAFETY: `Smull` needs only NEON, baseline on aarch64; the output contract is forwarded.
    unsafe { q8_mxfp4_rows::<Smull>(blocks, scales, xq, rows, bias, out, o0, scratch) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::HALF_SCALE;

    /// The vector half scales equal the table for every exponent byte.
    #[test]
    fn half_scales4_equal_the_table() {
        for e in 0..256u32 {
            let mut l = [0f32; 4];
            // SAFETY: `l` holds 4 floats.
            unsafe { vst1q_f32(l.as_mut_ptr(), half_scales4(vdupq_n_u32(e))) };
            assert_eq!(l[0].to_bits(), HALF_SCALE[e as usize].to_bits(), "e = {e}");
        }
    }
}
