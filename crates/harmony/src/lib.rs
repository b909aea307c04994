//! `gptoss-harmony`: the `o200k_harmony` tokenizer and OpenAI's harmony chat
//! format for gpt-oss, reproducing `tiktoken` and `openai-harmony` 0.0.8
//! token for token. Pure: bytes in, tokens and messages out; no I/O.
//!
//! # Map
//! - [`Tokenizer`] (`tokenizer`): `encode_ordinary`, `encode_with_special_tokens`,
//!   `decode_utf8`/`decode_lossy`/`decode_bytes`, [`IncrementalDecoder`], and
//!   the special-token ids ([`tokenizer::START`], [`tokenizer::STOP_TOKENS`], ...).
//! - Conversation types (`chat`): [`Role`], [`Author`], [`Message`],
//!   [`Content`], [`SystemContent`], [`DeveloperContent`],
//!   [`ToolNamespaceConfig`], [`ToolDescription`], [`Conversation`]. Their
//!   serde JSON is openai-harmony's (`Conversation.to_json()`,
//!   `Message.to_dict()`).
//! - Rendering (`render`): [`render_conversation_for_completion`],
//!   [`render_conversation_for_training`], [`render_conversation`],
//!   [`render_message`], with [`RenderConfig`] (`auto_drop_analysis`,
//!   default `true` like the Python binding).
//! - Parsing (`parse`): [`StreamParser`] fed one token at a time, emitting
//!   [`ParseEvent`]s; [`parse_messages_from_completion_tokens`] for a whole
//!   completion. [`ParseMode::Strict`] errors exactly where openai-harmony's
//!   strict parser errors; [`ParseMode::Lenient`] never errors.
//!
//! # Example
//! ```
//! use gptoss_harmony::*;
//! let conv = Conversation::from_messages([
//!     Message::from_role_and_content(Role::System, SystemContent::new()),
//!     Message::from_role_and_content(Role::User, "What is 2 + 2?"),
//! ]);
//! let prompt = render_conversation_for_completion(&conv, Role::Assistant, &RenderConfig::default())?;
//! assert_eq!(&prompt[prompt.len() - 2..], &[tokenizer::START, 173781]); // <|start|>assistant
//!
//! let tok = Tokenizer::o200k_harmony();
//! let completion = tok.encode_with_special_tokens("<|channel|>final<|message|>4<|return|>");
//! let parsed = parse_messages_from_completion_tokens(&completion, Some(Role::Assistant), ParseMode::Strict)?;
//! assert_eq!(parsed.messages[0].text(), "4");
//! assert_eq!(parsed.messages[0].channel.as_deref(), Some("final"));
//! # Ok::<(), gptoss_harmony::Error>(())
//! ```

pub mod chat;
pub mod parse;
pub mod render;
pub mod tokenizer;
mod typescript;

pub use chat::{
    Author, ChannelConfig, Content, Conversation, DeveloperContent, Message, ReasoningEffort, Role,
    SystemContent, TextContent, ToolDescription, ToolNamespaceConfig,
};
pub use parse::{
    parse_messages_from_completion_tokens, ParseEvent, ParseMode, ParseOutput, ParseWarning,
    ParsedHeader, StreamParser, StreamState,
};
pub use render::{
    render_conversation, render_conversation_for_completion, render_conversation_for_training,
    render_message, RenderConfig, RenderOptions,
};
pub use tokenizer::{IncrementalDecoder, Rank, Tokenizer};

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A token id outside the o200k_harmony vocabulary (> 201088).
    #[error("invalid token id {id}: not in the o200k_harmony vocabulary (0..=201088)")]
    UnknownToken { id: Rank },
    /// Decoded bytes are not valid UTF-8.
    #[error("invalid UTF-8 in decoded tokens (valid up to byte {valid_up_to})")]
    InvalidUtf8 { valid_up_to: usize },
    /// A role word that is not system/developer/user/assistant/tool.
    #[error("unknown role {role:?} (expected system, developer, user, assistant or tool)")]
    UnknownRole { role: String },
    /// A tool message must carry the tool's name (`Author::new(Role::Tool, "functions.x")`).
    #[error("tool messages must have an author name (the tool's name)")]
    ToolWithoutName,
    /// System content outside a system message, or developer content outside
    /// a developer message.
    #[error(
        "{content} may only appear in {} messages, found in a {role} message",
        expected_role(content)
    )]
    ContentNotAllowed { content: &'static str, role: Role },
    /// Conversation/message JSON that does not have the expected shape.
    #[error("invalid harmony JSON: {message}")]
    Json { message: String },
    /// The strict parser rejected the completion at token `index` (`index`
    /// equals the number of tokens for end of stream).
    #[error("harmony parse error at token {index}: {message}")]
    Parse { index: usize, message: String },
}

fn expected_role(content: &str) -> &'static str {
    if content == "SystemContent" {
        "system"
    } else {
        "developer"
    }
}
