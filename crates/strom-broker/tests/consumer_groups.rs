//! KIP-848 consumer groups over the wire: ConsumerGroupHeartbeat joins, incremental
//! revocation between two members, ConsumerGroupDescribe, member-epoch checked offset
//! commits and fetches (v9), ListGroups types, the classic/consumer type clash, and a
//! restart that replays the group from `__consumer_offsets`.

mod common;

use std::sync::Arc;

use common::{create_topic, s, Client, TestBroker};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use strom_broker::{Broker, BrokerConfig, MetadataPort};
use uuid::Uuid;

const GROUP: &str = "cg";

fn group() -> GroupId {
    GroupId(s(GROUP))
}

/// Creates `__consumer_offsets` and waits (boundedly) until the group's partition is loaded.
async fn coordinator_ready(client: &mut Client) {
    let found = client
        .send(3, FindCoordinatorRequest::default().with_key(s(GROUP)))
        .await;
    assert_eq!(found.error_code, 0);
    // Creating and loading 50 partitions can take seconds on a loaded machine.
    for _ in 0..1_500 {
        let response = client
            .send(
                1,
                ConsumerGroupDescribeRequest::default().with_group_ids(vec![group()]),
            )
            .await;
        let code = response.groups[0].error_code;
        if code != 14 && code != 15 {
            assert!(code == 0 || code == 69, "unexpected error {code}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("coordinator never loaded");
}

async fn heartbeat(
    client: &mut Client,
    member: &str,
    epoch: i32,
    owned: Option<Vec<i32>>,
    topic: Uuid,
) -> ConsumerGroupHeartbeatResponse {
    let joining = epoch == 0;
    client
        .send(
            1,
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(group())
                .with_member_id(s(member))
                .with_member_epoch(epoch)
                .with_rebalance_timeout_ms(if joining { 30_000 } else { -1 })
                .with_subscribed_topic_names(joining.then(|| vec![TopicName(s("t"))]))
                .with_topic_partitions(owned.map(|p| {
                    if p.is_empty() {
                        Vec::new()
                    } else {
                        vec![TopicPartitions::default()
                            .with_topic_id(topic)
                            .with_partitions(p)]
                    }
                })),
        )
        .await
}

fn assigned(r: &ConsumerGroupHeartbeatResponse, topic: Uuid) -> Option<Vec<i32>> {
    let a = r.assignment.as_ref()?;
    let mut out: Vec<i32> = a
        .topic_partitions
        .iter()
        .filter(|tp| tp.topic_id == topic)
        .flat_map(|tp| tp.partitions.iter().copied())
        .collect();
    out.sort_unstable();
    Some(out)
}

async fn commit(client: &mut Client, member: &str, epoch: i32) -> i16 {
    let response = client
        .send(
            9,
            OffsetCommitRequest::default()
                .with_group_id(group())
                .with_generation_id_or_member_epoch(epoch)
                .with_member_id(s(member))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(7)
                        .with_committed_leader_epoch(-1)])]),
        )
        .await;
    response.topics[0].partitions[0].error_code
}

async fn fetch(client: &mut Client, member: Option<&str>, epoch: i32) -> (i16, i64) {
    let response = client
        .send(
            9,
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(group())
                .with_member_id(member.map(s))
                .with_member_epoch(epoch)
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s("t")))
                    .with_partition_indexes(vec![0])]))]),
        )
        .await;
    let g = &response.groups[0];
    let offset = g
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(-1, |p| p.committed_offset);
    (g.error_code, offset)
}

async fn describe(client: &mut Client) -> consumer_group_describe_response::DescribedGroup {
    let response = client
        .send(
            1,
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![group()]),
        )
        .await;
    response.groups.into_iter().next().unwrap()
}

#[tokio::test]
async fn two_members_reconcile_commit_and_survive_restart() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let topic = create_topic(&mut client, "t", 4).await;
    coordinator_ready(&mut client).await;

    let versions = client
        .send(
            3,
            ApiVersionsRequest::default()
                .with_client_software_name(s("test"))
                .with_client_software_version(s("1.0")),
        )
        .await;
    for (key, max) in [(68, 1), (69, 1)] {
        let api = versions
            .api_keys
            .iter()
            .find(|k| k.api_key == key)
            .unwrap_or_else(|| {
                panic!(
                    "{key} not advertised: {:?}",
                    versions
                        .api_keys
                        .iter()
                        .map(|k| k.api_key)
                        .collect::<Vec<_>>()
                )
            });
        assert_eq!((api.min_version, api.max_version), (0, max));
    }

    let a = heartbeat(&mut client, "member-a", 0, Some(vec![]), topic).await;
    assert_eq!(a.error_code, 0, "{a:?}");
    assert_eq!(a.member_epoch, 1);
    assert_eq!(a.heartbeat_interval_ms, 5_000);
    assert_eq!(assigned(&a, topic), Some(vec![0, 1, 2, 3]));

    let b = heartbeat(&mut client, "member-b", 0, Some(vec![]), topic).await;
    assert_eq!((b.error_code, b.member_epoch), (0, 2));
    assert_eq!(
        assigned(&b, topic),
        Some(vec![]),
        "b waits for a to release"
    );

    let a = heartbeat(&mut client, "member-a", 1, Some(vec![0, 1, 2, 3]), topic).await;
    assert_eq!((a.error_code, a.member_epoch), (0, 1));
    let kept = assigned(&a, topic).unwrap();
    assert_eq!(kept.len(), 2);
    let a = heartbeat(&mut client, "member-a", 1, Some(kept.clone()), topic).await;
    assert_eq!((a.error_code, a.member_epoch), (0, 2));
    let b = heartbeat(&mut client, "member-b", 2, Some(vec![]), topic).await;
    let given = assigned(&b, topic).unwrap();
    assert_eq!(given.len(), 2);
    assert!(given.iter().all(|p| !kept.contains(p)));

    let d = describe(&mut client).await;
    assert_eq!(d.error_code, 0);
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!((d.group_epoch, d.assignment_epoch), (2, 2));
    assert_eq!(d.assignor_name.as_str(), "uniform");
    assert_eq!(d.members.len(), 2);
    let m = d
        .members
        .iter()
        .find(|m| m.member_id.as_str() == "member-b")
        .unwrap();
    assert_eq!(m.member_type, 1);
    assert_eq!(m.client_host.as_str(), "/127.0.0.1");
    assert_eq!(m.assignment.topic_partitions[0].topic_name.0.as_str(), "t");

    // Offsets: the member epoch is checked.
    assert_eq!(commit(&mut client, "member-a", 1).await, 113);
    assert_eq!(commit(&mut client, "nobody", 2).await, 25);
    assert_eq!(commit(&mut client, "member-a", 2).await, 0);
    assert_eq!(fetch(&mut client, Some("member-a"), 2).await, (0, 7));
    assert_eq!(fetch(&mut client, Some("member-a"), 1).await.0, 113);
    assert_eq!(fetch(&mut client, None, -1).await, (0, 7));

    // The group is listed as a consumer group; classic APIs cannot take it over.
    let listed = client.send(5, ListGroupsRequest::default()).await;
    let g = listed
        .groups
        .iter()
        .find(|g| g.group_id.0.as_str() == GROUP)
        .unwrap();
    assert_eq!(g.group_type.as_str(), "consumer");
    assert_eq!(g.group_state.as_str(), "Stable");
    let join = client
        .send(
            7,
            JoinGroupRequest::default()
                .with_group_id(group())
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_member_id(s(""))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default().with_name(s("range"))
                ]),
        )
        .await;
    assert_eq!(join.error_code, 23);
    let unknown = client
        .send(
            1,
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("nope"))]),
        )
        .await;
    assert_eq!(unknown.groups[0].error_code, 69);

    // Restart: the group comes back from its records with the same epochs and assignments.
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
    coordinator_ready(&mut client).await;
    let after = describe(&mut client).await;
    assert_eq!(after.group_state.as_str(), "Stable");
    assert_eq!((after.group_epoch, after.assignment_epoch), (2, 2));
    assert_eq!(after.members.len(), 2);
    let a = heartbeat(&mut client, "member-a", 2, Some(kept.clone()), topic).await;
    assert_eq!((a.error_code, a.member_epoch), (0, 2));
    assert_eq!(fetch(&mut client, None, -1).await, (0, 7));

    // Leaving bumps the epoch; the remaining member is given everything.
    let left = heartbeat(&mut client, "member-b", -1, None, topic).await;
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
    let a = heartbeat(&mut client, "member-a", 2, Some(kept), topic).await;
    assert_eq!((a.error_code, a.member_epoch), (0, 3));
    assert_eq!(assigned(&a, topic), Some(vec![0, 1, 2, 3]));
    let gone = heartbeat(&mut client, "member-b", 2, None, topic).await;
    assert_eq!(gone.error_code, 25);
    broker.shutdown().await;
}
