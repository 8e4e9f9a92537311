//! [`KStream`]: a record stream and its stateless operators, sinks, repartitioning, the
//! processor API hook, and grouping.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;

use super::grouped::KGroupedStream;
use super::table::{self, KTable};
use super::{serde_or, Consumed, Data, Graph, Grouped, Materialized, Produced, Repartitioned};
use crate::error::{Result, StreamsError};
use crate::processor::{stateless, Ctx, Node, NodeFactory, OutRecord, Processor, ProcessorContext};
use crate::record::{Rec, Record};
use crate::serdes::SerdeRef;
use crate::task::CONTINUE_ON_DESERIALIZATION_ERROR;
use crate::topology::{NodeKind, RepartitionSpec, TopicName};

/// A stream of records.
pub struct KStream<K, V> {
    pub(crate) graph: Graph,
    pub(crate) node: usize,
    pub(crate) keys: Option<SerdeRef<K>>,
    pub(crate) values: Option<SerdeRef<V>>,
    /// The key may have changed since the records were partitioned.
    pub(crate) repartition_required: bool,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            graph: self.graph.clone(),
            node: self.node,
            keys: self.keys.clone(),
            values: self.values.clone(),
            repartition_required: self.repartition_required,
        }
    }
}

/// Decodes a consumed record into a typed one; `Ok(None)` skips it.
pub(crate) type Decode =
    Arc<dyn Fn(&Option<Bytes>, &Option<Bytes>, &Rec) -> Result<Option<Rec>> + Send + Sync>;
/// Encodes a record for a topic; `Ok(None)` drops it.
pub(crate) type Encode =
    Arc<dyn Fn(&Rec) -> Result<Option<(Option<Bytes>, Option<Bytes>)>> + Send + Sync>;

struct SourceNode {
    decode: Decode,
    skip_errors: bool,
}

impl Node for SourceNode {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<()> {
        self.skip_errors = ctx
            .task
            .shared
            .get(CONTINUE_ON_DESERIALIZATION_ERROR)
            .and_then(|f| f.downcast_ref::<bool>().copied())
            .unwrap_or(false);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: Rec) -> Result<()> {
        let key = rec.key::<Option<Bytes>>()?;
        let value = rec.value::<Option<Bytes>>()?;
        match (self.decode)(key, value, &rec) {
            Ok(Some(typed)) => ctx.forward(typed),
            Ok(None) => Ok(()),
            Err(e) if self.skip_errors => {
                let r = &ctx.task.record;
                tracing::warn!(topic = %r.topic, partition = r.partition, offset = r.offset, error = %e, "skipping a record that does not deserialize");
                ctx.skipped();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

pub(crate) fn source_factory(decode: Decode) -> NodeFactory {
    Arc::new(move || {
        Box::new(SourceNode {
            decode: decode.clone(),
            skip_errors: false,
        }) as Box<dyn Node>
    })
}

fn serde_err(what: &str, e: crate::serdes::SerdeError) -> StreamsError {
    StreamsError::Serde {
        what: what.to_string(),
        reason: e.0,
    }
}

/// Typed decoding of a topic's records.
pub(crate) fn typed_decode<K: Data, V: Data>(
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
    what: String,
) -> Decode {
    Arc::new(move |k, v, rec| {
        let key = keys
            .deserialize(k.as_deref())
            .map_err(|e| serde_err(&format!("key of {what}"), e))?;
        let value = values
            .deserialize(v.as_deref())
            .map_err(|e| serde_err(&format!("value of {what}"), e))?;
        Ok(Some(rec.with(key, value)))
    })
}

/// Typed encoding for a topic; `drop_null_keys` drops records whose key serializes to null.
pub(crate) fn typed_encode<K: Data, V: Data>(
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
    what: String,
    drop_null_keys: bool,
) -> Encode {
    Arc::new(move |rec| {
        let k = keys
            .serialize(rec.key::<K>()?)
            .map_err(|e| serde_err(&format!("key for {what}"), e))?;
        if drop_null_keys && k.is_none() {
            return Ok(None);
        }
        let v = values
            .serialize(rec.value::<V>()?)
            .map_err(|e| serde_err(&format!("value for {what}"), e))?;
        Ok(Some((k, v)))
    })
}

struct SinkNode {
    topic: TopicName,
    resolved: String,
    encode: Encode,
}

impl Node for SinkNode {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<()> {
        self.resolved = self.topic.resolve(&ctx.task.application_id);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: Rec) -> Result<()> {
        let Some((key, value)) = (self.encode)(&rec)? else {
            ctx.skipped();
            return Ok(());
        };
        ctx.emit(OutRecord {
            topic: self.resolved.clone(),
            partition: None,
            key,
            value,
            timestamp: rec.timestamp,
            headers: rec.headers.as_ref().clone(),
            changelog_of: None,
        });
        Ok(())
    }
}

pub(crate) fn add_sink(
    graph: &Graph,
    name: Option<String>,
    parent: usize,
    topic: TopicName,
    encode: Encode,
) -> usize {
    let t = topic.clone();
    let factory: NodeFactory = Arc::new(move || {
        Box::new(SinkNode {
            topic: t.clone(),
            resolved: String::new(),
            encode: encode.clone(),
        }) as Box<dyn Node>
    });
    graph.add_named(
        name,
        "KSTREAM-SINK",
        NodeKind::Sink { topic },
        &[parent],
        Vec::new(),
        factory,
    )
}

pub(crate) fn add_source(
    graph: &Graph,
    name: Option<String>,
    topics: Vec<TopicName>,
    decode: Decode,
    consumed_extractor: Option<crate::topology::ExtractorRef>,
) -> usize {
    graph.add_named(
        name,
        "KSTREAM-SOURCE",
        NodeKind::Source {
            topics,
            extractor: consumed_extractor,
        },
        &[],
        Vec::new(),
        source_factory(decode),
    )
}

/// Writes records from `parent` to internal topic `<name>-repartition` and reads them
/// back in a new sub-topology; returns the new source node.
pub(crate) fn add_repartition(
    graph: &Graph,
    parent: usize,
    name: &str,
    encode: Encode,
    decode: Decode,
    spec: RepartitionSpec,
) -> usize {
    let topic_name = format!("{name}-repartition");
    let topic = TopicName::Internal(topic_name.clone());
    {
        let mut g = graph.lock();
        if g.repartitions.contains_key(&topic_name) {
            g.error(format!(
                "repartition topic {topic_name} made twice; name the operators apart"
            ));
        }
        g.repartitions.insert(topic_name, spec);
    }
    add_sink(graph, None, parent, topic.clone(), encode);
    add_source(graph, None, vec![topic], decode, None)
}

pub(crate) fn source<K: Data, V: Data>(
    graph: &Graph,
    topics: &[&str],
    consumed: Consumed<K, V>,
) -> KStream<K, V> {
    let names: Vec<TopicName> = topics
        .iter()
        .map(|t| TopicName::User(t.to_string()))
        .collect();
    let decode = typed_decode(
        consumed.keys.clone(),
        consumed.values.clone(),
        topics.join(","),
    );
    let node = add_source(graph, consumed.name, names, decode, consumed.extractor);
    KStream {
        graph: graph.clone(),
        node,
        keys: Some(consumed.keys),
        values: Some(consumed.values),
        repartition_required: false,
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    pub(crate) fn derive<K2, V2>(
        &self,
        node: usize,
        keys: Option<SerdeRef<K2>>,
        values: Option<SerdeRef<V2>>,
        repartition_required: bool,
    ) -> KStream<K2, V2> {
        KStream {
            graph: self.graph.clone(),
            node,
            keys,
            values,
            repartition_required,
        }
    }

    fn add(&self, prefix: &str, factory: NodeFactory) -> usize {
        self.graph.add(
            prefix,
            NodeKind::Processor,
            &[self.node],
            Vec::new(),
            factory,
        )
    }

    /// Keeps records for which `predicate` holds.
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        let node = self.add(
            "KSTREAM-FILTER",
            stateless(move |ctx, rec| {
                if predicate(rec.key::<K>()?, rec.value::<V>()?) {
                    ctx.forward(rec)
                } else {
                    Ok(())
                }
            }),
        );
        self.derive(
            node,
            self.keys.clone(),
            self.values.clone(),
            self.repartition_required,
        )
    }

    /// Drops records for which `predicate` holds.
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// New key and value for each record (marks the stream for repartitioning).
    pub fn map<K2: Data, V2: Data>(
        &self,
        f: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let node = self.add(
            "KSTREAM-MAP",
            stateless(move |ctx, rec| {
                let (k, v) = f(rec.key::<K>()?, rec.value::<V>()?);
                ctx.forward(rec.with(k, v))
            }),
        );
        self.derive(node, None, None, true)
    }

    /// New value for each record.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(&V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.map_values_with_key(move |_, v| f(v))
    }

    /// New value from key and value.
    pub fn map_values_with_key<V2: Data>(
        &self,
        f: impl Fn(&K, &V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let node = self.add(
            "KSTREAM-MAPVALUES",
            stateless(move |ctx, rec| {
                let v = f(rec.key::<K>()?, rec.value::<V>()?);
                ctx.forward(rec.with_value(v))
            }),
        );
        self.derive(node, self.keys.clone(), None, self.repartition_required)
    }

    /// Zero or more records for each record (marks the stream for repartitioning).
    pub fn flat_map<K2: Data, V2: Data, I>(
        &self,
        f: impl Fn(&K, &V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        let node = self.add(
            "KSTREAM-FLATMAP",
            stateless(move |ctx, rec| {
                for (k, v) in f(rec.key::<K>()?, rec.value::<V>()?) {
                    ctx.forward(rec.with(k, v))?;
                }
                Ok(())
            }),
        );
        self.derive(node, None, None, true)
    }

    /// Zero or more values for each record, same key.
    pub fn flat_map_values<V2: Data, I>(
        &self,
        f: impl Fn(&V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        let node = self.add(
            "KSTREAM-FLATMAPVALUES",
            stateless(move |ctx, rec| {
                for v in f(rec.value::<V>()?) {
                    ctx.forward(rec.with_value(v))?;
                }
                Ok(())
            }),
        );
        self.derive(node, self.keys.clone(), None, self.repartition_required)
    }

    /// A new key for each record (marks the stream for repartitioning).
    pub fn select_key<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        let node = self.add(
            "KSTREAM-KEY-SELECT",
            stateless(move |ctx, rec| {
                let k = f(rec.key::<K>()?, rec.value::<V>()?);
                let value = rec.value.clone();
                let mut out = rec.with(k, ());
                out.value = value;
                ctx.forward(out)
            }),
        );
        self.derive(node, None, self.values.clone(), true)
    }

    /// Calls `f` for each record and passes it on.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        let node = self.add(
            "KSTREAM-PEEK",
            stateless(move |ctx, rec| {
                f(rec.key::<K>()?, rec.value::<V>()?);
                ctx.forward(rec)
            }),
        );
        self.derive(
            node,
            self.keys.clone(),
            self.values.clone(),
            self.repartition_required,
        )
    }

    /// Calls `f` for each record (a terminal operator).
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        self.add(
            "KSTREAM-FOREACH",
            stateless(move |_, rec| {
                f(rec.key::<K>()?, rec.value::<V>()?);
                Ok(())
            }),
        );
    }

    /// Splits the stream by predicates: each record goes to the first branch it matches.
    pub fn split(&self) -> BranchedKStream<K, V> {
        BranchedKStream {
            parent: self.clone(),
            prefix: self.graph.next_name("KSTREAM-BRANCH"),
            branches: Vec::new(),
        }
    }

    /// One stream of this one's and `other`'s records.
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let node = self.graph.add(
            "KSTREAM-MERGE",
            NodeKind::Processor,
            &[self.node, other.node],
            Vec::new(),
            stateless(|ctx, rec| ctx.forward(rec)),
        );
        self.derive(
            node,
            self.keys.clone().or_else(|| other.keys.clone()),
            self.values.clone().or_else(|| other.values.clone()),
            self.repartition_required || other.repartition_required,
        )
    }

    /// Writes the records to `topic`.
    pub fn to(&self, topic: &str, produced: Produced<K, V>) {
        let encode = typed_encode(produced.keys, produced.values, topic.to_string(), false);
        add_sink(
            &self.graph,
            produced.name,
            self.node,
            TopicName::User(topic.to_string()),
            encode,
        );
    }

    /// Writes the records to `topic` (which must exist) and reads them back from it.
    pub fn through(&self, topic: &str, produced: Produced<K, V>) -> KStream<K, V> {
        let (keys, values) = (produced.keys.clone(), produced.values.clone());
        self.to(topic, produced);
        let decode = typed_decode(keys.clone(), values.clone(), topic.to_string());
        let node = add_source(
            &self.graph,
            None,
            vec![TopicName::User(topic.to_string())],
            decode,
            None,
        );
        self.derive(node, Some(keys), Some(values), false)
    }

    /// Repartitions by the current key through `<application.id>-<name>-repartition`.
    pub fn repartition(&self, repartitioned: Repartitioned<K, V>) -> KStream<K, V> {
        let name = repartitioned
            .name
            .clone()
            .unwrap_or_else(|| self.graph.next_name("KSTREAM-REPARTITION"));
        let keys = serde_or(&self.graph, repartitioned.keys, &self.keys, "repartition");
        let values = serde_or(
            &self.graph,
            repartitioned.values,
            &self.values,
            "repartition",
        );
        match (keys, values) {
            (Some(k), Some(v)) => self.repartition_through(
                &name,
                k,
                v,
                RepartitionSpec {
                    partitions: repartitioned.partitions,
                    like_node: None,
                },
            ),
            _ => self.clone(),
        }
    }

    pub(crate) fn repartition_through(
        &self,
        name: &str,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
        spec: RepartitionSpec,
    ) -> KStream<K, V> {
        let what = format!("{name}-repartition");
        let encode = typed_encode(keys.clone(), values.clone(), what.clone(), true);
        let decode = typed_decode(keys.clone(), values.clone(), what);
        let node = add_repartition(&self.graph, self.node, name, encode, decode, spec);
        self.derive(node, Some(keys), Some(values), false)
    }

    /// Runs a [`Processor`] (made by `supplier`, one per task) on each record; `stores`
    /// are the stores (added with [`super::StreamsBuilder::add_state_store`]) it may use.
    pub fn process<K2: Data, V2: Data, P>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<K2, V2>
    where
        P: Processor<K, V, K2, V2> + 'static,
    {
        let factory: NodeFactory = Arc::new(move || {
            Box::new(ProcessorNode::<K, V, K2, V2, P> {
                processor: supplier(),
                _types: PhantomData,
            }) as Box<dyn Node>
        });
        let node = self.graph.add(
            "KSTREAM-PROCESSOR",
            NodeKind::Processor,
            &[self.node],
            stores.iter().map(|s| s.to_string()).collect(),
            factory,
        );
        self.derive(node, None, None, true)
    }

    /// Groups by the current key (repartitioning first if the key may have changed).
    pub fn group_by_key(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream::new(self.clone(), grouped)
    }

    /// Groups by a new key (always repartitions).
    pub fn group_by<K2: Data>(
        &self,
        selector: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V> {
        let selected = self.select_key(selector);
        let grouped = Grouped {
            values: grouped.values.or_else(|| self.values.clone()),
            ..grouped
        };
        KGroupedStream::new(selected, grouped)
    }

    /// A table of the stream: the latest value per key.
    pub fn to_table(&self, materialized: Materialized<K, V>) -> KTable<K, V> {
        let stream = if self.repartition_required {
            match (self.keys.clone(), self.values.clone()) {
                (Some(k), Some(v)) => {
                    let name = self.graph.next_name("KSTREAM-TOTABLE");
                    self.repartition_through(&name, k, v, RepartitionSpec::default())
                }
                _ => {
                    self.graph
                        .error("to_table after a key change needs key and value serdes");
                    self.clone()
                }
            }
        } else {
            self.clone()
        };
        let node = stream.add(
            "KSTREAM-WRAP-OPTION",
            stateless(|ctx, rec| {
                let v = rec.value::<V>()?.clone();
                ctx.forward(rec.with_value(Some(v)))
            }),
        );
        table::materialize_updates(
            &stream.graph,
            node,
            stream.keys.clone(),
            stream.values.clone(),
            materialized,
            "KSTREAM-TOTABLE",
        )
    }
}

impl<K: Data, V: Data> KStream<K, Option<V>> {
    /// Drops records whose value is `None` and unwraps the rest.
    pub fn filter_some(&self) -> KStream<K, V> {
        let node = self.add(
            "KSTREAM-FILTER-SOME",
            stateless(|ctx, rec| match rec.value::<Option<V>>()? {
                Some(v) => {
                    let v = v.clone();
                    ctx.forward(rec.with_value(v))
                }
                None => Ok(()),
            }),
        );
        self.derive(node, self.keys.clone(), None, self.repartition_required)
    }
}

struct ProcessorNode<K, V, K2, V2, P> {
    processor: P,
    _types: PhantomData<fn(K, V, K2, V2)>,
}

impl<K: Data, V: Data, K2: Data, V2: Data, P: Processor<K, V, K2, V2>> Node
    for ProcessorNode<K, V, K2, V2, P>
{
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<()> {
        self.processor.init(&mut ProcessorContext {
            ctx,
            _out: PhantomData,
        })
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: Rec) -> Result<()> {
        let record = Record {
            key: rec.key::<K>()?.clone(),
            value: rec.value::<V>()?.clone(),
            timestamp: rec.timestamp,
            headers: rec.headers.as_ref().clone(),
        };
        self.processor.process(
            &mut ProcessorContext {
                ctx,
                _out: PhantomData,
            },
            record,
        )
    }

    fn punctuate(&mut self, ctx: &mut Ctx<'_>, schedule: u64, timestamp: i64) -> Result<()> {
        self.processor.punctuate(
            &mut ProcessorContext {
                ctx,
                _out: PhantomData,
            },
            schedule,
            timestamp,
        )
    }

    fn close(&mut self) {
        self.processor.close();
    }
}

type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// A stream being split into named branches (Kafka's `BranchedKStream`).
pub struct BranchedKStream<K, V> {
    parent: KStream<K, V>,
    prefix: String,
    branches: Vec<(String, Predicate<K, V>)>,
}

impl<K: Data, V: Data> BranchedKStream<K, V> {
    /// Records matching `predicate` (and no earlier branch) go to branch `name`.
    pub fn branch(
        mut self,
        name: &str,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.branches.push((name.to_string(), Arc::new(predicate)));
        self
    }

    /// Records matching no branch go to branch `name`; returns every branch by name.
    pub fn default_branch(self, name: &str) -> BTreeMap<String, KStream<K, V>> {
        self.finish(Some(name.to_string()))
    }

    /// Records matching no branch are dropped; returns every branch by name.
    pub fn no_default_branch(self) -> BTreeMap<String, KStream<K, V>> {
        self.finish(None)
    }

    fn finish(self, default: Option<String>) -> BTreeMap<String, KStream<K, V>> {
        let predicates: Vec<Predicate<K, V>> =
            self.branches.iter().map(|(_, p)| p.clone()).collect();
        let n = predicates.len();
        let has_default = default.is_some();
        let graph = &self.parent.graph;
        let split = graph.add_named(
            Some(self.prefix.clone()),
            "KSTREAM-BRANCH",
            NodeKind::Processor,
            &[self.parent.node],
            Vec::new(),
            stateless(move |ctx, rec| {
                let (k, v) = (rec.key::<K>()?, rec.value::<V>()?);
                match predicates.iter().position(|p| p(k, v)) {
                    Some(i) => ctx.forward_to(i, rec),
                    None if has_default => ctx.forward_to(n, rec),
                    None => Ok(()),
                }
            }),
        );
        let mut names: Vec<String> = self.branches.into_iter().map(|(n, _)| n).collect();
        names.extend(default);
        let mut out = BTreeMap::new();
        for name in names {
            let node = graph.add_named(
                Some(format!("{}-{name}", self.prefix)),
                "KSTREAM-BRANCHCHILD",
                NodeKind::Processor,
                &[split],
                Vec::new(),
                stateless(|ctx, rec| ctx.forward(rec)),
            );
            out.insert(
                name,
                self.parent.derive(
                    node,
                    self.parent.keys.clone(),
                    self.parent.values.clone(),
                    self.parent.repartition_required,
                ),
            );
        }
        out
    }
}
