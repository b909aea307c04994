//! AVX2 kernels of the 8-bit integer MXFP4 path (x86_64 only): int8 activations ([`Q8Rows`])
//! times FP4 codes widened to int8, run at the caller's choice by `q8::matmul_q8_mxfp4w`. Owns
//! only the tiles; the layout, the numerics contract and the scalar oracle are in `q8.rs`, and
//! every kernel here gives the oracle's bits.
//!
//! Per pair of 32-blocks: 32 packed bytes load in one go; their low nibbles are the even
//! elements of both blocks, their high nibbles the odd ones, and a 16-entry table
//! (`_mm256_shuffle_epi8`) turns each code into `u = 2·value + 12`, an unsigned byte in 0..=24.
//! `maddubs(u, q)` needs one unsigned operand: that is u (cheaper here than the usual sign trick,
//! `abs` of one operand and `sign` moved onto the other, which costs two more operations per
//! product on this 128-bit-pipe Zen 1, where the integer multiplies are the bottleneck). Products
//! of 24 · 127 pair up to at most 6096 per 16-bit lane, and the even and odd halves add to at
//! most 12192, so nothing saturates; `madd` with ones gives the exact 32-bit sum of elements
//! 8l..8l+8 in lane l of each 128-bit half (one half per block), and adding the token's
//! precomputed `-12 · Σq` of those elements (`Q8Rows::c`) leaves exactly `Σ 2·value·q`.
//! One convert and one FMA per pair then apply `activation scale × weight scale / 2`.
//!
//! Decode (one token): 4 weight rows per pass, decoded straight from the packed bytes, the
//! weights two passes ahead prefetched (decode is close to memory-bound here). Batches: a group
//! of 16 weight rows is decoded once into a per-task scratch (offset weights, scales) and every
//! tile of 4 tokens runs over the whole group, its activations staying in L1. (Prefetching the
//! next group during a batch was measured slower: it evicts those activations.)

use std::arch::x86_64::*;

use crate::dtype::HALF_SCALE;
use crate::matmul::reduce8;
use crate::q8::{Q8Rows, FP4_X2_U8, PAIR_BYTES, PAIR_SCALES};

/// Weight rows per decode pass (independent accumulators sharing one activation load).
const R_DECODE: usize = 4;
/// Tokens per batch pass over one decoded weight row (4 accumulators plus the row's 4 weight
/// vectors and its scales fit in the 16 ymm registers).
const T_BATCH: usize = 4;
/// f32 slots per pair in the decoded-row scratch: 64 bytes of offset weights (even, odd
/// halves) and 8 half scales.
const SCRATCH_PAIR: usize = 16 + 8;
/// How many decode tiles ahead the one-token kernel prefetches its weights.
const PREFETCH_TILES: usize = 2;
/// Weight rows decoded together in batches (16 rows of 2880 inputs: ~69 KB, L2-resident).
const ROW_GROUP: usize = 16;

/// Offset weights (`2·value + 12`, unsigned) of the pair of blocks at `p`: (even elements of
/// both blocks, odd elements of both blocks). `full` false: only one block (16 bytes) exists
/// at `p`; the missing one reads as code 0 (its activations are zero, so it adds nothing).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn pair_weights(p: *const u8, full: bool) -> (__m256i, __m256i) {
    // SAFETY: the caller guarantees 32 readable bytes at p (16 when !full).
    unsafe {
        let lut = _mm256_broadcastsi128_si256(_mm_loadu_si128(FP4_X2_U8.as_ptr() as *const _));
        let m = _mm256_set1_epi8(0x0F);
        let v = if full {
            _mm256_loadu_si256(p as *const __m256i)
        } else {
            _mm256_set_m128i(_mm_setzero_si128(), _mm_loadu_si128(p as *const __m128i))
        };
        let lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, m));
        let hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16::<4>(v), m));
        (lo, hi)
    }
}

/// `[hs(blk) ×4, hs(blk + 1) ×4]` (half E8M0 scales), the second zero when `!full`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn pair_half_scales(sc: *const u8, full: bool) -> __m256 {
    // SAFETY: the caller guarantees 2 readable scale bytes at sc (1 when !full).
    unsafe {
        let h0 = HALF_SCALE[*sc as usize];
        let h1 = if full {
            HALF_SCALE[*sc.add(1) as usize]
        } else {
            0.0
        };
        _mm256_set_m128(_mm_set1_ps(h1), _mm_set1_ps(h0))
    }
}

/// Exact i32 lane sums `Σ 2·value·q` of one pair: offset weights `u*`, activations `x*` (even
/// and odd halves), the activations' offset correction `c`.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn pair_dot(ulo: __m256i, uhi: __m256i, xlo: __m256i, xhi: __m256i, c: __m256i) -> __m256i {
    let plo = _mm256_maddubs_epi16(ulo, xlo);
    let phi = _mm256_maddubs_epi16(uhi, xhi);
    let s = _mm256_madd_epi16(_mm256_add_epi16(plo, phi), _mm256_set1_epi16(1));
    _mm256_add_epi32(s, c)
}

/// One token (`xq` row bytes, `xd` its pair scales, `xc` its corrections) against R MXFP4 rows (`blocks` with `nb`
/// blocks per row, `scales`); writes the R dots + bias to `out[0..R]`.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // r indexes acc and the weight rows
#[allow(clippy::too_many_arguments)]
unsafe fn dot_rows<const R: usize>(
    blocks: *const u8,
    scales: *const u8,
    nb: usize,
    xq: *const i8,
    xd: *const f32,
    xc: *const i32,
    bias: Option<&[f32]>,
    out: *mut f32,
) {
    let np = nb.div_ceil(2);
    let rb = nb * 16;
    let mut acc = [_mm256_setzero_ps(); R];
    // SAFETY: the caller guarantees R rows of nb blocks and nb scales, a quantized row of np
    // pairs, and R writable outputs. Prefetches are hints and never fault, even past the end.
    unsafe {
        // The R rows are contiguous (R · rb bytes): while this tile computes, request the tile
        // `PREFETCH_TILES` ahead, two cache lines per pair.
        let ahead = blocks.wrapping_add(PREFETCH_TILES * R * rb);
        // Bytes of that tile per pair, divided once: a division per pair (runtime divisor)
        // ties up Zen 1's divider, which is slow and not pipelined.
        let step = R * rb / np;
        for p in 0..np {
            let line = ahead.wrapping_add((p * step) & !63);
            _mm_prefetch::<_MM_HINT_T0>(line as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(line.wrapping_add(64) as *const i8);
            let full = 2 * p + 1 < nb;
            let xlo = _mm256_loadu_si256(xq.add(p * PAIR_BYTES) as *const __m256i);
            let xhi = _mm256_loadu_si256(xq.add(p * PAIR_BYTES + 32) as *const __m256i);
            let dx = _mm256_loadu_ps(xd.add(p * PAIR_SCALES));
            let c = _mm256_loadu_si256(xc.add(p * PAIR_SCALES) as *const __m256i);
            for r in 0..R {
                let (ulo, uhi) = pair_weights(blocks.add(r * rb + 32 * p), full);
                let i = pair_dot(ulo, uhi, xlo, xhi, c);
                let hs = pair_half_scales(scales.add(r * nb + 2 * p), full);
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(dx, hs), acc[r]);
            }
        }
        for r in 0..R {
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r]);
            *out.add(r) = reduce8(&lanes) + bias.map_or(0.0, |b| b[r]);
        }
    }
}

/// Decodes one MXFP4 row (`nb` blocks at `blocks`, scales at `scales`) into `ws` (f32
/// [np, SCRATCH_PAIR], see [`SCRATCH_PAIR`]).
#[target_feature(enable = "avx2,fma")]
unsafe fn decode_row(blocks: *const u8, scales: *const u8, nb: usize, ws: *mut f32) {
    // SAFETY: the caller guarantees nb blocks and scales, and np * SCRATCH_PAIR writable f32.
    unsafe {
        for p in 0..nb.div_ceil(2) {
            let full = 2 * p + 1 < nb;
            let (ulo, uhi) = pair_weights(blocks.add(32 * p), full);
            let d = ws.add(p * SCRATCH_PAIR);
            let db = d as *mut __m256i;
            _mm256_storeu_si256(db, ulo);
            _mm256_storeu_si256(db.add(1), uhi);
            _mm256_storeu_ps(d.add(16), pair_half_scales(scales.add(2 * p), full));
        }
    }
}

/// One decoded row (`ws`) against T tokens (`xq` + t * `rq` bytes, `xd` and `xc` + t * `rd`
/// scales and corrections);
/// writes token t's dot + `bias` to `out[t]`.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn row_tokens<const T: usize>(
    ws: *const f32,
    np: usize,
    xq: *const i8,
    rq: usize,
    xd: *const f32,
    xc: *const i32,
    rd: usize,
    bias: f32,
    out: *mut f32,
) {
    let mut acc = [_mm256_setzero_ps(); T];
    // SAFETY: the caller guarantees np decoded pairs at ws, T quantized rows, T outputs.
    unsafe {
        for p in 0..np {
            let w = ws.add(p * SCRATCH_PAIR);
            let wb = w as *const __m256i;
            let ulo = _mm256_loadu_si256(wb);
            let uhi = _mm256_loadu_si256(wb.add(1));
            let hs = _mm256_loadu_ps(w.add(16));
            for (t, a) in acc.iter_mut().enumerate() {
                let xp = xq.add(t * rq + p * PAIR_BYTES);
                let xlo = _mm256_loadu_si256(xp as *const __m256i);
                let xhi = _mm256_loadu_si256(xp.add(32) as *const __m256i);
                let dx = _mm256_loadu_ps(xd.add(t * rd + p * PAIR_SCALES));
                let c = _mm256_loadu_si256(xc.add(t * rd + p * PAIR_SCALES) as *const __m256i);
                let i = pair_dot(ulo, uhi, xlo, xhi, c);
                *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(dx, hs), *a);
            }
        }
        for (t, a) in acc.iter().enumerate() {
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), *a);
            *out.add(t) = reduce8(&lanes) + bias;
        }
    }
}

/// MXFP4 rows (`blocks` [rows, d_in/32, 16], `scales` [rows, d_in/32]) against every row of
/// `xq`; `out` f32 [rows, n] (by output row). `scratch` holds one decoded row for batches.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
pub(crate) unsafe fn q8_mxfp4_rows(
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
    assert!(xq.q.len() >= n * rq && xq.d.len() >= n * rd && xq.c.len() >= n * rd);
    assert!(out.len() >= rows * n);
    assert!(bias.is_none_or(|b| b.len() >= rows));
    let (bp, sp) = (blocks.as_ptr(), scales.as_ptr());
    let (qp, dp, cp) = (xq.q.as_ptr(), xq.d.as_ptr(), xq.c.as_ptr());
    // SAFETY: AVX2+FMA by the caller's contract; every offset is bounded by the asserts above.
    unsafe {
        if n == 1 {
            let mut r = 0;
            while r + R_DECODE <= rows {
                let b = bias.map(|b| &b[r..]);
                let o = out.as_mut_ptr().add(r);
                dot_rows::<R_DECODE>(bp.add(r * rb), sp.add(r * nb), nb, qp, dp, cp, b, o);
                r += R_DECODE;
            }
            while r < rows {
                let b = bias.map(|b| &b[r..]);
                let o = out.as_mut_ptr().add(r);
                dot_rows::<1>(bp.add(r * rb), sp.add(r * nb), nb, qp, dp, cp, b, o);
                r += 1;
            }
            return;
        }
        // Decode a group of rows, then run every token tile over the whole group: a tile's
        // activations stay in L1 while the group's decoded rows stream from L2.
        let per_row = np * SCRATCH_PAIR;
        scratch.resize(ROW_GROUP.min(rows) * per_row, 0.0);
        let ws = scratch.as_mut_ptr();
        let mut g0 = 0;
        while g0 < rows {
            let gr = ROW_GROUP.min(rows - g0);
            for r in 0..gr {
                let row = g0 + r;
                decode_row(bp.add(row * rb), sp.add(row * nb), nb, ws.add(r * per_row));
            }
            let mut t = 0;
            while t < n {
                let tt = T_BATCH.min(n - t);
                let (q, d, c) = (qp.add(t * rq), dp.add(t * rd), cp.add(t * rd));
                for r in 0..gr {
                    let row = g0 + r;
                    let w = ws.add(r * per_row);
                    let b = bias.map_or(0.0, |b| b[row]);
                    let o = out.as_mut_ptr().add(row * n + t);
                    match tt {
                        T_BATCH => row_tokens::<T_BATCH>(w, np, q, rq, d, c, rd, b, o),
                        1 => row_tokens::<1>(w, np, q, rq, d, c, rd, b, o),
                        2 => row_tokens::<2>(w, np, q, rq, d, c, rd, b, o),
                        _ => row_tokens::<3>(w, np, q, rq, d, c, rd, b, o),
                    }
                }
                t += tt;
            }
            g0 += gr;
        }
    }
}
