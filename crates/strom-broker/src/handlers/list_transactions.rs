//! ListTransactions: the transactions of every `__transaction_state` partition this broker
//! coordinates, filtered by state, producer id and (v1, KIP-994) minimum duration; unknown
//! state names are listed back as Kafka does. (v2's transactional id pattern is not served:
//! the version table stops at v1.)

use strom_protocol::messages::list_transactions_response::TransactionState;
use strom_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, ResponseKind, TransactionalId,
};
use strom_protocol::ErrorCode;
use strom_txn::ListFilter;

use super::str_bytes;
use crate::server::BrokerContext;

/// Every state name Kafka's filter knows.
const STATES: &[&str] = &[
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

pub(super) async fn handle(
    context: &BrokerContext,
    request: ListTransactionsRequest,
) -> ResponseKind {
    let unknown: Vec<_> = request
        .state_filters
        .iter()
        .filter(|s| !STATES.contains(&s.as_str()))
        .cloned()
        .collect();
    let filter = ListFilter {
        states: request
            .state_filters
            .iter()
            .map(|s| s.to_string())
            .collect(),
        producer_ids: request.producer_id_filters.iter().map(|p| p.0).collect(),
        min_duration_ms: request.duration_filter,
    };
    let response = match context.txns.list(filter).await {
        Some(listed) => ListTransactionsResponse::default().with_transaction_states(
            listed
                .into_iter()
                .map(|(id, producer_id, state)| {
                    TransactionState::default()
                        .with_transactional_id(TransactionalId(str_bytes(id)))
                        .with_producer_id(ProducerId(producer_id))
                        .with_transaction_state(str_bytes(state.name()))
                })
                .collect(),
        ),
        None => ListTransactionsResponse::default()
            .with_error_code(ErrorCode::COORDINATOR_NOT_AVAILABLE.code()),
    };
    ResponseKind::ListTransactions(response.with_unknown_state_filters(unknown))
}
