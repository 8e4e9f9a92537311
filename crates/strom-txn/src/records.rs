//! The `__transaction_state` record format, Kafka's `TransactionLogKey` v0 and
//! `TransactionLogValue` v0 (big-endian, as Kafka's generated code writes them), so that
//! Kafka's tools could read the topic. Key: version (i16, 0), transactional id (string).
//! Value: version (i16, 0), producer id (i64), producer epoch (i16), timeout (i32), state
//! (i8), partitions (nullable array of topic string and i32 array), last update (i64),
//! start (i64). A record without a value is a tombstone (the id expired). Decoding checks
//! every length against the bytes present before using it.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use crate::state::{TopicPartition, TxnMetadata, TxnState};

/// The key and value version this crate writes.
const VERSION: i16 = 0;

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
    #[error("{what}: unsupported version {version} (this broker reads version 0)")]
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
}

impl TxnRecord {
    /// The record persisting `meta`.
    pub fn of(meta: &TxnMetadata) -> Result<TxnRecord, RecordError> {
        Ok(TxnRecord {
            key: encode_key(&meta.transactional_id)?,
            value: Some(encode_value(&TxnValue {
                producer_id: meta.producer_id,
                producer_epoch: meta.producer_epoch,
                timeout_ms: meta.timeout_ms,
                state: meta.state,
                partitions: meta.partitions.clone(),
                last_update_ms: meta.last_update_ms,
                start_ms: meta.start_ms,
            })?),
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
    b.put_i16(VERSION);
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

pub fn encode_value(v: &TxnValue) -> Result<Bytes, RecordError> {
    let mut b = BytesMut::with_capacity(64);
    b.put_i16(VERSION);
    b.put_i64(v.producer_id);
    b.put_i16(v.producer_epoch);
    b.put_i32(v.timeout_ms);
    b.put_i8(v.state.id());
    // Partitions grouped by topic, as Kafka writes them; Kafka writes null for Empty and
    // the complete states, an array otherwise.
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in &v.partitions {
        match topics.last_mut() {
            Some((topic, ids)) if *topic == tp.topic => ids.push(tp.partition),
            _ => topics.push((&tp.topic, vec![tp.partition])),
        }
    }
    if v.partitions.is_empty() && !matches!(v.state, TxnState::Ongoing) {
        b.put_i32(-1);
    } else {
        put_len(&mut b, "partitions", topics.len())?;
        for (topic, ids) in topics {
            put_str(&mut b, "topic", topic)?;
            put_len(&mut b, "partition ids", ids.len())?;
            for id in ids {
                b.put_i32(id);
            }
        }
    }
    b.put_i64(v.last_update_ms);
    b.put_i64(v.start_ms);
    Ok(b.freeze())
}

pub fn decode_value(bytes: &[u8]) -> Result<TxnValue, RecordError> {
    let mut r = Reader(bytes);
    let version = r.i16("value version")?;
    if version != 0 {
        return Err(RecordError::UnsupportedVersion {
            what: "TransactionLogValue",
            version,
        });
    }
    let producer_id = r.i64("producer id")?;
    let producer_epoch = r.i16("producer epoch")?;
    let timeout_ms = r.i32("timeout")?;
    let state_id = r.i8("state")?;
    let state = TxnState::from_id(state_id).ok_or(RecordError::UnknownState(state_id))?;
    let mut partitions = BTreeSet::new();
    let topics = r.i32("partitions")?;
    if topics >= 0 {
        for _ in 0..topics {
            let topic = r.string("topic")?;
            let count = r.i32("partition ids")?;
            // Each id takes four bytes: a count beyond what remains is refused before use.
            if count < 0 || usize::try_from(count).unwrap_or(usize::MAX) > r.0.len() / 4 {
                return Err(RecordError::InvalidLength {
                    field: "partition ids",
                    length: i64::from(count),
                });
            }
            for _ in 0..count {
                partitions.insert(TopicPartition::new(topic.clone(), r.i32("partition id")?));
            }
        }
    } else if topics != -1 {
        return Err(RecordError::InvalidLength {
            field: "partitions",
            length: i64::from(topics),
        });
    }
    let last_update_ms = r.i64("last update")?;
    let start_ms = r.i64("start")?;
    r.finish("TransactionLogValue")?;
    Ok(TxnValue {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
    })
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
        };
        let bytes = encode_value(&value).unwrap();
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
        };
        let bytes = encode_value(&value).unwrap();
        assert_eq!(&bytes[17..21], &(-1i32).to_be_bytes());
        assert_eq!(decode_value(&bytes).unwrap(), value);
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
        for cut in 0..40 {
            let full = encode_value(&TxnValue {
                producer_id: 1,
                producer_epoch: 0,
                timeout_ms: 1,
                state: TxnState::Ongoing,
                partitions: [TopicPartition::new("t".into(), 0)].into_iter().collect(),
                last_update_ms: 0,
                start_ms: 0,
            })
            .unwrap();
            if cut < full.len() {
                assert!(decode_value(&full[..cut]).is_err());
            }
        }
    }
}
