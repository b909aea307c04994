//! Rough speed check at gpt-oss layer shapes (hidden 2880, 64/8 heads, MXFP4 experts) on a
//! random checkpoint with fewer layers/experts and a small vocabulary:
//! `cargo run --release -p gptoss-model --example decode_speed [layers] [experts]`.
//! Prints prefill and decode timings; never fails.

use std::time::Instant;

use gptoss_model::synth::{self, SynthLayout};
use gptoss_model::{Config, LogitsFor, Model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let mut c = Config::gpt_oss_20b();
    c.num_hidden_layers = args.first().copied().unwrap_or(2);
    c.num_experts = args.get(1).copied().unwrap_or(8);
    c.vocab_size = 8192;
    let dir = std::env::temp_dir().join(format!("gptoss-decode-speed-{}", std::process::id()));
    synth::write_checkpoint(&dir, &c, 1, SynthLayout::Original)?;
    let model = Model::load(&dir)?;
    let prompt: Vec<u32> = (0..128).map(|i| (i * 31 % 8000) as u32).collect();
    let mut cache = model.new_cache(1024);
    let t = Instant::now();
    model.forward(&prompt, &mut cache, LogitsFor::Last)?;
    let prefill = t.elapsed().as_secs_f64();
    let steps = 16;
    let t = Instant::now();
    for i in 0..steps {
        model.forward(&[(i * 7) as u32], &mut cache, LogitsFor::Last)?;
    }
    let decode = t.elapsed().as_secs_f64() / steps as f64;
    println!(
        "{} layers, {} experts, hidden 2880, {} threads: prefill 128 tokens {:.3} s ({:.1} tok/s); decode {:.1} ms/token ({:.1} ms/layer)",
        c.num_hidden_layers,
        c.num_experts,
        rayon::current_num_threads(),
        prefill,
        128.0 / prefill,
        decode * 1e3,
        decode * 1e3 / c.num_hidden_layers as f64
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
