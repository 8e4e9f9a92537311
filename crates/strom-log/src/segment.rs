//! One segment: its files (`.log`, `.index`, `.timeindex`, `.txnindex`, named by the
//! 20-digit base offset), the indexes in memory, and the scan that validates a segment's
//! batches and rebuilds its indexes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use strom_records::{validate, BatchHeader, ValidateLimits, BATCH_HEADER_BYTES};

use crate::config::{LogConfig, OFFSET_INDEX_ENTRY_BYTES, TIME_INDEX_ENTRY_BYTES};
use crate::error::LogError;
use crate::fs::{read_all, read_exact_at, FileHandle, FileSystem};
use crate::handles::HandleCache;
use crate::index::{entries_max, OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use crate::txn_index::TXN_INDEX_ENTRY_BYTES;
pub use crate::txn_index::TXN_INDEX_SUFFIX;

pub const LOG_SUFFIX: &str = ".log";
pub const INDEX_SUFFIX: &str = ".index";
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Appended to a file's name when it is scheduled for deletion.
pub const DELETED_SUFFIX: &str = ".deleted";
/// A cleaned copy of a segment file being written (discarded if found at open).
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// A cleaned copy that replaces the original (the swap is completed if found at open).
pub const SWAP_SUFFIX: &str = ".swap";
/// [`Segment`]'s `.txnindex` length before anything read it.
const TXN_INDEX_LEN_UNKNOWN: u64 = u64::MAX;
/// Kafka's `RecordBatch.NO_TIMESTAMP`.
pub const NO_TIMESTAMP: i64 = -1;
/// Bytes read at a time when scanning a segment.
const SCAN_CHUNK_BYTES: usize = 1 << 20;

/// Kafka's file name for a segment file: the base offset as 20 zero-padded digits.
pub fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// The base offset of a segment file name with `suffix`, if it is one.
pub fn parse_file_name(name: &str, suffix: &str) -> Option<i64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The in-memory indexes of a segment plus what appending to it needs to know.
#[derive(Clone, Debug)]
pub struct Indexes {
    pub offset: OffsetIndex,
    pub time: TimeIndex,
    pub max_timestamp_ms: i64,
    pub offset_of_max_timestamp: i64,
    /// The first batch's max timestamp: `segment.ms` counts from it (as Kafka does).
    pub first_batch_timestamp_ms: Option<i64>,
    pub bytes_since_last_entry: u64,
}

impl Indexes {
    pub fn new(config: &LogConfig) -> Indexes {
        Indexes {
            offset: OffsetIndex::new(entries_max(
                config.segment_index_bytes,
                OFFSET_INDEX_ENTRY_BYTES,
            )),
            time: TimeIndex::new(entries_max(
                config.segment_index_bytes,
                TIME_INDEX_ENTRY_BYTES,
            )),
            max_timestamp_ms: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
            first_batch_timestamp_ms: None,
            bytes_since_last_entry: 0,
        }
    }

    /// Accounts for a batch written at `position`; returns the index entries to write.
    pub fn on_batch(
        &mut self,
        base_offset: i64,
        header: &BatchHeader,
        position: u64,
        index_interval_bytes: u64,
    ) -> (Option<OffsetEntry>, Option<TimeEntry>) {
        if header.max_timestamp > self.max_timestamp_ms {
            self.max_timestamp_ms = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        if self.first_batch_timestamp_ms.is_none() {
            self.first_batch_timestamp_ms = Some(header.max_timestamp);
        }
        let mut added = (None, None);
        if self.bytes_since_last_entry > index_interval_bytes {
            let rel = relative(base_offset, header.last_offset());
            let pos = u32::try_from(position).ok();
            if let (Some(relative_offset), Some(position)) = (rel, pos) {
                added.0 = self.offset.push(OffsetEntry {
                    relative_offset,
                    position,
                });
            }
            added.1 = self.time_entry(base_offset, false);
            self.bytes_since_last_entry = 0;
        }
        self.bytes_since_last_entry = self
            .bytes_since_last_entry
            .saturating_add(header.size_bytes() as u64);
        added
    }

    /// The time-index entry for the max timestamp so far, if it is new.
    pub fn time_entry(&mut self, base_offset: i64, final_entry: bool) -> Option<TimeEntry> {
        if self.max_timestamp_ms == NO_TIMESTAMP {
            return None;
        }
        let relative_offset = relative(base_offset, self.offset_of_max_timestamp)?;
        self.time.push(
            TimeEntry {
                timestamp_ms: self.max_timestamp_ms,
                relative_offset,
            },
            final_entry,
        )
    }
}

/// `offset - base_offset` as stored in the indexes, if it fits.
pub fn relative(base_offset: i64, offset: i64) -> Option<u32> {
    offset
        .checked_sub(base_offset)
        .and_then(|d| u32::try_from(d).ok())
}

/// A segment shared by the writer and readers.
#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    pub log_path: PathBuf,
    pub index_path: PathBuf,
    pub time_index_path: PathBuf,
    /// The aborted-transaction index (`crate::txn_index`).
    pub txn_index_path: PathBuf,
    /// Bytes of whole batches readers may see; published after the write completes.
    size_bytes: AtomicU64,
    /// Bytes of whole `.txnindex` entries readers may see ([`TXN_INDEX_LEN_UNKNOWN`] until
    /// first needed: then the file's length, checked when the log opened).
    txn_index_bytes: AtomicU64,
    /// The writer's handle while the segment is active; inactive ones go through the cache.
    pinned: RwLock<Option<Arc<dyn FileHandle>>>,
    /// The `.txnindex` as it was when compaction or deletion renamed it away: readers still
    /// holding this segment read the entries that go with its pinned `.log`.
    pinned_txn_index: RwLock<Option<Arc<dyn FileHandle>>>,
    /// `None` until first needed: opening a log does not read inactive segments' indexes.
    indexes: Mutex<Option<Indexes>>,
    /// Counts wholesale replacements of `indexes`; changed only with `indexes` locked, so
    /// a repair can install its rebuild only over the indexes it found wrong.
    index_generation: AtomicU64,
}

impl Segment {
    pub fn new(dir: &Path, base_offset: i64, size_bytes: u64) -> Segment {
        Segment {
            base_offset,
            log_path: dir.join(file_name(base_offset, LOG_SUFFIX)),
            index_path: dir.join(file_name(base_offset, INDEX_SUFFIX)),
            time_index_path: dir.join(file_name(base_offset, TIME_INDEX_SUFFIX)),
            txn_index_path: dir.join(file_name(base_offset, TXN_INDEX_SUFFIX)),
            size_bytes: AtomicU64::new(size_bytes),
            txn_index_bytes: AtomicU64::new(TXN_INDEX_LEN_UNKNOWN),
            pinned: RwLock::new(None),
            pinned_txn_index: RwLock::new(None),
            indexes: Mutex::new(None),
            index_generation: AtomicU64::new(0),
        }
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Acquire)
    }

    /// Publishes bytes the writer has finished writing (Release pairs with readers'
    /// Acquire: a reader that sees the size sees the bytes).
    pub fn set_size_bytes(&self, size_bytes: u64) {
        self.size_bytes.store(size_bytes, Ordering::Release);
    }

    /// The published length of the `.txnindex` (whole entries), read from the file on
    /// first use (0 when there is none). The first caller to learn it installs it, so a
    /// writer's later length is never overwritten by a stale one.
    pub fn txn_index_len(&self, fs: &dyn FileSystem) -> Result<u64, LogError> {
        let known = self.txn_index_bytes.load(Ordering::Acquire);
        if known != TXN_INDEX_LEN_UNKNOWN {
            return Ok(known);
        }
        let path = &self.txn_index_path;
        let len = if fs.exists(path).map_err(|e| LogError::io("stat", path, e))? {
            fs.file_len(path)
                .map_err(|e| LogError::io("stat", path, e))?
        } else {
            0
        };
        let whole = len - len % TXN_INDEX_ENTRY_BYTES as u64;
        match self.txn_index_bytes.compare_exchange(
            TXN_INDEX_LEN_UNKNOWN,
            whole,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(whole),
            Err(current) => Ok(current),
        }
    }

    /// Publishes the `.txnindex` length after a write (Release: a reader that sees the
    /// length sees the entries).
    pub fn set_txn_index_len(&self, len_bytes: u64) {
        self.txn_index_bytes.store(len_bytes, Ordering::Release);
    }

    pub fn pin(&self, file: Option<Arc<dyn FileHandle>>) {
        *self.pinned.write().unwrap_or_else(|e| e.into_inner()) = file;
    }

    /// A handle for reading the `.log` file.
    pub fn log_file(&self, cache: &HandleCache) -> Result<Arc<dyn FileHandle>, LogError> {
        if let Some(file) = self.pinned_file() {
            return Ok(file);
        }
        let opened = cache.get(&self.log_path);
        // Deletion and compaction pin the old file before renaming it away. Seeing no pin
        // now means the open above came before any rename and got the right file; seeing
        // one means the name may already point elsewhere (or nowhere): use the pin.
        if let Some(file) = self.pinned_file() {
            return Ok(file);
        }
        opened.map_err(|e| LogError::io("open", &self.log_path, e))
    }

    /// Keeps the `.txnindex` open for readers of this segment before a swap or a deletion
    /// renames it (a missing file pins nothing: the segment then has no entries).
    pub fn pin_txn_index(&self, fs: &dyn FileSystem) -> Result<(), LogError> {
        // The length too, read now from the file being pinned (not later from the name).
        self.txn_index_len(fs)?;
        let path = &self.txn_index_path;
        if !fs.exists(path).map_err(|e| LogError::io("stat", path, e))? {
            return Ok(());
        }
        let file = fs.open(path).map_err(|e| LogError::io("open", path, e))?;
        *self
            .pinned_txn_index
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(file);
        Ok(())
    }

    /// A handle for reading the `.txnindex`, `None` if there is none (the file was removed
    /// with the segment, or never written). As [`Segment::log_file`]: a pin seen after the
    /// open means the name may already point to a cleaned segment's index.
    pub fn txn_index_file(
        &self,
        fs: &dyn FileSystem,
    ) -> Result<Option<Arc<dyn FileHandle>>, LogError> {
        let pinned = || {
            self.pinned_txn_index
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(Arc::clone)
        };
        if let Some(file) = pinned() {
            return Ok(Some(file));
        }
        let opened = fs.open(&self.txn_index_path);
        if let Some(file) = pinned() {
            return Ok(Some(file));
        }
        match opened {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LogError::io("open", &self.txn_index_path, e)),
        }
    }

    fn pinned_file(&self) -> Option<Arc<dyn FileHandle>> {
        self.pinned
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(Arc::clone)
    }

    pub fn lock_indexes(&self) -> MutexGuard<'_, Option<Indexes>> {
        self.indexes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_indexes(&self, indexes: Indexes) {
        let mut guard = self.lock_indexes();
        *guard = Some(indexes);
        self.index_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Installs `indexes` unless the cached ones were replaced since generation `seen`
    /// (see [`Segment::with_indexes_at`]); `before` runs first, with the indexes locked,
    /// and may veto the install by failing. Returns whether they were installed.
    pub fn replace_indexes(
        &self,
        seen: u64,
        indexes: Indexes,
        before: impl FnOnce(&Indexes) -> Result<(), LogError>,
    ) -> Result<bool, LogError> {
        let mut guard = self.lock_indexes();
        if self.index_generation.load(Ordering::Acquire) != seen {
            return Ok(false);
        }
        before(&indexes)?;
        *guard = Some(indexes);
        self.index_generation.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }

    /// Runs `f` on the indexes, loading them first if needed (from the index files, or by
    /// scanning the segment when the files are missing or implausible).
    pub fn with_indexes<T>(
        &self,
        cache: &HandleCache,
        config: &LogConfig,
        f: impl FnOnce(&Indexes) -> T,
    ) -> Result<T, LogError> {
        self.with_indexes_at(cache, config, f)
            .map(|(value, _)| value)
    }

    /// As [`Segment::with_indexes`], also returning the generation of the indexes `f` saw,
    /// for [`Segment::replace_indexes`].
    pub fn with_indexes_at<T>(
        &self,
        cache: &HandleCache,
        config: &LogConfig,
        f: impl FnOnce(&Indexes) -> T,
    ) -> Result<(T, u64), LogError> {
        let mut guard = self.lock_indexes();
        if guard.is_none() {
            *guard = Some(self.load_indexes(cache, config)?);
        }
        let generation = self.index_generation.load(Ordering::Acquire);
        match guard.as_ref() {
            Some(indexes) => Ok((f(indexes), generation)),
            None => Err(LogError::CorruptSegment {
                path: self.index_path.clone(),
                position: 0,
                reason: "indexes missing after load".into(),
            }),
        }
    }

    fn load_indexes(&self, cache: &HandleCache, config: &LogConfig) -> Result<Indexes, LogError> {
        match self.read_index_files(cache, config) {
            Ok(indexes) => Ok(indexes),
            Err(reason) => {
                tracing::warn!(segment = %self.log_path.display(), %reason, "rebuilding indexes");
                self.scan_indexes(cache, config, self.size_bytes())
            }
        }
    }

    /// Indexes rebuilt by scanning the first `end` bytes of the `.log` (no locks held).
    pub fn scan_indexes(
        &self,
        cache: &HandleCache,
        config: &LogConfig,
        end: u64,
    ) -> Result<Indexes, LogError> {
        let file = self.log_file(cache)?;
        let scan = scan_segment(
            file.as_ref(),
            &self.log_path,
            self.base_offset,
            0,
            end,
            config,
        )?;
        if let Some(err) = &scan.error {
            tracing::warn!(segment = %self.log_path.display(), %err, "damage in a segment below the recovery point");
        }
        Ok(scan.indexes)
    }

    fn read_index_files(&self, cache: &HandleCache, config: &LogConfig) -> Result<Indexes, String> {
        let fs = cache.fs();
        let read = |path: &Path| -> Result<Vec<u8>, String> {
            let file = fs.open(path).map_err(|e| e.to_string())?;
            read_all(file.as_ref(), config.segment_index_bytes).map_err(|e| e.to_string())
        };
        let mut indexes = Indexes::new(config);
        let offset_max = entries_max(config.segment_index_bytes, OFFSET_INDEX_ENTRY_BYTES);
        let time_max = entries_max(config.segment_index_bytes, TIME_INDEX_ENTRY_BYTES);
        indexes.offset =
            OffsetIndex::decode(&read(&self.index_path)?, offset_max, self.size_bytes())
                .map_err(|e| e.to_string())?;
        indexes.time = TimeIndex::decode(&read(&self.time_index_path)?, time_max)
            .map_err(|e| e.to_string())?;
        if let Some(last) = indexes.time.last() {
            indexes.max_timestamp_ms = last.timestamp_ms;
            indexes.offset_of_max_timestamp = self.base_offset + i64::from(last.relative_offset);
        }
        Ok(indexes)
    }
}

/// Reads the header of the batch at `position`; `None` at or past `end`.
pub fn read_header(
    file: &dyn FileHandle,
    path: &Path,
    position: u64,
    end: u64,
) -> Result<Option<BatchHeader>, LogError> {
    if position >= end {
        return Ok(None);
    }
    let corrupt = |reason: String| LogError::CorruptSegment {
        path: path.to_path_buf(),
        position,
        reason,
    };
    if end - position < BATCH_HEADER_BYTES as u64 {
        return Err(corrupt("partial batch header".into()));
    }
    let mut buf = [0u8; BATCH_HEADER_BYTES];
    read_exact_at(file, position, &mut buf).map_err(|e| LogError::io("read", path, e))?;
    let header = BatchHeader::parse(&buf).map_err(|e| corrupt(e.to_string()))?;
    if (header.size_bytes() as u64) < BATCH_HEADER_BYTES as u64
        || position + header.size_bytes() as u64 > end
    {
        return Err(corrupt(format!(
            "batch length {} out of bounds",
            header.batch_length
        )));
    }
    Ok(Some(header))
}

/// Where a search through an offset-index entry ended.
#[derive(Debug)]
pub enum Seek {
    /// Position and header of the first batch whose last offset is `>=` the one sought.
    Found(u64, BatchHeader),
    /// No such batch before `end`.
    End,
    /// The entry does not name a batch holding its offset: the index is wrong.
    StaleIndex(String),
}

/// Checks that `entry` names a batch holding its offset and returns its position (0 when
/// there is no entry); `Err(reason)` inside the `Ok` when it does not.
pub fn check_entry(
    file: &dyn FileHandle,
    path: &Path,
    base_offset: i64,
    entry: Option<OffsetEntry>,
    end: u64,
) -> Result<Result<u64, String>, LogError> {
    let Some(entry) = entry else { return Ok(Ok(0)) };
    let position = u64::from(entry.position);
    let offset = base_offset.saturating_add(i64::from(entry.relative_offset));
    match read_header(file, path, position, end) {
        Ok(Some(h)) if h.base_offset <= offset && offset <= h.last_offset() => Ok(Ok(position)),
        Ok(Some(h)) => Ok(Err(format!(
            "index entry for offset {offset} names the batch of offsets {}..={} at byte {position}",
            h.base_offset,
            h.last_offset()
        ))),
        Ok(None) => Ok(Err(format!(
            "index entry for offset {offset} points at byte {position}, past the end"
        ))),
        Err(LogError::CorruptSegment { reason, .. }) => Ok(Err(format!(
            "index entry for offset {offset} points at byte {position}: {reason}"
        ))),
        Err(e) => Err(e),
    }
}

/// Finds the first batch whose last offset is `>= offset`, scanning forward from the
/// batch `entry` names (from byte 0 without an entry) after checking that entry.
pub fn seek_batch(
    file: &dyn FileHandle,
    path: &Path,
    base_offset: i64,
    entry: Option<OffsetEntry>,
    offset: i64,
    end: u64,
) -> Result<Seek, LogError> {
    let mut position = match check_entry(file, path, base_offset, entry, end)? {
        Ok(position) => position,
        Err(reason) => return Ok(Seek::StaleIndex(reason)),
    };
    while let Some(header) = read_header(file, path, position, end)? {
        if header.last_offset() >= offset {
            return Ok(Seek::Found(position, header));
        }
        position += header.size_bytes() as u64;
    }
    Ok(Seek::End)
}

/// Calls `f` with the header, position and bytes of every batch between `start` and
/// `end`, reading one batch at a time (memory bounded by the largest batch).
pub fn for_each_batch(
    file: &dyn FileHandle,
    path: &Path,
    start: u64,
    end: u64,
    mut f: impl FnMut(&BatchHeader, u64, Vec<u8>) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let mut position = start;
    while let Some(header) = read_header(file, path, position, end)? {
        let mut bytes = vec![0u8; header.size_bytes()];
        read_exact_at(file, position, &mut bytes).map_err(|e| LogError::io("read", path, e))?;
        let size = bytes.len() as u64;
        f(&header, position, bytes)?;
        position += size;
    }
    Ok(())
}

/// The result of validating a segment's batches.
#[derive(Debug)]
pub struct ScanResult {
    pub indexes: Indexes,
    /// Bytes of valid batches from position 0; the segment is truncated here.
    pub valid_bytes: u64,
    /// The offset after the last valid batch, if any batch was found.
    pub next_offset: Option<i64>,
    /// Why the scan stopped before `end`, if it did.
    pub error: Option<String>,
    /// The scan stopped at a batch that checks out (CRC included) but whose offsets do not
    /// follow the batches before it or leave the segment: damage, never an interrupted
    /// write (which cannot produce a whole batch with a valid checksum).
    pub misplaced: bool,
    /// The offset of the first control batch (a transaction marker) among the valid ones:
    /// without one, the segment's `.txnindex` can hold no entry.
    pub first_control_offset: Option<i64>,
}

/// Validates the batches of a segment between `start` and `end` (CRC, lengths, offsets
/// increasing and within the segment) and rebuilds the indexes. `start` must be a batch
/// boundary; indexes are rebuilt only when it is 0.
pub fn scan_segment(
    file: &dyn FileHandle,
    path: &Path,
    base_offset: i64,
    start: u64,
    end: u64,
    config: &LogConfig,
) -> Result<ScanResult, LogError> {
    let mut result = ScanResult {
        indexes: Indexes::new(config),
        valid_bytes: start,
        next_offset: None,
        error: None,
        misplaced: false,
        first_control_offset: None,
    };
    let limits = ValidateLimits {
        batch_bytes_max: usize::try_from(i32::MAX).unwrap_or(usize::MAX),
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = start;
    let mut position = start;
    let mut expected_offset = base_offset;
    while position < end {
        let Some(size) = peek_size(&mut buf, &mut buf_start, file, path, position, end)? else {
            result.error = Some(format!("torn or invalid batch length at byte {position}"));
            break;
        };
        let from = usize::try_from(position - buf_start).unwrap_or(usize::MAX);
        let Some(bytes) = buf.get(from..from.saturating_add(size)) else {
            result.error = Some(format!("truncated batch at byte {position}"));
            break;
        };
        let header = match validate(bytes, &limits) {
            Ok(h) => h,
            Err(e) => {
                result.error = Some(format!("invalid batch at byte {position}: {e}"));
                break;
            }
        };
        if header.base_offset < expected_offset
            || relative(base_offset, header.last_offset()).is_none()
        {
            result.error = Some(format!(
                "batch at byte {position} has offset {} below {expected_offset} or outside the segment",
                header.base_offset
            ));
            result.misplaced = true;
            break;
        }
        if header.is_control() && result.first_control_offset.is_none() {
            result.first_control_offset = Some(header.base_offset);
        }
        result
            .indexes
            .on_batch(base_offset, &header, position, config.index_interval_bytes);
        expected_offset = header.next_offset();
        result.next_offset = Some(expected_offset);
        position += size as u64;
        result.valid_bytes = position;
    }
    Ok(result)
}

/// Makes sure `buf` holds the whole batch at `position` (refilling it from the file) and
/// returns the batch's size; `None` if the length field is implausible or runs past `end`.
fn peek_size(
    buf: &mut Vec<u8>,
    buf_start: &mut u64,
    file: &dyn FileHandle,
    path: &Path,
    position: u64,
    end: u64,
) -> Result<Option<usize>, LogError> {
    let remaining = end - position;
    if remaining < BATCH_HEADER_BYTES as u64 {
        return Ok(None);
    }
    let fill = |buf: &mut Vec<u8>, buf_start: &mut u64, want: u64| -> Result<(), LogError> {
        let len = usize::try_from(want.min(remaining)).unwrap_or(0);
        buf.resize(len, 0);
        read_exact_at(file, position, buf).map_err(|e| LogError::io("read", path, e))?;
        *buf_start = position;
        Ok(())
    };
    let in_buf = |buf: &Vec<u8>, buf_start: u64, len: u64| {
        position >= buf_start && position + len <= buf_start + buf.len() as u64
    };
    if !in_buf(buf, *buf_start, BATCH_HEADER_BYTES as u64) {
        fill(buf, buf_start, SCAN_CHUNK_BYTES as u64)?;
    }
    let from = usize::try_from(position - *buf_start).unwrap_or(usize::MAX);
    let Some(header) = buf.get(from..).and_then(|b| BatchHeader::parse(b).ok()) else {
        return Ok(None);
    };
    let size = header.size_bytes() as u64;
    if size < BATCH_HEADER_BYTES as u64 || size > remaining {
        return Ok(None);
    }
    if !in_buf(buf, *buf_start, size) {
        fill(buf, buf_start, size.max(SCAN_CHUNK_BYTES as u64))?;
    }
    Ok(usize::try_from(size).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_twenty_digits() {
        assert_eq!(file_name(0, LOG_SUFFIX), "00000000000000000000.log");
        assert_eq!(file_name(1234, INDEX_SUFFIX), "00000000000000001234.index");
        assert_eq!(
            parse_file_name("00000000000000001234.index", INDEX_SUFFIX),
            Some(1234)
        );
        assert_eq!(
            parse_file_name("00000000000000001234.index", LOG_SUFFIX),
            None
        );
        assert_eq!(parse_file_name("1234.log", LOG_SUFFIX), None);
        assert_eq!(
            parse_file_name("0000000000000000123x.log", LOG_SUFFIX),
            None
        );
        assert_eq!(
            parse_file_name("99999999999999999999.log", LOG_SUFFIX),
            None
        );
    }

    /// A reader still holding a segment whose `.txnindex` a compaction swap replaced reads
    /// the entries of the file it was pinned with (and their length), not the cleaned one.
    #[test]
    fn a_pinned_txn_index_outlives_the_swap_of_its_name() {
        use crate::fs::{write_all_at, SimFs};
        let fs = SimFs::new();
        let dir = Path::new("/data/t-0");
        fs.create_dir_all(dir).unwrap();
        let segment = Segment::new(dir, 0, 0);
        assert!(
            segment.txn_index_file(&fs).unwrap().is_none(),
            "no file yet"
        );
        let old = vec![1u8; 2 * TXN_INDEX_ENTRY_BYTES];
        let file = fs.create(&segment.txn_index_path).unwrap();
        write_all_at(file.as_ref(), 0, &old).unwrap();
        segment.pin_txn_index(&fs).unwrap();
        // The cleaned index (one entry) renamed over the name.
        let cleaned = dir.join("00000000000000000000.txnindex.swap");
        let new = fs.create(&cleaned).unwrap();
        write_all_at(new.as_ref(), 0, &[2u8; TXN_INDEX_ENTRY_BYTES]).unwrap();
        fs.rename(&cleaned, &segment.txn_index_path).unwrap();
        assert_eq!(segment.txn_index_len(&fs).unwrap(), old.len() as u64);
        let read = segment.txn_index_file(&fs).unwrap().expect("pinned");
        let mut bytes = vec![0u8; old.len()];
        read_exact_at(read.as_ref(), 0, &mut bytes).unwrap();
        assert_eq!(bytes, old);
        // A segment without the pin (the cleaned one) reads the new file.
        let merged = Segment::new(dir, 0, 0);
        assert_eq!(
            merged.txn_index_len(&fs).unwrap(),
            TXN_INDEX_ENTRY_BYTES as u64
        );
    }
}
