//! Criterion micro-benchmarks of every hot kernel at real gpt-oss-20b shapes, fast path next to
//! its scalar oracle: `cargo bench -p gptoss-backend` (add a filter, e.g. `-- mxfp4`).
//! Random inputs; throughput is reported in weight bytes (matmuls) or elements.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gptoss_backend::*;

const HIDDEN: usize = 2880;
const INTER: usize = 2880;
const Q_DIM: usize = 64 * 64;
const KV_DIM: usize = 8 * 64;

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
    fn vf(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f()).collect()
    }
    fn vb(&mut self, n: usize) -> Vec<bf16> {
        (0..n).map(|_| bf16::from_f32(self.f() * 0.05)).collect()
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn configure(c: &mut Criterion) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group("kernels");
    g.sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(2));
    g
}

fn bf16_matmul(c: &mut Criterion) {
    let mut r = Rng(1);
    let mut g = configure(c);
    // (name, d_in, d_out): fused qkv, attention out, a 32k-row slice of the unembedding.
    for (name, d_in, d_out) in [
        ("qkv", HIDDEN, Q_DIM + 2 * KV_DIM),
        ("attn_out", Q_DIM, HIDDEN),
        ("unembed_32k", HIDDEN, 32768),
    ] {
        let w = r.vb(d_in * d_out);
        for n in [1usize, 64] {
            let x = r.vf(n * d_in);
            let mut y = vec![0f32; n * d_out];
            g.throughput(Throughput::Bytes((2 * d_in * d_out) as u64));
            g.bench_function(BenchmarkId::new(format!("bf16_{name}_fast"), n), |b| {
                b.iter(|| matmul_f32_bf16w(&x, &w, None, &mut y, d_in, d_out))
            });
            if n == 1 {
                g.bench_function(BenchmarkId::new(format!("bf16_{name}_scalar"), n), |b| {
                    b.iter(|| matmul_f32_bf16w_scalar(&x, &w, None, &mut y, d_in, d_out))
                });
            }
        }
    }
}

/// 8-bit weights (`--weights-q8`) next to the bf16 product they replace, at the 20b shapes of
/// the matrices they quantize: fused qkv, attention out, and the whole unembedding (one row,
/// the decode step's largest read). The q8 timing includes quantizing the activations.
fn q8w_matmul(c: &mut Criterion) {
    let mut r = Rng(5);
    let mut g = configure(c);
    for (name, d_in, d_out, ns) in [
        ("qkv", HIDDEN, Q_DIM + 2 * KV_DIM, &[1usize, 64][..]),
        ("attn_out", Q_DIM, HIDDEN, &[1, 64][..]),
        ("unembed", HIDDEN, 201_088, &[1][..]),
    ] {
        let w = r.vb(d_in * d_out);
        let Ok(wq) = Q8Weights::from_bf16(&w, d_in, d_out) else {
            panic!("q8w bench: {d_in} is not a multiple of 32");
        };
        for &n in ns {
            let x = r.vf(n * d_in);
            let mut y = vec![0f32; n * d_out];
            let mut xq = Q8Rows::new();
            g.throughput(Throughput::Bytes((2 * d_in * d_out) as u64));
            g.bench_function(BenchmarkId::new(format!("q8w_{name}_bf16"), n), |b| {
                b.iter(|| matmul_f32_bf16w(&x, &w, None, &mut y, d_in, d_out))
            });
            g.throughput(Throughput::Bytes(wq.bytes() as u64));
            g.bench_function(BenchmarkId::new(format!("q8w_{name}_q8"), n), |b| {
                b.iter(|| {
                    xq.quantize(&x, d_in);
                    matmul_q8_q8w(&xq, &wq, None, &mut y)
                })
            });
        }
    }
}

fn mxfp4_matmul(c: &mut Criterion) {
    let mut r = Rng(2);
    let mut g = configure(c);
    for (name, d_in, d_out) in [("mlp1", HIDDEN, 2 * INTER), ("mlp2", INTER, HIDDEN)] {
        let blocks = r.bytes(d_out * d_in / 2);
        let scales: Vec<u8> = (0..d_out * d_in / 32)
            .map(|i| 120 + (i % 3) as u8)
            .collect();
        let bias = r.vf(d_out);
        // 1 token (decode) and 64 tokens (a typical expert's share of a 512-token prefill).
        for n in [1usize, 64] {
            let x = r.vf(n * d_in);
            let mut y = vec![0f32; n * d_out];
            g.throughput(Throughput::Bytes((blocks.len() + scales.len()) as u64));
            g.bench_function(BenchmarkId::new(format!("mxfp4_{name}_fast"), n), |b| {
                b.iter(|| matmul_f32_mxfp4w(&x, &blocks, &scales, Some(&bias), &mut y, d_in, d_out))
            });
            g.bench_function(BenchmarkId::new(format!("mxfp4_{name}_scalar"), n), |b| {
                b.iter(|| {
                    matmul_f32_mxfp4w_scalar(&x, &blocks, &scales, Some(&bias), &mut y, d_in, d_out)
                })
            });
        }
    }
}

fn attention(c: &mut Criterion) {
    let mut r = Rng(3);
    let mut g = configure(c);
    let p = SdpaParams {
        n_heads: 64,
        n_kv_heads: 8,
        head_dim: 64,
        sm_scale: 0.125,
        window: None,
    };
    for depth in [128usize, 4096] {
        let page_len = 256;
        let pages = depth.div_ceil(page_len);
        let kp: Vec<Vec<f32>> = (0..pages).map(|_| r.vf(page_len * KV_DIM)).collect();
        let vp: Vec<Vec<f32>> = (0..pages).map(|_| r.vf(page_len * KV_DIM)).collect();
        let past = KvPages {
            k_pages: &kp,
            v_pages: &vp,
            page_len,
            ring_len: None,
        };
        let (q, k, v, s) = (r.vf(Q_DIM), r.vf(KV_DIM), r.vf(KV_DIM), r.vf(64));
        let mut out = vec![0f32; Q_DIM];
        g.throughput(Throughput::Elements(depth as u64));
        g.bench_function(BenchmarkId::new("sdpa_decode_fast", depth), |b| {
            b.iter(|| sdpa_sinks_f32(&q, &k, &v, &past, depth, &s, &p, &mut out))
        });
        g.bench_function(BenchmarkId::new("sdpa_decode_scalar", depth), |b| {
            b.iter(|| sdpa_sinks_f32_scalar(&q, &k, &v, &past, depth, &s, &p, &mut out))
        });
    }
}

fn small_ops(c: &mut Criterion) {
    let mut r = Rng(4);
    let mut g = configure(c);
    let x = r.vf(HIDDEN);
    let scale = r.vf(HIDDEN);
    let mut y = vec![0f32; HIDDEN];
    g.throughput(Throughput::Elements(HIDDEN as u64));
    g.bench_function("rmsnorm_2880", |b| {
        b.iter(|| rmsnorm_f32(&x, &scale, 1e-5, &mut y))
    });
    let u = r.vf(2 * INTER);
    let mut act = vec![0f32; INTER];
    g.bench_function("swiglu_2880", |b| {
        b.iter(|| swiglu_clamp_f32(&u, 7.0, SWIGLU_ALPHA, &mut act))
    });
    let logits = r.vf(32);
    let (mut idx, mut w) = ([0usize; 4], [0f32; 4]);
    g.bench_function("topk4_of_32", |b| {
        b.iter(|| topk_softmax_f32(&logits, &mut idx, &mut w))
    });
    let rope = YarnRope::new(64, 150000.0, 32.0, 4096.0, 1.0, 32.0, false);
    let (mut cos, mut sin) = (vec![0f32; 32], vec![0f32; 32]);
    rope.cos_sin(1000, &mut cos, &mut sin);
    let mut q = r.vf(Q_DIM);
    g.bench_function("rope_q_one_token", |b| {
        b.iter(|| rope_yarn_f32(&mut q, 64, 64, &cos, &sin))
    });
}

criterion_group!(
    benches,
    bf16_matmul,
    q8w_matmul,
    mxfp4_matmul,
    attention,
    small_ops
);
criterion_main!(benches);
