//! The pure part of compaction: the key map (latest offset per key, last batch per
//! producer), rewriting one batch without its superseded records and expired tombstones,
//! and grouping segments for a pass. No I/O here.
//!
//! Kafka's cleaner semantics (`LogCleaner.cleanInto`, `MemoryRecords.filterTo`):
//! - A record stays if it is the latest of its key and is not a tombstone past its delete
//!   horizon. Keyless records are dropped (a compacted topic refuses them on append; only a
//!   topic switched from `delete` to `compact` can hold any).
//! - A tombstone is kept for `delete.retention.ms` after the first pass that saw it (KIP-534):
//!   that pass rewrites its batch with a delete horizon (now + `delete.retention.ms`) in the
//!   base timestamp and the delete-horizon attribute; a later pass at or after the horizon
//!   drops it.
//! - Rewritten batches keep their base offset, last offset delta, max timestamp, producer
//!   fields, attributes and compression; only the records inside change.
//! - A batch left with no records is dropped, unless it is the last batch of a group (the
//!   cleaned segment must end where the next one begins) or the last batch of an idempotent
//!   producer that has not expired (`producer.id.expiration.ms`, Kafka's default: one day),
//!   whose sequence and epoch rebuilding producer state needs. A kept empty batch is the
//!   61-byte, uncompressed header Kafka writes ([`strom_records::empty_batch`]).
//! - Transactions (Kafka's cleaner with its aborted-transaction index): the key map pass
//!   follows each producer's transactional batches to their COMMIT/ABORT marker
//!   ([`TxnTracker`]). Records of an aborted transaction are removed (their batch is
//!   emptied, and dropped or kept empty by the rule above) and their keys never enter the
//!   key map; a committed transaction's records are cleaned as any others; a transaction
//!   whose marker is not in the mapped range (still open, or its marker lies beyond) is
//!   kept whole and its keys stay out of the map, so nothing it might supersede is removed
//!   before it is decided.
//! - COMMIT and ABORT markers (KIP-534, Kafka's `CleanedTransactionMetadata.onControlBatchRead`
//!   and `checkBatchRetention`): a marker is removed once no batch of its transaction
//!   remains, in two passes as a tombstone. A pass whose key-map walk (which always starts
//!   at the log's first segment, so it sees everything below the marker) meets no batch of
//!   the marker's transaction ([`KeyMap`]'s markers without data) sets the marker batch's
//!   delete horizon (now + `delete.retention.ms`); a pass at or after the horizon empties
//!   it (the batch is then dropped, or kept with no records where the empty-batch rule
//!   above needs it: a kept empty control batch ends nothing when replayed, as in Kafka). A
//!   pass that still meets a batch of the transaction keeps the marker: the data goes
//!   first. An empty control batch (a marker emptied earlier) carries nothing and may be
//!   dropped like any empty batch.
//!
//!   An ABORT marker goes together with its entry in the segment's `.txnindex`: the cleaned
//!   segment's `.txnindex` holds exactly the entries whose ABORT markers it keeps
//!   (`log/compact.rs`), as Kafka's cleaner writes its cleaned index. Never one without the
//!   other: an entry without its marker would make `read_committed` clients (librdkafka,
//!   Java) skip the producer's later transactions in the same fetch, as they skip a
//!   producer's batches from an aborted transaction's first offset until they read its
//!   ABORT marker; a marker without its entry is harmless only because no batch of its
//!   transaction is left, which is why the data goes first.
//!
//!   Producer state stays rebuildable: replay (`strom-broker`, from a producer snapshot or
//!   the log start) must never see a transaction's data without its marker, or the
//!   transaction would stay open and hold the last stable offset forever. From the log
//!   start it sees neither (the data went in an earlier pass, and no batch of the
//!   transaction lies after its marker). From a snapshot the marker must be below it: a
//!   snapshot taken inside the transaction says it is open and only the marker replayed
//!   after it closes it. So a marker is removed only below every producer snapshot on disk
//!   ([`CleanTime::markers_removable_below`]); later snapshots are taken at the log end,
//!   higher still. (A replica that fetches the cleaned range only after the marker went, a
//!   follower out of the ISR for longer than `delete.retention.ms` having copied the data
//!   before, sees the same as in Kafka: `delete.retention.ms` is the time to catch up.)
//!
//! Records are never decoded into values: the key map and the cleaning walk each batch's
//! records (`strom_records::walk_records`, one decompression window, keys copied out), and
//! a rewritten batch is rebuilt from the kept records' encoded bytes
//! (`strom_records::retain_records`). A batch costs its keys, one bit per record and the
//! rebuilt batch, whatever its records' values and headers hold.

use std::collections::{HashMap, HashSet};

use strom_records::{
    retain_records, validate, walk_records, BatchHeader, DecodeLimits, Rebuild, RecordsError,
    ValidateLimits, WalkOptions,
};

/// Kafka's default `producer.id.expiration.ms`: an idempotent producer silent this long is
/// forgotten, and compaction no longer keeps its last batch once that batch is empty.
pub const PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;

/// Bounds on one compaction pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionLimits {
    /// Memory for the key map (key bytes plus a fixed overhead per key and per producer
    /// id); segments whose keys do not fit wait for the next pass.
    pub key_map_bytes_max: usize,
    /// Bound on one batch's decompressed records.
    pub decompressed_bytes_max: usize,
}

impl Default for CompactionLimits {
    fn default() -> Self {
        CompactionLimits {
            key_map_bytes_max: 128 * 1024 * 1024,
            decompressed_bytes_max: 64 * 1024 * 1024,
        }
    }
}

/// Bytes charged per key on top of its length (hash map entry, offset, allocation).
const KEY_OVERHEAD_BYTES: usize = 64;
/// Bytes charged per transactional batch remembered as aborted or undecided.
const BATCH_ENTRY_BYTES: usize = 16;
/// Bytes charged per marker without data: its entry, and its place in the list of
/// markers a cleaning pass removed (`log/compact.rs`, 8 bytes in a `Vec` that may grow to
/// twice its length), so that the list stays within `key_map_bytes_max` too.
const MARKER_ENTRY_BYTES: usize = BATCH_ENTRY_BYTES + 16;
/// Bytes charged per producer id remembered.
const PRODUCER_ENTRY_BYTES: usize = 48;

/// Latest offset of every key seen, and the last offset of each producer's last batch.
#[derive(Debug, Default, Clone)]
pub struct KeyMap {
    offsets: HashMap<Vec<u8>, i64>,
    producers: HashMap<i64, i64>,
    /// Base offsets of batches of aborted transactions (their records are removed).
    aborted: HashSet<i64>,
    /// Base offsets of transactional batches whose outcome is not in the mapped range
    /// (kept whole).
    undecided: HashSet<i64>,
    /// Base offsets of COMMIT and ABORT markers whose transaction has no batch in the
    /// mapped range (removed after their delete horizon, see the module docs).
    markers_without_data: HashSet<i64>,
    bytes: usize,
}

impl KeyMap {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.offsets.get(key).copied()
    }

    /// Records the keys of one batch (`batch`, whose header is `header`; control batches
    /// carry no user keys).
    pub fn add_batch(
        &mut self,
        header: &BatchHeader,
        batch: &[u8],
        limits: &CompactionLimits,
    ) -> Result<(), RecordsError> {
        check_stored(batch)?;
        if header.is_control() || header.records_count == 0 {
            return Ok(());
        }
        walk_records(batch, &decode_limits(limits), WALK, |info, key| {
            if let Some(key) = key {
                self.insert(key, info.offset(header));
            }
            Ok::<_, RecordsError>(())
        })?;
        Ok(())
    }

    fn insert(&mut self, key: &[u8], offset: i64) {
        match self.offsets.get_mut(key) {
            Some(latest) => *latest = (*latest).max(offset),
            None => {
                self.bytes += key.len() + KEY_OVERHEAD_BYTES;
                self.offsets.insert(key.to_vec(), offset);
            }
        }
    }

    /// Records which producer wrote the batch (every batch, control batches included).
    pub fn add_producer_batch(&mut self, header: &BatchHeader) {
        if !header.has_producer_id() {
            return;
        }
        let last = header.last_offset();
        match self.producers.get_mut(&header.producer_id) {
            Some(latest) => *latest = (*latest).max(last),
            None => {
                self.bytes += PRODUCER_ENTRY_BYTES;
                self.producers.insert(header.producer_id, last);
            }
        }
    }

    /// The batch is the last one its idempotent producer wrote in the mapped part of the
    /// log (a later one may exist above it: keeping this one then costs 61 bytes, no more).
    pub fn is_last_of_producer(&self, header: &BatchHeader) -> bool {
        header.has_producer_id()
            && self.producers.get(&header.producer_id) == Some(&header.last_offset())
    }

    /// Adds all keys of `other` (a later part of the log).
    pub fn merge(&mut self, other: KeyMap) {
        self.bytes += (other.aborted.len() + other.undecided.len()) * BATCH_ENTRY_BYTES
            + other.markers_without_data.len() * MARKER_ENTRY_BYTES;
        self.aborted.extend(other.aborted);
        self.undecided.extend(other.undecided);
        self.markers_without_data.extend(other.markers_without_data);
        for (producer_id, last) in other.producers {
            match self.producers.get_mut(&producer_id) {
                Some(latest) => *latest = (*latest).max(last),
                None => {
                    self.bytes += PRODUCER_ENTRY_BYTES;
                    self.producers.insert(producer_id, last);
                }
            }
        }
        for (key, offset) in other.offsets {
            match self.offsets.get_mut(&key) {
                Some(latest) => *latest = (*latest).max(offset),
                None => {
                    self.bytes += key.len() + KEY_OVERHEAD_BYTES;
                    self.offsets.insert(key, offset);
                }
            }
        }
    }
}

/// Follows transactions through the key-map pass (see the module docs): a transactional
/// batch's keys wait with its producer's open transaction until the marker, then join the
/// key map (COMMIT) or are dropped and the batches marked aborted (ABORT).
#[derive(Debug, Default)]
pub struct TxnTracker {
    open: HashMap<i64, (Vec<i64>, KeyMap)>,
}

impl TxnTracker {
    /// One batch of the mapped range, in log order: its keys go into `part` (the key map
    /// of its segment) now, at its transaction's COMMIT, or never.
    pub fn add_batch(
        &mut self,
        part: &mut KeyMap,
        header: &BatchHeader,
        batch: &[u8],
        limits: &CompactionLimits,
    ) -> Result<(), RecordsError> {
        if header.is_control() {
            check_stored(batch)?;
            let Some(commit) = marker_of(batch, limits)? else {
                return Ok(());
            };
            match self.open.remove(&header.producer_id) {
                Some((offsets, keys)) => {
                    if commit {
                        part.merge(keys);
                    } else {
                        part.bytes += offsets.len() * BATCH_ENTRY_BYTES;
                        part.aborted.extend(offsets);
                    }
                }
                // No batch of this transaction from the log's start to its marker (the
                // mapped range starts at the first segment): the marker may go.
                None => {
                    part.bytes += MARKER_ENTRY_BYTES;
                    part.markers_without_data.insert(header.base_offset);
                }
            }
            return Ok(());
        }
        if header.is_transactional() && header.has_producer_id() {
            let (offsets, keys) = self.open.entry(header.producer_id).or_default();
            offsets.push(header.base_offset);
            return keys.add_batch(header, batch, limits);
        }
        part.add_batch(header, batch, limits)
    }

    /// Bytes the keys of open transactions hold.
    pub fn bytes(&self) -> usize {
        self.open
            .values()
            .map(|(o, k)| k.bytes + o.len() * BATCH_ENTRY_BYTES)
            .sum()
    }

    /// The end of the mapped range: transactions still open there are undecided.
    pub fn finish(self, map: &mut KeyMap) {
        for (offsets, _) in self.open.into_values() {
            map.bytes += offsets.len() * BATCH_ENTRY_BYTES;
            map.undecided.extend(offsets);
        }
    }
}

/// Whether a control batch is a COMMIT (`Some(true)`) or ABORT marker; `None` for other
/// control records.
fn marker_of(batch: &[u8], limits: &CompactionLimits) -> Result<Option<bool>, RecordsError> {
    let records = strom_records::records(batch, &decode_limits(limits))?;
    Ok(records
        .first()
        .and_then(|r| strom_records::EndTransactionMarker::from_record(r).ok())
        .map(|m| m.commit))
}

/// A stored batch is whole and its CRC right before the cleaner reads or rewrites it: a
/// rewrite computes a fresh CRC, which must never cover damaged bytes.
fn check_stored(batch: &[u8]) -> Result<(), RecordsError> {
    let unbounded = ValidateLimits {
        batch_bytes_max: usize::MAX,
    };
    validate(batch, &unbounded).map(|_| ())
}

/// Stored batches: any offset deltas (compaction leaves gaps), keys wanted.
const WALK: WalkOptions = WalkOptions::STORED.with_keys(true);

fn decode_limits(limits: &CompactionLimits) -> DecodeLimits {
    DecodeLimits {
        decompressed_bytes_max: limits.decompressed_bytes_max,
    }
}

/// What happened to one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Cleaned {
    /// Nothing removed or changed: copy the original bytes.
    Unchanged,
    /// Some records removed, or a delete horizon set: the rewritten batch.
    Rewritten {
        batch: Vec<u8>,
        records_removed: usize,
        tombstones_removed: usize,
    },
    /// No record left (or none to begin with): the caller keeps
    /// [`strom_records::empty_batch`] in its place or drops the batch (see the module docs).
    Emptied {
        records_removed: usize,
        tombstones_removed: usize,
    },
}

/// When a pass runs and how long tombstones and markers without data live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanTime {
    pub now_ms: i64,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// Markers are removed only below this offset: the end offset of the oldest producer
    /// snapshot on disk (`i64::MAX` without one), see the module docs.
    pub markers_removable_below: i64,
}

/// Drops the records of `batch` (whose header is `header`) that a later record with the
/// same key supersedes, keyless records, and tombstones past their batch's delete horizon;
/// sets the delete horizon on a batch that keeps a tombstone and has none yet. The batch's
/// CRC is checked first.
pub fn clean_batch(
    header: &BatchHeader,
    batch: &[u8],
    map: &KeyMap,
    time: CleanTime,
    limits: &CompactionLimits,
) -> Result<Cleaned, RecordsError> {
    check_stored(batch)?;
    if header.is_control() {
        return clean_control_batch(header, batch, map, time, limits);
    }
    if map.undecided.contains(&header.base_offset) {
        return Ok(Cleaned::Unchanged);
    }
    if header.is_transactional() && map.aborted.contains(&header.base_offset) {
        return Ok(Cleaned::Emptied {
            records_removed: usize::try_from(header.records_count).unwrap_or(0),
            tombstones_removed: 0,
        });
    }
    if header.records_count == 0 {
        // Nothing to walk (an old empty batch may carry a codec with no payload).
        return Ok(Cleaned::Emptied {
            records_removed: 0,
            tombstones_removed: 0,
        });
    }
    // Kafka: a tombstone stays while its batch has no delete horizon or it is in the future.
    let tombstones_expire = header.has_delete_horizon() && time.now_ms >= header.base_timestamp;
    let mut dropped = IndexSet::default();
    let mut tombstones_removed = 0;
    let mut tombstone_kept = false;
    let walked = walk_records(batch, &decode_limits(limits), WALK, |info, key| {
        let Some(key) = key else {
            dropped.insert(info.index);
            return Ok(());
        };
        if map
            .latest(key)
            .is_some_and(|latest| latest > info.offset(header))
        {
            dropped.insert(info.index);
        } else if info.is_tombstone() && tombstones_expire {
            dropped.insert(info.index);
            tombstones_removed += 1;
        } else if info.is_tombstone() {
            tombstone_kept = true;
        }
        Ok::<_, RecordsError>(())
    })?;
    let records_removed = dropped.len();
    if records_removed == walked.records {
        return Ok(Cleaned::Emptied {
            records_removed,
            tombstones_removed,
        });
    }
    let set_horizon = !header.has_delete_horizon() && tombstone_kept;
    if records_removed == 0 && !set_horizon {
        return Ok(Cleaned::Unchanged);
    }
    // With a delete horizon, the base timestamp holds it and the records' timestamp deltas
    // are rebased onto it, so that every record keeps its absolute timestamp.
    let rebuild = Rebuild {
        delete_horizon_ms: set_horizon
            .then(|| time.now_ms.saturating_add(time.delete_retention_ms.max(0))),
    };
    let retained = retain_records(batch, &decode_limits(limits), rebuild, |index| {
        !dropped.contains(index)
    })?;
    Ok(Cleaned::Rewritten {
        batch: retained.batch,
        records_removed,
        tombstones_removed,
    })
}

/// A control batch: an empty one (a marker emptied by an earlier pass) holds nothing; a
/// COMMIT or ABORT marker whose transaction left no batch gets its delete horizon, and is
/// emptied once the horizon passed if it lies below every producer snapshot; anything
/// else stays as it is.
fn clean_control_batch(
    header: &BatchHeader,
    batch: &[u8],
    map: &KeyMap,
    time: CleanTime,
    limits: &CompactionLimits,
) -> Result<Cleaned, RecordsError> {
    if header.records_count == 0 {
        return Ok(Cleaned::Emptied {
            records_removed: 0,
            tombstones_removed: 0,
        });
    }
    if !map.markers_without_data.contains(&header.base_offset) {
        return Ok(Cleaned::Unchanged);
    }
    if !header.has_delete_horizon() {
        let rebuild = Rebuild {
            delete_horizon_ms: Some(time.now_ms.saturating_add(time.delete_retention_ms.max(0))),
        };
        let retained = retain_records(batch, &decode_limits(limits), rebuild, |_| true)?;
        return Ok(Cleaned::Rewritten {
            batch: retained.batch,
            records_removed: 0,
            tombstones_removed: 0,
        });
    }
    if time.now_ms >= header.base_timestamp && header.last_offset() < time.markers_removable_below {
        return Ok(Cleaned::Emptied {
            records_removed: usize::try_from(header.records_count).unwrap_or(0),
            tombstones_removed: 0,
        });
    }
    Ok(Cleaned::Unchanged)
}

/// Record positions in one batch, one bit each (a batch holds at most as many records as
/// its decompressed bytes allow).
#[derive(Debug, Default)]
struct IndexSet {
    words: Vec<u64>,
    len: usize,
}

impl IndexSet {
    fn insert(&mut self, index: usize) {
        let word = index / 64;
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        if let Some(bits) = self.words.get_mut(word) {
            let bit = 1u64 << (index % 64);
            if *bits & bit == 0 {
                *bits |= bit;
                self.len += 1;
            }
        }
    }

    fn contains(&self, index: usize) -> bool {
        self.words
            .get(index / 64)
            .is_some_and(|bits| bits & (1u64 << (index % 64)) != 0)
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// What grouping needs to know of one cleanable segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupInput {
    pub base_offset: i64,
    /// Base offset of the segment after it (every cleanable segment has one).
    pub next_base_offset: i64,
    pub size_bytes: u64,
    pub offset_index_bytes: u64,
    pub time_index_bytes: u64,
}

/// Kafka's `groupSegmentsBySize`: consecutive segments cleaned into one while their log
/// bytes stay within `segment_bytes`, each index's bytes within `index_bytes`, and their
/// offsets within the 32-bit relative offsets of one segment. One difference: an empty
/// segment never joins a group (it starts its own), so that a group's last segment always
/// holds a batch and the cleaned segment ends exactly where the group ended.
pub fn group_segments(
    segments: &[GroupInput],
    segment_bytes: u64,
    index_bytes: u64,
) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let first = segments[start];
        let (mut log, mut index, mut time) = (
            first.size_bytes,
            first.offset_index_bytes,
            first.time_index_bytes,
        );
        let mut end = start + 1;
        while let Some(next) = segments.get(end) {
            let fits = next.size_bytes > 0
                && log.saturating_add(next.size_bytes) <= segment_bytes
                && index.saturating_add(next.offset_index_bytes) <= index_bytes
                && time.saturating_add(next.time_index_bytes) <= index_bytes
                && next
                    .next_base_offset
                    .saturating_sub(1)
                    .saturating_sub(first.base_offset)
                    <= i64::from(i32::MAX);
            if !fits {
                break;
            }
            log += next.size_bytes;
            index += next.offset_index_bytes;
            time += next.time_index_bytes;
            end += 1;
        }
        groups.push(start..end);
        start = end;
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use strom_records::{records, BatchBuilder, Compression, Record};

    fn decode(batch: &[u8], limits: &CompactionLimits) -> Result<Vec<Record>, RecordsError> {
        records(batch, &decode_limits(limits))
    }

    fn batch(base: i64, keys: &[(&str, Option<&str>)], compression: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(base, 1000).compression(compression);
        for (i, (key, value)) in keys.iter().enumerate() {
            b.append(
                1000 + i as i64,
                Some(key.as_bytes().to_vec().into()),
                value.map(|v| v.as_bytes().to_vec().into()),
                Vec::new(),
            )
            .unwrap();
        }
        b.build().unwrap()
    }

    fn at(now_ms: i64) -> CleanTime {
        CleanTime {
            now_ms,
            delete_retention_ms: 5000,
            markers_removable_below: i64::MAX,
        }
    }

    fn map_of(batches: &[&Vec<u8>]) -> KeyMap {
        let limits = CompactionLimits::default();
        let mut map = KeyMap::default();
        for bytes in batches {
            let h = BatchHeader::parse(bytes).unwrap();
            map.add_batch(&h, bytes, &limits).unwrap();
            map.add_producer_batch(&h);
        }
        map
    }

    fn clean(bytes: &[u8], map: &KeyMap, time: CleanTime) -> Cleaned {
        let h = BatchHeader::parse(bytes).unwrap();
        clean_batch(&h, bytes, map, time, &CompactionLimits::default()).unwrap()
    }

    fn txn_batch(base: i64, producer_id: i64, keys: &[&str]) -> Vec<u8> {
        let mut b = BatchBuilder::new(base, 1000)
            .producer(producer_id, 0, 0)
            .transactional(true);
        for (i, key) in keys.iter().enumerate() {
            b.append(
                1000 + i as i64,
                Some(key.as_bytes().to_vec().into()),
                Some(b"v".to_vec().into()),
                Vec::new(),
            )
            .unwrap();
        }
        b.build().unwrap()
    }

    fn marker(base: i64, producer_id: i64, commit: bool) -> Vec<u8> {
        strom_records::EndTransactionMarker {
            commit,
            coordinator_epoch: 0,
        }
        .to_batch(base, 1000, producer_id, 0)
        .unwrap()
    }

    #[test]
    fn aborted_records_go_committed_are_cleaned_undecided_stay_whole() {
        let limits = CompactionLimits::default();
        // Producer 1 aborts k1 (0); producer 2 commits k1 k2 (1-2); producer 3 leaves k2
        // (4) open; plain k1 k2 at 5-6 supersede.
        let aborted = txn_batch(0, 1, &["k1"]);
        let committed = txn_batch(1, 2, &["k1", "k2"]);
        let abort = marker(3, 1, false);
        let commit = marker(4, 2, true);
        let open = txn_batch(5, 3, &["k3"]);
        let plain = batch(6, &[("k1", Some("x"))], Compression::None);
        let mut map = KeyMap::default();
        let mut tracker = TxnTracker::default();
        for bytes in [&aborted, &committed, &abort, &commit, &open, &plain] {
            let h = BatchHeader::parse(bytes).unwrap();
            tracker.add_batch(&mut map, &h, bytes, &limits).unwrap();
        }
        tracker.finish(&mut map);
        // The aborted and the open transactions' keys are not in the map.
        assert_eq!(map.latest(b"k1"), Some(6));
        assert_eq!(map.latest(b"k2"), Some(2));
        assert_eq!(map.latest(b"k3"), None);
        assert!(matches!(
            clean(&aborted, &map, at(0)),
            Cleaned::Emptied {
                records_removed: 1,
                ..
            }
        ));
        // The committed batch loses k1 (superseded at 6), keeps k2.
        match clean(&committed, &map, at(0)) {
            Cleaned::Rewritten {
                batch,
                records_removed,
                ..
            } => {
                assert_eq!(records_removed, 1);
                let kept = decode(&batch, &limits).unwrap();
                assert_eq!(kept.len(), 1);
                assert_eq!(kept[0].key.as_deref(), Some(&b"k2"[..]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(clean(&open, &map, at(0)), Cleaned::Unchanged);
        // Both transactions had data in this pass: their markers stay as they are.
        assert_eq!(clean(&abort, &map, at(0)), Cleaned::Unchanged);
        assert_eq!(clean(&commit, &map, at(0)), Cleaned::Unchanged);
    }

    fn map_with_tracker(batches: &[&Vec<u8>]) -> KeyMap {
        let limits = CompactionLimits::default();
        let mut map = KeyMap::default();
        let mut tracker = TxnTracker::default();
        for bytes in batches {
            let h = BatchHeader::parse(bytes).unwrap();
            map.add_producer_batch(&h);
            tracker.add_batch(&mut map, &h, bytes, &limits).unwrap();
        }
        tracker.finish(&mut map);
        map
    }

    /// KIP-534 for COMMIT and ABORT markers: once no batch of its transaction is left,
    /// the marker gets a delete horizon in one pass and is emptied in the first pass at or
    /// after it, and only below every producer snapshot; a marker whose transaction still
    /// has a batch stays as it is.
    #[test]
    fn markers_without_data_go_after_their_delete_horizon() {
        let limits = CompactionLimits::default();
        // What earlier passes left: the markers of an aborted (producer 1) and a committed
        // (producer 2) transaction whose batches are gone; producers 3 and 4 still have
        // data before their COMMIT and ABORT markers; then a plain batch.
        let abort = marker(3, 1, false);
        let commit = marker(4, 2, true);
        let data = txn_batch(5, 3, &["k"]);
        let commit_with_data = marker(6, 3, true);
        let aborted_data = txn_batch(7, 4, &["j"]);
        let abort_with_data = marker(8, 4, false);
        let plain = batch(9, &[("k", Some("x"))], Compression::None);
        let map = map_with_tracker(&[
            &abort,
            &commit,
            &data,
            &commit_with_data,
            &aborted_data,
            &abort_with_data,
            &plain,
        ]);
        for with_data in [&commit_with_data, &abort_with_data] {
            assert_eq!(clean(with_data, &map, at(100)), Cleaned::Unchanged);
            assert_eq!(clean(with_data, &map, at(1_000_000)), Cleaned::Unchanged);
        }
        for bare in [&abort, &commit] {
            // First pass: the horizon is set, the marker itself kept.
            let Cleaned::Rewritten {
                batch: marked,
                records_removed: 0,
                tombstones_removed: 0,
            } = clean(bare, &map, at(100))
            else {
                panic!("horizon set")
            };
            let h = validate(&marked, &ValidateLimits::default()).unwrap();
            assert!(h.has_delete_horizon() && h.is_control());
            assert_eq!(h.base_timestamp, 5100);
            let original = BatchHeader::parse(bare).unwrap();
            assert_eq!(
                (h.base_offset, h.producer_id, h.max_timestamp),
                (
                    original.base_offset,
                    original.producer_id,
                    original.max_timestamp
                )
            );
            let record = &decode(&marked, &limits).unwrap()[0];
            assert_eq!(
                record.timestamp_ms(&h),
                1000,
                "the marker keeps its timestamp"
            );
            let was = strom_records::EndTransactionMarker::from_record(
                &decode(bare, &limits).unwrap()[0],
            )
            .unwrap();
            assert_eq!(
                strom_records::EndTransactionMarker::from_record(record).unwrap(),
                was
            );
            // The next pass (its walk sees the marked batch, still without data).
            let marked_vec = marked.clone();
            let map = map_with_tracker(&[&marked_vec, &plain]);
            assert_eq!(clean(&marked, &map, at(5099)), Cleaned::Unchanged);
            assert_eq!(
                clean(&marked, &map, at(5100)),
                Cleaned::Emptied {
                    records_removed: 1,
                    tombstones_removed: 0
                }
            );
            // Not at or above the oldest producer snapshot.
            let snapshot_at = |offset| CleanTime {
                markers_removable_below: offset,
                ..at(9000)
            };
            assert_eq!(
                clean(&marked, &map, snapshot_at(h.base_offset)),
                Cleaned::Unchanged
            );
            assert!(matches!(
                clean(&marked, &map, snapshot_at(h.base_offset + 1)),
                Cleaned::Emptied { .. }
            ));
            // What is left of it (an empty control batch, where one must stay) holds
            // nothing and may go in any later pass.
            let empty = strom_records::empty_batch(&h).unwrap();
            assert!(matches!(
                clean(&empty, &map_with_tracker(&[&empty]), at(0)),
                Cleaned::Emptied {
                    records_removed: 0,
                    ..
                }
            ));
        }
    }

    #[test]
    fn keeps_latest_per_key_and_batch_bounds() {
        for compression in Compression::ALL {
            let first = batch(
                10,
                &[("a", Some("1")), ("b", Some("1")), ("a", Some("2"))],
                compression,
            );
            let second = batch(13, &[("b", None), ("c", Some("1"))], compression);
            let map = map_of(&[&first, &second]);
            assert_eq!(map.latest(b"a"), Some(12));
            assert_eq!(map.latest(b"b"), Some(13));
            let h = BatchHeader::parse(&first).unwrap();
            let Cleaned::Rewritten {
                batch,
                records_removed,
                ..
            } = clean(&first, &map, at(0))
            else {
                panic!("rewritten")
            };
            assert_eq!(records_removed, 2);
            let nh = validate(&batch, &ValidateLimits::default()).unwrap();
            assert_eq!(
                (nh.base_offset, nh.last_offset(), nh.max_timestamp),
                (10, 12, h.max_timestamp)
            );
            assert_eq!(nh.compression().unwrap(), compression);
            assert!(!nh.has_delete_horizon());
            let left = decode(&batch, &CompactionLimits::default()).unwrap();
            assert_eq!(left.len(), 1);
            assert_eq!(left[0].offset(&nh), 12);
            assert_eq!(left[0].timestamp_ms(&nh), 1002);
        }
    }

    /// KIP-534: the first pass that keeps a tombstone sets the delete horizon (records keep
    /// their timestamps); passes before the horizon keep it, the first one at it drops it.
    #[test]
    fn tombstones_live_delete_retention_after_the_first_pass() {
        for compression in Compression::ALL {
            let second = batch(13, &[("b", None), ("c", Some("1"))], compression);
            let map = map_of(&[&second]);
            let Cleaned::Rewritten {
                batch: marked,
                records_removed: 0,
                tombstones_removed: 0,
            } = clean(&second, &map, at(100))
            else {
                panic!("horizon set")
            };
            let h = validate(&marked, &ValidateLimits::default()).unwrap();
            assert!(h.has_delete_horizon());
            assert_eq!(h.base_timestamp, 5100);
            assert_eq!(h.compression().unwrap(), compression);
            let records = decode(&marked, &CompactionLimits::default()).unwrap();
            let stamps: Vec<i64> = records.iter().map(|r| r.timestamp_ms(&h)).collect();
            assert_eq!(stamps, vec![1000, 1001]);
            // Even a pass long after the record's own timestamp keeps it before the horizon.
            assert_eq!(clean(&marked, &map, at(5099)), Cleaned::Unchanged);
            let Cleaned::Rewritten {
                batch,
                tombstones_removed: 1,
                ..
            } = clean(&marked, &map, at(5100))
            else {
                panic!("tombstone dropped")
            };
            let h = validate(&batch, &ValidateLimits::default()).unwrap();
            assert_eq!((h.base_offset, h.last_offset()), (13, 14));
            let left = decode(&batch, &CompactionLimits::default()).unwrap();
            assert_eq!(left.len(), 1);
            assert_eq!(left[0].timestamp_ms(&h), 1001);
        }
    }

    #[test]
    fn batches_left_without_records_are_emptied() {
        let first = batch(0, &[("a", Some("1")), ("b", Some("1"))], Compression::Lz4);
        let second = batch(2, &[("a", Some("2")), ("b", Some("2"))], Compression::Lz4);
        let map = map_of(&[&first, &second]);
        assert_eq!(
            clean(&first, &map, at(0)),
            Cleaned::Emptied {
                records_removed: 2,
                tombstones_removed: 0
            }
        );
        assert_eq!(clean(&second, &map, at(0)), Cleaned::Unchanged);
        // A batch that had no records to begin with (an earlier pass's empty batch).
        let h = BatchHeader::parse(&first).unwrap();
        let empty = strom_records::empty_batch(&h).unwrap();
        assert_eq!(
            clean(&empty, &map, at(0)),
            Cleaned::Emptied {
                records_removed: 0,
                tombstones_removed: 0
            }
        );
        // Keyless records do not survive compaction (Kafka's cleaner drops them).
        let mut b = BatchBuilder::new(4, 0);
        b.append(0, None, Some(b"v".to_vec().into()), Vec::new())
            .unwrap();
        let keyless = b.build().unwrap();
        assert!(matches!(
            clean(&keyless, &map, at(0)),
            Cleaned::Emptied {
                records_removed: 1,
                ..
            }
        ));
    }

    #[test]
    fn damaged_batches_are_reported_not_rewritten() {
        let limits = CompactionLimits::default();
        let good = batch(10, &[("a", Some("1")), ("a", Some("2"))], Compression::None);
        let map = map_of(&[&good]);
        let h = BatchHeader::parse(&good).unwrap();
        // A flipped bit in a value: the records still walk, the CRC does not match.
        let mut damaged = good.clone();
        let last = damaged.len() - 2;
        damaged[last] ^= 0x01;
        assert!(matches!(
            clean_batch(&h, &damaged, &map, at(0), &limits),
            Err(RecordsError::CrcMismatch { .. })
        ));
        assert!(matches!(
            KeyMap::default().add_batch(&h, &damaged, &limits),
            Err(RecordsError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn last_batch_of_each_producer() {
        let producer = |base: i64, id: i64, keys: &[(&str, Option<&str>)]| {
            let mut b = BatchBuilder::new(base, 0).producer(id, 0, base as i32);
            for (key, value) in keys {
                b.append(
                    0,
                    Some(key.as_bytes().to_vec().into()),
                    value.map(|v| v.as_bytes().to_vec().into()),
                    Vec::new(),
                )
                .unwrap();
            }
            b.build().unwrap()
        };
        let a1 = producer(0, 7, &[("x", Some("1"))]);
        let a2 = producer(1, 7, &[("y", Some("1")), ("z", Some("1"))]);
        let b1 = producer(3, 8, &[("x", Some("2"))]);
        let plain = batch(4, &[("q", Some("1"))], Compression::None);
        let map = map_of(&[&a1, &a2, &b1, &plain]);
        let last = |bytes: &Vec<u8>| map.is_last_of_producer(&BatchHeader::parse(bytes).unwrap());
        assert!(!last(&a1));
        assert!(last(&a2));
        assert!(last(&b1));
        assert!(!last(&plain));
    }

    fn input(base: i64, next: i64, size: u64, index: u64) -> GroupInput {
        GroupInput {
            base_offset: base,
            next_base_offset: next,
            size_bytes: size,
            offset_index_bytes: index,
            time_index_bytes: index * 3 / 2,
        }
    }

    #[test]
    fn tiny_segments_group_into_few() {
        // 58 segments of one 61-byte batch each (what a topic was left with).
        let segments: Vec<GroupInput> = (0..58)
            .map(|i| input(i * 20, (i + 1) * 20, 61, 0))
            .collect();
        let groups = group_segments(&segments, 1024, 1024);
        assert_eq!(groups.len(), 4, "{groups:?}");
        assert!(groups.iter().all(|g| g.len() <= 16));
        assert_eq!(group_segments(&segments, 1 << 30, 1 << 20).len(), 1);
        // Full segments stay alone.
        assert_eq!(group_segments(&segments, 100, 1024).len(), 58);
    }

    #[test]
    fn groups_respect_offset_span_and_empty_segments() {
        let max = i64::from(i32::MAX);
        let segments = vec![
            input(0, 10, 100, 8),
            input(10, max, 100, 8),
            input(max, max + 10, 100, 8),
        ];
        assert_eq!(
            group_segments(&segments, 1 << 20, 1 << 20),
            vec![0..2, 2..3]
        );
        let segments = vec![
            input(0, 10, 100, 8),
            input(10, 20, 0, 0),
            input(20, 30, 100, 8),
        ];
        assert_eq!(
            group_segments(&segments, 1 << 20, 1 << 20),
            vec![0..1, 1..3]
        );
    }

    proptest! {
        /// Groups cover every segment once, in order, and each group of several fits the
        /// bounds Kafka's cleaner uses.
        #[test]
        fn groups_partition_within_bounds(
            sizes in proptest::collection::vec((0u64..600, 0u64..40, 1i64..1_000_000_000), 0..60),
            segment_bytes in 64u64..3000,
            index_bytes in 24u64..400,
        ) {
            let mut segments = Vec::new();
            let mut base = 0i64;
            for (size, index, span) in sizes {
                segments.push(input(base, base + span, size, index));
                base += span;
            }
            let groups = group_segments(&segments, segment_bytes, index_bytes);
            let mut next = 0;
            for g in &groups {
                prop_assert_eq!(g.start, next);
                prop_assert!(g.end > g.start);
                next = g.end;
                let members = &segments[g.clone()];
                if members.len() > 1 {
                    prop_assert!(members.iter().map(|s| s.size_bytes).sum::<u64>() <= segment_bytes);
                    prop_assert!(members.iter().map(|s| s.offset_index_bytes).sum::<u64>() <= index_bytes);
                    prop_assert!(members.iter().map(|s| s.time_index_bytes).sum::<u64>() <= index_bytes);
                    let span = members[members.len() - 1].next_base_offset - 1 - members[0].base_offset;
                    prop_assert!(span <= i64::from(i32::MAX));
                    prop_assert!(members[1..].iter().all(|s| s.size_bytes > 0));
                }
            }
            prop_assert_eq!(next, segments.len());
            // Greedy: a group stops only where the next segment would break a bound.
            for w in groups.windows(2) {
                let (g, h) = (&w[0], &w[1]);
                let candidate = &segments[g.start..h.start + 1];
                let s = candidate[candidate.len() - 1];
                let fits = s.size_bytes > 0
                    && candidate.iter().map(|s| s.size_bytes).sum::<u64>() <= segment_bytes
                    && candidate.iter().map(|s| s.offset_index_bytes).sum::<u64>() <= index_bytes
                    && candidate.iter().map(|s| s.time_index_bytes).sum::<u64>() <= index_bytes
                    && s.next_base_offset - 1 - candidate[0].base_offset <= i64::from(i32::MAX);
                prop_assert!(!fits);
            }
        }
    }
}
