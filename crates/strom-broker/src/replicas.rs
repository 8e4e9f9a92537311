//! The replica manager: the partitions this broker hosts, opened, created and deleted to
//! follow the metadata image, and made leader or follower as the image says (the fetchers
//! of `fetcher.rs` copy what this broker follows); the high-watermark checkpoint; the
//! wake-ups of long-polling fetches.
//!
//! A partition lives in `<log dir>/<topic>-<partition>` as in Kafka, in one of `log.dirs`
//! (`log_dirs.rs`: placement, directory ids, failed directories), with a
//! `partition.metadata` file naming its topic id, so that a directory left by a deleted topic
//! is never mistaken for a new topic of the same name (`partition_dirs.rs`: claiming,
//! strays, and the one deletion, of partitions the committed metadata removed).
//!
//! A log directory that fails (a failed fsync or write of any log in it: `Health::Failed`)
//! is taken offline alone (`ReplicaManager::fail_dir`): every partition in it stops being
//! served and is reported offline in the heartbeat (KIP-858), so the controller moves its
//! leadership to an in-sync replica on another broker; the other directories go on.

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
use crate::log_dirs::LogDirs;
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

/// Why a hosted partition is offline (`ReplicaManager::offline`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Offline {
    /// Its log is damaged (`LogError::Damaged`): reopening finds it again, so it stays
    /// offline until a restart after an operator acted.
    Damaged,
    /// Another failure to open (a full disk when the log was created, say): retried by the
    /// maintenance task every few seconds.
    Other,
    /// Its log directory is offline (`log_dirs.rs`): until a restart.
    DirFailed,
    /// A copy left by an interrupted replica move that start-up could not decide about, or
    /// a swap that failed half-way (`replica_move.rs`): until an operator acts and restarts.
    Unresolved,
}

/// An offline partition: why, and its directory name (`<topic>-<partition>`).
#[derive(Clone, Debug)]
struct OfflineEntry {
    reason: Offline,
    name: String,
}

#[derive(Debug)]
pub struct ReplicaManager {
    config: Arc<BrokerConfig>,
    handles: Arc<HandleCache>,
    /// The log directories, and which partition is in which.
    dirs: Arc<LogDirs>,
    partitions: RwLock<HashMap<TopicIdPartition, Arc<Partition>>>,
    /// Hosted partitions whose log did not open or whose directory failed: offline,
    /// answered with KAFKA_STORAGE_ERROR as Kafka answers for a partition it cannot serve
    /// from disk.
    offline: RwLock<HashMap<TopicIdPartition, OfflineEntry>>,
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
    /// The high watermarks of the last checkpoint of each log directory (in `log.dirs`
    /// order), read once, for partitions as they open.
    checkpointed: Mutex<Option<Vec<HighWatermarks>>>,
    /// What each directory's checkpoint file holds now (an unchanged set is not written
    /// again).
    last_written: Mutex<HashMap<usize, HighWatermarks>>,
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
    /// Whether the first reconcile (start-up's) ran. In it, a partition found in no online
    /// directory while some directory is offline may be in the offline one: it is offline,
    /// never created empty elsewhere (Kafka creates a log in that case only for a new
    /// replica, one added since start-up).
    started: std::sync::atomic::AtomicBool,
    /// Replicas being moved to another log directory (AlterReplicaLogDirs,
    /// `replica_move.rs`): the target directory's index and the future log there.
    pub(crate) moves: Mutex<HashMap<TopicIdPartition, (usize, Arc<Log>)>>,
}

impl ReplicaManager {
    /// Records `tp` (directory `name`) as offline for `reason`.
    fn mark_offline(&self, tp: TopicIdPartition, reason: Offline, name: String) {
        self.offline
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tp, OfflineEntry { reason, name });
    }

    /// A manager with no partitions open yet over the opened `dirs`; `broker_epoch` is
    /// shared with the broker's registration.
    pub fn new(
        config: Arc<BrokerConfig>,
        broker_epoch: Arc<AtomicI64>,
        dirs: Arc<LogDirs>,
    ) -> ReplicaManager {
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
            dirs,
            partitions: RwLock::new(HashMap::new()),
            offline: RwLock::new(HashMap::new()),
            reconciling: Mutex::new(()),
            signals,
            alter_receiver: Mutex::new(Some(alter_receiver)),
            syncer,
            broker_epoch,
            checkpointed: Mutex::new(None),
            last_written: Mutex::new(HashMap::new()),
            fetchers,
            scrub: Arc::new(ScrubStats::default()),
            damage_reports: AtomicU64::new(0),
            damaged: Mutex::new(std::collections::BTreeSet::new()),
            started: std::sync::atomic::AtomicBool::new(false),
            moves: Mutex::new(HashMap::new()),
        }
    }

    /// Whether some hosted partition's log could not be opened for a reason other than
    /// damage (see `offline`): the maintenance task then reconciles again.
    pub fn has_offline(&self) -> bool {
        self.offline
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .any(|entry| entry.reason == Offline::Other)
    }

    /// The replicas being moved to another directory: the target directory's index, the
    /// partition, and its future log there.
    pub fn future_replicas(&self) -> Vec<(usize, Arc<Partition>, Arc<Log>)> {
        let moves = self.moves.lock().unwrap_or_else(|e| e.into_inner());
        moves
            .iter()
            .filter_map(|(tp, (dir, log))| Some((*dir, self.get(*tp)?, Arc::clone(log))))
            .collect()
    }

    /// The file-handle cache every log of this broker shares.
    pub(crate) fn handles(&self) -> &Arc<HandleCache> {
        &self.handles
    }

    /// Where `tp` is being moved, and its future log.
    pub(crate) fn move_target(&self, tp: TopicIdPartition) -> Option<(usize, Arc<Log>)> {
        self.moves
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&tp)
            .cloned()
    }

    /// Records a move of `tp` to directory `target`, building `future`; a move of `tp`
    /// begun at the same time by another request is abandoned (its copy removed).
    pub(crate) fn begin_move(&self, tp: TopicIdPartition, target: usize, future: Arc<Log>) {
        let replaced = self
            .moves
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tp, (target, future));
        if let Some((_, old)) = replaced {
            if let Err(error) = old.close() {
                tracing::debug!(%error, "closing an abandoned future replica");
            }
            crate::replica_move::remove_quietly(old.dir());
        }
    }

    /// Whether the move building `future` for `partition` is still on (neither cancelled
    /// nor the partition closed or reopened since).
    pub(crate) fn is_moving(&self, partition: &Arc<Partition>, future: &Arc<Log>) -> bool {
        let moving = self
            .move_target(partition.tp)
            .is_some_and(|(_, log)| Arc::ptr_eq(&log, future));
        moving
            && self
                .get(partition.tp)
                .is_some_and(|p| Arc::ptr_eq(&p, partition))
    }

    /// Abandons the move of `tp`, if any: its future copy (a partial copy) is closed and
    /// removed; the current copy is untouched.
    pub(crate) fn cancel_move(&self, tp: TopicIdPartition) {
        let Some((_, future)) = self
            .moves
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&tp)
        else {
            return;
        };
        if let Err(error) = future.close() {
            tracing::debug!(%error, "closing an abandoned future replica");
        }
        self.forget_handles(future.dir());
        crate::replica_move::remove_quietly(future.dir());
        tracing::info!(dir = %future.dir().display(), "replica move abandoned; its copy removed");
    }

    /// Drops the cached file handles of every file in `dir` (renamed or removed next).
    fn forget_handles(&self, dir: &std::path::Path) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                self.handles.forget(&entry.path());
            }
        }
    }

    /// The end of a move (`replica_move.rs`, which states the order): with the reconcile
    /// lock held, the partition stops serving, the rest of its log is copied, the future
    /// log closed (fsynced), the directories swapped, and the partition reopened from its
    /// new directory with the roles the image gives it. A failure before the swap puts the
    /// partition back in service in its current directory.
    pub(crate) fn finish_move(
        &self,
        metadata: &dyn MetadataPort,
        partition: &Arc<Partition>,
        future: &Arc<Log>,
        target: usize,
    ) -> Result<(), String> {
        let tp = partition.tp;
        let name = dir_name(&partition.topic, tp.partition);
        {
            let _guard = self.reconciling.lock().unwrap_or_else(|e| e.into_inner());
            if !self.is_moving(partition, future) {
                return Ok(());
            }
            self.fetchers.remove(tp);
            partition.go_offline();
            self.partitions
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&tp);
            let high_watermark = partition.log.high_watermark();
            if let Err(error) = self.final_copy(partition, future) {
                // Back in service as it was; the copy is removed.
                self.cancel_move(tp);
                self.partitions
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(tp, Arc::clone(partition));
                self.apply_roles(&metadata.image());
                return Err(format!(
                    "{}: the last copy before the swap failed ({error}); the replica stays                      in its directory",
                    partition.log.dir().display()
                ));
            }
            let current_dir = partition.log.dir().to_path_buf();
            if let Err(error) = partition.log.close() {
                // The future copy is durable and holds everything: the swap goes on.
                tracing::warn!(dir = %current_dir.display(), %error,
                    "closing the current replica before the swap");
            }
            self.forget_handles(&current_dir);
            self.forget_handles(future.dir());
            self.moves
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&tp);
            match crate::replica_move::swap(
                &current_dir,
                future.dir(),
                crate::replica_move::Steps::All,
            ) {
                Ok(new_dir) => {
                    self.dirs.set_placed(&name, target);
                    self.carry_high_watermark(tp, target, high_watermark);
                    tracing::info!(topic = %partition.topic, partition = tp.partition,
                        dir = %new_dir.display(), "replica moved to another log directory");
                }
                Err(error) if current_dir.is_dir() => {
                    // Not swapped: the current copy is current still; reopened below.
                    crate::replica_move::remove_quietly(future.dir());
                    tracing::error!(dir = %current_dir.display(), %error,
                        "swapping in a moved replica failed; it stays in its directory");
                }
                Err(error) => {
                    self.mark_offline(tp, Offline::Unresolved, name);
                    return Err(format!(
                        "swapping in the moved replica of {} failed half-way ({error}); it                          stays offline and the next start-up finishes the move",
                        current_dir.display()
                    ));
                }
            }
        }
        // Reopened from the directory it is placed in now, in the role the image gives it.
        self.reconcile(metadata);
        Ok(())
    }

    /// The copy's last rounds while the partition serves nothing (its log does not grow),
    /// then the future log gets the current log start and the current producer state (a
    /// snapshot at the log end offset, durable before the close: the reopened replica
    /// starts from it instead of replaying its log), and is closed (fsynced, clean).
    fn final_copy(&self, partition: &Partition, future: &Log) -> Result<(), LogError> {
        for _ in 0..crate::replica_move::FINAL_ROUNDS_MAX {
            let before = future.log_end_offset();
            if crate::replica_move::copy_round(&partition.log, future)? <= 0
                || future.log_end_offset() == before
            {
                break;
            }
        }
        let start = partition.log.log_start_offset();
        if start > future.log_start_offset() {
            future.delete_records_before(start, crate::metadata::now_ms())?;
        }
        if future.log_end_offset() != partition.log.log_end_offset() {
            return Err(LogError::Io {
                operation: "copy for a replica move",
                path: future.dir().to_path_buf(),
                source: std::io::Error::other(format!(
                    "the copy ends at {}, the log at {}",
                    future.log_end_offset(),
                    partition.log.log_end_offset()
                )),
            });
        }
        // The copy was appended as a follower's log would be, without the producer state
        // that writes `.txnindex` entries: it gets the current log's (every aborted
        // transaction whose marker it holds, read at once: a move is rare).
        let start = future.log_start_offset();
        let aborted = partition.log.aborted_between(start, i64::MAX)?;
        future.rebuild_txn_index(start, &aborted)?;
        partition.write_producer_snapshot_into(future)?;
        future.close()
    }

    /// Keeps a moved replica's high watermark for its reopening (as if checkpointed in its
    /// new directory), so consumers do not see it go back.
    fn carry_high_watermark(&self, tp: TopicIdPartition, dir: usize, high_watermark: i64) {
        let _ = self.checkpointed_high_watermark(tp);
        let mut checkpointed = self.checkpointed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(marks) = checkpointed.as_mut().and_then(|m| m.get_mut(dir)) {
            marks.insert((tp.topic_id.as_u128(), tp.partition), high_watermark);
        }
    }

    /// This broker's node id.
    pub(crate) fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The log directories.
    pub fn log_dirs(&self) -> &Arc<LogDirs> {
        &self.dirs
    }

    /// The index in `log.dirs` of the directory holding `partition`.
    pub fn dir_index(&self, partition: &Partition) -> Option<usize> {
        self.dirs
            .dir_of(&dir_name(&partition.topic, partition.tp.partition))
    }

    /// Takes log directory `index` offline (KIP-858) for `reason`, once: every partition in
    /// it stops being served (it stays open in no role, so nothing is written there again)
    /// and is reported offline from the next heartbeat. Returns how many directories are
    /// still online; the caller stops the broker when none is.
    pub fn fail_dir(&self, index: usize, reason: &str) -> usize {
        // Not while a reconcile runs: it could open a partition in this directory after
        // the directory's partitions were taken out of service.
        let _guard = self.reconciling.lock().unwrap_or_else(|e| e.into_inner());
        if self.dirs.fail(index, reason) {
            let path = self
                .dirs
                .all()
                .get(index)
                .map(|d| d.path.display().to_string())
                .unwrap_or_default();
            let inside: Vec<Arc<Partition>> = self
                .all()
                .into_iter()
                .filter(|p| self.dir_index(p) == Some(index))
                .collect();
            let cancelled: Vec<TopicIdPartition> = self
                .moves
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|(tp, (target, _))| *target == index || inside.iter().any(|p| p.tp == **tp))
                .map(|(tp, _)| *tp)
                .collect();
            for tp in cancelled {
                self.cancel_move(tp);
            }
            for partition in &inside {
                self.fetchers.remove(partition.tp);
                partition.go_offline();
                self.partitions
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&partition.tp);
                self.mark_offline(
                    partition.tp,
                    Offline::DirFailed,
                    dir_name(&partition.topic, partition.tp.partition),
                );
            }
            tracing::error!(dir = %path, %reason, partitions = inside.len(),
                online_dirs = self.dirs.online_count(),
                "log directory failed: it is offline until a restart; its partitions are \
                 reported offline so that other brokers lead them. Replace or repair the disk, \
                 then restart the broker");
        }
        self.dirs.online_count()
    }

    /// Takes offline the directory of every log that failed (`Health::Failed`: a failed
    /// fsync or write, or an I/O error reading it) since the last call; returns how many
    /// directories are online.
    pub fn fail_dirs_of_failed_logs(&self) -> usize {
        for partition in self.all() {
            if partition.log.health() != strom_log::Health::Failed {
                continue;
            }
            if let Some(index) = self.dir_index(&partition) {
                let reason = format!(
                    "a read, write or fsync of {} failed",
                    partition.log.dir().display()
                );
                self.fail_dir(index, &reason);
            }
        }
        self.dirs.online_count()
    }

    /// Damage reports and offline partitions now (kept in memory and named in the log
    /// lines that report damage; exported on `/metrics` as `strom_log_*`).
    pub fn damage_counts(&self) -> DamageCounts {
        let offline = self.offline.read().unwrap_or_else(|e| e.into_inner());
        let damaged = offline
            .values()
            .filter(|entry| entry.reason == Offline::Damaged)
            .count() as u64;
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
    /// start-up, or an I/O or directory error) or its log directory failed, so requests for
    /// it get KAFKA_STORAGE_ERROR.
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
        let unplaced_may_be_offline = !self.started.load(Ordering::Acquire)
            && self.dirs.online_count() < self.dirs.all().len();
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
                let before = self
                    .offline
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&tp)
                    .map(|entry| entry.reason);
                if matches!(
                    before,
                    Some(Offline::Damaged | Offline::DirFailed | Offline::Unresolved)
                ) {
                    continue;
                }
                let name = dir_name(&topic.name, *index);
                if self.dirs.is_unresolved(&name) {
                    self.mark_offline(tp, Offline::Unresolved, name);
                    continue;
                }
                let placement = if unplaced_may_be_offline && self.dirs.dir_of(&name).is_none() {
                    Err(None)
                } else {
                    self.dirs.place(&name)
                };
                let dir = match placement {
                    Ok((_, dir)) => dir,
                    Err(_) => {
                        // In a failed directory (or none is online): offline until a restart.
                        tracing::warn!(topic = %topic.name, partition = index,
                            "partition is in an offline log directory; it stays offline");
                        self.mark_offline(tp, Offline::DirFailed, name);
                        continue;
                    }
                };
                let result = self.open(tp, &topic.name, &dir, overrides, image);
                let mut offline = self.offline.write().unwrap_or_else(|e| e.into_inner());
                let entry = |error: &LogError| OfflineEntry {
                    reason: if error.is_damage() {
                        Offline::Damaged
                    } else {
                        Offline::Other
                    },
                    name: name.clone(),
                };
                match result {
                    Ok(clean) => {
                        opened += 1;
                        recovered += usize::from(!clean);
                        offline.remove(&tp);
                    }
                    // Said once; retried quietly by the maintenance task.
                    Err(error) if before.is_some() && !error.is_damage() => {
                        tracing::debug!(topic = %topic.name, partition = index, %error,
                            "partition log still cannot be opened");
                        offline.insert(tp, entry(&error));
                    }
                    Err(error) => {
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
                        offline.insert(tp, entry(&error));
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
        self.started.store(true, Ordering::Release);
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
        dir: &std::path::Path,
        overrides: Option<&std::collections::BTreeMap<String, String>>,
        image: &MetadataImage,
    ) -> Result<bool, LogError> {
        let config = self.config.topic_log_config(overrides)?;
        let dir = dir.to_path_buf();
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

    /// The high watermark the checkpoints hold for `tp` (each directory's read once, on
    /// first use). The highest of the directories' entries: a partition moved between
    /// directories may have a stale, lower entry in the old one until its next checkpoint,
    /// and the caller never takes more than the log holds.
    fn checkpointed_high_watermark(&self, tp: TopicIdPartition) -> Option<i64> {
        let mut checkpointed = self.checkpointed.lock().unwrap_or_else(|e| e.into_inner());
        let marks = checkpointed.get_or_insert_with(|| {
            self.dirs
                .all()
                .iter()
                .map(|dir| {
                    if !dir.is_online() {
                        return HighWatermarks::new();
                    }
                    let dir = &dir.path;
                    match HighWatermarks::read(&RealFs, dir) {
                        Ok(Some(Ok(marks))) => marks,
                        Ok(None) => HighWatermarks::new(),
                        Ok(Some(Err(reason))) => {
                            tracing::warn!(dir = %dir.display(), %reason,
                                "high-watermark checkpoint damaged; high watermarks of its partitions restart at the log start");
                            HighWatermarks::new()
                        }
                        Err(error) => {
                            tracing::warn!(%error,
                                "cannot read the high-watermark checkpoint; high watermarks of its partitions restart at the log start");
                            HighWatermarks::new()
                        }
                    }
                })
                .collect()
        });
        marks
            .iter()
            .filter_map(|m| m.get((tp.topic_id.as_u128(), tp.partition)))
            .max()
    }

    /// Writes the high watermark of every hosted partition to
    /// `<log dir>/replication-offset-checkpoint` of the directory holding it (atomically,
    /// fsynced; one file per online directory, as Kafka). A directory whose checkpoint
    /// cannot be written (for another reason than a full disk) is taken offline (Kafka's `ReplicaManager.checkpointHighWatermarks`
    /// hands the directory to its `LogDirFailureChannel`): a disk that refuses this small
    /// write cannot be trusted with the logs, and a stale checkpoint would make a restart
    /// start these partitions from an older high watermark. Blocking.
    pub fn checkpoint_high_watermarks(&self) {
        let mut marks: Vec<HighWatermarks> = self
            .dirs
            .all()
            .iter()
            .map(|_| HighWatermarks::new())
            .collect();
        // An offline partition (its log did not open) keeps the high watermark it had, so
        // that once an operator repaired it, its consumers do not start over from the log
        // start (they would see less, never more, but lag would jump).
        let offline: Vec<(TopicIdPartition, String)> = self
            .offline
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(tp, entry)| (*tp, entry.name.clone()))
            .collect();
        for (tp, name) in offline {
            let index = self.dirs.dir_of(&name);
            if let (Some(mark), Some(into)) = (
                self.checkpointed_high_watermark(tp),
                index.and_then(|i| marks.get_mut(i)),
            ) {
                into.insert((tp.topic_id.as_u128(), tp.partition), mark);
            }
        }
        for partition in self.all() {
            if let Some(into) = self.dir_index(&partition).and_then(|i| marks.get_mut(i)) {
                into.insert(
                    (partition.tp.topic_id.as_u128(), partition.tp.partition),
                    partition.log.high_watermark(),
                );
            }
        }
        let mut failed = Vec::new();
        {
            let mut last = self.last_written.lock().unwrap_or_else(|e| e.into_inner());
            for (index, marks) in marks.into_iter().enumerate() {
                if !self.dirs.is_online(index) || last.get(&index) == Some(&marks) {
                    continue;
                }
                let dir = &self.dirs.all()[index].path;
                match marks.write(&RealFs, dir) {
                    Ok(()) => {
                        last.insert(index, marks);
                    }
                    // A write refused for want of space left the previous checkpoint
                    // whole (the temporary file is renamed only once written and fsynced):
                    // a full disk is the read-only state the logs wait out too, so the
                    // write is tried again next time instead of failing the directory.
                    Err(error) if error.is_space_error() => {
                        tracing::warn!(dir = %dir.display(), %error,
                            "the high-watermark checkpoint could not be written: the disk is \
                             full; it is written again once space is freed");
                    }
                    Err(error) => failed.push((index, error)),
                }
            }
        }
        // Outside `last_written`: taking a directory offline takes the reconcile lock.
        for (index, error) in failed {
            self.fail_dir(
                index,
                &format!("the high-watermark checkpoint could not be written: {error}"),
            );
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
        // A move of this replica cannot go on from a closed log.
        self.cancel_move(partition.tp);
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
        self.dirs
            .forget(&dir_name(&partition.topic, partition.tp.partition));
        tracing::info!(topic = %partition.topic, partition = partition.tp.partition,
            "deleted partition");
    }

    /// `<log dir>/<topic>-<partition>` in the directory holding it (the first of
    /// `log.dirs` if it is in none yet).
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        let name = dir_name(topic, partition);
        let index = self.dirs.dir_of(&name).unwrap_or(0);
        self.dirs
            .all()
            .get(index)
            .map_or_else(|| self.config.data_dir(), |d| d.path.clone())
            .join(name)
    }

    /// Finishes committed deletions a crash interrupted, and moves aside (never deletes)
    /// partition directories whose topic id `image` does not know, in every online log
    /// directory. `image` must hold everything committed (see `Broker::start`).
    pub fn sweep_orphans(&self, image: &MetadataImage) {
        for dir in self.dirs.all().iter().filter(|d| d.is_online()) {
            for moved in partition_dirs::sweep(&dir.path, image) {
                self.dirs.forget(&moved);
            }
        }
    }

    /// Stops the fetchers, checkpoints the high watermarks, then flushes and closes every
    /// log (clean shutdown: the next open skips recovery).
    pub fn close_all(&self) {
        // Not while a reconcile or the swap of a replica move runs.
        let _guard = self.reconciling.lock().unwrap_or_else(|e| e.into_inner());
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
    /// `producer.id.expiration.ms`: every hosted partition (leader or follower, as Kafka's
    /// replicas each expire their own state) forgets its idle producers.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) {
        for partition in self.all() {
            let expired = partition.expire_producers(now_ms, expiration_ms);
            if expired > 0 {
                tracing::debug!(topic = %partition.topic, partition = partition.tp.partition,
                    expired, "idle producer ids expired (producer.id.expiration.ms)");
            }
        }
    }

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

/// A partition's directory name, `<topic>-<partition>`.
pub fn dir_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}
