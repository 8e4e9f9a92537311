//! Data-driven tests of AlterConfigs and IncrementalAlterConfigs.

mod common;
use common::*;
use strom_meta::*;

fn op(key: &str, op: AlterConfigOp, value: Option<&str>) -> AlterableConfig {
    AlterableConfig {
        key: key.into(),
        op,
        value: value.map(str::to_owned),
    }
}

fn incremental(
    c: &mut Controller,
    image: &MetadataImage,
    resources: Vec<IncrementalAlterResource>,
    validate_only: bool,
) -> (Vec<MetadataRecord>, Vec<AlterConfigsResult>) {
    let request = ControllerRequest::IncrementalAlterConfigs(IncrementalAlterConfigsRequest {
        resources,
        validate_only,
    });
    let (records, reply) = c.handle(image, request, 0).unwrap();
    let ControllerReply::IncrementalAlterConfigs(results) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    (records, results)
}

/// Image with topic `t` whose `cleanup.policy` is `compact` and `retention.ms` is 1000.
fn setup() -> (Controller, MetadataImage) {
    let mut c = controller();
    let image = cluster(&mut c, &[1]);
    let image = create_topic(&mut c, &image, "t", 1, 1);
    let set = vec![
        op("cleanup.policy", AlterConfigOp::Set, Some("compact")),
        op("retention.ms", AlterConfigOp::Set, Some("1000")),
    ];
    let (records, results) = incremental(
        &mut c,
        &image,
        vec![IncrementalAlterResource {
            resource: ConfigResource::topic("t"),
            configs: set,
        }],
        false,
    );
    assert_eq!(results[0].error, None);
    let image = image.apply(&records).unwrap().0;
    (c, image)
}

/// Applies `ops` to topic `t` and checks the error and the resulting overrides.
fn check(ops: Vec<AlterableConfig>, expected: Option<ErrorCode>, overrides: &[(&str, &str)]) {
    let (mut c, image) = setup();
    let desc = format!("{ops:?}");
    let resource = ConfigResource::topic("t");
    let (records, results) = incremental(
        &mut c,
        &image,
        vec![IncrementalAlterResource {
            resource: resource.clone(),
            configs: ops,
        }],
        false,
    );
    assert_eq!(
        results[0].error.as_ref().map(|e| e.code),
        expected,
        "{desc}: {:?}",
        results[0].error
    );
    let after = image.apply(&records).unwrap().0;
    let got: Vec<(&str, &str)> = after
        .configs(&resource)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
        .unwrap_or_default();
    assert_eq!(got, overrides, "{desc}");
}

#[test]
fn incremental_alter_topic_cases() {
    use AlterConfigOp::*;
    use ErrorCode::*;
    let base = [("cleanup.policy", "compact"), ("retention.ms", "1000")];
    check(
        vec![op("retention.ms", Set, Some("2000"))],
        None,
        &[("cleanup.policy", "compact"), ("retention.ms", "2000")],
    );
    check(
        vec![op("retention.ms", Delete, None)],
        None,
        &[("cleanup.policy", "compact")],
    );
    check(vec![op("segment.ms", Delete, None)], None, &base);
    check(
        vec![op("cleanup.policy", Append, Some("delete"))],
        None,
        &[
            ("cleanup.policy", "compact,delete"),
            ("retention.ms", "1000"),
        ],
    );
    check(
        vec![op("cleanup.policy", Append, Some("compact"))],
        None,
        &base,
    );
    check(
        vec![op("cleanup.policy", Subtract, Some("compact"))],
        None,
        &[("cleanup.policy", ""), ("retention.ms", "1000")],
    );
    check(
        vec![op("retention.ms", Set, None)],
        Some(InvalidRequest),
        &base,
    );
    check(
        vec![op("retention.ms", Set, Some("x"))],
        Some(InvalidConfig),
        &base,
    );
    check(
        vec![op("retention.ms", Set, Some("-2"))],
        Some(InvalidConfig),
        &base,
    );
    check(vec![op("nope", Set, Some("1"))], Some(InvalidConfig), &base);
    check(
        vec![op("retention.ms", Append, Some("1"))],
        Some(InvalidConfig),
        &base,
    );
    check(
        vec![op("retention.ms", Subtract, Some("1"))],
        Some(InvalidConfig),
        &base,
    );
    check(
        vec![op("cleanup.policy", Append, Some("shred"))],
        Some(InvalidConfig),
        &base,
    );
    check(
        vec![op("cleanup.policy", Append, None)],
        Some(InvalidRequest),
        &base,
    );
    check(
        vec![
            op("retention.ms", Set, Some("1")),
            op("retention.ms", Delete, None),
        ],
        Some(InvalidRequest),
        &base,
    );
    check(
        vec![
            op("min.compaction.lag.ms", Set, Some("10")),
            op("max.compaction.lag.ms", Set, Some("5")),
        ],
        Some(InvalidConfig),
        &base,
    );
    check(
        vec![op("compression.type", Set, Some("zstd"))],
        None,
        &[
            ("cleanup.policy", "compact"),
            ("compression.type", "zstd"),
            ("retention.ms", "1000"),
        ],
    );
    check(
        vec![op("compression.type", Set, Some("brotli"))],
        Some(InvalidConfig),
        &base,
    );
}

#[test]
fn append_to_unset_list_starts_from_default() {
    let mut c = controller();
    let image = cluster(&mut c, &[1]);
    let image = create_topic(&mut c, &image, "t", 1, 1);
    let resource = ConfigResource::topic("t");
    let ops = vec![op("cleanup.policy", AlterConfigOp::Append, Some("compact"))];
    let (records, _) = incremental(
        &mut c,
        &image,
        vec![IncrementalAlterResource {
            resource: resource.clone(),
            configs: ops,
        }],
        false,
    );
    let after = image.apply(&records).unwrap().0;
    assert_eq!(
        after.config_value(&resource, "cleanup.policy"),
        Some("delete,compact")
    );
}

#[test]
fn resource_level_errors_and_batches() {
    use ErrorCode::*;
    let (mut c, image) = setup();
    let set = |resource: ConfigResource| IncrementalAlterResource {
        resource,
        configs: vec![op("retention.ms", AlterConfigOp::Set, Some("5"))],
    };
    let (records, results) = incremental(
        &mut c,
        &image,
        vec![
            set(ConfigResource::topic("missing")),
            set(ConfigResource::broker("abc")),
            set(ConfigResource::broker("-1")),
            set(ConfigResource::broker("1")),
            set(ConfigResource::broker("")),
            set(ConfigResource::topic("t")),
        ],
        false,
    );
    let codes: Vec<_> = results
        .iter()
        .map(|r| r.error.as_ref().map(|e| e.code))
        .collect();
    assert_eq!(
        codes,
        vec![
            Some(UnknownTopicOrPartition),
            Some(InvalidRequest),
            Some(InvalidRequest),
            None,
            None,
            None
        ]
    );
    let after = image.apply(&records).unwrap().0;
    assert_eq!(
        after.config_value(&ConfigResource::broker("1"), "retention.ms"),
        Some("5")
    );
    assert_eq!(
        after.config_value(&ConfigResource::broker(""), "retention.ms"),
        Some("5")
    );
    assert_eq!(
        after.config_value(&ConfigResource::topic("t"), "retention.ms"),
        Some("5")
    );

    let (records, results) = incremental(
        &mut c,
        &image,
        vec![
            set(ConfigResource::topic("t")),
            set(ConfigResource::topic("t")),
        ],
        false,
    );
    assert!(records.is_empty());
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0].error.as_ref().map(|e| e.code),
        Some(InvalidRequest)
    );

    let (records, results) =
        incremental(&mut c, &image, vec![set(ConfigResource::topic("t"))], true);
    assert!(records.is_empty(), "validate_only");
    assert_eq!(results[0].error, None);

    // Setting a value to what it already is writes nothing.
    let same = IncrementalAlterResource {
        resource: ConfigResource::topic("t"),
        configs: vec![op("retention.ms", AlterConfigOp::Set, Some("1000"))],
    };
    let (records, results) = incremental(&mut c, &image, vec![same], false);
    assert_eq!((records.len(), results[0].error.clone()), (0, None));
}

#[test]
fn legacy_alter_configs_replaces_the_whole_set() {
    use ErrorCode::*;
    let (mut c, image) = setup();
    let alter = |configs: Vec<(&str, Option<&str>)>| {
        ControllerRequest::AlterConfigs(AlterConfigsRequest {
            resources: vec![AlterResource {
                resource: ConfigResource::topic("t"),
                configs: configs
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
                    .collect(),
            }],
            validate_only: false,
        })
    };
    let (after, delta, _, reply) =
        commit(&mut c, &image, alter(vec![("segment.ms", Some("100"))]), 0);
    assert_eq!(
        reply,
        ControllerReply::AlterConfigs(vec![AlterConfigsResult {
            resource: ConfigResource::topic("t"),
            error: None
        }])
    );
    let overrides: Vec<_> = after
        .topic_configs("t")
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(overrides, vec![("segment.ms".to_owned(), "100".to_owned())]);
    let changed: Vec<_> = delta.configs_changed[&ConfigResource::topic("t")]
        .iter()
        .cloned()
        .collect();
    assert_eq!(
        changed,
        vec!["cleanup.policy", "retention.ms", "segment.ms"]
    );

    for (configs, code) in [
        (vec![("segment.ms", None)], InvalidRequest),
        (
            vec![("segment.ms", Some("1")), ("segment.ms", Some("2"))],
            InvalidRequest,
        ),
        (vec![("segment.ms", Some("0"))], InvalidConfig),
        (vec![("bogus", Some("0"))], InvalidConfig),
    ] {
        let (records, reply) = c.handle(&image, alter(configs), 0).unwrap();
        assert!(records.is_empty());
        let ControllerReply::AlterConfigs(results) = reply else {
            panic!()
        };
        assert_eq!(results[0].error.as_ref().map(|e| e.code), Some(code));
    }
    // Clearing everything removes the resource from the image.
    let (after, _, _, _) = commit(&mut c, &image, alter(vec![]), 0);
    assert_eq!(after.topic_configs("t"), None);
}

#[test]
fn deleting_a_topic_drops_its_configs() {
    let (mut c, image) = setup();
    let request = ControllerRequest::DeleteTopics(DeleteTopicsRequest {
        topics: vec![TopicRef::Name("t".into())],
    });
    let (after, delta, _, _) = commit(&mut c, &image, request, 0);
    assert_eq!(after.topic_configs("t"), None);
    assert!(delta
        .configs_changed
        .contains_key(&ConfigResource::topic("t")));
    // A new topic of the same name starts from the defaults.
    let after = create_topic(&mut c, &after, "t", 1, 1);
    assert_eq!(after.topic_configs("t"), None);
}

#[test]
fn configs_of_kind_lists_only_that_kind() {
    let (mut c, image) = setup();
    let client_metrics = |name: &str| ConfigResource {
        kind: ConfigResourceKind::ClientMetrics,
        name: name.into(),
    };
    let (records, results) = incremental(
        &mut c,
        &image,
        vec![
            IncrementalAlterResource {
                resource: client_metrics("b-sub"),
                configs: vec![op("metrics", AlterConfigOp::Set, Some("org.apache"))],
            },
            IncrementalAlterResource {
                resource: ConfigResource::broker(""),
                configs: vec![op("log.retention.ms", AlterConfigOp::Set, Some("5000"))],
            },
            IncrementalAlterResource {
                resource: client_metrics("a-sub"),
                configs: vec![op("interval.ms", AlterConfigOp::Set, Some("1000"))],
            },
        ],
        false,
    );
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    let image = image.apply(&records).unwrap().0;
    let names = |kind| -> Vec<String> {
        image
            .configs_of_kind(kind)
            .map(|(name, _)| name.to_string())
            .collect()
    };
    assert_eq!(names(ConfigResourceKind::ClientMetrics), ["a-sub", "b-sub"]);
    assert_eq!(names(ConfigResourceKind::Topic), ["t"]);
    assert_eq!(names(ConfigResourceKind::Broker), [""]);
    let (_, a) = image
        .configs_of_kind(ConfigResourceKind::ClientMetrics)
        .next()
        .unwrap();
    assert_eq!(a.get("interval.ms").map(String::as_str), Some("1000"));
}
