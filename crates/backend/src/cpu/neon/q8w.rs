//! NEON kernels of the 8-bit weight products (aarch64 only): int8 activations ([`Q8Rows`]) times
//! int8 weights ([`Q8Weights`]), run by `q8w::matmul_q8_q8w*`. Owns only the tiles; the layout,
//! the numerics contract and the scalar oracle are in `q8w.rs`, and every kernel here gives the
//! oracle's bits, with `sdot` or without (see `int8.rs`). Weight and activation rows share the
//! pair order, so both load as they are: no sign or offset tricks (NEON multiplies signed
//! bytes). One convert and one FMA per 4-lane half then apply `d_x · d_w`.
//!
//! Decode (one token): 4 weight rows per pass sharing one activation load. Batches: a group of
//! 16 weight rows (46 KB at 2880 inputs, L2-resident) meets every tile of 4 tokens.

use std::arch::aarch64::*;

use super::int8::{IntDot, Sdot, Smull};
use crate::cpu::OutRows;
use crate::q8::{Q8Rows, PAIR_BYTES, PAIR_SCALES};
use crate::q8w::Q8Weights;

/// Weight rows per decode pass.
const R_DECODE: usize = 4;
/// Tokens per batch pass over one weight row.
const T_BATCH: usize = 4;
/// Weight rows per batch group.
const ROW_GROUP: usize = 16;

#[inline(always)]
fn sum_lanes(a: &[float32x4_t; 2]) -> f32 {
    let mut l = [0f32; 8];
    // SAFETY: `l` holds 8 floats.
    unsafe {
        vst1q_f32(l.as_mut_ptr(), a[0]);
        vst1q_f32(l.as_mut_ptr().add(4), a[1]);
    }
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// The 64 code bytes of one pair at `p`.
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

/// One pair's float step: `acc + isum · (dx · dw)` per lane, `dw` the pair's two weight block
/// scales at `wd` (one per 4-lane half).
#[inline(always)]
unsafe fn pair_step(
    acc: [float32x4_t; 2],
    i: [int32x4_t; 2],
    xd: *const f32,
    wd: *const f32,
) -> [float32x4_t; 2] {
    // SAFETY: the caller guarantees 8 activation scales at xd and 2 weight scales at wd.
    unsafe {
        let (dx0, dx1) = (vld1q_f32(xd), vld1q_f32(xd.add(4)));
        let (dw0, dw1) = (vld1q_dup_f32(wd), vld1q_dup_f32(wd.add(1)));
        [
            vfmaq_f32(acc[0], vcvtq_f32_s32(i[0]), vmulq_f32(dx0, dw0)),
            vfmaq_f32(acc[1], vcvtq_f32_s32(i[1]), vmulq_f32(dx1, dw1)),
        ]
    }
}

/// One activation row (`xq` codes, `xd` pair scales) against R weight rows (`wq` + r · `wrq`
/// codes, `wd` + r · `wrd` scales); returns the R dots (no bias).
#[allow(clippy::needless_range_loop)] // r indexes acc and the weight rows
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn dot_rows<D: IntDot, const R: usize>(
    wq: *const i8,
    wrq: usize,
    wd: *const f32,
    wrd: usize,
    np: usize,
    xq: *const i8,
    xd: *const f32,
) -> [f32; R] {
    let mut res = [0f32; R];
    // SAFETY: the caller guarantees R weight rows of np pairs (codes and scales), one
    // activation row of np pairs, and the instructions of `D`.
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); 2]; R];
        for p in 0..np {
            let x = load_pair(xq.add(p * PAIR_BYTES));
            let xs = xd.add(p * PAIR_SCALES);
            for r in 0..R {
                let w = load_pair(wq.add(r * wrq + p * PAIR_BYTES));
                acc[r] = pair_step(acc[r], D::pair(&w, &x), xs, wd.add(r * wrd + 2 * p));
            }
        }
        for r in 0..R {
            res[r] = sum_lanes(&acc[r]);
        }
    }
    res
}

/// One weight row (`wq` codes, `wd` scales) against T activation rows (`xq` + t · `rq` codes,
/// `xd` + t · `rd` scales); returns the T dots (no bias).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn row_tokens<D: IntDot, const T: usize>(
    wq: *const i8,
    wd: *const f32,
    np: usize,
    xq: *const i8,
    rq: usize,
    xd: *const f32,
    rd: usize,
) -> [f32; T] {
    let mut res = [0f32; T];
    // SAFETY: the caller guarantees one weight row of np pairs, T activation rows, and the
    // instructions of `D`.
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); 2]; T];
        for p in 0..np {
            let w = load_pair(wq.add(p * PAIR_BYTES));
            for (t, a) in acc.iter_mut().enumerate() {
                let x = load_pair(xq.add(t * rq + p * PAIR_BYTES));
                let xs = xd.add(t * rd + p * PAIR_SCALES);
                *a = pair_step(*a, D::pair(&w, &x), xs, wd.add(2 * p));
            }
        }
        for (t, a) in acc.iter().enumerate() {
            res[t] = sum_lanes(a);
        }
    }
    res
}

/// Weight rows `o0 .. o0 + rows` of `w` against every row of `xq`: writes token t's row o
/// (dot + `bias[o]`) to `out.tok[t].add(o)`.
///
/// # Safety
/// The CPU must have what `D` uses; `out.tok` must hold `xq.n_rows` pointers, each valid for
/// writes of `w.d_out` floats, and no other thread may write rows `o0 .. o0 + rows` of them.
#[inline(always)]
unsafe fn q8_q8w_rows<D: IntDot>(
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
    // SAFETY: `D`'s instructions and the output pointers by the caller's contract; every
    // offset is bounded by the asserts above (row o < d_out, token t < n).
    unsafe {
        if n == 1 {
            let y = out.tok[0];
            let mut o = o0;
            while o + R_DECODE <= o0 + rows {
                let (wr, wdr) = (wqp.add(o * wrq), wdp.add(o * wrd));
                let r = dot_rows::<D, R_DECODE>(wr, wrq, wdr, wrd, np, xqp, xdp);
                for (k, v) in r.iter().enumerate() {
                    *y.add(o + k) = v + b(o + k);
                }
                o += R_DECODE;
            }
            while o < o0 + rows {
                let (wr, wdr) = (wqp.add(o * wrq), wdp.add(o * wrd));
                let [v] = dot_rows::<D, 1>(wr, wrq, wdr, wrd, np, xqp, xdp);
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
                            let r = row_tokens::<D, T_BATCH>(wr, wdr, np, q, rq, d, rd);
                            r.iter().enumerate().for_each(|(k, &v)| put(k, v));
                        }
                        3 => {
                            let r = row_tokens::<D, 3>(wr, wdr, np, q, rq, d, rd);
                            r.iter().enumerate().for_each(|(k, &v)| put(k, v));
                        }
                        2 => {
                            let r = row_tokens::<D, 2>(wr, wdr, np, q, rq, d, rd);
                            r.iter().enumerate().for_each(|(k, &v)| put(k, v));
                        }
                        _ => {
                            let [v] = row_tokens::<D, 1>(wr, wdr, np, q, rq, d, rd);
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

/// [`q8_q8w_rows`] with `sdot`.
///
/// # Safety
/// The CPU must have `dotprod`; the output contract of [`q8_q8w_rows`].
#[target_feature(enable = "dotprod")]
pub(crate) unsafe fn q8_q8w_rows_sdot(
    xq: &Q8Rows,
    w: &Q8Weights,
    o0: usize,
    rows: usize,
    bias: Option<&[f32]>,
    out: OutRows<'_>,
) {
    // SAFETY: the caller's contract.
    unsafe { q8_q8w_rows::<Sdot>(xq, w, o0, rows, bias, out) }
}

/// [`q8_q8w_rows`] with widening multiplies (any NEON CPU).
///
/// # Safety
/// The output contract of [`q8_q8w_rows`].
pub(crate) unsafe fn q8_q8w_rows_smull(
    xq: &Q8Rows,
    w: &Q8Weights,
    o0: usize,
    rows: usize,
    bias: Option<&[f32]>,
    out: OutRows<'_>,
) {
    // SAFETY: `Smull` needs only NEON, baseline on aarch64; the rest is the caller's.
    unsafe { q8_q8w_rows::<Smull>(xq, w, o0, rows, bias, out) }
}
