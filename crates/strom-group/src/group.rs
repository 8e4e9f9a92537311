//! One classic group: its state, members, generation and chosen protocol.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::coordinator::RequestId;
use crate::records::{GroupMetadataKey, GroupMetadataValue, GroupRecord, MemberMetadata};
use crate::RecordError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka's `ClassicGroupState.toString()` gives (DescribeGroups, ListGroups).
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A protocol a member supports (e.g. an assignor name) and its subscription metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    pub last_heartbeat_ms: i64,
    pub awaiting_join: Option<RequestId>,
    pub awaiting_sync: Option<RequestId>,
    /// Joined the current generation but has not sent SyncGroup yet.
    pub sync_pending: bool,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    pub fn session_expired(&self, now_ms: i64) -> bool {
        // A member parked in JoinGroup or SyncGroup is alive: its request is open.
        self.awaiting_join.is_none()
            && self.awaiting_sync.is_none()
            && now_ms >= self.last_heartbeat_ms + i64::from(self.session_timeout_ms)
    }
}

/// Rebalance timer: when the join phase ends, and whether it is the initial delay.
#[derive(Debug, Clone)]
pub(crate) struct JoinTimer {
    pub deadline_ms: i64,
    pub initial: bool,
    /// Initial delay only: time left to extend into, and whether anyone joined since.
    pub remaining_ms: i64,
    pub new_member_joined: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub group_id: String,
    pub state: GroupState,
    pub state_timestamp_ms: i64,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    /// Ordered so that leader choice and responses are deterministic.
    pub members: BTreeMap<String, Member>,
    pub static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the time they expire.
    pub pending_members: BTreeMap<String, i64>,
    pub join_timer: Option<JoinTimer>,
    /// After a join completes, members that have not synced by then are removed (Kafka's
    /// pending-sync timeout), so a silent leader cannot stall the group.
    pub sync_deadline_ms: Option<i64>,
    pub offsets: BTreeMap<(String, i32), crate::records::OffsetCommitValue>,
}

impl Group {
    pub fn new(group_id: &str, now_ms: i64) -> Self {
        Group {
            group_id: group_id.to_owned(),
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            join_timer: None,
            sync_deadline_ms: None,
            offsets: BTreeMap::new(),
        }
    }

    pub fn transition(&mut self, state: GroupState, now_ms: i64) {
        tracing::debug!(group = %self.group_id, from = ?self.state, to = ?state, "group state");
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    /// Protocol names every member supports.
    fn candidate_protocols(&self) -> BTreeSet<&str> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return BTreeSet::new();
        };
        let mut candidates: BTreeSet<&str> =
            first.protocols.iter().map(|p| p.name.as_str()).collect();
        for m in members {
            candidates.retain(|c| m.protocols.iter().any(|p| p.name == *c));
        }
        candidates
    }

    /// Kafka's `supportsProtocols`: a joiner must share the protocol type and at least one
    /// protocol that every current member supports.
    pub fn supports(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        let candidates = self.candidate_protocols();
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|p| candidates.contains(p.name.as_str()))
    }

    /// Each member votes for its most preferred candidate; most votes wins, ties by name.
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(p) = m
                .protocols
                .iter()
                .find(|p| candidates.contains(p.name.as_str()))
            {
                *votes.entry(p.name.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, count)| *count == best)
            .map(|(name, _)| name.to_owned())
    }

    pub fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    pub fn max_rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    pub fn metadata_record(&self) -> Result<GroupRecord, RecordError> {
        let protocol = self.protocol_name.clone();
        let members = self
            .members
            .values()
            .map(|m| MemberMetadata {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: protocol
                    .as_deref()
                    .map(|p| m.metadata_for(p))
                    .unwrap_or_default(),
                assignment: m.assignment.clone(),
            })
            .collect();
        let value = GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol,
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms,
            members,
        };
        GroupRecord::group_metadata(
            &GroupMetadataKey {
                group: self.group_id.clone(),
            },
            Some(&value),
        )
    }

    pub fn summary(&self) -> GroupSummary {
        GroupSummary {
            group_id: self.group_id.clone(),
            state: self.state,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone(),
            members: self
                .members
                .values()
                .map(|m| MemberSummary {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    assignment: m.assignment.clone(),
                })
                .collect(),
            offsets: self
                .offsets
                .iter()
                .map(|((t, p), v)| (t.clone(), *p, v.offset, v.metadata.clone()))
                .collect(),
        }
    }
}

/// What DescribeGroups / ListGroups need, and what a replay must reproduce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub group_id: String,
    pub state: GroupState,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub members: Vec<MemberSummary>,
    /// (topic, partition, offset, metadata)
    pub offsets: Vec<(String, i32, i64, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub assignment: Bytes,
}
