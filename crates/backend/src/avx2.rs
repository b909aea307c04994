//! AVX2+FMA matrix products (x86_64 only), selected at run time by `matmul.rs` when the CPU has
//! both features. Owns the register-tiled dot-product kernels; not the dispatch, the shapes checks
//! or the scalar oracles (those stay in `matmul.rs`).
//!
//! Numerics contract, shared with the scalar `*_scalar` twins up to FMA rounding: for every
//! (output row, token) pair one 8-lane f32 accumulator walks the input index k in increasing
//! order, lane = k % 8, each step one fused multiply-add; the tail (k >= d_in / 8 * 8) goes into
//! lanes 0.. with scalar FMAs; lanes are summed as ((0+1)+(2+3))+((4+5)+(6+7)), then the bias is
//! added. Tiling (how many rows/tokens share a pass) never changes that order, so one token run
//! alone gives the same bits as inside a batch. MXFP4 weights are decoded exactly (code value x
//! power-of-two scale), fused into the decode-time dot product and into a per-row-tile f32
//! scratch for batches.

use std::arch::x86_64::*;

use half::bf16;

/// Weight row encodings the dense tile kernel reads.
const W_F32: u8 = 0;
const W_BF16: u8 = 1;

/// Rows per tile for one token (independent FMA chains hide the FMA latency) and for batches.
const R_DECODE: usize = 4;
const R_BATCH: usize = 3;
/// Tokens per tile in batches (3 rows x 4 tokens = 12 accumulators in 16 ymm registers).
const T_BATCH: usize = 4;

#[inline(always)]
fn reduce8(l: &[f32; 8]) -> f32 {
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// 8 weights of encoding `KIND` starting at element `k` of the row at `row`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load8<const KIND: u8>(row: *const u8, k: usize) -> __m256 {
    // SAFETY: the caller guarantees elements k..k+8 lie inside the row.
    unsafe {
        if KIND == W_BF16 {
            let v = _mm_loadu_si128(row.add(2 * k) as *const __m128i);
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(v)))
        } else {
            _mm256_loadu_ps((row as *const f32).add(k))
        }
    }
}

#[inline(always)]
unsafe fn get1<const KIND: u8>(row: *const u8, k: usize) -> f32 {
    // SAFETY: the caller guarantees element k lies inside the row.
    unsafe {
        if KIND == W_BF16 {
            let bits = (row as *const u16).add(k).read_unaligned();
            f32::from_bits((bits as u32) << 16)
        } else {
            (row as *const f32).add(k).read_unaligned()
        }
    }
}

/// Dots of R weight rows (`w` + r * `w_stride` bytes) with T token rows (`x` + t * `x_stride`
/// floats), `d_in` elements each; writes `out[r * out_stride + t]` = dot + `bias[r]`.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const KIND: u8, const R: usize, const T: usize>(
    w: *const u8,
    w_stride: usize,
    x: *const f32,
    x_stride: usize,
    d_in: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
    out_stride: usize,
) {
    let n8 = d_in / 8 * 8;
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    // SAFETY: every pointer offset below stays inside the R rows of d_in weights and the T rows
    // of d_in activations the caller handed over.
    unsafe {
        let mut k = 0;
        while k < n8 {
            let mut wv = [_mm256_setzero_ps(); R];
            for (r, wr) in wv.iter_mut().enumerate() {
                *wr = load8::<KIND>(w.add(r * w_stride), k);
            }
            for t in 0..T {
                let xv = _mm256_loadu_ps(x.add(t * x_stride + k));
                for r in 0..R {
                    acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
                }
            }
            k += 8;
        }
        for r in 0..R {
            for t in 0..T {
                let mut lanes = [0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r][t]);
                for (l, kk) in (n8..d_in).enumerate() {
                    let xv = *x.add(t * x_stride + kk);
                    lanes[l] = get1::<KIND>(w.add(r * w_stride), kk).mul_add(xv, lanes[l]);
                }
                out[r * out_stride + t] = reduce8(&lanes) + bias.map_or(0.0, |b| b[r]);
            }
        }
    }
}

/// Runs `tile` over R rows and every token, T at a time (remainder tiles use fewer tokens).
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_all_tokens<const KIND: u8, const R: usize>(
    w: *const u8,
    w_stride: usize,
    x: &[f32],
    n: usize,
    d_in: usize,
    bias: Option<&[f32]>,
    out: &mut [f32], // [R, n]
) {
    let mut t0 = 0;
    // SAFETY: t0 + tile width <= n, so each tile reads whole token rows of x.
    unsafe {
        while t0 + T_BATCH <= n {
            let o = &mut out[t0..];
            tile::<KIND, R, T_BATCH>(
                w,
                w_stride,
                x.as_ptr().add(t0 * d_in),
                d_in,
                d_in,
                bias,
                o,
                n,
            );
            t0 += T_BATCH;
        }
        let xp = x.as_ptr().add(t0 * d_in);
        let o = &mut out[t0..];
        match n - t0 {
            0 => {}
            1 => tile::<KIND, R, 1>(w, w_stride, xp, d_in, d_in, bias, o, n),
            2 => tile::<KIND, R, 2>(w, w_stride, xp, d_in, d_in, bias, o, n),
            _ => tile::<KIND, R, 3>(w, w_stride, xp, d_in, d_in, bias, o, n),
        }
    }
}

/// Dense rows `[o0, o0 + rows)` of W (encoding KIND, `d_in` elements per row starting at `w`)
/// against all `n` tokens of `x`; `out` is [rows, n] (for n = 1 simply [rows]).
#[target_feature(enable = "avx2,fma")]
unsafe fn dense_rows<const KIND: u8>(
    w: *const u8,
    elem: usize,
    rows: usize,
    x: &[f32],
    n: usize,
    d_in: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let stride = d_in * elem;
    let mut r = 0;
    // SAFETY: rows r.. r + R lie inside the `rows` rows the caller handed over.
    unsafe {
        if n == 1 {
            while r + R_DECODE <= rows {
                let o = &mut out[r..];
                tile::<KIND, R_DECODE, 1>(
                    w.add(r * stride),
                    stride,
                    x.as_ptr(),
                    d_in,
                    d_in,
                    bias.map(|b| &b[r..]),
                    o,
                    1,
                );
                r += R_DECODE;
            }
            while r < rows {
                let o = &mut out[r..];
                tile::<KIND, 1, 1>(
                    w.add(r * stride),
                    stride,
                    x.as_ptr(),
                    d_in,
                    d_in,
                    bias.map(|b| &b[r..]),
                    o,
                    1,
                );
                r += 1;
            }
            return;
        }
        while r + R_BATCH <= rows {
            let o = &mut out[r * n..];
            rows_all_tokens::<KIND, R_BATCH>(
                w.add(r * stride),
                stride,
                x,
                n,
                d_in,
                bias.map(|b| &b[r..]),
                o,
            );
            r += R_BATCH;
        }
        while r < rows {
            let o = &mut out[r * n..];
            rows_all_tokens::<KIND, 1>(
                w.add(r * stride),
                stride,
                x,
                n,
                d_in,
                bias.map(|b| &b[r..]),
                o,
            );
            r += 1;
        }
    }
}

/// bf16 rows: `w` holds `bias.len()` rows of `d_in`; `out` [rows, n].
pub(crate) fn bf16_rows(
    w: &[bf16],
    x: &[f32],
    n: usize,
    d_in: usize,
    rows: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    assert!(w.len() >= rows * d_in && x.len() >= n * d_in && out.len() >= rows * n);
    assert!(bias.is_none_or(|b| b.len() >= rows));
    // SAFETY: the caller (matmul.rs) only calls this when AVX2 and FMA are available; the
    // asserts above bound every access.
    unsafe { dense_rows::<W_BF16>(w.as_ptr() as *const u8, 2, rows, x, n, d_in, bias, out) }
}

/// f32 rows, as [`bf16_rows`].
pub(crate) fn f32_rows(
    w: &[f32],
    x: &[f32],
    n: usize,
    d_in: usize,
    rows: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    assert!(w.len() >= rows * d_in && x.len() >= n * d_in && out.len() >= rows * n);
    assert!(bias.is_none_or(|b| b.len() >= rows));
    // SAFETY: as in `bf16_rows`.
    unsafe { dense_rows::<W_F32>(w.as_ptr() as *const u8, 4, rows, x, n, d_in, bias, out) }
}

/// Twice the FP4 E2M1 values, as int8 (all are integers then), indexed by code.
const FP4_X2_I8: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// The 32 codes of one MXFP4 block (16 bytes, low nibble first) as twice their FP4 values,
/// int8 [32] in element order.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block_codes_x2(p: *const u8, lut: __m128i) -> (__m128i, __m128i) {
    // SAFETY: the caller guarantees 16 readable bytes at p.
    unsafe {
        let v = _mm_loadu_si128(p as *const __m128i);
        let m = _mm_set1_epi8(0x0F);
        let lo = _mm_and_si128(v, m);
        let hi = _mm_and_si128(_mm_srli_epi16::<4>(v), m);
        // Interleave so byte 2j = low nibble of byte j, byte 2j+1 = its high nibble.
        let e0 = _mm_unpacklo_epi8(lo, hi);
        let e1 = _mm_unpackhi_epi8(lo, hi);
        (_mm_shuffle_epi8(lut, e0), _mm_shuffle_epi8(lut, e1))
    }
}

/// The low 8 int8 values of `c` times `hs`, as f32.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn cvt8(c: __m128i, hs: __m256) -> __m256 {
    _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c)), hs)
}

/// The 4 groups of 8 weights of one block as f32 (exact: (2 v) x (scale / 2)).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block_weights(p: *const u8, scale: u8, lut: __m128i) -> [__m256; 4] {
    // SAFETY: as in `block_codes_x2`.
    unsafe {
        let (a, b) = block_codes_x2(p, lut);
        let hs = _mm256_set1_ps(0.5 * crate::dtype::e8m0_to_f32(scale));
        [
            cvt8(a, hs),
            cvt8(_mm_srli_si128::<8>(a), hs),
            cvt8(b, hs),
            cvt8(_mm_srli_si128::<8>(b), hs),
        ]
    }
}

/// One token against R MXFP4 rows, dequantization fused: returns the R dots (+ bias).
#[target_feature(enable = "avx2,fma")]
unsafe fn mxfp4_dot_rows<const R: usize>(
    blocks: &[u8],
    scales: &[u8],
    x: &[f32],
    d_in: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let nb = d_in / 32;
    // SAFETY: the caller guarantees R rows of nb blocks (16 bytes each) and nb scales, and
    // x of d_in floats.
    unsafe {
        let lut = _mm_loadu_si128(FP4_X2_I8.as_ptr() as *const __m128i);
        let mut acc = [_mm256_setzero_ps(); R];
        for blk in 0..nb {
            let xp = x.as_ptr().add(blk * 32);
            let xv = [
                _mm256_loadu_ps(xp),
                _mm256_loadu_ps(xp.add(8)),
                _mm256_loadu_ps(xp.add(16)),
                _mm256_loadu_ps(xp.add(24)),
            ];
            for r in 0..R {
                let wv = block_weights(
                    blocks.as_ptr().add((r * nb + blk) * 16),
                    *scales.get_unchecked(r * nb + blk),
                    lut,
                );
                for j in 0..4 {
                    acc[r] = _mm256_fmadd_ps(wv[j], xv[j], acc[r]);
                }
            }
        }
        for r in 0..R {
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r]);
            out[r] = reduce8(&lanes) + bias.map_or(0.0, |b| b[r]);
        }
    }
}

/// Decodes `rows` MXFP4 rows into f32 `dst` [rows, d_in].
#[target_feature(enable = "avx2,fma")]
unsafe fn mxfp4_decode_rows(blocks: &[u8], scales: &[u8], d_in: usize, dst: &mut [f32]) {
    let n_blocks = scales.len();
    assert!(blocks.len() >= n_blocks * 16 && dst.len() >= n_blocks * 32);
    let _ = d_in;
    // SAFETY: bounds asserted above.
    unsafe {
        let lut = _mm_loadu_si128(FP4_X2_I8.as_ptr() as *const __m128i);
        for b in 0..n_blocks {
            let wv = block_weights(blocks.as_ptr().add(b * 16), scales[b], lut);
            let d = dst.as_mut_ptr().add(b * 32);
            for (j, w) in wv.iter().enumerate() {
                _mm256_storeu_ps(d.add(8 * j), *w);
            }
        }
    }
}

/// MXFP4 rows (`blocks` [rows, d_in/32, 16], `scales` [rows, d_in/32], rows = bias.len())
/// against `n` tokens; `out` [rows, n]. `scratch` holds decoded rows for batches.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mxfp4_rows(
    blocks: &[u8],
    scales: &[u8],
    x: &[f32],
    n: usize,
    d_in: usize,
    rows: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    assert!(bias.is_none_or(|b| b.len() >= rows));
    let (rb, rs) = (d_in / 2, d_in / 32);
    assert!(d_in % 32 == 0 && blocks.len() >= rows * rb && scales.len() >= rows * rs);
    assert!(x.len() >= n * d_in && out.len() >= rows * n);
    // SAFETY: AVX2+FMA checked by the caller; all slices bounded by the asserts above.
    unsafe {
        let mut r = 0;
        if n == 1 {
            while r + R_DECODE <= rows {
                mxfp4_dot_rows::<R_DECODE>(
                    &blocks[r * rb..],
                    &scales[r * rs..],
                    x,
                    d_in,
                    bias.map(|b| &b[r..]),
                    &mut out[r..],
                );
                r += R_DECODE;
            }
            while r < rows {
                mxfp4_dot_rows::<1>(
                    &blocks[r * rb..],
                    &scales[r * rs..],
                    x,
                    d_in,
                    bias.map(|b| &b[r..]),
                    &mut out[r..],
                );
                r += 1;
            }
            return;
        }
        scratch.resize(R_BATCH * d_in, 0.0);
        while r < rows {
            let tr = (rows - r).min(R_BATCH);
            mxfp4_decode_rows(
                &blocks[r * rb..(r + tr) * rb],
                &scales[r * rs..(r + tr) * rs],
                d_in,
                scratch,
            );
            let w = scratch.as_ptr() as *const u8;
            if tr == R_BATCH {
                let o = &mut out[r * n..];
                rows_all_tokens::<W_F32, R_BATCH>(
                    w,
                    d_in * 4,
                    x,
                    n,
                    d_in,
                    bias.map(|b| &b[r..]),
                    o,
                );
            } else {
                for i in 0..tr {
                    let o = &mut out[(r + i) * n..];
                    rows_all_tokens::<W_F32, 1>(
                        w.add(i * d_in * 4),
                        d_in * 4,
                        x,
                        n,
                        d_in,
                        bias.map(|b| &b[r + i..]),
                        o,
                    );
                }
            }
            r += tr;
        }
    }
}
