//! Inputs and outputs of the KIP-1071 coordinator: the topology a member sends, the
//! StreamsGroupHeartbeat / StreamsGroupDescribe commands and their answers, the settings.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::consumer::{ConsumerError, Topics};

/// Tasks of one kind: partitions (task numbers) per subtopology id, ordered.
pub type Tasks = BTreeMap<String, BTreeSet<i32>>;

/// A member's active, standby and warm-up tasks (Kafka's `TasksTuple`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TasksTuple {
    pub active: Tasks,
    pub standby: Tasks,
    pub warmup: Tasks,
}

impl TasksTuple {
    pub fn is_empty(&self) -> bool {
        all_empty(&self.active) && all_empty(&self.standby) && all_empty(&self.warmup)
    }

    /// Whether any task of `other` (of the same kind) is in `self`.
    pub fn contains_any(&self, other: &TasksTuple) -> bool {
        intersects(&self.active, &other.active)
            || intersects(&self.standby, &other.standby)
            || intersects(&self.warmup, &other.warmup)
    }

    /// Whether every task of `self` is in `other` (of the same kind).
    pub fn is_subset_of(&self, other: &TasksTuple) -> bool {
        subset(&self.active, &other.active)
            && subset(&self.standby, &other.standby)
            && subset(&self.warmup, &other.warmup)
    }

    /// Tasks of each kind, ignoring subtopologies listed without partitions.
    pub(crate) fn normalized(mut self) -> TasksTuple {
        for tasks in [&mut self.active, &mut self.standby, &mut self.warmup] {
            tasks.retain(|_, partitions| !partitions.is_empty());
        }
        self
    }
}

fn all_empty(t: &Tasks) -> bool {
    t.values().all(BTreeSet::is_empty)
}

fn intersects(a: &Tasks, b: &Tasks) -> bool {
    b.iter().any(|(sub, parts)| {
        a.get(sub)
            .is_some_and(|mine| parts.iter().any(|p| mine.contains(p)))
    })
}

fn subset(a: &Tasks, b: &Tasks) -> bool {
    a.iter().all(|(sub, parts)| {
        parts.is_empty() || b.get(sub).is_some_and(|theirs| parts.is_subset(theirs))
    })
}

/// An internal topic of a subtopology (a changelog or repartition topic) as the member
/// declares it: `partitions` 0 means "derive it", `replication_factor` 0 or -1 the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// Indexes into a subtopology's source topics and repartition source topics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopartitionGroup {
    pub source_topics: Vec<i16>,
    pub source_topic_regex: Vec<i16>,
    pub repartition_source_topics: Vec<i16>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subtopology {
    pub id: String,
    pub source_topics: Vec<String>,
    pub source_topic_regex: Vec<String>,
    pub state_changelog_topics: Vec<TopicInfo>,
    pub repartition_sink_topics: Vec<String>,
    pub repartition_source_topics: Vec<TopicInfo>,
    pub copartition_groups: Vec<CopartitionGroup>,
}

/// The application's topology: the group keeps the one its first member brought.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    pub epoch: i32,
    pub subtopologies: Vec<Subtopology>,
}

/// The host and port of a member's interactive-queries endpoint (`application.server`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

/// Broker settings of streams groups (Kafka's `group.streams.*` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsConfig {
    /// `group.streams.session.timeout.ms`
    pub session_timeout_ms: i32,
    /// `group.streams.heartbeat.interval.ms`
    pub heartbeat_interval_ms: i32,
    /// `group.streams.max.size` (Kafka: unlimited; bounded here to bound memory).
    pub max_size: usize,
    /// `group.streams.num.standby.replicas`
    pub num_standby_replicas: i32,
    /// The most tasks (all kinds, all subtopologies) a topology may make: bounds the memory
    /// and time of an assignment, whatever partition counts the topics have.
    pub tasks_max: usize,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: 10_000,
            num_standby_replicas: 0,
            tasks_max: 100_000,
        }
    }
}

/// Which of a StreamsGroupHeartbeat's ActiveTasks, StandbyTasks and WarmupTasks were null
/// on the wire (null means "unchanged" outside a join).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NullTasks {
    pub active: bool,
    pub standby: bool,
    pub warmup: bool,
}

impl NullTasks {
    /// All three null: the heartbeat says nothing about what the member owns.
    pub const ALL: NullTasks = NullTasks {
        active: true,
        standby: true,
        warmup: true,
    };

    /// Some null and some not: Kafka refuses this ("If one task-type is non-null, all must
    /// be non-null.").
    pub fn is_mixed(self) -> bool {
        let nulls = [self.active, self.standby, self.warmup];
        nulls.contains(&true) && nulls.contains(&false)
    }
}

/// StreamsGroupHeartbeat (v0), with the connection's client id and host, the cluster's
/// topics and the group's configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsHeartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 when unchanged since the last heartbeat.
    pub rebalance_timeout_ms: i32,
    /// Sent when joining (epoch 0) only.
    pub topology: Option<Topology>,
    /// The tasks the member owns; `None` when unchanged since the last heartbeat (all three
    /// lists null), or when only some lists were null ([`NullTasks`] says which).
    pub owned: Option<TasksTuple>,
    /// Which of the request's task lists were null (none exactly when `owned` is `Some`):
    /// validation refuses a join with any null, and any request with some but not all
    /// null, as Kafka does.
    pub null_tasks: NullTasks,
    pub process_id: Option<String>,
    pub user_endpoint: Option<Endpoint>,
    pub client_tags: Option<Vec<(String, String)>>,
    pub shutdown_application: bool,
    pub client_id: String,
    pub client_host: String,
    pub topics: Arc<Topics>,
    /// The group's `streams.session.timeout.ms` config, `None` for the broker's.
    pub session_timeout_ms: Option<i32>,
    /// The group's `streams.heartbeat.interval.ms` config, `None` for the broker's.
    pub heartbeat_interval_ms: Option<i32>,
    /// The group's `streams.num.standby.replicas` config, `None` for the broker's.
    pub num_standby_replicas: Option<i32>,
}

/// Kafka's `StreamsGroupHeartbeatResponse.Status` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StatusCode {
    StaleTopology,
    MissingSourceTopics,
    IncorrectlyPartitionedTopics,
    MissingInternalTopics,
    ShutdownApplication,
}

impl StatusCode {
    pub fn code(self) -> i8 {
        match self {
            StatusCode::StaleTopology => 0,
            StatusCode::MissingSourceTopics => 1,
            StatusCode::IncorrectlyPartitionedTopics => 2,
            StatusCode::MissingInternalTopics => 3,
            StatusCode::ShutdownApplication => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: StatusCode,
    pub detail: String,
}

/// The partitions of the topics behind one member's tasks, for interactive queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPartitions {
    pub endpoint: Endpoint,
    /// Partitions per topic name.
    pub active: BTreeMap<String, BTreeSet<i32>>,
    pub standby: BTreeMap<String, BTreeSet<i32>>,
}

/// An internal topic the broker must create for a group (Kafka 4.2's broker does this
/// from the heartbeat, as the client cannot know the partition counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicToCreate {
    pub name: String,
    pub partitions: i32,
    /// -1: the broker's `default.replication.factor`.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsHeartbeatResponse {
    pub error: Option<ConsumerError>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The group's statuses (an empty list when none holds).
    pub status: Vec<Status>,
    /// Sent when joining and whenever the member's tasks changed.
    pub assignment: Option<TasksTuple>,
    /// The group's endpoints and their partitions, for a member with an endpoint.
    pub endpoints: Option<Vec<EndpointPartitions>>,
    /// Internal topics missing from the cluster, for the broker to create (not on the wire).
    pub topics_to_create: Vec<TopicToCreate>,
}

impl StreamsHeartbeatResponse {
    pub fn error(error: ConsumerError) -> Self {
        StreamsHeartbeatResponse {
            error: Some(error),
            member_id: String::new(),
            member_epoch: 0,
            heartbeat_interval_ms: 0,
            status: Vec::new(),
            assignment: None,
            endpoints: None,
            topics_to_create: Vec::new(),
        }
    }
}

/// StreamsGroupDescribe of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedStreamsGroup {
    pub group_id: String,
    pub error: Option<ConsumerError>,
    /// "Empty", "NotReady", "Assigning", "Reconciling", "Stable" (or "Dead" with an error).
    pub state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// The topology with its epoch; `None` before a member brought one.
    pub topology: Option<Topology>,
    pub members: Vec<DescribedStreamsMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedStreamsMember {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub topology_epoch: i32,
    pub process_id: String,
    pub user_endpoint: Option<Endpoint>,
    pub client_tags: Vec<(String, String)>,
    pub assignment: TasksTuple,
    pub target_assignment: TasksTuple,
}
