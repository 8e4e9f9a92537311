//! Share groups (KIP-932) over the wire: ShareGroupHeartbeat joins with client-chosen member
//! ids, several members sharing one partition, leave, fencing, the share/consumer type
//! clash, and a restart that replays the group from `__consumer_offsets`.

mod common;

use std::sync::Arc;

use common::{create_topic, s, wait_loaded, Client, TestBroker};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::*;
use strom_broker::{Broker, BrokerConfig, MetadataPort};
use uuid::Uuid;

const GROUP: &str = "sg";

fn group() -> GroupId {
    GroupId(s(GROUP))
}

async fn coordinator_ready(client: &mut Client) {
    let found = client
        .send(3, FindCoordinatorRequest::default().with_key(s(GROUP)))
        .await;
    assert_eq!(found.error_code, 0);
    wait_loaded(client, GROUP).await;
}

async fn heartbeat(
    client: &mut Client,
    group_id: &str,
    member: &str,
    epoch: i32,
    topics: Option<&[&str]>,
) -> ShareGroupHeartbeatResponse {
    client
        .send(
            1,
            ShareGroupHeartbeatRequest::default()
                .with_group_id(GroupId(s(group_id)))
                .with_member_id(s(member))
                .with_member_epoch(epoch)
                .with_subscribed_topic_names(
                    topics.map(|t| t.iter().map(|n| TopicName(s(n))).collect()),
                ),
        )
        .await
}

/// Starts `topics`' share partitions of [`GROUP`] at offset 0 (AlterShareGroupOffsets on the
/// empty group: state initialized and recorded by the coordinator).
async fn initialize_share_state(client: &mut Client, topics: &[(&str, i32)]) {
    use kafka_protocol::messages::alter_share_group_offsets_request::{
        AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
    };
    let request = AlterShareGroupOffsetsRequest::default()
        .with_group_id(group())
        .with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    AlterShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(TopicName(s(name)))
                        .with_partitions(
                            (0..*partitions)
                                .map(|p| {
                                    AlterShareGroupOffsetsRequestPartition::default()
                                        .with_partition_index(p)
                                        .with_start_offset(0)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let response = client.send(0, request).await;
    assert_eq!(response.error_code, 0, "{response:?}");
    for topic in &response.responses {
        for p in &topic.partitions {
            assert_eq!(p.error_code, 0, "{response:?}");
        }
    }
}

fn assigned(r: &ShareGroupHeartbeatResponse, topic: Uuid) -> Option<Vec<i32>> {
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

#[tokio::test]
async fn members_share_a_partition_and_the_group_survives_restart() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let queue = create_topic(&mut client, "queue", 1).await;
    let wide = create_topic(&mut client, "wide", 4).await;
    coordinator_ready(&mut client).await;
    // The share state of both topics exists before anyone joins (AlterShareGroupOffsets on
    // the empty group records it), so the coordinator assigns at the first heartbeat instead
    // of after its own initialization.
    initialize_share_state(&mut client, &[("queue", 1), ("wide", 4)]).await;

    let versions = client
        .send(
            3,
            ApiVersionsRequest::default()
                .with_client_software_name(s("test"))
                .with_client_software_version(s("1.0")),
        )
        .await;
    let api = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ShareGroupHeartbeat as i16)
        .expect("ShareGroupHeartbeat advertised");
    assert_eq!((api.min_version, api.max_version), (1, 1));

    // Three members on a one-partition topic: each is given partition 0.
    let mut epochs = Vec::new();
    for (i, member) in ["m-a", "m-b", "m-c"].iter().enumerate() {
        let r = heartbeat(&mut client, GROUP, member, 0, Some(&["queue"])).await;
        assert_eq!(r.error_code, 0, "{r:?}");
        assert_eq!(r.error_message, None);
        assert_eq!(r.member_id.as_deref(), Some(*member));
        assert_eq!(r.member_epoch, i as i32 + 1);
        assert_eq!(r.heartbeat_interval_ms, 5_000);
        assert_eq!(assigned(&r, queue), Some(vec![0]));
        epochs.push(r.member_epoch);
    }
    // a heartbeats: moved to the newest epoch, same partition, so no assignment is sent.
    let a = heartbeat(&mut client, GROUP, "m-a", epochs[0], None).await;
    assert_eq!((a.error_code, a.member_epoch), (0, 3));
    assert_eq!(assigned(&a, queue), None);

    // Errors: a wrong epoch is fenced, an unknown member is unknown, no member id is invalid.
    let fenced = heartbeat(&mut client, GROUP, "m-a", 9, None).await;
    assert_eq!(fenced.error_code, 110);
    assert!(fenced.error_message.is_some());
    assert_eq!(
        heartbeat(&mut client, GROUP, "nobody", 3, None)
            .await
            .error_code,
        25
    );
    assert_eq!(
        heartbeat(&mut client, GROUP, "", 0, Some(&["queue"]))
            .await
            .error_code,
        42
    );
    assert_eq!(
        heartbeat(&mut client, GROUP, "m-d", 0, None)
            .await
            .error_code,
        42
    );

    // c subscribes to the 4-partition topic too and gets its partitions.
    let c = heartbeat(&mut client, GROUP, "m-c", 3, Some(&["queue", "wide"])).await;
    assert_eq!((c.error_code, c.member_epoch), (0, 4));
    assert_eq!(assigned(&c, wide), Some(vec![0, 1, 2, 3]));

    // One type per group id: the classic and consumer protocols cannot take a share group,
    // and a share member cannot join a consumer group.
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
    let consumer = client
        .send(
            1,
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(group())
                .with_member_id(s("x"))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![TopicName(s("queue"))]))
                .with_topic_partitions(Some(Vec::new())),
        )
        .await;
    assert_eq!(consumer.error_code, 69);
    let cg = client
        .send(
            1,
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(s("cg")))
                .with_member_id(s("x"))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![TopicName(s("queue"))]))
                .with_topic_partitions(Some(Vec::new())),
        )
        .await;
    if cg.error_code == 0 {
        let clash = heartbeat(&mut client, "cg", "s", 0, Some(&["queue"])).await;
        assert_eq!(clash.error_code, 69);
    } else {
        // "cg" lives on a partition still loading: nothing to check there.
        assert_eq!(cg.error_code, 14, "{cg:?}");
    }

    // ShareGroupDescribe names the members' partitions; ListGroups shows the group as a
    // share group (alone under the SHARE type filter); DescribeGroups does not describe it.
    let described = client
        .send(
            1,
            ShareGroupDescribeRequest::default().with_group_ids(vec![group(), GroupId(s("nope"))]),
        )
        .await;
    let d = &described.groups[0];
    assert_eq!(d.error_code, 0, "{d:?}");
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!((d.group_epoch, d.assignment_epoch), (4, 4));
    assert_eq!(d.assignor_name.as_str(), "simple");
    assert_eq!(d.members.len(), 3);
    let c_member = d
        .members
        .iter()
        .find(|m| m.member_id.as_str() == "m-c")
        .unwrap();
    let mut names: Vec<&str> = c_member
        .assignment
        .topic_partitions
        .iter()
        .map(|tp| tp.topic_name.0.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["queue", "wide"]);
    assert_eq!(described.groups[1].error_code, 69);
    for types in [vec![], vec![s("share")], vec![s("Share")]] {
        let listed = client
            .send(
                5,
                ListGroupsRequest::default().with_types_filter(types.clone()),
            )
            .await;
        assert_eq!(listed.error_code, 0);
        let g = listed
            .groups
            .iter()
            .find(|g| g.group_id.0.as_str() == GROUP)
            .unwrap_or_else(|| panic!("{GROUP} not listed with types {types:?}"));
        assert_eq!(
            (
                g.group_type.as_str(),
                g.protocol_type.as_str(),
                g.group_state.as_str()
            ),
            ("share", "share", "Stable")
        );
        if !types.is_empty() {
            assert!(listed
                .groups
                .iter()
                .all(|g| g.group_type.as_str() == "share"));
        }
    }
    let classic_only = client
        .send(
            5,
            ListGroupsRequest::default().with_types_filter(vec![s("classic")]),
        )
        .await;
    assert!(classic_only
        .groups
        .iter()
        .all(|g| g.group_id.0.as_str() != GROUP));
    let empty_only = client
        .send(
            5,
            ListGroupsRequest::default().with_states_filter(vec![s("Empty")]),
        )
        .await;
    assert!(empty_only
        .groups
        .iter()
        .all(|g| g.group_id.0.as_str() != GROUP));
    let classic_view = client
        .send(
            6,
            DescribeGroupsRequest::default().with_groups(vec![group()]),
        )
        .await;
    assert_eq!(classic_view.groups[0].error_code, 69);
    assert_eq!(classic_view.groups[0].group_state.as_str(), "Dead");
    // A group with members is not deleted.
    let deleted = client
        .send(
            2,
            DeleteGroupsRequest::default().with_groups_names(vec![group()]),
        )
        .await;
    assert_eq!(deleted.results[0].error_code, 68);

    // Restart: the group comes back from its records with the same epochs.
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
    let c = heartbeat(&mut client, GROUP, "m-c", 4, None).await;
    assert_eq!((c.error_code, c.member_epoch), (0, 4), "{c:?}");
    let b = heartbeat(&mut client, GROUP, "m-b", 2, None).await;
    assert_eq!((b.error_code, b.member_epoch), (0, 4), "{b:?}");

    // Leaving bumps the epoch; the others keep the shared partition.
    let left = heartbeat(&mut client, GROUP, "m-c", -1, None).await;
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
    let b = heartbeat(&mut client, GROUP, "m-b", 4, None).await;
    assert_eq!((b.error_code, b.member_epoch), (0, 5));
    assert_eq!(
        heartbeat(&mut client, GROUP, "m-c", 4, None)
            .await
            .error_code,
        25
    );

    // Once every member has left, the group is Empty and DeleteGroups removes it.
    for member in ["m-a", "m-b"] {
        let left = heartbeat(&mut client, GROUP, member, -1, None).await;
        assert_eq!((left.error_code, left.member_epoch), (0, -1), "{member}");
    }
    let empty_only = client
        .send(
            5,
            ListGroupsRequest::default().with_states_filter(vec![s("empty")]),
        )
        .await;
    assert!(empty_only
        .groups
        .iter()
        .any(|g| g.group_id.0.as_str() == GROUP));
    let deleted = client
        .send(
            2,
            DeleteGroupsRequest::default().with_groups_names(vec![group()]),
        )
        .await;
    assert_eq!(deleted.results[0].error_code, 0);
    let gone = client
        .send(
            1,
            ShareGroupDescribeRequest::default().with_group_ids(vec![group()]),
        )
        .await;
    assert_eq!(gone.groups[0].error_code, 69);
    let again = client
        .send(
            2,
            DeleteGroupsRequest::default().with_groups_names(vec![group()]),
        )
        .await;
    assert_eq!(again.results[0].error_code, 69);
    // The id is free again.
    let rejoin = heartbeat(&mut client, GROUP, "m-new", 0, Some(&["queue"])).await;
    assert_eq!((rejoin.error_code, rejoin.member_epoch), (0, 1));
    broker.shutdown().await;
}
