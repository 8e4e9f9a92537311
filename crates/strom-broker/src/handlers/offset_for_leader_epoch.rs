//! OffsetForLeaderEpoch: where a leader epoch ended, so a consumer can check that its
//! position was not truncated away. A single replica never truncates what it committed, so
//! for any epoch up to the current one the answer is (that epoch, log end offset): never a
//! false truncation. An epoch newer than the leader's is answered with -1/-1, as Kafka does.

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
                    if p.leader_epoch > current {
                        return base;
                    }
                    base.with_leader_epoch(p.leader_epoch)
                        .with_end_offset(partition.log.log_end_offset())
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    ResponseKind::OffsetForLeaderEpoch(OffsetForLeaderEpochResponse::default().with_topics(topics))
}
