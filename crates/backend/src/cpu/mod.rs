//! The CPU backend seam: which instruction-set level runs the hot loops, chosen once per
//! process from what the CPU reports, and the one interface (`SimdKernels`) through which the
//! generic code (shapes, parallel split, scalar oracles in `matmul.rs`, `q8.rs`, `q8w.rs`,
//! `attention.rs`) reaches them.
//!
//! Layout: one module per ISA level (`avx2`, `avx512`; `neon` on aarch64), each implementing
//! `SimdKernels` for a zero-sized token type that can only be obtained after the CPU was
//! checked for that level's features. The ISA modules import the generic layouts and
//! constants; the generic code imports only this module, never an ISA module. A level without
//! its own version of a kernel hands the call to the level below it (AVX-512 CPUs all have
//! AVX2), so adding a kernel never touches the generic code.
//!
//! Every level gives the scalar oracle's bits for the int8 paths and the same bits as the other
//! levels for the f32 paths (see each module's numerics contract), so the level changes speed,
//! never results. `GPT_OSS_KERNELS=scalar|avx2|avx512|neon` forces a level (for comparisons
//! and bug reports); a level this CPU lacks falls back to the best it has, with one log line.
//! The older `GPTOSS_SCALAR=1` still forces the scalar oracles.

use std::fmt;
use std::sync::OnceLock;

use crate::attention::GroupArgs;
use crate::bf16;
use crate::q8::Q8Rows;
use crate::q8w::Q8Weights;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(test)]
mod tests;

/// An instruction-set level of the CPU kernels, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KernelLevel {
    /// The portable scalar oracles (any CPU).
    Scalar,
    /// x86-64 AVX2 + FMA (256-bit).
    Avx2,
    /// x86-64 AVX-512 F/BW/VL with VNNI (512-bit, int8 dot products).
    Avx512,
    /// aarch64 Advanced SIMD (128-bit), with `dotprod` where present.
    Neon,
}

impl KernelLevel {
    /// The name `GPT_OSS_KERNELS` takes and the logs print.
    pub fn name(self) -> &'static str {
        match self {
            KernelLevel::Scalar => "scalar",
            KernelLevel::Avx2 => "avx2",
            KernelLevel::Avx512 => "avx512",
            KernelLevel::Neon => "neon",
        }
    }

    /// Parses a `GPT_OSS_KERNELS` value.
    pub fn parse(s: &str) -> Option<KernelLevel> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Some(KernelLevel::Scalar),
            "avx2" => Some(KernelLevel::Avx2),
            "avx512" | "avx-512" => Some(KernelLevel::Avx512),
            "neon" => Some(KernelLevel::Neon),
            _ => None,
        }
    }
}

impl fmt::Display for KernelLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a row-task kernel writes: token t's output row o goes to `tok[t].add(o)`. Each
/// pointer is valid for the whole `[d_out]` row of its token; tasks write disjoint row ranges.
#[derive(Clone, Copy)]
pub(crate) struct OutRows<'a> {
    pub(crate) tok: &'a [*mut f32],
}

// SAFETY: the pointers are only written through at disjoint output rows by different tasks
// (the callers in `matmul.rs` and `q8w.rs` split the rows), and they outlive every task
// (scoped by the caller's mutable borrow of the outputs).
unsafe impl Send for OutRows<'_> {}
// SAFETY: as above.
unsafe impl Sync for OutRows<'_> {}

/// The hot loops one ISA level provides, each over a range of output rows (the generic code
/// splits the rows across threads and checks the shapes first). Implemented only by token types
/// that exist once the CPU was checked, which is what makes the safe methods sound.
pub(crate) trait SimdKernels: Sync {
    /// Dense f32 rows `o0 .. o0 + rows` (`w` holds those rows of `d_in`) against `n` tokens
    /// `x` [n, d_in]; token t's results go to `out.tok[t]` at offsets `o0..o0 + rows`.
    ///
    /// # Safety
    /// Each of the `n` pointers in `out.tok` must be valid for writes at `o0..o0 + rows`, and
    /// no other thread may access those elements during the call.
    #[allow(clippy::too_many_arguments)]
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
    );

    /// [`SimdKernels::dense_f32_rows`] for bf16 weights.
    ///
    /// # Safety
    /// As [`SimdKernels::dense_f32_rows`].
    #[allow(clippy::too_many_arguments)]
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
    );

    /// Exact f32 MXFP4 rows (`blocks` [rows, d_in/32, 16], `scales` [rows, d_in/32]) against
    /// `n` tokens permuted by `matmul::permute_x` (`xp` [n, d_in]); `out` f32 [rows, n].
    #[allow(clippy::too_many_arguments)]
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
    );

    /// Int8 MXFP4 rows `o0 .. o0 + rows` (`blocks` and `scales` hold just those rows) against
    /// every row of `xq`; token t's results go to `out.tok[t]` at offsets `o0..o0 + rows`
    /// (written in place, no transposition after).
    ///
    /// # Safety
    /// As [`SimdKernels::dense_f32_rows`].
    #[allow(clippy::too_many_arguments)]
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
    );

    /// Int8 × int8 rows `o0 .. o0 + rows` of `w` against every row of `xq`.
    ///
    /// # Safety
    /// `out.tok` must hold `xq.n_rows` pointers, each valid for writes of `w.d_out` floats,
    /// and no other thread may write rows `o0 .. o0 + rows` of them.
    unsafe fn q8_q8w_rows(
        &self,
        xq: &Q8Rows,
        w: &Q8Weights,
        o0: usize,
        rows: usize,
        bias: Option<&[f32]>,
        out: OutRows<'_>,
    );

    /// One attention task (query `idx / n_kv_heads`, KV head `idx % n_kv_heads`), see
    /// `attention::group_task`.
    fn attention_group(
        &self,
        args: &GroupArgs<'_, '_>,
        idx: usize,
        out: &mut [f32],
        scores: &mut Vec<f32>,
    );

    /// Runs `iters` rounds of independent FMA chains at this level's widest f32 vectors;
    /// returns the FLOPs done (the peak probe of `gpt-oss bench`).
    fn fma_probe(&self, iters: u64) -> f64;

    /// Runs `iters` rounds of independent int8 dot-product chains at this level's widest
    /// integer dot instruction; returns the multiply-adds done, or `None` when the level has
    /// no int8 dot kernels.
    fn int8_probe(&self, iters: u64) -> Option<f64>;

    /// Quantizes one row of activations into its `Q8Rows` slices (see `q8::quantize_row`,
    /// the scalar version every level's result must equal bit for bit).
    fn quantize_q8_row(&self, x: &[f32], q: &mut [i8], d: &mut [f32], cb: &mut [i32]) {
        crate::q8::quantize_row(x, q, d, cb)
    }
}

/// What the CPU offers, as levels (each implies the ones below it on its architecture).
pub fn available_levels() -> Vec<KernelLevel> {
    let mut levels = vec![KernelLevel::Scalar];
    #[cfg(target_arch = "x86_64")]
    {
        if avx2::Avx2::detect().is_some() {
            levels.push(KernelLevel::Avx2);
        }
        if avx512::Avx512::detect().is_some() {
            levels.push(KernelLevel::Avx512);
        }
    }
    #[cfg(target_arch = "aarch64")]
    if neon::Neon::detect().is_some() {
        levels.push(KernelLevel::Neon);
    }
    levels
}

fn kernels_for(level: KernelLevel) -> Option<&'static dyn SimdKernels> {
    match level {
        KernelLevel::Scalar => None,
        #[cfg(target_arch = "x86_64")]
        KernelLevel::Avx2 => avx2::Avx2::detect().map(|k| k as &dyn SimdKernels),
        #[cfg(target_arch = "x86_64")]
        KernelLevel::Avx512 => avx512::Avx512::detect().map(|k| k as &dyn SimdKernels),
        #[cfg(target_arch = "aarch64")]
        KernelLevel::Neon => neon::Neon::detect().map(|k| k as &dyn SimdKernels),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

struct Choice {
    level: KernelLevel,
    kernels: Option<&'static dyn SimdKernels>,
}

fn choice() -> &'static Choice {
    static CHOICE: OnceLock<Choice> = OnceLock::new();
    CHOICE.get_or_init(|| {
        let best = *available_levels().last().unwrap_or(&KernelLevel::Scalar);
        let forced = std::env::var("GPT_OSS_KERNELS").ok();
        let level = if std::env::var_os("GPTOSS_SCALAR").is_some() {
            KernelLevel::Scalar
        } else if let Some(name) = forced.as_deref().filter(|s| !s.trim().is_empty()) {
            match KernelLevel::parse(name) {
                Some(l) if available_levels().contains(&l) => l,
                Some(l) => {
                    eprintln!(
                        "gpt-oss: GPT_OSS_KERNELS={} is not available on this CPU; using {best}",
                        l.name()
                    );
                    best
                }
                None if name.trim().eq_ignore_ascii_case("amx") => {
                    eprintln!(
                        "gpt-oss: GPT_OSS_KERNELS=amx: this build has no AMX kernels \
                         (stable Rust has no AMX intrinsics yet); using {best}"
                    );
                    best
                }
                None => {
                    eprintln!(
                        "gpt-oss: GPT_OSS_KERNELS={name:?} is not a kernel level \
                         (scalar, avx2, avx512, neon); using {best}"
                    );
                    best
                }
            }
        } else {
            best
        };
        Choice {
            level,
            kernels: kernels_for(level),
        }
    })
}

/// The level the kernels of this process run at (decided once, on first use).
pub fn kernel_level() -> KernelLevel {
    choice().level
}

/// The SIMD kernels of the chosen level; `None` when the scalar oracles run.
pub(crate) fn simd() -> Option<&'static dyn SimdKernels> {
    choice().kernels
}

/// The kernels of one given level, when the CPU has it: lets tests and the probes compare
/// levels within one process whatever `GPT_OSS_KERNELS` says.
#[cfg(test)]
pub(crate) fn simd_at(level: KernelLevel) -> Option<&'static dyn SimdKernels> {
    kernels_for(level)
}

/// One line for start-up logs: the level that runs and what the CPU offers.
pub fn kernel_summary() -> String {
    let avail: Vec<&str> = available_levels().iter().map(|l| l.name()).collect();
    #[cfg(target_arch = "aarch64")]
    let extra = if kernel_level() == KernelLevel::Neon && neon::has_dotprod() {
        " (dotprod)"
    } else {
        ""
    };
    #[cfg(not(target_arch = "aarch64"))]
    let extra = "";
    format!(
        "cpu kernels: {}{extra} (available: {})",
        kernel_level(),
        avail.join(", ")
    )
}
