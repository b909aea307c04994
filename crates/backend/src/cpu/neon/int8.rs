//! Exact int8 pair sums for the NEON int8 kernels (`q8`, `q8w`), in two variants behind one
//! trait so each kernel is written once: [`Sdot`] (`sdot`, 16 products per instruction, only
//! in functions compiled with `dotprod`) and [`Smull`] (widening multiplies, any NEON CPU).
//! Also the peak probes of `gpt-oss bench`.
//!
//! A pair of 32-blocks arrives as four 16-byte vectors in the [`crate::q8::Q8Rows`] order:
//! even elements of block 0, of block 1, odd elements of block 0, of block 1. Lane `l` of a
//! block's sum covers elements `8l .. 8l + 8`, i.e. positions `4l .. 4l + 4` of its even and of
//! its odd vector: exactly the four bytes one `sdot` lane adds.

use std::arch::aarch64::*;
use std::arch::asm;

/// The exact i32 lane sums of one pair (see the module header), for both blocks.
pub(crate) trait IntDot {
    /// `[block 0 lanes, block 1 lanes]` of `Σ w·x`, with `w`, `x` in the pair order.
    ///
    /// # Safety
    /// Only callable where the variant's instructions exist (see each implementation).
    unsafe fn pair(w: &[int8x16_t; 4], x: &[int8x16_t; 4]) -> [int32x4_t; 2];
}

/// `sdot`: inlined only into functions compiled with `target_feature(enable = "dotprod")`
/// (the assembler rejects it anywhere else, so a misuse does not build).
pub(crate) struct Sdot;

/// Widening multiplies (`smull`, pairwise adds): any NEON CPU.
pub(crate) struct Smull;

/// `acc + Σ` of each lane's four byte products (`sdot`). Written as assembly: the `vdotq_s32`
/// intrinsic is not stable yet.
#[inline(always)]
pub(crate) unsafe fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: the caller runs on a CPU with `dotprod`; register-only, no memory or flags.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

impl IntDot for Sdot {
    #[inline(always)]
    unsafe fn pair(w: &[int8x16_t; 4], x: &[int8x16_t; 4]) -> [int32x4_t; 2] {
        // SAFETY: the caller's `dotprod` guarantee.
        unsafe {
            let z = vdupq_n_s32(0);
            [
                sdot(sdot(z, w[0], x[0]), w[2], x[2]),
                sdot(sdot(z, w[1], x[1]), w[3], x[3]),
            ]
        }
    }
}

/// The four lane sums of one block from its even (`we`, `xe`) and odd (`wo`, `xo`) vectors.
/// Each i16 sum of an even and an odd product is at most 2 · 127 · 127 = 32,258 (codes never
/// reach -128), so nothing wraps before the widening adds.
#[inline(always)]
fn block_smull(we: int8x16_t, xe: int8x16_t, wo: int8x16_t, xo: int8x16_t) -> int32x4_t {
    // SAFETY: NEON is baseline on aarch64; register-only.
    unsafe {
        let lo = vaddq_s16(
            vmull_s8(vget_low_s8(we), vget_low_s8(xe)),
            vmull_s8(vget_low_s8(wo), vget_low_s8(xo)),
        );
        let hi = vaddq_s16(vmull_high_s8(we, xe), vmull_high_s8(wo, xo));
        // [p0+p1, p2+p3, ...] per half, then adjacent pairs: positions 4l .. 4l + 4 in lane l.
        vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi))
    }
}

impl IntDot for Smull {
    #[inline(always)]
    unsafe fn pair(w: &[int8x16_t; 4], x: &[int8x16_t; 4]) -> [int32x4_t; 2] {
        [
            block_smull(w[0], x[0], w[2], x[2]),
            block_smull(w[1], x[1], w[3], x[3]),
        ]
    }
}

/// Independent chains per probe: enough to cover 4 pipes × 4 cycles of latency.
const CHAINS: usize = 16;

/// `iters` rounds of 16 independent 4-lane FMA chains; the FLOPs done.
pub(crate) fn fma_loop(iters: u64) -> f64 {
    // SAFETY: NEON is baseline on aarch64; register-only.
    unsafe {
        let a = vdupq_n_f32(std::hint::black_box(0.999_999));
        let b = vdupq_n_f32(std::hint::black_box(1e-7));
        let mut acc = [vdupq_n_f32(1.0); CHAINS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = vfmaq_f32(b, *v, a);
            }
        }
        std::hint::black_box(acc);
    }
    iters as f64 * CHAINS as f64 * 4.0 * 2.0
}

/// `iters` rounds of 16 independent `sdot` chains (16 byte products each); the multiply-adds
/// done.
///
/// # Safety
/// The CPU must have `dotprod`.
#[target_feature(enable = "dotprod")]
pub(crate) unsafe fn sdot_loop(iters: u64) -> f64 {
    // SAFETY: `dotprod` by the caller's contract; register-only.
    unsafe {
        let a = vdupq_n_s8(std::hint::black_box(3));
        let b = vdupq_n_s8(std::hint::black_box(-2));
        let mut acc = [vdupq_n_s32(0); CHAINS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = sdot(*v, a, b);
            }
        }
        std::hint::black_box(acc);
    }
    iters as f64 * CHAINS as f64 * 16.0
}

/// `iters` rounds of 16 independent widening chains as the int8 kernels without `dotprod` run
/// them (`smull` + `smlal2` + `sadalp`: 16 byte products into 4 i32 lanes); the multiply-adds
/// done.
pub(crate) fn smull_loop(iters: u64) -> f64 {
    // SAFETY: NEON is baseline on aarch64; register-only.
    unsafe {
        let a = vdupq_n_s8(std::hint::black_box(3));
        let b = vdupq_n_s8(std::hint::black_box(-2));
        let mut acc = [vdupq_n_s32(0); CHAINS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                // Assembly, not intrinsics: the products of loop-invariant operands would be
                // hoisted out of the loop, leaving only the adds to measure.
                asm!(
                    "smull {p:v}.8h, {a:v}.8b, {b:v}.8b",
                    "smlal2 {p:v}.8h, {a:v}.16b, {b:v}.16b",
                    "sadalp {acc:v}.4s, {p:v}.8h",
                    acc = inout(vreg) *v,
                    p = out(vreg) _,
                    a = in(vreg) a,
                    b = in(vreg) b,
                    options(nomem, nostack, preserves_flags)
                );
            }
        }
        std::hint::black_box(acc);
    }
    iters as f64 * CHAINS as f64 * 16.0
}
