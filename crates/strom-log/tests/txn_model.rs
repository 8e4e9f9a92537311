//! The partition's transaction state ([`strom_log::Transactions`]) and the log's
//! per-segment `.txnindex` against a brute-force model: random interleavings of plain,
//! transactional and marker batches from a few producers, with the high watermark moving,
//! must give the same last stable offset, and the log (its aborted transactions written to
//! the `.txnindex` files as `Transactions::on_marker` returns them, segments rolling every
//! few batches) the same aborted ranges for every fetch window as the model's list of every
//! aborted transaction (the in-memory list Strom kept before): while open, after a clean
//! reopen, and after a crash whose reopen rebuilds the untrusted indexes by replaying the
//! log from its start, as the broker does.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use strom_log::fs::SimFs;
use strom_log::{AbortedTxn, AppendOrigin, Log, LogConfig, Transactions};
use strom_records::{BatchBuilder, BatchHeader, EndTransactionMarker};

#[derive(Clone, Debug)]
enum Step {
    Plain,
    Data(i64),
    Marker(i64, bool),
    HighWatermark(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        Just(Step::Plain),
        (0..4i64).prop_map(Step::Data),
        (0..4i64, any::<bool>()).prop_map(|(p, c)| Step::Marker(p, c)),
        any::<u8>().prop_map(Step::HighWatermark),
    ]
}

fn header(producer_id: i64, transactional: bool) -> BatchHeader {
    BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes: if transactional { 0x10 } else { 0 },
        last_offset_delta: 0,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id,
        producer_epoch: 0,
        base_sequence: 0,
        records_count: 1,
    }
}

/// One transaction as the model sees it: producer, first offset, marker (offset, commit).
#[derive(Clone, Debug)]
struct ModelTxn {
    producer_id: i64,
    first: i64,
    marker: Option<(i64, bool)>,
}

/// The bytes of a batch for a step: a plain record, a transactional record of `producer`,
/// or its marker.
fn log_batch(producer_id: i64, transactional: bool, marker: Option<bool>) -> Vec<u8> {
    if let Some(commit) = marker {
        return EndTransactionMarker {
            commit,
            coordinator_epoch: 0,
        }
        .to_batch(0, 1_000, producer_id, 0)
        .unwrap();
    }
    let mut b = BatchBuilder::new(0, 1_000)
        .producer(producer_id, 0, 0)
        .transactional(transactional);
    b.append(1_000, None, Some(vec![1u8; 300].into()), Vec::new())
        .unwrap();
    b.build().unwrap()
}

fn config() -> LogConfig {
    LogConfig {
        // About four batches a segment.
        segment_bytes: 1_400,
        ..LogConfig::test_min()
    }
}

/// What the broker does after an open: replays the transaction state over the log from
/// its start (markers known by offset) and hands the log the aborted transactions from
/// the first untrusted segment on.
fn rebuild(log: &Log, markers: &BTreeMap<i64, (i64, bool)>) {
    let Some(from) = log.txn_index_rebuild_from() else {
        return;
    };
    let mut state = Transactions::default();
    let mut entries = Vec::new();
    log.for_each_batch_header(log.log_start_offset(), |header| {
        if header.is_control() {
            let (producer, commit) = markers[&header.base_offset];
            if let Some(a) = state.on_marker(producer, 0, commit, header.base_offset) {
                entries.push(a);
            }
        } else {
            state.on_batch(header, header.base_offset);
        }
    })
    .unwrap();
    log.rebuild_txn_index(from, &entries).unwrap();
    assert_eq!(log.txn_index_rebuild_from(), None);
}

fn check_windows(log: &Log, model: &[ModelTxn], end: i64) -> Result<(), TestCaseError> {
    for from in 0..=end {
        for to in from..=end {
            let expected: Vec<(i64, i64, i64)> = {
                let mut v: Vec<_> = model
                    .iter()
                    .filter_map(|t| match t.marker {
                        Some((m, false)) if m >= from && t.first < to => {
                            Some((m, t.producer_id, t.first))
                        }
                        _ => None,
                    })
                    .collect();
                v.sort();
                v.into_iter().map(|(m, p, f)| (p, f, m)).collect()
            };
            let got: Vec<(i64, i64, i64)> = log
                .aborted_between(from, to)
                .unwrap()
                .iter()
                .map(|a: &AbortedTxn| (a.producer_id, a.first_offset, a.last_offset))
                .collect();
            prop_assert_eq!(got, expected, "window {}..{}", from, to);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn lso_and_aborted_ranges_match_the_model(steps in proptest::collection::vec(step(), 1..80)) {
        let fs = SimFs::new();
        let log = common::open_sim(&fs, config(), 0).unwrap();
        let mut markers = BTreeMap::new();
        let mut state = Transactions::default();
        let mut model: Vec<ModelTxn> = Vec::new();
        let mut end = 0i64;
        let mut high_watermark = 0i64;
        for s in steps {
            let append = |producer: i64, transactional: bool, marker: Option<bool>| {
                let mut bytes = log_batch(producer, transactional, marker);
                let info = log.append(&mut bytes, AppendOrigin::Coordinator, 1_000).unwrap();
                assert_eq!(info.first_offset, end);
            };
            match s {
                Step::Plain => {
                    append(100, false, None);
                    state.on_batch(&header(100, false), end);
                    end += 1;
                }
                Step::Data(p) => {
                    append(p, true, None);
                    state.on_batch(&header(p, true), end);
                    if !model.iter().any(|t| t.producer_id == p && t.marker.is_none()) {
                        model.push(ModelTxn { producer_id: p, first: end, marker: None });
                    }
                    end += 1;
                }
                Step::Marker(p, commit) => {
                    append(p, true, Some(commit));
                    markers.insert(end, (p, commit));
                    let got = state.on_marker(p, 0, commit, end);
                    if let Some(a) = got {
                        log.append_txn_index(a).unwrap();
                    }
                    let open = model.iter_mut().find(|t| t.producer_id == p && t.marker.is_none());
                    match open {
                        Some(t) => {
                            t.marker = Some((end, commit));
                            prop_assert_eq!(got.is_some(), !commit);
                            if let Some(a) = got {
                                prop_assert_eq!((a.producer_id, a.first_offset, a.last_offset), (p, t.first, end));
                            }
                        }
                        None => prop_assert_eq!(got, None),
                    }
                    end += 1;
                }
                Step::HighWatermark(x) => {
                    // The high watermark only moves forward, never past the log end.
                    high_watermark = high_watermark.max(i64::from(x) % (end + 1)).min(end);
                }
            }
            let expected_lso = model
                .iter()
                .filter(|t| t.marker.is_none_or(|(offset, _)| offset >= high_watermark))
                .map(|t| t.first)
                .min()
                .map_or(high_watermark, |first| first.min(high_watermark));
            prop_assert_eq!(state.last_stable_offset(high_watermark), expected_lso);
        }
        prop_assert!(log.segment_count() > 1 || log.size_bytes() <= 1_400);
        check_windows(&log, &model, end)?;
        // A crash: whatever the unsynced pages kept, the reopen cuts what it cannot trust
        // and the replay rebuilds it.
        log.flush().unwrap();
        let crashed = fs.crash(7);
        let reopened = common::open_sim(&crashed, config(), 0).unwrap();
        rebuild(&reopened, &markers);
        check_windows(&reopened, &model, end)?;
        // A clean close and reopen trusts the files as they are.
        reopened.close().unwrap();
        let again = common::open_sim(&crashed, config(), 0).unwrap();
        prop_assert_eq!(again.txn_index_rebuild_from(), None);
        check_windows(&again, &model, end)?;
    }
}
