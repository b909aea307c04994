//! Writes small random gpt-oss checkpoints with the real tensor names, shapes and dtypes, in the
//! original layout, the Hugging Face MXFP4 layout (optionally sharded with an index) or the
//! dequantized Hugging Face bf16 layout. Used by the tests (and later by `gpt-oss synth`).
//! All layouts of one seed hold the same weights: the HF files split the fused qkv rows, and the
//! dequantized variant expands MXFP4 exactly into bf16 and transposes to [E, in, out].

use std::io::Write;
use std::path::Path;

use gptoss_backend::{bf16, e8m0_to_f32, fp4_e2m1_to_f32};

use crate::config::Config;
use crate::tensors::{DenseTensor, ExpertTensor, ExpertTensors, LayerTensors, LinearTensors};

/// Which files to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynthLayout {
    Original,
    /// `shards` > 1 writes model-0000i-of-0000n.safetensors plus model.safetensors.index.json.
    HuggingFace {
        shards: usize,
    },
    HuggingFaceBf16,
}

/// A tiny config with every structural feature of gpt-oss (GQA, sliding window, YaRN, MoE).
pub fn tiny_config() -> Config {
    Config {
        num_hidden_layers: 3,
        num_experts: 4,
        experts_per_token: 2,
        vocab_size: 97,
        hidden_size: 64,
        intermediate_size: 32,
        swiglu_limit: 7.0,
        head_dim: 16,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        sliding_window: 8,
        initial_context_length: 4096,
        rope_theta: 150000.0,
        rope_scaling_factor: 32.0,
        rope_ntk_alpha: 1.0,
        rope_ntk_beta: 32.0,
        rms_norm_eps: 1e-5,
        swiglu_alpha: gptoss_backend::SWIGLU_ALPHA,
        rope_truncate: false,
        layer_types: vec![],
    }
}

/// One tensor to write: name, safetensors dtype string, shape, little-endian bytes.
pub struct RawTensor {
    pub name: String,
    pub dtype: &'static str,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// Serializes tensors into one safetensors file (header padded to 8 bytes, data in order).
pub fn safetensors_bytes(tensors: &[RawTensor]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut off = 0usize;
    for t in tensors {
        header.insert(
            t.name.clone(),
            serde_json::json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [off, off + t.data.len()]}),
        );
        off += t.data.len();
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while !(8 + h.len()).is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + off);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    for t in tensors {
        out.extend_from_slice(&t.data);
    }
    out
}

/// A small seeded generator (SplitMix64): no dependency, reproducible (also the training
/// code's initial LoRA values).
pub(crate) struct SplitMix(pub(crate) u64);
impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub(crate) fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn bf16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| bf16::from_f32(x).to_bits().to_le_bytes())
        .collect()
}

/// The weights of one random model, in original naming with f32 values (rounded to bf16) and
/// MXFP4 experts as (blocks, scales).
struct SynthWeights {
    dense: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// per layer: (mlp1 blocks, mlp1 scales, mlp2 blocks, mlp2 scales)
    experts: Vec<[Vec<u8>; 4]>,
}

fn generate(c: &Config, seed: u64) -> SynthWeights {
    let mut r = SplitMix(seed ^ 0x5EED);
    let (h, v, e, inter) = (
        c.hidden_size,
        c.vocab_size,
        c.num_experts,
        c.intermediate_size,
    );
    let (qd, kvd) = (c.q_dim(), c.kv_dim());
    let mut dense = vec![];
    fn rnd(r: &mut SplitMix, n: usize, scale: f32, offset: f32) -> Vec<f32> {
        (0..n)
            .map(|_| bf16::from_f32(offset + scale * r.f()).to_f32())
            .collect()
    }
    let w_scale = |d_in: usize| 1.0 / (d_in as f32).sqrt();
    dense.push((
        "embedding.weight".to_string(),
        vec![v, h],
        rnd(&mut r, v * h, 1.0, 0.0),
    ));
    let mut experts = vec![];
    for n in 0..c.num_hidden_layers {
        let p = format!("block.{n}.");
        dense.push((
            format!("{p}attn.norm.scale"),
            vec![h],
            rnd(&mut r, h, 0.2, 1.0),
        ));
        dense.push((
            format!("{p}attn.qkv.weight"),
            vec![qd + 2 * kvd, h],
            rnd(&mut r, (qd + 2 * kvd) * h, 2.0 * w_scale(h), 0.0),
        ));
        dense.push((
            format!("{p}attn.qkv.bias"),
            vec![qd + 2 * kvd],
            rnd(&mut r, qd + 2 * kvd, 0.1, 0.0),
        ));
        dense.push((
            format!("{p}attn.sinks"),
            vec![c.num_attention_heads],
            rnd(&mut r, c.num_attention_heads, 1.0, 0.0),
        ));
        dense.push((
            format!("{p}attn.out.weight"),
            vec![h, qd],
            rnd(&mut r, h * qd, w_scale(qd), 0.0),
        ));
        dense.push((
            format!("{p}attn.out.bias"),
            vec![h],
            rnd(&mut r, h, 0.1, 0.0),
        ));
        dense.push((
            format!("{p}mlp.norm.scale"),
            vec![h],
            rnd(&mut r, h, 0.2, 1.0),
        ));
        dense.push((
            format!("{p}mlp.gate.weight"),
            vec![e, h],
            rnd(&mut r, e * h, w_scale(h), 0.0),
        ));
        dense.push((
            format!("{p}mlp.gate.bias"),
            vec![e],
            rnd(&mut r, e, 0.1, 0.0),
        ));
        dense.push((
            format!("{p}mlp.mlp1_bias"),
            vec![e, 2 * inter],
            rnd(&mut r, e * 2 * inter, 0.1, 0.0),
        ));
        dense.push((
            format!("{p}mlp.mlp2_bias"),
            vec![e, h],
            rnd(&mut r, e * h, 0.1, 0.0),
        ));
        let mx = |r: &mut SplitMix, rows: usize, d_in: usize| -> (Vec<u8>, Vec<u8>) {
            // Eight random bytes per draw keeps large test checkpoints quick to make.
            let mut blocks = Vec::with_capacity(e * rows * d_in / 2 + 8);
            while blocks.len() < e * rows * d_in / 2 {
                blocks.extend_from_slice(&r.next().to_le_bytes());
            }
            blocks.truncate(e * rows * d_in / 2);
            // Scales around 2^-3..2^-6 keep activations O(1) for small d_in.
            let scales = (0..e * rows * d_in / 32)
                .map(|_| 121 + (r.next() % 4) as u8)
                .collect();
            (blocks, scales)
        };
        let (b1, s1) = mx(&mut r, 2 * inter, h);
        let (b2, s2) = mx(&mut r, h, inter);
        experts.push([b1, s1, b2, s2]);
    }
    dense.push(("norm.scale".to_string(), vec![h], rnd(&mut r, h, 0.2, 1.0)));
    dense.push((
        "unembedding.weight".to_string(),
        vec![v, h],
        rnd(&mut r, v * h, w_scale(h), 0.0),
    ));
    SynthWeights { dense, experts }
}

/// Dequantizes one expert tensor (blocks [E, out, in/32, 16], scales [E, out, in/32]) into
/// f32 [E, in, out] (transposed, as the Hugging Face dequantized checkpoints store it).
fn dequant_transposed(
    blocks: &[u8],
    scales: &[u8],
    e: usize,
    d_out: usize,
    d_in: usize,
) -> Vec<f32> {
    let mut w = vec![0f32; e * d_in * d_out];
    for x in 0..e {
        for o in 0..d_out {
            for i in 0..d_in {
                let byte = blocks[(x * d_out + o) * d_in / 2 + i / 2];
                let code = if i.is_multiple_of(2) {
                    byte & 15
                } else {
                    byte >> 4
                };
                let s = scales[(x * d_out + o) * d_in / 32 + i / 32];
                w[(x * d_in + i) * d_out + o] = fp4_e2m1_to_f32(code) * e8m0_to_f32(s);
            }
        }
    }
    w
}

fn hf_name(orig: &str) -> String {
    let map = |rest: &str| -> String {
        match rest {
            "attn.norm.scale" => "input_layernorm.weight".into(),
            "attn.sinks" => "self_attn.sinks".into(),
            "attn.out.weight" => "self_attn.o_proj.weight".into(),
            "attn.out.bias" => "self_attn.o_proj.bias".into(),
            "mlp.norm.scale" => "post_attention_layernorm.weight".into(),
            "mlp.gate.weight" => "mlp.router.weight".into(),
            "mlp.gate.bias" => "mlp.router.bias".into(),
            "mlp.mlp1_bias" => "mlp.experts.gate_up_proj_bias".into(),
            "mlp.mlp2_bias" => "mlp.experts.down_proj_bias".into(),
            other => other.into(),
        }
    };
    match orig {
        "embedding.weight" => "model.embed_tokens.weight".into(),
        "unembedding.weight" => "lm_head.weight".into(),
        "norm.scale" => "model.norm.weight".into(),
        _ => {
            let rest = orig.strip_prefix("block.").unwrap_or(orig);
            let (n, rest) = rest.split_once('.').unwrap_or(("0", rest));
            format!("model.layers.{n}.{}", map(rest))
        }
    }
}

/// The tensors of a random checkpoint in `layout` (one list; sharding is done by the writer).
pub fn checkpoint_tensors(c: &Config, seed: u64, layout: SynthLayout) -> Vec<RawTensor> {
    let w = generate(c, seed);
    let (h, e, inter) = (c.hidden_size, c.num_experts, c.intermediate_size);
    let (qd, kvd) = (c.q_dim(), c.kv_dim());
    let mut out = vec![];
    for (name, shape, vals) in &w.dense {
        if layout == SynthLayout::Original {
            out.push(RawTensor {
                name: name.clone(),
                dtype: "BF16",
                shape: shape.clone(),
                data: bf16_bytes(vals),
            });
            continue;
        }
        if let Some(p) = name.strip_suffix("attn.qkv.weight") {
            let n = p.trim_start_matches("block.").trim_end_matches('.');
            for (proj, r0, rows) in [
                ("q_proj", 0, qd),
                ("k_proj", qd, kvd),
                ("v_proj", qd + kvd, kvd),
            ] {
                out.push(RawTensor {
                    name: format!("model.layers.{n}.self_attn.{proj}.weight"),
                    dtype: "BF16",
                    shape: vec![rows, h],
                    data: bf16_bytes(&vals[r0 * h..(r0 + rows) * h]),
                });
            }
        } else if let Some(p) = name.strip_suffix("attn.qkv.bias") {
            let n = p.trim_start_matches("block.").trim_end_matches('.');
            for (proj, r0, rows) in [
                ("q_proj", 0, qd),
                ("k_proj", qd, kvd),
                ("v_proj", qd + kvd, kvd),
            ] {
                out.push(RawTensor {
                    name: format!("model.layers.{n}.self_attn.{proj}.bias"),
                    dtype: "BF16",
                    shape: vec![rows],
                    data: bf16_bytes(&vals[r0..r0 + rows]),
                });
            }
        } else {
            out.push(RawTensor {
                name: hf_name(name),
                dtype: "BF16",
                shape: shape.clone(),
                data: bf16_bytes(vals),
            });
        }
    }
    for (n, [b1, s1, b2, s2]) in w.experts.iter().enumerate() {
        let mats = [
            ("mlp1_weight", "gate_up_proj", b1, s1, 2 * inter, h),
            ("mlp2_weight", "down_proj", b2, s2, h, inter),
        ];
        for (orig, hf, blocks, scales, d_out, d_in) in mats {
            match layout {
                SynthLayout::Original | SynthLayout::HuggingFace { .. } => {
                    // Same packed bytes in both layouts; only the names differ.
                    let (blocks_name, scales_name) = match layout {
                        SynthLayout::Original => (
                            format!("block.{n}.mlp.{orig}.blocks"),
                            format!("block.{n}.mlp.{orig}.scales"),
                        ),
                        _ => (
                            format!("model.layers.{n}.mlp.experts.{hf}_blocks"),
                            format!("model.layers.{n}.mlp.experts.{hf}_scales"),
                        ),
                    };
                    out.push(RawTensor {
                        name: blocks_name,
                        dtype: "U8",
                        shape: vec![e, d_out, d_in / 32, 16],
                        data: blocks.clone(),
                    });
                    out.push(RawTensor {
                        name: scales_name,
                        dtype: "U8",
                        shape: vec![e, d_out, d_in / 32],
                        data: scales.clone(),
                    });
                }
                SynthLayout::HuggingFaceBf16 => {
                    let wt = dequant_transposed(blocks, scales, e, d_out, d_in);
                    out.push(RawTensor {
                        name: format!("model.layers.{n}.mlp.experts.{hf}"),
                        dtype: "BF16",
                        shape: vec![e, d_in, d_out],
                        data: bf16_bytes(&wt),
                    });
                }
            }
        }
    }
    out
}

/// Original-layout config.json and one safetensors file, in memory (for `Model::from_memory`).
pub fn original_bytes(c: &Config, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let tensors = checkpoint_tensors(c, seed, SynthLayout::Original);
    (
        c.to_original_json().into_bytes(),
        safetensors_bytes(&tensors),
    )
}

/// Writes a random checkpoint into `dir` (created if needed).
pub fn write_checkpoint(
    dir: &Path,
    c: &Config,
    seed: u64,
    layout: SynthLayout,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tensors = checkpoint_tensors(c, seed, layout);
    let config = match layout {
        SynthLayout::Original => c.to_original_json(),
        SynthLayout::HuggingFace { .. } => c.to_hf_json(true),
        SynthLayout::HuggingFaceBf16 => c.to_hf_json(false),
    };
    std::fs::write(dir.join("config.json"), config)?;
    let shards = match layout {
        SynthLayout::HuggingFace { shards } => shards.max(1),
        _ => 1,
    };
    if shards == 1 {
        let mut f = std::fs::File::create(dir.join("model.safetensors"))?;
        f.write_all(&safetensors_bytes(&tensors))?;
        return Ok(());
    }
    // Round-robin tensors over shards, numbered as Hugging Face does (1-based, "of" = count).
    let mut weight_map = serde_json::Map::new();
    let mut groups: Vec<Vec<RawTensor>> = (0..shards).map(|_| vec![]).collect();
    for (i, t) in tensors.into_iter().enumerate() {
        groups[i % shards].push(t);
    }
    for (i, g) in groups.iter().enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, shards);
        for t in g {
            weight_map.insert(t.name.clone(), serde_json::Value::String(file.clone()));
        }
        std::fs::write(dir.join(&file), safetensors_bytes(g))?;
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string())
}

// ---------------------------------------------------------------------------------------------
// Streaming writer for full-size checkpoints (`gpt-oss synth`): never holds more than one chunk.
// ---------------------------------------------------------------------------------------------

/// Layouts the streaming writer supports (MXFP4 experts in both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamLayout {
    /// `config.json` + `model.safetensors` with `block.{n}...` names (OpenAI's `original/`).
    Original,
    /// `config.json` + `model.safetensors` with `model.layers.{n}...` names (Hugging Face MXFP4).
    HuggingFace,
}

/// How one streamed tensor's bytes are made. Every value is a pure function of
/// (seed, key, element index), so chunking and thread count never change the file, and the HF
/// q/k/v tensors hold exactly the rows of the original fused qkv tensor.
#[derive(Clone, Debug)]
enum Fill {
    /// bf16 values `offset + scale * u`, u uniform in [-1, 1); element `i` of this tensor is
    /// element `first + i` of the keyed stream.
    Bf16 {
        key: u64,
        first: u64,
        scale: f32,
        offset: f32,
    },
    /// Random bytes (every nibble is a valid FP4 E2M1 code).
    Codes { key: u64 },
    /// E8M0 scales in 120..=122, i.e. 2^-7..2^-5.
    Scales { key: u64 },
}

/// One tensor of a streamed checkpoint.
#[derive(Clone, Debug)]
pub struct StreamTensor {
    pub name: String,
    pub dtype: &'static str,
    pub shape: Vec<usize>,
    fill: Fill,
}

impl StreamTensor {
    pub fn n_bytes(&self) -> usize {
        let n: usize = self.shape.iter().product();
        match self.fill {
            Fill::Bf16 { .. } => 2 * n,
            _ => n,
        }
    }
}

fn mix(a: u64) -> u64 {
    let mut z = a.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn name_key(seed: u64, name: &str) -> u64 {
    // FNV-1a over the original name, then mixed with the seed.
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    mix(h ^ mix(seed))
}

/// The tensors of a full checkpoint in `layout`, in file order, with exactly the real names,
/// shapes and dtypes (bf16 dense tensors, U8 MXFP4 blocks/scales for the experts).
pub fn stream_tensors(c: &Config, seed: u64, layout: StreamLayout) -> Vec<StreamTensor> {
    let (h, v, e, inter) = (
        c.hidden_size,
        c.vocab_size,
        c.num_experts,
        c.intermediate_size,
    );
    let (qd, kvd) = (c.q_dim(), c.kv_dim());
    let hf = layout == StreamLayout::HuggingFace;
    let w_scale = |d_in: usize| 1.0 / (d_in as f32).sqrt();
    let mut out = vec![];
    let bf = |orig: &str, shape: Vec<usize>, scale: f32, offset: f32| StreamTensor {
        name: if hf { hf_name(orig) } else { orig.to_string() },
        dtype: "BF16",
        shape,
        fill: Fill::Bf16 {
            key: name_key(seed, orig),
            first: 0,
            scale,
            offset,
        },
    };
    out.push(bf("embedding.weight", vec![v, h], 1.0, 0.0));
    for n in 0..c.num_hidden_layers {
        let p = format!("block.{n}.");
        out.push(bf(&format!("{p}attn.norm.scale"), vec![h], 0.2, 1.0));
        let qkv_w = format!("{p}attn.qkv.weight");
        let qkv_b = format!("{p}attn.qkv.bias");
        if hf {
            for (proj, r0, rows) in [
                ("q_proj", 0, qd),
                ("k_proj", qd, kvd),
                ("v_proj", qd + kvd, kvd),
            ] {
                out.push(StreamTensor {
                    name: format!("model.layers.{n}.self_attn.{proj}.weight"),
                    dtype: "BF16",
                    shape: vec![rows, h],
                    fill: Fill::Bf16 {
                        key: name_key(seed, &qkv_w),
                        first: (r0 * h) as u64,
                        scale: 2.0 * w_scale(h),
                        offset: 0.0,
                    },
                });
                out.push(StreamTensor {
                    name: format!("model.layers.{n}.self_attn.{proj}.bias"),
                    dtype: "BF16",
                    shape: vec![rows],
                    fill: Fill::Bf16 {
                        key: name_key(seed, &qkv_b),
                        first: r0 as u64,
                        scale: 0.1,
                        offset: 0.0,
                    },
                });
            }
        } else {
            out.push(bf(&qkv_w, vec![qd + 2 * kvd, h], 2.0 * w_scale(h), 0.0));
            out.push(bf(&qkv_b, vec![qd + 2 * kvd], 0.1, 0.0));
        }
        out.push(bf(
            &format!("{p}attn.sinks"),
            vec![c.num_attention_heads],
            1.0,
            0.0,
        ));
        out.push(bf(
            &format!("{p}attn.out.weight"),
            vec![h, qd],
            w_scale(qd),
            0.0,
        ));
        out.push(bf(&format!("{p}attn.out.bias"), vec![h], 0.1, 0.0));
        out.push(bf(&format!("{p}mlp.norm.scale"), vec![h], 0.2, 1.0));
        out.push(bf(
            &format!("{p}mlp.gate.weight"),
            vec![e, h],
            w_scale(h),
            0.0,
        ));
        out.push(bf(&format!("{p}mlp.gate.bias"), vec![e], 0.1, 0.0));
        out.push(bf(
            &format!("{p}mlp.mlp1_bias"),
            vec![e, 2 * inter],
            0.1,
            0.0,
        ));
        out.push(bf(&format!("{p}mlp.mlp2_bias"), vec![e, h], 0.1, 0.0));
        for (orig, hf_base, d_out, d_in) in [
            ("mlp1_weight", "gate_up_proj", 2 * inter, h),
            ("mlp2_weight", "down_proj", h, inter),
        ] {
            let o = format!("{p}mlp.{orig}");
            let (bn, sn) = if hf {
                let b = format!("model.layers.{n}.mlp.experts.{hf_base}");
                (format!("{b}_blocks"), format!("{b}_scales"))
            } else {
                (format!("{o}.blocks"), format!("{o}.scales"))
            };
            out.push(StreamTensor {
                name: bn,
                dtype: "U8",
                shape: vec![e, d_out, d_in / 32, 16],
                fill: Fill::Codes {
                    key: name_key(seed, &format!("{o}.blocks")),
                },
            });
            out.push(StreamTensor {
                name: sn,
                dtype: "U8",
                shape: vec![e, d_out, d_in / 32],
                fill: Fill::Scales {
                    key: name_key(seed, &format!("{o}.scales")),
                },
            });
        }
    }
    out.push(bf("norm.scale", vec![h], 0.2, 1.0));
    out.push(bf("unembedding.weight", vec![v, h], w_scale(h), 0.0));
    out
}

/// Fills `buf` with bytes `[byte0, byte0 + buf.len())` of tensor `t`'s data.
/// `byte0` and `buf.len()` are multiples of 8.
fn fill_chunk(t: &StreamTensor, byte0: usize, buf: &mut [u8]) {
    debug_assert!(byte0.is_multiple_of(8) && buf.len().is_multiple_of(8));
    match t.fill {
        Fill::Bf16 {
            key,
            first,
            scale,
            offset,
        } => {
            // Element j of the keyed stream takes 16 bits of mix(key + j/4) (4 per hash).
            for (k, pair) in buf.chunks_exact_mut(2).enumerate() {
                let j = first + (byte0 / 2 + k) as u64;
                let bits = (mix(key.wrapping_add(j / 4)) >> ((j % 4) * 16)) as u16;
                let u = bits as f32 / 32768.0 - 1.0;
                pair.copy_from_slice(&bf16::from_f32(offset + scale * u).to_bits().to_le_bytes());
            }
        }
        Fill::Codes { key } => {
            for (k, word) in buf.chunks_exact_mut(8).enumerate() {
                let j = (byte0 / 8 + k) as u64;
                word.copy_from_slice(&mix(key.wrapping_add(j)).to_le_bytes());
            }
        }
        Fill::Scales { key } => {
            for (k, word) in buf.chunks_exact_mut(8).enumerate() {
                let r = mix(key.wrapping_add((byte0 / 8 + k) as u64));
                for (b, o) in word.iter_mut().enumerate() {
                    *o = 120 + ((r >> (8 * b)) & 0xFF) as u8 % 3;
                }
            }
        }
    }
}

/// Streams a full-size random checkpoint (`config.json` + `model.safetensors`) into `dir`,
/// generating each tensor in chunks of a few MB on all rayon threads. `progress(done, total)`
/// is called with data bytes written. Memory use is one chunk, whatever the model size.
pub fn write_checkpoint_streaming(
    dir: &Path,
    c: &Config,
    seed: u64,
    layout: StreamLayout,
    progress: &mut dyn FnMut(u64, u64),
) -> std::io::Result<()> {
    use rayon::prelude::*;
    const CHUNK: usize = 8 << 20;
    const PIECE: usize = 256 << 10;
    std::fs::create_dir_all(dir)?;
    let config = match layout {
        StreamLayout::Original => c.to_original_json(),
        StreamLayout::HuggingFace => c.to_hf_json(true),
    };
    std::fs::write(dir.join("config.json"), config)?;
    let tensors = stream_tensors(c, seed, layout);
    let mut header = serde_json::Map::new();
    let mut total = 0usize;
    for t in &tensors {
        let len = t.n_bytes();
        header.insert(
            t.name.clone(),
            serde_json::json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [total, total + len]}),
        );
        total += len;
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while !(8 + h.len()).is_multiple_of(8) {
        h.push(b' ');
    }
    let path = dir.join("model.safetensors");
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    f.write_all(&(h.len() as u64).to_le_bytes())?;
    f.write_all(&h)?;
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    progress(0, total as u64);
    for t in &tensors {
        let len = t.n_bytes();
        let mut off = 0;
        while off < len {
            let this = (len - off).min(CHUNK);
            // Generate whole 8-byte words, then write only the tensor's bytes.
            let padded = this.div_ceil(8) * 8;
            buf[..padded]
                .par_chunks_mut(PIECE)
                .enumerate()
                .for_each(|(i, piece)| fill_chunk(t, off + i * PIECE, piece));
            f.write_all(&buf[..this])?;
            off += this;
            done += this as u64;
            progress(done, total as u64);
        }
    }
    f.flush()?;
    Ok(())
}

/// The tensors of a full-size random checkpoint made in memory, one layer at a time (the same
/// numbers `write_checkpoint_streaming` writes), for backends that upload weights and must
/// never hold a whole checkpoint on the host: `bench --synth 20b --device gpu` measures a
/// device without any file.
pub struct InMemorySynth {
    config: Config,
    by_name: std::collections::HashMap<String, StreamTensor>,
}

/// One generated tensor's bytes, 8-byte aligned so they can be viewed as bf16/f32.
struct Generated(Vec<u64>, usize);

impl Generated {
    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.0)[..self.1]
    }
    fn bf16(&self) -> &[bf16] {
        bytemuck::cast_slice(self.bytes())
    }
    fn f32(&self) -> Vec<f32> {
        self.bf16().iter().map(|v| v.to_f32()).collect()
    }
}

impl InMemorySynth {
    pub fn new(c: &Config, seed: u64) -> InMemorySynth {
        InMemorySynth {
            config: c.clone(),
            by_name: stream_tensors(c, seed, StreamLayout::Original)
                .into_iter()
                .map(|t| (t.name.clone(), t))
                .collect(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Bytes of all tensors.
    pub fn total_bytes(&self) -> u64 {
        self.by_name.values().map(|t| t.n_bytes() as u64).sum()
    }

    fn make(&self, name: &str) -> Generated {
        use rayon::prelude::*;
        const PIECE: usize = 1 << 20;
        let t = &self.by_name[name];
        let len = t.n_bytes();
        let mut words = vec![0u64; len.div_ceil(8)];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        bytes
            .par_chunks_mut(PIECE)
            .enumerate()
            .for_each(|(i, piece)| fill_chunk(t, i * PIECE, piece));
        Generated(words, len)
    }

    /// Calls `f` with the embedding, the unembedding and the final norm.
    pub fn with_globals<R>(
        &self,
        f: impl FnOnce(DenseTensor<'_>, DenseTensor<'_>, &[f32]) -> R,
    ) -> R {
        let emb = self.make("embedding.weight");
        let unemb = self.make("unembedding.weight");
        let norm = self.make("norm.scale").f32();
        f(
            DenseTensor::Bf16(emb.bf16()),
            DenseTensor::Bf16(unemb.bf16()),
            &norm,
        )
    }

    /// Generates layer `i` and calls `f` with its tensors (freed when `f` returns).
    pub fn with_layer<R>(&self, i: usize, f: impl FnOnce(&LayerTensors<'_>) -> R) -> R {
        let c = &self.config;
        let (h, e, inter) = (c.hidden_size, c.num_experts, c.intermediate_size);
        let (qd, kvd) = (c.q_dim(), c.kv_dim());
        let p = format!("block.{i}.");
        let g = |s: &str| self.make(&format!("{p}{s}"));
        let (qkv_w, qkv_b) = (g("attn.qkv.weight"), g("attn.qkv.bias").f32());
        let (out_w, out_b) = (g("attn.out.weight"), g("attn.out.bias").f32());
        let (gate_w, gate_b) = (g("mlp.gate.weight"), g("mlp.gate.bias").f32());
        let (attn_norm, mlp_norm, sinks) = (
            g("attn.norm.scale").f32(),
            g("mlp.norm.scale").f32(),
            g("attn.sinks").f32(),
        );
        let (b1, s1, bias1) = (
            g("mlp.mlp1_weight.blocks"),
            g("mlp.mlp1_weight.scales"),
            g("mlp.mlp1_bias"),
        );
        let (b2, s2, bias2) = (
            g("mlp.mlp2_weight.blocks"),
            g("mlp.mlp2_weight.scales"),
            g("mlp.mlp2_bias"),
        );
        let w = qkv_w.bf16();
        fn lin<'a>(w: &'a [bf16], b: &'a [f32], d_in: usize, d_out: usize) -> LinearTensors<'a> {
            LinearTensors {
                weight: DenseTensor::Bf16(w),
                bias: Some(b),
                d_in,
                d_out,
            }
        }
        let layer = LayerTensors {
            attn_norm: &attn_norm,
            q: lin(&w[..qd * h], &qkv_b[..qd], h, qd),
            k: lin(&w[qd * h..(qd + kvd) * h], &qkv_b[qd..qd + kvd], h, kvd),
            v: lin(&w[(qd + kvd) * h..], &qkv_b[qd + kvd..], h, kvd),
            out: lin(out_w.bf16(), &out_b, qd, h),
            sinks: &sinks,
            mlp_norm: &mlp_norm,
            router: lin(gate_w.bf16(), &gate_b, h, e),
            mlp1: ExpertTensors {
                weight: ExpertTensor::Mxfp4 {
                    blocks: b1.bytes(),
                    scales: s1.bytes(),
                },
                bias: DenseTensor::Bf16(bias1.bf16()),
                d_in: h,
                d_out: 2 * inter,
            },
            mlp2: ExpertTensors {
                weight: ExpertTensor::Mxfp4 {
                    blocks: b2.bytes(),
                    scales: s2.bytes(),
                },
                bias: DenseTensor::Bf16(bias2.bf16()),
                d_in: inter,
                d_out: h,
            },
        };
        f(&layer)
    }
}

#[cfg(test)]
mod stream_tests {
    use super::*;

    #[test]
    fn streamed_layouts_load_and_agree() {
        let c = tiny_config();
        let d = tempfile::tempdir().unwrap();
        let (po, ph) = (d.path().join("o"), d.path().join("h"));
        let mut calls = 0;
        write_checkpoint_streaming(&po, &c, 5, StreamLayout::Original, &mut |_, _| calls += 1)
            .unwrap();
        assert!(calls >= 2);
        write_checkpoint_streaming(&ph, &c, 5, StreamLayout::HuggingFace, &mut |_, _| {}).unwrap();
        let mo = crate::Model::load(&po).unwrap();
        let mh = crate::Model::load(&ph).unwrap();
        assert_eq!(mh.layout(), crate::Layout::HuggingFace);
        let toks = [1u32, 5, 9, 96];
        let lo = mo
            .forward(&toks, &mut mo.new_cache(8), crate::LogitsFor::All)
            .unwrap();
        let lh = mh
            .forward(&toks, &mut mh.new_cache(8), crate::LogitsFor::All)
            .unwrap();
        assert!(lo.iter().all(|v| v.is_finite()));
        assert_eq!(lo, lh, "same seed, same weights in both layouts");
        // Scales lie in 2^-7..2^-5.
        let t = stream_tensors(&c, 5, StreamLayout::Original);
        let s = t
            .iter()
            .find(|t| t.name.ends_with("mlp1_weight.scales"))
            .unwrap();
        let mut buf = vec![0u8; s.n_bytes().div_ceil(8) * 8];
        fill_chunk(s, 0, &mut buf);
        assert!(buf.iter().all(|&b| (120..=122).contains(&b)));
        assert!(buf.contains(&120) && buf.contains(&122));
    }
}
