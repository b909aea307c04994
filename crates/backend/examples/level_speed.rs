//! Decode-shaped throughput of the kernel level that runs (`GPT_OSS_KERNELS` picks it), on
//! weights far larger than the caches: the dense bf16 product of a [201088, 2880] matrix (the
//! 20b unembedding, 1.16 GB) and int8 × MXFP4 products over 32 distinct [5760, 2880] experts
//! (0.5 GB), for 1 and 8 tokens; and a prefill-shaped dense product (512 tokens). Prints GB/s of weights read; never fails:
//! `GPT_OSS_KERNELS=avx2 cargo run --release -p gptoss-backend --example level_speed`.

use std::time::Instant;

use gptoss_backend::{bf16, kernel_summary, matmul_f32_bf16w, matmul_q8_mxfp4w, Q8Rows};

fn best<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    println!("{}", kernel_summary());
    let (h, v) = (2880usize, 201_088usize);
    let w: Vec<bf16> = (0..h * v)
        .map(|i| bf16::from_f32(((i * 7919) % 1000) as f32 / 1000.0 - 0.5))
        .collect();
    let (e, d_out) = (32usize, 5760usize);
    let blocks: Vec<u8> = (0..e * d_out * h / 2)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let scales: Vec<u8> = (0..e * d_out * h / 32)
        .map(|i| 118 + (i % 8) as u8)
        .collect();
    let (rb, rs) = (d_out * h / 2, d_out * h / 32);
    // Best time of the int8 products of `n` tokens against all 32 experts.
    let experts = |n: usize| {
        let x: Vec<f32> = (0..n * h).map(|i| (i % 17) as f32 / 17.0 - 0.5).collect();
        let mut q = Q8Rows::new();
        q.quantize(&x, h);
        let mut y = vec![0f32; n * d_out];
        best(3, || {
            for k in 0..e {
                let (b, s) = (&blocks[k * rb..(k + 1) * rb], &scales[k * rs..(k + 1) * rs]);
                matmul_q8_mxfp4w(&q, b, s, None, &mut y, d_out);
            }
        })
    };
    // `LEVEL_SPEED=int8` runs only the int8 expert products (quick kernel iterations).
    let dense = std::env::var("LEVEL_SPEED").map_or(true, |v| v != "int8");
    // Prefill-shaped: the query projection of a 512-token prompt.
    if dense {
        let (d_in, d_out, n) = (h, 4096usize, 512usize);
        let x: Vec<f32> = (0..n * d_in)
            .map(|i| (i % 13) as f32 / 13.0 - 0.5)
            .collect();
        let mut y = vec![0f32; n * d_out];
        let wq = &w[..d_in * d_out];
        let t = best(3, || matmul_f32_bf16w(&x, wq, None, &mut y, d_in, d_out));
        println!(
            "dense bf16 [{d_out}, {d_in}] n={n}: {:.1} ms, {:.0} GFLOP/s",
            t * 1e3,
            (2 * n * d_in * d_out) as f64 / t / 1e9
        );
    }
    for n in [1usize, 8] {
        let x: Vec<f32> = (0..n * h).map(|i| (i % 17) as f32 / 17.0 - 0.5).collect();
        if dense {
            let mut y = vec![0f32; n * v];
            let t = best(3, || matmul_f32_bf16w(&x, &w, None, &mut y, h, v));
            println!(
                "dense bf16 [{v}, {h}] n={n}: {:.1} ms, {:.1} GB/s",
                t * 1e3,
                (2 * h * v) as f64 / t / 1e9
            );
        }
        let t = experts(n);
        println!(
            "int8 x mxfp4 32 x [{d_out}, {h}] n={n}: {:.1} ms, {:.1} GB/s",
            t * 1e3,
            (e * (rb + rs)) as f64 / t / 1e9
        );
    }
    // Prefill-shaped: 64 tokens per expert (a 512-token prompt routes ~64 to each of 32).
    {
        let n = 64usize;
        let t = experts(n);
        println!(
            "int8 x mxfp4 32 x [{d_out}, {h}] n={n}: {:.1} ms, {:.0} GOP/s",
            t * 1e3,
            (2 * e * n * d_out * h) as f64 / t / 1e9
        );
    }
}
