//! AVX2+FMA matrix products (x86_64 only), selected at run time by `matmul.rs` when the CPU has
//! both features. Owns the register-tiled dot-product kernels; not the dispatch, the shapes checks
//! or the scalar oracles (those stay in `matmul.rs`).
//!
//! Numerics contract, shared with the scalar `*_scalar` twins up to FMA rounding: for every
//! (output row, token) pair one 8-lane f32 accumulator walks the input index k in increasing
//! order, lane = k % 8, each step one fused multiply-add; the tail (k >= d_in / 8 * 8) goes into
//! lanes 0.. with scalar FMAs; lanes are summed as ((0+1)+(2+3))+((4+5)+(6+7)) (four outputs at
//! once with `hadd` when there is no tail), then the bias is added. Tiling (how many
//! rows/tokens share a pass) never changes that order, so one token run alone gives the same
//! bits as inside a batch. Batches of 3+ tokens widen each 4-row block of bf16 weights to an
//! f32 scratch once (exact) and run all token tiles over it. MXFP4 weights are decoded exactly
//! (code value x power-of-two scale), fused into the decode-time dot product and into a
//! per-row-tile f32 scratch for batches.
//!
//! Where the time goes on the 2-core AMD EPYC (Zen 1) dev box: each 256-bit FMA issues as two
//! 128-bit halves, so a core peaks near 8.6 GMAC/s (measured with a register-only FMA loop);
//! a batch of 8 tokens over a [201088, 128] bf16 unembedding runs at ~9-10 GMAC per CPU-second
//! from memory (`examples/unembed_speed.rs`), i.e. at that peak, while one token is bound by
//! memory bandwidth (~5 GB/s per core).

use std::arch::x86_64::*;

use crate::cpu::OutRows;
use crate::dtype::HALF_SCALE;
use crate::matmul::reduce8;

/// Weight row encodings the dense tile kernel reads.
const W_F32: u8 = 0;
const W_BF16: u8 = 1;

/// Rows per tile for one token (independent FMA chains hide the FMA latency).
const R_DECODE: usize = 4;
/// Rows x tokens per tile in batches: 4 x 2 = 8 accumulators plus the 2 activation vectors
/// and a weight vector in 16 ymm registers; 4 rows so the epilogue reduces 4 outputs at once.
const R_BATCH: usize = 4;
const T_BATCH: usize = 2;

/// The four sums `reduce8(a)`, `reduce8(b)`, `reduce8(c)`, `reduce8(d)` with the same additions
/// in the same order: `hadd` pairs lanes (0+1), (2+3) per 128-bit half, the second `hadd` adds
/// those pairs, and the halves' sums ((0+1)+(2+3)) + ((4+5)+(6+7)) come last.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn reduce8x4(a: __m256, b: __m256, c: __m256, d: __m256) -> __m128 {
    let ab = _mm256_hadd_ps(a, b);
    let cd = _mm256_hadd_ps(c, d);
    let abcd = _mm256_hadd_ps(ab, cd);
    _mm_add_ps(
        _mm256_castps256_ps128(abcd),
        _mm256_extractf128_ps::<1>(abcd),
    )
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
/// floats), `d_in` elements each; writes `out[t][o + r]` = dot + `bias[r]`.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
#[allow(clippy::needless_range_loop)] // r, t index two arrays at once
unsafe fn tile<const KIND: u8, const R: usize, const T: usize>(
    w: *const u8,
    w_stride: usize,
    x: *const f32,
    x_stride: usize,
    d_in: usize,
    bias: Option<&[f32]>,
    out: &[*mut f32],
    o: usize,
) {
    let n8 = d_in / 8 * 8;
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    // SAFETY: every pointer offset below stays inside the R rows of d_in weights and the T rows
    // of d_in activations the caller handed over, and rows o..o + R of the T output rows.
    unsafe {
        let mut k = 0;
        while k < n8 {
            let mut xv = [_mm256_setzero_ps(); T];
            for (t, xt) in xv.iter_mut().enumerate() {
                *xt = _mm256_loadu_ps(x.add(t * x_stride + k));
            }
            for r in 0..R {
                let wv = load8::<KIND>(w.add(r * w_stride), k);
                for t in 0..T {
                    acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
                }
            }
            k += 8;
        }
        if R.is_multiple_of(4) && n8 == d_in {
            // No tail: reduce four rows' accumulators at once (same order as `reduce8`).
            for t in 0..T {
                for r in (0..R).step_by(4) {
                    let s = reduce8x4(acc[r][t], acc[r + 1][t], acc[r + 2][t], acc[r + 3][t]);
                    // + 0.0 without a bias, as in the scalar epilogue (turns -0.0 into +0.0).
                    let b = bias.map_or(_mm_setzero_ps(), |b| _mm_loadu_ps(b.as_ptr().add(r)));
                    _mm_storeu_ps(out[t].add(o + r), _mm_add_ps(s, b));
                }
            }
            return;
        }
        for r in 0..R {
            for t in 0..T {
                let mut lanes = [0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r][t]);
                for (l, kk) in (n8..d_in).enumerate() {
                    let xv = *x.add(t * x_stride + kk);
                    lanes[l] = get1::<KIND>(w.add(r * w_stride), kk).mul_add(xv, lanes[l]);
                }
                *out[t].add(o + r) = reduce8(&lanes) + bias.map_or(0.0, |b| b[r]);
            }
        }
    }
}

/// Runs `tile` over R rows and every token, T_BATCH at a time (a last odd token runs alone).
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_all_tokens<const KIND: u8, const R: usize>(
    w: *const u8,
    w_stride: usize,
    x: &[f32],
    n: usize,
    d_in: usize,
    bias: Option<&[f32]>,
    out: &[*mut f32],
    o: usize,
) {
    let mut t0 = 0;
    // SAFETY: t0 + tile width <= n, so each tile reads whole token rows of x and writes
    // through its own tokens' output pointers.
    unsafe {
        while t0 + T_BATCH <= n {
            let xp = x.as_ptr().add(t0 * d_in);
            tile::<KIND, R, T_BATCH>(w, w_stride, xp, d_in, d_in, bias, &out[t0..], o);
            t0 += T_BATCH;
        }
        if t0 < n {
            let xp = x.as_ptr().add(t0 * d_in);
            tile::<KIND, R, 1>(w, w_stride, xp, d_in, d_in, bias, &out[t0..], o);
        }
    }
}

/// From this many tokens on, batched bf16 products widen each row block to f32 once.
const WIDEN_MIN_TOKENS: usize = 3;

thread_local! {
    /// f32 copy of one block of R_BATCH widened bf16 weight rows (see `dense_rows`).
    static WIDEN_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}
/// How far ahead (bytes of weights) the widening path prefetches: a few KiB, well inside L1.
const PREFETCH_BYTES: usize = 6 * 1024;

/// `len` bf16 values at `src` widened (exactly) to f32 at `dst`.
#[target_feature(enable = "avx2,fma")]
unsafe fn widen_bf16(src: *const u8, len: usize, dst: *mut f32) {
    let n8 = len / 8 * 8;
    // SAFETY: the caller guarantees `len` readable bf16 at src and `len` writable f32 at dst.
    unsafe {
        // bf16 bits are the top half of f32 bits: interleave with zeros (one 128-bit unpack
        // per 4 values, cheaper than a 256-bit zero-extend plus shift on 128-bit FP units).
        let zero = _mm_setzero_si128();
        let mut k = 0;
        while k < n8 {
            let v = _mm_loadu_si128(src.add(2 * k) as *const __m128i);
            _mm_storeu_si128(dst.add(k) as *mut __m128i, _mm_unpacklo_epi16(zero, v));
            _mm_storeu_si128(dst.add(k + 4) as *mut __m128i, _mm_unpackhi_epi16(zero, v));
            k += 8;
        }
        for k in n8..len {
            *dst.add(k) = get1::<W_BF16>(src, k);
        }
    }
}

/// Dense rows `[o0, o0 + rows)` of W (encoding KIND, `d_in` elements per row starting at `w`)
/// against all `n` tokens of `x`; token t's results go to `out[t][o0..o0 + rows]`.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn dense_rows<const KIND: u8>(
    w: *const u8,
    elem: usize,
    rows: usize,
    x: &[f32],
    n: usize,
    d_in: usize,
    bias: Option<&[f32]>,
    out: &[*mut f32],
    o0: usize,
) {
    let stride = d_in * elem;
    let mut r = 0;
    // SAFETY: rows r.. r + R lie inside the `rows` rows the caller handed over.
    unsafe {
        if n == 1 {
            let xp = x.as_ptr();
            while r + R_DECODE <= rows {
                let b = bias.map(|b| &b[r..]);
                tile::<KIND, R_DECODE, 1>(
                    w.add(r * stride),
                    stride,
                    xp,
                    d_in,
                    d_in,
                    b,
                    out,
                    o0 + r,
                );
                r += R_DECODE;
            }
            while r < rows {
                let b = bias.map(|b| &b[r..]);
                tile::<KIND, 1, 1>(w.add(r * stride), stride, xp, d_in, d_in, b, out, o0 + r);
                r += 1;
            }
            return;
        }
        if KIND == W_BF16 && n >= WIDEN_MIN_TOKENS {
            // Widen each block of R_BATCH bf16 rows to f32 once (exact) and run every token
            // tile over the f32 copy: the widening is paid once per weight instead of once
            // per token tile (it competes with the FMAs for the FP units).
            // The f32 copy lives in a per-thread scratch buffer (rayon's workers persist), so a
            // batched decode step allocates nothing once it has grown to R_BATCH * d_in.
            let mut wf = WIDEN_SCRATCH.take();
            if wf.len() < R_BATCH * d_in {
                wf.resize(R_BATCH * d_in, 0.0);
            }
            // The weights stream from memory in bursts (one block, then a long compute over
            // every token) that the hardware prefetcher does not run far enough ahead of:
            // request the block about PREFETCH_BYTES ahead while this one computes (measured
            // on the dev box: 8 tokens x [201088, 128] from ~22-31 ms to ~19 ms per core).
            let block = R_BATCH * stride;
            let blocks_ahead = (PREFETCH_BYTES / block).max(1);
            while r + R_BATCH <= rows {
                if r + (blocks_ahead + 1) * R_BATCH <= rows {
                    let ahead = w.add(r * stride + blocks_ahead * block);
                    let mut off = 0;
                    while off < block {
                        _mm_prefetch::<_MM_HINT_T0>(ahead.add(off) as *const i8);
                        off += 64;
                    }
                }
                widen_bf16(w.add(r * stride), R_BATCH * d_in, wf.as_mut_ptr());
                let b = bias.map(|b| &b[r..]);
                let wp = wf.as_ptr() as *const u8;
                rows_all_tokens::<W_F32, R_BATCH>(wp, 4 * d_in, x, n, d_in, b, out, o0 + r);
                r += R_BATCH;
            }
            WIDEN_SCRATCH.set(wf);
        }
        while r + R_BATCH <= rows {
            let b = bias.map(|b| &b[r..]);
            rows_all_tokens::<KIND, R_BATCH>(w.add(r * stride), stride, x, n, d_in, b, out, o0 + r);
            r += R_BATCH;
        }
        while r < rows {
            let b = bias.map(|b| &b[r..]);
            rows_all_tokens::<KIND, 1>(w.add(r * stride), stride, x, n, d_in, b, out, o0 + r);
            r += 1;
        }
    }
}

/// Dense rows `[o0, o0 + rows)` (f32 or bf16): `w` holds those `rows` rows of `d_in`; token
/// t's results go to `out.tok[t]` at offsets `o0..o0 + rows`.
///
/// # Safety
/// Each of the `n` pointers in `out.tok` must be valid for writes at `o0..o0 + rows`, and no
/// other thread may access those elements during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn dense_rows_of<T: crate::matmul::DenseWeight>(
    w: &[T],
    x: &[f32],
    n: usize,
    d_in: usize,
    rows: usize,
    bias: Option<&[f32]>,
    out: OutRows<'_>,
    o0: usize,
) {
    assert!(w.len() >= rows * d_in && x.len() >= n * d_in && out.tok.len() >= n);
    assert!(bias.is_none_or(|b| b.len() >= rows));
    let elem_bytes = std::mem::size_of::<T>();
    let kind = if T::IS_BF16 { W_BF16 } else { W_F32 };
    let wp = w.as_ptr() as *const u8;
    // SAFETY: the caller (the `Avx2` token) proves AVX2 and FMA, and guarantees the output
    // pointers; the asserts above bound every read, and `T::IS_BF16`
    // tells the element type `w` really has.
    unsafe {
        if kind == W_BF16 {
            dense_rows::<W_BF16>(wp, elem_bytes, rows, x, n, d_in, bias, out.tok, o0)
        } else {
            dense_rows::<W_F32>(wp, elem_bytes, rows, x, n, d_in, bias, out.tok, o0)
        }
    }
}

// ---- MXFP4 ---------------------------------------------------------------------------------
//
// Numerics of both MXFP4 paths (decode and batch), identical per (row, token): activations are
// read in a per-block permuted order (the 16 even elements of a 32-block, then the 16 odd ones,
// matching the low and high nibbles of the 16 packed bytes, see `matmul::permute_x`); per block,
// `b = w0*x0; b = fma(w1, x1, b); b = fma(w2, x2, b); b = fma(w3, x3, b)` with `w` = twice the
// FP4 values (exact small integers), then `acc = fma(b, scale / 2, acc)`. One scale multiply per
// block instead of per weight; differs from the scalar oracle only by rounding.

/// Twice the FP4 E2M1 values, as int8 (all are integers then), indexed by code.
const FP4_X2_I8: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// The 4 groups of 8 weights (twice their FP4 values, exact) of the block at `p`, in the
/// permuted order: even elements 0..16 (two groups), then odd ones.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block_weights(p: *const u8, lut: __m128i) -> [__m256; 4] {
    // SAFETY: the caller guarantees 16 readable bytes at p.
    unsafe {
        let v = _mm_loadu_si128(p as *const __m128i);
        let m = _mm_set1_epi8(0x0F);
        let even = _mm_shuffle_epi8(lut, _mm_and_si128(v, m));
        let odd = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16::<4>(v), m));
        [
            cvt8(even),
            cvt8(_mm_unpackhi_epi64(even, even)),
            cvt8(odd),
            cvt8(_mm_unpackhi_epi64(odd, odd)),
        ]
    }
}

/// The low 8 int8 values of `c` as f32.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn cvt8(c: __m128i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c))
}

/// One token (permuted, `xp`) against R MXFP4 rows, dequantization fused: the R dots (+ bias).
#[target_feature(enable = "avx2,fma")]
unsafe fn mxfp4_dot_rows<const R: usize>(
    blocks: &[u8],
    scales: &[u8],
    xp: &[f32],
    d_in: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let nb = d_in / 32;
    // SAFETY: the caller guarantees R rows of nb blocks (16 bytes each) and nb scales, and
    // xp of d_in floats.
    unsafe {
        let lut = _mm_loadu_si128(FP4_X2_I8.as_ptr() as *const __m128i);
        let mut acc = [_mm256_setzero_ps(); R];
        for blk in 0..nb {
            let xq = xp.as_ptr().add(blk * 32);
            let xv = [
                _mm256_loadu_ps(xq),
                _mm256_loadu_ps(xq.add(8)),
                _mm256_loadu_ps(xq.add(16)),
                _mm256_loadu_ps(xq.add(24)),
            ];
            for r in 0..R {
                let wv = block_weights(blocks.as_ptr().add((r * nb + blk) * 16), lut);
                let mut b = _mm256_mul_ps(wv[0], xv[0]);
                b = _mm256_fmadd_ps(wv[1], xv[1], b);
                b = _mm256_fmadd_ps(wv[2], xv[2], b);
                b = _mm256_fmadd_ps(wv[3], xv[3], b);
                let hs = _mm256_set1_ps(HALF_SCALE[*scales.get_unchecked(r * nb + blk) as usize]);
                acc[r] = _mm256_fmadd_ps(b, hs, acc[r]);
            }
        }
        for r in 0..R {
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r]);
            out[r] = reduce8(&lanes) + bias.map_or(0.0, |b| b[r]);
        }
    }
}

/// Decodes MXFP4 rows into `w` (f32 [rows, d_in], twice the FP4 values, permuted order) and
/// `hs` (f32 [rows, d_in/32], half scales).
#[target_feature(enable = "avx2,fma")]
unsafe fn mxfp4_decode_rows(blocks: &[u8], scales: &[u8], w: &mut [f32], hs: &mut [f32]) {
    let n_blocks = scales.len();
    assert!(blocks.len() >= n_blocks * 16 && w.len() >= n_blocks * 32 && hs.len() >= n_blocks);
    // SAFETY: bounds asserted above.
    unsafe {
        let lut = _mm_loadu_si128(FP4_X2_I8.as_ptr() as *const __m128i);
        for b in 0..n_blocks {
            let wv = block_weights(blocks.as_ptr().add(b * 16), lut);
            let d = w.as_mut_ptr().add(b * 32);
            for (j, v) in wv.iter().enumerate() {
                _mm256_storeu_ps(d.add(8 * j), *v);
            }
            hs[b] = HALF_SCALE[scales[b] as usize];
        }
    }
}

/// R decoded rows (`w` + r * d_in, half scales `hs` + r * nb) against T permuted tokens
/// (`xp` + t * d_in); writes `out[r * out_stride + t]`.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
#[allow(clippy::needless_range_loop)] // r, t index two arrays at once
unsafe fn mx_tile<const R: usize, const T: usize>(
    w: *const f32,
    hs: *const f32,
    xp: *const f32,
    d_in: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
    out_stride: usize,
) {
    let nb = d_in / 32;
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    // SAFETY: offsets stay inside R rows / T tokens of d_in elements and R rows of nb scales.
    unsafe {
        for blk in 0..nb {
            let mut b = [[_mm256_setzero_ps(); T]; R];
            for j in 0..4 {
                let k = blk * 32 + 8 * j;
                let mut wv = [_mm256_setzero_ps(); R];
                for (r, wr) in wv.iter_mut().enumerate() {
                    *wr = _mm256_loadu_ps(w.add(r * d_in + k));
                }
                for t in 0..T {
                    let xv = _mm256_loadu_ps(xp.add(t * d_in + k));
                    for r in 0..R {
                        b[r][t] = if j == 0 {
                            _mm256_mul_ps(wv[r], xv)
                        } else {
                            _mm256_fmadd_ps(wv[r], xv, b[r][t])
                        };
                    }
                }
            }
            for r in 0..R {
                let s = _mm256_broadcast_ss(&*hs.add(r * nb + blk));
                for t in 0..T {
                    acc[r][t] = _mm256_fmadd_ps(b[r][t], s, acc[r][t]);
                }
            }
        }
        for r in 0..R {
            for t in 0..T {
                let mut lanes = [0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r][t]);
                out[r * out_stride + t] = reduce8(&lanes) + bias.map_or(0.0, |b| b[r]);
            }
        }
    }
}

/// Rows per tile and tokens per tile of the batched MXFP4 kernel (2 x 3: 6 accumulators, 6 block
/// sums, 2 weight vectors, 1 activation vector, 1 scale in 16 ymm registers).
const MX_R: usize = 2;
const MX_T: usize = 3;

/// R decoded rows against all n tokens, MX_T at a time.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn mx_rows_all_tokens<const R: usize>(
    w: *const f32,
    hs: *const f32,
    xp: &[f32],
    n: usize,
    d_in: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let mut t0 = 0;
    // SAFETY: t0 + tile width <= n.
    unsafe {
        while t0 + MX_T <= n {
            let x = xp.as_ptr().add(t0 * d_in);
            mx_tile::<R, MX_T>(w, hs, x, d_in, bias, &mut out[t0..], n);
            t0 += MX_T;
        }
        let x = xp.as_ptr().add(t0 * d_in);
        match n - t0 {
            0 => {}
            1 => mx_tile::<R, 1>(w, hs, x, d_in, bias, &mut out[t0..], n),
            _ => mx_tile::<R, 2>(w, hs, x, d_in, bias, &mut out[t0..], n),
        }
    }
}

/// MXFP4 rows (`blocks` [rows, d_in/32, 16], `scales` [rows, d_in/32]) against `n` tokens given
/// permuted by `matmul::permute_x` (`xp` [n, d_in]); `out` [rows, n]. `scratch` holds decoded rows.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn mxfp4_rows(
    blocks: &[u8],
    scales: &[u8],
    xp: &[f32],
    n: usize,
    d_in: usize,
    rows: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    assert!(bias.is_none_or(|b| b.len() >= rows));
    let (rb, rs) = (d_in / 2, d_in / 32);
    assert!(d_in.is_multiple_of(32) && blocks.len() >= rows * rb && scales.len() >= rows * rs);
    assert!(xp.len() >= n * d_in && out.len() >= rows * n);
    // SAFETY: AVX2+FMA checked by the caller; all slices bounded by the asserts above.
    unsafe {
        let mut r = 0;
        if n == 1 {
            while r + R_DECODE <= rows {
                mxfp4_dot_rows::<R_DECODE>(
                    &blocks[r * rb..],
                    &scales[r * rs..],
                    xp,
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
                    xp,
                    d_in,
                    bias.map(|b| &b[r..]),
                    &mut out[r..],
                );
                r += 1;
            }
            return;
        }
        scratch.resize(MX_R * (d_in + rs), 0.0);
        let (w, hs) = scratch.split_at_mut(MX_R * d_in);
        while r < rows {
            let tr = (rows - r).min(MX_R);
            mxfp4_decode_rows(
                &blocks[r * rb..(r + tr) * rb],
                &scales[r * rs..(r + tr) * rs],
                w,
                hs,
            );
            let b = bias.map(|b| &b[r..]);
            let o = &mut out[r * n..];
            if tr == MX_R {
                mx_rows_all_tokens::<MX_R>(w.as_ptr(), hs.as_ptr(), xp, n, d_in, b, o);
            } else {
                mx_rows_all_tokens::<1>(w.as_ptr(), hs.as_ptr(), xp, n, d_in, b, o);
            }
            r += tr;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    /// The 4-at-once `hadd` epilogue adds in exactly `reduce8`'s order: bit-identical sums on
    /// lanes spanning many magnitudes (where any other order rounds differently).
    #[test]
    fn reduce8x4_is_reduce8_bitwise() {
        if !crate::matmul::fast_kernels() {
            return;
        }
        let mut r = Rng(17);
        let mut reordered_differs = false;
        for _ in 0..20_000 {
            let mut lanes = [[0f32; 8]; 4];
            for l in lanes.iter_mut().flatten() {
                let scale = 10f32.powi((r.byte() % 16) as i32 - 8);
                *l = r.f() * scale;
            }
            // SAFETY: AVX2+FMA checked above; each array holds 8 floats.
            let got = unsafe {
                let v = lanes.map(|l| _mm256_loadu_ps(l.as_ptr()));
                let mut out = [0f32; 4];
                _mm_storeu_ps(out.as_mut_ptr(), reduce8x4(v[0], v[1], v[2], v[3]));
                out
            };
            for (g, l) in got.iter().zip(&lanes) {
                assert_eq!(g.to_bits(), reduce8(l).to_bits(), "{l:?}");
                let sequential = l.iter().fold(0f32, |a, &v| a + v);
                reordered_differs |= sequential.to_bits() != g.to_bits();
            }
        }
        // The data is such that the order matters (else this test would prove nothing).
        assert!(reordered_differs);
    }
}
