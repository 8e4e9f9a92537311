//! The topology: the graph of nodes the DSL (or the processor API) built, split into
//! sub-topologies (node groups joined by parent edges and shared stores, cut at repartition
//! topics), plus the stores, global stores and internal topics they need.
//!
//! A sub-topology with source partitions `0..n` becomes `n` tasks (`<subtopology>_<p>`);
//! internal topics are named `<application.id>-<name>` (`-repartition`, `-changelog`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::error::{Result, StreamsError};
use crate::processor::NodeFactory;
use crate::state::StoreSpec;

/// A topic a topology reads or writes: a user's, or internal (prefixed with the
/// application id at run time).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopicName {
    User(String),
    Internal(String),
}

impl TopicName {
    /// The topic's real name for application `application_id`.
    pub fn resolve(&self, application_id: &str) -> String {
        match self {
            TopicName::User(t) => t.clone(),
            TopicName::Internal(n) => format!("{application_id}-{n}"),
        }
    }

    fn short(&self) -> &str {
        match self {
            TopicName::User(t) | TopicName::Internal(t) => t,
        }
    }
}

/// A record as a timestamp extractor sees it.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The timestamp the record carries.
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Event time of a record (Kafka's `TimestampExtractor`); a negative result drops the
/// record (counted as skipped).
pub trait TimestampExtractor: Send + Sync {
    /// `partition_time`: the largest timestamp seen on the record's partition (-1: none).
    fn extract(&self, record: &RawRecord<'_>, partition_time: i64) -> i64;
}

impl<F> TimestampExtractor for F
where
    F: Fn(&RawRecord<'_>, i64) -> i64 + Send + Sync,
{
    fn extract(&self, record: &RawRecord<'_>, partition_time: i64) -> i64 {
        self(record, partition_time)
    }
}

pub(crate) type ExtractorRef = Arc<dyn TimestampExtractor>;

#[derive(Clone)]
pub(crate) enum NodeKind {
    Source {
        topics: Vec<TopicName>,
        extractor: Option<ExtractorRef>,
    },
    Processor,
    Sink {
        topic: TopicName,
    },
}

#[derive(Clone)]
pub(crate) struct NodeDef {
    pub name: String,
    pub kind: NodeKind,
    pub factory: NodeFactory,
    pub parents: Vec<usize>,
    pub stores: Vec<String>,
}

/// How many partitions a repartition topic gets.
#[derive(Debug, Clone, Default)]
pub(crate) struct RepartitionSpec {
    /// Fixed by the user (`Repartitioned::with_partitions`).
    pub partitions: Option<i32>,
    /// As many as the tasks of the sub-topology holding this node.
    pub like_node: Option<usize>,
}

/// A global store: the whole topic, on every instance.
#[derive(Debug, Clone)]
pub(crate) struct GlobalSpec {
    pub topic: String,
    pub store: String,
}

/// What the builder accumulates.
#[derive(Default)]
pub(crate) struct BuilderState {
    pub nodes: Vec<NodeDef>,
    pub stores: BTreeMap<String, StoreSpec>,
    pub globals: Vec<GlobalSpec>,
    pub repartitions: BTreeMap<String, RepartitionSpec>,
    /// Source nodes whose topics must have equal partition counts (joins).
    pub copartition: Vec<Vec<usize>>,
    pub counter: usize,
    pub errors: Vec<String>,
}

impl BuilderState {
    /// Kafka's generated names: `KSTREAM-FILTER-0000000003`.
    pub fn name(&mut self, prefix: &str) -> String {
        let n = self.counter;
        self.counter += 1;
        format!("{prefix}-{n:010}")
    }

    pub fn add(
        &mut self,
        name: String,
        kind: NodeKind,
        parents: &[usize],
        stores: Vec<String>,
        factory: NodeFactory,
    ) -> usize {
        self.nodes.push(NodeDef {
            name,
            kind,
            factory,
            parents: parents.to_vec(),
            stores,
        });
        self.nodes.len() - 1
    }

    pub fn add_store(&mut self, spec: StoreSpec) {
        if self.stores.contains_key(&spec.name) {
            self.errors
                .push(format!("store {} declared twice", spec.name));
            return;
        }
        self.stores.insert(spec.name.clone(), spec);
    }

    pub fn error(&mut self, e: impl Into<String>) {
        self.errors.push(e.into());
    }

    /// The source nodes upstream of `node` within its sub-topology.
    pub fn sources_of(&self, node: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack = vec![node];
        let mut seen = BTreeSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            let Some(def) = self.nodes.get(n) else {
                continue;
            };
            if matches!(def.kind, NodeKind::Source { .. }) {
                out.push(n);
            }
            stack.extend(def.parents.iter().copied());
        }
        out
    }
}

/// One sub-topology.
#[derive(Debug, Clone)]
pub(crate) struct Subtopology {
    pub id: u32,
    /// Node indexes, ascending.
    pub nodes: Vec<usize>,
    pub sources: BTreeSet<TopicName>,
    pub sinks: BTreeSet<TopicName>,
    pub stores: BTreeSet<String>,
}

/// A built topology, ready for [`crate::KafkaStreams`] or the [`crate::TopologyTestDriver`].
pub struct Topology {
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) subtopologies: Vec<Subtopology>,
    pub(crate) stores: Arc<HashMap<String, StoreSpec>>,
    pub(crate) globals: Vec<GlobalSpec>,
    pub(crate) repartitions: BTreeMap<String, RepartitionSpec>,
    pub(crate) copartition: Vec<BTreeSet<TopicName>>,
}

impl Topology {
    pub(crate) fn build(state: BuilderState) -> Result<Topology> {
        if !state.errors.is_empty() {
            return Err(StreamsError::Topology(state.errors.join("; ")));
        }
        let n = state.nodes.len();
        let global_stores: BTreeSet<&str> =
            state.globals.iter().map(|g| g.store.as_str()).collect();
        for node in &state.nodes {
            for s in &node.stores {
                if !state.stores.contains_key(s) {
                    return Err(StreamsError::Topology(format!(
                        "processor {} is connected to store {s}, which was never added",
                        node.name
                    )));
                }
            }
        }
        // Union-find over parent edges and shared (non-global) stores.
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        let union = |p: &mut Vec<usize>, a: usize, b: usize| {
            let (ra, rb) = (find(p, a), find(p, b));
            if ra != rb {
                let (lo, hi) = (ra.min(rb), ra.max(rb));
                p[hi] = lo;
            }
        };
        let mut by_store: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, node) in state.nodes.iter().enumerate() {
            for &p in &node.parents {
                union(&mut parent, i, p);
            }
            for s in &node.stores {
                if global_stores.contains(s.as_str()) {
                    continue;
                }
                match by_store.get(s.as_str()) {
                    Some(&j) => union(&mut parent, i, j),
                    None => {
                        by_store.insert(s, i);
                    }
                }
            }
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for i in 0..n {
            let r = find(&mut parent, i);
            groups.entry(r).or_default().push(i);
        }
        let mut subtopologies = Vec::new();
        let mut consumed: BTreeMap<TopicName, String> = BTreeMap::new();
        for (id, (_, nodes)) in groups.into_iter().enumerate() {
            let mut sub = Subtopology {
                id: u32::try_from(id).unwrap_or(u32::MAX),
                nodes: nodes.clone(),
                sources: BTreeSet::new(),
                sinks: BTreeSet::new(),
                stores: BTreeSet::new(),
            };
            for &i in &nodes {
                let def = &state.nodes[i];
                match &def.kind {
                    NodeKind::Source { topics, .. } => {
                        for t in topics {
                            if let Some(other) = consumed.insert(t.clone(), def.name.clone()) {
                                return Err(StreamsError::Topology(format!(
                                    "topic {} is read by two sources ({other} and {})",
                                    t.short(),
                                    def.name
                                )));
                            }
                            sub.sources.insert(t.clone());
                        }
                    }
                    NodeKind::Sink { topic } => {
                        sub.sinks.insert(topic.clone());
                    }
                    NodeKind::Processor => {}
                }
                for s in &def.stores {
                    if !global_stores.contains(s.as_str()) {
                        sub.stores.insert(s.clone());
                    }
                }
            }
            if sub.sources.is_empty() {
                return Err(StreamsError::Topology(format!(
                    "processor {} has no source upstream",
                    state.nodes[nodes[0]].name
                )));
            }
            subtopologies.push(sub);
        }
        for g in &state.globals {
            if consumed.contains_key(&TopicName::User(g.topic.clone())) {
                return Err(StreamsError::Topology(format!(
                    "topic {} is both a global table and a stream source",
                    g.topic
                )));
            }
        }
        let copartition = state
            .copartition
            .iter()
            .map(|sources| {
                sources
                    .iter()
                    .flat_map(|&s| match &state.nodes[s].kind {
                        NodeKind::Source { topics, .. } => topics.clone(),
                        _ => Vec::new(),
                    })
                    .collect()
            })
            .collect();
        Ok(Topology {
            nodes: state.nodes,
            subtopologies,
            stores: Arc::new(state.stores.into_iter().collect()),
            globals: state.globals,
            repartitions: state.repartitions,
            copartition,
        })
    }

    /// Topics the application consumes (user and repartition), resolved.
    pub(crate) fn source_topics(&self, application_id: &str) -> Vec<String> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        for sub in &self.subtopologies {
            for t in &sub.sources {
                out.insert(t.resolve(application_id));
            }
        }
        out.into_iter().collect()
    }

    /// The input partitions of task `id`: partition `id.partition` of each source topic
    /// of its sub-topology (none for a sub-topology the topology lacks).
    pub(crate) fn task_inputs(
        &self,
        id: crate::task::TaskId,
        application_id: &str,
    ) -> Vec<strom_client::TopicPartition> {
        self.subtopologies
            .iter()
            .filter(|s| s.id == id.subtopology)
            .flat_map(|s| s.sources.iter())
            .map(|t| strom_client::TopicPartition::new(t.resolve(application_id), id.partition))
            .collect()
    }

    /// User topics the application reads (must exist before it starts).
    pub(crate) fn user_source_topics(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for sub in &self.subtopologies {
            for t in &sub.sources {
                if let TopicName::User(name) = t {
                    out.insert(name.clone());
                }
            }
        }
        for g in &self.globals {
            out.insert(g.topic.clone());
        }
        out
    }

    /// Partitions of every internal topic and the task count of every sub-topology,
    /// from the partition counts of the user topics. Repartition topics get their fixed
    /// count, or that of the sub-topology they feed (`like_node`), or the largest task
    /// count of the sub-topologies writing them; co-partitioned groups are then checked.
    pub(crate) fn plan_partitions(
        &self,
        user_counts: &BTreeMap<String, i32>,
    ) -> Result<(BTreeMap<TopicName, i32>, Vec<i32>)> {
        let mut counts: BTreeMap<TopicName, i32> = BTreeMap::new();
        for sub in &self.subtopologies {
            for t in &sub.sources {
                if let TopicName::User(name) = t {
                    let c = user_counts.get(name).copied().ok_or_else(|| {
                        StreamsError::Topology(format!("source topic {name} does not exist"))
                    })?;
                    counts.insert(t.clone(), c);
                }
            }
        }
        for (name, spec) in &self.repartitions {
            if let Some(p) = spec.partitions {
                counts.insert(TopicName::Internal(name.clone()), p);
            }
        }
        let task_count = |counts: &BTreeMap<TopicName, i32>, sub: &Subtopology| -> Option<i32> {
            let mut max = None;
            for t in &sub.sources {
                let c = counts.get(t)?;
                max = Some(max.map_or(*c, |m: i32| m.max(*c)));
            }
            max
        };
        // Fixed point: each round settles at least one more topic or stops.
        for _ in 0..=self.repartitions.len() {
            let mut changed = false;
            for (name, spec) in &self.repartitions {
                let topic = TopicName::Internal(name.clone());
                if counts.contains_key(&topic) {
                    continue;
                }
                let settled = if let Some(node) = spec.like_node {
                    self.subtopologies
                        .iter()
                        .find(|s| s.nodes.contains(&node))
                        .and_then(|s| {
                            // The partner sub-topology, minus this very topic.
                            let mut max = None;
                            for t in s.sources.iter().filter(|t| **t != topic) {
                                let c = counts.get(t)?;
                                max = Some(max.map_or(*c, |m: i32| m.max(*c)));
                            }
                            max
                        })
                } else {
                    let writers: Vec<&Subtopology> = self
                        .subtopologies
                        .iter()
                        .filter(|s| s.sinks.contains(&topic))
                        .collect();
                    let mut max = None;
                    let mut all = true;
                    for w in writers {
                        match task_count(&counts, w) {
                            Some(c) => max = Some(max.map_or(c, |m: i32| m.max(c))),
                            None => all = false,
                        }
                    }
                    if all {
                        max
                    } else {
                        None
                    }
                };
                if let Some(c) = settled {
                    counts.insert(topic, c);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        // Co-partitioned repartition topics follow the group's user topics.
        for group in &self.copartition {
            let fixed: Option<i32> = group
                .iter()
                .filter(|t| matches!(t, TopicName::User(_)))
                .filter_map(|t| counts.get(t).copied())
                .max();
            if let Some(c) = fixed {
                for t in group {
                    if let TopicName::Internal(name) = t {
                        let explicit = self.repartitions.get(name).and_then(|s| s.partitions);
                        if explicit.is_none() {
                            counts.insert(t.clone(), c);
                        }
                    }
                }
            }
            let listed: Vec<(String, i32)> = group
                .iter()
                .map(|t| (t.short().to_string(), counts.get(t).copied().unwrap_or(-1)))
                .collect();
            if listed.windows(2).any(|w| w[0].1 != w[1].1) {
                return Err(StreamsError::Topology(format!(
                    "topics {} are joined, so they must have the same number of partitions",
                    listed
                        .iter()
                        .map(|(t, c)| format!("{t} ({c})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let mut tasks = Vec::new();
        for sub in &self.subtopologies {
            let c = task_count(&counts, sub).ok_or_else(|| {
                StreamsError::Topology(format!(
                    "cannot work out the partitions of sub-topology {}'s topics",
                    sub.id
                ))
            })?;
            tasks.push(c);
        }
        // Changelog topics: one partition per task of the owning sub-topology.
        for (sub, &n) in self.subtopologies.iter().zip(&tasks) {
            for store in &sub.stores {
                if self.stores.get(store).is_some_and(|s| s.logged) {
                    counts.insert(TopicName::Internal(format!("{store}-changelog")), n);
                }
            }
        }
        Ok((counts, tasks))
    }

    /// The changelog topic of `store` (if it is logged).
    pub(crate) fn changelog_of(&self, store: &str) -> Option<TopicName> {
        self.stores
            .get(store)
            .filter(|s| s.logged)
            .map(|_| TopicName::Internal(format!("{store}-changelog")))
    }

    /// The topology as text, in Kafka's `TopologyDescription` layout.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Topologies:")?;
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &p in &n.parents {
                children[p].push(i);
            }
        }
        let names = |v: &[usize]| -> String {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter()
                    .map(|&i| self.nodes[i].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        for sub in &self.subtopologies {
            writeln!(f, "   Sub-topology: {}", sub.id)?;
            for &i in &sub.nodes {
                let n = &self.nodes[i];
                match &n.kind {
                    NodeKind::Source { topics, .. } => {
                        let t: Vec<&str> = topics.iter().map(TopicName::short).collect();
                        writeln!(f, "    Source: {} (topics: [{}])", n.name, t.join(", "))?;
                    }
                    NodeKind::Processor => {
                        writeln!(
                            f,
                            "    Processor: {} (stores: [{}])",
                            n.name,
                            n.stores.join(", ")
                        )?;
                    }
                    NodeKind::Sink { topic } => {
                        writeln!(f, "    Sink: {} (topic: {})", n.name, topic.short())?;
                    }
                }
                if !matches!(n.kind, NodeKind::Sink { .. }) {
                    writeln!(f, "      --> {}", names(&children[i]))?;
                }
                if !matches!(n.kind, NodeKind::Source { .. }) {
                    writeln!(f, "      <-- {}", names(&n.parents))?;
                }
            }
            writeln!(f)?;
        }
        for (i, g) in self.globals.iter().enumerate() {
            writeln!(f, "   Global Store: {i}")?;
            writeln!(f, "    Source: {}-source (topics: [{}])", g.store, g.topic)?;
            writeln!(
                f,
                "    Processor: {}-updater (stores: [{}])",
                g.store, g.store
            )?;
            writeln!(f)?;
        }
        Ok(())
    }
}
