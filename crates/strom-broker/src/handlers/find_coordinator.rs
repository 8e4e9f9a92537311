//! FindCoordinator: every group's coordinator is this broker (the single node leads every
//! `__consumer_offsets` partition), so the answer is the advertised endpoint. The internal
//! topic is created on the first lookup, as Kafka does. Transaction keys answer
//! COORDINATOR_NOT_AVAILABLE (no transaction coordinator yet). v4+ batches keys (KIP-699).
//! Advertising FindCoordinator also makes librdkafka enable LZ4.

use strom_protocol::messages::find_coordinator_response::Coordinator;
use strom_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, ResponseKind,
};
use strom_protocol::{ErrorCode, StrBytes};

use super::str_bytes;
use crate::server::BrokerContext;

/// The first version that batches keys (KIP-699).
const BATCHED_MIN_VERSION: i16 = 4;
/// The first version with an error message.
const MESSAGE_MIN_VERSION: i16 = 1;
/// `key_type` of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;

/// One key's answer: this broker, or an error code and message.
struct Answer {
    error: Option<(ErrorCode, &'static str)>,
}

pub(super) async fn handle(
    context: &BrokerContext,
    request: FindCoordinatorRequest,
    version: i16,
) -> ResponseKind {
    let answer = if request.key_type != KEY_TYPE_GROUP {
        Answer {
            error: Some((
                ErrorCode::COORDINATOR_NOT_AVAILABLE,
                "no transaction coordinator on this broker yet",
            )),
        }
    } else if crate::groups::ensure_offsets_topic(context).await {
        Answer { error: None }
    } else {
        Answer {
            error: Some((
                ErrorCode::COORDINATOR_NOT_AVAILABLE,
                "the offsets topic is not available yet",
            )),
        }
    };
    let response = if version >= BATCHED_MIN_VERSION {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| coordinator(context, &answer, key))
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let (code, message, node, host, port) = fields(context, &answer);
        let response = FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_node_id(node)
            .with_host(host)
            .with_port(port);
        if version >= MESSAGE_MIN_VERSION {
            response.with_error_message(message)
        } else {
            response
        }
    };
    ResponseKind::FindCoordinator(response)
}

fn coordinator(context: &BrokerContext, answer: &Answer, key: StrBytes) -> Coordinator {
    // Kafka answers an empty group id with INVALID_REQUEST per key.
    if key.is_empty() && answer.error.is_none() {
        return Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(-1))
            .with_host(str_bytes(""))
            .with_port(-1)
            .with_error_code(ErrorCode::INVALID_REQUEST.code())
            .with_error_message(Some(str_bytes("empty group id")));
    }
    let (code, message, node, host, port) = fields(context, answer);
    Coordinator::default()
        .with_key(key)
        .with_node_id(node)
        .with_host(host)
        .with_port(port)
        .with_error_code(code)
        .with_error_message(message)
}

fn fields(
    context: &BrokerContext,
    answer: &Answer,
) -> (i16, Option<StrBytes>, BrokerId, StrBytes, i32) {
    match answer.error {
        Some((code, message)) => (
            code.code(),
            Some(str_bytes(message)),
            BrokerId(-1),
            str_bytes(""),
            -1,
        ),
        None => (
            0,
            None,
            BrokerId(context.config.node_id),
            str_bytes(context.advertised.host.clone()),
            i32::from(context.advertised.port),
        ),
    }
}
