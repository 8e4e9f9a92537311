//! Apply tests: record sequences against the image and delta they must produce, and the
//! records every image must refuse (all-or-nothing).

use strom_meta::*;
use uuid::Uuid;

const T1: Uuid = Uuid::from_u128(0x11);
const T2: Uuid = Uuid::from_u128(0x22);

fn broker(broker_id: i32, epoch: i64, fenced: bool) -> MetadataRecord {
    MetadataRecord::RegisterBroker {
        broker_id,
        incarnation_id: Uuid::from_u128(broker_id as u128),
        epoch,
        endpoints: vec![Endpoint {
            listener_name: "PLAINTEXT".into(),
            host: "h".into(),
            port: 1,
            security_protocol: 0,
        }],
        rack: None,
        fenced,
    }
}

fn topic(name: &str, topic_id: Uuid) -> MetadataRecord {
    MetadataRecord::Topic {
        name: name.into(),
        topic_id,
    }
}

fn partition(topic_id: Uuid, partition: i32, replicas: &[i32], leader: i32) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    }
}

fn change(
    topic_id: Uuid,
    partition: i32,
    isr: Option<&[i32]>,
    leader: Option<i32>,
) -> MetadataRecord {
    MetadataRecord::PartitionChange {
        topic_id,
        partition,
        isr: isr.map(<[i32]>::to_vec),
        leader,
        replicas: None,
        adding_replicas: None,
        removing_replicas: None,
    }
}

fn config(topic: &str, key: &str, value: Option<&str>) -> MetadataRecord {
    MetadataRecord::Config {
        resource: ConfigResource::topic(topic),
        key: key.into(),
        value: value.map(str::to_owned),
    }
}

fn tp(topic_id: Uuid, partition: i32) -> TopicIdPartition {
    TopicIdPartition {
        topic_id,
        partition,
    }
}

fn base() -> MetadataImage {
    let records = vec![
        broker(1, 1, false),
        broker(2, 2, false),
        topic("a", T1),
        partition(T1, 0, &[1, 2], 1),
        partition(T1, 1, &[2, 1], 2),
        config("a", "retention.ms", Some("10")),
    ];
    MetadataImage::default().apply(&records).unwrap().0
}

#[test]
fn building_an_image_reports_everything_as_new() {
    let records = base().to_records();
    let (image, delta) = MetadataImage::default().apply(&records).unwrap();
    assert_eq!(image, base());
    assert_eq!(
        delta.topics_created.iter().copied().collect::<Vec<_>>(),
        vec![T1]
    );
    assert_eq!(
        delta.partitions_added.iter().copied().collect::<Vec<_>>(),
        vec![tp(T1, 0), tp(T1, 1)]
    );
    assert!(delta.partitions_changed.is_empty());
    assert_eq!(
        delta.brokers_changed.iter().copied().collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(delta.configs_changed.len(), 1);
    let t = image.topic_by_name("a").unwrap();
    assert_eq!((t.topic_id, t.partitions.len()), (T1, 2));
    assert_eq!(image.topic_by_id(T1).map(|t| t.name.as_str()), Some("a"));
    assert_eq!(
        image.config_value(&ConfigResource::topic("a"), "retention.ms"),
        Some("10")
    );
    assert_eq!(image.broker_epoch_high(), 2);
}

#[test]
fn partition_change_bumps_epochs_and_reports_the_previous_state() {
    let image = base();
    let records = vec![
        change(T1, 0, Some(&[2]), Some(2)),
        change(T1, 0, Some(&[2, 1]), None),
    ];
    let (after, delta) = image.apply(&records).unwrap();
    let p = after.partition(T1, 0).unwrap();
    assert_eq!(
        (p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch),
        (2, vec![2, 1], 1, 2)
    );
    assert_eq!(
        delta.partitions_changed.get(&tp(T1, 0)),
        image.partition(T1, 0),
        "state before the first change"
    );
    assert!(delta.partitions_added.is_empty());
    // Broker 1 lost leadership of partition 0; broker 2 gained it.
    let local1 = delta.local_changes(1, &after);
    assert_eq!(
        (
            local1.leaders.len(),
            local1.followers.clone(),
            local1.deletes.len()
        ),
        (0, vec![tp(T1, 0)], 0)
    );
    let local2 = delta.local_changes(2, &after);
    assert_eq!(local2.leaders, vec![tp(T1, 0)]);
    // The original image is untouched.
    assert_eq!(image.partition(T1, 0).unwrap().leader, 1);
}

#[test]
fn removing_a_topic_reports_its_partitions_for_deletion() {
    let image = base();
    let (after, delta) = image
        .apply(&[MetadataRecord::RemoveTopic { topic_id: T1 }])
        .unwrap();
    assert!(after.topic_by_name("a").is_none());
    assert_eq!(after.topic_count(), 0);
    assert_eq!(after.topic_configs("a"), None);
    assert_eq!(
        delta.topics_deleted.get(&T1).map(|t| t.name.as_str()),
        Some("a")
    );
    let local = delta.local_changes(1, &after);
    assert_eq!(
        local.deletes,
        vec![(tp(T1, 0), "a".to_owned()), (tp(T1, 1), "a".to_owned())]
    );
    // Created and removed within one delta: neither created nor deleted.
    let (_, delta) = image
        .apply(&[
            topic("b", T2),
            partition(T2, 0, &[1], 1),
            MetadataRecord::RemoveTopic { topic_id: T2 },
        ])
        .unwrap();
    assert!(
        delta.topics_created.is_empty()
            && delta.topics_deleted.is_empty()
            && delta.partitions_added.is_empty()
    );
    // Same name, new id after deletion.
    let (again, delta) = image
        .apply(&[MetadataRecord::RemoveTopic { topic_id: T1 }, topic("a", T2)])
        .unwrap();
    assert_eq!(again.topic_id("a"), Some(T2));
    assert!(delta.topics_deleted.contains_key(&T1) && delta.topics_created.contains(&T2));
}

#[test]
fn reassignment_removing_a_replica_deletes_it_locally() {
    let image = base();
    let records = vec![MetadataRecord::PartitionChange {
        topic_id: T1,
        partition: 0,
        isr: Some(vec![1]),
        leader: None,
        replicas: Some(vec![1]),
        adding_replicas: None,
        removing_replicas: None,
    }];
    let (after, delta) = image.apply(&records).unwrap();
    assert_eq!(
        delta.local_changes(2, &after).deletes,
        vec![(tp(T1, 0), "a".to_owned())]
    );
    assert!(
        delta.local_changes(1, &after).leaders.is_empty(),
        "leader and epoch unchanged for broker 1"
    );
}

#[test]
fn brokers_fence_unfence_unregister() {
    let image = base();
    let fence = MetadataRecord::FenceBroker {
        broker_id: 2,
        epoch: 2,
    };
    let (after, delta) = image.apply(&[fence]).unwrap();
    assert_eq!(after.unfenced_broker_ids(), vec![1]);
    assert!(delta.brokers_changed.contains(&2));
    let (after, _) = after
        .apply(&[MetadataRecord::UnfenceBroker {
            broker_id: 2,
            epoch: 2,
        }])
        .unwrap();
    assert_eq!(after, image);
    let (after, _) = image
        .apply(&[MetadataRecord::UnregisterBroker {
            broker_id: 2,
            epoch: 2,
        }])
        .unwrap();
    assert!(after.broker(2).is_none());
    assert_eq!(after.broker_epoch_high(), 2);
}

#[test]
fn config_records_set_and_delete() {
    let image = base();
    let (after, delta) = image
        .apply(&[
            config("a", "segment.ms", Some("5")),
            config("a", "retention.ms", None),
        ])
        .unwrap();
    let keys: Vec<_> = after.topic_configs("a").unwrap().keys().cloned().collect();
    assert_eq!(keys, vec!["segment.ms"]);
    assert_eq!(delta.configs_changed[&ConfigResource::topic("a")].len(), 2);
    let (after, _) = after.apply(&[config("a", "segment.ms", None)]).unwrap();
    assert_eq!(
        after.topic_configs("a"),
        None,
        "empty resources are dropped"
    );
}

#[test]
fn invalid_records_are_refused_and_nothing_is_applied() {
    let image = base();
    let cases: Vec<(&str, MetadataRecord)> = vec![
        ("duplicate topic name", topic("a", T2)),
        ("duplicate topic id", topic("b", T1)),
        ("nil topic id", topic("b", Uuid::nil())),
        ("empty topic name", topic("", T2)),
        ("partition of unknown topic", partition(T2, 0, &[1], 1)),
        ("negative partition", partition(T1, -1, &[1], 1)),
        ("no replicas", partition(T1, 2, &[], NO_LEADER)),
        ("duplicate replicas", partition(T1, 2, &[1, 1], 1)),
        ("negative replica", partition(T1, 2, &[-3], -3)),
        ("leader outside ISR", partition(T1, 2, &[1], 2)),
        ("change of unknown partition", change(T1, 9, None, Some(1))),
        (
            "change with leader outside ISR",
            change(T1, 0, Some(&[2]), None),
        ),
        (
            "change with ISR outside replicas",
            change(T1, 0, Some(&[1, 3]), None),
        ),
        (
            "remove unknown topic",
            MetadataRecord::RemoveTopic { topic_id: T2 },
        ),
        (
            "fence unknown broker",
            MetadataRecord::FenceBroker {
                broker_id: 9,
                epoch: 1,
            },
        ),
        (
            "fence stale epoch",
            MetadataRecord::FenceBroker {
                broker_id: 1,
                epoch: 7,
            },
        ),
        (
            "unfence stale epoch",
            MetadataRecord::UnfenceBroker {
                broker_id: 1,
                epoch: 7,
            },
        ),
        (
            "unregister stale epoch",
            MetadataRecord::UnregisterBroker {
                broker_id: 1,
                epoch: 7,
            },
        ),
        ("re-register without a newer epoch", broker(1, 1, true)),
        ("negative broker id", broker(-1, 9, true)),
        (
            "producer ids going backwards",
            MetadataRecord::ProducerIds {
                broker_id: 1,
                broker_epoch: 1,
                next_producer_id: 0,
            },
        ),
    ];
    for (what, bad) in cases {
        // A valid record before the bad one must not survive either.
        let records = vec![config("a", "segment.ms", Some("1")), bad];
        let result = image.apply(&records);
        assert!(
            matches!(result, Err(MetaError::InvalidRecord(_))),
            "{what}: {result:?}"
        );
    }
    assert_eq!(image, base());
}

#[test]
fn leader_epoch_overflow_is_an_error() {
    let image = base();
    let at_max = MetadataRecord::Partition {
        topic_id: T1,
        partition: 0,
        replicas: vec![1],
        isr: vec![1],
        leader: 1,
        leader_epoch: i32::MAX,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    };
    let image = image.apply(&[at_max]).unwrap().0;
    assert!(image.apply(&[change(T1, 0, None, Some(1))]).is_err());
}

#[test]
fn clones_share_and_compare_by_value() {
    let a = base();
    let b = a.clone();
    assert_eq!(a, b);
    assert!(MetadataImage::default().is_empty());
    assert!(!a.is_empty());
    let (c, delta) = a.apply(&[]).unwrap();
    assert_eq!(c, a);
    assert!(delta.is_empty());
}
