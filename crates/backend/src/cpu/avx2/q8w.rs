//! AVX2 kernels of the 8-bit weight products (x86_64 only): int8 activations ([`Q8Rows`]) times
//! int8 weights ([`Q8Weights`]), run at the caller's choice by `q8w::matmul_q8_q8w*`. Owns only
//! the tiles; the layout, the numerics contract and the scalar oracle are in `q8w.rs`, and every
//! kernel here gives the oracle's bits.
//!
//! `_mm256_maddubs_epi16` multiplies unsigned by signed bytes. The offset trick of the MXFP4
//! kernels (`cpu/avx2/q8.rs`: add 12 to the weights, subtract `12 · Σq`) does not fit full-range
//! int8: `(w + 128) · q` pairs reach 2 · 255 · 127 = 64,770 and saturate the 16-bit lanes. So
//! these kernels move the signs: `maddubs(|a|, sign(b, a))` = `a · b` exactly, each pair of
//! products at most 2 · 127 · 127 = 32,258 (codes never reach -128). The `abs` is taken of the
//! operand that is reused: of the activations in decode (one activation row against 4 weight
//! rows), of the weights in batches (one weight row against 4 tokens), so each product costs one
//! `sign` beyond the multiply; the even and odd halves are widened to 32 bits separately
//! (`madd` with ones: their 16-bit sum could reach 64,516) and added. One convert and one FMA
//! per pair then apply `activation scale × weight scale`.
//!
//! Decode (one token): 4 weight rows per pass sharing one activation load, the weights two
//! passes ahead prefetched (decode is memory-bound: 1.03 bytes per multiply-add). Batches: a
//! group of 16 weight rows (46 KB at 2880 inputs, L2-resident) meets every tile of 4 tokens.

use std::arch::x86_64::*;

use crate::cpu::OutRows;
use crate::matmul::reduce8;
use crate::q8::{Q8Rows, PAIR_BYTES, PAIR_SCALES};
use crate::q8w::Q8Weights;

/// Weight rows per decode pass.
const R_DECODE: usize = 4;
/// Tokens per batch pass over one weight row.
const T_BATCH: usize = 4;
/// Weight rows per batch group.
const ROW_GROUP: usize = 16;
/// How many decode passes ahead the one-token kernel prefetches its weights.
const PREFETCH_TILES: usize = 2;

/// `[d(blk) ×4, d(blk + 1) ×4]`: a pair's two weight block scales, one per lane group.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn pair_scales(d: *const f32) -> __m256 {
    // SAFETY: the caller guarantees 2 readable floats at d.
    unsafe { _mm256_set_m128(_mm_set1_ps(*d.add(1)), _mm_set1_ps(*d)) }
}

/// Exact i32 lane sums of one pair from `|a|` and `sign(b, a)` halves (even, odd elements).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn pair_dot(ua_lo: __m256i, sb_lo: __m256i, ua_hi: __m256i, sb_hi: __m256i) -> __m256i {
    let ones = _mm256_set1_epi16(1);
    let lo = _mm256_madd_epi16(_mm256_maddubs_epi16(ua_lo, sb_lo), ones);
    let hi = _mm256_madd_epi16(_mm256_maddubs_epi16(ua_hi, sb_hi), ones);
    _mm256_add_epi32(lo, hi)
}

/// One activation row (`xq` codes, `xd` pair scales) against R weight rows (`wq` + r · `wrq`
/// codes, `wd` + r · `wrd` scales); returns the R dots (no bias).
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // r indexes acc and the weight rows
unsafe fn dot_rows<const R: usize>(
    wq: *const i8,
    wrq: usize,
    wd: *const f32,
    wrd: usize,
    np: usize,
    xq: *const i8,
    xd: *const f32,
) -> [f32; R] {
    let mut acc = [_mm256_setzero_ps(); R];
    let mut res = [0f32; R];
    // SAFETY: the caller guarantees R weight rows of np pairs (codes and scales) and one
    // activation row of np pairs. Prefetches are hints and never fault, even past the end.
    unsafe {
        // The R rows are contiguous: request the tile PREFETCH_TILES ahead, R lines per pair.
        let ahead = wq.wrapping_add(PREFETCH_TILES * R * wrq);
        for p in 0..np {
            for r in 0..R {
                let line = ahead.wrapping_add(r * wrq + p * PAIR_BYTES);
                _mm_prefetch::<_MM_HINT_T0>(line);
            }
            let xlo = _mm256_loadu_si256(xq.add(p * PAIR_BYTES) as *const __m256i);
            let xhi = _mm256_loadu_si256(xq.add(p * PAIR_BYTES + 32) as *const __m256i);
            let (axlo, axhi) = (_mm256_abs_epi8(xlo), _mm256_abs_epi8(xhi));
            let dx = _mm256_loadu_ps(xd.add(p * PAIR_SCALES));
            for r in 0..R {
                let w = wq.add(r * wrq + p * PAIR_BYTES);
                let wlo = _mm256_loadu_si256(w as *const __m256i);
                let whi = _mm256_loadu_si256(w.add(32) as *const __m256i);
                let i = pair_dot(
                    axlo,
                    _mm256_sign_epi8(wlo, xlo),
                    axhi,
                    _mm256_sign_epi8(whi, xhi),
                );
                let dw = pair_scales(wd.add(r * wrd + 2 * p));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(dx, dw), acc[r]);
            }
        }
        for r in 0..R {
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r]);
            res[r] = reduce8(&lanes);
        }
    }
    res
}

/// One weight row (`wq` codes, `wd` scales) against T activation rows (`xq` + t · `rq` codes,
/// `xd` + t · `rd` scales); returns the T dots (no bias).
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn row_tokens<const T: usize>(
    wq: *const i8,
    wd: *const f32,
    np: usize,
    xq: *const i8,
    rq: usize,
    xd: *const f32,
    rd: usize,
) -> [f32; T] {
    let mut acc = [_mm256_setzero_ps(); T];
    let mut res = [0f32; T];
    // SAFETY: the caller guarantees one weight row of np pairs and T activation rows.
    unsafe {
        for p in 0..np {
            let w = wq.add(p * PAIR_BYTES);
            let wlo = _mm256_loadu_si256(w as *const __m256i);
            let whi = _mm256_loadu_si256(w.add(32) as *const __m256i);
            let (awlo, awhi) = (_mm256_abs_epi8(wlo), _mm256_abs_epi8(whi));
            let dw = pair_scales(wd.add(2 * p));
            for (t, a) in acc.iter_mut().enumerate() {
                let x = xq.add(t * rq + p * PAIR_BYTES);
                let xlo = _mm256_loadu_si256(x as *const __m256i);
                let xhi = _mm256_loadu_si256(x.add(32) as *const __m256i);
                let i = pair_dot(
                    awlo,
                    _mm256_sign_epi8(xlo, wlo),
                    awhi,
                    _mm256_sign_epi8(xhi, whi),
                );
                let dx = _mm256_loadu_ps(xd.add(t * rd + p * PAIR_SCALES));
                *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(dx, dw), *a);
            }
        }
        for (t, a) in acc.iter().enumerate() {
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), *a);
            res[t] = reduce8(&lanes);
        }
    }
    res
}

/// Weight rows `o0 .. o0 + rows` of `w` against every row of `xq`: writes token t's row o
/// (dot + `bias[o]`) to `out.tok[t].add(o)`.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `out.tok` must hold `xq.n_rows` pointers, each valid for
/// writes of `w.d_out` floats, and no other thread may write rows `o0 .. o0 + rows` of them.
pub(crate) unsafe fn q8_q8w_rows(
    xq: &Q8Rows,
    w: &Q8Weights,
    o0: usize,
    rows: usize,
    bias: Option<&[f32]>,
    out: OutRows<'_>,
) {
    let n = xq.n_rows;
    let np = w.n_pairs();
    let (rq, rd, wrq, wrd) = (xq.row_q(), xq.row_d(), w.row_q(), w.row_d());
    assert!(xq.d_in == w.d_in && o0 + rows <= w.d_out && out.tok.len() >= n);
    assert!(xq.q.len() >= n * rq && xq.d.len() >= n * rd);
    assert!(w.q.len() >= w.d_out * wrq && w.d.len() >= w.d_out * wrd);
    assert!(bias.is_none_or(|b| b.len() >= o0 + rows));
    let b = |o: usize| bias.map_or(0.0, |b| b[o]);
    let (wqp, wdp) = (w.q.as_ptr(), w.d.as_ptr());
    let (xqp, xdp) = (xq.q.as_ptr(), xq.d.as_ptr());
    // SAFETY: AVX2+FMA and the output pointers by the caller's contract; every offset is
    // bounded by the asserts above (row o < d_out, token t < n).
    unsafe {
        if n == 1 {
            let y = out.tok[0];
            let mut o = o0;
            while o + R_DECODE <= o0 + rows {
                let r = dot_rows::<R_DECODE>(
                    wqp.add(o * wrq),
                    wrq,
                    wdp.add(o * wrd),
                    wrd,
                    np,
                    xqp,
                    xdp,
                );
                for (k, v) in r.iter().enumerate() {
                    *y.add(o + k) = v + b(o + k);
                }
                o += R_DECODE;
            }
            while o < o0 + rows {
                let [v] = dot_rows::<1>(wqp.add(o * wrq), wrq, wdp.add(o * wrd), wrd, np, xqp, xdp);
                *y.add(o) = v + b(o);
                o += 1;
            }
            return;
        }
        let mut g0 = o0;
        while g0 < o0 + rows {
            let g1 = (g0 + ROW_GROUP).min(o0 + rows);
            let mut t = 0;
            while t < n {
                let tt = T_BATCH.min(n - t);
                let (q, d) = (xqp.add(t * rq), xdp.add(t * rd));
                for o in g0..g1 {
                    let (wr, wdr) = (wqp.add(o * wrq), wdp.add(o * wrd));
                    let put = |k: usize, v: f32| *out.tok[t + k].add(o) = v + b(o);
                    match tt {
                        T_BATCH => {
                            let r = row_tokens::<T_BATCH>(wr, wdr, np, q, rq, d, rd);
                            r.iter().enumerate().for_each(|(k, &v)| put(k, v));
                        }
                        3 => {
                            let r = row_tokens::<3>(wr, wdr, np, q, rq, d, rd);
                            r.iter().enumerate().for_each(|(k, &v)| put(k, v));
                        }
                        2 => {
                            let r = row_tokens::<2>(wr, wdr, np, q, rq, d, rd);
                            r.iter().enumerate().for_each(|(k, &v)| put(k, v));
                        }
                        _ => {
                            let [v] = row_tokens::<1>(wr, wdr, np, q, rq, d, rd);
                            put(0, v);
                        }
                    }
                }
                t += tt;
            }
            g0 = g1;
        }
    }
}
