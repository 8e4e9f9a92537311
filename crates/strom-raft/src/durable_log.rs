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
//! Failures: a *write* that finds the disk (or quota) full (`ENOSPC`, `EDQUOT`) leaves the
//! durable state known: an append's partial frames past the last fsynced byte are cut at
//! once, durably (the last frame before them is read back and checked), a vote or purge
//! point was not yet renamed into place, and nothing of it was acknowledged. Such a write
//! answers `DiskFull` and the log stays writable, so the caller may try it again once space
//! returns (`log_store` waits and retries, because openraft stops the node on any storage
//! error). A failed fsync is different, whatever its errno: the kernel may have dropped the
//! dirty pages and reports that only once, so the log refuses all further writes (`Failed`)
//! and never retries it; so does any other I/O error, or a cut that cannot be made.
//!
//! Recovery (`recovery.rs`): only the last segment may end in a torn frame (appends never
//! span an fsync boundary across segments), and only above every committed entry with no
//! valid frame after it; it is cut. Any other bad frame, a vote or purge file that fails its
//! checksum, or a commit hint naming an entry the log lacks is corruption: `open` fails with
//! [`LogError::Damaged`] naming the file, byte and entry, and changes nothing.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};

use crate::entry_codec::{decode_entry, encode_entry};
use crate::fsutil::{fsync_failed, is_space_error, read_atomic, sync_dir, write_atomic};
use crate::recovery::{classify, recovery_advice, scan_segment, Floor};
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

/// Errors of the durable log. After an I/O error the log refuses further writes, except
/// after a write that found the disk full (`DiskFull`), which may be tried again.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("raft log I/O error in {dir}: {source}")]
    Io { dir: PathBuf, source: io::Error },
    #[error("raft log in {dir}: the disk is full ({source}); nothing was written, and the write can be tried again once space is freed")]
    DiskFull { dir: PathBuf, source: io::Error },
    #[error("raft log in {dir} is corrupt: {detail}")]
    Corrupt { dir: PathBuf, detail: String },
    /// A file of the log is damaged: start-up stops rather than guess (see `recovery.rs`).
    #[error(
        "metadata log file {}{} is damaged: {reason}. {}",
        path.display(),
        position(*offset, *index),
        recovery_advice(path.parent().unwrap_or(path))
    )]
    Damaged {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damage in the file, if it is a segment.
        offset: Option<u64>,
        /// The entry index concerned, if known.
        index: Option<u64>,
        reason: String,
    },
    #[error("raft log in {dir} failed earlier and accepts no more writes")]
    Failed { dir: PathBuf },
    #[error("entry {got} does not follow the last log index (expected {expected})")]
    NotContiguous { expected: u64, got: u64 },
}

fn position(offset: Option<u64>, index: Option<u64>) -> String {
    match (offset, index) {
        (Some(offset), Some(index)) => format!(" at byte {offset} (entry {index})"),
        (Some(offset), None) => format!(" at byte {offset}"),
        (None, Some(index)) => format!(" (entry {index})"),
        (None, None) => String::new(),
    }
}

/// What the caller told `open` about the snapshot.
#[derive(Debug, Clone, Copy)]
enum SnapshotPoint {
    Unknown,
    Known(Option<LogId>),
}

/// A [`LogError::Damaged`].
fn damaged(path: PathBuf, offset: Option<u64>, index: Option<u64>, reason: String) -> LogError {
    LogError::Damaged {
        path,
        offset,
        index,
        reason,
    }
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
    /// Opens (creating if needed) the log in `dir`, cutting a torn tail. Without the
    /// snapshot's point only the commit and purge points guard against cutting committed
    /// entries: start-up uses [`DurableLog::open_after_snapshot`].
    pub fn open(dir: &Path, config: LogConfig) -> Result<(DurableLog, OpenReport), LogError> {
        Self::open_with(dir, config, true, SnapshotPoint::Unknown)
    }

    /// Reads the log without changing any file (for inspection while a server may run).
    pub fn open_read_only(
        dir: &Path,
        config: LogConfig,
    ) -> Result<(DurableLog, OpenReport), LogError> {
        Self::open_with(dir, config, false, SnapshotPoint::Unknown)
    }

    /// Opens the log of a directory whose snapshot ends at `snapshot` (`None`: no snapshot):
    /// entries up to it count as committed, and a purge point beyond it is corruption (the
    /// entries between would be nowhere). `repair == false` changes no file.
    pub fn open_after_snapshot(
        dir: &Path,
        config: LogConfig,
        snapshot: Option<LogId>,
        repair: bool,
    ) -> Result<(DurableLog, OpenReport), LogError> {
        Self::open_with(dir, config, repair, SnapshotPoint::Known(snapshot))
    }

    fn open_with(
        dir: &Path,
        config: LogConfig,
        repair: bool,
        snapshot: SnapshotPoint,
    ) -> Result<(DurableLog, OpenReport), LogError> {
        if repair {
            fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        let hint = read_commit_hint(dir);
        let mut log = DurableLog {
            dir: dir.to_path_buf(),
            config,
            entries: BTreeMap::new(),
            locations: BTreeMap::new(),
            segments: BTreeMap::new(),
            active: None,
            last_purged: read_durable_json(dir, PURGED_FILE)?,
            vote: read_durable_json(dir, VOTE_FILE)?,
            committed: None,
            failed: false,
        };
        let snapshot_last = match snapshot {
            SnapshotPoint::Known(last) => {
                log.check_purge_point(last)?;
                last
            }
            SnapshotPoint::Unknown => None,
        };
        let floor = Floor::highest([
            hint.map(|id| Floor {
                index: id.index,
                source: "the commit point in `committed`",
            }),
            log.last_purged.map(|id| Floor {
                index: id.index,
                source: "the purge point in `purged`",
            }),
            snapshot_last.map(|id| Floor {
                index: id.index,
                source: "the last entry of the snapshot",
            }),
        ]);
        let (report, torn) = log.load_segments(floor)?;
        log.committed = log.checked_commit_hint(hint, snapshot_last)?;
        // Every check passed: only now is any file changed.
        if repair {
            if let Some((path, valid_len)) = torn {
                tracing::warn!("raft log {}: torn tail cut", path.display());
                cut_file(&path, valid_len).map_err(|e| io_err(dir, e))?;
            }
            let result = log
                .remove_purged_segments()
                .and_then(|()| log.reopen_active());
            log.latch(result)?;
        }
        Ok((log, report))
    }

    /// The snapshot is durable before the log behind it is purged, so a purge point beyond
    /// the snapshot means entries are in neither (a snapshot file replaced or lost).
    fn check_purge_point(&self, snapshot: Option<LogId>) -> Result<(), LogError> {
        let Some(purged) = self.last_purged else {
            return Ok(());
        };
        if snapshot.is_some_and(|s| s.index >= purged.index) {
            return Ok(());
        }
        let snapshot = snapshot.map_or("there is no snapshot".to_string(), |s| {
            format!("the snapshot ends at entry {s}")
        });
        Err(damaged(
            self.dir.join(PURGED_FILE),
            None,
            Some(purged.index),
            format!(
                "the log is purged through entry {purged}, but {snapshot}: the entries between \
                 are in neither"
            ),
        ))
    }

    /// Every entry the commit hint names was durable before the hint was written (openraft
    /// saves the commit point only after the appends before it returned, and each append
    /// fsyncs), and a committed entry is never truncated. So a readable hint naming an entry
    /// the log does not hold (neither in the log nor behind the purge point or the snapshot)
    /// means committed entries were lost: corruption, not a stale hint.
    fn checked_commit_hint(
        &self,
        hint: Option<LogId>,
        snapshot: Option<LogId>,
    ) -> Result<Option<LogId>, LogError> {
        let Some(hint) = hint else {
            return Ok(None);
        };
        let covered = |point: Option<LogId>| point.is_some_and(|p| hint.index <= p.index);
        let problem = match self.entries.get(&hint.index) {
            Some(entry) if entry.log_id == hint => return Ok(Some(hint)),
            Some(entry) => format!("the log holds entry {} at that index", entry.log_id),
            None if covered(self.last_purged) || covered(snapshot) => return Ok(Some(hint)),
            None => match self.entries.keys().next_back() {
                Some(last) => format!("the log ends at entry {last}"),
                None => "the log holds no entries".to_string(),
            },
        };
        Err(damaged(
            self.dir.join(COMMITTED_FILE),
            None,
            Some(hint.index),
            format!(
                "it says entry {hint} is committed, but {problem}: committed entries are missing"
            ),
        ))
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
        match result {
            // A full disk keeps the older hint on disk, which is as safe as a lost one.
            Err(e) if is_space_error(&e) => {
                tracing::debug!(
                    "raft log {}: commit hint not written: {e}",
                    self.dir.display()
                );
            }
            result => self.latch(result)?,
        }
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
        if let Err(error) = file.write_all(buf) {
            if is_space_error(&error) {
                self.cut_failed_write(base, start)?;
            }
            return Err(error);
        }
        // fsync: appended entries are acknowledged (LogFlushed) only after this returns.
        file.sync_data().map_err(fsync_failed)?;
        self.segments.insert(base, start + buf.len() as u64);
        Ok((base, start))
    }

    /// After a write to segment `base` found the disk full: cuts the partial frames it left
    /// past `start` (the end of the last fsynced frame; cutting needs no space), so that the
    /// next append starts on a frame boundary, reads back the last frame before them, and
    /// fsyncs the cut, so that no frame of the failed write (never acknowledged) can come
    /// back after a crash. Any error here is returned as one that fails the log.
    fn cut_failed_write(&mut self, base: u64, start: u64) -> io::Result<()> {
        let path = segment_path(&self.dir, base);
        let not_space = |e: io::Error| {
            io::Error::other(format!(
                "cannot cut the partial write in {}: {e}",
                path.display()
            ))
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(not_space)?;
        file.set_len(start).map_err(not_space)?;
        // fsync: the cut is durable before anything is written after it.
        file.sync_data().map_err(|e| not_space(fsync_failed(e)))?;
        let last = self
            .locations
            .iter()
            .next_back()
            .filter(|(_, location)| location.segment_base == base)
            .map(|(index, location)| (*index, location.offset));
        if let Some((index, offset)) = last {
            let mut frame = vec![0u8; usize::try_from(start - offset).unwrap_or(0)];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut frame, offset)
                .map_err(not_space)?;
            let sound = decode_entry(&frame, self.config.entry_bytes_max)
                .is_ok_and(|(entry, len)| entry.log_id.index == index && len == frame.len());
            if !sound {
                return Err(io::Error::other(format!(
                    "{}: the last frame before the failed write (index {index} at byte {offset}) does not read back whole",
                    path.display()
                )));
            }
        }
        tracing::debug!(
            "raft log {}: the disk is full; cut the partial write back to byte {start} of {}",
            self.dir.display(),
            path.display()
        );
        Ok(())
    }

    /// Removes every entry with index >= `index`, durably.
    pub fn truncate(&mut self, index: u64) -> Result<(), LogError> {
        self.check_writable()?;
        let Some(&location) = self.locations.get(&index) else {
            return Ok(());
        };
        // Strict: a truncation that stopped part way leaves state that a retry would not
        // find as it expects, whatever the error.
        let result = self.cut_segments(location).map_err(|e| {
            if is_space_error(&e) {
                io::Error::other(e)
            } else {
                e
            }
        });
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
            file.sync_all().map_err(fsync_failed)?;
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

    /// Reads every segment in order and returns the torn tail to cut (the segment and its
    /// valid length; see `recovery.rs`). Fails on corruption: a bad frame that is not a torn
    /// tail, or a segment that does not start where the previous one ended.
    fn load_segments(
        &mut self,
        floor: Option<Floor>,
    ) -> Result<(OpenReport, Option<(PathBuf, u64)>), LogError> {
        let bases = list_segments(&self.dir)?;
        let mut report = OpenReport {
            segments: bases.len(),
            ..OpenReport::default()
        };
        let mut next: Option<u64> = None;
        let mut last_term = 0;
        let mut torn = None;
        for (i, base) in bases.iter().enumerate() {
            let is_last = i + 1 == bases.len();
            let path = segment_path(&self.dir, *base);
            if let Some(expected) = next {
                let behind_purge = self.last_purged.is_some_and(|p| expected <= p.index + 1);
                if *base != expected && !behind_purge {
                    return Err(damaged(
                        path,
                        Some(0),
                        Some(expected),
                        format!(
                            "the segment starts at entry {base}, but the previous one ends at \
                             entry {}",
                            expected.saturating_sub(1)
                        ),
                    ));
                }
            }
            let bytes = fs::read(&path).map_err(|e| io_err(&self.dir, e))?;
            let scan = scan_segment(&bytes, *base, self.config.entry_bytes_max);
            if let Some(bad) = &scan.bad {
                let term = scan
                    .entries
                    .last()
                    .map_or(last_term, |(_, e)| e.log_id.leader_id.term);
                let max = self.config.entry_bytes_max;
                if let Some(reason) = classify(&bytes, bad, is_last, floor, term, max) {
                    return Err(damaged(path, Some(bad.offset), Some(bad.index), reason));
                }
                let cut = bytes.len() as u64 - scan.valid_len;
                report.torn_bytes_cut = cut;
                tracing::warn!(
                    "raft log {}: {cut} bytes of torn tail (an interrupted write of entry {} \
                     and later, above every committed entry) from byte {}: {}",
                    path.display(),
                    bad.index,
                    bad.offset,
                    bad.reason
                );
                torn = Some((path.clone(), scan.valid_len));
            }
            let last = scan.entries.last().map(|(_, e)| e.log_id.index);
            for (offset, entry) in scan.entries {
                let index = entry.log_id.index;
                last_term = entry.log_id.leader_id.term;
                if self.last_purged.is_none_or(|p| index > p.index) {
                    let location = Location {
                        segment_base: *base,
                        offset,
                    };
                    self.locations.insert(index, location);
                    self.entries.insert(index, entry);
                }
            }
            self.segments.insert(*base, scan.valid_len);
            next = Some(last.map_or(*base, |l| l + 1));
        }
        Ok((report, torn))
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
    /// cache may no longer match the disk, so retrying could acknowledge lost data. A write
    /// that found the disk full is the exception (see the module docs): `DiskFull`, and the
    /// log stays writable.
    fn latch<T>(&mut self, result: io::Result<T>) -> Result<T, LogError> {
        result.map_err(|e| {
            if is_space_error(&e) {
                return LogError::DiskFull {
                    dir: self.dir.clone(),
                    source: e,
                };
            }
            self.failed = true;
            tracing::error!(
                "raft log {} failed; it takes no more writes (check the disk, then restart): {e}",
                self.dir.display()
            );
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

/// Reads a durable file (`vote`, `purged`): a file that fails its checksum or does not
/// parse is corruption, since it was fsynced before anything relied on it.
fn read_durable_json<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
) -> Result<Option<T>, LogError> {
    let path = dir.join(name);
    let body = match read_atomic(&path) {
        Ok(Some(body)) => body,
        Ok(None) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(damaged(path, None, None, e.to_string()))
        }
        Err(e) => return Err(io_err(dir, e)),
    };
    serde_json::from_slice(&body).map(Some).map_err(|e| {
        damaged(
            path,
            None,
            None,
            format!("its checksum matches but it does not parse: {e}"),
        )
    })
}

/// Reads the commit hint. It is written without fsync, so after a power loss it may be
/// empty or torn: then it is reported and ignored, never trusted (start-up then only
/// guards entries up to the purge point and the snapshot).
fn read_commit_hint(dir: &Path) -> Option<LogId> {
    let path = dir.join(COMMITTED_FILE);
    let body = match read_atomic(&path) {
        Ok(body) => body?,
        Err(e) => {
            tracing::warn!("ignoring the commit hint {}: {e}", path.display());
            return None;
        }
    };
    serde_json::from_slice(&body).unwrap_or_else(|e| {
        tracing::warn!(
            "ignoring the commit hint {}: it does not parse: {e}",
            path.display()
        );
        None
    })
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

    /// The error of opening `dir`, which must be `Damaged`, with its message.
    fn damage(dir: &Path, config: LogConfig) -> (PathBuf, Option<u64>, Option<u64>, String) {
        match DurableLog::open(dir, config) {
            Err(err @ LogError::Damaged { .. }) => {
                let message = err.to_string();
                let LogError::Damaged {
                    path,
                    offset,
                    index,
                    ..
                } = err
                else {
                    unreachable!()
                };
                assert!(message.contains("restore"), "{message}");
                assert!(message.contains("move"), "{message}");
                assert!(message.contains(&path.display().to_string()), "{message}");
                (path, offset, index, message)
            }
            Err(other) => panic!("expected Damaged, got {other}"),
            Ok(_) => panic!("a damaged log opened"),
        }
    }

    #[test]
    fn commit_hint_the_log_does_not_hold_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append_range(&mut log, 0..3, 1);
        log.save_committed(Some(log_id(2, 1))).unwrap();
        drop(log);
        assert_eq!(open(dir.path()).committed(), Some(log_id(2, 1)));
        let mut log = open(dir.path());
        log.save_committed(Some(log_id(9, 1))).unwrap();
        drop(log);
        let (path, _, index, message) = damage(dir.path(), small());
        assert_eq!(path, dir.path().join(COMMITTED_FILE));
        assert_eq!(index, Some(9));
        assert!(message.contains("ends at entry 2"), "{message}");
        assert!(matches!(
            DurableLog::open_read_only(dir.path(), small()),
            Err(LogError::Damaged { .. })
        ));
        write_json(dir.path(), COMMITTED_FILE, &Some(log_id(1, 7)), false).unwrap();
        let (_, _, _, message) = damage(dir.path(), small());
        assert!(
            message.contains("holds entry"),
            "same index, other term: {message}"
        );
        // A hint behind the purge point needs no entry.
        write_json(dir.path(), COMMITTED_FILE, &Some(log_id(1, 1)), false).unwrap();
        let mut log = open(dir.path());
        log.purge(log_id(1, 1)).unwrap();
        drop(log);
        assert_eq!(open(dir.path()).committed(), Some(log_id(1, 1)));
    }

    #[test]
    fn unreadable_commit_hint_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append_range(&mut log, 0..3, 1);
        log.save_committed(Some(log_id(2, 1))).unwrap();
        drop(log);
        // Written without fsync: after a power loss it may be empty.
        fs::write(dir.path().join(COMMITTED_FILE), b"").unwrap();
        let log = open(dir.path());
        assert_eq!(log.committed(), None);
        assert_eq!(log.last_log_id(), Some(log_id(2, 1)));
    }

    #[test]
    fn flipped_bit_in_an_entry_followed_by_valid_ones_stops_open_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_default(dir.path());
        append_range(&mut log, 0..10, 1);
        drop(log);
        let path = segment_path(dir.path(), 0);
        let good = fs::read(&path).unwrap();
        let log = open_default(dir.path());
        let offset_4 = log.locations[&4].offset;
        drop(log);
        // No commit hint at all: the valid entries after the damage are enough to tell.
        for byte in [offset_4, offset_4 + 2, offset_4 + 12] {
            let mut bytes = good.clone();
            bytes[byte as usize] ^= 0x04;
            fs::write(&path, &bytes).unwrap();
            let (damaged_path, offset, index, message) = damage(dir.path(), LogConfig::default());
            assert_eq!(damaged_path, path);
            assert_eq!((offset, index), (Some(offset_4), Some(4)), "{message}");
            assert!(
                message.contains(&format!("at byte {offset_4} (entry 4)")),
                "{message}"
            );
            assert_eq!(fs::read(&path).unwrap(), bytes, "the file was changed");
        }
    }

    #[test]
    fn damage_in_the_last_entry_at_or_below_the_commit_point_stops_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_default(dir.path());
        append_range(&mut log, 0..4, 1);
        log.save_committed(Some(log_id(3, 1))).unwrap();
        drop(log);
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let (_, _, index, message) = damage(dir.path(), LogConfig::default());
        assert_eq!(index, Some(3));
        assert!(message.contains("commit point"), "{message}");
        // Truncated mid-entry: the same.
        fs::write(&path, &bytes[..last - 3]).unwrap();
        damage(dir.path(), LogConfig::default());
        // Truncated at an entry boundary: the entry the hint names is missing.
        let whole = open_read_only_entries_end(dir.path());
        fs::write(&path, &bytes[..whole]).unwrap();
        let (damaged, _, _, _) = damage(dir.path(), LogConfig::default());
        assert_eq!(damaged, dir.path().join(COMMITTED_FILE));
    }

    /// The byte where the last entry's frame starts (a boundary inside the segment).
    fn open_read_only_entries_end(dir: &Path) -> usize {
        let config = LogConfig::default();
        let path = segment_path(dir, 0);
        let bytes = fs::read(path).unwrap();
        let scan = scan_segment(&bytes, 0, config.entry_bytes_max);
        scan.entries.last().unwrap().0 as usize
    }

    #[test]
    fn damaged_vote_and_purge_files_stop_open() {
        for name in [VOTE_FILE, PURGED_FILE] {
            let dir = tempfile::tempdir().unwrap();
            let mut log = open(dir.path());
            log.save_vote(&Vote::new_committed(4, 1)).unwrap();
            append_each(&mut log, 0..20, 4);
            log.purge(log_id(12, 4)).unwrap();
            drop(log);
            let path = dir.path().join(name);
            let mut bytes = fs::read(&path).unwrap();
            bytes[12] ^= 0x20;
            fs::write(&path, &bytes).unwrap();
            let (damaged, offset, _, message) = damage(dir.path(), small());
            assert_eq!(damaged, path);
            assert_eq!(offset, None);
            assert!(message.contains("checksum"), "{message}");
        }
    }

    #[test]
    fn the_snapshot_point_guards_entries_and_the_purge_point() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_default(dir.path());
        append_range(&mut log, 0..4, 1);
        drop(log);
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let open_after = |snapshot| {
            DurableLog::open_after_snapshot(dir.path(), LogConfig::default(), snapshot, false)
        };
        // Entry 3 is in the snapshot: damage to it is corruption.
        assert!(matches!(
            open_after(Some(log_id(3, 1))),
            Err(LogError::Damaged { index: Some(3), .. })
        ));
        // Above the snapshot it is a torn tail.
        let (log, report) = open_after(Some(log_id(2, 1))).unwrap();
        assert_eq!(log.last_log_id(), Some(log_id(2, 1)));
        assert!(report.torn_bytes_cut > 0);
        // Purged beyond the snapshot: entries would be nowhere.
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_default(dir.path());
        append_range(&mut log, 0..4, 1);
        log.purge(log_id(2, 1)).unwrap();
        drop(log);
        for snapshot in [None, Some(log_id(1, 1))] {
            let result =
                DurableLog::open_after_snapshot(dir.path(), LogConfig::default(), snapshot, true);
            match result {
                Err(LogError::Damaged { path, .. }) => {
                    assert_eq!(path, dir.path().join(PURGED_FILE))
                }
                other => panic!("{:?}", other.map(|(_, r)| r)),
            }
        }
        let snapshot = Some(log_id(2, 1));
        DurableLog::open_after_snapshot(dir.path(), LogConfig::default(), snapshot, true).unwrap();
    }

    #[test]
    fn logs_of_the_first_format_are_read_and_extended() {
        let dir = tempfile::tempdir().unwrap();
        // Entries 0..3 in frames of the first layout, a vote file of the first layout.
        let mut bytes = Vec::new();
        for i in 0..3 {
            let mut v1 = Vec::new();
            encode_entry(&entry(i, 1), &mut v1).unwrap();
            let body = &v1[8..];
            bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
            bytes.extend_from_slice(body);
        }
        fs::write(segment_path(dir.path(), 0), &bytes).unwrap();
        let vote = serde_json::to_vec(&Vote::new_committed(1, 1)).unwrap();
        let mut file = crc32c::crc32c(&vote).to_le_bytes().to_vec();
        file.extend_from_slice(&vote);
        fs::write(dir.path().join(VOTE_FILE), &file).unwrap();
        let mut log = open_default(dir.path());
        assert_eq!(log.vote(), Some(Vote::new_committed(1, 1)));
        append_range(&mut log, 3..5, 2);
        drop(log);
        let log = open_default(dir.path());
        assert_eq!(indexes(&log), vec![(0, 1), (1, 1), (2, 1), (3, 2), (4, 2)]);
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
        let (path, offset, _, _) = damage(dir.path(), small());
        assert_eq!(path, first);
        assert!(offset.is_some_and(|o| o <= 10));
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
