//! Where `/v1/responses` keeps `store: true` responses, for
//! `previous_response_id` and `GET|DELETE /v1/responses/{id}`.
//!
//! [`ResponseStore`] is a cloneable handle over a [`Backend`]: a map from
//! response id to an opaque JSON body (a [`StoredResponse`]), bounded by a
//! count and a byte size, the oldest responses dropped first. Two backends:
//! - in memory (`gpt-oss serve --store none`, and the default of
//!   [`crate::ServerConfig`]): lost at exit;
//! - SQLite ([`ResponseStore::sqlite`]): one file that survives restarts and
//!   that several processes on one host may share (WAL journal, a busy
//!   timeout, every write one short transaction).
//!
//! Backend calls block (SQLite does file I/O and may wait on another
//! process's lock), so the async methods run them on tokio's blocking pool
//! and never on the runtime's worker threads.
//!
//! The same store keeps conversations (`/v1/conversations`,
//! `conversations_api`): a record (the conversation object) and its items in
//! order. They are bounded on their own, by the same [`Limits`] numbers: at
//! most `max_responses` conversations and `max_bytes` of records and items,
//! the least recently written conversation dropped first (with its items).
//!
//! This module does not know the Responses API's wire format: it keeps what
//! `responses_api` and `conversations_api` hand it, serialized with serde.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gptoss_harmony::Message;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;

/// A stored response: what a follow-up request needs. Kept as JSON, so a
/// field added later needs `#[serde(default)]` for older rows to still read
/// (a change that cannot be read that way is a new [`SCHEMA_VERSION`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredResponse {
    /// The response object as `GET /v1/responses/{id}` returns it.
    pub json: Value,
    /// user / assistant / tool messages of the conversation so far, output included.
    pub history: Vec<Message>,
    pub instructions: Option<String>,
    /// (call_id, function name) of every function call so far.
    pub call_names: Vec<(String, String)>,
}

/// How much a store keeps; over either bound the oldest responses go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_responses: u64,
    /// Bytes of the stored bodies (JSON) and ids, not of the file: SQLite
    /// adds some overhead per row and reuses freed pages rather than
    /// shrinking the file.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_responses: 1024,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Why a store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the response store {}: {message}", path.display())]
    Open { path: PathBuf, message: String },
    #[error(
        "the response store {} has schema version {found}, newer than this build knows ({known}): \
         it was written by a newer gpt-oss. Run that version, or give this one another --store file",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "{} is an SQLite database but not a gpt-oss response store; give --store another file",
        path.display()
    )]
    Foreign { path: PathBuf },
    #[error("response store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("response store: cannot encode the response: {0}")]
    Encode(serde_json::Error),
    #[error("response store: the stored response {id} cannot be read: {source}")]
    Decode {
        id: String,
        source: serde_json::Error,
    },
    #[error("response store: {0}")]
    Task(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

/// Storage of response bodies by id, oldest out first, and of conversations.
/// Methods block; a new backend (say, Postgres) implements these and nothing
/// else changes.
pub trait Backend: Send + Sync {
    /// Keep `body` under `id` (replacing an earlier one), then drop the
    /// oldest responses while over the limits, but never the one just kept.
    fn put(&self, id: &str, created_at: u64, body: &str) -> Result<(), StoreError>;
    fn get(&self, id: &str) -> Result<Option<String>, StoreError>;
    /// Whether there was such a response.
    fn delete(&self, id: &str) -> Result<bool, StoreError>;
    fn count(&self) -> Result<u64, StoreError>;
    /// Where and how bounded, for the start-up log.
    fn describe(&self) -> String;

    /// Create conversation `id` (a new id) with its `record` and first
    /// `items` (item id, body), then drop the least recently written other
    /// conversations while over the limits.
    fn create_conversation(
        &self,
        id: &str,
        record: &str,
        items: &[(String, String)],
    ) -> Result<(), StoreError>;
    fn get_conversation(&self, id: &str) -> Result<Option<String>, StoreError>;
    /// Replace the record; whether there was such a conversation.
    fn update_conversation(&self, id: &str, record: &str) -> Result<bool, StoreError>;
    /// Remove the conversation and its items; whether there was one.
    fn delete_conversation(&self, id: &str) -> Result<bool, StoreError>;
    /// Append items (ids new to the conversation), then evict as
    /// [`Backend::create_conversation`]; false when there is no such conversation.
    fn add_items(&self, id: &str, items: &[(String, String)]) -> Result<bool, StoreError>;
    /// At most `limit` items in insertion order (newest first when `desc`),
    /// starting after item `after` in that order (none when `after` is not
    /// in the conversation). `None`: no such conversation.
    fn list_items(
        &self,
        id: &str,
        after: Option<&str>,
        limit: usize,
        desc: bool,
    ) -> Result<Option<Vec<(String, String)>>, StoreError>;
    fn get_item(&self, id: &str, item: &str) -> Result<Option<String>, StoreError>;
    /// Whether the conversation had that item.
    fn delete_item(&self, id: &str, item: &str) -> Result<bool, StoreError>;
    fn conversation_count(&self) -> Result<u64, StoreError>;
}

/// Bytes a conversation counts for: its record and every item.
fn conversation_size(id: &str, record: &str, items: &[(String, String)]) -> u64 {
    entry_size(id, record) + items.iter().map(|(i, b)| entry_size(i, b)).sum::<u64>()
}

/// Bytes a response counts for against [`Limits::max_bytes`].
fn entry_size(id: &str, body: &str) -> u64 {
    (id.len() + body.len()) as u64
}

fn describe_limits(limits: Limits) -> String {
    format!(
        "at most {} responses and {} MiB, oldest dropped first",
        limits.max_responses,
        limits.max_bytes.div_ceil(1024 * 1024)
    )
}

/// A handle on the store of one server (cheap to clone).
#[derive(Clone)]
pub struct ResponseStore(Arc<dyn Backend>);

impl fmt::Debug for ResponseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseStore({})", self.0.describe())
    }
}

impl Default for ResponseStore {
    fn default() -> Self {
        ResponseStore::memory(Limits::default())
    }
}

impl ResponseStore {
    /// Responses in this process's memory, lost at exit.
    pub fn memory(limits: Limits) -> ResponseStore {
        ResponseStore(Arc::new(Memory {
            limits: sane(limits),
            inner: Mutex::new(MemoryInner::default()),
        }))
    }

    /// Responses in the SQLite file at `path`, created (with its folder)
    /// when missing. Fails, naming the path, on a file that is not SQLite or
    /// is damaged, on one of a newer schema, and on another program's database.
    pub fn sqlite(path: &Path, limits: Limits) -> Result<ResponseStore, StoreError> {
        Ok(ResponseStore(Arc::new(Sqlite::open(path, sane(limits))?)))
    }

    /// A store over another backend.
    pub fn with_backend(backend: Arc<dyn Backend>) -> ResponseStore {
        ResponseStore(backend)
    }

    /// Where and how bounded, for the start-up log.
    pub fn describe(&self) -> String {
        self.0.describe()
    }

    /// Run a blocking backend call off the async runtime's threads.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Backend) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let backend = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || f(backend.as_ref()))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    pub(crate) async fn put(&self, id: String, response: StoredResponse) -> Result<(), StoreError> {
        let created_at = crate::ids::unix_seconds();
        self.call(move |b| {
            let body = serde_json::to_string(&response).map_err(StoreError::Encode)?;
            b.put(&id, created_at, &body)
        })
        .await
    }

    pub(crate) async fn get(&self, id: &str) -> Result<Option<StoredResponse>, StoreError> {
        let id = id.to_string();
        self.call(move |b| {
            let Some(body) = b.get(&id)? else {
                return Ok(None);
            };
            serde_json::from_str(&body)
                .map(Some)
                .map_err(|source| StoreError::Decode { id, source })
        })
        .await
    }

    /// Whether there was such a response.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.call(move |b| b.delete(&id)).await
    }

    /// How many responses are stored (in the whole file, for a shared one).
    pub async fn count(&self) -> Result<u64, StoreError> {
        self.call(|b| b.count()).await
    }

    pub(crate) async fn create_conversation(
        &self,
        id: String,
        record: Value,
        items: Vec<(String, Value)>,
    ) -> Result<(), StoreError> {
        self.call(move |b| {
            let items = encode_items(items)?;
            b.create_conversation(&id, &encode(&record)?, &items)
        })
        .await
    }

    pub(crate) async fn get_conversation(&self, id: &str) -> Result<Option<Value>, StoreError> {
        let id = id.to_string();
        self.call(move |b| {
            b.get_conversation(&id)?
                .map(|s| decode(&id, &s))
                .transpose()
        })
        .await
    }

    pub(crate) async fn update_conversation(
        &self,
        id: String,
        record: Value,
    ) -> Result<bool, StoreError> {
        self.call(move |b| b.update_conversation(&id, &encode(&record)?))
            .await
    }

    pub(crate) async fn delete_conversation(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.call(move |b| b.delete_conversation(&id)).await
    }

    pub(crate) async fn add_conversation_items(
        &self,
        id: String,
        items: Vec<(String, Value)>,
    ) -> Result<bool, StoreError> {
        self.call(move |b| b.add_items(&id, &encode_items(items)?))
            .await
    }

    pub(crate) async fn list_conversation_items(
        &self,
        id: &str,
        after: Option<String>,
        limit: usize,
        desc: bool,
    ) -> Result<Option<Vec<Value>>, StoreError> {
        let id = id.to_string();
        self.call(move |b| {
            let Some(rows) = b.list_items(&id, after.as_deref(), limit, desc)? else {
                return Ok(None);
            };
            rows.iter()
                .map(|(item, body)| decode(item, body))
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        })
        .await
    }

    pub(crate) async fn get_conversation_item(
        &self,
        id: &str,
        item: &str,
    ) -> Result<Option<Value>, StoreError> {
        let (id, item) = (id.to_string(), item.to_string());
        self.call(move |b| {
            b.get_item(&id, &item)?
                .map(|s| decode(&item, &s))
                .transpose()
        })
        .await
    }

    pub(crate) async fn delete_conversation_item(
        &self,
        id: &str,
        item: &str,
    ) -> Result<bool, StoreError> {
        let (id, item) = (id.to_string(), item.to_string());
        self.call(move |b| b.delete_item(&id, &item)).await
    }

    /// How many conversations are stored.
    pub async fn conversation_count(&self) -> Result<u64, StoreError> {
        self.call(|b| b.conversation_count()).await
    }
}

fn encode(v: &Value) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(StoreError::Encode)
}

fn encode_items(items: Vec<(String, Value)>) -> Result<Vec<(String, String)>, StoreError> {
    items
        .into_iter()
        .map(|(id, v)| Ok((id, encode(&v)?)))
        .collect()
}

fn decode(id: &str, body: &str) -> Result<Value, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Decode {
        id: id.to_string(),
        source,
    })
}

/// Bounds of at least 1: a store that keeps nothing would make every
/// `store: true` response unreachable at once.
fn sane(limits: Limits) -> Limits {
    Limits {
        max_responses: limits.max_responses.max(1),
        max_bytes: limits.max_bytes.max(1),
    }
}

/// A poisoned lock only means another request panicked mid-call; the data
/// is still consistent (every update is a few field writes), so go on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Memory {
    limits: Limits,
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    bodies: HashMap<String, String>,
    /// Ids, oldest first.
    order: VecDeque<String>,
    bytes: u64,
    conversations: HashMap<String, MemoryConversation>,
    /// Conversation ids, least recently written first.
    conversation_order: VecDeque<String>,
    conversation_bytes: u64,
}

struct MemoryConversation {
    record: String,
    items: Vec<(String, String)>,
}

impl MemoryConversation {
    fn size(&self, id: &str) -> u64 {
        conversation_size(id, &self.record, &self.items)
    }
}

impl MemoryInner {
    fn remove(&mut self, id: &str) -> bool {
        let Some(body) = self.bodies.remove(id) else {
            return false;
        };
        self.bytes -= entry_size(id, &body);
        self.order.retain(|k| k != id);
        true
    }

    fn remove_conversation(&mut self, id: &str) -> bool {
        let Some(c) = self.conversations.remove(id) else {
            return false;
        };
        self.conversation_bytes -= c.size(id);
        self.conversation_order.retain(|k| k != id);
        true
    }

    /// `id` becomes the most recently written; older ones go while over the limits.
    fn touch_and_evict(&mut self, id: &str, limits: Limits) {
        self.conversation_order.retain(|k| k != id);
        self.conversation_order.push_back(id.to_string());
        while self.conversation_order.len() > 1
            && (self.conversation_order.len() as u64 > limits.max_responses
                || self.conversation_bytes > limits.max_bytes)
        {
            if let Some(old) = self.conversation_order.front().cloned() {
                self.remove_conversation(&old);
            }
        }
    }
}

impl Backend for Memory {
    fn put(&self, id: &str, _created_at: u64, body: &str) -> Result<(), StoreError> {
        let mut m = lock(&self.inner);
        m.remove(id);
        m.bytes += entry_size(id, body);
        m.bodies.insert(id.to_string(), body.to_string());
        m.order.push_back(id.to_string());
        while m.order.len() > 1
            && (m.order.len() as u64 > self.limits.max_responses || m.bytes > self.limits.max_bytes)
        {
            if let Some(old) = m.order.pop_front() {
                if let Some(body) = m.bodies.remove(&old) {
                    m.bytes -= entry_size(&old, &body);
                }
            }
        }
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.inner).bodies.get(id).cloned())
    }

    fn delete(&self, id: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.inner).remove(id))
    }

    fn count(&self) -> Result<u64, StoreError> {
        Ok(lock(&self.inner).bodies.len() as u64)
    }

    fn describe(&self) -> String {
        format!(
            "in memory (lost at exit; --store none), {}",
            describe_limits(self.limits)
        )
    }

    fn create_conversation(
        &self,
        id: &str,
        record: &str,
        items: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut m = lock(&self.inner);
        m.remove_conversation(id);
        let c = MemoryConversation {
            record: record.to_string(),
            items: items.to_vec(),
        };
        m.conversation_bytes += c.size(id);
        m.conversations.insert(id.to_string(), c);
        m.touch_and_evict(id, self.limits);
        Ok(())
    }

    fn get_conversation(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.inner)
            .conversations
            .get(id)
            .map(|c| c.record.clone()))
    }

    fn update_conversation(&self, id: &str, record: &str) -> Result<bool, StoreError> {
        let mut m = lock(&self.inner);
        let Some(c) = m.conversations.get_mut(id) else {
            return Ok(false);
        };
        let old = entry_size(id, &c.record);
        c.record = record.to_string();
        m.conversation_bytes = m.conversation_bytes - old + entry_size(id, record);
        m.touch_and_evict(id, self.limits);
        Ok(true)
    }

    fn delete_conversation(&self, id: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.inner).remove_conversation(id))
    }

    fn add_items(&self, id: &str, items: &[(String, String)]) -> Result<bool, StoreError> {
        let mut m = lock(&self.inner);
        let Some(c) = m.conversations.get_mut(id) else {
            return Ok(false);
        };
        c.items.extend(items.iter().cloned());
        let added: u64 = items.iter().map(|(i, b)| entry_size(i, b)).sum();
        m.conversation_bytes += added;
        m.touch_and_evict(id, self.limits);
        Ok(true)
    }

    fn list_items(
        &self,
        id: &str,
        after: Option<&str>,
        limit: usize,
        desc: bool,
    ) -> Result<Option<Vec<(String, String)>>, StoreError> {
        let m = lock(&self.inner);
        let Some(c) = m.conversations.get(id) else {
            return Ok(None);
        };
        let ordered: Vec<&(String, String)> = if desc {
            c.items.iter().rev().collect()
        } else {
            c.items.iter().collect()
        };
        let start = match after {
            None => 0,
            Some(a) => match ordered.iter().position(|(i, _)| i == a) {
                Some(p) => p + 1,
                None => ordered.len(),
            },
        };
        Ok(Some(
            ordered
                .into_iter()
                .skip(start)
                .take(limit)
                .cloned()
                .collect(),
        ))
    }

    fn get_item(&self, id: &str, item: &str) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.inner).conversations.get(id).and_then(|c| {
            c.items
                .iter()
                .find(|(i, _)| i == item)
                .map(|(_, b)| b.clone())
        }))
    }

    fn delete_item(&self, id: &str, item: &str) -> Result<bool, StoreError> {
        let mut m = lock(&self.inner);
        let Some(c) = m.conversations.get_mut(id) else {
            return Ok(false);
        };
        let Some(pos) = c.items.iter().position(|(i, _)| i == item) else {
            return Ok(false);
        };
        let (i, b) = c.items.remove(pos);
        m.conversation_bytes -= entry_size(&i, &b);
        Ok(true)
    }

    fn conversation_count(&self) -> Result<u64, StoreError> {
        Ok(lock(&self.inner).conversations.len() as u64)
    }
}

/// Version of the schema ([`SCHEMA`] and the [`MIGRATIONS`]), in `PRAGMA
/// user_version`. A build refuses a file with a larger one and migrates a
/// smaller non-zero one when it opens it.
/// 1: responses; 2: conversations and their items.
pub const SCHEMA_VERSION: i64 = 2;

/// `MIGRATIONS[v - 1]` takes a file from version `v` to `v + 1`; a new file
/// gets [`SCHEMA`] and then all of them.
const MIGRATIONS: [&str; 1] = [CONVERSATIONS_SCHEMA];

/// Conversations (version 2). `touched` orders them by last write (the next
/// value on every write), for eviction; `size` is the bytes of the record
/// and all items, kept up to date, so the bound check reads one small index.
/// Items are ordered by `seq` within their conversation.
const CONVERSATIONS_SCHEMA: &str = "
CREATE TABLE conversations (
    seq     INTEGER PRIMARY KEY,
    id      TEXT NOT NULL UNIQUE,
    touched INTEGER NOT NULL,
    size    INTEGER NOT NULL,
    body    TEXT NOT NULL
);
CREATE INDEX conversations_touched ON conversations(touched);
CREATE INDEX conversations_size ON conversations(size);
CREATE TABLE conversation_items (
    seq          INTEGER PRIMARY KEY,
    conversation TEXT NOT NULL,
    id           TEXT NOT NULL,
    body         TEXT NOT NULL,
    UNIQUE (conversation, id)
);
CREATE INDEX conversation_items_order ON conversation_items(conversation, seq);
";

/// `seq` orders responses by insertion (SQLite gives a new row one more than
/// the largest `seq` in the table), so the oldest have the smallest. The
/// index on `size` covers `COUNT(*)` and `SUM(size)`, so checking the bounds
/// reads the small index, not the bodies.
const SCHEMA: &str = "
CREATE TABLE responses (
    seq        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX responses_size ON responses(size);
";

/// How long a call waits for another process's write lock before failing
/// ("database is locked"). Writes are one short transaction each, so this
/// is only reached when something holds the file far longer than we do.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

struct Sqlite {
    path: PathBuf,
    limits: Limits,
    /// One connection per process: calls come one at a time from the
    /// blocking pool; other processes have their own.
    conn: Mutex<Connection>,
}

impl Sqlite {
    fn open(path: &Path, limits: Limits) -> Result<Sqlite, StoreError> {
        let fail = |message: String| StoreError::Open {
            path: path.to_path_buf(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(format!("cannot create the folder {}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| fail(e.to_string()))?;
        // The first read of the file: fails on one that is not SQLite.
        let version = user_version(&conn).map_err(|e| fail(e.to_string()))?;
        check_version(&conn, path, version)?;
        // Catch a damaged file now, not in the middle of a request. It reads
        // every page; at the default 256 MiB bound that is well under a second.
        let check: String = conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(|e| fail(e.to_string()))?;
        if check != "ok" {
            return Err(fail(format!("the database is damaged ({check})")));
        }
        // WAL: readers never block the writer, and several processes can use
        // the file at once. NORMAL sync is durable across a crash of the
        // process (a power cut may lose the last responses, never the file).
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| fail(e.to_string()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            eprintln!(
                "warning: the response store {} cannot use a WAL journal (got {mode}); \
                 processes sharing it will wait on each other more",
                path.display()
            );
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| fail(e.to_string()))?;
        // Create the schema in a write transaction, checking the version
        // again inside it: two processes may start on a new file at once.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| fail(e.to_string()))?;
        let version = user_version(&tx).map_err(|e| fail(e.to_string()))?;
        check_version(&tx, path, version)?;
        if version == 0 {
            tx.execute_batch(SCHEMA)
                .map_err(|e| fail(format!("cannot create the tables: {e}")))?;
        }
        if version < SCHEMA_VERSION {
            for (from, migration) in MIGRATIONS
                .iter()
                .enumerate()
                .skip((version.max(1) - 1) as usize)
            {
                tx.execute_batch(migration).map_err(|e| {
                    fail(format!(
                        "cannot migrate the schema from version {}: {e}",
                        from + 1
                    ))
                })?;
            }
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(|e| fail(format!("cannot set the schema version: {e}")))?;
        }
        tx.commit().map_err(|e| fail(e.to_string()))?;
        Ok(Sqlite {
            path: path.to_path_buf(),
            limits,
            conn: Mutex::new(conn),
        })
    }
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Refuse a newer schema, and a database that is someone else's (version 0
/// with tables in it).
fn check_version(conn: &Connection, path: &Path, version: i64) -> Result<(), StoreError> {
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    if version == 0 {
        let objects: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        if objects > 0 {
            return Err(StoreError::Foreign {
                path: path.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// SQLite integers are i64; our counts and sizes stay far below its range.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Backend for Sqlite {
    fn put(&self, id: &str, created_at: u64, body: &str) -> Result<(), StoreError> {
        let mut conn = lock(&self.conn);
        // IMMEDIATE takes the write lock first, so the bound check and the
        // eviction see no other process's insert in between.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM responses WHERE id = ?1", [id])?;
        tx.execute(
            "INSERT INTO responses (id, created_at, size, body) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![id, to_i64(created_at), to_i64(entry_size(id, body)), body],
        )?;
        let (mut count, mut bytes): (i64, i64) = tx.query_row(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM responses",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (max_count, max_bytes) = (
            to_i64(self.limits.max_responses),
            to_i64(self.limits.max_bytes),
        );
        if count > max_count || bytes > max_bytes {
            // Walk from the oldest until the rest fits; the newest (just
            // inserted) is never reached while count > 1.
            let mut cut = None;
            {
                let mut oldest = tx.prepare("SELECT seq, size FROM responses ORDER BY seq")?;
                let mut rows = oldest.query([])?;
                while count > 1 && (count > max_count || bytes > max_bytes) {
                    let Some(row) = rows.next()? else { break };
                    cut = Some(row.get::<_, i64>(0)?);
                    count -= 1;
                    bytes -= row.get::<_, i64>(1)?;
                }
            }
            if let Some(cut) = cut {
                tx.execute("DELETE FROM responses WHERE seq <= ?1", [cut])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.conn)
            .query_row("SELECT body FROM responses WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn delete(&self, id: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.conn).execute("DELETE FROM responses WHERE id = ?1", [id])? > 0)
    }

    fn count(&self) -> Result<u64, StoreError> {
        let n: i64 =
            lock(&self.conn).query_row("SELECT COUNT(*) FROM responses", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn describe(&self) -> String {
        format!(
            "in SQLite {} ({})",
            self.path.display(),
            describe_limits(self.limits)
        )
    }

    fn create_conversation(
        &self,
        id: &str,
        record: &str,
        items: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM conversation_items WHERE conversation = ?1",
            [id],
        )?;
        tx.execute("DELETE FROM conversations WHERE id = ?1", [id])?;
        tx.execute(
            "INSERT INTO conversations (id, touched, size, body) VALUES \
             (?1, (SELECT COALESCE(MAX(touched), 0) + 1 FROM conversations), ?2, ?3)",
            rusqlite::params![id, to_i64(conversation_size(id, record, &[])), record],
        )?;
        insert_items(&tx, id, items)?;
        evict_conversations(&tx, id, self.limits)?;
        tx.commit()?;
        Ok(())
    }

    fn get_conversation(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.conn)
            .query_row("SELECT body FROM conversations WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn update_conversation(&self, id: &str, record: &str) -> Result<bool, StoreError> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old: Option<String> = tx
            .query_row("SELECT body FROM conversations WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(old) = old else {
            return Ok(false);
        };
        let delta = to_i64(entry_size(id, record)) - to_i64(entry_size(id, &old));
        tx.execute(
            "UPDATE conversations SET body = ?2, size = size + ?3, \
             touched = (SELECT MAX(touched) + 1 FROM conversations) WHERE id = ?1",
            rusqlite::params![id, record, delta],
        )?;
        evict_conversations(&tx, id, self.limits)?;
        tx.commit()?;
        Ok(true)
    }

    fn delete_conversation(&self, id: &str) -> Result<bool, StoreError> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM conversation_items WHERE conversation = ?1",
            [id],
        )?;
        let n = tx.execute("DELETE FROM conversations WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn add_items(&self, id: &str, items: &[(String, String)]) -> Result<bool, StoreError> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let touched = tx.execute(
            "UPDATE conversations SET touched = (SELECT MAX(touched) + 1 FROM conversations) \
             WHERE id = ?1",
            [id],
        )?;
        if touched == 0 {
            return Ok(false);
        }
        insert_items(&tx, id, items)?;
        evict_conversations(&tx, id, self.limits)?;
        tx.commit()?;
        Ok(true)
    }

    fn list_items(
        &self,
        id: &str,
        after: Option<&str>,
        limit: usize,
        desc: bool,
    ) -> Result<Option<Vec<(String, String)>>, StoreError> {
        let conn = lock(&self.conn);
        let exists = conn
            .query_row(
                "SELECT 1 FROM conversations WHERE id = ?1",
                [id],
                |_| Ok(()),
            )
            .optional()?;
        if exists.is_none() {
            return Ok(None);
        }
        let from = match after {
            None if desc => i64::MAX,
            None => i64::MIN,
            Some(after) => {
                let seq: Option<i64> = conn
                    .query_row(
                        "SELECT seq FROM conversation_items WHERE conversation = ?1 AND id = ?2",
                        [id, after],
                        |r| r.get(0),
                    )
                    .optional()?;
                match seq {
                    Some(seq) => seq,
                    None => return Ok(Some(Vec::new())),
                }
            }
        };
        let sql = if desc {
            "SELECT id, body FROM conversation_items WHERE conversation = ?1 AND seq < ?2 \
             ORDER BY seq DESC LIMIT ?3"
        } else {
            "SELECT id, body FROM conversation_items WHERE conversation = ?1 AND seq > ?2 \
             ORDER BY seq LIMIT ?3"
        };
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt
            .query_map(rusqlite::params![id, from, to_i64(limit as u64)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(rows))
    }

    fn get_item(&self, id: &str, item: &str) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.conn)
            .query_row(
                "SELECT body FROM conversation_items WHERE conversation = ?1 AND id = ?2",
                [id, item],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn delete_item(&self, id: &str, item: &str) -> Result<bool, StoreError> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let body: Option<String> = tx
            .query_row(
                "SELECT body FROM conversation_items WHERE conversation = ?1 AND id = ?2",
                [id, item],
                |r| r.get(0),
            )
            .optional()?;
        let Some(body) = body else {
            return Ok(false);
        };
        tx.execute(
            "DELETE FROM conversation_items WHERE conversation = ?1 AND id = ?2",
            [id, item],
        )?;
        tx.execute(
            "UPDATE conversations SET size = size - ?2 WHERE id = ?1",
            rusqlite::params![id, to_i64(entry_size(item, &body))],
        )?;
        tx.commit()?;
        Ok(true)
    }

    fn conversation_count(&self) -> Result<u64, StoreError> {
        let n: i64 =
            lock(&self.conn).query_row("SELECT COUNT(*) FROM conversations", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// Append items to conversation `id` and add their bytes to its size.
fn insert_items(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    items: &[(String, String)],
) -> Result<(), StoreError> {
    let mut insert =
        tx.prepare("INSERT INTO conversation_items (conversation, id, body) VALUES (?1, ?2, ?3)")?;
    let mut added = 0u64;
    for (item, body) in items {
        insert.execute([id, item, body])?;
        added += entry_size(item, body);
    }
    tx.execute(
        "UPDATE conversations SET size = size + ?2 WHERE id = ?1",
        rusqlite::params![id, to_i64(added)],
    )?;
    Ok(())
}

/// Drop the least recently written conversations other than `keep` while
/// over the limits.
fn evict_conversations(
    tx: &rusqlite::Transaction<'_>,
    keep: &str,
    limits: Limits,
) -> Result<(), StoreError> {
    let (mut count, mut bytes): (i64, i64) = tx.query_row(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM conversations",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (max_count, max_bytes) = (to_i64(limits.max_responses), to_i64(limits.max_bytes));
    if count <= max_count && bytes <= max_bytes {
        return Ok(());
    }
    let mut gone = Vec::new();
    {
        let mut oldest =
            tx.prepare("SELECT id, size FROM conversations WHERE id != ?1 ORDER BY touched")?;
        let mut rows = oldest.query([keep])?;
        while count > 1 && (count > max_count || bytes > max_bytes) {
            let Some(row) = rows.next()? else { break };
            gone.push(row.get::<_, String>(0)?);
            count -= 1;
            bytes -= row.get::<_, i64>(1)?;
        }
    }
    for id in gone {
        tx.execute(
            "DELETE FROM conversation_items WHERE conversation = ?1",
            [&id],
        )?;
        tx.execute("DELETE FROM conversations WHERE id = ?1", [&id])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gptoss_harmony::Role;
    use serde_json::json;

    fn limits(max_responses: u64, max_bytes: u64) -> Limits {
        Limits {
            max_responses,
            max_bytes,
        }
    }

    fn sqlite(path: &Path, l: Limits) -> Sqlite {
        Sqlite::open(path, l).expect("store opens")
    }

    fn ids(b: &dyn Backend, all: &[&str]) -> Vec<String> {
        all.iter()
            .filter(|id| b.get(id).ok().flatten().is_some())
            .map(|id| id.to_string())
            .collect()
    }

    /// The same checks for both backends.
    fn insert_get_delete(b: &dyn Backend) {
        assert_eq!(b.count().ok(), Some(0));
        b.put("resp_a", 1, r#"{"n":1}"#).expect("put");
        b.put("resp_b", 2, r#"{"n":2}"#).expect("put");
        assert_eq!(
            b.get("resp_a").ok().flatten().as_deref(),
            Some(r#"{"n":1}"#)
        );
        assert_eq!(b.get("resp_nope").ok().flatten(), None);
        assert_eq!(b.count().ok(), Some(2));
        // Same id again: replaced, not duplicated.
        b.put("resp_a", 3, r#"{"n":3}"#).expect("put");
        assert_eq!(
            b.get("resp_a").ok().flatten().as_deref(),
            Some(r#"{"n":3}"#)
        );
        assert_eq!(b.count().ok(), Some(2));
        assert_eq!(b.delete("resp_a").ok(), Some(true));
        assert_eq!(b.delete("resp_a").ok(), Some(false));
        assert_eq!(b.get("resp_a").ok().flatten(), None);
        assert_eq!(b.count().ok(), Some(1));
    }

    fn evicts_by_count(b: &dyn Backend) {
        for id in ["a", "b", "c", "d"] {
            b.put(id, 0, "{}").expect("put");
        }
        assert_eq!(ids(b, &["a", "b", "c", "d"]), ["c", "d"]);
        assert_eq!(b.count().ok(), Some(2));
    }

    /// Bound 100 bytes; each entry is 1 + 39 = 40 bytes.
    fn evicts_by_size(b: &dyn Backend) {
        let body = "x".repeat(39);
        for id in ["a", "b", "c"] {
            b.put(id, 0, &body).expect("put");
        }
        assert_eq!(ids(b, &["a", "b", "c"]), ["b", "c"]);
        // One response over the whole bound is kept alone (the newest always stays).
        let big = "y".repeat(150);
        b.put("d", 0, &big).expect("put");
        assert_eq!(ids(b, &["a", "b", "c", "d"]), ["d"]);
        b.put("e", 0, &body).expect("put");
        assert_eq!(ids(b, &["a", "b", "c", "d", "e"]), ["e"]);
    }

    fn item(id: &str) -> (String, String) {
        (id.to_string(), format!("{{\"id\":\"{id}\"}}"))
    }

    fn item_ids(rows: Option<Vec<(String, String)>>) -> Vec<String> {
        rows.unwrap_or_default()
            .into_iter()
            .map(|(i, _)| i)
            .collect()
    }

    /// The same conversation checks for both backends (limits: 2 conversations).
    fn conversations(b: &dyn Backend) {
        b.create_conversation("conv_a", r#"{"m":1}"#, &[item("i1"), item("i2")])
            .expect("create");
        assert_eq!(
            b.get_conversation("conv_a").ok().flatten().as_deref(),
            Some(r#"{"m":1}"#)
        );
        assert!(b
            .add_items("conv_a", &[item("i3"), item("i4")])
            .expect("add"));
        assert!(!b.add_items("conv_nope", &[item("x")]).expect("add"));
        let list = |after: Option<&str>, limit, desc| {
            item_ids(b.list_items("conv_a", after, limit, desc).expect("list"))
        };
        assert_eq!(list(None, 10, false), ["i1", "i2", "i3", "i4"]);
        assert_eq!(list(None, 2, true), ["i4", "i3"]);
        assert_eq!(list(Some("i2"), 10, false), ["i3", "i4"]);
        assert_eq!(list(Some("i3"), 10, true), ["i2", "i1"]);
        assert!(list(Some("unknown"), 10, false).is_empty());
        assert!(b
            .list_items("conv_nope", None, 10, false)
            .expect("list")
            .is_none());
        assert_eq!(
            b.get_item("conv_a", "i3").ok().flatten().as_deref(),
            Some(r#"{"id":"i3"}"#)
        );
        assert!(b.delete_item("conv_a", "i3").expect("delete"));
        assert!(!b.delete_item("conv_a", "i3").expect("delete"));
        assert_eq!(b.get_item("conv_a", "i3").ok().flatten(), None);
        assert_eq!(list(None, 10, false), ["i1", "i2", "i4"]);
        assert!(b
            .update_conversation("conv_a", r#"{"m":2}"#)
            .expect("update"));
        assert!(!b.update_conversation("conv_nope", "{}").expect("update"));
        assert_eq!(
            b.get_conversation("conv_a").ok().flatten().as_deref(),
            Some(r#"{"m":2}"#)
        );
        // Bound of 2: b then c are created, a was written before b: a goes.
        // Then writing to b makes c the least recently written.
        b.create_conversation("conv_b", "{}", &[]).expect("create");
        b.create_conversation("conv_c", "{}", &[]).expect("create");
        assert_eq!(b.get_conversation("conv_a").ok().flatten(), None);
        assert!(b
            .list_items("conv_a", None, 10, false)
            .expect("list")
            .is_none());
        assert!(b.add_items("conv_b", &[item("j1")]).expect("add"));
        b.create_conversation("conv_d", "{}", &[]).expect("create");
        assert_eq!(b.get_conversation("conv_c").ok().flatten(), None);
        assert!(b.get_conversation("conv_b").ok().flatten().is_some());
        assert_eq!(b.conversation_count().ok(), Some(2));
        assert!(b.delete_conversation("conv_b").expect("delete"));
        assert!(!b.delete_conversation("conv_b").expect("delete"));
        assert_eq!(b.get_item("conv_b", "j1").ok().flatten(), None);
        assert_eq!(b.conversation_count().ok(), Some(1));
        // Conversations do not count against the responses' bound.
        assert_eq!(b.count().ok(), Some(0));
    }

    /// Bound 100 bytes: items beyond it evict other conversations, never the one written.
    fn conversations_evict_by_size(b: &dyn Backend) {
        b.create_conversation("a", "{}", &[(String::from("x"), "y".repeat(40))])
            .expect("create");
        b.create_conversation("b", "{}", &[(String::from("x"), "y".repeat(40))])
            .expect("create");
        assert!(b.get_conversation("a").ok().flatten().is_some());
        assert!(b
            .add_items("b", &[(String::from("z"), "y".repeat(40))])
            .expect("add"));
        assert_eq!(b.get_conversation("a").ok().flatten(), None);
        assert!(b
            .add_items("b", &[(String::from("w"), "y".repeat(400))])
            .expect("add"));
        assert_eq!(
            item_ids(b.list_items("b", None, 10, false).expect("list")),
            ["x", "z", "w"]
        );
    }

    #[test]
    fn memory_conversations() {
        conversations(ResponseStore::memory(limits(2, 1 << 20)).0.as_ref());
        conversations_evict_by_size(ResponseStore::memory(limits(10, 100)).0.as_ref());
    }

    #[test]
    fn sqlite_conversations() {
        let dir = tempfile::tempdir().expect("tempdir");
        conversations(&sqlite(&dir.path().join("a.sqlite3"), limits(2, 1 << 20)));
        conversations_evict_by_size(&sqlite(&dir.path().join("b.sqlite3"), limits(10, 100)));
    }

    /// A version-1 file (responses only) gets the conversation tables and
    /// keeps its responses.
    #[test]
    fn version_1_file_is_migrated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v1.sqlite3");
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(SCHEMA).expect("v1 schema");
            conn.pragma_update(None, "user_version", 1)
                .expect("version");
            conn.execute(
                "INSERT INTO responses (id, created_at, size, body) VALUES ('resp_old', 1, 10, '{}')",
                [],
            )
            .expect("insert");
        }
        let s = sqlite(&path, Limits::default());
        assert_eq!(s.get("resp_old").ok().flatten().as_deref(), Some("{}"));
        s.create_conversation("conv_1", "{}", &[item("i1")])
            .expect("create");
        drop(s);
        let s = sqlite(&path, Limits::default());
        assert_eq!(user_version(&lock(&s.conn)).ok(), Some(SCHEMA_VERSION));
        assert_eq!(
            item_ids(s.list_items("conv_1", None, 10, false).expect("list")),
            ["i1"]
        );
    }

    #[test]
    fn memory_backend() {
        let store = |l| ResponseStore::memory(l).0;
        insert_get_delete(store(Limits::default()).as_ref());
        evicts_by_count(store(limits(2, 1 << 20)).as_ref());
        evicts_by_size(store(limits(100, 100)).as_ref());
    }

    #[test]
    fn sqlite_backend() {
        let dir = tempfile::tempdir().expect("tempdir");
        insert_get_delete(&sqlite(&dir.path().join("a.sqlite3"), Limits::default()));
        evicts_by_count(&sqlite(&dir.path().join("b.sqlite3"), limits(2, 1 << 20)));
        evicts_by_size(&sqlite(&dir.path().join("c.sqlite3"), limits(100, 100)));
    }

    #[test]
    fn sqlite_reopen_keeps_data_and_connections_share_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A folder that does not exist yet is created.
        let path = dir.path().join("sub/dir/responses.sqlite3");
        {
            let s = sqlite(&path, Limits::default());
            s.put("resp_1", 10, r#"{"kept":true}"#).expect("put");
        }
        let a = sqlite(&path, Limits::default());
        assert_eq!(
            a.get("resp_1").ok().flatten().as_deref(),
            Some(r#"{"kept":true}"#)
        );
        // A second connection (as another process would have) sees a's
        // writes at once, and a sees its deletes.
        let b = sqlite(&path, Limits::default());
        a.put("resp_2", 11, "{}").expect("put");
        assert!(b.get("resp_2").ok().flatten().is_some());
        assert_eq!(b.delete("resp_1").ok(), Some(true));
        assert_eq!(a.get("resp_1").ok().flatten(), None);
        assert_eq!(a.count().ok(), Some(1));
        let mode: String = lock(&a.conn)
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("journal mode");
        assert_eq!(mode, "wal");
    }

    #[test]
    fn sqlite_bound_check_reads_the_index_not_the_bodies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = sqlite(&dir.path().join("r.sqlite3"), Limits::default());
        let conn = lock(&s.conn);
        let mut plan = conn
            .prepare("EXPLAIN QUERY PLAN SELECT COUNT(*), COALESCE(SUM(size), 0) FROM responses")
            .expect("prepare");
        let detail: Vec<String> = plan
            .query_map([], |r| r.get::<_, String>(3))
            .expect("plan")
            .filter_map(Result::ok)
            .collect();
        assert!(
            detail
                .iter()
                .any(|d| d.contains("COVERING INDEX responses_size")),
            "{detail:?}"
        );
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.sqlite3");
        drop(sqlite(&path, Limits::default()));
        {
            let conn = Connection::open(&path).expect("open");
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .expect("set version");
        }
        let err = Sqlite::open(&path, Limits::default())
            .err()
            .expect("refused");
        assert!(
            matches!(err, StoreError::NewerSchema { found: 3, .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("newer"),
            "{msg}"
        );
    }

    #[test]
    fn corrupt_or_foreign_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("garbage.sqlite3");
        std::fs::write(
            &path,
            "this is not an SQLite database, only text. ".repeat(200),
        )
        .expect("write");
        let err = Sqlite::open(&path, Limits::default())
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Open { .. }), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("not a database"), "{msg}");

        // A valid SQLite file whose pages were damaged after the header.
        let path = dir.path().join("damaged.sqlite3");
        {
            let s = sqlite(&path, Limits::default());
            for i in 0..200 {
                s.put(&format!("resp_{i}"), 0, &"z".repeat(500))
                    .expect("put");
            }
            lock(&s.conn)
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;")
                .expect("checkpoint");
        }
        let mut bytes = std::fs::read(&path).expect("read");
        assert!(bytes.len() > 3 * 4096);
        for b in &mut bytes[4096 + 8..3 * 4096] {
            *b = 0xA5;
        }
        std::fs::write(&path, bytes).expect("write");
        let err = Sqlite::open(&path, Limits::default())
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");

        // Another program's database is not taken over.
        let path = dir.path().join("other.sqlite3");
        Connection::open(&path)
            .and_then(|c| c.execute_batch("CREATE TABLE notes (t TEXT);"))
            .expect("other db");
        let err = Sqlite::open(&path, Limits::default())
            .err()
            .expect("refused");
        assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
    }

    #[test]
    fn unreadable_path_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A folder where the file should be.
        let err = Sqlite::open(dir.path(), Limits::default())
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    }

    #[tokio::test]
    async fn stored_response_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.sqlite3");
        let stored = StoredResponse {
            json: json!({"id": "resp_x", "object": "response", "output": [{"type": "message"}]}),
            history: vec![
                Message::from_role_and_content(Role::User, "Weather in Paris?"),
                Message::from_role_and_content(Role::Assistant, "{\"city\":\"Paris\"}")
                    .with_channel("commentary")
                    .with_recipient("functions.get_weather")
                    .with_content_type("<|constrain|>json"),
                Message::from_role_and_content(Role::Assistant, "Sunny.").with_channel("final"),
            ],
            instructions: Some("Be brief.".into()),
            call_names: vec![("call_1".into(), "get_weather".into())],
        };
        for store in [
            ResponseStore::memory(Limits::default()),
            ResponseStore::sqlite(&path, Limits::default()).expect("opens"),
        ] {
            store
                .put("resp_x".into(), stored.clone())
                .await
                .expect("put");
            let back = store.get("resp_x").await.expect("get").expect("found");
            assert_eq!(back.json, stored.json);
            assert_eq!(back.history, stored.history);
            assert_eq!(back.instructions, stored.instructions);
            assert_eq!(back.call_names, stored.call_names);
            assert_eq!(store.count().await.ok(), Some(1));
            assert!(store.delete("resp_x").await.expect("delete"));
            assert!(store.get("resp_x").await.expect("get").is_none());
        }
    }
}
