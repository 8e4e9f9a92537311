//! ConsumerGroupHeartbeat (v0-v1, KIP-848): maps the request to strom-group's consumer
//! command with the cluster's topics (ids, names, partition counts) and the group's
//! `consumer.session.timeout.ms` / `consumer.heartbeat.interval.ms` configs (`group_configs.rs`),
//! and maps the answer back.

use std::net::SocketAddr;
use std::sync::Arc;

use strom_group::consumer::{
    Assignment, ConsumerHeartbeat, ConsumerHeartbeatResponse, TopicId, TopicInfo, Topics,
};
use strom_group::{Command, ErrorCode, Response};
use strom_meta::MetadataImage;
use strom_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use strom_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, ResponseKind,
};
use uuid::Uuid;

use super::{group_call, opt_string, str_bytes};
use crate::server::BrokerContext;

pub(super) async fn handle(
    context: &BrokerContext,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: Option<strom_protocol::StrBytes>,
    peer: SocketAddr,
) -> ResponseKind {
    let group_id = request.group_id.0.to_string();
    let image = context.metadata.image();
    let settings = crate::group_configs::settings(&context.config, &image, &group_id);
    let command = Command::ConsumerGroupHeartbeat(ConsumerHeartbeat {
        api_version: version,
        group_id: group_id.clone(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: opt_string(request.instance_id),
        rack_id: opt_string(request.rack_id),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_topic_regex: opt_string(request.subscribed_topic_regex),
        server_assignor: opt_string(request.server_assignor),
        owned_partitions: request.topic_partitions.map(|owned| {
            owned
                .into_iter()
                .map(|tp| (topic_id(tp.topic_id), tp.partitions))
                .collect()
        }),
        client_id: client_id.map(|c| c.to_string()).unwrap_or_default(),
        client_host: format!("/{}", peer.ip()),
        topics: topics(&image),
        session_timeout_ms: Some(settings.consumer_session_timeout_ms),
        heartbeat_interval_ms: Some(settings.consumer_heartbeat_interval_ms),
    });
    let response = match group_call(context, &group_id, command).await {
        Ok(Response::ConsumerGroupHeartbeat(r)) => to_wire(r),
        Ok(_) => failed(ErrorCode::CoordinatorNotAvailable),
        Err(code) => failed(code),
    };
    ResponseKind::ConsumerGroupHeartbeat(response)
}

/// The cluster's topics as the consumer coordinator sees them.
pub(super) fn topics(image: &MetadataImage) -> Arc<Topics> {
    Arc::new(Topics::new(image.topics().map(|t| TopicInfo {
        id: topic_id(t.topic_id),
        name: t.name.clone(),
        partitions: i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
    })))
}

pub(super) fn topic_id(id: Uuid) -> TopicId {
    TopicId(*id.as_bytes())
}

pub(super) fn uuid(id: TopicId) -> Uuid {
    Uuid::from_bytes(id.0)
}

/// A broker-level failure (no coordinator, append failed): the client retries.
fn failed(code: ErrorCode) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default().with_error_code(code.code())
}

fn to_wire(r: ConsumerHeartbeatResponse) -> ConsumerGroupHeartbeatResponse {
    let (error_code, error_message) = match &r.error {
        Some(e) => (e.code.code(), Some(str_bytes(e.message.clone()))),
        None => (0, None),
    };
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(error_code)
        .with_error_message(error_message)
        .with_member_id(r.member_id.map(str_bytes))
        .with_member_epoch(r.member_epoch)
        .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
        .with_assignment(r.assignment.as_ref().map(wire_assignment))
}

fn wire_assignment(a: &Assignment) -> WireAssignment {
    WireAssignment::default().with_topic_partitions(
        a.iter()
            .map(|(topic, partitions)| {
                TopicPartitions::default()
                    .with_topic_id(uuid(*topic))
                    .with_partitions(partitions.iter().copied().collect())
            })
            .collect(),
    )
}
