//! Topic administration: create, delete, list, describe, add partitions; cluster metadata.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeClusterRequest,
};

use super::{Admin, ItemResults};
use crate::cluster::{str_bytes, topic_name, BrokerInfo, ClusterMetadata, Target, TopicInfo};
use crate::error::{ClientError, Result};

/// Broker-side timeout of topic operations.
const TOPIC_OP_TIMEOUT_MS: i32 = 30_000;

/// A topic to create. `-1` partitions or replication factor means the broker default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Topic config overrides (`cleanup.policy`, `retention.ms`, ...).
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    pub fn new(name: impl Into<String>, partitions: i32, replication_factor: i16) -> Self {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor,
            configs: Vec::new(),
        }
    }

    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// What DescribeCluster (or Metadata, on brokers without it) says about the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
}

impl Admin {
    /// Fresh metadata for all topics and brokers.
    pub async fn metadata(&self) -> Result<ClusterMetadata> {
        self.cluster
            .retry("metadata", || self.cluster.refresh_metadata(&[]))
            .await
    }

    /// Topic names, sorted; internal topics (`__consumer_offsets`) only when asked.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<String>> {
        let meta = self.metadata().await?;
        Ok(meta
            .topics
            .values()
            .filter(|t| include_internal || !t.is_internal)
            .map(|t| t.name.clone())
            .collect())
    }

    /// Describes the named topics (all topics when `names` is empty). A missing topic is
    /// `UNKNOWN_TOPIC_OR_PARTITION`.
    pub async fn describe_topics(&self, names: &[String]) -> Result<Vec<TopicInfo>> {
        let meta = self
            .cluster
            .retry("describe topics", || self.cluster.refresh_metadata(names))
            .await?;
        if names.is_empty() {
            return Ok(meta.topics.into_values().collect());
        }
        names
            .iter()
            .map(|n| {
                meta.topics
                    .get(n)
                    .cloned()
                    .ok_or_else(|| crate::cluster::unknown_topic(&format!("topic {n}")))
            })
            .collect()
    }

    /// Creates one topic.
    pub async fn create_topic(&self, topic: &NewTopic) -> Result<()> {
        first_result(
            self.create_topics(std::slice::from_ref(topic), false)
                .await?,
        )
    }

    /// Creates topics; one result per topic. `validate_only` checks without creating.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<ItemResults> {
        let response = self
            .cluster
            .retry("create topics", || {
                self.cluster.call(&Target::Any, |_| {
                    Ok(CreateTopicsRequest::default()
                        .with_topics(topics.iter().map(creatable).collect())
                        .with_timeout_ms(TOPIC_OP_TIMEOUT_MS)
                        .with_validate_only(validate_only))
                })
            })
            .await?;
        self.cluster.invalidate_metadata();
        Ok(response
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let result = ClientError::check(
                    t.error_code,
                    t.error_message.map(|m| m.to_string()),
                    format!("create topic {name}"),
                );
                (name, result)
            })
            .collect())
    }

    /// Deletes one topic.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        first_result(self.delete_topics(&[name.to_string()]).await?)
    }

    /// Deletes topics by name; one result per topic.
    pub async fn delete_topics(&self, names: &[String]) -> Result<ItemResults> {
        let response = self
            .cluster
            .retry("delete topics", || {
                self.cluster.call(&Target::Any, |version| {
                    let request =
                        DeleteTopicsRequest::default().with_timeout_ms(TOPIC_OP_TIMEOUT_MS);
                    Ok(if version >= 6 {
                        request.with_topics(
                            names
                                .iter()
                                .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                                .collect(),
                        )
                    } else {
                        request.with_topic_names(names.iter().map(|n| topic_name(n)).collect())
                    })
                })
            })
            .await?;
        self.cluster.invalidate_metadata();
        Ok(response
            .responses
            .into_iter()
            .map(|r| {
                let name = r.name.map(|n| n.0.to_string()).unwrap_or_default();
                let result = ClientError::check(
                    r.error_code,
                    r.error_message.map(|m| m.to_string()),
                    format!("delete topic {name}"),
                );
                (name, result)
            })
            .collect())
    }

    /// Grows `topic` to `total_partitions` partitions.
    pub async fn create_partitions(&self, topic: &str, total_partitions: i32) -> Result<()> {
        let response = self
            .cluster
            .retry("create partitions", || {
                self.cluster.call(&Target::Any, |_| {
                    Ok(CreatePartitionsRequest::default()
                        .with_topics(vec![CreatePartitionsTopic::default()
                            .with_name(topic_name(topic))
                            .with_count(total_partitions)
                            .with_assignments(None)])
                        .with_timeout_ms(TOPIC_OP_TIMEOUT_MS))
                })
            })
            .await?;
        self.cluster.invalidate_metadata();
        for r in response.results {
            ClientError::check(
                r.error_code,
                r.error_message.map(|m| m.to_string()),
                format!("create partitions of {topic}"),
            )?;
        }
        Ok(())
    }

    /// Cluster id, controller and brokers (DescribeCluster, or Metadata when the broker
    /// does not serve DescribeCluster).
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let supported = self
            .cluster
            .version_at::<DescribeClusterRequest>(&Target::Any)
            .await;
        if supported.is_err() {
            let meta = self.metadata().await?;
            return Ok(ClusterDescription {
                cluster_id: meta.cluster_id,
                controller_id: meta.controller_id,
                brokers: meta.brokers.into_values().collect(),
            });
        }
        let cluster = &self.cluster;
        let r = cluster
            .retry("describe cluster", || async {
                let r = cluster
                    .call(&Target::Any, |_| Ok(DescribeClusterRequest::default()))
                    .await?;
                ClientError::check(
                    r.error_code,
                    r.error_message.as_ref().map(|m| m.to_string()),
                    "describe cluster",
                )?;
                Ok(r)
            })
            .await?;
        Ok(ClusterDescription {
            cluster_id: Some(r.cluster_id.to_string()),
            controller_id: r.controller_id.0,
            brokers: r
                .brokers
                .into_iter()
                .map(|b| BrokerInfo {
                    id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                })
                .collect(),
        })
    }
}

fn creatable(t: &NewTopic) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(&t.name))
        .with_num_partitions(t.partitions)
        .with_replication_factor(t.replication_factor)
        .with_configs(
            t.configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(str_bytes(k))
                        .with_value(Some(str_bytes(v)))
                })
                .collect(),
        )
}

/// The single result of a one-item batched call.
pub(crate) fn first_result(results: ItemResults) -> Result<()> {
    results.into_iter().next().map_or_else(
        || Err(ClientError::Protocol("empty response".into())),
        |(_, r)| r,
    )
}
