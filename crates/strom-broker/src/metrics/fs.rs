//! fsync latency, measured at strom-log's file-system seam: [`TimedFs`] wraps the real file
//! system and times every `sync` and `sync_dir` the logs make, so strom-log itself stays
//! free of metrics (it only ever sees a `FileSystem`). Every other call is passed through
//! unchanged, including the default-bodied ones, so the wrapper never changes what the log
//! does.

use std::io::{self, IoSlice};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use strom_log::fs::{FileHandle, FileSystem};

use super::StorageMetrics;

/// A file system that records how long each fsync takes.
#[derive(Debug)]
pub struct TimedFs {
    inner: Arc<dyn FileSystem>,
    metrics: &'static StorageMetrics,
}

impl TimedFs {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<dyn FileSystem>, metrics: &'static StorageMetrics) -> TimedFs {
        TimedFs { inner, metrics }
    }

    /// The real file system, timed into the process-wide [`super::STORAGE`].
    pub fn real() -> Arc<dyn FileSystem> {
        Arc::new(TimedFs::new(
            Arc::new(strom_log::fs::RealFs),
            &super::STORAGE,
        ))
    }

    fn wrap(&self, path: &Path, file: Arc<dyn FileHandle>) -> Arc<dyn FileHandle> {
        let kind = match path.extension().and_then(|e| e.to_str()) {
            Some("log") => FileKind::Log,
            Some("index" | "timeindex") => FileKind::Index,
            _ => FileKind::Other,
        };
        Arc::new(TimedFile {
            inner: file,
            kind,
            metrics: self.metrics,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum FileKind {
    Log,
    Index,
    Other,
}

impl FileSystem for TimedFs {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        Ok(self.wrap(path, self.inner.create(path)?))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        Ok(self.wrap(path, self.inner.open(path)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let started = Instant::now();
        let result = self.inner.sync_dir(dir);
        self.metrics.fsync_dir.observe_duration(started.elapsed());
        result
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.inner.file_len(path)
    }

    fn available_bytes(&self, dir: &Path) -> io::Result<u64> {
        self.inner.available_bytes(dir)
    }
}

/// A file whose fsyncs are timed.
#[derive(Debug)]
struct TimedFile {
    inner: Arc<dyn FileHandle>,
    kind: FileKind,
    metrics: &'static StorageMetrics,
}

impl FileHandle for TimedFile {
    fn read_at(&self, position: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(position, buf)
    }

    fn write_at(&self, position: u64, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_at(position, buf)
    }

    fn write_vectored_at(&self, position: u64, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.inner.write_vectored_at(position, bufs)
    }

    fn len_bytes(&self) -> io::Result<u64> {
        self.inner.len_bytes()
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.inner.set_len(len_bytes)
    }

    fn sync(&self) -> io::Result<()> {
        let started = Instant::now();
        let result = self.inner.sync();
        let histogram = match self.kind {
            FileKind::Log => &self.metrics.fsync_log,
            FileKind::Index => &self.metrics.fsync_index,
            FileKind::Other => &self.metrics.fsync_other,
        };
        histogram.observe_duration(started.elapsed());
        result
    }

    fn std_file(&self) -> Option<&std::fs::File> {
        self.inner.std_file()
    }

    fn drop_cache(&self, position: u64, len_bytes: u64) {
        self.inner.drop_cache(position, len_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_log::fs::RealFs;

    #[test]
    fn fsyncs_are_timed_by_kind_and_io_passes_through() {
        let dir = tempfile::tempdir().unwrap();
        let metrics: &'static StorageMetrics = Box::leak(Box::default());
        let fs = TimedFs::new(Arc::new(RealFs), metrics);
        let log = fs
            .create(&dir.path().join("00000000000000000000.log"))
            .unwrap();
        strom_log::fs::write_all_at(&*log, 0, b"hello").unwrap();
        log.sync().unwrap();
        let index = fs
            .create(&dir.path().join("00000000000000000000.index"))
            .unwrap();
        index.sync().unwrap();
        fs.sync_dir(dir.path()).unwrap();
        assert_eq!(metrics.fsync_log.count(), 1);
        assert_eq!(metrics.fsync_index.count(), 1);
        assert_eq!(metrics.fsync_dir.count(), 1);
        assert_eq!(metrics.fsync_other.count(), 0);
        let mut buf = [0u8; 5];
        strom_log::fs::read_exact_at(&*log, 0, &mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        assert!(log.std_file().is_some());
    }
}
