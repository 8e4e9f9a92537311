//! Unit and property tests of the share-partition state machine.
// Compiled only under #[cfg(test)] (declared so in partition.rs): unwrapping is fine here.

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeSet, HashMap};

fn config(lock_ms: u64, limit: u16, locks: usize) -> PartitionConfig {
    PartitionConfig {
        lock_duration_ms: lock_ms,
        delivery_count_limit: limit,
        record_locks_max: locks,
    }
}

fn ack(first: i64, last: i64, ack: AckType) -> AckBatch {
    AckBatch {
        first_offset: first,
        last_offset: last,
        ack_types: vec![ack],
    }
}

fn range(first: i64, last: i64, delivery_count: u16) -> AcquiredRange {
    AcquiredRange {
        first_offset: first,
        last_offset: last,
        delivery_count,
    }
}

#[test]
fn acquire_accept_advances_the_start_offset() {
    let mut p = SharePartition::new(0, config(1000, 5, 100));
    assert_eq!(p.fetch_offset(), Some(0));
    let got = p.acquire("a", &[(0, 9)], 100, 0);
    assert_eq!(got, vec![range(0, 9, 1)]);
    assert_eq!(p.end_offset(), 9);
    assert_eq!(p.fetch_offset(), Some(10));
    p.acknowledge("a", &[ack(0, 4, AckType::Accept)]).unwrap();
    assert_eq!(p.start_offset(), 5);
    assert_eq!(p.in_flight_count(), 5);
    p.acknowledge("a", &[ack(5, 9, AckType::Accept)]).unwrap();
    assert_eq!(p.start_offset(), 10);
    assert_eq!(p.in_flight_count(), 0);
}

#[test]
fn acknowledge_by_another_member_or_twice_is_invalid_record_state_and_changes_nothing() {
    let mut p = SharePartition::new(0, config(1000, 5, 100));
    p.acquire("a", &[(0, 3)], 100, 0);
    let err = p
        .acknowledge("b", &[ack(0, 0, AckType::Accept)])
        .unwrap_err();
    assert!(matches!(
        err,
        PartitionError::InvalidRecordState { offset: 0, .. }
    ));
    // All or nothing: the valid first batch is not applied when the second is invalid.
    p.acquire("b", &[(4, 5)], 100, 0);
    let before = p.state_batches();
    let err = p
        .acknowledge(
            "a",
            &[ack(0, 1, AckType::Accept), ack(3, 4, AckType::Accept)],
        )
        .unwrap_err();
    assert!(matches!(
        err,
        PartitionError::InvalidRecordState { offset: 4, .. }
    ));
    assert_eq!(p.state_batches(), before);
    p.acknowledge("a", &[ack(0, 1, AckType::Accept)]).unwrap();
    p.acknowledge("a", &[ack(3, 3, AckType::Accept)]).unwrap();
    let err = p
        .acknowledge("a", &[ack(3, 3, AckType::Accept)])
        .unwrap_err();
    assert!(matches!(
        err,
        PartitionError::InvalidRecordState { offset: 3, .. }
    ));
    // Below the start offset (2) it is no longer in flight: refused as Kafka's ("not
    // found in the cache"), and nothing changes.
    let changes = p.changes();
    assert!(matches!(
        p.acknowledge("a", &[ack(1, 1, AckType::Accept)]),
        Err(PartitionError::InvalidRecordState { offset: 1, .. })
    ));
    assert_eq!(p.changes(), changes);
}

#[test]
fn malformed_ack_batches_are_refused() {
    let mut p = SharePartition::new(0, config(1000, 5, 100));
    p.acquire("a", &[(0, 3)], 100, 0);
    for bad in [
        AckBatch {
            first_offset: 3,
            last_offset: 1,
            ack_types: vec![AckType::Accept],
        },
        AckBatch {
            first_offset: 0,
            last_offset: 3,
            ack_types: vec![],
        },
        AckBatch {
            first_offset: 0,
            last_offset: 3,
            ack_types: vec![AckType::Accept, AckType::Reject],
        },
    ] {
        assert!(matches!(
            p.acknowledge("a", &[bad]),
            Err(PartitionError::InvalidAckBatch { .. })
        ));
    }
    // A huge range is not walked: past the last record in flight, it is refused at once
    // (Kafka's "past acquired records"), and nothing changes.
    assert!(matches!(
        p.acknowledge("a", &[ack(0, i64::MAX, AckType::Accept)]),
        Err(PartitionError::InvalidAckBatch { .. })
    ));
    assert_eq!(p.in_flight_count(), 4);
    p.acknowledge("a", &[ack(0, 3, AckType::Accept)]).unwrap();
    assert_eq!((p.start_offset(), p.in_flight_count()), (4, 0));
    // One type per offset of a huge range cannot be sent; a mismatch is refused.
    assert!(matches!(
        p.acknowledge(
            "a",
            &[AckBatch {
                first_offset: 0,
                last_offset: i64::MAX,
                ack_types: vec![AckType::Accept, AckType::Accept],
            }]
        ),
        Err(PartitionError::InvalidAckBatch { .. })
    ));
}

/// Kafka's `SharePartition.acknowledge` with a range that only partly covers the records
/// in flight: the records it covers are acknowledged (each must be acquired by the member),
/// the offsets below the start offset are passed over when the range straddles it; past
/// the last record in flight, or wholly below the start offset, it is refused.
#[test]
fn partially_overlapping_ranges_acknowledge_the_records_in_flight() {
    let mut p = SharePartition::new(0, config(1000, 5, 100));
    p.acquire("a", &[(0, 9)], 100, 0);
    p.acknowledge("a", &[ack(0, 4, AckType::Accept)]).unwrap();
    assert_eq!(p.start_offset(), 5);
    // Past the last record in flight: Kafka's INVALID_REQUEST, and nothing changes.
    let before = p.state_batches();
    assert!(matches!(
        p.acknowledge("a", &[ack(3, 12, AckType::Accept)]),
        Err(PartitionError::InvalidAckBatch { .. })
    ));
    assert_eq!(p.state_batches(), before);
    // 3..=4 are done already: a range straddling the start offset acknowledges 5..=9.
    p.acknowledge("a", &[ack(3, 9, AckType::Accept)]).unwrap();
    assert_eq!((p.start_offset(), p.in_flight_count()), (10, 0));
    // Wholly below the start offset: no longer in flight (Kafka's "not found in the cache").
    assert!(matches!(
        p.acknowledge("a", &[ack(0, 4, AckType::Accept)]),
        Err(PartitionError::InvalidRecordState { .. })
    ));

    // Per-offset types over a range that starts below the start offset: each in-flight
    // offset takes its own type.
    p.acquire("a", &[(10, 13)], 100, 0);
    p.acknowledge(
        "a",
        &[AckBatch {
            first_offset: 8,
            last_offset: 13,
            ack_types: vec![
                AckType::Accept, // 8: done already
                AckType::Accept, // 9: done already
                AckType::Release,
                AckType::Accept,
                AckType::Reject,
                AckType::Accept,
            ],
        }],
    )
    .unwrap();
    assert_eq!(p.record(10).map(|r| r.0), Some(RecordState::Available));
    assert_eq!(p.record(11).map(|r| r.0), Some(RecordState::Acknowledged));
    assert_eq!(p.record(12).map(|r| r.0), Some(RecordState::Archived));
    assert_eq!(p.record(13).map(|r| r.0), Some(RecordState::Acknowledged));
    assert_eq!(p.record(14), None);

    // A range that covers an in-flight record another member holds is refused whole.
    p.acquire("b", &[(10, 10)], 100, 0);
    let before = p.state_batches();
    assert!(matches!(
        p.acknowledge("a", &[ack(9, 13, AckType::Accept)]),
        Err(PartitionError::InvalidRecordState { offset: 10, .. })
    ));
    assert_eq!(p.state_batches(), before);
}

/// Ranges that cover no record in flight: past the last one or in a gap between batches is
/// Kafka's INVALID_REQUEST ("batch record not found"); nothing in flight at all, or wholly
/// below the start offset (done already), is INVALID_RECORD_STATE.
#[test]
fn ranges_without_records_in_flight_get_kafkas_errors() {
    let mut p = SharePartition::new(0, config(1000, 5, 100));
    assert!(matches!(
        p.acknowledge("a", &[ack(0, 3, AckType::Accept)]),
        Err(PartitionError::InvalidRecordState { offset: 0, .. })
    ));
    // The log holds 0..=2 and 10..=11.
    p.acquire("a", &[(0, 2), (10, 11)], 100, 0);
    let before = p.state_batches();
    assert!(matches!(
        p.acknowledge("a", &[ack(12, 20, AckType::Accept)]),
        Err(PartitionError::InvalidAckBatch { .. })
    ));
    assert!(matches!(
        p.acknowledge("a", &[ack(4, 8, AckType::Gap)]),
        Err(PartitionError::InvalidAckBatch { .. })
    ));
    assert_eq!(p.state_batches(), before);
    // A range spanning the gap acknowledges the records on both sides.
    p.acknowledge("a", &[ack(1, 10, AckType::Accept)]).unwrap();
    assert_eq!(p.start_offset(), 0);
    p.acknowledge(
        "a",
        &[ack(0, 0, AckType::Accept), ack(11, 11, AckType::Accept)],
    )
    .unwrap();
    assert_eq!((p.start_offset(), p.in_flight_count()), (12, 0));
    assert!(matches!(
        p.acknowledge("a", &[ack(0, 11, AckType::Accept)]),
        Err(PartitionError::InvalidRecordState { offset: 0, .. })
    ));
}

/// Batches of one request apply in order: a record two of them name is no longer acquired
/// for the second (INVALID_RECORD_STATE, as Kafka's), and the first is undone with it.
#[test]
fn a_record_named_twice_in_one_request_is_refused_and_nothing_changes() {
    let mut p = SharePartition::new(0, config(1000, 5, 100));
    p.acquire("a", &[(0, 5)], 100, 0);
    let before = p.state_batches();
    let changes = p.changes();
    assert!(matches!(
        p.acknowledge(
            "a",
            &[ack(0, 3, AckType::Release), ack(3, 5, AckType::Accept)]
        ),
        Err(PartitionError::InvalidRecordState { offset: 3, .. })
    ));
    assert_eq!(p.state_batches(), before);
    assert_eq!(p.changes(), changes);
    for offset in 0..=5 {
        assert_eq!(
            p.record(offset).map(|r| (r.0, r.2)),
            Some((RecordState::Acquired, Some("a")))
        );
    }
}

#[test]
fn per_offset_ack_types_apply_to_each_offset() {
    let mut p = SharePartition::new(0, config(1000, 5, 100));
    p.acquire("a", &[(0, 3)], 100, 0);
    p.acknowledge(
        "a",
        &[AckBatch {
            first_offset: 0,
            last_offset: 3,
            ack_types: vec![
                AckType::Accept,
                AckType::Release,
                AckType::Reject,
                AckType::Gap,
            ],
        }],
    )
    .unwrap();
    assert_eq!(p.start_offset(), 1);
    assert_eq!(p.record(1).map(|r| r.0), Some(RecordState::Available));
    assert_eq!(p.record(2).map(|r| r.0), Some(RecordState::Archived));
    assert_eq!(p.record(3).map(|r| r.0), Some(RecordState::Archived));
    // The released record is delivered again, with delivery count 2.
    assert_eq!(p.fetch_offset(), Some(1));
    assert_eq!(p.acquire("b", &[(0, 3)], 100, 10), vec![range(1, 1, 2)]);
}

#[test]
fn release_and_expiry_archive_at_the_delivery_count_limit() {
    let mut p = SharePartition::new(0, config(100, 3, 100));
    let mut now = 0;
    for delivery in 1..=3u16 {
        assert_eq!(
            p.acquire("a", &[(0, 0)], 10, now),
            vec![range(0, 0, delivery)]
        );
        if delivery == 2 {
            p.acknowledge("a", &[ack(0, 0, AckType::Release)]).unwrap();
        } else {
            assert_eq!(
                p.expire_locks(now + 99),
                0,
                "the lock holds until its deadline"
            );
            now += 100;
            assert_eq!(p.expire_locks(now), 1);
        }
    }
    // Third delivery expired at the limit (3): archived, the SPSO moves past it.
    assert_eq!(p.start_offset(), 1);
    assert!(p.acquire("a", &[(0, 0)], 10, now).is_empty());
}

#[test]
fn reject_archives_at_once() {
    let mut p = SharePartition::new(5, config(100, 5, 100));
    assert_eq!(p.acquire("a", &[(0, 7)], 10, 0), vec![range(5, 7, 1)]);
    p.acknowledge("a", &[ack(5, 7, AckType::Reject)]).unwrap();
    assert_eq!(p.start_offset(), 8);
}

#[test]
fn two_members_get_disjoint_records_and_locks_expire_to_the_other() {
    let mut p = SharePartition::new(0, config(100, 5, 100));
    assert_eq!(p.acquire("a", &[(0, 9)], 4, 0), vec![range(0, 3, 1)]);
    assert_eq!(p.fetch_offset(), Some(4));
    assert_eq!(p.acquire("b", &[(4, 9)], 100, 0), vec![range(4, 9, 1)]);
    assert_eq!(p.fetch_offset(), Some(10));
    assert!(
        p.acquire("b", &[(0, 9)], 100, 50).is_empty(),
        "a's locks hold"
    );
    assert_eq!(p.next_lock_deadline_ms(), Some(100));
    p.expire_locks(100);
    assert_eq!(p.acquire("b", &[(0, 3)], 100, 100), vec![range(0, 3, 2)]);
    assert!(matches!(
        p.acknowledge("a", &[ack(0, 0, AckType::Accept)]),
        Err(PartitionError::InvalidRecordState { .. })
    ));
}

#[test]
fn the_lock_bound_limits_records_in_flight() {
    let mut p = SharePartition::new(0, config(100, 5, 4));
    assert_eq!(p.acquire("a", &[(0, 99)], 100, 0), vec![range(0, 3, 1)]);
    assert_eq!(p.fetch_offset(), None);
    assert!(p.acquire("b", &[(0, 99)], 100, 0).is_empty());
    p.acknowledge("a", &[ack(0, 1, AckType::Accept)]).unwrap();
    assert_eq!(p.fetch_offset(), Some(4));
    assert_eq!(p.acquire("b", &[(4, 99)], 100, 0), vec![range(4, 5, 1)]);
}

#[test]
fn session_close_releases_only_that_members_records() {
    let mut p = SharePartition::new(0, config(100, 5, 100));
    p.acquire("a", &[(0, 4)], 5, 0);
    p.acquire("b", &[(5, 9)], 5, 0);
    assert_eq!(p.release_member("a"), 5);
    assert_eq!(p.record(0).map(|r| r.0), Some(RecordState::Available));
    assert_eq!(
        p.record(5).map(|r| (r.0, r.2)),
        Some((RecordState::Acquired, Some("b")))
    );
}

#[test]
fn gaps_between_log_ranges_are_skipped_and_count_as_done() {
    let mut p = SharePartition::new(0, config(100, 5, 100));
    // The log holds 0..=2 and 10..=11 (3..=9 compacted away).
    assert_eq!(
        p.acquire("a", &[(0, 2), (10, 11)], 100, 0),
        vec![range(0, 2, 1), range(10, 11, 1)]
    );
    assert_eq!(p.in_flight_count(), 5);
    p.acknowledge("a", &[ack(0, 2, AckType::Accept)]).unwrap();
    assert_eq!(p.start_offset(), 10);
    // A GAP acknowledgement for an offset the log never held is accepted.
    p.acknowledge("a", &[ack(10, 11, AckType::Accept)]).unwrap();
    assert_eq!(p.start_offset(), 12);
}

#[test]
fn log_start_moving_up_drops_records_below_it() {
    let mut p = SharePartition::new(0, config(100, 5, 100));
    p.acquire("a", &[(0, 9)], 100, 0);
    p.advance_to_log_start(6);
    assert_eq!(p.start_offset(), 6);
    assert_eq!(p.in_flight_count(), 4);
    p.advance_to_log_start(20);
    assert_eq!((p.start_offset(), p.next_offset()), (20, 20));
}

#[test]
fn state_batches_round_trip_through_restore() {
    let mut p = SharePartition::new(0, config(100, 3, 100));
    p.acquire("a", &[(0, 9)], 100, 0);
    p.acknowledge(
        "a",
        &[
            ack(1, 2, AckType::Accept),
            ack(3, 3, AckType::Reject),
            ack(4, 4, AckType::Release),
        ],
    )
    .unwrap();
    let batches = p.state_batches();
    assert_eq!(
        batches,
        vec![
            StateBatch {
                first_offset: 0,
                last_offset: 0,
                state: RecordState::Available,
                delivery_count: 1
            },
            StateBatch {
                first_offset: 1,
                last_offset: 2,
                state: RecordState::Acknowledged,
                delivery_count: 1
            },
            StateBatch {
                first_offset: 3,
                last_offset: 3,
                state: RecordState::Archived,
                delivery_count: 1
            },
            StateBatch {
                first_offset: 4,
                last_offset: 9,
                state: RecordState::Available,
                delivery_count: 1
            },
        ]
    );
    let mut q = SharePartition::restore(p.start_offset(), &batches, p.config()).unwrap();
    assert_eq!(q.state_batches(), batches);
    assert_eq!(q.next_offset(), 10);
    // Every non-done record comes back AVAILABLE with its delivery count; the acknowledged
    // ones are never delivered again.
    let got = q.acquire("b", &[(0, 20)], 100, 0);
    assert_eq!(got, vec![range(0, 0, 2), range(4, 9, 2), range(10, 20, 1)]);
}

#[test]
fn restore_archives_at_the_limit_and_refuses_nonsense() {
    let cfg = config(100, 3, 100);
    let batches = [StateBatch {
        first_offset: 0,
        last_offset: 1,
        state: RecordState::Acquired,
        delivery_count: 3,
    }];
    let p = SharePartition::restore(0, &batches, cfg).unwrap();
    assert_eq!(p.start_offset(), 2);
    for bad in [
        StateBatch {
            first_offset: 5,
            last_offset: 4,
            state: RecordState::Available,
            delivery_count: 1,
        },
        StateBatch {
            first_offset: 0,
            last_offset: i64::MAX,
            state: RecordState::Available,
            delivery_count: 1,
        },
    ] {
        assert!(matches!(
            SharePartition::restore(0, &[bad], cfg),
            Err(PartitionError::InvalidPersistedState(_))
        ));
    }
    assert!(SharePartition::restore(-1, &[], cfg).is_err());
    let run = |first: i64, last: i64, state: RecordState| StateBatch {
        first_offset: first,
        last_offset: last,
        state,
        delivery_count: 1,
    };
    // Sparse state (gaps of compacted or aborted offsets between batches) restores
    // whatever the span: the bound is on the records rebuilt.
    let sparse: Vec<StateBatch> = (0..10)
        .map(|i| run(i * 1_000_000, i * 1_000_000 + 9, RecordState::Acknowledged))
        .chain([run(20_000_000, 20_000_000, RecordState::Available)])
        .collect();
    let p = SharePartition::restore(5, &sparse, cfg).unwrap();
    assert_eq!(p.next_offset(), 20_000_001);
    // More records than the bound (4 x record_locks_max) in total are refused.
    let dense: Vec<StateBatch> = (0..5)
        .map(|i| run(i * 1_000, i * 1_000 + 99, RecordState::Available))
        .collect();
    assert!(matches!(
        SharePartition::restore(0, &dense, cfg),
        Err(PartitionError::InvalidPersistedState(_))
    ));
}

// ---- property test against a model -------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// Member (0..3) fetches up to n records.
    Fetch(usize, usize),
    /// Member acknowledges the k-th range it holds (modulo) with a type.
    Ack(usize, usize, u8),
    /// Time passes.
    Tick(u64),
    /// Member's session closes.
    Close(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 1..8usize).prop_map(|(m, n)| Op::Fetch(m, n)),
        4 => (0..3usize, 0..8usize, 0..4u8).prop_map(|(m, k, t)| Op::Ack(m, k, t)),
        2 => (1..80u64).prop_map(Op::Tick),
        1 => (0..3usize).prop_map(Op::Close),
    ]
}

const MEMBERS: [&str; 3] = ["m0", "m1", "m2"];

/// The log: offsets `0..len` with some absent (compacted away), read as ranges of present
/// offsets from `from`, at most `read_max` offsets, as a broker's log read would.
fn log_ranges(present: &BTreeSet<i64>, from: i64, read_max: usize) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &offset in present.range(from..).take(read_max) {
        match out.last_mut() {
            Some(last) if last.1 + 1 == offset => last.1 = offset,
            _ => out.push((offset, offset)),
        }
    }
    out
}

struct Model {
    /// How often each offset was handed out by `acquire`.
    deliveries: HashMap<i64, u16>,
    /// Current lock per offset: (member, deadline), from acquire results.
    holders: HashMap<i64, (usize, u64)>,
    /// Offsets acknowledged ACCEPT (must never be delivered again).
    accepted: BTreeSet<i64>,
    /// Offsets that are done for good (accepted, rejected, archived at the limit).
    done: BTreeSet<i64>,
}

fn run(ops: &[Op], present: &BTreeSet<i64>, cfg: PartitionConfig) -> Result<(), TestCaseError> {
    let mut p = SharePartition::new(0, cfg);
    let mut model = Model {
        deliveries: HashMap::new(),
        holders: HashMap::new(),
        accepted: BTreeSet::new(),
        done: BTreeSet::new(),
    };
    let mut now = 0u64;
    let mut last_start = p.start_offset();
    let limit = cfg.delivery_count_limit;
    let step = |p: &mut SharePartition, model: &mut Model, op: &Op, now: &mut u64| {
        match *op {
            Op::Fetch(m, n) => {
                let Some(from) = p.fetch_offset() else {
                    return Ok(());
                };
                let got = p.acquire(MEMBERS[m], &log_ranges(present, from, 16), n, *now);
                let count: i64 = got.iter().map(|r| r.last_offset - r.first_offset + 1).sum();
                prop_assert!(count as usize <= n);
                for r in got {
                    for offset in r.first_offset..=r.last_offset {
                        prop_assert!(present.contains(&offset), "acquired absent {offset}");
                        prop_assert!(
                            !model.accepted.contains(&offset),
                            "redelivered accepted {offset}"
                        );
                        prop_assert!(!model.done.contains(&offset), "redelivered done {offset}");
                        if let Some(&(holder, deadline)) = model.holders.get(&offset) {
                            prop_assert!(
                                deadline <= *now,
                                "{offset} acquired by m{m} while m{holder} holds it"
                            );
                        }
                        let d = model.deliveries.entry(offset).or_insert(0);
                        *d += 1;
                        prop_assert_eq!(r.delivery_count, *d, "delivery count of {}", offset);
                        prop_assert!(*d <= limit);
                        model
                            .holders
                            .insert(offset, (m, *now + cfg.lock_duration_ms));
                    }
                }
            }
            Op::Ack(m, k, t) => {
                let mut held: Vec<i64> = model
                    .holders
                    .iter()
                    .filter(|(_, &(h, deadline))| h == m && deadline > *now)
                    .map(|(o, _)| *o)
                    .collect();
                held.sort();
                if held.is_empty() {
                    // Acknowledging what one does not hold must fail.
                    let offset = (k as i64) % 40;
                    let owned = p
                        .record(offset)
                        .is_some_and(|r| r.0 == RecordState::Acquired && r.2 == Some(MEMBERS[m]));
                    if !owned {
                        let before = p.state_batches();
                        let acked =
                            p.acknowledge(MEMBERS[m], &[ack(offset, offset, AckType::Accept)]);
                        // Below the start offset it is no longer in flight: refused, as Kafka.
                        prop_assert!(acked.is_err());
                        prop_assert_eq!(p.state_batches(), before);
                    }
                    return Ok(());
                }
                // Expired-but-not-yet-swept locks are still held by the machine (expiry runs
                // on Tick), so only acknowledge live ones.
                let offset = held[k % held.len()];
                let kind = AckType::from_wire(t as i8).unwrap_or(AckType::Accept);
                p.acknowledge(MEMBERS[m], &[ack(offset, offset, kind)])
                    .map_err(|e| TestCaseError::fail(format!("ack {offset}: {e}")))?;
                model.holders.remove(&offset);
                let d = model.deliveries.get(&offset).copied().unwrap_or(0);
                match kind {
                    AckType::Accept => {
                        model.accepted.insert(offset);
                        model.done.insert(offset);
                    }
                    AckType::Reject | AckType::Gap => {
                        model.done.insert(offset);
                    }
                    AckType::Release if d >= limit => {
                        model.done.insert(offset);
                    }
                    AckType::Release => {}
                }
            }
            Op::Tick(ms) => {
                *now += ms;
                p.expire_locks(*now);
                let expired: Vec<i64> = model
                    .holders
                    .iter()
                    .filter(|(_, &(_, deadline))| deadline <= *now)
                    .map(|(o, _)| *o)
                    .collect();
                for offset in expired {
                    model.holders.remove(&offset);
                    if model.deliveries.get(&offset).copied().unwrap_or(0) >= limit {
                        model.done.insert(offset);
                    }
                }
            }
            Op::Close(m) => {
                p.release_member(MEMBERS[m]);
                let released: Vec<i64> = model
                    .holders
                    .iter()
                    .filter(|(_, &(h, _))| h == m)
                    .map(|(o, _)| *o)
                    .collect();
                for offset in released {
                    model.holders.remove(&offset);
                    if model.deliveries.get(&offset).copied().unwrap_or(0) >= limit {
                        model.done.insert(offset);
                    }
                }
            }
        }
        Ok(())
    };
    for op in ops {
        step(&mut p, &mut model, op, &mut now)?;
        prop_assert!(p.start_offset() >= last_start, "SPSO moved backwards");
        last_start = p.start_offset();
        prop_assert!(p.in_flight_count() <= cfg.record_locks_max);
        // The broker evicts only share partitions without locks: none may be missed.
        prop_assert_eq!(p.has_acquired(), !model.holders.is_empty());
        // Everything below the SPSO is done (or absent from the log); nothing at or above
        // the first not-done offset is.
        for offset in present.range(..p.start_offset()) {
            prop_assert!(
                model.done.contains(offset),
                "SPSO passed {offset}, not done"
            );
        }
        for (offset, (state, count, _)) in
            (p.start_offset()..p.next_offset()).filter_map(|o| p.record(o).map(|r| (o, r)))
        {
            prop_assert_eq!(count, model.deliveries.get(&offset).copied().unwrap_or(0));
            prop_assert_eq!(
                state.is_terminal(),
                model.done.contains(&offset),
                "offset {}",
                offset
            );
        }
    }
    // Liveness: one member that fetches, lets time pass and accepts everything finishes the
    // log: every present record ends acknowledged or archived and the SPSO reaches the end.
    let end = present.iter().next_back().map_or(0, |o| o + 1);
    for _ in 0..(present.len() * (limit as usize + 2) + 10) {
        if p.start_offset() >= end {
            break;
        }
        now += cfg.lock_duration_ms;
        step(&mut p, &mut model, &Op::Tick(0), &mut now)?;
        step(&mut p, &mut model, &Op::Fetch(0, 8), &mut now)?;
        let mine: Vec<i64> = model
            .holders
            .iter()
            .filter(|(_, &(h, d))| h == 0 && d > now)
            .map(|(o, _)| *o)
            .collect();
        for offset in mine {
            p.acknowledge(MEMBERS[0], &[ack(offset, offset, AckType::Accept)])
                .map_err(|e| TestCaseError::fail(format!("final ack {offset}: {e}")))?;
            model.holders.remove(&offset);
            model.accepted.insert(offset);
            model.done.insert(offset);
        }
    }
    prop_assert!(
        p.start_offset() >= end,
        "SPSO {} never reached the log end {end}",
        p.start_offset()
    );
    for offset in present {
        prop_assert!(model.done.contains(offset), "{offset} never finished");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn share_partition_matches_the_model(
        ops in proptest::collection::vec(op(), 0..120),
        absent in proptest::collection::btree_set(0..40i64, 0..8),
        lock_ms in 10..120u64,
        limit in 2..5u16,
        locks in 3..20usize,
    ) {
        let present: BTreeSet<i64> = (0..40).filter(|o| !absent.contains(o)).collect();
        run(&ops, &present, config(lock_ms, limit, locks))?;
    }
}

#[test]
fn a_trailing_gap_is_passed_once_reached_and_never_acquired() {
    let mut p = SharePartition::new(0, config(1000, 5, 100));
    // Records 0-4, then an aborted batch and its marker (5-9) the read ends with.
    assert_eq!(p.acquire("a", &[(0, 4)], 100, 0), vec![range(0, 4, 1)]);
    p.skip_gap(5, 9);
    assert_eq!(p.fetch_offset(), Some(10));
    p.acknowledge("a", &[ack(0, 4, AckType::Accept)]).unwrap();
    assert_eq!(p.start_offset(), 10, "the start offset passes the gap too");
    // A gap the end offset has not reached (the budget stopped short) is left alone.
    let mut q = SharePartition::new(0, config(1000, 5, 100));
    assert_eq!(q.acquire("a", &[(0, 4)], 2, 0), vec![range(0, 1, 1)]);
    q.skip_gap(5, 9);
    assert_eq!(q.end_offset(), 1);
    assert_eq!(q.acquire("a", &[(2, 4)], 100, 0), vec![range(2, 4, 1)]);
    q.skip_gap(5, 9);
    assert_eq!(q.fetch_offset(), Some(10));
}
