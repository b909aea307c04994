//! The engine's `LanguageModel` seam implemented for [`GpuModel`], so `chat`, `run`, `serve`
//! and `bench` run on a device unchanged. Delegation only.

use gptoss_engine::language_model::DecodeRow;
use gptoss_engine::{EngineError, KvState, LanguageModel, LogitsFor};
use gptoss_model::ForwardError;

use crate::cache::GpuCache;
use crate::{GpuError, GpuModel};

/// A device cache and the model whose device holds it (rollbacks and snapshots copy there).
pub struct GpuKv {
    pub(crate) cache: GpuCache,
    pub(crate) model: std::sync::Arc<GpuModel>,
}

impl KvState for GpuKv {
    fn len(&self) -> usize {
        self.cache.len()
    }
    fn max_tokens(&self) -> usize {
        self.cache.max_tokens()
    }
    fn clear(&mut self) {
        self.cache.clear()
    }
    fn rollback_to(&mut self, n_tokens: usize) -> usize {
        self.cache.rollback_to(self.model.context(), n_tokens)
    }
    fn mark_snapshot(&mut self) {
        self.cache.mark_snapshot(self.model.context())
    }
    fn supports_copy(&self) -> bool {
        true
    }
    fn copy_from(&mut self, source: &Self) -> bool {
        self.cache.copy_from(self.model.context(), &source.cache)
    }
}

fn engine_error(e: GpuError) -> EngineError {
    match e {
        GpuError::Input(ForwardError::InvalidToken { token, vocab_size }) => {
            EngineError::InvalidToken { token, vocab_size }
        }
        other => EngineError::Forward(other.to_string()),
    }
}

/// A shareable handle on a [`GpuModel`] (its caches keep a reference to reach the device).
#[derive(Clone)]
pub struct SharedGpuModel(pub std::sync::Arc<GpuModel>);

impl LanguageModel for SharedGpuModel {
    type Cache = GpuKv;

    fn vocab_size(&self) -> usize {
        self.0.config().vocab_size
    }
    fn max_context(&self) -> usize {
        self.0.config().max_context()
    }
    fn new_cache(&self, max_tokens: usize) -> GpuKv {
        GpuKv {
            cache: self.0.new_cache(max_tokens),
            model: self.0.clone(),
        }
    }
    fn forward(
        &self,
        tokens: &[u32],
        cache: &mut GpuKv,
        which: LogitsFor,
        logits: &mut Vec<f32>,
    ) -> Result<(), EngineError> {
        self.0
            .forward_into(tokens, &mut cache.cache, which, logits)
            .map_err(engine_error)
    }
    fn forward_batch(&self, rows: &mut [DecodeRow<'_, GpuKv>]) -> Vec<Result<(), EngineError>> {
        // Rows that fail the input checks get their error; the others run as one pass.
        let mut results: Vec<Result<(), EngineError>> = rows
            .iter()
            .map(|r| {
                self.0
                    .check_row(r.token, &r.cache.cache)
                    .map_err(|e| engine_error(GpuError::Input(e)))
            })
            .collect();
        let mut tokens = Vec::new();
        let mut caches = Vec::new();
        let mut outs = Vec::new();
        let mut ran = Vec::new();
        for (i, row) in rows.iter_mut().enumerate() {
            if results[i].is_ok() {
                tokens.push(row.token);
                caches.push(&mut row.cache.cache);
                outs.push(&mut *row.logits);
                ran.push(i);
            }
        }
        if tokens.is_empty() {
            return results;
        }
        if let Err(e) = self.0.decode_batch(&tokens, &mut caches, &mut outs) {
            let msg = e.to_string();
            for i in ran {
                results[i] = Err(EngineError::Forward(msg.clone()));
            }
        }
        results
    }
}
