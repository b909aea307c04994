//! `gpt-oss index DIR [--out INDEX_DIR]`: build the offline browser's
//! tantivy index of a folder of Markdown, text and HTML files, with a
//! progress bar. Indexing itself is `gptoss_tools::browser::offline`.

use std::path::PathBuf;

use anyhow::Context;
use gptoss_tools::browser::offline::{build_index, default_index_dir, IndexEvent};

#[derive(clap::Args)]
pub struct Args {
    /// Folder of .md/.txt/.html documents (searched recursively; hidden
    /// files and folders are skipped).
    pub dir: PathBuf,
    /// Where to write the index (default: DIR/.gptoss-index). An older index
    /// there is replaced.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_index_dir(&args.dir));
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} documents {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut skipped = Vec::new();
    let stats = build_index(&args.dir, &out, &mut |event| match event {
        IndexEvent::Found { n_files } => bar.set_length(n_files as u64),
        IndexEvent::Indexed { path } => {
            bar.set_message(
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            bar.inc(1);
        }
        IndexEvent::Skipped { path, reason } => {
            skipped.push(format!("{}: {reason}", path.display()));
            bar.inc(1);
        }
    })
    .with_context(|| format!("indexing {}", args.dir.display()))?;
    bar.finish_and_clear();
    for s in &skipped {
        eprintln!("skipped {s}");
    }
    eprintln!(
        "indexed {} documents ({} skipped) into {}",
        stats.n_indexed,
        stats.n_skipped,
        stats.index_dir.display()
    );
    Ok(())
}
