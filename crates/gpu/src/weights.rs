//! The model's weights in device memory, uploaded once from the checkpoint's mapping: MXFP4
//! experts as their packed bytes (4.25 bits a weight), dense matrices in their stored dtype,
//! q/k/v fused into one matrix so one product makes all three, and the small vectors (norms,
//! sinks, biases) as f32.

use gptoss_model::{
    Config, DenseTensor, ExpertTensor, ExpertTensors, LayerTensors, LinearTensors, ModelTensors,
};

use crate::context::GpuContext;
use crate::kernels::{ExpertFormat, WeightFormat};
use crate::GpuError;

/// A dense product's weights on the device.
pub(crate) struct DeviceLinear {
    pub w: wgpu::Buffer,
    pub format: WeightFormat,
    /// f32 [d_out]
    pub bias: Option<wgpu::Buffer>,
    pub d_in: usize,
    pub d_out: usize,
}

/// One expert matrix for every expert, laid out [E, d_out, d_in].
pub(crate) struct DeviceExperts {
    /// MXFP4 codes (u32 words) or the dense elements.
    pub w: wgpu::Buffer,
    /// E8M0 scale bytes (MXFP4); a placeholder for dense experts.
    pub scales: wgpu::Buffer,
    /// f32 [E, d_out]
    pub bias: wgpu::Buffer,
}

pub(crate) struct DeviceLayer {
    pub attn_norm: wgpu::Buffer,
    /// q, k and v rows stacked: [q_dim + 2·kv_dim, hidden]
    pub qkv: DeviceLinear,
    pub out: DeviceLinear,
    pub sinks: wgpu::Buffer,
    pub mlp_norm: wgpu::Buffer,
    pub router: DeviceLinear,
    pub mlp1: DeviceExperts,
    pub mlp2: DeviceExperts,
}

pub(crate) struct DeviceWeights {
    pub embedding: wgpu::Buffer,
    pub embed_format: WeightFormat,
    /// The unembedding, or only its nonzero rows (then `unembed_ids` maps row -> token id).
    pub unembedding: DeviceLinear,
    pub unembed_ids: Option<wgpu::Buffer>,
    pub norm: wgpu::Buffer,
    pub layers: Vec<DeviceLayer>,
    pub expert_format: ExpertFormat,
    /// Bytes of weights on the device.
    pub bytes: u64,
}

fn format_of(t: &DenseTensor<'_>) -> WeightFormat {
    match t {
        DenseTensor::Bf16(_) => WeightFormat::Bf16,
        DenseTensor::F32(_) => WeightFormat::F32,
    }
}

fn f32_bytes(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

fn to_f32(t: &DenseTensor<'_>) -> Vec<f32> {
    match t {
        DenseTensor::Bf16(v) => v.iter().map(|x| x.to_f32()).collect(),
        DenseTensor::F32(v) => v.to_vec(),
    }
}

/// Total bytes [`DeviceWeights::upload`] will place on the device (for the fit check and the
/// progress bar).
pub(crate) fn device_bytes(t: &ModelTensors<'_>, c: &Config) -> u64 {
    let lin =
        |l: &LinearTensors<'_>| (l.weight.byte_len() + l.bias.map_or(0, |b| b.len() * 4)) as u64;
    let exp = |e: &ExpertTensors<'_>| {
        let w = match e.weight {
            ExpertTensor::Mxfp4 { blocks, scales } => blocks.len() + scales.len(),
            ExpertTensor::OutIn(d) | ExpertTensor::InOut(d) => d.byte_len(),
        };
        (w + e.bias.len() * 4) as u64
    };
    let unembed = match t.unembedding_nonzero_ids {
        Some(ids) => {
            (ids.len() * c.hidden_size * t.unembedding.byte_len() / t.unembedding.len().max(1)
                + ids.len() * 4) as u64
        }
        None => t.unembedding.byte_len() as u64,
    };
    let layers: u64 = t
        .layers
        .iter()
        .map(|l| {
            lin(&l.q)
                + lin(&l.k)
                + lin(&l.v)
                + lin(&l.out)
                + lin(&l.router)
                + exp(&l.mlp1)
                + exp(&l.mlp2)
                + ((l.attn_norm.len() + l.mlp_norm.len() + l.sinks.len()) * 4) as u64
        })
        .sum();
    t.embedding.byte_len() as u64 + unembed + t.norm.len() as u64 * 4 + layers
}

/// Uploads with a running byte count for the progress callback and the out-of-memory message.
struct Uploader<'a> {
    ctx: &'a GpuContext,
    done: u64,
    total: u64,
    progress: &'a mut dyn FnMut(u64, u64),
}

impl Uploader<'_> {
    fn put(&mut self, label: &str, data: &[u8]) -> Result<wgpu::Buffer, GpuError> {
        let (done, total) = (&mut self.done, self.total);
        let progress = &mut *self.progress;
        let r = self.ctx.upload(label, data, &mut |n| {
            *done += n;
            progress(*done, total);
        });
        match r {
            Err(GpuError::OutOfMemory { adapter, what, .. }) => Err(GpuError::OutOfMemory {
                adapter,
                needed: self.total,
                allocated: self.done,
                what,
            }),
            other => other,
        }
    }

    fn vector(&mut self, label: &str, v: &[f32]) -> Result<wgpu::Buffer, GpuError> {
        self.put(label, f32_bytes(v))
    }

    fn linear(&mut self, label: &str, l: &LinearTensors<'_>) -> Result<DeviceLinear, GpuError> {
        Ok(DeviceLinear {
            w: self.put(label, l.weight.bytes())?,
            format: format_of(&l.weight),
            bias: match l.bias {
                Some(b) => Some(self.vector(&format!("{label} bias"), b)?),
                None => None,
            },
            d_in: l.d_in,
            d_out: l.d_out,
        })
    }

    /// q, k, v stacked into one [q_dim + 2·kv_dim, hidden] product.
    fn qkv(&mut self, label: &str, l: &LayerTensors<'_>) -> Result<DeviceLinear, GpuError> {
        let parts = [&l.q, &l.k, &l.v];
        let format = format_of(&l.q.weight);
        if parts.iter().any(|p| format_of(&p.weight) != format) {
            return Err(GpuError::Unsupported(format!(
                "{label}: q, k and v are stored in different dtypes"
            )));
        }
        let mut w = Vec::with_capacity(parts.iter().map(|p| p.weight.byte_len()).sum());
        for p in parts {
            w.extend_from_slice(p.weight.bytes());
        }
        let any_bias = parts.iter().any(|p| p.bias.is_some());
        let mut bias = Vec::new();
        for p in parts {
            match p.bias {
                Some(b) => bias.extend_from_slice(b),
                None => bias.resize(bias.len() + p.d_out, 0.0),
            }
        }
        Ok(DeviceLinear {
            w: self.put(label, &w)?,
            format,
            bias: if any_bias {
                Some(self.vector(&format!("{label} bias"), &bias)?)
            } else {
                None
            },
            d_in: l.q.d_in,
            d_out: l.q.d_out + l.k.d_out + l.v.d_out,
        })
    }

    fn experts(
        &mut self,
        label: &str,
        e: &ExpertTensors<'_>,
        n_experts: usize,
    ) -> Result<DeviceExperts, GpuError> {
        let (w, scales) = match e.weight {
            ExpertTensor::Mxfp4 { blocks, scales } => (
                self.put(label, blocks)?,
                self.put(&format!("{label} scales"), scales)?,
            ),
            ExpertTensor::OutIn(d) => (
                self.put(label, d.bytes())?,
                self.put("placeholder", &[0; 4])?,
            ),
            ExpertTensor::InOut(d) => {
                // [E, d_in, d_out] -> [E, d_out, d_in], element by element in the stored dtype.
                let size = d.byte_len() / d.len().max(1);
                let src = d.bytes();
                let mut t = vec![0u8; src.len()];
                let (di, dout) = (e.d_in, e.d_out);
                for x in 0..n_experts {
                    for i in 0..di {
                        for o in 0..dout {
                            let from = ((x * di + i) * dout + o) * size;
                            let to = ((x * dout + o) * di + i) * size;
                            t[to..to + size].copy_from_slice(&src[from..from + size]);
                        }
                    }
                }
                (self.put(label, &t)?, self.put("placeholder", &[0; 4])?)
            }
        };
        Ok(DeviceExperts {
            w,
            scales,
            bias: self.vector(&format!("{label} bias"), &to_f32(&e.bias))?,
        })
    }
}

/// The tensors outside the layers.
pub struct Globals<'a> {
    pub embedding: DenseTensor<'a>,
    pub unembedding: DenseTensor<'a>,
    /// The unembedding's nonzero rows, when most are zero (see `ModelTensors`).
    pub unembedding_nonzero_ids: Option<&'a [u32]>,
    pub norm: &'a [f32],
}

/// Where weights come from: a loaded checkpoint or a generator. Handed out a piece at a time,
/// so a generator never holds more than one layer on the host.
pub trait WeightSource {
    fn config(&self) -> &Config;
    /// Bytes the device copy takes (for the fit check and the progress bar).
    fn device_bytes(&self) -> u64;
    fn globals(
        &self,
        f: &mut dyn FnMut(Globals<'_>) -> Result<(), GpuError>,
    ) -> Result<(), GpuError>;
    fn layer(
        &self,
        i: usize,
        f: &mut dyn FnMut(&LayerTensors<'_>) -> Result<(), GpuError>,
    ) -> Result<(), GpuError>;
}

/// A loaded model's tensors as a [`WeightSource`].
pub struct ModelSource<'a> {
    pub config: &'a Config,
    pub tensors: ModelTensors<'a>,
}

impl WeightSource for ModelSource<'_> {
    fn config(&self) -> &Config {
        self.config
    }
    fn device_bytes(&self) -> u64 {
        device_bytes(&self.tensors, self.config)
    }
    fn globals(
        &self,
        f: &mut dyn FnMut(Globals<'_>) -> Result<(), GpuError>,
    ) -> Result<(), GpuError> {
        let t = &self.tensors;
        f(Globals {
            embedding: t.embedding,
            unembedding: t.unembedding,
            unembedding_nonzero_ids: t.unembedding_nonzero_ids,
            norm: t.norm,
        })
    }
    fn layer(
        &self,
        i: usize,
        f: &mut dyn FnMut(&LayerTensors<'_>) -> Result<(), GpuError>,
    ) -> Result<(), GpuError> {
        f(&self.tensors.layers[i])
    }
}

impl WeightSource for gptoss_model::synth::InMemorySynth {
    fn config(&self) -> &Config {
        gptoss_model::synth::InMemorySynth::config(self)
    }
    fn device_bytes(&self) -> u64 {
        // Biases and norms go up as f32 (twice their bf16 size); the rest as stored.
        self.total_bytes()
    }
    fn globals(
        &self,
        f: &mut dyn FnMut(Globals<'_>) -> Result<(), GpuError>,
    ) -> Result<(), GpuError> {
        self.with_globals(|embedding, unembedding, norm| {
            f(Globals {
                embedding,
                unembedding,
                unembedding_nonzero_ids: None,
                norm,
            })
        })
    }
    fn layer(
        &self,
        i: usize,
        f: &mut dyn FnMut(&LayerTensors<'_>) -> Result<(), GpuError>,
    ) -> Result<(), GpuError> {
        self.with_layer(i, |l| f(l))
    }
}

fn layer_expert_format(l: &LayerTensors<'_>) -> Result<ExpertFormat, GpuError> {
    let of = |e: &ExpertTensors<'_>| match e.weight {
        ExpertTensor::Mxfp4 { .. } => ExpertFormat::Mxfp4,
        ExpertTensor::OutIn(d) | ExpertTensor::InOut(d) => ExpertFormat::Dense(format_of(&d)),
    };
    if of(&l.mlp1) != of(&l.mlp2) {
        return Err(GpuError::Unsupported(
            "mlp1 and mlp2 experts are stored in different formats".into(),
        ));
    }
    Ok(of(&l.mlp1))
}

impl DeviceWeights {
    /// Uploads every tensor of `src`, a piece at a time; `progress(done, total)` in bytes.
    pub(crate) fn upload(
        ctx: &GpuContext,
        src: &dyn WeightSource,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<DeviceWeights, GpuError> {
        let c = src.config().clone();
        let total = src.device_bytes();
        let mut up = Uploader {
            ctx,
            done: 0,
            total,
            progress,
        };
        let h = c.hidden_size;
        let mut globals = None;
        src.globals(&mut |t| {
            let embedding = up.put("embedding", t.embedding.bytes())?;
            let (unembedding, unembed_ids) = match t.unembedding_nonzero_ids {
                Some(ids) => {
                    let size = t.unembedding.byte_len() / t.unembedding.len().max(1);
                    let src = t.unembedding.bytes();
                    let mut rows = Vec::with_capacity(ids.len() * h * size);
                    for &id in ids {
                        let at = id as usize * h * size;
                        rows.extend_from_slice(&src[at..at + h * size]);
                    }
                    let lin = DeviceLinear {
                        w: up.put("unembedding (nonzero rows)", &rows)?,
                        format: format_of(&t.unembedding),
                        bias: None,
                        d_in: h,
                        d_out: ids.len(),
                    };
                    (
                        lin,
                        Some(up.put("unembedding ids", bytemuck::cast_slice(ids))?),
                    )
                }
                None => (
                    DeviceLinear {
                        w: up.put("unembedding", t.unembedding.bytes())?,
                        format: format_of(&t.unembedding),
                        bias: None,
                        d_in: h,
                        d_out: c.vocab_size,
                    },
                    None,
                ),
            };
            let norm = up.vector("norm", t.norm)?;
            globals = Some((
                embedding,
                format_of(&t.embedding),
                unembedding,
                unembed_ids,
                norm,
            ));
            Ok(())
        })?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        let mut formats = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            src.layer(i, &mut |l| {
                let name = |s: &str| format!("layer {i} {s}");
                formats.push(layer_expert_format(l)?);
                layers.push(DeviceLayer {
                    attn_norm: up.vector(&name("attention norm"), l.attn_norm)?,
                    qkv: up.qkv(&name("qkv"), l)?,
                    out: up.linear(&name("attention out"), &l.out)?,
                    sinks: up.vector(&name("sinks"), l.sinks)?,
                    mlp_norm: up.vector(&name("mlp norm"), l.mlp_norm)?,
                    router: up.linear(&name("router"), &l.router)?,
                    mlp1: up.experts(&name("mlp1"), &l.mlp1, c.num_experts)?,
                    mlp2: up.experts(&name("mlp2"), &l.mlp2, c.num_experts)?,
                });
                Ok(())
            })?;
        }
        let expert_format = *formats
            .first()
            .ok_or_else(|| GpuError::Unsupported("a model without layers".into()))?;
        if formats.iter().any(|&f| f != expert_format) {
            return Err(GpuError::Unsupported(
                "the layers' experts are stored in different formats".into(),
            ));
        }
        let Some((embedding, embed_format, unembedding, unembed_ids, norm)) = globals else {
            return Err(GpuError::Unsupported(
                "the weights have no embedding".into(),
            ));
        };
        ctx.wait()?;
        Ok(DeviceWeights {
            embedding,
            embed_format,
            unembedding,
            unembed_ids,
            norm,
            layers,
            expert_format,
            bytes: up.done,
        })
    }
}
