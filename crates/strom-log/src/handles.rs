//! [`HandleCache`]: a bound on open segment files shared by many logs (LRU).
//!
//! Inactive segments are opened on first read and closed when the cache evicts them, so
//! thousands of partitions do not hold thousands of descriptors. A read in flight keeps
//! its handle alive through an `Arc`, so the bound is on cached handles; handles lent to
//! readers close when the last reader drops them.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::{FileHandle, FileSystem};

#[derive(Debug, Default)]
struct Lru {
    handles: HashMap<PathBuf, (Arc<dyn FileHandle>, u64)>,
    by_use: BTreeMap<u64, PathBuf>,
    tick: u64,
}

/// Cached read handles of inactive segment files, at most `capacity` of them.
#[derive(Debug)]
pub struct HandleCache {
    fs: Arc<dyn FileSystem>,
    capacity: usize,
    lru: Mutex<Lru>,
}

impl HandleCache {
    pub fn new(fs: Arc<dyn FileSystem>, capacity: usize) -> HandleCache {
        HandleCache {
            fs,
            capacity: capacity.max(1),
            lru: Mutex::new(Lru::default()),
        }
    }

    pub fn fs(&self) -> &Arc<dyn FileSystem> {
        &self.fs
    }

    fn lock(&self) -> MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The handle for `path`, opening it (and evicting the least recently used) if needed.
    pub fn get(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let mut lru = self.lock();
        lru.tick += 1;
        let tick = lru.tick;
        if let Some((handle, used)) = lru.handles.get_mut(path) {
            let handle = Arc::clone(handle);
            let old = std::mem::replace(used, tick);
            lru.by_use.remove(&old);
            lru.by_use.insert(tick, path.to_path_buf());
            return Ok(handle);
        }
        // Opening under the lock keeps the bound exact; an open is a cheap syscall.
        let handle = self.fs.open(path)?;
        lru.handles
            .insert(path.to_path_buf(), (Arc::clone(&handle), tick));
        lru.by_use.insert(tick, path.to_path_buf());
        while lru.handles.len() > self.capacity {
            let Some((_, oldest)) = lru.by_use.pop_first() else {
                break;
            };
            lru.handles.remove(&oldest);
        }
        Ok(handle)
    }

    /// Drops the cached handle of a file that is being removed, renamed or recreated.
    pub fn forget(&self, path: &Path) {
        let mut lru = self.lock();
        if let Some((_, used)) = lru.handles.remove(path) {
            lru.by_use.remove(&used);
        }
    }

    pub fn cached_count(&self) -> usize {
        self.lock().handles.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::SimFs;

    #[test]
    fn evicts_least_recently_used() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        for i in 0..4 {
            fs.create(&PathBuf::from(format!("/d/{i}"))).unwrap();
        }
        let cache = HandleCache::new(Arc::new(fs), 2);
        let p = |i: i32| PathBuf::from(format!("/d/{i}"));
        cache.get(&p(0)).unwrap();
        cache.get(&p(1)).unwrap();
        cache.get(&p(0)).unwrap();
        cache.get(&p(2)).unwrap();
        assert_eq!(cache.cached_count(), 2);
        let lru = cache.lock();
        assert!(lru.handles.contains_key(&p(0)));
        assert!(lru.handles.contains_key(&p(2)));
        assert!(!lru.handles.contains_key(&p(1)));
        drop(lru);
        cache.forget(&p(0));
        assert_eq!(cache.cached_count(), 1);
        assert!(cache.get(&p(9)).is_err());
    }
}
