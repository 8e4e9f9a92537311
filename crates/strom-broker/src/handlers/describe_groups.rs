//! DescribeGroups (v0-v6): state, protocol and members of each group. An unknown group is
//! GROUP_ID_NOT_FOUND from v6 and a plain `Dead` group before, as Kafka 4.x answers.

use strom_group::{Command, DescribeGroup, DescribedGroup, ErrorCode, Response};
use strom_protocol::messages::describe_groups_response::{
    DescribedGroup as WireGroup, DescribedGroupMember,
};
use strom_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, ResponseKind,
};

use super::{group_call, str_bytes};
use crate::server::BrokerContext;

/// The first version that reports an unknown group as GROUP_ID_NOT_FOUND.
const GROUP_ID_NOT_FOUND_MIN_VERSION: i16 = 6;
/// Without an authorizer every group operation is allowed: READ (3), DELETE (6) and
/// DESCRIBE (8) as Kafka's bit field.
const GROUP_OPERATIONS_ALLOWED: i32 = (1 << 3) | (1 << 6) | (1 << 8);
/// Kafka's "authorized operations not requested".
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub(super) async fn handle(
    context: &BrokerContext,
    request: DescribeGroupsRequest,
    version: i16,
) -> ResponseKind {
    let operations = if request.include_authorized_operations {
        GROUP_OPERATIONS_ALLOWED
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    let mut groups = Vec::with_capacity(request.groups.len());
    for GroupId(group_id) in request.groups {
        let group_id = group_id.to_string();
        let command = Command::DescribeGroup(DescribeGroup {
            group_id: group_id.clone(),
        });
        let described = match group_call(context, &group_id, command).await {
            // A coordinator error (loading, moved away) names no group: answer with the id
            // asked for, which librdkafka asserts on.
            Ok(Response::DescribeGroup(d)) if d.group_id.is_empty() => failed(&group_id, d.error),
            Ok(Response::DescribeGroup(d)) => d,
            Ok(_) => failed(&group_id, ErrorCode::CoordinatorNotAvailable),
            Err(code) => failed(&group_id, code),
        };
        groups.push(wire_group(described, version).with_authorized_operations(operations));
    }
    ResponseKind::DescribeGroups(DescribeGroupsResponse::default().with_groups(groups))
}

fn failed(group_id: &str, error: ErrorCode) -> DescribedGroup {
    DescribedGroup {
        error,
        group_id: group_id.to_owned(),
        state: String::new(),
        protocol_type: String::new(),
        protocol_data: String::new(),
        members: Vec::new(),
    }
}

fn wire_group(group: DescribedGroup, version: i16) -> WireGroup {
    let (error, message) = match group.error {
        ErrorCode::GroupIdNotFound if version < GROUP_ID_NOT_FOUND_MIN_VERSION => {
            (ErrorCode::None, None)
        }
        ErrorCode::GroupIdNotFound => (
            ErrorCode::GroupIdNotFound,
            Some(str_bytes(format!("Group {} not found.", group.group_id))),
        ),
        other => (other, None),
    };
    let members = group
        .members
        .into_iter()
        .map(|m| {
            DescribedGroupMember::default()
                .with_member_id(str_bytes(m.member_id))
                .with_group_instance_id(m.group_instance_id.map(str_bytes))
                .with_client_id(str_bytes(m.client_id))
                .with_client_host(str_bytes(m.client_host))
                .with_member_metadata(m.metadata)
                .with_member_assignment(m.assignment)
        })
        .collect();
    WireGroup::default()
        .with_error_code(error.code())
        .with_error_message(message)
        .with_group_id(GroupId(str_bytes(group.group_id)))
        .with_group_state(str_bytes(group.state))
        .with_protocol_type(str_bytes(group.protocol_type))
        .with_protocol_data(str_bytes(group.protocol_data))
        .with_members(members)
}
