//! DescribeLogDirs: the broker's log directory with every partition it hosts, as leader or
//! follower: size on disk and offset lag as Kafka computes it for a current (not future)
//! replica, `max(high watermark - log end offset, 0)` of the local log (so 0 unless the
//! local high watermark ran ahead of the local log), and the volume's total and usable
//! bytes (v4+; -1 when the file system cannot say).

use std::collections::BTreeMap;
use std::sync::Arc;

use strom_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use strom_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, ResponseKind};

use super::{str_bytes, topic_name};
use crate::partition::Partition;
use crate::server::BrokerContext;

pub(super) async fn handle(
    context: &BrokerContext,
    request: DescribeLogDirsRequest,
    _version: i16,
) -> ResponseKind {
    let wanted = |partition: &Partition| match &request.topics {
        None => true,
        Some(topics) => topics.iter().any(|t| {
            t.topic.0.as_str() == partition.topic && t.partitions.contains(&partition.tp.partition)
        }),
    };
    let mut by_topic: BTreeMap<String, Vec<Arc<Partition>>> = BTreeMap::new();
    for partition in context.replicas.all() {
        if wanted(&partition) {
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
    ResponseKind::DescribeLogDirs(DescribeLogDirsResponse::default().with_results(vec![result]))
}

/// Kafka's `ReplicaManager.getLogEndOffsetLag` for a current replica.
fn offset_lag(p: &Partition) -> i64 {
    p.log
        .high_watermark()
        .saturating_sub(p.log.log_end_offset())
        .max(0)
}
