// y[t, o] (+)= Σ_i x[t, i] · W[o, i] + b[o] for a tile of 4 output rows × 4 tokens per
// workgroup: each weight is read once for the 4 tokens. W bf16 or f32 (dtype prelude).
// flags: 1 bias, 2 accumulate into y (residual add), 4 scatter: row o is written to column
// ids[o] of a y row `y_stride` wide (the unembedding's nonzero rows).
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

const WG: u32 = 64u;
const R: u32 = 4u;
const T: u32 = 4u;
var<workgroup> red: array<f32, 1024>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let o0 = wg.x * R;
    let t0 = wg.y * T;
    var acc: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) { acc[j] = 0.0; }
    let nt = min(T, p.n - t0);
    let nr = min(R, p.d_out - o0);
    if ((p.d_in & 1u) == 0u) {
        let pairs = p.d_in / 2u;
        for (var i = tid; i < pairs; i += WG) {
            var xv: array<vec2<f32>, 4>;
            for (var t = 0u; t < T; t++) {
                if (t < nt) {
                    let xb = p.x_off + (t0 + t) * p.x_stride + 2u * i;
                    xv[t] = vec2<f32>(x[xb], x[xb + 1u]);
                } else {
                    xv[t] = vec2<f32>(0.0, 0.0);
                }
            }
            for (var r = 0u; r < R; r++) {
                if (r < nr) {
                    let wv = wload2((o0 + r) * p.d_in + 2u * i);
                    for (var t = 0u; t < T; t++) {
                        acc[r * T + t] += wv.x * xv[t].x + wv.y * xv[t].y;
                    }
                }
            }
        }
    } else {
        for (var i = tid; i < p.d_in; i += WG) {
            var xv: array<f32, 4>;
            for (var t = 0u; t < T; t++) {
                xv[t] = select(0.0, x[p.x_off + (t0 + t) * p.x_stride + i], t < nt);
            }
            for (var r = 0u; r < R; r++) {
                if (r < nr) {
                    let wv = wload((o0 + r) * p.d_in + i);
                    for (var t = 0u; t < T; t++) { acc[r * T + t] += wv * xv[t]; }
                }
            }
        }
    }
    for (var j = 0u; j < 16u; j++) { red[j * WG + tid] = acc[j]; }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (tid < s) {
            for (var j = 0u; j < 16u; j++) { red[j * WG + tid] += red[j * WG + tid + s]; }
        }
        workgroupBarrier();
    }
    if (tid < R * T) {
        let r = tid / T;
        let t = tid % T;
        if (r < nr && t < nt) {
            let o = o0 + r;
            var v = red[tid * WG];
            if ((p.flags & 1u) != 0u) { v += bias[o]; }
            var col = o;
            if ((p.flags & 4u) != 0u) { col = ids[o]; }
            let yi = (t0 + t) * p.y_stride + col;
            if ((p.flags & 2u) != 0u) { v = y[yi] + v; }
            y[yi] = v;
        }
    }
}
