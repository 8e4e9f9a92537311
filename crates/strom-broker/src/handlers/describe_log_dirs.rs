//! DescribeLogDirs: the broker's log directory with each hosted partition's size on disk
//! and lag (always 0: there is no future replica). Volume sizes are reported unknown (-1).

use std::collections::BTreeMap;
use std::sync::Arc;

use strom_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use strom_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, ResponseKind};

use super::{str_bytes, topic_name};
use crate::replicas::Partition;
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
                                .with_offset_lag(0)
                        })
                        .collect(),
                )
        })
        .collect();
    let dir = context.config.data_dir();
    let absolute = std::fs::canonicalize(&dir).unwrap_or(dir);
    let result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(absolute.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(-1)
        .with_usable_bytes(-1);
    ResponseKind::DescribeLogDirs(DescribeLogDirsResponse::default().with_results(vec![result]))
}
