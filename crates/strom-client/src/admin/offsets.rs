//! Offsets: ListOffsets, DeleteRecords, and a group's committed offsets (fetch, alter as
//! kafka-consumer-groups.sh --reset-offsets does, delete). Shared with the consumer.

use std::collections::BTreeMap;

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    BrokerId, DeleteRecordsRequest, GroupId, ListOffsetsRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest,
};

use super::Admin;
use crate::cluster::{str_bytes, topic_name, Cluster, Target};
use crate::error::{ClientError, Result};
use crate::types::{OffsetAndMetadata, OffsetSpec, TopicPartition};
use strom_protocol::ErrorCode;

/// Broker-side timeout of DeleteRecords.
const DELETE_RECORDS_TIMEOUT_MS: i32 = 30_000;

/// An offset ListOffsets found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// -1 when no record matches a timestamp lookup.
    pub offset: i64,
    /// -1 for Earliest/Latest lookups.
    pub timestamp_ms: i64,
    pub leader_epoch: i32,
}

/// Partitions grouped by their leader.
async fn by_leader<T: Clone>(
    cluster: &Cluster,
    items: &[(TopicPartition, T)],
) -> Result<BTreeMap<i32, BTreeMap<String, Vec<(i32, T)>>>> {
    let mut out: BTreeMap<i32, BTreeMap<String, Vec<(i32, T)>>> = BTreeMap::new();
    for (tp, value) in items {
        let leader = cluster.leader(&tp.topic, tp.partition).await?;
        out.entry(leader)
            .or_default()
            .entry(tp.topic.clone())
            .or_default()
            .push((tp.partition, value.clone()));
    }
    Ok(out)
}

/// ListOffsets for each partition at its leader; `read_committed` makes Latest the last
/// stable offset.
pub(crate) async fn list_offsets(
    cluster: &Cluster,
    partitions: &[TopicPartition],
    spec: OffsetSpec,
    read_committed: bool,
) -> Result<BTreeMap<TopicPartition, ListedOffset>> {
    let items: Vec<(TopicPartition, ())> = partitions.iter().map(|tp| (tp.clone(), ())).collect();
    cluster
        .retry("list offsets", || async {
            let mut out = BTreeMap::new();
            for (leader, topics) in by_leader(cluster, &items).await? {
                let response = cluster
                    .call(&Target::Broker(leader), |_| {
                        Ok(ListOffsetsRequest::default()
                            .with_replica_id(BrokerId(-1))
                            .with_isolation_level(i8::from(read_committed))
                            .with_topics(
                                topics
                                    .iter()
                                    .map(|(t, ps)| {
                                        ListOffsetsTopic::default()
                                            .with_name(topic_name(t))
                                            .with_partitions(
                                                ps.iter()
                                                    .map(|(p, ())| {
                                                        ListOffsetsPartition::default()
                                                            .with_partition_index(*p)
                                                            .with_current_leader_epoch(-1)
                                                            .with_timestamp(spec.wire())
                                                    })
                                                    .collect(),
                                            )
                                    })
                                    .collect(),
                            ))
                    })
                    .await?;
                for t in response.topics {
                    for p in t.partitions {
                        let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                        ClientError::check(p.error_code, None, format!("list offsets of {tp}"))?;
                        out.insert(
                            tp,
                            ListedOffset {
                                offset: p.offset,
                                timestamp_ms: p.timestamp,
                                leader_epoch: p.leader_epoch,
                            },
                        );
                    }
                }
            }
            Ok(out)
        })
        .await
}

/// OffsetFetch of a group's committed offsets (all partitions when `partitions` is None).
/// OffsetFetch; `require_stable` (v7+, KIP-447, what a read_committed consumer asks for)
/// makes the coordinator answer UNSTABLE_OFFSET_COMMIT, retried here, while a transaction
/// holds offsets of the partition that are not yet committed or aborted.
pub(crate) async fn fetch_committed(
    cluster: &Cluster,
    group: &str,
    partitions: Option<&[TopicPartition]>,
    require_stable: bool,
) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
    let target = Target::GroupCoordinator(group.to_string());
    let topics = partitions.map(|ps| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in ps {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partition_indexes(ps)
            })
            .collect::<Vec<_>>()
    });
    let response = cluster
        .retry("fetch committed offsets", || async {
            let r = cluster
                .call(&target, |version| {
                    Ok(OffsetFetchRequest::default()
                        .with_group_id(GroupId(str_bytes(group)))
                        .with_topics(topics.clone())
                        .with_require_stable(require_stable && version >= 7))
                })
                .await?;
            ClientError::check(
                r.error_code,
                None,
                format!("fetch offsets of group {group}"),
            )?;
            for t in &r.topics {
                for p in &t.partitions {
                    if p.error_code == ErrorCode::UNSTABLE_OFFSET_COMMIT.code() {
                        let tp = format!("{}-{}", t.name.0, p.partition_index);
                        ClientError::check(p.error_code, None, format!("fetch offset of {tp}"))?;
                    }
                }
            }
            Ok(r)
        })
        .await?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
            ClientError::check(p.error_code, None, format!("fetch offset of {tp}"))?;
            if p.committed_offset >= 0 {
                out.insert(
                    tp,
                    OffsetAndMetadata {
                        offset: p.committed_offset,
                        metadata: p.metadata.map(|m| m.to_string()),
                        leader_epoch: p.committed_leader_epoch,
                    },
                );
            }
        }
    }
    Ok(out)
}

/// OffsetCommit; `generation` -1 and empty `member_id` commit as an admin (the group must
/// then have no active members).
pub(crate) async fn commit(
    cluster: &Cluster,
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
) -> Result<()> {
    let target = Target::GroupCoordinator(group.to_string());
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (tp, o) in offsets {
        by_topic.entry(&tp.topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(o.offset)
                .with_committed_leader_epoch(o.leader_epoch)
                .with_committed_metadata(o.metadata.as_deref().map(str_bytes)),
        );
    }
    let topics: Vec<OffsetCommitRequestTopic> = by_topic
        .into_iter()
        .map(|(t, ps)| {
            OffsetCommitRequestTopic::default()
                .with_name(topic_name(t))
                .with_partitions(ps)
        })
        .collect();
    cluster
        .retry("commit offsets", || async {
            let r = cluster
                .call(&target, |_| {
                    Ok(OffsetCommitRequest::default()
                        .with_group_id(GroupId(str_bytes(group)))
                        .with_generation_id_or_member_epoch(generation)
                        .with_member_id(str_bytes(member_id))
                        .with_retention_time_ms(-1)
                        .with_topics(topics.clone()))
                })
                .await?;
            for t in r.topics {
                for p in t.partitions {
                    ClientError::check(
                        p.error_code,
                        None,
                        format!(
                            "commit offset of {}-{} for group {group}",
                            t.name.0, p.partition_index
                        ),
                    )?;
                }
            }
            Ok(())
        })
        .await
}

impl Admin {
    /// Offsets at `spec` for each partition.
    pub async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<TopicPartition, ListedOffset>> {
        list_offsets(&self.cluster, partitions, spec, false).await
    }

    /// Like [`Admin::list_offsets`] with isolation level read_committed: `Latest` is the
    /// last stable offset (the first offset of the oldest open transaction, or the high
    /// watermark), as far as a read_committed consumer can read.
    pub async fn list_offsets_read_committed(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<TopicPartition, ListedOffset>> {
        list_offsets(&self.cluster, partitions, spec, true).await
    }

    /// Every partition of `topic`.
    pub async fn partitions_of(&self, topic: &str) -> Result<Vec<TopicPartition>> {
        let info = self.cluster.topic(topic, false).await?;
        Ok(info
            .partitions
            .iter()
            .map(|p| TopicPartition::new(topic, p.partition))
            .collect())
    }

    /// Deletes records before the given offsets (-1: before the high watermark); returns
    /// each partition's new low watermark.
    pub async fn delete_records(
        &self,
        before: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let items: Vec<(TopicPartition, i64)> =
            before.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
        let cluster = &self.cluster;
        cluster
            .retry("delete records", || async {
                let mut out = BTreeMap::new();
                for (leader, topics) in by_leader(cluster, &items).await? {
                    let r = cluster
                        .call(&Target::Broker(leader), |_| {
                            Ok(DeleteRecordsRequest::default()
                                .with_timeout_ms(DELETE_RECORDS_TIMEOUT_MS)
                                .with_topics(
                                    topics
                                        .iter()
                                        .map(|(t, ps)| {
                                            DeleteRecordsTopic::default()
                                                .with_name(topic_name(t))
                                                .with_partitions(
                                                    ps.iter()
                                                        .map(|(p, o)| {
                                                            DeleteRecordsPartition::default()
                                                                .with_partition_index(*p)
                                                                .with_offset(*o)
                                                        })
                                                        .collect(),
                                                )
                                        })
                                        .collect(),
                                ))
                        })
                        .await?;
                    for t in r.topics {
                        for p in t.partitions {
                            let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                            ClientError::check(
                                p.error_code,
                                None,
                                format!("delete records of {tp}"),
                            )?;
                            out.insert(tp, p.low_watermark);
                        }
                    }
                }
                Ok(out)
            })
            .await
    }

    /// A group's committed offsets (all partitions it has offsets for).
    pub async fn list_group_offsets(
        &self,
        group: &str,
    ) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
        fetch_committed(&self.cluster, group, None, false).await
    }

    /// Sets a group's committed offsets, as `kafka-consumer-groups.sh --reset-offsets`
    /// does (generation -1, no member): the group must have no active members.
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        commit(&self.cluster, group, -1, "", offsets).await
    }

    /// Deletes a group's committed offsets for some partitions (OffsetDelete).
    pub async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        let mut by_topic: BTreeMap<&str, Vec<OffsetDeleteRequestPartition>> = BTreeMap::new();
        for tp in partitions {
            by_topic
                .entry(&tp.topic)
                .or_default()
                .push(OffsetDeleteRequestPartition::default().with_partition_index(tp.partition));
        }
        let topics: Vec<OffsetDeleteRequestTopic> = by_topic
            .into_iter()
            .map(|(t, ps)| {
                OffsetDeleteRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(ps)
            })
            .collect();
        let target = Target::GroupCoordinator(group.to_string());
        let cluster = &self.cluster;
        cluster
            .retry("delete group offsets", || async {
                let r = cluster
                    .call(&target, |_| {
                        Ok(OffsetDeleteRequest::default()
                            .with_group_id(GroupId(str_bytes(group)))
                            .with_topics(topics.clone()))
                    })
                    .await?;
                ClientError::check(
                    r.error_code,
                    None,
                    format!("delete offsets of group {group}"),
                )?;
                for t in r.topics {
                    for p in t.partitions {
                        ClientError::check(
                            p.error_code,
                            None,
                            format!(
                                "delete offset of {}-{} for group {group}",
                                t.name.0, p.partition_index
                            ),
                        )?;
                    }
                }
                Ok(())
            })
            .await
    }
}
