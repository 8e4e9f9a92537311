//! AddPartitionsToTxn. Versions 0-3 come from producers: one transaction whose partitions
//! join it (unknown partitions fail the request: UNKNOWN_TOPIC_OR_PARTITION for them,
//! OPERATION_NOT_ATTEMPTED for the rest, as Kafka answers). Versions 4+ batch transactions
//! and come from brokers: with `verify_only` (KIP-890 part 1) a partition leader asks whether
//! its partition is already in the ongoing transaction (INVALID_TXN_STATE when not); without
//! it the partitions are added as for a producer, at transaction version 2 (Kafka's
//! `transactionVersionForAddPartitionsToTxn`: v4+ means a version 2 client, whose Produce
//! v12+ or TxnOffsetCommit v5+ a broker adds implicitly).

use std::collections::HashMap;

use strom_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use strom_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use strom_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ResponseKind, TransactionalId,
};
use strom_protocol::ErrorCode;
use strom_txn::TopicPartition;

use super::topic_name;
use crate::server::BrokerContext;
use crate::txns::{TxnCommand, TxnResponse};

/// The first version that batches transactions (and comes from brokers).
const BATCHED_MIN_VERSION: i16 = 4;
/// The first version that knows PRODUCER_FENCED.
const PRODUCER_FENCED_MIN_VERSION: i16 = 2;

pub(super) async fn handle(
    context: &BrokerContext,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> ResponseKind {
    let response = if version >= BATCHED_MIN_VERSION {
        let mut results = Vec::with_capacity(request.transactions.len());
        for txn in request.transactions {
            let topic_results = one(
                context,
                &txn.transactional_id,
                txn.producer_id.0,
                txn.producer_epoch,
                txn.verify_only,
                &txn.topics,
                version,
            )
            .await;
            results.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(txn.transactional_id)
                    .with_topic_results(topic_results),
            );
        }
        AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
    } else {
        let topic_results = one(
            context,
            &request.v3_and_below_transactional_id,
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
            false,
            &request.v3_and_below_topics,
            version,
        )
        .await;
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topic_results)
    };
    ResponseKind::AddPartitionsToTxn(response)
}

async fn one(
    context: &BrokerContext,
    transactional_id: &TransactionalId,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    topics: &[AddPartitionsToTxnTopic],
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let partitions: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(t.name.0.to_string(), *p))
        })
        .collect();
    let image = context.metadata.image();
    let unknown: Vec<bool> = partitions
        .iter()
        .map(|tp| {
            image
                .topic_by_name(&tp.topic)
                .is_none_or(|t| !t.partitions.contains_key(&tp.partition))
        })
        .collect();
    let codes: Vec<i16> = if unknown.iter().any(|u| *u) {
        unknown
            .iter()
            .map(|u| {
                if *u {
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
                } else {
                    ErrorCode::OPERATION_NOT_ATTEMPTED.code()
                }
            })
            .collect()
    } else if transactional_id.0.is_empty() {
        vec![ErrorCode::INVALID_REQUEST.code(); partitions.len()]
    } else if verify_only {
        let command = TxnCommand::Verify {
            transactional_id: transactional_id.0.to_string(),
            producer_id,
            producer_epoch,
            partitions: partitions.clone(),
        };
        match super::txn_call(context, &transactional_id.0, command).await {
            // One answer per partition asked, in the order asked
            // (`Coordinator::verify_partitions`).
            TxnResponse::Verify(Ok(results)) => results.iter().map(|(_, e)| e.code()).collect(),
            other => vec![other.error().code(); partitions.len()],
        }
    } else {
        let command = TxnCommand::AddPartitions {
            transactional_id: transactional_id.0.to_string(),
            producer_id,
            producer_epoch,
            partitions: partitions.clone(),
            client_tv: if version >= BATCHED_MIN_VERSION {
                strom_txn::TV2
            } else {
                strom_txn::TV0
            },
        };
        let response = super::txn_call(context, &transactional_id.0, command).await;
        let code = super::txn_error(response.error(), version, PRODUCER_FENCED_MIN_VERSION);
        vec![code; partitions.len()]
    };
    // Results grouped by topic, in request order (a topic named twice is answered once).
    // The index keeps this linear in the request's size.
    let mut results: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    let mut slots: HashMap<&str, usize> = HashMap::new();
    for (tp, code) in partitions.iter().zip(codes) {
        let partition = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(tp.partition)
            .with_partition_error_code(code);
        match slots
            .get(tp.topic.as_str())
            .and_then(|&slot| results.get_mut(slot))
        {
            Some(topic) => topic.results_by_partition.push(partition),
            None => {
                slots.insert(&tp.topic, results.len());
                results.push(
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(topic_name(tp.topic.clone()))
                        .with_results_by_partition(vec![partition]),
                );
            }
        }
    }
    results
}
