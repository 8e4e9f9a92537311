//! Parsers for option values (`k=v` pairs, `--offset` positions, `--to-datetime` times,
//! `TOPIC:P1,P2` selections); each error is a sentence clap prints as a usage error (exit 2).

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone};

/// `key=value`; the value may be empty and may contain `=`.
pub fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// A record header: `key=value`, or a bare `key` for a header with a null value.
pub fn header(text: &str) -> Result<(String, Option<String>), String> {
    match text.split_once('=') {
        Some(("", _)) => Err(format!("header {text:?} has an empty key")),
        Some((key, value)) => Ok((key.to_string(), Some(value.to_string()))),
        None if text.is_empty() => Err("header has an empty key".to_string()),
        None => Ok((text.to_string(), None)),
    }
}

/// Where `consume --offset` starts in each partition (kcat's `-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    Beginning,
    End,
    /// An absolute offset.
    At(i64),
    /// This many records before the end (`-N`).
    BeforeEnd(i64),
    /// The first record at or after this timestamp in ms (`s@MS`).
    Timestamp(i64),
}

pub fn start_offset(text: &str) -> Result<StartOffset, String> {
    let bad = || {
        format!("expected beginning, end, an offset N, -N (N before the end) or s@TIMESTAMP_MS, got {text:?}")
    };
    match text {
        "beginning" | "earliest" => Ok(StartOffset::Beginning),
        "end" | "latest" => Ok(StartOffset::End),
        _ => {
            if let Some(ms) = text.strip_prefix("s@") {
                return ms.parse().map(StartOffset::Timestamp).map_err(|_| bad());
            }
            if let Some(n) = text.strip_prefix('-') {
                return match n.parse::<i64>() {
                    Ok(n) if n > 0 => Ok(StartOffset::BeforeEnd(n)),
                    _ => Err(bad()),
                };
            }
            match text.parse::<i64>() {
                Ok(n) if n >= 0 => Ok(StartOffset::At(n)),
                _ => Err(bad()),
            }
        }
    }
}

/// `--to-datetime`: Kafka's `YYYY-MM-DDTHH:mm:SS.sss`, optionally with `Z` or an offset such
/// as `+02:00`; without a zone the local one applies, as in kafka-consumer-groups.sh. A bare
/// date means its midnight. Returns milliseconds since the epoch.
pub fn datetime_ms(text: &str) -> Result<i64, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    for pattern in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(text, pattern) {
            return Ok(t.timestamp_millis());
        }
    }
    let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|p| NaiveDateTime::parse_from_str(text, p).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .ok_or_else(|| {
            format!("expected a time like 2024-05-01T12:30:00.000 (optionally with Z or +02:00), got {text:?}")
        })?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| format!("{text:?} does not exist in the local time zone"))
}

/// `TOPIC` or `TOPIC:P1,P2,...` (kafka-consumer-groups.sh's `--topic` for resets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitions {
    pub topic: String,
    /// Empty means every partition.
    pub partitions: Vec<i32>,
}

pub fn topic_partitions(text: &str) -> Result<TopicPartitions, String> {
    let (topic, list) = match text.split_once(':') {
        Some((topic, list)) => (topic, Some(list)),
        None => (text, None),
    };
    if topic.is_empty() {
        return Err(format!("expected TOPIC or TOPIC:P1,P2, got {text:?}"));
    }
    let partitions = match list {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|p| match p.trim().parse::<i32>() {
                Ok(p) if p >= 0 => Ok(p),
                _ => Err(format!("bad partition {p:?} in {text:?}")),
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(TopicPartitions {
        topic: topic.to_string(),
        partitions,
    })
}

/// `NAME=SUBJECT:VERSION` of a schema reference.
pub fn reference(text: &str) -> Result<(String, String, i32), String> {
    let bad = || format!("{text:?} is not NAME=SUBJECT:VERSION");
    let (name, rest) = text.split_once('=').ok_or_else(bad)?;
    let (subject, version) = rest.rsplit_once(':').ok_or_else(bad)?;
    let version: i32 = version.parse().map_err(|_| bad())?;
    if name.is_empty() || subject.is_empty() {
        return Err(bad());
    }
    Ok((name.to_string(), subject.to_string(), version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_split_at_the_first_equals() {
        assert_eq!(
            key_value("retention.ms=1000").unwrap(),
            ("retention.ms".into(), "1000".into())
        );
        assert_eq!(key_value("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(key_value("a=").unwrap(), ("a".into(), "".into()));
        assert!(key_value("novalue").is_err());
        assert!(key_value("=v").is_err());
    }

    #[test]
    fn headers_may_have_null_values() {
        assert_eq!(header("h=v").unwrap(), ("h".into(), Some("v".into())));
        assert_eq!(header("h").unwrap(), ("h".into(), None));
        assert_eq!(header("h=").unwrap(), ("h".into(), Some("".into())));
        assert!(header("=v").is_err());
        assert!(header("").is_err());
    }

    #[test]
    fn start_offsets_follow_kcat() {
        assert_eq!(start_offset("beginning"), Ok(StartOffset::Beginning));
        assert_eq!(start_offset("earliest"), Ok(StartOffset::Beginning));
        assert_eq!(start_offset("end"), Ok(StartOffset::End));
        assert_eq!(start_offset("42"), Ok(StartOffset::At(42)));
        assert_eq!(start_offset("0"), Ok(StartOffset::At(0)));
        assert_eq!(start_offset("-5"), Ok(StartOffset::BeforeEnd(5)));
        assert_eq!(
            start_offset("s@1700000000000"),
            Ok(StartOffset::Timestamp(1_700_000_000_000))
        );
        for bad in ["", "-0", "x", "s@", "s@x", "--1"] {
            assert!(start_offset(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn datetimes_with_zones_are_exact() {
        assert_eq!(datetime_ms("1970-01-01T00:00:01.500Z"), Ok(1500));
        assert_eq!(datetime_ms("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(datetime_ms("1970-01-01T01:00:00.000+0100"), Ok(0));
        assert_eq!(datetime_ms("2024-05-01T00:00:00Z"), Ok(1_714_521_600_000));
    }

    #[test]
    fn datetimes_without_zones_are_local() {
        let expected = Local
            .from_local_datetime(
                &NaiveDate::from_ymd_opt(2024, 5, 1)
                    .and_then(|d| d.and_hms_milli_opt(12, 30, 0, 250))
                    .unwrap(),
            )
            .earliest()
            .unwrap()
            .timestamp_millis();
        assert_eq!(datetime_ms("2024-05-01T12:30:00.250"), Ok(expected));
        assert_eq!(datetime_ms("2024-05-01T12:30:00.25"), Ok(expected));
        assert!(datetime_ms("2024-05-01").is_ok());
        assert!(datetime_ms("yesterday").is_err());
    }

    #[test]
    fn topic_partition_selections() {
        assert_eq!(
            topic_partitions("t").unwrap(),
            TopicPartitions {
                topic: "t".into(),
                partitions: vec![]
            }
        );
        assert_eq!(topic_partitions("t:0,2").unwrap().partitions, vec![0, 2]);
        assert!(topic_partitions(":1").is_err());
        assert!(topic_partitions("t:x").is_err());
        assert!(topic_partitions("t:-1").is_err());
    }
}
