//! JoinGroup: member admission (KIP-394 member ids, static members), protocol checks, and
//! completion of the join phase into a new generation.

use bytes::Bytes;

use crate::coordinator::{
    can_complete_join, join_error, prepare_rebalance, remove_member, validate_member, Config,
    Coordinator, Output, RequestId,
};
use crate::error::ErrorCode;
use crate::group::{Group, GroupState, Member};
use crate::records::STRING_BYTES_MAX;
use crate::types::{JoinGroup, JoinGroupMember, JoinGroupResponse, Response};

impl Coordinator {
    pub(crate) fn join(
        &mut self,
        request_id: RequestId,
        c: JoinGroup,
        now_ms: i64,
        out: &mut Output,
    ) {
        if let Err(error) = self.validate_join(&c) {
            out.reply(request_id, join_error(&c.member_id, error));
            return;
        }
        if self.streams.group(&c.group_id).is_some() {
            // A streams group's id takes no classic members (Kafka: not a classic group).
            out.reply(
                request_id,
                join_error(&c.member_id, ErrorCode::InconsistentGroupProtocol),
            );
            return;
        }
        if let Err(error) =
            crate::consumer::before_classic_join(&mut self.consumer, &c.group_id, out)
        {
            out.reply(request_id, join_error(&c.member_id, error));
            return;
        }
        let mut group = match self.groups.remove(&c.group_id) {
            Some(g) => g,
            None if c.member_id.is_empty() => Group::new(&c.group_id, now_ms),
            None => {
                out.reply(
                    request_id,
                    join_error(&c.member_id, ErrorCode::UnknownMemberId),
                );
                return;
            }
        };
        if group.state == GroupState::Dead {
            out.reply(
                request_id,
                join_error(&c.member_id, ErrorCode::CoordinatorNotAvailable),
            );
        } else if c.member_id.is_empty() {
            self.join_new_member(&mut group, request_id, c, now_ms, out);
        } else {
            self.join_known_member(&mut group, request_id, c, now_ms, out);
        }
        if group.state == GroupState::PreparingRebalance && can_complete_join(&group) {
            complete_join(&mut group, now_ms, &self.config, out);
        }
        let unused = group.generation_id == 0
            && group.members.is_empty()
            && group.pending_members.is_empty()
            && group.offsets.is_empty();
        if !unused {
            self.groups.insert(group.group_id.clone(), group);
        }
    }

    fn validate_join(&self, c: &JoinGroup) -> Result<(), ErrorCode> {
        if c.group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        if c.session_timeout_ms < self.config.min_session_timeout_ms
            || c.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Err(ErrorCode::InvalidSessionTimeout);
        }
        let strings = [
            c.group_id.as_str(),
            c.member_id.as_str(),
            c.client_id.as_str(),
            c.client_host.as_str(),
            c.protocol_type.as_str(),
            c.group_instance_id.as_deref().unwrap_or_default(),
        ];
        let too_long = strings
            .into_iter()
            .chain(c.protocols.iter().map(|p| p.name.as_str()))
            // Generated member ids append a suffix to the client id, hence the margin.
            .any(|s| s.len() > STRING_BYTES_MAX - 64);
        if too_long {
            return Err(ErrorCode::InvalidRequest);
        }
        Ok(())
    }

    fn join_new_member(
        &mut self,
        group: &mut Group,
        request_id: RequestId,
        c: JoinGroup,
        now_ms: i64,
        out: &mut Output,
    ) {
        if group.members.len() >= self.config.group_max_size {
            out.reply(request_id, join_error("", ErrorCode::GroupMaxSizeReached));
            return;
        }
        if !group.supports(&c.protocol_type, &c.protocols) {
            out.reply(
                request_id,
                join_error("", ErrorCode::InconsistentGroupProtocol),
            );
            return;
        }
        let member_id = self.new_member_id(&c.client_id, group);
        match &c.group_instance_id {
            Some(instance) if group.static_members.contains_key(instance) => {
                replace_static_member(group, request_id, c, member_id, now_ms, &self.config, out)
            }
            None if c.require_known_member_id => {
                // Pending ids are bounded like members: each costs memory until it expires.
                if group.pending_members.len() >= self.config.group_max_size {
                    out.reply(request_id, join_error("", ErrorCode::GroupMaxSizeReached));
                    return;
                }
                let expires_ms = now_ms + i64::from(c.session_timeout_ms);
                group.pending_members.insert(member_id.clone(), expires_ms);
                out.reply(
                    request_id,
                    join_error(&member_id, ErrorCode::MemberIdRequired),
                );
            }
            _ => add_member(group, request_id, c, member_id, now_ms, &self.config, out),
        }
    }

    fn join_known_member(
        &mut self,
        group: &mut Group,
        request_id: RequestId,
        c: JoinGroup,
        now_ms: i64,
        out: &mut Output,
    ) {
        let member_id = c.member_id.clone();
        if group.pending_members.contains_key(&member_id) {
            if group.members.len() >= self.config.group_max_size {
                group.pending_members.remove(&member_id);
                out.reply(
                    request_id,
                    join_error(&member_id, ErrorCode::GroupMaxSizeReached),
                );
            } else if !group.supports(&c.protocol_type, &c.protocols) {
                out.reply(
                    request_id,
                    join_error(&member_id, ErrorCode::InconsistentGroupProtocol),
                );
            } else {
                group.pending_members.remove(&member_id);
                add_member(group, request_id, c, member_id, now_ms, &self.config, out);
            }
            return;
        }
        // Kafka's order (`classicGroupJoinExistingMember`): protocols, then membership.
        if !group.supports(&c.protocol_type, &c.protocols) {
            out.reply(
                request_id,
                join_error(&member_id, ErrorCode::InconsistentGroupProtocol),
            );
            return;
        }
        if let Err(error) = validate_member(group, &member_id, c.group_instance_id.as_deref()) {
            out.reply(request_id, join_error(&member_id, error));
            return;
        }
        let Some(member) = group.members.get(&member_id) else {
            out.reply(
                request_id,
                join_error(&member_id, ErrorCode::UnknownMemberId),
            );
            return;
        };
        let unchanged = member.protocols == c.protocols;
        let is_leader = group.leader_id.as_deref() == Some(member_id.as_str());
        match group.state {
            GroupState::PreparingRebalance => {
                update_member(group, request_id, &c, now_ms, out);
            }
            GroupState::CompletingRebalance if unchanged => {
                // The member probably lost the JoinGroup response: resend it.
                let response = join_response(group, &member_id, is_leader);
                out.reply(request_id, response);
            }
            GroupState::Stable if unchanged && !is_leader => {
                let response = join_response(group, &member_id, false);
                out.reply(request_id, response);
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                update_member(group, request_id, &c, now_ms, out);
                prepare_rebalance(group, now_ms, &self.config, out);
            }
            GroupState::Empty | GroupState::Dead => {
                out.reply(
                    request_id,
                    join_error(&member_id, ErrorCode::UnknownMemberId),
                );
            }
        }
    }
}

fn new_member(c: JoinGroup, member_id: String, request_id: RequestId, now_ms: i64) -> Member {
    Member {
        member_id,
        group_instance_id: c.group_instance_id,
        client_id: c.client_id,
        client_host: c.client_host,
        session_timeout_ms: c.session_timeout_ms,
        rebalance_timeout_ms: c.rebalance_timeout_ms,
        protocols: c.protocols,
        assignment: Bytes::new(),
        last_heartbeat_ms: now_ms,
        awaiting_join: Some(request_id),
        awaiting_sync: None,
        sync_pending: false,
    }
}

fn add_member(
    group: &mut Group,
    request_id: RequestId,
    c: JoinGroup,
    member_id: String,
    now_ms: i64,
    config: &Config,
    out: &mut Output,
) {
    if group.members.is_empty() {
        group.protocol_type = Some(c.protocol_type.clone());
    }
    if group.leader_id.is_none() {
        group.leader_id = Some(member_id.clone());
    }
    if let Some(instance) = &c.group_instance_id {
        group
            .static_members
            .insert(instance.clone(), member_id.clone());
    }
    let member = new_member(c, member_id.clone(), request_id, now_ms);
    group.members.insert(member_id, member);
    if let Some(timer) = group.join_timer.as_mut() {
        timer.new_member_joined = true;
    }
    prepare_rebalance(group, now_ms, config, out);
}

/// A member rejoining in the same generation: new protocols and timeouts, parked for the join.
fn update_member(
    group: &mut Group,
    request_id: RequestId,
    c: &JoinGroup,
    now_ms: i64,
    out: &mut Output,
) {
    let Some(member) = group.members.get_mut(&c.member_id) else {
        return;
    };
    if let Some(previous) = member.awaiting_join.replace(request_id) {
        // A duplicate JoinGroup: the newer request takes the slot, the older one is retried.
        out.reply(
            previous,
            join_error(&c.member_id, ErrorCode::RebalanceInProgress),
        );
    }
    member.protocols = c.protocols.clone();
    member.session_timeout_ms = c.session_timeout_ms;
    member.rebalance_timeout_ms = c.rebalance_timeout_ms;
    member.last_heartbeat_ms = now_ms;
}

/// A static member restarted with a new member id: the old id is fenced. If the group is
/// stable and nothing changed, no rebalance happens and the member keeps its assignment.
fn replace_static_member(
    group: &mut Group,
    request_id: RequestId,
    c: JoinGroup,
    new_id: String,
    now_ms: i64,
    config: &Config,
    out: &mut Output,
) {
    let Some(instance) = c.group_instance_id.clone() else {
        return;
    };
    let Some(old_id) = group.static_members.get(&instance).cloned() else {
        return;
    };
    let Some(mut member) = group.members.remove(&old_id) else {
        group.static_members.remove(&instance);
        add_member(group, request_id, c, new_id, now_ms, config, out);
        return;
    };
    tracing::info!(group = %group.group_id, old = %old_id, new = %new_id, "static member replaced");
    if let Some(previous) = member.awaiting_join.take() {
        out.reply(previous, join_error(&old_id, ErrorCode::FencedInstanceId));
    }
    if let Some(previous) = member.awaiting_sync.take() {
        out.reply(
            previous,
            crate::coordinator::sync_error(ErrorCode::FencedInstanceId),
        );
    }
    // Kafka answers an old client (before KIP-814) with the leader id from before the
    // replacement, so that a restarted static leader does not think it must reassign.
    let previous_leader = group.leader_id.clone().unwrap_or_default();
    if group.leader_id.as_deref() == Some(old_id.as_str()) {
        group.leader_id = Some(new_id.clone());
    }
    group.static_members.insert(instance, new_id.clone());
    let supports_skip_assignment = c.supports_skip_assignment;
    member.member_id = new_id.clone();
    member.client_id = c.client_id.clone();
    member.client_host = c.client_host.clone();
    member.session_timeout_ms = c.session_timeout_ms;
    member.rebalance_timeout_ms = c.rebalance_timeout_ms;
    member.protocols = c.protocols;
    member.last_heartbeat_ms = now_ms;
    group.members.insert(new_id.clone(), member);
    // Kafka: no rebalance while Stable unless the protocol the group would select changes
    // (a changed subscription alone does not rebalance; the leader notices it).
    if group.state == GroupState::Stable && group.select_protocol() == group.protocol_name {
        out.record(group.metadata_record());
        out.reply(
            request_id,
            static_rejoin_response(group, &new_id, previous_leader, supports_skip_assignment),
        );
        return;
    }
    if let Some(member) = group.members.get_mut(&new_id) {
        member.awaiting_join = Some(request_id);
    }
    prepare_rebalance(group, now_ms, config, out);
}

/// The answer to a static member that replaced itself in a Stable group (KIP-345/KIP-814):
/// from v9 a leader gets the members with `skip_assignment`; before, nobody gets members
/// and the leader field names the leader from before the replacement.
fn static_rejoin_response(
    group: &Group,
    member_id: &str,
    previous_leader: String,
    supports_skip_assignment: bool,
) -> Response {
    let is_leader = group.leader_id.as_deref() == Some(member_id);
    if supports_skip_assignment {
        let mut response = join_response(group, member_id, is_leader);
        if let Response::JoinGroup(r) = &mut response {
            r.skip_assignment = is_leader;
        }
        return response;
    }
    let mut response = join_response(group, member_id, false);
    if let Response::JoinGroup(r) = &mut response {
        r.leader = previous_leader;
    }
    response
}

fn join_response(group: &Group, member_id: &str, with_members: bool) -> Response {
    let protocol = group.protocol_name.clone().unwrap_or_default();
    let members = if with_members {
        group
            .members
            .values()
            .map(|m| JoinGroupMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect()
    } else {
        Vec::new()
    };
    Response::JoinGroup(JoinGroupResponse {
        error: ErrorCode::None,
        generation_id: group.generation_id,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        leader: group.leader_id.clone().unwrap_or_default(),
        member_id: member_id.to_owned(),
        members,
        skip_assignment: false,
    })
}

/// The join deadline passed: extend the initial delay if members are still arriving,
/// otherwise complete the join phase.
pub(crate) fn on_join_deadline(group: &mut Group, now_ms: i64, config: &Config, out: &mut Output) {
    if let Some(timer) = group.join_timer.as_mut() {
        if timer.initial
            && timer.deadline_ms <= now_ms
            && timer.new_member_joined
            && timer.remaining_ms > 0
        {
            let delay_ms = config.initial_rebalance_delay_ms.min(timer.remaining_ms);
            timer.deadline_ms = now_ms + delay_ms;
            timer.remaining_ms = (timer.remaining_ms - delay_ms).max(0);
            timer.new_member_joined = false;
            return;
        }
    }
    complete_join(group, now_ms, config, out);
}

/// Kafka's `onCompleteJoin`: drop dynamic members that did not rejoin, start the next
/// generation and answer every parked JoinGroup; the leader gets the member list.
pub(crate) fn complete_join(group: &mut Group, now_ms: i64, config: &Config, out: &mut Output) {
    let not_rejoined: Vec<String> = group
        .members
        .values()
        .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
        .map(|m| m.member_id.clone())
        .collect();
    for member_id in not_rejoined {
        remove_member(group, &member_id, now_ms, config, out);
    }
    group.join_timer = None;
    group.generation_id = group.generation_id.wrapping_add(1);
    if group.members.is_empty() {
        group.protocol_name = None;
        group.leader_id = None;
        group.transition(GroupState::Empty, now_ms);
        out.record(group.metadata_record());
        return;
    }
    group.protocol_name = group.select_protocol();
    let leader_joined = group
        .leader_id
        .as_ref()
        .and_then(|id| group.members.get(id))
        .map(|m| m.awaiting_join.is_some())
        == Some(true);
    if !leader_joined {
        group.leader_id = group
            .members
            .values()
            .find(|m| m.awaiting_join.is_some())
            .or_else(|| group.members.values().next())
            .map(|m| m.member_id.clone());
    }
    group.transition(GroupState::CompletingRebalance, now_ms);
    tracing::info!(group = %group.group_id, generation = group.generation_id, "join complete");
    let waiting: Vec<(String, RequestId)> = group
        .members
        .values()
        .filter_map(|m| m.awaiting_join.map(|r| (m.member_id.clone(), r)))
        .collect();
    for (member_id, request_id) in waiting {
        let is_leader = group.leader_id.as_deref() == Some(member_id.as_str());
        out.reply(request_id, join_response(group, &member_id, is_leader));
        if let Some(m) = group.members.get_mut(&member_id) {
            m.awaiting_join = None;
            m.last_heartbeat_ms = now_ms;
        }
    }
    for m in group.members.values_mut() {
        m.sync_pending = true;
    }
    group.sync_deadline_ms = Some(now_ms + group.max_rebalance_timeout_ms());
}
