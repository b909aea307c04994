//! The engine thread: one dedicated OS thread per loaded model owns the model,
//! every KV cache and every sampler; async HTTP handlers talk to it through
//! channels only. Token ids in, token ids out: this module knows no text, no
//! harmony and no HTTP.
//!
//! Scheduling (continuous batching): requests wait in a bounded queue; up to
//! `max_concurrency` of them are active at once, each bound to a cache slot.
//! Every loop iteration (a "step") first runs at most one prefill chunk for
//! each sequence still reading its prompt, then samples one token for every
//! decoding sequence and runs them all through [`forward_batch`], the single
//! batch-step function. Requests join and leave between steps. Prefill chunks
//! compute no logits: a prompt's last token is fed by the batched step, so the
//! expensive unembedding of a new request is shared with the running ones.
//!
//! Prefix reuse: a finished sequence leaves its tokens in its slot's cache. A
//! new request takes the free slot whose cached tokens share the longest
//! prefix with its prompt, rolls the cache back to that prefix (the model may
//! keep fewer positions, see `KvState::rollback_to`) and computes only the
//! rest.
//!
//! LoRA adapters: a request names the adapter it runs under (or none), and its
//! slot's cache is set to it ([`KvState::set_adapter`]); rows of one batched
//! step may name different adapters. A cache holds keys and values computed
//! under one adapter, so prefix reuse, waiting for another prefill and cache
//! copies only ever pair a request with a cache of its own adapter.
//!
//! Cancellation: a request is cancelled when its [`RequestHandle`] is dropped
//! (the HTTP client went away) or its event channel closes. The engine checks
//! before every step and every prefill chunk, and frees the slot at once.
//!
//! Architecture invariant: one request's tokens and logits never reach
//! another's channel: every sequence owns its own cache, logits buffer,
//! sampler and sender, and [`forward_batch`] returns rows in batch order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gptoss_engine::language_model::DecodeRow;
use gptoss_engine::{
    common_prefix_len, EngineError, KvState, LanguageModel, LogitsFor, LoraId, Sampler,
    SamplingParams,
};
use rayon::prelude::*;
use tokio::sync::mpsc;

/// Prompt tokens per prefill forward call; other sequences decode one token
/// between two chunks, so a long prompt does not stall running streams.
pub const PREFILL_CHUNK: usize = 256;

/// Fewest prompt positions worth waiting for another sequence's prefill, or
/// copying another slot's whole cache, for (below this, prefilling them again
/// is as cheap).
const MIN_SHARED_PREFILL: usize = 16;

/// Scheduler limits.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Most sequences generating at once (= number of KV cache slots).
    pub max_concurrency: usize,
    /// Most requests waiting for a slot; beyond it `submit` fails with
    /// `SubmitError::QueueFull`.
    pub max_queue: usize,
    /// Positions per KV cache slot (capped at the model's maximum context).
    pub context_tokens: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_concurrency: 4,
            max_queue: 64,
            context_tokens: 8192,
        }
    }
}

/// Restricts which tokens a sequence may sample next (constrained decoding).
/// Runs on the engine thread between the forward pass and the sampler.
pub trait TokenConstraint: Send {
    /// Set the logits (f32 `[vocab]`) of forbidden tokens to `-inf`.
    fn mask(&mut self, logits: &mut [f32]);
    /// The token that was sampled (after `mask`).
    fn accept(&mut self, token: u32);
    /// Whether the output was forced to an early end (a JSON answer closed
    /// because the token budget ran out): the finish is reported as a length stop.
    fn cut_short(&self) -> bool {
        false
    }
}

/// One generation request: token ids and how to sample them.
pub struct GenerationRequest {
    pub prompt: Vec<u32>,
    pub sampling: SamplingParams,
    /// Most tokens to generate; `None`: until a stop token or the context is full.
    pub max_tokens: Option<usize>,
    /// Tokens that end generation (returned as the last token).
    pub stop_tokens: Vec<u32>,
    /// Optional logits constraint (structured output).
    pub constraint: Option<Box<dyn TokenConstraint>>,
    /// Report each sampled token's log probability and this many most
    /// likely alternatives (`TokenEvent::Logprob` before each `Token`).
    pub logprobs: Option<usize>,
    /// The LoRA adapter to run under (one the model holds); None: the model's
    /// default (its one applied adapter, or the base).
    pub lora: Option<LoraId>,
}

/// Most alternatives a request may ask for (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// A sampled token's log probability under the model's distribution (after
/// the constraint's mask, before temperature and top-p), and the most likely
/// tokens at that step.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    /// (token, log probability), most likely first.
    pub top: Vec<(u32, f32)>,
}

impl TokenLogprob {
    /// From a logits row (masked entries are `-inf`).
    pub fn from_logits(logits: &[f32], token: u32, top: usize) -> TokenLogprob {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = logits
            .iter()
            .map(|&l| f64::from((l - max).exp()))
            .sum::<f64>();
        let log_z = max + sum.ln() as f32;
        let logprob = |id: u32| {
            logits
                .get(id as usize)
                .map_or(f32::NEG_INFINITY, |l| l - log_z)
        };
        let mut best: Vec<(u32, f32)> = Vec::with_capacity(top + 1);
        if top > 0 {
            for (id, &l) in logits.iter().enumerate() {
                if best.len() == top && best.last().is_some_and(|&(_, b)| l <= b) {
                    continue;
                }
                let at = best.partition_point(|&(_, b)| b >= l);
                best.insert(at, (id as u32, l));
                best.truncate(top);
            }
        }
        TokenLogprob {
            token,
            logprob: logprob(token),
            top: best.into_iter().map(|(id, l)| (id, l - log_z)).collect(),
        }
    }
}

/// Why a sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token was generated (it is the last token sent).
    StopToken(u32),
    /// `max_tokens` reached.
    MaxTokens,
    /// No position left in the cache.
    ContextFull,
    /// The request was cancelled (client gone, or server shutdown).
    Cancelled,
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys/values were reused from a slot's cache.
    pub reused_tokens: usize,
    pub completion_tokens: usize,
}

/// What the engine sends back for one request, in order: any number of
/// `Token`s, then exactly one `Finished` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenEvent {
    /// The log probabilities of the next `Token` (only when asked for).
    Logprob(TokenLogprob),
    Token(u32),
    Finished {
        reason: FinishReason,
        usage: TokenUsage,
    },
    Failed(String),
}

/// Why a request was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error(
        "the server is busy: {queued} requests are already waiting (limit {limit}); retry later"
    )]
    QueueFull { queued: usize, limit: usize },
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error(
        "prompt is {prompt_tokens} tokens but the context holds at most {context_tokens} tokens"
    )]
    PromptTooLong {
        prompt_tokens: usize,
        context_tokens: usize,
    },
    #[error("the prompt is empty")]
    EmptyPrompt,
}

/// Live counters, readable from any thread (served on `/health` and `/metrics`).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests waiting for a slot.
    pub queued: AtomicUsize,
    /// Requests holding a slot (prefilling or decoding).
    pub active: AtomicUsize,
    /// Slots whose cache has been allocated.
    pub slots_allocated: AtomicUsize,
    pub requests_total: AtomicU64,
    pub completed_total: AtomicU64,
    pub cancelled_total: AtomicU64,
    pub failed_total: AtomicU64,
    pub prompt_tokens_total: AtomicU64,
    pub reused_tokens_total: AtomicU64,
    /// Prompt positions copied from another live sequence's cache instead of
    /// prefilled (`n > 1` choices, concurrent requests continuing one prompt).
    /// Counted in `reused_tokens_total` too.
    pub copied_tokens_total: AtomicU64,
    pub generated_tokens_total: AtomicU64,
    /// Decode steps run (one per `forward_batch` call).
    pub decode_steps_total: AtomicU64,
    /// Sum over decode steps of the batch size (mean batch = this / steps).
    pub decode_rows_total: AtomicU64,
}

/// A point-in-time copy of [`Metrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MetricsSnapshot {
    pub queued: usize,
    pub active: usize,
    pub slots_total: usize,
    pub slots_allocated: usize,
    pub requests_total: u64,
    pub completed_total: u64,
    pub cancelled_total: u64,
    pub failed_total: u64,
    pub prompt_tokens_total: u64,
    pub reused_tokens_total: u64,
    pub copied_tokens_total: u64,
    pub generated_tokens_total: u64,
    pub decode_steps_total: u64,
    pub decode_rows_total: u64,
}

/// Facts about the loaded model the HTTP layer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineInfo {
    pub vocab_size: usize,
    /// Positions per request (the slot size).
    pub context_tokens: usize,
    pub max_concurrency: usize,
    pub max_queue: usize,
}

struct Submission {
    request: GenerationRequest,
    events: mpsc::UnboundedSender<TokenEvent>,
    cancel: Arc<AtomicBool>,
}

enum Command {
    Submit(Box<Submission>),
    CancelAll,
    /// Cancel everything and end the thread (the model is dropped on it).
    Shutdown,
}

/// The receiving end of one request. Dropping it cancels the request.
#[derive(Debug)]
pub struct RequestHandle {
    pub events: mpsc::UnboundedReceiver<TokenEvent>,
    cancel: Arc<AtomicBool>,
}

impl RequestHandle {
    /// Ask the engine to stop this request; it ends with `Finished { reason: Cancelled }`.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl Drop for RequestHandle {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// Handle to the engine thread. Cheap to clone; the thread ends when the
/// last handle is dropped and no request is left.
#[derive(Clone)]
pub struct Engine {
    commands: std_mpsc::Sender<Command>,
    metrics: Arc<Metrics>,
    accepting: Arc<AtomicBool>,
    info: EngineInfo,
    /// Set by the engine thread once it has ended and dropped the model.
    ended: Arc<(Mutex<bool>, Condvar)>,
}

impl Engine {
    /// Start the engine thread for `model`.
    pub fn spawn<M>(model: M, config: SchedulerConfig) -> Result<Engine, EngineError>
    where
        M: LanguageModel + Send + 'static,
    {
        let max_context = model.max_context();
        let context_tokens = config.context_tokens.min(max_context);
        if context_tokens == 0 {
            return Err(EngineError::ContextTooLarge {
                requested: config.context_tokens,
                max_context,
            });
        }
        let max_concurrency = config.max_concurrency.max(1);
        let info = EngineInfo {
            vocab_size: model.vocab_size(),
            context_tokens,
            max_concurrency,
            max_queue: config.max_queue,
        };
        let (tx, rx) = std_mpsc::channel();
        let metrics = Arc::new(Metrics::default());
        let worker_metrics = metrics.clone();
        let ended = Arc::new((Mutex::new(false), Condvar::new()));
        let worker_ended = ended.clone();
        std::thread::Builder::new()
            .name("gptoss-engine".into())
            // The caches are created on the engine thread and never leave it.
            .spawn(move || {
                // `run` consumes the worker: the model and caches are dropped here.
                Worker::new(model, info, rx, worker_metrics).run();
                let (lock, cvar) = &*worker_ended;
                if let Ok(mut ended) = lock.lock() {
                    *ended = true;
                }
                cvar.notify_all();
            })
            .map_err(|e| EngineError::Forward(format!("could not start the engine thread: {e}")))?;
        Ok(Engine {
            commands: tx,
            metrics,
            accepting: Arc::new(AtomicBool::new(true)),
            info,
            ended,
        })
    }

    pub fn info(&self) -> EngineInfo {
        self.info
    }

    /// Queue a request. Fails at once when the queue is full, the prompt
    /// does not fit, or the server is shutting down.
    pub fn submit(&self, request: GenerationRequest) -> Result<RequestHandle, SubmitError> {
        if !self.accepting.load(Ordering::Relaxed) {
            return Err(SubmitError::ShuttingDown);
        }
        if request.prompt.is_empty() {
            return Err(SubmitError::EmptyPrompt);
        }
        if request.prompt.len() > self.info.context_tokens {
            return Err(SubmitError::PromptTooLong {
                prompt_tokens: request.prompt.len(),
                context_tokens: self.info.context_tokens,
            });
        }
        let queued = self.metrics.queued.fetch_add(1, Ordering::SeqCst);
        if queued >= self.info.max_queue {
            self.metrics.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::QueueFull {
                queued,
                limit: self.info.max_queue,
            });
        }
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let submission = Submission {
            request,
            events: events_tx,
            cancel: cancel.clone(),
        };
        if self
            .commands
            .send(Command::Submit(Box::new(submission)))
            .is_err()
        {
            self.metrics.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::ShuttingDown);
        }
        Ok(RequestHandle {
            events: events_rx,
            cancel,
        })
    }

    /// Refuse new requests from now on (graceful shutdown).
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Relaxed);
    }

    /// End every queued and active request now (`FinishReason::Cancelled`).
    pub fn cancel_all(&self) {
        let _ = self.commands.send(Command::CancelAll);
    }

    /// Cancel everything, end the engine thread and wait (at most `timeout`)
    /// until it has dropped the model. Call before the process exits: a GPU
    /// driver torn down by `exit` while the thread still frees its device
    /// memory can crash. Returns whether the thread ended in time.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        self.stop_accepting();
        let _ = self.commands.send(Command::Shutdown);
        let (lock, cvar) = &*self.ended;
        let Ok(guard) = lock.lock() else {
            return false;
        };
        cvar.wait_timeout_while(guard, timeout, |ended| !*ended)
            .map(|(ended, _)| *ended)
            .unwrap_or(false)
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        let m = &self.metrics;
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            queued: m.queued.load(Ordering::Relaxed),
            active: m.active.load(Ordering::Relaxed),
            slots_total: self.info.max_concurrency,
            slots_allocated: m.slots_allocated.load(Ordering::Relaxed),
            requests_total: r(&m.requests_total),
            completed_total: r(&m.completed_total),
            cancelled_total: r(&m.cancelled_total),
            failed_total: r(&m.failed_total),
            prompt_tokens_total: r(&m.prompt_tokens_total),
            reused_tokens_total: r(&m.reused_tokens_total),
            copied_tokens_total: r(&m.copied_tokens_total),
            generated_tokens_total: r(&m.generated_tokens_total),
            decode_steps_total: r(&m.decode_steps_total),
            decode_rows_total: r(&m.decode_rows_total),
        }
    }

    /// Wait (polling) until no request is queued or active, or `timeout`.
    /// Returns true when idle.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.metrics();
            if m.queued == 0 && m.active == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One row of a batched decode step: feed `token` to `cache` and write the
/// next logits (f32 `[vocab]`) into `logits`.
pub type BatchRow<'a, C> = DecodeRow<'a, C>;

/// The single batch-step function of the scheduler: one decode token for each
/// row, results in row order. It is the model's [`LanguageModel::forward_batch`]:
/// for `gptoss_model::Model` one batched pass over all rows (each weight read
/// once per step for the whole batch); other models loop over the rows.
pub fn forward_batch<M: LanguageModel>(
    model: &M,
    rows: &mut [BatchRow<'_, M::Cache>],
) -> Vec<Result<(), EngineError>> {
    model.forward_batch(rows)
}

/// A KV cache slot and the ids whose keys/values it holds.
struct Slot<C> {
    cache: Option<C>,
    tokens: Vec<u32>,
    busy: bool,
    last_used: u64,
}

impl<C: KvState> Slot<C> {
    /// The adapter its cached positions were computed under.
    fn adapter(&self) -> Option<LoraId> {
        self.cache.as_ref().and_then(KvState::adapter)
    }

    /// How many leading ids of `prompt` this slot holds for a request under
    /// `lora`: none when its cache was computed under another adapter.
    fn prefix_for(&self, prompt: &[u32], lora: Option<LoraId>) -> usize {
        if self.adapter() == lora {
            common_prefix_len(&self.tokens, prompt)
        } else {
            0
        }
    }
}

enum Phase {
    /// Prompt tokens `[..next]` are in the cache.
    Prefill { next: usize },
    /// The logits of the last fed token are ready to sample.
    Decode,
}

struct Sequence {
    slot_idx: usize,
    request: GenerationRequest,
    events: mpsc::UnboundedSender<TokenEvent>,
    cancel: Arc<AtomicBool>,
    sampler: Sampler,
    phase: Phase,
    // f32 [vocab]: logits of the last computed position
    logits: Vec<f32>,
    usage: TokenUsage,
    // the sampled token waiting to be fed in the next batch step
    pending: Option<u32>,
    finished: Option<FinishReason>,
    // a Failed event was sent; no Finished follows
    failed: bool,
}

impl Sequence {
    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.events.is_closed()
    }

    /// Masks the logits with the constraint (if any), samples the next token and tells the
    /// constraint. Touches only this sequence, so sequences can sample in parallel.
    fn sample(&mut self) -> Result<(u32, Option<TokenLogprob>), EngineError> {
        if let Some(constraint) = self.request.constraint.as_mut() {
            constraint.mask(&mut self.logits);
        }
        let token = self.sampler.sample(&self.logits)?;
        let logprob = self
            .request
            .logprobs
            .map(|top| TokenLogprob::from_logits(&self.logits, token, top.min(MAX_TOP_LOGPROBS)));
        if let Some(constraint) = self.request.constraint.as_mut() {
            constraint.accept(token);
        }
        Ok((token, logprob))
    }
}

struct Worker<M: LanguageModel> {
    model: M,
    info: EngineInfo,
    commands: std_mpsc::Receiver<Command>,
    metrics: Arc<Metrics>,
    slots: Vec<Slot<M::Cache>>,
    waiting: VecDeque<Submission>,
    active: Vec<Sequence>,
    clock: u64,
    disconnected: bool,
}

impl<M: LanguageModel> Worker<M> {
    fn new(
        model: M,
        info: EngineInfo,
        commands: std_mpsc::Receiver<Command>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let slots = (0..info.max_concurrency)
            .map(|_| Slot {
                cache: None,
                tokens: Vec::new(),
                busy: false,
                last_used: 0,
            })
            .collect();
        Worker {
            model,
            info,
            commands,
            metrics,
            slots,
            waiting: VecDeque::new(),
            active: Vec::new(),
            clock: 0,
            disconnected: false,
        }
    }

    fn run(mut self) {
        loop {
            if self.active.is_empty() && self.waiting.is_empty() {
                if self.disconnected {
                    return;
                }
                match self.commands.recv() {
                    Ok(cmd) => self.handle(cmd),
                    Err(_) => return,
                }
            }
            loop {
                match self.commands.try_recv() {
                    Ok(cmd) => self.handle(cmd),
                    Err(std_mpsc::TryRecvError::Empty) => break,
                    Err(std_mpsc::TryRecvError::Disconnected) => {
                        self.disconnected = true;
                        break;
                    }
                }
            }
            self.drop_cancelled_waiting();
            self.admit();
            self.step();
            self.retire();
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Submit(sub) => self.waiting.push_back(*sub),
            Command::CancelAll => self.cancel_everything(),
            Command::Shutdown => {
                self.cancel_everything();
                self.disconnected = true;
            }
        }
    }

    fn cancel_everything(&self) {
        for sub in &self.waiting {
            sub.cancel.store(true, Ordering::Relaxed);
        }
        for seq in &self.active {
            seq.cancel.store(true, Ordering::Relaxed);
        }
    }

    fn drop_cancelled_waiting(&mut self) {
        let metrics = &self.metrics;
        self.waiting.retain(|sub| {
            let cancelled = sub.cancel.load(Ordering::Relaxed) || sub.events.is_closed();
            if cancelled {
                metrics.queued.fetch_sub(1, Ordering::SeqCst);
                metrics.requests_total.fetch_add(1, Ordering::Relaxed);
                metrics.cancelled_total.fetch_add(1, Ordering::Relaxed);
                let usage = TokenUsage {
                    prompt_tokens: sub.request.prompt.len(),
                    ..TokenUsage::default()
                };
                let _ = sub.events.send(TokenEvent::Finished {
                    reason: FinishReason::Cancelled,
                    usage,
                });
            }
            !cancelled
        });
    }

    /// Move waiting requests into free slots, choosing for each the free slot
    /// with the longest cached prefix of its prompt (least recently used on
    /// ties). A request whose prompt continues the prompt of a sequence still
    /// being prefilled waits for it, then starts from a copy of its cache, so
    /// `n` choices (or a burst of one prompt) pay for one prefill.
    fn admit(&mut self) {
        let mut idx = 0;
        while self.active.len() < self.info.max_concurrency && idx < self.waiting.len() {
            let request = &self.waiting[idx].request;
            if self.waits_for_shared_prefill(&request.prompt, request.lora) {
                idx += 1;
                continue;
            }
            let Some(sub) = self.waiting.remove(idx) else {
                break;
            };
            self.metrics.queued.fetch_sub(1, Ordering::SeqCst);
            let lora = sub.request.lora;
            let best = self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.busy)
                .max_by_key(|(_, s)| {
                    (
                        s.prefix_for(&sub.request.prompt, lora),
                        u64::MAX - s.last_used,
                    )
                })
                .map(|(idx, _)| idx);
            let Some(slot_idx) = best else {
                // Cannot happen (active < slots), but never lose a request.
                self.metrics.queued.fetch_add(1, Ordering::SeqCst);
                self.waiting.insert(idx, sub);
                break;
            };
            let sampler = match Sampler::new(sub.request.sampling.clone()) {
                Ok(s) => s,
                Err(e) => {
                    self.metrics.requests_total.fetch_add(1, Ordering::Relaxed);
                    self.metrics.failed_total.fetch_add(1, Ordering::Relaxed);
                    let _ = sub.events.send(TokenEvent::Failed(e.to_string()));
                    continue;
                }
            };
            let context = self.info.context_tokens;
            let slot = &mut self.slots[slot_idx];
            if slot.cache.is_none() {
                slot.cache = Some(self.model.new_cache(context));
                slot.tokens.clear();
                self.metrics.slots_allocated.fetch_add(1, Ordering::Relaxed);
            }
            // The slot's cache runs under the request's adapter from here on; what it held
            // under another adapter is gone (`set_adapter` clears it).
            if let Some(cache) = slot.cache.as_mut() {
                if cache.adapter() != lora {
                    if !cache.set_adapter(lora) {
                        self.metrics.requests_total.fetch_add(1, Ordering::Relaxed);
                        self.metrics.failed_total.fetch_add(1, Ordering::Relaxed);
                        let _ = sub.events.send(TokenEvent::Failed(
                            "this model cannot run LoRA adapters".into(),
                        ));
                        continue;
                    }
                    slot.tokens.clear();
                }
            }
            slot.busy = true;
            self.clock += 1;
            slot.last_used = self.clock;
            let prompt = &sub.request.prompt;
            // Keep at least the last prompt token to recompute: its logits are needed.
            let common =
                common_prefix_len(&slot.tokens, prompt).min(prompt.len().saturating_sub(1));
            let mut kept = common;
            if let Some(cache) = slot.cache.as_mut() {
                if common < slot.tokens.len() || cache.len() != slot.tokens.len() {
                    kept = cache.rollback_to(common).min(common);
                }
                if cache.len() != kept {
                    // The cache disagrees with our bookkeeping: start clean.
                    cache.clear();
                    kept = 0;
                }
            }
            slot.tokens.truncate(kept);
            let kept = match self.copy_longer_prefix(slot_idx, &sub.request.prompt, lora) {
                Some(copied) => {
                    self.metrics
                        .copied_tokens_total
                        .fetch_add(copied as u64, Ordering::Relaxed);
                    copied
                }
                None => kept,
            };
            let prompt = &sub.request.prompt;
            let usage = TokenUsage {
                prompt_tokens: prompt.len(),
                reused_tokens: kept,
                completion_tokens: 0,
            };
            self.metrics.active.fetch_add(1, Ordering::SeqCst);
            self.metrics.requests_total.fetch_add(1, Ordering::Relaxed);
            self.metrics
                .prompt_tokens_total
                .fetch_add(prompt.len() as u64, Ordering::Relaxed);
            self.metrics
                .reused_tokens_total
                .fetch_add(kept as u64, Ordering::Relaxed);
            self.active.push(Sequence {
                slot_idx,
                request: sub.request,
                events: sub.events,
                cancel: sub.cancel,
                sampler,
                phase: Phase::Prefill { next: kept },
                logits: Vec::with_capacity(self.info.vocab_size),
                usage,
                pending: None,
                finished: None,
                failed: false,
            });
        }
    }

    /// Whether `prompt` continues the whole prompt of a sequence still being
    /// prefilled (and so should wait for it and copy its cache) by more than
    /// any idle cache already holds. Only where caches can be copied, and only
    /// a sequence under the same adapter (`lora`).
    fn waits_for_shared_prefill(&self, prompt: &[u32], lora: Option<LoraId>) -> bool {
        let wanted = prompt.len().saturating_sub(1);
        let cached = self
            .slots
            .iter()
            .map(|s| s.prefix_for(prompt, lora))
            .max()
            .unwrap_or(0)
            .min(wanted);
        self.active.iter().any(|seq| {
            let its_prompt = &seq.request.prompt;
            let shared = its_prompt.len().saturating_sub(1);
            seq.finished.is_none()
                && seq.request.lora == lora
                && matches!(seq.phase, Phase::Prefill { .. })
                && shared <= wanted
                && shared >= cached + MIN_SHARED_PREFILL
                && prompt.starts_with(&its_prompt[..shared])
                && self.slots[seq.slot_idx]
                    .cache
                    .as_ref()
                    .is_some_and(|c| c.supports_copy())
        })
    }

    /// If another slot's cache holds a longer prefix of `prompt` (minus its
    /// last token) than slot `dst` does, make `dst` a copy of it rolled back
    /// to that prefix. Returns the positions `dst` then holds, or None when
    /// nothing was copied (`dst` unchanged). Only a cache computed under the
    /// request's adapter `lora` is a source.
    fn copy_longer_prefix(
        &mut self,
        dst: usize,
        prompt: &[u32],
        lora: Option<LoraId>,
    ) -> Option<usize> {
        let wanted = prompt.len().saturating_sub(1);
        let own = self.slots[dst].tokens.len();
        let source = self
            .slots
            .iter()
            .enumerate()
            .filter(|(i, s)| *i != dst && s.cache.is_some())
            .map(|(i, s)| (i, s.prefix_for(prompt, lora).min(wanted)))
            // Worth a copy of the whole source cache only for a real gain.
            .filter(|&(_, common)| common >= own + MIN_SHARED_PREFILL)
            .max_by_key(|&(_, common)| common);
        let (src, common) = source?;
        let (dst_slot, src_slot) = if dst < src {
            let (left, right) = self.slots.split_at_mut(src);
            (&mut left[dst], &right[0])
        } else {
            let (left, right) = self.slots.split_at_mut(dst);
            (&mut right[0], &left[src])
        };
        let (Some(dst_cache), Some(src_cache)) = (dst_slot.cache.as_mut(), src_slot.cache.as_ref())
        else {
            return None;
        };
        if src_cache.len() != src_slot.tokens.len() || !dst_cache.copy_from(src_cache) {
            return None;
        }
        let mut kept = dst_cache.rollback_to(common).min(common);
        if dst_cache.len() != kept {
            dst_cache.clear();
            kept = 0;
        }
        dst_slot.tokens.clear();
        dst_slot.tokens.extend_from_slice(&prompt[..kept]);
        Some(kept)
    }

    /// One scheduler step: a prefill chunk (without logits) for each prefilling
    /// sequence, then sample + one batched decode forward for the decoding ones
    /// (and for the last prompt token of sequences that just finished prefill).
    fn step(&mut self) {
        // 1. Prefill chunks.
        for seq in self.active.iter_mut() {
            if seq.finished.is_some() {
                continue;
            }
            if seq.is_cancelled() {
                seq.finished = Some(FinishReason::Cancelled);
                continue;
            }
            let Phase::Prefill { next } = seq.phase else {
                continue;
            };
            let slot = &mut self.slots[seq.slot_idx];
            let Some(cache) = slot.cache.as_mut() else {
                seq.finished = Some(FinishReason::Cancelled);
                continue;
            };
            // The last prompt token is not prefilled: it joins this step's batched decode
            // forward (below), which computes its logits together with every other row's.
            let prompt = &seq.request.prompt;
            let last = prompt.len().saturating_sub(1);
            let end = (next + PREFILL_CHUNK).min(last);
            let chunk = &prompt[next..end];
            if !chunk.is_empty() {
                if let Err(e) =
                    self.model
                        .forward(chunk, cache, LogitsFor::Nothing, &mut seq.logits)
                {
                    cache.clear();
                    slot.tokens.clear();
                    let _ = seq.events.send(TokenEvent::Failed(e.to_string()));
                    seq.finished = Some(FinishReason::Cancelled);
                    seq.failed = true;
                    continue;
                }
                slot.tokens.extend_from_slice(chunk);
            }
            if end == last {
                cache.mark_snapshot();
                seq.phase = Phase::Decode;
                seq.pending = prompt.get(last).copied();
            } else {
                seq.phase = Phase::Prefill { next: end };
            }
        }

        // 2. Sample one token for every decoding sequence: the checks, then the samplers
        //    (each a pass over the whole vocabulary, a per-row cost batching does not share)
        //    in parallel across sequences, then the bookkeeping in order.
        let mut sampling: Vec<&mut Sequence> = Vec::new();
        for seq in self.active.iter_mut() {
            if seq.finished.is_some()
                || !matches!(seq.phase, Phase::Decode)
                || seq.pending.is_some()
            {
                continue;
            }
            if seq.is_cancelled() {
                seq.finished = Some(FinishReason::Cancelled);
                continue;
            }
            if seq
                .request
                .max_tokens
                .is_some_and(|max| seq.usage.completion_tokens >= max)
            {
                seq.finished = Some(FinishReason::MaxTokens);
                continue;
            }
            sampling.push(seq);
        }
        let sampled: Vec<Result<(u32, Option<TokenLogprob>), EngineError>> = if sampling.len() > 1 {
            sampling.par_iter_mut().map(|seq| seq.sample()).collect()
        } else {
            sampling.iter_mut().map(|seq| seq.sample()).collect()
        };
        for (seq, result) in sampling.into_iter().zip(sampled) {
            let token = match result {
                Ok((t, logprob)) => {
                    if let Some(lp) = logprob {
                        let _ = seq.events.send(TokenEvent::Logprob(lp));
                    }
                    t
                }
                Err(e) => {
                    let _ = seq.events.send(TokenEvent::Failed(e.to_string()));
                    seq.finished = Some(FinishReason::Cancelled);
                    seq.failed = true;
                    continue;
                }
            };
            seq.usage.completion_tokens += 1;
            self.metrics
                .generated_tokens_total
                .fetch_add(1, Ordering::Relaxed);
            if seq.events.send(TokenEvent::Token(token)).is_err() {
                seq.finished = Some(FinishReason::Cancelled);
                continue;
            }
            if seq.request.stop_tokens.contains(&token) {
                let cut = seq
                    .request
                    .constraint
                    .as_ref()
                    .is_some_and(|c| c.cut_short());
                seq.finished = Some(if cut {
                    FinishReason::MaxTokens
                } else {
                    FinishReason::StopToken(token)
                });
            } else if seq
                .request
                .max_tokens
                .is_some_and(|max| seq.usage.completion_tokens >= max)
            {
                seq.finished = Some(FinishReason::MaxTokens);
            } else if self.slots[seq.slot_idx].tokens.len() >= self.info.context_tokens {
                seq.finished = Some(FinishReason::ContextFull);
            } else {
                seq.pending = Some(token);
            }
        }

        // 3. One batched forward over every sequence with a pending token.
        let mut slot_refs: Vec<Option<&mut Slot<M::Cache>>> =
            self.slots.iter_mut().map(Some).collect();
        let mut rows = Vec::new();
        let mut row_seq = Vec::new();
        let mut row_slot_tokens: Vec<&mut Vec<u32>> = Vec::new();
        for (seq_idx, seq) in self.active.iter_mut().enumerate() {
            let Some(token) = seq.pending.take() else {
                continue;
            };
            let Some(slot) = slot_refs.get_mut(seq.slot_idx).and_then(Option::take) else {
                continue;
            };
            let Some(cache) = slot.cache.as_mut() else {
                continue;
            };
            rows.push(BatchRow {
                token,
                cache,
                logits: &mut seq.logits,
            });
            row_seq.push(seq_idx);
            row_slot_tokens.push(&mut slot.tokens);
        }
        if rows.is_empty() {
            return;
        }
        self.metrics
            .decode_steps_total
            .fetch_add(1, Ordering::Relaxed);
        self.metrics
            .decode_rows_total
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        let results = forward_batch(&self.model, &mut rows);
        let fed: Vec<u32> = rows.iter().map(|r| r.token).collect();
        drop(rows);
        for (((result, seq_idx), slot_tokens), token) in results
            .into_iter()
            .zip(row_seq)
            .zip(row_slot_tokens)
            .zip(fed)
        {
            match result {
                Ok(()) => slot_tokens.push(token),
                Err(e) => {
                    let seq = &mut self.active[seq_idx];
                    let _ = seq.events.send(TokenEvent::Failed(e.to_string()));
                    seq.finished = Some(FinishReason::Cancelled);
                    seq.failed = true;
                    slot_tokens.clear();
                }
            }
        }
        // A failed forward may leave a partial row in the cache: clear those caches.
        for seq in &self.active {
            if seq.failed {
                let slot = &mut self.slots[seq.slot_idx];
                if let Some(cache) = slot.cache.as_mut() {
                    if cache.len() != slot.tokens.len() {
                        cache.clear();
                        slot.tokens.clear();
                    }
                }
            }
        }
    }

    /// Remove finished sequences, tell their clients, free their slots.
    fn retire(&mut self) {
        let mut idx = 0;
        while idx < self.active.len() {
            let Some(reason) = self.active[idx].finished else {
                idx += 1;
                continue;
            };
            let seq = self.active.swap_remove(idx);
            self.slots[seq.slot_idx].busy = false;
            self.metrics.active.fetch_sub(1, Ordering::SeqCst);
            if seq.failed {
                self.metrics.failed_total.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if reason == FinishReason::Cancelled {
                self.metrics.cancelled_total.fetch_add(1, Ordering::Relaxed);
            } else {
                self.metrics.completed_total.fetch_add(1, Ordering::Relaxed);
            }
            let _ = seq.events.send(TokenEvent::Finished {
                reason,
                usage: seq.usage,
            });
        }
    }
}
