//! Where classic and KIP-848 groups meet: one group id is one type. The classic
//! coordinator calls these so a ConsumerGroupHeartbeat cannot take over a classic group
//! with members (nor a JoinGroup a consumer group with members), an empty group of the
//! other type is converted, and the tooling APIs see consumer groups as Kafka shows them.
//!
//! Committed offsets of a consumer group live in a member-less classic `Group` entry of the
//! same id (the offsets map Kafka keeps apart from groups); the helpers here keep that entry
//! from being mistaken for a classic group.

use std::collections::{BTreeMap, BTreeSet};

use crate::coordinator::Output;
use crate::error::ErrorCode;
use crate::group::{Group, GroupState};
use crate::records::{GroupMetadataKey, GroupRecord};
use crate::types::{ListGroups, ListedGroup};

use super::coordinator::ConsumerGroups;
use super::types::{
    ConsumerError, ConsumerErrorCode, ConsumerHeartbeat, ConsumerHeartbeatResponse, DescribedGroup,
};

/// `GroupType.CONSUMER` in ListGroups, and the protocol type Kafka lists such groups with.
pub const CONSUMER_GROUP_TYPE: &str = "consumer";

/// A classic group with a member, a pending member or a rebalance in flight.
fn classic_in_use(g: &Group) -> bool {
    !g.members.is_empty() || !g.pending_members.is_empty() || g.state != GroupState::Empty
}

/// ConsumerGroupHeartbeat under the one-type rule. An empty classic group is converted
/// when a member joins (its metadata record is tombstoned; its offsets stay).
pub(crate) fn heartbeat(
    classic: &mut BTreeMap<String, Group>,
    consumer: &mut ConsumerGroups,
    c: ConsumerHeartbeat,
    now_ms: i64,
    out: &mut Output,
) -> ConsumerHeartbeatResponse {
    let group_id = c.group_id.clone();
    let mut convert = false;
    if consumer.group(&group_id).is_none() {
        if let Some(g) = classic.get(&group_id) {
            if classic_in_use(g) || c.member_epoch != 0 {
                return ConsumerHeartbeatResponse::error(ConsumerError::new(
                    ConsumerErrorCode::GroupIdNotFound,
                    format!("Group {group_id} is not a consumer group."),
                ));
            }
            convert = g.protocol_type.is_some() || g.generation_id > 0;
        }
    }
    let (records, response) = consumer.heartbeat(c, now_ms);
    if response.error.is_none() && convert {
        if let Some(g) = classic.get_mut(&group_id) {
            tracing::info!(group = %group_id, "converting the empty classic group to a consumer group");
            g.protocol_type = None;
            g.protocol_name = None;
            g.leader_id = None;
            g.generation_id = 0;
            let key = GroupMetadataKey {
                group: group_id.clone(),
            };
            out.record(GroupRecord::group_metadata(&key, None));
        }
    }
    out.records.extend(records);
    response
}

/// Before a JoinGroup: a consumer group with members refuses classic members
/// (INCONSISTENT_GROUP_PROTOCOL: Strom does not run classic members inside consumer
/// groups); an empty one is deleted so the classic group can take the id.
pub(crate) fn before_classic_join(
    consumer: &mut ConsumerGroups,
    group_id: &str,
    out: &mut Output,
) -> Result<(), ErrorCode> {
    let Some(g) = consumer.group(group_id) else {
        return Ok(());
    };
    if !g.members.is_empty() {
        return Err(ErrorCode::InconsistentGroupProtocol);
    }
    if let Some(records) = consumer.delete_empty(group_id) {
        tracing::info!(
            group = group_id,
            "converting the empty consumer group to a classic group"
        );
        out.records.extend(records);
    }
    Ok(())
}

/// ConsumerGroupDescribe of one group.
pub(crate) fn describe(
    classic: &BTreeMap<String, Group>,
    consumer: &ConsumerGroups,
    group_id: &str,
) -> DescribedGroup {
    let mut described = consumer
        .describe(&[group_id.to_owned()])
        .pop()
        .unwrap_or_else(|| DescribedGroup {
            group_id: group_id.to_owned(),
            error: None,
            state: String::new(),
            group_epoch: 0,
            assignment_epoch: 0,
            assignor_name: String::new(),
            members: Vec::new(),
        });
    if described.error.is_some() && classic.contains_key(group_id) {
        described.error = Some(ConsumerError::new(
            ConsumerErrorCode::GroupIdNotFound,
            format!("Group {group_id} is not a consumer group."),
        ));
    }
    described
}

/// ListGroups entries of consumer groups, filtered by state and type like Kafka.
pub(crate) fn list(consumer: &ConsumerGroups, filter: &ListGroups) -> Vec<ListedGroup> {
    let type_ok = filter.types.is_empty()
        || filter
            .types
            .iter()
            .any(|t| t.trim().eq_ignore_ascii_case(CONSUMER_GROUP_TYPE));
    if !type_ok {
        return Vec::new();
    }
    consumer
        .groups
        .values()
        .filter_map(|g| {
            let state = g.state().name();
            let state_ok = filter.states.is_empty()
                || filter
                    .states
                    .iter()
                    .any(|s| s.trim().eq_ignore_ascii_case(state));
            state_ok.then(|| ListedGroup {
                group_id: g.group_id.clone(),
                protocol_type: CONSUMER_GROUP_TYPE.to_owned(),
                state: state.to_owned(),
                group_type: CONSUMER_GROUP_TYPE.to_owned(),
            })
        })
        .collect()
}

/// DeleteGroups of a consumer group: `None` when the id is not one (the classic path
/// answers). A group with members is NON_EMPTY_GROUP; otherwise its records and its
/// offsets are tombstoned.
pub(crate) fn delete(
    classic: &mut BTreeMap<String, Group>,
    consumer: &mut ConsumerGroups,
    group_id: &str,
    out: &mut Output,
) -> Option<ErrorCode> {
    let g = consumer.group(group_id)?;
    if !g.members.is_empty() {
        return Some(ErrorCode::NonEmptyGroup);
    }
    if let Some(shell) = classic.remove(group_id) {
        for (topic, partition) in shell.offsets.keys() {
            out.record(crate::admin::offset_tombstone(group_id, topic, *partition));
        }
    }
    out.records
        .extend(consumer.delete_empty(group_id).unwrap_or_default());
    tracing::info!(group = group_id, "consumer group deleted");
    Some(ErrorCode::None)
}

impl ConsumerGroups {
    /// Topic names the group's members subscribe to (by name or through a regex that
    /// matched an existing topic); `None` when the id is not a consumer group.
    pub fn subscribed_topics(&self, group_id: &str) -> Option<BTreeSet<String>> {
        let g = self.group(group_id)?;
        let mut out: BTreeSet<String> = g.subscription_metadata.keys().cloned().collect();
        for m in g.members.values() {
            out.extend(m.subscription.subscribed_topic_names.iter().cloned());
        }
        Some(out)
    }
}
