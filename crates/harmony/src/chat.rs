//! Harmony conversation types (roles, authors, messages, system/developer
//! content, tool namespaces) and their JSON form.
//!
//! Owns: the data model and its serde. The JSON is the one openai-harmony's
//! Python package writes with `Message.to_dict()` / `Conversation.to_json()`
//! (`{"role", "name", "content": [{"type": "text", ...}], "channel"?,
//! "recipient"?, "content_type"?}`), and reading accepts everything the
//! official Rust crate accepts (a plain string as content, missing `name`).
//! Does not own: rendering to tokens or parsing tokens (see `render`, `parse`).
//!
//! Missing optional fields read as "absent", as in the official Rust crate
//! (which renders from this JSON); pydantic's defaults are not re-applied.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// Who wrote a message, in instruction-priority order system > developer >
/// user > assistant > tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    System,
    Developer,
    Tool,
}

impl Role {
    /// The word written in a header (`"assistant"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Developer => "developer",
            Role::Tool => "tool",
        }
    }

    /// Parse a role word; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Role> {
        match name {
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "system" => Some(Role::System),
            "developer" => Some(Role::Developer),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::from_name(s).ok_or_else(|| crate::Error::UnknownRole {
            role: s.to_string(),
        })
    }
}

/// Role plus optional name. Tool messages carry the tool's name
/// (`functions.get_weather`, `browser.search`, `python`) here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub role: Role,
    #[serde(default)]
    pub name: Option<String>,
}

impl Author {
    pub fn new(role: Role, name: impl Into<String>) -> Self {
        Author {
            role,
            name: Some(name.into()),
        }
    }
}

impl From<Role> for Author {
    fn from(role: Role) -> Self {
        Author { role, name: None }
    }
}

/// Plain text content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextContent {
    pub text: String,
}

/// Reasoning effort written into the system message (`Reasoning: low`).
/// JSON spells it `"Low"`/`"Medium"`/`"High"` like openai-harmony; lower case
/// is accepted on input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReasoningEffort {
    #[serde(alias = "low")]
    Low,
    #[serde(alias = "medium")]
    Medium,
    #[serde(alias = "high")]
    High,
}

impl ReasoningEffort {
    /// The word used in `Reasoning: {word}`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
        }
    }
}

/// Which channels the model may use, and whether one is required.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChannelConfig {
    #[serde(default)]
    pub valid_channels: Vec<String>,
    #[serde(default)]
    pub channel_required: bool,
}

impl ChannelConfig {
    pub fn require_channels<I, T>(channels: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        ChannelConfig {
            valid_channels: channels.into_iter().map(Into::into).collect(),
            channel_required: true,
        }
    }
}

/// One tool: a name, a description, and optional JSON-schema parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolDescription {
    pub name: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
}

impl ToolDescription {
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Option<serde_json::Value>,
    ) -> Self {
        ToolDescription {
            name: name.into(),
            description: description.into(),
            parameters,
        }
    }
}

/// A namespace of tools (`functions`, `browser`, `python`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolNamespaceConfig {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub tools: Vec<ToolDescription>,
}

const BROWSER_DESCRIPTION: &str = "Tool for browsing.\nThe `cursor` appears in brackets before each browsing display: `[{cursor}]`.\nCite information from the tool using the following format:\n`【{cursor}†L{line_start}(-L{line_end})?】`, for example: `【6†L9-L11】` or `【8†L3】`.\nDo not quote more than 10 words directly from the tool output.\nsources=web (default: web)";

const BROWSER_OPEN_DESCRIPTION: &str = "Opens the link `id` from the page indicated by `cursor` starting at line number `loc`, showing `num_lines` lines.\nValid link ids are displayed with the formatting: `【{id}†.*】`.\nIf `cursor` is not provided, the most recent page is implied.\nIf `id` is a string, it is treated as a fully qualified URL associated with `source`.\nIf `loc` is not provided, the viewport will be positioned at the beginning of the document or centered on the most relevant passage, if available.\nUse this function without `id` to scroll to a new location of an opened page.";

const PYTHON_DESCRIPTION: &str = "Use this tool to execute Python code in your chain of thought. The code will not be shown to the user. This tool should be used for internal reasoning, but not for code that is intended to be visible to the user (e.g. when creating plots, tables, or files).\n\nWhen you send a message containing Python code to python, it will be executed in a stateful Jupyter notebook environment. python will respond with the output of the execution or time out after 120.0 seconds. The drive at '/mnt/data' can be used to save and persist user files. Internet access for this session is UNKNOWN. Depends on the cluster.";

impl ToolNamespaceConfig {
    pub fn new(
        name: impl Into<String>,
        description: Option<String>,
        tools: Vec<ToolDescription>,
    ) -> Self {
        ToolNamespaceConfig {
            name: name.into(),
            description,
            tools,
        }
    }

    /// The built-in `browser` namespace (search/open/find), exact official text.
    pub fn browser() -> Self {
        let search = serde_json::json!({
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "topn": {"type": "number", "default": 10},
                "source": {"type": "string"}
            },
            "required": ["query"]
        });
        let open = serde_json::json!({
            "type": "object",
            "properties": {
                "id": {"type": ["number", "string"], "default": -1},
                "cursor": {"type": "number", "default": -1},
                "loc": {"type": "number", "default": -1},
                "num_lines": {"type": "number", "default": -1},
                "view_source": {"type": "boolean", "default": false},
                "source": {"type": "string"}
            }
        });
        let find = serde_json::json!({
            "type": "object",
            "properties": {
                "pattern": {"type": "string"},
                "cursor": {"type": "number", "default": -1}
            },
            "required": ["pattern"]
        });
        ToolNamespaceConfig::new(
            "browser",
            Some(BROWSER_DESCRIPTION.to_string()),
            vec![
                ToolDescription::new(
                    "search",
                    "Searches for information related to `query` and displays `topn` results.",
                    Some(search),
                ),
                ToolDescription::new("open", BROWSER_OPEN_DESCRIPTION, Some(open)),
                ToolDescription::new(
                    "find",
                    "Finds exact matches of `pattern` in the current page, or the page given by `cursor`.",
                    Some(find),
                ),
            ],
        )
    }

    /// The built-in `python` namespace (no functions, raw description).
    pub fn python() -> Self {
        ToolNamespaceConfig::new("python", Some(PYTHON_DESCRIPTION.to_string()), vec![])
    }
}

fn insert_namespace(
    tools: &mut Option<BTreeMap<String, ToolNamespaceConfig>>,
    ns: ToolNamespaceConfig,
) {
    tools
        .get_or_insert_with(BTreeMap::new)
        .insert(ns.name.clone(), ns);
}

/// Content of the system message. `Default` is openai-harmony's default
/// (ChatGPT identity, medium effort, cutoff 2024-06, channels
/// analysis/commentary/final required).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Date the conversation takes place, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_start_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge_cutoff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_config: Option<ChannelConfig>,
    /// Built-in tool namespaces, rendered in name order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<BTreeMap<String, ToolNamespaceConfig>>,
}

impl Default for SystemContent {
    fn default() -> Self {
        SystemContent {
            model_identity: Some(
                "You are ChatGPT, a large language model trained by OpenAI.".to_string(),
            ),
            reasoning_effort: Some(ReasoningEffort::Medium),
            conversation_start_date: None,
            knowledge_cutoff: Some("2024-06".to_string()),
            channel_config: Some(ChannelConfig::require_channels([
                "analysis",
                "commentary",
                "final",
            ])),
            tools: None,
        }
    }
}

impl SystemContent {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_model_identity(mut self, identity: impl Into<String>) -> Self {
        self.model_identity = Some(identity.into());
        self
    }
    pub fn with_reasoning_effort(mut self, effort: ReasoningEffort) -> Self {
        self.reasoning_effort = Some(effort);
        self
    }
    pub fn with_conversation_start_date(mut self, date: impl Into<String>) -> Self {
        self.conversation_start_date = Some(date.into());
        self
    }
    pub fn with_knowledge_cutoff(mut self, cutoff: impl Into<String>) -> Self {
        self.knowledge_cutoff = Some(cutoff.into());
        self
    }
    pub fn with_channel_config(mut self, config: ChannelConfig) -> Self {
        self.channel_config = Some(config);
        self
    }
    pub fn with_required_channels<I, T>(mut self, channels: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.channel_config = Some(ChannelConfig::require_channels(channels));
        self
    }
    pub fn with_tools(mut self, ns: ToolNamespaceConfig) -> Self {
        insert_namespace(&mut self.tools, ns);
        self
    }
    pub fn with_browser_tool(self) -> Self {
        self.with_tools(ToolNamespaceConfig::browser())
    }
    pub fn with_python_tool(self) -> Self {
        self.with_tools(ToolNamespaceConfig::python())
    }
}

/// Content of the developer message: instructions and function tools.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct DeveloperContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<BTreeMap<String, ToolNamespaceConfig>>,
}

impl DeveloperContent {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_instructions(mut self, instructions: impl Into<String>) -> Self {
        self.instructions = Some(instructions.into());
        self
    }
    pub fn with_tools(mut self, ns: ToolNamespaceConfig) -> Self {
        insert_namespace(&mut self.tools, ns);
        self
    }
    /// Declare developer functions (the `functions` namespace).
    pub fn with_function_tools(self, tools: Vec<ToolDescription>) -> Self {
        self.with_tools(ToolNamespaceConfig::new("functions", None, tools))
    }
}

/// One content item of a message. JSON: `{"type": "text" | "system_content" |
/// "developer_content", ...}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    Text(TextContent),
    SystemContent(SystemContent),
    DeveloperContent(DeveloperContent),
}

impl Serialize for Content {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Key order as the Python package writes it: "type" first for text,
        // last for system/developer content (pydantic dump, then "type").
        #[derive(Serialize)]
        struct Text<'a> {
            r#type: &'static str,
            text: &'a str,
        }
        #[derive(Serialize)]
        struct Tagged<'a, T: Serialize> {
            #[serde(flatten)]
            inner: &'a T,
            r#type: &'static str,
        }
        match self {
            Content::Text(t) => Text {
                r#type: "text",
                text: &t.text,
            }
            .serialize(serializer),
            Content::SystemContent(c) => Tagged {
                inner: c,
                r#type: "system_content",
            }
            .serialize(serializer),
            Content::DeveloperContent(c) => Tagged {
                inner: c,
                r#type: "developer_content",
            }
            .serialize(serializer),
        }
    }
}

impl From<&str> for Content {
    fn from(text: &str) -> Self {
        Content::Text(TextContent {
            text: text.to_string(),
        })
    }
}
impl From<String> for Content {
    fn from(text: String) -> Self {
        Content::Text(TextContent { text })
    }
}
impl From<SystemContent> for Content {
    fn from(c: SystemContent) -> Self {
        Content::SystemContent(c)
    }
}
impl From<DeveloperContent> for Content {
    fn from(c: DeveloperContent) -> Self {
        Content::DeveloperContent(c)
    }
}

/// One harmony message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub author: Author,
    /// `to=` target: a tool (`functions.x`, `browser.search`, `python`) or
    /// `assistant` on tool results. `None` (or `"all"`) means everyone.
    pub recipient: Option<String>,
    pub content: Vec<Content>,
    /// `analysis`, `commentary`, `final` (assistant and tool messages).
    pub channel: Option<String>,
    /// e.g. `<|constrain|>json` on function calls; kept as the model wrote it.
    pub content_type: Option<String>,
}

impl Message {
    pub fn from_author_and_content(author: Author, content: impl Into<Content>) -> Self {
        Message {
            author,
            recipient: None,
            content: vec![content.into()],
            channel: None,
            content_type: None,
        }
    }
    pub fn from_role_and_content(role: Role, content: impl Into<Content>) -> Self {
        Self::from_author_and_content(Author::from(role), content)
    }
    pub fn from_role_and_contents(role: Role, contents: impl IntoIterator<Item = Content>) -> Self {
        Message {
            author: Author::from(role),
            recipient: None,
            content: contents.into_iter().collect(),
            channel: None,
            content_type: None,
        }
    }
    pub fn adding_content(mut self, content: impl Into<Content>) -> Self {
        self.content.push(content.into());
        self
    }
    pub fn with_channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }
    pub fn with_recipient(mut self, recipient: impl Into<String>) -> Self {
        self.recipient = Some(recipient.into());
        self
    }
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Concatenation of the message's text items (system/developer content
    /// contributes nothing). Parsed messages have exactly one text item.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.content {
            if let Content::Text(t) = c {
                out.push_str(&t.text);
            }
        }
        out
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Python `Message.to_dict()`: role and name (null when absent) first,
        // content always as a list, optional fields only when set.
        #[derive(Serialize)]
        struct Wire<'a> {
            role: Role,
            name: &'a Option<String>,
            content: &'a [Content],
            #[serde(skip_serializing_if = "Option::is_none")]
            channel: &'a Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            recipient: &'a Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            content_type: &'a Option<String>,
        }
        Wire {
            role: self.author.role,
            name: &self.author.name,
            content: &self.content,
            channel: &self.channel,
            recipient: &self.recipient,
            content_type: &self.content_type,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            role: Role,
            #[serde(default)]
            name: Option<String>,
            #[serde(deserialize_with = "string_or_content_list")]
            content: Vec<Content>,
            #[serde(default)]
            channel: Option<String>,
            #[serde(default)]
            recipient: Option<String>,
            #[serde(default)]
            content_type: Option<String>,
        }
        let w = Wire::deserialize(deserializer)?;
        Ok(Message {
            author: Author {
                role: w.role,
                name: w.name,
            },
            recipient: w.recipient,
            content: w.content,
            channel: w.channel,
            content_type: w.content_type,
        })
    }
}

/// The official Rust crate writes a single text item as a bare string;
/// accept both that and a list.
fn string_or_content_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Content>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<Content>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or a list of content items")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![Content::from(v)])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))
        }
    }
    d.deserialize_any(V)
}

/// A list of messages. JSON: `{"messages": [...]}`.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Conversation {
    pub messages: Vec<Message>,
}

impl Conversation {
    pub fn from_messages(messages: impl IntoIterator<Item = Message>) -> Self {
        Conversation {
            messages: messages.into_iter().collect(),
        }
    }

    /// Parse openai-harmony conversation JSON (`Conversation.to_json()`).
    pub fn from_json(json: &str) -> Result<Self, crate::Error> {
        serde_json::from_str(json).map_err(|e| crate::Error::Json {
            message: e.to_string(),
        })
    }

    /// The JSON `Conversation.to_json()` writes (compact).
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every map key is a string.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl<'a> IntoIterator for &'a Conversation {
    type Item = &'a Message;
    type IntoIter = std::slice::Iter<'a, Message>;
    fn into_iter(self) -> Self::IntoIter {
        self.messages.iter()
    }
}
