//! One Fetch request to one leader and its per-partition outcome.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::FetchRequest;
use strom_records::DecodeLimits;

use super::records::{parse, Parsed};
use crate::cluster::{topic_name, Cluster, Target};
use crate::config::ConsumerConfig;
use crate::error::{ClientError, Result};
use crate::types::TopicPartition;

/// What to fetch from one leader.
pub(crate) struct FetchPlan {
    pub leader: i32,
    pub partitions: Vec<(TopicPartition, i64)>,
    pub config: ConsumerConfig,
}

/// Each planned partition with its fetch offset and result.
pub(crate) struct FetchOutcome {
    pub leader: i32,
    pub partitions: Vec<(TopicPartition, i64, Result<Parsed>)>,
}

/// Sends the Fetch and parses every partition; a failed request fails every partition
/// (after one backoff, so a dead leader is not hammered).
pub(crate) async fn run(cluster: Arc<Cluster>, plan: FetchPlan) -> FetchOutcome {
    let result = send(&cluster, &plan).await;
    let partitions = match result {
        Ok(mut by_tp) => plan
            .partitions
            .into_iter()
            .map(|(tp, offset)| {
                let r = by_tp.remove(&tp).unwrap_or_else(|| {
                    Err(ClientError::Protocol(format!("no Fetch data for {tp}")))
                });
                (tp, offset, r)
            })
            .collect(),
        Err(e) => {
            if e.needs_metadata_refresh() {
                cluster.invalidate_metadata();
            }
            tokio::time::sleep(Duration::from_millis(cluster.backoff().base_ms)).await;
            plan.partitions
                .into_iter()
                .map(|(tp, offset)| (tp, offset, Err(e.clone())))
                .collect()
        }
    };
    FetchOutcome {
        leader: plan.leader,
        partitions,
    }
}

async fn send(
    cluster: &Cluster,
    plan: &FetchPlan,
) -> Result<BTreeMap<TopicPartition, Result<Parsed>>> {
    let c = &plan.config;
    let read_committed = c.isolation_read_committed;
    let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for (tp, offset) in &plan.partitions {
        topics.entry(&tp.topic).or_default().push(
            FetchPartition::default()
                .with_partition(tp.partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(*offset)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(c.max_partition_fetch_bytes),
        );
    }
    let topics: Vec<FetchTopic> = topics
        .into_iter()
        .map(|(t, ps)| {
            FetchTopic::default()
                .with_topic(topic_name(t))
                .with_partitions(ps)
        })
        .collect();
    // The broker may hold the request for max_wait_ms before answering.
    let timeout_ms = c
        .client
        .request_timeout_ms
        .saturating_add(u64::try_from(c.fetch_max_wait_ms).unwrap_or(0));
    let response = cluster
        .call_timeout(&Target::Broker(plan.leader), timeout_ms, |_| {
            Ok(FetchRequest::default()
                .with_max_wait_ms(c.fetch_max_wait_ms)
                .with_min_bytes(c.fetch_min_bytes)
                .with_max_bytes(c.fetch_max_bytes)
                .with_isolation_level(i8::from(read_committed))
                .with_topics(topics))
        })
        .await?;
    ClientError::check(response.error_code, None, "Fetch")?;
    let offsets: BTreeMap<&TopicPartition, i64> =
        plan.partitions.iter().map(|(tp, o)| (tp, *o)).collect();
    let limits = DecodeLimits::default();
    let mut out = BTreeMap::new();
    for t in response.responses {
        for p in t.partitions {
            let tp = TopicPartition::new(t.topic.0.to_string(), p.partition_index);
            let Some(&fetch_offset) = offsets.get(&tp) else {
                continue;
            };
            let result = match ClientError::from_code(p.error_code, None, format!("fetch {tp}")) {
                Some(e) => Err(e),
                None => {
                    let aborted: Option<Vec<(i64, i64)>> = read_committed.then(|| {
                        p.aborted_transactions
                            .iter()
                            .flatten()
                            .map(|a| (a.producer_id.0, a.first_offset))
                            .collect()
                    });
                    let data = p.records.unwrap_or_default();
                    parse(&tp, &data, fetch_offset, aborted.as_deref(), &limits)
                }
            };
            out.insert(tp, result);
        }
    }
    Ok(out)
}
