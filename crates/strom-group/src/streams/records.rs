//! KIP-1071 records in `__consumer_offsets`, in Kafka's formats: the key version is the
//! record type (17 group metadata, 19 member metadata, 20 target assignment metadata, 21
//! target assignment member, 22 current member assignment, 23 topology), keys are
//! classic-encoded, values are flexible version 0. A `None` value is a tombstone. Type 18
//! (Kafka 4.0's partition metadata, replaced by the metadata hash of type 17) is skipped
//! when read.

use bytes::Bytes;

use crate::consumer::codec::{
    epoch_value, record_key as key, value_reader, Reader, Writer,
    RECORD_VALUE_VERSION as VALUE_VERSION,
};
use crate::error::RecordError;
use crate::records::GroupRecord;

use super::group::{CurrentAssignment, MemberMetadata, MemberState};
use super::types::{
    CopartitionGroup, Endpoint, Subtopology, Tasks, TasksTuple, TopicInfo, Topology,
};

pub(crate) const GROUP_METADATA: i16 = 17;
const PARTITION_METADATA: i16 = 18;
const MEMBER_METADATA: i16 = 19;
const TARGET_METADATA: i16 = 20;
const TARGET_MEMBER: i16 = 21;
const CURRENT_MEMBER: i16 = 22;
const TOPOLOGY: i16 = 23;

/// The group metadata value (type 17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadata {
    pub epoch: i32,
    pub metadata_hash: i64,
    /// Tagged field 0 (default -1).
    pub validated_topology_epoch: i32,
    /// The assignment configs the target was computed with (`num.standby.replicas`).
    pub assignment_configs: Vec<(String, String)>,
}

/// A decoded KIP-1071 record; `None` payloads are tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamsRecord {
    GroupMetadata {
        group: String,
        value: Option<GroupMetadata>,
    },
    MemberMetadata {
        group: String,
        member: String,
        value: Option<MemberMetadata>,
    },
    TargetEpoch {
        group: String,
        epoch: Option<i32>,
    },
    TargetMember {
        group: String,
        member: String,
        tasks: Option<TasksTuple>,
    },
    CurrentMember {
        group: String,
        member: String,
        current: Option<CurrentAssignment>,
    },
    Topology {
        group: String,
        topology: Option<Topology>,
    },
}

impl StreamsRecord {
    pub fn group(&self) -> &str {
        match self {
            StreamsRecord::GroupMetadata { group, .. }
            | StreamsRecord::MemberMetadata { group, .. }
            | StreamsRecord::TargetEpoch { group, .. }
            | StreamsRecord::TargetMember { group, .. }
            | StreamsRecord::CurrentMember { group, .. }
            | StreamsRecord::Topology { group, .. } => group,
        }
    }

    pub fn encode(&self) -> Result<GroupRecord, RecordError> {
        let (key, value) = match self {
            StreamsRecord::GroupMetadata { group, value } => (
                key(GROUP_METADATA, group, None)?,
                value.as_ref().map(group_value),
            ),
            StreamsRecord::MemberMetadata {
                group,
                member,
                value,
            } => (
                key(MEMBER_METADATA, group, Some(member))?,
                value.as_ref().map(member_value),
            ),
            StreamsRecord::TargetEpoch { group, epoch } => {
                (key(TARGET_METADATA, group, None)?, epoch.map(epoch_value))
            }
            StreamsRecord::TargetMember {
                group,
                member,
                tasks,
            } => (
                key(TARGET_MEMBER, group, Some(member))?,
                tasks.as_ref().map(target_value),
            ),
            StreamsRecord::CurrentMember {
                group,
                member,
                current,
            } => (
                key(CURRENT_MEMBER, group, Some(member))?,
                current.as_ref().map(current_value),
            ),
            StreamsRecord::Topology { group, topology } => (
                key(TOPOLOGY, group, None)?,
                topology.as_ref().map(topology_value),
            ),
        };
        Ok(GroupRecord { key, value })
    }

    /// Decodes a record of types 17-23; `Ok(None)` for other types (and for type 18,
    /// which carries nothing this coordinator keeps).
    pub fn decode(key_bytes: &[u8], value: Option<&[u8]>) -> Result<Option<Self>, RecordError> {
        let mut k = Reader::new(key_bytes);
        let version = k.i16("key version")?;
        if !(GROUP_METADATA..=TOPOLOGY).contains(&version) || version == PARTITION_METADATA {
            return Ok(None);
        }
        let group = k.key_string("group id")?;
        let member = if matches!(version, MEMBER_METADATA | TARGET_MEMBER | CURRENT_MEMBER) {
            Some(k.key_string("member id")?)
        } else {
            None
        };
        k.finish("streams group record key")?;
        let member = member.unwrap_or_default();
        Ok(Some(match version {
            GROUP_METADATA => StreamsRecord::GroupMetadata {
                group,
                value: value.map(decode_group).transpose()?,
            },
            MEMBER_METADATA => StreamsRecord::MemberMetadata {
                group,
                member,
                value: value.map(decode_member).transpose()?,
            },
            TARGET_METADATA => StreamsRecord::TargetEpoch {
                group,
                epoch: value.map(decode_epoch).transpose()?,
            },
            TARGET_MEMBER => StreamsRecord::TargetMember {
                group,
                member,
                tasks: value.map(decode_target).transpose()?,
            },
            CURRENT_MEMBER => StreamsRecord::CurrentMember {
                group,
                member,
                current: value.map(decode_current).transpose()?,
            },
            _ => StreamsRecord::Topology {
                group,
                topology: value.map(decode_topology).transpose()?,
            },
        }))
    }
}

fn i64_be(w: &mut Writer, v: i64) {
    w.buf.extend_from_slice(&v.to_be_bytes());
}

fn i16_be(w: &mut Writer, v: i16) {
    w.buf.extend_from_slice(&v.to_be_bytes());
}

fn put_key_values(w: &mut Writer, kvs: &[(String, String)]) {
    w.len(kvs.len());
    for (k, v) in kvs {
        w.string(k);
        w.string(v);
        w.no_tags();
    }
}

fn read_key_values(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<Vec<(String, String)>, RecordError> {
    let n = r.array_len(what)?;
    let mut out = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let k = r.string("key")?;
        let v = r.string("value")?;
        r.skip_tags(what)?;
        out.push((k, v));
    }
    Ok(out)
}

fn put_strings(w: &mut Writer, items: &[String]) {
    w.len(items.len());
    for s in items {
        w.string(s);
    }
}

fn read_strings(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<String>, RecordError> {
    let n = r.array_len(what)?;
    let mut out = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        out.push(r.string(what)?);
    }
    Ok(out)
}

fn put_tasks(w: &mut Writer, tasks: &Tasks) {
    let non_empty: Vec<_> = tasks.iter().filter(|(_, p)| !p.is_empty()).collect();
    w.len(non_empty.len());
    for (sub, parts) in non_empty {
        w.string(sub);
        w.len(parts.len());
        for p in parts {
            w.i32(*p);
        }
        w.no_tags();
    }
}

fn read_tasks(r: &mut Reader<'_>) -> Result<Tasks, RecordError> {
    let n = r.array_len("task ids")?;
    let mut out = Tasks::new();
    for _ in 0..n {
        let sub = r.string("subtopology id")?;
        let m = r.array_len("partitions")?;
        let mut parts = std::collections::BTreeSet::new();
        for _ in 0..m {
            parts.insert(r.i32("partition")?);
        }
        r.skip_tags("task ids")?;
        if !parts.is_empty() {
            out.entry(sub).or_default().extend(parts);
        }
    }
    Ok(out)
}

fn group_value(g: &GroupMetadata) -> Bytes {
    let mut w = Writer::new(VALUE_VERSION);
    w.i32(g.epoch);
    i64_be(&mut w, g.metadata_hash);
    put_key_values(&mut w, &g.assignment_configs);
    if g.validated_topology_epoch == -1 {
        w.no_tags();
    } else {
        // One tagged field: tag 0, size 4, the int32.
        w.uvarint(1);
        w.uvarint(0);
        w.uvarint(4);
        w.i32(g.validated_topology_epoch);
    }
    w.buf.freeze()
}

fn decode_group(bytes: &[u8]) -> Result<GroupMetadata, RecordError> {
    let mut r = value_reader(bytes, "streams group metadata value")?;
    let epoch = r.i32("epoch")?;
    let hi = r.i32("metadata hash")?;
    let lo = r.i32("metadata hash")?;
    let metadata_hash = (i64::from(hi) << 32) | i64::from(lo as u32);
    let assignment_configs = read_key_values(&mut r, "assignment configs")?;
    let mut validated_topology_epoch = -1;
    let tags = r.uvarint("tagged fields")?;
    for _ in 0..tags.min(1 << 20) {
        let tag = r.uvarint("tag")?;
        let size = r.uvarint("tag size")?;
        if tag == 0 && size == 4 {
            validated_topology_epoch = r.i32("validated topology epoch")?;
        } else {
            for _ in 0..size.min(bytes.len() as u64) {
                r.i8("unknown tag")?;
            }
        }
    }
    r.finish("streams group metadata value")?;
    Ok(GroupMetadata {
        epoch,
        metadata_hash,
        validated_topology_epoch,
        assignment_configs,
    })
}

fn member_value(m: &MemberMetadata) -> Bytes {
    let mut w = Writer::new(VALUE_VERSION);
    w.nullable_string(m.instance_id.as_deref());
    w.nullable_string(m.rack_id.as_deref());
    w.string(&m.client_id);
    w.string(&m.client_host);
    w.i32(m.rebalance_timeout_ms);
    w.i32(m.topology_epoch);
    w.string(&m.process_id);
    match &m.user_endpoint {
        // A nullable struct: -1 (as int8) for null, 1 then the struct.
        None => w.i8(-1),
        Some(e) => {
            w.i8(1);
            w.string(&e.host);
            w.buf.extend_from_slice(&e.port.to_be_bytes());
            w.no_tags();
        }
    }
    put_key_values(&mut w, &m.client_tags);
    w.no_tags();
    w.buf.freeze()
}

fn decode_member(bytes: &[u8]) -> Result<MemberMetadata, RecordError> {
    let mut r = value_reader(bytes, "streams member metadata value")?;
    let instance_id = r.nullable_string("instance id")?;
    let rack_id = r.nullable_string("rack id")?;
    let client_id = r.string("client id")?;
    let client_host = r.string("client host")?;
    let rebalance_timeout_ms = r.i32("rebalance timeout")?;
    let topology_epoch = r.i32("topology epoch")?;
    let process_id = r.string("process id")?;
    let user_endpoint = if r.i8("user endpoint")? < 0 {
        None
    } else {
        let host = r.string("endpoint host")?;
        let port = r.i16("endpoint port")? as u16;
        r.skip_tags("endpoint")?;
        Some(Endpoint { host, port })
    };
    let client_tags = read_key_values(&mut r, "client tags")?;
    r.skip_tags("streams member metadata value")?;
    r.finish("streams member metadata value")?;
    Ok(MemberMetadata {
        instance_id,
        rack_id,
        client_id,
        client_host,
        rebalance_timeout_ms,
        topology_epoch,
        process_id,
        user_endpoint,
        client_tags,
    })
}

fn decode_epoch(bytes: &[u8]) -> Result<i32, RecordError> {
    let mut r = value_reader(bytes, "streams target assignment metadata value")?;
    let epoch = r.i32("assignment epoch")?;
    r.skip_tags("streams target assignment metadata value")?;
    r.finish("streams target assignment metadata value")?;
    Ok(epoch)
}

fn target_value(t: &TasksTuple) -> Bytes {
    let mut w = Writer::new(VALUE_VERSION);
    put_tasks(&mut w, &t.active);
    put_tasks(&mut w, &t.standby);
    put_tasks(&mut w, &t.warmup);
    w.no_tags();
    w.buf.freeze()
}

fn decode_target(bytes: &[u8]) -> Result<TasksTuple, RecordError> {
    let mut r = value_reader(bytes, "streams target assignment value")?;
    let active = read_tasks(&mut r)?;
    let standby = read_tasks(&mut r)?;
    let warmup = read_tasks(&mut r)?;
    r.skip_tags("streams target assignment value")?;
    r.finish("streams target assignment value")?;
    Ok(TasksTuple {
        active,
        standby,
        warmup,
    })
}

fn current_value(c: &CurrentAssignment) -> Bytes {
    let mut w = Writer::new(VALUE_VERSION);
    w.i32(c.member_epoch);
    w.i32(c.previous_member_epoch);
    w.i8(c.state.byte());
    put_tasks(&mut w, &c.assigned.active);
    put_tasks(&mut w, &c.assigned.standby);
    put_tasks(&mut w, &c.assigned.warmup);
    put_tasks(&mut w, &c.pending_revocation.active);
    put_tasks(&mut w, &c.pending_revocation.standby);
    put_tasks(&mut w, &c.pending_revocation.warmup);
    w.no_tags();
    w.buf.freeze()
}

fn decode_current(bytes: &[u8]) -> Result<CurrentAssignment, RecordError> {
    let mut r = value_reader(bytes, "streams current assignment value")?;
    let member_epoch = r.i32("member epoch")?;
    let previous_member_epoch = r.i32("previous member epoch")?;
    let state = MemberState::from_byte(r.i8("state")?);
    let assigned = TasksTuple {
        active: read_tasks(&mut r)?,
        standby: read_tasks(&mut r)?,
        warmup: read_tasks(&mut r)?,
    };
    let pending_revocation = TasksTuple {
        active: read_tasks(&mut r)?,
        standby: read_tasks(&mut r)?,
        warmup: read_tasks(&mut r)?,
    };
    r.skip_tags("streams current assignment value")?;
    r.finish("streams current assignment value")?;
    Ok(CurrentAssignment {
        member_epoch,
        previous_member_epoch,
        state,
        assigned,
        pending_revocation,
    })
}

fn put_topic_infos(w: &mut Writer, topics: &[TopicInfo]) {
    w.len(topics.len());
    for t in topics {
        w.string(&t.name);
        w.i32(t.partitions);
        i16_be(w, t.replication_factor);
        put_key_values(w, &t.configs);
        w.no_tags();
    }
}

fn read_topic_infos(r: &mut Reader<'_>) -> Result<Vec<TopicInfo>, RecordError> {
    let n = r.array_len("topic infos")?;
    let mut out = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let name = r.string("topic name")?;
        let partitions = r.i32("partitions")?;
        let replication_factor = r.i16("replication factor")?;
        let configs = read_key_values(r, "topic configs")?;
        r.skip_tags("topic info")?;
        out.push(TopicInfo {
            name,
            partitions,
            replication_factor,
            configs,
        });
    }
    Ok(out)
}

fn put_i16s(w: &mut Writer, v: &[i16]) {
    w.len(v.len());
    for i in v {
        i16_be(w, *i);
    }
}

fn read_i16s(r: &mut Reader<'_>) -> Result<Vec<i16>, RecordError> {
    let n = r.array_len("copartition indexes")?;
    let mut out = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        out.push(r.i16("copartition index")?);
    }
    Ok(out)
}

fn topology_value(t: &Topology) -> Bytes {
    let mut w = Writer::new(VALUE_VERSION);
    w.i32(t.epoch);
    w.len(t.subtopologies.len());
    for s in &t.subtopologies {
        w.string(&s.id);
        put_strings(&mut w, &s.source_topics);
        put_strings(&mut w, &s.source_topic_regex);
        put_topic_infos(&mut w, &s.state_changelog_topics);
        put_strings(&mut w, &s.repartition_sink_topics);
        put_topic_infos(&mut w, &s.repartition_source_topics);
        w.len(s.copartition_groups.len());
        for g in &s.copartition_groups {
            put_i16s(&mut w, &g.source_topics);
            put_i16s(&mut w, &g.source_topic_regex);
            put_i16s(&mut w, &g.repartition_source_topics);
            w.no_tags();
        }
        w.no_tags();
    }
    w.no_tags();
    w.buf.freeze()
}

fn decode_topology(bytes: &[u8]) -> Result<Topology, RecordError> {
    let mut r = value_reader(bytes, "streams topology value")?;
    let epoch = r.i32("topology epoch")?;
    let n = r.array_len("subtopologies")?;
    let mut subtopologies = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let id = r.string("subtopology id")?;
        let source_topics = read_strings(&mut r, "source topics")?;
        let source_topic_regex = read_strings(&mut r, "source topic regex")?;
        let state_changelog_topics = read_topic_infos(&mut r)?;
        let repartition_sink_topics = read_strings(&mut r, "repartition sink topics")?;
        let repartition_source_topics = read_topic_infos(&mut r)?;
        let groups = r.array_len("copartition groups")?;
        let mut copartition_groups = Vec::with_capacity(groups.min(64));
        for _ in 0..groups {
            let g = CopartitionGroup {
                source_topics: read_i16s(&mut r)?,
                source_topic_regex: read_i16s(&mut r)?,
                repartition_source_topics: read_i16s(&mut r)?,
            };
            r.skip_tags("copartition group")?;
            copartition_groups.push(g);
        }
        r.skip_tags("subtopology")?;
        subtopologies.push(Subtopology {
            id,
            source_topics,
            source_topic_regex,
            state_changelog_topics,
            repartition_sink_topics,
            repartition_source_topics,
            copartition_groups,
        });
    }
    r.skip_tags("streams topology value")?;
    r.finish("streams topology value")?;
    Ok(Topology {
        epoch,
        subtopologies,
    })
}
