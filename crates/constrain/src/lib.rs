//! `gptoss-constrain`: constrained decoding (structured output) for gpt-oss.
//! Only tokens that keep the output valid JSON for a schema may be sampled;
//! nothing is left to hope.
//!
//! Two layers:
//! - [`Grammar`] / [`Matcher`] (`json`): a JSON schema (or "any JSON object")
//!   compiled into a token-level matcher over the o200k_harmony vocabulary.
//!   The engine is [`llguidance`] (the grammar engine behind llama.cpp, vLLM
//!   and SGLang structured output): it computes a mask by walking a token
//!   trie with the grammar's lexer/parser state, not by testing 201k tokens
//!   one by one. [`Vocab`] (`vocab`) feeds it our tokenizer's bytes.
//! - [`HarmonyConstraint`] (`harmony`): follows the generated harmony stream
//!   token by token and applies a matcher **only** inside the body of a
//!   `final` message (response format) or of a call to a strict function
//!   (`to=functions.NAME`). Headers, control tokens, analysis and
//!   commentary preambles are never constrained. When the body is complete
//!   JSON, only its closing token (`<|return|>` or `<|call|>`) is allowed;
//!   while it is incomplete, no control token is. With a token budget it
//!   steers the JSON to a close before the budget runs out.
//!
//! - Freeform tools (`freeform`, `lark_regex`): a `custom` tool's Lark or
//!   regex grammar becomes the `pattern` of its `input` string
//!   ([`freeform_arguments_schema`]); a Lark grammar is inlined into one
//!   regex when no rule is recursive.
//!
//! Does not own: the OpenAI wire format (gptoss-server) or sampling.
//!
//! # Example
//! ```
//! use gptoss_constrain::{Format, Grammar};
//! use serde_json::json;
//! let grammar = Grammar::compile(&Format::JsonSchema(json!({
//!     "type": "object",
//!     "properties": {"ok": {"type": "boolean"}},
//!     "required": ["ok"],
//!     "additionalProperties": false
//! })))?;
//! let mut matcher = grammar.matcher();
//! let tok = gptoss_harmony::Tokenizer::o200k_harmony();
//! for id in tok.encode_ordinary(r#"{"ok":true}"#) {
//!     assert!(matcher.allowed()?.contains(id));
//!     matcher.accept(id)?;
//! }
//! assert!(matcher.is_complete());
//! # Ok::<(), gptoss_constrain::Error>(())
//! ```

mod freeform;
mod harmony;
mod header;
mod json;
pub mod lark_regex;
mod vocab;

pub use freeform::{freeform_arguments_schema, freeform_pattern, FreeformSyntax};
pub use harmony::{HarmonyConstraint, StructuredOutput};
pub use header::HeaderGrammar;
pub use json::{Format, Grammar, Matcher, TokenSet};
pub use lark_regex::{lark_to_regex, LarkError};
pub use vocab::Vocab;

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The JSON schema cannot be compiled (unknown type, bad `$ref`,
    /// unsatisfiable, unsupported keyword...).
    #[error("invalid JSON schema: {message}")]
    InvalidSchema { message: String },
    /// A token the matcher does not allow in its current state.
    #[error("token {token} is not allowed here by the JSON grammar: {message}")]
    Rejected { token: u32, message: String },
    /// The grammar engine failed (should not happen; reported, never a panic).
    #[error("constraint engine error: {message}")]
    Engine { message: String },
}
