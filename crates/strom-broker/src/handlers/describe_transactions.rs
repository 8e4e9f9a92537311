//! DescribeTransactions: each id's state from its coordinator (TRANSACTIONAL_ID_NOT_FOUND
//! for an unknown id, NOT_COORDINATOR when another broker coordinates it).
//! `acl` adds the TRANSACTIONAL_ID DESCRIBE check here.

use strom_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use strom_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, ResponseKind,
};

use super::{str_bytes, topic_name};
use crate::server::BrokerContext;
use crate::txns::{TxnCommand, TxnResponse};

pub(super) async fn handle(
    context: &BrokerContext,
    request: DescribeTransactionsRequest,
) -> ResponseKind {
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for id in request.transactional_ids {
        let command = TxnCommand::Describe {
            transactional_id: id.0.to_string(),
        };
        let state = match super::txn_call(context, &id.0, command).await {
            TxnResponse::Describe(Ok(d)) => {
                let mut topics: Vec<TopicData> = Vec::new();
                for tp in d.partitions {
                    match topics.iter_mut().find(|t| t.topic.0.as_str() == tp.topic) {
                        Some(t) => t.partitions.push(tp.partition),
                        None => topics.push(
                            TopicData::default()
                                .with_topic(topic_name(tp.topic))
                                .with_partitions(vec![tp.partition]),
                        ),
                    }
                }
                TransactionState::default()
                    .with_transaction_state(str_bytes(d.state.name()))
                    .with_transaction_timeout_ms(d.timeout_ms)
                    .with_transaction_start_time_ms(d.start_ms)
                    .with_producer_id(ProducerId(d.producer_id))
                    .with_producer_epoch(d.producer_epoch)
                    .with_topics(topics)
            }
            other => TransactionState::default()
                .with_error_code(other.error().code())
                .with_transaction_state(str_bytes(""))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1),
        };
        states.push(state.with_transactional_id(id));
    }
    ResponseKind::DescribeTransactions(
        DescribeTransactionsResponse::default().with_transaction_states(states),
    )
}
