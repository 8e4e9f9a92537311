//! Walking a buffer of concatenated batches (a Produce payload or a segment's bytes).

use std::ops::Range;

use crate::error::RecordsError;
use crate::header::{pos, BatchHeader, BATCH_HEADER_BYTES};
use crate::validate::{check_crc, check_structure};

/// Why a walk over concatenated batches stopped early.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("invalid batch data at byte {valid_bytes}: {error}")]
pub struct BatchesError {
    /// Bytes of whole, valid batches before the failure: where a recovering log truncates.
    pub valid_bytes: usize,
    pub error: RecordsError,
}

impl BatchesError {
    /// The buffer ends inside a batch (a torn write), as opposed to damaged bytes.
    pub fn is_truncated_tail(&self) -> bool {
        matches!(self.error, RecordsError::Truncated { .. })
    }
}

/// Iterates the batches in a buffer; see [`batches`].
#[derive(Clone, Debug)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
    done: bool,
    check_crc: bool,
}

/// Iterates a buffer of concatenated batches, yielding `(header, byte range)` for each
/// whole batch after structural checks and a CRC check. A truncated tail or an invalid
/// batch ends the iteration with one `Err` carrying the position where valid data ends.
pub fn batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter {
        buf,
        position: 0,
        done: false,
        check_crc: true,
    }
}

/// [`batches`] without the CRC check: framing and structural checks only. For callers
/// that validate each batch fully afterwards (or only need the headers of batches that
/// are validated elsewhere), so that the produce path computes each batch's CRC once
/// instead of once per walk over the request.
pub fn batch_frames(buf: &[u8]) -> BatchIter<'_> {
    BatchIter {
        buf,
        position: 0,
        done: false,
        check_crc: false,
    }
}

impl BatchIter<'_> {
    /// Byte position of the next batch (after the last one yielded).
    pub fn position(&self) -> usize {
        self.position
    }

    fn next_batch(&self) -> Result<(BatchHeader, Range<usize>), RecordsError> {
        let rest = self.buf.get(self.position..).unwrap_or_default();
        let truncated = |needed_bytes| RecordsError::Truncated {
            needed_bytes,
            available_bytes: rest.len(),
        };
        // Read the length first so that a torn tail reports as truncation even when it is
        // shorter than a header.
        let length_end = pos::LOG_OVERHEAD;
        let length_bytes: [u8; 4] = rest
            .get(pos::BATCH_LENGTH..length_end)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| truncated(length_end))?;
        let batch_length = i32::from_be_bytes(length_bytes);
        let declared = usize::try_from(batch_length)
            .ok()
            .filter(|len| *len >= BATCH_HEADER_BYTES - pos::LOG_OVERHEAD)
            .ok_or(RecordsError::InvalidBatchLength { batch_length })?;
        let size_bytes = declared.saturating_add(pos::LOG_OVERHEAD);
        let batch = rest
            .get(..size_bytes)
            .ok_or_else(|| truncated(size_bytes))?;
        let header = check_structure(batch)?;
        if self.check_crc {
            check_crc(batch, &header)?;
        }
        let start = self.position;
        Ok((header, start..start + size_bytes))
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(BatchHeader, Range<usize>), BatchesError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.position >= self.buf.len() {
            return None;
        }
        match self.next_batch() {
            Ok((header, range)) => {
                self.position = range.end;
                Some(Ok((header, range)))
            }
            Err(error) => {
                self.done = true;
                Some(Err(BatchesError {
                    valid_bytes: self.position,
                    error,
                }))
            }
        }
    }
}
