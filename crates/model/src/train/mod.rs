//! LoRA training on the CPU: the trainable low-rank tensors of the attention projections, the
//! loss and its gradients (`grad.rs`: a taping forward pass and the backward pass through the
//! frozen base), AdamW (`adamw.rs`) and saving in PEFT's format (`save.rs`).
//!
//! Everything is f32 and written for clarity first: the gradients are checked against PyTorch
//! autograd (tests/lora_train.rs, golden files from scripts/golden/lora/make_train_golden.py).
//! The base stays frozen and as stored; each expert's matrices are decoded one expert at a time
//! and dropped after use.
//!
//! Not yet: batching several sequences, activation checkpointing, speed.

mod adamw;
mod grad;
mod head;
mod ops;
mod save;

pub use adamw::AdamW;
pub use grad::{loss_and_grads, loss_and_grads_with, Activations};
pub use head::Head;
pub use save::{load_optimizer, save_optimizer, OPTIMIZER_STATE};

use crate::config::Config;
use crate::lora::LoraAdapter;
use crate::synth::SplitMix;

/// The attention projections LoRA can target, in PEFT's module names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proj {
    Q,
    K,
    V,
    O,
}

impl Proj {
    pub const ALL: [Proj; 4] = [Proj::Q, Proj::K, Proj::V, Proj::O];

    /// PEFT's module name (`q_proj`, ...).
    pub fn module(self) -> &'static str {
        match self {
            Proj::Q => "q_proj",
            Proj::K => "k_proj",
            Proj::V => "v_proj",
            Proj::O => "o_proj",
        }
    }

    /// (d_in, d_out) of the projection in a model of `c`.
    fn dims(self, c: &Config) -> (usize, usize) {
        match self {
            Proj::Q => (c.hidden_size, c.q_dim()),
            Proj::K | Proj::V => (c.hidden_size, c.kv_dim()),
            Proj::O => (c.q_dim(), c.hidden_size),
        }
    }
}

/// One low-rank pair: A f32 [r, d_in], B f32 [d_out, r] (PEFT's lora_A / lora_B weights).
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub r: usize,
    pub d_in: usize,
    pub d_out: usize,
}

impl Pair {
    fn zeros(r: usize, d_in: usize, d_out: usize) -> Pair {
        Pair {
            a: vec![0.0; r * d_in],
            b: vec![0.0; d_out * r],
            r,
            d_in,
            d_out,
        }
    }
}

/// The expert parameters LoRA can target through PEFT's `target_parameters`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpertProj {
    /// `mlp.experts.gate_up_proj` (our expert matrix 1, outputs gate/up interleaved)
    GateUp,
    /// `mlp.experts.down_proj` (expert matrix 2)
    Down,
}

impl ExpertProj {
    pub const ALL: [ExpertProj; 2] = [ExpertProj::GateUp, ExpertProj::Down];

    /// (d_in, d_out) of one expert's matrix.
    fn dims(self, c: &Config) -> (usize, usize) {
        match self {
            ExpertProj::GateUp => (c.hidden_size, 2 * c.intermediate_size),
            ExpertProj::Down => (c.intermediate_size, c.hidden_size),
        }
    }
}

/// The per-expert low-rank pairs of one expert parameter, in PEFT's layout: A f32
/// [r·E, d_in] (expert e owns rows e·r .. e·r + r), B f32 [d_out, r·E] (expert e owns the
/// columns k·E + e).
#[derive(Clone, Debug, PartialEq)]
pub struct ExpertPair {
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub r: usize,
    pub experts: usize,
    pub d_in: usize,
    pub d_out: usize,
}

impl ExpertPair {
    /// Expert e's pair as a [`Pair`] (A rows copied, B columns gathered).
    fn of(&self, e: usize) -> Pair {
        let (r, en) = (self.r, self.experts);
        let a = self.a[e * r * self.d_in..(e + 1) * r * self.d_in].to_vec();
        let mut b = vec![0f32; self.d_out * r];
        for o in 0..self.d_out {
            for k in 0..r {
                b[o * r + k] = self.b[o * r * en + k * en + e];
            }
        }
        Pair {
            a,
            b,
            r,
            d_in: self.d_in,
            d_out: self.d_out,
        }
    }

    /// Adds expert e's gradient pair `g` into this (PEFT-layout) gradient.
    fn add(&mut self, e: usize, g: &Pair) {
        let (r, en) = (self.r, self.experts);
        for (d, v) in self.a[e * r * self.d_in..(e + 1) * r * self.d_in]
            .iter_mut()
            .zip(&g.a)
        {
            *d += v;
        }
        for o in 0..self.d_out {
            for k in 0..r {
                self.b[o * r * en + k * en + e] += g.b[o * r + k];
            }
        }
    }
}

/// The low-rank pairs of every layer (None where a projection is not targeted), indexed
/// `layers[layer][proj as usize]` and `experts[layer][ExpertProj as usize]`: the trained
/// parameters, or their gradients.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraSet {
    pub layers: Vec<[Option<Pair>; 4]>,
    pub experts: Vec<[Option<ExpertPair>; 2]>,
}

impl LoraSet {
    /// The same targets with every value zero (a gradient accumulator).
    pub fn zeros_like(&self) -> LoraSet {
        LoraSet {
            layers: self
                .layers
                .iter()
                .map(|l| {
                    l.clone()
                        .map(|p| p.map(|p| Pair::zeros(p.r, p.d_in, p.d_out)))
                })
                .collect(),
            experts: self
                .experts
                .iter()
                .map(|l| {
                    l.clone().map(|p| {
                        p.map(|mut p| {
                            p.a.fill(0.0);
                            p.b.fill(0.0);
                            p
                        })
                    })
                })
                .collect(),
        }
    }

    /// PEFT's module name of a layer's expert parameter: two wrapped parameters of one module
    /// nest, gate_up_proj (listed first in target_parameters) inside, under `base_layer`.
    fn expert_module(&self, layer: usize, which: ExpertProj) -> String {
        let both = self.experts[layer].iter().all(Option::is_some);
        let inner = if both && which == ExpertProj::GateUp {
            ".base_layer"
        } else {
            ""
        };
        format!("base_model.model.model.layers.{layer}.mlp.experts{inner}")
    }

    /// Every tensor with its PEFT name, shape and values, in a fixed order (layer, q/k/v/o, A
    /// then B).
    pub fn named(&self) -> Vec<(String, [usize; 2], &[f32])> {
        let mut out = vec![];
        for (i, l) in self.layers.iter().enumerate() {
            for (p, pair) in Proj::ALL.iter().zip(l) {
                if let Some(pair) = pair {
                    let base =
                        format!("base_model.model.model.layers.{i}.self_attn.{}", p.module());
                    out.push((
                        format!("{base}.lora_A.weight"),
                        [pair.r, pair.d_in],
                        &pair.a[..],
                    ));
                    out.push((
                        format!("{base}.lora_B.weight"),
                        [pair.d_out, pair.r],
                        &pair.b[..],
                    ));
                }
            }
        }
        for (i, l) in self.experts.iter().enumerate() {
            for (w, pair) in ExpertProj::ALL.iter().zip(l) {
                if let Some(pair) = pair {
                    let base = self.expert_module(i, *w);
                    let re = pair.r * pair.experts;
                    out.push((
                        format!("{base}.lora_A.weight"),
                        [re, pair.d_in],
                        &pair.a[..],
                    ));
                    out.push((
                        format!("{base}.lora_B.weight"),
                        [pair.d_out, re],
                        &pair.b[..],
                    ));
                }
            }
        }
        out
    }

    /// self += s · other (the same targets and shapes): accumulates a batch's gradients.
    pub fn add_scaled(&mut self, other: &LoraSet, s: f32) {
        let theirs: Vec<&[f32]> = other.named().into_iter().map(|(_, _, v)| v).collect();
        for (mine, theirs) in self.values_mut().into_iter().zip(theirs) {
            for (a, &b) in mine.iter_mut().zip(theirs) {
                *a += s * b;
            }
        }
    }

    /// Mutable views of every tensor, in the order of [`LoraSet::named`].
    pub fn values_mut(&mut self) -> Vec<&mut [f32]> {
        let mut out = vec![];
        for l in &mut self.layers {
            for pair in l.iter_mut().flatten() {
                out.push(&mut pair.a[..]);
                out.push(&mut pair.b[..]);
            }
        }
        for l in &mut self.experts {
            for pair in l.iter_mut().flatten() {
                out.push(&mut pair.a[..]);
                out.push(&mut pair.b[..]);
            }
        }
        out
    }
}

/// A trainable LoRA adapter on the attention projections.
#[derive(Clone, Debug)]
pub struct TrainLora {
    pub r: usize,
    pub alpha: f64,
    pub rslora: bool,
    pub params: LoraSet,
}

impl TrainLora {
    /// A fresh adapter as PEFT initializes one: A uniform in ±1/√d_in (kaiming_uniform with
    /// a = √5), B zero, so training starts from the base model. `seed` fixes A.
    pub fn new(c: &Config, r: usize, alpha: f64, targets: &[Proj], seed: u64) -> TrainLora {
        let mut rng = SplitMix(seed);
        let layers = (0..c.num_hidden_layers)
            .map(|_| {
                Proj::ALL.map(|p| {
                    if !targets.contains(&p) {
                        return None;
                    }
                    let (d_in, d_out) = p.dims(c);
                    let mut pair = Pair::zeros(r, d_in, d_out);
                    let bound = 1.0 / (d_in as f32).sqrt();
                    for a in &mut pair.a {
                        *a = bound * (2.0 * rng.unit() - 1.0);
                    }
                    Some(pair)
                })
            })
            .collect();
        TrainLora {
            r,
            alpha,
            rslora: false,
            params: LoraSet {
                experts: (0..c.num_hidden_layers).map(|_| [None, None]).collect(),
                layers,
            },
        }
    }

    /// Adds fresh LoRA pairs on both expert parameters (gate_up_proj, down_proj) of each of
    /// `layers`, initialized as PEFT's `ParamWrapper` does (A uniform in ±1/√d_in, B zero).
    /// Layers out of range are an error.
    pub fn add_experts(
        &mut self,
        c: &Config,
        layers: &[usize],
        seed: u64,
    ) -> Result<(), TrainError> {
        let mut rng = SplitMix(seed ^ 0x5EED_E4E4);
        for &l in layers {
            if l >= self.params.experts.len() {
                return Err(TrainError::Shape(format!(
                    "expert layer {l}: the model has {} layers",
                    self.params.experts.len()
                )));
            }
            for (w, slot) in ExpertProj::ALL
                .iter()
                .zip(self.params.experts[l].iter_mut())
            {
                let (d_in, d_out) = w.dims(c);
                let en = c.num_experts;
                let bound = 1.0 / (d_in as f32).sqrt();
                let a = (0..self.r * en * d_in)
                    .map(|_| bound * (2.0 * rng.unit() - 1.0))
                    .collect();
                *slot = Some(ExpertPair {
                    a,
                    b: vec![0.0; d_out * self.r * en],
                    r: self.r,
                    experts: en,
                    d_in,
                    d_out,
                });
            }
        }
        Ok(())
    }

    /// Starts from a loaded PEFT adapter's values.
    pub fn from_adapter(adapter: &LoraAdapter, c: &Config) -> Result<TrainLora, TrainError> {
        let r = adapter.rank();
        let en = c.num_experts;
        let experts = adapter
            .layers
            .iter()
            .map(|l| {
                let srcs = [&l.gate_up, &l.down];
                let mut out: [Option<ExpertPair>; 2] = Default::default();
                for ((w, src), slot) in ExpertProj::ALL.iter().zip(srcs).zip(out.iter_mut()) {
                    if let Some(er) = src {
                        let (a, b_per) = er.parts();
                        let (d_in, d_out) = w.dims(c);
                        // back from [E, d_out, r] to PEFT's [d_out, r·E]
                        let mut b = vec![0f32; d_out * r * en];
                        for e in 0..en {
                            for o in 0..d_out {
                                for k in 0..r {
                                    b[o * r * en + k * en + e] = b_per[(e * d_out + o) * r + k];
                                }
                            }
                        }
                        *slot = Some(ExpertPair {
                            a: a.to_vec(),
                            b,
                            r,
                            experts: en,
                            d_in,
                            d_out,
                        });
                    }
                }
                out
            })
            .collect();
        let layers = adapter
            .layers
            .iter()
            .map(|l| {
                let srcs = [&l.q, &l.k, &l.v, &l.o];
                let mut out: [Option<Pair>; 4] = Default::default();
                for ((p, src), slot) in Proj::ALL.iter().zip(srcs).zip(out.iter_mut()) {
                    if let Some(lr) = src {
                        let (a, b) = lr.parts();
                        let (d_in, d_out) = p.dims(c);
                        *slot = Some(Pair {
                            a: a.to_vec(),
                            b: b.to_vec(),
                            r,
                            d_in,
                            d_out,
                        });
                    }
                }
                out
            })
            .collect();
        Ok(TrainLora {
            r,
            alpha: adapter.alpha(),
            rslora: adapter.rslora(),
            params: LoraSet { layers, experts },
        })
    }

    /// The factor of every update: alpha / r (alpha / √r with rsLoRA), as PEFT.
    pub fn scale(&self) -> f32 {
        let r = self.r as f64;
        (if self.rslora {
            self.alpha / r.sqrt()
        } else {
            self.alpha / r
        }) as f32
    }

    /// Writes the adapter as PEFT does (adapter_config.json + adapter_model.safetensors, f32).
    pub fn save(&self, dir: &std::path::Path, base: &str) -> Result<(), TrainError> {
        save::save(self, dir, base)
    }
}

/// Why a training step cannot run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Input(#[from] crate::error::ForwardError),
    #[error("{targets} targets for {tokens} tokens: give one target (or none) per position")]
    TargetsLength { tokens: usize, targets: usize },
    #[error("target token {token} at position {position} is out of range (vocab_size {vocab})")]
    TargetOutOfRange {
        token: u32,
        position: usize,
        vocab: usize,
    },
    #[error("no position is marked for the loss")]
    NothingToTrain,
    #[error("the adapter's shapes do not fit this model ({0})")]
    Shape(String),
    #[error("writing {path}: {problem}")]
    Save { path: String, problem: String },
    #[error("reading {path}: {problem}")]
    Load { path: String, problem: String },
}
