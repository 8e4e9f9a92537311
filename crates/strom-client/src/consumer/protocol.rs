//! Kafka's ConsumerProtocol: the subscription a member sends in JoinGroup metadata and the
//! assignment the leader hands out in SyncGroup, each a 2-byte version then the struct.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Decodable, Encodable, Message};

use crate::cluster::{str_bytes, topic_name};
use crate::error::{ClientError, Result};
use crate::types::TopicPartition;

/// A member's subscription as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    pub topics: Vec<String>,
    pub owned_partitions: Vec<TopicPartition>,
    pub generation_id: i32,
    pub rack_id: Option<String>,
    /// The assignor's own bytes (a Streams member's tasks and host, for example).
    pub user_data: Option<Bytes>,
}

/// Encodes a subscription at the newest version (as Kafka's Java consumer does).
pub fn encode_subscription(sub: &Subscription) -> Result<Bytes> {
    let version = ConsumerProtocolSubscription::VERSIONS.max;
    let message = ConsumerProtocolSubscription::default()
        .with_topics(sub.topics.iter().map(|t| str_bytes(t)).collect())
        .with_owned_partitions(group_by_topic(&sub.owned_partitions, |t, ps| {
            OwnedTopic::default()
                .with_topic(topic_name(t))
                .with_partitions(ps)
        }))
        .with_generation_id(sub.generation_id)
        .with_rack_id(sub.rack_id.as_deref().map(str_bytes))
        .with_user_data(sub.user_data.clone());
    encode_versioned(&message, version)
}

/// Decodes a subscription; versions newer than known decode as the newest known (their
/// extra fields are ignored), as Kafka's `ConsumerProtocol` does.
pub fn decode_subscription(bytes: &Bytes) -> Result<Subscription> {
    let (version, mut body) = split_version(bytes, ConsumerProtocolSubscription::VERSIONS.max)?;
    let m = ConsumerProtocolSubscription::decode(&mut body, version)
        .map_err(|e| ClientError::Protocol(format!("consumer subscription: {e}")))?;
    Ok(Subscription {
        topics: m.topics.iter().map(|t| t.to_string()).collect(),
        owned_partitions: m
            .owned_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| TopicPartition::new(t.topic.0.to_string(), *p))
            })
            .collect(),
        generation_id: m.generation_id,
        rack_id: m.rack_id.map(|r| r.to_string()),
        user_data: m.user_data,
    })
}

/// Encodes an assignment at the newest version.
pub fn encode_assignment(partitions: &[TopicPartition]) -> Result<Bytes> {
    encode_assignment_with(partitions, None)
}

/// Encodes an assignment with the assignor's user data at the newest version.
pub fn encode_assignment_with(
    partitions: &[TopicPartition],
    user_data: Option<Bytes>,
) -> Result<Bytes> {
    let version = ConsumerProtocolAssignment::VERSIONS.max;
    let message = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(group_by_topic(partitions, |t, ps| {
            AssignedTopic::default()
                .with_topic(topic_name(t))
                .with_partitions(ps)
        }))
        .with_user_data(user_data);
    encode_versioned(&message, version)
}

/// Decodes an assignment (empty bytes: nothing assigned).
pub fn decode_assignment(bytes: &Bytes) -> Result<Vec<TopicPartition>> {
    Ok(decode_assignment_with(bytes)?.0)
}

/// Decodes an assignment and its user data (empty bytes: nothing assigned, no data).
pub fn decode_assignment_with(bytes: &Bytes) -> Result<(Vec<TopicPartition>, Option<Bytes>)> {
    if bytes.is_empty() {
        return Ok((Vec::new(), None));
    }
    let (version, mut body) = split_version(bytes, ConsumerProtocolAssignment::VERSIONS.max)?;
    let m = ConsumerProtocolAssignment::decode(&mut body, version)
        .map_err(|e| ClientError::Protocol(format!("consumer assignment: {e}")))?;
    let partitions = m
        .assigned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(t.topic.0.to_string(), *p))
        })
        .collect();
    Ok((partitions, m.user_data))
}

fn encode_versioned<M: Encodable>(message: &M, version: i16) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message
        .encode(&mut buf, version)
        .map_err(|e| ClientError::Protocol(format!("encode consumer protocol: {e}")))?;
    Ok(buf.freeze())
}

fn split_version(bytes: &Bytes, max_known: i16) -> Result<(i16, Bytes)> {
    let mut body = bytes.clone();
    if body.remaining() < 2 {
        return Err(ClientError::Protocol(
            "consumer protocol: no version".into(),
        ));
    }
    let version = body.get_i16();
    if version < 0 {
        return Err(ClientError::Protocol(format!(
            "consumer protocol: version {version}"
        )));
    }
    Ok((version.min(max_known), body))
}

fn group_by_topic<T>(partitions: &[TopicPartition], make: impl Fn(&str, Vec<i32>) -> T) -> Vec<T> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    by_topic.into_iter().map(|(t, ps)| make(t, ps)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_round_trips_and_matches_kafka_v0_bytes() {
        let sub = Subscription {
            topics: vec!["a".into(), "bb".into()],
            owned_partitions: vec![TopicPartition::new("a", 1)],
            generation_id: 4,
            rack_id: Some("r1".into()),
            user_data: Some(Bytes::from_static(b"tasks")),
        };
        let bytes = encode_subscription(&sub).unwrap();
        assert_eq!(&bytes[..2], &[0, 3], "newest version first");
        assert_eq!(decode_subscription(&bytes).unwrap(), sub);

        // A v0 subscription as Kafka's Java client wrote it before KIP-429: version 0,
        // topics ["a"], user_data null.
        let v0 = Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b'a', 0xff, 0xff, 0xff, 0xff]);
        let decoded = decode_subscription(&v0).unwrap();
        assert_eq!(decoded.topics, vec!["a"]);
        assert!(decoded.owned_partitions.is_empty());
    }

    #[test]
    fn assignment_round_trips_and_reads_v0() {
        let parts = vec![
            TopicPartition::new("a", 0),
            TopicPartition::new("a", 2),
            TopicPartition::new("b", 1),
        ];
        let bytes = encode_assignment(&parts).unwrap();
        assert_eq!(decode_assignment(&bytes).unwrap(), parts);
        assert!(decode_assignment(&Bytes::new()).unwrap().is_empty());
        // v0: [topic "t" -> partitions [0, 1]], user_data null.
        let v0 = Bytes::from_static(&[
            0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff,
            0xff,
        ]);
        assert_eq!(
            decode_assignment(&v0).unwrap(),
            vec![TopicPartition::new("t", 0), TopicPartition::new("t", 1)]
        );
        assert!(decode_assignment(&Bytes::from_static(&[0])).is_err());

        let with_data = encode_assignment_with(&parts, Some(Bytes::from_static(b"ud"))).unwrap();
        let (decoded, data) = decode_assignment_with(&with_data).unwrap();
        assert_eq!(decoded, parts);
        assert_eq!(data.as_deref(), Some(&b"ud"[..]));
        assert_eq!(decode_assignment_with(&with_data).unwrap().0, parts);
        assert_eq!(
            decode_assignment_with(&Bytes::new()).unwrap(),
            (Vec::new(), None)
        );
    }
}
