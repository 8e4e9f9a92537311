//! ListTransactions: the transactions of every `__transaction_state` partition this broker
//! coordinates, filtered by state, producer id, (v1, KIP-994) minimum duration of an
//! Ongoing transaction and (v2, KIP-1152) a regular expression the whole transactional id
//! must match (empty or null: no filter; one that does not compile is
//! INVALID_REGULAR_EXPRESSION with nothing listed). Kafka compiles it with RE2/J; Strom's
//! `regex-lite` has the same syntax for what both accept (no look-around, no
//! backreferences) and is linear in the id's length, so no pattern can make a listing slow.
//! Unknown state names are listed back as Kafka does.

use strom_protocol::messages::list_transactions_response::TransactionState;
use strom_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, ResponseKind, TransactionalId,
};
use strom_protocol::ErrorCode;
use strom_txn::ListFilter;

use super::str_bytes;
use crate::server::BrokerContext;

/// The largest compiled pattern (bytes of regex-lite's program): a pattern past it is
/// refused as one that does not compile, so no request grows memory by naming one.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

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
    let pattern = match request
        .transactional_id_pattern
        .as_ref()
        .filter(|p| !p.is_empty())
        .map(|p| {
            regex_lite::RegexBuilder::new(&format!("^(?:{})$", p.as_str()))
                .size_limit(PATTERN_SIZE_LIMIT)
                .build()
        })
        .transpose()
    {
        Ok(pattern) => pattern,
        Err(_) => {
            return ResponseKind::ListTransactions(
                ListTransactionsResponse::default()
                    .with_error_code(ErrorCode::INVALID_REGULAR_EXPRESSION.code()),
            )
        }
    };
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
                .filter(|(id, _, _)| pattern.as_ref().is_none_or(|p| p.is_match(id)))
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
