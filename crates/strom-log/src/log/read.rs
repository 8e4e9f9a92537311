//! Reading: whole batches as file ranges (for `sendfile`), and ListOffsets lookups.
//! Readers take no log-wide lock for their I/O. Every index entry they use is checked
//! against the batch it names; a mismatch repairs the indexes (`repair.rs`).

use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use strom_records::{
    validate, walk_records, BatchHeader, DecodeLimits, RecordsError, ValidateLimits, WalkOptions,
};

use crate::error::LogError;
use crate::fs::{read_exact_at, FileHandle};
use crate::index::OffsetEntry;
use crate::segment::{check_entry, read_header, relative, seek_batch, Seek, Segment};

use super::{Health, Log};

/// Contiguous whole batches inside one segment file.
#[derive(Clone, Debug)]
pub struct FileRange {
    pub file: Arc<dyn FileHandle>,
    pub path: PathBuf,
    pub position: u64,
    pub len_bytes: u64,
    /// Base offset of the first batch (may be below the offset asked for).
    pub first_offset: i64,
    /// The offset after the last batch in the range.
    pub next_offset: i64,
}

impl FileRange {
    /// The real file for `sendfile(2)`; `None` on the simulated file system.
    pub fn std_file(&self) -> Option<&std::fs::File> {
        self.file.std_file()
    }

    /// Copies the range into memory (the fallback when `sendfile` is not available).
    pub fn read_bytes(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.len_bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "range too large"))?;
        let mut buf = vec![0u8; len];
        read_exact_at(self.file.as_ref(), self.position, &mut buf)?;
        Ok(buf)
    }
}

/// The answer to a read: the data (if any) and the log's offsets at the time.
#[derive(Clone, Debug)]
pub struct ReadInfo {
    pub range: Option<FileRange>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
}

/// An answer to a ListOffsets query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp_ms: i64,
    pub offset: i64,
}

impl Log {
    /// Whole batches starting with the one that holds `offset`, at most `max_bytes` of them
    /// but always at least one, and only batches that end below `max_offset` (e.g. the high
    /// watermark). Errors with `OffsetOutOfRange` outside `log_start..=log_end`.
    ///
    /// A read-only log (disk full) serves everything; a failed one only what lies below its
    /// durable offset, the last successful fsync: above it the page cache may hold bytes
    /// that never reached the disk (an offset there errors with `Failed`).
    ///
    /// An I/O error while reading (opening a segment, reading an index or a batch header)
    /// latches the log failed, as a failed write does ([`Log::read_failed`]).
    pub fn read(&self, offset: i64, max_bytes: u64, max_offset: i64) -> Result<ReadInfo, LogError> {
        self.read_unlatched(offset, max_bytes, max_offset)
            .map_err(|error| self.read_failed(error))
    }

    /// A read of this log's data failed with `error` (here, or where a caller read the
    /// bytes of a [`ReadInfo`]'s range): an I/O error (`LogError::Io`; corruption, an
    /// offset out of range and the like are not) latches the log failed, as Kafka's log
    /// directory failure handling treats every `IOException` of a log, reads included
    /// (KIP-112): a disk that fails reads is not trusted with writes, and the broker takes
    /// the log's directory offline (`Log::is_failed`). Returns the error, to pass on.
    pub fn read_failed(&self, error: LogError) -> LogError {
        match error {
            LogError::Io { .. } => self.fail(error),
            other => other,
        }
    }

    fn read_unlatched(
        &self,
        offset: i64,
        max_bytes: u64,
        max_offset: i64,
    ) -> Result<ReadInfo, LogError> {
        if self.closed.load(Ordering::Acquire) {
            self.check_usable()?;
        }
        let log_start_offset = self.log_start_offset();
        let log_end_offset = self.log_end_offset();
        // Nothing past the log end offset, even bytes a failed write published.
        let mut max_offset = max_offset.min(log_end_offset);
        if self.health() == Health::Failed {
            let durable = self.durable_offset();
            if offset >= durable && offset < log_end_offset {
                self.check_usable()?;
            }
            max_offset = max_offset.min(durable);
        }
        let mut info = ReadInfo {
            range: None,
            log_start_offset,
            log_end_offset,
            high_watermark: self.high_watermark(),
        };
        if offset < log_start_offset || offset > log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset,
                log_end_offset,
            });
        }
        if offset == log_end_offset || offset >= max_offset {
            return Ok(info);
        }
        for segment in self.segments_from(offset) {
            let file = segment.log_file(&self.handles)?;
            let end = segment.size_bytes();
            let Some((position, first)) = self.find_batch(&segment, file.as_ref(), offset, end)?
            else {
                continue;
            };
            if first.last_offset() >= max_offset {
                return Ok(info);
            }
            info.range = Some(
                self.collect_range(&segment, file, position, first, end, max_bytes, max_offset)?,
            );
            return Ok(info);
        }
        Ok(info)
    }

    /// Calls `f` with the header of every batch from the one holding `offset` up to the
    /// log end offset as of the call, reading only the headers (one small `pread` each),
    /// never the records: what rebuilding per-producer state from the tail of a log needs.
    pub fn for_each_batch_header(
        &self,
        offset: i64,
        mut f: impl FnMut(&BatchHeader),
    ) -> Result<(), LogError> {
        self.check_usable()?;
        let end_offset = self.log_end_offset();
        let offset = offset.max(self.log_start_offset());
        for segment in self.segments_from(offset) {
            let file = segment.log_file(&self.handles)?;
            let end = segment.size_bytes();
            let from = offset.max(segment.base_offset);
            let Some((mut position, _)) = self.find_batch(&segment, file.as_ref(), from, end)?
            else {
                continue;
            };
            while let Some(header) = read_header(file.as_ref(), &segment.log_path, position, end)? {
                if header.base_offset >= end_offset {
                    return Ok(());
                }
                f(&header);
                position += header.size_bytes() as u64;
            }
        }
        Ok(())
    }

    /// The segment holding `offset` and every later one (cheap `Arc` clones).
    pub(super) fn segments_from(&self, offset: i64) -> Vec<Arc<Segment>> {
        let segments = self.segments_read();
        let start = segments
            .range(..=offset)
            .next_back()
            .map_or(i64::MIN, |(base, _)| *base);
        segments
            .range(start..)
            .map(|(_, s)| Arc::clone(s))
            .collect()
    }

    /// Position and header of the first batch in `segment` whose last offset is `>= offset`.
    /// An index entry that does not match the `.log` gets the indexes rebuilt and the
    /// lookup retried once; if they are still wrong (the repair had to be skipped), the
    /// segment is scanned from its start.
    pub(super) fn find_batch(
        &self,
        segment: &Arc<Segment>,
        file: &dyn FileHandle,
        offset: i64,
        end: u64,
    ) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let path = &segment.log_path;
        let base = segment.base_offset;
        if let Some(rel) = relative(base, offset) {
            for attempt in 0..2 {
                let (entry, generation) =
                    segment.with_indexes_at(&self.handles, &self.config, |ix| {
                        ix.offset.lookup_entry(rel)
                    })?;
                // Read after the entry: the writer publishes a batch's bytes before its
                // entry, so an entry past this size is wrong, not a race with an append.
                let end = end.max(segment.size_bytes());
                match seek_batch(file, path, base, entry, offset, end)? {
                    Seek::Found(position, header) => return Ok(Some((position, header))),
                    Seek::End => return Ok(None),
                    Seek::StaleIndex(reason) if attempt == 0 => {
                        self.repair_indexes(segment, generation, &reason)?;
                    }
                    Seek::StaleIndex(_) => {}
                }
            }
        }
        match seek_batch(file, path, base, None, offset, end)? {
            Seek::Found(position, header) => Ok(Some((position, header))),
            Seek::End | Seek::StaleIndex(_) => Ok(None),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn collect_range(
        &self,
        segment: &Segment,
        file: Arc<dyn FileHandle>,
        position: u64,
        first: BatchHeader,
        end: u64,
        max_bytes: u64,
        max_offset: i64,
    ) -> Result<FileRange, LogError> {
        let mut len_bytes = first.size_bytes() as u64;
        let mut next_offset = first.next_offset();
        while let Some(header) =
            read_header(file.as_ref(), &segment.log_path, position + len_bytes, end)?
        {
            let size = header.size_bytes() as u64;
            if len_bytes + size > max_bytes || header.last_offset() >= max_offset {
                break;
            }
            len_bytes += size;
            next_offset = header.next_offset();
        }
        Ok(FileRange {
            file,
            path: segment.log_path.clone(),
            position,
            len_bytes,
            first_offset: first.base_offset,
            next_offset,
        })
    }

    /// ListOffsets by timestamp: the first record (in offset order, at or after the log
    /// start) whose timestamp is `>= timestamp_ms`, found in the first batch whose max
    /// timestamp qualifies. The batch's records are walked for this (decompressed within a
    /// bound, never decoded into values; a compressed one may wait while other walks
    /// decompress, so call it where blocking is allowed); if that fails the answer falls back
    /// to the batch's base offset and max timestamp. `None` if no batch qualifies.
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<TimestampOffset>, LogError> {
        self.check_usable()?;
        let log_start = self.log_start_offset();
        let segments: Vec<Arc<Segment>> = self.segments_read().values().cloned().collect();
        for segment in segments {
            if let Some(found) = self.timestamp_in_segment(&segment, timestamp_ms, log_start)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// [`Log::offset_for_timestamp`] within one segment, repairing its indexes (once) if
    /// an entry it goes through does not match the `.log`.
    fn timestamp_in_segment(
        &self,
        segment: &Arc<Segment>,
        timestamp_ms: i64,
        log_start: i64,
    ) -> Result<Option<TimestampOffset>, LogError> {
        let base = segment.base_offset;
        for attempt in 0..2 {
            let (hint, generation) =
                segment.with_indexes_at(&self.handles, &self.config, |ix| {
                    if ix.max_timestamp_ms < timestamp_ms {
                        return None;
                    }
                    let anchor = ix.time.lookup(timestamp_ms);
                    let rel = anchor.map_or(0, |e| e.relative_offset);
                    Some((anchor, ix.offset.lookup_entry(rel)))
                })?;
            let Some((anchor, entry)) = hint else {
                return Ok(None);
            };
            let search = TimestampSearch {
                timestamp_ms,
                log_start,
                anchor: anchor.map(|e| {
                    let offset = base.saturating_add(i64::from(e.relative_offset));
                    (offset, e.timestamp_ms)
                }),
            };
            let file = segment.log_file(&self.handles)?;
            // Read after the entries (see `find_batch`).
            let end = segment.size_bytes();
            match search.run(file.as_ref(), segment, entry, end)? {
                Ok(found) => return Ok(found),
                Err(reason) if attempt == 0 => {
                    self.repair_indexes(segment, generation, &reason)?;
                }
                Err(_) => break,
            }
        }
        // Still wrong after a repair (skipped for a growing active segment): no hints.
        let search = TimestampSearch {
            timestamp_ms,
            log_start,
            anchor: None,
        };
        let file = segment.log_file(&self.handles)?;
        Ok(search
            .run(file.as_ref(), segment, None, segment.size_bytes())?
            .unwrap_or(None))
    }

    /// ListOffsets MAX_TIMESTAMP (KIP-734): the largest timestamp in the log and the
    /// offset of the first record that carries it (the batch's last offset if the batch
    /// cannot be decoded). Below the log start it is not reported. `None` for an empty log.
    pub fn max_timestamp(&self) -> Result<Option<TimestampOffset>, LogError> {
        self.check_usable()?;
        match self.max_timestamp_once()? {
            Ok(found) => Ok(found),
            Err((segment, generation, reason, _)) => {
                self.repair_indexes(&segment, generation, &reason)?;
                // Retried once; if still wrong, the indexes' answer as before.
                Ok(match self.max_timestamp_once()? {
                    Ok(found) => found,
                    Err((_, _, _, found)) => Some(found),
                })
            }
        }
    }

    /// One [`Log::max_timestamp`] pass; `Err` with the segment, its index generation, why
    /// and the indexes' answer when the batch its time index names does not carry that
    /// timestamp.
    fn max_timestamp_once(&self) -> Result<MaxTimestampPass, LogError> {
        let log_start = self.log_start_offset();
        let segments: Vec<Arc<Segment>> = self.segments_read().values().cloned().collect();
        let mut best: Option<(TimestampOffset, Arc<Segment>, u64)> = None;
        for segment in segments {
            let ((timestamp_ms, offset), generation) =
                segment.with_indexes_at(&self.handles, &self.config, |ix| {
                    (ix.max_timestamp_ms, ix.offset_of_max_timestamp)
                })?;
            let better = best
                .as_ref()
                .is_none_or(|(b, _, _)| timestamp_ms > b.timestamp_ms);
            if offset >= log_start && better {
                let found = TimestampOffset {
                    timestamp_ms,
                    offset,
                };
                best = Some((found, segment, generation));
            }
        }
        let Some((found, segment, generation)) = best else {
            return Ok(Ok(None));
        };
        let file = segment.log_file(&self.handles)?;
        // Read after the indexes (see `find_batch`).
        let end = segment.size_bytes();
        match self.find_batch(&segment, file.as_ref(), found.offset, end)? {
            Some((position, header))
                if header.base_offset <= found.offset
                    && header.max_timestamp == found.timestamp_ms =>
            {
                let exact = first_record_at(
                    file.as_ref(),
                    position,
                    &header,
                    found.timestamp_ms,
                    log_start,
                );
                Ok(Ok(Some(exact.unwrap_or(found))))
            }
            _ => {
                let reason = format!(
                    "time index names offset {} for max timestamp {}, which no batch there carries",
                    found.offset, found.timestamp_ms
                );
                Ok(Err((segment, generation, reason, found)))
            }
        }
    }
}

/// The outcome of one [`Log::max_timestamp`] pass (see `max_timestamp_once`).
type MaxTimestampPass =
    Result<Option<TimestampOffset>, (Arc<Segment>, u64, String, TimestampOffset)>;

/// Bound on a batch decoded for a timestamp lookup (compressed batches expand).
const LOOKUP_DECOMPRESSED_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The first record of the batch at `position` with a timestamp `>= timestamp_ms`. The
/// records are walked, not decoded: memory is one decompression window whatever they hold.
fn first_record_at(
    file: &dyn FileHandle,
    position: u64,
    header: &BatchHeader,
    timestamp_ms: i64,
    log_start: i64,
) -> Option<TimestampOffset> {
    let mut bytes = vec![0u8; header.size_bytes()];
    read_exact_at(file, position, &mut bytes).ok()?;
    let unbounded = ValidateLimits {
        batch_bytes_max: usize::MAX,
    };
    validate(&bytes, &unbounded).ok()?;
    let limits = DecodeLimits {
        decompressed_bytes_max: LOOKUP_DECOMPRESSED_BYTES_MAX,
    };
    // Blocks while too many walks decompress (timestamp lookups run on blocking threads).
    let _permit = super::records::decompressing_permit(header);
    /// Ends the walk at the record found (or at a damaged batch).
    enum Stop {
        Found(TimestampOffset),
        Damaged,
    }
    impl From<RecordsError> for Stop {
        fn from(_: RecordsError) -> Stop {
            Stop::Damaged
        }
    }
    let walked = walk_records(&bytes, &limits, WalkOptions::STORED, |info, _| {
        let found = TimestampOffset {
            timestamp_ms: info.timestamp_ms(header),
            offset: info.offset(header),
        };
        if found.timestamp_ms >= timestamp_ms && found.offset >= log_start {
            return Err(Stop::Found(found));
        }
        Ok(())
    });
    match walked {
        Err(Stop::Found(found)) => Some(found),
        Ok(_) | Err(Stop::Damaged) => None,
    }
}

/// A timestamp lookup in one segment, starting at an index hint that it checks: `anchor`
/// is the time-index entry used (its offset and timestamp), which claims that the batch
/// holding that offset has that max timestamp and every earlier batch a smaller one.
struct TimestampSearch {
    timestamp_ms: i64,
    log_start: i64,
    anchor: Option<(i64, i64)>,
}

impl TimestampSearch {
    /// The answer in this segment (`Ok(None)` if none), or `Err(reason)` if an index
    /// entry used does not match the `.log`.
    fn run(
        &self,
        file: &dyn FileHandle,
        segment: &Segment,
        entry: Option<OffsetEntry>,
        end: u64,
    ) -> Result<Result<Option<TimestampOffset>, String>, LogError> {
        let path = &segment.log_path;
        let mut position = match check_entry(file, path, segment.base_offset, entry, end)? {
            Ok(position) => position,
            Err(reason) => return Ok(Err(reason)),
        };
        let mut anchor_checked = self.anchor.is_none();
        while let Some(header) = read_header(file, path, position, end)? {
            if let Some((offset, timestamp_ms)) = self.anchor.filter(|_| !anchor_checked) {
                if let Err(reason) = check_anchor(&header, offset, timestamp_ms) {
                    return Ok(Err(reason));
                }
                anchor_checked = header.last_offset() >= offset;
            }
            if header.max_timestamp >= self.timestamp_ms && header.last_offset() >= self.log_start {
                let found =
                    first_record_at(file, position, &header, self.timestamp_ms, self.log_start);
                return Ok(Ok(Some(found.unwrap_or(TimestampOffset {
                    timestamp_ms: header.max_timestamp,
                    offset: header.base_offset.max(self.log_start),
                }))));
            }
            position += header.size_bytes() as u64;
        }
        if !anchor_checked {
            return Ok(Err(
                "time index entry names an offset past the segment".into()
            ));
        }
        Ok(Ok(None))
    }
}

/// Checks `header` against a time-index entry (`offset`, `timestamp_ms`) on the way to it.
fn check_anchor(header: &BatchHeader, offset: i64, timestamp_ms: i64) -> Result<(), String> {
    let (first, last) = (header.base_offset, header.last_offset());
    if last < offset && header.max_timestamp >= timestamp_ms {
        return Err(format!(
            "batch {first}..={last} before time index offset {offset} reaches its timestamp {timestamp_ms}"
        ));
    }
    if last >= offset && (first > offset || header.max_timestamp != timestamp_ms) {
        return Err(format!(
            "time index entry ({timestamp_ms}, {offset}) does not match batch {first}..={last} with max timestamp {}",
            header.max_timestamp
        ));
    }
    Ok(())
}
