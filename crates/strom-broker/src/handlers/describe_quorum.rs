//! DescribeQuorum (`kafka-metadata-quorum.sh describe --status|--replication`, Admin
//! `describeMetadataQuorum`): the metadata quorum as its leader sees it, asked of the leader
//! as Kafka forwards the request to the active controller. Only `__cluster_metadata-0`
//! exists; any other partition is UNKNOWN_TOPIC_OR_PARTITION, and no reachable leader is
//! NOT_LEADER_OR_FOLLOWER (retriable), both per partition as Kafka's Raft client answers.
//! `nodes` (v2) carries the voters' controller endpoints, and only theirs, as in Kafka.

use strom_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use strom_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, ResponseKind,
};
use strom_protocol::ErrorCode;
use strom_raft::wire::{QuorumDescription, ReplicaProgress};

use super::{str_bytes, topic_name};
use crate::server::BrokerContext;

/// The metadata log's topic, as Kafka names it.
const METADATA_TOPIC: &str = "__cluster_metadata";
/// The listener name the quorum's addresses are reported under.
const CONTROLLER_LISTENER: &str = "CONTROLLER";

pub(super) async fn handle(
    context: &BrokerContext,
    request: DescribeQuorumRequest,
) -> ResponseKind {
    let asks_metadata_log = request.topics.len() == 1
        && request.topics[0].topic_name.0.as_str() == METADATA_TOPIC
        && request.topics[0].partitions.len() == 1
        && request.topics[0].partitions[0].partition_index == 0;
    if !asks_metadata_log {
        return failed(&request, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, None);
    }
    match context.metadata.describe_quorum().await {
        Ok(quorum) => ResponseKind::DescribeQuorum(described(quorum)),
        Err(error) => failed(
            &request,
            ErrorCode::NOT_LEADER_OR_FOLLOWER,
            Some(error.to_string()),
        ),
    }
}

fn described(quorum: QuorumDescription) -> DescribeQuorumResponse {
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(node(quorum.leader_id))
        .with_leader_epoch(i32::try_from(quorum.leader_epoch).unwrap_or(i32::MAX))
        .with_high_watermark(quorum.high_watermark)
        .with_current_voters(quorum.voters.iter().map(replica).collect())
        .with_observers(quorum.observers.iter().map(replica).collect());
    // Kafka's `RaftUtil.singletonDescribeQuorumResponse` lists the voters' endpoints only:
    // observers (brokers, controllers not added yet) have no entry in `nodes`.
    let voter_ids: Vec<u64> = quorum.voters.iter().map(|v| v.node_id).collect();
    let nodes =
        quorum
            .addrs
            .iter()
            .filter(|(id, _)| voter_ids.contains(id))
            .filter_map(|(id, addr)| {
                let (host, port) = addr.rsplit_once(':')?;
                Some(Node::default().with_node_id(node(*id)).with_listeners(
                    vec![Listener::default()
                        .with_name(str_bytes(CONTROLLER_LISTENER))
                        .with_host(str_bytes(host.trim_matches(['[', ']'])))
                        .with_port(port.parse().ok()?)],
                ))
            })
            .collect();
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(topic_name(METADATA_TOPIC))
            .with_partitions(vec![partition])])
        .with_nodes(nodes)
}

/// A Raft node id as Kafka's int32 node id (node ids come from `node.id`, an int32).
fn node(id: u64) -> BrokerId {
    BrokerId(i32::try_from(id).unwrap_or(-1))
}

fn replica(progress: &ReplicaProgress) -> ReplicaState {
    ReplicaState::default()
        .with_replica_id(node(progress.node_id))
        .with_replica_directory_id(progress.directory_id.unwrap_or_default())
        .with_log_end_offset(progress.log_end_offset)
        .with_last_fetch_timestamp(progress.last_fetch_ms)
        .with_last_caught_up_timestamp(progress.last_caught_up_ms)
}

/// Every requested partition answered `code`, as Kafka's partition-level error response.
fn failed(
    request: &DescribeQuorumRequest,
    code: ErrorCode,
    message: Option<String>,
) -> ResponseKind {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            TopicData::default()
                .with_topic_name(t.topic_name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            PartitionData::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code.code())
                                .with_error_message(message.clone().map(str_bytes))
                                .with_leader_id(BrokerId(-1))
                                .with_leader_epoch(-1)
                                .with_high_watermark(-1)
                        })
                        .collect(),
                )
        })
        .collect();
    ResponseKind::DescribeQuorum(DescribeQuorumResponse::default().with_topics(topics))
}
