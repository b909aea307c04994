//! The AVX2 + FMA level (x86-64, 256-bit vectors): the [`SimdKernels`] of CPUs from Haswell and
//! Zen 1 on. `dense` holds the f32/bf16 and exact MXFP4 products, `q8` the int8 MXFP4
//! products, `q8w` the int8 × int8 products, `attention` the per-key loops at head_dim 64.

use super::{OutRows, SimdKernels};
use crate::attention::{group_task, GroupArgs, PortableKeyOps};
use crate::bf16;
use crate::q8::Q8Rows;
use crate::q8w::Q8Weights;

pub(crate) mod attention;
pub(crate) mod dense;
pub(crate) mod q8;
pub(crate) mod q8w;

/// Proof that this CPU has AVX2 and FMA: only [`Avx2::detect`] makes one.
pub(crate) struct Avx2(());

static AVX2: Avx2 = Avx2(());

impl Avx2 {
    pub(crate) fn detect() -> Option<&'static Avx2> {
        (std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"))
            .then_some(&AVX2)
    }
}

/// One attention task compiled for AVX2 (the generic loops inline here).
#[target_feature(enable = "avx2,fma")]
fn attention_group_avx2(a: &GroupArgs<'_, '_>, idx: usize, out: &mut [f32], scores: &mut Vec<f32>) {
    if a.p.head_dim == attention::D {
        group_task::<attention::Head64>(a, idx, out, scores)
    } else {
        group_task::<PortableKeyOps>(a, idx, out, scores)
    }
}

impl SimdKernels for Avx2 {
    unsafe fn dense_f32_rows(
        &self,
        w: &[f32],
        x: &[f32],
        n: usize,
        d_in: usize,
        rows: usize,
        bias: Option<&[f32]>,
        out: OutRows<'_>,
        o0: usize,
    ) {
        // SAFETY: AVX2+FMA proven by `self`; the output contract is the caller's.
        unsafe { dense::dense_rows_of(w, x, n, d_in, rows, bias, out, o0) }
    }

    unsafe fn dense_bf16_rows(
        &self,
        w: &[bf16],
        x: &[f32],
        n: usize,
        d_in: usize,
        rows: usize,
        bias: Option<&[f32]>,
        out: OutRows<'_>,
        o0: usize,
    ) {
        // SAFETY: as above.
        unsafe { dense::dense_rows_of(w, x, n, d_in, rows, bias, out, o0) }
    }

    fn mxfp4_rows(
        &self,
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
        // SAFETY: AVX2+FMA proven by `self`; the kernel bounds its reads itself.
        unsafe { dense::mxfp4_rows(blocks, scales, xp, n, d_in, rows, bias, out, scratch) }
    }

    unsafe fn q8_mxfp4_rows_to(
        &self,
        blocks: &[u8],
        scales: &[u8],
        xq: &Q8Rows,
        rows: usize,
        bias: Option<&[f32]>,
        out: OutRows<'_>,
        o0: usize,
        scratch: &mut Vec<f32>,
    ) {
        // SAFETY: AVX2+FMA proven by `self`; the output contract is the caller's.
        unsafe { q8::q8_mxfp4_rows(blocks, scales, xq, rows, bias, out, o0, scratch) }
    }

    unsafe fn q8_q8w_rows(
        &self,
        xq: &Q8Rows,
        w: &Q8Weights,
        o0: usize,
        rows: usize,
        bias: Option<&[f32]>,
        out: OutRows<'_>,
    ) {
        // SAFETY: AVX2+FMA proven by `self`; the output contract is the caller's.
        unsafe { q8w::q8_q8w_rows(xq, w, o0, rows, bias, out) }
    }

    fn attention_group(
        &self,
        args: &GroupArgs<'_, '_>,
        idx: usize,
        out: &mut [f32],
        scores: &mut Vec<f32>,
    ) {
        // SAFETY: AVX2+FMA proven by `self`.
        unsafe { attention_group_avx2(args, idx, out, scores) }
    }

    fn fma_probe(&self, iters: u64) -> f64 {
        // SAFETY: AVX2+FMA proven by `self`.
        unsafe { fma_loop(iters) }
    }

    fn int8_probe(&self, iters: u64) -> Option<f64> {
        // SAFETY: AVX2 proven by `self`.
        Some(unsafe { maddubs_loop(iters) })
    }
}

/// `iters` rounds of 10 independent 8-lane FMA chains; the FLOPs done.
#[target_feature(enable = "avx2,fma")]
fn fma_loop(iters: u64) -> f64 {
    use std::arch::x86_64::*;
    let a = _mm256_set1_ps(std::hint::black_box(0.999_999));
    let b = _mm256_set1_ps(std::hint::black_box(1e-7));
    let mut acc = [_mm256_set1_ps(1.0); 10];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    std::hint::black_box(acc);
    iters as f64 * 10.0 * 8.0 * 2.0
}

/// `iters` rounds of 12 independent int8 dot chains as the int8 kernels run them
/// (`maddubs` + `madd` + add: 32 byte products into 8 i32 lanes; each chain multiplies its
/// own accumulator's bytes so nothing is loop-invariant); the multiply-adds done.
#[target_feature(enable = "avx2,fma")]
fn maddubs_loop(iters: u64) -> f64 {
    use std::arch::x86_64::*;
    let a = _mm256_set1_epi8(std::hint::black_box(3));
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_set1_epi8(std::hint::black_box(1)); 12];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(a, *v), ones);
            *v = _mm256_add_epi32(*v, p);
        }
    }
    std::hint::black_box(acc);
    iters as f64 * 12.0 * 32.0
}
