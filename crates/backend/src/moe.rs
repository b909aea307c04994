//! Mixture-of-experts pieces (reference §2.5–2.6): router top-k with softmax over the selected
//! logits, and the clamped SwiGLU on interleaved gate/linear columns.

/// SwiGLU alpha, hard-coded in the reference (`sigmoid(1.702 · gate)`).
pub const SWIGLU_ALPHA: f32 = 1.702;

/// Picks the `k` largest of `logits` (f32 [n_experts]) in descending order, lower index first
/// among equal values (as a stable descending sort), and writes their indices to `idx` and
/// `softmax(logits[idx])` to `weights` (both [k]). NaN logits are never preferred.
pub fn topk_softmax_f32(logits: &[f32], idx: &mut [usize], weights: &mut [f32]) {
    let k = idx.len();
    assert!(
        k > 0 && k <= logits.len() && weights.len() == k,
        "topk: shapes"
    );
    for slot in 0..k {
        let mut best: Option<usize> = None;
        for (e, &v) in logits.iter().enumerate() {
            if idx[..slot].contains(&e) {
                continue;
            }
            // Strict comparison keeps the lower index on ties; NaN never wins over a number.
            match best {
                None => best = Some(e),
                Some(b) => {
                    if v > logits[b] || (logits[b].is_nan() && !v.is_nan()) {
                        best = Some(e)
                    }
                }
            }
        }
        idx[slot] = best.unwrap_or(slot);
    }
    let m = logits[idx[0]];
    let mut z = 0f32;
    for (w, &e) in weights.iter_mut().zip(idx.iter()) {
        *w = (logits[e] - m).exp();
        z += *w;
    }
    for w in weights.iter_mut() {
        *w /= z;
    }
}

/// `u` f32 [n, 2·I] holds interleaved (gate, linear) pairs; writes `out` f32 [n, I] with
/// `gate = min(gate, limit)`, `lin = clamp(lin, -limit, limit)`,
/// `out = gate · sigmoid(alpha · gate) · (lin + 1)` (alpha is [`SWIGLU_ALPHA`] for gpt-oss).
pub fn swiglu_clamp_f32(u: &[f32], limit: f32, alpha: f32, out: &mut [f32]) {
    assert_eq!(u.len(), 2 * out.len(), "swiglu: shapes");
    for (pair, o) in u.chunks_exact(2).zip(out.iter_mut()) {
        let gate = pair[0].min(limit);
        let lin = pair[1].clamp(-limit, limit);
        let sig = 1.0 / (1.0 + (-alpha * gate).exp());
        *o = gate * sig * (lin + 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_sorted_ties_lower_index() {
        let logits = [0.5, 2.0, -1.0, 2.0, 3.0, 0.5];
        let mut idx = [0usize; 4];
        let mut w = [0f32; 4];
        topk_softmax_f32(&logits, &mut idx, &mut w);
        assert_eq!(idx, [4, 1, 3, 0]);
        let z: f32 = [3.0f32, 2.0, 2.0, 0.5]
            .iter()
            .map(|v| (v - 3.0f32).exp())
            .sum();
        assert!((w[0] - 1.0 / z).abs() < 1e-7);
        assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(w[0] > w[1] && w[1] == w[2] && w[2] > w[3]);
    }

    #[test]
    fn topk_nan_never_wins() {
        let logits = [f32::NAN, 1.0, 0.0];
        let mut idx = [0usize; 2];
        let mut w = [0f32; 2];
        topk_softmax_f32(&logits, &mut idx, &mut w);
        assert_eq!(idx, [1, 2]);
    }

    #[test]
    fn swiglu_clamps_and_adds_one() {
        let u = [1.0, 0.0, 10.0, 10.0, -3.0, -10.0];
        let mut out = [0f32; 3];
        swiglu_clamp_f32(&u, 7.0, SWIGLU_ALPHA, &mut out);
        let silu = |g: f32| g / (1.0 + (-1.702 * g).exp());
        assert!((out[0] - silu(1.0)).abs() < 1e-6);
        assert!(
            (out[1] - silu(7.0) * 8.0).abs() < 1e-5,
            "gate and linear clamped at 7"
        );
        assert!(
            (out[2] - silu(-3.0) * -6.0).abs() < 1e-6,
            "linear clamped at -7"
        );
    }
}
