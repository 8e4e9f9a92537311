//! Transaction markers as the coordinator sends them to other brokers: a WriteTxnMarkers
//! request to each partition's leader ([`send_to_leader`]; the partitions this broker leads
//! go through [`crate::txn_markers::write_txn_markers`]), and a partition leader's KIP-890
//! verification request to a coordinator on another broker ([`verify_remote`]).

use strom_meta::MetadataImage;
use strom_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use strom_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use strom_protocol::messages::{
    AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use strom_protocol::{ErrorCode, StrBytes};
use strom_txn::TopicPartition;

use crate::peer::PeerConnection;
use crate::server::BrokerContext;
use crate::txn_markers::TxnMarker;

/// How long one request to another broker may take.
const PEER_TIMEOUT_MS: u64 = 30_000;
/// The largest response frame accepted from another broker.
const PEER_FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;
/// WriteTxnMarkers and AddPartitionsToTxn versions this broker sends. WriteTxnMarkers v2
/// (KIP-1228) carries the marker's transaction version; a leader whose ApiVersions stop at
/// v1 gets v1 without it and checks the epoch by the legacy rule (not older), which every
/// version 2 marker passes too, as Kafka's coordinator does with such a peer.
const WRITE_TXN_MARKERS_VERSION: i16 = 2;
const VERIFY_VERSION: i16 = 4;

/// The address of `broker`'s inter-broker listener in `image`.
pub(crate) fn peer_addr(
    context: &BrokerContext,
    image: &MetadataImage,
    broker: i32,
) -> Option<String> {
    let endpoint = image.broker(broker).filter(|b| !b.fenced).and_then(|b| {
        b.endpoints
            .iter()
            .find(|e| e.listener_name == context.config.inter_broker_listener_name)
    })?;
    Some(if endpoint.host.contains(':') {
        format!("[{}]:{}", endpoint.host, endpoint.port)
    } else {
        format!("{}:{}", endpoint.host, endpoint.port)
    })
}

async fn connect(
    context: &BrokerContext,
    image: &MetadataImage,
    broker: i32,
) -> Result<PeerConnection, String> {
    let addr = peer_addr(context, image, broker)
        .ok_or_else(|| format!("broker {broker} has no live inter-broker endpoint"))?;
    let client_id = format!("strom-txn-coordinator-{}", context.config.node_id);
    PeerConnection::connect(
        &addr,
        client_id,
        PEER_TIMEOUT_MS,
        PEER_FRAME_BYTES_MAX,
        &context.config.listeners.inter_broker_client,
    )
    .await
    .map_err(|e| e.to_string())
}

/// Sends the marker to `leader` as one WriteTxnMarkers request; per partition its answer,
/// or NOT_LEADER_OR_FOLLOWER (retried) when the leader cannot be reached.
pub async fn send_to_leader(
    context: &BrokerContext,
    image: &MetadataImage,
    leader: i32,
    marker: &TxnMarker,
) -> Vec<(TopicPartition, ErrorCode)> {
    let failed = |marker: &TxnMarker| {
        marker
            .partitions
            .iter()
            .map(|tp| (tp.clone(), ErrorCode::NOT_LEADER_OR_FOLLOWER))
            .collect::<Vec<_>>()
    };
    let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
    for tp in &marker.partitions {
        match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
            Some(topic) => topic.partition_indexes.push(tp.partition),
            None => topics.push(
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partition_indexes(vec![tp.partition]),
            ),
        }
    }
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.producer_id))
            .with_producer_epoch(marker.producer_epoch)
            .with_transaction_result(marker.commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_transaction_version(wire_transaction_version(marker.transaction_version))
            .with_topics(topics)]);
    let mut connection = match connect(context, image, leader).await {
        Ok(c) => c,
        Err(reason) => {
            tracing::debug!(leader, %reason, "cannot reach a partition leader for markers");
            return failed(marker);
        }
    };
    let version = match connection.version_of::<WriteTxnMarkersRequest>(WRITE_TXN_MARKERS_VERSION) {
        Ok(v) => v,
        Err(error) => {
            tracing::warn!(leader, %error, "the leader does not serve WriteTxnMarkers");
            return failed(marker);
        }
    };
    let response = match connection.send(&request, version, PEER_TIMEOUT_MS).await {
        Ok(r) => r,
        Err(error) => {
            tracing::debug!(leader, %error, "WriteTxnMarkers failed");
            return failed(marker);
        }
    };
    let mut results = Vec::new();
    for result in response.markers {
        for topic in result.topics {
            for p in topic.partitions {
                results.push((
                    TopicPartition::new(topic.name.0.to_string(), p.partition_index),
                    ErrorCode(p.error_code),
                ));
            }
        }
    }
    // A partition the answer left out is retried.
    for tp in &marker.partitions {
        if !results.iter().any(|(r, _)| r == tp) {
            results.push((tp.clone(), ErrorCode::NOT_LEADER_OR_FOLLOWER));
        }
    }
    results
}

/// The wire's int8 `TransactionVersion` of a marker (Kafka's levels are 0-2).
fn wire_transaction_version(transaction_version: i16) -> i8 {
    i8::try_from(transaction_version).unwrap_or(i8::MAX)
}

/// KIP-890 against a coordinator on another broker: AddPartitionsToTxn v4 with
/// `verify_only` (part 1), or without it to add the partition (part 2, a transaction
/// version 2 producer's implicit addition); the partition's error code (or the
/// transaction's), or COORDINATOR_NOT_AVAILABLE when it cannot be asked.
#[allow(clippy::too_many_arguments)]
pub async fn verify_remote(
    context: &BrokerContext,
    image: &MetadataImage,
    coordinator: i32,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    tp: &TopicPartition,
    verify_only: bool,
) -> i16 {
    let unavailable = ErrorCode::COORDINATOR_NOT_AVAILABLE.code();
    if coordinator < 0 {
        return unavailable;
    }
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            )))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_verify_only(verify_only)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                .with_partitions(vec![tp.partition])]),
    ]);
    let Ok(mut connection) = connect(context, image, coordinator).await else {
        return unavailable;
    };
    let Ok(version) = connection.version_of::<AddPartitionsToTxnRequest>(VERIFY_VERSION) else {
        return unavailable;
    };
    if version < VERIFY_VERSION {
        return unavailable;
    }
    let Ok(response) = connection.send(&request, version, PEER_TIMEOUT_MS).await else {
        return unavailable;
    };
    if response.error_code != 0 {
        return response.error_code;
    }
    response
        .results_by_transaction
        .iter()
        .flat_map(|t| &t.topic_results)
        .filter(|t| t.name.0.as_str() == tp.topic)
        .flat_map(|t| &t.results_by_partition)
        .find(|p| p.partition_index == tp.partition)
        .map_or(ErrorCode::TRANSACTION_ABORTABLE.code(), |p| {
            p.partition_error_code
        })
}
