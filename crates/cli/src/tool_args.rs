//! Command-line options of the built-in tools (`--browser`, `--python`,
//! `--handoff` and their settings), shared by `run`, `chat` and `serve`, and
//! of the caller's function tools (`--tools FILE`, `--tool-command CMD`,
//! `--max-tool-rounds`), shared by `run` and `chat`. Turns them into a
//! [`ToolKit`] (one fresh set of tools per conversation) and into harmony
//! function declarations. Owns no tool logic (`gptoss_tools`) and no loop
//! (`tool_loop`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use gptoss_harmony::ToolDescription;
use gptoss_tools::browser::offline::OfflineBackend;
use gptoss_tools::browser::web::{WebBackend, WebConfig};
use gptoss_tools::browser::{Backend, BrowserConfig, BrowserTool};
use gptoss_tools::handoff::{ConfirmFn, HandoffConfig, HandoffTool};
use gptoss_tools::python::{PythonConfig, PythonTool};
use gptoss_tools::{Tool, ToolKit};

/// Which browser backend, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BrowserMode {
    /// No browser tool.
    Off,
    /// A tantivy index built with `gpt-oss index` (--index DIR).
    Offline,
    /// Live HTTP(S) fetches; search through --search-url.
    Web,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    Off,
    On,
}

/// Built-in tools. All are off by default: nothing leaves the machine and
/// no code runs unless asked.
#[derive(clap::Args, Debug, Clone)]
pub struct BuiltinToolArgs {
    /// Browser tool (browser.search/open/find): off, offline (needs --index) or web.
    #[arg(long, value_enum, default_value = "off")]
    pub browser: BrowserMode,
    /// Offline browser index (made by `gpt-oss index DIR`).
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// Search endpoint for `--browser web` (SearXNG-style JSON API).
    #[arg(long, value_name = "URL")]
    pub search_url: Option<String>,
    /// Python tool: the model's code runs in a bubblewrap sandbox (no network,
    /// only a scratch folder).
    #[arg(long, value_enum, default_value = "off")]
    pub python: Switch,
    /// Wall-clock (and CPU) limit of one python call, seconds.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub python_timeout: f64,
    /// Python interpreter inside the sandbox.
    #[arg(long, default_value = "/usr/bin/python3", value_name = "PATH")]
    pub python_bin: PathBuf,
    /// Handoff tool (handoff.ask): lets the model send a task to a remote
    /// OpenAI-compatible model (key from OPENAI_API_KEY).
    #[arg(long, value_enum, default_value = "off")]
    pub handoff: Switch,
    /// Remote model for handoff.ask.
    #[arg(long, default_value = gptoss_tools::handoff::DEFAULT_MODEL, value_name = "MODEL")]
    pub handoff_model: String,
    /// OpenAI-compatible API root for handoff.ask (e.g. another `gpt-oss serve`: http://HOST:PORT/v1).
    #[arg(long, default_value = gptoss_tools::handoff::DEFAULT_BASE_URL, value_name = "URL")]
    pub handoff_url: String,
    /// Timeout of the remote model, seconds.
    #[arg(long, default_value_t = 120.0, value_name = "SECS")]
    pub handoff_timeout: f64,
}

fn secs(s: f64, flag: &str) -> anyhow::Result<Duration> {
    match Duration::try_from_secs_f64(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => bail!("--{flag} must be a positive number of seconds"),
    }
}

impl BuiltinToolArgs {
    /// Check the settings and make the tool kit. `confirm`, when given, is
    /// asked before every handoff (it gets model, URL and task).
    pub fn kit(&self, confirm: Option<Arc<dyn HandoffConfirm>>) -> anyhow::Result<ToolKit> {
        let mut kit = ToolKit::new();
        match self.browser {
            BrowserMode::Off => {
                if self.index.is_some() || self.search_url.is_some() {
                    bail!("--index and --search-url configure the browser: add --browser offline or --browser web");
                }
            }
            BrowserMode::Offline => {
                let Some(index) = self.index.clone() else {
                    bail!(
                        "--browser offline needs --index DIR (build one with `gpt-oss index DIR`)"
                    );
                };
                // Open once now so a wrong folder is reported at start-up.
                OfflineBackend::open(&index).with_context(|| {
                    format!("cannot open the browser index {}", index.display())
                })?;
                kit.add(
                    "browser",
                    Arc::new(move || {
                        let backend: Box<dyn Backend> = Box::new(OfflineBackend::open(&index)?);
                        Ok(
                            Box::new(BrowserTool::new(backend, BrowserConfig::default()))
                                as Box<dyn Tool>,
                        )
                    }),
                );
            }
            BrowserMode::Web => {
                let config = WebConfig {
                    search_url: self.search_url.clone(),
                    ..WebConfig::default()
                };
                WebBackend::new(config.clone()).context("cannot set up the web browser")?;
                kit.add(
                    "browser",
                    Arc::new(move || {
                        let backend: Box<dyn Backend> = Box::new(WebBackend::new(config.clone())?);
                        Ok(
                            Box::new(BrowserTool::new(backend, BrowserConfig::default()))
                                as Box<dyn Tool>,
                        )
                    }),
                );
            }
        }
        if self.python == Switch::On {
            let timeout = secs(self.python_timeout, "python-timeout")?;
            let config = PythonConfig {
                python_bin: self.python_bin.clone(),
                timeout,
                cpu_seconds: timeout.as_secs_f64().ceil().max(1.0) as u64,
                ..PythonConfig::default()
            };
            let mut probe = PythonTool::new(config.clone())?;
            if let Err(why) = probe.check_available() {
                bail!(
                    "--python on, but the sandbox cannot run here: {}\n\
                     The python tool needs bubblewrap (`apt-get install bubblewrap`), user namespaces \
                     and {}; or leave --python off.",
                    why.trim(),
                    self.python_bin.display()
                );
            }
            kit.add(
                "python",
                Arc::new(move || Ok(Box::new(PythonTool::new(config.clone())?) as Box<dyn Tool>)),
            );
        }
        if self.handoff == Switch::On {
            let config = HandoffConfig {
                base_url: self.handoff_url.trim_end_matches('/').to_string(),
                api_key: std::env::var("OPENAI_API_KEY")
                    .ok()
                    .filter(|k| !k.trim().is_empty()),
                model: self.handoff_model.clone(),
                timeout: secs(self.handoff_timeout, "handoff-timeout")?,
                ..HandoffConfig::default()
            };
            if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://"))
            {
                bail!(
                    "--handoff-url must start with http:// or https:// (got {:?})",
                    config.base_url
                );
            }
            if config.api_key.is_none()
                && config.base_url == gptoss_tools::handoff::DEFAULT_BASE_URL
            {
                eprintln!("note: --handoff on without OPENAI_API_KEY: the OpenAI API will refuse the calls");
            }
            kit.add(
                "handoff",
                Arc::new(move || {
                    let mut tool = HandoffTool::new(config.clone())?;
                    if let Some(confirm) = confirm.clone() {
                        let f: ConfirmFn =
                            Box::new(move |model, url, task| confirm.confirm(model, url, task));
                        tool = tool.with_confirm(f);
                    }
                    Ok(Box::new(tool) as Box<dyn Tool>)
                }),
            );
        }
        Ok(kit)
    }
}

/// Asked before a task leaves the machine.
pub trait HandoffConfirm: Send + Sync {
    fn confirm(&self, model: &str, url: &str, task: &str) -> bool;
}

/// The caller's function tools and how their calls are answered.
#[derive(clap::Args, Debug, Clone)]
pub struct FunctionToolArgs {
    /// Function tools the model may call: a JSON file with OpenAI-style
    /// definitions ([{"type":"function","function":{name,description,parameters}}])
    /// or a bare list of {name,description,parameters}.
    #[arg(long = "tools", value_name = "FILE")]
    pub tools_file: Option<PathBuf>,
    /// Answers function calls: run with `sh -c CMD`, the call's JSON arguments
    /// on stdin and GPT_OSS_TOOL_NAME in the environment; its stdout is the result.
    #[arg(long, value_name = "CMD")]
    pub tool_command: Option<String>,
    /// Seconds `--tool-command` may run before it is stopped (with every
    /// process it started); the model then reads a timeout error.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub tool_timeout: f64,
    /// Most tool calls answered in one turn; beyond it the turn stops.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub max_tool_rounds: usize,
}

impl FunctionToolArgs {
    /// `--tool-command` with its limits, checked.
    pub fn tool_command(&self) -> anyhow::Result<Option<crate::tool_loop::ToolCommand>> {
        let Some(command) = &self.tool_command else {
            return Ok(None);
        };
        if !(self.tool_timeout.is_finite()
            && self.tool_timeout > 0.0
            && self.tool_timeout <= 86_400.0)
        {
            anyhow::bail!(
                "--tool-timeout must be a number of seconds between 0 and 86400, got {}",
                self.tool_timeout
            );
        }
        Ok(Some(crate::tool_loop::ToolCommand {
            command: command.clone(),
            limits: gptoss_tools::command::CommandLimits {
                timeout: std::time::Duration::from_secs_f64(self.tool_timeout),
                ..Default::default()
            },
        }))
    }

    pub fn functions(&self) -> anyhow::Result<Vec<ToolDescription>> {
        match &self.tools_file {
            None => Ok(Vec::new()),
            Some(path) => load_functions(path),
        }
    }
}

/// Read function definitions from a JSON file (see [`parse_functions`]).
pub fn load_functions(path: &Path) -> anyhow::Result<Vec<ToolDescription>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the tools file {}", path.display()))?;
    parse_functions(&text).with_context(|| format!("in the tools file {}", path.display()))
}

/// Function definitions, OpenAI-style (`{"type":"function","function":{...}}`,
/// Chat Completions), flat (`{"type":"function","name":...}`, Responses) or
/// bare (`{"name":...}`); a list, or `{"tools": [...]}`.
pub fn parse_functions(text: &str) -> anyhow::Result<Vec<ToolDescription>> {
    let value: serde_json::Value =
        serde_json::from_str(text).context("the tools file is not valid JSON")?;
    let list = match &value {
        serde_json::Value::Array(items) => items.clone(),
        serde_json::Value::Object(map) => match map.get("tools") {
            Some(serde_json::Value::Array(items)) => items.clone(),
            _ => vec![value.clone()],
        },
        _ => bail!("expected a list of function definitions"),
    };
    let mut out: Vec<ToolDescription> = Vec::new();
    for (idx, item) in list.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            bail!("tools[{idx}] is not an object");
        };
        let def = match obj.get("type").and_then(|t| t.as_str()) {
            Some("function") | None => obj.get("function").unwrap_or(item),
            Some(other) => bail!("tools[{idx}]: unsupported type {other:?} (only \"function\")"),
        };
        let Some(name) = def.get("name").and_then(|n| n.as_str()) else {
            bail!("tools[{idx}] has no \"name\" string");
        };
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            bail!("tools[{idx}]: invalid function name {name:?} (letters, digits, _ and -, at most 64)");
        }
        if out.iter().any(|t| t.name == name) {
            bail!("tools[{idx}]: the function {name:?} is defined twice");
        }
        let description = match def.get("description") {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(_) => bail!("tools[{idx}]: \"description\" must be a string"),
        };
        let parameters = match def.get("parameters") {
            None | Some(serde_json::Value::Null) => None,
            Some(p @ serde_json::Value::Object(_)) => Some(p.clone()),
            Some(_) => bail!("tools[{idx}]: \"parameters\" must be a JSON schema object"),
        };
        out.push(ToolDescription::new(name, description, parameters));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_functions;

    #[test]
    fn function_files_in_every_accepted_shape() {
        let nested = r#"[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object"}}}]"#;
        let flat = r#"[{"type":"function","name":"get_weather","description":"Weather","parameters":{"type":"object"}}]"#;
        let bare = r#"{"tools":[{"name":"get_weather","description":"Weather","parameters":{"type":"object"}}]}"#;
        for text in [nested, flat, bare] {
            let tools = parse_functions(text).unwrap_or_else(|e| panic!("{e:#}"));
            assert_eq!(tools.len(), 1);
            assert_eq!(tools[0].name, "get_weather");
            assert_eq!(tools[0].description, "Weather");
            assert!(tools[0].parameters.is_some());
        }
        assert!(parse_functions("[").is_err());
        assert!(parse_functions(r#"[{"description":"x"}]"#).is_err());
        assert!(parse_functions(r#"[{"name":"a b"}]"#).is_err());
        assert!(parse_functions(r#"[{"name":"a"},{"name":"a"}]"#).is_err());
        assert!(parse_functions(r#"[{"type":"web_search"}]"#).is_err());
        assert!(parse_functions(r#"[{"name":"a","parameters":"x"}]"#).is_err());
    }
}
