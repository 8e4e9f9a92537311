//! The classic group-coordinator runtime: one tokio task owns a strom-group [`Coordinator`]
//! per `__consumer_offsets` partition, fed by a bounded channel. Each command's records are
//! appended to the partition that owns the group and made durable before any reply leaves.
//!
//! Ordering: the task handles one command (or timer tick) at a time, appends its records,
//! waits for the append (fsynced under `sync-on-commit`, as acks=all Produce), and only then
//! releases the replies. A JoinGroup that waits for a rebalance holds only its own
//! connection (which serves one request at a time, as Kafka mutes a channel), never the task.
//! On a failed append the affected requests get NOT_COORDINATOR (retriable) and the
//! partition's coordinator is dropped, so that it is rebuilt from the log.
//!
//! Loading: a partition's log is read in a task of its own (started by the first command
//! for it, and by the tick for every partition this broker leads, a few at a time). Until
//! it is installed, that partition's commands answer COORDINATOR_LOAD_IN_PROGRESS (Kafka's
//! retriable code); other partitions are served meanwhile.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strom_group::consumer::{
    ConsumerConfig, ConsumerError, ConsumerHeartbeatResponse, DescribedGroup as ConsumerDescribed,
};
use strom_group::{
    Command, Config, Coordinator, DescribedGroup, ErrorCode, GroupRecord, JoinGroupResponse,
    LeaveGroupResponse, ListGroupsResponse, OffsetDeleteResponse, OffsetFetchResponse, Output,
    PartitionResult, RequestId, Response, SyncGroupResponse,
};
use strom_meta::{
    ControllerReply, ControllerRequest, CreatableTopic, CreateTopicsRequest, MetadataImage,
    TopicIdPartition,
};
use tokio::sync::{mpsc, oneshot};

use crate::config::BrokerConfig;
use crate::metadata::now_ms;
use crate::replicas::Partition;
use crate::server::BrokerContext;

/// Kafka's internal topic of group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// `offsets.topic.num.partitions` (Kafka's default), used until the topic exists.
pub const OFFSETS_TOPIC_PARTITIONS: i32 = 50;
/// Commands waiting for the coordinator task; senders wait when it is full.
const QUEUE_DEPTH: usize = 1_024;
/// How often timers (session expiry, rebalance deadlines) are checked.
const TICK_INTERVAL_MS: u64 = 100;
/// Partitions loaded at once by background preloading (a command's own load always starts).
const LOADS_MAX: usize = 4;
/// The most read from the log at once while loading a partition.
const LOAD_READ_BYTES: u64 = 1024 * 1024;
/// The most read iterations while loading a partition (bounds a log that keeps growing).
const LOAD_READS_MAX: usize = 1_000_000;

/// A command for the coordinator, answered through `reply`.
#[derive(Debug)]
pub struct GroupCall {
    /// The `__consumer_offsets` partition that owns the group.
    pub partition: i32,
    /// The command.
    pub command: Command,
    /// Where the response goes.
    pub reply: oneshot::Sender<Response>,
}

/// The handlers' side of the coordinator task.
#[derive(Debug, Clone)]
pub struct GroupHandle {
    sender: mpsc::Sender<GroupCall>,
}

impl GroupHandle {
    /// A handle and the receiver [`run`] consumes.
    pub fn new() -> (GroupHandle, mpsc::Receiver<GroupCall>) {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        (GroupHandle { sender }, receiver)
    }

    /// Sends a command and waits for its response; `None` when the task is gone.
    pub async fn call(&self, partition: i32, command: Command) -> Option<Response> {
        let (reply, response) = oneshot::channel();
        let call = GroupCall {
            partition,
            command,
            reply,
        };
        self.sender.send(call).await.ok()?;
        response.await.ok()
    }
}

/// The `__consumer_offsets` partition of a group, from the topic's partition count.
pub fn partition_for(image: &MetadataImage, group_id: &str) -> i32 {
    let partitions = image
        .topic_by_name(OFFSETS_TOPIC)
        .map_or(OFFSETS_TOPIC_PARTITIONS, |t| {
            i32::try_from(t.partitions.len()).unwrap_or(OFFSETS_TOPIC_PARTITIONS)
        });
    let partitions = u32::try_from(partitions.max(1)).unwrap_or(1);
    i32::try_from(strom_group::coordinator_partition(group_id, partitions)).unwrap_or(0)
}

/// Creates `__consumer_offsets` through the controller if it does not exist (as Kafka does on
/// the first FindCoordinator), then opens its logs. Returns whether it exists now.
pub async fn ensure_offsets_topic(context: &BrokerContext) -> bool {
    if context
        .metadata
        .image()
        .topic_by_name(OFFSETS_TOPIC)
        .is_some()
    {
        return true;
    }
    let request = ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: OFFSETS_TOPIC.to_string(),
            num_partitions: context.config.offsets_topic_num_partitions,
            // A single node: replication factor 1.
            replication_factor: 1,
            assignments: Vec::new(),
            configs: vec![
                ("cleanup.policy".to_string(), Some("compact".to_string())),
                ("compression.type".to_string(), Some("producer".to_string())),
            ],
        }],
        validate_only: false,
    });
    match context.metadata.submit(request).await {
        Ok(ControllerReply::CreateTopics(results)) => {
            for r in results.iter().filter_map(|r| r.error.as_ref()) {
                tracing::info!(error = %r.message, "creating {OFFSETS_TOPIC}");
            }
        }
        Ok(other) => tracing::warn!(?other, "unexpected reply creating {OFFSETS_TOPIC}"),
        Err(error) => tracing::warn!(%error, "cannot create {OFFSETS_TOPIC}"),
    }
    let image = context.metadata.image();
    let exists = image.topic_by_name(OFFSETS_TOPIC).is_some();
    context.replicas.reconcile_latest(&context.metadata).await;
    exists
}

/// A waiting request: its reply channel and the kind of command (for error replies).
struct Pending {
    reply: oneshot::Sender<Response>,
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Join,
    Sync,
    Heartbeat,
    Leave,
    Commit,
    Fetch,
    Describe,
    List,
    Delete,
    OffsetDelete,
    ConsumerHeartbeat,
    ConsumerDescribe,
}

/// The coordinator task's state.
struct Runtime {
    context: Arc<BrokerContext>,
    coordinators: HashMap<i32, Coordinator>,
    /// Partitions whose log is being read by a load task; their groups answer
    /// COORDINATOR_LOAD_IN_PROGRESS meanwhile.
    loading: HashSet<i32>,
    loaded: mpsc::Sender<Loaded>,
    pending: HashMap<RequestId, (i32, Pending)>,
    next_request_id: RequestId,
    salt: u64,
}

/// A finished load task: the rebuilt coordinator, or `None` when the log could not be read.
struct Loaded {
    partition: i32,
    coordinator: Option<Coordinator>,
}

/// Runs the coordinator task until the broker stops (the task is aborted then).
pub async fn run(context: Arc<BrokerContext>, mut calls: mpsc::Receiver<GroupCall>) {
    let (loaded, mut loads) = mpsc::channel(LOADS_MAX);
    let mut runtime = Runtime {
        context,
        coordinators: HashMap::new(),
        loading: HashSet::new(),
        loaded,
        pending: HashMap::new(),
        next_request_id: 0,
        salt: u64::try_from(now_ms()).unwrap_or(0),
    };
    let mut interval = tokio::time::interval(Duration::from_millis(TICK_INTERVAL_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            call = calls.recv() => match call {
                Some(call) => runtime.on_call(call).await,
                None => return,
            },
            Some(loaded) = loads.recv() => runtime.on_loaded(loaded),
            _ = interval.tick() => runtime.on_tick().await,
        }
    }
}

impl Runtime {
    async fn on_call(&mut self, call: GroupCall) {
        let kind = kind_of(&call.command);
        let Some(log) = self.partition_log(call.partition) else {
            let _ = call
                .reply
                .send(error_response(kind, ErrorCode::CoordinatorNotAvailable));
            return;
        };
        if !self.coordinators.contains_key(&call.partition) {
            // As Kafka: the partition's groups wait for nothing, the client retries.
            self.start_load(call.partition, &log);
            let _ = call
                .reply
                .send(error_response(kind, ErrorCode::CoordinatorLoadInProgress));
            return;
        }
        self.next_request_id = self.next_request_id.wrapping_add(1);
        let request_id = self.next_request_id;
        self.pending.insert(
            request_id,
            (
                call.partition,
                Pending {
                    reply: call.reply,
                    kind,
                },
            ),
        );
        let Some(coordinator) = self.coordinators.get_mut(&call.partition) else {
            return;
        };
        let output = coordinator.handle(request_id, call.command, now_ms());
        self.complete(call.partition, &log, output).await;
    }

    /// Reads a partition's log in a task of its own, so that the other partitions' groups
    /// are served meanwhile; [`Runtime::on_loaded`] installs the result.
    fn start_load(&mut self, partition: i32, log: &Arc<Partition>) {
        if !self.loading.insert(partition) {
            return;
        }
        let config = coordinator_config(&self.context.config, self.salt);
        let log = Arc::clone(log);
        let loaded = self.loaded.clone();
        tokio::spawn(async move {
            let coordinator = load(&log, config).await;
            let _ = loaded
                .send(Loaded {
                    partition,
                    coordinator,
                })
                .await;
        });
    }

    fn on_loaded(&mut self, loaded: Loaded) {
        self.loading.remove(&loaded.partition);
        // A partition that moved away meanwhile is not installed; a failed load is retried
        // by the next command or tick.
        if let (Some(coordinator), Some(_)) =
            (loaded.coordinator, self.partition_log(loaded.partition))
        {
            self.coordinators.insert(loaded.partition, coordinator);
        }
    }

    /// Starts loading partitions this broker leads and has not loaded, a few at a time,
    /// as Kafka loads a partition when it becomes its leader.
    fn preload(&mut self) {
        let image = self.context.metadata.image();
        let Some(topic) = image.topic_by_name(OFFSETS_TOPIC) else {
            return;
        };
        let partitions: Vec<i32> = topic.partitions.keys().copied().collect();
        for partition in partitions {
            if self.loading.len() >= LOADS_MAX {
                return;
            }
            if self.coordinators.contains_key(&partition) || self.loading.contains(&partition) {
                continue;
            }
            if let Some(log) = self.partition_log(partition) {
                self.start_load(partition, &log);
            }
        }
    }

    async fn on_tick(&mut self) {
        // Requests whose connection went away are forgotten (their replies have nowhere to go).
        self.pending.retain(|_, (_, p)| !p.reply.is_closed());
        self.preload();
        let partitions: Vec<i32> = self.coordinators.keys().copied().collect();
        for partition in partitions {
            let Some(log) = self.partition_log(partition) else {
                // The partition moved away or its topic was deleted: forget its groups.
                self.coordinators.remove(&partition);
                continue;
            };
            let Some(coordinator) = self.coordinators.get_mut(&partition) else {
                continue;
            };
            let output = coordinator.tick(now_ms());
            if !output.records.is_empty() || !output.replies.is_empty() {
                self.complete(partition, &log, output).await;
            }
        }
    }

    /// Appends the output's records durably, then releases its replies (or fails them).
    async fn complete(&mut self, partition: i32, log: &Arc<Partition>, output: Output) {
        let appended = if output.records.is_empty() {
            Ok(())
        } else {
            append(&self.context, log, &output.records).await
        };
        match appended {
            Ok(()) => {
                for reply in output.replies {
                    if let Some((_, pending)) = self.pending.remove(&reply.request_id) {
                        let _ = pending.reply.send(reply.response);
                    }
                }
            }
            Err(reason) => {
                tracing::warn!(partition, %reason, "group records not appended; reloading");
                // In-memory state already reflects the records: rebuild it from the log.
                self.coordinators.remove(&partition);
                for reply in output.replies {
                    if let Some((_, pending)) = self.pending.remove(&reply.request_id) {
                        let _ = pending
                            .reply
                            .send(error_response(pending.kind, ErrorCode::NotCoordinator));
                    }
                }
                // Requests still parked in the dropped coordinator (JoinGroup waits) would
                // never be answered: fail them too.
                let parked: Vec<RequestId> = self
                    .pending
                    .iter()
                    .filter(|(_, (p, _))| *p == partition)
                    .map(|(id, _)| *id)
                    .collect();
                for id in parked {
                    if let Some((_, pending)) = self.pending.remove(&id) {
                        let _ = pending
                            .reply
                            .send(error_response(pending.kind, ErrorCode::NotCoordinator));
                    }
                }
            }
        }
    }

    fn partition_log(&self, partition: i32) -> Option<Arc<Partition>> {
        let image = self.context.metadata.image();
        let topic = image.topic_by_name(OFFSETS_TOPIC)?;
        let tp = TopicIdPartition {
            topic_id: topic.topic_id,
            partition,
        };
        let state = image.partition(tp.topic_id, partition)?;
        if state.leader != self.context.config.node_id {
            return None;
        }
        self.context.replicas.get(tp)
    }
}

/// Rebuilds a coordinator from the partition's whole log (up to its high watermark).
async fn load(log: &Arc<Partition>, config: Config) -> Option<Coordinator> {
    let reading = Arc::clone(log);
    let records = tokio::task::spawn_blocking(move || read_records(&reading))
        .await
        .ok()?;
    let records = match records {
        Ok(records) => records,
        Err(reason) => {
            tracing::warn!(partition = log.tp.partition, %reason, "cannot load groups");
            return None;
        }
    };
    let mut coordinator = Coordinator::new(config);
    if let Err(error) = coordinator.load(records.iter(), now_ms()) {
        tracing::warn!(partition = log.tp.partition, %error, "cannot load groups");
        return None;
    }
    tracing::info!(
        partition = log.tp.partition,
        records = records.len(),
        "group coordinator loaded"
    );
    Some(coordinator)
}

/// The coordinator's bounds from the broker's `group.*` / `offset*` keys.
pub(crate) fn coordinator_config(config: &BrokerConfig, salt: u64) -> Config {
    Config {
        initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
        group_max_size: usize::try_from(config.group_max_size).unwrap_or(usize::MAX),
        min_session_timeout_ms: config.group_min_session_timeout_ms,
        max_session_timeout_ms: config.group_max_session_timeout_ms,
        offset_metadata_max_bytes: usize::try_from(config.offset_metadata_max_bytes).unwrap_or(0),
        offsets_retention_ms: config.offsets_retention_minutes.saturating_mul(60_000),
        offsets_retention_check_interval_ms: config.offsets_retention_check_interval_ms,
        member_id_salt: salt,
        consumer: ConsumerConfig {
            session_timeout_ms: config.group_consumer_session_timeout_ms,
            heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms,
            max_size: usize::try_from(config.group_consumer_max_size).unwrap_or(usize::MAX),
            assignors: config.group_consumer_assignors.clone(),
            member_id_salt: salt,
        },
    }
}

fn read_records(partition: &Partition) -> Result<Vec<GroupRecord>, String> {
    let log = &partition.log;
    let end = log.high_watermark();
    let mut offset = log.log_start_offset();
    let mut out = Vec::new();
    let limits = strom_records::DecodeLimits::default();
    for _ in 0..LOAD_READS_MAX {
        if offset >= end {
            return Ok(out);
        }
        let info = log
            .read(offset, LOAD_READ_BYTES, end)
            .map_err(|e| e.to_string())?;
        let Some(range) = info.range else {
            return Ok(out);
        };
        let bytes = range.read_bytes().map_err(|e| e.to_string())?;
        let mut advanced = false;
        for batch in strom_records::batches(&bytes) {
            let (header, span) = batch.map_err(|e| e.to_string())?;
            let next = header.last_offset().saturating_add(1);
            if next <= offset {
                continue;
            }
            if !header.is_control() {
                let raw = bytes.get(span).unwrap_or_default();
                let records = strom_records::records(raw, &limits).map_err(|e| e.to_string())?;
                for record in records {
                    let position = header.base_offset + i64::from(record.offset_delta);
                    if position < offset {
                        continue;
                    }
                    if let Some(key) = record.key {
                        out.push(GroupRecord {
                            key,
                            value: record.value,
                        });
                    }
                }
            }
            offset = next;
            advanced = true;
        }
        if !advanced {
            return Err(format!("no progress reading at offset {offset}"));
        }
    }
    Err("log too long to load".to_string())
}

/// Appends one batch holding `records` and waits until it is durable per the broker's
/// durability mode (fsynced under `sync-on-commit`, page cache otherwise, as acks=all).
async fn append(
    context: &BrokerContext,
    log: &Arc<Partition>,
    records: &[GroupRecord],
) -> Result<(), String> {
    let now = now_ms();
    let mut builder = strom_records::BatchBuilder::new(0, now);
    for record in records {
        builder
            .append(
                now,
                Some(record.key.clone()),
                record.value.clone(),
                Vec::new(),
            )
            .map_err(|e| e.to_string())?;
    }
    let mut bytes = builder.build().map_err(|e| e.to_string())?;
    let image = context.metadata.image();
    let leader_epoch = image
        .partition(log.tp.topic_id, log.tp.partition)
        .map_or(-1, |p| p.leader_epoch);
    let sync_on_commit = context.config.sync_on_commit();
    let appending = Arc::clone(log);
    let result = tokio::task::spawn_blocking(move || {
        appending.append(&mut bytes, leader_epoch, sync_on_commit, now_ms())
    })
    .await
    .map_err(|e| e.to_string())?;
    result.map_err(|e| e.to_string())?;
    context.replicas.notify_appended();
    Ok(())
}

fn kind_of(command: &Command) -> Kind {
    match command {
        Command::JoinGroup(_) => Kind::Join,
        Command::SyncGroup(_) => Kind::Sync,
        Command::Heartbeat(_) => Kind::Heartbeat,
        Command::LeaveGroup(_) => Kind::Leave,
        Command::OffsetCommit(_) => Kind::Commit,
        Command::OffsetFetch(_) => Kind::Fetch,
        Command::DescribeGroup(_) => Kind::Describe,
        Command::ListGroups(_) => Kind::List,
        Command::DeleteGroup(_) => Kind::Delete,
        Command::OffsetDelete(_) => Kind::OffsetDelete,
        Command::ConsumerGroupHeartbeat(_) => Kind::ConsumerHeartbeat,
        Command::ConsumerGroupDescribe(_) => Kind::ConsumerDescribe,
    }
}

/// A whole-request error of the command's kind.
pub(crate) fn error_response(kind: Kind, error: ErrorCode) -> Response {
    match kind {
        Kind::Join => Response::JoinGroup(JoinGroupResponse {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: String::new(),
            members: Vec::new(),
            skip_assignment: false,
        }),
        Kind::Sync => Response::SyncGroup(SyncGroupResponse {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }),
        Kind::Heartbeat => Response::Heartbeat(error),
        Kind::Leave => Response::LeaveGroup(LeaveGroupResponse {
            error,
            members: Vec::new(),
        }),
        // Per-partition errors are filled in by the handler from this marker.
        Kind::Commit => Response::OffsetCommit(vec![PartitionResult {
            topic: String::new(),
            partition: -1,
            error,
        }]),
        Kind::Fetch => Response::OffsetFetch(OffsetFetchResponse {
            error,
            partitions: Vec::new(),
        }),
        Kind::Describe => Response::DescribeGroup(DescribedGroup {
            error,
            group_id: String::new(),
            state: String::new(),
            protocol_type: String::new(),
            protocol_data: String::new(),
            members: Vec::new(),
        }),
        Kind::List => Response::ListGroups(ListGroupsResponse {
            error,
            groups: Vec::new(),
        }),
        Kind::Delete => Response::DeleteGroup(error),
        Kind::OffsetDelete => Response::OffsetDelete(OffsetDeleteResponse {
            error,
            partitions: Vec::new(),
        }),
        Kind::ConsumerHeartbeat => Response::ConsumerGroupHeartbeat(
            ConsumerHeartbeatResponse::error(ConsumerError::new(error, String::new())),
        ),
        Kind::ConsumerDescribe => Response::ConsumerGroupDescribe(ConsumerDescribed {
            group_id: String::new(),
            error: Some(ConsumerError::new(error, String::new())),
            state: String::new(),
            group_epoch: 0,
            assignment_epoch: 0,
            assignor_name: String::new(),
            members: Vec::new(),
        }),
    }
}
