// Grouped expert product: workgroup (x, i) computes 4 output rows of tile i's expert for the
// tile's (up to 8) pairs, so each weight is read once for all of them. y row of a pair q is
// W[e] · xin[(q / x_div) · d_in ..] + b[e]. MLP1 (flags 1): the rows come in gate/linear
// pairs and act[q, o/2] gets the clamped SwiGLU; MLP2 (flags 0): y[q, o] is written as is.
// `row_dot_tile` comes from the weight-format prelude.
struct Params {
    d_in: u32, d_out: u32, x_div: u32, flags: u32,
    limit: f32, alpha: f32, _a: u32, _b: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xin: array<f32>;
@group(0) @binding(2) var<storage, read> sorted: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read> tiles: array<u32>;
@group(0) @binding(7) var<storage, read_write> y: array<f32>;

var<workgroup> red: array<f32, 2048>; // 4 rows × 8 pairs × 64 threads

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let tile = wg.y;
    if (tile >= tiles[0]) { return; }
    let e = tiles[4u + 4u * tile];
    let start = tiles[5u + 4u * tile];
    let cnt = tiles[6u + 4u * tile];
    let o0 = wg.x * 4u;
    var xb: array<u32, 8>;
    for (var j = 0u; j < 8u; j++) {
        xb[j] = 0u;
        if (j < cnt) { xb[j] = (sorted[start + j] / p.x_div) * p.d_in; }
    }
    for (var r = 0u; r < 4u; r++) {
        var part: array<f32, 8>;
        if (o0 + r < p.d_out) { part = row_dot_tile(e * p.d_out + o0 + r, p.d_in, xb, cnt, tid); }
        for (var j = 0u; j < 8u; j++) { red[(r * 8u + j) * 64u + tid] = part[j]; }
    }
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (tid < s) {
            for (var q = 0u; q < 32u; q++) { red[q * 64u + tid] += red[q * 64u + tid + s]; }
        }
        workgroupBarrier();
    }
    if ((p.flags & 1u) != 0u) {
        // 2 gate/linear pairs × 8 pairs of the tile.
        if (tid < 16u) {
            let rp = tid / 8u;
            let j = tid % 8u;
            let o = o0 + 2u * rp;
            if (j < cnt && o + 1u < p.d_out) {
                let q = sorted[start + j];
                let gate = min(red[((2u * rp) * 8u + j) * 64u] + bias[e * p.d_out + o], p.limit);
                let lin = clamp(red[((2u * rp + 1u) * 8u + j) * 64u] + bias[e * p.d_out + o + 1u], -p.limit, p.limit);
                let sig = 1.0 / (1.0 + exp(-p.alpha * gate));
                y[q * (p.d_out / 2u) + o / 2u] = gate * sig * (lin + 1.0);
            }
        }
    } else if (tid < 32u) {
        let r = tid / 8u;
        let j = tid % 8u;
        let o = o0 + r;
        if (j < cnt && o < p.d_out) {
            let q = sorted[start + j];
            y[q * p.d_out + o] = red[(r * 8u + j) * 64u] + bias[e * p.d_out + o];
        }
    }
}
