//! ShareGroupHeartbeat (v1, KIP-932): maps the request to strom-share's heartbeat command
//! with the cluster's topics and the group's `share.session.timeout.ms` /
//! `share.heartbeat.interval.ms` configs, and maps the answer back. A member that leaves
//! (epoch -1) has its acquired records released on this broker's share partitions.

use std::net::SocketAddr;

use strom_group::consumer::Assignment;
use strom_group::ErrorCode;
use strom_protocol::messages::share_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use strom_protocol::messages::{
    ResponseKind, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse,
};
use strom_share::group::{ShareCommand, ShareHeartbeat, ShareHeartbeatResponse, ShareResponse};

use super::consumer_group_heartbeat::{topics, uuid};
use super::{opt_string, str_bytes};
use crate::server::BrokerContext;

pub(super) async fn handle(
    context: &BrokerContext,
    request: ShareGroupHeartbeatRequest,
    client_id: Option<strom_protocol::StrBytes>,
    peer: SocketAddr,
) -> ResponseKind {
    let group_id = request.group_id.0.to_string();
    let image = context.metadata.image();
    let settings = crate::group_configs::settings(&context.config, &image, &group_id);
    let (member_id, leaving) = (request.member_id.to_string(), request.member_epoch == -1);
    let command = ShareCommand::Heartbeat(ShareHeartbeat {
        group_id: group_id.clone(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        rack_id: opt_string(request.rack_id),
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        client_id: client_id.map(|c| c.to_string()).unwrap_or_default(),
        client_host: format!("/{}", peer.ip()),
        topics: topics(&image),
        session_timeout_ms: Some(settings.share_session_timeout_ms),
        heartbeat_interval_ms: Some(settings.share_heartbeat_interval_ms),
    });
    let response = match super::share_call(context, &group_id, command).await {
        Ok(ShareResponse::Heartbeat(r)) => {
            // A member that left gives up its acquired records at once (Kafka releases
            // them to AVAILABLE without counting a delivery).
            if leaving && r.error.is_none() {
                context.shares.release_member(&group_id, &member_id).await;
            }
            to_wire(r)
        }
        Ok(_) => failed(ErrorCode::CoordinatorNotAvailable),
        Err(code) => failed(code),
    };
    ResponseKind::ShareGroupHeartbeat(response)
}

/// A broker-level failure (no coordinator, append failed): the client retries.
fn failed(code: ErrorCode) -> ShareGroupHeartbeatResponse {
    ShareGroupHeartbeatResponse::default().with_error_code(code.code())
}

fn to_wire(r: ShareHeartbeatResponse) -> ShareGroupHeartbeatResponse {
    let (error_code, error_message) = match &r.error {
        Some(e) => (
            e.code.code(),
            Some(e.message.clone())
                .filter(|m| !m.is_empty())
                .map(str_bytes),
        ),
        None => (0, None),
    };
    ShareGroupHeartbeatResponse::default()
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
