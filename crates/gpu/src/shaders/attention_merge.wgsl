// Combines the split-K partials of attention.wgsl with each head's sink logit, which joins
// the softmax denominator only: out = Σ_s acc_s·e^(m_s−M) / (e^(sink−M) + Σ_s l_s·e^(m_s−M)).
struct Params { n: u32, n_heads: u32, head_dim: u32, n_splits: u32, row0: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read> sinks: array<f32>;
@group(0) @binding(3) var<storage, read_write> attn: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let h = wg.x;
    let t = wg.y;
    let hd = p.head_dim;
    let base = (t * p.n_heads + h) * p.n_splits * (hd + 2u);
    let sink = sinks[h];
    var mx = sink;
    for (var s = 0u; s < p.n_splits; s++) { mx = max(mx, part[base + s * (hd + 2u)]); }
    var l = exp(sink - mx);
    for (var s = 0u; s < p.n_splits; s++) {
        let o = base + s * (hd + 2u);
        l += part[o + 1u] * exp(part[o] - mx);
    }
    let inv = 1.0 / l;
    let qd = p.n_heads * hd;
    for (var d = tid; d < hd; d += 64u) {
        var v = 0.0;
        for (var s = 0u; s < p.n_splits; s++) {
            let o = base + s * (hd + 2u);
            v += part[o + 2u + d] * exp(part[o] - mx);
        }
        attn[(p.row0 + t) * qd + h * hd + d] = v * inv;
    }
}
