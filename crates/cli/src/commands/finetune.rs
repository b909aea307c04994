// DRAFT, NOT WIRED: this module is not declared in commands/mod.rs and has never been
// compiled (the CLI crate could not be built in the session that wrote it). To wire it: add
// `pub mod finetune;` to commands/mod.rs, a `Finetune(commands::finetune::Args)` variant and its
// `run` arm to main.rs, rename crates/cli/tests/finetune.rs.draft to finetune.rs, then build,
// test and clippy it.

//! `gpt-oss finetune`: trains a LoRA adapter on the attention projections, on the CPU, and
//! writes it in PEFT's format (docs/finetuning.md). A first skeleton of issue #21 part 2: one
//! conversation per step, AdamW with a cosine schedule after a linear warm-up; no gradient
//! accumulation, held-out loss, checkpoints or expert targets yet.
//!
//! Each line of the data file is one conversation in the OpenAI messages format
//! (`{"messages": [...]}`); it is rendered with our harmony renderer as for training, and the
//! loss is taken on the assistant's tokens only.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use gptoss_chat::Effort;
use gptoss_harmony::render::{messages_to_render, render_message_into};
use gptoss_harmony::tokenizer::RETURN;
use gptoss_harmony::{DeveloperContent, Message, RenderConfig, RenderOptions, Role, SystemContent};
use gptoss_model::train::{loss_and_grads, AdamW, Proj, TrainLora};
use serde_json::Value;

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint folder; without it, the built-in demo model.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Training data: JSONL, one `{"messages": [...]}` conversation per line.
    #[arg(long, value_name = "FILE.jsonl")]
    pub data: PathBuf,
    /// Where to write the adapter (adapter_config.json + adapter_model.safetensors).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// LoRA rank r.
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    /// LoRA alpha (the update is scaled by alpha / r).
    #[arg(long, default_value_t = 16.0)]
    pub alpha: f64,
    /// What to adapt: the attention projections (attn); attn+experts is not trainable yet.
    #[arg(long, default_value = "attn")]
    pub targets: String,
    /// Peak learning rate (AdamW, cosine decay after a linear warm-up over 10% of the steps).
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    /// Passes over the data.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Reasoning effort written in each conversation's system message.
    #[arg(long, value_enum, default_value = "medium")]
    pub effort: EffortArg,
    /// Seed of the adapter's initial A and of the order of the conversations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
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

/// One rendered conversation: its tokens and, per position, the token it is trained to
/// predict (None outside the assistant's messages).
#[derive(Debug, PartialEq)]
pub struct Example {
    pub tokens: Vec<u32>,
    pub targets: Vec<Option<u32>>,
}

/// Renders one JSONL line (`{"messages": [...]}`) for training: a system message with the
/// reasoning effort, the system/developer texts as developer instructions, then the
/// conversation (harmony's analysis-dropping rule applies; the last assistant answer ends with
/// `<|return|>`). An assistant message's reasoning (`reasoning_content`, `reasoning` or
/// `thinking`) becomes its analysis message. Every token of an assistant message but its
/// opening `<|start|>` is a target.
pub fn render_example(line: &str, effort: Effort) -> anyhow::Result<Example> {
    let v: Value = serde_json::from_str(line).context("not JSON")?;
    let Some(msgs) = v.get("messages").and_then(Value::as_array) else {
        bail!("no \"messages\" list");
    };
    let mut instructions: Vec<String> = vec![];
    let mut history: Vec<Message> = vec![];
    for (i, m) in msgs.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let text = match m.get("content") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => bail!("messages[{i}].content: only a string is read"),
        };
        if m.get("tool_calls").is_some() || role == "tool" {
            bail!("messages[{i}]: tool calls are not supported by finetune yet");
        }
        match role {
            "system" | "developer" => instructions.push(text),
            "user" => history.push(Message::from_role_and_content(Role::User, text)),
            "assistant" => {
                let reasoning = ["reasoning_content", "reasoning", "thinking"]
                    .iter()
                    .find_map(|k| m.get(*k).and_then(Value::as_str))
                    .filter(|r| !r.is_empty());
                if let Some(r) = reasoning {
                    history.push(
                        Message::from_role_and_content(Role::Assistant, r).with_channel("analysis"),
                    );
                }
                history.push(
                    Message::from_role_and_content(Role::Assistant, text).with_channel("final"),
                );
            }
            other => {
                bail!("messages[{i}].role {other:?}: expected system, developer, user or assistant")
            }
        }
    }
    if !history.iter().any(|m| m.author.role == Role::Assistant) {
        bail!("no assistant message: nothing to train on");
    }
    let system = SystemContent::new().with_reasoning_effort(effort.harmony_effort());
    let mut all = vec![Message::from_role_and_content(Role::System, system)];
    if !instructions.is_empty() {
        let dev = DeveloperContent::new().with_instructions(instructions.join("\n\n"));
        all.push(Message::from_role_and_content(Role::Developer, dev));
    }
    all.extend(history);
    let options = RenderOptions::default();
    let mut tokens: Vec<u32> = vec![];
    // [start, end) of every assistant message's tokens
    let mut spans = vec![];
    for m in messages_to_render(&all, &RenderConfig::default()) {
        let start = tokens.len();
        render_message_into(m, &options, &mut tokens).context("cannot render")?;
        if m.author.role == Role::Assistant {
            spans.push((start, tokens.len()));
        }
    }
    if let Some(last) = all.last() {
        if last.author.role == Role::Assistant {
            if let Some(t) = tokens.last_mut() {
                *t = RETURN;
            }
        }
    }
    let mut targets = vec![None; tokens.len()];
    for (start, end) in spans {
        for t in start + 1..end {
            targets[t - 1] = Some(tokens[t]);
        }
    }
    Ok(Example { tokens, targets })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.targets != "attn" {
        bail!(
            "--targets {}: only attn (the attention projections) can be trained yet",
            args.targets
        );
    }
    if args.rank == 0 {
        bail!("--rank must be at least 1");
    }
    let text = std::fs::read_to_string(&args.data)
        .with_context(|| format!("cannot read {}", args.data.display()))?;
    let mut data = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ex = render_example(line, args.effort.effort())
            .with_context(|| format!("{} line {}", args.data.display(), i + 1))?;
        data.push(ex);
    }
    if data.is_empty() {
        bail!("{}: no conversations", args.data.display());
    }
    let model = crate::model_source::load_model(args.model.as_deref())?;
    let max = model.config().max_context();
    if let Some(long) = data.iter().position(|e| e.tokens.len() > max) {
        bail!(
            "conversation {} is longer than the model's context ({max})",
            long + 1
        );
    }
    let mut lora = TrainLora::new(model.config(), args.rank, args.alpha, &Proj::ALL, args.seed);
    let mut opt = AdamW::new(args.lr, 0.0);
    let total = data.len() * args.epochs;
    let warmup = (total / 10).max(1);
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut rng = args.seed;
    let started = Instant::now();
    let mut tokens_done = 0usize;
    for epoch in 0..args.epochs {
        // Fisher–Yates with a small LCG: a reproducible order per epoch.
        for i in (1..order.len()).rev() {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            order.swap(i, (rng >> 33) as usize % (i + 1));
        }
        let mut sum = 0f64;
        for &i in &order {
            let step = opt.steps() as usize;
            opt.lr = args.lr * schedule(step, warmup, total);
            let ex = &data[i];
            let (loss, grads) = loss_and_grads(&model, &lora, &ex.tokens, &ex.targets)?;
            opt.step(&mut lora.params, &grads);
            sum += loss as f64;
            tokens_done += ex.tokens.len();
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            eprintln!(
                "epoch {} step {}/{total} loss {loss:.4} lr {:.2e} {:.1} tok/s",
                epoch + 1,
                step + 1,
                opt.lr,
                tokens_done as f64 / secs
            );
        }
        eprintln!(
            "epoch {}: mean loss {:.4}",
            epoch + 1,
            sum / order.len() as f64
        );
    }
    let base = args
        .model
        .as_ref()
        .map_or("gpt-oss-rs built-in demo model".to_string(), |p| {
            p.display().to_string()
        });
    lora.save(&args.out, &base)?;
    eprintln!("adapter written to {}", args.out.display());
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_assistant_tokens_are_targets() {
        let line = r#"{"messages": [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2 * 3?"},
            {"role": "assistant", "content": "6", "reasoning_content": "2 * 3 = 6."}]}"#;
        let ex = render_example(line, Effort::Low).unwrap();
        assert_eq!(ex.tokens.len(), ex.targets.len());
        assert_eq!(*ex.tokens.last().unwrap(), RETURN);
        let n = ex.targets.iter().filter(|t| t.is_some()).count();
        assert!(
            n > 5 && n < ex.tokens.len() / 2,
            "{n} of {}",
            ex.tokens.len()
        );
        // targets are the next tokens, and the last one is <|return|>
        for (t, tgt) in ex.targets.iter().enumerate() {
            if let Some(x) = tgt {
                assert_eq!(*x, ex.tokens[t + 1]);
            }
        }
        assert_eq!(ex.targets[ex.tokens.len() - 2], Some(RETURN));
        assert_eq!(ex.targets[ex.tokens.len() - 1], None);
    }

    #[test]
    fn bad_lines_are_errors() {
        for line in [
            "not json",
            r#"{"messages": []}"#,
            r#"{"messages": [{"role": "user", "content": "hi"}]}"#,
            r#"{"messages": [{"role": "robot", "content": "hi"}]}"#,
            r#"{"messages": [{"role": "tool", "content": "{}"}]}"#,
        ] {
            assert!(render_example(line, Effort::Low).is_err(), "{line}");
        }
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        assert!((schedule(0, 2, 10) - 0.5).abs() < 1e-12);
        assert!((schedule(1, 2, 10) - 1.0).abs() < 1e-12);
        assert!(schedule(5, 2, 10) < 1.0 && schedule(9, 2, 10) < schedule(5, 2, 10));
    }
}
