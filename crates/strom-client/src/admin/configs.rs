//! Config administration: DescribeConfigs and IncrementalAlterConfigs for topics and brokers.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};

use super::Admin;
use crate::cluster::{str_bytes, Target};
use crate::error::{ClientError, Result};

/// Kafka's `ConfigResource.Type` codes.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// What a config belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    /// A broker by id; its configs are asked of that broker.
    Broker(i32),
    /// Cluster-wide broker defaults (the empty broker name).
    BrokerDefault,
}

impl ConfigResource {
    fn wire(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(t) => (RESOURCE_TOPIC, t.clone()),
            ConfigResource::Broker(id) => (RESOURCE_BROKER, id.to_string()),
            ConfigResource::BrokerDefault => (RESOURCE_BROKER, String::new()),
        }
    }

    fn target(&self) -> Target {
        match self {
            ConfigResource::Broker(id) => Target::Broker(*id),
            _ => Target::Any,
        }
    }
}

/// As Kafka's tools name it: `topic orders`, `broker 1`, `default broker`.
impl std::fmt::Display for ConfigResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigResource::Topic(t) => write!(f, "topic {t}"),
            ConfigResource::Broker(id) => write!(f, "broker {id}"),
            ConfigResource::BrokerDefault => write!(f, "default broker"),
        }
    }
}

/// Where a config value comes from (Kafka's `ConfigSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Unknown,
    DynamicTopic,
    DynamicBroker,
    DynamicDefaultBroker,
    StaticBroker,
    Default,
    DynamicBrokerLogger,
    ClientMetrics,
    Group,
}

impl ConfigSource {
    fn from_wire(source: i8) -> Self {
        match source {
            1 => ConfigSource::DynamicTopic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            6 => ConfigSource::DynamicBrokerLogger,
            7 => ConfigSource::ClientMetrics,
            8 => ConfigSource::Group,
            _ => ConfigSource::Unknown,
        }
    }

    /// Kafka's name, as kafka-configs.sh prints it (`DYNAMIC_TOPIC_CONFIG`).
    pub fn name(self) -> &'static str {
        match self {
            ConfigSource::Unknown => "UNKNOWN",
            ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
            ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
            ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
            ConfigSource::Default => "DEFAULT_CONFIG",
            ConfigSource::DynamicBrokerLogger => "DYNAMIC_BROKER_LOGGER_CONFIG",
            ConfigSource::ClientMetrics => "CLIENT_METRICS_CONFIG",
            ConfigSource::Group => "GROUP_CONFIG",
        }
    }
}

/// One described config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for sensitive configs and unset ones.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub is_sensitive: bool,
    pub documentation: Option<String>,
}

impl ConfigEntry {
    /// Whether the value is the default (nothing overrides it).
    pub fn is_default(&self) -> bool {
        self.source == ConfigSource::Default
    }
}

/// One incremental change (IncrementalAlterConfigs operation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    Set(String, String),
    /// Back to the default.
    Delete(String),
    /// Adds to a list config.
    Append(String, String),
    /// Removes from a list config.
    Subtract(String, String),
}

impl AlterConfigOp {
    fn wire(&self) -> AlterableConfig {
        let (name, op, value) = match self {
            AlterConfigOp::Set(k, v) => (k, 0, Some(v)),
            AlterConfigOp::Delete(k) => (k, 1, None),
            AlterConfigOp::Append(k, v) => (k, 2, Some(v)),
            AlterConfigOp::Subtract(k, v) => (k, 3, Some(v)),
        };
        AlterableConfig::default()
            .with_name(str_bytes(name))
            .with_config_operation(op)
            .with_value(value.map(|v| str_bytes(v)))
    }
}

impl Admin {
    /// All configs of a resource, with values, sources and documentation.
    pub async fn describe_configs(&self, resource: &ConfigResource) -> Result<Vec<ConfigEntry>> {
        let (resource_type, name) = resource.wire();
        let target = resource.target();
        let cluster = &self.cluster;
        let result = cluster
            .retry("describe configs", || async {
                let response = cluster
                    .call(&target, |_| {
                        Ok(DescribeConfigsRequest::default()
                            .with_resources(vec![DescribeConfigsResource::default()
                                .with_resource_type(resource_type)
                                .with_resource_name(str_bytes(&name))
                                .with_configuration_keys(None)])
                            .with_include_documentation(true))
                    })
                    .await?;
                let result = response.results.into_iter().next().ok_or_else(|| {
                    ClientError::Protocol("DescribeConfigs: empty response".into())
                })?;
                ClientError::check(
                    result.error_code,
                    result.error_message.as_ref().map(|m| m.to_string()),
                    format!("describe configs of {resource}"),
                )?;
                Ok(result)
            })
            .await?;
        Ok(result
            .configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: ConfigSource::from_wire(c.config_source),
                read_only: c.read_only,
                is_sensitive: c.is_sensitive,
                documentation: c.documentation.map(|d| d.to_string()),
            })
            .collect())
    }

    /// Applies incremental config changes to one resource.
    pub async fn alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
    ) -> Result<()> {
        let (resource_type, name) = resource.wire();
        let target = resource.target();
        let response = self
            .cluster
            .retry("alter configs", || {
                self.cluster.call(&target, |_| {
                    Ok(
                        IncrementalAlterConfigsRequest::default().with_resources(vec![
                            AlterConfigsResource::default()
                                .with_resource_type(resource_type)
                                .with_resource_name(str_bytes(&name))
                                .with_configs(ops.iter().map(AlterConfigOp::wire).collect()),
                        ]),
                    )
                })
            })
            .await?;
        for r in response.responses {
            ClientError::check(
                r.error_code,
                r.error_message.map(|m| m.to_string()),
                format!("alter configs of {resource}"),
            )?;
        }
        Ok(())
    }
}
