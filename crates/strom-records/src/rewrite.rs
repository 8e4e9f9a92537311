//! In-place header rewrites the log performs on append (offsets, leader epoch, and
//! LogAppendTime), without re-encoding or decompressing the records.

use crate::error::RecordsError;
use crate::header::{attr, pos, BATCH_HEADER_BYTES};
use crate::validate::crc_of;

/// Sets the base offset. Outside the CRC: no CRC recompute.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) -> Result<(), RecordsError> {
    write_field(batch, pos::BASE_OFFSET, &base_offset.to_be_bytes())
}

/// Sets the partition leader epoch. Outside the CRC: no CRC recompute.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) -> Result<(), RecordsError> {
    write_field(batch, pos::PARTITION_LEADER_EPOCH, &epoch.to_be_bytes())
}

/// Marks the batch as LogAppendTime with `timestamp_ms` as its max timestamp, then
/// recomputes the CRC over attributes..end. The caller passes exactly one batch.
pub fn set_log_append_time(batch: &mut [u8], timestamp_ms: i64) -> Result<(), RecordsError> {
    if timestamp_ms < 0 {
        return Err(RecordsError::InvalidTimestamp { timestamp_ms });
    }
    // The CRC covers the whole batch: a slice with extra or missing bytes would get a CRC
    // that no reader accepts.
    let header = crate::header::BatchHeader::parse(batch)?;
    crate::validate::check_length(&header, batch.len())?;
    let attributes_bytes: [u8; 2] = batch
        .get(pos::ATTRIBUTES..pos::ATTRIBUTES + 2)
        .and_then(|s| s.try_into().ok())
        .ok_or(truncated(batch.len()))?;
    let attributes = i16::from_be_bytes(attributes_bytes) | attr::TIMESTAMP_TYPE;
    write_field(batch, pos::ATTRIBUTES, &attributes.to_be_bytes())?;
    write_field(batch, pos::MAX_TIMESTAMP, &timestamp_ms.to_be_bytes())?;
    let crc = crc_of(batch);
    write_field(batch, pos::CRC, &crc.to_be_bytes())
}

/// Recomputes and stores the CRC of one whole batch (used by builders and tests).
pub(crate) fn store_crc(batch: &mut [u8]) -> Result<(), RecordsError> {
    header_mut(batch)?;
    let crc = crc_of(batch);
    write_field(batch, pos::CRC, &crc.to_be_bytes())
}

fn header_mut(batch: &mut [u8]) -> Result<&mut [u8], RecordsError> {
    let available_bytes = batch.len();
    batch
        .get_mut(..BATCH_HEADER_BYTES)
        .ok_or(truncated(available_bytes))
}

fn write_field(batch: &mut [u8], at: usize, value: &[u8]) -> Result<(), RecordsError> {
    let header = header_mut(batch)?;
    let slot = header
        .get_mut(at..at + value.len())
        .ok_or(truncated(BATCH_HEADER_BYTES))?;
    slot.copy_from_slice(value);
    Ok(())
}

fn truncated(available_bytes: usize) -> RecordsError {
    RecordsError::Truncated {
        needed_bytes: BATCH_HEADER_BYTES,
        available_bytes,
    }
}
