//! Transaction markers as the coordinator sends them to other brokers: a WriteTxnMarkers
//! request to each partition's leader ([`send_to_leader`]; the partitions this broker leads
//! go through [`crate::txn_markers::write_txn_markers`]), what the coordinator does with each
//! partition's answer ([`marker_round`], Kafka's `TransactionMarkerRequestCompletionHandler`),
//! and a partition leader's KIP-890 verification request to a coordinator on another broker
//! ([`verify_remote`]).

use strom_meta::MetadataImage;
use strom_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use strom_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use strom_protocol::messages::{
    AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use strom_protocol::{ErrorCode, StrBytes};
use strom_txn::TopicPartition;

use crate::peer::PeerConnection;
use crate::server::BrokerContext;
use crate::txn_markers::TxnMarker;

/// How long one request to another broker may take.
const PEER_TIMEOUT_MS: u64 = 30_000;
/// The largest response frame accepted from another broker.
const PEER_FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;
/// WriteTxnMarkers and AddPartitionsToTxn versions this broker sends. WriteTxnMarkers v2
/// (KIP-1228) carries the marker's transaction version; a leader whose ApiVersions stop at
/// v1 gets v1 without it and checks the epoch by the legacy rule (not older), which every
/// version 2 marker passes too, as Kafka's coordinator does with such a peer.
const WRITE_TXN_MARKERS_VERSION: i16 = 2;
const VERIFY_VERSION: i16 = 4;

/// The address of `broker`'s inter-broker listener in `image`.
pub(crate) fn peer_addr(
    context: &BrokerContext,
    image: &MetadataImage,
    broker: i32,
) -> Option<String> {
    let endpoint = image.broker(broker).filter(|b| !b.fenced).and_then(|b| {
        b.endpoints
            .iter()
            .find(|e| e.listener_name == context.config.inter_broker_listener_name)
    })?;
    Some(if endpoint.host.contains(':') {
        format!("[{}]:{}", endpoint.host, endpoint.port)
    } else {
        format!("{}:{}", endpoint.host, endpoint.port)
    })
}

async fn connect(
    context: &BrokerContext,
    image: &MetadataImage,
    broker: i32,
) -> Result<PeerConnection, String> {
    let addr = peer_addr(context, image, broker)
        .ok_or_else(|| format!("broker {broker} has no live inter-broker endpoint"))?;
    let client_id = format!("strom-txn-coordinator-{}", context.config.node_id);
    PeerConnection::connect(
        &addr,
        client_id,
        PEER_TIMEOUT_MS,
        PEER_FRAME_BYTES_MAX,
        &context.config.listeners.inter_broker_client,
    )
    .await
    .map_err(|e| e.to_string())
}

/// Sends the marker to `leader` as one WriteTxnMarkers request; per partition its answer,
/// or NOT_LEADER_OR_FOLLOWER (retried) when the leader cannot be reached.
pub async fn send_to_leader(
    context: &BrokerContext,
    image: &MetadataImage,
    leader: i32,
    marker: &TxnMarker,
) -> Vec<(TopicPartition, ErrorCode)> {
    let failed = |marker: &TxnMarker| {
        marker
            .partitions
            .iter()
            .map(|tp| (tp.clone(), ErrorCode::NOT_LEADER_OR_FOLLOWER))
            .collect::<Vec<_>>()
    };
    let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
    for tp in &marker.partitions {
        match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
            Some(topic) => topic.partition_indexes.push(tp.partition),
            None => topics.push(
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partition_indexes(vec![tp.partition]),
            ),
        }
    }
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.producer_id))
            .with_producer_epoch(marker.producer_epoch)
            .with_transaction_result(marker.commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_transaction_version(wire_transaction_version(marker.transaction_version))
            .with_topics(topics)]);
    let mut connection = match connect(context, image, leader).await {
        Ok(c) => c,
        Err(reason) => {
            tracing::debug!(leader, %reason, "cannot reach a partition leader for markers");
            return failed(marker);
        }
    };
    let version = match connection.version_of::<WriteTxnMarkersRequest>(WRITE_TXN_MARKERS_VERSION) {
        Ok(v) => v,
        Err(error) => {
            tracing::warn!(leader, %error, "the leader does not serve WriteTxnMarkers");
            return failed(marker);
        }
    };
    let response = match connection.send(&request, version, PEER_TIMEOUT_MS).await {
        Ok(r) => r,
        Err(error) => {
            tracing::debug!(leader, %error, "WriteTxnMarkers failed");
            return failed(marker);
        }
    };
    let mut results = Vec::new();
    for result in response.markers {
        for topic in result.topics {
            for p in topic.partitions {
                results.push((
                    TopicPartition::new(topic.name.0.to_string(), p.partition_index),
                    ErrorCode(p.error_code),
                ));
            }
        }
    }
    // A partition the answer left out is retried.
    for tp in &marker.partitions {
        if !results.iter().any(|(r, _)| r == tp) {
            results.push((tp.clone(), ErrorCode::NOT_LEADER_OR_FOLLOWER));
        }
    }
    results
}

/// What the coordinator does with one partition's answer to a marker, as Kafka's
/// `TransactionMarkerRequestCompletionHandler` (and `addTxnMarkersToBrokerQueue` for a
/// partition that no longer exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerAnswer {
    /// The marker is written, or the partition no longer needs one (its topic is deleted, or
    /// its leader cannot hold a marker: UNSUPPORTED_FOR_MESSAGE_FORMAT / UNSUPPORTED_VERSION,
    /// so the producer could not have written there either): out of the job.
    Done,
    /// Sent again, after a backoff, to the partition's leader of the moment.
    Retry,
    /// INVALID_PRODUCER_EPOCH or TRANSACTION_COORDINATOR_FENCED: the producer's epoch or the
    /// coordinator epoch moved past this coordinator's (a newer coordinator owns the
    /// transaction). Kafka's `abortSending`: no more markers of the job, and no
    /// CompleteCommit/CompleteAbort from this coordinator.
    Fenced,
    /// An answer Kafka's handler treats as a bug (CORRUPT_MESSAGE, MESSAGE_TOO_LARGE,
    /// RECORD_LIST_TOO_LARGE, INVALID_REQUIRED_ACKS, or any code it does not expect): the job
    /// stops and is reported; the transaction stays prepared until its coordinator is
    /// loaded again, which resumes the job from the PREPARE record.
    Fatal,
}

/// The [`MarkerAnswer`] to `code` for a partition that does (`exists`) or does not exist
/// in the coordinator's metadata. UNKNOWN_TOPIC_OR_PARTITION is retried while the partition
/// exists (its leader may not know it yet), and drops it once it is gone.
pub fn marker_answer(code: ErrorCode, exists: bool) -> MarkerAnswer {
    match code {
        ErrorCode::NONE
        | ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT
        | ErrorCode::UNSUPPORTED_VERSION => MarkerAnswer::Done,
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION if !exists => MarkerAnswer::Done,
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
        | ErrorCode::NOT_LEADER_OR_FOLLOWER
        | ErrorCode::NOT_ENOUGH_REPLICAS
        | ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | ErrorCode::REQUEST_TIMED_OUT
        | ErrorCode::KAFKA_STORAGE_ERROR => MarkerAnswer::Retry,
        ErrorCode::INVALID_PRODUCER_EPOCH | ErrorCode::TRANSACTION_COORDINATOR_FENCED => {
            MarkerAnswer::Fenced
        }
        _ => MarkerAnswer::Fatal,
    }
}

/// One round of a marker job's answers folded into what its task does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerRound {
    /// Every partition is done: the transaction can be completed.
    Complete,
    /// These partitions are sent again.
    Retry(Vec<TopicPartition>),
    /// The job stops at this partition's answer ([`MarkerAnswer::Fenced`] or
    /// [`MarkerAnswer::Fatal`]); nothing more is sent and the transaction is not completed.
    Stop {
        partition: TopicPartition,
        error: ErrorCode,
        answer: MarkerAnswer,
    },
}

/// Folds one round of per-partition answers; `exists` says whether a partition is still in
/// the coordinator's metadata. A fatal answer wins over a fenced one (both stop the job).
pub fn marker_round(
    results: Vec<(TopicPartition, ErrorCode)>,
    exists: impl Fn(&TopicPartition) -> bool,
) -> MarkerRound {
    let mut retry = Vec::new();
    let mut stop: Option<MarkerRound> = None;
    for (tp, code) in results {
        match marker_answer(code, exists(&tp)) {
            MarkerAnswer::Done => {}
            MarkerAnswer::Retry => retry.push(tp),
            answer @ (MarkerAnswer::Fenced | MarkerAnswer::Fatal) => {
                let fatal_seen = matches!(
                    stop,
                    Some(MarkerRound::Stop {
                        answer: MarkerAnswer::Fatal,
                        ..
                    })
                );
                if !fatal_seen {
                    stop = Some(MarkerRound::Stop {
                        partition: tp,
                        error: code,
                        answer,
                    });
                }
            }
        }
    }
    match stop {
        Some(stop) => stop,
        None if retry.is_empty() => MarkerRound::Complete,
        None => MarkerRound::Retry(retry),
    }
}

/// The wire's int8 `TransactionVersion` of a marker (Kafka's levels are 0-2).
fn wire_transaction_version(transaction_version: i16) -> i8 {
    i8::try_from(transaction_version).unwrap_or(i8::MAX)
}

/// KIP-890 against a coordinator on another broker: AddPartitionsToTxn v4 with
/// `verify_only` (part 1), or without it to add the partition (part 2, a transaction
/// version 2 producer's implicit addition); the partition's error code (or the
/// transaction's), or COORDINATOR_NOT_AVAILABLE when it cannot be asked.
#[allow(clippy::too_many_arguments)]
pub async fn verify_remote(
    context: &BrokerContext,
    image: &MetadataImage,
    coordinator: i32,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    tp: &TopicPartition,
    verify_only: bool,
) -> i16 {
    let unavailable = ErrorCode::COORDINATOR_NOT_AVAILABLE.code();
    if coordinator < 0 {
        return unavailable;
    }
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            )))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_verify_only(verify_only)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                .with_partitions(vec![tp.partition])]),
    ]);
    let Ok(mut connection) = connect(context, image, coordinator).await else {
        return unavailable;
    };
    let Ok(version) = connection.version_of::<AddPartitionsToTxnRequest>(VERIFY_VERSION) else {
        return unavailable;
    };
    if version < VERIFY_VERSION {
        return unavailable;
    }
    let Ok(response) = connection.send(&request, version, PEER_TIMEOUT_MS).await else {
        return unavailable;
    };
    if response.error_code != 0 {
        return response.error_code;
    }
    response
        .results_by_transaction
        .iter()
        .flat_map(|t| &t.topic_results)
        .filter(|t| t.name.0.as_str() == tp.topic)
        .flat_map(|t| &t.results_by_partition)
        .find(|p| p.partition_index == tp.partition)
        .map_or(ErrorCode::TRANSACTION_ABORTABLE.code(), |p| {
            p.partition_error_code
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition::new("t".to_string(), partition)
    }

    /// Kafka's `TransactionMarkerRequestCompletionHandler`, one class of answer at a time.
    #[test]
    fn marker_answers_are_kafkas() {
        let check = |code: ErrorCode, exists: bool, expected: MarkerAnswer| {
            assert_eq!(
                marker_answer(code, exists),
                expected,
                "{code} (partition exists: {exists})"
            );
        };
        for exists in [true, false] {
            check(ErrorCode::NONE, exists, MarkerAnswer::Done);
            for gone in [
                ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT,
                ErrorCode::UNSUPPORTED_VERSION,
            ] {
                check(gone, exists, MarkerAnswer::Done);
            }
            for retriable in [
                ErrorCode::NOT_LEADER_OR_FOLLOWER,
                ErrorCode::NOT_ENOUGH_REPLICAS,
                ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                ErrorCode::REQUEST_TIMED_OUT,
                ErrorCode::KAFKA_STORAGE_ERROR,
            ] {
                check(retriable, exists, MarkerAnswer::Retry);
            }
            for fenced in [
                ErrorCode::INVALID_PRODUCER_EPOCH,
                ErrorCode::TRANSACTION_COORDINATOR_FENCED,
            ] {
                check(fenced, exists, MarkerAnswer::Fenced);
            }
            for fatal in [
                ErrorCode::CORRUPT_MESSAGE,
                ErrorCode::MESSAGE_TOO_LARGE,
                ErrorCode::RECORD_LIST_TOO_LARGE,
                ErrorCode::INVALID_REQUIRED_ACKS,
                // Not in Kafka's handler's lists: its `case other` throws too.
                ErrorCode::UNKNOWN_SERVER_ERROR,
                ErrorCode::INVALID_RECORD,
                ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
            ] {
                check(fatal, exists, MarkerAnswer::Fatal);
            }
        }
        // A leader that does not know the partition yet is asked again; a deleted topic's
        // partition leaves the job.
        check(
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            true,
            MarkerAnswer::Retry,
        );
        check(
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            false,
            MarkerAnswer::Done,
        );
    }

    #[test]
    fn a_round_completes_retries_or_stops() {
        let all_exist = |_: &TopicPartition| true;
        assert_eq!(
            marker_round(
                vec![
                    (tp(0), ErrorCode::NONE),
                    (tp(1), ErrorCode::UNSUPPORTED_VERSION)
                ],
                all_exist
            ),
            MarkerRound::Complete
        );
        assert_eq!(
            marker_round(
                vec![
                    (tp(0), ErrorCode::NONE),
                    (tp(1), ErrorCode::NOT_LEADER_OR_FOLLOWER),
                    (tp(2), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                ],
                all_exist
            ),
            MarkerRound::Retry(vec![tp(1), tp(2)])
        );
        // Partition 2 is deleted: it leaves the job; only partition 1 is retried.
        assert_eq!(
            marker_round(
                vec![
                    (tp(1), ErrorCode::REQUEST_TIMED_OUT),
                    (tp(2), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                ],
                |p: &TopicPartition| p.partition != 2
            ),
            MarkerRound::Retry(vec![tp(1)])
        );
        // A fenced answer stops the job even with partitions left to retry.
        assert_eq!(
            marker_round(
                vec![
                    (tp(0), ErrorCode::NOT_LEADER_OR_FOLLOWER),
                    (tp(1), ErrorCode::TRANSACTION_COORDINATOR_FENCED),
                ],
                all_exist
            ),
            MarkerRound::Stop {
                partition: tp(1),
                error: ErrorCode::TRANSACTION_COORDINATOR_FENCED,
                answer: MarkerAnswer::Fenced,
            }
        );
        // A fatal answer is the one reported, whatever the order.
        assert_eq!(
            marker_round(
                vec![
                    (tp(0), ErrorCode::INVALID_PRODUCER_EPOCH),
                    (tp(1), ErrorCode::CORRUPT_MESSAGE),
                    (tp(2), ErrorCode::TRANSACTION_COORDINATOR_FENCED),
                ],
                all_exist
            ),
            MarkerRound::Stop {
                partition: tp(1),
                error: ErrorCode::CORRUPT_MESSAGE,
                answer: MarkerAnswer::Fatal,
            }
        );
    }
}
