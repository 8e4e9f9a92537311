//! Repairing a damaged cold segment with a copy of its batches from another replica (the
//! scrubber's repair, `strom-broker`'s `scrubber.rs`): the copy is checked, then swapped
//! in by compaction's own swap (`Log::swap_cleaned` in `compact.rs`) as a group of one segment:
//! 1. write `B.log.cleaned`, `B.index.cleaned`, `B.timeindex.cleaned`; fsync them;
//! 2. rename both index files `.cleaned` -> `.swap`; fsync dir;
//! 3. rename `B.log.cleaned` -> `B.log.swap`; fsync dir (the commit point);
//! 4. rename each `.swap` over its original; fsync dir.
//!
//! A crash before step 3 leaves the damaged segment and `.cleaned` files that open deletes
//! (the repair is lost, the damage found again); after it, open completes the renames (the
//! segment is repaired). Either way no offset of the segment is ever missing. The copy runs
//! under the cleaner's lock, so it never shares the `.cleaned` names with a compaction pass,
//! and the swap under the flush token, after checking that the segment is still the same
//! cold segment (a truncation, retention or compaction meanwhile cancels it).
//!
//! What a copy must be to replace a segment (`check_copy`): whole batches with valid CRCs,
//! offsets increasing from the segment's base offset and ending exactly where the segment
//! ends (the next segment's base), each batch's leader epoch the one this log's epoch cache
//! gives its base offset (so it is the same history, not a diverged one). Offsets may have
//! gaps (a compacted log), as in the segment it replaces.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strom_records::{validate, BatchHeader, ValidateLimits};

use crate::error::LogError;
use crate::fs::{write_all_at, FileHandle};
use crate::segment::{Indexes, Segment, CLEANED_SUFFIX};

use super::compact::with_suffix;
use super::{lock, Log};

/// What a repair replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentRepair {
    pub path: PathBuf,
    pub base_offset: i64,
    /// The next segment's base offset (the replaced segment's offsets end before it).
    pub end_offset: i64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// A cold segment's place in the log: where it starts, where the next one starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColdSegment {
    pub base_offset: i64,
    pub end_offset: i64,
    pub size_bytes: u64,
}

impl Log {
    /// The cold segment (inactive, wholly below the durable offset) holding `offset`.
    pub fn cold_segment_at(&self, offset: i64) -> Option<ColdSegment> {
        let base = {
            let segments = self.segments_read();
            *segments.range(..=offset).next_back()?.0
        };
        let (segment, end_offset) = self.cold_segment_from(base)?;
        (segment.base_offset == base && offset < end_offset).then(|| ColdSegment {
            base_offset: base,
            end_offset,
            size_bytes: segment.size_bytes(),
        })
    }

    /// The segment starting at `base` if it is cold, with the next segment's base.
    fn cold_segment_from(&self, base: i64) -> Option<(Arc<Segment>, i64)> {
        let durable = self.durable_offset();
        let segments = self.segments_read();
        let mut from = segments.range(base..);
        let (first_base, first) = from.next()?;
        let (next_base, _) = from.next()?;
        (*first_base == base && *next_base <= durable).then(|| (Arc::clone(first), *next_base))
    }

    /// Replaces the cold segment `target` with `batches`, a copy of its offsets from another
    /// replica, after checking the copy (see the module docs). Blocking; an error leaves the
    /// segment as it was (an I/O error during the swap fails the log, as compaction's).
    pub fn replace_cold_segment(
        &self,
        target: ColdSegment,
        batches: &[u8],
    ) -> Result<SegmentRepair, LogError> {
        self.check_usable()?;
        let _cleaner = lock(&self.cleaner);
        let Some((segment, end_offset)) = self
            .cold_segment_from(target.base_offset)
            .filter(|(_, end)| *end == target.end_offset)
        else {
            return Err(not_replaceable(
                &self.dir,
                target,
                "it is no longer a cold segment of this log",
            ));
        };
        let headers = {
            let epochs = lock(&self.epochs);
            check_copy(batches, target, |offset| epochs.epoch_for_offset(offset))
                .map_err(|why| not_replaceable(&segment.log_path, target, &why))?
        };
        let indexes = self.write_repaired(&segment, batches, &headers)?;
        let token = self.flush_token()?;
        let unchanged = self
            .cold_segment_from(target.base_offset)
            .is_some_and(|(now, end)| Arc::ptr_eq(&now, &segment) && end == end_offset);
        if !unchanged {
            drop(token);
            self.discard_cleaned(&segment)?;
            return Err(not_replaceable(
                &segment.log_path,
                target,
                "the segment changed while its copy was written",
            ));
        }
        // Readers holding the old segment keep reading the old file through its handle,
        // pinned before the rename so that none of them opens the new file by name.
        let old = segment.log_file(&self.handles)?;
        segment.pin(Some(old));
        let bytes_before = segment.size_bytes();
        // Nothing is merged away, so no deletion is scheduled and no time is needed.
        self.latch(self.swap_cleaned(&segment, [], 0))?;
        let repaired = Arc::new(Segment::new(
            &self.dir,
            segment.base_offset,
            batches.len() as u64,
        ));
        repaired.set_indexes(indexes);
        for path in [
            &segment.log_path,
            &segment.index_path,
            &segment.time_index_path,
        ] {
            self.handles.forget(path);
        }
        self.segments_write()
            .insert(segment.base_offset, Arc::clone(&repaired));
        drop(token);
        Ok(SegmentRepair {
            path: segment.log_path.clone(),
            base_offset: segment.base_offset,
            end_offset,
            bytes_before,
            bytes_after: batches.len() as u64,
        })
    }

    /// Step 1: the `.cleaned` files of the copy, fsynced; returns its indexes.
    fn write_repaired(
        &self,
        segment: &Segment,
        batches: &[u8],
        headers: &[(u64, BatchHeader)],
    ) -> Result<Indexes, LogError> {
        let mut indexes = Indexes::new(&self.config);
        for (position, header) in headers {
            indexes.on_batch(
                segment.base_offset,
                header,
                *position,
                self.config.index_interval_bytes,
            );
        }
        // The final time-index entry, as on a roll.
        indexes.time_entry(segment.base_offset, true);
        let files = [
            (&segment.log_path, batches.to_vec()),
            (&segment.index_path, indexes.offset.encode()),
            (&segment.time_index_path, indexes.time.encode()),
        ];
        for (path, bytes) in files {
            let cleaned = with_suffix(path, CLEANED_SUFFIX);
            let file: Arc<dyn FileHandle> = self
                .fs
                .create(&cleaned)
                .map_err(|e| LogError::io("create", &cleaned, e))?;
            write_all_at(file.as_ref(), 0, &bytes)
                .map_err(|e| LogError::io("write", &cleaned, e))?;
            // Durable before a rename can make it the segment.
            file.sync()
                .map_err(|e| LogError::io("fsync", &cleaned, e))?;
        }
        Ok(indexes)
    }
}

/// The (position, header) of each batch of `batches` if it may replace `target`, else why
/// not. `epoch_at` is this log's epoch cache.
pub(crate) fn check_copy(
    batches: &[u8],
    target: ColdSegment,
    epoch_at: impl Fn(i64) -> Option<i32>,
) -> Result<Vec<(u64, BatchHeader)>, String> {
    let limits = ValidateLimits {
        batch_bytes_max: usize::MAX,
    };
    let mut out = Vec::new();
    let mut position = 0usize;
    let mut expected = target.base_offset;
    while position < batches.len() {
        let rest = &batches[position..];
        let header = BatchHeader::parse(rest)
            .map_err(|e| format!("the copy's batch at byte {position} is unreadable: {e}"))?;
        let size = header.size_bytes();
        let batch = rest
            .get(..size)
            .ok_or_else(|| format!("the copy ends inside a batch at byte {position}"))?;
        let header = validate(batch, &limits)
            .map_err(|e| format!("the copy's batch at byte {position}: {e}"))?;
        if header.base_offset < expected {
            return Err(format!(
                "the copy's batch at byte {position} starts at offset {}, before {expected}",
                header.base_offset
            ));
        }
        if position == 0 && header.base_offset != target.base_offset {
            return Err(format!(
                "the copy starts at offset {}, not at the segment's base offset {}",
                header.base_offset, target.base_offset
            ));
        }
        let epoch = epoch_at(header.base_offset);
        if epoch != Some(header.partition_leader_epoch) {
            return Err(format!(
                "the copy's batch at offset {} has leader epoch {}, this log's epoch cache \
                 says {epoch:?}",
                header.base_offset, header.partition_leader_epoch
            ));
        }
        expected = header.next_offset();
        out.push((position as u64, header));
        position += size;
    }
    if expected != target.end_offset {
        return Err(format!(
            "the copy ends at offset {expected}, the segment at {}",
            target.end_offset
        ));
    }
    Ok(out)
}

fn not_replaceable(path: &Path, target: ColdSegment, why: &str) -> LogError {
    LogError::CorruptSegment {
        path: path.to_path_buf(),
        position: 0,
        reason: format!(
            "cannot repair the segment of offsets {}..{} from a copy: {why}",
            target.base_offset, target.end_offset
        ),
    }
}
