//! Reconciliation (Kafka's `CurrentAssignmentBuilder`): moves a member's current assignment
//! one step towards its target. A partition is revoked from its owner first and given to
//! its new owner only once no other member holds it (incremental cooperative rebalancing).

use std::collections::BTreeSet;

use super::member::{intersects, CurrentAssignment, MemberState};
use super::types::{Assignment, TopicId};

/// Whether a partition is held by some other member (Kafka: its partition epoch is not -1).
pub trait Ownership {
    fn held_by_other(&self, topic: TopicId, partition: i32) -> bool;
}

pub struct Reconcile<'a, O: Ownership> {
    pub target_epoch: i32,
    pub target: &'a Assignment,
    pub ownership: &'a O,
    /// The partitions the member reported owning; `None` when it did not say.
    pub owned: Option<&'a Assignment>,
}

/// The fencing error of a member in the Unknown state that still reports partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MustRejoin;

impl<O: Ownership> Reconcile<'_, O> {
    /// The member's next current assignment (equal to `current` when nothing changes).
    pub fn next(&self, current: &CurrentAssignment) -> Result<CurrentAssignment, MustRejoin> {
        match current.state {
            MemberState::Stable => {
                if current.member_epoch != self.target_epoch {
                    Ok(self.compute(current, current.member_epoch))
                } else {
                    Ok(current.clone())
                }
            }
            MemberState::UnrevokedPartitions => {
                if self.owns_any(&current.pending_revocation) {
                    Ok(current.clone())
                } else {
                    Ok(self.compute(current, current.member_epoch.saturating_add(1)))
                }
            }
            MemberState::UnreleasedPartitions => Ok(self.compute(current, current.member_epoch)),
            MemberState::Unknown => {
                if self.owned.is_none_or(|o| !o.is_empty()) {
                    return Err(MustRejoin);
                }
                Ok(self.compute(current, self.target_epoch))
            }
        }
    }

    /// Kafka's `ownsRevokedPartitions`: without a report, assume it still owns them.
    fn owns_any(&self, revoked: &Assignment) -> bool {
        match self.owned {
            None => true,
            Some(owned) => intersects(owned, revoked),
        }
    }

    fn compute(&self, current: &CurrentAssignment, member_epoch: i32) -> CurrentAssignment {
        let mut assigned = Assignment::new();
        let mut revoking = Assignment::new();
        let mut pending = Assignment::new();
        let mut unreleased = false;
        let topics: BTreeSet<TopicId> = self
            .target
            .keys()
            .chain(current.assigned.keys())
            .copied()
            .collect();
        let empty = BTreeSet::new();
        for topic in topics {
            let target = self.target.get(&topic).unwrap_or(&empty);
            let held = current.assigned.get(&topic).unwrap_or(&empty);
            let keep: BTreeSet<i32> = held.intersection(target).copied().collect();
            let revoke: BTreeSet<i32> = held.difference(&keep).copied().collect();
            let mut add = BTreeSet::new();
            for p in target.difference(&keep) {
                if self.ownership.held_by_other(topic, *p) {
                    unreleased = true;
                } else {
                    add.insert(*p);
                }
            }
            if !keep.is_empty() {
                assigned.insert(topic, keep);
            }
            if !revoke.is_empty() {
                revoking.insert(topic, revoke);
            }
            if !add.is_empty() {
                pending.insert(topic, add);
            }
        }
        if !revoking.is_empty() && self.owns_any(&revoking) {
            return CurrentAssignment {
                member_epoch,
                previous_member_epoch: current.member_epoch,
                state: MemberState::UnrevokedPartitions,
                assigned,
                pending_revocation: revoking,
            };
        }
        for (topic, partitions) in pending {
            assigned.entry(topic).or_default().extend(partitions);
        }
        let state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        CurrentAssignment {
            member_epoch: self.target_epoch,
            previous_member_epoch: current.member_epoch,
            state,
            assigned,
            pending_revocation: Assignment::new(),
        }
    }
}
