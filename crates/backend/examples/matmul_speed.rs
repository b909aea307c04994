//! Rough kernel throughput at gpt-oss shapes (one token and 32 tokens):
//! `cargo run --release -p gptoss-backend --example matmul_speed`. Prints numbers; never fails.

use std::time::Instant;

use gptoss_backend::{bf16, matmul_f32_bf16w, matmul_f32_mxfp4w};

fn main() {
    let (d_in, d_out) = (2880usize, 5760usize);
    let w: Vec<bf16> = (0..d_in * d_out)
        .map(|i| bf16::from_f32(((i * 7919) % 1000) as f32 / 1000.0 - 0.5))
        .collect();
    let blocks: Vec<u8> = (0..d_in * d_out / 2).map(|i| (i * 31) as u8).collect();
    let scales: Vec<u8> = (0..d_in * d_out / 32)
        .map(|i| 120 + (i % 5) as u8)
        .collect();
    for n in [1usize, 32] {
        let x: Vec<f32> = (0..n * d_in).map(|i| (i % 13) as f32 / 13.0).collect();
        let mut y = vec![0f32; n * d_out];
        let reps = if n == 1 { 20 } else { 2 };
        let flops = 2.0 * (n * d_in * d_out) as f64 * reps as f64;
        let t = Instant::now();
        for _ in 0..reps {
            matmul_f32_bf16w(&x, &w, None, &mut y, d_in, d_out);
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "bf16  n={n:2} [{d_out}x{d_in}]: {:.2} ms/call, {:.2} GFLOP/s",
            s * 1e3 / reps as f64,
            flops / s / 1e9
        );
        let t = Instant::now();
        for _ in 0..reps {
            matmul_f32_mxfp4w(&x, &blocks, &scales, None, &mut y, d_in, d_out);
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "mxfp4 n={n:2} [{d_out}x{d_in}]: {:.2} ms/call, {:.2} GFLOP/s",
            s * 1e3 / reps as f64,
            flops / s / 1e9
        );
    }
}
