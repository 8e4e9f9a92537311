//! Small durable-file helpers: atomic checksummed files, directory fsync and the data-dir lock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use fs2::FileExt;

/// Length of the checksum that prefixes every atomic file.
const CRC_BYTES: usize = 4;

/// Writes `body` to `path` so that after a crash the file holds either the old or the new
/// contents, never a mix: write a temp file, fsync it, rename over, fsync the directory.
/// With `durable == false` both fsyncs are skipped (for hints that may safely go stale).
pub fn write_atomic(path: &Path, body: &[u8], durable: bool) -> io::Result<()> {
    let tmp = tmp_path(path);
    {
        let mut file = File::create(&tmp)?;
        file.write_all(&crc32c::crc32c(body).to_le_bytes())?;
        file.write_all(body)?;
        if durable {
            // fsync: the new contents must be on disk before the rename can expose them.
            file.sync_all()?;
        }
    }
    fs::rename(&tmp, path)?;
    if durable {
        // fsync: the rename itself (the directory entry) must be durable before we acknowledge.
        sync_dir(parent_dir(path))?;
    }
    Ok(())
}

/// Reads a file written by [`write_atomic`]. `Ok(None)` when it does not exist;
/// `Err(InvalidData)` when its checksum does not match.
pub fn read_atomic(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let (crc, body) = bytes
        .split_at_checked(CRC_BYTES)
        .ok_or_else(|| invalid_data(format!("{} is shorter than its checksum", path.display())))?;
    let mut crc_bytes = [0u8; CRC_BYTES];
    crc_bytes.copy_from_slice(crc);
    if u32::from_le_bytes(crc_bytes) != crc32c::crc32c(body) {
        return Err(invalid_data(format!(
            "{} fails its checksum",
            path.display()
        )));
    }
    Ok(Some(body.to_vec()))
}

/// Makes renames, creations and removals in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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
        let mut bytes = fs::read(&path).unwrap();
        bytes[5] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert_eq!(
            read_atomic(&path).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        fs::write(&path, b"ab").unwrap();
        assert!(read_atomic(&path).is_err());
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
