//! PEFT LoRA adapters at inference: reading an adapter folder (`adapter_config.json` +
//! `adapter_model.safetensors`, as `PeftModel.save_pretrained` writes it for
//! `GptOssForCausalLM`), validating it against the model's `Config`, and the low-rank products
//! the forward pass adds beside the base ones: y += scale · B(A x).
//!
//! The base is never touched: experts stay MXFP4 in the memory map, and no merged dense copy is
//! made. The adapter's own matrices are small (r rows) and are held as f32.
//!
//! Targets (the names PEFT uses for transformers' GptOss):
//! * `target_modules`: `self_attn.{q,k,v,o}_proj` (nn.Linear, W [out, in]): lora_A.weight
//!   [r, in], lora_B.weight [out, r].
//! * `target_parameters`: `mlp.experts.gate_up_proj` [E, hidden, 2·inter] and
//!   `mlp.experts.down_proj` [E, inter, hidden], the 3-D parameters transformers stores as
//!   [experts, in, out]. PEFT's `ParamWrapper` gives lora_A.weight [r·E, in] (expert e owns rows
//!   e·r .. e·r + r) and lora_B.weight [out, r·E] (expert e owns columns k·E + e: PEFT reshapes
//!   it to [out, r, E]), and adds `einsum("o r e, e r i -> e i o", B, A) · scale` to the
//!   parameter. Two wrapped parameters of one module nest, the inner one's tensors under an
//!   extra `base_layer.`; which is which is told by their shapes (see `classify_experts`).
//!
//! Both checkpoint layouts bind q/k/v to the same row ranges (the original's fused qkv is split
//! at load) and keep expert matrix 1's outputs in the order of transformers' `gate_up_proj`
//! columns (gate and up interleaved: gate₀, up₀, gate₁, ...), so one adapter lands on the same
//! rows in every layout without any remapping.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gptoss_backend::matmul_f32_f32w;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::cache::sized;
use crate::config::Config;
use crate::error::{LoraError, LoraProblem};

/// The two files of a PEFT adapter folder.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// Names an adapter registered with [`crate::Model::add_lora`] (the number it returned), for a
/// sequence to run under ([`crate::KvCache::set_lora`]). Several sequences of one batched decode
/// step may each name a different adapter, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LoraId(pub u32);

/// One low-rank update of a dense product: y f32 [n, d_out] += scale · (x · Aᵀ) · Bᵀ.
pub(crate) struct LowRank {
    /// f32 [r, d_in]
    a: Vec<f32>,
    /// f32 [d_out, r]
    b: Vec<f32>,
    r: usize,
    d_in: usize,
    d_out: usize,
    scale: f32,
}

impl LowRank {
    /// (A f32 [r, d_in], B f32 [d_out, r]): the starting values of a trained adapter (train/).
    pub(crate) fn parts(&self) -> (&[f32], &[f32]) {
        (&self.a, &self.b)
    }

    /// y f32 [n, d_out] += scale · B(A x) for x f32 [n, d_in]; `t` and `u` are scratch (grown
    /// once, then reused).
    pub(crate) fn add(&self, x: &[f32], y: &mut [f32], t: &mut Vec<f32>, u: &mut Vec<f32>) {
        let n = x.len() / self.d_in;
        low_rank_add(
            &self.a,
            &self.b,
            self.r,
            self.d_in,
            self.d_out,
            self.scale,
            x,
            &mut y[..n * self.d_out],
            sized(t, n * self.r),
            sized(u, n * self.d_out),
        );
    }
}

/// Per-expert low-rank updates of one expert matrix (a PEFT `ParamWrapper` on a 3-D parameter).
pub(crate) struct ExpertLowRank {
    /// f32 [E, r, d_in]
    a: Vec<f32>,
    /// f32 [E, d_out, r], regrouped at load from PEFT's [d_out, r·E] (column k·E + e)
    b: Vec<f32>,
    r: usize,
    d_in: usize,
    d_out: usize,
    scale: f32,
}

impl ExpertLowRank {
    /// (A f32 [E·r, d_in], B f32 [E, d_out, r]): the starting values of a trained adapter.
    pub(crate) fn parts(&self) -> (&[f32], &[f32]) {
        (&self.a, &self.b)
    }

    /// y f32 [m, d_out] += scale · B_e(A_e x) for the rows x f32 [m, d_in] routed to `expert`.
    pub(crate) fn add(
        &self,
        expert: usize,
        x: &[f32],
        y: &mut [f32],
        t: &mut Vec<f32>,
        u: &mut Vec<f32>,
    ) {
        let (r, d_in, d_out) = (self.r, self.d_in, self.d_out);
        let m = x.len() / d_in;
        let a = &self.a[expert * r * d_in..(expert + 1) * r * d_in];
        let b = &self.b[expert * d_out * r..(expert + 1) * d_out * r];
        low_rank_add(
            a,
            b,
            r,
            d_in,
            d_out,
            self.scale,
            x,
            &mut y[..m * d_out],
            sized(t, m * r),
            sized(u, m * d_out),
        );
    }
}

/// y [n, d_out] += scale · ((x [n, d_in] · Aᵀ) [n, r] · Bᵀ); t [n, r], u [n, d_out] scratch.
/// The two thin products run on the backend's f32 kernels; scaling after the product follows
/// PEFT's `lora_B(lora_A(x)) * scaling`.
#[allow(clippy::too_many_arguments)]
fn low_rank_add(
    a: &[f32],
    b: &[f32],
    r: usize,
    d_in: usize,
    d_out: usize,
    scale: f32,
    x: &[f32],
    y: &mut [f32],
    t: &mut [f32],
    u: &mut [f32],
) {
    matmul_f32_f32w(x, a, None, t, d_in, r);
    matmul_f32_f32w(t, b, None, u, r, d_out);
    for (yv, &uv) in y.iter_mut().zip(u.iter()) {
        *yv += scale * uv;
    }
}

/// The updates of one layer (None where the adapter leaves a product alone).
#[derive(Default)]
pub(crate) struct LayerLora {
    pub q: Option<LowRank>,
    pub k: Option<LowRank>,
    pub v: Option<LowRank>,
    pub o: Option<LowRank>,
    /// expert matrix 1 ([E, 2·inter, hidden] in our binding, `gate_up_proj` in PEFT's names)
    pub gate_up: Option<ExpertLowRank>,
    /// expert matrix 2 (`down_proj`)
    pub down: Option<ExpertLowRank>,
}

/// The shapes an adapter was validated against; `Model::set_lora` refuses an adapter checked
/// against another model's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dims {
    layers: usize,
    hidden: usize,
    q_dim: usize,
    kv_dim: usize,
    inter: usize,
    experts: usize,
}

impl Dims {
    fn of(c: &Config) -> Dims {
        Dims {
            layers: c.num_hidden_layers,
            hidden: c.hidden_size,
            q_dim: c.q_dim(),
            kv_dim: c.kv_dim(),
            inter: c.intermediate_size,
            experts: c.num_experts,
        }
    }
}

/// A loaded, validated PEFT LoRA adapter, ready for `Model::set_lora`.
pub struct LoraAdapter {
    dir: PathBuf,
    r: usize,
    alpha: f64,
    rslora: bool,
    scale: f32,
    dims: Dims,
    pub(crate) layers: Vec<LayerLora>,
}

/// Which product one PEFT module name targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Q,
    K,
    V,
    O,
    /// `mlp.experts` wrapped `depth` times deeper (`base_layer.` repeated `depth` times).
    Experts(usize),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Half {
    A,
    B,
}

/// One tensor of the adapter, converted to f32.
struct Tensor {
    name: String,
    shape: Vec<usize>,
    data: Vec<f32>,
}

type Pairs = BTreeMap<(usize, Target), (Option<Tensor>, Option<Tensor>)>;

impl LoraAdapter {
    /// Reads and validates the adapter folder `dir` against `config` (see the module doc).
    /// Every problem is a [`LoraError`] naming the file at fault.
    pub fn load(dir: &Path, config: &Config) -> Result<LoraAdapter, LoraError> {
        let cfg_path = dir.join(ADAPTER_CONFIG);
        let st_path = dir.join(ADAPTER_WEIGHTS);
        if !dir.is_dir() {
            return Err(LoraError {
                path: dir.to_path_buf(),
                problem: LoraProblem::NotAFolder,
            });
        }
        let at = |path: &Path| {
            let path = path.to_path_buf();
            move |problem| LoraError { path, problem }
        };
        let cfg_bytes = read(&cfg_path)?;
        let settings = Settings::parse(&cfg_bytes).map_err(at(&cfg_path))?;
        if !st_path.exists() && dir.join("adapter_model.bin").exists() {
            return Err(at(&st_path)(LoraProblem::PickleOnly));
        }
        let st_bytes = read(&st_path)?;
        let dims = Dims::of(config);
        let layers = bind(&st_bytes, &settings, dims).map_err(at(&st_path))?;
        Ok(LoraAdapter {
            dir: dir.to_path_buf(),
            r: settings.r,
            alpha: settings.alpha,
            rslora: settings.rslora,
            scale: settings.scale(),
            dims,
            layers,
        })
    }

    /// The folder the adapter was read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The rank `r` of adapter_config.json.
    pub fn rank(&self) -> usize {
        self.r
    }

    /// `lora_alpha`.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// Whether the scale is alpha / √r (rsLoRA) rather than alpha / r.
    pub fn rslora(&self) -> bool {
        self.rslora
    }

    /// The factor of every update: alpha / r, or alpha / √r with `use_rslora`.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// (attention products, expert matrices) the adapter updates, over all layers.
    pub fn target_counts(&self) -> (usize, usize) {
        let mut attn = 0;
        let mut experts = 0;
        for l in &self.layers {
            attn += [&l.q, &l.k, &l.v, &l.o]
                .iter()
                .filter(|x| x.is_some())
                .count();
            experts += [&l.gate_up, &l.down].iter().filter(|x| x.is_some()).count();
        }
        (attn, experts)
    }

    /// Extra multiply-adds per token the adapter costs: r·(d_in + d_out) per targeted attention
    /// product, and the same per expert matrix times the experts each token is routed to.
    pub fn extra_macs_per_token(&self, experts_per_token: usize) -> u64 {
        let mut total = 0u64;
        for l in &self.layers {
            for lr in [&l.q, &l.k, &l.v, &l.o].into_iter().flatten() {
                total += (lr.r * (lr.d_in + lr.d_out)) as u64;
            }
            for er in [&l.gate_up, &l.down].into_iter().flatten() {
                total += (er.r * (er.d_in + er.d_out) * experts_per_token) as u64;
            }
        }
        total
    }

    /// Whether this adapter was validated against a model of `config`'s shapes.
    pub(crate) fn fits(&self, config: &Config) -> bool {
        self.dims == Dims::of(config)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, LoraError> {
    std::fs::read(path).map_err(|e| LoraError {
        path: path.to_path_buf(),
        problem: if e.kind() == std::io::ErrorKind::NotFound {
            LoraProblem::MissingFile
        } else {
            LoraProblem::Io(e.to_string())
        },
    })
}

/// What adapter_config.json says that matters at inference.
struct Settings {
    r: usize,
    alpha: f64,
    rslora: bool,
}

impl Settings {
    fn scale(&self) -> f32 {
        let r = self.r as f64;
        let s = if self.rslora {
            self.alpha / r.sqrt()
        } else {
            self.alpha / r
        };
        s as f32
    }

    fn parse(bytes: &[u8]) -> Result<Settings, LoraProblem> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| LoraProblem::BadConfig(format!("not JSON: {e}")))?;
        let Some(obj) = v.as_object() else {
            return Err(LoraProblem::BadConfig("not a JSON object".into()));
        };
        let get = |k: &str| obj.get(k).filter(|v| !v.is_null());
        if let Some(t) = get("peft_type") {
            if t.as_str() != Some("LORA") {
                return Err(unsupported("peft_type", t, "only LoRA adapters are read"));
            }
        }
        // PEFT's defaults: r 8, lora_alpha 8.
        let r = match get("r") {
            None => 8,
            Some(v) => match v.as_u64() {
                Some(r) if r > 0 && r <= 1 << 16 => r as usize,
                _ => return Err(LoraProblem::BadRank(v.to_string())),
            },
        };
        let alpha = match get("lora_alpha") {
            None => 8.0,
            Some(v) => match v.as_f64() {
                Some(a) if a.is_finite() => a,
                _ => {
                    return Err(LoraProblem::BadConfig(format!(
                        "lora_alpha = {v} is not a number"
                    )))
                }
            },
        };
        let flag = |k: &str| get(k).and_then(Value::as_bool).unwrap_or(false);
        let rslora = flag("use_rslora");
        for (k, why) in [
            ("use_dora", "DoRA adds a magnitude vector per output"),
            ("lora_bias", "LoRA biases on lora_B"),
            ("use_qalora", "QA-LoRA pools the input groups"),
        ] {
            if flag(k) {
                return Err(unsupported(k, &Value::Bool(true), why));
            }
        }
        if let Some(b) = get("bias") {
            if b.as_str() != Some("none") {
                return Err(unsupported(
                    "bias",
                    b,
                    "the adapter would carry trained biases of the base layers",
                ));
            }
        }
        let non_empty = |v: &Value| match v {
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            Value::String(s) => !s.is_empty(),
            Value::Bool(b) => *b,
            _ => true,
        };
        for (k, why) in [
            (
                "modules_to_save",
                "it carries whole trained copies of base modules",
            ),
            ("rank_pattern", "per-module ranks"),
            ("alpha_pattern", "per-module alphas"),
            ("layer_replication", "it rearranges the base's layers"),
            (
                "alora_invocation_tokens",
                "activated LoRA depends on the prompt",
            ),
            ("arrow_config", "Arrow routing between adapters"),
            (
                "use_bdlora",
                "a LoRA variant this runtime does not implement",
            ),
            (
                "kasa_config",
                "a LoRA variant this runtime does not implement",
            ),
            (
                "monteclora_config",
                "a LoRA variant this runtime does not implement",
            ),
            (
                "velora_config",
                "a LoRA variant this runtime does not implement",
            ),
            (
                "trainable_token_indices",
                "it carries trained embedding rows",
            ),
        ] {
            if let Some(v) = get(k).filter(|v| non_empty(v)) {
                return Err(unsupported(k, v, why));
            }
        }
        let params = match get("target_parameters") {
            None => vec![],
            Some(Value::Array(a)) => a
                .iter()
                .map(|p| {
                    p.as_str().map(str::to_string).ok_or_else(|| {
                        LoraProblem::BadConfig(format!(
                            "target_parameters item {p} is not a string"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(v) => {
                return Err(LoraProblem::BadConfig(format!(
                    "target_parameters = {v} is not a list"
                )))
            }
        };
        for p in &params {
            let parts: Vec<&str> = p.split('.').collect();
            let last = parts.last().copied().unwrap_or("");
            let before = parts.len().checked_sub(2).map(|i| parts[i]);
            let ok = matches!(last, "gate_up_proj" | "down_proj")
                && matches!(before, None | Some("experts"));
            if !ok {
                return Err(LoraProblem::UnknownParameter { name: p.clone() });
            }
        }
        if !params.is_empty() && flag("fan_in_fan_out") {
            return Err(unsupported(
                "fan_in_fan_out",
                &Value::Bool(true),
                "PEFT's ParamWrapper refuses it too",
            ));
        }
        match get("target_modules") {
            // A string is a regular expression over module names (or "all-linear"); what it
            // matched is checked tensor by tensor.
            None | Some(Value::String(_)) => {}
            Some(Value::Array(a)) => {
                for m in a {
                    let Some(name) = m.as_str() else {
                        return Err(LoraProblem::BadConfig(format!(
                            "target_modules item {m} is not a string"
                        )));
                    };
                    let last = name.rsplit('.').next().unwrap_or(name);
                    if !matches!(last, "q_proj" | "k_proj" | "v_proj" | "o_proj") {
                        return Err(LoraProblem::UnknownModule {
                            module: name.to_string(),
                        });
                    }
                }
            }
            Some(v) => {
                return Err(LoraProblem::BadConfig(format!(
                    "target_modules = {v} is neither a list nor a string"
                )))
            }
        }
        Ok(Settings { r, alpha, rslora })
    }
}

fn unsupported(field: &str, value: &Value, why: &str) -> LoraProblem {
    LoraProblem::Unsupported {
        field: field.to_string(),
        value: value.to_string(),
        why: why.to_string(),
    }
}

/// Splits a PEFT tensor name into (layer, target, A or B), None when it is not one we know.
fn parse_name(name: &str) -> Option<(usize, Target, Half)> {
    let rest = name.strip_prefix("base_model.model.").unwrap_or(name);
    let rest = rest.strip_prefix("model.layers.")?;
    let (idx, rest) = rest.split_once('.')?;
    if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let layer: usize = idx.parse().ok()?;
    let (module, half) = if let Some(m) = rest.strip_suffix(".lora_A.weight") {
        (m, Half::A)
    } else if let Some(m) = rest.strip_suffix(".lora_B.weight") {
        (m, Half::B)
    } else {
        return None;
    };
    let target = match module {
        "self_attn.q_proj" => Target::Q,
        "self_attn.k_proj" => Target::K,
        "self_attn.v_proj" => Target::V,
        "self_attn.o_proj" => Target::O,
        m => {
            let mut tail = m.strip_prefix("mlp.experts")?;
            let mut depth = 0;
            while let Some(t) = tail.strip_prefix(".base_layer") {
                tail = t;
                depth += 1;
            }
            if !tail.is_empty() {
                return None;
            }
            Target::Experts(depth)
        }
    };
    Some((layer, target, half))
}

/// Reads one tensor as f32 (F32, BF16 or F16), checking that every value is finite.
fn to_f32(name: &str, view: &safetensors::tensor::TensorView<'_>) -> Result<Tensor, LoraProblem> {
    let bytes = view.data();
    let data: Vec<f32> = match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(LoraProblem::WrongDtype {
                name: name.to_string(),
                found: format!("{other:?}"),
            })
        }
    };
    if let Some(i) = data.iter().position(|x| !x.is_finite()) {
        return Err(LoraProblem::NotFinite {
            name: name.to_string(),
            index: i,
            value: data[i].to_string(),
        });
    }
    Ok(Tensor {
        name: name.to_string(),
        shape: view.shape().to_vec(),
        data,
    })
}

/// Reads every tensor of adapter_model.safetensors and binds it to its layer and product,
/// checking names, layers, pairs and shapes.
fn bind(bytes: &[u8], s: &Settings, d: Dims) -> Result<Vec<LayerLora>, LoraProblem> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| LoraProblem::BadFile(format!("not a safetensors file: {e}")))?;
    let mut pairs: Pairs = BTreeMap::new();
    let mut names = st.names();
    names.sort();
    for name in names {
        let Some((layer, target, half)) = parse_name(name) else {
            return Err(LoraProblem::UnknownTensor {
                name: name.to_string(),
            });
        };
        if layer >= d.layers {
            return Err(LoraProblem::LayerOutOfRange {
                name: name.to_string(),
                layer,
                n_layers: d.layers,
            });
        }
        let view = st
            .tensor(name)
            .map_err(|e| LoraProblem::BadFile(format!("tensor `{name}`: {e}")))?;
        let t = to_f32(name, &view)?;
        let slot = pairs.entry((layer, target)).or_default();
        match half {
            Half::A => slot.0 = Some(t),
            Half::B => slot.1 = Some(t),
        }
    }
    if pairs.is_empty() {
        return Err(LoraProblem::Empty);
    }
    let mut layers: Vec<LayerLora> = (0..d.layers).map(|_| LayerLora::default()).collect();
    let scale = s.scale();
    let r = s.r;
    for ((layer, target), (a, b)) in pairs {
        let (a, b) = match (a, b) {
            (Some(a), Some(b)) => (a, b),
            (Some(t), None) | (None, Some(t)) => {
                return Err(LoraProblem::Unpaired { name: t.name });
            }
            (None, None) => continue,
        };
        let l = &mut layers[layer];
        let (slot, d_in, d_out) = match target {
            Target::Q => (&mut l.q, d.hidden, d.q_dim),
            Target::K => (&mut l.k, d.hidden, d.kv_dim),
            Target::V => (&mut l.v, d.hidden, d.kv_dim),
            Target::O => (&mut l.o, d.q_dim, d.hidden),
            Target::Experts(_) => {
                let (which, m) = classify_experts(a, b, r, d, scale)?;
                let slot = match which {
                    ExpertParam::GateUp => &mut l.gate_up,
                    ExpertParam::Down => &mut l.down,
                };
                if slot.is_some() {
                    return Err(LoraProblem::Duplicate {
                        layer,
                        param: which.name().to_string(),
                    });
                }
                *slot = Some(m);
                continue;
            }
        };
        check_shape(&a, &[r, d_in], "lora_A: [r, in_features]")?;
        check_shape(&b, &[d_out, r], "lora_B: [out_features, r]")?;
        *slot = Some(LowRank {
            a: a.data,
            b: b.data,
            r,
            d_in,
            d_out,
            scale,
        });
    }
    Ok(layers)
}

fn check_shape(t: &Tensor, expected: &[usize], why: &str) -> Result<(), LoraProblem> {
    if t.shape != expected {
        return Err(LoraProblem::WrongShape {
            name: t.name.clone(),
            expected: expected.to_vec(),
            found: t.shape.clone(),
            why: why.to_string(),
        });
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum ExpertParam {
    GateUp,
    Down,
}

impl ExpertParam {
    fn name(self) -> &'static str {
        match self {
            ExpertParam::GateUp => "mlp.experts.gate_up_proj",
            ExpertParam::Down => "mlp.experts.down_proj",
        }
    }
}

/// Tells which expert parameter a `ParamWrapper` pair updates from its shapes (PEFT's names
/// only say how deep the wrapper is nested): gate_up_proj has A [r·E, hidden], B [2·inter, r·E];
/// down_proj A [r·E, inter], B [hidden, r·E]. The pairs of shapes always differ (they would be
/// equal only if hidden = inter = 2·inter). Regroups B per expert.
fn classify_experts(
    a: Tensor,
    b: Tensor,
    r: usize,
    d: Dims,
    scale: f32,
) -> Result<(ExpertParam, ExpertLowRank), LoraProblem> {
    let re = r * d.experts;
    let candidates = [
        (ExpertParam::GateUp, d.hidden, 2 * d.inter),
        (ExpertParam::Down, d.inter, d.hidden),
    ];
    let found = candidates
        .iter()
        .find(|&&(_, i, o)| a.shape == [re, i] && b.shape == [o, re]);
    let &(which, d_in, d_out) = match found {
        Some(c) => c,
        None => {
            // Name the tensor that does not fit: B when A fits one of the parameters.
            return Err(
                match candidates.iter().find(|&&(_, i, _)| a.shape == [re, i]) {
                    Some(&(which, _, o)) => LoraProblem::WrongShape {
                        name: b.name,
                        expected: vec![o, re],
                        found: b.shape,
                        why: format!("lora_B of {}: [out_features, r·num_experts]", which.name()),
                    },
                    None => LoraProblem::WrongShape {
                        name: a.name,
                        expected: vec![re, d.hidden],
                        found: a.shape,
                        why: format!(
                            "lora_A of an expert parameter: [r·num_experts, in_features], in \
                             = {} for gate_up_proj or {} for down_proj",
                            d.hidden, d.inter
                        ),
                    },
                },
            );
        }
    };
    // PEFT views B [d_out, r·E] as [d_out, r, E]: expert e's B_e[o, k] = B[o, k·E + e].
    let e_n = d.experts;
    let mut b_per = vec![0f32; e_n * d_out * r];
    for e in 0..e_n {
        for o in 0..d_out {
            for k in 0..r {
                b_per[(e * d_out + o) * r + k] = b.data[o * re + k * e_n + e];
            }
        }
    }
    Ok((
        which,
        ExpertLowRank {
            a: a.data,
            b: b_per,
            r,
            d_in,
            d_out,
            scale,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_names_parse() {
        let p = |n: &str| parse_name(n);
        assert_eq!(
            p("base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight").map(|x| (x.0, x.1)),
            Some((3, Target::Q))
        );
        assert_eq!(
            p("base_model.model.model.layers.0.mlp.experts.base_layer.lora_B.weight")
                .map(|x| (x.0, x.1)),
            Some((0, Target::Experts(1)))
        );
        assert!(p("base_model.model.model.layers.0.mlp.router.lora_A.weight").is_none());
        assert!(p("base_model.model.lm_head.lora_A.weight").is_none());
        assert!(p("base_model.model.model.layers.x.self_attn.q_proj.lora_A.weight").is_none());
        assert!(p("base_model.model.model.layers.0.self_attn.q_proj.lora_A.bias").is_none());
    }
}
