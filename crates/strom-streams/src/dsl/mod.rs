//! The DSL: [`StreamsBuilder`] makes [`KStream`]s, [`KTable`]s and [`GlobalKTable`]s from
//! topics; their operators add nodes to the builder's graph. Serdes are given where bytes
//! are read or written ([`Consumed`], [`Produced`], [`Grouped`], [`Materialized`],
//! [`Repartitioned`], [`StreamJoined`]) and inherited where types do not change; a missing
//! one is reported by [`StreamsBuilder::build`].
//!
//! As in Kafka Streams, an operator that may change the key (`map`, `select_key`,
//! `flat_map`, `group_by`) marks the stream for repartitioning, and the next operator that
//! needs records grouped by key (`group_by_key`, a join) inserts a repartition topic
//! `<application.id>-<name>-repartition` first.

mod grouped;
mod joins;
mod stream;
mod table;
mod windowed;

use std::sync::{Arc, Mutex, MutexGuard};

pub use grouped::{KGroupedStream, KGroupedTable};
pub use stream::{BranchedKStream, KStream};
pub use table::{GlobalKTable, KTable};
pub use windowed::{SessionWindowedKStream, Suppressed, TimeWindowedKStream};

use crate::error::Result;
use crate::processor::NodeFactory;
use crate::serdes::SerdeRef;
use crate::state::{StoreKind, StoreSpec};
use crate::topology::{BuilderState, ExtractorRef, NodeKind, TimestampExtractor, Topology};

/// Values that flow through a topology.
pub trait Data: Clone + Send + Sync + 'static {}
impl<T: Clone + Send + Sync + 'static> Data for T {}

/// A shared handle on the builder's graph.
#[derive(Clone, Default)]
pub(crate) struct Graph(Arc<Mutex<BuilderState>>);

impl Graph {
    pub(crate) fn lock(&self) -> MutexGuard<'_, BuilderState> {
        match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub(crate) fn add(
        &self,
        prefix: &str,
        kind: NodeKind,
        parents: &[usize],
        stores: Vec<String>,
        factory: NodeFactory,
    ) -> usize {
        let mut g = self.lock();
        let name = g.name(prefix);
        g.add(name, kind, parents, stores, factory)
    }

    pub(crate) fn add_named(
        &self,
        name: Option<String>,
        prefix: &str,
        kind: NodeKind,
        parents: &[usize],
        stores: Vec<String>,
        factory: NodeFactory,
    ) -> usize {
        let mut g = self.lock();
        let name = name.unwrap_or_else(|| g.name(prefix));
        g.add(name, kind, parents, stores, factory)
    }

    pub(crate) fn next_name(&self, prefix: &str) -> String {
        self.lock().name(prefix)
    }

    pub(crate) fn error(&self, e: impl Into<String>) {
        self.lock().error(e);
    }
}

/// Builds a [`Topology`] with the DSL.
#[derive(Clone, Default)]
pub struct StreamsBuilder {
    pub(crate) graph: Graph,
}

impl StreamsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A stream of the records of `topic`.
    pub fn stream<K: Data, V: Data>(&self, topic: &str, consumed: Consumed<K, V>) -> KStream<K, V> {
        stream::source(&self.graph, &[topic], consumed)
    }

    /// One stream of the records of several topics.
    pub fn streams<K: Data, V: Data>(
        &self,
        topics: &[&str],
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        stream::source(&self.graph, topics, consumed)
    }

    /// A table of `topic`: the latest value per key, null values delete.
    pub fn table<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        table::source(&self.graph, topic, consumed, materialized)
    }

    /// A table of the whole of `topic` on every instance, joinable by any key.
    pub fn global_table<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> GlobalKTable<K, V> {
        table::global(&self.graph, topic, consumed, materialized)
    }

    /// Declares a store for processors (`KStream::process`) to connect to.
    pub fn add_state_store(&self, store: StoreBuilder) {
        self.graph.lock().add_store(store.spec);
    }

    /// Checks and freezes the graph.
    pub fn build(&self) -> Result<Topology> {
        let state = std::mem::take(&mut *self.graph.lock());
        Topology::build(state)
    }
}

/// A store for the processor API.
pub struct StoreBuilder {
    pub(crate) spec: StoreSpec,
}

impl StoreBuilder {
    /// A persistent, logged key-value store.
    pub fn key_value<K: 'static, V: 'static>(
        name: &str,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
    ) -> Self {
        StoreBuilder {
            spec: StoreSpec::key_value(name).with_serdes(keys, values),
        }
    }

    /// A persistent, logged window store keeping windows `retention` behind stream time.
    pub fn window<K: 'static, V: 'static>(
        name: &str,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
        retention: std::time::Duration,
        window_size: std::time::Duration,
        retain_duplicates: bool,
    ) -> Self {
        let mut spec = StoreSpec::key_value(name).with_serdes(keys, values);
        spec.kind = StoreKind::Window {
            retention_ms: i64::try_from(retention.as_millis()).unwrap_or(i64::MAX),
            duplicates: retain_duplicates,
        };
        spec.window_size_ms = i64::try_from(window_size.as_millis()).unwrap_or(i64::MAX);
        StoreBuilder { spec }
    }

    /// A persistent, logged session store.
    pub fn session<K: 'static, V: 'static>(
        name: &str,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
        retention: std::time::Duration,
    ) -> Self {
        let mut spec = StoreSpec::key_value(name).with_serdes(keys, values);
        spec.kind = StoreKind::Session {
            retention_ms: i64::try_from(retention.as_millis()).unwrap_or(i64::MAX),
        };
        StoreBuilder { spec }
    }

    /// Keeps the store in memory (restored from the changelog on start).
    pub fn in_memory(mut self) -> Self {
        self.spec.persistent = false;
        self
    }

    /// No changelog: the store is not restored when its task moves.
    pub fn with_logging_disabled(mut self) -> Self {
        self.spec.logged = false;
        self
    }
}

/// How a topic is read: serdes, timestamp extractor, source name.
pub struct Consumed<K, V> {
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
    pub(crate) extractor: Option<ExtractorRef>,
    pub(crate) name: Option<String>,
}

impl<K, V> Consumed<K, V> {
    pub fn with(keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        Consumed {
            keys,
            values,
            extractor: None,
            name: None,
        }
    }

    /// Event time from the record itself instead of its timestamp.
    pub fn with_timestamp_extractor(
        mut self,
        extractor: impl TimestampExtractor + 'static,
    ) -> Self {
        self.extractor = Some(Arc::new(extractor));
        self
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

/// How records are written to a topic.
pub struct Produced<K, V> {
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
    pub(crate) name: Option<String>,
}

impl<K, V> Produced<K, V> {
    pub fn with(keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        Produced {
            keys,
            values,
            name: None,
        }
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

/// Serdes (and a name) for a grouping that may repartition.
pub struct Grouped<K, V> {
    pub(crate) keys: Option<SerdeRef<K>>,
    pub(crate) values: Option<SerdeRef<V>>,
    pub(crate) name: Option<String>,
}

impl<K, V> Default for Grouped<K, V> {
    fn default() -> Self {
        Grouped {
            keys: None,
            values: None,
            name: None,
        }
    }
}

impl<K, V> Grouped<K, V> {
    pub fn with(keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        Grouped {
            keys: Some(keys),
            values: Some(values),
            name: None,
        }
    }

    /// Names the repartition topic `<application.id>-<name>-repartition`.
    pub fn as_name(name: &str) -> Self {
        Grouped {
            name: Some(name.to_string()),
            ..Grouped::default()
        }
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

/// A store behind a table: its name (queryable), serdes, and kind.
pub struct Materialized<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) keys: Option<SerdeRef<K>>,
    pub(crate) values: Option<SerdeRef<V>>,
    pub(crate) persistent: bool,
    pub(crate) logged: bool,
    pub(crate) retention_ms: Option<i64>,
}

impl<K, V> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized {
            name: None,
            keys: None,
            values: None,
            persistent: true,
            logged: true,
            retention_ms: None,
        }
    }
}

impl<K, V> Materialized<K, V> {
    /// A store named `name`, queryable under that name.
    pub fn as_store(name: &str) -> Self {
        Materialized {
            name: Some(name.to_string()),
            ..Materialized::default()
        }
    }

    pub fn with(keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        Materialized {
            keys: Some(keys),
            values: Some(values),
            ..Materialized::default()
        }
    }

    pub fn with_key_serde(mut self, keys: SerdeRef<K>) -> Self {
        self.keys = Some(keys);
        self
    }

    pub fn with_value_serde(mut self, values: SerdeRef<V>) -> Self {
        self.values = Some(values);
        self
    }

    pub fn in_memory(mut self) -> Self {
        self.persistent = false;
        self
    }

    pub fn with_logging_disabled(mut self) -> Self {
        self.logged = false;
        self
    }

    /// How long a windowed store keeps windows (default: window size plus grace).
    pub fn with_retention(mut self, retention: std::time::Duration) -> Self {
        self.retention_ms = Some(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        self
    }
}

/// A repartition topic made on request (`KStream::repartition`).
pub struct Repartitioned<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) keys: Option<SerdeRef<K>>,
    pub(crate) values: Option<SerdeRef<V>>,
    pub(crate) partitions: Option<i32>,
}

impl<K, V> Default for Repartitioned<K, V> {
    fn default() -> Self {
        Repartitioned {
            name: None,
            keys: None,
            values: None,
            partitions: None,
        }
    }
}

impl<K, V> Repartitioned<K, V> {
    pub fn with(keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        Repartitioned {
            keys: Some(keys),
            values: Some(values),
            ..Repartitioned::default()
        }
    }

    pub fn as_name(name: &str) -> Self {
        Repartitioned {
            name: Some(name.to_string()),
            ..Repartitioned::default()
        }
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    pub fn with_partitions(mut self, partitions: i32) -> Self {
        self.partitions = Some(partitions);
        self
    }
}

/// Serdes of a stream-stream join's key and both values.
pub struct StreamJoined<K, V1, V2> {
    pub(crate) keys: Option<SerdeRef<K>>,
    pub(crate) values: Option<SerdeRef<V1>>,
    pub(crate) other_values: Option<SerdeRef<V2>>,
    pub(crate) name: Option<String>,
}

impl<K, V1, V2> Default for StreamJoined<K, V1, V2> {
    fn default() -> Self {
        StreamJoined {
            keys: None,
            values: None,
            other_values: None,
            name: None,
        }
    }
}

impl<K, V1, V2> StreamJoined<K, V1, V2> {
    pub fn with(keys: SerdeRef<K>, values: SerdeRef<V1>, other_values: SerdeRef<V2>) -> Self {
        StreamJoined {
            keys: Some(keys),
            values: Some(values),
            other_values: Some(other_values),
            name: None,
        }
    }

    /// Names the join's stores (`<name>-this-join-store`, `<name>-other-join-store`).
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

/// A serde that must be there: the given one, else the inherited one, else a recorded
/// error naming `what` (reported by `build`).
pub(crate) fn serde_or<T: 'static>(
    graph: &Graph,
    given: Option<SerdeRef<T>>,
    inherited: &Option<SerdeRef<T>>,
    what: &str,
) -> Option<SerdeRef<T>> {
    let s = given.or_else(|| inherited.clone());
    if s.is_none() {
        graph.error(format!(
            "{what} needs a serde for {} (pass one in Grouped/Materialized/Produced/...)",
            std::any::type_name::<T>()
        ));
    }
    s
}

pub(crate) mod stream_never {
    //! A serde that always fails, standing in where a topology error was recorded.
    pub(crate) struct Never;

    impl<T: 'static> crate::serdes::Serde<T> for Never {
        fn serialize(&self, _: &T) -> Result<Option<bytes::Bytes>, crate::serdes::SerdeError> {
            Err(crate::serdes::SerdeError(
                "no serde (see the topology error)".into(),
            ))
        }
        fn deserialize(&self, _: Option<&[u8]>) -> Result<T, crate::serdes::SerdeError> {
            Err(crate::serdes::SerdeError(
                "no serde (see the topology error)".into(),
            ))
        }
    }
}
