// YaRN rotary embedding in place on the q and k columns of the fused qkv rows, half-split
// pairs: x'[i] = x[i]·cos − x[i+h]·sin, x'[i+h] = x[i+h]·cos + x[i]·sin (h = head_dim/2).
// cs: cos f32 [n, h] then sin f32 [n, h], one row per token's position.
struct Params { n: u32, q_heads: u32, k_heads: u32, head_dim: u32, stride: u32, k_col: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> cs: array<f32>;
@group(0) @binding(2) var<storage, read_write> qkv: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let h = p.head_dim / 2u;
    let heads = p.q_heads + p.k_heads;
    let idx = gid.x;
    let t = gid.y;
    if (idx >= heads * h || t >= p.n) { return; }
    let head = idx / h;
    let i = idx % h;
    var base = t * p.stride + head * p.head_dim;
    if (head >= p.q_heads) { base = t * p.stride + p.k_col + (head - p.q_heads) * p.head_dim; }
    let c = cs[t * h + i];
    let s = cs[p.n * h + t * h + i];
    let a = qkv[base + i];
    let b = qkv[base + i + h];
    qkv[base + i] = a * c - b * s;
    qkv[base + i + h] = b * c + a * s;
}
