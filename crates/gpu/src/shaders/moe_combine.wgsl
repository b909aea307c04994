// x[t, o] += Σ_j wts[t·k + j] · y[t·k + j, o], the experts added in increasing index (the CPU
// path's order): the end of the grouped expert path.
struct Params { n: u32, k: u32, d: u32, _a: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read> wts: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = gid.x;
    let t = gid.y;
    if (o >= p.d || t >= p.n) { return; }
    var sum = 0.0;
    var done = 0u;
    for (var m = 0u; m < p.k; m++) {
        var pick = 0u;
        var best = 0xffffffffu;
        for (var j = 0u; j < p.k; j++) {
            let e = idx[t * p.k + j];
            if ((done & (1u << j)) == 0u && e < best) { best = e; pick = j; }
        }
        done |= 1u << pick;
        sum += wts[t * p.k + pick] * y[(t * p.k + pick) * p.d + o];
    }
    x[t * p.d + o] += sum;
}
