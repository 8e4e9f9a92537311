//! Repairing a segment's cached indexes that decoded as plausible but name the wrong
//! batches (a damaged index file after a clean shutdown): the read path notices when a
//! checked entry does not match the `.log`, and the indexes are rebuilt from the `.log`.
//!
//! Why this is safe alongside appends, truncations, compaction and other readers:
//! - The `.log` is scanned with no lock held. The rebuild is dropped if the segment's size
//!   changed meanwhile (checked under the writer mutex, which every append holds). The
//!   bytes below an inactive segment's size do not change (a truncation changes them, but
//!   then also replaces the indexes).
//! - Every wholesale replacement of a segment's indexes (roll, truncation, recovery, a
//!   repair) bumps the segment's index generation under its index mutex. A repair
//!   installs its rebuild only if the generation is still the one whose indexes it found
//!   wrong, so it never overwrites indexes that a truncation or another repair installed
//!   meanwhile; a refused repair just retries its lookup with the newer indexes.
//! - Only the writer changes indexes in place, and only the active segment's (appends,
//!   and the final time entry of a roll), under the writer mutex. So the active
//!   segment's rebuild is installed under the writer mutex, and the writer's index files
//!   are rewritten to match, so that its later entries land after the rebuilt ones. The
//!   scan still runs without the writer mutex; it is held only for the size check and
//!   the index files' rewrite (at most `segment.index.bytes`).
//! - Readers copy an entry out of the indexes and check it against the batch header
//!   before trusting it, so a reader holding the old indexes' answer is never misled.

use std::sync::Arc;

use crate::error::LogError;
use crate::fs::write_all_at;
use crate::segment::Segment;

use super::Log;

impl Log {
    /// Rebuilds `segment`'s indexes by scanning it, if they are still the generation
    /// `seen` that a lookup found wrong (`reason`). Errors only on I/O.
    pub(super) fn repair_indexes(
        &self,
        segment: &Arc<Segment>,
        seen: u64,
        reason: &str,
    ) -> Result<(), LogError> {
        tracing::warn!(segment = %segment.log_path.display(), %reason, "index does not match the segment; rebuilding it");
        let end = segment.size_bytes();
        let rebuilt = segment.scan_indexes(&self.handles, &self.config, end)?;
        let mut writer = self.lock_writer();
        if segment.size_bytes() != end {
            // Batches were appended during the scan (perhaps before a roll made the
            // segment inactive): the rebuild misses them, and a time index or max
            // timestamp that misses batches would give wrong answers. The lookup falls
            // back to a scan from the start, and a later lookup repairs again.
            tracing::debug!(segment = %segment.log_path.display(), "segment grew during an index repair");
            return Ok(());
        }
        if !Arc::ptr_eq(&writer.active, segment) {
            // Inactive: its size stays `end` unless a truncation cuts it, and a truncation
            // replaces the indexes, which the generation check sees.
            drop(writer);
            segment.replace_indexes(seen, rebuilt, |_| Ok(()))?;
            return Ok(());
        }
        let files = self.active_files(&mut writer)?;
        let installed = segment.replace_indexes(seen, rebuilt, |ix| {
            let rewrites = [
                (&files.index, &segment.index_path, ix.offset.encode()),
                (
                    &files.time_index,
                    &segment.time_index_path,
                    ix.time.encode(),
                ),
            ];
            for (file, path, bytes) in rewrites {
                file.set_len(0)
                    .and_then(|()| write_all_at(file.as_ref(), 0, &bytes))
                    .map_err(|e| LogError::io("rewrite", path, e))?;
            }
            Ok(())
        });
        // A failed write leaves the writer's index files in an unknown state: failed, or
        // for want of space read-only until the resume rewrites them from rebuilt indexes.
        let tail = super::TailRepair {
            size_bytes: end,
            rebuild_indexes: true,
        };
        if self.latch_write(&mut writer, tail, installed)? {
            // The files now hold exactly the entries; the next append preallocates again.
            writer.indexes_preallocated = false;
        }
        Ok(())
    }
}
