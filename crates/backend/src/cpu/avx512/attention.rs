//! 512-bit twins of the per-key loops of `attention.rs` at head_dim 64, each with the portable
//! loops' bits (no FMA contraction, same operations per element): two heads' 8-lane score
//! accumulators share a register, the softmax's `exp` and the weighted value sums run 16
//! elements per instruction (both are element-wise, so the width cannot change a bit). The max
//! stays on the AVX2 loop (8 lanes, as the portable fold).

use std::arch::x86_64::*;

use crate::attention::{KeyOps, EXP_C, EXP_LN2_HI, EXP_LN2_LO, EXP_LO, EXP_LOG2_E, EXP_MAGIC};
use crate::matmul::reduce8;

/// Head dimension these kernels are written for.
pub(super) const D: usize = 64;

/// The AVX-512 per-key loops at head_dim [`D`]. Only named inside `attention_group_avx512`
/// (compiled for AVX-512, called once the CPU was checked).
pub(super) struct Head64;

impl KeyOps for Head64 {
    #[inline(always)]
    fn dot_x4(q: &[f32], k: &[f32], d: usize) -> [f32; 4] {
        debug_assert_eq!(d, D);
        // SAFETY (all four): this type is only used by `attention_group_avx512`, which runs
        // once the `Avx512` token proved AVX-512 F/BW/VL (and AVX2).
        unsafe { dot64_x4(q, k) }
    }
    #[inline(always)]
    fn max(init: f32, xs: &[f32]) -> f32 {
        unsafe { crate::cpu::avx2::attention::max8(init, xs) }
    }
    #[inline(always)]
    fn exp_shifted(xs: &mut [f32], m: f32) {
        unsafe { exp_shifted(xs, m) }
    }
    #[inline(always)]
    fn add_weighted_values(o: &mut [f32], w: &[f32], v: &[f32], stride: usize) {
        unsafe { add_weighted_values64(o, w, v, stride) }
    }
}

/// Scores of four consecutive heads (`q` f32 [4, 64]) against one key row: the bits of
/// `attention::dot8_x4` (lane l sums elements 8c + l in order of c, then
/// ((0+1)+(2+3))+((4+5)+(6+7))), heads 0 and 1 in one register, 2 and 3 in another.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
#[inline]
fn dot64_x4(q: &[f32], k: &[f32]) -> [f32; 4] {
    assert!(q.len() >= 4 * D && k.len() >= D);
    // SAFETY: the lengths were checked above; unaligned loads.
    unsafe {
        let (q, k) = (q.as_ptr(), k.as_ptr());
        let pair = |h: usize, c: usize| {
            let lo = _mm256_loadu_pd(q.add(D * h + 8 * c) as *const f64);
            let hi = _mm256_loadu_pd(q.add(D * (h + 1) + 8 * c) as *const f64);
            _mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castpd256_pd512(lo), hi))
        };
        let mut a01 = _mm512_setzero_ps();
        let mut a23 = _mm512_setzero_ps();
        for c in 0..D / 8 {
            let kc = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_loadu_pd(
                k.add(8 * c) as *const f64
            )));
            a01 = _mm512_add_ps(a01, _mm512_mul_ps(pair(0, c), kc));
            a23 = _mm512_add_ps(a23, _mm512_mul_ps(pair(2, c), kc));
        }
        let mut lanes = [0f32; 32];
        _mm512_storeu_ps(lanes.as_mut_ptr(), a01);
        _mm512_storeu_ps(lanes.as_mut_ptr().add(16), a23);
        [
            reduce8(&lanes[..8]),
            reduce8(&lanes[8..16]),
            reduce8(&lanes[16..24]),
            reduce8(&lanes[24..]),
        ]
    }
}

/// `attention::exp_f32` on 16 lanes, same operations in the same order.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
fn exp16(x: __m512) -> __m512 {
    let c = |v: f32| _mm512_set1_ps(v);
    let t = _mm512_add_ps(_mm512_mul_ps(x, c(EXP_LOG2_E)), c(EXP_MAGIC));
    let n = _mm512_sub_ps(t, c(EXP_MAGIC));
    let r = _mm512_sub_ps(
        _mm512_sub_ps(x, _mm512_mul_ps(n, c(EXP_LN2_HI))),
        _mm512_mul_ps(n, c(EXP_LN2_LO)),
    );
    let mut p = c(EXP_C[0]);
    for &k in &EXP_C[1..] {
        p = _mm512_add_ps(_mm512_mul_ps(p, r), c(k));
    }
    let y = _mm512_add_ps(
        _mm512_add_ps(_mm512_mul_ps(p, _mm512_mul_ps(r, r)), r),
        c(1.0),
    );
    let e = _mm512_sub_epi32(
        _mm512_castps_si512(t),
        _mm512_set1_epi32(EXP_MAGIC.to_bits() as i32),
    );
    let pow2 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
        e,
        _mm512_set1_epi32(127),
    )));
    // Below EXP_LO the result is 0 (as `exp_f32`'s early return); NaN compares false and
    // stays NaN.
    let under = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, c(EXP_LO));
    _mm512_maskz_mov_ps(!under, _mm512_mul_ps(y, pow2))
}

/// `s = exp_f32(s - m)` for every element (`attention::exp_shifted`'s bits).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
fn exp_shifted(xs: &mut [f32], m: f32) {
    let n16 = xs.len() / 16 * 16;
    // SAFETY: every load and store touches 16 floats inside xs[..n16].
    unsafe {
        let mv = _mm512_set1_ps(m);
        let p = xs.as_mut_ptr();
        for c in (0..n16).step_by(16) {
            let x = _mm512_sub_ps(_mm512_loadu_ps(p.add(c)), mv);
            _mm512_storeu_ps(p.add(c), exp16(x));
        }
    }
    for s in &mut xs[n16..] {
        *s = crate::attention::exp_f32(*s - m);
    }
}

/// `o[l] += w[j] · v[j · stride + l]` for j = 0, 1, … in order (`o` f32 [64] kept in 4
/// registers over the block; `v` the block's value rows `stride` floats apart).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
fn add_weighted_values64(o: &mut [f32], w: &[f32], v: &[f32], stride: usize) {
    assert!(o.len() == D);
    assert!(w.is_empty() || v.len() >= (w.len() - 1) * stride + D);
    // SAFETY: the lengths were checked above; unaligned loads and stores.
    unsafe {
        let op = o.as_mut_ptr();
        let mut acc = [_mm512_setzero_ps(); D / 16];
        for (c, a) in acc.iter_mut().enumerate() {
            *a = _mm512_loadu_ps(op.add(16 * c));
        }
        for (j, &wj) in w.iter().enumerate() {
            let wv = _mm512_set1_ps(wj);
            let vj = v.as_ptr().add(j * stride);
            for (c, a) in acc.iter_mut().enumerate() {
                *a = _mm512_add_ps(*a, _mm512_mul_ps(wv, _mm512_loadu_ps(vj.add(16 * c))));
            }
        }
        for (c, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(op.add(16 * c), *a);
        }
    }
}

#[cfg(test)]
mod tests {
    /// The 512-bit loops equal the portable ones bit for bit, piece by piece (whole attention
    /// calls: `attention.rs`'s `simd_levels_equal_portable_bitwise`).
    #[test]
    fn avx512_head64_pieces_equal_portable_bitwise() {
        if super::super::Avx512::detect().is_some() {
            crate::attention::check_key_ops::<super::Head64>();
        }
    }
}
