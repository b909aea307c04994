//! The AVX-512 level (x86-64 with AVX-512 F/BW/VL and VNNI): 512-bit kernels where they exist,
//! the AVX2 ones (which every such CPU also runs) for the rest.

mod attention;
mod dense;
mod q8;

use super::avx2::Avx2;
use super::{OutRows, SimdKernels};
use crate::attention::{group_task, GroupArgs, PortableKeyOps};
use crate::bf16;
use crate::q8::Q8Rows;
use crate::q8w::Q8Weights;

/// Proof that this CPU has AVX-512 F/BW/VL/VNNI (and AVX2/FMA): only [`Avx512::detect`]
/// makes one.
pub(crate) struct Avx512 {
    avx2: &'static Avx2,
}

impl Avx512 {
    pub(crate) fn detect() -> Option<&'static Avx512> {
        static LEVEL: std::sync::OnceLock<Option<Avx512>> = std::sync::OnceLock::new();
        LEVEL
            .get_or_init(|| {
                let ok = std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512vnni");
                Avx2::detect().filter(|_| ok).map(|avx2| Avx512 { avx2 })
            })
            .as_ref()
    }
}

/// One attention task compiled for AVX-512 (the generic loops inline here).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn attention_group_avx512(
    a: &GroupArgs<'_, '_>,
    idx: usize,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    if a.p.head_dim == attention::D {
        group_task::<attention::Head64>(a, idx, out, scores)
    } else {
        group_task::<PortableKeyOps>(a, idx, out, scores)
    }
}

impl SimdKernels for Avx512 {
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
        // SAFETY: AVX-512 F/BW/VL proven by `self`; the output contract is the caller's.
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
        // SAFETY: AVX-512 F/BW/VL proven by `self`; the output contract is the caller's.
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
        self.avx2
            .mxfp4_rows(blocks, scales, xp, n, d_in, rows, bias, out, scratch)
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
        // One token is bound by memory: the AVX2 kernel reads 4 rows in place as one stream
        // and measured faster than decoding 16-row groups (13–15 ms against 17–23 ms for 32
        // experts of [5760, 2880] on the 2-core AVX-512 Xeon); same bits by the contract.
        if xq.n_rows() == 1 {
            // SAFETY: forwarded contract.
            return unsafe {
                self.avx2
                    .q8_mxfp4_rows_to(blocks, scales, xq, rows, bias, out, o0, scratch)
            };
        }
        // SAFETY: AVX-512 F/BW/VL/VNNI proven by `self`; the output contract is the caller's.
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
        // SAFETY: the caller's contract.
        unsafe { self.avx2.q8_q8w_rows(xq, w, o0, rows, bias, out) }
    }

    fn quantize_q8_row(&self, x: &[f32], q: &mut [i8], d: &mut [f32], cb: &mut [i32]) {
        // SAFETY: AVX-512 F/BW/VL proven by `self`; the function checks the slice lengths.
        unsafe { q8::quantize_row(x, q, d, cb) }
    }

    fn attention_group(
        &self,
        args: &GroupArgs<'_, '_>,
        idx: usize,
        out: &mut [f32],
        scores: &mut Vec<f32>,
    ) {
        // SAFETY: AVX-512 F/BW/VL (and AVX2) proven by `self`.
        unsafe { attention_group_avx512(args, idx, out, scores) }
    }

    fn fma_probe(&self, iters: u64) -> f64 {
        // SAFETY: AVX-512F proven by `self`.
        unsafe { fma_loop(iters) }
    }

    fn int8_probe(&self, iters: u64) -> Option<f64> {
        // SAFETY: AVX-512 VNNI proven by `self`.
        Some(unsafe { dpbusd_loop(iters) })
    }
}

/// `iters` rounds of 10 independent 16-lane FMA chains; the FLOPs done.
#[target_feature(enable = "avx512f")]
fn fma_loop(iters: u64) -> f64 {
    use std::arch::x86_64::*;
    let a = _mm512_set1_ps(std::hint::black_box(0.999_999));
    let b = _mm512_set1_ps(std::hint::black_box(1e-7));
    let mut acc = [_mm512_set1_ps(1.0); 10];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    std::hint::black_box(acc);
    iters as f64 * 10.0 * 16.0 * 2.0
}

/// `iters` rounds of 10 independent `vpdpbusd` chains (64 byte products into 16 i32 lanes);
/// the multiply-adds done.
#[target_feature(enable = "avx512f,avx512vnni")]
fn dpbusd_loop(iters: u64) -> f64 {
    use std::arch::x86_64::*;
    let a = _mm512_set1_epi8(std::hint::black_box(3));
    let b = _mm512_set1_epi8(std::hint::black_box(-2));
    let mut acc = [_mm512_setzero_si512(); 10];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_dpbusd_epi32(*v, a, b);
        }
    }
    std::hint::black_box(acc);
    iters as f64 * 10.0 * 64.0
}
