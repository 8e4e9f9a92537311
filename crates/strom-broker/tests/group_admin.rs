//! The group tooling APIs over the wire: ListGroups, DescribeGroups, OffsetDelete and
//! DeleteGroups against a real group, and a restart that must not bring a deleted group back.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{create_topic, s, wait_loaded, Client, TestBroker};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use strom_broker::{Broker, BrokerConfig, MetadataPort};

const GROUP: &str = "admin-g";

fn group() -> GroupId {
    GroupId(s(GROUP))
}

/// A ConsumerProtocolSubscription v0 of `topics` with null user data.
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = 0i16.to_be_bytes().to_vec();
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(b)
}

async fn join(client: &mut Client, member_id: &str) -> JoinGroupResponse {
    client
        .send(
            7,
            JoinGroupRequest::default()
                .with_group_id(group())
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_member_id(s(member_id))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(subscription(&["t"]))]),
        )
        .await
}

/// Joins and syncs one member; returns its id and generation.
async fn stable_member(client: &mut Client) -> (String, i32) {
    let first = join(client, "").await;
    assert_eq!(first.error_code, 79);
    let member = first.member_id.to_string();
    let joined = join(client, &member).await;
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let synced = client
        .send(
            5,
            SyncGroupRequest::default()
                .with_group_id(group())
                .with_generation_id(joined.generation_id)
                .with_member_id(s(&member))
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s("range")))
                .with_assignments(vec![SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(Bytes::from_static(b"assigned"))]),
        )
        .await;
    assert_eq!(synced.error_code, 0);
    (member, joined.generation_id)
}

async fn commit(client: &mut Client, generation: i32, member: &str, topic: &str) {
    let response = client
        .send(
            8,
            OffsetCommitRequest::default()
                .with_group_id(group())
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(s(member))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(7)
                        .with_committed_leader_epoch(-1)])]),
        )
        .await;
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
}

async fn committed(client: &mut Client, topic: &str) -> i64 {
    let response = client
        .send(
            7,
            OffsetFetchRequest::default()
                .with_group_id(group())
                .with_require_stable(true)
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_indexes(vec![0])])),
        )
        .await;
    assert_eq!(response.error_code, 0);
    response.topics[0].partitions[0].committed_offset
}

/// ListGroups, retried (boundedly) while partitions still load in the background.
async fn list(client: &mut Client, version: i16, states: &[&str]) -> Vec<(String, String, String)> {
    let mut response = ListGroupsResponse::default();
    for _ in 0..250 {
        response = client
            .send(
                version,
                ListGroupsRequest::default()
                    .with_states_filter(states.iter().map(|x| s(x)).collect())
                    .with_types_filter(if version >= 5 {
                        vec![s("classic")]
                    } else {
                        vec![]
                    }),
            )
            .await;
        if response.error_code != 14 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(response.error_code, 0);
    response
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.0.to_string(),
                g.group_state.to_string(),
                g.group_type.to_string(),
            )
        })
        .collect()
}

async fn describe(
    client: &mut Client,
    version: i16,
    id: &str,
) -> describe_groups_response::DescribedGroup {
    let response = client
        .send(
            version,
            DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(s(id))])
                .with_include_authorized_operations(true),
        )
        .await;
    assert_eq!(response.groups.len(), 1);
    response.groups[0].clone()
}

async fn delete(client: &mut Client) -> i16 {
    let response = client
        .send(
            2,
            DeleteGroupsRequest::default().with_groups_names(vec![group()]),
        )
        .await;
    assert_eq!(response.results.len(), 1);
    assert_eq!(response.results[0].group_id, group());
    response.results[0].error_code
}

#[tokio::test]
async fn list_describe_offset_delete_and_delete_groups() {
    let broker = TestBroker::start_with(|c| c.group_initial_rebalance_delay_ms = 0).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "t", 1).await;
    create_topic(&mut client, "u", 1).await;
    let found = client
        .send(3, FindCoordinatorRequest::default().with_key(s(GROUP)))
        .await;
    assert_eq!(found.error_code, 0);
    wait_loaded(&mut client, GROUP).await;
    let (member, generation) = stable_member(&mut client).await;
    commit(&mut client, generation, &member, "t").await;
    commit(&mut client, generation, &member, "u").await;

    let listed = list(&mut client, 5, &[]).await;
    assert!(
        listed.contains(&(GROUP.into(), "Stable".into(), "classic".into())),
        "{listed:?}"
    );
    assert!(list(&mut client, 4, &["Empty"]).await.is_empty());
    assert_eq!(list(&mut client, 0, &[]).await.len(), 1);

    let d = describe(&mut client, 5, GROUP).await;
    assert_eq!(d.error_code, 0);
    assert_eq!(d.group_state.to_string(), "Stable");
    assert_eq!(d.protocol_type.to_string(), "consumer");
    assert_eq!(d.protocol_data.to_string(), "range");
    assert_eq!(d.authorized_operations, (1 << 3) | (1 << 6) | (1 << 8));
    assert_eq!(d.members.len(), 1);
    let m = &d.members[0];
    assert_eq!(m.member_id.to_string(), member);
    assert_eq!(m.client_id.to_string(), "strom-test");
    assert_eq!(m.client_host.to_string(), "/127.0.0.1");
    assert_eq!(m.member_metadata, subscription(&["t"]));
    assert_eq!(m.member_assignment, Bytes::from_static(b"assigned"));

    let unknown_v6 = describe(&mut client, 6, "nope").await;
    assert_eq!(unknown_v6.error_code, 69);
    assert_eq!(unknown_v6.group_state.to_string(), "Dead");
    let unknown_v5 = describe(&mut client, 5, "nope").await;
    assert_eq!(unknown_v5.error_code, 0);
    assert_eq!(unknown_v5.group_state.to_string(), "Dead");

    let deleted = client
        .send(
            0,
            OffsetDeleteRequest::default()
                .with_group_id(group())
                .with_topics(vec![
                    OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partitions(vec![OffsetDeleteRequestPartition::default()]),
                    OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(s("u")))
                        .with_partitions(vec![OffsetDeleteRequestPartition::default()]),
                ]),
        )
        .await;
    assert_eq!(deleted.error_code, 0);
    let codes: Vec<(String, i16)> = deleted
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.partitions[0].error_code))
        .collect();
    assert_eq!(codes, [("t".to_string(), 86), ("u".to_string(), 0)]);
    assert_eq!(committed(&mut client, "t").await, 7);
    assert_eq!(committed(&mut client, "u").await, -1);

    assert_eq!(delete(&mut client).await, 68);
    let left = client
        .send(
            4,
            LeaveGroupRequest::default()
                .with_group_id(group())
                .with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(s(&member))
                ]),
        )
        .await;
    assert_eq!(left.error_code, 0);
    assert_eq!(list(&mut client, 4, &["empty"]).await.len(), 1);
    assert_eq!(delete(&mut client).await, 0);
    assert_eq!(delete(&mut client).await, 69);
    assert_eq!(committed(&mut client, "t").await, -1);

    // The tombstones are in the log: a restart does not bring the group back.
    let TestBroker {
        broker,
        metadata,
        dir,
    } = broker;
    drop(client);
    broker.shutdown().await;
    let port: Arc<dyn MetadataPort> = metadata.clone();
    let broker = Broker::start(BrokerConfig::test_min(dir.path()), port)
        .await
        .unwrap();
    let mut client = Client::connect(broker.local_addr()).await;
    wait_loaded(&mut client, GROUP).await;
    assert_eq!(describe(&mut client, 6, GROUP).await.error_code, 69);
    assert!(list(&mut client, 5, &[]).await.is_empty());
    broker.shutdown().await;
}

async fn commit_with_metadata(client: &mut Client, offset: i64, metadata: &str) -> i16 {
    let response = client
        .send(
            8,
            OffsetCommitRequest::default()
                .with_group_id(group())
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)
                        .with_committed_metadata(Some(s(metadata)))])]),
        )
        .await;
    response.topics[0].partitions[0].error_code
}

/// A real append failure: `__consumer_offsets` refuses a batch over `max.message.bytes`,
/// so a commit whose record is larger (but within `offset.metadata.max.bytes`) cannot be
/// appended. The request gets NOT_COORDINATOR (retriable), the coordinator forgets the
/// commit it had applied in memory and rebuilds from the log, and keeps serving.
#[tokio::test]
async fn a_failed_append_is_retriable_and_the_coordinator_reloads() {
    let broker = TestBroker::start_with(|c| {
        c.group_initial_rebalance_delay_ms = 0;
        c.topic_defaults
            .insert("max.message.bytes", "1000".to_string());
    })
    .await;
    let mut client = broker.client().await;
    create_topic(&mut client, "t", 1).await;
    let found = client
        .send(3, FindCoordinatorRequest::default().with_key(s(GROUP)))
        .await;
    assert_eq!(found.error_code, 0);
    wait_loaded(&mut client, GROUP).await;
    assert_eq!(commit_with_metadata(&mut client, 5, "small").await, 0);
    assert_eq!(committed(&mut client, "t").await, 5);

    let big = "x".repeat(3_000);
    assert_eq!(commit_with_metadata(&mut client, 6, &big).await, 16);
    // Rebuilt from the log: the failed commit is gone, the earlier one is back.
    wait_loaded(&mut client, GROUP).await;
    assert_eq!(committed(&mut client, "t").await, 5);
    assert_eq!(commit_with_metadata(&mut client, 7, "small").await, 0);
    assert_eq!(committed(&mut client, "t").await, 7);
    broker.broker.shutdown().await;
}
