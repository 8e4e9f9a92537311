//! Requests the controller handles and the replies it releases once their records commit.
//!
//! These are domain types, not Kafka wire types: the broker translates its decoded
//! requests into them and the replies back.

use crate::acl::{AclBinding, AclFilter};
use crate::config_defs::ConfigEntry;
use crate::controller::errors::ApiError;
use crate::records::{ConfigResource, Endpoint};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerRequest {
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    CreatePartitions(CreatePartitionsRequest),
    /// Legacy AlterConfigs: the given keys become the resource's whole set of overrides.
    AlterConfigs(AlterConfigsRequest),
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    RegisterBroker(RegisterBrokerRequest),
    BrokerHeartbeat(BrokerHeartbeatRequest),
    UnregisterBroker {
        broker_id: i32,
    },
    AllocateProducerIds {
        broker_id: i32,
        broker_epoch: i64,
    },
    AlterPartition(AlterPartitionRequest),
    ElectLeaders(ElectLeadersRequest),
    /// CreateAcls: each binding is added unless an identical one exists.
    CreateAcls(Vec<AclBinding>),
    /// DeleteAcls: every ACL matching any filter is removed, in one atomic entry.
    DeleteAcls(Vec<AclFilter>),
    /// AlterClientQuotas: per entity, keys set (`Some`) or removed (`None`).
    AlterClientQuotas {
        entries: Vec<crate::quota::QuotaAlteration>,
        validate_only: bool,
    },
    AlterUserScramCredentials(AlterScramRequest),
    /// CreateDelegationToken, after the broker's checks (channel, ACLs, principal types).
    CreateDelegationToken(CreateTokenRequest),
    /// RenewDelegationToken of the token the broker found by its HMAC.
    RenewDelegationToken(ChangeTokenRequest),
    /// ExpireDelegationToken of the token the broker found by its HMAC.
    ExpireDelegationToken(ChangeTokenRequest),
    AlterPartitionReassignments(AlterPartitionReassignmentsRequest),
    /// Read-only: answered from the controller's image, no records.
    ListPartitionReassignments(ListPartitionReassignmentsRequest),
    /// UpdateFeatures: finalize feature levels (`controller/features.rs`).
    UpdateFeatures(UpdateFeaturesRequest),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerReply {
    CreateTopics(Vec<CreateTopicResult>),
    DeleteTopics(Vec<DeleteTopicResult>),
    CreatePartitions(Vec<CreatePartitionsResult>),
    AlterConfigs(Vec<AlterConfigsResult>),
    IncrementalAlterConfigs(Vec<AlterConfigsResult>),
    RegisterBroker {
        broker_epoch: i64,
    },
    BrokerHeartbeat(BrokerHeartbeatReply),
    UnregisterBroker,
    AllocateProducerIds {
        producer_id_start: i64,
        producer_id_len: i32,
    },
    AlterPartition(Vec<AlterPartitionResult>),
    ElectLeaders(Vec<ElectLeadersTopicResult>),
    /// Per creation, in request order.
    CreateAcls(Vec<Result<(), ApiError>>),
    /// Per filter, in request order: the ACLs it removed.
    DeleteAcls(Vec<Result<Vec<AclBinding>, ApiError>>),
    /// Per entry, in request order.
    AlterClientQuotas(Vec<Result<(), ApiError>>),
    AlterPartitionReassignments(Vec<ReassignmentTopicResult>),
    ListPartitionReassignments(Vec<OngoingTopicReassignment>),
    /// The new token (the broker adds its HMAC).
    CreateDelegationToken(Result<CreatedToken, ApiError>),
    /// The token's new expiry timestamp (ms since the epoch; for an expiry with a negative
    /// period, that period, as Kafka answers).
    RenewDelegationToken(Result<i64, ApiError>),
    ExpireDelegationToken(Result<i64, ApiError>),
    /// One result per user named in the request, in first-seen order.
    AlterUserScramCredentials(Vec<AlterScramResult>),
    /// The whole request's result: Kafka refuses all updates when one is refused.
    UpdateFeatures(Result<(), ApiError>),
}

/// UpdateFeatures: the updates, and the features the requesting broker's binary supports
/// with the level each runs at when no record finalized it (every node runs the same
/// binary, so the broker's table is the controller's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateFeaturesRequest {
    pub updates: Vec<FeatureUpdate>,
    pub validate_only: bool,
    pub supported: Vec<SupportedFeature>,
    /// The node judging the request, named in Kafka's refusal messages.
    pub node_id: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureUpdate {
    pub name: String,
    pub level: i16,
    pub upgrade_type: FeatureUpgradeType,
}

/// Kafka's `FeatureUpdate.UpgradeType` (UpdateFeatures v1+; v0's `allow_downgrade` is
/// SafeDowngrade).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureUpgradeType {
    Unknown,
    Upgrade,
    SafeDowngrade,
    UnsafeDowngrade,
}

impl FeatureUpgradeType {
    /// From the wire's code (1 upgrade, 2 safe, 3 unsafe downgrade).
    pub fn from_code(code: i8) -> FeatureUpgradeType {
        match code {
            1 => FeatureUpgradeType::Upgrade,
            2 => FeatureUpgradeType::SafeDowngrade,
            3 => FeatureUpgradeType::UnsafeDowngrade,
            _ => FeatureUpgradeType::Unknown,
        }
    }
}

/// A feature's supported range and its level before any record finalizes one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportedFeature {
    pub name: String,
    pub min: i16,
    pub max: i16,
    pub default_level: i16,
}

/// AlterUserScramCredentials: the broker has already turned each salted password into its
/// stored and server keys, so no password-derived secret beyond Kafka's own record reaches
/// the controller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterScramRequest {
    /// (user, mechanism id).
    pub deletions: Vec<(String, i8)>,
    pub upsertions: Vec<ScramUpsertion>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramUpsertion {
    pub name: String,
    /// Kafka's ScramMechanism id (1 SCRAM-SHA-256, 2 SCRAM-SHA-512).
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// A delegation token to create; principals as Kafka writes them (`User:alice`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTokenRequest {
    pub owner: String,
    pub requester: String,
    pub renewers: Vec<String>,
    /// The lifetime asked for; not above 0 means `delegation.token.max.lifetime.ms`.
    pub max_lifetime_ms: i64,
    /// The broker's wall clock, milliseconds since the epoch: token timestamps are read by
    /// clients, and the controller's own clock is monotonic.
    pub now_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    pub token_id: String,
    pub issue_timestamp_ms: i64,
    pub expiry_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
}

/// A renewal or expiry of one token by `principal`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeTokenRequest {
    pub token_id: String,
    pub principal: String,
    /// Renew: the period asked for (not above 0: `delegation.token.expiry.time.ms`).
    /// Expire: the time left from now (negative: remove the token now).
    pub period_ms: i64,
    /// The broker's wall clock, milliseconds since the epoch.
    pub now_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterScramResult {
    pub user: String,
    pub error: Option<ApiError>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopicsRequest {
    pub topics: Vec<CreatableTopic>,
    pub validate_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatableTopic {
    pub name: String,
    /// -1: the controller's `num_partitions`.
    pub num_partitions: i32,
    /// -1: the controller's `default_replication_factor`.
    pub replication_factor: i16,
    /// Manual placement: (partition, replica broker ids). Needs both counts at -1.
    pub assignments: Vec<(i32, Vec<i32>)>,
    /// `None` values are refused, as Kafka does.
    pub configs: Vec<(String, Option<String>)>,
}

impl CreatableTopic {
    /// A topic with the broker's default partition count and replication factor.
    pub fn named(name: impl Into<String>) -> Self {
        CreatableTopic {
            name: name.into(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopicResult {
    pub name: String,
    /// Zero when the topic was not created.
    pub topic_id: Uuid,
    pub error: Option<ApiError>,
    /// -1 on error, as in Kafka's response.
    pub num_partitions: i32,
    pub replication_factor: i16,
    /// Every topic config with its effective value; empty on error.
    pub configs: Vec<ConfigEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTopicsRequest {
    pub topics: Vec<TopicRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTopicResult {
    pub topic: TopicRef,
    /// The topic's name and id when it was found.
    pub name: Option<String>,
    pub topic_id: Uuid,
    pub error: Option<ApiError>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePartitionsRequest {
    pub topics: Vec<CreatePartitionsTopic>,
    pub validate_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePartitionsTopic {
    pub name: String,
    /// The new total partition count.
    pub count: i32,
    /// Replicas of each new partition, in partition order.
    pub assignments: Option<Vec<Vec<i32>>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePartitionsResult {
    pub name: String,
    pub error: Option<ApiError>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlterConfigOp {
    Set,
    Delete,
    Append,
    Subtract,
}

impl AlterConfigOp {
    /// Kafka's `IncrementalAlterConfigs` operation id.
    pub fn from_kafka_id(id: i8) -> Option<Self> {
        match id {
            0 => Some(AlterConfigOp::Set),
            1 => Some(AlterConfigOp::Delete),
            2 => Some(AlterConfigOp::Append),
            3 => Some(AlterConfigOp::Subtract),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterableConfig {
    pub key: String,
    pub op: AlterConfigOp,
    pub value: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncrementalAlterResource {
    pub resource: ConfigResource,
    pub configs: Vec<AlterableConfig>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncrementalAlterConfigsRequest {
    pub resources: Vec<IncrementalAlterResource>,
    pub validate_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterResource {
    pub resource: ConfigResource,
    pub configs: Vec<(String, Option<String>)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterConfigsRequest {
    pub resources: Vec<AlterResource>,
    pub validate_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterConfigsResult {
    pub resource: ConfigResource,
    pub error: Option<ApiError>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerRequest {
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeatRequest {
    pub broker_id: i32,
    pub broker_epoch: i64,
    /// The broker is not ready to serve (still catching up): stay or become fenced.
    pub want_fence: bool,
    /// Controlled shutdown: move leadership away and fence.
    pub want_shutdown: bool,
    /// (topic id, partition) of every replica the broker cannot serve now (its log damaged
    /// at open, failed, or otherwise offline): Kafka's `OfflineLogDirs` (v1+, KIP-858) at
    /// replica granularity. The controller takes them out of ISRs and leadership.
    #[serde(default)]
    pub offline_replicas: Vec<(Uuid, i32)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeatReply {
    /// Whether the broker is fenced once this heartbeat's records commit.
    pub is_fenced: bool,
    pub should_shutdown: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionRequest {
    /// The leader asking for the ISR change.
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub partitions: Vec<AlterPartitionItem>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionItem {
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub new_isr: Vec<i32>,
    pub partition_epoch: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionResult {
    pub topic_id: Uuid,
    pub partition: i32,
    pub error: Option<ApiError>,
    /// The partition state after the change (meaningful when `error` is `None`).
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
}

/// Kafka's `ElectionType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    /// Move leadership to the first replica when it is in the ISR and active.
    Preferred,
    /// Elect a leader for a leaderless partition, from outside the ISR if need be (data
    /// written only to the old ISR may be lost).
    Unclean,
}

impl ElectionType {
    /// From the wire's `election_type` (0 preferred, 1 unclean).
    pub fn from_kafka_id(id: i8) -> Option<Self> {
        match id {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectLeadersRequest {
    pub election_type: ElectionType,
    /// (topic name, partitions); `None` means every partition of every topic, whose
    /// results then leave out the partitions that needed no election (as Kafka does).
    pub topic_partitions: Option<Vec<(String, Vec<i32>)>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectLeadersTopicResult {
    pub topic: String,
    /// (partition, error); `None` means a new leader was elected.
    pub partitions: Vec<(i32, Option<ApiError>)>,
}

/// (topic name, [(partition, target replicas, or `None` to cancel)]), per topic.
pub type ReassignmentTargets = Vec<(String, Vec<(i32, Option<Vec<i32>>)>)>;

/// AlterPartitionReassignments: per partition, the target replicas, or `None` to cancel the
/// ongoing reassignment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionReassignmentsRequest {
    /// KIP-860 (v1): when false, a target whose size differs from the partition's replica
    /// count is refused with INVALID_REPLICATION_FACTOR. Version 0 requests mean true.
    pub allow_replication_factor_change: bool,
    pub topics: ReassignmentTargets,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignmentTopicResult {
    pub topic: String,
    /// (partition, error); `None` means the reassignment was started, changed or cancelled.
    pub partitions: Vec<(i32, Option<ApiError>)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPartitionReassignmentsRequest {
    /// (topic name, partitions); `None` lists every ongoing reassignment.
    pub topics: Option<Vec<(String, Vec<i32>)>>,
}

/// The ongoing reassignments of one topic (only topics with at least one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OngoingTopicReassignment {
    pub topic: String,
    pub partitions: Vec<OngoingPartitionReassignment>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OngoingPartitionReassignment {
    pub partition: i32,
    /// The current (merged) replica list: target replicas, then those being removed.
    pub replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    pub removing_replicas: Vec<i32>,
}
