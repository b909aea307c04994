//! `gpt-oss chat` (not built yet).

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`gpt-oss chat` is not implemented yet")
}
