//! Criterion micro-benchmarks of the MXFP4 expert products at real gpt-oss-20b shapes, exact f32
//! path next to the 8-bit integer activation path: `cargo bench -p gptoss-backend --bench int8`.
//! Rows: 1 (decode), 8 and 64 (an expert's share of a prefill). The int8 timing includes
//! quantizing the activations (done once per call here; the model shares it between experts).
//! Throughput is in weight bytes.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gptoss_backend::*;

const HIDDEN: usize = 2880;
const INTER: usize = 2880;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

fn mxfp4_f32_vs_int8(c: &mut Criterion) {
    let mut r = Rng(3);
    let mut g = c.benchmark_group("mxfp4_expert");
    g.sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(2));
    for (name, d_in, d_out) in [("mlp1", HIDDEN, 2 * INTER), ("mlp2", INTER, HIDDEN)] {
        let blocks: Vec<u8> = (0..d_out * d_in / 2).map(|_| r.next() as u8).collect();
        let scales: Vec<u8> = (0..d_out * d_in / 32)
            .map(|i| 120 + (i % 3) as u8)
            .collect();
        let bias: Vec<f32> = (0..d_out).map(|_| r.f()).collect();
        for n in [1usize, 8, 16, 64] {
            let x: Vec<f32> = (0..n * d_in).map(|_| r.f()).collect();
            let mut y = vec![0f32; n * d_out];
            let mut q8 = Q8Rows::new();
            g.throughput(Throughput::Bytes(
                (d_in * d_out / 2 + d_in * d_out / 32) as u64,
            ));
            g.bench_function(BenchmarkId::new(format!("{name}_f32"), n), |b| {
                b.iter(|| matmul_f32_mxfp4w(&x, &blocks, &scales, Some(&bias), &mut y, d_in, d_out))
            });
            g.bench_function(BenchmarkId::new(format!("{name}_int8"), n), |b| {
                b.iter(|| {
                    q8.quantize(&x, d_in);
                    matmul_q8_mxfp4w(&q8, &blocks, &scales, Some(&bias), &mut y, d_out)
                })
            });
        }
    }
}

criterion_group!(benches, mxfp4_f32_vs_int8);
criterion_main!(benches);
