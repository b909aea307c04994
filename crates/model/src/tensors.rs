//! Read-only views of a loaded model's tensors, for backends that keep their own copy of the
//! weights (the GPU backend uploads them once). The views borrow the memory map: nothing is
//! converted or dequantized here; MXFP4 experts are handed out as their packed bytes.

use gptoss_backend::bf16;

use crate::checkpoint::Store;
use crate::weights::{DenseRef, DenseView, ExpertMatrix, ExpertWeights, Linear};
use crate::Model;

/// A dense tensor as stored: bf16 or f32 elements, row-major.
#[derive(Clone, Copy, Debug)]
pub enum DenseTensor<'a> {
    Bf16(&'a [bf16]),
    F32(&'a [f32]),
}

impl DenseTensor<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            DenseTensor::Bf16(v) => v.len(),
            DenseTensor::F32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the elements span.
    pub fn byte_len(&self) -> usize {
        match self {
            DenseTensor::Bf16(v) => v.len() * 2,
            DenseTensor::F32(v) => v.len() * 4,
        }
    }

    /// The elements' little-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            DenseTensor::Bf16(v) => bytemuck::cast_slice(v),
            DenseTensor::F32(v) => bytemuck::cast_slice(v),
        }
    }
}

/// `y = x · Wᵀ + b` with `weight` [d_out, d_in].
#[derive(Clone, Copy, Debug)]
pub struct LinearTensors<'a> {
    pub weight: DenseTensor<'a>,
    /// f32 [d_out]
    pub bias: Option<&'a [f32]>,
    pub d_in: usize,
    pub d_out: usize,
}

/// One expert matrix for every expert, in the form the checkpoint stores it.
#[derive(Clone, Copy, Debug)]
pub enum ExpertTensor<'a> {
    /// blocks u8 [E, d_out, d_in/32, 16] (two FP4 codes a byte, low nibble first),
    /// scales u8 [E, d_out, d_in/32] (E8M0)
    Mxfp4 { blocks: &'a [u8], scales: &'a [u8] },
    /// [E, d_out, d_in]
    OutIn(DenseTensor<'a>),
    /// [E, d_in, d_out] (dequantized Hugging Face checkpoints)
    InOut(DenseTensor<'a>),
}

/// An expert matrix and its bias, for every expert.
#[derive(Clone, Copy, Debug)]
pub struct ExpertTensors<'a> {
    pub weight: ExpertTensor<'a>,
    /// [E, d_out]
    pub bias: DenseTensor<'a>,
    pub d_in: usize,
    pub d_out: usize,
}

/// One transformer block.
#[derive(Clone, Copy, Debug)]
pub struct LayerTensors<'a> {
    /// f32 [hidden]
    pub attn_norm: &'a [f32],
    pub q: LinearTensors<'a>,
    pub k: LinearTensors<'a>,
    pub v: LinearTensors<'a>,
    pub out: LinearTensors<'a>,
    /// f32 [num_attention_heads]
    pub sinks: &'a [f32],
    /// f32 [hidden]
    pub mlp_norm: &'a [f32],
    pub router: LinearTensors<'a>,
    /// [E, 2·intermediate, hidden], gate/linear rows interleaved
    pub mlp1: ExpertTensors<'a>,
    /// [E, hidden, intermediate]
    pub mlp2: ExpertTensors<'a>,
}

/// Every tensor of a model.
#[derive(Clone, Debug)]
pub struct ModelTensors<'a> {
    /// [vocab, hidden]
    pub embedding: DenseTensor<'a>,
    /// [vocab, hidden]
    pub unembedding: DenseTensor<'a>,
    /// Token ids of the unembedding's nonzero rows (ascending) when most rows are exactly zero
    /// (the demo model); every other row's logit is exactly 0.
    pub unembedding_nonzero_ids: Option<&'a [u32]>,
    /// f32 [hidden]
    pub norm: &'a [f32],
    pub layers: Vec<LayerTensors<'a>>,
}

/// Q8_0 tensors (GGUF files) have no dense view: they come out empty, and
/// [`Model::gpu_unsupported`] tells backends not to take such a model.
fn dense<'a>(store: &'a Store, r: &DenseRef) -> DenseTensor<'a> {
    match r.view(store) {
        DenseView::Bf16(v) => DenseTensor::Bf16(v),
        DenseView::F32(v) => DenseTensor::F32(v),
        DenseView::Q8_0 => DenseTensor::F32(&[]),
    }
}

fn linear<'a>(store: &'a Store, l: &'a Linear) -> LinearTensors<'a> {
    LinearTensors {
        weight: dense(store, &l.w),
        bias: l.b.as_deref(),
        d_in: l.d_in,
        d_out: l.d_out,
    }
}

fn experts<'a>(store: &'a Store, m: &ExpertMatrix, n_experts: usize) -> ExpertTensors<'a> {
    let per_expert = m.d_in * m.d_out;
    let weight = match &m.w {
        ExpertWeights::Mxfp4 { blocks, scales } => ExpertTensor::Mxfp4 {
            blocks: blocks.get(store, 0, n_experts * per_expert / 2),
            scales: scales.get(store, 0, n_experts * per_expert / 32),
        },
        ExpertWeights::OutIn(w) => ExpertTensor::OutIn(dense(store, w)),
        ExpertWeights::InOut(w) => ExpertTensor::InOut(dense(store, w)),
    };
    ExpertTensors {
        weight,
        bias: dense(store, &m.bias),
        d_in: m.d_in,
        d_out: m.d_out,
    }
}

impl Model {
    /// Views of every tensor, borrowed from the checkpoint's mapping (see [`ModelTensors`]).
    pub fn tensors(&self) -> ModelTensors<'_> {
        let s = &self.store;
        let e = self.config.num_experts;
        ModelTensors {
            embedding: dense(s, &self.weights.embedding),
            unembedding: dense(s, &self.weights.unembedding),
            unembedding_nonzero_ids: self.zero_rows.nonzero_ids(),
            norm: &self.weights.norm,
            layers: self
                .weights
                .layers
                .iter()
                .map(|l| LayerTensors {
                    attn_norm: &l.attn_norm,
                    q: linear(s, &l.q),
                    k: linear(s, &l.k),
                    v: linear(s, &l.v),
                    out: linear(s, &l.out),
                    sinks: &l.sinks,
                    mlp_norm: &l.mlp_norm,
                    router: linear(s, &l.router),
                    mlp1: experts(s, &l.mlp1, e),
                    mlp2: experts(s, &l.mlp2, e),
                })
                .collect(),
        }
    }

    /// The YaRN rotary tables' generator this model uses.
    pub fn rope(&self) -> &gptoss_backend::YarnRope {
        &self.rope
    }
}
