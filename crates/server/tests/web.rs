//! The web chat page (`GET /`, `GET /static/{file}`): status, content types,
//! the Content-Security-Policy, no auth for the page itself, and a scan of the
//! embedded files for anything that would reach another host or parse HTML.
//! The page's behaviour in a browser is tested by `tests/web/` (Playwright).

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use common::*;
use gptoss_server::{web, SchedulerConfig, ServerConfig};
use http_body_util::BodyExt;
use tower::ServiceExt;

const SCRIPT: &str = "<|channel|>final<|message|>ok<|return|>";

async fn get(app: &Router, path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    let req = Request::builder()
        .method("GET")
        .uri(path)
        .body(Body::empty())
        .expect("request builds");
    let resp = app.clone().oneshot(req).await.expect("router answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("body reads")
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn index_is_html_with_a_strict_csp() {
    let (app, _) = app(SCRIPT);
    let (status, headers, body) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(header(&headers, "content-type").starts_with("text/html"));
    let csp = header(&headers, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(csp.contains(directive), "CSP lacks {directive:?}: {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    let html = String::from_utf8(body).expect("utf-8 page");
    assert!(html.contains(r#"<script src="/static/app.js""#));
    assert!(html.contains(r#"href="/static/style.css""#));
    // Every script element loads a file: no inline script for the CSP to block.
    for chunk in html.split("<script").skip(1) {
        let tag_end = chunk.find('>').expect("script tag closes");
        assert!(chunk[..tag_end].contains("src="), "inline script: {chunk}");
        assert!(chunk[tag_end + 1..].starts_with("</script>"));
    }
    assert!(
        !html.contains(" style=\""),
        "inline style attributes are blocked by the CSP"
    );
    // No inline event handlers (` onclick=`, ...).
    let lower = html.to_lowercase();
    for (at, _) in lower.match_indices(" on") {
        let name: String = lower[at + 3..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        assert!(
            !lower[at + 3 + name.len()..].starts_with('='),
            "inline handler on{name}"
        );
    }
}

#[tokio::test]
async fn static_files_have_their_content_types() {
    let (app, _) = app(SCRIPT);
    for (path, kind) in [
        ("/static/app.js", "text/javascript"),
        ("/static/style.css", "text/css"),
        ("/static/favicon.svg", "image/svg+xml"),
        ("/index.html", "text/html"),
    ] {
        let (status, headers, body) = get(&app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(header(&headers, "content-type").starts_with(kind), "{path}");
        assert!(!header(&headers, "content-security-policy").is_empty());
        assert!(!body.is_empty());
    }
    let (status, _, body) = get(&app, "/static/../Cargo.toml").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    assert!(v["error"]["message"].is_string());
    let (status, _, _) = get(&app, "/static/nope.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn page_needs_no_key_but_the_api_does() {
    let (app, _) = app_with(
        scripted(SCRIPT),
        SchedulerConfig::default(),
        ServerConfig {
            api_key: Some("sekrit".into()),
            ..config()
        },
    );
    for path in ["/", "/static/app.js", "/static/style.css"] {
        let (status, _, _) = get(&app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    for path in ["/v1/models", "/metrics"] {
        let (status, _, _) = get(&app, path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

/// No file may point the browser at another host: the page must work with
/// the network cut off. The SVG namespace is an identifier, never fetched.
#[test]
fn embedded_files_make_no_external_references() {
    let files = web::embedded_files();
    assert!(files.len() >= 4);
    for (path, bytes) in files {
        let text = String::from_utf8_lossy(bytes).to_lowercase();
        let text = text.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        for scheme in ["http://", "https://", "//cdn", "ws://", "wss://"] {
            assert!(
                !text.contains(scheme),
                "{path} refers to {scheme}…: the page must not reach other hosts"
            );
        }
        assert!(!text.contains("@import"), "{path} imports CSS");
        if path.ends_with(".css") {
            assert!(!text.contains("url("), "{path} loads a resource from CSS");
        }
    }
}

/// Model text must never be parsed as HTML: the script uses no HTML sinks.
#[test]
fn script_uses_no_html_sinks() {
    let files = web::embedded_files();
    let (_, js) = files
        .iter()
        .find(|(p, _)| p == "/static/app.js")
        .expect("app.js is embedded");
    let js = String::from_utf8_lossy(js);
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "createContextualFragment",
        "DOMParser",
        "srcdoc",
        "setTimeout(\"",
    ] {
        assert!(!js.contains(sink), "app.js uses {sink}");
    }
}
