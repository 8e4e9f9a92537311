//! ElectLeaders: preferred (v0's only kind) or unclean leader elections, decided by the
//! controller as Kafka's KRaft controller decides them. Per partition: NONE when a new
//! leader was elected, ELECTION_NOT_NEEDED (the preferred replica already leads, or the
//! partition has a leader), PREFERRED_LEADER_NOT_AVAILABLE or
//! ELIGIBLE_LEADERS_NOT_AVAILABLE when no replica qualifies, UNKNOWN_TOPIC_OR_PARTITION. A
//! request for all partitions (a null list) answers only those that needed an election.

use strom_meta::{ControllerReply, ControllerRequest, ElectLeadersRequest as MetaRequest};
use strom_meta::{ElectLeadersTopicResult, ElectionType};
use strom_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use strom_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, ResponseKind};
use strom_protocol::ErrorCode;

use super::{api_error, controller_error, str_bytes, topic_name};
use crate::server::BrokerContext;

/// The first version with `election_type` (and a top-level error code).
const ELECTION_TYPE_MIN_VERSION: i16 = 1;

pub(super) async fn handle(
    context: &BrokerContext,
    request: ElectLeadersRequest,
    version: i16,
) -> ResponseKind {
    let requested: Option<Vec<(String, Vec<i32>)>> = request.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let election_type = if version >= ELECTION_TYPE_MIN_VERSION {
        ElectionType::from_kafka_id(request.election_type)
    } else {
        Some(ElectionType::Preferred)
    };
    let Some(election_type) = election_type else {
        let message = format!("Unknown election type {}", request.election_type);
        return failed(
            requested,
            ErrorCode::INVALID_REQUEST.code(),
            message,
            version,
        );
    };
    let meta_request = ControllerRequest::ElectLeaders(MetaRequest {
        election_type,
        topic_partitions: requested.clone(),
    });
    match context.metadata.submit(meta_request).await {
        Ok(ControllerReply::ElectLeaders(results)) => {
            // New leaders open their logs and take over before the answer, as after a
            // topic change.
            context.replicas.reconcile_latest(&context.metadata).await;
            respond(results)
        }
        Ok(reply) => failed(
            requested,
            ErrorCode::UNKNOWN_SERVER_ERROR.code(),
            format!("{reply:?}"),
            version,
        ),
        Err(error) => {
            let (code, message) = controller_error(&error);
            failed(requested, code, message, version)
        }
    }
}

fn respond(results: Vec<ElectLeadersTopicResult>) -> ResponseKind {
    let results = results
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .into_iter()
                .map(|(partition, error)| {
                    let (code, message) = error.as_ref().map_or((0, None), |e| {
                        let (code, message) = api_error(e);
                        (code, Some(message))
                    });
                    PartitionResult::default()
                        .with_partition_id(partition)
                        .with_error_code(code)
                        .with_error_message(message.map(str_bytes))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(topic_name(topic.topic))
                .with_partition_result(partitions)
        })
        .collect();
    ResponseKind::ElectLeaders(
        ElectLeadersResponse::default().with_replica_election_results(results),
    )
}

/// The whole request failed: Kafka's `getErrorResponse` puts the error on every partition
/// named (and at the top from v1).
fn failed(
    requested: Option<Vec<(String, Vec<i32>)>>,
    code: i16,
    message: String,
    version: i16,
) -> ResponseKind {
    let results = requested
        .unwrap_or_default()
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|partition| {
                    PartitionResult::default()
                        .with_partition_id(partition)
                        .with_error_code(code)
                        .with_error_message(Some(str_bytes(message.clone())))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(topic_name(topic))
                .with_partition_result(partitions)
        })
        .collect();
    let top = if version >= ELECTION_TYPE_MIN_VERSION {
        code
    } else {
        0
    };
    ResponseKind::ElectLeaders(
        ElectLeadersResponse::default()
            .with_error_code(top)
            .with_replica_election_results(results),
    )
}
