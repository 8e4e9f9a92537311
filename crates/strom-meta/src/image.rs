//! The immutable in-memory image of cluster metadata, and its read accessors.
//!
//! An image is a value: `apply` returns a new image and leaves the old one untouched, so a
//! reader can hold an image for as long as it likes without locks. Cloning is one `Arc`
//! increment; applying copies the top-level maps and shares every untouched topic.

use crate::acl::AclBinding;
use crate::config_defs::{describe_topic_configs, ConfigEntry};
use crate::records::{ConfigResource, Endpoint};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use uuid::Uuid;

/// A topic partition named by topic id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicIdPartition {
    pub topic_id: Uuid,
    pub partition: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionImage {
    /// During a reassignment: the target replicas, then the ones being removed (Kafka's
    /// merged list), so the first is the target's preferred leader.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// [`crate::NO_LEADER`] when no replica leads.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Replicas a reassignment adds (empty when none is in progress).
    pub adding_replicas: Vec<i32>,
    /// Replicas a reassignment removes once the added ones are in sync.
    pub removing_replicas: Vec<i32>,
}

impl PartitionImage {
    pub fn has_leader(&self) -> bool {
        self.leader >= 0
    }

    /// Whether a reassignment is in progress (Kafka's `isReassigning`).
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: BTreeMap<i32, PartitionImage>,
}

impl TopicImage {
    /// Replica count of the topic's partitions (of partition 0 if they differ).
    pub fn replication_factor(&self) -> usize {
        self.partitions
            .values()
            .next()
            .map_or(0, |p| p.replicas.len())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    pub epoch: i64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
    /// The broker asked for a controlled shutdown and was granted it: it still serves, but
    /// it leads nothing, joins no ISR and gets no new replicas (Kafka's
    /// `inControlledShutdown`). Cleared when it is fenced or registers again.
    pub in_controlled_shutdown: bool,
}

impl BrokerRegistration {
    /// Kafka's "active" broker: unfenced and not in controlled shutdown, so it may lead a
    /// partition, join an ISR and receive new replicas.
    pub fn is_active(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }
}

/// A user's stored SCRAM credential for one mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredentialImage {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for ScramCredentialImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("ScramCredentialImage")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// A delegation token as the metadata log holds it (no HMAC: that is derived from the
/// token id and the secret key on each node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelegationTokenImage {
    /// Principals as Kafka writes them (`User:alice`).
    pub owner: String,
    pub requester: String,
    pub renewers: Vec<String>,
    pub issue_timestamp_ms: i64,
    /// The token cannot be renewed past this.
    pub max_timestamp_ms: i64,
    /// The token stops authenticating after this unless renewed.
    pub expiry_timestamp_ms: i64,
}

impl DelegationTokenImage {
    /// Kafka's `TokenInformation.ownerOrRenewer`.
    pub fn owner_or_renewer(&self, principal: &str) -> bool {
        self.owner == principal || self.renewers.iter().any(|r| r == principal)
    }

    /// Whether the token has expired at `now_ms` (Kafka's check: past its expiry or its
    /// maximum timestamp).
    pub fn expired(&self, now_ms: i64) -> bool {
        self.max_timestamp_ms < now_ms || self.expiry_timestamp_ms < now_ms
    }
}

/// Where producer id allocation stands: the next block starts at `next_producer_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerIdsImage {
    pub next_producer_id: i64,
    /// Broker that took the last block, with its epoch then (-1 before any allocation).
    pub last_broker_id: i32,
    pub last_broker_epoch: i64,
}

impl Default for ProducerIdsImage {
    fn default() -> Self {
        ProducerIdsImage {
            next_producer_id: 0,
            last_broker_id: -1,
            last_broker_epoch: -1,
        }
    }
}

/// Each map sits behind its own `Arc`, so applying records copies only the maps they touch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ImageInner {
    pub topics: Arc<BTreeMap<Uuid, Arc<TopicImage>>>,
    pub topic_ids_by_name: Arc<BTreeMap<Arc<str>, Uuid>>,
    pub configs: Arc<BTreeMap<ConfigResource, BTreeMap<String, String>>>,
    pub brokers: Arc<BTreeMap<i32, BrokerRegistration>>,
    pub producer_ids: ProducerIdsImage,
    /// Client quota values per entity (`quota.rs`).
    pub client_quotas:
        Arc<BTreeMap<crate::quota::QuotaEntity, BTreeMap<String, crate::quota::QuotaValue>>>,
    /// ACLs by the id their record gave them.
    pub acls: Arc<BTreeMap<Uuid, AclBinding>>,
    /// SCRAM credentials by (user, mechanism id).
    pub scram: Arc<BTreeMap<(String, i8), ScramCredentialImage>>,
    /// Whether a SCRAM record (a credential or its removal) was ever applied: the log held
    /// SCRAM credentials, maybe all deleted since. Kept in snapshots (`snapshot.rs`), so the
    /// bootstrap SCRAM users count only for a log that never held any (strom-raft's
    /// `bootstrap_scram.rs`), as Kafka writes its bootstrap records once.
    pub scram_ever_written: bool,
    /// Delegation tokens by token id.
    pub delegation_tokens: Arc<BTreeMap<String, DelegationTokenImage>>,
    /// Highest broker epoch ever registered, kept so epochs stay unique after unregistering.
    pub broker_epoch_high: i64,
    /// Per broker, the replicas it reported it cannot serve (`BrokerReplicasOffline`); empty
    /// sets are not kept.
    pub offline_replicas: Arc<BTreeMap<i32, BTreeSet<TopicIdPartition>>>,
    /// Feature levels finalized by a `FeatureLevel` record: name to (level, epoch of that
    /// change). A feature with no record runs at the binary's default level.
    pub feature_levels: Arc<BTreeMap<String, (i16, i64)>>,
}

/// Cluster metadata at one point of the metadata log.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MetadataImage {
    pub(crate) inner: Arc<ImageInner>,
}

impl MetadataImage {
    pub(crate) fn from_inner(inner: ImageInner) -> Self {
        MetadataImage {
            inner: Arc::new(inner),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self.inner == ImageInner::default()
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&TopicImage> {
        let id = self.inner.topic_ids_by_name.get(name)?;
        self.topic_by_id(*id)
    }

    pub fn topic_by_id(&self, topic_id: Uuid) -> Option<&TopicImage> {
        self.inner.topics.get(&topic_id).map(|t| t.as_ref())
    }

    pub fn topic_id(&self, name: &str) -> Option<Uuid> {
        self.inner.topic_ids_by_name.get(name).copied()
    }

    /// Topics in topic-id order.
    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> + '_ {
        self.inner.topics.values().map(|t| t.as_ref())
    }

    /// Topic names in name order.
    pub fn topic_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.inner
            .topic_ids_by_name
            .keys()
            .map(|name| name.as_ref())
    }

    pub fn topic_count(&self) -> usize {
        self.inner.topics.len()
    }

    pub fn partition(&self, topic_id: Uuid, partition: i32) -> Option<&PartitionImage> {
        self.topic_by_id(topic_id)?.partitions.get(&partition)
    }

    /// Every partition of every topic, in (topic id, partition) order.
    pub fn partitions(&self) -> impl Iterator<Item = (TopicIdPartition, &PartitionImage)> + '_ {
        self.topics().flat_map(|t| {
            t.partitions.iter().map(move |(p, image)| {
                (
                    TopicIdPartition {
                        topic_id: t.topic_id,
                        partition: *p,
                    },
                    image,
                )
            })
        })
    }

    /// The keys explicitly set on a resource (defaults are not stored).
    pub fn configs(&self, resource: &ConfigResource) -> Option<&BTreeMap<String, String>> {
        self.inner.configs.get(resource)
    }

    /// Every resource of `kind` that has keys set, by name, with its keys. Resources sort by
    /// kind first, so this walks only that kind's range (not every topic's configs).
    pub fn configs_of_kind(
        &self,
        kind: crate::records::ConfigResourceKind,
    ) -> impl Iterator<Item = (&str, &BTreeMap<String, String>)> {
        let first = ConfigResource {
            kind,
            name: String::new(),
        };
        self.inner
            .configs
            .range(first..)
            .take_while(move |(resource, _)| resource.kind == kind)
            .filter(|(_, configs)| !configs.is_empty())
            .map(|(resource, configs)| (resource.name.as_str(), configs))
    }

    pub fn topic_configs(&self, topic_name: &str) -> Option<&BTreeMap<String, String>> {
        self.configs(&ConfigResource::topic(topic_name))
    }

    pub fn config_value(&self, resource: &ConfigResource, key: &str) -> Option<&str> {
        self.configs(resource)?.get(key).map(String::as_str)
    }

    /// Every topic config of `topic_name` with its effective value and source, as
    /// DescribeConfigs lists them; `None` if the topic does not exist.
    pub fn describe_topic_configs(&self, topic_name: &str) -> Option<Vec<ConfigEntry>> {
        self.topic_by_name(topic_name)?;
        let overrides = self.topic_configs(topic_name);
        Some(describe_topic_configs(|key| {
            overrides.and_then(|o| o.get(key)).map(String::as_str)
        }))
    }

    pub fn broker(&self, broker_id: i32) -> Option<&BrokerRegistration> {
        self.inner.brokers.get(&broker_id)
    }

    /// Registered brokers in id order.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> + '_ {
        self.inner.brokers.values()
    }

    /// Ids of registered, unfenced brokers, ascending.
    pub fn unfenced_broker_ids(&self) -> Vec<i32> {
        self.brokers()
            .filter(|b| !b.fenced)
            .map(|b| b.broker_id)
            .collect()
    }

    pub fn is_broker_unfenced(&self, broker_id: i32) -> bool {
        self.broker(broker_id).is_some_and(|b| !b.fenced)
    }

    /// Whether the broker is registered, unfenced and not in controlled shutdown.
    /// Whether `broker_id` reported its replica of `tp` offline (its log damaged or failed):
    /// it may not lead `tp` nor count as one of its live replicas (Kafka's replica in an
    /// offline log directory).
    pub fn is_replica_offline(&self, broker_id: i32, tp: TopicIdPartition) -> bool {
        self.inner
            .offline_replicas
            .get(&broker_id)
            .is_some_and(|set| set.contains(&tp))
    }

    /// The replicas `broker_id` reported offline, ascending.
    pub fn offline_replicas(&self, broker_id: i32) -> impl Iterator<Item = TopicIdPartition> + '_ {
        self.inner
            .offline_replicas
            .get(&broker_id)
            .into_iter()
            .flat_map(|set| set.iter().copied())
    }

    pub fn is_broker_active(&self, broker_id: i32) -> bool {
        self.broker(broker_id)
            .is_some_and(BrokerRegistration::is_active)
    }

    /// The SCRAM credential of `user` for mechanism id `mechanism` (1 SHA-256, 2 SHA-512).
    pub fn scram_credential(&self, user: &str, mechanism: i8) -> Option<&ScramCredentialImage> {
        self.inner.scram.get(&(user.to_string(), mechanism))
    }

    /// Whether the log ever held a SCRAM credential (a credential record or its removal was
    /// applied), even if every one is deleted now.
    pub fn scram_ever_written(&self) -> bool {
        self.inner.scram_ever_written
    }

    /// Every SCRAM credential: ((user, mechanism id), credential), by user.
    pub fn scram_credentials(
        &self,
    ) -> impl Iterator<Item = (&(String, i8), &ScramCredentialImage)> + '_ {
        self.inner.scram.iter()
    }

    /// The delegation token with this id.
    pub fn delegation_token(&self, token_id: &str) -> Option<&DelegationTokenImage> {
        self.inner.delegation_tokens.get(token_id)
    }

    /// Every delegation token, by token id.
    pub fn delegation_tokens(&self) -> impl Iterator<Item = (&String, &DelegationTokenImage)> + '_ {
        self.inner.delegation_tokens.iter()
    }

    pub fn producer_ids(&self) -> &ProducerIdsImage {
        &self.inner.producer_ids
    }

    pub fn next_producer_id(&self) -> i64 {
        self.inner.producer_ids.next_producer_id
    }

    /// Every ACL with its id, in id order.
    pub fn acls(&self) -> impl Iterator<Item = (&Uuid, &AclBinding)> + '_ {
        self.inner.acls.iter()
    }

    /// Every ACL, for [`crate::acl::authorize`].
    pub fn acl_bindings(&self) -> impl Iterator<Item = &AclBinding> + Clone + '_ {
        self.inner.acls.values()
    }

    /// Every entity with quotas, and its values.
    pub fn client_quotas(
        &self,
    ) -> impl Iterator<
        Item = (
            &crate::quota::QuotaEntity,
            &BTreeMap<String, crate::quota::QuotaValue>,
        ),
    > + '_ {
        self.inner.client_quotas.iter()
    }

    /// The value of one quota key of one entity.
    pub fn client_quota(&self, entity: &crate::quota::QuotaEntity, key: &str) -> Option<f64> {
        self.inner
            .client_quotas
            .get(entity)
            .and_then(|values| values.get(key))
            .map(|v| v.get())
    }

    pub fn acl_count(&self) -> usize {
        self.inner.acls.len()
    }

    /// The level a `FeatureLevel` record finalized `name` at, `None` when no record did
    /// (the feature then runs at the binary's default level).
    pub fn feature_level(&self, name: &str) -> Option<i16> {
        self.inner.feature_levels.get(name).map(|(level, _)| *level)
    }

    /// Every feature a record finalized, with its level, in name order.
    pub fn feature_levels(&self) -> impl Iterator<Item = (&str, i16)> + '_ {
        self.inner
            .feature_levels
            .iter()
            .map(|(name, (level, _))| (name.as_str(), *level))
    }

    /// The finalized-features epoch: that of the latest feature change, 0 before any (the
    /// levels the cluster was formed with).
    pub fn features_epoch(&self) -> i64 {
        self.inner
            .feature_levels
            .values()
            .map(|(_, epoch)| *epoch)
            .max()
            .unwrap_or(0)
    }

    pub fn broker_epoch_high(&self) -> i64 {
        self.inner.broker_epoch_high
    }
}
