//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3, v7+), earliest local (-4)
//! and by timestamp, bounded by the high watermark (the last stable offset is the same:
//! there are no transactions). A new leader answers latest with OFFSET_NOT_AVAILABLE
//! (retriable) until its high watermark reaches the start of its epoch (KIP-207), so that
//! latest never goes back across a leader change. A follower asking (`replica_id` >= 0,
//! when it fell out of range) gets the log end offset for latest. Version 0 is not served
//! (Kafka 4 dropped it).

use std::sync::Arc;

use strom_log::LogError;
use strom_protocol::messages::list_offsets_request::ListOffsetsPartition;
use strom_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use strom_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, ResponseKind};
use strom_protocol::ErrorCode;

use super::{check_leader_epoch, leader_epoch, leader_replica, resolve};
use crate::partition::Partition;
use crate::server::BrokerContext;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
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
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let response = match resolve(&image, &topic.name.0, p.partition_index) {
                None => failed(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                Some(tp) => {
                    let epoch = leader_epoch(&image, tp);
                    match check_leader_epoch(p.current_leader_epoch, epoch) {
                        Some(code) => failed(code),
                        None => match leader_replica(context, &image, tp) {
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
    let log = &partition.log;
    let high_watermark = if read_committed {
        partition.last_stable_offset()
    } else {
        log.high_watermark()
    };
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
