//! EndTxn: the coordinator writes PrepareCommit or PrepareAbort and answers once it is
//! committed; the markers follow in the background (`txns.rs`), and the client's next
//! InitProducerId/AddPartitionsToTxn waits (CONCURRENT_TRANSACTIONS) until they are written.
//! v5+ is a transaction version 2 client (KIP-890 part 2; Kafka's
//! `transactionVersionForEndTxn`): every end bumps its epoch and the answer names the
//! producer id and epoch it continues with (a new producer id, epoch 0, when the epoch was
//! exhausted: one is allocated up front for an end at an exhausted epoch).

use strom_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId, ResponseKind};

use crate::server::BrokerContext;
use crate::txns::{TxnCommand, TxnResponse};

/// The first version that knows PRODUCER_FENCED.
const PRODUCER_FENCED_MIN_VERSION: i16 = 2;
/// The first version of transaction version 2 clients.
const TV2_MIN_VERSION: i16 = 5;

pub(super) async fn handle(
    context: &BrokerContext,
    request: EndTxnRequest,
    version: i16,
) -> ResponseKind {
    let tv2 = version >= TV2_MIN_VERSION;
    // An end at the last epoch moves the producer to a new id (Kafka's `isEpochExhausted`).
    let fresh_producer_id = if tv2 && request.producer_epoch >= i16::MAX - 1 {
        super::init_producer_id::next_producer_id(context)
            .await
            .ok()
    } else {
        None
    };
    let command = TxnCommand::EndTxn {
        transactional_id: request.transactional_id.0.to_string(),
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        commit: request.committed,
        client_tv: if tv2 { strom_txn::TV2 } else { strom_txn::TV0 },
        fresh_producer_id,
    };
    let response = super::txn_call(context, &request.transactional_id.0, command).await;
    let code = super::txn_error(response.error(), version, PRODUCER_FENCED_MIN_VERSION);
    // v5+ carries the producer id and epoch: the ones to continue with, or -1 on an error
    // (as Kafka answers). Older versions do not encode them.
    let (producer_id, producer_epoch) = match &response {
        TxnResponse::EndTxn(r) if code == 0 => (r.producer_id, r.producer_epoch),
        _ => (-1, -1),
    };
    ResponseKind::EndTxn(
        EndTxnResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch),
    )
}
