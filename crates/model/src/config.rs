//! `Config`: the model hyperparameters, with the original `config.json` names, parsed from either
//! the original `config.json` or a Hugging Face one (`num_local_experts`, `rope_scaling` or
//! `rope_parameters`, `rms_norm_eps`, `layer_types`, `quantization_config`). Validation of the
//! values themselves happens here; agreement with the tensors is checked by the loader.

use serde_json::Value;

use crate::error::LoadError;

/// SwiGLU alpha hard-coded by the reference; newer HF configs may carry `swiglu_alpha`.
pub const DEFAULT_SWIGLU_ALPHA: f32 = gptoss_backend::SWIGLU_ALPHA;

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub num_hidden_layers: usize,
    pub num_experts: usize,
    pub experts_per_token: usize,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub swiglu_limit: f32,
    pub head_dim: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub sliding_window: usize,
    pub initial_context_length: usize,
    pub rope_theta: f64,
    pub rope_scaling_factor: f64,
    pub rope_ntk_alpha: f64,
    pub rope_ntk_beta: f64,
    /// HF `rms_norm_eps` (the reference hard-codes 1e-5).
    pub rms_norm_eps: f32,
    /// HF `swiglu_alpha` (the reference hard-codes 1.702).
    pub swiglu_alpha: f32,
    /// HF `rope_scaling.truncate`: floor/ceil the YaRN ramp bounds. Absent in HF configs means
    /// true (transformers' default); the original config never truncates.
    pub rope_truncate: bool,
    /// HF `layer_types` ("sliding_attention" / "full_attention"); empty for the original config,
    /// where even layers slide.
    pub layer_types: Vec<String>,
}

fn bad(field: &str, problem: impl Into<String>) -> LoadError {
    LoadError::BadConfig {
        field: field.to_string(),
        problem: problem.into(),
    }
}

fn get<'a>(obj: &'a Value, names: &[&str]) -> Option<(&'a Value, String)> {
    names.iter().find_map(|n| {
        obj.get(*n)
            .filter(|v| !v.is_null())
            .map(|v| (v, n.to_string()))
    })
}

fn req_usize(obj: &Value, names: &[&str]) -> Result<usize, LoadError> {
    match get(obj, names) {
        None => Err(bad(names[0], "missing")),
        Some((v, name)) => as_usize(v, &name),
    }
}

fn opt_usize(obj: &Value, names: &[&str], default: usize) -> Result<usize, LoadError> {
    match get(obj, names) {
        None => Ok(default),
        Some((v, name)) => as_usize(v, &name),
    }
}

fn as_usize(v: &Value, name: &str) -> Result<usize, LoadError> {
    // Accept 4096.0 as well as 4096: some exporters write integers as floats.
    if let Some(u) = v.as_u64() {
        return usize::try_from(u).map_err(|_| bad(name, "too large"));
    }
    match v.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1e15 => Ok(f as usize),
        _ => Err(bad(
            name,
            format!("expected a non-negative integer, found {v}"),
        )),
    }
}

fn opt_f64(obj: &Value, names: &[&str], default: f64) -> Result<f64, LoadError> {
    match get(obj, names) {
        None => Ok(default),
        Some((v, name)) => match v.as_f64() {
            Some(f) if f.is_finite() => Ok(f),
            _ => Err(bad(&name, format!("expected a number, found {v}"))),
        },
    }
}

impl Config {
    /// Parses an original or Hugging Face `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Config, LoadError> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| bad("config.json", format!("not valid JSON: {e}")))?;
        if !v.is_object() {
            return Err(bad("config.json", "expected a JSON object"));
        }
        if let Some(q) = v.get("quantization_config").filter(|q| !q.is_null()) {
            let method = q
                .get("quant_method")
                .and_then(Value::as_str)
                .unwrap_or("<none>");
            if method != "mxfp4" {
                return Err(LoadError::UnsupportedQuantization {
                    problem: format!(
                        "quantization_config.quant_method is \"{method}\"; only \"mxfp4\" is supported"
                    ),
                });
            }
        }
        let hidden_size = req_usize(&v, &["hidden_size"])?;
        let num_attention_heads = req_usize(&v, &["num_attention_heads"])?;
        let head_dim = match get(&v, &["head_dim"]) {
            Some((x, n)) => as_usize(x, &n)?,
            None if num_attention_heads > 0 => hidden_size / num_attention_heads,
            None => 0,
        };
        let is_hf = v.get("num_local_experts").is_some() || v.get("model_type").is_some();
        // Rope: original keys, else HF rope_scaling / rope_parameters.
        let rope = get(&v, &["rope_scaling", "rope_parameters"]).map(|(r, _)| r);
        let rope_type = rope
            .and_then(|r| r.get("rope_type").or(r.get("type")))
            .and_then(Value::as_str);
        if let Some(t) = rope_type {
            if t != "yarn" && t != "default" {
                return Err(bad(
                    "rope_scaling.rope_type",
                    format!("\"{t}\" is not supported (yarn or default)"),
                ));
            }
        }
        let yarn = rope.filter(|_| rope_type != Some("default"));
        let rope_theta = match rope
            .and_then(|r| r.get("rope_theta"))
            .filter(|x| !x.is_null())
        {
            Some(_) => opt_f64(rope.unwrap_or(&Value::Null), &["rope_theta"], 150000.0)?,
            None => opt_f64(&v, &["rope_theta"], 150000.0)?,
        };
        let (factor, alpha, beta, ctx, truncate) = match yarn {
            Some(r) if r.is_object() => (
                opt_f64(r, &["factor"], 1.0)?,
                opt_f64(r, &["beta_slow"], 1.0)?,
                opt_f64(r, &["beta_fast"], 32.0)?,
                match get(r, &["original_max_position_embeddings"]) {
                    Some((x, n)) => as_usize(x, &n)?,
                    None => opt_usize(&v, &["initial_context_length"], 4096)?,
                },
                r.get("truncate").and_then(Value::as_bool).unwrap_or(true),
            ),
            _ if is_hf => (
                1.0,
                1.0,
                32.0,
                opt_usize(&v, &["initial_context_length"], 4096)?,
                false,
            ),
            _ => (
                opt_f64(&v, &["rope_scaling_factor"], 32.0)?,
                opt_f64(&v, &["rope_ntk_alpha"], 1.0)?,
                opt_f64(&v, &["rope_ntk_beta"], 32.0)?,
                opt_usize(&v, &["initial_context_length"], 4096)?,
                false,
            ),
        };
        let layer_types = match v.get("layer_types") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|t| match t.as_str() {
                    Some(s @ ("sliding_attention" | "full_attention")) => Ok(s.to_string()),
                    _ => Err(bad("layer_types", format!("unknown layer type {t}"))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(Value::Null) | None => vec![],
            Some(other) => {
                return Err(bad(
                    "layer_types",
                    format!("expected a list, found {other}"),
                ))
            }
        };
        let c = Config {
            num_hidden_layers: req_usize(&v, &["num_hidden_layers"])?,
            num_experts: req_usize(&v, &["num_experts", "num_local_experts"])?,
            experts_per_token: req_usize(&v, &["experts_per_token", "num_experts_per_tok"])?,
            vocab_size: req_usize(&v, &["vocab_size"])?,
            hidden_size,
            intermediate_size: req_usize(&v, &["intermediate_size"])?,
            swiglu_limit: opt_f64(&v, &["swiglu_limit"], 7.0)? as f32,
            head_dim,
            num_attention_heads,
            num_key_value_heads: req_usize(&v, &["num_key_value_heads"])?,
            sliding_window: opt_usize(&v, &["sliding_window"], 128)?,
            initial_context_length: ctx,
            rope_theta,
            rope_scaling_factor: factor,
            rope_ntk_alpha: alpha,
            rope_ntk_beta: beta,
            rms_norm_eps: opt_f64(&v, &["rms_norm_eps"], 1e-5)? as f32,
            swiglu_alpha: opt_f64(&v, &["swiglu_alpha"], DEFAULT_SWIGLU_ALPHA as f64)? as f32,
            rope_truncate: truncate,
            layer_types,
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks the values are usable (positive sizes, divisible head counts, ...).
    pub fn validate(&self) -> Result<(), LoadError> {
        let positive = [
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_experts", self.num_experts),
            ("experts_per_token", self.experts_per_token),
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("head_dim", self.head_dim),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("initial_context_length", self.initial_context_length),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(bad(field, "must be positive"));
            }
        }
        // Guard against absurd sizes before anything multiplies them.
        for (field, value) in [
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_experts", self.num_experts),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("head_dim", self.head_dim),
            ("num_attention_heads", self.num_attention_heads),
            ("vocab_size", self.vocab_size),
        ] {
            if value > 1 << 24 {
                return Err(bad(field, format!("{value} is implausibly large")));
            }
        }
        if self.experts_per_token > self.num_experts {
            return Err(bad(
                "experts_per_token",
                format!(
                    "{} exceeds num_experts {}",
                    self.experts_per_token, self.num_experts
                ),
            ));
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(bad(
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads {}",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(bad("head_dim", "must be even (half-split RoPE)"));
        }
        if self.rope_theta.partial_cmp(&1.0) != Some(std::cmp::Ordering::Greater) {
            return Err(bad("rope_theta", "must be > 1"));
        }
        if self.rope_scaling_factor.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return Err(bad("rope_scaling_factor", "must be positive"));
        }
        if self.rope_scaling_factor > 1.0
            && !(self.rope_ntk_alpha > 0.0 && self.rope_ntk_beta > 0.0)
        {
            return Err(bad("rope_ntk_beta", "YaRN betas must be positive"));
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps < 0.0 {
            return Err(bad("rms_norm_eps", "must be non-negative"));
        }
        if self.swiglu_limit.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return Err(bad("swiglu_limit", "must be positive"));
        }
        if !self.layer_types.is_empty() && self.layer_types.len() != self.num_hidden_layers {
            return Err(bad(
                "layer_types",
                format!(
                    "has {} entries for {} layers",
                    self.layer_types.len(),
                    self.num_hidden_layers
                ),
            ));
        }
        Ok(())
    }

    /// Longest context the RoPE scaling was trained for: initial_context_length × factor.
    pub fn max_context(&self) -> usize {
        (self.initial_context_length as f64 * self.rope_scaling_factor.max(1.0)) as usize
    }

    /// The YaRN rotary tables' generator for these hyperparameters.
    pub fn yarn_rope(&self) -> gptoss_backend::YarnRope {
        gptoss_backend::YarnRope::new(
            self.head_dim,
            self.rope_theta,
            self.rope_scaling_factor,
            self.initial_context_length as f64,
            self.rope_ntk_alpha,
            self.rope_ntk_beta,
            self.rope_truncate,
        )
    }

    /// Whether layer `layer_idx` uses the sliding window (even layers; HF `layer_types` if given).
    pub fn is_sliding(&self, layer_idx: usize) -> bool {
        match self.layer_types.get(layer_idx) {
            Some(t) => t == "sliding_attention",
            None => layer_idx.is_multiple_of(2),
        }
    }

    /// Width of the query projection (num_attention_heads × head_dim).
    pub fn q_dim(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }

    /// Width of the key (and value) projection (num_key_value_heads × head_dim).
    pub fn kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// The original-layout `config.json` text for this config.
    pub fn to_original_json(&self) -> String {
        serde_json::json!({
            "num_hidden_layers": self.num_hidden_layers,
            "num_experts": self.num_experts,
            "experts_per_token": self.experts_per_token,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "swiglu_limit": self.swiglu_limit,
            "head_dim": self.head_dim,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "sliding_window": self.sliding_window,
            "initial_context_length": self.initial_context_length,
            "rope_theta": self.rope_theta,
            "rope_scaling_factor": self.rope_scaling_factor,
            "rope_ntk_alpha": self.rope_ntk_alpha,
            "rope_ntk_beta": self.rope_ntk_beta,
        })
        .to_string()
    }

    /// The Hugging Face `config.json` text for this config (`mxfp4`: with quantization_config).
    pub fn to_hf_json(&self, mxfp4: bool) -> String {
        let layer_types: Vec<&str> = (0..self.num_hidden_layers)
            .map(|i| {
                if self.is_sliding(i) {
                    "sliding_attention"
                } else {
                    "full_attention"
                }
            })
            .collect();
        let mut v = serde_json::json!({
            "architectures": ["GptOssForCausalLM"],
            "model_type": "gpt_oss",
            "attention_bias": true,
            "experts_per_token": self.experts_per_token,
            "num_experts_per_tok": self.experts_per_token,
            "num_local_experts": self.num_experts,
            "head_dim": self.head_dim,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "initial_context_length": self.initial_context_length,
            "max_position_embeddings": self.max_context(),
            "layer_types": layer_types,
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "num_key_value_heads": self.num_key_value_heads,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_scaling": {
                "beta_fast": self.rope_ntk_beta,
                "beta_slow": self.rope_ntk_alpha,
                "factor": self.rope_scaling_factor,
                "original_max_position_embeddings": self.initial_context_length,
                "rope_type": "yarn",
                "truncate": self.rope_truncate,
            },
            "rope_theta": self.rope_theta,
            "sliding_window": self.sliding_window,
            "swiglu_limit": self.swiglu_limit,
            "tie_word_embeddings": false,
            "vocab_size": self.vocab_size,
        });
        if mxfp4 {
            v["quantization_config"] = serde_json::json!({
                "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                           "model.embed_tokens", "lm_head"],
                "quant_method": "mxfp4"
            });
        }
        v.to_string()
    }

    /// gpt-oss-20b's hyperparameters (reference §1.1).
    pub fn gpt_oss_20b() -> Config {
        Config {
            num_hidden_layers: 24,
            num_experts: 32,
            experts_per_token: 4,
            vocab_size: 201088,
            hidden_size: 2880,
            intermediate_size: 2880,
            swiglu_limit: 7.0,
            head_dim: 64,
            num_attention_heads: 64,
            num_key_value_heads: 8,
            sliding_window: 128,
            initial_context_length: 4096,
            rope_theta: 150000.0,
            rope_scaling_factor: 32.0,
            rope_ntk_alpha: 1.0,
            rope_ntk_beta: 32.0,
            rms_norm_eps: 1e-5,
            swiglu_alpha: DEFAULT_SWIGLU_ALPHA,
            rope_truncate: false,
            layer_types: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL_120B: &str = r#"{"num_hidden_layers": 36, "num_experts": 128, "experts_per_token": 4, "vocab_size": 201088,
   "hidden_size": 2880, "intermediate_size": 2880, "swiglu_limit": 7.0, "head_dim": 64,
   "num_attention_heads": 64, "num_key_value_heads": 8, "sliding_window": 128,
   "initial_context_length": 4096, "rope_theta": 150000, "rope_scaling_factor": 32.0,
   "rope_ntk_alpha": 1, "rope_ntk_beta": 32}"#;

    #[test]
    fn parses_original_120b() {
        let c = Config::from_json(ORIGINAL_120B.as_bytes()).unwrap();
        assert_eq!(c.num_hidden_layers, 36);
        assert_eq!(c.num_experts, 128);
        assert_eq!(c.max_context(), 131072);
        assert!(c.is_sliding(0) && !c.is_sliding(1) && c.is_sliding(34));
        assert!(!c.rope_truncate);
    }

    #[test]
    fn hf_json_roundtrips_and_matches_original() {
        let mut c = Config::gpt_oss_20b();
        let orig = Config::from_json(c.to_original_json().as_bytes()).unwrap();
        assert_eq!(orig, c);
        let hf = Config::from_json(c.to_hf_json(true).as_bytes()).unwrap();
        c.layer_types = hf.layer_types.clone();
        assert_eq!(hf, c);
    }

    #[test]
    fn hf_rope_parameters_and_truncate_default() {
        let j = r#"{"model_type":"gpt_oss","num_hidden_layers":2,"num_local_experts":4,"num_experts_per_tok":2,
            "vocab_size":10,"hidden_size":64,"intermediate_size":64,"head_dim":16,"num_attention_heads":4,
            "num_key_value_heads":2,"sliding_window":8,
            "rope_parameters":{"rope_type":"yarn","rope_theta":5000.0,"factor":8.0,"beta_fast":16,"beta_slow":2,
            "original_max_position_embeddings":512}}"#;
        let c = Config::from_json(j.as_bytes()).unwrap();
        assert_eq!(
            (
                c.rope_theta,
                c.rope_scaling_factor,
                c.rope_ntk_beta,
                c.rope_ntk_alpha
            ),
            (5000.0, 8.0, 16.0, 2.0)
        );
        assert_eq!(c.initial_context_length, 512);
        assert!(
            c.rope_truncate,
            "transformers truncates when the key is absent"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = Config::from_json(br#"{"num_hidden_layers": 2}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hidden_size"), "{e}");
        let bad = ORIGINAL_120B.replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 7");
        let e = Config::from_json(bad.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("num_key_value_heads"), "{e}");
        let bad = ORIGINAL_120B.replace("\"vocab_size\": 201088", "\"vocab_size\": -3");
        let e = Config::from_json(bad.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("vocab_size"), "{e}");
        let q = r#"{"quantization_config":{"quant_method":"gptq"}}"#;
        assert!(matches!(
            Config::from_json(q.as_bytes()),
            Err(LoadError::UnsupportedQuantization { .. })
        ));
        assert!(Config::from_json(b"not json").is_err());
    }
}
