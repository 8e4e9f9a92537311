//! Kafka's flexible ("compact") encoding as the KIP-848 record values use it: unsigned
//! varint lengths plus one, 16-byte UUIDs, and a tagged-field section after every struct.
//! Keys stay in the classic format (int16 lengths). Every length read is checked against
//! the bytes left before it is used.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::RecordError;

use super::types::{Assignment, TopicId};

/// The most elements a decoded array may claim, whatever the bytes left (defence in depth:
/// each element also needs at least one byte).
const ARRAY_LEN_MAX: usize = 1 << 20;

pub struct Writer {
    pub buf: BytesMut,
}

impl Writer {
    pub fn new(version: i16) -> Self {
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        Writer { buf }
    }

    /// A classic (int16-length) string, as in record keys.
    pub fn key_string(&mut self, field: &'static str, s: &str) -> Result<(), RecordError> {
        let length = i16::try_from(s.len()).map_err(|_| RecordError::StringTooLong {
            field,
            length: s.len(),
        })?;
        self.buf.put_i16(length);
        self.buf.put_slice(s.as_bytes());
        Ok(())
    }

    pub fn i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub fn uuid(&mut self, id: TopicId) {
        self.buf.put_slice(&id.0);
    }

    pub fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    /// Length-plus-one prefix of compact strings and arrays (0 is null).
    pub fn len(&mut self, len: usize) {
        self.uvarint(len as u64 + 1);
    }

    pub fn string(&mut self, s: &str) {
        self.len(s.len());
        self.buf.put_slice(s.as_bytes());
    }

    pub fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.uvarint(0),
        }
    }

    /// An empty tagged-field section: this coordinator writes no tagged fields.
    pub fn no_tags(&mut self) {
        self.uvarint(0);
    }
}

pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
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

    pub fn i8(&mut self, field: &'static str) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(self.array(field)?))
    }

    pub fn i16(&mut self, field: &'static str) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    pub fn i32(&mut self, field: &'static str) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    pub fn uuid(&mut self, field: &'static str) -> Result<TopicId, RecordError> {
        Ok(TopicId(self.array(field)?))
    }

    pub fn key_string(&mut self, field: &'static str) -> Result<String, RecordError> {
        let length = self.i16(field)?;
        let length = usize::try_from(length).map_err(|_| RecordError::InvalidLength {
            field,
            length: i64::from(length),
        })?;
        utf8(field, self.take(field, length)?)
    }

    pub fn uvarint(&mut self, field: &'static str) -> Result<u64, RecordError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let [byte] = self.array::<1>(field)?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::InvalidLength { field, length: -1 })
    }

    /// A compact length: `None` for null.
    pub fn len(&mut self, field: &'static str) -> Result<Option<usize>, RecordError> {
        let raw = self.uvarint(field)?;
        if raw == 0 {
            return Ok(None);
        }
        let len = usize::try_from(raw - 1).map_err(|_| RecordError::InvalidLength {
            field,
            length: i64::MAX,
        })?;
        Ok(Some(len))
    }

    /// A compact array length, checked against the bytes left.
    pub fn array_len(&mut self, field: &'static str) -> Result<usize, RecordError> {
        let len = self.len(field)?.unwrap_or(0);
        if len > self.buf.len() || len > ARRAY_LEN_MAX {
            return Err(RecordError::InvalidLength {
                field,
                length: i64::try_from(len).unwrap_or(i64::MAX),
            });
        }
        Ok(len)
    }

    pub fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>, RecordError> {
        match self.len(field)? {
            None => Ok(None),
            Some(n) => Ok(Some(utf8(field, self.take(field, n)?)?)),
        }
    }

    pub fn string(&mut self, field: &'static str) -> Result<String, RecordError> {
        self.nullable_string(field)?
            .ok_or(RecordError::InvalidLength { field, length: -1 })
    }

    /// Skips a tagged-field section (fields a newer Kafka may have added).
    pub fn skip_tags(&mut self, field: &'static str) -> Result<(), RecordError> {
        let count = self.uvarint(field)?;
        for _ in 0..count.min(ARRAY_LEN_MAX as u64) {
            self.uvarint(field)?;
            let size = self.len_raw(field)?;
            self.take(field, size)?;
        }
        Ok(())
    }

    fn len_raw(&mut self, field: &'static str) -> Result<usize, RecordError> {
        let raw = self.uvarint(field)?;
        usize::try_from(raw).map_err(|_| RecordError::InvalidLength {
            field,
            length: i64::MAX,
        })
    }

    pub fn finish(&self, what: &'static str) -> Result<(), RecordError> {
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

fn utf8(field: &'static str, raw: &[u8]) -> Result<String, RecordError> {
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|_| RecordError::InvalidUtf8 { field })
}

/// The value version every KIP-848 / KIP-932 group record value has (flexible version 0).
pub const RECORD_VALUE_VERSION: i16 = 0;

/// A group record key: the record type as key version, the group id, and the member id
/// for per-member records (classic strings). Shared by the consumer and share group records.
pub fn record_key(version: i16, group: &str, member: Option<&str>) -> Result<Bytes, RecordError> {
    let mut w = Writer::new(version);
    w.key_string("group id", group)?;
    if let Some(member) = member {
        w.key_string("member id", member)?;
    }
    Ok(w.buf.freeze())
}

/// A value holding one epoch (target assignment metadata of consumer and share groups, and
/// the consumer group metadata).
pub fn epoch_value(epoch: i32) -> Bytes {
    let mut w = Writer::new(RECORD_VALUE_VERSION);
    w.i32(epoch);
    w.no_tags();
    w.buf.freeze()
}

/// A reader past a value's version, which must be [`RECORD_VALUE_VERSION`].
pub fn value_reader<'a>(bytes: &'a [u8], what: &'static str) -> Result<Reader<'a>, RecordError> {
    let mut r = Reader::new(bytes);
    let version = r.i16("value version")?;
    if version != RECORD_VALUE_VERSION {
        return Err(RecordError::UnsupportedVersion { what, version });
    }
    Ok(r)
}

/// Kafka's `[]TopicPartitions` of an assignment: topic id, partitions, tags per topic.
pub fn put_assignment(w: &mut Writer, a: &Assignment) {
    w.len(a.len());
    for (topic, partitions) in a {
        w.uuid(*topic);
        w.len(partitions.len());
        for p in partitions {
            w.i32(*p);
        }
        w.no_tags();
    }
}

/// Reads what [`put_assignment`] writes; topics without partitions are left out.
pub fn read_assignment(r: &mut Reader<'_>) -> Result<Assignment, RecordError> {
    let count = r.array_len("topic partitions")?;
    let mut out = Assignment::new();
    for _ in 0..count {
        let topic = r.uuid("topic id")?;
        let n = r.array_len("partitions")?;
        let mut partitions = BTreeSet::new();
        for _ in 0..n {
            partitions.insert(r.i32("partition")?);
        }
        r.skip_tags("topic partitions tags")?;
        if !partitions.is_empty() {
            out.entry(topic).or_default().extend(partitions);
        }
    }
    Ok(out)
}
