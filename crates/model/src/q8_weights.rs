//! 8-bit weights for the dense matrices a decode step reads most (`Model::set_weights_q8`,
//! `--weights-q8`): the attention projections (q, k, v, out) of every layer and the
//! unembedding, quantized once to Q8_0 (`gptoss_backend::Q8Weights`: int8 codes, one f32 scale
//! per 32 inputs, 1.125 bytes per weight instead of bf16's 2). Owns the quantization of those
//! tensors, the release of their bf16 pages from the memory map, and the unembedding product on
//! the 8-bit path (dense, or the compact nonzero rows when zero-row skipping is active). Which
//! product runs where is `forward.rs`'s business; the kernels are in `gptoss-backend`.
//!
//! The embedding, the router, the norms and the MXFP4 experts are untouched: the embedding is
//! read one row per token, the router is small, the experts are already 4-bit.
//!
//! Memory: the quantized copies are owned buffers (about 56 % of the bf16 bytes). After a
//! tensor is quantized its bf16 pages are dropped from the process (`madvise(MADV_DONTNEED)` on
//! the read-only file mapping), a few MB at a time, so resident memory does not hold both
//! copies; turning the option off again simply reads the file pages back on demand. Stores
//! held in memory (the embedded demo model) keep their bytes.

use gptoss_backend::{matmul_q8_q8w, matmul_q8_q8w_each, Q8Rows, Q8Weights};

use crate::checkpoint::Store;
use crate::error::LoadError;
use crate::weights::{DenseRef, DenseView, Weights};

/// Rows quantized (and their source pages released) per step: ~23 MB of bf16 at 2880 inputs.
const CHUNK_ROWS: usize = 4096;

/// The unembedding on the 8-bit path.
pub(crate) enum Q8Unembedding {
    /// [vocab, hidden]
    Dense(Q8Weights),
    /// The nonzero rows only (zero-row skipping, see `unembed.rs`): token ids ascending, and
    /// those rows [ids.len(), hidden].
    Compact { ids: Vec<u32>, w: Q8Weights },
}

/// Quantizes q, k, v and out of every layer into their `Linear::q8` and returns the
/// unembedding's quantized form (`nonzero_ids`: the rows to keep when zero-row skipping is
/// active). Releases each bf16 tensor's mapped pages as it goes.
pub(crate) fn quantize(
    store: &Store,
    weights: &mut Weights,
    nonzero_ids: Option<&[u32]>,
) -> Result<Q8Unembedding, LoadError> {
    for (layer_idx, layer) in weights.layers.iter_mut().enumerate() {
        for (name, lin) in [
            ("q", &mut layer.q),
            ("k", &mut layer.k),
            ("v", &mut layer.v),
            ("out", &mut layer.out),
        ] {
            if lin.q8.is_none() {
                let what = || format!("layer {layer_idx} attention {name}");
                lin.q8 = Some(quantize_dense(store, &lin.w, lin.d_in, lin.d_out, what)?);
            }
        }
    }
    let u = &weights.unembedding;
    let hidden = weights.norm.len();
    let vocab = u.n_elems / hidden.max(1);
    let what = || "unembedding".to_string();
    Ok(match nonzero_ids {
        None => Q8Unembedding::Dense(quantize_dense(store, u, hidden, vocab, what)?),
        Some(ids) => {
            let mut w = Q8Weights::zeros(hidden, ids.len()).map_err(|e| unsupported(what(), e))?;
            // Gather the rows a chunk at a time into a small buffer, then quantize the chunk.
            let mut buf: Vec<f32> = Vec::new();
            for (c, chunk) in ids.chunks(CHUNK_ROWS).enumerate() {
                buf.clear();
                buf.resize(chunk.len() * hidden, 0.0);
                for (row, &id) in buf.chunks_exact_mut(hidden).zip(chunk) {
                    u.read_f32(store, id as usize * hidden, row);
                }
                w.quantize_rows_f32(c * CHUNK_ROWS, &buf)
                    .map_err(|e| unsupported(what(), e))?;
            }
            store.release(u);
            Q8Unembedding::Compact {
                ids: ids.to_vec(),
                w,
            }
        }
    })
}

fn unsupported(what: String, e: gptoss_backend::Q8WeightsError) -> LoadError {
    LoadError::UnsupportedQuantization {
        problem: format!("8-bit weights for the {what}: {e}"),
    }
}

/// `w` (bf16/f32 [d_out, d_in]) quantized, `CHUNK_ROWS` rows at a time, each chunk's source
/// pages released once read.
fn quantize_dense(
    store: &Store,
    w: &DenseRef,
    d_in: usize,
    d_out: usize,
    what: impl Fn() -> String,
) -> Result<Q8Weights, LoadError> {
    let mut q = Q8Weights::zeros(d_in, d_out).map_err(|e| unsupported(what(), e))?;
    let mut r0 = 0;
    while r0 < d_out {
        let rows = CHUNK_ROWS.min(d_out - r0);
        let part = w.slice(r0 * d_in, rows * d_in);
        match part.view(store) {
            DenseView::Bf16(v) => q.quantize_rows_bf16(r0, v),
            DenseView::F32(v) => q.quantize_rows_f32(r0, v),
            // A GGUF's Q8_0 blocks, decoded exactly and quantized again: ggml's quantizer gives
            // every nonzero block a code of ±127 at its largest element, so the requantization
            // finds the same scale and codes (lossless).
            DenseView::Q8_0 => {
                let mut buf = vec![0f32; rows * d_in];
                part.read_f32(store, 0, &mut buf);
                q.quantize_rows_f32(r0, &buf)
            }
        }
        .map_err(|e| unsupported(what(), e))?;
        store.release(&part);
        r0 += rows;
    }
    Ok(q)
}

impl Q8Unembedding {
    /// logits f32 [n, vocab] from `hn` f32 [n, hidden], quantized into `xq`; `scratch` holds
    /// the compact rows' logits (f32 [n, ids.len()]).
    pub fn project(
        &self,
        hn: &[f32],
        xq: &mut Q8Rows,
        logits: &mut [f32],
        scratch: &mut Vec<f32>,
        vocab: usize,
    ) {
        let n = logits.len() / vocab.max(1);
        if n == 0 {
            return;
        }
        xq.quantize(hn, hn.len() / n);
        match self {
            Q8Unembedding::Dense(w) => matmul_q8_q8w(xq, w, None, logits),
            Q8Unembedding::Compact { ids, w } => {
                scatter(ids, w, hn, xq, scratch, logits.chunks_exact_mut(vocab))
            }
        }
    }

    /// As [`Q8Unembedding::project`], token t's logits (f32 [vocab]) written to `outs[t]`.
    pub fn project_each(
        &self,
        hn: &[f32],
        xq: &mut Q8Rows,
        outs: &mut [&mut [f32]],
        scratch: &mut Vec<f32>,
    ) {
        let n = outs.len();
        if n == 0 {
            return;
        }
        xq.quantize(hn, hn.len() / n);
        match self {
            Q8Unembedding::Dense(w) => matmul_q8_q8w_each(xq, w, None, outs),
            Q8Unembedding::Compact { ids, w } => {
                scatter(ids, w, hn, xq, scratch, outs.iter_mut().map(|o| &mut **o))
            }
        }
    }
}

/// The compact product (rows `ids`, quantized as `w`) of the quantized activations `xq`, token
/// t's logits scattered into the t-th of `outs`.
///
/// This gives the dense 8-bit product's bits: an all-zero weight row has zero codes and scale
/// 0, so its logit is +0.0 for finite activations; an activation row holding NaN or ±inf makes
/// every logit NaN on the dense path (its block scale is NaN, and NaN · 0 is NaN), so the
/// skipped rows of such a row are written as NaN.
fn scatter<'o>(
    ids: &[u32],
    w: &Q8Weights,
    hn: &[f32],
    xq: &Q8Rows,
    scratch: &mut Vec<f32>,
    outs: impl Iterator<Item = &'o mut [f32]>,
) {
    let (n, k) = (xq.n_rows(), ids.len());
    let hidden = xq.d_in();
    let compact = crate::cache::sized(scratch, n * k);
    if k > 0 {
        matmul_q8_q8w(xq, w, None, compact);
    }
    for (t, out) in outs.enumerate() {
        let finite = hn[t * hidden..(t + 1) * hidden]
            .iter()
            .all(|v| v.is_finite());
        out.fill(if finite { 0.0 } else { f32::NAN });
        for (&id, &l) in ids.iter().zip(&compact[t * k..(t + 1) * k]) {
            out[id as usize] = l;
        }
    }
}
