//! Throughput of the dense bf16 product at unembedding shapes ([201088, hidden], hidden 64 and
//! 128, the tiny golden and demo models) for 1 token vs a batch of tokens, called whole and in
//! the vocabulary slices `Model::forward_batch` uses:
//! `cargo run --release -p gptoss-backend --example unembed_speed [-- --batch 8 --reps 20]`.
//! Prints wall and CPU ms per call (CPU time is what to compare on a shared machine, with
//! RAYON_NUM_THREADS=1), GMAC per CPU second and the batch / single ratios; never fails.

use std::time::Instant;

use gptoss_backend::{bf16, matmul_f32_bf16w};

/// The fastest run: the one least disturbed by other processes on a shared machine.
fn fastest(v: Vec<f64>) -> f64 {
    v.into_iter().fold(f64::INFINITY, f64::min)
}

/// CPU seconds used by this process so far (user + system, all threads; 10 ms ticks), from
/// /proc/self/stat, or 0 where that file is missing. Robust to other processes sharing the
/// cores, unlike wall time.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    if f.len() < 13 {
        return 0.0;
    }
    (f[11] + f[12]) / 100.0
}

/// (fastest wall seconds, mean CPU seconds) of one product over all of `w`, run in slices of
/// `slice` output rows.
fn time(
    w: &[bf16],
    x: &[f32],
    y: &mut [f32],
    d_in: usize,
    slice: usize,
    reps: usize,
) -> (f64, f64) {
    let n = x.len() / d_in;
    let d_out = w.len() / d_in;
    let mut times = vec![];
    let cpu0 = cpu_seconds();
    for _ in 0..reps {
        let t = Instant::now();
        for o0 in (0..d_out).step_by(slice) {
            let len = slice.min(d_out - o0);
            let part = &mut y[..n * len];
            matmul_f32_bf16w(x, &w[o0 * d_in..(o0 + len) * d_in], None, part, d_in, len);
        }
        times.push(t.elapsed().as_secs_f64());
    }
    (fastest(times), (cpu_seconds() - cpu0) / reps as f64)
}

fn main() {
    let mut batch = 8usize;
    let mut reps = 15usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().and_then(|v| v.parse().ok());
        match (a.as_str(), v) {
            ("--batch", Some(v)) => batch = v,
            ("--reps", Some(v)) => reps = v,
            _ => eprintln!("ignored argument {a}"),
        }
    }
    for (d_out, d_in, reps) in [
        (201_088usize, 128usize, reps),
        (201_088, 64, reps),
        // Cache-resident weights (256 KiB): the kernels' compute rate alone.
        (1024, 128, reps * 200),
    ] {
        let w: Vec<bf16> = (0..d_in * d_out)
            .map(|i| bf16::from_f32(((i * 7919) % 1000) as f32 / 1000.0 - 0.5))
            .collect();
        let mut y = vec![0f32; batch * d_out];
        let (mut t1, mut c1) = (0.0, 0.0);
        for n in [1usize, batch] {
            let x: Vec<f32> = (0..n * d_in).map(|i| (i % 13) as f32 / 13.0).collect();
            // Whole matrix per call, and 64K floats of output per call.
            for slice in [d_out, ((1 << 16) / n).max(256)] {
                let (s, c) = time(&w, &x, &mut y, d_in, slice, reps);
                if n == 1 && slice == d_out {
                    (t1, c1) = (s, c);
                }
                println!(
                    "[{d_out}x{d_in}] n={n} slice {slice:6}: fastest {:7.3} ms ({:.2}x), cpu {:7.3} ms ({:.2}x), {:6.2} GMAC per cpu-s",
                    s * 1e3,
                    s / t1,
                    c * 1e3,
                    c / c1,
                    (n * d_in * d_out) as f64 / c / 1e9,
                );
            }
        }
    }
}
