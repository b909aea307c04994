// Embedding gather: x[t, j] = table[tokens[t], j] (table bf16 or f32, see the dtype prelude).
struct Params { n: u32, hidden: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> w: array<WEIGHT>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let t = gid.y;
    if (j >= p.hidden || t >= p.n) { return; }
    x[t * p.hidden + j] = wload(tokens[t] * p.hidden + j);
}
