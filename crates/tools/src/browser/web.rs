//! The web browser backend (opt-in): pages fetched over HTTP(S) with
//! reqwest (rustls, blocking), search through a configurable JSON endpoint
//! (SearXNG-style: `GET {search_url}?q=...&format=json` answering
//! `{"results": [{"title", "url", "content"}]}`).
//!
//! Guards: connect and total timeouts, a body-size cap (the rest is cut),
//! content types limited to HTML and text, only http/https URLs. Every
//! failure, including "no network", is a sentence the tool shows the model.
//!
//! The client is blocking: call it from a plain thread (in async code,
//! from `spawn_blocking`), never directly on an async runtime thread.

use std::io::Read;
use std::time::Duration;

use super::page::{self, PageContents, SearchResult};
use super::{Backend, VIEW_SOURCE_PREFIX};
use crate::Error;

/// Settings of the web backend.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// Search endpoint (SearXNG-style JSON); `None`: search is unavailable.
    pub search_url: Option<String>,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Body bytes read from one response; the rest is dropped.
    pub max_body_bytes: usize,
    pub user_agent: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            search_url: None,
            timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            max_body_bytes: 5 << 20,
            user_agent: format!("gpt-oss-rs/{} (browser tool)", env!("CARGO_PKG_VERSION")),
        }
    }
}

pub struct WebBackend {
    client: reqwest::blocking::Client,
    config: WebConfig,
}

impl WebBackend {
    pub fn new(config: WebConfig) -> Result<Self, Error> {
        let client = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.clone())
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| Error::Http(e.to_string()))?;
        Ok(WebBackend { client, config })
    }

    /// GET `url`; (final URL, content type, body cut to the size cap).
    fn get(&self, url: &str) -> Result<(String, String, Vec<u8>), String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
        if parsed.scheme() != "http" && parsed.scheme() != "https" {
            return Err(format!(
                "unsupported URL scheme `{}` (only http and https)",
                parsed.scheme()
            ));
        }
        let resp = self
            .client
            .get(parsed)
            .send()
            .map_err(describe_reqwest_error)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let final_url = resp.url().to_string();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut body = Vec::new();
        resp.take(self.config.max_body_bytes as u64)
            .read_to_end(&mut body)
            .map_err(|e| format!("reading the response failed: {e}"))?;
        Ok((final_url, content_type, body))
    }
}

/// One sentence for a reqwest failure, without the machinery.
fn describe_reqwest_error(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "the request timed out".to_string()
    } else if e.is_connect() {
        // Offline machines land here (DNS failure, no route, refused).
        let mut msg = "could not connect (the network may be unavailable)".to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg = format!("could not connect (the network may be unavailable): {s}");
            src = s.source();
        }
        msg
    } else if e.is_redirect() {
        "too many redirects".to_string()
    } else {
        format!("request failed: {e}")
    }
}

fn is_html(content_type: &str) -> bool {
    content_type.starts_with("text/html") || content_type.starts_with("application/xhtml")
}

fn is_text(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/json")
        || content_type.starts_with("application/xml")
        || content_type.is_empty()
}

impl Backend for WebBackend {
    fn source(&self) -> &str {
        "web"
    }

    fn search(&mut self, query: &str, topn: usize) -> Result<PageContents, String> {
        let Some(endpoint) = &self.config.search_url else {
            return Err("no search endpoint is configured (start with --search-url URL); use `open` with a full URL instead".into());
        };
        let mut url = url::Url::parse(endpoint).map_err(|e| format!("bad search URL: {e}"))?;
        url.query_pairs_mut()
            .append_pair("q", query)
            .append_pair("format", "json");
        let (_, content_type, body) = self.get(url.as_str())?;
        if !content_type.is_empty() && !content_type.contains("json") {
            return Err(format!(
                "the search endpoint answered `{content_type}`, not JSON"
            ));
        }
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| format!("the search endpoint's answer is not JSON: {e}"))?;
        let items = json
            .get("results")
            .or_else(|| json.get("data"))
            .and_then(|v| v.as_array())
            .ok_or("the search endpoint's answer has no `results` list")?;
        let field = |item: &serde_json::Value, keys: &[&str]| {
            keys.iter()
                .find_map(|k| item.get(*k).and_then(|v| v.as_str()))
                .unwrap_or("")
                .to_string()
        };
        let results: Vec<SearchResult> = items
            .iter()
            .filter_map(|item| {
                let url = field(item, &["url", "link"]);
                (!url.is_empty()).then(|| SearchResult {
                    title: field(item, &["title", "name"]),
                    summary: field(item, &["content", "snippet", "summary", "description"]),
                    url,
                })
            })
            .take(topn)
            .collect();
        Ok(page::search_results_page(query, &results))
    }

    fn fetch(&mut self, url: &str) -> Result<PageContents, String> {
        let (view_source, bare) = match url.strip_prefix(VIEW_SOURCE_PREFIX) {
            Some(rest) => (true, rest),
            None => (false, url),
        };
        let (final_url, content_type, body) = self.get(bare)?;
        let text = String::from_utf8_lossy(&body);
        if view_source {
            let title = page::get_domain(&final_url);
            return Ok(page::process_text(&text, url, &title));
        }
        if is_html(&content_type) {
            Ok(page::process_html(&text, &final_url, None))
        } else if is_text(&content_type) {
            let title = final_url
                .rsplit('/')
                .find(|s| !s.is_empty())
                .unwrap_or(&final_url)
                .to_string();
            Ok(page::process_text(&text, &final_url, &title))
        } else {
            Err(format!(
                "unsupported content type `{content_type}` (the browser reads HTML and text pages)"
            ))
        }
    }
}
