//! gptoss-gpu: gpt-oss on a GPU through wgpu (Vulkan on NVIDIA, AMD and Intel, Metal on Apple
//! Silicon, DX12 on Windows), with WGSL compute shaders, one operation per file in `shaders/`.
//!
//! - `context`: adapter discovery and the device (`gpt-oss devices`, `--device gpu:N`).
//! - `weights`: the checkpoint uploaded once (MXFP4 experts stay packed, dense matrices in
//!   their stored dtype, q/k/v fused).
//! - `cache`: per-sequence KV cache in device memory (sliding rings, growing full layers,
//!   snapshots for prefix reuse), with the CPU cache's semantics.
//! - `kernels`: the pipelines and the recorder that makes a forward pass one submission.
//! - `model`: [`GpuModel`], the forward pass; only logits rows come back to the host.
//! - `seam`: the engine's `LanguageModel` for [`SharedGpuModel`].
//!
//! Every kernel is tested against the CPU kernels of `gptoss-backend` (the scalar oracles) on
//! ragged shapes, and the whole model against the golden logits, on whatever adapter is found
//! (Mesa's lavapipe in CI).

mod cache;
mod context;
mod error;
pub mod kernels;
mod model;
mod seam;
mod weights;

#[cfg(test)]
mod kernel_tests;

pub use cache::GpuCache;
pub use context::{list_adapters, AdapterSummary, GpuContext};
pub use error::GpuError;
pub use model::GpuModel;
pub use seam::{GpuKv, SharedGpuModel};
pub use weights::{Globals, ModelSource, WeightSource};
