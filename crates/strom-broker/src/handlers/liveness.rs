//! Which replicas are online, as Kafka's metadata cache reports them: a replica is offline
//! when its broker is not registered, is fenced, or has no endpoint on the listener the
//! request came in on, or when its broker reported it offline (its log damaged or failed;
//! Kafka's replica in an offline log directory). Metadata and DescribeTopicPartitions share
//! these.

use strom_meta::{MetadataImage, TopicIdPartition};

/// Whether `broker_id`'s replicas count as online for clients of `listener`.
pub(super) fn is_online(image: &MetadataImage, broker_id: i32, listener: &str) -> bool {
    image
        .broker(broker_id)
        .is_some_and(|b| !b.fenced && b.endpoints.iter().any(|e| e.listener_name == listener))
}

/// The replicas of `replicas` (those of `tp`) that are offline, in replica order.
pub(super) fn offline(
    image: &MetadataImage,
    tp: TopicIdPartition,
    replicas: &[i32],
    listener: &str,
) -> Vec<i32> {
    replicas
        .iter()
        .copied()
        .filter(|b| !is_online(image, *b, listener) || image.is_replica_offline(*b, tp))
        .collect()
}

/// Whether the leader can be named to clients of `listener`: registered with an endpoint
/// there (Kafka's `getAliveEndpoint` does not look at fencing; a fenced broker leads nothing).
pub(super) fn leader_reachable(image: &MetadataImage, leader: i32, listener: &str) -> bool {
    image
        .broker(leader)
        .is_some_and(|b| b.endpoints.iter().any(|e| e.listener_name == listener))
}
