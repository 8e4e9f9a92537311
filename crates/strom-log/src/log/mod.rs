//! [`Log`]: one partition's log. The type, its shared state, its health (writable, read-only
//! while the disk is full, failed) and the accessors live here; opening, appending, reading,
//! flushing, deleting, resuming after a full disk and scrubbing live in the submodules.
//!
//! Concurrency: appends, rolls and truncations serialise on the writer mutex, which is
//! never held across an fsync. Every fsync runs under the flush token (one at a time, so
//! concurrent `sync_to` callers share one fsync). Readers take neither: they clone the
//! segment `Arc`s they need under a short read lock and do their I/O without locks (a
//! reader repairing a wrong index takes the writer mutex briefly, see `repair.rs`).
//! Lock order: flush token, then writer mutex, then segments / flush-state / epoch-cache
//! mutexes, then a segment's index mutex.

mod aborted;
mod append;
mod compact;
mod epochs;
mod flush;
mod open;
mod read;
mod records;
mod recover;
mod repair;
mod replace;
mod resume;
mod retention;
mod scrub;
mod snapshots;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::checkpoint::Checkpoint;
use crate::config::LogConfig;
use crate::error::LogError;
use crate::fs::{FileHandle, FileSystem};
use crate::handles::HandleCache;
use crate::segment::Segment;

pub use append::{AppendInfo, AppendOrigin, Unflushed};
pub use compact::CompactionReport;
pub use open::OpenReport;
pub use read::{FileRange, ReadInfo, TimestampOffset};
pub use records::{decompressing_walks_max, RecordsCheck};
pub use replace::{ColdSegment, SegmentRepair};
pub use retention::{RetentionReport, TruncateReport};
pub use scrub::{ScrubBudget, ScrubCursor, ScrubDamage, ScrubStep, SCRUB_CHUNK_BYTES};
pub use snapshots::{frame_snapshot, unframe_snapshot, SNAPSHOT_SUFFIX};

/// The writer's files of a rolled segment that still need an fsync.
#[derive(Clone, Debug)]
struct RolledFiles {
    base_offset: i64,
    files: Vec<(PathBuf, Arc<dyn FileHandle>)>,
}

/// Handles of the active segment's three files.
#[derive(Clone, Debug)]
struct ActiveFiles {
    log: Arc<dyn FileHandle>,
    index: Arc<dyn FileHandle>,
    time_index: Arc<dyn FileHandle>,
}

/// State only the writer touches (under `Log::writer`).
#[derive(Debug)]
struct Writer {
    active: Arc<Segment>,
    /// The active segment's files, opened on first need so that an idle log holds none.
    files: Option<ActiveFiles>,
    /// Index files are preallocated on their first write after open or creation.
    indexes_preallocated: bool,
    /// When the active segment was created or opened, for `segment.ms` without timestamps.
    active_since_ms: i64,
    next_offset: i64,
    records_since_flush: u64,
    last_flush_ms: i64,
    rolled: Vec<RolledFiles>,
    /// A segment file was created or removed since the directory was last synced.
    dir_dirty: bool,
    /// What a write that failed for want of space left in the active segment, for the
    /// resume to repair (`resume.rs`).
    tail: Option<TailRepair>,
}

/// The active segment's state after a write failed for want of space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TailRepair {
    /// Bytes of whole, published batches: whatever lies past this in the `.log` is what the
    /// failed write left, never acknowledged, and is cut.
    size_bytes: u64,
    /// The in-memory indexes may name the batch that failed: rebuild them by scanning.
    rebuild_indexes: bool,
}

impl TailRepair {
    fn merge(self, other: Option<TailRepair>) -> TailRepair {
        match other {
            Some(other) => TailRepair {
                size_bytes: self.size_bytes.min(other.size_bytes),
                rebuild_indexes: self.rebuild_indexes || other.rebuild_indexes,
            },
            None => self,
        }
    }
}

/// Whether a log accepts writes. See `docs/ARCHITECTURE.md`, strom-log "Durability".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Appends are accepted.
    Writable,
    /// A write failed for want of space (`ENOSPC`, `EDQUOT`): appends are refused, reads
    /// and fsyncs of what was written go on, and [`Log::try_resume`] makes the log writable
    /// again once space returns.
    DiskFull,
    /// An fsync (or another write) failed: nothing is written again until the log is
    /// reopened, and only data below the durable offset (the last successful fsync) is
    /// served.
    Failed,
}

impl Health {
    fn from_u8(value: u8) -> Health {
        match value {
            0 => Health::Writable,
            1 => Health::DiskFull,
            _ => Health::Failed,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Health::Writable => 0,
            Health::DiskFull => 1,
            Health::Failed => 2,
        }
    }
}

/// When [`Log::try_resume`] next tries (a bounded backoff: see `resume.rs`).
#[derive(Clone, Copy, Debug, Default)]
struct ResumeClock {
    /// `None` until the first call after the disk filled arms it.
    next_attempt_ms: Option<i64>,
    backoff_ms: i64,
    /// When the log last became writable again, to tell a disk that keeps filling up.
    resumed_at_ms: Option<i64>,
}

/// State of the flush path (under `Log::flush`).
#[derive(Debug)]
struct FlushState {
    in_progress: bool,
    /// Every offset below this is durable.
    durable_offset: i64,
    /// What the checkpoint file says (as last written or read).
    checkpoint: Checkpoint,
}

/// One partition's log: a directory of segments. See the module docs for the locking.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    handles: Arc<HandleCache>,
    config: LogConfig,
    segments: RwLock<BTreeMap<i64, Arc<Segment>>>,
    writer: Mutex<Writer>,
    flush: Mutex<FlushState>,
    flush_done: Condvar,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
    high_watermark: AtomicI64,
    /// The checkpoint on disk no longer claims a clean shutdown.
    marked_unclean: AtomicBool,
    /// A [`Health`] as its `u8`.
    health: AtomicU8,
    /// Why the log is not writable (the first error), while it is not.
    failure: Mutex<Option<String>>,
    resume: Mutex<ResumeClock>,
    closed: AtomicBool,
    report: OpenReport,
    pending_deletes: Mutex<Vec<(i64, PathBuf)>>,
    /// Serialises compaction passes.
    cleaner: Mutex<()>,
    /// The leader-epoch cache (`epochs.rs`); taken after the writer mutex.
    epochs: Mutex<crate::leader_epoch::LeaderEpochCache>,
    /// What the `.txnindex` files owe since open (`aborted.rs`).
    txn_index_state: Mutex<aborted::TxnIndexState>,
    /// Aborted transactions whose `.txnindex` write failed (the log is failed), still
    /// served until the log is reopened.
    unwritten_txns: Mutex<Vec<crate::txn::AbortedTxn>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Holds the flush token; releases it and wakes waiters on drop.
struct FlushToken<'a> {
    log: &'a Log,
}

impl Drop for FlushToken<'_> {
    fn drop(&mut self) {
        lock(&self.log.flush).in_progress = false;
        self.log.flush_done.notify_all();
    }
}

impl Log {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// What opening the log found and repaired.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    /// Set by the replication layer; reads take it as their `max_offset`.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// Clamped to `log_start_offset..=log_end_offset`.
    pub fn set_high_watermark(&self, offset: i64) {
        let clamped = offset.clamp(self.log_start_offset(), self.log_end_offset());
        self.high_watermark.store(clamped, Ordering::Release);
    }

    /// Every offset below this has been fsynced.
    pub fn durable_offset(&self) -> i64 {
        lock(&self.flush).durable_offset
    }

    /// Bytes of all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.segments_read().values().map(|s| s.size_bytes()).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments_read().len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments_read().keys().copied().collect()
    }

    /// Failed for good (until reopened): see [`Health::Failed`].
    pub fn is_failed(&self) -> bool {
        self.health() == Health::Failed
    }

    pub fn health(&self) -> Health {
        Health::from_u8(self.health.load(Ordering::Acquire))
    }

    fn segments_read(&self) -> RwLockReadGuard<'_, BTreeMap<i64, Arc<Segment>>> {
        self.segments.read().unwrap_or_else(|e| e.into_inner())
    }

    fn segments_write(&self) -> RwLockWriteGuard<'_, BTreeMap<i64, Arc<Segment>>> {
        self.segments.write().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        lock(&self.writer)
    }

    fn failure_reason(&self) -> String {
        lock(&self.failure).clone().unwrap_or_default()
    }

    /// Errors if the log is closed or latched failed. Reads (other than [`Log::read`],
    /// which serves a failed log below its durable offset), fsyncs and deletions of data
    /// go on while the disk is full.
    fn check_usable(&self) -> Result<(), LogError> {
        if self.health() == Health::Failed {
            return Err(LogError::Failed {
                dir: self.dir.clone(),
                reason: self.failure_reason(),
            });
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// [`Log::check_usable`], and errors while the disk is full too: for appends and the
    /// other operations that write new data.
    fn check_writable(&self) -> Result<(), LogError> {
        self.check_usable()?;
        if self.health() == Health::DiskFull {
            return Err(LogError::DiskFull {
                dir: self.dir.clone(),
                reason: self.failure_reason(),
            });
        }
        Ok(())
    }

    /// Latches the log failed after a write or fsync error: after a failed fsync the page
    /// cache may have dropped the dirty data, so retrying could report lost data durable.
    fn fail(&self, error: LogError) -> LogError {
        tracing::error!(dir = %self.dir.display(), %error, "log failed; it takes no more writes (reads continue below the last successful fsync); check the disk, then restart the broker");
        let mut failure = lock(&self.failure);
        if self.health() != Health::Failed {
            *failure = Some(error.to_string());
        }
        self.health.store(Health::Failed.as_u8(), Ordering::Release);
        drop(failure);
        self.flush_done.notify_all();
        error
    }

    /// Makes the log read-only after a write failed for want of space (the durable state
    /// is known: nothing acknowledged depends on the failed write). A failed log stays
    /// failed.
    fn fill(&self, error: LogError) -> LogError {
        let mut failure = lock(&self.failure);
        let filled = self
            .health
            .compare_exchange(
                Health::Writable.as_u8(),
                Health::DiskFull.as_u8(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if filled {
            *failure = Some(error.to_string());
            lock(&self.resume).next_attempt_ms = None;
            tracing::warn!(dir = %self.dir.display(), %error, "disk full: the log is read-only (reads continue, appends fail with KAFKA_STORAGE_ERROR) until space is freed");
        }
        error
    }

    /// Runs a fallible I/O step, latching the log failed if it errors.
    fn latch<T>(&self, result: Result<T, LogError>) -> Result<T, LogError> {
        result.map_err(|e| self.fail(e))
    }

    /// Runs a step of the active segment's write path: an error for want of space makes
    /// the log read-only and records what the resume must repair (`tail`, merged with any
    /// earlier record); any other error latches it failed.
    fn latch_write<T>(
        &self,
        writer: &mut Writer,
        tail: TailRepair,
        result: Result<T, LogError>,
    ) -> Result<T, LogError> {
        result.map_err(|error| {
            // The failed write may have published its size already: take it back, so
            // that no reader, whatever offset bound it passes, sees those bytes.
            if writer.active.size_bytes() > tail.size_bytes {
                writer.active.set_size_bytes(tail.size_bytes);
            }
            if error.is_space_error() {
                writer.tail = Some(tail.merge(writer.tail));
                self.fill(error)
            } else {
                self.fail(error)
            }
        })
    }

    /// The active segment's files, opening (or creating) them on first use.
    fn active_files(&self, writer: &mut Writer) -> Result<ActiveFiles, LogError> {
        if let Some(files) = &writer.files {
            return Ok(files.clone());
        }
        let open = |path: &Path| -> Result<Arc<dyn FileHandle>, LogError> {
            let exists = self
                .fs
                .exists(path)
                .map_err(|e| LogError::io("stat", path, e))?;
            let opened = if exists {
                self.fs.open(path)
            } else {
                self.fs.create(path)
            };
            opened.map_err(|e| LogError::io("open", path, e))
        };
        let active = &writer.active;
        let files = ActiveFiles {
            log: open(&active.log_path)?,
            index: open(&active.index_path)?,
            time_index: open(&active.time_index_path)?,
        };
        active.pin(Some(Arc::clone(&files.log)));
        writer.files = Some(files.clone());
        Ok(files)
    }

    /// Waits for the flush token. Must not be called with the writer mutex held.
    fn flush_token(&self) -> Result<FlushToken<'_>, LogError> {
        let mut state = lock(&self.flush);
        loop {
            self.check_usable()?;
            if !state.in_progress {
                state.in_progress = true;
                return Ok(FlushToken { log: self });
            }
            state = self
                .flush_done
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Replaces the checkpoint. A write that finds no space leaves the old checkpoint whole
    /// (the new one is renamed over it only once written and synced): the log goes
    /// read-only; any other error, or a failed fsync, fails it.
    fn write_checkpoint(
        &self,
        _token: &FlushToken<'_>,
        checkpoint: Checkpoint,
    ) -> Result<(), LogError> {
        checkpoint
            .write(self.fs.as_ref(), &self.dir)
            .map_err(|error| {
                if error.is_space_error() {
                    self.fill(error)
                } else {
                    self.fail(error)
                }
            })?;
        lock(&self.flush).checkpoint = checkpoint;
        Ok(())
    }

    /// Before the first change after open, the checkpoint stops claiming a clean shutdown,
    /// so that a crash from here on is recovered by scanning.
    fn ensure_marked_unclean(&self) -> Result<(), LogError> {
        if self.marked_unclean.load(Ordering::Acquire) {
            return Ok(());
        }
        let token = self.flush_token()?;
        if self.marked_unclean.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut checkpoint = lock(&self.flush).checkpoint;
        if checkpoint.clean_shutdown {
            checkpoint.clean_shutdown = false;
            self.write_checkpoint(&token, checkpoint)?;
        }
        self.marked_unclean.store(true, Ordering::Release);
        Ok(())
    }
}
