//! The `__transaction_state` record format, Kafka's `TransactionLogKey` v0 and
//! `TransactionLogValue` v0 and v1 (big-endian, as Kafka's generated code writes them), so
//! that Kafka's tools could read the topic. Key: version (i16, 0), transactional id (string).
//! Value v0: version (i16, 0), producer id (i64), producer epoch (i16), timeout (i32), state
//! (i8), partitions (nullable array of topic string and i32 array), last update (i64),
//! start (i64). Value v1 (Kafka's first flexible version) has the same fields with compact
//! strings and arrays, an empty tagged-field section after each partition entry, and tagged
//! fields at the end: 0 PreviousProducerId (i64), 1 NextProducerId (i64),
//! 2 ClientTransactionVersion (i16), each written only when it is not its default (-1, -1,
//! 0). The partitions are null for Empty only, an array (maybe empty) otherwise, as Kafka's
//! `TransactionLog.valueToBytes` writes them. A record without a value is a tombstone (the
//! id expired). Both versions are read whatever the finalized `transaction.version`.
//! Decoding checks every length against the bytes present before using it, and skips
//! unknown tagged fields as Kafka does.
//!
//! The version written follows the cluster's finalized `transaction.version` as Kafka's
//! `TransactionVersion.transactionLogValueVersion` does ([`value_version`]): v0 at level 0
//! (so a log written at level 0 stays readable by brokers that know only v0: the reason the
//! level exists), v1 from level 1. At v0 the tagged fields are not written, as Kafka drops
//! them: the previous producer id (used to recognise a retried InitProducerId or EndTxn)
//! is lost on a reload. One exception, where Kafka's generated writer would refuse the
//! record (a non-default tagged field at v0) and fail the request: a value whose client
//! transaction version or next producer id is not the default (a version 2 transaction
//! still under way when the level was lowered to 0) is written at v1, so that the
//! transaction ends by the rules it began with, after a failover too.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use crate::state::{TopicPartition, TxnMetadata, TxnState};

/// The key version (Kafka has only v0).
const KEY_VERSION: i16 = 0;
/// The value version Kafka writes at the finalized `transaction.version` `level`
/// (`TransactionVersion.transactionLogValueVersion`: level 1 "enables flexible
/// transactional state records", KIP-890): 0 at level 0, 1 from level 1.
pub fn value_version(level: i16) -> i16 {
    if level >= 1 {
        1
    } else {
        0
    }
}

/// One record of `__transaction_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub key: Bytes,
    /// `None`: tombstone.
    pub value: Option<Bytes>,
}

/// Why a record could not be decoded (the load stops and names the offset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{field}: truncated (needs {needed} more bytes)")]
    Truncated { field: &'static str, needed: usize },
    #[error("{field}: invalid length {length}")]
    InvalidLength { field: &'static str, length: i64 },
    #[error("{field}: not UTF-8")]
    InvalidUtf8 { field: &'static str },
    #[error("{what}: unsupported version {version} (this broker reads versions 0 and 1)")]
    UnsupportedVersion { what: &'static str, version: i16 },
    #[error("unknown transaction state {0}")]
    UnknownState(i8),
    #[error("{what}: {trailing} trailing bytes")]
    TrailingBytes { what: &'static str, trailing: usize },
    #[error("{field} too long to encode ({length} bytes)")]
    TooLong { field: &'static str, length: usize },
}

/// The decoded value of a record: everything persisted of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    pub last_update_ms: i64,
    pub start_ms: i64,
    /// v1 tagged field 0 (-1: none; v0 has none).
    pub previous_producer_id: i64,
    /// v1 tagged field 1: the id the producer moves to when the transaction completes
    /// (transaction version 2 at epoch exhaustion; -1: none).
    pub next_producer_id: i64,
    /// v1 tagged field 2: the transaction version of the client's last request (0 in v0).
    pub client_tv: i16,
}

impl TxnRecord {
    /// The record persisting `meta` at the finalized `transaction.version` `level`: at
    /// [`value_version`], except that a value v0 cannot hold without changing the rules of
    /// its transaction (a client transaction version or next producer id) is written at v1.
    pub fn of(meta: &TxnMetadata, level: i16) -> Result<TxnRecord, RecordError> {
        let value = TxnValue {
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            timeout_ms: meta.timeout_ms,
            state: meta.state,
            partitions: meta.partitions.clone(),
            last_update_ms: meta.last_update_ms,
            start_ms: meta.start_ms,
            previous_producer_id: meta.previous_producer_id,
            next_producer_id: meta.next_producer_id,
            client_tv: meta.client_tv,
        };
        let needs_flexible = value.client_tv != 0 || value.next_producer_id != -1;
        let version = if needs_flexible {
            1
        } else {
            value_version(level)
        };
        Ok(TxnRecord {
            key: encode_key(&meta.transactional_id)?,
            value: Some(encode_value(&value, version)?),
        })
    }

    /// The tombstone removing `transactional_id`.
    pub fn tombstone(transactional_id: &str) -> Result<TxnRecord, RecordError> {
        Ok(TxnRecord {
            key: encode_key(transactional_id)?,
            value: None,
        })
    }
}

pub fn encode_key(transactional_id: &str) -> Result<Bytes, RecordError> {
    let mut b = BytesMut::with_capacity(4 + transactional_id.len());
    b.put_i16(KEY_VERSION);
    put_str(&mut b, "transactional id", transactional_id)?;
    Ok(b.freeze())
}

pub fn decode_key(bytes: &[u8]) -> Result<String, RecordError> {
    let mut r = Reader(bytes);
    let version = r.i16("key version")?;
    if version != 0 {
        return Err(RecordError::UnsupportedVersion {
            what: "TransactionLogKey",
            version,
        });
    }
    let id = r.string("transactional id")?;
    r.finish("TransactionLogKey")?;
    Ok(id)
}

/// Encodes a value at `version` (0, or 1: flexible with the tagged fields).
pub fn encode_value(v: &TxnValue, version: i16) -> Result<Bytes, RecordError> {
    if !(0..=1).contains(&version) {
        return Err(RecordError::UnsupportedVersion {
            what: "TransactionLogValue",
            version,
        });
    }
    let flexible = version >= 1;
    let mut b = BytesMut::with_capacity(64);
    b.put_i16(version);
    b.put_i64(v.producer_id);
    b.put_i16(v.producer_epoch);
    b.put_i32(v.timeout_ms);
    b.put_i8(v.state.id());
    // Partitions grouped by topic, as Kafka writes them; null for Empty (Kafka refuses to
    // write Empty with partitions), an array, maybe empty, otherwise.
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in &v.partitions {
        match topics.last_mut() {
            Some((topic, ids)) if *topic == tp.topic => ids.push(tp.partition),
            _ => topics.push((&tp.topic, vec![tp.partition])),
        }
    }
    if v.partitions.is_empty() && v.state == TxnState::Empty {
        if flexible {
            put_varint(&mut b, 0);
        } else {
            b.put_i32(-1);
        }
    } else {
        put_array_len(&mut b, flexible, "partitions", topics.len())?;
        for (topic, ids) in topics {
            if flexible {
                put_compact_str(&mut b, "topic", topic)?;
            } else {
                put_str(&mut b, "topic", topic)?;
            }
            put_array_len(&mut b, flexible, "partition ids", ids.len())?;
            for id in ids {
                b.put_i32(id);
            }
            if flexible {
                // The entry's tagged fields: none.
                put_varint(&mut b, 0);
            }
        }
    }
    b.put_i64(v.last_update_ms);
    b.put_i64(v.start_ms);
    if flexible {
        let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
        if v.previous_producer_id != -1 {
            tags.push((0, v.previous_producer_id.to_be_bytes().to_vec()));
        }
        if v.next_producer_id != -1 {
            tags.push((1, v.next_producer_id.to_be_bytes().to_vec()));
        }
        if v.client_tv != 0 {
            tags.push((2, v.client_tv.to_be_bytes().to_vec()));
        }
        put_varint(&mut b, tags.len() as u32);
        for (tag, data) in tags {
            put_varint(&mut b, tag);
            put_varint(&mut b, data.len() as u32);
            b.put_slice(&data);
        }
    }
    Ok(b.freeze())
}

pub fn decode_value(bytes: &[u8]) -> Result<TxnValue, RecordError> {
    let mut r = Reader(bytes);
    let version = r.i16("value version")?;
    if !(0..=1).contains(&version) {
        return Err(RecordError::UnsupportedVersion {
            what: "TransactionLogValue",
            version,
        });
    }
    let flexible = version >= 1;
    let producer_id = r.i64("producer id")?;
    let producer_epoch = r.i16("producer epoch")?;
    let timeout_ms = r.i32("timeout")?;
    let state_id = r.i8("state")?;
    let state = TxnState::from_id(state_id).ok_or(RecordError::UnknownState(state_id))?;
    let mut partitions = BTreeSet::new();
    if let Some(topics) = r.array_len(flexible, "partitions", 2)? {
        for _ in 0..topics {
            let topic = if flexible {
                r.compact_string("topic")?
            } else {
                r.string("topic")?
            };
            // Each id takes four bytes: a count beyond what remains is refused before use.
            let count =
                r.array_len(flexible, "partition ids", 4)?
                    .ok_or(RecordError::InvalidLength {
                        field: "partition ids",
                        length: -1,
                    })?;
            for _ in 0..count {
                partitions.insert(TopicPartition::new(topic.clone(), r.i32("partition id")?));
            }
            if flexible {
                r.skip_tagged_fields("partition entry")?;
            }
        }
    }
    let last_update_ms = r.i64("last update")?;
    let start_ms = r.i64("start")?;
    let mut value = TxnValue {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
        previous_producer_id: -1,
        next_producer_id: -1,
        client_tv: 0,
    };
    if flexible {
        let count = r.varint("tagged fields")?;
        for _ in 0..count {
            let tag = r.varint("tag")?;
            let size = usize::try_from(r.varint("tag size")?).unwrap_or(usize::MAX);
            let data = r.take("tagged field", size)?;
            let mut field = Reader(data);
            match tag {
                0 => value.previous_producer_id = field.i64("previous producer id")?,
                1 => value.next_producer_id = field.i64("next producer id")?,
                2 => value.client_tv = field.i16("client transaction version")?,
                // Unknown tags are skipped, as Kafka's readers skip them.
                _ => continue,
            }
            field.finish("tagged field")?;
        }
    }
    r.finish("TransactionLogValue")?;
    Ok(value)
}

/// An unsigned varint (Kafka's `writeUnsignedVarint`).
fn put_varint(b: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        b.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    b.put_u8(value as u8);
}

/// An array length: i32 (v0) or compact (length + 1, unsigned varint) in flexible versions.
fn put_array_len(
    b: &mut BytesMut,
    flexible: bool,
    field: &'static str,
    len: usize,
) -> Result<(), RecordError> {
    if flexible {
        let plus_one = u32::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(1))
            .ok_or(RecordError::TooLong { field, length: len })?;
        put_varint(b, plus_one);
        Ok(())
    } else {
        put_len(b, field, len)
    }
}

/// A compact string (length + 1 as an unsigned varint, then UTF-8), at most i16::MAX bytes
/// as Kafka's strings are.
fn put_compact_str(b: &mut BytesMut, field: &'static str, s: &str) -> Result<(), RecordError> {
    if i16::try_from(s.len()).is_err() {
        return Err(RecordError::TooLong {
            field,
            length: s.len(),
        });
    }
    put_varint(b, s.len() as u32 + 1);
    b.put_slice(s.as_bytes());
    Ok(())
}

fn put_str(b: &mut BytesMut, field: &'static str, s: &str) -> Result<(), RecordError> {
    let length = i16::try_from(s.len()).map_err(|_| RecordError::TooLong {
        field,
        length: s.len(),
    })?;
    b.put_i16(length);
    b.put_slice(s.as_bytes());
    Ok(())
}

fn put_len(b: &mut BytesMut, field: &'static str, len: usize) -> Result<(), RecordError> {
    let length = i32::try_from(len).map_err(|_| RecordError::TooLong { field, length: len })?;
    b.put_i32(length);
    Ok(())
}

/// A bounds-checked cursor.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated {
                field,
                needed: n - self.0.len(),
            });
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn fixed<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }

    fn i8(&mut self, field: &'static str) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(self.fixed(field)?))
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.fixed(field)?))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.fixed(field)?))
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.fixed(field)?))
    }

    fn string(&mut self, field: &'static str) -> Result<String, RecordError> {
        let length = self.i16(field)?;
        let length = usize::try_from(length).map_err(|_| RecordError::InvalidLength {
            field,
            length: i64::from(length),
        })?;
        let raw = self.take(field, length)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| RecordError::InvalidUtf8 { field })
    }

    /// An unsigned varint of at most five bytes.
    fn varint(&mut self, field: &'static str) -> Result<u32, RecordError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let byte = self.fixed::<1>(field)?[0];
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::InvalidLength {
            field,
            length: i64::from(value),
        })
    }

    /// An array length (None: null), refused when `min_entry_bytes` per entry exceed what
    /// remains, so a hostile count allocates nothing.
    fn array_len(
        &mut self,
        flexible: bool,
        field: &'static str,
        min_entry_bytes: usize,
    ) -> Result<Option<usize>, RecordError> {
        let raw: i64 = if flexible {
            i64::from(self.varint(field)?) - 1
        } else {
            i64::from(self.i32(field)?)
        };
        if raw == -1 {
            return Ok(None);
        }
        match usize::try_from(raw) {
            Ok(n) if n <= self.0.len() / min_entry_bytes.max(1) => Ok(Some(n)),
            _ => Err(RecordError::InvalidLength { field, length: raw }),
        }
    }

    fn compact_string(&mut self, field: &'static str) -> Result<String, RecordError> {
        let length = i64::from(self.varint(field)?) - 1;
        let length =
            usize::try_from(length).map_err(|_| RecordError::InvalidLength { field, length })?;
        let raw = self.take(field, length)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| RecordError::InvalidUtf8 { field })
    }

    /// A tagged-field section whose fields this reader does not use.
    fn skip_tagged_fields(&mut self, field: &'static str) -> Result<(), RecordError> {
        let count = self.varint(field)?;
        for _ in 0..count {
            self.varint(field)?;
            let size = usize::try_from(self.varint(field)?).unwrap_or(usize::MAX);
            self.take(field, size)?;
        }
        Ok(())
    }

    fn finish(&self, what: &'static str) -> Result<(), RecordError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(RecordError::TrailingBytes {
                what,
                trailing: self.0.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trips_with_partitions_grouped_by_topic() {
        let value = TxnValue {
            producer_id: 42,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [("a", 0), ("a", 2), ("b", 1)]
                .into_iter()
                .map(|(t, p)| TopicPartition::new(t.to_string(), p))
                .collect(),
            last_update_ms: 10,
            start_ms: 5,
            previous_producer_id: -1,
            next_producer_id: -1,
            client_tv: 0,
        };
        let bytes = encode_value(&value, 0).unwrap();
        assert_eq!(decode_value(&bytes).unwrap(), value);
        // version, pid, epoch, timeout, state, 2 topics: "a" [0,2], "b" [1], two times.
        assert_eq!(
            bytes.len(),
            2 + 8 + 2 + 4 + 1 + 4 + (2 + 1 + 4 + 8) + (2 + 1 + 4 + 4) + 16
        );
        assert_eq!(decode_key(&encode_key("tx-1").unwrap()).unwrap(), "tx-1");
    }

    #[test]
    fn empty_state_writes_null_partitions() {
        let value = TxnValue {
            producer_id: 1,
            producer_epoch: 0,
            timeout_ms: 1,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            last_update_ms: 0,
            start_ms: -1,
            previous_producer_id: -1,
            next_producer_id: -1,
            client_tv: 0,
        };
        let bytes = encode_value(&value, 0).unwrap();
        assert_eq!(&bytes[17..21], &(-1i32).to_be_bytes());
        assert_eq!(decode_value(&bytes).unwrap(), value);
    }

    #[test]
    fn v1_writes_compact_fields_and_tagged_fields_and_reads_them_back() {
        let mut value = TxnValue {
            producer_id: 42,
            producer_epoch: 7,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [("a", 0), ("a", 2), ("b", 1)]
                .into_iter()
                .map(|(t, p)| TopicPartition::new(t.to_string(), p))
                .collect(),
            last_update_ms: 10,
            start_ms: 5,
            previous_producer_id: 41,
            next_producer_id: 43,
            client_tv: 2,
        };
        let bytes = encode_value(&value, 1).unwrap();
        assert_eq!(decode_value(&bytes).unwrap(), value);
        // version, pid, epoch, timeout, state, compact array (1 byte) of 2 topics:
        // "a" (1 + 1) [0, 2] (1 + 8) tags (1), "b" (1 + 1) [1] (1 + 4) tags (1), two times,
        // then 3 tags: count (1) and (tag, size, data) 1 + 1 + 8, 1 + 1 + 8, 1 + 1 + 2.
        assert_eq!(
            bytes.len(),
            2 + 8 + 2 + 4 + 1 + 1 + (2 + 9 + 1) + (2 + 5 + 1) + 16 + 1 + 10 + 10 + 4
        );
        // Defaults are not written: the v1 value of an Empty id ends with a null array,
        // the two times and an empty tag section.
        value.state = TxnState::Empty;
        value.partitions.clear();
        value.previous_producer_id = -1;
        value.next_producer_id = -1;
        value.client_tv = 0;
        let bytes = encode_value(&value, 1).unwrap();
        assert_eq!(bytes.len(), 2 + 8 + 2 + 4 + 1 + 1 + 16 + 1);
        assert_eq!(decode_value(&bytes).unwrap(), value);
        // An unknown tag is skipped.
        let mut with_unknown = BytesMut::from(&bytes[..bytes.len() - 1]);
        with_unknown.put_slice(&[1, 9, 2, 0xab, 0xcd]);
        assert_eq!(decode_value(&with_unknown).unwrap(), value);
        assert!(encode_value(&value, 2).is_err());
    }

    fn meta(state: TxnState, partitions: &[i32]) -> TxnMetadata {
        TxnMetadata {
            transactional_id: "tx".into(),
            producer_id: 9,
            previous_producer_id: 8,
            producer_epoch: 4,
            last_producer_epoch: 3,
            timeout_ms: 60_000,
            state,
            partitions: partitions
                .iter()
                .map(|p| TopicPartition::new("t".into(), *p))
                .collect(),
            start_ms: 5,
            last_update_ms: 6,
            next_producer_id: -1,
            client_tv: 0,
        }
    }

    fn version_of(record: &TxnRecord) -> i16 {
        let value = record.value.as_deref().unwrap();
        i16::from_be_bytes([value[0], value[1]])
    }

    #[test]
    fn the_value_version_follows_the_finalized_transaction_version_as_kafkas() {
        assert_eq!(
            [0, 1, 2].map(value_version),
            [0, 1, 1],
            "Kafka's transactionLogValueVersion"
        );
        let ongoing = meta(TxnState::Ongoing, &[0, 1]);
        for (level, version) in [(0, 0), (1, 1), (2, 1)] {
            let record = TxnRecord::of(&ongoing, level).unwrap();
            assert_eq!(version_of(&record), version, "level {level}");
            let back = decode_value(record.value.as_deref().unwrap()).unwrap();
            assert_eq!(back.partitions, ongoing.partitions);
            // v0 has no tagged fields: the previous producer id is dropped, as Kafka does.
            let previous = if version == 0 { -1 } else { 8 };
            assert_eq!(back.previous_producer_id, previous, "level {level}");
        }
        // A version 2 transaction still under way at level 0 (the level was lowered) keeps
        // its client version and next producer id: v1, where Kafka would fail the write.
        let mut tv2 = meta(TxnState::PrepareCommit, &[0]);
        tv2.client_tv = 2;
        let record = TxnRecord::of(&tv2, 0).unwrap();
        assert_eq!(version_of(&record), 1);
        assert_eq!(
            decode_value(record.value.as_deref().unwrap())
                .unwrap()
                .client_tv,
            2
        );
        let mut overflow = meta(TxnState::PrepareAbort, &[0]);
        overflow.next_producer_id = 77;
        assert_eq!(version_of(&TxnRecord::of(&overflow, 0).unwrap()), 1);
    }

    #[test]
    fn partitions_are_null_for_empty_only() {
        // Kafka's valueToBytes: null for Empty, a (here empty) array for every other state.
        for version in [0, 1] {
            let empty = TxnRecord::of(&meta(TxnState::Empty, &[]), version).unwrap();
            let complete = TxnRecord::of(&meta(TxnState::CompleteCommit, &[]), version).unwrap();
            let (empty, complete) = (empty.value.unwrap(), complete.value.unwrap());
            // version (2), pid (8), epoch (2), timeout (4), state (1), then the array.
            let at = 17;
            if version == 0 {
                assert_eq!(&empty[at..at + 4], &(-1i32).to_be_bytes());
                assert_eq!(&complete[at..at + 4], &0i32.to_be_bytes());
            } else {
                assert_eq!((empty[at], complete[at]), (0, 1), "compact null / empty");
            }
            let back = decode_value(&complete).unwrap();
            assert_eq!(back.state, TxnState::CompleteCommit);
            assert!(back.partitions.is_empty());
        }
    }

    #[test]
    fn hostile_bytes_are_refused_not_trusted() {
        // A partition-id count of 2^31-1 with no bytes behind it.
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i64(1);
        b.put_i16(0);
        b.put_i32(1);
        b.put_i8(1);
        b.put_i32(1);
        b.put_i16(1);
        b.put_slice(b"t");
        b.put_i32(i32::MAX);
        assert!(matches!(
            decode_value(&b),
            Err(RecordError::InvalidLength { .. })
        ));
        assert!(decode_value(&[0, 1]).is_err());
        assert!(decode_key(&[0, 0, 0, 9, b'x']).is_err());
        assert!(matches!(
            decode_value(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 9]),
            Err(RecordError::UnknownState(9))
        ));
        // A v1 compact array claiming 2^28 topics.
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i64(1);
        b.put_i16(0);
        b.put_i32(1);
        b.put_i8(1);
        b.put_slice(&[0x80, 0x80, 0x80, 0x80, 0x01]);
        assert!(matches!(
            decode_value(&b),
            Err(RecordError::InvalidLength { .. })
        ));
        for cut in 0..60 {
            let full = encode_value(
                &TxnValue {
                    producer_id: 1,
                    producer_epoch: 0,
                    timeout_ms: 1,
                    state: TxnState::Ongoing,
                    partitions: [TopicPartition::new("t".into(), 0)].into_iter().collect(),
                    last_update_ms: 0,
                    start_ms: 0,
                    previous_producer_id: 3,
                    next_producer_id: 4,
                    client_tv: 2,
                },
                1,
            )
            .unwrap();
            if cut < full.len() {
                assert!(decode_value(&full[..cut]).is_err());
            }
        }
    }
}
