//! `gpt-oss logits`: runs the forward pass over given token ids and writes the f32 logits of every
//! position as a NumPy .npy file ([n_tokens, vocab_size], little-endian '<f4', C order), and/or
//! prints the top-K tokens per position as JSON. A debugging and golden-test tool: no sampling,
//! no tokenizer.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use gptoss_engine::{KvState, LanguageModel};
use gptoss_model::{LogitsFor, Model};

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint folder: original/, a Hugging Face folder, or the parent of a HF download.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Comma-separated token ids, e.g. 200006,17360,200008.
    #[arg(long, value_name = "IDS")]
    pub tokens: String,
    /// Where to write the logits, shape [n_tokens, vocab_size], as .npy.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also print, per position, a JSON array of the K highest logits.
    #[arg(long, value_name = "K")]
    pub top: Option<usize>,
    /// MXFP4 expert products: exact (f32, the default here, for comparing with a reference)
    /// or int8 (the fast path `run`/`chat`/`serve` use on AVX2 CPUs).
    #[arg(long, value_enum, default_value = "exact")]
    pub experts: crate::model_source::Experts,
    /// A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) applied on
    /// top of the model at run time (CPU only; docs/finetuning.md).
    #[arg(long, value_name = "DIR")]
    pub lora: Option<PathBuf>,
    #[command(flatten)]
    pub device: crate::device::DeviceArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.out.is_none() && args.top.is_none() {
        bail!("nothing to do: give --out FILE.npy and/or --top K");
    }
    let tokens = parse_tokens(&args.tokens)?;
    let mut model = Model::load(&args.model)
        .with_context(|| format!("cannot load the model in {}", args.model.display()))?;
    crate::model_source::apply_experts(&mut model, Some(args.experts));
    crate::model_source::apply_lora(&mut model, args.lora.as_deref())?;
    let vocab = model.config().vocab_size;
    let model = crate::device::place(
        model,
        args.device.device,
        &[("--lora", args.lora.is_some())],
    )?;
    let mut cache = model.new_cache(tokens.len());
    if tokens.len() > cache.max_tokens() {
        bail!(
            "{} tokens exceed the model's context of {}",
            tokens.len(),
            cache.max_tokens()
        );
    }
    let mut logits = Vec::new();
    model
        .forward(&tokens, &mut cache, LogitsFor::All, &mut logits)
        .context("forward pass failed")?;
    if let Some(out) = &args.out {
        write_npy_f32(out, &[tokens.len(), vocab], &logits)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    if let Some(k) = args.top {
        let stdout = std::io::stdout();
        let mut w = stdout.lock();
        for row in logits.chunks_exact(vocab) {
            writeln!(w, "{}", serde_json::Value::Array(top_k(row, k)))?;
        }
    }
    Ok(())
}

/// Parses "1,2, 3" into token ids.
fn parse_tokens(s: &str) -> anyhow::Result<Vec<u32>> {
    let ids: Vec<u32> = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .with_context(|| format!("--tokens: `{t}` is not a token id"))
        })
        .collect::<anyhow::Result<_>>()?;
    if ids.is_empty() {
        bail!("--tokens: no token ids given");
    }
    Ok(ids)
}

/// The `k` largest logits of `row`, highest first (lower id first on ties).
fn top_k(row: &[f32], k: usize) -> Vec<serde_json::Value> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    idx.into_iter()
        .take(k)
        .map(|i| serde_json::json!({"token": i, "logit": row[i]}))
        .collect()
}

/// Writes a version 1.0 .npy file of little-endian f32 in C order.
fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of
    // 64 and ended by a newline, as the format asks.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut buf = Vec::with_capacity(10 + header.len() + data.len() * 4);
    buf.extend_from_slice(b"\x93NUMPY\x01\x00");
    buf.extend_from_slice(&(header.len() as u16).to_le_bytes());
    buf.extend_from_slice(header.as_bytes());
    for v in data {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_reject() {
        assert_eq!(parse_tokens("1,2, 3").unwrap(), vec![1, 2, 3]);
        assert!(parse_tokens("1,x").unwrap_err().to_string().contains("`x`"));
        assert!(parse_tokens(" , ").is_err());
        assert!(parse_tokens("-1").is_err());
    }

    #[test]
    fn top_k_sorted() {
        let t = top_k(&[0.5, 3.0, -1.0, 3.0], 3);
        let ids: Vec<u64> = t.iter().map(|v| v["token"].as_u64().unwrap()).collect();
        assert_eq!(ids, vec![1, 3, 0]);
    }

    #[test]
    fn npy_header_layout() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        write_npy_f32(&p, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let b = std::fs::read(&p).unwrap();
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(b.len(), 10 + hlen + 24);
        assert_eq!(
            f32::from_le_bytes(b[10 + hlen + 20..].try_into().unwrap()),
            6.0
        );
    }
}
