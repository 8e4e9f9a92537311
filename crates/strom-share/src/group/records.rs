//! Share group records in `__consumer_offsets`, in Kafka's formats: the key version is the
//! record type (10 member metadata, 11 group metadata, 12 target assignment metadata, 13
//! target assignment member, 14 current member assignment, 15 state partition metadata),
//! keys are classic-encoded, values flexible version 0. A `None` value is a tombstone.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use strom_group::consumer::codec::{
    epoch_value, put_assignment, read_assignment, record_key as key, value_reader, Reader, Writer,
    RECORD_VALUE_VERSION as VALUE_VERSION,
};
use strom_group::consumer::{Assignment, TopicId};
use strom_group::{GroupRecord, RecordError};

const MEMBER_METADATA: i16 = 10;
const GROUP_METADATA: i16 = 11;
const TARGET_METADATA: i16 = 12;
const TARGET_MEMBER: i16 = 13;
const CURRENT_MEMBER: i16 = 14;
const STATE_PARTITIONS: i16 = 15;
/// Kafka's `MemberState.STABLE`: share group members are always stable.
const MEMBER_STATE_STABLE: i8 = 0;

/// A member's metadata as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadata {
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: BTreeSet<String>,
}

/// A member's current assignment as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub assigned: Assignment,
}

/// Which share partitions of a group have durable state in `__share_group_state`
/// (Kafka's ShareGroupStatePartitionMetadataValue): being initialized, initialized, and
/// topics whose state is being deleted. Topic names are kept as Kafka records them (for
/// tools reading the log); the ids are what counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatePartitions {
    pub initializing: BTreeMap<TopicId, (String, BTreeSet<i32>)>,
    pub initialized: BTreeMap<TopicId, (String, BTreeSet<i32>)>,
    pub deleting: BTreeMap<TopicId, String>,
}

/// A decoded share group record; `None` payloads are tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareGroupRecord {
    /// The group epoch and the hash of the subscribed topics' metadata it was computed for.
    GroupEpoch {
        group: String,
        epoch: Option<(i32, i64)>,
    },
    MemberMetadata {
        group: String,
        member: String,
        metadata: Option<MemberMetadata>,
    },
    TargetEpoch {
        group: String,
        epoch: Option<i32>,
    },
    TargetMember {
        group: String,
        member: String,
        assignment: Option<Assignment>,
    },
    CurrentMember {
        group: String,
        member: String,
        current: Option<CurrentAssignment>,
    },
    /// The group's share partitions with durable state (record type 15).
    StatePartitions {
        group: String,
        partitions: Option<StatePartitions>,
    },
}

impl ShareGroupRecord {
    pub fn encode(&self) -> Result<GroupRecord, RecordError> {
        let (key, value) = match self {
            ShareGroupRecord::GroupEpoch { group, epoch } => (
                key(GROUP_METADATA, group, None)?,
                epoch.map(|(epoch, hash)| {
                    let mut w = Writer::new(VALUE_VERSION);
                    w.i32(epoch);
                    w.buf.extend_from_slice(&hash.to_be_bytes());
                    w.no_tags();
                    w.buf.freeze()
                }),
            ),
            ShareGroupRecord::MemberMetadata {
                group,
                member,
                metadata,
            } => (
                key(MEMBER_METADATA, group, Some(member))?,
                metadata.as_ref().map(member_value),
            ),
            ShareGroupRecord::TargetEpoch { group, epoch } => {
                (key(TARGET_METADATA, group, None)?, epoch.map(epoch_value))
            }
            ShareGroupRecord::TargetMember {
                group,
                member,
                assignment,
            } => (
                key(TARGET_MEMBER, group, Some(member))?,
                assignment.as_ref().map(|a| {
                    let mut w = Writer::new(VALUE_VERSION);
                    put_assignment(&mut w, a);
                    w.no_tags();
                    w.buf.freeze()
                }),
            ),
            ShareGroupRecord::CurrentMember {
                group,
                member,
                current,
            } => (
                key(CURRENT_MEMBER, group, Some(member))?,
                current.as_ref().map(|c| {
                    let mut w = Writer::new(VALUE_VERSION);
                    w.i32(c.member_epoch);
                    w.i32(c.previous_member_epoch);
                    w.i8(MEMBER_STATE_STABLE);
                    put_assignment(&mut w, &c.assigned);
                    w.no_tags();
                    w.buf.freeze()
                }),
            ),
            ShareGroupRecord::StatePartitions { group, partitions } => (
                key(STATE_PARTITIONS, group, None)?,
                partitions.as_ref().map(state_partitions_value),
            ),
        };
        Ok(GroupRecord { key, value })
    }

    /// `Ok(None)` for keys that are not share group records (offsets, classic and
    /// consumer groups, and share records this coordinator does not keep).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<Self>, RecordError> {
        let mut r = Reader::new(key);
        let version = r.i16("key version")?;
        if !(MEMBER_METADATA..=STATE_PARTITIONS).contains(&version) {
            return Ok(None);
        }
        let group = r.key_string("group id")?;
        let member = if matches!(version, MEMBER_METADATA | TARGET_MEMBER | CURRENT_MEMBER) {
            r.key_string("member id")?
        } else {
            String::new()
        };
        r.finish("share group key")?;
        let decoded = match version {
            GROUP_METADATA => ShareGroupRecord::GroupEpoch {
                group,
                epoch: value.map(decode_group_epoch).transpose()?,
            },
            MEMBER_METADATA => ShareGroupRecord::MemberMetadata {
                group,
                member,
                metadata: value.map(decode_member).transpose()?,
            },
            TARGET_METADATA => ShareGroupRecord::TargetEpoch {
                group,
                epoch: value.map(decode_target_epoch).transpose()?,
            },
            STATE_PARTITIONS => ShareGroupRecord::StatePartitions {
                group,
                partitions: value.map(decode_state_partitions).transpose()?,
            },
            TARGET_MEMBER => ShareGroupRecord::TargetMember {
                group,
                member,
                assignment: value.map(decode_target).transpose()?,
            },
            _ => ShareGroupRecord::CurrentMember {
                group,
                member,
                current: value.map(decode_current).transpose()?,
            },
        };
        Ok(Some(decoded))
    }
}

fn member_value(m: &MemberMetadata) -> Bytes {
    let mut w = Writer::new(VALUE_VERSION);
    w.nullable_string(m.rack_id.as_deref());
    w.string(&m.client_id);
    w.string(&m.client_host);
    w.len(m.subscribed_topic_names.len());
    for name in &m.subscribed_topic_names {
        w.string(name);
    }
    w.no_tags();
    w.buf.freeze()
}

fn state_partitions_value(s: &StatePartitions) -> Bytes {
    let mut w = Writer::new(VALUE_VERSION);
    for topics in [&s.initializing, &s.initialized] {
        w.len(topics.len());
        for (id, (name, partitions)) in topics {
            w.uuid(*id);
            w.string(name);
            w.len(partitions.len());
            for p in partitions {
                w.i32(*p);
            }
            w.no_tags();
        }
    }
    w.len(s.deleting.len());
    for (id, name) in &s.deleting {
        w.uuid(*id);
        w.string(name);
        w.no_tags();
    }
    w.no_tags();
    w.buf.freeze()
}

type TopicPartitionsInfo = BTreeMap<TopicId, (String, BTreeSet<i32>)>;

fn read_topic_partitions(r: &mut Reader<'_>) -> Result<TopicPartitionsInfo, RecordError> {
    let count = r.array_len("state partition topics")?;
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let id = r.uuid("topic id")?;
        let name = r.string("topic name")?;
        let n = r.array_len("partitions")?;
        let mut partitions = BTreeSet::new();
        for _ in 0..n {
            partitions.insert(r.i32("partition")?);
        }
        r.skip_tags("topic partitions info tags")?;
        out.insert(id, (name, partitions));
    }
    Ok(out)
}

fn decode_state_partitions(bytes: &[u8]) -> Result<StatePartitions, RecordError> {
    let mut r = value_reader(bytes, "share group state partition metadata value")?;
    let initializing = read_topic_partitions(&mut r)?;
    let initialized = read_topic_partitions(&mut r)?;
    let count = r.array_len("deleting topics")?;
    let mut deleting = BTreeMap::new();
    for _ in 0..count {
        let id = r.uuid("topic id")?;
        let name = r.string("topic name")?;
        r.skip_tags("topic info tags")?;
        deleting.insert(id, name);
    }
    r.skip_tags("share group state partition metadata tags")?;
    r.finish("share group state partition metadata value")?;
    Ok(StatePartitions {
        initializing,
        initialized,
        deleting,
    })
}

fn decode_group_epoch(bytes: &[u8]) -> Result<(i32, i64), RecordError> {
    let mut r = value_reader(bytes, "share group metadata value")?;
    let epoch = r.i32("group epoch")?;
    let high = r.i32("metadata hash")?;
    let low = r.i32("metadata hash")?;
    let hash = (i64::from(high) << 32) | i64::from(low as u32);
    r.skip_tags("share group metadata tags")?;
    r.finish("share group metadata value")?;
    Ok((epoch, hash))
}

fn decode_target_epoch(bytes: &[u8]) -> Result<i32, RecordError> {
    let mut r = value_reader(bytes, "share target assignment metadata value")?;
    let epoch = r.i32("assignment epoch")?;
    r.skip_tags("share target assignment metadata tags")?;
    r.finish("share target assignment metadata value")?;
    Ok(epoch)
}

fn decode_member(bytes: &[u8]) -> Result<MemberMetadata, RecordError> {
    let mut r = value_reader(bytes, "share member metadata value")?;
    let rack_id = r.nullable_string("rack id")?;
    let client_id = r.string("client id")?;
    let client_host = r.string("client host")?;
    let count = r.array_len("subscribed topic names")?;
    let mut subscribed_topic_names = BTreeSet::new();
    for _ in 0..count {
        subscribed_topic_names.insert(r.string("subscribed topic name")?);
    }
    r.skip_tags("share member metadata tags")?;
    r.finish("share member metadata value")?;
    Ok(MemberMetadata {
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
    })
}

fn decode_target(bytes: &[u8]) -> Result<Assignment, RecordError> {
    let mut r = value_reader(bytes, "share target assignment value")?;
    let a = read_assignment(&mut r)?;
    r.skip_tags("share target assignment tags")?;
    r.finish("share target assignment value")?;
    Ok(a)
}

fn decode_current(bytes: &[u8]) -> Result<CurrentAssignment, RecordError> {
    let mut r = value_reader(bytes, "share current assignment value")?;
    let member_epoch = r.i32("member epoch")?;
    let previous_member_epoch = r.i32("previous member epoch")?;
    // The state: always stable for share group members.
    r.i8("state")?;
    let assigned = read_assignment(&mut r)?;
    r.skip_tags("share current assignment tags")?;
    r.finish("share current assignment value")?;
    Ok(CurrentAssignment {
        member_epoch,
        previous_member_epoch,
        assigned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_group::consumer::TopicId;

    fn round_trip(record: ShareGroupRecord) {
        let encoded = record.encode().unwrap();
        let decoded = ShareGroupRecord::decode(&encoded.key, encoded.value.as_deref())
            .unwrap()
            .unwrap();
        assert_eq!(decoded, record);
    }

    #[test]
    fn every_record_round_trips() {
        let assignment = Assignment::from([(TopicId([3; 16]), BTreeSet::from([0, 2]))]);
        let g = "g".to_string();
        let m = "m".to_string();
        for epoch in [Some((7, -5_i64)), Some((1, i64::MAX)), None] {
            round_trip(ShareGroupRecord::GroupEpoch {
                group: g.clone(),
                epoch,
            });
        }
        round_trip(ShareGroupRecord::MemberMetadata {
            group: g.clone(),
            member: m.clone(),
            metadata: Some(MemberMetadata {
                rack_id: Some("r1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                subscribed_topic_names: BTreeSet::from(["a".into(), "b".into()]),
            }),
        });
        round_trip(ShareGroupRecord::TargetEpoch {
            group: g.clone(),
            epoch: Some(4),
        });
        round_trip(ShareGroupRecord::TargetMember {
            group: g.clone(),
            member: m.clone(),
            assignment: Some(assignment.clone()),
        });
        round_trip(ShareGroupRecord::StatePartitions {
            group: g.clone(),
            partitions: Some(StatePartitions {
                initializing: BTreeMap::from([(
                    TopicId([1; 16]),
                    ("a".into(), BTreeSet::from([1])),
                )]),
                initialized: BTreeMap::from([(
                    TopicId([3; 16]),
                    ("b".into(), BTreeSet::from([0, 2])),
                )]),
                deleting: BTreeMap::from([(TopicId([4; 16]), "c".into())]),
            }),
        });
        round_trip(ShareGroupRecord::StatePartitions {
            group: g.clone(),
            partitions: None,
        });
        round_trip(ShareGroupRecord::CurrentMember {
            group: g,
            member: m,
            current: Some(CurrentAssignment {
                member_epoch: 3,
                previous_member_epoch: 2,
                assigned: assignment,
            }),
        });
    }

    /// The bytes Kafka writes (and Strom wrote before the codec helpers were shared with
    /// the consumer group records): key version = record type, classic key strings,
    /// flexible value version 0.
    #[test]
    fn records_keep_their_bytes() {
        let epoch = ShareGroupRecord::TargetEpoch {
            group: "g".into(),
            epoch: Some(4),
        }
        .encode()
        .unwrap();
        assert_eq!(&epoch.key[..], &[0, 12, 0, 1, b'g']);
        assert_eq!(epoch.value.as_deref(), Some(&[0, 0, 0, 0, 0, 4, 0][..]));
        let target = ShareGroupRecord::TargetMember {
            group: "g".into(),
            member: "m".into(),
            assignment: Some(Assignment::from([(
                TopicId([3; 16]),
                BTreeSet::from([0, 2]),
            )])),
        }
        .encode()
        .unwrap();
        assert_eq!(&target.key[..], &[0, 13, 0, 1, b'g', 0, 1, b'm']);
        let mut value = vec![0, 0, 2];
        value.extend_from_slice(&[3; 16]);
        value.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0]);
        assert_eq!(target.value.as_deref(), Some(&value[..]));
    }

    /// Kafka's ShareGroupStatePartitionMetadataValue v0 layout: three compact arrays
    /// (initializing and initialized {uuid, name, int32[]}, deleting {uuid, name}), each
    /// struct with its tag section.
    #[test]
    fn state_partitions_keep_kafkas_bytes() {
        let record = ShareGroupRecord::StatePartitions {
            group: "g".into(),
            partitions: Some(StatePartitions {
                initializing: BTreeMap::new(),
                initialized: BTreeMap::from([(
                    TopicId([3; 16]),
                    ("t".into(), BTreeSet::from([1])),
                )]),
                deleting: BTreeMap::new(),
            }),
        }
        .encode()
        .unwrap();
        assert_eq!(&record.key[..], &[0, 15, 0, 1, b'g']);
        let mut value = vec![0, 0, 1, 2];
        value.extend_from_slice(&[3; 16]);
        value.extend_from_slice(&[2, b't', 2, 0, 0, 0, 1, 0, 1, 0]);
        assert_eq!(record.value.as_deref(), Some(&value[..]));
    }

    #[test]
    fn other_record_types_are_not_share_records() {
        for version in [0_i16, 2, 3, 8, 9, 16] {
            let mut key = version.to_be_bytes().to_vec();
            key.extend_from_slice(&[0, 1, b'g']);
            assert_eq!(ShareGroupRecord::decode(&key, None), Ok(None), "{version}");
        }
    }

    #[test]
    fn damaged_values_are_errors() {
        let record = ShareGroupRecord::TargetEpoch {
            group: "g".into(),
            epoch: Some(1),
        }
        .encode()
        .unwrap();
        let value = record.value.unwrap();
        assert!(ShareGroupRecord::decode(&record.key, Some(&value[..value.len() - 2])).is_err());
        let mut longer = value.to_vec();
        longer.push(0);
        assert!(ShareGroupRecord::decode(&record.key, Some(&longer)).is_err());
    }
}
