//! One KIP-848 group: group epoch, target assignment and its epoch, members, the
//! subscribed topics' metadata, and the derived state (Empty/Assigning/Reconciling/Stable).

use std::collections::{BTreeMap, BTreeSet};

use super::assignor;
use super::member::Member;
use super::reconcile::Ownership;
use super::types::{Assignment, TopicId};

/// A subscribed topic as last seen; a change (new topic, new partition count) bumps the
/// group epoch so a new target assignment is computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub id: TopicId,
    pub partitions: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    /// The name Kafka puts in ConsumerGroupDescribe and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, Member>,
    /// instance id -> member id
    pub static_members: BTreeMap<String, String>,
    pub target: BTreeMap<String, Assignment>,
    /// topic name -> metadata, for the topics members subscribe to that exist.
    pub subscription_metadata: BTreeMap<String, TopicMetadata>,
}

impl ConsumerGroup {
    pub fn new(group_id: &str) -> Self {
        ConsumerGroup {
            group_id: group_id.to_owned(),
            ..ConsumerGroup::default()
        }
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .all(|m| m.current.is_reconciled_to(self.assignment_epoch))
        {
            ConsumerGroupState::Stable
        } else {
            ConsumerGroupState::Reconciling
        }
    }

    pub fn static_member(&self, instance_id: &str) -> Option<&Member> {
        self.static_members
            .get(instance_id)
            .and_then(|id| self.members.get(id))
    }

    /// The assignor most members asked for, else the configured default (Kafka's
    /// `preferredServerAssignor`); ties go to the name first in order.
    pub fn preferred_assignor(&self, default: &str) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.subscription.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max().unwrap_or(0);
        votes
            .into_iter()
            .find(|(_, n)| *n == best && best > 0)
            .map_or_else(|| default.to_owned(), |(name, _)| name.to_owned())
    }

    /// Inserts or replaces a member, keeping the static-member index in step.
    pub fn put_member(&mut self, member: Member) {
        if let Some(old) = self.members.get(&member.member_id) {
            if let Some(instance) = &old.subscription.instance_id {
                if self.static_members.get(instance) == Some(&member.member_id) {
                    self.static_members.remove(instance);
                }
            }
        }
        if let Some(instance) = &member.subscription.instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        self.members.insert(member.member_id.clone(), member);
    }

    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        if let Some(instance) = &member.subscription.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.target.remove(member_id);
        Some(member)
    }

    /// Computes a target assignment for every member with the preferred assignor.
    pub fn compute_target(
        &self,
        default_assignor: &str,
        resolved: &BTreeMap<String, BTreeSet<String>>,
    ) -> BTreeMap<String, Assignment> {
        let subscriptions: BTreeMap<String, BTreeSet<TopicId>> = self
            .members
            .keys()
            .map(|id| {
                let topics = resolved
                    .get(id)
                    .into_iter()
                    .flatten()
                    .filter_map(|name| self.subscription_metadata.get(name).map(|t| t.id))
                    .collect();
                (id.clone(), topics)
            })
            .collect();
        let partitions: BTreeMap<TopicId, i32> = self
            .subscription_metadata
            .values()
            .map(|t| (t.id, t.partitions))
            .collect();
        let spec = assignor::AssignmentSpec {
            subscriptions: &subscriptions,
            partitions: &partitions,
            previous: &self.target,
        };
        assignor::assign(&self.preferred_assignor(default_assignor), &spec)
    }
}

/// Partitions held (assigned or pending revocation) by every member but one: the one being
/// reconciled, which may only take partitions nobody else holds.
pub struct OthersHold {
    held: BTreeSet<(TopicId, i32)>,
}

impl OthersHold {
    pub fn new(group: &ConsumerGroup, except: &str) -> Self {
        let held = group
            .members
            .values()
            .filter(|m| m.member_id != except)
            .flat_map(|m| m.owned())
            .collect();
        OthersHold { held }
    }
}

impl Ownership for OthersHold {
    fn held_by_other(&self, topic: TopicId, partition: i32) -> bool {
        self.held.contains(&(topic, partition))
    }
}
