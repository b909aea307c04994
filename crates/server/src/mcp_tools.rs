//! The Responses API's hosted `mcp` tool, run by this server when it was
//! started with `--mcp on` (network use is opt-in; with it off the tool is
//! left out with a warning, as other hosted tools are).
//!
//! For each `{"type": "mcp", "server_label": L, "server_url": ...}` the
//! server opens an MCP session (`mcp_client`), lists the tools (or takes an
//! `mcp_list_tools` item the client passed back, as OpenAI does), keeps the
//! ones `allowed_tools` lets through, and declares them to the model as
//! the harmony namespace `L` (sanitised): tool X is called as `L.X`, with
//! its `inputSchema` as the arguments' grammar, like a `namespace` tool.
//! A call then runs here (`tools/call`), its text becomes the tool message
//! and generation goes on, unless `require_approval` says to ask first:
//! then the response ends with an `mcp_approval_request`, and the
//! `mcp_approval_response` of the next request runs (or refuses) the call.
//! Failures (an unreachable server, a JSON-RPC error, a timeout) are
//! `error`s of the items, and the model reads them as the tool's result.
//!
//! Owns: the tool's parameters, sessions of one response, its output items
//! and stream events. Does not own the transport (`mcp_client`) or the
//! generation loop (`responses_api`).

use std::collections::{HashMap, HashSet};

use gptoss_harmony::{Author, Message, Role};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::ids;
use crate::mcp_client::{
    CallResult, Endpoint, McpError, McpSettings, McpTool, Session, CONNECTION_CLOSED,
};
use crate::prompt::{self, FunctionNamespace, FunctionTool};

/// Harmony namespaces a server label may not take (they mean other tools).
const RESERVED: [&str; 5] = ["functions", "browser", "python", "container", "handoff"];

/// Most characters of one result the model reads (the item keeps it all).
const MAX_RESULT_CHARS: usize = 64 * 1024;

/// `s` as a harmony tool or namespace name (`prompt::is_tool_name`): other
/// characters become `_`, at most 64.
fn sanitize(s: &str, empty: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if out.is_empty() {
        out = empty.to_string();
    }
    out
}

/// The namespace the model calls a server's tools in.
pub(crate) fn namespace_for(label: &str) -> String {
    let ns = sanitize(label, "mcp");
    if RESERVED.contains(&ns.as_str()) {
        return format!("mcp_{ns}");
    }
    ns
}

/// The recipient of tool `name` of server `label`: `NAMESPACE.TOOL`.
pub(crate) fn recipient_for(label: &str, name: &str) -> String {
    format!("{}.{}", namespace_for(label), sanitize(name, "tool"))
}

/// Which tools a filter (`allowed_tools`, a `require_approval` branch)
/// matches: a list of names, or `{tool_names, read_only}`.
#[derive(Debug, Clone, Default, PartialEq)]
struct ToolFilter {
    names: Option<Vec<String>>,
    read_only: Option<bool>,
}

impl ToolFilter {
    fn parse(v: &Value, param: &str) -> Result<ToolFilter, ApiError> {
        let names = |v: &Value, p: &str| -> Result<Vec<String>, ApiError> {
            v.as_array()
                .filter(|items| items.iter().all(Value::is_string))
                .map(|items| {
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .ok_or_else(|| {
                    ApiError::invalid(format!("'{p}' must be a list of tool names."), Some(p))
                })
        };
        match v {
            Value::Array(_) => Ok(ToolFilter {
                names: Some(names(v, param)?),
                read_only: None,
            }),
            Value::Object(map) => {
                let p = format!("{param}.tool_names");
                let read_only = match map.get("read_only") {
                    None | Some(Value::Null) => None,
                    Some(Value::Bool(b)) => Some(*b),
                    Some(_) => {
                        let p = format!("{param}.read_only");
                        return Err(ApiError::invalid(
                            format!("'{p}' must be a boolean."),
                            Some(&p),
                        ));
                    }
                };
                Ok(ToolFilter {
                    names: match map.get("tool_names") {
                        None | Some(Value::Null) => None,
                        Some(list) => Some(names(list, &p)?),
                    },
                    read_only,
                })
            }
            _ => Err(ApiError::invalid(
                format!("'{param}' must be a list of tool names or an object with 'tool_names'."),
                Some(param),
            )),
        }
    }

    fn matches(&self, tool: &McpTool) -> bool {
        self.names
            .as_ref()
            .is_none_or(|names| names.contains(&tool.name))
            && self.read_only.is_none_or(|r| tool.read_only() == r)
    }
}

/// `require_approval`. OpenAI's default is to ask.
#[derive(Debug, Clone, PartialEq)]
enum Approval {
    Always,
    Never,
    Filter {
        always: Option<ToolFilter>,
        never: Option<ToolFilter>,
    },
}

impl Approval {
    fn parse(v: Option<&Value>, param: &str) -> Result<Approval, ApiError> {
        match v {
            None | Some(Value::Null) => Ok(Approval::Always),
            Some(Value::String(s)) if s == "always" => Ok(Approval::Always),
            Some(Value::String(s)) if s == "never" => Ok(Approval::Never),
            Some(Value::Object(map)) => {
                let branch = |key: &str| {
                    map.get(key)
                        .filter(|v| !v.is_null())
                        .map(|v| ToolFilter::parse(v, &format!("{param}.{key}")))
                        .transpose()
                };
                Ok(Approval::Filter {
                    always: branch("always")?,
                    never: branch("never")?,
                })
            }
            Some(_) => Err(ApiError::invalid(
                format!("Invalid value for '{param}': expected 'always', 'never' or an object with 'always' / 'never' filters."),
                Some(param),
            )),
        }
    }

    fn required(&self, tool: &McpTool) -> bool {
        match self {
            Approval::Always => true,
            Approval::Never => false,
            // A tool both lists match is asked about (the safer reading);
            // one neither matches too (the default).
            Approval::Filter { always, never } => {
                always.as_ref().is_some_and(|f| f.matches(tool))
                    || !never.as_ref().is_some_and(|f| f.matches(tool))
            }
        }
    }
}

/// One `mcp` tool of a request, checked.
#[derive(Debug, Clone)]
struct ServerSpec {
    label: String,
    endpoint: Endpoint,
    allowed: Option<ToolFilter>,
    approval: Approval,
    description: String,
    /// The tool as echoed in the response (its secrets left out).
    echo: Value,
}

fn parse_spec(tool: &Value, param: &str) -> Result<Result<ServerSpec, String>, ApiError> {
    let field = |k: &str| tool.get(k).filter(|v| !v.is_null());
    let string = |k: &str| -> Result<Option<&str>, ApiError> {
        match field(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(ApiError::invalid(
                format!("'{param}.{k}' must be a string."),
                Some(&format!("{param}.{k}")),
            )),
        }
    };
    let label = string("server_label")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                format!("Missing required parameter: '{param}.server_label'."),
                Some(&format!("{param}.server_label")),
            )
        })?;
    let Some(url) = string("server_url")? else {
        let what = if field("connector_id").is_some() {
            "connectors are OpenAI's"
        } else {
            "it has no server_url"
        };
        return Ok(Err(format!(
            "tool \"mcp\" ({param}, server_label {label:?}) left out: {what}"
        )));
    };
    let url_param = format!("{param}.server_url");
    let url = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            ApiError::invalid(
                format!("Invalid '{url_param}': {url:?} is not an http(s) URL."),
                Some(&url_param),
            )
        })?;
    let mut headers = HeaderMap::new();
    if let Some(given) = field("headers") {
        let hp = format!("{param}.headers");
        let Value::Object(map) = given else {
            return Err(ApiError::invalid(
                format!("'{hp}' must be an object of strings."),
                Some(&hp),
            ));
        };
        for (k, v) in map {
            let value = v.as_str().and_then(|v| HeaderValue::from_str(v).ok());
            let (Ok(name), Some(mut value)) = (HeaderName::from_bytes(k.as_bytes()), value) else {
                return Err(ApiError::invalid(
                    format!("Invalid header {k:?} in '{hp}': names and values must be valid HTTP header text."),
                    Some(&hp),
                ));
            };
            value.set_sensitive(true);
            headers.insert(name, value);
        }
    }
    if let Some(token) = string("authorization")? {
        let ap = format!("{param}.authorization");
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            ApiError::invalid(format!("Invalid '{ap}': not valid header text."), Some(&ap))
        })?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    let allowed = field("allowed_tools")
        .map(|v| ToolFilter::parse(v, &format!("{param}.allowed_tools")))
        .transpose()?;
    let approval = Approval::parse(
        field("require_approval"),
        &format!("{param}.require_approval"),
    )?;
    let mut echo = tool.clone();
    if let Some(map) = echo.as_object_mut() {
        // Secrets stay out of the response (and of the store).
        map.remove("authorization");
        map.remove("headers");
    }
    Ok(Ok(ServerSpec {
        label: label.to_string(),
        endpoint: Endpoint { url, headers },
        allowed,
        approval,
        description: string("server_description")?
            .unwrap_or_default()
            .to_string(),
        echo,
    }))
}

/// `schema` with `additionalProperties: false` on every object that lists
/// its properties and does not say: the arguments go to a remote server
/// that knows only those, and a sampled model left free to add keys can
/// write junk ones until its token budget runs out.
fn closed(schema: &Value) -> Value {
    let mut schema = schema.clone();
    close_objects(&mut schema, 0);
    schema
}

fn close_objects(schema: &mut Value, depth: usize) {
    let Value::Object(map) = schema else { return };
    if depth > 32 {
        return;
    }
    if map.get("properties").is_some_and(Value::is_object)
        && !map.contains_key("additionalProperties")
    {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    if let Some(Value::Object(props)) = map.get_mut("properties") {
        for sub in props.values_mut() {
            close_objects(sub, depth + 1);
        }
    }
    if let Some(items) = map.get_mut("items") {
        close_objects(items, depth + 1);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(list)) = map.get_mut(key) {
            for sub in list {
                close_objects(sub, depth + 1);
            }
        }
    }
}

/// An MCP tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct McpEntry {
    /// `NAMESPACE.TOOL`, as the model writes it.
    pub recipient: String,
    pub server_label: String,
    /// The tool's name on its server.
    pub name: String,
    /// A call waits for the client's approval.
    pub approval: bool,
}

/// The MCP tools of a response, by recipient.
#[derive(Debug, Clone, Default)]
pub(crate) struct McpCatalog {
    entries: Vec<McpEntry>,
}

impl McpCatalog {
    pub fn find(&self, recipient: &str) -> Option<&McpEntry> {
        self.entries.iter().find(|e| e.recipient == recipient)
    }

    pub fn recipients(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.recipient.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What one call gave: the item's fields and the model's text.
#[derive(Debug, Clone)]
pub(crate) struct McpOutcome {
    pub output: Option<String>,
    /// OpenAI's `McpToolCallError` shape.
    pub error: Option<Value>,
    /// What the model reads.
    pub text: String,
}

impl McpOutcome {
    fn from_result(result: Result<CallResult, McpError>) -> McpOutcome {
        match result {
            Ok(r) if r.is_error => {
                let text = r.text();
                McpOutcome {
                    output: None,
                    error: Some(json!({"type": "mcp_tool_execution_error", "content": r.content})),
                    text: format!("Error: {text}"),
                }
            }
            Ok(r) => {
                let text = r.text();
                McpOutcome {
                    output: Some(text.clone()),
                    error: None,
                    text,
                }
            }
            Err(e) => McpOutcome::failed(&e),
        }
    }

    fn failed(e: &McpError) -> McpOutcome {
        let error = match e {
            McpError::Http { status, message } => {
                json!({"type": "http_error", "code": status, "message": message})
            }
            McpError::Protocol { code, message } => {
                json!({"type": "mcp_protocol_error", "code": code, "message": message})
            }
        };
        McpOutcome {
            output: None,
            error: Some(error),
            text: format!("Error: {e}"),
        }
    }

    /// The tool message (harmony: author = the tool, to the assistant, on
    /// the call's channel).
    pub fn message(&self, recipient: &str, channel: Option<&str>) -> Message {
        let mut text = self.text.clone();
        if text.chars().count() > MAX_RESULT_CHARS {
            text = text.chars().take(MAX_RESULT_CHARS).collect();
            text.push_str("\n[output truncated]");
        }
        Message::from_author_and_content(Author::new(Role::Tool, recipient), text)
            .with_recipient("assistant")
            .with_channel(channel.unwrap_or("commentary"))
    }
}

/// The MCP servers of one response and their sessions.
pub(crate) struct McpRunner {
    settings: McpSettings,
    servers: Vec<(ServerSpec, Option<Session>)>,
    pub catalog: McpCatalog,
}

impl McpRunner {
    /// The last message when it is a call to one of our MCP tools:
    /// (the tool, channel, arguments).
    pub fn pending_call(&self, messages: &[Message]) -> Option<(McpEntry, Option<String>, String)> {
        let last = messages.last()?;
        let entry = self.catalog.find(last.recipient.as_deref()?)?;
        Some((entry.clone(), last.channel.clone(), last.text()))
    }

    /// Run `tools/call` on server `label` (opening a session when the
    /// tools came from an `mcp_list_tools` item).
    pub async fn call(&mut self, label: &str, name: &str, arguments: &str) -> McpOutcome {
        let args = match serde_json::from_str::<Value>(arguments) {
            Ok(v @ Value::Object(_)) => v,
            _ if arguments.trim().is_empty() => json!({}),
            _ => {
                return McpOutcome::failed(&McpError::Protocol {
                    code: -32602,
                    message: "the arguments are not a JSON object".into(),
                })
            }
        };
        let settings = self.settings;
        let Some((spec, session)) = self.servers.iter_mut().find(|(s, _)| s.label == label) else {
            return McpOutcome::failed(&McpError::Protocol {
                code: -32602,
                message: format!("no MCP server labelled {label:?} in this request"),
            });
        };
        if session.is_none() {
            match Session::connect(spec.endpoint.clone(), &settings).await {
                Ok(s) => *session = Some(s),
                Err(e) => return McpOutcome::failed(&e),
            }
        }
        let Some(s) = session.as_mut() else {
            return McpOutcome::failed(&McpError::Protocol {
                code: CONNECTION_CLOSED,
                message: "no session".into(),
            });
        };
        McpOutcome::from_result(s.call_tool(name, args).await)
    }
}

impl Drop for McpRunner {
    /// End the sessions in the background: the response does not wait.
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for (_, session) in self.servers.drain(..) {
            if let Some(s) = session {
                runtime.spawn(s.close());
            }
        }
    }
}

/// What earlier items say: tool lists already fetched (by server label),
/// approval requests, and this request's approval answers still to act on.
#[derive(Debug, Default)]
pub(crate) struct Carried {
    lists: HashMap<String, Vec<McpTool>>,
    requests: Vec<ApprovalRequest>,
    responses: Vec<ApprovalResponse>,
}

#[derive(Debug, Clone)]
struct ApprovalRequest {
    id: String,
    server_label: String,
    name: String,
    arguments: String,
}

#[derive(Debug, Clone)]
struct ApprovalResponse {
    request_id: String,
    approve: bool,
    reason: Option<String>,
    param: String,
}

/// Approval requests already answered by an `mcp_call` item.
fn answered(items: &[Value]) -> HashSet<String> {
    items
        .iter()
        .filter(|i| i.get("type").and_then(Value::as_str) == Some("mcp_call"))
        .filter_map(|i| i.get("approval_request_id").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// Read the MCP items of earlier responses' output (oldest first) and of
/// the input.
pub(crate) fn carried(previous: &[Value], input: Option<&Value>) -> Result<Carried, ApiError> {
    let input = input.and_then(Value::as_array).cloned().unwrap_or_default();
    let mut done = answered(previous);
    done.extend(answered(&input));
    let mut out = Carried::default();
    let text = |i: &Value, k: &str| i.get(k).and_then(Value::as_str).map(str::to_string);
    for (from_input, idx, item) in previous
        .iter()
        .enumerate()
        .map(|(i, v)| (false, i, v))
        .chain(input.iter().enumerate().map(|(i, v)| (true, i, v)))
    {
        match item.get("type").and_then(Value::as_str) {
            Some("mcp_list_tools") => {
                let ok = item.get("error").is_none_or(Value::is_null);
                if let (Some(label), true) = (text(item, "server_label"), ok) {
                    let tools = item
                        .get("tools")
                        .and_then(Value::as_array)
                        .map(|t| t.iter().filter_map(McpTool::from_json).collect())
                        .unwrap_or_default();
                    out.lists.insert(label, tools);
                }
            }
            Some("mcp_approval_request") => {
                if let (Some(id), Some(server_label), Some(name)) = (
                    text(item, "id"),
                    text(item, "server_label"),
                    text(item, "name"),
                ) {
                    out.requests.push(ApprovalRequest {
                        id,
                        server_label,
                        name,
                        arguments: text(item, "arguments").unwrap_or_else(|| "{}".into()),
                    });
                }
            }
            Some("mcp_approval_response") if from_input => {
                let param = format!("input[{idx}]");
                let request_id = text(item, "approval_request_id").ok_or_else(|| {
                    let p = format!("{param}.approval_request_id");
                    ApiError::invalid(format!("Missing or non-string parameter '{p}'."), Some(&p))
                })?;
                let approve = item
                    .get("approve")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| {
                        let p = format!("{param}.approve");
                        ApiError::invalid(
                            format!("Missing or non-boolean parameter '{p}'."),
                            Some(&p),
                        )
                    })?;
                if !done.contains(&request_id) {
                    out.responses.push(ApprovalResponse {
                        request_id,
                        approve,
                        reason: text(item, "reason"),
                        param,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The harmony messages of an MCP input item: `mcp_call` is a call and
/// its result; an `mcp_approval_request` not yet answered is the pending
/// call; tool lists and approval answers carry no message (see
/// [`carried`]). `None`: not an MCP item.
pub(crate) fn input_messages(kind: &str, item: &Value, items: &[Value]) -> Option<Vec<Message>> {
    let text = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default();
    let recipient = || recipient_for(text("server_label"), text("name"));
    let arguments = || {
        Some(text("arguments"))
            .filter(|a| !a.is_empty())
            .unwrap_or("{}")
            .to_string()
    };
    match kind {
        "mcp_call" => {
            let result = match item.get("output").and_then(Value::as_str) {
                Some(out) => out.to_string(),
                None => format!("Error: {}", error_text(item.get("error"))),
            };
            Some(vec![
                prompt::function_call_message(&recipient(), &arguments()),
                prompt::function_output_message(&recipient(), &result),
            ])
        }
        "mcp_approval_request" => {
            if answered(items).contains(text("id")) {
                // The `mcp_call` item that answered it holds the call.
                return Some(Vec::new());
            }
            Some(vec![prompt::function_call_message(
                &recipient(),
                &arguments(),
            )])
        }
        "mcp_list_tools" | "mcp_approval_response" => Some(Vec::new()),
        _ => None,
    }
}

/// A readable line for an item's `error` (a string, or OpenAI's object).
fn error_text(error: Option<&Value>) -> String {
    match error {
        Some(Value::String(s)) => s.clone(),
        Some(e @ Value::Object(_)) => e
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string()),
        _ => "the call failed".into(),
    }
}

/// A request's MCP tools, ready: namespaces for the prompt, sessions, and
/// the output items made before generation (tool lists fetched now, calls
/// approved by this request).
pub(crate) struct Prepared {
    pub namespaces: Vec<FunctionNamespace>,
    pub runner: Option<McpRunner>,
    pub items: Vec<Value>,
    pub echo: Vec<Value>,
    pub warnings: Vec<String>,
    /// Labels of servers whose tools could not be listed.
    pub failed: Vec<String>,
}

impl Prepared {
    pub fn catalog(&self) -> McpCatalog {
        self.runner
            .as_ref()
            .map(|r| r.catalog.clone())
            .unwrap_or_default()
    }

    /// Every MCP tool as a function named by its recipient (`L.X`), for
    /// checking a `tool_choice`.
    pub fn choosable(&self) -> Vec<FunctionTool> {
        self.namespaces
            .iter()
            .flat_map(|ns| {
                ns.tools.iter().map(move |t| FunctionTool {
                    name: format!("{}.{}", ns.name, t.name),
                    ..t.clone()
                })
            })
            .collect()
    }

    /// `tool_choice` in the form `parse_tool_choice` reads: an MCP choice
    /// (`{"type": "mcp", "server_label", "name"}`) names its recipient; a
    /// choice that only a server which failed could satisfy falls back to
    /// `auto` (the failure is in the `mcp_list_tools` item), a warning.
    pub fn tool_choice(
        &mut self,
        value: Option<&Value>,
        others_empty: bool,
    ) -> Result<Option<Value>, ApiError> {
        let Some(value) = value else { return Ok(None) };
        let catalog = self.catalog();
        if value.get("type").and_then(Value::as_str) == Some("mcp") {
            let label = value
                .get("server_label")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "Missing required parameter: 'tool_choice.server_label'.",
                        Some("tool_choice.server_label"),
                    )
                })?;
            let name = value.get("name").and_then(Value::as_str);
            let on_server = |e: &&McpEntry| e.server_label == label;
            if self.runner.is_none() {
                self.warnings.push(
                    "tool_choice names an MCP tool, which this server does not run: using 'auto'"
                        .into(),
                );
                return Ok(Some(json!("auto")));
            }
            if self.failed.iter().any(|l| l == label) {
                self.warnings.push(format!(
                    "tool_choice names the MCP server {label:?}, whose tools could not be listed: using 'auto'"
                ));
                return Ok(Some(json!("auto")));
            }
            return match name {
                Some(name) => {
                    let recipient = recipient_for(label, name);
                    if catalog.find(&recipient).is_none() {
                        return Err(ApiError::invalid(
                            format!("'tool_choice' names the tool {name:?} of MCP server {label:?}, which is not among its allowed tools."),
                            Some("tool_choice"),
                        ));
                    }
                    Ok(Some(json!({"type": "function", "name": recipient})))
                }
                None if catalog.entries.iter().any(|e| on_server(&e)) => {
                    // Any tool: those of other servers are allowed too (the
                    // header constraint cannot single out one namespace).
                    Ok(Some(json!("required")))
                }
                None => Err(ApiError::invalid(
                    format!("'tool_choice' names the MCP server {label:?}, which is not in 'tools' or has no allowed tools."),
                    Some("tool_choice"),
                )),
            };
        }
        let required = value.as_str() == Some("required");
        if required && others_empty && catalog.is_empty() && !self.failed.is_empty() {
            self.warnings.push(
                "tool_choice 'required' but no MCP server could list its tools: using 'auto'"
                    .into(),
            );
            return Ok(Some(json!("auto")));
        }
        Ok(Some(value.clone()))
    }
}

/// Check the request's `mcp` tools (`(param, tool)` pairs) and, with MCP
/// enabled, list their tools and run the calls this request approves.
/// `taken`: the request's own namespace names. Approved calls' tool
/// messages are appended to `history`.
pub(crate) async fn prepare(
    tools: &[(String, Value)],
    settings: Option<McpSettings>,
    taken: &[String],
    carried: Carried,
    history: &mut Vec<Message>,
) -> Result<Prepared, ApiError> {
    let mut prepared = Prepared {
        namespaces: Vec::new(),
        runner: None,
        items: Vec::new(),
        echo: Vec::new(),
        warnings: Vec::new(),
        failed: Vec::new(),
    };
    let Some(settings) = settings else {
        // As with every hosted tool the server does not run: left out,
        // whatever its fields say.
        for (param, _) in tools {
            prepared.warnings.push(format!(
                "tool \"mcp\" ({param}) left out: this server does not run it (start `gpt-oss serve` with --mcp on)"
            ));
        }
        if !carried.responses.is_empty() {
            prepared.warnings.push(
                "mcp_approval_response skipped: this server does not run MCP tools (start `gpt-oss serve` with --mcp on)".into(),
            );
        }
        return Ok(prepared);
    };
    let mut specs = Vec::new();
    for (param, tool) in tools {
        match parse_spec(tool, param)? {
            Ok(spec) => specs.push((param.clone(), spec)),
            Err(warning) => prepared.warnings.push(warning),
        }
    }
    let mut seen: Vec<String> = taken.to_vec();
    for (param, spec) in &specs {
        let ns = namespace_for(&spec.label);
        if seen.contains(&ns) {
            let p = format!("{param}.server_label");
            return Err(ApiError::invalid(
                format!("Duplicate tool namespace {ns:?} from '{p}' ({:?}): give each MCP server its own label.", spec.label),
                Some(&p),
            ));
        }
        seen.push(ns);
    }

    // List the tools of every server not listed before, all at once.
    let listings = futures_util::future::join_all(specs.iter().map(|(_, spec)| {
        let known = carried.lists.get(&spec.label).cloned();
        async move {
            if let Some(tools) = known {
                return (None, Ok(tools));
            }
            match Session::connect(spec.endpoint.clone(), &settings).await {
                Ok(mut session) => {
                    let listed = session.list_tools().await;
                    (Some(session), listed)
                }
                Err(e) => (None, Err(e)),
            }
        }
    }))
    .await;

    let mut catalog = McpCatalog::default();
    let mut servers = Vec::new();
    for ((param, spec), (session, listed)) in specs.into_iter().zip(listings) {
        let fetched = session.is_some() || listed.is_err();
        let tools: Vec<McpTool> = match listed {
            Ok(tools) => tools
                .into_iter()
                .filter(|t| spec.allowed.as_ref().is_none_or(|f| f.matches(t)))
                .collect(),
            Err(e) => {
                prepared.failed.push(spec.label.clone());
                prepared.warnings.push(format!(
                    "MCP server {:?} ({param}): cannot list its tools: {e}",
                    spec.label
                ));
                prepared.items.push(json!({
                    "type": "mcp_list_tools", "id": ids::new_id("mcpl_"),
                    "server_label": spec.label, "tools": [], "error": e.to_string(),
                }));
                prepared.echo.push(spec.echo.clone());
                servers.push((spec, session));
                continue;
            }
        };
        if fetched {
            prepared.items.push(json!({
                "type": "mcp_list_tools", "id": ids::new_id("mcpl_"),
                "server_label": spec.label,
                "tools": tools.iter().map(|t| json!({
                    "name": t.name, "description": t.description,
                    "input_schema": t.input_schema, "annotations": t.annotations,
                })).collect::<Vec<_>>(),
                "error": null,
            }));
        }
        let ns = namespace_for(&spec.label);
        let mut functions: Vec<FunctionTool> = Vec::new();
        for tool in &tools {
            let name = sanitize(&tool.name, "tool");
            if functions.iter().any(|f| f.name == name) {
                prepared.warnings.push(format!(
                    "MCP tool {:?} of {:?} left out: its name clashes with another tool's once made a harmony name",
                    tool.name, spec.label
                ));
                continue;
            }
            // A foreign schema the checks refuse still lets the tool be
            // called, with any JSON object.
            let parameters = prompt::check_schema(&tool.input_schema, "input_schema", true)
                .map(|()| closed(&tool.input_schema))
                .map_err(|e| {
                    prepared.warnings.push(format!(
                        "MCP tool {:?} of {:?}: its input schema is not usable ({e}); any JSON object is accepted",
                        tool.name, spec.label
                    ))
                })
                .ok();
            catalog.entries.push(McpEntry {
                recipient: format!("{ns}.{name}"),
                server_label: spec.label.clone(),
                name: tool.name.clone(),
                approval: spec.approval.required(tool),
            });
            functions.push(FunctionTool {
                name,
                description: tool.description.clone().unwrap_or_default(),
                parameters,
                strict: false,
            });
        }
        if !functions.is_empty() {
            let description = if spec.description.is_empty() {
                format!("Tools of the MCP server {:?}.", spec.label)
            } else {
                spec.description.clone()
            };
            prepared.namespaces.push(FunctionNamespace {
                name: ns,
                description,
                tools: functions,
            });
        }
        prepared.echo.push(spec.echo.clone());
        servers.push((spec, session));
    }
    let mut runner = McpRunner {
        settings,
        servers,
        catalog,
    };

    // Calls the client approved (or refused) since the last response.
    for answer in &carried.responses {
        let request = carried
            .requests
            .iter()
            .find(|r| r.id == answer.request_id)
            .ok_or_else(|| {
                let p = format!("{}.approval_request_id", answer.param);
                ApiError::invalid(
                    format!("No mcp_approval_request with id {:?} in the input or the previous response.", answer.request_id),
                    Some(&p),
                )
            })?;
        if !runner
            .servers
            .iter()
            .any(|(s, _)| s.label == request.server_label)
        {
            return Err(ApiError::invalid(
                format!(
                    "The approved call is for the MCP server {:?}, which is not in 'tools'.",
                    request.server_label
                ),
                Some("tools"),
            ));
        }
        let recipient = recipient_for(&request.server_label, &request.name);
        if !answer.approve {
            let reason = answer
                .reason
                .as_deref()
                .map(|r| format!(" Reason: {r}"))
                .unwrap_or_default();
            let refused = McpOutcome {
                output: None,
                error: None,
                text: format!("The user declined this call; it was not run.{reason}"),
            };
            history.push(refused.message(&recipient, None));
            continue;
        }
        let outcome = runner
            .call(&request.server_label, &request.name, &request.arguments)
            .await;
        history.push(outcome.message(&recipient, None));
        let mut item = json!({
            "type": "mcp_call", "id": ids::new_id("mcp_"),
            "server_label": request.server_label, "name": request.name,
            "arguments": request.arguments, "approval_request_id": request.id,
            "output": null, "error": null, "status": "in_progress",
        });
        finish_call(&mut item, &outcome);
        prepared.items.push(item);
    }
    prepared.runner = Some(runner);
    Ok(prepared)
}

fn finish_call(item: &mut Value, outcome: &McpOutcome) {
    item["output"] = json!(outcome.output);
    item["error"] = outcome.error.clone().unwrap_or(Value::Null);
    item["status"] = json!(if outcome.error.is_some() {
        "failed"
    } else {
        "completed"
    });
}

/// The stream events of an item made before generation (a tool list, an
/// approved call), all at once.
pub(crate) fn prelude_events(item: &Value, output_index: usize) -> Vec<Value> {
    let id = item["id"].clone();
    let ev = |kind: &str| json!({"type": kind, "output_index": output_index, "item_id": id});
    let mut events = Vec::new();
    match item["type"].as_str().unwrap_or_default() {
        "mcp_list_tools" => {
            let mut added = item.clone();
            added["tools"] = json!([]);
            added["error"] = Value::Null;
            events.push(json!({"type": "response.output_item.added", "output_index": output_index, "item": added}));
            events.push(ev("response.mcp_list_tools.in_progress"));
            events.push(ev(if item["error"].is_null() {
                "response.mcp_list_tools.completed"
            } else {
                "response.mcp_list_tools.failed"
            }));
        }
        _ => {
            let mut added = item.clone();
            added["status"] = json!("in_progress");
            added["output"] = Value::Null;
            added["error"] = Value::Null;
            events.push(json!({"type": "response.output_item.added", "output_index": output_index, "item": added}));
            events.push(ev("response.mcp_call.in_progress"));
            events.push(
                json!({"type": "response.mcp_call_arguments.done", "output_index": output_index,
                "item_id": id, "arguments": item["arguments"]}),
            );
            events.push(ev(if item["error"].is_null() {
                "response.mcp_call.completed"
            } else {
                "response.mcp_call.failed"
            }));
        }
    }
    events.push(
        json!({"type": "response.output_item.done", "output_index": output_index, "item": item}),
    );
    events
}

/// The item of a call the model starts (its arguments to come) and the
/// events announcing it: an `mcp_call`, or an `mcp_approval_request` when
/// the call waits for the client.
pub(crate) fn call_started(entry: &McpEntry, output_index: usize) -> (Value, Vec<Value>) {
    let item = if entry.approval {
        json!({"type": "mcp_approval_request", "id": ids::new_id("mcpr_"),
               "server_label": entry.server_label, "name": entry.name, "arguments": ""})
    } else {
        json!({"type": "mcp_call", "id": ids::new_id("mcp_"), "server_label": entry.server_label,
               "name": entry.name, "arguments": "", "output": null, "error": null, "status": "in_progress"})
    };
    let mut events = vec![
        json!({"type": "response.output_item.added", "output_index": output_index, "item": item}),
    ];
    if !entry.approval {
        events.push(json!({"type": "response.mcp_call.in_progress", "output_index": output_index, "item_id": item["id"]}));
    }
    (item, events)
}

/// A piece of a call's arguments (streamed for `mcp_call` only).
pub(crate) fn arguments_delta(item: &Value, output_index: usize, delta: &str) -> Vec<Value> {
    if item["type"] != "mcp_call" {
        return Vec::new();
    }
    vec![
        json!({"type": "response.mcp_call_arguments.delta", "output_index": output_index, "item_id": item["id"], "delta": delta}),
    ]
}

/// The call's arguments are complete. An approval request is done; a call
/// now waits for its result ([`call_finished`]).
pub(crate) fn arguments_done(item: &mut Value, output_index: usize, arguments: &str) -> Vec<Value> {
    item["arguments"] = json!(arguments);
    if item["type"] == "mcp_call" {
        return vec![
            json!({"type": "response.mcp_call_arguments.done", "output_index": output_index, "item_id": item["id"], "arguments": arguments}),
        ];
    }
    vec![
        json!({"type": "response.output_item.done", "output_index": output_index, "item": item.clone()}),
    ]
}

/// Complete a call's item with its outcome; the events that close it.
pub(crate) fn call_finished(
    item: &mut Value,
    outcome: &McpOutcome,
    output_index: usize,
) -> Vec<Value> {
    finish_call(item, outcome);
    let kind = if outcome.error.is_some() {
        "response.mcp_call.failed"
    } else {
        "response.mcp_call.completed"
    };
    vec![
        json!({"type": kind, "output_index": output_index, "item_id": item["id"]}),
        json!({"type": "response.output_item.done", "output_index": output_index, "item": item.clone()}),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, read_only: bool) -> McpTool {
        McpTool {
            name: name.into(),
            description: None,
            input_schema: json!({"type": "object"}),
            annotations: Some(json!({"readOnlyHint": read_only})),
        }
    }

    #[test]
    fn labels_and_names_become_harmony_names() {
        assert_eq!(namespace_for("my server.v2"), "my_server_v2");
        assert_eq!(namespace_for("python"), "mcp_python");
        assert_eq!(namespace_for(""), "mcp");
        assert_eq!(
            recipient_for("deepwiki", "ask.question"),
            "deepwiki.ask_question"
        );
        assert!(prompt::is_tool_name(&namespace_for(&"x".repeat(100))));
    }

    #[test]
    fn argument_objects_are_closed_unless_the_schema_says() {
        let schema = json!({"type": "object", "properties": {
            "a": {"type": "integer"},
            "o": {"type": "object", "properties": {"x": {"type": "string"}}},
            "free": {"type": "object", "properties": {}, "additionalProperties": true},
        }});
        let c = closed(&schema);
        assert_eq!(c["additionalProperties"], json!(false));
        assert_eq!(c["properties"]["o"]["additionalProperties"], json!(false));
        assert_eq!(c["properties"]["free"]["additionalProperties"], json!(true));
        assert!(c["properties"]["a"].get("additionalProperties").is_none());
    }

    #[test]
    fn filters_and_approval_rules() {
        let names = ToolFilter::parse(&json!(["add"]), "p").expect("list");
        assert!(names.matches(&tool("add", false)) && !names.matches(&tool("echo", false)));
        let ro = ToolFilter::parse(&json!({"read_only": true}), "p").expect("object");
        assert!(ro.matches(&tool("echo", true)) && !ro.matches(&tool("add", false)));
        assert!(ToolFilter::parse(&json!("add"), "p").is_err());
        assert!(ToolFilter::parse(&json!({"tool_names": [1]}), "p").is_err());

        let rule =
            Approval::parse(Some(&json!({"never": {"tool_names": ["echo"]}})), "p").expect("rule");
        assert!(!rule.required(&tool("echo", false)));
        assert!(rule.required(&tool("add", false)));
        assert!(Approval::parse(None, "p")
            .expect("default")
            .required(&tool("x", false)));
        assert!(!Approval::parse(Some(&json!("never")), "p")
            .expect("never")
            .required(&tool("x", false)));
        assert!(Approval::parse(Some(&json!("sometimes")), "p").is_err());
    }

    #[test]
    fn specs_are_checked_and_secrets_not_echoed() {
        let ok = parse_spec(
            &json!({"type": "mcp", "server_label": "calc", "server_url": "http://127.0.0.1:1/mcp",
                    "headers": {"X-Key": "k"}, "authorization": "tok"}),
            "tools[0]",
        )
        .expect("valid")
        .expect("a server");
        assert_eq!(ok.endpoint.headers.len(), 2);
        assert!(ok.echo.get("authorization").is_none() && ok.echo.get("headers").is_none());
        for bad in [
            json!({"type": "mcp", "server_url": "http://x"}),
            json!({"type": "mcp", "server_label": "a", "server_url": "ftp://x"}),
            json!({"type": "mcp", "server_label": "a", "server_url": "http://x", "headers": {"a b": "c"}}),
            json!({"type": "mcp", "server_label": "a", "server_url": "http://x", "require_approval": 3}),
        ] {
            assert!(parse_spec(&bad, "tools[0]").is_err(), "{bad}");
        }
        let connector = parse_spec(
            &json!({"type": "mcp", "server_label": "g", "connector_id": "connector_gmail"}),
            "t",
        );
        assert!(matches!(connector, Ok(Err(_))));
    }

    #[test]
    fn carried_items_skip_answered_approvals() {
        let input = json!([
            {"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "calc", "tools": [{"name": "add", "input_schema": {"type": "object"}}]},
            {"type": "mcp_approval_request", "id": "mcpr_1", "server_label": "calc", "name": "add", "arguments": "{\"a\":1}"},
            {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": true},
            {"type": "mcp_call", "id": "mcp_1", "server_label": "calc", "name": "add", "arguments": "{\"a\":1}", "output": "1", "approval_request_id": "mcpr_1"},
            {"type": "mcp_approval_request", "id": "mcpr_2", "server_label": "calc", "name": "add", "arguments": "{}"},
            {"type": "mcp_approval_response", "approval_request_id": "mcpr_2", "approve": false, "reason": "no"},
        ]);
        let c = carried(&[], Some(&input)).expect("valid");
        assert_eq!(c.lists.get("calc").map(Vec::len), Some(1));
        assert_eq!(c.requests.len(), 2);
        assert_eq!(c.responses.len(), 1);
        assert_eq!(c.responses[0].request_id, "mcpr_2");
        let items = input.as_array().cloned().unwrap_or_default();
        let answered_request = input_messages("mcp_approval_request", &items[1], &items);
        assert_eq!(answered_request.map(|m| m.len()), Some(0));
        let call = input_messages("mcp_call", &items[3], &items).expect("an MCP item");
        assert_eq!(call.len(), 2);
        assert_eq!(call[0].recipient.as_deref(), Some("calc.add"));
        assert_eq!(call[1].text(), "1");
        assert!(input_messages("function_call", &items[3], &items).is_none());
    }
}
