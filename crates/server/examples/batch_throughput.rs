//! Aggregate decode throughput of 1 request vs B concurrent requests (continuous batching),
//! measured twice, with the two sizes interleaved round by round so background load hits both:
//!
//! * `engine`: through the scheduler (`Engine`, what `gpt-oss serve` runs minus HTTP): one
//!   request of N tokens alone, then B requests of N tokens submitted together; tok/s = tokens
//!   generated / wall time (prompts are a few tokens, so this is decode time);
//! * `model`: `Model::forward_batch` steps straight on B caches vs 1 cache.
//!
//! ```text
//! cargo run --release -p gptoss-server --example batch_throughput -- \
//!     --model assets/demo-model [--model testdata/model/real-vocab/original] \
//!     [--batch 8] [--tokens 64] [--rounds 3] [--temperature 1.0] [--profile 8] [--dense-unembed]
//! ```
//! `--temperature` makes the engine requests sample (seeded) instead of greedy decoding;
//! `--dense-unembed` turns off the unembedding's zero-row skipping (same logits, the dense
//! product over every row: the before/after comparison for the demo model);
//! `--profile B` runs only model-level steps of B rows (for `perf record`).
//! A model folder holds config.json and model.safetensors (or model.safetensors.gz, inflated in
//! memory), or is anything `Model::load` accepts. `--model synth20b:L` builds a random model in
//! memory with gpt-oss-20b's shapes but L layers (real-size matrices; about 1.6 GB + 0.45 GB per
//! layer, 3x that while building). Prints the load average with every round, the medians and
//! the median of the per-round ratios.

use std::error::Error;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use gptoss_engine::SamplingParams;
use gptoss_model::{DecodeRow, LogitsFor, Model};
use gptoss_server::scheduler::{Engine, GenerationRequest, SchedulerConfig, TokenEvent};

struct Args {
    models: Vec<PathBuf>,
    batch: usize,
    tokens: usize,
    rounds: usize,
    /// `--profile B`: only model-level steps of B rows, for `perf record`.
    profile: Option<usize>,
    /// Engine sampling temperature; 0 = greedy (seeded sampling otherwise).
    temperature: f32,
    /// `--dense-unembed`: `Model::disable_zero_row_skipping`.
    dense_unembed: bool,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut args = Args {
        models: vec![],
        batch: 8,
        tokens: 64,
        rounds: 3,
        profile: None,
        temperature: 0.0,
        dense_unembed: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => args.models.push(PathBuf::from(value()?)),
            "--batch" => args.batch = value()?.parse()?,
            "--tokens" => args.tokens = value()?.parse()?,
            "--rounds" => args.rounds = value()?.parse()?,
            "--profile" => args.profile = Some(value()?.parse()?),
            "--temperature" => args.temperature = value()?.parse()?,
            "--dense-unembed" => args.dense_unembed = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if args.models.is_empty() {
        args.models.push(PathBuf::from("assets/demo-model"));
    }
    if args.batch == 0 || args.tokens == 0 || args.rounds == 0 {
        return Err("--batch, --tokens and --rounds must be at least 1".into());
    }
    Ok(args)
}

fn load(path: &Path) -> Result<Model, Box<dyn Error>> {
    if let Some(layers) = path.to_str().and_then(|p| p.strip_prefix("synth20b:")) {
        let mut config = gptoss_model::Config::gpt_oss_20b();
        config.num_hidden_layers = layers.parse()?;
        let (config_json, bytes) = gptoss_model::synth::original_bytes(&config, 1);
        return Ok(Model::from_memory(&config_json, bytes)?);
    }
    let gz = path.join("model.safetensors.gz");
    if gz.exists() && !path.join("model.safetensors").exists() {
        let config = std::fs::read(path.join("config.json"))?;
        let mut bytes = vec![];
        flate2::read::GzDecoder::new(std::fs::File::open(&gz)?).read_to_end(&mut bytes)?;
        return Ok(Model::from_memory(&config, bytes)?);
    }
    Ok(Model::load(path)?)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn prompt(i: usize, vocab: usize) -> Vec<u32> {
    (0..12)
        .map(|p| ((i * 7919 + p * 104_729 + 1000) % vocab) as u32)
        .collect()
}

/// Tokens per second of `n` concurrent requests of `tokens` each through the scheduler.
fn engine_round(engine: &Engine, n: usize, tokens: usize, vocab: usize, temperature: f32) -> f64 {
    let t0 = Instant::now();
    let handles: Vec<_> = (0..n)
        .filter_map(|i| {
            engine
                .submit(GenerationRequest {
                    prompt: prompt(i, vocab),
                    sampling: SamplingParams {
                        temperature,
                        seed: Some(i as u64),
                        ..SamplingParams::default()
                    },
                    max_tokens: Some(tokens),
                    stop_tokens: vec![],
                    constraint: None,
                    logprobs: None,
                    lora: None,
                })
                .ok()
        })
        .collect();
    let mut generated = 0usize;
    for mut h in handles {
        while let Some(ev) = h.events.blocking_recv() {
            match ev {
                TokenEvent::Token(_) => generated += 1,
                _ => break,
            }
        }
    }
    generated as f64 / t0.elapsed().as_secs_f64()
}

/// Tokens per second of `steps` batched decode steps over `n` caches at depth 12.
fn model_round(model: &Model, n: usize, steps: usize) -> Result<f64, Box<dyn Error>> {
    let vocab = model.config().vocab_size;
    let mut caches = vec![];
    let mut logits = vec![Vec::new(); n];
    for i in 0..n {
        let mut c = model.new_cache(64 + steps);
        model.forward(&prompt(i, vocab), &mut c, LogitsFor::Last)?;
        caches.push(c);
    }
    let t0 = Instant::now();
    for step in 0..steps {
        let mut rows: Vec<DecodeRow<'_>> = caches
            .iter_mut()
            .zip(logits.iter_mut())
            .enumerate()
            .map(|(i, (cache, logits))| DecodeRow {
                token: ((i * 31 + step * 17) % vocab) as u32,
                cache,
                logits,
            })
            .collect();
        for r in model.forward_batch(&mut rows) {
            r?;
        }
    }
    Ok((n * steps) as f64 / t0.elapsed().as_secs_f64())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    println!(
        "batch_throughput: batch {} vs 1, {} tokens per request, {} rounds, {} rayon threads",
        args.batch,
        args.tokens,
        args.rounds,
        rayon_threads()
    );
    for path in &args.models {
        let mut model = load(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if args.dense_unembed {
            model.disable_zero_row_skipping();
        }
        let model = std::sync::Arc::new(model);
        let vocab = model.config().vocab_size;
        let unembed = match model.unembedding_nonzero_rows() {
            Some(k) => format!("zero-row skipping: {k} nonzero rows"),
            None => "dense unembedding".into(),
        };
        println!("model {} (vocab {vocab}, {unembed})", path.display());
        if let Some(rows) = args.profile {
            for _ in 0..args.rounds {
                let tps = model_round(&model, rows, args.tokens)?;
                println!(
                    "  model {rows} rows: {tps:7.1} tok/s | loadavg {}",
                    loadavg()
                );
            }
            continue;
        }
        let engine = Engine::spawn(
            model.clone(),
            SchedulerConfig {
                max_concurrency: args.batch,
                max_queue: 4 * args.batch,
                context_tokens: 64 + args.tokens,
            },
        )?;
        // Warm-up: allocates the slots' caches and the scratch buffers.
        engine_round(&engine, args.batch, 4, vocab, args.temperature);
        model_round(&model, args.batch, 2)?;
        let (mut e1, mut eb, mut m1, mut mb) = (vec![], vec![], vec![], vec![]);
        // Decode rows and steps of the B-request rounds only (the 1-request rounds run 1 row).
        let (mut batch_rows, mut batch_steps) = (0u64, 0u64);
        for round in 0..args.rounds {
            let before = loadavg();
            e1.push(engine_round(
                &engine,
                1,
                args.tokens,
                vocab,
                args.temperature,
            ));
            let before_b = engine.metrics();
            eb.push(engine_round(
                &engine,
                args.batch,
                args.tokens,
                vocab,
                args.temperature,
            ));
            let after_b = engine.metrics();
            batch_rows += after_b.decode_rows_total - before_b.decode_rows_total;
            batch_steps += after_b.decode_steps_total - before_b.decode_steps_total;
            m1.push(model_round(&model, 1, args.tokens)?);
            mb.push(model_round(&model, args.batch, args.tokens)?);
            let i = round;
            println!(
                "  round {}: engine 1: {:7.1} tok/s  {}: {:7.1} tok/s ({:.2}x) | model 1: {:7.1} tok/s  {}: {:7.1} tok/s ({:.2}x) | loadavg {before} -> {}",
                round + 1,
                e1[i],
                args.batch,
                eb[i],
                eb[i] / e1[i],
                m1[i],
                args.batch,
                mb[i],
                mb[i] / m1[i],
                loadavg()
            );
        }
        let med = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        // Each round's own ratio pairs two measurements taken moments apart, under about the
        // same background load; their median is the steadier figure on a shared machine.
        let ratio = |b: &[f64], one: &[f64]| med(b.iter().zip(one).map(|(b, o)| b / o).collect());
        let (re, rm) = (ratio(&eb, &e1), ratio(&mb, &m1));
        let (e1, eb, m1, mb) = (med(e1), med(eb), med(m1), med(mb));
        println!(
            "  median: engine 1 request {e1:.1} tok/s, {} requests {eb:.1} tok/s aggregate: {:.2}x | model {m1:.1} vs {mb:.1} tok/s: {:.2}x",
            args.batch,
            eb / e1,
            mb / m1
        );
        println!("  median of the per-round ratios: engine {re:.2}x | model {rm:.2}x");
        println!(
            "  engine, {}-request rounds: mean decode batch {:.2} ({batch_rows} rows in {batch_steps} steps)",
            args.batch,
            batch_rows as f64 / batch_steps.max(1) as f64,
        );
    }
    Ok(())
}

fn rayon_threads() -> String {
    std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| {
        std::thread::available_parallelism().map_or("1".into(), |n| n.get().to_string())
    })
}
