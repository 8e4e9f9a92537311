//! Metadata: brokers, cluster id, controller, and topics with their partitions, leaders,
//! leader epochs, replicas, ISR, offline replicas (v5+) and topic ids, as Kafka's metadata
//! cache reports them; topics are auto-created when both the request (v4+) and
//! `auto.create.topics.enable` allow it. Created topics are answered in full at once, since
//! the controller replies only after the topic is committed.

use strom_meta::{
    ControllerRequest, CreatableTopic, CreateTopicsRequest, MetadataImage, PartitionImage,
    TopicIdPartition, TopicImage, NO_LEADER,
};
use strom_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use strom_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, ResponseKind};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::{broker_ids, liveness, str_bytes, topic_name};
use crate::server::BrokerContext;

/// The first version with `allow_auto_topic_creation`; earlier ones always allow it.
const AUTO_CREATE_FIELD_MIN_VERSION: i16 = 4;
/// The first version with `offline_replicas`.
const OFFLINE_REPLICAS_MIN_VERSION: i16 = 5;
/// The first version that reports a leader without this listener as LISTENER_NOT_FOUND.
const LISTENER_NOT_FOUND_MIN_VERSION: i16 = 6;

/// What the client asked about one topic.
enum Wanted {
    Name(String),
    Id(Uuid),
}

pub(super) async fn handle(
    context: &BrokerContext,
    request: MetadataRequest,
    version: i16,
) -> ResponseKind {
    let wanted = wanted_topics(&request, version);
    let allow_auto_create = (version < AUTO_CREATE_FIELD_MIN_VERSION
        || request.allow_auto_topic_creation)
        && context.config.auto_create_topics_enable;
    let mut image = context.metadata.image();
    let mut create_errors = Vec::new();
    if let (Some(wanted), true) = (&wanted, allow_auto_create) {
        create_errors = auto_create(context, &image, wanted).await;
        image = context.metadata.image();
    }
    let topics = match &wanted {
        None => image
            .topics()
            .map(|t| topic_response(context, &image, t, version))
            .collect(),
        Some(wanted) => wanted
            .iter()
            .map(|w| wanted_response(context, &image, w, &create_errors, version))
            .collect(),
    };
    ResponseKind::Metadata(
        MetadataResponse::default()
            .with_brokers(brokers(context, &image))
            .with_cluster_id((version >= 2).then(|| str_bytes(context.config.cluster_id.clone())))
            .with_controller_id(BrokerId(context.config.node_id))
            .with_topics(topics),
    )
}

/// `None` means every topic (v0: an empty list; v1+: a null list).
fn wanted_topics(request: &MetadataRequest, version: i16) -> Option<Vec<Wanted>> {
    let topics = request.topics.as_ref()?;
    if version == 0 && topics.is_empty() {
        return None;
    }
    Some(
        topics
            .iter()
            .map(|t| match &t.name {
                Some(name) => Wanted::Name(name.0.to_string()),
                None => Wanted::Id(t.topic_id),
            })
            .collect(),
    )
}

/// Creates the named topics that do not exist; returns the ones that failed, with why.
async fn auto_create(
    context: &BrokerContext,
    image: &MetadataImage,
    wanted: &[Wanted],
) -> Vec<(String, i16)> {
    let missing: Vec<CreatableTopic> = wanted
        .iter()
        .filter_map(|w| match w {
            Wanted::Name(name) if image.topic_by_name(name).is_none() => Some(CreatableTopic {
                num_partitions: context.config.num_partitions,
                replication_factor: context.config.default_replication_factor,
                ..CreatableTopic::named(name.clone())
            }),
            _ => None,
        })
        .collect();
    if missing.is_empty() {
        return Vec::new();
    }
    let names: Vec<String> = missing.iter().map(|t| t.name.clone()).collect();
    let request = ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: missing,
        validate_only: false,
    });
    let failed = match context.metadata.submit(request).await {
        Ok(strom_meta::ControllerReply::CreateTopics(results)) => results
            .into_iter()
            .filter_map(|r| r.error.map(|e| (r.name, e.code.code())))
            .collect(),
        Ok(_) | Err(_) => names
            .into_iter()
            .map(|name| (name, ErrorCode::LEADER_NOT_AVAILABLE.code()))
            .collect(),
    };
    context.replicas.reconcile_latest(&context.metadata).await;
    failed
}

fn wanted_response(
    context: &BrokerContext,
    image: &MetadataImage,
    wanted: &Wanted,
    create_errors: &[(String, i16)],
    version: i16,
) -> MetadataResponseTopic {
    match wanted {
        Wanted::Name(name) => match image.topic_by_name(name) {
            Some(topic) => topic_response(context, image, topic, version),
            None => {
                let code = create_errors
                    .iter()
                    .find(|(failed, _)| failed == name)
                    .map_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code(), |(_, code)| {
                        // Kafka reports a name it cannot create as invalid, not unknown.
                        if *code == ErrorCode::INVALID_TOPIC_EXCEPTION.code() {
                            *code
                        } else {
                            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
                        }
                    });
                MetadataResponseTopic::default()
                    .with_error_code(code)
                    .with_name(Some(topic_name(name.clone())))
            }
        },
        Wanted::Id(id) => match image.topic_by_id(*id) {
            Some(topic) => topic_response(context, image, topic, version),
            None => MetadataResponseTopic::default()
                .with_error_code(ErrorCode::UNKNOWN_TOPIC_ID.code())
                .with_topic_id(*id),
        },
    }
}

fn topic_response(
    context: &BrokerContext,
    image: &MetadataImage,
    topic: &TopicImage,
    version: i16,
) -> MetadataResponseTopic {
    let listener = context.advertised_here().name.as_str();
    let partitions = topic
        .partitions
        .iter()
        .map(|(index, p)| {
            let tp = TopicIdPartition {
                topic_id: topic.topic_id,
                partition: *index,
            };
            partition_response(image, listener, tp, p, version)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(topic.name.clone())))
        .with_topic_id(if version >= 10 {
            topic.topic_id
        } else {
            Uuid::nil()
        })
        .with_is_internal(topic.name == crate::groups::OFFSETS_TOPIC)
        .with_partitions(partitions)
}

/// One partition as Kafka's `KRaftMetadataCache.getPartitionMetadata` answers it: v0 lists
/// only online replicas and says REPLICA_NOT_AVAILABLE when some are missing; later
/// versions list them all and report the offline ones (v5+). A leader that cannot be named
/// is -1 with LEADER_NOT_AVAILABLE (LISTENER_NOT_FOUND from v6 when it lacks this listener).
fn partition_response(
    image: &MetadataImage,
    listener: &str,
    tp: TopicIdPartition,
    p: &PartitionImage,
    version: i16,
) -> MetadataResponsePartition {
    let index = tp.partition;
    let filter = |ids: &[i32]| -> Vec<i32> {
        if version == 0 {
            ids.iter()
                .copied()
                .filter(|b| liveness::is_online(image, *b, listener))
                .collect()
        } else {
            ids.to_vec()
        }
    };
    let (replicas, isr) = (filter(&p.replicas), filter(&p.isr));
    let (leader, error) = if !p.has_leader() || image.broker(p.leader).is_none() {
        (NO_LEADER, ErrorCode::LEADER_NOT_AVAILABLE)
    } else if !liveness::leader_reachable(image, p.leader, listener) {
        let error = if version >= LISTENER_NOT_FOUND_MIN_VERSION {
            ErrorCode::LISTENER_NOT_FOUND
        } else {
            ErrorCode::LEADER_NOT_AVAILABLE
        };
        (NO_LEADER, error)
    } else if replicas.len() < p.replicas.len() || isr.len() < p.isr.len() {
        (p.leader, ErrorCode::REPLICA_NOT_AVAILABLE)
    } else {
        (p.leader, ErrorCode::NONE)
    };
    let response = MetadataResponsePartition::default()
        .with_error_code(error.code())
        .with_partition_index(index)
        .with_leader_id(BrokerId(leader))
        .with_leader_epoch(if version >= 7 { p.leader_epoch } else { -1 })
        .with_replica_nodes(broker_ids(&replicas))
        .with_isr_nodes(broker_ids(&isr));
    if version >= OFFLINE_REPLICAS_MIN_VERSION {
        response.with_offline_replicas(broker_ids(&liveness::offline(
            image,
            tp,
            &p.replicas,
            listener,
        )))
    } else {
        response
    }
}

/// Unfenced brokers with a listener of the advertised name; this broker always appears.
fn brokers(context: &BrokerContext, image: &MetadataImage) -> Vec<MetadataResponseBroker> {
    let me = context.advertised_here();
    let mut out: Vec<MetadataResponseBroker> = image
        .brokers()
        .filter(|b| !b.fenced && b.broker_id != context.config.node_id)
        .filter_map(|b| {
            let endpoint = b.endpoints.iter().find(|e| e.listener_name == me.name)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.broker_id))
                    .with_host(str_bytes(endpoint.host.clone()))
                    .with_port(i32::from(endpoint.port))
                    .with_rack(b.rack.clone().map(str_bytes)),
            )
        })
        .collect();
    out.push(
        MetadataResponseBroker::default()
            .with_node_id(BrokerId(context.config.node_id))
            .with_host(str_bytes(me.host.clone()))
            .with_port(i32::from(me.port))
            .with_rack(context.config.rack.clone().map(str_bytes)),
    );
    out.sort_by_key(|b| b.node_id.0);
    out
}
