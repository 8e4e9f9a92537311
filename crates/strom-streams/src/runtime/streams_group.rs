//! A stream thread's membership of a KIP-1071 streams group (`group.protocol=streams`),
//! as Kafka's `StreamsGroupHeartbeatRequestManager` and `StreamsMembershipManager` keep
//! it: what each StreamsGroupHeartbeat says and what its response means. No I/O: the
//! thread sends the request (`Consumer::streams_group_heartbeat`) and reconciles its tasks
//! to the assignment [`StreamsMember::handle`] returns; the unit tests drive it against a
//! fake coordinator.
//!
//! The rules it follows:
//! - The member id is made here (a UUID, kept for the thread's life) and the member joins
//!   with epoch 0, sending its topology (epoch 0, as Kafka's client: topology updates are
//!   not defined yet), process id, `application.server` endpoint, client tags and
//!   rebalance timeout, and no owned tasks. Later heartbeats send the owned tasks only
//!   when they changed since the last one the broker answered (null: unchanged). A static
//!   member (`group.instance.id`) sends its instance id in every heartbeat and leaves with
//!   epoch -2, so the broker keeps its tasks for it until the session timeout.
//! - Once the application asked to shut down (`request_shutdown`), every heartbeat sets
//!   `ShutdownApplication`; the broker then reports SHUTDOWN_APPLICATION to every member.
//! - An assignment in a response is the member's target. The thread revokes first (it
//!   commits and closes, or turns into standbys, the active tasks it loses), then takes
//!   the new ones, and then heartbeats at once with what it now owns: the broker hands a
//!   task to its next owner only after the previous owner stopped reporting it.
//! - FENCED_MEMBER_EPOCH and UNKNOWN_MEMBER_ID: the broker has moved on without this
//!   member. Its active tasks may run elsewhere already: the thread drops them (closed
//!   dirty, as on a task migration) and joins again with epoch 0.
//! - Coordinator errors and lost connections are retried at the next heartbeat, which then
//!   sends every field again; any other error code stops the thread.
//! - The status list (null: unchanged) is surfaced as Kafka Streams does: see
//!   [`GroupStatus`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use strom_client::consumer::streams_group::{
    request, response, StrBytes, StreamsGroupHeartbeatRequest, StreamsGroupHeartbeatResponse,
};
use strom_client::ClientError;

use super::HostMap;
use crate::error::{Result, StreamsError};
use crate::task::TaskId;
use crate::topology::{TopicName, Topology};

/// Kafka's default `group.streams.heartbeat.interval.ms`, used until the broker says.
const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 5_000;
/// Bounds on the interval a broker may ask for (a zero would spin, a huge one would let
/// the session expire).
const HEARTBEAT_INTERVAL_MS_MIN: u64 = 10;
const HEARTBEAT_INTERVAL_MS_MAX: u64 = 60_000;
/// After a failed heartbeat, the next one waits this long.
const RETRY_BACKOFF_MS: u64 = 100;
/// The member epoch of a leave: -1, or -2 for a static member (Kafka's
/// `LEAVE_GROUP_MEMBER_EPOCH` / `LEAVE_GROUP_STATIC_MEMBER_EPOCH`).
const LEAVE_EPOCH: i32 = -1;
const LEAVE_STATIC_EPOCH: i32 = -2;

/// Kafka's `StreamsGroupHeartbeatResponse.Status` codes.
pub(crate) const STATUS_STALE_TOPOLOGY: i8 = 0;
pub(crate) const STATUS_MISSING_SOURCE_TOPICS: i8 = 1;
pub(crate) const STATUS_INCORRECTLY_PARTITIONED_TOPICS: i8 = 2;
pub(crate) const STATUS_MISSING_INTERNAL_TOPICS: i8 = 3;
pub(crate) const STATUS_SHUTDOWN_APPLICATION: i8 = 4;
pub(crate) const STATUS_ASSIGNMENT_DELAYED: i8 = 5;

/// One status of the group the broker reports, by Kafka's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GroupStatus {
    /// The member's topology epoch is older than the group's (logged).
    StaleTopology(String),
    /// Source topics do not exist: Kafka Streams waits, then fails with
    /// `MissingSourceTopicException`.
    MissingSourceTopics(String),
    /// Co-partitioned topics differ in partitions: a `TopologyException`, fatal.
    IncorrectlyPartitionedTopics(String),
    /// The broker is creating internal topics (logged; tasks come once they exist).
    MissingInternalTopics(String),
    /// An instance asked the whole application to shut down: every instance stops.
    ShutdownApplication(String),
    /// The assignment waits (an initial rebalance delay; logged).
    AssignmentDelayed(String),
    /// A code this client does not know (logged).
    Other(i8, String),
}

impl GroupStatus {
    fn from_wire(s: &response::Status) -> GroupStatus {
        let detail = s.status_detail.to_string();
        match s.status_code {
            STATUS_STALE_TOPOLOGY => GroupStatus::StaleTopology(detail),
            STATUS_MISSING_SOURCE_TOPICS => GroupStatus::MissingSourceTopics(detail),
            STATUS_INCORRECTLY_PARTITIONED_TOPICS => {
                GroupStatus::IncorrectlyPartitionedTopics(detail)
            }
            STATUS_MISSING_INTERNAL_TOPICS => GroupStatus::MissingInternalTopics(detail),
            STATUS_SHUTDOWN_APPLICATION => GroupStatus::ShutdownApplication(detail),
            STATUS_ASSIGNMENT_DELAYED => GroupStatus::AssignmentDelayed(detail),
            other => GroupStatus::Other(other, detail),
        }
    }
}

/// Tasks a member owns or is assigned, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tasks {
    pub active: BTreeSet<TaskId>,
    pub standby: BTreeSet<TaskId>,
    pub warmup: BTreeSet<TaskId>,
}

/// What a heartbeat's response asks of the thread.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Carry on (the assignment, if any, is unchanged).
    Steady,
    /// Reconcile to this target: revoke what is not in it, then take the rest.
    Assigned(Tasks),
    /// The broker no longer knows this member or its epoch: drop the active tasks and
    /// join again (the next heartbeat is the join, at once).
    Fenced(ClientError),
    /// The coordinator is moving or loading: the next heartbeat (after a short back-off)
    /// sends everything again.
    Retry(ClientError),
}

/// The membership state of one stream thread.
pub(crate) struct StreamsMember {
    member_id: String,
    epoch: i32,
    process_id: String,
    endpoint: Option<(String, u16)>,
    rebalance_timeout_ms: i32,
    topology: request::Topology,
    /// `group.instance.id` of this thread (static membership).
    instance_id: Option<String>,
    /// `client.tag.*`, sent when joining.
    client_tags: Vec<(String, String)>,
    /// The application asked every instance to shut down (sent in every heartbeat).
    shutdown_requested: bool,
    interval: Duration,
    /// When the next heartbeat is due (`None`: now).
    next_at: Option<Instant>,
    /// The owned tasks the broker last heard (`None`: send them in full).
    reported: Option<Tasks>,
    /// The owned tasks of the heartbeat in flight.
    sending: Option<Tasks>,
    /// The statuses the broker last reported (its `null` means unchanged).
    pub statuses: Vec<GroupStatus>,
    /// `application.server` -> (active, standby tasks) of every member, for interactive
    /// queries (from `PartitionsByUserEndpoint`).
    pub hosts: Option<HostMap>,
    /// Whether the member left (epoch -1 sent).
    left: bool,
    /// Whether an assignment arrived since the (re)join.
    assigned: bool,
}

impl StreamsMember {
    /// A member that has not joined yet. `application_server` is `host:port`.
    pub(crate) fn new(
        process_id: &str,
        application_server: Option<&str>,
        rebalance_timeout_ms: u64,
        topology: request::Topology,
        instance_id: Option<String>,
        client_tags: Vec<(String, String)>,
    ) -> Result<StreamsMember> {
        let endpoint = match application_server {
            None => None,
            Some(server) => Some(parse_endpoint(server)?),
        };
        Ok(StreamsMember {
            member_id: uuid::Uuid::new_v4().to_string(),
            epoch: 0,
            process_id: process_id.to_string(),
            endpoint,
            rebalance_timeout_ms: i32::try_from(rebalance_timeout_ms).unwrap_or(i32::MAX),
            topology,
            instance_id,
            client_tags,
            shutdown_requested: false,
            interval: Duration::from_millis(HEARTBEAT_INTERVAL_MS_DEFAULT),
            next_at: None,
            reported: None,
            sending: None,
            statuses: Vec::new(),
            hosts: None,
            left: false,
            assigned: false,
        })
    }

    pub(crate) fn member_id(&self) -> &str {
        &self.member_id
    }

    pub(crate) fn epoch(&self) -> i32 {
        self.epoch
    }

    /// Whether an assignment arrived since the member (re)joined.
    pub(crate) fn assigned(&self) -> bool {
        self.assigned
    }

    /// Whether a heartbeat is due at `now` (joining, acknowledging a reconciliation, or
    /// the interval is up).
    pub(crate) fn due(&self, now: Instant) -> bool {
        !self.left && self.next_at.is_none_or(|at| now >= at)
    }

    /// Asks the group to shut the whole application down: every later heartbeat (the next
    /// one at once) sets `ShutdownApplication`.
    pub(crate) fn request_shutdown(&mut self) {
        self.shutdown_requested = true;
        self.next_at = None;
    }

    /// Asks for a heartbeat at once (after a reconciliation: it acknowledges it).
    pub(crate) fn heartbeat_now(&mut self) {
        self.next_at = None;
    }

    /// Forgets the membership: the next heartbeat joins with epoch 0 (after fencing).
    pub(crate) fn rejoin(&mut self) {
        self.epoch = 0;
        self.assigned = false;
        self.reported = None;
        self.sending = None;
        self.next_at = None;
    }

    /// The heartbeat to send now, reporting `owned`.
    pub(crate) fn request(&mut self, owned: &Tasks) -> StreamsGroupHeartbeatRequest {
        let joining = self.epoch == 0;
        let mut r = StreamsGroupHeartbeatRequest::default()
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_member_epoch(self.epoch)
            .with_instance_id(self.instance_id.clone().map(StrBytes::from_string))
            .with_rebalance_timeout_ms(-1)
            .with_shutdown_application(self.shutdown_requested);
        if joining {
            // A joining member owns nothing (the broker refuses owned tasks at epoch 0)
            // and says everything about itself.
            let empty = Tasks::default();
            r = r
                .with_rebalance_timeout_ms(self.rebalance_timeout_ms)
                .with_topology(Some(self.topology.clone()))
                .with_process_id(Some(StrBytes::from_string(self.process_id.clone())))
                .with_user_endpoint(self.endpoint.as_ref().map(|(host, port)| {
                    request::Endpoint::default()
                        .with_host(StrBytes::from_string(host.clone()))
                        .with_port(*port)
                }))
                .with_client_tags(Some(
                    self.client_tags
                        .iter()
                        .map(|(k, v)| {
                            request::KeyValue::default()
                                .with_key(StrBytes::from_string(k.clone()))
                                .with_value(StrBytes::from_string(v.clone()))
                        })
                        .collect(),
                ));
            r = with_owned(r, &empty);
            self.sending = Some(empty);
        } else if self.reported.as_ref() != Some(owned) {
            r = with_owned(r, owned);
            self.sending = Some(owned.clone());
        } else {
            self.sending = None;
        }
        r
    }

    /// The heartbeat that leaves the group (epoch -1; -2 for a static member, whose tasks
    /// then wait for it up to the session timeout); `None` if the member never joined.
    pub(crate) fn leave_request(&mut self) -> Option<StreamsGroupHeartbeatRequest> {
        if self.left || self.epoch <= 0 {
            return None;
        }
        self.left = true;
        let epoch = if self.instance_id.is_some() {
            LEAVE_STATIC_EPOCH
        } else {
            LEAVE_EPOCH
        };
        Some(
            StreamsGroupHeartbeatRequest::default()
                .with_member_id(StrBytes::from_string(self.member_id.clone()))
                .with_member_epoch(epoch)
                .with_instance_id(self.instance_id.clone().map(StrBytes::from_string))
                .with_rebalance_timeout_ms(-1),
        )
    }

    /// The heartbeat did not reach the broker (or got no answer): send everything again,
    /// after a short back-off.
    pub(crate) fn on_failure(&mut self, now: Instant) {
        self.reported = None;
        self.sending = None;
        self.next_at = now.checked_add(Duration::from_millis(RETRY_BACKOFF_MS));
    }

    /// Reads a heartbeat's response. `topology` maps the broker's subtopology ids and
    /// partitions back to tasks (an id the topology does not have is an error: the group
    /// runs another application's topology).
    pub(crate) fn handle(
        &mut self,
        resp: &StreamsGroupHeartbeatResponse,
        topology: &Topology,
        application_id: &str,
        now: Instant,
    ) -> Result<Outcome> {
        if let Some(e) = ClientError::from_code(
            resp.error_code,
            resp.error_message.as_ref().map(ToString::to_string),
            format!("StreamsGroupHeartbeat of member {}", self.member_id),
        ) {
            return match e.kafka_name() {
                Some("FENCED_MEMBER_EPOCH" | "UNKNOWN_MEMBER_ID") => {
                    self.rejoin();
                    Ok(Outcome::Fenced(e))
                }
                _ if e.is_retriable() || e.needs_coordinator_refresh() => {
                    self.on_failure(now);
                    Ok(Outcome::Retry(e))
                }
                _ => Err(e.into()),
            };
        }
        if !resp.member_id.is_empty() {
            self.member_id = resp.member_id.to_string();
        }
        self.epoch = resp.member_epoch;
        if let Some(sent) = self.sending.take() {
            self.reported = Some(sent);
        }
        let interval_ms = u64::try_from(resp.heartbeat_interval_ms)
            .unwrap_or(HEARTBEAT_INTERVAL_MS_DEFAULT)
            .clamp(HEARTBEAT_INTERVAL_MS_MIN, HEARTBEAT_INTERVAL_MS_MAX);
        self.interval = Duration::from_millis(interval_ms);
        self.next_at = now.checked_add(self.interval);
        if let Some(statuses) = &resp.status {
            let statuses: Vec<GroupStatus> = statuses.iter().map(GroupStatus::from_wire).collect();
            if statuses != self.statuses {
                for s in &statuses {
                    tracing::info!(member = %self.member_id, status = ?s, "streams group status");
                }
            }
            self.statuses = statuses;
        }
        if let Some(endpoints) = &resp.partitions_by_user_endpoint {
            self.hosts = Some(hosts(endpoints, topology, application_id));
        }
        let (Some(active), Some(standby), Some(warmup)) =
            (&resp.active_tasks, &resp.standby_tasks, &resp.warmup_tasks)
        else {
            return Ok(Outcome::Steady);
        };
        self.assigned = true;
        Ok(Outcome::Assigned(Tasks {
            active: tasks_of(active, topology)?,
            standby: tasks_of(standby, topology)?,
            warmup: tasks_of(warmup, topology)?,
        }))
    }
}

fn with_owned(r: StreamsGroupHeartbeatRequest, owned: &Tasks) -> StreamsGroupHeartbeatRequest {
    r.with_active_tasks(Some(wire_tasks(&owned.active)))
        .with_standby_tasks(Some(wire_tasks(&owned.standby)))
        .with_warmup_tasks(Some(wire_tasks(&owned.warmup)))
}

/// Tasks grouped by subtopology id, as the request carries them.
fn wire_tasks(tasks: &BTreeSet<TaskId>) -> Vec<request::TaskIds> {
    let mut by_sub: BTreeMap<u32, Vec<i32>> = BTreeMap::new();
    for t in tasks {
        by_sub.entry(t.subtopology).or_default().push(t.partition);
    }
    by_sub
        .into_iter()
        .map(|(sub, partitions)| {
            request::TaskIds::default()
                .with_subtopology_id(StrBytes::from_string(sub.to_string()))
                .with_partitions(partitions)
        })
        .collect()
}

/// The tasks of an assignment; a subtopology id the topology lacks, or a negative
/// partition, is an error naming it.
fn tasks_of(wire: &[response::TaskIds], topology: &Topology) -> Result<BTreeSet<TaskId>> {
    let mut out = BTreeSet::new();
    for t in wire {
        let sub = subtopology_index(&t.subtopology_id, topology)?;
        for &p in &t.partitions {
            if p < 0 {
                return Err(StreamsError::Topology(format!(
                    "the broker assigned task {}_{p}: a negative partition",
                    t.subtopology_id.as_str()
                )));
            }
            out.insert(TaskId::new(sub, p));
        }
    }
    Ok(out)
}

fn subtopology_index(id: &StrBytes, topology: &Topology) -> Result<u32> {
    id.parse::<u32>()
        .ok()
        .filter(|n| topology.subtopologies.iter().any(|s| s.id == *n))
        .ok_or_else(|| {
            StreamsError::Topology(format!(
                "the broker assigned a task of subtopology {:?}, which this topology does not \
                 have (another application's topology under the same application.id?)",
                id.as_str()
            ))
        })
}

/// `application.server` -> (active, standby tasks), from the partitions each endpoint
/// holds: a partition of a source topic of a subtopology is that subtopology's task.
fn hosts(
    endpoints: &[response::EndpointToPartitions],
    topology: &Topology,
    application_id: &str,
) -> HostMap {
    let to_tasks = |parts: &[response::TopicPartition]| -> Vec<TaskId> {
        let mut out = BTreeSet::new();
        for tp in parts {
            for sub in &topology.subtopologies {
                if sub
                    .sources
                    .iter()
                    .any(|t| t.resolve(application_id) == tp.topic.as_str())
                {
                    out.extend(tp.partitions.iter().map(|&p| TaskId::new(sub.id, p)));
                }
            }
        }
        out.into_iter().collect()
    };
    endpoints
        .iter()
        .map(|e| {
            let host = format!("{}:{}", e.user_endpoint.host.as_str(), e.user_endpoint.port);
            (
                host,
                (
                    to_tasks(&e.active_partitions),
                    to_tasks(&e.standby_partitions),
                ),
            )
        })
        .collect()
}

fn parse_endpoint(server: &str) -> Result<(String, u16)> {
    let bad = || StreamsError::config("application.server", format!("{server:?} is not host:port"));
    let (host, port) = server.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// The topology as the heartbeat declares it (KIP-1071): per subtopology, its user source
/// topics, the repartition topics it reads (with their partitions when the source topics
/// fix them, else 0: the broker works them out) and writes, its changelog topics (always
/// 0 partitions: one per task, the broker's to derive), and its copartition groups as
/// indexes into its own topic lists. Internal topics carry the configs this library
/// would create them with (`topics::internal_configs`).
pub(crate) fn wire_topology(
    topology: &Topology,
    application_id: &str,
    partitions: &BTreeMap<TopicName, i32>,
    replication_factor: i16,
) -> request::Topology {
    let s = |t: String| StrBytes::from_string(t);
    let topic_info = |name: &str, partitions: i32| {
        request::TopicInfo::default()
            .with_name(s(
                TopicName::Internal(name.to_string()).resolve(application_id)
            ))
            .with_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_topic_configs(
                super::topics::internal_configs(topology, name)
                    .into_iter()
                    .map(|(k, v)| request::KeyValue::default().with_key(s(k)).with_value(s(v)))
                    .collect(),
            )
    };
    let subtopologies = topology
        .subtopologies
        .iter()
        .map(|sub| {
            let user: Vec<&TopicName> = sub
                .sources
                .iter()
                .filter(|t| matches!(t, TopicName::User(_)))
                .collect();
            let repartition_in: Vec<&TopicName> = sub
                .sources
                .iter()
                .filter(|t| matches!(t, TopicName::Internal(_)))
                .collect();
            let repartition_out: Vec<String> = sub
                .sinks
                .iter()
                .filter(|t| matches!(t, TopicName::Internal(_)))
                .map(|t| t.resolve(application_id))
                .collect();
            let changelogs = sub
                .stores
                .iter()
                .filter(|st| topology.stores.get(*st).is_some_and(|spec| spec.logged))
                .map(|st| topic_info(&format!("{st}-changelog"), 0))
                .collect();
            let index = |list: &[&TopicName], t: &TopicName| {
                list.iter()
                    .position(|x| *x == t)
                    .and_then(|i| i16::try_from(i).ok())
            };
            let copartition_groups = topology
                .copartition
                .iter()
                .filter(|g| g.iter().any(|t| sub.sources.contains(t)))
                .map(|g| {
                    request::CopartitionGroup::default()
                        .with_source_topics(g.iter().filter_map(|t| index(&user, t)).collect())
                        .with_repartition_source_topics(
                            g.iter().filter_map(|t| index(&repartition_in, t)).collect(),
                        )
                })
                .collect();
            request::Subtopology::default()
                .with_subtopology_id(s(sub.id.to_string()))
                .with_source_topics(user.iter().map(|t| s(t.resolve(application_id))).collect())
                .with_repartition_source_topics(
                    repartition_in
                        .iter()
                        .filter_map(|t| match t {
                            TopicName::Internal(n) => {
                                Some(topic_info(n, partitions.get(*t).copied().unwrap_or(0)))
                            }
                            TopicName::User(_) => None,
                        })
                        .collect(),
                )
                .with_repartition_sink_topics(repartition_out.into_iter().map(s).collect())
                .with_state_changelog_topics(changelogs)
                .with_copartition_groups(copartition_groups)
        })
        .collect();
    request::Topology::default()
        .with_epoch(0)
        .with_subtopologies(subtopologies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Consumed, Grouped, Materialized, Produced, Serdes, StreamsBuilder};

    const APP: &str = "app";

    /// Word count: sub-topology 0 reads `lines` and writes the repartition topic,
    /// sub-topology 1 reads it and counts into the logged store `counts`.
    fn word_count() -> Topology {
        let b = StreamsBuilder::new();
        b.stream("lines", Consumed::with(Serdes::string(), Serdes::string()))
            .flat_map_values(|l: &String| {
                l.split_whitespace().map(str::to_string).collect::<Vec<_>>()
            })
            .group_by(
                |_, w: &String| w.clone(),
                Grouped::with(Serdes::string(), Serdes::string()),
            )
            .count(Materialized::as_store("counts"))
            .to_stream()
            .filter_some()
            .map_values(|c: &i64| c.to_string())
            .to("out", Produced::with(Serdes::string(), Serdes::string()));
        b.build().unwrap()
    }

    fn member(topology: &Topology) -> StreamsMember {
        let wire = wire_topology(topology, APP, &BTreeMap::new(), -1);
        StreamsMember::new(
            "process-1",
            Some("host-a:9090"),
            300_000,
            wire,
            None,
            Vec::new(),
        )
        .unwrap()
    }

    fn ids(v: &[(u32, i32)]) -> BTreeSet<TaskId> {
        v.iter().map(|&(s, p)| TaskId::new(s, p)).collect()
    }

    fn wire_ids(wire: &Option<Vec<request::TaskIds>>) -> Option<BTreeSet<TaskId>> {
        wire.as_ref().map(|v| {
            v.iter()
                .flat_map(|t| {
                    let sub: u32 = t.subtopology_id.parse().unwrap();
                    t.partitions.iter().map(move |&p| TaskId::new(sub, p))
                })
                .collect()
        })
    }

    fn resp_ids(tasks: &BTreeSet<TaskId>) -> Vec<response::TaskIds> {
        wire_tasks(tasks)
            .into_iter()
            .map(|t| {
                response::TaskIds::default()
                    .with_subtopology_id(t.subtopology_id)
                    .with_partitions(t.partitions)
            })
            .collect()
    }

    /// A member as the fake coordinator sees it: epoch, owned active tasks as last
    /// reported, tasks last sent.
    type FakeMember = (i32, BTreeSet<TaskId>, Option<BTreeSet<TaskId>>);

    /// A fake streams group coordinator with KIP-1071's rule for moving tasks: each
    /// member's target is a round-robin share of the active tasks, but a task is handed
    /// to a member only once no other member owns it (reports it, or was last assigned
    /// it). Every answer checks that
    /// no task is reported active by two members.
    struct FakeCoordinator {
        tasks: Vec<TaskId>,
        /// member id -> (epoch, owned active tasks as last reported, tasks last sent).
        members: BTreeMap<String, FakeMember>,
        group_epoch: i32,
        /// Members to answer FENCED_MEMBER_EPOCH once.
        fence: BTreeSet<String>,
    }

    impl FakeCoordinator {
        fn new(tasks: Vec<TaskId>) -> Self {
            FakeCoordinator {
                tasks,
                members: BTreeMap::new(),
                group_epoch: 0,
                fence: BTreeSet::new(),
            }
        }

        fn error(code: i16) -> StreamsGroupHeartbeatResponse {
            StreamsGroupHeartbeatResponse::default()
                .with_error_code(code)
                .with_heartbeat_interval_ms(1000)
        }

        fn heartbeat(
            &mut self,
            req: &StreamsGroupHeartbeatRequest,
        ) -> StreamsGroupHeartbeatResponse {
            let id = req.member_id.to_string();
            if self.fence.remove(&id) {
                self.members.remove(&id);
                return Self::error(110); // FENCED_MEMBER_EPOCH
            }
            if req.member_epoch == 0 {
                assert!(req.topology.is_some(), "a join carries the topology");
                assert!(req.process_id.is_some(), "a join carries the process id");
                assert_eq!(
                    wire_ids(&req.active_tasks),
                    Some(BTreeSet::new()),
                    "a join owns nothing"
                );
                self.group_epoch += 1;
                self.members
                    .insert(id.clone(), (self.group_epoch, BTreeSet::new(), None));
            } else {
                assert!(
                    req.topology.is_none(),
                    "the topology goes with the join only"
                );
                match self.members.get(&id) {
                    Some((epoch, _, _)) if *epoch == req.member_epoch => {}
                    Some(_) => return Self::error(110),
                    None => return Self::error(25), // UNKNOWN_MEMBER_ID
                }
            }
            if let Some(owned) = wire_ids(&req.active_tasks) {
                if let Some(m) = self.members.get_mut(&id) {
                    m.1 = owned;
                }
            }
            // No task reported active by two members: what the client must never cause.
            let mut seen = BTreeSet::new();
            for (_, owned, _) in self.members.values() {
                for t in owned {
                    assert!(seen.insert(*t), "task {t} reported active by two members");
                }
            }
            let names: Vec<String> = self.members.keys().cloned().collect();
            let me = names.iter().position(|n| *n == id).unwrap();
            let target: BTreeSet<TaskId> = self
                .tasks
                .iter()
                .enumerate()
                .filter(|(i, _)| i % names.len() == me)
                .map(|(_, t)| *t)
                .collect();
            let owned_elsewhere: BTreeSet<TaskId> = self
                .members
                .iter()
                .filter(|(n, _)| **n != id)
                .flat_map(|(_, (_, owned, sent))| {
                    owned.iter().chain(sent.iter().flatten()).copied()
                })
                .collect();
            let mine: BTreeSet<TaskId> = target.difference(&owned_elsewhere).copied().collect();
            let entry = self.members.get_mut(&id).unwrap();
            let mut r = StreamsGroupHeartbeatResponse::default()
                .with_member_id(req.member_id.clone())
                .with_member_epoch(entry.0)
                .with_heartbeat_interval_ms(1000);
            if entry.2.as_ref() != Some(&mine) {
                entry.2 = Some(mine.clone());
                r = r
                    .with_active_tasks(Some(resp_ids(&mine)))
                    .with_standby_tasks(Some(Vec::new()))
                    .with_warmup_tasks(Some(Vec::new()));
            }
            r
        }
    }

    /// A stream thread as far as the membership goes: it owns tasks and reconciles to
    /// each assignment, logging what it revokes and takes in order.
    struct Thread {
        member: StreamsMember,
        owned: Tasks,
        log: Vec<(char, TaskId)>,
    }

    impl Thread {
        /// One heartbeat round trip; reconciles what it was assigned.
        fn beat(&mut self, fake: &mut FakeCoordinator, topology: &Topology) -> Outcome {
            let req = self.member.request(&self.owned);
            let resp = fake.heartbeat(&req);
            let outcome = self
                .member
                .handle(&resp, topology, APP, Instant::now())
                .unwrap();
            match &outcome {
                Outcome::Assigned(target) => {
                    let revoke: Vec<TaskId> = self
                        .owned
                        .active
                        .difference(&target.active)
                        .copied()
                        .collect();
                    for t in revoke {
                        self.owned.active.remove(&t);
                        self.log.push(('-', t));
                    }
                    let take: Vec<TaskId> = target
                        .active
                        .difference(&self.owned.active)
                        .copied()
                        .collect();
                    for t in take {
                        self.owned.active.insert(t);
                        self.log.push(('+', t));
                    }
                    self.member.heartbeat_now();
                }
                Outcome::Fenced(_) => self.owned = Tasks::default(),
                Outcome::Steady | Outcome::Retry(_) => {}
            }
            outcome
        }
    }

    fn thread(topology: &Topology) -> Thread {
        Thread {
            member: member(topology),
            owned: Tasks::default(),
            log: Vec::new(),
        }
    }

    #[test]
    fn a_join_declares_the_topology_and_later_heartbeats_send_only_changes() {
        let topology = word_count();
        let mut m = member(&topology);
        assert!(m.due(Instant::now()));
        let join = m.request(&Tasks::default());
        assert_eq!(join.member_epoch, 0);
        assert_eq!(join.rebalance_timeout_ms, 300_000);
        assert_eq!(join.process_id.as_deref(), Some("process-1"));
        let endpoint = join.user_endpoint.as_ref().unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("host-a", 9090));
        assert_eq!(join.topology.as_ref().unwrap().subtopologies.len(), 2);
        assert_eq!(
            join.topology.as_ref().unwrap().epoch,
            0,
            "Kafka's topology epoch"
        );
        assert!(join.instance_id.is_none(), "a dynamic member");
        assert_eq!(join.client_tags.as_ref().map(Vec::len), Some(0));
        assert!(!join.shutdown_application);
        let resp = StreamsGroupHeartbeatResponse::default()
            .with_member_id(join.member_id.clone())
            .with_member_epoch(3)
            .with_heartbeat_interval_ms(250)
            .with_active_tasks(Some(resp_ids(&ids(&[(0, 0), (1, 0)]))))
            .with_standby_tasks(Some(Vec::new()))
            .with_warmup_tasks(Some(resp_ids(&ids(&[(1, 1)]))));
        let now = Instant::now();
        let Outcome::Assigned(target) = m.handle(&resp, &topology, APP, now).unwrap() else {
            panic!("an assignment");
        };
        assert_eq!(target.active, ids(&[(0, 0), (1, 0)]));
        assert_eq!(target.warmup, ids(&[(1, 1)]));
        assert_eq!(m.epoch(), 3);
        assert!(m.assigned());
        assert!(!m.due(now), "next heartbeat after the interval");
        assert!(m.due(now + Duration::from_millis(250)));
        let owned = target.clone();
        let ack = m.request(&owned);
        assert_eq!(ack.member_epoch, 3);
        assert!(ack.topology.is_none() && ack.process_id.is_none());
        assert_eq!(ack.rebalance_timeout_ms, -1);
        assert_eq!(wire_ids(&ack.active_tasks), Some(owned.active.clone()));
        assert_eq!(wire_ids(&ack.warmup_tasks), Some(owned.warmup.clone()));
        let steady = StreamsGroupHeartbeatResponse::default()
            .with_member_id(join.member_id.clone())
            .with_member_epoch(3)
            .with_heartbeat_interval_ms(250);
        assert!(matches!(
            m.handle(&steady, &topology, APP, now).unwrap(),
            Outcome::Steady
        ));
        let unchanged = m.request(&owned);
        assert!(
            unchanged.active_tasks.is_none(),
            "owned tasks unchanged: null"
        );
        // Leaving: epoch -1, once.
        assert_eq!(m.leave_request().unwrap().member_epoch, -1);
        assert!(m.leave_request().is_none());
        assert!(!m.due(now + Duration::from_secs(60)));
    }

    #[test]
    fn a_static_member_names_itself_in_every_heartbeat_and_leaves_with_epoch_minus_two() {
        let topology = word_count();
        let wire = wire_topology(&topology, APP, &BTreeMap::new(), -1);
        let tags = vec![("zone".to_string(), "z1".to_string())];
        let mut m = StreamsMember::new(
            "process-1",
            None,
            300_000,
            wire,
            Some("app-a-1".into()),
            tags,
        )
        .unwrap();
        let join = m.request(&Tasks::default());
        assert_eq!(join.instance_id.as_deref(), Some("app-a-1"));
        let sent_tags: Vec<(String, String)> = join
            .client_tags
            .iter()
            .flatten()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        assert_eq!(sent_tags, vec![("zone".to_string(), "z1".to_string())]);
        let resp = StreamsGroupHeartbeatResponse::default()
            .with_member_id(join.member_id.clone())
            .with_member_epoch(2)
            .with_heartbeat_interval_ms(250);
        m.handle(&resp, &topology, APP, Instant::now()).unwrap();
        let beat = m.request(&Tasks::default());
        assert_eq!(beat.instance_id.as_deref(), Some("app-a-1"));
        assert!(
            beat.client_tags.is_none(),
            "client tags go with the join only"
        );
        let leave = m.leave_request().unwrap();
        assert_eq!(
            leave.member_epoch, -2,
            "a static member's leave keeps its tasks"
        );
        assert_eq!(leave.instance_id.as_deref(), Some("app-a-1"));
    }

    #[test]
    fn a_shutdown_request_goes_with_every_later_heartbeat_at_once() {
        let topology = word_count();
        let mut m = member(&topology);
        let join = m.request(&Tasks::default());
        let resp = StreamsGroupHeartbeatResponse::default()
            .with_member_id(join.member_id.clone())
            .with_member_epoch(1)
            .with_heartbeat_interval_ms(60_000);
        let now = Instant::now();
        m.handle(&resp, &topology, APP, now).unwrap();
        assert!(!m.request(&Tasks::default()).shutdown_application);
        m.handle(&resp, &topology, APP, now).unwrap();
        assert!(!m.due(now), "the interval is not up");
        m.request_shutdown();
        assert!(m.due(now), "a shutdown request is sent at once");
        assert!(m.request(&Tasks::default()).shutdown_application);
        m.handle(&resp, &topology, APP, now).unwrap();
        assert!(m.request(&Tasks::default()).shutdown_application);
    }

    #[test]
    fn a_task_moves_only_after_its_owner_revoked_it() {
        let topology = word_count();
        let tasks: Vec<TaskId> = ids(&[(0, 0), (0, 1), (1, 0), (1, 1)]).into_iter().collect();
        let mut fake = FakeCoordinator::new(tasks.clone());
        let mut a = thread(&topology);
        let mut b = thread(&topology);
        a.beat(&mut fake, &topology);
        assert_eq!(a.owned.active, tasks.iter().copied().collect());
        // B joins: the fake checks at every heartbeat that no task is reported active
        // by both, which holds only if A reports a revocation after making it.
        for _ in 0..10 {
            b.beat(&mut fake, &topology);
            a.beat(&mut fake, &topology);
        }
        assert_eq!(a.owned.active.len(), 2, "{:?}", a.log);
        assert_eq!(b.owned.active.len(), 2, "{:?}", b.log);
        assert!(a.owned.active.is_disjoint(&b.owned.active));
        // A gave up before B took: A's revocations are in its log before B's takes of
        // the same tasks happened (B's first take came after A's reporting beat).
        assert!(a.log.iter().any(|(op, _)| *op == '-'));
        assert!(b.log.iter().all(|(op, _)| *op == '+'));
    }

    #[test]
    fn fencing_drops_the_tasks_and_the_member_rejoins_with_epoch_zero() {
        let topology = word_count();
        let tasks: Vec<TaskId> = ids(&[(0, 0), (1, 0)]).into_iter().collect();
        let mut fake = FakeCoordinator::new(tasks.clone());
        let mut a = thread(&topology);
        a.beat(&mut fake, &topology);
        a.beat(&mut fake, &topology);
        assert_eq!(a.owned.active.len(), 2);
        let id = a.member.member_id().to_string();
        fake.fence.insert(id.clone());
        assert!(matches!(a.beat(&mut fake, &topology), Outcome::Fenced(_)));
        assert_eq!(a.member.epoch(), 0);
        assert!(!a.member.assigned());
        assert!(a.member.due(Instant::now()), "rejoins at once");
        let rejoin = a.member.request(&a.owned);
        assert_eq!(rejoin.member_epoch, 0);
        assert_eq!(rejoin.member_id.as_str(), id, "the member id is kept");
        assert!(rejoin.topology.is_some());
        assert!(matches!(a.beat(&mut fake, &topology), Outcome::Assigned(_)));
        assert_eq!(a.owned.active, tasks.into_iter().collect());
        // An unknown member id means the same.
        let mut m = member(&topology);
        m.request(&Tasks::default());
        let resp = FakeCoordinator::error(25);
        assert!(matches!(
            m.handle(&resp, &topology, APP, Instant::now()).unwrap(),
            Outcome::Fenced(_)
        ));
        assert_eq!(m.epoch(), 0);
    }

    #[test]
    fn coordinator_errors_are_retried_with_every_field_and_others_stop_the_thread() {
        let topology = word_count();
        let mut m = member(&topology);
        let join = m.request(&Tasks::default());
        let ok = StreamsGroupHeartbeatResponse::default()
            .with_member_id(join.member_id.clone())
            .with_member_epoch(1)
            .with_heartbeat_interval_ms(1000);
        let now = Instant::now();
        m.handle(&ok, &topology, APP, now).unwrap();
        let owned = Tasks::default();
        m.request(&owned);
        m.handle(&ok, &topology, APP, now).unwrap();
        assert!(m.request(&owned).active_tasks.is_none());
        // NOT_COORDINATOR: retried after a short back-off, owned tasks sent again.
        let r = m
            .handle(&FakeCoordinator::error(16), &topology, APP, now)
            .unwrap();
        assert!(matches!(r, Outcome::Retry(_)));
        assert!(!m.due(now));
        assert!(m.due(now + Duration::from_millis(RETRY_BACKOFF_MS)));
        assert!(m.request(&owned).active_tasks.is_some());
        assert_eq!(m.epoch(), 1, "the membership survives a coordinator move");
        // GROUP_AUTHORIZATION_FAILED, INVALID_REQUEST, STREAMS_INVALID_TOPOLOGY: fatal.
        for code in [30, 42, 130] {
            let e = m.handle(&FakeCoordinator::error(code), &topology, APP, now);
            assert!(e.is_err(), "code {code}");
        }
    }

    #[test]
    fn statuses_hosts_and_bad_assignments_are_read() {
        let topology = word_count();
        let mut m = member(&topology);
        m.request(&Tasks::default());
        let status = |code: i8, detail: &'static str| {
            response::Status::default()
                .with_status_code(code)
                .with_status_detail(StrBytes::from_static_str(detail))
        };
        let endpoint = response::EndpointToPartitions::default()
            .with_user_endpoint(
                response::Endpoint::default()
                    .with_host(StrBytes::from_static_str("h"))
                    .with_port(1),
            )
            .with_active_partitions(vec![response::TopicPartition::default()
                .with_topic(StrBytes::from_static_str("lines"))
                .with_partitions(vec![2])])
            .with_standby_partitions(vec![response::TopicPartition::default()
                .with_topic(StrBytes::from_static_str("app-counts-repartition"))
                .with_partitions(vec![0])]);
        let resp = StreamsGroupHeartbeatResponse::default()
            .with_member_epoch(1)
            .with_heartbeat_interval_ms(0)
            .with_status(Some(vec![
                status(STATUS_MISSING_SOURCE_TOPICS, "lines"),
                status(STATUS_SHUTDOWN_APPLICATION, "asked"),
                status(9, "new"),
            ]))
            .with_partitions_by_user_endpoint(Some(vec![endpoint]));
        let now = Instant::now();
        m.handle(&resp, &topology, APP, now).unwrap();
        assert_eq!(
            m.statuses,
            vec![
                GroupStatus::MissingSourceTopics("lines".into()),
                GroupStatus::ShutdownApplication("asked".into()),
                GroupStatus::Other(9, "new".into()),
            ]
        );
        let hosts = m.hosts.take().unwrap();
        assert_eq!(
            hosts["h:1"],
            (vec![TaskId::new(0, 2)], vec![TaskId::new(1, 0)])
        );
        assert!(
            m.due(now + Duration::from_millis(HEARTBEAT_INTERVAL_MS_MIN)),
            "interval clamped"
        );
        // Null statuses: unchanged.
        let quiet = StreamsGroupHeartbeatResponse::default().with_member_epoch(1);
        m.handle(&quiet, &topology, APP, now).unwrap();
        assert_eq!(m.statuses.len(), 3);
        // A subtopology this topology lacks, or a negative partition: an error.
        for (sub, p) in [("7", 0), ("x", 0), ("0", -1)] {
            let bad = StreamsGroupHeartbeatResponse::default()
                .with_member_epoch(2)
                .with_active_tasks(Some(vec![response::TaskIds::default()
                    .with_subtopology_id(StrBytes::from_static_str(sub))
                    .with_partitions(vec![p])]))
                .with_standby_tasks(Some(Vec::new()))
                .with_warmup_tasks(Some(Vec::new()));
            assert!(m.handle(&bad, &topology, APP, now).is_err(), "{sub}_{p}");
        }
        let bad = |server| {
            StreamsMember::new(
                "p",
                Some(server),
                1,
                request::Topology::default(),
                None,
                Vec::new(),
            )
            .is_err()
        };
        assert!(bad("no-port"));
        assert!(bad(":1"));
    }

    #[test]
    fn the_declared_topology_names_sources_repartitions_changelogs_and_copartitions() {
        let topology = word_count();
        let mut partitions = BTreeMap::new();
        partitions.insert(TopicName::Internal("counts-repartition".into()), 6);
        let wire = wire_topology(&topology, APP, &partitions, 3);
        let subs = &wire.subtopologies;
        assert_eq!(subs.len(), 2);
        let names = |v: &[StrBytes]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // The repartition topic's name comes from the topology; find it by role.
        assert_eq!(subs[0].subtopology_id.as_str(), "0");
        assert_eq!(names(&subs[0].source_topics), vec!["lines"]);
        assert_eq!(subs[0].repartition_sink_topics.len(), 1);
        let repartition = subs[0].repartition_sink_topics[0].to_string();
        assert!(repartition.starts_with("app-") && repartition.ends_with("-repartition"));
        assert!(subs[1].source_topics.is_empty());
        let rin = &subs[1].repartition_source_topics;
        assert_eq!(rin.len(), 1);
        assert_eq!(rin[0].name.as_str(), repartition);
        assert_eq!(rin[0].replication_factor, 3);
        assert!(rin[0]
            .topic_configs
            .iter()
            .any(|kv| kv.key.as_str() == "cleanup.policy" && kv.value.as_str() == "delete"));
        let changelogs = &subs[1].state_changelog_topics;
        assert_eq!(changelogs.len(), 1);
        assert_eq!(changelogs[0].name.as_str(), "app-counts-changelog");
        assert_eq!(changelogs[0].partitions, 0, "derived by the broker");
        assert!(changelogs[0]
            .topic_configs
            .iter()
            .any(|kv| kv.key.as_str() == "cleanup.policy" && kv.value.as_str() == "compact"));
        // A stream-table join co-partitions its two user topics.
        let b = StreamsBuilder::new();
        let table = b.table(
            "profiles",
            Consumed::with(Serdes::string(), Serdes::string()),
            Materialized::as_store("profiles"),
        );
        b.stream("clicks", Consumed::with(Serdes::string(), Serdes::string()))
            .join_table(&table, |c: &String, p: &String| format!("{c}{p}"))
            .to(
                "enriched",
                Produced::with(Serdes::string(), Serdes::string()),
            );
        let joined = b.build().unwrap();
        let wire = wire_topology(&joined, APP, &BTreeMap::new(), -1);
        let sub = &wire.subtopologies[0];
        assert_eq!(names(&sub.source_topics), vec!["clicks", "profiles"]);
        assert_eq!(sub.copartition_groups.len(), 1);
        assert_eq!(sub.copartition_groups[0].source_topics, vec![0, 1]);
    }
}
