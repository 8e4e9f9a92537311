//! Small value types shared by the admin, producer and consumer APIs.

use std::fmt;

/// A topic and one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Which offset ListOffsets looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (high watermark).
    Latest,
    /// The first offset whose timestamp is at or after this time (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    /// The `timestamp` field of a ListOffsets request.
    pub fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ts) => ts,
        }
    }
}

/// A committed group offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    pub offset: i64,
    pub metadata: Option<String>,
    /// -1 when unknown.
    pub leader_epoch: i32,
}

impl OffsetAndMetadata {
    pub fn new(offset: i64) -> Self {
        OffsetAndMetadata {
            offset,
            metadata: None,
            leader_epoch: -1,
        }
    }
}

/// A group member's identity as `send_offsets_to_transaction` needs it (Java's
/// `ConsumerGroupMetadata`): the coordinator refuses offsets of a member that is no longer
/// in the current generation, which fences a zombie consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    pub group_id: String,
    /// -1 when the consumer is not a group member (assigned partitions only).
    pub generation_id: i32,
    /// Empty when the consumer is not a group member.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Metadata without a member (generation -1): offsets are committed to `group_id`
    /// without the generation check.
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// A Kafka-style random id (`Uuid.randomUuid().toString()`): 16 random bytes in URL-safe
/// base64 without padding, never one that starts with `-` (a command line would take it
/// for an option). Share consumers name themselves with one (KIP-932 member ids).
pub fn random_kafka_uuid() -> String {
    // Bounded: a leading '-' has probability 1/64 per draw.
    for _ in 0..64 {
        let text = kafka_uuid(uuid::Uuid::new_v4());
        if !text.starts_with('-') {
            return text;
        }
    }
    base64_url(&[0x55; 16])
}

/// A UUID as Kafka prints it (`Uuid.toString`: URL-safe base64 without padding).
pub fn kafka_uuid(id: uuid::Uuid) -> String {
    base64_url(id.as_bytes())
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}
