//! Data-driven tests of CreateTopics, DeleteTopics and CreatePartitions: every error code
//! and the records and image each success produces.

mod common;
use common::*;
use strom_meta::*;
use uuid::Uuid;

fn topic(name: &str, partitions: i32, rf: i16) -> CreatableTopic {
    CreatableTopic {
        num_partitions: partitions,
        replication_factor: rf,
        ..CreatableTopic::named(name)
    }
}

fn create(
    c: &mut Controller,
    image: &MetadataImage,
    topics: Vec<CreatableTopic>,
) -> (Vec<MetadataRecord>, Vec<CreateTopicResult>) {
    let request = ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics,
        validate_only: false,
    });
    let (records, reply) = c.handle(image, request, 0).unwrap();
    let ControllerReply::CreateTopics(results) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    (records, results)
}

/// Creating `t` in a 3-broker cluster that already has topic `a.b` answers `expected`.
fn check_create(t: CreatableTopic, expected: Option<ErrorCode>) {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    let image = create_topic(&mut c, &image, "a.b", 1, 1);
    let name = t.name.clone();
    let (records, results) = create(&mut c, &image, vec![t]);
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0].error.as_ref().map(|e| e.code),
        expected,
        "topic {name:?}: {:?}",
        results[0].error
    );
    if expected.is_some() {
        assert!(records.is_empty(), "a refused topic produces no records");
        assert_eq!(results[0].num_partitions, -1);
        assert!(results[0].topic_id.is_nil());
    } else {
        let (after, delta) = image.apply(&records).unwrap();
        let created = after.topic_by_name(&name).unwrap();
        assert_eq!(created.topic_id, results[0].topic_id);
        assert_eq!(created.partitions.len() as i32, results[0].num_partitions);
        assert!(delta.topics_created.contains(&created.topic_id));
    }
}

#[test]
fn create_topic_cases() {
    use ErrorCode::*;
    let long_name = "x".repeat(249);
    let too_long = "x".repeat(250);
    let cases: Vec<(CreatableTopic, Option<ErrorCode>)> = vec![
        (topic("ok", 3, 2), None),
        (topic("defaults", -1, -1), None),
        (topic(&long_name, 1, 1), None),
        (topic("with-dash_and.dot", 1, 1), None),
        (topic("", 1, 1), Some(InvalidTopicException)),
        (topic(".", 1, 1), Some(InvalidTopicException)),
        (topic("..", 1, 1), Some(InvalidTopicException)),
        (topic(&too_long, 1, 1), Some(InvalidTopicException)),
        (topic("bad/name", 1, 1), Some(InvalidTopicException)),
        (topic("spaced name", 1, 1), Some(InvalidTopicException)),
        (topic("ünïcode", 1, 1), Some(InvalidTopicException)),
        (topic("a_b", 1, 1), Some(InvalidTopicException)),
        (topic("a.b", 1, 1), Some(TopicAlreadyExists)),
        (topic("zero", 0, 1), Some(InvalidPartitions)),
        (topic("minus-two", -2, 1), Some(InvalidPartitions)),
        (topic("rf-zero", 1, 0), Some(InvalidReplicationFactor)),
        (topic("rf-minus-two", 1, -2), Some(InvalidReplicationFactor)),
        (topic("rf-four", 1, 4), Some(InvalidReplicationFactor)),
        (topic("huge", 10_001, 1), Some(PolicyViolation)),
        (
            CreatableTopic {
                configs: vec![("retention.ms".into(), Some("1000".into()))],
                ..topic("cfg", 1, 1)
            },
            None,
        ),
        (
            CreatableTopic {
                configs: vec![("retention.ms".into(), Some("-5".into()))],
                ..topic("cfg", 1, 1)
            },
            Some(InvalidConfig),
        ),
        (
            CreatableTopic {
                configs: vec![("retention.ms".into(), Some("soon".into()))],
                ..topic("cfg", 1, 1)
            },
            Some(InvalidConfig),
        ),
        (
            CreatableTopic {
                configs: vec![("no.such.key".into(), Some("1".into()))],
                ..topic("cfg", 1, 1)
            },
            Some(InvalidConfig),
        ),
        (
            CreatableTopic {
                configs: vec![("retention.ms".into(), None)],
                ..topic("cfg", 1, 1)
            },
            Some(InvalidConfig),
        ),
        (
            CreatableTopic {
                configs: vec![
                    ("retention.ms".into(), Some("1".into())),
                    ("retention.ms".into(), Some("2".into())),
                ],
                ..topic("cfg", 1, 1)
            },
            Some(InvalidRequest),
        ),
        (
            CreatableTopic {
                configs: vec![
                    ("min.compaction.lag.ms".into(), Some("10".into())),
                    ("max.compaction.lag.ms".into(), Some("5".into())),
                ],
                ..topic("cfg", 1, 1)
            },
            Some(InvalidConfig),
        ),
        (
            CreatableTopic {
                assignments: vec![(0, vec![1, 2]), (1, vec![2, 3])],
                ..topic("manual", -1, -1)
            },
            None,
        ),
        (
            CreatableTopic {
                assignments: vec![(0, vec![1])],
                ..topic("manual", 1, -1)
            },
            Some(InvalidRequest),
        ),
        (
            CreatableTopic {
                assignments: vec![(0, vec![1])],
                ..topic("manual", -1, 1)
            },
            Some(InvalidRequest),
        ),
        (
            CreatableTopic {
                assignments: vec![(0, vec![])],
                ..topic("manual", -1, -1)
            },
            Some(InvalidReplicaAssignment),
        ),
        (
            CreatableTopic {
                assignments: vec![(0, vec![1, 1])],
                ..topic("manual", -1, -1)
            },
            Some(InvalidReplicaAssignment),
        ),
        (
            CreatableTopic {
                assignments: vec![(0, vec![9])],
                ..topic("manual", -1, -1)
            },
            Some(InvalidReplicaAssignment),
        ),
        (
            CreatableTopic {
                assignments: vec![(1, vec![1])],
                ..topic("manual", -1, -1)
            },
            Some(InvalidReplicaAssignment),
        ),
        (
            CreatableTopic {
                assignments: vec![(0, vec![1]), (0, vec![2])],
                ..topic("manual", -1, -1)
            },
            Some(InvalidReplicaAssignment),
        ),
        (
            CreatableTopic {
                assignments: vec![(0, vec![1]), (1, vec![2, 3])],
                ..topic("manual", -1, -1)
            },
            Some(InvalidReplicaAssignment),
        ),
    ];
    for (t, expected) in cases {
        check_create(t, expected);
    }
}

#[test]
fn create_topic_with_fenced_manual_replicas_is_refused() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2]);
    let fence = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id: 2,
        broker_epoch: broker_epoch(&image, 2),
        want_fence: true,
        want_shutdown: false,
        offline_replicas: Vec::new(),
    });
    let image = commit(&mut c, &image, fence, 0).0;
    let t = CreatableTopic {
        assignments: vec![(0, vec![2])],
        ..topic("fenced", -1, -1)
    };
    let (_, results) = create(&mut c, &image, vec![t]);
    assert_eq!(
        results[0].error.as_ref().map(|e| e.code),
        Some(ErrorCode::InvalidReplicaAssignment)
    );
    // A mixed list keeps only the unfenced replica in the ISR, and it leads.
    let t = CreatableTopic {
        assignments: vec![(0, vec![2, 1])],
        ..topic("mixed", -1, -1)
    };
    let (records, results) = create(&mut c, &image, vec![t]);
    assert_eq!(results[0].error, None);
    let after = image.apply(&records).unwrap().0;
    let p = after.partition(results[0].topic_id, 0).unwrap();
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![2, 1], vec![1], 1)
    );
    // Automatic placement counts only unfenced brokers.
    let (_, results) = create(&mut c, &image, vec![topic("rf2", 1, 2)]);
    assert_eq!(
        results[0].error.as_ref().map(|e| e.code),
        Some(ErrorCode::InvalidReplicationFactor)
    );
}

#[test]
fn create_topics_batch_semantics() {
    let mut c = controller();
    let image = cluster(&mut c, &[1]);
    // Duplicates are refused once per name; the other topics go ahead.
    let (records, results) = create(
        &mut c,
        &image,
        vec![topic("d", 1, 1), topic("x", 2, 1), topic("d", 1, 1)],
    );
    let codes: Vec<_> = results
        .iter()
        .map(|r| (r.name.as_str(), r.error.as_ref().map(|e| e.code)))
        .collect();
    assert_eq!(
        codes,
        vec![("d", Some(ErrorCode::InvalidRequest)), ("x", None)]
    );
    assert_eq!(records.len(), 3, "one Topic and two Partition records");
    // Later topics see earlier ones of the same request.
    let (_, results) = create(&mut c, &image, vec![topic("p.q", 1, 1), topic("p_q", 1, 1)]);
    assert_eq!(results[0].error, None);
    assert_eq!(
        results[1].error.as_ref().map(|e| e.code),
        Some(ErrorCode::InvalidTopicException)
    );
    // The partition bound fails the whole request.
    let (records, results) = create(
        &mut c,
        &image,
        vec![topic("a", 5_000, 1), topic("b", 5_001, 1)],
    );
    assert!(records.is_empty());
    assert!(results
        .iter()
        .all(|r| r.error.as_ref().map(|e| e.code) == Some(ErrorCode::PolicyViolation)));
}

#[test]
fn create_topic_defaults_placement_and_reply_configs() {
    let mut c = controller_with(ControllerConfig {
        num_partitions: 6,
        default_replication_factor: 3,
        ..ControllerConfig::default()
    });
    let image = cluster(&mut c, &[1, 2, 3, 4]);
    let t = CreatableTopic {
        configs: vec![("cleanup.policy".into(), Some("compact".into()))],
        ..topic("t", -1, -1)
    };
    let (records, results) = create(&mut c, &image, vec![t]);
    let r = &results[0];
    assert_eq!((r.num_partitions, r.replication_factor), (6, 3));
    let cleanup = r
        .configs
        .iter()
        .find(|e| e.name == "cleanup.policy")
        .unwrap();
    assert_eq!(cleanup.value.as_deref(), Some("compact"));
    assert_eq!(
        cleanup.source,
        config_defs::ConfigSource::DynamicTopicConfig
    );
    let retention = r.configs.iter().find(|e| e.name == "retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("604800000"));
    assert_eq!(retention.source, config_defs::ConfigSource::DefaultConfig);

    let after = image.apply(&records).unwrap().0;
    let t = after.topic_by_name("t").unwrap();
    let mut leaders = std::collections::BTreeMap::<i32, usize>::new();
    for p in t.partitions.values() {
        assert_eq!(p.replicas.len(), 3);
        assert_eq!(p.isr, p.replicas);
        assert_eq!(p.leader, p.replicas[0]);
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 0));
        let distinct: std::collections::BTreeSet<_> = p.replicas.iter().collect();
        assert_eq!(distinct.len(), 3);
        *leaders.entry(p.leader).or_default() += 1;
    }
    // Round robin: 6 partitions on 4 brokers lead at most 2 each.
    assert!(leaders.values().all(|n| *n <= 2), "{leaders:?}");
    assert_eq!(
        after
            .topic_configs("t")
            .unwrap()
            .get("cleanup.policy")
            .map(String::as_str),
        Some("compact")
    );
}

#[test]
fn validate_only_produces_no_records() {
    let mut c = controller();
    let image = cluster(&mut c, &[1]);
    let request = ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: vec![topic("v", 2, 1)],
        validate_only: true,
    });
    let (records, reply) = c.handle(&image, request, 0).unwrap();
    assert!(records.is_empty());
    let ControllerReply::CreateTopics(results) = reply else {
        panic!()
    };
    assert_eq!(
        (results[0].error.clone(), results[0].num_partitions),
        (None, 2)
    );
}

#[test]
fn topic_ids_come_from_the_injected_source() {
    struct Fixed(Vec<Uuid>);
    impl IdSource for Fixed {
        fn next_topic_id(&mut self) -> Uuid {
            self.0.pop().unwrap_or_else(Uuid::nil)
        }
    }
    let wanted = Uuid::from_u128(7);
    let dash = Uuid::from_u128(0xF8 << 120); // base64 text starts with '-'
                                             // Reserved ids (nil, the metadata topic's id 1, a leading '-') and ids in use are skipped.
    let mut c = Controller::with_id_source(
        ControllerConfig::default(),
        Box::new(Fixed(vec![
            wanted,
            Uuid::from_u128(2),
            Uuid::from_u128(2),
            dash,
            Uuid::from_u128(1),
            Uuid::nil(),
        ])),
    );
    let image = cluster(&mut c, &[1]);
    let (records, _) = create(&mut c, &image, vec![topic("first", 1, 1)]);
    let image = image.apply(&records).unwrap().0;
    assert_eq!(image.topic_id("first"), Some(Uuid::from_u128(2)));
    // The source now repeats 2 (in use), then yields `wanted`, then runs dry (nil forever).
    let (records, _) = create(&mut c, &image, vec![topic("second", 1, 1)]);
    let image = image.apply(&records).unwrap().0;
    assert_eq!(image.topic_id("second"), Some(wanted));
    let (records, results) = create(&mut c, &image, vec![topic("third", 1, 1)]);
    assert!(records.is_empty());
    assert_eq!(
        results[0].error.as_ref().map(|e| e.code),
        Some(ErrorCode::UnknownServerError)
    );
    // Ids are unique within one request too.
    let mut c = Controller::with_id_source(
        ControllerConfig::default(),
        Box::new(Fixed(vec![
            Uuid::from_u128(4),
            Uuid::from_u128(3),
            Uuid::from_u128(3),
        ])),
    );
    let (records, results) = create(&mut c, &image, vec![topic("p", 1, 1), topic("q", 1, 1)]);
    assert_eq!(
        (results[0].topic_id, results[1].topic_id),
        (Uuid::from_u128(3), Uuid::from_u128(4))
    );
    assert!(image.apply(&records).is_ok());
}

fn delete(
    c: &mut Controller,
    image: &MetadataImage,
    topics: Vec<TopicRef>,
) -> (Vec<MetadataRecord>, Vec<DeleteTopicResult>) {
    let (records, reply) = c
        .handle(
            image,
            ControllerRequest::DeleteTopics(DeleteTopicsRequest { topics }),
            0,
        )
        .unwrap();
    let ControllerReply::DeleteTopics(results) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    (records, results)
}

#[test]
fn delete_topic_cases() {
    use ErrorCode::*;
    let mut c = controller();
    let image = cluster(&mut c, &[1]);
    let image = create_topic(&mut c, &image, "gone", 2, 1);
    let image = create_topic(&mut c, &image, "kept", 1, 1);
    let gone_id = image.topic_id("gone").unwrap();
    let cases: Vec<(Vec<TopicRef>, Vec<Option<ErrorCode>>)> = vec![
        (vec![TopicRef::Name("gone".into())], vec![None]),
        (vec![TopicRef::Id(gone_id)], vec![None]),
        (
            vec![TopicRef::Name("missing".into())],
            vec![Some(UnknownTopicOrPartition)],
        ),
        (
            vec![TopicRef::Id(Uuid::from_u128(99))],
            vec![Some(UnknownTopicId)],
        ),
        (vec![TopicRef::Id(Uuid::nil())], vec![Some(InvalidRequest)]),
        (
            vec![TopicRef::Name("gone".into()), TopicRef::Name("gone".into())],
            vec![Some(InvalidRequest), Some(InvalidRequest)],
        ),
        (
            vec![TopicRef::Name("gone".into()), TopicRef::Id(gone_id)],
            vec![None, None],
        ),
    ];
    for (refs, expected) in cases {
        let (records, results) = delete(&mut c, &image, refs.clone());
        let codes: Vec<_> = results
            .iter()
            .map(|r| r.error.as_ref().map(|e| e.code))
            .collect();
        assert_eq!(codes, expected, "{refs:?}");
        let (after, delta) = image.apply(&records).unwrap();
        if expected.iter().all(Option::is_none) {
            assert_eq!(
                records,
                vec![MetadataRecord::RemoveTopic { topic_id: gone_id }]
            );
            assert!(after.topic_by_name("gone").is_none());
            assert_eq!(
                delta
                    .topics_deleted
                    .get(&gone_id)
                    .map(|t| t.partitions.len()),
                Some(2)
            );
            assert_eq!(results[0].name.as_deref(), Some("gone"));
        } else {
            assert!(records.is_empty());
        }
        assert!(after.topic_by_name("kept").is_some());
    }
    let mut disabled = controller_with(ControllerConfig {
        delete_topic_enable: false,
        ..ControllerConfig::default()
    });
    let (records, results) = delete(&mut disabled, &image, vec![TopicRef::Name("gone".into())]);
    assert!(records.is_empty());
    assert_eq!(
        results[0].error.as_ref().map(|e| e.code),
        Some(TopicDeletionDisabled)
    );
}

fn add_partitions(
    c: &mut Controller,
    image: &MetadataImage,
    topics: Vec<CreatePartitionsTopic>,
) -> (Vec<MetadataRecord>, Vec<CreatePartitionsResult>) {
    let request = ControllerRequest::CreatePartitions(CreatePartitionsRequest {
        topics,
        validate_only: false,
    });
    let (records, reply) = c.handle(image, request, 0).unwrap();
    let ControllerReply::CreatePartitions(results) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    (records, results)
}

fn grow(name: &str, count: i32, assignments: Option<Vec<Vec<i32>>>) -> CreatePartitionsTopic {
    CreatePartitionsTopic {
        name: name.into(),
        count,
        assignments,
    }
}

#[test]
fn create_partitions_cases() {
    use ErrorCode::*;
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    let image = create_topic(&mut c, &image, "t", 2, 2);
    let cases: Vec<(CreatePartitionsTopic, Option<ErrorCode>, usize)> = vec![
        (grow("t", 4, None), None, 2),
        (grow("t", 3, Some(vec![vec![3, 1]])), None, 1),
        (grow("missing", 4, None), Some(UnknownTopicOrPartition), 0),
        (grow("t", 1, None), Some(InvalidPartitions), 0),
        (grow("t", 2, None), Some(InvalidPartitions), 0),
        (grow("t", 20_000, None), Some(PolicyViolation), 0),
        (
            grow("t", 4, Some(vec![vec![1, 2]])),
            Some(InvalidReplicaAssignment),
            0,
        ),
        (
            grow("t", 3, Some(vec![vec![1]])),
            Some(InvalidReplicaAssignment),
            0,
        ),
        (
            grow("t", 3, Some(vec![vec![1, 1]])),
            Some(InvalidReplicaAssignment),
            0,
        ),
        (
            grow("t", 3, Some(vec![vec![1, 7]])),
            Some(InvalidReplicaAssignment),
            0,
        ),
    ];
    for (t, expected, added) in cases {
        let desc = format!("{t:?}");
        let (records, results) = add_partitions(&mut c, &image, vec![t]);
        assert_eq!(
            results[0].error.as_ref().map(|e| e.code),
            expected,
            "{desc}"
        );
        assert_eq!(records.len(), added, "{desc}");
        let (after, delta) = image.apply(&records).unwrap();
        assert_eq!(delta.partitions_added.len(), added);
        assert_eq!(
            after.topic_by_name("t").unwrap().partitions.len(),
            2 + added
        );
    }
    let (_, results) = add_partitions(&mut c, &image, vec![grow("t", 3, None), grow("t", 4, None)]);
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0].error.as_ref().map(|e| e.code),
        Some(InvalidRequest)
    );
    // Too few unfenced brokers for the topic's replication factor.
    let image1 = create_topic(&mut c, &image, "wide", 1, 3);
    let fence = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id: 3,
        broker_epoch: broker_epoch(&image1, 3),
        want_fence: true,
        want_shutdown: false,
        offline_replicas: Vec::new(),
    });
    let image1 = commit(&mut c, &image1, fence, 0).0;
    let (_, results) = add_partitions(&mut c, &image1, vec![grow("wide", 2, None)]);
    assert_eq!(
        results[0].error.as_ref().map(|e| e.code),
        Some(InvalidReplicationFactor)
    );
}

#[test]
fn a_request_at_the_partition_limit_is_handled_in_one_pass() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    let topics: Vec<_> = (0..2_000)
        .map(|i| topic(&format!("bulk.{i}"), 5, 2))
        .collect();
    let started = std::time::Instant::now();
    let (records, results) = create(&mut c, &image, topics);
    assert!(results.iter().all(|r| r.error.is_none()));
    assert_eq!(records.len(), 2_000 + 10_000);
    let (after, delta) = image.apply(&records).unwrap();
    assert_eq!(
        (after.topic_count(), delta.partitions_added.len()),
        (2_000, 10_000)
    );
    // Generous bound: it only catches per-item copies of the image (quadratic time).
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}
