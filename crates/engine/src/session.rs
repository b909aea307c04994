//! One sequence's generation state: a KV cache, the exact token ids whose
//! keys/values it holds, and the loop prefill -> sample -> decode -> stop.
//!
//! Prefix reuse: a new prompt is compared with the cached tokens; the cache is
//! rolled back to the longest common prefix (the model may keep fewer
//! positions than asked, see `KvState::rollback_to`) and only the rest of the
//! prompt is computed. After each prompt's prefill the cache marks a snapshot,
//! so a later request that diverges right after this prompt (a chat turn whose
//! analysis is dropped from the history) rolls back exactly here.
//!
//! This module deals in token ids only. It owns no text, no chat format and
//! no threads; cancellation is a flag the caller may set from anywhere.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::language_model::{KvState, LanguageModel, LogitsFor};
use crate::sampler::Sampler;
use crate::EngineError;

/// Prompt tokens per forward call during prefill. Bounds the activation
/// memory of one batched pass (attention scores grow with chunk x context)
/// while keeping the batch large enough for the matmuls to be efficient.
pub const DEFAULT_PREFILL_CHUNK: usize = 512;

/// Stop tokens for harmony assistant actions: `<|return|>` and `<|call|>`.
pub const HARMONY_STOP_TOKENS: [u32; 2] = [200002, 200012];

/// When to stop decoding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopConditions {
    /// Most tokens to generate; `None` runs until a stop token or the end of
    /// the context.
    pub max_tokens: Option<usize>,
    /// Tokens that end generation; the stop token is returned as the last
    /// generated token.
    pub stop_tokens: Vec<u32>,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced one of the stop tokens (it is the last token).
    StopToken(u32),
    /// `max_tokens` tokens were generated.
    MaxTokens,
    /// The context is full: no position is left for another token.
    ContextFull,
    /// The cancel flag was set, or the token callback asked to stop.
    Cancelled,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::StopToken(t) => write!(f, "stop token {t}"),
            StopReason::MaxTokens => write!(f, "max tokens"),
            StopReason::ContextFull => write!(f, "context full"),
            StopReason::Cancelled => write!(f, "cancelled"),
        }
    }
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys/values were reused from the cache.
    pub reused_tokens: usize,
    /// Prompt tokens run through the model (`prompt_tokens - reused_tokens`).
    pub computed_tokens: usize,
    /// Tokens generated (including a final stop token).
    pub completion_tokens: usize,
}

/// Wall-clock time of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Time spent computing the prompt's uncached suffix.
    pub prefill: Duration,
    /// Time from the end of prefill to the last generated token (sampling and
    /// one forward call per token after the first).
    pub decode: Duration,
}

impl Timings {
    /// Computed prompt tokens per second (0 when nothing was computed).
    pub fn prefill_tokens_per_second(&self, usage: &Usage) -> f64 {
        per_second(usage.computed_tokens, self.prefill)
    }
    /// Generated tokens per second (0 when nothing was generated).
    pub fn decode_tokens_per_second(&self, usage: &Usage) -> f64 {
        per_second(usage.completion_tokens, self.decode)
    }
}

fn per_second(n: usize, d: Duration) -> f64 {
    let secs = d.as_secs_f64();
    if n == 0 || secs <= 0.0 {
        0.0
    } else {
        n as f64 / secs
    }
}

/// What a prefill did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PrefillStats {
    pub prompt_tokens: usize,
    pub reused_tokens: usize,
    pub computed_tokens: usize,
    pub elapsed: Duration,
    /// False when the cancel flag stopped the prefill part way.
    pub completed: bool,
}

/// The result of one `generate` call.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Generated ids, the stop token included when there was one.
    pub tokens: Vec<u32>,
    pub stop_reason: StopReason,
    pub usage: Usage,
    pub timings: Timings,
}

/// Counts summed over a session's life, to measure what prefix reuse saves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionTotals {
    pub requests: usize,
    pub prompt_tokens: usize,
    pub reused_tokens: usize,
    pub computed_tokens: usize,
    pub completion_tokens: usize,
}

/// A model plus one KV cache and the token ids it holds.
pub struct Session<M: LanguageModel> {
    model: M,
    cache: M::Cache,
    // The ids whose keys/values are in `cache`, position by position.
    tokens: Vec<u32>,
    // f32 [vocab]: logits of the last computed position, reused every token.
    logits: Vec<f32>,
    prefill_chunk: usize,
    // extra positions at which the next prefill marks a snapshot
    snapshot_points: Vec<usize>,
    totals: SessionTotals,
}

impl<M: LanguageModel> Session<M> {
    /// A session whose cache holds up to `context_tokens` positions.
    pub fn new(model: M, context_tokens: usize) -> Result<Session<M>, EngineError> {
        let max_context = model.max_context();
        if context_tokens == 0 || context_tokens > max_context {
            return Err(EngineError::ContextTooLarge {
                requested: context_tokens,
                max_context,
            });
        }
        let cache = model.new_cache(context_tokens);
        let logits = Vec::with_capacity(model.vocab_size());
        Ok(Session {
            model,
            cache,
            tokens: Vec::with_capacity(context_tokens),
            logits,
            prefill_chunk: DEFAULT_PREFILL_CHUNK,
            snapshot_points: Vec::new(),
            totals: SessionTotals::default(),
        })
    }

    /// The model behind the session.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The most positions the session's cache holds.
    pub fn context_tokens(&self) -> usize {
        self.cache.max_tokens()
    }

    /// The ids whose keys/values are cached, in position order.
    pub fn cached_tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Counts summed over every request so far.
    pub fn totals(&self) -> SessionTotals {
        self.totals
    }

    /// Set how many prompt tokens go into one forward call (at least 1).
    pub fn set_prefill_chunk(&mut self, n_tokens: usize) {
        self.prefill_chunk = n_tokens.max(1);
    }

    /// Positions inside the next prompt where its prefill should also mark
    /// a snapshot, besides the end of the prompt: typically the end of a
    /// shared system prompt, so that a later request sharing only that
    /// prefix can roll back to it even after the sliding-window rings have
    /// wrapped. Used by the next `prefill` / `generate`, then forgotten.
    pub fn set_snapshot_points(&mut self, positions: &[usize]) {
        self.snapshot_points.clear();
        self.snapshot_points.extend_from_slice(positions);
        self.snapshot_points.sort_unstable();
        self.snapshot_points.dedup();
    }

    /// Forget the cached tokens (the next request computes everything).
    pub fn reset(&mut self) {
        self.cache.clear();
        self.tokens.clear();
    }

    /// Logits (f32 `[vocab]`) of the last computed position.
    pub fn last_logits(&self) -> &[f32] {
        &self.logits
    }

    /// Make the cache hold exactly `prompt`, computing only what is not
    /// already cached, and leave the last prompt token's logits in
    /// `last_logits()`. The last prompt token is always recomputed when the
    /// whole prompt is cached, because its logits are needed.
    pub fn prefill(
        &mut self,
        prompt: &[u32],
        cancel: Option<&AtomicBool>,
    ) -> Result<PrefillStats, EngineError> {
        let started = Instant::now();
        let marks = std::mem::take(&mut self.snapshot_points);
        let max_context = self.cache.max_tokens();
        if prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        if prompt.len() > max_context {
            return Err(EngineError::PromptTooLong {
                prompt_tokens: prompt.len(),
                max_context,
            });
        }
        let vocab_size = self.model.vocab_size();
        if let Some(&token) = prompt.iter().find(|&&t| t as usize >= vocab_size) {
            return Err(EngineError::InvalidToken { token, vocab_size });
        }

        let common = common_prefix_len(&self.tokens, prompt).min(prompt.len() - 1);
        let kept = if common < self.tokens.len() {
            self.cache.rollback_to(common).min(common)
        } else {
            common
        };
        self.tokens.truncate(kept);
        debug_assert_eq!(self.cache.len(), self.tokens.len());

        let mut stats = PrefillStats {
            prompt_tokens: prompt.len(),
            reused_tokens: kept,
            computed_tokens: 0,
            elapsed: Duration::ZERO,
            completed: false,
        };
        // Compute the uncached suffix in chunks, cut also at snapshot points.
        let mut start = kept;
        while start < prompt.len() {
            if is_cancelled(cancel) {
                stats.elapsed = started.elapsed();
                return Ok(stats);
            }
            let mut end = (start + self.prefill_chunk).min(prompt.len());
            if let Some(&mark) = marks.iter().find(|&&m| m > start && m < end) {
                end = mark;
            }
            let chunk = &prompt[start..end];
            if let Err(err) =
                self.model
                    .forward(chunk, &mut self.cache, LogitsFor::Last, &mut self.logits)
            {
                // The cache may hold part of the chunk: start clean next time.
                self.reset();
                return Err(err);
            }
            self.tokens.extend_from_slice(chunk);
            stats.computed_tokens += chunk.len();
            if marks.contains(&end) && end < prompt.len() {
                self.cache.mark_snapshot();
            }
            start = end;
        }
        self.check_logits()?;
        self.cache.mark_snapshot();
        stats.completed = true;
        stats.elapsed = started.elapsed();
        Ok(stats)
    }

    /// Prefill `prompt`, then sample and decode one token at a time until a
    /// stop condition. `on_token` sees each generated id as soon as it is
    /// sampled and may return `ControlFlow::Break(())` to stop (reported as
    /// `Cancelled`); `cancel` is checked before every forward call.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        stop: &StopConditions,
        sampler: &mut Sampler,
        cancel: Option<&AtomicBool>,
        mut on_token: impl FnMut(u32) -> ControlFlow<()>,
    ) -> Result<Generation, EngineError> {
        let prefill = self.prefill(prompt, cancel)?;
        let mut usage = Usage {
            prompt_tokens: prefill.prompt_tokens,
            reused_tokens: prefill.reused_tokens,
            computed_tokens: prefill.computed_tokens,
            completion_tokens: 0,
        };
        let mut timings = Timings {
            prefill: prefill.elapsed,
            decode: Duration::ZERO,
        };
        let decode_started = Instant::now();
        let mut generated = Vec::with_capacity(stop.max_tokens.unwrap_or(256).min(4096));

        let stop_reason = if !prefill.completed {
            StopReason::Cancelled
        } else {
            loop {
                if stop.max_tokens.is_some_and(|max| generated.len() >= max) {
                    break StopReason::MaxTokens;
                }
                if is_cancelled(cancel) {
                    break StopReason::Cancelled;
                }
                let token = sampler.sample(&self.logits)?;
                generated.push(token);
                if on_token(token).is_break() {
                    break StopReason::Cancelled;
                }
                if stop.stop_tokens.contains(&token) {
                    break StopReason::StopToken(token);
                }
                if stop.max_tokens.is_some_and(|max| generated.len() >= max) {
                    break StopReason::MaxTokens;
                }
                if self.tokens.len() >= self.cache.max_tokens() {
                    break StopReason::ContextFull;
                }
                if is_cancelled(cancel) {
                    break StopReason::Cancelled;
                }
                if let Err(err) = self.model.forward(
                    std::slice::from_ref(&token),
                    &mut self.cache,
                    LogitsFor::Last,
                    &mut self.logits,
                ) {
                    self.reset();
                    return Err(err);
                }
                self.tokens.push(token);
                self.check_logits()?;
            }
        };
        timings.decode = decode_started.elapsed();
        usage.completion_tokens = generated.len();

        self.totals.requests += 1;
        self.totals.prompt_tokens += usage.prompt_tokens;
        self.totals.reused_tokens += usage.reused_tokens;
        self.totals.computed_tokens += usage.computed_tokens;
        self.totals.completion_tokens += usage.completion_tokens;
        Ok(Generation {
            tokens: generated,
            stop_reason,
            usage,
            timings,
        })
    }

    fn check_logits(&self) -> Result<(), EngineError> {
        let expected = self.model.vocab_size();
        if self.logits.len() != expected {
            return Err(EngineError::LogitsShape {
                expected,
                found: self.logits.len(),
            });
        }
        Ok(())
    }
}

fn is_cancelled(cancel: Option<&AtomicBool>) -> bool {
    cancel.is_some_and(|flag| flag.load(Ordering::Relaxed))
}

/// Length of the longest common prefix of two token sequences.
pub fn common_prefix_len(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
