//! Unit tests of the leader's state, and a property test against a simple model: random
//! fetches, appends, fsyncs, ticks, controller answers and images, after each of which the
//! high watermark is checked against what every maximal-ISR member reported.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const LAG_MS: i64 = 10_000;
const T0: i64 = 1_000_000;

fn view(leader_epoch: i32, partition_epoch: i32, replicas: &[i32], isr: &[i32]) -> PartitionView {
    PartitionView {
        leader_epoch,
        partition_epoch,
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
    }
}

fn all_eligible(ids: &[i32]) -> EligibleBrokers {
    ids.iter().map(|id| (*id, 7)).collect()
}

fn config(durable_only: bool) -> LeaderConfig {
    LeaderConfig {
        replica_lag_time_max_ms: LAG_MS,
        durable_only,
    }
}

fn leader(isr: &[i32], log_end_offset: i64, high_watermark: i64) -> Leader {
    Leader::new(
        1,
        &view(5, 10, &[1, 2, 3], isr),
        all_eligible(&[1, 2, 3]),
        config(false),
        log_end_offset,
        log_end_offset,
        high_watermark,
        T0,
    )
}

fn fetch(replica_id: i32, fetch_offset: i64) -> FollowerFetch {
    FollowerFetch {
        replica_id,
        fetch_offset,
        log_start_offset: 0,
        broker_epoch: None,
    }
}

#[test]
fn a_single_replica_is_its_own_high_watermark() {
    let mut l = Leader::new(
        1,
        &view(0, 0, &[1], &[1]),
        all_eligible(&[1]),
        config(false),
        7,
        0,
        3,
        T0,
    );
    assert_eq!(l.high_watermark(), 7);
    assert!(l.on_local_end(9, 0, T0));
    assert_eq!(l.high_watermark(), 9);
    assert_eq!(l.ack_status(9, 1), AckStatus::Committed);
    assert_eq!(l.ack_status(10, 1), AckStatus::Waiting);
    assert_eq!(l.ack_status(9, 2), AckStatus::NotEnoughReplicasAfterAppend);
    assert_eq!(
        l.check_min_isr(2),
        Err(NotEnoughReplicas {
            isr_size: 1,
            min_isr: 2
        })
    );
}

#[test]
fn sync_on_commit_counts_the_durable_offset() {
    let mut l = Leader::new(
        1,
        &view(0, 0, &[1], &[1]),
        all_eligible(&[1]),
        config(true),
        10,
        4,
        0,
        T0,
    );
    assert_eq!(l.high_watermark(), 4);
    assert!(!l.on_local_end(12, 4, T0));
    assert!(l.on_local_end(12, 12, T0));
    assert_eq!(l.high_watermark(), 12);
}

#[test]
fn the_high_watermark_waits_for_every_isr_member() {
    let mut l = leader(&[1, 2, 3], 10, 4);
    // Followers are unknown until they fetch: the high watermark stays.
    assert_eq!(l.high_watermark(), 4);
    assert!(!l.high_watermark_established());
    assert_eq!(l.on_follower_fetch(fetch(2, 8), T0), Ok(false));
    assert_eq!(l.on_follower_fetch(fetch(3, 6), T0), Ok(true));
    assert_eq!(l.high_watermark(), 6);
    assert_eq!(l.on_follower_fetch(fetch(3, 10), T0), Ok(true));
    assert_eq!(l.high_watermark(), 8);
    assert!(!l.high_watermark_established());
    assert_eq!(l.on_follower_fetch(fetch(2, 10), T0), Ok(true));
    assert_eq!(l.high_watermark(), 10);
    assert!(l.high_watermark_established());
    // A follower going back (it restarted) never moves the high watermark back.
    assert_eq!(l.on_follower_fetch(fetch(2, 3), T0), Ok(false));
    assert_eq!(l.high_watermark(), 10);
}

#[test]
fn fetches_from_strangers_or_beyond_the_log_are_refused() {
    let mut l = leader(&[1, 2, 3], 10, 0);
    assert_eq!(
        l.on_follower_fetch(fetch(4, 1), T0),
        Err(FetchRefusal::NotReplica)
    );
    assert_eq!(
        l.on_follower_fetch(fetch(1, 1), T0),
        Err(FetchRefusal::NotReplica)
    );
    assert_eq!(
        l.on_follower_fetch(fetch(2, 11), T0),
        Err(FetchRefusal::OffsetOutOfRange)
    );
    let with_epoch = |epoch| FollowerFetch {
        broker_epoch: Some(epoch),
        ..fetch(2, 5)
    };
    assert!(l.on_follower_fetch(with_epoch(9), T0).is_ok());
    assert_eq!(
        l.on_follower_fetch(with_epoch(8), T0),
        Err(FetchRefusal::StaleBrokerEpoch)
    );
}

#[test]
fn a_lagging_member_is_proposed_out_and_the_high_watermark_waits_for_the_commit() {
    let mut l = leader(&[1, 2, 3], 10, 0);
    l.on_follower_fetch(fetch(2, 10), T0).unwrap();
    l.on_follower_fetch(fetch(3, 2), T0).unwrap();
    assert_eq!(l.high_watermark(), 2);
    // Within the lag: nothing to do.
    assert!(!l.tick(T0 + LAG_MS));
    l.on_follower_fetch(fetch(2, 10), T0 + LAG_MS).unwrap();
    assert!(l.tick(T0 + LAG_MS + 1));
    let sent = l.take_proposal().unwrap();
    assert_eq!(sent.new_isr, vec![1, 2]);
    assert_eq!(sent.kind, IsrChangeKind::Shrink);
    assert_eq!(sent.partition_epoch, 10);
    assert_eq!(l.take_proposal(), None, "one in flight");
    // Until the controller commits, member 3 still counts.
    assert_eq!(l.high_watermark(), 2);
    let committed = AlterReply::Committed {
        leader_epoch: 5,
        partition_epoch: 11,
        isr: vec![1, 2],
    };
    assert!(l.on_alter_reply(&sent, committed, T0 + LAG_MS + 2));
    assert_eq!(l.high_watermark(), 10);
    assert_eq!(l.isr(), &[1, 2]);
    assert!(!l.has_pending_change());
}

#[test]
fn a_caught_up_follower_joins_and_counts_while_the_change_is_pending() {
    let mut l = leader(&[1, 2], 10, 0);
    l.on_follower_fetch(fetch(2, 10), T0).unwrap();
    assert_eq!(l.high_watermark(), 10);
    l.on_local_end(20, 20, T0);
    assert_eq!(l.high_watermark(), 10);
    // Below the high watermark: not yet.
    l.on_follower_fetch(fetch(3, 8), T0).unwrap();
    assert!(!l.has_pending_change());
    // At the high watermark and past this epoch's start: proposed, and from now on it
    // holds the high watermark back.
    l.on_follower_fetch(fetch(3, 12), T0).unwrap();
    assert_eq!(l.maximal_isr(), vec![1, 2, 3]);
    l.on_follower_fetch(fetch(2, 20), T0).unwrap();
    assert_eq!(l.high_watermark(), 12);
    let sent = l.take_proposal().unwrap();
    assert_eq!(sent.new_isr, vec![1, 2, 3]);
    // Refused for an unrelated reason: dropped, and member 3 no longer counts once it
    // stops being caught up.
    l.on_alter_reply(&sent, AlterReply::Refused(AlterRefusal::Other), T0);
    assert!(!l.has_pending_change());
}

#[test]
fn lost_answers_are_resent_and_stale_refusals_wait_for_the_image() {
    let mut l = leader(&[1, 2], 10, 0);
    l.on_follower_fetch(fetch(2, 10), T0).unwrap();
    l.on_follower_fetch(fetch(3, 10), T0).unwrap();
    let sent = l.take_proposal().unwrap();
    l.on_alter_reply(&sent, AlterReply::Lost, T0);
    let again = l.take_proposal().unwrap();
    assert_eq!(again, sent);
    // The first attempt had committed: the second is refused for a stale partition epoch.
    // The member keeps counting until the image says what happened.
    l.on_alter_reply(
        &again,
        AlterReply::Refused(AlterRefusal::InvalidUpdateVersion),
        T0,
    );
    assert!(l.has_pending_change());
    assert_eq!(l.take_proposal(), None);
    assert_eq!(l.maximal_isr(), vec![1, 2, 3]);
    // An image with the same partition epoch settles nothing.
    l.on_image(
        &view(5, 10, &[1, 2, 3], &[1, 2]),
        all_eligible(&[1, 2, 3]),
        T0,
    );
    assert!(l.has_pending_change());
    l.on_image(
        &view(5, 11, &[1, 2, 3], &[1, 2, 3]),
        all_eligible(&[1, 2, 3]),
        T0,
    );
    assert!(!l.has_pending_change());
    assert_eq!(l.isr(), &[1, 2, 3]);
    // An answer to something no longer in flight is ignored.
    l.on_alter_reply(&sent, AlterReply::Refused(AlterRefusal::Other), T0);
    assert_eq!(l.isr(), &[1, 2, 3]);
}

#[test]
fn fenced_or_reincarnated_brokers_do_not_join() {
    let mut l = leader(&[1, 2], 10, 0);
    l.on_follower_fetch(fetch(2, 10), T0).unwrap();
    l.on_image(&view(5, 10, &[1, 2, 3], &[1, 2]), all_eligible(&[1, 2]), T0);
    l.on_follower_fetch(fetch(3, 10), T0).unwrap();
    assert!(!l.has_pending_change(), "fenced broker 3 joined");
    l.on_image(
        &view(5, 10, &[1, 2, 3], &[1, 2]),
        all_eligible(&[1, 2, 3]),
        T0,
    );
    let stale = FollowerFetch {
        broker_epoch: Some(6),
        ..fetch(3, 10)
    };
    l.on_follower_fetch(stale, T0).unwrap();
    assert!(!l.has_pending_change(), "a previous incarnation joined");
    let current = FollowerFetch {
        broker_epoch: Some(7),
        ..fetch(3, 10)
    };
    l.on_follower_fetch(current, T0).unwrap();
    assert!(l.has_pending_change());
}

#[test]
fn a_follower_must_reach_the_start_of_the_leader_epoch_to_join() {
    // Became leader at 10 with a high watermark of 4.
    let mut l = leader(&[1], 10, 4);
    assert_eq!(l.high_watermark(), 10);
    let mut l2 = Leader::new(
        1,
        &view(5, 10, &[1, 2], &[1, 2]),
        all_eligible(&[1, 2]),
        config(false),
        10,
        10,
        4,
        T0,
    );
    l2.on_image(
        &view(5, 11, &[1, 2, 3], &[1, 2]),
        all_eligible(&[1, 2, 3]),
        T0,
    );
    l2.on_follower_fetch(fetch(3, 6), T0).unwrap();
    assert!(!l2.has_pending_change(), "joined below the epoch start");
    l.on_local_end(10, 10, T0);
}

/// One step of the property test.
#[derive(Clone, Debug)]
enum Op {
    Fetch { replica: i32, back: i64 },
    Append(i64),
    Fsync,
    Advance(i64),
    Tick,
    Send,
    Answer(u8),
    Image,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (2..=3i32, 0..6i64).prop_map(|(replica, back)| Op::Fetch { replica, back }),
        2 => (1..5i64).prop_map(Op::Append),
        1 => Just(Op::Fsync),
        1 => (0..8_000i64).prop_map(Op::Advance),
        1 => Just(Op::Tick),
        1 => Just(Op::Send),
        2 => (0..4u8).prop_map(Op::Answer),
        1 => Just(Op::Image),
    ]
}

/// The controller side of the model: the committed ISR and partition epoch, applying the
/// checks Kafka's controller makes.
struct Model {
    isr: Vec<i32>,
    partition_epoch: i32,
    in_flight: Option<AlterIsr>,
    /// Highest offset each replica ever reported.
    reported: BTreeMap<i32, i64>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever happens, the high watermark never moves back, never passes the leader's own
    /// (durable) end, and whenever it moves every member of the maximal ISR has reported at
    /// least that far (or it was there when the leader started). Proposals always keep the
    /// leader and never add a member below the high watermark.
    #[test]
    fn the_high_watermark_is_covered_by_the_maximal_isr(
        durable_only in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let start_hw = 3;
        let mut now = T0;
        let mut l = Leader::new(
            1,
            &view(5, 10, &[1, 2, 3], &[1, 2, 3]),
            all_eligible(&[1, 2, 3]),
            config(durable_only),
            5,
            5,
            start_hw,
            now,
        );
        let mut model = Model {
            isr: vec![1, 2, 3],
            partition_epoch: 10,
            in_flight: None,
            reported: BTreeMap::new(),
        };
        let (mut leo, mut durable) = (5i64, 5i64);
        let mut follower_leo: BTreeMap<i32, i64> = BTreeMap::new();
        for op in ops {
            let before = l.high_watermark();
            match op {
                Op::Fetch { replica, back } => {
                    let known = follower_leo.get(&replica).copied().unwrap_or(0);
                    // Mostly forward to the leader's end, sometimes back (a restart).
                    let offset = if back == 0 { (known - 2).max(0) } else { (known + back).min(leo) };
                    follower_leo.insert(replica, offset);
                    if l.on_follower_fetch(fetch(replica, offset), now).is_ok() {
                        let best = model.reported.entry(replica).or_insert(offset);
                        *best = (*best).max(offset);
                    }
                }
                Op::Append(n) => {
                    leo += n;
                    l.on_local_end(leo, durable, now);
                }
                Op::Fsync => {
                    durable = leo;
                    l.on_local_end(leo, durable, now);
                }
                Op::Advance(ms) => now += ms,
                Op::Tick => {
                    l.tick(now);
                }
                Op::Send => {
                    if model.in_flight.is_none() {
                        model.in_flight = l.take_proposal();
                        if let Some(sent) = &model.in_flight {
                            prop_assert!(sent.new_isr.contains(&1), "leader left out: {sent:?}");
                            if sent.kind == IsrChangeKind::Expand {
                                let added = sent.new_isr.iter().find(|id| !model.isr.contains(id));
                                if let Some(added) = added {
                                    // It reached the high watermark when proposed, and holds
                                    // it back since.
                                    let at = model.reported.get(added).copied().unwrap_or(-1);
                                    prop_assert!(at >= l.high_watermark(), "{added} joined at {at}");
                                }
                            }
                        }
                    }
                }
                Op::Answer(kind) => {
                    let Some(sent) = model.in_flight.take() else { continue };
                    let reply = match kind {
                        0 | 1 if sent.partition_epoch == model.partition_epoch => {
                            model.isr = sent.new_isr.clone();
                            model.partition_epoch += 1;
                            AlterReply::Committed {
                                leader_epoch: 5,
                                partition_epoch: model.partition_epoch,
                                isr: model.isr.clone(),
                            }
                        }
                        0 | 1 => AlterReply::Refused(AlterRefusal::InvalidUpdateVersion),
                        2 => {
                            // Committed, but the answer is lost; the image shows it later.
                            if sent.partition_epoch == model.partition_epoch {
                                model.isr = sent.new_isr.clone();
                                model.partition_epoch += 1;
                            }
                            AlterReply::Lost
                        }
                        _ => AlterReply::Lost,
                    };
                    l.on_alter_reply(&sent, reply, now);
                }
                Op::Image => {
                    // The image catches up with the controller.
                    let v = view(5, model.partition_epoch, &[1, 2, 3], &model.isr);
                    l.on_image(&v, all_eligible(&[1, 2, 3]), now);
                }
            }
            let after = l.high_watermark();
            prop_assert!(after >= before, "moved back {before} -> {after}");
            let own = if durable_only { durable.min(leo) } else { leo };
            prop_assert!(after <= own.max(start_hw), "{after} above the leader's {own}");
            // The ISR the leader counts always includes what the controller committed.
            for id in &model.isr {
                prop_assert!(l.maximal_isr().contains(id) || model.partition_epoch > l.partition_epoch(),
                    "committed member {id} not counted");
            }
            if after > before {
                for id in l.maximal_isr() {
                    if id == 1 { continue; }
                    let reported = model.reported.get(&id).copied().unwrap_or(-1);
                    prop_assert!(reported >= after || after <= start_hw,
                        "hw {after} passed member {id} at {reported}");
                }
                // Members the controller committed, which the leader may not know of yet.
                for id in &model.isr {
                    if *id == 1 { continue; }
                    let reported = model.reported.get(id).copied().unwrap_or(-1);
                    prop_assert!(reported >= after, "hw {after} passed committed member {id} at {reported}");
                }
            }
        }
    }
}
