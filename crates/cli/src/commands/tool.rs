//! `gpt-oss tool RECIPIENT MESSAGE [RECIPIENT MESSAGE]...`: run built-in
//! tools directly, without a model, and print exactly the text the model
//! would receive. Several calls in one run share the tools' state (e.g.
//! `browser.search` then `browser.open`). The tools are `gptoss_tools`.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use gptoss_tools::browser::offline::OfflineBackend;
use gptoss_tools::browser::web::{WebBackend, WebConfig};
use gptoss_tools::browser::{Backend, BrowserConfig, BrowserTool};
use gptoss_tools::handoff::{HandoffConfig, HandoffTool};
use gptoss_tools::python::{PythonConfig, PythonTool};
use gptoss_tools::ToolRegistry;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BrowserKind {
    /// A tantivy index built with `gpt-oss index` (--index).
    Offline,
    /// Live HTTP(S) fetches; search through --search-url.
    Web,
}

#[derive(clap::Args)]
pub struct Args {
    /// RECIPIENT MESSAGE pairs: `python 'print(1+1)'`,
    /// `browser.search '{"query": "..."}'`, `handoff.ask '{"task": "..."}'`.
    /// A MESSAGE of `-` is read from stdin.
    #[arg(required = true, num_args = 2.., value_names = ["RECIPIENT", "MESSAGE"])]
    pub calls: Vec<String>,
    /// Offline browser index (made by `gpt-oss index`).
    #[arg(long)]
    pub index: Option<PathBuf>,
    /// Browser backend.
    #[arg(long, value_enum, default_value = "offline")]
    pub browser: BrowserKind,
    /// Search endpoint for `--browser web` (SearXNG-style JSON API).
    #[arg(long)]
    pub search_url: Option<String>,
    /// Wall-clock limit of one python call, seconds.
    #[arg(long, default_value_t = 60.0)]
    pub python_timeout: f64,
    /// Python interpreter inside the sandbox.
    #[arg(long, default_value = "/usr/bin/python3")]
    pub python_bin: PathBuf,
    /// Scratch folder mounted at /mnt/data (default: a temporary folder).
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    /// OpenAI-compatible API root for `handoff.ask` (key from OPENAI_API_KEY).
    #[arg(long, default_value = gptoss_tools::handoff::DEFAULT_BASE_URL)]
    pub handoff_url: String,
    /// Remote model for `handoff.ask`.
    #[arg(long, default_value = gptoss_tools::handoff::DEFAULT_MODEL)]
    pub handoff_model: String,
    /// Timeout of the remote model, seconds.
    #[arg(long, default_value_t = 120.0)]
    pub handoff_timeout: f64,
}

fn secs(s: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| anyhow::anyhow!("--{what} must be a positive number of seconds"))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !args.calls.len().is_multiple_of(2) {
        bail!(
            "expected RECIPIENT MESSAGE pairs, got {} arguments",
            args.calls.len()
        );
    }
    let mut stdin_used = false;
    let mut calls = Vec::new();
    for pair in args.calls.chunks(2) {
        let message = if pair[1] == "-" {
            if stdin_used {
                bail!("only one MESSAGE can be read from stdin");
            }
            stdin_used = true;
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading MESSAGE from stdin")?;
            s
        } else {
            pair[1].clone()
        };
        calls.push((pair[0].clone(), message));
    }

    let mut registry = ToolRegistry::new();
    let wants = |ns: &str| {
        calls
            .iter()
            .any(|(r, _)| r == ns || r.starts_with(&format!("{ns}.")))
    };
    if wants("python") {
        let config = PythonConfig {
            python_bin: args.python_bin.clone(),
            timeout: secs(args.python_timeout, "python-timeout")?,
            cpu_seconds: args.python_timeout.ceil().max(1.0) as u64,
            scratch_dir: args.scratch.clone(),
            ..PythonConfig::default()
        };
        registry.register(Box::new(PythonTool::new(config)?));
    }
    if wants("browser") {
        let backend: Box<dyn Backend> = match args.browser {
            BrowserKind::Offline => {
                let Some(index) = &args.index else {
                    bail!("the offline browser needs --index DIR (build one with `gpt-oss index`), or use --browser web");
                };
                Box::new(OfflineBackend::open(index)?)
            }
            BrowserKind::Web => Box::new(WebBackend::new(WebConfig {
                search_url: args.search_url.clone(),
                ..WebConfig::default()
            })?),
        };
        registry.register(Box::new(BrowserTool::new(
            backend,
            BrowserConfig::default(),
        )));
    }
    if wants("handoff") {
        let config = HandoffConfig {
            base_url: args.handoff_url.clone(),
            api_key: std::env::var("OPENAI_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            model: args.handoff_model.clone(),
            timeout: secs(args.handoff_timeout, "handoff-timeout")?,
            ..HandoffConfig::default()
        };
        let tool = HandoffTool::new(config)?.with_confirm(Box::new(|model, url, task| {
            eprintln!(
                "handoff: sending {} characters to {model} at {url}",
                task.chars().count()
            );
            true
        }));
        registry.register(Box::new(tool));
    }

    let mut stdout = std::io::stdout().lock();
    let many = calls.len() > 1;
    let mut any_error = false;
    for (recipient, message) in &calls {
        let out = registry.call(recipient, message);
        any_error |= out.is_error;
        if many {
            writeln!(stdout, "==> {}", out.author)?;
        }
        stdout.write_all(out.text.as_bytes())?;
        if many || (std::io::stdout().is_terminal() && !out.text.ends_with('\n')) {
            writeln!(stdout)?;
        }
    }
    stdout.flush()?;
    if any_error {
        eprintln!("note: the tool reported an error (shown above, as the model would see it)");
    }
    Ok(())
}
