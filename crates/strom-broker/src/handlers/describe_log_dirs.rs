//! DescribeLogDirs: every directory of `log.dirs` with the partitions it hosts, as leader
//! or follower: size on disk and offset lag as Kafka computes it for a current (not future)
//! replica, `max(high watermark - log end offset, 0)` of the local log (so 0 unless the
//! local high watermark ran ahead of the local log), and the volume's total and usable
//! bytes (v4+, from statvfs; -1 when the file system cannot say). A replica being moved to
//! another directory (AlterReplicaLogDirs) is also listed in its target directory with
//! `is_future_key` set and its lag behind the current replica.
//!
//! An offline directory (`log_dirs.rs`: it failed, or could not be used at start-up) is
//! answered as Kafka answers it: KAFKA_STORAGE_ERROR, no partitions, no sizes. A replica
//! this broker cannot serve for a reason of its own (its log damaged at open, or not opened
//! for another reason; `ReplicaManager::offline_replicas`) in an online directory is not
//! listed there: Strom answers its directory (`<log dir>/<topic>-<partition>`) the same
//! way, as its own result with KAFKA_STORAGE_ERROR, when the request asks for that
//! partition.

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
    let replicas = &context.replicas;
    let dirs = replicas.log_dirs();
    let offline = replicas.offline_replicas();
    // Per directory: the partitions in it, current and future.
    let mut by_dir: Vec<BTreeMap<String, Vec<DescribeLogDirsPartition>>> =
        dirs.all().iter().map(|_| BTreeMap::new()).collect();
    for partition in replicas.all() {
        if !wanted(&partition) || offline.binary_search(&partition.tp).is_ok() {
            continue;
        }
        let Some(topics) = replicas
            .dir_index(&partition)
            .and_then(|i| by_dir.get_mut(i))
        else {
            continue;
        };
        topics
            .entry(partition.topic.clone())
            .or_default()
            .push(current(&partition));
    }
    for (index, partition, future) in replicas.future_replicas() {
        if !wanted(&partition) {
            continue;
        }
        if let Some(topics) = by_dir.get_mut(index) {
            topics.entry(partition.topic.clone()).or_default().push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(partition.tp.partition)
                    .with_partition_size(i64::try_from(future.size_bytes()).unwrap_or(i64::MAX))
                    .with_offset_lag(
                        partition
                            .log
                            .log_end_offset()
                            .saturating_sub(future.log_end_offset())
                            .max(0),
                    )
                    .with_is_future_key(true),
            );
        }
    }
    let bytes = |r: std::io::Result<u64>| r.map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX));
    let mut results = Vec::new();
    for ((index, dir), topics) in dirs.all().iter().enumerate().zip(by_dir) {
        let absolute = std::fs::canonicalize(&dir.path).unwrap_or_else(|_| dir.path.clone());
        let result = DescribeLogDirsResult::default()
            .with_log_dir(str_bytes(absolute.display().to_string()));
        if !dirs.is_online(index) {
            results.push(
                result
                    .with_error_code(ErrorCode::KAFKA_STORAGE_ERROR.code())
                    .with_total_bytes(-1)
                    .with_usable_bytes(-1),
            );
            continue;
        }
        let topics = topics
            .into_iter()
            .map(|(name, mut partitions)| {
                partitions.sort_by_key(|p| (p.partition_index, p.is_future_key));
                DescribeLogDirsTopic::default()
                    .with_name(topic_name(name))
                    .with_partitions(partitions)
            })
            .collect();
        results.push(
            result
                .with_topics(topics)
                .with_total_bytes(bytes(fs2::total_space(&absolute)))
                .with_usable_bytes(bytes(fs2::available_space(&absolute))),
        );
    }
    let image = context.metadata.image();
    for tp in offline {
        let Some(topic) = image.topic_by_id(tp.topic_id) else {
            continue;
        };
        if !wanted_tp(&topic.name, tp.partition) {
            continue;
        }
        // A replica in an offline directory is answered by its directory's result (as is
        // one found in no directory while some directory is offline).
        let name = crate::replicas::dir_name(&topic.name, tp.partition);
        match dirs.dir_of(&name) {
            Some(index) if !dirs.is_online(index) => continue,
            None if dirs.online_count() < dirs.all().len() => continue,
            _ => {}
        }
        let dir = replicas.partition_dir(&topic.name, tp.partition);
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
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

/// A current replica's entry.
fn current(p: &Arc<Partition>) -> DescribeLogDirsPartition {
    DescribeLogDirsPartition::default()
        .with_partition_index(p.tp.partition)
        .with_partition_size(i64::try_from(p.log.size_bytes()).unwrap_or(i64::MAX))
        .with_offset_lag(offset_lag(p))
}

/// Kafka's `ReplicaManager.getLogEndOffsetLag` for a current replica.
fn offset_lag(p: &Partition) -> i64 {
    p.log
        .high_watermark()
        .saturating_sub(p.log.log_end_offset())
        .max(0)
}
