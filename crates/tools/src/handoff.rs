//! The `handoff` tool: the local model passes a self-contained task to a
//! remote OpenAI-compatible model (`POST {base_url}/chat/completions`) and
//! reads its answer as the tool result. Protocol: /work/notes/handoff-protocol.md
//! (namespace `handoff`, function `ask`, arguments `{"task": "..."}`).
//!
//! The API key is a secret: it is sent only in the Authorization header,
//! never formatted by `Debug`, and scrubbed from every text this tool
//! returns (remote error bodies included).

use std::time::Duration;

use gptoss_harmony::{ToolDescription, ToolNamespaceConfig};

use crate::{maybe_truncate, Error, Tool, ToolOutput};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_MODEL: &str = "gpt-4.1";

const NAMESPACE_DESCRIPTION: &str = "Hand a task you cannot solve reliably to a larger remote model. The remote model's answer is returned to you.";

/// Settings of the handoff tool.
#[derive(Clone)]
pub struct HandoffConfig {
    /// OpenAI-compatible API root, e.g. `https://api.openai.com/v1` or
    /// `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// Bearer token (from `OPENAI_API_KEY`); `None` sends no Authorization.
    pub api_key: Option<String>,
    pub model: String,
    pub timeout: Duration,
    /// Answer characters returned to the local model; the rest is cut.
    pub max_answer_chars: usize,
}

impl Default for HandoffConfig {
    fn default() -> Self {
        HandoffConfig {
            base_url: DEFAULT_BASE_URL.to_string(),
            api_key: None,
            model: DEFAULT_MODEL.to_string(),
            timeout: Duration::from_secs(120),
            max_answer_chars: 32_000,
        }
    }
}

impl std::fmt::Debug for HandoffConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandoffConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Asked before each send with (model, base URL, task); `false` cancels.
pub type ConfirmFn = Box<dyn FnMut(&str, &str, &str) -> bool + Send>;

pub struct HandoffTool {
    config: HandoffConfig,
    client: reqwest::blocking::Client,
    confirm: Option<ConfirmFn>,
}

impl HandoffTool {
    pub fn new(config: HandoffConfig) -> Result<Self, Error> {
        let client = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10).min(config.timeout))
            .build()
            .map_err(|e| Error::Http(e.to_string()))?;
        Ok(HandoffTool {
            config,
            client,
            confirm: None,
        })
    }

    /// Show each task before it leaves the machine and ask for consent.
    pub fn with_confirm(mut self, confirm: ConfirmFn) -> Self {
        self.confirm = Some(confirm);
        self
    }

    /// The namespace declared in the system message (handoff protocol).
    pub fn namespace_config() -> ToolNamespaceConfig {
        ToolNamespaceConfig::new(
            "handoff",
            Some(NAMESPACE_DESCRIPTION.to_string()),
            vec![ToolDescription::new(
                "ask",
                "Send a self-contained task to the remote model.",
                Some(serde_json::json!({
                    "type": "object",
                    "properties": {
                        "task": {"type": "string", "description": "The full task, self-contained."}
                    },
                    "required": ["task"]
                })),
            )],
        )
    }

    /// Remove the API key from `text`.
    fn scrub(&self, text: &str) -> String {
        match &self.config.api_key {
            Some(k) if !k.is_empty() => text.replace(k.as_str(), "<redacted>"),
            _ => text.to_string(),
        }
    }

    fn ask(&mut self, task: &str) -> Result<String, String> {
        if let Some(confirm) = self.confirm.as_mut() {
            if !confirm(&self.config.model, &self.config.base_url, task) {
                return Err("the user declined to send this task to the remote model".into());
            }
        }
        let url = format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        );
        let body = serde_json::json!({
            "model": self.config.model,
            "messages": [{"role": "user", "content": task}],
        });
        let mut req = self.client.post(&url).json(&body);
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().map_err(|e| {
            if e.is_timeout() {
                format!(
                    "the remote model did not answer within {} seconds",
                    self.config.timeout.as_secs()
                )
            } else if e.is_connect() {
                format!(
                    "could not reach {} (the network may be unavailable)",
                    self.config.base_url
                )
            } else {
                // Without the URL: reqwest errors may print it in full.
                format!("request failed: {}", e.without_url())
            }
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .map_err(|e| format!("reading the answer failed: {}", e.without_url()))?;
        let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        if !status.is_success() {
            let detail = json
                .as_ref()
                .and_then(|j| j.pointer("/error/message"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| maybe_truncate(text.trim(), 500));
            return Err(format!("the remote model answered HTTP {status}: {detail}"));
        }
        let json = json.ok_or("the remote answer is not JSON")?;
        let content = json
            .pointer("/choices/0/message/content")
            .and_then(|c| c.as_str())
            .ok_or("the remote answer has no choices[0].message.content")?;
        Ok(maybe_truncate(content, self.config.max_answer_chars))
    }
}

impl Tool for HandoffTool {
    fn name(&self) -> &str {
        "handoff"
    }

    fn config(&self) -> ToolNamespaceConfig {
        HandoffTool::namespace_config()
    }

    fn call(&mut self, recipient: &str, content: &str) -> ToolOutput {
        if recipient != "handoff.ask" {
            return ToolOutput::error(
                recipient,
                serde_json::json!({"error": format!("Unknown function: {}", recipient.strip_prefix("handoff.").unwrap_or(recipient))}).to_string(),
            );
        }
        // `{"task": "..."}` per the protocol; a bare string is taken as the task.
        let task = match serde_json::from_str::<serde_json::Value>(content) {
            Ok(serde_json::Value::Object(m)) => match m.get("task").and_then(|t| t.as_str()) {
                Some(t) => t.to_string(),
                None => return ToolOutput::error(
                    recipient,
                    "[ERROR] handoff.ask needs {\"task\": \"...\"} with the full task as a string.",
                ),
            },
            Ok(serde_json::Value::String(s)) => s,
            _ => content.to_string(),
        };
        if task.trim().is_empty() {
            return ToolOutput::error(recipient, "[ERROR] handoff.ask got an empty task.");
        }
        match self.ask(&task) {
            Ok(answer) => ToolOutput::ok(recipient, self.scrub(&answer)),
            Err(e) => ToolOutput::error(
                recipient,
                self.scrub(&format!("[ERROR] handoff failed: {e}")),
            ),
        }
    }
}
