//! Writing a trained adapter in PEFT's format, so PEFT and our `--lora` loader read it:
//! adapter_config.json (a LoraConfig: attention projections as target_modules, expert
//! parameters as target_parameters) and
//! adapter_model.safetensors (f32 lora_A / lora_B in PEFT's tensor names).

use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::json;

use super::{AdamW, ExpertProj, LoraSet, Proj, TrainError, TrainLora};
use crate::lora::{ADAPTER_CONFIG, ADAPTER_WEIGHTS};

pub(super) fn save(lora: &TrainLora, dir: &Path, base: &str) -> Result<(), TrainError> {
    let err = |path: &Path| {
        let path = path.display().to_string();
        move |e: String| TrainError::Save {
            path: path.clone(),
            problem: e,
        }
    };
    std::fs::create_dir_all(dir).map_err(|e| err(dir)(e.to_string()))?;
    let modules: Vec<&str> = Proj::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| lora.params.layers.iter().any(|l| l[*i].is_some()))
        .map(|(_, p)| p.module())
        .collect();
    // gate_up_proj before down_proj: PEFT nests the later one outside (LoraSet::named).
    let mut params = vec![];
    for (i, l) in lora.params.experts.iter().enumerate() {
        for (w, p) in ExpertProj::ALL.iter().zip(l) {
            if p.is_some() {
                let name = match w {
                    ExpertProj::GateUp => "gate_up_proj",
                    ExpertProj::Down => "down_proj",
                };
                params.push(format!("{i}.mlp.experts.{name}"));
            }
        }
    }
    let params = if params.is_empty() {
        serde_json::Value::Null
    } else {
        json!(params)
    };
    let config = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": lora.r,
        "lora_alpha": lora.alpha,
        "use_rslora": lora.rslora,
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": false,
        "init_lora_weights": true,
        "inference_mode": true,
        "target_modules": modules,
        "target_parameters": params,
        "modules_to_save": null,
        "use_dora": false,
    });
    let cfg_path = dir.join(ADAPTER_CONFIG);
    let text = serde_json::to_string_pretty(&config).map_err(|e| err(&cfg_path)(e.to_string()))?;
    std::fs::write(&cfg_path, text).map_err(|e| err(&cfg_path)(e.to_string()))?;

    let st_path = dir.join(ADAPTER_WEIGHTS);
    let named = lora.params.named();
    let bytes: Vec<Vec<u8>> = named
        .iter()
        .map(|(_, _, v)| bytemuck::cast_slice::<f32, u8>(v).to_vec())
        .collect();
    let views = named
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            TensorView::new(Dtype::F32, shape.to_vec(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| err(&st_path)(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out = safetensors::serialize(views, None).map_err(|e| err(&st_path)(e.to_string()))?;
    std::fs::write(&st_path, out).map_err(|e| err(&st_path)(e.to_string()))?;
    Ok(())
}

/// The optimizer's file in a training checkpoint.
pub const OPTIMIZER_STATE: &str = "optimizer.safetensors";

/// Writes AdamW's moments (`m.I`, `v.I` f32, in `LoraSet::named`'s order) and its step count
/// (metadata `step`) to `dir/optimizer.safetensors`.
pub fn save_optimizer(opt: &AdamW, dir: &Path) -> Result<(), TrainError> {
    let path = dir.join(OPTIMIZER_STATE);
    let err = |e: String| TrainError::Save {
        path: path.display().to_string(),
        problem: e,
    };
    let (step, m, v) = opt.state();
    let mut named = vec![];
    for (kind, moments) in [("m", m), ("v", v)] {
        for (i, x) in moments.iter().enumerate() {
            named.push((format!("{kind}.{i}"), bytemuck::cast_slice::<f32, u8>(x)));
        }
    }
    let views = named
        .iter()
        .map(|(name, bytes)| {
            TensorView::new(Dtype::F32, vec![bytes.len() / 4], bytes)
                .map(|t| (name.clone(), t))
                .map_err(|e| err(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let meta = std::collections::HashMap::from([("step".to_string(), step.to_string())]);
    let out = safetensors::serialize(views, Some(meta)).map_err(|e| err(e.to_string()))?;
    std::fs::write(&path, out).map_err(|e| err(e.to_string()))
}

/// Restores AdamW from `dir/optimizer.safetensors` for the tensors of `params`.
pub fn load_optimizer(opt: &mut AdamW, params: &LoraSet, dir: &Path) -> Result<(), TrainError> {
    let path = dir.join(OPTIMIZER_STATE);
    let err = |e: String| TrainError::Load {
        path: path.display().to_string(),
        problem: e,
    };
    let bytes = std::fs::read(&path).map_err(|e| err(e.to_string()))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| err(e.to_string()))?;
    let step = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("step"))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| err("no step count in its metadata".into()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| err(e.to_string()))?;
    let count = params.named().len();
    let mut moments = [vec![], vec![]];
    for (kind, out) in ["m", "v"].iter().zip(moments.iter_mut()) {
        for i in 0..count {
            let name = format!("{kind}.{i}");
            let t = st
                .tensor(&name)
                .map_err(|_| err(format!("no tensor {name}")))?;
            if t.dtype() != Dtype::F32 {
                return Err(err(format!("{name} is {:?}, not F32", t.dtype())));
            }
            out.push(
                t.data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            );
        }
    }
    let [m, v] = moments;
    opt.restore(params, step, m, v)
}
