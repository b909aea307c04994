//! A page as the browser shows it to the model: text with links written
//! `【{id}†{text}】` (same domain) or `【{id}†{text}†{domain}】`, the link id →
//! URL table, and for find results the line each match came from.
//!
//! HTML becomes text here with html5ever (through `scraper`), following the
//! reference's `process_html`: special brackets replaced, links and images
//! turned into markers, `<math>`/scripts/styles dropped, then a plain-text
//! rendering (headings `# `, list items `  * `, paragraphs separated by a
//! blank line) with empty lines collapsed. The rendering is ours, close to
//! html2text's output but not byte-identical for every page.

use std::collections::BTreeMap;

use ego_tree::NodeRef;
use scraper::{Html, Node};

/// One search hit, as a backend returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchResult {
    pub title: String,
    pub url: String,
    pub summary: String,
}

/// A page on the browser's stack.
#[derive(Clone, Debug, PartialEq)]
pub struct PageContents {
    pub url: String,
    pub title: String,
    pub text: String,
    /// Link id (`"0"`, `"1"`, ...) → absolute URL.
    pub urls: BTreeMap<String, String>,
    /// Set on find-result pages only: link id → line of the match in the
    /// searched page.
    pub snippets: Option<BTreeMap<String, Option<usize>>>,
}

/// Domain of a URL (the reference's `get_domain`: the netloc, retrying with
/// `http://` prepended for scheme-less URLs).
pub fn get_domain(url: &str) -> String {
    fn netloc(u: &str) -> Option<String> {
        let parsed = url::Url::parse(u).ok()?;
        let host = parsed.host_str()?;
        if host.is_empty() {
            return None;
        }
        Some(match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        })
    }
    netloc(url)
        .or_else(|| netloc(&format!("http://{url}")))
        .unwrap_or_default()
}

/// `【`/`】` in page text would fake link markers: the reference swaps them
/// for look-alikes and drops zero-width spaces.
pub fn replace_special_chars(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '【' => out.push('〖'),
            '】' => out.push('〗'),
            '◼' => out.push('◾'),
            '\u{200b}' => {}
            // Supplementary Multilingual Plane (emoji etc.) is removed.
            c if ('\u{10000}'..='\u{1FFFF}').contains(&c) => {}
            c => out.push(c),
        }
    }
    out
}

/// Collapse all whitespace runs (newlines included) to one space.
pub fn merge_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_ws = false;
    for c in text.chars() {
        if c.is_whitespace() {
            if !in_ws {
                out.push(' ');
            }
            in_ws = true;
        } else {
            out.push(c);
            in_ws = false;
        }
    }
    out
}

/// Collapse blank lines: whitespace-only lines become empty, and runs of
/// empty lines become one.
pub fn collapse_empty_lines(text: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut blank = false;
    for line in text.split('\n') {
        let is_blank = line.trim().is_empty();
        if is_blank {
            if !blank {
                out.push("");
            }
        } else {
            out.push(line);
        }
        blank = is_blank;
    }
    out.join("\n")
}

/// The search results page: the reference renders
/// `<h1>Search Results</h1><ul><li><a href=URL>TITLE</a> SUMMARY</li>...`
/// through `process_html(url="", title=query, display_urls=True)`. With an
/// empty page URL every link carries its domain.
pub fn search_results_page(query: &str, results: &[SearchResult]) -> PageContents {
    let mut urls = BTreeMap::new();
    let mut url_ids: BTreeMap<String, String> = BTreeMap::new();
    let mut items = Vec::new();
    for r in results {
        let url = arxiv_to_ar5iv(&r.url);
        let domain = get_domain(&url);
        let title = merge_whitespace(&replace_special_chars(&r.title))
            .trim()
            .replace('†', "‡");
        let summary = merge_whitespace(&replace_special_chars(&r.summary))
            .trim()
            .to_string();
        let title = if title.is_empty() { url.clone() } else { title };
        let id = match url_ids.get(&url) {
            Some(id) => id.clone(),
            None => {
                let id = urls.len().to_string();
                urls.insert(id.clone(), url.clone());
                url_ids.insert(url.clone(), id.clone());
                id
            }
        };
        let link = if domain.is_empty() {
            format!("【{id}†{title}】")
        } else {
            format!("【{id}†{title}†{domain}】")
        };
        if summary.is_empty() {
            items.push(format!("  * {link}"));
        } else {
            items.push(format!("  * {link} {summary}"));
        }
    }
    let body = if items.is_empty() {
        "# Search Results\n\nNo results found.".to_string()
    } else {
        format!("# Search Results\n\n{}", items.join("\n"))
    };
    PageContents {
        url: String::new(),
        title: query.to_string(),
        text: format!("\nURL: \n{body}"),
        urls,
        snippets: None,
    }
}

fn arxiv_to_ar5iv(url: &str) -> String {
    url.replace("arxiv.org", "ar5iv.org")
}

/// Plain text (or Markdown) as a page: brackets replaced, blank lines
/// collapsed, the URL line on top like fetched pages.
pub fn process_text(text: &str, url: &str, title: &str) -> PageContents {
    let text = collapse_empty_lines(replace_special_chars(text).trim());
    PageContents {
        url: url.to_string(),
        title: title.to_string(),
        text: format!("\nURL: {url}\n{text}"),
        urls: BTreeMap::new(),
        snippets: None,
    }
}

/// HTML → page, after the reference's `process_html(display_urls=True)`.
/// `title`: use it instead of the document's `<title>` when given.
pub fn process_html(html: &str, url: &str, title: Option<&str>) -> PageContents {
    let html = replace_special_chars(html);
    let doc = Html::parse_document(&html);
    let doc_title = doc
        .tree
        .root()
        .descendants()
        .find_map(|n| match n.value() {
            Node::Element(e) if e.name() == "title" => Some(node_text(n)),
            _ => None,
        })
        .map(|t| merge_whitespace(&t).trim().to_string());
    let final_title = match (title, doc_title) {
        (Some(t), _) if !t.is_empty() => t.to_string(),
        (_, Some(t)) => t,
        _ => get_domain(url),
    };
    let mut r = Renderer {
        out: String::new(),
        cur_url: url.to_string(),
        cur_domain: get_domain(url),
        urls: BTreeMap::new(),
        url_ids: BTreeMap::new(),
        n_images: 0,
        list_stack: Vec::new(),
        pre_depth: 0,
    };
    r.walk(doc.tree.root());
    let text = collapse_empty_lines(r.out.trim());
    PageContents {
        url: url.to_string(),
        title: final_title,
        text: format!("\nURL: {url}\n{text}"),
        urls: r.urls,
        snippets: None,
    }
}

/// All text under a node, in document order.
fn node_text(node: NodeRef<'_, Node>) -> String {
    let mut s = String::new();
    for d in node.descendants() {
        if let Node::Text(t) = d.value() {
            s.push_str(t);
        }
    }
    s
}

struct Renderer {
    out: String,
    cur_url: String,
    cur_domain: String,
    urls: BTreeMap<String, String>,
    url_ids: BTreeMap<String, String>,
    n_images: usize,
    /// For each open list: `None` for `<ul>`, `Some(next number)` for `<ol>`.
    list_stack: Vec<Option<usize>>,
    pre_depth: usize,
}

const SKIPPED: &[&str] = &[
    "head", "script", "style", "noscript", "template", "math", "svg", "iframe", "object", "canvas",
    "select", "button",
];
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "header",
    "footer",
    "main",
    "nav",
    "aside",
    "blockquote",
    "table",
    "form",
    "figure",
    "figcaption",
    "dl",
    "dd",
    "dt",
    "address",
    "details",
    "summary",
    "caption",
    "fieldset",
];

impl Renderer {
    /// Make the output end with at least `n` newlines (nothing at the start).
    fn breaks(&mut self, n: usize) {
        if self.out.is_empty() {
            return;
        }
        let have = self.out.len() - self.out.trim_end_matches('\n').len();
        for _ in have..n {
            self.out.push('\n');
        }
    }

    fn push_inline(&mut self, text: &str) {
        if self.pre_depth > 0 {
            self.out.push_str(text);
            return;
        }
        let merged = merge_whitespace(text);
        if merged.is_empty() {
            return;
        }
        let at_line_start = self.out.is_empty() || self.out.ends_with('\n');
        let ends_space = self.out.ends_with(' ');
        let mut piece = merged.as_str();
        if (at_line_start || ends_space) && piece.starts_with(' ') {
            piece = &piece[1..];
        }
        self.out.push_str(piece);
    }

    fn walk(&mut self, node: NodeRef<'_, Node>) {
        match node.value() {
            Node::Text(t) => self.push_inline(t),
            Node::Element(e) => {
                let name = e.name();
                if SKIPPED.contains(&name) {
                    return;
                }
                match name {
                    "br" => self.out.push('\n'),
                    "hr" => {
                        self.breaks(2);
                        self.out.push_str("* * *");
                        self.breaks(2);
                    }
                    "img" => {
                        let alt = e.attr("alt").or_else(|| e.attr("title")).unwrap_or("");
                        let alt = merge_whitespace(alt).trim().to_string();
                        let marker = if alt.is_empty() {
                            format!("[Image {}]", self.n_images)
                        } else {
                            format!("[Image {}: {alt}]", self.n_images)
                        };
                        self.n_images += 1;
                        self.push_inline(&marker);
                    }
                    "a" => self.link(node, e.attr("href")),
                    "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                        let level = name[1..].parse::<usize>().unwrap_or(1);
                        self.breaks(2);
                        self.out.push_str(&"#".repeat(level));
                        self.out.push(' ');
                        self.children(node);
                        self.breaks(2);
                    }
                    "ul" | "ol" => {
                        self.breaks(if self.list_stack.is_empty() { 2 } else { 1 });
                        self.list_stack
                            .push(if name == "ol" { Some(1) } else { None });
                        self.children(node);
                        self.list_stack.pop();
                        self.breaks(if self.list_stack.is_empty() { 2 } else { 1 });
                    }
                    "li" => {
                        self.breaks(1);
                        let depth = self.list_stack.len().max(1);
                        let indent = "  ".repeat(depth);
                        let bullet = match self.list_stack.last_mut() {
                            Some(Some(n)) => {
                                let b = format!("{n}. ");
                                *n += 1;
                                b
                            }
                            _ => "* ".to_string(),
                        };
                        self.out.push_str(&indent);
                        self.out.push_str(&bullet);
                        self.children(node);
                        self.breaks(1);
                    }
                    "pre" => {
                        self.breaks(2);
                        self.pre_depth += 1;
                        self.children(node);
                        self.pre_depth -= 1;
                        self.breaks(2);
                    }
                    "tr" => {
                        self.breaks(1);
                        self.children(node);
                        self.breaks(1);
                    }
                    "td" | "th" => {
                        if !self.out.ends_with('\n') && !self.out.ends_with(' ') {
                            self.out.push(' ');
                        }
                        self.children(node);
                        self.out.push(' ');
                    }
                    "sup" | "sub" => {
                        let t = node_text(node);
                        let simple = !t.is_empty()
                            && t.chars()
                                .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
                        if simple {
                            let mark = if name == "sup" { '^' } else { '_' };
                            self.push_inline(&format!("{mark}{{{t}}}"));
                        } else {
                            self.children(node);
                        }
                    }
                    _ if BLOCKS.contains(&name) => {
                        self.breaks(2);
                        self.children(node);
                        self.breaks(2);
                    }
                    _ => self.children(node),
                }
            }
            Node::Document | Node::Fragment => self.children(node),
            _ => {}
        }
    }

    fn children(&mut self, node: NodeRef<'_, Node>) {
        for c in node.children() {
            self.walk(c);
        }
    }

    /// `<a href>` → `【id†text】` / `【id†text†domain】`, ids in order of
    /// first appearance; links we cannot number render as their content.
    fn link(&mut self, node: NodeRef<'_, Node>, href: Option<&str>) {
        let Some(href) = href else {
            return self.children(node);
        };
        if href.starts_with("mailto:") || href.starts_with("javascript:") {
            return self.children(node);
        }
        let text = merge_whitespace(&node_text(node)).trim().replace('†', "‡");
        if text.is_empty() {
            // Probably an image link: keep its content (the image marker).
            return self.children(node);
        }
        if href.starts_with('#') {
            return self.push_inline(&text);
        }
        let joined = join_url(&self.cur_url, href);
        let domain = joined.as_deref().map(get_domain).unwrap_or_default();
        let Some(link) = joined.filter(|_| !domain.is_empty()) else {
            return self.children(node);
        };
        let link = arxiv_to_ar5iv(&link);
        let id = match self.url_ids.get(&link) {
            Some(id) => id.clone(),
            None => {
                let id = self.urls.len().to_string();
                self.urls.insert(id.clone(), link.clone());
                self.url_ids.insert(link, id.clone());
                id
            }
        };
        let marker = if domain == self.cur_domain {
            format!("【{id}†{text}】")
        } else {
            format!("【{id}†{text}†{domain}】")
        };
        // Markers keep the spacing of the text around them.
        let needs_space = !self.out.is_empty()
            && !self.out.ends_with(' ')
            && !self.out.ends_with('\n')
            && node
                .prev_sibling()
                .and_then(|p| {
                    p.value()
                        .as_text()
                        .map(|t| t.ends_with(char::is_whitespace))
                })
                .unwrap_or(false);
        if needs_space {
            self.out.push(' ');
        }
        self.out.push_str(&marker);
    }
}

/// `urljoin(base, href)`; `None` when the result is not a URL.
pub fn join_url(base: &str, href: &str) -> Option<String> {
    if let Ok(u) = url::Url::parse(href) {
        return Some(u.to_string());
    }
    let base = url::Url::parse(base)
        .or_else(|_| url::Url::parse(&format!("http://{base}")))
        .ok()?;
    base.join(href).ok().map(|u| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_page_matches_reference_example() {
        // gpt-oss.md §5.10: the exact text of a two-result search page.
        let page = search_results_page(
            "2024 Nobel Prize in Physics winners",
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
        );
        assert!(page
            .text
            .starts_with("\nURL: \n# Search Results\n\n  * 【0†The Nobel"));
        assert_eq!(page.urls.len(), 2);
        assert!(page
            .text
            .contains("【1†2024 Nobel Prize in Physics - Wikipedia†en.wikipedia.org】 Awarded"));
    }

    #[test]
    fn html_links_images_and_headings() {
        let html = r#"<html><head><title>Doc 【x】</title><style>p{}</style></head><body>
            <h1>Main  title</h1><p>See <a href="/other">the other page</a> and
            <a href="https://example.org/x">an external one</a>.</p>
            <p><img alt="a cat"><img src="y.png"></p><ul><li>one</li><li>two</li></ul>
            <script>evil()</script><math><mi>x</mi></math></body></html>"#;
        let page = process_html(html, "https://site.test/a/b", None);
        assert_eq!(page.title, "Doc 〖x〗");
        assert_eq!(
            page.text,
            "\nURL: https://site.test/a/b\n# Main title\n\nSee 【0†the other page】 and 【1†an external one†example.org】.\n\n[Image 0: a cat][Image 1]\n\n  * one\n  * two"
        );
        assert_eq!(page.urls["0"], "https://site.test/other");
        assert_eq!(page.urls["1"], "https://example.org/x");
    }

    #[test]
    fn domains() {
        assert_eq!(
            get_domain("https://en.wikipedia.org/wiki/X"),
            "en.wikipedia.org"
        );
        assert_eq!(get_domain("corpus/notes.md"), "corpus");
        assert_eq!(get_domain("http://127.0.0.1:8080/p"), "127.0.0.1:8080");
        assert_eq!(get_domain(""), "");
    }
}
