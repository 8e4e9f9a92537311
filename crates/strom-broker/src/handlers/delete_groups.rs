//! DeleteGroups (v0-v2): removes Empty groups with all their offsets (tombstones, so that
//! compaction forgets them). A group with members is NON_EMPTY_GROUP, an unknown one
//! GROUP_ID_NOT_FOUND.

use strom_group::{Command, DeleteGroup, ErrorCode, Response};
use strom_protocol::messages::delete_groups_response::DeletableGroupResult;
use strom_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId, ResponseKind};

use super::group_call;
use crate::server::BrokerContext;

pub(super) async fn handle(
    context: &BrokerContext,
    request: DeleteGroupsRequest,
    _version: i16,
) -> ResponseKind {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for GroupId(name) in request.groups_names {
        let group_id = name.to_string();
        let error = if group_id.is_empty() {
            // Kafka's `GroupCoordinatorService.deleteGroups` refuses an empty id up front.
            ErrorCode::InvalidGroupId
        } else {
            let command = Command::DeleteGroup(DeleteGroup {
                group_id: group_id.clone(),
            });
            match group_call(context, &group_id, command).await {
                Ok(Response::DeleteGroup(code)) => code,
                Ok(_) => ErrorCode::CoordinatorNotAvailable,
                Err(code) => code,
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(GroupId(name))
                .with_error_code(error.code()),
        );
    }
    ResponseKind::DeleteGroups(DeleteGroupsResponse::default().with_results(results))
}
