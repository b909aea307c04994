//! The `browser` tool: `search`, `open` and `find` over a page stack, shown
//! to the model exactly as the reference `SimpleBrowserTool` shows pages:
//! 80-column wrapping, `L{i}: ` line numbers, a `[{cursor}] {title} ({url})`
//! header with a `**viewing lines [a - b] of n**` scrollbar, a view of about
//! 1024 tokens, and link markers `【{id}†{text}(†{domain})?】`.
//!
//! Where pages come from is a [`Backend`]: an offline tantivy index
//! ([`offline::OfflineBackend`]) or the web ([`web::WebBackend`]). This module
//! owns the state and the display, not retrieval.

pub mod offline;
pub mod page;
pub mod web;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use gptoss_harmony::{Tokenizer, ToolNamespaceConfig};
use serde_json::Value;

pub use page::{PageContents, SearchResult};

use crate::{maybe_truncate, textwrap, Tool, ToolOutput};

/// Prefix the reference puts on URLs opened with `view_source=true`.
pub const VIEW_SOURCE_PREFIX: &str = "view-source:";

/// Where search results and pages come from. Errors are plain sentences;
/// the tool wraps them into the reference's error texts.
pub trait Backend: Send {
    /// Name shown to the model after `sources=` (the reference uses `web`).
    fn source(&self) -> &str;
    /// A search results page (see [`page::search_results_page`]).
    fn search(&mut self, query: &str, topn: usize) -> Result<PageContents, String>;
    /// The page at `url` (which may start with [`VIEW_SOURCE_PREFIX`]).
    fn fetch(&mut self, url: &str) -> Result<PageContents, String>;
}

/// Browser settings (reference defaults).
#[derive(Clone, Debug)]
pub struct BrowserConfig {
    /// Tokens of page text shown when `num_lines` is not given.
    pub view_tokens: usize,
    /// Results asked from the backend; the reference ignores the model's
    /// `topn` and always asks for 20.
    pub max_search_results: usize,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        BrowserConfig {
            view_tokens: 1024,
            max_search_results: 20,
        }
    }
}

/// The browser tool of one conversation.
pub struct BrowserTool {
    backend: Box<dyn Backend>,
    config: BrowserConfig,
    /// The page stack; a page's cursor is its index.
    stack: Vec<Arc<PageContents>>,
    /// URL → page, so following a link twice does not fetch twice.
    cache: HashMap<String, Arc<PageContents>>,
}

/// A failure the model should read (the reference's ToolUsageError /
/// BackendError: plain text, no JSON).
struct UsageError(String);

impl BrowserTool {
    pub fn new(backend: Box<dyn Backend>, config: BrowserConfig) -> Self {
        BrowserTool {
            backend,
            config,
            stack: Vec::new(),
            cache: HashMap::new(),
        }
    }

    /// URL of each page on the stack (cursor = index), for citations.
    pub fn page_urls(&self) -> Vec<String> {
        self.stack.iter().map(|p| p.url.clone()).collect()
    }

    fn current_cursor(&self) -> i64 {
        self.stack.len() as i64 - 1
    }

    fn get_page(&self, cursor: i64) -> Result<Arc<PageContents>, UsageError> {
        let cur = self.current_cursor();
        if cur < 0 {
            return Err(UsageError("No pages to access!".into()));
        }
        // Python list indexing: -1 is the last page, -2 the one before...
        let idx = if cursor < 0 {
            self.stack.len() as i64 + cursor
        } else {
            cursor
        };
        if idx < 0 || idx > cur {
            return Err(UsageError(format!(
                "Cursor `{cursor}` is out of range. Available cursor indices: [0 - {cur}]."
            )));
        }
        Ok(self.stack[idx as usize].clone())
    }

    fn add_page(&mut self, page: Arc<PageContents>) {
        if !page.url.is_empty() {
            self.cache.insert(page.url.clone(), page.clone());
        }
        self.stack.push(page);
    }

    /// Render the top page from line `loc`; on a bad `loc` the page is
    /// popped again (reference `show_page_safely`).
    fn show_page(&mut self, loc: i64, num_lines: i64) -> Result<String, UsageError> {
        let shown = self.render_top(loc, num_lines);
        if shown.is_err() {
            self.stack.pop();
        }
        shown
    }

    fn render_top(&self, loc: i64, num_lines: i64) -> Result<String, UsageError> {
        let page = self.get_page(-1)?;
        let cursor = self.current_cursor();
        let lines = textwrap::wrap_lines(&page.text, 80);
        let total = lines.len() as i64;
        if loc >= total {
            return Err(UsageError(format!(
                "Invalid location parameter: `{loc}`. Cannot exceed page maximum of {}.",
                total - 1
            )));
        }
        let loc = loc.max(0);
        let end = end_loc(loc as usize, num_lines, &lines, self.config.view_tokens);
        let body = join_numbered(&lines[loc as usize..end], loc as usize);
        let mut header = page.title.clone();
        let shown_url = maybe_truncate(&percent_decode(&page.url), 1024);
        if !shown_url.is_empty() {
            header.push_str(&format!(" ({shown_url})"));
        }
        Ok(format!(
            "[{cursor}] {header}\n**viewing lines [{loc} - {}] of {}**\n\n{body}",
            end as i64 - 1,
            total - 1
        ))
    }

    fn open_url(&mut self, url: &str, refresh: bool) -> Result<Arc<PageContents>, UsageError> {
        if !refresh {
            if let Some(p) = self.cache.get(url) {
                return Ok(p.clone());
            }
        }
        self.backend.fetch(url).map(Arc::new).map_err(|e| {
            UsageError(format!(
                "Error fetching URL `{}`: {}",
                maybe_truncate(url, 1024),
                maybe_truncate(&e, 1024)
            ))
        })
    }

    fn search(&mut self, args: &Args) -> Result<String, UsageError> {
        let query = args
            .string("query")?
            .ok_or_else(|| UsageError("Missing required argument `query` for `search`.".into()))?;
        let page = self
            .backend
            .search(&query, self.config.max_search_results)
            .map_err(|e| {
                UsageError(format!(
                    "Error during search for `{query}`: {}",
                    maybe_truncate(&e, 1024)
                ))
            })?;
        self.add_page(Arc::new(page));
        self.show_page(0, -1)
    }

    fn open(&mut self, args: &Args) -> Result<String, UsageError> {
        let cursor = args.int("cursor")?.unwrap_or(-1);
        let mut loc = args.int("loc")?.unwrap_or(-1);
        let num_lines = args.int("num_lines")?.unwrap_or(-1);
        let view_source = args.bool("view_source")?.unwrap_or(false);
        let mut snippet_line: Option<usize> = None;
        let mut stay: Option<Arc<PageContents>> = None;
        let refresh;
        let mut url = match args.0.get("id") {
            Some(Value::String(s)) => {
                refresh = true;
                s.clone()
            }
            _ => {
                refresh = false;
                let id = args.int("id")?.unwrap_or(-1);
                let curr = self.get_page(cursor)?;
                if id >= 0 {
                    let url = curr
                        .urls
                        .get(&id.to_string())
                        .cloned()
                        .ok_or_else(|| UsageError(format!("Invalid link id `{id}`.")))?;
                    snippet_line = curr
                        .snippets
                        .as_ref()
                        .and_then(|s| s.get(&id.to_string()).copied().flatten());
                    url
                } else {
                    if !view_source {
                        stay = Some(curr.clone());
                    }
                    curr.url.clone()
                }
            }
        };
        if view_source {
            url = format!("{VIEW_SOURCE_PREFIX}{url}");
            snippet_line = None;
        }
        let page = match stay {
            Some(p) => p,
            None => self.open_url(&url, refresh)?,
        };
        self.add_page(page);
        if loc < 0 {
            loc = match snippet_line {
                Some(l) if l > 4 => l as i64 - 4,
                Some(l) => l as i64,
                None => 0,
            };
        }
        self.show_page(loc, num_lines)
    }

    fn find(&mut self, args: &Args) -> Result<String, UsageError> {
        let pattern = args
            .string("pattern")?
            .ok_or_else(|| UsageError("Missing required argument `pattern` for `find`.".into()))?;
        let cursor = args.int("cursor")?.unwrap_or(-1);
        let page = self.get_page(cursor)?;
        if page.snippets.is_some() {
            return Err(UsageError(
                "Cannot run `find` on search results page or find results page".into(),
            ));
        }
        let result = find_in_page(&pattern.to_lowercase(), &page, 50, 4);
        self.add_page(Arc::new(result));
        self.show_page(0, -1)
    }

    fn dispatch(&mut self, function: &str, content: &str) -> ToolOutput {
        let author = format!("browser.{function}");
        let json_error = |msg: &str| {
            ToolOutput::error(
                author.clone(),
                serde_json::json!({ "error": msg }).to_string(),
            )
        };
        let args = if content.trim().is_empty() {
            serde_json::Map::new()
        } else {
            match serde_json::from_str::<Value>(content) {
                Ok(Value::Object(m)) => m,
                _ => return json_error("Invalid function arguments"),
            }
        };
        let args = Args(args);
        let result = match function {
            "search" => self.search(&args),
            "open" => self.open(&args),
            "find" => self.find(&args),
            other => return json_error(&format!("Unknown function: {other}")),
        };
        match result {
            Ok(text) => ToolOutput::ok(author, text),
            Err(UsageError(msg)) => ToolOutput::error(author, msg),
        }
    }
}

impl Tool for BrowserTool {
    fn name(&self) -> &str {
        "browser"
    }

    /// `ToolNamespaceConfig::browser()` with the description's last line
    /// replaced by `sources={backend source}`, as the reference does.
    fn config(&self) -> ToolNamespaceConfig {
        let mut c = ToolNamespaceConfig::browser();
        c.description = Some(format!(
            "Tool for browsing.\nThe `cursor` appears in brackets before each browsing display: `[{{cursor}}]`.\nCite information from the tool using the following format:\n`【{{cursor}}†L{{line_start}}(-L{{line_end}})?】`, for example: `【6†L9-L11】` or `【8†L3】`.\nDo not quote more than 10 words directly from the tool output.\nsources={}",
            self.backend.source()
        ));
        c
    }

    fn call(&mut self, recipient: &str, content: &str) -> ToolOutput {
        match recipient.strip_prefix("browser.") {
            Some(function) => self.dispatch(function, content),
            None => ToolOutput::error(
                recipient,
                serde_json::json!({"error": "Invalid function arguments"}).to_string(),
            ),
        }
    }
}

/// Arguments of one call, read leniently (numbers may come as floats or
/// numeric strings).
struct Args(serde_json::Map<String, Value>);

impl Args {
    fn int(&self, key: &str) -> Result<Option<i64>, UsageError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| UsageError(format!("`{key}` should be an integer, not `{n}`"))),
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| UsageError(format!("`{key}` should be an integer, not `str`"))),
            Some(other) => Err(UsageError(format!(
                "`{key}` should be an integer, not `{}`",
                type_name(other)
            ))),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, UsageError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(UsageError(format!(
                "`{key}` should be a boolean, not `{}`",
                type_name(other)
            ))),
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>, UsageError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(UsageError(format!(
                "`{key}` should be a string, not `{}`",
                type_name(other)
            ))),
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// `L{i}: {line}` joined by newlines.
fn join_numbered(lines: &[String], offset: usize) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("L{}: {line}", i + offset));
    }
    out
}

/// Characters of the longest o200k token's text (the reference's
/// `max_chars_per_token`), which bounds how much text must be tokenized.
fn max_chars_per_token() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        let tok = Tokenizer::o200k_harmony();
        (0..199_998u32)
            .filter_map(|id| tok.token_bytes(id).ok())
            .map(|b| String::from_utf8_lossy(&b).chars().count())
            .max()
            .unwrap_or(128)
    })
}

/// End (exclusive) of the view starting at `loc`: `num_lines` lines, or when
/// `num_lines <= 0` as many lines as fit in `view_tokens` tokens of the
/// numbered text (reference `get_end_loc`; token lengths in characters).
fn end_loc(loc: usize, num_lines: i64, lines: &[String], view_tokens: usize) -> usize {
    let total = lines.len();
    let n = if num_lines <= 0 {
        let txt = join_numbered(&lines[loc..], loc);
        if txt.chars().count() > view_tokens {
            let limit = (view_tokens + 1) * max_chars_per_token();
            let head: String = txt.chars().take(limit).collect();
            let tok = Tokenizer::o200k_harmony();
            let tokens = tok.encode_ordinary(&head);
            if tokens.len() > view_tokens {
                let end_chars: usize = tokens[..view_tokens]
                    .iter()
                    .map(|&t| {
                        tok.token_bytes(t)
                            .map(|b| String::from_utf8_lossy(&b).chars().count())
                            .unwrap_or(1)
                    })
                    .sum();
                head.chars().take(end_chars).filter(|&c| c == '\n').count() + 1
            } else {
                total
            }
        } else {
            total
        }
    } else {
        num_lines as usize
    };
    (loc + n).min(total)
}

/// The reference's `strip_links`: link markers become their text, partial
/// markers at the very start or end are cut.
fn strip_links(text: &str) -> String {
    use fancy_regex::Regex;
    static RES: OnceLock<[Regex; 3]> = OnceLock::new();
    let res = RES.get_or_init(|| {
        let mk = |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("strip_links pattern: {e}"));
        [
            mk(r"^[^【】]*】"),
            mk(r"【\d*(?:†(?P<content>[^†】]*)(?:†[^†】]*)?)?\z"),
            mk(r"【\d+†(?P<content>[^†】]+)(?:†[^†】]+)?】"),
        ]
    });
    let t = res[0].replace(text, "").into_owned();
    let t = res[1].replace(&t, "$content").into_owned();
    res[2].replace_all(&t, "$content").into_owned()
}

/// Percent-encode like Python's `urllib.parse.quote` (safe: `/`).
fn quote(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `urllib.parse.unquote`: decode `%XX` sequences (invalid UTF-8 replaced).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Find `pattern` (already lower-cased) in the page's wrapped lines: up to
/// `max_results` matches, each shown with `n_show` lines under a
/// `# 【{i}†match at L{line}】` heading (reference `run_find_in_page`).
fn find_in_page(
    pattern: &str,
    page: &PageContents,
    max_results: usize,
    n_show: usize,
) -> PageContents {
    let wrapped = textwrap::wrap_lines(&page.text, 80).join("\n");
    let without_links = strip_links(&wrapped);
    let lines: Vec<&str> = without_links.split('\n').collect();
    let mut chunks = Vec::new();
    let mut snippets = std::collections::BTreeMap::new();
    let mut urls = std::collections::BTreeMap::new();
    let mut line_idx = 0;
    while line_idx < lines.len() {
        if !lines[line_idx].to_lowercase().contains(pattern) {
            line_idx += 1;
            continue;
        }
        let end = (line_idx + n_show).min(lines.len());
        let snippet = lines[line_idx..end].join("\n");
        let match_idx = chunks.len();
        chunks.push(format!("# 【{match_idx}†match at L{line_idx}】\n{snippet}"));
        snippets.insert(match_idx.to_string(), Some(line_idx));
        urls.insert(match_idx.to_string(), page.url.clone());
        if chunks.len() == max_results {
            break;
        }
        line_idx += n_show;
    }
    let text = if chunks.is_empty() {
        format!("No `find` results for pattern: `{pattern}`")
    } else {
        chunks.join("\n\n")
    };
    PageContents {
        url: format!("{}/find?pattern={}", page.url, quote(pattern)),
        title: format!("Find results for text: `{pattern}` in `{}`", page.title),
        text,
        urls,
        snippets: Some(snippets),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend serving fixed pages from memory (the display logic is what
    /// is tested here; real backends have their own tests).
    struct Fixed(Vec<PageContents>);

    impl Backend for Fixed {
        fn source(&self) -> &str {
            "web"
        }
        fn search(&mut self, query: &str, _topn: usize) -> Result<PageContents, String> {
            Ok(page::search_results_page(
                query,
                &[
                    SearchResult {
                        title: "The Nobel Prize in Physics 2024 - NobelPrize.org".into(),
                        url: "https://www.nobelprize.org/prizes/physics/2024/summary/".into(),
                        summary: "The Nobel Prize in Physics 2024 was awarded jointly to John J. Hopfield and Geoffrey Hinton.".into(),
                    },
                    SearchResult {
                        title: "2024 Nobel Prize in Physics - Wikipedia".into(),
                        url: "https://en.wikipedia.org/wiki/2024_Nobel_Prize_in_Physics".into(),
                        summary: "Awarded for foundational discoveries that enable machine learning with artificial neural networks.".into(),
                    },
                ],
            ))
        }
        fn fetch(&mut self, url: &str) -> Result<PageContents, String> {
            self.0
                .iter()
                .find(|p| p.url == url)
                .cloned()
                .ok_or_else(|| format!("no page {url}"))
        }
    }

    #[test]
    fn search_display_is_the_reference_text() {
        // gpt-oss.md §5.10 gives this tool message verbatim.
        let mut b = BrowserTool::new(Box::new(Fixed(vec![])), BrowserConfig::default());
        let out = b.call(
            "browser.search",
            r#"{"query": "2024 Nobel Prize in Physics winners", "topn": 5}"#,
        );
        let expected = "[0] 2024 Nobel Prize in Physics winners\n**viewing lines [0 - 9] of 9**\n\nL0: \nL1: URL: \nL2: # Search Results\nL3: \nL4:   * 【0†The Nobel Prize in Physics 2024 - NobelPrize.org†www.nobelprize.org】 The \nL5: Nobel Prize in Physics 2024 was awarded jointly to John J. Hopfield and Geoffrey\nL6:  Hinton.\nL7:   * 【1†2024 Nobel Prize in Physics - Wikipedia†en.wikipedia.org】 Awarded for \nL8: foundational discoveries that enable machine learning with artificial neural \nL9: networks.";
        assert_eq!(out.text, expected);
        assert_eq!(out.author, "browser.search");
        assert!(!out.is_error);
    }

    #[test]
    fn errors_are_readable() {
        let mut b = BrowserTool::new(Box::new(Fixed(vec![])), BrowserConfig::default());
        assert_eq!(b.call("browser.open", "{}").text, "No pages to access!");
        assert_eq!(
            b.call("browser.search", "not json").text,
            r#"{"error":"Invalid function arguments"}"#
        );
        assert_eq!(
            b.call("browser.fly", "{}").text,
            r#"{"error":"Unknown function: fly"}"#
        );
        b.call("browser.search", r#"{"query": "q"}"#);
        assert_eq!(
            b.call("browser.open", r#"{"id": 7}"#).text,
            "Invalid link id `7`."
        );
        assert_eq!(
            b.call("browser.open", r#"{"cursor": 5}"#).text,
            "Cursor `5` is out of range. Available cursor indices: [0 - 0]."
        );
        let err = b.call("browser.open", r#"{"id": 0}"#);
        assert!(err.is_error);
        assert!(err
            .text
            .starts_with("Error fetching URL `https://www.nobelprize.org"));
        // The failed open did not leave a page behind.
        assert_eq!(b.page_urls().len(), 1);
        let out = b.call("browser.open", r#"{"loc": 99}"#);
        assert_eq!(
            out.text,
            "Invalid location parameter: `99`. Cannot exceed page maximum of 9."
        );
        assert_eq!(b.page_urls().len(), 1);
    }

    #[test]
    fn strip_links_and_quote() {
        assert_eq!(strip_links("a 【3†text†d.org】 b【1†x】"), "a text bx");
        assert_eq!(strip_links("k】 tail 【2†par"), " tail par");
        assert_eq!(quote("a b/c?"), "a%20b/c%3F");
        assert_eq!(percent_decode("a%20b%zz"), "a b%zz");
    }
}
