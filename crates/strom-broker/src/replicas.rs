//! The replica manager: the partitions this broker hosts, opened, created and deleted to
//! follow the metadata image, and made leader or follower as the image says (the fetchers
//! of `fetcher.rs` copy what this broker follows); the high-watermark checkpoint; the
//! wake-ups of long-polling fetches.
//!
//! A partition lives in `<log.dirs>/<topic>-<partition>` as in Kafka, with a
//! `partition.metadata` file naming its topic id, so that a directory left by a deleted topic
//! is never mistaken for a new topic of the same name (`partition_dirs.rs`: claiming,
//! strays, and the one deletion, of partitions the committed metadata removed).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use strom_log::fs::RealFs;
use strom_log::{CompactionLimits, HandleCache, HighWatermarks, Log, LogError};
use strom_meta::{MetadataImage, TopicIdPartition};
use strom_replica::{EligibleBrokers, LeaderConfig, PartitionView};
use tokio::sync::{mpsc, watch};

use crate::config::BrokerConfig;
use crate::fetcher::Fetchers;
use crate::metadata::MetadataPort;
use crate::partition::{Partition, Signals};
use crate::partition_dirs;
use crate::scrubber::{ScrubCounts, ScrubStats};
use crate::syncer::{CommitError, Syncer};

/// Partitions whose ISR change waits to be sent, at most (the ISR tick re-offers).
const ALTER_QUEUE_MAX: usize = 4096;

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
    signals: Arc<Signals>,
    /// The receiving end of `signals.alter`, taken by the AlterPartition task.
    alter_receiver: Mutex<Option<mpsc::Receiver<TopicIdPartition>>>,
    /// The fsync threads of sync-on-commit (none in page-cache mode, or if they could not
    /// start: commits then block a pool thread each).
    syncer: Option<Syncer>,
    /// This broker's epoch from its registration (-1 before); roles are taken only from an
    /// image that holds this registration.
    broker_epoch: Arc<AtomicI64>,
    /// The high watermarks of the last checkpoint, read once, for partitions as they open.
    checkpointed: Mutex<Option<HighWatermarks>>,
    /// What the checkpoint file holds now (an unchanged set is not written again).
    last_written: Mutex<Option<HighWatermarks>>,
    /// The follower fetchers.
    pub(crate) fetchers: Fetchers,
    /// What the scrubber (`scrubber.rs`) has done.
    scrub: Arc<ScrubStats>,
    /// Damage reports since start-up: a partition log found damaged at open (once per
    /// partition) and each damaged batch the scrubber reports (on every pass).
    damage_reports: AtomicU64,
    /// Open replicas the scrubber found damaged while leading, reported offline (so that
    /// an in-sync follower takes over) until they are repaired (`scrub_repair.rs`).
    damaged: Mutex<std::collections::BTreeSet<TopicIdPartition>>,
}

impl ReplicaManager {
    /// A manager with no partitions open yet; `broker_epoch` is shared with the broker's
    /// registration.
    pub fn new(config: Arc<BrokerConfig>, broker_epoch: Arc<AtomicI64>) -> ReplicaManager {
        // Every fsync is timed for `/metrics` (`metrics/fs.rs`); all else passes through.
        let handles = Arc::new(HandleCache::new(
            crate::metrics::fs::TimedFs::real(),
            config.open_files_max,
        ));
        let (high_watermark_moved, _) = watch::channel(0);
        let (appended, _) = watch::channel(0);
        let (alter, alter_receiver) = mpsc::channel(ALTER_QUEUE_MAX);
        let signals = Arc::new(Signals {
            high_watermark_moved,
            appended,
            alter,
        });
        let syncer = if config.sync_on_commit() {
            Syncer::start()
                .map_err(
                    |error| tracing::warn!(%error, "cannot start the fsync threads; commits block"),
                )
                .ok()
        } else {
            None
        };
        let fetchers = Fetchers::new(Arc::clone(&config));
        ReplicaManager {
            config,
            handles,
            partitions: RwLock::new(HashMap::new()),
            offline: RwLock::new(HashMap::new()),
            reconciling: Mutex::new(()),
            signals,
            alter_receiver: Mutex::new(Some(alter_receiver)),
            syncer,
            broker_epoch,
            checkpointed: Mutex::new(None),
            last_written: Mutex::new(None),
            fetchers,
            scrub: Arc::new(ScrubStats::default()),
            damage_reports: AtomicU64::new(0),
            damaged: Mutex::new(std::collections::BTreeSet::new()),
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
    /// lines that report damage; exported on `/metrics` as `strom_log_*`).
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

    /// The scrubber's counters (exported on `/metrics` as `strom_log_scrub_*`).
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

    /// The hosted replicas this broker cannot serve, for its heartbeat (`offline_replicas`,
    /// KIP-858's offline log directories per replica): logs that did not open (damage, or
    /// another failure while it lasts) and logs failed since (`Health::Failed`: a failed
    /// fsync or write; nothing is written again until a restart). The controller takes
    /// them out of ISRs and leadership; they are listed offline in Metadata. Ascending.
    pub fn offline_replicas(&self) -> Vec<TopicIdPartition> {
        let mut out: Vec<TopicIdPartition> = self
            .offline
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        out.extend(
            self.all()
                .iter()
                .filter(|p| p.log.health() == strom_log::Health::Failed)
                .map(|p| p.tp),
        );
        out.extend(
            self.damaged
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|tp| self.get(**tp).is_some())
                .copied(),
        );
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The scrubber found `tp` damaged while this broker leads it: reported offline from
    /// now on (the next heartbeat), until [`ReplicaManager::clear_damaged_replica`].
    pub(crate) fn note_damaged_replica(&self, tp: TopicIdPartition) {
        self.damaged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tp);
    }

    /// `tp` was repaired: no longer reported offline for the scrubber's damage.
    pub(crate) fn clear_damaged_replica(&self, tp: TopicIdPartition) {
        self.damaged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&tp);
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

    /// A receiver that changes whenever a high watermark moved (consumers' long polls).
    pub fn subscribe_high_watermarks(&self) -> watch::Receiver<u64> {
        self.signals.high_watermark_moved.subscribe()
    }

    /// A receiver that changes whenever a leader's log grew (followers' long polls).
    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.signals.appended.subscribe()
    }

    /// The AlterPartition task's queue (once).
    pub(crate) fn take_alter_receiver(&self) -> Option<mpsc::Receiver<TopicIdPartition>> {
        self.alter_receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// This broker's registration epoch.
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    /// Sync-on-commit's local wait, from an async task: returns once every offset of
    /// `partition` below `end_offset` is durable here, and the leader's part of the high
    /// watermark covers it (see `syncer.rs`).
    pub async fn sync_local(
        &self,
        partition: &Arc<Partition>,
        end_offset: i64,
    ) -> Result<(), CommitError> {
        match &self.syncer {
            Some(syncer) => syncer.commit(partition, end_offset).await,
            None => {
                let committing = Arc::clone(partition);
                let result = tokio::task::spawn_blocking(move || {
                    committing.log.sync_to(end_offset)?;
                    committing.on_durable(committing.log.durable_offset());
                    Ok::<(), LogError>(())
                })
                .await;
                match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(CommitError::Log(Arc::new(error))),
                    Err(_) => Err(CommitError::ShuttingDown),
                }
            }
        }
    }

    /// [`ReplicaManager::reconcile`] on the blocking pool.
    pub async fn reconcile_latest(self: &Arc<Self>, metadata: &Arc<dyn MetadataPort>) {
        let replicas = Arc::clone(self);
        let metadata = Arc::clone(metadata);
        let _ = tokio::task::spawn_blocking(move || replicas.reconcile(&*metadata)).await;
    }

    /// Makes the open logs and roles match the latest committed image of `metadata`:
    /// deletes logs of partitions no longer hosted, opens (or creates) every partition this
    /// broker is a replica of, then, once the image holds this broker's current
    /// registration, makes it leader or follower of each as the image says. Blocking file
    /// I/O. The image is read under the reconcile lock, so reconciles never go back to an
    /// older image: one taken before another reconcile ran would delete the partitions
    /// (and data) created since.
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
        // Partitions opened by this pass, and how many of them were not closed cleanly.
        let (mut opened, mut recovered) = (0usize, 0usize);
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
                    open.set_min_isr(self.min_isr(overrides));
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
                    Ok(clean) => {
                        opened += 1;
                        recovered += usize::from(!clean);
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
        if opened > 0 {
            tracing::info!(
                opened,
                recovered,
                "opened partition logs (recovered: not closed cleanly; each partition at debug)"
            );
        }
        self.apply_roles(image);
    }

    /// Leader or follower of every hosted partition, as `image` says; nothing before the
    /// image holds this broker's current registration (until then it may be an image from
    /// before a restart, naming this broker leader of an epoch that has moved on).
    fn apply_roles(&self, image: &MetadataImage) {
        let node_id = self.config.node_id;
        let epoch = self.broker_epoch();
        if epoch < 0 || image.broker(node_id).map(|b| b.epoch) != Some(epoch) {
            return;
        }
        let eligible: EligibleBrokers = image
            .brokers()
            .filter(|b| !b.fenced)
            .map(|b| (b.broker_id, b.epoch))
            .collect();
        let config = LeaderConfig {
            replica_lag_time_max_ms: self.config.replica_lag_time_max_ms,
            durable_only: self.config.sync_on_commit(),
        };
        let now = crate::metadata::now_ms();
        for partition in self.all() {
            let Some(state) = image.partition(partition.tp.topic_id, partition.tp.partition) else {
                continue;
            };
            let known = match partition.role() {
                crate::partition::Role::Leader { epoch } => Some(epoch),
                crate::partition::Role::Follower { epoch, .. } => Some(epoch),
                crate::partition::Role::Offline => None,
            };
            if known.is_some_and(|known| known > state.leader_epoch) {
                continue;
            }
            if state.leader == node_id {
                let view = PartitionView {
                    leader_epoch: state.leader_epoch,
                    partition_epoch: state.partition_epoch,
                    replicas: state.replicas.clone(),
                    isr: state.isr.clone(),
                };
                self.fetchers.remove(partition.tp);
                if let Err(error) =
                    partition.become_leader(node_id, &view, eligible.clone(), config, now)
                {
                    tracing::error!(topic = %partition.topic, partition = partition.tp.partition,
                        %error, "cannot become leader; the partition stays offline");
                    partition.go_offline();
                }
            } else {
                partition.become_follower(state.leader, state.leader_epoch);
                if state.leader >= 0 {
                    self.fetchers
                        .assign(&partition, state.leader, state.leader_epoch);
                } else {
                    self.fetchers.remove(partition.tp);
                }
            }
        }
    }

    /// A topic's `min.insync.replicas` (its override, else the broker's default).
    fn min_isr(&self, overrides: Option<&std::collections::BTreeMap<String, String>>) -> usize {
        overrides
            .and_then(|o| o.get("min.insync.replicas"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(self.config.min_insync_replicas)
            .max(1)
    }

    fn open(
        &self,
        tp: TopicIdPartition,
        topic: &str,
        overrides: Option<&std::collections::BTreeMap<String, String>>,
        image: &MetadataImage,
    ) -> Result<bool, LogError> {
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
        // The last checkpointed high watermark, never above what survived: consumers never
        // see more than was committed before the restart, and a leader takes it from there.
        let high_watermark = self
            .checkpointed_high_watermark(tp)
            .unwrap_or(0)
            .min(log.log_end_offset());
        log.set_high_watermark(high_watermark);
        if let Some(reason) = &log.open_report().epochs_rebuilt {
            tracing::warn!(topic, partition = tp.partition, %reason,
                "leader-epoch cache rebuilt from the log");
        }
        // One line per partition at debug; `reconcile` says how many opened at info.
        let clean = log.open_report().clean;
        tracing::debug!(
            topic,
            partition = tp.partition,
            log_end_offset = log.log_end_offset(),
            high_watermark = log.high_watermark(),
            clean,
            "opened partition"
        );
        let partition = Partition::new(
            tp,
            topic,
            log,
            self.config.sync_on_commit(),
            Arc::clone(&self.signals),
        )?;
        partition.set_min_isr(self.min_isr(overrides));
        self.partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tp, Arc::new(partition));
        Ok(clean)
    }

    /// The high watermark the checkpoint holds for `tp` (read once, on first use).
    fn checkpointed_high_watermark(&self, tp: TopicIdPartition) -> Option<i64> {
        let mut checkpointed = self.checkpointed.lock().unwrap_or_else(|e| e.into_inner());
        let marks = checkpointed.get_or_insert_with(|| {
            let dir = self.config.data_dir();
            match HighWatermarks::read(&RealFs, &dir) {
                Ok(Some(Ok(marks))) => marks,
                Ok(None) => HighWatermarks::new(),
                Ok(Some(Err(reason))) => {
                    tracing::warn!(dir = %dir.display(), %reason,
                        "high-watermark checkpoint damaged; high watermarks restart at the log start");
                    HighWatermarks::new()
                }
                Err(error) => {
                    tracing::warn!(%error,
                        "cannot read the high-watermark checkpoint; high watermarks restart at the log start");
                    HighWatermarks::new()
                }
            }
        });
        marks.get((tp.topic_id.as_u128(), tp.partition))
    }

    /// Writes every hosted partition's high watermark to
    /// `<log.dirs>/replication-offset-checkpoint` (atomically, fsynced). Blocking.
    pub fn checkpoint_high_watermarks(&self) {
        let mut marks = HighWatermarks::new();
        // An offline partition (its log did not open) keeps the high watermark it had, so
        // that once an operator repaired it, its consumers do not start over from the log
        // start (they would see less, never more, but lag would jump).
        let offline: Vec<TopicIdPartition> = self
            .offline
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        for tp in offline {
            if let Some(mark) = self.checkpointed_high_watermark(tp) {
                marks.insert((tp.topic_id.as_u128(), tp.partition), mark);
            }
        }
        for partition in self.all() {
            marks.insert(
                (partition.tp.topic_id.as_u128(), partition.tp.partition),
                partition.log.high_watermark(),
            );
        }
        let mut last = self.last_written.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_ref() == Some(&marks) {
            return;
        }
        let dir = self.config.data_dir();
        match marks.write(&RealFs, &dir) {
            Ok(()) => *last = Some(marks),
            Err(error) => tracing::error!(%error, "cannot write the high-watermark checkpoint"),
        }
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
        self.fetchers.remove(partition.tp);
        partition.go_offline();
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

    /// Stops the fetchers, checkpoints the high watermarks, then flushes and closes every
    /// log (clean shutdown: the next open skips recovery).
    pub fn close_all(&self) {
        self.fetchers.stop_all();
        self.checkpoint_high_watermarks();
        let partitions: Vec<Arc<Partition>> = self
            .partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, p)| p)
            .collect();
        for partition in partitions {
            partition.go_offline();
            // A clean shutdown leaves a snapshot at the log end: the next start replays
            // nothing. Offline now, so no append races it.
            if !partition.log.is_failed() {
                if let Err(error) = partition.write_producer_snapshot() {
                    tracing::warn!(topic = %partition.topic, partition = partition.tp.partition,
                        %error, "producer snapshot at shutdown failed; the next start replays the log");
                }
            }
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
                .and_then(|()| partition.snapshot_if_rolled())
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
