//! Tokenizer throughput: `encode_ordinary` over a whole file, single thread,
//! best of N runs. Prints MB/s and tokens/s (and a checksum of the ids so the
//! Python side can be compared). Used by scripts/bench/tokenizer_speed.sh.
//!
//! cargo run --release -p gptoss-harmony --example tokenize_speed -- FILE [RUNS]

use std::time::Instant;

use gptoss_harmony::Tokenizer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: tokenize_speed FILE [RUNS]")?;
    let runs: usize = match args.next() {
        Some(r) => r.parse()?,
        None => 5,
    };
    let text = std::fs::read_to_string(&path)?;
    let tok = Tokenizer::o200k_harmony();
    // Build the shared instance and warm caches outside the timing.
    let _ = tok.encode_ordinary("warm up");
    let mut best = f64::INFINITY;
    let mut n_tokens = 0;
    let mut checksum: u64 = 0;
    for _ in 0..runs.max(1) {
        let t0 = Instant::now();
        let ids = tok.encode_ordinary(&text);
        let secs = t0.elapsed().as_secs_f64();
        best = best.min(secs);
        n_tokens = ids.len();
        checksum = ids.iter().fold(0u64, |acc, &id| {
            acc.wrapping_mul(1_000_003).wrapping_add(u64::from(id))
        });
    }
    let mb = text.len() as f64 / 1e6;
    println!(
        "rust tiktoken-rs (gptoss-harmony): {:.2} MB/s, {:.0} tokens/s ({} bytes, {} tokens, best of {} = {:.1} ms, checksum {})",
        mb / best,
        n_tokens as f64 / best,
        text.len(),
        n_tokens,
        runs.max(1),
        best * 1e3,
        checksum
    );
    Ok(())
}
