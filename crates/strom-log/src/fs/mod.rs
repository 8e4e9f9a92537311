//! The one seam between the log and the file system: a small trait with a real
//! implementation ([`RealFs`]) and a simulated, fault-injecting one ([`SimFs`]) for tests.
//!
//! Everything the log does to disk goes through [`FileSystem`] and [`FileHandle`], so that
//! the crash model of [`SimFs`] (what survives a power loss) covers every write, fsync and
//! directory change the log makes.

mod real;
mod sim;

use std::fmt::Debug;
use std::io::{self, IoSlice};
use std::path::Path;
use std::sync::Arc;

pub use real::RealFs;
pub use sim::{SimFaults, SimFs};

/// An open file. Positional reads and writes only: there is no shared cursor, so readers
/// and the writer never coordinate through the handle.
pub trait FileHandle: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `position`; fewer at the end of the file.
    fn read_at(&self, position: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes up to `buf.len()` bytes at `position`; may write fewer (a short write).
    fn write_at(&self, position: u64, buf: &[u8]) -> io::Result<usize>;
    /// Writes `bufs` one after the other at `position` as far as one call goes; may write
    /// fewer bytes (a short write). By default only the first non-empty buffer is written.
    fn write_vectored_at(&self, position: u64, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(buf) => self.write_at(position, buf),
            None => Ok(0),
        }
    }
    fn len_bytes(&self) -> io::Result<u64>;
    fn set_len(&self, len_bytes: u64) -> io::Result<()>;
    /// Makes the file's data and size durable (fdatasync). Directory entries are not
    /// covered: see [`FileSystem::sync_dir`].
    fn sync(&self) -> io::Result<()>;
    /// The real file, for `sendfile`; `None` for a simulated file.
    fn std_file(&self) -> Option<&std::fs::File>;
    /// Tells the kernel the bytes at `position..position + len_bytes` will not be read again
    /// soon, so their clean pages may leave the page cache (the scrubber's reads of cold
    /// segments should not push out what readers use). Advice only: nothing changes on disk,
    /// and by default nothing happens.
    fn drop_cache(&self, _position: u64, _len_bytes: u64) {}
}

/// Whether an I/O error says the disk (or the user's quota) is full: `ENOSPC` or `EDQUOT`.
/// After a failed *write* with one of these, the durable state is known (the bytes that did
/// not fit were never acknowledged), so the log may go read-only and resume later; after a
/// failed *fsync* it is not (see `docs/ARCHITECTURE.md`, strom-log "Durability").
pub fn is_space_error(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT)
    )
}

/// Directory-level operations. Paths are absolute or relative to the process's directory;
/// the log only ever names files inside its own partition directory.
pub trait FileSystem: Send + Sync + Debug {
    /// Creates (or truncates) a file for reading and writing.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>>;
    /// Atomically replaces `to` with `from` (POSIX rename).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// File names (not paths) in `dir`, in no particular order.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    fn exists(&self, path: &Path) -> io::Result<bool>;
    fn file_len(&self, path: &Path) -> io::Result<u64>;
    /// Bytes this process may still write on the file system holding `dir` (as `statvfs`
    /// reports them; quotas are not seen). A hint: only a write tells for sure.
    fn available_bytes(&self, dir: &Path) -> io::Result<u64>;
}

/// Reads exactly `buf.len()` bytes at `position` or fails with `UnexpectedEof`.
pub fn read_exact_at(
    file: &dyn FileHandle,
    mut position: u64,
    mut buf: &mut [u8],
) -> io::Result<()> {
    while !buf.is_empty() {
        let n = file.read_at(position, buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file ends early",
            ));
        }
        buf = buf.get_mut(n..).unwrap_or_default();
        position += n as u64;
    }
    Ok(())
}

/// Writes all of `buf` at `position`, continuing after short writes.
pub fn write_all_at(file: &dyn FileHandle, mut position: u64, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = file.write_at(position, buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write returned zero bytes",
            ));
        }
        buf = buf.get(n..).unwrap_or_default();
        position += n as u64;
    }
    Ok(())
}

/// Writes all of `pieces`, one after the other, at `position`, continuing after short
/// writes: one vectored write where the file supports it.
pub fn write_all_vectored_at(
    file: &dyn FileHandle,
    mut position: u64,
    pieces: &[&[u8]],
) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = pieces
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| IoSlice::new(p))
        .collect();
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        let n = file.write_vectored_at(position, bufs)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write returned zero bytes",
            ));
        }
        position += n as u64;
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// Reads a whole (small) file.
pub fn read_all(file: &dyn FileHandle, len_bytes_max: u64) -> io::Result<Vec<u8>> {
    let len = file.len_bytes()?;
    if len > len_bytes_max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("file of {len} bytes exceeds the {len_bytes_max}-byte limit"),
        ));
    }
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    read_exact_at(file, 0, &mut buf)?;
    Ok(buf)
}
