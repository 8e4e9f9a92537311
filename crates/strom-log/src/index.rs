//! The two sparse per-segment indexes, held in memory and mirrored to their files:
//! the offset index (`.index`: relative offset -> byte position) and the time index
//! (`.timeindex`: max timestamp so far -> relative offset). Both use Kafka's layouts.

use crate::config::{OFFSET_INDEX_ENTRY_BYTES, TIME_INDEX_ENTRY_BYTES};

/// Why an index file was rejected on load (the log then rebuilds it from the segment).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum IndexError {
    #[error("index of {len_bytes} bytes is not a whole number of {entry_bytes}-byte entries")]
    PartialEntry { len_bytes: usize, entry_bytes: u64 },
    #[error("index entry {entry} does not increase")]
    NotIncreasing { entry: usize },
    #[error("index entry {entry} points past the segment's {segment_bytes} bytes")]
    PastSegmentEnd { entry: usize, segment_bytes: u64 },
    #[error("index holds {entries} entries, more than the {entries_max} allowed")]
    TooManyEntries { entries: usize, entries_max: usize },
}

/// One offset-index entry: the last offset of a batch and the batch's byte position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// One time-index entry: the largest timestamp so far and the offset that carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp_ms: i64,
    pub relative_offset: u32,
}

impl OffsetEntry {
    pub fn encode(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        b[4..].copy_from_slice(&self.position.to_be_bytes());
        b
    }
    fn decode(b: &[u8]) -> Option<OffsetEntry> {
        Some(OffsetEntry {
            relative_offset: u32::from_be_bytes(b.get(..4)?.try_into().ok()?),
            position: u32::from_be_bytes(b.get(4..8)?.try_into().ok()?),
        })
    }
}

impl TimeEntry {
    pub fn encode(self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..8].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        b[8..].copy_from_slice(&self.relative_offset.to_be_bytes());
        b
    }
    fn decode(b: &[u8]) -> Option<TimeEntry> {
        Some(TimeEntry {
            timestamp_ms: i64::from_be_bytes(b.get(..8)?.try_into().ok()?),
            relative_offset: u32::from_be_bytes(b.get(8..12)?.try_into().ok()?),
        })
    }
}

/// Entries an index file of `index_bytes` can hold.
pub fn entries_max(index_bytes: u64, entry_bytes: u64) -> usize {
    usize::try_from(index_bytes / entry_bytes).unwrap_or(usize::MAX)
}

/// The offset index of one segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
    entries_max: usize,
}

impl OffsetIndex {
    pub fn new(entries_max: usize) -> OffsetIndex {
        OffsetIndex {
            entries: Vec::new(),
            entries_max,
        }
    }

    /// Parses a trimmed index file and checks that it is plausible for a segment of
    /// `segment_bytes`: whole entries, strictly increasing offsets and positions.
    pub fn decode(
        bytes: &[u8],
        entries_max: usize,
        segment_bytes: u64,
    ) -> Result<OffsetIndex, IndexError> {
        let entry_bytes = OFFSET_INDEX_ENTRY_BYTES as usize;
        let count = entry_count(bytes, OFFSET_INDEX_ENTRY_BYTES, entries_max)?;
        let mut entries: Vec<OffsetEntry> = Vec::with_capacity(count);
        for (i, chunk) in bytes.chunks_exact(entry_bytes).enumerate() {
            let Some(e) = OffsetEntry::decode(chunk) else {
                return Err(IndexError::NotIncreasing { entry: i });
            };
            if let Some(prev) = entries.last() {
                if e.relative_offset <= prev.relative_offset || e.position <= prev.position {
                    return Err(IndexError::NotIncreasing { entry: i });
                }
            }
            if u64::from(e.position) >= segment_bytes {
                return Err(IndexError::PastSegmentEnd {
                    entry: i,
                    segment_bytes,
                });
            }
            entries.push(e);
        }
        Ok(OffsetIndex {
            entries,
            entries_max,
        })
    }

    pub fn entries(&self) -> &[OffsetEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.entries_max
    }

    /// Position of a batch at or before the one holding `relative_offset`: the entry with
    /// the largest offset `<=` it (entries name a batch's last offset), or 0.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        self.lookup_entry(relative_offset).map_or(0, |e| e.position)
    }

    /// The entry [`OffsetIndex::lookup`] takes its position from, if any (so that the
    /// caller can check that the batch there holds the entry's offset).
    pub fn lookup_entry(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let idx = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        idx.checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .copied()
    }

    /// The last entry, from which a clean open scans to the segment's end.
    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    /// Adds an entry if it increases; returns it (for the file) when added.
    pub fn push(&mut self, entry: OffsetEntry) -> Option<OffsetEntry> {
        if self.is_full() {
            return None;
        }
        if let Some(prev) = self.entries.last() {
            if entry.relative_offset <= prev.relative_offset || entry.position <= prev.position {
                return None;
            }
        }
        self.entries.push(entry);
        Some(entry)
    }

    pub fn encode(&self) -> Vec<u8> {
        self.entries.iter().flat_map(|e| e.encode()).collect()
    }
}

/// The time index of one segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
    entries_max: usize,
}

impl TimeIndex {
    pub fn new(entries_max: usize) -> TimeIndex {
        TimeIndex {
            entries: Vec::new(),
            entries_max,
        }
    }

    /// Parses a trimmed time index file; timestamps and offsets must not decrease (Kafka
    /// allows an equal offset for a later, larger timestamp only via a new entry).
    pub fn decode(bytes: &[u8], entries_max: usize) -> Result<TimeIndex, IndexError> {
        let entry_bytes = TIME_INDEX_ENTRY_BYTES as usize;
        let count = entry_count(bytes, TIME_INDEX_ENTRY_BYTES, entries_max)?;
        let mut entries: Vec<TimeEntry> = Vec::with_capacity(count);
        for (i, chunk) in bytes.chunks_exact(entry_bytes).enumerate() {
            let Some(e) = TimeEntry::decode(chunk) else {
                return Err(IndexError::NotIncreasing { entry: i });
            };
            if let Some(prev) = entries.last() {
                if e.timestamp_ms <= prev.timestamp_ms || e.relative_offset < prev.relative_offset {
                    return Err(IndexError::NotIncreasing { entry: i });
                }
            }
            entries.push(e);
        }
        Ok(TimeIndex {
            entries,
            entries_max,
        })
    }

    pub fn entries(&self) -> &[TimeEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Full with one slot kept for the final entry written when the segment rolls.
    pub fn is_full(&self) -> bool {
        self.entries.len().saturating_add(1) >= self.entries_max
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    /// The entry with the largest timestamp `<=` `timestamp_ms`: every batch before its
    /// offset has a smaller max timestamp, so a search may start there.
    pub fn lookup(&self, timestamp_ms: i64) -> Option<TimeEntry> {
        let idx = self
            .entries
            .partition_point(|e| e.timestamp_ms <= timestamp_ms);
        idx.checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .copied()
    }

    /// Adds an entry if its timestamp is larger than the last one; returns it when added.
    /// `final_entry` may use the slot kept free by [`TimeIndex::is_full`].
    pub fn push(&mut self, entry: TimeEntry, final_entry: bool) -> Option<TimeEntry> {
        let limit = if final_entry {
            self.entries_max
        } else {
            self.entries_max.saturating_sub(1)
        };
        if self.entries.len() >= limit {
            return None;
        }
        if let Some(prev) = self.entries.last() {
            if entry.timestamp_ms <= prev.timestamp_ms
                || entry.relative_offset < prev.relative_offset
            {
                return None;
            }
        }
        self.entries.push(entry);
        Some(entry)
    }

    pub fn encode(&self) -> Vec<u8> {
        self.entries.iter().flat_map(|e| e.encode()).collect()
    }
}

/// The number of whole entries in an index file's bytes, checked before anything is
/// allocated for them: a partial entry or more than `entries_max` entries is an error.
fn entry_count(bytes: &[u8], entry_bytes: u64, entries_max: usize) -> Result<usize, IndexError> {
    let size = entry_bytes as usize;
    if bytes.len() % size != 0 {
        return Err(IndexError::PartialEntry {
            len_bytes: bytes.len(),
            entry_bytes,
        });
    }
    let count = bytes.len() / size;
    if count > entries_max {
        return Err(IndexError::TooManyEntries {
            entries: count,
            entries_max,
        });
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn oe(relative_offset: u32, position: u32) -> OffsetEntry {
        OffsetEntry {
            relative_offset,
            position,
        }
    }

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let mut idx = OffsetIndex::new(10);
        idx.push(oe(4, 100)).unwrap();
        idx.push(oe(9, 250)).unwrap();
        let check = |offset, expected| assert_eq!(idx.lookup(offset), expected, "offset {offset}");
        check(0, 0);
        check(3, 0);
        check(4, 100);
        check(8, 100);
        check(9, 250);
        check(1000, 250);
        assert!(idx.push(oe(9, 300)).is_none(), "offsets must increase");
    }

    #[test]
    fn offset_index_round_trips_and_rejects_damage() {
        let mut idx = OffsetIndex::new(4);
        idx.push(oe(1, 10)).unwrap();
        idx.push(oe(5, 70)).unwrap();
        let bytes = idx.encode();
        assert_eq!(OffsetIndex::decode(&bytes, 4, 100).unwrap(), idx);
        assert!(matches!(
            OffsetIndex::decode(&bytes[..9], 4, 100),
            Err(IndexError::PartialEntry { .. })
        ));
        assert!(matches!(
            OffsetIndex::decode(&bytes, 4, 50),
            Err(IndexError::PastSegmentEnd { .. })
        ));
        assert!(matches!(
            OffsetIndex::decode(&bytes, 1, 100),
            Err(IndexError::TooManyEntries { .. })
        ));
        let zeros = vec![0u8; 16];
        assert!(
            OffsetIndex::decode(&zeros, 4, 100).is_err(),
            "a zero-filled tail is invalid"
        );
    }

    #[test]
    fn time_index_keeps_a_slot_for_the_final_entry() {
        let mut idx = TimeIndex::new(3);
        let te = |timestamp_ms, relative_offset| TimeEntry {
            timestamp_ms,
            relative_offset,
        };
        assert!(idx.push(te(10, 0), false).is_some());
        assert!(!idx.is_full());
        assert!(idx.push(te(20, 3), false).is_some());
        assert!(idx.is_full());
        assert!(idx.push(te(30, 5), false).is_none());
        assert!(idx.push(te(30, 5), true).is_some());
        assert_eq!(idx.lookup(9), None);
        assert_eq!(idx.lookup(25).map(|e| e.relative_offset), Some(3));
        let decoded = TimeIndex::decode(&idx.encode(), 3).unwrap();
        assert_eq!(decoded, idx);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Against a model: the floor lookup equals a linear scan.
        #[test]
        fn offset_lookup_matches_linear_scan(
            steps in proptest::collection::vec((1u32..50, 1u32..500), 0..40),
            probe in 0u32..3000,
        ) {
            let mut idx = OffsetIndex::new(100);
            let (mut off, mut pos) = (0u32, 0u32);
            for (d_off, d_pos) in steps {
                off += d_off;
                pos += d_pos;
                idx.push(oe(off, pos)).unwrap();
            }
            let expected = idx.entries().iter().rfind(|e| e.relative_offset <= probe).map_or(0, |e| e.position);
            prop_assert_eq!(idx.lookup(probe), expected);
            let decoded = OffsetIndex::decode(&idx.encode(), 100, u64::from(pos) + 1).unwrap();
            prop_assert_eq!(decoded, idx);
        }
    }
}
