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
    // The size prefix goes out with the first bytes of the body: one write, not two.
    let first = match pieces.first() {
        Some(Piece::Bytes(head)) => {
            let mut with_size = BytesMut::with_capacity(4 + head.len());
            with_size.put_i32(size);
            with_size.extend_from_slice(head);
            with_size.freeze()
        }
        _ => Bytes::copy_from_slice(&size.to_be_bytes()),
    };
    match pieces.first_mut() {
        Some(slot @ Piece::Bytes(_)) => *slot = Piece::Bytes(first),
        _ => pieces.insert(0, Piece::Bytes(first)),
    }
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

/// Writes the pieces in order: memory with `write_all`, file ranges with `sendfile`. The
/// socket is corked meanwhile, so that the small pieces around the records share TCP
/// segments with them instead of each going out alone (the connection runs with
/// `TCP_NODELAY`); uncorking sends what is left at once.
pub async fn write_pieces(stream: &mut TcpStream, pieces: &[Piece]) -> io::Result<()> {
    let cork = pieces.len() > 1;
    if cork {
        set_cork(stream, true);
    }
    let result = write_each(stream, pieces).await;
    if cork {
        set_cork(stream, false);
    }
    result
}

/// Writes the pieces in order through any stream (TLS): file ranges are read into memory
/// a range at a time (each at most a Fetch partition's bytes, bounded by the fetch limits).
pub async fn write_pieces_copied<W>(stream: &mut W, pieces: &[Piece]) -> io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    for piece in pieces {
        match piece {
            Piece::Bytes(bytes) => stream.write_all(bytes).await?,
            Piece::File(range) => stream.write_all(&range.read_bytes()?).await?,
        }
    }
    Ok(())
}

async fn write_each(stream: &mut TcpStream, pieces: &[Piece]) -> io::Result<()> {
    for piece in pieces {
        match piece {
            Piece::Bytes(bytes) => stream.write_all(bytes).await?,
            Piece::File(range) => send_range(stream, range).await?,
        }
    }
    Ok(())
}

/// `TCP_CORK` on or off. A failure only costs extra segments, so it is ignored.
fn set_cork(stream: &TcpStream, on: bool) {
    let value: libc::c_int = on.into();
    // SAFETY: the descriptor is the stream's open socket; `value` is a valid `c_int` that
    // outlives the call, and its size is passed with it.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
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
    fn splice_cuts_at_the_marker_and_carries_the_size_in_the_first_piece() {
        use strom_log::fs::{FileSystem, SimFs};
        let fs = SimFs::new();
        let path = std::path::PathBuf::from("/data/segment.log");
        fs.create_dir_all(std::path::Path::new("/data")).unwrap();
        let file = fs.create(&path).unwrap();
        let marker = new_marker();
        for (api_version, old_prefix, new_prefix) in [
            (11, vec![0, 0, 0, 16], vec![0, 0, 0, 100]),
            (12, vec![17], vec![101]),
        ] {
            let mut body = vec![1u8, 2, 3];
            body.extend_from_slice(&old_prefix);
            body.extend_from_slice(&marker);
            body.extend_from_slice(&[9, 9]);
            let mut frame = (body.len() as i32).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            let range = FileRange {
                file: file.clone(),
                path: path.clone(),
                position: 7,
                len_bytes: 100,
                first_offset: 0,
                next_offset: 1,
            };
            let pieces = splice(
                &Bytes::from(frame),
                vec![FileRecords { marker, range }],
                api_version,
            )
            .unwrap();
            assert_eq!(pieces.len(), 3, "head, records, tail");
            let size = (3 + new_prefix.len() + 100 + 2) as i32;
            let mut head = size.to_be_bytes().to_vec();
            head.extend_from_slice(&[1, 2, 3]);
            head.extend_from_slice(&new_prefix);
            match &pieces[0] {
                Piece::Bytes(bytes) => assert_eq!(bytes.as_ref(), head.as_slice()),
                other => panic!("{other:?}"),
            }
            match &pieces[1] {
                Piece::File(range) => assert_eq!((range.position, range.len_bytes), (7, 100)),
                other => panic!("{other:?}"),
            }
            match &pieces[2] {
                Piece::Bytes(bytes) => assert_eq!(bytes.as_ref(), &[9, 9]),
                other => panic!("{other:?}"),
            }
        }
    }

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
