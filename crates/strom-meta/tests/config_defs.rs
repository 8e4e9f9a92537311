//! Topic config definitions: names, defaults and validation, one check per rule.

use strom_meta::config_defs::*;

fn check(key: &str, value: &str, ok: bool) {
    let def = topic_config_def(key).unwrap_or_else(|| panic!("{key} is defined"));
    assert_eq!(
        def.validate(value).is_ok(),
        ok,
        "{key}={value:?}: {:?}",
        def.validate(value)
    );
}

#[test]
fn every_key_a_kafka_user_sets_is_defined_and_its_default_is_valid() {
    let keys = [
        "cleanup.policy",
        "compression.type",
        "delete.retention.ms",
        "file.delete.delay.ms",
        "flush.messages",
        "flush.ms",
        "index.interval.bytes",
        "max.compaction.lag.ms",
        "max.message.bytes",
        "message.timestamp.type",
        "message.timestamp.before.max.ms",
        "message.timestamp.after.max.ms",
        "min.cleanable.dirty.ratio",
        "min.compaction.lag.ms",
        "min.insync.replicas",
        "preallocate",
        "retention.bytes",
        "retention.ms",
        "segment.bytes",
        "segment.index.bytes",
        "segment.jitter.ms",
        "segment.ms",
        "unclean.leader.election.enable",
    ];
    for key in keys {
        assert!(topic_config_def(key).is_some(), "{key}");
    }
    let defs = topic_config_defs();
    let mut names: Vec<_> = defs.iter().map(|d| d.name).collect();
    let sorted = {
        let mut s = names.clone();
        s.sort();
        s
    };
    assert_eq!(names, sorted, "defs are in name order");
    names.dedup();
    assert_eq!(names.len(), defs.len(), "no duplicates");
    for def in defs {
        assert!(
            def.validate(def.default).is_ok(),
            "default of {} is valid",
            def.name
        );
        assert!(!def.doc.is_empty());
    }
    assert_eq!(
        topic_config_def("retention.ms").map(|d| d.default),
        Some("604800000")
    );
    assert_eq!(
        topic_config_def("segment.bytes").map(|d| d.default),
        Some("1073741824")
    );
    assert_eq!(
        topic_config_def("max.message.bytes").map(|d| d.default),
        Some("1048588")
    );
    assert_eq!(topic_config_def("nope"), None);
}

#[test]
fn validation_rules() {
    let cases = [
        ("retention.ms", "-1", true),
        ("retention.ms", "-2", false),
        ("retention.ms", " 5 ", true),
        ("retention.ms", "9223372036854775808", false),
        ("retention.bytes", "-100", true),
        ("segment.bytes", "14", true),
        ("segment.bytes", "13", false),
        ("segment.bytes", "2147483648", false),
        ("segment.ms", "0", false),
        ("min.insync.replicas", "0", false),
        ("min.insync.replicas", "2", true),
        ("preallocate", "TRUE", true),
        ("preallocate", "yes", false),
        ("min.cleanable.dirty.ratio", "0.9", true),
        ("min.cleanable.dirty.ratio", "1.5", false),
        ("min.cleanable.dirty.ratio", "half", false),
        ("cleanup.policy", "compact,delete", true),
        ("cleanup.policy", "compact, delete", true),
        ("cleanup.policy", "", true),
        ("cleanup.policy", "compact,shred", false),
        ("compression.type", "lz4", true),
        ("compression.type", "LZ4", false),
        ("compression.gzip.level", "-1", true),
        ("compression.gzip.level", "0", false),
        ("compression.gzip.level", "9", true),
        ("compression.zstd.level", "-131072", true),
        ("compression.zstd.level", "23", false),
        ("message.timestamp.type", "LogAppendTime", true),
        ("message.timestamp.type", "logappendtime", false),
        ("leader.replication.throttled.replicas", "*", true),
        ("leader.replication.throttled.replicas", "0:1,1:2", true),
        ("leader.replication.throttled.replicas", "0:1:2", false),
        ("leader.replication.throttled.replicas", "all", false),
        ("local.retention.ms", "-2", true),
        ("local.retention.ms", "-3", false),
    ];
    for (key, value, ok) in cases {
        check(key, value, ok);
    }
}

#[test]
fn describe_lists_every_config_with_its_source() {
    let entries = describe_topic_configs(|key| (key == "retention.ms").then_some("5"));
    assert_eq!(entries.len(), topic_config_defs().len());
    for e in &entries {
        let (value, source) = if e.name == "retention.ms" {
            (Some("5"), ConfigSource::DynamicTopicConfig)
        } else {
            (
                topic_config_def(&e.name).map(|d| d.default),
                ConfigSource::DefaultConfig,
            )
        };
        assert_eq!(
            (e.value.as_deref(), e.source),
            (value, source),
            "{}",
            e.name
        );
    }
    assert_eq!(ConfigSource::DefaultConfig.kafka_id(), 5);
    assert_eq!(ConfigType::List.kafka_id(), 7);
    assert_eq!(split_list(" a , b "), vec!["a", "b"]);
    assert!(split_list("  ").is_empty());
}

#[test]
fn the_image_describes_a_topic_with_its_overrides() {
    use strom_meta::*;
    let records = vec![
        MetadataRecord::Topic {
            name: "t".into(),
            topic_id: uuid::Uuid::from_u128(1),
        },
        MetadataRecord::Config {
            resource: ConfigResource::topic("t"),
            key: "segment.ms".into(),
            value: Some("9".into()),
        },
    ];
    let image = MetadataImage::default().apply(&records).unwrap().0;
    let entries = image.describe_topic_configs("t").unwrap();
    let segment = entries.iter().find(|e| e.name == "segment.ms").unwrap();
    assert_eq!(
        (segment.value.as_deref(), segment.source),
        (Some("9"), ConfigSource::DynamicTopicConfig)
    );
    assert!(image.describe_topic_configs("missing").is_none());
}
