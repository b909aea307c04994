//! gptoss-engine: token-level generation. Token ids in, token ids out; no
//! text, no chat format, no HTTP.
//!
//! - `language_model`: the seam (`LanguageModel`, `KvState`), implemented
//!   for `gptoss_model::Model` and for the weightless `ScriptedModel`.
//! - `sampler`: greedy / temperature / top-k / top-p / min-p with a seed.
//! - `session`: one KV cache plus the ids it holds; prefix reuse across
//!   requests; the prefill -> decode loop with stop reasons and cancellation.
//!
//! Architecture invariant: the engine never looks inside the model (only the
//! seam) and never sees text; the chat layer above turns tokens into meaning.

mod error;
mod gptoss_impl;
pub mod language_model;
pub mod sampler;
pub mod scripted;
pub mod session;

pub use error::EngineError;
pub use language_model::{KvState, LanguageModel, LogitsFor, LoraId};
pub use sampler::{Candidate, Sampler, SamplingParams};
pub use scripted::{ScriptedCache, ScriptedModel};
pub use session::{
    common_prefix_len, Generation, PrefillStats, Session, SessionTotals, StopConditions,
    StopReason, Timings, Usage, DEFAULT_PREFILL_CHUNK, HARMONY_STOP_TOKENS,
};
