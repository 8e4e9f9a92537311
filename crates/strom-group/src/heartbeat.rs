//! Heartbeat (session keep-alive and rebalance signal) and LeaveGroup.

use crate::coordinator::{remove_member, validate_member, Coordinator, Output, RequestId};
use crate::error::ErrorCode;
use crate::group::GroupState;
use crate::join::complete_join;
use crate::types::{Heartbeat, LeaveGroup, LeaveGroupResponse, LeavingMember, Response};

impl Coordinator {
    pub(crate) fn heartbeat(&mut self, c: &Heartbeat, now_ms: i64) -> ErrorCode {
        let Some(group) = self.groups.get_mut(&c.group_id) else {
            return ErrorCode::UnknownMemberId;
        };
        if group.state == GroupState::Dead {
            return ErrorCode::CoordinatorNotAvailable;
        }
        if let Err(error) = validate_member(group, &c.member_id, c.group_instance_id.as_deref()) {
            return error;
        }
        if c.generation_id != group.generation_id {
            return ErrorCode::IllegalGeneration;
        }
        if let Some(m) = group.members.get_mut(&c.member_id) {
            m.last_heartbeat_ms = now_ms;
        }
        match group.state {
            GroupState::Empty => ErrorCode::UnknownMemberId,
            GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
            GroupState::CompletingRebalance | GroupState::Stable => ErrorCode::None,
            GroupState::Dead => ErrorCode::CoordinatorNotAvailable,
        }
    }

    pub(crate) fn leave(
        &mut self,
        request_id: RequestId,
        c: LeaveGroup,
        now_ms: i64,
        out: &mut Output,
    ) {
        let config = &self.config;
        let Some(group) = self.groups.get_mut(&c.group_id) else {
            let members = c
                .members
                .into_iter()
                .map(|m| (m, ErrorCode::UnknownMemberId))
                .collect();
            let response = LeaveGroupResponse {
                error: ErrorCode::None,
                members,
            };
            out.reply(request_id, Response::LeaveGroup(response));
            return;
        };
        if group.state == GroupState::Dead {
            let response = LeaveGroupResponse {
                error: ErrorCode::CoordinatorNotAvailable,
                members: Vec::new(),
            };
            out.reply(request_id, Response::LeaveGroup(response));
            return;
        }
        let mut results = Vec::with_capacity(c.members.len());
        for leaving in c.members {
            let error = leave_one(group, &leaving, now_ms, config, out);
            results.push((leaving, error));
        }
        if group.state == GroupState::PreparingRebalance
            && crate::coordinator::can_complete_join(group)
        {
            complete_join(group, now_ms, config, out);
        }
        let response = LeaveGroupResponse {
            error: ErrorCode::None,
            members: results,
        };
        out.reply(request_id, Response::LeaveGroup(response));
    }
}

fn leave_one(
    group: &mut crate::group::Group,
    leaving: &LeavingMember,
    now_ms: i64,
    config: &crate::coordinator::Config,
    out: &mut Output,
) -> ErrorCode {
    let member_id = match &leaving.group_instance_id {
        Some(instance) => match group.static_members.get(instance) {
            None => return ErrorCode::UnknownMemberId,
            Some(current) if !leaving.member_id.is_empty() && *current != leaving.member_id => {
                return ErrorCode::FencedInstanceId
            }
            Some(current) => current.clone(),
        },
        None => {
            if group.pending_members.remove(&leaving.member_id).is_some() {
                return ErrorCode::None;
            }
            if !group.members.contains_key(&leaving.member_id) {
                return ErrorCode::UnknownMemberId;
            }
            leaving.member_id.clone()
        }
    };
    tracing::info!(group = %group.group_id, member = %member_id, "member left");
    remove_member(group, &member_id, now_ms, config, out);
    ErrorCode::None
}
