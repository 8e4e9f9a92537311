//! Error shapes for consumer-group APIs: offsets, coordinator lookup, membership.

#[allow(clippy::wildcard_imports)]
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::UNKNOWN;

pub(super) fn offset_commit(request: &OffsetCommitRequest, code: i16) -> OffsetCommitResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    offset_commit_response::OffsetCommitResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(code)
                })
                .collect();
            let mut response = offset_commit_response::OffsetCommitResponseTopic::default();
            response.name = topic.name.clone();
            response.topic_id = topic.topic_id;
            response.partitions = partitions;
            response
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// Version 1 reports errors per partition only; 2 to 7 at the top level; 8 on per group.
const OFFSET_FETCH_TOP_LEVEL_ERROR_VERSION: i16 = 2;
const OFFSET_FETCH_GROUPS_VERSION: i16 = 8;

pub(super) fn offset_fetch(
    request: &OffsetFetchRequest,
    api_version: i16,
    code: i16,
) -> OffsetFetchResponse {
    if api_version >= OFFSET_FETCH_GROUPS_VERSION {
        let groups = request
            .groups
            .iter()
            .map(|group| {
                offset_fetch_response::OffsetFetchResponseGroup::default()
                    .with_group_id(group.group_id.clone())
                    .with_error_code(code)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    if api_version >= OFFSET_FETCH_TOP_LEVEL_ERROR_VERSION {
        return OffsetFetchResponse::default().with_error_code(code);
    }
    let topics = request
        .topics
        .iter()
        .flatten()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|index| {
                    let mut response =
                        offset_fetch_response::OffsetFetchResponsePartition::default();
                    response.partition_index = *index;
                    response.committed_offset = UNKNOWN;
                    response.metadata = Some(StrBytes::new());
                    response.error_code = code;
                    response
                })
                .collect();
            offset_fetch_response::OffsetFetchResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// From version 4 FindCoordinator answers per key.
const FIND_COORDINATOR_BATCH_VERSION: i16 = 4;

pub(super) fn find_coordinator(
    request: &FindCoordinatorRequest,
    api_version: i16,
    code: i16,
) -> FindCoordinatorResponse {
    if api_version >= FIND_COORDINATOR_BATCH_VERSION {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                find_coordinator_response::Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id((-1).into())
                    .with_port(-1)
                    .with_error_code(code)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_node_id((-1).into())
        .with_port(-1)
}

/// From version 7 JoinGroup's protocol name is nullable, and null on an error.
const JOIN_GROUP_NULLABLE_PROTOCOL_VERSION: i16 = 7;

pub(super) fn join_group(api_version: i16, code: i16) -> JoinGroupResponse {
    let protocol_name = if api_version >= JOIN_GROUP_NULLABLE_PROTOCOL_VERSION {
        None
    } else {
        Some(StrBytes::new())
    };
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_protocol_name(protocol_name)
}

pub(super) fn describe_groups(
    request: &DescribeGroupsRequest,
    code: i16,
) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .iter()
        .map(|group_id| {
            describe_groups_response::DescribedGroup::default()
                .with_group_id(group_id.clone())
                .with_error_code(code)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(super) fn delete_groups(request: &DeleteGroupsRequest, code: i16) -> DeleteGroupsResponse {
    let results = request
        .groups_names
        .iter()
        .map(|group_id| {
            delete_groups_response::DeletableGroupResult::default()
                .with_group_id(group_id.clone())
                .with_error_code(code)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

pub(super) fn consumer_group_heartbeat(code: i16) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(code)
        .with_member_id(None)
        .with_assignment(None)
}

/// Every group asked for, with the error (as ConsumerGroupDescribe's whole-request errors).
pub(super) fn share_group_describe(
    request: &kafka_protocol::messages::ShareGroupDescribeRequest,
    code: i16,
) -> kafka_protocol::messages::ShareGroupDescribeResponse {
    use kafka_protocol::messages::share_group_describe_response::DescribedGroup;
    kafka_protocol::messages::ShareGroupDescribeResponse::default().with_groups(
        request
            .group_ids
            .iter()
            .map(|id| {
                DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(code)
            })
            .collect(),
    )
}
