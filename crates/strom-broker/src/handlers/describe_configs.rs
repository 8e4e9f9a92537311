//! DescribeConfigs: every topic config with its effective value, source, type, sensitivity
//! and (on request) synonyms and documentation; and the broker's own keys. Sources follow
//! Kafka: a topic override is DYNAMIC_TOPIC_CONFIG, a dynamic broker config
//! DYNAMIC_BROKER_CONFIG (this broker) or DYNAMIC_DEFAULT_BROKER_CONFIG (cluster default), a
//! `server.properties` value STATIC_BROKER_CONFIG, anything else DEFAULT_CONFIG. Broker
//! configs are read-only except the ones that change at runtime (`dynamic_config.rs`).
//! A client-metrics subscription (KIP-714) shows its three keys, CLIENT_METRICS_CONFIG when
//! set and DEFAULT_CONFIG otherwise. A group (`group_configs.rs`) shows every group config
//! key: GROUP_CONFIG when set on the group, else DEFAULT_CONFIG with the broker's value.
//! A broker secret (`config_keys::is_sensitive`: a PASSWORD key such as
//! `delegation.token.secret.key` or `listener.name.<l>.ssl.keystore.password`, or a key of
//! unknown type) is listed with a null value, in its synonyms too, `is_sensitive=true` and
//! the PASSWORD type, as Kafka's `ConfigHelper` does; every version, synonyms or not.

use strom_meta::config_defs::{topic_config_def, ConfigEntry, ConfigSource};
use strom_meta::{ConfigResource, ConfigResourceKind, MetadataImage};
use strom_protocol::messages::describe_configs_request::DescribeConfigsResource;
use strom_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use strom_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, ResponseKind};
use strom_protocol::ErrorCode;

use super::{str_bytes, with_broker_defaults};
use crate::config::BrokerConfig;
use crate::server::BrokerContext;
use crate::{config_keys, dynamic_config};

/// The first version with config types and documentation.
const DOCUMENTATION_MIN_VERSION: i16 = 3;
/// Kafka's `ConfigType` ids for a string, an int and a list.
const STRING_TYPE: i8 = 2;
const INT_TYPE: i8 = 3;
const LIST_TYPE: i8 = 7;
/// Kafka's `ConfigType` id of a secret (PASSWORD).
const PASSWORD_TYPE: i8 = 9;
/// Kafka's `ConfigSource` id for a key set on a client-metrics subscription.
const CLIENT_METRICS_SOURCE: i8 = 7;
/// Kafka's `ConfigSource` id for a key set on a group (GROUP_CONFIG).
const GROUP_SOURCE: i8 = 8;

struct Options {
    synonyms: bool,
    documentation: bool,
}

pub(super) async fn handle(
    context: &BrokerContext,
    request: DescribeConfigsRequest,
    version: i16,
) -> ResponseKind {
    let options = Options {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation && version >= DOCUMENTATION_MIN_VERSION,
    };
    let results = request
        .resources
        .iter()
        .map(|resource| describe(context, resource, &options, version))
        .collect();
    ResponseKind::DescribeConfigs(DescribeConfigsResponse::default().with_results(results))
}

fn describe(
    context: &BrokerContext,
    resource: &DescribeConfigsResource,
    options: &Options,
    version: i16,
) -> DescribeConfigsResult {
    let base = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    let wanted = |name: &str| {
        resource
            .configuration_keys
            .as_ref()
            .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
    };
    let name = resource.resource_name.as_str();
    let configs = match ConfigResourceKind::from_kafka_id(resource.resource_type) {
        Some(ConfigResourceKind::Topic) => {
            let image = context.metadata.image();
            let Some(entries) = image.describe_topic_configs(name) else {
                return failed(base, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, name);
            };
            with_broker_defaults(context, entries)
                .into_iter()
                .filter(|e| wanted(&e.name))
                .map(|e| topic_entry(&context.config, e, options, version))
                .collect()
        }
        Some(ConfigResourceKind::Broker) => {
            let ours = context.config.node_id.to_string();
            if !name.is_empty() && name != ours {
                return failed(base, ErrorCode::INVALID_REQUEST, name);
            }
            let image = context.metadata.image();
            let node_id = context.config.node_id;
            let dynamic = dynamic_config::dynamic_entries(&image, node_id);
            // The cluster-default resource lists only the dynamic defaults, as Kafka does.
            let keys: Vec<String> = if name.is_empty() {
                dynamic
                    .iter()
                    .filter(|(_, (_, source))| *source == ConfigSource::DynamicDefaultBrokerConfig)
                    .map(|(key, _)| key.clone())
                    .collect()
            } else {
                let mut keys: Vec<String> = context
                    .config
                    .broker_entries()
                    .into_iter()
                    .map(|(key, _)| key)
                    .chain(dynamic.keys().cloned())
                    .collect();
                keys.sort();
                keys.dedup();
                keys
            };
            keys.into_iter()
                .filter(|key| wanted(key))
                .map(|key| broker_entry(context, &image, key, name.is_empty(), options, version))
                .collect()
        }
        Some(ConfigResourceKind::ClientMetrics) => {
            let image = context.metadata.image();
            let resource = ConfigResource {
                kind: ConfigResourceKind::ClientMetrics,
                name: name.to_string(),
            };
            let set = image.configs(&resource);
            let interval = crate::telemetry::INTERVAL_MS_DEFAULT.to_string();
            [
                ("metrics", LIST_TYPE, ""),
                ("interval.ms", INT_TYPE, interval.as_str()),
                ("match", LIST_TYPE, ""),
            ]
            .into_iter()
            .filter(|(key, _, _)| wanted(key))
            .map(|(key, config_type, default)| {
                let (value, source) = match set.and_then(|c| c.get(key)) {
                    Some(value) => (value.clone(), CLIENT_METRICS_SOURCE),
                    None => (default.to_string(), ConfigSource::DefaultConfig.kafka_id()),
                };
                let result = DescribeConfigsResourceResult::default()
                    .with_name(str_bytes(key))
                    .with_value(Some(str_bytes(value)))
                    .with_config_source(source)
                    .with_read_only(false);
                if version < DOCUMENTATION_MIN_VERSION {
                    result
                } else {
                    result.with_config_type(config_type)
                }
            })
            .collect()
        }
        Some(ConfigResourceKind::Group) => {
            if name.is_empty() {
                return failed(base, ErrorCode::INVALID_REQUEST, name);
            }
            let image = context.metadata.image();
            let set = image.configs(&crate::group_configs::resource(name));
            crate::group_configs::KEYS
                .iter()
                .filter(|def| wanted(def.name))
                .map(|def| {
                    let (value, source) = match set.and_then(|c| c.get(def.name)) {
                        Some(value) => (value.clone(), GROUP_SOURCE),
                        None => (
                            crate::group_configs::broker_value(&context.config, def.name)
                                .unwrap_or_default(),
                            ConfigSource::DefaultConfig.kafka_id(),
                        ),
                    };
                    let synonyms = if options.synonyms {
                        vec![DescribeConfigsSynonym::default()
                            .with_name(str_bytes(def.name))
                            .with_value(Some(str_bytes(value.clone())))
                            .with_source(source)]
                    } else {
                        Vec::new()
                    };
                    let result = DescribeConfigsResourceResult::default()
                        .with_name(str_bytes(def.name))
                        .with_value(Some(str_bytes(value)))
                        .with_config_source(source)
                        .with_read_only(false)
                        .with_synonyms(synonyms);
                    if version < DOCUMENTATION_MIN_VERSION {
                        return result;
                    }
                    let config_type = match def.kind {
                        crate::group_configs::ValueKind::Int(_) => INT_TYPE,
                        _ => STRING_TYPE,
                    };
                    result
                        .with_config_type(config_type)
                        .with_documentation(options.documentation.then(|| str_bytes(def.doc)))
                })
                .collect()
        }
        _ => return failed(base, ErrorCode::INVALID_REQUEST, name),
    };
    base.with_configs(configs)
}

fn failed(base: DescribeConfigsResult, code: ErrorCode, name: &str) -> DescribeConfigsResult {
    base.with_error_code(code.code())
        .with_error_message(Some(str_bytes(format!(
            "cannot describe configs of {name:?}: {}",
            code.name().unwrap_or("error")
        ))))
}

fn topic_entry(
    config: &BrokerConfig,
    entry: ConfigEntry,
    options: &Options,
    version: i16,
) -> DescribeConfigsResourceResult {
    let mut synonyms = Vec::new();
    if options.synonyms {
        if entry.source == ConfigSource::DynamicTopicConfig {
            synonyms.push(synonym(
                &entry.name,
                entry.value.clone(),
                ConfigSource::DynamicTopicConfig,
            ));
        }
        if let Some(broker_key) = BrokerConfig::broker_synonym(&entry.name) {
            if config.is_key_set(broker_key) {
                let value = config.topic_defaults.get(entry.name.as_str()).cloned();
                synonyms.push(synonym(broker_key, value, ConfigSource::StaticBrokerConfig));
            }
        }
        if let Some(def) = topic_config_def(&entry.name) {
            let key = def.broker_synonym.unwrap_or(def.name);
            synonyms.push(synonym(
                key,
                Some(def.default.to_string()),
                ConfigSource::DefaultConfig,
            ));
        }
    }
    let result = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(entry.name))
        .with_value(if entry.sensitive {
            None
        } else {
            entry.value.map(str_bytes)
        })
        .with_read_only(entry.read_only)
        .with_config_source(entry.source.kafka_id())
        .with_is_sensitive(entry.sensitive)
        .with_synonyms(synonyms);
    if version < DOCUMENTATION_MIN_VERSION {
        return result;
    }
    result
        .with_config_type(entry.config_type.kafka_id())
        .with_documentation(options.documentation.then(|| str_bytes(entry.doc)))
}

/// A broker config with every value that sets it, highest precedence first (Kafka's
/// synonyms): this broker's dynamic value, the cluster's dynamic default, then the static
/// value (`server.properties`, or the default). `defaults_only` describes the cluster-default
/// resource, which shows the dynamic default alone.
fn broker_entry(
    context: &BrokerContext,
    image: &MetadataImage,
    key: String,
    defaults_only: bool,
    options: &Options,
    version: i16,
) -> DescribeConfigsResourceResult {
    let config = &context.config;
    let mut values: Vec<(Option<String>, ConfigSource)> = Vec::new();
    let own = broker_resource(&config.node_id.to_string());
    if !defaults_only {
        if let Some(value) = image.config_value(&own, &key) {
            values.push((Some(value.to_string()), ConfigSource::DynamicBrokerConfig));
        }
    }
    if let Some(value) = image.config_value(&broker_resource(""), &key) {
        values.push((
            Some(value.to_string()),
            ConfigSource::DynamicDefaultBrokerConfig,
        ));
    }
    if !defaults_only {
        if let Some((_, value)) = config.broker_entries().into_iter().find(|(k, _)| *k == key) {
            let source = if config.is_key_set(&key) {
                ConfigSource::StaticBrokerConfig
            } else {
                ConfigSource::DefaultConfig
            };
            values.push((Some(value), source));
        }
    }
    // A secret's value is dropped here, before anything is built from it (synonyms too).
    let sensitive = config_keys::is_sensitive(&key);
    if sensitive {
        for (value, _) in &mut values {
            *value = None;
        }
    }
    let (value, source) = values
        .first()
        .cloned()
        .unwrap_or((None, ConfigSource::DefaultConfig));
    let synonyms = if options.synonyms {
        values
            .into_iter()
            .map(|(value, source)| synonym(&key, value, source))
            .collect()
    } else {
        Vec::new()
    };
    let result = DescribeConfigsResourceResult::default()
        .with_read_only(!dynamic_config::is_dynamic(&key))
        .with_name(str_bytes(key))
        .with_value(value.map(str_bytes))
        .with_config_source(source.kafka_id())
        .with_is_sensitive(sensitive)
        .with_synonyms(synonyms);
    if version < DOCUMENTATION_MIN_VERSION {
        return result;
    }
    result.with_config_type(if sensitive {
        PASSWORD_TYPE
    } else {
        STRING_TYPE
    })
}

fn broker_resource(name: &str) -> ConfigResource {
    ConfigResource {
        kind: ConfigResourceKind::Broker,
        name: name.to_string(),
    }
}

fn synonym(name: &str, value: Option<String>, source: ConfigSource) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(str_bytes(name.to_string()))
        .with_value(value.map(str_bytes))
        .with_source(source.kafka_id())
}
