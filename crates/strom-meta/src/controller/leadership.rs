//! AlterPartition: ISR changes asked by partition leaders. Elections (leaders moved off a
//! fenced or shutting-down broker, preferred and unclean elections) are in `elections.rs`.

use crate::controller::errors::{ApiError, ControllerError, ErrorCode};
use crate::controller::messages::{
    AlterPartitionItem, AlterPartitionRequest, AlterPartitionResult, ControllerReply,
};
use crate::controller::staged::Staged;
use crate::controller::Handled;
use crate::image::{MetadataImage, PartitionImage};
use crate::records::{MetadataRecord, NO_LEADER};
use std::collections::BTreeSet;

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
        adding_replicas: None,
        removing_replicas: None,
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
    if let Some(ineligible) = new_isr.iter().find(|b| !image.is_broker_active(**b)) {
        return Err(ApiError::new(
            ErrorCode::IneligibleReplica,
            format!(
                "Broker {ineligible} cannot join the ISR: it is fenced, shutting down or not registered."
            ),
        ));
    }
    Ok(())
}
