//! Snapshot encoding: exact restore, and refusal of anything that is not a snapshot.

use strom_meta::*;
use uuid::Uuid;

fn image() -> MetadataImage {
    let records = vec![
        MetadataRecord::RegisterBroker {
            broker_id: 1,
            incarnation_id: Uuid::from_u128(1),
            epoch: 4,
            endpoints: vec![],
            rack: Some("a".into()),
            fenced: true,
        },
        MetadataRecord::RegisterBroker {
            broker_id: 2,
            incarnation_id: Uuid::from_u128(2),
            epoch: 9,
            endpoints: vec![],
            rack: None,
            fenced: false,
        },
        MetadataRecord::RegisterBroker {
            broker_id: 3,
            incarnation_id: Uuid::from_u128(3),
            epoch: 5,
            endpoints: vec![],
            rack: None,
            fenced: false,
        },
        // A broker in controlled shutdown stays so across a snapshot.
        MetadataRecord::BrokerInControlledShutdown {
            broker_id: 3,
            epoch: 5,
        },
        // Epoch 9 stays the high mark even after broker 2 leaves.
        MetadataRecord::UnregisterBroker {
            broker_id: 2,
            epoch: 9,
        },
        MetadataRecord::Topic {
            name: "t".into(),
            topic_id: Uuid::from_u128(3),
        },
        MetadataRecord::Partition {
            topic_id: Uuid::from_u128(3),
            partition: 0,
            replicas: vec![1, 2],
            isr: vec![1],
            leader: NO_LEADER,
            leader_epoch: 3,
            partition_epoch: 7,
            adding_replicas: vec![2],
            removing_replicas: Vec::new(),
        },
        MetadataRecord::Config {
            resource: ConfigResource::broker(""),
            key: "k".into(),
            value: Some("v".into()),
        },
        MetadataRecord::ProducerIds {
            broker_id: 1,
            broker_epoch: 4,
            next_producer_id: 3000,
        },
    ];
    MetadataImage::default().apply(&records).unwrap().0
}

#[test]
fn restores_exactly_including_the_broker_epoch_high_mark() {
    let image = image();
    assert_eq!(image.broker_epoch_high(), 9);
    let restored = MetadataImage::decode_snapshot(&image.encode_snapshot()).unwrap();
    assert_eq!(restored, image);
    assert_eq!(restored.broker_epoch_high(), 9);
    assert!(restored.broker(3).unwrap().in_controlled_shutdown);
    assert!(!restored.is_broker_active(3));
    assert_eq!(restored.producer_ids().next_producer_id, 3000);
    let empty = MetadataImage::default();
    assert_eq!(
        MetadataImage::decode_snapshot(&empty.encode_snapshot()).unwrap(),
        empty
    );
}

#[test]
fn refuses_what_is_not_a_snapshot() {
    let bytes = image().encode_snapshot();
    let mut bad_magic = bytes.clone();
    bad_magic[0] = b'X';
    assert!(matches!(
        MetadataImage::decode_snapshot(&bad_magic),
        Err(MetaError::Malformed { .. })
    ));
    let mut bad_version = bytes.clone();
    bad_version[4] = 9;
    assert_eq!(
        MetadataImage::decode_snapshot(&bad_version),
        Err(MetaError::UnsupportedFormat(9))
    );
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(MetadataImage::decode_snapshot(&trailing).is_err());
    for cut in 0..bytes.len() {
        assert!(
            MetadataImage::decode_snapshot(&bytes[..cut]).is_err(),
            "prefix of {cut} bytes"
        );
    }
    // A raft entry is not a snapshot.
    assert!(MetadataImage::decode_snapshot(&encode_records(&image().to_records())).is_err());
}

/// Whether the log ever held a SCRAM credential survives a snapshot even when every
/// credential is deleted (the bootstrap SCRAM users must not count again): written as
/// version 2 only then, version 1 (which older nodes read) otherwise.
#[test]
fn a_log_that_held_scram_credentials_stays_marked_after_they_are_deleted() {
    let credential = MetadataRecord::UserScramCredential {
        name: "alice".into(),
        mechanism: 2,
        salt: vec![1; 16],
        stored_key: vec![2; 64],
        server_key: vec![3; 64],
        iterations: 4096,
    };
    let removal = MetadataRecord::RemoveUserScramCredential {
        name: "alice".into(),
        mechanism: 2,
    };
    let check = |records: &[MetadataRecord], marked: bool, version: u8| {
        let image = image().apply(records).unwrap().0;
        assert_eq!(image.scram_ever_written(), marked, "{records:?}");
        let bytes = image.encode_snapshot();
        assert_eq!(bytes[4], version, "{records:?}");
        let restored = MetadataImage::decode_snapshot(&bytes).unwrap();
        assert_eq!(restored, image, "{records:?}");
        assert_eq!(restored.scram_ever_written(), marked, "{records:?}");
    };
    check(&[], false, 1);
    check(std::slice::from_ref(&credential), true, 1);
    check(&[credential.clone(), removal.clone()], true, 2);

    // A removal of what is not there is refused and marks nothing.
    assert!(image().apply(std::slice::from_ref(&removal)).is_err());

    // Flags this version does not know are refused, not ignored.
    let deleted = image().apply(&[credential, removal]).unwrap().0;
    let mut bytes = deleted.encode_snapshot();
    // magic (4), version (1), broker_epoch_high (8), then the flags byte.
    bytes[13] |= 0x80;
    assert!(matches!(
        MetadataImage::decode_snapshot(&bytes),
        Err(MetaError::Malformed { .. })
    ));
}
