//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3, v7+), earliest local (-4)
//! and by timestamp, bounded by the high watermark (the last stable offset is the same:
//! there are no transactions). A new leader answers latest with OFFSET_NOT_AVAILABLE
//! (retriable) until its high watermark reaches the start of its epoch (KIP-207), so that
//! latest never goes back across a leader change. A follower asking (`replica_id` >= 0,
//! when it fell out of range) gets the log end offset for latest. Version 0 is not served
//! (Kafka 4 dropped it).
//!
//! The debugging replica id (-2, Kafka's `ListOffsetsRequest.DEBUGGING_REPLICA_ID`) is
//! served by any replica hosting the partition, follower or leader, from its own log, as
//! Kafka's `KafkaApis` does (`fetchOnlyFromLeader` is false for it) and without an
//! isolation level: the bound is the local log end offset, not the high watermark. Every
//! other replica id (a consumer's -1, a broker's own id) must ask the leader.

use std::sync::Arc;

use strom_log::LogError;
use strom_protocol::messages::list_offsets_request::ListOffsetsPartition;
use strom_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use strom_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, ResponseKind};
use strom_protocol::ErrorCode;

use super::{check_leader_epoch, leader_epoch, leader_replica, local_replica, resolve};
use crate::partition::Partition;
use crate::server::BrokerContext;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
/// Kafka's `ListOffsetsRequest.DEBUGGING_REPLICA_ID`.
const DEBUGGING_REPLICA_ID: i32 = -2;
/// The first version that reports leader epochs.
const LEADER_EPOCH_MIN_VERSION: i16 = 4;

pub(super) async fn handle(
    context: &BrokerContext,
    request: ListOffsetsRequest,
    version: i16,
) -> ResponseKind {
    let image = context.metadata.image();
    let from_replica = request.replica_id.0 >= 0;
    // Kafka's READ_COMMITTED (1): answers stop at the last stable offset.
    let read_committed = request.isolation_level == 1;
    let debugging = request.replica_id.0 == DEBUGGING_REPLICA_ID;
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let response = match resolve(&image, &topic.name.0, p.partition_index) {
                None => failed(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                Some(tp) => {
                    let epoch = leader_epoch(&image, tp);
                    let replica = if debugging {
                        local_replica(context, tp)
                    } else {
                        leader_replica(context, &image, tp)
                    };
                    match check_leader_epoch(p.current_leader_epoch, epoch) {
                        Some(code) => failed(code),
                        None => match replica {
                            Ok(partition) if debugging => {
                                lookup_local(partition, &p, epoch, version).await
                            }
                            Ok(partition) => {
                                lookup(partition, &p, epoch, version, from_replica, read_committed)
                                    .await
                            }
                            Err(code) => failed(code),
                        },
                    }
                }
            };
            partitions.push(response.with_partition_index(p.partition_index));
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    ResponseKind::ListOffsets(ListOffsetsResponse::default().with_topics(topics))
}

fn failed(code: ErrorCode) -> ListOffsetsPartitionResponse {
    ListOffsetsPartitionResponse::default()
        .with_error_code(code.code())
        .with_timestamp(-1)
        .with_offset(-1)
}

async fn lookup(
    partition: Arc<Partition>,
    request: &ListOffsetsPartition,
    epoch: i32,
    version: i16,
    from_replica: bool,
    read_committed: bool,
) -> ListOffsetsPartitionResponse {
    let timestamp = request.timestamp;
    if timestamp == LATEST {
        if from_replica {
            let log_end = partition.log.log_end_offset();
            return ListOffsetsPartitionResponse::default()
                .with_timestamp(-1)
                .with_offset(log_end)
                .with_leader_epoch(epoch);
        }
        let established = partition
            .leader_view()
            .is_some_and(|(_, established)| established);
        if !established {
            return failed(ErrorCode::OFFSET_NOT_AVAILABLE);
        }
    }
    let result =
        tokio::task::spawn_blocking(move || offset_for(&partition, timestamp, read_committed))
            .await;
    answer(result, epoch, version)
}

/// A debugging replica's query (replica id -2), on whichever replica this broker hosts:
/// bounded by the local log end offset (no isolation level, as Kafka's).
async fn lookup_local(
    partition: Arc<Partition>,
    request: &ListOffsetsPartition,
    epoch: i32,
    version: i16,
) -> ListOffsetsPartitionResponse {
    let timestamp = request.timestamp;
    let result = tokio::task::spawn_blocking(move || {
        let bound = partition.log.log_end_offset();
        offset_below(&partition, timestamp, bound)
    })
    .await;
    answer(result, epoch, version)
}

/// The answer to one lookup run on the blocking pool: the leader epoch is reported from
/// v4 on and only with an offset found.
fn answer(
    result: Result<Result<(i64, i64), LogError>, tokio::task::JoinError>,
    epoch: i32,
    version: i16,
) -> ListOffsetsPartitionResponse {
    let epoch = if version >= LEADER_EPOCH_MIN_VERSION {
        epoch
    } else {
        -1
    };
    match result {
        Ok(Ok((timestamp_ms, offset))) => ListOffsetsPartitionResponse::default()
            .with_timestamp(timestamp_ms)
            .with_offset(offset)
            .with_leader_epoch(if offset >= 0 { epoch } else { -1 }),
        Ok(Err(error)) => failed(ErrorCode(error.kafka_error_code())),
        Err(_) => failed(ErrorCode::UNKNOWN_SERVER_ERROR),
    }
}

/// (timestamp, offset) for one query; (-1, -1) when no record qualifies. As Kafka's
/// `fetchOffsetByTimestamp`, nothing at or past the last fetchable offset is answered: the
/// high watermark, or under READ_COMMITTED the last stable offset.
fn offset_for(
    partition: &Partition,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64), LogError> {
    let bound = if read_committed {
        partition.last_stable_offset()
    } else {
        partition.log.high_watermark()
    };
    offset_below(partition, timestamp, bound)
}

/// (timestamp, offset) for one query with records below `high_watermark` visible (latest
/// is `high_watermark` itself).
fn offset_below(
    partition: &Partition,
    timestamp: i64,
    high_watermark: i64,
) -> Result<(i64, i64), LogError> {
    let log = &partition.log;
    let found = match timestamp {
        LATEST => Some((-1, high_watermark)),
        EARLIEST | EARLIEST_LOCAL => Some((-1, log.log_start_offset())),
        MAX_TIMESTAMP => log
            .max_timestamp()?
            .filter(|t| t.offset < high_watermark)
            .map(|t| (t.timestamp_ms, t.offset)),
        t if t >= 0 => log
            .offset_for_timestamp(t)?
            .filter(|t| t.offset < high_watermark)
            .map(|t| (t.timestamp_ms, t.offset)),
        // Other negative sentinels (e.g. -5, earliest pending upload) have no tiered
        // storage to answer from.
        _ => None,
    };
    Ok(found.unwrap_or((-1, -1)))
}
