//! The metadata quorum (`kafka-metadata-quorum.sh`): DescribeQuorum, AddRaftVoter and
//! RemoveRaftVoter, sent to any broker (which forwards them to the quorum's leader).

use kafka_protocol::messages::add_raft_voter_request::Listener;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    AddRaftVoterRequest, DescribeQuorumRequest, RemoveRaftVoterRequest,
};
use uuid::Uuid;

use super::Admin;
use crate::cluster::{str_bytes, topic_name, Target};
use crate::error::{ClientError, Result};

/// The metadata log's topic, as Kafka names it.
const METADATA_TOPIC: &str = "__cluster_metadata";
/// How long the quorum may take to add a voter (it waits for the voter to catch up).
const ADD_VOTER_TIMEOUT_MS: i32 = 30_000;

/// One member's replication progress as the quorum's leader sees it (-1: not known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    pub id: i32,
    /// The replica's metadata directory id (KIP-853), `None` when not recorded.
    pub directory_id: Option<Uuid>,
    pub log_end_offset: i64,
    pub last_fetch_ms: i64,
    pub last_caught_up_ms: i64,
}

/// The metadata quorum: its leader, epoch, high watermark, voters and observers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDescription {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumReplica>,
    pub observers: Vec<QuorumReplica>,
}

impl Admin {
    /// Describes the metadata quorum (Admin `describeMetadataQuorum`).
    pub async fn describe_quorum(&self) -> Result<QuorumDescription> {
        let cluster = &self.cluster;
        cluster
            .retry("describe the metadata quorum", || async {
                let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
                    .with_topic_name(topic_name(METADATA_TOPIC))
                    .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
                let r = cluster.call(&Target::Any, |_| Ok(request.clone())).await?;
                ClientError::check(
                    r.error_code,
                    r.error_message.as_ref().map(|m| m.to_string()),
                    "describe the metadata quorum",
                )?;
                let partition = r
                    .topics
                    .first()
                    .and_then(|t| t.partitions.first())
                    .ok_or_else(|| {
                        ClientError::Protocol("DescribeQuorum answered no partition".into())
                    })?;
                ClientError::check(
                    partition.error_code,
                    partition.error_message.as_ref().map(|m| m.to_string()),
                    "describe the metadata quorum",
                )?;
                let replicas = |states: &[kafka_protocol::messages::describe_quorum_response::ReplicaState]| {
                    states
                        .iter()
                        .map(|s| QuorumReplica {
                            id: s.replica_id.0,
                            directory_id: Some(s.replica_directory_id).filter(|d| !d.is_nil()),
                            log_end_offset: s.log_end_offset,
                            last_fetch_ms: s.last_fetch_timestamp,
                            last_caught_up_ms: s.last_caught_up_timestamp,
                        })
                        .collect()
                };
                Ok(QuorumDescription {
                    leader_id: partition.leader_id.0,
                    leader_epoch: partition.leader_epoch,
                    high_watermark: partition.high_watermark,
                    voters: replicas(&partition.current_voters),
                    observers: replicas(&partition.observers),
                })
            })
            .await
    }

    /// Adds controller `id` (the replica with `directory_id`; `None`: whichever observer
    /// of that id replicates), reached at `host:port`, as a voter (Admin `addRaftVoter`).
    /// Not retried: a retry after a timeout could find it added already (DUPLICATE_VOTER).
    pub async fn add_raft_voter(
        &self,
        id: i32,
        directory_id: Option<Uuid>,
        host: &str,
        port: u16,
    ) -> Result<()> {
        let request = AddRaftVoterRequest::default()
            .with_cluster_id(None)
            .with_timeout_ms(ADD_VOTER_TIMEOUT_MS)
            .with_voter_id(id)
            .with_voter_directory_id(directory_id.unwrap_or_else(Uuid::nil))
            .with_listeners(vec![Listener::default()
                .with_name(str_bytes("CONTROLLER"))
                .with_host(str_bytes(host))
                .with_port(port)]);
        let r = self
            .cluster
            .call(&Target::Any, |_| Ok(request.clone()))
            .await?;
        ClientError::check(
            r.error_code,
            r.error_message.as_ref().map(|m| m.to_string()),
            format!("add controller {id}"),
        )
    }

    /// Removes voter (`id`, `directory_id`) from the quorum (Admin `removeRaftVoter`; a
    /// voter recorded with a directory id is only matched by it). Not retried (see
    /// `add_raft_voter`).
    pub async fn remove_raft_voter(&self, id: i32, directory_id: Option<Uuid>) -> Result<()> {
        let request = RemoveRaftVoterRequest::default()
            .with_cluster_id(None)
            .with_voter_id(id)
            .with_voter_directory_id(directory_id.unwrap_or_else(Uuid::nil));
        let r = self
            .cluster
            .call(&Target::Any, |_| Ok(request.clone()))
            .await?;
        ClientError::check(
            r.error_code,
            r.error_message.as_ref().map(|m| m.to_string()),
            format!("remove controller {id}"),
        )
    }
}
