//! The coordinator against a model: random interleavings of producers (current ones and
//! zombies holding an old epoch), marker completions, timeouts and coordinator failovers
//! (a new coordinator loaded from every record written so far, as after a leader change).
//! After each step the answers and the pending markers must be the model's.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use strom_txn::{Config, Coordinator, ErrorCode, MarkerJob, TopicPartition, TxnRecord};

const IDS: [&str; 3] = ["a", "b", "c"];
const TIMEOUT_MS: i32 = 1_000;

#[derive(Debug, Clone)]
enum Op {
    Init(usize),
    Add {
        id: usize,
        zombie: bool,
        partitions: Vec<i32>,
    },
    End {
        id: usize,
        zombie: bool,
        commit: bool,
    },
    Markers(usize),
    Advance(i64),
    Failover,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize).prop_map(Op::Init),
        (
            0..3usize,
            any::<bool>(),
            prop::collection::vec(0..4i32, 1..3)
        )
            .prop_map(|(id, zombie, partitions)| Op::Add {
                id,
                zombie,
                partitions
            }),
        (0..3usize, any::<bool>(), any::<bool>()).prop_map(|(id, zombie, commit)| Op::End {
            id,
            zombie,
            commit
        }),
        (0..8usize).prop_map(Op::Markers),
        (0..700i64).prop_map(Op::Advance),
        Just(Op::Failover),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Idle {
        completed: Option<bool>,
    },
    Ongoing {
        partitions: BTreeSet<i32>,
        start_ms: i64,
    },
    Preparing {
        commit: bool,
        partitions: BTreeSet<i32>,
    },
}

#[derive(Debug, Clone)]
struct ModelTxn {
    producer_id: i64,
    epoch: i16,
    phase: Phase,
}

#[derive(Default)]
struct Model {
    txns: BTreeMap<String, ModelTxn>,
    next_pid: i64,
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t".to_string(), p)
}

fn parts(job: &MarkerJob) -> BTreeSet<i32> {
    job.partitions.iter().map(|p| p.partition).collect()
}

fn expected_jobs(model: &Model) -> BTreeSet<(String, i64, i16, bool, BTreeSet<i32>)> {
    model
        .txns
        .iter()
        .filter_map(|(id, t)| match &t.phase {
            Phase::Preparing { commit, partitions } => Some((
                id.clone(),
                t.producer_id,
                t.epoch,
                *commit,
                partitions.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn job_keys(jobs: &[MarkerJob]) -> BTreeSet<(String, i64, i16, bool, BTreeSet<i32>)> {
    jobs.iter()
        .map(|j| {
            (
                j.transactional_id.clone(),
                j.producer_id,
                j.producer_epoch,
                j.commit,
                parts(j),
            )
        })
        .collect()
}

/// A transactional id's producers: the current (id, epoch), and the one before (a zombie).
type Held = ((i64, i16), Option<(i64, i16)>);

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let config = Config {
        max_timeout_ms: 900_000,
        transactional_id_expiration_ms: i64::MAX,
    };
    let mut coordinator = Coordinator::new(config.clone());
    let mut model = Model {
        next_pid: 1000,
        ..Model::default()
    };
    let mut log: Vec<TxnRecord> = Vec::new();
    let mut pending: Vec<MarkerJob> = Vec::new();
    // What each id's producers hold: the current instance and the one before it (a zombie).
    let mut held: BTreeMap<String, Held> = BTreeMap::new();
    let mut now = 1_000_000i64;
    for op in ops {
        match op {
            Op::Init(i) => {
                let id = IDS[i];
                let mut fresh = Some(model.next_pid);
                let out = coordinator.init_producer_id(id, TIMEOUT_MS, None, &mut fresh, now);
                let expected = match model.txns.get_mut(id) {
                    None => {
                        model.txns.insert(
                            id.to_string(),
                            ModelTxn {
                                producer_id: model.next_pid,
                                epoch: 0,
                                phase: Phase::Idle { completed: None },
                            },
                        );
                        model.next_pid += 1;
                        Ok((model.next_pid - 1, 0))
                    }
                    Some(t) => match t.phase.clone() {
                        Phase::Preparing { .. } => Err(ErrorCode::ConcurrentTransactions),
                        Phase::Ongoing { partitions, .. } => {
                            t.epoch += 1;
                            t.phase = Phase::Preparing {
                                commit: false,
                                partitions,
                            };
                            Err(ErrorCode::ConcurrentTransactions)
                        }
                        Phase::Idle { .. } => {
                            t.epoch += 1;
                            t.phase = Phase::Idle { completed: None };
                            Ok((t.producer_id, t.epoch))
                        }
                    },
                };
                match expected {
                    Ok(pid_epoch) => {
                        prop_assert_eq!(out.response.error, ErrorCode::None);
                        prop_assert_eq!(
                            (out.response.producer_id, out.response.producer_epoch),
                            pid_epoch
                        );
                        let previous = held.get(id).map(|h| h.0);
                        held.insert(id.to_string(), (pid_epoch, previous));
                    }
                    Err(error) => prop_assert_eq!(out.response.error, error),
                }
                log.extend(out.records);
                pending.extend(out.markers);
            }
            Op::Add {
                id,
                zombie,
                partitions,
            } => {
                let id = IDS[id];
                let Some(&(current, old)) = held.get(id) else {
                    continue;
                };
                let (pid, epoch) = if zombie {
                    match old {
                        Some(o) => o,
                        None => continue,
                    }
                } else {
                    current
                };
                let tps: Vec<TopicPartition> = partitions.iter().copied().map(tp).collect();
                let out = coordinator.add_partitions(id, pid, epoch, &tps, now);
                let t = model
                    .txns
                    .get_mut(id)
                    .ok_or_else(|| TestCaseError::fail("no model txn"))?;
                let expected = if pid != t.producer_id {
                    ErrorCode::InvalidProducerIdMapping
                } else if epoch != t.epoch {
                    ErrorCode::ProducerFenced
                } else {
                    match &mut t.phase {
                        Phase::Preparing { .. } => ErrorCode::ConcurrentTransactions,
                        Phase::Ongoing {
                            partitions: set, ..
                        } => {
                            set.extend(partitions.iter().copied());
                            ErrorCode::None
                        }
                        Phase::Idle { .. } => {
                            t.phase = Phase::Ongoing {
                                partitions: partitions.iter().copied().collect(),
                                start_ms: now,
                            };
                            ErrorCode::None
                        }
                    }
                };
                prop_assert_eq!(out.response, expected);
                log.extend(out.records);
            }
            Op::End { id, zombie, commit } => {
                let id = IDS[id];
                let Some(&(current, old)) = held.get(id) else {
                    continue;
                };
                let (pid, epoch) = if zombie {
                    match old {
                        Some(o) => o,
                        None => continue,
                    }
                } else {
                    current
                };
                let out = coordinator.end_txn(id, pid, epoch, commit, now);
                let t = model
                    .txns
                    .get_mut(id)
                    .ok_or_else(|| TestCaseError::fail("no model txn"))?;
                let expected = if pid != t.producer_id {
                    ErrorCode::InvalidProducerIdMapping
                } else if epoch != t.epoch {
                    ErrorCode::ProducerFenced
                } else {
                    match t.phase.clone() {
                        Phase::Ongoing { partitions, .. } => {
                            t.phase = Phase::Preparing { commit, partitions };
                            ErrorCode::None
                        }
                        Phase::Preparing { commit: c, .. } if c == commit => {
                            ErrorCode::ConcurrentTransactions
                        }
                        Phase::Idle { completed: Some(c) } if c == commit => ErrorCode::None,
                        _ => ErrorCode::InvalidTxnState,
                    }
                };
                prop_assert_eq!(out.response.error, expected);
                log.extend(out.records);
                pending.extend(out.markers);
            }
            Op::Markers(i) => {
                if pending.is_empty() {
                    continue;
                }
                let job = pending.remove(i % pending.len());
                let out = coordinator.markers_written(&job, now);
                let t = model
                    .txns
                    .get_mut(&job.transactional_id)
                    .ok_or_else(|| TestCaseError::fail("job of an unknown id"))?;
                // Every job handed out is the model's transaction at that moment: the same
                // producer, epoch, outcome and exactly the partitions added to it.
                match t.phase.clone() {
                    Phase::Preparing { commit, partitions } => {
                        prop_assert_eq!(
                            (t.producer_id, t.epoch, commit),
                            (job.producer_id, job.producer_epoch, job.commit)
                        );
                        prop_assert_eq!(&partitions, &parts(&job));
                        t.phase = Phase::Idle {
                            completed: Some(commit),
                        };
                        prop_assert_eq!(out.records.len(), 1);
                    }
                    other => return Err(TestCaseError::fail(format!("markers for {other:?}"))),
                }
                log.extend(out.records);
            }
            Op::Advance(ms) => {
                now += ms;
                let out = coordinator.tick(now);
                for t in model.txns.values_mut() {
                    if let Phase::Ongoing {
                        partitions,
                        start_ms,
                    } = t.phase.clone()
                    {
                        if now - start_ms > i64::from(TIMEOUT_MS) {
                            t.epoch += 1;
                            t.phase = Phase::Preparing {
                                commit: false,
                                partitions,
                            };
                        }
                    }
                }
                log.extend(out.records);
                pending.extend(out.markers);
            }
            Op::Failover => {
                // The new leader of the partition replays the whole log; the jobs in flight
                // on the old one are lost and must come back from the PREPARE records.
                coordinator = Coordinator::new(config.clone());
                let jobs = coordinator
                    .load(log.iter().map(|r| (r.key.as_ref(), r.value.as_deref())))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                pending = jobs;
            }
        }
        prop_assert_eq!(job_keys(&pending), expected_jobs(&model));
        for (id, t) in &model.txns {
            let meta = coordinator
                .get(id)
                .ok_or_else(|| TestCaseError::fail("id lost"))?;
            prop_assert_eq!(
                (meta.producer_id, meta.producer_epoch),
                (t.producer_id, t.epoch)
            );
        }
    }
    // Draining every job completes every transaction.
    while let Some(job) = pending.pop() {
        let out = coordinator.markers_written(&job, now);
        prop_assert_eq!(out.records.len(), 1);
    }
    prop_assert!(coordinator.all().all(|m| !m.state.is_preparing()));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn coordinator_matches_model_across_failovers(ops in prop::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}

#[test]
fn failover_mid_commit_finishes_the_markers_from_the_prepare_record() {
    let mut first = Coordinator::new(Config::default());
    let mut log = Vec::new();
    let mut fresh = Some(7);
    let init = first.init_producer_id("tx", 60_000, None, &mut fresh, 0);
    log.extend(init.records);
    let add = first.add_partitions("tx", 7, 0, &[tp(0), tp(1)], 1);
    log.extend(add.records);
    let end = first.end_txn("tx", 7, 0, true, 2);
    assert_eq!(end.response.error, ErrorCode::None);
    assert_eq!(end.markers.len(), 1);
    log.extend(end.records);
    // The first coordinator dies before any marker is written.
    let mut second = Coordinator::new(Config::default());
    let jobs = second
        .load(log.iter().map(|r| (r.key.as_ref(), r.value.as_deref())))
        .unwrap();
    assert_eq!(jobs, end.markers);
    // The producer's retry of EndTxn waits for the markers, then succeeds.
    assert_eq!(
        second.end_txn("tx", 7, 0, true, 3).response.error,
        ErrorCode::ConcurrentTransactions
    );
    assert_eq!(second.markers_written(&jobs[0], 4).records.len(), 1);
    assert_eq!(
        second.end_txn("tx", 7, 0, true, 5).response.error,
        ErrorCode::None
    );
    assert_eq!(
        second.end_txn("tx", 7, 0, false, 5).response.error,
        ErrorCode::InvalidTxnState
    );
}
