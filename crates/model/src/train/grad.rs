//! The loss and its gradient for the LoRA tensors (attention projections and experts): a forward pass
//! over one sequence from position 0 that keeps what the backward pass reads (the tape), then
//! the backward pass, layer by layer from the last.
//!
//! The same arithmetic as forward.rs (f32, reference §2), written out plainly: the base's dense
//! matrices are read as f32 per layer; each expert's matrices are decoded (MXFP4 or dense) one
//! expert at a time, used for the rows routed to it, and dropped. The router's top-k choice is
//! piecewise constant, so gradients reach the router logits only through the softmax over the
//! selected experts.

use gptoss_backend::dtype::decode_mxfp4_row;
use gptoss_backend::{rmsnorm_f32, rope_yarn_f32, swiglu_clamp_f32, topk_softmax_f32};

use super::head::Head;
use super::ops::{mm, mm_t_add, outer_add, rmsnorm_back, swiglu_back, Attn};
use super::{ExpertPair, ExpertProj, LoraSet, Pair, Proj, TrainError, TrainLora};
use crate::forward::check_tokens;
use crate::weights::{DenseRef, ExpertMatrix, ExpertWeights, Layer, Linear};
use crate::Model;

/// What one layer's backward pass reads.
struct Tape {
    /// the residual stream entering the layer, f32 [n, h]
    x_in: Vec<f32>,
    /// rms(x_in) · attn_norm, the input of q/k/v
    hn1: Vec<f32>,
    /// x·Aᵀ f32 [n, r] of each targeted projection (q, k, v, o)
    lora_t: [Option<Vec<f32>>; 4],
    /// rotated q f32 [n, q_dim], rotated k and v f32 [n, kv_dim]
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// attention probabilities f32 [heads, n, n]
    p: Vec<f32>,
    /// attention output, the input of o, f32 [n, q_dim]
    attn: Vec<f32>,
    /// the residual stream after attention, f32 [n, h]
    x_mid: Vec<f32>,
    /// rms(x_mid) · mlp_norm, the input of the router and the experts
    hn2: Vec<f32>,
    /// selected experts and their softmax weights, [n, k]
    idx: Vec<usize>,
    w: Vec<f32>,
    /// per (token, slot): the expert's first product f32 [n, k, 2·inter] and its output
    /// f32 [n, k, h]
    u: Vec<f32>,
    y: Vec<f32>,
}

/// A dense matrix (or vector) of the checkpoint as f32.
fn dense_f32(model: &Model, r: &DenseRef) -> Vec<f32> {
    let mut out = vec![0f32; r.n_elems];
    r.read_f32(&model.store, 0, &mut out);
    out
}

fn linear_w(model: &Model, l: &Linear) -> Vec<f32> {
    dense_f32(model, &l.w)
}

/// y f32 [n, d_out] = x · Wᵀ + b.
fn linear_fwd(w: &[f32], l: &Linear, x: &[f32], y: &mut [f32]) {
    mm(x, w, y, l.d_in, l.d_out);
    if let Some(b) = &l.b {
        for row in y.chunks_exact_mut(l.d_out) {
            for (v, bv) in row.iter_mut().zip(b) {
                *v += bv;
            }
        }
    }
}

/// Expert `e`'s matrix as f32 [d_out, d_in] and its bias f32 [d_out]: one expert decoded.
fn expert_f32(model: &Model, m: &ExpertMatrix, e: usize) -> (Vec<f32>, Vec<f32>) {
    let (d_in, d_out) = (m.d_in, m.d_out);
    let per = d_in * d_out;
    let mut w = vec![0f32; per];
    match &m.w {
        ExpertWeights::Mxfp4 { blocks, scales } => {
            let blk = blocks.get(&model.store, e * per / 2, per / 2);
            let sc = scales.get(&model.store, e * per / 32, per / 32);
            for (o, row) in w.chunks_exact_mut(d_in).enumerate() {
                decode_mxfp4_row(
                    &blk[o * d_in / 2..(o + 1) * d_in / 2],
                    &sc[o * d_in / 32..(o + 1) * d_in / 32],
                    row,
                );
            }
        }
        ExpertWeights::OutIn(r) => r.read_f32(&model.store, e * per, &mut w),
        ExpertWeights::InOut(r) => {
            let mut t = vec![0f32; per];
            r.read_f32(&model.store, e * per, &mut t);
            for i in 0..d_in {
                for o in 0..d_out {
                    w[o * d_in + i] = t[i * d_out + o];
                }
            }
        }
    }
    let mut b = vec![0f32; d_out];
    m.bias.read_f32(&model.store, e * d_out, &mut b);
    (w, b)
}

/// y += scale · (x·Aᵀ)·Bᵀ; returns x·Aᵀ f32 [n, r].
fn lora_fwd(pair: &Pair, scale: f32, x: &[f32], y: &mut [f32]) -> Vec<f32> {
    let n = x.len() / pair.d_in;
    let mut t = vec![0f32; n * pair.r];
    mm(x, &pair.a, &mut t, pair.d_in, pair.r);
    let mut u = vec![0f32; n * pair.d_out];
    mm(&t, &pair.b, &mut u, pair.r, pair.d_out);
    for (yv, uv) in y.iter_mut().zip(u) {
        *yv += scale * uv;
    }
    t
}

/// The LoRA part of a projection's backward: dB += scale·dyᵀ t, s = dy·B, dA += scale·sᵀ x,
/// dx += scale·s·A.
fn lora_back(
    pair: &Pair,
    scale: f32,
    x: &[f32],
    t: &[f32],
    dy: &[f32],
    g: &mut Pair,
    dx: &mut [f32],
) {
    let (r, d_in, d_out) = (pair.r, pair.d_in, pair.d_out);
    let n = x.len() / d_in;
    outer_add(dy, t, &mut g.b, d_out, r, scale);
    let mut s = vec![0f32; n * r];
    mm_t_add(dy, &pair.b, &mut s, d_out, r);
    outer_add(&s, x, &mut g.a, r, d_in, scale);
    for v in &mut s {
        *v *= scale;
    }
    mm_t_add(&s, &pair.a, dx, r, d_in);
}

/// [`lora_back`] for expert `e`'s pair, its gradient added into the PEFT-layout `g`.
fn expert_lora_back(
    pair: &Pair,
    scale: f32,
    x: &[f32],
    dy: &[f32],
    g: &mut ExpertPair,
    e: usize,
    dx: &mut [f32],
) {
    let n = x.len() / pair.d_in;
    let mut t = vec![0f32; n * pair.r];
    mm(x, &pair.a, &mut t, pair.d_in, pair.r);
    let mut ge = Pair::zeros(pair.r, pair.d_in, pair.d_out);
    lora_back(pair, scale, x, &t, dy, &mut ge, dx);
    g.add(e, &ge);
}

/// Mean cross-entropy over the positions whose `targets[t]` is set (position t predicting
/// `targets[t]`, normally the token at t + 1), and its gradient for every tensor of `lora`.
/// The model's own adapter (`Model::set_lora`) is not applied: `lora` is.
pub fn loss_and_grads(
    model: &Model,
    lora: &TrainLora,
    tokens: &[u32],
    targets: &[Option<u32>],
) -> Result<(f32, LoraSet), TrainError> {
    loss_and_grads_with(
        model,
        &Head::new(model),
        lora,
        tokens,
        targets,
        Activations::Keep,
    )
}

/// What the forward pass of a training step keeps for the backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activations {
    /// every layer's intermediate values (fastest)
    Keep,
    /// only each layer's input; the rest is recomputed layer by layer during the backward
    /// pass (activation checkpointing: one more forward pass, a layer's worth of memory)
    Recompute,
}

impl Activations {
    /// Bytes the kept intermediate values of one `n`-token sequence take (the larger terms:
    /// attention probabilities, projections, expert products), to choose between the two.
    pub fn keep_bytes(c: &crate::config::Config, n: usize) -> usize {
        let per_layer = c.num_attention_heads * n * n
            + n * (4 * c.hidden_size + 3 * c.q_dim() + 2 * c.kv_dim())
            + n * c.experts_per_token * (2 * c.intermediate_size + c.hidden_size);
        4 * c.num_hidden_layers * per_layer
    }
}

/// [`loss_and_grads`] with the loss head built once beforehand (a training run reuses it).
pub fn loss_and_grads_with(
    model: &Model,
    head: &Head,
    lora: &TrainLora,
    tokens: &[u32],
    targets: &[Option<u32>],
    memory: Activations,
) -> Result<(f32, LoraSet), TrainError> {
    let c = &model.config;
    check_tokens(tokens, c.vocab_size)?;
    if targets.len() != tokens.len() {
        return Err(TrainError::TargetsLength {
            tokens: tokens.len(),
            targets: targets.len(),
        });
    }
    for (position, t) in targets.iter().enumerate() {
        if let Some(&token) = t.as_ref().filter(|&&t| t as usize >= c.vocab_size) {
            return Err(TrainError::TargetOutOfRange {
                token,
                position,
                vocab: c.vocab_size,
            });
        }
    }
    let trained: Vec<usize> = (0..tokens.len())
        .filter(|&t| targets[t].is_some())
        .collect();
    if trained.is_empty() {
        return Err(TrainError::NothingToTrain);
    }
    if lora.params.layers.len() != c.num_hidden_layers {
        return Err(TrainError::Shape(format!(
            "{} layers, the model has {}",
            lora.params.layers.len(),
            c.num_hidden_layers
        )));
    }
    for l in &lora.params.layers {
        for (p, pair) in Proj::ALL.iter().zip(l) {
            if let Some(pair) = pair {
                let (d_in, d_out) = p.dims(c);
                if (pair.d_in, pair.d_out) != (d_in, d_out)
                    || pair.a.len() != pair.r * d_in
                    || pair.b.len() != d_out * pair.r
                {
                    return Err(TrainError::Shape(format!(
                        "{}: [{}, {}] where the model has [{d_out}, {d_in}]",
                        p.module(),
                        pair.d_out,
                        pair.d_in
                    )));
                }
            }
        }
    }

    if lora.params.experts.len() != c.num_hidden_layers {
        return Err(TrainError::Shape(format!(
            "expert targets for {} layers, the model has {}",
            lora.params.experts.len(),
            c.num_hidden_layers
        )));
    }
    for l in &lora.params.experts {
        for (w, pair) in ExpertProj::ALL.iter().zip(l) {
            if let Some(p) = pair {
                let (d_in, d_out) = w.dims(c);
                if (p.d_in, p.d_out, p.experts) != (d_in, d_out, c.num_experts)
                    || p.a.len() != p.r * p.experts * d_in
                    || p.b.len() != d_out * p.r * p.experts
                {
                    return Err(TrainError::Shape(format!(
                        "{w:?} experts: {} experts of [{}, {}] where the model has {} of \
                         [{d_out}, {d_in}]",
                        p.experts, p.d_out, p.d_in, c.num_experts
                    )));
                }
            }
        }
    }

    let n = tokens.len();
    let h = c.hidden_size;
    let scale = lora.scale();
    // Embedding (frozen).
    let mut x = vec![0f32; n * h];
    for (&t, row) in tokens.iter().zip(x.chunks_exact_mut(h)) {
        model
            .weights
            .embedding
            .read_f32(&model.store, t as usize * h, row);
    }
    let d_half = c.head_dim / 2;
    let (mut cos, mut sin) = (vec![0f32; n * d_half], vec![0f32; n * d_half]);
    model.rope.cos_sin(0, &mut cos, &mut sin);

    // Keep: every layer's tape. Recompute: only each layer's input, its tape rebuilt by a
    // second forward of that layer during the backward pass (one layer's tape alive at once).
    let mut tapes = Vec::with_capacity(c.num_hidden_layers);
    let mut inputs = Vec::with_capacity(c.num_hidden_layers);
    for (li, layer) in model.weights.layers.iter().enumerate() {
        if memory == Activations::Recompute {
            inputs.push(x.clone());
        }
        let (tape, x_out) = layer_fwd(
            model,
            li,
            layer,
            (&lora.params.layers[li], &lora.params.experts[li]),
            scale,
            x,
            &cos,
            &sin,
        );
        if memory == Activations::Keep {
            tapes.push(tape);
        }
        x = x_out;
    }

    // Final norm, unembedding and cross-entropy of the trained rows only.
    let xs: Vec<f32> = trained
        .iter()
        .flat_map(|&t| x[t * h..(t + 1) * h].to_vec())
        .collect();
    let picked: Vec<u32> = trained.iter().map(|&t| targets[t].unwrap_or(0)).collect();
    let (loss, dxs) = head.loss_and_grad(model, &xs, &picked);
    let mut dx = vec![0f32; n * h];
    for (r, &t) in trained.iter().enumerate() {
        dx[t * h..(t + 1) * h].copy_from_slice(&dxs[r * h..(r + 1) * h]);
    }

    let mut grads = lora.params.zeros_like();
    for (li, layer) in model.weights.layers.iter().enumerate().rev() {
        let lora_li = (&lora.params.layers[li], &lora.params.experts[li]);
        let tape = match tapes.pop() {
            Some(tape) => tape,
            None => {
                let x_in = inputs.pop().unwrap_or_default();
                layer_fwd(model, li, layer, lora_li, scale, x_in, &cos, &sin).0
            }
        };
        dx = layer_back(
            model,
            li,
            layer,
            lora_li,
            scale,
            &tape,
            dx,
            &cos,
            &sin,
            (&mut grads.layers[li], &mut grads.experts[li]),
        );
    }
    Ok((loss, grads))
}

fn attn_shape(model: &Model, li: usize, n: usize) -> Attn {
    let c = &model.config;
    Attn {
        n,
        heads: c.num_attention_heads,
        kv_heads: c.num_key_value_heads,
        head_dim: c.head_dim,
        sm_scale: 1.0 / (c.head_dim as f32).sqrt(),
        window: c.is_sliding(li).then_some(c.sliding_window),
    }
}

/// One layer forward from x (the residual stream): its tape and the stream after it.
#[allow(clippy::too_many_arguments)]
fn layer_fwd(
    model: &Model,
    li: usize,
    layer: &Layer,
    (lora, lora_experts): (&[Option<Pair>; 4], &[Option<ExpertPair>; 2]),
    scale: f32,
    x: Vec<f32>,
    cos: &[f32],
    sin: &[f32],
) -> (Tape, Vec<f32>) {
    let c = &model.config;
    let (h, qd, kvd) = (c.hidden_size, c.q_dim(), c.kv_dim());
    let n = x.len() / h;
    let mut hn1 = vec![0f32; n * h];
    rmsnorm_f32(&x, &layer.attn_norm, c.rms_norm_eps, &mut hn1);
    let mut lora_t: [Option<Vec<f32>>; 4] = Default::default();
    let mut outs = [vec![0f32; n * qd], vec![0f32; n * kvd], vec![0f32; n * kvd]];
    for (i, (lin, y)) in [&layer.q, &layer.k, &layer.v]
        .into_iter()
        .zip(outs.iter_mut())
        .enumerate()
    {
        linear_fwd(&linear_w(model, lin), lin, &hn1, y);
        if let Some(pair) = &lora[i] {
            lora_t[i] = Some(lora_fwd(pair, scale, &hn1, y));
        }
    }
    let [mut q, mut k, v] = outs;
    rope_yarn_f32(&mut q, c.num_attention_heads, c.head_dim, cos, sin);
    rope_yarn_f32(&mut k, c.num_key_value_heads, c.head_dim, cos, sin);
    let mut attn = vec![0f32; n * qd];
    let p = attn_shape(model, li, n).forward(&q, &k, &v, &layer.sinks, &mut attn);
    let mut proj = vec![0f32; n * h];
    linear_fwd(&linear_w(model, &layer.out), &layer.out, &attn, &mut proj);
    if let Some(pair) = &lora[3] {
        lora_t[3] = Some(lora_fwd(pair, scale, &attn, &mut proj));
    }
    let x_mid: Vec<f32> = x.iter().zip(&proj).map(|(a, b)| a + b).collect();

    // MoE: router, top-k, experts one at a time over the rows routed to them.
    let (e_n, kk, inter) = (c.num_experts, c.experts_per_token, c.intermediate_size);
    let mut hn2 = vec![0f32; n * h];
    rmsnorm_f32(&x_mid, &layer.mlp_norm, c.rms_norm_eps, &mut hn2);
    let mut router = vec![0f32; n * e_n];
    linear_fwd(
        &linear_w(model, &layer.router),
        &layer.router,
        &hn2,
        &mut router,
    );
    let mut idx = vec![0usize; n * kk];
    let mut w = vec![0f32; n * kk];
    for t in 0..n {
        topk_softmax_f32(
            &router[t * e_n..(t + 1) * e_n],
            &mut idx[t * kk..(t + 1) * kk],
            &mut w[t * kk..(t + 1) * kk],
        );
    }
    let mut u = vec![0f32; n * kk * 2 * inter];
    let mut y = vec![0f32; n * kk * h];
    for e in 0..e_n {
        let slots: Vec<usize> = (0..n * kk).filter(|&s| idx[s] == e).collect();
        if slots.is_empty() {
            continue;
        }
        let m = slots.len();
        let xin: Vec<f32> = slots
            .iter()
            .flat_map(|&s| hn2[s / kk * h..(s / kk + 1) * h].to_vec())
            .collect();
        let (w1, b1) = expert_f32(model, &layer.mlp1, e);
        let mut ue = vec![0f32; m * 2 * inter];
        mm(&xin, &w1, &mut ue, h, 2 * inter);
        drop(w1);
        if let Some(ep) = &lora_experts[0] {
            lora_fwd(&ep.of(e), scale, &xin, &mut ue);
        }
        let mut ae = vec![0f32; m * inter];
        for row in ue.chunks_exact_mut(2 * inter) {
            for (v, b) in row.iter_mut().zip(&b1) {
                *v += b;
            }
        }
        swiglu_clamp_f32(&ue, c.swiglu_limit, c.swiglu_alpha, &mut ae);
        let (w2, b2) = expert_f32(model, &layer.mlp2, e);
        let mut ye = vec![0f32; m * h];
        mm(&ae, &w2, &mut ye, inter, h);
        if let Some(ep) = &lora_experts[1] {
            lora_fwd(&ep.of(e), scale, &ae, &mut ye);
        }
        for (r, &s) in slots.iter().enumerate() {
            u[s * 2 * inter..(s + 1) * 2 * inter]
                .copy_from_slice(&ue[r * 2 * inter..(r + 1) * 2 * inter]);
            for ((o, &yv), &b) in y[s * h..(s + 1) * h]
                .iter_mut()
                .zip(&ye[r * h..(r + 1) * h])
                .zip(&b2)
            {
                *o = yv + b;
            }
        }
    }
    let mut x_out = x_mid.clone();
    for s in 0..n * kk {
        let t = s / kk;
        for (o, &yv) in x_out[t * h..(t + 1) * h]
            .iter_mut()
            .zip(&y[s * h..(s + 1) * h])
        {
            *o += w[s] * yv;
        }
    }
    let tape = Tape {
        x_in: x,
        hn1,
        lora_t,
        q,
        k,
        v,
        p,
        attn,
        x_mid,
        hn2,
        idx,
        w,
        u,
        y,
    };
    (tape, x_out)
}

/// One layer backward: from d loss / d(stream after the layer) to d loss / d(stream before
/// it), adding the layer's LoRA gradients into `g`.
#[allow(clippy::too_many_arguments)]
fn layer_back(
    model: &Model,
    li: usize,
    layer: &Layer,
    (lora, lora_experts): (&[Option<Pair>; 4], &[Option<ExpertPair>; 2]),
    scale: f32,
    tape: &Tape,
    dx_out: Vec<f32>,
    cos: &[f32],
    sin: &[f32],
    (g, g_experts): (&mut [Option<Pair>; 4], &mut [Option<ExpertPair>; 2]),
) -> Vec<f32> {
    let c = &model.config;
    let (h, qd, kvd) = (c.hidden_size, c.q_dim(), c.kv_dim());
    let (e_n, kk, inter) = (c.num_experts, c.experts_per_token, c.intermediate_size);
    let n = dx_out.len() / h;

    // MoE: x_out = x_mid + Σ_slots w · y.
    let mut dhn2 = vec![0f32; n * h];
    // d loss / d w per slot
    let mut dw = vec![0f32; n * kk];
    for e in 0..e_n {
        let slots: Vec<usize> = (0..n * kk).filter(|&s| tape.idx[s] == e).collect();
        if slots.is_empty() {
            continue;
        }
        let m = slots.len();
        let mut dy = vec![0f32; m * h];
        for (r, &s) in slots.iter().enumerate() {
            let t = s / kk;
            let dxo = &dx_out[t * h..(t + 1) * h];
            dw[s] = dxo
                .iter()
                .zip(&tape.y[s * h..(s + 1) * h])
                .map(|(a, b)| a * b)
                .sum();
            for (d, &v) in dy[r * h..(r + 1) * h].iter_mut().zip(dxo) {
                *d = tape.w[s] * v;
            }
        }
        let (w2, _) = expert_f32(model, &layer.mlp2, e);
        let mut dact = vec![0f32; m * inter];
        mm_t_add(&dy, &w2, &mut dact, h, inter);
        drop(w2);
        let ue: Vec<f32> = slots
            .iter()
            .flat_map(|&s| tape.u[s * 2 * inter..(s + 1) * 2 * inter].to_vec())
            .collect();
        if let (Some(ep), Some(gp)) = (&lora_experts[1], &mut g_experts[1]) {
            let mut act = vec![0f32; m * inter];
            swiglu_clamp_f32(&ue, c.swiglu_limit, c.swiglu_alpha, &mut act);
            expert_lora_back(&ep.of(e), scale, &act, &dy, gp, e, &mut dact);
        }
        let mut du = vec![0f32; m * 2 * inter];
        swiglu_back(&ue, &dact, c.swiglu_limit, c.swiglu_alpha, &mut du);
        let (w1, _) = expert_f32(model, &layer.mlp1, e);
        let mut dxin = vec![0f32; m * h];
        mm_t_add(&du, &w1, &mut dxin, 2 * inter, h);
        drop(w1);
        if let (Some(ep), Some(gp)) = (&lora_experts[0], &mut g_experts[0]) {
            let xin: Vec<f32> = slots
                .iter()
                .flat_map(|&s| tape.hn2[s / kk * h..(s / kk + 1) * h].to_vec())
                .collect();
            expert_lora_back(&ep.of(e), scale, &xin, &du, gp, e, &mut dxin);
        }
        for (r, &s) in slots.iter().enumerate() {
            let t = s / kk;
            for (d, &v) in dhn2[t * h..(t + 1) * h]
                .iter_mut()
                .zip(&dxin[r * h..(r + 1) * h])
            {
                *d += v;
            }
        }
    }
    // Softmax over the selected logits: dz_j = w_j (dw_j − Σ_i w_i dw_i).
    let mut drouter = vec![0f32; n * e_n];
    for t in 0..n {
        let ws = &tape.w[t * kk..(t + 1) * kk];
        let dws = &dw[t * kk..(t + 1) * kk];
        let dot: f32 = ws.iter().zip(dws).map(|(a, b)| a * b).sum();
        for j in 0..kk {
            drouter[t * e_n + tape.idx[t * kk + j]] += ws[j] * (dws[j] - dot);
        }
    }
    mm_t_add(&drouter, &linear_w(model, &layer.router), &mut dhn2, e_n, h);
    let mut dx_mid = dx_out;
    rmsnorm_back(
        &tape.x_mid,
        &layer.mlp_norm,
        c.rms_norm_eps,
        &dhn2,
        &mut dx_mid,
    );

    // Attention: x_mid = x_in + o(attn) (+ LoRA).
    let dproj = &dx_mid;
    let mut dattn = vec![0f32; n * qd];
    mm_t_add(dproj, &linear_w(model, &layer.out), &mut dattn, h, qd);
    if let (Some(pair), Some(t), Some(gp)) = (&lora[3], &tape.lora_t[3], &mut g[3]) {
        lora_back(pair, scale, &tape.attn, t, dproj, gp, &mut dattn);
    }
    let (mut dq, mut dk, mut dv) = (vec![0f32; n * qd], vec![0f32; n * kvd], vec![0f32; n * kvd]);
    attn_shape(model, li, n).backward(
        &tape.q, &tape.k, &tape.v, &tape.p, &dattn, &mut dq, &mut dk, &mut dv,
    );
    // RoPE is a rotation per pair: its transpose rotates by the opposite angle.
    let neg_sin: Vec<f32> = sin.iter().map(|s| -s).collect();
    rope_yarn_f32(&mut dq, c.num_attention_heads, c.head_dim, cos, &neg_sin);
    rope_yarn_f32(&mut dk, c.num_key_value_heads, c.head_dim, cos, &neg_sin);
    let mut dhn1 = vec![0f32; n * h];
    for (i, (lin, dy)) in [&layer.q, &layer.k, &layer.v]
        .into_iter()
        .zip([&dq, &dk, &dv])
        .enumerate()
    {
        mm_t_add(dy, &linear_w(model, lin), &mut dhn1, lin.d_out, h);
        if let (Some(pair), Some(t), Some(gp)) = (&lora[i], &tape.lora_t[i], &mut g[i]) {
            lora_back(pair, scale, &tape.hn1, t, dy, gp, &mut dhn1);
        }
    }
    let mut dx_in = dx_mid;
    rmsnorm_back(
        &tape.x_in,
        &layer.attn_norm,
        c.rms_norm_eps,
        &dhn1,
        &mut dx_in,
    );
    dx_in
}
