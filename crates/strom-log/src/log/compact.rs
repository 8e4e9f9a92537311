//! Compaction (`cleanup.policy=compact`): keeps the latest record per key in the inactive,
//! synced segments below the high watermark, and swaps each cleaned segment in crash-safely.
//!
//! Swap protocol for a segment with base B (every step fsynced before the next):
//! 1. write `B.log.cleaned`, `B.index.cleaned`, `B.timeindex.cleaned`; fsync them;
//! 2. rename both index files `.cleaned` -> `.swap`; fsync dir;
//! 3. rename `B.log.cleaned` -> `B.log.swap`; fsync dir  (the commit point);
//! 4. rename each `.swap` over its original; fsync dir.
//!
//! At open, `.cleaned` files are deleted (the pass is lost: the log is as before), and if
//! `B.log.swap` exists the renames of step 4 are completed (the log is as after).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::compaction::{clean_batch, decode, Cleaned, CompactionLimits, KeyMap};
use crate::config::TIME_INDEX_ENTRY_BYTES;
use crate::error::LogError;
use crate::fs::{write_all_at, FileHandle};
use crate::segment::{for_each_batch, Indexes, Segment, CLEANED_SUFFIX, SWAP_SUFFIX};

use super::{lock, Log};

/// What a compaction pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionReport {
    pub segments_cleaned: usize,
    pub records_removed: usize,
    pub tombstones_removed: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// `path` with `suffix` appended to its file name.
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

impl Log {
    /// One compaction pass over the cleanable segments (inactive, synced, below the high
    /// watermark, older than `min.compaction.lag.ms`). Only with a `compact` cleanup
    /// policy. Appends and reads continue meanwhile; passes on one log are serialised.
    pub fn compact(
        &self,
        now_ms: i64,
        limits: &CompactionLimits,
    ) -> Result<CompactionReport, LogError> {
        self.check_usable()?;
        let mut report = CompactionReport::default();
        if !self.config.cleanup_policy.compacts() {
            return Ok(report);
        }
        let _cleaner = lock(&self.cleaner);
        let candidates = self.cleanable_segments(now_ms)?;
        if candidates.is_empty() {
            return Ok(report);
        }
        self.ensure_marked_unclean()?;
        let (map, covered) = self.build_key_map(&candidates, limits)?;
        let horizon_ms = now_ms.saturating_sub(self.config.delete_retention_ms);
        for segment in covered {
            self.clean_segment(&segment, &map, horizon_ms, limits, &mut report)?;
        }
        Ok(report)
    }

    /// The oldest segments, in order, up to the first one that may not be cleaned yet.
    fn cleanable_segments(&self, now_ms: i64) -> Result<Vec<Arc<Segment>>, LogError> {
        let (active_base, unsynced) = {
            let writer = self.lock_writer();
            let unsynced: Vec<i64> = writer.rolled.iter().map(|r| r.base_offset).collect();
            (writer.active.base_offset, unsynced)
        };
        let high_watermark = self.high_watermark();
        let segments: Vec<Arc<Segment>> = self.segments_read().values().cloned().collect();
        let lag_bound_ms = now_ms.saturating_sub(self.config.min_compaction_lag_ms);
        let mut out = Vec::new();
        for pair in segments.windows(2) {
            let [segment, next] = pair else { break };
            if next.base_offset > active_base
                || next.base_offset > high_watermark
                || unsynced.contains(&segment.base_offset)
            {
                break;
            }
            let max_ts =
                segment.with_indexes(&self.handles, &self.config, |ix| ix.max_timestamp_ms)?;
            if max_ts > lag_bound_ms {
                break;
            }
            out.push(Arc::clone(segment));
        }
        Ok(out)
    }

    /// Latest offset per key over a prefix of `candidates` that fits the memory bound.
    fn build_key_map(
        &self,
        candidates: &[Arc<Segment>],
        limits: &CompactionLimits,
    ) -> Result<(KeyMap, Vec<Arc<Segment>>), LogError> {
        let mut map = KeyMap::default();
        let mut covered = Vec::new();
        for segment in candidates {
            let mut part = KeyMap::default();
            let file = segment.log_file(&self.handles)?;
            for_each_batch(
                file.as_ref(),
                &segment.log_path,
                0,
                segment.size_bytes(),
                |header, position, bytes| {
                    let decoded =
                        decode(&bytes, limits).map_err(|e| corrupt(segment, position, e))?;
                    part.add_batch(header, &decoded);
                    Ok(())
                },
            )?;
            if map.bytes() + part.bytes() > limits.key_map_bytes_max {
                break;
            }
            map.merge(part);
            covered.push(Arc::clone(segment));
        }
        Ok((map, covered))
    }

    fn clean_segment(
        &self,
        segment: &Arc<Segment>,
        map: &KeyMap,
        horizon_ms: i64,
        limits: &CompactionLimits,
        report: &mut CompactionReport,
    ) -> Result<(), LogError> {
        let (indexes, size_bytes, removed, tombstones) =
            self.write_cleaned(segment, map, horizon_ms, limits)?;
        if removed == 0 && tombstones == 0 {
            self.discard_cleaned(segment)?;
            return Ok(());
        }
        let token = self.flush_token()?;
        // Retention or truncation may have removed the segment meanwhile.
        let still_there = self
            .segments_read()
            .get(&segment.base_offset)
            .is_some_and(|s| Arc::ptr_eq(s, segment));
        if !still_there {
            drop(token);
            return self.discard_cleaned(segment);
        }
        // Readers holding the old segment keep reading the old file through its handle,
        // pinned before the rename so that none of them opens the new file by name.
        let old = segment.log_file(&self.handles)?;
        segment.pin(Some(old));
        self.latch(self.swap_in(segment))?;
        let cleaned = Arc::new(Segment::new(&self.dir, segment.base_offset, size_bytes));
        cleaned.set_indexes(indexes);
        for path in [
            &segment.log_path,
            &segment.index_path,
            &segment.time_index_path,
        ] {
            self.handles.forget(path);
        }
        self.segments_write().insert(segment.base_offset, cleaned);
        drop(token);
        report.segments_cleaned += 1;
        report.records_removed += removed;
        report.tombstones_removed += tombstones;
        report.bytes_before += segment.size_bytes();
        report.bytes_after += size_bytes;
        tracing::info!(dir = %self.dir.display(), base_offset = segment.base_offset, removed, "compacted segment");
        Ok(())
    }

    /// Step 1: writes and fsyncs the `.cleaned` files; returns their indexes, the new size
    /// and how many records and tombstones were dropped.
    fn write_cleaned(
        &self,
        segment: &Segment,
        map: &KeyMap,
        horizon_ms: i64,
        limits: &CompactionLimits,
    ) -> Result<(Indexes, u64, usize, usize), LogError> {
        let create = |path: &Path| -> Result<(PathBuf, Arc<dyn FileHandle>), LogError> {
            let cleaned = with_suffix(path, CLEANED_SUFFIX);
            let file = self
                .fs
                .create(&cleaned)
                .map_err(|e| LogError::io("create", &cleaned, e))?;
            Ok((cleaned, file))
        };
        let (log_path, out) = create(&segment.log_path)?;
        let source = segment.log_file(&self.handles)?;
        let mut indexes = Indexes::new(&self.config);
        let mut position = 0u64;
        let (mut removed, mut tombstones) = (0, 0);
        // The last batch is always kept (if need be with no records) so that the segment
        // still ends where the next one begins.
        let mut pending: Option<(strom_records::BatchHeader, Vec<u8>)> = None;
        let mut emit = |header: &strom_records::BatchHeader,
                        bytes: &[u8],
                        position: &mut u64|
         -> Result<(), LogError> {
            write_all_at(out.as_ref(), *position, bytes)
                .map_err(|e| LogError::io("write", &log_path, e))?;
            indexes.on_batch(
                segment.base_offset,
                header,
                *position,
                self.config.index_interval_bytes,
            );
            *position += bytes.len() as u64;
            Ok(())
        };
        for_each_batch(
            source.as_ref(),
            &segment.log_path,
            0,
            segment.size_bytes(),
            |header, at, bytes| {
                if let Some((h, b)) = pending.take() {
                    if h.records_count > 0 {
                        emit(&h, &b, &mut position)?;
                    }
                }
                let decoded = decode(&bytes, limits).map_err(|e| corrupt(segment, at, e))?;
                let kept = match clean_batch(header, decoded, map, horizon_ms)
                    .map_err(|e| corrupt(segment, at, e))?
                {
                    Cleaned::Unchanged => bytes,
                    Cleaned::Rewritten {
                        batch,
                        records_removed,
                        tombstones_removed,
                    } => {
                        removed += records_removed;
                        tombstones += tombstones_removed;
                        batch
                    }
                };
                let kept_header = strom_records::BatchHeader::parse(&kept)
                    .map_err(|e| corrupt(segment, at, e))?;
                pending = Some((kept_header, kept));
                Ok(())
            },
        )?;
        if let Some((h, b)) = pending.take() {
            emit(&h, &b, &mut position)?;
        }
        // The final time-index entry, as on a roll.
        indexes.time_entry(segment.base_offset, true);
        let (index_path, index_file) = create(&segment.index_path)?;
        let (time_path, time_file) = create(&segment.time_index_path)?;
        write_all_at(index_file.as_ref(), 0, &indexes.offset.encode())
            .map_err(|e| LogError::io("write", &index_path, e))?;
        let time_bytes = indexes.time.encode();
        debug_assert_eq!(time_bytes.len() as u64 % TIME_INDEX_ENTRY_BYTES, 0);
        write_all_at(time_file.as_ref(), 0, &time_bytes)
            .map_err(|e| LogError::io("write", &time_path, e))?;
        for (path, file) in [
            (&log_path, &out),
            (&index_path, &index_file),
            (&time_path, &time_file),
        ] {
            // The cleaned copies must be durable before a rename can make them the segment.
            file.sync().map_err(|e| LogError::io("fsync", path, e))?;
        }
        Ok((indexes, position, removed, tombstones))
    }

    /// Steps 2-4 of the swap protocol (see the module docs).
    fn swap_in(&self, segment: &Segment) -> Result<(), LogError> {
        let rename = |from: &Path, to: &Path| {
            self.fs
                .rename(from, to)
                .map_err(|e| LogError::io("rename", from, e))
        };
        let sync_dir = || {
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| LogError::io("fsync dir", &self.dir, e))
        };
        for path in [&segment.index_path, &segment.time_index_path] {
            rename(
                &with_suffix(path, CLEANED_SUFFIX),
                &with_suffix(path, SWAP_SUFFIX),
            )?;
        }
        // Index swaps durable before the log's: the log's `.swap` is the commit point and
        // must imply the other two.
        sync_dir()?;
        rename(
            &with_suffix(&segment.log_path, CLEANED_SUFFIX),
            &with_suffix(&segment.log_path, SWAP_SUFFIX),
        )?;
        sync_dir()?;
        for path in [
            &segment.index_path,
            &segment.time_index_path,
            &segment.log_path,
        ] {
            rename(&with_suffix(path, SWAP_SUFFIX), path)?;
        }
        // Not needed for safety (open completes a committed swap), but it keeps the set
        // of files on disk equal to what the in-memory segment map now says.
        sync_dir()
    }

    fn discard_cleaned(&self, segment: &Segment) -> Result<(), LogError> {
        for path in [
            &segment.log_path,
            &segment.index_path,
            &segment.time_index_path,
        ] {
            let cleaned = with_suffix(path, CLEANED_SUFFIX);
            if self
                .fs
                .exists(&cleaned)
                .map_err(|e| LogError::io("stat", &cleaned, e))?
            {
                self.fs
                    .remove(&cleaned)
                    .map_err(|e| LogError::io("remove", &cleaned, e))?;
            }
        }
        Ok(())
    }
}

fn corrupt(segment: &Segment, position: u64, error: strom_records::RecordsError) -> LogError {
    LogError::CorruptSegment {
        path: segment.log_path.clone(),
        position,
        reason: error.to_string(),
    }
}
