//! The record walk of a producer's batches: every record's structure, and the per-record
//! rules of Kafka's LogValidator (a key on a compacted topic, each CreateTime timestamp in
//! range). Runs before the append (the partition calls it before taking its producer-state
//! lock); `append` itself checks batch headers and CRCs only.
//!
//! An uncompressed batch is walked in place, at the cost of reading its bytes once. A
//! compressed one is decompressed as a stream (never re-encoded) within
//! `DecodeLimits::decompressed_bytes_max`, one window at a time, and only where blocking is
//! allowed: a non-blocking caller gets [`RecordsCheck::WouldBlock`]. At most
//! [`decompressing_walks_max`] such walks run at once in the process, so that concurrent
//! compressed produce requests cannot add up the codecs' windows without bound.

use std::sync::{Condvar, Mutex, OnceLock};

use strom_records::{
    batch_frames, validate_client_batch, walk_records, BatchHeader, Compression, DecodeLimits,
    RecordInfo, RecordsError, TimestampType, ValidateLimits, WalkOptions,
};

use crate::config::MessageTimestampType;
use crate::error::LogError;
use crate::record_errors::{RecordError, RecordErrorReason, RecordErrors};
use crate::segment::NO_TIMESTAMP;

use super::{lock, Log};

/// What [`Log::check_client_records`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordsCheck {
    /// Every record of every whole batch was walked and passed. (Batch framing, header
    /// rules and CRCs are the append's to check; a batch whose framing is broken is left to
    /// it.)
    Checked,
    /// Nothing was done: a batch is compressed and the caller may not block. Call again
    /// where blocking is allowed.
    WouldBlock,
}

/// Why a walk refused a batch.
enum Refusal {
    /// A record's structure is broken: the walk stopped there.
    Records(RecordsError),
    /// Every record was walked; these broke Kafka's per-record rules.
    Rules(RecordErrors),
}

impl From<RecordsError> for Refusal {
    fn from(error: RecordsError) -> Refusal {
        Refusal::Records(error)
    }
}

impl Log {
    /// Walks every record of a producer's batches (`bytes`, one or more concatenated
    /// batches) and applies Kafka's per-record rules; see the module docs. Structural
    /// errors are INVALID_RECORD (or, when the batch header is also wrong, the header's
    /// error, as Kafka checks headers and CRCs first) and stop the walk; records that break
    /// Kafka's per-record rules (a record without a key on a compacted topic, a CreateTime
    /// timestamp out of range) are collected over the whole batch into
    /// [`LogError::RecordsRejected`]: INVALID_TIMESTAMP when any timestamp was refused, else
    /// INVALID_RECORD, as in Kafka.
    pub fn check_client_records(
        &self,
        bytes: &[u8],
        now_ms: i64,
        may_block: bool,
    ) -> Result<RecordsCheck, LogError> {
        let frames = || batch_frames(bytes).map_while(Result::ok);
        if !may_block && frames().any(|(header, _)| compressed(&header)) {
            return Ok(RecordsCheck::WouldBlock);
        }
        for (batch_index, (header, range)) in frames().enumerate() {
            let batch = bytes.get(range).unwrap_or_default();
            let _permit = decompressing_permit(&header);
            if let Err(refusal) = self.walk_client_batch(batch, &header, now_ms) {
                return Err(self.refused(batch_index, batch, refusal));
            }
        }
        Ok(RecordsCheck::Checked)
    }

    /// Walks one batch, applying Kafka's `LogValidator.validateRecord` to each record: a key
    /// on a compacted topic first, else the timestamp (a CreateTime timestamp in range; a
    /// producer may not mark a batch LogAppendTime). Every record is walked, so that all
    /// refused records are counted (and the first [`crate::RECORD_ERRORS_LISTED_MAX`] listed).
    fn walk_client_batch(
        &self,
        batch: &[u8],
        header: &BatchHeader,
        now_ms: i64,
    ) -> Result<(), Refusal> {
        let compacted = self.config.cleanup_policy.compacts();
        let create_time = self.config.message_timestamp_type == MessageTimestampType::CreateTime;
        let earliest_ms = now_ms.saturating_sub(self.config.message_timestamp_before_max_ms);
        let latest_ms = now_ms.saturating_add(self.config.message_timestamp_after_max_ms);
        let log_append_time = header.timestamp_type() == TimestampType::LogAppendTime;
        let mut errors = RecordErrors::default();
        let limits = DecodeLimits::default();
        walk_records(
            batch,
            &limits,
            WalkOptions::CLIENT,
            |info: &RecordInfo, _| {
                let timestamp_ms = info.timestamp_ms(header);
                let reason = if compacted && !info.has_key() {
                    Some(RecordErrorReason::NoKey)
                } else if create_time && timestamp_ms != NO_TIMESTAMP {
                    (!(earliest_ms..=latest_ms).contains(&timestamp_ms)).then_some(
                        RecordErrorReason::TimestampOutOfRange {
                            timestamp_ms,
                            offset: info.offset(header),
                            earliest_ms,
                            latest_ms,
                        },
                    )
                } else if log_append_time {
                    Some(RecordErrorReason::LogAppendTimeFromProducer)
                } else {
                    None
                };
                if let Some(reason) = reason {
                    errors.push(RecordError {
                        record_index: info.index,
                        reason,
                    });
                }
                Ok::<_, Refusal>(())
            },
        )?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Refusal::Rules(errors))
        }
    }

    /// The error for a refused batch: the header's (framing, size, CRC, Produce rules) when
    /// it has one, as Kafka checks those before any record, else the walk's.
    fn refused(&self, batch_index: usize, batch: &[u8], refusal: Refusal) -> LogError {
        let limits = ValidateLimits {
            batch_bytes_max: usize::try_from(self.config.max_message_bytes).unwrap_or(usize::MAX),
        };
        if let Err(source) = validate_client_batch(batch, &limits) {
            return LogError::InvalidBatch {
                batch_index,
                source,
            };
        }
        match refusal {
            Refusal::Records(source) => LogError::InvalidBatch {
                batch_index,
                source,
            },
            Refusal::Rules(errors) => LogError::RecordsRejected {
                batch_index,
                errors,
            },
        }
    }
}

fn compressed(header: &BatchHeader) -> bool {
    header.compression().ok() != Some(Compression::None)
}

/// For a compressed batch, waits (blocking) until fewer than [`decompressing_walks_max`]
/// walks decompress, and holds a place until dropped; `None` for an uncompressed batch.
pub(super) fn decompressing_permit(header: &BatchHeader) -> Option<GatePermit> {
    compressed(header).then(|| DECOMPRESSING.enter())
}

/// How many record walks may decompress at once in the process (produce validation and
/// timestamp lookups; the cleaner runs on its own): one per core, at least 2 and at most 8. Each holds one 64 KiB window plus its codec's state: up to one lz4 block
/// (4 MiB) or snappy block, or a zstd window (a frame may declare up to 128 MiB, of which a
/// walk touches at most the decompression budget, 64 MiB).
pub fn decompressing_walks_max() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 8)
    })
}

/// A counting semaphore for blocking callers (record walks run on blocking threads).
struct Gate {
    running: Mutex<usize>,
    freed: Condvar,
}

static DECOMPRESSING: Gate = Gate {
    running: Mutex::new(0),
    freed: Condvar::new(),
};

impl Gate {
    fn enter(&'static self) -> GatePermit {
        let mut running = lock(&self.running);
        while *running >= decompressing_walks_max() {
            running = self
                .freed
                .wait(running)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        *running += 1;
        GatePermit { gate: self }
    }
}

pub(super) struct GatePermit {
    gate: &'static Gate,
}

impl Drop for GatePermit {
    fn drop(&mut self) {
        let mut running = lock(&self.gate.running);
        *running = running.saturating_sub(1);
        self.gate.freed.notify_one();
    }
}
