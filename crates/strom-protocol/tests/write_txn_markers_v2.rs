//! KIP-1228's WriteTxnMarkers version 2 (API 27), added to the vendored kafka-protocol as a
//! STROM PATCH: the marker's `TransactionVersion` (int8, ignorable, default 0) is on the
//! wire at version 2 only, every field survives a round trip at 1 and 2, a small body
//! matches bytes worked out by hand from Kafka 4.2's JSON spec, the response's version 2 is
//! version 1's bytes, and a truncated body is an error, never a panic.

mod common;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, RequestKind, ResponseKind, TopicName, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, StrBytes};

use common::{check, encode};

fn decode<T: Decodable>(bytes: &Bytes, version: i16) -> T {
    let mut input = bytes.clone();
    let decoded = T::decode(&mut input, version).unwrap();
    assert!(input.is_empty(), "decode left {} bytes", input.len());
    decoded
}

fn marker(transaction_version: i8) -> WritableTxnMarker {
    WritableTxnMarker::default()
        .with_producer_id(ProducerId(0x0102_0304_0506_0708))
        .with_producer_epoch(9)
        .with_transaction_result(true)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_indexes(vec![0, 7])])
        .with_coordinator_epoch(3)
        .with_transaction_version(transaction_version)
}

fn request(transaction_version: i8) -> WriteTxnMarkersRequest {
    WriteTxnMarkersRequest::default().with_markers(vec![marker(transaction_version)])
}

/// The request body at version 1 (no TransactionVersion), worked out from the JSON spec.
fn v1_bytes() -> Vec<u8> {
    let mut b = vec![0x02]; // Markers: compact array of 1
    b.extend_from_slice(&0x0102_0304_0506_0708i64.to_be_bytes()); // ProducerId
    b.extend_from_slice(&9i16.to_be_bytes()); // ProducerEpoch
    b.push(1); // TransactionResult: COMMIT
    b.push(0x02); // Topics: compact array of 1
    b.extend_from_slice(&[0x02, b't']); // Name: compact string "t"
    b.push(0x03); // PartitionIndexes: compact array of 2
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&7i32.to_be_bytes());
    b.push(0x00); // topic's tagged fields
    b.extend_from_slice(&3i32.to_be_bytes()); // CoordinatorEpoch
    b.push(0x00); // marker's tagged fields
    b.push(0x00); // request's tagged fields
    b
}

#[test]
fn version_2_carries_the_transaction_version_after_the_coordinator_epoch() {
    let v1 = v1_bytes();
    // Version 2: the same fields, then TransactionVersion (int8) before the marker's tagged
    // fields.
    let mut v2 = v1.clone();
    v2.insert(v1.len() - 2, 2);
    assert_eq!(encode(&request(2), 2).as_ref(), v2.as_slice());
    assert_eq!(encode(&request(2), 1).as_ref(), v1.as_slice());
}

#[test]
fn the_field_is_ignorable_below_version_2_and_decoded_as_its_default() {
    // Kafka's coordinator always sets the field and lets the version decide: at 1 it is
    // dropped without an error, and a version 1 request reads as transaction version 0.
    let at_v1 = encode(&request(2), 1);
    let back: WriteTxnMarkersRequest = decode(&at_v1, 1);
    assert_eq!(back, request(0));
    assert_eq!(back.markers[0].transaction_version, 0);
}

#[test]
fn round_trips_at_both_versions_and_truncations_are_refused() {
    for (version, transaction_version) in [(1, 0), (2, 0), (2, 1), (2, 2), (2, -1)] {
        check(&request(transaction_version), version);
    }
    let response =
        WriteTxnMarkersResponse::default().with_markers(vec![WritableTxnMarkerResult::default()
            .with_producer_id(ProducerId(42))
            .with_topics(vec![WritableTxnMarkerTopicResult::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![WritableTxnMarkerPartitionResult::default()
                    .with_partition_index(7)
                    .with_error_code(47)])])]);
    // The response's version 2 is version 1's bytes.
    assert_eq!(encode(&response, 2), encode(&response, 1));
    for version in [1, 2] {
        check(&response, version);
    }
}

#[test]
fn versions_and_headers_are_kafka_4_2s() {
    let range = ApiKey::WriteTxnMarkers.valid_versions();
    assert_eq!((range.min, range.max), (1, 2));
    assert_eq!(
        (
            WriteTxnMarkersRequest::VERSIONS.min,
            WriteTxnMarkersRequest::VERSIONS.max
        ),
        (1, 2)
    );
    assert_eq!(
        (
            WriteTxnMarkersResponse::VERSIONS.min,
            WriteTxnMarkersResponse::VERSIONS.max
        ),
        (1, 2)
    );
    assert_eq!(WriteTxnMarkersRequest::header_version(2), 2);
    assert_eq!(WriteTxnMarkersResponse::header_version(2), 1);
    // Version 0 was removed in Kafka 4.0; 3 does not exist.
    for version in [0, 3] {
        let mut buf = BytesMut::new();
        assert!(request(2).encode(&mut buf, version).is_err());
        assert!(WriteTxnMarkersRequest::decode(&mut Bytes::from(v1_bytes()), version).is_err());
    }
    // Through the enums the broker decodes with.
    let bytes = encode(&request(2), 2);
    match RequestKind::decode(ApiKey::WriteTxnMarkers, &mut bytes.clone(), 2).unwrap() {
        RequestKind::WriteTxnMarkers(decoded) => assert_eq!(decoded, request(2)),
        other => panic!("decoded as {other:?}"),
    }
    let mut out = BytesMut::new();
    ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default())
        .encode(&mut out, 2)
        .unwrap();
    assert_eq!(out.as_ref(), &[0x01, 0x00]);
}
