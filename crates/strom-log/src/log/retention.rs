//! Deleting data: retention by time and size, DeleteRecords-style front truncation, and
//! truncation back to an offset (a follower diverging from its leader). Deleted segment
//! files are renamed to `*.deleted` and removed after `file.delete.delay.ms`, so reads in
//! flight finish; a crash in between is cleaned up by the next open.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::checkpoint::Checkpoint;
use crate::error::LogError;
use crate::segment::{relative, scan_segment, seek_batch, Seek, Segment, DELETED_SUFFIX};

use super::{lock, FlushToken, Log, Writer};

/// What a retention pass or front truncation deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: i64,
}

/// What a truncation removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TruncateReport {
    pub log_end_offset: i64,
    pub bytes_removed: u64,
    pub segments_deleted: usize,
}

impl Log {
    /// Periodic duties: `flush.ms`, retention, and removal of `.deleted` files whose delay
    /// has passed. Call it every few seconds.
    pub fn maintain(&self, now_ms: i64) -> Result<RetentionReport, LogError> {
        self.maybe_flush(now_ms)?;
        let report = self.apply_retention(now_ms)?;
        self.delete_expired_files(now_ms)?;
        Ok(report)
    }

    /// Deletes the oldest segments past `retention.ms` (by their max timestamp) or beyond
    /// `retention.bytes`, never data at or above the high watermark and never the active
    /// segment. Only with a `delete` cleanup policy.
    pub fn apply_retention(&self, now_ms: i64) -> Result<RetentionReport, LogError> {
        self.check_usable()?;
        let mut report = RetentionReport {
            log_start_offset: self.log_start_offset(),
            ..RetentionReport::default()
        };
        if !self.config.cleanup_policy.deletes() {
            return Ok(report);
        }
        let (doomed, next_base) = self.retention_candidates(now_ms)?;
        if doomed.is_empty() {
            return Ok(report);
        }
        report.segments_deleted = doomed.len();
        report.bytes_deleted = doomed.iter().map(|s| s.size_bytes()).sum();
        self.delete_front(&doomed, next_base, now_ms)?;
        report.log_start_offset = self.log_start_offset();
        Ok(report)
    }

    /// Oldest-first segments that retention deletes, and the base offset after them.
    fn retention_candidates(&self, now_ms: i64) -> Result<(Vec<Arc<Segment>>, i64), LogError> {
        let segments: Vec<Arc<Segment>> = self.segments_read().values().cloned().collect();
        let high_watermark = self.high_watermark();
        let total_bytes: u64 = segments.iter().map(|s| s.size_bytes()).sum();
        let mut excess_bytes = u64::try_from(self.config.retention_bytes)
            .ok()
            .map(|limit| i128::from(total_bytes) - i128::from(limit));
        let mut doomed = Vec::new();
        for pair in segments.windows(2) {
            let (segment, next) = match pair {
                [s, n] => (s, n),
                _ => break,
            };
            if next.base_offset > high_watermark {
                break;
            }
            let size = i128::from(segment.size_bytes());
            let by_size = excess_bytes.is_some_and(|excess| excess - size >= 0);
            let by_time = self.config.retention_ms >= 0 && {
                let max_ts =
                    segment.with_indexes(&self.handles, &self.config, |ix| ix.max_timestamp_ms)?;
                max_ts < now_ms.saturating_sub(self.config.retention_ms)
            };
            if !(by_size || by_time) {
                break;
            }
            excess_bytes = excess_bytes.map(|excess| excess - size);
            doomed.push(Arc::clone(segment));
        }
        let next_base = doomed
            .last()
            .and_then(|last| segments.iter().find(|s| s.base_offset > last.base_offset))
            .map_or(self.log_start_offset(), |s| s.base_offset);
        Ok((doomed, next_base))
    }

    /// DeleteRecords: moves the log start offset up to `offset` (at most the high
    /// watermark) and deletes the segments wholly below it. Returns the new log start.
    pub fn delete_records_before(&self, offset: i64, now_ms: i64) -> Result<i64, LogError> {
        self.check_usable()?;
        let high_watermark = self.high_watermark();
        if offset > high_watermark || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: high_watermark,
            });
        }
        if offset <= self.log_start_offset() {
            return Ok(self.log_start_offset());
        }
        let doomed: Vec<Arc<Segment>> = {
            let segments = self.segments_read();
            let bases: Vec<i64> = segments.keys().copied().collect();
            bases
                .windows(2)
                .filter_map(|w| match w {
                    [base, next] if *next <= offset => segments.get(base).cloned(),
                    _ => None,
                })
                .collect()
        };
        self.delete_front(&doomed, offset, now_ms)?;
        Ok(self.log_start_offset())
    }

    /// Raises the log start offset to `new_log_start` (durably, before any file goes) and
    /// deletes `doomed` (oldest segments, never the active one).
    fn delete_front(
        &self,
        doomed: &[Arc<Segment>],
        new_log_start: i64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        self.ensure_marked_unclean()?;
        // The log start never runs ahead of durable data: otherwise a crash could leave a
        // log whose end is below its start.
        self.sync_to(new_log_start)?;
        let token = self.flush_token()?;
        if new_log_start > self.log_start_offset() {
            self.log_start_offset
                .store(new_log_start, Ordering::Release);
            if self.high_watermark() < new_log_start {
                self.high_watermark.store(new_log_start, Ordering::Release);
            }
            let current = lock(&self.flush).checkpoint;
            // Everything below the new log start is durable (synced above): the recovery
            // point never lies below the log start, whose segments go.
            let checkpoint = Checkpoint {
                log_start_offset: new_log_start,
                recovery_point: current.recovery_point.max(new_log_start),
                ..current
            };
            // The new log start is durable before segments disappear, so a crash can
            // neither resurrect deleted records nor lose the DeleteRecords answer.
            self.write_checkpoint(&token, checkpoint)?;
            // Epochs wholly before the new start go (an open trims them again if this
            // write is lost).
            self.trim_epochs_start(new_log_start)?;
        }
        let mut writer = self.lock_writer();
        let active_base = writer.active.base_offset;
        let doomed: Vec<&Arc<Segment>> = doomed
            .iter()
            .filter(|s| s.base_offset < active_base)
            .collect();
        {
            let mut segments = self.segments_write();
            for segment in &doomed {
                segments.remove(&segment.base_offset);
            }
        }
        writer
            .rolled
            .retain(|r| !doomed.iter().any(|s| s.base_offset == r.base_offset));
        drop(writer);
        for segment in doomed {
            self.latch(self.schedule_delete(segment, now_ms))?;
        }
        Ok(())
    }

    /// Renames a removed segment's files to `*.deleted` (readers holding handles keep
    /// reading) and removes them now or after `file.delete.delay.ms`.
    pub(super) fn schedule_delete(&self, segment: &Segment, now_ms: i64) -> Result<(), LogError> {
        // Readers holding this segment keep its file through the pinned handle.
        if let Ok(file) = segment.log_file(&self.handles) {
            segment.pin(Some(file));
        }
        // And its `.txnindex`, for `read_committed` readers of it (best effort, as above:
        // without the pin they find no file and name none of its aborted transactions).
        if let Err(error) = segment.pin_txn_index(self.fs.as_ref()) {
            tracing::warn!(file = %segment.txn_index_path.display(), %error,
                "cannot keep a deleted segment's transaction index open for its readers");
        }
        for path in [
            &segment.log_path,
            &segment.index_path,
            &segment.time_index_path,
            &segment.txn_index_path,
        ] {
            if !self
                .fs
                .exists(path)
                .map_err(|e| LogError::io("stat", path, e))?
            {
                continue;
            }
            let mut name = path.as_os_str().to_owned();
            name.push(DELETED_SUFFIX);
            let deleted = PathBuf::from(name);
            // No directory fsync: after a crash the next open removes `.deleted` files and
            // segments below the checkpointed log start, whichever name survived.
            self.fs
                .rename(path, &deleted)
                .map_err(|e| LogError::io("rename", path, e))?;
            // After the rename: a handle cached meanwhile would name the old file.
            self.handles.forget(path);
            lock(&self.pending_deletes).push((
                now_ms.saturating_add(self.config.file_delete_delay_ms),
                deleted,
            ));
        }
        self.delete_expired_files(now_ms)
    }

    /// Removes `.deleted` files whose delay has passed.
    pub fn delete_expired_files(&self, now_ms: i64) -> Result<(), LogError> {
        let expired: Vec<PathBuf> = {
            let mut pending = lock(&self.pending_deletes);
            let (due, keep): (Vec<_>, Vec<_>) =
                pending.drain(..).partition(|(at, _)| *at <= now_ms);
            *pending = keep;
            due.into_iter().map(|(_, p)| p).collect()
        };
        for path in expired {
            match self.fs.remove(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("remove", &path, e)),
            }
        }
        Ok(())
    }

    /// Removes every batch at or after `offset` (the whole batch holding it, as Kafka
    /// does): later segments are deleted, the segment holding it is cut and becomes the
    /// active one. The new log end offset is the start of the first removed batch.
    ///
    /// The one operation that holds the writer mutex across fsyncs: appends must not
    /// interleave with it. Crash-consistent in three durable steps: the recovery point
    /// drops to the target segment (so that an open after a crash scans it and everything
    /// after it, and never finds the log ending below its recovery point); the later
    /// segments go, highest offset first with a directory fsync after each, so that a crash
    /// part-way leaves a prefix of the log, never a gap; then the target is cut and the cut
    /// fsynced before any append can write past it (a crash can then never leave new bytes
    /// followed by stale ones). An open after a crash at any point finds an intact prefix
    /// of the log as it was before the truncation, or the truncated log. Readers are not
    /// blocked.
    pub fn truncate_to(&self, offset: i64, now_ms: i64) -> Result<TruncateReport, LogError> {
        self.check_writable()?;
        let log_start = self.log_start_offset();
        if offset < log_start {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: log_start,
                log_end_offset: self.log_end_offset(),
            });
        }
        if offset >= self.log_end_offset() {
            // Nothing to cut, but an epoch may have begun at the end without writing
            // anything (this broker led it briefly): the follower's history must not keep
            // it (Kafka trims the cache here too).
            let writer = self.lock_writer();
            self.trim_epochs_end(writer.next_offset)?;
            return Ok(TruncateReport {
                log_end_offset: writer.next_offset,
                ..TruncateReport::default()
            });
        }
        self.ensure_marked_unclean()?;
        let token = self.flush_token()?;
        let mut writer = self.lock_writer();
        let report = self.latch(self.truncate_locked(&token, &mut writer, offset, now_ms))?;
        let file = self.latch(self.active_files(&mut writer))?.log;
        let path = writer.active.log_path.clone();
        // The cut itself: durable before an append can write past it, before the caller
        // acts on the shorter log, and before the epoch cache forgets the epochs it removed
        // (the cache may know more than the data, never less). Still under the writer mutex,
        // so no append of a new epoch lands between the cut and the trim.
        self.latch(file.sync().map_err(|e| LogError::io("fsync", &path, e)))?;
        self.trim_epochs_end(report.log_end_offset)?;
        drop(writer);
        Ok(report)
    }

    /// A follower whose log ends before its leader's log start (retention or DeleteRecords
    /// removed what it lacks) starts over there (Kafka's `truncateFullyAndStartAt`): every
    /// segment goes, an empty one begins at `offset`, which becomes the log start, end and
    /// high watermark, and the epoch cache is emptied. Order: the new segment file and its
    /// directory entry are durable, then the checkpoint names `offset` as log start and
    /// recovery point (the commit point: on open everything below it is removed), then the
    /// old segments are renamed away and the epoch cache is cleared. A crash before the
    /// checkpoint leaves the old log (the new empty segment past its end is cut by
    /// recovery). Blocking; appends wait.
    pub fn truncate_fully_and_start_at(&self, offset: i64, now_ms: i64) -> Result<(), LogError> {
        self.check_writable()?;
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: self.log_end_offset(),
            });
        }
        self.ensure_marked_unclean()?;
        let token = self.flush_token()?;
        let mut writer = self.lock_writer();
        let result = self.reset_locked(&token, &mut writer, offset, now_ms);
        self.latch(result)?;
        drop(writer);
        tracing::info!(dir = %self.dir.display(), offset, "log emptied to start at a new offset");
        Ok(())
    }

    fn reset_locked(
        &self,
        token: &FlushToken<'_>,
        writer: &mut Writer,
        offset: i64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let old: Vec<Arc<Segment>> = self.segments_read().values().cloned().collect();
        let segment = Arc::new(Segment::new(&self.dir, offset, 0));
        let create = |path: &std::path::Path| {
            self.handles.forget(path);
            self.fs
                .create(path)
                .map_err(|e| LogError::io("create", path, e))
        };
        let files = super::ActiveFiles {
            log: create(&segment.log_path)?,
            index: create(&segment.index_path)?,
            time_index: create(&segment.time_index_path)?,
        };
        create(&segment.txn_index_path)?;
        segment.set_txn_index_len(0);
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| LogError::io("fsync dir", &self.dir, e))?;
        let checkpoint = Checkpoint {
            recovery_point: offset,
            log_start_offset: offset,
            clean_shutdown: false,
        };
        // The commit point: from here an open removes every segment below `offset`.
        self.write_checkpoint(token, checkpoint)?;
        segment.set_indexes(crate::segment::Indexes::new(&self.config));
        segment.pin(Some(Arc::clone(&files.log)));
        {
            let mut segments = self.segments_write();
            segments.clear();
            segments.insert(offset, Arc::clone(&segment));
        }
        writer.active = segment;
        writer.files = Some(files);
        writer.indexes_preallocated = false;
        writer.active_since_ms = now_ms;
        writer.next_offset = offset;
        writer.records_since_flush = 0;
        writer.rolled.clear();
        writer.dir_dirty = false;
        self.log_start_offset.store(offset, Ordering::Release);
        self.log_end_offset.store(offset, Ordering::Release);
        self.high_watermark.store(offset, Ordering::Release);
        lock(&self.flush).durable_offset = offset;
        // A segment at `offset` itself had its files recreated empty above.
        for segment in old.iter().filter(|s| s.base_offset != offset) {
            self.schedule_delete(segment, now_ms)?;
        }
        self.clear_epochs()
    }

    fn truncate_locked(
        &self,
        token: &FlushToken<'_>,
        writer: &mut Writer,
        offset: i64,
        now_ms: i64,
    ) -> Result<TruncateReport, LogError> {
        let target = self
            .segments_read()
            .range(..=offset)
            .next_back()
            .map(|(_, s)| Arc::clone(s))
            .ok_or(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: writer.next_offset,
            })?;
        let file = if Arc::ptr_eq(&target, &writer.active) {
            self.active_files(writer)?.log
        } else {
            self.fs
                .open(&target.log_path)
                .map_err(|e| LogError::io("open", &target.log_path, e))?
        };
        let end = target.size_bytes();
        let entry = match relative(target.base_offset, offset) {
            Some(rel) => target.with_indexes(&self.handles, &self.config, |ix| {
                ix.offset.lookup_entry(rel)
            })?,
            None => None,
        };
        let path = &target.log_path;
        let base = target.base_offset;
        let mut seek = seek_batch(file.as_ref(), path, base, entry, offset, end)?;
        if let Seek::StaleIndex(reason) = seek {
            // No repair here: the indexes are replaced by the rescan below anyway.
            tracing::warn!(segment = %path.display(), %reason, "index does not match the segment; truncating without it");
            seek = seek_batch(file.as_ref(), path, base, None, offset, end)?;
        }
        let position = match seek {
            Seek::Found(position, _) => position,
            Seek::End | Seek::StaleIndex(_) => end,
        };
        // What stays (bounded by one segment): its end offset and rebuilt indexes.
        let scan = scan_segment(
            file.as_ref(),
            &target.log_path,
            target.base_offset,
            0,
            position,
            &self.config,
        )?;
        let new_end = scan.next_offset.unwrap_or(target.base_offset);
        // Step 1, durable before any file changes: the recovery point at the target, so
        // that an open after a crash in the steps below scans the target and whatever
        // later segments survive, and the log start lowered if the cut reaches below it.
        let log_start_offset = self.log_start_offset().min(new_end);
        let current = lock(&self.flush).checkpoint;
        let checkpoint = Checkpoint {
            recovery_point: current.recovery_point.min(target.base_offset),
            log_start_offset,
            clean_shutdown: false,
        };
        if checkpoint != current {
            self.write_checkpoint(token, checkpoint)?;
        }
        // Step 2: the later segments go, highest offset first, each removal durable
        // before the next, so that what survives a crash is always a prefix of the log.
        let doomed: Vec<Arc<Segment>> = {
            let mut segments = self.segments_write();
            let later: Vec<i64> = segments
                .range(target.base_offset + 1..)
                .map(|(b, _)| *b)
                .collect();
            later.iter().filter_map(|b| segments.remove(b)).collect()
        };
        let bytes_removed =
            end.saturating_sub(position) + doomed.iter().map(|s| s.size_bytes()).sum::<u64>();
        for segment in doomed.iter().rev() {
            self.schedule_delete(segment, now_ms)?;
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| LogError::io("fsync dir", &self.dir, e))?;
        }
        // Step 3: cut the target and make it the active segment (the caller fsyncs the cut
        // before it lets appends in).
        file.set_len(position)
            .map_err(|e| LogError::io("truncate", &target.log_path, e))?;
        target.set_size_bytes(position);
        // The `.txnindex` cut is fsynced (see `truncate_txn_index`): the rescan after a
        // crash rebuilds it only if the segment still holds a marker.
        super::aborted::truncate_txn_index(self.fs.as_ref(), &target, new_end)?;
        self.activate_truncated(writer, &target, file, scan.indexes, now_ms)?;
        writer.next_offset = new_end;
        self.log_start_offset
            .store(log_start_offset, Ordering::Release);
        self.log_end_offset.store(new_end, Ordering::Release);
        if self.high_watermark() > new_end {
            self.high_watermark.store(new_end, Ordering::Release);
        }
        {
            let mut state = lock(&self.flush);
            state.durable_offset = state.durable_offset.min(new_end);
        }
        tracing::info!(dir = %self.dir.display(), offset, log_end_offset = new_end, "truncated log");
        Ok(TruncateReport {
            log_end_offset: new_end,
            bytes_removed,
            segments_deleted: doomed.len(),
        })
    }

    /// Rewrites the cut segment's index files and makes it the writer's active segment.
    fn activate_truncated(
        &self,
        writer: &mut Writer,
        target: &Arc<Segment>,
        file: Arc<dyn crate::fs::FileHandle>,
        indexes: crate::segment::Indexes,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let create = |path: &std::path::Path| {
            self.handles.forget(path);
            self.fs
                .create(path)
                .map_err(|e| LogError::io("create", path, e))
        };
        // The rewritten index files are not fsynced: the recovery point is at or below
        // this segment, so a crash rebuilds them from the log.
        let index_file = create(&target.index_path)?;
        let time_index_file = create(&target.time_index_path)?;
        crate::fs::write_all_at(index_file.as_ref(), 0, &indexes.offset.encode())
            .map_err(|e| LogError::io("write", &target.index_path, e))?;
        crate::fs::write_all_at(time_index_file.as_ref(), 0, &indexes.time.encode())
            .map_err(|e| LogError::io("write", &target.time_index_path, e))?;
        target.set_indexes(indexes);
        if !Arc::ptr_eq(target, &writer.active) {
            // The old active segment stays pinned: it is being deleted and readers may
            // still hold it.
            writer.active = Arc::clone(target);
            writer.active_since_ms = now_ms;
        }
        target.pin(Some(Arc::clone(&file)));
        writer.files = Some(super::ActiveFiles {
            log: file,
            index: index_file,
            time_index: time_index_file,
        });
        writer.indexes_preallocated = false;
        writer.rolled.retain(|r| r.base_offset < target.base_offset);
        Ok(())
    }
}
