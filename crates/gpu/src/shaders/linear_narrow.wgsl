// linear.wgsl for short rows (d_in <= 256, e.g. a small model's unembedding): one thread per
// (output row, token) walks the whole row, so a 201,088-row product is ~3,000 workgroups
// instead of ~50,000 four-row tiles. Same parameters, bindings and flags as linear.wgsl.
struct Params {
    n: u32, d_in: u32, d_out: u32, flags: u32,
    x_off: u32, x_stride: u32, y_stride: u32, _a: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<WEIGHT>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> ids: array<u32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = gid.x;
    let t = gid.y;
    if (o >= p.d_out || t >= p.n) { return; }
    let xb = p.x_off + t * p.x_stride;
    let wb = o * p.d_in;
    var acc = 0.0;
    for (var i = 0u; i < p.d_in; i++) { acc += wload(wb + i) * x[xb + i]; }
    if ((p.flags & 1u) != 0u) { acc += bias[o]; }
    var col = o;
    if ((p.flags & 4u) != 0u) { col = ids[o]; }
    let yi = t * p.y_stride + col;
    if ((p.flags & 2u) != 0u) { acc = y[yi] + acc; }
    y[yi] = acc;
}
