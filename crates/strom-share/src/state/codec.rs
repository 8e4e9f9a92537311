//! The byte layout of `__share_group_state` records (see docs/FORMATS.md), modelled on
//! Kafka's ShareSnapshotKey/Value (type 0) and ShareUpdateKey/Value (type 1).
//!
//! Key: int16 record type (0 snapshot, 1 update), string group id (int16 length), 16-byte
//! topic id, int32 partition. Value: int16 version (0), then a flexible body: compact arrays
//! (unsigned varint length + 1) and an empty tagged-field section after each struct.
//! A tombstone is a key with a null value. Decoding is bounded by the bytes present: no
//! length read from a record sizes an allocation before it is checked against them.

use super::{ShareKey, SnapshotValue, StateRecord, UpdateValue};
use crate::partition::{RecordState, StateBatch};

const TYPE_SNAPSHOT: i16 = 0;
const TYPE_UPDATE: i16 = 1;
const VALUE_VERSION: i16 = 0;
/// Encoded size of one state batch: two int64, an int8, an int16 and an empty tag section.
const BATCH_BYTES: usize = 8 + 8 + 1 + 2 + 1;

/// A record that is not a valid `__share_group_state` record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid __share_group_state record: {0}")]
pub struct CodecError(pub String);

/// Encodes a record as (key, value); the value is `None` for a tombstone.
pub fn encode(record: &StateRecord) -> (Vec<u8>, Option<Vec<u8>>) {
    match record {
        StateRecord::Snapshot(key, value) => {
            let mut v = Vec::with_capacity(64 + value.batches.len() * BATCH_BYTES);
            v.extend_from_slice(&VALUE_VERSION.to_be_bytes());
            v.extend_from_slice(&value.snapshot_epoch.to_be_bytes());
            v.extend_from_slice(&value.state_epoch.to_be_bytes());
            v.extend_from_slice(&value.leader_epoch.to_be_bytes());
            v.extend_from_slice(&value.start_offset.to_be_bytes());
            v.extend_from_slice(&value.create_timestamp_ms.to_be_bytes());
            v.extend_from_slice(&value.write_timestamp_ms.to_be_bytes());
            put_batches(&mut v, &value.batches);
            v.push(0);
            (encode_key(TYPE_SNAPSHOT, key), Some(v))
        }
        StateRecord::Update(key, value) => {
            let mut v = Vec::with_capacity(32 + value.batches.len() * BATCH_BYTES);
            v.extend_from_slice(&VALUE_VERSION.to_be_bytes());
            v.extend_from_slice(&value.snapshot_epoch.to_be_bytes());
            v.extend_from_slice(&value.leader_epoch.to_be_bytes());
            v.extend_from_slice(&value.start_offset.to_be_bytes());
            put_batches(&mut v, &value.batches);
            v.push(0);
            (encode_key(TYPE_UPDATE, key), Some(v))
        }
        StateRecord::Tombstone { key, snapshot } => {
            let kind = if *snapshot {
                TYPE_SNAPSHOT
            } else {
                TYPE_UPDATE
            };
            (encode_key(kind, key), None)
        }
    }
}

fn encode_key(kind: i16, key: &ShareKey) -> Vec<u8> {
    let group = key.group_id.as_bytes();
    let group_len = group.len().min(i16::MAX as usize);
    let mut k = Vec::with_capacity(2 + 2 + group_len + 16 + 4);
    k.extend_from_slice(&kind.to_be_bytes());
    k.extend_from_slice(&(group_len as i16).to_be_bytes());
    k.extend_from_slice(&group[..group_len]);
    k.extend_from_slice(&key.topic_id);
    k.extend_from_slice(&key.partition.to_be_bytes());
    k
}

fn put_batches(v: &mut Vec<u8>, batches: &[StateBatch]) {
    put_uvarint(v, batches.len() as u64 + 1);
    for b in batches {
        v.extend_from_slice(&b.first_offset.to_be_bytes());
        v.extend_from_slice(&b.last_offset.to_be_bytes());
        v.push(b.state.id());
        v.extend_from_slice(&(b.delivery_count as i16).to_be_bytes());
        v.push(0);
    }
}

fn put_uvarint(v: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        v.push((n as u8) | 0x80);
        n >>= 7;
    }
    v.push(n as u8);
}

/// Decodes a record from its key and value (`None` for a tombstone).
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<StateRecord, CodecError> {
    let mut k = Reader::new(key);
    let kind = k.i16()?;
    let group_len = k.i16()?;
    if group_len < 0 {
        return Err(CodecError("null group id".into()));
    }
    let group_id = String::from_utf8(k.bytes(group_len as usize)?.to_vec())
        .map_err(|_| CodecError("group id is not UTF-8".into()))?;
    let mut topic_id = [0u8; 16];
    topic_id.copy_from_slice(k.bytes(16)?);
    let partition = k.i32()?;
    k.end()?;
    let share_key = ShareKey {
        group_id,
        topic_id,
        partition,
    };
    if kind != TYPE_SNAPSHOT && kind != TYPE_UPDATE {
        return Err(CodecError(format!("unknown record type {kind}")));
    }
    let Some(value) = value else {
        return Ok(StateRecord::Tombstone {
            key: share_key,
            snapshot: kind == TYPE_SNAPSHOT,
        });
    };
    let mut v = Reader::new(value);
    let version = v.i16()?;
    if version != VALUE_VERSION {
        return Err(CodecError(format!("unknown value version {version}")));
    }
    let record = if kind == TYPE_SNAPSHOT {
        let snapshot_epoch = v.i32()?;
        let state_epoch = v.i32()?;
        let leader_epoch = v.i32()?;
        let start_offset = v.i64()?;
        let create_timestamp_ms = v.i64()?;
        let write_timestamp_ms = v.i64()?;
        let batches = v.batches()?;
        v.tags()?;
        StateRecord::Snapshot(
            share_key,
            SnapshotValue {
                snapshot_epoch,
                state_epoch,
                leader_epoch,
                start_offset,
                create_timestamp_ms,
                write_timestamp_ms,
                batches,
            },
        )
    } else {
        let snapshot_epoch = v.i32()?;
        let leader_epoch = v.i32()?;
        let start_offset = v.i64()?;
        let batches = v.batches()?;
        v.tags()?;
        StateRecord::Update(
            share_key,
            UpdateValue {
                snapshot_epoch,
                leader_epoch,
                start_offset,
                batches,
            },
        )
    };
    v.end()?;
    Ok(record)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| CodecError(format!("truncated at byte {}", self.at)))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    fn i8(&mut self) -> Result<i8, CodecError> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    fn i16(&mut self) -> Result<i16, CodecError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, CodecError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn uvarint(&mut self) -> Result<u64, CodecError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.array::<1>()?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError("varint longer than 10 bytes".into()))
    }

    /// An empty tagged-field section (no tags are defined; unknown ones are skipped).
    fn tags(&mut self) -> Result<(), CodecError> {
        let count = self.uvarint()?;
        if count > (self.bytes.len() - self.at) as u64 {
            return Err(CodecError("tag count beyond the record".into()));
        }
        for _ in 0..count {
            self.uvarint()?;
            let size = self.uvarint()?;
            let size = usize::try_from(size).map_err(|_| CodecError("tag size".into()))?;
            self.bytes(size)?;
        }
        Ok(())
    }

    fn batches(&mut self) -> Result<Vec<StateBatch>, CodecError> {
        let count = self.uvarint()?;
        let Some(count) = count.checked_sub(1) else {
            return Err(CodecError("null state batches".into()));
        };
        // Bound by what is present before allocating.
        if count > ((self.bytes.len() - self.at) / BATCH_BYTES) as u64 {
            return Err(CodecError(format!(
                "{count} state batches cannot fit in the record"
            )));
        }
        let mut out = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let first_offset = self.i64()?;
            let last_offset = self.i64()?;
            let state_id = self.i8()?;
            let state = u8::try_from(state_id)
                .ok()
                .and_then(RecordState::from_id)
                .ok_or_else(|| CodecError(format!("unknown delivery state {state_id}")))?;
            let delivery_count = self.i16()?;
            let delivery_count = u16::try_from(delivery_count)
                .map_err(|_| CodecError(format!("negative delivery count {delivery_count}")))?;
            self.tags()?;
            out.push(StateBatch {
                first_offset,
                last_offset,
                state,
                delivery_count,
            });
        }
        Ok(out)
    }

    fn end(&self) -> Result<(), CodecError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(CodecError(format!(
                "{} bytes after the end",
                self.bytes.len() - self.at
            )))
        }
    }
}
