//! ListGroups (v0-v5): every group of the `__consumer_offsets` partitions this broker
//! leads, classic, consumer (KIP-848) and share (KIP-932), filtered by state (v4+) and type
//! (v5+).

use strom_group::{Command, ErrorCode, ListGroups, ListedGroup, Response};
use strom_protocol::messages::list_groups_response;
use strom_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse, ResponseKind};

use strom_share::group::{ShareCommand, ShareResponse, SHARE_GROUP_TYPE};

use super::str_bytes;
use crate::groups::OFFSETS_TOPIC;
use crate::server::BrokerContext;

pub(super) async fn handle(
    context: &BrokerContext,
    request: ListGroupsRequest,
    _version: i16,
) -> ResponseKind {
    let filter = ListGroups {
        states: request
            .states_filter
            .iter()
            .map(|s| s.to_string())
            .collect(),
        types: request.types_filter.iter().map(|t| t.to_string()).collect(),
    };
    let (error, groups) = list(context, &filter).await;
    let groups = groups
        .into_iter()
        .map(|g| {
            list_groups_response::ListedGroup::default()
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_protocol_type(str_bytes(g.protocol_type))
                .with_group_state(str_bytes(g.state))
                .with_group_type(str_bytes(g.group_type))
        })
        .collect();
    ResponseKind::ListGroups(
        ListGroupsResponse::default()
            .with_error_code(error.code())
            .with_groups(groups),
    )
}

/// Asks every partition's coordinator in turn. Partitions led elsewhere are skipped; a
/// partition still loading makes the answer COORDINATOR_LOAD_IN_PROGRESS with the groups
/// of the others, as Kafka's `GroupCoordinatorService.listGroups`.
async fn list(context: &BrokerContext, filter: &ListGroups) -> (ErrorCode, Vec<ListedGroup>) {
    let partitions = context
        .metadata
        .image()
        .topic_by_name(OFFSETS_TOPIC)
        .map(|t| t.partitions.keys().copied().collect::<Vec<i32>>())
        .unwrap_or_default();
    let mut error = ErrorCode::None;
    let mut groups = Vec::new();
    let shares = filter.types.is_empty()
        || filter
            .types
            .iter()
            .any(|t| t.eq_ignore_ascii_case(SHARE_GROUP_TYPE));
    for partition in partitions {
        if shares {
            // Errors are the classic call's to report (the same partition answers both).
            if let Some(ShareResponse::List(listed)) = context
                .groups
                .call_share(partition, ShareCommand::List)
                .await
            {
                groups.extend(
                    listed
                        .into_iter()
                        .filter(|g| state_matches(filter, &g.state))
                        .map(|g| ListedGroup {
                            group_id: g.group_id,
                            protocol_type: SHARE_GROUP_TYPE.to_owned(),
                            state: g.state,
                            group_type: SHARE_GROUP_TYPE.to_owned(),
                        }),
                );
            }
        }
        let command = Command::ListGroups(filter.clone());
        match context.groups.call(partition, command).await {
            Some(Response::ListGroups(r)) if r.error == ErrorCode::None => {
                groups.extend(r.groups);
            }
            Some(Response::ListGroups(r)) if r.error == ErrorCode::CoordinatorLoadInProgress => {
                error = r.error;
            }
            Some(_) => {}
            None => error = ErrorCode::CoordinatorNotAvailable,
        }
    }
    (error, groups)
}

fn state_matches(filter: &ListGroups, state: &str) -> bool {
    filter.states.is_empty() || filter.states.iter().any(|s| s.eq_ignore_ascii_case(state))
}
