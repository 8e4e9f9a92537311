//! Decoding a validated batch's records, decompressing within a byte budget.

use bytes::Bytes;

use crate::error::RecordsError;
use crate::header::{BatchHeader, BATCH_HEADER_BYTES};
use crate::record::Record;
use crate::validate::RECORD_BYTES_MIN;
use crate::varint::Reader;

/// Bounds applied by [`records`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest decompressed records section accepted (guards against compression bombs).
    pub decompressed_bytes_max: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            decompressed_bytes_max: 64 * 1024 * 1024,
        }
    }
}

/// Decodes every record of one batch occupying exactly `batch` (decompressing if needed).
/// The batch is fully validated first (structure and CRC); the records must fill the
/// records section exactly and their number must equal `records_count`.
pub fn records(batch: &[u8], limits: &DecodeLimits) -> Result<Vec<Record>, RecordsError> {
    let validate_limits = crate::ValidateLimits {
        batch_bytes_max: usize::MAX,
    };
    let header = crate::validate(batch, &validate_limits)?;
    let payload = batch.get(BATCH_HEADER_BYTES..).unwrap_or_default();
    let codec = header.compression()?;
    let plain = crate::compression::decompress(codec, payload, limits.decompressed_bytes_max)?;
    decode_records(&header, Bytes::from(plain))
}

/// Decodes the records of an uncompressed records section.
pub(crate) fn decode_records(
    header: &BatchHeader,
    plain: Bytes,
) -> Result<Vec<Record>, RecordsError> {
    let count = usize::try_from(header.records_count).map_err(|_| RecordsError::Corrupt {
        reason: "negative record count",
    })?;
    if count.saturating_mul(RECORD_BYTES_MIN) > plain.len() {
        return Err(RecordsError::Corrupt {
            reason: "record count exceeds what the records' bytes can hold",
        });
    }
    let mut reader = Reader::new(&plain);
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(Record::decode(&mut reader, &plain)?);
    }
    if !reader.is_empty() {
        return Err(RecordsError::Corrupt {
            reason: "bytes left after the declared records",
        });
    }
    Ok(out)
}
