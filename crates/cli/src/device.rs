//! `--device auto|cpu|gpu[:N]`: where a loaded model runs. The CPU model runs as loaded; for a
//! GPU its weights are uploaded once (progress bar on stderr) and the host copy is dropped.
//! `DeviceModel` puts both behind the engine's `LanguageModel` seam, so every command runs
//! either unchanged.

use std::str::FromStr;

use anyhow::Context;
use gptoss_engine::language_model::DecodeRow;
use gptoss_engine::{EngineError, KvState, LanguageModel, LogitsFor};
use gptoss_gpu::{GpuContext, GpuError, GpuKv, GpuModel, SharedGpuModel};
use gptoss_model::{KvCache, Model};

/// A `--device` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// The best GPU when one (not a software rasterizer) is found and the model fits, else the CPU.
    Auto,
    Cpu,
    /// `gpu` (the best adapter) or `gpu:N` (adapter N of `gpt-oss devices`).
    Gpu(Option<usize>),
}

impl FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Device, String> {
        match s {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "gpu" => Ok(Device::Gpu(None)),
            _ => match s.strip_prefix("gpu:").map(str::parse::<usize>) {
                Some(Ok(i)) => Ok(Device::Gpu(Some(i))),
                _ => Err(format!(
                    "`{s}` is not a device: use auto, cpu, gpu or gpu:N (see `gpt-oss devices`)"
                )),
            },
        }
    }
}

/// The `--device` flag, shared by every command that runs a model.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct DeviceArg {
    /// Where the model runs: auto (a GPU when one is found and the model fits, else the CPU),
    /// cpu, gpu (the best adapter) or gpu:N (see `gpt-oss devices`).
    #[arg(long, default_value = "auto", value_parser = Device::from_str)]
    pub device: Device,
}

/// A model on the CPU or on a GPU.
// One per process (and one cache per sequence): the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum DeviceModel {
    Cpu(Model),
    Gpu(SharedGpuModel),
}

/// A KV cache of a [`DeviceModel`], on the model's device.
#[allow(clippy::large_enum_variant)]
pub enum DeviceCache {
    Cpu(KvCache),
    Gpu(GpuKv),
}

impl DeviceModel {
    /// The model's shapes.
    pub fn config(&self) -> &gptoss_model::Config {
        match self {
            DeviceModel::Cpu(m) => m.config(),
            DeviceModel::Gpu(g) => g.0.config(),
        }
    }
}

/// Puts `model` on `device`, saying on stderr where it runs when that is a GPU or when `auto`
/// fell back to the CPU for a reason worth knowing. `gpu_only_flags` names flags that only the
/// CPU path honours (they are an error on a GPU the user asked for).
/// Puts the model where `device` says; logs the device (and, on the CPU, the kernel level).
pub fn place(
    model: Model,
    device: Device,
    cpu_only: &[(&str, bool)],
) -> anyhow::Result<DeviceModel> {
    let placed = place_on(model, device, cpu_only)?;
    if let DeviceModel::Cpu(_) = placed {
        eprintln!("{}", gptoss_backend::kernel_summary());
    }
    Ok(placed)
}

fn place_on(
    model: Model,
    device: Device,
    cpu_only: &[(&str, bool)],
) -> anyhow::Result<DeviceModel> {
    let index = match device {
        Device::Cpu => return Ok(DeviceModel::Cpu(model)),
        Device::Gpu(_) if model.gpu_unsupported().is_some() => {
            anyhow::bail!(
                "--device gpu: {}",
                model.gpu_unsupported().unwrap_or_default()
            );
        }
        Device::Auto if model.gpu_unsupported().is_some() => {
            eprintln!("device: cpu (the GPU backend cannot read this file's Q8_0 matrices)");
            return Ok(DeviceModel::Cpu(model));
        }
        Device::Gpu(i) => i,
        Device::Auto => {
            // Only a real GPU is worth it; lavapipe and friends are slower than our CPU kernels.
            let all = gptoss_gpu::list_adapters();
            let best = all.iter().find(|a| !a.is_software).cloned();
            match best {
                None => {
                    match all.first() {
                        Some(a) => eprintln!(
                            "device: cpu (only a software GPU adapter, {}; --device gpu uses it anyway)",
                            a.name
                        ),
                        None => eprintln!("device: cpu (no GPU adapter found)"),
                    }
                    return Ok(DeviceModel::Cpu(model));
                }
                Some(a) if cpu_only.iter().any(|(_, on)| *on) => {
                    eprintln!(
                        "device: cpu ({} found, but a CPU-only option is set)",
                        a.name
                    );
                    return Ok(DeviceModel::Cpu(model));
                }
                Some(a) => Some(a.index),
            }
        }
    };
    if let Some((flag, _)) = cpu_only.iter().find(|(_, on)| *on) {
        anyhow::bail!("{flag} is only available on the CPU (drop it, or use --device cpu)");
    }
    let ctx = GpuContext::open(index)?;
    let name = ctx.adapter().name.clone();
    let total = GpuModel::weight_bytes(&model);
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "uploading to {msg} {bar:30} {binary_bytes}/{binary_total_bytes} {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(name.clone());
    let uploaded = GpuModel::upload(ctx, &model, &mut |done, _| bar.set_position(done));
    bar.finish_and_clear();
    match uploaded {
        Ok(gpu) => {
            eprintln!(
                "device: gpu {name} ({:.2} GB of weights on the device)",
                gpu.device_weight_bytes() as f64 / 1e9
            );
            Ok(DeviceModel::Gpu(SharedGpuModel(std::sync::Arc::new(gpu))))
        }
        Err(e @ (GpuError::OutOfMemory { .. } | GpuError::TooLarge { .. }))
            if device == Device::Auto =>
        {
            eprintln!("device: cpu ({e})");
            Ok(DeviceModel::Cpu(model))
        }
        Err(e) => Err(e).context("cannot put the model on the GPU"),
    }
}

impl KvState for DeviceCache {
    fn len(&self) -> usize {
        match self {
            DeviceCache::Cpu(c) => KvState::len(c),
            DeviceCache::Gpu(c) => c.len(),
        }
    }
    fn max_tokens(&self) -> usize {
        match self {
            DeviceCache::Cpu(c) => KvState::max_tokens(c),
            DeviceCache::Gpu(c) => c.max_tokens(),
        }
    }
    fn clear(&mut self) {
        match self {
            DeviceCache::Cpu(c) => KvState::clear(c),
            DeviceCache::Gpu(c) => c.clear(),
        }
    }
    fn rollback_to(&mut self, n_tokens: usize) -> usize {
        match self {
            DeviceCache::Cpu(c) => KvState::rollback_to(c, n_tokens),
            DeviceCache::Gpu(c) => c.rollback_to(n_tokens),
        }
    }
    fn mark_snapshot(&mut self) {
        match self {
            DeviceCache::Cpu(c) => KvState::mark_snapshot(c),
            DeviceCache::Gpu(c) => c.mark_snapshot(),
        }
    }
    fn supports_copy(&self) -> bool {
        match self {
            DeviceCache::Cpu(c) => KvState::supports_copy(c),
            DeviceCache::Gpu(c) => c.supports_copy(),
        }
    }
    fn copy_from(&mut self, source: &Self) -> bool {
        match (self, source) {
            (DeviceCache::Cpu(c), DeviceCache::Cpu(s)) => KvState::copy_from(c, s),
            (DeviceCache::Gpu(c), DeviceCache::Gpu(s)) => c.copy_from(s),
            _ => false,
        }
    }
    fn adapter(&self) -> Option<gptoss_engine::LoraId> {
        match self {
            DeviceCache::Cpu(c) => KvState::adapter(c),
            DeviceCache::Gpu(c) => c.adapter(),
        }
    }
    fn set_adapter(&mut self, adapter: Option<gptoss_engine::LoraId>) -> bool {
        match self {
            DeviceCache::Cpu(c) => KvState::set_adapter(c, adapter),
            DeviceCache::Gpu(c) => c.set_adapter(adapter),
        }
    }
}

fn wrong_device() -> EngineError {
    EngineError::Forward("a cache of one device was given to a model on another".into())
}

impl LanguageModel for DeviceModel {
    type Cache = DeviceCache;

    fn vocab_size(&self) -> usize {
        self.config().vocab_size
    }
    fn max_context(&self) -> usize {
        self.config().max_context()
    }
    fn new_cache(&self, max_tokens: usize) -> DeviceCache {
        match self {
            DeviceModel::Cpu(m) => DeviceCache::Cpu(Model::new_cache(m, max_tokens)),
            DeviceModel::Gpu(g) => DeviceCache::Gpu(LanguageModel::new_cache(g, max_tokens)),
        }
    }
    fn forward(
        &self,
        tokens: &[u32],
        cache: &mut DeviceCache,
        which: LogitsFor,
        logits: &mut Vec<f32>,
    ) -> Result<(), EngineError> {
        match (self, cache) {
            (DeviceModel::Cpu(m), DeviceCache::Cpu(c)) => {
                LanguageModel::forward(m, tokens, c, which, logits)
            }
            (DeviceModel::Gpu(g), DeviceCache::Gpu(c)) => g.forward(tokens, c, which, logits),
            _ => Err(wrong_device()),
        }
    }
    fn forward_batch(
        &self,
        rows: &mut [DecodeRow<'_, DeviceCache>],
    ) -> Vec<Result<(), EngineError>> {
        macro_rules! batch {
            ($model:expr, $variant:ident) => {{
                let mut ok = Vec::new();
                let mut inner = Vec::new();
                for (i, row) in rows.iter_mut().enumerate() {
                    if let DeviceCache::$variant(c) = &mut *row.cache {
                        ok.push(i);
                        inner.push(DecodeRow {
                            token: row.token,
                            cache: c,
                            logits: &mut *row.logits,
                        });
                    }
                }
                let done = LanguageModel::forward_batch($model, &mut inner);
                let mut results: Vec<Result<(), EngineError>> =
                    (0..rows.len()).map(|_| Err(wrong_device())).collect();
                for (i, r) in ok.into_iter().zip(done) {
                    results[i] = r;
                }
                results
            }};
        }
        match self {
            DeviceModel::Cpu(m) => batch!(m, Cpu),
            DeviceModel::Gpu(g) => batch!(g, Gpu),
        }
    }
}
