//! Making data durable: group-committed fsyncs (`sync_to`), page-cache flushes, the
//! recovery point, and clean close.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::checkpoint::Checkpoint;
use crate::error::LogError;
use crate::fs::FileHandle;

use super::{lock, FlushToken, Health, Log, RolledFiles};

/// What one flush syncs, captured under the writer mutex and executed outside it.
struct FlushPlan {
    end_offset: i64,
    active_base: i64,
    active_log: Option<(PathBuf, Arc<dyn FileHandle>)>,
    rolled: Vec<RolledFiles>,
    dir_dirty: bool,
}

impl Log {
    /// Returns once every offset below `end_offset` is durable. Concurrent callers share
    /// fsyncs: whoever holds the flush token syncs everything written so far, and callers
    /// whose offsets that covered return without an fsync of their own (group commit).
    /// Offsets at or past the log end offset are not waited for: the call syncs what
    /// exists and returns.
    pub fn sync_to(&self, end_offset: i64) -> Result<(), LogError> {
        let mut state = lock(&self.flush);
        loop {
            self.check_usable()?;
            if state.durable_offset >= end_offset {
                return Ok(());
            }
            if !state.in_progress {
                state.in_progress = true;
                break;
            }
            state = self
                .flush_done
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        drop(state);
        let token = FlushToken { log: self };
        self.flush_with(&token, None)
    }

    /// Makes everything appended so far durable.
    pub fn flush(&self) -> Result<(), LogError> {
        self.sync_to(self.log_end_offset())
    }

    /// A flush that also restarts the `flush.ms` / `flush.messages` counters.
    pub(super) fn flush_at(&self, now_ms: i64) -> Result<(), LogError> {
        self.check_usable()?;
        let token = self.flush_token()?;
        self.flush_with(&token, Some(now_ms))
    }

    /// Page-cache mode's periodic duty: flush when `flush.ms` has passed.
    pub fn maybe_flush(&self, now_ms: i64) -> Result<(), LogError> {
        if self.flush_due(now_ms) && self.durable_offset() < self.log_end_offset() {
            self.flush_at(now_ms)?;
        }
        Ok(())
    }

    fn flush_with(&self, token: &FlushToken<'_>, now_ms: Option<i64>) -> Result<(), LogError> {
        let plan = {
            let mut writer = self.lock_writer();
            if let Some(now_ms) = now_ms {
                writer.last_flush_ms = now_ms;
            }
            writer.records_since_flush = 0;
            FlushPlan {
                end_offset: writer.next_offset,
                active_base: writer.active.base_offset,
                // Not open means nothing was written to it since the log was opened.
                active_log: writer
                    .files
                    .as_ref()
                    .map(|f| (writer.active.log_path.clone(), Arc::clone(&f.log))),
                rolled: writer.rolled.clone(),
                dir_dirty: std::mem::take(&mut writer.dir_dirty),
            }
        };
        let result = self.execute(token, &plan);
        let result = self.latch(result);
        if result.is_ok() {
            let mut state = lock(&self.flush);
            state.durable_offset = state.durable_offset.max(plan.end_offset);
            drop(state);
            let synced: Vec<i64> = plan.rolled.iter().map(|r| r.base_offset).collect();
            self.lock_writer()
                .rolled
                .retain(|r| !synced.contains(&r.base_offset));
        }
        result
    }

    fn execute(&self, token: &FlushToken<'_>, plan: &FlushPlan) -> Result<(), LogError> {
        let sync = |path: &PathBuf, file: &Arc<dyn FileHandle>| {
            file.sync().map_err(|e| LogError::io("fsync", path, e))
        };
        // Rolled segments first, with their trimmed indexes: the recovery point may move
        // past them only when all three files are durable.
        for rolled in &plan.rolled {
            for (path, file) in &rolled.files {
                sync(path, file)?;
            }
        }
        // The active segment's indexes are not synced: recovery rebuilds them.
        if let Some((path, file)) = &plan.active_log {
            sync(path, file)?;
        }
        if plan.dir_dirty {
            // New segment files are reachable after a crash only once their directory
            // entries are durable.
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| LogError::io("fsync dir", &self.dir, e))?;
        }
        let current = lock(&self.flush).checkpoint;
        if current.recovery_point < plan.active_base {
            // Once per roll: every offset below `end_offset` is durable now, and every
            // segment below the active one with its indexes.
            let checkpoint = Checkpoint {
                recovery_point: self.capped_recovery_point(super::recover::recordable(
                    plan.end_offset,
                    plan.active_base,
                    self.log_end_offset(),
                )),
                log_start_offset: self.log_start_offset(),
                clean_shutdown: false,
            };
            // Written after the data fsyncs above: the checkpoint must never name a
            // recovery point whose segments are not yet durable.
            match self.write_checkpoint(token, checkpoint) {
                // The data above is durable all the same; only the recovery point stays
                // behind (a recovery scans more), and the next flush writes it. The log is
                // read-only meanwhile (see `write_checkpoint`).
                Err(error) if error.is_space_error() => {}
                result => result?,
            }
        }
        Ok(())
    }

    /// Clean shutdown: sync everything, trim the active indexes, and record a clean
    /// checkpoint so that the next open skips recovery. Later calls fail with `Closed`.
    pub fn close(&self) -> Result<(), LogError> {
        self.check_usable()?;
        let token = self.flush_token()?;
        if self.health() == Health::DiskFull {
            // What a write that found no space left past the last batch must be cut before
            // the checkpoint may call the log clean; if that fails the log stays unclean
            // on disk and the next open recovers it.
            self.repair_tail(&token)?;
        }
        let (active_base, files) = {
            let mut writer = self.lock_writer();
            self.closed.store(true, Ordering::Release);
            self.latch(self.finish_active_indexes(&mut writer))?;
            let open = self.latch(self.active_files(&mut writer))?;
            let active = &writer.active;
            let mut files: Vec<(PathBuf, Arc<dyn FileHandle>)> = writer
                .rolled
                .iter()
                .flat_map(|r| r.files.iter().cloned())
                .collect();
            files.push((active.log_path.clone(), open.log));
            files.push((active.index_path.clone(), open.index));
            files.push((active.time_index_path.clone(), open.time_index));
            let txn_index = &active.txn_index_path;
            if self
                .fs
                .exists(txn_index)
                .map_err(|e| LogError::io("stat", txn_index, e))?
            {
                let file = self
                    .fs
                    .open(txn_index)
                    .map_err(|e| LogError::io("open", txn_index, e));
                files.push((txn_index.clone(), self.latch(file)?));
            }
            (active.base_offset, files)
        };
        for (path, file) in &files {
            // Data and trimmed indexes must be durable before the checkpoint says clean.
            self.latch(file.sync().map_err(|e| LogError::io("fsync", path, e)))?;
        }
        self.latch(
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| LogError::io("fsync dir", &self.dir, e)),
        )?;
        // All of the log is durable: damage anywhere in it is not an interrupted write.
        // With a `.txnindex` rebuild still owed, the next open must scan again.
        let owed = self.txn_index_rebuild_owed();
        let checkpoint = Checkpoint {
            recovery_point: self.capped_recovery_point(self.log_end_offset().max(active_base)),
            log_start_offset: self.log_start_offset(),
            clean_shutdown: !owed,
        };
        self.write_checkpoint(&token, checkpoint)?;
        lock(&self.flush).durable_offset = self.log_end_offset();
        // Debug: one line per partition at every shutdown otherwise.
        tracing::debug!(dir = %self.dir.display(), "closed log cleanly");
        Ok(())
    }
}
