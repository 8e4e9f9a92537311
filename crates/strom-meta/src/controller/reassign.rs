//! Partition reassignment: AlterPartitionReassignments and ListPartitionReassignments, as
//! Kafka's KRaft controller makes them (`ReplicationControlManager`,
//! `PartitionReassignmentReplicas`, `PartitionReassignmentRevert`, `PartitionChangeBuilder`).
//!
//! A reassignment moves through committed partition changes only:
//! 1. Start: the replicas become the target followed by the current replicas not in the
//!    target (Kafka's merged list), `adding_replicas` = target replicas that were not
//!    replicas before, `removing_replicas` = current replicas not in the target. The new
//!    replicas' brokers see themselves named and start following the leader.
//! 2. The leader adds each new replica to the ISR once it has caught up (AlterPartition).
//! 3. Completion, as soon as every adding replica is in the ISR and at least one ISR member
//!    stays: one change drops the removing replicas from the replicas and the ISR, clears
//!    both lists and bumps the leader epoch (fencing the removed replicas); if the leader
//!    was removed, the new leader is the first ISR member in target order, so leadership
//!    moves only to an in-sync target replica. A completion that would leave the partition
//!    leaderless (no remaining ISR member is active) waits instead.
//!
//! Cancellation (null replicas) reverts: the adding replicas leave the replicas and the ISR;
//! when that would empty the ISR, only a topic allowing unclean elections may revert.
//!
//! Nothing here deletes data: a removed replica's broker deletes its log only when it reads
//! the committed change that no longer names it (`ReplicaManager::reconcile`).
//!
//! One deliberate difference from Kafka: a reassignment that replaces an ongoing one counts
//! as adding every target replica that was not a replica before the first one, so the new
//! one also waits for replicas the first one was still adding (Kafka counts only those new
//! to the merged list and may complete before they are in sync).

use crate::controller::elections::{elect, unclean_enabled, Acceptor, Election};
use crate::controller::errors::{ApiError, ErrorCode};
use crate::controller::messages::{
    AlterPartitionReassignmentsRequest, ControllerReply, ListPartitionReassignmentsRequest,
    OngoingPartitionReassignment, OngoingTopicReassignment, ReassignmentTopicResult,
};
use crate::controller::placement::validate_manual_replicas;
use crate::controller::staged::Staged;
use crate::controller::Handled;
use crate::image::{MetadataImage, PartitionImage, TopicIdPartition};
use crate::records::{MetadataRecord, NO_LEADER};

/// A partition's wanted replica state, before the leader is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl Target {
    fn of(p: &PartitionImage) -> Self {
        Target {
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            adding: p.adding_replicas.clone(),
            removing: p.removing_replicas.clone(),
        }
    }

    /// Kafka's `maybeCompleteReassignment`: true (and `self` completed) when every adding
    /// replica is in the ISR and the ISR keeps a member that is not being removed.
    pub fn complete(&mut self) -> bool {
        if self.adding.is_empty() && self.removing.is_empty() {
            return false;
        }
        let removing = &self.removing;
        let isr: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|r| !removing.contains(r))
            .collect();
        if isr.is_empty() || self.adding.iter().any(|r| !isr.contains(r)) {
            return false;
        }
        self.replicas.retain(|r| !removing.contains(r));
        self.isr = isr;
        self.adding.clear();
        self.removing.clear();
        true
    }
}

pub(crate) fn alter_reassignments(
    image: &MetadataImage,
    request: AlterPartitionReassignmentsRequest,
    unclean_default: bool,
) -> Handled {
    let mut staged = Staged::new(image);
    let mut results = Vec::with_capacity(request.topics.len());
    for (topic, partitions) in request.topics {
        let mut out = Vec::with_capacity(partitions.len());
        for (partition, target) in partitions {
            let outcome = alter_one(
                &mut staged,
                &topic,
                partition,
                target.as_deref(),
                request.allow_replication_factor_change,
                unclean_default,
            );
            out.push((partition, outcome.err()));
        }
        results.push(ReassignmentTopicResult {
            topic,
            partitions: out,
        });
    }
    Ok((
        staged.finish(false)?,
        ControllerReply::AlterPartitionReassignments(results),
    ))
}

fn alter_one(
    staged: &mut Staged,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
    allow_replication_factor_change: bool,
    unclean_default: bool,
) -> Result<(), ApiError> {
    let image = &staged.image;
    let unknown = |message: String| ApiError::new(ErrorCode::UnknownTopicOrPartition, message);
    let t = image
        .topic_by_name(topic)
        .ok_or_else(|| unknown(format!("Unable to find a topic named {topic}.")))?;
    let p = t
        .partitions
        .get(&partition)
        .ok_or_else(|| unknown(format!("Unable to find partition {topic}:{partition}.")))?;
    let tp = TopicIdPartition {
        topic_id: t.topic_id,
        partition,
    };
    let record = match target {
        None => {
            let unclean = unclean_enabled(image, topic, unclean_default);
            cancel(image, tp, p, topic, unclean)?
        }
        Some(target) => start(image, tp, p, target, allow_replication_factor_change)?,
    };
    match record {
        Some(record) => staged.push_applied(vec![record]),
        None => Ok(()),
    }
}

/// Starts (or replaces) a reassignment of `p` onto `target`.
fn start(
    image: &MetadataImage,
    tp: TopicIdPartition,
    p: &PartitionImage,
    target: &[i32],
    allow_replication_factor_change: bool,
) -> Result<Option<MetadataRecord>, ApiError> {
    validate_manual_replicas(image, target)?;
    let current_target: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !p.removing_replicas.contains(r))
        .collect();
    if !allow_replication_factor_change && current_target.len() != target.len() {
        return Err(ApiError::new(
            ErrorCode::InvalidReplicationFactor,
            format!(
                "The replication factor is changed from {} to {}",
                current_target.len(),
                target.len()
            ),
        ));
    }
    let replicas: Vec<i32> = target
        .iter()
        .copied()
        .chain(p.replicas.iter().copied().filter(|r| !target.contains(r)))
        .collect();
    let removing: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|r| !p.replicas.contains(r) || p.adding_replicas.contains(r))
        .collect();
    let wanted = Target {
        replicas,
        isr: p.isr.clone(),
        adding,
        removing,
    };
    Ok(settle(image, tp, p, wanted))
}

/// Cancels the reassignment of `p` (Kafka's `PartitionReassignmentRevert`).
fn cancel(
    image: &MetadataImage,
    tp: TopicIdPartition,
    p: &PartitionImage,
    topic: &str,
    unclean_allowed: bool,
) -> Result<Option<MetadataRecord>, ApiError> {
    if !p.is_reassigning() {
        return Err(ApiError::new(
            ErrorCode::NoReassignmentInProgress,
            "No partition reassignment is in progress.",
        ));
    }
    let adding = &p.adding_replicas;
    let replicas: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !adding.contains(r))
        .collect();
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| !adding.contains(r))
        .collect();
    let reverted = Target {
        replicas,
        isr,
        adding: Vec::new(),
        removing: Vec::new(),
    };
    if !reverted.isr.is_empty() {
        return Ok(record(tp, p, &reverted, elect_for(image, p, &reverted)));
    }
    if !unclean_allowed {
        return Err(ApiError::new(
            ErrorCode::InvalidReplicaAssignment,
            format!(
                "Unable to revert partition assignment for {topic}:{} because it would require \
                 an unclean leader election.",
                tp.partition
            ),
        ));
    }
    // Only adding replicas are in sync: the first active original replica leads, and the
    // ISR becomes just it (records only the added replicas had are given up, as unclean
    // elections accept).
    let scratch = PartitionImage {
        replicas: reverted.replicas.clone(),
        ..p.clone()
    };
    let (leader, isr) = match elect(&scratch, &[], Election::Unclean, Acceptor::new(image)) {
        (NO_LEADER, _) => (
            NO_LEADER,
            reverted.replicas.iter().take(1).copied().collect(),
        ),
        elected => elected,
    };
    Ok(record(tp, p, &reverted, (leader, isr)))
}

/// The change that moves `p` to `wanted`, completing the reassignment at once when the ISR
/// already allows it (a reordering, or target replicas all in sync).
fn settle(
    image: &MetadataImage,
    tp: TopicIdPartition,
    p: &PartitionImage,
    wanted: Target,
) -> Option<MetadataRecord> {
    let mut completed = wanted.clone();
    if completed.complete() {
        let elected = elect_for(image, p, &completed);
        if elected.0 != NO_LEADER || !p.has_leader() {
            return record(tp, p, &completed, elected);
        }
    }
    let elected = elect_for(image, p, &wanted);
    record(tp, p, &wanted, elected)
}

/// The leader and ISR for `target`: the current leader while it stays in the ISR, else the
/// first active ISR member in target replica order.
fn elect_for(image: &MetadataImage, p: &PartitionImage, target: &Target) -> (i32, Vec<i32>) {
    if p.leader != NO_LEADER && target.isr.contains(&p.leader) {
        return (p.leader, target.isr.clone());
    }
    let scratch = PartitionImage {
        replicas: target.replicas.clone(),
        ..p.clone()
    };
    elect(&scratch, &target.isr, Election::Clean, Acceptor::new(image))
}

/// The PartitionChange from `p` to `target` led by `leader`, if anything changes. Removing
/// a replica bumps the leader epoch even when the leader stays (Kafka's
/// `triggerLeaderEpochBumpForReplicaReassignmentIfNeeded`): the removed replica's fetches
/// at the old epoch are then fenced.
fn record(
    tp: TopicIdPartition,
    p: &PartitionImage,
    target: &Target,
    (leader, isr): (i32, Vec<i32>),
) -> Option<MetadataRecord> {
    let replicas_changed = target.replicas != p.replicas;
    let removed_any = p.replicas.iter().any(|r| !target.replicas.contains(r));
    let leader_field = (leader != p.leader || removed_any).then_some(leader);
    let isr_field = (isr != p.isr).then_some(isr);
    let adding_field = (target.adding != p.adding_replicas).then(|| target.adding.clone());
    let removing_field = (target.removing != p.removing_replicas).then(|| target.removing.clone());
    let changed = replicas_changed
        || leader_field.is_some()
        || isr_field.is_some()
        || adding_field.is_some()
        || removing_field.is_some();
    changed.then(|| MetadataRecord::PartitionChange {
        topic_id: tp.topic_id,
        partition: tp.partition,
        isr: isr_field,
        leader: leader_field,
        replicas: replicas_changed.then(|| target.replicas.clone()),
        adding_replicas: adding_field,
        removing_replicas: removing_field,
    })
}

/// Completes every reassignment whose adding replicas are all in sync (called by the
/// controller's tick, after ISR changes have committed).
pub(crate) fn complete_ready(image: &MetadataImage) -> Vec<MetadataRecord> {
    image
        .partitions()
        .filter(|(_, p)| p.is_reassigning())
        .filter_map(|(tp, p)| {
            let mut completed = Target::of(p);
            if !completed.complete() {
                return None;
            }
            let elected = elect_for(image, p, &completed);
            if elected.0 == NO_LEADER && p.has_leader() {
                return None;
            }
            record(tp, p, &completed, elected)
        })
        .collect()
}

/// ListPartitionReassignments: the ongoing reassignments asked about (all when `None`);
/// unknown topics and partitions without one are left out, as Kafka does.
pub(crate) fn list_reassignments(
    image: &MetadataImage,
    request: ListPartitionReassignmentsRequest,
) -> ControllerReply {
    let asked: Vec<(String, Option<Vec<i32>>)> = match request.topics {
        None => image
            .topic_names()
            .map(|name| (name.to_owned(), None))
            .collect(),
        Some(topics) => topics.into_iter().map(|(t, ps)| (t, Some(ps))).collect(),
    };
    let mut out = Vec::new();
    for (topic, partitions) in asked {
        let Some(t) = image.topic_by_name(&topic) else {
            continue;
        };
        let ongoing = |(index, p): (&i32, &PartitionImage)| {
            p.is_reassigning().then(|| OngoingPartitionReassignment {
                partition: *index,
                replicas: p.replicas.clone(),
                adding_replicas: p.adding_replicas.clone(),
                removing_replicas: p.removing_replicas.clone(),
            })
        };
        let found: Vec<OngoingPartitionReassignment> = match partitions {
            None => t.partitions.iter().filter_map(ongoing).collect(),
            Some(ps) => ps
                .iter()
                .filter_map(|i| t.partitions.get_key_value(i))
                .filter_map(ongoing)
                .collect(),
        };
        if !found.is_empty() {
            out.push(OngoingTopicReassignment {
                topic,
                partitions: found,
            });
        }
    }
    ControllerReply::ListPartitionReassignments(out)
}

#[cfg(test)]
mod tests {
    use super::Target;

    fn target(replicas: &[i32], isr: &[i32], adding: &[i32], removing: &[i32]) -> Target {
        Target {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            adding: adding.to_vec(),
            removing: removing.to_vec(),
        }
    }

    #[test]
    fn completes_only_when_every_adding_replica_is_in_sync() {
        let mut t = target(&[4, 2, 3, 1], &[1, 2, 3], &[4], &[1]);
        assert!(!t.complete());
        let mut t = target(&[4, 2, 3, 1], &[1, 2, 3, 4], &[4], &[1]);
        assert!(t.complete());
        assert_eq!(t, target(&[4, 2, 3], &[2, 3, 4], &[], &[]));
    }

    #[test]
    fn never_completes_into_an_empty_isr() {
        let mut t = target(&[3, 1], &[1], &[], &[1]);
        assert!(!t.complete());
        let mut t = target(&[3, 1], &[1, 3], &[], &[1]);
        assert!(t.complete());
        assert_eq!(t, target(&[3], &[3], &[], &[]));
    }

    #[test]
    fn nothing_to_complete_without_a_reassignment() {
        let mut t = target(&[1, 2], &[1, 2], &[], &[]);
        assert!(!t.complete());
    }
}
