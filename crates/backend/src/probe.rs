//! Hardware probes for `gpt-oss bench`: the machine's streaming read bandwidth and its f32 FMA
//! throughput, measured with the current rayon pool, so model speeds can be printed as fractions
//! of what this machine can do. Owns nothing else.

use std::time::Instant;

use rayon::prelude::*;

/// Read bandwidth in GB/s (1e9 bytes/s): every rayon thread sums its share of a `bytes`-sized
/// buffer (choose one much larger than the last-level cache); best of `reps` passes after one
/// warm-up pass. The buffer is allocated and touched here and freed on return.
pub fn read_bandwidth_gbs(bytes: usize, reps: usize) -> f64 {
    let words = (bytes / 8).max(1 << 16);
    let buf: Vec<u64> = (0..words as u64).collect();
    let chunk = words.div_ceil(rayon::current_num_threads().max(1) * 4);
    let mut best = f64::INFINITY;
    let mut sink = 0u64;
    for rep in 0..=reps.max(1) {
        let t = Instant::now();
        let s: u64 = buf
            .par_chunks(chunk)
            .map(|c| {
                // 8 independent lanes so the loop streams instead of waiting on one add chain.
                let mut acc = [0u64; 8];
                for w in c.chunks_exact(8) {
                    for l in 0..8 {
                        acc[l] = acc[l].wrapping_add(w[l]);
                    }
                }
                acc.iter().fold(0u64, |a, &b| a.wrapping_add(b))
            })
            .reduce(|| 0, u64::wrapping_add);
        let dt = t.elapsed().as_secs_f64();
        sink = sink.wrapping_add(s);
        if rep > 0 {
            best = best.min(dt);
        }
    }
    std::hint::black_box(sink);
    (words * 8) as f64 / best / 1e9
}

/// f32 FMA throughput in GFLOP/s (one FMA = 2 FLOPs) with every rayon thread running
/// independent FMA chains for about `millis` ms, at the widest vectors of the kernel level
/// that runs (see [`crate::kernel_level`]); plain f32 `mul_add` chains at the scalar level.
pub fn fma_gflops(millis: u64) -> f64 {
    match crate::cpu::simd() {
        Some(k) => throughput(millis, |iters| k.fma_probe(iters)) / 1e9,
        None => throughput(millis, fma_loop_scalar) / 1e9,
    }
}

/// Int8 dot-product throughput in GOP/s (one multiply-add = 2 ops) of the instructions the
/// int8 kernels of the running level use (`maddubs` for AVX2, `vpdpbusd` for AVX-512 VNNI,
/// `sdot` or else `smull` for NEON); `None` at the scalar level.
pub fn int8_gops(millis: u64) -> Option<f64> {
    let k = crate::cpu::simd()?;
    k.int8_probe(1)?;
    Some(2.0 * throughput(millis, |iters| k.int8_probe(iters).unwrap_or(0.0)) / 1e9)
}

/// Work per second of `run(iters)` (which returns the work it did) on every rayon thread at
/// once: the iteration count is calibrated on one thread to ~`millis / 4` ms, best of 3.
fn throughput(millis: u64, run: impl Fn(u64) -> f64 + Sync) -> f64 {
    let threads = rayon::current_num_threads().max(1);
    let mut iters = 1u64 << 16;
    loop {
        let t = Instant::now();
        std::hint::black_box(run(iters));
        if t.elapsed().as_millis() as u64 >= millis / 4 || iters > 1 << 34 {
            break;
        }
        iters *= 2;
    }
    let mut best = 0f64;
    for _ in 0..3 {
        let t = Instant::now();
        let work: f64 = (0..threads).into_par_iter().map(|_| run(iters)).sum();
        best = best.max(work / t.elapsed().as_secs_f64());
    }
    best
}

/// Runs `iters` rounds of 10 independent 8-lane f32 `mul_add` chains; returns the FLOPs done.
fn fma_loop_scalar(iters: u64) -> f64 {
    let mut acc = [[1f32; 8]; 10];
    let (a, b) = (
        std::hint::black_box(0.999_999f32),
        std::hint::black_box(1e-7f32),
    );
    for _ in 0..iters {
        for chain in acc.iter_mut() {
            for v in chain.iter_mut() {
                *v = v.mul_add(a, b);
            }
        }
    }
    std::hint::black_box(acc);
    iters as f64 * 10.0 * 8.0 * 2.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn probes_return_plausible_positive_numbers() {
        let bw = super::read_bandwidth_gbs(8 << 20, 1);
        assert!(bw.is_finite() && bw > 0.01, "{bw}");
        let f = super::fma_gflops(20);
        assert!(f.is_finite() && f > 0.01, "{f}");
        if let Some(i) = super::int8_gops(20) {
            assert!(i.is_finite() && i > 0.01, "{i}");
        }
    }
}
