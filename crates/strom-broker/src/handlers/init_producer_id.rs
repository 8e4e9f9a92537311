//! InitProducerId. For idempotent producers: a fresh producer id with epoch 0 on every call,
//! as Kafka's coordinator does when there is no transactional id. With a transactional id:
//! the transaction coordinator of the id's `__transaction_state` partition (`txns.rs`) bumps
//! its epoch (fencing older producers), aborting an ongoing transaction first (the client
//! retries on CONCURRENT_TRANSACTIONS), and honours KIP-360's producer id and epoch.
//! Ids come from blocks the controller allocates (AllocateProducerIds), so they never repeat
//! across restarts; the transactional path allocates one up front, which the coordinator
//! takes only when the id needs a new producer id.

use strom_meta::{ControllerReply, ControllerRequest};
use strom_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};
use strom_protocol::ErrorCode;

use crate::server::BrokerContext;

pub(super) async fn handle(
    context: &BrokerContext,
    request: InitProducerIdRequest,
    version: i16,
) -> ResponseKind {
    let response = if let Some(transactional_id) = &request.transactional_id {
        transactional(context, transactional_id.0.to_string(), &request, version).await
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

/// The first version that knows PRODUCER_FENCED (older ones get INVALID_PRODUCER_EPOCH).
const PRODUCER_FENCED_MIN_VERSION: i16 = 4;

async fn transactional(
    context: &BrokerContext,
    transactional_id: String,
    request: &InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    if transactional_id.is_empty() {
        return failed(ErrorCode::INVALID_REQUEST);
    }
    let expected = (request.producer_id.0 >= 0 || request.producer_epoch >= 0)
        .then_some((request.producer_id.0, request.producer_epoch));
    // A new id is needed only for a new transactional id or an exhausted epoch; one is
    // allocated up front and unused ones are simply skipped (ids are plentiful).
    let fresh_producer_id = next_producer_id(context).await.ok();
    let command = crate::txns::TxnCommand::InitProducerId {
        transactional_id: transactional_id.clone(),
        timeout_ms: request.transaction_timeout_ms,
        expected,
        fresh_producer_id,
    };
    match super::txn_call(context, &transactional_id, command).await {
        crate::txns::TxnResponse::InitProducerId(result) if result.error.code() == 0 => {
            InitProducerIdResponse::default()
                .with_producer_id(ProducerId(result.producer_id))
                .with_producer_epoch(result.producer_epoch)
        }
        other => failed(ErrorCode(super::txn_error(
            other.error(),
            version,
            PRODUCER_FENCED_MIN_VERSION,
        ))),
    }
}

fn failed(code: ErrorCode) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// The next id of the current block, fetching a new block from the controller when it is
/// used up. The lock is held across the controller call so that one block serves everyone.
pub(super) async fn next_producer_id(context: &BrokerContext) -> Result<i64, ErrorCode> {
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
