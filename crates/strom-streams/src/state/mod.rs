//! State stores. Every store is, underneath, an ordered map of bytes to bytes
//! ([`BytesStore`]): in memory ([`memory::MemoryStore`]) or on local disk
//! ([`persistent::RedbStore`]). Window and session stores are encodings of their keys over
//! such a map (`typed.rs`), so changelogging, restoring, checkpoints and standby replicas
//! are written once, here, for all three kinds.
//!
//! A logged store remembers every write as a changelog entry; the task drains the entries
//! after each record and sends them to the store's compacted changelog topic (partition =
//! the task's partition). Restoring replays that topic straight into the bytes map.

pub(crate) mod checkpoint;
pub(crate) mod memory;
pub(crate) mod persistent;
pub mod typed;

use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::error::{Result, StreamsError};

/// An ordered map of bytes to bytes.
pub trait BytesStore: Send {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>>;
    fn put(&mut self, key: Bytes, value: Bytes) -> Result<()>;
    fn delete(&mut self, key: &[u8]) -> Result<()>;
    /// Entries with keys in the range, in key order.
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Bytes, Bytes)>>;
    /// Entries (an estimate for stores that buffer writes).
    fn approximate_len(&self) -> u64;
    /// Makes every write so far durable (a no-op in memory).
    fn flush(&mut self) -> Result<()>;
    /// Whether the contents survive the process (checkpoints are only kept for these).
    fn persistent(&self) -> bool;
}

/// What kind of store a topology declared; decides the key encoding and the changelog
/// topic's cleanup policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    KeyValue,
    /// Time-first keys; entries older than `retention_ms` behind stream time are dropped.
    Window {
        retention_ms: i64,
        duplicates: bool,
    },
    Session {
        retention_ms: i64,
    },
}

/// A store declared by a topology.
#[derive(Clone)]
pub struct StoreSpec {
    pub name: String,
    pub kind: StoreKind,
    /// On local disk (redb) rather than in memory.
    pub persistent: bool,
    /// Backed by a changelog topic `<application.id>-<name>-changelog`.
    pub logged: bool,
    /// Window size of a window store (to report window ends).
    pub window_size_ms: i64,
    /// `(SerdeRef<K>, SerdeRef<V>)` of the store's declared types, for processors and
    /// interactive queries.
    pub(crate) serdes: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("persistent", &self.persistent)
            .field("logged", &self.logged)
            .finish()
    }
}

/// Kafka's `windowstore.changelog.additional.retention.ms` default: a windowed changelog
/// keeps records one day longer than the store does.
pub const WINDOW_CHANGELOG_EXTRA_RETENTION_MS: i64 = 86_400_000;

impl StoreSpec {
    pub fn key_value(name: &str) -> Self {
        StoreSpec {
            name: name.to_string(),
            kind: StoreKind::KeyValue,
            persistent: true,
            logged: true,
            window_size_ms: 0,
            serdes: None,
        }
    }

    /// Remembers the store's key and value serdes.
    pub(crate) fn with_serdes<K: 'static, V: 'static>(
        mut self,
        keys: crate::serdes::SerdeRef<K>,
        values: crate::serdes::SerdeRef<V>,
    ) -> Self {
        self.serdes = Some(Arc::new((keys, values)));
        self
    }

    /// Topic configs of the changelog topic (as Kafka sets them).
    pub fn changelog_configs(&self) -> Vec<(String, String)> {
        match self.kind {
            StoreKind::KeyValue => vec![("cleanup.policy".into(), "compact".into())],
            StoreKind::Window { retention_ms, .. } | StoreKind::Session { retention_ms } => vec![
                ("cleanup.policy".into(), "compact,delete".into()),
                (
                    "retention.ms".into(),
                    retention_ms
                        .saturating_add(WINDOW_CHANGELOG_EXTRA_RETENTION_MS)
                        .to_string(),
                ),
            ],
        }
    }

    /// Opens the store for one task: in memory, or under `dir` on disk.
    pub(crate) fn open(&self, dir: Option<&Path>) -> Result<StoreCell> {
        let store: Box<dyn BytesStore> = match (self.persistent, dir) {
            (true, Some(dir)) => Box::new(persistent::RedbStore::open(
                &self.name,
                &dir.join(format!("{}.redb", self.name)),
            )?),
            _ => Box::new(memory::MemoryStore::default()),
        };
        Ok(Arc::new(Mutex::new(StoreInner {
            store,
            log: self.logged.then(Vec::new),
        })))
    }
}

/// Whether a range is empty by its bounds alone (`BTreeMap::range` panics on these).
pub(crate) fn empty_range(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    match (from, to) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
        _ => false,
    }
}

/// A changelog entry waiting to be sent: key and value (`None`: a tombstone).
pub(crate) type LogEntry = (Bytes, Option<Bytes>);

/// One open store of one task.
pub struct StoreInner {
    pub(crate) store: Box<dyn BytesStore>,
    /// `Some` when logged: writes not yet handed to the changelog.
    pub(crate) log: Option<Vec<LogEntry>>,
}

impl StoreInner {
    pub(crate) fn put(&mut self, key: Bytes, value: Bytes) -> Result<()> {
        if let Some(log) = &mut self.log {
            log.push((key.clone(), Some(value.clone())));
        }
        self.store.put(key, value)
    }

    pub(crate) fn delete(&mut self, key: &[u8]) -> Result<()> {
        if let Some(log) = &mut self.log {
            log.push((Bytes::copy_from_slice(key), None));
        }
        self.store.delete(key)
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.store.get(key)
    }

    pub(crate) fn range(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        self.store.range(from, to)
    }

    /// Applies one changelog record while restoring (not logged again).
    pub(crate) fn restore(&mut self, key: Bytes, value: Option<Bytes>) -> Result<()> {
        match value {
            Some(v) => self.store.put(key, v),
            None => self.store.delete(&key),
        }
    }

    pub(crate) fn take_log(&mut self) -> Vec<LogEntry> {
        self.log.as_mut().map(std::mem::take).unwrap_or_default()
    }
}

/// A store shared by the task that writes it, the processors that hold it, and
/// interactive queries.
pub type StoreCell = Arc<Mutex<StoreInner>>;

pub(crate) fn lock(cell: &StoreCell) -> Result<MutexGuard<'_, StoreInner>> {
    cell.lock().map_err(|_| StreamsError::Store {
        store: "?".into(),
        reason: "lock poisoned by a panic in another thread".into(),
    })
}
