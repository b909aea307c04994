//! `gpt-oss bench --device gpu`: the same measurements as the CPU bench (prefill, decode at
//! each depth) plus batched decode of `--streams` sequences, on a device, each against a limit
//! measured in the same run: the device's copy bandwidth (a buffer-to-buffer copy probe) for
//! decode. `--synth 20b|120b` makes full-size random weights in memory a layer at a time (no
//! file: the GPU machines have small disks).

use std::time::Instant;

use anyhow::{bail, Context};
use gptoss_engine::LogitsFor;
use gptoss_gpu::{GpuContext, GpuModel, ModelSource, SharedGpuModel};
use gptoss_model::{synth::InMemorySynth, Model};

use super::bench::{argmax, batched_decode_tps, commit, costs, random_tokens, stats, Args};

pub fn run(args: &Args) -> anyhow::Result<()> {
    let index = match args.device.device {
        crate::device::Device::Gpu(i) => i,
        _ => None,
    };
    let say = |s: String| {
        if !args.json {
            eprintln!("{s}");
        }
    };
    let ctx = GpuContext::open(index)?;
    let adapter = ctx.adapter().clone();
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "uploading {bar:30} {binary_bytes}/{binary_total_bytes} {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let t_up = Instant::now();
    let (gpu, label) = match (&args.model, args.synth) {
        (_, Some(shape)) => {
            let c = crate::commands::synth::config_for(shape);
            let src = InMemorySynth::new(&c, 1);
            let m = GpuModel::from_source(ctx, &src, &c.yarn_rope(), &mut progress)?;
            (m, format!("synth {shape:?} (in memory)"))
        }
        (Some(dir), None) => {
            let model = Model::load(dir)
                .with_context(|| format!("cannot load the model in {}", dir.display()))?;
            let src = ModelSource {
                config: model.config(),
                tensors: model.tensors(),
            };
            let m = GpuModel::from_source(ctx, &src, model.rope(), &mut progress)?;
            (m, dir.display().to_string())
        }
        (None, None) => bail!("give --model DIR or --synth 20b|120b"),
    };
    bar.finish_and_clear();
    let upload_secs = t_up.elapsed().as_secs_f64();
    let c = gpu.config().clone();
    let model = SharedGpuModel(std::sync::Arc::new(gpu));
    let gpu = &model.0;
    say(format!(
        "{label}: {:.2} GB of weights uploaded to {} ({}) in {upload_secs:.1} s",
        gpu.device_weight_bytes() as f64 / 1e9,
        adapter.name,
        adapter.backend
    ));
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
    let cost = costs(&c, false);
    let mut peak_cache = 0u64;

    let mut prefill_tps = vec![];
    if !args.no_prefill {
        let prompt = random_tokens(args.prompt, c.vocab_size, 1);
        for rep in 0..args.reps {
            let mut cache = gpu.new_cache(context);
            let mut logits = Vec::new();
            let t = Instant::now();
            gpu.forward_into(&prompt, &mut cache, LogitsFor::Last, &mut logits)?;
            let tps = args.prompt as f64 / t.elapsed().as_secs_f64();
            peak_cache = peak_cache.max(cache.allocated_bytes());
            say(format!(
                "prefill {} tokens, rep {}: {tps:.1} tok/s",
                args.prompt,
                rep + 1
            ));
            prefill_tps.push(tps);
        }
    }

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
            let mut cache = gpu.new_cache(context);
            cache.fill_synthetic(gpu.context(), depth);
            let mut tok = random_tokens(1, c.vocab_size, 7 + rep as u64)[0];
            let mut logits = Vec::new();
            let t = Instant::now();
            for _ in 0..n_gen {
                gpu.forward_into(&[tok], &mut cache, LogitsFor::Last, &mut logits)?;
                tok = argmax(&logits);
            }
            let tps = n_gen as f64 / t.elapsed().as_secs_f64();
            peak_cache = peak_cache.max(cache.allocated_bytes());
            say(format!(
                "decode at depth {depth}, {n_gen} tokens, rep {}: {tps:.1} tok/s",
                rep + 1
            ));
            per_rep.push(tps);
        }
        decode.push((depth, per_rep));
    }

    // Batched decode: `streams` sequences, one token each per step, one pass over the weights.
    let mut streams_tps = None;
    if args.streams > 0 && args.generate > 0 {
        let tps = batched_decode_tps(&model, args.streams, args.generate, context)?;
        say(format!(
            "{} streams, {} tokens each: {tps:.1} tok/s in all",
            args.streams, args.generate
        ));
        streams_tps = Some(tps);
    }

    say("measuring the device's copy bandwidth...".into());
    let bw = gpu.context().copy_bandwidth_gbs(1 << 30, 5)?;
    let (p_med, p_min, p_max) = stats(&prefill_tps);
    let prefill_flops = cost.prefill_flops_per_token(&c, args.prompt.max(1));
    let mut table = vec![];
    let mut decode_json = serde_json::Map::new();
    for (depth, reps) in &decode {
        let (med, lo, hi) = stats(reps);
        let bytes = cost.decode_bytes(&c, *depth);
        let limit = bw * 1e9 / bytes;
        decode_json.insert(
            depth.to_string(),
            serde_json::json!({"tps": med, "spread": [lo, hi], "bytes_per_token": bytes.round(),
                "bandwidth_limit_tps": limit, "fraction_of_limit": med / limit}),
        );
        table.push(format!(
            "decode @ depth {depth:>5}: {med:8.1} tok/s (min {lo:.1}, max {hi:.1})  reads {:.2} GB/token  bandwidth limit {limit:.1} tok/s  -> {:.0}% of limit",
            bytes / 1e9,
            100.0 * med / limit
        ));
    }
    let device_bytes = gpu.device_weight_bytes() + peak_cache + gpu.scratch_bytes();
    let out = serde_json::json!({
        "model": label,
        "commit": commit(),
        "device": adapter.name,
        "backend": adapter.backend,
        "driver": adapter.driver,
        "upload_seconds": upload_secs,
        "prompt_tokens": args.prompt,
        "prefill_tps": if prefill_tps.is_empty() { serde_json::Value::Null } else { p_med.into() },
        "prefill_tps_spread": [p_min, p_max],
        "prefill_tflops": p_med * prefill_flops / 1e12,
        "decode": decode_json,
        "streams": args.streams,
        "streams_aggregate_tps": streams_tps,
        "copy_bandwidth_gbs": bw,
        "device_bytes_peak_estimate": device_bytes,
        "weights_bytes": gpu.device_weight_bytes(),
        "context": context,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "model {label}  commit {}  device {} ({}, {})",
        out["commit"].as_str().unwrap_or("unknown"),
        adapter.name,
        adapter.backend,
        adapter.driver
    );
    println!("device: copy bandwidth {bw:.0} GB/s (read + write of a 1 GiB buffer)");
    if !prefill_tps.is_empty() {
        println!(
            "prefill {} tokens: {p_med:8.1} tok/s (min {p_min:.1}, max {p_max:.1})  {:.2} GFLOP/token  {:.1} TFLOP/s",
            args.prompt,
            prefill_flops / 1e9,
            p_med * prefill_flops / 1e12
        );
    }
    for line in table {
        println!("{line}");
    }
    if let Some(t) = streams_tps {
        println!("{} concurrent streams: {t:.1} tok/s in all", args.streams);
    }
    println!(
        "device memory: {:.2} GB weights + {:.2} GB KV cache (largest) + {:.2} GB scratch = {:.2} GB (context {context})",
        gpu.device_weight_bytes() as f64 / 1e9,
        peak_cache as f64 / 1e9,
        gpu.scratch_bytes() as f64 / 1e9,
        device_bytes as f64 / 1e9
    );
    Ok(())
}
