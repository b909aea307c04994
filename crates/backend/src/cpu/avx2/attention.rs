//! AVX2 twins of the per-key loops of `attention.rs` for gpt-oss's head_dim 64 (x86_64 only):
//! four heads' scores against one key, the softmax's max and exp over a row of scores, and
//! the weighted sum of a block of value rows. Each performs the same float operations in the
//! same order as its portable twin in `attention.rs` (no FMA contraction), so the results are
//! bit for bit the same on every machine; only the instruction selection is ours instead of
//! the auto-vectorizer's, which spilled the 4-head accumulators to the stack.

use std::arch::x86_64::*;

use crate::attention::{KeyOps, EXP_C, EXP_LN2_HI, EXP_LN2_LO, EXP_LO, EXP_LOG2_E, EXP_MAGIC};

/// The AVX2 per-key loops at head_dim [`D`], for `attention::group_task`. Only named inside
/// `attention_group_avx2` (compiled for AVX2, called once the CPU was checked).
pub(super) struct Head64;

impl KeyOps for Head64 {
    #[inline(always)]
    fn dot_x4(q: &[f32], k: &[f32], d: usize) -> [f32; 4] {
        debug_assert_eq!(d, D);
        // SAFETY (all four): this type is only used by `attention_group_avx2`, which runs
        // once the `Avx2` token proved AVX2 and FMA.
        unsafe { dot64_x4(q, k) }
    }
    #[inline(always)]
    fn max(init: f32, xs: &[f32]) -> f32 {
        unsafe { max8(init, xs) }
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

/// Head dimension these kernels are written for.
pub(crate) const D: usize = 64;

/// Scores of four consecutive heads (`q` f32 [4, 64]) against one key row (`k` f32 [64]):
/// the bits of `attention::dot8_x4` (lane l sums elements 8c + l in order of c, then
/// ((0+1)+(2+3))+((4+5)+(6+7))), the horizontal sums done by three `hadd`s.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn dot64_x4(q: &[f32], k: &[f32]) -> [f32; 4] {
    assert!(q.len() >= 4 * D && k.len() >= D);
    // SAFETY: the lengths were checked above; unaligned loads.
    unsafe {
        let (q, k) = (q.as_ptr(), k.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        for c in 0..D / 8 {
            let kc = _mm256_loadu_ps(k.add(8 * c));
            for (t, a) in acc.iter_mut().enumerate() {
                let qc = _mm256_loadu_ps(q.add(D * t + 8 * c));
                *a = _mm256_add_ps(*a, _mm256_mul_ps(qc, kc));
            }
        }
        // hadd pairs neighbours within each 128-bit half: after two rounds the low half holds
        // (0+1)+(2+3) of each head and the high half (4+5)+(6+7).
        let h01 = _mm256_hadd_ps(acc[0], acc[1]);
        let h23 = _mm256_hadd_ps(acc[2], acc[3]);
        let h = _mm256_hadd_ps(h01, h23);
        let s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
        let mut out = [0f32; 4];
        _mm_storeu_ps(out.as_mut_ptr(), s);
        out
    }
}

/// `attention::max8`: the largest of `init` and `xs`, NaNs skipped (`maxps(x, m)` is
/// `x > m ? x : m`, the portable fold's predicate).
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn max8(init: f32, xs: &[f32]) -> f32 {
    let n8 = xs.len() / 8 * 8;
    // SAFETY: every load reads 8 floats inside xs[..n8].
    let lanes = unsafe {
        let mut m = _mm256_set1_ps(init);
        for c in (0..n8).step_by(8) {
            m = _mm256_max_ps(_mm256_loadu_ps(xs.as_ptr().add(c)), m);
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), m);
        lanes
    };
    crate::attention::max8_finish(lanes, &xs[n8..])
}

/// `attention::exp_f32` on 8 lanes, same operations in the same order.
#[target_feature(enable = "avx2")]
#[inline]
fn exp8(x: __m256) -> __m256 {
    let c = |v: f32| _mm256_set1_ps(v);
    let t = _mm256_add_ps(_mm256_mul_ps(x, c(EXP_LOG2_E)), c(EXP_MAGIC));
    let n = _mm256_sub_ps(t, c(EXP_MAGIC));
    let r = _mm256_sub_ps(
        _mm256_sub_ps(x, _mm256_mul_ps(n, c(EXP_LN2_HI))),
        _mm256_mul_ps(n, c(EXP_LN2_LO)),
    );
    let mut p = c(EXP_C[0]);
    for &k in &EXP_C[1..] {
        p = _mm256_add_ps(_mm256_mul_ps(p, r), c(k));
    }
    let y = _mm256_add_ps(
        _mm256_add_ps(_mm256_mul_ps(p, _mm256_mul_ps(r, r)), r),
        c(1.0),
    );
    let e = _mm256_sub_epi32(
        _mm256_castps_si256(t),
        _mm256_set1_epi32(EXP_MAGIC.to_bits() as i32),
    );
    let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        e,
        _mm256_set1_epi32(127),
    )));
    let under = _mm256_cmp_ps::<_CMP_LT_OQ>(x, c(EXP_LO));
    _mm256_andnot_ps(under, _mm256_mul_ps(y, pow2))
}

/// `s = exp_f32(s - m)` for every element (`attention::exp_shifted`'s bits).
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn exp_shifted(xs: &mut [f32], m: f32) {
    let n8 = xs.len() / 8 * 8;
    // SAFETY: every load and store touches 8 floats inside xs[..n8].
    unsafe {
        let mv = _mm256_set1_ps(m);
        let p = xs.as_mut_ptr();
        for c in (0..n8).step_by(8) {
            let x = _mm256_sub_ps(_mm256_loadu_ps(p.add(c)), mv);
            _mm256_storeu_ps(p.add(c), exp8(x));
        }
    }
    for s in &mut xs[n8..] {
        *s = crate::attention::exp_f32(*s - m);
    }
}

/// `o[l] += w[j] · v[j · stride + l]` for j = 0, 1, … in order (`o` f32 [64], one head's output
/// row, kept in 8 registers over the block; `v` the block's value rows `stride` floats apart).
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn add_weighted_values64(o: &mut [f32], w: &[f32], v: &[f32], stride: usize) {
    assert!(o.len() == D);
    assert!(w.is_empty() || v.len() >= (w.len() - 1) * stride + D);
    // SAFETY: the lengths were checked above; unaligned loads and stores.
    unsafe {
        let op = o.as_mut_ptr();
        let mut acc = [_mm256_setzero_ps(); D / 8];
        for (c, a) in acc.iter_mut().enumerate() {
            *a = _mm256_loadu_ps(op.add(8 * c));
        }
        for (j, &wj) in w.iter().enumerate() {
            let wv = _mm256_set1_ps(wj);
            let vj = v.as_ptr().add(j * stride);
            for (c, a) in acc.iter_mut().enumerate() {
                *a = _mm256_add_ps(*a, _mm256_mul_ps(wv, _mm256_loadu_ps(vj.add(8 * c))));
            }
        }
        for (c, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(op.add(8 * c), *a);
        }
    }
}

#[cfg(test)]
mod tests {
    /// The AVX2 loops equal their portable twins bit for bit, piece by piece (whole attention
    /// calls: `attention.rs`'s `simd_levels_equal_portable_bitwise`).
    #[test]
    fn avx2_head64_equals_portable_bitwise() {
        if super::super::Avx2::detect().is_some() {
            crate::attention::check_key_ops::<super::Head64>();
        }
    }
}
