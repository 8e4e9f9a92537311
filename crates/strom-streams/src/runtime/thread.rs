//! A stream thread: one group member with its own consumer, producer and restore
//! consumer, running its active tasks and keeping its standby tasks current.
//!
//! The loop: rejoin when the group rebalances (after committing: the consumer is in
//! manual-rejoin mode, so nothing is revoked under a task's feet), restore changelogs
//! into restoring and standby tasks, poll, process every queued record, send what the
//! tasks produced, fire wall-clock punctuations, and commit every `commit.interval.ms`.
//!
//! Commit order (at_least_once), which is what makes a restart safe:
//! 1. every produced record (output, repartition, changelog) is acknowledged (flush);
//! 2. the stores are flushed to disk (redb commit, fsynced);
//! 3. the checkpoint (changelog offsets covered by the files) is written and fsynced;
//! 4. the input offsets are committed to the group.
//!
//! A crash anywhere in between re-processes input since the last commit 4 (at least
//! once) over stores that hold no write the changelog lacks.
//!
//! Commit order (exactly_once_v2): the thread's producer is transactional
//! (`<application.id>-<process id>-<thread>`); a transaction begins before the first
//! record a commit interval produces, and the commit is:
//! 1. the consumed offsets go into the transaction (`send_offsets_to_transaction` with the
//!    consumer's generation and member id, so a member the group has moved on from is
//!    refused);
//! 2. `commit_transaction` (flush, then EndTxn): output, repartition and changelog records
//!    and the offsets become visible together;
//! 3. only then are the stores flushed to disk and the checkpoint written.
//!
//! So a store on disk never holds a write of an uncommitted (or aborted) transaction, and
//! a checkpoint is a lower bound of what it holds: replaying the committed changelog from
//! it is exact. Consumers (input, repartition, restore) read committed data only. On an
//! abortable error the transaction is aborted and every active task is re-created: its
//! in-memory writes are dropped, its stores restored from the committed changelog, and its
//! input read again from the committed offsets. A fenced producer or a member the group
//! no longer knows (Kafka Streams' TaskMigratedException) closes every active task dirty,
//! replaces the producer and rejoins (`on_task_migrated`); any other fatal error stops
//! the thread.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strom_client::{
    Admin, Consumer, ConsumerRecord, DeliveryFuture, OffsetAndMetadata, OffsetSpec, Producer,
    ProducerRecord, TopicPartition,
};
use strom_records::now_ms;

use super::assignor::{decode, AssignmentInfo, StreamsAssignor, SubscriptionInfo};
use super::config::GroupProtocol;
use super::streams_group::{self, GroupStatus, Outcome, StreamsMember, Tasks};
use super::{guard, Metrics, Shared, StreamThreadExceptionResponse, ThreadState};
use crate::error::{Result, StreamsError};
use crate::processor::{OutRecord, TaskMetrics};
use crate::state::{checkpoint, lock};
use crate::task::{Task, TaskId};
use crate::topology::TopicName;

/// Produced records awaiting acknowledgement before the oldest is awaited.
const PENDING_MAX: usize = 20_000;
/// How often metrics are published.
const METRICS_INTERVAL_MS: u64 = 500;
/// Task migrations in a row (no successful commit between them) after which the thread
/// gives up and stops the application: something other than a lost membership is wrong.
const MIGRATIONS_MAX: u32 = 10;

/// Whether `e` means this thread's tasks now belong to someone else (Kafka Streams'
/// `TaskMigratedException`): its transactional producer was fenced (PRODUCER_FENCED, or
/// INVALID_PRODUCER_EPOCH after the coordinator aborted a transaction that outlived
/// `transaction.timeout.ms`), or the group no longer knows the member or its generation
/// (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_MEMBER_EPOCH, e.g. on a transactional
/// offset commit after a pause longer than `session.timeout.ms`), or refuses an offset
/// commit with the member's epoch (STALE_MEMBER_EPOCH: Kafka's consumer fails such a
/// commit with CommitFailedException, which Kafka Streams turns into a task migration;
/// the commit did not happen and must not be counted). The cure is to close the tasks
/// dirty and rejoin, not to stop the application.
fn task_migrated(e: &StreamsError) -> bool {
    match e {
        StreamsError::Client(c) => matches!(
            c.kafka_name(),
            Some(
                "PRODUCER_FENCED"
                    | "INVALID_PRODUCER_EPOCH"
                    | "UNKNOWN_MEMBER_ID"
                    | "ILLEGAL_GENERATION"
                    | "FENCED_MEMBER_EPOCH"
                    | "STALE_MEMBER_EPOCH"
            )
        ),
        _ => false,
    }
}

struct Slot {
    task: Task,
    /// Next changelog offset per changelog partition: restore position, or one past the
    /// last acknowledged write.
    changelog_next: BTreeMap<TopicPartition, i64>,
    /// While restoring: the end offsets to reach. `None`: running (or a standby).
    restoring: Option<BTreeMap<TopicPartition, i64>>,
}

struct Pending {
    future: DeliveryFuture,
    /// A changelog write of this task (its offset goes into the checkpoint).
    changelog: Option<TaskId>,
}

pub(crate) struct StreamThread {
    index: usize,
    shared: Arc<Shared>,
    consumer: Consumer,
    restore: Consumer,
    producer: Producer,
    admin: Admin,
    info: Arc<Mutex<SubscriptionInfo>>,
    active: BTreeMap<TaskId, Slot>,
    standby: BTreeMap<TaskId, Slot>,
    pending: VecDeque<Pending>,
    topic_sub: HashMap<String, u32>,
    restore_assigned: BTreeSet<TopicPartition>,
    committed: BTreeMap<TopicPartition, i64>,
    retired: TaskMetrics,
    commits: u64,
    restored: u64,
    lag: BTreeMap<TopicPartition, i64>,
    last_commit: Instant,
    last_purge: Instant,
    last_metrics: Instant,
    /// Something was processed, punctuated or restored since the last commit.
    commit_needed: bool,
    /// `processing.guarantee=exactly_once_v2`: the producer is transactional.
    eos: bool,
    /// A transaction is open (exactly_once_v2).
    in_txn: bool,
    /// Task migrations handled since the last successful commit.
    migrations: u32,
    /// `group.protocol=streams`: the thread's streams group membership (else the
    /// consumer's classic membership assigns the tasks).
    member: Option<StreamsMember>,
    /// `max.poll.interval.ms`: the rebalance timeout a streams group member declares, and
    /// how long it waits for missing source topics.
    max_poll_interval_ms: u64,
    /// Standby slots the streams group assigned as warm-up tasks (reported as such).
    warmup: BTreeSet<TaskId>,
    /// Since when the streams group reports source topics missing.
    missing_sources_since: Option<Instant>,
}

impl StreamThread {
    pub(crate) fn new(index: usize, shared: Arc<Shared>) -> Result<StreamThread> {
        let config = &shared.config;
        let info = Arc::new(Mutex::new(SubscriptionInfo {
            version: 1,
            process: shared.process_id.clone(),
            host: config.application_server.clone(),
            active: Vec::new(),
            state: Vec::new(),
        }));
        let consumer_config = config.consumer()?;
        let max_poll_interval_ms = consumer_config.max_poll_interval_ms;
        let mut consumer = Consumer::new(consumer_config)?;
        consumer.set_assignor(Arc::new(StreamsAssignor {
            topology: shared.topology.clone(),
            application_id: config.application_id.clone(),
            standbys: config.num_standby_replicas,
            info: info.clone(),
        }))?;
        consumer.set_manual_rejoin(true);
        let mut topic_sub = HashMap::new();
        for sub in &shared.topology.subtopologies {
            for t in &sub.sources {
                topic_sub.insert(t.resolve(&config.application_id), sub.id);
            }
        }
        let member = match config.group_protocol {
            GroupProtocol::Classic => None,
            GroupProtocol::Streams => {
                let wire = streams_group::wire_topology(
                    &shared.topology,
                    &config.application_id,
                    &guard(&shared.partitions),
                    config.replication_factor,
                );
                Some(StreamsMember::new(
                    &shared.process_id,
                    config.application_server.as_deref(),
                    max_poll_interval_ms,
                    wire,
                    config.thread_instance_id(index),
                    config
                        .client_tags
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )?)
            }
        };
        let eos = config.exactly_once();
        let transactional_id =
            eos.then(|| format!("{}-{}-{index}", config.application_id, shared.process_id));
        Ok(StreamThread {
            index,
            restore: Consumer::new(config.restore_consumer()?)?,
            producer: Producer::new(config.producer(transactional_id)?)?,
            admin: Admin::new(config.admin()?)?,
            consumer,
            info,
            active: BTreeMap::new(),
            standby: BTreeMap::new(),
            pending: VecDeque::new(),
            topic_sub,
            restore_assigned: BTreeSet::new(),
            committed: BTreeMap::new(),
            retired: TaskMetrics::default(),
            commits: 0,
            restored: 0,
            lag: BTreeMap::new(),
            last_commit: Instant::now(),
            last_purge: Instant::now(),
            last_metrics: Instant::now(),
            commit_needed: false,
            eos,
            in_txn: false,
            migrations: 0,
            member,
            max_poll_interval_ms,
            warmup: BTreeSet::new(),
            missing_sources_since: None,
            shared,
        })
    }

    pub(crate) async fn run(mut self) {
        let thread = self.index;
        let result = self.run_loop().await;
        if let Err(e) = &result {
            let response = self.shared.on_thread_error(e);
            tracing::error!(thread, error = %e, ?response, "stream thread failed; stopping");
            if response == StreamThreadExceptionResponse::ShutdownApplication {
                self.ask_application_shutdown().await;
            }
            self.shared.fail(e.clone());
        }
        if let Err(e) = self.shutdown(result.is_ok()).await {
            tracing::warn!(thread, error = %e, "stream thread did not close cleanly");
        }
        self.shared.set_thread(self.index, ThreadState::Dead);
    }

    async fn run_loop(&mut self) -> Result<()> {
        let app = self.shared.config.application_id.clone();
        let topics = self.shared.topology.source_topics(&app);
        if self.eos {
            // Fences an earlier producer with this id and aborts what it left open.
            self.producer.init_transactions().await?;
        }
        if self.member.is_none() {
            self.consumer.subscribe(topics).await?;
        }
        while !self.shared.stopping() {
            match self.step().await {
                Ok(()) => {}
                Err(e) if task_migrated(&e) => self.on_task_migrated(e).await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One round of the loop: rejoin if due, restore, poll, process, send, and commit
    /// when the interval is up.
    async fn step(&mut self) -> Result<()> {
        let poll = Duration::from_millis(self.shared.config.poll_ms);
        let commit_every = Duration::from_millis(self.shared.config.commit_interval_ms);
        if self.member.is_some() {
            self.streams_heartbeat().await?;
        } else if self.consumer.rebalance_due() {
            self.rebalance().await?;
        }
        self.restore_step().await?;
        let wait = if self.active.values().any(|s| s.restoring.is_none()) {
            poll
        } else {
            Duration::from_millis(10)
        };
        let records = self.consumer.poll(wait).await?;
        self.route(records).await?;
        self.process()?;
        self.punctuate()?;
        if let Err(e) = self.send().await {
            return self.on_commit_error(e).await;
        }
        let requested = self
            .active
            .values_mut()
            .any(|s| std::mem::take(&mut s.task.state.commit_requested));
        if requested || (self.commit_needed && self.last_commit.elapsed() >= commit_every) {
            if let Err(e) = self.commit().await {
                self.on_commit_error(e).await?;
            }
        }
        self.publish_metrics(false);
        Ok(())
    }

    /// Kafka Streams' `TaskMigratedException` handling: the group or the transaction
    /// coordinator says this thread's tasks are no longer its own (its producer was fenced
    /// or its transaction timed out and was aborted, or the group removed the member, e.g.
    /// after a pause longer than `session.timeout.ms`). Whatever the thread did since its
    /// last commit is not committed and never will be: the open transaction is aborted
    /// (when the producer still can), every active task is closed dirty (no store flush,
    /// no checkpoint: under exactly_once_v2 its unflushed writes belong to the aborted
    /// transaction; under at_least_once the changelog replays over them), a fenced
    /// producer is replaced by a new one with the same `transactional.id` (its
    /// `init_transactions` fences nothing newer: the coordinator bumps the epoch past the
    /// old one), and the thread rejoins the group, which hands out tasks afresh. Standby
    /// tasks stay: they only hold committed changelog records.
    async fn on_task_migrated(&mut self, e: StreamsError) -> Result<()> {
        self.migrations += 1;
        if self.migrations > MIGRATIONS_MAX {
            tracing::error!(thread = self.index, error = %e, migrations = self.migrations, "tasks migrated too often without a successful commit in between");
            return Err(e);
        }
        tracing::warn!(thread = self.index, error = %e, "tasks migrated away from this thread (fenced or removed from the group); closing them dirty and rejoining");
        self.shared.set_thread(self.index, ThreadState::Rebalancing);
        if self.in_txn {
            if let Err(abort) = self.producer.abort_transaction().await {
                tracing::debug!(thread = self.index, error = %abort, "abort after the migration failed (the producer is fenced)");
            }
            self.in_txn = false;
        }
        self.pending.clear();
        self.close_active_dirty();
        if self.eos {
            let transactional_id = format!(
                "{}-{}-{}",
                self.shared.config.application_id, self.shared.process_id, self.index
            );
            let fresh = Producer::new(self.shared.config.producer(Some(transactional_id))?)?;
            let old = std::mem::replace(&mut self.producer, fresh);
            if let Err(close) = old.close().await {
                tracing::debug!(thread = self.index, error = %close, "closing the fenced producer");
            }
            self.producer.init_transactions().await?;
        }
        self.rejoin_group().await?;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Joins the group again after a task migration: the classic protocol rejoins now;
    /// a streams group member forgets its membership (its next heartbeat joins with epoch
    /// 0, owning nothing, as the broker requires), so its standby tasks are closed too
    /// (cleanly: they hold committed changelog records only) and its consumer holds no
    /// partitions until the new assignment.
    async fn rejoin_group(&mut self) -> Result<()> {
        let Some(member) = self.member.as_mut() else {
            return self.rebalance().await;
        };
        member.rejoin();
        self.consumer.set_group_member(None);
        self.consumer.assign(Vec::new()).await?;
        let ids: Vec<TaskId> = self.standby.keys().copied().collect();
        for id in ids {
            if let Some(slot) = self.standby.remove(&id) {
                self.close_slot(slot)?;
            }
        }
        self.warmup.clear();
        self.publish_metrics(true);
        Ok(())
    }

    /// Kafka Streams' SHUTDOWN_APPLICATION: one more heartbeat, with `ShutdownApplication`
    /// set, from this (failing) thread while it is still a member of the streams group;
    /// the broker then reports the SHUTDOWN_APPLICATION status to every member, and every
    /// instance stops. Kafka adds a thread for this when the failing one was the last; here
    /// the failing thread sends it itself before it leaves. A member that has not joined
    /// (or was fenced) cannot ask, and under the classic protocol there is no way to ask:
    /// both are logged, and only this instance stops.
    async fn ask_application_shutdown(&mut self) {
        let owned = self.owned_tasks();
        let Some(member) = self.member.as_mut().filter(|m| m.epoch() > 0) else {
            tracing::warn!(thread = self.index, "cannot ask the other instances to shut down (not a member of a streams group); only this instance stops");
            return;
        };
        member.request_shutdown();
        let request = member.request(&owned);
        match self.consumer.streams_group_heartbeat(request).await {
            Ok(r) if r.error_code == 0 => {
                tracing::warn!(
                    thread = self.index,
                    "asked the streams group to shut the application down"
                )
            }
            Ok(r) => {
                tracing::warn!(
                    thread = self.index,
                    error_code = r.error_code,
                    "the streams group refused the shutdown request; only this instance stops"
                )
            }
            Err(e) => {
                tracing::warn!(thread = self.index, error = %e, "the shutdown request did not reach the streams group; only this instance stops")
            }
        }
    }

    /// The tasks this thread owns, as a streams group heartbeat reports them.
    fn owned_tasks(&self) -> Tasks {
        Tasks {
            active: self.active.keys().copied().collect(),
            standby: self
                .standby
                .keys()
                .filter(|t| !self.warmup.contains(t))
                .copied()
                .collect(),
            warmup: self
                .standby
                .keys()
                .filter(|t| self.warmup.contains(t))
                .copied()
                .collect(),
        }
    }

    /// Heartbeats the streams group when due and acts on the answer: a new assignment is
    /// reconciled at once ([`StreamThread::reconcile`]); fencing comes back as a task
    /// migration (the loop closes the active tasks dirty and the member joins again); the
    /// group's statuses are surfaced ([`StreamThread::on_statuses`]).
    async fn streams_heartbeat(&mut self) -> Result<()> {
        let now = Instant::now();
        if !self.member.as_ref().is_some_and(|m| m.due(now)) {
            return Ok(());
        }
        let owned = self.owned_tasks();
        let Some(member) = self.member.as_mut() else {
            return Ok(());
        };
        let request = member.request(&owned);
        let response = match self.consumer.streams_group_heartbeat(request).await {
            Ok(r) => r,
            Err(e) if e.is_retriable() || e.needs_coordinator_refresh() => {
                tracing::debug!(thread = self.index, error = %e, "streams group heartbeat failed; retrying");
                member.on_failure(Instant::now());
                return Ok(());
            }
            Err(e @ strom_client::ClientError::UnsupportedApi { .. }) => {
                return Err(StreamsError::config(
                    "group.protocol",
                    format!("streams needs a broker that serves StreamsGroupHeartbeat (KIP-1071): {e}; use group.protocol=classic"),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let app = self.shared.config.application_id.clone();
        let outcome = member.handle(&response, &self.shared.topology, &app, Instant::now())?;
        if member.epoch() > 0 {
            self.consumer
                .set_group_member(Some((member.member_id().to_string(), member.epoch())));
        }
        if let Some(hosts) = member.hosts.take() {
            *guard(&self.shared.hosts) = hosts;
        }
        let statuses = member.statuses.clone();
        match outcome {
            Outcome::Steady => {}
            Outcome::Assigned(target) => self.reconcile(target).await?,
            Outcome::Fenced(e) => return Err(e.into()),
            Outcome::Retry(e) => {
                tracing::debug!(thread = self.index, error = %e, "streams group coordinator not ready; retrying")
            }
        }
        self.on_statuses(&statuses)
    }

    /// Moves this thread's tasks to the streams group's target: the active tasks it loses
    /// are revoked first (everything processed is committed, then they are closed or
    /// become standbys), then the new ones are taken (their input partitions assigned to
    /// the consumer; they restore from their changelogs before processing), and only then
    /// does the next heartbeat (at once) report the new set: the broker gives a revoked
    /// task to another member only after this one stopped reporting it.
    async fn reconcile(&mut self, target: Tasks) -> Result<()> {
        let standby: BTreeSet<TaskId> = target.standby.union(&target.warmup).copied().collect();
        let active_now: BTreeSet<TaskId> = self.active.keys().copied().collect();
        let standby_now: BTreeSet<TaskId> = self.standby.keys().copied().collect();
        self.warmup = target.warmup.clone();
        if active_now == target.active && standby_now == standby {
            return Ok(());
        }
        self.shared.set_thread(self.index, ThreadState::Rebalancing);
        if active_now.iter().any(|t| !target.active.contains(t)) {
            if let Err(e) = self.commit().await {
                self.on_commit_error(e).await?;
            }
        }
        let app = &self.shared.config.application_id;
        let inputs: Vec<TopicPartition> = target
            .active
            .iter()
            .flat_map(|t| self.shared.topology.task_inputs(*t, app))
            .collect();
        self.consumer.assign(inputs).await?;
        tracing::info!(thread = self.index, active = ?target.active, standby = ?standby, "assigned by the streams group");
        self.apply_assignment(target.active, standby)?;
        if let Some(member) = self.member.as_mut() {
            member.heartbeat_now();
        }
        Ok(())
    }

    /// Acts on the streams group's statuses as Kafka Streams does: a shutdown request or
    /// incorrectly partitioned topics stop the application; missing source topics are
    /// waited for up to `max.poll.interval.ms`, then stop it; the rest was logged when it
    /// arrived.
    fn on_statuses(&mut self, statuses: &[GroupStatus]) -> Result<()> {
        let mut missing = None;
        for s in statuses {
            match s {
                GroupStatus::ShutdownApplication(d) => {
                    return Err(StreamsError::ApplicationShutdown(d.clone()))
                }
                GroupStatus::IncorrectlyPartitionedTopics(d) => {
                    return Err(StreamsError::Topology(d.clone()))
                }
                GroupStatus::MissingSourceTopics(d) => missing = Some(d.clone()),
                _ => {}
            }
        }
        let Some(detail) = missing else {
            self.missing_sources_since = None;
            return Ok(());
        };
        let since = *self.missing_sources_since.get_or_insert_with(Instant::now);
        let limit = Duration::from_millis(self.max_poll_interval_ms);
        if since.elapsed() > limit {
            return Err(StreamsError::MissingSourceTopics(detail));
        }
        Ok(())
    }

    /// Closes every active task without flushing its stores or writing its checkpoint
    /// (what it did since the last commit is dropped; it restores from the changelog if
    /// it comes back), and pauses its inputs until a new assignment says otherwise.
    fn close_active_dirty(&mut self) {
        let ids: Vec<TaskId> = self.active.keys().copied().collect();
        let mut inputs = Vec::new();
        for id in ids {
            guard(&self.shared.stores).remove(&id);
            if let Some(mut slot) = self.active.remove(&id) {
                self.retire_metrics(&slot.task);
                inputs.extend(slot.task.inputs.clone());
                slot.task.close();
            }
        }
        self.consumer.pause(&inputs);
        self.committed.clear();
        self.restore_assigned.clear();
        self.commit_needed = false;
    }

    fn task_dir(&self, id: TaskId) -> PathBuf {
        self.shared
            .config
            .state_dir
            .join(&self.shared.config.application_id)
            .join(id.to_string())
    }

    /// Tasks whose directory (with a checkpoint) is on this instance's disk.
    fn tasks_on_disk(&self) -> Vec<TaskId> {
        let dir = self
            .shared
            .config
            .state_dir
            .join(&self.shared.config.application_id);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.path().join(".checkpoint").is_file())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let (s, p) = name.split_once('_')?;
                Some(TaskId::new(s.parse().ok()?, p.parse().ok()?))
            })
            .collect()
    }

    fn open_slot(&self, id: TaskId) -> Result<Slot> {
        let dir = self.task_dir(id);
        let task = Task::new(
            &self.shared.topology,
            id,
            &self.shared.config.application_id,
            Some(dir.clone()),
            &self.shared.globals,
            self.shared.config.deserialization_continue,
        )?;
        let saved = checkpoint::read(&dir);
        let mut changelog_next = BTreeMap::new();
        for (store, tp) in &task.changelogs {
            let persistent = self
                .shared
                .topology
                .stores
                .get(store)
                .is_some_and(|s| s.persistent);
            let from = if persistent {
                saved.get(tp).copied().unwrap_or(0)
            } else {
                0
            };
            changelog_next.insert(tp.clone(), from);
        }
        Ok(Slot {
            task,
            changelog_next,
            restoring: Some(BTreeMap::new()),
        })
    }

    /// Commits, rejoins the group and applies the new assignment: tasks that stay keep
    /// running; tasks that leave are closed (or become standbys); new tasks restore.
    async fn rebalance(&mut self) -> Result<()> {
        self.shared.set_thread(self.index, ThreadState::Rebalancing);
        if !self.active.is_empty() {
            if let Err(e) = self.commit().await {
                self.on_commit_error(e).await?;
            }
        }
        for slot in self.active.values_mut() {
            slot.task.clear_queues();
        }
        {
            let mut info = guard(&self.info);
            info.active = self.active.keys().copied().collect();
            let mut state: BTreeSet<TaskId> = self.standby.keys().copied().collect();
            state.extend(self.tasks_on_disk());
            info.state = state.into_iter().collect();
        }
        let member_before = self.consumer.group_generation().map(|(_, m)| m);
        self.consumer.rejoin().await?;
        let member_after = self.consumer.group_generation().map(|(_, m)| m);
        if let (Some(before), Some(after)) = (&member_before, &member_after) {
            if !before.is_empty() && before != after && !self.active.is_empty() {
                // The group had removed this member (its session expired, e.g. while the
                // process was frozen) and it joined again as a new one: its tasks may have
                // run elsewhere meanwhile, so none is kept (Kafka's lost partitions): they
                // are closed dirty and whatever comes back restores from its changelog.
                tracing::warn!(thread = self.index, before = %before, after = %after, "the group had removed this member; closing its tasks dirty");
                self.close_active_dirty();
            }
        }
        let info: AssignmentInfo = self
            .consumer
            .assignment_user_data()
            .and_then(|b| decode(&b))
            .ok_or_else(|| StreamsError::Topology("the group leader sent no Streams assignment (a member that is not Strom Streams leads the group?)".into()))?;
        if let Some(e) = info.error {
            return Err(StreamsError::Topology(e));
        }
        *guard(&self.shared.hosts) = info.hosts.clone();
        let new_active: BTreeSet<TaskId> = info.active.iter().copied().collect();
        let new_standby: BTreeSet<TaskId> = info.standby.iter().copied().collect();
        tracing::info!(thread = self.index, active = ?new_active, standby = ?new_standby, "assigned");
        self.apply_assignment(new_active, new_standby)
    }

    /// The task lifecycle of a new assignment, whichever protocol made it: active tasks
    /// that stay keep running; those that leave are closed (flushed and checkpointed) or
    /// become standbys; standbys that become active restore what they lack; new tasks
    /// open and restore. Inputs of restoring tasks are paused (the consumer already holds
    /// the new assignment's partitions).
    fn apply_assignment(
        &mut self,
        new_active: BTreeSet<TaskId>,
        new_standby: BTreeSet<TaskId>,
    ) -> Result<()> {
        let gone: Vec<TaskId> = self
            .active
            .keys()
            .filter(|t| !new_active.contains(t))
            .copied()
            .collect();
        for id in gone {
            if let Some(mut slot) = self.active.remove(&id) {
                guard(&self.shared.stores).remove(&id);
                self.retire_metrics(&slot.task);
                slot.task.close();
                if new_standby.contains(&id) {
                    slot.task.reset_runtime();
                    slot.restoring = None;
                    self.standby.insert(id, slot);
                } else {
                    self.close_slot(slot)?;
                }
            }
        }
        let gone: Vec<TaskId> = self
            .standby
            .keys()
            .filter(|t| !new_standby.contains(t))
            .copied()
            .collect();
        for id in gone {
            if let Some(mut slot) = self.standby.remove(&id) {
                if new_active.contains(&id) {
                    slot.restoring = Some(BTreeMap::new());
                    self.active.insert(id, slot);
                } else {
                    self.close_slot(slot)?;
                }
            }
        }
        for id in &new_active {
            if !self.active.contains_key(id) {
                let slot = self.open_slot(*id)?;
                self.active.insert(*id, slot);
            }
        }
        for id in &new_standby {
            if !self.standby.contains_key(id) {
                let mut slot = self.open_slot(*id)?;
                slot.restoring = None;
                self.standby.insert(*id, slot);
            }
        }
        let paused: Vec<TopicPartition> = self
            .active
            .values()
            .filter(|s| s.restoring.is_some())
            .flat_map(|s| s.task.inputs.clone())
            .collect();
        self.consumer.pause(&paused);
        self.committed.clear();
        self.publish_metrics(true);
        Ok(())
    }

    /// Flushes a task's stores, writes its checkpoint, and drops it.
    fn close_slot(&mut self, mut slot: Slot) -> Result<()> {
        slot.task.flush_stores()?;
        self.write_checkpoint(&slot)?;
        Ok(())
    }

    fn write_checkpoint(&self, slot: &Slot) -> Result<()> {
        let Some(dir) = &slot.task.dir else {
            return Ok(());
        };
        let persistent: BTreeMap<TopicPartition, i64> = slot
            .task
            .changelogs
            .iter()
            .filter(|(store, _)| {
                self.shared
                    .topology
                    .stores
                    .get(*store)
                    .is_some_and(|s| s.persistent)
            })
            .filter_map(|(_, tp)| slot.changelog_next.get(tp).map(|o| (tp.clone(), *o)))
            .collect();
        if persistent.is_empty() {
            return Ok(());
        }
        checkpoint::write(dir, &persistent)
    }

    /// Reads changelogs into restoring active tasks and standby tasks; a restored active
    /// task starts running.
    async fn restore_step(&mut self) -> Result<()> {
        let mut wanted: BTreeMap<TopicPartition, (TaskId, bool)> = BTreeMap::new();
        for (id, s) in &self.active {
            if s.restoring.is_some() {
                for tp in s.changelog_next.keys() {
                    wanted.insert(tp.clone(), (*id, true));
                }
            }
        }
        for (id, s) in &self.standby {
            for tp in s.changelog_next.keys() {
                wanted.insert(tp.clone(), (*id, false));
            }
        }
        let keys: BTreeSet<TopicPartition> = wanted.keys().cloned().collect();
        if keys != self.restore_assigned {
            self.restore.assign(keys.iter().cloned().collect()).await?;
            for tp in keys.difference(&self.restore_assigned) {
                let (id, active) = wanted[tp];
                let slot = if active {
                    self.active.get(&id)
                } else {
                    self.standby.get(&id)
                };
                let from = slot
                    .and_then(|s| s.changelog_next.get(tp))
                    .copied()
                    .unwrap_or(0);
                self.restore.seek(tp, from).await?;
            }
            self.restore_assigned = keys;
        }
        // End offsets for restoring tasks that have none yet.
        let need_ends: Vec<TaskId> = self
            .active
            .iter()
            .filter(|(_, s)| {
                s.restoring.as_ref().is_some_and(BTreeMap::is_empty) && !s.changelog_next.is_empty()
            })
            .map(|(id, _)| *id)
            .collect();
        for id in need_ends {
            let tps: Vec<TopicPartition> =
                self.active[&id].changelog_next.keys().cloned().collect();
            let ends = if self.eos {
                // What the read_committed restore consumer can reach: the last stable
                // offset. The task's committed input offsets are fetched first (stable,
                // KIP-447): that waits out a transaction a dead owner left mid-commit, so
                // its changelog writes are below the end read here.
                let inputs = self.active[&id].task.inputs.clone();
                self.consumer.committed(&inputs).await?;
                self.admin
                    .list_offsets_read_committed(&tps, OffsetSpec::Latest)
                    .await?
            } else {
                self.admin.list_offsets(&tps, OffsetSpec::Latest).await?
            };
            if let Some(slot) = self.active.get_mut(&id) {
                slot.restoring = Some(ends.into_iter().map(|(tp, o)| (tp, o.offset)).collect());
            }
        }
        if !wanted.is_empty() {
            let restoring = wanted.values().any(|(_, a)| *a);
            let wait = Duration::from_millis(if restoring { 50 } else { 1 });
            let records = self.restore.poll(wait).await?;
            for r in records {
                self.apply_changelog(&wanted, r)?;
                self.commit_needed = true;
            }
            for tp in wanted.keys() {
                if let Some(pos) = self.restore.position(tp) {
                    let (id, active) = wanted[tp];
                    let slot = if active {
                        self.active.get_mut(&id)
                    } else {
                        self.standby.get_mut(&id)
                    };
                    if let Some(s) = slot {
                        if let Some(next) = s.changelog_next.get_mut(tp) {
                            *next = (*next).max(pos);
                        }
                    }
                }
            }
        }
        let done: Vec<TaskId> = self
            .active
            .iter()
            .filter(|(_, s)| {
                s.restoring.as_ref().is_some_and(|ends| {
                    (!ends.is_empty() || s.changelog_next.is_empty())
                        && ends
                            .iter()
                            .all(|(tp, end)| s.changelog_next.get(tp).is_some_and(|n| n >= end))
                })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            let Some(slot) = self.active.get_mut(&id) else {
                continue;
            };
            slot.restoring = None;
            slot.task.init(now_ms())?;
            let inputs = slot.task.inputs.clone();
            guard(&self.shared.stores).insert(id, slot.task.own_stores());
            self.consumer.resume(&inputs);
            tracing::info!(thread = self.index, task = %id, "task restored and running");
        }
        let awaiting = match &self.member {
            Some(m) => !m.assigned(),
            None => self.consumer.rebalance_due(),
        };
        if !self.active.values().any(|s| s.restoring.is_some()) && !awaiting {
            self.shared.set_thread(self.index, ThreadState::Running);
        }
        Ok(())
    }

    fn apply_changelog(
        &mut self,
        wanted: &BTreeMap<TopicPartition, (TaskId, bool)>,
        r: ConsumerRecord,
    ) -> Result<()> {
        let tp = TopicPartition::new(r.topic.clone(), r.partition);
        let Some(&(id, active)) = wanted.get(&tp) else {
            return Ok(());
        };
        let slot = if active {
            self.active.get_mut(&id)
        } else {
            self.standby.get_mut(&id)
        };
        let Some(slot) = slot else { return Ok(()) };
        let store = slot
            .task
            .changelogs
            .iter()
            .find(|(_, c)| **c == tp)
            .map(|(s, _)| s.clone());
        if let (Some(store), Some(key)) = (store, r.key) {
            if let Some(cell) = slot.task.state.stores.get(&store) {
                lock(cell)?.restore(key, r.value)?;
                self.restored += 1;
            }
        }
        if let Some(next) = slot.changelog_next.get_mut(&tp) {
            *next = (*next).max(r.offset + 1);
        }
        Ok(())
    }

    /// Queues records at their tasks. A record of a task that is not running (it cannot
    /// be: such partitions are paused) is not dropped: its partition goes back to it.
    async fn route(&mut self, records: Vec<ConsumerRecord>) -> Result<()> {
        let mut rewind: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for r in records {
            let Some(&sub) = self.topic_sub.get(&r.topic) else {
                continue;
            };
            let id = TaskId::new(sub, r.partition);
            match self.active.get_mut(&id) {
                Some(slot) if slot.restoring.is_none() => slot.task.add(r),
                _ => {
                    let tp = TopicPartition::new(r.topic.clone(), r.partition);
                    let at = rewind.entry(tp).or_insert(r.offset);
                    *at = (*at).min(r.offset);
                }
            }
        }
        for (tp, offset) in rewind {
            tracing::debug!(%tp, offset, "records of a task not running here; rewinding");
            self.consumer.seek(&tp, offset).await?;
            self.consumer.pause(std::slice::from_ref(&tp));
        }
        Ok(())
    }

    fn process(&mut self) -> Result<()> {
        for slot in self.active.values_mut() {
            if slot.restoring.is_some() {
                continue;
            }
            while slot.task.process_one()? {
                self.commit_needed = true;
            }
        }
        Ok(())
    }

    fn punctuate(&mut self) -> Result<()> {
        let now = now_ms();
        for slot in self.active.values_mut() {
            if slot.restoring.is_none() && slot.task.punctuate_wall_clock(now)? > 0 {
                self.commit_needed = true;
            }
        }
        Ok(())
    }

    /// Hands what the tasks produced to the producer.
    async fn send(&mut self) -> Result<()> {
        let mut out: Vec<(TaskId, OutRecord)> = Vec::new();
        for (id, slot) in &mut self.active {
            out.extend(slot.task.take_output().into_iter().map(|r| (*id, r)));
        }
        for (id, r) in out {
            let changelog = r.changelog_of.is_some().then_some(id);
            let record = ProducerRecord {
                topic: r.topic,
                partition: r.partition,
                key: r.key,
                value: r.value,
                headers: r.headers,
                timestamp_ms: (r.timestamp >= 0).then_some(r.timestamp),
            };
            self.begin_if_needed()?;
            let future = self.producer.send(record).await?;
            self.pending.push_back(Pending { future, changelog });
            while self.pending.len() > PENDING_MAX {
                if let Some(p) = self.pending.pop_front() {
                    self.settle(p).await?;
                }
            }
        }
        Ok(())
    }

    async fn settle(&mut self, p: Pending) -> Result<()> {
        let meta = p.future.await?;
        if let Some(id) = p.changelog {
            if let Some(slot) = self
                .active
                .get_mut(&id)
                .or_else(|| self.standby.get_mut(&id))
            {
                let tp = TopicPartition::new(meta.topic, meta.partition);
                if let Some(next) = slot.changelog_next.get_mut(&tp) {
                    *next = (*next).max(meta.offset + 1);
                }
            }
        }
        Ok(())
    }

    fn begin_if_needed(&mut self) -> Result<()> {
        if self.eos && !self.in_txn {
            self.producer.begin_transaction()?;
            self.in_txn = true;
        }
        Ok(())
    }

    /// The commit (see the module doc for the order of each guarantee and why).
    async fn commit(&mut self) -> Result<()> {
        self.send().await?;
        if self.eos {
            let offsets = self.changed_offsets();
            if !offsets.is_empty() {
                self.begin_if_needed()?;
                let group = self.consumer.group_metadata().ok_or_else(|| {
                    StreamsError::config("application.id", "the consumer has no group")
                })?;
                self.producer
                    .send_offsets_to_transaction(&offsets, &group)
                    .await?;
            }
            if self.in_txn {
                self.producer.commit_transaction().await?;
                self.in_txn = false;
            }
            for (tp, o) in &offsets {
                self.committed.insert(tp.clone(), o.offset);
            }
        } else {
            self.producer.flush().await?;
        }
        while let Some(p) = self.pending.pop_front() {
            self.settle(p).await?;
        }
        let mut offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = BTreeMap::new();
        let ids: Vec<TaskId> = self
            .active
            .keys()
            .chain(self.standby.keys())
            .copied()
            .collect();
        for id in ids {
            let slot = match self.active.get_mut(&id) {
                Some(s) => s,
                None => match self.standby.get_mut(&id) {
                    Some(s) => s,
                    None => continue,
                },
            };
            if slot.restoring.is_some() {
                continue;
            }
            slot.task.flush_stores()?;
            for (tp, o) in &slot.task.consumed {
                if self.committed.get(tp) != Some(o) {
                    offsets.insert(tp.clone(), OffsetAndMetadata::new(*o));
                }
            }
            let slot = match self.active.get(&id).or_else(|| self.standby.get(&id)) {
                Some(s) => s,
                None => continue,
            };
            self.write_checkpoint(slot)?;
        }
        if !offsets.is_empty() && !self.eos {
            match self.consumer.commit_offsets(&offsets).await {
                Ok(()) => {
                    for (tp, o) in &offsets {
                        self.committed.insert(tp.clone(), o.offset);
                    }
                }
                // A classic group is rebalancing: the rejoin that follows settles who owns
                // what. Nothing was committed, so nothing is counted as committed: the
                // commit is still needed and is tried again next interval (records since
                // the last successful commit are processed again if the tasks move).
                Err(e) if e.kafka_name() == Some("REBALANCE_IN_PROGRESS") => {
                    tracing::warn!(thread = self.index, error = %e, "commit refused by the group (rebalancing); rejoining and committing again later");
                    self.last_commit = Instant::now();
                    return Ok(());
                }
                // STALE_MEMBER_EPOCH (Kafka's consumer: CommitFailedException; Kafka
                // Streams: TaskMigratedException), UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
                // FENCED_MEMBER_EPOCH: the group moved on without this member; its tasks
                // are someone else's now (a task migration, handled by the loop: close
                // them dirty and rejoin).
                Err(e) => return Err(e.into()),
            }
        }
        self.commits += 1;
        self.migrations = 0;
        self.commit_needed = false;
        self.last_commit = Instant::now();
        self.after_commit().await;
        Ok(())
    }

    /// Consumed offsets of running active tasks that moved since the last commit.
    fn changed_offsets(&self) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        let mut offsets = BTreeMap::new();
        for slot in self.active.values() {
            if slot.restoring.is_some() {
                continue;
            }
            for (tp, o) in &slot.task.consumed {
                if self.committed.get(tp) != Some(o) {
                    offsets.insert(tp.clone(), OffsetAndMetadata::new(*o));
                }
            }
        }
        offsets
    }

    /// A send or commit failed. Under exactly_once_v2 an abortable error aborts the
    /// transaction and re-creates every active task from committed state (Kafka Streams'
    /// TaskCorrupted handling); a task migration goes back to the loop
    /// ([`StreamThread::on_task_migrated`]); anything else stops the thread.
    async fn on_commit_error(&mut self, e: StreamsError) -> Result<()> {
        if task_migrated(&e) {
            // Not this thread's tasks any more: the loop closes them and rejoins.
            return Err(e);
        }
        let abortable = match &e {
            StreamsError::Client(c) => !c.is_fatal_for_transaction(),
            _ => false,
        };
        if !self.eos || !abortable {
            return Err(e);
        }
        tracing::warn!(thread = self.index, error = %e, "transaction failed; aborting it and re-initialising the tasks from committed state");
        if self.in_txn {
            self.producer.abort_transaction().await?;
            self.in_txn = false;
        }
        self.pending.clear();
        let ids: Vec<TaskId> = self.active.keys().copied().collect();
        for id in &ids {
            guard(&self.shared.stores).remove(id);
            if let Some(mut slot) = self.active.remove(id) {
                self.retire_metrics(&slot.task);
                // Dropped without a flush: its unflushed writes were in the aborted
                // transaction's changelog records.
                slot.task.close();
            }
        }
        let mut inputs = Vec::new();
        for id in ids {
            let slot = self.open_slot(id)?;
            inputs.extend(slot.task.inputs.clone());
            self.active.insert(id, slot);
        }
        let committed = self.consumer.committed(&inputs).await?;
        self.committed.clear();
        for tp in &inputs {
            match committed.get(tp) {
                Some(o) if o.offset >= 0 => {
                    self.consumer.seek(tp, o.offset).await?;
                    self.committed.insert(tp.clone(), o.offset);
                }
                _ => {
                    self.consumer
                        .seek_to_beginning(std::slice::from_ref(tp))
                        .await?
                }
            }
        }
        self.consumer.pause(&inputs);
        // Restoring starts over at each re-created task's own changelog position.
        self.restore_assigned.clear();
        self.commit_needed = false;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Lag metrics and repartition purging (best effort: failures are logged).
    async fn after_commit(&mut self) {
        let assigned: Vec<TopicPartition> = self.consumer.assignment();
        if !assigned.is_empty() {
            match self.admin.list_offsets(&assigned, OffsetSpec::Latest).await {
                Ok(ends) => {
                    self.lag = ends
                        .into_iter()
                        .map(|(tp, end)| {
                            let pos = self
                                .committed
                                .get(&tp)
                                .copied()
                                .or_else(|| self.consumer.position(&tp))
                                .unwrap_or(0);
                            let lag = (end.offset - pos).max(0);
                            (tp, lag)
                        })
                        .collect();
                }
                Err(e) => tracing::debug!(error = %e, "lag lookup failed"),
            }
        }
        let purge_every = Duration::from_millis(self.shared.config.repartition_purge_interval_ms);
        if self.last_purge.elapsed() < purge_every {
            return;
        }
        self.last_purge = Instant::now();
        let app = &self.shared.config.application_id;
        let repartition: BTreeSet<String> = self
            .shared
            .topology
            .repartitions
            .keys()
            .map(|n| TopicName::Internal(n.clone()).resolve(app))
            .collect();
        let purge: BTreeMap<TopicPartition, i64> = self
            .committed
            .iter()
            .filter(|(tp, _)| repartition.contains(&tp.topic))
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        if !purge.is_empty() {
            if let Err(e) = self.admin.delete_records(&purge).await {
                tracing::debug!(error = %e, "purging repartition topics failed");
            }
        }
    }

    fn retire_metrics(&mut self, task: &Task) {
        let m = &task.state.metrics;
        self.retired.records_processed += m.records_processed;
        self.retired.records_dropped_late += m.records_dropped_late;
        self.retired.records_skipped += m.records_skipped;
        self.retired.punctuations += m.punctuations;
    }

    fn publish_metrics(&mut self, force: bool) {
        if !force && self.last_metrics.elapsed() < Duration::from_millis(METRICS_INTERVAL_MS) {
            return;
        }
        self.last_metrics = Instant::now();
        let mut m = Metrics {
            records_processed: self.retired.records_processed,
            records_dropped_late: self.retired.records_dropped_late,
            records_skipped: self.retired.records_skipped,
            punctuations: self.retired.punctuations,
            commits: self.commits,
            records_restored: self.restored,
            active_tasks: self.active.keys().copied().collect(),
            standby_tasks: self.standby.keys().copied().collect(),
            lag: self.lag.clone(),
            store_entries: BTreeMap::new(),
        };
        for slot in self.active.values() {
            let t = &slot.task.state.metrics;
            m.records_processed += t.records_processed;
            m.records_dropped_late += t.records_dropped_late;
            m.records_skipped += t.records_skipped;
            m.punctuations += t.punctuations;
            for (name, cell) in slot.task.own_stores() {
                if let Ok(s) = lock(&cell) {
                    *m.store_entries.entry(name).or_default() += s.store.approximate_len();
                }
            }
        }
        if let Some(slot) = guard(&self.shared.metrics).get_mut(self.index) {
            *slot = m;
        }
    }

    /// Commits (when the loop ended cleanly), closes every task and leaves the group.
    async fn shutdown(&mut self, clean: bool) -> Result<()> {
        let mut clean = clean;
        let mut result = Ok(());
        if clean && !self.active.is_empty() {
            result = self.commit().await;
        }
        if self.in_txn {
            // Not committed: abort now rather than leave it to transaction.timeout.ms.
            if let Err(e) = self.producer.abort_transaction().await {
                tracing::warn!(thread = self.index, error = %e, "abort at shutdown failed");
            }
            self.in_txn = false;
            // The stores' unflushed writes belong to the aborted transaction: close
            // without flushing them or writing checkpoints.
            clean = false;
        }
        let ids: Vec<TaskId> = self.active.keys().copied().collect();
        for id in ids {
            guard(&self.shared.stores).remove(&id);
            if let Some(mut slot) = self.active.remove(&id) {
                self.retire_metrics(&slot.task);
                slot.task.close();
                if clean && slot.restoring.is_none() {
                    self.close_slot(slot)?;
                }
            }
        }
        let ids: Vec<TaskId> = self.standby.keys().copied().collect();
        for id in ids {
            if let Some(slot) = self.standby.remove(&id) {
                if clean {
                    self.close_slot(slot)?;
                }
            }
        }
        self.publish_metrics(true);
        if let Some(request) = self.member.as_mut().and_then(StreamsMember::leave_request) {
            if let Err(e) = self.consumer.streams_group_heartbeat(request).await {
                tracing::debug!(thread = self.index, error = %e, "leaving the streams group failed (the session timeout removes the member)");
            }
        }
        let consumer = std::mem::replace(
            &mut self.consumer,
            Consumer::new(self.shared.config.restore_consumer()?)?,
        );
        let _ = consumer.close().await;
        let restore = std::mem::replace(
            &mut self.restore,
            Consumer::new(self.shared.config.restore_consumer()?)?,
        );
        let _ = restore.close().await;
        let _ = self.producer.close().await;
        self.admin.close().await;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_client::ClientError;

    fn refused(code: i16) -> StreamsError {
        ClientError::from_code(code, None, "OffsetCommit of group app")
            .expect("a non-zero code is an error")
            .into()
    }

    /// Kafka's consumer fails a commit refused with STALE_MEMBER_EPOCH
    /// (CommitFailedException) and Kafka Streams takes that as a task migration: the
    /// commit did not happen, so the thread must not count it, and its tasks go.
    /// REBALANCE_IN_PROGRESS (classic groups) is not one: the thread rejoins and commits
    /// again.
    #[test]
    fn a_commit_refused_for_a_stale_member_epoch_is_a_task_migration() {
        // STALE_MEMBER_EPOCH, UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_MEMBER_EPOCH,
        // PRODUCER_FENCED, INVALID_PRODUCER_EPOCH
        for code in [113, 25, 22, 110, 90, 47] {
            assert!(task_migrated(&refused(code)), "code {code}");
        }
        // REBALANCE_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE
        for code in [27, 15] {
            assert!(!task_migrated(&refused(code)), "code {code}");
        }
    }
}
