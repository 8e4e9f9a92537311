//! Resuming writes after a full disk. A write that failed for want of space (`ENOSPC`,
//! `EDQUOT`) made the log read-only (`Health::DiskFull`): nothing acknowledged depends on
//! it, because the log end offset moves only after a whole append is written, so the
//! durable state is known and the only debris is the failed write's bytes past the last
//! published batch. [`Log::try_resume`], called periodically with the time, repairs that
//! tail and makes the log writable again, without a restart:
//!
//! 1. cut the active segment's `.log` back to its last whole published batch;
//! 2. validate the batches before that point (from the last offset-index entry, or from
//!    the segment's start when the in-memory indexes may name the failed batch, which are
//!    then rebuilt), CRCs included, and check that they end exactly at the log end offset;
//! 3. rewrite the active segment's index files from the in-memory indexes (the failed
//!    write may have left them preallocated, trimmed or half-written); this small write
//!    is also the probe that space is back;
//! 4. fsync the `.log`, so that the cut is durable before new batches follow it.
//!
//! An attempt is made only when the file system reports at least `RESUME_FREE_BYTES_MIN`
//! free. A step that again finds no space leaves the log read-only and doubles the backoff
//! (bounded). A failed fsync, or batches that do not validate, fail the log for good:
//! the first never retried (see `docs/ARCHITECTURE.md`, strom-log "Durability"), the
//! second is damage to acknowledged data that no cut may hide.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::LogError;
use crate::fs::write_all_at;
use crate::segment::scan_segment;

use super::{lock, FlushToken, Health, Log, TailRepair};

/// The first wait after the disk fills, before a resume is tried.
const RESUME_BACKOFF_MS_MIN: i64 = 500;
/// The longest wait between resume attempts: how late, at most, writes resume after space
/// is freed (plus the caller's tick).
const RESUME_BACKOFF_MS_MAX: i64 = 16_000;
/// Free space below which no resume is tried: a disk with less would refuse the next
/// batches at once (`statvfs`; quotas are not seen, and then the attempt is the probe).
const RESUME_FREE_BYTES_MIN: u64 = 64 * 1024;

impl Log {
    /// The periodic check of a log made read-only by a full disk: once its backoff has
    /// passed, repairs what the failed write left (see the module docs) and makes the log
    /// writable again. Returns whether the log is writable; errors if it is failed or
    /// closed (or fails now: a failed fsync, or damage before the log end offset). Cheap
    /// when there is nothing to do; call it every second or so.
    pub fn try_resume(&self, now_ms: i64) -> Result<bool, LogError> {
        match self.health() {
            Health::Writable => return Ok(true),
            Health::Failed => {
                self.check_usable()?;
            }
            Health::DiskFull => {}
        }
        if self.closed.load(Ordering::Acquire) {
            self.check_usable()?;
        }
        if !self.resume_due(now_ms) {
            return Ok(false);
        }
        let available = match self.fs.available_bytes(&self.dir) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), %error, "cannot tell the free space; trying to resume anyway");
                u64::MAX
            }
        };
        if available < RESUME_FREE_BYTES_MIN {
            self.resume_later(now_ms);
            tracing::debug!(dir = %self.dir.display(), available, "disk still full");
            return Ok(false);
        }
        let token = self.flush_token()?;
        match self.repair_tail(&token) {
            Ok(()) => {
                let mut clock = lock(&self.resume);
                clock.resumed_at_ms = Some(now_ms);
                clock.next_attempt_ms = None;
                drop(clock);
                tracing::info!(dir = %self.dir.display(), "disk space is back: the log takes writes again");
                Ok(true)
            }
            Err(error) if error.is_space_error() => {
                self.resume_later(now_ms);
                tracing::debug!(dir = %self.dir.display(), %error, "disk still full");
                Ok(false)
            }
            // `repair_tail` has failed the log already.
            Err(error) => Err(error),
        }
    }

    /// After a failed attempt: twice the wait (bounded).
    fn resume_later(&self, now_ms: i64) {
        let mut clock = lock(&self.resume);
        clock.backoff_ms = clock
            .backoff_ms
            .saturating_mul(2)
            .clamp(RESUME_BACKOFF_MS_MIN, RESUME_BACKOFF_MS_MAX);
        clock.next_attempt_ms = Some(now_ms.saturating_add(clock.backoff_ms));
    }

    /// Whether a resume attempt is due; the first call after the disk filled arms the
    /// clock. A disk that fills again soon after a resume waits twice as long as before.
    fn resume_due(&self, now_ms: i64) -> bool {
        let mut clock = lock(&self.resume);
        match clock.next_attempt_ms {
            Some(at) => now_ms >= at,
            None => {
                let refilled = clock
                    .resumed_at_ms
                    .is_some_and(|at| now_ms.saturating_sub(at) < RESUME_BACKOFF_MS_MAX);
                clock.backoff_ms = if refilled {
                    clock
                        .backoff_ms
                        .saturating_mul(2)
                        .clamp(RESUME_BACKOFF_MS_MIN, RESUME_BACKOFF_MS_MAX)
                } else {
                    RESUME_BACKOFF_MS_MIN
                };
                clock.next_attempt_ms = Some(now_ms.saturating_add(clock.backoff_ms));
                false
            }
        }
    }

    /// Repairs the active segment after writes failed for want of space (steps 1-4 of the
    /// module docs) and makes the log writable. A space error leaves it read-only; any
    /// other error fails it.
    pub(super) fn repair_tail(&self, _token: &FlushToken<'_>) -> Result<(), LogError> {
        let (file, path) = {
            let mut writer = self.lock_writer();
            let tail = writer.tail.unwrap_or(TailRepair {
                size_bytes: writer.active.size_bytes(),
                rebuild_indexes: false,
            });
            let repaired = self.repair_tail_locked(&mut writer, tail);
            let files = match repaired {
                Ok(files) => files,
                Err(error) if error.is_space_error() => return Err(error),
                Err(error) => return Err(self.fail(error)),
            };
            (files, writer.active.log_path.clone())
        };
        // The writer mutex is not held across the fsync; nothing appends meanwhile, as the
        // log is still read-only. Never retried if it fails (whatever the errno).
        file.sync()
            .map_err(|e| self.fail(LogError::io("fsync", &path, e)))?;
        let mut writer = self.lock_writer();
        writer.tail = None;
        let mut failure = lock(&self.failure);
        let resumed = self
            .health
            .compare_exchange(
                Health::DiskFull.as_u8(),
                Health::Writable.as_u8(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if resumed {
            *failure = None;
        }
        drop(failure);
        drop(writer);
        self.check_usable()
    }

    /// Steps 1-3 under the writer mutex; returns the `.log` handle to fsync.
    fn repair_tail_locked(
        &self,
        writer: &mut super::Writer,
        tail: TailRepair,
    ) -> Result<Arc<dyn crate::fs::FileHandle>, LogError> {
        let active = Arc::clone(&writer.active);
        let path = &active.log_path;
        let files = self.active_files(writer)?;
        let size = tail.size_bytes;
        let len = files
            .log
            .len_bytes()
            .map_err(|e| LogError::io("stat", path, e))?;
        if len < size {
            return Err(LogError::CorruptSegment {
                path: path.clone(),
                position: len,
                reason: format!(
                    "the file ends at byte {len}, before its last acknowledged batch ends at byte {size}"
                ),
            });
        }
        if len > size {
            tracing::info!(segment = %path.display(), cut_bytes = len - size, "cutting what a write that found the disk full left");
            files
                .log
                .set_len(size)
                .map_err(|e| LogError::io("truncate", path, e))?;
        }
        active.set_size_bytes(size);
        let start = if tail.rebuild_indexes {
            0
        } else {
            active.with_indexes(&self.handles, &self.config, |ix| {
                ix.offset
                    .entries()
                    .iter()
                    .rev()
                    .map(|e| u64::from(e.position))
                    .find(|p| *p < size)
                    .unwrap_or(0)
            })?
        };
        let scan = scan_segment(
            files.log.as_ref(),
            path,
            active.base_offset,
            start,
            size,
            &self.config,
        )?;
        let end_offset = scan.next_offset.unwrap_or(active.base_offset);
        if scan.valid_bytes != size || end_offset != writer.next_offset {
            let reason = scan.error.unwrap_or_else(|| {
                format!(
                    "batches end at offset {end_offset}, the log end offset is {}",
                    writer.next_offset
                )
            });
            return Err(LogError::CorruptSegment {
                path: path.clone(),
                position: scan.valid_bytes,
                reason: format!("found while resuming after a full disk: {reason}"),
            });
        }
        if tail.rebuild_indexes {
            active.set_indexes(scan.indexes);
        }
        let (offset_bytes, time_bytes) =
            active.with_indexes(&self.handles, &self.config, |ix| {
                (ix.offset.encode(), ix.time.encode())
            })?;
        for (file, index_path, bytes) in [
            (&files.index, &active.index_path, offset_bytes),
            (&files.time_index, &active.time_index_path, time_bytes),
        ] {
            file.set_len(0)
                .and_then(|()| write_all_at(file.as_ref(), 0, &bytes))
                .map_err(|e| LogError::io("rewrite", index_path, e))?;
        }
        // The next append preallocates them again.
        writer.indexes_preallocated = false;
        Ok(files.log)
    }
}
