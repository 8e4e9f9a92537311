//! A streams group and its members, as the records describe them plus transient timers.

use std::collections::{BTreeMap, BTreeSet};

use super::types::{Endpoint, TasksTuple, Topology};

/// Kafka's streams `MemberState` (the byte of the current assignment record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberState {
    /// Owns exactly its assignment at its epoch.
    #[default]
    Stable,
    /// Must stop owning `pending_revocation` before it moves to the next epoch.
    UnrevokedTasks,
    /// Waits for tasks that other members have not released yet.
    UnreleasedTasks,
    /// A state written by a newer coordinator; the member is reconciled from scratch.
    Unknown,
}

impl MemberState {
    pub fn byte(self) -> i8 {
        match self {
            MemberState::Stable => 1,
            MemberState::UnrevokedTasks => 2,
            MemberState::UnreleasedTasks => 3,
            MemberState::Unknown => 127,
        }
    }

    pub fn from_byte(b: i8) -> Self {
        match b {
            1 => MemberState::Stable,
            2 => MemberState::UnrevokedTasks,
            3 => MemberState::UnreleasedTasks,
            _ => MemberState::Unknown,
        }
    }
}

/// What the member metadata record holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub topology_epoch: i32,
    pub process_id: String,
    pub user_endpoint: Option<Endpoint>,
    pub client_tags: Vec<(String, String)>,
}

/// What the current member assignment record holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: TasksTuple,
    pub pending_revocation: TasksTuple,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamsMember {
    pub member_id: String,
    pub metadata: MemberMetadata,
    pub current: CurrentAssignment,
    /// Transient: when the session ends without a heartbeat.
    pub session_deadline_ms: i64,
    /// Transient: the member epoch at which revocation was asked, and its deadline.
    pub rebalance_deadline: Option<(i32, i64)>,
}

impl StreamsMember {
    pub fn new(member_id: &str) -> Self {
        StreamsMember {
            member_id: member_id.to_owned(),
            ..StreamsMember::default()
        }
    }

    /// The revocation deadline of a member in `UnrevokedTasks` (its epoch, and
    /// `rebalance_timeout_ms` after `now_ms`), `None` otherwise.
    pub fn revocation_deadline(&self, now_ms: i64) -> Option<(i32, i64)> {
        (self.current.state == MemberState::UnrevokedTasks).then(|| {
            (
                self.current.member_epoch,
                now_ms.saturating_add(i64::from(self.metadata.rebalance_timeout_ms.max(0))),
            )
        })
    }

    /// Tasks this member holds now: assigned plus pending revocation.
    pub fn holds(&self) -> TasksTuple {
        let mut t = self.current.assigned.clone();
        for (mine, pending) in [
            (&mut t.active, &self.current.pending_revocation.active),
            (&mut t.standby, &self.current.pending_revocation.standby),
            (&mut t.warmup, &self.current.pending_revocation.warmup),
        ] {
            for (sub, parts) in pending {
                mine.entry(sub.clone()).or_default().extend(parts);
            }
        }
        t
    }
}

/// Kafka's `StreamsGroup.StreamsGroupState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamsGroupState {
    Empty,
    NotReady,
    Assigning,
    Reconciling,
    Stable,
}

impl StreamsGroupState {
    pub fn name(self) -> &'static str {
        match self {
            StreamsGroupState::Empty => "Empty",
            StreamsGroupState::NotReady => "NotReady",
            StreamsGroupState::Assigning => "Assigning",
            StreamsGroupState::Reconciling => "Reconciling",
            StreamsGroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamsGroup {
    pub group_id: String,
    pub group_epoch: i32,
    /// A hash of the partition counts of the topology's topics: a change bumps the epoch.
    pub metadata_hash: i64,
    /// The topology epoch whose topics were found ready (-1: none).
    pub validated_topology_epoch: i32,
    pub topology: Option<Topology>,
    pub members: BTreeMap<String, StreamsMember>,
    pub target: BTreeMap<String, TasksTuple>,
    pub assignment_epoch: i32,
    /// The `num.standby.replicas` the target was computed with (an assignment config).
    pub num_standby_replicas: i32,
    /// Transient: the member that asked the application to shut down (until the group
    /// is empty), as Kafka keeps it.
    pub shutdown_requested_by: Option<String>,
}

impl StreamsGroup {
    pub fn new(group_id: &str) -> Self {
        StreamsGroup {
            group_id: group_id.to_owned(),
            validated_topology_epoch: -1,
            ..StreamsGroup::default()
        }
    }

    pub fn state(&self) -> StreamsGroupState {
        if self.members.is_empty() {
            StreamsGroupState::Empty
        } else if self.topology.is_none()
            || self.validated_topology_epoch < 0
            || self
                .topology
                .as_ref()
                .is_some_and(|t| t.epoch != self.validated_topology_epoch)
        {
            StreamsGroupState::NotReady
        } else if self.group_epoch > self.assignment_epoch {
            StreamsGroupState::Assigning
        } else if self.members.values().any(|m| {
            m.current.member_epoch != self.assignment_epoch
                || m.current.state != MemberState::Stable
        }) {
            StreamsGroupState::Reconciling
        } else {
            StreamsGroupState::Stable
        }
    }

    pub fn static_member(&self, instance_id: &str) -> Option<&StreamsMember> {
        self.members
            .values()
            .find(|m| m.metadata.instance_id.as_deref() == Some(instance_id))
    }

    /// Who holds each task now (assigned or pending revocation), by kind: the active
    /// owner's member id and process, and the processes of standby and warm-up owners.
    pub fn owners(&self) -> Owners {
        let mut o = Owners::default();
        for m in self.members.values() {
            let holds = m.holds();
            let process = m.metadata.process_id.clone();
            for (sub, parts) in &holds.active {
                for p in parts {
                    o.active
                        .insert((sub.clone(), *p), (m.member_id.clone(), process.clone()));
                }
            }
            for (kind, tasks) in [
                (&mut o.standby, &holds.standby),
                (&mut o.warmup, &holds.warmup),
            ] {
                for (sub, parts) in tasks {
                    for p in parts {
                        kind.entry((sub.clone(), *p))
                            .or_default()
                            .insert(process.clone());
                    }
                }
            }
        }
        o
    }
}

/// Current owners of tasks, for reconciliation's "is this task released" test.
#[derive(Debug, Default)]
pub struct Owners {
    /// (subtopology, partition) → (member id, process id).
    pub active: BTreeMap<(String, i32), (String, String)>,
    pub standby: BTreeMap<(String, i32), BTreeSet<String>>,
    pub warmup: BTreeMap<(String, i32), BTreeSet<String>>,
}
