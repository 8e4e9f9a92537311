//! KIP-848 records in `__consumer_offsets`, in Kafka's formats: the key version is the
//! record type (3 group metadata, 4 partition metadata, 5 member metadata, 6 target
//! assignment metadata, 7 target assignment member, 8 current member assignment), keys are
//! classic-encoded, values are flexible version 0. A `None` value is a tombstone.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::error::RecordError;
use crate::records::GroupRecord;

use super::codec::{
    epoch_value, put_assignment, read_assignment, record_key as key, value_reader, Reader, Writer,
    RECORD_VALUE_VERSION as VALUE_VERSION,
};
use super::group::TopicMetadata;
use super::member::{CurrentAssignment, MemberState, Subscription};
use super::types::Assignment;

const GROUP_METADATA: i16 = 3;
const PARTITION_METADATA: i16 = 4;
const MEMBER_METADATA: i16 = 5;
const TARGET_METADATA: i16 = 6;
const TARGET_MEMBER: i16 = 7;
const CURRENT_MEMBER: i16 = 8;

/// A decoded KIP-848 record; `None` payloads are tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerRecord {
    GroupEpoch {
        group: String,
        epoch: Option<i32>,
    },
    PartitionMetadata {
        group: String,
        topics: Option<Vec<(String, TopicMetadata)>>,
    },
    MemberMetadata {
        group: String,
        member: String,
        subscription: Option<Subscription>,
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
}

impl ConsumerRecord {
    pub fn encode(&self) -> Result<GroupRecord, RecordError> {
        match self {
            ConsumerRecord::GroupEpoch { group, epoch } => {
                let key = key(GROUP_METADATA, group, None)?;
                Ok(record(key, epoch.map(epoch_value)))
            }
            ConsumerRecord::PartitionMetadata { group, topics } => {
                let key = key(PARTITION_METADATA, group, None)?;
                Ok(record(key, topics.as_deref().map(partition_metadata_value)))
            }
            ConsumerRecord::MemberMetadata {
                group,
                member,
                subscription,
            } => {
                let key = key(MEMBER_METADATA, group, Some(member))?;
                Ok(record(key, subscription.as_ref().map(member_value)))
            }
            ConsumerRecord::TargetEpoch { group, epoch } => {
                let key = key(TARGET_METADATA, group, None)?;
                Ok(record(key, epoch.map(epoch_value)))
            }
            ConsumerRecord::TargetMember {
                group,
                member,
                assignment,
            } => {
                let key = key(TARGET_MEMBER, group, Some(member))?;
                let value = assignment.as_ref().map(|a| {
                    let mut w = Writer::new(VALUE_VERSION);
                    put_assignment(&mut w, a);
                    w.no_tags();
                    w.buf.freeze()
                });
                Ok(record(key, value))
            }
            ConsumerRecord::CurrentMember {
                group,
                member,
                current,
            } => {
                let key = key(CURRENT_MEMBER, group, Some(member))?;
                Ok(record(key, current.as_ref().map(current_value)))
            }
        }
    }

    /// `Ok(None)` for keys that are not KIP-848 consumer-group records.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<Self>, RecordError> {
        let mut r = Reader::new(key);
        let version = r.i16("key version")?;
        if !(GROUP_METADATA..=CURRENT_MEMBER).contains(&version) {
            return Ok(None);
        }
        let group = r.key_string("group id")?;
        let member = if matches!(version, MEMBER_METADATA | TARGET_MEMBER | CURRENT_MEMBER) {
            r.key_string("member id")?
        } else {
            String::new()
        };
        r.finish("consumer group key")?;
        let decoded = match version {
            GROUP_METADATA => ConsumerRecord::GroupEpoch {
                group,
                epoch: value.map(decode_epoch).transpose()?,
            },
            PARTITION_METADATA => ConsumerRecord::PartitionMetadata {
                group,
                topics: value.map(decode_partition_metadata).transpose()?,
            },
            MEMBER_METADATA => ConsumerRecord::MemberMetadata {
                group,
                member,
                subscription: value.map(decode_member).transpose()?,
            },
            TARGET_METADATA => ConsumerRecord::TargetEpoch {
                group,
                epoch: value.map(decode_epoch).transpose()?,
            },
            TARGET_MEMBER => ConsumerRecord::TargetMember {
                group,
                member,
                assignment: value.map(decode_target).transpose()?,
            },
            _ => ConsumerRecord::CurrentMember {
                group,
                member,
                current: value.map(decode_current).transpose()?,
            },
        };
        Ok(Some(decoded))
    }
}

fn record(key: Bytes, value: Option<Bytes>) -> GroupRecord {
    GroupRecord { key, value }
}

fn partition_metadata_value(topics: &[(String, TopicMetadata)]) -> Bytes {
    let mut w = Writer::new(VALUE_VERSION);
    w.len(topics.len());
    for (name, t) in topics {
        w.uuid(t.id);
        w.string(name);
        w.i32(t.partitions);
        // Per-partition racks: rack-aware assignment is not done, so none are recorded.
        w.len(0);
        w.no_tags();
    }
    w.no_tags();
    w.buf.freeze()
}

fn member_value(s: &Subscription) -> Bytes {
    let mut w = Writer::new(VALUE_VERSION);
    w.nullable_string(s.instance_id.as_deref());
    w.nullable_string(s.rack_id.as_deref());
    w.string(&s.client_id);
    w.string(&s.client_host);
    w.len(s.subscribed_topic_names.len());
    for name in &s.subscribed_topic_names {
        w.string(name);
    }
    w.nullable_string(s.subscribed_topic_regex.as_deref());
    w.i32(s.rebalance_timeout_ms);
    w.nullable_string(s.server_assignor.as_deref());
    w.no_tags();
    w.buf.freeze()
}

fn current_value(c: &CurrentAssignment) -> Bytes {
    let mut w = Writer::new(VALUE_VERSION);
    w.i32(c.member_epoch);
    w.i32(c.previous_member_epoch);
    w.i8(c.state.byte());
    put_assignment(&mut w, &c.assigned);
    put_assignment(&mut w, &c.pending_revocation);
    w.no_tags();
    w.buf.freeze()
}

fn decode_epoch(bytes: &[u8]) -> Result<i32, RecordError> {
    let mut r = value_reader(bytes, "epoch value")?;
    let epoch = r.i32("epoch")?;
    r.skip_tags("epoch value tags")?;
    r.finish("epoch value")?;
    Ok(epoch)
}

fn decode_partition_metadata(bytes: &[u8]) -> Result<Vec<(String, TopicMetadata)>, RecordError> {
    let mut r = value_reader(bytes, "partition metadata value")?;
    let count = r.array_len("topics")?;
    let mut topics = Vec::with_capacity(count);
    for _ in 0..count {
        let id = r.uuid("topic id")?;
        let name = r.string("topic name")?;
        let partitions = r.i32("partition count")?;
        let racks = r.array_len("partition metadata")?;
        for _ in 0..racks {
            r.i32("partition")?;
            let names = r.array_len("racks")?;
            for _ in 0..names {
                r.string("rack")?;
            }
            r.skip_tags("partition metadata tags")?;
        }
        r.skip_tags("topic metadata tags")?;
        topics.push((name, TopicMetadata { id, partitions }));
    }
    r.skip_tags("partition metadata value tags")?;
    r.finish("partition metadata value")?;
    Ok(topics)
}

fn decode_member(bytes: &[u8]) -> Result<Subscription, RecordError> {
    let mut r = value_reader(bytes, "member metadata value")?;
    let instance_id = r.nullable_string("instance id")?;
    let rack_id = r.nullable_string("rack id")?;
    let client_id = r.string("client id")?;
    let client_host = r.string("client host")?;
    let count = r.array_len("subscribed topic names")?;
    let mut subscribed_topic_names = BTreeSet::new();
    for _ in 0..count {
        subscribed_topic_names.insert(r.string("subscribed topic name")?);
    }
    let subscribed_topic_regex = r.nullable_string("subscribed topic regex")?;
    let rebalance_timeout_ms = r.i32("rebalance timeout")?;
    let server_assignor = r.nullable_string("server assignor")?;
    // Tag 0 holds the classic-protocol metadata of upgraded members; not used here.
    r.skip_tags("member metadata tags")?;
    r.finish("member metadata value")?;
    Ok(Subscription {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        subscribed_topic_regex,
        rebalance_timeout_ms,
        server_assignor,
    })
}

fn decode_target(bytes: &[u8]) -> Result<Assignment, RecordError> {
    let mut r = value_reader(bytes, "target assignment value")?;
    let a = read_assignment(&mut r)?;
    r.skip_tags("target assignment tags")?;
    r.finish("target assignment value")?;
    Ok(a)
}

fn decode_current(bytes: &[u8]) -> Result<CurrentAssignment, RecordError> {
    let mut r = value_reader(bytes, "current assignment value")?;
    let member_epoch = r.i32("member epoch")?;
    let previous_member_epoch = r.i32("previous member epoch")?;
    let state = MemberState::from_byte(r.i8("state")?);
    let assigned = read_assignment(&mut r)?;
    let pending_revocation = read_assignment(&mut r)?;
    r.skip_tags("current assignment tags")?;
    r.finish("current assignment value")?;
    Ok(CurrentAssignment {
        member_epoch,
        previous_member_epoch,
        state,
        assigned,
        pending_revocation,
    })
}
