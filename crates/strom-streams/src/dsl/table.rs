//! [`KTable`] (a changelog stream of per-key updates, each a [`Change`] of new and old
//! value) and [`GlobalKTable`]. A table can always be read by key through its *getter*:
//! a materialized table reads its store, a derived one (`filter`, `map_values`, a join)
//! reads its parents' getters and applies itself, as Kafka's value getters do.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::grouped::KGroupedTable;
use super::stream::{add_source, typed_decode, KStream};
use super::{serde_or, Consumed, Data, Graph, Grouped, Materialized};
use crate::error::{Result, StreamsError};
use crate::processor::{stateless, Ctx, Node, NodeFactory};
use crate::record::{Change, Rec};
use crate::serdes::SerdeRef;
use crate::state::typed::KeyValueStore;
use crate::state::{StoreCell, StoreSpec};
use crate::topology::{GlobalSpec, NodeKind, TopicName};

/// Reads a table's current value by key inside a task.
pub(crate) trait Getter<K, V>: Send {
    fn get(&mut self, key: &K) -> Result<Option<V>>;
}

/// Makes a table's getter for one task.
pub(crate) trait GetterSupplier<K, V>: Send + Sync {
    /// Stores the getter reads (its node must be connected to them).
    fn stores(&self) -> Vec<String>;
    fn make(&self, stores: &HashMap<String, StoreCell>) -> Result<Box<dyn Getter<K, V>>>;
}

pub(crate) type GetterRef<K, V> = Arc<dyn GetterSupplier<K, V>>;

pub(crate) struct StoreGetter<K, V> {
    pub store: String,
    pub keys: SerdeRef<K>,
    pub values: SerdeRef<V>,
}

impl<K: Data, V: Data> GetterSupplier<K, V> for StoreGetter<K, V> {
    fn stores(&self) -> Vec<String> {
        vec![self.store.clone()]
    }
    fn make(&self, stores: &HashMap<String, StoreCell>) -> Result<Box<dyn Getter<K, V>>> {
        let cell = stores
            .get(&self.store)
            .cloned()
            .ok_or_else(|| StreamsError::Topology(format!("store {} not connected", self.store)))?;
        Ok(Box::new(KeyValueStore::new(
            &self.store,
            cell,
            self.keys.clone(),
            self.values.clone(),
        )))
    }
}

impl<K: Data, V: Data> Getter<K, V> for KeyValueStore<K, V> {
    fn get(&mut self, key: &K) -> Result<Option<V>> {
        KeyValueStore::get(self, key)
    }
}

type MapFn<K, V, V2> = Arc<dyn Fn(&K, V) -> Option<V2> + Send + Sync>;

struct MapGetter<K, V, V2> {
    parent: GetterRef<K, V>,
    f: MapFn<K, V, V2>,
}

impl<K: Data, V: Data, V2: Data> GetterSupplier<K, V2> for MapGetter<K, V, V2> {
    fn stores(&self) -> Vec<String> {
        self.parent.stores()
    }
    fn make(&self, stores: &HashMap<String, StoreCell>) -> Result<Box<dyn Getter<K, V2>>> {
        let inner = self.parent.make(stores)?;
        let f = self.f.clone();
        Ok(Box::new(FnGetter {
            f: move |k: &K, inner: &mut Box<dyn Getter<K, V>>| {
                Ok(inner.get(k)?.and_then(|v| f(k, v)))
            },
            inner,
        }))
    }
}

pub(crate) struct FnGetter<K, V, F> {
    pub f: F,
    pub inner: Box<dyn Getter<K, V>>,
}

impl<K, V, V2, F> Getter<K, V2> for FnGetter<K, V, F>
where
    K: Send,
    V: Send,
    F: FnMut(&K, &mut Box<dyn Getter<K, V>>) -> Result<Option<V2>> + Send,
{
    fn get(&mut self, key: &K) -> Result<Option<V2>> {
        (self.f)(key, &mut self.inner)
    }
}

/// Window size and grace of a windowed table (for `suppress`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowMeta {
    pub grace_ms: i64,
}

/// A table: per key, the latest value.
pub struct KTable<K, V> {
    pub(crate) graph: Graph,
    pub(crate) node: usize,
    pub(crate) keys: Option<SerdeRef<K>>,
    pub(crate) values: Option<SerdeRef<V>>,
    pub(crate) store: Option<String>,
    pub(crate) getter: GetterRef<K, V>,
    pub(crate) window: Option<WindowMeta>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            graph: self.graph.clone(),
            node: self.node,
            keys: self.keys.clone(),
            values: self.values.clone(),
            store: self.store.clone(),
            getter: self.getter.clone(),
            window: self.window,
        }
    }
}

struct MaterializeNode<K, V> {
    store: String,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
    kv: Option<KeyValueStore<K, V>>,
}

impl<K: Data, V: Data> Node for MaterializeNode<K, V> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<()> {
        self.kv = Some(ctx.kv_store(&self.store, &self.keys, &self.values)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: Rec) -> Result<()> {
        let Some(kv) = &self.kv else {
            return Err(StreamsError::Topology("table store not initialized".into()));
        };
        let key = rec.key::<K>()?;
        if self.keys.serialize(key).ok().flatten().is_none() {
            ctx.skipped();
            return Ok(());
        }
        let new = rec.value::<Option<V>>()?.clone();
        let old = match &new {
            Some(v) => {
                let old = kv.get(key)?;
                kv.put(key, v)?;
                old
            }
            None => kv.delete(key)?,
        };
        let key = key.clone();
        ctx.forward(rec.with(key, Change { new, old }))
    }
}

/// Adds a node that applies `Option<V>` updates to a store and emits changes.
pub(crate) fn materialize_updates<K: Data, V: Data>(
    graph: &Graph,
    parent: usize,
    keys: Option<SerdeRef<K>>,
    values: Option<SerdeRef<V>>,
    materialized: Materialized<K, V>,
    prefix: &str,
) -> KTable<K, V> {
    let keys = serde_or(graph, materialized.keys.clone(), &keys, "a table's store");
    let values = serde_or(
        graph,
        materialized.values.clone(),
        &values,
        "a table's store",
    );
    let store = materialized
        .name
        .clone()
        .unwrap_or_else(|| graph.next_name(&format!("{prefix}-STATE-STORE")));
    let (Some(k), Some(v)) = (keys, values) else {
        return broken(graph, parent);
    };
    let mut spec = StoreSpec::key_value(&store).with_serdes(k.clone(), v.clone());
    spec.persistent = materialized.persistent;
    spec.logged = materialized.logged;
    graph.lock().add_store(spec);
    let (s, kk, vv) = (store.clone(), k.clone(), v.clone());
    let factory: NodeFactory = Arc::new(move || {
        Box::new(MaterializeNode {
            store: s.clone(),
            keys: kk.clone(),
            values: vv.clone(),
            kv: None,
        }) as Box<dyn Node>
    });
    let node = graph.add(
        prefix,
        NodeKind::Processor,
        &[parent],
        vec![store.clone()],
        factory,
    );
    KTable {
        graph: graph.clone(),
        node,
        keys: Some(k.clone()),
        values: Some(v.clone()),
        store: Some(store.clone()),
        getter: Arc::new(StoreGetter {
            store,
            keys: k,
            values: v,
        }),
        window: None,
    }
}

/// A placeholder table after an error was recorded (build() reports it).
fn broken<K: Data, V: Data>(graph: &Graph, node: usize) -> KTable<K, V> {
    KTable {
        graph: graph.clone(),
        node,
        keys: None,
        values: None,
        store: None,
        getter: Arc::new(StoreGetter {
            store: String::new(),
            keys: Arc::new(NeverSerde),
            values: Arc::new(NeverSerde),
        }),
        window: None,
    }
}

struct NeverSerde;

impl<T: 'static> crate::serdes::Serde<T> for NeverSerde {
    fn serialize(&self, _: &T) -> std::result::Result<Option<Bytes>, crate::serdes::SerdeError> {
        Err(crate::serdes::SerdeError(
            "no serde (see the topology error)".into(),
        ))
    }
    fn deserialize(&self, _: Option<&[u8]>) -> std::result::Result<T, crate::serdes::SerdeError> {
        Err(crate::serdes::SerdeError(
            "no serde (see the topology error)".into(),
        ))
    }
}

pub(crate) fn source<K: Data, V: Data>(
    graph: &Graph,
    topic: &str,
    consumed: Consumed<K, V>,
    materialized: Materialized<K, V>,
) -> KTable<K, V> {
    let (keys, values) = (consumed.keys.clone(), consumed.values.clone());
    let nullable: SerdeRef<Option<V>> = crate::serdes::Serdes::nullable(values.clone());
    let decode = typed_decode(keys.clone(), nullable, topic.to_string());
    let src = add_source(
        graph,
        consumed.name,
        vec![TopicName::User(topic.to_string())],
        decode,
        consumed.extractor,
    );
    materialize_updates(
        graph,
        src,
        Some(keys),
        Some(values),
        materialized,
        "KTABLE-SOURCE",
    )
}

/// A table of a whole topic on every instance.
pub struct GlobalKTable<K, V> {
    pub(crate) store: String,
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
}

impl<K, V> Clone for GlobalKTable<K, V> {
    fn clone(&self) -> Self {
        GlobalKTable {
            store: self.store.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
        }
    }
}

impl<K, V> GlobalKTable<K, V> {
    /// The name of the store holding the table (queryable).
    pub fn store_name(&self) -> &str {
        &self.store
    }
}

pub(crate) fn global<K: Data, V: Data>(
    graph: &Graph,
    topic: &str,
    consumed: Consumed<K, V>,
    materialized: Materialized<K, V>,
) -> GlobalKTable<K, V> {
    let store = materialized
        .name
        .clone()
        .unwrap_or_else(|| graph.next_name(&format!("{topic}-GLOBAL-STORE")));
    let mut spec =
        StoreSpec::key_value(&store).with_serdes(consumed.keys.clone(), consumed.values.clone());
    // The topic itself is the changelog; the store is rebuilt from it on every start.
    spec.logged = false;
    spec.persistent = false;
    let mut g = graph.lock();
    g.add_store(spec);
    g.globals.push(GlobalSpec {
        topic: topic.to_string(),
        store: store.clone(),
    });
    GlobalKTable {
        store,
        keys: consumed.keys,
        values: consumed.values,
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    pub(crate) fn derive<V2: Data>(
        &self,
        node: usize,
        values: Option<SerdeRef<V2>>,
        getter: GetterRef<K, V2>,
    ) -> KTable<K, V2> {
        KTable {
            graph: self.graph.clone(),
            node,
            keys: self.keys.clone(),
            values,
            store: None,
            getter,
            window: self.window,
        }
    }

    /// The store that holds this table, if it is materialized (queryable by this name).
    pub fn queryable_store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    /// Keeps rows for which `predicate` holds (others read as absent).
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        let p = Arc::new(predicate);
        let p2 = p.clone();
        let node = self.graph.add(
            "KTABLE-FILTER",
            NodeKind::Processor,
            &[self.node],
            Vec::new(),
            stateless(move |ctx, rec| {
                let key = rec.key::<K>()?;
                let c = rec.value::<Change<V>>()?;
                let new = c.new.clone().filter(|v| p(key, v));
                let old = c.old.clone().filter(|v| p(key, v));
                if new.is_none() && old.is_none() {
                    return Ok(());
                }
                ctx.forward(rec.with_value(Change { new, old }))
            }),
        );
        let getter = Arc::new(MapGetter {
            parent: self.getter.clone(),
            f: Arc::new(move |k: &K, v: V| if p2(k, &v) { Some(v) } else { None }),
        });
        self.derive(node, self.values.clone(), getter)
    }

    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// A table of `f` of each value.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(&V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let f = Arc::new(f);
        let f2 = f.clone();
        let node = self.graph.add(
            "KTABLE-MAPVALUES",
            NodeKind::Processor,
            &[self.node],
            Vec::new(),
            stateless(move |ctx, rec| {
                let c = rec.value::<Change<V>>()?;
                let change = Change {
                    new: c.new.as_ref().map(|v| f(v)),
                    old: c.old.as_ref().map(|v| f(v)),
                };
                ctx.forward(rec.with_value(change))
            }),
        );
        let getter = Arc::new(MapGetter {
            parent: self.getter.clone(),
            f: Arc::new(move |_: &K, v: V| Some(f2(&v))),
        });
        self.derive(node, None, getter)
    }

    /// The table's updates as a stream (`None`: the key was deleted).
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let node = self.graph.add(
            "KTABLE-TOSTREAM",
            NodeKind::Processor,
            &[self.node],
            Vec::new(),
            stateless(|ctx, rec| {
                let new = rec.value::<Change<V>>()?.new.clone();
                ctx.forward(rec.with_value(new))
            }),
        );
        KStream {
            graph: self.graph.clone(),
            node,
            keys: self.keys.clone(),
            values: self.values.clone().map(crate::serdes::Serdes::nullable),
            repartition_required: false,
        }
    }

    /// Re-groups the rows by a new key for an aggregation with add and subtract steps.
    pub fn group_by<K2: Data, V2: Data>(
        &self,
        selector: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
        grouped: Grouped<K2, V2>,
    ) -> KGroupedTable<K2, V2> {
        KGroupedTable::new(self, Arc::new(selector), grouped)
    }
}
