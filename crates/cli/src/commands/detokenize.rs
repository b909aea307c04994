//! `gpt-oss detokenize` (not built yet).

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`gpt-oss detokenize` is not implemented yet")
}
