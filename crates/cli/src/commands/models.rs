//! `gpt-oss models`: the gpt-oss models already on this machine, in the Hugging Face cache,
//! Ollama's store and LM Studio's folders, with their format, size and what to pass to
//! `--model` (see `model_stores.rs` for where each tool keeps them).

use crate::model_stores::{discover, hf_hub_root, human_size, lmstudio_roots, ollama_root};

#[derive(clap::Args)]
pub struct Args {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let found = discover();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(());
    }
    if found.is_empty() {
        let show = |p: Option<std::path::PathBuf>| {
            p.map_or("(no home folder)".into(), |p| p.display().to_string())
        };
        println!("no gpt-oss models found. Looked in:");
        println!("  Hugging Face cache  {}", show(hf_hub_root()));
        println!("  Ollama              {}", show(ollama_root()));
        for r in lmstudio_roots() {
            println!("  LM Studio           {}", r.display());
        }
        return Ok(());
    }
    let w_name = found.iter().map(|f| f.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<12} {:<w_name$} {:<12} {:>9}  --model",
        "SOURCE", "NAME", "FORMAT", "SIZE"
    );
    for f in &found {
        println!(
            "{:<12} {:<w_name$} {:<12} {:>9}  {}",
            f.source,
            f.name,
            f.format,
            human_size(f.bytes),
            f.model_arg
        );
    }
    Ok(())
}
