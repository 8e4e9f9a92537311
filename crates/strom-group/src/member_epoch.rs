//! The member-epoch checks and errors shared by the member-epoch group types (KIP-848
//! consumer groups and KIP-1071 streams groups): the offset fetch rule and Kafka's error
//! texts, written once.

use crate::consumer::{ConsumerError, ConsumerErrorCode as Code};

/// OffsetFetch v9+ by a member (Kafka's `ConsumerGroup`/`StreamsGroup.validateOffsetFetch`):
/// without a member id only a negative epoch (an admin read) passes; a member must exist at
/// its current epoch. `current_epoch` looks a member's epoch up by id.
pub(crate) fn validate_offset_fetch(
    group_id: &str,
    member_id: Option<&str>,
    member_epoch: i32,
    current_epoch: impl FnOnce(&str) -> Option<i32>,
) -> Result<(), ConsumerError> {
    let Some(member_id) = member_id else {
        return if member_epoch < 0 {
            Ok(())
        } else {
            Err(unknown_member("", group_id))
        };
    };
    let known = current_epoch(member_id).ok_or_else(|| unknown_member(member_id, group_id))?;
    check_stale(member_epoch, known)
}

/// STALE_MEMBER_EPOCH unless `received` is the member's current epoch.
pub(crate) fn check_stale(received: i32, expected: i32) -> Result<(), ConsumerError> {
    if received == expected {
        return Ok(());
    }
    Err(ConsumerError::new(
        Code::StaleMemberEpoch,
        format!("The received member epoch {received} does not match the expected member epoch {expected}."),
    ))
}

pub(crate) fn unknown_member(member_id: &str, group_id: &str) -> ConsumerError {
    ConsumerError::new(
        Code::UnknownMemberId,
        format!("Member {member_id} is not a member of group {group_id}."),
    )
}

pub(crate) fn unknown_instance(instance: &str) -> ConsumerError {
    ConsumerError::new(
        Code::UnknownMemberId,
        format!("Instance id {instance} is unknown."),
    )
}

pub(crate) fn fenced_instance(member_id: &str, instance: &str, owner: &str) -> ConsumerError {
    ConsumerError::new(
        Code::FencedInstanceId,
        format!(
            "Static member {member_id} with instance id {instance} was fenced by member {owner}."
        ),
    )
}
