//! gptoss-chat: harmony-aware generation on top of the engine.
//!
//! A `Chat` renders its conversation with harmony (reasoning effort in the
//! system message, plus our `none` extension that opens the final channel
//! directly), generates with a `gptoss_engine::Session` (prefix reuse across
//! turns), parses the tokens with harmony's lenient streaming parser and
//! reports `ChatEvent`s: reasoning, answer, preamble and tool-call pieces,
//! then `Done` with usage and timings.
//!
//! Architecture invariants: chain of thought is never delivered as answer
//! text; completed turns' analysis never goes back into a prompt; this crate
//! runs no tool and does no I/O (the tool loop drives `generate` /
//! `push_tool_result`, see `chat.rs`).

mod chat;
mod effort;
mod event;

pub use chat::{
    final_channel_opening, history_for_prompt, Chat, ChatOptions, DEFAULT_CONTEXT_TOKENS,
};
pub use effort::Effort;
pub use event::{ChatEvent, ChatUsage, ToolCall, TurnOutcome, TurnStop, TurnSummary};

/// Everything that can go wrong in a chat turn.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error(transparent)]
    Engine(#[from] gptoss_engine::EngineError),
    #[error(transparent)]
    Harmony(#[from] gptoss_harmony::Error),
    #[error("unknown reasoning effort {0:?} (expected none, low, medium or high)")]
    UnknownEffort(String),
    #[error("invalid conversation: {0}")]
    BadConversation(String),
}
