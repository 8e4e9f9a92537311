//! The crate's error type and its mapping to Kafka error codes.

/// Kafka error codes this crate's errors map to.
pub mod codes {
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const INVALID_TIMESTAMP: i16 = 32;
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
    pub const INVALID_RECORD: i16 = 87;
}

/// Why a batch (or a buffer of batches) was rejected.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum RecordsError {
    #[error("truncated: {needed_bytes} bytes needed, {available_bytes} present")]
    Truncated {
        needed_bytes: usize,
        available_bytes: usize,
    },
    #[error("invalid batch length {batch_length}")]
    InvalidBatchLength { batch_length: i32 },
    #[error("batch occupies {actual_bytes} bytes but its header says {declared_bytes}")]
    LengthMismatch {
        declared_bytes: usize,
        actual_bytes: usize,
    },
    #[error("unsupported record batch magic {magic} (only 2 is supported)")]
    UnsupportedMagic { magic: i8 },
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("batch of {size_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    BatchTooLarge {
        size_bytes: usize,
        limit_bytes: usize,
    },
    #[error("unsupported compression codec id {codec_id}")]
    UnsupportedCompression { codec_id: u8 },
    #[error("invalid timestamp {timestamp_ms}")]
    InvalidTimestamp { timestamp_ms: i64 },
    /// Structural damage inside the batch (counts, offsets, record framing).
    #[error("corrupt batch: {reason}")]
    Corrupt { reason: &'static str },
    /// A well-formed batch that breaks a rule for what a producer may send, or whose
    /// records do not add up to its header (Kafka's `InvalidRecordException`).
    #[error("invalid record batch: {reason}")]
    InvalidRecord { reason: &'static str },
    /// One record's structure is invalid (Kafka's `DefaultRecord.readFrom` refusals);
    /// `record_index` counts from 0 in the batch.
    #[error("invalid record {record_index}: {reason}")]
    InvalidRecordAt {
        record_index: usize,
        reason: &'static str,
    },
    #[error("decompressed data exceeds the limit of {limit_bytes} bytes")]
    DecompressedTooLarge { limit_bytes: usize },
    #[error("decompression failed ({codec}): {message}")]
    Decompress {
        codec: &'static str,
        message: String,
    },
    #[error("compression failed ({codec}): {message}")]
    Compress {
        codec: &'static str,
        message: String,
    },
}

impl RecordsError {
    /// The Kafka error code a broker returns for this error in a Produce response.
    pub fn kafka_error_code(&self) -> i16 {
        use codes::*;
        match self {
            RecordsError::Truncated { .. }
            | RecordsError::InvalidBatchLength { .. }
            | RecordsError::LengthMismatch { .. }
            | RecordsError::CrcMismatch { .. }
            | RecordsError::Corrupt { .. }
            | RecordsError::Compress { .. } => CORRUPT_MESSAGE,
            // Produce v3+ requires magic 2; Kafka answers INVALID_RECORD for other magics.
            RecordsError::UnsupportedMagic { .. }
            | RecordsError::InvalidRecord { .. }
            | RecordsError::InvalidRecordAt { .. } => INVALID_RECORD,
            // Kafka answers a compressed stream that ends early with INVALID_RECORD ("premature
            // EOF") and any other decoder failure with UNKNOWN_SERVER_ERROR (a bare
            // KafkaException), which blames the broker; the client's batch is what is wrong.
            // Both are final for a producer, unlike the retriable CORRUPT_MESSAGE.
            RecordsError::Decompress { .. } => INVALID_RECORD,
            // Kafka has no such bound (it accepts what it can decompress). MESSAGE_TOO_LARGE
            // makes the Java producer split the batch and retry, which is what helps.
            RecordsError::BatchTooLarge { .. } | RecordsError::DecompressedTooLarge { .. } => {
                MESSAGE_TOO_LARGE
            }
            RecordsError::UnsupportedCompression { .. } => UNSUPPORTED_COMPRESSION_TYPE,
            RecordsError::InvalidTimestamp { .. } => INVALID_TIMESTAMP,
        }
    }
}
