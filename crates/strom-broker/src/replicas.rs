//! The replica manager: the partition logs this broker hosts, opened, created and deleted to
//! follow the metadata image, plus the high watermark and the append notification that wakes
//! long-polling fetches.
//!
//! A partition lives in `<log.dirs>/<topic>-<partition>` as in Kafka, with a
//! `partition.metadata` file naming its topic id, so that a directory left by a deleted topic
//! is never mistaken for a new topic of the same name (`partition_dirs.rs`: claiming,
//! strays, and the one deletion, of partitions the committed metadata removed).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use strom_log::{
    AppendInfo, AppendOrigin, CompactionLimits, HandleCache, Log, LogError, RecordsCheck, Unflushed,
};
use strom_meta::{MetadataImage, TopicIdPartition};
use tokio::sync::watch;

use strom_records::BatchHeader;

use crate::config::BrokerConfig;
use crate::metadata::MetadataPort;
use crate::partition_dirs;
use crate::producers::{BatchMeta, ProducerStates, SequenceCheck, REBUILD_SEGMENTS};
use crate::scrubber::{ScrubCounts, ScrubStats};
use crate::syncer::{CommitError, Durable, Syncer};

/// One hosted partition.
#[derive(Debug)]
pub struct Partition {
    /// Topic id and partition index.
    pub tp: TopicIdPartition,
    /// The topic's name.
    pub topic: String,
    /// The partition's log.
    pub log: Log,
    /// Serialises high-watermark updates so it only moves forward.
    hw_lock: Mutex<()>,
    /// Idempotent producers' sequence state; held across check, append and update.
    producers: Mutex<ProducerStates>,
    /// The durable offset the syncer last published, for async commit waiters.
    pub(crate) durable: watch::Sender<Durable>,
    /// Whether the partition waits in the syncer's queue; only touched under its mutex.
    sync_queued: AtomicBool,
}

/// When an append is committed (made visible to consumers and acknowledged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// At once: the page-cache mode, where a single replica is the whole ISR.
    Now,
    /// After an fsync that covers it, before `append_with` returns.
    Sync,
    /// Not yet: the caller calls [`Partition::commit`] itself (sync-on-commit with the
    /// fsync wait taken off the request path, so that a connection's next produce request
    /// can be appended while this one's fsync runs, and share the next one).
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

/// Why a producer's append was refused.
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
}

impl Partition {
    /// Appends a producer's batch, stamping this leader's epoch into it, and advances the
    /// high watermark. The sequence check, the append and the producer-state update happen
    /// under one lock, so a retry racing its original is seen as a duplicate. With
    /// `sync_on_commit` the data is fsynced (group commit) before the high watermark moves:
    /// every acknowledgement and every consumer then only covers durable data. Otherwise
    /// (Kafka's default) the high watermark is the log end offset at once: a single replica
    /// is the whole ISR.
    pub fn append(
        &self,
        batches: &mut [u8],
        leader_epoch: i32,
        sync_on_commit: bool,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        let commit = if sync_on_commit {
            Commit::Sync
        } else {
            Commit::Now
        };
        self.append_with(batches, leader_epoch, commit, now_ms)
    }

    /// [`Partition::append`] with the choice of when the append is committed; with
    /// [`Commit::Later`] the caller must call [`Partition::commit`] (or
    /// [`ReplicaManager::commit`]) with the returned end offset before it answers the
    /// producer.
    pub fn append_with(
        &self,
        batches: &mut [u8],
        leader_epoch: i32,
        commit: Commit,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        let owned = Batches::Owned {
            bytes: batches,
            leader_epoch,
        };
        match self.append_inner(owned, commit, now_ms, true)? {
            Some((appended, _)) => Ok(appended),
            // Not taken: only a non-blocking append declines.
            None => Err(AppendError::Log(LogError::EmptyAppend)),
        }
    }

    /// Appends a producer's batch that stays where it lies (the request buffer): no copy of
    /// its bytes is made (`Log::append_shared`). Without `may_block` (from an async task) it
    /// never waits for the disk: `None` then means nothing was done because the append
    /// would have to fsync first (call again with `may_block` where blocking is allowed),
    /// and `true` beside the result means a flush is due
    /// ([`strom_log::Log::flush_after_append`]): in page-cache mode run it before
    /// answering; sync-on-commit's commit covers it. [`Commit::Sync`] needs `may_block`.
    pub fn append_shared(
        &self,
        batch: &[u8],
        leader_epoch: i32,
        commit: Commit,
        now_ms: i64,
        may_block: bool,
    ) -> Result<Option<(Appended, bool)>, AppendError> {
        if commit == Commit::Sync && !may_block {
            return Ok(None);
        }
        let batches = Batches::Shared {
            batch,
            leader_epoch,
        };
        self.append_inner(batches, commit, now_ms, may_block)
    }

    fn append_inner(
        &self,
        mut batches: Batches<'_>,
        commit: Commit,
        now_ms: i64,
        may_block: bool,
    ) -> Result<Option<(Appended, bool)>, AppendError> {
        let headers = match &mut batches {
            Batches::Owned {
                bytes,
                leader_epoch,
            } => stamp_leader_epoch(bytes, *leader_epoch),
            Batches::Shared { batch, .. } => first_headers(batch),
        };
        if headers.len() > 1 {
            return Err(AppendError::MultipleBatches);
        }
        let bytes = batches.bytes();
        // Every record, before the producer-state lock: a long walk holds nothing.
        if self.log.check_client_records(bytes, now_ms, may_block)? == RecordsCheck::WouldBlock {
            return Ok(None);
        }
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(header) = headers.first() {
            match producers.check(header) {
                SequenceCheck::Append => {}
                // A refusal is only for a sound batch: a damaged one goes on to the log,
                // which refuses it with the error Kafka gives (its CRC was not checked yet).
                _ if !first_batch_sound(bytes) => {}
                SequenceCheck::Duplicate(meta) => {
                    drop(producers);
                    if commit == Commit::Sync {
                        self.log.sync_to(meta.last_offset.saturating_add(1))?;
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
        let appended = match batches {
            // Only `append_with`, which may block, hands over owned bytes.
            Batches::Owned { bytes, .. } => {
                let info = self.log.append(bytes, AppendOrigin::Client, now_ms)?;
                Unflushed::Appended {
                    info,
                    flush_due: false,
                }
            }
            Batches::Shared {
                batch,
                leader_epoch,
            } => self
                .log
                .append_shared(batch, leader_epoch, now_ms, may_block)?,
        };
        let (info, flush_due) = match appended {
            Unflushed::WouldBlock => return Ok(None),
            Unflushed::Appended { info, flush_due } => (info, flush_due),
        };
        if let Some(header) = headers.first() {
            producers.record(header, info.first_offset, info.last_offset);
        }
        drop(producers);
        let end_offset = info.last_offset.saturating_add(1);
        match commit {
            Commit::Now => {
                self.advance_high_watermark(end_offset);
            }
            Commit::Sync => self.commit(end_offset)?,
            Commit::Later => {}
        }
        Ok(Some((Appended::New(info), flush_due)))
    }

    /// Sync-on-commit's second half: returns once every offset below `end_offset` is
    /// durable (sharing fsyncs with concurrent callers), then moves the high watermark
    /// there, so that consumers and acknowledgements only ever cover durable data.
    pub fn commit(&self, end_offset: i64) -> Result<(), LogError> {
        self.log.sync_to(end_offset)?;
        self.advance_high_watermark(end_offset);
        Ok(())
    }

    /// Moves the high watermark forward to `offset`; whether it moved.
    pub(crate) fn advance_high_watermark(&self, offset: i64) -> bool {
        let _guard = self.hw_lock.lock().unwrap_or_else(|e| e.into_inner());
        let moved = offset > self.log.high_watermark();
        if moved {
            self.log.set_high_watermark(offset);
        }
        moved
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

    /// Producers whose state is remembered.
    pub fn producer_count(&self) -> usize {
        self.producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// What a producer's append hands the partition.
enum Batches<'a> {
    /// Bytes the partition and the log may rewrite in place.
    Owned {
        bytes: &'a mut [u8],
        leader_epoch: i32,
    },
    /// One batch that stays untouched; the log stamps its own copy of the header.
    Shared { batch: &'a [u8], leader_epoch: i32 },
}

impl Batches<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Batches::Owned { bytes, .. } => bytes,
            Batches::Shared { batch, .. } => batch,
        }
    }
}

/// The headers of the first two batches, read without the CRC (see `stamp_leader_epoch`).
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

/// Replays the batch headers of the log's last segments into a fresh producer state.
/// Only headers are read (one small read per batch), never the records: on a clean start
/// with large segments this is the difference between reading a few kilobytes and reading
/// the last segments whole.
fn rebuild_producers(log: &Log) -> Result<ProducerStates, LogError> {
    let mut states = ProducerStates::default();
    let bases = log.segment_base_offsets();
    let skip = bases.len().saturating_sub(REBUILD_SEGMENTS);
    let offset = bases
        .get(skip)
        .copied()
        .unwrap_or(0)
        .max(log.log_start_offset());
    log.for_each_batch_header(offset, |header| {
        states.record(header, header.base_offset, header.last_offset());
    })?;
    Ok(states)
}

/// Writes the leader epoch into each batch header (outside the CRC, as Kafka's leader does)
/// and returns the headers of the first two batches (a request may hold only one). One walk
/// over the request's framing, no CRC: the log validates every batch, CRC included, next.
/// Batches that do not parse are left alone: the log's validation refuses them.
fn stamp_leader_epoch(bytes: &mut [u8], leader_epoch: i32) -> Vec<BatchHeader> {
    let frames: Vec<_> = strom_records::batch_frames(bytes)
        .map_while(Result::ok)
        .collect();
    for (_, range) in &frames {
        if let Some(batch) = bytes.get_mut(range.clone()) {
            // An error means a batch too short to hold the field; validation refuses it.
            let _ = strom_records::set_partition_leader_epoch(batch, leader_epoch);
        }
    }
    frames
        .into_iter()
        .take(2)
        .map(|(header, _)| header)
        .collect()
}

/// The hosted partitions and the machinery to follow the metadata image.
/// What the broker knows of damaged and offline partition logs (`ReplicaManager::damage_counts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DamageCounts {
    /// Damage reports since start-up: partition logs found damaged at open, and damaged
    /// batches the scrubber reported (each pass reports what it finds again).
    pub reports: u64,
    /// Hosted partitions offline now because their log is damaged (until a restart).
    pub partitions_offline_damaged: u64,
    /// Hosted partitions offline now for another reason (a full disk when the log was
    /// created, say), retried every few seconds.
    pub partitions_offline_other: u64,
}

#[derive(Debug)]
pub struct ReplicaManager {
    config: Arc<BrokerConfig>,
    handles: Arc<HandleCache>,
    partitions: RwLock<HashMap<TopicIdPartition, Arc<Partition>>>,
    /// Hosted partitions whose log did not open: offline, answered with
    /// KAFKA_STORAGE_ERROR as Kafka answers for a partition it cannot serve from disk.
    /// `true` for damage (`LogError::Damaged`): reopening finds it again, so the partition
    /// stays offline until a restart after an operator acted; other failures (a full disk
    /// when the log was created, say) are retried by the maintenance task every few seconds.
    offline: RwLock<HashMap<TopicIdPartition, bool>>,
    /// One reconcile at a time (the watcher task and admin handlers both call it).
    reconciling: Mutex<()>,
    appends: watch::Sender<u64>,
    /// The fsync threads of sync-on-commit (none in page-cache mode, or if they could not
    /// start: commits then block a pool thread each).
    syncer: Option<Syncer>,
    /// What the scrubber (`scrubber.rs`) has done.
    scrub: Arc<ScrubStats>,
    /// Damage reports since start-up: a partition log found damaged at open (once per
    /// partition) and each damaged batch the scrubber reports (on every pass).
    damage_reports: AtomicU64,
}

impl ReplicaManager {
    /// A manager with no partitions open yet.
    pub fn new(config: Arc<BrokerConfig>) -> ReplicaManager {
        // Every fsync is timed for `/metrics` (`metrics/fs.rs`); all else passes through.
        let handles = Arc::new(HandleCache::new(
            crate::metrics::fs::TimedFs::real(),
            config.open_files_max,
        ));
        let (appends, _) = watch::channel(0);
        let syncer = if config.sync_on_commit() {
            Syncer::start(appends.clone())
                .map_err(
                    |error| tracing::warn!(%error, "cannot start the fsync threads; commits block"),
                )
                .ok()
        } else {
            None
        };
        ReplicaManager {
            config,
            handles,
            partitions: RwLock::new(HashMap::new()),
            offline: RwLock::new(HashMap::new()),
            reconciling: Mutex::new(()),
            appends,
            syncer,
            scrub: Arc::new(ScrubStats::default()),
            damage_reports: AtomicU64::new(0),
        }
    }

    /// Whether some hosted partition's log could not be opened for a reason other than
    /// damage (see `offline`): the maintenance task then reconciles again.
    pub fn has_offline(&self) -> bool {
        self.offline
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .any(|damaged| !damaged)
    }

    /// Damage reports and offline partitions now (kept in memory and named in the log
    /// lines that report damage; a metrics endpoint will export them).
    pub fn damage_counts(&self) -> DamageCounts {
        let offline = self.offline.read().unwrap_or_else(|e| e.into_inner());
        let damaged = offline.values().filter(|damaged| **damaged).count() as u64;
        DamageCounts {
            reports: self.damage_reports.load(Ordering::Relaxed),
            partitions_offline_damaged: damaged,
            partitions_offline_other: offline.len() as u64 - damaged,
        }
    }

    /// Counts one damage report (see `damage_reports`); returns the total so far.
    pub(crate) fn note_damage(&self) -> u64 {
        self.damage_reports.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The scrubber's counters (kept in memory; a metrics endpoint will export them).
    pub fn scrub_counts(&self) -> ScrubCounts {
        self.scrub.counts()
    }

    pub(crate) fn scrub_stats(&self) -> Arc<ScrubStats> {
        Arc::clone(&self.scrub)
    }

    /// The hosted partition, if open.
    pub fn get(&self, tp: TopicIdPartition) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&tp)
            .cloned()
    }

    /// Whether `tp` is hosted here but offline: its log failed to open (damage found at
    /// start-up, or an I/O or directory error), so requests for it get KAFKA_STORAGE_ERROR.
    pub fn is_offline(&self, tp: TopicIdPartition) -> bool {
        self.offline
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&tp)
    }

    /// Every hosted partition.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// A receiver that changes after every append that moved a high watermark.
    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appends.subscribe()
    }

    /// Sync-on-commit's wait, from an async task: returns once every offset of `partition`
    /// below `end_offset` is durable and under the high watermark (see `syncer.rs`).
    pub async fn commit(
        &self,
        partition: &Arc<Partition>,
        end_offset: i64,
    ) -> Result<(), CommitError> {
        match &self.syncer {
            Some(syncer) => syncer.commit(partition, end_offset).await,
            None => {
                let committing = Arc::clone(partition);
                let result =
                    tokio::task::spawn_blocking(move || committing.commit(end_offset)).await;
                match result {
                    Ok(Ok(())) => {
                        self.notify_appended();
                        Ok(())
                    }
                    Ok(Err(error)) => Err(CommitError::Log(Arc::new(error))),
                    Err(_) => Err(CommitError::ShuttingDown),
                }
            }
        }
    }

    /// Wakes long-polling fetches (call after a high watermark moved).
    pub fn notify_appended(&self) {
        self.appends
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// [`ReplicaManager::reconcile`] on the blocking pool.
    pub async fn reconcile_latest(self: &Arc<Self>, metadata: &Arc<dyn MetadataPort>) {
        let replicas = Arc::clone(self);
        let metadata = Arc::clone(metadata);
        let _ = tokio::task::spawn_blocking(move || replicas.reconcile(&*metadata)).await;
    }

    /// Makes the open logs match the latest committed image of `metadata`: deletes logs of
    /// partitions no longer hosted, then opens (or creates) every partition this broker is
    /// a replica of. Blocking file I/O. The image is read under the reconcile lock, so
    /// reconciles never go back to an older image: one taken before another reconcile ran
    /// would delete the partitions (and data) created since.
    pub fn reconcile(&self, metadata: &dyn MetadataPort) {
        let _guard = self.reconciling.lock().unwrap_or_else(|e| e.into_inner());
        let image = metadata.image();
        let image = &image;
        let node_id = self.config.node_id;
        let stale: Vec<Arc<Partition>> = self
            .all()
            .into_iter()
            .filter(|p| {
                image
                    .partition(p.tp.topic_id, p.tp.partition)
                    .is_none_or(|state| !state.replicas.contains(&node_id))
            })
            .collect();
        for partition in stale {
            self.remove(&partition);
        }
        // An offline partition no longer hosted here is forgotten; its directory stays
        // (start-up's sweep moves it aside if its topic is gone).
        self.offline
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|tp, _| {
                image
                    .partition(tp.topic_id, tp.partition)
                    .is_some_and(|state| state.replicas.contains(&node_id))
            });
        // Dynamic broker configs set topic defaults at runtime (dynamic_config.rs).
        let dynamic_defaults = crate::dynamic_config::topic_defaults(image, &self.config);
        for topic in image.topics() {
            let effective = crate::dynamic_config::with_topic_overrides(
                &dynamic_defaults,
                image.topic_configs(&topic.name),
            );
            for (index, state) in &topic.partitions {
                if !state.replicas.contains(&node_id) {
                    continue;
                }
                let tp = TopicIdPartition {
                    topic_id: topic.topic_id,
                    partition: *index,
                };
                let overrides = Some(&effective);
                if let Some(open) = self.get(tp) {
                    if !self.config_changed(&open, overrides) {
                        continue;
                    }
                    // The log's config is fixed at open: a changed topic config reopens it
                    // (a clean close, so no recovery). An append racing the close fails
                    // with a retriable storage error.
                    self.close(&open);
                }
                let damaged = self
                    .offline
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&tp)
                    .copied();
                if damaged == Some(true) {
                    continue;
                }
                let result = self.open(tp, &topic.name, overrides, image);
                let mut offline = self.offline.write().unwrap_or_else(|e| e.into_inner());
                match result {
                    Ok(()) => {
                        offline.remove(&tp);
                    }
                    // Said once; retried quietly by the maintenance task.
                    Err(error) if damaged.is_some() && !error.is_damage() => {
                        tracing::debug!(topic = %topic.name, partition = index, %error,
                            "partition log still cannot be opened");
                        offline.insert(tp, error.is_damage());
                    }
                    Err(error) => {
                        let dir = self.partition_dir(&topic.name, *index);
                        // The error names the file (and, for damage, the byte and what to
                        // do); the broker goes on serving every other partition.
                        let (retried, damage_reports) = if error.is_damage() {
                            let reports = self.note_damage();
                            ("until an operator acts and restarts the broker", reports)
                        } else {
                            ("and opening it is retried every few seconds", 0)
                        };
                        tracing::error!(topic = %topic.name, partition = index,
                            dir = %dir.display(), damage_reports, %error,
                            "cannot open partition log; it stays offline (clients get KAFKA_STORAGE_ERROR) {retried}");
                        offline.insert(tp, error.is_damage());
                    }
                }
            }
        }
    }

    fn open(
        &self,
        tp: TopicIdPartition,
        topic: &str,
        overrides: Option<&std::collections::BTreeMap<String, String>>,
        image: &MetadataImage,
    ) -> Result<(), LogError> {
        let config = self.config.topic_log_config(overrides)?;
        let dir = self.partition_dir(topic, tp.partition);
        partition_dirs::claim_dir(&dir, tp.topic_id, image).map_err(|error| LogError::Io {
            operation: "claim partition dir",
            path: dir.clone(),
            source: std::io::Error::other(error),
        })?;
        let log = Log::open(
            &dir,
            config,
            Arc::clone(&self.handles),
            crate::metadata::now_ms(),
        )?;
        // Whatever survived on disk is what this single replica has: it is all committed.
        log.set_high_watermark(log.log_end_offset());
        let producers = rebuild_producers(&log)?;
        tracing::info!(
            topic,
            partition = tp.partition,
            log_end_offset = log.log_end_offset(),
            clean = log.open_report().clean,
            "opened partition"
        );
        let (durable, _) = watch::channel(Ok(log.durable_offset()));
        let partition = Arc::new(Partition {
            tp,
            topic: topic.to_string(),
            log,
            hw_lock: Mutex::new(()),
            producers: Mutex::new(producers),
            durable,
            sync_queued: AtomicBool::new(false),
        });
        self.partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tp, partition);
        Ok(())
    }

    fn config_changed(
        &self,
        partition: &Partition,
        overrides: Option<&std::collections::BTreeMap<String, String>>,
    ) -> bool {
        self.config
            .topic_log_config(overrides)
            .is_ok_and(|wanted| wanted != *partition.log.config())
    }

    fn close(&self, partition: &Arc<Partition>) {
        self.partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&partition.tp);
        if let Err(error) = partition.log.close() {
            tracing::warn!(topic = %partition.topic, %error, "closing a partition");
        }
    }

    fn remove(&self, partition: &Arc<Partition>) {
        self.close(partition);
        let dir = partition.log.dir().to_path_buf();
        if let Err(error) = partition_dirs::remove_committed_deletion(&dir) {
            tracing::warn!(dir = %dir.display(), %error, "cannot delete partition directory");
        }
        tracing::info!(topic = %partition.topic, partition = partition.tp.partition,
            "deleted partition");
    }

    /// `<log.dirs>/<topic>-<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.config.data_dir().join(format!("{topic}-{partition}"))
    }

    /// Finishes committed deletions a crash interrupted, and moves aside (never deletes)
    /// partition directories whose topic id `image` does not know. `image` must hold
    /// everything committed (see `Broker::start`).
    pub fn sweep_orphans(&self, image: &MetadataImage) {
        partition_dirs::sweep(&self.config.data_dir(), image);
    }

    /// Flushes and closes every log (clean shutdown: the next open skips recovery).
    pub fn close_all(&self) {
        let partitions: Vec<Arc<Partition>> = self
            .partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, p)| p)
            .collect();
        for partition in partitions {
            if let Err(error) = partition.log.close() {
                tracing::error!(topic = %partition.topic, partition = partition.tp.partition,
                    %error, "closing partition log");
            }
        }
    }

    /// Periodic duties of every log: resuming writes of a log made read-only by a full disk
    /// once space returns (`Log::try_resume`, with its own backoff), the `flush.ms` flush and
    /// removal of expired `.deleted` files always, retention when `retention` is set, a
    /// compaction pass (topics with a `compact` policy) when `compaction` is set, and the
    /// recovery point moved up to the durable offset when `checkpoint` is set
    /// (`log.flush.offset.checkpoint.interval.ms`). Blocking I/O.
    pub fn maintain(&self, now_ms: i64, retention: bool, compaction: bool, checkpoint: bool) {
        for partition in self.all() {
            let log = &partition.log;
            if log.is_failed() {
                // Refuses every duty until reopened; it said why when it failed.
                continue;
            }
            let result = log
                .try_resume(now_ms)
                .and_then(|_| log.maybe_flush(now_ms))
                .and_then(|()| log.delete_expired_files(now_ms))
                .and_then(|()| {
                    if checkpoint {
                        log.checkpoint_recovery_point().map(|_| ())
                    } else {
                        Ok(())
                    }
                })
                .and_then(|()| {
                    if retention {
                        log.apply_retention(now_ms).map(|_| ())
                    } else {
                        Ok(())
                    }
                })
                .and_then(|()| {
                    if compaction && log.config().cleanup_policy.compacts() {
                        log.compact(now_ms, &CompactionLimits::default())
                            .map(|_| ())
                    } else {
                        Ok(())
                    }
                });
            if let Err(error) = result {
                tracing::error!(topic = %partition.topic, partition = partition.tp.partition,
                    %error, "log maintenance failed");
            }
        }
    }
}
