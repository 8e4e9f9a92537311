//! DescribeConfigs: every topic config with its effective value, source, type, sensitivity
//! and (on request) synonyms and documentation; and the broker's own keys. Sources follow
//! Kafka: a topic override is DYNAMIC_TOPIC_CONFIG, a `server.properties` value
//! STATIC_BROKER_CONFIG, anything else DEFAULT_CONFIG.

use strom_meta::config_defs::{topic_config_def, ConfigEntry, ConfigSource};
use strom_meta::ConfigResourceKind;
use strom_protocol::messages::describe_configs_request::DescribeConfigsResource;
use strom_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use strom_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, ResponseKind};
use strom_protocol::ErrorCode;

use super::{str_bytes, with_broker_defaults};
use crate::config::BrokerConfig;
use crate::server::BrokerContext;

/// The first version with config types and documentation.
const DOCUMENTATION_MIN_VERSION: i16 = 3;
/// Kafka's `ConfigType` id for a string.
const STRING_TYPE: i8 = 2;

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
            context
                .config
                .broker_entries()
                .into_iter()
                .filter(|(key, _)| wanted(key))
                .map(|(key, value)| broker_entry(&context.config, key, value, options, version))
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

fn broker_entry(
    config: &BrokerConfig,
    key: String,
    value: String,
    options: &Options,
    version: i16,
) -> DescribeConfigsResourceResult {
    let source = if config.is_key_set(&key) {
        ConfigSource::StaticBrokerConfig
    } else {
        ConfigSource::DefaultConfig
    };
    let synonyms = if options.synonyms {
        vec![synonym(&key, Some(value.clone()), source)]
    } else {
        Vec::new()
    };
    let result = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(key))
        .with_value(Some(str_bytes(value)))
        // Static broker configs cannot be changed at runtime here.
        .with_read_only(true)
        .with_config_source(source.kafka_id())
        .with_synonyms(synonyms);
    if version < DOCUMENTATION_MIN_VERSION {
        return result;
    }
    result.with_config_type(STRING_TYPE)
}

fn synonym(name: &str, value: Option<String>, source: ConfigSource) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(str_bytes(name.to_string()))
        .with_value(value.map(str_bytes))
        .with_source(source.kafka_id())
}
