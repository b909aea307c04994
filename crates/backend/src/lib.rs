//! Numeric building blocks of the gpt-oss forward pass: the weight dtypes (bf16, MXFP4 E2M1 with
//! E8M0 block scales) and the kernels, named operation first and dtypes last
//! (`matmul_f32_mxfp4w`: f32 activations, MXFP4 weights).
//!
//! Every kernel here is the plain, readable "oracle" version: slices in, slices out, f32
//! accumulation, no allocation inside except where noted. Some are parallelised over output rows
//! with rayon, but each keeps a sequential reference twin (`*_ref`, test-only or public) that later
//! SIMD kernels are tested against. This crate knows nothing about checkpoints, names or caches.

pub mod attention;
pub mod cpu;
pub mod dtype;
pub mod matmul;
pub mod moe;
pub mod norm;
pub mod probe;
pub mod q8;
pub mod q8w;
pub mod rope;
#[cfg(test)]
mod test_rng;

pub use attention::{sdpa_sinks_f32, sdpa_sinks_f32_scalar, KvPages, SdpaParams};
pub use cpu::{available_levels, kernel_level, kernel_summary, KernelLevel};
pub use dtype::{bf16, bf16_to_f32, e8m0_to_f32, fp4_e2m1_to_f32, FP4_E2M1_VALUES, MXFP4_BLOCK};
pub use matmul::{
    embed_rows_bf16, embed_rows_f32, fast_kernels, matmul_f32_bf16w, matmul_f32_bf16w_each,
    matmul_f32_bf16w_io, matmul_f32_bf16w_scalar, matmul_f32_f32w, matmul_f32_f32w_each,
    matmul_f32_f32w_io, matmul_f32_f32w_scalar, matmul_f32_mxfp4w, matmul_f32_mxfp4w_scalar,
};
pub use moe::{swiglu_clamp_f32, topk_softmax_f32, SWIGLU_ALPHA};
pub use norm::rmsnorm_f32;
pub use q8::{int8_kernels, matmul_q8_mxfp4w, matmul_q8_mxfp4w_scalar, Q8Rows};
pub use q8w::{matmul_q8_q8w, matmul_q8_q8w_each, matmul_q8_q8w_scalar, Q8Weights, Q8WeightsError};
pub use rope::{rope_yarn_f32, YarnRope};
