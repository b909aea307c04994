//! Test helpers: an independent f64 reference forward pass written straight from the reference
//! document (dequantize everything, full attention matrix with the sink column), reading an
//! original-layout safetensors file with the `safetensors` crate.

#![allow(dead_code)]

use std::collections::HashMap;

use gptoss_model::Config;
use safetensors::{Dtype, SafeTensors};

/// name -> (shape, values as f64 for float dtypes, raw bytes)
pub type Tensors = HashMap<String, (Vec<usize>, Vec<f64>, Vec<u8>)>;

pub fn tensors_f64(bytes: &[u8]) -> Tensors {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let vals: Vec<f64> = match view.dtype() {
            Dtype::BF16 => data
                .chunks(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16) as f64)
                .collect(),
            Dtype::F32 => data
                .chunks(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
                .collect(),
            _ => vec![],
        };
        out.insert(name, (view.shape().to_vec(), vals, data.to_vec()));
    }
    out
}

const FP4: [f64; 16] = [
    0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
];

/// W[e][o][i] from MXFP4 blocks/scales.
fn dequant(blocks: &[u8], scales: &[u8], e: usize, d_out: usize, d_in: usize) -> Vec<f64> {
    let mut w = vec![0.0; e * d_out * d_in];
    for r in 0..e * d_out {
        for i in 0..d_in {
            let b = blocks[r * d_in / 2 + i / 2];
            let code = if i.is_multiple_of(2) { b & 15 } else { b >> 4 };
            w[r * d_in + i] =
                FP4[code as usize] * 2f64.powi(scales[r * d_in / 32 + i / 32] as i32 - 127);
        }
    }
    w
}

fn rms(x: &[f64], scale: &[f64], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    x.iter()
        .zip(scale)
        .map(|(v, s)| v / (ms + eps).sqrt() * s)
        .collect()
}

fn lin(x: &[f64], w: &[f64], b: Option<&[f64]>, d_out: usize) -> Vec<f64> {
    let d_in = x.len();
    (0..d_out)
        .map(|o| (0..d_in).map(|i| x[i] * w[o * d_in + i]).sum::<f64>() + b.map_or(0.0, |b| b[o]))
        .collect()
}

/// Logits [n, vocab] for `tokens` from position 0, original-layout MXFP4 checkpoint bytes.
pub fn reference_forward(c: &Config, file: &[u8], tokens: &[u32]) -> Vec<f64> {
    let t = tensors_f64(file);
    let g = |n: &str| &t[n].1;
    let (h, d, nh, nkv) = (
        c.hidden_size,
        c.head_dim,
        c.num_attention_heads,
        c.num_key_value_heads,
    );
    let (e, inter, k) = (c.num_experts, c.intermediate_size, c.experts_per_token);
    let n = tokens.len();
    let emb = g("embedding.weight");
    let mut x: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&tok| emb[tok as usize * h..(tok as usize + 1) * h].to_vec())
        .collect();
    // YaRN table in f64 straight from §2.4.
    let d_half = d / 2;
    let (theta, s, l0) = (
        c.rope_theta,
        c.rope_scaling_factor,
        c.initial_context_length as f64,
    );
    let low =
        d_half as f64 * (l0 / (c.rope_ntk_beta * 2.0 * std::f64::consts::PI)).ln() / theta.ln();
    let high =
        d_half as f64 * (l0 / (c.rope_ntk_alpha * 2.0 * std::f64::consts::PI)).ln() / theta.ln();
    let conc = 0.1 * s.ln() + 1.0;
    let inv_freq: Vec<f64> = (0..d_half)
        .map(|i| {
            let f = theta.powf(2.0 * i as f64 / d as f64);
            let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
            1.0 / (s * f) * ramp + 1.0 / f * (1.0 - ramp)
        })
        .collect();
    let rope = |v: &mut [f64], pos: usize| {
        for head in v.chunks_mut(d) {
            for i in 0..d_half {
                let a = pos as f64 * inv_freq[i];
                let (cs, sn) = (a.cos() * conc, a.sin() * conc);
                let (x1, x2) = (head[i], head[i + d_half]);
                head[i] = x1 * cs - x2 * sn;
                head[i + d_half] = x2 * cs + x1 * sn;
            }
        }
    };
    let eps = c.rms_norm_eps as f64;
    for l in 0..c.num_hidden_layers {
        let p = format!("block.{l}.");
        let qkv_w = g(&format!("{p}attn.qkv.weight"));
        let qkv_b = g(&format!("{p}attn.qkv.bias"));
        let width = (nh + 2 * nkv) * d;
        let mut q = vec![];
        let mut kk = vec![];
        let mut vv = vec![];
        for (pos, xi) in x.iter().enumerate() {
            let hn = rms(xi, g(&format!("{p}attn.norm.scale")), eps);
            let qkv = lin(&hn, qkv_w, Some(qkv_b), width);
            let mut qi = qkv[..nh * d].to_vec();
            let mut ki = qkv[nh * d..(nh + nkv) * d].to_vec();
            rope(&mut qi, pos);
            rope(&mut ki, pos);
            q.push(qi);
            kk.push(ki);
            vv.push(qkv[(nh + nkv) * d..].to_vec());
        }
        let sinks = g(&format!("{p}attn.sinks"));
        let window = if c.is_sliding(l) {
            c.sliding_window
        } else {
            usize::MAX
        };
        for i in 0..n {
            let mut attn = vec![0.0; nh * d];
            for hh in 0..nh {
                let gg = hh / (nh / nkv);
                let mut logits: Vec<f64> = (0..n)
                    .map(|j| {
                        if j > i || i - j >= window {
                            f64::NEG_INFINITY
                        } else {
                            (0..d)
                                .map(|t| q[i][hh * d + t] * kk[j][gg * d + t])
                                .sum::<f64>()
                                / (d as f64).sqrt()
                        }
                    })
                    .collect();
                logits.push(sinks[hh]);
                let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let ex: Vec<f64> = logits.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = ex.iter().sum();
                for j in 0..n {
                    for t in 0..d {
                        attn[hh * d + t] += ex[j] / z * vv[j][gg * d + t];
                    }
                }
            }
            let o = lin(
                &attn,
                g(&format!("{p}attn.out.weight")),
                Some(g(&format!("{p}attn.out.bias"))),
                h,
            );
            for (a, b) in x[i].iter_mut().zip(o) {
                *a += b;
            }
        }
        let w1 = dequant(
            &t[&format!("{p}mlp.mlp1_weight.blocks")].2,
            &t[&format!("{p}mlp.mlp1_weight.scales")].2,
            e,
            2 * inter,
            h,
        );
        let w2 = dequant(
            &t[&format!("{p}mlp.mlp2_weight.blocks")].2,
            &t[&format!("{p}mlp.mlp2_weight.scales")].2,
            e,
            h,
            inter,
        );
        let b1 = g(&format!("{p}mlp.mlp1_bias"));
        let b2 = g(&format!("{p}mlp.mlp2_bias"));
        for xi in x.iter_mut() {
            let hn = rms(xi, g(&format!("{p}mlp.norm.scale")), eps);
            let gl = lin(
                &hn,
                g(&format!("{p}mlp.gate.weight")),
                Some(g(&format!("{p}mlp.gate.bias"))),
                e,
            );
            let mut order: Vec<usize> = (0..e).collect();
            order.sort_by(|&a, &b| gl[b].partial_cmp(&gl[a]).unwrap().then(a.cmp(&b)));
            let top = &order[..k];
            let m = gl[top[0]];
            let z: f64 = top.iter().map(|&i| (gl[i] - m).exp()).sum();
            let mut acc = vec![0.0; h];
            for &ex in top {
                let w = (gl[ex] - m).exp() / z;
                let u = lin(
                    &hn,
                    &w1[ex * 2 * inter * h..(ex + 1) * 2 * inter * h],
                    Some(&b1[ex * 2 * inter..(ex + 1) * 2 * inter]),
                    2 * inter,
                );
                let act: Vec<f64> = (0..inter)
                    .map(|j| {
                        let gate = u[2 * j].min(c.swiglu_limit as f64);
                        let lin_ =
                            u[2 * j + 1].clamp(-(c.swiglu_limit as f64), c.swiglu_limit as f64);
                        gate / (1.0 + (-1.702 * gate).exp()) * (lin_ + 1.0)
                    })
                    .collect();
                let y = lin(
                    &act,
                    &w2[ex * h * inter..(ex + 1) * h * inter],
                    Some(&b2[ex * h..(ex + 1) * h]),
                    h,
                );
                for (a, yv) in acc.iter_mut().zip(y) {
                    *a += w * yv;
                }
            }
            for (a, b) in xi.iter_mut().zip(acc) {
                *a += b;
            }
        }
    }
    let mut logits = vec![];
    for xi in &x {
        let hn = rms(xi, g("norm.scale"), eps);
        logits.extend(lin(&hn, g("unembedding.weight"), None, c.vocab_size));
    }
    logits
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
