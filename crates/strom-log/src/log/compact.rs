//! Compaction (`cleanup.policy=compact`): keeps the latest record per key in the inactive,
//! synced segments below the high watermark and the recovery point, cleaning groups of consecutive segments into
//! one (Kafka's `groupSegmentsBySize`, so that small segments merge) and swapping each
//! cleaned group in crash-safely. What stays of each batch: see `crate::compaction`.
//!
//! Swap protocol for a group of segments B0 < B1 < ... < Bk cleaned into one segment B0
//! (k = 0 for a group of one; every step durable before the next):
//! 1. write `B0.log.cleaned`, `B0.index.cleaned`, `B0.timeindex.cleaned`,
//!    `B0.txnindex.cleaned` (the group's `.txnindex` entries, in order, less those whose
//!    ABORT marker the pass removed: so exactly those whose marker the cleaned log keeps);
//!    fsync all four, so that the cleaned log never becomes the
//!    segment without its own index: no entry names a marker the pass removed, and every
//!    entry of a marker it kept stays;
//! 2. rename the index files `.cleaned` -> `.swap`; fsync dir;
//! 3. rename `B0.log.cleaned` -> `B0.log.swap`; fsync dir  (the commit point);
//! 4. rename the files of B1..Bk to `.deleted` (removed after `file.delete.delay.ms`);
//!    fsync dir;
//! 5. rename each `.swap` over its original; fsync dir.
//!
//! The cleaned segment always keeps the group's last batch (if need be with no records), so
//! it ends exactly where Bk ended: its offsets cover B1..Bk, which is how open recognises
//! them. At open, `.cleaned` files are deleted (the pass is lost: the log is as before);
//! if `B.log.swap` exists, the segments whose base offsets lie strictly inside the offsets
//! of `B.log.swap` are removed (step 4), the directory fsynced, and the renames of step 5
//! completed (the log is as after). Step 4 comes before step 5 because step 5 removes the
//! commit point: a replaced segment must never outlive it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strom_records::{empty_batch, BatchHeader};

use crate::compaction::{
    clean_batch, group_segments, CleanTime, Cleaned, CompactionLimits, GroupInput, KeyMap,
    TxnTracker, PRODUCER_ID_EXPIRATION_MS,
};
use crate::config::{OFFSET_INDEX_ENTRY_BYTES, TIME_INDEX_ENTRY_BYTES};
use crate::error::LogError;
use crate::fs::{write_all_at, FileHandle};
use crate::segment::{for_each_batch, Indexes, Segment, CLEANED_SUFFIX, SWAP_SUFFIX};

use super::{lock, Log};

/// What a compaction pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Segments rewritten (every member of a swapped group).
    pub segments_cleaned: usize,
    /// Segments that disappeared into the first segment of their group.
    pub segments_merged: usize,
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

/// A segment a pass may clean, with what grouping needs to know of it.
#[derive(Clone, Debug)]
struct Candidate {
    segment: Arc<Segment>,
    next_base_offset: i64,
    offset_index_bytes: u64,
    time_index_bytes: u64,
}

/// The cleaned copy of a group, written and synced (step 1).
struct CleanedGroup {
    indexes: Indexes,
    size_bytes: u64,
    /// The offset after its last batch (`None` if it holds no batch).
    end_offset: Option<i64>,
    records_removed: usize,
    tombstones_removed: usize,
    /// Differs from the group's bytes (records or batches removed, a batch rewritten, or
    /// several segments merged).
    changed: bool,
    /// Base offsets of the COMMIT and ABORT markers this pass removed (their control batch
    /// emptied), in increasing order: the `.txnindex` entries dropped are those whose
    /// marker is one of them. Only markers whose transaction left no data in the key map
    /// may go, so this holds at most one offset per [`KeyMap`] marker without data, which
    /// the key map charges against `key_map_bytes_max` on top of its own entry.
    removed_markers: Vec<i64>,
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
        // A pass writes cleaned copies before it frees anything: not while the disk is full.
        if !self.config.cleanup_policy.compacts() || self.health() == super::Health::DiskFull {
            return Ok(report);
        }
        let _cleaner = lock(&self.cleaner);
        let candidates = self.cleanable_segments(now_ms)?;
        if candidates.is_empty() {
            return Ok(report);
        }
        self.ensure_marked_unclean()?;
        let (map, covered) = self.build_key_map(&candidates, limits)?;
        let covered = &candidates[..covered];
        let inputs: Vec<GroupInput> = covered
            .iter()
            .map(|c| GroupInput {
                base_offset: c.segment.base_offset,
                next_base_offset: c.next_base_offset,
                size_bytes: c.segment.size_bytes(),
                offset_index_bytes: c.offset_index_bytes,
                time_index_bytes: c.time_index_bytes,
            })
            .collect();
        let groups = group_segments(
            &inputs,
            self.config.segment_bytes,
            self.config.segment_index_bytes,
        );
        // Markers go only below every producer snapshot (`crate::compaction`): listed after
        // the key map, so a snapshot written meanwhile is at the log end, above them all.
        let markers_removable_below = self.oldest_producer_snapshot()?.unwrap_or(i64::MAX);
        let time = CleanTime {
            now_ms,
            delete_retention_ms: self.config.delete_retention_ms,
            markers_removable_below,
        };
        for group in groups {
            if let Some(members) = covered.get(group) {
                self.clean_group(members, &map, time, limits, &mut report)?;
            }
        }
        Ok(report)
    }

    /// The oldest segments, in order, up to the first one that may not be cleaned yet.
    fn cleanable_segments(&self, now_ms: i64) -> Result<Vec<Candidate>, LogError> {
        let (active_base, unsynced) = {
            let writer = self.lock_writer();
            let unsynced: Vec<i64> = writer.rolled.iter().map(|r| r.base_offset).collect();
            (writer.active.base_offset, unsynced)
        };
        let high_watermark = self.high_watermark();
        // Only segments wholly below the recovery point: recovery counts on offset gaps
        // between segments (which compaction makes) lying only there (`recover.rs`).
        let recovery_point = lock(&self.flush).checkpoint.recovery_point;
        let segments: Vec<Arc<Segment>> = self.segments_read().values().cloned().collect();
        let lag_bound_ms = now_ms.saturating_sub(self.config.min_compaction_lag_ms);
        let mut out = Vec::new();
        for pair in segments.windows(2) {
            let [segment, next] = pair else { break };
            if next.base_offset > active_base
                || next.base_offset > high_watermark
                || next.base_offset > recovery_point
                || unsynced.contains(&segment.base_offset)
            {
                break;
            }
            let (max_ts, offset_entries, time_entries) =
                segment.with_indexes(&self.handles, &self.config, |ix| {
                    (ix.max_timestamp_ms, ix.offset.len(), ix.time.len())
                })?;
            // Kafka applies the lag only when it is set: with 0, a batch stamped in the
            // future (allowed up to `message.timestamp.after.max.ms`) does not hold back
            // the cleaning of its segment and every later one.
            if self.config.min_compaction_lag_ms > 0 && max_ts > lag_bound_ms {
                break;
            }
            out.push(Candidate {
                segment: Arc::clone(segment),
                next_base_offset: next.base_offset,
                offset_index_bytes: offset_entries as u64 * OFFSET_INDEX_ENTRY_BYTES,
                time_index_bytes: time_entries as u64 * TIME_INDEX_ENTRY_BYTES,
            });
        }
        Ok(out)
    }

    /// Latest offset per key (and last batch per producer) over the longest prefix of
    /// `candidates` that fits the memory bound; returns the map and that prefix's length.
    fn build_key_map(
        &self,
        candidates: &[Candidate],
        limits: &CompactionLimits,
    ) -> Result<(KeyMap, usize), LogError> {
        let mut map = KeyMap::default();
        let mut tracker = TxnTracker::default();
        let mut covered = 0;
        for candidate in candidates {
            let segment = &candidate.segment;
            let mut part = KeyMap::default();
            let file = segment.log_file(&self.handles)?;
            for_each_batch(
                file.as_ref(),
                &segment.log_path,
                0,
                segment.size_bytes(),
                |header, position, bytes| {
                    part.add_producer_batch(header);
                    tracker
                        .add_batch(&mut part, header, &bytes, limits)
                        .map_err(|e| corrupt(segment, position, e))
                },
            )?;
            if map.bytes() + part.bytes() + tracker.bytes() > limits.key_map_bytes_max {
                break;
            }
            map.merge(part);
            covered += 1;
        }
        // Transactions open at the end of the mapped range stay whole.
        tracker.finish(&mut map);
        Ok((map, covered))
    }

    /// Cleans `group` (consecutive segments) into one segment at the first one's base
    /// offset and swaps it in, unless nothing would change.
    fn clean_group(
        &self,
        group: &[Candidate],
        map: &KeyMap,
        time: CleanTime,
        limits: &CompactionLimits,
        report: &mut CompactionReport,
    ) -> Result<(), LogError> {
        let Some(first) = group.first().map(|c| Arc::clone(&c.segment)) else {
            return Ok(());
        };
        // The sizes cleaned: the swap goes ahead only if no segment changed meanwhile.
        let sizes: Vec<u64> = group.iter().map(|c| c.segment.size_bytes()).collect();
        let cleaned = self.write_cleaned(group, &sizes, map, time, limits)?;
        if !cleaned.changed {
            return self.discard_cleaned(&first);
        }
        // Open recognises the segments a committed swap replaced by their base offsets
        // lying inside its offsets: check that this holds before committing.
        let end = cleaned.end_offset.unwrap_or(first.base_offset);
        if let Some(outside) = group[1..].iter().find(|c| c.segment.base_offset >= end) {
            tracing::warn!(dir = %self.dir.display(), base_offset = first.base_offset,
                end, outside = outside.segment.base_offset,
                "cleaned group ends before one of its segments; not merging it");
            return self.discard_cleaned(&first);
        }
        let token = self.flush_token()?;
        // Retention, truncation or a DeleteRecords may have removed, cut or reactivated a
        // segment meanwhile (they all hold the flush token, as the swap below does).
        let active_base = self.lock_writer().active.base_offset;
        let unchanged = {
            let segments = self.segments_read();
            group.iter().zip(&sizes).all(|(c, size)| {
                segments
                    .get(&c.segment.base_offset)
                    .is_some_and(|s| Arc::ptr_eq(s, &c.segment))
                    && c.segment.base_offset < active_base
                    && c.segment.size_bytes() == *size
            })
        };
        if !unchanged {
            drop(token);
            return self.discard_cleaned(&first);
        }
        // Readers holding the old segment keep reading the old file through its handle,
        // pinned before the rename so that none of them opens the new file by name (the
        // merged-away segments are pinned by `schedule_delete`).
        let old = first.log_file(&self.handles)?;
        first.pin(Some(old));
        first.pin_txn_index(self.fs.as_ref())?;
        let merged_away = group[1..].iter().map(|c| c.segment.as_ref());
        self.latch(self.swap_cleaned(&first, merged_away, time.now_ms))?;
        let merged = Arc::new(Segment::new(
            &self.dir,
            first.base_offset,
            cleaned.size_bytes,
        ));
        merged.set_indexes(cleaned.indexes);
        for path in [&first.log_path, &first.index_path, &first.time_index_path] {
            self.handles.forget(path);
        }
        {
            let mut segments = self.segments_write();
            for c in &group[1..] {
                segments.remove(&c.segment.base_offset);
            }
            segments.insert(first.base_offset, merged);
        }
        drop(token);
        report.segments_cleaned += group.len();
        report.segments_merged += group.len() - 1;
        report.records_removed += cleaned.records_removed;
        report.tombstones_removed += cleaned.tombstones_removed;
        report.bytes_before += sizes.iter().sum::<u64>();
        report.bytes_after += cleaned.size_bytes;
        tracing::info!(dir = %self.dir.display(), base_offset = first.base_offset,
            segments = group.len(), removed = cleaned.records_removed, "compacted segments");
        Ok(())
    }

    /// Step 1: writes and fsyncs the `.cleaned` files of the group's first segment from
    /// the batches of all its segments (the first `sizes[i]` bytes of segment i).
    fn write_cleaned(
        &self,
        group: &[Candidate],
        sizes: &[u64],
        map: &KeyMap,
        time: CleanTime,
        limits: &CompactionLimits,
    ) -> Result<CleanedGroup, LogError> {
        let Some(first) = group.first().map(|c| &c.segment) else {
            return Err(LogError::CorruptSegment {
                path: self.dir.clone(),
                position: 0,
                reason: "empty compaction group".into(),
            });
        };
        let base_offset = first.base_offset;
        let create = |path: &Path| -> Result<(PathBuf, Arc<dyn FileHandle>), LogError> {
            let cleaned = with_suffix(path, CLEANED_SUFFIX);
            let file = self
                .fs
                .create(&cleaned)
                .map_err(|e| LogError::io("create", &cleaned, e))?;
            Ok((cleaned, file))
        };
        let (log_path, out) = create(&first.log_path)?;
        let mut result = CleanedGroup {
            indexes: Indexes::new(&self.config),
            size_bytes: 0,
            end_offset: None,
            records_removed: 0,
            tombstones_removed: 0,
            changed: group.len() > 1,
            removed_markers: Vec::new(),
        };
        let emit = |result: &mut CleanedGroup,
                    header: &BatchHeader,
                    bytes: &[u8]|
         -> Result<(), LogError> {
            write_all_at(out.as_ref(), result.size_bytes, bytes)
                .map_err(|e| LogError::io("write", &log_path, e))?;
            result.indexes.on_batch(
                base_offset,
                header,
                result.size_bytes,
                self.config.index_interval_bytes,
            );
            result.size_bytes += bytes.len() as u64;
            result.end_offset = Some(header.next_offset());
            Ok(())
        };
        // The batch last seen, held back until the next one shows it is not the group's
        // last; `true` if it may be dropped then (an empty batch nobody needs).
        let mut pending: Option<(BatchHeader, Vec<u8>, bool)> = None;
        for (candidate, &size) in group.iter().zip(sizes) {
            let segment = &candidate.segment;
            let source = segment.log_file(&self.handles)?;
            for_each_batch(
                source.as_ref(),
                &segment.log_path,
                0,
                size,
                |header, at, bytes| {
                    if let Some((h, b, droppable)) = pending.take() {
                        if droppable {
                            result.changed = true;
                        } else {
                            emit(&mut result, &h, &b)?;
                        }
                    }
                    let cleaned = clean_batch(header, &bytes, map, time, limits)
                        .map_err(|e| corrupt(segment, at, e))?;
                    let (kept, droppable) = match cleaned {
                        Cleaned::Unchanged => (bytes, false),
                        Cleaned::Rewritten {
                            batch,
                            records_removed,
                            tombstones_removed,
                        } => {
                            result.records_removed += records_removed;
                            result.tombstones_removed += tombstones_removed;
                            result.changed = true;
                            (batch, false)
                        }
                        Cleaned::Emptied {
                            records_removed,
                            tombstones_removed,
                        } => {
                            result.records_removed += records_removed;
                            result.tombstones_removed += tombstones_removed;
                            // A marker emptied here is gone whether its batch is dropped
                            // or kept empty: its `.txnindex` entry goes with it. Batches
                            // come in offset order, so the list stays sorted.
                            if header.is_control() && header.records_count > 0 {
                                result.removed_markers.push(header.base_offset);
                            }
                            let empty = empty_batch(header).map_err(|e| corrupt(segment, at, e))?;
                            result.changed |= empty != bytes;
                            // Kafka keeps the last batch of a live idempotent producer:
                            // rebuilding its state needs the sequence and epoch.
                            let producer_alive = map.is_last_of_producer(header)
                                && time.now_ms.saturating_sub(header.max_timestamp)
                                    < PRODUCER_ID_EXPIRATION_MS;
                            (empty, !producer_alive)
                        }
                    };
                    let kept_header =
                        BatchHeader::parse(&kept).map_err(|e| corrupt(segment, at, e))?;
                    pending = Some((kept_header, kept, droppable));
                    Ok(())
                },
            )?;
        }
        // The group's last batch stays even with no records: the cleaned segment must end
        // where the group ended.
        if let Some((h, b, _)) = pending.take() {
            emit(&mut result, &h, &b)?;
        }
        // The final time-index entry, as on a roll.
        result.indexes.time_entry(base_offset, true);
        let (index_path, index_file) = create(&first.index_path)?;
        let (time_path, time_file) = create(&first.time_index_path)?;
        // The merged segment's `.txnindex`: its segments' entries, in order, less those whose
        // ABORT marker this pass removed (Kafka's cleaned index; an ABORT marker removed as
        // a marker without data takes its entry with it, `compaction.rs`). Every other
        // entry's marker is in the cleaned log: entries are written only for ABORT markers
        // appended to their segment, and an earlier pass that emptied a marker dropped its
        // entry in the same swap.
        let (txn_path, txn_file) = create(&first.txn_index_path)?;
        let kept = |txn: &crate::txn::AbortedTxn| {
            result
                .removed_markers
                .binary_search(&txn.last_offset)
                .is_err()
        };
        let mut txn_bytes = 0;
        for candidate in group {
            txn_bytes = super::aborted::copy_txn_index(
                self.fs.as_ref(),
                &candidate.segment,
                txn_file.as_ref(),
                &txn_path,
                txn_bytes,
                &kept,
            )?;
        }
        write_all_at(index_file.as_ref(), 0, &result.indexes.offset.encode())
            .map_err(|e| LogError::io("write", &index_path, e))?;
        let time_bytes = result.indexes.time.encode();
        debug_assert_eq!(time_bytes.len() as u64 % TIME_INDEX_ENTRY_BYTES, 0);
        write_all_at(time_file.as_ref(), 0, &time_bytes)
            .map_err(|e| LogError::io("write", &time_path, e))?;
        for (path, file) in [
            (&log_path, &out),
            (&index_path, &index_file),
            (&time_path, &time_file),
            (&txn_path, &txn_file),
        ] {
            // The cleaned copies must be durable before a rename can make them the segment.
            file.sync().map_err(|e| LogError::io("fsync", path, e))?;
        }
        Ok(result)
    }

    /// Steps 2-5 of the swap protocol (see the module docs): `first`'s cleaned files
    /// become the segment, and each of `merged_away` is scheduled for deletion (as of
    /// `now_ms`) once the log's `.swap`, the commit point, is durable. A segment repair
    /// is the same swap for a group of one.
    pub(super) fn swap_cleaned<'a>(
        &self,
        first: &Segment,
        merged_away: impl IntoIterator<Item = &'a Segment>,
        now_ms: i64,
    ) -> Result<(), LogError> {
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
        // A segment repair writes no `.txnindex` (the batches, so the markers, are the
        // same): the segment keeps its own.
        let txn_index_cleaned = self
            .fs
            .exists(&with_suffix(&first.txn_index_path, CLEANED_SUFFIX))
            .map_err(|e| LogError::io("stat", &first.txn_index_path, e))?;
        let mut indexes = vec![&first.index_path, &first.time_index_path];
        if txn_index_cleaned {
            indexes.push(&first.txn_index_path);
        }
        for path in &indexes {
            rename(
                &with_suffix(path, CLEANED_SUFFIX),
                &with_suffix(path, SWAP_SUFFIX),
            )?;
        }
        // Index swaps durable before the log's: the log's `.swap` is the commit point and
        // must imply the others.
        sync_dir()?;
        rename(
            &with_suffix(&first.log_path, CLEANED_SUFFIX),
            &with_suffix(&first.log_path, SWAP_SUFFIX),
        )?;
        sync_dir()?;
        let mut merged = false;
        for segment in merged_away {
            self.schedule_delete(segment, now_ms)?;
            merged = true;
        }
        if merged {
            // The merged-away segments are gone durably while the commit point still
            // exists: once step 5 removes it, nothing at open would remove them.
            sync_dir()?;
        }
        indexes.push(&first.log_path);
        for path in indexes {
            rename(&with_suffix(path, SWAP_SUFFIX), path)?;
        }
        // Not needed for safety (open completes a committed swap), but it keeps the set
        // of files on disk equal to what the in-memory segment map now says.
        sync_dir()
    }

    pub(super) fn discard_cleaned(&self, segment: &Segment) -> Result<(), LogError> {
        for path in [
            &segment.log_path,
            &segment.index_path,
            &segment.time_index_path,
            &segment.txn_index_path,
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
