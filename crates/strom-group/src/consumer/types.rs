//! Inputs and outputs of the KIP-848 coordinator: the topic view the broker passes in,
//! the commands mapped from ConsumerGroupHeartbeat / ConsumerGroupDescribe, their
//! responses, and the errors they answer with.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A topic id (Kafka's UUID) as its 16 bytes, so this crate needs no UUID library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TopicId(pub [u8; 16]);

/// Partitions per topic id: a member's assignment, ordered for deterministic output.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// One topic as the broker's metadata image knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: TopicId,
    pub name: String,
    pub partitions: i32,
}

/// The cluster's topics at the time of a command: the assignors need partition counts and
/// the responses need names for ids. Built by the broker from its metadata image; shared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topics {
    by_name: BTreeMap<String, TopicInfo>,
    names_by_id: BTreeMap<TopicId, String>,
}

impl Topics {
    pub fn new(topics: impl IntoIterator<Item = TopicInfo>) -> Self {
        let mut view = Topics::default();
        for t in topics {
            view.names_by_id.insert(t.id, t.name.clone());
            view.by_name.insert(t.name.clone(), t);
        }
        view
    }

    pub fn by_name(&self, name: &str) -> Option<&TopicInfo> {
        self.by_name.get(name)
    }

    pub fn name(&self, id: TopicId) -> Option<&str> {
        self.names_by_id.get(&id).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &TopicInfo> {
        self.by_name.values()
    }
}

/// Broker settings of KIP-848 groups (Kafka's `group.consumer.*` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// `group.consumer.session.timeout.ms`
    pub session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.max.size` (Kafka: unlimited; bounded here to bound memory).
    pub max_size: usize,
    /// `group.consumer.assignors`: the first is the default.
    pub assignors: Vec<String>,
    /// Mixed into coordinator-generated member ids (heartbeat v0) so that they differ
    /// across coordinator incarnations.
    pub member_id_salt: u64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: 10_000,
            assignors: vec!["uniform".to_owned(), "range".to_owned()],
            member_id_salt: 0,
        }
    }
}

/// ConsumerGroupHeartbeat (v0-v1), with the connection's client id and host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerHeartbeat {
    pub api_version: i16,
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 when unchanged since the last heartbeat.
    pub rebalance_timeout_ms: i32,
    /// `None` when unchanged since the last heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns; `None` when unchanged since the last heartbeat.
    pub owned_partitions: Option<Vec<(TopicId, Vec<i32>)>>,
    pub client_id: String,
    pub client_host: String,
    pub topics: Arc<Topics>,
    /// The group's `consumer.session.timeout.ms` config, `None` for the broker's.
    pub session_timeout_ms: Option<i32>,
    /// The group's `consumer.heartbeat.interval.ms` config, `None` for the broker's.
    pub heartbeat_interval_ms: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerHeartbeatResponse {
    pub error: Option<ConsumerError>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Sent on full requests and when the member's assigned partitions changed.
    pub assignment: Option<Assignment>,
}

impl ConsumerHeartbeatResponse {
    pub fn error(error: ConsumerError) -> Self {
        ConsumerHeartbeatResponse {
            error: Some(error),
            member_id: None,
            member_epoch: 0,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }
}

/// A Kafka error with its message, as the heartbeat and describe responses carry both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerError {
    pub code: ConsumerErrorCode,
    pub message: String,
}

impl ConsumerError {
    pub fn new(code: ConsumerErrorCode, message: impl Into<String>) -> Self {
        ConsumerError {
            code,
            message: message.into(),
        }
    }
}

/// KIP-848 groups answer with the crate's Kafka error codes.
pub use crate::error::ErrorCode as ConsumerErrorCode;

/// ConsumerGroupDescribe (v0-v1) for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub group_id: String,
    pub error: Option<ConsumerError>,
    /// "Empty", "Assigning", "Reconciling", "Stable" (or "Dead" with an error).
    pub state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
}
