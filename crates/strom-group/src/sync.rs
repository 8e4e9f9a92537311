//! SyncGroup: the leader's assignments are stored and delivered to every member.

use bytes::Bytes;

use crate::coordinator::{sync_error, validate_member, Coordinator, Output, RequestId};
use crate::error::ErrorCode;
use crate::group::{Group, GroupState};
use crate::types::{Response, SyncGroup, SyncGroupResponse};

impl Coordinator {
    pub(crate) fn sync(
        &mut self,
        request_id: RequestId,
        c: SyncGroup,
        now_ms: i64,
        out: &mut Output,
    ) {
        let Some(group) = self.groups.get_mut(&c.group_id) else {
            out.reply(request_id, sync_error(ErrorCode::UnknownMemberId));
            return;
        };
        if let Err(error) = check_sync(group, &c) {
            out.reply(request_id, sync_error(error));
            return;
        }
        match group.state {
            GroupState::Empty => out.reply(request_id, sync_error(ErrorCode::UnknownMemberId)),
            GroupState::Dead => {
                out.reply(request_id, sync_error(ErrorCode::CoordinatorNotAvailable))
            }
            GroupState::PreparingRebalance => {
                out.reply(request_id, sync_error(ErrorCode::RebalanceInProgress))
            }
            GroupState::Stable => {
                let assignment = touch(group, &c.member_id, now_ms);
                out.reply(request_id, sync_ok(group, assignment));
            }
            GroupState::CompletingRebalance => {
                park_sync(group, request_id, &c, now_ms, out);
            }
        }
    }
}

fn check_sync(group: &Group, c: &SyncGroup) -> Result<(), ErrorCode> {
    if group.state == GroupState::Dead {
        return Err(ErrorCode::CoordinatorNotAvailable);
    }
    validate_member(group, &c.member_id, c.group_instance_id.as_deref())?;
    if c.generation_id != group.generation_id {
        return Err(ErrorCode::IllegalGeneration);
    }
    let type_mismatch = c
        .protocol_type
        .as_ref()
        .is_some_and(|t| Some(t) != group.protocol_type.as_ref());
    let name_mismatch = c
        .protocol_name
        .as_ref()
        .is_some_and(|n| Some(n) != group.protocol_name.as_ref());
    if type_mismatch || name_mismatch {
        return Err(ErrorCode::InconsistentGroupProtocol);
    }
    Ok(())
}

/// Refreshes the member's session and returns its current assignment.
fn touch(group: &mut Group, member_id: &str, now_ms: i64) -> Bytes {
    match group.members.get_mut(member_id) {
        Some(m) => {
            m.last_heartbeat_ms = now_ms;
            m.sync_pending = false;
            m.assignment.clone()
        }
        None => Bytes::new(),
    }
}

fn sync_ok(group: &Group, assignment: Bytes) -> Response {
    Response::SyncGroup(SyncGroupResponse {
        error: ErrorCode::None,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        assignment,
    })
}

/// Followers wait for the leader; the leader's sync stores every assignment (members it
/// left out get an empty one), persists the group and releases everyone waiting.
fn park_sync(
    group: &mut Group,
    request_id: RequestId,
    c: &SyncGroup,
    now_ms: i64,
    out: &mut Output,
) {
    touch(group, &c.member_id, now_ms);
    if let Some(m) = group.members.get_mut(&c.member_id) {
        if let Some(previous) = m.awaiting_sync.replace(request_id) {
            out.reply(previous, sync_error(ErrorCode::RebalanceInProgress));
        }
    }
    if group.leader_id.as_deref() != Some(c.member_id.as_str()) {
        return;
    }
    for m in group.members.values_mut() {
        m.assignment = c
            .assignments
            .iter()
            .find(|(id, _)| *id == m.member_id)
            .map(|(_, a)| a.clone())
            .unwrap_or_default();
    }
    group.transition(GroupState::Stable, now_ms);
    out.record(group.metadata_record());
    let waiting: Vec<(RequestId, Bytes)> = group
        .members
        .values_mut()
        .filter_map(|m| m.awaiting_sync.take().map(|r| (r, m.assignment.clone())))
        .collect();
    for (request_id, assignment) in waiting {
        out.reply(request_id, sync_ok(group, assignment));
    }
}
