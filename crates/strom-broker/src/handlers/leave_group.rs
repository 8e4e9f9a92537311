//! LeaveGroup: v0-v2 name one member, v3+ a batch (KIP-345) answered per member.

use strom_group::{Command, ErrorCode, LeaveGroup, LeavingMember, Response};
use strom_protocol::messages::leave_group_response::MemberResponse;
use strom_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse, ResponseKind};

use super::{group_call, opt_string, str_bytes};
use crate::server::BrokerContext;

/// The first version with a batch of members.
const BATCH_MIN_VERSION: i16 = 3;

pub(super) async fn handle(
    context: &BrokerContext,
    request: LeaveGroupRequest,
    version: i16,
) -> ResponseKind {
    let group_id = request.group_id.0.to_string();
    let members = if version >= BATCH_MIN_VERSION {
        request
            .members
            .into_iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: opt_string(m.group_instance_id),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let command = Command::LeaveGroup(LeaveGroup {
        group_id: group_id.clone(),
        members,
    });
    let response = match group_call(context, &group_id, command).await {
        Ok(Response::LeaveGroup(r)) => r,
        Ok(_) => return error(ErrorCode::CoordinatorNotAvailable),
        Err(code) => return error(code),
    };
    // v0-v2 carry one member: its error is the request's.
    let single = response
        .members
        .first()
        .map(|(_, code)| *code)
        .filter(|code| *code != ErrorCode::None);
    let code = if version < BATCH_MIN_VERSION && response.error == ErrorCode::None {
        single.unwrap_or(ErrorCode::None)
    } else {
        response.error
    };
    let mut out = LeaveGroupResponse::default().with_error_code(code.code());
    if version >= BATCH_MIN_VERSION {
        out = out.with_members(
            response
                .members
                .into_iter()
                .map(|(m, code)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(str_bytes))
                        .with_error_code(code.code())
                })
                .collect(),
        );
    }
    ResponseKind::LeaveGroup(out)
}

fn error(code: ErrorCode) -> ResponseKind {
    ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(code.code()))
}
