// Second expert product and the weighted sum, for 4 output rows of token t per workgroup:
// x[t] += Σ_j wts[t·k + j] · (W2[e_j] · act[t·k + j] + b2[e_j]), the experts added in
// increasing index (the CPU path's order). `row_dot` comes from the weight-format prelude.
struct Params { n: u32, k: u32, d_in: u32, d_out: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xin: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read> wts: array<f32>;
@group(0) @binding(7) var<storage, read_write> x: array<f32>;

const MAX_K: u32 = 8u;
var<workgroup> red: array<f32, 2048>; // MAX_K * 4 rows * 64 threads

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let o0 = wg.x * 4u;
    let t = wg.y;
    for (var j = 0u; j < p.k; j++) {
        let e = idx[t * p.k + j];
        let xb = (t * p.k + j) * p.d_in;
        for (var r = 0u; r < 4u; r++) {
            var v = 0.0;
            if (o0 + r < p.d_out) { v = row_dot(e * p.d_out + o0 + r, p.d_in, xb, tid); }
            red[(j * 4u + r) * 64u + tid] = v;
        }
    }
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (tid < s) {
            for (var q = 0u; q < p.k * 4u; q++) { red[q * 64u + tid] += red[q * 64u + tid + s]; }
        }
        workgroupBarrier();
    }
    if (tid < 4u && o0 + tid < p.d_out) {
        let o = o0 + tid;
        var sum = 0.0;
        var done = 0u; // bit j: slot j added
        for (var n = 0u; n < p.k; n++) {
            var pick = 0u;
            var best = 0xffffffffu;
            for (var j = 0u; j < p.k; j++) {
                let e = idx[t * p.k + j];
                if ((done & (1u << j)) == 0u && e < best) { best = e; pick = j; }
            }
            done |= 1u << pick;
            let y = red[(pick * 4u + tid) * 64u] + bias[best * p.d_out + o];
            sum += wts[t * p.k + pick] * y;
        }
        x[t * p.d_out + o] += sum;
    }
}
