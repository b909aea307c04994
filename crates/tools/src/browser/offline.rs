//! The offline browser backend: a tantivy full-text index of a folder of
//! Markdown, text and HTML files. [`build_index`] converts every document to
//! the page text the model will see (HTML through [`super::page::process_html`])
//! and stores it, so opening a page needs no access to the original files.
//!
//! A document's URL is `{corpus}/{relative path}` (for `docs/a/b.md` indexed
//! from `docs`: `docs/a/b.md`), so search results show the corpus name as
//! the domain and relative links between HTML documents resolve to other
//! indexed documents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tantivy::collector::TopDocs;
use tantivy::query::{QueryParser, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, Value, STORED, STRING, TEXT};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Index, IndexReader, TantivyDocument, Term};

use super::page::{self, PageContents, SearchResult};
use super::{Backend, VIEW_SOURCE_PREFIX};
use crate::Error;

/// Documents bigger than this are skipped when indexing.
pub const MAX_DOCUMENT_BYTES: u64 = 16 << 20;

const EXTENSIONS: &[&str] = &["md", "markdown", "txt", "text", "html", "htm"];

/// Progress of [`build_index`], for a progress bar.
#[derive(Debug)]
pub enum IndexEvent<'a> {
    /// The number of candidate files found.
    Found { n_files: usize },
    /// One file indexed.
    Indexed { path: &'a Path },
    /// One file skipped, and why.
    Skipped { path: &'a Path, reason: String },
}

/// What [`build_index`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexStats {
    pub n_indexed: usize,
    pub n_skipped: usize,
    pub index_dir: PathBuf,
}

struct Fields {
    url: Field,
    title: Field,
    body: Field,
    links: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let url = b.add_text_field("url", STRING | STORED);
    let title = b.add_text_field("title", TEXT | STORED);
    let body = b.add_text_field("body", TEXT | STORED);
    let links = b.add_text_field("links", STORED);
    (
        b.build(),
        Fields {
            url,
            title,
            body,
            links,
        },
    )
}

fn fields_of(schema: &Schema) -> Result<Fields, Error> {
    let get = |name: &str| {
        schema.get_field(name).map_err(|_| {
            Error::Index(format!(
                "the index has no `{name}` field; rebuild it with `gpt-oss index`"
            ))
        })
    };
    Ok(Fields {
        url: get("url")?,
        title: get("title")?,
        body: get("body")?,
        links: get("links")?,
    })
}

fn tv(e: tantivy::TantivyError) -> Error {
    Error::Index(e.to_string())
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// Default index location for a corpus: `{corpus}/.gptoss-index`.
pub fn default_index_dir(corpus: &Path) -> PathBuf {
    corpus.join(".gptoss-index")
}

/// Candidate files under `dir`, sorted; hidden files and folders skipped.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), Error> {
    if depth > 64 {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            collect_files(&path, out, depth + 1)?;
        } else if ft.is_file() {
            let ext = path
                .extension()
                .map(|x| x.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if EXTENSIONS.contains(&ext.as_str()) {
                out.push(path);
            }
        }
    }
    Ok(())
}

/// Turn one file into the page the model will see.
pub fn document_page(path: &Path, url: &str) -> Result<PageContents, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let raw = String::from_utf8_lossy(&bytes);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|x| x.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    Ok(match ext.as_str() {
        "html" | "htm" => {
            let mut p = page::process_html(&raw, url, None);
            if p.title.is_empty() || p.title == page::get_domain(url) {
                p.title = stem;
            }
            p
        }
        "md" | "markdown" => {
            let title = raw
                .lines()
                .find_map(|l| l.strip_prefix("# "))
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .unwrap_or(stem);
            page::process_text(&raw, url, &title)
        }
        _ => page::process_text(&raw, url, &stem),
    })
}

/// Index every Markdown/text/HTML file under `corpus` into `index_dir`
/// (replacing an index already there). `progress` sees each file.
pub fn build_index(
    corpus: &Path,
    index_dir: &Path,
    progress: &mut dyn FnMut(IndexEvent<'_>),
) -> Result<IndexStats, Error> {
    let corpus = corpus.canonicalize().map_err(io_err(corpus))?;
    if !corpus.is_dir() {
        return Err(Error::Config(format!(
            "{} is not a folder",
            corpus.display()
        )));
    }
    let corpus_name = corpus
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "corpus".to_string());
    let mut files = Vec::new();
    collect_files(&corpus, &mut files, 0)?;
    progress(IndexEvent::Found {
        n_files: files.len(),
    });

    // Replace an earlier index, but never delete a folder that is not one.
    if index_dir.exists() {
        let is_index = index_dir.join("meta.json").exists();
        let is_empty = std::fs::read_dir(index_dir)
            .map_err(io_err(index_dir))?
            .next()
            .is_none();
        if is_index {
            std::fs::remove_dir_all(index_dir).map_err(io_err(index_dir))?;
        } else if !is_empty {
            return Err(Error::Config(format!(
                "{} exists and is not a gpt-oss index; choose another --out",
                index_dir.display()
            )));
        }
    }
    std::fs::create_dir_all(index_dir).map_err(io_err(index_dir))?;
    let (schema, f) = schema();
    let index = Index::create_in_dir(index_dir, schema).map_err(tv)?;
    let mut writer: tantivy::IndexWriter = index.writer(50_000_000).map_err(tv)?;
    let mut stats = IndexStats {
        n_indexed: 0,
        n_skipped: 0,
        index_dir: index_dir.to_path_buf(),
    };
    for path in &files {
        let size = path.metadata().map(|m| m.len()).unwrap_or(0);
        if size > MAX_DOCUMENT_BYTES {
            stats.n_skipped += 1;
            progress(IndexEvent::Skipped {
                path,
                reason: format!("larger than {MAX_DOCUMENT_BYTES} bytes"),
            });
            continue;
        }
        let rel = path.strip_prefix(&corpus).unwrap_or(path);
        let rel = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let url = format!("{corpus_name}/{rel}");
        match document_page(path, &url) {
            Ok(p) => {
                let links = serde_json::to_string(&p.urls).unwrap_or_else(|_| "{}".into());
                let mut doc = TantivyDocument::default();
                doc.add_text(f.url, &p.url);
                doc.add_text(f.title, &p.title);
                doc.add_text(f.body, &p.text);
                doc.add_text(f.links, &links);
                writer.add_document(doc).map_err(tv)?;
                stats.n_indexed += 1;
                progress(IndexEvent::Indexed { path });
            }
            Err(reason) => {
                stats.n_skipped += 1;
                progress(IndexEvent::Skipped { path, reason });
            }
        }
    }
    writer.commit().map_err(tv)?;
    writer.wait_merging_threads().map_err(tv)?;
    Ok(stats)
}

/// Search and open documents of an index made by [`build_index`].
pub struct OfflineBackend {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    source: String,
}

impl OfflineBackend {
    pub fn open(index_dir: &Path) -> Result<Self, Error> {
        if !index_dir.join("meta.json").exists() {
            return Err(Error::Config(format!(
                "{} is not a search index (build one with `gpt-oss index DIR --out {}`)",
                index_dir.display(),
                index_dir.display()
            )));
        }
        let index = Index::open_in_dir(index_dir).map_err(tv)?;
        let fields = fields_of(&index.schema())?;
        let reader = index.reader().map_err(tv)?;
        Ok(OfflineBackend {
            index,
            reader,
            fields,
            source: "web".to_string(),
        })
    }

    /// Name shown after `sources=` (default `web`, what the model knows).
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    fn page_from_doc(&self, doc: &TantivyDocument) -> PageContents {
        let text = |f: Field| {
            doc.get_first(f)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let urls: BTreeMap<String, String> =
            serde_json::from_str(&text(self.fields.links)).unwrap_or_default();
        PageContents {
            url: text(self.fields.url),
            title: text(self.fields.title),
            text: text(self.fields.body),
            urls,
            snippets: None,
        }
    }

    fn lookup(&self, url: &str) -> Result<Option<PageContents>, String> {
        let searcher = self.reader.searcher();
        let q = TermQuery::new(
            Term::from_field_text(self.fields.url, url),
            IndexRecordOption::Basic,
        );
        let hits = searcher
            .search(&q, &TopDocs::with_limit(1).order_by_score())
            .map_err(|e| e.to_string())?;
        match hits.first() {
            Some((_, addr)) => {
                let doc: TantivyDocument = searcher.doc(*addr).map_err(|e| e.to_string())?;
                Ok(Some(self.page_from_doc(&doc)))
            }
            None => Ok(None),
        }
    }
}

impl Backend for OfflineBackend {
    fn source(&self) -> &str {
        &self.source
    }

    fn search(&mut self, query: &str, topn: usize) -> Result<PageContents, String> {
        let searcher = self.reader.searcher();
        let mut parser =
            QueryParser::for_index(&self.index, vec![self.fields.title, self.fields.body]);
        parser.set_field_boost(self.fields.title, 2.0);
        // Lenient: model-written queries may contain query-syntax characters.
        let (q, _errors) = parser.parse_query_lenient(query);
        let hits = searcher
            .search(&q, &TopDocs::with_limit(topn.max(1)).order_by_score())
            .map_err(|e| e.to_string())?;
        let mut snippets = SnippetGenerator::create(&searcher, &*q, self.fields.body)
            .map_err(|e| e.to_string())?;
        snippets.set_max_num_chars(200);
        let mut results = Vec::new();
        for (_score, addr) in hits {
            let doc: TantivyDocument = searcher.doc(addr).map_err(|e| e.to_string())?;
            let p = self.page_from_doc(&doc);
            // The summary comes from the document text without the
            // `URL: ...` line the page view adds on top.
            let body = p.text.trim_start_matches('\n');
            let body = body.split_once('\n').map_or("", |(_, rest)| rest);
            let snippet = snippets.snippet(body);
            let mut summary = page::merge_whitespace(snippet.fragment())
                .trim()
                .to_string();
            if summary.is_empty() {
                summary = page::merge_whitespace(&body.chars().take(200).collect::<String>())
                    .trim()
                    .to_string();
            }
            results.push(SearchResult {
                title: p.title,
                url: p.url,
                summary,
            });
        }
        Ok(page::search_results_page(query, &results))
    }

    fn fetch(&mut self, url: &str) -> Result<PageContents, String> {
        let (view_source, bare) = match url.strip_prefix(VIEW_SOURCE_PREFIX) {
            Some(rest) => (true, rest),
            None => (false, url),
        };
        // Links resolved against a scheme-less document URL gain `http://`.
        let candidates = [
            bare,
            bare.strip_prefix("http://").unwrap_or(bare),
            bare.strip_prefix("https://").unwrap_or(bare),
        ];
        for c in candidates {
            if let Some(mut p) = self.lookup(c)? {
                if view_source {
                    p.url = url.to_string();
                }
                return Ok(p);
            }
        }
        Err(format!(
            "`{bare}` is not in the offline index (the offline browser can only open indexed documents and links between them)"
        ))
    }
}
