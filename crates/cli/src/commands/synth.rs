//! `gpt-oss synth`: writes a random checkpoint with the real gpt-oss tensor names, shapes and
//! dtypes (MXFP4 experts, bf16 elsewhere) so speed can be measured at full scale without the
//! download. Streaming and bounded in memory; the generator itself is `gptoss_model::synth`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use gptoss_model::synth::{tiny_config, write_checkpoint_streaming, StreamLayout};
use gptoss_model::Config;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Shape {
    /// gpt-oss-20b: 24 layers, 32 experts (about 13 GB).
    #[value(name = "20b")]
    B20,
    /// gpt-oss-120b: 36 layers, 128 experts (about 65 GB).
    #[value(name = "120b")]
    B120,
    /// A few-kilobyte model with every structural feature (for tests).
    Tiny,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LayoutArg {
    /// Hugging Face names (`model.layers.N...`, `_blocks`/`_scales`).
    Hf,
    /// OpenAI's `original/` names (`block.N...`, `.blocks`/`.scales`).
    Original,
}

#[derive(clap::Args)]
pub struct Args {
    /// Model shape to imitate.
    #[arg(long, value_enum)]
    pub shape: Shape,
    /// Output folder (created; its config.json and model.safetensors are overwritten).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Tensor naming layout.
    #[arg(long, value_enum, default_value = "original")]
    pub layout: LayoutArg,
    /// Random seed: the same seed gives the same weights in both layouts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn config_for(shape: Shape) -> Config {
    match shape {
        Shape::B20 => Config::gpt_oss_20b(),
        Shape::B120 => Config {
            num_hidden_layers: 36,
            num_experts: 128,
            ..Config::gpt_oss_20b()
        },
        Shape::Tiny => tiny_config(),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = config_for(args.shape);
    let layout = match args.layout {
        LayoutArg::Hf => StreamLayout::HuggingFace,
        LayoutArg::Original => StreamLayout::Original,
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .context("progress bar template")?,
    );
    let start = Instant::now();
    let mut total_bytes = 0;
    write_checkpoint_streaming(&args.out, &config, args.seed, layout, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
        total_bytes = total;
    })
    .with_context(|| format!("cannot write the checkpoint into {}", args.out.display()))?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {} ({:.2} GB of tensor data) in {:.1} s",
        args.out.display(),
        total_bytes as f64 / 1e9,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
