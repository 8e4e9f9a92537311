//! Property test: random controller requests, committed one after another. Every record
//! the controller emits must apply; the final image must survive a snapshot round trip and
//! equal a replay of all committed entries from empty; and leaders are always active
//! brokers (unfenced, not in controlled shutdown), whatever the elections (clean, unclean,
//! preferred, the periodic rebalance).

use proptest::prelude::*;
use strom_meta::*;
use uuid::Uuid;

#[derive(Clone, Debug)]
enum Op {
    Register {
        broker: i32,
        incarnation: u8,
    },
    Heartbeat {
        broker: i32,
        fence: bool,
        shutdown: bool,
        stale: bool,
    },
    Unregister {
        broker: i32,
    },
    Create {
        name: usize,
        partitions: i32,
        rf: i16,
        retention: Option<i64>,
    },
    DeleteByName {
        name: usize,
    },
    DeleteById {
        name: usize,
    },
    Grow {
        name: usize,
        count: i32,
    },
    SetConfig {
        name: usize,
        key: usize,
        value: i64,
        op: u8,
    },
    ReplaceConfigs {
        name: usize,
        key: usize,
        value: i64,
    },
    AllocateIds {
        broker: i32,
    },
    ShrinkIsr {
        pick: usize,
        keep: usize,
    },
    Expire,
    Elect {
        pick: Option<usize>,
        unclean: bool,
    },
    Wait {
        ms: i64,
    },
    /// AlterPartitionReassignments of one partition onto `target` (broker ids, maybe
    /// duplicated or unregistered), or a cancel.
    Reassign {
        pick: usize,
        target: Option<Vec<i32>>,
    },
    /// The leader of a partition adds every active replica to the ISR (they caught up).
    ExpandIsr {
        pick: usize,
    },
}

const NAMES: [&str; 6] = ["t0", "t1", "t.x", "t_x", "orders", "a-b"];
const KEYS: [&str; 5] = [
    "retention.ms",
    "segment.bytes",
    "cleanup.policy",
    "min.insync.replicas",
    "unclean.leader.election.enable",
];

fn op() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    prop_oneof![
        2 => (0..3i32, 0..3u8).prop_map(|(broker, incarnation)| Op::Register { broker, incarnation }),
        4 => (0..3i32, prop::bool::weighted(0.2), prop::bool::weighted(0.05), prop::bool::weighted(0.1))
            .prop_map(|(broker, fence, shutdown, stale)| Op::Heartbeat { broker, fence, shutdown, stale }),
        1 => (0..3i32).prop_map(|broker| Op::Unregister { broker }),
        4 => (name.clone(), -2..5i32, -1..4i16, prop::option::of(-2..100_000i64))
            .prop_map(|(name, partitions, rf, retention)| Op::Create { name, partitions, rf, retention }),
        1 => name.clone().prop_map(|name| Op::DeleteByName { name }),
        1 => name.clone().prop_map(|name| Op::DeleteById { name }),
        2 => (name.clone(), 0..7i32).prop_map(|(name, count)| Op::Grow { name, count }),
        2 => (name.clone(), 0..KEYS.len(), -2..3i64, 0..4u8)
            .prop_map(|(name, key, value, op)| Op::SetConfig { name, key, value, op }),
        1 => (name, 0..KEYS.len(), -1..3i64).prop_map(|(name, key, value)| Op::ReplaceConfigs { name, key, value }),
        1 => (0..3i32).prop_map(|broker| Op::AllocateIds { broker }),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(pick, keep)| Op::ShrinkIsr { pick, keep }),
        2 => Just(Op::Expire),
        1 => (prop::option::of(any::<usize>()), any::<bool>())
            .prop_map(|(pick, unclean)| Op::Elect { pick, unclean }),
        2 => (0..4_000i64).prop_map(|ms| Op::Wait { ms }),
        3 => (any::<usize>(), prop::option::weighted(0.8, prop::collection::vec(0..4i32, 0..4)))
            .prop_map(|(pick, target)| Op::Reassign { pick, target }),
        3 => any::<usize>().prop_map(|pick| Op::ExpandIsr { pick }),
    ]
}

fn config_value(key: usize, value: i64) -> String {
    match KEYS[key] {
        "cleanup.policy" => ["delete", "compact", "compact,delete", "shred"]
            [value.rem_euclid(4) as usize]
            .to_owned(),
        "unclean.leader.election.enable" => (value % 2 == 0).to_string(),
        _ => value.to_string(),
    }
}

fn request(image: &MetadataImage, op: &Op) -> Option<ControllerRequest> {
    let epoch = |broker: i32| image.broker(broker).map_or(0, |b| b.epoch);
    Some(match op.clone() {
        Op::Register {
            broker,
            incarnation,
        } => ControllerRequest::RegisterBroker(RegisterBrokerRequest {
            broker_id: broker,
            incarnation_id: Uuid::from_u128(u128::from(incarnation) + 1),
            endpoints: vec![Endpoint {
                listener_name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
                security_protocol: 0,
            }],
            rack: None,
        }),
        Op::Heartbeat {
            broker,
            fence,
            shutdown,
            stale,
        } => ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
            broker_id: broker,
            broker_epoch: epoch(broker) - i64::from(stale),
            want_fence: fence,
            want_shutdown: shutdown,
            offline_replicas: Vec::new(),
        }),
        Op::Unregister { broker } => ControllerRequest::UnregisterBroker { broker_id: broker },
        Op::Create {
            name,
            partitions,
            rf,
            retention,
        } => ControllerRequest::CreateTopics(CreateTopicsRequest {
            topics: vec![CreatableTopic {
                num_partitions: partitions,
                replication_factor: rf,
                configs: retention
                    .map(|r| ("retention.ms".to_owned(), Some(r.to_string())))
                    .into_iter()
                    .collect(),
                ..CreatableTopic::named(NAMES[name])
            }],
            validate_only: false,
        }),
        Op::DeleteByName { name } => ControllerRequest::DeleteTopics(DeleteTopicsRequest {
            topics: vec![TopicRef::Name(NAMES[name].into())],
        }),
        Op::DeleteById { name } => ControllerRequest::DeleteTopics(DeleteTopicsRequest {
            topics: vec![TopicRef::Id(
                image.topic_id(NAMES[name]).unwrap_or(Uuid::from_u128(5)),
            )],
        }),
        Op::Grow { name, count } => ControllerRequest::CreatePartitions(CreatePartitionsRequest {
            topics: vec![CreatePartitionsTopic {
                name: NAMES[name].into(),
                count,
                assignments: None,
            }],
            validate_only: false,
        }),
        Op::SetConfig {
            name,
            key,
            value,
            op,
        } => {
            let op = AlterConfigOp::from_kafka_id(op as i8)?;
            let resource = if name == 0 {
                ConfigResource::broker("1")
            } else {
                ConfigResource::topic(NAMES[name])
            };
            ControllerRequest::IncrementalAlterConfigs(IncrementalAlterConfigsRequest {
                resources: vec![IncrementalAlterResource {
                    resource,
                    configs: vec![AlterableConfig {
                        key: KEYS[key].into(),
                        op,
                        value: Some(config_value(key, value)),
                    }],
                }],
                validate_only: false,
            })
        }
        Op::ReplaceConfigs { name, key, value } => {
            ControllerRequest::AlterConfigs(AlterConfigsRequest {
                resources: vec![AlterResource {
                    resource: ConfigResource::topic(NAMES[name]),
                    configs: vec![(KEYS[key].into(), Some(config_value(key, value)))],
                }],
                validate_only: false,
            })
        }
        Op::AllocateIds { broker } => ControllerRequest::AllocateProducerIds {
            broker_id: broker,
            broker_epoch: epoch(broker),
        },
        Op::ShrinkIsr { pick, keep } => {
            let partitions: Vec<_> = image.partitions().filter(|(_, p)| p.has_leader()).collect();
            if partitions.is_empty() {
                return None;
            }
            let (tp, p) = &partitions[pick % partitions.len()];
            let mut new_isr = vec![p.leader];
            new_isr.extend(
                p.replicas
                    .iter()
                    .copied()
                    .filter(|r| *r != p.leader)
                    .take(keep % 3),
            );
            ControllerRequest::AlterPartition(AlterPartitionRequest {
                broker_id: p.leader,
                broker_epoch: epoch(p.leader),
                partitions: vec![AlterPartitionItem {
                    topic_id: tp.topic_id,
                    partition: tp.partition,
                    leader_epoch: p.leader_epoch,
                    new_isr,
                    partition_epoch: p.partition_epoch,
                }],
            })
        }
        Op::Elect { pick, unclean } => {
            let election_type = if unclean {
                ElectionType::Unclean
            } else {
                ElectionType::Preferred
            };
            let topic_partitions = match pick {
                None => None,
                Some(pick) => {
                    let all: Vec<_> = image.partitions().collect();
                    let (tp, _) = all.get(pick % all.len().max(1))?;
                    let name = image.topic_by_id(tp.topic_id)?.name.clone();
                    Some(vec![(name, vec![tp.partition, tp.partition + 1])])
                }
            };
            ControllerRequest::ElectLeaders(ElectLeadersRequest {
                election_type,
                topic_partitions,
            })
        }
        Op::Reassign { pick, target } => {
            let all: Vec<_> = image.partitions().collect();
            let (tp, _) = all.get(pick % all.len().max(1))?;
            let name = image.topic_by_id(tp.topic_id)?.name.clone();
            ControllerRequest::AlterPartitionReassignments(AlterPartitionReassignmentsRequest {
                allow_replication_factor_change: pick % 2 == 0,
                topics: vec![(name, vec![(tp.partition, target)])],
            })
        }
        Op::ExpandIsr { pick } => {
            let partitions: Vec<_> = image.partitions().filter(|(_, p)| p.has_leader()).collect();
            let (tp, p) = partitions.get(pick % partitions.len().max(1))?;
            let new_isr: Vec<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|r| *r == p.leader || image.is_broker_active(*r))
                .collect();
            ControllerRequest::AlterPartition(AlterPartitionRequest {
                broker_id: p.leader,
                broker_epoch: epoch(p.leader),
                partitions: vec![AlterPartitionItem {
                    topic_id: tp.topic_id,
                    partition: tp.partition,
                    leader_epoch: p.leader_epoch,
                    new_isr,
                    partition_epoch: p.partition_epoch,
                }],
            })
        }
        Op::Expire | Op::Wait { .. } => return None,
    })
}

/// Reassignment safety between two consecutive images: a replica leaves a partition only
/// by a cancel (it was being added) or by a completion whose added replicas were all in
/// sync before it; and a completion takes the new ISR from the old one.
fn check_transition(before: &MetadataImage, after: &MetadataImage, op: &Op) {
    for (tp, b) in before.partitions() {
        let Some(a) = after.partition(tp.topic_id, tp.partition) else {
            continue;
        };
        let removed: Vec<i32> = b
            .replicas
            .iter()
            .copied()
            .filter(|r| !a.replicas.contains(r))
            .collect();
        if removed.is_empty() {
            continue;
        }
        let cancelled = b.is_reassigning() && removed.iter().all(|r| b.adding_replicas.contains(r));
        if cancelled {
            continue;
        }
        if b.is_reassigning() {
            assert!(
                removed.iter().all(|r| b.removing_replicas.contains(r)),
                "{op:?}: {tp:?} lost replicas {removed:?} it was not removing: {b:?} -> {a:?}"
            );
            assert!(
                b.adding_replicas.iter().all(|r| b.isr.contains(r)),
                "{op:?}: {tp:?} completed before its new replicas were in sync: {b:?} -> {a:?}"
            );
        } else {
            // Started and completed at once: only possible without new replicas.
            assert!(
                !a.is_reassigning() && a.replicas.iter().all(|r| b.replicas.contains(r)),
                "{op:?}: {tp:?} completed with replicas not yet in sync: {b:?} -> {a:?}"
            );
        }
        assert!(
            a.isr.iter().all(|r| b.isr.contains(r)),
            "{op:?}: {tp:?} completion grew the ISR: {b:?} -> {a:?}"
        );
        assert!(
            !a.has_leader() || b.isr.contains(&a.leader),
            "{op:?}: {tp:?} leader moved to an out-of-sync replica: {b:?} -> {a:?}"
        );
    }
}

fn check_invariants(image: &MetadataImage) {
    for (tp, p) in image.partitions() {
        if p.has_leader() {
            assert!(
                image.is_broker_active(p.leader),
                "{tp:?} led by fenced, shutting-down or unknown broker {}",
                p.leader
            );
        }
        assert!(!p.isr.is_empty(), "{tp:?} has an empty ISR");
    }
    for t in image.topics() {
        let ids: Vec<i32> = t.partitions.keys().copied().collect();
        assert_eq!(
            ids,
            (0..t.partitions.len() as i32).collect::<Vec<_>>(),
            "partitions of {} are contiguous",
            t.name
        );
        assert_eq!(image.topic_id(&t.name), Some(t.topic_id));
    }
}

fn run(ops: &[Op]) {
    let mut controller = Controller::new(ControllerConfig {
        topic_id_seed: 7,
        leader_imbalance_check_interval_ms: 1_000,
        leader_imbalance_per_broker_percentage: 0,
        unclean_leader_election_interval_ms: 1_500,
        ..ControllerConfig::default()
    });
    let mut image = MetadataImage::default();
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut now_ms = 0i64;
    for op in ops {
        let records = match op {
            Op::Wait { ms } => {
                now_ms += ms;
                continue;
            }
            Op::Expire => controller.tick(&image, now_ms),
            _ => match request(&image, op) {
                Some(request) => match controller.handle(&image, request, now_ms) {
                    Ok((records, _reply)) => records,
                    Err(_) => continue,
                },
                None => continue,
            },
        };
        let (next, _) = image
            .apply(&records)
            .unwrap_or_else(|e| panic!("{op:?}: controller records must apply: {e}"));
        entries.push(encode_records(&records));
        check_transition(&image, &next, op);
        image = next;
        check_invariants(&image);
    }
    let restored = MetadataImage::decode_snapshot(&image.encode_snapshot()).unwrap();
    assert_eq!(restored, image, "snapshot round trip");
    let mut replayed = MetadataImage::default();
    for entry in &entries {
        replayed = replayed.apply(&decode_records(entry).unwrap()).unwrap().0;
    }
    assert_eq!(replayed, image, "replay from empty");
    // A snapshot taken halfway, plus the rest of the log, gives the same image.
    let half = entries.len() / 2;
    let mut from_snapshot = MetadataImage::default();
    for entry in &entries[..half] {
        from_snapshot = from_snapshot
            .apply(&decode_records(entry).unwrap())
            .unwrap()
            .0;
    }
    let mut resumed = MetadataImage::decode_snapshot(&from_snapshot.encode_snapshot()).unwrap();
    for entry in &entries[half..] {
        resumed = resumed.apply(&decode_records(entry).unwrap()).unwrap().0;
    }
    assert_eq!(resumed, image, "snapshot then log suffix");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn controller_records_replay_and_snapshot(ops in prop::collection::vec(op(), 1..60)) {
        // Start from a live three-broker cluster so that most requests have something to do.
        let mut all: Vec<Op> = (0..3)
            .flat_map(|broker| {
                [
                    Op::Register { broker, incarnation: 0 },
                    Op::Heartbeat { broker, fence: false, shutdown: false, stale: false },
                ]
            })
            .collect();
        all.extend(ops);
        run(&all);
    }
}

#[test]
fn a_busy_history_replays() {
    use Op::*;
    let ops = vec![
        Register {
            broker: 1,
            incarnation: 0,
        },
        Register {
            broker: 2,
            incarnation: 0,
        },
        Heartbeat {
            broker: 1,
            fence: false,
            shutdown: false,
            stale: false,
        },
        Heartbeat {
            broker: 2,
            fence: false,
            shutdown: false,
            stale: false,
        },
        Create {
            name: 0,
            partitions: 4,
            rf: 2,
            retention: Some(1000),
        },
        Create {
            name: 2,
            partitions: 1,
            rf: 1,
            retention: None,
        },
        SetConfig {
            name: 0,
            key: 0,
            value: 5,
            op: 0,
        },
        SetConfig {
            name: 1,
            key: 2,
            value: 1,
            op: 2,
        },
        AllocateIds { broker: 1 },
        ShrinkIsr { pick: 1, keep: 0 },
        Heartbeat {
            broker: 1,
            fence: true,
            shutdown: false,
            stale: false,
        },
        Grow { name: 0, count: 6 },
        Wait { ms: 10_000 },
        Expire,
        Register {
            broker: 1,
            incarnation: 1,
        },
        DeleteByName { name: 2 },
        Heartbeat {
            broker: 1,
            fence: false,
            shutdown: false,
            stale: false,
        },
        Unregister { broker: 2 },
        AllocateIds { broker: 1 },
    ];
    run(&ops);
}
