//! Topic-level log configuration: Kafka's key names and defaults, validated once into a
//! typed struct with units in its field names.

use std::collections::BTreeMap;

/// Which timestamp a batch carries in the log (`message.timestamp.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageTimestampType {
    CreateTime,
    LogAppendTime,
}

/// `cleanup.policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanupPolicy {
    Delete,
    Compact,
    CompactDelete,
}

impl CleanupPolicy {
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }
}

/// When appended data reaches the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Like Kafka: data sits in the page cache; fsync on segment roll, on `flush.messages`
    /// / `flush.ms`, on clean close. Durability comes from replication.
    PageCache,
    /// The caller makes each acknowledged offset durable with `Log::sync_to` (group commit).
    SyncOnCommit,
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown config key {0}")]
    UnknownKey(String),
    #[error("config {key}: invalid value {value:?}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: &'static str,
    },
}

/// A partition log's configuration. Defaults are Kafka's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is this old.
    pub segment_ms: i64,
    /// `segment.index.bytes`: size each index file is preallocated to; full means roll.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes of batches between offset-index entries.
    pub index_interval_bytes: u64,
    /// `max.message.bytes`: the largest batch (log overhead included) accepted.
    pub max_message_bytes: u64,
    /// `message.timestamp.type`.
    pub message_timestamp_type: MessageTimestampType,
    /// `message.timestamp.before.max.ms`: how far in the past a CreateTime may be.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future a CreateTime may be.
    pub message_timestamp_after_max_ms: i64,
    /// `retention.ms`; -1 keeps data forever.
    pub retention_ms: i64,
    /// `retention.bytes`; -1 means no size limit.
    pub retention_bytes: i64,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long compaction keeps tombstones.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `flush.messages`: fsync after this many records (page-cache mode).
    pub flush_messages: u64,
    /// `flush.ms`: fsync when the last one is this old (page-cache mode).
    pub flush_ms: i64,
    /// `file.delete.delay.ms`: how long deleted segment files linger as `.deleted`.
    pub file_delete_delay_ms: i64,
    /// Not a Kafka key: `strom.durability` (`page-cache` or `sync-on-commit`).
    pub durability: Durability,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            message_timestamp_type: MessageTimestampType::CreateTime,
            message_timestamp_before_max_ms: i64::MAX,
            // Kafka 4.0 (KIP-1030) bounds future timestamps to one hour by default.
            message_timestamp_after_max_ms: 3_600_000,
            retention_ms: 7 * DAY_MS,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: DAY_MS,
            min_compaction_lag_ms: 0,
            flush_messages: i64::MAX as u64,
            flush_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
            durability: Durability::PageCache,
        }
    }
}

/// Entry sizes, needed to bound `segment.index.bytes` from below.
pub(crate) const OFFSET_INDEX_ENTRY_BYTES: u64 = 8;
pub(crate) const TIME_INDEX_ENTRY_BYTES: u64 = 12;

impl LogConfig {
    /// Tiny limits so that tests reach rolls, full indexes and retention quickly.
    pub fn test_min() -> LogConfig {
        LogConfig {
            segment_bytes: 4096,
            segment_index_bytes: 8 * TIME_INDEX_ENTRY_BYTES,
            index_interval_bytes: 256,
            max_message_bytes: 2048,
            message_timestamp_after_max_ms: i64::MAX,
            retention_ms: -1,
            file_delete_delay_ms: 0,
            ..LogConfig::default()
        }
    }

    /// Builds a config from Kafka topic-config pairs on top of the defaults.
    pub fn from_kafka_props<'a>(
        props: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<LogConfig, ConfigError> {
        let mut config = LogConfig::default();
        for (key, value) in props {
            config.set(key, value)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Kafka-named view of the config, e.g. for DescribeConfigs.
    pub fn to_kafka_props(&self) -> BTreeMap<&'static str, String> {
        let mut m = BTreeMap::new();
        m.insert("segment.bytes", self.segment_bytes.to_string());
        m.insert("segment.ms", self.segment_ms.to_string());
        m.insert("segment.index.bytes", self.segment_index_bytes.to_string());
        m.insert(
            "index.interval.bytes",
            self.index_interval_bytes.to_string(),
        );
        m.insert("max.message.bytes", self.max_message_bytes.to_string());
        let ts = match self.message_timestamp_type {
            MessageTimestampType::CreateTime => "CreateTime",
            MessageTimestampType::LogAppendTime => "LogAppendTime",
        };
        m.insert("message.timestamp.type", ts.to_string());
        m.insert(
            "message.timestamp.before.max.ms",
            self.message_timestamp_before_max_ms.to_string(),
        );
        m.insert(
            "message.timestamp.after.max.ms",
            self.message_timestamp_after_max_ms.to_string(),
        );
        m.insert("retention.ms", self.retention_ms.to_string());
        m.insert("retention.bytes", self.retention_bytes.to_string());
        let policy = match self.cleanup_policy {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        };
        m.insert("cleanup.policy", policy.to_string());
        m.insert("delete.retention.ms", self.delete_retention_ms.to_string());
        m.insert(
            "min.compaction.lag.ms",
            self.min_compaction_lag_ms.to_string(),
        );
        m.insert("flush.messages", self.flush_messages.to_string());
        m.insert("flush.ms", self.flush_ms.to_string());
        m.insert(
            "file.delete.delay.ms",
            self.file_delete_delay_ms.to_string(),
        );
        let durability = match self.durability {
            Durability::PageCache => "page-cache",
            Durability::SyncOnCommit => "sync-on-commit",
        };
        m.insert("strom.durability", durability.to_string());
        m
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason| ConfigError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        };
        let int = || {
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| invalid("must be an integer"))
        };
        let non_negative =
            || int().and_then(|v| u64::try_from(v).map_err(|_| invalid("must be an integer >= 0")));
        match key {
            "segment.bytes" => self.segment_bytes = non_negative()?,
            "segment.ms" => self.segment_ms = int()?,
            "segment.index.bytes" => self.segment_index_bytes = non_negative()?,
            "index.interval.bytes" => self.index_interval_bytes = non_negative()?,
            "max.message.bytes" => self.max_message_bytes = non_negative()?,
            "message.timestamp.type" => {
                self.message_timestamp_type = match value {
                    "CreateTime" => MessageTimestampType::CreateTime,
                    "LogAppendTime" => MessageTimestampType::LogAppendTime,
                    _ => return Err(invalid("expected CreateTime or LogAppendTime")),
                }
            }
            "message.timestamp.before.max.ms" => self.message_timestamp_before_max_ms = int()?,
            "message.timestamp.after.max.ms" => self.message_timestamp_after_max_ms = int()?,
            "retention.ms" => self.retention_ms = int()?,
            "retention.bytes" => self.retention_bytes = int()?,
            "cleanup.policy" => {
                let mut parts: Vec<&str> = value.split(',').map(str::trim).collect();
                parts.sort_unstable();
                parts.dedup();
                self.cleanup_policy = match parts.as_slice() {
                    ["delete"] => CleanupPolicy::Delete,
                    ["compact"] => CleanupPolicy::Compact,
                    ["compact", "delete"] => CleanupPolicy::CompactDelete,
                    _ => return Err(invalid("expected delete, compact or compact,delete")),
                }
            }
            "delete.retention.ms" => self.delete_retention_ms = int()?,
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = int()?,
            "flush.messages" => self.flush_messages = non_negative()?,
            "flush.ms" => self.flush_ms = int()?,
            "file.delete.delay.ms" => self.file_delete_delay_ms = int()?,
            "strom.durability" => {
                self.durability = match value {
                    "page-cache" => Durability::PageCache,
                    "sync-on-commit" => Durability::SyncOnCommit,
                    _ => return Err(invalid("expected page-cache or sync-on-commit")),
                }
            }
            _ => return Err(ConfigError::UnknownKey(key.to_string())),
        }
        Ok(())
    }

    /// Checks the ranges Kafka enforces plus what this log's file format needs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, value: String, reason| {
            Err(ConfigError::InvalidValue {
                key: key.to_string(),
                value,
                reason,
            })
        };
        // Positions in the offset index are 32-bit.
        if self.segment_bytes < 64 || self.segment_bytes > i32::MAX as u64 {
            return fail(
                "segment.bytes",
                self.segment_bytes.to_string(),
                "must be an integer from 64 to 2147483647",
            );
        }
        if self.segment_index_bytes < 2 * TIME_INDEX_ENTRY_BYTES
            || self.segment_index_bytes > i32::MAX as u64
        {
            return fail(
                "segment.index.bytes",
                self.segment_index_bytes.to_string(),
                "must be an integer from 24 to 2147483647",
            );
        }
        if self.segment_ms < 1 {
            return fail(
                "segment.ms",
                self.segment_ms.to_string(),
                "must be an integer >= 1",
            );
        }
        if self.max_message_bytes > i32::MAX as u64 {
            return fail(
                "max.message.bytes",
                self.max_message_bytes.to_string(),
                "must be an integer from 0 to 2147483647",
            );
        }
        // Each bound names the key that broke it.
        for (key, value, min) in [
            (
                "message.timestamp.before.max.ms",
                self.message_timestamp_before_max_ms,
                0,
            ),
            (
                "message.timestamp.after.max.ms",
                self.message_timestamp_after_max_ms,
                0,
            ),
            ("retention.ms", self.retention_ms, -1),
            ("retention.bytes", self.retention_bytes, -1),
            ("flush.ms", self.flush_ms, 0),
            ("file.delete.delay.ms", self.file_delete_delay_ms, 0),
            ("delete.retention.ms", self.delete_retention_ms, 0),
        ] {
            if value < min {
                let reason = if min == 0 {
                    "must be an integer >= 0"
                } else {
                    "must be an integer >= -1"
                };
                return fail(key, value.to_string(), reason);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas() {
        let c = LogConfig::default();
        assert_eq!(c.segment_bytes, 1_073_741_824);
        assert_eq!(c.segment_ms, 604_800_000);
        assert_eq!(c.segment_index_bytes, 10_485_760);
        assert_eq!(c.index_interval_bytes, 4096);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.retention_ms, 604_800_000);
        assert_eq!(c.retention_bytes, -1);
        assert_eq!(c.delete_retention_ms, 86_400_000);
        assert_eq!(c.file_delete_delay_ms, 60_000);
        assert!(c.validate().is_ok());
        assert!(LogConfig::test_min().validate().is_ok());
    }

    #[test]
    fn props_round_trip() {
        let c = LogConfig::from_kafka_props([
            ("segment.bytes", "1048576"),
            ("cleanup.policy", "delete,compact"),
            ("message.timestamp.type", "LogAppendTime"),
            ("strom.durability", "sync-on-commit"),
        ])
        .unwrap();
        assert_eq!(c.segment_bytes, 1_048_576);
        assert_eq!(c.cleanup_policy, CleanupPolicy::CompactDelete);
        assert_eq!(c.durability, Durability::SyncOnCommit);
        let props = c.to_kafka_props();
        let again =
            LogConfig::from_kafka_props(props.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(LogConfig::from_kafka_props([("segment.bytes", "-1")]).is_err());
        assert!(LogConfig::from_kafka_props([("segment.bytes", "10")]).is_err());
        assert!(LogConfig::from_kafka_props([("cleanup.policy", "shred")]).is_err());
        assert!(LogConfig::from_kafka_props([("no.such.key", "1")]).is_err());
    }
}
