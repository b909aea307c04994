//! The Arm NEON level (aarch64, 128-bit Advanced SIMD): the [`SimdKernels`] of every 64-bit Arm
//! CPU. `dense` holds the f32/bf16 and exact MXFP4 products (the AVX2 level's bits: the same
//! 8-lane contract on two 4-lane halves), `int8` the exact integer pair sums (`sdot` where the
//! CPU has `dotprod`, widening multiplies elsewhere), `q8` the int8 MXFP4 products, `q8w` the
//! int8 × int8 products. Attention runs the portable per-key loops, which the compiler
//! vectorizes for NEON by itself (no FMA contraction, so the bits stay the portable ones).
//!
//! NEON is part of the aarch64 baseline; `dotprod` (Armv8.2+, optional before Armv8.4) is
//! checked at run time and picks the integer variant inside this level, so one binary runs the
//! fastest int8 loop each CPU has. Both variants give the scalar oracles' bits.

use super::{OutRows, SimdKernels};
use crate::attention::{group_task, GroupArgs, PortableKeyOps};
use crate::bf16;
use crate::q8::Q8Rows;
use crate::q8w::Q8Weights;

pub(crate) mod dense;
pub(crate) mod int8;
pub(crate) mod q8;
pub(crate) mod q8w;
#[cfg(test)]
mod tests;

/// Proof that this CPU has NEON, and whether the int8 kernels may use `sdot` (only true when
/// the CPU reported `dotprod`): only [`Neon::detect`] hands one out.
pub(crate) struct Neon {
    dot: bool,
}

/// The level with `sdot` kernels; handed out only after `dotprod` was detected.
static NEON_DOT: Neon = Neon { dot: true };
/// The level with widening-multiply int8 kernels (any NEON CPU).
static NEON_PLAIN: Neon = Neon { dot: false };

impl Neon {
    pub(crate) fn detect() -> Option<&'static Neon> {
        if !std::arch::is_aarch64_feature_detected!("neon") {
            return None;
        }
        Some(if has_dotprod() {
            &NEON_DOT
        } else {
            &NEON_PLAIN
        })
    }

    /// Every variant this CPU runs (without `dotprod` first): lets tests compare them.
    #[cfg(test)]
    pub(crate) fn variants() -> Vec<&'static Neon> {
        match Neon::detect() {
            Some(n) if n.dot => vec![&NEON_PLAIN, n],
            Some(n) => vec![n],
            None => Vec::new(),
        }
    }
}

/// Whether the CPU has the `dotprod` extension (`sdot`/`udot`).
pub(crate) fn has_dotprod() -> bool {
    std::arch::is_aarch64_feature_detected!("dotprod")
}

impl SimdKernels for Neon {
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
        // SAFETY: NEON proven by `self`; the output contract is the caller's.
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
        dense::mxfp4_rows(blocks, scales, xp, n, d_in, rows, bias, out, scratch)
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
        // SAFETY: `dotprod` was detected before a `dot` variant was handed out; the output
        // contract is the caller's.
        unsafe {
            if self.dot {
                q8::q8_mxfp4_rows_sdot(blocks, scales, xq, rows, bias, out, o0, scratch)
            } else {
                q8::q8_mxfp4_rows_smull(blocks, scales, xq, rows, bias, out, o0, scratch)
            }
        }
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
        // SAFETY: `dotprod` was detected before a `dot` variant was handed out; the output
        // contract is the caller's.
        unsafe {
            if self.dot {
                q8w::q8_q8w_rows_sdot(xq, w, o0, rows, bias, out)
            } else {
                q8w::q8_q8w_rows_smull(xq, w, o0, rows, bias, out)
            }
        }
    }

    fn attention_group(
        &self,
        args: &GroupArgs<'_, '_>,
        idx: usize,
        out: &mut [f32],
        scores: &mut Vec<f32>,
    ) {
        group_task::<PortableKeyOps>(args, idx, out, scores)
    }

    fn fma_probe(&self, iters: u64) -> f64 {
        int8::fma_loop(iters)
    }

    fn int8_probe(&self, iters: u64) -> Option<f64> {
        Some(if self.dot {
            // SAFETY: `dotprod` detected (see above).
            unsafe { int8::sdot_loop(iters) }
        } else {
            int8::smull_loop(iters)
        })
    }
}
