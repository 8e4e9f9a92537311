//! Idempotent producer state of one partition: per producer id, its epoch and its last
//! five batches' sequence ranges and offsets (Kafka's `ProducerStateManager`). It answers a
//! retried batch with the offsets it first got, and refuses gaps in the sequence.
//!
//! Transactions ride along ([`strom_log::Transactions`]): open transactions, the last
//! stable offset, the coordinator epoch of each producer's last marker (an ABORT's entry
//! goes to the log's `.txnindex`). Control batches (COMMIT/ABORT markers) never touch sequences; they end the
//! producer's transaction ([`ProducerStates::record_marker`]).
//!
//! The state is rebuilt when a partition opens (`partition.rs`): from the newest producer
//! snapshot ([`ProducerStates::decode_snapshot`], `docs/FORMATS.md`) and the batches after
//! it, or, without a trustworthy one, by replaying the whole log's batch headers, so that
//! every open transaction is known (the same replay rebuilds the `.txnindex` files the log
//! could not vouch for at open).

use std::collections::{HashMap, VecDeque};

use strom_log::{MarkerRefusal, SnapshotReader, Transactions};
use strom_records::BatchHeader;

/// Batches remembered per producer (Kafka's `NUM_BATCHES_TO_RETAIN`, the client's
/// `max.in.flight.requests.per.connection` limit for idempotence).
const BATCHES_RETAINED: usize = 5;
/// Producers remembered per partition; the least recently seen is forgotten beyond it.
const PRODUCERS_MAX: usize = 100_000;

/// One batch a producer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// Sequence of its first record.
    pub first_sequence: i32,
    /// Sequence of its last record.
    pub last_sequence: i32,
    /// Offset of its first record.
    pub first_offset: i64,
    /// Offset of its last record.
    pub last_offset: i64,
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    last_seen: u64,
    /// Max timestamp of its last batch (DescribeProducers' `last_timestamp`).
    last_timestamp: i64,
}

/// One producer as DescribeProducers shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerView {
    /// The producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
    /// Last sequence written (-1: none).
    pub last_sequence: i32,
    /// Max timestamp of its last batch (-1: none).
    pub last_timestamp: i64,
    /// Coordinator epoch of its last marker (-1: none).
    pub coordinator_epoch: i32,
    /// First offset of its open transaction (-1: none).
    pub current_txn_start_offset: i64,
}

/// Why a transaction marker is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MarkerError {
    /// Kafka's INVALID_PRODUCER_EPOCH (47): the marker's producer epoch is older than the
    /// producer's current one, or, at transaction version 2, not newer (see
    /// [`strom_log::Transactions::check_marker_epoch`]).
    #[error("producer {producer_id}: {refusal}")]
    InvalidProducerEpoch {
        /// The producer.
        producer_id: i64,
        /// What the transaction state said.
        refusal: MarkerRefusal,
    },
    /// Kafka's TRANSACTION_COORDINATOR_FENCED (52).
    #[error("producer {producer_id}: {refusal}")]
    CoordinatorFenced {
        /// The producer.
        producer_id: i64,
        /// What the transaction state said.
        refusal: MarkerRefusal,
    },
}

/// What to do with a producer's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it (no producer id, a new producer, or the next sequence).
    Append,
    /// Already in the log: answer with the original offsets, append nothing.
    Duplicate(BatchMeta),
    /// Kafka's INVALID_PRODUCER_EPOCH (47): an epoch older than the one seen.
    StaleEpoch,
    /// Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER (45): a gap or a sequence from the past.
    OutOfOrder,
}

/// Verifications under way at most per partition (one per producer id whose first batch of
/// a transaction waits for its coordinator's answer); beyond it a new one is refused with a
/// retriable error rather than an old one forgotten (forgetting would refuse its batch).
const VERIFICATIONS_MAX: usize = 100_000;

/// KIP-890 part 1 on the partition side (Kafka's `VerificationStateEntry` and
/// `VerificationGuard`): what a transactional batch's append must still find true, decided
/// before the transaction coordinator is asked, so that the coordinator is asked at most
/// once per producer, transaction and partition, and a stale answer never lets a batch in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Nothing to check (not a transactional batch, or verification is off).
    Unchecked,
    /// The producer's transaction is already open here at the batch's epoch: no coordinator
    /// round trip; the append still requires it open at that epoch.
    Ongoing,
    /// The guard handed out before the coordinator was asked: the append requires the
    /// transaction open here at the batch's epoch, or this guard still the producer's (no
    /// marker and no transactional append of it since it was handed out).
    Guard(u64),
}

/// A verification under way for one producer id.
#[derive(Debug, Clone, Copy)]
struct VerificationEntry {
    guard: u64,
    epoch: i16,
    /// When it was handed out (`producer.id.expiration.ms` forgets it, as Kafka does).
    since_ms: i64,
}

/// The guard value never handed out: a batch older than a verification under way holds it
/// and so never matches.
const NO_GUARD: u64 = 0;

/// The producer states of one partition.
#[derive(Debug, Default)]
pub struct ProducerStates {
    by_id: HashMap<i64, ProducerEntry>,
    clock: u64,
    /// Open and aborted transactions, the last stable offset.
    pub txns: Transactions,
    /// Verifications under way, by producer id.
    verifications: HashMap<i64, VerificationEntry>,
    /// The last guard handed out (guards start at 1; [`NO_GUARD`] is 0).
    last_guard: u64,
}

/// `first` follows `last` (sequences wrap at `i32::MAX` to 0, as in Kafka).
fn in_sequence(last: i32, first: i32) -> bool {
    first == last.wrapping_add(1) || (last == i32::MAX && first == 0)
}

impl ProducerStates {
    /// Checks a batch a producer sent against what its producer id wrote before.
    pub fn check(&self, header: &BatchHeader) -> SequenceCheck {
        if !header.has_producer_id() || header.is_control() {
            return SequenceCheck::Append;
        }
        let Some(entry) = self.by_id.get(&header.producer_id) else {
            return SequenceCheck::Append;
        };
        let first = header.base_sequence;
        let last = header.last_sequence();
        if header.producer_epoch < entry.epoch {
            return SequenceCheck::StaleEpoch;
        }
        if header.producer_epoch > entry.epoch {
            // A bumped epoch restarts the sequence at 0.
            return if first == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder
            };
        }
        if let Some(seen) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == first && b.last_sequence == last)
        {
            return SequenceCheck::Duplicate(*seen);
        }
        match entry.batches.back() {
            Some(previous) if !in_sequence(previous.last_sequence, first) => {
                SequenceCheck::OutOfOrder
            }
            _ => SequenceCheck::Append,
        }
    }

    /// Whether `producer_id`'s transaction is open here at `epoch`.
    fn ongoing_at(&self, producer_id: i64, epoch: i16) -> bool {
        self.txns.has_ongoing(producer_id)
            && self
                .by_id
                .get(&producer_id)
                .is_some_and(|e| e.epoch == epoch)
    }

    /// Before a transactional batch of `producer_id` at `epoch` is verified with the
    /// coordinator: [`Verification::Ongoing`] when its transaction is already open here at
    /// that epoch (the coordinator need not be asked: the partition joined the transaction
    /// with its first batch, and the marker that ends it will end this batch too), else
    /// the guard its append must find (the one under way at that epoch, shared by the
    /// transaction's pipelined first batches, or a new one). `None`: too many
    /// verifications under way (retriable).
    pub fn start_verification(
        &mut self,
        producer_id: i64,
        epoch: i16,
        now_ms: i64,
    ) -> Option<Verification> {
        if self.ongoing_at(producer_id, epoch) {
            return Some(Verification::Ongoing);
        }
        match self.verifications.get(&producer_id) {
            Some(entry) if entry.epoch == epoch => return Some(Verification::Guard(entry.guard)),
            // An older epoch than one under way: its append is refused (stale epoch).
            Some(entry) if entry.epoch > epoch => return Some(Verification::Guard(NO_GUARD)),
            Some(_) => {}
            None if self.verifications.len() >= VERIFICATIONS_MAX => return None,
            None => {}
        }
        self.last_guard = self.last_guard.wrapping_add(1).max(1);
        let guard = self.last_guard;
        self.verifications.insert(
            producer_id,
            VerificationEntry {
                guard,
                epoch,
                since_ms: now_ms,
            },
        );
        Some(Verification::Guard(guard))
    }

    /// Whether a batch verified as `verification` may be appended now (checked under the
    /// lock the append and every marker take, so nothing changes in between): its
    /// transaction open here at its epoch, or its guard still the producer's at that epoch.
    pub fn verified(&self, header: &BatchHeader, verification: Verification) -> bool {
        let (producer_id, epoch) = (header.producer_id, header.producer_epoch);
        match verification {
            Verification::Unchecked => true,
            Verification::Ongoing => self.ongoing_at(producer_id, epoch),
            Verification::Guard(guard) => {
                self.ongoing_at(producer_id, epoch)
                    || self
                        .verifications
                        .get(&producer_id)
                        .is_some_and(|e| guard != NO_GUARD && e.guard == guard && e.epoch == epoch)
            }
        }
    }

    /// Records a batch that is now in the log at `first_offset..=last_offset`.
    /// Control batches are not recorded here (their markers go through
    /// [`ProducerStates::record_marker`]).
    pub fn record(&mut self, header: &BatchHeader, first_offset: i64, last_offset: i64) {
        if !header.has_producer_id() || header.is_control() {
            return;
        }
        self.txns.on_batch(header, first_offset);
        if header.is_transactional() {
            // Its transaction is open here now, which is what later batches are checked
            // against; a guard handed out before is spent (Kafka clears the entry too).
            self.verifications.remove(&header.producer_id);
        }
        let entry = self.touch(header.producer_id, header.producer_epoch);
        entry.last_timestamp = header.max_timestamp;
        entry.batches.push_back(BatchMeta {
            first_sequence: header.base_sequence,
            last_sequence: header.last_sequence(),
            first_offset,
            last_offset,
        });
        while entry.batches.len() > BATCHES_RETAINED {
            entry.batches.pop_front();
        }
        self.evict_beyond_bound();
    }

    /// The producer's entry, created if new, moved to `epoch` if that is newer (a new
    /// epoch forgets the old one's batches), marked as just seen.
    fn touch(&mut self, producer_id: i64, epoch: i16) -> &mut ProducerEntry {
        self.clock = self.clock.wrapping_add(1);
        let clock = self.clock;
        let entry = self
            .by_id
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_seen: clock,
                last_timestamp: -1,
            });
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_seen = clock;
        entry
    }

    /// Kafka's checks of a COMMIT/ABORT marker before it is appended, in Kafka's order
    /// (`ProducerAppendInfo.appendEndTxnMarker`): the producer epoch against the producer's
    /// for the marker's `transaction_version` (INVALID_PRODUCER_EPOCH), then a coordinator
    /// epoch not older than its last marker's (TRANSACTION_COORDINATOR_FENCED).
    pub fn check_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        transaction_version: i16,
    ) -> Result<(), MarkerError> {
        let current = self.by_id.get(&producer_id).map(|entry| entry.epoch);
        self.txns
            .check_marker_epoch(producer_id, producer_epoch, current, transaction_version)
            .map_err(|refusal| MarkerError::InvalidProducerEpoch {
                producer_id,
                refusal,
            })?;
        self.txns
            .check_marker(producer_id, coordinator_epoch)
            .map_err(|refusal| MarkerError::CoordinatorFenced {
                producer_id,
                refusal,
            })
    }

    /// A marker now in the log at `offset`: the producer's transaction here ends (an ABORT
    /// of a transaction open here is returned, for the log's `.txnindex`). Its sequences are untouched; a newer epoch (transaction
    /// version 2 bumps it at every end) becomes the producer's.
    pub fn record_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        offset: i64,
        timestamp: i64,
    ) -> Option<strom_log::AbortedTxn> {
        let entry = self.touch(producer_id, producer_epoch);
        // Kafka's `appendEndTxnMarker` sets the producer's last timestamp too: a producer
        // is idle (for `producer.id.expiration.ms`) from its last batch or marker.
        entry.last_timestamp = entry.last_timestamp.max(timestamp);
        let aborted = self
            .txns
            .on_marker(producer_id, coordinator_epoch, commit, offset);
        // The transaction ended here: a verification under way was of it (or of an older
        // epoch), and its batch must not open a new transaction the coordinator never had
        // this partition in (a zombie's late batch). It is asked again.
        self.verifications.remove(&producer_id);
        self.evict_beyond_bound();
        aborted
    }

    /// `producer.id.expiration.ms` (Kafka's `removeExpiredProducers`): forgets every
    /// producer without an open transaction whose last batch or marker timestamp is
    /// `expiration_ms` or more before `now_ms`. An idempotent producer that writes again
    /// afterwards is accepted at any sequence as a new one (as Kafka accepts an unknown
    /// producer), so only its duplicate detection for batches older than this is lost.
    /// Returns how many were forgotten.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let txns = &self.txns;
        let expired: Vec<i64> = self
            .by_id
            .iter()
            .filter(|(id, e)| {
                !txns.has_ongoing(**id) && now_ms.saturating_sub(e.last_timestamp) >= expiration_ms
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            self.by_id.remove(id);
            self.txns.forget(*id);
        }
        // A verification whose batch never came (its producer gave up) is forgotten too.
        self.verifications
            .retain(|_, v| now_ms.saturating_sub(v.since_ms) < expiration_ms);
        expired.len()
    }

    /// Every remembered producer, for DescribeProducers.
    pub fn views(&self) -> Vec<ProducerView> {
        let mut views: Vec<ProducerView> = self
            .by_id
            .iter()
            .map(|(id, e)| ProducerView {
                producer_id: *id,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_sequence),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: self.txns.coordinator_epoch_of(*id),
                current_txn_start_offset: self.txns.ongoing_of(*id).unwrap_or(-1),
            })
            .collect();
        views.sort_by_key(|v| v.producer_id);
        views
    }

    /// The body of a producer snapshot (`docs/FORMATS.md`): producers, least recently seen
    /// first (id i64, epoch i16, last timestamp i64, batches u8, then per batch first and
    /// last sequence i32, first and last offset i64), then the transaction state
    /// ([`Transactions::encode`]). Big-endian; strom-log frames it with a CRC.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut producers: Vec<_> = self.by_id.iter().collect();
        producers.sort_by_key(|(_, e)| e.last_seen);
        let mut out = Vec::with_capacity(producers.len() * 64 + 64);
        out.extend_from_slice(&(producers.len() as u32).to_be_bytes());
        for (id, e) in producers {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.push(e.batches.len().min(BATCHES_RETAINED) as u8);
            for b in e.batches.iter().take(BATCHES_RETAINED) {
                out.extend_from_slice(&b.first_sequence.to_be_bytes());
                out.extend_from_slice(&b.last_sequence.to_be_bytes());
                out.extend_from_slice(&b.first_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        self.txns.encode(&mut out);
        out
    }

    /// Reads what [`ProducerStates::encode_snapshot`] wrote; any inconsistency is an error
    /// (the caller reports it and rebuilds from the log).
    pub fn decode_snapshot(body: &[u8]) -> Result<ProducerStates, String> {
        let mut reader = SnapshotReader::new(body);
        let mut states = ProducerStates::default();
        // The smallest entry: id, epoch, timestamp, batch count.
        for _ in 0..reader.count(19)? {
            let id = reader.i64()?;
            let epoch = reader.i16()?;
            let last_timestamp = reader.i64()?;
            let count = reader.count_u8()?;
            if count > BATCHES_RETAINED {
                return Err(format!("producer {id} holds {count} batches"));
            }
            let mut batches = VecDeque::with_capacity(count);
            for _ in 0..count {
                batches.push_back(BatchMeta {
                    first_sequence: reader.i32()?,
                    last_sequence: reader.i32()?,
                    first_offset: reader.i64()?,
                    last_offset: reader.i64()?,
                });
            }
            states.clock = states.clock.wrapping_add(1);
            states.by_id.insert(
                id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_seen: states.clock,
                    last_timestamp,
                },
            );
        }
        states.txns = Transactions::decode(&mut reader)?;
        if !reader.is_empty() {
            return Err("bytes after the snapshot body".into());
        }
        Ok(states)
    }

    /// Forgets the least recently seen producer beyond the bound; one with an open
    /// transaction is never forgotten (its first offset holds the last stable offset).
    fn evict_beyond_bound(&mut self) {
        if self.by_id.len() <= PRODUCERS_MAX {
            return;
        }
        let txns = &self.txns;
        if let Some(oldest) = self
            .by_id
            .iter()
            .filter(|(id, _)| !txns.has_ongoing(**id))
            .min_by_key(|(_, e)| e.last_seen)
            .map(|(id, _)| *id)
        {
            self.by_id.remove(&oldest);
            self.txns.forget(oldest);
        }
    }

    /// Producers remembered.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no producer is remembered.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn_header(producer_id: i64, epoch: i16, base_sequence: i32) -> BatchHeader {
        BatchHeader {
            // Kafka's transactional attribute bit.
            attributes: 0x10,
            ..header(producer_id, epoch, base_sequence, 1)
        }
    }

    #[test]
    fn a_transaction_is_verified_once_per_partition_and_a_stale_guard_lets_nothing_in() {
        let mut s = ProducerStates::default();
        // The first batch needs the coordinator: a guard, shared by a pipelined second one.
        let first = s.start_verification(7, 0, 0).unwrap();
        assert!(matches!(first, Verification::Guard(g) if g != NO_GUARD));
        assert_eq!(s.start_verification(7, 0, 1), Some(first));
        assert!(s.verified(&txn_header(7, 0, 0), first));
        s.record(&txn_header(7, 0, 0), 0, 0);
        // Open here now: later batches of the transaction skip the coordinator, and the
        // pipelined one with the spent guard is let in by the open transaction.
        assert_eq!(s.start_verification(7, 0, 2), Some(Verification::Ongoing));
        assert!(s.verified(&txn_header(7, 0, 1), first));
        assert!(s.verified(&txn_header(7, 0, 1), Verification::Ongoing));
        // The marker ends it: a batch checked as Ongoing before it is refused, and so is
        // one holding the spent guard (a zombie's late batch opens nothing).
        s.record_marker(7, 0, 0, true, 2, 3);
        assert!(!s.verified(&txn_header(7, 0, 2), Verification::Ongoing));
        assert!(!s.verified(&txn_header(7, 0, 2), first));
        // A guard handed out before the marker is cleared by it: the coordinator's answer
        // (about the transaction that just ended) cannot let the batch open another.
        let before = s.start_verification(7, 0, 4).unwrap();
        s.record_marker(7, 0, 0, false, 3, 5);
        assert!(!s.verified(&txn_header(7, 0, 2), before));
        // The next transaction gets a new guard.
        let next = s.start_verification(7, 0, 6).unwrap();
        assert!(
            matches!(next, Verification::Guard(g) if g != NO_GUARD && Verification::Guard(g) != before)
        );
        assert!(s.verified(&txn_header(7, 0, 2), next));
    }

    #[test]
    fn verification_follows_epochs_and_expires() {
        let mut s = ProducerStates::default();
        let old = s.start_verification(9, 3, 0).unwrap();
        // A bumped epoch (transaction version 2, or a new instance) replaces it: the old
        // epoch's guard no longer matches, and an older epoch than the one under way gets
        // a guard that never does.
        let bumped = s.start_verification(9, 4, 1).unwrap();
        assert_ne!(old, bumped);
        assert!(!s.verified(&txn_header(9, 3, 0), old));
        assert_eq!(
            s.start_verification(9, 3, 2),
            Some(Verification::Guard(NO_GUARD))
        );
        assert!(!s.verified(&txn_header(9, 3, 0), Verification::Guard(NO_GUARD)));
        assert!(s.verified(&txn_header(9, 4, 0), bumped));
        // A transaction open at epoch 4 does not vouch for a batch of epoch 5.
        s.record(&txn_header(9, 4, 0), 0, 0);
        assert!(!s.verified(&txn_header(9, 5, 0), Verification::Ongoing));
        assert!(matches!(
            s.start_verification(9, 5, 3),
            Some(Verification::Guard(_))
        ));
        // A verification whose batch never came is forgotten after the expiration.
        s.expire(1_000_000, 1_000);
        assert!(s.verifications.is_empty());
        // Plain batches are never checked.
        assert!(s.verified(&header(1, 0, 0, 1), Verification::Unchecked));
    }

    fn header(producer_id: i64, epoch: i16, base_sequence: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            records_count: records,
        }
    }

    #[test]
    fn sequences_duplicates_gaps_and_epochs() {
        let mut states = ProducerStates::default();
        let check = |states: &ProducerStates, h: BatchHeader| states.check(&h);
        // Unknown producers and plain batches are appended.
        assert_eq!(check(&states, header(-1, -1, -1, 3)), SequenceCheck::Append);
        assert_eq!(check(&states, header(7, 0, 0, 3)), SequenceCheck::Append);
        states.record(&header(7, 0, 0, 3), 10, 12);
        // The next sequence appends; the same one is a duplicate with its offsets.
        assert_eq!(check(&states, header(7, 0, 3, 2)), SequenceCheck::Append);
        assert_eq!(
            check(&states, header(7, 0, 0, 3)),
            SequenceCheck::Duplicate(BatchMeta {
                first_sequence: 0,
                last_sequence: 2,
                first_offset: 10,
                last_offset: 12
            })
        );
        // A gap and a sequence from before the window are out of order.
        assert_eq!(
            check(&states, header(7, 0, 5, 1)),
            SequenceCheck::OutOfOrder
        );
        assert_eq!(
            check(&states, header(7, 0, 1, 1)),
            SequenceCheck::OutOfOrder
        );
        // Epochs: older is stale, newer must restart at 0.
        assert_eq!(
            check(&states, header(7, -1, 3, 1)),
            SequenceCheck::StaleEpoch
        );
        assert_eq!(
            check(&states, header(7, 1, 3, 1)),
            SequenceCheck::OutOfOrder
        );
        assert_eq!(check(&states, header(7, 1, 0, 1)), SequenceCheck::Append);
        // Only the last five batches are remembered.
        for i in 0..6 {
            states.record(&header(8, 0, i, 1), 100 + i64::from(i), 100 + i64::from(i));
        }
        assert_eq!(
            check(&states, header(8, 0, 0, 1)),
            SequenceCheck::OutOfOrder
        );
        assert!(matches!(
            check(&states, header(8, 0, 1, 1)),
            SequenceCheck::Duplicate(_)
        ));
        // Sequences wrap at i32::MAX.
        assert!(in_sequence(i32::MAX, 0));
        assert_eq!(states.len(), 2);
    }

    #[test]
    fn snapshot_round_trips_and_refuses_damage() {
        let mut states = ProducerStates::default();
        for i in 0..7 {
            states.record(&header(8, 0, i, 1), 100 + i64::from(i), 100 + i64::from(i));
        }
        let mut txn = header(9, 2, 0, 2);
        txn.attributes = 0x10;
        states.record(&txn, 200, 201);
        states.record_marker(10, 1, 4, false, 202, 0);
        let body = states.encode_snapshot();
        let back = ProducerStates::decode_snapshot(&body).unwrap();
        assert_eq!(back.views(), states.views());
        assert_eq!(back.check(&header(8, 0, 7, 1)), SequenceCheck::Append);
        assert!(matches!(
            back.check(&header(8, 0, 6, 1)),
            SequenceCheck::Duplicate(_)
        ));
        assert_eq!(back.txns.ongoing_of(9), Some(200));
        assert_eq!(
            back.check_marker(10, 1, 3, 0),
            Err(MarkerError::CoordinatorFenced {
                producer_id: 10,
                refusal: MarkerRefusal::CoordinatorFenced { got: 3, current: 4 }
            })
        );
        assert!(matches!(
            back.check_marker(9, 1, 0, 0),
            Err(MarkerError::InvalidProducerEpoch { .. })
        ));
        for cut in 0..body.len() {
            assert!(
                ProducerStates::decode_snapshot(&body[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(ProducerStates::decode_snapshot(&longer).is_err());
    }

    #[test]
    fn markers_end_transactions_without_touching_sequences() {
        let mut states = ProducerStates::default();
        let mut txn = header(5, 0, 0, 2);
        txn.attributes = 0x10;
        states.record(&txn, 10, 11);
        assert_eq!(states.txns.last_stable_offset(12), 10);
        assert_eq!(states.check_marker(5, 0, 0, 0), Ok(()));
        states.record_marker(5, 0, 0, true, 12, 0);
        assert_eq!(states.txns.last_stable_offset(13), 13);
        // The next batch continues the sequence.
        let mut next = header(5, 0, 2, 1);
        next.attributes = 0x10;
        assert_eq!(states.check(&next), SequenceCheck::Append);
        let mut control = header(5, 0, -1, 1);
        control.attributes = 0x30;
        assert_eq!(states.check(&control), SequenceCheck::Append);
    }

    /// Transaction version 2: the marker must carry the epoch the coordinator bumped for
    /// this end; one at the data's epoch is a late marker while the transaction is open
    /// (INVALID_PRODUCER_EPOCH), and the retry of a written marker passes. Below version 2
    /// the data's epoch is what markers carry.
    #[test]
    fn transaction_version_2_markers_are_checked_against_the_bumped_epoch() {
        let mut states = ProducerStates::default();
        let mut txn = header(5, 3, 0, 1);
        txn.attributes = 0x10;
        states.record(&txn, 10, 10);
        let invalid = |got, current, transaction_version| {
            Err(MarkerError::InvalidProducerEpoch {
                producer_id: 5,
                refusal: MarkerRefusal::InvalidProducerEpoch {
                    got,
                    current,
                    transaction_version,
                },
            })
        };
        assert_eq!(states.check_marker(5, 3, 0, 1), Ok(()));
        assert_eq!(states.check_marker(5, 3, 0, 2), invalid(3, 3, 2));
        assert_eq!(states.check_marker(5, 2, 0, 2), invalid(2, 3, 2));
        assert_eq!(states.check_marker(5, 4, 0, 2), Ok(()));
        states.record_marker(5, 4, 0, false, 11, 0);
        // The marker's epoch became the producer's; its retry is accepted.
        assert_eq!(states.check_marker(5, 4, 0, 2), Ok(()));
        assert_eq!(states.check_marker(5, 3, 0, 0), invalid(3, 4, 0));
        // The epoch check comes before the coordinator epoch's, as in Kafka.
        assert_eq!(states.check_marker(5, 3, -5, 2), invalid(3, 4, 2));
    }

    #[test]
    fn idle_producers_expire_but_not_during_a_transaction() {
        let mut states = ProducerStates::default();
        let mut idle = header(1, 0, 0, 1);
        idle.max_timestamp = 1_000;
        states.record(&idle, 0, 0);
        let mut open = header(2, 0, 0, 1);
        open.attributes = 0x10;
        open.max_timestamp = 1_000;
        states.record(&open, 1, 1);
        // A transaction ended by a marker: idle from the marker's time.
        let mut ended = header(3, 0, 0, 1);
        ended.attributes = 0x10;
        ended.max_timestamp = 1_000;
        states.record(&ended, 2, 2);
        states.record_marker(3, 1, 0, true, 3, 5_000);
        assert_eq!(states.expire(1_999, 1_000), 0, "not yet idle long enough");
        assert_eq!(states.expire(2_000, 1_000), 1);
        let ids: Vec<i64> = states.views().iter().map(|v| v.producer_id).collect();
        assert!(
            !ids.contains(&1) && ids.contains(&2) && ids.contains(&3),
            "{ids:?}"
        );
        // The open transaction keeps its producer (its first offset holds the LSO).
        assert_eq!(states.expire(100_000, 1_000), 1);
        assert_eq!(states.txns.ongoing_of(2), Some(1));
        assert_eq!(states.views().len(), 1);
        // The forgotten producer writes again at its next sequence: accepted as new.
        let mut again = header(1, 0, 1, 1);
        again.max_timestamp = 100_000;
        assert_eq!(states.check(&again), SequenceCheck::Append);
    }
}
