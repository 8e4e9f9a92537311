//! `__consumer_offsets` records in Kafka's own formats: offset commit key v1 / value v3 and
//! group metadata key v2 / value v3 (non-flexible: int16-length strings, int32-length
//! bytes, a leading int16 version). Older value versions decode too; key versions above 2
//! belong to KIP-848 groups and are skipped by the reader.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::RecordError;

/// Strings in group records (keys, topic names, member and group ids) carry an int16
/// length, as in Kafka's record schemas: the longest one that can be written.
pub(crate) const STRING_BYTES_MAX: usize = i16::MAX as usize;

const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
const GROUP_METADATA_KEY_VERSION: i16 = 2;
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// The only value version with an explicit expire timestamp (OffsetCommit v2-v4 retention).
const OFFSET_COMMIT_VALUE_EXPIRING_VERSION: i16 = 1;
const GROUP_METADATA_VALUE_VERSION: i16 = 3;

/// One record for `__consumer_offsets`; `value: None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Set only by OffsetCommit v2-v4 with an explicit `retention_time_ms`; such a value is
    /// written as version 1 (the only one with the field) and expires at this time, as in
    /// Kafka 4.x, instead of `offsets.retention.minutes` after the base timestamp.
    pub expire_timestamp_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataKey {
    pub group: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberMetadata>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A decoded key: which kind of record this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    OffsetCommit(OffsetCommitKey),
    GroupMetadata(GroupMetadataKey),
}

impl GroupRecord {
    pub fn offset_commit(
        key: &OffsetCommitKey,
        value: Option<&OffsetCommitValue>,
    ) -> Result<Self, RecordError> {
        let mut k = BytesMut::new();
        k.put_i16(OFFSET_COMMIT_KEY_VERSION);
        put_str(&mut k, "group", &key.group)?;
        put_str(&mut k, "topic", &key.topic)?;
        k.put_i32(key.partition);
        let value = value.map(|v| v.encode()).transpose()?;
        Ok(GroupRecord {
            key: k.freeze(),
            value,
        })
    }

    pub fn group_metadata(
        key: &GroupMetadataKey,
        value: Option<&GroupMetadataValue>,
    ) -> Result<Self, RecordError> {
        let mut k = BytesMut::new();
        k.put_i16(GROUP_METADATA_KEY_VERSION);
        put_str(&mut k, "group", &key.group)?;
        let value = value.map(|v| v.encode()).transpose()?;
        Ok(GroupRecord {
            key: k.freeze(),
            value,
        })
    }
}

impl RecordKey {
    /// `Ok(None)` for key versions this coordinator does not own (KIP-848 records).
    pub fn decode(bytes: &[u8]) -> Result<Option<RecordKey>, RecordError> {
        let mut r = Reader::new(bytes);
        let version = r.i16("key version")?;
        let key = match version {
            0 | 1 => RecordKey::OffsetCommit(OffsetCommitKey {
                group: r.string("group")?,
                topic: r.string("topic")?,
                partition: r.i32("partition")?,
            }),
            2 => RecordKey::GroupMetadata(GroupMetadataKey {
                group: r.string("group")?,
            }),
            _ => return Ok(None),
        };
        r.finish("key")?;
        Ok(Some(key))
    }
}

impl OffsetCommitValue {
    fn encode(&self) -> Result<Bytes, RecordError> {
        let mut b = BytesMut::new();
        if let Some(expire_timestamp_ms) = self.expire_timestamp_ms {
            b.put_i16(OFFSET_COMMIT_VALUE_EXPIRING_VERSION);
            b.put_i64(self.offset);
            put_str(&mut b, "metadata", &self.metadata)?;
            b.put_i64(self.commit_timestamp_ms);
            b.put_i64(expire_timestamp_ms);
            return Ok(b.freeze());
        }
        b.put_i16(OFFSET_COMMIT_VALUE_VERSION);
        b.put_i64(self.offset);
        b.put_i32(self.leader_epoch);
        put_str(&mut b, "metadata", &self.metadata)?;
        b.put_i64(self.commit_timestamp_ms);
        Ok(b.freeze())
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader::new(bytes);
        let version = r.i16("offset commit value version")?;
        if !(0..=3).contains(&version) {
            return Err(RecordError::UnsupportedVersion {
                what: "offset commit value",
                version,
            });
        }
        let offset = r.i64("offset")?;
        let leader_epoch = if version >= 3 {
            r.i32("leader epoch")?
        } else {
            -1
        };
        let metadata = r.string("metadata")?;
        let commit_timestamp_ms = r.i64("commit timestamp")?;
        let expire_timestamp_ms = if version == OFFSET_COMMIT_VALUE_EXPIRING_VERSION {
            Some(r.i64("expire timestamp")?)
        } else {
            None
        };
        r.finish("offset commit value")?;
        Ok(OffsetCommitValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
            expire_timestamp_ms,
        })
    }
}

impl GroupMetadataValue {
    fn encode(&self) -> Result<Bytes, RecordError> {
        let mut b = BytesMut::new();
        b.put_i16(GROUP_METADATA_VALUE_VERSION);
        put_str(&mut b, "protocol type", &self.protocol_type)?;
        b.put_i32(self.generation);
        put_opt_str(&mut b, "protocol", self.protocol.as_deref())?;
        put_opt_str(&mut b, "leader", self.leader.as_deref())?;
        b.put_i64(self.current_state_timestamp_ms);
        put_len(&mut b, "members", self.members.len())?;
        for m in &self.members {
            put_str(&mut b, "member id", &m.member_id)?;
            put_opt_str(&mut b, "group instance id", m.group_instance_id.as_deref())?;
            put_str(&mut b, "client id", &m.client_id)?;
            put_str(&mut b, "client host", &m.client_host)?;
            b.put_i32(m.rebalance_timeout_ms);
            b.put_i32(m.session_timeout_ms);
            put_bytes(&mut b, "subscription", &m.subscription)?;
            put_bytes(&mut b, "assignment", &m.assignment)?;
        }
        Ok(b.freeze())
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader::new(bytes);
        let version = r.i16("group metadata value version")?;
        if !(0..=3).contains(&version) {
            return Err(RecordError::UnsupportedVersion {
                what: "group metadata value",
                version,
            });
        }
        let protocol_type = r.string("protocol type")?;
        let generation = r.i32("generation")?;
        let protocol = r.nullable_string("protocol")?;
        let leader = r.nullable_string("leader")?;
        let current_state_timestamp_ms = if version >= 2 {
            r.i64("current state timestamp")?
        } else {
            -1
        };
        let count = r.array_len("members")?;
        // Each member takes at least 24 bytes, so the count is checked against what is left
        // before it sizes anything.
        let mut members = Vec::with_capacity(count.min(r.remaining() / 24));
        for _ in 0..count {
            members.push(MemberMetadata {
                member_id: r.string("member id")?,
                group_instance_id: if version >= 3 {
                    r.nullable_string("group instance id")?
                } else {
                    None
                },
                client_id: r.string("client id")?,
                client_host: r.string("client host")?,
                rebalance_timeout_ms: if version >= 1 {
                    r.i32("rebalance timeout")?
                } else {
                    -1
                },
                session_timeout_ms: r.i32("session timeout")?,
                subscription: r.bytes("subscription")?,
                assignment: r.bytes("assignment")?,
            });
        }
        r.finish("group metadata value")?;
        Ok(GroupMetadataValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp_ms,
            members,
        })
    }
}

fn put_str(b: &mut BytesMut, field: &'static str, s: &str) -> Result<(), RecordError> {
    let length = i16::try_from(s.len()).map_err(|_| RecordError::StringTooLong {
        field,
        length: s.len(),
    })?;
    b.put_i16(length);
    b.put_slice(s.as_bytes());
    Ok(())
}

fn put_opt_str(b: &mut BytesMut, field: &'static str, s: Option<&str>) -> Result<(), RecordError> {
    match s {
        Some(s) => put_str(b, field, s),
        None => {
            b.put_i16(-1);
            Ok(())
        }
    }
}

fn put_len(b: &mut BytesMut, field: &'static str, len: usize) -> Result<(), RecordError> {
    let length = i32::try_from(len).map_err(|_| RecordError::InvalidLength {
        field,
        length: i64::MAX,
    })?;
    b.put_i32(length);
    Ok(())
}

fn put_bytes(b: &mut BytesMut, field: &'static str, bytes: &[u8]) -> Result<(), RecordError> {
    put_len(b, field, bytes.len())?;
    b.put_slice(bytes);
    Ok(())
}

/// A bounds-checked cursor: every length is compared with the bytes left before use.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], RecordError> {
        if self.buf.len() < n {
            return Err(RecordError::Truncated {
                field,
                needed_bytes: n - self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>, RecordError> {
        let length = self.i16(field)?;
        if length == -1 {
            return Ok(None);
        }
        let length = usize::try_from(length).map_err(|_| RecordError::InvalidLength {
            field,
            length: i64::from(length),
        })?;
        let raw = self.take(field, length)?;
        let s = std::str::from_utf8(raw).map_err(|_| RecordError::InvalidUtf8 { field })?;
        Ok(Some(s.to_owned()))
    }

    fn string(&mut self, field: &'static str) -> Result<String, RecordError> {
        self.nullable_string(field)?
            .ok_or(RecordError::InvalidLength { field, length: -1 })
    }

    fn array_len(&mut self, field: &'static str) -> Result<usize, RecordError> {
        let length = self.i32(field)?;
        usize::try_from(length).map_err(|_| RecordError::InvalidLength {
            field,
            length: i64::from(length),
        })
    }

    fn bytes(&mut self, field: &'static str) -> Result<Bytes, RecordError> {
        let length = self.array_len(field)?;
        Ok(Bytes::copy_from_slice(self.take(field, length)?))
    }

    fn finish(&self, what: &'static str) -> Result<(), RecordError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(RecordError::TrailingBytes {
                what,
                trailing_bytes: self.buf.len(),
            })
        }
    }
}
