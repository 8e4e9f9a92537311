//! One member of a KIP-848 group: its subscription, its epochs and where it is in the
//! reconciliation towards its target assignment.

use std::collections::BTreeSet;

use super::types::{Assignment, TopicId};

/// Kafka's `MemberState`, with the byte it has in `ConsumerGroupCurrentMemberAssignmentValue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberState {
    /// Owns exactly its assignment at its epoch.
    #[default]
    Stable,
    /// Must stop owning `pending_revocation` before it moves to the next epoch.
    UnrevokedPartitions,
    /// Waits for partitions that other members have not released yet.
    UnreleasedPartitions,
    /// A state written by a newer coordinator; the member is reconciled from scratch.
    Unknown,
}

impl MemberState {
    pub fn byte(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
            MemberState::Unknown => 127,
        }
    }

    pub fn from_byte(b: i8) -> Self {
        match b {
            0 => MemberState::Stable,
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Unknown,
        }
    }
}

/// The revocation deadline: the member is fenced if it is still at `member_epoch` then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebalanceTimer {
    pub member_epoch: i32,
    pub deadline_ms: i64,
}

/// What `ConsumerGroupMemberMetadataValue` persists: changes to it are written as a record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: BTreeSet<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// What `ConsumerGroupCurrentMemberAssignmentValue` persists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

impl CurrentAssignment {
    /// Kafka's `isReconciledTo`.
    pub fn is_reconciled_to(&self, target_epoch: i32) -> bool {
        self.state == MemberState::Stable && self.member_epoch == target_epoch
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    pub subscription: Subscription,
    pub current: CurrentAssignment,
    pub session_deadline_ms: i64,
    pub rebalance_timer: Option<RebalanceTimer>,
}

impl Member {
    pub fn new(member_id: &str, now_ms: i64) -> Self {
        Member {
            member_id: member_id.to_owned(),
            subscription: Subscription {
                rebalance_timeout_ms: -1,
                ..Subscription::default()
            },
            current: CurrentAssignment::default(),
            session_deadline_ms: now_ms,
            rebalance_timer: None,
        }
    }

    /// The revocation deadline of a member in `UnrevokedPartitions` (its epoch, and
    /// `rebalance_timeout_ms` after `now_ms`), `None` otherwise.
    pub fn revocation_timer(&self, now_ms: i64) -> Option<RebalanceTimer> {
        (self.current.state == MemberState::UnrevokedPartitions).then(|| RebalanceTimer {
            member_epoch: self.current.member_epoch,
            deadline_ms: now_ms
                .saturating_add(i64::from(self.subscription.rebalance_timeout_ms.max(0))),
        })
    }

    /// Every partition the member still holds: assigned and pending revocation.
    pub fn owned(&self) -> impl Iterator<Item = (TopicId, i32)> + '_ {
        flatten(&self.current.assigned).chain(flatten(&self.current.pending_revocation))
    }
}

pub fn flatten(a: &Assignment) -> impl Iterator<Item = (TopicId, i32)> + '_ {
    a.iter()
        .flat_map(|(topic, partitions)| partitions.iter().map(move |p| (*topic, *p)))
}

/// The owned-partitions list of a heartbeat as an assignment (duplicates collapse).
pub fn to_assignment(owned: &[(TopicId, Vec<i32>)]) -> Assignment {
    let mut out = Assignment::new();
    for (topic, partitions) in owned {
        if partitions.is_empty() {
            continue;
        }
        out.entry(*topic)
            .or_default()
            .extend(partitions.iter().copied());
    }
    out
}

/// Whether every partition of `part` is in `whole`.
pub fn is_subset(part: &Assignment, whole: &Assignment) -> bool {
    part.iter().all(|(topic, partitions)| {
        whole
            .get(topic)
            .is_some_and(|w| partitions.iter().all(|p| w.contains(p)))
    })
}

/// Whether `a` and `b` share a partition.
pub fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter().any(|(topic, partitions)| {
        b.get(topic)
            .is_some_and(|other| partitions.iter().any(|p| other.contains(p)))
    })
}
