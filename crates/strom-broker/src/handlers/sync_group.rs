//! SyncGroup (v0-v5): the leader's assignments in, each member's assignment out.

use strom_group::{Command, ErrorCode, Response, SyncGroup};
use strom_protocol::messages::{ResponseKind, SyncGroupRequest, SyncGroupResponse};

use super::{group_call, opt_string, str_bytes};
use crate::server::BrokerContext;

pub(super) async fn handle(
    context: &BrokerContext,
    request: SyncGroupRequest,
    _version: i16,
) -> ResponseKind {
    let group_id = request.group_id.0.to_string();
    let command = Command::SyncGroup(SyncGroup {
        group_id: group_id.clone(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: opt_string(request.group_instance_id),
        protocol_type: opt_string(request.protocol_type),
        protocol_name: opt_string(request.protocol_name),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    });
    let response = match group_call(context, &group_id, command).await {
        Ok(Response::SyncGroup(r)) => r,
        Ok(_) => return error(ErrorCode::CoordinatorNotAvailable),
        Err(code) => return error(code),
    };
    ResponseKind::SyncGroup(
        SyncGroupResponse::default()
            .with_error_code(response.error.code())
            .with_protocol_type(response.protocol_type.map(str_bytes))
            .with_protocol_name(response.protocol_name.map(str_bytes))
            .with_assignment(response.assignment),
    )
}

fn error(code: ErrorCode) -> ResponseKind {
    ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(code.code()))
}
