//! Per-topic authorization around the handlers, as Kafka's `KafkaApis` does it: the items
//! of a request the principal may not touch are taken out before the handler runs, and
//! answered TOPIC_AUTHORIZATION_FAILED next to the handler's answers for the rest. Which
//! operation each API needs is `crate::authz::TABLE`; this module only splits and merges.
//! Without an authorizer every wrapper calls its handler with the request untouched.

use strom_meta::acl::{ResourceType, CLUSTER_NAME};
use strom_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use strom_protocol::messages::create_topics_response::CreatableTopicResult;
use strom_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use strom_protocol::messages::delete_topics_response::DeletableTopicResult;
use strom_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use strom_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use strom_protocol::messages::metadata_response::MetadataResponseTopic;
use strom_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use strom_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, FetchRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest,
    ResponseKind,
};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use crate::authz;
use crate::principal::Session;
use crate::sendfile::FileRecords;
use crate::server::BrokerContext;

const DENIED: ErrorCode = ErrorCode::TOPIC_AUTHORIZATION_FAILED;

/// The topic's name: as sent, or from its id in the current image. `None` for an unknown
/// id (the handler answers it UNKNOWN_TOPIC_ID).
fn topic_name(context: &BrokerContext, name: &str, id: Uuid) -> Option<String> {
    if !name.is_empty() || id.is_nil() {
        return Some(name.to_string());
    }
    context
        .metadata
        .image()
        .topic_by_id(id)
        .map(|t| t.name.clone())
}

/// May `session` do what `api` needs on the topic `name` (checked whether or not it
/// exists)?
pub(super) fn topic_allowed(
    context: &BrokerContext,
    session: &Session,
    api: ApiKey,
    name: &str,
) -> bool {
    authz::allowed(context, session, api, ResourceType::Topic, name)
}

/// Moves the items `allowed` refuses out of `items` (order kept on both sides) and returns
/// them, for the handler to answer with an authorization error.
pub(super) fn take_denied<T>(items: &mut Vec<T>, allowed: impl FnMut(&T) -> bool) -> Vec<T> {
    let (ok, denied) = std::mem::take(items).into_iter().partition(allowed);
    *items = ok;
    denied
}

/// Whether `session` may do what `api` needs on the topic (unknown ids pass to the handler).
fn topic_ok(context: &BrokerContext, session: &Session, api: ApiKey, name: &str, id: Uuid) -> bool {
    topic_name(context, name, id)
        .is_none_or(|name| authz::allowed(context, session, api, ResourceType::Topic, &name))
}

pub(super) async fn produce(
    context: &BrokerContext,
    session: &Session,
    mut request: ProduceRequest,
    version: i16,
) -> ResponseKind {
    if !authz::enabled(context) {
        return super::produce::handle(context, request, version).await;
    }
    let denied = take_denied(&mut request.topic_data, |t| {
        topic_ok(context, session, ApiKey::Produce, &t.name, t.topic_id)
    });
    let mut response = super::produce::handle(context, request, version).await;
    if let ResponseKind::Produce(produce) = &mut response {
        produce.responses.extend(denied.into_iter().map(|t| {
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_topic_id(t.topic_id)
                .with_partition_responses(
                    t.partition_data
                        .iter()
                        .map(|p| {
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_error_code(DENIED.code())
                                .with_base_offset(-1)
                                .with_log_append_time_ms(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect(),
                )
        }));
    }
    response
}

pub(super) async fn fetch(
    context: &BrokerContext,
    session: &Session,
    mut request: FetchRequest,
    version: i16,
) -> (ResponseKind, Vec<FileRecords>) {
    // A follower's fetch was checked for CLUSTER_ACTION before (`authz::precheck`).
    let follower = request.replica_id.0 >= 0 || request.replica_state.replica_id.0 >= 0;
    if !authz::enabled(context) || follower {
        return super::fetch::handle(context, request, version).await;
    }
    let denied = take_denied(&mut request.topics, |t| {
        topic_ok(context, session, ApiKey::Fetch, &t.topic, t.topic_id)
    });
    let (mut response, files) = super::fetch::handle(context, request, version).await;
    if let ResponseKind::Fetch(fetch) = &mut response {
        // Appended after the handler's topics: the spliced files' markers are unaffected.
        fetch.responses.extend(denied.into_iter().map(|t| {
            FetchableTopicResponse::default()
                .with_topic(t.topic)
                .with_topic_id(t.topic_id)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            PartitionData::default()
                                .with_partition_index(p.partition)
                                .with_error_code(DENIED.code())
                                .with_high_watermark(-1)
                                .with_last_stable_offset(-1)
                                .with_log_start_offset(-1)
                                .with_records(Some(Default::default()))
                        })
                        .collect(),
                )
        }));
    }
    (response, files)
}

pub(super) async fn list_offsets(
    context: &BrokerContext,
    session: &Session,
    mut request: ListOffsetsRequest,
    version: i16,
) -> ResponseKind {
    if !authz::enabled(context) {
        return super::list_offsets::handle(context, request, version).await;
    }
    let denied = take_denied(&mut request.topics, |t| {
        topic_ok(context, session, ApiKey::ListOffsets, &t.name, Uuid::nil())
    });
    let mut response = super::list_offsets::handle(context, request, version).await;
    if let ResponseKind::ListOffsets(list) = &mut response {
        list.topics.extend(denied.into_iter().map(|t| {
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(DENIED.code())
                                .with_timestamp(-1)
                                .with_offset(-1)
                                .with_leader_epoch(-1)
                        })
                        .collect(),
                )
        }));
    }
    response
}

/// Metadata: named topics the principal may not DESCRIBE, or that would be auto-created
/// without CREATE (on the cluster or the topic), are answered TOPIC_AUTHORIZATION_FAILED
/// and never created; a listing of all topics leaves out those it may not DESCRIBE.
/// `authorized_operations` are filled when asked for.
pub(super) async fn metadata(
    context: &BrokerContext,
    session: &Session,
    mut request: MetadataRequest,
    version: i16,
) -> ResponseKind {
    if !authz::enabled(context) {
        return super::metadata::handle(context, request, version).await;
    }
    let image = context.metadata.image();
    let auto_create = (version < 4 || request.allow_auto_topic_creation)
        && context.config.auto_create_topics_enable;
    let mut denied = Vec::new();
    if let Some(topics) = request.topics.take() {
        let mut cluster_create = None;
        let mut ok = Vec::with_capacity(topics.len());
        for topic in topics {
            let Some(name) = topic.name.as_ref().map(|n| n.to_string()) else {
                // By id: checked on the answer below.
                ok.push(topic);
                continue;
            };
            let mut allowed = authz::allowed(
                context,
                session,
                ApiKey::Metadata,
                ResourceType::Topic,
                &name,
            );
            if allowed && auto_create && image.topic_by_name(&name).is_none() {
                let cluster = *cluster_create.get_or_insert_with(|| {
                    authz::visible(
                        context,
                        session,
                        ApiKey::Metadata,
                        ResourceType::Cluster,
                        CLUSTER_NAME,
                    )
                });
                allowed = cluster
                    || authz::allowed_op(
                        context,
                        session,
                        ApiKey::Metadata,
                        strom_meta::acl::AclOperation::Create,
                        ResourceType::Topic,
                        &name,
                    );
            }
            if allowed {
                ok.push(topic);
            } else {
                denied.push(name);
            }
        }
        request.topics = Some(ok);
    }
    // v0 reads an empty list as every topic: then the listing is filtered like one.
    let all_topics = match &request.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    let topic_ops = request.include_topic_authorized_operations;
    let cluster_ops = request.include_cluster_authorized_operations;
    let mut response = super::metadata::handle(context, request, version).await;
    if let ResponseKind::Metadata(metadata) = &mut response {
        let topics = std::mem::take(&mut metadata.topics);
        for mut topic in topics {
            let name = topic
                .name
                .as_ref()
                .map(|n| n.to_string())
                .or_else(|| image.topic_by_id(topic.topic_id).map(|t| t.name.clone()));
            let Some(name) = name else {
                metadata.topics.push(topic);
                continue;
            };
            let visible = if all_topics {
                authz::visible(
                    context,
                    session,
                    ApiKey::Metadata,
                    ResourceType::Topic,
                    &name,
                )
            } else {
                authz::allowed(
                    context,
                    session,
                    ApiKey::Metadata,
                    ResourceType::Topic,
                    &name,
                )
            };
            if visible {
                if topic_ops && version >= 8 {
                    topic.topic_authorized_operations =
                        authz::authorized_operations(context, session, ResourceType::Topic, &name);
                }
                metadata.topics.push(topic);
            } else if !all_topics {
                metadata.topics.push(
                    MetadataResponseTopic::default()
                        .with_error_code(DENIED.code())
                        .with_name(topic.name)
                        .with_topic_id(topic.topic_id)
                        .with_is_internal(topic.is_internal),
                );
            }
        }
        metadata.topics.extend(denied.into_iter().map(|name| {
            MetadataResponseTopic::default()
                .with_error_code(DENIED.code())
                .with_name(Some(super::topic_name(name)))
        }));
        if cluster_ops && (8..=10).contains(&version) {
            metadata.cluster_authorized_operations =
                authz::authorized_operations(context, session, ResourceType::Cluster, CLUSTER_NAME);
        }
    }
    response
}

pub(super) async fn create_topics(
    context: &BrokerContext,
    session: &Session,
    mut request: CreateTopicsRequest,
    version: i16,
) -> ResponseKind {
    if !authz::enabled(context) {
        return super::create_topics::handle(context, request, version).await;
    }
    // CLUSTER CREATE covers every topic; checked quietly, as Kafka does.
    let cluster = authz::visible(
        context,
        session,
        ApiKey::CreateTopics,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    let denied = take_denied(&mut request.topics, |t| {
        cluster || topic_allowed(context, session, ApiKey::CreateTopics, &t.name)
    });
    let mut response = super::create_topics::handle(context, request, version).await;
    if let ResponseKind::CreateTopics(created) = &mut response {
        created.topics.extend(denied.into_iter().map(|t| {
            CreatableTopicResult::default()
                .with_name(t.name)
                .with_error_code(DENIED.code())
                .with_error_message(Some(super::str_bytes("Authorization failed.")))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
        }));
    }
    response
}

pub(super) async fn delete_topics(
    context: &BrokerContext,
    session: &Session,
    mut request: DeleteTopicsRequest,
    version: i16,
) -> ResponseKind {
    if !authz::enabled(context) {
        return super::delete_topics::handle(context, request, version).await;
    }
    let may = |name: &str, id: Uuid| topic_ok(context, session, ApiKey::DeleteTopics, name, id);
    let mut denied = Vec::new();
    let no = take_denied(&mut request.topic_names, |name| may(name, Uuid::nil()));
    denied.extend(no.into_iter().map(|name| (Some(name), Uuid::nil())));
    let no = take_denied(&mut request.topics, |t| {
        may(t.name.as_deref().map_or("", |n| n), t.topic_id)
    });
    denied.extend(no.into_iter().map(|t| (t.name, t.topic_id)));
    let mut response = super::delete_topics::handle(context, request, version).await;
    if let ResponseKind::DeleteTopics(deleted) = &mut response {
        deleted
            .responses
            .extend(denied.into_iter().map(|(name, topic_id)| {
                DeletableTopicResult::default()
                    .with_name(name)
                    .with_topic_id(topic_id)
                    .with_error_code(DENIED.code())
                    .with_error_message(Some(super::str_bytes("Authorization failed.")))
            }));
    }
    response
}

pub(super) async fn create_partitions(
    context: &BrokerContext,
    session: &Session,
    mut request: CreatePartitionsRequest,
    version: i16,
) -> ResponseKind {
    if !authz::enabled(context) {
        return super::create_partitions::handle(context, request, version).await;
    }
    let denied = take_denied(&mut request.topics, |t| {
        topic_allowed(context, session, ApiKey::CreatePartitions, &t.name)
    });
    let mut response = super::create_partitions::handle(context, request, version).await;
    if let ResponseKind::CreatePartitions(created) = &mut response {
        created.results.extend(denied.into_iter().map(|t| {
            CreatePartitionsTopicResult::default()
                .with_name(t.name)
                .with_error_code(DENIED.code())
                .with_error_message(Some(super::str_bytes("Authorization failed.")))
        }));
    }
    response
}

pub(super) async fn delete_records(
    context: &BrokerContext,
    session: &Session,
    mut request: DeleteRecordsRequest,
    version: i16,
) -> ResponseKind {
    if !authz::enabled(context) {
        return super::delete_records::handle(context, request, version).await;
    }
    let denied = take_denied(&mut request.topics, |t| {
        topic_allowed(context, session, ApiKey::DeleteRecords, &t.name)
    });
    let mut response = super::delete_records::handle(context, request, version).await;
    if let ResponseKind::DeleteRecords(deleted) = &mut response {
        deleted.topics.extend(denied.into_iter().map(|t| {
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index)
                                .with_low_watermark(-1)
                                .with_error_code(DENIED.code())
                        })
                        .collect(),
                )
        }));
    }
    response
}
