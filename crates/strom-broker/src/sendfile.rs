//! Fetch responses sent with `sendfile(2)`: record bytes go from the segment file to the
//! socket without passing through user space.
//!
//! The response is encoded as usual, with a random 16-byte marker in place of each
//! partition's records; the encoded frame is then cut at the markers into [`Piece`]s, each
//! marker's length prefix rewritten for the real length (an `INT32` before v12, an unsigned
//! varint of length + 1 from v12), and the frame size recomputed. A marker is 128 random
//! bits inside a frame of numbers and validated names, so it cannot occur by chance.

use std::io;
use std::os::fd::AsRawFd;

use bytes::{BufMut, Bytes, BytesMut};
use strom_log::FileRange;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// Bytes in a records marker.
pub const MARKER_BYTES: usize = 16;
/// The first Fetch version whose records field is a compact (varint-prefixed) one.
const COMPACT_RECORDS_MIN_VERSION: i16 = 12;
/// The most one `sendfile` call is asked to move (Linux moves at most ~2 GiB anyway).
const SENDFILE_CHUNK_BYTES: u64 = 1 << 30;

/// Records to splice into an encoded response: the marker that stands in for them.
#[derive(Debug, Clone)]
pub struct FileRecords {
    /// The placeholder written in the records field.
    pub marker: [u8; MARKER_BYTES],
    /// The bytes that replace it.
    pub range: FileRange,
}

/// A fresh random marker.
pub fn new_marker() -> [u8; MARKER_BYTES] {
    *uuid::Uuid::new_v4().as_bytes()
}

/// One part of a response frame on the wire.
#[derive(Debug, Clone)]
pub enum Piece {
    /// Bytes from memory.
    Bytes(Bytes),
    /// A range of a segment file.
    File(FileRange),
}

/// Why a frame could not be cut at its markers (a bug: markers are written by the handler).
#[derive(Debug, thiserror::Error)]
#[error("cannot splice fetch records: {0}")]
pub struct SpliceError(&'static str);

/// Cuts `frame` (size prefix included) at the markers of `files` and returns the pieces of
/// the real frame, with the size prefix and each records length prefix rewritten.
pub fn splice(
    frame: &Bytes,
    files: Vec<FileRecords>,
    api_version: i16,
) -> Result<Vec<Piece>, SpliceError> {
    let body = frame.slice(4.min(frame.len())..);
    let mut found: Vec<(usize, FileRecords)> = files
        .into_iter()
        .map(|f| find(&body, &f.marker).map(|at| (at, f)))
        .collect::<Option<_>>()
        .ok_or(SpliceError("a marker is missing"))?;
    found.sort_by_key(|(at, _)| *at);
    let compact = api_version >= COMPACT_RECORDS_MIN_VERSION;
    let old_prefix_bytes = if compact { 1 } else { 4 };
    let old_prefix = old_length_prefix(compact);
    let mut pieces = Vec::with_capacity(found.len() * 2 + 2);
    let mut cursor = 0;
    let mut size_bytes: u64 = 0;
    for (at, file) in found {
        let prefix_at = at
            .checked_sub(old_prefix_bytes)
            .filter(|p| *p >= cursor)
            .ok_or(SpliceError("markers overlap"))?;
        if body.get(prefix_at..at) != Some(old_prefix.as_slice()) {
            return Err(SpliceError("unexpected length prefix before a marker"));
        }
        let mut head = BytesMut::from(&body[cursor..prefix_at]);
        put_length_prefix(&mut head, file.range.len_bytes, compact)?;
        size_bytes += head.len() as u64 + file.range.len_bytes;
        pieces.push(Piece::Bytes(head.freeze()));
        pieces.push(Piece::File(file.range));
        cursor = at + MARKER_BYTES;
    }
    let tail = body.slice(cursor..);
    size_bytes += tail.len() as u64;
    pieces.push(Piece::Bytes(tail));
    let size = i32::try_from(size_bytes).map_err(|_| SpliceError("response too large"))?;
    pieces.insert(0, Piece::Bytes(Bytes::copy_from_slice(&size.to_be_bytes())));
    Ok(pieces)
}

fn find(haystack: &[u8], marker: &[u8; MARKER_BYTES]) -> Option<usize> {
    haystack
        .windows(MARKER_BYTES)
        .position(|window| window == marker)
}

fn old_length_prefix(compact: bool) -> Vec<u8> {
    if compact {
        vec![(MARKER_BYTES + 1) as u8]
    } else {
        (MARKER_BYTES as i32).to_be_bytes().to_vec()
    }
}

fn put_length_prefix(buf: &mut BytesMut, len_bytes: u64, compact: bool) -> Result<(), SpliceError> {
    if !compact {
        let len = i32::try_from(len_bytes).map_err(|_| SpliceError("records too large"))?;
        buf.put_i32(len);
        return Ok(());
    }
    let mut value = len_bytes + 1;
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
    Ok(())
}

/// Writes the pieces in order: memory with `write_all`, file ranges with `sendfile`.
pub async fn write_pieces(stream: &mut TcpStream, pieces: &[Piece]) -> io::Result<()> {
    for piece in pieces {
        match piece {
            Piece::Bytes(bytes) => stream.write_all(bytes).await?,
            Piece::File(range) => send_range(stream, range).await?,
        }
    }
    Ok(())
}

async fn send_range(stream: &mut TcpStream, range: &FileRange) -> io::Result<()> {
    let Some(file) = range.std_file() else {
        // A simulated file system has no descriptor: copy through memory.
        return stream.write_all(&range.read_bytes()?).await;
    };
    let mut position = range.position;
    let end = range.position.saturating_add(range.len_bytes);
    while position < end {
        stream.writable().await?;
        let chunk = (end - position).min(SENDFILE_CHUNK_BYTES);
        let sent = stream.try_io(Interest::WRITABLE, || {
            sendfile(stream.as_raw_fd(), file.as_raw_fd(), position, chunk)
        });
        match sent {
            // The file ended early (a bug elsewhere): the frame cannot be completed.
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment shorter than its range",
                ))
            }
            Ok(sent) => position += sent as u64,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

fn sendfile(socket: i32, file: i32, position: u64, len_bytes: u64) -> io::Result<usize> {
    let mut offset = libc::off_t::try_from(position)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    let count = usize::try_from(len_bytes).unwrap_or(usize::MAX);
    // SAFETY: both descriptors are open for the duration of the call (the socket is
    // borrowed from the stream, the file from its `FileRange`, which holds it by `Arc`);
    // `offset` is a valid, exclusively borrowed `off_t` that the kernel updates.
    let sent = unsafe { libc::sendfile(socket, file, &mut offset, count) };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixes_match_kafkas_encodings() {
        let check = |len: u64, compact: bool, expected: &[u8]| {
            let mut buf = BytesMut::new();
            put_length_prefix(&mut buf, len, compact).unwrap();
            assert_eq!(buf.as_ref(), expected, "{len} {compact}");
        };
        check(0, false, &[0, 0, 0, 0]);
        check(300, false, &[0, 0, 1, 44]);
        check(0, true, &[1]);
        check(126, true, &[127]);
        check(127, true, &[0x80, 0x01]);
        check(300, true, &[0xad, 0x02]);
        assert_eq!(old_length_prefix(true), vec![17]);
        assert_eq!(old_length_prefix(false), vec![0, 0, 0, 16]);
    }
}
