//! DeleteGroups (v0-v2): removes Empty groups with all their offsets (tombstones, so that
//! compaction forgets them). A group with members is NON_EMPTY_GROUP, an unknown one
//! GROUP_ID_NOT_FOUND. A share group (KIP-932) is asked of the share group coordinator
//! first: an empty one is deleted with its records.

use strom_group::{Command, DeleteGroup, ErrorCode, Response};
use strom_protocol::messages::delete_groups_response::DeletableGroupResult;
use strom_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId, ResponseKind};

use strom_share::group::{ShareCommand, ShareResponse};

use super::{group_call, share_call};
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
            match delete_share_group(context, &group_id).await {
                Some(code) => code,
                None => {
                    let command = Command::DeleteGroup(DeleteGroup {
                        group_id: group_id.clone(),
                    });
                    match group_call(context, &group_id, command).await {
                        Ok(Response::DeleteGroup(code)) => code,
                        Ok(_) => ErrorCode::CoordinatorNotAvailable,
                        Err(code) => code,
                    }
                }
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

/// Deletes `group_id` if it is a share group; `None` when no share group has that id (the
/// consumer-group coordinator then answers). The share partitions of the group hosted here
/// and their durable state in the `__share_group_state` partitions this broker leads are
/// deleted with it (`ShareManager::delete_group_state`); a failure there is logged and the
/// group stays deleted.
async fn delete_share_group(context: &BrokerContext, group_id: &str) -> Option<ErrorCode> {
    let command = ShareCommand::Delete(group_id.to_owned());
    match share_call(context, group_id, command).await {
        Ok(ShareResponse::Delete(Ok(true))) => {
            if let Err(code) = context.shares.delete_group_state(context, group_id).await {
                tracing::warn!(
                    group = group_id,
                    %code,
                    "share group deleted, but not all of its share state in __share_group_state; \
                     delete its offsets with DeleteShareGroupOffsets"
                );
            }
            Some(ErrorCode::None)
        }
        Ok(ShareResponse::Delete(Ok(false))) => None,
        Ok(ShareResponse::Delete(Err(code))) => Some(code),
        Ok(_) => Some(ErrorCode::CoordinatorNotAvailable),
        Err(code) => Some(code),
    }
}
