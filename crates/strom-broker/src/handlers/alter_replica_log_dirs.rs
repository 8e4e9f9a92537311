//! AlterReplicaLogDirs (KIP-113): moves replicas between this broker's log directories
//! (`replica_move.rs` builds the future copy and swaps it in). Per partition, as Kafka's
//! `ReplicaManager.alterReplicaLogDirs` answers: LOG_DIR_NOT_FOUND for a path that is not
//! one of `log.dirs` (as given, or the same directory by its canonical path),
//! KAFKA_STORAGE_ERROR when that directory or the partition is offline (or any directory
//! is: no future copy is made while a copy might sit in an offline one),
//! REPLICA_NOT_AVAILABLE for a partition this broker does not host (the directory is
//! remembered for it if it comes), INVALID_TOPIC_EXCEPTION when the future directory's name
//! would pass 255 bytes, else NONE: the move runs in the background; DescribeLogDirs shows
//! its future replica until it is done.

use std::collections::BTreeMap;
use std::path::Path;

use strom_meta::TopicIdPartition;
use strom_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use strom_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, ResponseKind,
};
use strom_protocol::ErrorCode;

use super::topic_name;
use crate::server::BrokerContext;

/// Longest file name a directory entry may have.
const FILE_NAME_BYTES_MAX: usize = 255;
/// `.<32 hex digits>-future`.
const FUTURE_NAME_EXTRA_BYTES: usize = 1 + 32 + crate::log_dirs::FUTURE_SUFFIX.len();

pub(super) async fn handle(
    context: &BrokerContext,
    request: AlterReplicaLogDirsRequest,
    _version: i16,
) -> ResponseKind {
    let mut answers: BTreeMap<String, Vec<(i32, ErrorCode)>> = BTreeMap::new();
    let image = context.metadata.image();
    for dir in request.dirs {
        let target = context
            .replicas
            .log_dirs()
            .index_of(Path::new(dir.path.as_str()));
        for topic in dir.topics {
            let name = topic.name.0.to_string();
            for partition in topic.partitions {
                let code = match target {
                    None => ErrorCode::LOG_DIR_NOT_FOUND,
                    Some(target) => {
                        let dir_name = crate::replicas::dir_name(&name, partition);
                        match image.topic_id(&name) {
                            _ if dir_name.len() + FUTURE_NAME_EXTRA_BYTES > FILE_NAME_BYTES_MAX => {
                                ErrorCode::INVALID_TOPIC_EXCEPTION
                            }
                            None => ErrorCode::REPLICA_NOT_AVAILABLE,
                            Some(topic_id) => {
                                let tp = TopicIdPartition {
                                    topic_id,
                                    partition,
                                };
                                start(context, tp, &name, target).await
                            }
                        }
                    }
                };
                answers
                    .entry(name.clone())
                    .or_default()
                    .push((partition, code));
            }
        }
    }
    ResponseKind::AlterReplicaLogDirs(respond(answers))
}

async fn start(
    context: &BrokerContext,
    tp: TopicIdPartition,
    topic: &str,
    target: usize,
) -> ErrorCode {
    // Creating the future directory and opening its log are blocking file operations.
    let (replicas, metadata) = (
        std::sync::Arc::clone(&context.replicas),
        std::sync::Arc::clone(&context.metadata),
    );
    let topic = topic.to_string();
    let started = tokio::task::spawn_blocking(move || {
        crate::replica_move::start(&replicas, &metadata, tp, &topic, target)
    })
    .await;
    match started {
        Ok(Ok(_)) => ErrorCode::NONE,
        Ok(Err(code)) => code,
        Err(_) => ErrorCode::UNKNOWN_SERVER_ERROR,
    }
}

/// The response: every requested partition with its code, by topic.
pub(super) fn respond(
    answers: BTreeMap<String, Vec<(i32, ErrorCode)>>,
) -> AlterReplicaLogDirsResponse {
    AlterReplicaLogDirsResponse::default().with_results(
        answers
            .into_iter()
            .map(|(name, partitions)| {
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(topic_name(name))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(index, code)| {
                                AlterReplicaLogDirPartitionResult::default()
                                    .with_partition_index(index)
                                    .with_error_code(code.code())
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
