//! The processor layer: the [`Node`] every operator is, the per-task state it runs in
//! ([`TaskState`]: nodes, stores, the record context, stream time, punctuation schedules,
//! records produced), and the public processor API ([`Processor`], [`ProcessorContext`],
//! punctuation by stream time and by wall-clock time).
//!
//! Forwarding is depth-first, as in Kafka Streams: `forward` runs each child to
//! completion before the next. A node is taken out of its slot while it runs, so a
//! topology with a cycle would be reported, not recursed into.

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::error::{Result, StreamsError};
use crate::record::{Header, Rec, Record, RecordContext};
use crate::serdes::SerdeRef;
use crate::state::typed::{KeyValueStore, SessionStore, WindowStore};
use crate::state::{StoreCell, StoreKind, StoreSpec};
use crate::task::TaskId;

/// One operator instance of one task.
pub(crate) trait Node: Send {
    fn init(&mut self, _ctx: &mut Ctx<'_>) -> Result<()> {
        Ok(())
    }
    fn process(&mut self, ctx: &mut Ctx<'_>, rec: Rec) -> Result<()>;
    fn punctuate(&mut self, _ctx: &mut Ctx<'_>, _schedule: u64, _timestamp: i64) -> Result<()> {
        Ok(())
    }
    fn close(&mut self) {}
}

/// A node made of a closure (stateless operators).
pub(crate) struct FnNode<F>(pub F);

impl<F> Node for FnNode<F>
where
    F: FnMut(&mut Ctx<'_>, Rec) -> Result<()> + Send,
{
    fn process(&mut self, ctx: &mut Ctx<'_>, rec: Rec) -> Result<()> {
        (self.0)(ctx, rec)
    }
}

/// Builds one node per task.
pub(crate) type NodeFactory = Arc<dyn Fn() -> Box<dyn Node> + Send + Sync>;

/// A factory of a stateless closure node.
pub(crate) fn stateless<F>(f: F) -> NodeFactory
where
    F: Fn(&mut Ctx<'_>, Rec) -> Result<()> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    Arc::new(move || {
        let f = f.clone();
        Box::new(FnNode(move |c: &mut Ctx<'_>, r: Rec| f(c, r))) as Box<dyn Node>
    })
}

/// When a punctuation fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunctuationType {
    /// When the task's stream time (largest record timestamp seen) reaches the schedule.
    StreamTime,
    /// When the wall clock does (checked between records).
    WallClockTime,
}

#[derive(Debug, Clone)]
struct Schedule {
    id: u64,
    node: usize,
    kind: PunctuationType,
    interval_ms: i64,
    next_ms: i64,
    cancelled: bool,
}

/// A record a task produced, for an output, repartition or changelog topic.
#[derive(Debug, Clone, PartialEq)]
pub struct OutRecord {
    pub topic: String,
    /// `None`: the producer's partitioner decides (murmur2 of the key).
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub timestamp: i64,
    pub headers: Vec<Header>,
    /// A changelog record of this store (its offset goes into the checkpoint).
    pub changelog_of: Option<String>,
}

/// Counters of one task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskMetrics {
    pub records_processed: u64,
    /// Records too late for their window (behind stream time by more than the grace).
    pub records_dropped_late: u64,
    /// Records skipped: undeserializable (with log-and-continue), invalid timestamp, null
    /// key where a key is needed.
    pub records_skipped: u64,
    pub punctuations: u64,
}

/// Everything one task's nodes share.
pub(crate) struct TaskState {
    pub id: TaskId,
    pub application_id: String,
    pub(crate) nodes: Vec<Option<Box<dyn Node>>>,
    pub(crate) children: Vec<Vec<usize>>,
    pub(crate) names: Vec<String>,
    pub stores: HashMap<String, StoreCell>,
    pub specs: Arc<HashMap<String, StoreSpec>>,
    pub out: Vec<OutRecord>,
    pub record: RecordContext,
    pub headers: Arc<Vec<Header>>,
    /// Largest timestamp of any record this task processed (-1: none yet).
    pub stream_time: i64,
    pub wall_clock_ms: i64,
    schedules: Vec<Schedule>,
    next_schedule: u64,
    pub metrics: TaskMetrics,
    pub commit_requested: bool,
    /// Per-task objects operators share by name (a join's two sides share stream time).
    pub shared: HashMap<String, Arc<dyn Any + Send + Sync>>,
}

impl TaskState {
    pub(crate) fn new(
        id: TaskId,
        application_id: &str,
        nodes: Vec<Box<dyn Node>>,
        children: Vec<Vec<usize>>,
        names: Vec<String>,
        stores: HashMap<String, StoreCell>,
        specs: Arc<HashMap<String, StoreSpec>>,
    ) -> Self {
        TaskState {
            id,
            application_id: application_id.to_string(),
            nodes: nodes.into_iter().map(Some).collect(),
            children,
            names,
            stores,
            specs,
            out: Vec::new(),
            record: RecordContext::default(),
            headers: Arc::new(Vec::new()),
            stream_time: -1,
            wall_clock_ms: 0,
            schedules: Vec::new(),
            next_schedule: 0,
            metrics: TaskMetrics::default(),
            commit_requested: false,
            shared: HashMap::new(),
        }
    }

    /// Runs `rec` through node `node` (and, depth-first, everything it forwards to).
    pub(crate) fn run(&mut self, node: usize, rec: Rec) -> Result<()> {
        let mut n = self.take(node)?;
        let r = n.process(&mut Ctx { task: self, node }, rec);
        self.nodes[node] = Some(n);
        r
    }

    fn take(&mut self, node: usize) -> Result<Box<dyn Node>> {
        let name = self.names.get(node).cloned().unwrap_or_default();
        self.nodes
            .get_mut(node)
            .and_then(Option::take)
            .ok_or_else(|| StreamsError::Topology(format!("node {name} entered twice (a cycle?)")))
    }

    pub(crate) fn init_nodes(&mut self) -> Result<()> {
        for node in 0..self.nodes.len() {
            let mut n = self.take(node)?;
            let r = n.init(&mut Ctx { task: self, node });
            self.nodes[node] = Some(n);
            r?;
        }
        Ok(())
    }

    /// Forgets schedules and per-run state (a task becoming a standby keeps its stores;
    /// its nodes are initialized again if it runs again).
    pub(crate) fn reset_runtime(&mut self) {
        self.schedules.clear();
        self.stream_time = -1;
        self.out.clear();
        self.shared
            .retain(|k, _| k == crate::task::CONTINUE_ON_DESERIALIZATION_ERROR);
    }

    pub(crate) fn close_nodes(&mut self) {
        for n in self.nodes.iter_mut().flatten() {
            n.close();
        }
    }

    /// Fires due punctuations of `kind` at time `now`; returns how many fired.
    pub(crate) fn punctuate(&mut self, kind: PunctuationType, now: i64) -> Result<usize> {
        let mut fired = 0;
        // Bounded: each schedule fires at most once per call.
        let due: Vec<usize> = (0..self.schedules.len())
            .filter(|&i| {
                let s = &self.schedules[i];
                s.kind == kind && !s.cancelled && now >= 0 && s.next_ms <= now
            })
            .collect();
        for i in due {
            let (id, node, scheduled) = {
                let s = &mut self.schedules[i];
                let scheduled = s.next_ms;
                // Kafka's PunctuationSchedule.next: missed punctuations are skipped.
                let mut next = scheduled.saturating_add(s.interval_ms);
                if now >= next {
                    next = now - ((now - scheduled) % s.interval_ms) + s.interval_ms;
                }
                s.next_ms = next;
                (s.id, s.node, scheduled)
            };
            let _ = scheduled;
            self.record = RecordContext {
                topic: String::new(),
                partition: self.id.partition,
                offset: -1,
                timestamp: now,
            };
            self.headers = Arc::new(Vec::new());
            let mut n = self.take(node)?;
            let r = n.punctuate(&mut Ctx { task: self, node }, id, now);
            self.nodes[node] = Some(n);
            r?;
            fired += 1;
            self.metrics.punctuations += 1;
        }
        self.schedules.retain(|s| !s.cancelled);
        Ok(fired)
    }
}

/// What a node sees while it runs.
pub(crate) struct Ctx<'a> {
    pub task: &'a mut TaskState,
    pub node: usize,
}

impl Ctx<'_> {
    /// Sends `rec` to every child.
    pub fn forward(&mut self, rec: Rec) -> Result<()> {
        let n = self.task.children[self.node].len();
        for i in 0..n {
            let child = self.task.children[self.node][i];
            self.task.run(child, rec.clone())?;
        }
        Ok(())
    }

    /// Sends `rec` to the `i`-th child only (branches).
    pub fn forward_to(&mut self, i: usize, rec: Rec) -> Result<()> {
        match self.task.children[self.node].get(i).copied() {
            Some(child) => self.task.run(child, rec),
            None => Ok(()),
        }
    }

    pub fn name(&self) -> &str {
        &self.task.names[self.node]
    }

    pub fn store(&self, name: &str) -> Result<StoreCell> {
        self.task.stores.get(name).cloned().ok_or_else(|| {
            StreamsError::Topology(format!(
                "processor {} uses store {name}, which is not connected to it",
                self.name()
            ))
        })
    }

    pub fn kv_store<K: 'static, V: 'static>(
        &self,
        name: &str,
        keys: &SerdeRef<K>,
        values: &SerdeRef<V>,
    ) -> Result<KeyValueStore<K, V>> {
        Ok(KeyValueStore::new(
            name,
            self.store(name)?,
            keys.clone(),
            values.clone(),
        ))
    }

    pub fn schedule(&mut self, interval_ms: i64, kind: PunctuationType) -> u64 {
        let id = self.task.next_schedule;
        self.task.next_schedule += 1;
        let interval_ms = interval_ms.max(1);
        // As Kafka: stream-time schedules are aligned to 0 and fire with the first record;
        // wall-clock ones fire one interval from now.
        let next_ms = match kind {
            PunctuationType::StreamTime => 0,
            PunctuationType::WallClockTime => self.task.wall_clock_ms.saturating_add(interval_ms),
        };
        self.task.schedules.push(Schedule {
            id,
            node: self.node,
            kind,
            interval_ms,
            next_ms,
            cancelled: false,
        });
        id
    }

    pub fn cancel(&mut self, id: u64) {
        for s in &mut self.task.schedules {
            if s.id == id {
                s.cancelled = true;
            }
        }
    }

    /// A per-task object shared by name between nodes, made on first use.
    pub fn shared<T: Send + Sync + 'static>(
        &mut self,
        name: &str,
        make: impl FnOnce() -> T,
    ) -> Result<Arc<T>> {
        let entry = self
            .task
            .shared
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(make()));
        entry
            .clone()
            .downcast::<T>()
            .map_err(|_| StreamsError::Topology(format!("shared state {name} has another type")))
    }

    pub fn emit(&mut self, rec: OutRecord) {
        self.task.out.push(rec);
    }

    pub fn dropped_late(&mut self) {
        self.task.metrics.records_dropped_late += 1;
    }

    pub fn skipped(&mut self) {
        self.task.metrics.records_skipped += 1;
    }
}

/// A user processor (Kafka's `api.Processor`): gets each record of its parent, may keep
/// state in connected stores, forward records, and schedule punctuations.
pub trait Processor<K, V, KOut, VOut>: Send {
    fn init(&mut self, _ctx: &mut ProcessorContext<'_, '_, KOut, VOut>) -> Result<()> {
        Ok(())
    }
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, KOut, VOut>,
        record: Record<K, V>,
    ) -> Result<()>;
    /// A schedule made with [`ProcessorContext::schedule`] fired at `timestamp`.
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, '_, KOut, VOut>,
        _schedule: u64,
        _timestamp: i64,
    ) -> Result<()> {
        Ok(())
    }
    fn close(&mut self) {}
}

/// What a [`Processor`] can do.
pub struct ProcessorContext<'c, 'a, KOut, VOut> {
    pub(crate) ctx: &'c mut Ctx<'a>,
    pub(crate) _out: PhantomData<fn(KOut, VOut)>,
}

impl<KOut, VOut> ProcessorContext<'_, '_, KOut, VOut>
where
    KOut: Send + Sync + 'static,
    VOut: Send + Sync + 'static,
{
    /// Sends a record to every child.
    pub fn forward(&mut self, record: Record<KOut, VOut>) -> Result<()> {
        let rec = Rec {
            key: Arc::new(record.key),
            value: Arc::new(record.value),
            timestamp: record.timestamp,
            headers: Arc::new(record.headers),
        };
        self.ctx.forward(rec)
    }

    /// Calls [`Processor::punctuate`] every `interval` of stream time or wall-clock time;
    /// returns the schedule's id.
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) -> u64 {
        self.ctx.schedule(
            i64::try_from(interval.as_millis()).unwrap_or(i64::MAX),
            kind,
        )
    }

    pub fn cancel(&mut self, schedule: u64) {
        self.ctx.cancel(schedule);
    }

    /// Topic, partition, offset and timestamp of the record being processed.
    pub fn record_context(&self) -> &RecordContext {
        &self.ctx.task.record
    }

    /// The task's stream time: the largest record timestamp it has processed.
    pub fn stream_time(&self) -> i64 {
        self.ctx.task.stream_time
    }

    /// Wall-clock time as the task sees it (the driver's mocked clock in tests).
    pub fn current_system_time_ms(&self) -> i64 {
        self.ctx.task.wall_clock_ms
    }

    pub fn task_id(&self) -> TaskId {
        self.ctx.task.id
    }

    pub fn application_id(&self) -> &str {
        &self.ctx.task.application_id
    }

    /// Asks for a commit soon after this record.
    pub fn commit(&mut self) {
        self.ctx.task.commit_requested = true;
    }

    /// A connected key-value store, with the serdes it was declared with.
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<KeyValueStore<K, V>> {
        let (k, v) = declared_serdes::<K, V>(&self.ctx.task.specs, name)?;
        Ok(KeyValueStore::new(name, self.ctx.store(name)?, k, v))
    }

    /// A connected window store.
    pub fn window_store<K: 'static, V: 'static>(&self, name: &str) -> Result<WindowStore<K, V>> {
        let (k, v) = declared_serdes::<K, V>(&self.ctx.task.specs, name)?;
        let spec = self.ctx.task.specs.get(name);
        let (size, dup) = match spec.map(|s| s.kind) {
            Some(StoreKind::Window { duplicates, .. }) => {
                (spec.map_or(0, |s| s.window_size_ms), duplicates)
            }
            _ => {
                return Err(StreamsError::Topology(format!(
                    "store {name} is not a window store"
                )))
            }
        };
        Ok(WindowStore::new(
            name,
            self.ctx.store(name)?,
            k,
            v,
            size,
            dup,
        ))
    }

    /// A connected session store.
    pub fn session_store<K: 'static, V: 'static>(&self, name: &str) -> Result<SessionStore<K, V>> {
        let (k, v) = declared_serdes::<K, V>(&self.ctx.task.specs, name)?;
        Ok(SessionStore::new(name, self.ctx.store(name)?, k, v))
    }
}

/// The serdes a store was declared with, as `K` and `V`.
pub(crate) fn declared_serdes<K: 'static, V: 'static>(
    specs: &HashMap<String, StoreSpec>,
    name: &str,
) -> Result<(SerdeRef<K>, SerdeRef<V>)> {
    let spec = specs
        .get(name)
        .ok_or_else(|| StreamsError::Topology(format!("no store named {name}")))?;
    let serdes = spec.serdes.as_ref().ok_or_else(|| {
        StreamsError::Topology(format!("store {name} was declared without serdes"))
    })?;
    serdes
        .downcast_ref::<(SerdeRef<K>, SerdeRef<V>)>()
        .cloned()
        .ok_or_else(|| {
            StreamsError::Topology(format!(
                "store {name} holds other types than {} -> {}",
                std::any::type_name::<K>(),
                std::any::type_name::<V>()
            ))
        })
}
