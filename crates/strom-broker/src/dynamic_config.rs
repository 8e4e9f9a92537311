//! Dynamic broker configs: values set with AlterConfigs or IncrementalAlterConfigs on a
//! broker resource, `<node.id>` for one broker or the empty name for the cluster-wide
//! default, committed to the metadata image like any config. Kafka's precedence holds: a
//! topic override, then this broker's dynamic value (DYNAMIC_BROKER_CONFIG), then the
//! cluster default (DYNAMIC_DEFAULT_BROKER_CONFIG), then `server.properties`
//! (STATIC_BROKER_CONFIG), then Kafka's default.
//!
//! Strom accepts at runtime only the broker keys it honours at runtime: the topic defaults
//! (`log.segment.bytes`, `log.retention.ms`, `log.flush.interval.messages`, ... every key
//! in [`DYNAMIC_KEYS`]), which Kafka also lets change dynamically. The next reconcile reopens
//! the logs whose effective config changed. Any other key the broker knows is refused with
//! Kafka's "Cannot update these configs dynamically" (INVALID_REQUEST), so nothing is shown
//! as in effect that is not; keys it does not know are stored as Kafka stores them.

use std::collections::BTreeMap;

use strom_meta::config_defs::ConfigSource;
use strom_meta::{ConfigResource, ConfigResourceKind, MetadataImage};

use crate::config::BrokerConfig;

/// The broker keys that change at runtime: Kafka's dynamic topic defaults (its
/// `DynamicLogConfig`) that Strom's logs read.
pub const DYNAMIC_KEYS: &[&str] = &[
    "log.cleaner.delete.retention.ms",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleanup.policy",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.index.interval.bytes",
    "log.index.size.max.bytes",
    "log.message.timestamp.after.max.ms",
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.type",
    "log.retention.bytes",
    "log.retention.ms",
    "log.roll.ms",
    "log.segment.bytes",
    "log.segment.delete.delay.ms",
    "message.max.bytes",
];

/// Broker keys other than topic defaults that change at runtime: the connection creation
/// rate (KIP-612, `conn_rate.rs` reads it from the image for every connection). Its
/// per-listener form `listener.name.<name>.max.connection.creation.rate` is not a key the
/// broker lists, so it is stored like any unknown key and read the same way.
pub const DYNAMIC_BROKER_KEYS: &[&str] = &[crate::conn_rate::MAX_CONNECTION_CREATION_RATE];

/// Whether `key` may be set on a broker resource at runtime.
pub fn is_dynamic(key: &str) -> bool {
    DYNAMIC_KEYS.contains(&key) || DYNAMIC_BROKER_KEYS.contains(&key)
}

/// The keys of a broker-resource change that Strom refuses: keys the broker knows (it lists
/// them in DescribeConfigs) that are not dynamic. Unknown keys pass, as in Kafka.
pub fn refused_keys<'a>(config: &BrokerConfig, keys: impl Iterator<Item = &'a str>) -> Vec<String> {
    let known: Vec<String> = config
        .broker_entries()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    keys.filter(|key| !is_dynamic(key) && known.iter().any(|k| k == key))
        .map(str::to_string)
        .collect()
}

/// Why a dynamic value cannot apply, when it is a topic default whose value the log config
/// refuses (the message names the key); `None` when it can.
pub fn invalid_value(config: &BrokerConfig, key: &str, value: &str) -> Option<String> {
    let rate_key = key == crate::conn_rate::MAX_CONNECTION_CREATION_RATE
        || (key.starts_with("listener.name.")
            && key.ends_with(&format!(
                ".{}",
                crate::conn_rate::MAX_CONNECTION_CREATION_RATE
            )));
    if rate_key {
        return match value.trim().parse::<i32>() {
            Ok(rate) if rate >= 0 => None,
            _ => Some(format!(
                "Invalid value {value} for configuration {key}: connections per second, a whole \
                 number from 0 to 2147483647"
            )),
        };
    }
    let topic_key = topic_key_of(key)?;
    let single = BTreeMap::from([(topic_key.to_string(), value.to_string())]);
    config
        .topic_log_config(Some(&single))
        .err()
        .map(|error| format!("Invalid value {value} for configuration {key}: {error}"))
}

/// The dynamic value of broker `key` on this node and where it comes from: this broker's
/// own value first, then the cluster default.
pub fn dynamic_value(
    image: &MetadataImage,
    node_id: i32,
    key: &str,
) -> Option<(String, ConfigSource)> {
    let own = broker_resource(&node_id.to_string());
    if let Some(value) = image.config_value(&own, key) {
        return Some((value.to_string(), ConfigSource::DynamicBrokerConfig));
    }
    image
        .config_value(&broker_resource(""), key)
        .map(|value| (value.to_string(), ConfigSource::DynamicDefaultBrokerConfig))
}

/// Every dynamic key set for this node (its own or the cluster default), with value and
/// source, in key order.
pub fn dynamic_entries(
    image: &MetadataImage,
    node_id: i32,
) -> BTreeMap<String, (String, ConfigSource)> {
    let mut out = BTreeMap::new();
    for (name, source) in [
        (String::new(), ConfigSource::DynamicDefaultBrokerConfig),
        (node_id.to_string(), ConfigSource::DynamicBrokerConfig),
    ] {
        for (key, value) in image.configs(&broker_resource(&name)).into_iter().flatten() {
            out.insert(key.clone(), (value.clone(), source));
        }
    }
    out
}

/// The topic-level defaults the dynamic broker configs set, as topic keys (for the log
/// configs). A value the log config refuses is left out (and logged): it can only come
/// from a record written before values were checked, and must not take a log offline.
pub fn topic_defaults(image: &MetadataImage, config: &BrokerConfig) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for key in DYNAMIC_KEYS {
        let (Some(topic_key), Some((value, _))) =
            (topic_key_of(key), dynamic_value(image, config.node_id, key))
        else {
            continue;
        };
        if let Some(reason) = invalid_value(config, key, &value) {
            tracing::warn!(key, %reason, "ignoring a dynamic broker config");
            continue;
        }
        out.insert(topic_key.to_string(), value);
    }
    out
}

/// A topic's effective overrides: the dynamic topic defaults, then its own overrides.
pub fn with_topic_overrides(
    defaults: &BTreeMap<String, String>,
    overrides: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out = defaults.clone();
    for (key, value) in overrides.into_iter().flatten() {
        out.insert(key.clone(), value.clone());
    }
    out
}

/// The topic config a dynamic broker key is the default of.
fn topic_key_of(broker_key: &str) -> Option<&'static str> {
    strom_log::LogConfig::default()
        .to_kafka_props()
        .into_keys()
        .find(|topic_key| BrokerConfig::broker_synonym(topic_key) == Some(broker_key))
}

fn broker_resource(name: &str) -> ConfigResource {
    ConfigResource {
        kind: ConfigResourceKind::Broker,
        name: name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dynamic_key_is_the_default_of_a_log_config() {
        for key in DYNAMIC_KEYS {
            assert!(topic_key_of(key).is_some(), "{key} reaches no log config");
        }
        assert_eq!(topic_key_of("log.retention.ms"), Some("retention.ms"));
        assert_eq!(
            topic_key_of("log.flush.interval.messages"),
            Some("flush.messages")
        );
    }
}
