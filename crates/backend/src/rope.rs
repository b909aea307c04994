//! Rotary position embedding with YaRN / NTK-by-parts frequency scaling (reference §2.4):
//! half-split pairs (i, i + head_dim/2), the YaRN "concentration" multiplying both cos and sin.
//!
//! The frequency table follows the torch reference operation by operation in f32 (`base^(2i/d)`,
//! the ramp, the blend) with `low`/`high` in f64, as Python computes them. The angle `pos ·
//! inv_freq` is an f32 product, as in the reference's f32 einsum.

/// The per-model RoPE table: inverse frequencies and the attention concentration.
#[derive(Clone, Debug, PartialEq)]
pub struct YarnRope {
    pub head_dim: usize,
    /// f32 [head_dim / 2]
    pub inv_freq: Vec<f32>,
    /// Multiplies cos and sin (so q·k is scaled by its square). 1.0 without scaling.
    pub concentration: f32,
    /// NTK-by-parts ramp bounds (frequency indices); equal to 0 without scaling.
    pub low: f64,
    pub high: f64,
}

impl YarnRope {
    /// `theta`: rope_theta; `factor`: rope_scaling_factor (no YaRN when <= 1);
    /// `initial_context_length`: the pre-extension context (HF original_max_position_embeddings);
    /// `ntk_alpha` = beta_slow, `ntk_beta` = beta_fast. `truncate` floors `low` and ceils `high`
    /// as Hugging Face does when its `rope_scaling.truncate` is true (the reference never does).
    pub fn new(
        head_dim: usize,
        theta: f64,
        factor: f64,
        initial_context_length: f64,
        ntk_alpha: f64,
        ntk_beta: f64,
        truncate: bool,
    ) -> YarnRope {
        let d_half = head_dim / 2;
        // freq_i = base^(2i / head_dim), in f32 as torch computes it.
        let freq: Vec<f32> = (0..d_half)
            .map(|i| (theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        if factor <= 1.0 {
            return YarnRope {
                head_dim,
                inv_freq: freq.iter().map(|&f| 1.0 / f).collect(),
                concentration: 1.0,
                low: 0.0,
                high: 0.0,
            };
        }
        let concentration = 0.1 * factor.ln() + 1.0;
        let dh = d_half as f64;
        let mut low = dh * (initial_context_length / (ntk_beta * 2.0 * std::f64::consts::PI)).ln()
            / theta.ln();
        let mut high = dh
            * (initial_context_length / (ntk_alpha * 2.0 * std::f64::consts::PI)).ln()
            / theta.ln();
        if truncate {
            low = low.floor();
            high = high.ceil();
        }
        // As HF's find_correction_range / linear_ramp_factor: clamp into [0, head_dim - 1] and
        // widen a zero-width ramp. Neither triggers for gpt-oss's values.
        low = low.max(0.0);
        high = high.min(head_dim as f64 - 1.0);
        if high == low {
            high += 0.001;
        }
        let inv_freq = freq
            .iter()
            .enumerate()
            .map(|(i, &f)| {
                let interpolation = 1.0 / (factor as f32 * f);
                let extrapolation = 1.0 / f;
                let ramp = ((i as f32 - low as f32) / (high - low) as f32).clamp(0.0, 1.0);
                let mask = 1.0 - ramp;
                interpolation * (1.0 - mask) + extrapolation * mask
            })
            .collect();
        YarnRope {
            head_dim,
            inv_freq,
            concentration: concentration as f32,
            low,
            high,
        }
    }

    /// Fills `cos` and `sin` (f32 [n, head_dim/2]) for positions `pos0 .. pos0 + n`.
    pub fn cos_sin(&self, pos0: usize, cos: &mut [f32], sin: &mut [f32]) {
        let d_half = self.inv_freq.len();
        for (r, (cr, sr)) in cos
            .chunks_exact_mut(d_half)
            .zip(sin.chunks_exact_mut(d_half))
            .enumerate()
        {
            let p = (pos0 + r) as f32;
            for ((c, s), &f) in cr.iter_mut().zip(sr.iter_mut()).zip(&self.inv_freq) {
                let angle = p * f;
                *c = angle.cos() * self.concentration;
                *s = angle.sin() * self.concentration;
            }
        }
    }
}

/// Rotates `x` (f32 [n, n_heads, head_dim]) in place with half-split pairs:
/// `x'[i] = x[i]·cos − x[i+h]·sin`, `x'[i+h] = x[i+h]·cos + x[i]·sin` (h = head_dim/2),
/// `cos`/`sin` f32 [n, head_dim/2] from [`YarnRope::cos_sin`].
pub fn rope_yarn_f32(x: &mut [f32], n_heads: usize, head_dim: usize, cos: &[f32], sin: &[f32]) {
    let d_half = head_dim / 2;
    let row = n_heads * head_dim;
    assert!(
        x.len().is_multiple_of(row)
            && cos.len() == x.len() / row * d_half
            && sin.len() == cos.len()
    );
    for (t, xr) in x.chunks_exact_mut(row).enumerate() {
        let c = &cos[t * d_half..(t + 1) * d_half];
        let s = &sin[t * d_half..(t + 1) * d_half];
        for head in xr.chunks_exact_mut(head_dim) {
            let (x1, x2) = head.split_at_mut(d_half);
            for i in 0..d_half {
                let (a, b) = (x1[i], x2[i]);
                x1[i] = a * c[i] - b * s[i];
                x2[i] = b * c[i] + a * s[i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt_oss() -> YarnRope {
        YarnRope::new(64, 150000.0, 32.0, 4096.0, 1.0, 32.0, false)
    }

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs()
    }

    #[test]
    fn yarn_table_matches_reference_values() {
        let r = gpt_oss();
        assert!((r.low - 8.092779115512402).abs() < 1e-12, "low {}", r.low);
        assert!(
            (r.high - 17.39802450158856).abs() < 1e-12,
            "high {}",
            r.high
        );
        assert!(rel(r.concentration as f64, 1.3465735902799727) < 1e-7);
        assert_eq!(r.inv_freq[0], 1.0);
        assert!(
            rel(r.inv_freq[1] as f64, 0.6890443058881633) < 1e-6,
            "{}",
            r.inv_freq[1]
        );
        assert!(
            rel(r.inv_freq[31] as f64, 3.0235114281192144e-07) < 1e-6,
            "{}",
            r.inv_freq[31]
        );
        // i <= 8 pure extrapolation, i >= 18 pure interpolation (frequency / 32).
        for i in 0..32 {
            let extrap = 1.0 / 150000f64.powf(2.0 * i as f64 / 64.0);
            let want = if i <= 8 {
                extrap
            } else if i >= 18 {
                extrap / 32.0
            } else {
                let ramp = (i as f64 - r.low) / (r.high - r.low);
                extrap / 32.0 * ramp + extrap * (1.0 - ramp)
            };
            assert!(
                rel(r.inv_freq[i] as f64, want) < 2e-6,
                "i={i} {} vs {want}",
                r.inv_freq[i]
            );
        }
    }

    #[test]
    fn truncate_floors_and_ceils() {
        let r = YarnRope::new(64, 150000.0, 32.0, 4096.0, 1.0, 32.0, true);
        assert_eq!((r.low, r.high), (8.0, 18.0));
    }

    #[test]
    fn no_scaling_is_plain_rope() {
        let r = YarnRope::new(64, 10000.0, 1.0, 4096.0, 1.0, 32.0, false);
        assert_eq!(r.concentration, 1.0);
        assert!(rel(r.inv_freq[16] as f64, 0.01) < 1e-6);
    }

    #[test]
    fn rotation_is_half_split_and_scaled() {
        let r = gpt_oss();
        let (mut cos, mut sin) = (vec![0f32; 32], vec![0f32; 32]);
        r.cos_sin(3, &mut cos, &mut sin);
        let c = r.concentration;
        assert!((cos[0] - 3f32.cos() * c).abs() < 1e-6);
        assert!((sin[0] - 3f32.sin() * c).abs() < 1e-6);
        // x = e_0 rotates into dims 0 and 32 only.
        let mut x = vec![0f32; 64];
        x[0] = 1.0;
        rope_yarn_f32(&mut x, 1, 64, &cos, &sin);
        assert!((x[0] - cos[0]).abs() < 1e-7 && (x[32] - sin[0]).abs() < 1e-7);
        assert!(x
            .iter()
            .enumerate()
            .all(|(i, &v)| i == 0 || i == 32 || v == 0.0));
        // Position 0 only scales by the concentration.
        r.cos_sin(0, &mut cos, &mut sin);
        let mut y: Vec<f32> = (0..64).map(|i| i as f32).collect();
        rope_yarn_f32(&mut y, 1, 64, &cos, &sin);
        for (i, v) in y.iter().enumerate() {
            assert!((v - i as f32 * c).abs() < 1e-4);
        }
    }
}
