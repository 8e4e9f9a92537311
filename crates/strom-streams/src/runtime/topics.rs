//! Internal topics: before its threads start, every instance works out the partitions of
//! the repartition and changelog topics from the source topics and creates them (an
//! existing topic with the right partition count is fine; a wrong count is an error that
//! an application reset cures). Under `group.protocol=streams` the broker creates them
//! (KIP-1071): only [`plan`] runs, for the partition counts the heartbeat declares.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strom_client::{Admin, NewTopic};

use super::config::StreamsConfig;
use crate::error::{Result, StreamsError};
use crate::topology::{TopicName, Topology};

/// How long the new topics may take to get leaders.
const TOPIC_READY_MS: u64 = 30_000;

/// Creates the internal topics; returns the task count of each sub-topology.
pub(crate) async fn prepare(
    admin: &Admin,
    topology: &Topology,
    config: &StreamsConfig,
) -> Result<Vec<i32>> {
    let (planned, tasks) = plan(admin, topology).await?;
    create(admin, topology, config, &planned).await?;
    Ok(tasks)
}

/// The configs an internal topic is created with: a changelog's from its store, a
/// repartition topic's as Kafka's (kept until purged after the commit).
pub(crate) fn internal_configs(topology: &Topology, name: &str) -> Vec<(String, String)> {
    match name
        .strip_suffix("-changelog")
        .and_then(|s| topology.stores.get(s))
    {
        Some(store) => store.changelog_configs(),
        None => vec![
            ("cleanup.policy".into(), "delete".into()),
            ("retention.ms".into(), "-1".into()),
        ],
    }
}

/// The partitions of every topic of the topology (internal ones worked out from the
/// source topics) and the task count of each sub-topology.
pub(crate) async fn plan(
    admin: &Admin,
    topology: &Topology,
) -> Result<(BTreeMap<TopicName, i32>, Vec<i32>)> {
    let user: Vec<String> = topology.user_source_topics().into_iter().collect();
    let mut counts = BTreeMap::new();
    if !user.is_empty() {
        let described = admin.describe_topics(&user).await.map_err(|e| {
            StreamsError::Topology(format!(
                "source topics {} must exist before the application starts: {e}",
                user.join(", ")
            ))
        })?;
        for t in described {
            counts.insert(
                t.name.clone(),
                i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
            );
        }
    }
    topology.plan_partitions(&counts)
}

/// Creates the internal topics of `planned` (an existing one with the right partition
/// count is fine) and waits until they have leaders.
async fn create(
    admin: &Admin,
    topology: &Topology,
    config: &StreamsConfig,
    planned: &BTreeMap<TopicName, i32>,
) -> Result<()> {
    let app = &config.application_id;
    let mut wanted = Vec::new();
    for (topic, n) in planned {
        let TopicName::Internal(name) = topic else {
            continue;
        };
        let mut t = NewTopic::new(topic.resolve(app), *n, config.replication_factor);
        t.configs = internal_configs(topology, name);
        wanted.push(t);
    }
    if wanted.is_empty() {
        return Ok(());
    }
    for (name, result) in admin.create_topics(&wanted, false).await? {
        match result {
            Ok(()) => tracing::info!(topic = %name, "created internal topic"),
            Err(e) if e.kafka_name() == Some("TOPIC_ALREADY_EXISTS") => {}
            Err(e) => return Err(e.into()),
        }
    }
    let names: Vec<String> = wanted.iter().map(|t| t.name.clone()).collect();
    let start = Instant::now();
    loop {
        let ready = match admin.describe_topics(&names).await {
            Ok(described) => {
                for t in &described {
                    let want = wanted
                        .iter()
                        .find(|w| w.name == t.name)
                        .map_or(0, |w| w.partitions);
                    let have = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
                    if have != want {
                        return Err(StreamsError::Topology(format!(
                            "internal topic {} has {have} partitions, the topology needs {want} \
                             (the source topics changed?); reset the application \
                             (strom streams reset --application-id {app}) or delete the topic",
                            t.name
                        )));
                    }
                }
                described
                    .iter()
                    .all(|t| t.partitions.iter().all(|p| p.leader >= 0))
            }
            Err(e) if e.is_retriable() || e.kafka_name() == Some("UNKNOWN_TOPIC_OR_PARTITION") => {
                false
            }
            Err(e) => return Err(e.into()),
        };
        if ready {
            return Ok(());
        }
        if start.elapsed() > Duration::from_millis(TOPIC_READY_MS) {
            return Err(StreamsError::Topology(format!(
                "internal topics {} have no leaders after {TOPIC_READY_MS} ms",
                names.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
