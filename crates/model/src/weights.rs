//! Binds checkpoint tensors to the model's parts: maps the original (`block.{n}.attn.qkv...`) and
//! Hugging Face (`model.layers.{n}.self_attn.q_proj...`, MXFP4 `_blocks`/`_scales` or dequantized
//! `[E, in, out]` experts) names onto one structure, checking every shape and dtype against the
//! config. Large matrices stay where they are (references into the mapped files); only small
//! vectors (norm scales, sinks, attention and router biases) are converted to f32 once.
//! The fused original `qkv` and the split HF q/k/v become the same three row ranges, so both
//! layouts run exactly the same arithmetic.

use gptoss_backend::bf16;
use safetensors::Dtype;

use crate::checkpoint::{dtype_name, Store};
use crate::config::Config;
use crate::error::LoadError;

/// Which naming/layout a checkpoint uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// OpenAI's `original/` folder: fused qkv, `block.{n}` names, MXFP4 `.blocks`/`.scales`.
    Original,
    /// Hugging Face: split q/k/v, `model.layers.{n}`, MXFP4 `_blocks`/`_scales`.
    HuggingFace,
    /// Hugging Face with dequantized experts stored [E, in, out] (`gate_up_proj`, `down_proj`).
    HuggingFaceDequantized,
    /// One GGUF file in llama.cpp's `gpt-oss` names (`blk.{n}.attn_q`, `ffn_gate_exps`, ...).
    Gguf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DenseDtype {
    F32,
    Bf16,
    /// ggml Q8_0 blocks (f16 scale, 32 int8 codes), only from GGUF files, and only where a
    /// consumer reads them: the embedding (rows decoded on gather) and the matrices of the 8-bit
    /// weight path (converted once into `Q8Weights`, see `q8_weights.rs`).
    Q8_0,
}

/// Bytes of one Q8_0 block (f16 scale + 32 codes) and the elements it holds.
pub(crate) const Q8_0_BLOCK_BYTES: usize = 34;
pub(crate) const Q8_0_BLOCK: usize = 32;

/// A dense matrix or vector stored in a blob, read in place.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DenseRef {
    pub blob: usize,
    pub start: usize,
    pub n_elems: usize,
    pub dtype: DenseDtype,
}

pub(crate) enum DenseView<'a> {
    F32(&'a [f32]),
    Bf16(&'a [bf16]),
    /// ggml Q8_0 blocks: no slice view (read through `DenseRef::read_f32` or the 8-bit path).
    Q8_0,
}

impl DenseRef {
    /// Bytes the tensor (or slice) spans.
    pub fn byte_len(&self) -> usize {
        self.offset_of(self.n_elems)
    }

    /// Byte offset of element `e` (a block boundary for Q8_0).
    fn offset_of(&self, e: usize) -> usize {
        match self.dtype {
            DenseDtype::F32 => e * 4,
            DenseDtype::Bf16 => e * 2,
            DenseDtype::Q8_0 => e / Q8_0_BLOCK * Q8_0_BLOCK_BYTES,
        }
    }

    /// Elements `[e0, e0 + n)` of this tensor (e.g. a row range or one expert; for Q8_0 both
    /// multiples of 32, which every row range is: rows are whole blocks).
    pub fn slice(&self, e0: usize, n: usize) -> DenseRef {
        debug_assert!(e0 + n <= self.n_elems);
        debug_assert!(
            self.dtype != DenseDtype::Q8_0
                || (e0.is_multiple_of(Q8_0_BLOCK) && n.is_multiple_of(Q8_0_BLOCK))
        );
        DenseRef {
            start: self.start + self.offset_of(e0),
            n_elems: n,
            ..*self
        }
    }

    pub fn view<'a>(&self, store: &'a Store) -> DenseView<'a> {
        let bytes = store.bytes(self.blob, self.start, self.start + self.byte_len());
        // Alignment was checked (or fixed by copying) when the tensor was bound, and sub-slices
        // start at element boundaries, so these casts cannot fail.
        match self.dtype {
            DenseDtype::F32 => DenseView::F32(bytemuck::cast_slice(bytes)),
            DenseDtype::Bf16 => DenseView::Bf16(bytemuck::cast_slice(bytes)),
            DenseDtype::Q8_0 => DenseView::Q8_0,
        }
    }

    /// Converts elements `[e0, e0 + out.len())` to f32 (Q8_0: exactly, `d · q` as ggml's
    /// `dequantize_row_q8_0`; an f16 scale times a 7-bit code is exact in f32).
    pub fn read_f32(&self, store: &Store, e0: usize, out: &mut [f32]) {
        if self.dtype == DenseDtype::Q8_0 {
            let b0 = e0 / Q8_0_BLOCK;
            let b1 = (e0 + out.len()).div_ceil(Q8_0_BLOCK);
            let start = self.start + b0 * Q8_0_BLOCK_BYTES;
            let bytes = store.bytes(self.blob, start, start + (b1 - b0) * Q8_0_BLOCK_BYTES);
            for (i, o) in out.iter_mut().enumerate() {
                let idx = e0 + i - b0 * Q8_0_BLOCK;
                let blk = &bytes[idx / Q8_0_BLOCK * Q8_0_BLOCK_BYTES..];
                let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                *o = d * f32::from(blk[2 + idx % Q8_0_BLOCK] as i8);
            }
            return;
        }
        match self.slice(e0, out.len()).view(store) {
            DenseView::F32(v) => out.copy_from_slice(v),
            DenseView::Bf16(v) => {
                for (o, &x) in out.iter_mut().zip(v) {
                    *o = gptoss_backend::bf16_to_f32(x);
                }
            }
            DenseView::Q8_0 => {}
        }
    }
}

/// Raw bytes (MXFP4 blocks or scales).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BytesRef {
    pub blob: usize,
    pub start: usize,
}

impl BytesRef {
    pub fn get<'a>(&self, store: &'a Store, off: usize, len: usize) -> &'a [u8] {
        store.bytes(self.blob, self.start + off, self.start + off + len)
    }
}

/// y = x · Wᵀ + b with W [d_out, d_in].
pub(crate) struct Linear {
    pub w: DenseRef,
    /// f32 [d_out]
    pub b: Option<Vec<f32>>,
    pub d_in: usize,
    pub d_out: usize,
    /// W quantized to 8 bits when `--weights-q8` is on (q8_weights.rs); then `w` is not read.
    pub q8: Option<gptoss_backend::Q8Weights>,
}

/// One expert matrix for every expert.
pub(crate) enum ExpertWeights {
    /// blocks u8 [E, d_out, d_in/32, 16], scales u8 [E, d_out, d_in/32]
    Mxfp4 { blocks: BytesRef, scales: BytesRef },
    /// [E, d_out, d_in]
    OutIn(DenseRef),
    /// [E, d_in, d_out] (dequantized Hugging Face)
    InOut(DenseRef),
}

pub(crate) struct ExpertMatrix {
    pub w: ExpertWeights,
    /// [E, d_out], converted a row at a time when used
    pub bias: DenseRef,
    pub d_in: usize,
    pub d_out: usize,
}

pub(crate) struct Layer {
    /// f32 [hidden]
    pub attn_norm: Vec<f32>,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub out: Linear,
    /// f32 [num_attention_heads]
    pub sinks: Vec<f32>,
    /// f32 [hidden]
    pub mlp_norm: Vec<f32>,
    pub router: Linear,
    /// [E, 2·intermediate, hidden] (gate/linear interleaved rows)
    pub mlp1: ExpertMatrix,
    /// [E, hidden, intermediate]
    pub mlp2: ExpertMatrix,
}

pub(crate) struct Weights {
    pub layout: Layout,
    /// [vocab, hidden]
    pub embedding: DenseRef,
    /// [vocab, hidden]
    pub unembedding: DenseRef,
    /// f32 [hidden]
    pub norm: Vec<f32>,
    pub layers: Vec<Layer>,
}

struct Binder<'s> {
    store: &'s mut Store,
}

impl Binder<'_> {
    fn entry(&self, name: &str) -> Result<(Dtype, Vec<usize>), LoadError> {
        match self.store.tensors.get(name) {
            Some(e) => Ok((e.dtype, e.shape.clone())),
            None => Err(LoadError::MissingTensor {
                name: name.to_string(),
            }),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.store.tensors.contains_key(name)
    }

    fn check_shape(name: &str, found: &[usize], expected: &[usize]) -> Result<(), LoadError> {
        if found != expected {
            return Err(LoadError::WrongShape {
                name: name.to_string(),
                expected: expected.to_vec(),
                found: found.to_vec(),
            });
        }
        Ok(())
    }

    fn dense(&mut self, name: &str, shape: &[usize]) -> Result<DenseRef, LoadError> {
        let (dtype, found) = self.entry(name)?;
        Self::check_shape(name, &found, shape)?;
        let (dt, size) = match dtype {
            Dtype::BF16 => (DenseDtype::Bf16, 2),
            Dtype::F32 => (DenseDtype::F32, 4),
            other => {
                return Err(LoadError::WrongDtype {
                    name: name.to_string(),
                    expected: "BF16 or F32".into(),
                    found: dtype_name(other),
                })
            }
        };
        self.store.ensure_aligned(name, size);
        let e = &self.store.tensors[name];
        Ok(DenseRef {
            blob: e.blob,
            start: e.start,
            n_elems: shape.iter().product(),
            dtype: dt,
        })
    }

    /// A small tensor converted to f32 once, checked for NaN/inf.
    fn small(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, LoadError> {
        let r = self.dense(name, shape)?;
        let mut v = vec![0f32; r.n_elems];
        r.read_f32(self.store, 0, &mut v);
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(LoadError::BadValue {
                name: name.to_string(),
                problem: format!("element {i} is {} (not finite)", v[i]),
            });
        }
        Ok(v)
    }

    fn bytes(
        &mut self,
        name: &str,
        shape: &[usize],
        allowed: &[Dtype],
    ) -> Result<BytesRef, LoadError> {
        let (dtype, found) = self.entry(name)?;
        if !allowed.contains(&dtype) {
            let expected: Vec<String> = allowed.iter().map(|d| dtype_name(*d)).collect();
            return Err(LoadError::WrongDtype {
                name: name.to_string(),
                expected: expected.join(" or "),
                found: dtype_name(dtype),
            });
        }
        Self::check_shape(name, &found, shape)?;
        let e = &self.store.tensors[name];
        Ok(BytesRef {
            blob: e.blob,
            start: e.start,
        })
    }

    fn linear(
        &mut self,
        w: &str,
        b: Option<&str>,
        d_in: usize,
        d_out: usize,
    ) -> Result<Linear, LoadError> {
        let w = self.dense(w, &[d_out, d_in])?;
        let b = match b {
            Some(b) => Some(self.small(b, &[d_out])?),
            None => None,
        };
        Ok(Linear {
            w,
            b,
            d_in,
            d_out,
            q8: None,
        })
    }

    /// An expert matrix: MXFP4 (`{base}{sep}blocks` / `{base}{sep}scales`) if present, else dense
    /// `base` ([E, out, in] or, for `in_out`, [E, in, out]).
    #[allow(clippy::too_many_arguments)]
    fn experts(
        &mut self,
        base: &str,
        sep: &str,
        bias: &str,
        n_experts: usize,
        d_in: usize,
        d_out: usize,
        in_out: bool,
    ) -> Result<(ExpertMatrix, bool), LoadError> {
        let blocks_name = format!("{base}{sep}blocks");
        let (w, quantized) = if self.has(&blocks_name) || !self.has(base) {
            if !d_in.is_multiple_of(32) {
                return Err(LoadError::BadConfig {
                    field: "hidden_size/intermediate_size".into(),
                    problem: format!("{d_in} is not a multiple of the MXFP4 block size 32"),
                });
            }
            let nb = d_in / 32;
            let blocks = self.bytes(&blocks_name, &[n_experts, d_out, nb, 16], &[Dtype::U8])?;
            let scales = self.bytes(
                &format!("{base}{sep}scales"),
                &[n_experts, d_out, nb],
                &[Dtype::U8, Dtype::F8_E8M0],
            )?;
            (ExpertWeights::Mxfp4 { blocks, scales }, true)
        } else if in_out {
            (
                ExpertWeights::InOut(self.dense(base, &[n_experts, d_in, d_out])?),
                false,
            )
        } else {
            (
                ExpertWeights::OutIn(self.dense(base, &[n_experts, d_out, d_in])?),
                false,
            )
        };
        let bias = self.dense(bias, &[n_experts, d_out])?;
        Ok((
            ExpertMatrix {
                w,
                bias,
                d_in,
                d_out,
            },
            quantized,
        ))
    }
}

/// Binds every tensor the forward pass needs, validating shapes and dtypes against `config`.
pub(crate) fn bind(store: &mut Store, c: &Config) -> Result<Weights, LoadError> {
    let layout = if store.tensors.contains_key("embedding.weight") {
        Layout::Original
    } else if store.tensors.contains_key("model.embed_tokens.weight") {
        Layout::HuggingFace
    } else {
        return Err(LoadError::MissingTensor {
            name: "embedding.weight (original layout) or model.embed_tokens.weight (Hugging Face)"
                .into(),
        });
    };
    let (h, v, e) = (c.hidden_size, c.vocab_size, c.num_experts);
    let (qd, kvd, inter) = (c.q_dim(), c.kv_dim(), c.intermediate_size);
    let layer_prefix = |n: usize| match layout {
        Layout::Original => format!("block.{n}."),
        _ => format!("model.layers.{n}."),
    };
    // Tensors of layers beyond the config's count mean the config is wrong.
    let n_layers_found = (0..)
        .take_while(|&n| {
            let p = layer_prefix(n);
            store.tensors.keys().any(|k| k.starts_with(&p))
        })
        .count();
    if n_layers_found > c.num_hidden_layers {
        return Err(LoadError::BadConfig {
            field: "num_hidden_layers".into(),
            problem: format!(
                "config says {} but the checkpoint has tensors for {} layers",
                c.num_hidden_layers, n_layers_found
            ),
        });
    }
    let mut b = Binder { store };
    let (emb, unemb, norm) = match layout {
        Layout::Original => ("embedding.weight", "unembedding.weight", "norm.scale"),
        _ => (
            "model.embed_tokens.weight",
            "lm_head.weight",
            "model.norm.weight",
        ),
    };
    let embedding = b.dense(emb, &[v, h])?;
    let unembedding = b.dense(unemb, &[v, h])?;
    let norm = b.small(norm, &[h])?;
    let mut layers = Vec::with_capacity(c.num_hidden_layers);
    let mut any_dense_experts = false;
    for n in 0..c.num_hidden_layers {
        let p = layer_prefix(n);
        let layer = match layout {
            Layout::Original => {
                let qkv_name = format!("{p}attn.qkv.weight");
                let qkv = b.dense(&qkv_name, &[qd + 2 * kvd, h])?;
                let qkv_b = b.small(&format!("{p}attn.qkv.bias"), &[qd + 2 * kvd])?;
                let split = |r0: usize, rows: usize| Linear {
                    w: qkv.slice(r0 * h, rows * h),
                    b: Some(qkv_b[r0..r0 + rows].to_vec()),
                    d_in: h,
                    d_out: rows,
                    q8: None,
                };
                let (mlp1, q1) = b.experts(
                    &format!("{p}mlp.mlp1_weight"),
                    ".",
                    &format!("{p}mlp.mlp1_bias"),
                    e,
                    h,
                    2 * inter,
                    false,
                )?;
                let (mlp2, q2) = b.experts(
                    &format!("{p}mlp.mlp2_weight"),
                    ".",
                    &format!("{p}mlp.mlp2_bias"),
                    e,
                    inter,
                    h,
                    false,
                )?;
                any_dense_experts |= !q1 || !q2;
                Layer {
                    attn_norm: b.small(&format!("{p}attn.norm.scale"), &[h])?,
                    q: split(0, qd),
                    k: split(qd, kvd),
                    v: split(qd + kvd, kvd),
                    out: b.linear(
                        &format!("{p}attn.out.weight"),
                        Some(&format!("{p}attn.out.bias")),
                        qd,
                        h,
                    )?,
                    sinks: b.small(&format!("{p}attn.sinks"), &[c.num_attention_heads])?,
                    mlp_norm: b.small(&format!("{p}mlp.norm.scale"), &[h])?,
                    router: b.linear(
                        &format!("{p}mlp.gate.weight"),
                        Some(&format!("{p}mlp.gate.bias")),
                        h,
                        e,
                    )?,
                    mlp1,
                    mlp2,
                }
            }
            _ => {
                let proj = |b: &mut Binder, name: &str, d_in: usize, d_out: usize| {
                    b.linear(
                        &format!("{p}self_attn.{name}.weight"),
                        Some(&format!("{p}self_attn.{name}.bias")),
                        d_in,
                        d_out,
                    )
                };
                let (mlp1, q1) = b.experts(
                    &format!("{p}mlp.experts.gate_up_proj"),
                    "_",
                    &format!("{p}mlp.experts.gate_up_proj_bias"),
                    e,
                    h,
                    2 * inter,
                    true,
                )?;
                let (mlp2, q2) = b.experts(
                    &format!("{p}mlp.experts.down_proj"),
                    "_",
                    &format!("{p}mlp.experts.down_proj_bias"),
                    e,
                    inter,
                    h,
                    true,
                )?;
                any_dense_experts |= !q1 || !q2;
                Layer {
                    attn_norm: b.small(&format!("{p}input_layernorm.weight"), &[h])?,
                    q: proj(&mut b, "q_proj", h, qd)?,
                    k: proj(&mut b, "k_proj", h, kvd)?,
                    v: proj(&mut b, "v_proj", h, kvd)?,
                    out: proj(&mut b, "o_proj", qd, h)?,
                    sinks: b.small(&format!("{p}self_attn.sinks"), &[c.num_attention_heads])?,
                    mlp_norm: b.small(&format!("{p}post_attention_layernorm.weight"), &[h])?,
                    router: b.linear(
                        &format!("{p}mlp.router.weight"),
                        Some(&format!("{p}mlp.router.bias")),
                        h,
                        e,
                    )?,
                    mlp1,
                    mlp2,
                }
            }
        };
        layers.push(layer);
    }
    let layout = if layout == Layout::HuggingFace && any_dense_experts {
        Layout::HuggingFaceDequantized
    } else {
        layout
    };
    Ok(Weights {
        layout,
        embedding,
        unembedding,
        norm,
        layers,
    })
}
