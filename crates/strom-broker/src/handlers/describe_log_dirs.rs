//! DescribeLogDirs: the broker's log directory with every partition it hosts, as leader or
//! follower: size on disk and offset lag as Kafka computes it for a current (not future)
//! replica, `max(high watermark - log end offset, 0)` of the local log (so 0 unless the
//! local high watermark ran ahead of the local log), and the volume's total and usable
//! bytes (v4+; -1 when the file system cannot say).
//!
//! A replica this broker cannot serve (its log damaged at open, failed since, or not opened
//! for another reason; `ReplicaManager::offline_replicas`) is not listed there. Kafka takes a
//! whole log directory offline and answers it with KAFKA_STORAGE_ERROR and no partitions;
//! Strom takes one partition's directory offline, so each such directory
//! (`<log.dirs>/<topic>-<partition>`) is answered the same way: its own result with
//! KAFKA_STORAGE_ERROR, no partitions and no sizes, when the request asks for that partition.

use std::collections::BTreeMap;
use std::sync::Arc;

use strom_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use strom_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, ResponseKind};
use strom_protocol::ErrorCode;

use super::{str_bytes, topic_name};
use crate::partition::Partition;
use crate::server::BrokerContext;

pub(super) async fn handle(
    context: &BrokerContext,
    request: DescribeLogDirsRequest,
    _version: i16,
) -> ResponseKind {
    let wanted_tp = |topic: &str, partition: i32| match &request.topics {
        None => true,
        Some(topics) => topics
            .iter()
            .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&partition)),
    };
    let wanted = |partition: &Partition| wanted_tp(&partition.topic, partition.tp.partition);
    let offline = context.replicas.offline_replicas();
    let mut by_topic: BTreeMap<String, Vec<Arc<Partition>>> = BTreeMap::new();
    for partition in context.replicas.all() {
        if wanted(&partition) && offline.binary_search(&partition.tp).is_err() {
            by_topic
                .entry(partition.topic.clone())
                .or_default()
                .push(partition);
        }
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.tp.partition);
            DescribeLogDirsTopic::default()
                .with_name(topic_name(name))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| {
                            DescribeLogDirsPartition::default()
                                .with_partition_index(p.tp.partition)
                                .with_partition_size(
                                    i64::try_from(p.log.size_bytes()).unwrap_or(i64::MAX),
                                )
                                .with_offset_lag(offset_lag(p))
                        })
                        .collect(),
                )
        })
        .collect();
    let dir = context.config.data_dir();
    let absolute = std::fs::canonicalize(&dir).unwrap_or(dir);
    let bytes = |r: std::io::Result<u64>| r.map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX));
    let total = bytes(fs2::total_space(&absolute));
    let usable = bytes(fs2::available_space(&absolute));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(absolute.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    let mut results = vec![result];
    let image = context.metadata.image();
    for tp in offline {
        let Some(topic) = image.topic_by_id(tp.topic_id) else {
            continue;
        };
        if !wanted_tp(&topic.name, tp.partition) {
            continue;
        }
        let dir = absolute.join(format!("{}-{}", topic.name, tp.partition));
        results.push(
            DescribeLogDirsResult::default()
                .with_error_code(ErrorCode::KAFKA_STORAGE_ERROR.code())
                .with_log_dir(str_bytes(dir.display().to_string()))
                .with_total_bytes(-1)
                .with_usable_bytes(-1),
        );
    }
    ResponseKind::DescribeLogDirs(DescribeLogDirsResponse::default().with_results(results))
}

/// Kafka's `ReplicaManager.getLogEndOffsetLag` for a current replica.
fn offset_lag(p: &Partition) -> i64 {
    p.log
        .high_watermark()
        .saturating_sub(p.log.log_end_offset())
        .max(0)
}
