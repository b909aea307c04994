//! `gpt-oss chat`: interactive chat in the terminal. Line editing and
//! history (rustyline), tokens streamed as they come, the chain of thought
//! shown dimmed (toggle with `/reasoning`), multi-turn history with prefix
//! reuse, slash commands, and Ctrl-C stopping the current answer without
//! leaving the chat. After each answer one line of counts and speeds.
//!
//! Tool calls run in the tool loop (`tool_loop`): each call and its result
//! show as one dim line (`→ python: …` / `← python: …`); function calls
//! without `--tool-command` ask the user for the result; `--handoff-confirm`
//! shows the task and asks before it leaves the machine.
//!
//! Owns only terminal I/O; conversation logic is `gptoss_chat::Chat`.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use gptoss_chat::{Chat, ChatEvent, Effort, ToolCall, TurnOutcome, TurnStop};
use gptoss_engine::LanguageModel;
use gptoss_harmony::Conversation;
use rustyline::error::ReadlineError;

use crate::generation_args::ChatArgs;
use crate::tool_args::{BuiltinToolArgs, FunctionToolArgs, HandoffConfirm};
use crate::tool_loop::{result_line, LoopEnd, LoopUi, ToolLoop};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub chat: ChatArgs,
    #[command(flatten)]
    pub builtin: BuiltinToolArgs,
    #[command(flatten)]
    pub functions: FunctionToolArgs,
    /// Show each handoff task and ask y/n before it is sent.
    #[arg(long)]
    pub handoff_confirm: bool,
    /// Start with the chain of thought hidden (toggle with /reasoning).
    #[arg(long)]
    pub hide_reasoning: bool,
}

const HELP: &str = "\
commands:
  /effort <none|low|medium|high>  reasoning effort for the next answers (none: answer directly)
  /reasoning                      show or hide the chain of thought
  /system <text>                  set the developer instructions (no text: clear them)
  /max-tokens <n|none>            limit the length of each answer
  /reset                          start a new conversation (settings are kept)
  /save <file>                    write the conversation as openai-harmony JSON
  /load <file>                    read a conversation written by /save (or openai-harmony)
  /stats                          token counts of this session (prefix reuse)
  /help                           this list
  /quit                           leave (also Ctrl-D)
Ctrl-C stops the answer being written; the chat goes on.
Tools are enabled when chat starts: --python on, --browser offline|web, --handoff on
[--handoff-confirm], --tools FILE [--tool-command CMD] (see gpt-oss chat --help).";

/// Asks on the terminal before a handoff, showing what would be sent.
struct AskBeforeHandoff;

impl HandoffConfirm for AskBeforeHandoff {
    fn confirm(&self, model: &str, url: &str, task: &str) -> bool {
        println!("handoff: the model wants to send this task to {model} at {url}:");
        for line in task.lines() {
            println!("  | {line}");
        }
        print!("send it? [y/N] ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim(), "y" | "Y" | "yes" | "Yes")
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.handoff_confirm && args.builtin.handoff != crate::tool_args::Switch::On {
        anyhow::bail!("--handoff-confirm needs --handoff on");
    }
    let confirm: Option<Arc<dyn HandoffConfirm>> = if args.handoff_confirm {
        Some(Arc::new(AskBeforeHandoff))
    } else {
        None
    };
    let kit = args.builtin.kit(confirm)?;
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

    let mut editor = rustyline::DefaultEditor::new().context("cannot set up line editing")?;
    // Ctrl-C while an answer is generated sets this flag; the engine checks
    // it before every token. While a line is edited, rustyline reads Ctrl-C
    // as a key instead (the terminal is in raw mode), so no signal arrives.
    // The handler is installed after the editor on purpose: rustyline puts
    // its own SIGINT handler in place when it is created (it only reads it
    // while editing), and ours must be the one active during generation.
    let cancel = Arc::new(AtomicBool::new(false));
    let handler_flag = Arc::clone(&cancel);
    ctrlc::set_handler(move || handler_flag.store(true, Ordering::Relaxed))
        .context("cannot install the Ctrl-C handler")?;

    let mut view = View {
        color: std::io::stdout().is_terminal(),
        show_reasoning: !args.hide_reasoning,
    };
    println!(
        "gpt-oss chat: context {} tokens, effort {}. /help lists the commands; Ctrl-D leaves.",
        chat.session().context_tokens(),
        chat.effort()
    );
    let available = tools.describe();
    if !available.is_empty() {
        println!("tools: {}", available.join(", "));
    }

    loop {
        let line = match editor.readline(">>> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                println!("(Ctrl-C: type /quit or press Ctrl-D to leave)");
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(err) => return Err(err).context("reading the terminal"),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        // A failed history insert only loses up-arrow recall.
        let _ = editor.add_history_entry(line);
        if let Some(command) = line.strip_prefix('/') {
            match command_line(command, &mut chat, &mut view) {
                Ok(Flow::Quit) => break,
                Ok(Flow::Continue) => {}
                Err(err) => println!("error: {err:#}"),
            }
            continue;
        }
        cancel.store(false, Ordering::Relaxed);
        let mut printer = Printer::new(&view, &mut editor);
        match tools.run_turn(
            &mut chat,
            Some(line.to_string()),
            Some(&cancel),
            &mut printer,
        ) {
            Ok(LoopEnd::Done(outcome)) => printer.finish(&outcome),
            Ok(LoopEnd::RoundsExceeded(call)) => {
                printer.close_section();
                printer.note(&format!(
                    "[stopped: the model asked for another tool call ({}) after {} calls; start chat with a larger --max-tool-rounds to allow more]",
                    call.recipient,
                    tools.max_rounds()
                ));
            }
            Ok(LoopEnd::Unanswered(call)) => {
                printer.close_section();
                printer.note(&format!(
                    "[stopped: no result for {}; the call stays unanswered]",
                    call.recipient
                ));
            }
            Err(err) => {
                printer.close_section();
                println!("error: {err}");
            }
        }
    }
    Ok(())
}

enum Flow {
    Continue,
    Quit,
}

fn command_line<M: LanguageModel>(
    command: &str,
    chat: &mut Chat<M>,
    view: &mut View,
) -> anyhow::Result<Flow> {
    let (name, rest) = match command.split_once(char::is_whitespace) {
        Some((name, rest)) => (name, rest.trim()),
        None => (command, ""),
    };
    match name {
        "quit" | "exit" | "q" => return Ok(Flow::Quit),
        "help" | "?" => println!("{HELP}"),
        "reset" => {
            chat.reset();
            println!("new conversation (effort {}).", chat.effort());
        }
        "effort" => {
            if rest.is_empty() {
                println!(
                    "effort: {} (choose none, low, medium or high)",
                    chat.effort()
                );
            } else {
                let effort: Effort = rest.parse()?;
                chat.set_effort(effort);
                println!("effort: {effort}");
            }
        }
        "max-tokens" => {
            let limit = match rest {
                "" => {
                    let current = chat.options().max_tokens;
                    println!(
                        "max tokens: {}",
                        current.map_or("none".to_string(), |n| n.to_string())
                    );
                    return Ok(Flow::Continue);
                }
                "none" | "off" => None,
                n => Some(n.parse::<usize>().map_err(|_| {
                    anyhow::anyhow!("usage: /max-tokens N (a positive number) or none")
                })?),
            };
            chat.set_max_tokens(limit);
            println!(
                "max tokens: {}",
                limit.map_or("none".to_string(), |n| n.to_string())
            );
        }
        "reasoning" => {
            view.show_reasoning = !view.show_reasoning;
            println!(
                "chain of thought: {}",
                if view.show_reasoning {
                    "shown"
                } else {
                    "hidden"
                }
            );
        }
        "system" => {
            if rest.is_empty() {
                chat.set_instructions(None);
                println!("developer instructions cleared.");
            } else {
                chat.set_instructions(Some(rest.to_string()));
                println!("developer instructions set.");
            }
        }
        "save" => {
            if rest.is_empty() {
                anyhow::bail!("usage: /save FILE");
            }
            let json = serde_json::to_string_pretty(&chat.conversation())?;
            std::fs::write(Path::new(rest), json + "\n")
                .with_context(|| format!("cannot write {rest}"))?;
            println!(
                "saved {} messages to {rest}.",
                chat.conversation().messages.len()
            );
        }
        "load" => {
            if rest.is_empty() {
                anyhow::bail!("usage: /load FILE");
            }
            let json = std::fs::read_to_string(Path::new(rest))
                .with_context(|| format!("cannot read {rest}"))?;
            let conversation = Conversation::from_json(&json)
                .with_context(|| format!("{rest} is not a conversation"))?;
            chat.load_conversation(conversation)?;
            println!(
                "loaded {} messages (effort {}).",
                chat.history().len(),
                chat.effort()
            );
        }
        "stats" => {
            let t = chat.session().totals();
            let saved = if t.prompt_tokens > 0 {
                100.0 * t.reused_tokens as f64 / t.prompt_tokens as f64
            } else {
                0.0
            };
            println!(
                "{} answers; prompt tokens {} ({} computed, {} reused from the cache: {saved:.0}% saved); generated {}",
                t.requests, t.prompt_tokens, t.computed_tokens, t.reused_tokens, t.completion_tokens
            );
        }
        _ => anyhow::bail!("unknown command /{name}; /help lists the commands"),
    }
    Ok(Flow::Continue)
}

/// Display settings.
struct View {
    color: bool,
    show_reasoning: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Reasoning,
    Answer,
    Tool,
}

/// Writes one turn's events to stdout as they arrive; asks the user for
/// function results.
struct Printer<'e> {
    editor: &'e mut rustyline::DefaultEditor,
    color: bool,
    show_reasoning: bool,
    section: Section,
    at_line_start: bool,
    thinking_noted: bool,
}

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

impl<'e> Printer<'e> {
    fn new(view: &View, editor: &'e mut rustyline::DefaultEditor) -> Printer<'e> {
        Printer {
            editor,
            color: view.color,
            show_reasoning: view.show_reasoning,
            section: Section::None,
            at_line_start: true,
            thinking_noted: false,
        }
    }

    /// Model text with control characters made harmless: a model must not
    /// be able to send escape sequences to the user's terminal.
    fn write_model_text(&mut self, text: &str) {
        let clean: String = text
            .chars()
            .filter(|&c| c != '\r')
            .map(|c| {
                if c.is_control() && c != '\n' && c != '\t' {
                    char::REPLACEMENT_CHARACTER
                } else {
                    c
                }
            })
            .collect();
        self.write(&clean);
    }

    fn write(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        // A failed write to the terminal only loses output.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        self.at_line_start = text.ends_with('\n');
    }

    fn enter(&mut self, section: Section) {
        if self.section == section {
            return;
        }
        self.close_section();
        if section != Section::Answer && self.color {
            self.write(DIM);
        }
        self.section = section;
    }

    fn close_section(&mut self) {
        if self.section == Section::None {
            return;
        }
        if self.section != Section::Answer && self.color {
            self.write(RESET);
        }
        if !self.at_line_start {
            self.write("\n");
        }
        self.section = Section::None;
    }

    fn event(&mut self, event: ChatEvent) {
        match event {
            ChatEvent::ReasoningDelta(text) => {
                if self.show_reasoning {
                    self.enter(Section::Reasoning);
                    self.write_model_text(&text);
                } else if !self.thinking_noted {
                    self.thinking_noted = true;
                    self.enter(Section::Reasoning);
                    self.write("(thinking...)");
                }
            }
            ChatEvent::AnswerDelta(text) | ChatEvent::PreambleDelta(text) => {
                self.enter(Section::Answer);
                self.write_model_text(&text);
            }
            ChatEvent::ToolCallStarted { recipient, .. } => {
                self.enter(Section::Tool);
                self.write_model_text(&format!("→ {recipient}: "));
            }
            ChatEvent::ToolCallArgumentsDelta(text) => {
                self.enter(Section::Tool);
                self.write_model_text(&text.replace('\n', " ⏎ "));
            }
            ChatEvent::ToolCallDone(_) | ChatEvent::Done(_) => {}
        }
    }

    /// One dim line of its own.
    fn note(&mut self, line: &str) {
        self.close_section();
        let line = line.replace(|c: char| c.is_control(), " ");
        if self.color {
            self.write(&format!("{DIM}{line}{RESET}\n"));
        } else {
            self.write(&format!("{line}\n"));
        }
    }

    fn finish(&mut self, outcome: &TurnOutcome) {
        self.close_section();
        let s = &outcome.summary;
        let u = &s.usage;
        let stop = match s.stop {
            TurnStop::Return => String::new(),
            TurnStop::Cancelled => " · stopped (Ctrl-C)".to_string(),
            TurnStop::MaxTokens => " · cut at --max-tokens".to_string(),
            TurnStop::ContextFull => " · context full: /reset to start over".to_string(),
            TurnStop::Call => " · tool call".to_string(),
            TurnStop::OtherRole(role) => format!(" · stopped at a {role} message"),
        };
        let line = format!(
            "[prompt {} tokens ({} computed, {} reused) {:.1} tok/s · generated {} tokens ({} reasoning) {:.1} tok/s{stop}]",
            u.prompt_tokens,
            u.computed_tokens,
            u.reused_tokens,
            s.prefill_tokens_per_second(),
            u.completion_tokens,
            u.reasoning_tokens,
            s.decode_tokens_per_second(),
        );
        if self.color {
            self.write(&format!("{DIM}{line}{RESET}\n"));
        } else {
            self.write(&format!("{line}\n"));
        }
    }
}

impl LoopUi for Printer<'_> {
    fn event(&mut self, event: ChatEvent) {
        Printer::event(self, event);
    }

    fn tool_call(&mut self, _call: &ToolCall) {
        // The call was streamed as `→ recipient: arguments`; end its line.
        self.close_section();
    }

    fn tool_result(&mut self, output: &gptoss_tools::ToolOutput) {
        self.note(&result_line(output, 200));
    }

    fn ask_function_result(&mut self, call: &ToolCall) -> Option<String> {
        self.close_section();
        self.note(&format!(
            "the model called {}; type the result (Ctrl-C leaves the call unanswered):",
            call.recipient
        ));
        self.editor
            .readline(&format!("{} result> ", call.recipient))
            .ok()
    }
}
