//! OUT/checkpoint: the adapter so far (PEFT format), AdamW's moments and `trainer_state.json`
//! (the step reached and every setting that fixes the run), written whole to a temporary
//! folder and renamed, so an interrupted write never leaves a half checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use gptoss_model::train::{load_optimizer, save_optimizer, AdamW, TrainLora};
use gptoss_model::Model;
use serde::{Deserialize, Serialize};

use super::{Args, Plan, Targets};

const STATE_FILE: &str = "trainer_state.json";

/// What a resumed run must share with the interrupted one, and the step it reached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub step: u64,
    pub total_steps: usize,
    pub data_fnv1a: String,
    pub conversations: usize,
    pub seed: u64,
    pub rank: usize,
    pub alpha: f64,
    pub targets: String,
    pub expert_layers: Vec<usize>,
    pub lr: f64,
    pub warmup: f64,
    pub weight_decay: f64,
    pub epochs: usize,
    pub batch_tokens: usize,
    pub holdout: f64,
}

impl TrainerState {
    pub fn new(args: &Args, expert_layers: &[usize], data: &[u8], plan: &Plan) -> TrainerState {
        TrainerState {
            step: 0,
            total_steps: plan.steps(),
            data_fnv1a: format!("{:016x}", fnv1a(data)),
            conversations: data.split(|&b| b == b'\n').count(),
            seed: args.seed,
            rank: args.rank,
            alpha: args.alpha,
            targets: match args.targets {
                Targets::Attn => "attn",
                Targets::AttnExperts => "attn+experts",
            }
            .into(),
            expert_layers: expert_layers.to_vec(),
            lr: args.lr,
            warmup: args.warmup,
            weight_decay: args.weight_decay,
            epochs: args.epochs,
            batch_tokens: args.batch_tokens,
            holdout: args.holdout,
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

pub fn dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

/// Writes OUT/checkpoint for the step `opt` has reached.
pub fn save(lora: &TrainLora, opt: &AdamW, out: &Path, state: &TrainerState) -> anyhow::Result<()> {
    let final_dir = dir(out);
    let tmp = out.join("checkpoint.tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    lora.save(&tmp, "gpt-oss finetune checkpoint")?;
    save_optimizer(opt, &tmp)?;
    let state = TrainerState {
        step: opt.steps(),
        ..state.clone()
    };
    let path = tmp.join(STATE_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(&state)?)
        .with_context(|| format!("writing {}", path.display()))?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir)
            .with_context(|| format!("removing {}", final_dir.display()))?;
    }
    std::fs::rename(&tmp, &final_dir)
        .with_context(|| format!("renaming {} to {}", tmp.display(), final_dir.display()))?;
    Ok(())
}

/// The adapter and optimizer of OUT/checkpoint, refused when its settings differ from this
/// run's (each differing setting named).
pub fn resume(model: &Model, out: &Path, now: &TrainerState) -> anyhow::Result<(TrainLora, AdamW)> {
    let d = dir(out);
    let path = d.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "--resume: no checkpoint at {} (a run writes one every --save-every steps)",
            path.display()
        )
    })?;
    let saved: TrainerState =
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))?;
    let a = serde_json::to_value(TrainerState {
        step: 0,
        ..saved.clone()
    })?;
    let b = serde_json::to_value(now)?;
    let mut differ = vec![];
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for (k, va) in a {
            if b.get(k) != Some(va) {
                differ.push(format!("{k}: {va} in the checkpoint, {} now", b[k]));
            }
        }
    }
    if !differ.is_empty() {
        bail!(
            "--resume: {} was written with other settings ({})",
            d.display(),
            differ.join("; ")
        );
    }
    let adapter = model.load_lora(&d)?;
    let lora = TrainLora::from_adapter(&adapter, model.config())?;
    let mut opt = AdamW::new(now.lr, now.weight_decay);
    load_optimizer(&mut opt, &lora.params, &d)?;
    if opt.steps() != saved.step {
        bail!(
            "--resume: {} says step {}, its optimizer step {}",
            d.display(),
            saved.step,
            opt.steps()
        );
    }
    eprintln!("resuming from step {} of {}", saved.step, saved.total_steps);
    Ok((lora, opt))
}
