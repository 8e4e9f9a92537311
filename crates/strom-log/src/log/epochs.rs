//! The log's leader-epoch cache (`leader_epoch.rs`): loaded and checked on open, extended
//! when a batch of a newer epoch is appended or a broker becomes leader, trimmed when the
//! log is cut or its start moves, and the answers replication asks of it.
//!
//! Ordering with the data (the invariant every step keeps): an entry is durable before
//! any batch of its epoch is written, so a log never holds a batch whose epoch the file
//! does not know, and the file never lacks an epoch the data has. The file may know
//! more: entries at or past the log end (a crash lost the batches, or a leader began an
//! epoch and wrote nothing) are dropped on open and on truncation; entries below the log
//! start are trimmed when it moves (and again on open). A truncation cuts the data
//! durably first and trims the file after. These writes hold the writer mutex across
//! their fsyncs (appends wait); they happen once per leadership change, not per batch.
//!
//! On open the file is checked against the batches it names (the batch holding each
//! entry's start must carry that epoch): a file that does not parse, is missing for a
//! non-empty log, or disagrees with the data is reported and rebuilt from the batch
//! headers, never used as it is.

use crate::error::LogError;
use crate::leader_epoch::{EpochEntry, LeaderEpochCache};
use crate::segment::read_header;

use super::{lock, Log, Writer};

/// Where one entry of the file stands against the data.
enum Check {
    Agrees,
    Disagrees(String),
}

impl Log {
    /// The newest leader epoch that wrote to (or began at the end of) this log.
    pub fn latest_epoch(&self) -> Option<i32> {
        lock(&self.epochs).latest_epoch()
    }

    /// The leader-epoch cache's entries, oldest first.
    pub fn epoch_entries(&self) -> Vec<EpochEntry> {
        lock(&self.epochs).entries().to_vec()
    }

    /// Kafka's `endOffsetForEpoch`: the largest epoch at or below `epoch` and the offset
    /// after its last record (the log end offset for the latest). `None` is Kafka's
    /// undefined answer (-1, -1).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<EpochEntry> {
        let epochs = lock(&self.epochs);
        // Read under the cache's lock: an append of a newer epoch assigns it (under this
        // lock) before the log end offset moves past its start.
        epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// A broker became leader of `epoch`: the epoch starts at the log end offset (Kafka's
    /// `maybeAssignEpochStartOffset`), durably before anything is written in it. Blocking.
    pub fn assign_leader_epoch(&self, epoch: i32) -> Result<(), LogError> {
        self.check_usable()?;
        let writer = self.lock_writer();
        let start = writer.next_offset;
        self.assign_locked(&writer, [(epoch, start)])
    }

    /// Before `headers` are written (writer mutex held): the newer epochs they carry enter
    /// the cache, durably. With `may_block` false nothing is written when that is needed:
    /// `Ok(false)` tells the caller to come back where it may block.
    pub(super) fn assign_batch_epochs(
        &self,
        writer: &Writer,
        headers: &[strom_records::BatchHeader],
        may_block: bool,
    ) -> Result<bool, LogError> {
        let latest = self.latest_epoch();
        let newer = headers
            .iter()
            .any(|h| h.partition_leader_epoch >= 0 && Some(h.partition_leader_epoch) > latest);
        if !newer {
            return Ok(true);
        }
        if !may_block {
            return Ok(false);
        }
        let starts = headers
            .iter()
            .map(|h| (h.partition_leader_epoch, h.base_offset));
        self.assign_locked(writer, starts)?;
        Ok(true)
    }

    /// Whether appending batches of `epoch` now would first have to write the cache.
    pub(super) fn needs_epoch(&self, epoch: i32) -> bool {
        epoch >= 0 && Some(epoch) > self.latest_epoch()
    }

    /// Assigns each (epoch, start) in order (the writer mutex held, so the log end cannot
    /// move meanwhile) and writes the file once if anything changed.
    fn assign_locked(
        &self,
        _writer: &Writer,
        starts: impl IntoIterator<Item = (i32, i64)>,
    ) -> Result<(), LogError> {
        let mut epochs = lock(&self.epochs);
        let mut next = epochs.clone();
        let mut changed = false;
        for (epoch, start) in starts {
            let before = next.entries().len();
            if next.assign(epoch, start) {
                changed = true;
                if next.entries().len() <= before {
                    tracing::warn!(dir = %self.dir.display(), epoch, start,
                        "leader epoch history rewritten: later entries removed");
                }
            }
        }
        if !changed {
            return Ok(());
        }
        self.latch(next.write(self.fs.as_ref(), &self.dir))?;
        *epochs = next;
        Ok(())
    }

    /// After the data was cut at `end_offset` (durably): entries from there on go.
    pub(super) fn trim_epochs_end(&self, end_offset: i64) -> Result<(), LogError> {
        let mut epochs = lock(&self.epochs);
        let mut next = epochs.clone();
        if next.truncate_from_end(end_offset) {
            self.latch(next.write(self.fs.as_ref(), &self.dir))?;
            *epochs = next;
        }
        Ok(())
    }

    /// After the log was emptied to start over: no epoch is known any more.
    pub(super) fn clear_epochs(&self) -> Result<(), LogError> {
        let mut epochs = lock(&self.epochs);
        let next = LeaderEpochCache::default();
        self.latch(next.write(self.fs.as_ref(), &self.dir))?;
        *epochs = next;
        Ok(())
    }

    /// After the log start moved to `start_offset` (durably): entries before it go.
    pub(super) fn trim_epochs_start(&self, start_offset: i64) -> Result<(), LogError> {
        let mut epochs = lock(&self.epochs);
        let mut next = epochs.clone();
        if next.truncate_from_start(start_offset) {
            self.latch(next.write(self.fs.as_ref(), &self.dir))?;
            *epochs = next;
        }
        Ok(())
    }

    /// Loads the cache on open: read, trimmed to the log's range, checked against the
    /// batches, rebuilt from the batch headers if missing (for a log with data), garbage
    /// or wrong. Returns what was wrong, if anything (also logged).
    pub(super) fn load_epochs(&self) -> Result<Option<String>, LogError> {
        let result = self.load_epochs_inner();
        // The check read through the shared handle cache: an idle log keeps no file open.
        for segment in self.segments_read().values() {
            self.handles.forget(&segment.log_path);
        }
        result
    }

    fn load_epochs_inner(&self) -> Result<Option<String>, LogError> {
        let start = self.log_start_offset();
        let end = self.log_end_offset();
        let problem = match LeaderEpochCache::read(self.fs.as_ref(), &self.dir)? {
            None if start == end => None,
            None => Some("the file is missing".to_string()),
            Some(Err(reason)) => Some(format!("the file is unreadable: {reason}")),
            Some(Ok(mut cache)) => {
                let mut trimmed = cache.truncate_from_end(end);
                trimmed |= cache.truncate_from_start(start);
                match self.check_epochs(&cache)? {
                    Check::Agrees => {
                        if trimmed {
                            cache.write(self.fs.as_ref(), &self.dir)?;
                        }
                        *lock(&self.epochs) = cache;
                        None
                    }
                    Check::Disagrees(reason) => Some(reason),
                }
            }
        };
        let Some(reason) = problem else {
            return Ok(None);
        };
        tracing::warn!(dir = %self.dir.display(), %reason,
            "leader-epoch-checkpoint not usable; rebuilding it from the batch headers");
        let rebuilt = self.rebuild_epochs()?;
        rebuilt.write(self.fs.as_ref(), &self.dir)?;
        *lock(&self.epochs) = rebuilt;
        Ok(Some(reason))
    }

    /// Every entry must match the batches: the batch at its start (below the log end)
    /// begins there (the first entry may start inside one, at the log start) and carries
    /// its epoch, and the batch that ends where the next entry starts (or at the log end,
    /// for the latest) carries it too. With epochs rising through the log, that leaves no
    /// room for an entry that is missing, shifted or invented.
    fn check_epochs(&self, cache: &LeaderEpochCache) -> Result<Check, LogError> {
        let start = self.log_start_offset();
        let end = self.log_end_offset();
        let entries = cache.entries();
        for (index, entry) in entries.iter().enumerate() {
            if entry.start_offset < end {
                let at = self.header_holding(entry.start_offset)?;
                let begins = at.as_ref().is_some_and(|h| {
                    h.base_offset == entry.start_offset
                        || (index == 0 && entry.start_offset == start)
                });
                let epoch = at.map(|h| h.partition_leader_epoch);
                if !begins || epoch != Some(entry.epoch) {
                    return Ok(Check::Disagrees(format!(
                        "epoch {} starts at offset {}, where the log holds a batch of epoch {:?}",
                        entry.epoch, entry.start_offset, epoch
                    )));
                }
            }
            let until = entries
                .get(index + 1)
                .map_or(end, |next| next.start_offset)
                .min(end);
            if until > entry.start_offset.max(start) {
                let last = self.header_holding(until - 1)?;
                let epoch = last.map(|h| h.partition_leader_epoch);
                if epoch != Some(entry.epoch) {
                    return Ok(Check::Disagrees(format!(
                        "epoch {} runs to offset {until}, where the log holds a batch of epoch {:?}",
                        entry.epoch, epoch
                    )));
                }
            }
        }
        if entries.is_empty() && end > start {
            return Ok(Check::Disagrees("no epoch for the data".into()));
        }
        Ok(Check::Agrees)
    }

    /// The header of the batch holding `offset`.
    fn header_holding(&self, offset: i64) -> Result<Option<strom_records::BatchHeader>, LogError> {
        let mut found = None;
        self.for_each_batch_header_until(offset, |header| {
            found = Some(*header);
            false
        })?;
        Ok(found.filter(|h| h.base_offset <= offset && offset <= h.last_offset()))
    }

    /// The cache as the batch headers say it: each batch whose epoch is newer than the
    /// last starts an entry. Reads every header from the log start (one small read each).
    fn rebuild_epochs(&self) -> Result<LeaderEpochCache, LogError> {
        let mut cache = LeaderEpochCache::default();
        let start = self.log_start_offset();
        self.for_each_batch_header_until(start, |header| {
            let epoch = header.partition_leader_epoch;
            if epoch >= 0 && Some(epoch) > cache.latest_epoch() {
                cache.assign(epoch, header.base_offset.max(start));
            }
            true
        })?;
        Ok(cache)
    }

    /// Calls `f` with each batch header from the one holding `offset`, while it returns
    /// true.
    fn for_each_batch_header_until(
        &self,
        offset: i64,
        mut f: impl FnMut(&strom_records::BatchHeader) -> bool,
    ) -> Result<(), LogError> {
        let end_offset = self.log_end_offset();
        for segment in self.segments_from(offset) {
            let file = segment.log_file(&self.handles)?;
            let end = segment.size_bytes();
            let from = offset.max(segment.base_offset);
            let Some((mut position, _)) = self.find_batch(&segment, file.as_ref(), from, end)?
            else {
                continue;
            };
            while let Some(header) = read_header(file.as_ref(), &segment.log_path, position, end)? {
                if header.base_offset >= end_offset || !f(&header) {
                    return Ok(());
                }
                position += header.size_bytes() as u64;
            }
        }
        Ok(())
    }
}
