//! `gpt-oss bench`: prefill and decode speed of a checkpoint on this machine, printed next to the
//! machine's own limits measured in the same run (read bandwidth, f32 FMA throughput), the bytes
//! one decode step must read and the FLOPs one prefill token needs, so every speed is also a
//! fraction of what the hardware allows. Tokens are random ids: speed does not depend on text.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use gptoss_engine::language_model::{DecodeRow, LanguageModel};
use gptoss_model::{Config, LogitsFor, Model};

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint folder (e.g. one written by `gpt-oss synth`).
    #[arg(long, value_name = "DIR", required_unless_present = "synth")]
    pub model: Option<PathBuf>,
    /// Random full-size weights made in memory instead of a checkpoint (GPU only: the weights
    /// are generated a layer at a time and uploaded, no file is written).
    #[arg(long, value_enum, conflicts_with = "model")]
    pub synth: Option<crate::commands::synth::Shape>,
    #[command(flatten)]
    pub device: crate::device::DeviceArg,
    /// Concurrent sequences for the batched decode measurement (0 skips it; on the CPU each
    /// generates at most `--generate-deep` tokens, batched decode being several times slower
    /// per step).
    #[arg(long, default_value_t = 8)]
    pub streams: usize,
    /// Prompt length for the prefill measurement.
    #[arg(long, default_value_t = 512)]
    pub prompt: usize,
    /// Tokens generated per decode repetition at depth 0.
    #[arg(long, default_value_t = 128)]
    pub generate: usize,
    /// Tokens generated per decode repetition at depths > 0 (each is slower).
    #[arg(long, default_value_t = 32)]
    pub generate_deep: usize,
    /// Comma-separated cache depths at which decode speed is measured.
    #[arg(long, default_value = "0,4096", value_delimiter = ',')]
    pub depth: Vec<usize>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Repetitions of each measurement (median and spread are reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Context the KV cache is sized for (peak memory is reported for this).
    #[arg(long, default_value_t = 8192)]
    pub context: usize,
    /// Skip the prefill measurement.
    #[arg(long)]
    pub no_prefill: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// MXFP4 expert products: int8 (fast; the default where the CPU has AVX2) or exact (f32).
    #[arg(long, value_enum)]
    pub experts: Option<crate::model_source::Experts>,
    /// Quantize the attention and unembedding weights to 8 bits at load (as `run --weights-q8`);
    /// the bytes per decode step are counted accordingly.
    #[arg(long)]
    pub weights_q8: bool,
    /// A PEFT LoRA adapter folder applied at run time (CPU only), to measure what it costs.
    #[arg(long, value_name = "DIR", conflicts_with = "synth")]
    pub lora: Option<PathBuf>,
}

/// Bytes one decode step reads at `depth` and FLOPs per prefill token, from the model's shapes
/// (dense tensors taken as bf16 and experts as MXFP4, as in the released checkpoints; with
/// `weights_q8` the attention projections and the unembedding as Q8_0: 1 byte per weight plus
/// an f32 scale per 32).
pub(crate) struct Costs {
    weight_bytes: f64,
    kv_bytes_per_depth_pos: f64,
    flops_per_token_no_attn: f64,
    attn_flops_per_ctx_pos: f64,
    unembed_flops: f64,
    /// The expert products' share of `flops_per_token_no_attn`.
    expert_flops_per_token: f64,
}

pub(crate) fn costs(c: &Config, weights_q8: bool) -> Costs {
    let (h, e, k, i, v) = (
        c.hidden_size as f64,
        c.num_experts as f64,
        c.experts_per_token as f64,
        c.intermediate_size as f64,
        c.vocab_size as f64,
    );
    let (qd, kvd) = (c.q_dim() as f64, c.kv_dim() as f64);
    let layers = c.num_hidden_layers as f64;
    // MXFP4: half a byte per weight plus one scale byte per 32.
    let mx = |n: f64| n / 2.0 + n / 32.0;
    let expert_params = 2.0 * i * h + h * i;
    // Bytes per weight of the matrices `--weights-q8` quantizes.
    let dense = if weights_q8 { 1.0 + 4.0 / 32.0 } else { 2.0 };
    let attn_params = (qd + 2.0 * kvd) * h + h * qd;
    let per_layer_bytes = k * mx(expert_params)
        + k * 4.0 * (2.0 * i + h) // expert biases (bf16 read as needed)
        + dense * attn_params
        + 2.0 * e * h;
    Costs {
        weight_bytes: layers * per_layer_bytes + dense * v * h + 2.0 * h,
        // f32 K and V per cached position, full-attention layers only (rings are capped).
        kv_bytes_per_depth_pos: 2.0 * 4.0 * kvd,
        flops_per_token_no_attn: layers * 2.0 * (attn_params + e * h + k * expert_params),
        expert_flops_per_token: layers * 2.0 * k * expert_params,
        attn_flops_per_ctx_pos: 2.0 * 2.0 * qd,
        unembed_flops: 2.0 * v * h,
    }
}

impl Costs {
    pub(crate) fn decode_bytes(&self, c: &Config, depth: usize) -> f64 {
        let full = (0..c.num_hidden_layers)
            .filter(|&l| !c.is_sliding(l))
            .count() as f64;
        let sliding = c.num_hidden_layers as f64 - full;
        let window = depth.min(c.sliding_window) as f64;
        self.weight_bytes + self.kv_bytes_per_depth_pos * (full * depth as f64 + sliding * window)
    }

    /// Average FLOPs per token of a `n`-token prefill from an empty cache (logits of the last
    /// position only, as generation does).
    pub(crate) fn prefill_flops_per_token(&self, c: &Config, n: usize) -> f64 {
        let mut attn_ctx = 0f64;
        for l in 0..c.num_hidden_layers {
            for t in 0..n {
                let ctx = if c.is_sliding(l) {
                    (t + 1).min(c.sliding_window)
                } else {
                    t + 1
                };
                attn_ctx += ctx as f64;
            }
        }
        self.flops_per_token_no_attn
            + self.attn_flops_per_ctx_pos * attn_ctx / n as f64
            + self.unembed_flops / n as f64
    }
}

/// Aggregate decode speed of `streams` sequences stepped together for `tokens` steps (greedy
/// continuations of random first tokens), every step one `forward_batch` over all of them.
pub(crate) fn batched_decode_tps<M: LanguageModel>(
    model: &M,
    streams: usize,
    tokens: usize,
    context: usize,
) -> anyhow::Result<f64> {
    let mut caches: Vec<_> = (0..streams).map(|_| model.new_cache(context)).collect();
    let mut outs: Vec<Vec<f32>> = vec![Vec::new(); streams];
    let mut toks = random_tokens(streams, model.vocab_size(), 11);
    let t = Instant::now();
    for _ in 0..tokens {
        let mut rows: Vec<DecodeRow<'_, M::Cache>> = caches
            .iter_mut()
            .zip(outs.iter_mut())
            .zip(&toks)
            .map(|((cache, logits), &token)| DecodeRow {
                token,
                cache,
                logits,
            })
            .collect();
        for r in model.forward_batch(&mut rows) {
            r.map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        for (tok, o) in toks.iter_mut().zip(&outs) {
            *tok = argmax(o);
        }
    }
    Ok((streams * tokens) as f64 / t.elapsed().as_secs_f64())
}

/// Median, min and max.
pub(crate) fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let med = if s.is_empty() {
        f64::NAN
    } else if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    };
    (
        med,
        s.first().copied().unwrap_or(f64::NAN),
        s.last().copied().unwrap_or(f64::NAN),
    )
}

pub(crate) fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Peak resident set (VmHWM) in bytes, if the OS reports it.
fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub(crate) fn commit() -> String {
    if let Some(c) = option_env!("GPTOSS_COMMIT") {
        return c.to_string();
    }
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let hash = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let dirty = std::process::Command::new("git")
                .args(["diff", "--quiet", "HEAD"])
                .status()
                .map(|s| !s.success())
                .unwrap_or(false);
            if dirty {
                format!("{hash}+dirty")
            } else {
                hash
            }
        }
        _ => "unknown".to_string(),
    }
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) fn random_tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % vocab as u64) as u32
        })
        .collect()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.prompt == 0 && !args.no_prefill {
        bail!("--prompt must be at least 1 (or pass --no-prefill)");
    }
    if args.reps == 0 {
        bail!("--reps must be at least 1");
    }
    if let Some(t) = args.threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .context("cannot set up the thread pool")?;
    }
    let on_gpu = match args.device.device {
        crate::device::Device::Gpu(_) => true,
        crate::device::Device::Cpu => false,
        crate::device::Device::Auto => gptoss_gpu::list_adapters().iter().any(|a| !a.is_software),
    };
    if on_gpu {
        if args.lora.is_some() {
            bail!("--lora is only available on the CPU (use --device cpu)");
        }
        return super::bench_gpu::run(&args);
    }
    if args.synth.is_some() {
        bail!(
            "--synth makes its weights on a GPU (--device gpu); for the CPU, write a checkpoint \
             with `gpt-oss synth` and pass --model"
        );
    }
    let Some(model_dir) = args.model.clone() else {
        bail!("--model DIR is required");
    };
    let threads = rayon::current_num_threads();
    let say = |s: String| {
        if !args.json {
            eprintln!("{s}");
        }
    };
    let t_load = Instant::now();
    let mut model = Model::load(&model_dir)
        .with_context(|| format!("cannot load the model in {}", model_dir.display()))?;
    crate::model_source::apply_experts(&mut model, args.experts);
    let load_secs = t_load.elapsed().as_secs_f64();
    let t_q8 = Instant::now();
    crate::model_source::apply_weights_q8(&mut model, args.weights_q8)?;
    let q8_secs = t_q8.elapsed().as_secs_f64();
    crate::model_source::apply_lora(&mut model, args.lora.as_deref())?;
    let lora_macs = model
        .lora()
        .map(|l| l.extra_macs_per_token(model.config().experts_per_token));
    let c = model.config().clone();
    let max_depth = args.depth.iter().copied().max().unwrap_or(0);
    let context = args
        .context
        .max(max_depth + args.generate.max(args.generate_deep) + 1)
        .max(args.prompt + 1);
    if context > c.max_context() {
        bail!(
            "the benchmark needs {context} positions but the model's context is {}",
            c.max_context()
        );
    }
    say(format!(
        "loaded {} in {:.1} s{}; {} threads; {}; expert products: {:?}; 8-bit weights: {}",
        model_dir.display(),
        load_secs,
        if args.weights_q8 {
            format!(", then quantized in {q8_secs:.1} s")
        } else {
            String::new()
        },
        threads,
        gptoss_backend::kernel_summary(),
        model.expert_path(),
        model.weights_q8()
    ));
    let cost = costs(&c, model.weights_q8());

    // Prefill.
    let mut prefill_tps = vec![];
    if !args.no_prefill {
        let prompt = random_tokens(args.prompt, c.vocab_size, 1);
        for rep in 0..args.reps {
            let mut cache = model.new_cache(context);
            let t = Instant::now();
            model.forward(&prompt, &mut cache, LogitsFor::Last)?;
            let tps = args.prompt as f64 / t.elapsed().as_secs_f64();
            say(format!(
                "prefill {} tokens, rep {}: {tps:.2} tok/s",
                args.prompt,
                rep + 1
            ));
            prefill_tps.push(tps);
        }
    }

    // Decode at each depth: per-token latencies over all repetitions.
    let mut decode = vec![];
    for &depth in &args.depth {
        let n_gen = if depth == 0 {
            args.generate
        } else {
            args.generate_deep
        };
        if n_gen == 0 {
            continue;
        }
        let mut per_rep = vec![];
        for rep in 0..args.reps {
            let mut cache = model.new_cache(context);
            cache.fill_synthetic(depth);
            let mut tok = random_tokens(1, c.vocab_size, 7 + rep as u64)[0];
            let t = Instant::now();
            for _ in 0..n_gen {
                let logits = model.forward(&[tok], &mut cache, LogitsFor::Last)?;
                tok = argmax(&logits);
            }
            let tps = n_gen as f64 / t.elapsed().as_secs_f64();
            say(format!(
                "decode at depth {depth}, {n_gen} tokens, rep {}: {tps:.2} tok/s",
                rep + 1
            ));
            per_rep.push(tps);
        }
        decode.push((depth, per_rep));
    }
    // Batched decode: `streams` sequences one token each per step, every product over all
    // rows at once (what `serve` does with concurrent requests).
    let mut streams_tps = None;
    let stream_tokens = args.generate.min(args.generate_deep.max(1));
    if args.streams > 1 && stream_tokens > 0 {
        let tps = batched_decode_tps(&model, args.streams, stream_tokens, context)?;
        say(format!(
            "{} streams, {stream_tokens} tokens each: {tps:.2} tok/s in all",
            args.streams
        ));
        streams_tps = Some(tps);
    }
    let peak_rss = peak_rss_bytes();

    // Hardware limits, measured after the model runs (so they do not inflate the peak above).
    say("measuring read bandwidth and FMA throughput...".into());
    let bw = gptoss_backend::probe::read_bandwidth_gbs(1 << 30, 3);
    let fma = gptoss_backend::probe::fma_gflops(400);
    let int8 = gptoss_backend::probe::int8_gops(400);
    let level = gptoss_backend::kernel_level();

    let (p_med, p_min, p_max) = stats(&prefill_tps);
    let prefill_flops = cost.prefill_flops_per_token(&c, args.prompt.max(1));
    let prefill_gflops = p_med * prefill_flops / 1e9;
    // The prefill limit of the kernels that ran: expert products at the int8 dot peak when
    // the int8 path runs, everything else at the f32 FMA peak.
    let expert_flops = match (int8, model.expert_path()) {
        (Some(_), gptoss_model::ExpertPath::Int8) => cost.expert_flops_per_token,
        _ => 0.0,
    };
    let limit_secs_per_token =
        expert_flops / (int8.unwrap_or(1.0) * 1e9) + (prefill_flops - expert_flops) / (fma * 1e9);
    let prefill_limit_tps = 1.0 / limit_secs_per_token;
    let mut decode_tps = serde_json::Map::new();
    let mut decode_spread = serde_json::Map::new();
    let mut decode_bytes = serde_json::Map::new();
    let mut decode_frac = serde_json::Map::new();
    let mut decode_limit = serde_json::Map::new();
    let mut table = vec![];
    for (depth, reps) in &decode {
        let (med, lo, hi) = stats(reps);
        let bytes = cost.decode_bytes(&c, *depth);
        let limit = bw * 1e9 / bytes;
        let key = depth.to_string();
        decode_tps.insert(key.clone(), med.into());
        decode_spread.insert(key.clone(), serde_json::json!([lo, hi]));
        decode_bytes.insert(key.clone(), bytes.round().into());
        decode_frac.insert(key.clone(), (med / limit).into());
        decode_limit.insert(key, limit.into());
        table.push(format!(
            "decode @ depth {depth:>5}: {med:7.2} tok/s (min {lo:.2}, max {hi:.2})  reads {:.2} GB/token  bandwidth limit {limit:.2} tok/s  -> {:.0}% of limit",
            bytes / 1e9,
            100.0 * med / limit
        ));
    }
    let out = serde_json::json!({
        "model": model_dir.display().to_string(),
        "commit": commit(),
        "cpu": cpu_name(),
        "threads": threads,
        "fast_kernels": gptoss_backend::fast_kernels(),
        "kernel_level": level.name(),
        "expert_path": format!("{:?}", model.expert_path()).to_lowercase(),
        "weights_q8": model.weights_q8(),
        "lora": args.lora.as_ref().map(|d| d.display().to_string()),
        "lora_rank": model.lora().map(|l| l.rank()),
        "lora_flops_per_token": lora_macs.map(|m| 2 * m),
        "reps": args.reps,
        "prompt_tokens": args.prompt,
        "prefill_tps": if prefill_tps.is_empty() { serde_json::Value::Null } else { p_med.into() },
        "prefill_tps_spread": [p_min, p_max],
        "prefill_flops_per_token": prefill_flops,
        "prefill_gflops": prefill_gflops,
        "fma_peak_gflops": fma,
        "int8_peak_gops": int8,
        "prefill_peak_fraction": prefill_gflops / fma,
        "prefill_kernel_limit_tps": prefill_limit_tps,
        "prefill_kernel_limit_fraction": p_med / prefill_limit_tps,
        "decode_tokens": {"depth0": args.generate, "deeper": args.generate_deep},
        "decode_tps": decode_tps,
        "decode_tps_spread": decode_spread,
        "decode_bytes_per_token": cost.decode_bytes(&c, 0).round(),
        "decode_bytes_per_token_at_depth": decode_bytes,
        "decode_bandwidth_limit_tps": decode_limit,
        "decode_roofline_fraction": decode_frac,
        "bandwidth_gbs": bw,
        "context": context,
        "peak_rss_bytes": peak_rss,
        "streams": args.streams,
        "streams_decode_tps": streams_tps,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "model {}  commit {}  cpu {}  threads {threads}  expert products {}  weights_q8 {}",
        model_dir.display(),
        out["commit"].as_str().unwrap_or("unknown"),
        cpu_name(),
        out["expert_path"].as_str().unwrap_or("?"),
        model.weights_q8()
    );
    if let (Some(dir), Some(macs)) = (&args.lora, lora_macs) {
        println!(
            "lora {}: +{:.1} MFLOP/token for its low-rank products",
            dir.display(),
            2.0 * macs as f64 / 1e6
        );
    }
    println!(
        "machine: read bandwidth {bw:.1} GB/s; kernels {level}: f32 FMA peak {fma:.0} GFLOP/s{}",
        int8.map_or(String::new(), |g| format!(", int8 dot peak {g:.0} GOP/s"))
    );
    if !prefill_tps.is_empty() {
        println!(
            "prefill {} tokens: {p_med:7.2} tok/s (min {p_min:.2}, max {p_max:.2})  {:.2} GFLOP/token  {prefill_gflops:.0} GFLOP/s  kernel peak limit {prefill_limit_tps:.1} tok/s -> {:.0}% of it",
            args.prompt,
            prefill_flops / 1e9,
            100.0 * p_med / prefill_limit_tps
        );
    }
    for line in table {
        println!("{line}");
    }
    if let Some(tps) = streams_tps {
        let one = decode
            .first()
            .map(|(_, reps)| stats(reps).0)
            .unwrap_or(f64::NAN);
        println!(
            "batched decode, {} streams: {tps:7.2} tok/s in all = {:.2}x one stream at depth {}",
            args.streams,
            tps / one,
            args.depth.first().copied().unwrap_or(0)
        );
    }
    match peak_rss {
        Some(b) => println!(
            "peak resident memory: {:.2} GB (context {context})",
            b as f64 / 1e9
        ),
        None => println!("peak resident memory: unknown"),
    }
    Ok(())
}
