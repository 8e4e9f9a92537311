//! [`TopologyTestDriver`]: runs a topology in-process, without a broker, like Kafka
//! Streams' driver of the same name. Records piped into an input topic are processed at
//! once by the task reading it (one task per sub-topology, partition 0); what the tasks
//! produce is captured per topic, and records sent to a topic the topology itself reads
//! (repartition topics, `through` topics) are processed in turn. Wall-clock time is
//! mocked and only moves when the test advances it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strom_client::{ConsumerRecord, TimestampType};

use crate::error::{Result, StreamsError};
use crate::processor::{declared_serdes, OutRecord, TaskMetrics};
use crate::record::{Header, Record};
use crate::serdes::SerdeRef;
use crate::state::typed::{KeyValueStore, SessionStore, WindowStore};
use crate::state::{lock, StoreCell, StoreKind};
use crate::task::{Task, TaskId};
use crate::topology::Topology;

/// Runs a topology without a broker.
pub struct TopologyTestDriver {
    topology: Arc<Topology>,
    tasks: Vec<Task>,
    /// Resolved topic -> the task reading it.
    readers: HashMap<String, usize>,
    /// Global topic -> its store.
    globals: HashMap<String, StoreCell>,
    outputs: BTreeMap<String, VecDeque<OutRecord>>,
    offsets: HashMap<String, i64>,
    wall_clock_ms: i64,
}

/// Bound on records produced by one piped record (a topology that feeds itself forever
/// is reported instead of hanging the test).
const CASCADE_RECORDS_MAX: usize = 1_000_000;

impl TopologyTestDriver {
    /// A driver with application id `topology-test-driver` and the wall clock at 0.
    pub fn new(topology: Topology) -> Result<Self> {
        Self::with_options(topology, "topology-test-driver", 0)
    }

    /// A driver with the given application id (internal topics are named after it) and
    /// initial wall-clock time.
    pub fn with_options(
        topology: Topology,
        application_id: &str,
        wall_clock_ms: i64,
    ) -> Result<Self> {
        let topology = Arc::new(topology);
        let mut globals = HashMap::new();
        let mut global_cells = HashMap::new();
        for g in &topology.globals {
            let spec = topology.stores.get(&g.store).ok_or_else(|| {
                StreamsError::Topology(format!("global store {} missing", g.store))
            })?;
            let cell = spec.open(None)?;
            globals.insert(g.topic.clone(), cell.clone());
            global_cells.insert(g.store.clone(), cell);
        }
        let mut tasks = Vec::new();
        let mut readers = HashMap::new();
        for sub in &topology.subtopologies {
            let id = TaskId::new(sub.id, 0);
            let mut task = Task::new(&topology, id, application_id, None, &global_cells, false)?;
            task.init(wall_clock_ms)?;
            for t in &sub.sources {
                readers.insert(t.resolve(application_id), tasks.len());
            }
            tasks.push(task);
        }
        let mut driver = TopologyTestDriver {
            topology,
            tasks,
            readers,
            globals,
            outputs: BTreeMap::new(),
            offsets: HashMap::new(),
            wall_clock_ms,
        };
        let mut produced = Vec::new();
        for t in &mut driver.tasks {
            produced.extend(t.take_output());
        }
        driver.route(produced)?;
        Ok(driver)
    }

    /// Pipes one record (bytes as on the wire) into `topic`.
    pub fn pipe_raw(
        &mut self,
        topic: &str,
        key: Option<Bytes>,
        value: Option<Bytes>,
        timestamp: i64,
        headers: Vec<Header>,
    ) -> Result<()> {
        if let Some(cell) = self.globals.get(topic) {
            let mut s = lock(cell)?;
            match (key, value) {
                (Some(k), Some(v)) => s.restore(k, Some(v))?,
                (Some(k), None) => s.restore(k, None)?,
                (None, _) => {}
            }
            return Ok(());
        }
        let Some(&task) = self.readers.get(topic) else {
            return Err(StreamsError::Topology(format!(
                "no source reads topic {topic}"
            )));
        };
        let offset = self.offsets.entry(topic.to_string()).or_insert(0);
        let record = ConsumerRecord {
            topic: topic.to_string(),
            partition: 0,
            offset: *offset,
            timestamp_ms: timestamp,
            timestamp_type: TimestampType::CreateTime,
            key,
            value,
            headers,
        };
        *offset += 1;
        self.tasks[task].add(record);
        let mut produced = Vec::new();
        while self.tasks[task].process_one()? {
            produced.extend(self.tasks[task].take_output());
        }
        self.route(produced)
    }

    /// Captures produced records and feeds those for topics the topology reads.
    fn route(&mut self, produced: Vec<OutRecord>) -> Result<()> {
        let mut queue: VecDeque<OutRecord> = produced.into();
        let mut handled = 0usize;
        while let Some(r) = queue.pop_front() {
            handled += 1;
            if handled > CASCADE_RECORDS_MAX {
                return Err(StreamsError::Topology(format!(
                    "one input record caused more than {CASCADE_RECORDS_MAX} records (a topology feeding itself?)"
                )));
            }
            self.outputs
                .entry(r.topic.clone())
                .or_default()
                .push_back(r.clone());
            if let Some(&task) = self.readers.get(&r.topic) {
                let offset = self.offsets.entry(r.topic.clone()).or_insert(0);
                self.tasks[task].add(ConsumerRecord {
                    topic: r.topic.clone(),
                    partition: 0,
                    offset: *offset,
                    timestamp_ms: r.timestamp,
                    timestamp_type: TimestampType::CreateTime,
                    key: r.key.clone(),
                    value: r.value.clone(),
                    headers: r.headers.clone(),
                });
                *offset += 1;
                while self.tasks[task].process_one()? {
                    queue.extend(self.tasks[task].take_output());
                }
            }
        }
        Ok(())
    }

    /// Moves the mocked wall clock and fires wall-clock punctuations.
    pub fn advance_wall_clock_time(&mut self, by: Duration) -> Result<()> {
        self.wall_clock_ms = self
            .wall_clock_ms
            .saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
        let mut produced = Vec::new();
        for t in &mut self.tasks {
            t.punctuate_wall_clock(self.wall_clock_ms)?;
            produced.extend(t.take_output());
        }
        self.route(produced)
    }

    /// The oldest unread record produced to `topic` (internal topics by their full name,
    /// `<application.id>-<name>`).
    pub fn read_output(&mut self, topic: &str) -> Option<OutRecord> {
        self.outputs.get_mut(topic).and_then(VecDeque::pop_front)
    }

    /// Unread records of `topic`.
    pub fn output_len(&self, topic: &str) -> usize {
        self.outputs.get(topic).map_or(0, VecDeque::len)
    }

    /// Topics that received records.
    pub fn produced_topics(&self) -> Vec<String> {
        self.outputs.keys().cloned().collect()
    }

    /// Counters summed over the tasks.
    pub fn metrics(&self) -> TaskMetrics {
        let mut m = TaskMetrics::default();
        for t in &self.tasks {
            let s = &t.state.metrics;
            m.records_processed += s.records_processed;
            m.records_dropped_late += s.records_dropped_late;
            m.records_skipped += s.records_skipped;
            m.punctuations += s.punctuations;
        }
        m
    }

    fn cell(&self, name: &str) -> Result<StoreCell> {
        for t in &self.tasks {
            if let Some(c) = t.state.stores.get(name) {
                return Ok(c.clone());
            }
        }
        Err(StreamsError::StoreUnavailable(name.to_string()))
    }

    /// A store of the topology, with its declared serdes.
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<KeyValueStore<K, V>> {
        let (k, v) = declared_serdes::<K, V>(&self.topology.stores, name)?;
        Ok(KeyValueStore::new(name, self.cell(name)?, k, v))
    }

    pub fn window_store<K: 'static, V: 'static>(&self, name: &str) -> Result<WindowStore<K, V>> {
        let (k, v) = declared_serdes::<K, V>(&self.topology.stores, name)?;
        let spec = self.topology.stores.get(name);
        let duplicates = matches!(
            spec.map(|s| s.kind),
            Some(StoreKind::Window {
                duplicates: true,
                ..
            })
        );
        let size = spec.map_or(0, |s| s.window_size_ms);
        Ok(WindowStore::new(
            name,
            self.cell(name)?,
            k,
            v,
            size,
            duplicates,
        ))
    }

    pub fn session_store<K: 'static, V: 'static>(&self, name: &str) -> Result<SessionStore<K, V>> {
        let (k, v) = declared_serdes::<K, V>(&self.topology.stores, name)?;
        Ok(SessionStore::new(name, self.cell(name)?, k, v))
    }

    pub fn input_topic<K, V>(
        &self,
        topic: &str,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            topic: topic.to_string(),
            keys,
            values,
        }
    }

    pub fn output_topic<K, V>(
        &self,
        topic: &str,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            topic: topic.to_string(),
            keys,
            values,
            _p: PhantomData,
        }
    }
}

/// Typed input of a [`TopologyTestDriver`].
pub struct TestInputTopic<K, V> {
    topic: String,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
}

fn ser_err(e: crate::serdes::SerdeError) -> StreamsError {
    StreamsError::Serde {
        what: "test input".into(),
        reason: e.0,
    }
}

impl<K: 'static, V: 'static> TestInputTopic<K, V> {
    pub fn pipe(
        &self,
        driver: &mut TopologyTestDriver,
        key: K,
        value: V,
        timestamp: i64,
    ) -> Result<()> {
        let k = self.keys.serialize(&key).map_err(ser_err)?;
        let v = self.values.serialize(&value).map_err(ser_err)?;
        driver.pipe_raw(&self.topic, k, v, timestamp, Vec::new())
    }

    /// A record with a null value (a table delete).
    pub fn pipe_tombstone(
        &self,
        driver: &mut TopologyTestDriver,
        key: K,
        timestamp: i64,
    ) -> Result<()> {
        let k = self.keys.serialize(&key).map_err(ser_err)?;
        driver.pipe_raw(&self.topic, k, None, timestamp, Vec::new())
    }

    /// A record with a null key.
    pub fn pipe_value(
        &self,
        driver: &mut TopologyTestDriver,
        value: V,
        timestamp: i64,
    ) -> Result<()> {
        let v = self.values.serialize(&value).map_err(ser_err)?;
        driver.pipe_raw(&self.topic, None, v, timestamp, Vec::new())
    }
}

/// Typed output of a [`TopologyTestDriver`].
pub struct TestOutputTopic<K, V> {
    topic: String,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
    _p: PhantomData<fn() -> (K, V)>,
}

impl<K: 'static, V: 'static> TestOutputTopic<K, V> {
    pub fn read_record(&self, driver: &mut TopologyTestDriver) -> Result<Option<Record<K, V>>> {
        let Some(r) = driver.read_output(&self.topic) else {
            return Ok(None);
        };
        let key = self
            .keys
            .deserialize(r.key.as_deref())
            .map_err(|e| StreamsError::Serde {
                what: format!("key read from {}", self.topic),
                reason: e.0,
            })?;
        let value =
            self.values
                .deserialize(r.value.as_deref())
                .map_err(|e| StreamsError::Serde {
                    what: format!("value read from {}", self.topic),
                    reason: e.0,
                })?;
        Ok(Some(Record {
            key,
            value,
            timestamp: r.timestamp,
            headers: r.headers,
        }))
    }

    pub fn read_key_value(&self, driver: &mut TopologyTestDriver) -> Result<Option<(K, V)>> {
        Ok(self.read_record(driver)?.map(|r| (r.key, r.value)))
    }

    /// Every unread record as (key, value), in order.
    pub fn read_key_values(&self, driver: &mut TopologyTestDriver) -> Result<Vec<(K, V)>> {
        let mut out = Vec::new();
        while let Some(kv) = self.read_key_value(driver)? {
            out.push(kv);
        }
        Ok(out)
    }

    /// Every unread record, the last value per key.
    pub fn read_key_values_to_map(&self, driver: &mut TopologyTestDriver) -> Result<BTreeMap<K, V>>
    where
        K: Ord,
    {
        Ok(self.read_key_values(driver)?.into_iter().collect())
    }

    pub fn is_empty(&self, driver: &TopologyTestDriver) -> bool {
        driver.output_len(&self.topic) == 0
    }
}
