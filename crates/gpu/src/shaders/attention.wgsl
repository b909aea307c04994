// Attention with sinks, split-K ("flash decoding"): workgroup (s, h, t) runs query t of head h
// over the s-th run of `kps` keys of its visible range (causal, optional sliding window) with
// an online softmax, and writes the partial (max m, sum l, unnormalised output) that
// attention_merge.wgsl combines with the sink. Keys before the call come from the cache
// (slot = pos, or pos % ring on sliding layers), the call's own keys from the qkv rows.
struct Params {
    n: u32, n_past: u32, n_heads: u32, n_kv_heads: u32,
    head_dim: u32, stride: u32, k_col: u32, v_col: u32,
    ring: u32, window: u32, kps: u32, n_splits: u32,
    sm_scale: f32, row0: u32, _a: u32, _b: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<f32>;
@group(0) @binding(3) var<storage, read> vc: array<f32>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>;

const WG: u32 = 64u;
const MAX_HD: u32 = 256u;
const NEG: f32 = -3.0e38;
var<workgroup> qs: array<f32, 256>;
var<workgroup> sc: array<f32, 64>;

// Start of key `j`'s (or its value's, `col` = v_col) head-`g` row.
fn key_base(j: u32, g: u32, is_v: bool) -> u32 {
    let kv_dim = p.n_kv_heads * p.head_dim;
    if (j >= p.n_past) {
        let col = select(p.k_col, p.v_col, is_v);
        return (p.row0 + j - p.n_past) * p.stride + col + g * p.head_dim;
    }
    var slot = j;
    if (p.ring > 0u) { slot = j % p.ring; }
    return slot * kv_dim + g * p.head_dim;
}

fn load_k(j: u32, i: u32, base: u32) -> f32 {
    if (j >= p.n_past) { return qkv[base + i]; }
    return kc[base + i];
}

fn load_v(j: u32, i: u32, base: u32) -> f32 {
    if (j >= p.n_past) { return qkv[base + i]; }
    return vc[base + i];
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let s = wg.x;
    let h = wg.y;
    let t = wg.z;
    let hd = p.head_dim;
    let g = h / (p.n_heads / p.n_kv_heads);
    let pos = p.n_past + t;
    var lo = 0u;
    if (p.window > 0u && pos + 1u > p.window) { lo = pos + 1u - p.window; }
    let first = lo + s * p.kps;
    let last = min(pos + 1u, first + p.kps); // exclusive
    let qbase = (p.row0 + t) * p.stride + h * hd;
    for (var i = tid; i < hd; i += WG) { qs[i] = qkv[qbase + i]; }
    workgroupBarrier();

    var m = NEG;
    var l = 0.0;
    var acc: array<f32, 4>; // dims tid, tid + 64, ... (head_dim <= 256)
    for (var d = 0u; d < 4u; d++) { acc[d] = 0.0; }
    for (var c0 = first; c0 < last; c0 += WG) {
        let j = c0 + tid;
        var score = NEG;
        if (j < last) {
            let kb = key_base(j, g, false);
            var dotv = 0.0;
            for (var i = 0u; i < hd; i++) { dotv += qs[i] * load_k(j, i, kb); }
            score = dotv * p.sm_scale;
        }
        sc[tid] = score;
        workgroupBarrier();
        let cnt = min(WG, last - c0);
        var cm = m;
        for (var u = 0u; u < cnt; u++) { cm = max(cm, sc[u]); }
        let corr = exp(m - cm);
        l *= corr;
        for (var d = 0u; d < 4u; d++) { acc[d] *= corr; }
        for (var u = 0u; u < cnt; u++) {
            let w = exp(sc[u] - cm);
            l += w;
            let vb = key_base(c0 + u, g, true);
            for (var d = 0u; d < 4u; d++) {
                let dim = tid + d * WG;
                if (dim < hd) { acc[d] += w * load_v(c0 + u, dim, vb); }
            }
        }
        m = cm;
        workgroupBarrier();
    }
    let out = ((t * p.n_heads + h) * p.n_splits + s) * (hd + 2u);
    if (tid == 0u) {
        part[out] = m;
        part[out + 1u] = l;
    }
    for (var d = 0u; d < 4u; d++) {
        let dim = tid + d * WG;
        if (dim < hd) { part[out + 2u + dim] = acc[d]; }
    }
}
