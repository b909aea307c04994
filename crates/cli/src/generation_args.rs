//! Command-line options shared by `generate`, `run` and `chat`: sampling
//! settings and chat settings, turned into the engine's and chat's types.

use std::path::PathBuf;

use gptoss_chat::{ChatOptions, Effort, DEFAULT_CONTEXT_TOKENS};
use gptoss_engine::SamplingParams;

/// Sampling options. Defaults are OpenAI's recommendation for gpt-oss.
#[derive(clap::Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Softmax temperature; 0 picks the most likely token (greedy).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Nucleus sampling: keep the most likely tokens holding this much probability (0 < p <= 1).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Keep only the K most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Drop tokens less likely than MIN_P times the most likely one (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// Random seed: the same seed gives the same output.
    #[arg(long)]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    pub fn params(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            seed: self.seed,
        }
    }
}

/// Options of `run` and `chat`.
#[derive(clap::Args, Debug, Clone)]
pub struct ChatArgs {
    /// Checkpoint folder (an `original/` folder or a Hugging Face download);
    /// the built-in demo model when absent.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Reasoning effort: none (answer directly, no chain of thought; a
    /// gpt-oss-rs extension), low, medium or high.
    #[arg(long, default_value = "medium", value_parser = parse_effort)]
    pub effort: Effort,
    /// Most tokens generated per answer (default: until the answer ends or the context is full).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// KV cache size in tokens (prompt plus answers).
    #[arg(long, default_value_t = DEFAULT_CONTEXT_TOKENS)]
    pub context: usize,
    /// Developer instructions (the "system prompt").
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// MXFP4 expert products: int8 (fast; the default where the CPU has AVX2) or exact (f32).
    #[arg(long, value_enum)]
    pub experts: Option<crate::model_source::Experts>,
    /// Quantize the attention and unembedding weights to 8 bits at load (Q8_0: ~1.1 GB less to
    /// read per token on gpt-oss-20b, faster decode, slightly less accurate; docs/numerics.md).
    #[arg(long)]
    pub weights_q8: bool,
    /// A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) applied on
    /// top of the model at run time (CPU only; docs/finetuning.md).
    #[arg(long, value_name = "DIR")]
    pub lora: Option<PathBuf>,
    #[command(flatten)]
    pub device: crate::device::DeviceArg,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

impl ChatArgs {
    pub fn options(&self) -> ChatOptions {
        ChatOptions {
            effort: self.effort,
            sampling: self.sampling.params(),
            max_tokens: self.max_tokens,
            context_tokens: self.context,
            instructions: self.system.clone(),
            ..ChatOptions::default()
        }
    }
}

fn parse_effort(s: &str) -> Result<Effort, String> {
    s.parse::<Effort>().map_err(|e| e.to_string())
}

/// Parse token ids written as `1,2,3`, `1 2 3` or a JSON array `[1, 2, 3]`.
pub fn parse_token_list(text: &str) -> anyhow::Result<Vec<u32>> {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>().map_err(|_| {
                anyhow::anyhow!(
                    "{s:?} is not a token id (expected non-negative integers like 1,2,3)"
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_token_list;

    #[test]
    fn token_lists_parse_in_every_accepted_form() {
        assert_eq!(parse_token_list("1,2,3").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_token_list("[1, 2, 3]").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_token_list(" 4 5\n6 ").unwrap(), vec![4, 5, 6]);
        assert!(parse_token_list("1,x").is_err());
        assert!(parse_token_list("-1").is_err());
        assert!(parse_token_list("").unwrap().is_empty());
    }
}
