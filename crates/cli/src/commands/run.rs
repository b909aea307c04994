//! `gpt-oss run`: answer one prompt. The answer streams to stdout; the chain
//! of thought goes to stderr with `--show-reasoning`; `--json` prints the
//! parsed harmony messages with the stop reason and token counts instead.
//! Tool calls are answered in a loop (`tool_loop`): built-in tools enabled
//! with `--browser`/`--python`/`--handoff`, function tools from `--tools`
//! answered by `--tool-command`; each call and result is one line on stderr.

use std::io::{IsTerminal, Read, Write};

use anyhow::Context;
use gptoss_chat::{Chat, ChatEvent, ToolCall, TurnStop};
use gptoss_tools::ToolOutput;

use crate::generation_args::ChatArgs;
use crate::tool_args::{BuiltinToolArgs, FunctionToolArgs};
use crate::tool_loop::{one_line, result_line, turn_messages, LoopEnd, LoopUi, ToolLoop};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub chat: ChatArgs,
    #[command(flatten)]
    pub builtin: BuiltinToolArgs,
    #[command(flatten)]
    pub functions: FunctionToolArgs,
    /// Print the chain of thought (analysis channel) on stderr.
    #[arg(long)]
    pub show_reasoning: bool,
    /// Print the parsed messages, stop reason and usage as JSON on stdout
    /// (usage sums every generation of the turn, tool rounds included).
    #[arg(long)]
    pub json: bool,
    /// The prompt; read from stdin when absent or `-`.
    pub prompt: Option<String>,
}

/// Output of `run`: answer on stdout, everything else on stderr.
struct RunUi {
    json: bool,
    show_reasoning: bool,
    dim: bool,
    answer_ends_with_newline: bool,
    reasoning_ends_with_newline: bool,
}

impl RunUi {
    fn err_line(&mut self, line: &str) {
        if !self.reasoning_ends_with_newline {
            eprintln!();
            self.reasoning_ends_with_newline = true;
        }
        if self.dim {
            eprintln!("\x1b[2m{line}\x1b[0m");
        } else {
            eprintln!("{line}");
        }
    }
}

impl LoopUi for RunUi {
    fn event(&mut self, event: ChatEvent) {
        match event {
            ChatEvent::AnswerDelta(text) | ChatEvent::PreambleDelta(text) if !self.json => {
                // Keep the reasoning (stderr) and the answer (stdout) on
                // separate lines when both go to the same terminal.
                if !self.reasoning_ends_with_newline {
                    eprintln!();
                    self.reasoning_ends_with_newline = true;
                }
                let mut out = std::io::stdout().lock();
                // A failed write (closed pipe) only loses output; the turn goes on.
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
                self.answer_ends_with_newline = text.ends_with('\n');
            }
            ChatEvent::ReasoningDelta(text) if self.show_reasoning => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(text.as_bytes());
                let _ = err.flush();
                self.reasoning_ends_with_newline = text.ends_with('\n');
            }
            _ => {}
        }
    }

    fn tool_call(&mut self, call: &ToolCall) {
        self.err_line(&format!(
            "→ {}: {}",
            call.recipient,
            one_line(&call.arguments, 300)
        ));
    }

    fn tool_result(&mut self, output: &ToolOutput) {
        self.err_line(&result_line(output, 300));
    }

    fn ask_function_result(&mut self, _call: &ToolCall) -> Option<String> {
        None
    }
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
    let kit = args.builtin.kit(None)?;
    let mut tools = ToolLoop::new(&kit, &args.functions)?;
    let mut model = crate::model_source::load_model(args.chat.model.as_deref())?;
    crate::model_source::apply_experts(&mut model, args.chat.experts);
    crate::model_source::apply_weights_q8(&mut model, args.chat.weights_q8)?;
    crate::model_source::apply_lora(&mut model, args.chat.lora.as_deref())?;
    let model = crate::device::place(
        model,
        args.chat.device.device,
        &[
            ("--weights-q8", args.chat.weights_q8),
            ("--lora", args.chat.lora.is_some()),
        ],
    )?;
    let mut options = args.chat.options();
    tools.declare(&mut options);
    let mut chat = Chat::new(&model, options)?;
    tools.install(&mut chat);

    let mut ui = RunUi {
        json: args.json,
        show_reasoning: args.show_reasoning,
        dim: std::io::stderr().is_terminal(),
        answer_ends_with_newline: true,
        reasoning_ends_with_newline: true,
    };
    let end = tools.run_turn(&mut chat, Some(prompt), None, &mut ui)?;
    if !ui.reasoning_ends_with_newline {
        eprintln!();
    }
    let messages = turn_messages(chat.history());

    let outcome = match end {
        LoopEnd::Done(outcome) => outcome,
        LoopEnd::RoundsExceeded(call) => {
            if args.json {
                println!("{}", json_report(&messages, "max_tool_rounds", None)?);
            } else if !ui.answer_ends_with_newline {
                println!();
            }
            anyhow::bail!(
                "stopped: the model asked for another tool call ({}) after {} calls; raise --max-tool-rounds to allow more",
                call.recipient,
                tools.max_rounds()
            );
        }
        LoopEnd::Unanswered(call) => {
            if args.json {
                println!("{}", json_report(&messages, "tool_call", None)?);
            } else if !ui.answer_ends_with_newline {
                println!();
            }
            anyhow::bail!(
                "the model called {} with {}; give --tool-command CMD to answer function calls (or use `gpt-oss chat`, which asks you)",
                call.recipient,
                one_line(&call.arguments, 300)
            );
        }
    };

    let summary = outcome.summary;
    if args.json {
        println!(
            "{}",
            json_report(&messages, summary.stop.as_str(), Some(&summary))?
        );
    } else if !ui.answer_ends_with_newline {
        println!();
    }
    match summary.stop {
        TurnStop::Return | TurnStop::Call => {}
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

fn json_report(
    messages: &[gptoss_harmony::Message],
    stop: &str,
    summary: Option<&gptoss_chat::TurnSummary>,
) -> anyhow::Result<String> {
    let usage = summary.map(|s| s.usage).unwrap_or_default();
    let json = serde_json::json!({
        "messages": messages,
        "stop_reason": stop,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "reused_tokens": usage.reused_tokens,
            "computed_tokens": usage.computed_tokens,
            "completion_tokens": usage.completion_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
        },
    });
    Ok(serde_json::to_string_pretty(&json)?)
}
