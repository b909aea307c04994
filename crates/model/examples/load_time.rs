//! Load time, resident memory and unembedding path of a checkpoint (the zero-row detection
//! runs inside the load, so this is where its cost shows):
//! `cargo run --release -p gptoss-model --example load_time -- DIR [DIR...]`.
//! A folder with `model.safetensors.gz` (the demo model) is inflated in memory first; the
//! inflate is timed apart from `Model::from_memory`.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use gptoss_model::Model;

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for dir in std::env::args().skip(1) {
        let dir = Path::new(&dir);
        let rss0 = rss_mb();
        let gz = dir.join("model.safetensors.gz");
        let t = Instant::now();
        let model = if gz.exists() && !dir.join("model.safetensors").exists() {
            let config = std::fs::read(dir.join("config.json"))?;
            let mut bytes = vec![];
            flate2::read::GzDecoder::new(std::fs::File::open(&gz)?).read_to_end(&mut bytes)?;
            let inflate = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let m = Model::from_memory(&config, bytes)?;
            println!(
                "{}: inflate {inflate:.3} s, Model::from_memory {:.3} s",
                dir.display(),
                t.elapsed().as_secs_f64()
            );
            m
        } else {
            let m = Model::load(dir)?;
            println!(
                "{}: Model::load {:.3} s",
                dir.display(),
                t.elapsed().as_secs_f64()
            );
            m
        };
        let path = match model.unembedding_nonzero_rows() {
            Some(k) => format!("zero-row skipping, {k} nonzero rows"),
            None => "dense unembedding".into(),
        };
        println!(
            "  vocab {}, hidden {}: {path}; RSS {rss0:.0} -> {:.0} MB",
            model.config().vocab_size,
            model.config().hidden_size,
            rss_mb()
        );
    }
    Ok(())
}
