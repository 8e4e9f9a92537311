//! The partition checkpoint file (`strom-log.checkpoint`): recovery point, log start
//! offset and the clean-shutdown flag, replaced atomically (temp file, fsync, rename,
//! directory fsync).

use std::path::Path;

use crate::error::LogError;
use crate::fs::{read_all, FileSystem};

pub const CHECKPOINT_FILE: &str = "strom-log.checkpoint";
pub const CHECKPOINT_TEMP_FILE: &str = "strom-log.checkpoint.tmp";
const MAGIC: u32 = 0x5354_4C47; // "STLG"
const VERSION: u16 = 1;
const FLAG_CLEAN: u16 = 1;
pub const CHECKPOINT_BYTES: usize = 28;

/// What the checkpoint file says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every offset below this was fsynced, and every segment before the one holding it
    /// with its indexes. Recovery scans from the segment holding it; damage below it is
    /// never taken for an interrupted write.
    pub recovery_point: i64,
    pub log_start_offset: i64,
    /// Set only by a clean close; cleared on disk before the first change after open.
    pub clean_shutdown: bool,
}

/// What a partition directory's checkpoint file held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// No checkpoint file.
    Missing,
    /// A file that is not an intact checkpoint, and why.
    Damaged(String),
    Intact(Checkpoint),
}

impl Stored {
    /// The checkpoint to act on: only an intact one.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        match self {
            Stored::Intact(checkpoint) => Some(*checkpoint),
            Stored::Missing | Stored::Damaged(_) => None,
        }
    }
}

impl Checkpoint {
    pub fn encode(&self) -> [u8; CHECKPOINT_BYTES] {
        let mut b = [0u8; CHECKPOINT_BYTES];
        b[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        b[4..6].copy_from_slice(&VERSION.to_be_bytes());
        let flags = if self.clean_shutdown { FLAG_CLEAN } else { 0 };
        b[6..8].copy_from_slice(&flags.to_be_bytes());
        b[8..16].copy_from_slice(&self.recovery_point.to_be_bytes());
        b[16..24].copy_from_slice(&self.log_start_offset.to_be_bytes());
        let crc = crc32c::crc32c(&b[..24]);
        b[24..28].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// `None` for anything but a complete, intact version-1 checkpoint.
    pub fn decode(b: &[u8]) -> Option<Checkpoint> {
        Checkpoint::decode_checked(b).ok()
    }

    /// The checkpoint in `b`, or why `b` is not an intact version-1 checkpoint with
    /// values that can be true (offsets are never negative).
    pub fn decode_checked(b: &[u8]) -> Result<Checkpoint, String> {
        if b.len() != CHECKPOINT_BYTES {
            return Err(format!("{} bytes, not {CHECKPOINT_BYTES}", b.len()));
        }
        let u32_at = |i: usize| {
            b.get(i..i + 4)
                .and_then(|v| v.try_into().ok())
                .map(u32::from_be_bytes)
        };
        let u16_at = |i: usize| {
            b.get(i..i + 2)
                .and_then(|v| v.try_into().ok())
                .map(u16::from_be_bytes)
        };
        let i64_at = |i: usize| {
            b.get(i..i + 8)
                .and_then(|v| v.try_into().ok())
                .map(i64::from_be_bytes)
        };
        if u32_at(0) != Some(MAGIC) {
            return Err("no checkpoint magic".into());
        }
        if u32_at(24) != b.get(..24).map(crc32c::crc32c) {
            return Err("checksum mismatch".into());
        }
        match u16_at(4) {
            Some(VERSION) => {}
            other => return Err(format!("unknown version {}", other.unwrap_or(0))),
        }
        let (Some(flags), Some(recovery_point), Some(log_start_offset)) =
            (u16_at(6), i64_at(8), i64_at(16))
        else {
            return Err("short fields".into());
        };
        if recovery_point < 0 || log_start_offset < 0 {
            return Err(format!(
                "negative offsets (recovery point {recovery_point}, log start {log_start_offset})"
            ));
        }
        Ok(Checkpoint {
            clean_shutdown: flags & FLAG_CLEAN != 0,
            recovery_point,
            log_start_offset,
        })
    }

    /// Reads the checkpoint of `dir`. A damaged file is reported (a warning naming it and
    /// why) and never acted on: the caller then recovers every segment from the first and
    /// takes the log start offset from the first segment.
    pub fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Stored, LogError> {
        let path = dir.join(CHECKPOINT_FILE);
        if !fs
            .exists(&path)
            .map_err(|e| LogError::io("stat", &path, e))?
        {
            return Ok(Stored::Missing);
        }
        let file = fs.open(&path).map_err(|e| LogError::io("open", &path, e))?;
        let bytes = read_all(file.as_ref(), 4096).map_err(|e| LogError::io("read", &path, e))?;
        Ok(match Checkpoint::decode_checked(&bytes) {
            Ok(checkpoint) => Stored::Intact(checkpoint),
            Err(reason) => {
                tracing::warn!(
                    file = %path.display(),
                    %reason,
                    "damaged log checkpoint ignored: recovering every segment from the first, \
                     log start offset from the first segment"
                );
                Stored::Damaged(reason)
            }
        })
    }

    /// Replaces the checkpoint of `dir` durably.
    pub fn write(&self, fs: &dyn FileSystem, dir: &Path) -> Result<(), LogError> {
        crate::small_file::replace(
            fs,
            dir,
            CHECKPOINT_TEMP_FILE,
            CHECKPOINT_FILE,
            &self.encode(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let c = Checkpoint {
            recovery_point: 1234,
            log_start_offset: 17,
            clean_shutdown: true,
        };
        let b = c.encode();
        assert_eq!(Checkpoint::decode(&b), Some(c));
        for i in 0..CHECKPOINT_BYTES {
            let mut d = b;
            d[i] ^= 0x40;
            assert_eq!(Checkpoint::decode(&d), None, "flipped byte {i}");
        }
        assert_eq!(Checkpoint::decode(&b[..27]), None);
        assert!(Checkpoint::decode_checked(&[0x55; 28])
            .unwrap_err()
            .contains("magic"));
        let negative = Checkpoint {
            log_start_offset: -5,
            ..c
        };
        assert!(Checkpoint::decode_checked(&negative.encode())
            .unwrap_err()
            .contains("negative"));
    }
}
