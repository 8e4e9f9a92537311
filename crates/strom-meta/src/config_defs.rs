//! Kafka's topic-level config definitions: names, types, defaults, valid values.
//!
//! The controller validates CreateTopics and AlterConfigs against these; DescribeConfigs
//! lists every one with its default. Defaults are Kafka's (4.x where 3.x differs, noted).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Kafka's `ConfigDef.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Long,
    Double,
    List,
}

impl ConfigType {
    /// Kafka's `DescribeConfigsResponse.ConfigType` id.
    pub fn kafka_id(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
        }
    }
}

/// The allowed values of a config, checked after the value parses as its type.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Validator {
    Any,
    /// Integer at least this.
    AtLeast(i64),
    /// Integer in this closed range.
    Between(i64, i64),
    /// Integer in the closed range, or exactly the extra value (`-1` meaning "codec default").
    BetweenOr(i64, i64, i64),
    /// Floating point in this closed range.
    RatioBetween(f64, f64),
    /// One of these strings, case-sensitive.
    OneOf(&'static [&'static str]),
    /// A comma-separated list whose items are each one of these.
    ListOf(&'static [&'static str]),
    /// `*`, or a list of `partition:broker` pairs.
    ThrottledReplicas,
}

/// One topic-level config.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ConfigDef {
    pub name: &'static str,
    pub config_type: ConfigType,
    pub default: &'static str,
    pub validator: Validator,
    pub doc: &'static str,
    pub sensitive: bool,
    /// The broker-level key whose value is this config's cluster default.
    pub broker_synonym: Option<&'static str>,
}

const LONG_MAX: &str = "9223372036854775807";

macro_rules! def {
    ($name:expr, $ty:ident, $default:expr, $validator:expr, $synonym:expr, $doc:expr) => {
        ConfigDef {
            name: $name,
            config_type: ConfigType::$ty,
            default: $default,
            validator: $validator,
            doc: $doc,
            sensitive: false,
            broker_synonym: $synonym,
        }
    };
}

static TOPIC_CONFIG_DEFS: &[ConfigDef] = &[
    def!("cleanup.policy", List, "delete", Validator::ListOf(&["compact", "delete"]), Some("log.cleanup.policy"),
        "Retention policy for old segments: delete, compact, or both."),
    def!("compression.gzip.level", Int, "-1", Validator::BetweenOr(1, 9, -1), Some("compression.gzip.level"),
        "Compression level when compression.type is gzip."),
    def!("compression.lz4.level", Int, "9", Validator::Between(1, 17), Some("compression.lz4.level"),
        "Compression level when compression.type is lz4."),
    def!("compression.type", String, "producer",
        Validator::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), Some("compression.type"),
        "Final compression of the topic's data; producer keeps the producer's codec."),
    def!("compression.zstd.level", Int, "3", Validator::Between(-131072, 22), Some("compression.zstd.level"),
        "Compression level when compression.type is zstd."),
    def!("delete.retention.ms", Long, "86400000", Validator::AtLeast(0), Some("log.cleaner.delete.retention.ms"),
        "How long delete tombstones are kept on compacted topics."),
    def!("file.delete.delay.ms", Long, "60000", Validator::AtLeast(0), Some("log.segment.delete.delay.ms"),
        "Wait before deleting a file from the file system."),
    def!("flush.messages", Long, LONG_MAX, Validator::AtLeast(1), Some("log.flush.interval.messages"),
        "Messages written between forced fsyncs of the log."),
    def!("flush.ms", Long, LONG_MAX, Validator::AtLeast(0), Some("log.flush.interval.ms"),
        "Time between forced fsyncs of the log."),
    def!("follower.replication.throttled.replicas", List, "", Validator::ThrottledReplicas,
        Some("follower.replication.throttled.replicas"),
        "Replicas whose log replication is throttled on the follower side."),
    def!("index.interval.bytes", Int, "4096", Validator::AtLeast(0), Some("log.index.interval.bytes"),
        "Bytes of log between offset index entries."),
    def!("leader.replication.throttled.replicas", List, "", Validator::ThrottledReplicas,
        Some("leader.replication.throttled.replicas"),
        "Replicas whose log replication is throttled on the leader side."),
    def!("local.retention.bytes", Long, "-2", Validator::AtLeast(-2), Some("log.local.retention.bytes"),
        "Local bytes kept before tiered-storage deletion; -2 means retention.bytes."),
    def!("local.retention.ms", Long, "-2", Validator::AtLeast(-2), Some("log.local.retention.ms"),
        "Local time kept before tiered-storage deletion; -2 means retention.ms."),
    def!("max.compaction.lag.ms", Long, LONG_MAX, Validator::AtLeast(1), Some("log.cleaner.max.compaction.lag.ms"),
        "Longest a message stays ineligible for compaction."),
    def!("max.message.bytes", Int, "1048588", Validator::AtLeast(0), Some("message.max.bytes"),
        "Largest record batch size allowed."),
    def!("message.timestamp.after.max.ms", Long, "3600000", Validator::AtLeast(0),
        Some("log.message.timestamp.after.max.ms"),
        "Largest allowed amount a CreateTime timestamp may be ahead of the broker (Kafka 3.x: Long.MAX)."),
    def!("message.timestamp.before.max.ms", Long, LONG_MAX, Validator::AtLeast(0),
        Some("log.message.timestamp.before.max.ms"),
        "Largest allowed amount a CreateTime timestamp may be behind the broker."),
    def!("message.timestamp.type", String, "CreateTime", Validator::OneOf(&["CreateTime", "LogAppendTime"]),
        Some("log.message.timestamp.type"),
        "Whether record timestamps are the producer's (CreateTime) or the broker's (LogAppendTime)."),
    def!("min.cleanable.dirty.ratio", Double, "0.5", Validator::RatioBetween(0.0, 1.0),
        Some("log.cleaner.min.cleanable.ratio"),
        "Dirty fraction of the log at which compaction starts."),
    def!("min.compaction.lag.ms", Long, "0", Validator::AtLeast(0), Some("log.cleaner.min.compaction.lag.ms"),
        "Shortest a message stays uncompacted."),
    def!("min.insync.replicas", Int, "1", Validator::AtLeast(1), Some("min.insync.replicas"),
        "Fewest in-sync replicas an acks=all produce needs."),
    def!("preallocate", Boolean, "false", Validator::Any, Some("log.preallocate"),
        "Preallocate the file of a new segment."),
    def!("remote.storage.enable", Boolean, "false", Validator::Any, None,
        "Tier the topic's segments to remote storage (not supported by Strom)."),
    def!("retention.bytes", Long, "-1", Validator::Any, Some("log.retention.bytes"),
        "Largest size of a partition before old segments are deleted; -1 is unlimited."),
    def!("retention.ms", Long, "604800000", Validator::AtLeast(-1), Some("log.retention.ms"),
        "Longest time a segment is kept before deletion; -1 is unlimited."),
    def!("segment.bytes", Int, "1073741824", Validator::AtLeast(14), Some("log.segment.bytes"),
        "Size of a log segment file."),
    def!("segment.index.bytes", Int, "10485760", Validator::AtLeast(4), Some("log.index.size.max.bytes"),
        "Size of the index file of a segment."),
    def!("segment.jitter.ms", Long, "0", Validator::AtLeast(0), Some("log.roll.jitter.ms"),
        "Largest random jitter subtracted from segment.ms."),
    def!("segment.ms", Long, "604800000", Validator::AtLeast(1), Some("log.roll.ms"),
        "Time after which a segment is rolled even if not full."),
    def!("unclean.leader.election.enable", Boolean, "false", Validator::Any,
        Some("unclean.leader.election.enable"),
        "Allow out-of-sync replicas to become leader, at the cost of data loss."),
];

/// Every topic-level config, in name order.
pub fn topic_config_defs() -> &'static [ConfigDef] {
    TOPIC_CONFIG_DEFS
}

pub fn topic_config_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIG_DEFS.iter().find(|d| d.name == name)
}

/// Why a config value was refused; the message follows Kafka's wording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidConfig {
    pub message: String,
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ConfigDef {
    /// Checks `value` parses as this config's type and satisfies its validator.
    pub fn validate(&self, value: &str) -> Result<(), InvalidConfig> {
        let invalid = |why: &str| InvalidConfig {
            message: format!(
                "Invalid value {value} for configuration {}: {why}",
                self.name
            ),
        };
        let trimmed = value.trim();
        match self.config_type {
            ConfigType::Boolean => {
                if !trimmed.eq_ignore_ascii_case("true") && !trimmed.eq_ignore_ascii_case("false") {
                    return Err(invalid("Expected value to be either true or false"));
                }
            }
            ConfigType::Int => {
                let n = trimmed
                    .parse::<i32>()
                    .map_err(|_| invalid("Not a number of type INT"))?;
                check_integer(self.validator, i64::from(n)).map_err(|why| invalid(&why))?;
            }
            ConfigType::Long => {
                let n = trimmed
                    .parse::<i64>()
                    .map_err(|_| invalid("Not a number of type LONG"))?;
                check_integer(self.validator, n).map_err(|why| invalid(&why))?;
            }
            ConfigType::Double => {
                let n = trimmed
                    .parse::<f64>()
                    .map_err(|_| invalid("Not a number of type DOUBLE"))?;
                if let Validator::RatioBetween(lo, hi) = self.validator {
                    if !(lo..=hi).contains(&n) {
                        return Err(invalid(&format!("Value must be in the range [{lo}, {hi}]")));
                    }
                }
            }
            ConfigType::String => {
                if let Validator::OneOf(allowed) = self.validator {
                    if !allowed.contains(&trimmed) {
                        return Err(invalid(&format!(
                            "String must be one of: {}",
                            allowed.join(", ")
                        )));
                    }
                }
            }
            ConfigType::List => check_list(self.validator, trimmed).map_err(|why| invalid(&why))?,
        }
        Ok(())
    }
}

fn check_integer(validator: Validator, n: i64) -> Result<(), String> {
    match validator {
        Validator::AtLeast(min) if n < min => Err(format!("Value must be at least {min}")),
        Validator::Between(lo, hi) if !(lo..=hi).contains(&n) => {
            Err(format!("Value must be in the range [{lo}, {hi}]"))
        }
        Validator::BetweenOr(lo, hi, extra) if n != extra && !(lo..=hi).contains(&n) => Err(
            format!("Value must be {extra} or in the range [{lo}, {hi}]"),
        ),
        _ => Ok(()),
    }
}

/// Splits a Kafka list value: comma-separated, items trimmed, empty string is empty list.
pub fn split_list(value: &str) -> Vec<&str> {
    if value.trim().is_empty() {
        return Vec::new();
    }
    value.split(',').map(str::trim).collect()
}

fn check_list(validator: Validator, value: &str) -> Result<(), String> {
    let items = split_list(value);
    match validator {
        Validator::ListOf(allowed) => {
            if let Some(bad) = items.iter().find(|i| !allowed.contains(i)) {
                return Err(format!(
                    "Invalid value {bad}; allowed values are {}",
                    allowed.join(", ")
                ));
            }
        }
        Validator::ThrottledReplicas => {
            if items == ["*"] {
                return Ok(());
            }
            let pair_ok = |item: &&str| {
                let mut parts = item.split(':');
                let partition = parts.next().map(|p| p.trim().parse::<u32>().is_ok());
                let broker = parts.next().map(|b| b.trim().parse::<u32>().is_ok());
                partition == Some(true) && broker == Some(true) && parts.next().is_none()
            };
            if !items.iter().all(pair_ok) {
                return Err(
                    "must be the literal '*' or a list of replicas in the format \
                            [partitionId]:[brokerId],[partitionId]:[brokerId],..."
                        .to_owned(),
                );
            }
        }
        _ => {}
    }
    Ok(())
}

/// Where a described config value comes from (Kafka's `ConfigSource` ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigSource {
    DynamicTopicConfig,
    DynamicBrokerConfig,
    DynamicDefaultBrokerConfig,
    StaticBrokerConfig,
    DefaultConfig,
}

impl ConfigSource {
    pub fn kafka_id(self) -> i8 {
        match self {
            ConfigSource::DynamicTopicConfig => 1,
            ConfigSource::DynamicBrokerConfig => 2,
            ConfigSource::DynamicDefaultBrokerConfig => 3,
            ConfigSource::StaticBrokerConfig => 4,
            ConfigSource::DefaultConfig => 5,
        }
    }
}

/// One config as DescribeConfigs or CreateTopics report it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
    pub config_type: ConfigType,
    /// Not carried over the wire: the receiver looks it up by name.
    #[serde(skip_deserializing)]
    pub doc: &'static str,
}

/// Every topic config with its effective value: the topic's override if set, else Kafka's
/// default. Broker-level overrides of defaults are the broker's to layer on top.
pub fn describe_topic_configs<'a>(overrides: impl Fn(&str) -> Option<&'a str>) -> Vec<ConfigEntry> {
    topic_config_defs()
        .iter()
        .map(|def| {
            let (value, source) = match overrides(def.name) {
                Some(v) => (v.to_owned(), ConfigSource::DynamicTopicConfig),
                None => (def.default.to_owned(), ConfigSource::DefaultConfig),
            };
            ConfigEntry {
                name: def.name.to_owned(),
                value: if def.sensitive { None } else { Some(value) },
                source,
                read_only: false,
                sensitive: def.sensitive,
                config_type: def.config_type,
                doc: def.doc,
            }
        })
        .collect()
}
