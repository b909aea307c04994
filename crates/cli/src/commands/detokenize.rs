//! `gpt-oss detokenize`: token ids (comma/space separated or a JSON array)
//! -> text. Also owns the token-list syntax shared with `gpt-oss parse`.

use std::io::Read;

use anyhow::{bail, Context};
use gptoss_harmony::{Rank, Tokenizer};

#[derive(clap::Args)]
pub struct Args {
    /// Token ids: `1,2,3`, `1 2 3` or `[1, 2, 3]`; read from stdin when absent.
    pub ids: Option<String>,
    /// Fail on bytes that are not valid UTF-8 instead of writing U+FFFD.
    #[arg(long)]
    pub strict_utf8: bool,
}

/// Parse `1,2,3`, `1 2 3` or a JSON array of ids.
pub fn parse_token_list(text: &str) -> anyhow::Result<Vec<Rank>> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        return serde_json::from_str::<Vec<Rank>>(trimmed)
            .context("token ids: expected a JSON array of non-negative integers");
    }
    let mut ids = Vec::new();
    for piece in trimmed.split(|c: char| c == ',' || c.is_whitespace()) {
        if piece.is_empty() {
            continue;
        }
        match piece.parse::<Rank>() {
            Ok(id) => ids.push(id),
            Err(_) => bail!("token ids: {piece:?} is not a non-negative integer id"),
        }
    }
    Ok(ids)
}

/// The ids from an argument, or from stdin when it is absent.
pub fn token_list_from_arg_or_stdin(arg: Option<String>) -> anyhow::Result<Vec<Rank>> {
    let text = match arg {
        Some(t) => t,
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading token ids from stdin")?;
            s
        }
    };
    parse_token_list(&text)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let ids = token_list_from_arg_or_stdin(args.ids)?;
    let tok = Tokenizer::o200k_harmony();
    let text = if args.strict_utf8 {
        tok.decode_utf8(&ids)?
    } else {
        tok.decode_lossy(&ids)?
    };
    super::tokenize::write_stdout(&text)
}
