//! Joins: stream-stream (windowed, inner/left/outer), stream-table, stream-global-table,
//! table-table (inner/left/outer) and foreign-key table-table.
//!
//! Both sides of a stream-stream, stream-table or table-table join must be co-partitioned
//! (same key, same partition count): a side whose key may have changed is repartitioned
//! first, and the source topics are registered as a co-partition group checked at start.
//!
//! Stream-stream left and outer joins emit a record without a partner only once its join
//! window has closed (stream time past `ts + after + grace`), as Kafka does since 3.1:
//! such records wait in a logged "outer" store.
//!
//! A foreign-key join sends each left row's subscription (its key and a hash of its value)
//! to a topic partitioned by the foreign key, where the right table's task keeps
//! subscriptions and answers them (now and on every right-side change) on a response topic
//! partitioned by the left key; the left task keeps a response only if the hash still
//! matches the row's current value, so stale answers are dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::grouped::null_key;
use super::stream::{add_repartition, Decode, Encode, KStream};
use super::table::{
    FnGetter, Getter, GetterRef, GetterSupplier, GlobalKTable, KTable, StoreGetter,
};
use super::{serde_or, Data, Materialized, StreamJoined};
use crate::error::{Result, StreamsError};
use crate::processor::{stateless, Ctx, Node, NodeFactory};
use crate::record::{Change, Rec};
use crate::serdes::{from_bytes, to_bytes, SerdeRef, Serdes};
use crate::state::typed::{time_bytes, time_from, KeyValueStore, WindowStore};
use crate::state::{StoreCell, StoreKind, StoreSpec};
use crate::topology::{NodeKind, RepartitionSpec};
use crate::windows::JoinWindows;

type StreamJoiner<V, V2, VR> = Arc<dyn Fn(Option<&V>, Option<&V2>) -> Option<VR> + Send + Sync>;
type TableJoiner<V, V2, VR> = Arc<dyn Fn(Option<&V>, Option<&V2>) -> Option<VR> + Send + Sync>;

fn register_copartition(graph: &super::Graph, a: usize, b: usize) {
    let mut g = graph.lock();
    let mut sources = g.sources_of(a);
    sources.extend(g.sources_of(b));
    sources.sort_unstable();
    sources.dedup();
    g.copartition.push(sources);
}

impl<K: Data, V: Data> KStream<K, V> {
    /// This stream repartitioned by key if its key may have changed.
    fn co_partitioned(&self, name: &str, keys: Option<SerdeRef<K>>) -> KStream<K, V> {
        if !self.repartition_required {
            return self.clone();
        }
        let keys = serde_or(
            &self.graph,
            self.keys.clone().or(keys),
            &None,
            "a join after a key change (key)",
        );
        let values = serde_or(
            &self.graph,
            None,
            &self.values,
            "a join after a key change (value)",
        );
        match (keys, values) {
            (Some(k), Some(v)) => self.repartition_through(name, k, v, RepartitionSpec::default()),
            _ => self.clone(),
        }
    }

    /// Each record joined with the table's current value for its key (dropped when the
    /// table has none).
    pub fn join_table<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.stream_table(table, Arc::new(move |v, t| t.map(|t| joiner(v, t))))
    }

    /// Each record joined with the table's current value for its key, if any.
    pub fn left_join_table<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.stream_table(table, Arc::new(move |v, t| Some(joiner(v, t))))
    }

    #[allow(clippy::type_complexity)]
    fn stream_table<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: Arc<dyn Fn(&V, Option<&VT>) -> Option<VR> + Send + Sync>,
    ) -> KStream<K, VR> {
        let name = self.graph.next_name("KSTREAM-JOIN");
        let stream = self.co_partitioned(&format!("{name}-left"), table.keys.clone());
        let getter = table.getter.clone();
        let keys = stream.keys.clone().or_else(|| table.keys.clone());
        let factory: NodeFactory = Arc::new(move || {
            Box::new(StreamTableNode {
                getter_supplier: getter.clone(),
                getter: None,
                keys: keys.clone(),
                joiner: joiner.clone(),
            }) as Box<dyn Node>
        });
        let node = self.graph.add_named(
            Some(name),
            "KSTREAM-JOIN",
            NodeKind::Processor,
            &[stream.node],
            table.getter.stores(),
            factory,
        );
        register_copartition(&self.graph, stream.node, table.node);
        self.derive(node, stream.keys.clone(), None, false)
    }

    /// Each record joined with the global table's value for `key_mapper(key, value)`
    /// (dropped when there is none).
    pub fn join_global<GK: Data, GV: Data, VR: Data>(
        &self,
        global: &GlobalKTable<GK, GV>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, &GV) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.stream_global(
            global,
            Arc::new(key_mapper),
            Arc::new(move |v, g| g.map(|g| joiner(v, g))),
        )
    }

    /// Each record joined with the global table's value for `key_mapper(key, value)`, if any.
    pub fn left_join_global<GK: Data, GV: Data, VR: Data>(
        &self,
        global: &GlobalKTable<GK, GV>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&GV>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.stream_global(
            global,
            Arc::new(key_mapper),
            Arc::new(move |v, g| Some(joiner(v, g))),
        )
    }

    #[allow(clippy::type_complexity)]
    fn stream_global<GK: Data, GV: Data, VR: Data>(
        &self,
        global: &GlobalKTable<GK, GV>,
        key_mapper: Arc<dyn Fn(&K, &V) -> GK + Send + Sync>,
        joiner: Arc<dyn Fn(&V, Option<&GV>) -> Option<VR> + Send + Sync>,
    ) -> KStream<K, VR> {
        let g = global.clone();
        let node = self.graph.add(
            "KSTREAM-GLOBAL-JOIN",
            NodeKind::Processor,
            &[self.node],
            vec![global.store.clone()],
            Arc::new(move || {
                let g = g.clone();
                let key_mapper = key_mapper.clone();
                let joiner = joiner.clone();
                let mut kv: Option<KeyValueStore<GK, GV>> = None;
                Box::new(crate::processor::FnNode(
                    move |ctx: &mut Ctx<'_>, rec: Rec| {
                        if kv.is_none() {
                            kv = Some(ctx.kv_store(&g.store, &g.keys, &g.values)?);
                        }
                        let store = kv
                            .as_ref()
                            .ok_or_else(|| StreamsError::Topology("global store missing".into()))?;
                        let (k, v) = (rec.key::<K>()?, rec.value::<V>()?);
                        let gk = key_mapper(k, v);
                        let gv = if null_key(&g.keys, &gk) {
                            None
                        } else {
                            store.get(&gk)?
                        };
                        match joiner(v, gv.as_ref()) {
                            Some(out) => ctx.forward(rec.with_value(out)),
                            None => Ok(()),
                        }
                    },
                )) as Box<dyn Node>
            }),
        );
        self.derive(node, self.keys.clone(), None, self.repartition_required)
    }

    /// Records of both streams with the same key within `windows` of each other, joined.
    pub fn join<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&V, &V2) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VR> {
        self.stream_stream(
            other,
            Arc::new(move |a, b| match (a, b) {
                (Some(a), Some(b)) => Some(joiner(a, b)),
                _ => None,
            }),
            windows,
            joined,
            (false, false),
        )
    }

    /// As `join`, and each record of this stream that found no partner within the window
    /// is emitted once the window closes, with `None`.
    pub fn left_join<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&V, Option<&V2>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VR> {
        self.stream_stream(
            other,
            Arc::new(move |a, b| a.map(|a| joiner(a, b))),
            windows,
            joined,
            (true, false),
        )
    }

    /// As `left_join`, for records of either stream.
    pub fn outer_join<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VR> {
        self.stream_stream(
            other,
            Arc::new(move |a, b| Some(joiner(a, b))),
            windows,
            joined,
            (true, true),
        )
    }

    fn stream_stream<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: StreamJoiner<V, V2, VR>,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
        outer: (bool, bool),
    ) -> KStream<K, VR> {
        let g = self.graph.clone();
        let name = joined
            .name
            .clone()
            .unwrap_or_else(|| g.next_name("KSTREAM-JOIN"));
        let key_hint = joined
            .keys
            .clone()
            .or_else(|| self.keys.clone())
            .or_else(|| other.keys.clone());
        let this = self.co_partitioned(&format!("{name}-left"), key_hint.clone());
        let that = other.co_partitioned(&format!("{name}-right"), key_hint);
        let keys = serde_or(
            &g,
            joined.keys.clone(),
            &this.keys.clone().or_else(|| that.keys.clone()),
            "a stream-stream join (key)",
        );
        let v1 = serde_or(
            &g,
            joined.values.clone(),
            &this.values,
            "a stream-stream join (this value)",
        );
        let v2 = serde_or(
            &g,
            joined.other_values.clone(),
            &that.values,
            "a stream-stream join (other value)",
        );
        let (Some(k), Some(v1), Some(v2)) = (keys, v1, v2) else {
            return self.derive(self.node, None, None, false);
        };
        let retention = windows
            .before_ms
            .saturating_add(windows.after_ms)
            .saturating_add(windows.grace_ms);
        let this_store = format!("{name}-this-join-store");
        let other_store = format!("{name}-other-join-store");
        let outer_store = format!("{name}-outer-shared-join-store");
        for (store, serdes) in [
            (
                &this_store,
                StoreSpec::key_value(&this_store).with_serdes(k.clone(), v1.clone()),
            ),
            (
                &other_store,
                StoreSpec::key_value(&other_store).with_serdes(k.clone(), v2.clone()),
            ),
        ] {
            let _ = store;
            let mut spec = serdes;
            spec.kind = StoreKind::Window {
                retention_ms: retention,
                duplicates: true,
            };
            g.lock().add_store(spec);
        }
        let any_outer = outer.0 || outer.1;
        let mut stores = vec![this_store.clone(), other_store.clone()];
        if any_outer {
            g.lock().add_store(
                StoreSpec::key_value(&outer_store).with_serdes(Serdes::bytes(), Serdes::bytes()),
            );
            stores.push(outer_store.clone());
        }
        let shared = Arc::new(JoinShared {
            time: format!("{name}-time"),
            this_store,
            other_store,
            outer_store: any_outer.then_some(outer_store),
            keys: k.clone(),
            v1,
            v2,
            windows,
            outer,
            joiner,
        });
        let (s1, s2) = (shared.clone(), shared.clone());
        let left = g.add(
            "KSTREAM-JOINTHIS",
            NodeKind::Processor,
            &[this.node],
            stores.clone(),
            Arc::new(move || {
                Box::new(StreamStreamNode {
                    shared: s1.clone(),
                    left: true,
                    time: None,
                }) as Box<dyn Node>
            }),
        );
        let right = g.add(
            "KSTREAM-JOINOTHER",
            NodeKind::Processor,
            &[that.node],
            stores,
            Arc::new(move || {
                Box::new(StreamStreamNode {
                    shared: s2.clone(),
                    left: false,
                    time: None,
                }) as Box<dyn Node>
            }),
        );
        let merge = g.add(
            "KSTREAM-MERGE",
            NodeKind::Processor,
            &[left, right],
            Vec::new(),
            stateless(|ctx, rec| ctx.forward(rec)),
        );
        register_copartition(&g, this.node, that.node);
        self.derive(merge, Some(k), None, false)
    }
}

struct StreamTableNode<K, V, VT, VR> {
    getter_supplier: GetterRef<K, VT>,
    getter: Option<Box<dyn Getter<K, VT>>>,
    keys: Option<SerdeRef<K>>,
    #[allow(clippy::type_complexity)]
    joiner: Arc<dyn Fn(&V, Option<&VT>) -> Option<VR> + Send + Sync>,
}

impl<K: Data, V: Data, VT: Data, VR: Data> Node for StreamTableNode<K, V, VT, VR> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<()> {
        self.getter = Some(self.getter_supplier.make(&ctx.task.stores)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: Rec) -> Result<()> {
        let key = rec.key::<K>()?;
        if self.keys.as_ref().is_some_and(|s| null_key(s, key)) {
            ctx.skipped();
            return Ok(());
        }
        let getter = self
            .getter
            .as_mut()
            .ok_or_else(|| StreamsError::Topology("join getter not initialized".into()))?;
        let t = getter.get(key)?;
        match (self.joiner)(rec.value::<V>()?, t.as_ref()) {
            Some(out) => ctx.forward(rec.with_value(out)),
            None => Ok(()),
        }
    }
}

struct JoinShared<K, V1, V2, VR> {
    time: String,
    this_store: String,
    other_store: String,
    outer_store: Option<String>,
    keys: SerdeRef<K>,
    v1: SerdeRef<V1>,
    v2: SerdeRef<V2>,
    windows: JoinWindows,
    /// Whether unmatched records of (this, other) side are emitted.
    outer: (bool, bool),
    joiner: StreamJoiner<V1, V2, VR>,
}

struct StreamStreamNode<K, V1, V2, VR> {
    shared: Arc<JoinShared<K, V1, V2, VR>>,
    left: bool,
    time: Option<Arc<AtomicI64>>,
}

/// Outer-store key: time, side (0 this, 1 other), serialized key.
fn outer_key(ts: i64, left: bool, key: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(9 + key.len());
    b.put_slice(&time_bytes(ts));
    b.put_u8(u8::from(!left));
    b.put_slice(key);
    b.freeze()
}

/// Appends a length-prefixed value to an outer-store entry.
fn push_value(existing: Option<Bytes>, value: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    if let Some(e) = existing {
        b.put_slice(&e);
    }
    b.put_u32(u32::try_from(value.len()).unwrap_or(u32::MAX));
    b.put_slice(value);
    b.freeze()
}

fn values_of(entry: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = entry;
    while rest.len() >= 4 {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() < 4 + n {
            break;
        }
        out.push(&rest[4..4 + n]);
        rest = &rest[4 + n..];
    }
    out
}

impl<K: Data, V1: Data, V2: Data, VR: Data> Node for StreamStreamNode<K, V1, V2, VR> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<()> {
        self.time = Some(ctx.shared(&self.shared.time, || AtomicI64::new(-1))?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: Rec) -> Result<()> {
        let s = self.shared.clone();
        let key = rec.key::<K>()?;
        let Ok(Some(kb)) = s.keys.serialize(key) else {
            ctx.skipped();
            return Ok(());
        };
        let ts = rec.timestamp;
        let time = self
            .time
            .clone()
            .ok_or_else(|| StreamsError::Topology("join time not initialized".into()))?;
        let observed = time.fetch_max(ts, Ordering::SeqCst).max(ts);
        let w = s.windows;
        if ts
            .saturating_add(w.before_ms)
            .saturating_add(w.after_ms)
            .saturating_add(w.grace_ms)
            < observed
        {
            ctx.dropped_late();
            return Ok(());
        }
        let this = WindowStore::new(
            &s.this_store,
            ctx.store(&s.this_store)?,
            s.keys.clone(),
            s.v1.clone(),
            0,
            true,
        );
        let that = WindowStore::new(
            &s.other_store,
            ctx.store(&s.other_store)?,
            s.keys.clone(),
            s.v2.clone(),
            0,
            true,
        );
        let outer = match &s.outer_store {
            Some(name) => Some(KeyValueStore::new(
                name,
                ctx.store(name)?,
                Serdes::bytes(),
                Serdes::bytes(),
            )),
            None => None,
        };
        let mut matched = false;
        if self.left {
            let v = rec.value::<V1>()?;
            this.put(key, ts, Some(v))?;
            for (t2, v2) in that.fetch_range(key, ts - w.before_ms, ts + w.after_ms)? {
                matched = true;
                if let Some(o) = &outer {
                    o.delete(&outer_key(t2, false, &kb))?;
                }
                if let Some(out) = (s.joiner)(Some(v), Some(&v2)) {
                    let mut r = rec.with_value(out);
                    r.timestamp = ts.max(t2);
                    ctx.forward(r)?;
                }
            }
            if !matched && s.outer.0 {
                if let Some(o) = &outer {
                    let ok = outer_key(ts, true, &kb);
                    let vb = to_bytes(s.v1.as_ref(), v, "join value")?;
                    o.put(&ok, &push_value(o.get(&ok)?, &vb))?;
                }
            }
        } else {
            let v2 = rec.value::<V2>()?;
            that.put(key, ts, Some(v2))?;
            for (t1, v1) in this.fetch_range(key, ts - w.after_ms, ts + w.before_ms)? {
                matched = true;
                if let Some(o) = &outer {
                    o.delete(&outer_key(t1, true, &kb))?;
                }
                if let Some(out) = (s.joiner)(Some(&v1), Some(v2)) {
                    let mut r = rec.with_value(out);
                    r.timestamp = ts.max(t1);
                    ctx.forward(r)?;
                }
            }
            if !matched && s.outer.1 {
                if let Some(o) = &outer {
                    let ok = outer_key(ts, false, &kb);
                    let vb = to_bytes(s.v2.as_ref(), v2, "join value")?;
                    o.put(&ok, &push_value(o.get(&ok)?, &vb))?;
                }
            }
        }
        if let Some(o) = &outer {
            self.emit_outer(ctx, o, observed)?;
        }
        let cutoff = observed.saturating_sub(
            w.before_ms
                .saturating_add(w.after_ms)
                .saturating_add(w.grace_ms),
        );
        this.expire(cutoff)?;
        that.expire(cutoff)?;
        Ok(())
    }
}

impl<K: Data, V1: Data, V2: Data, VR: Data> StreamStreamNode<K, V1, V2, VR> {
    /// Emits unmatched records whose window closed: this side at `ts + after + grace`,
    /// the other side at `ts + before + grace`.
    fn emit_outer(
        &self,
        ctx: &mut Ctx<'_>,
        outer: &KeyValueStore<Bytes, Bytes>,
        observed: i64,
    ) -> Result<()> {
        let s = &self.shared;
        let w = s.windows;
        let reach = w.before_ms.min(w.after_ms).saturating_add(w.grace_ms);
        let upper = time_bytes(observed.saturating_sub(reach));
        let candidates = {
            let name = s.outer_store.clone().unwrap_or_default();
            let cell = ctx.store(&name)?;
            let st = crate::state::lock(&cell)?;
            st.range(
                std::ops::Bound::Unbounded,
                std::ops::Bound::Excluded(&upper),
            )?
        };
        for (k, v) in candidates {
            if k.len() < 9 {
                continue;
            }
            let ts = time_from(&k);
            let this_side = k[8] == 0;
            let close = ts
                .saturating_add(if this_side { w.after_ms } else { w.before_ms })
                .saturating_add(w.grace_ms);
            if close >= observed {
                continue;
            }
            outer.delete(&k)?;
            let key: K = from_bytes(s.keys.as_ref(), &k[9..], "join key")?;
            for vb in values_of(&v) {
                let out = if this_side {
                    let v1: V1 = from_bytes(s.v1.as_ref(), vb, "join value")?;
                    (s.joiner)(Some(&v1), None)
                } else {
                    let v2: V2 = from_bytes(s.v2.as_ref(), vb, "join value")?;
                    (s.joiner)(None, Some(&v2))
                };
                let Some(out) = out else { continue };
                let r = Rec {
                    key: Arc::new(key.clone()),
                    value: Arc::new(out),
                    timestamp: ts,
                    headers: Arc::new(Vec::new()),
                };
                ctx.forward(r)?;
            }
        }
        Ok(())
    }
}

struct JoinGetter<K, V, V2, VR> {
    left: GetterRef<K, V>,
    right: GetterRef<K, V2>,
    joiner: TableJoiner<V, V2, VR>,
}

impl<K: Data, V: Data, V2: Data, VR: Data> GetterSupplier<K, VR> for JoinGetter<K, V, V2, VR> {
    fn stores(&self) -> Vec<String> {
        let mut s = self.left.stores();
        s.extend(self.right.stores());
        s
    }
    fn make(&self, stores: &HashMap<String, StoreCell>) -> Result<Box<dyn Getter<K, VR>>> {
        let mut right = self.right.make(stores)?;
        let joiner = self.joiner.clone();
        Ok(Box::new(FnGetter {
            inner: self.left.make(stores)?,
            f: move |k: &K, left: &mut Box<dyn Getter<K, V>>| {
                let l = left.get(k)?;
                let r = right.get(k)?;
                Ok(joiner(l.as_ref(), r.as_ref()))
            },
        }))
    }
}

struct TableSideNode<K, VS, VO, VR> {
    other: GetterRef<K, VO>,
    getter: Option<Box<dyn Getter<K, VO>>>,
    /// (this side's value, other side's value) -> result.
    join: TableJoiner<VS, VO, VR>,
}

impl<K: Data, VS: Data, VO: Data, VR: Data> Node for TableSideNode<K, VS, VO, VR> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<()> {
        self.getter = Some(self.other.make(&ctx.task.stores)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: Rec) -> Result<()> {
        let key = rec.key::<K>()?;
        let c = rec.value::<Change<VS>>()?;
        let getter = self
            .getter
            .as_mut()
            .ok_or_else(|| StreamsError::Topology("join getter not initialized".into()))?;
        let other = getter.get(key)?;
        let new = (self.join)(c.new.as_ref(), other.as_ref());
        let old = (self.join)(c.old.as_ref(), other.as_ref());
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        ctx.forward(rec.with_value(Change { new, old }))
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Rows present in both tables, joined.
    pub fn join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&V, &V2) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_table(
            other,
            Arc::new(move |l, r| match (l, r) {
                (Some(l), Some(r)) => Some(joiner(l, r)),
                _ => None,
            }),
        )
    }

    /// Every row of this table, joined with the other's row if there is one.
    pub fn left_join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&V, Option<&V2>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_table(other, Arc::new(move |l, r| l.map(|l| joiner(l, r))))
    }

    /// Every row of either table, joined with the other's row if there is one.
    pub fn outer_join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_table(
            other,
            Arc::new(move |l, r| {
                if l.is_none() && r.is_none() {
                    None
                } else {
                    Some(joiner(l, r))
                }
            }),
        )
    }

    fn table_table<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: TableJoiner<V, V2, VR>,
    ) -> KTable<K, VR> {
        let g = self.graph.clone();
        let (j1, j2) = (joiner.clone(), joiner.clone());
        let (og, tg) = (other.getter.clone(), self.getter.clone());
        let left = g.add(
            "KTABLE-JOINTHIS",
            NodeKind::Processor,
            &[self.node],
            other.getter.stores(),
            Arc::new(move || {
                Box::new(TableSideNode::<K, V, V2, VR> {
                    other: og.clone(),
                    getter: None,
                    join: j1.clone(),
                }) as Box<dyn Node>
            }),
        );
        let right = g.add(
            "KTABLE-JOINOTHER",
            NodeKind::Processor,
            &[other.node],
            self.getter.stores(),
            Arc::new(move || {
                let j = j2.clone();
                Box::new(TableSideNode::<K, V2, V, VR> {
                    other: tg.clone(),
                    getter: None,
                    join: Arc::new(move |r, l| j(l, r)),
                }) as Box<dyn Node>
            }),
        );
        let merge = g.add(
            "KTABLE-MERGE",
            NodeKind::Processor,
            &[left, right],
            Vec::new(),
            stateless(|ctx, rec| ctx.forward(rec)),
        );
        register_copartition(&g, self.node, other.node);
        KTable {
            graph: g,
            node: merge,
            keys: self.keys.clone(),
            values: None,
            store: None,
            getter: Arc::new(JoinGetter {
                left: self.getter.clone(),
                right: other.getter.clone(),
                joiner,
            }),
            window: None,
        }
    }

    /// Joins each row with the other table's row whose key is `foreign_key(value)`
    /// (rows without a partner are absent).
    pub fn join_foreign_key<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        self.foreign_key_join(
            other,
            Arc::new(foreign_key),
            Arc::new(move |v, o| o.map(|o| joiner(v, o))),
            materialized,
        )
    }

    /// Joins each row with the other table's row whose key is `foreign_key(value)`, if any.
    pub fn left_join_foreign_key<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        self.foreign_key_join(
            other,
            Arc::new(foreign_key),
            Arc::new(move |v, o| Some(joiner(v, o))),
            materialized,
        )
    }

    #[allow(clippy::type_complexity)]
    fn foreign_key_join<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: Arc<dyn Fn(&V) -> KO + Send + Sync>,
        joiner: Arc<dyn Fn(&V, Option<&VO>) -> Option<VR> + Send + Sync>,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let g = self.graph.clone();
        let name = g.next_name("KTABLE-FK-JOIN");
        let k = serde_or(&g, None, &self.keys, "a foreign-key join (left key)");
        let v = serde_or(&g, None, &self.values, "a foreign-key join (left value)");
        let ko = serde_or(&g, None, &other.keys, "a foreign-key join (right key)");
        let vo = serde_or(&g, None, &other.values, "a foreign-key join (right value)");
        let vr = serde_or(
            &g,
            materialized.values.clone(),
            &None,
            "a foreign-key join's result store (value)",
        );
        let (Some(k), Some(v), Some(ko), Some(vo), Some(vr)) = (k, v, ko, vo, vr) else {
            return super::grouped::placeholder(&g, self.node);
        };
        let result_store = materialized
            .name
            .clone()
            .unwrap_or_else(|| format!("{name}-result-store"));
        let sub_store = format!("{name}-subscription-store");
        let mut spec = StoreSpec::key_value(&result_store).with_serdes(k.clone(), vr.clone());
        spec.persistent = materialized.persistent;
        spec.logged = materialized.logged;
        g.lock().add_store(spec);
        g.lock().add_store(
            StoreSpec::key_value(&sub_store).with_serdes(Serdes::bytes(), Serdes::bytes()),
        );

        // Left side: subscriptions out, deletions straight to the result.
        let (fk1, k1, v1, ko1, vr1, rs1) = (
            foreign_key.clone(),
            k.clone(),
            v.clone(),
            ko.clone(),
            vr.clone(),
            result_store.clone(),
        );
        let subscribe = g.add(
            "KTABLE-FK-JOIN-SUBSCRIBE",
            NodeKind::Processor,
            &[self.node],
            vec![result_store.clone()],
            Arc::new(move || {
                let (fk, k, v, ko, vr, rs) = (
                    fk1.clone(),
                    k1.clone(),
                    v1.clone(),
                    ko1.clone(),
                    vr1.clone(),
                    rs1.clone(),
                );
                Box::new(crate::processor::FnNode(
                    move |ctx: &mut Ctx<'_>, rec: Rec| {
                        let key = rec.key::<K>()?;
                        let c = rec.value::<Change<V>>()?;
                        let kb = to_bytes(k.as_ref(), key, "foreign-key join key")?;
                        let old_fk = c
                            .old
                            .as_ref()
                            .map(|o| fk(o))
                            .and_then(|f| ko.serialize(&f).ok().flatten());
                        let new_fk = c
                            .new
                            .as_ref()
                            .map(|n| fk(n))
                            .and_then(|f| ko.serialize(&f).ok().flatten());
                        if let Some(o) = &old_fk {
                            if new_fk.as_ref() != Some(o) {
                                ctx.forward_to(
                                    0,
                                    rec.with(o.clone(), subscription(false, 0, &kb)),
                                )?;
                            }
                        }
                        match (&c.new, new_fk) {
                            (Some(nv), Some(f)) => {
                                let hash =
                                    fnv(&to_bytes(v.as_ref(), nv, "foreign-key join value")?);
                                ctx.forward_to(0, rec.with(f, subscription(true, hash, &kb)))?;
                            }
                            _ => {
                                // Deleted, or no foreign key: the result row goes now.
                                let results = ctx.kv_store(&rs, &k, &vr)?;
                                if let Some(old) = results.delete(key)? {
                                    ctx.forward_to(
                                        1,
                                        rec.with_value(Change {
                                            new: None::<VR>,
                                            old: Some(old),
                                        }),
                                    )?;
                                }
                            }
                        }
                        Ok(())
                    },
                )) as Box<dyn Node>
            }),
        );
        let raw_encode: Encode = Arc::new(|rec| {
            Ok(Some((
                Some(rec.key::<Bytes>()?.clone()),
                Some(rec.value::<Bytes>()?.clone()),
            )))
        });
        let raw_decode: Decode = Arc::new(|k, v, rec| match (k, v) {
            (Some(k), Some(v)) => Ok(Some(rec.with(k.clone(), v.clone()))),
            _ => Ok(None),
        });
        // The right side: keep subscriptions, answer them now and on every change.
        let sub_name = format!("{name}-subscription-registration");
        let resp_name = format!("{name}-subscription-response");
        let sub_src = add_repartition(
            &g,
            subscribe,
            &sub_name,
            raw_encode.clone(),
            raw_decode.clone(),
            RepartitionSpec::default(),
        );
        let other_getter = other.getter.clone();
        let (ss1, ko2, vo2) = (sub_store.clone(), ko.clone(), vo.clone());
        let mut answer_stores = vec![sub_store.clone()];
        answer_stores.extend(other.getter.stores());
        let answer = g.add(
            "KTABLE-FK-JOIN-SUBSCRIPTION",
            NodeKind::Processor,
            &[sub_src],
            answer_stores,
            Arc::new(move || {
                let (og, ss, ko, vos) =
                    (other_getter.clone(), ss1.clone(), ko2.clone(), vo2.clone());
                let mut getter: Option<Box<dyn Getter<KO, VO>>> = None;
                Box::new(crate::processor::FnNode(
                    move |ctx: &mut Ctx<'_>, rec: Rec| {
                        if getter.is_none() {
                            getter = Some(og.make(&ctx.task.stores)?);
                        }
                        let fkb = rec.key::<Bytes>()?;
                        let msg = rec.value::<Bytes>()?;
                        let Some((propagate, hash, kb)) = parse_subscription(msg) else {
                            ctx.skipped();
                            return Ok(());
                        };
                        let subs = KeyValueStore::new(
                            &ss,
                            ctx.store(&ss)?,
                            Serdes::bytes(),
                            Serdes::bytes(),
                        );
                        let sk = sub_key(fkb, kb);
                        if !propagate {
                            subs.delete(&sk)?;
                            return Ok(());
                        }
                        subs.put(&sk, &Bytes::copy_from_slice(&hash.to_be_bytes()))?;
                        let fk: KO = from_bytes(ko.as_ref(), fkb, "foreign key")?;
                        let g = getter
                            .as_mut()
                            .ok_or_else(|| StreamsError::Topology("getter".into()))?;
                        let vo = g.get(&fk)?;
                        let vob = vo
                            .map(|x| to_bytes(vos.as_ref(), &x, "foreign-key join right value"))
                            .transpose()?;
                        ctx.forward(rec.with(Bytes::copy_from_slice(kb), response(hash, vob)))
                    },
                )) as Box<dyn Node>
            }),
        );
        let ss2 = sub_store.clone();
        let (ko3, vo3) = (ko.clone(), vo.clone());
        let changed = g.add(
            "KTABLE-FK-JOIN-OTHER",
            NodeKind::Processor,
            &[other.node],
            vec![sub_store.clone()],
            Arc::new(move || {
                let (ss, ko, vos) = (ss2.clone(), ko3.clone(), vo3.clone());
                Box::new(crate::processor::FnNode(
                    move |ctx: &mut Ctx<'_>, rec: Rec| {
                        let fk = rec.key::<KO>()?;
                        let c = rec.value::<Change<VO>>()?;
                        let fkb = to_bytes(ko.as_ref(), fk, "foreign key")?;
                        let prefix = sub_key(&fkb, &[]);
                        let vob = c
                            .new
                            .as_ref()
                            .map(|x| to_bytes(vos.as_ref(), x, "foreign-key join right value"))
                            .transpose()?;
                        let subs = KeyValueStore::new(
                            &ss,
                            ctx.store(&ss)?,
                            Serdes::bytes(),
                            Serdes::bytes(),
                        );
                        for (sk, hash) in subs.prefix_scan(&prefix)? {
                            let kb = sk.slice(prefix.len()..);
                            let hash = hash
                                .as_ref()
                                .try_into()
                                .map(u64::from_be_bytes)
                                .unwrap_or(0);
                            ctx.forward(rec.with(kb, response(hash, vob.clone())))?;
                        }
                        Ok(())
                    },
                )) as Box<dyn Node>
            }),
        );
        let responses = g.add(
            "KTABLE-FK-JOIN-RESPONSES",
            NodeKind::Processor,
            &[answer, changed],
            Vec::new(),
            stateless(|ctx, rec| ctx.forward(rec)),
        );
        let resp_src = add_repartition(
            &g,
            responses,
            &resp_name,
            raw_encode,
            raw_decode,
            RepartitionSpec::default(),
        );
        // Back on the left: keep answers that still match the row, update the result.
        let (tg, k4, v4, vr4, rs4, j4, vo4) = (
            self.getter.clone(),
            k.clone(),
            v.clone(),
            vr.clone(),
            result_store.clone(),
            joiner.clone(),
            vo.clone(),
        );
        let mut resolve_stores = vec![result_store.clone()];
        resolve_stores.extend(self.getter.stores());
        let resolve = g.add(
            "KTABLE-FK-JOIN-RESOLVE",
            NodeKind::Processor,
            &[resp_src],
            resolve_stores,
            Arc::new(move || {
                let (tg, k, v, vr, rs, j, vos) = (
                    tg.clone(),
                    k4.clone(),
                    v4.clone(),
                    vr4.clone(),
                    rs4.clone(),
                    j4.clone(),
                    vo4.clone(),
                );
                let mut getter: Option<Box<dyn Getter<K, V>>> = None;
                Box::new(crate::processor::FnNode(
                    move |ctx: &mut Ctx<'_>, rec: Rec| {
                        if getter.is_none() {
                            getter = Some(tg.make(&ctx.task.stores)?);
                        }
                        let kb = rec.key::<Bytes>()?;
                        let msg = rec.value::<Bytes>()?;
                        let key: K = from_bytes(k.as_ref(), kb, "foreign-key join key")?;
                        let g = getter
                            .as_mut()
                            .ok_or_else(|| StreamsError::Topology("getter".into()))?;
                        let Some(current) = g.get(&key)? else {
                            return Ok(());
                        };
                        let Some((hash, vob)) = parse_response(msg) else {
                            return Ok(());
                        };
                        if hash != fnv(&to_bytes(v.as_ref(), &current, "foreign-key join value")?) {
                            return Ok(());
                        }
                        let vo: Option<VO> = vob
                            .map(|b| from_bytes(vos.as_ref(), b, "foreign-key join right value"))
                            .transpose()?;
                        let new = j(&current, vo.as_ref());
                        let results = ctx.kv_store(&rs, &k, &vr)?;
                        let old = results.get(&key)?;
                        match &new {
                            Some(n) => results.put(&key, n)?,
                            None => {
                                results.delete(&key)?;
                            }
                        }
                        if new.is_none() && old.is_none() {
                            return Ok(());
                        }
                        let out = Rec {
                            key: Arc::new(key),
                            value: Arc::new(Change { new, old }),
                            timestamp: rec.timestamp,
                            headers: rec.headers.clone(),
                        };
                        ctx.forward(out)
                    },
                )) as Box<dyn Node>
            }),
        );
        let merge = g.add(
            "KTABLE-FK-JOIN-OUTPUT",
            NodeKind::Processor,
            &[subscribe, resolve],
            Vec::new(),
            stateless(|ctx, rec| ctx.forward(rec)),
        );
        {
            let mut st = g.lock();
            if let Some(spec) = st.repartitions.get_mut(&format!("{sub_name}-repartition")) {
                spec.like_node = Some(answer);
            }
            if let Some(spec) = st.repartitions.get_mut(&format!("{resp_name}-repartition")) {
                spec.like_node = Some(resolve);
            }
        }
        // The subscription topic is co-partitioned with the right table's source topics.
        register_copartition(&g, sub_src, other.node);
        register_copartition(&g, resp_src, self.node);
        let _ = &vr;
        KTable {
            graph: g,
            node: merge,
            keys: Some(k.clone()),
            values: Some(vr.clone()),
            store: Some(result_store.clone()),
            getter: Arc::new(StoreGetter {
                store: result_store,
                keys: k,
                values: vr,
            }),
            window: None,
        }
    }
}

/// FNV-1a, 64 bits: the hash a subscription carries of the left row's value bytes.
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Subscription value: flag (1 propagate, 0 delete), hash, then the left key's bytes.
fn subscription(propagate: bool, hash: u64, key: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(9 + key.len());
    b.put_u8(u8::from(propagate));
    b.put_u64(hash);
    b.put_slice(key);
    b.freeze()
}

fn parse_subscription(b: &[u8]) -> Option<(bool, u64, &[u8])> {
    if b.len() < 9 {
        return None;
    }
    let hash = u64::from_be_bytes(b[1..9].try_into().ok()?);
    Some((b[0] == 1, hash, &b[9..]))
}

/// Subscription-store key: the foreign key's length and bytes, then the left key's.
fn sub_key(fk: &[u8], key: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + fk.len() + key.len());
    b.put_u32(u32::try_from(fk.len()).unwrap_or(u32::MAX));
    b.put_slice(fk);
    b.put_slice(key);
    b.freeze()
}

/// Response value: the subscription's hash, then 1 and the right value's bytes, or 0.
fn response(hash: u64, value: Option<Bytes>) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u64(hash);
    match value {
        Some(v) => {
            b.put_u8(1);
            b.put_slice(&v);
        }
        None => b.put_u8(0),
    }
    b.freeze()
}

fn parse_response(b: &[u8]) -> Option<(u64, Option<&[u8]>)> {
    if b.len() < 9 {
        return None;
    }
    let hash = u64::from_be_bytes(b[..8].try_into().ok()?);
    Some((hash, (b[8] == 1).then(|| &b[9..])))
}
