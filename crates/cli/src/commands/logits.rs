//! `gpt-oss logits` (not built yet).

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`gpt-oss logits` is not implemented yet")
}
