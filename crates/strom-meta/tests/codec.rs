//! Encoding round trips, and decoding of arbitrary or damaged bytes (never a panic).

use proptest::prelude::*;
use strom_meta::*;
use uuid::Uuid;

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,12}", "[a-z._-]{0,20}"]
}

fn ids() -> impl Strategy<Value = Vec<i32>> {
    prop::collection::vec(any::<i32>(), 0..6)
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (text(), text(), any::<u16>(), any::<i16>()).prop_map(
        |(listener_name, host, port, security_protocol)| Endpoint {
            listener_name,
            host,
            port,
            security_protocol,
        },
    )
}

fn resource() -> impl Strategy<Value = ConfigResource> {
    (any::<bool>(), text()).prop_map(|(topic, name)| {
        if topic {
            ConfigResource::topic(name)
        } else {
            ConfigResource::broker(name)
        }
    })
}

fn record() -> impl Strategy<Value = MetadataRecord> {
    prop_oneof![
        (
            any::<i32>(),
            uuid(),
            any::<i64>(),
            prop::collection::vec(endpoint(), 0..3),
            prop::option::of(text()),
            any::<bool>()
        )
            .prop_map(
                |(broker_id, incarnation_id, epoch, endpoints, rack, fenced)| {
                    MetadataRecord::RegisterBroker {
                        broker_id,
                        incarnation_id,
                        epoch,
                        endpoints,
                        rack,
                        fenced,
                    }
                }
            ),
        (any::<i32>(), any::<i64>())
            .prop_map(|(broker_id, epoch)| MetadataRecord::UnregisterBroker { broker_id, epoch }),
        (any::<i32>(), any::<i64>())
            .prop_map(|(broker_id, epoch)| MetadataRecord::FenceBroker { broker_id, epoch }),
        (any::<i32>(), any::<i64>())
            .prop_map(|(broker_id, epoch)| MetadataRecord::UnfenceBroker { broker_id, epoch }),
        (any::<i32>(), any::<i64>()).prop_map(|(broker_id, epoch)| {
            MetadataRecord::BrokerInControlledShutdown { broker_id, epoch }
        }),
        (text(), uuid()).prop_map(|(name, topic_id)| MetadataRecord::Topic { name, topic_id }),
        (
            uuid(),
            any::<i32>(),
            ids(),
            ids(),
            any::<i32>(),
            (any::<i32>(), any::<i32>()),
            (ids(), ids())
        )
            .prop_map(
                |(
                    topic_id,
                    partition,
                    replicas,
                    isr,
                    leader,
                    (leader_epoch, partition_epoch),
                    (adding_replicas, removing_replicas),
                )| {
                    MetadataRecord::Partition {
                        topic_id,
                        partition,
                        replicas,
                        isr,
                        leader,
                        leader_epoch,
                        partition_epoch,
                        adding_replicas,
                        removing_replicas,
                    }
                }
            ),
        (resource(), text(), prop::option::of(text())).prop_map(|(resource, key, value)| {
            MetadataRecord::Config {
                resource,
                key,
                value,
            }
        }),
        (
            uuid(),
            any::<i32>(),
            prop::option::of(ids()),
            prop::option::of(any::<i32>()),
            prop::option::of(ids()),
            (prop::option::of(ids()), prop::option::of(ids()))
        )
            .prop_map(
                |(
                    topic_id,
                    partition,
                    isr,
                    leader,
                    replicas,
                    (adding_replicas, removing_replicas),
                )| {
                    MetadataRecord::PartitionChange {
                        topic_id,
                        partition,
                        isr,
                        leader,
                        replicas,
                        adding_replicas,
                        removing_replicas,
                    }
                }
            ),
        uuid().prop_map(|topic_id| MetadataRecord::RemoveTopic { topic_id }),
        (any::<i32>(), any::<i64>(), any::<i64>()).prop_map(
            |(broker_id, broker_epoch, next_producer_id)| {
                MetadataRecord::ProducerIds {
                    broker_id,
                    broker_epoch,
                    next_producer_id,
                }
            }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn records_round_trip(records in prop::collection::vec(record(), 0..8)) {
        let bytes = encode_records(&records);
        prop_assert_eq!(decode_records(&bytes).unwrap(), records);
    }

    #[test]
    fn every_strict_prefix_is_refused(records in prop::collection::vec(record(), 1..4)) {
        let bytes = encode_records(&records);
        for cut in 0..bytes.len() {
            prop_assert!(decode_records(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn damaged_entries_never_panic(records in prop::collection::vec(record(), 1..4), at in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = encode_records(&records);
        let at = at % bytes.len();
        bytes[at] = byte;
        let _ = decode_records(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_records(&bytes);
        let _ = MetadataImage::decode_snapshot(&bytes);
        let mut framed = vec![1u8];
        framed.extend_from_slice(&bytes);
        let _ = decode_records(&framed);
        let mut snapshot = b"SMSN\x01".to_vec();
        snapshot.extend_from_slice(&bytes);
        let _ = MetadataImage::decode_snapshot(&snapshot);
    }
}

/// Entry header (format 1, one record) then a record header with `record_type`, `version`.
fn entry_with(record_type: u16, version: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![1, 0, 0, 0, 1];
    bytes.extend_from_slice(&record_type.to_be_bytes());
    bytes.push(version);
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn unknown_types_and_versions_are_errors() {
    for record_type in [18u16, 999, u16::MAX] {
        assert_eq!(
            decode_records(&entry_with(record_type, 0, &[])),
            Err(MetaError::UnknownRecordType(record_type))
        );
    }
    let remove = entry_with(9, 1, &[0; 16]);
    assert_eq!(
        decode_records(&remove),
        Err(MetaError::UnsupportedRecordVersion {
            record_type: 9,
            version: 1
        })
    );
    assert!(decode_records(&entry_with(9, 0, &[0; 16])).is_ok());
    assert!(matches!(
        decode_records(&entry_with(9, 0, &[0; 17])),
        Err(MetaError::Malformed { .. })
    ));
    assert_eq!(
        decode_records(&[2, 0, 0, 0, 0]),
        Err(MetaError::UnsupportedFormat(2))
    );
    assert!(
        matches!(
            decode_records(&[1, 0, 0, 0, 0, 7]),
            Err(MetaError::Malformed { .. })
        ),
        "trailing bytes"
    );
    assert_eq!(decode_records(&[1, 0, 0, 0, 0]), Ok(vec![]));
}

#[test]
fn forged_counts_do_not_allocate() {
    // Four billion records claimed in five bytes.
    assert!(matches!(
        decode_records(&[1, 0xff, 0xff, 0xff, 0xff]),
        Err(MetaError::Malformed { .. })
    ));
    // A partition record claiming four billion replicas.
    let mut body = vec![0u8; 16 + 4];
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    assert!(decode_records(&entry_with(3, 0, &body)).is_err());
}

#[test]
fn reassignment_state_is_record_version_one_and_only_when_present() {
    let partition = |adding: Vec<i32>| MetadataRecord::Partition {
        topic_id: uuid::Uuid::from_u128(5),
        partition: 0,
        replicas: vec![4, 1],
        isr: vec![1],
        leader: 1,
        leader_epoch: 2,
        partition_epoch: 3,
        adding_replicas: adding,
        removing_replicas: Vec::new(),
    };
    // Header: format (1), count (4), type (2), then the version byte.
    let version_at = 1 + 4 + 2;
    let plain = encode_records(&[partition(Vec::new())]);
    assert_eq!(
        plain[version_at], 0,
        "no reassignment: the version older binaries read"
    );
    let moving = encode_records(&[partition(vec![4])]);
    assert_eq!(moving[version_at], 1);
    assert_eq!(decode_records(&moving).unwrap(), vec![partition(vec![4])]);
    let change = MetadataRecord::PartitionChange {
        topic_id: uuid::Uuid::from_u128(5),
        partition: 0,
        isr: None,
        leader: None,
        replicas: None,
        adding_replicas: None,
        removing_replicas: Some(Vec::new()),
    };
    let bytes = encode_records(std::slice::from_ref(&change));
    assert_eq!(bytes[version_at], 1);
    assert_eq!(decode_records(&bytes).unwrap(), vec![change]);
    let mut future = moving.clone();
    future[version_at] = 2;
    assert_eq!(
        decode_records(&future),
        Err(MetaError::UnsupportedRecordVersion {
            record_type: 3,
            version: 2
        })
    );
}
