//! Walking every record of one batch without materialising it: each record's structure is
//! checked the way Kafka's `DefaultRecord.readFrom` and `DefaultRecordBatch`'s record
//! iterator check it, and a visitor sees the record's fixed fields (and, on request, its
//! key). Nothing is allocated per record or per header: an uncompressed batch is read in
//! place, a compressed one through a streaming decoder (see `compression.rs`) and one
//! [`WINDOW_BYTES`] buffer, within the decompression budget of [`DecodeLimits`].
//!
//! [`retain_records`] rebuilds a batch from a subset of its records by copying their
//! encoded bytes (compaction), again without decoding them into values.

use std::io::Read;

use crate::compression::{decoder, io_failed, too_large, Encoder};
use crate::decode::DecodeLimits;
use crate::error::RecordsError;
use crate::header::{attr, pos, BatchHeader, Compression, TimestampType, BATCH_HEADER_BYTES};
use crate::rewrite::store_crc;
use crate::validate::check_length;
use crate::varint::{put_varint, put_varlong};

/// The decompressed bytes a walk holds at once at most (plus the codec's own state).
pub const WINDOW_BYTES: usize = 64 * 1024;
/// The smallest window: a small batch does not pay for clearing a large one.
const WINDOW_BYTES_MIN: usize = 4 * 1024;

/// The window for a compressed payload of `payload_bytes`: room for a few times its size
/// (most records compress less than that), within the bounds.
fn window_bytes(payload_bytes: usize) -> usize {
    payload_bytes
        .saturating_mul(4)
        .clamp(WINDOW_BYTES_MIN, WINDOW_BYTES)
}

const VARINT_BYTES_MAX: usize = 5;
const VARLONG_BYTES_MAX: usize = 10;

/// Which record offset deltas a walk accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetDeltas {
    /// A producer's batch: record `i` has offset delta `i`, so every offset of the batch's
    /// range holds exactly one record. Every Kafka producer writes that; Kafka's
    /// LogValidator rewrites (recompresses) a compressed batch that does not, and Strom,
    /// which never re-encodes on the produce path, refuses it (INVALID_RECORD).
    Consecutive,
    /// A stored batch: compaction leaves gaps, and data written before the walk existed
    /// is read as it is. Deltas are not checked.
    Any,
}

/// What a walk checks and hands its visitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkOptions {
    pub offset_deltas: OffsetDeltas,
    /// Hand the visitor each record's key bytes (copied out of the decompressed stream for
    /// a compressed batch; bounded by the decompression budget).
    pub keys: bool,
}

impl WalkOptions {
    /// A producer's batch, keys not needed.
    pub const CLIENT: WalkOptions = WalkOptions {
        offset_deltas: OffsetDeltas::Consecutive,
        keys: false,
    };
    /// A stored batch, keys not needed.
    pub const STORED: WalkOptions = WalkOptions {
        offset_deltas: OffsetDeltas::Any,
        keys: false,
    };

    pub const fn with_keys(self, keys: bool) -> WalkOptions {
        WalkOptions {
            offset_deltas: self.offset_deltas,
            keys,
        }
    }
}

/// One record's fixed fields as a walk read them. Key and value are described by their
/// lengths (`None`: null); the headers only by their count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// Position in the batch, from 0 (Kafka's `batch_index` in Produce `record_errors`).
    pub index: usize,
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key_bytes: Option<usize>,
    pub value_bytes: Option<usize>,
    pub header_count: usize,
    /// The encoded record, its length varint included.
    pub size_bytes: usize,
}

impl RecordInfo {
    pub fn has_key(&self) -> bool {
        self.key_bytes.is_some()
    }

    /// A null value: a tombstone on a compacted topic.
    pub fn is_tombstone(&self) -> bool {
        self.value_bytes.is_none()
    }

    /// The record's absolute offset in a batch with this header.
    pub fn offset(&self, header: &BatchHeader) -> i64 {
        header
            .base_offset
            .saturating_add(i64::from(self.offset_delta))
    }

    /// The record's timestamp as Kafka's `DefaultRecord` gives it: the batch's max timestamp
    /// in a LogAppendTime batch, else the base timestamp plus the delta.
    pub fn timestamp_ms(&self, header: &BatchHeader) -> i64 {
        match header.timestamp_type() {
            TimestampType::LogAppendTime => header.max_timestamp,
            TimestampType::CreateTime => header.base_timestamp.saturating_add(self.timestamp_delta),
        }
    }
}

/// What a whole walk saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkSummary {
    pub records: usize,
    /// The records section's plain size (after decompression).
    pub plain_bytes: usize,
}

/// Walks every record of the one batch occupying exactly `batch` and checks its structure:
/// the record length varint against the bytes its fields take, key and value lengths
/// (`-1` is null; below that is refused: Kafka reads it as null, librdkafka fails to parse
/// the fetch), a header count that is not negative and not more than the record's bytes, header
/// keys present, offset deltas per `options`, exactly `records_count` records and no byte
/// after them. A compressed batch is decompressed as a stream, within
/// `limits.decompressed_bytes_max`; an uncompressed one is read in place. `visit` sees every
/// record in order (with its key if `options.keys`); its error ends the walk.
///
/// Only the batch's length and codec are checked here, not its CRC or header rules
/// ([`crate::validate`], [`crate::validate_client_batch`]).
pub fn walk_records<E: From<RecordsError>>(
    batch: &[u8],
    limits: &DecodeLimits,
    options: WalkOptions,
    mut visit: impl FnMut(&RecordInfo, Option<&[u8]>) -> Result<(), E>,
) -> Result<WalkSummary, E> {
    let header = BatchHeader::parse(batch)?;
    check_length(&header, batch.len())?;
    let codec = header.compression()?;
    let payload = batch.get(BATCH_HEADER_BYTES..).unwrap_or_default();
    let count = usize::try_from(header.records_count).map_err(|_| RecordsError::InvalidRecord {
        reason: "negative record count",
    })?;
    if codec == Compression::None {
        let mut source = SliceSource {
            bytes: payload,
            position: 0,
        };
        return walk_source(&mut source, count, options, &mut visit);
    }
    let budget = limits.decompressed_bytes_max;
    let window = window_bytes(payload.len());
    let mut source = StreamSource::new(decoder(codec, payload, budget)?, codec, budget, window);
    walk_source(&mut source, count, options, &mut visit)
}

/// A batch rebuilt from some of its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retained {
    pub batch: Vec<u8>,
    pub records_kept: usize,
}

/// What a rebuilt batch changes beyond dropping records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rebuild {
    /// A delete horizon to store (KIP-534): it becomes the base timestamp, the
    /// delete-horizon attribute is set, and every kept record's timestamp delta is rebased
    /// onto it so that its absolute timestamp stays.
    pub delete_horizon_ms: Option<i64>,
}

/// Rebuilds the batch occupying exactly `batch` with only the records whose index `keep`
/// accepts, their encoded bytes copied unchanged (offset and timestamp deltas stay relative
/// to the same base offset and base timestamp) unless `rebuild` sets a delete horizon, which
/// rewrites each kept record's timestamp delta and length and copies the rest. Every other
/// header field is kept (base offset, last offset delta, max timestamp, producer fields,
/// attributes) except the record count, the length and the CRC; the records are compressed
/// again with the batch's codec, streaming. A batch left without records is Kafka's empty
/// header ([`crate::empty_batch`]: uncompressed, librdkafka refuses an empty compressed
/// payload). Memory: the output and one codec window; the records are never decoded into
/// values. The batch should have been walked ([`walk_records`]) first: this re-reads only
/// record lengths (and timestamp deltas when rebasing).
pub fn retain_records(
    batch: &[u8],
    limits: &DecodeLimits,
    rebuild: Rebuild,
    mut keep: impl FnMut(usize) -> bool,
) -> Result<Retained, RecordsError> {
    let header = BatchHeader::parse(batch)?;
    check_length(&header, batch.len())?;
    let codec = header.compression()?;
    let payload = batch.get(BATCH_HEADER_BYTES..).unwrap_or_default();
    let count = usize::try_from(header.records_count).map_err(|_| RecordsError::InvalidRecord {
        reason: "negative record count",
    })?;
    let rebase = rebuild
        .delete_horizon_ms
        .map(|horizon| header.base_timestamp.saturating_sub(horizon));
    let head = batch.get(..BATCH_HEADER_BYTES).unwrap_or_default().to_vec();
    let mut encoder = Encoder::new(codec, head)?;
    let kept = if codec == Compression::None {
        let mut source = SliceSource {
            bytes: payload,
            position: 0,
        };
        copy_records(&mut source, count, &mut keep, rebase, &mut encoder)?
    } else {
        let budget = limits.decompressed_bytes_max;
        let window = window_bytes(payload.len());
        let mut source = StreamSource::new(decoder(codec, payload, budget)?, codec, budget, window);
        copy_records(&mut source, count, &mut keep, rebase, &mut encoder)?
    };
    if kept == 0 {
        return Ok(Retained {
            batch: crate::builder::empty_batch(&header)?,
            records_kept: 0,
        });
    }
    let mut out = encoder.finish()?;
    let batch_length =
        i32::try_from(out.len() - pos::LOG_OVERHEAD).map_err(|_| RecordsError::BatchTooLarge {
            size_bytes: out.len(),
            limit_bytes: i32::MAX as usize,
        })?;
    let records_count = i32::try_from(kept).map_err(|_| RecordsError::InvalidRecord {
        reason: "too many records in one batch",
    })?;
    write_be(&mut out, pos::BATCH_LENGTH, &batch_length.to_be_bytes());
    write_be(&mut out, pos::RECORDS_COUNT, &records_count.to_be_bytes());
    if let Some(horizon) = rebuild.delete_horizon_ms {
        write_be(&mut out, pos::BASE_TIMESTAMP, &horizon.to_be_bytes());
        let attributes = header.attributes | attr::DELETE_HORIZON;
        write_be(&mut out, pos::ATTRIBUTES, &attributes.to_be_bytes());
    }
    store_crc(&mut out)?;
    Ok(Retained {
        batch: out,
        records_kept: kept,
    })
}

fn write_be(out: &mut [u8], at: usize, value: &[u8]) {
    if let Some(slot) = out.get_mut(at..at + value.len()) {
        slot.copy_from_slice(value);
    }
}

/// Copies the kept records into `encoder`; with `rebase`, each one's timestamp delta gets
/// `rebase` added (and its length follows).
fn copy_records<S: Source>(
    source: &mut S,
    count: usize,
    keep: &mut impl FnMut(usize) -> bool,
    rebase: Option<i64>,
    encoder: &mut Encoder,
) -> Result<usize, RecordsError> {
    let mut kept = 0;
    let mut prefix = Vec::with_capacity(VARINT_BYTES_MAX + 1 + VARLONG_BYTES_MAX);
    let mut fields = Vec::with_capacity(1 + VARLONG_BYTES_MAX);
    for index in 0..count {
        let premature = || RecordsError::InvalidRecordAt {
            record_index: index,
            reason: "fewer records than the batch's record count",
        };
        let (length, _) = read_varint(source, index)?.ok_or_else(premature)?;
        let body_bytes = usize::try_from(length).map_err(|_| RecordsError::InvalidRecordAt {
            record_index: index,
            reason: "negative record length",
        })?;
        if !keep(index) {
            if !source.skip(body_bytes)? {
                return Err(ends_inside(index));
            }
            continue;
        }
        prefix.clear();
        let rest_bytes = match rebase {
            None => {
                put_varint(&mut prefix, length);
                body_bytes
            }
            Some(rebase) => {
                let mut body = Body {
                    source: &mut *source,
                    index,
                    left: body_bytes,
                };
                let attributes = body.byte()?;
                let timestamp_delta = body.varlong()?;
                let rest_bytes = body.left;
                fields.clear();
                fields.push(attributes);
                put_varlong(&mut fields, timestamp_delta.saturating_add(rebase));
                let new_length = i32::try_from(fields.len() + rest_bytes).map_err(|_| {
                    RecordsError::InvalidRecordAt {
                        record_index: index,
                        reason: "record too long once rebased",
                    }
                })?;
                put_varint(&mut prefix, new_length);
                prefix.extend_from_slice(&fields);
                rest_bytes
            }
        };
        encoder.write_all(&prefix)?;
        if !source.copy_to(rest_bytes, encoder)? {
            return Err(ends_inside(index));
        }
        kept += 1;
    }
    Ok(kept)
}

fn walk_source<S: Source, E: From<RecordsError>>(
    source: &mut S,
    count: usize,
    options: WalkOptions,
    visit: &mut impl FnMut(&RecordInfo, Option<&[u8]>) -> Result<(), E>,
) -> Result<WalkSummary, E> {
    let mut scratch = Vec::new();
    for index in 0..count {
        let (info, key) = read_record(source, index, options, &mut scratch)?;
        let key = key.map(|k| source.key(k, &scratch));
        visit(&info, key)?;
    }
    if !source.at_end()? {
        return Err(RecordsError::InvalidRecord {
            reason: "bytes left after the batch's declared records",
        }
        .into());
    }
    Ok(WalkSummary {
        records: count,
        plain_bytes: source.consumed(),
    })
}

/// Reads one record; on success the source stands at the next record.
fn read_record<S: Source>(
    source: &mut S,
    index: usize,
    options: WalkOptions,
    scratch: &mut Vec<u8>,
) -> Result<(RecordInfo, Option<KeyAt>), RecordsError> {
    let invalid = |reason| RecordsError::InvalidRecordAt {
        record_index: index,
        reason,
    };
    let (length, length_bytes) = read_varint(source, index)?
        .ok_or(invalid("fewer records than the batch's record count"))?;
    let body_bytes = usize::try_from(length).map_err(|_| invalid("negative record length"))?;
    let mut body = Body {
        source,
        index,
        left: body_bytes,
    };
    let attributes = body.byte()? as i8;
    let timestamp_delta = body.varlong()?;
    let offset_delta = body.varint()?;
    if options.offset_deltas == OffsetDeltas::Consecutive
        && usize::try_from(offset_delta).ok() != Some(index)
    {
        return Err(invalid("offset delta differs from the record's position"));
    }
    let key_bytes = body.nullable_len("key length below -1")?;
    let key = match key_bytes {
        Some(len) if options.keys => Some(body.key(len, scratch)?),
        Some(len) => {
            body.skip(len)?;
            None
        }
        None => None,
    };
    let value_bytes = body.nullable_len("value length below -1")?;
    if let Some(len) = value_bytes {
        body.skip(len)?;
    }
    let header_count = body.varint()?;
    let header_count =
        usize::try_from(header_count).map_err(|_| invalid("negative header count"))?;
    // Kafka's bound: a count above the bytes left cannot be honest (each header takes two).
    if header_count > body.left {
        return Err(invalid("header count exceeds the record's bytes"));
    }
    let mut headers_left = header_count;
    while headers_left > 0 {
        // The headers lying whole in the buffered bytes, in one tight loop; then one header
        // through the general path (it crosses the window's end, or is damaged).
        let buffered = body.source.buffered();
        let buffered = buffered.get(..body.left).unwrap_or(buffered);
        let (headers, bytes) = skip_headers(buffered, headers_left);
        if headers > 0 {
            body.source.advance(bytes);
            body.left -= bytes;
            headers_left -= headers;
            continue;
        }
        let key_len = body.nullable_len("header key length below -1")?;
        let key_len = key_len.ok_or(invalid("null header key"))?;
        body.skip(key_len)?;
        if let Some(value_len) = body.nullable_len("header value length below -1")? {
            body.skip(value_len)?;
        }
        headers_left -= 1;
    }
    if body.left != 0 {
        return Err(invalid("record length does not match its fields"));
    }
    let info = RecordInfo {
        index,
        attributes,
        timestamp_delta,
        offset_delta,
        key_bytes,
        value_bytes,
        header_count,
        size_bytes: length_bytes + body_bytes,
    };
    Ok((info, key))
}

/// Skips up to `count` whole, valid headers at the start of `bytes`; returns how many and
/// the bytes they take. Stops before a header that is cut off or invalid (the general path
/// then reads it and reports the fault).
#[inline]
fn skip_headers(bytes: &[u8], count: usize) -> (usize, usize) {
    let mut at = 0;
    for done in 0..count {
        let Some((key_len, after_key_len)) = slice_varint(bytes, at) else {
            return (done, at);
        };
        let Some(value_at) = usize::try_from(key_len)
            .ok()
            .and_then(|len| after_key_len.checked_add(len))
        else {
            return (done, at);
        };
        let Some((value_len, after_value_len)) = slice_varint(bytes, value_at) else {
            return (done, at);
        };
        let end = match value_len {
            -1 => after_value_len,
            len => match usize::try_from(len)
                .ok()
                .and_then(|len| after_value_len.checked_add(len))
            {
                Some(end) => end,
                None => return (done, at),
            },
        };
        if end > bytes.len() {
            return (done, at);
        }
        at = end;
    }
    (count, at)
}

/// A zig-zag varint at `at` in `bytes` and the position after it, if it lies whole there.
#[inline]
fn slice_varint(bytes: &[u8], at: usize) -> Option<(i32, usize)> {
    match decode_unsigned(bytes.get(at..)?, VARINT_BYTES_MAX)? {
        Unsigned::Value(raw, len) => {
            let raw = raw as u32;
            Some((((raw >> 1) as i32) ^ -((raw & 1) as i32), at + len))
        }
        _ => None,
    }
}

fn ends_inside(index: usize) -> RecordsError {
    RecordsError::InvalidRecordAt {
        record_index: index,
        reason: "the records end inside a record",
    }
}

/// Reads within one record body of `left` bytes.
struct Body<'s, S> {
    source: &'s mut S,
    index: usize,
    left: usize,
}

impl<S: Source> Body<'_, S> {
    fn invalid(&self, reason: &'static str) -> RecordsError {
        RecordsError::InvalidRecordAt {
            record_index: self.index,
            reason,
        }
    }

    fn spend(&mut self, bytes: usize) -> Result<(), RecordsError> {
        self.left = self
            .left
            .checked_sub(bytes)
            .ok_or_else(|| self.invalid("a field runs past the record's length"))?;
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, RecordsError> {
        self.spend(1)?;
        self.source.byte()?.ok_or_else(|| ends_inside(self.index))
    }

    fn varint(&mut self) -> Result<i32, RecordsError> {
        let (value, bytes) =
            read_varint(self.source, self.index)?.ok_or_else(|| ends_inside(self.index))?;
        self.spend(bytes)?;
        Ok(value)
    }

    fn varlong(&mut self) -> Result<i64, RecordsError> {
        let (raw, bytes) = read_unsigned(self.source, self.index, VARLONG_BYTES_MAX)?
            .ok_or_else(|| ends_inside(self.index))?;
        self.spend(bytes)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// A length that may be -1 (null); anything below is refused with `below`.
    fn nullable_len(&mut self, below: &'static str) -> Result<Option<usize>, RecordsError> {
        match self.varint()? {
            -1 => Ok(None),
            len => usize::try_from(len)
                .map(Some)
                .map_err(|_| self.invalid(below)),
        }
    }

    fn skip(&mut self, len: usize) -> Result<(), RecordsError> {
        self.spend(len)?;
        if self.source.skip(len)? {
            Ok(())
        } else {
            Err(ends_inside(self.index))
        }
    }

    fn key(&mut self, len: usize, scratch: &mut Vec<u8>) -> Result<KeyAt, RecordsError> {
        self.spend(len)?;
        self.source
            .take_key(len, scratch)?
            .ok_or_else(|| ends_inside(self.index))
    }
}

/// A zig-zag varint as Kafka's `ByteUtils.readVarint` reads it, with its encoded size;
/// `None` if the records end before its first byte.
fn read_varint<S: Source>(
    source: &mut S,
    index: usize,
) -> Result<Option<(i32, usize)>, RecordsError> {
    let Some((raw, bytes)) = read_unsigned(source, index, VARINT_BYTES_MAX)? else {
        return Ok(None);
    };
    // Kafka keeps the low 32 bits of an over-long fifth byte.
    let raw = raw as u32;
    Ok(Some((((raw >> 1) as i32) ^ -((raw & 1) as i32), bytes)))
}

fn read_unsigned<S: Source>(
    source: &mut S,
    index: usize,
    bytes_max: usize,
) -> Result<Option<(u64, usize)>, RecordsError> {
    match source.unsigned(bytes_max)? {
        Unsigned::Value(value, bytes) => Ok(Some((value, bytes))),
        Unsigned::End => Ok(None),
        Unsigned::EndInside => Err(ends_inside(index)),
        Unsigned::TooLong => Err(RecordsError::InvalidRecordAt {
            record_index: index,
            reason: "varint longer than its type allows",
        }),
    }
}

/// What reading an unsigned varint found.
enum Unsigned {
    /// The value and its encoded size.
    Value(u64, usize),
    /// No byte left.
    End,
    /// The bytes end inside the varint.
    EndInside,
    /// More than the type's bytes.
    TooLong,
}

/// Decodes an unsigned varint from the start of `bytes`; `None` if `bytes` ends first.
#[inline]
fn decode_unsigned(bytes: &[u8], bytes_max: usize) -> Option<Unsigned> {
    let mut value: u64 = 0;
    for (at, &byte) in bytes.iter().take(bytes_max).enumerate() {
        value |= u64::from(byte & 0x7f).wrapping_shl(7 * at as u32);
        if byte & 0x80 == 0 {
            return Some(Unsigned::Value(value, at + 1));
        }
    }
    (bytes.len() >= bytes_max).then_some(Unsigned::TooLong)
}

/// Where a key the walk read lies: in the batch itself, or copied into the scratch buffer.
#[derive(Clone, Copy)]
enum KeyAt {
    Payload { start: usize, len: usize },
    Scratch,
}

/// The plain records section, read once from start to end.
trait Source {
    /// The next byte; `None` at the end of the records.
    fn byte(&mut self) -> Result<Option<u8>, RecordsError>;
    /// The next unsigned varint of at most `bytes_max` bytes.
    fn unsigned(&mut self, bytes_max: usize) -> Result<Unsigned, RecordsError>;
    /// Skips `len` bytes; false if the records end first.
    fn skip(&mut self, len: usize) -> Result<bool, RecordsError>;
    /// Takes `len` key bytes (borrowed in place, or copied into `scratch`).
    fn take_key(
        &mut self,
        len: usize,
        scratch: &mut Vec<u8>,
    ) -> Result<Option<KeyAt>, RecordsError>;
    fn key<'s>(&'s self, at: KeyAt, scratch: &'s [u8]) -> &'s [u8];
    /// Copies `len` bytes into `out`; false if the records end first.
    fn copy_to(&mut self, len: usize, out: &mut Encoder) -> Result<bool, RecordsError>;
    /// Whether no byte is left.
    fn at_end(&mut self) -> Result<bool, RecordsError>;
    /// Bytes read so far.
    fn consumed(&self) -> usize;
    /// The bytes available without reading further (possibly none).
    fn buffered(&self) -> &[u8];
    /// Moves past `len` of the [`Source::buffered`] bytes.
    fn advance(&mut self, len: usize);
}

/// An uncompressed records section, read in place.
struct SliceSource<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Source for SliceSource<'_> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, RecordsError> {
        let byte = self.bytes.get(self.position).copied();
        if byte.is_some() {
            self.position += 1;
        }
        Ok(byte)
    }

    #[inline]
    fn unsigned(&mut self, bytes_max: usize) -> Result<Unsigned, RecordsError> {
        let rest = self.bytes.get(self.position..).unwrap_or_default();
        Ok(match decode_unsigned(rest, bytes_max) {
            Some(Unsigned::Value(value, bytes)) => {
                self.position += bytes;
                Unsigned::Value(value, bytes)
            }
            Some(other) => other,
            None if rest.is_empty() => Unsigned::End,
            None => Unsigned::EndInside,
        })
    }

    fn skip(&mut self, len: usize) -> Result<bool, RecordsError> {
        match self.position.checked_add(len) {
            Some(end) if end <= self.bytes.len() => {
                self.position = end;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn take_key(
        &mut self,
        len: usize,
        _scratch: &mut Vec<u8>,
    ) -> Result<Option<KeyAt>, RecordsError> {
        let start = self.position;
        Ok(self.skip(len)?.then_some(KeyAt::Payload { start, len }))
    }

    fn key<'s>(&'s self, at: KeyAt, scratch: &'s [u8]) -> &'s [u8] {
        match at {
            KeyAt::Payload { start, len } => self
                .bytes
                .get(start..start.saturating_add(len))
                .unwrap_or_default(),
            KeyAt::Scratch => scratch,
        }
    }

    fn copy_to(&mut self, len: usize, out: &mut Encoder) -> Result<bool, RecordsError> {
        let start = self.position;
        if !self.skip(len)? {
            return Ok(false);
        }
        out.write_all(self.bytes.get(start..self.position).unwrap_or_default())?;
        Ok(true)
    }

    fn at_end(&mut self) -> Result<bool, RecordsError> {
        Ok(self.position >= self.bytes.len())
    }

    fn consumed(&self) -> usize {
        self.position
    }

    fn buffered(&self) -> &[u8] {
        self.bytes.get(self.position..).unwrap_or_default()
    }

    fn advance(&mut self, len: usize) {
        self.position = self.position.saturating_add(len).min(self.bytes.len());
    }
}

/// A compressed records section, decompressed through one [`WINDOW_BYTES`] buffer. The
/// decoder is never asked for more than the budget plus one byte in total.
struct StreamSource<'a> {
    reader: Box<dyn Read + 'a>,
    codec: &'static str,
    window: Vec<u8>,
    start: usize,
    end: usize,
    pulled_bytes: usize,
    budget_bytes: usize,
    eof: bool,
}

impl<'a> StreamSource<'a> {
    fn new(
        reader: Box<dyn Read + 'a>,
        codec: Compression,
        budget_bytes: usize,
        window_bytes: usize,
    ) -> Self {
        StreamSource {
            reader,
            codec: codec.name(),
            window: vec![0; window_bytes],
            start: 0,
            end: 0,
            pulled_bytes: 0,
            budget_bytes,
            eof: false,
        }
    }

    /// Refills an empty window; false at the end of the stream.
    fn refill(&mut self) -> Result<bool, RecordsError> {
        if self.eof {
            return Ok(false);
        }
        let allowed = self
            .budget_bytes
            .saturating_sub(self.pulled_bytes)
            .saturating_add(1)
            .min(self.window.len());
        let target = self.window.get_mut(..allowed).unwrap_or_default();
        let read = loop {
            match self.reader.read(target) {
                Ok(read) => break read,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_failed(self.codec, &e, self.budget_bytes)),
            }
        };
        if read == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.pulled_bytes += read;
        if self.pulled_bytes > self.budget_bytes {
            return Err(too_large(self.budget_bytes));
        }
        self.start = 0;
        self.end = read;
        Ok(true)
    }

    /// Advances over `len` bytes, handing each buffered piece to `each`.
    fn consume(
        &mut self,
        mut len: usize,
        mut each: impl FnMut(&[u8]) -> Result<(), RecordsError>,
    ) -> Result<bool, RecordsError> {
        while len > 0 {
            if self.start >= self.end && !self.refill()? {
                return Ok(false);
            }
            let n = len.min(self.end - self.start);
            each(
                self.window
                    .get(self.start..self.start + n)
                    .unwrap_or_default(),
            )?;
            self.start += n;
            len -= n;
        }
        Ok(true)
    }
}

impl Source for StreamSource<'_> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, RecordsError> {
        if self.start >= self.end && !self.refill()? {
            return Ok(None);
        }
        let byte = self.window.get(self.start).copied();
        self.start += 1;
        Ok(byte)
    }

    #[inline]
    fn unsigned(&mut self, bytes_max: usize) -> Result<Unsigned, RecordsError> {
        let buffered = self.window.get(self.start..self.end).unwrap_or_default();
        match decode_unsigned(buffered, bytes_max) {
            Some(Unsigned::Value(value, bytes)) => {
                self.start += bytes;
                return Ok(Unsigned::Value(value, bytes));
            }
            Some(other) => return Ok(other),
            None => {}
        }
        // The varint crosses the end of the window: byte by byte, refilling.
        let mut value: u64 = 0;
        for at in 0..bytes_max {
            let Some(byte) = self.byte()? else {
                return Ok(if at == 0 {
                    Unsigned::End
                } else {
                    Unsigned::EndInside
                });
            };
            value |= u64::from(byte & 0x7f).wrapping_shl(7 * at as u32);
            if byte & 0x80 == 0 {
                return Ok(Unsigned::Value(value, at + 1));
            }
        }
        Ok(Unsigned::TooLong)
    }

    fn skip(&mut self, len: usize) -> Result<bool, RecordsError> {
        self.consume(len, |_| Ok(()))
    }

    fn take_key(
        &mut self,
        len: usize,
        scratch: &mut Vec<u8>,
    ) -> Result<Option<KeyAt>, RecordsError> {
        scratch.clear();
        let whole = self.consume(len, |piece| {
            scratch.extend_from_slice(piece);
            Ok(())
        })?;
        Ok(whole.then_some(KeyAt::Scratch))
    }

    fn key<'s>(&'s self, _at: KeyAt, scratch: &'s [u8]) -> &'s [u8] {
        scratch
    }

    fn copy_to(&mut self, len: usize, out: &mut Encoder) -> Result<bool, RecordsError> {
        self.consume(len, |piece| out.write_all(piece))
    }

    fn at_end(&mut self) -> Result<bool, RecordsError> {
        Ok(self.start >= self.end && !self.refill()?)
    }

    fn consumed(&self) -> usize {
        self.pulled_bytes - (self.end - self.start)
    }

    fn buffered(&self) -> &[u8] {
        self.window.get(self.start..self.end).unwrap_or_default()
    }

    fn advance(&mut self, len: usize) {
        self.start = self.start.saturating_add(len).min(self.end);
    }
}
