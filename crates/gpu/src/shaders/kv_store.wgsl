// Appends the call's keys and values (columns k_col / v_col of the qkv rows) to a layer's
// cache at positions n_past.., slot = pos (full layers) or pos % ring (sliding rings; only the
// last `ring` positions of the call are kept).
struct Params { n: u32, n_past: u32, kv_dim: u32, stride: u32, k_col: u32, v_col: u32, ring: u32, row0: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> kc: array<f32>;
@group(0) @binding(3) var<storage, read_write> vc: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let t = gid.y;
    if (c >= p.kv_dim || t >= p.n) { return; }
    let pos = p.n_past + t;
    var slot = pos;
    if (p.ring > 0u) {
        if (t + p.ring < p.n) { return; }
        slot = pos % p.ring;
    }
    let src = (p.row0 + t) * p.stride;
    kc[slot * p.kv_dim + c] = qkv[src + p.k_col + c];
    vc[slot * p.kv_dim + c] = qkv[src + p.v_col + c];
}
