//! The narrow seam between the engine and a model: "here are tokens at the
//! next positions of this cache, give me logits". The engine knows nothing
//! else about the network. `gptoss_model::Model` implements it (in
//! `gptoss_impl.rs`); `ScriptedModel` (in `scripted.rs`) implements it without
//! weights for fast tests of everything above the seam.

use std::sync::Arc;

use crate::EngineError;

/// Which rows of logits a forward call must return (the model crate's own
/// type, so both sides of the seam speak the same words).
pub use gptoss_model::LogitsFor;

/// Names one of the LoRA adapters a model holds (the model crate's own type):
/// a sequence runs under the adapter its cache names ([`KvState::set_adapter`]).
pub use gptoss_model::LoraId;

/// The per-sequence key/value state a model appends to. Positions are dense:
/// the next token goes at position `len()`.
pub trait KvState {
    /// Positions held; the position of the next token.
    fn len(&self) -> usize;
    /// True when no position is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The most positions this cache can hold.
    fn max_tokens(&self) -> usize;
    /// Forget every position.
    fn clear(&mut self);
    /// Forget positions `>= n_tokens`. Returns how many positions are really
    /// kept, which can be fewer than asked (a sliding-window ring can only be
    /// restored to a marked snapshot). Never more than `n_tokens`.
    fn rollback_to(&mut self, n_tokens: usize) -> usize;
    /// Remember the state at the current length so a later `rollback_to`
    /// can return exactly here.
    fn mark_snapshot(&mut self);
    /// Whether [`KvState::copy_from`] works for this cache type. The
    /// scheduler only waits for another sequence's prefill to copy it when
    /// it does.
    fn supports_copy(&self) -> bool {
        false
    }
    /// Become an exact copy of `source` (positions and snapshots), so two
    /// sequences with one prompt pay for one prefill. Returns false, leaving
    /// `self` unchanged, when the caches differ in shape or the type cannot
    /// copy.
    fn copy_from(&mut self, source: &Self) -> bool {
        let _ = source;
        false
    }
    /// The LoRA adapter this cache's sequence runs under; None: the model's
    /// default (its one applied adapter, or the base).
    fn adapter(&self) -> Option<LoraId> {
        None
    }
    /// Choose the adapter the positions to come run under. Keys and values
    /// computed under one adapter are wrong under another, so a change clears
    /// the cache. Returns false, changing nothing, when this cache type runs
    /// no adapters (it takes None only).
    fn set_adapter(&mut self, adapter: Option<LoraId>) -> bool {
        adapter.is_none()
    }
}

/// A causal language model over token ids.
pub trait LanguageModel {
    /// The model's KV cache type.
    type Cache: KvState;
    /// Number of logits per row (embedding rows).
    fn vocab_size(&self) -> usize;
    /// The longest context the model supports (positions).
    fn max_context(&self) -> usize;
    /// A cache for up to `max_tokens` positions (`<= max_context()`).
    fn new_cache(&self, max_tokens: usize) -> Self::Cache;
    /// Run `tokens` at positions `cache.len()..cache.len() + tokens.len()`,
    /// append their keys/values to `cache`, and write the requested logits to
    /// `logits`: f32 row-major `[n_rows, vocab_size]`. The buffer is reused
    /// between calls so an implementation can avoid a fresh allocation.
    fn forward(
        &self,
        tokens: &[u32],
        cache: &mut Self::Cache,
        which: LogitsFor,
        logits: &mut Vec<f32>,
    ) -> Result<(), EngineError>;

    /// One decode step for several sequences (continuous batching): feed
    /// each row's `token` at position `row.cache.len()` of its own cache and
    /// write its next-token logits (f32 `[vocab_size]`) to `row.logits`.
    /// Returns one result per row, in row order; a failed row does not stop
    /// the others. The default runs the rows one `forward` call each; a model
    /// with a real batched pass (one weight read for all rows) overrides it.
    fn forward_batch(
        &self,
        rows: &mut [DecodeRow<'_, Self::Cache>],
    ) -> Vec<Result<(), EngineError>> {
        rows.iter_mut()
            .map(|row| {
                self.forward(
                    std::slice::from_ref(&row.token),
                    row.cache,
                    LogitsFor::Last,
                    row.logits,
                )
            })
            .collect()
    }
}

/// One sequence of a [`LanguageModel::forward_batch`] step.
pub struct DecodeRow<'a, C> {
    /// The token to feed, at position `cache.len()`.
    pub token: u32,
    pub cache: &'a mut C,
    /// Receives the next-token logits, f32 `[vocab_size]`.
    pub logits: &'a mut Vec<f32>,
}

/// Forwards every method to the model behind a pointer, so sessions can hold `&M` or `Arc<M>`.
macro_rules! forward_language_model {
    ($($pointer:ty),+) => {$(
        impl<M: LanguageModel + ?Sized> LanguageModel for $pointer {
            type Cache = M::Cache;
            fn vocab_size(&self) -> usize {
                (**self).vocab_size()
            }
            fn max_context(&self) -> usize {
                (**self).max_context()
            }
            fn new_cache(&self, max_tokens: usize) -> Self::Cache {
                (**self).new_cache(max_tokens)
            }
            fn forward(
                &self,
                tokens: &[u32],
                cache: &mut Self::Cache,
                which: LogitsFor,
                logits: &mut Vec<f32>,
            ) -> Result<(), EngineError> {
                (**self).forward(tokens, cache, which, logits)
            }
            fn forward_batch(
                &self,
                rows: &mut [DecodeRow<'_, Self::Cache>],
            ) -> Vec<Result<(), EngineError>> {
                (**self).forward_batch(rows)
            }
        }
    )+};
}

forward_language_model!(&M, Arc<M>);
