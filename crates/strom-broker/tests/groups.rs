//! The classic group coordinator in-process: FindCoordinator, join -> sync -> heartbeat ->
//! commit -> fetch offsets, then a restart that must bring the committed offsets back.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{create_topic, s, wait_loaded, Client, TestBroker};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use strom_broker::{Broker, BrokerConfig, MetadataPort};

const GROUP: &str = "g1";

fn group() -> GroupId {
    GroupId(s(GROUP))
}

async fn find_coordinator(client: &mut Client, port: u16) {
    let response = client
        .send(
            4,
            FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![s(GROUP), s("other")]),
        )
        .await;
    assert_eq!(response.coordinators.len(), 2);
    for c in &response.coordinators {
        assert_eq!(c.error_code, 0, "{c:?}");
        assert_eq!(c.node_id.0, 1);
        assert_eq!(c.port, i32::from(port));
    }
    let response = client
        .send(3, FindCoordinatorRequest::default().with_key(s(GROUP)))
        .await;
    assert_eq!(response.error_code, 0);
    // A transactional id's coordinator: this broker, once `__transaction_state` is created
    // and the id's partition loaded (COORDINATOR_NOT_AVAILABLE, retriable, until then).
    let mut code = -1;
    for _ in 0..600 {
        let response = client
            .send(
                3,
                FindCoordinatorRequest::default()
                    .with_key(s("tx"))
                    .with_key_type(1),
            )
            .await;
        code = response.error_code;
        if code == 0 {
            assert_eq!(response.port, i32::from(port));
            break;
        }
        assert_eq!(code, 15, "{response:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(code, 0);
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
                    .with_metadata(Bytes::from_static(b"subscription"))]),
        )
        .await
}

async fn commit(client: &mut Client, generation: i32, member: &str, offset: i64) -> i16 {
    let response = client
        .send(
            8,
            OffsetCommitRequest::default()
                .with_group_id(group())
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(s(member))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)
                        .with_committed_metadata(Some(s("meta")))])]),
        )
        .await;
    response.topics[0].partitions[0].error_code
}

async fn fetch_offset_v7(client: &mut Client) -> (i64, String) {
    let response = client
        .send(
            7,
            OffsetFetchRequest::default()
                .with_group_id(group())
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partition_indexes(vec![0])])),
        )
        .await;
    assert_eq!(response.error_code, 0);
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    (
        p.committed_offset,
        p.metadata
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

async fn fetch_offset_v8(client: &mut Client) -> i64 {
    let response = client
        .send(
            8,
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(group())
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s("t")))
                    .with_partition_indexes(vec![0])]))]),
        )
        .await;
    assert_eq!(response.groups.len(), 1);
    assert_eq!(response.groups[0].error_code, 0);
    response.groups[0].topics[0].partitions[0].committed_offset
}

#[tokio::test]
async fn join_sync_heartbeat_commit_fetch_survive_restart() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "t", 1).await;
    find_coordinator(&mut client, broker.addr().port()).await;
    wait_loaded(&mut client, GROUP).await;

    // KIP-394: the first join gets an id to come back with.
    let first = join(&mut client, "").await;
    assert_eq!(first.error_code, 79);
    let member = first.member_id.to_string();
    assert!(!member.is_empty());
    let joined = join(&mut client, &member).await;
    assert_eq!(joined.error_code, 0, "{joined:?}");
    assert_eq!(joined.leader.to_string(), member);
    assert_eq!(joined.members.len(), 1);
    let generation = joined.generation_id;

    let synced = client
        .send(
            5,
            SyncGroupRequest::default()
                .with_group_id(group())
                .with_generation_id(generation)
                .with_member_id(s(&member))
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s("range")))
                .with_assignments(vec![SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(Bytes::from_static(b"assigned"))]),
        )
        .await;
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment, Bytes::from_static(b"assigned"));

    let beat = client
        .send(
            4,
            HeartbeatRequest::default()
                .with_group_id(group())
                .with_generation_id(generation)
                .with_member_id(s(&member)),
        )
        .await;
    assert_eq!(beat.error_code, 0);
    let stale = client
        .send(
            4,
            HeartbeatRequest::default()
                .with_group_id(group())
                .with_generation_id(generation + 5)
                .with_member_id(s(&member)),
        )
        .await;
    assert_eq!(stale.error_code, 22);

    assert_eq!(commit(&mut client, generation + 1, &member, 5).await, 22);
    assert_eq!(commit(&mut client, generation, &member, 42).await, 0);
    assert_eq!(fetch_offset_v7(&mut client).await, (42, "meta".to_string()));
    assert_eq!(fetch_offset_v8(&mut client).await, 42);

    // Restart on the same data directory and quorum: the offsets come back from the log.
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
    assert_eq!(fetch_offset_v7(&mut client).await, (42, "meta".to_string()));
    // The loaded member is still known: a heartbeat of its generation is accepted.
    let beat = client
        .send(
            4,
            HeartbeatRequest::default()
                .with_group_id(group())
                .with_generation_id(generation)
                .with_member_id(s(&member)),
        )
        .await;
    assert_eq!(beat.error_code, 0);
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
    assert_eq!(left.members[0].error_code, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn group_apis_before_the_offsets_topic_are_retriable() {
    // Before __consumer_offsets exists no broker coordinates any group: NOT_COORDINATOR
    // (retriable, the client looks the coordinator up again), as Kafka's runtime answers.
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let beat = client
        .send(
            4,
            HeartbeatRequest::default()
                .with_group_id(group())
                .with_generation_id(1)
                .with_member_id(s("m")),
        )
        .await;
    assert_eq!(beat.error_code, 16);
    // Metadata lists the internal topic as internal once it exists.
    find_coordinator(&mut client, broker.addr().port()).await;
    let all = client
        .send(9, MetadataRequest::default().with_topics(None))
        .await;
    let internal: Vec<_> = all.topics.iter().filter(|t| t.is_internal).collect();
    assert_eq!(internal.len(), 1);
    assert_eq!(internal[0].partitions.len(), 50);
    broker.broker.shutdown().await;
}
