//! The forward pass, read straight through as in the reference (§2): embedding; per block an
//! attention sub-block and a mixture-of-experts sub-block, each pre-normed with a residual; final
//! norm; unembedding. All tokens of one call go through as a matrix [n_tokens, ...] (prefill), one
//! token is the decode case. Activations and accumulation are f32; weights are read as stored by
//! the backend kernels. This file knows nothing of text or requests.
//!
//! The batched decode step (`forward_batch_impl`) runs one new token for each of B sequences,
//! each with its own cache at its own position: every matrix product (projections, router,
//! experts grouped by routed expert, unembedding) takes all B rows at once, so each weight byte
//! is read once per step for the whole batch; only RoPE angles and attention are per row. The
//! kernels are batch-invariant, so a row gets the same bits as a single-sequence `forward`.
//!
//! LoRA adapters are chosen per sequence (`KvCache::set_lora`). A batched step orders its rows
//! by adapter, so the rows of one adapter are one contiguous span: the base products run once
//! over all rows, then each adapter's low-rank update over its own span only (for the experts,
//! the span's part of each expert's routed rows). A prefill is one sequence, so one span.

use std::cell::RefCell;
use std::ops::Range;

use gptoss_backend::{
    embed_rows_bf16, embed_rows_f32, matmul_f32_bf16w, matmul_f32_bf16w_io, matmul_f32_f32w,
    matmul_f32_f32w_io, matmul_f32_mxfp4w, matmul_q8_mxfp4w, matmul_q8_q8w, rmsnorm_f32,
    rope_yarn_f32, sdpa_sinks_f32, swiglu_clamp_f32, topk_softmax_f32, KvPages, Q8Rows, SdpaParams,
};

use crate::cache::{sized, KvCache, LayerKv, Workspace};
use crate::checkpoint::Store;
use crate::error::ForwardError;
use crate::lora::{LayerLora, LoraId};
use crate::weights::{DenseView, ExpertMatrix, ExpertWeights, Layer, Linear};
use crate::{DecodeRow, ExpertPath, LogitsFor, Model};

/// y f32 [n, d_out] = x f32 [n, d_in] · Wᵀ + b; with 8-bit weights (`lin.q8`), from `xq`, the
/// caller's quantization of x (`Q8Rows` [n, d_in]).
fn linear(store: &Store, lin: &Linear, x: &[f32], xq: Option<&Q8Rows>, y: &mut [f32]) {
    let b = lin.b.as_deref();
    if let (Some(w), Some(xq)) = (&lin.q8, xq) {
        matmul_q8_q8w(xq, w, b, y);
        return;
    }
    match lin.w.view(store) {
        DenseView::Bf16(w) => matmul_f32_bf16w(x, w, b, y, lin.d_in, lin.d_out),
        DenseView::F32(w) => matmul_f32_f32w(x, w, b, y, lin.d_in, lin.d_out),
        // Q8_0 matrices always have their `q8` form (set at load, never cleared: see
        // `Model::set_weights_q8`), so this arm is not reached; NaN rather than a panic.
        DenseView::Q8_0 => y.fill(f32::NAN),
    }
}

/// The input of `lin`'s product on the 8-bit path: x f32 [n, lin.d_in] quantized into `xq`
/// when `lin` has 8-bit weights (one quantization can serve several products of that input),
/// else None (the f32/bf16 path, which reads x itself).
fn q8_input<'a>(lin: &Linear, x: &[f32], xq: &'a mut Q8Rows) -> Option<&'a Q8Rows> {
    lin.q8.as_ref()?;
    xq.quantize(x, lin.d_in);
    Some(xq)
}

/// y f32 [n, d_out] = x f32 [n, d_in] · W[expert]ᵀ + b[expert], W in whatever form it is stored.
fn expert_linear(
    store: &Store,
    m: &ExpertMatrix,
    expert: usize,
    x: &[f32],
    bias: &mut Vec<f32>,
    y: &mut [f32],
) {
    let (d_in, d_out) = (m.d_in, m.d_out);
    let bias = sized(bias, d_out);
    m.bias.read_f32(store, expert * d_out, bias);
    let per_expert = d_in * d_out;
    match &m.w {
        ExpertWeights::Mxfp4 { blocks, scales } => {
            let blk = blocks.get(store, expert * per_expert / 2, per_expert / 2);
            let sc = scales.get(store, expert * per_expert / 32, per_expert / 32);
            matmul_f32_mxfp4w(x, blk, sc, Some(bias), y, d_in, d_out);
        }
        // Dense experts come from safetensors only (bf16/f32); a GGUF's must be MXFP4.
        ExpertWeights::OutIn(w) => match w.slice(expert * per_expert, per_expert).view(store) {
            DenseView::Bf16(w) => matmul_f32_bf16w(x, w, Some(bias), y, d_in, d_out),
            DenseView::F32(w) => matmul_f32_f32w(x, w, Some(bias), y, d_in, d_out),
            DenseView::Q8_0 => y.fill(f32::NAN),
        },
        ExpertWeights::InOut(w) => match w.slice(expert * per_expert, per_expert).view(store) {
            DenseView::Bf16(w) => matmul_f32_bf16w_io(x, w, Some(bias), y, d_in, d_out),
            DenseView::F32(w) => matmul_f32_f32w_io(x, w, Some(bias), y, d_in, d_out),
            DenseView::Q8_0 => y.fill(f32::NAN),
        },
    }
}

/// The int8 path of [`expert_linear`] (MXFP4 weights only): y f32 [n, d_out] =
/// dequant(xq) [n, d_in] · W[expert]ᵀ + b[expert]. The caller checks that `m` is MXFP4 (a dense
/// `m` writes nothing).
fn expert_linear_q8(
    store: &Store,
    m: &ExpertMatrix,
    expert: usize,
    xq: &Q8Rows,
    bias: &mut Vec<f32>,
    y: &mut [f32],
) {
    let ExpertWeights::Mxfp4 { blocks, scales } = &m.w else {
        debug_assert!(false, "expert_linear_q8 on dense experts");
        return;
    };
    let (d_in, d_out) = (m.d_in, m.d_out);
    let bias = sized(bias, d_out);
    m.bias.read_f32(store, expert * d_out, bias);
    let per_expert = d_in * d_out;
    let blk = blocks.get(store, expert * per_expert / 2, per_expert / 2);
    let sc = scales.get(store, expert * per_expert / 32, per_expert / 32);
    matmul_q8_mxfp4w(xq, blk, sc, Some(bias), y, d_out);
}

/// Scratch of the batched decode step, kept per calling thread (the server's engine thread) so
/// a step allocates nothing once the buffers have grown to the batch size.
#[derive(Default)]
struct BatchScratch {
    ws: Workspace,
    /// indices into the caller's rows of the rows that run this step
    run: Vec<usize>,
    tokens: Vec<u32>,
    /// `run`'s rows by adapter (after sorting them by adapter)
    spans: Vec<LoraSpan>,
}

/// Rows `rows` of one forward call run under the adapter `lora` chooses (`Model::adapter_for`).
#[derive(Clone, Debug)]
struct LoraSpan {
    lora: Option<LoraId>,
    rows: Range<usize>,
}

thread_local! {
    static BATCH_SCRATCH: RefCell<BatchScratch> = RefCell::new(BatchScratch::default());
}

/// The checks of a forward call's tokens, shared by every backend: at least one, each a
/// valid id.
pub fn check_tokens(tokens: &[u32], vocab_size: usize) -> Result<(), ForwardError> {
    if tokens.is_empty() {
        return Err(ForwardError::EmptyInput);
    }
    if let Some(&token) = tokens.iter().find(|&&t| t as usize >= vocab_size) {
        return Err(ForwardError::InvalidToken { token, vocab_size });
    }
    Ok(())
}

/// Whether `n` more positions fit a cache holding `len` of at most `max_tokens`.
pub fn check_room(len: usize, n: usize, max_tokens: usize) -> Result<(), ForwardError> {
    let needed = len + n;
    if needed > max_tokens {
        return Err(ForwardError::ContextFull {
            needed,
            max: max_tokens,
        });
    }
    Ok(())
}

impl Model {
    /// Checks that `tokens` can be appended to `cache` (same checks for prefill, decode and batch rows).
    fn check_input(&self, tokens: &[u32], cache: &KvCache) -> Result<(), ForwardError> {
        let c = &self.config;
        check_tokens(tokens, c.vocab_size)?;
        cache
            .matches(c)
            .map_err(|problem| ForwardError::CacheMismatch { problem })?;
        if let Some(id) = cache.lora {
            if self.lora_by_id(id).is_none() {
                return Err(ForwardError::UnknownAdapter { id: id.0 });
            }
        }
        check_room(cache.len, tokens.len(), cache.max_tokens())
    }

    /// As [`Model::forward`], writing the logits into `logits` (resized to
    /// [n_rows, vocab_size]) so a decode loop reuses one buffer instead of allocating per step.
    /// On error the cache and `logits` are unchanged.
    pub fn forward_into(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        which: LogitsFor,
        logits: &mut Vec<f32>,
    ) -> Result<(), ForwardError> {
        let c = &self.config;
        self.check_input(tokens, cache)?;
        let n = tokens.len();
        let pos0 = cache.len;
        let h = c.hidden_size;
        // One sequence: every row under the cache's adapter.
        let spans = [LoraSpan {
            lora: cache.lora,
            rows: 0..n,
        }];
        let KvCache {
            layers: kv_layers,
            ws,
            ..
        } = &mut *cache;

        // Embedding: x f32 [n, hidden].
        let x = sized(&mut ws.x, n * h);
        match self.weights.embedding.view(&self.store) {
            DenseView::Bf16(t) => embed_rows_bf16(t, tokens, h, x),
            DenseView::F32(t) => embed_rows_f32(t, tokens, h, x),
            // A GGUF's Q8_0 embedding: each row decoded exactly where it lies.
            DenseView::Q8_0 => {
                for (&t, row) in tokens.iter().zip(x.chunks_exact_mut(h)) {
                    self.weights
                        .embedding
                        .read_f32(&self.store, t as usize * h, row);
                }
            }
        }
        // RoPE tables for this call's positions, shared by every layer: f32 [n, head_dim/2].
        let d_half = c.head_dim / 2;
        self.rope.cos_sin(
            pos0,
            sized(&mut ws.cos, n * d_half),
            sized(&mut ws.sin, n * d_half),
        );

        for (layer_idx, (layer, kv)) in self
            .weights
            .layers
            .iter()
            .zip(kv_layers.iter_mut())
            .enumerate()
        {
            self.attention_block(layer_idx, layer, kv, pos0..pos0 + n, &spans, ws);
            self.moe_block(layer_idx, layer, &spans, n, ws);
        }

        // Final norm and unembedding, for every row or the last one only.
        let rows = match which {
            LogitsFor::All => 0..n,
            LogitsFor::Last => n - 1..n,
            LogitsFor::Nothing => n..n,
        };
        logits.clear();
        if !rows.is_empty() {
            logits.resize(rows.len() * c.vocab_size, 0.0);
            self.unembed(rows, ws, logits);
        }
        cache.len = pos0 + n;
        Ok(())
    }

    /// logits f32 [rows, vocab] = unembedding(rms(x[rows])).
    fn unembed(&self, rows: std::ops::Range<usize>, ws: &mut Workspace, logits: &mut [f32]) {
        let c = &self.config;
        let h = c.hidden_size;
        let x_rows = &ws.x[rows.start * h..rows.end * h];
        let hn = sized(&mut ws.h, rows.len() * h);
        rmsnorm_f32(x_rows, &self.weights.norm, c.rms_norm_eps, hn);
        if let Some(u) = &self.q8_unembed {
            let v = c.vocab_size;
            u.project(hn, &mut ws.q8_dense, logits, &mut ws.logits_compact, v);
            return;
        }
        self.zero_rows.project(
            &self.store,
            &self.weights.unembedding,
            hn,
            logits,
            &mut ws.logits_compact,
            c.vocab_size,
        );
    }

    /// One decode step for several sequences (see the file header). Rows that fail the input
    /// checks get their error and are left untouched (cache and logits); the others run.
    pub(crate) fn forward_batch_impl(
        &self,
        rows: &mut [DecodeRow<'_>],
    ) -> Vec<Result<(), ForwardError>> {
        let results: Vec<Result<(), ForwardError>> = rows
            .iter()
            .map(|r| self.check_input(std::slice::from_ref(&r.token), r.cache))
            .collect();
        let mut run = |scratch: &mut BatchScratch| {
            scratch.run.clear();
            scratch
                .run
                .extend((0..rows.len()).filter(|&i| results[i].is_ok()));
            if !scratch.run.is_empty() {
                self.decode_rows(rows, scratch);
            }
        };
        BATCH_SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => run(&mut scratch),
            // Re-entered on this thread (a rayon worker that stole another batch while waiting
            // inside a kernel): use a fresh scratch rather than fail.
            Err(_) => run(&mut BatchScratch::default()),
        });
        results
    }

    /// Runs the rows `scratch.run` of `rows` (all checked) through one batched step.
    fn decode_rows(&self, rows: &mut [DecodeRow<'_>], scratch: &mut BatchScratch) {
        let c = &self.config;
        let (h, v) = (c.hidden_size, c.vocab_size);
        let BatchScratch {
            ws,
            run,
            tokens,
            spans,
        } = scratch;
        let n = run.len();
        // Rows of one adapter side by side (row index breaks ties: a fixed order), one span each.
        run.sort_unstable_by_key(|&i| (rows[i].cache.lora, i));
        spans.clear();
        for (r, &i) in run.iter().enumerate() {
            let lora = rows[i].cache.lora;
            match spans.last_mut() {
                Some(span) if span.lora == lora => span.rows.end = r + 1,
                _ => spans.push(LoraSpan {
                    lora,
                    rows: r..r + 1,
                }),
            }
        }
        tokens.clear();
        tokens.extend(run.iter().map(|&i| rows[i].token));
        // Embedding: x f32 [n, hidden], one row per sequence.
        let x = sized(&mut ws.x, n * h);
        match self.weights.embedding.view(&self.store) {
            DenseView::Bf16(t) => embed_rows_bf16(t, tokens, h, x),
            DenseView::F32(t) => embed_rows_f32(t, tokens, h, x),
            // A GGUF's Q8_0 embedding: each row decoded exactly where it lies.
            DenseView::Q8_0 => {
                for (&t, row) in tokens.iter().zip(x.chunks_exact_mut(h)) {
                    self.weights
                        .embedding
                        .read_f32(&self.store, t as usize * h, row);
                }
            }
        }
        // RoPE tables, one row per sequence at its own position: f32 [n, head_dim/2].
        let d_half = c.head_dim / 2;
        let cos = sized(&mut ws.cos, n * d_half);
        let sin = sized(&mut ws.sin, n * d_half);
        for (r, &i) in run.iter().enumerate() {
            let span = r * d_half..(r + 1) * d_half;
            self.rope
                .cos_sin(rows[i].cache.len, &mut cos[span.clone()], &mut sin[span]);
        }
        for (layer_idx, layer) in self.weights.layers.iter().enumerate() {
            self.qkv(layer_idx, layer, spans, n, ws);
            self.rope_qk(n, ws);
            let (qd, kvd) = (c.q_dim(), c.kv_dim());
            let params = self.sdpa_params(layer_idx);
            let attn = sized(&mut ws.attn, n * qd);
            for (r, &i) in run.iter().enumerate() {
                let cache = &mut *rows[i].cache;
                let pos = cache.len;
                let kv = &mut cache.layers[layer_idx];
                let (q, k, vv) = (
                    &ws.q[r * qd..(r + 1) * qd],
                    &ws.k[r * kvd..(r + 1) * kvd],
                    &ws.v[r * kvd..(r + 1) * kvd],
                );
                let past = KvPages {
                    k_pages: &kv.k_pages,
                    v_pages: &kv.v_pages,
                    page_len: kv.page_len(),
                    ring_len: kv.ring_len,
                };
                let out = &mut attn[r * qd..(r + 1) * qd];
                sdpa_sinks_f32(q, k, vv, &past, pos, &layer.sinks, &params, out);
                kv.write(pos, k, vv, kvd);
            }
            self.attn_out(layer_idx, layer, spans, n, ws);
            self.moe_block(layer_idx, layer, spans, n, ws);
        }
        // Final norm, then the unembedding of all rows at once, each row's logits written
        // straight into its own buffer (no [n, vocab] matrix to copy out).
        let hn = sized(&mut ws.h, n * h);
        rmsnorm_f32(&ws.x, &self.weights.norm, c.rms_norm_eps, hn);
        // In batch (`run`) order, which the adapter sort may have changed.
        let mut by_row: Vec<Option<&mut Vec<f32>>> =
            rows.iter_mut().map(|row| Some(&mut *row.logits)).collect();
        let mut outs: Vec<&mut [f32]> = Vec::with_capacity(n);
        for &i in run.iter() {
            if let Some(out) = by_row[i].take() {
                if out.len() != v {
                    out.clear();
                    out.resize(v, 0.0);
                }
                outs.push(out);
            }
        }
        match &self.q8_unembed {
            Some(u) => u.project_each(hn, &mut ws.q8_dense, &mut outs, &mut ws.logits_compact),
            None => self.zero_rows.project_each(
                &self.store,
                &self.weights.unembedding,
                hn,
                &mut outs,
                &mut ws.logits_compact,
                v,
            ),
        }
        for &i in run.iter() {
            rows[i].cache.len += 1;
        }
    }

    /// Each span's adapter updates of layer `layer_idx`, with the span's rows (spans under no
    /// adapter left out).
    fn layer_loras<'a>(
        &'a self,
        spans: &'a [LoraSpan],
        layer_idx: usize,
    ) -> impl Iterator<Item = (&'a LayerLora, Range<usize>)> + 'a {
        spans.iter().filter_map(move |s| {
            self.adapter_for(s.lora)
                .map(|a| (&a.layers[layer_idx], s.rows.clone()))
        })
    }

    /// hn = rms(x); q f32 [n, heads, head_dim], k/v f32 [n, kv_heads, head_dim] projections
    /// (each span's rows plus its adapter's update, if any).
    fn qkv(
        &self,
        layer_idx: usize,
        layer: &Layer,
        spans: &[LoraSpan],
        n: usize,
        ws: &mut Workspace,
    ) {
        let c = &self.config;
        let (h, qd, kvd) = (c.hidden_size, c.q_dim(), c.kv_dim());
        let s = &self.store;
        let hn = sized(&mut ws.h, n * h);
        rmsnorm_f32(&ws.x, &layer.attn_norm, c.rms_norm_eps, hn);
        let q = sized(&mut ws.q, n * qd);
        let k = sized(&mut ws.k, n * kvd);
        let v = sized(&mut ws.v, n * kvd);
        // 8-bit weights: the normed rows quantized once for the three products.
        let xq = q8_input(&layer.q, hn, &mut ws.q8_dense);
        linear(s, &layer.q, hn, xq, q);
        linear(s, &layer.k, hn, xq, k);
        linear(s, &layer.v, hn, xq, v);
        let (t, u) = (&mut ws.lora_t, &mut ws.lora_u);
        for (l, rows) in self.layer_loras(spans, layer_idx) {
            let x = &hn[rows.start * h..rows.end * h];
            for (lr, y, d) in [
                (&l.q, &mut *q, qd),
                (&l.k, &mut *k, kvd),
                (&l.v, &mut *v, kvd),
            ] {
                if let Some(lr) = lr {
                    lr.add(x, &mut y[rows.start * d..rows.end * d], t, u);
                }
            }
        }
    }

    /// Rotates q and k by the per-row angles in ws.cos / ws.sin.
    fn rope_qk(&self, n: usize, ws: &mut Workspace) {
        let c = &self.config;
        let (qd, kvd) = (c.q_dim(), c.kv_dim());
        rope_yarn_f32(
            &mut ws.q[..n * qd],
            c.num_attention_heads,
            c.head_dim,
            &ws.cos,
            &ws.sin,
        );
        rope_yarn_f32(
            &mut ws.k[..n * kvd],
            c.num_key_value_heads,
            c.head_dim,
            &ws.cos,
            &ws.sin,
        );
    }

    fn sdpa_params(&self, layer_idx: usize) -> SdpaParams {
        let c = &self.config;
        SdpaParams {
            n_heads: c.num_attention_heads,
            n_kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim,
            sm_scale: 1.0 / (c.head_dim as f32).sqrt(),
            window: c.is_sliding(layer_idx).then_some(c.sliding_window),
        }
    }

    /// x += out(attn) (each span's rows plus its adapter's update, if any).
    fn attn_out(
        &self,
        layer_idx: usize,
        layer: &Layer,
        spans: &[LoraSpan],
        n: usize,
        ws: &mut Workspace,
    ) {
        let (h, qd) = (self.config.hidden_size, self.config.q_dim());
        let proj = sized(&mut ws.proj, n * h);
        let xq = q8_input(&layer.out, &ws.attn, &mut ws.q8_dense);
        linear(&self.store, &layer.out, &ws.attn, xq, proj);
        for (l, rows) in self.layer_loras(spans, layer_idx) {
            if let Some(lr) = &l.o {
                lr.add(
                    &ws.attn[rows.start * qd..rows.end * qd],
                    &mut proj[rows.start * h..rows.end * h],
                    &mut ws.lora_t,
                    &mut ws.lora_u,
                );
            }
        }
        for (xv, pv) in ws.x.iter_mut().zip(proj.iter()) {
            *xv += *pv;
        }
    }

    /// x += out(attention(rope(q), rope(k), v)) over rms(x) for the tokens at `positions`;
    /// appends their K/V to `kv`.
    fn attention_block(
        &self,
        layer_idx: usize,
        layer: &Layer,
        kv: &mut LayerKv,
        positions: Range<usize>,
        spans: &[LoraSpan],
        ws: &mut Workspace,
    ) {
        let (pos0, n) = (positions.start, positions.len());
        let c = &self.config;
        let (qd, kvd) = (c.q_dim(), c.kv_dim());
        self.qkv(layer_idx, layer, spans, n, ws);
        self.rope_qk(n, ws);
        let params = self.sdpa_params(layer_idx);
        let past = KvPages {
            k_pages: &kv.k_pages,
            v_pages: &kv.v_pages,
            page_len: kv.page_len(),
            ring_len: kv.ring_len,
        };
        let attn = sized(&mut ws.attn, n * qd);
        let (q, k, v) = (&ws.q[..n * qd], &ws.k[..n * kvd], &ws.v[..n * kvd]);
        sdpa_sinks_f32(q, k, v, &past, pos0, &layer.sinks, &params, attn);
        kv.write(pos0, k, v, kvd);
        self.attn_out(layer_idx, layer, spans, n, ws);
    }

    /// x += Σ_top-k w_e · expert_e(rms(x)), experts run over the rows routed to them (each
    /// expert matrix plus, for each span's share of the expert's rows, its adapter's update for
    /// that expert, if any).
    fn moe_block(
        &self,
        layer_idx: usize,
        layer: &Layer,
        spans: &[LoraSpan],
        n: usize,
        ws: &mut Workspace,
    ) {
        let c = &self.config;
        let (h, e, k, inter) = (
            c.hidden_size,
            c.num_experts,
            c.experts_per_token,
            c.intermediate_size,
        );
        let s = &self.store;
        let hn = sized(&mut ws.h, n * h);
        rmsnorm_f32(&ws.x, &layer.mlp_norm, c.rms_norm_eps, hn);
        // Router: logits f32 [n, experts]; top-k, softmax over the selected.
        let router = sized(&mut ws.router, n * e);
        linear(s, &layer.router, hn, None, router);
        ws.topk_idx.resize(n * k, 0);
        let topk_w = sized(&mut ws.topk_w, n * k);
        for t in 0..n {
            topk_softmax_f32(
                &router[t * e..(t + 1) * e],
                &mut ws.topk_idx[t * k..(t + 1) * k],
                &mut topk_w[t * k..(t + 1) * k],
            );
        }
        // Group token rows by expert.
        ws.expert_rows.resize_with(e, Vec::new);
        ws.expert_rows.iter_mut().for_each(Vec::clear);
        for t in 0..n {
            for j in 0..k {
                ws.expert_rows[ws.topk_idx[t * k + j]].push((t, topk_w[t * k + j]));
            }
        }
        let acc = sized(&mut ws.moe_acc, n * h);
        acc.fill(0.0);
        // The int8 path quantizes each normed row once here, for every expert it is routed to.
        let any_up = self
            .layer_loras(spans, layer_idx)
            .any(|(l, _)| l.gate_up.is_some());
        let int8 = self.expert_path == ExpertPath::Int8
            && matches!(layer.mlp1.w, ExpertWeights::Mxfp4 { .. })
            && matches!(layer.mlp2.w, ExpertWeights::Mxfp4 { .. });
        if int8 {
            ws.q8_in.quantize(hn, h);
        }
        for expert in 0..e {
            let rows = &ws.expert_rows[expert];
            if rows.is_empty() {
                continue;
            }
            let m = rows.len();
            // u f32 [m, 2·inter] (gate/linear interleaved) -> act f32 [m, inter] -> y f32 [m, hidden]
            let u = sized(&mut ws.moe_u, m * 2 * inter);
            // The routed rows in f32: the exact path's input, and the LoRA update's on both.
            if !int8 || any_up {
                let xin = sized(&mut ws.moe_in, m * h);
                for (r, &(t, _)) in rows.iter().enumerate() {
                    xin[r * h..(r + 1) * h].copy_from_slice(&hn[t * h..(t + 1) * h]);
                }
            }
            if int8 {
                // Every row in order (one-token decode): the quantized rows as they are.
                let all_rows = m == n && rows.iter().enumerate().all(|(r, &(t, _))| r == t);
                let xq = if all_rows {
                    &ws.q8_in
                } else {
                    ws.q8_rows.reset(h);
                    for &(t, _) in rows {
                        ws.q8_rows.push_row_of(&ws.q8_in, t);
                    }
                    &ws.q8_rows
                };
                expert_linear_q8(s, &layer.mlp1, expert, xq, &mut ws.bias1, u);
            } else {
                expert_linear(
                    s,
                    &layer.mlp1,
                    expert,
                    &ws.moe_in[..m * h],
                    &mut ws.bias1,
                    u,
                );
            }
            // The routed rows are in row order, so a span's share of them is contiguous.
            let share = |span: &Range<usize>| {
                let first = rows.partition_point(|&(t, _)| t < span.start);
                first..rows.partition_point(|&(t, _)| t < span.end)
            };
            let w = 2 * inter;
            for (l, span) in self.layer_loras(spans, layer_idx) {
                let s = share(&span);
                if let (Some(lr), false) = (&l.gate_up, s.is_empty()) {
                    lr.add(
                        expert,
                        &ws.moe_in[s.start * h..s.end * h],
                        &mut u[s.start * w..s.end * w],
                        &mut ws.lora_t,
                        &mut ws.lora_u,
                    );
                }
            }
            let act = sized(&mut ws.moe_act, m * inter);
            swiglu_clamp_f32(u, c.swiglu_limit, c.swiglu_alpha, act);
            let y = sized(&mut ws.moe_out, m * h);
            if int8 {
                ws.q8_act.quantize(act, inter);
                expert_linear_q8(s, &layer.mlp2, expert, &ws.q8_act, &mut ws.bias2, y);
            } else {
                expert_linear(s, &layer.mlp2, expert, act, &mut ws.bias2, y);
            }
            for (l, span) in self.layer_loras(spans, layer_idx) {
                let s = share(&span);
                if let (Some(lr), false) = (&l.down, s.is_empty()) {
                    lr.add(
                        expert,
                        &act[s.start * inter..s.end * inter],
                        &mut y[s.start * h..s.end * h],
                        &mut ws.lora_t,
                        &mut ws.lora_u,
                    );
                }
            }
            for (r, &(t, w)) in rows.iter().enumerate() {
                for (a, &yv) in acc[t * h..(t + 1) * h]
                    .iter_mut()
                    .zip(&y[r * h..(r + 1) * h])
                {
                    *a += w * yv;
                }
            }
        }
        for (xv, av) in ws.x.iter_mut().zip(acc.iter()) {
            *xv += *av;
        }
    }
}
