//! DeleteGroups (v0-v2): removes Empty groups with all their offsets (tombstones, so that
//! compaction forgets them). A group with members is NON_EMPTY_GROUP, an unknown one
//! GROUP_ID_NOT_FOUND. A share group (KIP-932) is asked of the share group coordinator
//! first, in Kafka's order: its recorded share partitions move to deleting, their durable
//! state is deleted, and only then is the group deleted with its records; a failed state
//! delete answers its error and leaves the group (deleting), retried by the next
//! DeleteGroups.

use strom_group::{Command, DeleteGroup, ErrorCode, Response};
use strom_protocol::messages::delete_groups_response::DeletableGroupResult;
use strom_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId, ResponseKind};

use strom_share::group::{ShareCommand, ShareResponse, StateToDelete};

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
            ErrorCode::InvalidGroupId.code()
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
                    .code()
                }
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(GroupId(name))
                .with_error_code(error),
        );
    }
    ResponseKind::DeleteGroups(DeleteGroupsResponse::default().with_results(results))
}

/// Deletes `group_id` if it is a share group; `None` when no share group has that id (the
/// consumer-group coordinator then answers). The state of its share partitions is deleted
/// first (those its coordinator recorded; every partition for a group without a record,
/// written by a Strom before record type 15), wherever it lives.
async fn delete_share_group(context: &BrokerContext, group_id: &str) -> Option<i16> {
    let command = ShareCommand::PrepareDelete(group_id.to_owned());
    let state = match share_call(context, group_id, command).await {
        Ok(ShareResponse::PrepareDelete(Ok(Some(state)))) => state,
        Ok(ShareResponse::PrepareDelete(Ok(None))) => return None,
        Ok(ShareResponse::PrepareDelete(Err(code))) => return Some(code.code()),
        Ok(_) => return Some(ErrorCode::CoordinatorNotAvailable.code()),
        Err(code) => return Some(code.code()),
    };
    let deleted = match &state {
        StateToDelete::Partitions(partitions) => {
            crate::share_group_jobs::delete(context, group_id, partitions).await
        }
        StateToDelete::Unrecorded => context.shares.delete_group_state(context, group_id).await,
    };
    if let Err(code) = deleted {
        tracing::warn!(
            group = group_id,
            %code,
            "share group not deleted: its share state could not be deleted; try again"
        );
        return Some(code.code());
    }
    let code = match share_call(context, group_id, ShareCommand::Delete(group_id.to_owned())).await
    {
        Ok(ShareResponse::Delete(Ok(_))) => ErrorCode::None,
        Ok(ShareResponse::Delete(Err(code))) => code,
        Ok(_) => ErrorCode::CoordinatorNotAvailable,
        Err(code) => code,
    };
    Some(code.code())
}
