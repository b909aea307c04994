//! `gpt-oss serve`: the OpenAI-compatible HTTP server (Chat Completions,
//! Responses, models, health). This file only turns flags into the server's
//! settings, loads the model, binds the socket and waits for SIGINT/SIGTERM;
//! everything HTTP lives in `gptoss-server`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use gptoss_chat::Effort;
use gptoss_server::store::{Limits, ResponseStore};
use gptoss_server::{Engine, ModelFacts, SchedulerConfig, ServedAdapter, ServerConfig};

use crate::model_source;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Checkpoint folder (an `original/` folder or a Hugging Face download);
    /// the built-in demo model when absent.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// MXFP4 expert products: int8 (fast; the default where the CPU has AVX2) or exact (f32).
    #[arg(long, value_enum)]
    pub experts: Option<model_source::Experts>,
    /// Quantize the attention and unembedding weights to 8 bits at load (Q8_0: ~1.1 GB less to
    /// read per token on gpt-oss-20b, faster decode, slightly less accurate; docs/numerics.md).
    #[arg(long)]
    pub weights_q8: bool,
    /// A PEFT LoRA adapter (CPU only; docs/finetuning.md). NAME=DIR (repeatable): requests
    /// choose it with `"model": "<model-name>:NAME"`, listed in /v1/models; NAME is letters,
    /// digits, `.`, `_` and `-`. A bare DIR (at most one): applied to every request that names
    /// no adapter. Every adapter is checked against the model before the server listens.
    #[arg(long, value_name = "[NAME=]DIR", value_parser = parse_lora)]
    pub lora: Vec<LoraArg>,
    #[command(flatten)]
    pub device: crate::device::DeviceArg,
    /// Address to bind. The default serves this machine only.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// TCP port (0 picks a free one and prints it).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Require the key on every request except /health (`Authorization: Bearer KEY`
    /// or `x-api-key: KEY`).
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Key that seals the chain of thought handed to stateless clients
    /// (`reasoning.encrypted_content`, Anthropic thinking signatures): 64 hex digits or a
    /// passphrase of 32+ characters. Give replicas the same key; default: random per start.
    #[arg(
        long,
        value_name = "KEY",
        env = "GPT_OSS_REASONING_KEY",
        hide_env_values = true
    )]
    pub reasoning_key: Option<String>,
    /// Most requests generating at once (each holds one KV cache of --context tokens).
    #[arg(long, default_value_t = 4)]
    pub max_concurrency: usize,
    /// Most requests waiting for a free slot; more get HTTP 429.
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
    /// KV cache size per request in tokens (prompt plus output).
    #[arg(long, default_value_t = 8192)]
    pub context: usize,
    /// Reasoning effort for requests that name none: none, low, medium or high.
    #[arg(long, default_value = "medium", value_parser = parse_effort)]
    pub effort: Effort,
    /// Model id reported by /v1/models and accepted in requests (default: from the folder name).
    #[arg(long, value_name = "ID")]
    pub model_name: Option<String>,
    /// Seconds in-flight requests may run on after SIGINT/SIGTERM before they are cut off.
    #[arg(long, default_value_t = 10)]
    pub shutdown_grace: u64,
    /// Where /v1/responses keeps `store: true` responses for previous_response_id: an SQLite
    /// file (kept across restarts; replicas on one host may share it), or `none` (memory, lost
    /// at exit). Default: $XDG_DATA_HOME/gpt-oss/responses.sqlite3, else
    /// ~/.local/share/gpt-oss/responses.sqlite3.
    #[arg(long, value_name = "PATH|none")]
    pub store: Option<PathBuf>,
    /// Size bound of the stored responses in MiB; over it the oldest are dropped.
    #[arg(long, value_name = "MB", default_value_t = 256)]
    pub store_max_mb: u64,
    /// Most stored responses; over it the oldest are dropped.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub store_max_responses: u64,
    /// Built-in tools `/v1/responses` runs server-side when a request lists
    /// them (browser_search / web_search, code_interpreter, handoff).
    #[command(flatten)]
    pub builtin: crate::tool_args::BuiltinToolArgs,
    /// Remote MCP servers for `/v1/responses` tools of type `mcp`: on lets the server connect
    /// to the URLs requests name (network use); off leaves those tools out with a warning.
    #[arg(long, value_enum, default_value = "off")]
    pub mcp: crate::tool_args::Switch,
    /// Time limit of one MCP request (initialize, tools/list, tools/call), seconds.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub mcp_timeout: f64,
}

/// Most named adapters one server holds (each is kept in memory as f32).
pub const MAX_ADAPTERS: usize = 32;

/// One `--lora`: `NAME=DIR` or a bare `DIR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoraArg {
    /// None: the adapter of every request that names none.
    pub name: Option<String>,
    pub dir: PathBuf,
}

/// Whether `name` may follow `<model>:` (and never reads as a path or Ollama's default tag).
fn valid_adapter_name(name: &str) -> bool {
    !name.is_empty()
        && name != "latest"
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `NAME=DIR` when the text before the first `=` is a valid name, else a bare DIR (a folder
/// whose name holds `=` is still reachable as `./a=b`, `/` not being a name character).
fn parse_lora(s: &str) -> Result<LoraArg, String> {
    if let Some((name, dir)) = s.split_once('=') {
        if valid_adapter_name(name) {
            if dir.is_empty() {
                return Err(format!("`{s}`: no folder after `{name}=`"));
            }
            return Ok(LoraArg {
                name: Some(name.to_string()),
                dir: PathBuf::from(dir),
            });
        }
        if name == "latest" {
            return Err("`latest` cannot name an adapter: Ollama clients add `:latest` to mean the model itself".into());
        }
    }
    if s.is_empty() {
        return Err("an empty folder name".into());
    }
    Ok(LoraArg {
        name: None,
        dir: PathBuf::from(s),
    })
}

/// Checks the `--lora` list (one bare DIR at most, unique names, at most [`MAX_ADAPTERS`]),
/// then loads and validates every adapter against `model`: the unnamed one applied to every
/// request, the named ones held for the requests that choose them. Any problem stops the start
/// with the adapter's name, folder and what is wrong.
fn apply_loras(
    model: &mut gptoss_model::Model,
    loras: &[LoraArg],
) -> anyhow::Result<Vec<ServedAdapter>> {
    let unnamed: Vec<&LoraArg> = loras.iter().filter(|l| l.name.is_none()).collect();
    if unnamed.len() > 1 {
        anyhow::bail!(
            "--lora DIR without a name is given {} times: only one adapter applies to every request; name the others (--lora NAME=DIR)",
            unnamed.len()
        );
    }
    let named = loras.len() - unnamed.len();
    if named > MAX_ADAPTERS {
        anyhow::bail!("{named} named adapters: at most {MAX_ADAPTERS} are served at once");
    }
    let mut served: Vec<ServedAdapter> = Vec::new();
    for lora in loras {
        let Some(name) = &lora.name else {
            model_source::apply_lora(model, Some(&lora.dir))?;
            continue;
        };
        if served.iter().any(|s| &s.name == name) {
            anyhow::bail!("--lora {name}=...: the name `{name}` is given twice");
        }
        let id = model_source::add_lora(model, &lora.dir)
            .with_context(|| format!("adapter `{name}` ({})", lora.dir.display()))?;
        served.push(ServedAdapter {
            name: name.clone(),
            lora: id,
        });
    }
    Ok(served)
}

fn parse_effort(s: &str) -> Result<Effort, String> {
    s.parse::<Effort>().map_err(|e| e.to_string())
}

/// The id to report: `--model-name`, else the checkpoint folder's name (its
/// parent's for an `original/` folder), else `gpt-oss-demo`.
fn model_id(args: &Args) -> String {
    if let Some(name) = &args.model_name {
        return name.clone();
    }
    let Some(dir) = &args.model else {
        return "gpt-oss-demo".to_string();
    };
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.clone());
    let name = |p: &std::path::Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    match name(&dir) {
        Some(n) if n == "original" || n == "metal" => dir.parent().and_then(name).unwrap_or(n),
        Some(n) => n,
        None => "gpt-oss".to_string(),
    }
}

/// The default store file: `$XDG_DATA_HOME/gpt-oss/responses.sqlite3` (an
/// absolute `XDG_DATA_HOME` only, as the XDG spec says), else under
/// `$HOME/.local/share`, else (Windows) `%LOCALAPPDATA%`.
fn default_store_path(
    xdg_data_home: Option<OsString>,
    home: Option<OsString>,
    local_app_data: Option<OsString>,
) -> Option<PathBuf> {
    let dir = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    dir(xdg_data_home)
        .filter(|p| p.is_absolute())
        .or_else(|| dir(home).map(|h| h.join(".local").join("share")))
        .or_else(|| dir(local_app_data))
        .map(|d| d.join("gpt-oss").join("responses.sqlite3"))
}

/// Open the response store that `--store` names (before the model loads, so
/// a bad file fails the start at once).
fn open_store(args: &Args) -> anyhow::Result<ResponseStore> {
    if args.store_max_mb == 0 || args.store_max_responses == 0 {
        anyhow::bail!("--store-max-mb and --store-max-responses must be at least 1");
    }
    let limits = Limits {
        max_responses: args.store_max_responses,
        max_bytes: args.store_max_mb.saturating_mul(1024 * 1024),
    };
    let path = match &args.store {
        Some(p) if p == Path::new("none") => return Ok(ResponseStore::memory(limits)),
        Some(p) => p.clone(),
        None => default_store_path(
            std::env::var_os("XDG_DATA_HOME"),
            std::env::var_os("HOME"),
            std::env::var_os("LOCALAPPDATA"),
        )
        .context("no data folder for the response store ($XDG_DATA_HOME and $HOME are unset): pass --store PATH or --store none")?,
    };
    Ok(ResponseStore::sqlite(&path, limits)?)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.max_concurrency == 0 {
        anyhow::bail!("--max-concurrency must be at least 1");
    }
    if args.context == 0 {
        anyhow::bail!("--context must be at least 1");
    }
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .or_else(|_| format!("[{}]:{}", args.host, args.port).parse())
        .with_context(|| format!("--host {:?} is not an IP address", args.host))?;
    let tools = args.builtin.kit(None)?;
    if !(args.mcp_timeout.is_finite() && args.mcp_timeout > 0.0) {
        anyhow::bail!("--mcp-timeout must be a positive number of seconds");
    }
    let mcp = (args.mcp == crate::tool_args::Switch::On).then(|| {
        let call_timeout = Duration::from_secs_f64(args.mcp_timeout.min(86_400.0));
        gptoss_server::mcp_client::McpSettings {
            call_timeout,
            connect_timeout: call_timeout.min(Duration::from_secs(10)),
        }
    });
    let reasoning_key = args
        .reasoning_key
        .as_deref()
        .map(gptoss_server::sealed::Sealer::from_text)
        .transpose()
        .context("--reasoning-key")?;
    let response_store = open_store(&args)?;
    let mut model = model_source::load_model(args.model.as_deref())?;
    model_source::apply_experts(&mut model, args.experts);
    model_source::apply_weights_q8(&mut model, args.weights_q8)?;
    let adapters = apply_loras(&mut model, &args.lora)?;
    let model = crate::device::place(
        model,
        args.device.device,
        &[
            ("--weights-q8", args.weights_q8),
            ("--lora", !args.lora.is_empty()),
        ],
    )?;
    let max_context = model.config().max_context();
    let model_facts = model_facts(model.config(), args.model.as_deref());
    if args.context > max_context {
        anyhow::bail!(
            "--context {} is larger than the model's maximum context of {max_context} tokens",
            args.context
        );
    }
    let scheduler = SchedulerConfig {
        max_concurrency: args.max_concurrency,
        max_queue: args.max_queue,
        context_tokens: args.context,
    };
    let engine = Engine::spawn(model, scheduler).context("cannot start the engine")?;
    let config = ServerConfig {
        model_id: model_id(&args),
        api_key: args.api_key.clone().filter(|k| !k.is_empty()),
        default_effort: args.effort,
        tools,
        reasoning_key,
        response_store,
        model_facts: Some(model_facts),
        mcp,
        adapters,
    };
    let model_name = config.model_id.clone();
    for a in &config.adapters {
        eprintln!(
            "adapter `{}`: requests name it as model `{model_name}:{}`",
            a.name, a.name
        );
    }
    let store = config.response_store.describe();
    let app = gptoss_server::router(engine.clone(), config);

    // Kept to end the engine thread before the process exits.
    let engine_at_exit = engine.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr().unwrap_or(addr);
        eprintln!(
            "serving {model_name} on http://{local} (OpenAI API at http://{local}/v1; {} slots of {} tokens)",
            args.max_concurrency, engine.info().context_tokens
        );
        eprintln!("responses stored {store}");
        gptoss_server::serve(listener, app, engine, shutdown_signal(), Duration::from_secs(args.shutdown_grace))
            .await
            .context("the server failed")?;
        Ok::<(), anyhow::Error>(())
    });
    // The engine thread drops the model (a GPU device, its memory) before
    // `exit` tears the driver down: a driver unloaded under a live device
    // can crash at exit (seen with Mesa's lavapipe).
    drop(runtime);
    if !engine_at_exit.shutdown(Duration::from_secs(10)) {
        eprintln!("warning: the engine did not stop within 10 s");
    }
    served?;
    eprintln!("server stopped");
    Ok(())
}

/// Weights of a gpt-oss checkpoint with this config: embedding and
/// unembedding, per block the attention (q/k/v/o with biases, sinks, norm)
/// and the mixture of experts (router, every expert's two matrices with
/// biases, norm), and the final norm. 20.9B for gpt-oss-20b, as Ollama says.
/// Returns (all weights, the experts' matrix weights stored as MXFP4).
fn parameter_count(c: &gptoss_model::Config) -> (u64, u64) {
    let (h, v, e, i) = (
        c.hidden_size as u64,
        c.vocab_size as u64,
        c.num_experts as u64,
        c.intermediate_size as u64,
    );
    let (q, kv) = (c.q_dim() as u64, c.kv_dim() as u64);
    let attention =
        (h * q + q) + 2 * (h * kv + kv) + (q * h + h) + c.num_attention_heads as u64 + h;
    let experts = (h * e + e) + e * ((2 * i * h + 2 * i) + (i * h + h)) + h;
    let layers = c.num_hidden_layers as u64;
    (
        2 * v * h + layers * (attention + experts) + h,
        layers * e * 3 * i * h,
    )
}

/// What `/api/show` and `/api/tags` report about the checkpoint; the size is
/// that of the folder's `*.safetensors` files, or for the built-in demo
/// model what its weights take as a checkpoint (MXFP4 experts: 4 bits plus
/// a scale byte per 32; the rest bf16).
fn model_facts(c: &gptoss_model::Config, dir: Option<&std::path::Path>) -> ModelFacts {
    let file_bytes = dir
        .and_then(|d| std::fs::read_dir(d).ok())
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let (parameters, mxfp4) = parameter_count(c);
    let file_bytes = if file_bytes > 0 {
        file_bytes
    } else {
        mxfp4 * 17 / 32 + (parameters - mxfp4) * 2
    };
    ModelFacts {
        parameter_count: parameters,
        block_count: c.num_hidden_layers,
        embedding_length: c.hidden_size,
        head_count: c.num_attention_heads,
        head_count_kv: c.num_key_value_heads,
        expert_count: c.num_experts,
        expert_used_count: c.experts_per_token,
        sliding_window: c.sliding_window,
        context_length: c.max_context(),
        file_bytes,
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_store_path_follows_xdg() {
        let os = |s: &str| Some(OsString::from(s));
        let want = |s: &str| Some(PathBuf::from(s).join("gpt-oss").join("responses.sqlite3"));
        assert_eq!(
            default_store_path(os("/data"), os("/home/u"), None),
            want("/data")
        );
        // A relative or empty XDG_DATA_HOME is ignored.
        assert_eq!(
            default_store_path(os("rel"), os("/home/u"), None),
            want("/home/u/.local/share")
        );
        assert_eq!(
            default_store_path(os(""), os("/home/u"), None),
            want("/home/u/.local/share")
        );
        assert_eq!(
            default_store_path(None, None, os("C:/AppData")),
            want("C:/AppData")
        );
        assert_eq!(default_store_path(None, None, None), None);
    }

    #[test]
    fn lora_arguments_parse() {
        let named = |n: &str, d: &str| LoraArg {
            name: Some(n.into()),
            dir: PathBuf::from(d),
        };
        let bare = |d: &str| LoraArg {
            name: None,
            dir: PathBuf::from(d),
        };
        assert_eq!(parse_lora("sql=/a/b"), Ok(named("sql", "/a/b")));
        assert_eq!(parse_lora("v1.2_x-y=rel"), Ok(named("v1.2_x-y", "rel")));
        assert_eq!(parse_lora("/a/b"), Ok(bare("/a/b")));
        assert_eq!(parse_lora("./a=b"), Ok(bare("./a=b")));
        assert_eq!(parse_lora("a b=c"), Ok(bare("a b=c")));
        assert!(parse_lora("sql=").is_err());
        assert!(parse_lora("latest=/a").is_err());
        assert!(parse_lora("").is_err());
    }

    #[test]
    fn gpt_oss_20b_has_20_9b_parameters() {
        let c = gptoss_model::Config::gpt_oss_20b();
        let (n, mxfp4) = parameter_count(&c);
        assert_eq!(n / 100_000_000, 209, "{n}");
        // The published checkpoint is 13.8 GB.
        let bytes = model_facts(&c, None).file_bytes;
        assert!((13_000_000_000..14_500_000_000).contains(&bytes), "{bytes}");
        assert!(mxfp4 < n);
    }
}
