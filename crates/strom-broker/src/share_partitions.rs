//! Share partitions and share sessions on this broker (KIP-932's data plane): one
//! strom-share [`SharePartition`] per (share group, topic partition) this broker leads,
//! created on the first ShareFetch that names it, and the share sessions of the members
//! that fetch from here.
//!
//! Creation: the share partition reads its durable state from the share coordinator
//! (`share_persister.rs`: on this broker or on the state partition's leader), which the
//! group coordinator initialized (`share_group_jobs.rs`); without any the fetch of it
//! fails (UNKNOWN_SERVER_ERROR, as Kafka). State initialized without an offset starts
//! where `share.auto.offset.reset` says (latest: the high watermark; earliest: the log
//! start offset), written before anything is delivered. A share session that opens checks
//! the state of its hosted partitions (`ShareManager::check_state`).
//!
//! Acquisition: the log is read from the share partition's fetch offset up to the high
//! watermark (`share.isolation.level=read_committed`: the last stable offset), whole
//! batches as Fetch returns them; control batches, and under read_committed the batches of
//! aborted transactions (the partition's aborted-transaction index), are gaps: never
//! acquired, passed by the end offset and then by the start offset. The records acquired are answered as `AcquiredRecords` ranges
//! with the batches that hold them; clients skip the rest of a batch. Acquisitions are not
//! persisted (as Kafka): after a restart or leader change an acquired record is AVAILABLE
//! again with the delivery count last persisted.
//!
//! Ordering (no acknowledged acknowledgement is lost): an acknowledgement is applied to a
//! copy of the share partition, the copy's whole state (start offset and state batches) is
//! written to the share coordinator and committed there (`share_state.rs`), and only then
//! does the copy replace the share partition and the client get its answer. A failed write
//! leaves the share partition as it was and answers the error. Lock expiries and session
//! releases are persisted by the tick (`run`) shortly after they happen; a crash before
//! that redelivers those records with the delivery count last persisted.
//!
//! Leadership: the sweep drops share partitions whose topic partition this broker no longer
//! leads at the epoch they were created at; their next ShareFetch on the new leader reads
//! the durable state there.
//!
//! Memory: at most `strom.share.partitions.max` share partitions are held; the tick visits
//! only busy ones (acquired records or unpersisted changes), and the sweep evicts the ones
//! not busy and unused for `strom.share.partition.idle.ms` (their state is durable; the
//! next fetch reads it again). One with acquired records is never evicted: its locks exist
//! only here. A deleted topic's share partitions and share state go with it
//! ([`ShareManager::topics_deleted`]).
//!
//! Group configs (`group_configs.rs`): [`partition_config`] (the record lock duration),
//! [`offset_reset`] and [`read_committed`] read the group's `share.*` configs from the
//! metadata image on each use, the broker's values where none is set. A changed lock
//! duration applies to share partitions created after the change.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use strom_meta::TopicIdPartition;
use strom_protocol::ErrorCode;
use strom_share::partition::{AckBatch, AcquiredRange, PartitionConfig, SharePartition};
use strom_share::state::ShareKey;
use uuid::Uuid;

use crate::config::ConfigError;
use crate::config_keys::Props;
use crate::metadata::now_ms;
use crate::partition::Partition;
use crate::server::BrokerContext;

/// How often lock expiries and pending state writes are checked (only share partitions
/// with acquired records or unpersisted changes are visited).
const TICK_INTERVAL_MS: u64 = 200;
/// Every this many ticks, every hosted share partition is checked for leadership and
/// idleness (`ShareManager::sweep`).
const SWEEP_EVERY_TICKS: u32 = 5;
/// Times an operation looks a share partition up again when the one it waited for was
/// evicted meanwhile (the next lookup creates it afresh, so one retry is the usual case).
const EVICTED_RETRIES: usize = 3;
/// Partitions one share session may hold.
pub const SESSION_PARTITIONS_MAX: usize = 10_000;
/// How long a refusal to make room (every hosted share partition busy or in use) is
/// remembered, at most: retrying fetches are refused without a scan meanwhile.
const FULL_RETRY_MS: i64 = TICK_INTERVAL_MS as i64;
/// Entries `make_room` selects beyond the ones it needs, in case some are in use.
const EVICT_SPARE: usize = 8;
/// A share session unused for this long is dropped (and its member's records released).
const SESSION_IDLE_MS: i64 = 5 * 60_000;

/// The share keys of `server.properties`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareConfig {
    /// `group.share.record.lock.duration.ms`.
    pub record_lock_duration_ms: u64,
    /// `group.share.delivery.count.limit`.
    pub delivery_count_limit: u16,
    /// `group.share.partition.max.record.locks`.
    pub partition_max_record_locks: usize,
    /// `group.share.max.share.sessions`.
    pub max_share_sessions: usize,
    /// `share.coordinator.state.topic.num.partitions`.
    pub state_topic_num_partitions: i32,
    /// `share.coordinator.state.topic.replication.factor` (3; 1 on a single node).
    pub state_topic_replication_factor: i16,
    /// `share.coordinator.state.topic.min.isr` (2; 1 on a single node).
    pub state_topic_min_isr: i16,
    /// `share.coordinator.snapshot.update.records.per.snapshot`.
    pub snapshot_updates_max: u32,
    /// `strom.share.partitions.max` (Strom's; Kafka does not bound them): share partitions
    /// one broker holds in memory.
    pub partitions_max: usize,
    /// `strom.share.partition.idle.ms` (Strom's): a share partition without acquired records
    /// or unpersisted changes that no fetch or acknowledgement used for this long is
    /// evicted from memory (its state is durable; the next fetch reads it again).
    pub partition_idle_ms: u64,
}

impl ShareConfig {
    pub(crate) fn from_props(
        props: &Props<'_>,
        replication_default: i16,
    ) -> Result<ShareConfig, ConfigError> {
        Ok(ShareConfig {
            record_lock_duration_ms: props.int("group.share.record.lock.duration.ms")?,
            delivery_count_limit: props.int("group.share.delivery.count.limit")?,
            partition_max_record_locks: props.int("group.share.partition.max.record.locks")?,
            max_share_sessions: props.int("group.share.max.share.sessions")?,
            state_topic_num_partitions: props
                .int("share.coordinator.state.topic.num.partitions")?,
            state_topic_replication_factor: props.int_or(
                "share.coordinator.state.topic.replication.factor",
                replication_default,
            )?,
            state_topic_min_isr: props.int_or(
                "share.coordinator.state.topic.min.isr",
                replication_default.min(2),
            )?,
            snapshot_updates_max: props
                .int("share.coordinator.snapshot.update.records.per.snapshot")?,
            partitions_max: props.int("strom.share.partitions.max")?,
            partition_idle_ms: props.int("strom.share.partition.idle.ms")?,
        })
    }
}

pub use crate::group_configs::OffsetReset;

/// The limits of `group_id`'s share partitions: its `share.record.lock.duration.ms` group
/// config, else the broker's; the delivery count limit and record locks are the broker's
/// (Kafka 4.2 has no group configs for them).
pub fn partition_config(context: &BrokerContext, group_id: &str) -> PartitionConfig {
    let share = &context.config.share;
    let settings = group_settings(context, group_id);
    PartitionConfig {
        lock_duration_ms: settings.share_record_lock_duration_ms,
        delivery_count_limit: share.delivery_count_limit,
        record_locks_max: share.partition_max_record_locks,
    }
}

/// `share.auto.offset.reset` of `group_id` (Kafka's default: latest).
pub fn offset_reset(context: &BrokerContext, group_id: &str) -> OffsetReset {
    group_settings(context, group_id).share_auto_offset_reset
}

/// `share.isolation.level` of `group_id` is read_committed (Kafka's default:
/// read_uncommitted).
pub fn read_committed(context: &BrokerContext, group_id: &str) -> bool {
    group_settings(context, group_id).share_read_committed
}

fn group_settings(context: &BrokerContext, group_id: &str) -> crate::group_configs::Settings {
    crate::group_configs::settings(&context.config, &context.metadata.image(), group_id)
}

type PartitionKey = (String, Uuid, i32);
type HostedRef = Arc<tokio::sync::Mutex<Hosted>>;

/// A hosted share partition in [`ShareManager`]'s map.
#[derive(Clone)]
struct HostedEntry {
    /// The leader epoch it was created at.
    leader_epoch: i32,
    hosted: HostedRef,
    /// When a ShareFetch or ShareAcknowledge last looked it up (ms since the epoch).
    last_used_ms: Arc<AtomicI64>,
}

/// One hosted share partition.
struct Hosted {
    partition: SharePartition,
    leader_epoch: i32,
    state_epoch: i32,
    /// `partition.changes()` as last written to the share coordinator.
    persisted_changes: u64,
    /// Set (under this lock) when it leaves the map: an operation that waited for the lock
    /// looks the share partition up again instead of acting on a copy nobody keeps.
    evicted: bool,
}

impl Hosted {
    /// Whether the tick must visit it: locks to expire or changes to persist. Such a share
    /// partition is never evicted (its locks exist only here).
    fn busy(&self) -> bool {
        self.partition.has_acquired() || self.partition.changes() != self.persisted_changes
    }
}

/// The connection a share session was last used on: its listener and the client's
/// address (unique among the broker's open connections).
pub type ConnectionKey = (String, std::net::SocketAddr);

/// One member's share session.
struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    partitions: Vec<(Uuid, i32)>,
    last_used_ms: i64,
    /// Closing this connection closes the session (Kafka's share session cache listens
    /// for disconnects the same way).
    connection: Option<ConnectionKey>,
}

/// The share partitions and share sessions of this broker.
pub struct ShareManager {
    /// At most `strom.share.partitions.max`. Lock order: `partitions`, then `active`.
    partitions: Mutex<HashMap<PartitionKey, HostedEntry>>,
    /// The hosted share partitions that are busy ([`Hosted::busy`]): the only ones the tick
    /// visits and the only ones a member's release looks at, so idle ones cost nothing.
    active: Mutex<HashSet<PartitionKey>>,
    sessions: Mutex<HashMap<(String, String), Session>>,
    /// Until when (ms since the epoch) `make_room` refuses without looking: it found every
    /// hosted share partition busy or in use (cleared when one stops being busy).
    full_until_ms: AtomicI64,
    /// Bumped when records may have become available (released, expired): waiting
    /// ShareFetches look again.
    released: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for ShareManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareManager").finish_non_exhaustive()
    }
}

impl Default for ShareManager {
    fn default() -> Self {
        ShareManager {
            partitions: Mutex::new(HashMap::new()),
            active: Mutex::new(HashSet::new()),
            sessions: Mutex::new(HashMap::new()),
            full_until_ms: AtomicI64::new(0),
            released: tokio::sync::watch::channel(0).0,
        }
    }
}

/// What a session request resolved to.
#[derive(Debug)]
pub enum SessionUpdate {
    /// Fetch from these partitions (the whole session).
    Fetch(Vec<(Uuid, i32)>),
    /// The session closed (epoch -1): no fetch.
    Closed,
}

/// The records one share partition handed out.
#[derive(Debug, Default)]
pub struct Acquired {
    pub records: Bytes,
    pub ranges: Vec<AcquiredRange>,
}

impl ShareManager {
    /// A receiver that changes when records are released or expire.
    pub fn subscribe_released(&self) -> tokio::sync::watch::Receiver<u64> {
        self.released.subscribe()
    }

    fn notify_released(&self) {
        self.released.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Applies a ShareFetch's session fields (KIP-932): epoch 0 opens (or replaces) the
    /// member's session with `added`; a positive epoch must be the session's next one and
    /// adds `added`, removes `forgotten`; -1 closes it.
    #[allow(clippy::too_many_arguments)]
    pub fn fetch_session(
        &self,
        connection: Option<&ConnectionKey>,
        max_sessions: usize,
        group_id: &str,
        member_id: &str,
        epoch: i32,
        added: &[(Uuid, i32)],
        forgotten: &[(Uuid, i32)],
    ) -> Result<SessionUpdate, ErrorCode> {
        let mut sessions = self
            .sessions
            .lock()
            .map_err(|_| ErrorCode::UNKNOWN_SERVER_ERROR)?;
        let key = (group_id.to_string(), member_id.to_string());
        let now = now_ms();
        match epoch {
            0 => {
                if !sessions.contains_key(&key) && sessions.len() >= max_sessions {
                    return Err(ErrorCode::SHARE_SESSION_LIMIT_REACHED);
                }
                let mut partitions = Vec::new();
                add_partitions(&mut partitions, added)?;
                sessions.insert(
                    key,
                    Session {
                        next_epoch: 1,
                        partitions: partitions.clone(),
                        last_used_ms: now,
                        connection: connection.cloned(),
                    },
                );
                Ok(SessionUpdate::Fetch(partitions))
            }
            -1 => match sessions.remove(&key) {
                Some(_) => Ok(SessionUpdate::Closed),
                None => Err(ErrorCode::SHARE_SESSION_NOT_FOUND),
            },
            epoch => {
                let session = sessions
                    .get_mut(&key)
                    .ok_or(ErrorCode::SHARE_SESSION_NOT_FOUND)?;
                if epoch != session.next_epoch {
                    return Err(ErrorCode::INVALID_SHARE_SESSION_EPOCH);
                }
                let mut partitions = session.partitions.clone();
                add_partitions(&mut partitions, added)?;
                partitions.retain(|p| !forgotten.contains(p));
                session.partitions = partitions.clone();
                session.next_epoch = next_epoch(epoch);
                session.last_used_ms = now;
                if connection.is_some() {
                    session.connection = connection.cloned();
                }
                Ok(SessionUpdate::Fetch(partitions))
            }
        }
    }

    /// Applies a ShareAcknowledge's session epoch: 0 is INVALID_SHARE_SESSION_EPOCH, -1
    /// closes the session (after the acknowledgements), a positive epoch must be the next.
    /// Returns whether the session closes.
    pub fn acknowledge_session(
        &self,
        connection: Option<&ConnectionKey>,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) -> Result<bool, ErrorCode> {
        let mut sessions = self
            .sessions
            .lock()
            .map_err(|_| ErrorCode::UNKNOWN_SERVER_ERROR)?;
        let key = (group_id.to_string(), member_id.to_string());
        match epoch {
            0 => Err(ErrorCode::INVALID_SHARE_SESSION_EPOCH),
            -1 => match sessions.remove(&key) {
                Some(_) => Ok(true),
                None => Err(ErrorCode::SHARE_SESSION_NOT_FOUND),
            },
            epoch => {
                let session = sessions
                    .get_mut(&key)
                    .ok_or(ErrorCode::SHARE_SESSION_NOT_FOUND)?;
                if epoch != session.next_epoch {
                    return Err(ErrorCode::INVALID_SHARE_SESSION_EPOCH);
                }
                session.next_epoch = next_epoch(epoch);
                session.last_used_ms = now_ms();
                if connection.is_some() {
                    session.connection = connection.cloned();
                }
                Ok(false)
            }
        }
    }

    /// Closes the share sessions last used on `connection` (it closed) and releases their
    /// members' acquired records, as Kafka does when a share session's connection drops.
    pub async fn connection_closed(&self, connection: &ConnectionKey) {
        let closed: Vec<(String, String)> = match self.sessions.lock() {
            Ok(mut sessions) => {
                let closed: Vec<(String, String)> = sessions
                    .iter()
                    .filter(|(_, s)| s.connection.as_ref() == Some(connection))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in &closed {
                    sessions.remove(key);
                }
                closed
            }
            Err(_) => return,
        };
        for (group, member) in closed {
            tracing::debug!(group, member, "share session closed with its connection");
            self.release_member(&group, &member).await;
        }
    }

    /// The share partition of (group, topic partition), locked, created (its state read or
    /// initialized) if this broker leads the partition and does not host it yet. One
    /// evicted while this waited for its lock is looked up (so created) again.
    async fn lock_hosted(
        &self,
        context: &BrokerContext,
        key: &PartitionKey,
    ) -> Result<
        (
            HostedRef,
            tokio::sync::OwnedMutexGuard<Hosted>,
            Arc<Partition>,
        ),
        ErrorCode,
    > {
        for _ in 0..EVICTED_RETRIES {
            let (hosted, log) = self.hosted(context, &key.0, key.1, key.2).await?;
            let guard = Arc::clone(&hosted).lock_owned().await;
            // Dropped from the map while this waited (evicted, forgotten by an operation
            // that held its lock, or re-read after a state change): the copy is an orphan,
            // and acquiring on it would hand out records the map's copy hands out too.
            if !guard.evicted && self.still_hosted(key, &hosted) {
                return Ok((hosted, guard, log));
            }
        }
        tracing::warn!(group = key.0, topic_id = %key.1, partition = key.2, "share partition evicted on every lookup; the request is answered with an error and may be retried");
        Err(ErrorCode::UNKNOWN_SERVER_ERROR)
    }

    /// Whether `hosted` is still the map's share partition for `key`.
    fn still_hosted(&self, key: &PartitionKey, hosted: &HostedRef) -> bool {
        self.partitions.lock().is_ok_and(|partitions| {
            partitions
                .get(key)
                .is_some_and(|e| Arc::ptr_eq(&e.hosted, hosted))
        })
    }

    /// Records whether a share partition is busy ([`Hosted::busy`]); called with it locked,
    /// after every change, so the tick visits exactly the busy ones.
    fn mark(&self, key: &PartitionKey, hosted: &HostedRef, locked: &Hosted) {
        let busy = locked.busy();
        let Ok(partitions) = self.partitions.lock() else {
            return;
        };
        if !partitions
            .get(key)
            .is_some_and(|e| Arc::ptr_eq(&e.hosted, hosted))
        {
            return;
        }
        if let Ok(mut active) = self.active.lock() {
            if busy {
                active.insert(key.clone());
            } else if active.remove(key) {
                // Evictable now: a refusal to make room no longer holds.
                self.full_until_ms.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Makes room for one more share partition under `strom.share.partitions.max` by
    /// evicting the least recently used ones that are not busy. Fails when every hosted
    /// share partition is busy: a fetch of a new one is then refused rather than
    /// dropping locks.
    ///
    /// Under the map's lock, so it does little: the few least recently used idle entries
    /// are selected (linear, `select_nth_unstable`), not all of them sorted, and more only
    /// when those are in use. A refusal is remembered for [`FULL_RETRY_MS`], or until a
    /// share partition stops being busy ([`Self::mark`]), so clients retrying against a
    /// full broker do not repeat the scan.
    fn make_room(
        &self,
        partitions: &mut HashMap<PartitionKey, HostedEntry>,
        max: usize,
        now: i64,
    ) -> Result<(), ErrorCode> {
        let max = max.max(1);
        if partitions.len() < max {
            return Ok(());
        }
        if now < self.full_until_ms.load(Ordering::Relaxed) {
            return Err(ErrorCode::UNKNOWN_SERVER_ERROR);
        }
        let mut idle: Vec<(i64, PartitionKey)> = match self.active.lock() {
            Ok(active) => partitions
                .iter()
                .filter(|(k, _)| !active.contains(*k))
                .map(|(k, e)| (e.last_used_ms.load(Ordering::Relaxed), k.clone()))
                .collect(),
            Err(_) => return Err(ErrorCode::UNKNOWN_SERVER_ERROR),
        };
        let mut tried = 0;
        // Each round that finds too few evictable takes twice the spare: O(n log n) in all
        // when most idle entries are in use, not a select per few entries.
        let mut spare = EVICT_SPARE;
        while tried < idle.len() {
            let need = (partitions.len() + 1).saturating_sub(max).max(1);
            let rest = idle.get_mut(tried..).unwrap_or_default();
            let take = need.saturating_add(spare).min(rest.len());
            spare = spare.saturating_mul(2);
            if take < rest.len() {
                rest.select_nth_unstable(take - 1);
            }
            let chosen = rest.get_mut(..take).unwrap_or_default();
            chosen.sort_unstable();
            for (_, key) in chosen.iter() {
                if partitions.get(key).is_some_and(|e| try_evict(&e.hosted)) {
                    partitions.remove(key);
                    tracing::debug!(group = key.0, topic_id = %key.1, partition = key.2, "share partition evicted to make room (strom.share.partitions.max)");
                    if partitions.len() < max {
                        return Ok(());
                    }
                }
            }
            tried += take;
        }
        self.full_until_ms
            .store(now.saturating_add(FULL_RETRY_MS), Ordering::Relaxed);
        tracing::warn!(
            max,
            "every hosted share partition holds acquired records or unpersisted changes and strom.share.partitions.max is reached: a fetch of another one is refused until locks are acknowledged or expire (raise strom.share.partitions.max)"
        );
        Err(ErrorCode::UNKNOWN_SERVER_ERROR)
    }

    /// The share partition of (group, topic partition), created if this broker leads the
    /// partition and does not host it yet (see [`Self::lock_hosted`]).
    async fn hosted(
        &self,
        context: &BrokerContext,
        group_id: &str,
        topic_id: Uuid,
        partition: i32,
    ) -> Result<(HostedRef, Arc<Partition>), ErrorCode> {
        let image = context.metadata.image();
        if image.topic_by_id(topic_id).is_none() {
            return Err(ErrorCode::UNKNOWN_TOPIC_ID);
        }
        let tp = TopicIdPartition {
            topic_id,
            partition,
        };
        let log = crate::handlers::leader_replica_of(context, &image, tp)?;
        let leader_epoch = log.leader_epoch().unwrap_or(-1);
        let key = (group_id.to_string(), topic_id, partition);
        let max = context.config.share.partitions_max;
        let now = now_ms();
        {
            let mut partitions = self
                .partitions
                .lock()
                .map_err(|_| ErrorCode::UNKNOWN_SERVER_ERROR)?;
            match partitions.get(&key) {
                Some(entry) if entry.leader_epoch == leader_epoch => {
                    entry.last_used_ms.store(now, Ordering::Relaxed);
                    return Ok((Arc::clone(&entry.hosted), log));
                }
                Some(_) => {}
                // Room first, so that a full broker does not read state it cannot keep.
                None => self.make_room(&mut partitions, max, now)?,
            }
        }
        let created = create(context, group_id, topic_id, partition, &log, leader_epoch).await?;
        let mut partitions = self
            .partitions
            .lock()
            .map_err(|_| ErrorCode::UNKNOWN_SERVER_ERROR)?;
        // Two first fetches may race: the first one stored at this epoch wins.
        let stored = match partitions.get(&key).cloned() {
            Some(entry) if entry.leader_epoch == leader_epoch => entry,
            existing => {
                if existing.is_none() {
                    self.make_room(&mut partitions, max, now)?;
                }
                let entry = HostedEntry {
                    leader_epoch,
                    hosted: Arc::new(tokio::sync::Mutex::new(created)),
                    last_used_ms: Arc::new(AtomicI64::new(now)),
                };
                partitions.insert(key, entry.clone());
                entry
            }
        };
        stored.last_used_ms.store(now, Ordering::Relaxed);
        Ok((stored.hosted, log))
    }

    /// Acknowledges `batches` of `member_id` on one share partition, persisted before it
    /// returns `Ok` (see the module documentation).
    pub async fn acknowledge(
        &self,
        context: &BrokerContext,
        group_id: &str,
        member_id: &str,
        topic_id: Uuid,
        partition: i32,
        batches: &[AckBatch],
    ) -> Result<(), ErrorCode> {
        let key = (group_id.to_string(), topic_id, partition);
        let (hosted_ref, mut hosted, _log) = self.lock_hosted(context, &key).await?;
        let mut next = hosted.partition.clone();
        next.acknowledge(member_id, batches)
            .map_err(|error| match error {
                strom_share::partition::PartitionError::InvalidAckBatch { .. } => {
                    ErrorCode::INVALID_REQUEST
                }
                _ => ErrorCode::INVALID_RECORD_STATE,
            })?;
        if let Err(code) = persist(context, group_id, topic_id, partition, &hosted, &next).await {
            self.forget_if_state_lost(code, group_id, topic_id, partition);
            return Err(code);
        }
        hosted.persisted_changes = next.changes();
        hosted.partition = next;
        self.mark(&key, &hosted_ref, &hosted);
        drop(hosted);
        self.notify_released();
        Ok(())
    }

    /// Acquires up to `records_max` records of one share partition for `member_id`, reading
    /// at most `bytes_max` bytes of its log.
    #[allow(clippy::too_many_arguments)]
    pub async fn acquire(
        &self,
        context: &BrokerContext,
        group_id: &str,
        member_id: &str,
        topic_id: Uuid,
        partition: i32,
        records_max: usize,
        bytes_max: u64,
    ) -> Result<Acquired, ErrorCode> {
        let key = (group_id.to_string(), topic_id, partition);
        let (hosted_ref, mut hosted, log) = self.lock_hosted(context, &key).await?;
        let acquired = self
            .acquire_locked(
                context,
                group_id,
                member_id,
                &mut hosted,
                &log,
                records_max,
                bytes_max,
            )
            .await;
        self.mark(&key, &hosted_ref, &hosted);
        acquired
    }

    /// [`Self::acquire`] on the locked share partition.
    #[allow(clippy::too_many_arguments)]
    async fn acquire_locked(
        &self,
        context: &BrokerContext,
        group_id: &str,
        member_id: &str,
        hosted: &mut Hosted,
        log: &Arc<Partition>,
        records_max: usize,
        bytes_max: u64,
    ) -> Result<Acquired, ErrorCode> {
        let now = u64::try_from(now_ms()).unwrap_or(0);
        if hosted.partition.expire_locks(now) > 0 {
            self.notify_released();
        }
        hosted
            .partition
            .advance_to_log_start(log.log.log_start_offset());
        let Some(from) = hosted.partition.fetch_offset() else {
            return Ok(Acquired::default());
        };
        let read_committed = read_committed(context, group_id);
        let max_offset = if read_committed {
            log.last_stable_offset()
        } else {
            log.log.high_watermark()
        };
        if from >= max_offset || records_max == 0 {
            return Ok(Acquired::default());
        }
        let reading = Arc::clone(log);
        // Under read_committed, the aborted transactions of the range read (from the
        // `.txnindex` files, so off the runtime too): their batches are never delivered
        // (Kafka archives them; here they are gaps, as control batches).
        let (bytes, aborted) = tokio::task::spawn_blocking(
            move || -> Result<(Vec<u8>, Vec<strom_log::AbortedTxn>), ErrorCode> {
                let storage = |e: strom_log::LogError| ErrorCode(e.kafka_error_code());
                let info = reading
                    .log
                    .read(from, bytes_max.max(1), max_offset)
                    .map_err(storage)?;
                let (bytes, next) = match info.range {
                    Some(range) => (
                        range
                            .read_bytes()
                            .map_err(|_| ErrorCode::KAFKA_STORAGE_ERROR)?,
                        range.next_offset,
                    ),
                    None => (Vec::new(), from),
                };
                // Bounded by the range read, as a fetch's (`handlers/fetch.rs`).
                let upper = next.min(max_offset);
                let aborted = if read_committed && upper > from {
                    reading.aborted_between(from, upper).map_err(storage)?
                } else {
                    Vec::new()
                };
                Ok((bytes, aborted))
            },
        )
        .await
        .map_err(|_| ErrorCode::UNKNOWN_SERVER_ERROR)??;
        // The deliverable batches' offset ranges and where each lies; the run of gap
        // batches (control, aborted) the read ends with.
        let mut spans = Vec::new();
        let mut trailing_gap: Option<(i64, i64)> = None;
        for batch in strom_records::batches(&bytes) {
            let Ok((header, span)) = batch else {
                break;
            };
            if header.last_offset() < from {
                continue;
            }
            let aborted_batch = header.is_transactional()
                && aborted.iter().any(|a| {
                    a.producer_id == header.producer_id
                        && a.first_offset <= header.base_offset
                        && header.base_offset < a.last_offset
                });
            if header.is_control() || aborted_batch {
                let first = trailing_gap.map_or(header.base_offset, |(first, _)| first);
                trailing_gap = Some((first, header.last_offset()));
                continue;
            }
            trailing_gap = None;
            spans.push((header.base_offset, header.last_offset(), span));
        }
        let ranges: Vec<(i64, i64)> = spans.iter().map(|(f, l, _)| (*f, *l)).collect();
        let acquired = hosted
            .partition
            .acquire(member_id, &ranges, records_max, now);
        // Gaps between deliverable batches are passed by `acquire`; a run of them at the
        // end of the read is passed here once everything before it was taken, so the next
        // read starts after it.
        if let Some((first, last)) = trailing_gap {
            hosted.partition.skip_gap(first.max(from), last);
        }
        let mut records = BytesMut::new();
        for (first, last, span) in &spans {
            let holds = acquired
                .iter()
                .any(|r| r.first_offset <= *last && r.last_offset >= *first);
            if holds {
                if let Some(batch) = bytes.get(span.clone()) {
                    records.extend_from_slice(batch);
                }
            }
        }
        Ok(Acquired {
            records: records.freeze(),
            ranges: acquired,
        })
    }

    /// Releases every record `member_id` holds in `group_id`'s share partitions here (its
    /// session closed, or it left the group: the share group coordinator calls this).
    pub async fn release_member(&self, group_id: &str, member_id: &str) {
        // Only busy share partitions hold acquired records.
        let hosted = self.busy_partitions(Some(group_id));
        let mut released = 0;
        for (key, h) in hosted {
            let mut locked = h.lock().await;
            if locked.evicted {
                continue;
            }
            released += locked.partition.release_member(member_id);
            self.mark(&key, &h, &locked);
        }
        if released > 0 {
            self.notify_released();
        }
    }

    /// Forgets `group_id`'s share partitions here and deletes its durable state (DeleteGroups
    /// of an empty share group calls this). Returns the first error of the state deletes.
    pub async fn delete_group_state(
        &self,
        context: &BrokerContext,
        group_id: &str,
    ) -> Result<(), ErrorCode> {
        self.forget(Some(group_id), None, None);
        let mut result = delete_led_state(context, |c| c.keys_of_group(group_id)).await;
        for key in crate::share_persister::remote_candidate_keys(context, group_id) {
            let deleted = crate::share_persister::delete(context, &key).await;
            if result.is_ok() {
                result = deleted;
            }
        }
        result
    }

    /// The share-partition start offset and leader epoch of `group_id`'s share partitions
    /// (DescribeShareGroupOffsets): of `partitions`, or of every one with state when `None`.
    /// A partition without state has start offset -1.
    pub async fn describe_offsets(
        &self,
        context: &BrokerContext,
        group_id: &str,
        partitions: Option<Vec<(Uuid, i32)>>,
    ) -> Vec<(Uuid, i32, Result<(i64, i32), ErrorCode>)> {
        let store = &context.share_state;
        let partitions = match partitions {
            Some(partitions) => partitions,
            None => {
                let mut all = Vec::new();
                for state_partition in store.led_partitions(context) {
                    let keys = store
                        .call_partition(context, state_partition, |c| {
                            Ok((c.keys_of_group(group_id), Vec::new()))
                        })
                        .await
                        .unwrap_or_default();
                    all.extend(
                        keys.into_iter()
                            .map(|k| (Uuid::from_bytes(k.topic_id), k.partition)),
                    );
                }
                for key in crate::share_persister::remote_candidate_keys(context, group_id) {
                    if let Ok(Some(_)) = crate::share_persister::summary(context, &key).await {
                        all.push((Uuid::from_bytes(key.topic_id), key.partition));
                    }
                }
                all.sort();
                all
            }
        };
        let mut out = Vec::with_capacity(partitions.len());
        for (topic_id, partition) in partitions {
            let key = share_key(group_id, topic_id, partition);
            let summary = crate::share_persister::summary(context, &key)
                .await
                .map(|s| s.map_or((-1, -1), |s| (s.start_offset, s.leader_epoch)));
            out.push((topic_id, partition, summary));
        }
        out
    }

    /// Moves `group_id`'s share partition to start at `start_offset` (AlterShareGroupOffsets
    /// on an empty group): a new state epoch (fencing writers of the old state) with nothing
    /// in flight; a share partition hosted here is dropped and re-reads it.
    pub async fn alter_offset(
        &self,
        context: &BrokerContext,
        group_id: &str,
        topic_id: Uuid,
        partition: i32,
        start_offset: i64,
    ) -> Result<(), ErrorCode> {
        if start_offset < 0 {
            return Err(ErrorCode::INVALID_REQUEST);
        }
        let key = share_key(group_id, topic_id, partition);
        // A summary then an initialize at the next state epoch: a concurrent initialize
        // between the two makes this one FENCED_STATE_EPOCH, never a silent overwrite.
        let epoch = crate::share_persister::summary(context, &key)
            .await?
            .map_or(0, |s| s.state_epoch.saturating_add(1));
        crate::share_persister::initialize(context, &key, epoch, start_offset).await?;
        self.forget(Some(group_id), Some(topic_id), Some(partition));
        Ok(())
    }

    /// Deletes the state of `group_id`'s share partitions `partitions` of `topic_id`
    /// (DeleteGroups, DeleteShareGroupOffsets on an empty group); hosted ones are dropped.
    pub async fn delete_partitions(
        &self,
        context: &BrokerContext,
        group_id: &str,
        topic_id: Uuid,
        partitions: &std::collections::BTreeSet<i32>,
    ) -> Result<(), ErrorCode> {
        self.forget(Some(group_id), Some(topic_id), None);
        for partition in partitions {
            let key = share_key(group_id, topic_id, *partition);
            crate::share_persister::delete(context, &key).await?;
        }
        Ok(())
    }

    /// A share session opens (ShareFetch at epoch 0): each of its partitions hosted here
    /// is checked against its durable state (one ReadShareGroupStateSummary each), and
    /// dropped, to read the state again, when that state is gone or is not the one it
    /// read (another state epoch: AlterShareGroupOffsets re-initialized it; another leader
    /// epoch: it was deleted and initialized again, which records no leader epoch). This is
    /// how a share partition learns of DeleteGroups and offset changes made through the
    /// group coordinator on another broker before it writes (a write would be fenced) or
    /// hands out records from the old start offset to the new session.
    pub async fn check_state(
        &self,
        context: &BrokerContext,
        group_id: &str,
        partitions: &[(Uuid, i32)],
    ) {
        for (topic_id, partition) in partitions {
            let hosted = match self.partitions.lock() {
                Ok(hosted) => hosted
                    .get(&(group_id.to_string(), *topic_id, *partition))
                    .map(|e| Arc::clone(&e.hosted)),
                Err(_) => return,
            };
            let Some(hosted) = hosted else {
                continue;
            };
            let (state_epoch, leader_epoch) = {
                let h = hosted.lock().await;
                (h.state_epoch, h.leader_epoch)
            };
            let key = share_key(group_id, *topic_id, *partition);
            let same = match crate::share_persister::summary(context, &key).await {
                Ok(Some(s)) => s.state_epoch == state_epoch && s.leader_epoch == leader_epoch,
                Ok(None) => false,
                // Not known to differ: kept (the next write is fenced if it does).
                Err(_) => true,
            };
            if !same {
                tracing::info!(group = group_id, %topic_id, partition, "share state changed elsewhere; the share partition reads it again");
                if let Ok(mut map) = self.partitions.lock() {
                    let key = (group_id.to_string(), *topic_id, *partition);
                    if map
                        .get(&key)
                        .is_some_and(|e| Arc::ptr_eq(&e.hosted, &hosted))
                    {
                        map.remove(&key);
                    }
                }
            }
        }
    }

    /// Drops a hosted share partition whose durable state was deleted
    /// (UNKNOWN_TOPIC_OR_PARTITION) or re-initialized (FENCED_STATE_EPOCH) by another
    /// broker (DeleteGroups, Alter/DeleteShareGroupOffsets at the group's coordinator): its
    /// next ShareFetch re-reads the state instead of writing over it.
    fn forget_if_state_lost(
        &self,
        code: ErrorCode,
        group_id: &str,
        topic_id: Uuid,
        partition: i32,
    ) {
        if code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION || code == ErrorCode::FENCED_STATE_EPOCH {
            tracing::info!(group = group_id, %topic_id, partition, %code, "share state gone; the share partition re-reads it");
            self.forget(Some(group_id), Some(topic_id), Some(partition));
        }
    }

    /// Drops hosted share partitions (of a group, of one topic, of one partition). One that
    /// an operation holds finishes that operation on the dropped copy.
    fn forget(&self, group_id: Option<&str>, topic_id: Option<Uuid>, partition: Option<i32>) {
        if let Ok(mut hosted) = self.partitions.lock() {
            hosted.retain(|(group, t, p), entry| {
                let forgotten = group_id.is_none_or(|g| g == group)
                    && topic_id.is_none_or(|id| id == *t)
                    && partition.is_none_or(|q| q == *p);
                if forgotten {
                    if let Ok(mut locked) = entry.hosted.try_lock() {
                        locked.evicted = true;
                    }
                }
                !forgotten
            });
        }
    }

    /// Topics were deleted (they left the metadata image): their hosted share partitions
    /// are dropped and their state in the `__share_group_state` partitions this broker
    /// leads is deleted (tombstones), for every group, as Kafka's group coordinator has
    /// the share coordinator delete it (`onPartitionsDeleted`). A topic created again
    /// under the same name has another id, so its share partitions start afresh at
    /// `share.auto.offset.reset` either way; this frees the old state.
    pub async fn topics_deleted(&self, context: &BrokerContext, topic_ids: &[Uuid]) {
        for topic_id in topic_ids {
            self.forget(None, Some(*topic_id), None);
        }
        let ids: Vec<[u8; 16]> = topic_ids.iter().map(|id| *id.as_bytes()).collect();
        let deleted = delete_led_state(context, |c| {
            ids.iter().flat_map(|id| c.keys_of_topic(*id)).collect()
        })
        .await;
        match deleted {
            Ok(()) => tracing::debug!(?topic_ids, "share state of deleted topics deleted"),
            Err(code) => {
                tracing::warn!(?topic_ids, %code, "the share state of deleted topics could not be deleted everywhere; it stays in __share_group_state until its groups are deleted (strom groups delete)")
            }
        }
    }

    /// The busy share partitions (of one group), as the tick and releases visit them;
    /// entries of share partitions that left the map are dropped from the busy set.
    fn busy_partitions(&self, group_id: Option<&str>) -> Vec<(PartitionKey, HostedRef)> {
        let Ok(partitions) = self.partitions.lock() else {
            return Vec::new();
        };
        let Ok(mut active) = self.active.lock() else {
            return Vec::new();
        };
        active.retain(|k| partitions.contains_key(k));
        active
            .iter()
            .filter(|k| group_id.is_none_or(|g| g == k.0))
            .filter_map(|k| {
                partitions
                    .get(k)
                    .map(|e| (k.clone(), Arc::clone(&e.hosted)))
            })
            .collect()
    }

    /// Hosted share partitions (all states), for tests and metrics.
    pub fn hosted_count(&self) -> usize {
        self.partitions.lock().map_or(0, |p| p.len())
    }

    /// Drops share partitions this broker no longer leads at the epoch they were created
    /// at (their locks went with the leadership), and evicts the idle ones: not busy and
    /// not looked up for `strom.share.partition.idle.ms`. Their state is durable; the next
    /// fetch reads it again. Never awaits: a share partition whose lock is held is in use.
    ///
    /// The map's lock is held only to copy the entries out and to remove the ones found
    /// to go ([`Self::sweep_remove`]), not while leadership is checked, so fetches and
    /// acknowledgements are not held up behind thousands of leadership checks.
    fn sweep(&self, context: &BrokerContext, now: i64) {
        let idle_ms = i64::try_from(context.config.share.partition_idle_ms).unwrap_or(i64::MAX);
        let image = context.metadata.image();
        let entries: Vec<(PartitionKey, HostedEntry)> = match self.partitions.lock() {
            Ok(partitions) => partitions
                .iter()
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect(),
            Err(_) => return,
        };
        let mut going = Vec::new();
        for (key, entry) in entries {
            let tp = TopicIdPartition {
                topic_id: key.1,
                partition: key.2,
            };
            let leads = crate::handlers::leader_replica_of(context, &image, tp)
                .ok()
                .and_then(|log| log.leader_epoch());
            if leads != Some(entry.leader_epoch) {
                going.push((key, entry.hosted, Sweep::NotLed));
            } else if is_idle(&entry, now, idle_ms) {
                going.push((key, entry.hosted, Sweep::Idle));
            }
        }
        if !going.is_empty() {
            self.sweep_remove(going, now, idle_ms);
        }
    }

    /// The sweep's second step, under the map's lock: removes each share partition found
    /// to go if the map still holds that same copy (one created again meanwhile is another
    /// copy, and stays). One no longer led goes whatever it holds (marked evicted if its
    /// lock is free; one in use finishes its operation on the dropped copy); an idle one
    /// goes only if it is still idle, not busy and not in use ([`try_evict`]).
    fn sweep_remove(&self, going: Vec<(PartitionKey, HostedRef, Sweep)>, now: i64, idle_ms: i64) {
        let Ok(mut partitions) = self.partitions.lock() else {
            return;
        };
        let Ok(active) = self.active.lock() else {
            return;
        };
        for (key, hosted, why) in going {
            let Some(entry) = partitions.get(&key) else {
                continue;
            };
            if !Arc::ptr_eq(&entry.hosted, &hosted) {
                continue;
            }
            match why {
                Sweep::NotLed => {
                    if let Ok(mut locked) = entry.hosted.try_lock() {
                        locked.evicted = true;
                    }
                    tracing::debug!(group = key.0, topic_id = %key.1, partition = key.2, "share partition dropped: this broker no longer leads its partition at the epoch it was created at");
                }
                Sweep::Idle => {
                    if !is_idle(entry, now, idle_ms)
                        || active.contains(&key)
                        || !try_evict(&entry.hosted)
                    {
                        continue;
                    }
                    tracing::debug!(group = key.0, topic_id = %key.1, partition = key.2, "idle share partition evicted (strom.share.partition.idle.ms)");
                }
            }
            partitions.remove(&key);
        }
    }

    /// One tick: drop idle sessions; expire locks and persist pending changes of the busy
    /// share partitions; with `sweep`, check every one ([`Self::sweep`]).
    async fn tick(&self, context: &BrokerContext, sweep: bool) {
        let now = now_ms();
        let idle: Vec<(String, String)> = match self.sessions.lock() {
            Ok(mut sessions) => {
                let idle: Vec<(String, String)> = sessions
                    .iter()
                    .filter(|(_, s)| now - s.last_used_ms > SESSION_IDLE_MS)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in &idle {
                    sessions.remove(key);
                }
                idle
            }
            Err(_) => return,
        };
        for (group, member) in idle {
            self.release_member(&group, &member).await;
        }
        if sweep {
            self.sweep(context, now);
        }
        let mut released = false;
        for (key, h) in self.busy_partitions(None) {
            let mut hosted = h.lock().await;
            if hosted.evicted {
                continue;
            }
            if hosted
                .partition
                .expire_locks(u64::try_from(now).unwrap_or(0))
                > 0
            {
                released = true;
            }
            if hosted.partition.changes() != hosted.persisted_changes {
                let next = hosted.partition.clone();
                let (group, topic_id, partition) = (&key.0, key.1, key.2);
                match persist(context, group, topic_id, partition, &hosted, &next).await {
                    Ok(()) => hosted.persisted_changes = next.changes(),
                    Err(code) => self.forget_if_state_lost(code, group, topic_id, partition),
                }
            }
            self.mark(&key, &h, &hosted);
        }
        if released {
            self.notify_released();
        }
    }
}

/// Why the sweep drops a share partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sweep {
    /// This broker no longer leads its partition at the epoch it was created at.
    NotLed,
    /// Not looked up for `strom.share.partition.idle.ms`.
    Idle,
}

/// Whether `entry` was not looked up for `idle_ms` at `now`.
fn is_idle(entry: &HostedEntry, now: i64, idle_ms: i64) -> bool {
    now.saturating_sub(entry.last_used_ms.load(Ordering::Relaxed)) >= idle_ms
}

/// Evicts a share partition that is not busy and not in use (its lock is free): marks it
/// evicted under its lock and returns true; the caller removes it from the map while it
/// still holds the map's lock, so a waiter that sees the mark finds it gone.
fn try_evict(hosted: &HostedRef) -> bool {
    let Ok(mut locked) = hosted.try_lock() else {
        return false;
    };
    if locked.busy() {
        return false;
    }
    locked.evicted = true;
    true
}

/// Deletes the state of the keys `select` names in every `__share_group_state` partition
/// this broker leads. Returns the first error.
async fn delete_led_state(
    context: &BrokerContext,
    select: impl Fn(&strom_share::state::StateCoordinator) -> Vec<ShareKey>,
) -> Result<(), ErrorCode> {
    let store = &context.share_state;
    let mut result = Ok(());
    for partition in store.led_partitions(context) {
        let deleted = store
            .call_partition(context, partition, |c| {
                let mut records = Vec::new();
                for key in select(c) {
                    records.extend(c.delete(&key));
                }
                Ok(((), records))
            })
            .await;
        if result.is_ok() {
            result = deleted;
        }
    }
    result
}

/// Runs the share partitions' tick until the broker stops (the task is aborted then).
///
/// It also follows the metadata image: topics that leave it were deleted, and their share
/// state goes with them ([`ShareManager::topics_deleted`]). Only deletions this task sees
/// are acted on: one made while the broker was down, or while another broker led the
/// state partition, leaves that state until its group is deleted.
pub async fn run(context: Arc<BrokerContext>) {
    let mut interval = tokio::time::interval(Duration::from_millis(TICK_INTERVAL_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut images = context.metadata.watch();
    let mut topics = topic_ids(&images.borrow_and_update());
    let mut watching = true;
    let mut ticks: u32 = 0;
    loop {
        tokio::select! {
            _ = interval.tick() => {
                ticks = ticks.wrapping_add(1);
                context.shares.tick(&context, ticks % SWEEP_EVERY_TICKS == 0).await;
            }
            changed = images.changed(), if watching => {
                if changed.is_err() {
                    watching = false;
                    continue;
                }
                let now = topic_ids(&images.borrow_and_update());
                let deleted: Vec<Uuid> = topics.difference(&now).copied().collect();
                topics = now;
                if !deleted.is_empty() {
                    // In a task of its own: each state partition's deletion is a replicated
                    // write that may wait a request timeout, and the tick (lock expiry,
                    // persisting releases) must not wait behind it.
                    let context = Arc::clone(&context);
                    tokio::spawn(async move {
                        context.shares.topics_deleted(&context, &deleted).await;
                    });
                }
            }
        }
    }
}

fn topic_ids(image: &strom_meta::MetadataImage) -> BTreeSet<Uuid> {
    image.topics().map(|t| t.topic_id).collect()
}

fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

fn add_partitions(
    partitions: &mut Vec<(Uuid, i32)>,
    added: &[(Uuid, i32)],
) -> Result<(), ErrorCode> {
    for p in added {
        if !partitions.contains(p) {
            if partitions.len() >= SESSION_PARTITIONS_MAX {
                return Err(ErrorCode::INVALID_REQUEST);
            }
            partitions.push(*p);
        }
    }
    Ok(())
}

fn share_key(group_id: &str, topic_id: Uuid, partition: i32) -> ShareKey {
    ShareKey {
        group_id: group_id.to_string(),
        topic_id: *topic_id.as_bytes(),
        partition,
    }
}

/// Reads the durable state of a new share partition. The group coordinator initializes it
/// (`share_group_jobs.rs`) before it assigns the partition; a share partition only reads
/// it. Without state the fetch is refused as Kafka's is (its share coordinator answers the
/// read INVALID_REQUEST, which the share partition reports as UNKNOWN_SERVER_ERROR); the
/// coordinator initializes it at the group's next heartbeat. State initialized without an
/// offset (-1: by the group coordinator, as Kafka) starts where `share.auto.offset.reset`
/// says, written at the state's epoch before anything is delivered.
async fn create(
    context: &BrokerContext,
    group_id: &str,
    topic_id: Uuid,
    partition: i32,
    log: &Arc<Partition>,
    leader_epoch: i32,
) -> Result<Hosted, ErrorCode> {
    let key = share_key(group_id, topic_id, partition);
    let config = partition_config(context, group_id);
    let Some(state) = crate::share_persister::read(context, &key, leader_epoch).await? else {
        tracing::debug!(group = group_id, %topic_id, partition, "share fetch of a share partition whose state is not initialized");
        return Err(ErrorCode::UNKNOWN_SERVER_ERROR);
    };
    if state.start_offset >= 0 {
        let partition_state = SharePartition::restore(state.start_offset, &state.batches, config)
            .map_err(|error| {
            tracing::error!(group = group_id, %topic_id, partition, %error, "share state refused");
            ErrorCode::UNKNOWN_SERVER_ERROR
        })?;
        return Ok(Hosted {
            persisted_changes: partition_state.changes(),
            partition: partition_state,
            leader_epoch,
            state_epoch: state.state_epoch,
            evicted: false,
        });
    }
    let start = reset_offset(context, group_id, log).await?;
    crate::share_persister::write(
        context,
        &key,
        state.state_epoch,
        leader_epoch,
        start,
        Vec::new(),
    )
    .await?;
    let partition_state = SharePartition::new(start, config);
    Ok(Hosted {
        persisted_changes: partition_state.changes(),
        partition: partition_state,
        leader_epoch,
        state_epoch: state.state_epoch,
        evicted: false,
    })
}

/// Where a share partition without state starts, as `share.auto.offset.reset` says:
/// the high watermark, the log start offset, or the first record stamped at or after now
/// minus the duration (the high watermark when there is none).
async fn reset_offset(
    context: &BrokerContext,
    group_id: &str,
    log: &Arc<Partition>,
) -> Result<i64, ErrorCode> {
    match offset_reset(context, group_id) {
        OffsetReset::Latest => Ok(log.log.high_watermark()),
        OffsetReset::Earliest => Ok(log.log.log_start_offset()),
        OffsetReset::ByDurationMs(duration_ms) => {
            let since = now_ms().saturating_sub(duration_ms);
            let high_watermark = log.log.high_watermark();
            let reading = Arc::clone(log);
            let found =
                tokio::task::spawn_blocking(move || reading.log.offset_for_timestamp(since))
                    .await
                    .map_err(|_| ErrorCode::UNKNOWN_SERVER_ERROR)?
                    .map_err(|e| ErrorCode(e.kafka_error_code()))?;
            Ok(found
                .map(|t| t.offset)
                .filter(|offset| *offset < high_watermark)
                .unwrap_or(high_watermark))
        }
    }
}

/// Writes `next`'s whole state to the share coordinator and waits until it is committed.
async fn persist(
    context: &BrokerContext,
    group_id: &str,
    topic_id: Uuid,
    partition: i32,
    hosted: &Hosted,
    next: &SharePartition,
) -> Result<(), ErrorCode> {
    let key = share_key(group_id, topic_id, partition);
    let batches = next.state_batches();
    let start = next.start_offset();
    let (state_epoch, leader_epoch) = (hosted.state_epoch, hosted.leader_epoch);
    crate::share_persister::write(context, &key, state_epoch, leader_epoch, start, batches).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_share::partition::PartitionConfig;

    fn key(n: i32) -> PartitionKey {
        ("g".to_string(), Uuid::nil(), n)
    }

    fn entry(last_used_ms: i64) -> HostedEntry {
        HostedEntry {
            leader_epoch: 1,
            hosted: Arc::new(tokio::sync::Mutex::new(Hosted {
                partition: SharePartition::new(0, PartitionConfig::default()),
                leader_epoch: 1,
                state_epoch: 0,
                persisted_changes: 0,
                evicted: false,
            })),
            last_used_ms: Arc::new(AtomicI64::new(last_used_ms)),
        }
    }

    fn manager(entries: &[(i32, HostedEntry)], busy: &[i32]) -> ShareManager {
        let shares = ShareManager::default();
        {
            let mut map = shares.partitions.lock().unwrap();
            for (n, e) in entries {
                map.insert(key(*n), e.clone());
            }
            let mut active = shares.active.lock().unwrap();
            active.extend(busy.iter().map(|n| key(*n)));
        }
        shares
    }

    fn hosted_keys(shares: &ShareManager) -> BTreeSet<i32> {
        shares
            .partitions
            .lock()
            .unwrap()
            .keys()
            .map(|k| k.2)
            .collect()
    }

    fn evicted(e: &HostedEntry) -> bool {
        e.hosted.try_lock().unwrap().evicted
    }

    fn make_room(shares: &ShareManager, max: usize, now: i64) -> Result<(), ErrorCode> {
        let mut map = shares.partitions.lock().unwrap();
        shares.make_room(&mut map, max, now)
    }

    /// The least recently used idle share partitions go first, as many as needed, and
    /// never a busy one however old; a busy broker answers the error.
    #[test]
    fn make_room_evicts_the_least_recently_used_idle_ones() {
        let used = [(0, 50), (1, 10), (2, 40), (3, 20), (4, 30), (5, 60)];
        let entries: Vec<(i32, HostedEntry)> = used.iter().map(|(n, t)| (*n, entry(*t))).collect();
        // 1 is the oldest but busy.
        let shares = manager(&entries, &[1]);
        make_room(&shares, 6, 1_000).unwrap();
        assert_eq!(hosted_keys(&shares), BTreeSet::from([0, 1, 2, 4, 5]));
        assert!(evicted(&entries[3].1));
        // Room for one more under a bound of 3: the three least recently used idle go.
        make_room(&shares, 3, 1_000).unwrap();
        assert_eq!(hosted_keys(&shares), BTreeSet::from([1, 5]));
        // Under the bound already: nothing goes.
        make_room(&shares, 3, 1_000).unwrap();
        assert_eq!(hosted_keys(&shares), BTreeSet::from([1, 5]));
        // One in use (its lock held) is passed over for the next.
        let held = entries[5].1.hosted.try_lock().unwrap();
        assert_eq!(
            make_room(&shares, 2, 1_000),
            Err(ErrorCode::UNKNOWN_SERVER_ERROR)
        );
        drop(held);
        assert_eq!(hosted_keys(&shares), BTreeSet::from([1, 5]));
    }

    /// A refusal is remembered briefly (retrying fetches do not repeat the scan) and
    /// forgotten as soon as a share partition stops being busy.
    #[test]
    fn make_room_remembers_a_full_broker_until_one_stops_being_busy() {
        let entries: Vec<(i32, HostedEntry)> = (0..4).map(|n| (n, entry(i64::from(n)))).collect();
        let shares = manager(&entries, &[0, 1, 2, 3]);
        assert_eq!(
            make_room(&shares, 4, 1_000),
            Err(ErrorCode::UNKNOWN_SERVER_ERROR)
        );
        // Idle now, but not through `mark`: the refusal holds until it lapses.
        shares.active.lock().unwrap().clear();
        assert_eq!(
            make_room(&shares, 4, 1_000 + FULL_RETRY_MS - 1),
            Err(ErrorCode::UNKNOWN_SERVER_ERROR)
        );
        assert_eq!(hosted_keys(&shares).len(), 4);
        make_room(&shares, 4, 1_000 + FULL_RETRY_MS).unwrap();
        assert_eq!(hosted_keys(&shares), BTreeSet::from([1, 2, 3]));

        // Full again; one stops being busy (`mark`): room at once.
        shares
            .partitions
            .lock()
            .unwrap()
            .insert(key(0), entries[0].1.clone());
        shares.active.lock().unwrap().extend((0..4).map(key));
        let now = 5_000;
        assert_eq!(
            make_room(&shares, 4, now),
            Err(ErrorCode::UNKNOWN_SERVER_ERROR)
        );
        let hosted = Arc::clone(&entries[2].1.hosted);
        let locked = hosted.try_lock().unwrap();
        shares.mark(&key(2), &hosted, &locked);
        drop(locked);
        make_room(&shares, 4, now).unwrap();
        assert_eq!(hosted_keys(&shares), BTreeSet::from([0, 1, 3]));
    }

    /// The sweep's removal step acts only on the copy it examined: one created again
    /// meanwhile stays, an idle one used meanwhile stays, one in use is not evicted for
    /// idleness; one no longer led goes even while in use.
    #[test]
    fn sweep_removes_only_the_copies_it_found_to_go() {
        let idle_ms = 100;
        let now = 1_000;
        let entries: Vec<(i32, HostedEntry)> = (0..6).map(|n| (n, entry(0))).collect();
        let shares = manager(&entries, &[]);
        let going = |n: i32, why: Sweep| (key(n), Arc::clone(&entries[n as usize].1.hosted), why);
        // 0: no longer led, but a new copy took its place since.
        let replacement = entry(now);
        shares
            .partitions
            .lock()
            .unwrap()
            .insert(key(0), replacement.clone());
        // 1: idle when examined, used since.
        entries[1].1.last_used_ms.store(now, Ordering::Relaxed);
        // 3: no longer led and in use; 4: idle and in use.
        let held3 = entries[3].1.hosted.try_lock().unwrap();
        let held4 = entries[4].1.hosted.try_lock().unwrap();
        // 5: idle and busy.
        shares.active.lock().unwrap().insert(key(5));
        shares.sweep_remove(
            vec![
                going(0, Sweep::NotLed),
                going(1, Sweep::Idle),
                going(2, Sweep::Idle),
                going(3, Sweep::NotLed),
                going(4, Sweep::Idle),
                going(5, Sweep::Idle),
            ],
            now,
            idle_ms,
        );
        drop((held3, held4));
        assert_eq!(hosted_keys(&shares), BTreeSet::from([0, 1, 4, 5]));
        assert!(Arc::ptr_eq(
            &shares.partitions.lock().unwrap()[&key(0)].hosted,
            &replacement.hosted
        ));
        assert!(!evicted(&replacement));
        assert!(evicted(&entries[2].1));
        for kept in [1, 4, 5] {
            assert!(!evicted(&entries[kept].1), "{kept}");
        }
    }
}
