//! Grouped streams and tables and their aggregations (`count`, `reduce`, `aggregate`)
//! into key-value stores. A grouped table aggregates with an adder and a subtractor: each
//! update travels through the repartition topic as "subtract the old row" and "add the
//! new row" records (a flag byte before the value), as Kafka's does.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::stream::{add_repartition, Decode, Encode, KStream};
use super::table::{KTable, StoreGetter};
use super::windowed::{SessionWindowedKStream, TimeWindowedKStream, WindowKind};
use super::{serde_or, Data, Graph, Grouped, Materialized};
use crate::error::{Result, StreamsError};
use crate::processor::{Ctx, Node, NodeFactory};
use crate::record::{Change, Rec};
use crate::serdes::{SerdeRef, Serdes};
use crate::state::typed::KeyValueStore;
use crate::state::StoreSpec;
use crate::topology::{NodeKind, RepartitionSpec};
use crate::windows::{SessionWindows, SlidingWindows, TimeWindows};

/// The aggregation step: key, value, previous aggregate (`None`: first value).
pub(crate) type AggFn<K, V, VA> = Arc<dyn Fn(&K, &V, Option<&VA>) -> VA + Send + Sync>;

/// A table row's new grouping key and value.
pub(crate) type Selector<K0, V0, K, V> = Arc<dyn Fn(&K0, &V0) -> (K, V) + Send + Sync>;

/// A stream grouped by key, ready to aggregate.
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
    pub(crate) keys: Option<SerdeRef<K>>,
    pub(crate) values: Option<SerdeRef<V>>,
    pub(crate) name: Option<String>,
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    pub(crate) fn new(stream: KStream<K, V>, grouped: Grouped<K, V>) -> Self {
        let keys = grouped.keys.or_else(|| stream.keys.clone());
        let values = grouped.values.or_else(|| stream.values.clone());
        KGroupedStream {
            stream,
            keys,
            values,
            name: grouped.name,
        }
    }

    /// The stream to aggregate: repartitioned through `<name or store>-repartition` if
    /// the key may have changed.
    pub(crate) fn prepared(&self, store: &str) -> KStream<K, V> {
        if !self.stream.repartition_required {
            return self.stream.clone();
        }
        let g = &self.stream.graph;
        let keys = serde_or(
            g,
            None,
            &self.keys,
            "a repartition before an aggregation (key)",
        );
        let values = serde_or(
            g,
            None,
            &self.values,
            "a repartition before an aggregation (value)",
        );
        match (keys, values) {
            (Some(k), Some(v)) => {
                let name = self.name.clone().unwrap_or_else(|| store.to_string());
                self.stream
                    .repartition_through(&name, k, v, RepartitionSpec::default())
            }
            _ => self.stream.clone(),
        }
    }

    /// Counts records per key.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        let materialized = Materialized {
            values: materialized.values.clone().or_else(|| Some(Serdes::i64())),
            ..materialized
        };
        self.aggregate_with(
            Arc::new(|_, _, c: Option<&i64>| c.copied().unwrap_or(0) + 1),
            materialized,
            "KSTREAM-AGGREGATE",
        )
    }

    /// Combines the values per key with `reducer(aggregate, value)`.
    pub fn reduce(
        &self,
        reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let materialized = Materialized {
            values: materialized.values.clone().or_else(|| self.values.clone()),
            ..materialized
        };
        self.aggregate_with(
            Arc::new(move |_, v, agg: Option<&V>| match agg {
                Some(a) => reducer(a, v),
                None => v.clone(),
            }),
            materialized,
            "KSTREAM-REDUCE",
        )
    }

    /// Folds the values per key, starting from `initializer()`.
    pub fn aggregate<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, &VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        self.aggregate_with(
            Arc::new(move |k, v, agg: Option<&VA>| match agg {
                Some(a) => aggregator(k, v, a),
                None => aggregator(k, v, &initializer()),
            }),
            materialized,
            "KSTREAM-AGGREGATE",
        )
    }

    fn aggregate_with<VA: Data>(
        &self,
        agg: AggFn<K, V, VA>,
        materialized: Materialized<K, VA>,
        prefix: &str,
    ) -> KTable<K, VA> {
        let g = self.stream.graph.clone();
        let store = materialized
            .name
            .clone()
            .unwrap_or_else(|| g.next_name(&format!("{prefix}-STATE-STORE")));
        let stream = self.prepared(&store);
        let keys = serde_or(
            &g,
            materialized.keys.clone(),
            &self.keys,
            "an aggregation's store (key)",
        );
        let values = serde_or(
            &g,
            materialized.values.clone(),
            &None,
            "an aggregation's store (value)",
        );
        let (Some(k), Some(va)) = (keys, values) else {
            return placeholder(&g, stream.node);
        };
        let mut spec = StoreSpec::key_value(&store).with_serdes(k.clone(), va.clone());
        spec.persistent = materialized.persistent;
        spec.logged = materialized.logged;
        g.lock().add_store(spec);
        let (s, kk, vv) = (store.clone(), k.clone(), va.clone());
        let factory: NodeFactory = Arc::new(move || {
            Box::new(AggregateNode {
                store: s.clone(),
                keys: kk.clone(),
                values: vv.clone(),
                agg: agg.clone(),
                kv: None,
            }) as Box<dyn Node>
        });
        let node = g.add(
            prefix,
            NodeKind::Processor,
            &[stream.node],
            vec![store.clone()],
            factory,
        );
        KTable {
            graph: g.clone(),
            node,
            keys: Some(k.clone()),
            values: Some(va.clone()),
            store: Some(store.clone()),
            getter: Arc::new(StoreGetter {
                store,
                keys: k,
                values: va,
            }),
            window: None,
        }
    }

    /// Aggregates per key and tumbling or hopping window.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream::new(self.clone(), WindowKind::Time(windows))
    }

    /// Aggregates per key and sliding window.
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream::new(self.clone(), WindowKind::Sliding(windows))
    }

    /// Aggregates per key and session.
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream::new(self.clone(), windows)
    }
}

impl<K, V> Clone for KGroupedStream<K, V> {
    fn clone(&self) -> Self {
        KGroupedStream {
            stream: self.stream.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
            name: self.name.clone(),
        }
    }
}

pub(crate) fn placeholder<K: Data, V: Data>(g: &Graph, node: usize) -> KTable<K, V> {
    KTable {
        graph: g.clone(),
        node,
        keys: None,
        values: None,
        store: None,
        getter: Arc::new(StoreGetter {
            store: String::new(),
            keys: Arc::new(super::stream_never::Never),
            values: Arc::new(super::stream_never::Never),
        }),
        window: None,
    }
}

/// Skips records whose key serializes to null (Kafka drops them from aggregations).
pub(crate) fn null_key<K: 'static>(keys: &SerdeRef<K>, key: &K) -> bool {
    !matches!(keys.serialize(key), Ok(Some(_)))
}

struct AggregateNode<K, V, VA> {
    store: String,
    keys: SerdeRef<K>,
    values: SerdeRef<VA>,
    agg: AggFn<K, V, VA>,
    kv: Option<KeyValueStore<K, VA>>,
}

impl<K: Data, V: Data, VA: Data> Node for AggregateNode<K, V, VA> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<()> {
        self.kv = Some(ctx.kv_store(&self.store, &self.keys, &self.values)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: Rec) -> Result<()> {
        let kv = self
            .kv
            .as_ref()
            .ok_or_else(|| StreamsError::Topology("aggregate store not initialized".into()))?;
        let key = rec.key::<K>()?;
        if null_key(&self.keys, key) {
            ctx.skipped();
            return Ok(());
        }
        let value = rec.value::<V>()?;
        let old = kv.get(key)?;
        let new = (self.agg)(key, value, old.as_ref());
        kv.put(key, &new)?;
        let key = key.clone();
        ctx.forward(rec.with(
            key,
            Change {
                new: Some(new),
                old,
            },
        ))
    }
}

/// One row moving between groups: added to its new group or subtracted from its old.
#[derive(Debug, Clone)]
pub(crate) struct GroupedRow<V> {
    pub add: bool,
    pub value: V,
}

/// A table re-grouped by a new key.
pub struct KGroupedTable<K, V> {
    pub(crate) graph: Graph,
    /// The node emitting `(new key, GroupedRow)` records, before the repartition.
    pub(crate) node: usize,
    pub(crate) keys: Option<SerdeRef<K>>,
    pub(crate) values: Option<SerdeRef<V>>,
    pub(crate) name: Option<String>,
}

impl<K: Data, V: Data> KGroupedTable<K, V> {
    pub(crate) fn new<K0: Data, V0: Data>(
        table: &KTable<K0, V0>,
        selector: Selector<K0, V0, K, V>,
        grouped: Grouped<K, V>,
    ) -> Self {
        let node = table.graph.add(
            "KTABLE-SELECT",
            NodeKind::Processor,
            &[table.node],
            Vec::new(),
            crate::processor::stateless(move |ctx, rec| {
                let key = rec.key::<K0>()?;
                let c = rec.value::<Change<V0>>()?;
                if let Some(old) = &c.old {
                    let (k, v) = selector(key, old);
                    ctx.forward(rec.with(
                        k,
                        GroupedRow {
                            add: false,
                            value: v,
                        },
                    ))?;
                }
                if let Some(new) = &c.new {
                    let (k, v) = selector(key, new);
                    ctx.forward(rec.with(
                        k,
                        GroupedRow {
                            add: true,
                            value: v,
                        },
                    ))?;
                }
                Ok(())
            }),
        );
        KGroupedTable {
            graph: table.graph.clone(),
            node,
            keys: grouped.keys,
            values: grouped.values,
            name: grouped.name,
        }
    }

    /// Counts rows per new key.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        let materialized = Materialized {
            values: materialized.values.clone().or_else(|| Some(Serdes::i64())),
            ..materialized
        };
        self.aggregate_with(
            Arc::new(|_, _, c: Option<&i64>| c.copied().unwrap_or(0) + 1),
            Arc::new(|_, _, c: Option<&i64>| c.copied().unwrap_or(0) - 1),
            materialized,
        )
    }

    /// Combines rows per new key with `adder` and takes moved-out rows off with `subtractor`.
    pub fn reduce(
        &self,
        adder: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let materialized = Materialized {
            values: materialized.values.clone().or_else(|| self.values.clone()),
            ..materialized
        };
        self.aggregate_with(
            Arc::new(move |_, v, a: Option<&V>| match a {
                Some(a) => adder(a, v),
                None => v.clone(),
            }),
            Arc::new(move |_, v, a: Option<&V>| match a {
                Some(a) => subtractor(a, v),
                None => v.clone(),
            }),
            materialized,
        )
    }

    /// Folds rows per new key from `initializer()` with `adder` and `subtractor`.
    pub fn aggregate<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, &V, &VA) -> VA + Send + Sync + 'static,
        subtractor: impl Fn(&K, &V, &VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        let init = Arc::new(initializer);
        let init2 = init.clone();
        self.aggregate_with(
            Arc::new(move |k, v, a: Option<&VA>| match a {
                Some(a) => adder(k, v, a),
                None => adder(k, v, &init()),
            }),
            Arc::new(move |k, v, a: Option<&VA>| match a {
                Some(a) => subtractor(k, v, a),
                None => subtractor(k, v, &init2()),
            }),
            materialized,
        )
    }

    fn aggregate_with<VA: Data>(
        &self,
        adder: AggFn<K, V, VA>,
        subtractor: AggFn<K, V, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        let g = self.graph.clone();
        let store = materialized
            .name
            .clone()
            .unwrap_or_else(|| g.next_name("KTABLE-AGGREGATE-STATE-STORE"));
        let keys = serde_or(
            &g,
            self.keys.clone(),
            &materialized.keys,
            "a table group_by (key)",
        );
        let values = serde_or(&g, self.values.clone(), &None, "a table group_by (value)");
        let aggs = serde_or(
            &g,
            materialized.values.clone(),
            &None,
            "a table aggregation's store (value)",
        );
        let (Some(k), Some(v), Some(va)) = (keys, values, aggs) else {
            return placeholder(&g, self.node);
        };
        let name = self.name.clone().unwrap_or_else(|| store.clone());
        let src = add_repartition(
            &g,
            self.node,
            &name,
            grouped_encode(k.clone(), v.clone()),
            grouped_decode(k.clone(), v.clone()),
            RepartitionSpec::default(),
        );
        let mut spec = StoreSpec::key_value(&store).with_serdes(k.clone(), va.clone());
        spec.persistent = materialized.persistent;
        spec.logged = materialized.logged;
        g.lock().add_store(spec);
        let (s, kk, vv) = (store.clone(), k.clone(), va.clone());
        let factory: NodeFactory = Arc::new(move || {
            Box::new(TableAggregateNode {
                store: s.clone(),
                keys: kk.clone(),
                values: vv.clone(),
                adder: adder.clone(),
                subtractor: subtractor.clone(),
                kv: None,
            }) as Box<dyn Node>
        });
        let node = g.add(
            "KTABLE-AGGREGATE",
            NodeKind::Processor,
            &[src],
            vec![store.clone()],
            factory,
        );
        KTable {
            graph: g.clone(),
            node,
            keys: Some(k.clone()),
            values: Some(va.clone()),
            store: Some(store.clone()),
            getter: Arc::new(StoreGetter {
                store,
                keys: k,
                values: va,
            }),
            window: None,
        }
    }
}

fn grouped_encode<K: Data, V: Data>(keys: SerdeRef<K>, values: SerdeRef<V>) -> Encode {
    Arc::new(move |rec| {
        let k = keys
            .serialize(rec.key::<K>()?)
            .map_err(|e| StreamsError::Serde {
                what: "table group_by key".into(),
                reason: e.0,
            })?;
        if k.is_none() {
            return Ok(None);
        }
        let row = rec.value::<GroupedRow<V>>()?;
        let v = values
            .serialize(&row.value)
            .map_err(|e| StreamsError::Serde {
                what: "table group_by value".into(),
                reason: e.0,
            })?;
        let mut b = BytesMut::new();
        b.put_u8(u8::from(row.add));
        if let Some(v) = v {
            b.put_slice(&v);
        }
        Ok(Some((k, Some(b.freeze()))))
    })
}

fn grouped_decode<K: Data, V: Data>(keys: SerdeRef<K>, values: SerdeRef<V>) -> Decode {
    Arc::new(move |k, v, rec| {
        let key = keys
            .deserialize(k.as_deref())
            .map_err(|e| StreamsError::Serde {
                what: "table group_by key".into(),
                reason: e.0,
            })?;
        let v: &Bytes = v.as_ref().ok_or_else(|| StreamsError::Serde {
            what: "table group_by value".into(),
            reason: "null".into(),
        })?;
        let (flag, rest) = v.split_first().ok_or_else(|| StreamsError::Serde {
            what: "table group_by value".into(),
            reason: "empty".into(),
        })?;
        let value = values
            .deserialize(Some(rest))
            .map_err(|e| StreamsError::Serde {
                what: "table group_by value".into(),
                reason: e.0,
            })?;
        Ok(Some(rec.with(
            key,
            GroupedRow {
                add: *flag == 1,
                value,
            },
        )))
    })
}

struct TableAggregateNode<K, V, VA> {
    store: String,
    keys: SerdeRef<K>,
    values: SerdeRef<VA>,
    adder: AggFn<K, V, VA>,
    subtractor: AggFn<K, V, VA>,
    kv: Option<KeyValueStore<K, VA>>,
}

impl<K: Data, V: Data, VA: Data> Node for TableAggregateNode<K, V, VA> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<()> {
        self.kv = Some(ctx.kv_store(&self.store, &self.keys, &self.values)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: Rec) -> Result<()> {
        let kv = self
            .kv
            .as_ref()
            .ok_or_else(|| StreamsError::Topology("aggregate store not initialized".into()))?;
        let key = rec.key::<K>()?;
        let row = rec.value::<GroupedRow<V>>()?;
        let old = kv.get(key)?;
        if !row.add && old.is_none() {
            return Ok(());
        }
        let new = if row.add {
            (self.adder)(key, &row.value, old.as_ref())
        } else {
            (self.subtractor)(key, &row.value, old.as_ref())
        };
        kv.put(key, &new)?;
        let key = key.clone();
        ctx.forward(rec.with(
            key,
            Change {
                new: Some(new),
                old,
            },
        ))
    }
}
