//! Small durable-file helpers: atomic checksummed files, directory fsync and the data-dir lock.
//!
//! An atomic file (`node`, `vote`, `committed`, `purged`, `snapshot`) is
//! `magic "STRM" | CRC-32C u32 LE of the rest | format version u16 LE | body`. Files written
//! before the format had a version (`CRC-32C u32 LE of the body | body`) are still read.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use fs2::FileExt;

/// First bytes of every atomic file written by this version.
const MAGIC: [u8; 4] = *b"STRM";
/// The layout written by this version.
pub const ATOMIC_FORMAT_VERSION: u16 = 1;
/// Magic, checksum and version.
const HEADER_BYTES: usize = 10;
/// Length of the checksum that prefixes a file of the first (unversioned) layout.
const LEGACY_CRC_BYTES: usize = 4;

/// Writes `body` to `path` so that after a crash the file holds either the old or the new
/// contents, never a mix: write a temp file, fsync it, rename over, fsync the directory.
/// With `durable == false` both fsyncs are skipped (for hints that may safely go stale).
pub fn write_atomic(path: &Path, body: &[u8], durable: bool) -> io::Result<()> {
    let tmp = tmp_path(path);
    {
        let mut file = File::create(&tmp)?;
        file.write_all(&encode_atomic(body))?;
        if durable {
            // fsync: the new contents must be on disk before the rename can expose them.
            file.sync_all().map_err(fsync_failed)?;
        }
    }
    fs::rename(&tmp, path)?;
    if durable {
        // fsync: the rename itself (the directory entry) must be durable before we acknowledge.
        sync_dir(parent_dir(path))?;
    }
    Ok(())
}

/// The bytes of an atomic file holding `body`.
pub fn encode_atomic(body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + body.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&ATOMIC_FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(body);
    let crc = crc32c::crc32c(bytes.get(8..).unwrap_or_default());
    bytes[4..8].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Reads a file written by [`write_atomic`]. `Ok(None)` when it does not exist;
/// `Err(InvalidData)`, naming the file, when its checksum does not match or its format
/// version is unknown.
pub fn read_atomic(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    decode_atomic(&bytes)
        .map(|body| Some(body.to_vec()))
        .map_err(|reason| invalid_data(format!("{} {reason}", path.display())))
}

/// The body of an atomic file's bytes, or why there is none.
pub fn decode_atomic(bytes: &[u8]) -> Result<&[u8], String> {
    if let Some(body) = decode_versioned(bytes)? {
        return Ok(body);
    }
    // The first layout: a checksum of the body, then the body.
    let (crc, body) = bytes
        .split_at_checked(LEGACY_CRC_BYTES)
        .ok_or_else(|| format!("is {} bytes, shorter than any header", bytes.len()))?;
    if le_u32(crc) == Some(crc32c::crc32c(body)) {
        return Ok(body);
    }
    Err("fails its checksum".into())
}

/// `Ok(None)` when `bytes` are not an intact file of the versioned layout (they may still
/// be one of the first layout); an error for an intact file of an unknown version.
fn decode_versioned(bytes: &[u8]) -> Result<Option<&[u8]>, String> {
    if bytes.len() < HEADER_BYTES || bytes.get(..4) != Some(&MAGIC[..]) {
        return Ok(None);
    }
    let covered = bytes.get(8..).unwrap_or_default();
    if bytes.get(4..8).and_then(le_u32) != Some(crc32c::crc32c(covered)) {
        return Ok(None);
    }
    let version = bytes
        .get(8..10)
        .map_or(0, |v| u16::from_le_bytes([v[0], v[1]]));
    if version != ATOMIC_FORMAT_VERSION {
        return Err(format!(
            "has format version {version}, which this Strom does not know (it reads \
             version {ATOMIC_FORMAT_VERSION}): it was written by a newer Strom; run that version"
        ));
    }
    Ok(bytes.get(HEADER_BYTES..))
}

fn le_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// Makes renames, creations and removals in `dir` durable. Its error, if any, is a failed
/// fsync (see [`fsync_failed`]).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all().map_err(fsync_failed)
}

/// A failed fsync, whatever its errno: after it the durable state is unknown (the kernel
/// may have dropped the dirty pages and will not report it again), so it must never be
/// taken for a write that merely found the disk full and may be retried.
#[derive(Debug, thiserror::Error)]
#[error("fsync failed: {0}")]
pub struct FsyncFailed(pub io::Error);

/// Wraps an fsync's error so that [`is_space_error`] is false for it (ext4 may answer
/// ENOSPC to an fsync when delayed allocation finds no room; the data is then lost).
pub fn fsync_failed(error: io::Error) -> io::Error {
    io::Error::other(FsyncFailed(error))
}

/// A *write* found the disk (or the quota) full: nothing written past the last fsync is
/// acknowledged, so the state is known and the write may be tried again once space returns.
pub fn is_space_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

pub fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// An exclusive advisory lock on a data directory, held for the life of the process.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Name of the lock file inside a locked directory.
pub const LOCK_FILE_NAME: &str = ".lock";

impl DirLock {
    /// Fails at once (no waiting) when another process holds the lock.
    pub fn acquire(dir: &Path) -> io::Result<DirLock> {
        fs::create_dir_all(dir)?;
        let path = dir.join(LOCK_FILE_NAME);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.try_lock_exclusive().map_err(|e| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "data directory {} is in use by another process (lock {}): {e}",
                    dir.display(),
                    path.display()
                ),
            )
        })?;
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vote");
        assert_eq!(read_atomic(&path).unwrap(), None);
        write_atomic(&path, b"hello", true).unwrap();
        assert_eq!(read_atomic(&path).unwrap(), Some(b"hello".to_vec()));
        write_atomic(&path, b"again", false).unwrap();
        assert_eq!(read_atomic(&path).unwrap(), Some(b"again".to_vec()));
        let good = fs::read(&path).unwrap();
        assert_eq!(&good[..4], b"STRM");
        // Every flipped bit is caught, in the header as in the body.
        for bit in 0..good.len() * 8 {
            let mut bytes = good.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            fs::write(&path, &bytes).unwrap();
            let err = read_atomic(&path).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "bit {bit}");
            assert!(err.to_string().contains("vote"), "{err}");
        }
        fs::write(&path, b"ab").unwrap();
        assert!(read_atomic(&path).is_err());
        fs::write(&path, b"").unwrap();
        assert!(read_atomic(&path).is_err());
    }

    #[test]
    fn files_of_the_first_layout_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vote");
        let body = br#"{"leader_id":{"term":3,"node_id":1},"committed":true}"#;
        let mut legacy = crc32c::crc32c(body).to_le_bytes().to_vec();
        legacy.extend_from_slice(body);
        fs::write(&path, &legacy).unwrap();
        assert_eq!(read_atomic(&path).unwrap(), Some(body.to_vec()));
        legacy[9] ^= 4;
        fs::write(&path, &legacy).unwrap();
        assert!(read_atomic(&path).is_err());
    }

    #[test]
    fn an_unknown_format_version_is_refused_by_name() {
        let mut bytes = encode_atomic(b"body");
        bytes[8] = 9;
        let crc = crc32c::crc32c(&bytes[8..]);
        bytes[4..8].copy_from_slice(&crc.to_le_bytes());
        let err = decode_atomic(&bytes).unwrap_err();
        assert!(err.contains("format version 9"), "{err}");
    }

    #[test]
    fn second_lock_fails_fast() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let err = DirLock::acquire(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("in use by another process"),
            "{err}"
        );
        drop(first);
        DirLock::acquire(dir.path()).unwrap();
    }
}
