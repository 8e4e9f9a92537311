//! One hosted partition: its log, its idempotent producers, and its part in replication,
//! as leader (strom-replica's [`Leader`]: followers' progress, the high watermark, ISR
//! proposals) or follower (appends and truncations the fetcher makes).
//!
//! Locking: `role` is held for reading by every append (leader or follower) and
//! truncation, and for writing by role changes, so no append of an old role lands after a
//! new one began (a stale leader's batch after the truncation that made it a follower, or
//! a fetched batch after becoming leader). `leader` (the replication state) is taken after
//! `role`, briefly, never across I/O; the high watermark is only written under it (or, for
//! a follower, under `role`'s read lock by the one fetcher), so it only moves forward.
//! Order: `role`, then `producers`, then `leader`, then the log's own locks.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use strom_log::{AppendInfo, AppendOrigin, Log, LogError, RecordsCheck, Unflushed};
use strom_meta::TopicIdPartition;
use strom_records::BatchHeader;
use strom_replica::{
    AckStatus, AlterIsr, AlterReply, EligibleBrokers, FetchRefusal, FollowerFetch, Leader,
    LeaderConfig, PartitionView,
};
use tokio::sync::{mpsc, watch};

use crate::producers::{
    BatchMeta, MarkerError, ProducerStates, ProducerView, SequenceCheck, Verification,
};
use crate::syncer::Durable;

/// What a partition is to this broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Open but serving nothing: just opened, or waiting for the image to hold this
    /// broker's registration.
    Offline,
    /// Leader of `epoch`.
    Leader {
        /// The leader epoch.
        epoch: i32,
    },
    /// Follower of `leader` (-1: none) in `epoch`.
    Follower {
        /// The leader's broker id.
        leader: i32,
        /// The leader epoch.
        epoch: i32,
    },
}

/// What `acks=all` waiters watch: the high watermark, and the leader epoch it belongs to
/// (-1 once this broker no longer leads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The high watermark.
    pub high_watermark: i64,
    /// The epoch this broker leads in, or -1.
    pub leader_epoch: i32,
}

/// Wake-ups shared by every partition of a broker.
#[derive(Debug)]
pub struct Signals {
    /// Ticks when any high watermark moves: consumers' long polls.
    pub high_watermark_moved: watch::Sender<u64>,
    /// Ticks when any leader log grows: followers' long polls.
    pub appended: watch::Sender<u64>,
    /// Partitions with an ISR change to send (the AlterPartition task, bounded; a full
    /// queue is fine: the ISR tick offers every pending change again).
    pub alter: mpsc::Sender<TopicIdPartition>,
}

impl Signals {
    fn tick(sender: &watch::Sender<u64>) {
        sender.send_modify(|count| *count = count.wrapping_add(1));
    }
}

/// When an append is committed to local storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Page-cache mode: nothing to wait for locally.
    Now,
    /// After an fsync that covers it, before the append call returns.
    Sync,
    /// Not yet: the caller waits itself ([`crate::ReplicaManager::sync_local`]), so that a
    /// connection's next produce request can be appended while this one's fsync runs.
    Later,
}

/// The result of a producer's append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Written at these offsets.
    New(AppendInfo),
    /// A retry of a batch already in the log: these are its original offsets.
    Duplicate(BatchMeta),
}

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The log refused or failed the append.
    #[error(transparent)]
    Log(#[from] LogError),
    /// More than one batch for a partition (Kafka allows exactly one from Produce v3).
    #[error("a produce request may hold exactly one record batch per partition")]
    MultipleBatches,
    /// A gap in, or a repeat from before the window of, the producer's sequence numbers.
    #[error("out of order sequence number {first_sequence} from producer {producer_id}")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The batch's first sequence.
        first_sequence: i32,
    },
    /// An epoch older than the producer's current one.
    #[error("producer {producer_id} epoch {epoch} is older than the current one")]
    StaleEpoch {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
    },
    /// This broker is not the leader (of that epoch), or not a follower of it.
    #[error("this broker is not the leader of epoch {epoch} for the partition")]
    NotLeader {
        /// The epoch the caller expected.
        epoch: i32,
    },
    /// `acks=all` while the ISR is smaller than `min.insync.replicas`.
    #[error("the ISR has {isr_size} members, min.insync.replicas is {min_isr}")]
    NotEnoughReplicas {
        /// Committed ISR members.
        isr_size: usize,
        /// The partition's `min.insync.replicas`.
        min_isr: usize,
    },
    /// A transactional batch whose transaction is not open here and whose verification no
    /// longer holds (its transaction ended, or a newer epoch came, since it was verified):
    /// Kafka's INVALID_TXN_STATE.
    #[error("producer {producer_id} epoch {epoch}: the batch is not part of an ongoing transaction (its transaction ended since it was verified)")]
    NotVerified {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
    },
}

/// Why a transaction marker was not written.
#[derive(Debug, thiserror::Error)]
pub enum MarkerAppendError {
    /// Refused or failed as any append.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// The producer's state refuses it (an older producer epoch, or an older coordinator
    /// epoch).
    #[error(transparent)]
    Marker(#[from] MarkerError),
}

impl From<LogError> for MarkerAppendError {
    fn from(error: LogError) -> Self {
        MarkerAppendError::Append(AppendError::Log(error))
    }
}

/// A producer's batch, as the caller hands it over.
pub struct ProducerBatch<'a> {
    /// The bytes (one batch from Produce; the log validates them).
    pub bytes: &'a [u8],
    /// The leader epoch the caller saw in the image; stamped into the batch.
    pub leader_epoch: i32,
    /// `acks=all`: refuse before appending when the ISR is below `min.insync.replicas`.
    pub acks_all: bool,
    /// What KIP-890 verification requires of a transactional batch at its append
    /// ([`Partition::start_verification`]).
    pub verification: Verification,
}

/// One hosted partition.
#[derive(Debug)]
pub struct Partition {
    /// Topic id and partition index.
    pub tp: TopicIdPartition,
    /// The topic's name.
    pub topic: String,
    /// The partition's log.
    pub log: Log,
    /// Idempotent producers' sequence state; held across check, append and update.
    producers: Mutex<ProducerStates>,
    /// The durable offset the syncer last published, for async commit waiters.
    pub(crate) durable: watch::Sender<Durable>,
    /// Whether the partition waits in the syncer's queue; only touched under its mutex.
    sync_queued: AtomicBool,
    /// Base offset of the active segment when the last producer snapshot was considered.
    snapshot_segment: AtomicI64,
    role: RwLock<Role>,
    leader: Mutex<Option<Leader>>,
    progress: watch::Sender<Progress>,
    min_isr: AtomicUsize,
    sync_on_commit: bool,
    signals: Arc<Signals>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Partition {
    /// A partition over an opened log, offline until it is given a role. Producer state is
    /// rebuilt from the log's last segments (headers only).
    pub(crate) fn new(
        tp: TopicIdPartition,
        topic: &str,
        log: Log,
        sync_on_commit: bool,
        signals: Arc<Signals>,
    ) -> Result<Partition, LogError> {
        let producers = rebuild_producers(&log)?;
        let active_segment = log.segment_base_offsets().last().copied().unwrap_or(0);
        let (durable, _) = watch::channel(Ok(log.durable_offset()));
        let (progress, _) = watch::channel(Progress {
            high_watermark: log.high_watermark(),
            leader_epoch: -1,
        });
        Ok(Partition {
            tp,
            topic: topic.to_string(),
            log,
            producers: Mutex::new(producers),
            durable,
            sync_queued: AtomicBool::new(false),
            snapshot_segment: AtomicI64::new(active_segment),
            role: RwLock::new(Role::Offline),
            leader: Mutex::new(None),
            progress,
            min_isr: AtomicUsize::new(1),
            sync_on_commit,
            signals,
        })
    }

    fn role_read(&self) -> RwLockReadGuard<'_, Role> {
        self.role.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The current role.
    pub fn role(&self) -> Role {
        *self.role_read()
    }

    /// The epoch this broker leads the partition in, if it does.
    pub fn leader_epoch(&self) -> Option<i32> {
        match self.role() {
            Role::Leader { epoch } => Some(epoch),
            _ => None,
        }
    }

    /// The high watermark and the epoch it belongs to, for `acks=all` waiters.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// The partition's `min.insync.replicas`.
    pub fn min_isr(&self) -> usize {
        self.min_isr.load(Ordering::Relaxed)
    }

    pub(crate) fn set_min_isr(&self, min_isr: usize) {
        self.min_isr.store(min_isr.max(1), Ordering::Relaxed);
    }

    /// The committed ISR and whether the high watermark reached this leader epoch's
    /// start (KIP-207), while leader.
    pub fn leader_view(&self) -> Option<(Vec<i32>, bool)> {
        lock(&self.leader)
            .as_ref()
            .map(|l| (l.isr().to_vec(), l.high_watermark_established()))
    }

    /// Whether an append ending before `end_offset`, made in `epoch`, is committed.
    /// `None` once this broker no longer leads in that epoch.
    pub fn ack_status(&self, end_offset: i64, epoch: i32) -> Option<AckStatus> {
        let leader = lock(&self.leader);
        let leader = leader.as_ref().filter(|l| l.leader_epoch() == epoch)?;
        Some(leader.ack_status(end_offset, self.min_isr()))
    }

    // ---- Leader: appends --------------------------------------------------------------

    /// Appends a batch built by the broker itself (group coordinator records) as leader of
    /// `leader_epoch`, and commits it locally per `commit`.
    pub fn append(
        &self,
        batches: &mut [u8],
        leader_epoch: i32,
        commit: Commit,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        let role = self.leading(leader_epoch)?;
        stamp_leader_epoch(batches, leader_epoch);
        let headers = first_headers(batches);
        // The producer state is updated under its lock with the append, so that a snapshot
        // (taken under the lock) covers exactly the log below the log end offset it reads.
        let mut producers = lock(&self.producers);
        let info = self
            .log
            .append(batches, AppendOrigin::Coordinator, now_ms)?;
        match headers.first() {
            // A marker appended this way (without `write_marker`'s checks) still ends its
            // producer's transaction.
            Some(header) if header.is_control() => {
                if let Some(marker) = marker_of(batches) {
                    let aborted = producers.record_marker(
                        header.producer_id,
                        header.producer_epoch,
                        marker.coordinator_epoch,
                        marker.commit,
                        info.first_offset,
                        header.max_timestamp,
                    );
                    if let Some(aborted) = aborted {
                        self.log.append_txn_index(aborted)?;
                    }
                }
            }
            Some(header) => producers.record(header, info.first_offset, info.last_offset),
            None => {}
        }
        drop(producers);
        self.after_leader_append(commit, info.last_offset.saturating_add(1))?;
        drop(role);
        Ok(Appended::New(info))
    }

    /// Appends a COMMIT (`commit`) or ABORT marker for `producer_id` as leader of
    /// `leader_epoch` (WriteTxnMarkers, and the transaction coordinator through
    /// [`crate::ReplicaManager::write_txn_markers`]). Kafka's checks run first, under the
    /// producer-state lock the append and the state update also hold: a marker with an older
    /// producer epoch (at `transaction_version` 2: one not newer, except the retry of a
    /// marker already written) is INVALID_PRODUCER_EPOCH, one with an older coordinator epoch
    /// than the producer's last marker TRANSACTION_COORDINATOR_FENCED. The producer's transaction
    /// ends at the marker's offset; an ABORT's entry goes to the log's `.txnindex`. Committed locally per
    /// `commit`; replication is the caller's wait (the high watermark passing the marker).
    #[allow(clippy::too_many_arguments)]
    pub fn write_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        transaction_version: i16,
        commit_marker: bool,
        leader_epoch: i32,
        commit: Commit,
        now_ms: i64,
    ) -> Result<AppendInfo, MarkerAppendError> {
        let role = self.leading(leader_epoch)?;
        // Markers are written with acks=all, as Kafka's coordinator writes them.
        if let Some(leader) = lock(&self.leader).as_ref() {
            leader
                .check_min_isr(self.min_isr())
                .map_err(|e| AppendError::NotEnoughReplicas {
                    isr_size: e.isr_size,
                    min_isr: e.min_isr,
                })?;
        }
        let mut producers = lock(&self.producers);
        producers.check_marker(
            producer_id,
            producer_epoch,
            coordinator_epoch,
            transaction_version,
        )?;
        let marker = strom_records::EndTransactionMarker {
            commit: commit_marker,
            coordinator_epoch,
        };
        let mut bytes = marker
            .to_batch(0, now_ms, producer_id, producer_epoch)
            .map_err(|source| LogError::InvalidBatch {
                batch_index: 0,
                source,
            })?;
        stamp_leader_epoch(&mut bytes, leader_epoch);
        let info = self
            .log
            .append(&mut bytes, AppendOrigin::Coordinator, now_ms)?;
        let aborted = producers.record_marker(
            producer_id,
            producer_epoch,
            coordinator_epoch,
            commit_marker,
            info.first_offset,
            now_ms,
        );
        // Under the producer lock, as the marker's append: no roll comes between them,
        // and no fetch sees the transaction complete (the LSO is read under this lock)
        // before its `.txnindex` entry is there.
        if let Some(aborted) = aborted {
            self.log.append_txn_index(aborted)?;
        }
        drop(producers);
        self.after_leader_append(commit, info.last_offset.saturating_add(1))?;
        drop(role);
        Ok(info)
    }

    /// Before a transactional batch of `producer_id` at `epoch` is verified: what its
    /// append will require ([`ProducerStates::start_verification`]); `Ongoing` means the
    /// coordinator need not be asked. `None`: too many verifications under way here.
    pub fn start_verification(
        &self,
        producer_id: i64,
        epoch: i16,
        now_ms: i64,
    ) -> Option<Verification> {
        lock(&self.producers).start_verification(producer_id, epoch, now_ms)
    }

    /// The last stable offset: the high watermark, held back to the first offset of the
    /// oldest transaction that is open or whose marker is not yet replicated.
    pub fn last_stable_offset(&self) -> i64 {
        let high_watermark = self.log.high_watermark();
        lock(&self.producers)
            .txns
            .last_stable_offset(high_watermark)
    }

    /// The aborted transactions a `read_committed` fetch of `[from, to)` must name, from
    /// the log's `.txnindex` files.
    pub fn aborted_between(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<strom_log::AbortedTxn>, LogError> {
        self.log.aborted_between(from, to)
    }

    /// Forgets producers idle for `expiration_ms` (`producer.id.expiration.ms`) that have
    /// no open transaction; how many. Under the producers lock, so no append races it.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        lock(&self.producers).expire(now_ms, expiration_ms)
    }

    /// Every producer remembered, with its open transaction (DescribeProducers).
    pub fn producer_views(&self) -> Vec<ProducerView> {
        lock(&self.producers).views()
    }

    /// Appends a producer's batch that stays where it lies (the request buffer): no copy of
    /// its bytes is made (`Log::append_shared`). The sequence check, the append and the
    /// producer-state update happen under one lock, so a retry racing its original is seen
    /// as a duplicate. Without `may_block` (from an async task) it never waits for the
    /// disk: `None` then means nothing was done because the append would have to fsync
    /// first (call again with `may_block` where blocking is allowed), and `true` beside the
    /// result means a flush is due ([`strom_log::Log::flush_after_append`]): in page-cache
    /// mode run it before answering; sync-on-commit's commit covers it. [`Commit::Sync`]
    /// needs `may_block`.
    pub fn append_shared(
        &self,
        batch: ProducerBatch<'_>,
        commit: Commit,
        now_ms: i64,
        may_block: bool,
    ) -> Result<Option<(Appended, bool)>, AppendError> {
        if commit == Commit::Sync && !may_block {
            return Ok(None);
        }
        let role = self.leading(batch.leader_epoch)?;
        if batch.acks_all {
            if let Some(leader) = lock(&self.leader).as_ref() {
                leader.check_min_isr(self.min_isr()).map_err(|e| {
                    AppendError::NotEnoughReplicas {
                        isr_size: e.isr_size,
                        min_isr: e.min_isr,
                    }
                })?;
            }
        }
        let bytes = batch.bytes;
        let headers = first_headers(bytes);
        if headers.len() > 1 {
            return Err(AppendError::MultipleBatches);
        }
        // Every record, before the producer-state lock: a long walk holds nothing.
        if self.log.check_client_records(bytes, now_ms, may_block)? == RecordsCheck::WouldBlock {
            return Ok(None);
        }
        let mut producers = lock(&self.producers);
        if let Some(header) = headers.first() {
            match producers.check(header) {
                // Under the lock every marker also takes: a verification that held when the
                // coordinator answered but not now (a marker ended the transaction
                // meanwhile) lets nothing in.
                SequenceCheck::Append if !producers.verified(header, batch.verification) => {
                    return Err(AppendError::NotVerified {
                        producer_id: header.producer_id,
                        epoch: header.producer_epoch,
                    })
                }
                SequenceCheck::Append => {}
                // A refusal is only for a sound batch: a damaged one goes on to the log,
                // which refuses it with the error Kafka gives (its CRC was not checked yet).
                _ if !first_batch_sound(bytes) => {}
                SequenceCheck::Duplicate(meta) => {
                    drop(producers);
                    if commit == Commit::Sync {
                        self.log.sync_to(meta.last_offset.saturating_add(1))?;
                        self.on_durable(self.log.durable_offset());
                    }
                    return Ok(Some((Appended::Duplicate(meta), false)));
                }
                SequenceCheck::OutOfOrder => {
                    return Err(AppendError::OutOfOrderSequence {
                        producer_id: header.producer_id,
                        first_sequence: header.base_sequence,
                    })
                }
                SequenceCheck::StaleEpoch => {
                    return Err(AppendError::StaleEpoch {
                        producer_id: header.producer_id,
                        epoch: header.producer_epoch,
                    })
                }
            }
        }
        let appended = self
            .log
            .append_shared(bytes, batch.leader_epoch, now_ms, may_block)?;
        let (info, flush_due) = match appended {
            Unflushed::WouldBlock => return Ok(None),
            Unflushed::Appended { info, flush_due } => (info, flush_due),
        };
        if let Some(header) = headers.first() {
            producers.record(header, info.first_offset, info.last_offset);
        }
        drop(producers);
        self.after_leader_append(commit, info.last_offset.saturating_add(1))?;
        drop(role);
        Ok(Some((Appended::New(info), flush_due)))
    }

    /// The role guard of a leader of `epoch`, or NotLeader.
    fn leading(&self, epoch: i32) -> Result<RwLockReadGuard<'_, Role>, AppendError> {
        let role = self.role_read();
        if *role != (Role::Leader { epoch }) {
            return Err(AppendError::NotLeader { epoch });
        }
        Ok(role)
    }

    /// The leader's log grew to `end_offset`: followers' long polls wake, and in page-cache
    /// mode the leader's own part of the high watermark moves now (under sync-on-commit
    /// only once the fsync covers it).
    fn after_leader_append(&self, commit: Commit, end_offset: i64) -> Result<(), LogError> {
        Signals::tick(&self.signals.appended);
        match commit {
            Commit::Sync => {
                self.log.sync_to(end_offset)?;
                self.on_durable(self.log.durable_offset());
            }
            Commit::Now | Commit::Later => self.on_local_end(),
        }
        Ok(())
    }

    fn on_local_end(&self) {
        let mut leader = lock(&self.leader);
        if let Some(l) = leader.as_mut() {
            let moved = l.on_local_end(
                self.log.log_end_offset(),
                self.log.durable_offset(),
                crate::metadata::now_ms(),
            );
            if moved {
                self.publish(l);
            }
        }
    }

    /// An fsync made everything below `offset` durable (sync-on-commit: the leader's part of
    /// the high watermark).
    pub(crate) fn on_durable(&self, offset: i64) {
        let mut leader = lock(&self.leader);
        if let Some(l) = leader.as_mut() {
            let end = self.log.log_end_offset();
            if l.on_local_end(end, offset.min(end), crate::metadata::now_ms()) {
                self.publish(l);
            }
        }
    }

    /// The leader's high watermark moved: into the log (reads stop there), to `acks=all`
    /// waiters and to consumers' long polls. Called under the `leader` mutex.
    fn publish(&self, leader: &Leader) {
        let high_watermark = leader.high_watermark();
        self.log.set_high_watermark(high_watermark);
        self.progress.send_replace(Progress {
            high_watermark,
            leader_epoch: leader.leader_epoch(),
        });
        Signals::tick(&self.signals.high_watermark_moved);
    }

    // ---- Leader: followers and the ISR ------------------------------------------------

    /// A follower fetched at `fetch.fetch_offset` (its last fetched epoch agrees with this
    /// log): its progress moves, maybe the high watermark, maybe an ISR change is proposed.
    pub fn on_follower_fetch(
        &self,
        fetch: FollowerFetch,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<(), FetchRefusal> {
        let mut leader = lock(&self.leader);
        let Some(l) = leader.as_mut().filter(|l| l.leader_epoch() == leader_epoch) else {
            return Err(FetchRefusal::NotReplica);
        };
        if l.on_follower_fetch(fetch, now_ms)? {
            self.publish(l);
        }
        if l.has_pending_change() {
            let _ = self.signals.alter.try_send(self.tp);
        }
        Ok(())
    }

    /// The ISR expiration check (every `replica.lag.time.max.ms / 2`).
    pub(crate) fn tick(&self, now_ms: i64) {
        let mut leader = lock(&self.leader);
        if let Some(l) = leader.as_mut() {
            l.tick(now_ms);
            if l.has_pending_change() {
                let _ = self.signals.alter.try_send(self.tp);
            }
        }
    }

    /// Whether an ISR change waits to be (re)sent.
    pub(crate) fn has_unsent_proposal(&self) -> bool {
        lock(&self.leader)
            .as_ref()
            .is_some_and(|l| l.has_unsent_proposal())
    }

    /// The ISR change to send now, with the leader epoch it is made in.
    pub(crate) fn take_proposal(&self) -> Option<AlterIsr> {
        lock(&self.leader).as_mut().and_then(|l| l.take_proposal())
    }

    /// The controller's answer to `sent`.
    pub(crate) fn on_alter_reply(&self, sent: &AlterIsr, reply: AlterReply, now_ms: i64) {
        let mut leader = lock(&self.leader);
        if let Some(l) = leader.as_mut() {
            let failed = matches!(reply, AlterReply::Refused(_));
            let before = l.isr().len();
            if l.on_alter_reply(sent, reply, now_ms) {
                self.publish(l);
            }
            // `/metrics`: IsrShrinksPerSec, IsrExpandsPerSec, FailedIsrUpdatesPerSec.
            let after = l.isr().len();
            let metrics = &crate::metrics::REPLICATION;
            if after < before {
                metrics.isr_shrinks.inc();
            } else if after > before {
                metrics.isr_expands.inc();
            }
            if failed {
                metrics.failed_isr_updates.inc();
            }
        }
    }

    // ---- Role changes (blocking) ------------------------------------------------------

    /// Becomes (or stays) leader of `view.leader_epoch`. A new epoch begins at the log end
    /// offset, durably, before anything is written in it; the high watermark starts at
    /// what this broker knew (its checkpoint, or what it learned as follower) and moves once
    /// the ISR's followers fetch. Same epoch: only the ISR and eligible brokers refresh.
    pub(crate) fn become_leader(
        &self,
        local_id: i32,
        view: &PartitionView,
        eligible: EligibleBrokers,
        config: LeaderConfig,
        now_ms: i64,
    ) -> Result<bool, LogError> {
        {
            let role = self.role_read();
            if *role
                == (Role::Leader {
                    epoch: view.leader_epoch,
                })
            {
                let mut leader = lock(&self.leader);
                if let Some(l) = leader.as_mut() {
                    if l.on_image(view, eligible, now_ms) {
                        self.publish(l);
                    }
                }
                return Ok(false);
            }
        }
        let mut role = self.role.write().unwrap_or_else(|e| e.into_inner());
        self.log.assign_leader_epoch(view.leader_epoch)?;
        let leader = Leader::new(
            local_id,
            view,
            eligible,
            config,
            self.log.log_end_offset(),
            self.log.durable_offset(),
            self.log.high_watermark(),
            now_ms,
        );
        let mut slot = lock(&self.leader);
        *slot = Some(leader);
        if let Some(l) = slot.as_ref() {
            self.publish(l);
        }
        drop(slot);
        *role = Role::Leader {
            epoch: view.leader_epoch,
        };
        tracing::info!(topic = %self.topic, partition = self.tp.partition,
            leader_epoch = view.leader_epoch, log_end_offset = self.log.log_end_offset(),
            high_watermark = self.log.high_watermark(), "became leader");
        Ok(true)
    }

    /// Becomes follower of `leader` in `epoch` (or offline, `leader` -1 meaning no
    /// leader): produce and consumer fetches are refused from now on, and waiting
    /// `acks=all` produces learn that this broker no longer leads.
    pub(crate) fn become_follower(&self, leader: i32, epoch: i32) -> bool {
        let next = Role::Follower { leader, epoch };
        let mut role = self.role.write().unwrap_or_else(|e| e.into_inner());
        if *role == next {
            return false;
        }
        *role = next;
        *lock(&self.leader) = None;
        self.progress.send_replace(Progress {
            high_watermark: self.log.high_watermark(),
            leader_epoch: -1,
        });
        tracing::info!(topic = %self.topic, partition = self.tp.partition, leader,
            leader_epoch = epoch, log_end_offset = self.log.log_end_offset(), "became follower");
        true
    }

    /// Serves nothing (the broker waits for its registration, or stops).
    pub(crate) fn go_offline(&self) {
        let mut role = self.role.write().unwrap_or_else(|e| e.into_inner());
        *role = Role::Offline;
        *lock(&self.leader) = None;
        self.progress.send_replace(Progress {
            high_watermark: self.log.high_watermark(),
            leader_epoch: -1,
        });
    }

    // ---- Follower (the fetcher's calls; blocking) -------------------------------------

    /// The role guard of a follower in `epoch`, or NotLeader.
    fn following(&self, epoch: i32) -> Result<RwLockReadGuard<'_, Role>, AppendError> {
        let role = self.role_read();
        match *role {
            Role::Follower { epoch: e, .. } if e == epoch => Ok(role),
            _ => Err(AppendError::NotLeader { epoch }),
        }
    }

    /// Appends what the leader of `epoch` sent, verbatim; under sync-on-commit fsynced
    /// before it returns, so the next fetch reports only durable offsets.
    pub(crate) fn append_replicated(
        &self,
        bytes: &[u8],
        epoch: i32,
        now_ms: i64,
    ) -> Result<(), AppendError> {
        let _role = self.following(epoch)?;
        {
            // The same producer and transaction state as the leader's, from the same
            // batches: a follower that becomes leader has the right LSO and `.txnindex` entries.
            // Updated under the lock with the append (see `append`).
            let mut producers = lock(&self.producers);
            self.log.append_replicated(bytes, now_ms)?;
            for (header, range) in strom_records::batch_frames(bytes).map_while(Result::ok) {
                if let Some(aborted) = replay(&mut producers, &header, bytes.get(range)) {
                    self.log.append_txn_index(aborted)?;
                }
            }
        }
        if self.sync_on_commit {
            self.log.flush()?;
        }
        Ok(())
    }

    /// Cuts the log where it diverged from the leader of `epoch`; producer state is rebuilt
    /// from what stays.
    pub(crate) fn truncate_replica(
        &self,
        offset: i64,
        epoch: i32,
        now_ms: i64,
    ) -> Result<(), AppendError> {
        let _role = self.following(epoch)?;
        // Snapshots past the cut describe a log that will not be there: removed (durably)
        // before the cut, so a crash in between cannot bring one back over new data.
        self.log.remove_producer_snapshots_above(offset)?;
        self.log.truncate_to(offset, now_ms)?;
        *lock(&self.producers) = rebuild_producers(&self.log)?;
        Ok(())
    }

    /// Starts the log over at the leader's log start (this replica fell behind it).
    pub(crate) fn restart_replica_at(
        &self,
        offset: i64,
        epoch: i32,
        now_ms: i64,
    ) -> Result<(), AppendError> {
        let _role = self.following(epoch)?;
        self.log.remove_producer_snapshots_above(-1)?;
        self.log.truncate_fully_and_start_at(offset, now_ms)?;
        *lock(&self.producers) = ProducerStates::default();
        Ok(())
    }

    /// The high watermark a follower learned (never above its log, never back).
    pub(crate) fn set_follower_high_watermark(&self, epoch: i32, high_watermark: i64) {
        if let Ok(_role) = self.following(epoch) {
            let capped = high_watermark.min(self.log.log_end_offset());
            if capped > self.log.high_watermark() {
                self.log.set_high_watermark(capped);
                self.progress.send_replace(Progress {
                    high_watermark: capped,
                    leader_epoch: -1,
                });
            }
        }
    }

    /// The leader's log start moved (retention, DeleteRecords): so does this replica's, as
    /// far as its own high watermark.
    pub(crate) fn follow_log_start(&self, epoch: i32, leader_log_start: i64, now_ms: i64) {
        if let Ok(_role) = self.following(epoch) {
            let target = leader_log_start.min(self.log.high_watermark());
            if target > self.log.log_start_offset() {
                if let Err(error) = self.log.delete_records_before(target, now_ms) {
                    tracing::warn!(topic = %self.topic, partition = self.tp.partition, %error,
                        "cannot follow the leader's log start");
                }
            }
        }
    }

    /// Whether the partition waits in the syncer's queue (read under the queue's mutex).
    pub(crate) fn sync_queued(&self) -> bool {
        self.sync_queued.load(Ordering::Relaxed)
    }

    /// Marks the partition queued or not (written under the syncer queue's mutex, which
    /// orders it with the appends and fsyncs around it).
    pub(crate) fn set_sync_queued(&self, queued: bool) {
        self.sync_queued.store(queued, Ordering::Relaxed);
    }

    /// Writes a producer-state snapshot at the log end offset (Kafka's `.snapshot`), so
    /// that the next open replays only what follows it. The state is encoded under the
    /// producer lock, which every append holds across its log append, so it covers exactly
    /// the log below the offset read there; the file is written after the lock is released.
    pub fn write_producer_snapshot(&self) -> Result<(), LogError> {
        let (end_offset, body) = {
            let producers = lock(&self.producers);
            (self.log.log_end_offset(), producers.encode_snapshot())
        };
        let framed = strom_log::frame_snapshot(end_offset, &body);
        self.log.write_producer_snapshot(end_offset, &framed)
    }

    /// The same snapshot written into another log holding the same batches (a replica
    /// move's future copy, caught up and not growing: `finish_move` holds the partition out
    /// of service), so the moved replica reopens from it without a replay. Its end offset
    /// must be `future`'s log end offset (an error otherwise: the state would not match).
    pub(crate) fn write_producer_snapshot_into(&self, future: &Log) -> Result<(), LogError> {
        let (end_offset, body) = {
            let producers = lock(&self.producers);
            (self.log.log_end_offset(), producers.encode_snapshot())
        };
        if end_offset != future.log_end_offset() {
            return Err(LogError::Io {
                operation: "producer snapshot for a replica move",
                path: future.dir().to_path_buf(),
                source: std::io::Error::other(format!(
                    "the copy ends at {}, the producer state at {end_offset}",
                    future.log_end_offset()
                )),
            });
        }
        let framed = strom_log::frame_snapshot(end_offset, &body);
        future.write_producer_snapshot(end_offset, &framed)
    }

    /// A snapshot after every segment roll (the maintenance tick notices the new active
    /// segment): a restart after a crash replays at most the active segment.
    pub(crate) fn snapshot_if_rolled(&self) -> Result<(), LogError> {
        let active = self.log.segment_base_offsets().last().copied().unwrap_or(0);
        if self.snapshot_segment.swap(active, Ordering::Relaxed) != active {
            self.write_producer_snapshot()?;
        }
        Ok(())
    }

    /// Producers whose state is remembered.
    pub fn producer_count(&self) -> usize {
        lock(&self.producers).len()
    }
}

/// The headers of the first two batches, read without the CRC.
fn first_headers(bytes: &[u8]) -> Vec<BatchHeader> {
    strom_records::batch_frames(bytes)
        .map_while(Result::ok)
        .take(2)
        .map(|(header, _)| header)
        .collect()
}

/// Whether the first batch passes the structural and CRC checks.
fn first_batch_sound(bytes: &[u8]) -> bool {
    matches!(strom_records::batches(bytes).next(), Some(Ok(_)))
}

/// Largest snapshot file read (a partition's producers are bounded by `PRODUCERS_MAX`).
const SNAPSHOT_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// The newest snapshot that can be trusted and ends at or below `end_max` (any without),
/// with its end offset. Snapshots above the log end offset are removed first (see
/// `Log::remove_producer_snapshots_above`); a damaged or unreadable one is reported (error
/// log) and the next older one tried, else `None` (the caller replays the whole log). A
/// snapshot is never trusted without its CRC.
fn load_snapshot(
    log: &Log,
    end_max: Option<i64>,
) -> Result<Option<(ProducerStates, i64)>, LogError> {
    log.remove_producer_snapshots_above(log.log_end_offset())?;
    for end_offset in log.producer_snapshots()?.into_iter().rev() {
        if end_max.is_some_and(|max| end_offset > max) {
            continue;
        }
        let decoded = log
            .read_producer_snapshot(end_offset, SNAPSHOT_BYTES_MAX)?
            .and_then(|bytes| {
                strom_log::unframe_snapshot(end_offset, &bytes)
                    .and_then(ProducerStates::decode_snapshot)
            });
        match decoded {
            Ok(states) => return Ok(Some((states, end_offset))),
            Err(reason) => tracing::error!(dir = %log.dir().display(), end_offset, %reason,
                "producer snapshot damaged: not used; producer state is rebuilt from the log \
                 (the file stays for inspection until newer snapshots replace it)"),
        }
    }
    Ok(None)
}

/// Largest control batch decoded for its marker (a marker batch is one record of a few
/// bytes; anything bigger is not a marker Kafka writes).
const CONTROL_BATCH_BYTES_MAX: u64 = 64 * 1024;

/// One batch into the producer state: data batches record sequences (and open
/// transactions); a control batch's COMMIT/ABORT marker (decoded from `bytes`, the whole
/// batch) ends its producer's transaction. A control batch whose marker cannot be read is
/// reported and ends nothing (its records stay hidden from read_committed readers until
/// a later marker for the producer).
fn replay(
    states: &mut ProducerStates,
    header: &BatchHeader,
    bytes: Option<&[u8]>,
) -> Option<strom_log::AbortedTxn> {
    if !header.is_control() {
        states.record(header, header.base_offset, header.last_offset());
        return None;
    }
    match bytes.map(marker_of) {
        Some(Some(marker)) => states.record_marker(
            header.producer_id,
            header.producer_epoch,
            marker.coordinator_epoch,
            marker.commit,
            header.base_offset,
            header.max_timestamp,
        ),
        // KRaft control records (leader change...) are not transaction markers.
        Some(None) => None,
        None => {
            tracing::warn!(
                offset = header.base_offset,
                "control batch unreadable: its transaction marker is not applied"
            );
            None
        }
    }
}

/// The COMMIT/ABORT marker of a whole control batch, if it holds one.
fn marker_of(batch: &[u8]) -> Option<strom_records::EndTransactionMarker> {
    let limits = strom_records::DecodeLimits {
        decompressed_bytes_max: CONTROL_BATCH_BYTES_MAX as usize,
    };
    let records = strom_records::records(batch, &limits).ok()?;
    records
        .first()
        .and_then(|r| strom_records::EndTransactionMarker::from_record(r).ok())
}

/// The producer state of the log: the newest trustworthy snapshot, then the batches after
/// it replayed (headers only, one small read per batch; control batches, tiny, are read
/// whole for their marker). Without a snapshot the whole log is replayed, not its tail:
/// every open transaction must be known.
///
/// The same replay rebuilds the `.txnindex` files the log could not vouch for at open
/// (`Log::txn_index_rebuild_from`: segments recovery scanned after a crash, segments from
/// before Strom kept the files, damaged files): it then starts from a snapshot at or below
/// the first of them (else the log start), so that the state it replays them with is
/// exact, and hands the log the aborted transactions of those segments.
fn rebuild_producers(log: &Log) -> Result<ProducerStates, LogError> {
    let rebuild_from = log.txn_index_rebuild_from();
    let (mut states, from) = match load_snapshot(log, rebuild_from)? {
        Some((states, end_offset)) => (states, end_offset),
        None => (ProducerStates::default(), log.log_start_offset()),
    };
    let mut failed = None;
    let mut aborted = Vec::new();
    log.for_each_batch_header(from, |header| {
        if !header.is_control() {
            replay(&mut states, header, None);
            return;
        }
        let size = header.size_bytes() as u64;
        let bytes = if size <= CONTROL_BATCH_BYTES_MAX {
            match log
                .read(
                    header.base_offset,
                    size,
                    header.last_offset().saturating_add(1),
                )
                .and_then(|info| match info.range {
                    Some(range) => range.read_bytes().map_err(|source| LogError::Io {
                        operation: "read",
                        path: range.path.clone(),
                        source,
                    }),
                    None => Ok(Vec::new()),
                }) {
                Ok(bytes) => Some(bytes),
                Err(error) => {
                    failed.get_or_insert(error);
                    None
                }
            }
        } else {
            None
        };
        let ended = replay(&mut states, header, bytes.as_deref());
        if let Some(txn) = ended.filter(|t| rebuild_from.is_some_and(|r| t.last_offset >= r)) {
            aborted.push(txn);
        }
    })?;
    if let Some(error) = failed {
        return Err(error);
    }
    if let Some(from) = rebuild_from {
        log.rebuild_txn_index(from, &aborted)?;
    }
    Ok(states)
}

/// Writes the leader epoch into each batch header (outside the CRC, as Kafka's leader does).
/// Batches that do not parse are left alone: the log's validation refuses them.
fn stamp_leader_epoch(bytes: &mut [u8], leader_epoch: i32) {
    let frames: Vec<_> = strom_records::batch_frames(bytes)
        .map_while(Result::ok)
        .map(|(_, range)| range)
        .collect();
    for range in frames {
        if let Some(batch) = bytes.get_mut(range) {
            // An error means a batch too short to hold the field; validation refuses it.
            let _ = strom_records::set_partition_leader_epoch(batch, leader_epoch);
        }
    }
}
