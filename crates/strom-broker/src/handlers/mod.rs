//! Request handlers, one module per API. This module only routes a decoded request to its
//! handler and holds the small conversions they share; it knows no API's semantics.

mod acls;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
mod alter_replica_log_dirs;
mod api_versions;
mod authorize;
mod authorize_admin;
mod authorize_batched;
mod client_quotas;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_partitions;
mod create_topics;
mod delegation_tokens;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_quorum;
mod describe_topic_partitions;
mod describe_transactions;
mod elect_leaders;
mod end_txn;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_config_resources;
mod list_groups;
mod list_offsets;
mod list_transactions;
mod liveness;
mod metadata;
mod mutation_quota;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod raft_voters;
mod reassignments;
mod scram_credentials;
mod share_acknowledge;
mod share_fetch;
mod share_group_describe;
mod share_group_heartbeat;
mod share_group_offsets;
mod share_group_state;
mod streams_group_describe;
mod streams_group_heartbeat;
mod sync_group;
mod telemetry;
mod txn_offset_commit;
mod update_features;
pub(crate) use update_features::finalized_features;
mod write_txn_markers;

use std::future::Future;

use strom_meta::{ApiError, MetadataImage, TopicIdPartition};
use strom_protocol::messages::{ApiKey, BrokerId, RequestKind, ResponseKind, TopicName};
use strom_protocol::{error_response, ErrorCode, Incoming, StrBytes};

use crate::metadata::MetadataError;
use crate::principal::Session;
use crate::quotas::QuotaKind;
use crate::server::BrokerContext;

/// Every API the broker serves (ApiVersions is always added by the version table).
pub const SERVED_APIS: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::InitProducerId,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::CreatePartitions,
    ApiKey::DeleteRecords,
    ApiKey::DescribeCluster,
    ApiKey::DescribeLogDirs,
    ApiKey::AlterReplicaLogDirs,
    ApiKey::DescribeTopicPartitions,
    ApiKey::ElectLeaders,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::ListGroups,
    ApiKey::DescribeGroups,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
    ApiKey::ConsumerGroupHeartbeat,
    ApiKey::ConsumerGroupDescribe,
    ApiKey::DescribeAcls,
    ApiKey::CreateAcls,
    ApiKey::DeleteAcls,
    ApiKey::DescribeQuorum,
    ApiKey::UpdateFeatures,
    ApiKey::WriteTxnMarkers,
    ApiKey::DescribeProducers,
    ApiKey::AlterClientQuotas,
    ApiKey::DescribeClientQuotas,
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
    ApiKey::DescribeUserScramCredentials,
    ApiKey::AlterUserScramCredentials,
    ApiKey::AddRaftVoter,
    ApiKey::RemoveRaftVoter,
    ApiKey::UpdateRaftVoter,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::EndTxn,
    ApiKey::TxnOffsetCommit,
    ApiKey::DescribeTransactions,
    ApiKey::ListTransactions,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
    ApiKey::GetTelemetrySubscriptions,
    ApiKey::PushTelemetry,
    ApiKey::ListConfigResources,
    ApiKey::ShareGroupHeartbeat,
    ApiKey::ShareGroupDescribe,
    ApiKey::StreamsGroupHeartbeat,
    ApiKey::StreamsGroupDescribe,
    ApiKey::ShareFetch,
    ApiKey::ShareAcknowledge,
    ApiKey::DescribeShareGroupOffsets,
    ApiKey::AlterShareGroupOffsets,
    ApiKey::DeleteShareGroupOffsets,
    ApiKey::InitializeShareGroupState,
    ApiKey::ReadShareGroupState,
    ApiKey::WriteShareGroupState,
    ApiKey::DeleteShareGroupState,
    ApiKey::ReadShareGroupStateSummary,
    ApiKey::CreateDelegationToken,
    ApiKey::RenewDelegationToken,
    ApiKey::ExpireDelegationToken,
    ApiKey::DescribeDelegationToken,
];

/// What the connection does after a request.
#[derive(Debug)]
pub enum Reply {
    /// Send this response.
    Respond(Box<ResponseKind>),
    /// Send this response with records spliced in from segment files (Fetch).
    RespondWithFiles(Box<ResponseKind>, Vec<crate::sendfile::FileRecords>),
    /// Send nothing (Produce with `acks=0` that succeeded).
    Silent,
    /// Close the connection: an `acks=0` Produce failed, and closing is the only way Kafka
    /// tells such a producer (it then refreshes its metadata), or no response shape exists.
    Close,
}

/// Handles one request from the connection whose identity is `session` (its principal,
/// address and listener), and counts the time its handler ran against the client's
/// `request_percentage` (`quotas.rs`): the time spent inside the handler future's polls,
/// Kafka's request-handler thread time, not the time it waited on the controller or a
/// replica. Follower fetches are exempt, as Kafka exempts inter-broker requests.
pub async fn handle(context: &BrokerContext, incoming: Incoming, session: &Session) -> Reply {
    let quota_client = match &incoming {
        Incoming::Request(request) => match &request.body {
            RequestKind::Fetch(fetch)
                if fetch.replica_id.0 >= 0 || fetch.replica_state.replica_id.0 >= 0 =>
            {
                None
            }
            // A shared handle on the request's bytes, not a copy: no allocation per request.
            _ => Some(request.header.client_id.clone().unwrap_or_default()),
        },
        Incoming::UnsupportedApiVersions { .. } => None,
    };
    let mut inner = std::pin::pin!(handle_request(context, incoming, session));
    let mut busy = std::time::Duration::ZERO;
    let mut reply = std::future::poll_fn(|cx| {
        let polled = std::time::Instant::now();
        let result = inner.as_mut().poll(cx);
        busy += polled.elapsed();
        result
    })
    .await;
    if let Some(client_id) = quota_client {
        let throttle_ms = context.quotas.record_request_time(
            &context.metadata.image(),
            &session.principal.name,
            client_id.as_str(),
            busy,
        );
        if throttle_ms > 0 {
            if let Reply::Respond(body) | Reply::RespondWithFiles(body, _) = &mut reply {
                crate::quotas::set_throttle(body, i32::try_from(throttle_ms).unwrap_or(i32::MAX));
            }
        }
    }
    reply
}

async fn handle_request(context: &BrokerContext, incoming: Incoming, session: &Session) -> Reply {
    let peer = session.client_address;
    let request = match incoming {
        Incoming::UnsupportedApiVersions { .. } => {
            return Reply::Respond(Box::new(ResponseKind::ApiVersions(
                strom_protocol::api_versions::unsupported_version_response(&context.api_versions),
            )))
        }
        Incoming::Request(request) => request,
    };
    let version = request.api_version();
    // Kafka prefixes generated member ids with the client id (a cheap reference-count clone).
    let client_id = request.header.client_id.clone();
    let expects_response = request.expects_response();
    // Whole-request checks (one group, one transactional id, the cluster): a denied
    // request is answered with Kafka's error on every item, or closed if it expects none.
    if let Some(code) = crate::authz::precheck(context, session, &request.body, version) {
        return match error_response(&request.body, version, code, &context.api_versions) {
            Some(response) if expects_response => Reply::Respond(Box::new(response)),
            _ => Reply::Close,
        };
    }
    let mut response = match request.body {
        RequestKind::ApiVersions(body) => api_versions::handle(context, &body, version),
        RequestKind::Metadata(body) => authorize::metadata(context, session, body, version).await,
        RequestKind::CreateTopics(body) => {
            let client = client_id.as_deref().unwrap_or("");
            mutation_quota::create_topics(context, session, client, body, version).await
        }
        RequestKind::DeleteTopics(body) => {
            let client = client_id.as_deref().unwrap_or("");
            mutation_quota::delete_topics(context, session, client, body, version).await
        }
        RequestKind::Produce(body) => {
            let bytes = crate::quotas::produce_bytes(&body);
            let mut response = authorize::produce(context, session, body, version).await;
            throttle(
                context,
                session,
                &client_id,
                QuotaKind::Produce,
                bytes,
                &mut response,
            );
            response
        }
        RequestKind::Fetch(body) => {
            let follower = body.replica_id.0 >= 0 || body.replica_state.replica_id.0 >= 0;
            let (mut response, files) = authorize::fetch(context, session, body, version).await;
            if !follower {
                let bytes = crate::quotas::fetch_bytes(&response, &files);
                throttle(
                    context,
                    session,
                    &client_id,
                    QuotaKind::Fetch,
                    bytes,
                    &mut response,
                );
            }
            if !files.is_empty() {
                return Reply::RespondWithFiles(Box::new(response), files);
            }
            response
        }
        RequestKind::ListOffsets(body) => {
            authorize::list_offsets(context, session, body, version).await
        }
        RequestKind::InitProducerId(body) => init_producer_id::handle(context, body, version).await,
        RequestKind::OffsetForLeaderEpoch(body) => {
            offset_for_leader_epoch::handle(context, body, version).await
        }
        RequestKind::DescribeConfigs(body) => {
            authorize_admin::describe_configs(context, session, body, version).await
        }
        RequestKind::AlterConfigs(body) => {
            authorize_admin::alter_configs(context, session, body, version).await
        }
        RequestKind::IncrementalAlterConfigs(body) => {
            authorize_admin::incremental_alter_configs(context, session, body, version).await
        }
        RequestKind::CreatePartitions(body) => {
            let client = client_id.as_deref().unwrap_or("");
            mutation_quota::create_partitions(context, session, client, body, version).await
        }
        RequestKind::DeleteRecords(body) => {
            authorize::delete_records(context, session, body, version).await
        }
        RequestKind::DescribeCluster(body) => {
            authorize_admin::describe_cluster(context, session, body, version).await
        }
        RequestKind::DescribeLogDirs(body) => {
            authorize_admin::describe_log_dirs(context, session, body, version).await
        }
        RequestKind::AlterReplicaLogDirs(body) => {
            authorize_admin::alter_replica_log_dirs(context, session, body, version).await
        }
        RequestKind::DescribeTopicPartitions(body) => {
            authorize_admin::describe_topic_partitions(context, session, body, version).await
        }
        RequestKind::ElectLeaders(body) => {
            authorize_admin::elect_leaders(context, session, body, version).await
        }
        RequestKind::FindCoordinator(body) => {
            authorize_batched::find_coordinator(context, session, body, version).await
        }
        RequestKind::JoinGroup(body) => {
            join_group::handle(context, body, version, client_id, peer).await
        }
        RequestKind::SyncGroup(body) => sync_group::handle(context, body, version).await,
        RequestKind::ConsumerGroupHeartbeat(body) => {
            consumer_group_heartbeat::handle(context, body, version, client_id, peer).await
        }
        RequestKind::ConsumerGroupDescribe(body) => {
            authorize_admin::consumer_group_describe(context, session, body, version).await
        }
        RequestKind::ShareGroupHeartbeat(body) => {
            share_group_heartbeat::handle(context, body, client_id, peer).await
        }
        RequestKind::StreamsGroupHeartbeat(body) => {
            streams_group_heartbeat::handle(context, session, body, client_id, peer).await
        }
        RequestKind::StreamsGroupDescribe(body) => {
            authorize_admin::streams_group_describe(context, session, body).await
        }
        RequestKind::ShareGroupDescribe(body) => {
            authorize_admin::share_group_describe(context, session, body).await
        }
        RequestKind::Heartbeat(body) => heartbeat::handle(context, body, version).await,
        RequestKind::LeaveGroup(body) => leave_group::handle(context, body, version).await,
        RequestKind::OffsetCommit(body) => {
            authorize_admin::offset_commit(context, session, body, version).await
        }
        RequestKind::OffsetFetch(body) => {
            authorize_admin::offset_fetch(context, session, body, version).await
        }
        RequestKind::ListGroups(body) => {
            authorize_admin::list_groups(context, session, body, version).await
        }
        RequestKind::DescribeGroups(body) => {
            authorize_admin::describe_groups(context, session, body, version).await
        }
        RequestKind::DeleteGroups(body) => {
            authorize_admin::delete_groups(context, session, body, version).await
        }
        RequestKind::OffsetDelete(body) => {
            authorize_batched::offset_delete(context, session, body, version).await
        }
        RequestKind::AlterClientQuotas(body) => client_quotas::alter(context, session, body).await,
        RequestKind::DescribeClientQuotas(body) => client_quotas::describe(context, session, body),
        RequestKind::DescribeAcls(body) => acls::describe(context, session, body),
        RequestKind::CreateAcls(body) => acls::create(context, session, body).await,
        RequestKind::DeleteAcls(body) => acls::delete(context, session, body).await,
        RequestKind::DescribeQuorum(body) => {
            authorize_admin::describe_quorum(context, session, body).await
        }
        RequestKind::UpdateFeatures(body) => {
            authorize_admin::update_features(context, session, body, version).await
        }
        RequestKind::WriteTxnMarkers(body) => write_txn_markers::handle(context, body).await,
        RequestKind::DescribeProducers(body) => {
            authorize_batched::describe_producers(context, session, body).await
        }
        RequestKind::DescribeUserScramCredentials(body) => {
            scram_credentials::describe(context, body)
        }
        RequestKind::AlterUserScramCredentials(body) => {
            scram_credentials::alter(context, body).await
        }
        // SASL listeners answer these in the connection (`authn.rs`); elsewhere Kafka answers
        // ILLEGAL_SASL_STATE (a handshake on a listener without SASL).
        other @ (RequestKind::SaslHandshake(_) | RequestKind::SaslAuthenticate(_)) => {
            match error_response(
                &other,
                version,
                ErrorCode::ILLEGAL_SASL_STATE,
                &context.api_versions,
            ) {
                Some(response) => response,
                None => return Reply::Close,
            }
        }
        RequestKind::AddRaftVoter(body) => raft_voters::add(context, body).await,
        RequestKind::RemoveRaftVoter(body) => raft_voters::remove(context, body).await,
        RequestKind::UpdateRaftVoter(body) => raft_voters::update(context, body).await,
        RequestKind::AddPartitionsToTxn(body) => {
            authorize_batched::add_partitions_to_txn(context, session, body, version).await
        }
        RequestKind::AddOffsetsToTxn(body) => {
            add_offsets_to_txn::handle(context, body, version).await
        }
        RequestKind::EndTxn(body) => end_txn::handle(context, body, version).await,
        RequestKind::TxnOffsetCommit(body) => {
            authorize_batched::txn_offset_commit(context, session, body, version).await
        }
        RequestKind::DescribeTransactions(body) => {
            authorize_batched::describe_transactions(context, session, body).await
        }
        RequestKind::CreateDelegationToken(body) => {
            delegation_tokens::create(context, session, body).await
        }
        RequestKind::RenewDelegationToken(body) => {
            delegation_tokens::renew(context, session, body).await
        }
        RequestKind::ExpireDelegationToken(body) => {
            delegation_tokens::expire(context, session, body).await
        }
        RequestKind::DescribeDelegationToken(body) => {
            delegation_tokens::describe(context, session, body)
        }
        RequestKind::ListTransactions(body) => {
            authorize_batched::list_transactions(context, session, body).await
        }
        RequestKind::AlterPartitionReassignments(body) => {
            reassignments::alter(context, body, version).await
        }
        RequestKind::ListPartitionReassignments(body) => reassignments::list(context, body).await,
        RequestKind::GetTelemetrySubscriptions(body) => {
            telemetry::get_subscriptions(context, body, client_id, peer)
        }
        RequestKind::PushTelemetry(body) => telemetry::push(context, body, client_id, peer),
        RequestKind::ListConfigResources(body) => {
            list_config_resources::handle(context, body, version)
        }
        RequestKind::ShareFetch(body) => share_fetch::handle(context, session, body, version).await,
        RequestKind::ShareAcknowledge(body) => {
            share_acknowledge::handle(context, session, body, version).await
        }
        RequestKind::DescribeShareGroupOffsets(body) => {
            share_group_offsets::describe(context, body).await
        }
        RequestKind::AlterShareGroupOffsets(body) => {
            share_group_offsets::alter(context, body).await
        }
        RequestKind::DeleteShareGroupOffsets(body) => {
            share_group_offsets::delete(context, body).await
        }
        RequestKind::InitializeShareGroupState(body) => {
            share_group_state::initialize(context, body).await
        }
        RequestKind::ReadShareGroupState(body) => share_group_state::read(context, body).await,
        RequestKind::WriteShareGroupState(body) => share_group_state::write(context, body).await,
        RequestKind::DeleteShareGroupState(body) => share_group_state::delete(context, body).await,
        RequestKind::ReadShareGroupStateSummary(body) => {
            share_group_state::summary(context, body).await
        }
        // The version table decodes only served APIs; this is a safety net, never a crash.
        other => match error_response(
            &other,
            version,
            ErrorCode::UNSUPPORTED_VERSION,
            &context.api_versions,
        ) {
            Some(response) => response,
            None => return Reply::Close,
        },
    };
    // Kafka leaves `error_message` null whenever the error code is NONE; clients assert it.
    strom_protocol::clear_success_messages(&mut response);
    if expects_response {
        Reply::Respond(Box::new(response))
    } else if produce_failed(&response) {
        Reply::Close
    } else {
        Reply::Silent
    }
}

/// Counts `bytes` against the client's byte-rate quota and puts the throttle time, if any,
/// in the response (the connection then holds the client back for that long).
fn throttle(
    context: &BrokerContext,
    session: &Session,
    client_id: &Option<StrBytes>,
    kind: QuotaKind,
    bytes: usize,
    response: &mut ResponseKind,
) {
    let throttle_ms = context.quotas.record(
        &context.metadata.image(),
        kind,
        &session.principal.name,
        client_id.as_deref().unwrap_or(""),
        bytes,
    );
    if throttle_ms > 0 {
        crate::quotas::set_throttle(response, i32::try_from(throttle_ms).unwrap_or(i32::MAX));
    }
}

fn produce_failed(response: &ResponseKind) -> bool {
    match response {
        ResponseKind::Produce(produce) => produce
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .any(|p| p.error_code != 0),
        _ => false,
    }
}

/// Sends a group command to the coordinator task that owns `group_id`'s partition. The
/// connection awaits the answer (a JoinGroup may wait for the whole rebalance); other
/// connections are served meanwhile. A group whose partition this broker does not lead
/// (or that has no `__consumer_offsets` yet) is NOT_COORDINATOR, as in Kafka, so the
/// client looks the coordinator up again; a stopped task is COORDINATOR_NOT_AVAILABLE.
async fn group_call(
    context: &BrokerContext,
    group_id: &str,
    command: strom_group::Command,
) -> Result<strom_group::Response, strom_group::ErrorCode> {
    let image = context.metadata.image();
    if image.topic_by_name(crate::groups::OFFSETS_TOPIC).is_none() {
        return Err(strom_group::ErrorCode::NotCoordinator);
    }
    let partition = crate::groups::partition_for(&image, group_id);
    context
        .groups
        .call(partition, command)
        .await
        .ok_or(strom_group::ErrorCode::CoordinatorNotAvailable)
}

/// Sends a share group command to the coordinator task that owns `group_id`'s partition
/// (share groups live in `__consumer_offsets` beside the consumer groups); errors as
/// [`group_call`].
async fn share_call(
    context: &BrokerContext,
    group_id: &str,
    command: strom_share::group::ShareCommand,
) -> Result<strom_share::group::ShareResponse, strom_group::ErrorCode> {
    let image = context.metadata.image();
    if image.topic_by_name(crate::groups::OFFSETS_TOPIC).is_none() {
        return Err(strom_group::ErrorCode::NotCoordinator);
    }
    let partition = crate::groups::partition_for(&image, group_id);
    context
        .groups
        .call_share(partition, command)
        .await
        .ok_or(strom_group::ErrorCode::CoordinatorNotAvailable)
}

/// The cluster's topics as the share group coordinator's commands take them.
pub(crate) fn share_topics(
    context: &BrokerContext,
) -> std::sync::Arc<strom_group::consumer::Topics> {
    consumer_group_heartbeat::topics(&context.metadata.image())
}

fn opt_string(text: Option<StrBytes>) -> Option<String> {
    text.map(|t| t.to_string())
}

fn str_bytes(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

fn topic_name(text: impl Into<String>) -> TopicName {
    TopicName(str_bytes(text))
}

fn broker_ids(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().copied().map(BrokerId).collect()
}

/// A controller refusal or outage as a Kafka error code and message.
fn controller_error(error: &MetadataError) -> (i16, String) {
    match error {
        MetadataError::Refused(api) => api_error(api),
        MetadataError::Unavailable(reason) => (ErrorCode::REQUEST_TIMED_OUT.code(), reason.clone()),
    }
}

fn api_error(error: &ApiError) -> (i16, String) {
    (error.code.code(), error.message.clone())
}

/// A topic-partition by name in `image`, if it exists.
fn resolve(image: &MetadataImage, topic: &str, partition: i32) -> Option<TopicIdPartition> {
    let topic = image.topic_by_name(topic)?;
    topic
        .partitions
        .contains_key(&partition)
        .then_some(TopicIdPartition {
            topic_id: topic.topic_id,
            partition,
        })
}

/// The partition `topic`/`partition` this broker leads, with its leader epoch in `image`,
/// or Kafka's error for why not (see [`leader_replica`]).
pub(crate) fn resolve_leader(
    context: &BrokerContext,
    image: &MetadataImage,
    topic: &str,
    partition: i32,
) -> Result<(std::sync::Arc<crate::partition::Partition>, i32), ErrorCode> {
    let tp = resolve(image, topic, partition).ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)?;
    let replica = leader_replica(context, image, tp)?;
    Ok((replica, leader_epoch(image, tp)))
}

/// The open log of a partition this broker leads, or Kafka's error for why not: unknown
/// partition, another (or no) leader, a log that failed to open (KAFKA_STORAGE_ERROR, as
/// Kafka answers for a partition offline on its disk), or a log that is not open or not
/// leading in the image's epoch yet (it became leader in the image but the role change has
/// not run: the client retries).
fn leader_replica(
    context: &BrokerContext,
    image: &MetadataImage,
    tp: TopicIdPartition,
) -> Result<std::sync::Arc<crate::partition::Partition>, ErrorCode> {
    let state = image
        .partition(tp.topic_id, tp.partition)
        .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)?;
    if state.leader != context.config.node_id {
        // Kafka's order (`getPartitionOrException`): a replica hosted here but offline is
        // KAFKA_STORAGE_ERROR whoever leads (once reported, the controller moved its
        // leadership away, or left the partition leaderless).
        if context.replicas.is_offline(tp) {
            return Err(ErrorCode::KAFKA_STORAGE_ERROR);
        }
        return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
    }
    let partition = local_replica(context, tp)?;
    if partition.leader_epoch() != Some(state.leader_epoch) {
        return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
    }
    Ok(partition)
}

/// The leader replica of `tp` on this broker at the image's leader epoch (for the share
/// partitions, outside the handlers).
pub(crate) fn leader_replica_of(
    context: &BrokerContext,
    image: &MetadataImage,
    tp: TopicIdPartition,
) -> Result<std::sync::Arc<crate::partition::Partition>, ErrorCode> {
    leader_replica(context, image, tp)
}

/// Sends a command to the transaction coordinator of `transactional_id`'s partition; a
/// partition this broker does not lead (or no `__transaction_state` yet) is NOT_COORDINATOR,
/// so that the client looks the coordinator up again.
/// `acl` adds the TRANSACTIONAL_ID WRITE check here (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
async fn txn_call(
    context: &BrokerContext,
    transactional_id: &str,
    command: crate::txns::TxnCommand,
) -> crate::txns::TxnResponse {
    let image = context.metadata.image();
    if image.topic_by_name(crate::txns::TXN_TOPIC).is_none() {
        return crate::txns::TxnResponse::error_for(&command, strom_txn::ErrorCode::NotCoordinator);
    }
    let partition = crate::txns::partition_for(&image, transactional_id);
    context.txns.call(partition, command).await
}

/// A coordinator error as the request's version knows it: PRODUCER_FENCED (KIP-588) is
/// INVALID_PRODUCER_EPOCH for versions before `fenced_min_version`, as Kafka answers.
fn txn_error(error: strom_txn::ErrorCode, version: i16, fenced_min_version: i16) -> i16 {
    if error == strom_txn::ErrorCode::ProducerFenced && version < fenced_min_version {
        strom_txn::ErrorCode::InvalidProducerEpoch.code()
    } else {
        error.code()
    }
}

/// The open log of `tp`, or KAFKA_STORAGE_ERROR if it is offline (its log failed to open),
/// or NOT_LEADER_OR_FOLLOWER if it is not open here.
fn local_replica(
    context: &BrokerContext,
    tp: TopicIdPartition,
) -> Result<std::sync::Arc<crate::partition::Partition>, ErrorCode> {
    context.replicas.get(tp).ok_or_else(|| {
        if context.replicas.is_offline(tp) {
            ErrorCode::KAFKA_STORAGE_ERROR
        } else {
            ErrorCode::NOT_LEADER_OR_FOLLOWER
        }
    })
}

/// The leader epoch of a partition in `image` (-1 when unknown).
fn leader_epoch(image: &MetadataImage, tp: TopicIdPartition) -> i32 {
    image
        .partition(tp.topic_id, tp.partition)
        .map_or(-1, |p| p.leader_epoch)
}

/// Kafka's check of a client's `current_leader_epoch` against the leader's (-1: no check).
fn check_leader_epoch(client_epoch: i32, leader_epoch: i32) -> Option<ErrorCode> {
    if client_epoch < 0 || client_epoch == leader_epoch {
        None
    } else if client_epoch < leader_epoch {
        Some(ErrorCode::FENCED_LEADER_EPOCH)
    } else {
        Some(ErrorCode::UNKNOWN_LEADER_EPOCH)
    }
}

/// Overlays the broker's topic defaults on entries the controller reports as Kafka
/// defaults: dynamic broker configs first (`dynamic_config.rs`), then the static ones
/// (`log.segment.bytes=...` in `server.properties`).
fn with_broker_defaults(
    context: &BrokerContext,
    entries: Vec<strom_meta::config_defs::ConfigEntry>,
) -> Vec<strom_meta::config_defs::ConfigEntry> {
    use strom_meta::config_defs::ConfigSource;
    let image = context.metadata.image();
    entries
        .into_iter()
        .map(|mut entry| {
            if entry.source == ConfigSource::DefaultConfig {
                let dynamic = crate::config::BrokerConfig::broker_synonym(&entry.name)
                    .filter(|key| crate::dynamic_config::is_dynamic(key))
                    .and_then(|key| {
                        crate::dynamic_config::dynamic_value(&image, context.config.node_id, key)
                    });
                if let Some((value, source)) = dynamic {
                    entry.value = Some(value);
                    entry.source = source;
                    return entry;
                }
            }
            let set_here = context
                .config
                .topic_defaults_set
                .iter()
                .any(|key| *key == entry.name);
            if set_here && entry.source == ConfigSource::DefaultConfig {
                if let Some(value) = context.config.topic_defaults.get(entry.name.as_str()) {
                    entry.value = Some(value.clone());
                    entry.source = ConfigSource::StaticBrokerConfig;
                }
            }
            entry
        })
        .collect()
}
