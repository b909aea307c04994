//! `ScriptedModel`: a weightless stand-in behind the `LanguageModel` seam, for
//! fast tests of the engine and of everything built on it (chat, server).
//!
//! It "predicts" a fixed script: the next token is `script[k]` for the largest
//! `k < script.len()` such that the cached history ends with `script[..k]`, so
//! after any prompt it plays the script from the start, and it is a pure
//! function of the cache contents like a real model. Its cache can imitate a
//! sliding-window model's rollback limits (only marked snapshots are
//! restorable once the window has wrapped), and it records every forward
//! call's size so tests can check what was recomputed. This is test support,
//! not a model: it has no weights and no numerics.

use std::sync::{Arc, Mutex};

use crate::language_model::{KvState, LanguageModel, LogitsFor};
use crate::EngineError;

/// Logit of the scripted next token; every other token gets 0.
pub const SCRIPTED_LOGIT: f32 = 10.0;

/// A model that plays a token script.
#[derive(Debug, Clone)]
pub struct ScriptedModel {
    vocab_size: usize,
    max_context: usize,
    script: Vec<u32>,
    sliding_window: Option<usize>,
    // n_tokens of every forward call, in order (shared by clones).
    calls: Arc<Mutex<Vec<usize>>>,
}

impl ScriptedModel {
    /// A model over `vocab_size` tokens, at most `max_context` positions,
    /// that continues any prompt with `script`.
    pub fn new(vocab_size: usize, max_context: usize, script: Vec<u32>) -> ScriptedModel {
        ScriptedModel {
            vocab_size,
            max_context,
            script,
            sliding_window: None,
            calls: Arc::default(),
        }
    }

    /// Make the cache behave like one with sliding-window layers of
    /// `window` positions: once more than `window` positions were held, a
    /// rollback can only return to a marked snapshot.
    pub fn with_sliding_window(mut self, window: usize) -> ScriptedModel {
        self.sliding_window = Some(window);
        self
    }

    /// The number of tokens of each forward call so far.
    pub fn forward_calls(&self) -> Vec<usize> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Total tokens run through the model so far.
    pub fn computed_tokens(&self) -> usize {
        self.forward_calls().iter().sum()
    }

    /// Forget the recorded calls.
    pub fn clear_calls(&self) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.clear();
        }
    }

    /// The scripted next token after `history`.
    pub fn next_token(&self, history: &[u32]) -> Option<u32> {
        let k = (0..self.script.len())
            .rev()
            .find(|&k| history.ends_with(&self.script[..k]))?;
        Some(self.script[k])
    }

    fn write_row(&self, history: &[u32], row: &mut [f32]) {
        row.fill(0.0);
        if let Some(next) = self.next_token(history) {
            if let Some(slot) = row.get_mut(next as usize) {
                *slot = SCRIPTED_LOGIT;
            }
        }
    }
}

/// The scripted model's cache: the ids themselves, plus snapshot marks.
#[derive(Debug, Clone)]
pub struct ScriptedCache {
    tokens: Vec<u32>,
    max_tokens: usize,
    sliding_window: Option<usize>,
    // lengths at which `mark_snapshot` was called, ascending
    snapshots: Vec<usize>,
    // the largest length held since the last clear/rollback: once it
    // exceeds the window, the ring has overwritten older positions
    high_water: usize,
}

impl ScriptedCache {
    /// The cached ids.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }
}

impl KvState for ScriptedCache {
    fn len(&self) -> usize {
        self.tokens.len()
    }
    fn max_tokens(&self) -> usize {
        self.max_tokens
    }
    fn clear(&mut self) {
        self.tokens.clear();
        self.snapshots.clear();
        self.high_water = 0;
    }
    fn rollback_to(&mut self, n_tokens: usize) -> usize {
        if n_tokens >= self.tokens.len() {
            return self.tokens.len();
        }
        let ring_wrapped = self.sliding_window.is_some_and(|w| self.high_water > w);
        let kept = if ring_wrapped {
            self.snapshots
                .iter()
                .copied()
                .filter(|&s| s <= n_tokens)
                .max()
                .unwrap_or(0)
        } else {
            n_tokens
        };
        self.tokens.truncate(kept);
        self.snapshots.retain(|&s| s <= kept);
        if !ring_wrapped {
            self.high_water = kept;
        }
        kept
    }
    fn mark_snapshot(&mut self) {
        let len = self.tokens.len();
        if self.snapshots.last() != Some(&len) {
            self.snapshots.retain(|&s| s < len);
            self.snapshots.push(len);
        }
    }
    fn supports_copy(&self) -> bool {
        true
    }
    fn copy_from(&mut self, source: &Self) -> bool {
        if self.max_tokens != source.max_tokens || self.sliding_window != source.sliding_window {
            return false;
        }
        self.clone_from(source);
        true
    }
}

impl LanguageModel for ScriptedModel {
    type Cache = ScriptedCache;

    fn vocab_size(&self) -> usize {
        self.vocab_size
    }
    fn max_context(&self) -> usize {
        self.max_context
    }
    fn new_cache(&self, max_tokens: usize) -> ScriptedCache {
        ScriptedCache {
            tokens: Vec::new(),
            max_tokens: max_tokens.min(self.max_context),
            sliding_window: self.sliding_window,
            snapshots: Vec::new(),
            high_water: 0,
        }
    }
    fn forward(
        &self,
        tokens: &[u32],
        cache: &mut ScriptedCache,
        which: LogitsFor,
        logits: &mut Vec<f32>,
    ) -> Result<(), EngineError> {
        if cache.tokens.len() + tokens.len() > cache.max_tokens {
            return Err(EngineError::Forward(format!(
                "context full: {} + {} tokens > {}",
                cache.tokens.len(),
                tokens.len(),
                cache.max_tokens
            )));
        }
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= self.vocab_size) {
            return Err(EngineError::InvalidToken {
                token,
                vocab_size: self.vocab_size,
            });
        }
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(tokens.len());
        }
        let start = cache.tokens.len();
        cache.tokens.extend_from_slice(tokens);
        cache.high_water = cache.high_water.max(cache.tokens.len());
        let rows: Vec<usize> = match which {
            LogitsFor::All => (start + 1..=cache.tokens.len()).collect(),
            LogitsFor::Last => vec![cache.tokens.len()],
            LogitsFor::Nothing => vec![],
        };
        logits.clear();
        logits.resize(rows.len() * self.vocab_size, 0.0);
        for (row_idx, &end) in rows.iter().enumerate() {
            let row = &mut logits[row_idx * self.vocab_size..(row_idx + 1) * self.vocab_size];
            self.write_row(&cache.tokens[..end], row);
        }
        Ok(())
    }
}
