//! Consumer group administration: list, describe, delete.

use std::collections::BTreeSet;

use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest,
    StreamsGroupDescribeRequest,
};

use super::{Admin, ItemResults};
use crate::cluster::{str_bytes, Target};
use crate::error::{ClientError, Result};
use crate::types::TopicPartition;

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupListing {
    pub group_id: String,
    /// `consumer` for consumer groups; empty for groups that only commit offsets.
    pub protocol_type: String,
    /// `Stable`, `Empty`, ... (ListGroups v4+; empty before).
    pub state: String,
    /// `Classic`, `Consumer` or `Share` as Kafka's Admin names `GroupType` (from ListGroups
    /// v5's `group_type`; before v5, `Classic` for a group with a protocol type, else empty).
    pub group_type: String,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    /// The chosen assignor (`range`).
    pub protocol: String,
    pub coordinator: i32,
    pub members: Vec<MemberDescription>,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Decoded from the ConsumerProtocol assignment (empty for other protocol types).
    pub assignment: Vec<TopicPartition>,
}

impl Admin {
    /// Every group of every broker, sorted by id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let meta = self.metadata().await?;
        let mut groups = BTreeSet::new();
        for broker in meta.brokers.keys() {
            let target = Target::Broker(*broker);
            let cluster = &self.cluster;
            let r = cluster
                .retry("list groups", || async {
                    let r = cluster
                        .call(&target, |_| Ok(ListGroupsRequest::default()))
                        .await?;
                    ClientError::check(
                        r.error_code,
                        None,
                        format!("list groups on broker {broker}"),
                    )?;
                    Ok(r)
                })
                .await?;
            for g in r.groups {
                groups.insert(GroupListing {
                    group_id: g.group_id.0.to_string(),
                    group_type: group_type(g.group_type.as_str(), g.protocol_type.as_str()),
                    protocol_type: g.protocol_type.to_string(),
                    state: g.group_state.to_string(),
                });
            }
        }
        Ok(groups.into_iter().collect())
    }

    /// Describes one group at its coordinator.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let target = Target::GroupCoordinator(group.to_string());
        let cluster = &self.cluster;
        let described = cluster
            .retry("describe group", || async {
                let r = cluster
                    .call(&target, |_| {
                        Ok(DescribeGroupsRequest::default()
                            .with_groups(vec![GroupId(str_bytes(group))]))
                    })
                    .await?;
                let g = r.groups.into_iter().next().ok_or_else(|| {
                    ClientError::Protocol("DescribeGroups: empty response".into())
                })?;
                ClientError::check(
                    g.error_code,
                    g.error_message.as_ref().map(|m| m.to_string()),
                    format!("describe group {group}"),
                )?;
                Ok(g)
            })
            .await?;
        let coordinator = cluster.coordinator(group).await?;
        let consumer = described.protocol_type.as_str() == "consumer";
        Ok(GroupDescription {
            group_id: described.group_id.0.to_string(),
            state: described.group_state.to_string(),
            protocol_type: described.protocol_type.to_string(),
            protocol: described.protocol_data.to_string(),
            coordinator,
            members: described
                .members
                .into_iter()
                .map(|m| MemberDescription {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    assignment: if consumer {
                        decode_assignment(m.member_assignment)
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        })
    }

    /// Describes one KIP-1071 streams group with StreamsGroupDescribe: `None` when the
    /// coordinator knows no streams group of the id (GROUP_ID_NOT_FOUND). Each member's
    /// active tasks are shown as the partitions they read: task `p` of a subtopology is
    /// partition `p` of each of its source topics.
    pub async fn describe_streams_group(&self, group: &str) -> Result<Option<GroupDescription>> {
        const GROUP_ID_NOT_FOUND: i16 = 69;
        let target = Target::GroupCoordinator(group.to_string());
        let cluster = &self.cluster;
        let described = cluster
            .retry("describe streams group", || async {
                let r = cluster
                    .call(&target, |_| {
                        Ok(StreamsGroupDescribeRequest::default()
                            .with_group_ids(vec![GroupId(str_bytes(group))]))
                    })
                    .await?;
                let g = r.groups.into_iter().next().ok_or_else(|| {
                    ClientError::Protocol("StreamsGroupDescribe: empty response".into())
                })?;
                if g.error_code == GROUP_ID_NOT_FOUND {
                    return Ok(None);
                }
                ClientError::check(
                    g.error_code,
                    g.error_message.as_ref().map(|m| m.to_string()),
                    format!("describe streams group {group}"),
                )?;
                Ok(Some(g))
            })
            .await?;
        let Some(described) = described else {
            return Ok(None);
        };
        let coordinator = cluster.coordinator(group).await?;
        let sources: std::collections::BTreeMap<String, Vec<String>> = described
            .topology
            .iter()
            .flat_map(|t| t.subtopologies.iter().flatten())
            .map(|s| {
                let topics = s
                    .source_topics
                    .iter()
                    .map(|t| t.to_string())
                    .chain(
                        s.repartition_source_topics
                            .iter()
                            .map(|t| t.name.to_string()),
                    )
                    .collect();
                (s.subtopology_id.to_string(), topics)
            })
            .collect();
        Ok(Some(GroupDescription {
            group_id: described.group_id.0.to_string(),
            state: described.group_state.to_string(),
            protocol_type: "streams".to_string(),
            protocol: String::new(),
            coordinator,
            members: described
                .members
                .into_iter()
                .map(|m| MemberDescription {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.instance_id.map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    assignment: m
                        .assignment
                        .active_tasks
                        .iter()
                        .flat_map(|t| {
                            let topics = sources
                                .get(t.subtopology_id.as_str())
                                .cloned()
                                .unwrap_or_default();
                            t.partitions.iter().flat_map(move |p| {
                                topics
                                    .clone()
                                    .into_iter()
                                    .map(move |topic| TopicPartition::new(topic, *p))
                            })
                        })
                        .collect(),
                })
                .collect(),
        }))
    }

    /// Deletes groups (they must be empty); one result per group.
    pub async fn delete_groups(&self, groups: &[String]) -> Result<ItemResults> {
        let mut results = Vec::with_capacity(groups.len());
        for group in groups {
            let target = Target::GroupCoordinator(group.clone());
            let cluster = &self.cluster;
            let result = cluster
                .retry("delete group", || async {
                    let r = cluster
                        .call(&target, |_| {
                            Ok(DeleteGroupsRequest::default()
                                .with_groups_names(vec![GroupId(str_bytes(group))]))
                        })
                        .await?;
                    for g in r.results {
                        ClientError::check(g.error_code, None, format!("delete group {group}"))?;
                    }
                    Ok(())
                })
                .await;
            results.push((group.clone(), result));
        }
        Ok(results)
    }
}

/// Kafka's display name of a group type (`GroupType.toString`): the wire's lower-case
/// `classic`/`consumer`/`share` capitalised; without one (ListGroups before v5), a group with
/// a protocol type is a classic group.
fn group_type(wire: &str, protocol_type: &str) -> String {
    let mut chars = wire.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None if !protocol_type.is_empty() => "Classic".to_string(),
        None => String::new(),
    }
}

/// The partitions of a ConsumerProtocol assignment; empty when it does not decode.
fn decode_assignment(bytes: bytes::Bytes) -> Vec<TopicPartition> {
    crate::consumer::protocol::decode_assignment(&bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::group_type;

    #[test]
    fn group_types_are_named_as_kafka_names_them() {
        assert_eq!(group_type("share", ""), "Share");
        assert_eq!(group_type("consumer", "consumer"), "Consumer");
        assert_eq!(group_type("classic", "consumer"), "Classic");
        assert_eq!(group_type("", "consumer"), "Classic");
        assert_eq!(group_type("", ""), "");
    }
}
