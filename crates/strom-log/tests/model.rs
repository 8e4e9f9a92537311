//! Property test against a model (a Vec of batches): random appends, reads at random
//! offsets with random budgets, timestamp lookups, clean reopens and crashes.

mod common;

use common::{batch, open_sim, read_all};
use proptest::prelude::*;
use strom_log::fs::SimFs;
use strom_log::{AppendOrigin, Durability, Log, LogConfig};
use strom_records::BatchHeader;

#[derive(Clone, Debug)]
enum Op {
    Append {
        records: usize,
        value_bytes: usize,
        timestamp_ms: i64,
    },
    Read {
        offset_permille: u64,
        max_bytes: u64,
    },
    LookupTimestamp {
        timestamp_ms: i64,
    },
    Flush,
    Truncate {
        permille: u64,
    },
    DeleteRecords {
        permille: u64,
    },
    Reopen,
    Crash {
        seed: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..5, 0usize..450, 0i64..2000).prop_map(|(records, value_bytes, timestamp_ms)| Op::Append { records, value_bytes, timestamp_ms }),
        3 => (0u64..=1000, 1u64..5000).prop_map(|(offset_permille, max_bytes)| Op::Read { offset_permille, max_bytes }),
        2 => (0i64..2100).prop_map(|timestamp_ms| Op::LookupTimestamp { timestamp_ms }),
        1 => Just(Op::Flush),
        1 => (0u64..=1000).prop_map(|permille| Op::Truncate { permille }),
        1 => (0u64..=1000).prop_map(|permille| Op::DeleteRecords { permille }),
        1 => Just(Op::Reopen),
        1 => any::<u64>().prop_map(|seed| Op::Crash { seed }),
    ]
}

/// The model: every batch in the log, in order.
struct Model {
    batches: Vec<(BatchHeader, Vec<u8>)>,
    start: i64,
}

impl Model {
    fn end_offset(&self) -> i64 {
        self.batches.last().map_or(0, |(h, _)| h.next_offset())
    }

    /// Expected read: from the batch holding `offset`, whole batches within `max_bytes`
    /// (at least one).
    fn read(&self, offset: i64, max_bytes: u64) -> Vec<u8> {
        let Some(first) = self
            .batches
            .iter()
            .position(|(h, _)| h.last_offset() >= offset)
        else {
            return Vec::new();
        };
        let mut out = self.batches[first].1.clone();
        for (_, bytes) in &self.batches[first + 1..] {
            if (out.len() + bytes.len()) as u64 > max_bytes {
                break;
            }
            out.extend_from_slice(bytes);
        }
        out
    }

    /// The test batches give record i the timestamp base + i.
    fn lookup(&self, timestamp_ms: i64) -> Option<i64> {
        self.batches
            .iter()
            .find(|(h, _)| h.max_timestamp >= timestamp_ms && h.last_offset() >= self.start)
            .map(|(h, _)| {
                let delta = (timestamp_ms - h.base_timestamp)
                    .max(self.start - h.base_offset)
                    .max(0);
                h.base_offset + delta
            })
    }

    /// An offset `permille` of the way from the log start to the end.
    fn offset_at(&self, permille: u64) -> i64 {
        self.start + ((self.end_offset() - self.start).max(0) as u64 * permille / 1000) as i64
    }
}

fn config() -> LogConfig {
    LogConfig {
        durability: Durability::SyncOnCommit,
        ..LogConfig::test_min()
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut fs = SimFs::new();
    let mut log: Log = open_sim(&fs, config(), 0).unwrap();
    let mut model = Model {
        batches: Vec::new(),
        start: 0,
    };
    for op in ops {
        match op {
            Op::Append {
                records,
                value_bytes,
                timestamp_ms,
            } => {
                let mut b = batch(records, value_bytes, timestamp_ms);
                let info = log.append(&mut b, AppendOrigin::Client, 0).unwrap();
                prop_assert_eq!(info.first_offset, model.end_offset());
                model.batches.push((BatchHeader::parse(&b).unwrap(), b));
            }
            Op::Read {
                offset_permille,
                max_bytes,
            } => {
                let offset = model.offset_at(offset_permille);
                let info = log.read(offset, max_bytes, i64::MAX).unwrap();
                let got = match info.range {
                    Some(range) => range.read_bytes().unwrap(),
                    None => Vec::new(),
                };
                // A read stays within one segment, so it may return fewer batches than the
                // model: it must be a prefix of the model's answer, with at least one batch.
                let expected = model.read(offset, max_bytes);
                prop_assert!(expected.starts_with(&got), "read at {} differs", offset);
                prop_assert_eq!(got.is_empty(), expected.is_empty());
            }
            Op::LookupTimestamp { timestamp_ms } => {
                let got = log
                    .offset_for_timestamp(timestamp_ms)
                    .unwrap()
                    .map(|r| r.offset);
                prop_assert_eq!(got, model.lookup(timestamp_ms), "lookup {}", timestamp_ms);
            }
            Op::Flush => log.flush().unwrap(),
            Op::Truncate { permille } => {
                let offset = model.offset_at(permille);
                let report = log.truncate_to(offset, 0).unwrap();
                model.batches.retain(|(h, _)| h.last_offset() < offset);
                model.start = model.start.min(model.end_offset());
                prop_assert_eq!(report.log_end_offset, model.end_offset());
            }
            Op::DeleteRecords { permille } => {
                let offset = model.offset_at(permille);
                log.set_high_watermark(model.end_offset());
                let start = log.delete_records_before(offset, 0).unwrap();
                model.start = model.start.max(offset);
                prop_assert_eq!(start, model.start);
            }
            Op::Reopen => {
                log.close().unwrap();
                log = open_sim(&fs, config(), 0).unwrap();
                prop_assert!(log.open_report().clean);
            }
            Op::Crash { seed } => {
                let durable = log.durable_offset();
                fs = fs.crash(seed);
                log = open_sim(&fs, config(), 0).unwrap();
                let end = log.log_end_offset();
                prop_assert!(end >= durable, "lost durable data");
                // Unsynced batches may survive or not; the log keeps a prefix of them.
                let kept = model
                    .batches
                    .iter()
                    .take_while(|(h, _)| h.next_offset() <= end)
                    .count();
                model.batches.truncate(kept);
                prop_assert_eq!(model.end_offset(), end);
            }
        }
        prop_assert_eq!(log.log_end_offset(), model.end_offset());
        prop_assert_eq!(log.log_start_offset(), model.start);
    }
    prop_assert_eq!(log.log_start_offset(), model.start);
    let all: Vec<Vec<u8>> = read_all(&log).into_iter().map(|(_, b)| b).collect();
    let expected: Vec<Vec<u8>> = model
        .batches
        .iter()
        .filter(|(h, _)| h.last_offset() >= model.start)
        .map(|(_, b)| b.clone())
        .collect();
    prop_assert_eq!(all, expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..100)) {
        run(ops)?;
    }
}

#[test]
fn delete_records_survives_a_crash() {
    let ops = vec![
        Op::Append {
            records: 1,
            value_bytes: 0,
            timestamp_ms: 0,
        },
        Op::Append {
            records: 2,
            value_bytes: 0,
            timestamp_ms: 0,
        },
        Op::DeleteRecords { permille: 667 },
        Op::Crash {
            seed: 7686340249706134806,
        },
        Op::Append {
            records: 1,
            value_bytes: 6,
            timestamp_ms: 1793,
        },
        Op::DeleteRecords { permille: 734 },
    ];
    run(ops).unwrap();
}
