//! Client quotas: Kafka's entity and value validation, its precedence of user/client-id
//! entities, DescribeClientQuotas filters, and ClientQuota records through the controller,
//! the codec and snapshots.

use strom_meta::quota::*;
use strom_meta::*;

fn entity(parts: &[(&str, Option<&str>)]) -> QuotaEntity {
    parts
        .iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect()
}

#[test]
fn validation_follows_kafka() {
    assert!(validate_entity(&entity(&[(USER, Some("a")), (CLIENT_ID, None)])).is_ok());
    assert!(validate_entity(&entity(&[(IP, Some("10.0.0.1"))])).is_ok());
    assert!(validate_entity(&entity(&[(IP, Some("not-an-ip"))])).is_err());
    assert!(validate_entity(&entity(&[(IP, None), (USER, Some("a"))])).is_err());
    assert!(validate_entity(&entity(&[("group", Some("a"))])).is_err());
    assert!(validate_entity(&entity(&[])).is_err());
    let user = entity(&[(USER, Some("a"))]);
    assert!(validate_value(&user, PRODUCER_BYTE_RATE, 1024.0).is_ok());
    assert!(validate_value(&user, PRODUCER_BYTE_RATE, 10.5).is_err());
    assert!(validate_value(&user, REQUEST_PERCENTAGE, 12.5).is_ok());
    assert!(validate_value(&user, CONNECTION_CREATION_RATE, 3.0).is_err());
    assert!(validate_value(&user, "nonsense", 3.0).is_err());
    assert!(validate_value(&user, CONSUMER_BYTE_RATE, -1.0).is_err());
    let ip = entity(&[(IP, None)]);
    assert!(validate_value(&ip, CONNECTION_CREATION_RATE, 3.0).is_ok());
    assert!(validate_value(&ip, PRODUCER_BYTE_RATE, 3.0).is_err());
}

#[test]
fn precedence_is_kafkas_order() {
    let order: Vec<QuotaEntity> = precedence("alice", "app")
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert_eq!(
        order,
        vec![
            entity(&[(USER, Some("alice")), (CLIENT_ID, Some("app"))]),
            entity(&[(USER, Some("alice")), (CLIENT_ID, None)]),
            entity(&[(USER, Some("alice"))]),
            entity(&[(USER, None), (CLIENT_ID, Some("app"))]),
            entity(&[(USER, None), (CLIENT_ID, None)]),
            entity(&[(USER, None)]),
            entity(&[(CLIENT_ID, Some("app"))]),
            entity(&[(CLIENT_ID, None)]),
        ]
    );
    // A user-level quota is shared by all the user's clients; a default user quota is
    // per user.
    let shared: Vec<(String, String)> = precedence("alice", "app")
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(shared[2], ("alice".into(), String::new()));
    assert_eq!(shared[5], ("alice".into(), String::new()));
    assert_eq!(shared[7], (String::new(), "app".into()));
}

#[test]
fn describe_filters() {
    let e = entity(&[(USER, Some("alice")), (CLIENT_ID, None)]);
    let exact = vec![(USER.to_string(), ComponentMatch::Exact("alice".into()))];
    assert!(filter_matches(&exact, false, &e));
    assert!(
        !filter_matches(&exact, true, &e),
        "strict: client-id is an extra component"
    );
    let both = vec![
        (USER.to_string(), ComponentMatch::Specified),
        (CLIENT_ID.to_string(), ComponentMatch::Default),
    ];
    assert!(filter_matches(&both, true, &e));
    let default_user = vec![(USER.to_string(), ComponentMatch::Default)];
    assert!(!filter_matches(&default_user, false, &e));
    assert!(filter_matches(&[], false, &e));
}

#[test]
fn controller_records_codec_and_snapshot() {
    let mut controller = Controller::new(ControllerConfig::default());
    let alice = entity(&[(USER, Some("alice"))]);
    let request = ControllerRequest::AlterClientQuotas {
        entries: vec![
            (
                alice.clone(),
                vec![(PRODUCER_BYTE_RATE.into(), Some(QuotaValue::new(1024.0)))],
            ),
            (
                entity(&[(IP, None)]),
                vec![(PRODUCER_BYTE_RATE.into(), Some(QuotaValue::new(1.0)))],
            ),
        ],
        validate_only: false,
    };
    let image = MetadataImage::default();
    let (records, reply) = controller.handle(&image, request, 0).unwrap();
    let ControllerReply::AlterClientQuotas(results) = reply else {
        panic!("wrong reply")
    };
    assert!(results[0].is_ok());
    assert_eq!(
        results[1].as_ref().unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    let (image, delta) = image
        .apply(&decode_records(&encode_records(&records)).unwrap())
        .unwrap();
    assert!(delta.quotas_changed);
    assert_eq!(image.client_quota(&alice, PRODUCER_BYTE_RATE), Some(1024.0));
    assert_eq!(
        MetadataImage::decode_snapshot(&image.encode_snapshot()).unwrap(),
        image
    );
    // Removal.
    let (records, _) = controller
        .handle(
            &image,
            ControllerRequest::AlterClientQuotas {
                entries: vec![(alice.clone(), vec![(PRODUCER_BYTE_RATE.into(), None)])],
                validate_only: false,
            },
            0,
        )
        .unwrap();
    let (image, _) = image.apply(&records).unwrap();
    assert_eq!(image.client_quota(&alice, PRODUCER_BYTE_RATE), None);
    assert_eq!(image.client_quotas().count(), 0);
}
