//! OffsetCommit (v2-v9, by topic name): generation-checked member commits and simple
//! (generation -1) commits; answered once the commit records are durable. As in Kafka, a
//! partition that does not exist is answered UNKNOWN_TOPIC_OR_PARTITION without reaching the
//! coordinator (librdkafka's suite commits offsets of a missing topic and expects it).

use std::collections::{HashMap, HashSet};

use strom_group::{Command, CommitOffset, ErrorCode, OffsetCommit, Response};
use strom_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use strom_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, ResponseKind};

use strom_protocol::ErrorCode as KafkaError;

use super::{group_call, opt_string, resolve, topic_name};
use crate::server::BrokerContext;

/// The first version that reports a commit to an unknown group as GROUP_ID_NOT_FOUND.
const GROUP_ID_NOT_FOUND_MIN_VERSION: i16 = 9;

pub(super) async fn handle(
    context: &BrokerContext,
    request: OffsetCommitRequest,
    version: i16,
) -> ResponseKind {
    let group_id = request.group_id.0.to_string();
    let image = context.metadata.image();
    let mut requested: Vec<(String, Vec<i32>)> = Vec::with_capacity(request.topics.len());
    let mut unknown: HashSet<(String, i32)> = HashSet::new();
    let mut offsets = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            partitions.push(p.partition_index);
            if resolve(&image, &name, p.partition_index).is_none() {
                unknown.insert((name.clone(), p.partition_index));
                continue;
            }
            offsets.push(CommitOffset {
                topic: name.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p
                    .committed_metadata
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            });
        }
        requested.push((name, partitions));
    }
    let offsets_sent = !offsets.is_empty();
    let command = Command::OffsetCommit(OffsetCommit {
        group_id: group_id.clone(),
        generation_id: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        group_instance_id: opt_string(request.group_instance_id),
        // Only v2-v4 carry it; later versions decode the default -1.
        retention_time_ms: request.retention_time_ms,
        unknown_group_not_found: version >= GROUP_ID_NOT_FOUND_MIN_VERSION,
        offsets,
    });
    // Per-partition results, or one error for every partition sent to the coordinator.
    let reply = if offsets_sent {
        group_call(context, &group_id, command).await
    } else {
        Ok(Response::OffsetCommit(Vec::new()))
    };
    let (results, whole) = match reply {
        Ok(Response::OffsetCommit(results)) => {
            let whole = results
                .iter()
                .find(|r| r.partition < 0 && r.topic.is_empty())
                .map(|r| r.error);
            let by_partition: HashMap<(String, i32), ErrorCode> = results
                .into_iter()
                .map(|r| ((r.topic, r.partition), r.error))
                .collect();
            (by_partition, whole)
        }
        Ok(_) => (HashMap::new(), Some(ErrorCode::CoordinatorNotAvailable)),
        Err(code) => (HashMap::new(), Some(code)),
    };
    let topics = requested
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|index| {
                    let code = if unknown.contains(&(name.clone(), index)) {
                        KafkaError::UNKNOWN_TOPIC_OR_PARTITION.code()
                    } else {
                        whole
                            .or_else(|| results.get(&(name.clone(), index)).copied())
                            .unwrap_or(ErrorCode::None)
                            .code()
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic_name(name))
                .with_partitions(partitions)
        })
        .collect();
    ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(topics))
}
