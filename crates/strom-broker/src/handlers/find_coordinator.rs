//! FindCoordinator, served as "no coordinator yet": every key answers
//! COORDINATOR_NOT_AVAILABLE (retriable), since this broker has no group or transaction
//! coordinator. It is advertised anyway because librdkafka enables LZ4 only for brokers
//! that list FindCoordinator (its LZ4 feature depends on it); without it, LZ4 batches are
//! sent uncompressed. Replace this with the group coordinator's handler when it lands.

use strom_protocol::messages::find_coordinator_response::Coordinator;
use strom_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, ResponseKind,
};
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::server::BrokerContext;

/// The first version that batches keys (KIP-699).
const BATCHED_MIN_VERSION: i16 = 4;
/// The first version with an error message.
const MESSAGE_MIN_VERSION: i16 = 1;
const MESSAGE: &str = "no coordinator on this broker yet";

pub(super) async fn handle(
    _context: &BrokerContext,
    request: FindCoordinatorRequest,
    version: i16,
) -> ResponseKind {
    let code = ErrorCode::COORDINATOR_NOT_AVAILABLE.code();
    let response = if version >= BATCHED_MIN_VERSION {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(-1))
                    .with_host(str_bytes(""))
                    .with_port(-1)
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(MESSAGE)))
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let response = FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_node_id(BrokerId(-1))
            .with_host(str_bytes(""))
            .with_port(-1);
        if version >= MESSAGE_MIN_VERSION {
            response.with_error_message(Some(str_bytes(MESSAGE)))
        } else {
            response
        }
    };
    ResponseKind::FindCoordinator(response)
}
