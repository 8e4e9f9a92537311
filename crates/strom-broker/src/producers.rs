//! Idempotent producer state of one partition: per producer id, its epoch and its last
//! five batches' sequence ranges and offsets (Kafka's `ProducerStateManager`). It answers a
//! retried batch with the offsets it first got, and refuses gaps in the sequence.
//!
//! The state is rebuilt from the tail of the log when a partition opens (no snapshot file):
//! the last `REBUILD_SEGMENTS` segments are scanned, which covers every producer that
//! wrote since the last few rolls. An older producer looks new and may restart anywhere.

use std::collections::{HashMap, VecDeque};

use strom_records::BatchHeader;

/// Batches remembered per producer (Kafka's `NUM_BATCHES_TO_RETAIN`, the client's
/// `max.in.flight.requests.per.connection` limit for idempotence).
const BATCHES_RETAINED: usize = 5;
/// Producers remembered per partition; the least recently seen is forgotten beyond it.
const PRODUCERS_MAX: usize = 100_000;
/// Segments scanned from the end of the log to rebuild the state on open.
pub const REBUILD_SEGMENTS: usize = 2;

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

/// The producer states of one partition.
#[derive(Debug, Default)]
pub struct ProducerStates {
    by_id: HashMap<i64, ProducerEntry>,
    clock: u64,
}

/// `first` follows `last` (sequences wrap at `i32::MAX` to 0, as in Kafka).
fn in_sequence(last: i32, first: i32) -> bool {
    first == last.wrapping_add(1) || (last == i32::MAX && first == 0)
}

impl ProducerStates {
    /// Checks a batch a producer sent against what its producer id wrote before.
    pub fn check(&self, header: &BatchHeader) -> SequenceCheck {
        if !header.has_producer_id() {
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

    /// Records a batch that is now in the log at `first_offset..=last_offset`.
    pub fn record(&mut self, header: &BatchHeader, first_offset: i64, last_offset: i64) {
        if !header.has_producer_id() {
            return;
        }
        self.clock = self.clock.wrapping_add(1);
        let clock = self.clock;
        let entry = self
            .by_id
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::new(),
                last_seen: clock,
            });
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.last_seen = clock;
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

    fn evict_beyond_bound(&mut self) {
        if self.by_id.len() <= PRODUCERS_MAX {
            return;
        }
        if let Some(oldest) = self
            .by_id
            .iter()
            .min_by_key(|(_, e)| e.last_seen)
            .map(|(id, _)| *id)
        {
            self.by_id.remove(&oldest);
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
}
