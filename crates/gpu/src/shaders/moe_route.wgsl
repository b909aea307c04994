// Groups the (token, slot) pairs of a pass by routed expert, for the grouped expert products:
// `sorted` lists pair ids expert by expert, and `tiles` cuts each expert's run into tiles of
// at most `tok` pairs: tiles[0] = tile count, tile i at 4 + 4i = (expert, start, count, 0).
// One workgroup does it all (a pass has at most a few thousand pairs).
struct Params { n_pairs: u32, n_experts: u32, tok: u32, _a: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> sorted: array<u32>;
@group(0) @binding(3) var<storage, read_write> tiles: array<u32>;

const MAX_E: u32 = 1024u;
var<workgroup> counts: array<atomic<u32>, 1024>;
var<workgroup> offsets: array<u32, 1024>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) tid: u32) {
    for (var e = tid; e < p.n_experts; e += 256u) { atomicStore(&counts[e], 0u); }
    workgroupBarrier();
    for (var q = tid; q < p.n_pairs; q += 256u) { atomicAdd(&counts[idx[q]], 1u); }
    workgroupBarrier();
    if (tid == 0u) {
        var running = 0u;
        var n_tiles = 0u;
        for (var e = 0u; e < p.n_experts; e++) {
            let c = atomicLoad(&counts[e]);
            offsets[e] = running;
            for (var s = 0u; s < c; s += p.tok) {
                tiles[4u + 4u * n_tiles] = e;
                tiles[5u + 4u * n_tiles] = running + s;
                tiles[6u + 4u * n_tiles] = min(p.tok, c - s);
                tiles[7u + 4u * n_tiles] = 0u;
                n_tiles++;
            }
            running += c;
            atomicStore(&counts[e], 0u);
        }
        tiles[0] = n_tiles;
    }
    workgroupBarrier();
    for (var q = tid; q < p.n_pairs; q += 256u) {
        let e = idx[q];
        sorted[offsets[e] + atomicAdd(&counts[e], 1u)] = q;
    }
}
