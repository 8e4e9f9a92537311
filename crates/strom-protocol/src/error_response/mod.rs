//! The error answer to a whole request: the response a Kafka broker sends when it refuses a
//! request it did decode (unauthorized, not served by this handler, failed unexpectedly).
//!
//! Each shape follows the request's `getErrorResponse` in Kafka's clients module: the error
//! goes to every topic, partition, group or resource the request named, with Kafka's
//! "unknown" sentinels (-1 offsets and ids) in the other fields, and to the top-level error
//! code where the response has one.

mod admin;
mod data;
mod groups;
mod txn;

use kafka_protocol::messages::{RequestKind, ResponseKind};

use crate::kafka_error::ErrorCode;
use crate::versions::ApiVersionTable;

/// Kafka's sentinel for an unknown offset, timestamp or id.
const UNKNOWN: i64 = -1;

/// The error response to `request` (decoded at `api_version`) with `error` everywhere it
/// fits, or `None` for an API this module has no shape for (the broker then closes the
/// connection, which every Kafka client survives).
pub fn error_response(
    request: &RequestKind,
    api_version: i16,
    error: ErrorCode,
    table: &ApiVersionTable,
) -> Option<ResponseKind> {
    data_error(request, api_version, error.code())
        .or_else(|| groups_error(request, api_version, error.code()))
        .or_else(|| admin_error(request, api_version, error, table))
        .or_else(|| txn_error(request, api_version, error.code()))
}

fn data_error(request: &RequestKind, api_version: i16, code: i16) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::Produce(request) => ResponseKind::Produce(data::produce(request, code)),
        RequestKind::Fetch(request) => ResponseKind::Fetch(data::fetch(request, api_version, code)),
        RequestKind::ListOffsets(request) => {
            ResponseKind::ListOffsets(data::list_offsets(request, code))
        }
        RequestKind::Metadata(request) => {
            ResponseKind::Metadata(data::metadata(request, api_version, code))
        }
        RequestKind::DeleteRecords(request) => {
            ResponseKind::DeleteRecords(data::delete_records(request, code))
        }
        RequestKind::OffsetForLeaderEpoch(request) => {
            ResponseKind::OffsetForLeaderEpoch(data::offset_for_leader_epoch(request, code))
        }
        RequestKind::DescribeTopicPartitions(request) => {
            ResponseKind::DescribeTopicPartitions(data::describe_topic_partitions(request, code))
        }
        _ => return None,
    })
}

fn groups_error(request: &RequestKind, api_version: i16, code: i16) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::OffsetCommit(request) => {
            ResponseKind::OffsetCommit(groups::offset_commit(request, code))
        }
        RequestKind::OffsetFetch(request) => {
            ResponseKind::OffsetFetch(groups::offset_fetch(request, api_version, code))
        }
        RequestKind::FindCoordinator(request) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(request, api_version, code))
        }
        RequestKind::JoinGroup(_) => ResponseKind::JoinGroup(groups::join_group(api_version, code)),
        RequestKind::Heartbeat(_) => ResponseKind::Heartbeat(
            kafka_protocol::messages::HeartbeatResponse::default().with_error_code(code),
        ),
        RequestKind::LeaveGroup(_) => ResponseKind::LeaveGroup(
            kafka_protocol::messages::LeaveGroupResponse::default().with_error_code(code),
        ),
        RequestKind::SyncGroup(_) => ResponseKind::SyncGroup(
            kafka_protocol::messages::SyncGroupResponse::default().with_error_code(code),
        ),
        RequestKind::ListGroups(_) => ResponseKind::ListGroups(
            kafka_protocol::messages::ListGroupsResponse::default().with_error_code(code),
        ),
        RequestKind::DescribeGroups(request) => {
            ResponseKind::DescribeGroups(groups::describe_groups(request, code))
        }
        RequestKind::DeleteGroups(request) => {
            ResponseKind::DeleteGroups(groups::delete_groups(request, code))
        }
        RequestKind::ShareGroupHeartbeat(_) => ResponseKind::ShareGroupHeartbeat(
            kafka_protocol::messages::ShareGroupHeartbeatResponse::default().with_error_code(code),
        ),
        RequestKind::ShareGroupDescribe(request) => {
            ResponseKind::ShareGroupDescribe(groups::share_group_describe(request, code))
        }
        RequestKind::OffsetDelete(_) => ResponseKind::OffsetDelete(
            kafka_protocol::messages::OffsetDeleteResponse::default().with_error_code(code),
        ),
        RequestKind::ConsumerGroupHeartbeat(_) => {
            ResponseKind::ConsumerGroupHeartbeat(groups::consumer_group_heartbeat(code))
        }
        RequestKind::ShareFetch(_) => ResponseKind::ShareFetch(
            kafka_protocol::messages::ShareFetchResponse::default().with_error_code(code),
        ),
        RequestKind::ShareAcknowledge(_) => ResponseKind::ShareAcknowledge(
            kafka_protocol::messages::ShareAcknowledgeResponse::default().with_error_code(code),
        ),
        RequestKind::AlterShareGroupOffsets(_) => ResponseKind::AlterShareGroupOffsets(
            kafka_protocol::messages::AlterShareGroupOffsetsResponse::default()
                .with_error_code(code),
        ),
        RequestKind::DeleteShareGroupOffsets(_) => ResponseKind::DeleteShareGroupOffsets(
            kafka_protocol::messages::DeleteShareGroupOffsetsResponse::default()
                .with_error_code(code),
        ),
        RequestKind::DescribeShareGroupOffsets(request) => {
            use kafka_protocol::messages::describe_share_group_offsets_response::DescribeShareGroupOffsetsResponseGroup;
            ResponseKind::DescribeShareGroupOffsets(
                kafka_protocol::messages::DescribeShareGroupOffsetsResponse::default().with_groups(
                    request
                        .groups
                        .iter()
                        .map(|g| {
                            DescribeShareGroupOffsetsResponseGroup::default()
                                .with_group_id(g.group_id.clone())
                                .with_error_code(code)
                        })
                        .collect(),
                ),
            )
        }
        _ => return None,
    })
}

fn admin_error(
    request: &RequestKind,
    api_version: i16,
    error: ErrorCode,
    table: &ApiVersionTable,
) -> Option<ResponseKind> {
    let code = error.code();
    Some(match request {
        RequestKind::ApiVersions(_) => {
            ResponseKind::ApiVersions(admin::api_versions_error(table, error))
        }
        RequestKind::SaslHandshake(_) => ResponseKind::SaslHandshake(
            kafka_protocol::messages::SaslHandshakeResponse::default().with_error_code(code),
        ),
        RequestKind::SaslAuthenticate(_) => ResponseKind::SaslAuthenticate(
            kafka_protocol::messages::SaslAuthenticateResponse::default().with_error_code(code),
        ),
        RequestKind::CreateTopics(request) => {
            ResponseKind::CreateTopics(admin::create_topics(request, code))
        }
        RequestKind::DeleteTopics(request) => {
            ResponseKind::DeleteTopics(admin::delete_topics(request, api_version, code))
        }
        RequestKind::CreatePartitions(request) => {
            ResponseKind::CreatePartitions(admin::create_partitions(request, code))
        }
        RequestKind::DescribeConfigs(request) => {
            ResponseKind::DescribeConfigs(admin::describe_configs(request, code))
        }
        RequestKind::AlterConfigs(request) => {
            ResponseKind::AlterConfigs(admin::alter_configs(request, code))
        }
        RequestKind::IncrementalAlterConfigs(request) => {
            ResponseKind::IncrementalAlterConfigs(admin::incremental_alter_configs(request, code))
        }
        RequestKind::DescribeCluster(_) => ResponseKind::DescribeCluster(
            kafka_protocol::messages::DescribeClusterResponse::default().with_error_code(code),
        ),
        _ => return None,
    })
}

fn txn_error(request: &RequestKind, api_version: i16, code: i16) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::InitProducerId(_) => ResponseKind::InitProducerId(txn::init_producer_id(code)),
        RequestKind::AddPartitionsToTxn(request) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions_to_txn(request, api_version, code))
        }
        RequestKind::AddOffsetsToTxn(_) => ResponseKind::AddOffsetsToTxn(
            kafka_protocol::messages::AddOffsetsToTxnResponse::default().with_error_code(code),
        ),
        RequestKind::EndTxn(_) => ResponseKind::EndTxn(txn::end_txn(code)),
        RequestKind::TxnOffsetCommit(request) => {
            ResponseKind::TxnOffsetCommit(txn::txn_offset_commit(request, code))
        }
        RequestKind::ListTransactions(_) => ResponseKind::ListTransactions(
            kafka_protocol::messages::ListTransactionsResponse::default().with_error_code(code),
        ),
        _ => return None,
    })
}
