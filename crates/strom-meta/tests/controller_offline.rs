//! Offline replicas reported in broker heartbeats (KIP-858's offline log directories, per
//! replica): the controller records them, takes them out of ISRs and leadership, and no
//! election (clean, unclean, preferred, a broker coming back) picks them; the records
//! survive encoding and snapshots.

mod common;
use common::*;
use strom_meta::*;

fn heartbeat(image: &MetadataImage, broker_id: i32, offline: &[(&str, i32)]) -> ControllerRequest {
    ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id,
        broker_epoch: broker_epoch(image, broker_id),
        want_fence: false,
        want_shutdown: false,
        offline_replicas: offline
            .iter()
            .map(|(name, p)| (image.topic_id(name).unwrap(), *p))
            .collect(),
    })
}

fn fence(c: &mut Controller, image: &MetadataImage, broker_id: i32) -> MetadataImage {
    let request = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id,
        broker_epoch: broker_epoch(image, broker_id),
        want_fence: true,
        want_shutdown: false,
        offline_replicas: Vec::new(),
    });
    commit(c, image, request, 0).0
}

/// A topic with the given replica lists and configs.
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
    commit(c, image, create, 0).0
}

fn state(image: &MetadataImage, name: &str, partition: i32) -> (i32, Vec<i32>) {
    let p = image
        .partition(image.topic_id(name).unwrap(), partition)
        .unwrap();
    (p.leader, p.isr.clone())
}

fn tp(image: &MetadataImage, name: &str, partition: i32) -> TopicIdPartition {
    TopicIdPartition {
        topic_id: image.topic_id(name).unwrap(),
        partition,
    }
}

#[test]
fn an_offline_leader_gives_way_to_an_in_sync_replica_and_leaves_the_isr() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    let image = topic(&mut c, &image, "t", &[&[1, 2, 3], &[2, 3, 1]], &[]);
    let (image, _, records, _) = commit(&mut c, &image, heartbeat(&image, 1, &[("t", 0)]), 0);
    assert!(records.iter().any(|r| matches!(
        r,
        MetadataRecord::BrokerReplicasOffline { broker_id: 1, .. }
    )));
    assert_eq!(state(&image, "t", 0), (2, vec![2, 3]));
    // Partition 1 was not reported: broker 1 stays in its ISR.
    assert_eq!(state(&image, "t", 1), (2, vec![2, 3, 1]));
    assert!(image.is_replica_offline(1, tp(&image, "t", 0)));
    assert!(!image.is_replica_offline(1, tp(&image, "t", 1)));
    // The same report again changes nothing.
    let (_, _, records, _) = commit(&mut c, &image, heartbeat(&image, 1, &[("t", 0)]), 0);
    assert!(records.is_empty(), "{records:?}");
}

#[test]
fn an_offline_follower_leaves_the_isr_and_the_leader_stays() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    let image = topic(&mut c, &image, "t", &[&[1, 2, 3]], &[]);
    let image = commit(&mut c, &image, heartbeat(&image, 3, &[("t", 0)]), 0).0;
    assert_eq!(state(&image, "t", 0), (1, vec![1, 2]));
}

#[test]
fn no_live_in_sync_replica_means_no_leader_unless_unclean_elections_are_allowed() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    let image = topic(&mut c, &image, "clean", &[&[1, 2, 3]], &[]);
    let image = topic(
        &mut c,
        &image,
        "unclean",
        &[&[1, 2, 3]],
        &[("unclean.leader.election.enable", "true")],
    );
    // Brokers 2 and 3 leave the ISRs (fenced, then back, out of sync).
    let image = fence(&mut c, &image, 2);
    let image = fence(&mut c, &image, 3);
    assert_eq!(state(&image, "clean", 0), (1, vec![1]));
    let unfence = |c: &mut Controller, image: &MetadataImage, id| {
        commit(c, image, heartbeat(image, id, &[]), 0).0
    };
    let image = unfence(&mut c, &image, 2);
    let image = unfence(&mut c, &image, 3);
    let image = commit(
        &mut c,
        &image,
        heartbeat(&image, 1, &[("clean", 0), ("unclean", 0)]),
        0,
    )
    .0;
    // The last in-sync replica stays recorded, and nobody leads (LEADER_NOT_AVAILABLE).
    assert_eq!(state(&image, "clean", 0), (NO_LEADER, vec![1]));
    // Broker 1's "clean" replica opens again (say, space was freed): it leads again.
    let back = commit(&mut c, &image, heartbeat(&image, 1, &[("unclean", 0)]), 0).0;
    assert_eq!(state(&back, "clean", 0), (1, vec![1]));
    // Where the topic allows it, an out-of-sync replica leads.
    assert_eq!(state(&image, "unclean", 0), (2, vec![2]));
    // An unclean election never picks a replica reported offline: 2 reports it too.
    let image = commit(&mut c, &image, heartbeat(&image, 2, &[("unclean", 0)]), 0).0;
    assert_eq!(state(&image, "unclean", 0), (3, vec![3]));
}

#[test]
fn elections_never_pick_a_replica_reported_offline() {
    let mut c = controller_with(ControllerConfig {
        auto_leader_rebalance_enable: true,
        leader_imbalance_check_interval_ms: 1_000,
        leader_imbalance_per_broker_percentage: 0,
        ..ControllerConfig::default()
    });
    let image = cluster(&mut c, &[1, 2, 3]);
    let image = topic(&mut c, &image, "t", &[&[1, 2, 3]], &[]);
    // Only broker 1 is in sync, and it reports its replica offline: nobody may lead, though
    // 1 stays recorded as the last ISR member.
    let image = fence(&mut c, &image, 2);
    let image = fence(&mut c, &image, 3);
    let image = commit(&mut c, &image, heartbeat(&image, 2, &[]), 0).0;
    let image = commit(&mut c, &image, heartbeat(&image, 3, &[]), 0).0;
    let image = commit(&mut c, &image, heartbeat(&image, 1, &[("t", 0)]), 0).0;
    assert_eq!(state(&image, "t", 0), (NO_LEADER, vec![1]));
    // The preferred replica (1) is in the ISR and its broker active, but its replica is
    // offline: the rebalance does not elect it.
    let records = c.tick(&image, 2_000);
    let (image, _) = image.apply(&records).unwrap();
    assert_eq!(state(&image, "t", 0).0, NO_LEADER);
    // ElectLeaders (preferred) cannot pick it either.
    let elect = ControllerRequest::ElectLeaders(ElectLeadersRequest {
        election_type: ElectionType::Preferred,
        topic_partitions: Some(vec![("t".into(), vec![0])]),
    });
    let (image, _, _, reply) = commit(&mut c, &image, elect, 0);
    let ControllerReply::ElectLeaders(results) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    assert!(results[0].partitions[0].1.is_some(), "{results:?}");
    assert_eq!(state(&image, "t", 0).0, NO_LEADER);
}

#[test]
fn a_replica_back_online_leaves_the_set_but_not_the_isr_rules() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    let image = topic(&mut c, &image, "t", &[&[1, 2, 3]], &[]);
    let image = commit(&mut c, &image, heartbeat(&image, 3, &[("t", 0)]), 0).0;
    let (image, _, records, _) = commit(&mut c, &image, heartbeat(&image, 3, &[]), 0);
    assert_eq!(
        records,
        vec![MetadataRecord::BrokerReplicasOffline {
            broker_id: 3,
            epoch: broker_epoch(&image, 3),
            replicas: vec![],
        }]
    );
    assert!(!image.is_replica_offline(3, tp(&image, "t", 0)));
    // It rejoins the ISR only through the leader's AlterPartition, once caught up.
    assert_eq!(state(&image, "t", 0), (1, vec![1, 2]));
}

#[test]
fn a_new_registration_reports_afresh_and_deleted_topics_are_forgotten() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    let image = topic(&mut c, &image, "t", &[&[1, 2, 3]], &[]);
    let image = topic(&mut c, &image, "u", &[&[1, 2, 3]], &[]);
    let image = commit(
        &mut c,
        &image,
        heartbeat(&image, 3, &[("t", 0), ("u", 0)]),
        0,
    )
    .0;
    let delete = ControllerRequest::DeleteTopics(DeleteTopicsRequest {
        topics: vec![TopicRef::Name("u".into())],
    });
    let (image, _, _, _) = commit(&mut c, &image, delete, 0);
    let offline: Vec<TopicIdPartition> = image.offline_replicas(3).collect();
    assert_eq!(offline, vec![tp(&image, "t", 0)]);
    // Reports of partitions the broker does not host are ignored.
    let bogus = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id: 3,
        broker_epoch: broker_epoch(&image, 3),
        want_fence: false,
        want_shutdown: false,
        offline_replicas: vec![(image.topic_id("t").unwrap(), 0), (uuid::Uuid::nil(), 7)],
    });
    let (_, _, records, _) = commit(&mut c, &image, bogus, 0);
    assert!(records.is_empty(), "{records:?}");
    // The snapshot carries the set.
    let restored = MetadataImage::decode_snapshot(&image.encode_snapshot()).unwrap();
    assert_eq!(restored, image);
    // Encoded as type 17 version 1, decoded back.
    let record = MetadataRecord::BrokerReplicasOffline {
        broker_id: 3,
        epoch: 9,
        replicas: vec![(image.topic_id("t").unwrap(), 0)],
    };
    let bytes = encode_records(std::slice::from_ref(&record));
    assert_eq!(decode_records(&bytes).unwrap(), vec![record]);
    // Registering again (a restart) clears it: the new incarnation reports afresh.
    let register = ControllerRequest::RegisterBroker(RegisterBrokerRequest {
        broker_id: 3,
        incarnation_id: uuid::Uuid::from_u128(77),
        endpoints: vec![endpoint(9095)],
        rack: None,
    });
    let (image, _, _, _) = commit(&mut c, &image, register, 100_000);
    assert_eq!(image.offline_replicas(3).count(), 0);
}
