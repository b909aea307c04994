//! `gpt-oss render`: an openai-harmony conversation JSON file
//! (`{"messages": [...]}`, as `Conversation.to_json()` writes) -> the token
//! ids the model reads, or their text. Rendering is `gptoss_harmony::render`.

use std::path::PathBuf;

use anyhow::Context;
use gptoss_harmony::{Conversation, RenderConfig, Role, Tokenizer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Purpose {
    /// The prompt: the conversation followed by `<|start|>{role}`.
    Completion,
    /// The conversation; a last assistant `final` message ends in `<|return|>`.
    Training,
}

#[derive(clap::Args)]
pub struct Args {
    /// Conversation JSON file (openai-harmony `Conversation.to_json()`); `-` for stdin.
    #[arg(long)]
    pub input: PathBuf,
    /// What to render.
    #[arg(long = "for", value_enum, default_value = "completion")]
    pub purpose: Purpose,
    /// Keep earlier `analysis` messages (by default they are dropped once the
    /// last assistant message is `final`, like openai-harmony).
    #[arg(long)]
    pub keep_analysis: bool,
    /// Role of the next turn for `--for completion`.
    #[arg(long, default_value = "assistant")]
    pub role: String,
    /// Print the rendered text instead of the ids.
    #[arg(long)]
    pub text: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let json = if args.input.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading the conversation from stdin")?;
        s
    } else {
        std::fs::read_to_string(&args.input)
            .with_context(|| format!("reading {}", args.input.display()))?
    };
    let conversation = Conversation::from_json(&json)
        .with_context(|| format!("parsing {}", args.input.display()))?;
    let config = RenderConfig {
        auto_drop_analysis: !args.keep_analysis,
    };
    let ids = match args.purpose {
        Purpose::Completion => {
            let role: Role = args.role.parse()?;
            gptoss_harmony::render_conversation_for_completion(&conversation, role, &config)?
        }
        Purpose::Training => {
            gptoss_harmony::render_conversation_for_training(&conversation, &config)?
        }
    };
    if args.text {
        // Rendered text is always valid UTF-8 (it was encoded from strings).
        super::tokenize::write_stdout(&Tokenizer::o200k_harmony().decode_lossy(&ids)?)
    } else {
        super::tokenize::write_stdout(&serde_json::to_string(&ids)?)
    }
}
