//! One record inside a batch: its varint-framed encoding and bounded decoding.

use bytes::Bytes;

use crate::error::RecordsError;
use crate::header::{BatchHeader, TimestampType};
use crate::varint::{put_varint, put_varlong, Reader};

/// A record header; the key is kept as raw bytes so that rewriting a batch is lossless
/// (Kafka treats it as UTF-8, see [`Header::key_str`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

impl Header {
    pub fn new(key: impl Into<Bytes>, value: Option<Bytes>) -> Self {
        Header {
            key: key.into(),
            value,
        }
    }

    /// The key as text, if it is valid UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }
}

/// One record, with timestamp and offset relative to its batch's base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

impl Record {
    /// A plain record (no headers, attributes 0).
    pub fn new(
        offset_delta: i32,
        timestamp_delta: i64,
        key: Option<Bytes>,
        value: Option<Bytes>,
    ) -> Self {
        Record {
            attributes: 0,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers: Vec::new(),
        }
    }

    /// The record's absolute offset in a batch with this header.
    pub fn offset(&self, header: &BatchHeader) -> i64 {
        header
            .base_offset
            .saturating_add(i64::from(self.offset_delta))
    }

    /// The record's absolute timestamp in a batch with this header (CreateTime batches;
    /// in a LogAppendTime batch every record takes the batch's `max_timestamp`).
    pub fn timestamp_ms(&self, header: &BatchHeader) -> i64 {
        match header.timestamp_type() {
            TimestampType::LogAppendTime => header.max_timestamp,
            TimestampType::CreateTime => header.base_timestamp.saturating_add(self.timestamp_delta),
        }
    }

    /// Appends the record's wire form (length-prefixed) to `out`.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), RecordsError> {
        let mut body = Vec::with_capacity(self.body_capacity_hint());
        body.push(self.attributes as u8);
        put_varlong(&mut body, self.timestamp_delta);
        put_varint(&mut body, self.offset_delta);
        put_nullable(&mut body, self.key.as_deref())?;
        put_nullable(&mut body, self.value.as_deref())?;
        put_varint(&mut body, len_i32(self.headers.len())?);
        for header in &self.headers {
            put_nullable(&mut body, Some(&header.key))?;
            put_nullable(&mut body, header.value.as_deref())?;
        }
        put_varint(out, len_i32(body.len())?);
        out.extend_from_slice(&body);
        Ok(())
    }

    fn body_capacity_hint(&self) -> usize {
        let payload =
            self.key.as_ref().map_or(0, Bytes::len) + self.value.as_ref().map_or(0, Bytes::len);
        payload.saturating_add(32)
    }

    /// Decodes one record from `reader`, slicing key/value/headers out of `source`
    /// (the same bytes the reader walks) without copying.
    pub(crate) fn decode(reader: &mut Reader<'_>, source: &Bytes) -> Result<Record, RecordsError> {
        let body_len = reader.varint()?;
        let body_len = usize::try_from(body_len).map_err(|_| corrupt("negative record length"))?;
        let start = reader.position();
        let body = reader.take(body_len)?;
        let mut body_reader = Reader::new(body);
        let slice = |r: &Reader<'_>, len: usize| {
            let end = start + r.position();
            source.slice(end - len..end)
        };
        let attributes = body_reader.u8()? as i8;
        let timestamp_delta = body_reader.varlong()?;
        let offset_delta = body_reader.varint()?;
        let key = take_nullable(&mut body_reader)?.map(|len| slice(&body_reader, len));
        let value = take_nullable(&mut body_reader)?.map(|len| slice(&body_reader, len));
        let header_count = body_reader.varint()?;
        let header_count =
            usize::try_from(header_count).map_err(|_| corrupt("negative header count"))?;
        // Each header takes at least two bytes: never trust the count for an allocation.
        if header_count > body_reader.remaining_bytes() / 2 {
            return Err(corrupt("header count exceeds the record's bytes"));
        }
        let mut headers = Vec::with_capacity(header_count);
        for _ in 0..header_count {
            let key_len = take_nullable(&mut body_reader)?.ok_or(corrupt("null header key"))?;
            let key = slice(&body_reader, key_len);
            let value = take_nullable(&mut body_reader)?.map(|len| slice(&body_reader, len));
            headers.push(Header { key, value });
        }
        if !body_reader.is_empty() {
            return Err(corrupt("record length does not match its fields"));
        }
        Ok(Record {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers,
        })
    }
}

/// Reads a varint length and skips that many bytes; returns the length, or `None` for -1.
fn take_nullable(reader: &mut Reader<'_>) -> Result<Option<usize>, RecordsError> {
    let len = reader.varint()?;
    if len < 0 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| corrupt("length out of range"))?;
    reader.take(len)?;
    Ok(Some(len))
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) -> Result<(), RecordsError> {
    match bytes {
        None => put_varint(out, -1),
        Some(bytes) => {
            put_varint(out, len_i32(bytes.len())?);
            out.extend_from_slice(bytes);
        }
    }
    Ok(())
}

fn len_i32(len: usize) -> Result<i32, RecordsError> {
    i32::try_from(len).map_err(|_| RecordsError::InvalidRecord {
        reason: "field longer than i32::MAX bytes",
    })
}

fn corrupt(reason: &'static str) -> RecordsError {
    RecordsError::Corrupt { reason }
}
