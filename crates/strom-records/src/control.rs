//! Control batches: transaction markers (COMMIT/ABORT) written by the transaction
//! coordinator, and parsing of control record keys and marker values.

use bytes::{Bytes, BytesMut};

use crate::builder::{BatchBuilder, NO_SEQUENCE};
use crate::error::RecordsError;
use crate::record::Record;

/// Control record key version Kafka writes.
const CONTROL_KEY_VERSION: i16 = 0;
/// EndTransactionMarker value version Kafka writes.
const END_TXN_MARKER_VERSION: i16 = 0;

/// The type in a control record's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlRecordType {
    Abort,
    Commit,
    /// Types this crate does not interpret (KRaft leader change, snapshot markers...).
    Other(i16),
}

impl ControlRecordType {
    fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::Other(id) => id,
        }
    }

    /// Reads a control record key: version (i16, >= 0) then type (i16).
    pub fn parse_key(key: &[u8]) -> Result<ControlRecordType, RecordsError> {
        let (version, rest) = read_i16(key)?;
        if version < 0 {
            return Err(invalid("negative control record key version"));
        }
        let (type_id, _) = read_i16(rest)?;
        Ok(match type_id {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            other => ControlRecordType::Other(other),
        })
    }

    /// The type of a control record (a record inside a control batch).
    pub fn of(record: &Record) -> Result<ControlRecordType, RecordsError> {
        let key = record
            .key
            .as_deref()
            .ok_or(invalid("control record without a key"))?;
        ControlRecordType::parse_key(key)
    }
}

/// The value of a COMMIT or ABORT control record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndTransactionMarker {
    pub commit: bool,
    pub coordinator_epoch: i32,
}

impl EndTransactionMarker {
    /// Decodes the marker from a control record, checking that it is COMMIT or ABORT.
    pub fn from_record(record: &Record) -> Result<EndTransactionMarker, RecordsError> {
        let commit = match ControlRecordType::of(record)? {
            ControlRecordType::Commit => true,
            ControlRecordType::Abort => false,
            ControlRecordType::Other(_) => {
                return Err(invalid("control record is not a transaction marker"))
            }
        };
        let value = record
            .value
            .as_deref()
            .ok_or(invalid("transaction marker without a value"))?;
        let (version, rest) = read_i16(value)?;
        if version < 0 {
            return Err(invalid("negative transaction marker version"));
        }
        let (epoch_bytes, _) = rest
            .split_first_chunk::<4>()
            .ok_or(invalid("truncated transaction marker"))?;
        Ok(EndTransactionMarker {
            commit,
            coordinator_epoch: i32::from_be_bytes(*epoch_bytes),
        })
    }

    /// The control record carrying this marker, at offset delta 0.
    pub fn to_record(self) -> Record {
        let record_type = if self.commit {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        };
        let mut key = BytesMut::with_capacity(4);
        key.extend_from_slice(&CONTROL_KEY_VERSION.to_be_bytes());
        key.extend_from_slice(&record_type.id().to_be_bytes());
        let mut value = BytesMut::with_capacity(6);
        value.extend_from_slice(&END_TXN_MARKER_VERSION.to_be_bytes());
        value.extend_from_slice(&self.coordinator_epoch.to_be_bytes());
        Record::new(0, 0, Some(key.freeze()), Some(Bytes::from(value)))
    }

    /// A whole transactional control batch holding this marker for one producer.
    pub fn to_batch(
        self,
        base_offset: i64,
        timestamp_ms: i64,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<Vec<u8>, RecordsError> {
        let mut builder = BatchBuilder::new(base_offset, timestamp_ms)
            .producer(producer_id, producer_epoch, NO_SEQUENCE)
            .transactional(true)
            .control(true);
        builder.push(self.to_record());
        builder.build()
    }
}

fn read_i16(bytes: &[u8]) -> Result<(i16, &[u8]), RecordsError> {
    let (head, rest) = bytes
        .split_first_chunk::<2>()
        .ok_or(invalid("truncated control record field"))?;
    Ok((i16::from_be_bytes(*head), rest))
}

fn invalid(reason: &'static str) -> RecordsError {
    RecordsError::InvalidRecord { reason }
}
