//! Typed views of stores: [`KeyValueStore`], [`WindowStore`] and [`SessionStore`] over a
//! task's bytes store, with the serdes that convert keys and values. Key-value stores are
//! ordered by serialized key (as in Kafka). Window and session stores put time first
//! (`start` for windows, `end` then `start` for sessions, 8 bytes each with the sign bit
//! flipped so byte order is time order) and the serialized key after it, so expiring old
//! windows is one range; a window store that keeps duplicates (stream-stream joins) adds a
//! 4-byte sequence number.

use std::ops::Bound;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::{lock, StoreCell};
use crate::error::{Result, StreamsError};
use crate::serdes::{from_bytes, to_bytes, SerdeRef};
use crate::windows::Window;

/// Time as 8 bytes whose byte order is numeric order.
pub(crate) fn time_bytes(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn time_from(b: &[u8]) -> i64 {
    let mut arr = [0u8; 8];
    arr.copy_from_slice(&b[..8]);
    (u64::from_be_bytes(arr) ^ (1 << 63)) as i64
}

/// A key-value store of one task.
pub struct KeyValueStore<K, V> {
    pub(crate) cell: StoreCell,
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
    pub(crate) name: Arc<str>,
}

impl<K, V> Clone for KeyValueStore<K, V> {
    fn clone(&self) -> Self {
        KeyValueStore {
            cell: self.cell.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
            name: self.name.clone(),
        }
    }
}

impl<K: 'static, V: 'static> KeyValueStore<K, V> {
    pub(crate) fn new(name: &str, cell: StoreCell, keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        KeyValueStore {
            cell,
            keys,
            values,
            name: Arc::from(name),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn key_bytes(&self, key: &K) -> Result<Bytes> {
        to_bytes(
            self.keys.as_ref(),
            key,
            &format!("key of store {}", self.name),
        )
    }

    fn value_of(&self, b: &[u8]) -> Result<V> {
        from_bytes(
            self.values.as_ref(),
            b,
            &format!("value of store {}", self.name),
        )
    }

    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let k = self.key_bytes(key)?;
        let v = lock(&self.cell)?.get(&k)?;
        v.map(|v| self.value_of(&v)).transpose()
    }

    pub fn put(&self, key: &K, value: &V) -> Result<()> {
        let k = self.key_bytes(key)?;
        let v = to_bytes(
            self.values.as_ref(),
            value,
            &format!("value of store {}", self.name),
        )?;
        lock(&self.cell)?.put(k, v)
    }

    /// Puts unless the key has a value; returns the value it has.
    pub fn put_if_absent(&self, key: &K, value: &V) -> Result<Option<V>> {
        let existing = self.get(key)?;
        if existing.is_none() {
            self.put(key, value)?;
        }
        Ok(existing)
    }

    /// Deletes `key`; returns the value it had.
    pub fn delete(&self, key: &K) -> Result<Option<V>> {
        let k = self.key_bytes(key)?;
        let mut s = lock(&self.cell)?;
        let old = s.get(&k)?;
        if old.is_some() {
            s.delete(&k)?;
        }
        drop(s);
        old.map(|v| self.value_of(&v)).transpose()
    }

    /// Entries with serialized keys between those of `from` and `to`, both inclusive.
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        let (a, b) = (self.key_bytes(from)?, self.key_bytes(to)?);
        let entries = lock(&self.cell)?.range(Bound::Included(&a), Bound::Included(&b))?;
        self.decode_all(entries)
    }

    /// Every entry in key order.
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        let entries = lock(&self.cell)?.range(Bound::Unbounded, Bound::Unbounded)?;
        self.decode_all(entries)
    }

    /// Entries whose serialized key starts with `prefix`'s bytes.
    pub fn prefix_scan(&self, prefix: &[u8]) -> Result<Vec<(K, V)>> {
        let entries = lock(&self.cell)?.range(Bound::Included(prefix), Bound::Unbounded)?;
        let entries = entries
            .into_iter()
            .take_while(|(k, _)| k.starts_with(prefix))
            .collect();
        self.decode_all(entries)
    }

    pub fn approximate_num_entries(&self) -> Result<u64> {
        Ok(lock(&self.cell)?.store.approximate_len())
    }

    fn decode_all(&self, entries: Vec<(Bytes, Bytes)>) -> Result<Vec<(K, V)>> {
        entries
            .into_iter()
            .map(|(k, v)| {
                let key = from_bytes(
                    self.keys.as_ref(),
                    &k,
                    &format!("key of store {}", self.name),
                )?;
                Ok((key, self.value_of(&v)?))
            })
            .collect()
    }
}

/// A window store of one task: values per key and window start.
pub struct WindowStore<K, V> {
    pub(crate) cell: StoreCell,
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
    pub(crate) name: Arc<str>,
    /// Window size, to report window ends (`i64::MAX`-free: start + size).
    pub(crate) size_ms: i64,
    pub(crate) duplicates: bool,
    pub(crate) seq: Arc<AtomicU32>,
}

impl<K, V> Clone for WindowStore<K, V> {
    fn clone(&self) -> Self {
        WindowStore {
            cell: self.cell.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
            name: self.name.clone(),
            size_ms: self.size_ms,
            duplicates: self.duplicates,
            seq: self.seq.clone(),
        }
    }
}

impl<K: 'static, V: 'static> WindowStore<K, V> {
    pub(crate) fn new(
        name: &str,
        cell: StoreCell,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
        size_ms: i64,
        duplicates: bool,
    ) -> Self {
        WindowStore {
            cell,
            keys,
            values,
            name: Arc::from(name),
            size_ms,
            duplicates,
            seq: Arc::new(AtomicU32::new(0)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn key_bytes(&self, key: &K) -> Result<Bytes> {
        to_bytes(
            self.keys.as_ref(),
            key,
            &format!("key of store {}", self.name),
        )
    }

    fn encode(&self, start: i64, key: &[u8]) -> Bytes {
        let mut b = BytesMut::with_capacity(12 + key.len());
        b.put_slice(&time_bytes(start));
        b.put_slice(key);
        if self.duplicates {
            b.put_u32(self.seq.fetch_add(1, Ordering::Relaxed));
        }
        b.freeze()
    }

    fn split<'a>(&self, stored: &'a [u8]) -> Option<(i64, &'a [u8])> {
        let tail = if self.duplicates { 4 } else { 0 };
        if stored.len() < 8 + tail {
            return None;
        }
        Some((time_from(stored), &stored[8..stored.len() - tail]))
    }

    /// Writes the value of `key` in the window starting at `start` (`None` deletes it). A
    /// store with duplicates appends instead.
    pub fn put(&self, key: &K, start: i64, value: Option<&V>) -> Result<()> {
        let k = self.encode(start, &self.key_bytes(key)?);
        let mut s = lock(&self.cell)?;
        match value {
            Some(v) => {
                let v = to_bytes(
                    self.values.as_ref(),
                    v,
                    &format!("value of store {}", self.name),
                )?;
                s.put(k, v)
            }
            None => s.delete(&k),
        }
    }

    /// The value of `key` in the window starting at `start` (stores without duplicates).
    pub fn fetch(&self, key: &K, start: i64) -> Result<Option<V>> {
        let k = self.encode(start, &self.key_bytes(key)?);
        let v = lock(&self.cell)?.get(&k)?;
        v.map(|v| from_bytes(self.values.as_ref(), &v, &self.name))
            .transpose()
    }

    /// `(window start, value)` of `key` for windows starting in `[from, to]`, by start.
    pub fn fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        let want = self.key_bytes(key)?;
        Ok(self
            .fetch_all_raw(from, to)?
            .into_iter()
            .filter(|(_, k, _)| *k == want)
            .map(|(t, _, v)| (t, v))
            .collect())
    }

    /// `(key, window, value)` of every window starting in `[from, to]`.
    pub fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<(K, Window, V)>> {
        self.fetch_all_raw(from, to)?
            .into_iter()
            .map(|(t, k, v)| {
                let key = from_bytes(self.keys.as_ref(), &k, &self.name)?;
                Ok((key, Window::new(t, t.saturating_add(self.size_ms)), v))
            })
            .collect()
    }

    /// Every window in the store.
    pub fn all(&self) -> Result<Vec<(K, Window, V)>> {
        self.fetch_all(i64::MIN, i64::MAX)
    }

    fn fetch_all_raw(&self, from: i64, to: i64) -> Result<Vec<(i64, Bytes, V)>> {
        if from > to {
            return Ok(Vec::new());
        }
        let (a, b) = (time_bytes(from), time_bytes(to));
        // Everything starting at `to`, whatever its key: the upper bound is the next time.
        let entries = {
            let s = lock(&self.cell)?;
            match to.checked_add(1) {
                Some(next) => s.range(Bound::Included(&a), Bound::Excluded(&time_bytes(next)))?,
                None => s.range(Bound::Included(&a), Bound::Unbounded)?,
            }
        };
        let _ = b;
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let (t, key) = self
                .split(&k)
                .ok_or_else(|| StreamsError::store(&self.name, "stored window key too short"))?;
            let value = from_bytes(self.values.as_ref(), &v, &self.name)?;
            out.push((t, Bytes::copy_from_slice(key), value));
        }
        Ok(out)
    }

    /// Drops windows starting before `before` (not logged: the changelog's own retention
    /// drops them there; a restore that brings some back drops them again).
    pub fn expire(&self, before: i64) -> Result<usize> {
        let mut s = lock(&self.cell)?;
        let old = s.range(Bound::Unbounded, Bound::Excluded(&time_bytes(before)))?;
        for (k, _) in &old {
            s.store.delete(k)?;
        }
        Ok(old.len())
    }
}

/// A session store of one task.
pub struct SessionStore<K, V> {
    pub(crate) cell: StoreCell,
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
    pub(crate) name: Arc<str>,
}

impl<K, V> Clone for SessionStore<K, V> {
    fn clone(&self) -> Self {
        SessionStore {
            cell: self.cell.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
            name: self.name.clone(),
        }
    }
}

impl<K: 'static, V: 'static> SessionStore<K, V> {
    pub(crate) fn new(name: &str, cell: StoreCell, keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        SessionStore {
            cell,
            keys,
            values,
            name: Arc::from(name),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn encode(window: Window, key: &[u8]) -> Bytes {
        let mut b = BytesMut::with_capacity(16 + key.len());
        b.put_slice(&time_bytes(window.end));
        b.put_slice(&time_bytes(window.start));
        b.put_slice(key);
        b.freeze()
    }

    fn key_bytes(&self, key: &K) -> Result<Bytes> {
        to_bytes(
            self.keys.as_ref(),
            key,
            &format!("key of store {}", self.name),
        )
    }

    pub fn put(&self, key: &K, window: Window, value: &V) -> Result<()> {
        let k = Self::encode(window, &self.key_bytes(key)?);
        let v = to_bytes(
            self.values.as_ref(),
            value,
            &format!("value of store {}", self.name),
        )?;
        lock(&self.cell)?.put(k, v)
    }

    pub fn remove(&self, key: &K, window: Window) -> Result<()> {
        let k = Self::encode(window, &self.key_bytes(key)?);
        lock(&self.cell)?.delete(&k)
    }

    /// Sessions of `key` that end at or after `earliest_end` and start at or before
    /// `latest_start` (the ones a record at `t` touches: `t - gap`, `t + gap`).
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Window, V)>> {
        let want = self.key_bytes(key)?;
        let entries = lock(&self.cell)?
            .range(Bound::Included(&time_bytes(earliest_end)), Bound::Unbounded)?;
        let mut out = Vec::new();
        for (k, v) in entries {
            if k.len() < 16 || k[16..] != want[..] {
                continue;
            }
            let window = Window::new(time_from(&k[8..]), time_from(&k));
            if window.start <= latest_start {
                out.push((window, from_bytes(self.values.as_ref(), &v, &self.name)?));
            }
        }
        Ok(out)
    }

    /// Every session of `key`.
    pub fn fetch(&self, key: &K) -> Result<Vec<(Window, V)>> {
        self.find_sessions(key, i64::MIN, i64::MAX)
    }

    /// Every session of every key.
    pub fn all(&self) -> Result<Vec<(K, Window, V)>> {
        let entries = lock(&self.cell)?.range(Bound::Unbounded, Bound::Unbounded)?;
        let mut out = Vec::new();
        for (k, v) in entries {
            if k.len() < 16 {
                continue;
            }
            let window = Window::new(time_from(&k[8..]), time_from(&k));
            let key = from_bytes(self.keys.as_ref(), &k[16..], &self.name)?;
            out.push((
                key,
                window,
                from_bytes(self.values.as_ref(), &v, &self.name)?,
            ));
        }
        Ok(out)
    }

    /// Drops sessions that ended before `before` (not logged, as for windows).
    pub fn expire(&self, before: i64) -> Result<usize> {
        let mut s = lock(&self.cell)?;
        let old = s.range(Bound::Unbounded, Bound::Excluded(&time_bytes(before)))?;
        for (k, _) in &old {
            s.store.delete(k)?;
        }
        Ok(old.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serdes::Serdes;
    use crate::state::StoreSpec;

    #[test]
    fn time_bytes_sort_like_numbers() {
        let ts = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in ts.windows(2) {
            assert!(time_bytes(w[0]) < time_bytes(w[1]));
            assert_eq!(time_from(&time_bytes(w[0])), w[0]);
        }
    }

    #[test]
    fn window_store_fetches_ranges_and_expires() {
        let cell = StoreSpec::key_value("w").open(None).unwrap();
        let s = WindowStore::new(
            "w",
            cell.clone(),
            Serdes::string(),
            Serdes::i64(),
            10,
            false,
        );
        s.put(&"a".into(), 0, Some(&1)).unwrap();
        s.put(&"b".into(), 0, Some(&2)).unwrap();
        s.put(&"a".into(), 10, Some(&3)).unwrap();
        s.put(&"ab".into(), 10, Some(&4)).unwrap();
        assert_eq!(s.fetch(&"a".into(), 10).unwrap(), Some(3));
        assert_eq!(
            s.fetch_range(&"a".into(), 0, 10).unwrap(),
            vec![(0, 1), (10, 3)]
        );
        assert_eq!(s.fetch_range(&"a".into(), 1, 9).unwrap(), vec![]);
        assert_eq!(s.fetch_all(10, 10).unwrap().len(), 2);
        assert_eq!(s.expire(10).unwrap(), 2);
        assert_eq!(s.all().unwrap().len(), 2);
        // Expiry is not logged; the puts were.
        assert_eq!(crate::state::lock(&cell).unwrap().take_log().len(), 4);
        s.put(&"a".into(), 10, None).unwrap();
        assert_eq!(s.fetch(&"a".into(), 10).unwrap(), None);

        let d = WindowStore::new(
            "d",
            StoreSpec::key_value("d").open(None).unwrap(),
            Serdes::string(),
            Serdes::i64(),
            0,
            true,
        );
        d.put(&"k".into(), 5, Some(&1)).unwrap();
        d.put(&"k".into(), 5, Some(&2)).unwrap();
        assert_eq!(
            d.fetch_range(&"k".into(), 0, 9).unwrap(),
            vec![(5, 1), (5, 2)]
        );
    }

    #[test]
    fn session_store_finds_overlapping_sessions() {
        let s = SessionStore::new(
            "s",
            StoreSpec::key_value("s").open(None).unwrap(),
            Serdes::string(),
            Serdes::i64(),
        );
        s.put(&"a".into(), Window::new(0, 5), &1).unwrap();
        s.put(&"a".into(), Window::new(20, 30), &2).unwrap();
        s.put(&"b".into(), Window::new(3, 4), &9).unwrap();
        assert_eq!(
            s.find_sessions(&"a".into(), 4, 8).unwrap(),
            vec![(Window::new(0, 5), 1)]
        );
        assert_eq!(s.find_sessions(&"a".into(), 0, 100).unwrap().len(), 2);
        assert_eq!(s.fetch(&"b".into()).unwrap(), vec![(Window::new(3, 4), 9)]);
        s.remove(&"a".into(), Window::new(0, 5)).unwrap();
        assert_eq!(s.fetch(&"a".into()).unwrap().len(), 1);
        assert_eq!(s.expire(10).unwrap(), 1);
        assert_eq!(s.all().unwrap().len(), 1);
    }
}
