//! Small metadata files of a partition directory (the log checkpoint, the leader-epoch
//! cache, the high-watermark checkpoint): replaced durably, read whole and bounded.

use std::path::Path;

use crate::error::LogError;
use crate::fs::{read_all, write_all_at, FileSystem};

/// Replaces `dir/name` with `bytes` durably: written to `dir/temp` and fsynced (its bytes
/// must be durable before the rename can expose them), renamed over `name`, then the
/// directory fsynced (the rename is durable only then). A crash leaves the old file or
/// the new one, never a mix.
pub fn replace(
    fs: &dyn FileSystem,
    dir: &Path,
    temp: &str,
    name: &str,
    bytes: &[u8],
) -> Result<(), LogError> {
    let temp = dir.join(temp);
    let path = dir.join(name);
    let file = fs
        .create(&temp)
        .map_err(|e| LogError::io("create", &temp, e))?;
    write_all_at(file.as_ref(), 0, bytes).map_err(|e| LogError::io("write", &temp, e))?;
    file.sync().map_err(|e| LogError::io("fsync", &temp, e))?;
    fs.rename(&temp, &path)
        .map_err(|e| LogError::io("rename", &temp, e))?;
    fs.sync_dir(dir)
        .map_err(|e| LogError::io("fsync dir", dir, e))?;
    Ok(())
}

/// Reads `dir/name` as text: `Ok(None)` if there is none, `Ok(Some(Err))` with the reason
/// when it is larger than `len_bytes_max` or not UTF-8 (damage for the caller to report).
pub fn read_text(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    len_bytes_max: u64,
) -> Result<Option<Result<String, String>>, LogError> {
    let path = dir.join(name);
    if !fs
        .exists(&path)
        .map_err(|e| LogError::io("stat", &path, e))?
    {
        return Ok(None);
    }
    let file = fs.open(&path).map_err(|e| LogError::io("open", &path, e))?;
    let bytes = match read_all(file.as_ref(), len_bytes_max) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Ok(Some(Err(e.to_string())))
        }
        Err(e) => return Err(LogError::io("read", &path, e)),
    };
    Ok(Some(
        String::from_utf8(bytes).map_err(|_| "not text".to_string()),
    ))
}
