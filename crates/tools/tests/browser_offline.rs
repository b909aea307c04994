//! The browser over a real tantivy index of testdata/corpus: search ranks
//! the right document first, open shows it in the model's page format,
//! links between documents work, find locates text, errors are readable.

use std::path::{Path, PathBuf};

use gptoss_tools::browser::offline::{build_index, IndexEvent, OfflineBackend};
use gptoss_tools::browser::{BrowserConfig, BrowserTool};
use gptoss_tools::{Tool, ToolRegistry};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/corpus")
}

fn browser() -> (BrowserTool, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = dir.path().join("index");
    let mut n_found = 0;
    let mut n_indexed = 0;
    let stats = build_index(&corpus(), &index, &mut |e| match e {
        IndexEvent::Found { n_files } => n_found = n_files,
        IndexEvent::Indexed { .. } => n_indexed += 1,
        IndexEvent::Skipped { path, reason } => panic!("skipped {path:?}: {reason}"),
    })
    .expect("build index");
    assert_eq!(stats.n_indexed, 5);
    assert_eq!((n_found, n_indexed), (5, 5));
    let backend = OfflineBackend::open(&index).expect("open index");
    (
        BrowserTool::new(Box::new(backend), BrowserConfig::default()),
        dir,
    )
}

#[test]
fn search_open_find_follow_links() {
    let (mut b, _dir) = browser();

    let out = b.call(
        "browser.search",
        r#"{"query": "green tea brewing temperature"}"#,
    );
    assert!(!out.is_error, "{out:?}");
    assert_eq!(out.author, "browser.search");
    let first_line = out.text.lines().next().unwrap_or_default();
    assert_eq!(first_line, "[0] green tea brewing temperature");
    assert!(out.text.contains("\n**viewing lines [0 - "));
    assert!(
        out.text.contains(
            "L1: URL: \nL2: # Search Results\nL3: \nL4:   * 【0†Brewing Green Tea†corpus】"
        ),
        "{}",
        out.text
    );

    // Open the first hit: the page view with header, URL line, converted HTML.
    let out = b.call("browser.open", r#"{"id": 0}"#);
    assert!(!out.is_error, "{out:?}");
    let expected_head = "[1] Brewing Green Tea (corpus/guides/tea.html)\n**viewing lines [0 - ";
    assert!(out.text.starts_with(expected_head), "{}", out.text);
    assert!(
        out.text
            .contains("L1: URL: corpus/guides/tea.html\nL2: # Brewing green tea\n"),
        "{}",
        out.text
    );
    assert!(out.text.contains("[Image 0: a cup of sencha]"));
    assert!(out
        .text
        .contains("  * Matcha: stone-ground powder, whisked not steeped."));
    assert!(
        !out.text.contains("console.log"),
        "script leaked: {}",
        out.text
    );
    // Same-domain link without domain, external link with it.
    assert!(out.text.contains("【0†the coffee guide】"), "{}", out.text);
    assert!(
        out.text
            .contains("【1†encyclopedia article†en.wikipedia.org】"),
        "{}",
        out.text
    );

    // Follow the relative link to another indexed document.
    let out = b.call("browser.open", r#"{"id": 0}"#);
    assert!(
        out.text
            .starts_with("[2] Coffee Basics (corpus/guides/coffee.html)"),
        "{}",
        out.text
    );
    assert!(out.text.contains("nine bars of pressure"));

    // The external link is not in the index: a readable error, and the
    // conversation goes on.
    let out = b.call("browser.open", r#"{"id": 1, "cursor": 1}"#);
    assert!(out.is_error);
    assert!(
        out.text
            .starts_with("Error fetching URL `https://en.wikipedia.org/wiki/Green_tea`: "),
        "{}",
        out.text
    );

    // find on the tea page (cursor 1).
    let out = b.call("browser.find", r#"{"pattern": "Matcha", "cursor": 1}"#);
    assert!(!out.is_error, "{out:?}");
    assert!(out.text.starts_with("[3] Find results for text: `matcha` in `Brewing Green Tea` (corpus/guides/tea.html/find?pattern=matcha)\n"), "{}", out.text);
    assert!(out.text.contains("L0: # 【0†match at L"), "{}", out.text);
    // Opening a find hit jumps to the matched line of the original page.
    let out = b.call("browser.open", r#"{"id": 0}"#);
    assert!(
        out.text.starts_with("[4] Brewing Green Tea"),
        "{}",
        out.text
    );
    assert!(out.text.contains("Matcha"));

    let out = b.call("browser.find", r#"{"pattern": "find"}"#);
    // cursor 4 is the tea page again: no `find` on it is fine, no matches.
    assert!(
        out.text.contains("No `find` results for pattern: `find`"),
        "{}",
        out.text
    );
    let out = b.call("browser.find", r#"{"pattern": "x"}"#);
    assert_eq!(
        out.text,
        "Cannot run `find` on search results page or find results page"
    );

    // Scroll with loc/num_lines on an earlier cursor.
    let out = b.call("browser.open", r#"{"cursor": 2, "loc": 2, "num_lines": 2}"#);
    assert!(
        out.text.contains("**viewing lines [2 - 3] of "),
        "{}",
        out.text
    );
    assert_eq!(out.text.matches("\nL").count(), 2, "{}", out.text);
}

#[test]
fn search_ranks_and_survives_odd_queries() {
    let (mut b, _dir) = browser();
    let out = b.call(
        "browser.search",
        r#"{"query": "Eyjafjallajokull ash cloud"}"#,
    );
    assert!(
        out.text.contains("L4:   * 【0†volcanoes†corpus】"),
        "{}",
        out.text
    );
    let out = b.call("browser.search", r#"{"query": "borrow checker lifetimes"}"#);
    assert!(
        out.text.contains("【0†Ownership in Rust†corpus】"),
        "{}",
        out.text
    );
    // Query syntax characters must not break the tool.
    for q in [r#"title:(("unbalanced"#, "AND OR NOT", "+-*~^:"] {
        let args = serde_json::json!({ "query": q }).to_string();
        let out = b.call("browser.search", &args);
        assert!(!out.is_error, "{q}: {out:?}");
    }
    let out = b.call("browser.search", r#"{"query": "zzzqqq nothing matches"}"#);
    assert!(out.text.contains("No results found."), "{}", out.text);
    // Open by URL string.
    let out = b.call("browser.open", r#"{"id": "corpus/volcanoes.txt"}"#);
    assert!(
        out.text.starts_with("[6] volcanoes (corpus/volcanoes.txt)"),
        "{}",
        out.text
    );
    assert!(out.text.contains("Hekla"));
}

#[test]
fn declared_through_the_registry() {
    let (b, _dir) = browser();
    let mut reg = ToolRegistry::new().with(Box::new(b));
    assert!(reg.handles("browser.search"));
    assert!(!reg.handles("functions.get_weather"));
    assert!(!reg.handles("browserx"));
    let configs = reg.namespace_configs();
    assert_eq!(configs.len(), 1);
    let c = &configs[0];
    assert_eq!(c.name, "browser");
    let names: Vec<&str> = c.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["search", "open", "find"]);
    assert!(c
        .description
        .as_deref()
        .unwrap_or("")
        .ends_with("\nsources=web"));
    let out = reg.call("python", "print(1)");
    assert!(out.is_error);
    assert_eq!(
        out.text,
        "Unknown tool recipient `python`. Available tools: browser."
    );
}

#[test]
fn bad_index_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = OfflineBackend::open(dir.path())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("is not a search index"), "{err}");
    // Refuses to overwrite a folder that is not an index.
    std::fs::write(dir.path().join("precious.txt"), "keep").expect("write");
    let err = build_index(&corpus(), dir.path(), &mut |_| {})
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("is not a gpt-oss index"), "{err}");
    assert!(dir.path().join("precious.txt").exists());
}
