//! Share group administration (KIP-932, what kafka-share-groups.sh does through Kafka's
//! Admin): describe (ShareGroupDescribe), the share-partition start offsets
//! (DescribeShareGroupOffsets), and their reset and deletion (AlterShareGroupOffsets,
//! DeleteShareGroupOffsets; the broker refuses both while the group has members). All go to
//! the group's coordinator. Deleting a share group is [`Admin::delete_groups`].

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, DeleteShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsRequest, GroupId, ShareGroupDescribeRequest,
};

use super::{Admin, ItemResults};
use crate::cluster::{str_bytes, topic_name, Target};
use crate::error::{ClientError, Result};
use crate::types::TopicPartition;

/// A share group as ShareGroupDescribe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupDescription {
    pub group_id: String,
    /// `Empty`, `Stable`, `Dead` (Kafka's share group states).
    pub state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// The server-side assignor (`simple`).
    pub assignor: String,
    pub coordinator: i32,
    pub members: Vec<ShareMemberDescription>,
}

/// One member of a described share group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareMemberDescription {
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topics: Vec<String>,
    /// Sorted.
    pub assignment: Vec<TopicPartition>,
}

/// A share partition's durable state as DescribeShareGroupOffsets reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharePartitionOffset {
    /// The share-partition start offset (records below it are done for the group).
    pub start_offset: i64,
    pub leader_epoch: i32,
}

impl Admin {
    /// Describes one share group at its coordinator. A group id no share group has is
    /// GROUP_ID_NOT_FOUND (Kafka's answer, also for a consumer group's id).
    pub async fn describe_share_group(&self, group: &str) -> Result<ShareGroupDescription> {
        let target = Target::GroupCoordinator(group.to_string());
        let cluster = &self.cluster;
        let described = cluster
            .retry("describe share group", || async {
                let r = cluster
                    .call(&target, |_| {
                        Ok(ShareGroupDescribeRequest::default()
                            .with_group_ids(vec![GroupId(str_bytes(group))]))
                    })
                    .await?;
                let g = r.groups.into_iter().next().ok_or_else(|| {
                    ClientError::Protocol("ShareGroupDescribe: empty response".into())
                })?;
                ClientError::check(
                    g.error_code,
                    g.error_message.as_ref().map(|m| m.to_string()),
                    format!("describe share group {group}"),
                )?;
                Ok(g)
            })
            .await?;
        let coordinator = cluster.coordinator(group).await?;
        Ok(ShareGroupDescription {
            group_id: described.group_id.0.to_string(),
            state: described.group_state.to_string(),
            group_epoch: described.group_epoch,
            assignment_epoch: described.assignment_epoch,
            assignor: described.assignor_name.to_string(),
            coordinator,
            members: described
                .members
                .into_iter()
                .map(|m| {
                    let mut assignment: Vec<TopicPartition> = m
                        .assignment
                        .topic_partitions
                        .iter()
                        .flat_map(|t| {
                            t.partitions
                                .iter()
                                .map(|p| TopicPartition::new(t.topic_name.0.to_string(), *p))
                        })
                        .collect();
                    assignment.sort();
                    ShareMemberDescription {
                        member_id: m.member_id.to_string(),
                        member_epoch: m.member_epoch,
                        rack_id: m.rack_id.map(|r| r.to_string()),
                        client_id: m.client_id.to_string(),
                        client_host: m.client_host.to_string(),
                        subscribed_topics: m
                            .subscribed_topic_names
                            .iter()
                            .map(|t| t.0.to_string())
                            .collect(),
                        assignment,
                    }
                })
                .collect(),
        })
    }

    /// The share-partition start offset of every partition the group has state for
    /// (Kafka's `listShareGroupOffsets` of all topics).
    pub async fn list_share_group_offsets(
        &self,
        group: &str,
    ) -> Result<BTreeMap<TopicPartition, SharePartitionOffset>> {
        let target = Target::GroupCoordinator(group.to_string());
        let cluster = &self.cluster;
        cluster
            .retry("list share group offsets", || async {
                let r = cluster
                    .call(&target, |_| {
                        Ok(
                            DescribeShareGroupOffsetsRequest::default().with_groups(vec![
                                DescribeShareGroupOffsetsRequestGroup::default()
                                    .with_group_id(GroupId(str_bytes(group)))
                                    .with_topics(None),
                            ]),
                        )
                    })
                    .await?;
                let g = r.groups.into_iter().next().ok_or_else(|| {
                    ClientError::Protocol("DescribeShareGroupOffsets: empty response".into())
                })?;
                ClientError::check(
                    g.error_code,
                    g.error_message.as_ref().map(|m| m.to_string()),
                    format!("list share group offsets of {group}"),
                )?;
                let mut out = BTreeMap::new();
                for t in g.topics {
                    for p in t.partitions {
                        let tp = TopicPartition::new(t.topic_name.0.to_string(), p.partition_index);
                        ClientError::check(
                            p.error_code,
                            p.error_message.as_ref().map(|m| m.to_string()),
                            format!("share state of {tp} in group {group}"),
                        )?;
                        out.insert(
                            tp,
                            SharePartitionOffset {
                                start_offset: p.start_offset,
                                leader_epoch: p.leader_epoch,
                            },
                        );
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Sets share-partition start offsets (the group must have no members); one result per
    /// partition, as `topic-partition`.
    pub async fn alter_share_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<ItemResults> {
        let mut topics: BTreeMap<&str, Vec<AlterShareGroupOffsetsRequestPartition>> =
            BTreeMap::new();
        for (tp, offset) in offsets {
            topics.entry(&tp.topic).or_default().push(
                AlterShareGroupOffsetsRequestPartition::default()
                    .with_partition_index(tp.partition)
                    .with_start_offset(*offset),
            );
        }
        let topics: Vec<AlterShareGroupOffsetsRequestTopic> = topics
            .into_iter()
            .map(|(t, ps)| {
                AlterShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(topic_name(t))
                    .with_partitions(ps)
            })
            .collect();
        let target = Target::GroupCoordinator(group.to_string());
        let cluster = &self.cluster;
        let response = cluster
            .retry("alter share group offsets", || async {
                let r = cluster
                    .call(&target, |_| {
                        Ok(AlterShareGroupOffsetsRequest::default()
                            .with_group_id(GroupId(str_bytes(group)))
                            .with_topics(topics.clone()))
                    })
                    .await?;
                ClientError::check(
                    r.error_code,
                    r.error_message.as_ref().map(|m| m.to_string()),
                    format!("alter share group offsets of {group}"),
                )?;
                Ok(r)
            })
            .await?;
        let mut results = Vec::new();
        for t in response.responses {
            for p in t.partitions {
                let tp = TopicPartition::new(t.topic_name.0.to_string(), p.partition_index);
                let result = ClientError::check(
                    p.error_code,
                    p.error_message.map(|m| m.to_string()),
                    format!("alter the share-partition start offset of {tp}"),
                );
                results.push((tp.to_string(), result));
            }
        }
        Ok(results)
    }

    /// Deletes the group's share state of whole topics (the group must have no members);
    /// one result per topic.
    pub async fn delete_share_group_offsets(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<ItemResults> {
        let wanted: Vec<DeleteShareGroupOffsetsRequestTopic> = topics
            .iter()
            .map(|t| DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(topic_name(t)))
            .collect();
        let target = Target::GroupCoordinator(group.to_string());
        let cluster = &self.cluster;
        let response = cluster
            .retry("delete share group offsets", || async {
                let r = cluster
                    .call(&target, |_| {
                        Ok(DeleteShareGroupOffsetsRequest::default()
                            .with_group_id(GroupId(str_bytes(group)))
                            .with_topics(wanted.clone()))
                    })
                    .await?;
                ClientError::check(
                    r.error_code,
                    r.error_message.as_ref().map(|m| m.to_string()),
                    format!("delete share group offsets of {group}"),
                )?;
                Ok(r)
            })
            .await?;
        Ok(response
            .responses
            .into_iter()
            .map(|t| {
                let topic = t.topic_name.0.to_string();
                let result = ClientError::check(
                    t.error_code,
                    t.error_message.map(|m| m.to_string()),
                    format!("delete the share state of {topic}"),
                );
                (topic, result)
            })
            .collect())
    }
}
