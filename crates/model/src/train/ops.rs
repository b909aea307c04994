//! The backward pieces of the forward pass's operations, each the transpose of its forward
//! (reference §2): products with a frozen W, RMSNorm, the clamped SwiGLU, attention with sinks
//! and a window, the softmax over the router's selected logits.

use gptoss_backend::matmul_f32_f32w;

/// y f32 [n, d_out] = x f32 [n, d_in] · Wᵀ, W f32 [d_out, d_in].
pub(super) fn mm(x: &[f32], w: &[f32], y: &mut [f32], d_in: usize, d_out: usize) {
    matmul_f32_f32w(x, w, None, y, d_in, d_out);
}

/// dx f32 [n, d_in] += dy f32 [n, d_out] · W, W f32 [d_out, d_in] (the transposed product).
/// The fast kernel multiplies by a matrix's transpose, so W goes through it a block of rows at
/// a time, each block transposed into a small buffer (never a whole transposed copy: the
/// unembedding is 201088 rows).
pub(super) fn mm_t_add(dy: &[f32], w: &[f32], dx: &mut [f32], d_out: usize, d_in: usize) {
    const BLOCK: usize = 1024;
    let n = dy.len() / d_out;
    let kb_max = BLOCK.min(d_out);
    let mut wt = vec![0f32; d_in * kb_max];
    let mut dy_block = vec![0f32; n * kb_max];
    let mut t = vec![0f32; n * d_in];
    for k0 in (0..d_out).step_by(BLOCK) {
        let kb = BLOCK.min(d_out - k0);
        for (k, w_row) in w[k0 * d_in..(k0 + kb) * d_in]
            .chunks_exact(d_in)
            .enumerate()
        {
            for (i, &v) in w_row.iter().enumerate() {
                wt[i * kb + k] = v;
            }
        }
        for (dst, src) in dy_block.chunks_exact_mut(kb).zip(dy.chunks_exact(d_out)) {
            dst.copy_from_slice(&src[k0..k0 + kb]);
        }
        matmul_f32_f32w(
            &dy_block[..n * kb],
            &wt[..d_in * kb],
            None,
            &mut t,
            kb,
            d_in,
        );
        for (d, v) in dx.iter_mut().zip(&t) {
            *d += v;
        }
    }
}

/// g f32 [da, db] += s · Σ_rows a[row]ᵀ b[row], for a f32 [n, da], b f32 [n, db].
pub(super) fn outer_add(a: &[f32], b: &[f32], g: &mut [f32], da: usize, db: usize, s: f32) {
    for (ar, br) in a.chunks_exact(da).zip(b.chunks_exact(db)) {
        for (i, &av) in ar.iter().enumerate() {
            let f = s * av;
            if f == 0.0 {
                continue;
            }
            for (gv, &bv) in g[i * db..(i + 1) * db].iter_mut().zip(br) {
                *gv += f * bv;
            }
        }
    }
}

/// dx f32 [n, d] += the gradient of y = rmsnorm(x) · w given dy: with inv = 1/√(mean(x²) + eps)
/// and g = dy·w, dx = inv·g − x·inv³·(g·x)/d.
pub(super) fn rmsnorm_back(x: &[f32], w: &[f32], eps: f32, dy: &[f32], dx: &mut [f32]) {
    let d = w.len();
    for ((xr, dyr), dxr) in x
        .chunks_exact(d)
        .zip(dy.chunks_exact(d))
        .zip(dx.chunks_exact_mut(d))
    {
        let ms: f32 = xr.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        let dot: f32 = xr
            .iter()
            .zip(dyr)
            .zip(w)
            .map(|((&xv, &g), &wv)| xv * g * wv)
            .sum();
        let c = inv * inv * inv * dot / d as f32;
        for (((o, &xv), &g), &wv) in dxr.iter_mut().zip(xr).zip(dyr).zip(w) {
            *o += inv * g * wv - xv * c;
        }
    }
}

/// du f32 [n, 2·I] (interleaved gate, linear) from dout f32 [n, I] through
/// out = min(gate, limit) · σ(α·min(gate, limit)) · (clamp(lin, ±limit) + 1); a clamped input
/// gets no gradient (as torch's clamp, inclusive at the limit).
pub(super) fn swiglu_back(u: &[f32], dout: &[f32], limit: f32, alpha: f32, du: &mut [f32]) {
    for ((pair, &g), dpair) in u.chunks_exact(2).zip(dout).zip(du.chunks_exact_mut(2)) {
        let (gate_raw, lin_raw) = (pair[0], pair[1]);
        let gate = gate_raw.min(limit);
        let lin = lin_raw.clamp(-limit, limit);
        let sig = 1.0 / (1.0 + (-alpha * gate).exp());
        let dglu = sig + gate * alpha * sig * (1.0 - sig);
        dpair[0] = if gate_raw <= limit {
            g * (lin + 1.0) * dglu
        } else {
            0.0
        };
        dpair[1] = if lin_raw.abs() <= limit {
            g * gate * sig
        } else {
            0.0
        };
    }
}

/// Σ a·b with eight independent partial sums: a single running sum is one long chain of
/// dependent additions (the attention loops' bottleneck); eight let the compiler use vectors.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Shapes of one attention call over a whole sequence from position 0.
pub(super) struct Attn {
    pub n: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub sm_scale: f32,
    pub window: Option<usize>,
}

impl Attn {
    /// The first key position query `i` sees.
    fn lo(&self, i: usize) -> usize {
        self.window.map_or(0, |w| (i + 1).saturating_sub(w))
    }

    /// out f32 [n, heads·d] = Σ_j P_ij v_j; returns P f32 [heads, n, n] (the sink's share
    /// only in the denominator; zero outside the causal window).
    pub fn forward(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        sinks: &[f32],
        out: &mut [f32],
    ) -> Vec<f32> {
        let (n, d) = (self.n, self.head_dim);
        let (qd, kvd) = (self.heads * d, self.kv_heads * d);
        let group = self.heads / self.kv_heads;
        let mut p = vec![0f32; self.heads * n * n];
        out.fill(0.0);
        for h in 0..self.heads {
            let g = h / group;
            for i in 0..n {
                let qh = &q[i * qd + h * d..i * qd + (h + 1) * d];
                let row = &mut p[(h * n + i) * n..(h * n + i + 1) * n];
                let lo = self.lo(i);
                let mut m = sinks[h];
                for j in lo..=i {
                    let kh = &k[j * kvd + g * d..j * kvd + (g + 1) * d];
                    let s = dot(qh, kh) * self.sm_scale;
                    row[j] = s;
                    m = m.max(s);
                }
                let mut z = (sinks[h] - m).exp();
                for s in &mut row[lo..=i] {
                    *s = (*s - m).exp();
                    z += *s;
                }
                let o = &mut out[i * qd + h * d..i * qd + (h + 1) * d];
                for j in lo..=i {
                    row[j] /= z;
                    let vh = &v[j * kvd + g * d..j * kvd + (g + 1) * d];
                    for (ov, &vv) in o.iter_mut().zip(vh) {
                        *ov += row[j] * vv;
                    }
                }
            }
        }
        p
    }

    /// dq, dk, dv (overwritten) from dout, through the forward above (P from it).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        p: &[f32],
        dout: &[f32],
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
    ) {
        let (n, d) = (self.n, self.head_dim);
        let (qd, kvd) = (self.heads * d, self.kv_heads * d);
        let group = self.heads / self.kv_heads;
        dq.fill(0.0);
        dk.fill(0.0);
        dv.fill(0.0);
        let mut ds = vec![0f32; n];
        for h in 0..self.heads {
            let g = h / group;
            for i in 0..n {
                let row = &p[(h * n + i) * n..(h * n + i + 1) * n];
                let doh = &dout[i * qd + h * d..i * qd + (h + 1) * d];
                let lo = self.lo(i);
                // dP_j = dout·v_j; dS_j = P_j (dP_j − Σ P dP) (the sink's dP is zero).
                let mut c = 0f32;
                for j in lo..=i {
                    let vh = &v[j * kvd + g * d..j * kvd + (g + 1) * d];
                    let dp = dot(doh, vh);
                    ds[j] = dp;
                    c += row[j] * dp;
                    let dvh = &mut dv[j * kvd + g * d..j * kvd + (g + 1) * d];
                    for (dvv, &o) in dvh.iter_mut().zip(doh) {
                        *dvv += row[j] * o;
                    }
                }
                let qh = &q[i * qd + h * d..i * qd + (h + 1) * d];
                for j in lo..=i {
                    let s = row[j] * (ds[j] - c) * self.sm_scale;
                    let kh = &k[j * kvd + g * d..j * kvd + (g + 1) * d];
                    let dqh = &mut dq[i * qd + h * d..i * qd + (h + 1) * d];
                    for (a, &b) in dqh.iter_mut().zip(kh) {
                        *a += s * b;
                    }
                    let dkh = &mut dk[j * kvd + g * d..j * kvd + (g + 1) * d];
                    for (a, &b) in dkh.iter_mut().zip(qh) {
                        *a += s * b;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finite differences of a scalar function of x, in f64 through f32 evaluation.
    fn num_grad(x: &[f32], f: impl Fn(&[f32]) -> f64) -> Vec<f64> {
        let h = 1e-3f32;
        (0..x.len())
            .map(|i| {
                let mut p = x.to_vec();
                p[i] += h;
                let fp = f(&p);
                p[i] -= 2.0 * h;
                let fm = f(&p);
                (fp - fm) / (2.0 * h as f64)
            })
            .collect()
    }

    fn close(a: &[f32], b: &[f64], tol: f64) {
        for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x as f64 - y).abs() <= tol * (1.0 + y.abs()),
                "{i}: {x} vs {y}"
            );
        }
    }

    fn vals(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn rmsnorm_back_matches_finite_differences() {
        let (x, w, dy) = (vals(12, 1), vals(6, 2), vals(12, 3));
        let f = |x: &[f32]| {
            let mut y = vec![0f32; 12];
            gptoss_backend::rmsnorm_f32(x, &w, 1e-5, &mut y);
            y.iter().zip(&dy).map(|(a, b)| (a * b) as f64).sum()
        };
        let mut dx = vec![0f32; 12];
        rmsnorm_back(&x, &w, 1e-5, &dy, &mut dx);
        close(&dx, &num_grad(&x, f), 2e-2);
    }

    #[test]
    fn swiglu_back_matches_finite_differences() {
        // limit 0.7 clamps some of the inputs in ±1
        let (u, dout) = (vals(16, 4), vals(8, 5));
        let f = |u: &[f32]| {
            let mut o = vec![0f32; 8];
            gptoss_backend::swiglu_clamp_f32(u, 0.7, 1.702, &mut o);
            o.iter().zip(&dout).map(|(a, b)| (a * b) as f64).sum()
        };
        let mut du = vec![0f32; 16];
        swiglu_back(&u, &dout, 0.7, 1.702, &mut du);
        assert!(du.contains(&0.0), "no input was clamped");
        close(&du, &num_grad(&u, f), 2e-2);
    }

    #[test]
    fn attention_back_matches_finite_differences() {
        let a = Attn {
            n: 5,
            heads: 4,
            kv_heads: 2,
            head_dim: 4,
            sm_scale: 0.5,
            window: Some(3),
        };
        let (q, k, v) = (vals(80, 6), vals(40, 7), vals(40, 8));
        let sinks = vals(4, 9);
        let dout = vals(80, 10);
        let f = |q: &[f32], k: &[f32], v: &[f32]| -> f64 {
            let mut o = vec![0f32; 80];
            a.forward(q, k, v, &sinks, &mut o);
            o.iter().zip(&dout).map(|(a, b)| (a * b) as f64).sum()
        };
        let mut o = vec![0f32; 80];
        let p = a.forward(&q, &k, &v, &sinks, &mut o);
        let (mut dq, mut dk, mut dv) = (vec![0f32; 80], vec![0f32; 40], vec![0f32; 40]);
        a.backward(&q, &k, &v, &p, &dout, &mut dq, &mut dk, &mut dv);
        close(&dq, &num_grad(&q, |x| f(x, &k, &v)), 2e-2);
        close(&dk, &num_grad(&k, |x| f(&q, x, &v)), 2e-2);
        close(&dv, &num_grad(&v, |x| f(&q, &k, x)), 2e-2);
    }
}
