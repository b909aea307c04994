//! AVX2 kernels of the 8-bit integer MXFP4 path (x86_64 only): int8 activations ([`Q8Rows`])
//! times FP4 codes widened to int8, run at the caller's choice by `q8::matmul_q8_mxfp4w`. Owns
//! only the tiles; the layout, the numerics contract (one float step per 32-block) and the
//! scalar oracle are in `q8.rs`, and every kernel here gives the oracle's bits.
//!
//! Weights: a 16-entry table (`_mm256_shuffle_epi8`) turns each FP4 code into
//! `u = 2·value + 12`, an unsigned byte in 0..=24, so `maddubs(u, q)` multiplies them with the
//! signed activations directly (the usual sign trick costs two more operations per product on
//! Zen 1, where the integer multiplies are the bottleneck); the token's `-12 · Σq` per block
//! (`Q8Rows::cb`) is added to each block sum. Bounds: a `maddubs` lane is at most
//! 2 · 24 · 127 = 6096, so up to 5 of them add in 16 bits (30480 < 32767) before `madd` with
//! ones widens to 32.
//!
//! The float step (`fma(isum, d · hs, acc)` per block) runs with output rows in vector lanes:
//!
//! - One token (decode, weights read in place): per pass 4 rows; for a pair of blocks each
//!   row's 32 packed bytes give two `maddubs` (even and odd elements of both blocks, in the
//!   activations' order), added in 16 bits; an unpack + add tree (no `vphaddd`, slow on Zen 1)
//!   folds the 4 rows into one vector `[block 2p of rows 0..4 | block 2p+1 of rows 0..4]`,
//!   with one `madd` per 2 rows (2.5 multiplies per row and pair, 3 in the per-lane scheme).
//!   Then one convert, one multiply and two 128-bit FMAs (block 2p, then 2p+1) serve the 4
//!   rows. The half scales come from the E8M0 bytes by shift, multiply and max (no table load
//!   per row; one 4-byte load per row serves two pairs); the weights two passes ahead are
//!   prefetched.
//! - Batches (2 tokens or more): each group of 8 rows is decoded once into a per-task scratch
//!   in a transposed layout: per block, 8 vectors where lane r holds row r's 4 weight bytes of
//!   that step (the order of 4 consecutive activation bytes), then the 8 rows' half scales.
//!   A token's 4 matching activation bytes are broadcast, so each `maddubs` + 16-bit add
//!   accumulates 8 rows' block sums with no horizontal work; 8 steps (two `madd`) make a
//!   block, and its float step is one convert, multiply and FMA for 8 rows. Tiles of 8 rows ×
//!   4 tokens run over 4 decoded groups while the tokens' activations stay in L1. The decode
//!   reads 8 rows at once, short streams the hardware prefetchers follow poorly: it
//!   prefetches the next group, and the first token tile requests the next groups into L2.
//!
//! Measured on an AVX-512 Xeon forced to this level (one thread, [5760, 2880] experts),
//! against the earlier per-lane scheme: 1 token as fast with the weights from memory (7 %
//! faster from L2), 8 tokens 1.4–1.6× and 64 tokens 1.7× faster.

use std::arch::x86_64::*;

use crate::cpu::OutRows;
use crate::dtype::HALF_SCALE;
use crate::q8::{Q8Rows, FP4_X2_U8, PAIR_BYTES, PAIR_SCALES};

/// Weight rows per decode pass (the lanes of one 128-bit float step).
const R_DECODE: usize = 4;
/// How many decode passes ahead the one-token kernel prefetches its weights.
const PREFETCH_TILES: usize = 2;
/// Rows per transposed group (the 8 i32 lanes of a ymm).
const LANES: usize = 8;
/// Tokens per batch tile (4 accumulators of each kind fit the 16 ymm registers).
const T_BATCH: usize = 4;
/// Row groups decoded together in batches (4 × 8 rows at 2880 inputs: ~104 KB, L2-resident).
const GROUPS: usize = 4;
/// Scratch f32 per block and row group: 8 steps of 8 rows' 4 weight bytes, 8 half scales.
const BLOCK_F32: usize = 9 * LANES;

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

/// `HALF_SCALE[e]` of 8 E8M0 bytes in i32 lanes, exactly: `e << 23` is 2^(e-127) for
/// e = 1..=254 (and +inf for 255), halved exactly; e = 0 gives 0, raised to 2^-128 by the max.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn half_scales(e: __m256i) -> __m256 {
    let y = _mm256_mul_ps(
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e)),
        _mm256_set1_ps(0.5),
    );
    _mm256_max_ps(y, _mm256_set1_ps(HALF_SCALE[0]))
}

/// One row's 16-bit partial sums at a block pair: lane k of the low (high) half holds 4
/// products of block 2p (2p+1), at most 4 · 6096 / 2 = 12192.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn row_pair_i16(p: *const u8, full: bool, xlo: __m256i, xhi: __m256i) -> __m256i {
    // SAFETY: as `pair_weights`.
    let (ulo, uhi) = unsafe { pair_weights(p, full) };
    _mm256_add_epi16(
        _mm256_maddubs_epi16(ulo, xlo),
        _mm256_maddubs_epi16(uhi, xhi),
    )
}

/// The 32-bit sums of 4 rows' 16-bit partials (see [`row_pair_i16`]):
/// `[block 2p of rows 0..4 | block 2p+1 of rows 0..4]`. Unpack + add: the 16-bit adds of the
/// first level stay ≤ 24384, so one `madd` widens two rows.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn fold4(v: [__m256i; 4]) -> __m256i {
    let ones = _mm256_set1_epi16(1);
    let half = |a: __m256i, b: __m256i| {
        let s = _mm256_add_epi16(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
        _mm256_madd_epi16(s, ones)
    };
    let (s01, s23) = (half(v[0], v[1]), half(v[2], v[3]));
    _mm256_add_epi32(
        _mm256_unpacklo_epi64(s01, s23),
        _mm256_unpackhi_epi64(s01, s23),
    )
}

/// The half scales of 4 rows (`srows[i]`: row i's scale bytes) at block pairs p and p + 1
/// (`[hs(2p) of rows 0..4 | hs(2p+1) of rows 0..4]`, then the same for p + 1): one 4-byte
/// load per row serves two pairs.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn half_scales4x2(srows: &[*const u8; R_DECODE], p: usize) -> (__m256, __m256) {
    // SAFETY: the caller guarantees blocks 2p..2p + 4 in every row.
    let e = srows.map(|s| unsafe { (s.add(2 * p) as *const i32).read_unaligned() });
    // [e(2p) of rows 0..4, e(2p+1) …, e(2p+2) …, e(2p+3) …] as bytes.
    let e = _mm_shuffle_epi8(
        _mm_setr_epi32(e[0], e[1], e[2], e[3]),
        _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15),
    );
    (
        half_scales(_mm256_cvtepu8_epi32(e)),
        half_scales(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(e, e))),
    )
}

/// The half scales of 4 rows at block pair p, as [`half_scales4x2`]'s first; when `!FULL`
/// only block 2p exists (the second half is then unused).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn half_scales4<const FULL: bool>(srows: &[*const u8; R_DECODE], p: usize) -> __m256 {
    // SAFETY: the caller guarantees blocks 2p and (when FULL) 2p + 1 in every row.
    let e = srows.map(|s| unsafe {
        if FULL {
            (s.add(2 * p) as *const u16).read_unaligned() as i32
        } else {
            *s.add(2 * p) as i32
        }
    });
    let e = _mm_shuffle_epi8(
        _mm_setr_epi32(e[0], e[1], e[2], e[3]),
        _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, -1, -1, -1, -1, -1, -1, -1, -1),
    );
    half_scales(_mm256_cvtepu8_epi32(e))
}

/// One token against 4 MXFP4 rows (`rows[i]`: its packed bytes) at block pair `p`, with the
/// rows' half scales `hs` there: `acc = fma(isum, d · hs, acc)` for block 2p, then 2p+1 (only
/// when `FULL`). `xq`, `xd` the token's quantized row and scales, `cbv` its corrections as
/// `[cb(2p) ×4, cb(2p+1) ×4]` per pair.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn decode_step<const FULL: bool>(
    rows: &[*const u8; R_DECODE],
    p: usize,
    hs: __m256,
    xq: *const i8,
    xd: *const f32,
    cbv: *const i32,
    acc: __m128,
) -> __m128 {
    // SAFETY: the caller guarantees the pair exists in every row, the token's row and cbv.
    unsafe {
        let xlo = _mm256_loadu_si256(xq.add(p * PAIR_BYTES) as *const __m256i);
        let xhi = _mm256_loadu_si256(xq.add(p * PAIR_BYTES + 32) as *const __m256i);
        let mut v = [_mm256_setzero_si256(); R_DECODE];
        for (vi, r) in v.iter_mut().zip(rows) {
            *vi = row_pair_i16(r.add(32 * p), FULL, xlo, xhi);
        }
        let isum = _mm256_add_epi32(
            fold4(v),
            _mm256_loadu_si256(cbv.add(p * PAIR_SCALES) as *const __m256i),
        );
        let s = _mm256_mul_ps(_mm256_loadu_ps(xd.add(p * PAIR_SCALES)), hs);
        let f = _mm256_cvtepi32_ps(isum);
        let acc = _mm_fmadd_ps(_mm256_castps256_ps128(f), _mm256_castps256_ps128(s), acc);
        if FULL {
            _mm_fmadd_ps(
                _mm256_extractf128_ps::<1>(f),
                _mm256_extractf128_ps::<1>(s),
                acc,
            )
        } else {
            acc
        }
    }
}

/// One token against 4 rows: `rows`/`srows` as in [`decode_step`]; writes the 4 dots + `bias`
/// to `out[0..valid]` (rows past `valid` repeat the last one and are dropped). `ahead`: where
/// the weights `PREFETCH_TILES` passes on start (`R_DECODE · rb` bytes, a hint only).
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn dot4(
    rows: [*const u8; R_DECODE],
    srows: [*const u8; R_DECODE],
    nb: usize,
    ahead: *const u8,
    xq: *const i8,
    xd: *const f32,
    cbv: *const i32,
    bias: [f32; R_DECODE],
    out: *mut f32,
    valid: usize,
) {
    let np = nb.div_ceil(2);
    let mut acc = _mm_setzero_ps();
    // SAFETY: the caller guarantees 4 rows of nb blocks and nb scales, a token row of np pairs
    // with np · 8 corrections at cbv, and `valid` writable outputs. Prefetches never fault.
    unsafe {
        // Bytes of that tile per pair, divided once: a division per pair (runtime divisor)
        // ties up Zen 1's divider, which is slow and not pipelined.
        let step = R_DECODE * nb * 16 / np;
        let prefetch = |p: usize| {
            let line = ahead.wrapping_add((p * step) & !63);
            _mm_prefetch::<_MM_HINT_T0>(line as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(line.wrapping_add(64) as *const i8);
        };
        let full = nb / 2;
        let mut p = 0;
        while p + 2 <= full {
            prefetch(p);
            prefetch(p + 1);
            let (h0, h1) = half_scales4x2(&srows, p);
            acc = decode_step::<true>(&rows, p, h0, xq, xd, cbv, acc);
            acc = decode_step::<true>(&rows, p + 1, h1, xq, xd, cbv, acc);
            p += 2;
        }
        if p < full {
            prefetch(p);
            let hs = half_scales4::<true>(&srows, p);
            acc = decode_step::<true>(&rows, p, hs, xq, xd, cbv, acc);
        }
        if nb % 2 == 1 {
            let hs = half_scales4::<false>(&srows, full);
            acc = decode_step::<false>(&rows, full, hs, xq, xd, cbv, acc);
        }
        let mut lanes = [0f32; R_DECODE];
        _mm_storeu_ps(lanes.as_mut_ptr(), acc);
        for i in 0..valid {
            *out.add(i) = lanes[i] + bias[i];
        }
    }
}

/// The 8×8 transpose of i32 lanes: out[k] lane r = v[r] lane k.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn transpose8(v: [__m256i; LANES]) -> [__m256i; LANES] {
    let mut t = [_mm256_setzero_si256(); LANES];
    for i in 0..4 {
        t[2 * i] = _mm256_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
    }
    // u[k] (k < 4) = [dword k of rows 0..4 | dword k + 4 of rows 0..4], u[4 + k]: rows 4..8.
    let mut u = [_mm256_setzero_si256(); LANES];
    for i in 0..2 {
        let (a, b) = (t[4 * i], t[4 * i + 2]);
        let (c, d) = (t[4 * i + 1], t[4 * i + 3]);
        u[4 * i] = _mm256_unpacklo_epi64(a, b);
        u[4 * i + 1] = _mm256_unpackhi_epi64(a, b);
        u[4 * i + 2] = _mm256_unpacklo_epi64(c, d);
        u[4 * i + 3] = _mm256_unpackhi_epi64(c, d);
    }
    let mut out = [_mm256_setzero_si256(); LANES];
    for k in 0..4 {
        out[k] = _mm256_permute2x128_si256::<0x20>(u[k], u[k + 4]);
        out[k + 4] = _mm256_permute2x128_si256::<0x31>(u[k], u[k + 4]);
    }
    out
}

/// Decodes 8 MXFP4 rows (`rows[r]`, `srows[r]`: packed bytes and scales of `nb` blocks) into
/// `ws` (f32 [nb, BLOCK_F32]): per block, step j (0..8) is the vector whose lane r holds row
/// r's 4 offset weights that multiply the activation bytes at `step_offset(b, j)`; then the 8
/// half scales. `ahead`: the next group's packed bytes (8 · 16 · nb, a hint only), requested
/// a slice per pair: 8 short row streams at once train the hardware prefetchers poorly.
#[target_feature(enable = "avx2,fma")]
unsafe fn decode_group(
    rows: &[*const u8; LANES],
    srows: &[*const u8; LANES],
    nb: usize,
    ahead: *const u8,
    ws: *mut f32,
) {
    // SAFETY: the caller guarantees nb blocks and scales per row and nb · BLOCK_F32 writable
    // f32 at ws. Prefetches never fault.
    unsafe {
        for p in 0..nb.div_ceil(2) {
            for l in 0..4 {
                let line = ahead.wrapping_add(256 * p + 64 * l);
                _mm_prefetch::<_MM_HINT_T0>(line as *const i8);
            }
            let full = 2 * p + 1 < nb;
            let mut lo = [_mm256_setzero_si256(); LANES];
            let mut hi = [_mm256_setzero_si256(); LANES];
            for r in 0..LANES {
                (lo[r], hi[r]) = pair_weights(rows[r].add(32 * p), full);
            }
            // Dword k < 4 of `lo` (`hi`): even (odd) elements of block 2p, k ≥ 4: of block
            // 2p + 1; steps k % 4 (4 + k % 4).
            for (half, v) in [lo, hi].into_iter().enumerate() {
                let d = transpose8(v);
                for (k, dk) in d.iter().enumerate() {
                    let b = 2 * p + k / 4;
                    if b < nb {
                        let dst = ws.add(b * BLOCK_F32 + (4 * half + k % 4) * LANES);
                        _mm256_storeu_si256(dst as *mut __m256i, *dk);
                    }
                }
            }
            // [hs(2p) | hs(2p+1)] of rows 0..4 and of rows 4..8, regrouped per block.
            let (s0, s1): ([_; 4], [_; 4]) = (
                [srows[0], srows[1], srows[2], srows[3]],
                [srows[4], srows[5], srows[6], srows[7]],
            );
            let (h0, h1) = if full {
                (half_scales4::<true>(&s0, p), half_scales4::<true>(&s1, p))
            } else {
                (half_scales4::<false>(&s0, p), half_scales4::<false>(&s1, p))
            };
            let hs = ws.add(2 * p * BLOCK_F32 + 8 * LANES);
            _mm256_storeu_ps(hs, _mm256_permute2f128_ps::<0x20>(h0, h1));
            if full {
                let hs = hs.add(BLOCK_F32);
                _mm256_storeu_ps(hs, _mm256_permute2f128_ps::<0x31>(h0, h1));
            }
        }
    }
}

/// Byte offset, in a token's quantized row, of the 4 activations of step `j` (0..8) of block
/// `b`: even elements first (the pair's first 32 bytes), then odd ones.
#[inline(always)]
fn step_offset(b: usize, j: usize) -> usize {
    (b / 2) * PAIR_BYTES + (b % 2) * 16 + (j / 4) * 32 + (j % 4) * 4
}

/// A decoded row group (`ws`, see [`decode_group`]) against T tokens (`xq` + t · `rq` bytes,
/// `xd` + t · `rd` scales, `cb` + t · `rcb` corrections): lane r of `acc[t]` is row r's dot
/// with token t. `pf`, if not null: packed bytes (128 · nb) to request into L2 meanwhile, two
/// lines per block, so the next groups' decode does not wait on memory.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn group_tokens<const T: usize>(
    ws: *const f32,
    nb: usize,
    xq: *const i8,
    rq: usize,
    xd: *const f32,
    rd: usize,
    cb: *const i32,
    rcb: usize,
    pf: *const u8,
) -> [__m256; T] {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); T];
    // SAFETY: the caller guarantees nb decoded blocks at ws and T token rows. Prefetches
    // never fault.
    unsafe {
        for b in 0..nb {
            if !pf.is_null() {
                let line = pf.wrapping_add(128 * b);
                _mm_prefetch::<_MM_HINT_T1>(line as *const i8);
                _mm_prefetch::<_MM_HINT_T1>(line.wrapping_add(64) as *const i8);
            }
            let w = ws.add(b * BLOCK_F32);
            let mut isum = [_mm256_setzero_si256(); T];
            for h in 0..2 {
                // 4 steps per 16-bit sum: ≤ 4 · 6096, no saturation.
                let mut a16 = [_mm256_setzero_si256(); T];
                for j in 4 * h..4 * h + 4 {
                    let wj = _mm256_loadu_si256(w.add(j * LANES) as *const __m256i);
                    let off = step_offset(b, j);
                    for (t, a) in a16.iter_mut().enumerate() {
                        let x = (xq.add(t * rq + off) as *const i32).read_unaligned();
                        let p = _mm256_maddubs_epi16(wj, _mm256_set1_epi32(x));
                        *a = _mm256_add_epi16(*a, p);
                    }
                }
                for (s, a) in isum.iter_mut().zip(&a16) {
                    *s = _mm256_add_epi32(*s, _mm256_madd_epi16(*a, ones));
                }
            }
            let hs = _mm256_loadu_ps(w.add(8 * LANES));
            let ds = (b / 2) * PAIR_SCALES + (b % 2) * 4;
            for (t, (a, s)) in acc.iter_mut().zip(&isum).enumerate() {
                let c = _mm256_set1_epi32(*cb.add(t * rcb + b));
                let f = _mm256_cvtepi32_ps(_mm256_add_epi32(*s, c));
                let sc = _mm256_mul_ps(_mm256_set1_ps(*xd.add(t * rd + ds)), hs);
                *a = _mm256_fmadd_ps(f, sc, *a);
            }
        }
    }
    acc
}

/// Runs [`group_tokens`] for tokens `t0..t0 + T` and writes the dots + bias of rows `r0 + i`
/// below `rows` to `out.tok[t0 + t]` at offset `o0 + r0 + i`.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const T: usize>(
    ws: *const f32,
    nb: usize,
    xq: &Q8Rows,
    t0: usize,
    r0: usize,
    rows: usize,
    bias: Option<&[f32]>,
    out: OutRows<'_>,
    o0: usize,
    pf: *const u8,
) {
    let (rq, rd, rcb) = (xq.row_q(), xq.row_d(), xq.row_blocks());
    // SAFETY: the caller guarantees the group at ws, tokens t0..t0 + T of xq and their output
    // rows o0..o0 + rows.
    unsafe {
        let (q, d, c) = (
            xq.q.as_ptr().add(t0 * rq),
            xq.d.as_ptr().add(t0 * rd),
            xq.cb.as_ptr().add(t0 * rcb),
        );
        let acc = group_tokens::<T>(ws, nb, q, rq, d, rd, c, rcb, pf);
        for (t, a) in acc.iter().enumerate() {
            let mut lanes = [0f32; LANES];
            _mm256_storeu_ps(lanes.as_mut_ptr(), *a);
            for (i, l) in lanes.iter().enumerate().take(rows - r0) {
                *out.tok[t0 + t].add(o0 + r0 + i) = l + bias.map_or(0.0, |b| b[r0 + i]);
            }
        }
    }
}

/// MXFP4 rows (`blocks` [rows, d_in/32, 16], `scales` [rows, d_in/32]) against every row of
/// `xq`; token t's results go to `out.tok[t]` at offsets `o0..o0 + rows`. `scratch`: the
/// token's pair corrections (one token) or the decoded row groups (batches).
///
/// # Safety
/// The CPU must have AVX2 and FMA; `out` as `SimdKernels::q8_mxfp4_rows_to` requires.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn q8_mxfp4_rows(
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
    let np = xq.n_pairs();
    let (rb, rq, rd, rcb) = (d_in / 2, xq.row_q(), xq.row_d(), xq.row_blocks());
    assert!(d_in.is_multiple_of(32) && blocks.len() >= rows * rb && scales.len() >= rows * nb);
    assert!(xq.q.len() >= n * rq && xq.d.len() >= n * rd && xq.cb.len() >= n * rcb);
    assert!(out.tok.len() >= n);
    assert!(bias.is_none_or(|b| b.len() >= rows));
    if rows == 0 || n == 0 {
        return;
    }
    let (bp, sp) = (blocks.as_ptr(), scales.as_ptr());
    let (qp, dp, cp) = (xq.q.as_ptr(), xq.d.as_ptr(), xq.cb.as_ptr());
    let bias_of = |r: usize| bias.map_or(0.0, |b| b[r]);
    // SAFETY: AVX2+FMA and the output rows by the caller's contract; every other offset is
    // bounded by the asserts above (row indices are clamped to rows - 1).
    unsafe {
        if n == 1 {
            // [cb(2p) ×4, cb(2p+1) ×4] per pair, as i32 bits.
            scratch.resize(np * PAIR_SCALES, 0.0);
            for (p, v) in scratch.chunks_exact_mut(PAIR_SCALES).enumerate() {
                for (i, s) in v.iter_mut().enumerate() {
                    *s = f32::from_bits(*cp.add(2 * p + i / 4) as u32);
                }
            }
            let cbv = scratch.as_ptr() as *const i32;
            let mut r = 0;
            while r < rows {
                let ri = std::array::from_fn(|i| (r + i).min(rows - 1));
                let ahead = bp.wrapping_add((r + PREFETCH_TILES * R_DECODE) * rb);
                let o = out.tok[0].add(o0 + r);
                let (w, s) = (ri.map(|i| bp.add(i * rb)), ri.map(|i| sp.add(i * nb)));
                let valid = R_DECODE.min(rows - r);
                dot4(w, s, nb, ahead, qp, dp, cbv, ri.map(bias_of), o, valid);
                r += R_DECODE;
            }
            return;
        }
        // Decode GROUPS row groups, then run every token tile over them: a tile's activations
        // stay in L1 while the decoded rows stream from L2.
        let per_group = nb * BLOCK_F32;
        let groups = rows.div_ceil(LANES);
        scratch.resize(GROUPS.min(groups) * per_group, 0.0);
        let ws = scratch.as_mut_ptr();
        let mut g0 = 0;
        while g0 < groups {
            let gn = GROUPS.min(groups - g0);
            for g in 0..gn {
                let ri: [usize; LANES] =
                    std::array::from_fn(|i| ((g0 + g) * LANES + i).min(rows - 1));
                let (w, s) = (ri.map(|i| bp.add(i * rb)), ri.map(|i| sp.add(i * nb)));
                let ahead = bp.wrapping_add((g0 + g + 1) * LANES * rb);
                decode_group(&w, &s, nb, ahead, ws.add(g * per_group));
            }
            let mut t = 0;
            while t < n {
                let tt = T_BATCH.min(n - t);
                for g in 0..gn {
                    let (w, r0) = (ws.add(g * per_group), (g0 + g) * LANES);
                    // The first token tile requests the next row groups' bytes.
                    let pf = if t == 0 && g0 + gn < groups {
                        bp.wrapping_add((r0 + gn * LANES) * rb)
                    } else {
                        std::ptr::null()
                    };
                    match tt {
                        T_BATCH => tile::<T_BATCH>(w, nb, xq, t, r0, rows, bias, out, o0, pf),
                        1 => tile::<1>(w, nb, xq, t, r0, rows, bias, out, o0, pf),
                        2 => tile::<2>(w, nb, xq, t, r0, rows, bias, out, o0, pf),
                        _ => tile::<3>(w, nb, xq, t, r0, rows, bias, out, o0, pf),
                    }
                }
                t += tt;
            }
            g0 += gn;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shift-and-multiply half scales equal the table on every E8M0 byte.
    #[test]
    fn half_scales_equal_the_table() {
        let Some(_) = super::super::Avx2::detect() else {
            return;
        };
        for e0 in (0..256).step_by(8) {
            let mut got = [0f32; 8];
            // SAFETY: AVX2+FMA detected above.
            unsafe {
                let e =
                    _mm256_setr_epi32(e0, e0 + 1, e0 + 2, e0 + 3, e0 + 4, e0 + 5, e0 + 6, e0 + 7);
                _mm256_storeu_ps(got.as_mut_ptr(), half_scales(e));
            }
            for (i, g) in got.iter().enumerate() {
                assert_eq!(
                    g.to_bits(),
                    HALF_SCALE[e0 as usize + i].to_bits(),
                    "e = {}",
                    e0 as usize + i
                );
            }
        }
    }

    /// Every block count from 1 to 9 (the one-token loop's two-pair, one-pair and half-pair
    /// steps), row counts around the tiles and token counts around the batch tile, bitwise
    /// against the oracle (the shared level test covers fewer block counts).
    #[test]
    fn tiles_equal_the_oracle_on_every_block_count() {
        let Some(_) = super::super::Avx2::detect() else {
            return;
        };
        let mut r = crate::test_rng::Rng(41);
        let mut finite = 0;
        for nb in 1..=9 {
            let d_in = 32 * nb;
            for &(n, rows) in &[(1, 1), (1, 7), (1, 13), (2, 9), (5, 17), (8, 3)] {
                let x: Vec<f32> = (0..n * d_in).map(|_| r.f() * 4.0).collect();
                let blocks: Vec<u8> = (0..rows * d_in / 2).map(|_| r.byte()).collect();
                let scales: Vec<u8> = (0..rows * nb)
                    .map(|i| match i % 29 {
                        // Rare extreme scales (255 gives inf: its rows' outputs are not finite).
                        5 => [0u8, 1, 254, 255][i % 4],
                        _ => 118 + r.byte() % 8,
                    })
                    .collect();
                let bias: Vec<f32> = (0..rows).map(|_| r.f()).collect();
                let mut xq = Q8Rows::new();
                xq.quantize(&x, d_in);
                let mut want = vec![0f32; n * rows];
                crate::q8::matmul_q8_mxfp4w_scalar(
                    &xq,
                    &blocks,
                    &scales,
                    Some(&bias),
                    &mut want,
                    rows,
                );
                finite += want.iter().filter(|v| v.is_finite()).count();
                let mut got = vec![f32::NAN; n * rows];
                let ptrs: Vec<*mut f32> =
                    got.chunks_exact_mut(rows).map(|r| r.as_mut_ptr()).collect();
                // SAFETY: AVX2+FMA detected above; each pointer is a whole [rows] row of `got`.
                unsafe {
                    let out = OutRows { tok: &ptrs };
                    q8_mxfp4_rows(
                        &blocks,
                        &scales,
                        &xq,
                        rows,
                        Some(&bias),
                        out,
                        0,
                        &mut Vec::new(),
                    )
                };
                for t in 0..n {
                    for o in 0..rows {
                        let (a, b) = (got[t * rows + o], want[t * rows + o]);
                        assert!(
                            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                            "nb={nb} n={n} rows={rows} token {t} row {o}: {a} vs {b}"
                        );
                    }
                }
            }
        }
        assert!(finite > 1000, "{finite} finite outputs");
    }
}
