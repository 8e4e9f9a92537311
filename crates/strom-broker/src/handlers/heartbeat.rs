//! Heartbeat (v0-v4): keeps a member's session alive and tells it about rebalances. While
//! the group's partition is still loading (a new coordinator after a failover) the answer
//! is NONE, as Kafka "blindly" answers it: the member keeps its assignment meanwhile.

use strom_group::{Command, ErrorCode, Heartbeat, Response};
use strom_protocol::messages::{HeartbeatRequest, HeartbeatResponse, ResponseKind};

use super::{group_call, opt_string};
use crate::server::BrokerContext;

pub(super) async fn handle(
    context: &BrokerContext,
    request: HeartbeatRequest,
    _version: i16,
) -> ResponseKind {
    let group_id = request.group_id.0.to_string();
    let command = Command::Heartbeat(Heartbeat {
        group_id: group_id.clone(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: opt_string(request.group_instance_id),
    });
    let code = match group_call(context, &group_id, command).await {
        Ok(Response::Heartbeat(ErrorCode::CoordinatorLoadInProgress)) => ErrorCode::None,
        Ok(Response::Heartbeat(code)) => code,
        Ok(_) => ErrorCode::CoordinatorNotAvailable,
        Err(code) => code,
    };
    ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code.code()))
}
