//! Authorization: which operation on which resource each API needs ([`TABLE`], Kafka's
//! authorization table from its docs and `KafkaApis`), and the one check every handler
//! calls ([`allowed`]), answered by Kafka's StandardAuthorizer rules over the ACLs of the
//! current metadata image (`strom_meta::acl`).
//!
//! Without `authorizer.class.name` every check passes and nothing is logged (Kafka's
//! behaviour without an authorizer). With it, every denied check that a client asked for
//! explicitly is one INFO line on the tracing target [`AUDIT_TARGET`] naming the
//! principal, host, operation, resource and the rule that decided; checks that only filter
//! a listing (Metadata for all topics, ListGroups) deny silently, as Kafka's `logIfDenied`.

use std::collections::BTreeMap;

use strom_meta::acl::{
    authorize, authorize_by_resource_type, supported_operations, AclOperation, AuthorizerSettings,
    Decision, Requester, ResourceType, CLUSTER_NAME,
};
use strom_protocol::messages::{ApiKey, RequestKind};
use strom_protocol::ErrorCode;

use crate::config::ConfigError;
use crate::principal::Session;
use crate::server::BrokerContext;

/// The tracing target of the audit lines (Kafka's `kafka.authorizer.logger`).
pub use strom_meta::acl::AUDIT_TARGET;

/// The only authorizer class Strom serves: Kafka's KRaft authorizer.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// The authorizer's configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthzConfig {
    /// `authorizer.class.name` names the StandardAuthorizer.
    pub enabled: bool,
    /// `super.users` (`User:a;User:b`) and `allow.everyone.if.no.acl.found` (false).
    pub settings: AuthorizerSettings,
}

impl AuthzConfig {
    /// Reads the keys; any authorizer class other than Kafka's StandardAuthorizer is
    /// refused, so that a broker never runs open while its operator believes it is not.
    pub fn from_props(map: &BTreeMap<String, String>) -> Result<AuthzConfig, ConfigError> {
        let get = |key: &str| map.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let enabled = match get("authorizer.class.name") {
            None => false,
            Some(STANDARD_AUTHORIZER) => true,
            Some(other) => {
                return Err(ConfigError::InvalidValue {
                    key: "authorizer.class.name".into(),
                    value: other.into(),
                    reason: format!(
                        "Strom serves only Kafka's KRaft authorizer; set it to \
                         {STANDARD_AUTHORIZER} or leave it empty for no authorization"
                    ),
                })
            }
        };
        let mut super_users = Vec::new();
        for entry in get("super.users").unwrap_or("").split(';') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            if crate::principal::KafkaPrincipal::parse(entry).is_none() {
                return Err(ConfigError::InvalidValue {
                    key: "super.users".into(),
                    value: entry.into(),
                    reason: "expected principals as Type:name separated by ';', \
                             e.g. User:admin;User:ANONYMOUS"
                        .into(),
                });
            }
            super_users.push(entry.to_string());
        }
        let allow_everyone_if_no_acl_found =
            crate::config_keys::Props::new(map).bool("allow.everyone.if.no.acl.found")?;
        Ok(AuthzConfig {
            enabled,
            settings: AuthorizerSettings {
                super_users,
                allow_everyone_if_no_acl_found,
            },
        })
    }
}

use AclOperation as Op;
use ResourceType as Rt;

/// What each API checks, per resource type (Kafka's authorization table). An API absent
/// here checks nothing (ApiVersions, and DescribeCluster/Metadata beyond their topics).
/// Where one API lists several rows for a resource type, the handler names which one it
/// asks (`allowed_op`).
pub const TABLE: &[(ApiKey, ResourceType, AclOperation)] = &[
    // Data. Produce of transactional batches also needs WRITE on the transactional id;
    // a follower's Fetch (replica id set) needs CLUSTER_ACTION instead of topic READ.
    (ApiKey::Produce, Rt::Topic, Op::Write),
    (ApiKey::Produce, Rt::TransactionalId, Op::Write),
    (ApiKey::Fetch, Rt::Topic, Op::Read),
    (ApiKey::Fetch, Rt::Cluster, Op::ClusterAction),
    (ApiKey::ListOffsets, Rt::Topic, Op::Describe),
    (ApiKey::OffsetForLeaderEpoch, Rt::Topic, Op::Describe),
    (ApiKey::OffsetForLeaderEpoch, Rt::Cluster, Op::ClusterAction),
    (ApiKey::Metadata, Rt::Topic, Op::Describe),
    (ApiKey::DescribeTopicPartitions, Rt::Topic, Op::Describe),
    // Metadata auto-creation: CLUSTER CREATE, or CREATE on the topic.
    (ApiKey::Metadata, Rt::Cluster, Op::Create),
    (ApiKey::DeleteRecords, Rt::Topic, Op::Delete),
    // Admin on topics and configs.
    (ApiKey::CreateTopics, Rt::Cluster, Op::Create),
    (ApiKey::CreateTopics, Rt::Topic, Op::Create),
    (ApiKey::DeleteTopics, Rt::Topic, Op::Delete),
    (ApiKey::CreatePartitions, Rt::Topic, Op::Alter),
    (ApiKey::DescribeConfigs, Rt::Topic, Op::DescribeConfigs),
    (ApiKey::DescribeConfigs, Rt::Cluster, Op::DescribeConfigs),
    (ApiKey::AlterConfigs, Rt::Topic, Op::AlterConfigs),
    (ApiKey::AlterConfigs, Rt::Cluster, Op::AlterConfigs),
    (ApiKey::IncrementalAlterConfigs, Rt::Topic, Op::AlterConfigs),
    (
        ApiKey::IncrementalAlterConfigs,
        Rt::Cluster,
        Op::AlterConfigs,
    ),
    // Group configs (ConfigResource type GROUP).
    (ApiKey::DescribeConfigs, Rt::Group, Op::DescribeConfigs),
    (ApiKey::AlterConfigs, Rt::Group, Op::AlterConfigs),
    (ApiKey::IncrementalAlterConfigs, Rt::Group, Op::AlterConfigs),
    (ApiKey::DescribeLogDirs, Rt::Cluster, Op::Describe),
    (ApiKey::AlterReplicaLogDirs, Rt::Cluster, Op::Alter),
    (ApiKey::ElectLeaders, Rt::Cluster, Op::Alter),
    (ApiKey::AlterPartitionReassignments, Rt::Cluster, Op::Alter),
    (
        ApiKey::ListPartitionReassignments,
        Rt::Cluster,
        Op::Describe,
    ),
    (ApiKey::UpdateFeatures, Rt::Cluster, Op::Alter),
    (ApiKey::DescribeQuorum, Rt::Cluster, Op::Describe),
    // DescribeCluster needs nothing; its cluster_authorized_operations need DESCRIBE.
    (ApiKey::DescribeCluster, Rt::Cluster, Op::Describe),
    // ACLs.
    (ApiKey::CreateAcls, Rt::Cluster, Op::Alter),
    (ApiKey::DeleteAcls, Rt::Cluster, Op::Alter),
    (ApiKey::DescribeAcls, Rt::Cluster, Op::Describe),
    // Quotas.
    (ApiKey::AlterClientQuotas, Rt::Cluster, Op::AlterConfigs),
    (
        ApiKey::DescribeClientQuotas,
        Rt::Cluster,
        Op::DescribeConfigs,
    ),
    // Groups: members READ the group, offsets commit needs READ on the topics too.
    (ApiKey::FindCoordinator, Rt::Group, Op::Describe),
    (ApiKey::FindCoordinator, Rt::TransactionalId, Op::Describe),
    (ApiKey::JoinGroup, Rt::Group, Op::Read),
    (ApiKey::SyncGroup, Rt::Group, Op::Read),
    (ApiKey::Heartbeat, Rt::Group, Op::Read),
    (ApiKey::LeaveGroup, Rt::Group, Op::Read),
    (ApiKey::ConsumerGroupHeartbeat, Rt::Group, Op::Read),
    (ApiKey::ConsumerGroupHeartbeat, Rt::Topic, Op::Describe),
    (ApiKey::ConsumerGroupDescribe, Rt::Group, Op::Describe),
    (ApiKey::ShareGroupHeartbeat, Rt::Group, Op::Read),
    (ApiKey::ShareGroupHeartbeat, Rt::Topic, Op::Describe),
    (ApiKey::ShareGroupDescribe, Rt::Group, Op::Describe),
    // KIP-1071: READ on the group, DESCRIBE on every topic of the topology, CREATE on the
    // internal topics the broker creates for it (or on the cluster).
    (ApiKey::StreamsGroupHeartbeat, Rt::Group, Op::Read),
    (ApiKey::StreamsGroupHeartbeat, Rt::Topic, Op::Describe),
    (ApiKey::StreamsGroupDescribe, Rt::Group, Op::Describe),
    // Share consumers READ the share group and the topics they fetch from.
    (ApiKey::ShareFetch, Rt::Group, Op::Read),
    (ApiKey::ShareFetch, Rt::Topic, Op::Read),
    (ApiKey::ShareAcknowledge, Rt::Group, Op::Read),
    (ApiKey::ShareAcknowledge, Rt::Topic, Op::Read),
    (ApiKey::DescribeShareGroupOffsets, Rt::Group, Op::Describe),
    (ApiKey::AlterShareGroupOffsets, Rt::Group, Op::Read),
    (ApiKey::DeleteShareGroupOffsets, Rt::Group, Op::Delete),
    // FindCoordinator(SHARE) and the share coordinator's RPCs are asked by brokers (Kafka:
    // CLUSTER_ACTION).
    (
        ApiKey::InitializeShareGroupState,
        Rt::Cluster,
        Op::ClusterAction,
    ),
    (ApiKey::ReadShareGroupState, Rt::Cluster, Op::ClusterAction),
    (ApiKey::WriteShareGroupState, Rt::Cluster, Op::ClusterAction),
    (
        ApiKey::DeleteShareGroupState,
        Rt::Cluster,
        Op::ClusterAction,
    ),
    (
        ApiKey::ReadShareGroupStateSummary,
        Rt::Cluster,
        Op::ClusterAction,
    ),
    (ApiKey::FindCoordinator, Rt::Cluster, Op::ClusterAction),
    (ApiKey::OffsetCommit, Rt::Group, Op::Read),
    (ApiKey::OffsetCommit, Rt::Topic, Op::Read),
    (ApiKey::OffsetFetch, Rt::Group, Op::Describe),
    (ApiKey::OffsetFetch, Rt::Topic, Op::Describe),
    (ApiKey::DescribeGroups, Rt::Group, Op::Describe),
    // ListGroups lists every group to a principal with CLUSTER DESCRIBE, else the groups
    // it may DESCRIBE.
    (ApiKey::ListGroups, Rt::Cluster, Op::Describe),
    (ApiKey::ListGroups, Rt::Group, Op::Describe),
    (ApiKey::DeleteGroups, Rt::Group, Op::Delete),
    (ApiKey::OffsetDelete, Rt::Group, Op::Delete),
    (ApiKey::OffsetDelete, Rt::Topic, Op::Read),
    // Producer ids: WRITE on the transactional id; without one (idempotence), CLUSTER
    // IDEMPOTENT_WRITE or WRITE on any topic (KIP-679).
    (ApiKey::InitProducerId, Rt::TransactionalId, Op::Write),
    (ApiKey::InitProducerId, Rt::Cluster, Op::IdempotentWrite),
    (ApiKey::InitProducerId, Rt::Topic, Op::Write),
    // Transactions (the transaction coordinator calls these checks).
    (ApiKey::AddPartitionsToTxn, Rt::TransactionalId, Op::Write),
    (ApiKey::AddPartitionsToTxn, Rt::Topic, Op::Write),
    (ApiKey::AddOffsetsToTxn, Rt::TransactionalId, Op::Write),
    (ApiKey::AddOffsetsToTxn, Rt::Group, Op::Read),
    (ApiKey::EndTxn, Rt::TransactionalId, Op::Write),
    (ApiKey::TxnOffsetCommit, Rt::TransactionalId, Op::Write),
    (ApiKey::TxnOffsetCommit, Rt::Group, Op::Read),
    (ApiKey::TxnOffsetCommit, Rt::Topic, Op::Read),
    (
        ApiKey::DescribeTransactions,
        Rt::TransactionalId,
        Op::Describe,
    ),
    (ApiKey::ListTransactions, Rt::TransactionalId, Op::Describe),
    // Whole-request checks of the APIs added beside the authorizer (`precheck`): SCRAM
    // credentials and quorum changes need CLUSTER ALTER (DESCRIBE to read), broker-to-broker
    // calls CLUSTER_ACTION, as Kafka's `KafkaApis`/`ControllerApis`.
    (ApiKey::AlterUserScramCredentials, Rt::Cluster, Op::Alter),
    (
        ApiKey::DescribeUserScramCredentials,
        Rt::Cluster,
        Op::Describe,
    ),
    (ApiKey::AddRaftVoter, Rt::Cluster, Op::Alter),
    (ApiKey::RemoveRaftVoter, Rt::Cluster, Op::Alter),
    (ApiKey::UpdateRaftVoter, Rt::Cluster, Op::ClusterAction),
    // WriteTxnMarkers: CLUSTER_ACTION, or ALTER (checked quietly first, KIP-664).
    (ApiKey::WriteTxnMarkers, Rt::Cluster, Op::ClusterAction),
    // AddPartitionsToTxn v4+, sent only by brokers (KIP-890).
    (ApiKey::AddPartitionsToTxn, Rt::Cluster, Op::ClusterAction),
    (
        ApiKey::ListConfigResources,
        Rt::Cluster,
        Op::DescribeConfigs,
    ),
    (ApiKey::DescribeProducers, Rt::Topic, Op::Read),
    // Delegation tokens: CREATE_TOKENS on the owner (when it is not the requester),
    // DESCRIBE on each token or DESCRIBE_TOKENS on its owner. Renew and expire are decided by
    // ownership (the owner or a renewer, with the token's HMAC), not by ACLs. While tokens
    // are not enabled every request is answered DELEGATION_TOKEN_AUTH_DISABLED (or
    // _REQUEST_NOT_ALLOWED) before any of these checks, as in Kafka.
    (ApiKey::CreateDelegationToken, Rt::User, Op::CreateTokens),
    (
        ApiKey::DescribeDelegationToken,
        Rt::DelegationToken,
        Op::Describe,
    ),
    (
        ApiKey::DescribeDelegationToken,
        Rt::User,
        Op::DescribeTokens,
    ),
];

/// The operation `api` needs on a resource of `resource_type` (its first row in [`TABLE`]).
pub fn operation(api: ApiKey, resource_type: ResourceType) -> Option<AclOperation> {
    TABLE
        .iter()
        .find(|(a, rt, _)| *a == api && *rt == resource_type)
        .map(|(_, _, op)| *op)
}

/// Whether an authorizer is configured.
pub fn enabled(context: &BrokerContext) -> bool {
    context.config.authorization.enabled
}

/// THE check: may `session` do what `api` needs on the resource `(resource_type, name)`?
/// Denials are audited. Always true without an authorizer. An (api, resource type) pair
/// missing from [`TABLE`] is denied (a handler bug must not open a hole).
pub fn allowed(
    context: &BrokerContext,
    session: &Session,
    api: ApiKey,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    if !enabled(context) {
        return true;
    }
    match operation(api, resource_type) {
        Some(op) => check(context, session, api, op, resource_type, name, true),
        None => {
            tracing::error!(
                ?api,
                %resource_type,
                "no authorization rule for this API and resource type; denied"
            );
            false
        }
    }
}

/// As [`allowed`], without an audit line when denied: for checks that filter a listing.
pub fn visible(
    context: &BrokerContext,
    session: &Session,
    api: ApiKey,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    if !enabled(context) {
        return true;
    }
    operation(api, resource_type)
        .is_some_and(|op| check(context, session, api, op, resource_type, name, false))
}

/// May `session` do `op` on the resource? For the rows where one API asks different
/// operations of one resource type; `api` only labels the audit line.
pub fn allowed_op(
    context: &BrokerContext,
    session: &Session,
    api: ApiKey,
    op: AclOperation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    !enabled(context) || check(context, session, api, op, resource_type, name, true)
}

/// May `session` do what `api` needs on the cluster resource?
pub fn cluster_allowed(context: &BrokerContext, session: &Session, api: ApiKey) -> bool {
    allowed(context, session, api, Rt::Cluster, CLUSTER_NAME)
}

/// Kafka's `authorizeByResourceType`: may `session` do `op` on some resource of the type?
pub fn allowed_on_any(
    context: &BrokerContext,
    session: &Session,
    op: AclOperation,
    resource_type: ResourceType,
) -> bool {
    if !enabled(context) {
        return true;
    }
    let image = context.metadata.image();
    let host = session.client_ip().to_string();
    let principal = session.principal.to_string();
    authorize_by_resource_type(
        image.acl_bindings(),
        &context.config.authorization.settings,
        Requester {
            principal: &principal,
            host: &host,
        },
        op,
        resource_type,
    )
}

/// Kafka's `authorized_operations` bit field for a resource (Metadata, DescribeCluster,
/// DescribeGroups when asked): bit `op id` set for each allowed operation. Without an
/// authorizer every supported operation is allowed.
pub fn authorized_operations(
    context: &BrokerContext,
    session: &Session,
    resource_type: ResourceType,
    name: &str,
) -> i32 {
    supported_operations(resource_type)
        .iter()
        .filter(|op| {
            !enabled(context)
                || check(
                    context,
                    session,
                    ApiKey::Metadata,
                    **op,
                    resource_type,
                    name,
                    false,
                )
        })
        .fold(0, |bits, op| bits | (1 << op.id()))
}

fn check(
    context: &BrokerContext,
    session: &Session,
    api: ApiKey,
    op: AclOperation,
    resource_type: ResourceType,
    name: &str,
    audit: bool,
) -> bool {
    let image = context.metadata.image();
    let host = session.client_ip().to_string();
    let principal = session.principal.to_string();
    let decision = authorize(
        image.acl_bindings(),
        &context.config.authorization.settings,
        Requester {
            principal: &principal,
            host: &host,
        },
        op,
        resource_type,
        name,
    );
    let allowed = decision.is_allowed();
    if !allowed && audit {
        audit_denied(session, api, op, resource_type, name, &decision);
    }
    allowed
}

/// The audit line of a denied operation.
fn audit_denied(
    session: &Session,
    api: ApiKey,
    op: AclOperation,
    resource_type: ResourceType,
    name: &str,
    decision: &Decision,
) {
    tracing::info!(
        target: AUDIT_TARGET,
        principal = %session.principal,
        host = %session.client_ip(),
        listener = %session.listener_name,
        operation = %op,
        resource_type = %resource_type,
        resource = %name,
        api = ?api,
        rule = %decision,
        "denied"
    );
}

/// The first AddPartitionsToTxn version that batches transactions (sent by brokers only).
const ADD_PARTITIONS_BATCHED_MIN_VERSION: i16 = 4;
/// The first FindCoordinator version that batches keys (KIP-699).
const FIND_COORDINATOR_BATCHED_MIN_VERSION: i16 = 4;

/// Whole-request checks, made before a handler runs: for APIs whose only (or first)
/// check is on one group, one transactional id or the cluster. `Some(error)` answers the
/// whole request with Kafka's error (every item carries it). Checks on the items of a
/// batch (topics, keys, ids) are made per item in the handlers (`authorize.rs`,
/// `authorize_admin.rs`, `authorize_batched.rs`), never here: Kafka answers them one by one.
pub fn precheck(
    context: &BrokerContext,
    session: &Session,
    body: &RequestKind,
    version: i16,
) -> Option<ErrorCode> {
    if !enabled(context) {
        return None;
    }
    let group = |api: ApiKey, group: &str| {
        (!allowed(context, session, api, Rt::Group, group))
            .then_some(ErrorCode::GROUP_AUTHORIZATION_FAILED)
    };
    let txn = |api: ApiKey, id: &str| {
        (!allowed(context, session, api, Rt::TransactionalId, id))
            .then_some(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    };
    let cluster = |api: ApiKey| {
        (!cluster_allowed(context, session, api)).then_some(ErrorCode::CLUSTER_AUTHORIZATION_FAILED)
    };
    let topic = |api: ApiKey, name: &str| {
        (!allowed(context, session, api, Rt::Topic, name))
            .then_some(ErrorCode::TOPIC_AUTHORIZATION_FAILED)
    };
    match body {
        RequestKind::JoinGroup(r) => group(ApiKey::JoinGroup, &r.group_id),
        RequestKind::SyncGroup(r) => group(ApiKey::SyncGroup, &r.group_id),
        RequestKind::Heartbeat(r) => group(ApiKey::Heartbeat, &r.group_id),
        RequestKind::LeaveGroup(r) => group(ApiKey::LeaveGroup, &r.group_id),
        // Every subscribed topic needs DESCRIBE, else the heartbeat fails whole, as Kafka's
        // `handleConsumerGroupHeartbeat` (the member must not learn of topics it cannot see).
        RequestKind::ConsumerGroupHeartbeat(r) => {
            group(ApiKey::ConsumerGroupHeartbeat, &r.group_id).or_else(|| {
                r.subscribed_topic_names
                    .iter()
                    .flatten()
                    .find_map(|t| topic(ApiKey::ConsumerGroupHeartbeat, t))
            })
        }
        // As Kafka 4.2's `handleShareGroupHeartbeatRequest`: READ on the group, then DESCRIBE
        // on every subscribed topic, else the whole heartbeat fails.
        RequestKind::ShareGroupHeartbeat(r) => group(ApiKey::ShareGroupHeartbeat, &r.group_id)
            .or_else(|| {
                r.subscribed_topic_names
                    .iter()
                    .flatten()
                    .find_map(|t| topic(ApiKey::ShareGroupHeartbeat, t))
            }),
        // Kafka 4.2's `handleStreamsGroupHeartbeat`: READ on the group, then DESCRIBE on
        // every topic the topology names (source, repartition, changelog).
        RequestKind::StreamsGroupHeartbeat(r) => group(ApiKey::StreamsGroupHeartbeat, &r.group_id)
            .or_else(|| {
                r.topology
                    .iter()
                    .flat_map(|t| t.subtopologies.iter())
                    .find_map(|s| {
                        s.source_topics
                            .iter()
                            .chain(s.repartition_sink_topics.iter())
                            .chain(s.repartition_source_topics.iter().map(|t| &t.name))
                            .chain(s.state_changelog_topics.iter().map(|t| &t.name))
                            .find_map(|t| topic(ApiKey::StreamsGroupHeartbeat, t))
                    })
            }),
        RequestKind::OffsetCommit(r) => group(ApiKey::OffsetCommit, &r.group_id),
        // Share consumers: the group here; READ on each topic per partition in the handlers
        // (`share_fetch.rs`, `share_acknowledge.rs`).
        RequestKind::ShareFetch(r) => r
            .group_id
            .as_ref()
            .and_then(|g| group(ApiKey::ShareFetch, g)),
        RequestKind::ShareAcknowledge(r) => r
            .group_id
            .as_ref()
            .and_then(|g| group(ApiKey::ShareAcknowledge, g)),
        RequestKind::OffsetDelete(r) => group(ApiKey::OffsetDelete, &r.group_id),
        RequestKind::InitializeShareGroupState(_) => cluster(ApiKey::InitializeShareGroupState),
        RequestKind::ReadShareGroupState(_) => cluster(ApiKey::ReadShareGroupState),
        RequestKind::WriteShareGroupState(_) => cluster(ApiKey::WriteShareGroupState),
        RequestKind::DeleteShareGroupState(_) => cluster(ApiKey::DeleteShareGroupState),
        RequestKind::ReadShareGroupStateSummary(_) => cluster(ApiKey::ReadShareGroupStateSummary),
        // Describe names several groups and is not checked yet (seam).
        RequestKind::AlterShareGroupOffsets(r) => {
            group(ApiKey::AlterShareGroupOffsets, &r.group_id)
        }
        RequestKind::DeleteShareGroupOffsets(r) => {
            group(ApiKey::DeleteShareGroupOffsets, &r.group_id)
        }
        // Share-state coordinators (key type 2) are for brokers: CLUSTER_ACTION at any version.
        RequestKind::FindCoordinator(r) if r.key_type == 2 => cluster(ApiKey::FindCoordinator),
        // One key (v0-3); a batched lookup (v4+) is answered key by key
        // (`handlers::authorize_batched`).
        RequestKind::FindCoordinator(r) if version < FIND_COORDINATOR_BATCHED_MIN_VERSION => {
            match r.key_type {
                0 => group(ApiKey::FindCoordinator, &r.key),
                1 => txn(ApiKey::FindCoordinator, &r.key),
                2 => cluster(ApiKey::FindCoordinator),
                _ => None,
            }
        }
        RequestKind::Produce(r) => r
            .transactional_id
            .as_ref()
            .and_then(|id| txn(ApiKey::Produce, id)),
        RequestKind::InitProducerId(r) => match &r.transactional_id {
            Some(id) => txn(ApiKey::InitProducerId, id),
            None => init_producer_id_idempotent(context, session),
        },
        RequestKind::Fetch(r) if r.replica_id.0 >= 0 || r.replica_state.replica_id.0 >= 0 => {
            cluster(ApiKey::Fetch)
        }
        RequestKind::OffsetForLeaderEpoch(r) if r.replica_id.0 >= 0 => {
            cluster(ApiKey::OffsetForLeaderEpoch)
        }
        RequestKind::AlterUserScramCredentials(_) => cluster(ApiKey::AlterUserScramCredentials),
        RequestKind::DescribeUserScramCredentials(_) => {
            cluster(ApiKey::DescribeUserScramCredentials)
        }
        RequestKind::AddRaftVoter(_) => cluster(ApiKey::AddRaftVoter),
        RequestKind::RemoveRaftVoter(_) => cluster(ApiKey::RemoveRaftVoter),
        RequestKind::UpdateRaftVoter(_) => cluster(ApiKey::UpdateRaftVoter),
        // ALTER on the cluster (an operator aborting a hanging transaction, KIP-664, checked
        // quietly) or CLUSTER_ACTION (a transaction coordinator), as Kafka.
        RequestKind::WriteTxnMarkers(_)
            if check(
                context,
                session,
                ApiKey::WriteTxnMarkers,
                Op::Alter,
                Rt::Cluster,
                CLUSTER_NAME,
                false,
            ) =>
        {
            None
        }
        RequestKind::WriteTxnMarkers(_) => cluster(ApiKey::WriteTxnMarkers),
        RequestKind::ListConfigResources(_) => cluster(ApiKey::ListConfigResources),
        // Transactions: WRITE on the transactional id (and READ on the group for offsets),
        // whole. Versions 4+ come only from brokers: CLUSTER_ACTION for the whole request,
        // whether verify-only or not (Kafka's `authorizeClusterOperation`). Versions 0-3
        // come from producers: WRITE on the transactional id here, the topics in
        // `handlers::authorize_batched` (Kafka's per-partition answer).
        RequestKind::AddPartitionsToTxn(_) if version >= ADD_PARTITIONS_BATCHED_MIN_VERSION => {
            cluster(ApiKey::AddPartitionsToTxn)
        }
        RequestKind::AddPartitionsToTxn(r) => {
            txn(ApiKey::AddPartitionsToTxn, &r.v3_and_below_transactional_id)
        }
        RequestKind::AddOffsetsToTxn(r) => txn(ApiKey::AddOffsetsToTxn, &r.transactional_id)
            .or_else(|| group(ApiKey::AddOffsetsToTxn, &r.group_id)),
        RequestKind::EndTxn(r) => txn(ApiKey::EndTxn, &r.transactional_id),
        // Its topics are answered one by one (`handlers::authorize_batched`), as are
        // DescribeTransactions' ids and DescribeProducers' topics.
        RequestKind::TxnOffsetCommit(r) => txn(ApiKey::TxnOffsetCommit, &r.transactional_id)
            .or_else(|| group(ApiKey::TxnOffsetCommit, &r.group_id)),
        _ => None,
    }
}

/// InitProducerId without a transactional id: CLUSTER IDEMPOTENT_WRITE, or WRITE on any
/// topic (KIP-679), else CLUSTER_AUTHORIZATION_FAILED.
fn init_producer_id_idempotent(context: &BrokerContext, session: &Session) -> Option<ErrorCode> {
    if check(
        context,
        session,
        ApiKey::InitProducerId,
        Op::IdempotentWrite,
        Rt::Cluster,
        CLUSTER_NAME,
        false,
    ) || allowed_on_any(context, session, Op::Write, Rt::Topic)
    {
        return None;
    }
    audit_denied(
        session,
        ApiKey::InitProducerId,
        Op::IdempotentWrite,
        Rt::Cluster,
        CLUSTER_NAME,
        &Decision::NoMatchingAcl,
    );
    Some(ErrorCode::CLUSTER_AUTHORIZATION_FAILED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_the_standard_authorizer_is_accepted() {
        assert!(!AuthzConfig::from_props(&props(&[])).unwrap().enabled);
        let on = AuthzConfig::from_props(&props(&[
            ("authorizer.class.name", STANDARD_AUTHORIZER),
            ("super.users", "User:admin; User:ANONYMOUS"),
            ("allow.everyone.if.no.acl.found", "TRUE"),
        ]))
        .unwrap();
        assert!(on.enabled);
        assert_eq!(
            on.settings.super_users,
            vec!["User:admin", "User:ANONYMOUS"]
        );
        assert!(on.settings.allow_everyone_if_no_acl_found);
        let error = AuthzConfig::from_props(&props(&[(
            "authorizer.class.name",
            "kafka.security.authorizer.AclAuthorizer",
        )]))
        .unwrap_err()
        .to_string();
        assert!(error.contains("authorizer.class.name") && error.contains(STANDARD_AUTHORIZER));
        assert!(AuthzConfig::from_props(&props(&[("super.users", "admin")])).is_err());
    }

    #[test]
    fn the_table_has_one_operation_per_api_and_resource_type() {
        for (i, (api, rt, _)) in TABLE.iter().enumerate() {
            assert!(
                !TABLE[..i].iter().any(|(a, r, _)| a == api && r == rt),
                "{api:?} {rt} listed twice"
            );
        }
        assert_eq!(operation(ApiKey::Produce, Rt::Topic), Some(Op::Write));
        assert_eq!(operation(ApiKey::CreateAcls, Rt::Cluster), Some(Op::Alter));
        assert_eq!(operation(ApiKey::ApiVersions, Rt::Cluster), None);
    }

    /// APIs a broker serves without any authorization check, as Kafka: the handshake of a
    /// connection (before a principal exists, or to establish it) and client telemetry
    /// (KIP-714 defines no ACL).
    const UNCHECKED: &[ApiKey] = &[
        ApiKey::ApiVersions,
        ApiKey::SaslHandshake,
        ApiKey::SaslAuthenticate,
        ApiKey::GetTelemetrySubscriptions,
        ApiKey::PushTelemetry,
        // Authorized by token ownership (owner or renewer), not by an ACL.
        ApiKey::RenewDelegationToken,
        ApiKey::ExpireDelegationToken,
    ];

    #[test]
    fn every_served_api_has_a_rule_or_is_unchecked_as_kafka() {
        for api in crate::handlers::SERVED_APIS {
            let rules = TABLE.iter().filter(|(a, _, _)| a == api).count();
            let unchecked = UNCHECKED.contains(api);
            assert!(
                (rules > 0) != unchecked,
                "{api:?}: {rules} authorization rules, unchecked={unchecked}; \
                 a served API needs a row in TABLE or an entry in UNCHECKED, not both"
            );
        }
    }
}
