//! Bounded big-endian primitives for the metadata encodings: a growable writer and a reader
//! that never reads past its slice and never sizes an allocation from an untrusted length.

use crate::error::MetaError;
use uuid::Uuid;

/// Longest string any metadata field may carry (Kafka's `int16` string limit).
pub const STRING_BYTES_MAX: usize = i16::MAX as usize;

#[derive(Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn uuid(&mut self, v: &Uuid) {
        self.buf.extend_from_slice(v.as_bytes());
    }

    /// Strings longer than [`STRING_BYTES_MAX`] are cut at a char boundary; the controller
    /// never produces them, so this only keeps the encoding total.
    pub fn string(&mut self, s: &str) {
        let s = truncate_str(s, STRING_BYTES_MAX);
        self.u16(s.len() as u16);
        self.buf.extend_from_slice(s.as_bytes());
    }

    pub fn opt_string(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.string(s);
            }
        }
    }

    pub fn i32_array(&mut self, values: &[i32]) {
        self.u32(values.len() as u32);
        for v in values {
            self.i32(*v);
        }
    }

    pub fn opt_i32_array(&mut self, values: Option<&[i32]>) {
        match values {
            None => self.u8(0),
            Some(values) => {
                self.u8(1);
                self.i32_array(values);
            }
        }
    }

    pub fn opt_i32(&mut self, v: Option<i32>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.i32(v);
            }
        }
    }

    /// Overwrites 4 bytes at `at` (a length placeholder written earlier).
    pub fn patch_u32(&mut self, at: usize, v: u32) {
        if let Some(slot) = self.buf.get_mut(at..at + 4) {
            slot.copy_from_slice(&v.to_be_bytes());
        }
    }
}

fn truncate_str(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], MetaError> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.buf.len());
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(slice) => {
                self.pos += n;
                Ok(slice)
            }
            None => Err(MetaError::Truncated {
                offset: self.pos,
                needed: n - self.remaining().min(n),
            }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], MetaError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, MetaError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    pub fn bool(&mut self) -> Result<bool, MetaError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(MetaError::malformed("bool", format!("byte {other}"))),
        }
    }

    pub fn u16(&mut self) -> Result<u16, MetaError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn i16(&mut self) -> Result<i16, MetaError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, MetaError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, MetaError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, MetaError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub fn uuid(&mut self) -> Result<Uuid, MetaError> {
        Ok(Uuid::from_bytes(self.array()?))
    }

    pub fn string(&mut self) -> Result<String, MetaError> {
        let len = usize::from(self.u16()?);
        let raw = self.bytes(len)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(MetaError::malformed("string", e.to_string())),
        }
    }

    pub fn opt_string(&mut self) -> Result<Option<String>, MetaError> {
        if self.presence()? {
            Ok(Some(self.string()?))
        } else {
            Ok(None)
        }
    }

    /// Reads an element count and checks the rest of the input can hold that many elements
    /// of at least `min_element_bytes` each, so a forged count cannot size an allocation.
    pub fn count(&mut self, min_element_bytes: usize) -> Result<usize, MetaError> {
        let count = self.u32()? as usize;
        let needed = count.saturating_mul(min_element_bytes.max(1));
        if needed > self.remaining() {
            return Err(MetaError::malformed(
                "array",
                format!(
                    "{count} element(s) cannot fit in {} byte(s)",
                    self.remaining()
                ),
            ));
        }
        Ok(count)
    }

    pub fn i32_array(&mut self) -> Result<Vec<i32>, MetaError> {
        let count = self.count(4)?;
        (0..count).map(|_| self.i32()).collect()
    }

    pub fn opt_i32_array(&mut self) -> Result<Option<Vec<i32>>, MetaError> {
        if self.presence()? {
            Ok(Some(self.i32_array()?))
        } else {
            Ok(None)
        }
    }

    pub fn opt_i32(&mut self) -> Result<Option<i32>, MetaError> {
        if self.presence()? {
            Ok(Some(self.i32()?))
        } else {
            Ok(None)
        }
    }

    fn presence(&mut self) -> Result<bool, MetaError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(MetaError::malformed("option tag", format!("byte {other}"))),
        }
    }
}
