//! InitProducerId for idempotent producers: a fresh producer id with epoch 0 on every call,
//! as Kafka's coordinator does when there is no transactional id. Ids come from blocks the
//! controller allocates (AllocateProducerIds), so they never repeat across restarts.
//! Transactional ids are refused as FindCoordinator(TRANSACTION) is (`TRANSACTIONS_REFUSED`):
//! transactions are not served, and the clients treat that code as fatal.

use strom_meta::{ControllerReply, ControllerRequest};
use strom_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};
use strom_protocol::ErrorCode;

use crate::server::BrokerContext;

pub(super) async fn handle(
    context: &BrokerContext,
    request: InitProducerIdRequest,
    _version: i16,
) -> ResponseKind {
    let response = if request.transactional_id.is_some() {
        failed(super::TRANSACTIONS_REFUSED.0)
    } else {
        match next_producer_id(context).await {
            Ok(id) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0),
            Err(code) => failed(code),
        }
    };
    ResponseKind::InitProducerId(response)
}

fn failed(code: ErrorCode) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// The next id of the current block, fetching a new block from the controller when it is
/// used up. The lock is held across the controller call so that one block serves everyone.
async fn next_producer_id(context: &BrokerContext) -> Result<i64, ErrorCode> {
    let mut block = context.producer_ids.lock().await;
    if block.next >= block.end {
        let request = ControllerRequest::AllocateProducerIds {
            broker_id: context.config.node_id,
            broker_epoch: context
                .broker_epoch
                .load(std::sync::atomic::Ordering::Acquire),
        };
        match context.metadata.submit(request).await {
            Ok(ControllerReply::AllocateProducerIds {
                producer_id_start,
                producer_id_len,
            }) => {
                block.next = producer_id_start;
                block.end = producer_id_start.saturating_add(i64::from(producer_id_len));
            }
            Ok(_) | Err(_) => return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
        }
    }
    let id = block.next;
    block.next = block.next.saturating_add(1);
    Ok(id)
}
