//! Producer-state snapshot files of a partition directory (Kafka's `.snapshot` files):
//! `<end offset, 20 digits>.snapshot`, the producer and transaction state after replaying
//! every batch below that offset. The bytes are the caller's (the broker's producer state,
//! with its own CRC, see `docs/FORMATS.md`); this module only names, writes, lists, reads
//! and removes the files.
//!
//! Durability: a snapshot is written to `<name>.tmp`, fsynced, renamed, and the directory
//! fsynced, so a crash leaves the old set of snapshots or the new one, never a torn file
//! under a snapshot's name (a torn one is still caught by the caller's CRC). Snapshots
//! above the log end offset (written before a crash lost the log's unflushed tail, or
//! before a truncation) describe a log that is not there: they are removed before any
//! snapshot is read, and before a truncation cuts below them.

use crate::error::LogError;
use crate::segment::{file_name, parse_file_name};
use crate::small_file;

use super::Log;

/// Suffix of a producer-state snapshot.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Suffix of a snapshot being written.
const SNAPSHOT_TEMP_SUFFIX: &str = ".snapshot.tmp";
/// Snapshots kept: the newest and the one before (a fall-back if the newest is damaged).
const SNAPSHOTS_KEPT: usize = 2;

/// First bytes of a snapshot file.
const SNAPSHOT_MAGIC: &[u8; 4] = b"SPS1";
/// Format version after the magic.
const SNAPSHOT_VERSION: u16 = 1;

/// Frames a snapshot body for the file: magic `SPS1`, version (u16), the end offset (i64),
/// the body, and a CRC-32C (u32) over everything before it. Big-endian.
pub fn frame_snapshot(end_offset: i64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 18);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&end_offset.to_be_bytes());
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// The body of a framed snapshot that claims `end_offset`, or why it cannot be trusted
/// (torn, damaged, another format, another offset than its name).
pub fn unframe_snapshot(end_offset: i64, bytes: &[u8]) -> Result<&[u8], String> {
    let (covered, crc) = bytes
        .split_last_chunk::<4>()
        .ok_or("shorter than its frame")?;
    if crc32c::crc32c(covered) != u32::from_be_bytes(*crc) {
        return Err("CRC-32C mismatch (torn or damaged)".into());
    }
    let (magic, rest) = covered.split_first_chunk::<4>().ok_or("no magic")?;
    if magic != SNAPSHOT_MAGIC {
        return Err("not a producer snapshot (magic)".into());
    }
    let (version, rest) = rest.split_first_chunk::<2>().ok_or("no version")?;
    if u16::from_be_bytes(*version) != SNAPSHOT_VERSION {
        return Err(format!("unknown version {}", u16::from_be_bytes(*version)));
    }
    let (offset, body) = rest.split_first_chunk::<8>().ok_or("no end offset")?;
    if i64::from_be_bytes(*offset) != end_offset {
        return Err(format!(
            "holds end offset {} but is named {end_offset}",
            i64::from_be_bytes(*offset)
        ));
    }
    Ok(body)
}

impl Log {
    /// The end offsets of the producer snapshots on disk, oldest first. Leftover temporary
    /// files of an interrupted write are removed.
    pub fn producer_snapshots(&self) -> Result<Vec<i64>, LogError> {
        let names = self
            .fs
            .list_dir(&self.dir)
            .map_err(|e| LogError::io("list", &self.dir, e))?;
        let mut offsets = Vec::new();
        for name in &names {
            if name.ends_with(SNAPSHOT_TEMP_SUFFIX) {
                let path = self.dir.join(name);
                self.fs
                    .remove(&path)
                    .map_err(|e| LogError::io("remove", &path, e))?;
            } else if let Some(offset) = parse_file_name(name, SNAPSHOT_SUFFIX) {
                offsets.push(offset);
            }
        }
        offsets.sort_unstable();
        Ok(offsets)
    }

    /// The end offset of the oldest producer snapshot on disk, listed without touching
    /// anything (a snapshot being written, still under its temporary name, is left alone:
    /// it ends at the log end, above every offset compaction asks about).
    pub(super) fn oldest_producer_snapshot(&self) -> Result<Option<i64>, LogError> {
        let names = self
            .fs
            .list_dir(&self.dir)
            .map_err(|e| LogError::io("list", &self.dir, e))?;
        Ok(names
            .iter()
            .filter_map(|name| parse_file_name(name, SNAPSHOT_SUFFIX))
            .min())
    }

    /// The bytes of the snapshot ending at `end_offset` (at most `len_bytes_max`; a larger
    /// file is `Ok(Err(reason))`, damage for the caller to report).
    pub fn read_producer_snapshot(
        &self,
        end_offset: i64,
        len_bytes_max: u64,
    ) -> Result<Result<Vec<u8>, String>, LogError> {
        let path = self.dir.join(file_name(end_offset, SNAPSHOT_SUFFIX));
        let file = self
            .fs
            .open(&path)
            .map_err(|e| LogError::io("open", &path, e))?;
        match crate::fs::read_all(file.as_ref(), len_bytes_max) {
            Ok(bytes) => Ok(Ok(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Ok(Err(e.to_string())),
            Err(e) => Err(LogError::io("read", &path, e)),
        }
    }

    /// Writes the snapshot ending at `end_offset` durably (see the module docs), then
    /// removes all but the newest [`SNAPSHOTS_KEPT`].
    pub fn write_producer_snapshot(&self, end_offset: i64, bytes: &[u8]) -> Result<(), LogError> {
        let name = file_name(end_offset, SNAPSHOT_SUFFIX);
        let temp = file_name(end_offset, SNAPSHOT_TEMP_SUFFIX);
        small_file::replace(self.fs.as_ref(), &self.dir, &temp, &name, bytes)?;
        let offsets = self.producer_snapshots()?;
        let excess = offsets.len().saturating_sub(SNAPSHOTS_KEPT);
        for offset in offsets.iter().take(excess) {
            let path = self.dir.join(file_name(*offset, SNAPSHOT_SUFFIX));
            self.fs
                .remove(&path)
                .map_err(|e| LogError::io("remove", &path, e))?;
        }
        Ok(())
    }

    /// Removes every snapshot whose end offset is above `offset`, durably (the directory is
    /// fsynced when one was removed): before a truncation to `offset`, and at open for
    /// snapshots above the log end offset.
    pub fn remove_producer_snapshots_above(&self, offset: i64) -> Result<(), LogError> {
        let mut removed = false;
        for end in self.producer_snapshots()? {
            if end > offset {
                let path = self.dir.join(file_name(end, SNAPSHOT_SUFFIX));
                self.fs
                    .remove(&path)
                    .map_err(|e| LogError::io("remove", &path, e))?;
                removed = true;
            }
        }
        if removed {
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| LogError::io("fsync dir", &self.dir, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{frame_snapshot, unframe_snapshot};

    #[test]
    fn frames_round_trip_and_damage_is_caught() {
        let framed = frame_snapshot(42, b"body bytes");
        assert_eq!(unframe_snapshot(42, &framed), Ok(&b"body bytes"[..]));
        assert!(unframe_snapshot(41, &framed).is_err());
        // Every flipped bit and every truncation is refused.
        for i in 0..framed.len() {
            let mut bad = framed.clone();
            bad[i] ^= 0x01;
            assert!(unframe_snapshot(42, &bad).is_err(), "bit flip at {i}");
            assert!(unframe_snapshot(42, &framed[..i]).is_err(), "cut at {i}");
        }
    }

    use crate::fs::{FileSystem, SimFs};
    use crate::{HandleCache, Log, LogConfig};

    #[test]
    fn snapshots_are_written_listed_pruned_and_removed_above_an_offset() {
        let fs: Arc<dyn FileSystem> = Arc::new(SimFs::new());
        let dir = std::path::PathBuf::from("/data/t-0");
        let handles = Arc::new(HandleCache::new(Arc::clone(&fs), 16));
        let log = Log::open(&dir, LogConfig::default(), handles, 0).unwrap();
        assert!(log.producer_snapshots().unwrap().is_empty());
        for end in [10, 20, 30] {
            log.write_producer_snapshot(end, format!("state {end}").as_bytes())
                .unwrap();
        }
        // Two kept, newest first to fall back from.
        assert_eq!(log.producer_snapshots().unwrap(), [20, 30]);
        assert_eq!(
            log.read_producer_snapshot(30, 1024).unwrap().unwrap(),
            b"state 30"
        );
        assert!(log.read_producer_snapshot(30, 2).unwrap().is_err());
        // A leftover temporary file is removed when listing.
        fs.create(&dir.join("00000000000000000040.snapshot.tmp"))
            .unwrap();
        assert_eq!(log.producer_snapshots().unwrap(), [20, 30]);
        assert!(!fs
            .exists(&dir.join("00000000000000000040.snapshot.tmp"))
            .unwrap());
        log.remove_producer_snapshots_above(25).unwrap();
        assert_eq!(log.producer_snapshots().unwrap(), [20]);
    }
}
