// Attention with sinks for a block of 16 queries of one head (prefill): each 32-key tile of
// K and then V is loaded into workgroup memory once and used by all 16 queries (the split-K
// kernel reads it once per query). Online softmax per query seeded with the sink (m = sink,
// l = 1), keys in increasing position, causal and sliding-window masks. head_dim <= 64.
// Same parameters as attention.wgsl; writes the normalised output rows directly.
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
@group(0) @binding(4) var<storage, read> sinks: array<f32>;
@group(0) @binding(5) var<storage, read_write> attn: array<f32>;

const QB: u32 = 16u;
const KT: u32 = 32u;
const NEG: f32 = -3.0e38;
var<workgroup> qs: array<f32, 1024>;   // QB × 64
var<workgroup> tile: array<f32, 2048>; // KT × 64, keys then values
var<workgroup> sc: array<f32, 512>;    // QB × KT scores, then weights
var<workgroup> mrow: array<f32, 16>;
var<workgroup> lrow: array<f32, 16>;
var<workgroup> crow: array<f32, 16>;

fn row_base(j: u32, g: u32, is_v: bool) -> u32 {
    let kv_dim = p.n_kv_heads * p.head_dim;
    if (j >= p.n_past) {
        let col = select(p.k_col, p.v_col, is_v);
        return (p.row0 + j - p.n_past) * p.stride + col + g * p.head_dim;
    }
    var slot = j;
    if (p.ring > 0u) { slot = j % p.ring; }
    return slot * kv_dim + g * p.head_dim;
}

fn lo_of(pos: u32) -> u32 {
    if (p.window > 0u && pos + 1u > p.window) { return pos + 1u - p.window; }
    return 0u;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let blk = wg.x;
    let h = wg.y;
    let hd = p.head_dim;
    let g = h / (p.n_heads / p.n_kv_heads);
    let t0 = blk * QB;
    let nq = min(QB, p.n - t0);
    let p0 = p.n_past + t0;
    let p_last = p0 + nq - 1u;
    for (var idx = tid; idx < QB * hd; idx += 64u) {
        let qi = idx / hd;
        var v = 0.0;
        if (qi < nq) { v = qkv[(p.row0 + t0 + qi) * p.stride + h * hd + idx % hd]; }
        qs[qi * 64u + idx % hd] = v;
    }
    if (tid < QB) {
        mrow[tid] = sinks[h];
        lrow[tid] = 1.0;
    }
    var acc: array<f32, 16>;
    for (var qi = 0u; qi < QB; qi++) { acc[qi] = 0.0; }
    workgroupBarrier();
    let k_end = p_last + 1u;
    for (var c0 = lo_of(p0); c0 < k_end; c0 += KT) {
        // Keys of this tile.
        for (var idx = tid; idx < KT * hd; idx += 64u) {
            let kj = idx / hd;
            let j = c0 + kj;
            var v = 0.0;
            if (j < k_end) {
                let b = row_base(j, g, false);
                if (j >= p.n_past) { v = qkv[b + idx % hd]; } else { v = kc[b + idx % hd]; }
            }
            tile[kj * 64u + idx % hd] = v;
        }
        workgroupBarrier();
        // Scores: thread -> query tid / 4, keys (tid % 4) · 8 ..
        {
            let qi = tid / 4u;
            let pos = p0 + qi;
            for (var u = 0u; u < 8u; u++) {
                let kj = (tid % 4u) * 8u + u;
                let j = c0 + kj;
                var s = NEG;
                if (qi < nq && j <= pos && j >= lo_of(pos)) {
                    var d = 0.0;
                    for (var i = 0u; i < hd; i++) { d += qs[qi * 64u + i] * tile[kj * 64u + i]; }
                    s = d * p.sm_scale;
                }
                sc[qi * KT + kj] = s;
            }
        }
        workgroupBarrier();
        // Online softmax per query row.
        if (tid < QB) {
            var mx = mrow[tid];
            for (var kj = 0u; kj < KT; kj++) { mx = max(mx, sc[tid * KT + kj]); }
            let corr = exp(mrow[tid] - mx);
            var l = lrow[tid] * corr;
            for (var kj = 0u; kj < KT; kj++) {
                let w = exp(sc[tid * KT + kj] - mx);
                sc[tid * KT + kj] = w;
                l += w;
            }
            mrow[tid] = mx;
            lrow[tid] = l;
            crow[tid] = corr;
        }
        workgroupBarrier();
        // Values of this tile (the keys are no longer needed).
        for (var idx = tid; idx < KT * hd; idx += 64u) {
            let kj = idx / hd;
            let j = c0 + kj;
            var v = 0.0;
            if (j < k_end) {
                let b = row_base(j, g, true);
                if (j >= p.n_past) { v = qkv[b + idx % hd]; } else { v = vc[b + idx % hd]; }
            }
            tile[kj * 64u + idx % hd] = v;
        }
        workgroupBarrier();
        if (tid < hd) {
            for (var qi = 0u; qi < QB; qi++) {
                var a = acc[qi] * crow[qi];
                for (var kj = 0u; kj < KT; kj++) { a += sc[qi * KT + kj] * tile[kj * 64u + tid]; }
                acc[qi] = a;
            }
        }
        workgroupBarrier();
    }
    if (tid < hd) {
        let qd = p.n_heads * hd;
        for (var qi = 0u; qi < nq; qi++) {
            attn[(p.row0 + t0 + qi) * qd + h * hd + tid] = acc[qi] / lrow[qi];
        }
    }
}
