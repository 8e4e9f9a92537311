//! The persistent store: one redb database file per store and task
//! (`<state.dir>/<application.id>/<task>/<store>.redb`) behind an in-memory write buffer.
//!
//! Writes go to the buffer; `flush` applies the buffer in one redb write transaction,
//! committed with redb's default durability (fsync before `commit` returns). The task
//! flushes at every commit, after the changelog records of those writes are acknowledged
//! and before it writes the checkpoint, so a checkpointed offset never runs ahead of what
//! the file holds. Reads see the buffer first, then the file.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use redb::{Database, ReadableTableMetadata, TableDefinition};

use super::BytesStore;
use crate::error::{Result, StreamsError};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

pub(crate) struct RedbStore {
    name: String,
    path: PathBuf,
    db: Database,
    /// Writes since the last flush (`None`: deleted).
    buffer: BTreeMap<Bytes, Option<Bytes>>,
    /// Entries in the file at the last flush.
    file_len: u64,
}

impl RedbStore {
    pub(crate) fn open(name: &str, path: &Path) -> Result<RedbStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StreamsError::io(dir, e))?;
        }
        let err = |e: &dyn std::fmt::Display| {
            StreamsError::store(name, format!("{}: {e}", path.display()))
        };
        let db = Database::create(path).map_err(|e| err(&e))?;
        // Creates the table on first open so read transactions always find it.
        let w = db.begin_write().map_err(|e| err(&e))?;
        let file_len = {
            let t = w.open_table(TABLE).map_err(|e| err(&e))?;
            t.len().map_err(|e| err(&e))?
        };
        w.commit().map_err(|e| err(&e))?;
        Ok(RedbStore {
            name: name.to_string(),
            path: path.to_path_buf(),
            db,
            buffer: BTreeMap::new(),
            file_len,
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> StreamsError {
        StreamsError::store(&self.name, format!("{}: {e}", self.path.display()))
    }

    fn file_range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Bytes, Bytes)>> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(TABLE).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t.range::<&[u8]>((from, to)).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push((
                Bytes::copy_from_slice(k.value()),
                Bytes::copy_from_slice(v.value()),
            ));
        }
        Ok(out)
    }
}

impl BytesStore for RedbStore {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        if let Some(v) = self.buffer.get(key) {
            return Ok(v.clone());
        }
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(TABLE).map_err(|e| self.err(e))?;
        let v = t.get(key).map_err(|e| self.err(e))?;
        Ok(v.map(|v| Bytes::copy_from_slice(v.value())))
    }

    fn put(&mut self, key: Bytes, value: Bytes) -> Result<()> {
        self.buffer.insert(key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.buffer.insert(Bytes::copy_from_slice(key), None);
        Ok(())
    }

    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Bytes, Bytes)>> {
        if super::empty_range(from, to) {
            return Ok(Vec::new());
        }
        let mut merged: BTreeMap<Bytes, Bytes> = self.file_range(from, to)?.into_iter().collect();
        for (k, v) in self.buffer.range::<[u8], _>((from, to)) {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().collect())
    }

    fn approximate_len(&self) -> u64 {
        let added = self.buffer.values().filter(|v| v.is_some()).count() as u64;
        self.file_len.saturating_add(added)
    }

    fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let w = self.db.begin_write().map_err(|e| self.err(e))?;
        let len = {
            let mut t = w.open_table(TABLE).map_err(|e| self.err(e))?;
            for (k, v) in &self.buffer {
                match v {
                    Some(v) => {
                        t.insert(k.as_ref(), v.as_ref()).map_err(|e| self.err(e))?;
                    }
                    None => {
                        t.remove(k.as_ref()).map_err(|e| self.err(e))?;
                    }
                }
            }
            t.len().map_err(|e| self.err(e))?
        };
        // Durability::Immediate (the default): fsynced before commit returns.
        w.commit().map_err(|e| self.err(e))?;
        self.buffer.clear();
        self.file_len = len;
        Ok(())
    }

    fn persistent(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffered_writes_merge_with_the_file_and_survive_reopen_after_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let mut s = RedbStore::open("s", &path).unwrap();
        s.put(Bytes::from_static(b"a"), Bytes::from_static(b"1"))
            .unwrap();
        s.put(Bytes::from_static(b"b"), Bytes::from_static(b"2"))
            .unwrap();
        s.flush().unwrap();
        s.put(Bytes::from_static(b"c"), Bytes::from_static(b"3"))
            .unwrap();
        s.delete(b"a").unwrap();
        assert_eq!(s.get(b"a").unwrap(), None);
        assert_eq!(s.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
        let all = s.range(Bound::Unbounded, Bound::Unbounded).unwrap();
        let keys: Vec<&[u8]> = all.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, vec![&b"b"[..], b"c"]);
        let some = s
            .range(Bound::Included(&b"b"[..]), Bound::Excluded(&b"c"[..]))
            .unwrap();
        assert_eq!(some.len(), 1);
        assert!(s
            .range(Bound::Included(&b"c"[..]), Bound::Excluded(&b"b"[..]))
            .unwrap()
            .is_empty());
        drop(s);
        // Unflushed writes are gone after a reopen, flushed ones are there.
        let mut s = RedbStore::open("s", &path).unwrap();
        assert_eq!(s.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(s.get(b"c").unwrap(), None);
        s.delete(b"a").unwrap();
        s.flush().unwrap();
        drop(s);
        let s = RedbStore::open("s", &path).unwrap();
        assert_eq!(s.get(b"a").unwrap(), None);
        assert_eq!(s.approximate_len(), 1);
    }
}
