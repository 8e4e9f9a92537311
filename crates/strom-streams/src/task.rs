//! A task: one sub-topology's nodes and stores for one partition number. It queues the
//! records of its input partitions, processes them in timestamp order across partitions
//! (Kafka's `PartitionGroup`: the head with the smallest timestamp goes first), keeps
//! stream time, fires punctuations, and collects what it produces (output, repartition
//! and changelog records) for the runtime or the test driver to send. It does no I/O
//! beyond its stores.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use strom_client::{ConsumerRecord, TopicPartition};

use crate::error::{Result, StreamsError};
use crate::processor::{OutRecord, PunctuationType, TaskState};
use crate::record::{Rec, RecordContext};
use crate::state::{lock, StoreCell};
use crate::topology::{ExtractorRef, NodeKind, RawRecord, Topology};

/// A task's id: `<sub-topology>_<partition>`, as Kafka writes it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TaskId {
    pub subtopology: u32,
    pub partition: i32,
}

impl TaskId {
    pub fn new(subtopology: u32, partition: i32) -> Self {
        TaskId {
            subtopology,
            partition,
        }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

pub(crate) struct Task {
    pub state: TaskState,
    /// Resolved source topic -> (local source node, its timestamp extractor).
    sources: HashMap<String, (usize, Option<ExtractorRef>)>,
    queues: BTreeMap<TopicPartition, VecDeque<(i64, ConsumerRecord)>>,
    partition_time: BTreeMap<TopicPartition, i64>,
    /// Per input partition, the next offset to commit (after the last processed record).
    pub consumed: BTreeMap<TopicPartition, i64>,
    /// Logged store -> its changelog partition.
    pub changelogs: BTreeMap<String, TopicPartition>,
    /// The task's directory under the state directory (persistent stores, checkpoint).
    pub dir: Option<PathBuf>,
    /// The source partitions of this task.
    pub inputs: Vec<TopicPartition>,
    /// The task's own stores (not global ones).
    pub store_names: Vec<String>,
}

impl Task {
    /// Opens the task's stores (nothing restored yet) and builds its nodes.
    pub(crate) fn new(
        topology: &Topology,
        id: TaskId,
        application_id: &str,
        dir: Option<PathBuf>,
        globals: &HashMap<String, StoreCell>,
        continue_on_deserialization_error: bool,
    ) -> Result<Task> {
        let sub = topology
            .subtopologies
            .get(id.subtopology as usize)
            .ok_or_else(|| StreamsError::Topology(format!("no sub-topology for task {id}")))?;
        let local: HashMap<usize, usize> =
            sub.nodes.iter().enumerate().map(|(l, &g)| (g, l)).collect();
        let mut nodes = Vec::with_capacity(sub.nodes.len());
        let mut names = Vec::with_capacity(sub.nodes.len());
        let mut children = vec![Vec::new(); sub.nodes.len()];
        let mut sources = HashMap::new();
        for (l, &g) in sub.nodes.iter().enumerate() {
            let def = &topology.nodes[g];
            nodes.push((def.factory)());
            names.push(def.name.clone());
            for p in &def.parents {
                if let Some(&lp) = local.get(p) {
                    children[lp].push(l);
                }
            }
            if let NodeKind::Source { topics, extractor } = &def.kind {
                for t in topics {
                    sources.insert(t.resolve(application_id), (l, extractor.clone()));
                }
            }
        }
        let mut stores = globals.clone();
        let mut changelogs = BTreeMap::new();
        for name in &sub.stores {
            let spec = topology
                .stores
                .get(name)
                .ok_or_else(|| StreamsError::Topology(format!("unknown store {name}")))?;
            stores.insert(name.clone(), spec.open(dir.as_deref())?);
            if let Some(t) = topology.changelog_of(name) {
                changelogs.insert(
                    name.clone(),
                    TopicPartition::new(t.resolve(application_id), id.partition),
                );
            }
        }
        let mut inputs = topology.task_inputs(id, application_id);
        inputs.sort();
        let mut state = TaskState::new(
            id,
            application_id,
            nodes,
            children,
            names,
            stores,
            topology.stores.clone(),
        );
        state.shared.insert(
            CONTINUE_ON_DESERIALIZATION_ERROR.to_string(),
            Arc::new(continue_on_deserialization_error),
        );
        Ok(Task {
            state,
            sources,
            queues: BTreeMap::new(),
            partition_time: BTreeMap::new(),
            consumed: BTreeMap::new(),
            changelogs,
            dir,
            inputs,
            store_names: sub.stores.iter().cloned().collect(),
        })
    }

    pub(crate) fn id(&self) -> TaskId {
        self.state.id
    }

    /// Runs every node's `init` (after the stores are restored).
    pub(crate) fn init(&mut self, wall_clock_ms: i64) -> Result<()> {
        self.state.wall_clock_ms = wall_clock_ms;
        self.state.init_nodes()?;
        self.drain_changelogs();
        Ok(())
    }

    /// Queues a consumed record of one of this task's partitions.
    pub(crate) fn add(&mut self, record: ConsumerRecord) {
        let tp = TopicPartition::new(record.topic.clone(), record.partition);
        let partition_time = self.partition_time.get(&tp).copied().unwrap_or(-1);
        let ts = match self.sources.get(&record.topic).and_then(|(_, e)| e.clone()) {
            Some(extractor) => extractor.extract(
                &RawRecord {
                    topic: &record.topic,
                    partition: record.partition,
                    offset: record.offset,
                    timestamp: record.timestamp_ms,
                    key: record.key.as_deref(),
                    value: record.value.as_deref(),
                },
                partition_time,
            ),
            None => record.timestamp_ms,
        };
        if ts >= 0 {
            self.partition_time
                .insert(tp.clone(), partition_time.max(ts));
        }
        self.queues.entry(tp).or_default().push_back((ts, record));
    }

    /// Drops queued records (a rebalance: they will be fetched again from the committed
    /// offsets).
    pub(crate) fn clear_queues(&mut self) {
        self.queues.clear();
    }

    /// Processes the queued record with the smallest timestamp; `false` when none.
    pub(crate) fn process_one(&mut self) -> Result<bool> {
        let next = self
            .queues
            .iter()
            .filter_map(|(tp, q)| q.front().map(|(ts, _)| (*ts, tp.clone())))
            .min_by_key(|(ts, _)| *ts);
        let Some((_, tp)) = next else {
            return Ok(false);
        };
        let Some((ts, record)) = self.queues.get_mut(&tp).and_then(VecDeque::pop_front) else {
            return Ok(false);
        };
        self.consumed.insert(tp.clone(), record.offset + 1);
        if ts < 0 {
            tracing::warn!(%tp, offset = record.offset, ts, "record with an invalid timestamp skipped");
            self.state.metrics.records_skipped += 1;
            return Ok(true);
        }
        let Some((node, _)) = self.sources.get(&record.topic).cloned() else {
            return Err(StreamsError::Topology(format!(
                "task {} has no source for {}",
                self.id(),
                record.topic
            )));
        };
        self.state.record = RecordContext {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            timestamp: ts,
        };
        self.state.stream_time = self.state.stream_time.max(ts);
        let rec = Rec {
            key: Arc::new(record.key),
            value: Arc::new(record.value),
            timestamp: ts,
            headers: Arc::new(record.headers),
        };
        self.state.headers = rec.headers.clone();
        self.state.run(node, rec)?;
        self.state.metrics.records_processed += 1;
        let stream_time = self.state.stream_time;
        self.state
            .punctuate(PunctuationType::StreamTime, stream_time)?;
        self.drain_changelogs();
        Ok(true)
    }

    /// Fires wall-clock punctuations due at `now_ms`.
    pub(crate) fn punctuate_wall_clock(&mut self, now_ms: i64) -> Result<usize> {
        self.state.wall_clock_ms = now_ms;
        let n = self
            .state
            .punctuate(PunctuationType::WallClockTime, now_ms)?;
        self.drain_changelogs();
        Ok(n)
    }

    /// Moves the stores' pending changelog entries into the output.
    fn drain_changelogs(&mut self) {
        let ts = self.state.record.timestamp;
        for (store, tp) in &self.changelogs {
            let Some(cell) = self.state.stores.get(store) else {
                continue;
            };
            let Ok(mut s) = lock(cell) else { continue };
            for (key, value) in s.take_log() {
                self.state.out.push(OutRecord {
                    topic: tp.topic.clone(),
                    partition: Some(tp.partition),
                    key: Some(key),
                    value,
                    timestamp: ts,
                    headers: Vec::new(),
                    changelog_of: Some(store.clone()),
                });
            }
        }
    }

    pub(crate) fn take_output(&mut self) -> Vec<OutRecord> {
        std::mem::take(&mut self.state.out)
    }

    /// Flushes every store of the task to disk (persistent ones).
    pub(crate) fn flush_stores(&mut self) -> Result<()> {
        for (_, cell) in self.own_stores() {
            lock(&cell)?.store.flush()?;
        }
        Ok(())
    }

    /// The task's own stores (not global ones), by name.
    pub(crate) fn own_stores(&self) -> Vec<(String, StoreCell)> {
        self.store_names
            .iter()
            .filter_map(|s| self.state.stores.get(s).map(|c| (s.clone(), c.clone())))
            .collect()
    }

    pub(crate) fn close(&mut self) {
        self.state.close_nodes();
    }

    /// Back to a not-running task: no queued records, schedules or per-run state.
    pub(crate) fn reset_runtime(&mut self) {
        self.queues.clear();
        self.partition_time.clear();
        self.state.reset_runtime();
    }
}

/// Key of the task-shared flag read by source nodes.
pub(crate) const CONTINUE_ON_DESERIALIZATION_ERROR: &str =
    "default.deserialization.exception.handler";
