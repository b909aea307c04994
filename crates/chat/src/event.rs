//! What a turn reports while it runs, and what it returns when it ends.
//!
//! Events are already separated by meaning: chain of thought
//! (`ReasoningDelta`) is never delivered as answer text (`AnswerDelta`), so a
//! front end only has to decide how (or whether) to show each kind.

use gptoss_engine::{StopReason, Timings};
use gptoss_harmony::{Message, Role};

/// One streamed piece of an assistant turn.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// Chain-of-thought text (the `analysis` channel, no recipient).
    ReasoningDelta(String),
    /// Answer text for the user (the `final` channel).
    AnswerDelta(String),
    /// User-visible commentary without a recipient (a "preamble" before
    /// tool calls).
    PreambleDelta(String),
    /// The model opened a message addressed to a tool.
    ToolCallStarted {
        recipient: String,
        channel: Option<String>,
        content_type: Option<String>,
    },
    /// More of the tool call's arguments.
    ToolCallArgumentsDelta(String),
    /// The tool call's message is complete.
    ToolCallDone(ToolCall),
    /// The turn ended.
    Done(TurnSummary),
}

/// A complete tool call taken from the model's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// `functions.NAME`, `browser.search`, `python`, ...
    pub recipient: String,
    /// The channel the call was made on; the tool's result goes back on it.
    pub channel: Option<String>,
    /// e.g. `<|constrain|>json`, as the model wrote it.
    pub content_type: Option<String>,
    /// The message text: the arguments (JSON for function tools).
    pub arguments: String,
}

/// Why an assistant turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnStop {
    /// `<|return|>`: the answer is complete.
    Return,
    /// `<|call|>`: the model waits for a tool result (see `TurnOutcome::tool_call`).
    Call,
    /// The token limit of the turn was reached.
    MaxTokens,
    /// The context is full.
    ContextFull,
    /// Cancelled by the caller (Ctrl-C, a dropped stream).
    Cancelled,
    /// The model started a message for another role (it began writing the
    /// user's next turn, say); generation was stopped before it.
    OtherRole(Role),
}

impl TurnStop {
    pub(crate) fn from_engine(reason: StopReason) -> TurnStop {
        match reason {
            StopReason::StopToken(gptoss_harmony::tokenizer::CALL) => TurnStop::Call,
            StopReason::StopToken(_) => TurnStop::Return,
            StopReason::MaxTokens => TurnStop::MaxTokens,
            StopReason::ContextFull => TurnStop::ContextFull,
            StopReason::Cancelled => TurnStop::Cancelled,
        }
    }

    /// A short lower-case description.
    pub fn as_str(&self) -> &'static str {
        match self {
            TurnStop::Return => "return",
            TurnStop::Call => "call",
            TurnStop::MaxTokens => "max_tokens",
            TurnStop::ContextFull => "context_full",
            TurnStop::Cancelled => "cancelled",
            TurnStop::OtherRole(_) => "other_role",
        }
    }
}

/// Token counts of one assistant turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChatUsage {
    /// Tokens in the rendered prompt (including an opened final channel).
    pub prompt_tokens: usize,
    /// Prompt tokens taken from the KV cache of earlier turns.
    pub reused_tokens: usize,
    /// Prompt tokens run through the model.
    pub computed_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Generated tokens inside analysis (chain-of-thought) messages.
    pub reasoning_tokens: usize,
}

/// The summary carried by `ChatEvent::Done` and `TurnOutcome`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnSummary {
    pub stop: TurnStop,
    pub usage: ChatUsage,
    pub timings: Timings,
}

impl TurnSummary {
    /// Computed prompt tokens per second.
    pub fn prefill_tokens_per_second(&self) -> f64 {
        rate(self.usage.computed_tokens, self.timings.prefill)
    }
    /// Generated tokens per second.
    pub fn decode_tokens_per_second(&self) -> f64 {
        rate(self.usage.completion_tokens, self.timings.decode)
    }
}

fn rate(n: usize, d: std::time::Duration) -> f64 {
    let secs = d.as_secs_f64();
    if n == 0 || secs <= 0.0 {
        0.0
    } else {
        n as f64 / secs
    }
}

/// The result of one assistant turn.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnOutcome {
    /// The assistant messages parsed from the output, as appended to the
    /// history (analysis included; it is dropped from later prompts).
    pub messages: Vec<Message>,
    /// The pending tool call when the turn stopped on `<|call|>`: the caller
    /// runs the tool, adds its result with `Chat::push_tool_result`, and calls
    /// `Chat::generate` again to continue the turn.
    pub tool_call: Option<ToolCall>,
    pub summary: TurnSummary,
    /// The generated token ids, stop token included.
    pub tokens: Vec<u32>,
}

impl TurnOutcome {
    /// The final-channel text of the turn.
    pub fn answer(&self) -> String {
        self.messages
            .iter()
            .filter(|m| m.channel.as_deref() == Some("final"))
            .map(Message::text)
            .collect()
    }
    /// The analysis-channel text of the turn.
    pub fn reasoning(&self) -> String {
        self.messages
            .iter()
            .filter(|m| m.channel.as_deref() == Some("analysis") && m.recipient.is_none())
            .map(Message::text)
            .collect::<Vec<_>>()
            .join("\n")
    }
}
