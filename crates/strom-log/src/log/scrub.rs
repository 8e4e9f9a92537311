//! Scrubbing: verifying cold segments (inactive, and wholly below the durable offset, so
//! their bytes are final and on disk) batch by batch, CRCs included, so that damage to
//! data nobody reads (a flipped bit, an inflated length, a file cut short) is found and
//! reported before a consumer or a recovery meets it. Kafka serves such damage silently.
//!
//! The log does one step at a time within a byte budget the caller gives
//! ([`Log::scrub_step`], with a [`ScrubCursor`] the caller keeps), and [`ScrubBudget`] is
//! the rate limit with time passed in: no clock and no thread here. A step reads the
//! segment in chunks of [`SCRUB_CHUNK_BYTES`] (memory bounded whatever a damaged length
//! field says; a batch's CRC is carried over from step to step), then advises the kernel to
//! drop the pages it read, so that a pass over cold data does not push what readers use
//! out of the page cache. It never writes.
//!
//! Damage is confirmed before it is reported: under the writer mutex (which truncations
//! hold, and which orders with a compaction swap through the segment map) the segment must
//! still be the same cold segment of the same size; otherwise it changed under the scrub
//! (deleted, compacted, truncated) and the finding is dropped. A batch whose header checks
//! out but whose CRC does not, or a header that does not check out (length, magic,
//! offsets), may have a damaged length that hides where the next batch starts: the rest of
//! the segment is searched byte by byte for an intact (CRC-checked) batch, the
//! same search recovery uses at open (`recover::later_batch`), the offsets before it are
//! reported and the scrub goes on there; with none, everything to the segment's end is
//! reported. Damage is reported in the words of [`crate::LogError::Damaged`] (damage found
//! at open) and with the same ways to recover ([`ScrubDamage::advice`]). Repair from an
//! in-sync replica (future) belongs in the broker's
//! scrubber: [`ScrubDamage`] names the file, byte position and offset range a repair would
//! fetch.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use strom_records::{BatchHeader, BATCH_HEADER_BYTES, MAGIC_V2};

use crate::error::LogError;
use crate::fs::{read_exact_at, FileHandle};
use crate::segment::{relative, Segment};

use super::recover::{later_batch, Later};
use super::Log;

/// Bytes read from a segment at a time (and the most held in memory by a step).
pub const SCRUB_CHUNK_BYTES: usize = 256 * 1024;
/// Where a batch's CRC-32C starts (the attributes field).
const CRC_START_BYTES: u64 = 21;
/// The 12-byte log overhead (base offset and length) plus the fields through the magic.
const BATCH_LENGTH_MIN: i32 = (BATCH_HEADER_BYTES - 12) as i32;

/// A byte budget refilled at `bytes_per_sec`, the scrubber's rate limit. Time is passed in.
/// A step may overspend (one chunk at most); the debt is paid by waiting.
#[derive(Clone, Debug)]
pub struct ScrubBudget {
    bytes_per_sec: u64,
    burst_bytes: u64,
    /// Bytes that may be read now; negative after an overspend.
    available: i64,
    /// Sub-byte refill carried between calls, in bytes x 1000.
    carry_milli: u64,
    last_ms: Option<i64>,
}

impl ScrubBudget {
    /// A budget of `bytes_per_sec` that never banks more than `burst_bytes` (so a scrubber
    /// that was idle does not read a burst at full disk speed). Starts empty.
    pub fn new(bytes_per_sec: u64, burst_bytes: u64) -> ScrubBudget {
        ScrubBudget {
            bytes_per_sec,
            burst_bytes: burst_bytes.max(1),
            available: 0,
            carry_milli: 0,
            last_ms: None,
        }
    }

    /// Adds what the time since the last call earned (the first call only starts the clock;
    /// time going backwards earns nothing).
    pub fn refill(&mut self, now_ms: i64) {
        let Some(last) = self.last_ms else {
            self.last_ms = Some(now_ms);
            return;
        };
        let elapsed_ms = u64::try_from(now_ms.saturating_sub(last)).unwrap_or(0);
        self.last_ms = Some(last.max(now_ms));
        let earned_milli =
            u128::from(elapsed_ms) * u128::from(self.bytes_per_sec) + u128::from(self.carry_milli);
        let earned = earned_milli / 1000;
        self.carry_milli = u64::try_from(earned_milli % 1000).unwrap_or(0);
        let burst = i64::try_from(self.burst_bytes).unwrap_or(i64::MAX);
        let earned = i64::try_from(earned).unwrap_or(i64::MAX);
        self.available = self.available.saturating_add(earned).min(burst);
        if self.available == burst {
            self.carry_milli = 0;
        }
    }

    /// Bytes that may be read now.
    pub fn available_bytes(&self) -> u64 {
        u64::try_from(self.available).unwrap_or(0)
    }

    /// Accounts for bytes read (may leave a debt).
    pub fn spend(&mut self, bytes: u64) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.available = self.available.saturating_sub(bytes);
    }

    /// How long until `bytes` (at most the burst) may be read; 0 if now.
    pub fn wait_ms(&self, bytes: u64) -> u64 {
        let want = i64::try_from(bytes.min(self.burst_bytes)).unwrap_or(i64::MAX);
        let missing = u64::try_from(want.saturating_sub(self.available)).unwrap_or(0);
        if missing == 0 || self.bytes_per_sec == 0 {
            return 0;
        }
        let missing_milli = u128::from(missing) * 1000;
        let missing_milli = missing_milli.saturating_sub(u128::from(self.carry_milli));
        let ms = missing_milli.div_ceil(u128::from(self.bytes_per_sec));
        u64::try_from(ms).unwrap_or(u64::MAX)
    }
}

/// What the scrubber found wrong in a segment. The bytes are left as they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrubDamage {
    pub path: PathBuf,
    /// Where the damaged batch (or the damaged framing) starts.
    pub position: u64,
    /// The offsets that cannot be trusted: `first_offset..=last_offset`.
    pub first_offset: i64,
    pub last_offset: i64,
    pub reason: String,
}

impl ScrubDamage {
    /// What an operator can do about it, for the report's log line: the same ways back to
    /// an intact copy as for damage found at open ([`crate::error::restore_advice`]), and
    /// what the broker does meanwhile. See "Damage the scrubber found" in docs/FORMATS.md.
    pub fn advice(&self) -> String {
        let dir = self.path.parent().unwrap_or(&self.path);
        format!(
            "Strom keeps serving this partition and cut or deleted nothing in {}: consumers \
             that fetch offsets {}..={} get the batch as stored (clients that check CRCs \
             reject it, others may deliver garbage), and every scrub pass reports it again \
             until someone acts. To recover: {}; or, if losing every record up to offset {} \
             is acceptable, move the log start offset past it with DeleteRecords \
             (kafka-delete-records.sh). See \"Damage the scrubber found\" in docs/FORMATS.md",
            dir.display(),
            self.first_offset,
            self.last_offset,
            crate::error::restore_advice(dir),
            self.last_offset
        )
    }
}

impl fmt::Display for ScrubDamage {
    /// The same words as [`LogError::Damaged`] (which is damage found at open).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "damaged partition log file {} at byte {} (offsets {}..={}): {}",
            self.path.display(),
            self.position,
            self.first_offset,
            self.last_offset,
            self.reason
        )
    }
}

/// Where a scrub of one log stands; start with `ScrubCursor::default()` and hand the same
/// cursor to every [`Log::scrub_step`] of a pass.
#[derive(Clone, Debug, Default)]
pub struct ScrubCursor {
    /// The next segment to scrub is the first cold one at or after this base offset.
    next_base: i64,
    current: Option<InProgress>,
}

#[derive(Clone, Debug)]
struct InProgress {
    segment: Arc<Segment>,
    size_bytes: u64,
    /// The next segment's base offset: this one's batches end before it.
    end_offset: i64,
    /// Start of the next batch to check (or of the one being checked).
    position: u64,
    /// The least offset the next batch may start at.
    expected_offset: i64,
    /// A batch whose CRC is being computed across steps.
    partial: Option<PartialBatch>,
    /// The last chunk read, kept for the next step (the segment does not change while it
    /// stays cold, which each step checks first).
    chunk: Chunk,
}

/// Bytes of a segment read at `start`.
#[derive(Clone, Debug, Default)]
struct Chunk {
    bytes: Vec<u8>,
    start: u64,
}

#[derive(Clone, Copy, Debug)]
struct PartialBatch {
    header: BatchHeader,
    crc: u32,
    /// The next byte to feed the CRC.
    at: u64,
}

/// What one [`Log::scrub_step`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubStep {
    /// Bytes read from segment files (what the budget pays for).
    pub bytes_read: u64,
    /// Bytes of batches found sound, CRC included.
    pub bytes_verified: u64,
    /// Damage found (and confirmed); a step stops at the first.
    pub damage: Option<ScrubDamage>,
    /// The base offset of a segment whose scrub finished in this step.
    pub segment_done: Option<i64>,
    /// No cold segment is left after the cursor: this pass over the log is complete, and
    /// the cursor starts over at the next call.
    pub pass_done: bool,
}

/// Damage found by a check, before it is confirmed.
#[derive(Debug)]
struct Finding {
    /// The framing is lost: nothing after this point in the segment can be found.
    framing: bool,
    position: u64,
    first_offset: i64,
    last_offset: i64,
    reason: String,
}

impl Log {
    /// Verifies the next part of this log's cold segments, reading about `budget_bytes`
    /// (at least some progress whatever the budget); see the module docs. Never writes.
    pub fn scrub_step(
        &self,
        cursor: &mut ScrubCursor,
        budget_bytes: u64,
    ) -> Result<ScrubStep, LogError> {
        if self.closed.load(Ordering::Acquire) {
            self.check_usable()?;
        }
        let mut step = ScrubStep::default();
        let Some(mut current) = cursor.current.take() else {
            match self.next_cold_segment(cursor.next_base) {
                Some((segment, end_offset)) => {
                    cursor.current = Some(InProgress {
                        size_bytes: segment.size_bytes(),
                        expected_offset: segment.base_offset,
                        segment,
                        end_offset,
                        position: 0,
                        partial: None,
                        chunk: Chunk::default(),
                    });
                }
                None => {
                    cursor.next_base = i64::MIN;
                    step.pass_done = true;
                }
            }
            return Ok(step);
        };
        let base = current.segment.base_offset;
        if !self.still_cold(&current) {
            // Deleted, compacted, truncated or grown since: the next pass sees it anew.
            cursor.next_base = base.saturating_add(1);
            return Ok(step);
        }
        let file = current.segment.log_file(&self.handles)?;
        let mut chunk = std::mem::take(&mut current.chunk);
        let mut reader = ChunkReader::new(file.as_ref(), current.size_bytes, &mut chunk);
        let found = self.scrub_segment(&mut reader, &mut current, budget_bytes, &mut step);
        let (read_from, read_len) = reader.read_span();
        step.bytes_read = reader.bytes_read;
        file.drop_cache(read_from, read_len);
        current.chunk = chunk;
        let mut finding = found?;
        let mut done = finding.as_ref().is_some_and(|f| f.framing);
        let at_end = current.position >= current.size_bytes && current.partial.is_none();
        if finding.is_none() && at_end {
            done = true;
            if current.expected_offset < current.end_offset {
                finding = Some(Finding {
                    framing: true,
                    position: current.size_bytes,
                    first_offset: current.expected_offset,
                    last_offset: current.end_offset - 1,
                    reason: format!(
                        "the batches end at offset {} but the next segment starts at {}: offsets are missing (the file was cut short at a batch boundary?)",
                        current.expected_offset, current.end_offset
                    ),
                });
            }
        }
        if let Some(finding) = finding {
            let damage = ScrubDamage {
                path: current.segment.log_path.clone(),
                position: finding.position,
                first_offset: finding.first_offset,
                last_offset: finding.last_offset.max(finding.first_offset),
                reason: finding.reason,
            };
            if !self.confirm(&current) {
                tracing::debug!(%damage, "segment changed during the scrub; not reported");
                cursor.next_base = base.saturating_add(1);
                return Ok(step);
            }
            step.damage = Some(damage);
        }
        if done {
            step.segment_done = Some(base);
            cursor.next_base = base.saturating_add(1);
        } else {
            cursor.current = Some(current);
        }
        Ok(step)
    }

    /// Checks batches from the cursor until the budget is spent, the segment ends or damage
    /// is found.
    fn scrub_segment(
        &self,
        reader: &mut ChunkReader<'_>,
        current: &mut InProgress,
        budget_bytes: u64,
        step: &mut ScrubStep,
    ) -> Result<Option<Finding>, LogError> {
        let budget = budget_bytes.max(1);
        while reader.bytes_read < budget && current.position < current.size_bytes {
            let position = current.position;
            let first_offset = current.expected_offset;
            let mut partial = match current.partial {
                Some(partial) => partial,
                None => match self.check_header(reader, current)? {
                    Ok(partial) => partial,
                    Err(finding) => return Ok(Some(finding)),
                },
            };
            let header = partial.header;
            let batch_end = position + header.size_bytes() as u64;
            while partial.at < batch_end && reader.bytes_read < budget {
                let len = (batch_end - partial.at).min(SCRUB_CHUNK_BYTES as u64);
                let bytes = match reader.get(partial.at, len) {
                    Ok(bytes) => bytes,
                    Err(e) => return self.read_failure(reader, current, position, e).map(Some),
                };
                partial.crc = crc32c::crc32c_append(partial.crc, bytes);
                partial.at += len;
            }
            if partial.at < batch_end {
                current.partial = Some(partial);
                return Ok(None);
            }
            current.partial = None;
            current.position = batch_end;
            current.expected_offset = current.expected_offset.max(header.next_offset());
            if partial.crc != header.crc {
                // The damaged byte may be the length (not covered by the CRC): where the
                // next batch starts is searched for, not taken from it.
                current.position = position;
                current.expected_offset = first_offset;
                let reason = format!(
                    "CRC mismatch: the batch header says {:#010x}, its bytes give {:#010x} (a damaged byte)",
                    header.crc, partial.crc
                );
                return self.resync(reader, current, reason).map(Some);
            }
            step.bytes_verified += header.size_bytes() as u64;
        }
        Ok(None)
    }

    /// Reads and checks the header of the batch at the cursor (length, magic, offsets);
    /// `Ok` starts its CRC. A header that does not check out is damage whose length field
    /// cannot be trusted: where intact batches resume is found as recovery finds it at open
    /// (`recover::later_batch`, a CRC-checked search byte by byte), and the scrub goes on
    /// there; with nothing intact after it, the rest of the segment is reported.
    fn check_header(
        &self,
        reader: &mut ChunkReader<'_>,
        current: &mut InProgress,
    ) -> Result<Result<PartialBatch, Finding>, LogError> {
        let position = current.position;
        let first_offset = current.expected_offset;
        let to_the_end = |reason: String| Finding {
            framing: true,
            position,
            first_offset,
            last_offset: current.end_offset - 1,
            reason,
        };
        let left = current.size_bytes - position;
        if left < BATCH_HEADER_BYTES as u64 {
            return Ok(Err(to_the_end(format!(
                "the segment ends {left} bytes into a batch header (cut short?)"
            ))));
        }
        let bytes = match reader.get(position, BATCH_HEADER_BYTES as u64) {
            Ok(bytes) => bytes,
            Err(e) => return self.read_failure(reader, current, position, e).map(Err),
        };
        let header = match BatchHeader::parse(bytes) {
            Ok(header) => header,
            Err(e) => return self.resync(reader, current, e.to_string()).map(Err),
        };
        if header.batch_length < BATCH_LENGTH_MIN || header.size_bytes() as u64 > left {
            return self
                .resync(
                    reader,
                    current,
                    format!(
                        "batch length {} does not fit: {left} bytes are left in the segment (an inflated length, or a file cut short)",
                        header.batch_length
                    ),
                )
                .map(Err);
        }
        let in_segment = relative(current.segment.base_offset, header.last_offset()).is_some()
            && header.last_offset_delta >= 0
            && header.last_offset() < current.end_offset;
        let plausible = header.base_offset >= current.expected_offset && in_segment;
        let reason = if header.magic != MAGIC_V2 {
            Some(format!("magic {} where 2 is expected", header.magic))
        } else if !plausible {
            Some(format!(
                "offsets {}..={} are out of order (expected from {} and below {})",
                header.base_offset,
                header.last_offset(),
                current.expected_offset,
                current.end_offset
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            return self.resync(reader, current, reason).map(Err);
        }
        Ok(Ok(PartialBatch {
            header,
            crc: 0,
            at: position + CRC_START_BYTES,
        }))
    }

    /// Damage at the cursor's batch header (`reason`): searches the rest of the segment for
    /// the next intact batch at or above the offsets expected, moves the cursor there and
    /// reports the offsets in between; without one, reports to the segment's end (framing
    /// lost). The search is read outside the chunk (accounted as read, and dropped from the
    /// page cache after).
    fn resync(
        &self,
        reader: &mut ChunkReader<'_>,
        current: &mut InProgress,
        reason: String,
    ) -> Result<Finding, LogError> {
        let position = current.position;
        let first_offset = current.expected_offset;
        let later = later_batch(
            reader.file,
            &current.segment.log_path,
            current.segment.base_offset,
            position + 1,
            current.size_bytes,
            current.expected_offset,
        )?;
        let searched_to = match &later {
            Later::Found(at, _) => *at,
            Later::None | Later::GaveUp(_) => current.size_bytes,
        };
        reader.bytes_read += searched_to.saturating_sub(position);
        reader
            .file
            .drop_cache(position, searched_to.saturating_sub(position));
        Ok(match later {
            Later::Found(at, header) if header.base_offset < current.end_offset => {
                current.position = at;
                current.expected_offset = header.base_offset;
                Finding {
                    framing: false,
                    position,
                    first_offset,
                    last_offset: (header.base_offset - 1).max(first_offset),
                    reason: format!(
                        "{reason}; intact batches resume at byte {at} with offset {}",
                        header.base_offset
                    ),
                }
            }
            Later::GaveUp(hashed) => Finding {
                framing: true,
                position,
                first_offset,
                last_offset: current.end_offset - 1,
                reason: format!(
                    "{reason}; the search for intact batches after it gave up after checksumming {hashed} bytes"
                ),
            },
            Later::Found(..) | Later::None => Finding {
                framing: true,
                position,
                first_offset,
                last_offset: current.end_offset - 1,
                reason: format!("{reason}; no intact batch follows it in the segment"),
            },
        })
    }

    /// A read that failed: a file shorter than the log knows it to be is damage (cut short
    /// while the log was open), anything else an I/O error.
    fn read_failure(
        &self,
        reader: &ChunkReader<'_>,
        current: &InProgress,
        position: u64,
        error: io::Error,
    ) -> Result<Finding, LogError> {
        let path = &current.segment.log_path;
        if error.kind() != io::ErrorKind::UnexpectedEof {
            return Err(LogError::io("read", path, error));
        }
        let len = reader
            .file
            .len_bytes()
            .map_err(|e| LogError::io("stat", path, e))?;
        Ok(Finding {
            framing: true,
            position,
            first_offset: current.expected_offset,
            last_offset: current.end_offset - 1,
            reason: format!(
                "the file is {len} bytes long, shorter than the {} bytes the log holds in it (cut short)",
                current.size_bytes
            ),
        })
    }

    /// The first cold segment at or after `from_base`, with the next segment's base.
    fn next_cold_segment(&self, from_base: i64) -> Option<(Arc<Segment>, i64)> {
        let durable = self.durable_offset();
        let segments = self.segments_read();
        let mut from = segments.range(from_base..);
        let (_, first) = from.next()?;
        let (next_base, _) = from.next()?;
        // Later segments end later still: if this one is not wholly durable, none is.
        (*next_base <= durable).then(|| (Arc::clone(first), *next_base))
    }

    /// The scrubbed segment is still in the log, inactive, wholly durable and unchanged.
    fn still_cold(&self, current: &InProgress) -> bool {
        let base = current.segment.base_offset;
        self.next_cold_segment(base)
            .is_some_and(|(segment, end_offset)| {
                Arc::ptr_eq(&segment, &current.segment)
                    && end_offset == current.end_offset
                    && segment.size_bytes() == current.size_bytes
            })
    }

    /// [`Log::still_cold`] under the writer mutex: a truncation (which holds it throughout)
    /// is then either not started or finished, and would have made the segment active.
    fn confirm(&self, current: &InProgress) -> bool {
        let _writer = self.lock_writer();
        self.still_cold(current)
    }
}

/// Reads a segment in chunks; counts what it read.
struct ChunkReader<'a> {
    file: &'a dyn FileHandle,
    limit: u64,
    chunk: &'a mut Chunk,
    bytes_read: u64,
    /// The span of the file read, for the page-cache advice.
    first_read: Option<u64>,
    last_read_end: u64,
}

impl<'a> ChunkReader<'a> {
    fn new(file: &'a dyn FileHandle, limit: u64, chunk: &'a mut Chunk) -> ChunkReader<'a> {
        ChunkReader {
            file,
            limit,
            chunk,
            bytes_read: 0,
            first_read: None,
            last_read_end: 0,
        }
    }

    /// `len` (at most one chunk) bytes at `position`, refilling from the file if needed.
    fn get(&mut self, position: u64, len: u64) -> io::Result<&[u8]> {
        let end = position.saturating_add(len);
        let chunk_end = self.chunk.start + self.chunk.bytes.len() as u64;
        let buffered = position >= self.chunk.start && end <= chunk_end;
        if !buffered {
            let fill = (SCRUB_CHUNK_BYTES as u64)
                .max(len)
                .min(self.limit.saturating_sub(position));
            let fill = usize::try_from(fill).unwrap_or(SCRUB_CHUNK_BYTES);
            self.chunk.bytes.resize(fill, 0);
            self.chunk.start = position;
            if let Err(error) = read_exact_at(self.file, position, &mut self.chunk.bytes) {
                self.chunk.bytes.clear();
                return Err(error);
            }
            self.bytes_read += fill as u64;
            self.first_read.get_or_insert(position);
            self.last_read_end = self.last_read_end.max(position + fill as u64);
        }
        let from = usize::try_from(position - self.chunk.start).unwrap_or(usize::MAX);
        let to = from.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        self.chunk
            .bytes
            .get(from..to)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "short chunk"))
    }

    /// Where reading started and how far it went.
    fn read_span(&self) -> (u64, u64) {
        match self.first_read {
            Some(first) => (first, self.last_read_end.saturating_sub(first)),
            None => (0, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ScrubBudget;

    #[test]
    fn budget_refills_at_the_rate_up_to_the_burst() {
        let mut budget = ScrubBudget::new(1000, 500);
        budget.refill(0);
        assert_eq!(budget.available_bytes(), 0, "starts empty");
        budget.refill(100);
        assert_eq!(budget.available_bytes(), 100);
        budget.refill(10_000);
        assert_eq!(budget.available_bytes(), 500, "capped at the burst");
        budget.spend(800);
        assert_eq!(budget.available_bytes(), 0, "a debt");
        assert_eq!(budget.wait_ms(100), 400, "the debt of 300 plus 100 wanted");
        budget.refill(10_300);
        assert_eq!(budget.available_bytes(), 0);
        budget.refill(10_400);
        assert_eq!(budget.available_bytes(), 100);
        budget.refill(10_000);
        assert_eq!(
            budget.available_bytes(),
            100,
            "time going back earns nothing"
        );
    }

    #[test]
    fn budget_keeps_fractions_at_low_rates() {
        let mut budget = ScrubBudget::new(3, 100);
        budget.refill(0);
        for t in 1..=1000 {
            budget.refill(t);
        }
        assert_eq!(
            budget.available_bytes(),
            3,
            "3 bytes a second, 1 ms at a time"
        );
        assert_eq!(budget.wait_ms(4), 334);
    }
}
