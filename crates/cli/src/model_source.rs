//! Where the model comes from — the one place the CLI decides it: what
//! `--model` names (a checkpoint folder, a GGUF file or a folder holding one,
//! or an Ollama model name such as `gpt-oss:20b`, see `model_stores.rs`), or
//! else the built-in demo model embedded in the binary. A GGUF file's
//! tokenizer is checked against our o200k_harmony. Shows a spinner on stderr
//! while loading (hidden when stderr is not a terminal).

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use gptoss_model::{ExpertPath, Model};

/// `--experts`: how the MXFP4 expert products run (docs/numerics.md).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Experts {
    /// Activations quantized to 8 bits per 32-element block, integer dot products: ~1.7x faster
    /// decode on AVX2 CPUs; logits deviate about as much as a bf16 run of the reference.
    Int8,
    /// f32 activations, every FP4 weight decoded exactly: matches the float32 reference within 2e-3.
    Exact,
}

/// Applies `--experts`; without it the model keeps its load-time default (int8 where the CPU
/// has AVX2+FMA, exact when `GPT_OSS_EXACT` is set).
pub fn apply_experts(model: &mut Model, experts: Option<Experts>) {
    match experts {
        Some(Experts::Int8) => model.set_expert_path(ExpertPath::Int8),
        Some(Experts::Exact) => model.set_expert_path(ExpertPath::Exact),
        None => {}
    }
}

/// Applies `--weights-q8`: quantizes the attention projections and the unembedding to 8 bits
/// once (docs/numerics.md, "Q8 weights"); off keeps the bf16 weights.
pub fn apply_weights_q8(model: &mut Model, on: bool) -> anyhow::Result<()> {
    model
        .set_weights_q8(on)
        .context("--weights-q8: cannot quantize this checkpoint's weights")
}

/// Applies `--lora DIR`: reads the PEFT adapter, validates it against the loaded model (every
/// problem is an error naming the adapter file, before anything runs) and says on stderr what
/// it updates.
pub fn apply_lora(model: &mut Model, dir: Option<&Path>) -> anyhow::Result<()> {
    let Some(dir) = dir else {
        return Ok(());
    };
    let adapter = model.load_lora(dir)?;
    describe_lora(dir, &adapter);
    model.set_lora(Some(adapter))?;
    Ok(())
}

/// Reads the PEFT adapter in `dir`, validates it against `model` and registers it for the
/// sequences that choose it (`serve --lora NAME=DIR`); says on stderr what it updates.
pub fn add_lora(model: &mut Model, dir: &Path) -> anyhow::Result<gptoss_model::LoraId> {
    let adapter = model.load_lora(dir)?;
    describe_lora(dir, &adapter);
    Ok(model.add_lora(adapter)?)
}

fn describe_lora(dir: &Path, adapter: &gptoss_model::LoraAdapter) {
    let (attn, experts) = adapter.target_counts();
    eprintln!(
        "lora: {} (r {}, alpha {}, scale {}; {attn} attention products, {experts} expert matrices)",
        dir.display(),
        adapter.rank(),
        adapter.alpha(),
        adapter.scale(),
    );
}

/// The embedded demo model (`assets/demo-model`, see its MODEL_CARD.md):
/// original-layout `config.json` bytes and one gzip-compressed safetensors
/// file. Mostly-zero embedding tables make it ~3 MB compressed, ~105 MB open.
fn builtin_demo_model() -> Option<(&'static [u8], &'static [u8])> {
    Some((
        include_bytes!("../../../assets/demo-model/config.json"),
        include_bytes!("../../../assets/demo-model/model.safetensors.gz"),
    ))
}

/// Load the model at `path`, or the built-in demo model when `path` is
/// `None` (saying so once on stderr).
pub fn load_model(path: Option<&Path>) -> anyhow::Result<Model> {
    let spinner =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    spinner.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    spinner.enable_steady_tick(Duration::from_millis(100));
    let result = match path {
        Some(dir) => {
            spinner.set_message(format!("loading {}", dir.display()));
            load_folder(dir)
        }
        None => {
            spinner.suspend(|| {
                eprintln!("using the built-in demo model; pass --model DIR for real weights")
            });
            spinner.set_message("loading the built-in demo model");
            load_builtin()
        }
    };
    spinner.finish_and_clear();
    result
}

fn load_folder(arg: &Path) -> anyhow::Result<Model> {
    let path = crate::model_stores::resolve(arg)?;
    let model = Model::load(&path)
        .with_context(|| format!("cannot load the model in {}", path.display()))?;
    if let Some(tok) = model.gguf_tokenizer() {
        tok.check(&HarmonyVocab(gptoss_harmony::Tokenizer::o200k_harmony()))
            .with_context(|| format!("cannot use {}", path.display()))?;
    }
    Ok(model)
}

/// Our tokenizer, as the reference a GGUF file's tokenizer metadata is checked against.
struct HarmonyVocab(gptoss_harmony::Tokenizer);

impl gptoss_model::ReferenceVocab for HarmonyVocab {
    fn token_bytes(&self, id: u32) -> Option<Vec<u8>> {
        if gptoss_harmony::tokenizer::is_special_token(id) {
            return None;
        }
        self.0.token_bytes(id).ok()
    }

    fn special_name(&self, id: u32) -> Option<String> {
        gptoss_harmony::tokenizer::special_token_name(id)
    }
}

fn load_builtin() -> anyhow::Result<Model> {
    let Some((config, weights_gz)) = builtin_demo_model() else {
        anyhow::bail!(
            "this build has no built-in demo model; pass --model DIR with a gpt-oss checkpoint folder \
             (an `original/` folder or a Hugging Face download)"
        );
    };
    let mut weights = Vec::new();
    flate2::read::GzDecoder::new(weights_gz)
        .read_to_end(&mut weights)
        .context("the built-in demo model is damaged (gzip)")?;
    Model::from_memory(config, weights).context("the built-in demo model is damaged")
}
