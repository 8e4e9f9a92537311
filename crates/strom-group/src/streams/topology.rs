//! A streams topology checked on its own (StreamsGroupHeartbeat refuses a broken one) and
//! against the cluster's topics (Kafka's `InternalTopicManager.configureTopics`): the
//! number of tasks of each subtopology, the partition counts of repartition and changelog
//! topics, the internal topics still to create, and the statuses that hold the group back
//! (MISSING_SOURCE_TOPICS, INCORRECTLY_PARTITIONED_TOPICS, MISSING_INTERNAL_TOPICS).

use std::collections::{BTreeMap, BTreeSet};

use crate::consumer::Topics;

use super::types::{Status, StatusCode, Subtopology, TopicToCreate, Topology};

/// Checks what Kafka checks before a topology reaches the group; `Err` is the message of
/// STREAMS_INVALID_TOPOLOGY.
pub fn validate(topology: &Topology) -> Result<(), String> {
    let mut ids = BTreeSet::new();
    for s in &topology.subtopologies {
        if s.id.is_empty() {
            return Err("Subtopology ids must not be empty.".to_owned());
        }
        if !ids.insert(s.id.as_str()) {
            return Err(format!("Subtopology id {} is not unique.", s.id));
        }
        for t in &s.state_changelog_topics {
            if t.partitions != 0 {
                return Err(format!(
                    "Changelog topic {} must have an undefined partition count, but it is set to {}.",
                    t.name, t.partitions
                ));
            }
        }
        for t in &s.repartition_source_topics {
            if t.partitions < 0 {
                return Err(format!(
                    "Repartition topic {} has a negative partition count {}.",
                    t.name, t.partitions
                ));
            }
        }
        let all_named = s
            .source_topics
            .iter()
            .chain(s.repartition_sink_topics.iter())
            .chain(s.state_changelog_topics.iter().map(|t| &t.name))
            .chain(s.repartition_source_topics.iter().map(|t| &t.name));
        for name in all_named {
            if name.is_empty() || name.len() > crate::records::STRING_BYTES_MAX {
                return Err(format!(
                    "Subtopology {} names a topic with an invalid name.",
                    s.id
                ));
            }
        }
        for g in &s.copartition_groups {
            let in_range = |indexes: &[i16], len: usize| {
                indexes
                    .iter()
                    .all(|i| usize::try_from(*i).is_ok_and(|i| i < len))
            };
            if !in_range(&g.source_topics, s.source_topics.len())
                || !in_range(&g.source_topic_regex, s.source_topic_regex.len())
                || !in_range(
                    &g.repartition_source_topics,
                    s.repartition_source_topics.len(),
                )
            {
                return Err(format!(
                    "Subtopology {} has a copartition group index out of range.",
                    s.id
                ));
            }
        }
    }
    Ok(())
}

/// A topology as the cluster's topics make it: ready (every topic there, rightly
/// partitioned) or held back by statuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Configured {
    /// Tasks (partitions) per subtopology; empty unless ready.
    pub tasks: BTreeMap<String, i32>,
    /// The input topics (source and repartition source) of each subtopology, for
    /// mapping tasks to partitions for interactive queries.
    pub inputs: BTreeMap<String, Vec<String>>,
    /// The subtopologies with state (a changelog topic): only their tasks get standbys.
    pub stateful: BTreeSet<String>,
    pub status: Vec<Status>,
    pub to_create: Vec<TopicToCreate>,
}

impl Configured {
    pub fn is_ready(&self) -> bool {
        self.status.is_empty()
    }
}

/// Configures `topology` against `topics`. `tasks_max` bounds the tasks it may make.
pub fn configure(topology: &Topology, topics: &Topics, tasks_max: usize) -> Configured {
    let mut out = Configured::default();
    let missing: BTreeSet<&str> = topology
        .subtopologies
        .iter()
        .flat_map(|s| s.source_topics.iter())
        .filter(|t| topics.by_name(t).is_none())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        out.status.push(Status {
            code: StatusCode::MissingSourceTopics,
            detail: format!(
                "Source topics {} are missing.",
                missing.into_iter().collect::<Vec<_>>().join(", ")
            ),
        });
        return out;
    }
    let existing = |name: &str| topics.by_name(name).map(|t| t.partitions);
    let mut repartition = repartition_counts(topology, &existing);
    if let Err(detail) = enforce_copartitioning(topology, &existing, &mut repartition) {
        out.status.push(Status {
            code: StatusCode::IncorrectlyPartitionedTopics,
            detail,
        });
        return out;
    }
    let mut unknown = Vec::new();
    let mut tasks = BTreeMap::new();
    for s in &topology.subtopologies {
        let mut n = 0;
        for t in &s.source_topics {
            n = n.max(existing(t).unwrap_or(0));
        }
        for t in &s.repartition_source_topics {
            match repartition.get(t.name.as_str()).copied().flatten() {
                Some(p) => n = n.max(p),
                None => unknown.push(t.name.clone()),
            }
        }
        tasks.insert(s.id.clone(), n);
        if !s.state_changelog_topics.is_empty() {
            out.stateful.insert(s.id.clone());
        }
        out.inputs.insert(
            s.id.clone(),
            s.source_topics
                .iter()
                .cloned()
                .chain(s.repartition_source_topics.iter().map(|t| t.name.clone()))
                .collect(),
        );
    }
    if !unknown.is_empty() {
        unknown.sort();
        unknown.dedup();
        out.status.push(Status {
            code: StatusCode::IncorrectlyPartitionedTopics,
            detail: format!(
                "The number of partitions of repartition topics {} cannot be derived.",
                unknown.join(", ")
            ),
        });
        return out;
    }
    let total: usize = tasks
        .values()
        .map(|n| usize::try_from(*n).unwrap_or(0))
        .sum();
    if total > tasks_max {
        out.status.push(Status {
            code: StatusCode::IncorrectlyPartitionedTopics,
            detail: format!(
                "The topology has {total} tasks, more than the {tasks_max} this broker assigns."
            ),
        });
        return out;
    }
    // Internal topics: repartition topics with their counts, changelogs with the tasks of
    // their subtopology. Missing ones are created by the broker; a wrong count holds back.
    let mut wanted: BTreeMap<String, TopicToCreate> = BTreeMap::new();
    for s in &topology.subtopologies {
        for t in &s.repartition_source_topics {
            let partitions = repartition
                .get(t.name.as_str())
                .copied()
                .flatten()
                .unwrap_or(0);
            wanted
                .entry(t.name.clone())
                .or_insert_with(|| internal(t, partitions));
        }
        let n = tasks.get(&s.id).copied().unwrap_or(0);
        for t in &s.state_changelog_topics {
            wanted
                .entry(t.name.clone())
                .or_insert_with(|| internal(t, n));
        }
    }
    let mut wrong = Vec::new();
    for (name, topic) in wanted {
        match existing(&name) {
            None => out.to_create.push(topic),
            Some(p) if p != topic.partitions => wrong.push(format!(
                "{name} (expected {} partitions, found {p})",
                topic.partitions
            )),
            Some(_) => {}
        }
    }
    if !wrong.is_empty() {
        out.status.push(Status {
            code: StatusCode::IncorrectlyPartitionedTopics,
            detail: format!(
                "Internal topics have the wrong number of partitions: {}.",
                wrong.join(", ")
            ),
        });
        return out;
    }
    if !out.to_create.is_empty() {
        let names: Vec<&str> = out.to_create.iter().map(|t| t.name.as_str()).collect();
        out.status.push(Status {
            code: StatusCode::MissingInternalTopics,
            detail: format!("Internal topics are missing: [{}]", names.join(", ")),
        });
        return out;
    }
    out.tasks = tasks;
    out
}

fn internal(t: &super::types::TopicInfo, partitions: i32) -> TopicToCreate {
    TopicToCreate {
        name: t.name.clone(),
        partitions,
        replication_factor: if t.replication_factor > 0 {
            t.replication_factor
        } else {
            -1
        },
        configs: t.configs.clone(),
    }
}

/// Partition counts of repartition topics: declared, or (Kafka's `RepartitionTopics`) the
/// largest input of the subtopologies writing to them, derived until nothing changes.
fn repartition_counts<'a>(
    topology: &'a Topology,
    existing: &dyn Fn(&str) -> Option<i32>,
) -> BTreeMap<&'a str, Option<i32>> {
    let mut counts: BTreeMap<&str, Option<i32>> = BTreeMap::new();
    for s in &topology.subtopologies {
        for t in &s.repartition_source_topics {
            let declared = (t.partitions > 0).then_some(t.partitions);
            let entry = counts.entry(t.name.as_str()).or_insert(None);
            if entry.is_none() {
                *entry = declared;
            }
        }
    }
    // Each pass fixes at least one count or changes nothing, so this many passes suffice.
    for _ in 0..=counts.len() {
        let mut changed = false;
        for s in &topology.subtopologies {
            let Some(n) = input_max(s, existing, &counts) else {
                continue;
            };
            for sink in &s.repartition_sink_topics {
                if let Some(slot) = counts.get_mut(sink.as_str()) {
                    if slot.is_none() {
                        *slot = Some(n);
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    counts
}

/// The largest partition count among a subtopology's inputs, if every one is known.
fn input_max(
    s: &Subtopology,
    existing: &dyn Fn(&str) -> Option<i32>,
    counts: &BTreeMap<&str, Option<i32>>,
) -> Option<i32> {
    let mut n = 0;
    for t in &s.source_topics {
        n = n.max(existing(t)?);
    }
    for t in &s.repartition_source_topics {
        n = n.max(counts.get(t.name.as_str()).copied().flatten()?);
    }
    (n > 0).then_some(n)
}

/// Kafka's `CopartitionedTopicsEnforcer`: the source topics of a copartition group must
/// have one partition count, which repartition topics of the group without a declared
/// count take.
fn enforce_copartitioning(
    topology: &Topology,
    existing: &dyn Fn(&str) -> Option<i32>,
    counts: &mut BTreeMap<&str, Option<i32>>,
) -> Result<(), String> {
    for s in &topology.subtopologies {
        for g in &s.copartition_groups {
            let sources: Vec<&String> = g
                .source_topics
                .iter()
                .filter_map(|i| s.source_topics.get(usize::try_from(*i).ok()?))
                .collect();
            let counts_of_sources: BTreeSet<i32> =
                sources.iter().filter_map(|t| existing(t)).collect();
            if counts_of_sources.len() > 1 {
                let names: Vec<&str> = sources.iter().map(|t| t.as_str()).collect();
                return Err(format!(
                    "Following topics do not have the same number of partitions: [{}]",
                    names.join(", ")
                ));
            }
            let repartitions: Vec<(&str, bool)> = g
                .repartition_source_topics
                .iter()
                .filter_map(|i| s.repartition_source_topics.get(usize::try_from(*i).ok()?))
                .map(|t| (t.name.as_str(), t.partitions > 0))
                .collect();
            let target = counts_of_sources.iter().next().copied().or_else(|| {
                repartitions
                    .iter()
                    .filter_map(|(name, _)| counts.get(name).copied().flatten())
                    .max()
            });
            let Some(target) = target else {
                continue;
            };
            for (name, declared) in repartitions {
                if declared {
                    if counts.get(name).copied().flatten() != Some(target) {
                        return Err(format!(
                            "Number of partitions {} of repartition topic {name} does not match the copartitioned topics ({target}).",
                            counts.get(name).copied().flatten().unwrap_or(0)
                        ));
                    }
                } else if let Some(slot) = counts.get_mut(name) {
                    *slot = Some(target);
                }
            }
        }
    }
    Ok(())
}
