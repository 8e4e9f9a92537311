//! Metadata records: the unit of change in the replicated metadata log.
//!
//! Shapes follow Kafka's KRaft records (`TopicRecord`, `PartitionRecord`, ...), reduced to
//! the fields Strom uses. The numeric type tags are Kafka's, which leaves the gap for SCRAM
//! (11) records to be filled later without renumbering.

use crate::acl::AclBinding;
use crate::quota::{QuotaEntity, QuotaValue};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Leader id of a partition that currently has no leader.
pub const NO_LEADER: i32 = -1;

/// What a `Config` record is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigResourceKind {
    Topic,
    Broker,
    /// A KIP-714 client-metrics subscription, by name (`metrics`, `interval.ms`, `match`).
    /// Stored as given; the broker validates the keys before they reach the controller.
    ClientMetrics,
    /// A group's configs (Kafka's `GroupConfig`: `share.*`, `consumer.*`), by group id.
    /// Stored as given; the broker validates keys and values before they reach the
    /// controller, as it knows the `group.*` bounds.
    Group,
}

impl ConfigResourceKind {
    /// Kafka's `ConfigResource.Type` id, as sent in DescribeConfigs/AlterConfigs.
    pub fn kafka_id(self) -> i8 {
        match self {
            ConfigResourceKind::Topic => 2,
            ConfigResourceKind::Broker => 4,
            ConfigResourceKind::ClientMetrics => 16,
            ConfigResourceKind::Group => 32,
        }
    }

    pub fn from_kafka_id(id: i8) -> Option<Self> {
        match id {
            2 => Some(ConfigResourceKind::Topic),
            4 => Some(ConfigResourceKind::Broker),
            16 => Some(ConfigResourceKind::ClientMetrics),
            32 => Some(ConfigResourceKind::Group),
            _ => None,
        }
    }
}

/// A topic (by name) or a broker (by id as text; `""` is the cluster-wide default).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConfigResource {
    pub kind: ConfigResourceKind,
    pub name: String,
}

impl ConfigResource {
    pub fn topic(name: impl Into<String>) -> Self {
        ConfigResource {
            kind: ConfigResourceKind::Topic,
            name: name.into(),
        }
    }

    pub fn broker(name: impl Into<String>) -> Self {
        ConfigResource {
            kind: ConfigResourceKind::Broker,
            name: name.into(),
        }
    }
}

/// A listener a broker accepts connections on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    pub listener_name: String,
    pub host: String,
    pub port: u16,
    /// Kafka's `SecurityProtocol` id (0 = PLAINTEXT).
    pub security_protocol: i16,
}

/// One change to cluster metadata. A raft entry carries a list of these, applied atomically.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker (re-)registered; replaces any earlier registration of `broker_id`.
    RegisterBroker {
        broker_id: i32,
        incarnation_id: Uuid,
        epoch: i64,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
        fenced: bool,
    },
    UnregisterBroker {
        broker_id: i32,
        epoch: i64,
    },
    Topic {
        name: String,
        topic_id: Uuid,
    },
    /// The full state of one partition; creates it or replaces it. `adding_replicas` and
    /// `removing_replicas` are the ongoing reassignment (both empty when there is none;
    /// encoded only then, as record version 1).
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        adding_replicas: Vec<i32>,
        removing_replicas: Vec<i32>,
    },
    /// `value: None` deletes the key.
    Config {
        resource: ConfigResource,
        key: String,
        value: Option<String>,
    },
    /// A change to an existing partition; `None` fields stay as they are. Applying it bumps
    /// the partition epoch, and the leader epoch when `leader` is set. `adding_replicas` /
    /// `removing_replicas` set the partition's reassignment state (Kafka's
    /// `PartitionChangeRecord` fields of those names; encoded only when set, as record
    /// version 1).
    PartitionChange {
        topic_id: Uuid,
        partition: i32,
        isr: Option<Vec<i32>>,
        leader: Option<i32>,
        replicas: Option<Vec<i32>>,
        adding_replicas: Option<Vec<i32>>,
        removing_replicas: Option<Vec<i32>>,
    },
    FenceBroker {
        broker_id: i32,
        epoch: i64,
    },
    UnfenceBroker {
        broker_id: i32,
        epoch: i64,
    },
    /// The broker entered controlled shutdown (Kafka's `BrokerRegistrationChangeRecord`,
    /// reduced to its in-controlled-shutdown change; fencing keeps records 7 and 8).
    BrokerInControlledShutdown {
        broker_id: i32,
        epoch: i64,
    },
    /// The broker's replicas whose logs it cannot serve (damaged at open, failed, or
    /// otherwise offline): the whole set, replacing the previous one. Kafka's
    /// `BrokerRegistrationChangeRecord` carries the same news as the broker's online log
    /// directories (KIP-858); Strom takes a partition log offline on its own, so the set is
    /// per replica. Encoded as type 17, version 1. A new registration starts empty.
    BrokerReplicasOffline {
        broker_id: i32,
        epoch: i64,
        /// (topic id, partition), ascending, without duplicates.
        replicas: Vec<(Uuid, i32)>,
    },
    /// Deletes the topic, its partitions and its configs.
    RemoveTopic {
        topic_id: Uuid,
    },
    /// An ACL was added under a new id (Kafka's `AccessControlEntryRecord`).
    AccessControlEntry {
        id: Uuid,
        acl: AclBinding,
    },
    /// The ACL with this id was removed (Kafka's `RemoveAccessControlEntryRecord`).
    RemoveAccessControlEntry {
        id: Uuid,
    },
    /// A client quota key of an entity set, or removed with `None` (Kafka's
    /// `ClientQuotaRecord`).
    ClientQuota {
        entity: QuotaEntity,
        key: String,
        value: Option<QuotaValue>,
    },
    /// A user's SCRAM credential for one mechanism (Kafka's `UserScramCredentialRecord`):
    /// salted, never the password. Replaces any earlier one of the same user and mechanism.
    UserScramCredential {
        name: String,
        /// Kafka's ScramMechanism id: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512.
        mechanism: i8,
        salt: Vec<u8>,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        iterations: i32,
    },
    /// Removes a user's credential for one mechanism (`RemoveUserScramCredentialRecord`).
    RemoveUserScramCredential {
        name: String,
        mechanism: i8,
    },
    /// A cluster feature finalized at `level` (Kafka's `FeatureLevelRecord`, set by
    /// UpdateFeatures; 0 disables the feature). `epoch` is the finalized-features epoch this
    /// change made (the previous epoch plus one), the epoch ApiVersions reports so that
    /// clients, which keep the features of the highest epoch they saw, notice the change.
    /// Encoded as type 16 (Kafka's 12 is Strom's RemoveUserScramCredential here).
    FeatureLevel {
        name: String,
        level: i16,
        epoch: i64,
    },
    /// A delegation token (KIP-48; Kafka's `DelegationTokenRecord`): who owns it, who asked
    /// for it, who may renew it, and its timestamps (milliseconds since the epoch). The HMAC
    /// is never stored: every node derives it from the token id and
    /// `delegation.token.secret.key`. Replaces any earlier record of the same token id (a
    /// renewal, or an expiry moved earlier).
    DelegationToken {
        token_id: String,
        /// Principals as Kafka writes them (`User:alice`).
        owner: String,
        requester: String,
        renewers: Vec<String>,
        issue_timestamp_ms: i64,
        max_timestamp_ms: i64,
        expiry_timestamp_ms: i64,
    },
    /// The token is gone: expired now on request, or swept by the controller after its
    /// expiry (Kafka's `RemoveDelegationTokenRecord`).
    RemoveDelegationToken {
        token_id: String,
    },
    /// A block of producer ids ending before `next_producer_id` went to `broker_id`.
    ProducerIds {
        broker_id: i32,
        broker_epoch: i64,
        next_producer_id: i64,
    },
}

impl MetadataRecord {
    /// Kafka's metadata record type id (`apiKey` in the record specs).
    pub fn type_id(&self) -> u16 {
        match self {
            MetadataRecord::RegisterBroker { .. } => 0,
            MetadataRecord::UnregisterBroker { .. } => 1,
            MetadataRecord::Topic { .. } => 2,
            MetadataRecord::Partition { .. } => 3,
            MetadataRecord::Config { .. } => 4,
            MetadataRecord::PartitionChange { .. } => 5,
            MetadataRecord::AccessControlEntry { .. } => 6,
            MetadataRecord::FenceBroker { .. } => 7,
            MetadataRecord::UnfenceBroker { .. } => 8,
            MetadataRecord::RemoveTopic { .. } => 9,
            MetadataRecord::ClientQuota { .. } => 14,
            MetadataRecord::RemoveAccessControlEntry { .. } => 19,
            MetadataRecord::UserScramCredential { .. } => 11,
            MetadataRecord::RemoveUserScramCredential { .. } => 12,
            MetadataRecord::ProducerIds { .. } => 15,
            MetadataRecord::FeatureLevel { .. } => 16,
            MetadataRecord::DelegationToken { .. } => 10,
            MetadataRecord::RemoveDelegationToken { .. } => 26,
            MetadataRecord::BrokerInControlledShutdown { .. } => 17,
            MetadataRecord::BrokerReplicasOffline { .. } => 17,
        }
    }
}
