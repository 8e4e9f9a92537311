//! End-to-end smoke test of the public API: register brokers, create a topic, snapshot.

mod common;
use common::*;
use strom_meta::*;

#[test]
fn register_create_snapshot_round_trip() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    assert_eq!(image.unfenced_broker_ids(), vec![1, 2, 3]);
    let image = create_topic(&mut c, &image, "orders", 3, 2);
    let topic = image.topic_by_name("orders").unwrap();
    assert_eq!(topic.partitions.len(), 3);
    assert_eq!(topic.replication_factor(), 2);
    let bytes = image.encode_snapshot();
    assert_eq!(MetadataImage::decode_snapshot(&bytes).unwrap(), image);
    let records = image.to_records();
    assert_eq!(decode_records(&encode_records(&records)).unwrap(), records);
}

#[test]
fn requests_replies_and_records_cross_the_wire_with_serde() {
    let mut c = controller();
    let image = cluster(&mut c, &[1]);
    let request = create_topic_request("wire", 2, 1);
    let json = serde_json::to_string(&request).unwrap();
    let back: ControllerRequest = serde_json::from_str(&json).unwrap();
    assert_eq!(back, request);
    let (records, reply) = c.handle(&image, back, 0).unwrap();
    let reply_back: ControllerReply =
        serde_json::from_str(&serde_json::to_string(&reply).unwrap()).unwrap();
    // Config docs are looked up by name on the receiving side, not sent.
    let ControllerReply::CreateTopics(results) = reply_back else {
        panic!()
    };
    assert_eq!(
        results[0].configs.len(),
        config_defs::topic_config_defs().len()
    );
    let records_back: Vec<MetadataRecord> =
        serde_json::from_str(&serde_json::to_string(&records).unwrap()).unwrap();
    assert_eq!(records_back, records);
}

#[test]
fn error_codes_are_kafkas() {
    use ErrorCode::*;
    let table = [
        (UnknownServerError, -1),
        (UnknownTopicOrPartition, 3),
        (InvalidTopicException, 17),
        (TopicAlreadyExists, 36),
        (InvalidPartitions, 37),
        (InvalidReplicationFactor, 38),
        (InvalidReplicaAssignment, 39),
        (InvalidConfig, 40),
        (NotController, 41),
        (InvalidRequest, 42),
        (PolicyViolation, 44),
        (TopicDeletionDisabled, 73),
        (FencedLeaderEpoch, 74),
        (StaleBrokerEpoch, 77),
        (UnknownTopicId, 100),
        (DuplicateBrokerRegistration, 101),
        (BrokerIdNotRegistered, 102),
        (IneligibleReplica, 107),
        (InvalidUpdateVersion, 95),
    ];
    for (error, code) in table {
        assert_eq!(error.code(), code, "{error:?}");
    }
    let e = ControllerError::new(StaleBrokerEpoch, "old");
    assert_eq!(e.to_string(), "StaleBrokerEpoch (77): old");
}
