//! Writing a trained adapter in PEFT's format, so PEFT and our `--lora` loader read it:
//! adapter_config.json (a LoraConfig: attention projections as target_modules, expert
//! parameters as target_parameters) and
//! adapter_model.safetensors (f32 lora_A / lora_B in PEFT's tensor names).

use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::json;

use super::{ExpertProj, Proj, TrainError, TrainLora};
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
