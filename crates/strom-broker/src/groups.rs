//! The group-coordinator runtime (classic and KIP-848 `consumer` groups alike): one tokio
//! task owns a strom-group [`Coordinator`]
//! per `__consumer_offsets` partition this broker leads, fed by a bounded channel. Each
//! command's records are appended to the partition that owns the group, and replies leave
//! only once those records are committed.
//!
//! Leadership: a partition's coordinator lives here only while this broker leads the
//! partition, at the leader epoch it was loaded at. When this broker becomes the leader (a
//! new metadata image, or the periodic check) it loads the partition's groups in a task of
//! its own; meanwhile that partition's commands answer COORDINATOR_LOAD_IN_PROGRESS
//! (retriable) and the other partitions are served. When it stops leading (or the leader
//! epoch moves), the coordinator is unloaded: every request still waiting on it (a
//! JoinGroup parked for its rebalance, replies waiting for their commit) gets
//! NOT_COORDINATOR, and so does every later command, as Kafka's `CoordinatorRuntime` does.
//!
//! Commit: the task handles one command (or timer tick) at a time, appends its records as
//! the leader (the Produce path: fsynced under `sync-on-commit`), then defers the replies
//! until the partition's committed offset reaches everything the coordinator's state
//! reflects (Kafka's deferred event queue): replies without records wait as well, so no
//! answer ever rests on records that are not committed yet. [`committed_offset`] is the
//! one place that says what committed means (today the high watermark, which the
//! replication layer moves once the ISR has the records); [`Runtime::release_committed`]
//! is where waiting replies are let go. Replies still waiting after
//! `offsets.commit.timeout.ms` get COORDINATOR_NOT_AVAILABLE (Kafka's write timeout). On a
//! failed append the affected requests get NOT_COORDINATOR and the coordinator is dropped,
//! so that it is rebuilt from the log.
//!
//! Loading reads the log up to its end (not only to the high watermark, as Kafka's loader
//! does): what a previous leader wrote is committed once this leader's high watermark
//! passes it, and until then no reply is released.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strom_group::consumer::{
    ConsumerConfig, ConsumerError, ConsumerHeartbeatResponse, DescribedGroup as ConsumerDescribed,
};
use strom_group::streams::{DescribedStreamsGroup, StreamsConfig, StreamsHeartbeatResponse};
use strom_group::{
    Command, Config, Coordinator, DescribedGroup, ErrorCode, GroupRecord, JoinGroupResponse,
    LeaveGroupResponse, ListGroupsResponse, OffsetDeleteResponse, OffsetFetchResponse, Output,
    PartitionResult, Reply, RequestId, Response, SyncGroupResponse,
};
use strom_meta::{
    ControllerReply, ControllerRequest, CreatableTopic, CreateTopicsRequest, MetadataImage,
    TopicIdPartition,
};
use strom_share::group::{ShareCommand, ShareConfig, ShareGroupRecord, ShareGroups, ShareResponse};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::BrokerConfig;
use crate::metadata::now_ms;
use crate::partition::{Appended, Commit, Partition};
use crate::server::BrokerContext;

/// Kafka's internal topic of group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// `offsets.topic.num.partitions` (Kafka's default), used until the topic exists.
pub const OFFSETS_TOPIC_PARTITIONS: i32 = 50;
/// Kafka's `offsets.commit.timeout.ms` default: the longest a reply waits for its records
/// to be committed before it answers COORDINATOR_NOT_AVAILABLE.
const COMMIT_TIMEOUT_MS: i64 = 5_000;
/// Commands waiting for the coordinator task; senders wait when it is full.
const QUEUE_DEPTH: usize = 1_024;
/// How often timers (session expiry, rebalance deadlines) and leadership are checked.
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

/// A share group command for the coordinator, answered through `reply`.
#[derive(Debug)]
pub struct ShareCall {
    /// The `__consumer_offsets` partition that owns the group.
    pub partition: i32,
    pub command: ShareCommand,
    pub reply: oneshot::Sender<ShareResponse>,
}

/// What the handlers send the coordinator task.
#[derive(Debug)]
pub enum GroupMessage {
    /// A group command (boxed: it is much larger than the other message).
    Call(Box<GroupCall>),
    /// A share group command (share groups live in the same partitions, one type per id).
    Share(Box<ShareCall>),
    /// Load this partition now if this broker leads it (FindCoordinator is about to name
    /// this broker).
    Load(i32),
}

/// The coordinator task's inputs: the handlers' messages, and where it publishes which
/// partitions are loaded.
#[derive(Debug)]
pub struct GroupInbox {
    messages: mpsc::Receiver<GroupMessage>,
    loaded: watch::Sender<Arc<HashSet<i32>>>,
}

/// The handlers' side of the coordinator task.
#[derive(Debug, Clone)]
pub struct GroupHandle {
    sender: mpsc::Sender<GroupMessage>,
    loaded: watch::Receiver<Arc<HashSet<i32>>>,
}

impl GroupHandle {
    /// A handle and the inbox [`run`] consumes.
    pub fn new() -> (GroupHandle, GroupInbox) {
        let (sender, messages) = mpsc::channel(QUEUE_DEPTH);
        let (loaded_tx, loaded) = watch::channel(Arc::new(HashSet::new()));
        (
            GroupHandle { sender, loaded },
            GroupInbox {
                messages,
                loaded: loaded_tx,
            },
        )
    }

    /// Sends a command and waits for its response; `None` when the task is gone.
    pub async fn call(&self, partition: i32, command: Command) -> Option<Response> {
        let (reply, response) = oneshot::channel();
        let call = GroupCall {
            partition,
            command,
            reply,
        };
        self.sender
            .send(GroupMessage::Call(Box::new(call)))
            .await
            .ok()?;
        response.await.ok()
    }

    /// Sends a share group command and waits for its response; `None` when the task is
    /// gone.
    pub async fn call_share(&self, partition: i32, command: ShareCommand) -> Option<ShareResponse> {
        let (reply, response) = oneshot::channel();
        let call = ShareCall {
            partition,
            command,
            reply,
        };
        self.sender
            .send(GroupMessage::Share(Box::new(call)))
            .await
            .ok()?;
        response.await.ok()
    }

    /// A COMMIT (`commit`) or ABORT marker for `producer_id` is now replicated on
    /// `__consumer_offsets` partition `offsets_partition` (Kafka's
    /// `GroupCoordinator.onTransactionCompleted`): the producer's offsets staged there by
    /// TxnOffsetCommit become committed, or are dropped. When the partition's coordinator is
    /// not loaded here (or is loading) nothing happens: its load replays the marker from the
    /// log, which holds it already.
    pub async fn on_txn_marker(
        &self,
        offsets_partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) {
        let command = Command::TxnMarker {
            producer_id,
            commit,
        };
        if !matches!(
            self.call(offsets_partition, command).await,
            Some(Response::TxnMarker)
        ) {
            tracing::debug!(
                offsets_partition,
                producer_id,
                producer_epoch,
                "transaction marker not applied by a loaded group coordinator"
            );
        }
    }

    /// Whether `partition`'s coordinator is loaded (its groups are served).
    pub fn is_loaded(&self, partition: i32) -> bool {
        self.loaded.borrow().contains(&partition)
    }

    /// Asks for `partitions` to be loaded and waits (at most `wait`) until they are;
    /// returns whether they all are.
    pub async fn wait_loaded(&self, partitions: &[i32], wait: Duration) -> bool {
        for partition in partitions {
            if self
                .sender
                .send(GroupMessage::Load(*partition))
                .await
                .is_err()
            {
                return false;
            }
        }
        let mut loaded = self.loaded.clone();
        let all = |set: &Arc<HashSet<i32>>| partitions.iter().all(|p| set.contains(p));
        tokio::time::timeout(wait, loaded.wait_for(all))
            .await
            .is_ok_and(|r| r.is_ok())
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
/// the first FindCoordinator), with `offsets.topic.num.partitions` partitions of
/// `offsets.topic.replication.factor` replicas, then opens its logs. Returns whether it
/// exists now: with fewer live brokers than the replication factor the controller refuses
/// it (INVALID_REPLICATION_FACTOR) and FindCoordinator answers COORDINATOR_NOT_AVAILABLE.
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
            replication_factor: context.config.offsets_topic_replication_factor,
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
    StreamsHeartbeat,
    StreamsDescribe,
    TxnCommit,
    TxnMarker,
}

/// The coordinator of one partition this broker leads.
struct Shard {
    coordinator: Coordinator,
    /// The partition's share groups (KIP-932): their ids never name a classic or consumer
    /// group of `coordinator`, and the other way round.
    share: ShareGroups,
    /// The leader epoch this broker led the partition at when the shard was loaded; a
    /// different epoch (even with this broker leading again) means others may have written.
    leader_epoch: i32,
    log: Arc<Partition>,
    /// The end offset of every record the coordinator's state reflects (loaded or written).
    written_end: i64,
    /// Replies waiting until the committed offset reaches their offset, in offset order,
    /// with when they started waiting.
    deferred: VecDeque<Deferred>,
}

struct Deferred {
    end_offset: i64,
    since_ms: i64,
    replies: Vec<Reply>,
    /// Share group responses, with where each goes.
    share: Vec<ShareReply>,
}

/// A share group response waiting for its records to commit.
type ShareReply = (oneshot::Sender<ShareResponse>, ShareResponse);

/// Where this broker stands with one partition.
enum Role {
    /// Another broker leads it, or it does not exist (yet).
    NotLeader,
    /// This broker leads it at this epoch, but its log is not open or has not become
    /// leader at that epoch yet.
    LeaderOpening,
    /// This broker leads it at this epoch.
    Leader(Arc<Partition>, i32),
}

/// The coordinator task's state.
struct Runtime {
    context: Arc<BrokerContext>,
    shards: HashMap<i32, Shard>,
    /// Partitions whose log is being read by a load task, with the leader epoch loaded for;
    /// their groups answer COORDINATOR_LOAD_IN_PROGRESS meanwhile.
    loading: HashMap<i32, i32>,
    /// Coordinators loaded since the last summary line.
    loaded_unreported: usize,
    loads: mpsc::Sender<Loaded>,
    published: watch::Sender<Arc<HashSet<i32>>>,
    pending: HashMap<RequestId, (i32, Pending)>,
    next_request_id: RequestId,
    salt: u64,
    /// Transaction markers that arrived while their partition was loading, applied when it
    /// is installed (`on_loaded`).
    markers_while_loading: HashMap<i32, Vec<(i64, bool)>>,
}

/// A finished load task: the rebuilt coordinator with the log end it read to, or `None`
/// when the log could not be read.
struct Loaded {
    partition: i32,
    leader_epoch: i32,
    log: Arc<Partition>,
    result: Option<(Coordinator, ShareGroups, i64)>,
}

/// Runs the coordinator task until the broker stops (the task is aborted then).
pub async fn run(context: Arc<BrokerContext>, inbox: GroupInbox) {
    let GroupInbox {
        mut messages,
        loaded: published,
    } = inbox;
    let (loads, mut finished) = mpsc::channel(LOADS_MAX);
    let mut images = context.metadata.watch();
    // Replies wait for the high watermark: woken whenever one moves.
    let mut appends = context.replicas.subscribe_high_watermarks();
    let mut runtime = Runtime {
        context,
        shards: HashMap::new(),
        loading: HashMap::new(),
        loaded_unreported: 0,
        loads,
        published,
        pending: HashMap::new(),
        next_request_id: 0,
        salt: u64::try_from(now_ms()).unwrap_or(0),
        markers_while_loading: HashMap::new(),
    };
    let mut interval = tokio::time::interval(Duration::from_millis(TICK_INTERVAL_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let waiting = runtime.shards.values().any(|s| !s.deferred.is_empty());
        tokio::select! {
            message = messages.recv() => match message {
                Some(GroupMessage::Call(call)) => runtime.on_call(*call).await,
                Some(GroupMessage::Share(call)) => runtime.on_share_call(*call).await,
                Some(GroupMessage::Load(partition)) => runtime.on_load_request(partition),
                None => return,
            },
            Some(loaded) = finished.recv() => runtime.on_loaded(loaded),
            changed = images.changed() => {
                if changed.is_err() {
                    return;
                }
                images.borrow_and_update();
                runtime.follow_leadership();
            }
            // High watermarks moved: release what they cover (only while replies wait).
            _ = appends.changed(), if waiting => runtime.release_all(),
            _ = interval.tick() => runtime.on_tick().await,
        }
    }
}

/// The offset below which a partition's records are committed: the high watermark, which
/// the replica manager moves once the records are durable and on every ISR member. Every
/// reply of the coordinator waits for it (see [`Runtime::release_committed`]).
fn committed_offset(log: &Partition) -> i64 {
    log.log.high_watermark()
}

impl Runtime {
    fn role(&self, image: &MetadataImage, partition: i32) -> Role {
        let Some(topic) = image.topic_by_name(OFFSETS_TOPIC) else {
            return Role::NotLeader;
        };
        let tp = TopicIdPartition {
            topic_id: topic.topic_id,
            partition,
        };
        match image.partition(tp.topic_id, partition) {
            Some(state) if state.leader == self.context.config.node_id => {
                // Leader in the image is not enough: until the partition itself has
                // become leader at that epoch, an append of the coordinator's records
                // fails and a command answered from memory would be lost with them.
                match self.context.replicas.get(tp) {
                    Some(log) if log.leader_epoch() == Some(state.leader_epoch) => {
                        Role::Leader(log, state.leader_epoch)
                    }
                    _ => Role::LeaderOpening,
                }
            }
            _ => Role::NotLeader,
        }
    }

    async fn on_call(&mut self, call: GroupCall) {
        let kind = kind_of(&call.command);
        let image = self.context.metadata.image();
        let partition = call.partition;
        let (log, epoch) = match self.role(&image, partition) {
            Role::NotLeader => {
                self.unload(partition);
                let _ = call
                    .reply
                    .send(error_response(kind, ErrorCode::NotCoordinator));
                return;
            }
            Role::LeaderOpening => {
                let _ = call
                    .reply
                    .send(error_response(kind, ErrorCode::CoordinatorLoadInProgress));
                return;
            }
            Role::Leader(log, epoch) => (log, epoch),
        };
        if self
            .shards
            .get(&partition)
            .is_some_and(|s| s.leader_epoch != epoch)
        {
            self.unload(partition);
        }
        if !self.shards.contains_key(&partition) && self.install_empty(partition, &log, epoch) {
            self.publish_loaded();
        }
        if !self.shards.contains_key(&partition) {
            if let Command::TxnMarker {
                producer_id,
                commit,
            } = call.command
            {
                // A marker that may have landed after the load read the log: applied once
                // the load is installed, before any other command (applying one the load
                // already replayed finds nothing staged, and changes nothing).
                self.start_load(partition, &log, epoch);
                self.markers_while_loading
                    .entry(partition)
                    .or_default()
                    .push((producer_id, commit));
                let _ = call.reply.send(Response::TxnMarker);
                return;
            }
            // As Kafka: the partition's groups wait for nothing, the client retries.
            self.start_load(partition, &log, epoch);
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
                partition,
                Pending {
                    reply: call.reply,
                    kind,
                },
            ),
        );
        let Some(shard) = self.shards.get_mut(&partition) else {
            return;
        };
        if let Some(output) = refuse_share_group_id(&shard.share, request_id, &call.command) {
            self.complete(partition, output, Vec::new()).await;
            return;
        }
        let output = shard.coordinator.handle(request_id, call.command, now_ms());
        self.complete(partition, output, Vec::new()).await;
    }

    /// A share group command: answered at once (share commands never wait for others),
    /// released once its records, and everything before them, are committed.
    async fn on_share_call(&mut self, call: ShareCall) {
        let image = self.context.metadata.image();
        let partition = call.partition;
        let refuse = |call: ShareCall, code| {
            let response = placeholder(&call.command).with_error(code);
            let _ = call.reply.send(response);
        };
        let (log, epoch) = match self.role(&image, partition) {
            Role::NotLeader => {
                self.unload(partition);
                return refuse(call, ErrorCode::NotCoordinator);
            }
            Role::LeaderOpening => return refuse(call, ErrorCode::CoordinatorLoadInProgress),
            Role::Leader(log, epoch) => (log, epoch),
        };
        if self
            .shards
            .get(&partition)
            .is_some_and(|s| s.leader_epoch != epoch)
        {
            self.unload(partition);
        }
        if !self.shards.contains_key(&partition) && self.install_empty(partition, &log, epoch) {
            self.publish_loaded();
        }
        let Some(shard) = self.shards.get_mut(&partition) else {
            self.start_load(partition, &log, epoch);
            return refuse(call, ErrorCode::CoordinatorLoadInProgress);
        };
        // One type per group id (Kafka's): a heartbeat or an offsets change of a classic,
        // consumer or streams group's id is GROUP_ID_NOT_FOUND.
        let not_share = |group_id: &str| {
            strom_share::group::ShareError::new(
                ErrorCode::GroupIdNotFound,
                format!("Group {group_id} is not a share group."),
            )
        };
        let (records, response) = match &call.command {
            ShareCommand::Heartbeat(hb) if shard.coordinator.has_group(&hb.group_id) => (
                Vec::new(),
                ShareResponse::Heartbeat(strom_share::group::ShareHeartbeatResponse::error(
                    not_share(&hb.group_id),
                )),
            ),
            ShareCommand::OffsetsAdmin { group_id, .. }
                if shard.coordinator.has_group(group_id) =>
            {
                (
                    Vec::new(),
                    ShareResponse::OffsetsAdmin(Err(not_share(group_id))),
                )
            }
            _ => shard.share.handle(call.command, now_ms()),
        };
        let mut response = response;
        if let ShareResponse::Heartbeat(hb) = &mut response {
            // Share partitions the heartbeat recorded as initializing: their state is
            // initialized through the persister in a task of its own (the heartbeat is
            // answered meanwhile, as Kafka's), which then records the outcome with a
            // command of its own. It may run before the initializing record commits: an
            // initialization whose record is lost is found done by the next one, which
            // reads the state before it initializes anything.
            if let Some(job) = hb.initialize.take() {
                let context = Arc::clone(&self.context);
                tokio::spawn(crate::share_group_jobs::initialize(context, partition, job));
            }
        }
        let output = Output {
            records,
            replies: Vec::new(),
            transactional: None,
        };
        self.complete(partition, output, vec![(call.reply, response)])
            .await;
    }

    fn on_load_request(&mut self, partition: i32) {
        let image = self.context.metadata.image();
        if let Role::Leader(log, epoch) = self.role(&image, partition) {
            if self.shards.contains_key(&partition) {
                return;
            }
            if self.install_empty(partition, &log, epoch) {
                self.publish_loaded();
            } else {
                self.start_load(partition, &log, epoch);
            }
        }
    }

    /// Reads a partition's log in a task of its own, so that the other partitions' groups
    /// are served meanwhile; [`Runtime::on_loaded`] installs the result.
    fn start_load(&mut self, partition: i32, log: &Arc<Partition>, leader_epoch: i32) {
        if self.loading.get(&partition) == Some(&leader_epoch) {
            return;
        }
        self.loading.insert(partition, leader_epoch);
        let config = coordinator_config(&self.context.config, self.salt);
        let share_config = share_config(&self.context.config);
        let log = Arc::clone(log);
        let loads = self.loads.clone();
        tokio::spawn(async move {
            let result = load(&log, config, share_config).await;
            let _ = loads
                .send(Loaded {
                    partition,
                    leader_epoch,
                    log,
                    result,
                })
                .await;
        });
    }

    fn on_loaded(&mut self, loaded: Loaded) {
        if self.loading.get(&loaded.partition) == Some(&loaded.leader_epoch) {
            self.loading.remove(&loaded.partition);
        }
        // A partition that moved away (or to another epoch) meanwhile is not installed; a
        // failed load is retried by the next command or tick.
        let image = self.context.metadata.image();
        let still_leader = matches!(
            self.role(&image, loaded.partition),
            Role::Leader(_, epoch) if epoch == loaded.leader_epoch
        );
        let (Some((mut coordinator, share, written_end)), true) = (loaded.result, still_leader)
        else {
            // A load retried later reads the markers queued meanwhile from the log.
            self.markers_while_loading.remove(&loaded.partition);
            return;
        };
        if self.shards.contains_key(&loaded.partition) {
            return;
        }
        for (producer_id, commit) in self
            .markers_while_loading
            .remove(&loaded.partition)
            .unwrap_or_default()
        {
            coordinator.txn_marker(producer_id, commit, now_ms());
        }
        self.shards.insert(
            loaded.partition,
            Shard {
                coordinator,
                share,
                leader_epoch: loaded.leader_epoch,
                log: loaded.log,
                written_end,
                deferred: VecDeque::new(),
            },
        );
        self.publish_loaded();
        self.loaded_unreported += 1;
        if self.leads_only_loaded(&image) {
            tracing::info!(
                partitions = self.shards.len(),
                newly_loaded = self.loaded_unreported,
                "group coordinators loaded for every {OFFSETS_TOPIC} partition this broker leads"
            );
            self.loaded_unreported = 0;
        }
    }

    /// Whether every `__consumer_offsets` partition this broker leads has its coordinator.
    fn leads_only_loaded(&self, image: &MetadataImage) -> bool {
        let Some(topic) = image.topic_by_name(OFFSETS_TOPIC) else {
            return false;
        };
        topic.partitions.keys().all(|partition| {
            self.shards.contains_key(partition)
                || !matches!(self.role(image, *partition), Role::Leader(..))
        })
    }

    fn publish_loaded(&self) {
        let loaded: HashSet<i32> = self.shards.keys().copied().collect();
        if **self.published.borrow() != loaded {
            self.published.send_replace(Arc::new(loaded));
        }
    }

    /// Unloads the coordinators of partitions this broker no longer leads at the epoch they
    /// were loaded at, and starts loading the partitions it now leads.
    fn follow_leadership(&mut self) {
        let image = self.context.metadata.image();
        let shards: Vec<(i32, i32)> = self
            .shards
            .iter()
            .map(|(p, s)| (*p, s.leader_epoch))
            .collect();
        let mut unloaded = Vec::new();
        for (partition, loaded_epoch) in shards {
            let keep = matches!(
                self.role(&image, partition),
                Role::Leader(_, epoch) if epoch == loaded_epoch
            );
            if !keep {
                self.unload(partition);
                unloaded.push(partition);
            }
        }
        if !unloaded.is_empty() {
            // One line for all of them (a controlled shutdown gives up every partition).
            unloaded.sort_unstable();
            tracing::info!(
                ?unloaded,
                "no longer leading; unloaded these partitions' groups"
            );
        }
        self.preload(&image);
    }

    /// Starts loading partitions this broker leads and has not loaded, a few at a time,
    /// as Kafka loads a partition when it becomes its leader. A partition whose log is empty
    /// (just created) has nothing to read: its coordinator is installed at once, so a fresh
    /// `__consumer_offsets` is served as soon as its logs are open.
    fn preload(&mut self, image: &MetadataImage) {
        let Some(topic) = image.topic_by_name(OFFSETS_TOPIC) else {
            return;
        };
        let partitions: Vec<i32> = topic.partitions.keys().copied().collect();
        let mut installed = false;
        for partition in partitions {
            if self.shards.contains_key(&partition) || self.loading.contains_key(&partition) {
                continue;
            }
            let Role::Leader(log, epoch) = self.role(image, partition) else {
                continue;
            };
            if self.install_empty(partition, &log, epoch) {
                installed = true;
            } else if self.loading.len() < LOADS_MAX {
                self.start_load(partition, &log, epoch);
            }
        }
        if installed {
            self.publish_loaded();
        }
    }

    /// Installs an empty coordinator for a partition whose log holds nothing (its end
    /// offset is 0, so no record was ever written at this or an earlier epoch); returns
    /// whether it did. Any other partition is read by [`Runtime::start_load`].
    fn install_empty(&mut self, partition: i32, log: &Arc<Partition>, leader_epoch: i32) -> bool {
        if log.log.log_end_offset() != 0 {
            return false;
        }
        let mut coordinator = Coordinator::new(coordinator_config(&self.context.config, self.salt));
        if coordinator.load(std::iter::empty(), now_ms()).is_err() {
            return false;
        }
        tracing::debug!(
            partition,
            "group coordinator installed on an empty partition"
        );
        self.shards.insert(
            partition,
            Shard {
                coordinator,
                share: ShareGroups::new(share_config(&self.context.config)),
                leader_epoch,
                log: Arc::clone(log),
                written_end: 0,
                deferred: VecDeque::new(),
            },
        );
        true
    }

    /// Drops a partition's coordinator: every request waiting on it (parked in the
    /// coordinator, or deferred until its records commit) gets NOT_COORDINATOR, as Kafka's
    /// `onUnloaded` answers pending joins and syncs.
    fn unload(&mut self, partition: i32) {
        self.markers_while_loading.remove(&partition);
        let removed = self.shards.remove(&partition);
        let had = removed.is_some();
        for deferred in removed.into_iter().flat_map(|s| s.deferred) {
            for (reply, response) in deferred.share {
                let _ = reply.send(response.with_error(ErrorCode::NotCoordinator));
            }
        }
        let waiting: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, (p, _))| *p == partition)
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            if let Some((_, pending)) = self.pending.remove(&id) {
                let _ = pending
                    .reply
                    .send(error_response(pending.kind, ErrorCode::NotCoordinator));
            }
        }
        if had {
            self.publish_loaded();
        }
    }

    async fn on_tick(&mut self) {
        // Requests whose connection went away are forgotten (their replies have nowhere to go).
        self.pending.retain(|_, (_, p)| !p.reply.is_closed());
        self.follow_leadership();
        let partitions: Vec<i32> = self.shards.keys().copied().collect();
        for partition in partitions {
            let Some(shard) = self.shards.get_mut(&partition) else {
                continue;
            };
            let now = now_ms();
            let mut output = shard.coordinator.tick(now);
            let (share_records, expired) = shard.share.tick_expired(now);
            output.records.extend(share_records);
            // Share members whose session expired give up their acquired records at once
            // (on this broker's share partitions; the share sessions' idle expiry releases
            // them on other leaders).
            for (group, member) in expired {
                let context = Arc::clone(&self.context);
                tokio::spawn(async move {
                    context.shares.release_member(&group, &member).await;
                });
            }
            if !output.records.is_empty() || !output.replies.is_empty() {
                self.complete(partition, output, Vec::new()).await;
            }
        }
        self.release_all();
        self.expire_deferred();
    }

    /// Appends the output's records as the partition's leader, then defers its replies
    /// until everything the coordinator's state reflects is committed.
    async fn complete(&mut self, partition: i32, output: Output, share: Vec<ShareReply>) {
        let Some(shard) = self.shards.get(&partition) else {
            return;
        };
        let (log, loaded_epoch) = (Arc::clone(&shard.log), shard.leader_epoch);
        let mut end = shard.written_end;
        if !output.records.is_empty() {
            let image = self.context.metadata.image();
            let leading = matches!(
                self.role(&image, partition),
                Role::Leader(_, epoch) if epoch == loaded_epoch
            );
            let appended = if leading {
                append_records(
                    &self.context,
                    &log,
                    loaded_epoch,
                    &output.records,
                    output.transactional,
                )
                .await
            } else {
                Err("this broker no longer leads the partition".to_string())
            };
            match appended {
                Ok(appended_end) => end = end.max(appended_end),
                Err(reason) => {
                    tracing::warn!(partition, %reason, "group records not appended; reloading");
                    // In-memory state already reflects the records: the coordinator is
                    // dropped (its waiting requests answered NOT_COORDINATOR, this output's
                    // with them) and rebuilt from the log.
                    self.unload(partition);
                    for (reply, response) in share {
                        let _ = reply.send(response.with_error(ErrorCode::NotCoordinator));
                    }
                    return;
                }
            }
        }
        let Some(shard) = self.shards.get_mut(&partition) else {
            return;
        };
        shard.written_end = end;
        if !output.replies.is_empty() || !share.is_empty() {
            shard.deferred.push_back(Deferred {
                end_offset: end,
                since_ms: now_ms(),
                replies: output.replies,
                share,
            });
        }
        self.release_committed(partition);
    }

    /// Releases the replies of `partition` whose records are committed (the one place
    /// replies wait for the commit; see [`committed_offset`]).
    fn release_committed(&mut self, partition: i32) {
        let Some(shard) = self.shards.get_mut(&partition) else {
            return;
        };
        let committed = committed_offset(&shard.log);
        while shard
            .deferred
            .front()
            .is_some_and(|d| d.end_offset <= committed)
        {
            let Some(deferred) = shard.deferred.pop_front() else {
                break;
            };
            for reply in deferred.replies {
                if let Some((_, pending)) = self.pending.remove(&reply.request_id) {
                    let _ = pending.reply.send(reply.response);
                }
            }
            for (reply, response) in deferred.share {
                let _ = reply.send(response);
            }
        }
    }

    fn release_all(&mut self) {
        let partitions: Vec<i32> = self
            .shards
            .iter()
            .filter(|(_, s)| !s.deferred.is_empty())
            .map(|(p, _)| *p)
            .collect();
        for partition in partitions {
            self.release_committed(partition);
        }
    }

    /// Replies whose records stayed uncommitted past the write timeout answer
    /// COORDINATOR_NOT_AVAILABLE (Kafka maps its write timeout to that code, and to
    /// NOT_COORDINATOR for OffsetFetch); the records stay in the log and the state as it is.
    fn expire_deferred(&mut self) {
        let now = now_ms();
        let mut expired = Vec::new();
        for shard in self.shards.values_mut() {
            while shard
                .deferred
                .front()
                .is_some_and(|d| now.saturating_sub(d.since_ms) > COMMIT_TIMEOUT_MS)
            {
                if let Some(deferred) = shard.deferred.pop_front() {
                    expired.extend(deferred.replies.into_iter().map(|r| r.request_id));
                    for (reply, response) in deferred.share {
                        let _ = reply.send(response.with_error(ErrorCode::CoordinatorNotAvailable));
                    }
                }
            }
        }
        for id in expired {
            if let Some((_, pending)) = self.pending.remove(&id) {
                // OffsetFetch gets NOT_COORDINATOR instead, as in Kafka: consumers before
                // 3.9 retry nothing else there.
                let error = match pending.kind {
                    Kind::Fetch => ErrorCode::NotCoordinator,
                    _ => ErrorCode::CoordinatorNotAvailable,
                };
                let _ = pending.reply.send(error_response(pending.kind, error));
            }
        }
    }
}

/// Rebuilds a coordinator from the partition's whole log, up to its end; returns it with
/// the offset it read to.
async fn load(
    log: &Arc<Partition>,
    config: Config,
    share_config: ShareConfig,
) -> Option<(Coordinator, ShareGroups, i64)> {
    let reading = Arc::clone(log);
    let records = tokio::task::spawn_blocking(move || read_records(&reading))
        .await
        .ok()?;
    let (records, end) = match records {
        Ok(read) => read,
        Err(reason) => {
            tracing::warn!(partition = log.tp.partition, %reason, "cannot load groups");
            return None;
        }
    };
    let mut coordinator = Coordinator::new(config);
    let mut share = ShareGroups::new(share_config);
    let now = now_ms();
    for entry in &records {
        let loaded = match entry {
            LogEntry::Record(record) => {
                match ShareGroupRecord::decode(&record.key, record.value.as_deref()) {
                    Ok(Some(r)) => {
                        share.replay(r, now);
                        Ok(())
                    }
                    Ok(None) => coordinator.load(std::iter::once(record), now),
                    Err(error) => Err(error),
                }
            }
            LogEntry::Transactional {
                producer_id,
                producer_epoch,
                record,
            } => coordinator.load_txn_records(*producer_id, *producer_epoch, [record]),
            LogEntry::Marker {
                producer_id,
                commit,
            } => {
                coordinator.txn_marker(*producer_id, *commit, now);
                Ok(())
            }
        };
        if let Err(error) = loaded {
            tracing::warn!(partition = log.tp.partition, %error, "cannot load groups");
            return None;
        }
    }
    // One line per partition only at debug: start-up logs one summary line for all of them
    // (`Runtime::on_loaded`).
    tracing::debug!(
        partition = log.tp.partition,
        records = records.len(),
        end_offset = end,
        "group coordinator loaded"
    );
    Some((coordinator, share, end))
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
        streams: StreamsConfig {
            session_timeout_ms: config.group_streams_session_timeout_ms,
            heartbeat_interval_ms: config.group_streams_heartbeat_interval_ms,
            // Kafka's default is unlimited; the coordinator's bound keeps memory bounded.
            max_size: usize::try_from(config.group_streams_max_size)
                .unwrap_or(usize::MAX)
                .min(StreamsConfig::default().max_size),
            num_standby_replicas: config.group_streams_num_standby_replicas,
            ..StreamsConfig::default()
        },
    }
}

/// The share groups' bounds from the broker's `group.share.*` keys.
pub(crate) fn share_config(config: &BrokerConfig) -> ShareConfig {
    ShareConfig {
        session_timeout_ms: config.group_share_session_timeout_ms,
        heartbeat_interval_ms: config.group_share_heartbeat_interval_ms,
        max_size: usize::try_from(config.group_share_max_size).unwrap_or(usize::MAX),
        // As Kafka: never below `offsets.commit.timeout.ms`, the longest an initializing
        // record may take to commit.
        initialize_retry_interval_ms: i64::from(config.group_share_initialize_retry_interval_ms)
            .max(COMMIT_TIMEOUT_MS),
    }
}

/// A command of the classic or consumer coordinator that would create a group (or its
/// offsets) under the id of a share group, refused as Kafka does: JoinGroup with
/// INCONSISTENT_GROUP_PROTOCOL, the others with GROUP_ID_NOT_FOUND.
fn refuse_share_group_id(
    share: &ShareGroups,
    request_id: RequestId,
    command: &Command,
) -> Option<Output> {
    let (group_id, kind, code) = match command {
        Command::JoinGroup(c) => (
            &c.group_id,
            Kind::Join,
            ErrorCode::InconsistentGroupProtocol,
        ),
        Command::ConsumerGroupHeartbeat(c) => (
            &c.group_id,
            Kind::ConsumerHeartbeat,
            ErrorCode::GroupIdNotFound,
        ),
        Command::StreamsGroupHeartbeat(c) => (
            &c.group_id,
            Kind::StreamsHeartbeat,
            ErrorCode::GroupIdNotFound,
        ),
        Command::OffsetCommit(c) => (&c.group_id, Kind::Commit, ErrorCode::GroupIdNotFound),
        Command::TxnOffsetCommit(c) => (&c.group_id, Kind::TxnCommit, ErrorCode::GroupIdNotFound),
        _ => return None,
    };
    if !share.contains(group_id) {
        return None;
    }
    let mut response = error_response(kind, code);
    if let Response::ConsumerGroupHeartbeat(r) = &mut response {
        r.error = Some(ConsumerError::new(
            code,
            format!("Group {group_id} is not a consumer group."),
        ));
    }
    if let Response::StreamsGroupHeartbeat(r) = &mut response {
        r.error = Some(ConsumerError::new(
            code,
            format!("Group {group_id} is not a streams group."),
        ));
    }
    Some(Output {
        records: Vec::new(),
        replies: vec![Reply {
            request_id,
            response,
        }],
        transactional: None,
    })
}

/// An empty response of the command's kind, for [`ShareResponse::with_error`].
fn placeholder(command: &ShareCommand) -> ShareResponse {
    match command {
        ShareCommand::Heartbeat(_) => {
            ShareResponse::Heartbeat(strom_share::group::ShareHeartbeatResponse::error(
                strom_share::group::ShareError::new(ErrorCode::None, String::new()),
            ))
        }
        ShareCommand::Describe { group_ids, .. } => ShareResponse::Describe(
            group_ids
                .iter()
                .map(|id| strom_share::group::DescribedShareGroup::error(id, ErrorCode::None, ""))
                .collect(),
        ),
        ShareCommand::List => ShareResponse::List(Vec::new()),
        ShareCommand::Delete(_) => ShareResponse::Delete(Ok(false)),
        ShareCommand::PrepareDelete(_) => ShareResponse::PrepareDelete(Ok(None)),
        ShareCommand::PrepareDeleteOffsets { .. } => {
            ShareResponse::PrepareDeleteOffsets(Ok(Vec::new()))
        }
        ShareCommand::OffsetsAdmin { .. } => ShareResponse::OffsetsAdmin(Ok(())),
        ShareCommand::StatePartitions(_)
        | ShareCommand::Initialized { .. }
        | ShareCommand::Uninitialized { .. }
        | ShareCommand::DeletedOffsets { .. } => ShareResponse::Done(Ok(())),
    }
}

/// One entry of a `__consumer_offsets` log, in log order.
pub(crate) enum LogEntry {
    Record(GroupRecord),
    /// A record of a transactional batch (TxnOffsetCommit), staged until its marker.
    Transactional {
        producer_id: i64,
        producer_epoch: i16,
        record: GroupRecord,
    },
    /// A COMMIT or ABORT marker.
    Marker {
        producer_id: i64,
        commit: bool,
    },
}

/// The group records of the log from its start to its end as of the call, and that end.
pub(crate) fn read_records(partition: &Partition) -> Result<(Vec<LogEntry>, i64), String> {
    let log = &partition.log;
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    let mut out = Vec::new();
    let limits = strom_records::DecodeLimits::default();
    for _ in 0..LOAD_READS_MAX {
        if offset >= end {
            return Ok((out, end));
        }
        let info = log
            .read(offset, LOAD_READ_BYTES, end)
            .map_err(|e| e.to_string())?;
        let Some(range) = info.range else {
            return Ok((out, end));
        };
        let bytes = range.read_bytes().map_err(|e| e.to_string())?;
        let mut advanced = false;
        for batch in strom_records::batches(&bytes) {
            let (header, span) = batch.map_err(|e| e.to_string())?;
            let next = header.last_offset().saturating_add(1);
            if next <= offset {
                continue;
            }
            let raw = bytes.get(span).unwrap_or_default();
            if header.is_control() {
                if header.is_transactional() {
                    let records =
                        strom_records::records(raw, &limits).map_err(|e| e.to_string())?;
                    for record in &records {
                        // Other control records (none are written here) are skipped.
                        if let Ok(marker) = strom_records::EndTransactionMarker::from_record(record)
                        {
                            out.push(LogEntry::Marker {
                                producer_id: header.producer_id,
                                commit: marker.commit,
                            });
                        }
                    }
                }
            } else {
                let records = strom_records::records(raw, &limits).map_err(|e| e.to_string())?;
                for record in records {
                    let position = header.base_offset + i64::from(record.offset_delta);
                    if position < offset {
                        continue;
                    }
                    if let Some(key) = record.key {
                        let record = GroupRecord {
                            key,
                            value: record.value,
                        };
                        out.push(if header.is_transactional() {
                            LogEntry::Transactional {
                                producer_id: header.producer_id,
                                producer_epoch: header.producer_epoch,
                                record,
                            }
                        } else {
                            LogEntry::Record(record)
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

/// Appends one batch holding `records` as the partition's leader at `leader_epoch`, by the
/// same path as a Produce (fsynced under `sync-on-commit`); returns the log end offset
/// after it. The replies it carries wait for [`committed_offset`] to reach that offset.
pub(crate) async fn append_records(
    context: &BrokerContext,
    log: &Arc<Partition>,
    leader_epoch: i32,
    records: &[GroupRecord],
    transactional: Option<(i64, i16)>,
) -> Result<i64, String> {
    let now = now_ms();
    let mut builder = strom_records::BatchBuilder::new(0, now);
    if let Some((producer_id, producer_epoch)) = transactional {
        // Kafka writes TxnOffsetCommit's records as one transactional batch of the producer
        // (sequence 0: the coordinator's appends are not sequence-checked); the partition's
        // producer state and last stable offset see an open transaction until its marker.
        builder = builder
            .producer(producer_id, producer_epoch, 0)
            .transactional(true);
    }
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
    let commit = if context.config.sync_on_commit() {
        Commit::Sync
    } else {
        Commit::Now
    };
    let appending = Arc::clone(log);
    let result = tokio::task::spawn_blocking(move || {
        appending.append(&mut bytes, leader_epoch, commit, now_ms())
    })
    .await
    .map_err(|e| e.to_string())?;
    let end = match result.map_err(|e| e.to_string())? {
        Appended::New(info) => info.last_offset.saturating_add(1),
        Appended::Duplicate(meta) => meta.last_offset.saturating_add(1),
    };
    Ok(end)
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
        Command::StreamsGroupHeartbeat(_) => Kind::StreamsHeartbeat,
        Command::StreamsGroupDescribe(_) => Kind::StreamsDescribe,
        Command::TxnOffsetCommit(_) => Kind::TxnCommit,
        Command::TxnMarker { .. } => Kind::TxnMarker,
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
        // Per-partition errors are filled in by the handler from this marker.
        Kind::TxnCommit => Response::TxnOffsetCommit(vec![PartitionResult {
            topic: String::new(),
            partition: -1,
            error,
        }]),
        // The hook's caller only learns that the marker was not applied here.
        Kind::TxnMarker => Response::Heartbeat(error),
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
        Kind::StreamsHeartbeat => Response::StreamsGroupHeartbeat(StreamsHeartbeatResponse::error(
            ConsumerError::new(error, String::new()),
        )),
        Kind::StreamsDescribe => Response::StreamsGroupDescribe(DescribedStreamsGroup {
            group_id: String::new(),
            error: Some(ConsumerError::new(error, String::new())),
            state: String::new(),
            group_epoch: 0,
            assignment_epoch: 0,
            topology: None,
            members: Vec::new(),
        }),
    }
}
