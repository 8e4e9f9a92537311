//! Binary encoding of a list of metadata records: one raft entry.
//!
//! Layout (big-endian): `format: u8 = 1`, `count: u32`, then per record `type: u16`,
//! `version: u8`, `body_bytes: u32`, body. Each record carries its own type and version so
//! that new record kinds (ACLs, SCRAM credentials) and new versions can be added; a reader
//! that does not know a type or version refuses the entry instead of guessing.

use crate::error::MetaError;
use crate::records::{ConfigResource, ConfigResourceKind, Endpoint, MetadataRecord};
use crate::wire::{Reader, Writer};

const ENTRY_FORMAT_VERSION: u8 = 1;
const RECORD_VERSION: u8 = 0;
/// Partition and PartitionChange records that carry reassignment state (adding and removing
/// replicas) are version 1; without it they stay version 0, readable by older binaries.
const REASSIGNMENT_RECORD_VERSION: u8 = 1;
/// Bytes of a record header: type, version, body length.
const RECORD_HEADER_BYTES: usize = 2 + 1 + 4;

/// Encodes records as one raft entry.
pub fn encode_records(records: &[MetadataRecord]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(ENTRY_FORMAT_VERSION);
    write_record_list(&mut w, records);
    w.into_bytes()
}

/// Decodes one raft entry. Never panics, whatever the bytes.
pub fn decode_records(bytes: &[u8]) -> Result<Vec<MetadataRecord>, MetaError> {
    let mut r = Reader::new(bytes);
    let format = r.u8()?;
    if format != ENTRY_FORMAT_VERSION {
        return Err(MetaError::UnsupportedFormat(format));
    }
    let records = read_record_list(&mut r)?;
    expect_end(&r, "entry")?;
    Ok(records)
}

pub(crate) fn write_record_list(w: &mut Writer, records: &[MetadataRecord]) {
    w.u32(records.len() as u32);
    for record in records {
        write_record(w, record);
    }
}

pub(crate) fn read_record_list(r: &mut Reader<'_>) -> Result<Vec<MetadataRecord>, MetaError> {
    let count = r.count(RECORD_HEADER_BYTES)?;
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        records.push(read_record(r)?);
    }
    Ok(records)
}

pub(crate) fn expect_end(r: &Reader<'_>, what: &'static str) -> Result<(), MetaError> {
    if r.is_empty() {
        Ok(())
    } else {
        Err(MetaError::malformed(
            what,
            format!("{} trailing byte(s)", r.remaining()),
        ))
    }
}

fn write_record(w: &mut Writer, record: &MetadataRecord) {
    w.u16(record.type_id());
    w.u8(record_version(record));
    let length_at = w.len();
    w.u32(0);
    let body_start = w.len();
    write_body(w, record);
    let body_bytes = w.len() - body_start;
    w.patch_u32(length_at, body_bytes as u32);
}

/// The version a record is written at: the lowest that carries all of its fields. The only
/// versions above 0: type 17 at 1 is the offline-replicas change (Kafka's
/// `BrokerRegistrationChangeRecord`), and Partition and PartitionChange (3, 5) are at 1
/// while a reassignment is in progress. `max_version` must admit every version written here.
fn record_version(record: &MetadataRecord) -> u8 {
    match record {
        MetadataRecord::BrokerReplicasOffline { .. } => 1,
        MetadataRecord::Partition {
            adding_replicas,
            removing_replicas,
            ..
        } if !adding_replicas.is_empty() || !removing_replicas.is_empty() => {
            REASSIGNMENT_RECORD_VERSION
        }
        MetadataRecord::PartitionChange {
            adding_replicas,
            removing_replicas,
            ..
        } if adding_replicas.is_some() || removing_replicas.is_some() => {
            REASSIGNMENT_RECORD_VERSION
        }
        _ => RECORD_VERSION,
    }
}

/// The highest version this code reads of each record type, `None` for an unknown type
/// (every version from 0 up to it is read).
fn max_version(record_type: u16) -> Option<u8> {
    match record_type {
        3 | 5 => Some(REASSIGNMENT_RECORD_VERSION),
        17 => Some(1),
        0 | 1 | 2 | 4 | 6 | 7 | 8 | 9 | 10 | 11 | 12 | 14 | 15 | 16 | 19 | 26 => {
            Some(RECORD_VERSION)
        }
        _ => None,
    }
}

fn write_body(w: &mut Writer, record: &MetadataRecord) {
    match record {
        MetadataRecord::RegisterBroker {
            broker_id,
            incarnation_id,
            epoch,
            endpoints,
            rack,
            fenced,
        } => {
            w.i32(*broker_id);
            w.uuid(incarnation_id);
            w.i64(*epoch);
            w.u32(endpoints.len() as u32);
            for e in endpoints {
                w.string(&e.listener_name);
                w.string(&e.host);
                w.u16(e.port);
                w.i16(e.security_protocol);
            }
            w.opt_string(rack.as_deref());
            w.bool(*fenced);
        }
        MetadataRecord::UnregisterBroker { broker_id, epoch }
        | MetadataRecord::FenceBroker { broker_id, epoch }
        | MetadataRecord::UnfenceBroker { broker_id, epoch }
        | MetadataRecord::BrokerInControlledShutdown { broker_id, epoch } => {
            w.i32(*broker_id);
            w.i64(*epoch);
        }
        MetadataRecord::Topic { name, topic_id } => {
            w.string(name);
            w.uuid(topic_id);
        }
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
        } => {
            w.uuid(topic_id);
            w.i32(*partition);
            w.i32_array(replicas);
            w.i32_array(isr);
            w.i32(*leader);
            w.i32(*leader_epoch);
            w.i32(*partition_epoch);
            if record_version(record) >= REASSIGNMENT_RECORD_VERSION {
                w.i32_array(adding_replicas);
                w.i32_array(removing_replicas);
            }
        }
        MetadataRecord::Config {
            resource,
            key,
            value,
        } => {
            w.u8(resource.kind.kafka_id() as u8);
            w.string(&resource.name);
            w.string(key);
            w.opt_string(value.as_deref());
        }
        MetadataRecord::PartitionChange {
            topic_id,
            partition,
            isr,
            leader,
            replicas,
            adding_replicas,
            removing_replicas,
        } => {
            w.uuid(topic_id);
            w.i32(*partition);
            w.opt_i32_array(isr.as_deref());
            w.opt_i32(*leader);
            w.opt_i32_array(replicas.as_deref());
            if record_version(record) >= REASSIGNMENT_RECORD_VERSION {
                w.opt_i32_array(adding_replicas.as_deref());
                w.opt_i32_array(removing_replicas.as_deref());
            }
        }
        MetadataRecord::BrokerReplicasOffline {
            broker_id,
            epoch,
            replicas,
        } => {
            w.i32(*broker_id);
            w.i64(*epoch);
            w.u32(replicas.len() as u32);
            for (topic_id, partition) in replicas {
                w.uuid(topic_id);
                w.i32(*partition);
            }
        }
        MetadataRecord::RemoveTopic { topic_id } => w.uuid(topic_id),
        MetadataRecord::AccessControlEntry { id, acl } => {
            w.uuid(id);
            w.u8(acl.resource_type.id() as u8);
            w.string(&acl.resource_name);
            w.u8(acl.pattern_type.id() as u8);
            w.string(&acl.principal);
            w.string(&acl.host);
            w.u8(acl.operation.id() as u8);
            w.u8(acl.permission.id() as u8);
        }
        MetadataRecord::RemoveAccessControlEntry { id } => w.uuid(id),
        MetadataRecord::ClientQuota { entity, key, value } => {
            w.u32(entity.len() as u32);
            for (kind, name) in entity {
                w.string(kind);
                w.opt_string(name.as_deref());
            }
            w.string(key);
            match value {
                None => w.u8(0),
                Some(v) => {
                    w.u8(1);
                    w.i64(v.bits() as i64);
                }
            }
        }
        MetadataRecord::UserScramCredential {
            name,
            mechanism,
            salt,
            stored_key,
            server_key,
            iterations,
        } => {
            w.string(name);
            w.u8(*mechanism as u8);
            for bytes in [salt, stored_key, server_key] {
                w.u32(bytes.len() as u32);
                for b in bytes {
                    w.u8(*b);
                }
            }
            w.i32(*iterations);
        }
        MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
            w.string(name);
            w.u8(*mechanism as u8);
        }
        MetadataRecord::DelegationToken {
            token_id,
            owner,
            requester,
            renewers,
            issue_timestamp_ms,
            max_timestamp_ms,
            expiry_timestamp_ms,
        } => {
            w.string(token_id);
            w.string(owner);
            w.string(requester);
            w.u32(renewers.len() as u32);
            for renewer in renewers {
                w.string(renewer);
            }
            w.i64(*issue_timestamp_ms);
            w.i64(*max_timestamp_ms);
            w.i64(*expiry_timestamp_ms);
        }
        MetadataRecord::RemoveDelegationToken { token_id } => w.string(token_id),
        MetadataRecord::ProducerIds {
            broker_id,
            broker_epoch,
            next_producer_id,
        } => {
            w.i32(*broker_id);
            w.i64(*broker_epoch);
            w.i64(*next_producer_id);
        }
        MetadataRecord::FeatureLevel { name, level, epoch } => {
            w.string(name);
            w.i16(*level);
            w.i64(*epoch);
        }
    }
}

fn read_record(r: &mut Reader<'_>) -> Result<MetadataRecord, MetaError> {
    let record_type = r.u16()?;
    let version = r.u8()?;
    let body_bytes = r.u32()? as usize;
    let mut body = Reader::new(r.bytes(body_bytes)?);
    let Some(max) = max_version(record_type) else {
        return Err(MetaError::UnknownRecordType(record_type));
    };
    if version > max {
        return Err(MetaError::UnsupportedRecordVersion {
            record_type,
            version,
        });
    }
    let record = read_body(&mut body, record_type, version)?;
    expect_end(&body, "record body")?;
    Ok(record)
}

fn read_body(
    r: &mut Reader<'_>,
    record_type: u16,
    version: u8,
) -> Result<MetadataRecord, MetaError> {
    let reassignment = version >= REASSIGNMENT_RECORD_VERSION;
    Ok(match record_type {
        0 => read_register_broker(r)?,
        1 => MetadataRecord::UnregisterBroker {
            broker_id: r.i32()?,
            epoch: r.i64()?,
        },
        2 => MetadataRecord::Topic {
            name: r.string()?,
            topic_id: r.uuid()?,
        },
        3 => MetadataRecord::Partition {
            topic_id: r.uuid()?,
            partition: r.i32()?,
            replicas: r.i32_array()?,
            isr: r.i32_array()?,
            leader: r.i32()?,
            leader_epoch: r.i32()?,
            partition_epoch: r.i32()?,
            adding_replicas: if reassignment {
                r.i32_array()?
            } else {
                Vec::new()
            },
            removing_replicas: if reassignment {
                r.i32_array()?
            } else {
                Vec::new()
            },
        },
        4 => read_config(r)?,
        5 => MetadataRecord::PartitionChange {
            topic_id: r.uuid()?,
            partition: r.i32()?,
            isr: r.opt_i32_array()?,
            leader: r.opt_i32()?,
            replicas: r.opt_i32_array()?,
            adding_replicas: if reassignment {
                r.opt_i32_array()?
            } else {
                None
            },
            removing_replicas: if reassignment {
                r.opt_i32_array()?
            } else {
                None
            },
        },
        6 => read_acl(r)?,
        19 => MetadataRecord::RemoveAccessControlEntry { id: r.uuid()? },
        14 => read_client_quota(r)?,
        7 => MetadataRecord::FenceBroker {
            broker_id: r.i32()?,
            epoch: r.i64()?,
        },
        8 => MetadataRecord::UnfenceBroker {
            broker_id: r.i32()?,
            epoch: r.i64()?,
        },
        9 => MetadataRecord::RemoveTopic {
            topic_id: r.uuid()?,
        },
        11 => MetadataRecord::UserScramCredential {
            name: r.string()?,
            mechanism: r.u8()? as i8,
            salt: scram_bytes(r)?,
            stored_key: scram_bytes(r)?,
            server_key: scram_bytes(r)?,
            iterations: r.i32()?,
        },
        12 => MetadataRecord::RemoveUserScramCredential {
            name: r.string()?,
            mechanism: r.u8()? as i8,
        },
        10 => read_delegation_token(r)?,
        26 => MetadataRecord::RemoveDelegationToken {
            token_id: r.string()?,
        },
        15 => MetadataRecord::ProducerIds {
            broker_id: r.i32()?,
            broker_epoch: r.i64()?,
            next_producer_id: r.i64()?,
        },
        16 => MetadataRecord::FeatureLevel {
            name: r.string()?,
            level: r.i16()?,
            epoch: r.i64()?,
        },
        17 if version == 1 => read_replicas_offline(r)?,
        17 => MetadataRecord::BrokerInControlledShutdown {
            broker_id: r.i32()?,
            epoch: r.i64()?,
        },
        other => return Err(MetaError::UnknownRecordType(other)),
    })
}

/// A SCRAM salt or key: a u32 length (at most [`SCRAM_BYTES_MAX`]) and the bytes.
fn scram_bytes(r: &mut Reader<'_>) -> Result<Vec<u8>, MetaError> {
    let len = r.u32()? as usize;
    if len > SCRAM_BYTES_MAX {
        return Err(MetaError::invalid(format!(
            "SCRAM field of {len} bytes (at most {SCRAM_BYTES_MAX})"
        )));
    }
    Ok(r.bytes(len)?.to_vec())
}

/// The longest SCRAM salt or key stored (SHA-512 keys are 64 bytes; salts are short).
const SCRAM_BYTES_MAX: usize = 1024;

fn read_delegation_token(r: &mut Reader<'_>) -> Result<MetadataRecord, MetaError> {
    let token_id = r.string()?;
    let owner = r.string()?;
    let requester = r.string()?;
    // A renewer is at least an empty string's length.
    let count = r.count(2)?;
    let mut renewers = Vec::with_capacity(count);
    for _ in 0..count {
        renewers.push(r.string()?);
    }
    Ok(MetadataRecord::DelegationToken {
        token_id,
        owner,
        requester,
        renewers,
        issue_timestamp_ms: r.i64()?,
        max_timestamp_ms: r.i64()?,
        expiry_timestamp_ms: r.i64()?,
    })
}

fn read_replicas_offline(r: &mut Reader<'_>) -> Result<MetadataRecord, MetaError> {
    let broker_id = r.i32()?;
    let epoch = r.i64()?;
    // A replica is a topic id and a partition.
    let count = r.count(16 + 4)?;
    let mut replicas = Vec::with_capacity(count);
    for _ in 0..count {
        replicas.push((r.uuid()?, r.i32()?));
    }
    Ok(MetadataRecord::BrokerReplicasOffline {
        broker_id,
        epoch,
        replicas,
    })
}

fn read_register_broker(r: &mut Reader<'_>) -> Result<MetadataRecord, MetaError> {
    let broker_id = r.i32()?;
    let incarnation_id = r.uuid()?;
    let epoch = r.i64()?;
    // An endpoint is at least two empty strings, a port and a protocol id.
    let count = r.count(2 + 2 + 2 + 2)?;
    let mut endpoints = Vec::with_capacity(count);
    for _ in 0..count {
        endpoints.push(Endpoint {
            listener_name: r.string()?,
            host: r.string()?,
            port: r.u16()?,
            security_protocol: r.i16()?,
        });
    }
    Ok(MetadataRecord::RegisterBroker {
        broker_id,
        incarnation_id,
        epoch,
        endpoints,
        rack: r.opt_string()?,
        fenced: r.bool()?,
    })
}

fn read_config(r: &mut Reader<'_>) -> Result<MetadataRecord, MetaError> {
    let kind_id = r.u8()?;
    let kind = ConfigResourceKind::from_kafka_id(kind_id as i8)
        .ok_or_else(|| MetaError::malformed("config resource type", format!("id {kind_id}")))?;
    Ok(MetadataRecord::Config {
        resource: ConfigResource {
            kind,
            name: r.string()?,
        },
        key: r.string()?,
        value: r.opt_string()?,
    })
}

fn read_acl(r: &mut Reader<'_>) -> Result<MetadataRecord, MetaError> {
    use crate::acl::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType};
    let id = r.uuid()?;
    // Stored ACLs passed validation: an unknown enum value means a damaged or newer entry.
    fn known<T: PartialEq + Copy>(
        value: T,
        unknown: T,
        what: &'static str,
    ) -> Result<T, MetaError> {
        if value == unknown {
            Err(MetaError::malformed(what, "unknown value".to_string()))
        } else {
            Ok(value)
        }
    }
    let resource_type = known(
        ResourceType::from_id(r.u8()? as i8),
        ResourceType::Unknown,
        "ACL resource type",
    )?;
    let resource_name = r.string()?;
    let pattern_type = known(
        PatternType::from_id(r.u8()? as i8),
        PatternType::Unknown,
        "ACL pattern type",
    )?;
    let principal = r.string()?;
    let host = r.string()?;
    let operation = known(
        AclOperation::from_id(r.u8()? as i8),
        AclOperation::Unknown,
        "ACL operation",
    )?;
    let permission = known(
        AclPermission::from_id(r.u8()? as i8),
        AclPermission::Unknown,
        "ACL permission",
    )?;
    Ok(MetadataRecord::AccessControlEntry {
        id,
        acl: AclBinding {
            resource_type,
            resource_name,
            pattern_type,
            principal,
            host,
            operation,
            permission,
        },
    })
}

fn read_client_quota(r: &mut Reader<'_>) -> Result<MetadataRecord, MetaError> {
    // A component is at least an empty type and an absent name.
    let count = r.count(2 + 1)?;
    let mut entity = crate::quota::QuotaEntity::new();
    for _ in 0..count {
        let kind = r.string()?;
        let name = r.opt_string()?;
        if entity.insert(kind, name).is_some() {
            return Err(MetaError::malformed("client quota entity", "repeated type"));
        }
    }
    let key = r.string()?;
    let value = match r.u8()? {
        0 => None,
        1 => Some(crate::quota::QuotaValue::from_bits(r.i64()? as u64)),
        other => {
            return Err(MetaError::malformed(
                "client quota value",
                format!("presence byte {other}"),
            ))
        }
    };
    Ok(MetadataRecord::ClientQuota { entity, key, value })
}
