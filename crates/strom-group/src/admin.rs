//! The group tooling APIs: DescribeGroups, ListGroups, DeleteGroups and OffsetDelete, with
//! the error codes of Kafka 4.x's `GroupMetadataManager` / `OffsetMetadataManager`.

use crate::coordinator::{Coordinator, Output};
use crate::error::ErrorCode;
use crate::group::{Group, GroupState};
use crate::records::{GroupMetadataKey, GroupRecord, OffsetCommitKey};
use crate::subscription::{group_subscriptions, CONSUMER_PROTOCOL_TYPE};
use crate::types::{
    DescribedGroup, DescribedMember, ListGroups, ListedGroup, OffsetDelete, OffsetDeleteResponse,
    PartitionResult,
};

/// The type of classic groups in ListGroups (KIP-848's `GroupType.CLASSIC`).
pub const CLASSIC_GROUP_TYPE: &str = "classic";

impl Coordinator {
    pub(crate) fn describe(&self, group_id: &str) -> DescribedGroup {
        // A consumer group (and the entry holding its offsets) is not a classic group.
        let classic = self
            .groups
            .get(group_id)
            .filter(|_| !self.is_modern(group_id));
        let Some(group) = classic else {
            return DescribedGroup {
                error: ErrorCode::GroupIdNotFound,
                group_id: group_id.to_owned(),
                state: GroupState::Dead.as_str().to_owned(),
                protocol_type: String::new(),
                protocol_data: String::new(),
                members: Vec::new(),
            };
        };
        // Kafka's `ClassicGroup.summary`: protocol, metadata and assignment only when Stable.
        let stable_protocol = group
            .protocol_name
            .as_deref()
            .filter(|_| group.state == GroupState::Stable);
        let members = group
            .members
            .values()
            .map(|m| DescribedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: stable_protocol
                    .map(|p| m.metadata_for(p))
                    .unwrap_or_default(),
                assignment: stable_protocol
                    .map(|_| m.assignment.clone())
                    .unwrap_or_default(),
            })
            .collect();
        DescribedGroup {
            error: ErrorCode::None,
            group_id: group_id.to_owned(),
            state: group.state.as_str().to_owned(),
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_data: stable_protocol.unwrap_or_default().to_owned(),
            members,
        }
    }

    pub(crate) fn list(&self, filter: &ListGroups) -> Vec<ListedGroup> {
        let type_matches = filter.types.is_empty()
            || filter
                .types
                .iter()
                .any(|t| t.eq_ignore_ascii_case(CLASSIC_GROUP_TYPE));
        let mut listed = crate::consumer::list_groups(&self.consumer, filter);
        listed.extend(self.list_streams(filter));
        if !type_matches {
            return listed;
        }
        let classic = self
            .groups
            .values()
            .filter(|g| !self.is_modern(&g.group_id))
            .filter(|g| {
                filter.states.is_empty()
                    || filter
                        .states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state.as_str()))
            })
            .map(|g| ListedGroup {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.as_str().to_owned(),
                group_type: CLASSIC_GROUP_TYPE.to_owned(),
            });
        let mut all: Vec<ListedGroup> = classic.collect();
        all.append(&mut listed);
        all
    }

    /// Kafka's `ClassicGroup.validateDeleteGroup`, then tombstones for every committed
    /// offset and the group metadata so that compaction removes the group for good.
    pub(crate) fn delete_group(&mut self, group_id: &str, out: &mut Output) -> ErrorCode {
        if let Some(error) =
            crate::consumer::delete_group(&mut self.groups, &mut self.consumer, group_id, out)
        {
            return error;
        }
        if let Some(error) = self.delete_streams_group(group_id, out) {
            return error;
        }
        let Some(group) = self.groups.get(group_id) else {
            return ErrorCode::GroupIdNotFound;
        };
        match group.state {
            GroupState::Dead => return ErrorCode::GroupIdNotFound,
            GroupState::Stable
            | GroupState::PreparingRebalance
            | GroupState::CompletingRebalance => return ErrorCode::NonEmptyGroup,
            GroupState::Empty => {}
        }
        if let Some(group) = self.groups.remove(group_id) {
            write_group_tombstones(&group, out);
            tracing::info!(group = group_id, "group deleted");
        }
        ErrorCode::None
    }

    /// Kafka's `OffsetMetadataManager.deleteOffsets`: a partition of a topic the group
    /// consumes is GROUP_SUBSCRIBED_TO_TOPIC; others lose their offset (a tombstone when
    /// one was committed) and answer NONE.
    pub(crate) fn delete_offsets(
        &mut self,
        c: &OffsetDelete,
        out: &mut Output,
    ) -> OffsetDeleteResponse {
        let consumer_topics = self
            .consumer
            .subscribed_topics(&c.group_id)
            .or_else(|| self.streams.subscribed_topics(&c.group_id));
        if consumer_topics.is_some() && !self.groups.contains_key(&c.group_id) {
            // A consumer group with no committed offset yet: nothing to delete.
            self.groups
                .insert(c.group_id.clone(), Group::new(&c.group_id, 0));
        }
        let Some(group) = self.groups.get_mut(&c.group_id) else {
            return offset_delete_error(ErrorCode::GroupIdNotFound);
        };
        // Kafka's `ConsumerGroup.validateOffsetDelete` accepts any state.
        if consumer_topics.is_none() {
            if let Err(error) = validate_offset_delete(group) {
                return offset_delete_error(error);
            }
        }
        let subscribed = consumer_topics
            .or_else(|| group_subscriptions(group))
            .unwrap_or_default();
        let mut partitions = Vec::with_capacity(c.partitions.len());
        for (topic, partition) in &c.partitions {
            let error = if subscribed.contains(topic) {
                ErrorCode::GroupSubscribedToTopic
            } else {
                if group.offsets.remove(&(topic.clone(), *partition)).is_some() {
                    out.record(offset_tombstone(&c.group_id, topic, *partition));
                }
                ErrorCode::None
            };
            partitions.push(PartitionResult {
                topic: topic.clone(),
                partition: *partition,
                error,
            });
        }
        OffsetDeleteResponse {
            error: ErrorCode::None,
            partitions,
        }
    }
}

/// Kafka's `ClassicGroup.validateOffsetDelete`: only an Empty group, or a group using the
/// consumer protocol (whose subscriptions are known), may lose offsets.
fn validate_offset_delete(group: &Group) -> Result<(), ErrorCode> {
    match group.state {
        GroupState::Dead => Err(ErrorCode::GroupIdNotFound),
        GroupState::Stable | GroupState::PreparingRebalance | GroupState::CompletingRebalance
            if group.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) =>
        {
            Err(ErrorCode::NonEmptyGroup)
        }
        _ => Ok(()),
    }
}

fn offset_delete_error(error: ErrorCode) -> OffsetDeleteResponse {
    OffsetDeleteResponse {
        error,
        partitions: Vec::new(),
    }
}

pub(crate) fn offset_tombstone(
    group_id: &str,
    topic: &str,
    partition: i32,
) -> Result<GroupRecord, crate::RecordError> {
    let key = OffsetCommitKey {
        group: group_id.to_owned(),
        topic: topic.to_owned(),
        partition,
    };
    GroupRecord::offset_commit(&key, None)
}

/// Tombstones for every offset of `group` and for its metadata.
pub(crate) fn write_group_tombstones(group: &Group, out: &mut Output) {
    for (topic, partition) in group.offsets.keys() {
        out.record(offset_tombstone(&group.group_id, topic, *partition));
    }
    let key = GroupMetadataKey {
        group: group.group_id.clone(),
    };
    out.record(GroupRecord::group_metadata(&key, None));
}

impl Coordinator {
    /// ListGroups entries of streams groups, filtered by state and type like Kafka.
    pub(crate) fn list_streams(&self, filter: &ListGroups) -> Vec<ListedGroup> {
        let streams = crate::streams::STREAMS_GROUP_TYPE;
        let type_ok = filter.types.is_empty()
            || filter
                .types
                .iter()
                .any(|t| t.trim().eq_ignore_ascii_case(streams));
        if !type_ok {
            return Vec::new();
        }
        self.streams
            .groups()
            .filter_map(|g| {
                let state = g.state().name();
                let state_ok = filter.states.is_empty()
                    || filter
                        .states
                        .iter()
                        .any(|s| s.trim().eq_ignore_ascii_case(state));
                state_ok.then(|| ListedGroup {
                    group_id: g.group_id.clone(),
                    protocol_type: streams.to_owned(),
                    state: state.to_owned(),
                    group_type: streams.to_owned(),
                })
            })
            .collect()
    }

    /// DeleteGroups of a streams group: `None` when the id is not one. A group with
    /// members is NON_EMPTY_GROUP; otherwise its records and offsets are tombstoned.
    pub(crate) fn delete_streams_group(
        &mut self,
        group_id: &str,
        out: &mut Output,
    ) -> Option<ErrorCode> {
        let g = self.streams.group(group_id)?;
        if !g.members.is_empty() {
            return Some(ErrorCode::NonEmptyGroup);
        }
        if let Some(shell) = self.groups.remove(group_id) {
            for (topic, partition) in shell.offsets.keys() {
                out.record(offset_tombstone(group_id, topic, *partition));
            }
        }
        out.records
            .extend(self.streams.delete_empty(group_id).unwrap_or_default());
        tracing::info!(group = group_id, "streams group deleted");
        Some(ErrorCode::None)
    }
}
