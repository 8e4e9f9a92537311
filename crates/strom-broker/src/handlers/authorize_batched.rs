//! Authorization of batched APIs that Kafka answers per item: a denied topic, group key or
//! transactional id gets its authorization error and is never acted on, while the others
//! are served (`KafkaApis` filters with `filterByAuthorized` and merges the answers). Checks
//! on the one group or transactional id a request is about stay whole-request
//! (`authz::precheck`), as in Kafka.
//!
//! - FindCoordinator v4+ (KIP-699): each key needs DESCRIBE on its group or transactional id.
//! - OffsetDelete: GROUP DELETE (whole); topics need READ, denied ones TOPIC_AUTHORIZATION_FAILED.
//! - TxnOffsetCommit: TRANSACTIONAL_ID WRITE and GROUP READ (whole); topics need READ.
//! - AddPartitionsToTxn v0-3: TRANSACTIONAL_ID WRITE (whole); a denied topic fails the request
//!   as Kafka does: TOPIC_AUTHORIZATION_FAILED on its partitions, UNKNOWN_TOPIC_OR_PARTITION on
//!   unknown ones, OPERATION_NOT_ATTEMPTED on the rest, nothing added.
//! - DescribeTransactions: each id needs DESCRIBE (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
//! - DescribeProducers: each topic needs READ (TOPIC_AUTHORIZATION_FAILED on its partitions).
//! - ListTransactions: lists only the ids the principal may DESCRIBE (quietly: a listing).

use strom_meta::acl::ResourceType;
use strom_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use strom_protocol::messages::describe_producers_response::{PartitionResponse, TopicResponse};
use strom_protocol::messages::describe_transactions_response::TransactionState;
use strom_protocol::messages::find_coordinator_response::Coordinator;
use strom_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use strom_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use strom_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, BrokerId,
    DescribeProducersRequest, DescribeTransactionsRequest, FindCoordinatorRequest,
    ListTransactionsRequest, OffsetDeleteRequest, ResponseKind, TxnOffsetCommitRequest,
};
use strom_protocol::ErrorCode;

use super::authorize::{take_denied, topic_allowed};
use super::str_bytes;
use crate::authz;
use crate::principal::Session;
use crate::server::BrokerContext;

const TOPIC_DENIED: ErrorCode = ErrorCode::TOPIC_AUTHORIZATION_FAILED;
/// The first FindCoordinator version that batches keys.
const FIND_COORDINATOR_BATCHED_MIN_VERSION: i16 = 4;
/// The last AddPartitionsToTxn version sent by producers (one transaction, checked here).
const ADD_PARTITIONS_PRODUCER_MAX_VERSION: i16 = 3;

pub(super) async fn find_coordinator(
    context: &BrokerContext,
    session: &Session,
    mut request: FindCoordinatorRequest,
    version: i16,
) -> ResponseKind {
    // Versions 0-3 carry one key, checked whole before (`authz::precheck`).
    if !authz::enabled(context) || version < FIND_COORDINATOR_BATCHED_MIN_VERSION {
        return super::find_coordinator::handle(context, request, version).await;
    }
    let (resource_type, error) = match request.key_type {
        0 => (ResourceType::Group, ErrorCode::GROUP_AUTHORIZATION_FAILED),
        1 => (
            ResourceType::TransactionalId,
            ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        ),
        // An unknown key type is the handler's INVALID_REQUEST, key by key.
        _ => return super::find_coordinator::handle(context, request, version).await,
    };
    let denied = take_denied(&mut request.coordinator_keys, |key| {
        authz::allowed(
            context,
            session,
            ApiKey::FindCoordinator,
            resource_type,
            key,
        )
    });
    let mut response = super::find_coordinator::handle(context, request, version).await;
    if let ResponseKind::FindCoordinator(found) = &mut response {
        found.coordinators.extend(denied.into_iter().map(|key| {
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(-1))
                .with_host(str_bytes(""))
                .with_port(-1)
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes("Authorization failed.")))
        }));
    }
    response
}

pub(super) async fn offset_delete(
    context: &BrokerContext,
    session: &Session,
    mut request: OffsetDeleteRequest,
    version: i16,
) -> ResponseKind {
    if !authz::enabled(context) {
        return super::offset_delete::handle(context, request, version).await;
    }
    let denied = take_denied(&mut request.topics, |t| {
        topic_allowed(context, session, ApiKey::OffsetDelete, &t.name)
    });
    let mut response = super::offset_delete::handle(context, request, version).await;
    // A group-level error answers the whole request (Kafka drops the per-topic answers).
    if let ResponseKind::OffsetDelete(deleted) = &mut response {
        if deleted.error_code == ErrorCode::NONE.code() {
            deleted.topics.extend(denied.into_iter().map(|t| {
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(TOPIC_DENIED.code())
                            })
                            .collect(),
                    )
            }));
        }
    }
    response
}

pub(super) async fn txn_offset_commit(
    context: &BrokerContext,
    session: &Session,
    mut request: TxnOffsetCommitRequest,
    version: i16,
) -> ResponseKind {
    if !authz::enabled(context) {
        return super::txn_offset_commit::handle(context, request, version).await;
    }
    let denied = take_denied(&mut request.topics, |t| {
        topic_allowed(context, session, ApiKey::TxnOffsetCommit, &t.name)
    });
    let mut response = super::txn_offset_commit::handle(context, request, version).await;
    if let ResponseKind::TxnOffsetCommit(committed) = &mut response {
        committed.topics.extend(denied.into_iter().map(|t| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(TOPIC_DENIED.code())
                        })
                        .collect(),
                )
        }));
    }
    response
}

pub(super) async fn add_partitions_to_txn(
    context: &BrokerContext,
    session: &Session,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> ResponseKind {
    // Versions 4+ come from brokers and need CLUSTER_ACTION (`authz::precheck`).
    if !authz::enabled(context) || version > ADD_PARTITIONS_PRODUCER_MAX_VERSION {
        return super::add_partitions_to_txn::handle(context, request, version).await;
    }
    let denied: Vec<bool> = request
        .v3_and_below_topics
        .iter()
        .map(|t| !topic_allowed(context, session, ApiKey::AddPartitionsToTxn, &t.name))
        .collect();
    if !denied.contains(&true) {
        return super::add_partitions_to_txn::handle(context, request, version).await;
    }
    let image = context.metadata.image();
    let results = request
        .v3_and_below_topics
        .iter()
        .zip(denied)
        .map(|(t, denied)| {
            let known = image.topic_by_name(&t.name);
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|&p| {
                            let code = if denied {
                                TOPIC_DENIED
                            } else if known.is_none_or(|k| !k.partitions.contains_key(&p)) {
                                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                            } else {
                                ErrorCode::OPERATION_NOT_ATTEMPTED
                            };
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(code.code())
                        })
                        .collect(),
                )
        })
        .collect();
    ResponseKind::AddPartitionsToTxn(
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
    )
}

pub(super) async fn describe_transactions(
    context: &BrokerContext,
    session: &Session,
    mut request: DescribeTransactionsRequest,
) -> ResponseKind {
    if !authz::enabled(context) {
        return super::describe_transactions::handle(context, request).await;
    }
    let denied = take_denied(&mut request.transactional_ids, |id| {
        authz::allowed(
            context,
            session,
            ApiKey::DescribeTransactions,
            ResourceType::TransactionalId,
            id,
        )
    });
    let mut response = super::describe_transactions::handle(context, request).await;
    if let ResponseKind::DescribeTransactions(described) = &mut response {
        described
            .transaction_states
            .extend(denied.into_iter().map(|id| {
                TransactionState::default()
                    .with_transactional_id(id)
                    .with_error_code(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code())
                    .with_transaction_start_time_ms(-1)
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1)
            }));
    }
    response
}

pub(super) async fn describe_producers(
    context: &BrokerContext,
    session: &Session,
    mut request: DescribeProducersRequest,
) -> ResponseKind {
    if !authz::enabled(context) {
        return super::describe_producers::handle(context, request).await;
    }
    let denied = take_denied(&mut request.topics, |t| {
        topic_allowed(context, session, ApiKey::DescribeProducers, &t.name)
    });
    let mut response = super::describe_producers::handle(context, request).await;
    if let ResponseKind::DescribeProducers(described) = &mut response {
        described.topics.extend(denied.into_iter().map(|t| {
            TopicResponse::default().with_name(t.name).with_partitions(
                t.partition_indexes
                    .iter()
                    .map(|&p| {
                        PartitionResponse::default()
                            .with_partition_index(p)
                            .with_error_code(TOPIC_DENIED.code())
                            .with_error_message(Some(str_bytes("Authorization failed.")))
                    })
                    .collect(),
            )
        }));
    }
    response
}

pub(super) async fn list_transactions(
    context: &BrokerContext,
    session: &Session,
    request: ListTransactionsRequest,
) -> ResponseKind {
    let mut response = super::list_transactions::handle(context, request).await;
    if authz::enabled(context) {
        if let ResponseKind::ListTransactions(listed) = &mut response {
            listed.transaction_states.retain(|state| {
                authz::visible(
                    context,
                    session,
                    ApiKey::ListTransactions,
                    ResourceType::TransactionalId,
                    &state.transactional_id,
                )
            });
        }
    }
    response
}
