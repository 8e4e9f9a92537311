//! The follower fetchers: for every partition this broker follows, a task fetches it from
//! the leader over the inter-broker listener and appends what comes back, verbatim (Kafka's
//! `ReplicaFetcherThread`). `num.replica.fetchers` tasks per source broker, each sending one
//! sessionless Fetch at a time for all of its partitions.
//!
//! Each fetch names the follower's log end offset and its last fetched epoch (the latest in
//! its leader-epoch cache, Fetch v12+), and the follower's identity (`replica_id`, or from
//! v15 `ReplicaState` with its broker epoch). The leader answers records from there, or the
//! epoch where the logs part (a diverging epoch), after which the follower truncates
//! (strom-replica's `truncation_on_divergence`) before it fetches again. Out of range, it
//! asks the leader's log start and end (ListOffsets as a replica) and truncates to the end,
//! or starts over at the start. Under sync-on-commit a fetched batch is fsynced before the
//! next fetch, so the offset the leader hears is durable here. The high watermark a
//! follower learns is the leader's, never above its own log.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use strom_meta::TopicIdPartition;
use strom_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use strom_protocol::messages::fetch_response::PartitionData;
use strom_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use strom_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, TopicName,
};
use strom_protocol::{ErrorCode, StrBytes};
use strom_replica::{follower_high_watermark, truncation_on_divergence, EpochEndOffset};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::BrokerConfig;
use crate::metadata::{now_ms, MetadataPort};
use crate::partition::{AppendError, Partition};
use crate::peer::{PeerConnection, PeerError};
use crate::throttle::{self, RateMeter, ReplicationQuotas, Side};

/// The newest Fetch version the fetcher sends (ReplicaState and topic ids).
const FETCH_VERSION_MAX: i16 = 17;
/// The newest ListOffsets version the fetcher sends.
const LIST_OFFSETS_VERSION_MAX: i16 = 7;
/// ListOffsets timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
/// Head room over the response limit for one batch larger than it (always returned whole)
/// and the response's own fields.
const FRAME_HEADROOM_BYTES: usize = 64 * 1024 * 1024;

/// What every fetcher needs, set once the broker has started.
struct Env {
    metadata: Arc<dyn MetadataPort>,
    broker_epoch: Arc<AtomicI64>,
    shutdown: watch::Receiver<bool>,
}

/// A partition a fetcher copies.
#[derive(Clone)]
struct Assigned {
    partition: Arc<Partition>,
    epoch: i32,
    retry_at: Option<Instant>,
}

/// What one fetcher task shares with the manager.
struct Shared {
    leader: i32,
    index: usize,
    partitions: Mutex<BTreeMap<TopicIdPartition, Assigned>>,
    wake: Notify,
}

struct Handle {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// The fetcher tasks, by (source broker, index).
pub struct Fetchers {
    config: Arc<BrokerConfig>,
    /// The replication throttle meters of this broker (the Fetch handler uses the leader's).
    pub(crate) quotas: Arc<ReplicationQuotas>,
    env: OnceLock<Arc<Env>>,
    tasks: Mutex<HashMap<(i32, usize), Handle>>,
}

impl std::fmt::Debug for Fetchers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetchers").finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Fetchers {
    pub(crate) fn new(config: Arc<BrokerConfig>) -> Fetchers {
        Fetchers {
            config,
            quotas: Arc::new(ReplicationQuotas::default()),
            env: OnceLock::new(),
            tasks: Mutex::new(HashMap::new()),
        }
    }

    /// Gives the fetchers what they need to run; before this, assignments are ignored.
    pub(crate) fn start(
        &self,
        metadata: Arc<dyn MetadataPort>,
        broker_epoch: Arc<AtomicI64>,
        shutdown: watch::Receiver<bool>,
    ) {
        let _ = self.env.set(Arc::new(Env {
            metadata,
            broker_epoch,
            shutdown,
        }));
    }

    /// Copies `partition` from `leader` in `epoch` (moving it from any other fetcher).
    /// Must run inside the tokio runtime (a fetcher task may be spawned).
    pub(crate) fn assign(&self, partition: &Arc<Partition>, leader: i32, epoch: i32) {
        let Some(env) = self.env.get() else {
            return;
        };
        let tp = partition.tp;
        let count = self.config.num_replica_fetchers.max(1);
        let index = (tp.topic_id.as_u128() as usize ^ tp.partition as usize) % count;
        let mut tasks = lock(&self.tasks);
        let current = tasks.iter().find_map(|(key, handle)| {
            lock(&handle.shared.partitions)
                .get(&tp)
                .map(|a| (*key, a.epoch, Arc::ptr_eq(&a.partition, partition)))
        });
        if current == Some(((leader, index), epoch, true)) {
            return;
        }
        remove_from(&mut tasks, tp);
        let handle = tasks.entry((leader, index)).or_insert_with(|| {
            let shared = Arc::new(Shared {
                leader,
                index,
                partitions: Mutex::new(BTreeMap::new()),
                wake: Notify::new(),
            });
            let task = tokio::spawn(run(
                Arc::clone(&shared),
                Arc::clone(&self.config),
                Arc::clone(env),
                Arc::clone(&self.quotas),
            ));
            Handle { shared, task }
        });
        lock(&handle.shared.partitions).insert(
            tp,
            Assigned {
                partition: Arc::clone(partition),
                epoch,
                retry_at: None,
            },
        );
        handle.shared.wake.notify_one();
    }

    /// Stops copying `tp`.
    pub(crate) fn remove(&self, tp: TopicIdPartition) {
        remove_from(&mut lock(&self.tasks), tp);
    }

    /// Stops every fetcher (shutdown).
    pub(crate) fn stop_all(&self) {
        for (_, handle) in lock(&self.tasks).drain() {
            handle.task.abort();
        }
    }
}

/// Removes `tp` from whichever fetcher has it; a fetcher left empty stops.
fn remove_from(tasks: &mut HashMap<(i32, usize), Handle>, tp: TopicIdPartition) {
    let mut emptied = Vec::new();
    for (key, handle) in tasks.iter() {
        let mut partitions = lock(&handle.shared.partitions);
        if partitions.remove(&tp).is_some() && partitions.is_empty() {
            emptied.push(*key);
        }
    }
    for key in emptied {
        if let Some(handle) = tasks.remove(&key) {
            handle.task.abort();
        }
    }
}

/// One fetcher: fetch, apply, repeat, with a backoff per partition after errors.
async fn run(
    shared: Arc<Shared>,
    config: Arc<BrokerConfig>,
    env: Arc<Env>,
    quotas: Arc<ReplicationQuotas>,
) {
    let mut shutdown = env.shutdown.clone();
    let mut connection: Option<PeerConnection> = None;
    let backoff = Duration::from_millis(config.replica_fetch_backoff_ms);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let now = Instant::now();
        let (ready, next_retry) = {
            let partitions = lock(&shared.partitions);
            let ready: Vec<(TopicIdPartition, Assigned)> = partitions
                .iter()
                .filter(|(_, a)| a.retry_at.is_none_or(|at| at <= now))
                .map(|(tp, a)| (*tp, a.clone()))
                .collect();
            let next_retry = partitions.values().filter_map(|a| a.retry_at).min();
            (ready, next_retry)
        };
        if ready.is_empty() {
            let wait = next_retry.unwrap_or(now + Duration::from_secs(1));
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep_until(wait) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            continue;
        }
        if connection.is_none() {
            match connect(&shared, &config, &env).await {
                Ok(c) => connection = Some(c),
                Err(error) => {
                    tracing::info!(leader = shared.leader, %error, "replica fetcher cannot connect; backing off");
                    delay(&shared, ready.iter().map(|(tp, _)| *tp), backoff);
                    continue;
                }
            }
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        let (ready, throttled) = follower_throttle(&shared, &config, &env, &quotas, ready, backoff);
        if ready.is_empty() {
            continue;
        }
        match fetch_once(conn, &config, &env, &ready, (&throttled, &quotas.follower)).await {
            Ok(outcomes) => {
                for (tp, outcome) in outcomes {
                    match outcome {
                        Outcome::Done => {}
                        Outcome::Backoff => delay(&shared, [tp], backoff),
                    }
                }
            }
            Err(error) => {
                tracing::info!(leader = shared.leader, %error, "replica fetch failed; reconnecting");
                connection = None;
                delay(&shared, ready.iter().map(|(tp, _)| *tp), backoff);
            }
        }
    }
}

/// The follower throttle (Kafka's `shouldFollowerThrottle`): the partitions of `ready` that
/// `follower.replication.throttled.replicas` lists for this broker while it is outside
/// their ISR, when `follower.replication.throttled.rate` is set. While the bytes fetched for
/// such partitions are over that rate they are left out of the fetch and retried after
/// `backoff`. Returns the partitions to fetch and which of them count against the rate.
fn follower_throttle(
    shared: &Shared,
    config: &BrokerConfig,
    env: &Env,
    quotas: &ReplicationQuotas,
    mut ready: Vec<(TopicIdPartition, Assigned)>,
    backoff: Duration,
) -> (Vec<(TopicIdPartition, Assigned)>, HashSet<TopicIdPartition>) {
    let image = env.metadata.image();
    let node = config.node_id;
    let Some(limit) = throttle::rate_limit(&image, node, Side::Follower) else {
        return (ready, HashSet::new());
    };
    let throttled: HashSet<TopicIdPartition> = ready
        .iter()
        .filter(|(tp, a)| {
            image
                .partition(tp.topic_id, tp.partition)
                .is_some_and(|p| !p.isr.contains(&node))
                && throttle::is_throttled(
                    &image,
                    &a.partition.topic,
                    tp.partition,
                    node,
                    Side::Follower,
                )
        })
        .map(|(tp, _)| *tp)
        .collect();
    if !throttled.is_empty() && quotas.follower.exceeds(limit, std::time::Instant::now()) {
        delay(shared, throttled.iter().copied(), backoff);
        ready.retain(|(tp, _)| !throttled.contains(tp));
    }
    (ready, throttled)
}

fn delay(shared: &Shared, tps: impl IntoIterator<Item = TopicIdPartition>, backoff: Duration) {
    let at = Instant::now() + backoff;
    let mut partitions = lock(&shared.partitions);
    for tp in tps {
        if let Some(assigned) = partitions.get_mut(&tp) {
            assigned.retry_at = Some(at);
        }
    }
}

/// Connects to the leader's inter-broker listener, as registered in the image.
async fn connect(
    shared: &Shared,
    config: &BrokerConfig,
    env: &Env,
) -> Result<PeerConnection, PeerError> {
    let image = env.metadata.image();
    let unavailable = |reason: String| PeerError::Io {
        addr: format!("broker {}", shared.leader),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, reason),
    };
    let addr = inter_broker_addr(&image, shared.leader, config).map_err(unavailable)?;
    let frame_bytes_max = usize::try_from(config.replica_fetch_response_max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(FRAME_HEADROOM_BYTES);
    let client_id = format!(
        "strom-replica-fetcher-{}-{}-{}",
        config.node_id, shared.leader, shared.index
    );
    PeerConnection::connect(
        &addr,
        client_id,
        config.replica_socket_timeout_ms,
        frame_bytes_max,
        &config.listeners.inter_broker_client,
    )
    .await
}

/// The `host:port` of `broker`'s `inter.broker.listener.name` endpoint in `image` (an IPv6
/// host in brackets), or why there is none. The scrubber's repair connects the same way.
pub(crate) fn inter_broker_addr(
    image: &strom_meta::MetadataImage,
    broker: i32,
    config: &BrokerConfig,
) -> Result<String, String> {
    let registration = image
        .broker(broker)
        .ok_or_else(|| "not registered".to_string())?;
    let endpoint = registration
        .endpoints
        .iter()
        .find(|e| e.listener_name == config.inter_broker_listener_name)
        .ok_or_else(|| {
            format!(
                "no {} listener registered (inter.broker.listener.name)",
                config.inter_broker_listener_name
            )
        })?;
    Ok(if endpoint.host.contains(':') {
        format!("[{}]:{}", endpoint.host, endpoint.port)
    } else {
        format!("{}:{}", endpoint.host, endpoint.port)
    })
}

/// What became of one partition in one round.
enum Outcome {
    /// Fetch it again at once.
    Done,
    /// Wait `replica.fetch.backoff.ms` first.
    Backoff,
}

/// One Fetch for `ready`, and what its answers did.
async fn fetch_once(
    conn: &mut PeerConnection,
    config: &BrokerConfig,
    env: &Env,
    ready: &[(TopicIdPartition, Assigned)],
    (throttled, meter): (&HashSet<TopicIdPartition>, &RateMeter),
) -> Result<Vec<(TopicIdPartition, Outcome)>, PeerError> {
    let version = conn.version_of::<FetchRequest>(FETCH_VERSION_MAX)?;
    let request = fetch_request(config, env, ready, version);
    let timeout_ms = config
        .replica_socket_timeout_ms
        .saturating_add(config.replica_fetch_wait_max_ms);
    let response = conn.send(&request, version, timeout_ms).await?;
    if response.error_code != 0 {
        return Ok(ready
            .iter()
            .map(|(tp, _)| (*tp, Outcome::Backoff))
            .collect());
    }
    let by_tp = answers(response, ready, version);
    let mut outcomes = Vec::with_capacity(ready.len());
    let mut out_of_range = Vec::new();
    let mut to_apply = Vec::new();
    for (tp, assigned) in ready {
        match by_tp.get(tp) {
            None => outcomes.push((*tp, Outcome::Backoff)),
            Some(data) if data.error_code == ErrorCode::OFFSET_OUT_OF_RANGE.code() => {
                out_of_range.push((*tp, assigned.clone()))
            }
            Some(data) if data.error_code != 0 => {
                tracing::debug!(topic = %assigned.partition.topic, partition = tp.partition,
                    error = data.error_code, "replica fetch error; backing off");
                outcomes.push((*tp, Outcome::Backoff));
            }
            Some(data) => to_apply.push((*tp, assigned.clone(), data.clone())),
        }
    }
    // Bytes fetched for throttled partitions count against the follower rate.
    let throttled_bytes: u64 = to_apply
        .iter()
        .filter(|(tp, _, _)| throttled.contains(tp))
        .map(|(_, _, data)| data.records.as_ref().map_or(0, |r| r.len() as u64))
        .sum();
    meter.record(throttled_bytes, std::time::Instant::now());
    if !to_apply.is_empty() {
        let applied = tokio::task::spawn_blocking(move || {
            to_apply
                .into_iter()
                .map(|(tp, assigned, data)| (tp, apply(&assigned, &data)))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        outcomes.extend(applied);
    }
    for (tp, assigned) in out_of_range {
        let outcome = out_of_range_reset(conn, config, &assigned).await?;
        outcomes.push((tp, outcome));
    }
    Ok(outcomes)
}

fn fetch_request(
    config: &BrokerConfig,
    env: &Env,
    ready: &[(TopicIdPartition, Assigned)],
    version: i16,
) -> FetchRequest {
    let mut topics: BTreeMap<uuid::Uuid, FetchTopic> = BTreeMap::new();
    for (tp, assigned) in ready {
        let log = &assigned.partition.log;
        let partition = FetchPartition::default()
            .with_partition(tp.partition)
            .with_current_leader_epoch(assigned.epoch)
            .with_fetch_offset(log.log_end_offset())
            .with_last_fetched_epoch(log.latest_epoch().unwrap_or(-1))
            .with_log_start_offset(log.log_start_offset())
            .with_partition_max_bytes(
                i32::try_from(config.replica_fetch_max_bytes).unwrap_or(i32::MAX),
            );
        topics
            .entry(tp.topic_id)
            .or_insert_with(|| {
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(
                        assigned.partition.topic.clone(),
                    )))
                    .with_topic_id(tp.topic_id)
            })
            .partitions
            .push(partition);
    }
    let replica_id = BrokerId(config.node_id);
    let request = FetchRequest::default()
        .with_max_wait_ms(i32::try_from(config.replica_fetch_wait_max_ms).unwrap_or(i32::MAX))
        .with_min_bytes(i32::try_from(config.replica_fetch_min_bytes).unwrap_or(i32::MAX))
        .with_max_bytes(i32::try_from(config.replica_fetch_response_max_bytes).unwrap_or(i32::MAX))
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics.into_values().collect());
    if version >= 15 {
        request.with_replica_state(
            ReplicaState::default()
                .with_replica_id(replica_id)
                .with_replica_epoch(env.broker_epoch.load(Ordering::Acquire)),
        )
    } else {
        request.with_replica_id(replica_id)
    }
}

/// The response's partitions by topic-partition (topics by id from v13, by name before).
fn answers(
    response: FetchResponse,
    ready: &[(TopicIdPartition, Assigned)],
    version: i16,
) -> HashMap<TopicIdPartition, PartitionData> {
    let mut out = HashMap::new();
    for topic in response.responses {
        let topic_id = if version >= 13 {
            Some(topic.topic_id)
        } else {
            ready
                .iter()
                .find(|(_, a)| a.partition.topic == topic.topic.0.as_str())
                .map(|(tp, _)| tp.topic_id)
        };
        let Some(topic_id) = topic_id else {
            continue;
        };
        for data in topic.partitions {
            let tp = TopicIdPartition {
                topic_id,
                partition: data.partition_index,
            };
            out.insert(tp, data);
        }
    }
    out
}

/// Applies one partition's answer (blocking): truncate at a diverging epoch, or append the
/// records and take the high watermark and log start the leader reported.
fn apply(assigned: &Assigned, data: &PartitionData) -> Outcome {
    let partition = &assigned.partition;
    let epoch = assigned.epoch;
    let now = now_ms();
    let log = &partition.log;
    let diverging = EpochEndOffset {
        epoch: data.diverging_epoch.epoch,
        end_offset: data.diverging_epoch.end_offset,
    };
    if diverging.epoch >= 0 || diverging.end_offset >= 0 {
        let local = log
            .end_offset_for_epoch(diverging.epoch)
            .map(|e| EpochEndOffset {
                epoch: e.epoch,
                end_offset: e.start_offset,
            });
        let cut =
            truncation_on_divergence(diverging, local, log.log_end_offset(), log.high_watermark());
        tracing::info!(topic = %partition.topic, partition = partition.tp.partition,
            leader_epoch = epoch, diverging_epoch = diverging.epoch,
            diverging_end_offset = diverging.end_offset, truncate_to = cut.offset,
            log_end_offset = log.log_end_offset(), "diverged from the leader; truncating");
        return outcome_of(
            partition,
            partition.truncate_replica(cut.offset, epoch, now),
        );
    }
    let records: Bytes = data.records.clone().unwrap_or_default();
    if !records.is_empty() {
        let appended = match partition.append_replicated(&records, epoch, now) {
            Err(AppendError::Log(strom_log::LogError::UnexpectedAppendOffset {
                base_offset,
                log_end_offset,
            })) if base_offset < log_end_offset && log_end_offset == log.log_start_offset() => {
                // The leader's log start lies inside a batch (DeleteRecords): the follower
                // starts where that batch does, as Kafka's does.
                partition
                    .restart_replica_at(base_offset, epoch, now)
                    .and_then(|()| partition.append_replicated(&records, epoch, now))
            }
            other => other,
        };
        if let Err(error) = appended {
            return outcome_of(partition, Err(error));
        }
    }
    let high_watermark = follower_high_watermark(data.high_watermark, log.log_end_offset());
    partition.set_follower_high_watermark(epoch, high_watermark);
    if data.log_start_offset > log.log_start_offset() {
        partition.follow_log_start(epoch, data.log_start_offset, now);
    }
    Outcome::Done
}

fn outcome_of(partition: &Partition, result: Result<(), AppendError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Done,
        Err(AppendError::NotLeader { .. }) => Outcome::Backoff,
        Err(error) => {
            tracing::warn!(topic = %partition.topic, partition = partition.tp.partition,
                %error, "cannot apply fetched data; backing off");
            Outcome::Backoff
        }
    }
}

/// OFFSET_OUT_OF_RANGE: the follower is past the leader's end (an unclean election cut
/// it) or before its start (retention or DeleteRecords removed what it lacks). Kafka's
/// answer: truncate to the leader's end, or start over at the leader's start.
async fn out_of_range_reset(
    conn: &mut PeerConnection,
    config: &BrokerConfig,
    assigned: &Assigned,
) -> Result<Outcome, PeerError> {
    let partition = Arc::clone(&assigned.partition);
    let epoch = assigned.epoch;
    let Some(leader_end) = list_offset(conn, config, assigned, LATEST).await? else {
        return Ok(Outcome::Backoff);
    };
    let local_end = partition.log.log_end_offset();
    if local_end > leader_end {
        let truncating = Arc::clone(&partition);
        let result = tokio::task::spawn_blocking(move || {
            truncating.truncate_replica(leader_end, epoch, now_ms())
        })
        .await;
        return Ok(joined(&partition, result));
    }
    let Some(leader_start) = list_offset(conn, config, assigned, EARLIEST).await? else {
        return Ok(Outcome::Backoff);
    };
    if local_end < leader_start {
        tracing::info!(topic = %partition.topic, partition = partition.tp.partition,
            local_end, leader_start, "behind the leader's log start; starting over there");
        let restarting = Arc::clone(&partition);
        let result = tokio::task::spawn_blocking(move || {
            restarting.restart_replica_at(leader_start, epoch, now_ms())
        })
        .await;
        return Ok(joined(&partition, result));
    }
    Ok(Outcome::Backoff)
}

fn joined(
    partition: &Partition,
    result: Result<Result<(), AppendError>, tokio::task::JoinError>,
) -> Outcome {
    match result {
        Ok(result) => outcome_of(partition, result),
        Err(_) => Outcome::Backoff,
    }
}

/// The leader's earliest or latest offset, asked as a replica (its log end, not its high
/// watermark); `None` if it answered with an error.
async fn list_offset(
    conn: &mut PeerConnection,
    config: &BrokerConfig,
    assigned: &Assigned,
    timestamp: i64,
) -> Result<Option<i64>, PeerError> {
    let version = conn.version_of::<ListOffsetsRequest>(LIST_OFFSETS_VERSION_MAX)?;
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(config.node_id))
        .with_isolation_level(0)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(
                assigned.partition.topic.clone(),
            )))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(assigned.partition.tp.partition)
                .with_current_leader_epoch(assigned.epoch)
                .with_timestamp(timestamp)])]);
    let response = conn
        .send(&request, version, config.replica_socket_timeout_ms)
        .await?;
    let found = response
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == assigned.partition.tp.partition);
    Ok(found.filter(|p| p.error_code == 0).map(|p| p.offset))
}
