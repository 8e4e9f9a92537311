//! The high-watermark checkpoint of a log directory, `replication-offset-checkpoint`
//! (Kafka's file of that name): the last high watermark known for every partition in the
//! directory, so that after a restart a partition never shows consumers records above what
//! was committed before (the high watermark is otherwise only in memory).
//!
//! It is a hint that may lag: the broker writes it every
//! `replica.high.watermark.checkpoint.interval.ms` and on clean shutdown, and on open takes
//! the smaller of it and the log end offset. A missing entry means "nothing known" (the
//! log start), never "everything". Strom's format carries topic ids (a deleted and
//! re-created topic of the same name must not inherit a high watermark) and a CRC-32C line,
//! so damage is detected and reported rather than believed; the file is replaced atomically
//! (temp file, fsync, rename, directory fsync).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::LogError;
use crate::fs::FileSystem;

/// The file in each log directory.
pub const HIGH_WATERMARK_FILE: &str = "replication-offset-checkpoint";
/// Its temporary name while being replaced.
pub const HIGH_WATERMARK_TEMP_FILE: &str = "replication-offset-checkpoint.tmp";
const HEADER: &str = "strom-replication-offset-checkpoint 1";
/// Partitions one file may list.
pub const HIGH_WATERMARK_ENTRIES_MAX: usize = 1_000_000;
/// Bytes one file may have (a line is at most 32 + 1 + 11 + 1 + 20 + 1 bytes).
const FILE_BYTES_MAX: u64 = 128 + HIGH_WATERMARK_ENTRIES_MAX as u64 * 72;

/// A partition, by topic id (as a 128-bit number) and index.
pub type PartitionKey = (u128, i32);

/// The high watermarks of one log directory's partitions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HighWatermarks {
    entries: BTreeMap<PartitionKey, i64>,
}

impl HighWatermarks {
    /// An empty set.
    pub fn new() -> HighWatermarks {
        HighWatermarks::default()
    }

    /// Sets one partition's high watermark.
    pub fn insert(&mut self, key: PartitionKey, high_watermark: i64) {
        self.entries.insert(key, high_watermark);
    }

    /// One partition's high watermark, if known.
    pub fn get(&self, key: PartitionKey) -> Option<i64> {
        self.entries.get(&key).copied()
    }

    /// Partitions listed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The text written to the file: a header line, the count, one
    /// `<topic id, 32 hex digits> <partition> <high watermark>` line per partition, and
    /// `crc32c <8 hex digits>` over every byte before that line.
    pub fn encode(&self) -> String {
        let mut text = format!("{HEADER}\n{}\n", self.entries.len());
        for ((topic, partition), high_watermark) in &self.entries {
            text.push_str(&format!("{topic:032x} {partition} {high_watermark}\n"));
        }
        let crc = crc32c::crc32c(text.as_bytes());
        text.push_str(&format!("crc32c {crc:08x}\n"));
        text
    }

    /// Parses [`HighWatermarks::encode`]'s format, or says what is wrong with it.
    pub fn decode(text: &str) -> Result<HighWatermarks, String> {
        let without_newline = text.strip_suffix('\n').ok_or("no final newline")?;
        let body_end = without_newline
            .rfind('\n')
            .map(|i| i + 1)
            .ok_or("no checksum line")?;
        let (body, trailer) = text.split_at(body_end);
        let crc = crc32c::crc32c(body.as_bytes());
        if trailer != format!("crc32c {crc:08x}\n") {
            return Err("checksum mismatch".into());
        }
        let mut lines = body.lines();
        if lines.next() != Some(HEADER) {
            return Err("unknown header".into());
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or("no entry count")?;
        if count > HIGH_WATERMARK_ENTRIES_MAX {
            return Err(format!(
                "{count} entries exceed {HIGH_WATERMARK_ENTRIES_MAX}"
            ));
        }
        let mut entries = BTreeMap::new();
        for line in lines.by_ref() {
            let mut fields = line.split(' ');
            let parsed = (|| {
                let topic = u128::from_str_radix(fields.next()?, 16).ok()?;
                let partition = fields.next()?.parse().ok()?;
                let high_watermark: i64 = fields.next()?.parse().ok()?;
                (fields.next().is_none() && high_watermark >= 0)
                    .then_some(((topic, partition), high_watermark))
            })();
            let (key, high_watermark) = parsed.ok_or_else(|| format!("bad line {line:?}"))?;
            entries.insert(key, high_watermark);
        }
        if entries.len() != count {
            return Err(format!(
                "{count} entries announced, {} found",
                entries.len()
            ));
        }
        Ok(HighWatermarks { entries })
    }

    /// Reads `dir`'s file: `Ok(None)` if there is none, `Ok(Some(Err))` with the reason if
    /// it is damaged.
    pub fn read(
        fs: &dyn FileSystem,
        dir: &Path,
    ) -> Result<Option<Result<HighWatermarks, String>>, LogError> {
        Ok(
            crate::small_file::read_text(fs, dir, HIGH_WATERMARK_FILE, FILE_BYTES_MAX)?
                .map(|text| text.and_then(|text| HighWatermarks::decode(&text))),
        )
    }

    /// Replaces `dir`'s file durably: temp file, fsync, rename, directory fsync.
    pub fn write(&self, fs: &dyn FileSystem, dir: &Path) -> Result<(), LogError> {
        crate::small_file::replace(
            fs,
            dir,
            HIGH_WATERMARK_TEMP_FILE,
            HIGH_WATERMARK_FILE,
            self.encode().as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::SimFs;

    #[test]
    fn round_trip_damage_and_atomic_replacement() {
        let mut hw = HighWatermarks::new();
        hw.insert((0xfeed_0000_0000_0000_0000_0000_0000_beef, 3), 1234);
        hw.insert((7, 0), 0);
        let text = hw.encode();
        assert_eq!(HighWatermarks::decode(&text), Ok(hw.clone()));
        // Any flipped character is caught (by the checksum or the parse).
        for i in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[i] ^= 0x01;
            let Ok(damaged) = String::from_utf8(bytes) else {
                continue;
            };
            assert!(
                HighWatermarks::decode(&damaged).is_err(),
                "flip at {i} accepted: {damaged:?}"
            );
        }
        assert!(HighWatermarks::decode("").is_err());
        assert!(HighWatermarks::decode(&text[..text.len() - 3]).is_err());

        let fs = SimFs::new();
        let dir = Path::new("/logs");
        fs.create_dir_all(dir).unwrap();
        assert_eq!(HighWatermarks::read(&fs, dir).unwrap(), None);
        hw.write(&fs, dir).unwrap();
        // A power loss after the write keeps it (it was fsynced, renamed, dir fsynced).
        let after = fs.crash(7);
        assert_eq!(HighWatermarks::read(&after, dir).unwrap(), Some(Ok(hw)));
    }
}
