//! NEON f32/bf16 dense rows and exact f32 MXFP4 rows (aarch64 only). Owns the register tiles;
//! the shapes checks, the split over threads and the scalar twins stay in `matmul.rs`.
//!
//! Numerics: the contract of `cpu/avx2/dense.rs`, so both levels give the same bits. Each
//! (output row, token) pair has 8 f32 lanes, held as two 4-lane registers (lanes 0-3, 4-7);
//! lane = k % 8, one fused multiply-add per step (`vfmaq_f32`); the tail (k >= d_in / 8 * 8) goes
//! into lanes 0.. with scalar `mul_add`; lanes are summed ((0+1)+(2+3))+((4+5)+(6+7)), then the
//! bias added (+0.0 without one). MXFP4, per 32-block in the permuted order of
//! `matmul::permute_x`: `b = w0·x0`, then `b = fma(wj, xj, b)` for the other three groups of 8,
//! with `w` = twice the FP4 value (exact), then `acc = fma(b, scale / 2, acc)`. Tiling never
//! changes that order, so a token alone gives the same bits as inside a batch.

use std::arch::aarch64::*;
use std::cell::RefCell;

use crate::cpu::OutRows;
use crate::dtype::HALF_SCALE;
use crate::matmul::reduce8;
use crate::q8::FP4_X2_I8;

/// Weight row encodings the dense tile kernel reads.
const W_F32: u8 = 0;
const W_BF16: u8 = 1;

/// Rows per tile for one token (8 independent FMA chains: two per row).
const R_DECODE: usize = 4;
/// Rows x tokens per tile in batches: 4 x 2 tiles keep 16 accumulators, 4 activation and 2
/// weight registers in the 32 vector registers.
const R_BATCH: usize = 4;
const T_BATCH: usize = 2;
/// From this many tokens on, batched bf16 products widen each row block to f32 once.
const WIDEN_MIN_TOKENS: usize = 3;

/// Eight f32 lanes as two NEON registers: lanes 0-3, lanes 4-7.
type Lanes8 = [float32x4_t; 2];

#[inline(always)]
fn zero8() -> Lanes8 {
    // SAFETY: NEON is baseline on aarch64; register-only.
    unsafe { [vdupq_n_f32(0.0); 2] }
}

/// `acc + a·b` per lane, fused.
#[inline(always)]
fn fma8(acc: Lanes8, a: Lanes8, b: Lanes8) -> Lanes8 {
    // SAFETY: as above.
    unsafe { [vfmaq_f32(acc[0], a[0], b[0]), vfmaq_f32(acc[1], a[1], b[1])] }
}

/// The lanes in memory order.
#[inline(always)]
fn spill8(v: Lanes8) -> [f32; 8] {
    let mut l = [0f32; 8];
    // SAFETY: `l` holds 8 floats.
    unsafe {
        vst1q_f32(l.as_mut_ptr(), v[0]);
        vst1q_f32(l.as_mut_ptr().add(4), v[1]);
    }
    l
}

/// 8 f32 at `p`.
#[inline(always)]
unsafe fn load_f32x8(p: *const f32) -> Lanes8 {
    // SAFETY: the caller guarantees 8 readable floats at p.
    unsafe { [vld1q_f32(p), vld1q_f32(p.add(4))] }
}

/// 8 weights of encoding `KIND` starting at element `k` of the row at `row`; bf16 widens by a
/// 16-bit left shift (its bits are the top half of the f32's).
#[inline(always)]
unsafe fn load8<const KIND: u8>(row: *const u8, k: usize) -> Lanes8 {
    // SAFETY: the caller guarantees elements k..k+8 lie inside the row.
    unsafe {
        if KIND == W_BF16 {
            let v = vld1q_u16((row as *const u16).add(k));
            [
                vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(v))),
                vreinterpretq_f32_u32(vshll_high_n_u16::<16>(v)),
            ]
        } else {
            load_f32x8((row as *const f32).add(k))
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

/// Dots of R weight rows (`w` + r · `w_stride` bytes) with T token rows (`x` + t · `x_stride`
/// floats), `d_in` elements each; writes `out[t][o + r]` = dot + `bias[r]`.
#[allow(clippy::too_many_arguments)]
#[allow(clippy::needless_range_loop)] // r, t index two arrays at once
#[inline(always)]
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
    let mut acc = [[zero8(); T]; R];
    // SAFETY: every offset stays inside the R rows of d_in weights and the T rows of d_in
    // activations the caller handed over, and rows o..o + R of the T output rows.
    unsafe {
        let mut k = 0;
        while k < n8 {
            let mut xv = [zero8(); T];
            for (t, xt) in xv.iter_mut().enumerate() {
                *xt = load_f32x8(x.add(t * x_stride + k));
            }
            for r in 0..R {
                let wv = load8::<KIND>(w.add(r * w_stride), k);
                for t in 0..T {
                    acc[r][t] = fma8(acc[r][t], wv, xv[t]);
                }
            }
            k += 8;
        }
        for r in 0..R {
            for t in 0..T {
                let mut lanes = spill8(acc[r][t]);
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
#[allow(clippy::too_many_arguments)]
#[inline(always)]
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

thread_local! {
    /// f32 copy of one block of R_BATCH widened bf16 weight rows (see `dense_rows`).
    static WIDEN_SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `len` bf16 values at `src` widened (exactly) to f32 at `dst`.
unsafe fn widen_bf16(src: *const u8, len: usize, dst: *mut f32) {
    let n8 = len / 8 * 8;
    // SAFETY: the caller guarantees `len` readable bf16 at src and `len` writable f32 at dst.
    unsafe {
        let mut k = 0;
        while k < n8 {
            let v = load8::<W_BF16>(src, k);
            vst1q_f32(dst.add(k), v[0]);
            vst1q_f32(dst.add(k + 4), v[1]);
            k += 8;
        }
        for k in n8..len {
            *dst.add(k) = get1::<W_BF16>(src, k);
        }
    }
}

/// Dense rows `[o0, o0 + rows)` of W (encoding KIND, `d_in` elements per row starting at `w`)
/// against all `n` tokens of `x`; token t's results go to `out[t][o0..o0 + rows]`.
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
    // SAFETY: rows r .. r + R lie inside the `rows` rows the caller handed over.
    unsafe {
        if n == 1 {
            let xp = x.as_ptr();
            while r + R_DECODE <= rows {
                let b = bias.map(|b| &b[r..]);
                let wr = w.add(r * stride);
                tile::<KIND, R_DECODE, 1>(wr, stride, xp, d_in, d_in, b, out, o0 + r);
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
            // Widen each block of R_BATCH rows to f32 once (exact) and run every token tile
            // over the copy: the shifts are paid once per weight, not once per token tile.
            // The per-thread buffer (rayon's workers persist) makes a batched step allocate
            // nothing once it has grown.
            let mut wf = WIDEN_SCRATCH.take();
            if wf.len() < R_BATCH * d_in {
                wf.resize(R_BATCH * d_in, 0.0);
            }
            while r + R_BATCH <= rows {
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
    let wp = w.as_ptr() as *const u8;
    // SAFETY: the asserts above bound every read, `T::IS_BF16` tells the element type `w`
    // really has, and the caller guarantees the output pointers.
    unsafe {
        if T::IS_BF16 {
            dense_rows::<W_BF16>(wp, elem_bytes, rows, x, n, d_in, bias, out.tok, o0)
        } else {
            dense_rows::<W_F32>(wp, elem_bytes, rows, x, n, d_in, bias, out.tok, o0)
        }
    }
}

// ---- MXFP4 (exact f32) ---------------------------------------------------------------------

/// Rows per tile and tokens per tile of the batched MXFP4 kernel (2 x 3: 12 accumulators and
/// 12 block sums, 4 weight registers, 2 activation registers and a scale in 32 registers).
const MX_R: usize = 2;
const MX_T: usize = 3;

/// The low 4 and high 4 of 8 int8 values (`c`) as f32.
#[inline(always)]
fn cvt8(c: int8x8_t) -> Lanes8 {
    // SAFETY: NEON is baseline on aarch64; register-only.
    unsafe {
        let h = vmovl_s8(c);
        [
            vcvtq_f32_s32(vmovl_s16(vget_low_s16(h))),
            vcvtq_f32_s32(vmovl_high_s16(h)),
        ]
    }
}

/// The 4 groups of 8 weights (twice their FP4 values, exact) of the 16-byte block at `p`, in
/// the permuted order: even elements 0..16 (low nibbles, two groups), then the odd ones.
#[inline(always)]
unsafe fn block_weights(p: *const u8, lut: int8x16_t) -> [Lanes8; 4] {
    // SAFETY: the caller guarantees 16 readable bytes at p.
    unsafe {
        let v = vld1q_u8(p);
        let even = vqtbl1q_s8(lut, vandq_u8(v, vdupq_n_u8(0x0F)));
        let odd = vqtbl1q_s8(lut, vshrq_n_u8::<4>(v));
        [
            cvt8(vget_low_s8(even)),
            cvt8(vget_high_s8(even)),
            cvt8(vget_low_s8(odd)),
            cvt8(vget_high_s8(odd)),
        ]
    }
}

#[inline(always)]
fn fp4_lut() -> int8x16_t {
    // SAFETY: the table holds 16 bytes.
    unsafe { vld1q_s8(FP4_X2_I8.as_ptr()) }
}

/// One token (permuted, `xp`) against R MXFP4 rows, dequantization fused: the R dots (+ bias).
#[inline(always)]
unsafe fn mxfp4_dot_rows<const R: usize>(
    blocks: &[u8],
    scales: &[u8],
    xp: &[f32],
    d_in: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let nb = d_in / 32;
    // SAFETY: the caller guarantees R rows of nb blocks (16 bytes each) and nb scales, xp of
    // d_in floats and R outputs.
    unsafe {
        let lut = fp4_lut();
        let mut acc = [zero8(); R];
        for blk in 0..nb {
            let xq = xp.as_ptr().add(blk * 32);
            let xv = [
                load_f32x8(xq),
                load_f32x8(xq.add(8)),
                load_f32x8(xq.add(16)),
                load_f32x8(xq.add(24)),
            ];
            for (r, a) in acc.iter_mut().enumerate() {
                let wv = block_weights(blocks.as_ptr().add((r * nb + blk) * 16), lut);
                let mut b = [vmulq_f32(wv[0][0], xv[0][0]), vmulq_f32(wv[0][1], xv[0][1])];
                b = fma8(b, wv[1], xv[1]);
                b = fma8(b, wv[2], xv[2]);
                b = fma8(b, wv[3], xv[3]);
                let hs = vdupq_n_f32(HALF_SCALE[*scales.get_unchecked(r * nb + blk) as usize]);
                *a = fma8(*a, b, [hs, hs]);
            }
        }
        for (r, a) in acc.iter().enumerate() {
            out[r] = reduce8(&spill8(*a)) + bias.map_or(0.0, |b| b[r]);
        }
    }
}

/// Decodes MXFP4 rows into `w` (f32 [rows, d_in], twice the FP4 values, permuted order) and
/// `hs` (f32 [rows, d_in/32], half scales).
fn mxfp4_decode_rows(blocks: &[u8], scales: &[u8], w: &mut [f32], hs: &mut [f32]) {
    let n_blocks = scales.len();
    assert!(blocks.len() >= n_blocks * 16 && w.len() >= n_blocks * 32 && hs.len() >= n_blocks);
    let lut = fp4_lut();
    // SAFETY: bounds asserted above.
    unsafe {
        for b in 0..n_blocks {
            let wv = block_weights(blocks.as_ptr().add(b * 16), lut);
            let d = w.as_mut_ptr().add(b * 32);
            for (j, v) in wv.iter().enumerate() {
                vst1q_f32(d.add(8 * j), v[0]);
                vst1q_f32(d.add(8 * j + 4), v[1]);
            }
        }
    }
    for (h, &s) in hs.iter_mut().zip(scales) {
        *h = HALF_SCALE[s as usize];
    }
}

/// R decoded rows (`w` + r · d_in, half scales `hs` + r · nb) against T permuted tokens
/// (`xp` + t · d_in); writes `out[r · out_stride + t]`.
#[allow(clippy::needless_range_loop)] // r, t index two arrays at once
#[inline(always)]
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
    let mut acc = [[zero8(); T]; R];
    // SAFETY: offsets stay inside R rows / T tokens of d_in elements and R rows of nb scales.
    unsafe {
        for blk in 0..nb {
            let mut b = [[zero8(); T]; R];
            for j in 0..4 {
                let k = blk * 32 + 8 * j;
                let mut wv = [zero8(); R];
                for (r, wr) in wv.iter_mut().enumerate() {
                    *wr = load_f32x8(w.add(r * d_in + k));
                }
                for t in 0..T {
                    let xv = load_f32x8(xp.add(t * d_in + k));
                    for r in 0..R {
                        b[r][t] = if j == 0 {
                            [vmulq_f32(wv[r][0], xv[0]), vmulq_f32(wv[r][1], xv[1])]
                        } else {
                            fma8(b[r][t], wv[r], xv)
                        };
                    }
                }
            }
            for r in 0..R {
                let s = vld1q_dup_f32(hs.add(r * nb + blk));
                for t in 0..T {
                    acc[r][t] = fma8(acc[r][t], b[r][t], [s, s]);
                }
            }
        }
        for r in 0..R {
            for t in 0..T {
                out[r * out_stride + t] = reduce8(&spill8(acc[r][t])) + bias.map_or(0.0, |b| b[r]);
            }
        }
    }
}

/// R decoded rows against all n tokens, MX_T at a time.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
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
/// permuted by `matmul::permute_x` (`xp` [n, d_in]); `out` [rows, n]. `scratch` holds decoded
/// rows for batches.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mxfp4_rows(
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
    // SAFETY: all slices bounded by the asserts above.
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
