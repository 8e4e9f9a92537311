//! Transactions of one partition, as its log shows them (Kafka's transactional part of
//! `ProducerStateManager`): per producer, the first offset of its ongoing transaction and
//! the coordinator epoch of the last marker it got; the **last stable offset** (LSO); the
//! aborted transactions a `read_committed` fetch must name.
//!
//! Pure state, no I/O: the broker feeds it every batch appended (as leader, as follower, or
//! replayed from the log when a partition opens) and reads the LSO and aborted ranges from
//! it. A transaction's data is "unstable" from its first batch until its marker (COMMIT or
//! ABORT control batch) is below the high watermark; the LSO is the first unstable offset,
//! capped by the high watermark. So `read_committed` readers never see data whose outcome is
//! not yet replicated.
//!
//! Memory: one entry per producer with an open transaction (or a coordinator epoch to fence
//! with), and one per completed transaction whose marker is not yet below the high
//! watermark. Aborted transactions are not kept: [`Transactions::on_marker`] returns each
//! one for the caller to store in the log's per-segment `.txnindex`
//! (`crate::Log::append_txn_index`), which `read_committed` fetches read
//! (`crate::Log::aborted_between`).

use std::collections::{BTreeMap, HashMap};

use strom_records::BatchHeader;

/// One aborted transaction (Kafka's `AbortedTxn`, as a Fetch response names it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer.
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of its ABORT marker.
    pub last_offset: i64,
    /// The first unstable offset once it was aborted (Kafka records it in `.txnindex`).
    pub last_stable_offset: i64,
}

/// Kafka's transaction version 2 (KIP-890 part 2): the coordinator bumps the producer epoch
/// at the end of every transaction and writes the markers with the bumped epoch.
pub const TRANSACTION_VERSION_2: i16 = 2;

/// Why a marker is refused (the checks Kafka's `ProducerAppendInfo` makes on a marker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MarkerRefusal {
    /// Kafka's INVALID_PRODUCER_EPOCH (47): below transaction version 2 a marker epoch older
    /// than the producer's current one; at version 2 one not newer (the coordinator bumped
    /// the epoch for this end), unless it is the retry of a marker already written.
    #[error(
        "marker epoch {got} is {} the producer's current epoch {current} (transaction version {transaction_version})",
        if *transaction_version >= TRANSACTION_VERSION_2 { "not above" } else { "below" }
    )]
    InvalidProducerEpoch {
        /// The marker's producer epoch.
        got: i16,
        /// The producer's current epoch.
        current: i16,
        /// The marker's transaction version.
        transaction_version: i16,
    },
    /// Kafka's TRANSACTION_COORDINATOR_FENCED (52): a coordinator epoch older than the one
    /// of this producer's last marker (a coordinator that lost its partition still writing).
    #[error("coordinator epoch {got} is older than {current}, the last one seen")]
    CoordinatorFenced {
        /// The marker's coordinator epoch.
        got: i32,
        /// The last coordinator epoch seen for the producer.
        current: i32,
    },
}

/// A completed transaction whose marker is not yet below the high watermark: its data stays
/// unstable until the marker is replicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Unreplicated {
    first_offset: i64,
}

/// What a producer's transactions left behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ProducerTxn {
    /// First offset of the ongoing transaction, if one is open.
    ongoing: Option<i64>,
    /// Coordinator epoch of the last marker (-1: none seen).
    coordinator_epoch: i32,
}

/// The transactions of one partition.
#[derive(Clone, Debug, Default)]
pub struct Transactions {
    producers: HashMap<i64, ProducerTxn>,
    /// Open transactions by first offset (unique: each starts at its own batch).
    ongoing: BTreeMap<i64, i64>,
    /// Completed transactions by marker offset, until the high watermark passes the marker.
    unreplicated: BTreeMap<i64, Unreplicated>,
}

impl Transactions {
    /// A batch now in the log at `first_offset`: a transactional data batch opens its
    /// producer's transaction unless one is open. Control batches go through
    /// [`Transactions::on_marker`]; plain batches change nothing.
    pub fn on_batch(&mut self, header: &BatchHeader, first_offset: i64) {
        if !header.is_transactional() || header.is_control() || !header.has_producer_id() {
            return;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert(ProducerTxn {
                ongoing: None,
                coordinator_epoch: -1,
            });
        if entry.ongoing.is_none() {
            entry.ongoing = Some(first_offset);
            self.ongoing.insert(first_offset, header.producer_id);
        }
    }

    /// Kafka's check of a marker before it is appended: its coordinator epoch is not older
    /// than the last one seen for the producer. (The producer epoch is checked by the
    /// caller, which keeps producer epochs.)
    pub fn check_marker(
        &self,
        producer_id: i64,
        coordinator_epoch: i32,
    ) -> Result<(), MarkerRefusal> {
        match self.producers.get(&producer_id) {
            Some(p) if coordinator_epoch < p.coordinator_epoch => {
                Err(MarkerRefusal::CoordinatorFenced {
                    got: coordinator_epoch,
                    current: p.coordinator_epoch,
                })
            }
            _ => Ok(()),
        }
    }

    /// Kafka's producer-epoch check of a marker (`ProducerAppendInfo.checkProducerEpoch`,
    /// Kafka 4.x) for `producer_id` whose current epoch here is `current_epoch` (`None`: no
    /// state, every epoch is accepted). Below transaction version 2 markers carry the epoch
    /// of the transaction's data, so an older epoch is refused. At version 2 the coordinator
    /// bumped the epoch before writing the marker, so a valid marker's epoch is strictly
    /// newer; one equal to the current epoch is a late marker of an earlier transaction and
    /// is refused while a transaction is open here (it would end the transaction the new
    /// epoch started), but accepted with none open: that is the retry of a marker already
    /// written (a lost response, a coordinator reloading PREPARE_COMMIT/ABORT), which Kafka
    /// writes again (KAFKA-19999) and which ends nothing here.
    pub fn check_marker_epoch(
        &self,
        producer_id: i64,
        marker_epoch: i16,
        current_epoch: Option<i16>,
        transaction_version: i16,
    ) -> Result<(), MarkerRefusal> {
        let Some(current) = current_epoch else {
            return Ok(());
        };
        let tv2 = transaction_version >= TRANSACTION_VERSION_2;
        let refused = if tv2 {
            marker_epoch < current || (marker_epoch == current && self.has_ongoing(producer_id))
        } else {
            marker_epoch < current
        };
        if refused {
            return Err(MarkerRefusal::InvalidProducerEpoch {
                got: marker_epoch,
                current,
                transaction_version,
            });
        }
        Ok(())
    }

    /// A marker now in the log at `offset`: the producer's transaction (if one is open here)
    /// ends. An ABORT of an open transaction is returned, for the log's `.txnindex`.
    /// A marker for a producer with nothing open here ends nothing (Kafka writes markers to
    /// every partition of the transaction, some of which may hold no data of it).
    pub fn on_marker(
        &mut self,
        producer_id: i64,
        coordinator_epoch: i32,
        commit: bool,
        offset: i64,
    ) -> Option<AbortedTxn> {
        let entry = self.producers.entry(producer_id).or_insert(ProducerTxn {
            ongoing: None,
            coordinator_epoch: -1,
        });
        entry.coordinator_epoch = entry.coordinator_epoch.max(coordinator_epoch);
        let first_offset = entry.ongoing.take()?;
        self.ongoing.remove(&first_offset);
        self.unreplicated
            .insert(offset, Unreplicated { first_offset });
        if commit {
            return None;
        }
        // As Kafka's `lastStableOffset(completedTxn)`: the first offset of the oldest other
        // open transaction, else just past the marker.
        let last_stable_offset = self
            .ongoing
            .keys()
            .next()
            .copied()
            .unwrap_or(offset.saturating_add(1));
        Some(AbortedTxn {
            producer_id,
            first_offset,
            last_offset: offset,
            last_stable_offset,
        })
    }

    /// The high watermark moved to `high_watermark`: completed transactions whose marker is
    /// below it are stable.
    pub fn on_high_watermark(&mut self, high_watermark: i64) {
        while let Some(entry) = self.unreplicated.first_entry() {
            if *entry.key() >= high_watermark {
                break;
            }
            entry.remove();
        }
    }

    /// The first offset of a transaction that is open or whose marker is not yet below the
    /// high watermark last given to [`Transactions::on_high_watermark`].
    pub fn first_unstable_offset(&self) -> Option<i64> {
        let ongoing = self.ongoing.keys().next().copied();
        let unreplicated = self.unreplicated.values().map(|u| u.first_offset).min();
        match (ongoing, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The last stable offset at `high_watermark`: Kafka's `min(HW, first unstable offset)`.
    pub fn last_stable_offset(&mut self, high_watermark: i64) -> i64 {
        self.on_high_watermark(high_watermark);
        self.first_unstable_offset()
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// The first offset of `producer_id`'s open transaction here, if any.
    pub fn ongoing_of(&self, producer_id: i64) -> Option<i64> {
        self.producers.get(&producer_id).and_then(|p| p.ongoing)
    }

    /// The coordinator epoch of `producer_id`'s last marker here (-1: none).
    pub fn coordinator_epoch_of(&self, producer_id: i64) -> i32 {
        self.producers
            .get(&producer_id)
            .map_or(-1, |p| p.coordinator_epoch)
    }

    /// Open transactions: (first offset, producer id), oldest first.
    pub fn ongoing(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.ongoing.iter().map(|(first, pid)| (*first, *pid))
    }

    /// Whether `producer_id` must be kept (an open transaction or a coordinator epoch to
    /// fence with): the caller's producer eviction skips it while it has an open one.
    pub fn has_ongoing(&self, producer_id: i64) -> bool {
        self.ongoing_of(producer_id).is_some()
    }

    /// Forgets a producer with nothing open (the caller evicted it).
    pub fn forget(&mut self, producer_id: i64) {
        if !self.has_ongoing(producer_id) {
            self.producers.remove(&producer_id);
        }
    }
}

/// Reads big-endian fields from a snapshot body, refusing to run past its end.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<N>()
            .ok_or("snapshot body ends early")?;
        self.bytes = rest;
        Ok(*head)
    }

    /// An i64.
    pub fn i64(&mut self) -> Result<i64, String> {
        self.take::<8>().map(i64::from_be_bytes)
    }

    /// An i32.
    pub fn i32(&mut self) -> Result<i32, String> {
        self.take::<4>().map(i32::from_be_bytes)
    }

    /// An i16.
    pub fn i16(&mut self) -> Result<i16, String> {
        self.take::<2>().map(i16::from_be_bytes)
    }

    /// A one-byte count.
    pub fn count_u8(&mut self) -> Result<usize, String> {
        self.take::<1>().map(|b| usize::from(b[0]))
    }

    /// A count of entries of `entry_bytes` each, checked against the bytes left (a damaged
    /// count never sizes an allocation).
    pub fn count(&mut self, entry_bytes: usize) -> Result<usize, String> {
        let count = self.take::<4>().map(u32::from_be_bytes)? as usize;
        if count.saturating_mul(entry_bytes) > self.bytes.len() {
            return Err(format!("count {count} exceeds the snapshot body"));
        }
        Ok(count)
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl Transactions {
    /// Appends this state to a snapshot body (`docs/FORMATS.md`, producer snapshots):
    /// producers (id, open transaction's first offset or -1, coordinator epoch), completed
    /// transactions not yet stable (marker offset, first offset), and a count of aborted
    /// transactions that is now always 0 (they live in the `.txnindex` files; the field
    /// keeps the layout older Strom versions read). Counts are u32, fields big-endian.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut producers: Vec<_> = self.producers.iter().collect();
        producers.sort_by_key(|(id, _)| **id);
        out.extend_from_slice(&(producers.len() as u32).to_be_bytes());
        for (id, p) in producers {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&p.ongoing.unwrap_or(-1).to_be_bytes());
            out.extend_from_slice(&p.coordinator_epoch.to_be_bytes());
        }
        out.extend_from_slice(&(self.unreplicated.len() as u32).to_be_bytes());
        for (marker, u) in &self.unreplicated {
            out.extend_from_slice(&marker.to_be_bytes());
            out.extend_from_slice(&u.first_offset.to_be_bytes());
        }
        out.extend_from_slice(&0u32.to_be_bytes());
    }

    /// Reads what [`Transactions::encode`] wrote. A snapshot of an older Strom lists
    /// aborted transactions after the rest: they are read (so that the body's length
    /// checks out) and dropped, the `.txnindex` files being rebuilt from the log instead
    /// (`crate::Log::txn_index_rebuild_from`).
    pub fn decode(reader: &mut Reader<'_>) -> Result<Transactions, String> {
        let mut state = Transactions::default();
        for _ in 0..reader.count(20)? {
            let id = reader.i64()?;
            let ongoing = reader.i64()?;
            let coordinator_epoch = reader.i32()?;
            let ongoing = (ongoing >= 0).then_some(ongoing);
            if let Some(first) = ongoing {
                state.ongoing.insert(first, id);
            }
            state.producers.insert(
                id,
                ProducerTxn {
                    ongoing,
                    coordinator_epoch,
                },
            );
        }
        for _ in 0..reader.count(16)? {
            let marker = reader.i64()?;
            let first_offset = reader.i64()?;
            state
                .unreplicated
                .insert(marker, Unreplicated { first_offset });
        }
        for _ in 0..reader.count(32)? {
            for _ in 0..4 {
                reader.i64()?;
            }
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(producer_id: i64, transactional: bool, control: bool) -> BatchHeader {
        let mut attributes = 0;
        if transactional {
            attributes |= 0x10;
        }
        if control {
            attributes |= 0x20;
        }
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: 0,
            base_sequence: 0,
            records_count: 1,
        }
    }

    #[test]
    fn lso_follows_open_and_unreplicated_transactions() {
        let mut t = Transactions::default();
        // A plain batch at 0, then producer 7 opens at 1, producer 8 at 2.
        t.on_batch(&header(1, false, false), 0);
        t.on_batch(&header(7, true, false), 1);
        t.on_batch(&header(8, true, false), 2);
        t.on_batch(&header(7, true, false), 3);
        assert_eq!(t.last_stable_offset(4), 1);
        assert_eq!(t.ongoing_of(7), Some(1));
        // 7 aborts at 4: still unstable until the high watermark passes 4.
        let aborted = t.on_marker(7, 0, false, 4);
        assert_eq!(
            aborted,
            Some(AbortedTxn {
                producer_id: 7,
                first_offset: 1,
                last_offset: 4,
                last_stable_offset: 2,
            })
        );
        assert_eq!(t.last_stable_offset(4), 1);
        assert_eq!(t.last_stable_offset(5), 2);
        // 8 commits at 5: nothing aborted; stable once the HW passes 5.
        assert_eq!(t.on_marker(8, 0, true, 5), None);
        assert_eq!(t.last_stable_offset(5), 2);
        assert_eq!(t.last_stable_offset(6), 6);
        // A marker for a producer with nothing open here changes nothing but its epoch.
        assert_eq!(t.on_marker(9, 3, false, 6), None);
        assert_eq!(t.coordinator_epoch_of(9), 3);
        assert_eq!(t.last_stable_offset(7), 7);
    }

    #[test]
    fn state_round_trips_through_a_snapshot_body() {
        let mut t = Transactions::default();
        t.on_batch(&header(7, true, false), 1);
        t.on_batch(&header(8, true, false), 2);
        t.on_marker(7, 3, false, 4);
        t.on_batch(&header(9, true, false), 5);
        t.on_marker(9, 1, true, 6);
        let mut body = Vec::new();
        t.encode(&mut body);
        let mut reader = Reader::new(&body);
        let mut back = Transactions::decode(&mut reader).unwrap();
        assert!(reader.is_empty());
        assert_eq!(back.ongoing_of(8), Some(2));
        assert_eq!(back.coordinator_epoch_of(7), 3);
        assert_eq!(back.last_stable_offset(5), t.clone().last_stable_offset(5));
        assert_eq!(back.last_stable_offset(7), 2);
        // Truncated bodies and lying counts are refused, never trusted.
        for cut in 0..body.len() {
            assert!(Transactions::decode(&mut Reader::new(&body[..cut])).is_err());
        }
        let mut lying = body.clone();
        lying[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Transactions::decode(&mut Reader::new(&lying)).is_err());
    }

    #[test]
    fn an_older_snapshot_with_aborted_transactions_still_reads() {
        let mut t = Transactions::default();
        t.on_batch(&header(7, true, false), 1);
        t.on_marker(7, 3, false, 4);
        t.on_batch(&header(8, true, false), 5);
        let mut body = Vec::new();
        t.encode(&mut body);
        // The older layout: the same, with its aborted transactions listed at the end.
        let count_at = body.len() - 4;
        assert_eq!(&body[count_at..], &0u32.to_be_bytes());
        body.truncate(count_at);
        body.extend_from_slice(&1u32.to_be_bytes());
        for field in [7i64, 1, 4, 5] {
            body.extend_from_slice(&field.to_be_bytes());
        }
        let mut reader = Reader::new(&body);
        let mut back = Transactions::decode(&mut reader).unwrap();
        assert!(reader.is_empty());
        assert_eq!(back.ongoing_of(8), Some(5));
        assert_eq!(back.coordinator_epoch_of(7), 3);
        assert_eq!(
            back.last_stable_offset(10),
            t.clone().last_stable_offset(10)
        );
        for cut in 0..body.len() {
            assert!(Transactions::decode(&mut Reader::new(&body[..cut])).is_err());
        }
    }

    #[test]
    fn transaction_version_2_markers_need_a_bumped_epoch() {
        let refused = |got, current, tv| {
            Err(MarkerRefusal::InvalidProducerEpoch {
                got,
                current,
                transaction_version: tv,
            })
        };
        let mut t = Transactions::default();
        // No state for the producer: any epoch, any version.
        assert_eq!(t.check_marker_epoch(7, 0, None, 2), Ok(()));
        assert_eq!(t.check_marker_epoch(7, 0, None, 0), Ok(()));
        // Producer 7 at epoch 4 has a transaction open here.
        t.on_batch(&header(7, true, false), 0);
        // Below version 2: the data's epoch or newer.
        assert_eq!(t.check_marker_epoch(7, 4, Some(4), 0), Ok(()));
        assert_eq!(t.check_marker_epoch(7, 5, Some(4), 1), Ok(()));
        assert_eq!(t.check_marker_epoch(7, 3, Some(4), 1), refused(3, 4, 1));
        // Version 2: strictly newer (the coordinator bumped it); equal is a late marker of
        // an earlier transaction while this one is open; older is refused.
        assert_eq!(t.check_marker_epoch(7, 5, Some(4), 2), Ok(()));
        assert_eq!(t.check_marker_epoch(7, 4, Some(4), 2), refused(4, 4, 2));
        assert_eq!(t.check_marker_epoch(7, 3, Some(4), 2), refused(3, 4, 2));
        // The marker (epoch 5) ends the transaction; its retry at the same epoch, with
        // nothing open, is accepted (Kafka's idempotent marker retry) and ends nothing.
        t.on_marker(7, 0, true, 1);
        assert_eq!(t.check_marker_epoch(7, 5, Some(5), 2), Ok(()));
        assert_eq!(t.on_marker(7, 0, true, 2), None);
        assert_eq!(t.check_marker_epoch(7, 4, Some(5), 2), refused(4, 5, 2));
        // A new transaction at epoch 5: a second marker at 5 is now late.
        t.on_batch(&header(7, true, false), 3);
        assert_eq!(t.check_marker_epoch(7, 5, Some(5), 2), refused(5, 5, 2));
        assert_eq!(t.check_marker_epoch(7, 6, Some(5), 2), Ok(()));
        assert_eq!(
            refused(4, 4, 2).unwrap_err().to_string(),
            "marker epoch 4 is not above the producer's current epoch 4 (transaction version 2)"
        );
    }

    #[test]
    fn markers_from_an_older_coordinator_are_fenced() {
        let mut t = Transactions::default();
        t.on_batch(&header(7, true, false), 0);
        assert_eq!(t.check_marker(7, 2), Ok(()));
        t.on_marker(7, 2, true, 1);
        assert_eq!(
            t.check_marker(7, 1),
            Err(MarkerRefusal::CoordinatorFenced { got: 1, current: 2 })
        );
        assert_eq!(t.check_marker(7, 2), Ok(()));
        assert_eq!(t.check_marker(8, 0), Ok(()));
    }
}
