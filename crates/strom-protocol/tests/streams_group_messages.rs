//! KIP-1071's StreamsGroupHeartbeat (API 88) and StreamsGroupDescribe (API 89), added to
//! the vendored kafka-protocol as a STROM PATCH: every field survives an encode/decode
//! round trip, a small body matches bytes worked out by hand from Kafka's JSON spec, the
//! API keys, versions and header versions are Kafka 4.2's, and a truncated body is an
//! error, never a panic.

mod common;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    streams_group_describe_response as describe, streams_group_heartbeat_request as hb_req,
    streams_group_heartbeat_response as hb_resp, ApiKey, GroupId, RequestKind, ResponseKind,
    StreamsGroupDescribeRequest, StreamsGroupDescribeResponse, StreamsGroupHeartbeatRequest,
    StreamsGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use common::{check, encode};

fn s(text: &'static str) -> StrBytes {
    StrBytes::from_static_str(text)
}

fn task_ids(subtopology: &'static str, partitions: Vec<i32>) -> hb_req::TaskIds {
    hb_req::TaskIds::default()
        .with_subtopology_id(s(subtopology))
        .with_partitions(partitions)
}

fn heartbeat_request() -> StreamsGroupHeartbeatRequest {
    let config = hb_req::KeyValue::default()
        .with_key(s("cleanup.policy"))
        .with_value(s("compact"));
    let changelog = hb_req::TopicInfo::default()
        .with_name(s("app-counts-changelog"))
        .with_partitions(0)
        .with_replication_factor(-1)
        .with_topic_configs(vec![config]);
    let repartition = hb_req::TopicInfo::default()
        .with_name(s("app-counts-repartition"))
        .with_partitions(4)
        .with_replication_factor(3);
    let subtopology = hb_req::Subtopology::default()
        .with_subtopology_id(s("0"))
        .with_source_topics(vec![s("lines")])
        .with_source_topic_regex(vec![s("in-.*")])
        .with_state_changelog_topics(vec![changelog])
        .with_repartition_sink_topics(vec![s("app-counts-repartition")])
        .with_repartition_source_topics(vec![repartition])
        .with_copartition_groups(vec![hb_req::CopartitionGroup::default()
            .with_source_topics(vec![0])
            .with_source_topic_regex(vec![0])
            .with_repartition_source_topics(vec![0])]);
    let offset = hb_req::TaskOffset::default()
        .with_subtopology_id(s("1"))
        .with_partition(2)
        .with_offset(i64::MAX);
    StreamsGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("app")))
        .with_member_id(s("member-1"))
        .with_member_epoch(0)
        .with_instance_id(Some(s("instance-a")))
        .with_rack_id(None)
        .with_rebalance_timeout_ms(300_000)
        .with_topology(Some(
            hb_req::Topology::default()
                .with_epoch(7)
                .with_subtopologies(vec![subtopology]),
        ))
        .with_active_tasks(Some(vec![task_ids("0", vec![0, 1])]))
        .with_standby_tasks(Some(Vec::new()))
        .with_warmup_tasks(None)
        .with_process_id(Some(s("4c1f2a9e-0d7e-4c55-9f4e-6b1f1f2d3a4b")))
        .with_user_endpoint(Some(
            hb_req::Endpoint::default()
                .with_host(s("host-a"))
                .with_port(u16::MAX),
        ))
        .with_client_tags(Some(vec![hb_req::KeyValue::default()
            .with_key(s("zone"))
            .with_value(s("eu-1"))]))
        .with_task_offsets(Some(vec![offset.clone()]))
        .with_task_end_offsets(Some(vec![offset]))
        .with_shutdown_application(true)
}

fn heartbeat_response() -> StreamsGroupHeartbeatResponse {
    let partitions = hb_resp::TopicPartition::default()
        .with_topic(s("lines"))
        .with_partitions(vec![0, 3]);
    StreamsGroupHeartbeatResponse::default()
        .with_throttle_time_ms(5)
        .with_error_code(0)
        .with_error_message(None)
        .with_member_id(s("member-1"))
        .with_member_epoch(12)
        .with_heartbeat_interval_ms(5000)
        .with_acceptable_recovery_lag(10_000)
        .with_task_offset_interval_ms(60_000)
        .with_status(Some(vec![hb_resp::Status::default()
            .with_status_code(1)
            .with_status_detail(s("Source topics lines are missing."))]))
        .with_active_tasks(Some(vec![hb_resp::TaskIds::default()
            .with_subtopology_id(s("0"))
            .with_partitions(vec![0, 3])]))
        .with_standby_tasks(None)
        .with_warmup_tasks(Some(Vec::new()))
        .with_partitions_by_user_endpoint(Some(vec![hb_resp::EndpointToPartitions::default()
            .with_user_endpoint(
                hb_resp::Endpoint::default()
                    .with_host(s("host-a"))
                    .with_port(8080),
            )
            .with_active_partitions(vec![partitions.clone()])
            .with_standby_partitions(vec![partitions])]))
}

fn describe_response() -> StreamsGroupDescribeResponse {
    let tasks = describe::TaskIds::default()
        .with_subtopology_id(s("0"))
        .with_partitions(vec![1, 2]);
    let assignment = describe::Assignment::default()
        .with_active_tasks(vec![tasks.clone()])
        .with_standby_tasks(Vec::new())
        .with_warmup_tasks(vec![tasks]);
    let member = describe::Member::default()
        .with_member_id(s("member-1"))
        .with_member_epoch(3)
        .with_instance_id(None)
        .with_rack_id(Some(s("rack-1")))
        .with_client_id(s("client"))
        .with_client_host(s("/127.0.0.1"))
        .with_topology_epoch(0)
        .with_process_id(s("process"))
        .with_user_endpoint(Some(
            describe::Endpoint::default().with_host(s("h")).with_port(1),
        ))
        .with_client_tags(vec![describe::KeyValue::default()
            .with_key(s("k"))
            .with_value(s("v"))])
        .with_task_offsets(vec![describe::TaskOffset::default()
            .with_subtopology_id(s("0"))
            .with_partition(1)
            .with_offset(42)])
        .with_task_end_offsets(Vec::new())
        .with_assignment(assignment.clone())
        .with_target_assignment(assignment)
        .with_is_classic(false);
    let subtopology = describe::Subtopology::default()
        .with_subtopology_id(s("0"))
        .with_source_topics(vec![s("lines")])
        .with_repartition_sink_topics(Vec::new())
        .with_state_changelog_topics(vec![describe::TopicInfo::default()
            .with_name(s("app-counts-changelog"))
            .with_partitions(4)
            .with_replication_factor(1)])
        .with_repartition_source_topics(Vec::new());
    let group = describe::DescribedGroup::default()
        .with_group_id(GroupId(s("app")))
        .with_group_state(s("Stable"))
        .with_group_epoch(3)
        .with_assignment_epoch(3)
        .with_topology(Some(
            describe::Topology::default()
                .with_epoch(0)
                .with_subtopologies(Some(vec![subtopology])),
        ))
        .with_members(vec![member]);
    let missing = describe::DescribedGroup::default()
        .with_error_code(69)
        .with_error_message(Some(s("Group other not found.")))
        .with_group_id(GroupId(s("other")));
    StreamsGroupDescribeResponse::default()
        .with_throttle_time_ms(0)
        .with_groups(vec![group, missing])
}

#[test]
fn heartbeat_request_round_trips() {
    check(&heartbeat_request(), 0);
    // Every nullable field null (what a member sends when nothing changed).
    check(&StreamsGroupHeartbeatRequest::default(), 0);
}

#[test]
fn heartbeat_response_round_trips() {
    check(&heartbeat_response(), 0);
    check(&StreamsGroupHeartbeatResponse::default(), 0);
}

#[test]
fn describe_round_trips() {
    let request = StreamsGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(s("app")), GroupId(s("other"))])
        .with_include_authorized_operations(true);
    check(&request, 0);
    check(&describe_response(), 0);
}

#[test]
fn bytes_follow_the_spec() {
    // Flexible v0: compact array (length + 1), compact string (length + 1), bool, then
    // an empty tagged-field section.
    let request = StreamsGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(s("g"))])
        .with_include_authorized_operations(true);
    assert_eq!(&encode(&request, 0)[..], &[0x02, 0x02, b'g', 0x01, 0x00]);
    // The default heartbeat: group id "", member id "", epoch 0, instance and rack
    // null, rebalance timeout -1 (the spec's default), topology null, three task lists,
    // process id, endpoint, client tags and two offset lists null, shutdown false.
    let mut want = vec![
        0x01, 0x01, 0, 0, 0, 0, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    want.extend([0x00; 3]); // active, standby, warm-up tasks: null arrays
    want.extend([0x00, 0xff, 0x00]); // process id null, endpoint null (-1), tags null
    want.extend([0x00, 0x00, 0x00, 0x00]); // two offset lists null, shutdown false, tags
    assert_eq!(
        &encode(&StreamsGroupHeartbeatRequest::default(), 0)[..],
        &want[..]
    );
    // The port is an unsigned 16-bit integer.
    let endpoint = hb_req::Endpoint::default()
        .with_host(s("h"))
        .with_port(65535);
    assert_eq!(&encode(&endpoint, 0)[..], &[0x02, b'h', 0xff, 0xff, 0x00]);
}

#[test]
fn keys_versions_and_headers_are_kafkas() {
    assert_eq!(ApiKey::StreamsGroupHeartbeat as i16, 88);
    assert_eq!(ApiKey::StreamsGroupDescribe as i16, 89);
    assert_eq!(ApiKey::try_from(88), Ok(ApiKey::StreamsGroupHeartbeat));
    assert_eq!(ApiKey::try_from(89), Ok(ApiKey::StreamsGroupDescribe));
    for key in [ApiKey::StreamsGroupHeartbeat, ApiKey::StreamsGroupDescribe] {
        let range = key.valid_versions();
        assert_eq!((range.min, range.max), (0, 0), "{key:?}");
        // Flexible from v0: request header v2, response header v1.
        assert_eq!(key.request_header_version(0), 2);
        assert_eq!(key.response_header_version(0), 1);
        assert!(ApiKey::iter().any(|k| k == key));
    }
    // Through the enums a broker and a client use.
    let mut body = encode(&heartbeat_request(), 0);
    let decoded = RequestKind::decode(ApiKey::StreamsGroupHeartbeat, &mut body, 0).unwrap();
    assert_eq!(
        decoded,
        RequestKind::StreamsGroupHeartbeat(heartbeat_request())
    );
    let mut body = encode(&describe_response(), 0);
    let decoded = ResponseKind::decode(ApiKey::StreamsGroupDescribe, &mut body, 0).unwrap();
    assert_eq!(
        decoded,
        ResponseKind::StreamsGroupDescribe(describe_response())
    );
    // A topic id field exists in the describe response's common structs.
    let _ = describe::TopicPartitions::default().with_topic_name(TopicName(s("t")));
}

#[test]
fn hostile_lengths_are_errors() {
    // A compact array claiming 2^28 group ids in a 6-byte body.
    let mut body = Bytes::from_static(&[0x80, 0x80, 0x80, 0x80, 0x01, 0x00]);
    assert!(StreamsGroupDescribeRequest::decode(&mut body, 0).is_err());
    // A heartbeat whose topology claims a huge subtopology array.
    let mut bytes = BytesMut::new();
    bytes.extend_from_slice(&[0x01, 0x01, 0, 0, 0, 0, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff]);
    bytes.extend_from_slice(&[0x01, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0x7f]);
    assert!(StreamsGroupHeartbeatRequest::decode(&mut bytes.freeze(), 0).is_err());
}
