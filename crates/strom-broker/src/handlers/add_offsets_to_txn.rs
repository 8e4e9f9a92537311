//! AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the producer's
//! transaction, so that the transaction's markers reach the offsets TxnOffsetCommit stages
//! there (the producer then sends TxnOffsetCommit to the group coordinator).
//! `acl` adds the GROUP READ check here (GROUP_AUTHORIZATION_FAILED).

use strom_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ResponseKind};
use strom_protocol::ErrorCode;
use strom_txn::TopicPartition;

use crate::server::BrokerContext;
use crate::txns::TxnCommand;

/// The first version that knows PRODUCER_FENCED.
const PRODUCER_FENCED_MIN_VERSION: i16 = 2;

pub(super) async fn handle(
    context: &BrokerContext,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> ResponseKind {
    let code = if request.group_id.0.is_empty() {
        ErrorCode::INVALID_GROUP_ID.code()
    } else if !crate::groups::ensure_offsets_topic(context).await {
        ErrorCode::COORDINATOR_NOT_AVAILABLE.code()
    } else {
        let image = context.metadata.image();
        let partition = crate::groups::partition_for(&image, &request.group_id.0);
        let command = TxnCommand::AddPartitions {
            transactional_id: request.transactional_id.0.to_string(),
            producer_id: request.producer_id.0,
            producer_epoch: request.producer_epoch,
            partitions: vec![TopicPartition::new(
                crate::groups::OFFSETS_TOPIC.to_string(),
                partition,
            )],
            // AddOffsetsToTxn comes from version 1 clients (a version 2 client's
            // TxnOffsetCommit v5 adds the partition itself).
            client_tv: strom_txn::TV0,
        };
        let response = super::txn_call(context, &request.transactional_id.0, command).await;
        super::txn_error(response.error(), version, PRODUCER_FENCED_MIN_VERSION)
    };
    ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(code))
}
