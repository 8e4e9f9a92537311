//! The partition's transaction state ([`strom_log::Transactions`]) against a brute-force
//! model: random interleavings of plain, transactional and marker batches from a few
//! producers, with the high watermark moving, must give the same last stable offset and the
//! same aborted ranges for every fetch window.

use proptest::prelude::*;
use strom_log::{AbortedTxn, Transactions};
use strom_records::BatchHeader;

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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn lso_and_aborted_ranges_match_the_model(steps in proptest::collection::vec(step(), 1..80)) {
        let mut state = Transactions::default();
        let mut model: Vec<ModelTxn> = Vec::new();
        let mut end = 0i64;
        let mut high_watermark = 0i64;
        for s in steps {
            match s {
                Step::Plain => {
                    state.on_batch(&header(100, false), end);
                    end += 1;
                }
                Step::Data(p) => {
                    state.on_batch(&header(p, true), end);
                    if !model.iter().any(|t| t.producer_id == p && t.marker.is_none()) {
                        model.push(ModelTxn { producer_id: p, first: end, marker: None });
                    }
                    end += 1;
                }
                Step::Marker(p, commit) => {
                    let got = state.on_marker(p, 0, commit, end);
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
        for from in 0..=end {
            for to in from..=end {
                let expected: Vec<(i64, i64, i64)> = {
                    let mut v: Vec<_> = model
                        .iter()
                        .filter_map(|t| match t.marker {
                            Some((m, false)) if m >= from && t.first < to => Some((m, t.producer_id, t.first)),
                            _ => None,
                        })
                        .collect();
                    v.sort();
                    v.into_iter().map(|(m, p, f)| (p, f, m)).collect()
                };
                let got: Vec<(i64, i64, i64)> = state
                    .aborted_between(from, to)
                    .iter()
                    .map(|a: &AbortedTxn| (a.producer_id, a.first_offset, a.last_offset))
                    .collect();
                prop_assert_eq!(got, expected);
            }
        }
    }
}
