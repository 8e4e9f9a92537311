//! The topics of a `ConsumerProtocolSubscription` (the JoinGroup metadata of protocol type
//! "consumer"), which OffsetDelete and offset expiry need to know what a group consumes.

use std::collections::BTreeSet;

use crate::group::Group;

/// Kafka's `ConsumerProtocol.PROTOCOL_TYPE`.
pub(crate) const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The topic names of one subscription, or `None` when the bytes do not parse. Every
/// version (0-3) starts with `version: int16, topics: [string]` and is not flexible, so the
/// fields after the topics are not read.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut rest = metadata;
    let version = take_i16(&mut rest)?;
    if version < 0 {
        return None;
    }
    let count = usize::try_from(take_i32(&mut rest)?).ok()?;
    // Each topic takes at least its two length bytes: a larger count cannot be honest.
    if count > rest.len() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::try_from(take_i16(&mut rest)?).ok()?;
        let name = rest.get(..len)?;
        topics.push(String::from_utf8(name.to_vec()).ok()?);
        rest = rest.get(len..)?;
    }
    Some(topics)
}

fn take_i16(rest: &mut &[u8]) -> Option<i16> {
    let bytes: [u8; 2] = rest.get(..2)?.try_into().ok()?;
    *rest = rest.get(2..)?;
    Some(i16::from_be_bytes(bytes))
}

fn take_i32(rest: &mut &[u8]) -> Option<i32> {
    let bytes: [u8; 4] = rest.get(..4)?.try_into().ok()?;
    *rest = rest.get(4..)?;
    Some(i32::from_be_bytes(bytes))
}

/// Kafka's `ClassicGroup.subscribedTopics`: the union of the members' subscriptions for the
/// chosen protocol, known only for protocol type "consumer" when every member's metadata
/// parses. An empty group subscribes to nothing.
pub(crate) fn group_subscriptions(group: &Group) -> Option<BTreeSet<String>> {
    if group.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
        return None;
    }
    let mut topics = BTreeSet::new();
    if group.members.is_empty() {
        return Some(topics);
    }
    let protocol = group.protocol_name.as_deref()?;
    for member in group.members.values() {
        topics.extend(subscribed_topics(&member.metadata_for(protocol))?);
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(version: i16, topics: &[&str]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for t in topics {
            b.extend_from_slice(&(t.len() as i16).to_be_bytes());
            b.extend_from_slice(t.as_bytes());
        }
        // user data (null) and, from v1, owned partitions: ignored.
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b
    }

    #[test]
    fn decodes_topics_of_every_version() {
        for version in 0..=3 {
            let bytes = subscription(version, &["a", "bb"]);
            assert_eq!(
                subscribed_topics(&bytes),
                Some(vec!["a".to_string(), "bb".to_string()])
            );
        }
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(subscribed_topics(&[]), None);
        assert_eq!(subscribed_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None);
        assert_eq!(subscribed_topics(&[0, 0, 0, 0, 0, 1, 0, 5, b'a']), None);
        assert_eq!(subscribed_topics(&[0xff, 0xff, 0, 0, 0, 0]), None);
    }
}
