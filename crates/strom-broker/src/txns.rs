//! The transaction-coordinator runtime: one tokio task owns a strom-txn [`Coordinator`] per
//! `__transaction_state` partition this broker leads, as `groups.rs` does for
//! `__consumer_offsets` (same leadership rules: loaded when this broker leads the partition,
//! at that leader epoch; unloaded, with every waiting request answered NOT_COORDINATOR, when
//! it stops leading or the epoch moves; COORDINATOR_LOAD_IN_PROGRESS while loading).
//!
//! Commit: each command's records are appended as the partition's leader (the Produce path,
//! fsynced under sync-on-commit); its reply and its marker jobs wait until the partition's
//! high watermark covers everything the coordinator's state reflects. So markers are only
//! written for a PrepareCommit/PrepareAbort that is committed: a new coordinator (after a
//! failover) reads the same PREPARE record and finishes the same markers. A failed append
//! drops the coordinator (requests answered NOT_COORDINATOR) and it is reloaded from the log.
//!
//! Markers: a job's partitions are grouped by their leader; local ones are written through
//! [`crate::txn_markers::write_txn_markers`], remote ones with a WriteTxnMarkers request to the
//! leader. Each partition's answer is handled as Kafka's
//! `TransactionMarkerRequestCompletionHandler` does ([`crate::markers::marker_answer`]):
//! retriable failures are retried (with a backoff) until every partition has its marker or
//! this broker stops coordinating the transactional id at that epoch; then the coordinator
//! writes CompleteCommit/CompleteAbort. A partition whose topic is gone counts as done (Kafka
//! drops it from the transaction too). INVALID_PRODUCER_EPOCH / TRANSACTION_COORDINATOR_FENCED
//! (a newer epoch owns the transaction) and the errors Kafka calls fatal stop the job: no
//! further marker and no CompleteCommit/CompleteAbort from this coordinator; the transaction
//! stays prepared and a reload of the partition resumes it from the PREPARE record.
//!
//! Timers: every `transaction.abort.timed.out.transaction.cleanup.interval.ms` the
//! coordinators abort transactions past their timeout (bumping the epoch, which fences the
//! producer) and remove ids idle for `transactional.id.expiration.ms`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use strom_meta::{
    ControllerReply, ControllerRequest, CreatableTopic, CreateTopicsRequest, MetadataImage,
    TopicIdPartition,
};
use strom_txn::{
    Config, Coordinator, DescribedTxn, EndTxnResult, ErrorCode, InitPidResult, ListFilter,
    MarkerJob, Output, TopicPartition, TxnRecord, TxnState,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::groups::{append_records, read_records, LogEntry};
use crate::markers::{MarkerAnswer, MarkerRound};
use crate::metadata::now_ms;
use crate::partition::Partition;
use crate::server::BrokerContext;

/// The cluster's finalized `transaction.version`: the level UpdateFeatures set, else the
/// binary's default.
pub fn transaction_version(image: &MetadataImage) -> i16 {
    crate::handlers::finalized_features(image).level("transaction.version")
}

/// Kafka's internal topic of transaction state.
pub const TXN_TOPIC: &str = "__transaction_state";
/// `transaction.state.log.num.partitions` (Kafka's default), used until the topic exists.
pub const TXN_TOPIC_PARTITIONS: i32 = 50;
/// Commands waiting for the coordinator task; senders wait when it is full.
const QUEUE_DEPTH: usize = 1_024;
/// How often leadership, waiting replies and marker retries are checked.
const TICK_INTERVAL_MS: u64 = 100;
/// The longest a reply waits for its records to be committed (Kafka's
/// `transaction.state.log` writes time out with `request.timeout.ms`); then
/// COORDINATOR_NOT_AVAILABLE, retriable.
const COMMIT_TIMEOUT_MS: i64 = 5_000;
/// Pauses between marker attempts: from the first to the most.
const MARKER_BACKOFF_MIN_MS: u64 = 50;
const MARKER_BACKOFF_MAX_MS: u64 = 1_000;

/// A command for the coordinator of one transactional id.
#[derive(Debug, Clone)]
pub enum TxnCommand {
    InitProducerId {
        transactional_id: String,
        timeout_ms: i32,
        /// KIP-360: the producer's current id and epoch when it asks for a bump.
        expected: Option<(i64, i16)>,
        /// A newly allocated producer id, used if the id needs one.
        fresh_producer_id: Option<i64>,
    },
    AddPartitions {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<TopicPartition>,
        /// The client's transaction version (`strom_txn::TV2` for AddPartitionsToTxn v4+,
        /// which brokers send, also for the implicit addition of KIP-890 part 2).
        client_tv: i16,
    },
    /// KIP-890 part 1: are these partitions in the ongoing transaction? (writes nothing)
    Verify {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<TopicPartition>,
    },
    EndTxn {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        /// `strom_txn::TV2` for EndTxn v5+.
        client_tv: i16,
        /// A newly allocated producer id, for a version 2 end at an exhausted epoch.
        fresh_producer_id: Option<i64>,
    },
    Describe {
        transactional_id: String,
    },
}

/// The coordinator's answer to a [`TxnCommand`].
#[derive(Debug, Clone)]
pub enum TxnResponse {
    InitProducerId(InitPidResult),
    Error(ErrorCode),
    Verify(Result<Vec<(TopicPartition, ErrorCode)>, ErrorCode>),
    EndTxn(EndTxnResult),
    Describe(Result<DescribedTxn, ErrorCode>),
}

impl TxnResponse {
    /// The whole-request error of a command's kind.
    pub fn error_for(command: &TxnCommand, error: ErrorCode) -> TxnResponse {
        match command {
            TxnCommand::InitProducerId { .. } => TxnResponse::InitProducerId(InitPidResult {
                error,
                producer_id: -1,
                producer_epoch: -1,
            }),
            TxnCommand::AddPartitions { .. } => TxnResponse::Error(error),
            TxnCommand::Verify { .. } => TxnResponse::Verify(Err(error)),
            TxnCommand::EndTxn {
                producer_id,
                producer_epoch,
                ..
            } => TxnResponse::EndTxn(EndTxnResult {
                error,
                producer_id: *producer_id,
                producer_epoch: *producer_epoch,
            }),
            TxnCommand::Describe { .. } => TxnResponse::Describe(Err(error)),
        }
    }

    /// The error code this response carries at its top.
    pub fn error(&self) -> ErrorCode {
        match self {
            TxnResponse::InitProducerId(r) => r.error,
            TxnResponse::Error(e) => *e,
            TxnResponse::Verify(r) => r.as_ref().err().copied().unwrap_or(ErrorCode::None),
            TxnResponse::EndTxn(r) => r.error,
            TxnResponse::Describe(r) => r.as_ref().err().copied().unwrap_or(ErrorCode::None),
        }
    }
}

/// One listed transaction: id, producer id, state.
pub type Listed = (String, i64, TxnState);

enum TxnMessage {
    Call {
        partition: i32,
        command: TxnCommand,
        reply: oneshot::Sender<TxnResponse>,
    },
    /// ListTransactions over every partition loaded here.
    List {
        filter: ListFilter,
        reply: oneshot::Sender<Vec<Listed>>,
    },
    /// Every marker of `job` is written (sent by the job's task).
    MarkersDone {
        partition: i32,
        leader_epoch: i32,
        job: MarkerJob,
    },
    /// Load this partition now if this broker leads it.
    Load(i32),
}

/// The coordinator task's inputs.
pub struct TxnInbox {
    messages: mpsc::Receiver<TxnMessage>,
    /// The task's own sender, for marker tasks to report back.
    sender: mpsc::Sender<TxnMessage>,
    loaded: watch::Sender<Arc<HashSet<i32>>>,
}

impl std::fmt::Debug for TxnInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnInbox").finish_non_exhaustive()
    }
}

/// The handlers' side of the coordinator task.
#[derive(Clone)]
pub struct TxnHandle {
    sender: mpsc::Sender<TxnMessage>,
    loaded: watch::Receiver<Arc<HashSet<i32>>>,
}

impl std::fmt::Debug for TxnHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnHandle").finish_non_exhaustive()
    }
}

impl TxnHandle {
    /// A handle and the inbox [`run`] consumes.
    pub fn new() -> (TxnHandle, TxnInbox) {
        let (sender, messages) = mpsc::channel(QUEUE_DEPTH);
        let (loaded_tx, loaded) = watch::channel(Arc::new(HashSet::new()));
        (
            TxnHandle {
                sender: sender.clone(),
                loaded,
            },
            TxnInbox {
                messages,
                sender,
                loaded: loaded_tx,
            },
        )
    }

    /// Sends a command to the coordinator of `partition`; COORDINATOR_NOT_AVAILABLE when
    /// the task is gone.
    pub async fn call(&self, partition: i32, command: TxnCommand) -> TxnResponse {
        let gone = TxnResponse::error_for(&command, ErrorCode::CoordinatorNotAvailable);
        let (reply, response) = oneshot::channel();
        let message = TxnMessage::Call {
            partition,
            command,
            reply,
        };
        if self.sender.send(message).await.is_err() {
            return gone;
        }
        response.await.unwrap_or(gone)
    }

    /// The transactions of every partition loaded here that match `filter`.
    pub async fn list(&self, filter: ListFilter) -> Option<Vec<Listed>> {
        let (reply, response) = oneshot::channel();
        self.sender
            .send(TxnMessage::List { filter, reply })
            .await
            .ok()?;
        response.await.ok()
    }

    pub fn is_loaded(&self, partition: i32) -> bool {
        self.loaded.borrow().contains(&partition)
    }

    /// Asks for `partitions` to be loaded and waits (at most `wait`) until they are.
    pub async fn wait_loaded(&self, partitions: &[i32], wait: Duration) -> bool {
        for partition in partitions {
            if self
                .sender
                .send(TxnMessage::Load(*partition))
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

/// The `__transaction_state` partition of a transactional id, from the topic's partition
/// count (Kafka's `partitionFor`).
pub fn partition_for(image: &MetadataImage, transactional_id: &str) -> i32 {
    let partitions = image
        .topic_by_name(TXN_TOPIC)
        .map_or(TXN_TOPIC_PARTITIONS, |t| {
            i32::try_from(t.partitions.len()).unwrap_or(TXN_TOPIC_PARTITIONS)
        });
    let partitions = u32::try_from(partitions.max(1)).unwrap_or(1);
    i32::try_from(strom_txn::coordinator_partition(
        transactional_id,
        partitions,
    ))
    .unwrap_or(0)
}

/// Creates `__transaction_state` through the controller if it does not exist (as Kafka does
/// on the first FindCoordinator(TRANSACTION)), compacted, with
/// `transaction.state.log.num.partitions` partitions of
/// `transaction.state.log.replication.factor` replicas and
/// `transaction.state.log.min.isr` as its `min.insync.replicas`. Returns whether it exists.
pub async fn ensure_txn_topic(context: &BrokerContext) -> bool {
    if context.metadata.image().topic_by_name(TXN_TOPIC).is_some() {
        return true;
    }
    let config = &context.config.transactions;
    let request = ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: TXN_TOPIC.to_string(),
            num_partitions: config.state_log_num_partitions,
            replication_factor: config.state_log_replication_factor,
            assignments: Vec::new(),
            configs: vec![
                ("cleanup.policy".to_string(), Some("compact".to_string())),
                (
                    "compression.type".to_string(),
                    Some("uncompressed".to_string()),
                ),
                (
                    "min.insync.replicas".to_string(),
                    Some(config.state_log_min_isr.to_string()),
                ),
            ],
        }],
        validate_only: false,
    });
    match context.metadata.submit(request).await {
        Ok(ControllerReply::CreateTopics(results)) => {
            for r in results.iter().filter_map(|r| r.error.as_ref()) {
                tracing::info!(error = %r.message, "creating {TXN_TOPIC}");
            }
        }
        Ok(other) => tracing::warn!(?other, "unexpected reply creating {TXN_TOPIC}"),
        Err(error) => tracing::warn!(%error, "cannot create {TXN_TOPIC}"),
    }
    let exists = context.metadata.image().topic_by_name(TXN_TOPIC).is_some();
    context.replicas.reconcile_latest(&context.metadata).await;
    exists
}

/// The coordinator of one partition this broker leads.
struct Shard {
    coordinator: Coordinator,
    leader_epoch: i32,
    log: Arc<Partition>,
    /// The end offset of every record the coordinator's state reflects.
    written_end: i64,
    /// Replies and marker jobs waiting for the committed offset, in offset order.
    deferred: VecDeque<Deferred>,
}

struct Deferred {
    end_offset: i64,
    since_ms: i64,
    reply: Option<(oneshot::Sender<TxnResponse>, TxnResponse)>,
    markers: Vec<MarkerJob>,
}

enum Role {
    NotLeader,
    LeaderOpening,
    Leader(Arc<Partition>, i32),
}

struct Runtime {
    context: Arc<BrokerContext>,
    shards: HashMap<i32, Shard>,
    loading: HashMap<i32, i32>,
    loads: mpsc::Sender<Loaded>,
    sender: mpsc::Sender<TxnMessage>,
    published: watch::Sender<Arc<HashSet<i32>>>,
    /// When timed-out transactions are next looked for.
    next_abort_check_ms: i64,
}

struct Loaded {
    partition: i32,
    leader_epoch: i32,
    log: Arc<Partition>,
    result: Option<(Coordinator, Vec<MarkerJob>, i64)>,
}

/// Runs the coordinator task until the broker stops (the task is aborted then).
pub async fn run(context: Arc<BrokerContext>, inbox: TxnInbox) {
    let TxnInbox {
        mut messages,
        sender,
        loaded: published,
    } = inbox;
    let (loads, mut finished) = mpsc::channel(4);
    let mut images = context.metadata.watch();
    let mut appends = context.replicas.subscribe_high_watermarks();
    let mut runtime = Runtime {
        context,
        shards: HashMap::new(),
        loading: HashMap::new(),
        loads,
        sender,
        published,
        next_abort_check_ms: 0,
    };
    let mut interval = tokio::time::interval(Duration::from_millis(TICK_INTERVAL_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let waiting = runtime.shards.values().any(|s| !s.deferred.is_empty());
        tokio::select! {
            message = messages.recv() => match message {
                Some(TxnMessage::Call { partition, command, reply }) => {
                    runtime.on_call(partition, command, reply).await;
                }
                Some(TxnMessage::List { filter, reply }) => {
                    let now = now_ms();
                    let listed = runtime
                        .shards
                        .values()
                        .flat_map(|s| s.coordinator.list(&filter, now))
                        .collect();
                    let _ = reply.send(listed);
                }
                Some(TxnMessage::MarkersDone { partition, leader_epoch, job }) => {
                    runtime.on_markers_done(partition, leader_epoch, &job).await;
                }
                Some(TxnMessage::Load(partition)) => runtime.on_load_request(partition),
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
            _ = appends.changed(), if waiting => runtime.release_all(),
            _ = interval.tick() => runtime.on_tick().await,
        }
    }
}

fn coordinator_config(context: &BrokerContext) -> Config {
    let config = &context.config.transactions;
    Config {
        max_timeout_ms: config.max_timeout_ms,
        transactional_id_expiration_ms: config.transactional_id_expiration_ms,
    }
}

impl Runtime {
    fn role(&self, image: &MetadataImage, partition: i32) -> Role {
        let Some(topic) = image.topic_by_name(TXN_TOPIC) else {
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

    async fn on_call(
        &mut self,
        partition: i32,
        command: TxnCommand,
        reply: oneshot::Sender<TxnResponse>,
    ) {
        let image = self.context.metadata.image();
        let (log, epoch) = match self.role(&image, partition) {
            Role::NotLeader => {
                self.unload(partition);
                let _ = reply.send(TxnResponse::error_for(&command, ErrorCode::NotCoordinator));
                return;
            }
            Role::LeaderOpening => {
                let _ = reply.send(TxnResponse::error_for(
                    &command,
                    ErrorCode::CoordinatorLoadInProgress,
                ));
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
        if !self.shards.contains_key(&partition) {
            self.start_load(partition, &log, epoch);
            let _ = reply.send(TxnResponse::error_for(
                &command,
                ErrorCode::CoordinatorLoadInProgress,
            ));
            return;
        }
        let Some(shard) = self.shards.get_mut(&partition) else {
            return;
        };
        let now = now_ms();
        let coordinator = &mut shard.coordinator;
        // The finalized transaction.version as of this command (UpdateFeatures), for the
        // transactions it starts.
        coordinator.set_transaction_version(transaction_version(&image));
        let (records, response, markers) = match command {
            TxnCommand::InitProducerId {
                transactional_id,
                timeout_ms,
                expected,
                mut fresh_producer_id,
            } => split(
                coordinator.init_producer_id(
                    &transactional_id,
                    timeout_ms,
                    expected,
                    &mut fresh_producer_id,
                    now,
                ),
                TxnResponse::InitProducerId,
            ),
            TxnCommand::AddPartitions {
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
                client_tv,
            } => split(
                coordinator.add_partitions_tv(
                    &transactional_id,
                    producer_id,
                    producer_epoch,
                    &partitions,
                    client_tv,
                    now,
                ),
                TxnResponse::Error,
            ),
            TxnCommand::Verify {
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
            } => (
                Vec::new(),
                TxnResponse::Verify(coordinator.verify_partitions(
                    &transactional_id,
                    producer_id,
                    producer_epoch,
                    &partitions,
                )),
                Vec::new(),
            ),
            TxnCommand::EndTxn {
                transactional_id,
                producer_id,
                producer_epoch,
                commit,
                client_tv,
                mut fresh_producer_id,
            } => split(
                coordinator.end_txn_tv(
                    &transactional_id,
                    producer_id,
                    producer_epoch,
                    commit,
                    client_tv,
                    &mut fresh_producer_id,
                    now,
                ),
                TxnResponse::EndTxn,
            ),
            TxnCommand::Describe { transactional_id } => (
                Vec::new(),
                TxnResponse::Describe(coordinator.describe(&transactional_id)),
                Vec::new(),
            ),
        };
        self.complete(partition, records, Some((reply, response)), markers)
            .await;
    }

    /// Appends the records as the partition's leader, then defers the reply and the
    /// marker jobs until everything the coordinator's state reflects is committed.
    async fn complete(
        &mut self,
        partition: i32,
        records: Vec<TxnRecord>,
        reply: Option<(oneshot::Sender<TxnResponse>, TxnResponse)>,
        markers: Vec<MarkerJob>,
    ) {
        let Some(shard) = self.shards.get(&partition) else {
            return;
        };
        let (log, loaded_epoch) = (Arc::clone(&shard.log), shard.leader_epoch);
        let mut end = shard.written_end;
        if !records.is_empty() {
            let image = self.context.metadata.image();
            let leading = matches!(
                self.role(&image, partition),
                Role::Leader(_, epoch) if epoch == loaded_epoch
            );
            let batch: Vec<strom_group::GroupRecord> = records
                .into_iter()
                .map(|r| strom_group::GroupRecord {
                    key: r.key,
                    value: r.value,
                })
                .collect();
            let appended = if leading {
                append_records(&self.context, &log, loaded_epoch, &batch, None).await
            } else {
                Err("this broker no longer leads the partition".to_string())
            };
            match appended {
                Ok(appended_end) => end = end.max(appended_end),
                Err(reason) => {
                    tracing::warn!(partition, %reason, "transaction records not appended; reloading");
                    if let Some((reply, response)) = reply {
                        let _ = reply.send(replace_error(response, ErrorCode::NotCoordinator));
                    }
                    self.unload(partition);
                    return;
                }
            }
        }
        let Some(shard) = self.shards.get_mut(&partition) else {
            return;
        };
        shard.written_end = end;
        if reply.is_some() || !markers.is_empty() {
            shard.deferred.push_back(Deferred {
                end_offset: end,
                since_ms: now_ms(),
                reply,
                markers,
            });
        }
        self.release_committed(partition);
    }

    /// Releases the replies and starts the marker jobs of `partition` whose records are
    /// committed (the partition's high watermark covers them).
    fn release_committed(&mut self, partition: i32) {
        let Some(shard) = self.shards.get_mut(&partition) else {
            return;
        };
        let committed = shard.log.log.high_watermark();
        let mut jobs = Vec::new();
        while shard
            .deferred
            .front()
            .is_some_and(|d| d.end_offset <= committed)
        {
            let Some(deferred) = shard.deferred.pop_front() else {
                break;
            };
            if let Some((reply, response)) = deferred.reply {
                let _ = reply.send(response);
            }
            jobs.extend(deferred.markers);
        }
        let leader_epoch = shard.leader_epoch;
        for job in jobs {
            tokio::spawn(write_markers(
                Arc::clone(&self.context),
                self.sender.clone(),
                partition,
                leader_epoch,
                job,
            ));
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
    /// COORDINATOR_NOT_AVAILABLE; their marker jobs stay (they start once committed).
    fn expire_deferred(&mut self) {
        let now = now_ms();
        for shard in self.shards.values_mut() {
            for deferred in shard.deferred.iter_mut() {
                if now.saturating_sub(deferred.since_ms) <= COMMIT_TIMEOUT_MS {
                    break;
                }
                if let Some((reply, response)) = deferred.reply.take() {
                    let _ = reply.send(replace_error(response, ErrorCode::CoordinatorNotAvailable));
                }
            }
        }
    }

    async fn on_markers_done(&mut self, partition: i32, leader_epoch: i32, job: &MarkerJob) {
        let Some(shard) = self.shards.get_mut(&partition) else {
            return;
        };
        if shard.leader_epoch != leader_epoch {
            return;
        }
        let output = shard.coordinator.markers_written(job, now_ms());
        if !output.records.is_empty() {
            tracing::debug!(
                transactional_id = %job.transactional_id,
                commit = job.commit,
                partitions = job.partitions.len(),
                "transaction markers written; transaction complete"
            );
        }
        self.complete(partition, output.records, None, Vec::new())
            .await;
    }

    async fn on_tick(&mut self) {
        self.follow_leadership();
        let now = now_ms();
        if now >= self.next_abort_check_ms {
            let interval = self
                .context
                .config
                .transactions
                .abort_timed_out_cleanup_interval_ms;
            self.next_abort_check_ms = now.saturating_add(interval);
            let image_now = self.context.metadata.image();
            let partitions: Vec<i32> = self.shards.keys().copied().collect();
            for partition in partitions {
                let Some(shard) = self.shards.get_mut(&partition) else {
                    continue;
                };
                shard
                    .coordinator
                    .set_transaction_version(transaction_version(&image_now));
                let output = shard.coordinator.tick(now);
                if output.records.is_empty() {
                    continue;
                }
                for job in &output.markers {
                    tracing::info!(
                        transactional_id = %job.transactional_id,
                        producer_id = job.producer_id,
                        "aborting a transaction past its transaction.timeout.ms"
                    );
                }
                self.complete(partition, output.records, None, output.markers)
                    .await;
            }
        }
        self.release_all();
        self.expire_deferred();
    }

    fn on_load_request(&mut self, partition: i32) {
        let image = self.context.metadata.image();
        if let Role::Leader(log, epoch) = self.role(&image, partition) {
            if !self.shards.contains_key(&partition) {
                self.start_load(partition, &log, epoch);
            }
        }
    }

    fn start_load(&mut self, partition: i32, log: &Arc<Partition>, leader_epoch: i32) {
        if self.loading.get(&partition) == Some(&leader_epoch) {
            return;
        }
        self.loading.insert(partition, leader_epoch);
        let config = coordinator_config(&self.context);
        let log = Arc::clone(log);
        let loads = self.loads.clone();
        tokio::spawn(async move {
            let result = load(&log, config).await;
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
        let image = self.context.metadata.image();
        let still_leader = matches!(
            self.role(&image, loaded.partition),
            Role::Leader(_, epoch) if epoch == loaded.leader_epoch
        );
        let (Some((coordinator, jobs, written_end)), true) = (loaded.result, still_leader) else {
            return;
        };
        if self.shards.contains_key(&loaded.partition) {
            return;
        }
        if !jobs.is_empty() {
            tracing::info!(
                partition = loaded.partition,
                transactions = jobs.len(),
                "finishing the markers of transactions the previous coordinator prepared"
            );
        }
        let mut deferred = VecDeque::new();
        if !jobs.is_empty() {
            // The PREPARE records may lie above the high watermark (written by the previous
            // leader, not yet committed here): the markers wait for them like any job.
            deferred.push_back(Deferred {
                end_offset: written_end,
                since_ms: now_ms(),
                reply: None,
                markers: jobs,
            });
        }
        self.shards.insert(
            loaded.partition,
            Shard {
                coordinator,
                leader_epoch: loaded.leader_epoch,
                log: loaded.log,
                written_end,
                deferred,
            },
        );
        self.publish_loaded();
        self.release_committed(loaded.partition);
    }

    fn publish_loaded(&self) {
        let loaded: HashSet<i32> = self.shards.keys().copied().collect();
        if **self.published.borrow() != loaded {
            self.published.send_replace(Arc::new(loaded));
        }
    }

    /// Drops a partition's coordinator: its waiting replies get NOT_COORDINATOR; its marker
    /// tasks stop at their next attempt (they check the leadership they were started in).
    fn unload(&mut self, partition: i32) {
        if let Some(shard) = self.shards.remove(&partition) {
            for deferred in shard.deferred {
                if let Some((reply, response)) = deferred.reply {
                    let _ = reply.send(replace_error(response, ErrorCode::NotCoordinator));
                }
            }
            self.publish_loaded();
        }
    }

    fn follow_leadership(&mut self) {
        let image = self.context.metadata.image();
        let shards: Vec<(i32, i32)> = self
            .shards
            .iter()
            .map(|(p, s)| (*p, s.leader_epoch))
            .collect();
        for (partition, loaded_epoch) in shards {
            let keep = matches!(
                self.role(&image, partition),
                Role::Leader(_, epoch) if epoch == loaded_epoch
            );
            if !keep {
                tracing::info!(
                    partition,
                    "no longer leading; transaction coordinator unloaded"
                );
                self.unload(partition);
            }
        }
        // Partitions this broker leads are loaded as soon as it leads them, so that a
        // failed-over coordinator finishes its predecessor's markers without waiting for a
        // client.
        let Some(topic) = image.topic_by_name(TXN_TOPIC) else {
            return;
        };
        let partitions: Vec<i32> = topic.partitions.keys().copied().collect();
        for partition in partitions {
            if self.shards.contains_key(&partition) || self.loading.contains_key(&partition) {
                continue;
            }
            if let Role::Leader(log, epoch) = self.role(&image, partition) {
                if self.loading.len() < 4 {
                    self.start_load(partition, &log, epoch);
                }
            }
        }
    }
}

/// An output's parts, its response wrapped as a [`TxnResponse`].
fn split<R>(
    output: Output<R>,
    wrap: impl FnOnce(R) -> TxnResponse,
) -> (Vec<TxnRecord>, TxnResponse, Vec<MarkerJob>) {
    (output.records, wrap(output.response), output.markers)
}

/// `response` with its error replaced (for a reply that could not be committed).
fn replace_error(response: TxnResponse, error: ErrorCode) -> TxnResponse {
    match response {
        TxnResponse::InitProducerId(_) => TxnResponse::InitProducerId(InitPidResult {
            error,
            producer_id: -1,
            producer_epoch: -1,
        }),
        TxnResponse::Error(_) => TxnResponse::Error(error),
        TxnResponse::Verify(_) => TxnResponse::Verify(Err(error)),
        TxnResponse::EndTxn(r) => TxnResponse::EndTxn(EndTxnResult { error, ..r }),
        TxnResponse::Describe(_) => TxnResponse::Describe(Err(error)),
    }
}

/// Rebuilds a coordinator from the partition's whole log; returns it with the marker jobs
/// of prepared transactions and the offset it read to. A record that cannot be decoded
/// stops the load (logged with the partition): the partition is not served rather than
/// served from a state that skips what the log says.
async fn load(log: &Arc<Partition>, config: Config) -> Option<(Coordinator, Vec<MarkerJob>, i64)> {
    let reading = Arc::clone(log);
    let read = tokio::task::spawn_blocking(move || read_records(&reading))
        .await
        .ok()?;
    let (entries, end) = match read {
        Ok(read) => read,
        Err(reason) => {
            tracing::warn!(partition = log.tp.partition, %reason, "cannot read {TXN_TOPIC}");
            return None;
        }
    };
    let mut coordinator = Coordinator::new(config);
    let records = entries.iter().filter_map(|e| match e {
        LogEntry::Record(r) => Some((r.key.as_ref(), r.value.as_deref())),
        _ => None,
    });
    match coordinator.load(records) {
        Ok(jobs) => {
            tracing::debug!(
                partition = log.tp.partition,
                end_offset = end,
                "transaction coordinator loaded"
            );
            Some((coordinator, jobs, end))
        }
        Err(error) => {
            tracing::error!(
                partition = log.tp.partition,
                %error,
                "a {TXN_TOPIC} record cannot be decoded; this partition's transactions are \
                 not served (inspect it with `strom consume {TXN_TOPIC}`)"
            );
            None
        }
    }
}

/// Writes a job's markers until every partition has one, or until this broker no longer
/// coordinates the partition at `leader_epoch` (the next coordinator finishes the job from
/// the log); then reports the job done to the runtime.
async fn write_markers(
    context: Arc<BrokerContext>,
    runtime: mpsc::Sender<TxnMessage>,
    partition: i32,
    leader_epoch: i32,
    job: MarkerJob,
) {
    let mut remaining = job.partitions.clone();
    let mut backoff = MARKER_BACKOFF_MIN_MS;
    loop {
        let image = context.metadata.image();
        let coordinating = image
            .topic_by_name(TXN_TOPIC)
            .and_then(|t| t.partitions.get(&partition))
            .is_some_and(|p| p.leader == context.config.node_id && p.leader_epoch == leader_epoch);
        if !coordinating || *context.shutdown.borrow() {
            return;
        }
        let marker = crate::txn_markers::TxnMarker {
            producer_id: job.producer_id,
            producer_epoch: job.producer_epoch,
            commit: job.commit,
            coordinator_epoch: leader_epoch,
            // KIP-1228: the partitions check the epoch by the transaction's version
            // (strictly newer at 2, where this end bumped it; not older below).
            transaction_version: job.transaction_version,
            partitions: remaining.clone(),
        };
        let results = send_markers(&context, &image, marker).await;
        let image = context.metadata.image();
        let exists = |tp: &TopicPartition| {
            image
                .topic_by_name(&tp.topic)
                .is_some_and(|t| t.partitions.contains_key(&tp.partition))
        };
        let round = crate::markers::marker_round(results, exists);
        context.metrics.txn_markers.on_round(&round);
        match round {
            MarkerRound::Complete => {
                let done = TxnMessage::MarkersDone {
                    partition,
                    leader_epoch,
                    job,
                };
                let _ = runtime.send(done).await;
                return;
            }
            MarkerRound::Retry(partitions) => {
                for tp in &partitions {
                    tracing::debug!(topic = %tp.topic, partition = tp.partition,
                        transactional_id = %job.transactional_id, "marker not written yet; retrying");
                }
                remaining = partitions;
            }
            MarkerRound::Stop {
                partition: tp,
                error,
                answer: MarkerAnswer::Fenced,
            } => {
                tracing::info!(
                    transactional_id = %job.transactional_id,
                    producer_id = job.producer_id,
                    producer_epoch = job.producer_epoch,
                    coordinator_epoch = leader_epoch,
                    topic = %tp.topic,
                    partition = tp.partition,
                    %error,
                    "a newer producer or coordinator epoch owns this transaction; this \
                     coordinator stops sending its markers"
                );
                return;
            }
            MarkerRound::Stop {
                partition: tp,
                error,
                ..
            } => {
                tracing::error!(
                    transactional_id = %job.transactional_id,
                    producer_id = job.producer_id,
                    topic = %tp.topic,
                    partition = tp.partition,
                    %error,
                    "the partition's leader refused a transaction marker with an error that \
                     retrying cannot mend; the transaction stays prepared until partition \
                     {partition} of {TXN_TOPIC} is loaded again (move its leadership or restart \
                     this broker), which resumes its markers"
                );
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(backoff)).await;
        backoff = (backoff * 2).min(MARKER_BACKOFF_MAX_MS);
    }
}

/// One attempt at a marker: partitions led here are written locally, the others are sent
/// to their leaders (one WriteTxnMarkers request per leader); a partition without a live
/// leader is NOT_LEADER_OR_FOLLOWER (retried).
async fn send_markers(
    context: &Arc<BrokerContext>,
    image: &MetadataImage,
    marker: crate::txn_markers::TxnMarker,
) -> Vec<(TopicPartition, strom_protocol::ErrorCode)> {
    let mut by_leader: HashMap<i32, Vec<TopicPartition>> = HashMap::new();
    let mut results = Vec::new();
    for tp in &marker.partitions {
        let leader = image
            .topic_by_name(&tp.topic)
            .map(|t| t.partitions.get(&tp.partition).map(|p| p.leader));
        match leader {
            None | Some(None) => results.push((
                tp.clone(),
                strom_protocol::ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            )),
            Some(Some(leader)) if leader < 0 => results.push((
                tp.clone(),
                strom_protocol::ErrorCode::NOT_LEADER_OR_FOLLOWER,
            )),
            Some(Some(leader)) => by_leader.entry(leader).or_default().push(tp.clone()),
        }
    }
    for (leader, partitions) in by_leader {
        let marker = crate::txn_markers::TxnMarker {
            partitions,
            ..marker.clone()
        };
        if leader == context.config.node_id {
            let written = crate::txn_markers::write_txn_markers(
                context,
                &marker,
                crate::txn_markers::MARKER_TIMEOUT,
            )
            .await;
            results.extend(
                written
                    .into_iter()
                    .map(|r| (TopicPartition::new(r.topic, r.partition), r.error)),
            );
        } else {
            results.extend(crate::markers::send_to_leader(context, image, leader, &marker).await);
        }
    }
    results
}

/// KIP-890 part 1: asks the coordinator of `transactional_id` (here, or on another broker
/// with AddPartitionsToTxn v4 `verify_only`) whether `tp` is in the producer's ongoing
/// transaction. With `add` (part 2: a transaction version 2 producer's Produce v12+ or
/// TxnOffsetCommit v5+) the coordinator instead adds `tp` to the transaction, starting one
/// if none is open (AddPartitionsToTxn v4 without `verify_only` to another broker).
/// A partition not in the transaction is TRANSACTION_ABORTABLE for a client that knows it
/// (`abortable_known`: Produce v11+, TxnOffsetCommit v4+), INVALID_TXN_STATE for older
/// ones; errors other than those and the fencing ones are retriable for the producer, as
/// Kafka maps them (NOT_ENOUGH_REPLICAS).
pub async fn verify_partition(
    context: &BrokerContext,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    tp: TopicPartition,
    add: bool,
    abortable_known: bool,
) -> strom_protocol::ErrorCode {
    let image = context.metadata.image();
    let Some(topic) = image.topic_by_name(TXN_TOPIC) else {
        return strom_protocol::ErrorCode::INVALID_TXN_STATE;
    };
    let partition = partition_for(&image, transactional_id);
    let leader = topic.partitions.get(&partition).map_or(-1, |p| p.leader);
    let code = if leader == context.config.node_id {
        let command = if add {
            TxnCommand::AddPartitions {
                transactional_id: transactional_id.to_string(),
                producer_id,
                producer_epoch,
                partitions: vec![tp.clone()],
                client_tv: strom_txn::TV2,
            }
        } else {
            TxnCommand::Verify {
                transactional_id: transactional_id.to_string(),
                producer_id,
                producer_epoch,
                partitions: vec![tp.clone()],
            }
        };
        let response = context.txns.call(partition, command).await;
        match response {
            TxnResponse::Verify(Ok(results)) => results
                .into_iter()
                .find(|(p, _)| *p == tp)
                .map_or(ErrorCode::TransactionAbortable, |(_, e)| e),
            other => other.error(),
        }
        .code()
    } else {
        crate::markers::verify_remote(
            context,
            &image,
            leader,
            transactional_id,
            producer_id,
            producer_epoch,
            &tp,
            !add,
        )
        .await
    };
    verification_error(code, abortable_known)
}

/// Kafka's mapping of a verification answer to the Produce error (`AddPartitionsToTxnManager`
/// and `ReplicaManager`'s `appendRecordsWithTransactionVerification`): TRANSACTION_ABORTABLE
/// only to clients that know it (`abortable_known`; Kafka's `DEFAULT_ERROR` operation gets
/// INVALID_TXN_STATE), coordinator trouble retriable.
fn verification_error(code: i16, abortable_known: bool) -> strom_protocol::ErrorCode {
    use strom_protocol::ErrorCode as E;
    match code {
        0 => E::NONE,
        c if c == E::INVALID_PRODUCER_EPOCH.code() || c == E::PRODUCER_FENCED.code() => {
            E::INVALID_PRODUCER_EPOCH
        }
        c if c == E::TRANSACTION_ABORTABLE.code() && abortable_known => E::TRANSACTION_ABORTABLE,
        c if c == E::INVALID_PRODUCER_ID_MAPPING.code()
            || c == E::INVALID_TXN_STATE.code()
            || c == E::TRANSACTION_ABORTABLE.code() =>
        {
            E::INVALID_TXN_STATE
        }
        _ => E::NOT_ENOUGH_REPLICAS,
    }
}

#[cfg(test)]
mod tests {
    use strom_protocol::ErrorCode as E;

    use super::verification_error;

    /// Kafka's `AddPartitionsToTxnManager` and `ReplicaManager`: a partition not in the
    /// transaction is TRANSACTION_ABORTABLE for clients that know it (Produce v11+,
    /// TxnOffsetCommit v4+), INVALID_TXN_STATE for older ones; fencing is
    /// INVALID_PRODUCER_EPOCH; coordinator trouble retriable.
    #[test]
    fn verification_answers_map_as_kafkas() {
        let check = |code: E, abortable_known: bool, expected: E| {
            assert_eq!(
                verification_error(code.code(), abortable_known),
                expected,
                "{code:?} (abortable known: {abortable_known})"
            );
        };
        for known in [false, true] {
            check(E::NONE, known, E::NONE);
            check(E::PRODUCER_FENCED, known, E::INVALID_PRODUCER_EPOCH);
            check(E::INVALID_PRODUCER_EPOCH, known, E::INVALID_PRODUCER_EPOCH);
            check(E::INVALID_TXN_STATE, known, E::INVALID_TXN_STATE);
            check(E::INVALID_PRODUCER_ID_MAPPING, known, E::INVALID_TXN_STATE);
            for retriable in [
                E::CONCURRENT_TRANSACTIONS,
                E::COORDINATOR_NOT_AVAILABLE,
                E::COORDINATOR_LOAD_IN_PROGRESS,
                E::NOT_COORDINATOR,
            ] {
                check(retriable, known, E::NOT_ENOUGH_REPLICAS);
            }
        }
        check(E::TRANSACTION_ABORTABLE, true, E::TRANSACTION_ABORTABLE);
        check(E::TRANSACTION_ABORTABLE, false, E::INVALID_TXN_STATE);
    }
}
