//! Error shapes for producer-id and transaction APIs.

#[allow(clippy::wildcard_imports)]
use kafka_protocol::messages::*;

pub(super) fn init_producer_id(code: i16) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1)
}

/// From version 4 AddPartitionsToTxn batches transactions and reports a refused request by
/// its top-level error alone; before, every partition carries the error.
const ADD_PARTITIONS_TO_TXN_BATCH_VERSION: i16 = 4;

pub(super) fn add_partitions_to_txn(
    request: &AddPartitionsToTxnRequest,
    api_version: i16,
    code: i16,
) -> AddPartitionsToTxnResponse {
    if api_version >= ADD_PARTITIONS_TO_TXN_BATCH_VERSION {
        return AddPartitionsToTxnResponse::default().with_error_code(code);
    }
    let results = request
        .v3_and_below_topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition_index| {
                    add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*partition_index)
                        .with_partition_error_code(code)
                })
                .collect();
            add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(partitions)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

pub(super) fn end_txn(code: i16) -> EndTxnResponse {
    EndTxnResponse::default()
        .with_error_code(code)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1)
}

pub(super) fn txn_offset_commit(
    request: &TxnOffsetCommitRequest,
    code: i16,
) -> TxnOffsetCommitResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(code)
                })
                .collect();
            txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
