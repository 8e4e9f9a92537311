//! Encode/decode round trips of `__consumer_offsets` records, and byte-level layout checks.

use bytes::Bytes;
use proptest::prelude::*;
use strom_group::*;

fn member() -> impl Strategy<Value = MemberMetadata> {
    (
        "[a-z0-9-]{1,20}",
        proptest::option::of("[a-z]{1,8}"),
        "[a-z]{0,8}",
        "[0-9./]{0,15}",
        any::<i32>(),
        any::<i32>(),
        proptest::collection::vec(any::<u8>(), 0..32),
        proptest::collection::vec(any::<u8>(), 0..32),
    )
        .prop_map(
            |(id, inst, client, host, rb, sess, sub, asg)| MemberMetadata {
                member_id: id,
                group_instance_id: inst,
                client_id: client,
                client_host: host,
                rebalance_timeout_ms: rb,
                session_timeout_ms: sess,
                subscription: Bytes::from(sub),
                assignment: Bytes::from(asg),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn group_metadata_round_trip(
        group in "\\PC{1,20}",
        protocol_type in "[a-z]{0,8}",
        generation in any::<i32>(),
        protocol in proptest::option::of("[a-z]{1,8}"),
        leader in proptest::option::of("[a-z]{1,8}"),
        ts in any::<i64>(),
        members in proptest::collection::vec(member(), 0..4),
    ) {
        let key = GroupMetadataKey { group };
        let value = GroupMetadataValue {
            protocol_type, generation, protocol, leader,
            current_state_timestamp_ms: ts, members,
        };
        let record = GroupRecord::group_metadata(&key, Some(&value)).unwrap();
        prop_assert_eq!(RecordKey::decode(&record.key).unwrap(), Some(RecordKey::GroupMetadata(key)));
        prop_assert_eq!(GroupMetadataValue::decode(record.value.as_ref().unwrap()).unwrap(), value);
    }

    #[test]
    fn offset_commit_round_trip(
        group in "\\PC{1,20}",
        topic in "[a-zA-Z0-9._-]{1,30}",
        partition in any::<i32>(),
        offset in any::<i64>(),
        leader_epoch in any::<i32>(),
        metadata in "\\PC{0,30}",
        ts in any::<i64>(),
    ) {
        let key = OffsetCommitKey { group, topic, partition };
        let value = OffsetCommitValue { offset, leader_epoch, metadata, commit_timestamp_ms: ts, expire_timestamp_ms: None };
        let record = GroupRecord::offset_commit(&key, Some(&value)).unwrap();
        prop_assert_eq!(RecordKey::decode(&record.key).unwrap(), Some(RecordKey::OffsetCommit(key)));
        prop_assert_eq!(OffsetCommitValue::decode(record.value.as_ref().unwrap()).unwrap(), value);
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = RecordKey::decode(&bytes);
        let _ = OffsetCommitValue::decode(&bytes);
        let _ = GroupMetadataValue::decode(&bytes);
    }
}

#[test]
fn offset_commit_layout_matches_kafka() {
    let key = OffsetCommitKey {
        group: "g".into(),
        topic: "t".into(),
        partition: 2,
    };
    let value = OffsetCommitValue {
        offset: 5,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: 9,
        expire_timestamp_ms: None,
    };
    let record = GroupRecord::offset_commit(&key, Some(&value)).unwrap();
    assert_eq!(
        record.key.as_ref(),
        &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 2]
    );
    let mut expected = vec![0, 3, 0, 0, 0, 0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0, 0];
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9]);
    assert_eq!(record.value.unwrap().as_ref(), expected.as_slice());
    let tombstone =
        GroupRecord::group_metadata(&GroupMetadataKey { group: "g".into() }, None).unwrap();
    assert_eq!(tombstone.key.as_ref(), &[0, 2, 0, 1, b'g']);
    assert!(tombstone.value.is_none());
}

#[test]
fn older_value_versions_decode_and_unknown_keys_are_skipped() {
    // Offset commit value v1: offset, metadata, commit timestamp, expire timestamp.
    let mut v1 = vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 1, b'm'];
    v1.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4]);
    let value = OffsetCommitValue::decode(&v1).unwrap();
    assert_eq!(value.offset, 7);
    assert_eq!(value.leader_epoch, -1);
    assert_eq!(value.metadata, "m");
    assert_eq!(value.commit_timestamp_ms, 3);
    assert_eq!(RecordKey::decode(&[0, 3, 0, 1, b'g']).unwrap(), None);
    assert!(RecordKey::decode(&[0, 2, 0, 5, b'g']).is_err());
}

#[test]
fn expiring_offset_commit_uses_value_version_1() {
    let key = OffsetCommitKey {
        group: "g".into(),
        topic: "t".into(),
        partition: 0,
    };
    let value = OffsetCommitValue {
        offset: 5,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: 9,
        expire_timestamp_ms: Some(20),
    };
    let record = GroupRecord::offset_commit(&key, Some(&value)).unwrap();
    let bytes = record.value.unwrap();
    assert_eq!(&bytes[..2], &[0, 1]);
    assert_eq!(OffsetCommitValue::decode(&bytes).unwrap(), value);
}
