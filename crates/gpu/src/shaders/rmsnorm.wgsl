// RMSNorm of one row per workgroup: y = (x * 1/sqrt(mean(x²) + eps)) * scale.
struct Params { n: u32, dim: u32, eps: f32, _a: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let row = wg.x;
    if (row >= p.n) { return; }
    let base = row * p.dim;
    var s = 0.0;
    for (var i = tid; i < p.dim; i += 64u) {
        let v = x[base + i];
        s += v * v;
    }
    red[tid] = s;
    workgroupBarrier();
    for (var k = 32u; k > 0u; k >>= 1u) {
        if (tid < k) { red[tid] += red[tid + k]; }
        workgroupBarrier();
    }
    let inv = 1.0 / sqrt(red[0] / f32(p.dim) + p.eps);
    for (var i = tid; i < p.dim; i += 64u) {
        y[base + i] = (x[base + i] * inv) * scale[i];
    }
}
