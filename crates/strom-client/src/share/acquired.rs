//! A ShareFetch partition's answer turned into records: the record batches are decoded as
//! the consumer decodes a Fetch (`consumer::records::parse`), only records inside the
//! acquired ranges are handed out (each with its delivery count), and acquired offsets
//! without a record (control records, compacted or aborted ones, a cut tail) are
//! acknowledged as gaps, as Kafka's `ShareCompletedFetch` does. The work is bounded by the
//! bytes and ranges received, never by the offsets a range spans.

use bytes::Bytes;
use strom_records::DecodeLimits;
use uuid::Uuid;

use super::session::{AckRange, ACK_GAP};
use super::{AcknowledgeType, ShareRecord};
use crate::consumer::records::parse;
use crate::types::TopicPartition;

/// One acquired range: first and last offset and the delivery count of its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AcquiredRange {
    pub first: i64,
    pub last: i64,
    pub delivery_count: i16,
}

/// What one partition's acquired records become.
#[derive(Debug, Default)]
pub(crate) struct Acquired {
    pub records: Vec<ShareRecord>,
    /// Acknowledgements to send without the application: gaps, and releases when the
    /// records could not be decoded.
    pub acks: Vec<AckRange>,
}

pub(crate) fn acquired(
    tp: &TopicPartition,
    topic_id: Uuid,
    data: &Bytes,
    ranges: &[AcquiredRange],
    limits: &DecodeLimits,
) -> Acquired {
    let mut ranges: Vec<AcquiredRange> = ranges
        .iter()
        .copied()
        .filter(|r| r.first >= 0 && r.first <= r.last)
        .collect();
    ranges.sort_by_key(|r| r.first);
    let Some(first) = ranges.first().map(|r| r.first) else {
        return Acquired::default();
    };
    let parsed = match parse(tp, data, first, None, limits) {
        Ok(parsed) => parsed,
        Err(e) => {
            // Corrupt data is reported and given back for another delivery, never
            // accepted unseen.
            tracing::warn!(%tp, error = %e, "share fetch data does not decode; releasing the acquired records");
            let release = AcknowledgeType::Release.wire();
            return Acquired {
                records: Vec::new(),
                acks: ranges
                    .iter()
                    .map(|r| AckRange {
                        first: r.first,
                        last: r.last,
                        kind: release,
                    })
                    .collect(),
            };
        }
    };
    let mut out = Acquired::default();
    let mut records = parsed.records.into_iter().peekable();
    for range in &ranges {
        // The next offset of the range not yet covered by a record.
        let mut next = range.first;
        while let Some(r) = records.next_if(|r| r.offset <= range.last) {
            if r.offset < next {
                continue;
            }
            if r.offset > next {
                out.acks.push(gap(next, r.offset - 1));
            }
            next = r.offset.saturating_add(1);
            out.records.push(ShareRecord {
                record: r,
                delivery_count: range.delivery_count,
                topic_id,
            });
        }
        if next <= range.last {
            out.acks.push(gap(next, range.last));
        }
    }
    out
}

fn gap(first: i64, last: i64) -> AckRange {
    AckRange {
        first,
        last,
        kind: ACK_GAP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_records::{BatchBuilder, EndTransactionMarker};

    fn batch(base: i64, n: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(base, 1_000);
        for i in 0..n {
            b.append(1_000, None, Some(Bytes::from(format!("v{i}"))), Vec::new())
                .unwrap();
        }
        b.build().unwrap()
    }

    fn range(first: i64, last: i64, delivery_count: i16) -> AcquiredRange {
        AcquiredRange {
            first,
            last,
            delivery_count,
        }
    }

    fn offsets(a: &Acquired) -> Vec<(i64, i16)> {
        a.records
            .iter()
            .map(|r| (r.record.offset, r.delivery_count))
            .collect()
    }

    #[test]
    fn only_acquired_offsets_are_handed_out_with_their_delivery_counts() {
        let tp = TopicPartition::new("t", 0);
        let data = Bytes::from(batch(10, 6)); // offsets 10..=15
        let got = acquired(
            &tp,
            Uuid::nil(),
            &data,
            &[range(14, 15, 1), range(11, 12, 3)],
            &DecodeLimits::default(),
        );
        assert_eq!(offsets(&got), vec![(11, 3), (12, 3), (14, 1), (15, 1)]);
        assert!(got.acks.is_empty(), "{:?}", got.acks);
    }

    #[test]
    fn acquired_offsets_without_records_are_gaps_however_wide_the_range() {
        let tp = TopicPartition::new("t", 0);
        let mut data = batch(0, 2);
        let marker = EndTransactionMarker {
            commit: true,
            coordinator_epoch: 0,
        }
        .to_batch(2, 1_000, 9, 0)
        .unwrap();
        data.extend(marker);
        data.extend(batch(3, 1));
        let data = Bytes::from(data);
        let got = acquired(
            &tp,
            Uuid::nil(),
            &data,
            &[range(0, i64::MAX, 1)],
            &DecodeLimits::default(),
        );
        assert_eq!(offsets(&got), vec![(0, 1), (1, 1), (3, 1)]);
        assert_eq!(got.acks, vec![gap(2, 2), gap(4, i64::MAX)]);
    }

    #[test]
    fn undecodable_data_releases_the_acquired_records() {
        let tp = TopicPartition::new("t", 0);
        let mut data = batch(0, 3);
        let last = data.len() - 1;
        data[last] ^= 0xff; // breaks the CRC
        let got = acquired(
            &tp,
            Uuid::nil(),
            &Bytes::from(data),
            &[range(0, 2, 1), range(9, 3, 1)],
            &DecodeLimits::default(),
        );
        assert!(got.records.is_empty());
        assert_eq!(
            got.acks,
            vec![AckRange {
                first: 0,
                last: 2,
                kind: AcknowledgeType::Release.wire()
            }]
        );
    }
}
