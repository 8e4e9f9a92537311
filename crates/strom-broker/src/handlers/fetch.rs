//! Fetch, for consumers and for followers. A consumer gets whole batches from the requested
//! offset up to the high watermark (`read_committed`: up to the last stable offset, with the
//! aborted transactions of that range), at least one batch when there is data, within
//! `max_bytes` and each partition's max bytes, in a long poll woken when a high watermark
//! moves that honours `max_wait_ms` (capped by `strom.fetch.wait.max.ms`) and `min_bytes`.
//! A follower (`replica_id` before v15, `ReplicaState` from v15) gets batches up to the log
//! end offset, in a long poll woken by appends; before anything is read its last fetched
//! epoch is checked against this leader's epoch cache (a diverging epoch is answered with
//! no records, and the follower truncates), then its progress moves (the high watermark and
//! the ISR may follow: `partition.rs`). A consumer that sends its last fetched epoch gets
//! the same diverging-epoch answer, as from Kafka. Only the leader serves either: a follower's replica
//! answers NOT_LEADER_OR_FOLLOWER (no fetch from followers, KIP-392). Topics by name
//! before v13, by id from v13. No fetch sessions: every answer has session id 0, which tells
//! clients to send full requests (Kafka's sessionless mode). Records on disk are not copied:
//! the connection sends them with `sendfile` (see `sendfile.rs`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strom_log::LogError;
use strom_meta::{MetadataImage, TopicIdPartition};
use strom_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use strom_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset as WireEpochEndOffset, FetchableTopicResponse, PartitionData,
};
use strom_protocol::messages::{FetchRequest, FetchResponse, ResponseKind};
use strom_protocol::ErrorCode;
use strom_replica::{diverging_epoch, EpochEndOffset, FetchRefusal, FollowerFetch};
use tokio::time::Instant;

use super::{check_leader_epoch, leader_epoch, leader_replica};
use crate::metadata::now_ms;
use crate::partition::Partition;
use crate::sendfile::{new_marker, FileRecords};
use crate::server::BrokerContext;
use crate::throttle::{self, Side};

/// The first version that addresses topics by id.
const TOPIC_ID_MIN_VERSION: i16 = 13;
/// The first version with fetch sessions (and a top-level error code).
const SESSION_MIN_VERSION: i16 = 7;
/// The first version that names the follower in `ReplicaState` (with its broker epoch).
const REPLICA_STATE_MIN_VERSION: i16 = 15;
/// Kafka's `isolation_level` for read_committed.
const READ_COMMITTED: i8 = 1;

/// A follower's fetch: who it is.
#[derive(Clone, Copy, Debug)]
struct Replica {
    id: i32,
    /// Its broker epoch (v15+), -1 if not sent.
    broker_epoch: i64,
}

/// One partition of the request, resolved against the image.
struct Planned {
    topic_slot: usize,
    partition_index: i32,
    target: Result<Arc<Partition>, ErrorCode>,
    fetch_offset: i64,
    partition_max_bytes: u64,
    /// Consumers read up to the high watermark, followers up to the log end.
    max_offset: MaxOffset,
    /// Where the follower's log parts from this one: answered without records.
    diverging: Option<EpochEndOffset>,
    /// A follower outside the ISR fetching a partition `leader.replication.throttled.replicas`
    /// lists for this broker: its bytes count against `leader.replication.throttled.rate`,
    /// and it gets no records while that rate is exceeded (`throttle.rs`).
    throttled: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MaxOffset {
    HighWatermark,
    LogEnd,
}

/// The response, and the records to splice into it from segment files (`sendfile`).
pub(super) async fn handle(
    context: &BrokerContext,
    request: FetchRequest,
    version: i16,
) -> (ResponseKind, Vec<FileRecords>) {
    if version >= SESSION_MIN_VERSION && request.session_id != 0 {
        let response =
            FetchResponse::default().with_error_code(ErrorCode::FETCH_SESSION_ID_NOT_FOUND.code());
        return (ResponseKind::Fetch(response), Vec::new());
    }
    let replica = replica_of(&request, version);
    let wait_ms = u64::try_from(request.max_wait_ms)
        .unwrap_or(0)
        .min(context.config.fetch_wait_max_ms);
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let min_bytes = u64::try_from(request.min_bytes).unwrap_or(0);
    let max_bytes = u64::try_from(request.max_bytes)
        .unwrap_or(0)
        .min(context.config.fetch_max_bytes);
    let read_committed = request.isolation_level == READ_COMMITTED;
    // Consumers wait for the high watermark to move, followers for the log to grow.
    let mut wake = match replica {
        Some(_) => context.replicas.subscribe_appends(),
        None => context.replicas.subscribe_high_watermarks(),
    };
    let mut shutdown = context.shutdown.clone();
    let mut first = true;
    let meter = &context.replicas.fetchers.quotas.leader;
    loop {
        wake.borrow_and_update();
        let limit = replica.and_then(|_| {
            throttle::rate_limit(
                &context.metadata.image(),
                context.config.node_id,
                Side::Leader,
            )
        });
        let plans = plan(
            context,
            &request.topics,
            version,
            replica,
            first,
            limit.is_some(),
        );
        let diverged = plans.iter().any(|p| p.diverging.is_some());
        first = false;
        let hold_throttled =
            limit.is_some_and(|limit| meter.exceeds(limit, std::time::Instant::now()));
        let (partitions, files, total_bytes, any_error, throttled_bytes) =
            read(plans, max_bytes, read_committed, hold_throttled).await;
        let done = any_error
            || diverged
            || total_bytes >= min_bytes
            || request.topics.is_empty()
            || Instant::now() >= deadline
            || *shutdown.borrow();
        if done {
            meter.record(throttled_bytes, std::time::Instant::now());
            let response = ResponseKind::Fetch(response(&request.topics, partitions, version));
            return (response, files);
        }
        tokio::select! {
            _ = wake.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }
}

/// The follower behind a replica fetch, if it is one.
fn replica_of(request: &FetchRequest, version: i16) -> Option<Replica> {
    let (id, broker_epoch) = if version >= REPLICA_STATE_MIN_VERSION {
        (
            request.replica_state.replica_id.0,
            request.replica_state.replica_epoch,
        )
    } else {
        (request.replica_id.0, -1)
    };
    (id >= 0).then_some(Replica { id, broker_epoch })
}

/// Resolves every partition against the latest image. On a follower's first pass this is
/// also where its last fetched epoch is checked and its progress recorded (once per
/// request, as Kafka does, however long the poll then waits).
fn plan(
    context: &BrokerContext,
    topics: &[FetchTopic],
    version: i16,
    replica: Option<Replica>,
    first: bool,
    leader_throttle: bool,
) -> Vec<Planned> {
    let image = context.metadata.image();
    let node = context.config.node_id;
    let by_id = version >= TOPIC_ID_MIN_VERSION;
    let mut plans = Vec::new();
    let now = now_ms();
    for (topic_slot, topic) in topics.iter().enumerate() {
        let found = if by_id {
            image.topic_by_id(topic.topic_id)
        } else {
            image.topic_by_name(&topic.topic.0)
        };
        for p in &topic.partitions {
            let mut diverging = None;
            let throttled = match (found, replica) {
                (Some(t), Some(replica)) if leader_throttle => {
                    image
                        .partition(t.topic_id, p.partition)
                        .is_some_and(|state| !state.isr.contains(&replica.id))
                        && throttle::is_throttled(&image, &t.name, p.partition, node, Side::Leader)
                }
                _ => false,
            };
            let target =
                match found {
                    None if by_id => Err(ErrorCode::UNKNOWN_TOPIC_ID),
                    None => Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                    Some(t) => {
                        let tp = TopicIdPartition {
                            topic_id: t.topic_id,
                            partition: p.partition,
                        };
                        let epoch = leader_epoch(&image, tp);
                        match check_leader_epoch(p.current_leader_epoch, epoch) {
                            Some(code) => Err(code),
                            None => leader_replica(context, &image, tp).and_then(|partition| {
                                match replica {
                                    Some(replica) if first => follower_first_pass(
                                        &image, tp, &partition, replica, p, epoch, now,
                                    )
                                    .map(|found| {
                                        diverging = found;
                                        partition
                                    }),
                                    Some(replica) => {
                                        check_replica(&image, tp, replica).map(|()| partition)
                                    }
                                    None if first => {
                                        diverging = divergence(&partition, p);
                                        Ok(partition)
                                    }
                                    None => Ok(partition),
                                }
                            }),
                        }
                    }
                };
            plans.push(Planned {
                topic_slot,
                partition_index: p.partition,
                target,
                fetch_offset: p.fetch_offset,
                partition_max_bytes: u64::try_from(p.partition_max_bytes).unwrap_or(0),
                max_offset: if replica.is_some() {
                    MaxOffset::LogEnd
                } else {
                    MaxOffset::HighWatermark
                },
                diverging,
                throttled,
            });
        }
    }
    plans
}

/// Where the fetcher's log parts from this one, when it sent its last fetched epoch (a
/// follower always does; a consumer may, and gets the same answer, as from Kafka).
fn divergence(partition: &Partition, request: &FetchPartition) -> Option<EpochEndOffset> {
    if request.last_fetched_epoch < 0 {
        return None;
    }
    let answer = partition
        .log
        .end_offset_for_epoch(request.last_fetched_epoch)
        .map_or(EpochEndOffset::UNDEFINED, |e| EpochEndOffset {
            epoch: e.epoch,
            end_offset: e.start_offset,
        });
    diverging_epoch(request.last_fetched_epoch, request.fetch_offset, answer)
}

/// Kafka's checks of the fetching broker: a replica of the partition, and not a previous
/// incarnation of one (its broker epoch, when sent, is not older than the registered one).
fn check_replica(
    image: &MetadataImage,
    tp: TopicIdPartition,
    replica: Replica,
) -> Result<(), ErrorCode> {
    let is_replica = image
        .partition(tp.topic_id, tp.partition)
        .is_some_and(|state| state.replicas.contains(&replica.id));
    let registered = image.broker(replica.id).map(|b| b.epoch);
    let stale = replica.broker_epoch >= 0 && registered.is_some_and(|e| e > replica.broker_epoch);
    if !is_replica || stale {
        return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
    }
    Ok(())
}

/// A follower's fetch as it arrives: its last fetched epoch against this log (the
/// diverging epoch, if they part), then the range of its offset, then its progress.
#[allow(clippy::too_many_arguments)]
fn follower_first_pass(
    image: &MetadataImage,
    tp: TopicIdPartition,
    partition: &Partition,
    replica: Replica,
    request: &FetchPartition,
    leader_epoch: i32,
    now_ms: i64,
) -> Result<Option<EpochEndOffset>, ErrorCode> {
    check_replica(image, tp, replica)?;
    if let Some(diverging) = divergence(partition, request) {
        return Ok(Some(diverging));
    }
    let log = &partition.log;
    if request.fetch_offset < log.log_start_offset() || request.fetch_offset > log.log_end_offset()
    {
        return Err(ErrorCode::OFFSET_OUT_OF_RANGE);
    }
    let fetch = FollowerFetch {
        replica_id: replica.id,
        fetch_offset: request.fetch_offset,
        log_start_offset: request.log_start_offset,
        broker_epoch: (replica.broker_epoch >= 0).then_some(replica.broker_epoch),
    };
    match partition.on_follower_fetch(fetch, leader_epoch, now_ms) {
        Ok(()) => Ok(None),
        Err(FetchRefusal::OffsetOutOfRange) => Err(ErrorCode::OFFSET_OUT_OF_RANGE),
        Err(FetchRefusal::NotReplica | FetchRefusal::StaleBrokerEpoch) => {
            Err(ErrorCode::NOT_LEADER_OR_FOLLOWER)
        }
    }
}

/// Reads every planned partition (blocking I/O off the runtime). Once `max_bytes` is used
/// up, later partitions answer without data; the first partition with data always gets at
/// least one whole batch, so a batch larger than the limits cannot stall a consumer.
/// What one read pass found: partitions in request order, records to splice, the bytes of
/// records in all, whether any partition has an error, and the bytes of throttled
/// partitions.
type ReadPass = (
    Vec<(usize, PartitionData)>,
    Vec<FileRecords>,
    u64,
    bool,
    u64,
);

/// `hold_throttled`: the leader throttle's rate is exceeded, so throttled partitions get
/// offsets and no records.
async fn read(
    plans: Vec<Planned>,
    max_bytes: u64,
    read_committed: bool,
    hold_throttled: bool,
) -> ReadPass {
    let result = tokio::task::spawn_blocking(move || {
        let mut budget = max_bytes;
        let mut total_bytes = 0u64;
        let mut throttled_bytes = 0u64;
        let mut any_error = false;
        let mut out = Vec::with_capacity(plans.len());
        let mut files = Vec::new();
        for plan in plans {
            let limit = budget.min(plan.partition_max_bytes);
            let hold = hold_throttled && plan.throttled;
            let (data, file) = read_one(&plan, limit, total_bytes == 0, read_committed, hold);
            let len = match &file {
                Some(file) => file.range.len_bytes,
                None => data.records.as_ref().map_or(0, |r| r.len() as u64),
            };
            files.extend(file);
            any_error |= data.error_code != 0;
            total_bytes += len;
            if plan.throttled {
                throttled_bytes += len;
            }
            budget = budget.saturating_sub(len);
            out.push((plan.topic_slot, data));
        }
        (out, files, total_bytes, any_error, throttled_bytes)
    })
    .await;
    result.unwrap_or_else(|error| {
        tracing::error!(%error, "fetch read task failed");
        (Vec::new(), Vec::new(), 0, true, 0)
    })
}

/// One partition's data. Records on a real file come back as a marker plus the file range
/// to `sendfile`; anything else is read into memory.
fn read_one(
    plan: &Planned,
    limit: u64,
    first: bool,
    read_committed: bool,
    hold: bool,
) -> (PartitionData, Option<FileRecords>) {
    let base = PartitionData::default()
        .with_partition_index(plan.partition_index)
        .with_records(Some(Bytes::new()))
        .with_aborted_transactions(read_committed.then(Vec::new));
    let partition = match &plan.target {
        Ok(partition) => partition,
        Err(code) => {
            let data = base
                .with_error_code(code.code())
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1);
            return (data, None);
        }
    };
    let log = &partition.log;
    let high_watermark = log.high_watermark();
    let last_stable_offset = partition.last_stable_offset();
    let base = base
        .with_high_watermark(high_watermark)
        .with_last_stable_offset(last_stable_offset)
        .with_log_start_offset(log.log_start_offset());
    if let Some(diverging) = plan.diverging {
        let epoch = WireEpochEndOffset::default()
            .with_epoch(diverging.epoch)
            .with_end_offset(diverging.end_offset);
        return (base.with_diverging_epoch(epoch), None);
    }
    // A partition past the response budget, or held back by the leader throttle, answers
    // with offsets only.
    if hold || (limit == 0 && !first) {
        return (base, None);
    }
    // read_committed consumers stop at the last stable offset and get the aborted
    // transactions of what this response carries (below).
    let committed_only = read_committed && matches!(plan.max_offset, MaxOffset::HighWatermark);
    let max_offset = match plan.max_offset {
        MaxOffset::HighWatermark if read_committed => last_stable_offset,
        MaxOffset::HighWatermark => high_watermark,
        MaxOffset::LogEnd => i64::MAX,
    };
    let read = log
        .read(plan.fetch_offset, limit.max(1), max_offset)
        .and_then(|info| match info.range {
            Some(range) if range.std_file().is_some() => Ok(Records::File(range)),
            Some(range) => range
                .read_bytes()
                .map(|bytes| Records::Memory(Bytes::from(bytes), Some(range.next_offset)))
                .map_err(|source| {
                    // A read I/O error fails the log (its directory goes offline).
                    log.read_failed(LogError::Io {
                        operation: "read",
                        path: range.path.clone(),
                        source,
                    })
                }),
            None => Ok(Records::Memory(Bytes::new(), None)),
        });
    // The aborted transactions of the range read, not of everything up to the LSO: the
    // search is bounded by the offset after the returned batches, as Kafka bounds it by
    // the fetch's upper bound offset, so a lagging consumer's fetch reads the indexes of
    // the segments it is served from and no further.
    let base = match &read {
        Ok(records) if committed_only => {
            let upper = records
                .next_offset()
                .map_or(plan.fetch_offset, |next| next.min(last_stable_offset));
            match aborted_transactions(partition, plan.fetch_offset, upper) {
                Ok(aborted) => base.with_aborted_transactions(Some(aborted)),
                Err(code) => return (base.with_error_code(code), None),
            }
        }
        _ => base,
    };
    match read {
        Ok(Records::Memory(bytes, _)) => (base.with_records(Some(bytes)), None),
        Ok(Records::File(range)) => {
            let marker = new_marker();
            let data = base.with_records(Some(Bytes::copy_from_slice(&marker)));
            (data, Some(FileRecords { marker, range }))
        }
        Err(error) => {
            let code = error.kafka_error_code();
            if matches!(error, LogError::Failed { .. }) {
                // A failed log serves only below its last fsync; it said why when it failed.
                tracing::debug!(topic = %partition.topic, %error, "fetch refused");
            } else if code == ErrorCode::KAFKA_STORAGE_ERROR.code() {
                tracing::error!(topic = %partition.topic, %error, "fetch read failed");
            }
            (base.with_error_code(code), None)
        }
    }
}

/// Where a partition's records come from (with, in memory, the offset after the last
/// batch read, if any was).
enum Records {
    Memory(Bytes, Option<i64>),
    File(strom_log::FileRange),
}

impl Records {
    /// The offset after the last batch read, if any was.
    fn next_offset(&self) -> Option<i64> {
        match self {
            Records::File(range) => Some(range.next_offset),
            Records::Memory(_, next) => *next,
        }
    }
}

/// The aborted transactions a read_committed fetch of `[from, upper)` must name.
fn aborted_transactions(
    partition: &Partition,
    from: i64,
    upper: i64,
) -> Result<Vec<AbortedTransaction>, i16> {
    if upper <= from {
        return Ok(Vec::new());
    }
    match partition.aborted_between(from, upper) {
        Ok(aborted) => Ok(aborted
            .into_iter()
            .map(|a| {
                AbortedTransaction::default()
                    .with_producer_id(a.producer_id.into())
                    .with_first_offset(a.first_offset)
            })
            .collect()),
        Err(error) => {
            tracing::error!(topic = %partition.topic, partition = partition.tp.partition,
                %error, "cannot read the aborted transactions of a read_committed fetch");
            Err(error.kafka_error_code())
        }
    }
}

fn response(
    topics: &[FetchTopic],
    partitions: Vec<(usize, PartitionData)>,
    version: i16,
) -> FetchResponse {
    let mut responses: Vec<FetchableTopicResponse> = topics
        .iter()
        .map(|t| {
            let response = FetchableTopicResponse::default();
            if version >= TOPIC_ID_MIN_VERSION {
                response.with_topic_id(t.topic_id)
            } else {
                response.with_topic(t.topic.clone())
            }
        })
        .collect();
    for (slot, data) in partitions {
        if let Some(topic) = responses.get_mut(slot) {
            topic.partitions.push(data);
        }
    }
    FetchResponse::default().with_responses(responses)
}
