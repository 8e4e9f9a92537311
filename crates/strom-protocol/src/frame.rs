//! Kafka's framing: a 4-byte big-endian size, then that many bytes of request or response.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const FRAME_BYTES_MAX_DEFAULT: usize = 104_857_600;

/// Bytes in the size prefix of every frame.
pub const SIZE_PREFIX_BYTES: usize = 4;

/// A size prefix that Kafka's `NetworkReceive` refuses; the broker closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The size prefix is negative.
    #[error("invalid frame size {size_bytes} (negative)")]
    NegativeSize {
        /// The size the prefix claimed.
        size_bytes: i32,
    },
    /// The size prefix exceeds `socket.request.max.bytes`.
    #[error("frame of {size_bytes} bytes is larger than the {frame_bytes_max} bytes allowed")]
    TooLarge {
        /// The size the prefix claimed.
        size_bytes: usize,
        /// The configured maximum.
        frame_bytes_max: usize,
    },
}

/// Splits a byte stream into frames, with no I/O of its own: the caller appends what it read
/// to a buffer and asks for the next whole frame.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    frame_bytes_max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(FRAME_BYTES_MAX_DEFAULT)
    }
}

impl FrameDecoder {
    /// A decoder that refuses frames larger than `frame_bytes_max` (the size prefix excluded,
    /// as in Kafka's `socket.request.max.bytes`).
    pub fn new(frame_bytes_max: usize) -> Self {
        Self { frame_bytes_max }
    }

    /// The largest frame body accepted.
    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// Takes the next whole frame body off the front of `buf`, or returns `Ok(None)` when more
    /// bytes are needed. The size prefix is checked as soon as its 4 bytes have arrived, so an
    /// oversized frame is refused before its body is buffered.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(size_bytes) = self.frame_size(buf)? else {
            return Ok(None);
        };
        if buf.len() - SIZE_PREFIX_BYTES < size_bytes {
            return Ok(None);
        }
        buf.advance(SIZE_PREFIX_BYTES);
        Ok(Some(buf.split_to(size_bytes).freeze()))
    }

    /// How many more bytes `buf` needs before `decode` can return a frame (at least 1 while
    /// the frame is incomplete, 0 when one is ready). Lets a reader size its next read.
    pub fn bytes_missing(&self, buf: &[u8]) -> Result<usize, FrameError> {
        match self.frame_size(buf)? {
            None => Ok(SIZE_PREFIX_BYTES - buf.len()),
            Some(size_bytes) => Ok((SIZE_PREFIX_BYTES + size_bytes).saturating_sub(buf.len())),
        }
    }

    /// The body size of the frame at the front of `buf` (the size prefix excluded), once its
    /// prefix has arrived and passed the checks `decode` makes; `Ok(None)` before that. Lets
    /// a reader budget for a frame before it reads the body.
    pub fn frame_size(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = buf.first_chunk::<SIZE_PREFIX_BYTES>() else {
            return Ok(None);
        };
        let size_bytes = i32::from_be_bytes(*prefix);
        let Ok(size_bytes) = usize::try_from(size_bytes) else {
            return Err(FrameError::NegativeSize { size_bytes });
        };
        if size_bytes > self.frame_bytes_max {
            return Err(FrameError::TooLarge {
                size_bytes,
                frame_bytes_max: self.frame_bytes_max,
            });
        }
        Ok(Some(size_bytes))
    }
}

/// Frames a body: its length as a 4-byte big-endian prefix, then the body. `None` if the
/// body is longer than a frame can describe (`i32::MAX` bytes).
pub fn frame(body: &[u8]) -> Option<Bytes> {
    let size_bytes = i32::try_from(body.len()).ok()?;
    let mut out = BytesMut::with_capacity(SIZE_PREFIX_BYTES + body.len());
    out.put_i32(size_bytes);
    out.put_slice(body);
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &[u8], frame_bytes_max: usize, expected: Result<Option<&[u8]>, FrameError>) {
        let decoder = FrameDecoder::new(frame_bytes_max);
        let mut buf = BytesMut::from(input);
        let got = decoder.decode(&mut buf);
        let got = got
            .as_ref()
            .map(|frame| frame.as_ref().map(|bytes| bytes.as_ref()));
        assert_eq!(got, expected.as_ref().map(|frame| frame.as_deref()));
    }

    #[test]
    fn decodes_whole_frames_and_waits_for_partial_ones() {
        check(&[], 10, Ok(None));
        check(&[0, 0, 0], 10, Ok(None));
        check(&[0, 0, 0, 2, 7], 10, Ok(None));
        check(&[0, 0, 0, 2, 7, 8], 10, Ok(Some(&[7, 8])));
        check(&[0, 0, 0, 0], 10, Ok(Some(&[])));
        check(&[0, 0, 0, 10], 10, Ok(None));
    }

    #[test]
    fn refuses_negative_and_oversized_prefixes_before_the_body_arrives() {
        check(
            &[0xff, 0xff, 0xff, 0xff],
            10,
            Err(FrameError::NegativeSize { size_bytes: -1 }),
        );
        check(
            &[0x80, 0, 0, 0],
            10,
            Err(FrameError::NegativeSize {
                size_bytes: i32::MIN,
            }),
        );
        check(
            &[0, 0, 0, 11],
            10,
            Err(FrameError::TooLarge {
                size_bytes: 11,
                frame_bytes_max: 10,
            }),
        );
        check(
            &[0x7f, 0xff, 0xff, 0xff],
            FRAME_BYTES_MAX_DEFAULT,
            Err(FrameError::TooLarge {
                size_bytes: i32::MAX as usize,
                frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            }),
        );
    }

    #[test]
    fn leaves_the_next_frame_in_the_buffer() {
        let decoder = FrameDecoder::default();
        let mut buf = BytesMut::from(&[0, 0, 0, 1, 9, 0, 0, 0, 2, 1][..]);
        assert_eq!(decoder.decode(&mut buf), Ok(Some(Bytes::from_static(&[9]))));
        assert_eq!(buf.as_ref(), &[0, 0, 0, 2, 1]);
        assert_eq!(decoder.bytes_missing(&buf), Ok(1));
        buf.put_u8(2);
        assert_eq!(decoder.bytes_missing(&buf), Ok(0));
        assert_eq!(
            decoder.decode(&mut buf),
            Ok(Some(Bytes::from_static(&[1, 2])))
        );
        assert!(buf.is_empty());
        assert_eq!(decoder.bytes_missing(&buf), Ok(4));
    }

    #[test]
    fn frame_size_is_known_once_the_prefix_arrived() {
        let decoder = FrameDecoder::new(10);
        assert_eq!(decoder.frame_size(&[0, 0, 0]), Ok(None));
        assert_eq!(decoder.frame_size(&[0, 0, 0, 7]), Ok(Some(7)));
        assert_eq!(decoder.frame_size(&[0, 0, 0, 0, 1]), Ok(Some(0)));
        assert!(decoder.frame_size(&[0, 0, 0, 11]).is_err());
        assert!(decoder.frame_size(&[0xff, 0, 0, 0]).is_err());
    }

    #[test]
    fn frame_prefixes_the_length() {
        assert_eq!(
            frame(&[1, 2, 3]).as_deref(),
            Some(&[0, 0, 0, 3, 1, 2, 3][..])
        );
        assert_eq!(frame(&[]).as_deref(), Some(&[0, 0, 0, 0][..]));
    }
}
