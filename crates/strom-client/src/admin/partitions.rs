//! Partition moves and leader elections: AlterPartitionReassignments,
//! ListPartitionReassignments and ElectLeaders (what `kafka-reassign-partitions.sh` and
//! `kafka-leader-election.sh` call through Kafka's Admin).

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ElectLeadersRequest,
    ListPartitionReassignmentsRequest,
};

use super::Admin;
use crate::cluster::{topic_name, Target};
use crate::error::{ClientError, Result};
use crate::types::TopicPartition;

/// Broker-side timeout of these calls.
const OP_TIMEOUT_MS: i32 = 30_000;

/// An ongoing reassignment, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReassignment {
    pub partition: TopicPartition,
    /// Target replicas first, then those being removed.
    pub replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    pub removing_replicas: Vec<i32>,
}

/// Kafka's `ElectionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

/// Per-partition outcomes of a batched call, in the broker's order.
pub type PartitionResults = Vec<(TopicPartition, Result<()>)>;

fn ids(replicas: &[i32]) -> Vec<BrokerId> {
    replicas.iter().copied().map(BrokerId).collect()
}

fn by_topic<T: Clone>(items: &[(TopicPartition, T)]) -> BTreeMap<String, Vec<(i32, T)>> {
    let mut out: BTreeMap<String, Vec<(i32, T)>> = BTreeMap::new();
    for (tp, value) in items {
        out.entry(tp.topic.clone())
            .or_default()
            .push((tp.partition, value.clone()));
    }
    out
}

impl Admin {
    /// Starts, replaces (`Some(target replicas)`) or cancels (`None`) reassignments. The
    /// answer comes when the controller has recorded the change; the data moves afterwards
    /// (follow it with [`Admin::list_partition_reassignments`]).
    pub async fn alter_partition_reassignments(
        &self,
        moves: &[(TopicPartition, Option<Vec<i32>>)],
    ) -> Result<PartitionResults> {
        let topics = by_topic(moves);
        // Not retried: a cancel that reached the controller would fail the second time.
        let response = self
            .cluster
            .call(&Target::Any, |_| {
                Ok(AlterPartitionReassignmentsRequest::default()
                    .with_timeout_ms(OP_TIMEOUT_MS)
                    .with_allow_replication_factor_change(true)
                    .with_topics(
                        topics
                            .iter()
                            .map(|(topic, partitions)| {
                                ReassignableTopic::default()
                                    .with_name(topic_name(topic))
                                    .with_partitions(
                                        partitions
                                            .iter()
                                            .map(|(p, r)| {
                                                ReassignablePartition::default()
                                                    .with_partition_index(*p)
                                                    .with_replicas(r.as_deref().map(ids))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ))
            })
            .await?;
        self.cluster.invalidate_metadata();
        ClientError::check(
            response.error_code,
            response.error_message.map(|m| m.to_string()),
            "alter partition reassignments",
        )?;
        Ok(response
            .responses
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.0.to_string();
                t.partitions.into_iter().map(move |p| {
                    let tp = TopicPartition::new(topic.clone(), p.partition_index);
                    let outcome = ClientError::check(
                        p.error_code,
                        p.error_message.map(|m| m.to_string()),
                        format!("reassign {tp}"),
                    );
                    (tp, outcome)
                })
            })
            .collect())
    }

    /// Ongoing reassignments of `partitions` (all when `None`).
    pub async fn list_partition_reassignments(
        &self,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<Vec<PartitionReassignment>> {
        let topics = partitions.map(|ps| {
            let pairs: Vec<(TopicPartition, ())> = ps.iter().map(|tp| (tp.clone(), ())).collect();
            by_topic(&pairs)
        });
        let cluster = &self.cluster;
        let response = cluster
            .retry("list partition reassignments", || async {
                let r = cluster
                    .call(&Target::Any, |_| {
                        Ok(ListPartitionReassignmentsRequest::default()
                            .with_timeout_ms(OP_TIMEOUT_MS)
                            .with_topics(topics.as_ref().map(|topics| {
                                topics
                                    .iter()
                                    .map(|(topic, ps)| {
                                        ListPartitionReassignmentsTopics::default()
                                            .with_name(topic_name(topic))
                                            .with_partition_indexes(
                                                ps.iter().map(|(p, _)| *p).collect(),
                                            )
                                    })
                                    .collect()
                            })))
                    })
                    .await?;
                ClientError::check(
                    r.error_code,
                    r.error_message.as_ref().map(|m| m.to_string()),
                    "list partition reassignments",
                )?;
                Ok(r)
            })
            .await?;
        Ok(response
            .topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.0.to_string();
                t.partitions
                    .into_iter()
                    .map(move |p| PartitionReassignment {
                        partition: TopicPartition::new(topic.clone(), p.partition_index),
                        replicas: p.replicas.into_iter().map(|b| b.0).collect(),
                        adding_replicas: p.adding_replicas.into_iter().map(|b| b.0).collect(),
                        removing_replicas: p.removing_replicas.into_iter().map(|b| b.0).collect(),
                    })
            })
            .collect())
    }

    /// Preferred or unclean leader elections for `partitions` (all when `None`; the
    /// answer then names only the partitions that needed one).
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<PartitionResults> {
        let topics = partitions.map(|ps| {
            let pairs: Vec<(TopicPartition, ())> = ps.iter().map(|tp| (tp.clone(), ())).collect();
            by_topic(&pairs)
        });
        let election_type = match election {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        };
        let response = self
            .cluster
            .call(&Target::Any, |_| {
                Ok(ElectLeadersRequest::default()
                    .with_election_type(election_type)
                    .with_timeout_ms(OP_TIMEOUT_MS)
                    .with_topic_partitions(topics.as_ref().map(|topics| {
                        topics
                            .iter()
                            .map(|(topic, ps)| {
                                TopicPartitions::default()
                                    .with_topic(topic_name(topic))
                                    .with_partitions(ps.iter().map(|(p, _)| *p).collect())
                            })
                            .collect()
                    })))
            })
            .await?;
        self.cluster.invalidate_metadata();
        ClientError::check(response.error_code, None, "elect leaders")?;
        Ok(response
            .replica_election_results
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.0.to_string();
                t.partition_result.into_iter().map(move |p| {
                    let tp = TopicPartition::new(topic.clone(), p.partition_id);
                    let outcome = ClientError::check(
                        p.error_code,
                        p.error_message.map(|m| m.to_string()),
                        format!("elect a leader for {tp}"),
                    );
                    (tp, outcome)
                })
            })
            .collect())
    }
}
