//! The coordinator against a model: random interleavings of producers (current ones and
//! zombies holding an old epoch), marker completions, timeouts and coordinator failovers
//! (a new coordinator loaded from every record written so far, as after a leader change).
//! After each step the answers and the pending markers must be the model's.
//!
//! Two runs: producers at transaction version 1 only (explicit adds, no bump at the end), and
//! a mix of version 1 and version 2 producers (KIP-890 part 2: implicit adds, every end bumps
//! the epoch and answers the epoch to continue with, retried ends recognised by Kafka's
//! table, an abort with nothing open, the double bump of a fenced version 2 transaction)
//! with the cluster's finalized `transaction.version` moving between 0, 1 and 2 (a
//! transaction keeps the version it started with; at 0 the records are value v0). Every
//! pending marker job carries the transaction version its partitions check it by. A failure prints its minimal case; it replays with
//! `PROPTEST_RNG_SEED=<seed>` and from `proptest-regressions/`.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use strom_txn::{Config, Coordinator, ErrorCode, MarkerJob, TopicPartition, TxnRecord, TV0, TV2};

const IDS: [&str; 3] = ["a", "b", "c"];
const TIMEOUT_MS: i32 = 1_000;

#[derive(Debug, Clone)]
enum Op {
    /// A new producer instance of an id, at transaction version 2 or not.
    Init {
        id: usize,
        tv2: bool,
    },
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
    /// The current instance sends its last EndTxn again (its answer was lost).
    RetryEnd(usize),
    Markers(usize),
    Advance(i64),
    Failover,
    /// UpdateFeatures: the finalized transaction.version becomes 0, 1 or 2 (at 0 the
    /// records are written as TransactionLogValue v0, which failovers then replay).
    Level(i16),
}

/// Operations of version 1 producers only (no retried end: a version 1 retry is the same
/// request, covered by End).
fn op_v1() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize).prop_map(|id| Op::Init { id, tv2: false }),
        add(),
        end(),
        (0..8usize).prop_map(Op::Markers),
        (0..700i64).prop_map(Op::Advance),
        Just(Op::Failover),
    ]
}

/// Operations of version 1 and 2 producers, with the finalized level changing.
fn op_mixed() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, any::<bool>()).prop_map(|(id, tv2)| Op::Init { id, tv2 }),
        4 => add(),
        4 => end(),
        2 => (0..3usize).prop_map(Op::RetryEnd),
        3 => (0..8usize).prop_map(Op::Markers),
        2 => (0..700i64).prop_map(Op::Advance),
        1 => Just(Op::Failover),
        1 => (0..=TV2).prop_map(Op::Level),
    ]
}

fn add() -> impl Strategy<Value = Op> {
    (
        0..3usize,
        any::<bool>(),
        prop::collection::vec(0..4i32, 1..3),
    )
        .prop_map(|(id, zombie, partitions)| Op::Add {
            id,
            zombie,
            partitions,
        })
}

fn end() -> impl Strategy<Value = Op> {
    (0..3usize, any::<bool>(), any::<bool>()).prop_map(|(id, zombie, commit)| Op::End {
        id,
        zombie,
        commit,
    })
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
    /// The version of the transaction under way, or of the last one (0 before any).
    txn_tv: i16,
}

#[derive(Default)]
struct Model {
    txns: BTreeMap<String, ModelTxn>,
    next_pid: i64,
    /// The finalized transaction.version.
    level: i16,
}

/// What a producer instance holds: its producer id, epoch and client transaction version.
type Producer = (i64, i16, i16);

/// An id's producers: the current instance and the one before it (a zombie), and the
/// current instance's last EndTxn (its id, epoch, version, commit) for a retry.
#[derive(Debug, Clone, Copy)]
struct Held {
    current: Producer,
    zombie: Option<Producer>,
    last_end: Option<(Producer, bool)>,
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t".to_string(), p)
}

fn parts(job: &MarkerJob) -> BTreeSet<i32> {
    job.partitions.iter().map(|p| p.partition).collect()
}

/// (id, producer id, epoch, commit, partitions, the transaction version the markers carry).
type JobKey = (String, i64, i16, bool, BTreeSet<i32>, i16);

fn expected_jobs(model: &Model) -> BTreeSet<JobKey> {
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
                t.txn_tv,
            )),
            _ => None,
        })
        .collect()
}

fn job_keys(jobs: &[MarkerJob]) -> BTreeSet<JobKey> {
    jobs.iter()
        .map(|j| {
            (
                j.transactional_id.clone(),
                j.producer_id,
                j.producer_epoch,
                j.commit,
                parts(j),
                j.transaction_version,
            )
        })
        .collect()
}

/// A fence (new instance or timeout) of an ongoing transaction: one bump, and one more for
/// a version 2 transaction (Kafka aborts it through the version 2 end).
fn fence(t: &mut ModelTxn) {
    t.epoch += if t.txn_tv >= TV2 { 2 } else { 1 };
}

/// The model's answer to EndTxn from `sender`: the error, and on success the producer id and
/// epoch the answer names.
fn model_end(
    t: &mut ModelTxn,
    level: i16,
    sender: Producer,
    commit: bool,
) -> Result<(i64, i16), ErrorCode> {
    let (pid, epoch, tv) = sender;
    let version = match t.phase {
        Phase::Ongoing { .. } | Phase::Preparing { .. } => tv.min(t.txn_tv),
        Phase::Idle { completed: Some(_) } if t.txn_tv >= TV2 => tv,
        Phase::Idle { .. } => tv.min(level),
    };
    if version < TV2 {
        if pid != t.producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if epoch != t.epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        return match t.phase.clone() {
            Phase::Ongoing { partitions, .. } => {
                // Ended below version 2 (no bump): its markers are checked as such.
                t.txn_tv = t.txn_tv.min(version);
                t.phase = Phase::Preparing { commit, partitions };
                Ok((pid, epoch))
            }
            Phase::Preparing { commit: c, .. } if c == commit => {
                Err(ErrorCode::ConcurrentTransactions)
            }
            Phase::Idle { completed: Some(c) } if c == commit => Ok((pid, epoch)),
            _ => Err(ErrorCode::InvalidTxnState),
        };
    }
    if pid != t.producer_id {
        return Err(ErrorCode::InvalidProducerIdMapping);
    }
    let retry = i32::from(t.epoch) == i32::from(epoch) + 1;
    let current = epoch == t.epoch;
    let valid = match t.phase {
        Phase::Ongoing { .. } | Phase::Idle { completed: None } => current,
        Phase::Preparing { .. } => retry,
        Phase::Idle { completed: Some(_) } => retry || current,
    };
    if !valid {
        return Err(ErrorCode::ProducerFenced);
    }
    let prepare = |t: &mut ModelTxn, partitions: BTreeSet<i32>| {
        t.epoch += 1;
        t.txn_tv = TV2;
        t.phase = Phase::Preparing { commit, partitions };
        Ok((t.producer_id, t.epoch))
    };
    match (t.phase.clone(), commit) {
        (Phase::Ongoing { partitions, .. }, _) => prepare(t, partitions),
        (Phase::Idle { completed: Some(c) }, _) if retry && c == commit => {
            Ok((t.producer_id, t.epoch))
        }
        (
            Phase::Idle {
                completed: Some(true),
            },
            false,
        ) if retry => Err(ErrorCode::InvalidTxnState),
        (Phase::Idle { .. }, false) => prepare(t, BTreeSet::new()),
        (Phase::Preparing { commit: c, .. }, _) if c == commit => {
            Err(ErrorCode::ConcurrentTransactions)
        }
        _ => Err(ErrorCode::InvalidTxnState),
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let config = Config {
        max_timeout_ms: 900_000,
        transactional_id_expiration_ms: i64::MAX,
    };
    let mut coordinator = Coordinator::new(config.clone());
    let mut model = Model {
        next_pid: 1000,
        level: TV2,
        ..Model::default()
    };
    let mut log: Vec<TxnRecord> = Vec::new();
    let mut pending: Vec<MarkerJob> = Vec::new();
    let mut held: BTreeMap<String, Held> = BTreeMap::new();
    let mut now = 1_000_000i64;
    for op in ops {
        match op {
            Op::Init { id: i, tv2 } => {
                let id = IDS[i];
                let tv = if tv2 { TV2 } else { TV0 };
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
                                txn_tv: TV0,
                            },
                        );
                        model.next_pid += 1;
                        Ok((model.next_pid - 1, 0))
                    }
                    Some(t) => match t.phase.clone() {
                        Phase::Preparing { .. } => Err(ErrorCode::ConcurrentTransactions),
                        Phase::Ongoing { partitions, .. } => {
                            fence(t);
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
                    Ok((pid, epoch)) => {
                        prop_assert_eq!(out.response.error, ErrorCode::None);
                        prop_assert_eq!(
                            (out.response.producer_id, out.response.producer_epoch),
                            (pid, epoch)
                        );
                        let zombie = held.get(id).map(|h| h.current);
                        held.insert(
                            id.to_string(),
                            Held {
                                current: (pid, epoch, tv),
                                zombie,
                                last_end: None,
                            },
                        );
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
                let Some(h) = held.get(id) else {
                    continue;
                };
                let Some((pid, epoch, tv)) = (if zombie { h.zombie } else { Some(h.current) })
                else {
                    continue;
                };
                let tps: Vec<TopicPartition> = partitions.iter().copied().map(tp).collect();
                // A version 2 producer's partitions are added by the partition leaders
                // (AddPartitionsToTxn v4+, at version 2).
                let out = if tv >= TV2 {
                    coordinator.add_partitions_tv(id, pid, epoch, &tps, TV2, now)
                } else {
                    coordinator.add_partitions(id, pid, epoch, &tps, now)
                };
                let level = model.level;
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
                            t.txn_tv = tv.min(level);
                            ErrorCode::None
                        }
                    }
                };
                prop_assert_eq!(out.response, expected);
                log.extend(out.records);
            }
            Op::End { .. } | Op::RetryEnd(_) => {
                let (i, zombie, sender, commit) = match op {
                    Op::End { id, zombie, commit } => {
                        let Some(h) = held.get(IDS[id]) else {
                            continue;
                        };
                        let sender = if zombie { h.zombie } else { Some(h.current) };
                        let Some(sender) = sender else {
                            continue;
                        };
                        (id, zombie, sender, commit)
                    }
                    Op::RetryEnd(id) => {
                        let Some((sender, commit)) = held.get(IDS[id]).and_then(|h| h.last_end)
                        else {
                            continue;
                        };
                        (id, false, sender, commit)
                    }
                    _ => continue,
                };
                let id = IDS[i];
                let (pid, epoch, tv) = sender;
                let out = coordinator.end_txn_tv(id, pid, epoch, commit, tv, &mut None, now);
                let level = model.level;
                let t = model
                    .txns
                    .get_mut(id)
                    .ok_or_else(|| TestCaseError::fail("no model txn"))?;
                match model_end(t, level, sender, commit) {
                    Ok(answer) => {
                        prop_assert_eq!(out.response.error, ErrorCode::None);
                        prop_assert_eq!(
                            (out.response.producer_id, out.response.producer_epoch),
                            answer
                        );
                        if !zombie {
                            if let Some(h) = held.get_mut(id) {
                                // The producer continues with the id and epoch answered.
                                h.current = (answer.0, answer.1, tv);
                            }
                        }
                    }
                    Err(error) => prop_assert_eq!(out.response.error, error),
                }
                if !zombie {
                    if let Some(h) = held.get_mut(id) {
                        if h.last_end.is_none() || matches!(op, Op::End { .. }) {
                            h.last_end = Some((sender, commit));
                        }
                    }
                }
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
                            fence(t);
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
                coordinator.set_transaction_version(model.level);
                let jobs = coordinator
                    .load(log.iter().map(|r| (r.key.as_ref(), r.value.as_deref())))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                pending = jobs;
            }
            Op::Level(level) => {
                model.level = level;
                coordinator.set_transaction_version(model.level);
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
    fn coordinator_matches_model_across_failovers(ops in prop::collection::vec(op_v1(), 1..60)) {
        run(ops)?;
    }

    #[test]
    fn coordinator_matches_model_with_version_2_and_level_changes(
        ops in prop::collection::vec(op_mixed(), 1..80)
    ) {
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
