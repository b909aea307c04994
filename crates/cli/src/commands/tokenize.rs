//! `gpt-oss tokenize`: text -> o200k_harmony token ids, printed as a JSON array.
//! Owns only argument handling; tokenization is `gptoss_harmony::Tokenizer`.

use std::io::Read;

use anyhow::Context;
use gptoss_harmony::Tokenizer;

#[derive(clap::Args)]
pub struct Args {
    /// Turn special-token text such as `<|start|>` into its id (as
    /// openai-harmony `encode(text, allowed_special="all")`). Without it all
    /// text is ordinary, as harmony encodes message text.
    #[arg(long)]
    pub allow_special: bool,
    /// Text to encode; read from stdin when absent.
    pub text: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let text = match args.text {
        Some(t) => t,
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading text from stdin (it must be UTF-8)")?;
            s
        }
    };
    let tok = Tokenizer::o200k_harmony();
    let ids = if args.allow_special {
        tok.encode_with_special_tokens(&text)
    } else {
        tok.encode_ordinary(&text)
    };
    write_stdout(&serde_json::to_string(&ids)?)
}

/// Write `text` and a newline to stdout; a closed pipe (`| head`) is not an error.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
