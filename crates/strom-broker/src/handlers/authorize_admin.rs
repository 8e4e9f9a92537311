//! Authorization around the group, config and cluster handlers (the topic data APIs are in
//! `authorize.rs`). Changes (DeleteGroups, AlterConfigs, OffsetCommit, ElectLeaders,
//! UpdateFeatures) are split before the handler runs, so a denied item is never acted on;
//! descriptions (DescribeGroups, DescribeConfigs, ListGroups, OffsetFetch, DescribeLogDirs,
//! DescribeQuorum, DescribeTopicPartitions, DescribeCluster) run and have their denied
//! items replaced or left out afterwards, as Kafka answers them.

use strom_meta::acl::{ResourceType, CLUSTER_NAME};
use strom_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use strom_protocol::messages::delete_groups_response::DeletableGroupResult;
use strom_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use strom_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use strom_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use strom_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use strom_protocol::messages::{
    AlterConfigsRequest, ApiKey, ConsumerGroupDescribeRequest, DeleteGroupsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest, DescribeLogDirsRequest,
    DescribeQuorumRequest, DescribeTopicPartitionsRequest, ElectLeadersRequest,
    ElectLeadersResponse, IncrementalAlterConfigsRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetFetchRequest, ResponseKind, ShareGroupDescribeRequest, StreamsGroupDescribeRequest,
    UpdateFeaturesRequest, UpdateFeaturesResponse,
};
use strom_protocol::ErrorCode;

use super::authorize::{take_denied, topic_allowed};
use super::str_bytes;
use crate::authz;
use crate::principal::Session;
use crate::server::BrokerContext;

const AUTH_FAILED: &str = "Authorization failed.";
/// Kafka's `authorized_operations` when they were not asked for.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// Kafka's config resource types: TOPIC 2, GROUP 32, and BROKER 4, BROKER_LOGGER 8,
/// CLIENT_METRICS 16 (CLUSTER checks).
fn config_resource_allowed(
    context: &BrokerContext,
    session: &Session,
    api: ApiKey,
    resource_type: i8,
    name: &str,
) -> Result<(), ErrorCode> {
    let (rt, name, error) = match resource_type {
        2 => (
            ResourceType::Topic,
            name,
            ErrorCode::TOPIC_AUTHORIZATION_FAILED,
        ),
        32 => (
            ResourceType::Group,
            name,
            ErrorCode::GROUP_AUTHORIZATION_FAILED,
        ),
        _ => (
            ResourceType::Cluster,
            CLUSTER_NAME,
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
        ),
    };
    if authz::allowed(context, session, api, rt, name) {
        Ok(())
    } else {
        Err(error)
    }
}

/// Splits the config resources of an alteration: those `api` may change, to run, and the
/// answers (`denied`) for the rest, never acted on.
fn split_config_resources<R, D>(
    context: &BrokerContext,
    session: &Session,
    api: ApiKey,
    resources: Vec<R>,
    name: impl Fn(&R) -> (i8, &str),
    denied: impl Fn(&R, ErrorCode) -> D,
) -> (Vec<R>, Vec<D>) {
    let mut refused = Vec::new();
    let mut ok = Vec::new();
    for resource in resources {
        let (resource_type, resource_name) = name(&resource);
        match config_resource_allowed(context, session, api, resource_type, resource_name) {
            Ok(()) => ok.push(resource),
            Err(code) => refused.push(denied(&resource, code)),
        }
    }
    (ok, refused)
}

pub(super) async fn describe_configs(
    context: &BrokerContext,
    session: &Session,
    request: DescribeConfigsRequest,
    version: i16,
) -> ResponseKind {
    let enabled = authz::enabled(context);
    let mut response = super::describe_configs::handle(context, request, version).await;
    if let (true, ResponseKind::DescribeConfigs(described)) = (enabled, &mut response) {
        for result in &mut described.results {
            if let Err(code) = config_resource_allowed(
                context,
                session,
                ApiKey::DescribeConfigs,
                result.resource_type,
                &result.resource_name,
            ) {
                result.error_code = code.code();
                result.error_message = Some(str_bytes(AUTH_FAILED));
                result.configs.clear();
            }
        }
    }
    response
}

pub(super) async fn alter_configs(
    context: &BrokerContext,
    session: &Session,
    mut request: AlterConfigsRequest,
    version: i16,
) -> ResponseKind {
    if !authz::enabled(context) {
        return super::alter_configs::handle_legacy(context, request, version).await;
    }
    let (ok, denied) = split_config_resources(
        context,
        session,
        ApiKey::AlterConfigs,
        std::mem::take(&mut request.resources),
        |r| (r.resource_type, r.resource_name.as_str()),
        |r, code| {
            AlterConfigsResourceResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(AUTH_FAILED)))
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
        },
    );
    request.resources = ok;
    let mut response = super::alter_configs::handle_legacy(context, request, version).await;
    if let ResponseKind::AlterConfigs(altered) = &mut response {
        altered.responses.extend(denied);
    }
    response
}

pub(super) async fn incremental_alter_configs(
    context: &BrokerContext,
    session: &Session,
    mut request: IncrementalAlterConfigsRequest,
    version: i16,
) -> ResponseKind {
    if !authz::enabled(context) {
        return super::alter_configs::handle_incremental(context, request, version).await;
    }
    let (ok, denied) = split_config_resources(
        context,
        session,
        ApiKey::IncrementalAlterConfigs,
        std::mem::take(&mut request.resources),
        |r| (r.resource_type, r.resource_name.as_str()),
        |r, code| {
            IncrementalResult::default()
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(AUTH_FAILED)))
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
        },
    );
    request.resources = ok;
    let mut response = super::alter_configs::handle_incremental(context, request, version).await;
    if let ResponseKind::IncrementalAlterConfigs(altered) = &mut response {
        altered.responses.extend(denied);
    }
    response
}

/// A group in a DescribeGroups, ConsumerGroupDescribe or ShareGroupDescribe response: what
/// the per-group DESCRIBE check reads and replaces.
trait DescribedGroup {
    fn group_id(&self) -> &str;
    fn set_authorized_operations(&mut self, operations: i32);
    /// The group's entry when DESCRIBE is denied: only its id and the error.
    fn denied(group_id: &str) -> Self;
}

impl DescribedGroup for strom_protocol::messages::describe_groups_response::DescribedGroup {
    fn group_id(&self) -> &str {
        &self.group_id
    }
    fn set_authorized_operations(&mut self, operations: i32) {
        self.authorized_operations = operations;
    }
    fn denied(group_id: &str) -> Self {
        Self::default()
            .with_group_id(strom_protocol::messages::GroupId(str_bytes(group_id)))
            .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.code())
            .with_authorized_operations(OPERATIONS_NOT_REQUESTED)
    }
}

impl DescribedGroup for strom_protocol::messages::consumer_group_describe_response::DescribedGroup {
    fn group_id(&self) -> &str {
        &self.group_id
    }
    fn set_authorized_operations(&mut self, operations: i32) {
        self.authorized_operations = operations;
    }
    fn denied(group_id: &str) -> Self {
        Self::default()
            .with_group_id(strom_protocol::messages::GroupId(str_bytes(group_id)))
            .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.code())
            .with_error_message(Some(str_bytes(AUTH_FAILED)))
            .with_authorized_operations(OPERATIONS_NOT_REQUESTED)
    }
}

impl DescribedGroup for strom_protocol::messages::streams_group_describe_response::DescribedGroup {
    fn group_id(&self) -> &str {
        &self.group_id
    }
    fn set_authorized_operations(&mut self, operations: i32) {
        self.authorized_operations = operations;
    }
    fn denied(group_id: &str) -> Self {
        Self::default()
            .with_group_id(strom_protocol::messages::GroupId(str_bytes(group_id)))
            .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.code())
            .with_error_message(Some(str_bytes(AUTH_FAILED)))
            .with_authorized_operations(OPERATIONS_NOT_REQUESTED)
    }
}

impl DescribedGroup for strom_protocol::messages::share_group_describe_response::DescribedGroup {
    fn group_id(&self) -> &str {
        &self.group_id
    }
    fn set_authorized_operations(&mut self, operations: i32) {
        self.authorized_operations = operations;
    }
    fn denied(group_id: &str) -> Self {
        Self::default()
            .with_group_id(strom_protocol::messages::GroupId(str_bytes(group_id)))
            .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.code())
            .with_error_message(Some(str_bytes(AUTH_FAILED)))
            .with_authorized_operations(OPERATIONS_NOT_REQUESTED)
    }
}

/// GROUP DESCRIBE per described group: a denied group is replaced by its error; an allowed
/// one gets its authorized operations when they were asked for (`include_operations`).
fn check_described_groups<G: DescribedGroup>(
    context: &BrokerContext,
    session: &Session,
    api: ApiKey,
    include_operations: bool,
    groups: &mut [G],
) {
    for group in groups {
        let id = group.group_id().to_string();
        if !authz::allowed(context, session, api, ResourceType::Group, &id) {
            *group = G::denied(&id);
        } else if include_operations {
            group.set_authorized_operations(authz::authorized_operations(
                context,
                session,
                ResourceType::Group,
                &id,
            ));
        }
    }
}

pub(super) async fn describe_groups(
    context: &BrokerContext,
    session: &Session,
    request: DescribeGroupsRequest,
    version: i16,
) -> ResponseKind {
    let ops = request.include_authorized_operations;
    let mut response = super::describe_groups::handle(context, request, version).await;
    if let (true, ResponseKind::DescribeGroups(described)) =
        (authz::enabled(context), &mut response)
    {
        check_described_groups(
            context,
            session,
            ApiKey::DescribeGroups,
            ops,
            &mut described.groups,
        );
    }
    response
}

pub(super) async fn consumer_group_describe(
    context: &BrokerContext,
    session: &Session,
    request: ConsumerGroupDescribeRequest,
    version: i16,
) -> ResponseKind {
    let ops = request.include_authorized_operations;
    let mut response = super::consumer_group_describe::handle(context, request, version).await;
    if let (true, ResponseKind::ConsumerGroupDescribe(described)) =
        (authz::enabled(context), &mut response)
    {
        check_described_groups(
            context,
            session,
            ApiKey::ConsumerGroupDescribe,
            ops,
            &mut described.groups,
        );
    }
    response
}

/// StreamsGroupDescribe: as ConsumerGroupDescribe, GROUP DESCRIBE per group.
pub(super) async fn streams_group_describe(
    context: &BrokerContext,
    session: &Session,
    request: StreamsGroupDescribeRequest,
) -> ResponseKind {
    let ops = request.include_authorized_operations;
    let mut response = super::streams_group_describe::handle(context, request).await;
    if let (true, ResponseKind::StreamsGroupDescribe(described)) =
        (authz::enabled(context), &mut response)
    {
        check_described_groups(
            context,
            session,
            ApiKey::StreamsGroupDescribe,
            ops,
            &mut described.groups,
        );
    }
    response
}

/// ShareGroupDescribe: as ConsumerGroupDescribe, GROUP DESCRIBE per group.
pub(super) async fn share_group_describe(
    context: &BrokerContext,
    session: &Session,
    request: ShareGroupDescribeRequest,
) -> ResponseKind {
    let ops = request.include_authorized_operations;
    let mut response = super::share_group_describe::handle(context, request).await;
    if let (true, ResponseKind::ShareGroupDescribe(described)) =
        (authz::enabled(context), &mut response)
    {
        check_described_groups(
            context,
            session,
            ApiKey::ShareGroupDescribe,
            ops,
            &mut described.groups,
        );
    }
    response
}

/// ListGroups lists every group to a principal with CLUSTER DESCRIBE, else only the groups
/// it may DESCRIBE (quietly: a listing is a filter).
pub(super) async fn list_groups(
    context: &BrokerContext,
    session: &Session,
    request: ListGroupsRequest,
    version: i16,
) -> ResponseKind {
    let mut response = super::list_groups::handle(context, request, version).await;
    if !authz::enabled(context)
        || authz::visible(
            context,
            session,
            ApiKey::ListGroups,
            ResourceType::Cluster,
            CLUSTER_NAME,
        )
    {
        return response;
    }
    if let ResponseKind::ListGroups(listed) = &mut response {
        listed.groups.retain(|g| {
            authz::visible(
                context,
                session,
                ApiKey::ListGroups,
                ResourceType::Group,
                &g.group_id,
            )
        });
    }
    response
}

pub(super) async fn delete_groups(
    context: &BrokerContext,
    session: &Session,
    mut request: DeleteGroupsRequest,
    version: i16,
) -> ResponseKind {
    if !authz::enabled(context) {
        return super::delete_groups::handle(context, request, version).await;
    }
    let denied = take_denied(&mut request.groups_names, |g| {
        authz::allowed(
            context,
            session,
            ApiKey::DeleteGroups,
            ResourceType::Group,
            g,
        )
    });
    let mut response = super::delete_groups::handle(context, request, version).await;
    if let ResponseKind::DeleteGroups(deleted) = &mut response {
        deleted.results.extend(denied.into_iter().map(|g| {
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.code())
        }));
    }
    response
}

/// OffsetCommit: the group was checked for READ before (`authz::precheck`); topics the
/// principal may not READ are answered TOPIC_AUTHORIZATION_FAILED and not committed.
pub(super) async fn offset_commit(
    context: &BrokerContext,
    session: &Session,
    mut request: OffsetCommitRequest,
    version: i16,
) -> ResponseKind {
    if !authz::enabled(context) {
        return super::offset_commit::handle(context, request, version).await;
    }
    let image = context.metadata.image();
    let denied = take_denied(&mut request.topics, |t| {
        let name = if t.name.is_empty() {
            image.topic_by_id(t.topic_id).map(|t| t.name.clone())
        } else {
            Some(t.name.to_string())
        };
        name.is_none_or(|name| topic_allowed(context, session, ApiKey::OffsetCommit, &name))
    });
    let mut response = super::offset_commit::handle(context, request, version).await;
    if let ResponseKind::OffsetCommit(committed) = &mut response {
        committed.topics.extend(denied.into_iter().map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_topic_id(t.topic_id)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.code())
                        })
                        .collect(),
                )
        }));
    }
    response
}

/// OffsetFetch: each group needs DESCRIBE (GROUP_AUTHORIZATION_FAILED otherwise, the group's
/// offsets unread); offsets of topics the principal may not DESCRIBE are left out.
pub(super) async fn offset_fetch(
    context: &BrokerContext,
    session: &Session,
    mut request: OffsetFetchRequest,
    version: i16,
) -> ResponseKind {
    if !authz::enabled(context) {
        return super::offset_fetch::handle(context, request, version).await;
    }
    let group_ok = |g: &str| {
        authz::allowed(
            context,
            session,
            ApiKey::OffsetFetch,
            ResourceType::Group,
            g,
        )
    };
    let single = request.groups.is_empty();
    if single && !group_ok(&request.group_id) {
        let mut response = strom_protocol::messages::OffsetFetchResponse::default();
        response.error_code = ErrorCode::GROUP_AUTHORIZATION_FAILED.code();
        return ResponseKind::OffsetFetch(response);
    }
    let denied = take_denied(&mut request.groups, |g| group_ok(&g.group_id));
    let mut response = super::offset_fetch::handle(context, request, version).await;
    if let ResponseKind::OffsetFetch(fetched) = &mut response {
        let topic_visible = |name: &str| {
            authz::visible(
                context,
                session,
                ApiKey::OffsetFetch,
                ResourceType::Topic,
                name,
            )
        };
        fetched.topics.retain(|t| topic_visible(&t.name));
        for group in &mut fetched.groups {
            group.topics.retain(|t| topic_visible(&t.name));
        }
        fetched.groups.extend(denied.into_iter().map(|g| {
            OffsetFetchResponseGroup::default()
                .with_group_id(g.group_id)
                .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.code())
        }));
    }
    response
}

pub(super) async fn describe_log_dirs(
    context: &BrokerContext,
    session: &Session,
    request: DescribeLogDirsRequest,
    version: i16,
) -> ResponseKind {
    if !authz::cluster_allowed(context, session, ApiKey::DescribeLogDirs) {
        let mut response = strom_protocol::messages::DescribeLogDirsResponse::default();
        response.error_code = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code();
        return ResponseKind::DescribeLogDirs(response);
    }
    super::describe_log_dirs::handle(context, request, version).await
}

/// AlterReplicaLogDirs needs ALTER on the cluster (Kafka's rule); denied, every partition
/// is answered CLUSTER_AUTHORIZATION_FAILED and nothing moves.
pub(super) async fn alter_replica_log_dirs(
    context: &BrokerContext,
    session: &Session,
    request: strom_protocol::messages::AlterReplicaLogDirsRequest,
    version: i16,
) -> ResponseKind {
    if !authz::cluster_allowed(context, session, ApiKey::AlterReplicaLogDirs) {
        let mut answers: std::collections::BTreeMap<String, Vec<(i32, ErrorCode)>> =
            std::collections::BTreeMap::new();
        for topic in request.dirs.iter().flat_map(|d| d.topics.iter()) {
            answers.entry(topic.name.0.to_string()).or_default().extend(
                topic
                    .partitions
                    .iter()
                    .map(|p| (*p, ErrorCode::CLUSTER_AUTHORIZATION_FAILED)),
            );
        }
        return ResponseKind::AlterReplicaLogDirs(super::alter_replica_log_dirs::respond(answers));
    }
    super::alter_replica_log_dirs::handle(context, request, version).await
}

pub(super) async fn describe_quorum(
    context: &BrokerContext,
    session: &Session,
    request: DescribeQuorumRequest,
) -> ResponseKind {
    if !authz::cluster_allowed(context, session, ApiKey::DescribeQuorum) {
        let mut response = strom_protocol::messages::DescribeQuorumResponse::default();
        response.error_code = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code();
        response.error_message = Some(str_bytes(AUTH_FAILED));
        return ResponseKind::DescribeQuorum(response);
    }
    super::describe_quorum::handle(context, request).await
}

pub(super) async fn update_features(
    context: &BrokerContext,
    session: &Session,
    request: UpdateFeaturesRequest,
    version: i16,
) -> ResponseKind {
    if !authz::cluster_allowed(context, session, ApiKey::UpdateFeatures) {
        let results = request
            .feature_updates
            .iter()
            .map(|u| {
                strom_protocol::messages::update_features_response::UpdatableFeatureResult::default(
                )
                .with_feature(u.feature.clone())
                .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code())
                .with_error_message(Some(str_bytes(AUTH_FAILED)))
            })
            .collect();
        return ResponseKind::UpdateFeatures(
            UpdateFeaturesResponse::default()
                .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code())
                .with_error_message(Some(str_bytes(AUTH_FAILED)))
                .with_results(results),
        );
    }
    super::update_features::handle(context, request, version).await
}

pub(super) async fn elect_leaders(
    context: &BrokerContext,
    session: &Session,
    request: ElectLeadersRequest,
    version: i16,
) -> ResponseKind {
    if !authz::cluster_allowed(context, session, ApiKey::ElectLeaders) {
        let code = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code();
        let results = request
            .topic_partitions
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                ReplicaElectionResult::default()
                    .with_topic(t.topic)
                    .with_partition_result(
                        t.partitions
                            .iter()
                            .map(|p| {
                                PartitionResult::default()
                                    .with_partition_id(*p)
                                    .with_error_code(code)
                                    .with_error_message(Some(str_bytes(AUTH_FAILED)))
                            })
                            .collect(),
                    )
            })
            .collect();
        return ResponseKind::ElectLeaders(
            ElectLeadersResponse::default()
                .with_error_code(code)
                .with_replica_election_results(results),
        );
    }
    super::elect_leaders::handle(context, request, version).await
}

pub(super) async fn describe_topic_partitions(
    context: &BrokerContext,
    session: &Session,
    request: DescribeTopicPartitionsRequest,
    version: i16,
) -> ResponseKind {
    let all_topics = request.topics.is_empty();
    let mut response = super::describe_topic_partitions::handle(context, request, version).await;
    if !authz::enabled(context) {
        return response;
    }
    if let ResponseKind::DescribeTopicPartitions(described) = &mut response {
        let mut kept = Vec::with_capacity(described.topics.len());
        for mut topic in std::mem::take(&mut described.topics) {
            let name = topic
                .name
                .as_ref()
                .map(|n| n.to_string())
                .unwrap_or_default();
            let ok = if all_topics {
                authz::visible(
                    context,
                    session,
                    ApiKey::DescribeTopicPartitions,
                    ResourceType::Topic,
                    &name,
                )
            } else {
                authz::allowed(
                    context,
                    session,
                    ApiKey::DescribeTopicPartitions,
                    ResourceType::Topic,
                    &name,
                )
            };
            if ok {
                kept.push(topic);
            } else if !all_topics {
                topic.error_code = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
                topic.partitions.clear();
                topic.topic_id = uuid::Uuid::nil();
                kept.push(topic);
            }
        }
        described.topics = kept;
    }
    response
}

pub(super) async fn describe_cluster(
    context: &BrokerContext,
    session: &Session,
    request: DescribeClusterRequest,
    version: i16,
) -> ResponseKind {
    let ops = request.include_cluster_authorized_operations;
    let mut response = super::describe_cluster::handle(context, request, version).await;
    if let (true, true, ResponseKind::DescribeCluster(described)) =
        (authz::enabled(context), ops, &mut response)
    {
        described.cluster_authorized_operations = if authz::visible(
            context,
            session,
            ApiKey::DescribeCluster,
            ResourceType::Cluster,
            CLUSTER_NAME,
        ) {
            authz::authorized_operations(context, session, ResourceType::Cluster, CLUSTER_NAME)
        } else {
            0
        };
    }
    response
}
