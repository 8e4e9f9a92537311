//! Request decoding and response encoding: typed refusals for what Kafka refuses, round trips
//! through kafka-protocol's client-side encoders, response header versions.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::{Decodable, Encodable};
use strom_protocol::messages::{
    metadata_request, produce_request, ApiKey, MetadataRequest, MetadataResponse, ProduceRequest,
    RequestHeader, RequestKind, ResponseHeader, ResponseKind, TopicName,
};
use strom_protocol::{
    decode_request, encode_response, error_response, ApiVersionTable, ErrorCode, Incoming,
    RequestError, ResponseTarget, StrBytes,
};

fn table() -> ApiVersionTable {
    ApiVersionTable::new([ApiKey::Produce, ApiKey::Fetch, ApiKey::Metadata])
}

fn header_bytes(api_key: i16, api_version: i16, correlation_id: i32) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_i16(api_key);
    buf.put_i16(api_version);
    buf.put_i32(correlation_id);
    buf.put_i16(-1);
    let flexible = ApiKey::try_from(api_key)
        .is_ok_and(|api_key| api_key.request_header_version(api_version) >= 2);
    if flexible {
        buf.put_u8(0);
    }
    buf
}

/// Encodes a request the way a client does: header at the API's header version, then body.
fn encode_request(api_key: ApiKey, api_version: i16, body: &RequestKind) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(api_version)
        .with_correlation_id(42)
        .with_client_id(Some(StrBytes::from_static_str("test")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api_key.request_header_version(api_version))
        .unwrap();
    body.encode(&mut buf, api_version).unwrap();
    buf.freeze()
}

fn produce(acks: i16) -> ProduceRequest {
    let partition = produce_request::PartitionProduceData::default()
        .with_index(3)
        .with_records(Some(Bytes::from_static(b"opaque batch bytes")));
    let topic = produce_request::TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str("events")))
        .with_partition_data(vec![partition]);
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(1000)
        .with_topic_data(vec![topic])
}

#[test]
fn round_trips_every_produce_version() {
    for version in 3..=13 {
        let body = RequestKind::Produce(produce(-1));
        let frame = encode_request(ApiKey::Produce, version, &body);
        let Ok(Incoming::Request(request)) = decode_request(&frame, &table()) else {
            panic!("v{version} not decoded");
        };
        assert_eq!(request.api_key, ApiKey::Produce);
        assert_eq!(request.api_version(), version);
        assert_eq!(request.header.correlation_id, 42);
        assert!(request.expects_response());
        let RequestKind::Produce(decoded) = request.body else {
            panic!("not Produce");
        };
        let partition = &decoded.topic_data[0].partition_data[0];
        assert_eq!(
            partition.records.as_deref(),
            Some(&b"opaque batch bytes"[..])
        );
    }
}

#[test]
fn produce_with_acks_zero_expects_no_response() {
    let frame = encode_request(ApiKey::Produce, 9, &RequestKind::Produce(produce(0)));
    let Ok(Incoming::Request(request)) = decode_request(&frame, &table()) else {
        panic!("not decoded");
    };
    assert!(!request.expects_response());
}

#[test]
fn null_client_id_reads_as_empty() {
    let mut frame = header_bytes(3, 1, 7);
    frame.put_i32(-1);
    let Ok(Incoming::Request(request)) = decode_request(&frame.freeze(), &table()) else {
        panic!("not decoded");
    };
    assert_eq!(request.header.client_id.as_deref(), Some(""));
    let RequestKind::Metadata(body) = request.body else {
        panic!("not Metadata");
    };
    assert_eq!(body.topics, None);
}

#[test]
fn unknown_api_key_is_refused() {
    let frame = header_bytes(999, 0, 7).freeze();
    assert_eq!(
        decode_request(&frame, &table()),
        Err(RequestError::UnknownApiKey {
            api_key: 999,
            api_version: 0,
            correlation_id: Some(7)
        })
    );
    let frame = header_bytes(-5, 0, 7).freeze();
    assert!(matches!(
        decode_request(&frame, &table()),
        Err(RequestError::UnknownApiKey { api_key: -5, .. })
    ));
}

#[test]
fn api_not_served_is_refused_even_when_kafka_knows_it() {
    let frame = header_bytes(ApiKey::GetTelemetrySubscriptions as i16, 0, 7).freeze();
    let error = decode_request(&frame, &table()).unwrap_err();
    assert_eq!(
        error,
        RequestError::UnsupportedVersion {
            api_key: ApiKey::GetTelemetrySubscriptions,
            api_version: 0,
            correlation_id: 7
        }
    );
    assert!(error.closes_connection());
}

#[test]
fn versions_outside_the_range_are_refused() {
    // Produce v0..v2 are advertised (KAFKA-18659) but refused, as Kafka 4 does.
    for (api_key, api_version) in [
        (ApiKey::Produce, 0),
        (ApiKey::Produce, 2),
        (ApiKey::Metadata, 99),
        (ApiKey::Fetch, 3),
        (ApiKey::Fetch, -1),
    ] {
        let frame = header_bytes(api_key as i16, api_version, 7).freeze();
        assert_eq!(
            decode_request(&frame, &table()),
            Err(RequestError::UnsupportedVersion {
                api_key,
                api_version,
                correlation_id: 7
            }),
            "{api_key:?} v{api_version}"
        );
    }
}

#[test]
fn truncated_frames_are_refused() {
    let cases: [&[u8]; 4] = [&[], &[0], &[0, 3], &[0, 3, 0, 1, 0, 0]];
    for frame in cases {
        assert!(
            matches!(
                decode_request(&Bytes::copy_from_slice(frame), &table()),
                Err(RequestError::MalformedHeader { .. })
            ),
            "{frame:?}"
        );
    }
    let full = encode_request(ApiKey::Produce, 9, &RequestKind::Produce(produce(1)));
    let header_len = 4 + 4 + 2 + 4 + 1;
    for len in header_len..full.len() {
        assert!(
            matches!(
                decode_request(&full.slice(..len), &table()),
                Err(RequestError::MalformedBody {
                    api_key: ApiKey::Produce,
                    api_version: 9,
                    correlation_id: 42,
                    ..
                })
            ),
            "truncated to {len}"
        );
    }
}

#[test]
fn response_header_is_v1_for_flexible_versions_and_v0_before() {
    let response = ResponseKind::Metadata(MetadataResponse::default());
    for (api_version, header_version) in [(8, 0), (9, 1), (12, 1)] {
        let target = ResponseTarget {
            api_key: ApiKey::Metadata,
            api_version,
            correlation_id: 9,
        };
        let frame = encode_response(&target, &response).unwrap();
        let size = i32::from_be_bytes(frame[..4].try_into().unwrap());
        assert_eq!(size as usize, frame.len() - 4);
        let mut body = frame.slice(4..);
        let header = ResponseHeader::decode(&mut body, header_version).unwrap();
        assert_eq!(header.correlation_id, 9);
        let decoded = MetadataResponse::decode(&mut body, api_version).unwrap();
        assert_eq!(decoded, MetadataResponse::default());
        assert!(body.is_empty(), "v{api_version}: {} bytes left", body.len());
    }
}

#[test]
fn response_that_does_not_fit_its_version_is_an_encode_error() {
    let response = ResponseKind::Metadata(MetadataResponse::default());
    let target = ResponseTarget {
        api_key: ApiKey::Metadata,
        api_version: 99,
        correlation_id: 9,
    };
    assert!(encode_response(&target, &response).is_err());
}

#[test]
fn error_response_names_every_requested_topic() {
    let topic = metadata_request::MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_static_str("a"))));
    let request = RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![topic])));
    let Some(ResponseKind::Metadata(response)) = error_response(
        &request,
        12,
        ErrorCode::TOPIC_AUTHORIZATION_FAILED,
        &table(),
    ) else {
        panic!("no Metadata error response");
    };
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].error_code, 29);
    assert_eq!(
        response.topics[0].name.as_deref().map(|name| &**name),
        Some("a")
    );

    let request = RequestKind::Produce(produce(-1));
    let Some(ResponseKind::Produce(response)) =
        error_response(&request, 9, ErrorCode::UNKNOWN_SERVER_ERROR, &table())
    else {
        panic!("no Produce error response");
    };
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(
        (partition.index, partition.error_code, partition.base_offset),
        (3, -1, -1)
    );
}

#[test]
fn every_error_response_encodes_at_every_version() {
    let table = ApiVersionTable::new(ApiKey::iter());
    let requests: Vec<(ApiKey, RequestKind)> = vec![
        (ApiKey::Produce, RequestKind::Produce(produce(1))),
        (ApiKey::Fetch, RequestKind::Fetch(Default::default())),
        (
            ApiKey::ListOffsets,
            RequestKind::ListOffsets(Default::default()),
        ),
        (ApiKey::Metadata, RequestKind::Metadata(Default::default())),
        (
            ApiKey::OffsetCommit,
            RequestKind::OffsetCommit(Default::default()),
        ),
        (
            ApiKey::OffsetFetch,
            RequestKind::OffsetFetch(Default::default()),
        ),
        (
            ApiKey::FindCoordinator,
            RequestKind::FindCoordinator(Default::default()),
        ),
        (
            ApiKey::JoinGroup,
            RequestKind::JoinGroup(Default::default()),
        ),
        (
            ApiKey::Heartbeat,
            RequestKind::Heartbeat(Default::default()),
        ),
        (
            ApiKey::LeaveGroup,
            RequestKind::LeaveGroup(Default::default()),
        ),
        (
            ApiKey::SyncGroup,
            RequestKind::SyncGroup(Default::default()),
        ),
        (
            ApiKey::DescribeGroups,
            RequestKind::DescribeGroups(Default::default()),
        ),
        (
            ApiKey::ListGroups,
            RequestKind::ListGroups(Default::default()),
        ),
        (
            ApiKey::SaslHandshake,
            RequestKind::SaslHandshake(Default::default()),
        ),
        (
            ApiKey::ApiVersions,
            RequestKind::ApiVersions(Default::default()),
        ),
        (
            ApiKey::CreateTopics,
            RequestKind::CreateTopics(Default::default()),
        ),
        (
            ApiKey::DeleteTopics,
            RequestKind::DeleteTopics(Default::default()),
        ),
        (
            ApiKey::InitProducerId,
            RequestKind::InitProducerId(Default::default()),
        ),
        (
            ApiKey::DeleteRecords,
            RequestKind::DeleteRecords(Default::default()),
        ),
        (
            ApiKey::OffsetForLeaderEpoch,
            RequestKind::OffsetForLeaderEpoch(Default::default()),
        ),
        (
            ApiKey::DescribeTopicPartitions,
            RequestKind::DescribeTopicPartitions(Default::default()),
        ),
        (
            ApiKey::DeleteGroups,
            RequestKind::DeleteGroups(Default::default()),
        ),
        (
            ApiKey::OffsetDelete,
            RequestKind::OffsetDelete(Default::default()),
        ),
        (
            ApiKey::ConsumerGroupHeartbeat,
            RequestKind::ConsumerGroupHeartbeat(Default::default()),
        ),
        (
            ApiKey::SaslAuthenticate,
            RequestKind::SaslAuthenticate(Default::default()),
        ),
        (
            ApiKey::CreatePartitions,
            RequestKind::CreatePartitions(Default::default()),
        ),
        (
            ApiKey::DescribeConfigs,
            RequestKind::DescribeConfigs(Default::default()),
        ),
        (
            ApiKey::AlterConfigs,
            RequestKind::AlterConfigs(Default::default()),
        ),
        (
            ApiKey::IncrementalAlterConfigs,
            RequestKind::IncrementalAlterConfigs(Default::default()),
        ),
        (
            ApiKey::DescribeCluster,
            RequestKind::DescribeCluster(Default::default()),
        ),
        (
            ApiKey::AddPartitionsToTxn,
            RequestKind::AddPartitionsToTxn(Default::default()),
        ),
        (
            ApiKey::AddOffsetsToTxn,
            RequestKind::AddOffsetsToTxn(Default::default()),
        ),
        (ApiKey::EndTxn, RequestKind::EndTxn(Default::default())),
        (
            ApiKey::TxnOffsetCommit,
            RequestKind::TxnOffsetCommit(Default::default()),
        ),
        (
            ApiKey::ListTransactions,
            RequestKind::ListTransactions(Default::default()),
        ),
    ];
    for (api_key, request) in requests {
        let range = table.range(api_key).unwrap();
        for api_version in range.min..=range.max {
            let response =
                error_response(&request, api_version, ErrorCode::INVALID_REQUEST, &table)
                    .unwrap_or_else(|| panic!("no error response for {api_key:?}"));
            let target = ResponseTarget {
                api_key,
                api_version,
                correlation_id: 1,
            };
            encode_response(&target, &response)
                .unwrap_or_else(|error| panic!("{api_key:?} v{api_version}: {error}"));
        }
    }
}

#[test]
fn metadata_error_for_a_topic_addressed_by_id_encodes_before_nullable_names() {
    let topic = metadata_request::MetadataRequestTopic::default().with_name(None);
    let request = RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![topic])));
    for api_version in [10, 11, 12, 13] {
        let response =
            error_response(&request, api_version, ErrorCode::UNKNOWN_TOPIC_ID, &table()).unwrap();
        let target = ResponseTarget {
            api_key: ApiKey::Metadata,
            api_version,
            correlation_id: 1,
        };
        assert!(
            encode_response(&target, &response).is_ok(),
            "v{api_version}"
        );
    }
}
