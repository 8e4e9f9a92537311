//! Snapshots of an image: the records that rebuild it from empty, plus the one counter that
//! records alone cannot carry.
//!
//! Layout: magic `b"SMSN"`, `version: u8 = 1`, `broker_epoch_high: i64`, then the record
//! list as in a raft entry. Restoring applies the records to an empty image, so a snapshot
//! passes the same checks as the log.

use crate::codec::{expect_end, read_record_list, write_record_list};
use crate::error::MetaError;
use crate::image::{MetadataImage, ProducerIdsImage};
use crate::records::MetadataRecord;
use crate::wire::{Reader, Writer};
use std::sync::Arc;

const SNAPSHOT_MAGIC: &[u8; 4] = b"SMSN";
const SNAPSHOT_VERSION: u8 = 1;

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
        w.u8(SNAPSHOT_VERSION);
        w.i64(self.broker_epoch_high());
        write_record_list(&mut w, &self.to_records());
        w.into_bytes()
    }

    /// Rebuilds an image from [`MetadataImage::encode_snapshot`] output. Never panics.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<MetadataImage, MetaError> {
        let mut r = Reader::new(bytes);
        if r.bytes(SNAPSHOT_MAGIC.len())? != SNAPSHOT_MAGIC {
            return Err(MetaError::malformed("snapshot", "bad magic"));
        }
        let version = r.u8()?;
        if version != SNAPSHOT_VERSION {
            return Err(MetaError::UnsupportedFormat(version));
        }
        let broker_epoch_high = r.i64()?;
        let records = read_record_list(&mut r)?;
        expect_end(&r, "snapshot")?;
        let (image, _) = MetadataImage::default().apply(&records)?;
        let mut inner = Arc::unwrap_or_clone(image.inner);
        inner.broker_epoch_high = inner.broker_epoch_high.max(broker_epoch_high);
        Ok(MetadataImage::from_inner(inner))
    }
}
