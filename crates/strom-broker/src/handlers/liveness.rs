//! Which replicas are online, as Kafka's metadata cache reports them: a replica is offline
//! when its broker is not registered, is fenced, or has no endpoint on the listener the
//! request came in on. Metadata and DescribeTopicPartitions share these.

use strom_meta::MetadataImage;

/// Whether `broker_id`'s replicas count as online for clients of `listener`.
pub(super) fn is_online(image: &MetadataImage, broker_id: i32, listener: &str) -> bool {
    image
        .broker(broker_id)
        .is_some_and(|b| !b.fenced && b.endpoints.iter().any(|e| e.listener_name == listener))
}

/// The replicas of `replicas` that are offline, in replica order.
pub(super) fn offline(image: &MetadataImage, replicas: &[i32], listener: &str) -> Vec<i32> {
    replicas
        .iter()
        .copied()
        .filter(|b| !is_online(image, *b, listener))
        .collect()
}

/// Whether the leader can be named to clients of `listener`: registered with an endpoint
/// there (Kafka's `getAliveEndpoint` does not look at fencing; a fenced broker leads nothing).
pub(super) fn leader_reachable(image: &MetadataImage, leader: i32, listener: &str) -> bool {
    image
        .broker(leader)
        .is_some_and(|b| b.endpoints.iter().any(|e| e.listener_name == listener))
}
