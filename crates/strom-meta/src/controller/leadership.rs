//! Partition leadership and ISR changes: moving leaders off a fenced broker, electing
//! leaders when a broker comes back, and AlterPartition (ISR changes asked by leaders).
//!
//! Elections are clean only: a leader is always chosen from the ISR, in replica order.
//! The ISR never shrinks below one member, so the last in-sync replica is remembered even
//! while it is down, and leads again when it returns.

use crate::controller::errors::{ApiError, ControllerError, ErrorCode};
use crate::controller::messages::{
    AlterPartitionItem, AlterPartitionRequest, AlterPartitionResult, ControllerReply,
};
use crate::controller::staged::Staged;
use crate::controller::Handled;
use crate::image::{MetadataImage, PartitionImage, TopicIdPartition};
use crate::records::{MetadataRecord, NO_LEADER};
use std::collections::BTreeSet;

/// Changes that take `broker_id` out of every ISR and leadership, as if it were fenced.
pub(crate) fn remove_broker_from_partitions(
    image: &MetadataImage,
    broker_id: i32,
) -> Vec<MetadataRecord> {
    let alive = |b: i32| b != broker_id && image.is_broker_unfenced(b);
    image
        .partitions()
        .filter(|(_, p)| p.leader == broker_id || p.isr.contains(&broker_id))
        .filter_map(|(tp, p)| {
            let isr = if p.isr.len() > 1 {
                without(&p.isr, broker_id)
            } else {
                p.isr.clone()
            };
            let leader = if p.leader == broker_id {
                preferred(&p.replicas, &isr, alive)
            } else {
                p.leader
            };
            change(tp, p, isr, leader)
        })
        .collect()
}

/// Elections for leaderless partitions whose ISR holds `broker_id`, which is coming back.
pub(crate) fn elect_with_broker(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    let alive = |b: i32| b == broker_id || image.is_broker_unfenced(b);
    image
        .partitions()
        .filter(|(_, p)| p.leader == NO_LEADER && p.isr.contains(&broker_id))
        .filter_map(|(tp, p)| change(tp, p, p.isr.clone(), preferred(&p.replicas, &p.isr, alive)))
        .collect()
}

fn without(list: &[i32], broker_id: i32) -> Vec<i32> {
    list.iter().copied().filter(|b| *b != broker_id).collect()
}

fn preferred(replicas: &[i32], isr: &[i32], alive: impl Fn(i32) -> bool) -> i32 {
    replicas
        .iter()
        .copied()
        .find(|r| isr.contains(r) && alive(*r))
        .unwrap_or(NO_LEADER)
}

fn change(
    tp: TopicIdPartition,
    p: &PartitionImage,
    isr: Vec<i32>,
    leader: i32,
) -> Option<MetadataRecord> {
    let isr_changed = isr != p.isr;
    let leader_changed = leader != p.leader;
    (isr_changed || leader_changed).then(|| MetadataRecord::PartitionChange {
        topic_id: tp.topic_id,
        partition: tp.partition,
        isr: isr_changed.then_some(isr),
        leader: leader_changed.then_some(leader),
        replicas: None,
    })
}

pub(crate) fn alter_partition(image: &MetadataImage, request: AlterPartitionRequest) -> Handled {
    let registered = image.broker(request.broker_id);
    if registered.map(|b| b.epoch) != Some(request.broker_epoch) {
        return Err(ControllerError::new(
            ErrorCode::StaleBrokerEpoch,
            format!(
                "Broker {} epoch {} is not current.",
                request.broker_id, request.broker_epoch
            ),
        ));
    }
    let mut staged = Staged::new(image);
    let mut results = Vec::with_capacity(request.partitions.len());
    for item in &request.partitions {
        let outcome = alter_one(&mut staged, request.broker_id, item);
        let current = staged.image.partition(item.topic_id, item.partition);
        results.push(AlterPartitionResult {
            topic_id: item.topic_id,
            partition: item.partition,
            error: outcome.err(),
            leader: current.map_or(NO_LEADER, |p| p.leader),
            leader_epoch: current.map_or(-1, |p| p.leader_epoch),
            isr: current.map_or_else(Vec::new, |p| p.isr.clone()),
            partition_epoch: current.map_or(-1, |p| p.partition_epoch),
        });
    }
    Ok((
        staged.finish(false)?,
        ControllerReply::AlterPartition(results),
    ))
}

fn alter_one(
    staged: &mut Staged,
    leader_id: i32,
    item: &AlterPartitionItem,
) -> Result<(), ApiError> {
    let topic = staged.image.topic_by_id(item.topic_id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownTopicId,
            "This server does not host this topic ID.",
        )
    })?;
    let p = topic.partitions.get(&item.partition).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            "This server does not host this topic-partition.",
        )
    })?;
    // Kafka's order of checks. An epoch newer than ours means this controller is behind.
    if item.leader_epoch > p.leader_epoch || item.partition_epoch > p.partition_epoch {
        return Err(ApiError::new(
            ErrorCode::NotController,
            format!(
                "The request's epochs are newer than this controller's for partition {}.",
                item.partition
            ),
        ));
    }
    if item.leader_epoch < p.leader_epoch {
        return Err(ApiError::new(
            ErrorCode::FencedLeaderEpoch,
            format!(
                "Leader epoch {} is older than the current {}.",
                item.leader_epoch, p.leader_epoch
            ),
        ));
    }
    if p.leader != leader_id {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "Broker {leader_id} is not the leader of partition {}.",
                item.partition
            ),
        ));
    }
    if item.partition_epoch < p.partition_epoch {
        return Err(ApiError::new(
            ErrorCode::InvalidUpdateVersion,
            format!(
                "Partition epoch {} is older than the current {}.",
                item.partition_epoch, p.partition_epoch
            ),
        ));
    }
    check_new_isr(&staged.image, p, leader_id, &item.new_isr)?;
    if item.new_isr == p.isr {
        return Ok(());
    }
    staged.push_applied(vec![MetadataRecord::PartitionChange {
        topic_id: item.topic_id,
        partition: item.partition,
        isr: Some(item.new_isr.clone()),
        leader: None,
        replicas: None,
    }])
}

fn check_new_isr(
    image: &MetadataImage,
    p: &PartitionImage,
    leader_id: i32,
    new_isr: &[i32],
) -> Result<(), ApiError> {
    let invalid = |message: String| Err(ApiError::new(ErrorCode::InvalidRequest, message));
    let distinct: BTreeSet<i32> = new_isr.iter().copied().collect();
    if distinct.len() != new_isr.len() {
        return invalid(format!("The new ISR {new_isr:?} has duplicates."));
    }
    if !distinct.contains(&leader_id) {
        return invalid(format!(
            "The new ISR {new_isr:?} does not contain the leader {leader_id}."
        ));
    }
    if let Some(outsider) = new_isr.iter().find(|b| !p.replicas.contains(b)) {
        return invalid(format!(
            "The new ISR member {outsider} is not a replica of the partition."
        ));
    }
    if let Some(ineligible) = new_isr.iter().find(|b| !image.is_broker_unfenced(**b)) {
        return Err(ApiError::new(
            ErrorCode::IneligibleReplica,
            format!("Broker {ineligible} cannot join the ISR: it is fenced or not registered."),
        ));
    }
    Ok(())
}
