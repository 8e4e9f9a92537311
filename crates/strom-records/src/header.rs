//! The fixed 61-byte RecordBatch v2 header: field layout, parsing and attribute bits.

use crate::error::RecordsError;

/// Bytes from `base_offset` through `records_count` inclusive.
pub const BATCH_HEADER_BYTES: usize = 61;
/// The only record batch format this crate reads or writes.
pub const MAGIC_V2: i8 = 2;

/// Byte positions of the header fields; shared by parsing, building and rewriting.
pub(crate) mod pos {
    pub const BASE_OFFSET: usize = 0;
    pub const BATCH_LENGTH: usize = 8;
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    /// The CRC covers everything from here to the end of the batch.
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const BASE_TIMESTAMP: usize = 27;
    pub const MAX_TIMESTAMP: usize = 35;
    pub const PRODUCER_ID: usize = 43;
    pub const PRODUCER_EPOCH: usize = 51;
    pub const BASE_SEQUENCE: usize = 53;
    pub const RECORDS_COUNT: usize = 57;
    /// `batch_length` counts the bytes after itself.
    pub const LOG_OVERHEAD: usize = 12;
}

/// Attribute bits (Kafka's `DefaultRecordBatch`).
pub(crate) mod attr {
    pub const COMPRESSION_MASK: i16 = 0x07;
    pub const TIMESTAMP_TYPE: i16 = 0x08;
    pub const TRANSACTIONAL: i16 = 0x10;
    pub const CONTROL: i16 = 0x20;
    /// KIP-534: `base_timestamp` holds the delete horizon set by compaction.
    pub const DELETE_HORIZON: i16 = 0x40;
}

/// The compression codec of a batch (attributes bits 0-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Every codec, for tests and configuration listings.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec id stored in attributes bits 0-2.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    pub fn from_id(codec_id: u8) -> Result<Compression, RecordsError> {
        match codec_id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            _ => Err(RecordsError::UnsupportedCompression { codec_id }),
        }
    }

    /// Kafka's name for the codec (`compression.type` values).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Which clock the batch's timestamps come from (attributes bit 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The decoded fixed header of one RecordBatch v2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Decodes the header from the start of `bytes`. Checks only that the 61 bytes are
    /// present: no length, magic or CRC check (see [`crate::validate`]).
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, RecordsError> {
        let head: &[u8; BATCH_HEADER_BYTES] = bytes
            .get(..BATCH_HEADER_BYTES)
            .and_then(|s| s.try_into().ok())
            .ok_or(RecordsError::Truncated {
                needed_bytes: BATCH_HEADER_BYTES,
                available_bytes: bytes.len(),
            })?;
        Ok(BatchHeader {
            base_offset: i64::from_be_bytes(field(head, pos::BASE_OFFSET)),
            batch_length: i32::from_be_bytes(field(head, pos::BATCH_LENGTH)),
            partition_leader_epoch: i32::from_be_bytes(field(head, pos::PARTITION_LEADER_EPOCH)),
            magic: i8::from_be_bytes(field(head, pos::MAGIC)),
            crc: u32::from_be_bytes(field(head, pos::CRC)),
            attributes: i16::from_be_bytes(field(head, pos::ATTRIBUTES)),
            last_offset_delta: i32::from_be_bytes(field(head, pos::LAST_OFFSET_DELTA)),
            base_timestamp: i64::from_be_bytes(field(head, pos::BASE_TIMESTAMP)),
            max_timestamp: i64::from_be_bytes(field(head, pos::MAX_TIMESTAMP)),
            producer_id: i64::from_be_bytes(field(head, pos::PRODUCER_ID)),
            producer_epoch: i16::from_be_bytes(field(head, pos::PRODUCER_EPOCH)),
            base_sequence: i32::from_be_bytes(field(head, pos::BASE_SEQUENCE)),
            records_count: i32::from_be_bytes(field(head, pos::RECORDS_COUNT)),
        })
    }

    /// Writes the header into the first 61 bytes of `out` (which must be that long).
    pub(crate) fn write_into(&self, out: &mut [u8; BATCH_HEADER_BYTES]) {
        put(out, pos::BASE_OFFSET, &self.base_offset.to_be_bytes());
        put(out, pos::BATCH_LENGTH, &self.batch_length.to_be_bytes());
        let epoch = self.partition_leader_epoch.to_be_bytes();
        put(out, pos::PARTITION_LEADER_EPOCH, &epoch);
        put(out, pos::MAGIC, &self.magic.to_be_bytes());
        put(out, pos::CRC, &self.crc.to_be_bytes());
        put(out, pos::ATTRIBUTES, &self.attributes.to_be_bytes());
        put(
            out,
            pos::LAST_OFFSET_DELTA,
            &self.last_offset_delta.to_be_bytes(),
        );
        put(out, pos::BASE_TIMESTAMP, &self.base_timestamp.to_be_bytes());
        put(out, pos::MAX_TIMESTAMP, &self.max_timestamp.to_be_bytes());
        put(out, pos::PRODUCER_ID, &self.producer_id.to_be_bytes());
        put(out, pos::PRODUCER_EPOCH, &self.producer_epoch.to_be_bytes());
        put(out, pos::BASE_SEQUENCE, &self.base_sequence.to_be_bytes());
        put(out, pos::RECORDS_COUNT, &self.records_count.to_be_bytes());
    }

    /// The whole batch on disk: the 12-byte log overhead plus `batch_length`.
    /// A negative `batch_length` (only possible before validation) counts as 0.
    pub fn size_bytes(&self) -> usize {
        pos::LOG_OVERHEAD.saturating_add(usize::try_from(self.batch_length).unwrap_or(0))
    }

    /// Saturates instead of overflowing: [`crate::validate`] rejects batches where it would.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    pub fn compression(&self) -> Result<Compression, RecordsError> {
        // The mask keeps the value in 0..=7.
        Compression::from_id((self.attributes & attr::COMPRESSION_MASK) as u8)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & attr::TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & attr::TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & attr::CONTROL != 0
    }

    /// Compaction stored a delete horizon in `base_timestamp` (KIP-534).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & attr::DELETE_HORIZON != 0
    }

    /// Idempotent or transactional producer (`producer_id` is not -1).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// The sequence number of the last record (wrapping at i32::MAX as Kafka does), or -1.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        // Kafka: sequences wrap to 0 after i32::MAX.
        (last % (i64::from(i32::MAX) + 1)) as i32
    }
}

fn field<const N: usize>(head: &[u8; BATCH_HEADER_BYTES], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    // All call sites use constant positions inside the header.
    out.copy_from_slice(&head[at..at + N]);
    out
}

fn put(out: &mut [u8; BATCH_HEADER_BYTES], at: usize, value: &[u8]) {
    out[at..at + value.len()].copy_from_slice(value);
}
