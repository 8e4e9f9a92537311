//! Broker lifecycle, leadership movement, AlterPartition and producer id allocation.

mod common;
use common::*;
use strom_meta::*;
use uuid::Uuid;

fn register(broker_id: i32, incarnation_id: Uuid) -> ControllerRequest {
    ControllerRequest::RegisterBroker(RegisterBrokerRequest {
        broker_id,
        incarnation_id,
        endpoints: vec![endpoint(9092)],
        rack: Some("r1".into()),
    })
}

fn heartbeat(
    broker_id: i32,
    broker_epoch: i64,
    want_fence: bool,
    want_shutdown: bool,
) -> ControllerRequest {
    ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id,
        broker_epoch,
        want_fence,
        want_shutdown,
        offline_replicas: Vec::new(),
    })
}

fn refused(
    c: &mut Controller,
    image: &MetadataImage,
    request: ControllerRequest,
    now_ms: i64,
) -> ErrorCode {
    c.handle(image, request, now_ms)
        .expect_err("request refused")
        .code()
}

#[test]
fn registration_fences_then_heartbeat_unfences() {
    let mut c = controller();
    let image = MetadataImage::default();
    let (image, delta, records, reply) = commit(&mut c, &image, register(1, incarnation(1)), 0);
    assert_eq!(reply, ControllerReply::RegisterBroker { broker_epoch: 1 });
    assert_eq!(records.len(), 1);
    assert!(delta.brokers_changed.contains(&1));
    let b = image.broker(1).unwrap();
    assert!(b.fenced);
    assert_eq!(
        (b.epoch, b.rack.as_deref(), b.endpoints.len()),
        (1, Some("r1"), 1)
    );

    let (image, _, _, reply) = commit(&mut c, &image, heartbeat(1, 1, true, false), 10);
    assert_eq!(
        reply,
        ControllerReply::BrokerHeartbeat(BrokerHeartbeatReply {
            is_fenced: true,
            should_shutdown: false
        })
    );
    assert!(image.broker(1).unwrap().fenced);
    let (image, _, records, reply) = commit(&mut c, &image, heartbeat(1, 1, false, false), 20);
    assert_eq!(
        records,
        vec![MetadataRecord::UnfenceBroker {
            broker_id: 1,
            epoch: 1
        }]
    );
    assert_eq!(
        reply,
        ControllerReply::BrokerHeartbeat(BrokerHeartbeatReply {
            is_fenced: false,
            should_shutdown: false
        })
    );
    assert_eq!(image.unfenced_broker_ids(), vec![1]);

    // Epochs grow across brokers.
    let (image, _, _, reply) = commit(&mut c, &image, register(2, incarnation(2)), 30);
    assert_eq!(reply, ControllerReply::RegisterBroker { broker_epoch: 2 });
    assert_eq!(image.broker_epoch_high(), 2);
}

#[test]
fn broker_request_errors() {
    use ErrorCode::*;
    let mut c = controller();
    let image = cluster(&mut c, &[1]);
    let epoch = broker_epoch(&image, 1);
    assert_eq!(
        refused(&mut c, &image, register(-1, incarnation(1)), 0),
        InvalidRequest
    );
    // Another incarnation while the session is live; allowed once it expired.
    assert_eq!(
        refused(&mut c, &image, register(1, Uuid::from_u128(5)), 100),
        DuplicateBrokerRegistration
    );
    assert!(c
        .handle(&image, register(1, Uuid::from_u128(5)), 100_000)
        .is_ok());
    assert_eq!(
        refused(&mut c, &image, heartbeat(9, 1, false, false), 0),
        BrokerIdNotRegistered
    );
    assert_eq!(
        refused(&mut c, &image, heartbeat(1, epoch + 1, false, false), 0),
        StaleBrokerEpoch
    );
    assert_eq!(
        refused(
            &mut c,
            &image,
            ControllerRequest::UnregisterBroker { broker_id: 9 },
            0
        ),
        BrokerIdNotRegistered
    );
    let allocate = |broker_id, broker_epoch| ControllerRequest::AllocateProducerIds {
        broker_id,
        broker_epoch,
    };
    assert_eq!(
        refused(&mut c, &image, allocate(9, epoch), 0),
        StaleBrokerEpoch
    );
    assert_eq!(
        refused(&mut c, &image, allocate(1, epoch - 1), 0),
        StaleBrokerEpoch
    );
}

#[test]
fn new_incarnation_registers_at_once_after_controlled_shutdown() {
    let mut c = controller();
    let image = cluster(&mut c, &[1]);
    let epoch = broker_epoch(&image, 1);
    // A live session refuses another incarnation...
    assert_eq!(
        refused(&mut c, &image, register(1, Uuid::from_u128(7)), 100),
        ErrorCode::DuplicateBrokerRegistration
    );
    // ...but a granted shutdown ends the session, so the restarted process may register.
    let (image, _, _, reply) = commit(&mut c, &image, heartbeat(1, epoch, false, true), 200);
    assert_eq!(
        reply,
        ControllerReply::BrokerHeartbeat(BrokerHeartbeatReply {
            is_fenced: true,
            should_shutdown: true
        })
    );
    let (image, _, _, reply) = commit(&mut c, &image, register(1, Uuid::from_u128(7)), 300);
    assert_eq!(
        reply,
        ControllerReply::RegisterBroker {
            broker_epoch: epoch + 1
        }
    );
    assert!(image.broker(1).unwrap().fenced);
}

#[test]
fn a_restarted_controller_lets_a_new_incarnation_register_but_still_expires_the_old() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2]);
    // The whole node restarts: a new controller with the same image, which has heard from
    // no broker yet. Its expiry pass starts counting, but that is no live session.
    let mut c = controller();
    assert!(c.expire_broker_sessions(&image, 1_000_000).is_empty());
    let (image, _, _, reply) = commit(&mut c, &image, register(1, Uuid::from_u128(9)), 1_000_100);
    assert!(matches!(reply, ControllerReply::RegisterBroker { .. }));
    // Broker 2 stays silent and is fenced a session after the new controller started.
    let session_ms = ControllerConfig::default().broker_session_timeout_ms;
    let records = c.expire_broker_sessions(&image, 1_000_000 + session_ms + 1);
    let (image, _) = image.apply(&records).unwrap();
    assert!(image.broker(2).unwrap().fenced);
}

#[test]
fn same_incarnation_may_reregister_at_once() {
    let mut c = controller();
    let image = cluster(&mut c, &[1]);
    let (image, _, _, reply) = commit(&mut c, &image, register(1, incarnation(1)), 5);
    assert_eq!(reply, ControllerReply::RegisterBroker { broker_epoch: 2 });
    assert!(image.broker(1).unwrap().fenced);
}

#[test]
fn fencing_moves_leadership_and_unfencing_restores_it() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2]);
    let assignments = vec![(0, vec![1, 2]), (1, vec![2, 1])];
    let create = ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: vec![
            CreatableTopic {
                assignments,
                ..CreatableTopic::named("t")
            },
            CreatableTopic {
                assignments: vec![(0, vec![1])],
                ..CreatableTopic::named("solo")
            },
        ],
        validate_only: false,
    });
    let image = commit(&mut c, &image, create, 0).0;
    let id = image.topic_id("t").unwrap();
    let solo = image.topic_id("solo").unwrap();
    // Partition 2 stands for the single partition of "solo".
    let state = |image: &MetadataImage, p| {
        let p = if p == 2 {
            image.partition(solo, 0)
        } else {
            image.partition(id, p)
        }
        .unwrap();
        (p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch)
    };

    let (fenced, delta, _, _) = commit(
        &mut c,
        &image,
        heartbeat(1, broker_epoch(&image, 1), true, false),
        0,
    );
    assert!(fenced.broker(1).unwrap().fenced);
    assert_eq!(
        state(&fenced, 0),
        (2, vec![2], 1, 1),
        "leader moves to the other ISR member"
    );
    assert_eq!(
        state(&fenced, 1),
        (2, vec![2], 0, 1),
        "ISR shrinks, leader stays"
    );
    assert_eq!(
        state(&fenced, 2),
        (NO_LEADER, vec![1], 1, 1),
        "last ISR member stays, without leadership"
    );
    assert_eq!(delta.partitions_changed.len(), 3);
    let local = delta.local_changes(2, &fenced);
    assert_eq!(
        local.leaders,
        vec![TopicIdPartition {
            topic_id: id,
            partition: 0
        }]
    );

    let (back, _, _, _) = commit(
        &mut c,
        &fenced,
        heartbeat(1, broker_epoch(&image, 1), false, false),
        0,
    );
    assert_eq!(
        state(&back, 2),
        (1, vec![1], 2, 2),
        "the returning broker leads its leaderless partition"
    );
    assert_eq!(
        state(&back, 0),
        (2, vec![2], 1, 1),
        "rejoining the ISR is the leader's AlterPartition"
    );

    // Controlled shutdown of a leader: the first heartbeat moves its leadership away and
    // takes it out of the ISRs while it keeps serving; the next one lets it go.
    let (shutting, _, _, reply) = commit(
        &mut c,
        &image,
        heartbeat(2, broker_epoch(&image, 2), false, true),
        0,
    );
    assert_eq!(
        reply,
        ControllerReply::BrokerHeartbeat(BrokerHeartbeatReply {
            is_fenced: false,
            should_shutdown: false
        })
    );
    assert!(shutting.broker(2).unwrap().in_controlled_shutdown);
    assert!(!shutting.broker(2).unwrap().fenced);
    assert_eq!(state(&shutting, 1), (1, vec![1], 1, 1));
    assert_eq!(state(&shutting, 0), (1, vec![1], 0, 1));
    let (shut, _, _, reply) = commit(
        &mut c,
        &shutting,
        heartbeat(2, broker_epoch(&image, 2), false, true),
        0,
    );
    assert_eq!(
        reply,
        ControllerReply::BrokerHeartbeat(BrokerHeartbeatReply {
            is_fenced: true,
            should_shutdown: true
        })
    );
    assert!(shut.broker(2).unwrap().fenced);
    assert!(!shut.broker(2).unwrap().in_controlled_shutdown);
    assert_eq!(state(&shut, 1), (1, vec![1], 1, 1));

    let (gone, delta, _, reply) = commit(
        &mut c,
        &image,
        ControllerRequest::UnregisterBroker { broker_id: 2 },
        0,
    );
    assert_eq!(reply, ControllerReply::UnregisterBroker);
    assert!(gone.broker(2).is_none());
    assert!(delta.brokers_changed.contains(&2));
    assert_eq!(state(&gone, 1), (1, vec![1], 1, 1));
    // Epochs stay unique after unregistering.
    let (_, _, _, reply) = commit(&mut c, &gone, register(2, incarnation(2)), 0);
    assert_eq!(reply, ControllerReply::RegisterBroker { broker_epoch: 3 });
}

#[test]
fn session_expiry_fences_silent_brokers() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2]);
    let image = create_topic(&mut c, &image, "t", 2, 2);
    let e2 = broker_epoch(&image, 2);
    // Broker 1 heartbeats, broker 2 stays silent.
    assert!(c.expire_broker_sessions(&image, 9_000).is_empty());
    let image = commit(
        &mut c,
        &image,
        heartbeat(1, broker_epoch(&image, 1), false, false),
        8_000,
    )
    .0;
    let records = c.expire_broker_sessions(&image, 12_000);
    assert_eq!(
        records.last(),
        Some(&MetadataRecord::FenceBroker {
            broker_id: 2,
            epoch: e2
        })
    );
    let (after, _) = image.apply(&records).unwrap();
    assert_eq!(after.unfenced_broker_ids(), vec![1]);
    assert!(after
        .partitions()
        .all(|(_, p)| p.leader == 1 && p.isr == vec![1]));
    // A new controller gives every broker a full session before fencing.
    let mut fresh = controller();
    assert!(fresh.expire_broker_sessions(&image, 1_000_000).is_empty());
    let records = fresh.expire_broker_sessions(&image, 1_009_001);
    let after = image.apply(&records).unwrap().0;
    assert!(after.unfenced_broker_ids().is_empty());
    assert!(after
        .partitions()
        .all(|(_, p)| p.leader == NO_LEADER && p.isr.len() == 1));
}

/// A controller that led before and leads again (a new term) forgets when it last heard from
/// brokers: their heartbeats went to the leader in between, so each gets a full session from
/// its activation instead of being fenced at once.
#[test]
fn a_controller_active_again_gives_every_broker_a_full_session() {
    let heard_at_1s = || {
        let mut c = controller();
        let image = cluster(&mut c, &[1, 2]);
        let mut image = image;
        for id in [1, 2] {
            let beat = heartbeat(id, broker_epoch(&image, id), false, false);
            image = commit(&mut c, &image, beat, 1_000).0;
        }
        (c, image)
    };
    // Long after those contacts (another node led meanwhile), this one leads again.
    let (mut c, image) = heard_at_1s();
    c.activate();
    assert!(c.expire_broker_sessions(&image, 500_000).is_empty());
    assert!(c.expire_broker_sessions(&image, 509_000).is_empty());
    let records = c.expire_broker_sessions(&image, 509_001);
    assert!(image
        .apply(&records)
        .unwrap()
        .0
        .unfenced_broker_ids()
        .is_empty());
    // Without the activation the old contacts fence both at once.
    let (mut stale, image) = heard_at_1s();
    let records = stale.expire_broker_sessions(&image, 500_000);
    assert!(image
        .apply(&records)
        .unwrap()
        .0
        .unfenced_broker_ids()
        .is_empty());
}

#[test]
fn producer_id_blocks_are_consecutive() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2]);
    let allocate = |image: &MetadataImage, id| ControllerRequest::AllocateProducerIds {
        broker_id: id,
        broker_epoch: broker_epoch(image, id),
    };
    let (image, delta, _, reply) = commit(&mut c, &image, allocate(&image, 1), 0);
    assert_eq!(
        reply,
        ControllerReply::AllocateProducerIds {
            producer_id_start: 0,
            producer_id_len: 1000
        }
    );
    assert!(delta.producer_ids_changed);
    let (image, _, _, reply) = commit(&mut c, &image, allocate(&image, 2), 0);
    assert_eq!(
        reply,
        ControllerReply::AllocateProducerIds {
            producer_id_start: 1000,
            producer_id_len: 1000
        }
    );
    assert_eq!(image.next_producer_id(), 2000);
    assert_eq!(image.producer_ids().last_broker_id, 2);
}

#[test]
fn producer_ids_exhaust_with_an_error() {
    let mut c = controller_with(ControllerConfig {
        producer_id_block_size: i64::from(i32::MAX),
        ..ControllerConfig::default()
    });
    let image = cluster(&mut c, &[1]);
    let epoch = broker_epoch(&image, 1);
    let near_end = MetadataRecord::ProducerIds {
        broker_id: 1,
        broker_epoch: epoch,
        next_producer_id: i64::MAX - 10,
    };
    let image = image.apply(&[near_end]).unwrap().0;
    let err = c
        .handle(
            &image,
            ControllerRequest::AllocateProducerIds {
                broker_id: 1,
                broker_epoch: epoch,
            },
            0,
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnknownServerError);
}

fn alter(broker_id: i32, broker_epoch: i64, item: AlterPartitionItem) -> ControllerRequest {
    ControllerRequest::AlterPartition(AlterPartitionRequest {
        broker_id,
        broker_epoch,
        partitions: vec![item],
    })
}

#[test]
fn alter_partition_cases() {
    use ErrorCode::*;
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    let create = ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: vec![CreatableTopic {
            assignments: vec![(0, vec![1, 2, 3])],
            ..CreatableTopic::named("t")
        }],
        validate_only: false,
    });
    let image = commit(&mut c, &image, create, 0).0;
    // Broker 3 fenced: shrink ISR to [1, 2] (leader 1, leader epoch 0, partition epoch 1).
    let image = commit(
        &mut c,
        &image,
        heartbeat(3, broker_epoch(&image, 3), true, false),
        0,
    )
    .0;
    let id = image.topic_id("t").unwrap();
    let item = |isr: Vec<i32>, leader_epoch, partition_epoch| AlterPartitionItem {
        topic_id: id,
        partition: 0,
        leader_epoch,
        new_isr: isr,
        partition_epoch,
    };
    let e1 = broker_epoch(&image, 1);
    let e2 = broker_epoch(&image, 2);
    let cases: Vec<(i32, i64, AlterPartitionItem, Option<ErrorCode>)> = vec![
        (1, e1, item(vec![1], 0, 1), None),
        (1, e1, item(vec![1, 2], 0, 1), None),
        (1, e1, item(vec![1, 2, 3], 0, 1), Some(IneligibleReplica)),
        (1, e1, item(vec![2], 0, 1), Some(InvalidRequest)),
        (1, e1, item(vec![1, 1], 0, 1), Some(InvalidRequest)),
        (1, e1, item(vec![1, 4], 0, 1), Some(InvalidRequest)),
        (2, e2, item(vec![2], 0, 1), Some(InvalidRequest)),
        (1, e1, item(vec![1], 1, 1), Some(NotController)),
        (1, e1, item(vec![1], 0, 2), Some(NotController)),
        (1, e1, item(vec![1], 0, 0), Some(InvalidUpdateVersion)),
        (
            1,
            e1,
            AlterPartitionItem {
                partition: 5,
                ..item(vec![1], 0, 1)
            },
            Some(UnknownTopicOrPartition),
        ),
        (
            1,
            e1,
            AlterPartitionItem {
                topic_id: Uuid::from_u128(3),
                ..item(vec![1], 0, 1)
            },
            Some(UnknownTopicId),
        ),
    ];
    for (broker, epoch, it, expected) in cases {
        let desc = format!("{broker} {it:?}");
        let (records, reply) = c
            .handle(&image, alter(broker, epoch, it.clone()), 0)
            .unwrap();
        let ControllerReply::AlterPartition(results) = reply else {
            panic!()
        };
        assert_eq!(
            results[0].error.as_ref().map(|e| e.code),
            expected,
            "{desc}: {:?}",
            results[0].error
        );
        let (after, _) = image.apply(&records).unwrap();
        if expected.is_none() {
            let p = after.partition(id, 0).unwrap();
            assert_eq!(p.isr, it.new_isr);
            assert_eq!(
                (
                    results[0].isr.clone(),
                    results[0].partition_epoch,
                    results[0].leader
                ),
                (p.isr.clone(), p.partition_epoch, 1)
            );
        } else {
            assert!(records.is_empty());
        }
    }
    let err = c
        .handle(&image, alter(1, e1 + 10, item(vec![1], 0, 1)), 0)
        .unwrap_err();
    assert_eq!(err.code(), StaleBrokerEpoch);

    // An older leader epoch is fenced.
    let image = commit(&mut c, &image, heartbeat(1, e1, true, false), 0).0;
    let (_, reply) = c
        .handle(&image, alter(2, e2, item(vec![2], 0, 2)), 0)
        .unwrap();
    let ControllerReply::AlterPartition(results) = reply else {
        panic!()
    };
    assert_eq!(
        results[0].error.as_ref().map(|e| e.code),
        Some(FencedLeaderEpoch)
    );
}

#[test]
fn registrations_that_cannot_be_encoded_are_refused() {
    let mut c = controller();
    let image = MetadataImage::default();
    let long_host = ControllerRequest::RegisterBroker(RegisterBrokerRequest {
        broker_id: 1,
        incarnation_id: incarnation(1),
        endpoints: vec![Endpoint {
            host: "h".repeat(40_000),
            ..endpoint(1)
        }],
        rack: None,
    });
    assert_eq!(
        refused(&mut c, &image, long_host, 0),
        ErrorCode::InvalidRequest
    );
    let many = ControllerRequest::RegisterBroker(RegisterBrokerRequest {
        broker_id: 1,
        incarnation_id: incarnation(1),
        endpoints: (0..65).map(endpoint).collect(),
        rack: None,
    });
    assert_eq!(refused(&mut c, &image, many, 0), ErrorCode::InvalidRequest);
}
