//! `gpt-oss generate`: raw token-level generation, no harmony. Token ids in,
//! generated ids out as a JSON array on stdout. Stops only on `--stop` ids,
//! `--max-tokens`, or the end of the context.

use std::ops::ControlFlow;
use std::path::PathBuf;

use anyhow::Context;
use gptoss_engine::{LanguageModel, Sampler, Session, StopConditions};

use crate::generation_args::{parse_token_list, SamplingArgs};

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint folder (an `original/` folder or a Hugging Face download).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Prompt token ids: `1,2,3` or a JSON array.
    #[arg(long)]
    pub tokens: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 32)]
    pub max_tokens: usize,
    /// Token ids that end generation (comma-separated), e.g. 200002,200012
    /// for harmony's <|return|> and <|call|>. The stop token is printed.
    #[arg(long)]
    pub stop: Option<String>,
    /// KV cache size (default: prompt + max tokens, capped at the model's context).
    #[arg(long)]
    pub context: Option<usize>,
    /// Print the stop reason, counts and speed on stderr.
    #[arg(long)]
    pub verbose: bool,
    /// MXFP4 expert products: exact (f32, the default here, for comparing with a reference)
    /// or int8 (the fast path `run`/`chat`/`serve` use on AVX2 CPUs).
    #[arg(long, value_enum, default_value = "exact")]
    pub experts: crate::model_source::Experts,
    /// A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) applied on
    /// top of the model at run time (CPU only; docs/finetuning.md).
    #[arg(long, value_name = "DIR")]
    pub lora: Option<PathBuf>,
    #[command(flatten)]
    pub device: crate::device::DeviceArg,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let prompt = parse_token_list(&args.tokens).context("--tokens")?;
    if prompt.is_empty() {
        anyhow::bail!("--tokens is empty: give at least one prompt token id");
    }
    let stop_tokens = match &args.stop {
        Some(s) => parse_token_list(s).context("--stop")?,
        None => Vec::new(),
    };
    let mut model = crate::model_source::load_model(Some(&args.model))?;
    crate::model_source::apply_experts(&mut model, Some(args.experts));
    crate::model_source::apply_lora(&mut model, args.lora.as_deref())?;
    let model = crate::device::place(
        model,
        args.device.device,
        &[("--lora", args.lora.is_some())],
    )?;
    let max_context = model.max_context();
    let context = args
        .context
        .unwrap_or_else(|| prompt.len().saturating_add(args.max_tokens))
        .min(max_context);
    let mut session = Session::new(&model, context)?;
    let mut sampler = Sampler::new(args.sampling.params())?;
    let stop = StopConditions {
        max_tokens: Some(args.max_tokens),
        stop_tokens,
    };
    let generation = session.generate(&prompt, &stop, &mut sampler, None, |_| {
        ControlFlow::Continue(())
    })?;
    println!("{}", serde_json::to_string(&generation.tokens)?);
    if args.verbose {
        let u = &generation.usage;
        let t = &generation.timings;
        eprintln!(
            "stop: {}; prompt {} tokens ({:.1} tok/s); generated {} tokens ({:.1} tok/s)",
            generation.stop_reason,
            u.prompt_tokens,
            t.prefill_tokens_per_second(u),
            u.completion_tokens,
            t.decode_tokens_per_second(u)
        );
    }
    Ok(())
}
