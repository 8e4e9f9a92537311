//! The raft log and vote on disk: checksummed entry frames in segment files, plus small
//! atomic files for the vote, the purge point and the commit hint.
//!
//! Synchronous and single-owner; `log_store` wraps it for openraft. Every non-purged entry is
//! also kept in memory (snapshots bound how many), so reads never touch the disk.
//!
//! Durability order, the reason for each fsync:
//! - append: frames are written then `sync_data` before the caller acknowledges them; a newly
//!   created segment's directory entry is synced before its first frame is acknowledged.
//! - vote: written atomically and durably before `save_vote` returns (Raft safety).
//! - truncate: the cut and the removal of later segments are synced before returning, so
//!   entries removed for a conflicting leader can never reappear behind newer ones.
//! - purge: the purge point is made durable before any segment file is removed.
//! - committed: a hint only, written atomically without fsync; a stale value is safe.
//!
//! Recovery: only the last segment may end in a torn frame (appends never span an fsync
//! boundary across segments); it is cut at the first incomplete or mismatching frame. A bad
//! frame anywhere else is corruption and fails the open.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};

use crate::entry_codec::{decode_entry, encode_entry, FrameError};
use crate::fsutil::{invalid_data, read_atomic, sync_dir, write_atomic};
use crate::types::{Entry, LogId, Vote};

const SEGMENT_SUFFIX: &str = ".seg";
const VOTE_FILE: &str = "vote";
const PURGED_FILE: &str = "purged";
const COMMITTED_FILE: &str = "committed";

/// Limits of the on-disk log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment is rolled once it holds at least this many bytes.
    pub segment_bytes: u64,
    /// Largest accepted entry frame body; larger frames on disk count as corruption.
    pub entry_bytes_max: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 16 * 1024 * 1024,
            entry_bytes_max: 8 * 1024 * 1024,
        }
    }
}

/// Errors of the durable log. After an I/O error the log refuses further writes.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("raft log I/O error in {dir}: {source}")]
    Io { dir: PathBuf, source: io::Error },
    #[error("raft log in {dir} is corrupt: {detail}")]
    Corrupt { dir: PathBuf, detail: String },
    #[error("raft log in {dir} failed earlier and accepts no more writes")]
    Failed { dir: PathBuf },
    #[error("entry {got} does not follow the last log index (expected {expected})")]
    NotContiguous { expected: u64, got: u64 },
}

/// Where an entry's frame starts on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Location {
    segment_base: u64,
    offset: u64,
}

/// What opening found, for logs and the dump tool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Bytes cut from the end of the last segment (a torn tail).
    pub torn_bytes_cut: u64,
    pub segments: usize,
}

#[derive(Debug)]
pub struct DurableLog {
    dir: PathBuf,
    config: LogConfig,
    entries: BTreeMap<u64, Entry>,
    locations: BTreeMap<u64, Location>,
    /// Segment base index -> current length in bytes.
    segments: BTreeMap<u64, u64>,
    active: Option<(u64, File)>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    failed: bool,
}

impl DurableLog {
    /// Opens (creating if needed) the log in `dir`, cutting a torn tail.
    pub fn open(dir: &Path, config: LogConfig) -> Result<(DurableLog, OpenReport), LogError> {
        Self::open_with(dir, config, true)
    }

    /// Reads the log without changing any file (for inspection while a server may run).
    pub fn open_read_only(
        dir: &Path,
        config: LogConfig,
    ) -> Result<(DurableLog, OpenReport), LogError> {
        Self::open_with(dir, config, false)
    }

    fn open_with(
        dir: &Path,
        config: LogConfig,
        repair: bool,
    ) -> Result<(DurableLog, OpenReport), LogError> {
        if repair {
            fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        let mut log = DurableLog {
            dir: dir.to_path_buf(),
            config,
            entries: BTreeMap::new(),
            locations: BTreeMap::new(),
            segments: BTreeMap::new(),
            active: None,
            last_purged: read_json(dir, PURGED_FILE)?,
            vote: read_json(dir, VOTE_FILE)?,
            committed: read_json(dir, COMMITTED_FILE).unwrap_or_else(|e| {
                tracing::warn!("ignoring unreadable commit hint: {e}");
                None
            }),
            failed: false,
        };
        let report = log.load_segments(repair)?;
        log.committed = log.checked_commit_hint();
        if repair {
            let result = log
                .remove_purged_segments()
                .and_then(|()| log.reopen_active());
            log.latch(result)?;
        }
        Ok((log, report))
    }

    /// The commit hint is written without fsync, so after a crash it may name an entry that
    /// did not survive; such a hint is dropped rather than trusted.
    fn checked_commit_hint(&self) -> Option<LogId> {
        let hint = self.committed?;
        let known = match self.entries.get(&hint.index) {
            Some(entry) => entry.log_id == hint,
            None => self.last_purged.is_some_and(|p| hint.index <= p.index),
        };
        if !known {
            tracing::warn!("ignoring commit hint {hint}: the log does not hold that entry");
        }
        known.then_some(hint)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn vote(&self) -> Option<Vote> {
        self.vote
    }

    pub fn committed(&self) -> Option<LogId> {
        self.committed
    }

    pub fn last_purged(&self) -> Option<LogId> {
        self.last_purged
    }

    /// The id of the last entry, or of the last purged one when no entry is left.
    pub fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .values()
            .next_back()
            .map(|entry| entry.log_id)
            .or(self.last_purged)
    }

    pub fn entries<R: RangeBounds<u64>>(&self, range: R) -> Vec<Entry> {
        self.entries.range(range).map(|(_, e)| e.clone()).collect()
    }

    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    fn next_index(&self) -> u64 {
        self.last_log_id().map_or(0, |id| id.index + 1)
    }

    pub fn save_vote(&mut self, vote: &Vote) -> Result<(), LogError> {
        self.check_writable()?;
        // fsync (inside write_atomic): a vote is acknowledged only once durable.
        let result = write_json(&self.dir, VOTE_FILE, vote, true);
        self.latch(result)?;
        self.vote = Some(*vote);
        Ok(())
    }

    pub fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), LogError> {
        self.check_writable()?;
        // No fsync: the commit point is a hint for faster start-up; losing it is safe.
        let result = write_json(&self.dir, COMMITTED_FILE, &committed, false);
        self.latch(result)?;
        self.committed = committed;
        Ok(())
    }

    /// Appends `entries` durably: returns only after they are fsynced.
    pub fn append(&mut self, entries: Vec<Entry>) -> Result<(), LogError> {
        self.check_writable()?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let mut buf = Vec::new();
        let mut frame_ends = Vec::with_capacity(entries.len());
        for (expected, entry) in (self.next_index()..).zip(entries.iter()) {
            if entry.log_id.index != expected {
                return Err(LogError::NotContiguous {
                    expected,
                    got: entry.log_id.index,
                });
            }
            encode_entry(entry, &mut buf).map_err(|e| self.corrupt(e.to_string()))?;
            frame_ends.push(buf.len() as u64);
        }
        let result = self.write_frames(first.log_id.index, &buf);
        let (segment_base, start) = self.latch(result)?;
        let mut offset = start;
        for (entry, end) in entries.into_iter().zip(frame_ends) {
            let location = Location {
                segment_base,
                offset,
            };
            offset = start + end;
            self.locations.insert(entry.log_id.index, location);
            self.entries.insert(entry.log_id.index, entry);
        }
        Ok(())
    }

    /// Writes `buf` to the active segment (rolling first if it is full) and fsyncs it.
    /// Returns the segment base and the offset where `buf` starts.
    fn write_frames(&mut self, first_index: u64, buf: &[u8]) -> io::Result<(u64, u64)> {
        let needs_roll = match &self.active {
            None => true,
            Some((base, _)) => {
                self.segments.get(base).copied().unwrap_or(0) >= self.config.segment_bytes
            }
        };
        if needs_roll {
            let path = segment_path(&self.dir, first_index);
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            // fsync: the new segment's directory entry must be durable before any entry in it
            // is acknowledged, or recovery could miss a whole acknowledged segment.
            sync_dir(&self.dir)?;
            self.segments.insert(first_index, 0);
            self.active = Some((first_index, file));
        }
        let (base, file) = self
            .active
            .as_mut()
            .ok_or_else(|| io::Error::other("no active segment"))?;
        let base = *base;
        let start = self.segments.get(&base).copied().unwrap_or(0);
        file.write_all(buf)?;
        // fsync: appended entries are acknowledged (LogFlushed) only after this returns.
        file.sync_data()?;
        self.segments.insert(base, start + buf.len() as u64);
        Ok((base, start))
    }

    /// Removes every entry with index >= `index`, durably.
    pub fn truncate(&mut self, index: u64) -> Result<(), LogError> {
        self.check_writable()?;
        let Some(&location) = self.locations.get(&index) else {
            return Ok(());
        };
        let result = self.cut_segments(location);
        self.latch(result)?;
        self.entries.split_off(&index);
        self.locations.split_off(&index);
        Ok(())
    }

    fn cut_segments(&mut self, location: Location) -> io::Result<()> {
        self.active = None;
        let cut_base = if location.offset == 0 {
            location.segment_base
        } else {
            location.segment_base + 1
        };
        let doomed: Vec<u64> = self.segments.range(cut_base..).map(|(b, _)| *b).collect();
        for base in doomed {
            fs::remove_file(segment_path(&self.dir, base))?;
            self.segments.remove(&base);
        }
        if location.offset > 0 {
            let file = OpenOptions::new()
                .write(true)
                .open(segment_path(&self.dir, location.segment_base))?;
            file.set_len(location.offset)?;
            // fsync: the cut must be durable before new entries for the same indexes are
            // acknowledged, or old entries could reappear after a crash.
            file.sync_all()?;
            self.segments.insert(location.segment_base, location.offset);
        }
        // fsync: removed segments must stay removed for the same reason.
        sync_dir(&self.dir)?;
        self.reopen_active()
    }

    /// Drops every entry with index <= `log_id.index`; the purge point is durable first.
    pub fn purge(&mut self, log_id: LogId) -> Result<(), LogError> {
        self.check_writable()?;
        if self.last_purged.is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        // fsync (inside write_atomic): the purge point must be durable before files go, so a
        // crash never leaves a hole that start-up would take for the beginning of the log.
        let result = write_json(&self.dir, PURGED_FILE, &log_id, true);
        self.latch(result)?;
        self.last_purged = Some(log_id);
        self.entries = self.entries.split_off(&(log_id.index + 1));
        self.locations = self.locations.split_off(&(log_id.index + 1));
        let result = self.remove_purged_segments();
        self.latch(result)
    }

    /// Deletes segment files all of whose entries are purged.
    fn remove_purged_segments(&mut self) -> io::Result<()> {
        let Some(purged) = self.last_purged else {
            return Ok(());
        };
        let bases: Vec<u64> = self.segments.keys().copied().collect();
        let mut removed = false;
        for (i, base) in bases.iter().enumerate() {
            let last_index = match bases.get(i + 1) {
                Some(next) => next.saturating_sub(1),
                None => match self.entries.keys().next_back() {
                    Some(last) if *last >= *base => *last,
                    _ => purged.index,
                },
            };
            if last_index > purged.index {
                break;
            }
            if self.active.as_ref().is_some_and(|(b, _)| b == base) {
                self.active = None;
            }
            fs::remove_file(segment_path(&self.dir, *base))?;
            self.segments.remove(base);
            removed = true;
        }
        if removed {
            // fsync: keeps the directory consistent with the durable purge point.
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn reopen_active(&mut self) -> io::Result<()> {
        self.active = match self.segments.keys().next_back() {
            Some(base) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(segment_path(&self.dir, *base))?;
                Some((*base, file))
            }
            None => None,
        };
        Ok(())
    }

    fn load_segments(&mut self, repair: bool) -> Result<OpenReport, LogError> {
        let bases = list_segments(&self.dir)?;
        let mut report = OpenReport {
            segments: bases.len(),
            ..OpenReport::default()
        };
        let mut next: Option<u64> = None;
        for (i, base) in bases.iter().enumerate() {
            let is_last = i + 1 == bases.len();
            if let Some(expected) = next {
                let behind_purge = self.last_purged.is_some_and(|p| expected <= p.index + 1);
                if *base != expected && !behind_purge {
                    return Err(self.corrupt(format!(
                        "segment {base} does not follow index {}",
                        expected.saturating_sub(1)
                    )));
                }
            }
            let (valid_len, file_len, last) = self.load_segment(*base, is_last)?;
            if valid_len < file_len {
                report.torn_bytes_cut = file_len - valid_len;
                tracing::warn!(
                    "raft log {}: cutting {} bytes of torn tail in segment {base}",
                    self.dir.display(),
                    file_len - valid_len
                );
                if repair {
                    cut_file(&segment_path(&self.dir, *base), valid_len)
                        .map_err(|e| io_err(&self.dir, e))?;
                }
            }
            self.segments.insert(*base, valid_len);
            next = Some(last.map_or(*base, |l| l + 1));
        }
        Ok(report)
    }

    /// Loads one segment; returns (valid bytes, file bytes, last index).
    fn load_segment(
        &mut self,
        base: u64,
        is_last: bool,
    ) -> Result<(u64, u64, Option<u64>), LogError> {
        let path = segment_path(&self.dir, base);
        let bytes = fs::read(&path).map_err(|e| io_err(&self.dir, e))?;
        let mut offset = 0usize;
        let mut expected = base;
        let mut last = None;
        while offset < bytes.len() {
            let rest = bytes.get(offset..).unwrap_or_default();
            let decoded = decode_entry(rest, self.config.entry_bytes_max).and_then(|(e, len)| {
                if e.log_id.index == expected {
                    Ok((e, len))
                } else {
                    Err(FrameError::Body(format!(
                        "index {} where {expected} was expected",
                        e.log_id.index
                    )))
                }
            });
            match decoded {
                Ok((entry, len)) => {
                    let index = entry.log_id.index;
                    if self.last_purged.is_none_or(|p| index > p.index) {
                        let location = Location {
                            segment_base: base,
                            offset: offset as u64,
                        };
                        self.locations.insert(index, location);
                        self.entries.insert(index, entry);
                    }
                    last = Some(index);
                    expected += 1;
                    offset += len;
                }
                Err(e) if is_last => {
                    tracing::debug!("torn tail at {} offset {offset}: {e}", path.display());
                    break;
                }
                Err(e) => {
                    return Err(self.corrupt(format!("{} at offset {offset}: {e}", path.display())))
                }
            }
        }
        Ok((offset as u64, bytes.len() as u64, last))
    }

    fn check_writable(&self) -> Result<(), LogError> {
        if self.failed {
            return Err(LogError::Failed {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Latches the log into the failed state on an I/O error: after a failed fsync the page
    /// cache may no longer match the disk, so retrying could acknowledge lost data.
    fn latch<T>(&mut self, result: io::Result<T>) -> Result<T, LogError> {
        result.map_err(|e| {
            self.failed = true;
            tracing::error!("raft log {} failed: {e}", self.dir.display());
            io_err(&self.dir, e)
        })
    }

    fn corrupt(&self, detail: String) -> LogError {
        LogError::Corrupt {
            dir: self.dir.clone(),
            detail,
        }
    }
}

fn cut_file(path: &Path, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    // fsync: the cut tail must not come back, or it could be read after newer appends.
    file.sync_all()
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{SEGMENT_SUFFIX}"))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, LogError> {
    let read_dir = match fs::read_dir(dir) {
        Ok(read_dir) => read_dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir, e)),
    };
    let mut bases = Vec::new();
    for item in read_dir {
        let name = item.map_err(|e| io_err(dir, e))?.file_name();
        let name = name.to_string_lossy();
        if let Some(base) = name
            .strip_suffix(SEGMENT_SUFFIX)
            .and_then(|stem| stem.parse::<u64>().ok())
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

fn read_json<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
) -> Result<Option<T>, LogError> {
    let Some(body) = read_atomic(&dir.join(name)).map_err(|e| io_err(dir, e))? else {
        return Ok(None);
    };
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| io_err(dir, invalid_data(format!("{name}: {e}"))))
}

fn write_json<T: serde::Serialize>(
    dir: &Path,
    name: &str,
    value: &T,
    durable: bool,
) -> io::Result<()> {
    let body = serde_json::to_vec(value).map_err(io::Error::other)?;
    write_atomic(&dir.join(name), &body, durable)
}

fn io_err(dir: &Path, source: io::Error) -> LogError {
    LogError::Io {
        dir: dir.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::types::Payload;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            log_id: log_id(index, term),
            payload: EntryPayload::Normal(Payload(format!("entry-{index}-{term}").into_bytes())),
        }
    }

    fn log_id(index: u64, term: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn small() -> LogConfig {
        LogConfig {
            segment_bytes: 200,
            entry_bytes_max: 1024,
        }
    }

    fn open(dir: &Path) -> DurableLog {
        DurableLog::open(dir, small()).unwrap().0
    }

    fn indexes(log: &DurableLog) -> Vec<(u64, u64)> {
        log.entries(..)
            .iter()
            .map(|e| (e.log_id.index, e.log_id.leader_id.term))
            .collect()
    }

    fn append_range(log: &mut DurableLog, range: std::ops::Range<u64>, term: u64) {
        log.append(range.map(|i| entry(i, term)).collect()).unwrap();
    }

    /// One append per entry, so small segments roll.
    fn append_each(log: &mut DurableLog, range: std::ops::Range<u64>, term: u64) {
        for i in range {
            append_range(log, i..i + 1, term);
        }
    }

    #[test]
    fn append_reads_back_and_survives_reopen_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        assert_eq!(log.last_log_id(), None);
        append_each(&mut log, 0..20, 1);
        assert_eq!(log.entries(5..8).len(), 3);
        assert_eq!(log.last_log_id(), Some(log_id(19, 1)));
        drop(log);
        let (log, report) = DurableLog::open(dir.path(), small()).unwrap();
        assert!(report.segments > 1, "small segments roll: {report:?}");
        assert_eq!(report.torn_bytes_cut, 0);
        assert_eq!(indexes(&log), (0..20).map(|i| (i, 1)).collect::<Vec<_>>());
        assert_eq!(log.entries(3..4)[0].payload, entry(3, 1).payload);
    }

    #[test]
    fn append_rejects_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append_range(&mut log, 0..3, 1);
        let err = log.append(vec![entry(5, 1)]).unwrap_err();
        assert!(matches!(
            err,
            LogError::NotContiguous {
                expected: 3,
                got: 5
            }
        ));
        let err = log.append(vec![entry(3, 1), entry(5, 1)]).unwrap_err();
        assert!(matches!(
            err,
            LogError::NotContiguous {
                expected: 4,
                got: 5
            }
        ));
        assert_eq!(log.last_log_id(), Some(log_id(2, 1)));
    }

    #[test]
    fn truncate_then_append_replaces_entries_durably() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append_each(&mut log, 0..12, 1);
        log.truncate(5).unwrap();
        assert_eq!(log.last_log_id(), Some(log_id(4, 1)));
        append_range(&mut log, 5..9, 2);
        drop(log);
        let mut log = open(dir.path());
        let mut expected: Vec<_> = (0..5).map(|i| (i, 1)).collect();
        expected.extend((5..9).map(|i| (i, 2)));
        assert_eq!(indexes(&log), expected);
        // Truncating at a segment boundary and at index 0 both work.
        log.truncate(0).unwrap();
        assert_eq!(log.last_log_id(), None);
        append_range(&mut log, 0..2, 3);
        drop(log);
        assert_eq!(indexes(&open(dir.path())), vec![(0, 3), (1, 3)]);
    }

    #[test]
    fn purge_drops_entries_and_files_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append_each(&mut log, 0..20, 1);
        let segments_before = list_segments(dir.path()).unwrap().len();
        log.purge(log_id(12, 1)).unwrap();
        assert_eq!(log.last_purged(), Some(log_id(12, 1)));
        assert_eq!(log.entries(..).first().map(|e| e.log_id.index), Some(13));
        assert!(list_segments(dir.path()).unwrap().len() < segments_before);
        // Purging backwards is a no-op.
        log.purge(log_id(3, 1)).unwrap();
        drop(log);
        let log = open(dir.path());
        assert_eq!(log.last_purged(), Some(log_id(12, 1)));
        assert_eq!(indexes(&log), (13..20).map(|i| (i, 1)).collect::<Vec<_>>());
    }

    #[test]
    fn purge_past_the_end_then_append_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append_range(&mut log, 0..3, 1);
        // A follower installing a snapshot newer than its whole log.
        log.purge(log_id(50, 4)).unwrap();
        assert_eq!(log.last_log_id(), Some(log_id(50, 4)));
        assert!(log.entries(..).is_empty());
        append_range(&mut log, 51..54, 4);
        drop(log);
        let log = open(dir.path());
        assert_eq!(log.last_log_id(), Some(log_id(53, 4)));
        assert_eq!(indexes(&log), vec![(51, 4), (52, 4), (53, 4)]);
    }

    #[test]
    fn vote_and_committed_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        assert_eq!(log.vote(), None);
        log.save_vote(&Vote::new(3, 2)).unwrap();
        log.save_vote(&Vote::new_committed(4, 1)).unwrap();
        append_range(&mut log, 0..8, 4);
        log.save_committed(Some(log_id(7, 4))).unwrap();
        drop(log);
        let log = open(dir.path());
        assert_eq!(log.vote(), Some(Vote::new_committed(4, 1)));
        assert_eq!(log.committed(), Some(log_id(7, 4)));
    }

    #[test]
    fn commit_hint_beyond_the_surviving_log_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append_range(&mut log, 0..3, 1);
        log.save_committed(Some(log_id(2, 1))).unwrap();
        drop(log);
        assert_eq!(open(dir.path()).committed(), Some(log_id(2, 1)));
        let mut log = open(dir.path());
        log.save_committed(Some(log_id(9, 1))).unwrap();
        drop(log);
        assert_eq!(open(dir.path()).committed(), None);
        let mut log = open(dir.path());
        log.save_committed(Some(log_id(1, 7))).unwrap();
        drop(log);
        assert_eq!(open(dir.path()).committed(), None, "same index, other term");
    }

    #[test]
    fn torn_tail_is_cut_at_every_length() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = DurableLog::open(dir.path(), LogConfig::default())
            .unwrap()
            .0;
        append_range(&mut log, 0..3, 1);
        let before = fs::read(segment_path(dir.path(), 0)).unwrap();
        append_range(&mut log, 3..4, 1);
        drop(log);
        let full = fs::read(segment_path(dir.path(), 0)).unwrap();
        for cut in before.len()..full.len() {
            fs::write(segment_path(dir.path(), 0), &full[..cut]).unwrap();
            let (mut log, report) = DurableLog::open(dir.path(), LogConfig::default()).unwrap();
            assert_eq!(report.torn_bytes_cut, (cut - before.len()) as u64);
            assert_eq!(log.last_log_id(), Some(log_id(2, 1)), "cut at {cut}");
            // The log accepts the lost entry again, and it then reads back intact.
            append_range(&mut log, 3..4, 2);
            drop(log);
            let log = open_default(dir.path());
            assert_eq!(indexes(&log), vec![(0, 1), (1, 1), (2, 1), (3, 2)]);
            fs::write(segment_path(dir.path(), 0), &full).unwrap();
        }
    }

    fn open_default(dir: &Path) -> DurableLog {
        DurableLog::open(dir, LogConfig::default()).unwrap().0
    }

    #[test]
    fn garbage_tail_and_flipped_bit_in_last_frame_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_default(dir.path());
        append_range(&mut log, 0..3, 1);
        drop(log);
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(indexes(&open_default(dir.path())), vec![(0, 1), (1, 1)]);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0xff; 13]);
        fs::write(&path, &bytes).unwrap();
        assert_eq!(indexes(&open_default(dir.path())), vec![(0, 1), (1, 1)]);
    }

    #[test]
    fn corruption_before_the_last_segment_fails_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append_each(&mut log, 0..20, 1);
        drop(log);
        let first = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&first).unwrap();
        bytes[10] ^= 0x10;
        fs::write(&first, &bytes).unwrap();
        let err = DurableLog::open(dir.path(), small()).unwrap_err();
        assert!(matches!(err, LogError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn read_only_open_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_default(dir.path());
        append_range(&mut log, 0..2, 1);
        drop(log);
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[1, 2, 3]);
        fs::write(&path, &bytes).unwrap();
        let (log, report) = DurableLog::open_read_only(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(report.torn_bytes_cut, 3);
        assert_eq!(log.entry_count(), 2);
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }
}

#[cfg(test)]
mod model_tests {
    use openraft::{CommittedLeaderId, EntryPayload};
    use proptest::prelude::*;

    use super::*;
    use crate::types::Payload;

    #[derive(Debug, Clone)]
    enum Op {
        Append(u8),
        Truncate(u8),
        Purge(u8),
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u8..6).prop_map(Op::Append),
            1 => any::<u8>().prop_map(Op::Truncate),
            1 => any::<u8>().prop_map(Op::Purge),
            1 => Just(Op::Reopen),
        ]
    }

    /// The model: a purge point and a `Vec` of (index, term) after it.
    #[derive(Default)]
    struct Model {
        purged: Option<(u64, u64)>,
        entries: Vec<(u64, u64)>,
    }

    impl Model {
        fn next_index(&self) -> u64 {
            self.entries
                .last()
                .map(|e| e.0 + 1)
                .or(self.purged.map(|p| p.0 + 1))
                .unwrap_or(0)
        }
    }

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Payload(vec![index as u8; (index % 50) as usize])),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn log_matches_a_vec_model(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { segment_bytes: 256, entry_bytes_max: 4096 };
            let mut log = DurableLog::open(dir.path(), config).unwrap().0;
            let mut model = Model::default();
            let mut term = 1;
            for op in ops {
                match op {
                    Op::Append(n) => {
                        let start = model.next_index();
                        let batch: Vec<Entry> = (start..start + u64::from(n)).map(|i| entry(i, term)).collect();
                        log.append(batch).unwrap();
                        model.entries.extend((start..start + u64::from(n)).map(|i| (i, term)));
                    }
                    Op::Truncate(at) => {
                        if let Some(&(index, _)) = model.entries.get(usize::from(at) % (model.entries.len() + 1)) {
                            log.truncate(index).unwrap();
                            model.entries.retain(|e| e.0 < index);
                            term += 1;
                        }
                    }
                    Op::Purge(at) => {
                        // Sometimes past the end, as when a follower installs a snapshot.
                        let index = model.purged.map_or(0, |p| p.0) + u64::from(at % 16);
                        let purge_term = model.entries.iter().find(|e| e.0 == index).map_or(term, |e| e.1);
                        if model.purged.is_none_or(|p| index > p.0) {
                            log.purge(LogId::new(CommittedLeaderId::new(purge_term, 1), index)).unwrap();
                            model.purged = Some((index, purge_term));
                            model.entries.retain(|e| e.0 > index);
                        }
                    }
                    Op::Reopen => {
                        drop(log);
                        log = DurableLog::open(dir.path(), config).unwrap().0;
                    }
                }
                let got: Vec<(u64, u64)> = log.entries(..).iter().map(|e| (e.log_id.index, e.log_id.leader_id.term)).collect();
                prop_assert_eq!(&got, &model.entries);
                prop_assert_eq!(log.last_purged().map(|p| (p.index, p.leader_id.term)), model.purged);
            }
            drop(log);
            let log = DurableLog::open(dir.path(), config).unwrap().0;
            let got: Vec<(u64, u64)> = log.entries(..).iter().map(|e| (e.log_id.index, e.log_id.leader_id.term)).collect();
            prop_assert_eq!(got, model.entries);
        }
    }
}
