//! Windowed aggregations (tumbling, hopping, sliding, session) into window and session
//! stores, and `suppress` until a window closes.
//!
//! Each aggregation keeps its own observed stream time (the largest timestamp it has
//! seen). A window closes when that time reaches its end plus the grace period; records
//! for closed windows are dropped and counted (`records_dropped_late`). Windows older than
//! the store's retention (size + grace) are expired from the store.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::grouped::{null_key, placeholder, AggFn, KGroupedStream};
use super::table::{Getter, GetterSupplier, KTable, WindowMeta};
use super::{serde_or, Data, Materialized};
use crate::error::{Result, StreamsError};
use crate::processor::{Ctx, Node, NodeFactory};
use crate::record::{Change, Rec};
use crate::serdes::{from_bytes, to_bytes, SerdeRef, Serdes};
use crate::state::typed::{time_bytes, time_from, KeyValueStore, SessionStore, WindowStore};
use crate::state::{StoreCell, StoreKind, StoreSpec};
use crate::topology::NodeKind;
use crate::windows::{
    SessionWindowedSerde, SessionWindows, SlidingWindows, TimeWindowedSerde, TimeWindows, Window,
    Windowed,
};

#[derive(Debug, Clone, Copy)]
pub(crate) enum WindowKind {
    Time(TimeWindows),
    Sliding(SlidingWindows),
}

impl WindowKind {
    fn grace_ms(&self) -> i64 {
        match self {
            WindowKind::Time(w) => w.grace_ms,
            WindowKind::Sliding(w) => w.grace_ms,
        }
    }

    /// Window size as reported in window ends.
    fn size_ms(&self) -> i64 {
        match self {
            WindowKind::Time(w) => w.size_ms,
            WindowKind::Sliding(w) => w.time_difference_ms,
        }
    }

    fn retention_ms(&self) -> i64 {
        match self {
            WindowKind::Time(w) => w.retention_ms(),
            // Sliding windows reach back one difference from a record and forward one.
            WindowKind::Sliding(w) => w
                .time_difference_ms
                .saturating_mul(2)
                .saturating_add(w.grace_ms)
                .saturating_add(1),
        }
    }
}

/// A grouped stream with windows, ready to aggregate.
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: WindowKind,
}

impl<K: Data, V: Data> TimeWindowedKStream<K, V> {
    pub(crate) fn new(grouped: KGroupedStream<K, V>, windows: WindowKind) -> Self {
        TimeWindowedKStream { grouped, windows }
    }

    /// Counts records per key and window.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let m = Materialized {
            values: materialized.values.clone().or_else(|| Some(Serdes::i64())),
            ..materialized
        };
        self.aggregate_with(
            Arc::new(|_, _, c: Option<&i64>| c.copied().unwrap_or(0) + 1),
            m,
            "KSTREAM-AGGREGATE",
        )
    }

    pub fn reduce(
        &self,
        reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        let m = Materialized {
            values: materialized
                .values
                .clone()
                .or_else(|| self.grouped.values.clone()),
            ..materialized
        };
        self.aggregate_with(
            Arc::new(move |_, v, a: Option<&V>| match a {
                Some(a) => reducer(a, v),
                None => v.clone(),
            }),
            m,
            "KSTREAM-REDUCE",
        )
    }

    pub fn aggregate<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, &VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_with(
            Arc::new(move |k, v, a: Option<&VA>| match a {
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
    ) -> KTable<Windowed<K>, VA> {
        let g = self.grouped.stream.graph.clone();
        let store = materialized
            .name
            .clone()
            .unwrap_or_else(|| g.next_name(&format!("{prefix}-STATE-STORE")));
        let stream = self.grouped.prepared(&store);
        let keys = serde_or(
            &g,
            materialized.keys.clone(),
            &self.grouped.keys,
            "a windowed aggregation's store (key)",
        );
        let aggs = serde_or(
            &g,
            materialized.values.clone(),
            &None,
            "a windowed aggregation's store (value)",
        );
        let (Some(k), Some(va)) = (keys, aggs) else {
            return placeholder(&g, stream.node);
        };
        let windows = self.windows;
        let retention = materialized
            .retention_ms
            .unwrap_or(0)
            .max(windows.retention_ms());
        let mut spec = StoreSpec::key_value(&store).with_serdes(k.clone(), va.clone());
        spec.kind = StoreKind::Window {
            retention_ms: retention,
            duplicates: false,
        };
        spec.window_size_ms = windows.size_ms();
        spec.persistent = materialized.persistent;
        spec.logged = materialized.logged;
        let mut stores = vec![store.clone()];
        let raw = format!("{store}-raw");
        let raw_values = if let WindowKind::Sliding(_) = windows {
            let v = serde_or(
                &g,
                None,
                &self.grouped.values,
                "a sliding-window aggregation (value)",
            );
            let Some(v) = v else {
                return placeholder(&g, stream.node);
            };
            let mut raw_spec = StoreSpec::key_value(&raw).with_serdes(k.clone(), v.clone());
            raw_spec.kind = StoreKind::Window {
                retention_ms: retention,
                duplicates: true,
            };
            raw_spec.persistent = materialized.persistent;
            raw_spec.logged = materialized.logged;
            g.lock().add_store(raw_spec);
            stores.push(raw.clone());
            Some(v)
        } else {
            None
        };
        g.lock().add_store(spec);
        let (s, kk, vv) = (store.clone(), k.clone(), va.clone());
        let factory: NodeFactory = Arc::new(move || {
            Box::new(WindowAggregateNode {
                store: s.clone(),
                raw: raw.clone(),
                keys: kk.clone(),
                values: vv.clone(),
                raw_values: raw_values.clone(),
                agg: agg.clone(),
                windows,
                retention,
                kv: None,
                raw_kv: None,
                observed: -1,
                expired_to: i64::MIN,
            }) as Box<dyn Node>
        });
        let node = g.add(prefix, NodeKind::Processor, &[stream.node], stores, factory);
        let size = windows.size_ms();
        KTable {
            graph: g.clone(),
            node,
            keys: Some(Arc::new(TimeWindowedSerde {
                inner: k.clone(),
                size_ms: size,
            })),
            values: Some(va.clone()),
            store: Some(store.clone()),
            getter: Arc::new(WindowGetter {
                store,
                keys: k,
                values: va,
                size_ms: size,
            }),
            window: Some(WindowMeta {
                grace_ms: windows.grace_ms(),
            }),
        }
    }
}

struct WindowGetter<K, V> {
    store: String,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
    size_ms: i64,
}

impl<K: Data, V: Data> GetterSupplier<Windowed<K>, V> for WindowGetter<K, V> {
    fn stores(&self) -> Vec<String> {
        vec![self.store.clone()]
    }
    fn make(
        &self,
        stores: &std::collections::HashMap<String, StoreCell>,
    ) -> Result<Box<dyn Getter<Windowed<K>, V>>> {
        let cell = stores
            .get(&self.store)
            .cloned()
            .ok_or_else(|| StreamsError::Topology(format!("store {} not connected", self.store)))?;
        Ok(Box::new(WindowStore::new(
            &self.store,
            cell,
            self.keys.clone(),
            self.values.clone(),
            self.size_ms,
            false,
        )))
    }
}

impl<K: Data, V: Data> Getter<Windowed<K>, V> for WindowStore<K, V> {
    fn get(&mut self, key: &Windowed<K>) -> Result<Option<V>> {
        self.fetch(&key.key, key.window.start)
    }
}

struct WindowAggregateNode<K, V, VA> {
    store: String,
    raw: String,
    keys: SerdeRef<K>,
    values: SerdeRef<VA>,
    raw_values: Option<SerdeRef<V>>,
    agg: AggFn<K, V, VA>,
    windows: WindowKind,
    retention: i64,
    kv: Option<WindowStore<K, VA>>,
    raw_kv: Option<WindowStore<K, V>>,
    observed: i64,
    expired_to: i64,
}

impl<K: Data, V: Data, VA: Data> WindowAggregateNode<K, V, VA> {
    fn update(
        &self,
        ctx: &mut Ctx<'_>,
        rec: &Rec,
        key: &K,
        window: Window,
        new: VA,
        old: Option<VA>,
    ) -> Result<()> {
        let kv = self
            .kv
            .as_ref()
            .ok_or_else(|| StreamsError::Topology("window store not initialized".into()))?;
        kv.put(key, window.start, Some(&new))?;
        ctx.forward(rec.with(
            Windowed::new(key.clone(), window),
            Change {
                new: Some(new),
                old,
            },
        ))
    }

    fn process_time(
        &mut self,
        ctx: &mut Ctx<'_>,
        rec: &Rec,
        w: TimeWindows,
        key: &K,
        value: &V,
    ) -> Result<()> {
        let close = self.observed.saturating_sub(w.grace_ms);
        for window in w.windows_for(rec.timestamp) {
            if window.end <= close {
                tracing::debug!(
                    node = ctx.name(),
                    ts = rec.timestamp,
                    ?window,
                    "record for a closed window dropped"
                );
                ctx.dropped_late();
                continue;
            }
            let kv = self
                .kv
                .as_ref()
                .ok_or_else(|| StreamsError::Topology("window store not initialized".into()))?;
            let old = kv.fetch(key, window.start)?;
            let new = (self.agg)(key, value, old.as_ref());
            self.update(ctx, rec, key, window, new, old)?;
        }
        Ok(())
    }

    /// Sliding windows by recomputation: every window the record changes is summed again
    /// from the raw records of the key (kept for the windows' reach).
    fn process_sliding(
        &mut self,
        ctx: &mut Ctx<'_>,
        rec: &Rec,
        w: SlidingWindows,
        key: &K,
        value: &V,
    ) -> Result<()> {
        let d = w.time_difference_ms;
        let ts = rec.timestamp;
        let close = self.observed.saturating_sub(w.grace_ms);
        if ts.saturating_add(d).saturating_add(1) < close {
            ctx.dropped_late();
            return Ok(());
        }
        let raw = self
            .raw_kv
            .as_ref()
            .ok_or_else(|| StreamsError::Topology("raw store not initialized".into()))?;
        raw.put(key, ts, Some(value))?;
        let around = raw.fetch_range(
            key,
            ts.saturating_sub(2 * d + 1),
            ts.saturating_add(2 * d + 1),
        )?;
        // Records earlier than the difference share the first window, [0, difference].
        let mut starts = BTreeSet::new();
        starts.insert((ts - d).max(0));
        for (t, _) in &around {
            let t = *t;
            if t < ts && t >= ts - d - 1 {
                starts.insert(t + 1);
            }
            if t > ts && t <= ts + d {
                starts.insert((t - d).max(0));
            }
            if t > ts && t <= ts + d + 1 {
                starts.insert(ts + 1);
            }
        }
        for start in starts {
            // Both ends inclusive: open while stream time minus grace has not passed the end.
            let window = Window::new(start, start + d);
            if window.end < close {
                continue;
            }
            let mut agg: Option<VA> = None;
            for (t, v) in &around {
                if *t >= window.start && *t <= window.end {
                    agg = Some((self.agg)(key, v, agg.as_ref()));
                }
            }
            let Some(new) = agg else { continue };
            let kv = self
                .kv
                .as_ref()
                .ok_or_else(|| StreamsError::Topology("window store not initialized".into()))?;
            let old = kv.fetch(key, start)?;
            self.update(ctx, rec, key, window, new, old)?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data, VA: Data> Node for WindowAggregateNode<K, V, VA> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<()> {
        let size = self.windows.size_ms();
        self.kv = Some(WindowStore::new(
            &self.store,
            ctx.store(&self.store)?,
            self.keys.clone(),
            self.values.clone(),
            size,
            false,
        ));
        if let Some(v) = &self.raw_values {
            self.raw_kv = Some(WindowStore::new(
                &self.raw,
                ctx.store(&self.raw)?,
                self.keys.clone(),
                v.clone(),
                0,
                true,
            ));
        }
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: Rec) -> Result<()> {
        let key = rec.key::<K>()?.clone();
        if null_key(&self.keys, &key) || rec.timestamp < 0 {
            ctx.skipped();
            return Ok(());
        }
        let value = rec.value::<V>()?.clone();
        self.observed = self.observed.max(rec.timestamp);
        match self.windows {
            WindowKind::Time(w) => self.process_time(ctx, &rec, w, &key, &value)?,
            WindowKind::Sliding(w) => self.process_sliding(ctx, &rec, w, &key, &value)?,
        }
        let cutoff = self.observed.saturating_sub(self.retention);
        if cutoff > self.expired_to.saturating_add(self.windows.size_ms()) {
            self.expired_to = cutoff;
            if let Some(kv) = &self.kv {
                kv.expire(cutoff)?;
            }
            if let Some(raw) = &self.raw_kv {
                raw.expire(cutoff)?;
            }
        }
        Ok(())
    }
}

/// A grouped stream with session windows.
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
}

type MergeFn<K, VA> = Arc<dyn Fn(&K, &VA, &VA) -> VA + Send + Sync>;

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    pub(crate) fn new(grouped: KGroupedStream<K, V>, windows: SessionWindows) -> Self {
        SessionWindowedKStream { grouped, windows }
    }

    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let m = Materialized {
            values: materialized.values.clone().or_else(|| Some(Serdes::i64())),
            ..materialized
        };
        self.aggregate_with(
            Arc::new(|_, _, c: Option<&i64>| c.copied().unwrap_or(0) + 1),
            Arc::new(|_, a: &i64, b: &i64| a + b),
            m,
        )
    }

    pub fn reduce(
        &self,
        reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        let m = Materialized {
            values: materialized
                .values
                .clone()
                .or_else(|| self.grouped.values.clone()),
            ..materialized
        };
        let r = Arc::new(reducer);
        let r2 = r.clone();
        self.aggregate_with(
            Arc::new(move |_, v, a: Option<&V>| match a {
                Some(a) => r(a, v),
                None => v.clone(),
            }),
            Arc::new(move |_, a: &V, b: &V| r2(a, b)),
            m,
        )
    }

    /// Folds per session; `merger` combines two sessions' aggregates when a record
    /// bridges them.
    pub fn aggregate<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, &VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, &VA, &VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_with(
            Arc::new(move |k, v, a: Option<&VA>| match a {
                Some(a) => aggregator(k, v, a),
                None => aggregator(k, v, &initializer()),
            }),
            Arc::new(merger),
            materialized,
        )
    }

    fn aggregate_with<VA: Data>(
        &self,
        agg: AggFn<K, V, VA>,
        merge: MergeFn<K, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let g = self.grouped.stream.graph.clone();
        let store = materialized
            .name
            .clone()
            .unwrap_or_else(|| g.next_name("KSTREAM-SESSION-AGGREGATE-STATE-STORE"));
        let stream = self.grouped.prepared(&store);
        let keys = serde_or(
            &g,
            materialized.keys.clone(),
            &self.grouped.keys,
            "a session aggregation's store (key)",
        );
        let aggs = serde_or(
            &g,
            materialized.values.clone(),
            &None,
            "a session aggregation's store (value)",
        );
        let (Some(k), Some(va)) = (keys, aggs) else {
            return placeholder(&g, stream.node);
        };
        let w = self.windows;
        let retention = materialized
            .retention_ms
            .unwrap_or(0)
            .max(w.gap_ms.saturating_mul(2).saturating_add(w.grace_ms));
        let mut spec = StoreSpec::key_value(&store).with_serdes(k.clone(), va.clone());
        spec.kind = StoreKind::Session {
            retention_ms: retention,
        };
        spec.persistent = materialized.persistent;
        spec.logged = materialized.logged;
        g.lock().add_store(spec);
        let (s, kk, vv) = (store.clone(), k.clone(), va.clone());
        let factory: NodeFactory = Arc::new(move || {
            Box::new(SessionAggregateNode {
                store: s.clone(),
                keys: kk.clone(),
                values: vv.clone(),
                agg: agg.clone(),
                merge: merge.clone(),
                windows: w,
                kv: None,
                observed: -1,
            }) as Box<dyn Node>
        });
        let node = g.add(
            "KSTREAM-SESSION-AGGREGATE",
            NodeKind::Processor,
            &[stream.node],
            vec![store.clone()],
            factory,
        );
        KTable {
            graph: g.clone(),
            node,
            keys: Some(Arc::new(SessionWindowedSerde { inner: k.clone() })),
            values: Some(va.clone()),
            store: Some(store.clone()),
            getter: Arc::new(SessionGetter {
                store,
                keys: k,
                values: va,
            }),
            window: Some(WindowMeta {
                grace_ms: w.grace_ms,
            }),
        }
    }
}

struct SessionGetter<K, V> {
    store: String,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
}

impl<K: Data, V: Data> GetterSupplier<Windowed<K>, V> for SessionGetter<K, V> {
    fn stores(&self) -> Vec<String> {
        vec![self.store.clone()]
    }
    fn make(
        &self,
        stores: &std::collections::HashMap<String, StoreCell>,
    ) -> Result<Box<dyn Getter<Windowed<K>, V>>> {
        let cell = stores
            .get(&self.store)
            .cloned()
            .ok_or_else(|| StreamsError::Topology(format!("store {} not connected", self.store)))?;
        Ok(Box::new(SessionStore::new(
            &self.store,
            cell,
            self.keys.clone(),
            self.values.clone(),
        )))
    }
}

impl<K: Data, V: Data> Getter<Windowed<K>, V> for SessionStore<K, V> {
    fn get(&mut self, key: &Windowed<K>) -> Result<Option<V>> {
        Ok(self
            .find_sessions(&key.key, key.window.end, key.window.start)?
            .into_iter()
            .find(|(w, _)| *w == key.window)
            .map(|(_, v)| v))
    }
}

struct SessionAggregateNode<K, V, VA> {
    store: String,
    keys: SerdeRef<K>,
    values: SerdeRef<VA>,
    agg: AggFn<K, V, VA>,
    merge: MergeFn<K, VA>,
    windows: SessionWindows,
    kv: Option<SessionStore<K, VA>>,
    observed: i64,
}

impl<K: Data, V: Data, VA: Data> Node for SessionAggregateNode<K, V, VA> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<()> {
        self.kv = Some(SessionStore::new(
            &self.store,
            ctx.store(&self.store)?,
            self.keys.clone(),
            self.values.clone(),
        ));
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: Rec) -> Result<()> {
        let key = rec.key::<K>()?.clone();
        if null_key(&self.keys, &key) || rec.timestamp < 0 {
            ctx.skipped();
            return Ok(());
        }
        let value = rec.value::<V>()?;
        let kv = self
            .kv
            .clone()
            .ok_or_else(|| StreamsError::Topology("session store not initialized".into()))?;
        let ts = rec.timestamp;
        self.observed = self.observed.max(ts);
        let close = self.observed.saturating_sub(self.windows.grace_ms);
        let gap = self.windows.gap_ms;
        let overlapping = kv.find_sessions(&key, ts.saturating_sub(gap), ts.saturating_add(gap))?;
        let mut window = Window::new(ts, ts);
        let mut merged: Option<VA> = None;
        for (w, a) in &overlapping {
            window = Window::new(window.start.min(w.start), window.end.max(w.end));
            merged = Some(match merged {
                Some(m) => (self.merge)(&key, &m, a),
                None => a.clone(),
            });
        }
        if window.end < close {
            ctx.dropped_late();
            return Ok(());
        }
        for (w, a) in overlapping {
            if w != window {
                kv.remove(&key, w)?;
                ctx.forward(rec.with(
                    Windowed::new(key.clone(), w),
                    Change {
                        new: None,
                        old: Some(a),
                    },
                ))?;
            }
        }
        let old = kv.get_exact(&key, window)?;
        let new = (self.agg)(&key, value, merged.as_ref());
        kv.put(&key, window, &new)?;
        ctx.forward(rec.with(
            Windowed::new(key.clone(), window),
            Change {
                new: Some(new),
                old,
            },
        ))?;
        // A record that is not late (its merged session ends at or after `close`) lies
        // within a gap of that end, and reaches sessions ending a gap before it.
        let cutoff = close.saturating_sub(gap.saturating_mul(2));
        if cutoff > 0 {
            kv.expire(cutoff)?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data> SessionStore<K, V> {
    fn get_exact(&self, key: &K, window: Window) -> Result<Option<V>> {
        Ok(self
            .find_sessions(key, window.end, window.start)?
            .into_iter()
            .find(|(w, _)| *w == window)
            .map(|(_, v)| v))
    }
}

/// When a suppressed table emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppressed {
    /// Once per window, when it closes (stream time past its end plus grace): final
    /// results only. The buffer is unbounded (and logged, so it survives restarts).
    UntilWindowCloses,
}

impl Suppressed {
    pub fn until_window_closes() -> Self {
        Suppressed::UntilWindowCloses
    }
}

impl<K: Data, V: Data> KTable<Windowed<K>, V> {
    /// Holds back updates until their window closes, then emits the final value once.
    pub fn suppress(&self, suppressed: Suppressed) -> KTable<Windowed<K>, V> {
        let Suppressed::UntilWindowCloses = suppressed;
        let g = self.graph.clone();
        let Some(meta) = self.window else {
            g.error("suppress(until_window_closes) needs a windowed table");
            return self.clone();
        };
        let (Some(keys), Some(values)) = (self.keys.clone(), self.values.clone()) else {
            g.error("suppress needs the table's key and value serdes");
            return self.clone();
        };
        let store = g.next_name("KTABLE-SUPPRESS-STATE-STORE");
        let mut spec = StoreSpec::key_value(&store).with_serdes(Serdes::bytes(), Serdes::bytes());
        spec.persistent = false;
        g.lock().add_store(spec);
        let s = store.clone();
        let grace = meta.grace_ms;
        let factory: NodeFactory = Arc::new(move || {
            Box::new(SuppressNode::<K, V> {
                store: s.clone(),
                keys: keys.clone(),
                values: values.clone(),
                grace_ms: grace,
                buffer: None,
                observed: -1,
            }) as Box<dyn Node>
        });
        let node = g.add(
            "KTABLE-SUPPRESS",
            NodeKind::Processor,
            &[self.node],
            vec![store],
            factory,
        );
        KTable {
            graph: g,
            node,
            keys: self.keys.clone(),
            values: self.values.clone(),
            store: None,
            getter: self.getter.clone(),
            window: self.window,
        }
    }
}

struct SuppressNode<K, V> {
    store: String,
    keys: SerdeRef<Windowed<K>>,
    values: SerdeRef<V>,
    grace_ms: i64,
    buffer: Option<KeyValueStore<Bytes, Bytes>>,
    observed: i64,
}

impl<K: Data, V: Data> Node for SuppressNode<K, V> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<()> {
        self.buffer = Some(ctx.kv_store(&self.store, &Serdes::bytes(), &Serdes::bytes())?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: Rec) -> Result<()> {
        let buffer = self
            .buffer
            .clone()
            .ok_or_else(|| StreamsError::Topology("suppress buffer not initialized".into()))?;
        let key = rec.key::<Windowed<K>>()?;
        let change = rec.value::<Change<V>>()?;
        self.observed = self.observed.max(rec.timestamp);
        // Buffer key: window end (time order), then the windowed key's bytes.
        let kb = to_bytes(self.keys.as_ref(), key, "suppressed key")?;
        let mut bk = BytesMut::with_capacity(8 + kb.len());
        bk.put_slice(&time_bytes(key.window.end));
        bk.put_slice(&kb);
        let bk = bk.freeze();
        let mut bv = BytesMut::new();
        bv.put_i64(rec.timestamp);
        match &change.new {
            Some(v) => {
                bv.put_u8(1);
                bv.put_slice(&to_bytes(self.values.as_ref(), v, "suppressed value")?);
            }
            None => bv.put_u8(0),
        }
        buffer.put(&bk, &bv.freeze())?;
        self.emit_closed(ctx, &buffer)
    }
}

impl<K: Data, V: Data> SuppressNode<K, V> {
    /// Emits (and forgets) every buffered window whose end plus grace is at or before
    /// the observed stream time.
    fn emit_closed(
        &mut self,
        ctx: &mut Ctx<'_>,
        buffer: &KeyValueStore<Bytes, Bytes>,
    ) -> Result<()> {
        let close = self.observed.saturating_sub(self.grace_ms);
        let upper = time_bytes(close.saturating_add(1));
        let due = {
            let cell = ctx.store(&self.store)?;
            let s = crate::state::lock(&cell)?;
            s.range(
                std::ops::Bound::Unbounded,
                std::ops::Bound::Excluded(&upper),
            )?
        };
        for (bk, bv) in due {
            if bk.len() < 8 || bv.len() < 9 || time_from(&bk) > close {
                continue;
            }
            let key = from_bytes(self.keys.as_ref(), &bk[8..], "suppressed key")?;
            let ts = i64::from_be_bytes(
                bv[..8]
                    .try_into()
                    .map_err(|_| StreamsError::store(&self.store, "short entry"))?,
            );
            let new = if bv[8] == 1 {
                Some(from_bytes(
                    self.values.as_ref(),
                    &bv[9..],
                    "suppressed value",
                )?)
            } else {
                None
            };
            buffer.delete(&bk)?;
            let out = Rec {
                key: Arc::new(key),
                value: Arc::new(Change::<V> { new, old: None }),
                timestamp: ts,
                headers: Arc::new(Vec::new()),
            };
            ctx.forward(out)?;
        }
        Ok(())
    }
}
