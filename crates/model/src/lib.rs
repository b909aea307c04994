//! gpt-oss model: `Config` (original `config.json` names), the checkpoint loader (memory-mapped
//! safetensors in the original or Hugging Face layout, MXFP4 experts kept packed), the forward
//! pass to logits, and the per-sequence `KvCache` it writes.
//!
//! `Model::forward` is a function of (weights, tokens, cache contents): it knows nothing of text,
//! requests or sampling. Kernels live in `gptoss-backend`. `Model::forward_batch` runs one decode
//! step for several sequences (each its own cache and position) with one pass over the weights.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use gptoss_model::{LogitsFor, Model};
//! let model = Model::load(std::path::Path::new("gpt-oss-20b/original"))?;
//! let mut cache = model.new_cache(4096);
//! let prompt_logits = model.forward(&[200006, 1428], &mut cache, LogitsFor::Last)?;
//! # Ok(()) }
//! ```

mod cache;
mod checkpoint;
mod config;
mod error;
mod forward;
pub mod gguf;
mod gguf_load;
mod lora;
mod q8_weights;
pub mod synth;
mod tensors;
pub mod train;
mod unembed;
mod weights;

use std::path::Path;

use gptoss_backend::YarnRope;

pub use cache::{plan_rollback, KvCache, Rollback, MAX_SNAPSHOTS, PAGE_LEN};
pub use config::Config;
pub use error::{ForwardError, LoadError, LoraError, LoraProblem};
pub use forward::{check_room, check_tokens};
pub use gguf_load::{GgufTokenizer, ReferenceVocab};
pub use lora::{LoraAdapter, LoraId, ADAPTER_CONFIG, ADAPTER_WEIGHTS};
pub use tensors::{
    DenseTensor, ExpertTensor, ExpertTensors, LayerTensors, LinearTensors, ModelTensors,
};
pub use weights::Layout;

use checkpoint::{Blob, Store};
use weights::Weights;

/// Which positions' logits `Model::forward` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitsFor {
    /// Every position of the call: [n_tokens, vocab_size].
    All,
    /// The last position only: [1, vocab_size].
    Last,
    /// No logits (empty): only the cache is filled, for prompt tokens whose predictions nobody
    /// reads (a batched scheduler feeds the last prompt token with the decode step instead).
    Nothing,
}

/// A loaded checkpoint, ready to run. Immutable and `Sync`: one model serves many caches.
pub struct Model {
    config: Config,
    store: Store,
    weights: Weights,
    rope: YarnRope,
    /// How the MXFP4 expert products run (see [`ExpertPath`]).
    expert_path: ExpertPath,
    /// The unembedding's nonzero rows, compact, when most rows are exactly zero (unembed.rs).
    zero_rows: unembed::ZeroRowSkip,
    /// The unembedding quantized to 8 bits, present exactly when 8-bit weights are on
    /// (`set_weights_q8`; the attention projections' copies are in their `Linear::q8`).
    q8_unembed: Option<q8_weights::Q8Unembedding>,
    /// The checkpoint stores some of the 8-bit path's matrices as Q8_0 (a GGUF file): 8-bit
    /// weights are on from load and stay on (those matrices have no other form).
    native_q8: bool,
    /// The tokenizer metadata of a GGUF file, for the caller to check (`GgufTokenizer::check`).
    gguf_tokenizer: Option<GgufTokenizer>,
    /// The PEFT LoRA adapter applied beside the base products of every sequence that names
    /// none (`set_lora`, lora.rs).
    lora: Option<LoraAdapter>,
    /// Adapters a sequence may choose by [`LoraId`] (`add_lora`, the index here): one server
    /// serves several fine-tunes of one base, the base weights shared.
    adapters: Vec<LoraAdapter>,
}

/// The numerics of the MXFP4 expert matrix products (docs/numerics.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpertPath {
    /// f32 activations times the exactly decoded weights, f32 accumulation: the path that meets
    /// the reference within 2e-3 on the golden fixtures.
    Exact,
    /// Activations quantized per 32-element block to int8 (one f32 scale per block, as
    /// llama.cpp's q8_0), integer dot products with the FP4 codes, one f32 scale per block:
    /// ~2x faster expert products on AVX2, at a small, documented accuracy cost.
    Int8,
}

impl ExpertPath {
    /// The default: [`ExpertPath::Int8`] where the CPU has int8 kernels (AVX2+FMA, NEON), unless
    /// the environment variable `GPT_OSS_EXACT` is set to anything but `0` or empty, which
    /// selects [`ExpertPath::Exact`] (so does a CPU without the kernels).
    pub fn from_env() -> ExpertPath {
        let exact = std::env::var_os("GPT_OSS_EXACT").is_some_and(|v| !v.is_empty() && v != "0");
        if exact || !gptoss_backend::int8_kernels() {
            ExpertPath::Exact
        } else {
            ExpertPath::Int8
        }
    }
}

impl Model {
    /// `path`: an `original/` folder, a Hugging Face folder (MXFP4 or dequantized bf16),
    /// the parent of a Hugging Face download (which contains `original/` too), a GGUF file
    /// (by its magic, whatever its name: Ollama's blobs have none), or a folder holding one GGUF
    /// file and no config.json. Memory-mapped.
    pub fn load(path: &Path) -> Result<Model, LoadError> {
        if let Some(file) = checkpoint::find_gguf(path)? {
            return Model::load_gguf(&file);
        }
        let files = checkpoint::find_files(path)?;
        let config_bytes = std::fs::read(&files.config).map_err(|e| LoadError::Io {
            path: files.config.clone(),
            source: e,
        })?;
        let config = Config::from_json(&config_bytes)?;
        let mut store = Store::new();
        for f in &files.safetensors {
            let blob = checkpoint::map_file(f)?;
            store.add(checkpoint::display_name(f), blob)?;
        }
        Model::assemble(config, store)
    }

    /// Original layout from memory (the demo model embedded in the binary): config.json bytes and
    /// one safetensors file's bytes. The bytes are copied once into an aligned buffer.
    pub fn from_memory(config_json: &[u8], safetensors: Vec<u8>) -> Result<Model, LoadError> {
        let config = Config::from_json(config_json)?;
        let mut store = Store::new();
        store.add("<memory>".into(), Blob::owned(&safetensors))?;
        drop(safetensors);
        Model::assemble(config, store)
    }

    /// Loads one GGUF file (llama.cpp's `gpt-oss` architecture, see `gguf_load.rs`).
    pub fn load_gguf(path: &Path) -> Result<Model, LoadError> {
        let name = checkpoint::display_name(path);
        let blob = checkpoint::map_file(path)?;
        let file = gguf::GgufFile::parse(blob.bytes()).map_err(|problem| LoadError::Gguf {
            file: name.clone(),
            problem,
        })?;
        let config = gguf_load::config(&file)?;
        let mut store = Store::new();
        store.blobs.push(blob);
        store.blob_names.push(name);
        let weights = gguf_load::bind(&mut store, &file, &config)?;
        let mut model = Model::finish(config, store, weights);
        model.gguf_tokenizer = gguf_load::tokenizer(&file);
        let w = &model.weights;
        let is_q8 = |r: &weights::DenseRef| r.dtype == weights::DenseDtype::Q8_0;
        model.native_q8 = is_q8(&w.unembedding)
            || w.layers
                .iter()
                .any(|l| [&l.q, &l.k, &l.v, &l.out].iter().any(|lin| is_q8(&lin.w)));
        if model.native_q8 {
            model.zero_rows.disable();
            model.set_weights_q8_inner(true)?;
        }
        Ok(model)
    }

    /// The tokenizer metadata of a GGUF checkpoint (None for safetensors checkpoints, and for a
    /// GGUF file without `tokenizer.ggml.model`). Check it against the tokenizer you run with
    /// [`GgufTokenizer::check`] before trusting token ids.
    pub fn gguf_tokenizer(&self) -> Option<&GgufTokenizer> {
        self.gguf_tokenizer.as_ref()
    }

    /// Why the GPU backend cannot take this model's weights as they are (it reads bf16/f32
    /// matrices and MXFP4 experts; a GGUF's Q8_0 matrices have no such form), None when it can.
    pub fn gpu_unsupported(&self) -> Option<String> {
        let w = &self.weights;
        let q8 = w.embedding.dtype == weights::DenseDtype::Q8_0 || self.native_q8;
        q8.then(|| {
            "this GGUF file stores matrices as Q8_0, which the GPU backend does not read yet;              run it with --device cpu (or use a BF16 GGUF / the safetensors checkpoint)"
                .to_string()
        })
    }

    fn assemble(config: Config, mut store: Store) -> Result<Model, LoadError> {
        let weights = weights::bind(&mut store, &config)?;
        Ok(Model::finish(config, store, weights))
    }

    fn finish(config: Config, store: Store, weights: Weights) -> Model {
        let mut zero_rows = unembed::ZeroRowSkip::detect(
            &store,
            &weights.unembedding,
            config.vocab_size,
            config.hidden_size,
        );
        // `GPTOSS_DENSE_UNEMBED=1`: the plain dense product (same logits, slower), for comparisons
        // and for tests that need a generation to last (the web page's Stop button).
        if std::env::var_os("GPTOSS_DENSE_UNEMBED").is_some_and(|v| !v.is_empty() && v != "0") {
            zero_rows.disable();
        }
        let rope = config.yarn_rope();
        Model {
            config,
            store,
            weights,
            rope,
            expert_path: ExpertPath::from_env(),
            zero_rows,
            q8_unembed: None,
            native_q8: false,
            gguf_tokenizer: None,
            lora: None,
            adapters: Vec::new(),
        }
    }

    /// How many unembedding rows are multiplied when most rows are exactly zero (the demo model:
    /// 2,084 of 201,088), in which case the others' logits are written as 0.0 without a product
    /// (bit-identical: see `unembed.rs`); `None` when every product takes the dense path.
    pub fn unembedding_nonzero_rows(&self) -> Option<usize> {
        self.zero_rows.nonzero_rows()
    }

    /// Turns the zero-row skipping off for good: every unembedding runs the dense product (for
    /// comparisons and benchmarks; the results are the same bits either way). With 8-bit
    /// weights already on, their unembedding keeps the form it was quantized in (the same bits
    /// too); call this before [`Model::set_weights_q8`] to quantize every row.
    pub fn disable_zero_row_skipping(&mut self) {
        self.zero_rows.disable();
    }

    /// How the MXFP4 expert products run; set at load from [`ExpertPath::from_env`].
    pub fn expert_path(&self) -> ExpertPath {
        self.expert_path
    }

    /// Chooses how the MXFP4 expert products run from now on (checkpoints with dense experts
    /// always run exact). [`ExpertPath::Int8`] on a CPU without SIMD kernels runs its scalar
    /// oracle: same results, slower than the exact path.
    pub fn set_expert_path(&mut self, path: ExpertPath) {
        self.expert_path = path;
    }

    /// Turns 8-bit weights on or off (`--weights-q8`, docs/numerics.md): the attention
    /// projections (q, k, v, out) and the unembedding are quantized once, on the first switch
    /// on, to int8 with one f32 scale per 32 inputs, and every product with them then runs on
    /// 8-bit activations (~1.1 GB less to read per decode step on gpt-oss-20b, at an accuracy
    /// cost measured in docs/numerics.md). Their bf16 pages are released from the memory map as
    /// they are quantized. Off (the default) drops the copies and reads the bf16 weights again.
    /// When zero-row skipping is active only the nonzero unembedding rows are quantized.
    ///
    /// Fails (and stays off) when a quantized matrix's row length (`hidden_size`, the attention
    /// width) is not a multiple of 32. Without AVX2 the products run their scalar oracle: the
    /// same results, slowly.
    ///
    /// A GGUF file whose matrices are Q8_0 has 8-bit weights on from load (converted losslessly
    /// from its Q8_0 blocks); turning them off is then a no-op, as those matrices have no other
    /// form.
    pub fn set_weights_q8(&mut self, on: bool) -> Result<(), LoadError> {
        if !on && self.native_q8 {
            return Ok(());
        }
        self.set_weights_q8_inner(on)
    }

    fn set_weights_q8_inner(&mut self, on: bool) -> Result<(), LoadError> {
        if on == self.weights_q8() {
            return Ok(());
        }
        let clear = |m: &mut Model| {
            m.q8_unembed = None;
            for l in &mut m.weights.layers {
                for lin in [&mut l.q, &mut l.k, &mut l.v, &mut l.out] {
                    lin.q8 = None;
                }
            }
        };
        if !on {
            clear(self);
            return Ok(());
        }
        match q8_weights::quantize(&self.store, &mut self.weights, self.zero_rows.nonzero_ids()) {
            Ok(u) => {
                self.q8_unembed = Some(u);
                Ok(())
            }
            Err(e) => {
                clear(self);
                Err(e)
            }
        }
    }

    /// Whether 8-bit weights are on (see [`Model::set_weights_q8`]).
    pub fn weights_q8(&self) -> bool {
        self.q8_unembed.is_some()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Reads the PEFT LoRA adapter folder `dir` and validates it against this model (names,
    /// layers, shapes, options; see lora.rs). Apply it with [`Model::set_lora`].
    pub fn load_lora(&self, dir: &Path) -> Result<LoraAdapter, LoraError> {
        LoraAdapter::load(dir, &self.config)
    }

    /// Applies `adapter` from the next forward call on to every sequence whose cache names no
    /// adapter ([`KvCache::set_lora`]; None: the base alone). Its low-rank updates run beside
    /// the base products, y += scale · B(A x); the base weights are not touched. Refuses an
    /// adapter validated against a model of other shapes.
    pub fn set_lora(&mut self, adapter: Option<LoraAdapter>) -> Result<(), LoraError> {
        if let Some(a) = &adapter {
            self.check_fits(a)?;
        }
        self.lora = adapter;
        Ok(())
    }

    /// The adapter applied by [`Model::set_lora`], if any.
    pub fn lora(&self) -> Option<&LoraAdapter> {
        self.lora.as_ref()
    }

    /// Registers `adapter` for the sequences that choose it by the returned id
    /// ([`KvCache::set_lora`]), beside the others: rows of one batched decode step may each run
    /// under a different adapter (or none), the base products still computed once for all.
    /// Refuses an adapter validated against a model of other shapes.
    pub fn add_lora(&mut self, adapter: LoraAdapter) -> Result<LoraId, LoraError> {
        self.check_fits(&adapter)?;
        let id = u32::try_from(self.adapters.len()).map_err(|_| LoraError {
            path: adapter.dir().to_path_buf(),
            problem: LoraProblem::BadConfig("too many adapters".into()),
        })?;
        self.adapters.push(adapter);
        Ok(LoraId(id))
    }

    /// The adapter registered as `id` by [`Model::add_lora`].
    pub fn lora_by_id(&self, id: LoraId) -> Option<&LoraAdapter> {
        self.adapters.get(id.0 as usize)
    }

    /// The adapter a cache naming `choice` runs under: the registered one, or with None the
    /// [`Model::set_lora`] one (if any).
    pub(crate) fn adapter_for(&self, choice: Option<LoraId>) -> Option<&LoraAdapter> {
        match choice {
            None => self.lora.as_ref(),
            Some(id) => self.lora_by_id(id),
        }
    }

    fn check_fits(&self, adapter: &LoraAdapter) -> Result<(), LoraError> {
        if adapter.fits(&self.config) {
            Ok(())
        } else {
            Err(LoraError {
                path: adapter.dir().to_path_buf(),
                problem: LoraProblem::OtherModel,
            })
        }
    }

    /// The checkpoint layout that was loaded.
    pub fn layout(&self) -> Layout {
        self.weights.layout
    }

    /// A cache able to hold up to `max_tokens` positions (clamped to config.max_context()).
    pub fn new_cache(&self, max_tokens: usize) -> KvCache {
        KvCache::new(&self.config, max_tokens.min(self.config.max_context()))
    }

    /// Runs `tokens` at positions cache.len() .. cache.len()+tokens.len() in one batched pass
    /// (prefill) or one token (decode), appends their K/V to `cache`, and returns f32 logits
    /// row-major [n_rows, vocab_size]: n_rows = tokens.len() for LogitsFor::All, 1 for
    /// LogitsFor::Last, 0 for LogitsFor::Nothing. On error the cache is unchanged.
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        logits: LogitsFor,
    ) -> Result<Vec<f32>, ForwardError> {
        let mut out = Vec::new();
        self.forward_into(tokens, cache, logits, &mut out)?;
        Ok(out)
    }

    /// One decode step for several sequences at once (continuous batching): each row's `token`
    /// runs at position `row.cache.len()` of its own cache (rows may be at different depths),
    /// its K/V are appended there, and its next-token logits (f32 [vocab_size]) are written to
    /// `row.logits`. Every matrix product runs over all rows together, so the weights are read
    /// once per step for the whole batch; attention and RoPE are per row. Each row runs under
    /// its cache's LoRA adapter ([`KvCache::set_lora`]; rows may differ): the base products
    /// still run once over all rows, each adapter's update over its own rows. Each row gets
    /// exactly what [`Model::forward`] of that one token on that cache would give.
    ///
    /// Returns one result per row, in row order. A row that fails the checks of `forward`
    /// (bad token, full cache, cache of another model) gets that error and is left unchanged;
    /// the other rows still run.
    pub fn forward_batch(&self, rows: &mut [DecodeRow<'_>]) -> Vec<Result<(), ForwardError>> {
        self.forward_batch_impl(rows)
    }
}

/// One sequence of a [`Model::forward_batch`] step.
pub struct DecodeRow<'a> {
    /// The token to feed (at position `cache.len()`).
    pub token: u32,
    pub cache: &'a mut KvCache,
    /// Receives the next-token logits, f32 [vocab_size] (resized; capacity reused).
    pub logits: &'a mut Vec<f32>,
}
