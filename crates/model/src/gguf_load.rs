//! A gpt-oss GGUF file (llama.cpp's `gpt-oss` architecture, as `convert_hf_to_gguf.py` writes
//! it) bound onto the model's weight structures: the config from the metadata, the tensors by
//! llama.cpp's names, each checked for shape and type.
//!
//! What stays where it lies in the memory map: BF16/F32 matrices and Q8_0 embeddings. What is
//! converted once at load:
//! - MXFP4 experts. ggml's block puts the E8M0 scale before its 16 bytes and orders the nibbles
//!   differently (byte j: element j low, element j + 16 high; ours and the checkpoints': 2j low,
//!   2j + 1 high), and the converter splits `gate_up` into `ffn_gate_exps` and `ffn_up_exps`
//!   (our kernels read them as interleaved rows gate₀, up₀, gate₁, ...). Each expert tensor is
//!   repacked once into an owned buffer in our layout (same 4.25 bits per weight, never
//!   dequantized) and its mapped pages are released, so resident memory holds one copy.
//! - Q8_0 attention projections and unembedding: converted into the 8-bit weight path's
//!   `Q8Weights` (same int8 codes, the f16 scale widened to f32: lossless), so a Q8_0 GGUF runs
//!   as `--weights-q8` does.
//! - F16 tensors and small Q8_0 ones (the router): widened to owned f32.
//!
//! The tokenizer metadata is kept (`GgufTokenizer`) so that the caller, who owns the tokenizer,
//! can check it (`GgufTokenizer::check`).

use std::collections::HashMap;

use rayon::prelude::*;

use crate::checkpoint::{Blob, Store};
use crate::config::{Config, DEFAULT_SWIGLU_ALPHA};
use crate::error::LoadError;
use crate::gguf::{GgmlType, GgufFile, MetaValue, TensorInfo};
use crate::weights::{
    BytesRef, DenseDtype, DenseRef, ExpertMatrix, ExpertWeights, Layer, Layout, Linear, Weights,
};

/// The architecture name llama.cpp gives gpt-oss (`general.architecture`).
pub const ARCH: &str = "gpt-oss";

/// The tokenizer a GGUF file carries (`tokenizer.ggml.*`).
#[derive(Clone, Debug, Default)]
pub struct GgufTokenizer {
    /// `tokenizer.ggml.model` (`gpt2` for byte-level BPE).
    pub model: String,
    /// `tokenizer.ggml.pre` (`gpt-4o` for o200k), if present.
    pub pre: Option<String>,
    /// Token texts as stored: byte-level BPE strings (GPT-2's byte-to-unicode alphabet) for
    /// normal tokens, the literal text for control tokens.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type` (1 normal, 2 unknown, 3 control, 4 user defined, 5 unused,
    /// 6 byte); empty when absent.
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.eos_token_id` and friends that are present: (key, id).
    pub special_ids: Vec<(String, u32)>,
}

/// The tokenizer a [`GgufTokenizer`] is compared with: token bytes by id, and the names of the
/// special (control) tokens.
pub trait ReferenceVocab {
    /// The bytes of ordinary token `id`, None when `id` is not an ordinary token.
    fn token_bytes(&self, id: u32) -> Option<Vec<u8>>;
    /// The text of special token `id` (`<|start|>`), None when `id` is not special.
    fn special_name(&self, id: u32) -> Option<String>;
}

impl GgufTokenizer {
    /// Checks that every token this file defines means the same as in `vocab`: ordinary tokens
    /// the same bytes, control tokens the same special token, every special id it names (eos,
    /// bos, padding) a special token of `vocab`. Ids the converter padded (`[PADn]`, type
    /// unused) are skipped, so a small test model whose vocabulary is a prefix of `vocab`
    /// passes; any other tokenizer fails with the first id that differs.
    pub fn check(&self, vocab: &dyn ReferenceVocab) -> Result<(), LoadError> {
        let bad = |problem: String| LoadError::TokenizerMismatch { problem };
        if self.model != "gpt2" {
            return Err(bad(format!(
                "tokenizer.ggml.model is \"{}\", not the byte-level BPE (\"gpt2\") of o200k_harmony",
                self.model
            )));
        }
        if !self.token_types.is_empty() && self.token_types.len() != self.tokens.len() {
            return Err(bad(format!(
                "{} token types for {} tokens",
                self.token_types.len(),
                self.tokens.len()
            )));
        }
        let decode = byte_decoder();
        for (i, text) in self.tokens.iter().enumerate() {
            let id = i as u32;
            let ty = self.token_types.get(i).copied().unwrap_or(1);
            match ty {
                5 => continue,
                3 => {
                    let expected = vocab.special_name(id);
                    if expected.as_deref() != Some(text.as_str()) {
                        return Err(bad(format!(
                            "control token {id} is {text:?}, o200k_harmony has {}",
                            describe(expected, vocab.token_bytes(id))
                        )));
                    }
                }
                _ => {
                    let bytes: Option<Vec<u8>> =
                        text.chars().map(|c| decode.get(&c).copied()).collect();
                    let expected = vocab.token_bytes(id);
                    if bytes.is_none() || bytes != expected {
                        return Err(bad(format!(
                            "token {id} is {text:?}, o200k_harmony has {}",
                            describe(vocab.special_name(id), expected)
                        )));
                    }
                }
            }
        }
        for (key, id) in &self.special_ids {
            if (*id as usize) < self.tokens.len() && vocab.special_name(*id).is_none() {
                return Err(bad(format!(
                    "{key} = {id} is not a special token of o200k_harmony"
                )));
            }
        }
        Ok(())
    }
}

fn describe(special: Option<String>, bytes: Option<Vec<u8>>) -> String {
    match (special, bytes) {
        (Some(s), _) => format!("{s:?}"),
        (None, Some(b)) => format!("{:?}", String::from_utf8_lossy(&b)),
        (None, None) => "no such token".into(),
    }
}

/// GPT-2's byte-level alphabet reversed: the character standing for each byte.
fn byte_decoder() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = HashMap::with_capacity(256);
    let mut extra = 0u32;
    for b in 0u32..256 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        if let Some(ch) = char::from_u32(c) {
            map.insert(ch, b as u8);
        }
    }
    map
}

fn meta_err(key: &str, problem: impl Into<String>) -> LoadError {
    LoadError::BadConfig {
        field: key.to_string(),
        problem: problem.into(),
    }
}

struct Meta<'a>(&'a GgufFile);

impl Meta<'_> {
    fn key(k: &str) -> String {
        format!("{ARCH}.{k}")
    }

    fn get(&self, k: &str) -> Option<&MetaValue> {
        self.0.meta(&Self::key(k))
    }

    fn usize(&self, k: &str) -> Result<usize, LoadError> {
        match self.get(k) {
            None => Err(meta_err(&Self::key(k), "missing from the GGUF metadata")),
            Some(v) => v
                .as_u64()
                .and_then(|u| usize::try_from(u).ok())
                .ok_or_else(|| {
                    meta_err(&Self::key(k), format!("expected an integer, found {v:?}"))
                }),
        }
    }

    fn opt_usize(&self, k: &str) -> Result<Option<usize>, LoadError> {
        self.get(k).map(|_| self.usize(k)).transpose()
    }

    fn opt_f64(&self, k: &str) -> Result<Option<f64>, LoadError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(f) if f.is_finite() => Ok(Some(f)),
                _ => Err(meta_err(
                    &Self::key(k),
                    format!("expected a number, found {v:?}"),
                )),
            },
        }
    }
}

/// The model's hyperparameters from the metadata (`vocab_size` from the embedding's shape).
pub(crate) fn config(file: &GgufFile) -> Result<Config, LoadError> {
    let arch = file
        .meta("general.architecture")
        .and_then(MetaValue::as_str)
        .unwrap_or("<none>");
    if arch != ARCH {
        return Err(meta_err(
            "general.architecture",
            format!("\"{arch}\" is not gpt-oss (\"{ARCH}\")"),
        ));
    }
    let m = Meta(file);
    let hidden_size = m.usize("embedding_length")?;
    let num_attention_heads = m.usize("attention.head_count")?;
    let head_dim = match m.opt_usize("attention.key_length")? {
        Some(d) => d,
        None => hidden_size / num_attention_heads.max(1),
    };
    let vocab_size = match file.tensor("token_embd.weight") {
        Some(t) if t.shape.len() == 2 => t.shape[0],
        Some(t) => {
            return Err(LoadError::WrongShape {
                name: t.name.clone(),
                expected: vec![0, hidden_size],
                found: t.shape.clone(),
            })
        }
        None => {
            return Err(LoadError::MissingTensor {
                name: "token_embd.weight".into(),
            })
        }
    };
    let intermediate_size = match m.opt_usize("expert_feed_forward_length")? {
        Some(n) => n,
        None => m.usize("feed_forward_length")?,
    };
    // YaRN: llama.cpp's rope.scaling.* keys; without them, plain RoPE.
    let yarn = match m.get("rope.scaling.type").and_then(MetaValue::as_str) {
        None | Some("none") => false,
        Some("yarn") => true,
        Some(other) => {
            return Err(meta_err(
                &Meta::key("rope.scaling.type"),
                format!("\"{other}\" is not supported (yarn or none)"),
            ))
        }
    };
    let layers = m.usize("block_count")?;
    let initial_context_length = match m.opt_usize("rope.scaling.original_context_length")? {
        Some(n) if yarn => n,
        _ => m.opt_usize("context_length")?.unwrap_or(4096),
    };
    // The swiglu clamp is not part of llama.cpp's gpt-oss metadata (it hard-codes 7.0, the
    // value of every released gpt-oss); the generic per-layer key is honoured when present.
    let swiglu_limit = match m.get("swiglu_clamp_exp") {
        None => 7.0,
        Some(v) => {
            let first = v.as_array().and_then(|a| a.first()).unwrap_or(v);
            let limit = first.as_f64().filter(|f| f.is_finite() && *f > 0.0);
            let all_same = v
                .as_array()
                .is_none_or(|a| a.iter().all(|x| x.as_f64() == limit));
            match limit {
                Some(l) if all_same => l as f32,
                _ => {
                    return Err(meta_err(
                        &Meta::key("swiglu_clamp_exp"),
                        format!("expected one positive limit for every layer, found {v:?}"),
                    ))
                }
            }
        }
    };
    // Which layers slide: llama.cpp's optional per-layer pattern, else every even layer (its
    // default for gpt-oss, and the reference's).
    let layer_types = match m
        .get("attention.sliding_window_pattern")
        .map(|v| v.as_array())
    {
        Some(Some(a)) => a
            .iter()
            .map(|v| match v {
                MetaValue::Bool(true) => Ok("sliding_attention".to_string()),
                MetaValue::Bool(false) => Ok("full_attention".to_string()),
                _ => Err(meta_err(
                    &Meta::key("attention.sliding_window_pattern"),
                    "expected booleans",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => (0..layers)
            .map(|l| {
                if l % 2 == 0 {
                    "sliding_attention"
                } else {
                    "full_attention"
                }
                .to_string()
            })
            .collect(),
    };
    let c = Config {
        num_hidden_layers: layers,
        num_experts: m.usize("expert_count")?,
        experts_per_token: m.usize("expert_used_count")?,
        vocab_size,
        hidden_size,
        intermediate_size,
        swiglu_limit,
        head_dim,
        num_attention_heads,
        num_key_value_heads: m
            .opt_usize("attention.head_count_kv")?
            .unwrap_or(num_attention_heads),
        sliding_window: m.opt_usize("attention.sliding_window")?.unwrap_or(128),
        initial_context_length,
        rope_theta: m.opt_f64("rope.freq_base")?.unwrap_or(150000.0),
        rope_scaling_factor: if yarn {
            m.opt_f64("rope.scaling.factor")?.unwrap_or(1.0)
        } else {
            1.0
        },
        rope_ntk_alpha: m.opt_f64("rope.scaling.yarn_beta_slow")?.unwrap_or(1.0),
        rope_ntk_beta: m.opt_f64("rope.scaling.yarn_beta_fast")?.unwrap_or(32.0),
        rms_norm_eps: m
            .opt_f64("attention.layer_norm_rms_epsilon")?
            .unwrap_or(1e-5) as f32,
        swiglu_alpha: DEFAULT_SWIGLU_ALPHA,
        // gpt-oss was trained without rounding the YaRN ramp bounds (the reference and the
        // Hugging Face config say `truncate: false`); llama.cpp's metadata has no such key.
        rope_truncate: false,
        layer_types,
    };
    c.validate()?;
    Ok(c)
}

/// The tokenizer metadata, if the file has any.
pub(crate) fn tokenizer(file: &GgufFile) -> Option<GgufTokenizer> {
    let model = file.meta("tokenizer.ggml.model")?.as_str()?.to_string();
    let strings = |k: &str| -> Vec<String> {
        file.meta(k)
            .and_then(MetaValue::as_array)
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let token_types = file
        .meta("tokenizer.ggml.token_type")
        .and_then(MetaValue::as_array)
        .map(|a| {
            a.iter()
                .map(|v| v.as_f64().map_or(-1, |f| f as i32))
                .collect()
        })
        .unwrap_or_default();
    let special_ids = [
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.eot_token_id",
    ]
    .iter()
    .filter_map(|k| {
        let id = file.meta(k)?.as_u64()?;
        Some((k.to_string(), u32::try_from(id).ok()?))
    })
    .collect();
    Some(GgufTokenizer {
        model,
        pre: file
            .meta("tokenizer.ggml.pre")
            .and_then(MetaValue::as_str)
            .map(str::to_string),
        tokens: strings("tokenizer.ggml.tokens"),
        token_types,
        special_ids,
    })
}

/// Binds the tensors. `store` holds the file's map as blob 0; repacked and widened tensors are
/// added as owned blobs.
pub(crate) fn bind(store: &mut Store, file: &GgufFile, c: &Config) -> Result<Weights, LoadError> {
    let (h, v, e) = (c.hidden_size, c.vocab_size, c.num_experts);
    let (qd, kvd, inter) = (c.q_dim(), c.kv_dim(), c.intermediate_size);
    let n_layers_found = (0..)
        .take_while(|n| {
            let p = format!("blk.{n}.");
            file.tensors.iter().any(|t| t.name.starts_with(&p))
        })
        .count();
    if n_layers_found > c.num_hidden_layers {
        return Err(meta_err(
            &Meta::key("block_count"),
            format!(
                "says {} but the file has tensors for {n_layers_found} layers",
                c.num_hidden_layers
            ),
        ));
    }
    let mut b = GgufBinder { store, file };
    let embedding = b.dense("token_embd.weight", &[v, h], true)?;
    // Tied embeddings: llama.cpp falls back to token_embd when `output` is absent.
    let unembedding = if file.tensor("output.weight").is_some() {
        b.dense("output.weight", &[v, h], true)?
    } else {
        embedding
    };
    let norm = b.small("output_norm.weight", &[h])?;
    let mut layers = Vec::with_capacity(c.num_hidden_layers);
    for n in 0..c.num_hidden_layers {
        let p = format!("blk.{n}.");
        let (q, k, vv) = if file.tensor(&format!("{p}attn_qkv.weight")).is_some() {
            let w = b.dense(&format!("{p}attn_qkv.weight"), &[qd + 2 * kvd, h], true)?;
            let bias = b.small(&format!("{p}attn_qkv.bias"), &[qd + 2 * kvd])?;
            let split = |r0: usize, rows: usize| Linear {
                w: w.slice(r0 * h, rows * h),
                b: Some(bias[r0..r0 + rows].to_vec()),
                d_in: h,
                d_out: rows,
                q8: None,
            };
            (split(0, qd), split(qd, kvd), split(qd + kvd, kvd))
        } else {
            (
                b.linear(&format!("{p}attn_q"), h, qd, true)?,
                b.linear(&format!("{p}attn_k"), h, kvd, true)?,
                b.linear(&format!("{p}attn_v"), h, kvd, true)?,
            )
        };
        let mlp1 = b.gate_up(&p, e, h, inter)?;
        let mlp2 = b.down(&p, e, h, inter)?;
        layers.push(Layer {
            attn_norm: b.small(&format!("{p}attn_norm.weight"), &[h])?,
            q,
            k,
            v: vv,
            out: b.linear(&format!("{p}attn_output"), qd, h, true)?,
            sinks: b.small(&format!("{p}attn_sinks.weight"), &[c.num_attention_heads])?,
            mlp_norm: b.small(&format!("{p}post_attention_norm.weight"), &[h])?,
            router: b.linear(&format!("{p}ffn_gate_inp"), h, e, false)?,
            mlp1,
            mlp2,
        });
    }
    Ok(Weights {
        layout: Layout::Gguf,
        embedding,
        unembedding,
        norm,
        layers,
    })
}

struct GgufBinder<'s> {
    store: &'s mut Store,
    file: &'s GgufFile,
}

/// An owned, 8-byte-aligned buffer of `len` zero bytes.
fn zeroed(len: usize) -> Vec<u64> {
    vec![0u64; len.div_ceil(8)]
}

impl GgufBinder<'_> {
    fn info(&self, name: &str, shape: &[usize]) -> Result<TensorInfo, LoadError> {
        let t = self
            .file
            .tensor(name)
            .ok_or_else(|| LoadError::MissingTensor {
                name: name.to_string(),
            })?;
        if t.shape != shape {
            return Err(LoadError::WrongShape {
                name: name.to_string(),
                expected: shape.to_vec(),
                found: t.shape.clone(),
            });
        }
        if t.ty.block().is_none() {
            return Err(LoadError::UnsupportedTensorType {
                name: name.to_string(),
                ty: t.ty.name(),
            });
        }
        Ok(t.clone())
    }

    fn wrong_type(name: &str, expected: &str, t: &TensorInfo) -> LoadError {
        LoadError::WrongDtype {
            name: name.to_string(),
            expected: expected.to_string(),
            found: t.ty.name(),
        }
    }

    fn push_owned(&mut self, name: &str, words: Vec<u64>, len: usize) -> usize {
        let idx = self.store.blobs.len();
        self.store.blobs.push(Blob::Owned { words, len });
        self.store.blob_names.push(format!("{name} (converted)"));
        idx
    }

    /// A dense tensor: F32/BF16 in place, Q8_0 in place when `allow_q8` (the consumer reads
    /// Q8_0), else widened to owned f32 (F16, Q8_0).
    fn dense(
        &mut self,
        name: &str,
        shape: &[usize],
        allow_q8: bool,
    ) -> Result<DenseRef, LoadError> {
        let t = self.info(name, shape)?;
        let n_elems: usize = shape.iter().product();
        let in_place = |dtype| DenseRef {
            blob: 0,
            start: t.start,
            n_elems,
            dtype,
        };
        match t.ty {
            GgmlType::F32 | GgmlType::Bf16 | GgmlType::Q8_0 => {
                let dtype = match t.ty {
                    GgmlType::F32 => DenseDtype::F32,
                    GgmlType::Bf16 => DenseDtype::Bf16,
                    _ => DenseDtype::Q8_0,
                };
                let align = if dtype == DenseDtype::F32 { 4 } else { 2 };
                let r = in_place(dtype);
                let misaligned = !(self.store.bytes(0, t.start, t.start).as_ptr() as usize)
                    .is_multiple_of(align);
                if (dtype != DenseDtype::Q8_0 || allow_q8) && !misaligned {
                    return Ok(r);
                }
                self.widen(name, &r, n_elems)
            }
            GgmlType::F16 => {
                let bytes = self.store.bytes(0, t.start, t.start + t.len);
                let mut words = zeroed(n_elems * 4);
                let out: &mut [f32] = &mut bytemuck::cast_slice_mut(&mut words)[..n_elems];
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
                }
                let blob = self.push_owned(name, words, n_elems * 4);
                Ok(DenseRef {
                    blob,
                    start: 0,
                    n_elems,
                    dtype: DenseDtype::F32,
                })
            }
            _ => Err(Self::wrong_type(name, "F32, BF16, F16 or Q8_0", &t)),
        }
    }

    /// `r` (any dense dtype) copied into an owned f32 buffer.
    fn widen(&mut self, name: &str, r: &DenseRef, n_elems: usize) -> Result<DenseRef, LoadError> {
        let mut words = zeroed(n_elems * 4);
        r.read_f32(
            self.store,
            0,
            &mut bytemuck::cast_slice_mut(&mut words)[..n_elems],
        );
        let blob = self.push_owned(name, words, n_elems * 4);
        Ok(DenseRef {
            blob,
            start: 0,
            n_elems,
            dtype: DenseDtype::F32,
        })
    }

    /// A small tensor converted to f32 once, checked for NaN/inf.
    fn small(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, LoadError> {
        let t = self.info(name, shape)?;
        if t.ty == GgmlType::Mxfp4 {
            return Err(Self::wrong_type(name, "F32, BF16, F16 or Q8_0", &t));
        }
        let n: usize = shape.iter().product();
        let mut v = vec![0f32; n];
        let bytes = self.store.bytes(0, t.start, t.start + t.len);
        decode_to_f32(t.ty, bytes, &mut v);
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(LoadError::BadValue {
                name: name.to_string(),
                problem: format!("element {i} is {} (not finite)", v[i]),
            });
        }
        Ok(v)
    }

    fn linear(
        &mut self,
        base: &str,
        d_in: usize,
        d_out: usize,
        allow_q8: bool,
    ) -> Result<Linear, LoadError> {
        let w = self.dense(&format!("{base}.weight"), &[d_out, d_in], allow_q8)?;
        let b = Some(self.small(&format!("{base}.bias"), &[d_out])?);
        Ok(Linear {
            w,
            b,
            d_in,
            d_out,
            q8: None,
        })
    }

    /// MXFP4 rows of `name` ([E, rows, d_in] in ggml blocks), checked.
    fn mxfp4(&self, name: &str, shape: &[usize]) -> Result<TensorInfo, LoadError> {
        let t = self.info(name, shape)?;
        if t.ty != GgmlType::Mxfp4 {
            return Err(Self::wrong_type(
                name,
                "MXFP4 (dense GGUF experts are not supported)",
                &t,
            ));
        }
        Ok(t)
    }

    /// Repacks expert rows into our layout: for every expert and output row r, `src(e, r)` gives
    /// the ggml row (d_in / 32 blocks of 17 bytes) to take. Returns (blocks, scales) refs.
    fn repack(
        &mut self,
        name: &str,
        n_experts: usize,
        rows: usize,
        d_in: usize,
        src: impl Fn(usize, usize) -> (usize, usize) + Sync,
    ) -> ExpertWeights {
        let nb = d_in / 32;
        let n_rows = n_experts * rows;
        let mut blocks = zeroed(n_rows * nb * 16);
        let mut scales = zeroed(n_rows * nb);
        {
            let bl: &mut [u8] = bytemuck::cast_slice_mut(&mut blocks);
            let sc: &mut [u8] = bytemuck::cast_slice_mut(&mut scales);
            let store: &Store = self.store;
            // Rows are independent: repack them on every core (a 20b file is ~12 GB of them).
            bl[..n_rows * nb * 16]
                .par_chunks_mut(nb * 16)
                .zip(sc[..n_rows * nb].par_chunks_mut(nb))
                .enumerate()
                .for_each(|(row, (out_row, scale_row))| {
                    let (blob_start, len) = src(row / rows, row % rows);
                    let from = store.bytes(0, blob_start, blob_start + len);
                    for (k, blk) in from.chunks_exact(17).enumerate() {
                        scale_row[k] = blk[0];
                        repack_block(&blk[1..], &mut out_row[k * 16..(k + 1) * 16]);
                    }
                });
        }
        let b = self.push_owned(&format!("{name} blocks"), blocks, n_rows * nb * 16);
        let s = self.push_owned(&format!("{name} scales"), scales, n_rows * nb);
        ExpertWeights::Mxfp4 {
            blocks: BytesRef { blob: b, start: 0 },
            scales: BytesRef { blob: s, start: 0 },
        }
    }

    /// [E, 2·inter, hidden] with gate and up rows interleaved, from `ffn_gate_exps` and
    /// `ffn_up_exps` (or the fused `ffn_gate_up_exps`: all gate rows, then all up rows).
    fn gate_up(
        &mut self,
        p: &str,
        e: usize,
        h: usize,
        inter: usize,
    ) -> Result<ExpertMatrix, LoadError> {
        if !h.is_multiple_of(32) {
            return Err(meta_err(
                "hidden_size",
                format!("{h} is not a multiple of 32"),
            ));
        }
        let row_bytes = h / 32 * 17;
        let fused = format!("{p}ffn_gate_up_exps.weight");
        let w = if self.file.tensor(&fused).is_some() {
            let t = self.mxfp4(&fused, &[e, 2 * inter, h])?;
            let w = self.repack(&fused, e, 2 * inter, h, |ex, r| {
                let src_row = if r % 2 == 0 { r / 2 } else { inter + r / 2 };
                (t.start + (ex * 2 * inter + src_row) * row_bytes, row_bytes)
            });
            self.release(&t);
            w
        } else {
            let gn = format!("{p}ffn_gate_exps.weight");
            let un = format!("{p}ffn_up_exps.weight");
            let g = self.mxfp4(&gn, &[e, inter, h])?;
            let u = self.mxfp4(&un, &[e, inter, h])?;
            let w = self.repack(&gn, e, 2 * inter, h, |ex, r| {
                let t = if r % 2 == 0 { &g } else { &u };
                (t.start + (ex * inter + r / 2) * row_bytes, row_bytes)
            });
            self.release(&g);
            self.release(&u);
            w
        };
        // Biases: gate and up [E, inter] interleaved into [E, 2·inter] f32.
        let fused_b = format!("{p}ffn_gate_up_exps.bias");
        let mut bias = vec![0f32; e * 2 * inter];
        if self.file.tensor(&fused_b).is_some() {
            let all = self.small(&fused_b, &[e, 2 * inter])?;
            for ex in 0..e {
                for i in 0..inter {
                    bias[ex * 2 * inter + 2 * i] = all[ex * 2 * inter + i];
                    bias[ex * 2 * inter + 2 * i + 1] = all[ex * 2 * inter + inter + i];
                }
            }
        } else {
            let gb = self.small(&format!("{p}ffn_gate_exps.bias"), &[e, inter])?;
            let ub = self.small(&format!("{p}ffn_up_exps.bias"), &[e, inter])?;
            for (k, pair) in bias.chunks_exact_mut(2).enumerate() {
                pair[0] = gb[k];
                pair[1] = ub[k];
            }
        }
        let bias = self.owned_f32(&format!("{p}gate/up bias"), &bias);
        Ok(ExpertMatrix {
            w,
            bias,
            d_in: h,
            d_out: 2 * inter,
        })
    }

    fn down(
        &mut self,
        p: &str,
        e: usize,
        h: usize,
        inter: usize,
    ) -> Result<ExpertMatrix, LoadError> {
        if !inter.is_multiple_of(32) {
            return Err(meta_err(
                "intermediate_size",
                format!("{inter} is not a multiple of 32"),
            ));
        }
        let name = format!("{p}ffn_down_exps.weight");
        let t = self.mxfp4(&name, &[e, h, inter])?;
        let row_bytes = inter / 32 * 17;
        let w = self.repack(&name, e, h, inter, |ex, r| {
            (t.start + (ex * h + r) * row_bytes, row_bytes)
        });
        self.release(&t);
        let bias = self.small(&format!("{p}ffn_down_exps.bias"), &[e, h])?;
        let bias = self.owned_f32(&format!("{p}down bias"), &bias);
        Ok(ExpertMatrix {
            w,
            bias,
            d_in: inter,
            d_out: h,
        })
    }

    fn owned_f32(&mut self, name: &str, v: &[f32]) -> DenseRef {
        let mut words = zeroed(v.len() * 4);
        bytemuck::cast_slice_mut::<u64, f32>(&mut words)[..v.len()].copy_from_slice(v);
        let blob = self.push_owned(name, words, v.len() * 4);
        DenseRef {
            blob,
            start: 0,
            n_elems: v.len(),
            dtype: DenseDtype::F32,
        }
    }

    /// Drops a repacked tensor's mapped pages (they are never read again).
    fn release(&self, t: &TensorInfo) {
        self.store.release_range(0, t.start, t.len);
    }
}

/// One MXFP4 block from ggml's nibble order (byte i: element i low, element i + 16 high) to ours
/// (byte j: element 2j low, element 2j + 1 high).
fn repack_block(ggml: &[u8], ours: &mut [u8]) {
    for (j, o) in ours.iter_mut().enumerate() {
        let code = |i: usize| {
            if i < 16 {
                ggml[i] & 0x0F
            } else {
                ggml[i - 16] >> 4
            }
        };
        *o = code(2 * j) | (code(2 * j + 1) << 4);
    }
}

/// Decodes `out.len()` elements of a dense ggml type from `bytes`.
fn decode_to_f32(ty: GgmlType, bytes: &[u8], out: &mut [f32]) {
    match ty {
        GgmlType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        GgmlType::Bf16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16);
            }
        }
        GgmlType::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        GgmlType::Q8_0 => {
            for (blk, o) in bytes.chunks_exact(34).zip(out.chunks_mut(32)) {
                let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                for (x, &q) in o.iter_mut().zip(&blk[2..]) {
                    *x = d * f32::from(q as i8);
                }
            }
        }
        GgmlType::Mxfp4 | GgmlType::Other(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_decoder_is_gpt2s_alphabet() {
        let d = byte_decoder();
        assert_eq!(d.len(), 256);
        assert_eq!(d[&'a'], b'a');
        assert_eq!(d[&'Ġ'], b' ');
        assert_eq!(d[&'Ċ'], b'\n');
    }
}
