//! OffsetForLeaderEpoch: where a leader epoch ended, from the leader's epoch cache
//! (Kafka's `endOffsetForEpoch`): the largest epoch at or below the one asked and the offset
//! after its last record, the log end offset for the current epoch. A consumer checks that
//! its position was not truncated away; a follower (`replica_id` >= 0) where its log parts
//! from the leader's. Undefined (-1/-1) when the cache knows no such epoch, as Kafka
//! answers. Only the leader answers.

use strom_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use strom_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ResponseKind,
};
use strom_protocol::ErrorCode;

use super::{check_leader_epoch, leader_epoch, leader_replica, resolve};
use crate::server::BrokerContext;

pub(super) async fn handle(
    context: &BrokerContext,
    request: OffsetForLeaderEpochRequest,
    _version: i16,
) -> ResponseKind {
    let image = context.metadata.image();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let base = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(tp) = resolve(&image, &topic.topic.0, p.partition) else {
                        return base.with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code());
                    };
                    let current = leader_epoch(&image, tp);
                    if let Some(code) = check_leader_epoch(p.current_leader_epoch, current) {
                        return base.with_error_code(code.code());
                    }
                    let partition = match leader_replica(context, &image, tp) {
                        Ok(partition) => partition,
                        Err(code) => return base.with_error_code(code.code()),
                    };
                    match partition.log.end_offset_for_epoch(p.leader_epoch) {
                        Some(found) => base
                            .with_leader_epoch(found.epoch)
                            .with_end_offset(found.start_offset),
                        None => base,
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    ResponseKind::OffsetForLeaderEpoch(OffsetForLeaderEpochResponse::default().with_topics(topics))
}
