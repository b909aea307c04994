// First expert product with the clamped SwiGLU fused in: for each (token t, slot j) pair,
// expert e = idx[t·k + j], u = W1[e] · x[t] + b1[e] over 4 rows (2 gate/linear pairs) per
// workgroup, act[pair, o/2] = min(g, limit)·σ(alpha·min(g, limit))·(clamp(l, ±limit) + 1).
// `row_dot` (the weight-format prelude: MXFP4 or dense) gives this thread's share of a row.
struct Params { n: u32, k: u32, d_in: u32, d_out: u32, limit: f32, alpha: f32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xin: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> act: array<f32>;

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let o0 = wg.x * 4u;
    let pair = wg.y;
    let t = pair / p.k;
    let e = idx[pair];
    let xb = t * p.d_in;
    for (var r = 0u; r < 4u; r++) {
        var v = 0.0;
        if (o0 + r < p.d_out) { v = row_dot(e * p.d_out + o0 + r, p.d_in, xb, tid); }
        red[r * 64u + tid] = v;
    }
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (tid < s) {
            for (var r = 0u; r < 4u; r++) { red[r * 64u + tid] += red[r * 64u + tid + s]; }
        }
        workgroupBarrier();
    }
    if (tid < 2u && o0 + 2u * tid + 1u < p.d_out) {
        let o = o0 + 2u * tid;
        let gate = min(red[(2u * tid) * 64u] + bias[e * p.d_out + o], p.limit);
        let lin = clamp(red[(2u * tid + 1u) * 64u] + bias[e * p.d_out + o + 1u], -p.limit, p.limit);
        let sig = 1.0 / (1.0 + exp(-p.alpha * gate));
        act[pair * (p.d_out / 2u) + o / 2u] = gate * sig * (lin + 1.0);
    }
}
