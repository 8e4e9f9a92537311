//! The aborted-transaction index of each segment (`.txnindex`, format and search in
//! `crate::txn_index`) as the log keeps it: written when an ABORT marker is appended, read
//! by `read_committed` fetches, checked when the log opens, cut by truncation, rebuilt
//! where recovery cannot vouch for it.
//!
//! Who computes an entry: the caller that keeps the partition's transaction state
//! (`strom-broker`'s producer state, [`crate::Transactions::on_marker`]); the log only
//! stores it, in the segment holding the marker ([`Log::append_txn_index`]), right after
//! the marker's append and under the same caller lock (so no roll comes between them, and
//! no reader learns that the transaction is complete before the entry is there).
//!
//! Durability (docs/ARCHITECTURE.md, strom-log "Durability"): entries are written to the
//! page cache; a roll's flush fsyncs the closed segment's `.txnindex` with its other files
//! before the recovery point passes it, and a clean close fsyncs the active one. The
//! active segment's entries are not fsynced by other flushes: after a crash, recovery
//! rescans from the segment holding the recovery point, and the `.txnindex` of every
//! segment it scanned is cut to its valid entries below the recovered end; from the first
//! scanned segment holding a marker (one without can have no entry) they are reported
//! untrusted ([`Log::txn_index_rebuild_from`]), as is every segment without a `.txnindex`
//! (a directory written before Strom kept them) and every segment whose `.txnindex` is
//! damaged (an entry that does not fit the segment, other than a torn last one: the
//! segment is the truth and the index is rebuilt from its markers, with a WARN naming the
//! file, as Kafka rebuilds a damaged index). The caller replays its transaction state
//! over those segments and hands back their entries ([`Log::rebuild_txn_index`]); until it
//! has, every checkpoint keeps the recovery point at or below the first scanned segment,
//! so a crash before the rebuild rescans them again.

use std::path::Path;
use std::sync::Arc;

use crate::error::LogError;
use crate::fs::{read_exact_at, write_all_at, FileHandle, FileSystem};
use crate::segment::{Segment, CLEANED_SUFFIX};
use crate::txn::AbortedTxn;
use crate::txn_index::{
    decode_entries, encode_entry, AbortedCollector, Checker, TXN_INDEX_ENTRY_BYTES,
};

use super::compact::with_suffix;
use super::{lock, Log};

/// Entries read at a time (34 KiB).
const CHUNK_ENTRIES: u64 = 1024;

const ENTRY_BYTES: u64 = TXN_INDEX_ENTRY_BYTES as u64;

/// What the `.txnindex` files of a just-opened log need.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct TxnIndexState {
    /// The first segment whose `.txnindex` must be rebuilt by the caller (scanned by
    /// recovery, or missing).
    pub rebuild_from: Option<i64>,
    /// The first segment recovery scanned, while its rebuild is owed: the recovery point
    /// stays at or below it.
    pub recovery_point_cap: Option<i64>,
}

fn io<'a>(operation: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LogError + 'a {
    move |e| LogError::io(operation, path, e)
}

/// `count` entries from entry `first` of the file (versions not checked: the file was
/// checked when the log opened, and entries are only ever appended whole after that).
fn read_entries(
    file: &dyn FileHandle,
    path: &Path,
    first: u64,
    count: u64,
) -> Result<Vec<(i16, AbortedTxn)>, LogError> {
    let len = usize::try_from(count.saturating_mul(ENTRY_BYTES)).unwrap_or(0);
    let mut bytes = vec![0u8; len];
    read_exact_at(file, first * ENTRY_BYTES, &mut bytes).map_err(io("read", path))?;
    Ok(decode_entries(&bytes).collect())
}

/// The number of the first entry whose marker is at or after `offset` (markers increase):
/// a binary search, one small read per step.
fn first_entry_from(
    file: &dyn FileHandle,
    path: &Path,
    entries: u64,
    offset: i64,
) -> Result<u64, LogError> {
    let (mut low, mut high) = (0u64, entries);
    while low < high {
        let middle = low + (high - low) / 2;
        let below = read_entries(file, path, middle, 1)?
            .first()
            .is_some_and(|(_, txn)| txn.last_offset < offset);
        if below {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    Ok(low)
}

/// Opens a segment's `.txnindex`, creating it if it is missing.
fn open_or_create(fs: &dyn FileSystem, path: &Path) -> Result<Arc<dyn FileHandle>, LogError> {
    if fs.exists(path).map_err(io("stat", path))? {
        fs.open(path).map_err(io("open", path))
    } else {
        fs.create(path).map_err(io("create", path))
    }
}

/// Checks every segment's `.txnindex` at open, in offset order (`segments` with the offset
/// each ends before). Segments from `scanned_from` on (recovery scanned them) are cut to
/// their longest valid prefix of entries below the segment's end; from `markers_from` on
/// (the first scanned segment holding a marker) they owe a rebuild, as do segments without
/// a file. Elsewhere a torn last entry is cut; anything else that does not fit is damage:
/// the segment (the log is the truth) owes a rebuild from its markers, as Kafka's
/// `LogLoader` rebuilds an index that fails its sanity check, with a WARN naming the file.
/// The damaged file is left as it is until the rebuild replaces it; until then readers see
/// its entries before the damage.
pub(super) fn check_txn_indexes(
    fs: &dyn FileSystem,
    segments: &[(Arc<Segment>, i64)],
    scanned_from: Option<i64>,
    markers_from: Option<i64>,
) -> Result<TxnIndexState, LogError> {
    let mut state = TxnIndexState::default();
    let mut cuts: Vec<(Arc<Segment>, u64)> = Vec::new();
    for (segment, end) in segments {
        let base = segment.base_offset;
        let path = &segment.txn_index_path;
        let scanned = scanned_from.is_some_and(|from| base >= from);
        if markers_from.is_some_and(|from| base >= from) {
            state.recovery_point_cap.get_or_insert(base);
            state.rebuild_from.get_or_insert(base);
        }
        if !fs.exists(path).map_err(io("stat", path))? {
            state.rebuild_from.get_or_insert(base);
            segment.set_txn_index_len(0);
            continue;
        }
        let len = fs.file_len(path).map_err(io("stat", path))?;
        if len == 0 {
            segment.set_txn_index_len(0);
            continue;
        }
        let file = fs.open(path).map_err(io("open", path))?;
        let entries = len / ENTRY_BYTES;
        let mut checker = Checker::new(path, base, *end);
        let mut valid = 0u64;
        let mut damage = None;
        'chunks: while valid < entries {
            let count = (entries - valid).min(CHUNK_ENTRIES);
            for (version, txn) in read_entries(file.as_ref(), path, valid, count)? {
                match checker.check(version, &txn) {
                    Ok(()) => valid += 1,
                    // Unsynced entries after a crash, rebuilt by the caller.
                    Err(_) if scanned => break 'chunks,
                    Err(error) => {
                        damage = Some(error);
                        break 'chunks;
                    }
                }
            }
        }
        let whole = valid * ENTRY_BYTES;
        if let Some(damage) = damage {
            tracing::warn!(file = %path.display(), %damage,
                "damaged transaction index: it is rebuilt from its segment's ABORT markers before the partition serves read_committed fetches; no action needed");
            // The rebuild (by the caller, `Log::rebuild_txn_index`) starts at the first
            // segment that owes one, so this one and every later one are rewritten. No
            // recovery point cap: a crash before the rebuild finds the damage again.
            state.rebuild_from.get_or_insert(base);
            segment.set_txn_index_len(whole);
            continue;
        }
        if whole < len {
            cuts.push((Arc::clone(segment), whole));
        }
        segment.set_txn_index_len(whole);
    }
    // Only after every file checked out: damage changes nothing.
    for (segment, whole) in cuts {
        let path = &segment.txn_index_path;
        tracing::warn!(file = %path.display(), keep_bytes = whole,
            "cutting a transaction index's entries past its last whole entry or its recovered segment");
        let file = fs.open(path).map_err(io("open", path))?;
        file.set_len(whole).map_err(io("truncate", path))?;
    }
    Ok(state)
}

/// Cuts `segment`'s `.txnindex` to the entries whose marker lies below `offset` (Kafka's
/// `TransactionIndex.truncateTo`): a truncation of the log cut the segment there.
pub(super) fn truncate_txn_index(
    fs: &dyn FileSystem,
    segment: &Segment,
    offset: i64,
) -> Result<(), LogError> {
    let len = segment.txn_index_len(fs)?;
    if len == 0 {
        return Ok(());
    }
    let path = &segment.txn_index_path;
    let file = fs.open(path).map_err(io("open", path))?;
    let keep = first_entry_from(file.as_ref(), path, len / ENTRY_BYTES, offset)? * ENTRY_BYTES;
    if keep < len {
        segment.set_txn_index_len(keep);
        file.set_len(keep).map_err(io("truncate", path))?;
        // Fsynced at once (truncations are rare): a rescan after a crash rebuilds only
        // from a segment holding a marker, so an entry the cut removed must not come back
        // to name data written after the cut (read_committed readers would drop it).
        file.sync().map_err(io("fsync", path))?;
    }
    Ok(())
}

/// Appends the `.txnindex` entries of `segment` that `keep` accepts to `out` from byte
/// `at` (compaction writing the index of a cleaned segment: the entries whose ABORT marker
/// it kept); returns the byte after them.
pub(super) fn copy_txn_index(
    fs: &dyn FileSystem,
    segment: &Segment,
    out: &dyn FileHandle,
    out_path: &Path,
    mut at: u64,
    keep: &dyn Fn(&AbortedTxn) -> bool,
) -> Result<u64, LogError> {
    let entries = segment.txn_index_len(fs)? / ENTRY_BYTES;
    if entries == 0 {
        return Ok(at);
    }
    let path = &segment.txn_index_path;
    let file = fs.open(path).map_err(io("open", path))?;
    let mut next = 0;
    while next < entries {
        let count = (entries - next).min(CHUNK_ENTRIES);
        let bytes: Vec<u8> = read_entries(file.as_ref(), path, next, count)?
            .iter()
            .filter(|(_, txn)| keep(txn))
            .flat_map(|(_, txn)| encode_entry(txn))
            .collect();
        write_all_at(out, at, &bytes).map_err(io("write", out_path))?;
        at += bytes.len() as u64;
        next += count;
    }
    Ok(at)
}

impl Log {
    /// Stores an aborted transaction whose ABORT marker (at `txn.last_offset`) the caller
    /// has just appended, in the `.txnindex` of the segment holding the marker (Kafka's
    /// `LogSegment.updateTxnIndex`). Page cache only; see the module docs for when it
    /// becomes durable. A failed write fails the log (nothing is written again until it is
    /// reopened, and the reopen rebuilds the index) and the entry is still served from
    /// memory, so no reader takes the transaction's data for committed.
    pub fn append_txn_index(&self, txn: AbortedTxn) -> Result<(), LogError> {
        let result = self.write_txn_entry(&txn);
        if let Err(error) = result {
            lock(&self.unwritten_txns).push(txn);
            return Err(self.fail(error));
        }
        Ok(())
    }

    fn write_txn_entry(&self, txn: &AbortedTxn) -> Result<(), LogError> {
        self.check_usable()?;
        let (segment, active) = {
            let writer = self.lock_writer();
            if txn.last_offset >= writer.next_offset {
                return Err(LogError::OffsetOutOfRange {
                    offset: txn.last_offset,
                    log_start_offset: self.log_start_offset(),
                    log_end_offset: writer.next_offset,
                });
            }
            let segment = self
                .segments_read()
                .range(..=txn.last_offset)
                .next_back()
                .map(|(_, s)| Arc::clone(s))
                .ok_or(LogError::OffsetOutOfRange {
                    offset: txn.last_offset,
                    log_start_offset: self.log_start_offset(),
                    log_end_offset: writer.next_offset,
                })?;
            let active = Arc::ptr_eq(&segment, &writer.active);
            // Under the writer mutex: entries of one segment are appended one at a time.
            let path = &segment.txn_index_path;
            let file = open_or_create(self.fs.as_ref(), path)?;
            let at = segment.txn_index_len(self.fs.as_ref())?;
            write_all_at(file.as_ref(), at, &encode_entry(txn)).map_err(io("write", path))?;
            segment.set_txn_index_len(at + ENTRY_BYTES);
            (segment, active)
        };
        if !active {
            // The caller's lock should keep a roll out from between the marker and its
            // entry; if one came, the rolled segment may already count as synced.
            let path = &segment.txn_index_path;
            let file = self.fs.open(path).map_err(io("open", path))?;
            file.sync().map_err(io("fsync", path))?;
        }
        Ok(())
    }

    /// The aborted transactions a `read_committed` fetch of `[from, to)` must name (Kafka's
    /// `collectAbortedTransactions`): read from the `.txnindex` of the segment holding
    /// `from` (binary-searched for the first marker at or after it) and of later segments,
    /// stopping once an entry's last stable offset reaches `to`. Nothing of it is kept in
    /// memory.
    pub fn aborted_between(&self, from: i64, to: i64) -> Result<Vec<AbortedTxn>, LogError> {
        let segments: Vec<Arc<Segment>> = {
            let segments = self.segments_read();
            let start = segments
                .range(..=from)
                .next_back()
                .map_or(i64::MIN, |(b, _)| *b);
            segments
                .range(start..)
                .map(|(_, s)| Arc::clone(s))
                .collect()
        };
        let mut collector = AbortedCollector::new(from, to);
        let mut done = false;
        for (i, segment) in segments.iter().enumerate() {
            if done {
                break;
            }
            let len = segment.txn_index_len(self.fs.as_ref())?;
            let entries = len / ENTRY_BYTES;
            if entries == 0 {
                continue;
            }
            let path = &segment.txn_index_path;
            // A segment that compaction or retention replaced meanwhile is read through
            // the handle pinned before its files were renamed: the entries that go with
            // the `.log` a reader of it reads, never the cleaned segment's.
            let Some(file) = segment.txn_index_file(self.fs.as_ref())? else {
                continue;
            };
            let mut next = if i == 0 {
                first_entry_from(file.as_ref(), path, entries, from)?
            } else {
                0
            };
            while next < entries && !done {
                let count = (entries - next).min(CHUNK_ENTRIES);
                for (_, txn) in read_entries(file.as_ref(), path, next, count)? {
                    if collector.push(&txn) {
                        done = true;
                        break;
                    }
                }
                next += count;
            }
        }
        let mut found = collector.finish();
        // Entries whose write failed (the log is failed): kept in memory until a reopen.
        let unwritten = lock(&self.unwritten_txns);
        if !unwritten.is_empty() {
            let missing: Vec<AbortedTxn> = unwritten
                .iter()
                .filter(|t| t.last_offset >= from && t.first_offset < to)
                .filter(|t| !found.contains(t))
                .copied()
                .collect();
            found.extend(missing);
            found.sort_by_key(|t| t.last_offset);
        }
        Ok(found)
    }

    /// Every entry of the `.txnindex` of the segment based at `base_offset` (empty without
    /// one): for tools and tests.
    pub fn txn_index_entries(&self, base_offset: i64) -> Result<Vec<AbortedTxn>, LogError> {
        let Some(segment) = self.segments_read().get(&base_offset).map(Arc::clone) else {
            return Ok(Vec::new());
        };
        let len = segment.txn_index_len(self.fs.as_ref())?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let path = &segment.txn_index_path;
        let file = self.fs.open(path).map_err(io("open", path))?;
        let entries = read_entries(file.as_ref(), path, 0, len / ENTRY_BYTES)?;
        Ok(entries.into_iter().map(|(_, txn)| txn).collect())
    }

    /// The first segment whose `.txnindex` the caller must rebuild with
    /// [`Log::rebuild_txn_index`] before serving `read_committed` fetches: segments
    /// recovery scanned after an unclean shutdown, segments without one, and segments
    /// whose one is damaged. `None`: every index is whole.
    pub fn txn_index_rebuild_from(&self) -> Option<i64> {
        lock(&self.txn_index_state).rebuild_from
    }

    /// Replaces the `.txnindex` of every segment from the one holding `from` with
    /// `entries` (the aborted transactions whose markers lie at or after `from`, in marker
    /// order, from a replay of the transaction state over those segments). Each file is
    /// written as `.cleaned`, fsynced and renamed over the old one, then the directory is
    /// fsynced: a crash leaves each segment's old file or its new one, and the recovery
    /// point stays capped until all are in place. The caller holds the lock its appends
    /// take, so no entry is appended meanwhile.
    pub fn rebuild_txn_index(&self, from: i64, entries: &[AbortedTxn]) -> Result<(), LogError> {
        self.check_usable()?;
        let _cleaner = lock(&self.cleaner);
        let _token = self.flush_token()?;
        let next_offset = self.lock_writer().next_offset;
        let segments: Vec<(Arc<Segment>, i64)> = {
            let segments = self.segments_read();
            let start = segments
                .range(..=from)
                .next_back()
                .map_or(i64::MIN, |(b, _)| *b);
            let list: Vec<Arc<Segment>> = segments
                .range(start..)
                .map(|(_, s)| Arc::clone(s))
                .collect();
            let ends: Vec<i64> = list
                .iter()
                .skip(1)
                .map(|s| s.base_offset)
                .chain([next_offset])
                .collect();
            list.into_iter().zip(ends).collect()
        };
        let mut rest = entries.iter().filter(|t| t.last_offset >= from).peekable();
        let fs = self.fs.as_ref();
        for (segment, end) in &segments {
            let mut bytes = Vec::new();
            let mut checker = Checker::new(&segment.txn_index_path, segment.base_offset, *end);
            while let Some(txn) = rest.next_if(|t| t.last_offset < *end) {
                checker.check(0, txn)?;
                bytes.extend_from_slice(&encode_entry(txn));
            }
            let path = &segment.txn_index_path;
            let cleaned = with_suffix(path, CLEANED_SUFFIX);
            let result = (|| {
                let file = fs.create(&cleaned).map_err(io("create", &cleaned))?;
                write_all_at(file.as_ref(), 0, &bytes).map_err(io("write", &cleaned))?;
                file.sync().map_err(io("fsync", &cleaned))?;
                fs.rename(&cleaned, path).map_err(io("rename", &cleaned))
            })();
            self.latch(result)?;
            segment.set_txn_index_len(bytes.len() as u64);
        }
        self.latch(
            fs.sync_dir(&self.dir)
                .map_err(|e| LogError::io("fsync dir", &self.dir, e)),
        )?;
        if let Some(txn) = rest.next() {
            tracing::warn!(dir = %self.dir.display(), marker = txn.last_offset,
                "a rebuilt aborted transaction lies past the log end; ignored");
        }
        *lock(&self.txn_index_state) = TxnIndexState::default();
        tracing::info!(dir = %self.dir.display(), from, segments = segments.len(),
            entries = entries.len(), "rebuilt transaction indexes");
        Ok(())
    }

    /// `point` as a checkpoint may record it: at or below the first segment recovery
    /// scanned while that segment's `.txnindex` still owes its rebuild.
    pub(super) fn capped_recovery_point(&self, point: i64) -> i64 {
        match lock(&self.txn_index_state).recovery_point_cap {
            Some(cap) => point.min(cap),
            None => point,
        }
    }

    /// Whether a rebuild is still owed (a close must then not claim a clean shutdown).
    pub(super) fn txn_index_rebuild_owed(&self) -> bool {
        lock(&self.txn_index_state).recovery_point_cap.is_some()
    }
}
