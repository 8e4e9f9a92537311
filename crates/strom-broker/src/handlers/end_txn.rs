//! EndTxn: the coordinator writes PrepareCommit or PrepareAbort and answers once it is
//! committed; the markers follow in the background (`txns.rs`), and the client's next
//! InitProducerId/AddPartitionsToTxn waits (CONCURRENT_TRANSACTIONS) until they are written.

use strom_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId, ResponseKind};

use crate::server::BrokerContext;
use crate::txns::{TxnCommand, TxnResponse};

/// The first version that knows PRODUCER_FENCED.
const PRODUCER_FENCED_MIN_VERSION: i16 = 2;

pub(super) async fn handle(
    context: &BrokerContext,
    request: EndTxnRequest,
    version: i16,
) -> ResponseKind {
    let command = TxnCommand::EndTxn {
        transactional_id: request.transactional_id.0.to_string(),
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        commit: request.committed,
    };
    let response = super::txn_call(context, &request.transactional_id.0, command).await;
    let (producer_id, producer_epoch) = match &response {
        TxnResponse::EndTxn(r) => (r.producer_id, r.producer_epoch),
        _ => (request.producer_id.0, request.producer_epoch),
    };
    let code = super::txn_error(response.error(), version, PRODUCER_FENCED_MIN_VERSION);
    // v5+ carries the producer id and epoch (KIP-890 part 2); without transaction version 2
    // they are the producer's own.
    ResponseKind::EndTxn(
        EndTxnResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch),
    )
}
