//! DescribeProducers (`kafka-transactions.sh describe-producers` and `find-hanging`): per
//! partition this broker leads, every producer whose state it keeps, with Kafka's fields
//! (epoch, last sequence, last timestamp, coordinator epoch of its last marker, first
//! offset of its open transaction or -1). A partition led elsewhere is
//! NOT_LEADER_OR_FOLLOWER, an unknown one UNKNOWN_TOPIC_OR_PARTITION.

use strom_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use strom_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ResponseKind};

use super::resolve_leader;
use crate::server::BrokerContext;

pub(super) async fn handle(
    context: &BrokerContext,
    request: DescribeProducersRequest,
) -> ResponseKind {
    let image = context.metadata.image();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|index| {
                    let response = PartitionResponse::default().with_partition_index(*index);
                    match resolve_leader(context, &image, topic.name.0.as_str(), *index) {
                        Err(code) => response.with_error_code(code.code()),
                        Ok((partition, _)) => response.with_active_producers(
                            partition
                                .producer_views()
                                .into_iter()
                                .map(|p| {
                                    ProducerState::default()
                                        .with_producer_id(p.producer_id.into())
                                        .with_producer_epoch(i32::from(p.producer_epoch))
                                        .with_last_sequence(p.last_sequence)
                                        .with_last_timestamp(p.last_timestamp)
                                        .with_coordinator_epoch(p.coordinator_epoch)
                                        .with_current_txn_start_offset(p.current_txn_start_offset)
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ResponseKind::DescribeProducers(DescribeProducersResponse::default().with_topics(topics))
}
