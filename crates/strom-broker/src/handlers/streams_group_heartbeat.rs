//! StreamsGroupHeartbeat (v0, KIP-1071): maps the request to strom-group's streams
//! command with the cluster's topics, maps the answer back, and creates the internal
//! topics (repartition and changelog) the group's topology needs and the cluster lacks,
//! as Kafka 4.2's broker does: with CREATE on each topic (or the cluster), else the
//! member is told so in the MISSING_INTERNAL_TOPICS status.

use std::net::SocketAddr;

use strom_group::streams::{
    CopartitionGroup, Endpoint, EndpointPartitions, NullTasks, Status, StatusCode,
    StreamsHeartbeat, StreamsHeartbeatResponse, Subtopology, Tasks, TasksTuple, TopicInfo,
    TopicToCreate, Topology,
};
use strom_group::{Command, ErrorCode, Response};
use strom_meta::acl::{AclOperation, ResourceType};
use strom_meta::{ControllerReply, ControllerRequest, CreatableTopic, CreateTopicsRequest};
use strom_protocol::messages::streams_group_heartbeat_request as req;
use strom_protocol::messages::streams_group_heartbeat_response as resp;
use strom_protocol::messages::{
    ApiKey, ResponseKind, StreamsGroupHeartbeatRequest, StreamsGroupHeartbeatResponse,
};

use super::consumer_group_heartbeat::topics;
use super::{group_call, opt_string, str_bytes};
use crate::principal::Session;
use crate::server::BrokerContext;

/// How often members send their task offsets (Kafka's `group.streams.task.offset.interval.ms`
/// default); Strom does not use them yet.
const TASK_OFFSET_INTERVAL_MS: i32 = 60_000;
/// The lag a warm-up task may have to count as caught up (Kafka's
/// `group.streams.acceptable.recovery.lag` default); no warm-up tasks are made here.
const ACCEPTABLE_RECOVERY_LAG: i32 = 10_000;

pub(super) async fn handle(
    context: &BrokerContext,
    session: &Session,
    request: StreamsGroupHeartbeatRequest,
    client_id: Option<strom_protocol::StrBytes>,
    peer: SocketAddr,
) -> ResponseKind {
    let group_id = request.group_id.0.to_string();
    let image = context.metadata.image();
    let settings = crate::group_configs::settings(&context.config, &image, &group_id);
    // strom-group validates the lists' nullness (Kafka's order of checks and messages).
    let null_tasks = NullTasks {
        active: request.active_tasks.is_none(),
        standby: request.standby_tasks.is_none(),
        warmup: request.warmup_tasks.is_none(),
    };
    let owned = match (
        request.active_tasks,
        request.standby_tasks,
        request.warmup_tasks,
    ) {
        (Some(a), Some(s), Some(w)) => Some(TasksTuple {
            active: tasks(a),
            standby: tasks(s),
            warmup: tasks(w),
        }),
        _ => None,
    };
    let command = Command::StreamsGroupHeartbeat(StreamsHeartbeat {
        group_id: group_id.clone(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: opt_string(request.instance_id),
        rack_id: opt_string(request.rack_id),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        topology: request.topology.map(topology),
        owned,
        null_tasks,
        process_id: opt_string(request.process_id),
        user_endpoint: request.user_endpoint.map(|e| Endpoint {
            host: e.host.to_string(),
            port: e.port,
        }),
        client_tags: request.client_tags.map(|tags| {
            tags.into_iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect()
        }),
        shutdown_application: request.shutdown_application,
        client_id: client_id.map(|c| c.to_string()).unwrap_or_default(),
        client_host: format!("/{}", peer.ip()),
        topics: topics(&image),
        session_timeout_ms: Some(settings.streams_session_timeout_ms),
        heartbeat_interval_ms: Some(settings.streams_heartbeat_interval_ms),
        num_standby_replicas: Some(settings.streams_num_standby_replicas),
    });
    let response = match group_call(context, &group_id, command).await {
        Ok(Response::StreamsGroupHeartbeat(mut r)) => {
            if r.error.is_none() && !r.topics_to_create.is_empty() {
                create_internal_topics(context, session, &mut r).await;
            }
            to_wire(r)
        }
        Ok(_) => failed(ErrorCode::CoordinatorNotAvailable),
        Err(code) => failed(code),
    };
    ResponseKind::StreamsGroupHeartbeat(response)
}

/// Creates the group's missing internal topics through the controller. Topics the
/// member's principal may not CREATE are named in the MISSING_INTERNAL_TOPICS status
/// instead (Kafka's `KafkaApis.handleStreamsGroupHeartbeat`); a topic that another
/// heartbeat created first is fine (TOPIC_ALREADY_EXISTS).
async fn create_internal_topics(
    context: &BrokerContext,
    session: &Session,
    r: &mut StreamsHeartbeatResponse,
) {
    let cluster_ok = crate::authz::allowed_op(
        context,
        session,
        ApiKey::StreamsGroupHeartbeat,
        AclOperation::Create,
        ResourceType::Cluster,
        strom_meta::acl::CLUSTER_NAME,
    );
    let (allowed, denied): (Vec<TopicToCreate>, Vec<TopicToCreate>) =
        std::mem::take(&mut r.topics_to_create)
            .into_iter()
            .partition(|t| {
                cluster_ok
                    || crate::authz::allowed_op(
                        context,
                        session,
                        ApiKey::StreamsGroupHeartbeat,
                        AclOperation::Create,
                        ResourceType::Topic,
                        &t.name,
                    )
            });
    if !denied.is_empty() {
        let names: Vec<&str> = denied.iter().map(|t| t.name.as_str()).collect();
        r.status.push(Status {
            code: StatusCode::MissingInternalTopics,
            detail: format!("Unauthorized to CREATE on topics {}.", names.join(", ")),
        });
    }
    if allowed.is_empty() {
        return;
    }
    let default_rf = context.config.default_replication_factor;
    let request = ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: allowed
            .iter()
            .map(|t| CreatableTopic {
                name: t.name.clone(),
                num_partitions: t.partitions,
                replication_factor: if t.replication_factor > 0 {
                    t.replication_factor
                } else {
                    default_rf
                },
                assignments: Vec::new(),
                configs: t
                    .configs
                    .iter()
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect(),
            })
            .collect(),
        validate_only: false,
    });
    match context.metadata.submit(request).await {
        Ok(ControllerReply::CreateTopics(results)) => {
            for e in results.iter().filter_map(|r| r.error.as_ref()) {
                tracing::info!(error = %e.message, "creating a streams internal topic");
            }
            tracing::info!(
                topics = ?allowed.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
                "created streams internal topics"
            );
        }
        Ok(other) => tracing::warn!(?other, "unexpected reply creating streams internal topics"),
        Err(error) => tracing::warn!(%error, "cannot create streams internal topics"),
    }
}

fn tasks(ids: Vec<req::TaskIds>) -> Tasks {
    let mut out = Tasks::new();
    for t in ids {
        out.entry(t.subtopology_id.to_string())
            .or_default()
            .extend(t.partitions);
    }
    out
}

fn topic_info(t: req::TopicInfo) -> TopicInfo {
    TopicInfo {
        name: t.name.to_string(),
        partitions: t.partitions,
        replication_factor: t.replication_factor,
        configs: t
            .topic_configs
            .into_iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect(),
    }
}

fn topology(t: req::Topology) -> Topology {
    Topology {
        epoch: t.epoch,
        subtopologies: t
            .subtopologies
            .into_iter()
            .map(|s| Subtopology {
                id: s.subtopology_id.to_string(),
                source_topics: s.source_topics.iter().map(|t| t.to_string()).collect(),
                source_topic_regex: s.source_topic_regex.iter().map(|t| t.to_string()).collect(),
                state_changelog_topics: s
                    .state_changelog_topics
                    .into_iter()
                    .map(topic_info)
                    .collect(),
                repartition_sink_topics: s
                    .repartition_sink_topics
                    .iter()
                    .map(|t| t.to_string())
                    .collect(),
                repartition_source_topics: s
                    .repartition_source_topics
                    .into_iter()
                    .map(topic_info)
                    .collect(),
                copartition_groups: s
                    .copartition_groups
                    .into_iter()
                    .map(|g| CopartitionGroup {
                        source_topics: g.source_topics,
                        source_topic_regex: g.source_topic_regex,
                        repartition_source_topics: g.repartition_source_topics,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// A broker-level failure (no coordinator, append failed): the client retries.
fn failed(code: ErrorCode) -> StreamsGroupHeartbeatResponse {
    StreamsGroupHeartbeatResponse::default().with_error_code(code.code())
}

fn wire_tasks(t: &Tasks) -> Vec<resp::TaskIds> {
    t.iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(sub, parts)| {
            resp::TaskIds::default()
                .with_subtopology_id(str_bytes(sub.clone()))
                .with_partitions(parts.iter().copied().collect())
        })
        .collect()
}

fn wire_partitions(
    by_topic: &std::collections::BTreeMap<String, std::collections::BTreeSet<i32>>,
) -> Vec<resp::TopicPartition> {
    by_topic
        .iter()
        .map(|(topic, parts)| {
            resp::TopicPartition::default()
                .with_topic(str_bytes(topic.clone()))
                .with_partitions(parts.iter().copied().collect())
        })
        .collect()
}

fn wire_endpoint(e: &EndpointPartitions) -> resp::EndpointToPartitions {
    resp::EndpointToPartitions::default()
        .with_user_endpoint(
            resp::Endpoint::default()
                .with_host(str_bytes(e.endpoint.host.clone()))
                .with_port(e.endpoint.port),
        )
        .with_active_partitions(wire_partitions(&e.active))
        .with_standby_partitions(wire_partitions(&e.standby))
}

fn to_wire(r: StreamsHeartbeatResponse) -> StreamsGroupHeartbeatResponse {
    if let Some(e) = &r.error {
        return StreamsGroupHeartbeatResponse::default()
            .with_error_code(e.code.code())
            .with_error_message((!e.message.is_empty()).then(|| str_bytes(e.message.clone())));
    }
    let status = r
        .status
        .iter()
        .map(|s| {
            resp::Status::default()
                .with_status_code(s.code.code())
                .with_status_detail(str_bytes(s.detail.clone()))
        })
        .collect();
    let mut out = StreamsGroupHeartbeatResponse::default()
        .with_member_id(str_bytes(r.member_id))
        .with_member_epoch(r.member_epoch)
        .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
        .with_acceptable_recovery_lag(ACCEPTABLE_RECOVERY_LAG)
        .with_task_offset_interval_ms(TASK_OFFSET_INTERVAL_MS)
        .with_status(Some(status));
    if let Some(a) = &r.assignment {
        out = out
            .with_active_tasks(Some(wire_tasks(&a.active)))
            .with_standby_tasks(Some(wire_tasks(&a.standby)))
            .with_warmup_tasks(Some(wire_tasks(&a.warmup)));
    }
    if let Some(endpoints) = &r.endpoints {
        out = out
            .with_partitions_by_user_endpoint(Some(endpoints.iter().map(wire_endpoint).collect()));
    }
    out
}
