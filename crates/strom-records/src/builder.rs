//! Building a valid RecordBatch v2 (header, records, compression, CRC) from records.

use bytes::Bytes;

use crate::error::RecordsError;
use crate::header::{attr, pos, BatchHeader, Compression, BATCH_HEADER_BYTES, MAGIC_V2};
use crate::record::{Header, Record};
use crate::rewrite::store_crc;

/// `producer_id`, `producer_epoch` and `base_sequence` when there is no idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;
pub const NO_SEQUENCE: i32 = -1;
/// `partition_leader_epoch` of a batch a client builds.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// Kafka's `RecordBatch.NO_TIMESTAMP`.
pub const NO_TIMESTAMP: i64 = -1;

/// The header-only batch (61 bytes, no records) that stands for `header`'s batch once
/// compaction has removed every record but must keep the batch: its offsets (the segment
/// must still end where it ended), and for an idempotent producer its sequence range and
/// epoch. Byte for byte what Kafka's cleaner writes (`DefaultRecordBatch.writeEmptyHeader`):
/// base offset, last offset delta, partition leader epoch, max timestamp, timestamp type,
/// producer id, epoch, base sequence and the transactional and control bits are kept; the
/// batch is uncompressed (an empty compressed payload is not something every client
/// decodes), the base timestamp is `NO_TIMESTAMP` and the delete-horizon bit is cleared.
pub fn empty_batch(header: &BatchHeader) -> Result<Vec<u8>, RecordsError> {
    let mut attributes = i16::from(Compression::None.id());
    attributes |= header.attributes & (attr::TIMESTAMP_TYPE | attr::TRANSACTIONAL | attr::CONTROL);
    let empty = BatchHeader {
        base_offset: header.base_offset,
        batch_length: (BATCH_HEADER_BYTES - pos::LOG_OVERHEAD) as i32,
        partition_leader_epoch: header.partition_leader_epoch,
        magic: MAGIC_V2,
        crc: 0,
        attributes,
        last_offset_delta: header.last_offset_delta,
        base_timestamp: NO_TIMESTAMP,
        max_timestamp: header.max_timestamp,
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        base_sequence: header.base_sequence,
        records_count: 0,
    };
    let mut out = [0u8; BATCH_HEADER_BYTES];
    empty.write_into(&mut out);
    let mut out = out.to_vec();
    store_crc(&mut out)?;
    Ok(out)
}

/// Accumulates records and encodes them as one batch.
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    base_offset: i64,
    base_timestamp_ms: i64,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    delete_horizon: bool,
    compression: Compression,
    log_append_time_ms: Option<i64>,
    last_offset_delta: Option<i32>,
    max_timestamp_ms: Option<i64>,
    records: Vec<Record>,
}

impl BatchBuilder {
    /// A builder for a non-idempotent, uncompressed CreateTime batch.
    pub fn new(base_offset: i64, base_timestamp_ms: i64) -> Self {
        BatchBuilder {
            base_offset,
            base_timestamp_ms,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            control: false,
            delete_horizon: false,
            compression: Compression::None,
            log_append_time_ms: None,
            last_offset_delta: None,
            max_timestamp_ms: None,
            records: Vec::new(),
        }
    }

    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Idempotent producer identity and the sequence of the first record.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    /// Marks `base_timestamp_ms` as the delete horizon compaction sets (KIP-534); record
    /// timestamp deltas stay relative to it.
    pub fn delete_horizon(mut self, delete_horizon: bool) -> Self {
        self.delete_horizon = delete_horizon;
        self
    }

    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Marks the batch LogAppendTime; `timestamp_ms` becomes its max timestamp.
    pub fn log_append_time(mut self, timestamp_ms: i64) -> Self {
        self.log_append_time_ms = Some(timestamp_ms);
        self
    }

    /// Keeps an offset range wider than the records (compaction removes records but keeps
    /// the batch's last offset). Ignored if smaller than the largest record offset delta.
    pub fn last_offset_delta(mut self, last_offset_delta: i32) -> Self {
        self.last_offset_delta = Some(last_offset_delta);
        self
    }

    /// Overrides the computed max timestamp (compaction keeps the original batch's).
    pub fn max_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.max_timestamp_ms = Some(timestamp_ms);
        self
    }

    /// Adds a record as given (its deltas are relative to this builder's bases).
    pub fn push(&mut self, record: Record) {
        self.records.push(record);
    }

    /// Adds a record at the next offset with an absolute timestamp.
    pub fn append(
        &mut self,
        timestamp_ms: i64,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: Vec<Header>,
    ) -> Result<(), RecordsError> {
        let offset_delta = self
            .records
            .last()
            .map_or(Some(0), |r| r.offset_delta.checked_add(1))
            .ok_or(RecordsError::InvalidRecord {
                reason: "too many records in one batch",
            })?;
        let timestamp_delta = timestamp_ms
            .checked_sub(self.base_timestamp_ms)
            .ok_or(RecordsError::InvalidTimestamp { timestamp_ms })?;
        self.records.push(Record {
            attributes: 0,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers,
        });
        Ok(())
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encodes the batch, compressing the records and computing the CRC. (For a batch
    /// that must stay in a log with no records, use [`empty_batch`]: an empty compressed
    /// payload makes librdkafka abort or hang.)
    pub fn build(&self) -> Result<Vec<u8>, RecordsError> {
        let mut plain = Vec::new();
        for record in &self.records {
            record.encode_into(&mut plain)?;
        }
        let payload = crate::compression::compress(self.compression, &plain)?;
        let header = self.header(payload.len())?;
        let mut out = vec![0u8; BATCH_HEADER_BYTES];
        let head: &mut [u8; BATCH_HEADER_BYTES] =
            out.as_mut_slice()
                .try_into()
                .map_err(|_| RecordsError::Corrupt {
                    reason: "header buffer size",
                })?;
        header.write_into(head);
        out.extend_from_slice(&payload);
        store_crc(&mut out)?;
        Ok(out)
    }

    fn header(&self, payload_bytes: usize) -> Result<BatchHeader, RecordsError> {
        let too_large = RecordsError::BatchTooLarge {
            size_bytes: payload_bytes.saturating_add(BATCH_HEADER_BYTES),
            limit_bytes: i32::MAX as usize,
        };
        let batch_length = i32::try_from(BATCH_HEADER_BYTES - pos::LOG_OVERHEAD + payload_bytes)
            .map_err(|_| too_large)?;
        let records_count =
            i32::try_from(self.records.len()).map_err(|_| RecordsError::InvalidRecord {
                reason: "too many records in one batch",
            })?;
        let record_delta_max = self.records.iter().map(|r| r.offset_delta).max();
        let last_offset_delta = match (record_delta_max, self.last_offset_delta) {
            (Some(max), Some(wanted)) => max.max(wanted),
            (Some(max), None) => max,
            (None, wanted) => wanted.unwrap_or(0),
        };
        Ok(BatchHeader {
            base_offset: self.base_offset,
            batch_length,
            partition_leader_epoch: self.partition_leader_epoch,
            magic: MAGIC_V2,
            crc: 0,
            attributes: self.attributes(),
            last_offset_delta,
            base_timestamp: self.base_timestamp_ms,
            max_timestamp: self.max_timestamp_ms()?,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            records_count,
        })
    }

    fn attributes(&self) -> i16 {
        let mut attributes = i16::from(self.compression.id());
        if self.log_append_time_ms.is_some() {
            attributes |= attr::TIMESTAMP_TYPE;
        }
        if self.transactional {
            attributes |= attr::TRANSACTIONAL;
        }
        if self.control {
            attributes |= attr::CONTROL;
        }
        if self.delete_horizon {
            attributes |= attr::DELETE_HORIZON;
        }
        attributes
    }

    fn max_timestamp_ms(&self) -> Result<i64, RecordsError> {
        if let Some(timestamp_ms) = self.log_append_time_ms.or(self.max_timestamp_ms) {
            return Ok(timestamp_ms);
        }
        let delta_max = self.records.iter().map(|r| r.timestamp_delta).max();
        let Some(delta_max) = delta_max else {
            return Ok(self.base_timestamp_ms);
        };
        self.base_timestamp_ms
            .checked_add(delta_max)
            .ok_or(RecordsError::InvalidTimestamp {
                timestamp_ms: self.base_timestamp_ms,
            })
    }
}

/// Frames an already-encoded records section as one batch: compresses it with `codec`
/// (zstd as one frame stating its size), writes the codec into the attributes, and sets the
/// batch length and the CRC. Every other field, the record count included, is taken from
/// `template` unchecked, so tests, fuzzing and tools can build batches that lie on purpose.
pub fn frame_records_section(
    template: &BatchHeader,
    codec: Compression,
    records_section: &[u8],
) -> Result<Vec<u8>, RecordsError> {
    let payload = crate::compression::compress(codec, records_section)?;
    let batch_length = i32::try_from(BATCH_HEADER_BYTES - pos::LOG_OVERHEAD + payload.len())
        .map_err(|_| RecordsError::BatchTooLarge {
            size_bytes: payload.len().saturating_add(BATCH_HEADER_BYTES),
            limit_bytes: i32::MAX as usize,
        })?;
    let header = BatchHeader {
        batch_length,
        attributes: (template.attributes & !attr::COMPRESSION_MASK) | i16::from(codec.id()),
        crc: 0,
        ..*template
    };
    let mut head = [0u8; BATCH_HEADER_BYTES];
    header.write_into(&mut head);
    let mut out = head.to_vec();
    out.extend_from_slice(&payload);
    store_crc(&mut out)?;
    Ok(out)
}
