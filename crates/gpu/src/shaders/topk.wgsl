// Router: per token, the k largest logits in descending order (lower index first among equal
// values, NaN never preferred) and the softmax over the selected ones.
struct Params { n: u32, n_experts: u32, k: u32, _a: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> wts: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if (t >= p.n) { return; }
    let base = t * p.n_experts;
    var chosen: array<u32, 32>;
    for (var slot = 0u; slot < p.k; slot++) {
        var best = 0xffffffffu;
        for (var e = 0u; e < p.n_experts; e++) {
            var taken = false;
            for (var q = 0u; q < slot; q++) { if (chosen[q] == e) { taken = true; } }
            if (taken) { continue; }
            let v = logits[base + e];
            if (best == 0xffffffffu) { best = e; continue; }
            let b = logits[base + best];
            if (v > b || (b != b && v == v)) { best = e; }
        }
        if (best == 0xffffffffu) { best = slot; }
        chosen[slot] = best;
    }
    let m = logits[base + chosen[0]];
    var z = 0.0;
    for (var slot = 0u; slot < p.k; slot++) { z += exp(logits[base + chosen[slot]] - m); }
    for (var slot = 0u; slot < p.k; slot++) {
        idx[t * p.k + slot] = chosen[slot];
        wts[t * p.k + slot] = exp(logits[base + chosen[slot]] - m) / z;
    }
}
