//! Snapshots of an image: the records that rebuild it from empty, plus what records alone
//! cannot carry: the highest broker epoch and whether the log ever held a SCRAM credential.
//!
//! Layout: magic `b"SMSN"`, `version: u8`, `broker_epoch_high: i64`, in version 2 a
//! `flags: u8` (bit 0: a SCRAM record was ever applied), then the record list as in a raft
//! entry. Version 1 (no flags) is written whenever the records say it all (no SCRAM record
//! ever, or credentials that are still there), so a node that reads only version 1 reads
//! nearly every snapshot; version 2 only when every SCRAM credential was deleted. Restoring
//! applies the records to an empty image, so a snapshot passes the same checks as the log.

use crate::codec::{expect_end, read_record_list, write_record_list};
use crate::error::MetaError;
use crate::image::{MetadataImage, ProducerIdsImage};
use crate::records::MetadataRecord;
use crate::wire::{Reader, Writer};
use std::sync::Arc;

const SNAPSHOT_MAGIC: &[u8; 4] = b"SMSN";
/// Without flags.
const SNAPSHOT_VERSION_1: u8 = 1;
/// With the flags byte.
const SNAPSHOT_VERSION_2: u8 = 2;
/// Flag: a SCRAM record was ever applied (`MetadataImage::scram_ever_written`).
const FLAG_SCRAM_EVER_WRITTEN: u8 = 1;

impl MetadataImage {
    /// Records that rebuild this image when applied to an empty one.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for b in self.brokers() {
            records.push(MetadataRecord::RegisterBroker {
                broker_id: b.broker_id,
                incarnation_id: b.incarnation_id,
                epoch: b.epoch,
                endpoints: b.endpoints.clone(),
                rack: b.rack.clone(),
                fenced: b.fenced,
            });
            if b.in_controlled_shutdown {
                records.push(MetadataRecord::BrokerInControlledShutdown {
                    broker_id: b.broker_id,
                    epoch: b.epoch,
                });
            }
        }
        for t in self.topics() {
            records.push(MetadataRecord::Topic {
                name: t.name.clone(),
                topic_id: t.topic_id,
            });
            for (partition, p) in &t.partitions {
                records.push(MetadataRecord::Partition {
                    topic_id: t.topic_id,
                    partition: *partition,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    adding_replicas: p.adding_replicas.clone(),
                    removing_replicas: p.removing_replicas.clone(),
                });
            }
        }
        for (resource, keys) in self.inner.configs.iter() {
            for (key, value) in keys {
                records.push(MetadataRecord::Config {
                    resource: resource.clone(),
                    key: key.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        for (id, acl) in self.acls() {
            records.push(MetadataRecord::AccessControlEntry {
                id: *id,
                acl: acl.clone(),
            });
        }
        for (entity, values) in self.client_quotas() {
            for (key, value) in values {
                records.push(MetadataRecord::ClientQuota {
                    entity: entity.clone(),
                    key: key.clone(),
                    value: Some(*value),
                });
            }
        }
        for ((name, mechanism), c) in self.scram_credentials() {
            records.push(MetadataRecord::UserScramCredential {
                name: name.clone(),
                mechanism: *mechanism,
                salt: c.salt.clone(),
                stored_key: c.stored_key.clone(),
                server_key: c.server_key.clone(),
                iterations: c.iterations,
            });
        }
        for (token_id, t) in self.delegation_tokens() {
            records.push(MetadataRecord::DelegationToken {
                token_id: token_id.clone(),
                owner: t.owner.clone(),
                requester: t.requester.clone(),
                renewers: t.renewers.clone(),
                issue_timestamp_ms: t.issue_timestamp_ms,
                max_timestamp_ms: t.max_timestamp_ms,
                expiry_timestamp_ms: t.expiry_timestamp_ms,
            });
        }
        for (broker_id, set) in self.inner.offline_replicas.iter() {
            if let Some(b) = self.broker(*broker_id) {
                records.push(MetadataRecord::BrokerReplicasOffline {
                    broker_id: *broker_id,
                    epoch: b.epoch,
                    replicas: set.iter().map(|tp| (tp.topic_id, tp.partition)).collect(),
                });
            }
        }
        for (name, (level, epoch)) in self.inner.feature_levels.iter() {
            records.push(MetadataRecord::FeatureLevel {
                name: name.clone(),
                level: *level,
                epoch: *epoch,
            });
        }
        let ids = self.producer_ids();
        if *ids != ProducerIdsImage::default() {
            records.push(MetadataRecord::ProducerIds {
                broker_id: ids.last_broker_id,
                broker_epoch: ids.last_broker_epoch,
                next_producer_id: ids.next_producer_id,
            });
        }
        records
    }

    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut w = Writer::default();
        for b in SNAPSHOT_MAGIC {
            w.u8(*b);
        }
        let records = self.to_records();
        // The credential records set the flag again when applied; only a flag they do not
        // imply needs version 2.
        let flag_implied = !self.scram_ever_written() || self.scram_credentials().next().is_some();
        if flag_implied {
            w.u8(SNAPSHOT_VERSION_1);
            w.i64(self.broker_epoch_high());
        } else {
            w.u8(SNAPSHOT_VERSION_2);
            w.i64(self.broker_epoch_high());
            w.u8(FLAG_SCRAM_EVER_WRITTEN);
        }
        write_record_list(&mut w, &records);
        w.into_bytes()
    }

    /// Rebuilds an image from [`MetadataImage::encode_snapshot`] output. Never panics.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<MetadataImage, MetaError> {
        let mut r = Reader::new(bytes);
        if r.bytes(SNAPSHOT_MAGIC.len())? != SNAPSHOT_MAGIC {
            return Err(MetaError::malformed("snapshot", "bad magic"));
        }
        let version = r.u8()?;
        if version != SNAPSHOT_VERSION_1 && version != SNAPSHOT_VERSION_2 {
            return Err(MetaError::UnsupportedFormat(version));
        }
        let broker_epoch_high = r.i64()?;
        let flags = if version == SNAPSHOT_VERSION_2 {
            r.u8()?
        } else {
            0
        };
        if flags & !FLAG_SCRAM_EVER_WRITTEN != 0 {
            return Err(MetaError::malformed(
                "snapshot",
                "unknown flags (written by a newer version)",
            ));
        }
        let records = read_record_list(&mut r)?;
        expect_end(&r, "snapshot")?;
        let (image, _) = MetadataImage::default().apply(&records)?;
        let mut inner = Arc::unwrap_or_clone(image.inner);
        inner.broker_epoch_high = inner.broker_epoch_high.max(broker_epoch_high);
        inner.scram_ever_written |= flags & FLAG_SCRAM_EVER_WRITTEN != 0;
        Ok(MetadataImage::from_inner(inner))
    }
}
