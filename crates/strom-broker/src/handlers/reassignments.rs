//! AlterPartitionReassignments and ListPartitionReassignments, decided by the controller
//! (strom-meta's `reassign` module has the state machine).
//!
//! Alter answers per partition: NONE when the reassignment was started, replaced or
//! cancelled (Kafka's answer too: the move itself goes on in the background, followed with
//! List), UNKNOWN_TOPIC_OR_PARTITION, INVALID_REPLICA_ASSIGNMENT (empty, duplicate or
//! unregistered brokers; a cancel that would need an unclean election),
//! INVALID_REPLICATION_FACTOR (v1 with `allow_replication_factor_change=false`),
//! NO_REASSIGNMENT_IN_PROGRESS (a cancel of nothing). A controller outage is the top-level
//! error, repeated on every partition as Kafka's error response does.

use strom_meta::{
    AlterPartitionReassignmentsRequest as MetaAlter, ControllerReply, ControllerRequest,
    ListPartitionReassignmentsRequest as MetaList, ReassignmentTargets,
};
use strom_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use strom_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use strom_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, ResponseKind,
};
use strom_protocol::ErrorCode;

use super::{api_error, broker_ids, controller_error, str_bytes, topic_name};
use crate::server::BrokerContext;

/// The first AlterPartitionReassignments version with `allow_replication_factor_change`.
const ALLOW_RF_CHANGE_MIN_VERSION: i16 = 1;

pub(super) async fn alter(
    context: &BrokerContext,
    request: AlterPartitionReassignmentsRequest,
    version: i16,
) -> ResponseKind {
    let allow_replication_factor_change =
        version < ALLOW_RF_CHANGE_MIN_VERSION || request.allow_replication_factor_change;
    let topics: ReassignmentTargets = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let replicas = p.replicas.map(|r| r.into_iter().map(|b| b.0).collect());
                    (p.partition_index, replicas)
                })
                .collect();
            (t.name.0.to_string(), partitions)
        })
        .collect();
    let meta_request = ControllerRequest::AlterPartitionReassignments(MetaAlter {
        allow_replication_factor_change,
        topics: topics.clone(),
    });
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_replication_factor_change)
        .with_error_message(None);
    let results = match context.metadata.submit(meta_request).await {
        Ok(ControllerReply::AlterPartitionReassignments(results)) => {
            // New replicas open their logs and start following before the answer, as
            // after a topic change.
            context.replicas.reconcile_latest(&context.metadata).await;
            results
                .into_iter()
                .map(|topic| {
                    let partitions = topic
                        .partitions
                        .into_iter()
                        .map(|(partition, error)| {
                            let (code, message) = error.as_ref().map_or((0, None), |e| {
                                let (code, message) = api_error(e);
                                (code, Some(str_bytes(message)))
                            });
                            ReassignablePartitionResponse::default()
                                .with_partition_index(partition)
                                .with_error_code(code)
                                .with_error_message(message)
                        })
                        .collect();
                    ReassignableTopicResponse::default()
                        .with_name(topic_name(topic.topic))
                        .with_partitions(partitions)
                })
                .collect()
        }
        Ok(reply) => {
            let message = format!("unexpected controller reply {reply:?}");
            let code = ErrorCode::UNKNOWN_SERVER_ERROR.code();
            return ResponseKind::AlterPartitionReassignments(failed(
                response, &topics, code, message,
            ));
        }
        Err(error) => {
            let (code, message) = controller_error(&error);
            return ResponseKind::AlterPartitionReassignments(failed(
                response, &topics, code, message,
            ));
        }
    };
    ResponseKind::AlterPartitionReassignments(response.with_responses(results))
}

/// The whole request failed: the error at the top and on every partition named.
fn failed(
    response: AlterPartitionReassignmentsResponse,
    topics: &ReassignmentTargets,
    code: i16,
    message: String,
) -> AlterPartitionReassignmentsResponse {
    let results = topics
        .iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .iter()
                .map(|(partition, _)| {
                    ReassignablePartitionResponse::default()
                        .with_partition_index(*partition)
                        .with_error_code(code)
                        .with_error_message(Some(str_bytes(message.clone())))
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(topic_name(topic.clone()))
                .with_partitions(partitions)
        })
        .collect();
    response
        .with_error_code(code)
        .with_error_message(Some(str_bytes(message)))
        .with_responses(results)
}

pub(super) async fn list(
    context: &BrokerContext,
    request: ListPartitionReassignmentsRequest,
) -> ResponseKind {
    let topics = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let meta_request = ControllerRequest::ListPartitionReassignments(MetaList { topics });
    let response = ListPartitionReassignmentsResponse::default().with_error_message(None);
    let response = match context.metadata.submit(meta_request).await {
        Ok(ControllerReply::ListPartitionReassignments(found)) => {
            let topics = found
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .into_iter()
                        .map(|p| {
                            OngoingPartitionReassignment::default()
                                .with_partition_index(p.partition)
                                .with_replicas(broker_ids(&p.replicas))
                                .with_adding_replicas(broker_ids(&p.adding_replicas))
                                .with_removing_replicas(broker_ids(&p.removing_replicas))
                        })
                        .collect();
                    OngoingTopicReassignment::default()
                        .with_name(topic_name(t.topic))
                        .with_partitions(partitions)
                })
                .collect();
            response.with_topics(topics)
        }
        Ok(reply) => response
            .with_error_code(ErrorCode::UNKNOWN_SERVER_ERROR.code())
            .with_error_message(Some(str_bytes(format!(
                "unexpected controller reply {reply:?}"
            )))),
        Err(error) => {
            let (code, message) = controller_error(&error);
            response
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message)))
        }
    };
    ResponseKind::ListPartitionReassignments(response)
}
