//! The seam implemented for the real network, `gptoss_model::Model`, and its
//! `KvCache`. Pure delegation: the model owns the numerics, the cache owns
//! the sliding-window snapshots; this file only maps types and errors.

use gptoss_model::{ForwardError, KvCache, LoraId, Model};

use crate::language_model::{DecodeRow, KvState, LanguageModel, LogitsFor};
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
    fn supports_copy(&self) -> bool {
        true
    }
    fn copy_from(&mut self, source: &Self) -> bool {
        KvCache::copy_from(self, source)
    }
    fn adapter(&self) -> Option<LoraId> {
        KvCache::lora(self)
    }
    fn set_adapter(&mut self, adapter: Option<LoraId>) -> bool {
        KvCache::set_lora(self, adapter);
        true
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
        // Written in place: the buffer's capacity is reused from step to step.
        Model::forward_into(self, tokens, cache, which, logits).map_err(engine_error)
    }
    fn forward_batch(&self, rows: &mut [DecodeRow<'_, KvCache>]) -> Vec<Result<(), EngineError>> {
        // The model's batched step: one pass over the weights for all rows.
        let mut model_rows: Vec<gptoss_model::DecodeRow<'_>> = rows
            .iter_mut()
            .map(|row| gptoss_model::DecodeRow {
                token: row.token,
                cache: &mut *row.cache,
                logits: &mut *row.logits,
            })
            .collect();
        Model::forward_batch(self, &mut model_rows)
            .into_iter()
            .map(|r| r.map_err(engine_error))
            .collect()
    }
}

fn engine_error(err: ForwardError) -> EngineError {
    match err {
        ForwardError::InvalidToken { token, vocab_size } => {
            EngineError::InvalidToken { token, vocab_size }
        }
        other => EngineError::Forward(other.to_string()),
    }
}
