//! The loss head: the final norm, the frozen unembedding and the cross-entropy, forward and
//! backward, for the positions a step trains.
//!
//! The unembedding is the largest product of a step on small models (201088 rows). Rows that
//! are exactly zero give a logit of exactly 0 and pass no gradient back, so they are counted,
//! not multiplied: on the built-in demo model (2,084 trained rows of 201,088) this is a 100×
//! smaller product, with the same loss and gradients. A [`Head`] is built once per training
//! run and reused by every step.

use gptoss_backend::rmsnorm_f32;

use super::ops::{mm, mm_t_add, rmsnorm_back};
use crate::Model;

/// Above this many f32 values the transposed copy of the rows is not kept: the backward pass
/// transposes a block at a time instead (gpt-oss-20b's unembedding is 579M values).
const KEEP_TRANSPOSED_MAX: usize = 64 << 20;

/// The non-zero rows of the unembedding, as f32.
pub struct Head {
    /// token id of each kept row
    ids: Vec<u32>,
    /// kept rows f32 [kept, h]
    w: Vec<f32>,
    /// their transpose f32 [h, kept], when small enough to keep
    wt: Option<Vec<f32>>,
    /// rows that are exactly zero (logit 0 for every input)
    zero_rows: usize,
    /// where each token's row is kept (u32::MAX: a zero row)
    slot: Vec<u32>,
}

impl Head {
    pub fn new(model: &Model) -> Head {
        let (v, h) = (model.config.vocab_size, model.config.hidden_size);
        let (mut ids, mut w, mut slot) = (vec![], vec![], vec![u32::MAX; v]);
        let mut row = vec![0f32; h];
        for (t, s) in slot.iter_mut().enumerate() {
            model
                .weights
                .unembedding
                .read_f32(&model.store, t * h, &mut row);
            if row.iter().any(|&x| x != 0.0) {
                *s = ids.len() as u32;
                ids.push(t as u32);
                w.extend_from_slice(&row);
            }
        }
        let kept = ids.len();
        let wt = (kept * h <= KEEP_TRANSPOSED_MAX).then(|| {
            let mut wt = vec![0f32; h * kept];
            for (k, r) in w.chunks_exact(h).enumerate() {
                for (i, &x) in r.iter().enumerate() {
                    wt[i * kept + k] = x;
                }
            }
            wt
        });
        Head {
            ids,
            w,
            wt,
            zero_rows: v - kept,
            slot,
        }
    }

    /// Whether `token`'s unembedding row is all zero: its logit is 0 whatever the hidden
    /// state, so no adapter can teach the model to write it.
    pub fn is_zero_row(&self, token: u32) -> bool {
        self.slot
            .get(token as usize)
            .is_some_and(|&s| s == u32::MAX)
    }

    /// Mean cross-entropy of `targets` given the residual stream `xs` f32 [m, h] of the m
    /// trained positions, and its gradient with respect to `xs`.
    pub fn loss_and_grad(&self, model: &Model, xs: &[f32], targets: &[u32]) -> (f32, Vec<f32>) {
        let c = &model.config;
        let h = c.hidden_size;
        let kept = self.ids.len();
        let mut hn = vec![0f32; xs.len()];
        rmsnorm_f32(xs, &model.weights.norm, c.rms_norm_eps, &mut hn);
        let mut logits = vec![0f32; targets.len() * kept];
        mm(&hn, &self.w, &mut logits, h, kept);
        let count = targets.len() as f32;
        let mut loss = 0f64;
        for (i, &target) in targets.iter().enumerate() {
            let row = &mut logits[i * kept..(i + 1) * kept];
            let zero_max = if self.zero_rows > 0 {
                0.0
            } else {
                f32::NEG_INFINITY
            };
            let m = row.iter().cloned().fold(zero_max, f32::max);
            let slot = self.slot[target as usize];
            let picked = if slot == u32::MAX {
                0.0
            } else {
                row[slot as usize]
            };
            // exp once per logit (f32), summed in f64; the row becomes
            // d loss / d logits = (softmax − onehot) / count
            let mut z = self.zero_rows as f64 * ((-m) as f64).exp();
            for l in row.iter_mut() {
                *l = (*l - m).exp();
                z += *l as f64;
            }
            loss += z.ln() + (m - picked) as f64;
            let inv = (1.0 / (z * count as f64)) as f32;
            for l in row.iter_mut() {
                *l *= inv;
            }
            if slot != u32::MAX {
                row[slot as usize] -= 1.0 / count;
            }
        }
        let mut dhn = vec![0f32; hn.len()];
        match &self.wt {
            Some(wt) if kept > 0 => {
                let mut t = vec![0f32; hn.len()];
                mm(&logits, wt, &mut t, kept, h);
                dhn.copy_from_slice(&t);
            }
            _ if kept > 0 => mm_t_add(&logits, &self.w, &mut dhn, kept, h),
            _ => {}
        }
        let mut dxs = vec![0f32; xs.len()];
        rmsnorm_back(xs, &model.weights.norm, c.rms_norm_eps, &dhn, &mut dxs);
        ((loss / targets.len() as f64) as f32, dxs)
    }
}
