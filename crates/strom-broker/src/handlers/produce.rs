//! Produce: acks 0, 1 and all; per-partition errors; batches validated by the log. Under
//! `strom.log.durability=sync-on-commit` every append is fsynced before it is answered (and
//! before consumers see it); under Kafka's default page-cache mode the answer follows the
//! write, as a single-replica Kafka does. An `acks=0` request is never answered (the
//! connection layer drops the response).
//!
//! On a connection that pipelines (see `connection.rs`), under sync-on-commit the handler
//! appends and returns at once, handing the fsync wait ("commit") to the connection as a
//! finisher that it runs before it writes the response. Appends still happen one request at a
//! time, in arrival order; only the waits overlap, so a producer's pipelined requests share
//! fsyncs (group commit within one connection, not only across connections).

use std::sync::Arc;

use bytes::Bytes;

use strom_log::{LogError, RecordErrorReason, RecordErrors};
use strom_meta::{MetadataImage, TopicIdPartition};
use strom_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use strom_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use strom_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use strom_protocol::{ErrorCode, StrBytes};

use super::{leader_epoch, leader_replica, str_bytes};
use crate::connection;
use crate::groups::OFFSETS_TOPIC;
use crate::metadata::now_ms;
use crate::replicas::{AppendError, Appended, Commit, Partition, ReplicaManager};
use crate::server::BrokerContext;
use crate::syncer::CommitError;

/// The first version that addresses topics by id.
const TOPIC_ID_MIN_VERSION: i16 = 13;
/// The first version with per-batch record errors and an error message.
const RECORD_ERRORS_MIN_VERSION: i16 = 8;
/// How many refused records one response lists in all (each batch lists at most
/// `strom_log::RECORD_ERRORS_LISTED_MAX`): a request of many small compressed batches of
/// keyless records must not make a response of millions of messages. A record past the
/// budget is still refused with its batch; clients report it as part of a batch with
/// invalid records instead of by its own error.
const RECORD_ERRORS_PER_RESPONSE_MAX: usize = 10_000;
/// The largest batch appended on the request's task rather than on the blocking pool.
const INLINE_APPEND_MAX_BYTES: usize = 64 * 1024;

/// Appends whose commit (fsync, then high watermark) is still to be done, with where each
/// partition's answer sits in the response.
#[derive(Debug, Default)]
struct PendingCommits {
    commits: Vec<PendingCommit>,
    /// Whether a high watermark moved (page-cache mode): fetches waiting for data are woken.
    appended: bool,
    version: i16,
    /// What remains of the response's budget of listed record errors.
    record_errors_left: usize,
}

#[derive(Debug)]
struct PendingCommit {
    partition: Arc<Partition>,
    end_offset: i64,
    topic_slot: usize,
    partition_slot: usize,
}

/// Finishes the commits `handle` left: waits for the fsyncs that cover them (shared with
/// every concurrent commit, see `syncer.rs`), after which the high watermarks have moved,
/// and turns the answer of a partition whose fsync failed into an error.
async fn finish_commits(
    replicas: Arc<ReplicaManager>,
    pending: PendingCommits,
    mut response: ResponseKind,
) -> ResponseKind {
    for commit in pending.commits {
        let failure = match replicas.commit(&commit.partition, commit.end_offset).await {
            Ok(()) => continue,
            Err(CommitError::Log(log_error)) => log_failure(&commit.partition, &log_error),
            Err(CommitError::ShuttingDown) => error(ErrorCode::NOT_LEADER_OR_FOLLOWER, None),
        };
        if let ResponseKind::Produce(produce) = &mut response {
            let slot = produce
                .responses
                .get_mut(commit.topic_slot)
                .and_then(|t| t.partition_responses.get_mut(commit.partition_slot));
            if let Some(slot) = slot {
                let index = slot.index;
                *slot = failure.response(pending.version, &mut 0).with_index(index);
            }
        }
    }
    response
}

pub(super) async fn handle(
    context: &BrokerContext,
    request: ProduceRequest,
    version: i16,
) -> ResponseKind {
    let acks_valid = matches!(request.acks, -1..=1);
    let sync_on_commit = context.config.sync_on_commit();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut pending = PendingCommits {
        version,
        record_errors_left: RECORD_ERRORS_PER_RESPONSE_MAX,
        ..PendingCommits::default()
    };
    for (topic_slot, topic) in request.topic_data.into_iter().enumerate() {
        let mut produced = Produced {
            topic_slot,
            pending: &mut pending,
        };
        let response = produce_topic(context, topic, acks_valid, version, &mut produced).await;
        responses.push(response);
    }
    let response = ResponseKind::Produce(ProduceResponse::default().with_responses(responses));
    if !sync_on_commit {
        if pending.appended {
            context.replicas.notify_appended();
        }
        return response;
    }
    let replicas = Arc::clone(&context.replicas);
    if connection::pipelining() {
        connection::defer(Box::new(move |response| {
            Box::pin(finish_commits(replicas, pending, response))
        }));
        response
    } else {
        finish_commits(replicas, pending, response).await
    }
}

/// Where `produce_topic` records what it appended.
struct Produced<'a> {
    topic_slot: usize,
    pending: &'a mut PendingCommits,
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
                append(context, &image, tp, data).await
            }
        };
        partitions.push(
            match outcome {
                Ok((response, commit)) => {
                    produced.pending.appended = true;
                    if let Some((partition, end_offset)) = commit {
                        produced.pending.commits.push(PendingCommit {
                            partition,
                            end_offset,
                            topic_slot: produced.topic_slot,
                            partition_slot: partitions.len(),
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

/// A partition's answer, and the commit left to do under sync-on-commit.
type AppendOutcome = (PartitionProduceResponse, Option<(Arc<Partition>, i64)>);

async fn append(
    context: &BrokerContext,
    image: &MetadataImage,
    tp: TopicIdPartition,
    data: PartitionProduceData,
) -> Result<AppendOutcome, Failure> {
    let partition = leader_replica(context, image, tp).map_err(|code| error(code, None))?;
    let leader_epoch = leader_epoch(image, tp);
    let Some(records) = data.records.filter(|r| !r.is_empty()) else {
        return Err(error(
            ErrorCode::INVALID_RECORD,
            Some("the request holds no record batch".into()),
        ));
    };
    // Under sync-on-commit the fsync wait happens after the append, off any thread
    // (`ReplicaManager::commit`); page-cache mode commits at once.
    let commit = if context.config.sync_on_commit() {
        Commit::Later
    } else {
        Commit::Now
    };
    let appended = append_bytes(&partition, records, leader_epoch, commit).await?;
    let later =
        |end_offset: i64| (commit == Commit::Later).then(|| (partition.clone(), end_offset));
    Ok(match appended {
        Appended::New(info) => (
            PartitionProduceResponse::default()
                .with_base_offset(info.first_offset)
                .with_log_append_time_ms(info.log_append_time_ms)
                .with_log_start_offset(info.log_start_offset),
            later(info.last_offset.saturating_add(1)),
        ),
        Appended::Duplicate(meta) => (
            PartitionProduceResponse::default()
                .with_base_offset(meta.first_offset)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(partition.log.log_start_offset()),
            later(meta.last_offset.saturating_add(1)),
        ),
    })
}

/// The answer to an append the partition refused or failed.
fn refusal(partition: &Partition, refused: AppendError) -> Failure {
    let code = match refused {
        AppendError::Log(log_error) => return log_failure(partition, &log_error),
        AppendError::OutOfOrderSequence { .. } => ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
        AppendError::StaleEpoch { .. } => ErrorCode::INVALID_PRODUCER_EPOCH,
        AppendError::MultipleBatches => ErrorCode::INVALID_RECORD,
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
) -> Result<Appended, Failure> {
    let now = now_ms();
    if records.len() <= INLINE_APPEND_MAX_BYTES {
        let tried = partition.append_shared(&records, leader_epoch, commit, now, false);
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
        appending.append_shared(&records, leader_epoch, commit, now, true)
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
