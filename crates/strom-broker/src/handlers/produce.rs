//! Produce: acks 0, 1 and all; per-partition errors; batches validated by the log.
//!
//! Kafka's acknowledgements: `acks=0` is never answered (the connection layer drops the
//! response); `acks=1` is answered once the leader appended (under
//! `strom.log.durability=sync-on-commit`, once its fsync covers the batch); `acks=all` is
//! refused with NOT_ENOUGH_REPLICAS before the append when the ISR is smaller than
//! `min.insync.replicas`, and answered once the high watermark covers the batch, which
//! means every member of the maximal ISR has it (and under sync-on-commit has it fsynced):
//! NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below `min.insync.replicas`
//! meanwhile, NOT_LEADER_OR_FOLLOWER if this broker stopped leading, REQUEST_TIMED_OUT after
//! the request's `timeout_ms`. With a single in-sync replica in page-cache mode the high
//! watermark covers the batch as it is appended, and the answer goes out at once.
//!
//! On a connection that pipelines (see `connection.rs`), a produce that must wait (for an
//! fsync, or for followers) appends and returns at once, handing the wait to the
//! connection as a finisher that it runs before it writes the response. Appends still
//! happen one request at a time, in arrival order; only the waits overlap, so a producer's
//! pipelined requests share fsyncs and replication round trips.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use strom_log::{LogError, RecordErrorReason, RecordErrors};
use strom_meta::{MetadataImage, TopicIdPartition};
use strom_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use strom_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use strom_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use strom_protocol::{ErrorCode, StrBytes};
use strom_replica::AckStatus;
use tokio::time::Instant;

use super::{leader_epoch, leader_replica, str_bytes};
use crate::connection;
use crate::groups::OFFSETS_TOPIC;
use crate::metadata::now_ms;
use crate::partition::{AppendError, Appended, Commit, Partition, ProducerBatch};
use crate::producers::Verification;
use crate::replicas::ReplicaManager;
use crate::server::BrokerContext;
use crate::syncer::CommitError;

/// The first version that addresses topics by id.
const TOPIC_ID_MIN_VERSION: i16 = 13;
/// The first version with per-batch record errors and an error message.
const RECORD_ERRORS_MIN_VERSION: i16 = 8;
/// The first version of transaction version 2 producers (KIP-890 part 2), whose partitions
/// the leader adds to the transaction.
const IMPLICIT_ADD_MIN_VERSION: i16 = 12;
/// The first version whose clients know TRANSACTION_ABORTABLE (KIP-890; Kafka's
/// `GENERIC_ERROR_SUPPORTED`): a batch of a partition not in the transaction gets it; older
/// clients get INVALID_TXN_STATE.
const TRANSACTION_ABORTABLE_MIN_VERSION: i16 = 11;
/// How many refused records one response lists in all (each batch lists at most
/// `strom_log::RECORD_ERRORS_LISTED_MAX`): a request of many small compressed batches of
/// keyless records must not make a response of millions of messages. A record past the
/// budget is still refused with its batch; clients report it as part of a batch with
/// invalid records instead of by its own error.
const RECORD_ERRORS_PER_RESPONSE_MAX: usize = 10_000;
/// The largest batch appended on the request's task rather than on the blocking pool.
const INLINE_APPEND_MAX_BYTES: usize = 64 * 1024;
/// The longest an `acks=all` produce waits for its followers, whatever its `timeout_ms`.
const PRODUCE_TIMEOUT_MAX_MS: u64 = 300_000;

/// Appends whose answer waits (for an fsync, or for the high watermark), with where each
/// partition's answer sits in the response.
#[derive(Debug, Default)]
struct PendingWaits {
    waits: Vec<PendingWait>,
    version: i16,
    /// What remains of the response's budget of listed record errors.
    record_errors_left: usize,
}

#[derive(Debug)]
struct PendingWait {
    partition: Arc<Partition>,
    end_offset: i64,
    /// `acks=all`: the leader epoch the append was made in.
    replicated_in: Option<i32>,
    /// Sync-on-commit: the local fsync comes first.
    sync_local: bool,
    topic_slot: usize,
    partition_slot: usize,
}

/// Finishes the waits `handle` left, and turns the answer of a partition whose wait failed
/// into its error.
async fn finish_waits(
    replicas: Arc<ReplicaManager>,
    pending: PendingWaits,
    deadline: Instant,
    mut response: ResponseKind,
) -> ResponseKind {
    for wait in pending.waits {
        let Err(failure) = finish_one(&replicas, &wait, deadline).await else {
            continue;
        };
        if let ResponseKind::Produce(produce) = &mut response {
            let slot = produce
                .responses
                .get_mut(wait.topic_slot)
                .and_then(|t| t.partition_responses.get_mut(wait.partition_slot));
            if let Some(slot) = slot {
                let index = slot.index;
                *slot = failure.response(pending.version, &mut 0).with_index(index);
            }
        }
    }
    response
}

async fn finish_one(
    replicas: &ReplicaManager,
    wait: &PendingWait,
    deadline: Instant,
) -> Result<(), Failure> {
    let partition = &wait.partition;
    if wait.sync_local {
        match replicas.sync_local(partition, wait.end_offset).await {
            Ok(()) => {}
            Err(CommitError::Log(log_error)) => return Err(log_failure(partition, &log_error)),
            Err(CommitError::ShuttingDown) => {
                return Err(error(ErrorCode::NOT_LEADER_OR_FOLLOWER, None))
            }
        }
    }
    match wait.replicated_in {
        Some(epoch) => wait_replicated(partition, wait.end_offset, epoch, deadline).await,
        None => Ok(()),
    }
}

/// Kafka's delayed produce: waits until the high watermark covers `end_offset` (bounded by
/// the request's timeout), then answers as `checkEnoughReplicasReachOffset` does.
async fn wait_replicated(
    partition: &Partition,
    end_offset: i64,
    epoch: i32,
    deadline: Instant,
) -> Result<(), Failure> {
    let mut progress = partition.progress();
    loop {
        match partition.ack_status(end_offset, epoch) {
            None => return Err(error(ErrorCode::NOT_LEADER_OR_FOLLOWER, None)),
            Some(AckStatus::Committed) => return Ok(()),
            Some(AckStatus::NotEnoughReplicasAfterAppend) => {
                return Err(error(
                    ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                    Some("the ISR shrank below min.insync.replicas after the append".into()),
                ))
            }
            Some(AckStatus::Waiting) => {}
        }
        tokio::select! {
            changed = progress.changed() => {
                if changed.is_err() {
                    return Err(error(ErrorCode::NOT_LEADER_OR_FOLLOWER, None));
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(error(
                    ErrorCode::REQUEST_TIMED_OUT,
                    Some("the in-sync replicas did not confirm the append in time".into()),
                ));
            }
        }
    }
}

pub(super) async fn handle(
    context: &BrokerContext,
    request: ProduceRequest,
    version: i16,
) -> ResponseKind {
    let acks_valid = matches!(request.acks, -1..=1);
    let timeout_ms = u64::try_from(request.timeout_ms)
        .unwrap_or(0)
        .min(PRODUCE_TIMEOUT_MAX_MS);
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    let transactional_id = request.transactional_id.as_ref().map(|t| t.0.to_string());
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut pending = PendingWaits {
        version,
        record_errors_left: RECORD_ERRORS_PER_RESPONSE_MAX,
        ..PendingWaits::default()
    };
    for (topic_slot, topic) in request.topic_data.into_iter().enumerate() {
        let mut produced = Produced {
            topic_slot,
            acks: request.acks,
            transactional_id: transactional_id.as_deref(),
            pending: &mut pending,
        };
        let response = produce_topic(context, topic, acks_valid, version, &mut produced).await;
        responses.push(response);
    }
    let response = ResponseKind::Produce(ProduceResponse::default().with_responses(responses));
    if pending.waits.is_empty() {
        return response;
    }
    let replicas = Arc::clone(&context.replicas);
    if connection::pipelining() {
        connection::defer(Box::new(move |response| {
            Box::pin(finish_waits(replicas, pending, deadline, response))
        }));
        response
    } else {
        finish_waits(replicas, pending, deadline, response).await
    }
}

/// Where `produce_topic` records what it appended.
struct Produced<'a> {
    topic_slot: usize,
    acks: i16,
    /// The request's transactional id (KIP-890 verification of transactional batches).
    transactional_id: Option<&'a str>,
    pending: &'a mut PendingWaits,
}

async fn produce_topic(
    context: &BrokerContext,
    topic: TopicProduceData,
    acks_valid: bool,
    version: i16,
    produced: &mut Produced<'_>,
) -> TopicProduceResponse {
    let image = context.metadata.image();
    let by_id = version >= TOPIC_ID_MIN_VERSION;
    let found = if by_id {
        image.topic_by_id(topic.topic_id)
    } else {
        image.topic_by_name(&topic.name.0)
    };
    let missing = if by_id {
        ErrorCode::UNKNOWN_TOPIC_ID
    } else {
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
    };
    let topic_id = found.map(|t| t.topic_id);
    // Only the group coordinator writes `__consumer_offsets` (Kafka refuses clients with
    // INVALID_TOPIC_EXCEPTION): its loader trusts what it reads there.
    let internal = found
        .map(|t| t.name.as_str())
        .filter(|name| *name == OFFSETS_TOPIC);
    let mut partitions = Vec::with_capacity(topic.partition_data.len());
    for data in topic.partition_data {
        let index = data.index;
        let outcome = match (acks_valid, topic_id) {
            (false, _) => Err(error(ErrorCode::INVALID_REQUIRED_ACKS, None)),
            (true, None) => Err(error(missing, None)),
            (true, Some(_)) if internal.is_some() => Err(error(
                ErrorCode::INVALID_TOPIC_EXCEPTION,
                internal.map(|name| format!("Cannot append to internal topic {name}")),
            )),
            (true, Some(topic_id)) => {
                let tp = TopicIdPartition {
                    topic_id,
                    partition: index,
                };
                let name = found.map_or("", |t| t.name.as_str());
                let verified = verify_transactional(
                    context,
                    &image,
                    tp,
                    name,
                    &data,
                    produced.transactional_id,
                    version,
                )
                .await;
                match verified {
                    Err(failure) => Err(failure),
                    Ok(verification) => {
                        append(context, &image, tp, data, produced.acks, verification).await
                    }
                }
            }
        };
        partitions.push(
            match outcome {
                Ok((response, wait)) => {
                    if let Some(wait) = wait {
                        produced.pending.waits.push(PendingWait {
                            topic_slot: produced.topic_slot,
                            partition_slot: partitions.len(),
                            ..wait
                        });
                    }
                    response
                }
                Err(failure) => failure.response(version, &mut produced.pending.record_errors_left),
            }
            .with_index(index),
        );
    }
    let response = TopicProduceResponse::default().with_partition_responses(partitions);
    if by_id {
        response.with_topic_id(topic.topic_id)
    } else {
        response.with_name(topic.name)
    }
}

/// A partition's refusal.
struct Failure {
    code: ErrorCode,
    message: Option<String>,
    /// Kafka's per-record errors, when the log refused records one by one.
    records: Option<RejectedRecords>,
}

/// The records a batch was refused for, and the partition they were sent to (for Kafka's
/// messages, which name it).
struct RejectedRecords {
    errors: RecordErrors,
    partition: String,
}

fn error(code: ErrorCode, message: Option<String>) -> Failure {
    Failure {
        code,
        message,
        records: None,
    }
}

impl Failure {
    /// The partition's answer. `record_errors_left` is what remains of the response's
    /// budget of listed record errors ([`RECORD_ERRORS_PER_RESPONSE_MAX`]).
    fn response(self, version: i16, record_errors_left: &mut usize) -> PartitionProduceResponse {
        let response = PartitionProduceResponse::default()
            .with_error_code(self.code.code())
            .with_base_offset(-1)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(-1);
        if version < RECORD_ERRORS_MIN_VERSION {
            return response;
        }
        let record_errors = self
            .records
            .as_ref()
            .map(|r| record_errors(r, record_errors_left))
            .unwrap_or_default();
        response
            .with_record_errors(record_errors)
            .with_error_message(self.message.map(str_bytes))
    }
}

/// Kafka's `record_errors`: each listed record with its message, in batch order, within
/// what is left of the response's budget. A keyless record's message is the same for every
/// record of the partition: it is built once and shared.
fn record_errors(rejected: &RejectedRecords, left: &mut usize) -> Vec<BatchIndexAndErrorMessage> {
    let listed = rejected.errors.listed();
    let take = listed.len().min(*left);
    *left -= take;
    let mut shared: Option<StrBytes> = None;
    listed
        .iter()
        .take(take)
        .filter_map(|e| {
            let batch_index = i32::try_from(e.record_index).ok()?;
            let message = match e.reason {
                RecordErrorReason::NoKey => shared
                    .get_or_insert_with(|| str_bytes(e.message(&rejected.partition)))
                    .clone(),
                _ => str_bytes(e.message(&rejected.partition)),
            };
            Some(
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(batch_index)
                    .with_batch_index_error_message(Some(message)),
            )
        })
        .collect()
}

/// KIP-890 part 1 (`transaction.partition.verification.enable`, on by default, as in Kafka):
/// a transactional batch is appended only if the transaction coordinator
/// confirms that its partition is in the producer's ongoing transaction (otherwise
/// TRANSACTION_ABORTABLE from Produce v11, INVALID_TXN_STATE before; coordinator trouble is
/// NOT_ENOUGH_REPLICAS, retriable). A transactional batch
/// without a transactional id is refused as Kafka refuses it. The coordinator is asked once
/// per producer, transaction and partition, as Kafka asks (its `VerificationGuard`): before
/// asking, the partition hands out a guard (`Partition::start_verification`), and the
/// append, under the lock every marker takes, requires the transaction already open here at
/// the batch's epoch or the guard still the producer's; a marker (the end of the
/// transaction) or a transactional append clears it. So once a transaction's first batch is
/// appended here, its later batches skip the coordinator, and a batch racing the end of its
/// transaction (a zombie's, or one the coordinator verified just before the end) is refused
/// with INVALID_TXN_STATE instead of opening a transaction the coordinator has ended.
/// KIP-890 part 2: a Produce v12+ comes from a transaction version 2 producer, which sends
/// no AddPartitionsToTxn: the coordinator is asked to add the partition instead (`add`),
/// whether or not verification is enabled (without it the transaction would miss the
/// partition and its marker); its epoch changes with every transaction, so its first batch
/// of each transaction here is asked about (and adds the partition).
/// `acl` adds the TRANSACTIONAL_ID WRITE check here (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
async fn verify_transactional(
    context: &BrokerContext,
    image: &MetadataImage,
    tp: TopicIdPartition,
    topic: &str,
    data: &PartitionProduceData,
    transactional_id: Option<&str>,
    version: i16,
) -> Result<Verification, Failure> {
    let add = version >= IMPLICIT_ADD_MIN_VERSION;
    let Some(records) = data.records.as_ref() else {
        return Ok(Verification::Unchecked);
    };
    let Some(Ok((header, _))) = strom_records::batches(records).next() else {
        return Ok(Verification::Unchecked);
    };
    if !header.is_transactional() {
        return Ok(Verification::Unchecked);
    }
    let Some(transactional_id) = transactional_id else {
        return Err(error(
            ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            Some("transactional records need the request's transactional id".into()),
        ));
    };
    if !add && !context.config.transactions.partition_verification_enable {
        return Ok(Verification::Unchecked);
    }
    let partition = leader_replica(context, image, tp).map_err(|code| error(code, None))?;
    let verification = partition
        .start_verification(header.producer_id, header.producer_epoch, now_ms())
        .ok_or_else(|| {
            error(
                ErrorCode::NOT_ENOUGH_REPLICAS,
                Some(format!(
                    "partition {topic}-{} has too many transactional batches waiting for \
                     verification; retry",
                    data.index
                )),
            )
        })?;
    if verification == Verification::Ongoing {
        return Ok(verification);
    }
    let tp = strom_txn::TopicPartition::new(topic.to_string(), data.index);
    let code = crate::txns::verify_partition(
        context,
        transactional_id,
        header.producer_id,
        header.producer_epoch,
        tp,
        add,
        version >= TRANSACTION_ABORTABLE_MIN_VERSION,
    )
    .await;
    let message = match code {
        ErrorCode::NONE => return Ok(verification),
        ErrorCode::INVALID_TXN_STATE | ErrorCode::TRANSACTION_ABORTABLE => format!(
            "partition {topic}-{} is not in the ongoing transaction of {transactional_id}",
            data.index
        ),
        _ => {
            format!("the transaction coordinator of {transactional_id} could not verify the batch")
        }
    };
    Err(error(code, Some(message)))
}

/// A partition's answer, and the wait left before it may be sent.
type AppendOutcome = (PartitionProduceResponse, Option<PendingWait>);

async fn append(
    context: &BrokerContext,
    image: &MetadataImage,
    tp: TopicIdPartition,
    data: PartitionProduceData,
    acks: i16,
    verification: Verification,
) -> Result<AppendOutcome, Failure> {
    let partition = leader_replica(context, image, tp).map_err(|code| error(code, None))?;
    let leader_epoch = leader_epoch(image, tp);
    let Some(records) = data.records.filter(|r| !r.is_empty()) else {
        return Err(error(
            ErrorCode::INVALID_RECORD,
            Some("the request holds no record batch".into()),
        ));
    };
    let sync_on_commit = context.config.sync_on_commit();
    // Under sync-on-commit the fsync wait happens after the append, off any thread
    // (`ReplicaManager::sync_local`); page-cache mode has nothing to wait for locally.
    let commit = if sync_on_commit {
        Commit::Later
    } else {
        Commit::Now
    };
    let acks_all = acks == -1;
    let appended = append_bytes(
        &partition,
        records,
        leader_epoch,
        commit,
        acks_all,
        verification,
    )
    .await?;
    let (response, end_offset) = match appended {
        Appended::New(info) => (
            PartitionProduceResponse::default()
                .with_base_offset(info.first_offset)
                .with_log_append_time_ms(info.log_append_time_ms)
                .with_log_start_offset(info.log_start_offset),
            info.last_offset.saturating_add(1),
        ),
        Appended::Duplicate(meta) => (
            PartitionProduceResponse::default()
                .with_base_offset(meta.first_offset)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(partition.log.log_start_offset()),
            meta.last_offset.saturating_add(1),
        ),
    };
    let replicated_in = if acks_all {
        match partition.ack_status(end_offset, leader_epoch) {
            Some(AckStatus::Committed) => None,
            Some(AckStatus::NotEnoughReplicasAfterAppend) => {
                return Err(error(ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND, None))
            }
            Some(AckStatus::Waiting) => Some(leader_epoch),
            None => return Err(error(ErrorCode::NOT_LEADER_OR_FOLLOWER, None)),
        }
    } else {
        None
    };
    // Under sync-on-commit every append is fsynced, whatever its acks: the high watermark
    // (what consumers see) never passes what the leader has on disk.
    let sync_local = sync_on_commit;
    let wait = (sync_local || replicated_in.is_some()).then(|| PendingWait {
        partition: Arc::clone(&partition),
        end_offset,
        replicated_in,
        sync_local,
        topic_slot: 0,
        partition_slot: 0,
    });
    Ok((response, wait))
}

/// The answer to an append the partition refused or failed.
fn refusal(partition: &Partition, refused: AppendError) -> Failure {
    let code = match refused {
        AppendError::Log(log_error) => return log_failure(partition, &log_error),
        AppendError::OutOfOrderSequence { .. } => ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
        AppendError::StaleEpoch { .. } => ErrorCode::INVALID_PRODUCER_EPOCH,
        AppendError::MultipleBatches => ErrorCode::INVALID_RECORD,
        AppendError::NotLeader { .. } => ErrorCode::NOT_LEADER_OR_FOLLOWER,
        AppendError::NotEnoughReplicas { .. } => ErrorCode::NOT_ENOUGH_REPLICAS,
        AppendError::NotVerified { .. } => ErrorCode::INVALID_TXN_STATE,
    };
    error(code, Some(refused.to_string()))
}

/// Appends on the request's own task when the batch is small: a record walk over at most
/// [`INLINE_APPEND_MAX_BYTES`] and a page-cache write under a mutex nobody holds across an
/// fsync, cheaper than the two thread hand-offs of `spawn_blocking`. Larger batches,
/// compressed ones (their record walk decompresses), and appends that must fsync first (the
/// first after a clean open) or owe one after (a roll, `flush.messages`), go to the
/// blocking pool. Either way the records are written from the request's buffer
/// as they arrived (`Partition::append_shared`): no copy of them is made.
async fn append_bytes(
    partition: &Arc<Partition>,
    records: Bytes,
    leader_epoch: i32,
    commit: Commit,
    acks_all: bool,
    verification: Verification,
) -> Result<Appended, Failure> {
    let now = now_ms();
    if records.len() <= INLINE_APPEND_MAX_BYTES {
        let batch = ProducerBatch {
            bytes: &records,
            leader_epoch,
            acks_all,
            verification,
        };
        let tried = partition.append_shared(batch, commit, now, false);
        if let Some((appended, flush_due)) = tried.map_err(|e| refusal(partition, e))? {
            // Under sync-on-commit the commit's fsync covers what a roll left.
            if flush_due && commit == Commit::Now {
                let flushing = Arc::clone(partition);
                tokio::task::spawn_blocking(move || flushing.log.flush_after_append(now))
                    .await
                    .map_err(|e| join_failure(&e))?
                    .map_err(|e| log_failure(partition, &e))?;
            }
            return Ok(appended);
        }
    }
    let appending = Arc::clone(partition);
    let appended = tokio::task::spawn_blocking(move || {
        let batch = ProducerBatch {
            bytes: &records,
            leader_epoch,
            acks_all,
            verification,
        };
        appending.append_shared(batch, commit, now, true)
    })
    .await
    .map_err(|e| join_failure(&e))?
    .map_err(|e| refusal(partition, e))?;
    // A blocking append never declines.
    appended.map(|(appended, _)| appended).ok_or_else(|| {
        error(
            ErrorCode::UNKNOWN_SERVER_ERROR,
            Some("the append was declined".into()),
        )
    })
}

/// A blocking task that did not finish (it panicked, or the runtime is shutting down).
fn join_failure(join_error: &tokio::task::JoinError) -> Failure {
    error(
        ErrorCode::UNKNOWN_SERVER_ERROR,
        Some(join_error.to_string()),
    )
}

fn log_failure(partition: &Partition, log_error: &LogError) -> Failure {
    let topic = partition.topic.as_str();
    let code = ErrorCode(log_error.kafka_error_code());
    if matches!(
        log_error,
        LogError::DiskFull { .. } | LogError::Failed { .. }
    ) {
        // The log said so when it went read-only or failed; not once per request.
        tracing::debug!(topic, error = %log_error, "append refused");
    } else if code == ErrorCode::KAFKA_STORAGE_ERROR {
        tracing::error!(topic, error = %log_error, "append failed");
    } else {
        tracing::debug!(topic, error = %log_error, "append refused");
    }
    // Records refused one by one are listed, with Kafka's messages; any other refusal
    // (a broken record structure included, as in Kafka) names no record.
    if let LogError::RecordsRejected { errors, .. } = log_error {
        let name = format!("{topic}-{}", partition.tp.partition);
        return Failure {
            code,
            message: Some(errors.summary(&name)),
            records: Some(RejectedRecords {
                errors: errors.clone(),
                partition: name,
            }),
        };
    }
    error(code, Some(log_error.to_string()))
}
