//! The seam implemented for the real network, `gptoss_model::Model`, and its
//! `KvCache`. Pure delegation: the model owns the numerics, the cache owns
//! the sliding-window snapshots; this file only maps types and errors.

use gptoss_model::{ForwardError, KvCache, Model};

use crate::language_model::{KvState, LanguageModel, LogitsFor};
use crate::EngineError;

impl KvState for KvCache {
    fn len(&self) -> usize {
        KvCache::len(self)
    }
    fn max_tokens(&self) -> usize {
        KvCache::max_tokens(self)
    }
    fn clear(&mut self) {
        KvCache::clear(self)
    }
    fn rollback_to(&mut self, n_tokens: usize) -> usize {
        KvCache::rollback_to(self, n_tokens)
    }
    fn mark_snapshot(&mut self) {
        KvCache::mark_snapshot(self)
    }
}

impl LanguageModel for Model {
    type Cache = KvCache;

    fn vocab_size(&self) -> usize {
        self.config().vocab_size
    }
    fn max_context(&self) -> usize {
        self.config().max_context()
    }
    fn new_cache(&self, max_tokens: usize) -> KvCache {
        Model::new_cache(self, max_tokens)
    }
    fn forward(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        which: LogitsFor,
        logits: &mut Vec<f32>,
    ) -> Result<(), EngineError> {
        // The model returns a fresh buffer; moving it in replaces the old one
        // without a copy.
        *logits = Model::forward(self, tokens, cache, which).map_err(|err| match err {
            ForwardError::InvalidToken { token, vocab_size } => {
                EngineError::InvalidToken { token, vocab_size }
            }
            other => EngineError::Forward(other.to_string()),
        })?;
        Ok(())
    }
}
