//! Zig-zag varints as Kafka's `ByteUtils` writes them (records use them for every length).

use crate::error::RecordsError;

const VARINT_BYTES_MAX: usize = 5;
const VARLONG_BYTES_MAX: usize = 10;

/// A bounds-checked reader over one record's (or a whole records section's) bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, position: 0 }
    }

    pub fn position(&self) -> usize {
        self.position
    }

    pub fn remaining_bytes(&self) -> usize {
        self.bytes.len().saturating_sub(self.position)
    }

    pub fn is_empty(&self) -> bool {
        self.remaining_bytes() == 0
    }

    pub fn u8(&mut self) -> Result<u8, RecordsError> {
        let byte = *self.bytes.get(self.position).ok_or(truncated(1, 0))?;
        self.position += 1;
        Ok(byte)
    }

    /// Takes `len` bytes; fails before touching anything if fewer are present.
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], RecordsError> {
        let available = self.remaining_bytes();
        let end = self
            .position
            .checked_add(len)
            .ok_or(truncated(len, available))?;
        let out = self
            .bytes
            .get(self.position..end)
            .ok_or(truncated(len, available))?;
        self.position = end;
        Ok(out)
    }

    pub fn varint(&mut self) -> Result<i32, RecordsError> {
        let raw = self.unsigned(VARINT_BYTES_MAX)?;
        // Kafka keeps the low 32 bits of an over-long fifth byte.
        let raw = raw as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    pub fn varlong(&mut self) -> Result<i64, RecordsError> {
        let raw = self.unsigned(VARLONG_BYTES_MAX)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn unsigned(&mut self, bytes_max: usize) -> Result<u64, RecordsError> {
        let mut value: u64 = 0;
        for index in 0..bytes_max {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f).wrapping_shl(7 * index as u32);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordsError::Corrupt {
            reason: "varint longer than its type allows",
        })
    }
}

fn truncated(needed_bytes: usize, available_bytes: usize) -> RecordsError {
    RecordsError::Truncated {
        needed_bytes,
        available_bytes,
    }
}

pub(crate) fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_unsigned(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

pub(crate) fn put_varlong(out: &mut Vec<u8>, value: i64) {
    put_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_unsigned(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_varint(value: i32, expected: &[u8]) {
        let mut out = Vec::new();
        put_varint(&mut out, value);
        assert_eq!(out, expected, "encoding {value}");
        let mut reader = Reader::new(expected);
        assert_eq!(reader.varint().unwrap(), value);
        assert!(reader.is_empty());
    }

    fn check_varlong(value: i64, expected: &[u8]) {
        let mut out = Vec::new();
        put_varlong(&mut out, value);
        assert_eq!(out, expected, "encoding {value}");
        let mut reader = Reader::new(expected);
        assert_eq!(reader.varlong().unwrap(), value);
        assert!(reader.is_empty());
    }

    #[test]
    fn known_varints() {
        // Values and encodings from Kafka's ByteUtilsTest.
        check_varint(0, &[0x00]);
        check_varint(-1, &[0x01]);
        check_varint(1, &[0x02]);
        check_varint(63, &[0x7e]);
        check_varint(-64, &[0x7f]);
        check_varint(64, &[0x80, 0x01]);
        check_varint(-65, &[0x81, 0x01]);
        check_varint(8191, &[0xfe, 0x7f]);
        check_varint(-8192, &[0xff, 0x7f]);
        check_varint(8192, &[0x80, 0x80, 0x01]);
        check_varint(i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]);
        check_varint(i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]);
    }

    #[test]
    fn known_varlongs() {
        check_varlong(0, &[0x00]);
        check_varlong(-1, &[0x01]);
        check_varlong(1, &[0x02]);
        check_varlong(
            i64::MAX,
            &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        );
        check_varlong(
            i64::MIN,
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        );
    }

    #[test]
    fn overlong_and_truncated_varints_are_errors() {
        let mut reader = Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        assert!(matches!(reader.varint(), Err(RecordsError::Corrupt { .. })));
        let mut reader = Reader::new(&[0x80, 0x80]);
        assert!(matches!(
            reader.varint(),
            Err(RecordsError::Truncated { .. })
        ));
        let mut reader = Reader::new(&[0xff; 11]);
        assert!(matches!(
            reader.varlong(),
            Err(RecordsError::Corrupt { .. })
        ));
    }
}
