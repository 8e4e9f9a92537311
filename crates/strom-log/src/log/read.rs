//! Reading: whole batches as file ranges (for `sendfile`), and ListOffsets lookups.
//! Readers take no log-wide lock for their I/O.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use strom_records::{records, BatchHeader, DecodeLimits};

use crate::error::LogError;
use crate::fs::{read_exact_at, FileHandle};
use crate::segment::{read_header, relative, Segment};

use super::Log;

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
    pub fn read(&self, offset: i64, max_bytes: u64, max_offset: i64) -> Result<ReadInfo, LogError> {
        self.check_usable()?;
        let log_start_offset = self.log_start_offset();
        let log_end_offset = self.log_end_offset();
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

    /// The segment holding `offset` and every later one (cheap `Arc` clones).
    fn segments_from(&self, offset: i64) -> Vec<Arc<Segment>> {
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
    fn find_batch(
        &self,
        segment: &Segment,
        file: &dyn FileHandle,
        offset: i64,
        end: u64,
    ) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let mut position = match relative(segment.base_offset, offset) {
            Some(rel) => segment.with_indexes(&self.handles, &self.config, |ix| {
                u64::from(ix.offset.lookup(rel))
            })?,
            None => 0,
        };
        while let Some(header) = read_header(file, &segment.log_path, position, end)? {
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.size_bytes() as u64;
        }
        Ok(None)
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
    /// timestamp qualifies. The batch is decoded (decompressed within a bound) for this; if
    /// that fails the answer falls back to the batch's base offset and max timestamp.
    /// `None` if no batch qualifies.
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<TimestampOffset>, LogError> {
        self.check_usable()?;
        let log_start = self.log_start_offset();
        let segments: Vec<Arc<Segment>> = self.segments_read().values().cloned().collect();
        for segment in segments {
            let hint = segment.with_indexes(&self.handles, &self.config, |ix| {
                if ix.max_timestamp_ms < timestamp_ms {
                    return None;
                }
                let start_offset = ix
                    .time
                    .lookup(timestamp_ms)
                    .map_or(segment.base_offset, |e| {
                        segment.base_offset + i64::from(e.relative_offset)
                    });
                let rel = relative(segment.base_offset, start_offset).unwrap_or(0);
                Some(u64::from(ix.offset.lookup(rel)))
            })?;
            let Some(mut position) = hint else { continue };
            let file = segment.log_file(&self.handles)?;
            let end = segment.size_bytes();
            while let Some(header) = read_header(file.as_ref(), &segment.log_path, position, end)? {
                if header.max_timestamp >= timestamp_ms && header.last_offset() >= log_start {
                    let found =
                        first_record_at(file.as_ref(), position, &header, timestamp_ms, log_start);
                    return Ok(Some(found.unwrap_or(TimestampOffset {
                        timestamp_ms: header.max_timestamp,
                        offset: header.base_offset.max(log_start),
                    })));
                }
                position += header.size_bytes() as u64;
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP (KIP-734): the largest timestamp in the log and the
    /// offset of the first record that carries it (the batch's last offset if the batch
    /// cannot be decoded). Below the log start it is not reported. `None` for an empty log.
    pub fn max_timestamp(&self) -> Result<Option<TimestampOffset>, LogError> {
        self.check_usable()?;
        let log_start = self.log_start_offset();
        let segments: Vec<Arc<Segment>> = self.segments_read().values().cloned().collect();
        let mut best: Option<(TimestampOffset, Arc<Segment>)> = None;
        for segment in segments {
            let (timestamp_ms, offset) =
                segment.with_indexes(&self.handles, &self.config, |ix| {
                    (ix.max_timestamp_ms, ix.offset_of_max_timestamp)
                })?;
            let better = best
                .as_ref()
                .is_none_or(|(b, _)| timestamp_ms > b.timestamp_ms);
            if offset >= log_start && better {
                best = Some((
                    TimestampOffset {
                        timestamp_ms,
                        offset,
                    },
                    segment,
                ));
            }
        }
        let Some((found, segment)) = best else {
            return Ok(None);
        };
        let file = segment.log_file(&self.handles)?;
        let end = segment.size_bytes();
        let exact = match self.find_batch(&segment, file.as_ref(), found.offset, end)? {
            Some((position, header)) => first_record_at(
                file.as_ref(),
                position,
                &header,
                found.timestamp_ms,
                log_start,
            ),
            None => None,
        };
        Ok(Some(exact.unwrap_or(found)))
    }
}

/// Bound on a batch decoded for a timestamp lookup (compressed batches expand).
const LOOKUP_DECOMPRESSED_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The first record of the batch at `position` with a timestamp `>= timestamp_ms`.
fn first_record_at(
    file: &dyn FileHandle,
    position: u64,
    header: &BatchHeader,
    timestamp_ms: i64,
    log_start: i64,
) -> Option<TimestampOffset> {
    let mut bytes = vec![0u8; header.size_bytes()];
    read_exact_at(file, position, &mut bytes).ok()?;
    let limits = DecodeLimits {
        decompressed_bytes_max: LOOKUP_DECOMPRESSED_BYTES_MAX,
    };
    let decoded = records(&bytes, &limits).ok()?;
    decoded
        .iter()
        .map(|r| TimestampOffset {
            timestamp_ms: r.timestamp_ms(header),
            offset: r.offset(header),
        })
        .find(|r| r.timestamp_ms >= timestamp_ms && r.offset >= log_start)
}
