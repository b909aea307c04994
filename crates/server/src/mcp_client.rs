//! A client for remote MCP servers over the Streamable HTTP transport: one
//! session per response (`initialize`, `notifications/initialized`, then
//! `tools/list` and `tools/call`), JSON-RPC 2.0 in POST bodies, answers read
//! as `application/json` or as a `text/event-stream` until the reply with
//! our id arrives. Every exchange runs under a wall clock and a size cap, so
//! a slow or hostile server costs a request its time limit, never a hang.
//!
//! Why hand-written rather than the official `rmcp` SDK: we need four
//! methods of the client side, while `rmcp`'s streamable HTTP client pulls
//! reqwest 0.13 (the workspace is on 0.12: a second HTTP and TLS stack),
//! its worker and transport layers, and macros for servers we do not run.
//! reqwest 0.12's async client (already linked for the browser tool) and
//! ~300 lines cover the transport.
//!
//! Does not own: which tools a request may see, or the Responses items
//! (`mcp_tools`).

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use serde_json::{json, Value};

/// The protocol revision we ask for; the server may answer with an older
/// one, which we then send in `MCP-Protocol-Version`.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// Largest reply read from an MCP server (bytes).
const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// Most `tools/list` pages followed.
const MAX_LIST_PAGES: usize = 64;

/// Time limits of the MCP client (`gpt-oss serve --mcp on`).
#[derive(Debug, Clone, Copy)]
pub struct McpSettings {
    /// TCP (and TLS) connect limit.
    pub connect_timeout: Duration,
    /// Limit of one JSON-RPC exchange, reply included.
    pub call_timeout: Duration,
}

impl Default for McpSettings {
    fn default() -> Self {
        McpSettings {
            connect_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(30),
        }
    }
}

/// Why an MCP exchange failed.
#[derive(Debug, Clone, PartialEq)]
pub enum McpError {
    /// The server answered with an HTTP error status.
    Http { status: u16, message: String },
    /// A JSON-RPC error object, or (with the MCP SDKs' codes) a transport
    /// failure: -32000 unreachable or closed, -32001 timed out.
    Protocol { code: i64, message: String },
}

/// MCP SDKs' code for a closed or failed connection.
pub const CONNECTION_CLOSED: i64 = -32000;
/// MCP SDKs' code for a request that got no answer in time.
pub const REQUEST_TIMEOUT: i64 = -32001;

impl McpError {
    fn transport(message: impl Into<String>) -> McpError {
        McpError::Protocol {
            code: CONNECTION_CLOSED,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for McpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            McpError::Http { status, message } if message.is_empty() => {
                write!(f, "the MCP server answered HTTP {status}")
            }
            McpError::Http { status, message } => {
                write!(f, "the MCP server answered HTTP {status}: {message}")
            }
            McpError::Protocol { message, .. } => f.write_str(message),
        }
    }
}

/// A tool as `tools/list` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct McpTool {
    pub name: String,
    pub description: Option<String>,
    pub input_schema: Value,
    pub annotations: Option<Value>,
}

impl McpTool {
    /// Read one entry of `tools/list` (or of an `mcp_list_tools` item, whose
    /// field is `input_schema`); `None` without a name.
    pub fn from_json(v: &Value) -> Option<McpTool> {
        let name = v.get("name")?.as_str()?.to_string();
        let input_schema = v
            .get("inputSchema")
            .or_else(|| v.get("input_schema"))
            .filter(|s| s.is_object())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        Some(McpTool {
            name,
            description: v
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            input_schema,
            annotations: v.get("annotations").filter(|a| a.is_object()).cloned(),
        })
    }

    /// Whether the server marks the tool as read-only (`readOnlyHint`).
    pub fn read_only(&self) -> bool {
        self.annotations
            .as_ref()
            .and_then(|a| a.get("readOnlyHint"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// The result of `tools/call`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    /// The `content` parts as sent.
    pub content: Vec<Value>,
    pub structured: Option<Value>,
    /// The tool reported a failure (`isError`).
    pub is_error: bool,
}

impl CallResult {
    /// The result as the model reads it: text parts joined, other parts
    /// named; structured content when there is no text.
    pub fn text(&self) -> String {
        let mut parts = Vec::new();
        for part in &self.content {
            let field = |k: &str| part.get(k).and_then(Value::as_str).unwrap_or_default();
            let text = match field("type") {
                "text" => field("text").to_string(),
                "image" | "audio" => format!("[{}: {}]", field("type"), field("mimeType")),
                "resource_link" => format!("[resource link: {}]", field("uri")),
                "resource" => {
                    let res = part.get("resource");
                    match res.and_then(|r| r.get("text")).and_then(Value::as_str) {
                        Some(t) => t.to_string(),
                        None => format!(
                            "[resource: {}]",
                            res.and_then(|r| r.get("uri"))
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                        ),
                    }
                }
                other => format!("[{other} content]"),
            };
            parts.push(text);
        }
        if parts.iter().all(String::is_empty) {
            if let Some(s) = &self.structured {
                return s.to_string();
            }
        }
        parts.join("\n")
    }
}

/// Where an MCP server is and what to send it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: reqwest::Url,
    /// The request's `headers` and `authorization`, checked already.
    pub headers: HeaderMap,
}

/// One MCP session (Streamable HTTP).
pub struct Session {
    http: reqwest::Client,
    endpoint: Endpoint,
    /// `Mcp-Session-Id` handed out at `initialize`, sent back every time.
    session_id: Option<HeaderValue>,
    /// The negotiated revision, sent as `MCP-Protocol-Version`.
    protocol_version: Option<HeaderValue>,
    next_id: u64,
    call_timeout: Duration,
}

impl Session {
    /// Open a session: `initialize`, then `notifications/initialized`.
    pub async fn connect(endpoint: Endpoint, settings: &McpSettings) -> Result<Session, McpError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .build()
            .map_err(|e| McpError::transport(format!("cannot start the HTTP client: {e}")))?;
        let mut session = Session {
            http,
            endpoint,
            session_id: None,
            protocol_version: None,
            next_id: 1,
            call_timeout: settings.call_timeout,
        };
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "gpt-oss-rs", "version": env!("CARGO_PKG_VERSION")},
        });
        let result = session.request("initialize", params).await?;
        session.protocol_version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .and_then(|v| HeaderValue::from_str(v).ok());
        session.notify("notifications/initialized").await?;
        Ok(session)
    }

    /// Every tool of the server (following `nextCursor`).
    pub async fn list_tools(&mut self) -> Result<Vec<McpTool>, McpError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let result = self.request("tools/list", params).await?;
            let page = result
                .get("tools")
                .and_then(Value::as_array)
                .ok_or_else(|| McpError::transport("tools/list answered without a tools list"))?;
            tools.extend(page.iter().filter_map(McpTool::from_json));
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() && cursor.as_deref() != Some(next) => {
                    cursor = Some(next.to_string())
                }
                _ => return Ok(tools),
            }
        }
        Ok(tools)
    }

    /// Call a tool with JSON `arguments` (an object).
    pub async fn call_tool(
        &mut self,
        name: &str,
        arguments: Value,
    ) -> Result<CallResult, McpError> {
        let result = self
            .request("tools/call", json!({"name": name, "arguments": arguments}))
            .await?;
        Ok(CallResult {
            content: result
                .get("content")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            structured: result.get("structuredContent").cloned(),
            is_error: result
                .get("isError")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// End the session (`DELETE`, as the transport asks; best effort).
    pub async fn close(self) {
        let Some(id) = self.session_id.clone() else {
            return;
        };
        let request = self
            .http
            .delete(self.endpoint.url.clone())
            .headers(self.endpoint.headers.clone())
            .header("mcp-session-id", id)
            .timeout(Duration::from_secs(2));
        let _ = request.send().await;
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = self.endpoint.headers.clone();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(id) = &self.session_id {
            headers.insert(HeaderName::from_static("mcp-session-id"), id.clone());
        }
        if let Some(v) = &self.protocol_version {
            headers.insert(HeaderName::from_static("mcp-protocol-version"), v.clone());
        }
        headers
    }

    /// One JSON-RPC request; its `result`, or the error.
    async fn request(&mut self, method: &str, params: Value) -> Result<Value, McpError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let limit = self.call_timeout;
        let exchange = async {
            let response = self.post(&body).await?;
            if method == "initialize" {
                self.session_id = response.headers().get("mcp-session-id").cloned();
            }
            read_reply(response, id).await
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(reply) => reply,
            Err(_) => Err(McpError::Protocol {
                code: REQUEST_TIMEOUT,
                message: format!("{method} timed out after {} s", limit.as_secs_f64()),
            }),
        }
    }

    /// A JSON-RPC notification (the server answers 202, nothing to read).
    async fn notify(&mut self, method: &str) -> Result<(), McpError> {
        let body = json!({"jsonrpc": "2.0", "method": method});
        let exchange = async {
            let response = self.post(&body).await?;
            let status = response.status();
            if !status.is_success() {
                return Err(http_error(response).await);
            }
            Ok(())
        };
        tokio::time::timeout(self.call_timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(McpError::Protocol {
                    code: REQUEST_TIMEOUT,
                    message: format!("{method} timed out"),
                })
            })
    }

    async fn post(&self, body: &Value) -> Result<reqwest::Response, McpError> {
        self.http
            .post(self.endpoint.url.clone())
            .headers(self.headers())
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| {
                McpError::transport(format!(
                    "cannot reach the MCP server at {}: {}",
                    self.endpoint.url,
                    error_chain(&e)
                ))
            })
    }
}

/// An error and its causes in one line ("error sending request: connection
/// refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

async fn http_error(mut response: reqwest::Response) -> McpError {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while body.len() < 1024 {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(1024);
    McpError::Http {
        status,
        message: String::from_utf8_lossy(&body).trim().to_string(),
    }
}

/// Read the reply to request `id` from a JSON or SSE body.
async fn read_reply(mut response: reqwest::Response, id: u64) -> Result<Value, McpError> {
    if !response.status().is_success() {
        return Err(http_error(response).await);
    }
    let sse = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    let mut read = 0usize;
    let mut events = SseReader::default();
    let mut body = Vec::new();
    loop {
        let chunk = response.chunk().await.map_err(|e| {
            McpError::transport(format!("reading the MCP reply failed: {}", error_chain(&e)))
        })?;
        let Some(chunk) = chunk else { break };
        read += chunk.len();
        if read > MAX_REPLY_BYTES {
            return Err(McpError::transport(format!(
                "the MCP reply is larger than {} MiB",
                MAX_REPLY_BYTES >> 20
            )));
        }
        if sse {
            for data in events.push(&chunk) {
                if let Some(reply) = reply_in(&data, id) {
                    return reply;
                }
            }
        } else {
            body.extend_from_slice(&chunk);
        }
    }
    if sse {
        if let Some(reply) = events.finish().and_then(|data| reply_in(&data, id)) {
            return reply;
        }
        return Err(McpError::transport(
            "the MCP server closed its event stream without answering",
        ));
    }
    let text = String::from_utf8_lossy(&body);
    reply_in(&text, id).unwrap_or_else(|| {
        Err(McpError::transport(format!(
            "the MCP server's reply is not a JSON-RPC response: {}",
            text.chars().take(200).collect::<String>()
        )))
    })
}

/// The reply to `id` in one JSON-RPC message (or batch), if it is there.
fn reply_in(data: &str, id: u64) -> Option<Result<Value, McpError>> {
    let message: Value = serde_json::from_str(data.trim()).ok()?;
    let candidates = match message {
        Value::Array(batch) => batch,
        single => vec![single],
    };
    let ours = candidates
        .into_iter()
        .find(|m| m.get("id").and_then(Value::as_u64) == Some(id))?;
    if let Some(error) = ours.get("error") {
        return Some(Err(McpError::Protocol {
            code: error.get("code").and_then(Value::as_i64).unwrap_or(-32603),
            message: error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the MCP server reported an error")
                .to_string(),
        }));
    }
    Some(Ok(ours.get("result").cloned().unwrap_or(Value::Null)))
}

/// Server-sent events, fed in chunks: the `data` of each complete event.
#[derive(Default)]
struct SseReader {
    /// Bytes of a line not yet ended.
    line: Vec<u8>,
    /// `data` lines of the event being read.
    data: Vec<String>,
}

impl SseReader {
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in chunk {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.is_empty() {
                if let Some(data) = self.dispatch() {
                    out.push(data);
                }
                continue;
            }
            let line = String::from_utf8_lossy(&line);
            if let Some(rest) = line.strip_prefix("data:") {
                self.data
                    .push(rest.strip_prefix(' ').unwrap_or(rest).to_string());
            }
            // `event:`, `id:`, `retry:` and `:` comments carry nothing we need.
        }
        out
    }

    fn dispatch(&mut self) -> Option<String> {
        if self.data.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.data).join("\n"))
    }

    /// The last event when the stream ends without a blank line.
    fn finish(mut self) -> Option<String> {
        if !self.line.is_empty() {
            let _ = self.push(b"\n");
        }
        self.dispatch()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_split_across_chunks() {
        let mut r = SseReader::default();
        assert!(r.push(b"event: message\r\nda").is_empty());
        let got = r.push(b"ta: {\"a\":\r\ndata: 1}\r\n\r\n: ping\n\ndata: x");
        assert_eq!(got, vec!["{\"a\":\n1}".to_string()]);
        assert_eq!(r.finish().as_deref(), Some("x"));
    }

    #[test]
    fn replies_are_found_by_id() {
        let ok = reply_in(r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[]}}"#, 3);
        assert_eq!(ok, Some(Ok(json!({"tools": []}))));
        assert_eq!(
            reply_in(r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#, 3),
            None
        );
        let err = reply_in(
            r#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"Unknown tool"}}]"#,
            2,
        );
        assert_eq!(
            err,
            Some(Err(McpError::Protocol {
                code: -32602,
                message: "Unknown tool".into()
            }))
        );
    }

    #[test]
    fn results_read_as_text() {
        let r = CallResult {
            content: vec![
                json!({"type": "text", "text": "7"}),
                json!({"type": "image", "data": "AAAA", "mimeType": "image/png"}),
                json!({"type": "resource", "resource": {"uri": "file:///a", "text": "body"}}),
            ],
            structured: None,
            is_error: false,
        };
        assert_eq!(r.text(), "7\n[image: image/png]\nbody");
        let structured = CallResult {
            content: vec![],
            structured: Some(json!({"sum": 3})),
            is_error: false,
        };
        assert_eq!(structured.text(), r#"{"sum":3}"#);
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_error_not_a_hang() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let endpoint = Endpoint {
            url: reqwest::Url::parse(&format!("http://127.0.0.1:{port}/mcp")).expect("url"),
            headers: HeaderMap::new(),
        };
        let err = Session::connect(endpoint, &McpSettings::default())
            .await
            .err()
            .expect("an error");
        assert!(
            matches!(
                err,
                McpError::Protocol {
                    code: CONNECTION_CLOSED,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("cannot reach"), "{err}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        // Accepts the connection and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hold = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                kept.push(s);
            }
        });
        let endpoint = Endpoint {
            url: reqwest::Url::parse(&format!("http://127.0.0.1:{port}/mcp")).expect("url"),
            headers: HeaderMap::new(),
        };
        let settings = McpSettings {
            connect_timeout: Duration::from_secs(1),
            call_timeout: Duration::from_millis(300),
        };
        let started = std::time::Instant::now();
        let err = Session::connect(endpoint, &settings)
            .await
            .err()
            .expect("an error");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(
                err,
                McpError::Protocol {
                    code: REQUEST_TIMEOUT,
                    ..
                }
            ),
            "{err:?}"
        );
        hold.abort();
    }
}
