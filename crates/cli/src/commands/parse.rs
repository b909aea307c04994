//! `gpt-oss parse`: completion token ids -> harmony messages, printed as
//! `{"messages": [...]}` in openai-harmony's JSON form. Lenient by default
//! (warnings on stderr); `--strict` fails where openai-harmony fails.

use anyhow::bail;
use gptoss_harmony::{tokenizer, ParseMode, Role};

use super::detokenize::token_list_from_arg_or_stdin;

#[derive(clap::Args)]
pub struct Args {
    /// Token ids: `1,2,3`, `1 2 3` or `[1, 2, 3]`; read from stdin when absent.
    #[arg(long)]
    pub tokens: Option<String>,
    /// Role whose `<|start|>ROLE` precedes the tokens (`assistant`), or
    /// `none` when the tokens begin with `<|start|>`. Default: `none` if the
    /// first token is `<|start|>`, else `assistant`.
    #[arg(long)]
    pub role: Option<String>,
    /// Fail exactly where openai-harmony's strict parser fails.
    #[arg(long)]
    pub strict: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let ids = token_list_from_arg_or_stdin(args.tokens)?;
    let role = match args.role.as_deref() {
        Some("none") => None,
        Some(r) => Some(r.parse::<Role>()?),
        None if ids.first() == Some(&tokenizer::START) => None,
        None => Some(Role::Assistant),
    };
    let mode = if args.strict {
        ParseMode::Strict
    } else {
        ParseMode::Lenient
    };
    let out = match gptoss_harmony::parse_messages_from_completion_tokens(&ids, role, mode) {
        Ok(out) => out,
        Err(e) => bail!("{e}"),
    };
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    let json = serde_json::json!({ "messages": out.messages });
    super::tokenize::write_stdout(&serde_json::to_string_pretty(&json)?)
}
