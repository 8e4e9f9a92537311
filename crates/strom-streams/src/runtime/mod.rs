//! The runtime: [`KafkaStreams`] runs a topology against a Kafka-compatible cluster.
//!
//! Start-up creates the internal topics (`topics.rs`), restores global stores
//! (`global.rs`), then starts `num.stream.threads` stream threads (`thread.rs`), each a
//! member of the consumer group `application.id` with the Streams-aware assignor
//! (`assignor.rs`), its own producer, and a restore consumer for changelogs. With
//! `group.protocol=streams` each thread is instead a member of the KIP-1071 streams group
//! `application.id` (`streams_group.rs`): the broker assigns the tasks and creates the
//! internal topics, and the thread assigns its consumer the partitions of its tasks. Interactive
//! queries read the stores of the running active tasks of this instance; the assignment
//! tells every instance which host runs which task, so a key's host can be found.

mod assignor;
mod config;
mod global;
mod streams_group;
mod thread;
mod topics;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use strom_client::producer::partitioner::partition_for_key;
use strom_client::{Admin, TopicPartition};
use tokio::task::JoinHandle;

pub use config::{GroupProtocol, ProcessingGuarantee, StreamsConfig};

use crate::error::{Result, StreamsError};
use crate::processor::declared_serdes;
use crate::serdes::SerdeRef;
use crate::state::typed::{KeyValueStore, WindowStore};
use crate::state::{StoreCell, StoreKind};
use crate::task::TaskId;
use crate::topology::{TopicName, Topology};
use crate::windows::Window;

/// The application's state, as Kafka Streams reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StreamsState {
    Created,
    /// Joining the group, or restoring state before processing.
    Rebalancing,
    Running,
    PendingShutdown,
    NotRunning,
    /// A thread failed; the application stopped (see [`KafkaStreams::error`]).
    Error,
}

/// Counters and gauges of this instance, read with [`KafkaStreams::metrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    pub records_processed: u64,
    pub records_dropped_late: u64,
    pub records_skipped: u64,
    pub punctuations: u64,
    pub commits: u64,
    /// Changelog records applied while restoring or as a standby.
    pub records_restored: u64,
    pub active_tasks: Vec<TaskId>,
    pub standby_tasks: Vec<TaskId>,
    /// Per input partition: records between the committed position and the end, as of
    /// the last commit.
    pub lag: BTreeMap<TopicPartition, i64>,
    /// Approximate entries per store, summed over this instance's active tasks.
    pub store_entries: BTreeMap<String, u64>,
}

/// Where a key of a store lives (for interactive queries across instances).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQueryMetadata {
    /// `application.server` of the instance running the key's task (`None`: unknown).
    pub active_host: Option<String>,
    pub standby_hosts: Vec<String>,
    pub partition: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadState {
    Starting,
    Rebalancing,
    Running,
    Dead,
}

/// `application.server` -> (active tasks, standby tasks).
pub(crate) type HostMap = BTreeMap<String, (Vec<TaskId>, Vec<TaskId>)>;

/// What the threads and the application handle share.
pub(crate) struct Shared {
    pub topology: Arc<Topology>,
    pub config: StreamsConfig,
    pub process_id: String,
    stop: AtomicBool,
    pub globals: HashMap<String, StoreCell>,
    /// Stores of running active tasks, per task.
    pub stores: Mutex<BTreeMap<TaskId, Vec<(String, StoreCell)>>>,
    pub hosts: Mutex<HostMap>,
    pub threads: Mutex<Vec<ThreadState>>,
    pub metrics: Mutex<Vec<Metrics>>,
    pub task_counts: Mutex<Vec<i32>>,
    /// Partitions of the topology's topics as planned at start (source topics described,
    /// internal ones worked out): what a streams group heartbeat declares.
    pub partitions: Mutex<BTreeMap<TopicName, i32>>,
    pub error: Mutex<Option<StreamsError>>,
    started: AtomicBool,
    /// The state last reported to the state listener, and the listener.
    listener: Mutex<(StreamsState, Option<StateListener>)>,
    /// The handler of a failed thread's error (`None`: shut down this instance).
    exception_handler: Mutex<Option<UncaughtExceptionHandler>>,
}

/// Called with `(new, old)` on every change of [`KafkaStreams::state`] (Kafka Streams'
/// `KafkaStreams.StateListener`). It runs on the thread that made the change, while
/// further changes wait: keep it short.
pub type StateListener = Box<dyn Fn(StreamsState, StreamsState) + Send + Sync>;

/// What to do when a stream thread fails (Kafka Streams'
/// `StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamThreadExceptionResponse {
    /// Stop this instance (every thread of it); the state becomes `Error`. The default.
    ShutdownClient,
    /// Stop every instance of the application: under `group.protocol=streams` the failing
    /// thread's last heartbeat sets `ShutdownApplication`, the broker reports the
    /// SHUTDOWN_APPLICATION status to every member, and each instance stops with
    /// [`StreamsError::ApplicationShutdown`]. Under `classic` only this instance stops
    /// (logged): the classic assignor carries no shutdown request here.
    ShutdownApplication,
}

/// Called with the error a stream thread failed with (Kafka Streams'
/// `StreamsUncaughtExceptionHandler`); not called when the group asked the application
/// to shut down. It runs on the failing thread: keep it short.
pub type UncaughtExceptionHandler =
    Box<dyn Fn(&StreamsError) -> StreamThreadExceptionResponse + Send + Sync>;

pub(crate) fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Shared {
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub(crate) fn set_thread(&self, i: usize, s: ThreadState) {
        if let Some(t) = guard(&self.threads).get_mut(i) {
            *t = s;
        }
        self.notify();
    }

    /// What the application's handler says to do about a thread's failure `e`
    /// (shut down this instance when no handler is set, as Kafka Streams' default).
    pub(crate) fn on_thread_error(&self, e: &StreamsError) -> StreamThreadExceptionResponse {
        if matches!(e, StreamsError::ApplicationShutdown(_)) {
            return StreamThreadExceptionResponse::ShutdownClient;
        }
        match &*guard(&self.exception_handler) {
            Some(handler) => handler(e),
            None => StreamThreadExceptionResponse::ShutdownClient,
        }
    }

    pub(crate) fn fail(&self, e: StreamsError) {
        {
            let mut err = guard(&self.error);
            if err.is_none() {
                *err = Some(e);
            }
        }
        self.stop.store(true, Ordering::SeqCst);
        self.notify();
    }

    /// The application's state, from the threads' states, the error and the stop flag.
    fn state(&self) -> StreamsState {
        if guard(&self.error).is_some() {
            return StreamsState::Error;
        }
        if !self.started.load(Ordering::SeqCst) {
            return StreamsState::Created;
        }
        let threads = guard(&self.threads).clone();
        if self.stopping() {
            return if threads.iter().all(|t| *t == ThreadState::Dead) {
                StreamsState::NotRunning
            } else {
                StreamsState::PendingShutdown
            };
        }
        if threads.iter().all(|t| *t == ThreadState::Running) {
            StreamsState::Running
        } else {
            StreamsState::Rebalancing
        }
    }

    /// Tells the state listener about a change of state. Called after every change of
    /// what [`Shared::state`] reads; the lock makes the listener see the changes in the
    /// order they were made, each once (a short rebalance is seen even when it is over
    /// before anyone polls the state).
    fn notify(&self) {
        let mut listener = guard(&self.listener);
        let new = self.state();
        let old = listener.0;
        if new != old {
            tracing::debug!(process = %self.process_id, ?old, ?new, "state changed");
            listener.0 = new;
            if let Some(f) = &listener.1 {
                f(new, old);
            }
        }
    }
}

/// A running Strom Streams application instance.
pub struct KafkaStreams {
    shared: Arc<Shared>,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl KafkaStreams {
    /// Checks the configuration. Under exactly_once_v2 the process id is read from (or
    /// written to) the state directory, so a restarted instance keeps its transactional
    /// ids (see `state::checkpoint::process_id`).
    pub fn new(topology: Topology, config: StreamsConfig) -> Result<Self> {
        if config.application_id.is_empty() {
            return Err(StreamsError::config("application.id", "must not be empty"));
        }
        if config.num_stream_threads == 0 {
            return Err(StreamsError::config(
                "num.stream.threads",
                "must be at least 1",
            ));
        }
        let mut globals = HashMap::new();
        for g in &topology.globals {
            if let Some(spec) = topology.stores.get(&g.store) {
                globals.insert(g.store.clone(), spec.open(None)?);
            }
        }
        config.check()?;
        let threads = config.num_stream_threads;
        // Kept in the state directory under exactly_once_v2 (the transactional ids) and
        // for a static member (a restart rejoins with the same member metadata, so the
        // group's epoch does not move).
        let process_id = if config.exactly_once() || config.group_instance_id.is_some() {
            crate::state::checkpoint::process_id(&config.state_dir.join(&config.application_id))?
        } else {
            uuid::Uuid::new_v4().to_string()
        };
        Ok(KafkaStreams {
            shared: Arc::new(Shared {
                topology: Arc::new(topology),
                config,
                process_id,
                stop: AtomicBool::new(false),
                globals,
                stores: Mutex::new(BTreeMap::new()),
                hosts: Mutex::new(BTreeMap::new()),
                threads: Mutex::new(vec![ThreadState::Starting; threads]),
                metrics: Mutex::new(vec![Metrics::default(); threads]),
                task_counts: Mutex::new(Vec::new()),
                partitions: Mutex::new(BTreeMap::new()),
                error: Mutex::new(None),
                started: AtomicBool::new(false),
                listener: Mutex::new((StreamsState::Created, None)),
                exception_handler: Mutex::new(None),
            }),
            handles: Mutex::new(Vec::new()),
        })
    }

    /// Creates internal topics, restores global stores and starts the stream threads
    /// (processing begins once the group has assigned tasks and their state is restored;
    /// see [`KafkaStreams::wait_until_running`]).
    pub async fn start(&self) -> Result<()> {
        if self.shared.started.swap(true, Ordering::SeqCst) {
            return Err(StreamsError::NotRunning(
                "already started (an instance starts once)".into(),
            ));
        }
        self.shared.notify();
        let admin = Admin::new(self.shared.config.admin()?)?;
        if self.shared.config.group_protocol == GroupProtocol::Streams {
            // The broker creates the internal topics and reports missing source topics
            // (status MISSING_SOURCE_TOPICS): what can be planned now is only declared.
            match topics::plan(&admin, &self.shared.topology).await {
                Ok((partitions, counts)) => {
                    *guard(&self.shared.partitions) = partitions;
                    *guard(&self.shared.task_counts) = counts;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the topology's partitions cannot be planned yet; the streams group will report what is missing")
                }
            }
        } else {
            let counts = topics::prepare(&admin, &self.shared.topology, &self.shared.config).await;
            let counts = match counts {
                Ok(c) => c,
                Err(e) => {
                    self.shared.fail(e.clone());
                    return Err(e);
                }
            };
            *guard(&self.shared.task_counts) = counts;
        }
        let global = global::GlobalRunner::bootstrap(&self.shared, &admin).await?;
        admin.close().await;
        let mut handles = guard(&self.handles);
        if let Some(g) = global {
            let shared = self.shared.clone();
            handles.push(tokio::spawn(async move {
                if let Err(e) = g.run(shared.clone()).await {
                    tracing::error!(error = %e, "global store thread failed");
                    shared.fail(e);
                }
            }));
        }
        for i in 0..self.shared.config.num_stream_threads {
            let t = thread::StreamThread::new(i, self.shared.clone())?;
            handles.push(tokio::spawn(t.run()));
        }
        Ok(())
    }

    /// Stops the threads: each commits what it processed, writes its checkpoints and
    /// leaves the group. Returns the error a thread failed with, if any. Unbounded: with
    /// the cluster unreachable this waits for the clients' own timeouts; see
    /// [`KafkaStreams::close_with_timeout`].
    pub async fn close(&self) -> Result<()> {
        self.close_with_timeout(Duration::MAX).await
    }

    /// As [`KafkaStreams::close`], but threads still closing after `timeout` are aborted
    /// (what they processed since their last commit is processed again after a restart).
    pub async fn close_with_timeout(&self, timeout: Duration) -> Result<()> {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.notify();
        let handles: Vec<JoinHandle<()>> = guard(&self.handles).drain(..).collect();
        let deadline = Instant::now().checked_add(timeout);
        let mut timed_out = false;
        for mut h in handles {
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if tokio::time::timeout(left, &mut h).await.is_err() {
                h.abort();
                timed_out = true;
            }
        }
        if timed_out {
            guard(&self.shared.threads)
                .iter_mut()
                .for_each(|t| *t = ThreadState::Dead);
            self.shared.notify();
            return Err(StreamsError::NotRunning(format!(
                "threads still closing after {timeout:?} were aborted (no final commit)"
            )));
        }
        match guard(&self.shared.error).clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub fn state(&self) -> StreamsState {
        self.shared.state()
    }

    /// Sets the listener told of every change of [`KafkaStreams::state`] as
    /// `(new, old)`, each change once and in order, on the thread that made it (so it
    /// must be quick and must not call back into this instance's locks). Only before
    /// [`KafkaStreams::start`], as Kafka Streams requires.
    pub fn set_state_listener(
        &self,
        listener: impl Fn(StreamsState, StreamsState) + Send + Sync + 'static,
    ) -> Result<()> {
        if self.shared.started.load(Ordering::SeqCst) {
            return Err(StreamsError::NotRunning(
                "set_state_listener after start (set it while the state is Created)".into(),
            ));
        }
        guard(&self.shared.listener).1 = Some(Box::new(listener));
        Ok(())
    }

    /// Sets the handler asked what to do when a stream thread fails (Kafka Streams'
    /// `setUncaughtExceptionHandler`); without one the instance shuts down. Only before
    /// [`KafkaStreams::start`], as Kafka Streams requires.
    pub fn set_uncaught_exception_handler(
        &self,
        handler: impl Fn(&StreamsError) -> StreamThreadExceptionResponse + Send + Sync + 'static,
    ) -> Result<()> {
        if self.shared.started.load(Ordering::SeqCst) {
            return Err(StreamsError::NotRunning(
                "set_uncaught_exception_handler after start (set it while the state is Created)"
                    .into(),
            ));
        }
        *guard(&self.shared.exception_handler) = Some(Box::new(handler));
        Ok(())
    }

    /// The error that stopped the application, if any.
    pub fn error(&self) -> Option<StreamsError> {
        guard(&self.shared.error).clone()
    }

    /// Waits (bounded) until every thread is running its tasks.
    pub async fn wait_until_running(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            match self.state() {
                StreamsState::Running => return Ok(()),
                StreamsState::Error => {
                    return Err(self
                        .error()
                        .unwrap_or(StreamsError::NotRunning("failed".into())))
                }
                StreamsState::NotRunning | StreamsState::PendingShutdown => {
                    return Err(StreamsError::NotRunning("shutting down".into()))
                }
                _ => {}
            }
            if start.elapsed() > timeout {
                return Err(StreamsError::NotRunning(format!(
                    "not running after {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Counters summed over the threads.
    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics::default();
        for t in guard(&self.shared.metrics).iter() {
            m.records_processed += t.records_processed;
            m.records_dropped_late += t.records_dropped_late;
            m.records_skipped += t.records_skipped;
            m.punctuations += t.punctuations;
            m.commits += t.commits;
            m.records_restored += t.records_restored;
            m.active_tasks.extend(t.active_tasks.iter().copied());
            m.standby_tasks.extend(t.standby_tasks.iter().copied());
            m.lag.extend(t.lag.iter().map(|(k, v)| (k.clone(), *v)));
            for (s, n) in &t.store_entries {
                *m.store_entries.entry(s.clone()).or_default() += n;
            }
        }
        m.active_tasks.sort();
        m.standby_tasks.sort();
        m
    }

    /// The topology as text.
    pub fn describe(&self) -> String {
        self.shared.topology.describe()
    }

    fn cells(&self, name: &str) -> Result<Vec<StoreCell>> {
        if let Some(c) = self.shared.globals.get(name) {
            return Ok(vec![c.clone()]);
        }
        let cells: Vec<StoreCell> = guard(&self.shared.stores)
            .values()
            .flat_map(|v| v.iter().filter(|(n, _)| n == name).map(|(_, c)| c.clone()))
            .collect();
        if cells.is_empty() && !self.shared.topology.stores.contains_key(name) {
            return Err(StreamsError::Topology(format!(
                "the topology has no store named {name}"
            )));
        }
        Ok(cells)
    }

    /// A read-only view of key-value store `name` over this instance's active tasks
    /// (and global stores). Keys of other instances are not there: see
    /// [`KafkaStreams::query_metadata_for_key`].
    pub fn store<K: 'static, V: 'static>(&self, name: &str) -> Result<ReadOnlyKeyValueStore<K, V>> {
        let (k, v) = declared_serdes::<K, V>(&self.shared.topology.stores, name)?;
        let stores = self
            .cells(name)?
            .into_iter()
            .map(|c| KeyValueStore::new(name, c, k.clone(), v.clone()))
            .collect();
        Ok(ReadOnlyKeyValueStore { stores })
    }

    /// A read-only view of window store `name` over this instance's active tasks.
    pub fn window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<ReadOnlyWindowStore<K, V>> {
        let (k, v) = declared_serdes::<K, V>(&self.shared.topology.stores, name)?;
        let spec = self.shared.topology.stores.get(name);
        let size = spec.map_or(0, |s| s.window_size_ms);
        let dup = matches!(
            spec.map(|s| s.kind),
            Some(StoreKind::Window {
                duplicates: true,
                ..
            })
        );
        let stores = self
            .cells(name)?
            .into_iter()
            .map(|c| WindowStore::new(name, c, k.clone(), v.clone(), size, dup))
            .collect();
        Ok(ReadOnlyWindowStore { stores })
    }

    /// Which instance (`application.server`) runs the task holding `key` in `store`.
    pub fn query_metadata_for_key<K: 'static>(
        &self,
        store: &str,
        key: &K,
        keys: &SerdeRef<K>,
    ) -> Result<KeyQueryMetadata> {
        let sub = self
            .shared
            .topology
            .subtopologies
            .iter()
            .find(|s| s.stores.contains(store))
            .ok_or_else(|| StreamsError::Topology(format!("no task holds store {store}")))?;
        let n = guard(&self.shared.task_counts)
            .get(sub.id as usize)
            .copied()
            .ok_or_else(|| StreamsError::NotRunning("not started".into()))?;
        let kb = crate::serdes::to_bytes(keys.as_ref(), key, "queried key")?;
        let partition = partition_for_key(&kb, n.max(1));
        let task = TaskId::new(sub.id, partition);
        let hosts = guard(&self.shared.hosts);
        let active_host = hosts
            .iter()
            .find(|(_, (a, _))| a.contains(&task))
            .map(|(h, _)| h.clone());
        let standby_hosts = hosts
            .iter()
            .filter(|(_, (_, s))| s.contains(&task))
            .map(|(h, _)| h.clone())
            .collect();
        Ok(KeyQueryMetadata {
            active_host,
            standby_hosts,
            partition,
        })
    }

    /// Deletes this instance's local state directory (`<state.dir>/<application.id>`);
    /// only before `start` or after `close`.
    pub fn cleanup(&self) -> Result<()> {
        let state = self.state();
        if !matches!(
            state,
            StreamsState::Created | StreamsState::NotRunning | StreamsState::Error
        ) {
            return Err(StreamsError::NotRunning(format!("cleanup while {state:?}")));
        }
        let dir = self
            .shared
            .config
            .state_dir
            .join(&self.shared.config.application_id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StreamsError::io(&dir, e)),
        }
    }
}

/// Interactive queries of a key-value store across this instance's tasks.
pub struct ReadOnlyKeyValueStore<K, V> {
    stores: Vec<KeyValueStore<K, V>>,
}

impl<K: Ord + 'static, V: 'static> ReadOnlyKeyValueStore<K, V> {
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        for s in &self.stores {
            if let Some(v) = s.get(key)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Every entry of every local task, sorted by key.
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        let mut out = Vec::new();
        for s in &self.stores {
            out.extend(s.all()?);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    pub fn approximate_num_entries(&self) -> Result<u64> {
        let mut n = 0;
        for s in &self.stores {
            n += s.approximate_num_entries()?;
        }
        Ok(n)
    }
}

/// Interactive queries of a window store across this instance's tasks.
pub struct ReadOnlyWindowStore<K, V> {
    stores: Vec<WindowStore<K, V>>,
}

impl<K: 'static, V: 'static> ReadOnlyWindowStore<K, V> {
    /// `(window start, value)` of `key` for windows starting in `[from, to]`.
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        let mut out = Vec::new();
        for s in &self.stores {
            out.extend(s.fetch_range(key, from, to)?);
        }
        out.sort_by_key(|(t, _)| *t);
        Ok(out)
    }

    pub fn all(&self) -> Result<Vec<(K, Window, V)>> {
        let mut out = Vec::new();
        for s in &self.stores {
            out.extend(s.all()?);
        }
        Ok(out)
    }
}
