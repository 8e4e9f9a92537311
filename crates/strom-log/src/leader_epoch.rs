//! The leader-epoch cache (Kafka's `LeaderEpochFileCache`) and its file,
//! `leader-epoch-checkpoint`: for each leader epoch that wrote to this log, the offset where
//! it started. It answers where an epoch ended (OffsetForLeaderEpoch, a Fetch's diverging
//! epoch), which is how a follower finds the first offset where its log and its leader's
//! part (KIP-101, KIP-279).
//!
//! The pure part ([`LeaderEpochCache`]) has no I/O; the file is Kafka's text format, written
//! atomically (temp file, fsync, rename, directory fsync). When it is written relative to
//! the data is decided in `log/epochs.rs`.

use std::path::Path;

use crate::error::LogError;
use crate::fs::FileSystem;

/// The cache file in a partition directory (Kafka's name and format).
pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
/// Its temporary name while being replaced.
pub const LEADER_EPOCH_TEMP_FILE: &str = "leader-epoch-checkpoint.tmp";
/// The only format version (Kafka's 0).
const VERSION: u32 = 0;
/// Entries a cache file may hold; far above any real history (one entry per leadership
/// change that wrote data, trimmed as the log start moves).
pub const EPOCH_ENTRIES_MAX: usize = 100_000;
/// Bytes a cache file may have (each line is at most two 20-digit numbers).
const FILE_BYTES_MAX: u64 = 64 + EPOCH_ENTRIES_MAX as u64 * 48;

/// One leader epoch and the first offset it wrote (or where its leader began).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// Its first offset.
    pub start_offset: i64,
}

/// Epochs in increasing order, each starting at an offset above the previous one's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// A cache of `entries`; `None` unless both epochs and start offsets strictly increase,
    /// epochs are not negative and there are at most [`EPOCH_ENTRIES_MAX`].
    pub fn from_entries(entries: Vec<EpochEntry>) -> Option<LeaderEpochCache> {
        let ordered = entries
            .windows(2)
            .all(|w| matches!(w, [a, b] if a.epoch < b.epoch && a.start_offset < b.start_offset));
        let sane = entries.iter().all(|e| e.epoch >= 0 && e.start_offset >= 0);
        (ordered && sane && entries.len() <= EPOCH_ENTRIES_MAX)
            .then_some(LeaderEpochCache { entries })
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest entry.
    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The newest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.latest().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset` (Kafka's `assign`): nothing changes if
    /// it is the latest epoch already (at or before that offset); otherwise every entry
    /// with an epoch at or above it, or starting at or after that offset, is removed first
    /// (a follower taking a leader's history over its own). Returns whether the cache
    /// changed. Negative epochs (batches without one) are ignored.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if let Some(latest) = self.latest() {
            if latest.epoch == epoch && latest.start_offset <= start_offset {
                return false;
            }
        }
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// The log was cut at `end_offset`: entries starting there or later go. Returns whether
    /// the cache changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        self.entries.len() != before
    }

    /// The log start moved to `start_offset`: entries wholly before it go, and the one it
    /// falls in starts there. Returns whether the cache changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let Some(keep_from) = self
            .entries
            .iter()
            .rposition(|e| e.start_offset <= start_offset)
        else {
            return false;
        };
        let mut changed = keep_from > 0;
        self.entries.drain(..keep_from);
        if let Some(first) = self.entries.first_mut() {
            if first.start_offset < start_offset {
                first.start_offset = start_offset;
                changed = true;
            }
        }
        changed
    }

    /// Kafka's `endOffsetFor`: the largest epoch at or below `requested` and the offset
    /// where it ended (the start of the next epoch, or `log_end_offset` for the latest).
    /// `None` (Kafka's undefined, -1/-1) when `requested` is negative or above every known
    /// epoch, or the cache is empty. An epoch older than every entry answers `requested`
    /// with the start of the first entry: those records are gone, and a follower must not
    /// keep anything from before it.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> Option<EpochEntry> {
        let latest = self.latest()?;
        if requested < 0 {
            return None;
        }
        if requested == latest.epoch {
            return Some(EpochEntry {
                epoch: requested,
                start_offset: log_end_offset,
            });
        }
        let higher = self.entries.iter().find(|e| e.epoch > requested)?;
        let floor = self.entries.iter().rev().find(|e| e.epoch <= requested);
        Some(EpochEntry {
            epoch: floor.map_or(requested, |f| f.epoch),
            start_offset: higher.start_offset,
        })
    }

    /// The epoch that wrote `offset` (the last entry starting at or before it).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map(|e| e.epoch)
    }

    /// Kafka's text format: the version, the entry count, then `epoch start_offset` lines.
    pub fn encode(&self) -> String {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for entry in &self.entries {
            text.push_str(&format!("{} {}\n", entry.epoch, entry.start_offset));
        }
        text
    }

    /// Parses [`LeaderEpochCache::encode`]'s format; a description of what is wrong
    /// otherwise (wrong version, count, a line that does not parse, entries out of order).
    pub fn decode(text: &str) -> Result<LeaderEpochCache, String> {
        let mut lines = text.lines();
        let version = lines.next().ok_or("empty file")?;
        if version.trim() != VERSION.to_string() {
            return Err(format!("unknown version {version:?}"));
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or("no entry count")?;
        if count > EPOCH_ENTRIES_MAX {
            return Err(format!("{count} entries exceed {EPOCH_ENTRIES_MAX}"));
        }
        let mut entries = Vec::with_capacity(count);
        for line in lines.by_ref().take(count) {
            let mut fields = line.split_whitespace();
            let parsed = (|| {
                let epoch = fields.next()?.parse().ok()?;
                let start_offset = fields.next()?.parse().ok()?;
                fields.next().is_none().then_some(EpochEntry {
                    epoch,
                    start_offset,
                })
            })();
            entries.push(parsed.ok_or_else(|| format!("bad entry line {line:?}"))?);
        }
        if entries.len() != count {
            return Err(format!(
                "{count} entries announced, {} found",
                entries.len()
            ));
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return Err("text after the last entry".into());
        }
        LeaderEpochCache::from_entries(entries)
            .ok_or_else(|| "entries are not strictly increasing".to_string())
    }

    /// Reads the cache file of `dir`: `Ok(None)` if there is none, `Err` with the reason if
    /// it cannot be used.
    pub fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Result<Self, String>>, LogError> {
        Ok(
            crate::small_file::read_text(fs, dir, LEADER_EPOCH_FILE, FILE_BYTES_MAX)?
                .map(|text| text.and_then(|text| LeaderEpochCache::decode(&text))),
        )
    }

    /// Replaces the cache file of `dir` durably: temp file, fsync, rename, directory fsync.
    pub fn write(&self, fs: &dyn FileSystem, dir: &Path) -> Result<(), LogError> {
        crate::small_file::replace(
            fs,
            dir,
            LEADER_EPOCH_TEMP_FILE,
            LEADER_EPOCH_FILE,
            self.encode().as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    //! The leader-epoch cache against Kafka's examples and against a model: a `Vec` holding the
    //! epoch of every offset, from which where each epoch ends is read off directly.

    use proptest::prelude::*;

    use super::*;

    fn entry(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry {
            epoch,
            start_offset,
        }
    }

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache::from_entries(entries.iter().map(|(e, s)| entry(*e, *s)).collect())
            .unwrap()
    }

    #[test]
    fn assign_keeps_the_history_monotonic() {
        let mut c = LeaderEpochCache::default();
        assert!(c.assign(2, 0));
        assert!(!c.assign(2, 5), "same epoch later: nothing new");
        assert!(c.assign(4, 10));
        assert!(!c.assign(-1, 12), "batches without an epoch are ignored");
        assert_eq!(c.entries(), cache(&[(2, 0), (4, 10)]).entries());
        // A follower taking the leader's history: epoch 3 from 8 replaces what conflicts.
        assert!(c.assign(3, 8));
        assert_eq!(c.entries(), cache(&[(2, 0), (3, 8)]).entries());
        // An older start for the latest epoch moves it.
        assert!(c.assign(3, 6));
        assert_eq!(c.entries(), cache(&[(2, 0), (3, 6)]).entries());
    }

    #[test]
    fn end_offsets_follow_kafka() {
        let c = cache(&[(1, 0), (3, 10), (6, 20)]);
        let check = |requested, expected: Option<(i32, i64)>| {
            let found = c
                .end_offset_for(requested, 30)
                .map(|e| (e.epoch, e.start_offset));
            assert_eq!(found, expected, "epoch {requested}");
        };
        check(-1, None);
        check(0, Some((0, 0)));
        check(1, Some((1, 10)));
        check(2, Some((1, 10)));
        check(3, Some((3, 20)));
        check(5, Some((3, 20)));
        check(6, Some((6, 30)));
        check(7, None);
        assert_eq!(LeaderEpochCache::default().end_offset_for(1, 5), None);
        assert_eq!(c.epoch_for_offset(15), Some(3));
        assert_eq!(c.epoch_for_offset(35), Some(6));
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(1, 0), (3, 10), (6, 20)]);
        assert!(!c.truncate_from_end(21));
        assert!(c.truncate_from_end(20));
        assert_eq!(c.entries(), cache(&[(1, 0), (3, 10)]).entries());
        let mut c = cache(&[(1, 0), (3, 10), (6, 20)]);
        assert!(c.truncate_from_start(15));
        assert_eq!(c.entries(), cache(&[(3, 15), (6, 20)]).entries());
        assert!(!c.truncate_from_start(15));
        assert!(c.truncate_from_start(20));
        assert_eq!(c.entries(), cache(&[(6, 20)]).entries());
    }

    #[test]
    fn the_file_round_trips_and_garbage_is_named() {
        let c = cache(&[(1, 0), (3, 10)]);
        assert_eq!(c.encode(), "0\n2\n1 0\n3 10\n");
        assert_eq!(LeaderEpochCache::decode(&c.encode()), Ok(c));
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n1 0\n",
            "0\n1\n1 x\n",
            "0\n2\n3 10\n1 0\n",
            "0\n1\n1 0 7\n",
            "0\n1\n1 0\nextra\n",
            "0\n2\n1 5\n2 5\n",
            "0\n1\n-1 0\n",
        ] {
            assert!(LeaderEpochCache::decode(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// One change to the model log.
    #[derive(Clone, Debug)]
    enum Op {
        /// Appends `count` records written by a leader of epoch `current + bump`.
        Append { bump: i32, count: i64 },
        /// Cuts the log at `offset` (clamped).
        Truncate(i64),
        /// Moves the log start to `offset` (clamped).
        Start(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..3i32, 1..5i64).prop_map(|(bump, count)| Op::Append { bump, count }),
            1 => (0..40i64).prop_map(Op::Truncate),
            1 => (0..40i64).prop_map(Op::Start),
        ]
    }

    /// Where `requested` ended according to the epochs of the records themselves.
    fn model_end(epochs: &[i32], start: usize, requested: i32) -> Option<(i32, i64)> {
        let live = epochs.get(start..).unwrap_or_default();
        let leo = epochs.len() as i64;
        if live.is_empty() || requested < 0 {
            return None;
        }
        let latest = *live.last()?;
        if requested > latest {
            return None;
        }
        if requested == latest {
            return Some((requested, leo));
        }
        let end = start + live.iter().position(|e| *e > requested)?;
        let floor = live.iter().filter(|e| **e <= requested).max().copied();
        Some((floor.unwrap_or(requested), end as i64))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A cache maintained the way the log maintains it (assign on each batch with a newer
        /// epoch, trimmed on truncation and when the log start moves) answers every epoch
        /// exactly as the records say, and survives its file format.
        #[test]
        fn the_cache_agrees_with_the_records(ops in proptest::collection::vec(op(), 1..60)) {
            let mut epochs: Vec<i32> = Vec::new();
            let mut start = 0usize;
            let mut current = 0i32;
            let mut c = LeaderEpochCache::default();
            for op in ops {
                match op {
                    Op::Append { bump, count } => {
                        current += bump;
                        c.assign(current, epochs.len() as i64);
                        epochs.extend(std::iter::repeat_n(current, count as usize));
                    }
                    Op::Truncate(offset) => {
                        let offset = (offset as usize).clamp(start, epochs.len());
                        epochs.truncate(offset);
                        c.truncate_from_end(offset as i64);
                        current = epochs.last().copied().unwrap_or(current);
                    }
                    Op::Start(offset) => {
                        start = (offset as usize).clamp(start, epochs.len());
                        c.truncate_from_start(start as i64);
                    }
                }
                let leo = epochs.len() as i64;
                for requested in -1..=current + 1 {
                    let found = c.end_offset_for(requested, leo).map(|e| (e.epoch, e.start_offset));
                    // Once every record is gone the cache may still know the latest epoch.
                    if start < epochs.len() {
                        prop_assert_eq!(found, model_end(&epochs, start, requested),
                            "epoch {} of {:?} from {}: {:?}", requested, epochs, start, c);
                    }
                }
                let decoded = LeaderEpochCache::decode(&c.encode());
                prop_assert_eq!(decoded, Ok(c.clone()));
            }
        }
    }
}
