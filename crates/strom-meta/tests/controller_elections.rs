//! Elections: controlled shutdown, unclean elections, ElectLeaders (preferred and unclean)
//! and the periodic leader rebalance, with time passed in.

mod common;
use common::*;
use strom_meta::*;

fn heartbeat(
    image: &MetadataImage,
    broker_id: i32,
    fence: bool,
    shutdown: bool,
) -> ControllerRequest {
    ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id,
        broker_epoch: broker_epoch(image, broker_id),
        want_fence: fence,
        want_shutdown: shutdown,
        offline_replicas: Vec::new(),
    })
}

/// A topic named `name` with the given replica lists (partition i gets `replicas[i]`) and
/// topic configs.
fn topic(
    c: &mut Controller,
    image: &MetadataImage,
    name: &str,
    replicas: &[&[i32]],
    configs: &[(&str, &str)],
) -> MetadataImage {
    let create = ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: vec![CreatableTopic {
            assignments: replicas
                .iter()
                .enumerate()
                .map(|(i, r)| (i as i32, r.to_vec()))
                .collect(),
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
            ..CreatableTopic::named(name)
        }],
        validate_only: false,
    });
    let (next, _, _, reply) = commit(c, image, create, 0);
    let ControllerReply::CreateTopics(results) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    assert_eq!(results[0].error, None);
    next
}

/// (leader, ISR) of a partition.
fn state(image: &MetadataImage, name: &str, partition: i32) -> (i32, Vec<i32>) {
    let id = image.topic_id(name).unwrap();
    let p = image.partition(id, partition).unwrap();
    (p.leader, p.isr.clone())
}

fn fence(c: &mut Controller, image: &MetadataImage, broker_id: i32) -> MetadataImage {
    commit(c, image, heartbeat(image, broker_id, true, false), 0).0
}

fn unfence(c: &mut Controller, image: &MetadataImage, broker_id: i32) -> MetadataImage {
    commit(c, image, heartbeat(image, broker_id, false, false), 0).0
}

fn shrink_isr(
    c: &mut Controller,
    image: &MetadataImage,
    name: &str,
    partition: i32,
    new_isr: Vec<i32>,
) -> MetadataImage {
    let id = image.topic_id(name).unwrap();
    let p = image.partition(id, partition).unwrap();
    let request = ControllerRequest::AlterPartition(AlterPartitionRequest {
        broker_id: p.leader,
        broker_epoch: broker_epoch(image, p.leader),
        partitions: vec![AlterPartitionItem {
            topic_id: id,
            partition,
            leader_epoch: p.leader_epoch,
            new_isr,
            partition_epoch: p.partition_epoch,
        }],
    });
    commit(c, image, request, 0).0
}

fn elect(
    c: &mut Controller,
    image: &MetadataImage,
    election_type: ElectionType,
    topic_partitions: Option<Vec<(&str, Vec<i32>)>>,
) -> (MetadataImage, Vec<ElectLeadersTopicResult>) {
    let request = ControllerRequest::ElectLeaders(ElectLeadersRequest {
        election_type,
        topic_partitions: topic_partitions
            .map(|t| t.into_iter().map(|(n, p)| (n.to_string(), p)).collect()),
    });
    let (next, _, _, reply) = commit(c, image, request, 0);
    let ControllerReply::ElectLeaders(results) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    (next, results)
}

/// The error codes of one topic's results, by partition.
fn codes(results: &[ElectLeadersTopicResult], topic: &str) -> Vec<(i32, Option<ErrorCode>)> {
    results
        .iter()
        .find(|r| r.topic == topic)
        .unwrap_or_else(|| panic!("no result for {topic}: {results:?}"))
        .partitions
        .iter()
        .map(|(p, e)| (*p, e.as_ref().map(|e| e.code)))
        .collect()
}

#[test]
fn controlled_shutdown_moves_leadership_then_lets_the_broker_go() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    let image = topic(&mut c, &image, "t", &[&[1, 2, 3], &[2, 1, 3]], &[]);
    let image = topic(&mut c, &image, "solo", &[&[1]], &[]);
    let (shutting, _, _, reply) = commit(&mut c, &image, heartbeat(&image, 1, false, true), 0);
    assert_eq!(
        reply,
        ControllerReply::BrokerHeartbeat(BrokerHeartbeatReply {
            is_fenced: false,
            should_shutdown: false
        })
    );
    let b = shutting.broker(1).unwrap();
    assert!(b.in_controlled_shutdown && !b.fenced && !b.is_active());
    // Leadership moves to the next ISR member; broker 1 leaves every ISR it is not the
    // last member of; its single-replica partition goes leaderless, as in Kafka.
    assert_eq!(state(&shutting, "t", 0), (2, vec![2, 3]));
    assert_eq!(state(&shutting, "t", 1), (2, vec![2, 3]));
    assert_eq!(state(&shutting, "solo", 0), (NO_LEADER, vec![1]));

    // While shutting down it may not rejoin an ISR, lead, or receive new replicas.
    let id = shutting.topic_id("t").unwrap();
    let p = shutting.partition(id, 0).unwrap();
    let rejoin = ControllerRequest::AlterPartition(AlterPartitionRequest {
        broker_id: 2,
        broker_epoch: broker_epoch(&shutting, 2),
        partitions: vec![AlterPartitionItem {
            topic_id: id,
            partition: 0,
            leader_epoch: p.leader_epoch,
            new_isr: vec![2, 3, 1],
            partition_epoch: p.partition_epoch,
        }],
    });
    let (_, _, _, reply) = commit(&mut c, &shutting, rejoin, 0);
    let ControllerReply::AlterPartition(results) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    assert_eq!(
        results[0].error.as_ref().map(|e| e.code),
        Some(ErrorCode::IneligibleReplica)
    );
    let (after, results) = elect(
        &mut c,
        &shutting,
        ElectionType::Preferred,
        Some(vec![("t", vec![0])]),
    );
    assert_eq!(
        codes(&results, "t"),
        vec![(0, Some(ErrorCode::PreferredLeaderNotAvailable))]
    );
    assert_eq!(state(&after, "t", 0), (2, vec![2, 3]));
    let placed = create_topic(&mut c, &shutting, "new", 6, 2);
    let new_id = placed.topic_id("new").unwrap();
    assert!(placed
        .topic_by_id(new_id)
        .unwrap()
        .partitions
        .values()
        .all(|p| !p.replicas.contains(&1)));

    // It leads nothing now: the next shutdown heartbeat fences it and lets it stop.
    let (shut, _, _, reply) = commit(&mut c, &shutting, heartbeat(&shutting, 1, false, true), 0);
    assert_eq!(
        reply,
        ControllerReply::BrokerHeartbeat(BrokerHeartbeatReply {
            is_fenced: true,
            should_shutdown: true
        })
    );
    assert!(shut.broker(1).unwrap().fenced);
    assert_eq!(state(&shut, "t", 0), (2, vec![2, 3]));

    // A broker that leads nothing is let go at once.
    let (gone, _, _, reply) = commit(&mut c, &shut, heartbeat(&shut, 3, false, true), 0);
    assert_eq!(
        reply,
        ControllerReply::BrokerHeartbeat(BrokerHeartbeatReply {
            is_fenced: true,
            should_shutdown: true
        })
    );
    assert_eq!(state(&gone, "t", 0), (2, vec![2]));

    // Back again, broker 1 leads its leaderless partition (it is its last ISR member).
    let back = unfence(&mut c, &gone, 1);
    assert_eq!(state(&back, "solo", 0), (1, vec![1]));
}

#[test]
fn unclean_election_only_where_allowed() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    let image = topic(&mut c, &image, "clean", &[&[1, 2]], &[]);
    let image = topic(
        &mut c,
        &image,
        "unclean",
        &[&[1, 2]],
        &[(UNCLEAN_LEADER_ELECTION_ENABLE, "true")],
    );
    // Broker 2 falls out of both ISRs, then the leader dies.
    let image = shrink_isr(&mut c, &image, "clean", 0, vec![1]);
    let image = shrink_isr(&mut c, &image, "unclean", 0, vec![1]);
    let image = fence(&mut c, &image, 1);
    // Clean: no ISR member is alive, so no leader; broker 1 stays the ISR.
    assert_eq!(state(&image, "clean", 0), (NO_LEADER, vec![1]));
    // Unclean: the live replica outside the ISR leads, and the ISR becomes just it.
    assert_eq!(state(&image, "unclean", 0), (2, vec![2]));
    // Broker 1 returns: it leads the clean partition again; the unclean one stays with 2
    // (broker 1 must catch up and be added back by the leader).
    let image = unfence(&mut c, &image, 1);
    assert_eq!(state(&image, "clean", 0), (1, vec![1]));
    assert_eq!(state(&image, "unclean", 0), (2, vec![2]));
}

#[test]
fn unclean_election_when_an_out_of_sync_replica_comes_back() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2]);
    let image = topic(
        &mut c,
        &image,
        "t",
        &[&[1, 2]],
        &[(UNCLEAN_LEADER_ELECTION_ENABLE, "true")],
    );
    let image = fence(&mut c, &image, 2);
    let image = fence(&mut c, &image, 1);
    assert_eq!(state(&image, "t", 0), (NO_LEADER, vec![1]));
    // Broker 2 was out of the ISR; it comes back while 1 stays down: unclean election.
    let image = unfence(&mut c, &image, 2);
    assert_eq!(state(&image, "t", 0), (2, vec![2]));
}

#[test]
fn unclean_default_comes_from_the_cluster_config_then_the_controller() {
    // The controller's own default allows it.
    let mut c = controller_with(ControllerConfig {
        unclean_leader_election_enable: true,
        ..ControllerConfig::default()
    });
    let image = cluster(&mut c, &[1, 2]);
    let image = topic(&mut c, &image, "a", &[&[1, 2]], &[]);
    let image = topic(
        &mut c,
        &image,
        "b",
        &[&[1, 2]],
        &[(UNCLEAN_LEADER_ELECTION_ENABLE, "false")],
    );
    let image = shrink_isr(&mut c, &image, "a", 0, vec![1]);
    let image = shrink_isr(&mut c, &image, "b", 0, vec![1]);
    let image = fence(&mut c, &image, 1);
    assert_eq!(state(&image, "a", 0), (2, vec![2]));
    assert_eq!(
        state(&image, "b", 0),
        (NO_LEADER, vec![1]),
        "the topic says no"
    );

    // A cluster-wide broker config overrides the controller's default.
    let mut c = controller_with(ControllerConfig {
        unclean_leader_election_enable: true,
        ..ControllerConfig::default()
    });
    let image = cluster(&mut c, &[1, 2]);
    let set = ControllerRequest::IncrementalAlterConfigs(IncrementalAlterConfigsRequest {
        resources: vec![IncrementalAlterResource {
            resource: ConfigResource::broker(""),
            configs: vec![AlterableConfig {
                key: UNCLEAN_LEADER_ELECTION_ENABLE.into(),
                op: AlterConfigOp::Set,
                value: Some("false".into()),
            }],
        }],
        validate_only: false,
    });
    let image = commit(&mut c, &image, set, 0).0;
    let image = topic(&mut c, &image, "a", &[&[1, 2]], &[]);
    let image = shrink_isr(&mut c, &image, "a", 0, vec![1]);
    let image = fence(&mut c, &image, 1);
    assert_eq!(state(&image, "a", 0), (NO_LEADER, vec![1]));
}

#[test]
fn periodic_unclean_election_after_the_setting_is_turned_on() {
    let mut c = controller_with(ControllerConfig {
        unclean_leader_election_interval_ms: 1_000,
        broker_session_timeout_ms: 1_000_000,
        ..ControllerConfig::default()
    });
    let image = cluster(&mut c, &[1, 2]);
    let image = topic(&mut c, &image, "t", &[&[1, 2]], &[]);
    let image = shrink_isr(&mut c, &image, "t", 0, vec![1]);
    let image = fence(&mut c, &image, 1);
    assert_eq!(state(&image, "t", 0), (NO_LEADER, vec![1]));
    let set = ControllerRequest::IncrementalAlterConfigs(IncrementalAlterConfigsRequest {
        resources: vec![IncrementalAlterResource {
            resource: ConfigResource::topic("t"),
            configs: vec![AlterableConfig {
                key: UNCLEAN_LEADER_ELECTION_ENABLE.into(),
                op: AlterConfigOp::Set,
                value: Some("true".into()),
            }],
        }],
        validate_only: false,
    });
    let image = commit(&mut c, &image, set, 0).0;
    // The first tick only schedules; the pass runs an interval later.
    assert!(c.tick(&image, 0).is_empty());
    assert!(c.tick(&image, 999).is_empty());
    let records = c.tick(&image, 1_000);
    let image = image.apply(&records).unwrap().0;
    assert_eq!(state(&image, "t", 0), (2, vec![2]));
}

#[test]
fn elect_leaders_preferred() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    let image = topic(&mut c, &image, "t", &[&[1, 2], &[2, 1], &[3, 1]], &[]);
    // Broker 1 bounces: partition 0 moves to 2 and stays there; 1 rejoins the ISR.
    let image = fence(&mut c, &image, 1);
    let image = unfence(&mut c, &image, 1);
    let image = shrink_isr(&mut c, &image, "t", 0, vec![2, 1]);
    let image = shrink_isr(&mut c, &image, "t", 1, vec![2, 1]);
    let image = shrink_isr(&mut c, &image, "t", 2, vec![3, 1]);
    // Broker 3 is down: partition 2 leads from 1, and 3 is out of the ISR.
    let image = fence(&mut c, &image, 3);
    assert_eq!(state(&image, "t", 0), (2, vec![2, 1]));
    assert_eq!(state(&image, "t", 2), (1, vec![1]));

    let (image, results) = elect(
        &mut c,
        &image,
        ElectionType::Preferred,
        Some(vec![("t", vec![0, 1, 2, 9]), ("nope", vec![0])]),
    );
    assert_eq!(
        codes(&results, "t"),
        vec![
            (0, None),
            (1, Some(ErrorCode::ElectionNotNeeded)),
            (2, Some(ErrorCode::PreferredLeaderNotAvailable)),
            (9, Some(ErrorCode::UnknownTopicOrPartition)),
        ]
    );
    assert_eq!(
        codes(&results, "nope"),
        vec![(0, Some(ErrorCode::UnknownTopicOrPartition))]
    );
    assert_eq!(state(&image, "t", 0), (1, vec![2, 1]));

    // Every partition: those already led by their preferred replica are left out.
    let image = unfence(&mut c, &image, 3);
    let image = shrink_isr(&mut c, &image, "t", 2, vec![1, 3]);
    let (image, results) = elect(&mut c, &image, ElectionType::Preferred, None);
    assert_eq!(codes(&results, "t"), vec![(2, None)]);
    assert_eq!(state(&image, "t", 2), (3, vec![1, 3]));
    let (_, results) = elect(&mut c, &image, ElectionType::Preferred, None);
    assert_eq!(codes(&results, "t"), vec![]);
}

#[test]
fn elect_leaders_unclean() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    let image = topic(&mut c, &image, "t", &[&[1, 2], &[1, 3], &[3, 1]], &[]);
    let image = shrink_isr(&mut c, &image, "t", 0, vec![1]);
    let image = shrink_isr(&mut c, &image, "t", 1, vec![1]);
    let image = fence(&mut c, &image, 3);
    let image = fence(&mut c, &image, 1);
    assert_eq!(state(&image, "t", 0), (NO_LEADER, vec![1]));
    assert_eq!(state(&image, "t", 1), (NO_LEADER, vec![1]));
    let (image, results) = elect(
        &mut c,
        &image,
        ElectionType::Unclean,
        Some(vec![("t", vec![0, 1, 2])]),
    );
    assert_eq!(
        codes(&results, "t"),
        vec![
            // Broker 2 is alive outside the ISR: forced in (the topic config is not asked).
            (0, None),
            // Both replicas are down.
            (1, Some(ErrorCode::EligibleLeadersNotAvailable)),
            (2, Some(ErrorCode::EligibleLeadersNotAvailable)),
        ]
    );
    assert_eq!(state(&image, "t", 0), (2, vec![2]));
    let (_, results) = elect(
        &mut c,
        &image,
        ElectionType::Unclean,
        Some(vec![("t", vec![0])]),
    );
    assert_eq!(
        codes(&results, "t"),
        vec![(0, Some(ErrorCode::ElectionNotNeeded))]
    );
}

/// A cluster where broker 1 bounced: it leads none of the partitions it prefers.
fn bounced(c: &mut Controller) -> MetadataImage {
    let image = cluster(c, &[1, 2, 3]);
    let image = topic(
        c,
        &image,
        "t",
        &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2], &[1, 3, 2]],
        &[],
    );
    let image = fence(c, &image, 1);
    let image = unfence(c, &image, 1);
    // Broker 1 catches up and its leaders add it back.
    let image = shrink_isr(c, &image, "t", 0, vec![2, 3, 1]);
    let image = shrink_isr(c, &image, "t", 3, vec![3, 2, 1]);
    assert_eq!(state(&image, "t", 0).0, 2);
    assert_eq!(state(&image, "t", 3).0, 3);
    image
}

#[test]
fn auto_rebalance_restores_preferred_leaders_once_the_interval_passed() {
    let mut c = controller_with(ControllerConfig {
        leader_imbalance_check_interval_ms: 5_000,
        broker_session_timeout_ms: 1_000_000,
        ..ControllerConfig::default()
    });
    let image = bounced(&mut c);
    assert!(
        c.tick(&image, 10_000).is_empty(),
        "the first tick schedules"
    );
    assert!(c.tick(&image, 14_999).is_empty());
    let records = c.tick(&image, 15_000);
    let image = image.apply(&records).unwrap().0;
    for p in 0..4 {
        let (leader, _) = state(&image, "t", p);
        let id = image.topic_id("t").unwrap();
        assert_eq!(
            leader,
            image.partition(id, p).unwrap().replicas[0],
            "partition {p}"
        );
    }
    // Balanced: later passes do nothing.
    assert!(c.tick(&image, 20_000).is_empty());
}

#[test]
fn auto_rebalance_waits_for_the_preferred_replica_to_be_in_sync() {
    let mut c = controller_with(ControllerConfig {
        leader_imbalance_check_interval_ms: 1_000,
        broker_session_timeout_ms: 1_000_000,
        ..ControllerConfig::default()
    });
    let image = cluster(&mut c, &[1, 2]);
    let image = topic(&mut c, &image, "t", &[&[1, 2]], &[]);
    let image = fence(&mut c, &image, 1);
    let image = unfence(&mut c, &image, 1);
    assert!(c.tick(&image, 0).is_empty());
    assert!(
        c.tick(&image, 1_000).is_empty(),
        "broker 1 is not in the ISR yet"
    );
    let image = shrink_isr(&mut c, &image, "t", 0, vec![2, 1]);
    let records = c.tick(&image, 2_000);
    let image = image.apply(&records).unwrap().0;
    assert_eq!(state(&image, "t", 0), (1, vec![2, 1]));
}

#[test]
fn auto_rebalance_respects_the_per_broker_percentage_and_the_switch() {
    // 1 of broker 1's 2 preferred partitions is not led by it: 50%.
    let setup = |c: &mut Controller| {
        let image = cluster(c, &[1, 2]);
        let image = topic(c, &image, "t", &[&[1, 2], &[1, 2], &[2, 1]], &[]);
        let image = fence(c, &image, 1);
        let image = unfence(c, &image, 1);
        let image = shrink_isr(c, &image, "t", 0, vec![2, 1]);
        let image = shrink_isr(c, &image, "t", 1, vec![2, 1]);
        // Partition 1 goes back to broker 1 by hand; partition 0 stays with 2.
        let (image, _) = elect(
            c,
            &image,
            ElectionType::Preferred,
            Some(vec![("t", vec![1])]),
        );
        assert_eq!(state(&image, "t", 0).0, 2);
        image
    };
    let run = |config: ControllerConfig| {
        let mut c = controller_with(ControllerConfig {
            leader_imbalance_check_interval_ms: 1_000,
            broker_session_timeout_ms: 1_000_000,
            ..config
        });
        let image = setup(&mut c);
        assert!(c.tick(&image, 0).is_empty());
        c.tick(&image, 1_000)
    };
    let at = |percentage| ControllerConfig {
        leader_imbalance_per_broker_percentage: percentage,
        ..ControllerConfig::default()
    };
    assert!(run(at(50)).is_empty(), "50% is not above 50%");
    assert_eq!(run(at(49)).len(), 1);
    assert_eq!(run(at(0)).len(), 1);
    assert!(run(ControllerConfig {
        auto_leader_rebalance_enable: false,
        ..at(0)
    })
    .is_empty());
}
