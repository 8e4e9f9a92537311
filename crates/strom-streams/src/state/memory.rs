//! The in-memory store: a `BTreeMap`. Lost with the process; restored from its changelog.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use super::BytesStore;
use crate::error::Result;

#[derive(Debug, Default)]
pub(crate) struct MemoryStore {
    map: BTreeMap<Bytes, Bytes>,
}

impl BytesStore for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.map.get(key).cloned())
    }
    fn put(&mut self, key: Bytes, value: Bytes) -> Result<()> {
        self.map.insert(key, value);
        Ok(())
    }
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.map.remove(key);
        Ok(())
    }
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Bytes, Bytes)>> {
        if super::empty_range(from, to) {
            return Ok(Vec::new());
        }
        Ok(self
            .map
            .range::<[u8], _>((from, to))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn approximate_len(&self) -> u64 {
        self.map.len() as u64
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    fn persistent(&self) -> bool {
        false
    }
}
