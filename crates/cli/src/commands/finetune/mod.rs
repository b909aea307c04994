//! `gpt-oss finetune`: trains a LoRA adapter on the CPU and writes it in PEFT's format
//! (docs/finetuning.md). The base stays frozen and memory-mapped; the trained tensors are the
//! low-rank pairs of the attention projections and, with `--targets attn+experts`, of the
//! experts' two matrices.
//!
//! A step takes conversations in a seeded order until `--batch-tokens` tokens are reached,
//! computes their gradients in parallel (one conversation per worker) and averages them per
//! trained token, then AdamW with a linear warm-up and cosine decay. A held-out share of the
//! data is scored after every epoch; a checkpoint (adapter, optimizer, position) is written
//! every `--save-every` steps and `--resume` continues from it, to the same result as an
//! uninterrupted run.

mod checkpoint;
mod data;
mod log;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use gptoss_chat::Effort;
use gptoss_model::train::{
    loss_and_grads_with, Activations, AdamW, Head, LoraSet, Proj, TrainLora,
};
use gptoss_model::Model;
use rayon::prelude::*;

use checkpoint::TrainerState;
use data::Example;

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint folder; without it, the built-in demo model.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Training data: JSONL, one `{"messages": [...]}` conversation per line (OpenAI format;
    /// an assistant's `reasoning_content` or `thinking` becomes its analysis channel).
    #[arg(long, value_name = "FILE.jsonl")]
    pub data: PathBuf,
    /// Where to write the adapter (adapter_config.json + adapter_model.safetensors) and, under
    /// OUT/checkpoint, what `--resume` needs.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// LoRA rank r.
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    /// LoRA alpha (updates are scaled by alpha / r).
    #[arg(long, default_value_t = 16.0)]
    pub alpha: f64,
    /// What to adapt: the attention projections (attn), or those and the experts' gate_up and
    /// down matrices (attn+experts; the layers of --expert-layers).
    #[arg(long, value_enum, default_value = "attn")]
    pub targets: Targets,
    /// Layers whose experts are adapted with --targets attn+experts, comma-separated (default:
    /// every layer).
    #[arg(long, value_delimiter = ',', value_name = "L,L,...")]
    pub expert_layers: Vec<usize>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    /// Share of the steps spent warming the learning rate up linearly; then cosine decay to 0.
    #[arg(long, default_value_t = 0.03)]
    pub warmup: f64,
    /// AdamW's decoupled weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Passes over the data.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Tokens per optimizer step: conversations are added to a step until it holds this many
    /// (at least one conversation); their gradients are averaged per trained token.
    #[arg(long, default_value_t = 1024)]
    pub batch_tokens: usize,
    /// Share of the conversations held out of training and scored after every epoch.
    #[arg(long, default_value_t = 0.05)]
    pub holdout: f64,
    /// Reasoning effort written in each conversation's system message.
    #[arg(long, value_enum, default_value = "medium")]
    pub effort: EffortArg,
    /// Seed of the adapter's initial A, of the held-out split and of the order of the data.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write a checkpoint every N steps (and after every epoch); 0: only after every epoch.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub save_every: usize,
    /// Continue from OUT/checkpoint, written by an interrupted run with the same settings.
    #[arg(long)]
    pub resume: bool,
    /// Per-step log: .csv or .jsonl (by the extension); a plot of the loss per step is written
    /// beside it as .png.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Activation checkpointing: keep only each layer's input and recompute the rest during
    /// the backward pass (auto: when a step's activations would exceed 2 GiB).
    #[arg(long, value_enum, default_value = "auto")]
    pub recompute: Recompute,
    /// Stop after this step, as an interrupted run would (the checkpoint written, no final
    /// adapter): for testing --resume.
    #[arg(long, hide = true)]
    pub stop_after_step: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum Targets {
    #[value(name = "attn")]
    #[serde(rename = "attn")]
    Attn,
    #[value(name = "attn+experts")]
    #[serde(rename = "attn+experts")]
    AttnExperts,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Recompute {
    Auto,
    On,
    Off,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum EffortArg {
    Low,
    Medium,
    High,
}

impl EffortArg {
    fn effort(self) -> Effort {
        match self {
            EffortArg::Low => Effort::Low,
            EffortArg::Medium => Effort::Medium,
            EffortArg::High => Effort::High,
        }
    }
}

/// Above this many bytes of kept activations per conversation, `--recompute auto` recomputes.
const RECOMPUTE_ABOVE: usize = 2 << 30;

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.rank == 0 {
        bail!("--rank must be at least 1");
    }
    if !(args.lr > 0.0 && args.lr.is_finite()) {
        bail!("--lr must be a positive number");
    }
    if !(0.0..1.0).contains(&args.holdout) || !(0.0..1.0).contains(&args.warmup) {
        bail!("--holdout and --warmup are shares: 0 <= x < 1");
    }
    if args.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    let data = data::load(&args.data, args.effort.effort())?;
    let model = crate::model_source::load_model(args.model.as_deref())?;
    let c = model.config();
    let max = c.max_context();
    if let Some(long) = data.iter().position(|e| e.tokens.len() > max) {
        bail!(
            "{}: conversation {} has {} tokens, more than the model's context ({max})",
            args.data.display(),
            long + 1,
            data[long].tokens.len()
        );
    }
    if let Some(&l) = args
        .expert_layers
        .iter()
        .find(|&&l| l >= c.num_hidden_layers)
    {
        bail!(
            "--expert-layers {l}: the model has {} layers (0..{})",
            c.num_hidden_layers,
            c.num_hidden_layers - 1
        );
    }
    if args.targets == Targets::Attn && !args.expert_layers.is_empty() {
        bail!("--expert-layers needs --targets attn+experts");
    }
    let expert_layers: Vec<usize> = match args.targets {
        Targets::Attn => vec![],
        Targets::AttnExperts if args.expert_layers.is_empty() => (0..c.num_hidden_layers).collect(),
        Targets::AttnExperts => args.expert_layers.clone(),
    };

    let (train, heldout) = split(data.len(), args.holdout, args.seed);
    let plan = Plan::new(&data, &train, &args);
    let state = TrainerState::new(&args, &expert_layers, &std::fs::read(&args.data)?, &plan);
    let (mut lora, mut opt) = if args.resume {
        checkpoint::resume(&model, &args.out, &state)?
    } else {
        let mut lora = TrainLora::new(c, args.rank, args.alpha, &Proj::ALL, args.seed);
        lora.add_experts(c, &expert_layers, args.seed)?;
        (lora, AdamW::new(args.lr, args.weight_decay))
    };
    let longest = train
        .iter()
        .map(|&i| data[i].tokens.len())
        .max()
        .unwrap_or(0);
    let memory = match args.recompute {
        Recompute::On => Activations::Recompute,
        Recompute::Off => Activations::Keep,
        Recompute::Auto if Activations::keep_bytes(c, longest) > RECOMPUTE_ABOVE => {
            Activations::Recompute
        }
        Recompute::Auto => Activations::Keep,
    };
    eprintln!(
        "finetune: {} conversations ({} held out), {} epochs of {} steps, rank {} alpha {}, \
         {} attention projections and {} expert matrices adapted{}",
        train.len(),
        heldout.len(),
        args.epochs,
        plan.epochs.first().map_or(0, Vec::len),
        args.rank,
        args.alpha,
        4 * c.num_hidden_layers,
        2 * expert_layers.len(),
        if memory == Activations::Recompute {
            ", activations recomputed"
        } else {
            ""
        }
    );

    let head = Head::new(&model);
    warn_unlearnable(&head, &data);
    let mut log = log::Log::open(args.log.as_deref(), opt.steps() > 0)?;
    let total = plan.steps();
    let warmup = ((total as f64 * args.warmup).round() as usize).max(1);
    let bar = progress(total, opt.steps());
    let started = Instant::now();
    let resumed_from = opt.steps() as usize;
    let mut tokens_done = 0usize;
    let mut step = 0usize;
    for (epoch, batches) in plan.epochs.iter().enumerate() {
        for batch in batches {
            if step < resumed_from {
                step += 1;
                continue;
            }
            opt.lr = args.lr * schedule(step, warmup, total);
            let (loss, grads) = batch_grads(&model, &head, &lora, &data, batch, memory)?;
            opt.step(&mut lora.params, &grads);
            step += 1;
            tokens_done += batch.iter().map(|&i| data[i].tokens.len()).sum::<usize>();
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            let speed = tokens_done as f64 / secs;
            bar.set_position(step as u64);
            bar.set_message(format!("loss {loss:.4} · {speed:.0} tok/s"));
            if bar.is_hidden() && (step.is_multiple_of(10) || step == total) {
                eprintln!(
                    "step {step}/{total} epoch {} loss {loss:.4} lr {:.2e} {speed:.0} tok/s",
                    epoch + 1,
                    opt.lr
                );
            }
            log.step(&log::Row {
                step,
                epoch: epoch + 1,
                loss,
                lr: opt.lr,
                tokens: tokens_done,
                tokens_per_s: speed,
                elapsed_s: secs,
            })?;
            if args.stop_after_step == Some(step) {
                bar.finish_and_clear();
                checkpoint::save(&lora, &opt, &args.out, &state)?;
                eprintln!("stopped after step {step} as asked; --resume continues");
                return Ok(());
            }
            if args.save_every > 0 && step.is_multiple_of(args.save_every) && step < total {
                checkpoint::save(&lora, &opt, &args.out, &state)?;
            }
        }
        if step <= resumed_from {
            // an epoch the interrupted run finished
            continue;
        }
        if !heldout.is_empty() {
            let loss = mean_loss(&model, &head, &lora, &data, &heldout, memory)?;
            bar.suspend(|| {
                eprintln!(
                    "epoch {}: held-out loss {loss:.4} ({} conversations)",
                    epoch + 1,
                    heldout.len()
                )
            });
            log.heldout(step, epoch + 1, loss)?;
        }
        checkpoint::save(&lora, &opt, &args.out, &state)?;
    }
    bar.finish_and_clear();
    let base = args
        .model
        .as_ref()
        .map_or("gpt-oss-rs built-in demo model".to_string(), |p| {
            p.display().to_string()
        });
    lora.save(&args.out, &base)?;
    if let Some(png) = log.finish()? {
        eprintln!("loss plot written to {}", png.display());
    }
    eprintln!(
        "adapter written to {} ({} steps, {:.0} s); use it with --lora {}",
        args.out.display(),
        total,
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

/// Warns when targets are tokens the model can never write (all-zero unembedding rows, as in
/// the demo model for every token its training never used): the loss on them cannot fall.
fn warn_unlearnable(head: &Head, data: &[Example]) {
    let mut count = 0usize;
    let mut distinct = std::collections::BTreeMap::<u32, usize>::new();
    for t in data.iter().flat_map(|e| e.targets.iter().flatten()) {
        if head.is_zero_row(*t) {
            count += 1;
            *distinct.entry(*t).or_default() += 1;
        }
    }
    if count == 0 {
        return;
    }
    let tokenizer = gptoss_harmony::Tokenizer::o200k_harmony();
    let mut worst: Vec<(u32, usize)> = distinct.iter().map(|(&t, &n)| (t, n)).collect();
    worst.sort_by_key(|w| std::cmp::Reverse(w.1));
    let examples: Vec<String> = worst
        .iter()
        .take(5)
        .map(|(t, n)| {
            let text = tokenizer
                .decode_lossy(&[*t])
                .unwrap_or_else(|_| format!("<{t}>"));
            format!("{text:?} ({n}×)")
        })
        .collect();
    eprintln!(
        "warning: {count} target tokens ({} distinct, e.g. {}) have an all-zero unembedding row \
         in this model: their logit is 0 whatever the adapter does, so it cannot learn to write \
         them; rephrase the data with tokens the model uses",
        distinct.len(),
        examples.join(", ")
    );
}

/// The conversations of each step of each epoch, fixed by the seed, so a resumed run takes
/// the same steps as an uninterrupted one.
pub struct Plan {
    pub epochs: Vec<Vec<Vec<usize>>>,
}

impl Plan {
    fn new(data: &[Example], train: &[usize], args: &Args) -> Plan {
        let mut rng = args.seed ^ 0x0DDB_1A5E;
        let epochs = (0..args.epochs)
            .map(|_| {
                let mut order = train.to_vec();
                shuffle(&mut order, &mut rng);
                let mut batches: Vec<Vec<usize>> = vec![];
                let mut tokens = 0usize;
                for i in order {
                    match batches.last_mut() {
                        Some(b) if tokens < args.batch_tokens => b.push(i),
                        _ => {
                            batches.push(vec![i]);
                            tokens = 0;
                        }
                    }
                    tokens += data[i].tokens.len();
                }
                batches
            })
            .collect();
        Plan { epochs }
    }

    pub fn steps(&self) -> usize {
        self.epochs.iter().map(Vec::len).sum()
    }
}

/// Fisher–Yates with a 64-bit LCG: reproducible from the seed alone.
fn shuffle(v: &mut [usize], rng: &mut u64) {
    for i in (1..v.len()).rev() {
        *rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v.swap(i, (*rng >> 33) as usize % (i + 1));
    }
}

/// (training, held-out) conversation indices: a seeded `share` held out, at least one when
/// the share is non-zero and there are 20 conversations or more.
fn split(n: usize, share: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = seed ^ 0x4E1D_0075;
    shuffle(&mut order, &mut rng);
    let mut held = (n as f64 * share).round() as usize;
    if share > 0.0 && n >= 20 {
        held = held.max(1);
    }
    let held = held.min(n.saturating_sub(1));
    let mut heldout = order.split_off(n - held);
    order.sort_unstable();
    heldout.sort_unstable();
    (order, heldout)
}

/// The learning-rate factor at `step` of `total`: linear warm-up over `warmup` steps, then
/// cosine decay to zero.
fn schedule(step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return (step + 1) as f64 / warmup as f64;
    }
    let p = (step - warmup) as f64 / (total - warmup).max(1) as f64;
    0.5 * (1.0 + (std::f64::consts::PI * p).cos())
}

/// The loss and gradients of one step: each conversation on its own worker, combined as the
/// mean over every trained token of the batch.
fn batch_grads(
    model: &Model,
    head: &Head,
    lora: &TrainLora,
    data: &[Example],
    batch: &[usize],
    memory: Activations,
) -> anyhow::Result<(f32, LoraSet)> {
    let parts = batch
        .par_iter()
        .map(|&i| {
            let ex = &data[i];
            let trained = ex.targets.iter().filter(|t| t.is_some()).count();
            loss_and_grads_with(model, head, lora, &ex.tokens, &ex.targets, memory)
                .map(|(loss, g)| (loss, trained, g))
                .with_context(|| format!("conversation {}", i + 1))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let total: usize = parts.iter().map(|p| p.1).sum();
    let mut grads = lora.params.zeros_like();
    let mut loss = 0f64;
    for (l, n, g) in &parts {
        let w = *n as f32 / total as f32;
        grads.add_scaled(g, w);
        loss += *l as f64 * *n as f64;
    }
    Ok(((loss / total as f64) as f32, grads))
}

/// The per-token mean loss over `which` conversations.
fn mean_loss(
    model: &Model,
    head: &Head,
    lora: &TrainLora,
    data: &[Example],
    which: &[usize],
    memory: Activations,
) -> anyhow::Result<f32> {
    let (mut sum, mut count) = (0f64, 0usize);
    for chunk in which.chunks(2) {
        let (loss, _) = batch_grads(model, head, lora, data, chunk, memory)?;
        let n: usize = chunk
            .iter()
            .map(|&i| data[i].targets.iter().filter(|t| t.is_some()).count())
            .sum();
        sum += loss as f64 * n as f64;
        count += n;
    }
    Ok((sum / count.max(1) as f64) as f32)
}

fn progress(total: usize, done: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps · {msg} · {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(done);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays() {
        assert!((schedule(0, 2, 10) - 0.5).abs() < 1e-12);
        assert!((schedule(1, 2, 10) - 1.0).abs() < 1e-12);
        assert!(schedule(5, 2, 10) < 1.0 && schedule(9, 2, 10) < schedule(5, 2, 10));
    }

    #[test]
    fn split_holds_out_a_seeded_share() {
        let (train, held) = split(100, 0.05, 7);
        assert_eq!((train.len(), held.len()), (95, 5));
        assert!(held.iter().all(|h| !train.contains(h)));
        assert_eq!(split(100, 0.05, 7), (train, held.clone()));
        assert_ne!(split(100, 0.05, 8).1, held);
        assert_eq!(split(8, 0.05, 7).1.len(), 0);
        assert_eq!(split(20, 0.01, 7).1.len(), 1);
        assert_eq!(split(3, 0.9, 7).0.len(), 1);
    }
}
