//! RMSNorm: `y = x / sqrt(mean(x²) + eps) * scale`, computed in f32 (reference §2.2).

/// Normalises each row of `x` (f32 [n, dim]) into `y` (f32 [n, dim]) with `scale` (f32 [dim]).
pub fn rmsnorm_f32(x: &[f32], scale: &[f32], eps: f32, y: &mut [f32]) {
    let dim = scale.len();
    assert!(
        dim > 0 && x.len().is_multiple_of(dim) && y.len() == x.len(),
        "rmsnorm: shapes"
    );
    for (xr, yr) in x.chunks_exact(dim).zip(y.chunks_exact_mut(dim)) {
        let mut acc = [0f32; 8];
        for (i, &v) in xr.iter().enumerate() {
            acc[i % 8] += v * v;
        }
        let sum: f32 = acc.iter().sum();
        // Same association as the reference: (x * rsqrt(mean + eps)) * scale.
        let inv = 1.0 / (sum / dim as f32 + eps).sqrt();
        for ((o, &v), &s) in yr.iter_mut().zip(xr).zip(scale) {
            *o = (v * inv) * s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_f64_reference() {
        let dim = 37;
        let x: Vec<f32> = (0..2 * dim)
            .map(|i| ((i * 7919) % 101) as f32 / 13.0 - 3.0)
            .collect();
        let scale: Vec<f32> = (0..dim).map(|i| 0.5 + i as f32 / 40.0).collect();
        let mut y = vec![0f32; x.len()];
        rmsnorm_f32(&x, &scale, 1e-5, &mut y);
        for r in 0..2 {
            let row = &x[r * dim..(r + 1) * dim];
            let ms: f64 = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / dim as f64;
            for i in 0..dim {
                let want = row[i] as f64 / (ms + 1e-5).sqrt() * scale[i] as f64;
                assert!((y[r * dim + i] as f64 - want).abs() < 1e-5, "{r},{i}");
            }
        }
    }

    #[test]
    fn zero_row_stays_finite() {
        let mut y = vec![1f32; 4];
        rmsnorm_f32(&[0.0; 4], &[1.0; 4], 1e-5, &mut y);
        assert_eq!(y, vec![0.0; 4]);
    }
}
