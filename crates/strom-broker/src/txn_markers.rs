//! Transaction markers on the partitions this broker leads: the one broker-level function
//! that WriteTxnMarkers (`handlers/write_txn_markers.rs`) and the transaction coordinator
//! both call. Per partition: the marker (a COMMIT or ABORT control batch carrying the
//! coordinator epoch) is appended as leader after Kafka's checks (`Partition::write_marker`),
//! committed locally (fsynced before the wait under sync-on-commit), then waited for as an
//! `acks=all` produce is: until the high watermark passes it, or the timeout. Markers are
//! appended one partition at a time, in the order given; the waits overlap.
//!
//! A marker replicated on a `__consumer_offsets` partition is passed to the group
//! coordinator (`GroupHandle::on_txn_marker`), as Kafka's `onTransactionCompleted`.

use std::sync::Arc;
use std::time::Duration;

use strom_protocol::ErrorCode;
use strom_replica::AckStatus;
use strom_txn::TopicPartition;
use tokio::time::Instant;

use crate::metadata::now_ms;
use crate::partition::{AppendError, Commit, MarkerAppendError, Partition};
use crate::producers::MarkerError;
use crate::server::BrokerContext;

/// Kafka's `request.timeout.ms` default, the bound of a marker's replication wait.
pub const MARKER_TIMEOUT: Duration = Duration::from_secs(30);

/// One marker for one producer, to write on several partitions: what WriteTxnMarkers carries
/// and what the transaction coordinator writes (here, or sent to other leaders by
/// [`crate::markers::send_to_leader`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMarker {
    /// The producer.
    pub producer_id: i64,
    /// Its epoch as the coordinator knows it.
    pub producer_epoch: i16,
    /// COMMIT (`true`) or ABORT.
    pub commit: bool,
    /// The coordinator's epoch (its `__transaction_state` partition's leader epoch).
    pub coordinator_epoch: i32,
    /// The marker's transaction version (WriteTxnMarkers v2's `TransactionVersion`; 0 for
    /// older requests, as Kafka's field default): at 2 the producer epoch was bumped for
    /// this end, and the partition checks it as Kafka 4.x does (`Partition::write_marker`).
    pub transaction_version: i16,
    /// Every partition of the transaction to mark.
    pub partitions: Vec<TopicPartition>,
}

/// The outcome on one partition, in the order of [`TxnMarker::partitions`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerResult {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// NONE once the marker is replicated; otherwise Kafka's code for why not.
    pub error: ErrorCode,
}

/// Writes `marker` on each of its partitions this broker leads, waits (at most `timeout`)
/// for each to be replicated as `acks=all`, and answers per partition:
/// UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER (not led here, or leadership lost
/// while waiting), INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED,
/// NOT_ENOUGH_REPLICAS(_AFTER_APPEND), REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR...
pub async fn write_txn_markers(
    context: &BrokerContext,
    marker: &TxnMarker,
    timeout: Duration,
) -> Vec<MarkerResult> {
    let deadline = Instant::now() + timeout;
    let image = context.metadata.image();
    let commit = if context.config.sync_on_commit() {
        Commit::Sync
    } else {
        Commit::Now
    };
    let mut waits = Vec::with_capacity(marker.partitions.len());
    for tp in &marker.partitions {
        let appended =
            match crate::handlers::resolve_leader(context, &image, &tp.topic, tp.partition) {
                Err(code) => Err(code),
                Ok((partition, leader_epoch)) => {
                    append_one(Arc::clone(&partition), marker, leader_epoch, commit)
                        .await
                        .map(|end| (partition, leader_epoch, end))
                }
            };
        waits.push(appended);
    }
    let mut results = Vec::with_capacity(waits.len());
    for (tp, appended) in marker.partitions.iter().zip(waits) {
        let error = match appended {
            Err(code) => code,
            Ok((partition, epoch, end)) => {
                match wait_replicated(&partition, end, epoch, deadline).await {
                    Err(code) => code,
                    Ok(()) => {
                        if tp.topic == crate::groups::OFFSETS_TOPIC {
                            context
                                .groups
                                .on_txn_marker(
                                    tp.partition,
                                    marker.producer_id,
                                    marker.producer_epoch,
                                    marker.commit,
                                )
                                .await;
                        }
                        ErrorCode::NONE
                    }
                }
            }
        };
        results.push(MarkerResult {
            topic: tp.topic.clone(),
            partition: tp.partition,
            error,
        });
    }
    results
}

/// Appends the marker on the blocking pool; the end offset it must be replicated to.
async fn append_one(
    partition: Arc<Partition>,
    marker: &TxnMarker,
    leader_epoch: i32,
    commit: Commit,
) -> Result<i64, ErrorCode> {
    let (producer_id, producer_epoch) = (marker.producer_id, marker.producer_epoch);
    let (coordinator_epoch, commit_marker) = (marker.coordinator_epoch, marker.commit);
    let transaction_version = marker.transaction_version;
    let appending = Arc::clone(&partition);
    let result = tokio::task::spawn_blocking(move || {
        appending.write_marker(
            producer_id,
            producer_epoch,
            coordinator_epoch,
            transaction_version,
            commit_marker,
            leader_epoch,
            commit,
            now_ms(),
        )
    })
    .await;
    match result {
        Ok(Ok(info)) => Ok(info.last_offset.saturating_add(1)),
        Ok(Err(refused)) => {
            let code = refusal_code(&refused);
            tracing::debug!(topic = %partition.topic, partition = partition.tp.partition,
                producer_id, error = %refused, "transaction marker refused");
            Err(code)
        }
        Err(_) => Err(ErrorCode::NOT_LEADER_OR_FOLLOWER),
    }
}

/// Kafka's error code for a refused marker.
fn refusal_code(refused: &MarkerAppendError) -> ErrorCode {
    let refused = match refused {
        MarkerAppendError::Marker(MarkerError::InvalidProducerEpoch { .. }) => {
            return ErrorCode::INVALID_PRODUCER_EPOCH
        }
        MarkerAppendError::Marker(MarkerError::CoordinatorFenced { .. }) => {
            return ErrorCode::TRANSACTION_COORDINATOR_FENCED
        }
        MarkerAppendError::Append(refused) => refused,
    };
    match refused {
        AppendError::Log(error) => ErrorCode(error.kafka_error_code()),
        AppendError::NotLeader { .. } => ErrorCode::NOT_LEADER_OR_FOLLOWER,
        AppendError::NotEnoughReplicas { .. } => ErrorCode::NOT_ENOUGH_REPLICAS,
        AppendError::StaleEpoch { .. } => ErrorCode::INVALID_PRODUCER_EPOCH,
        AppendError::OutOfOrderSequence { .. } => ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
        AppendError::MultipleBatches => ErrorCode::INVALID_RECORD,
        // Only producer batches are verified; never a marker.
        AppendError::NotVerified { .. } => ErrorCode::INVALID_TXN_STATE,
    }
}

/// Waits until the high watermark covers `end_offset` in `epoch` (Kafka's delayed produce
/// with `acks=-1`), or the deadline.
async fn wait_replicated(
    partition: &Partition,
    end_offset: i64,
    epoch: i32,
    deadline: Instant,
) -> Result<(), ErrorCode> {
    let mut progress = partition.progress();
    loop {
        match partition.ack_status(end_offset, epoch) {
            None => return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER),
            Some(AckStatus::Committed) => return Ok(()),
            Some(AckStatus::NotEnoughReplicasAfterAppend) => {
                return Err(ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND)
            }
            Some(AckStatus::Waiting) => {}
        }
        tokio::select! {
            changed = progress.changed() => {
                if changed.is_err() {
                    return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Err(ErrorCode::REQUEST_TIMED_OUT),
        }
    }
}

#[cfg(test)]
mod tests {
    use strom_log::MarkerRefusal;

    use super::*;

    #[test]
    fn refused_markers_get_kafkas_codes() {
        let epoch = MarkerAppendError::Marker(MarkerError::InvalidProducerEpoch {
            producer_id: 1,
            refusal: MarkerRefusal::InvalidProducerEpoch {
                got: 4,
                current: 4,
                transaction_version: 2,
            },
        });
        assert_eq!(refusal_code(&epoch), ErrorCode::INVALID_PRODUCER_EPOCH);
        let fenced = MarkerAppendError::Marker(MarkerError::CoordinatorFenced {
            producer_id: 1,
            refusal: MarkerRefusal::CoordinatorFenced { got: 1, current: 2 },
        });
        assert_eq!(
            refusal_code(&fenced),
            ErrorCode::TRANSACTION_COORDINATOR_FENCED
        );
    }
}
