//! Full structural validation of one batch (lengths, magic, CRC-32C, counts, offsets), and
//! the extra rules for batches a producer sends. Never decompresses.

use crate::error::RecordsError;
use crate::header::{pos, BatchHeader, BATCH_HEADER_BYTES, MAGIC_V2};

/// The smallest record: length, attributes, timestamp delta, offset delta, key length,
/// value length and header count, each one byte.
pub(crate) const RECORD_BYTES_MIN: usize = 7;

/// Bounds applied by [`validate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidateLimits {
    /// Largest whole batch (log overhead included) accepted; Kafka's `max.message.bytes`.
    pub batch_bytes_max: usize,
}

impl Default for ValidateLimits {
    /// Kafka's default `message.max.bytes` (1 MiB + 12 bytes of log overhead).
    fn default() -> Self {
        ValidateLimits {
            batch_bytes_max: 1_048_588,
        }
    }
}

/// Full validation of one batch occupying exactly `batch`: lengths consistent, magic 2,
/// CRC-32C over attributes..end, `records_count` in `0..=last_offset_delta + 1`, no offset
/// overflow, size within `limits.batch_bytes_max`.
///
/// A count below `last_offset_delta + 1` is accepted because compaction leaves such
/// batches (even empty ones) on disk; [`validate_client_batch`] demands exact counts.
pub fn validate(batch: &[u8], limits: &ValidateLimits) -> Result<BatchHeader, RecordsError> {
    let header = check_structure(batch)?;
    if batch.len() > limits.batch_bytes_max {
        return Err(RecordsError::BatchTooLarge {
            size_bytes: batch.len(),
            limit_bytes: limits.batch_bytes_max,
        });
    }
    check_crc(batch, &header)?;
    Ok(header)
}

/// [`validate`] plus the rules Kafka applies to a batch arriving in a Produce request:
/// base offset 0, one record per offset, no control batch, a sequence for an idempotent
/// producer, a producer id for a transactional batch. The checks run in Kafka's order, so a
/// batch breaking several rules gets Kafka's error: framing and magic, base offset, size
/// (MESSAGE_TOO_LARGE), CRC (CORRUPT_MESSAGE), then `LogValidator.validateBatch`'s rules
/// (INVALID_RECORD). The records themselves are checked by [`crate::walk_records`].
pub fn validate_client_batch(
    batch: &[u8],
    limits: &ValidateLimits,
) -> Result<BatchHeader, RecordsError> {
    let header = BatchHeader::parse(batch)?;
    check_length(&header, batch.len())?;
    if header.magic != MAGIC_V2 {
        return Err(RecordsError::UnsupportedMagic {
            magic: header.magic,
        });
    }
    let invalid = |reason| Err(RecordsError::InvalidRecord { reason });
    if header.base_offset != 0 {
        return invalid("the base offset of a produced batch must be 0");
    }
    if batch.len() > limits.batch_bytes_max {
        return Err(RecordsError::BatchTooLarge {
            size_bytes: batch.len(),
            limit_bytes: limits.batch_bytes_max,
        });
    }
    check_crc(batch, &header)?;
    header.compression()?;
    if header.last_offset_delta < 0 {
        return invalid("the batch's offset range is empty");
    }
    if header.records_count <= 0 {
        return invalid("a produced batch must hold at least one record");
    }
    if i64::from(header.records_count) != i64::from(header.last_offset_delta) + 1 {
        return invalid("record count does not match the batch's offset range");
    }
    if header.is_control() {
        return invalid("clients may not write control batches");
    }
    if header.has_producer_id() && header.base_sequence < 0 {
        return invalid("an idempotent batch needs a base sequence");
    }
    if header.is_transactional() && !header.has_producer_id() {
        return invalid("a transactional batch needs a producer id");
    }
    // The walk finds this too; refusing it here keeps a batch claiming millions of records
    // in a few bytes from being walked at all.
    if records_exceed_bytes(&header, batch.len()) {
        return invalid("record count exceeds what the batch's bytes can hold");
    }
    Ok(header)
}

/// Everything but the CRC and the size limit; shared with the batch iterator.
pub(crate) fn check_structure(batch: &[u8]) -> Result<BatchHeader, RecordsError> {
    let header = BatchHeader::parse(batch)?;
    check_length(&header, batch.len())?;
    if header.magic != MAGIC_V2 {
        return Err(RecordsError::UnsupportedMagic {
            magic: header.magic,
        });
    }
    header.compression()?;
    check_counts(&header, batch.len())?;
    Ok(header)
}

/// `batch_length` must cover at least the header and match the bytes present exactly.
pub(crate) fn check_length(header: &BatchHeader, actual_bytes: usize) -> Result<(), RecordsError> {
    let length_min = BATCH_HEADER_BYTES - pos::LOG_OVERHEAD;
    if usize::try_from(header.batch_length).map_or(true, |len| len < length_min) {
        return Err(RecordsError::InvalidBatchLength {
            batch_length: header.batch_length,
        });
    }
    if header.size_bytes() != actual_bytes {
        return Err(RecordsError::LengthMismatch {
            declared_bytes: header.size_bytes(),
            actual_bytes,
        });
    }
    Ok(())
}

fn check_counts(header: &BatchHeader, size_bytes: usize) -> Result<(), RecordsError> {
    let corrupt = |reason| Err(RecordsError::Corrupt { reason });
    if header.last_offset_delta < 0 {
        return corrupt("negative last offset delta");
    }
    if header.records_count < 0 {
        return corrupt("negative record count");
    }
    if i64::from(header.records_count) > i64::from(header.last_offset_delta) + 1 {
        return corrupt("more records than offsets in the batch");
    }
    if header
        .base_offset
        .checked_add(i64::from(header.last_offset_delta))
        .is_none()
    {
        return corrupt("last offset overflows");
    }
    if records_exceed_bytes(header, size_bytes) {
        return corrupt("record count exceeds what the batch's bytes can hold");
    }
    Ok(())
}

/// An uncompressed batch claims more records than its bytes can hold. Compressed payloads
/// may shrink below the minimum record size, so only uncompressed batches are checked.
fn records_exceed_bytes(header: &BatchHeader, size_bytes: usize) -> bool {
    let uncompressed = header.compression().ok() == Some(crate::Compression::None);
    let records_bytes = size_bytes.saturating_sub(BATCH_HEADER_BYTES);
    let count = usize::try_from(header.records_count).unwrap_or(usize::MAX);
    uncompressed && count.saturating_mul(RECORD_BYTES_MIN) > records_bytes
}

/// CRC-32C (Castagnoli) over attributes..end.
pub(crate) fn check_crc(batch: &[u8], header: &BatchHeader) -> Result<(), RecordsError> {
    let computed = crc_of(batch);
    if computed != header.crc {
        return Err(RecordsError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// The CRC a batch should carry; 0 for a slice too short to hold a header.
pub(crate) fn crc_of(batch: &[u8]) -> u32 {
    batch.get(pos::ATTRIBUTES..).map_or(0, crc32c::crc32c)
}
