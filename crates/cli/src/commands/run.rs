//! `gpt-oss run`: answer one prompt. The answer streams to stdout; the chain
//! of thought goes to stderr with `--show-reasoning`; `--json` prints the
//! parsed harmony messages with the stop reason and token counts instead.

use std::io::{Read, Write};

use anyhow::Context;
use gptoss_chat::{Chat, ChatEvent, TurnStop};

use crate::generation_args::ChatArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub chat: ChatArgs,
    /// Print the chain of thought (analysis channel) on stderr.
    #[arg(long)]
    pub show_reasoning: bool,
    /// Print the parsed messages, stop reason and usage as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// The prompt; read from stdin when absent or `-`.
    pub prompt: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let prompt = match args.prompt.as_deref() {
        Some(p) if p != "-" => p.to_string(),
        _ => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the prompt from stdin (it must be UTF-8)")?;
            s
        }
    };
    if prompt.trim().is_empty() {
        anyhow::bail!("the prompt is empty");
    }
    let model = crate::model_source::load_model(args.chat.model.as_deref())?;
    let mut chat = Chat::new(&model, args.chat.options())?;

    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut answer_ends_with_newline = true;
    let mut reasoning_ends_with_newline = true;
    let outcome = chat.send(prompt, None, |event| match event {
        ChatEvent::AnswerDelta(text) | ChatEvent::PreambleDelta(text) if !args.json => {
            // Keep the reasoning (stderr) and the answer (stdout) on separate
            // lines when both go to the same terminal.
            if args.show_reasoning && !reasoning_ends_with_newline {
                eprintln!();
                reasoning_ends_with_newline = true;
            }
            let mut out = stdout.lock();
            // A failed write (closed pipe) only loses output; the turn goes on.
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            answer_ends_with_newline = text.ends_with('\n');
        }
        ChatEvent::ReasoningDelta(text) if args.show_reasoning => {
            let mut err = stderr.lock();
            let _ = err.write_all(text.as_bytes());
            let _ = err.flush();
            reasoning_ends_with_newline = text.ends_with('\n');
        }
        ChatEvent::ToolCallStarted { recipient, .. } if args.show_reasoning => {
            if !reasoning_ends_with_newline {
                eprintln!();
            }
            eprint!("[tool call to {recipient}] ");
            reasoning_ends_with_newline = false;
        }
        ChatEvent::ToolCallArgumentsDelta(text) if args.show_reasoning => {
            eprint!("{text}");
            reasoning_ends_with_newline = text.ends_with('\n');
        }
        _ => {}
    })?;
    if args.show_reasoning && !reasoning_ends_with_newline {
        eprintln!();
    }

    let summary = outcome.summary;
    if args.json {
        let usage = summary.usage;
        let json = serde_json::json!({
            "messages": outcome.messages,
            "stop_reason": summary.stop.as_str(),
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "reused_tokens": usage.reused_tokens,
                "completion_tokens": usage.completion_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
            },
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else if !answer_ends_with_newline {
        println!();
    }
    match summary.stop {
        TurnStop::Return => {}
        TurnStop::Call => {
            if let Some(call) = &outcome.tool_call {
                eprintln!(
                    "note: the model called the tool {} but `run` has no tools yet",
                    call.recipient
                );
            }
        }
        TurnStop::MaxTokens => eprintln!("note: the answer was cut at --max-tokens"),
        TurnStop::ContextFull => eprintln!(
            "note: the answer was cut: the context ({} tokens) is full",
            args.chat.context
        ),
        TurnStop::Cancelled => eprintln!("note: cancelled"),
        TurnStop::OtherRole(role) => {
            eprintln!("note: the model began a {role} message; stopped there")
        }
    }
    if !args.json && outcome.answer().is_empty() && summary.stop != TurnStop::Return {
        anyhow::bail!(
            "the model gave no answer (stopped: {})",
            summary.stop.as_str()
        );
    }
    Ok(())
}
