//! AVX-512 VNNI kernels of the int8 MXFP4 path: int8 activations ([`Q8Rows`]) times FP4 codes
//! as offset unsigned bytes, with `vpdpbusd` (64 byte products into 16 i32 lanes per
//! instruction). The layout, the numerics contract and the scalar oracle are in `q8.rs`; every
//! kernel here gives the oracle's bits.
//!
//! The trick that makes the 512-bit vectors pay: two weight rows share one vector. For a pair
//! of 32-blocks, the low nibbles of a row's 32 packed bytes are the even elements of both
//! blocks and the high nibbles the odd ones, in the order of the activations' first and second
//! 32 bytes. So `U1 = [row a's low nibbles | row b's low nibbles]` against the activations'
//! first 32 bytes broadcast to both halves, then `U2` (high nibbles) against the second 32,
//! accumulated by two `vpdpbusd` into a register that starts at the offset correction, leaves in i32 lane k exactly the
//! contract's integer sum of lane k % 8 for row a (k < 8) or row b (k ≥ 8): no horizontal
//! fold. One convert, one multiply (scales) and one FMA per pair then serve two rows: 5 vector
//! operations per 128 multiply-adds, against 8 per 64 in the AVX2 kernels.
//!
//! Decode and batches of up to 16 tokens: 4 rows per pass (two row pairs) straight from the
//! packed bytes against up to 8 tokens, the weights two passes ahead prefetched. Batches: a group of 16 rows is decoded once into a
//! per-task scratch (U1, U2 and the 16 half scales of each row pair and block pair, 192
//! bytes), then tiles of 2 row pairs × 4 tokens run over the group (each activation load
//! serves 4 rows, each weight load 4 tokens), the tokens' activations staying in L1.

use std::arch::x86_64::*;

use crate::dtype::HALF_SCALE;
use crate::matmul::reduce8;
use crate::q8::{Q8Rows, FP4_X2_U8, PAIR_BYTES, PAIR_SCALES};

/// Row pairs per decode pass.
const PAIRS_DECODE: usize = 2;
/// Up to this many tokens the weights are read in place ([`DIRECT_T`] tokens per pass);
/// from here on a row group is decoded once into scratch (prefill).
const DIRECT_MAX_TOKENS: usize = 16;
/// Tokens per pass when the weights are read in place.
const DIRECT_T: usize = 8;
/// Tokens per batch tile.
const T_BATCH: usize = 4;
/// Rows decoded together in batches (8 row pairs: 8 × 192 bytes per block pair, ~69 KB at
/// 2880 inputs, L2-resident).
const ROW_GROUP: usize = 16;
/// Scratch bytes per row pair and block pair: U1 (64), U2 (64), half scales (16 × 4).
const SCRATCH_PAIR: usize = 192;
/// How many decode passes ahead the one-token kernel prefetches its weights.
const PREFETCH_PASSES: usize = 2;

/// `(U1, U2)` of rows `a` and `b` at their block pair `p` (pointers to its packed bytes):
/// offset weights `2·value + 12`, low nibbles (even elements) in U1, high ones in U2, row a in
/// the low 256 bits. `full` false: only one block (16 bytes) exists; the other reads as code 0
/// (its activations are zero, so it adds nothing).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn pair_weights(a: *const u8, b: *const u8, full: bool) -> (__m512i, __m512i) {
    // SAFETY: the caller guarantees 32 readable bytes at a and b (16 when !full).
    unsafe {
        let lut = _mm512_broadcast_i32x4(_mm_loadu_si128(FP4_X2_U8.as_ptr() as *const __m128i));
        let m = _mm512_set1_epi8(0x0F);
        let v = if full {
            _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_loadu_si256(a as *const __m256i)),
                _mm256_loadu_si256(b as *const __m256i),
            )
        } else {
            _mm512_inserti32x4::<2>(
                _mm512_zextsi128_si512(_mm_loadu_si128(a as *const __m128i)),
                _mm_loadu_si128(b as *const __m128i),
            )
        };
        let lo = _mm512_shuffle_epi8(lut, _mm512_and_si512(v, m));
        let hi = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16::<4>(v), m));
        (lo, hi)
    }
}

/// The half scales `2^(e - 128)` of `nb` E8M0 bytes at `s` into `out` (f32 [nb]): the bits of
/// `HALF_SCALE`, 16 at a time (`(e - 1) << 23`, with e = 0, 1 (subnormals) and 255 (inf) set
/// apart), so a row's scales cost a few vector operations instead of a table load each.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn half_scales_row(s: *const u8, nb: usize, out: *mut f32) {
    let n16 = nb / 16 * 16;
    // SAFETY: the caller guarantees nb readable bytes at s and nb writable floats at out.
    unsafe {
        let mut i = 0;
        while i < n16 {
            let e = _mm512_cvtepu8_epi32(_mm_loadu_si128(s.add(i) as *const __m128i));
            let bits = _mm512_slli_epi32::<23>(_mm512_sub_epi32(e, _mm512_set1_epi32(1)));
            let bits = _mm512_mask_mov_epi32(
                bits,
                _mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512()),
                _mm512_set1_epi32(HALF_SCALE[0].to_bits() as i32),
            );
            let bits = _mm512_mask_mov_epi32(
                bits,
                _mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(1)),
                _mm512_set1_epi32(HALF_SCALE[1].to_bits() as i32),
            );
            let bits = _mm512_mask_mov_epi32(
                bits,
                _mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(255)),
                _mm512_set1_epi32(HALF_SCALE[255].to_bits() as i32),
            );
            _mm512_storeu_si512(out.add(i) as *mut __m512i, bits);
            i += 16;
        }
        for i in n16..nb {
            *out.add(i) = HALF_SCALE[*s.add(i) as usize];
        }
    }
}

/// `[ha[2p] ×4, ha[2p+1] ×4, hb[2p] ×4, hb[2p+1] ×4]` from two rows' half scales (see
/// [`half_scales_row`]); the second block's are zero when `!full`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn pair_half_scales(ha: *const f32, hb: *const f32, full: bool) -> __m512 {
    // SAFETY: the caller guarantees 2 readable floats at ha and hb (1 when !full).
    unsafe {
        let (a, b) = if full {
            (
                _mm_castpd_ps(_mm_load_sd(ha as *const f64)),
                _mm_castpd_ps(_mm_load_sd(hb as *const f64)),
            )
        } else {
            (_mm_load_ss(ha), _mm_load_ss(hb))
        };
        let idx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
        _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_movelh_ps(a, b)))
    }
}

/// One step of the contract for a row pair and one token at a block pair: the exact integer
/// lane sums, then `acc = fma(isum, d · hs, acc)` in both halves.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn pair_step(
    acc: __m512,
    u1: __m512i,
    u2: __m512i,
    hs: __m512,
    x: *const i8,
    d: *const f32,
    c: *const i32,
) -> __m512 {
    // SAFETY: the caller guarantees 64 activation bytes at x and 8 scales and corrections.
    unsafe {
        let x1 = _mm512_broadcast_i64x4(_mm256_loadu_si256(x as *const __m256i));
        let x2 = _mm512_broadcast_i64x4(_mm256_loadu_si256(x.add(32) as *const __m256i));
        // Starting from the (negated) offset correction leaves the exact Σ 2·value·q.
        let c = _mm512_broadcast_i64x4(_mm256_loadu_si256(c as *const __m256i));
        let s = _mm512_dpbusd_epi32(c, u1, x1);
        let s = _mm512_dpbusd_epi32(s, u2, x2);
        let dx = _mm512_castsi512_ps(_mm512_broadcast_i64x4(_mm256_loadu_si256(
            d as *const __m256i,
        )));
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dx, hs), acc)
    }
}

/// T tokens (`xq` + t · `rq` bytes, `xd`, `xc` + t · `rd`) against `P` row pairs (rows `a[i]`,
/// `b[i]` of `nb` blocks each, read in place, with their half scales, f32 [nb] per row):
/// `[token][pair][row a, row b]` without bias. Each block pair's weights are decoded once for
/// all T tokens.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn dot_row_pairs<const P: usize, const T: usize>(
    rows: [[*const u8; 2]; P],
    hrows: [[*const f32; 2]; P],
    nb: usize,
    prefetch: *const u8,
    prefetch_step: usize,
    xq: *const i8,
    rq: usize,
    xd: *const f32,
    xc: *const i32,
    rd: usize,
) -> [[[f32; 2]; P]; T] {
    let np = nb.div_ceil(2);
    let mut acc = [[_mm512_setzero_ps(); P]; T];
    // SAFETY: the caller guarantees the rows, scale rows and T quantized token rows (np
    // pairs each); prefetches are hints and never fault.
    unsafe {
        for p in 0..np {
            let line = prefetch.wrapping_add((p * prefetch_step) & !63);
            _mm_prefetch::<_MM_HINT_T0>(line as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(line.wrapping_add(64) as *const i8);
            let full = 2 * p + 1 < nb;
            let mut u = [(_mm512_setzero_si512(), _mm512_setzero_si512()); P];
            let mut hs = [_mm512_setzero_ps(); P];
            for i in 0..P {
                let [a, b] = rows[i];
                u[i] = pair_weights(a.add(32 * p), b.add(32 * p), full);
                let [ha, hb] = hrows[i];
                hs[i] = pair_half_scales(ha.add(2 * p), hb.add(2 * p), full);
            }
            for (t, at) in acc.iter_mut().enumerate() {
                let x = xq.add(t * rq + p * PAIR_BYTES);
                let o = t * rd + p * PAIR_SCALES;
                for i in 0..P {
                    at[i] = pair_step(at[i], u[i].0, u[i].1, hs[i], x, xd.add(o), xc.add(o));
                }
            }
        }
        let mut out = [[[0f32; 2]; P]; T];
        for (t, at) in acc.iter().enumerate() {
            for i in 0..P {
                let mut lanes = [0f32; 16];
                _mm512_storeu_ps(lanes.as_mut_ptr(), at[i]);
                out[t][i] = [reduce8(&lanes[..8]), reduce8(&lanes[8..])];
            }
        }
        out
    }
}

/// Decodes rows a and b (`nb` blocks each, half scales `ha`, `hb`) into `ws`
/// (np × [`SCRATCH_PAIR`] bytes).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn decode_row_pair(
    a: *const u8,
    b: *const u8,
    ha: *const f32,
    hb: *const f32,
    nb: usize,
    ws: *mut u8,
) {
    // SAFETY: the caller guarantees nb blocks and half scales per row and the scratch size.
    unsafe {
        for p in 0..nb.div_ceil(2) {
            let full = 2 * p + 1 < nb;
            let (u1, u2) = pair_weights(a.add(32 * p), b.add(32 * p), full);
            let hs = pair_half_scales(ha.add(2 * p), hb.add(2 * p), full);
            let w = ws.add(p * SCRATCH_PAIR);
            _mm512_storeu_si512(w as *mut __m512i, u1);
            _mm512_storeu_si512(w.add(64) as *mut __m512i, u2);
            _mm512_storeu_ps(w.add(128) as *mut f32, hs);
        }
    }
}

/// P decoded row pairs (`ws` + i · `per_pair` bytes) against T tokens (`xq` + t · `rq` bytes,
/// `xd`, `xc` + t · `rd`): `[token][pair][row a, row b]` without bias. Each token's loads serve
/// all P row pairs, each weight load all T tokens.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn row_pairs_tokens<const P: usize, const T: usize>(
    ws: *const u8,
    per_pair: usize,
    np: usize,
    xq: *const i8,
    rq: usize,
    xd: *const f32,
    xc: *const i32,
    rd: usize,
) -> [[[f32; 2]; P]; T] {
    let mut acc = [[_mm512_setzero_ps(); P]; T];
    // SAFETY: the caller guarantees P × np decoded pairs at ws and T quantized rows.
    unsafe {
        for p in 0..np {
            let mut u1 = [_mm512_setzero_si512(); P];
            let mut u2 = [_mm512_setzero_si512(); P];
            let mut hs = [_mm512_setzero_ps(); P];
            for i in 0..P {
                let w = ws.add(i * per_pair + p * SCRATCH_PAIR);
                u1[i] = _mm512_loadu_si512(w as *const __m512i);
                u2[i] = _mm512_loadu_si512(w.add(64) as *const __m512i);
                hs[i] = _mm512_loadu_ps(w.add(128) as *const f32);
            }
            for (t, at) in acc.iter_mut().enumerate() {
                let x = xq.add(t * rq + p * PAIR_BYTES);
                let o = t * rd + p * PAIR_SCALES;
                let x1 = _mm512_broadcast_i64x4(_mm256_loadu_si256(x as *const __m256i));
                let x2 = _mm512_broadcast_i64x4(_mm256_loadu_si256(x.add(32) as *const __m256i));
                let c = _mm512_broadcast_i64x4(_mm256_loadu_si256(xc.add(o) as *const __m256i));
                let dx = _mm512_castsi512_ps(_mm512_broadcast_i64x4(_mm256_loadu_si256(
                    xd.add(o) as *const __m256i
                )));
                for (i, a) in at.iter_mut().enumerate() {
                    let s = _mm512_dpbusd_epi32(c, u1[i], x1);
                    let s = _mm512_dpbusd_epi32(s, u2[i], x2);
                    *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dx, hs[i]), *a);
                }
            }
        }
        let mut out = [[[0f32; 2]; P]; T];
        for (t, at) in acc.iter().enumerate() {
            for (i, a) in at.iter().enumerate() {
                let mut lanes = [0f32; 16];
                _mm512_storeu_ps(lanes.as_mut_ptr(), *a);
                out[t][i] = [reduce8(&lanes[..8]), reduce8(&lanes[8..])];
            }
        }
        out
    }
}

/// MXFP4 rows (`blocks` [rows, d_in/32, 16], `scales` [rows, d_in/32]) against every row of
/// `xq`; `out` f32 [rows, n] (by output row). `scratch` holds a decoded row group in batches.
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL and VNNI.
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
    let bias_of = |r: usize| bias.map_or(0.0, |b| b[r]);
    let (bp, sp) = (blocks.as_ptr(), scales.as_ptr());
    let (qp, dp, cp) = (xq.q.as_ptr(), xq.d.as_ptr(), xq.c.as_ptr());
    // Row r's packed bytes and scale bytes; a missing partner row (odd row counts) reads row
    // r again and its result is dropped.
    let row = |r: usize| bp.wrapping_add(r.min(rows - 1) * rb);
    let srow = |r: usize| sp.wrapping_add(r.min(rows - 1) * nb);
    // The scratch: the half scales of the rows in flight (f32 [4, nb]), then (batches) the
    // decoded row group.
    let hs_len = 4 * nb;
    // SAFETY: the CPU features by the caller's contract; every row index passed to `row` and
    // `srow` is clamped to rows - 1, and the activations are bounded by the asserts above.
    unsafe {
        if n <= DIRECT_MAX_TOKENS {
            // Decode and small batches: the weights are read in place, 4 rows at a time, each
            // block pair decoded once for up to 8 tokens; the memory stream never pauses.
            scratch.resize(hs_len, 0.0);
            let h = scratch.as_mut_ptr();
            let hrow = |i: usize| h.add(i * nb) as *const f32;
            let o = out.as_mut_ptr();
            let per_pass = 2 * PAIRS_DECODE;
            let step = (per_pass * rb / np.max(1)).max(1);
            let mut r = 0;
            while r < rows {
                let quad = r + per_pass <= rows;
                let ahead = row(r).wrapping_add(PREFETCH_PASSES * per_pass * rb);
                for i in 0..per_pass {
                    half_scales_row(srow(r + i), nb, h.add(i * nb));
                }
                let pairs4 = [[row(r), row(r + 1)], [row(r + 2), row(r + 3)]];
                let h4 = [[hrow(0), hrow(1)], [hrow(2), hrow(3)]];
                let mut t = 0;
                while t < n {
                    let tt = DIRECT_T.min(n - t);
                    let (q, d, c) = (qp.add(t * rq), dp.add(t * rd), cp.add(t * rd));
                    let put = |k: usize, res: &[[f32; 2]]| {
                        for (j, v) in res.iter().flatten().enumerate() {
                            if r + j < rows {
                                *o.add((r + j) * n + t + k) = v + bias_of(r + j);
                            }
                        }
                    };
                    macro_rules! run {
                        ($t:literal) => {
                            if quad {
                                dot_row_pairs::<2, $t>(pairs4, h4, nb, ahead, step, q, rq, d, c, rd)
                                    .iter()
                                    .enumerate()
                                    .for_each(|(k, v)| put(k, v))
                            } else {
                                let (p1, h1) = ([pairs4[0]], [h4[0]]);
                                dot_row_pairs::<1, $t>(p1, h1, nb, ahead, step, q, rq, d, c, rd)
                                    .iter()
                                    .enumerate()
                                    .for_each(|(k, v)| put(k, v))
                            }
                        };
                    }
                    match tt {
                        8 => run!(8),
                        7 => run!(7),
                        6 => run!(6),
                        5 => run!(5),
                        4 => run!(4),
                        3 => run!(3),
                        2 => run!(2),
                        _ => run!(1),
                    }
                    t += tt;
                }
                r += if quad { per_pass } else { 2 };
            }
            return;
        }
        // Decode a group of rows, then run every token tile over the whole group.
        let per_pair = np * SCRATCH_PAIR;
        let group = ROW_GROUP.min(rows.next_multiple_of(2));
        scratch.resize(hs_len + (group / 2 * per_pair).div_ceil(4), 0.0);
        let h = scratch.as_mut_ptr();
        let ws = h.add(hs_len) as *mut u8;
        let mut g0 = 0;
        while g0 < rows {
            let gr = ROW_GROUP.min(rows - g0);
            let pairs = gr.div_ceil(2);
            for i in 0..pairs {
                let (a, b) = (g0 + 2 * i, g0 + 2 * i + 1);
                let w = ws.add(i * per_pair);
                half_scales_row(srow(a), nb, h);
                half_scales_row(srow(b), nb, h.add(nb));
                decode_row_pair(row(a), row(b), h, h.add(nb), nb, w);
            }
            // The next group's weights stream in while this one computes (see dense.rs).
            let next = (g0 + gr).min(rows);
            let ahead = ROW_GROUP.min(rows - next);
            for off in (0..ahead * rb).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(next * rb + off) as *const i8);
            }
            let mut t = 0;
            while t < n {
                let tt = T_BATCH.min(n - t);
                let (q, d, c) = (qp.add(t * rq), dp.add(t * rd), cp.add(t * rd));
                let mut i = 0;
                while i < pairs {
                    let w = ws.add(i * per_pair);
                    let two = i + 1 < pairs;
                    // Writes token t + k's results for the row pairs starting at pair i.
                    let mut put = |k: usize, per_pair_res: &[[f32; 2]]| {
                        for (j, [va, vb]) in per_pair_res.iter().enumerate() {
                            let a = g0 + 2 * (i + j);
                            *out.as_mut_ptr().add(a * n + t + k) = va + bias_of(a);
                            if a + 1 < rows {
                                *out.as_mut_ptr().add((a + 1) * n + t + k) = vb + bias_of(a + 1);
                            }
                        }
                    };
                    macro_rules! run {
                        ($p:literal, $t:literal) => {
                            row_pairs_tokens::<$p, $t>(w, per_pair, np, q, rq, d, c, rd)
                                .iter()
                                .enumerate()
                                .for_each(|(k, v)| put(k, v))
                        };
                    }
                    match (two, tt) {
                        (true, 4) => run!(2, 4),
                        (true, 3) => run!(2, 3),
                        (true, 2) => run!(2, 2),
                        (true, _) => run!(2, 1),
                        (false, 4) => run!(1, 4),
                        (false, 3) => run!(1, 3),
                        (false, 2) => run!(1, 2),
                        (false, _) => run!(1, 1),
                    }
                    i += if two { 2 } else { 1 };
                }
                t += tt;
            }
            g0 += gr;
        }
    }
}
