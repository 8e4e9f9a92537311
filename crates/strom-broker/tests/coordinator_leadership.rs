//! The group coordinator follows the leadership of its `__consumer_offsets` partition, in
//! process with a second (registered, never running) broker in the metadata, whose follower
//! fetches the test makes itself so that the high watermark moves: FindCoordinator
//! names each group's partition leader, losing the leadership answers a parked JoinGroup
//! and every later command with NOT_COORDINATOR, Metadata reports the fenced broker's
//! replicas offline, and getting the leadership back (ElectLeaders) loads the groups again.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{create_topic, s, Client, TestBroker};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use strom_broker::MetadataPort;
use strom_meta::{
    AlterPartitionItem, AlterPartitionRequest, BrokerHeartbeatRequest, ControllerReply,
    ControllerRequest, Endpoint, MetadataImage, RegisterBrokerRequest,
};

const OFFSETS: &str = "__consumer_offsets";
const LIMIT: Duration = Duration::from_secs(20);

async fn submit(broker: &TestBroker, request: ControllerRequest) -> ControllerReply {
    broker.metadata.submit(request).await.unwrap()
}

/// Registers broker 2 (an endpoint nobody listens on) and unfences it.
async fn register_phantom(broker: &TestBroker) {
    let reply = submit(
        broker,
        ControllerRequest::RegisterBroker(RegisterBrokerRequest {
            broker_id: 2,
            incarnation_id: uuid::Uuid::from_u128(2),
            endpoints: vec![Endpoint {
                listener_name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 1,
                security_protocol: 0,
            }],
            rack: None,
        }),
    )
    .await;
    let ControllerReply::RegisterBroker { broker_epoch } = reply else {
        panic!("{reply:?}")
    };
    submit(broker, heartbeat(2, broker_epoch, false)).await;
}

fn heartbeat(broker_id: i32, broker_epoch: i64, want_fence: bool) -> ControllerRequest {
    ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id,
        broker_epoch,
        want_fence,
        want_shutdown: false,
        offline_replicas: Vec::new(),
    })
}

fn offsets_partition(image: &MetadataImage, group: &str) -> (i32, i32, i32) {
    let topic = image.topic_by_name(OFFSETS).unwrap();
    let partition = strom_broker::groups::partition_for(image, group);
    let p = &topic.partitions[&partition];
    (partition, p.leader, p.leader_epoch)
}

async fn find(client: &mut Client, group: &str) -> (i16, i32) {
    let response = client
        .send(
            4,
            FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![s(group)]),
        )
        .await;
    let c = &response.coordinators[0];
    (c.error_code, c.node_id.0)
}

async fn join(client: &mut Client, group: &str, member_id: &str) -> JoinGroupResponse {
    client
        .send(
            7,
            JoinGroupRequest::default()
                .with_group_id(GroupId(s(group)))
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

async fn simple_commit(client: &mut Client, group: &str, offset: i64) -> i16 {
    let response = client
        .send(
            8,
            OffsetCommitRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(s(""))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)])]),
        )
        .await;
    response.topics[0].partitions[0].error_code
}

/// Broker 2 never runs, yet it is in the partition's ISR, so the high watermark (and every
/// group reply, which waits for it) moves only when broker 2 has fetched: this task fetches
/// the partition from broker 1 as replica 2 would, from offset 0 on, until aborted.
fn follow_as_broker_2(
    addr: std::net::SocketAddr,
    topic_id: uuid::Uuid,
    partition: i32,
    broker_epoch: i64,
) -> tokio::task::JoinHandle<()> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
    tokio::spawn(async move {
        let mut client = Client::connect(addr).await;
        let mut next = 0i64;
        loop {
            let request = FetchRequest::default()
                .with_replica_state(
                    ReplicaState::default()
                        .with_replica_id(BrokerId(2))
                        .with_replica_epoch(broker_epoch),
                )
                .with_max_wait_ms(100)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(partition)
                        .with_current_leader_epoch(-1)
                        .with_fetch_offset(next)
                        .with_partition_max_bytes(1 << 20)])]);
            let response = client.send(15, request).await;
            let data = &response.responses[0].partitions[0];
            if data.error_code != 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            for (header, _) in strom_records::batches(data.records.as_deref().unwrap_or_default())
                .map_while(Result::ok)
            {
                next = header.next_offset();
            }
        }
    })
}

async fn until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinators_follow_the_leadership_of_their_partition() {
    let broker = TestBroker::start_with(|c| {
        c.offsets_topic_num_partitions = 4;
        c.offsets_topic_replication_factor = 2;
        // Long enough for a second join to park while the test moves the leadership.
        c.group_initial_rebalance_delay_ms = 5_000;
    })
    .await;
    register_phantom(&broker).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "t", 1).await;

    // FindCoordinator names the leader of each group's partition, whichever broker it is.
    let groups: Vec<String> = (0..24).map(|i| format!("group-{i}")).collect();
    let mut led_here = None;
    let mut led_there = false;
    for group in &groups {
        let (code, node) = find(&mut client, group).await;
        assert_eq!(code, 0, "{group}");
        let (_, leader, _) = offsets_partition(&broker.metadata.image(), group);
        assert_eq!(node, leader, "{group}");
        if leader == 1 && led_here.is_none() {
            led_here = Some(group.clone());
        }
        led_there |= leader == 2;
    }
    assert!(led_there, "no partition placed with broker 2 leading");
    let group = led_here.expect("no partition led by broker 1");
    let (partition, _, _) = offsets_partition(&broker.metadata.image(), &group);
    let image = broker.metadata.image();
    let follower = follow_as_broker_2(
        broker.addr(),
        image.topic_id(OFFSETS).unwrap(),
        partition,
        image.broker(2).unwrap().epoch,
    );

    // Broker 1 serves the group (FindCoordinator waited for its load).
    assert_eq!(simple_commit(&mut client, &group, 7).await, 0);
    let first = join(&mut client, &group, "").await;
    assert_eq!(first.error_code, 79);
    let member = first.member_id.to_string();
    let mut parked_client = broker.client().await;
    let parked = {
        let (group, member) = (group.clone(), member.clone());
        tokio::spawn(async move { join(&mut parked_client, &group, &member).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !parked.is_finished(),
        "the join should wait for the rebalance delay"
    );

    // Broker 1 is fenced: its leaderships move to broker 2. The parked join is answered
    // NOT_COORDINATOR with its member id, and so is every later group command here.
    let epoch = broker.metadata.image().broker(1).unwrap().epoch;
    submit(&broker, heartbeat(1, epoch, true)).await;
    let (_, leader, _) = offsets_partition(&broker.metadata.image(), &group);
    assert_eq!(leader, 2);
    let answered = tokio::time::timeout(LIMIT, parked).await.unwrap().unwrap();
    assert_eq!(answered.error_code, 16, "{answered:?}");
    assert_eq!(answered.member_id.to_string(), member);
    assert_eq!(simple_commit(&mut client, &group, 8).await, 16);
    assert_eq!(find(&mut client, &group).await, (0, 2));

    // While fenced, Metadata reports broker 1's replicas offline.
    let metadata = client
        .send(12, MetadataRequest::default().with_topics(None))
        .await;
    let offsets = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == OFFSETS))
        .unwrap();
    for p in &offsets.partitions {
        assert_eq!(
            p.offline_replicas.iter().map(|b| b.0).collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(p.leader_id.0, 2);
    }

    // Broker 1's own heartbeat unfences it; once broker 2 (the leader) adds it back to the
    // ISR, a preferred election gives it the partition back at a new epoch, and the
    // groups are loaded again from the log.
    until("broker 1 unfenced", || async {
        broker.metadata.image().is_broker_active(1)
    })
    .await;
    let image = broker.metadata.image();
    let topic_id = image.topic_id(OFFSETS).unwrap();
    let p = image.partition(topic_id, partition).unwrap().clone();
    assert_eq!(p.replicas[0], 1, "broker 1 is the preferred replica");
    let reply = submit(
        &broker,
        ControllerRequest::AlterPartition(AlterPartitionRequest {
            broker_id: 2,
            broker_epoch: image.broker(2).unwrap().epoch,
            partitions: vec![AlterPartitionItem {
                topic_id,
                partition,
                leader_epoch: p.leader_epoch,
                new_isr: vec![2, 1],
                partition_epoch: p.partition_epoch,
            }],
        }),
    )
    .await;
    let ControllerReply::AlterPartition(results) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(results[0].error, None);
    let elected = client
        .send(
            2,
            ElectLeadersRequest::default()
                .with_election_type(0)
                .with_topic_partitions(Some(vec![TopicPartitions::default()
                    .with_topic(TopicName(s(OFFSETS)))
                    .with_partitions(vec![partition])])),
        )
        .await;
    assert_eq!(elected.error_code, 0);
    let result = &elected.replica_election_results[0].partition_result[0];
    assert_eq!(result.error_code, 0, "{result:?}");
    let (_, leader, leader_epoch) = offsets_partition(&broker.metadata.image(), &group);
    assert_eq!(leader, 1);
    assert!(leader_epoch > p.leader_epoch);
    // Electing again is not needed.
    let again = client
        .send(
            2,
            ElectLeadersRequest::default()
                .with_election_type(0)
                .with_topic_partitions(Some(vec![TopicPartitions::default()
                    .with_topic(TopicName(s(OFFSETS)))
                    .with_partitions(vec![partition])])),
        )
        .await;
    assert_eq!(
        again.replica_election_results[0].partition_result[0].error_code,
        84
    );

    assert_eq!(find(&mut client, &group).await, (0, 1));
    let fetched = client
        .send(
            7,
            OffsetFetchRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_topics(None),
        )
        .await;
    assert_eq!(fetched.error_code, 0);
    let committed: Vec<i64> = fetched
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.committed_offset))
        .collect();
    // The commit made before the move was reloaded from this broker's log.
    assert_eq!(committed, vec![7]);
    assert_eq!(simple_commit(&mut client, &group, 9).await, 0);
    follower.abort();
    broker.broker.shutdown().await;
}
