//! The web browser backend and the handoff tool against real HTTP servers on
//! loopback: fetch, search, content-type and size guards, timeouts, no
//! network; the remote model's answer and errors; the API key never shows.

mod common;

use std::time::Duration;

use common::{Response, Server};
use gptoss_tools::browser::web::{WebBackend, WebConfig};
use gptoss_tools::browser::{BrowserConfig, BrowserTool};
use gptoss_tools::handoff::{HandoffConfig, HandoffTool};
use gptoss_tools::{Tool, ToolRegistry};

fn site() -> Server {
    Server::start(|req| {
        let path = req.path.as_str();
        if path.starts_with("/search?") {
            let q = path
                .split("q=")
                .nth(1)
                .unwrap_or("")
                .split('&')
                .next()
                .unwrap_or("");
            let body = serde_json::json!({
                "query": q,
                "results": [
                    {"title": "Tea page", "url": "http://HOST/tea.html", "content": "All about   tea."},
                    {"title": "Notes", "url": "http://HOST/notes.txt", "content": "Plain notes."}
                ]
            });
            return Response::new(200, "application/json", body.to_string());
        }
        match path {
            "/tea.html" => Response::new(
                200,
                "text/html; charset=utf-8",
                "<html><head><title>Tea</title></head><body><h1>Tea</h1><p>Oolong is partly oxidised. <a href=\"/notes.txt\">notes</a></p></body></html>",
            ),
            "/notes.txt" => Response::new(200, "text/plain", "line one\nline two about oolong"),
            "/cat.png" => Response::new(200, "image/png", vec![0x89, b'P', b'N', b'G']),
            "/big.html" => Response::new(200, "text/html", format!("<p>{}</p>", "word ".repeat(400_000))),
            "/slow" => {
                let mut r = Response::new(200, "text/plain", "late");
                r.delay = Duration::from_secs(3);
                r
            }
            _ => Response::new(404, "text/plain", "not found"),
        }
    })
}

fn web_browser(server: &Server, timeout: Duration) -> BrowserTool {
    let backend = WebBackend::new(WebConfig {
        search_url: Some(server.url("/search")),
        timeout,
        max_body_bytes: 64 * 1024,
        ..WebConfig::default()
    })
    .expect("web backend");
    BrowserTool::new(Box::new(backend), BrowserConfig::default())
}

#[test]
fn web_search_open_find() {
    let server = site();
    let host = server.addr.clone();
    let mut b = web_browser(&server, Duration::from_secs(10));
    let out = b.call("browser.search", r#"{"query": "oolong tea"}"#);
    assert!(!out.is_error, "{out:?}");
    assert!(
        out.text
            .starts_with("[0] oolong tea\n**viewing lines [0 - "),
        "{}",
        out.text
    );
    assert!(
        out.text
            .contains("L4:   * 【0†Tea page†host】 All about tea."),
        "{}",
        out.text
    );
    let reqs = server
        .requests
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    assert_eq!(reqs[0].path, "/search?q=oolong+tea&format=json");

    // The search results point at http://HOST/...; open by full URL instead.
    let url = server.url("/tea.html");
    let out = b.call(
        "browser.open",
        &serde_json::json!({ "id": url }).to_string(),
    );
    assert!(!out.is_error, "{out:?}");
    assert!(
        out.text.starts_with(&format!("[1] Tea ({url})\n")),
        "{}",
        out.text
    );
    assert!(
        out.text.contains("Oolong is partly oxidised. 【0†notes】"),
        "{}",
        out.text
    );
    let out = b.call("browser.open", r#"{"id": 0}"#);
    assert!(
        out.text
            .starts_with(&format!("[2] notes.txt (http://{host}/notes.txt)")),
        "{}",
        out.text
    );
    assert!(
        out.text.contains("L3: line two about oolong"),
        "{}",
        out.text
    );
    let out = b.call("browser.find", r#"{"pattern": "OOLONG"}"#);
    assert!(
        out.text
            .contains("# 【0†match at L3】\nL1: line two about oolong"),
        "{}",
        out.text
    );

    // view_source shows the raw HTML.
    let out = b.call("browser.open", r#"{"cursor": 1, "view_source": true}"#);
    assert!(out.text.contains("<h1>Tea</h1>"), "{}", out.text);
}

#[test]
fn web_guards_become_tool_errors() {
    let server = site();
    let mut b = web_browser(&server, Duration::from_secs(1));
    let open = |b: &mut BrowserTool, url: &str| {
        b.call(
            "browser.open",
            &serde_json::json!({ "id": url }).to_string(),
        )
    };
    let out = open(&mut b, &server.url("/cat.png"));
    assert!(out.is_error);
    assert!(
        out.text.ends_with(
            "unsupported content type `image/png` (the browser reads HTML and text pages)"
        ),
        "{}",
        out.text
    );
    let out = open(&mut b, &server.url("/missing"));
    assert!(out.text.ends_with(": HTTP 404 Not Found"), "{}", out.text);
    let out = open(&mut b, &server.url("/slow"));
    assert!(
        out.text.ends_with(": the request timed out"),
        "{}",
        out.text
    );
    let out = open(&mut b, "file:///etc/passwd");
    assert!(
        out.text.contains("unsupported URL scheme `file`"),
        "{}",
        out.text
    );
    // Bodies are cut at the size cap (64 KiB here) instead of read whole.
    let out = b.call(
        "browser.open",
        &serde_json::json!({ "id": server.url("/big.html"), "num_lines": 3 }).to_string(),
    );
    assert!(!out.is_error, "{out:?}");
    let total: usize = out
        .text
        .split("of ")
        .nth(1)
        .and_then(|s| s.split("**").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(usize::MAX);
    assert!(total < 1000, "page not capped: {total} lines");
    // The tool still works after all of that.
    let out = open(&mut b, &server.url("/tea.html"));
    assert!(!out.is_error, "{out:?}");
}

#[test]
fn offline_network_is_a_readable_error() {
    // A port nobody listens on: connection refused, like a dead network.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let backend = WebBackend::new(WebConfig {
        search_url: Some(format!("http://127.0.0.1:{port}/search")),
        ..WebConfig::default()
    })
    .expect("web backend");
    let mut b = BrowserTool::new(Box::new(backend), BrowserConfig::default());
    let out = b.call("browser.search", r#"{"query": "anything"}"#);
    assert!(out.is_error);
    assert!(out.text.starts_with("Error during search for `anything`: could not connect (the network may be unavailable)"), "{}", out.text);
    let out = b.call(
        "browser.open",
        &format!(r#"{{"id": "http://127.0.0.1:{port}/x"}}"#),
    );
    assert!(out.text.contains("could not connect"), "{}", out.text);
    // No search endpoint at all.
    let backend = WebBackend::new(WebConfig::default()).expect("web backend");
    let mut b = BrowserTool::new(Box::new(backend), BrowserConfig::default());
    let out = b.call("browser.search", r#"{"query": "x"}"#);
    assert!(
        out.text.contains("no search endpoint is configured"),
        "{}",
        out.text
    );
}

const KEY: &str = "sk-test-7f3a9c1e5b2d4a6f8e0c-SECRET";

fn remote_model() -> Server {
    Server::start(|req| {
        if req.method != "POST" || req.path != "/v1/chat/completions" {
            return Response::new(
                404,
                "application/json",
                r#"{"error":{"message":"no route"}}"#,
            );
        }
        let auth = req.header("authorization").unwrap_or("");
        if auth != format!("Bearer {KEY}") {
            // Like real APIs, echo the bad key back in the error.
            let msg = format!(
                "Incorrect API key provided: {}",
                auth.trim_start_matches("Bearer ")
            );
            return Response::new(
                401,
                "application/json",
                serde_json::json!({"error": {"message": msg}}).to_string(),
            );
        }
        let body: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
        let task = body
            .pointer("/messages/0/content")
            .and_then(|c| c.as_str())
            .unwrap_or("");
        let model = body["model"].as_str().unwrap_or("");
        if task.contains("sleep") {
            let mut r = Response::new(200, "application/json", "{}");
            r.delay = Duration::from_secs(3);
            return r;
        }
        if task.contains("leak") {
            // A hostile or buggy remote that repeats the key in its answer.
            let answer = format!("your key is {KEY}");
            return Response::new(200, "application/json", serde_json::json!({"choices": [{"message": {"role": "assistant", "content": answer}}]}).to_string());
        }
        let answer = format!("[{model}] The answer to '{task}' is 42.");
        Response::new(
            200,
            "application/json",
            serde_json::json!({"choices": [{"message": {"role": "assistant", "content": answer}}]})
                .to_string(),
        )
    })
}

fn handoff(server: &Server, key: &str, timeout: Duration) -> HandoffTool {
    HandoffTool::new(HandoffConfig {
        base_url: server.url("/v1"),
        api_key: Some(key.to_string()),
        model: "big-model".into(),
        timeout,
        ..HandoffConfig::default()
    })
    .expect("handoff tool")
}

#[test]
fn handoff_round_trip_errors_and_no_key_leaks() {
    let server = remote_model();
    let mut transcript = Vec::new();
    let mut tool = handoff(&server, KEY, Duration::from_secs(1));
    let mut reg = ToolRegistry::new();
    transcript.push(format!("{:?}", tool_config_debug(&server)));

    let out = tool.call("handoff.ask", r#"{"task": "What is six times seven?"}"#);
    assert!(!out.is_error, "{out:?}");
    assert_eq!(out.author, "handoff.ask");
    assert_eq!(
        out.text,
        "[big-model] The answer to 'What is six times seven?' is 42."
    );
    transcript.push(out.text.clone());
    let reqs = server
        .requests
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );

    let out = tool.call("handoff.ask", r#"{"task": "please sleep"}"#);
    assert!(out.is_error);
    assert_eq!(
        out.text,
        "[ERROR] handoff failed: the remote model did not answer within 1 seconds"
    );
    transcript.push(out.text.clone());

    let out = tool.call("handoff.ask", r#"{"task": "leak it"}"#);
    assert_eq!(out.text, "your key is <redacted>");
    transcript.push(out.text.clone());

    let out = tool.call("handoff.ask", r#"{"wrong": 1}"#);
    assert!(
        out.is_error && out.text.contains("needs {\"task\""),
        "{out:?}"
    );
    transcript.push(out.text.clone());

    // A wrong key: the remote echoes it; the tool text must not.
    let wrong = "sk-wrong-0000000000000000-ALSO-SECRET";
    let mut bad = handoff(&server, wrong, Duration::from_secs(5));
    let out = bad.call("handoff.ask", r#"{"task": "hi"}"#);
    assert!(out.is_error);
    assert!(out.text.starts_with("[ERROR] handoff failed: the remote model answered HTTP 401 Unauthorized: Incorrect API key provided: <redacted>"), "{}", out.text);
    assert!(!out.text.contains(wrong));

    // Unreachable remote.
    drop(server);
    let out = tool.call("handoff.ask", r#"{"task": "anyone there?"}"#);
    assert!(out.is_error);
    assert!(out.text.contains("could not reach"), "{}", out.text);
    transcript.push(out.text.clone());

    // Declared per the protocol, and routed by the registry.
    reg.register(Box::new(tool));
    let c = &reg.namespace_configs()[0];
    assert_eq!(c.name, "handoff");
    assert_eq!(c.tools[0].name, "ask");
    let msg = reg
        .call("handoff.ask", r#"{"task": "x"}"#)
        .to_message(Some("analysis"));
    transcript.push(format!("{msg:?}"));

    for t in &transcript {
        assert!(!t.contains(KEY), "API key leaked: {t}");
        assert!(
            !t.contains("7f3a9c1e5b2d4a6f8e0c"),
            "API key fragment leaked: {t}"
        );
    }
}

fn tool_config_debug(server: &Server) -> HandoffConfig {
    HandoffConfig {
        base_url: server.url("/v1"),
        api_key: Some(KEY.to_string()),
        ..HandoffConfig::default()
    }
}
