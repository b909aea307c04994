//! Built-in tools the model calls by recipient: `browser.search|open|find`,
//! `python` and `handoff.ask`. Each tool owns its state for one conversation
//! (create a fresh [`ToolRegistry`] per conversation) and turns every failure
//! into text the model can read; nothing here panics on model input.
//!
//! This crate does not run the tool loop (that is `gptoss-chat`): it only
//! declares the tools ([`ToolRegistry::namespace_configs`], rendered into the
//! system message) and answers one call ([`ToolRegistry::call`]).

pub mod browser;
pub mod command;
pub mod handoff;
pub mod python;
mod seccomp;
pub mod textwrap;

use std::sync::Arc;

use gptoss_harmony::{Author, Message, Role, ToolNamespaceConfig};

/// Failures while setting a tool up (opening an index, building an HTTP
/// client). Failures of a call are never errors: they become [`ToolOutput`]
/// text, because the model must read them and go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("search index error: {0}")]
    Index(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid tool configuration: {0}")]
    Config(String),
    #[error("HTTP client error: {0}")]
    Http(String),
}

/// The tool's reply to one call: the text of the tool message the model reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolOutput {
    /// Author name of the tool message (`browser.search`, `python`, ...).
    pub author: String,
    /// Message text the model receives.
    pub text: String,
    /// True when the call failed (the text then explains why).
    pub is_error: bool,
}

impl ToolOutput {
    pub fn ok(author: impl Into<String>, text: impl Into<String>) -> Self {
        ToolOutput {
            author: author.into(),
            text: text.into(),
            is_error: false,
        }
    }

    pub fn error(author: impl Into<String>, text: impl Into<String>) -> Self {
        ToolOutput {
            author: author.into(),
            text: text.into(),
            is_error: true,
        }
    }

    /// The harmony tool message for this output: author = tool name,
    /// recipient `assistant`, channel = the channel of the call (reference
    /// `Tool.process` copies it), so it renders as
    /// `<|start|>{author} to=assistant<|channel|>{channel}<|message|>{text}<|end|>`.
    pub fn to_message(&self, channel: Option<&str>) -> Message {
        let msg = Message::from_author_and_content(
            Author::new(Role::Tool, self.author.clone()),
            self.text.clone(),
        )
        .with_recipient("assistant");
        match channel {
            Some(c) => msg.with_channel(c),
            None => msg,
        }
    }
}

/// One built-in tool namespace.
pub trait Tool: Send {
    /// Namespace name: `browser`, `python`, `handoff`. Recipients are the name
    /// itself or `{name}.{function}`.
    fn name(&self) -> &str;

    /// How the tool is declared in the system message.
    fn config(&self) -> ToolNamespaceConfig;

    /// Run one call. `content` is the message body the model wrote (JSON
    /// arguments for browser/handoff, raw source for python).
    fn call(&mut self, recipient: &str, content: &str) -> ToolOutput;
}

/// The tools of one conversation, dispatched by recipient.
#[derive(Default)]
pub struct ToolRegistry {
    tools: Vec<Box<dyn Tool>>,
}

impl ToolRegistry {
    pub fn new() -> Self {
        ToolRegistry::default()
    }

    /// Add a tool; a tool with the same name replaces the earlier one.
    pub fn register(&mut self, tool: Box<dyn Tool>) {
        self.tools.retain(|t| t.name() != tool.name());
        self.tools.push(tool);
    }

    pub fn with(mut self, tool: Box<dyn Tool>) -> Self {
        self.register(tool);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// Namespace names of the registered tools.
    pub fn names(&self) -> Vec<&str> {
        self.tools.iter().map(|t| t.name()).collect()
    }

    /// Namespace configs to put in the system message
    /// (`SystemContent::with_tools` for each; harmony sorts them by name).
    pub fn namespace_configs(&self) -> Vec<ToolNamespaceConfig> {
        self.tools.iter().map(|t| t.config()).collect()
    }

    fn find_index(&self, recipient: &str) -> Option<usize> {
        self.tools.iter().position(|t| {
            let name = t.name();
            recipient == name
                || (recipient.len() > name.len()
                    && recipient.starts_with(name)
                    && recipient.as_bytes()[name.len()] == b'.')
        })
    }

    /// Whether `recipient` is one of our built-in tools. Anything else
    /// (`functions.*`) belongs to the caller.
    pub fn handles(&self, recipient: &str) -> bool {
        self.find_index(recipient).is_some()
    }

    /// Run the call addressed to `recipient`. A recipient no tool owns gets
    /// an error output the model can read.
    pub fn call(&mut self, recipient: &str, content: &str) -> ToolOutput {
        match self.find_index(recipient) {
            Some(i) => self.tools[i].call(recipient, content),
            None => {
                let known: Vec<&str> = self.tools.iter().map(|t| t.name()).collect();
                ToolOutput::error(
                    recipient,
                    format!(
                        "Unknown tool recipient `{recipient}`. Available tools: {}.",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            }
        }
    }
}

/// Makes a fresh tool for one conversation.
pub type ToolMaker = Arc<dyn Fn() -> Result<Box<dyn Tool>, Error> + Send + Sync>;

/// The built-in tools a program was configured with (from its flags), as
/// makers: every conversation (a `chat` session, a `/v1/responses` request)
/// gets its own fresh [`ToolRegistry`], so browser pages and python scratch
/// folders are never shared between conversations.
#[derive(Clone, Default)]
pub struct ToolKit {
    makers: Vec<(String, ToolMaker)>,
}

impl std::fmt::Debug for ToolKit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl ToolKit {
    pub fn new() -> Self {
        ToolKit::default()
    }

    /// Add the maker of namespace `name` (`browser`, `python`, `handoff`);
    /// a later maker of the same name replaces the earlier one.
    pub fn add(&mut self, name: impl Into<String>, maker: ToolMaker) {
        let name = name.into();
        self.makers.retain(|(n, _)| *n != name);
        self.makers.push((name, maker));
    }

    /// Namespaces available, in the order they were added.
    pub fn names(&self) -> Vec<&str> {
        self.makers.iter().map(|(n, _)| n.as_str()).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.makers.iter().any(|(n, _)| n == name)
    }

    pub fn is_empty(&self) -> bool {
        self.makers.is_empty()
    }

    /// A fresh registry holding the tools whose namespace `wanted` accepts.
    pub fn registry(&self, wanted: impl Fn(&str) -> bool) -> Result<ToolRegistry, Error> {
        let mut registry = ToolRegistry::new();
        for (name, maker) in &self.makers {
            if wanted(name) {
                registry.register(maker()?);
            }
        }
        Ok(registry)
    }
}

/// Cut `text` to at most `max_chars` characters, ending in `...` when cut
/// (the reference's `maybe_truncate`, used on URLs and error texts).
pub fn maybe_truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() > max_chars {
        let mut out: String = text.chars().take(max_chars.saturating_sub(3)).collect();
        out.push_str("...");
        out
    } else {
        text.to_string()
    }
}
