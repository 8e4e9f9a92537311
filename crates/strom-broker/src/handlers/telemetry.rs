//! GetTelemetrySubscriptions and PushTelemetry (KIP-714 client metrics): thin wire
//! adapters over `crate::telemetry`, which holds the subscriptions and what clients push.

use std::net::SocketAddr;

use strom_protocol::messages::{
    GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse, PushTelemetryRequest,
    PushTelemetryResponse, ResponseKind,
};
use strom_protocol::StrBytes;

use super::str_bytes;
use crate::server::BrokerContext;
use crate::telemetry::{PushOutcome, ACCEPTED_COMPRESSION};

pub(super) fn get_subscriptions(
    context: &BrokerContext,
    request: GetTelemetrySubscriptionsRequest,
    client_id: Option<StrBytes>,
    peer: SocketAddr,
) -> ResponseKind {
    let telemetry = &context.metrics.clients;
    let image = context.metadata.image();
    let client_id = client_id.as_deref().unwrap_or("").to_string();
    let response =
        match telemetry.get_subscription(&image, request.client_instance_id, &client_id, peer) {
            Ok((id, assigned)) => GetTelemetrySubscriptionsResponse::default()
                .with_client_instance_id(id)
                .with_subscription_id(assigned.subscription_id)
                .with_accepted_compression_types(ACCEPTED_COMPRESSION.to_vec())
                .with_push_interval_ms(assigned.interval_ms)
                .with_telemetry_max_bytes(i32::try_from(telemetry.max_bytes).unwrap_or(i32::MAX))
                .with_delta_temporality(true)
                .with_requested_metrics(assigned.metrics.into_iter().map(str_bytes).collect()),
            Err((id, code, message)) => {
                tracing::debug!(%id, code, %message, "GetTelemetrySubscriptions refused");
                GetTelemetrySubscriptionsResponse::default()
                    .with_client_instance_id(id)
                    .with_error_code(code)
            }
        };
    ResponseKind::GetTelemetrySubscriptions(response)
}

pub(super) fn push(
    context: &BrokerContext,
    request: PushTelemetryRequest,
    client_id: Option<StrBytes>,
    peer: SocketAddr,
) -> ResponseKind {
    let image = context.metadata.image();
    let client_id = client_id.as_deref().unwrap_or("").to_string();
    let outcome = context.metrics.clients.push(
        &image,
        request.client_instance_id,
        request.subscription_id,
        request.terminating,
        request.compression_type,
        &request.metrics,
        &client_id,
        peer,
    );
    let code = match outcome {
        PushOutcome::Accepted => 0,
        PushOutcome::Refused(code, message) => {
            tracing::debug!(id = %request.client_instance_id, code, %message, "PushTelemetry refused");
            code
        }
    };
    ResponseKind::PushTelemetry(PushTelemetryResponse::default().with_error_code(code))
}
