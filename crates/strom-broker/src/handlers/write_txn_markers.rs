//! WriteTxnMarkers (broker side): the transaction coordinator asks this broker to write
//! COMMIT/ABORT markers on the partitions it leads. Each marker goes through
//! [`crate::txn_markers::write_txn_markers`] (appended as leader after Kafka's epoch checks,
//! then waited for as `acks=all`); a partition led elsewhere is NOT_LEADER_OR_FOLLOWER, an
//! unknown one UNKNOWN_TOPIC_OR_PARTITION. Markers are handled in request order. Version 2
//! (KIP-1228) names each marker's transaction version, which decides how its producer epoch
//! is checked (at 2: strictly newer than the partition's, unless it is the retry of a
//! marker already written; below 2 and in v1 requests, whose field reads as 0: not older).

use strom_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use strom_protocol::messages::{ResponseKind, WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use strom_txn::TopicPartition;

use super::topic_name;
use crate::server::BrokerContext;
use crate::txn_markers::{write_txn_markers, TxnMarker, MARKER_TIMEOUT};

pub(super) async fn handle(
    context: &BrokerContext,
    request: WriteTxnMarkersRequest,
) -> ResponseKind {
    let mut markers = Vec::with_capacity(request.markers.len());
    for wire in &request.markers {
        let marker = TxnMarker {
            producer_id: wire.producer_id.0,
            producer_epoch: wire.producer_epoch,
            commit: wire.transaction_result,
            coordinator_epoch: wire.coordinator_epoch,
            // Decoded as Kafka's default, 0, from a v1 request.
            transaction_version: i16::from(wire.transaction_version),
            partitions: wire
                .topics
                .iter()
                .flat_map(|t| {
                    t.partition_indexes
                        .iter()
                        .map(move |p| TopicPartition::new(t.name.0.to_string(), *p))
                })
                .collect(),
        };
        let results = write_txn_markers(context, &marker, MARKER_TIMEOUT).await;
        // Answer per topic, in the request's order.
        let mut topics: Vec<WritableTxnMarkerTopicResult> = Vec::new();
        for result in results {
            let partition = WritableTxnMarkerPartitionResult::default()
                .with_partition_index(result.partition)
                .with_error_code(result.error.code());
            match topics.last_mut() {
                Some(topic) if topic.name.0.as_str() == result.topic => {
                    topic.partitions.push(partition);
                }
                _ => topics.push(
                    WritableTxnMarkerTopicResult::default()
                        .with_name(topic_name(result.topic))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(wire.producer_id)
                .with_topics(topics),
        );
    }
    ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default().with_markers(markers))
}
