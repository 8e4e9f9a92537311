//! The log directories of brokers (what `kafka-log-dirs.sh` and the log-dir moves of
//! `kafka-reassign-partitions.sh` call through Kafka's Admin): DescribeLogDirs and
//! AlterReplicaLogDirs, each sent to the broker it is about.

use kafka_protocol::messages::alter_replica_log_dirs_request::{
    AlterReplicaLogDir, AlterReplicaLogDirTopic,
};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{AlterReplicaLogDirsRequest, DescribeLogDirsRequest};

use super::Admin;
use crate::cluster::{str_bytes, topic_name, Target};
use crate::error::{ClientError, Result};

/// One replica in a log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirReplica {
    pub topic: String,
    pub partition: i32,
    pub size_bytes: i64,
    /// Behind the high watermark (a current replica) or the current replica (a future one).
    pub offset_lag: i64,
    /// A copy being built by a move into this directory.
    pub is_future: bool,
}

/// One log directory of one broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirDescription {
    pub broker: i32,
    pub path: String,
    /// Kafka's error name when the directory is offline (KAFKA_STORAGE_ERROR).
    pub error: Option<String>,
    /// -1 when the broker cannot say.
    pub total_bytes: i64,
    pub usable_bytes: i64,
    pub replicas: Vec<LogDirReplica>,
}

impl Admin {
    /// Every log directory of each of `brokers` (every broker when empty), with the
    /// replicas of `topics` (every topic when empty) each holds (Admin `describeLogDirs`).
    pub async fn describe_log_dirs(
        &self,
        brokers: &[i32],
        topics: &[String],
    ) -> Result<Vec<LogDirDescription>> {
        let brokers: Vec<i32> = if brokers.is_empty() {
            self.metadata().await?.brokers.keys().copied().collect()
        } else {
            brokers.to_vec()
        };
        let wanted = if topics.is_empty() {
            None
        } else {
            let meta = self.metadata().await?;
            Some(
                topics
                    .iter()
                    .map(|t| {
                        let partitions = meta
                            .topics
                            .get(t)
                            .map(|info| info.partitions.iter().map(|p| p.partition).collect())
                            .unwrap_or_default();
                        DescribableLogDirTopic::default()
                            .with_topic(topic_name(t))
                            .with_partitions(partitions)
                    })
                    .collect::<Vec<_>>(),
            )
        };
        let mut out = Vec::new();
        for broker in brokers {
            let request = DescribeLogDirsRequest::default().with_topics(wanted.clone());
            let cluster = &self.cluster;
            let r = cluster
                .retry("describe log dirs", || async {
                    let r = cluster
                        .call(&Target::Broker(broker), |_| Ok(request.clone()))
                        .await?;
                    ClientError::check(
                        r.error_code,
                        None,
                        format!("describe log dirs of broker {broker}"),
                    )?;
                    Ok(r)
                })
                .await?;
            for result in r.results {
                let error = ClientError::check(result.error_code, None, result.log_dir.to_string())
                    .err()
                    .map(|e| e.to_string());
                let mut replicas: Vec<LogDirReplica> = result
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(|p| LogDirReplica {
                            topic: t.name.0.to_string(),
                            partition: p.partition_index,
                            size_bytes: p.partition_size,
                            offset_lag: p.offset_lag,
                            is_future: p.is_future_key,
                        })
                    })
                    .collect();
                replicas.sort_by(|a, b| {
                    (&a.topic, a.partition, a.is_future).cmp(&(&b.topic, b.partition, b.is_future))
                });
                out.push(LogDirDescription {
                    broker,
                    path: result.log_dir.to_string(),
                    error,
                    total_bytes: result.total_bytes,
                    usable_bytes: result.usable_bytes,
                    replicas,
                });
            }
        }
        Ok(out)
    }

    /// Moves `broker`'s replica of `topic`-`partition` into its log directory `dir`
    /// (Admin `alterReplicaLogDirs`); the move runs on the broker after this returns.
    pub async fn alter_replica_log_dir(
        &self,
        broker: i32,
        topic: &str,
        partition: i32,
        dir: &str,
    ) -> Result<()> {
        let request =
            AlterReplicaLogDirsRequest::default().with_dirs(vec![AlterReplicaLogDir::default()
                .with_path(str_bytes(dir))
                .with_topics(vec![AlterReplicaLogDirTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![partition])])]);
        let what = format!("move {topic}-{partition} on broker {broker} to {dir}");
        let cluster = &self.cluster;
        cluster
            .retry(&what, || async {
                let r = cluster
                    .call(&Target::Broker(broker), |_| Ok(request.clone()))
                    .await?;
                let code = r
                    .results
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .find(|p| p.partition_index == partition)
                    .map(|p| p.error_code)
                    .ok_or_else(|| ClientError::Protocol(format!("{what}: no answer for it")))?;
                ClientError::check(code, None, what.clone())
            })
            .await
    }
}
