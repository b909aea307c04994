//! AVX-512 dense products (f32 activations, f32 or bf16 weights), bit for bit the AVX2 level's
//! results: the numerics contract of `cpu/avx2/dense.rs` (per output and token one 8-lane f32
//! accumulator over k, lane = k % 8, one FMA per step; the tail into lanes 0.. with scalar
//! FMAs; lanes summed ((0+1)+(2+3))+((4+5)+(6+7)); then the bias) is kept by giving each
//! 512-bit register two rows: lanes 0..8 are row a's accumulator, lanes 8..16 row b's, and
//! the 8 activations of a step are broadcast to both halves. Twice the multiply-adds per FMA
//! of the AVX2 kernels, the same order per output.
//!
//! Decode and small batches (up to 16 tokens): 4 rows (two row pairs) × up to 8 tokens per
//! pass from the weights in place. Larger batches (prefill) widen a block of 32 rows to f32
//! once (exact; each row pair interleaved by 8, so a step is one load), then walk the inputs
//! in slices of 256 with tiles of 8 rows × 4 tokens, the partial sums parked between slices.

use std::arch::x86_64::*;

use crate::cpu::OutRows;
use crate::matmul::reduce8;
use crate::matmul::DenseWeight;

/// Row pairs per tile when reading the weights in place.
const PAIRS: usize = 2;
/// Tokens per tile of the blocked batch product.
const T_BATCH: usize = 4;
/// From this many tokens on, batches widen each row block to f32 once; below, the tiles read
/// the weights in place (8 tokens per tile), which keeps the memory stream going during the
/// compute: a decode step of several requests is bandwidth-bound, not FLOP-bound.
const WIDEN_MIN_TOKENS: usize = 17;
/// Tokens per tile when reading the weights in place.
const T_DIRECT: usize = 8;

thread_local! {
    /// The blocked batch product's partial sums: f32 [tokens, 16 pairs, 16].
    static ACC_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// f32 copy of one block of [`BLOCK_ROWS`] widened rows, pairs interleaved (see `dense_rows`).
    static WIDEN_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Weight encodings the tiles read: f32 or bf16 rows in place, or a widened block whose row
/// pairs are interleaved by 8 (`[a k..k+8, b k..k+8]` contiguous: one load per step).
const W_F32: u8 = 0;
const W_BF16: u8 = 1;
const W_PAIRED: u8 = 2;

/// Elements k..k+8 of rows a and b (read in place) as one register `[a | b]` (bf16 widened
/// exactly).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn load8x2<const KIND: u8>(a: *const u8, b: *const u8, k: usize) -> __m512 {
    // SAFETY: the caller guarantees elements k..k+8 lie inside both rows.
    unsafe {
        if KIND == W_BF16 {
            let va = _mm_loadu_si128(a.add(2 * k) as *const __m128i);
            let vb = _mm_loadu_si128(b.add(2 * k) as *const __m128i);
            let v = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(va), vb);
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(v)))
        } else {
            let va = _mm256_loadu_pd(a.add(4 * k) as *const f64);
            let vb = _mm256_loadu_pd(b.add(4 * k) as *const f64);
            _mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castpd256_pd512(va), vb))
        }
    }
}

/// Element k of row `half` (0: a, 1: b) of a pair whose rows are `a`, `b`.
#[inline(always)]
unsafe fn get1<const KIND: u8>(a: *const u8, b: *const u8, half: usize, k: usize) -> f32 {
    // SAFETY: the caller guarantees element k lies inside the rows.
    unsafe {
        if KIND == W_PAIRED {
            // Interleaved by 8: element k of row `half` sits at 16·(k / 8) + 8·half + k % 8.
            return (a as *const f32)
                .add(16 * (k / 8) + 8 * half + k % 8)
                .read_unaligned();
        }
        let row = if half == 0 { a } else { b };
        if KIND == W_BF16 {
            f32::from_bits(((row as *const u16).add(k).read_unaligned() as u32) << 16)
        } else {
            (row as *const f32).add(k).read_unaligned()
        }
    }
}

/// Dots of P row pairs (`rows[p]` = rows a, b) with T tokens (`x` + t · `x_stride` floats),
/// `d_in` elements each: `[token][pair][a, b]`, without bias.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn tile<const KIND: u8, const P: usize, const T: usize>(
    rows: [[*const u8; 2]; P],
    x: *const f32,
    x_stride: usize,
    d_in: usize,
) -> [[[f32; 2]; P]; T] {
    let n8 = d_in / 8 * 8;
    let mut acc = [[_mm512_setzero_ps(); T]; P];
    let mut res = [[[0f32; 2]; P]; T];
    // SAFETY: every offset stays inside the rows of d_in weights and the T token rows.
    unsafe {
        let mut k = 0;
        while k < n8 {
            let mut xv = [_mm512_setzero_ps(); T];
            for (t, xt) in xv.iter_mut().enumerate() {
                let v = _mm256_loadu_pd(x.add(t * x_stride + k) as *const f64);
                *xt = _mm512_castpd_ps(_mm512_broadcast_f64x4(v));
            }
            for (p, accp) in acc.iter_mut().enumerate() {
                let wv = load8x2::<KIND>(rows[p][0], rows[p][1], k);
                for (a, xt) in accp.iter_mut().zip(&xv) {
                    *a = _mm512_fmadd_ps(wv, *xt, *a);
                }
            }
            k += 8;
        }
        for (p, accp) in acc.iter().enumerate() {
            for (t, a) in accp.iter().enumerate() {
                let mut lanes = [0f32; 16];
                _mm512_storeu_ps(lanes.as_mut_ptr(), *a);
                for (half, lane) in lanes.chunks_exact_mut(8).enumerate() {
                    for (l, kk) in (n8..d_in).enumerate() {
                        let xv = *x.add(t * x_stride + kk);
                        lane[l] =
                            get1::<KIND>(rows[p][0], rows[p][1], half, kk).mul_add(xv, lane[l]);
                    }
                    res[t][p][half] = reduce8(lane);
                }
            }
        }
    }
    res
}

/// The row pairs of tile rows `r .. r + 2P`: pointers into `w` (rows of `stride` bytes; a
/// missing partner past `rows` reads row `rows - 1` again, its result dropped).
fn pair_ptrs<const P: usize>(
    w: *const u8,
    stride: usize,
    rows: usize,
    r: usize,
) -> [[*const u8; 2]; P] {
    let mut ptrs = [[w; 2]; P];
    for (p, pr) in ptrs.iter_mut().enumerate() {
        let row = |i: usize| w.wrapping_add((r + i).min(rows - 1) * stride);
        *pr = [row(2 * p), row(2 * p + 1)];
    }
    ptrs
}

/// Tile rows `r .. r + 2P` against tokens `t0 .. t0 + T`, written with their bias (rows past
/// `rows` dropped).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn run_tile<const KIND: u8, const P: usize, const T: usize>(
    w: *const u8,
    stride: usize,
    rows: usize,
    r: usize,
    x: &[f32],
    t0: usize,
    d_in: usize,
    bias: Option<&[f32]>,
    out: &[*mut f32],
    o0: usize,
) {
    let ptrs = pair_ptrs::<P>(w, stride, rows, r);
    // SAFETY: the pair pointers stay inside the rows handed over; tokens t0..t0 + T exist; the
    // output pointers are valid for rows o0..o0 + rows (the caller's contract).
    unsafe {
        let res = tile::<KIND, P, T>(ptrs, x.as_ptr().add(t0 * d_in), d_in, d_in);
        for (t, per_pair) in res.iter().enumerate() {
            for (i, v) in per_pair.iter().flatten().enumerate() {
                if r + i < rows {
                    // + 0.0 without a bias, as in the scalar epilogue (-0.0 becomes +0.0).
                    *out[t0 + t].add(o0 + r + i) = v + bias.map_or(0.0, |b| b[r + i]);
                }
            }
        }
    }
}

/// Every token against tile rows `r .. r + 2P` read in place, [`T_DIRECT`] tokens at a time.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_all_tokens<const KIND: u8, const P: usize>(
    w: *const u8,
    stride: usize,
    rows: usize,
    r: usize,
    x: &[f32],
    n: usize,
    d_in: usize,
    bias: Option<&[f32]>,
    out: &[*mut f32],
    o0: usize,
) {
    let mut t = 0;
    // SAFETY: forwarded contract; each tile covers tokens inside 0..n.
    unsafe {
        while t + T_DIRECT <= n {
            run_tile::<KIND, P, T_DIRECT>(w, stride, rows, r, x, t, d_in, bias, out, o0);
            t += T_DIRECT;
        }
        match n - t {
            7 => run_tile::<KIND, P, 7>(w, stride, rows, r, x, t, d_in, bias, out, o0),
            6 => run_tile::<KIND, P, 6>(w, stride, rows, r, x, t, d_in, bias, out, o0),
            5 => run_tile::<KIND, P, 5>(w, stride, rows, r, x, t, d_in, bias, out, o0),
            4 => run_tile::<KIND, P, 4>(w, stride, rows, r, x, t, d_in, bias, out, o0),
            3 => run_tile::<KIND, P, 3>(w, stride, rows, r, x, t, d_in, bias, out, o0),
            2 => run_tile::<KIND, P, 2>(w, stride, rows, r, x, t, d_in, bias, out, o0),
            1 => run_tile::<KIND, P, 1>(w, stride, rows, r, x, t, d_in, bias, out, o0),
            _ => {}
        }
    }
}

/// Floats of one interleaved pair block (see `W_PAIRED`): 16 per started group of 8 inputs.
fn paired_len(d_in: usize) -> usize {
    16 * d_in.div_ceil(8)
}

/// Rows `a` and `b` (encoding `KIND`, f32 or bf16; `b` null: a zero row) widened exactly into
/// one interleaved pair block at `dst` ([`paired_len`] floats).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn widen_pair<const KIND: u8>(a: *const u8, b: *const u8, d_in: usize, dst: *mut f32) {
    let n8 = d_in / 8 * 8;
    // SAFETY: the caller guarantees d_in readable elements per non-null row and the block size.
    unsafe {
        let mut k = 0;
        while k < n8 {
            let f = if b.is_null() {
                // Row a in both halves, the upper one then cleared.
                _mm512_maskz_mov_ps(0x00FF, load8x2::<KIND>(a, a, k))
            } else {
                load8x2::<KIND>(a, b, k)
            };
            _mm512_storeu_ps(dst.add(2 * k), f);
            k += 8;
        }
        if n8 < d_in {
            let tail = dst.add(2 * n8);
            for l in 0..16 {
                *tail.add(l) = 0.0;
            }
            for kk in n8..d_in {
                *tail.add(kk - n8) = get1::<KIND>(a, a, 0, kk);
                if !b.is_null() {
                    *tail.add(8 + kk - n8) = get1::<KIND>(b, b, 0, kk);
                }
            }
        }
    }
}

/// Inputs per slice of the blocked batch product: a slice of a block's 16 pairs is 32 KB.
const K_BLOCK: usize = 256;

/// P interleaved row pairs (`pairs[p]`, see `W_PAIRED`) against T tokens (`x` + t · `x_stride`)
/// over inputs `k0..k1` (multiples of 8): adds into the 8-lane accumulators at `acc` + t ·
/// `acc_t` + 16 p (both rows of a pair), which start at zero when `fresh`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_k<const P: usize, const T: usize>(
    pairs: [*const f32; P],
    x: *const f32,
    x_stride: usize,
    k0: usize,
    k1: usize,
    acc: *mut f32,
    acc_t: usize,
    fresh: bool,
) {
    // SAFETY: the caller guarantees the pairs cover k1 inputs, T token rows and the
    // accumulator slots.
    unsafe {
        let mut a = [[_mm512_setzero_ps(); T]; P];
        if !fresh {
            for (p, ap) in a.iter_mut().enumerate() {
                for (t, v) in ap.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(acc.add(t * acc_t + 16 * p));
                }
            }
        }
        let mut k = k0;
        while k < k1 {
            let mut xv = [_mm512_setzero_ps(); T];
            for (t, xt) in xv.iter_mut().enumerate() {
                let v = _mm256_loadu_pd(x.add(t * x_stride + k) as *const f64);
                *xt = _mm512_castpd_ps(_mm512_broadcast_f64x4(v));
            }
            for (p, ap) in a.iter_mut().enumerate() {
                let wv = _mm512_loadu_ps(pairs[p].add(2 * k));
                for (v, xt) in ap.iter_mut().zip(&xv) {
                    *v = _mm512_fmadd_ps(wv, *xt, *v);
                }
            }
            k += 8;
        }
        for (p, ap) in a.iter().enumerate() {
            for (t, v) in ap.iter().enumerate() {
                _mm512_storeu_ps(acc.add(t * acc_t + 16 * p), *v);
            }
        }
    }
}

/// Rows per widened block in batches: 16 row pairs (~368 KB at 2880 inputs, L2-resident), so
/// each token tile's activations are read once per 32 rows.
const BLOCK_ROWS: usize = 32;
/// Row pairs per batch tile: 4 pairs × [`T_BATCH`] tokens = 16 accumulators; each activation
/// load serves 8 rows, each weight load 4 tokens.
const BATCH_PAIRS: usize = 4;

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
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
    let block = 2 * PAIRS;
    // SAFETY: forwarded contract; blocks are clamped to the rows handed over.
    unsafe {
        if n >= WIDEN_MIN_TOKENS {
            // Widen a block of rows to interleaved f32 pairs once (one load per step), then
            // walk the inputs in slices of K_BLOCK: one slice of the block's pairs (32 KB)
            // stays in L1 while every token tile runs over it, the partial 8-lane sums parked
            // in `ACC_SCRATCH` between slices (stored and reloaded unchanged, so the order of
            // the additions, and the bits, are those of one pass).
            let pl = paired_len(d_in);
            let n8 = d_in / 8 * 8;
            let pairs_per_block = BLOCK_ROWS / 2;
            let mut wf = WIDEN_SCRATCH.take();
            if wf.len() < pairs_per_block * pl {
                wf.resize(pairs_per_block * pl, 0.0);
            }
            let mut acc = ACC_SCRATCH.take();
            let acc_t = pairs_per_block * 16;
            if acc.len() < n * acc_t {
                acc.resize(n * acc_t, 0.0);
            }
            let mut r = 0;
            while r < rows {
                let br = BLOCK_ROWS.min(rows - r);
                let np = br.div_ceil(2);
                for p in 0..np {
                    let a = w.add((r + 2 * p) * stride);
                    let b = if r + 2 * p + 1 < rows {
                        w.add((r + 2 * p + 1) * stride)
                    } else {
                        std::ptr::null()
                    };
                    widen_pair::<KIND>(a, b, d_in, wf.as_mut_ptr().add(p * pl));
                }
                let wp = wf.as_ptr();
                let ap = acc.as_mut_ptr();
                let mut k0 = 0;
                while k0 < n8.max(1) {
                    let k1 = (k0 + K_BLOCK).min(n8);
                    let fresh = k0 == 0;
                    let mut t = 0;
                    while t < n {
                        let tt = T_BATCH.min(n - t);
                        let xt = x.as_ptr().add(t * d_in);
                        let mut p = 0;
                        // Tiles past `np` read stale (allocated) pairs, dropped below.
                        while p < np {
                            let pp: [*const f32; BATCH_PAIRS] =
                                std::array::from_fn(|i| wp.add((p + i) * pl));
                            let at = ap.add(t * acc_t + p * 16);
                            match tt {
                                4 => {
                                    tile_k::<BATCH_PAIRS, 4>(pp, xt, d_in, k0, k1, at, acc_t, fresh)
                                }
                                3 => {
                                    tile_k::<BATCH_PAIRS, 3>(pp, xt, d_in, k0, k1, at, acc_t, fresh)
                                }
                                2 => {
                                    tile_k::<BATCH_PAIRS, 2>(pp, xt, d_in, k0, k1, at, acc_t, fresh)
                                }
                                _ => {
                                    tile_k::<BATCH_PAIRS, 1>(pp, xt, d_in, k0, k1, at, acc_t, fresh)
                                }
                            }
                            p += BATCH_PAIRS;
                        }
                        t += tt;
                    }
                    k0 = k1.max(k0 + 1);
                }
                // Epilogue: the tail inputs into lanes 0.., the lanes summed, the bias added.
                for t in 0..n {
                    for p in 0..np {
                        let lanes = std::slice::from_raw_parts_mut(ap.add(t * acc_t + p * 16), 16);
                        if n8 == 0 {
                            lanes.fill(0.0);
                        }
                        for (half, lane) in lanes.chunks_exact_mut(8).enumerate() {
                            let row = r + 2 * p + half;
                            if row >= rows {
                                continue;
                            }
                            let pair = wp.add(p * pl) as *const u8;
                            for (l, kk) in (n8..d_in).enumerate() {
                                let xv = x[t * d_in + kk];
                                lane[l] =
                                    get1::<W_PAIRED>(pair, pair, half, kk).mul_add(xv, lane[l]);
                            }
                            *out[t].add(o0 + row) = reduce8(lane) + bias.map_or(0.0, |b| b[row]);
                        }
                    }
                }
                r += br;
            }
            ACC_SCRATCH.set(acc);
            WIDEN_SCRATCH.set(wf);
            return;
        }
        let mut r = 0;
        while r < rows {
            rows_all_tokens::<KIND, PAIRS>(w, stride, rows, r, x, n, d_in, bias, out, o0);
            r += block;
        }
    }
}

/// Dense rows `[o0, o0 + rows)` (f32 or bf16): `w` holds those `rows` rows of `d_in`; token
/// t's results go to `out.tok[t]` at offsets `o0..o0 + rows`.
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL. Each of the `n` pointers in `out.tok` must be valid for
/// writes at `o0..o0 + rows`, and no other thread may access those elements during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn dense_rows_of<T: DenseWeight>(
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
    if rows == 0 || n == 0 {
        return;
    }
    let elem = std::mem::size_of::<T>();
    let wp = w.as_ptr() as *const u8;
    // SAFETY: the caller's contract; the asserts bound every read; `T::IS_BF16` tells the
    // element type `w` really has.
    unsafe {
        if T::IS_BF16 {
            dense_rows::<W_BF16>(wp, elem, rows, x, n, d_in, bias, out.tok, o0)
        } else {
            dense_rows::<W_F32>(wp, elem, rows, x, n, d_in, bias, out.tok, o0)
        }
    }
}
