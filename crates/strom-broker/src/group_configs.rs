//! Group configs (Kafka 4.2's `GroupConfig`, ConfigResource type GROUP = 32): per-group
//! overrides of the broker's `group.*` settings, set with (Incremental)AlterConfigs and
//! read with DescribeConfigs (`kafka-configs.sh --entity-type groups`).
//!
//! Storage: metadata-log config records with resource kind `Group`, as topic configs; the
//! controller stores them as given and this module validates them on the broker before the
//! request reaches the controller (the broker knows the `group.*.min/max` bounds). A group
//! need not exist to carry configs (as Kafka). The check reads the group's current
//! overrides from the image the request arrived with: two concurrent changes of one group
//! are each checked against that image, not against each other.
//!
//! Keys (Kafka 4.2): `consumer.session.timeout.ms`, `consumer.heartbeat.interval.ms`,
//! `share.session.timeout.ms`, `share.heartbeat.interval.ms`,
//! `share.record.lock.duration.ms`, `share.auto.offset.reset` and `share.isolation.level`.
//! An unknown key (the `streams.*` keys too: this broker has no streams groups) is
//! INVALID_CONFIG. A set value must lie within the broker's bounds; a session timeout must
//! exceed its heartbeat interval (the unset one taken from the broker).
//!
//! Use: [`settings`] resolves one group's effective values (override, else the broker's
//! value) for the share data plane (`share_partitions.rs`), the share group coordinator
//! (session timeout, heartbeat interval) and the KIP-848 consumer coordinator.

use std::collections::BTreeMap;

use strom_meta::{ConfigResource, ConfigResourceKind, MetadataImage};

use crate::config::{BrokerConfig, ConfigError};
use crate::config_keys::Props;

pub const CONSUMER_SESSION_TIMEOUT_MS: &str = "consumer.session.timeout.ms";
pub const CONSUMER_HEARTBEAT_INTERVAL_MS: &str = "consumer.heartbeat.interval.ms";
pub const SHARE_SESSION_TIMEOUT_MS: &str = "share.session.timeout.ms";
pub const SHARE_HEARTBEAT_INTERVAL_MS: &str = "share.heartbeat.interval.ms";
pub const SHARE_RECORD_LOCK_DURATION_MS: &str = "share.record.lock.duration.ms";
pub const SHARE_AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";
pub const SHARE_ISOLATION_LEVEL: &str = "share.isolation.level";
pub const STREAMS_SESSION_TIMEOUT_MS: &str = "streams.session.timeout.ms";
pub const STREAMS_HEARTBEAT_INTERVAL_MS: &str = "streams.heartbeat.interval.ms";
pub const STREAMS_NUM_STANDBY_REPLICAS: &str = "streams.num.standby.replicas";

const READ_COMMITTED: &str = "read_committed";
const READ_UNCOMMITTED: &str = "read_uncommitted";
const BY_DURATION: &str = "by_duration:";

/// How a key's value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// An INT at least this.
    Int(i32),
    /// `latest`, `earliest` or `by_duration:<ISO 8601 duration>`.
    OffsetReset,
    /// `read_committed` or `read_uncommitted`.
    IsolationLevel,
}

/// One group config key.
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    pub name: &'static str,
    pub kind: ValueKind,
    pub doc: &'static str,
}

/// Every group config key, in Kafka's order.
pub const KEYS: [KeyDef; 10] = [
    KeyDef {
        name: CONSUMER_SESSION_TIMEOUT_MS,
        kind: ValueKind::Int(1),
        doc: "The timeout to detect client failures when using the consumer group protocol.",
    },
    KeyDef {
        name: CONSUMER_HEARTBEAT_INTERVAL_MS,
        kind: ValueKind::Int(1),
        doc: "The heartbeat interval given to the members of a consumer group.",
    },
    KeyDef {
        name: SHARE_SESSION_TIMEOUT_MS,
        kind: ValueKind::Int(1),
        doc: "The timeout to detect client failures when using the share group protocol.",
    },
    KeyDef {
        name: SHARE_HEARTBEAT_INTERVAL_MS,
        kind: ValueKind::Int(1),
        doc: "The heartbeat interval given to the members of a share group.",
    },
    KeyDef {
        name: SHARE_RECORD_LOCK_DURATION_MS,
        kind: ValueKind::Int(1000),
        doc: "The record acquisition lock duration in milliseconds for share groups.",
    },
    KeyDef {
        name: SHARE_AUTO_OFFSET_RESET,
        kind: ValueKind::OffsetReset,
        doc: "The strategy to initialize the share-partition start offset: earliest, latest \
              or by_duration:<ISO 8601 duration> (the first record at or after now minus the \
              duration).",
    },
    KeyDef {
        name: SHARE_ISOLATION_LEVEL,
        kind: ValueKind::IsolationLevel,
        doc: "Controls how to read records written transactionally: read_committed delivers \
              only committed transactional records, read_uncommitted every record.",
    },
    KeyDef {
        name: STREAMS_SESSION_TIMEOUT_MS,
        kind: ValueKind::Int(1),
        doc: "The timeout to detect client failures when using the streams group protocol.",
    },
    KeyDef {
        name: STREAMS_HEARTBEAT_INTERVAL_MS,
        kind: ValueKind::Int(1),
        doc: "The heartbeat interval given to the members of a streams group.",
    },
    KeyDef {
        name: STREAMS_NUM_STANDBY_REPLICAS,
        kind: ValueKind::Int(0),
        doc: "The number of standby replicas for each task of a streams group.",
    },
];

/// The key's definition.
pub fn key_def(name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.name == name)
}

/// The broker's bounds of the group configs (`group.consumer.*`, `group.share.*` min/max).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub consumer_session_timeout_ms: (i32, i32),
    pub consumer_heartbeat_interval_ms: (i32, i32),
    pub share_session_timeout_ms: (i32, i32),
    pub share_heartbeat_interval_ms: (i32, i32),
    pub share_record_lock_duration_ms: (i32, i32),
    pub streams_session_timeout_ms: (i32, i32),
    pub streams_heartbeat_interval_ms: (i32, i32),
    /// 0 to `group.streams.max.standby.replicas`.
    pub streams_num_standby_replicas: (i32, i32),
}

impl Bounds {
    pub(crate) fn from_props(props: &Props<'_>) -> Result<Bounds, ConfigError> {
        let pair = |min: &str, max: &str| -> Result<(i32, i32), ConfigError> {
            Ok((props.int(min)?, props.int(max)?))
        };
        Ok(Bounds {
            consumer_session_timeout_ms: pair(
                "group.consumer.min.session.timeout.ms",
                "group.consumer.max.session.timeout.ms",
            )?,
            consumer_heartbeat_interval_ms: pair(
                "group.consumer.min.heartbeat.interval.ms",
                "group.consumer.max.heartbeat.interval.ms",
            )?,
            share_session_timeout_ms: pair(
                "group.share.min.session.timeout.ms",
                "group.share.max.session.timeout.ms",
            )?,
            share_heartbeat_interval_ms: pair(
                "group.share.min.heartbeat.interval.ms",
                "group.share.max.heartbeat.interval.ms",
            )?,
            share_record_lock_duration_ms: pair(
                "group.share.min.record.lock.duration.ms",
                "group.share.max.record.lock.duration.ms",
            )?,
            streams_session_timeout_ms: pair(
                "group.streams.min.session.timeout.ms",
                "group.streams.max.session.timeout.ms",
            )?,
            streams_heartbeat_interval_ms: pair(
                "group.streams.min.heartbeat.interval.ms",
                "group.streams.max.heartbeat.interval.ms",
            )?,
            streams_num_standby_replicas: (0, props.int("group.streams.max.standby.replicas")?),
        })
    }

    /// The bound of an INT key, with the names of the broker keys that set it.
    fn of(&self, key: &str) -> Option<((i32, i32), &'static str, &'static str)> {
        Some(match key {
            CONSUMER_SESSION_TIMEOUT_MS => (
                self.consumer_session_timeout_ms,
                "group.consumer.min.session.timeout.ms",
                "group.consumer.max.session.timeout.ms",
            ),
            CONSUMER_HEARTBEAT_INTERVAL_MS => (
                self.consumer_heartbeat_interval_ms,
                "group.consumer.min.heartbeat.interval.ms",
                "group.consumer.max.heartbeat.interval.ms",
            ),
            SHARE_SESSION_TIMEOUT_MS => (
                self.share_session_timeout_ms,
                "group.share.min.session.timeout.ms",
                "group.share.max.session.timeout.ms",
            ),
            SHARE_HEARTBEAT_INTERVAL_MS => (
                self.share_heartbeat_interval_ms,
                "group.share.min.heartbeat.interval.ms",
                "group.share.max.heartbeat.interval.ms",
            ),
            SHARE_RECORD_LOCK_DURATION_MS => (
                self.share_record_lock_duration_ms,
                "group.share.min.record.lock.duration.ms",
                "group.share.max.record.lock.duration.ms",
            ),
            STREAMS_SESSION_TIMEOUT_MS => (
                self.streams_session_timeout_ms,
                "group.streams.min.session.timeout.ms",
                "group.streams.max.session.timeout.ms",
            ),
            STREAMS_HEARTBEAT_INTERVAL_MS => (
                self.streams_heartbeat_interval_ms,
                "group.streams.min.heartbeat.interval.ms",
                "group.streams.max.heartbeat.interval.ms",
            ),
            STREAMS_NUM_STANDBY_REPLICAS => (
                self.streams_num_standby_replicas,
                "0",
                "group.streams.max.standby.replicas",
            ),
            _ => return None,
        })
    }
}

/// The broker's value of a group config key (what a group without the override uses).
pub fn broker_value(config: &BrokerConfig, key: &str) -> Option<String> {
    Some(match key {
        CONSUMER_SESSION_TIMEOUT_MS => config.group_consumer_session_timeout_ms.to_string(),
        CONSUMER_HEARTBEAT_INTERVAL_MS => config.group_consumer_heartbeat_interval_ms.to_string(),
        SHARE_SESSION_TIMEOUT_MS => config.group_share_session_timeout_ms.to_string(),
        SHARE_HEARTBEAT_INTERVAL_MS => config.group_share_heartbeat_interval_ms.to_string(),
        SHARE_RECORD_LOCK_DURATION_MS => config.share.record_lock_duration_ms.to_string(),
        SHARE_AUTO_OFFSET_RESET => "latest".to_string(),
        SHARE_ISOLATION_LEVEL => READ_UNCOMMITTED.to_string(),
        STREAMS_SESSION_TIMEOUT_MS => config.group_streams_session_timeout_ms.to_string(),
        STREAMS_HEARTBEAT_INTERVAL_MS => config.group_streams_heartbeat_interval_ms.to_string(),
        STREAMS_NUM_STANDBY_REPLICAS => config.group_streams_num_standby_replicas.to_string(),
        _ => return None,
    })
}

/// Where a new share partition starts (`share.auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Latest,
    Earliest,
    /// The first record with a timestamp at or after now minus this many milliseconds
    /// (the high watermark when there is none).
    ByDurationMs(i64),
}

/// Parses a `share.auto.offset.reset` value (case-insensitive, as Kafka lower-cases it).
pub fn parse_offset_reset(value: &str) -> Result<OffsetReset, String> {
    let lower = value.trim().to_ascii_lowercase();
    match lower.as_str() {
        "latest" => Ok(OffsetReset::Latest),
        "earliest" => Ok(OffsetReset::Earliest),
        other => match other.strip_prefix(BY_DURATION) {
            Some(duration) => match parse_iso_duration_ms(duration.trim()) {
                Some(ms) if ms >= 0 => Ok(OffsetReset::ByDurationMs(ms)),
                Some(_) => Err(format!(
                    "Invalid value {value} for configuration {SHARE_AUTO_OFFSET_RESET}: \
                     Negative duration is not supported."
                )),
                None => Err(format!(
                    "Invalid value {value} for configuration {SHARE_AUTO_OFFSET_RESET}: \
                     Unable to parse duration string in by_duration (expected ISO 8601, \
                     e.g. by_duration:PT1H)."
                )),
            },
            None => Err(format!(
                "Invalid value {value} for configuration {SHARE_AUTO_OFFSET_RESET}: \
                 Invalid value `{value}` for configuration {SHARE_AUTO_OFFSET_RESET}. The \
                 value must be either 'earliest', 'latest' or of the format \
                 'by_duration:<PnDTnHnMn.nS.>'."
            )),
        },
    }
}

/// An ISO 8601 duration as Java's `Duration.parse` reads it (`[-+]P[nD][T[nH][nM][n[.n]S]]`,
/// case-insensitive, signs on every part), in milliseconds. `None` if it does not parse or
/// overflows.
pub fn parse_iso_duration_ms(text: &str) -> Option<i64> {
    let upper = text.to_ascii_uppercase();
    let (negative, rest) = match upper.as_bytes().first() {
        Some(b'-') => (true, &upper[1..]),
        Some(b'+') => (false, &upper[1..]),
        _ => (false, upper.as_str()),
    };
    let rest = rest.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => {
            if time.is_empty() {
                return None;
            }
            (date, Some(time))
        }
        None => (rest, None),
    };
    let mut total: i64 = 0;
    let mut parts = 0;
    if !date.is_empty() {
        let days = date.strip_suffix('D')?;
        total = total.checked_add(signed_int(days)?.checked_mul(86_400_000)?)?;
        parts += 1;
    }
    if let Some(mut time) = time {
        for (unit, ms) in [('H', 3_600_000_i64), ('M', 60_000)] {
            if let Some(at) = time.find(unit) {
                let n = signed_int(&time[..at])?;
                total = total.checked_add(n.checked_mul(ms)?)?;
                time = &time[at + 1..];
                parts += 1;
            }
        }
        if !time.is_empty() {
            let seconds = time.strip_suffix('S')?;
            let (whole, fraction) = match seconds.split_once(['.', ',']) {
                Some((whole, fraction)) => (whole, fraction),
                None => (seconds, ""),
            };
            if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let whole_ms = signed_int(whole)?.checked_mul(1000)?;
            let mut fraction_ms: i64 = 0;
            for (i, digit) in fraction.bytes().take(3).enumerate() {
                fraction_ms += i64::from(digit - b'0') * [100, 10, 1][i];
            }
            let fraction_ms = if whole.starts_with('-') {
                -fraction_ms
            } else {
                fraction_ms
            };
            total = total.checked_add(whole_ms.checked_add(fraction_ms)?)?;
            parts += 1;
        }
    }
    if parts == 0 {
        return None;
    }
    Some(if negative {
        total.checked_neg()?
    } else {
        total
    })
}

fn signed_int(text: &str) -> Option<i64> {
    let digits = text.trim_start_matches(['+', '-']);
    if digits.is_empty() || text.len() - digits.len() > 1 {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Why a value of `key` is refused (Kafka's ConfigDef wording), `None` if it is valid.
fn invalid_value(bounds: &Bounds, key: &str, value: &str) -> Option<String> {
    let Some(def) = key_def(key) else {
        return Some(format!("Unknown group config name: {key}"));
    };
    match def.kind {
        ValueKind::Int(at_least) => {
            let Ok(n) = value.trim().parse::<i32>() else {
                return Some(format!(
                    "Invalid value {value} for configuration {key}: Not a number of type INT"
                ));
            };
            if n < at_least {
                return Some(format!(
                    "Invalid value {n} for configuration {key}: Value must be at least {at_least}"
                ));
            }
            let ((min, max), min_key, max_key) = bounds.of(key)?;
            if n < min {
                return Some(format!(
                    "{key} must be greater than or equal to {min_key} ({min})"
                ));
            }
            if n > max {
                return Some(format!(
                    "{key} must be less than or equal to {max_key} ({max})"
                ));
            }
            None
        }
        ValueKind::OffsetReset => parse_offset_reset(value).err(),
        ValueKind::IsolationLevel => {
            if value == READ_COMMITTED || value == READ_UNCOMMITTED {
                None
            } else {
                Some(format!(
                    "Invalid value {value} for configuration {key}: String must be one of: \
                     {READ_COMMITTED}, {READ_UNCOMMITTED}"
                ))
            }
        }
    }
}

/// Checks a group's whole set of overrides after a change (Kafka's `GroupConfig.validate`):
/// known keys, valid values within the broker's bounds, each session timeout greater than
/// its heartbeat interval (the unset one taken from the broker). The message says which key
/// and why.
pub fn validate(config: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Result<(), String> {
    let bounds = &config.group_config_bounds;
    for (key, value) in overrides {
        if let Some(message) = invalid_value(bounds, key, value) {
            return Err(message);
        }
    }
    let effective = |key: &str| -> i64 {
        overrides
            .get(key)
            .or(broker_value(config, key).as_ref())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    for (session, heartbeat) in [
        (CONSUMER_SESSION_TIMEOUT_MS, CONSUMER_HEARTBEAT_INTERVAL_MS),
        (SHARE_SESSION_TIMEOUT_MS, SHARE_HEARTBEAT_INTERVAL_MS),
        (STREAMS_SESSION_TIMEOUT_MS, STREAMS_HEARTBEAT_INTERVAL_MS),
    ] {
        let touched = overrides.contains_key(session) || overrides.contains_key(heartbeat);
        if touched && effective(session) <= effective(heartbeat) {
            return Err(format!("{session} must be greater than {heartbeat}"));
        }
    }
    Ok(())
}

/// The config resource of `group_id`.
pub fn resource(group_id: &str) -> ConfigResource {
    ConfigResource {
        kind: ConfigResourceKind::Group,
        name: group_id.to_string(),
    }
}

/// One group's effective settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub consumer_session_timeout_ms: i32,
    pub consumer_heartbeat_interval_ms: i32,
    pub share_session_timeout_ms: i32,
    pub share_heartbeat_interval_ms: i32,
    pub share_record_lock_duration_ms: u64,
    pub share_auto_offset_reset: OffsetReset,
    pub share_read_committed: bool,
    pub streams_session_timeout_ms: i32,
    pub streams_heartbeat_interval_ms: i32,
    pub streams_num_standby_replicas: i32,
}

/// `group_id`'s settings: each override set on it, else the broker's value. An override
/// that no longer parses (it was checked when set) falls back to the broker's value; one
/// outside bounds since tightened is clamped into them (as Kafka 4.3 evaluates them).
pub fn settings(config: &BrokerConfig, image: &MetadataImage, group_id: &str) -> Settings {
    let overrides = image.configs(&resource(group_id));
    let bounds = &config.group_config_bounds;
    let int = |key: &str, default: i32| -> i32 {
        let set = overrides
            .and_then(|o| o.get(key))
            .and_then(|v| v.trim().parse::<i32>().ok());
        match (set, bounds.of(key)) {
            (Some(n), Some(((min, max), _, _))) if min <= max => n.clamp(min, max),
            (Some(n), _) => n,
            (None, _) => default,
        }
    };
    let reset = overrides
        .and_then(|o| o.get(SHARE_AUTO_OFFSET_RESET))
        .and_then(|v| parse_offset_reset(v).ok())
        .unwrap_or(OffsetReset::Latest);
    let read_committed = overrides
        .and_then(|o| o.get(SHARE_ISOLATION_LEVEL))
        .is_some_and(|v| v == READ_COMMITTED);
    let lock_default = i32::try_from(config.share.record_lock_duration_ms).unwrap_or(i32::MAX);
    Settings {
        consumer_session_timeout_ms: int(
            CONSUMER_SESSION_TIMEOUT_MS,
            config.group_consumer_session_timeout_ms,
        ),
        consumer_heartbeat_interval_ms: int(
            CONSUMER_HEARTBEAT_INTERVAL_MS,
            config.group_consumer_heartbeat_interval_ms,
        ),
        share_session_timeout_ms: int(
            SHARE_SESSION_TIMEOUT_MS,
            config.group_share_session_timeout_ms,
        ),
        share_heartbeat_interval_ms: int(
            SHARE_HEARTBEAT_INTERVAL_MS,
            config.group_share_heartbeat_interval_ms,
        ),
        share_record_lock_duration_ms: u64::try_from(int(
            SHARE_RECORD_LOCK_DURATION_MS,
            lock_default,
        ))
        .unwrap_or(config.share.record_lock_duration_ms),
        share_auto_offset_reset: reset,
        share_read_committed: read_committed,
        streams_session_timeout_ms: int(
            STREAMS_SESSION_TIMEOUT_MS,
            config.group_streams_session_timeout_ms,
        ),
        streams_heartbeat_interval_ms: int(
            STREAMS_HEARTBEAT_INTERVAL_MS,
            config.group_streams_heartbeat_interval_ms,
        ),
        streams_num_standby_replicas: int(
            STREAMS_NUM_STANDBY_REPLICAS,
            config.group_streams_num_standby_replicas,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations_parse_as_java_does() {
        assert_eq!(parse_iso_duration_ms("PT1H"), Some(3_600_000));
        assert_eq!(parse_iso_duration_ms("pt15m"), Some(900_000));
        assert_eq!(parse_iso_duration_ms("P1DT2H3M4.5S"), Some(93_784_500));
        assert_eq!(parse_iso_duration_ms("PT0.001S"), Some(1));
        assert_eq!(parse_iso_duration_ms("P2D"), Some(172_800_000));
        assert_eq!(parse_iso_duration_ms("-PT1S"), Some(-1000));
        assert_eq!(parse_iso_duration_ms("PT-1H"), Some(-3_600_000));
        for bad in [
            "",
            "P",
            "PT",
            "1H",
            "PT1X",
            "P1H",
            "PT1.0000000001S",
            "PT--1S",
            "PTS",
        ] {
            assert_eq!(parse_iso_duration_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn offset_reset_values() {
        assert_eq!(parse_offset_reset("EARLIEST"), Ok(OffsetReset::Earliest));
        assert_eq!(parse_offset_reset("latest"), Ok(OffsetReset::Latest));
        assert_eq!(
            parse_offset_reset("by_duration:PT10M"),
            Ok(OffsetReset::ByDurationMs(600_000))
        );
        assert!(parse_offset_reset("by_duration:-PT10M").is_err());
        assert!(parse_offset_reset("none").is_err());
    }

    #[test]
    fn validation_follows_kafka() {
        let config = BrokerConfig::default_single_node();
        let set = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(validate(&config, &set(&[("share.record.lock.duration.ms", "20000")])).is_ok());
        let refused = [
            ("nope", "1", "Unknown group config name: nope"),
            (
                "streams.session.timeout.ms",
                "70000",
                "group.streams.max.session",
            ),
            ("share.record.lock.duration.ms", "999", "at least 1000"),
            (
                "share.record.lock.duration.ms",
                "14000",
                "group.share.min.record.lock",
            ),
            (
                "share.record.lock.duration.ms",
                "70000",
                "group.share.max.record.lock",
            ),
            ("share.record.lock.duration.ms", "x", "Not a number"),
            ("share.isolation.level", "READ_COMMITTED", "must be one of"),
            ("share.auto.offset.reset", "none", "earliest"),
            (
                "consumer.session.timeout.ms",
                "70000",
                "group.consumer.max.session",
            ),
        ];
        for (key, value, says) in refused {
            let message = validate(&config, &set(&[(key, value)])).unwrap_err();
            assert!(message.contains(says), "{key}={value}: {message}");
        }
        // The heartbeat must stay below the session timeout, the unset one the broker's.
        let mut config = config;
        config.group_config_bounds.share_heartbeat_interval_ms = (1, 100_000);
        let message = validate(&config, &set(&[("share.heartbeat.interval.ms", "45000")]));
        assert_eq!(
            message.unwrap_err(),
            "share.session.timeout.ms must be greater than share.heartbeat.interval.ms"
        );
    }
}
