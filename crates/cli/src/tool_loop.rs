//! The tool loop of `run` and `chat`: generate; when the turn stops on
//! `<|call|>`, answer the call — built-in tools (`browser.*`, `python`,
//! `handoff.*`) through the [`ToolRegistry`], the caller's `functions.*`
//! through `--tool-command` or the front end (chat asks the user) — append
//! the tool message (author = the tool, recipient `assistant`, the call's
//! channel) and generate again, up to `--max-tool-rounds` calls per turn.
//!
//! Owns the dispatch and the `--tool-command` process; terminal output is
//! the front end's ([`LoopUi`]); conversation state is `gptoss_chat::Chat`.

use std::sync::atomic::AtomicBool;

use crate::tool_args::FunctionToolArgs;
use gptoss_chat::{
    Chat, ChatError, ChatEvent, ChatOptions, ChatUsage, ToolCall, TurnOutcome, TurnStop,
};
use gptoss_engine::LanguageModel;
use gptoss_harmony::{Message, Role, ToolDescription};
use gptoss_tools::command::{run_shell_command, CommandEnd, CommandLimits};
use gptoss_tools::{ToolKit, ToolOutput, ToolRegistry};

/// What the front end does while a turn with tools runs.
pub trait LoopUi {
    /// A streamed piece of the model's output.
    fn event(&mut self, event: ChatEvent);
    /// A complete call is about to be answered.
    fn tool_call(&mut self, call: &ToolCall);
    /// The answer the model will read.
    fn tool_result(&mut self, output: &ToolOutput);
    /// A `functions.*` call with no `--tool-command`: the user's answer, or
    /// `None` when nobody can answer (the turn stops).
    fn ask_function_result(&mut self, call: &ToolCall) -> Option<String>;
}

/// How a turn with tools ended.
pub enum LoopEnd {
    /// The model stopped for a reason other than a tool call (normally
    /// `<|return|>`); the last generation's outcome.
    Done(TurnOutcome),
    /// The model wanted one more call than `--max-tool-rounds` allows.
    RoundsExceeded(ToolCall),
    /// A function call nobody could answer.
    Unanswered(ToolCall),
}

/// The tools of one conversation.
pub struct ToolLoop {
    registry: ToolRegistry,
    functions: Vec<ToolDescription>,
    tool_command: Option<ToolCommand>,
    max_rounds: usize,
}

/// `--tool-command` and the limits it runs under.
#[derive(Clone, Debug)]
pub struct ToolCommand {
    pub command: String,
    pub limits: CommandLimits,
}

impl ToolLoop {
    /// The built-in tools of `kit` and the caller's functions of `functions`.
    pub fn new(kit: &ToolKit, functions: &FunctionToolArgs) -> anyhow::Result<ToolLoop> {
        Ok(ToolLoop {
            registry: kit.registry(|_| true)?,
            functions: functions.functions()?,
            tool_command: functions.tool_command()?,
            max_rounds: functions.max_tool_rounds,
        })
    }

    pub fn max_rounds(&self) -> usize {
        self.max_rounds
    }

    /// Names of what the model can call (`browser`, `python`, `functions.x`).
    pub fn describe(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .registry
            .names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        names.extend(
            self.functions
                .iter()
                .map(|f| format!("functions.{}", f.name)),
        );
        names
    }

    /// Declare the built-in tools in the system message, as the reference
    /// does (`SystemContent.with_tools(tool.tool_config)`).
    pub fn declare(&self, options: &mut ChatOptions) {
        for config in self.registry.namespace_configs() {
            options.system = std::mem::take(&mut options.system).with_tools(config);
        }
    }

    /// Declare the caller's functions in the developer message.
    pub fn install<M: LanguageModel>(&self, chat: &mut Chat<M>) {
        chat.set_function_tools(self.functions.clone());
    }

    /// Run one turn: `user` (when given) is added first; then generate and
    /// answer tool calls until the model stops for another reason.
    pub fn run_turn<M: LanguageModel>(
        &mut self,
        chat: &mut Chat<M>,
        user: Option<String>,
        cancel: Option<&AtomicBool>,
        ui: &mut dyn LoopUi,
    ) -> Result<LoopEnd, ChatError> {
        let mut outcome = match user {
            Some(text) => chat.send(text, cancel, |e| ui.event(e))?,
            None => chat.generate(cancel, |e| ui.event(e))?,
        };
        let mut rounds = 0;
        // Usage and timings of the whole turn: every generation of the loop.
        let mut usage = outcome.summary.usage;
        let mut timings = outcome.summary.timings;
        loop {
            let call = match (&outcome.summary.stop, &outcome.tool_call) {
                (TurnStop::Call, Some(call)) => call.clone(),
                _ => {
                    outcome.summary.usage = usage;
                    outcome.summary.timings = timings;
                    return Ok(LoopEnd::Done(outcome));
                }
            };
            if rounds >= self.max_rounds {
                return Ok(LoopEnd::RoundsExceeded(call));
            }
            rounds += 1;
            ui.tool_call(&call);
            let Some(output) = self.answer(&call, ui) else {
                return Ok(LoopEnd::Unanswered(call));
            };
            ui.tool_result(&output);
            chat.push_message(output.to_message(call.channel.as_deref()));
            outcome = chat.generate(cancel, |e| ui.event(e))?;
            add_usage(&mut usage, &outcome.summary.usage);
            timings.prefill += outcome.summary.timings.prefill;
            timings.decode += outcome.summary.timings.decode;
        }
    }

    /// The tool message for `call`, or `None` when nobody answers it.
    fn answer(&mut self, call: &ToolCall, ui: &mut dyn LoopUi) -> Option<ToolOutput> {
        let recipient = call.recipient.as_str();
        if self.registry.handles(recipient) {
            return Some(self.registry.call(recipient, &call.arguments));
        }
        if let Some(name) = recipient.strip_prefix("functions.") {
            if self.functions.iter().any(|f| f.name == name) {
                return match &self.tool_command {
                    Some(tc) => Some(run_tool_command(
                        &tc.command,
                        name,
                        recipient,
                        &call.arguments,
                        &tc.limits,
                    )),
                    None => ui
                        .ask_function_result(call)
                        .map(|text| ToolOutput::ok(recipient, text)),
                };
            }
        }
        let available = self.describe();
        Some(ToolOutput::error(
            recipient,
            format!(
                "[ERROR] Unknown tool recipient `{recipient}`. Available tools: {}.",
                if available.is_empty() {
                    "none".to_string()
                } else {
                    available.join(", ")
                }
            ),
        ))
    }
}

/// Adds one generation's token counts to the turn's. Prompt tokens count once
/// per generation, as the API counts each model call of a tool loop.
fn add_usage(total: &mut ChatUsage, next: &ChatUsage) {
    total.prompt_tokens += next.prompt_tokens;
    total.reused_tokens += next.reused_tokens;
    total.computed_tokens += next.computed_tokens;
    total.completion_tokens += next.completion_tokens;
    total.reasoning_tokens += next.reasoning_tokens;
}

/// Run `--tool-command` for one function call: `sh -c CMD`, the arguments
/// on stdin, `GPT_OSS_TOOL_NAME` set; stdout is the result. A failure (the
/// command cannot start, exits non-zero, runs past its time limit or writes
/// too much) becomes an error the model reads.
pub fn run_tool_command(
    cmd: &str,
    name: &str,
    recipient: &str,
    arguments: &str,
    limits: &CommandLimits,
) -> ToolOutput {
    let run = match run_shell_command(cmd, &[("GPT_OSS_TOOL_NAME", name)], arguments, limits) {
        Ok(run) => run,
        Err(e) => {
            return ToolOutput::error(
                recipient,
                format!("[ERROR] the tool command could not run: {e}"),
            )
        }
    };
    match run.end {
        CommandEnd::Exited(status) if status.success() => ToolOutput::ok(recipient, run.stdout),
        CommandEnd::Exited(status) => {
            let detail = gptoss_tools::maybe_truncate(run.stderr.trim(), 500);
            ToolOutput::error(
                recipient,
                format!(
                    "[ERROR] the tool failed ({status}){}",
                    if detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {detail}")
                    }
                ),
            )
        }
        CommandEnd::TimedOut => ToolOutput::error(
            recipient,
            format!(
                "[ERROR] the tool did not answer within {} s and was stopped.",
                limits.timeout.as_secs_f64()
            ),
        ),
        CommandEnd::OutputCap => ToolOutput::error(
            recipient,
            format!(
                "[ERROR] the tool wrote more than {} bytes and was stopped.",
                limits.max_output_bytes
            ),
        ),
    }
}

/// One line for the terminal: control characters replaced, newlines shown
/// as `⏎`, cut to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .trim()
        .chars()
        .map(|c| match c {
            '\n' => '⏎',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    gptoss_tools::maybe_truncate(&flat, max)
}

/// The terminal line showing a tool's reply: `← author (error): text`, the
/// text flattened by [`one_line`] to `max` characters.
pub fn result_line(output: &ToolOutput, max: usize) -> String {
    format!(
        "← {}{}: {}",
        output.author,
        if output.is_error { " (error)" } else { "" },
        one_line(&output.text, max)
    )
}

/// The tool messages a turn added, for `--json` (all messages of the turn:
/// calls, results, answer).
pub fn turn_messages(history: &[Message]) -> Vec<Message> {
    let start = history
        .iter()
        .rposition(|m| m.author.role == Role::User)
        .map_or(0, |i| i + 1);
    history[start..].to_vec()
}
