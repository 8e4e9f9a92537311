//! The share coordinator's runtime: the durable state of share partitions in the compacted
//! internal topic `__share_group_state`, one strom-share [`StateCoordinator`] per partition
//! of that topic this broker leads.
//!
//! A share partition's key `group:topicId:partition` maps to partition
//! `hash(key) % share.coordinator.state.topic.num.partitions` (the same hash as group ids
//! for `__consumer_offsets`; FindCoordinator key type SHARE names its leader).
//!
//! Leadership: a coordinator is loaded on the first call after this broker became the leader
//! of its partition, at that leader epoch, by replaying the partition's log; a call that finds
//! the leader epoch moved reloads it, and one that finds another leader drops it and answers
//! NOT_COORDINATOR. (Unlike `groups.rs`, nothing is loaded ahead of the first call: share
//! state is only read when a share partition is created.) A record that does not decode
//! stops the load (COORDINATOR_NOT_AVAILABLE, logged with the partition and offset): the
//! state is never rebuilt from part of the log.
//!
//! Ordering and durability: a command changes the coordinator's memory, its records are
//! appended as the partition's leader by the Produce path (fsynced under sync-on-commit,
//! `groups::append_records`), and the call returns only once the partition's high watermark
//! covers them, i.e. once they are committed on the ISR. If the append fails or the high
//! watermark does not reach them within `COMMIT_TIMEOUT_MS`, the coordinator is dropped (it
//! reloads from the log, which then holds at most what memory held) and the caller gets an
//! error: nothing is answered as written that is not.
//!
//! The coordinator serves the share coordinator RPCs of other brokers
//! (`handlers/share_group_state.rs`); share partitions reach it through
//! `share_persister.rs`, in-process when this broker leads the key's state partition and
//! over the inter-broker listener otherwise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strom_group::GroupRecord;
use strom_meta::{
    ControllerReply, ControllerRequest, CreatableTopic, CreateTopicsRequest, TopicIdPartition,
};
use strom_protocol::ErrorCode;
use strom_share::state::codec::{decode, encode};
use strom_share::state::{ShareKey, StateConfig, StateCoordinator, StateError, StateRecord};

use crate::groups::{append_records, read_records, LogEntry};
use crate::partition::Partition;
use crate::server::BrokerContext;

/// Kafka's internal topic of share-partition state.
pub const SHARE_STATE_TOPIC: &str = "__share_group_state";
/// The longest a call waits for its records to be committed; then COORDINATOR_NOT_AVAILABLE.
const COMMIT_TIMEOUT_MS: u64 = 5_000;
/// How long a call waits for a state partition this broker leads to finish opening.
const LOAD_WAIT_ROUNDS: u32 = 100;
const LOAD_WAIT_STEP_MS: u64 = 20;

/// The coordinators of the `__share_group_state` partitions this broker leads.
#[derive(Default)]
pub struct ShareStateStore {
    shards: Mutex<HashMap<i32, Arc<tokio::sync::Mutex<Option<Loaded>>>>>,
    /// Connections to the share coordinators of other brokers (`share_persister.rs`).
    pub(crate) peers: crate::share_persister::StatePeers,
}

impl std::fmt::Debug for ShareStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareStateStore").finish_non_exhaustive()
    }
}

struct Loaded {
    coordinator: StateCoordinator,
    leader_epoch: i32,
    log: Arc<Partition>,
}

/// The coordinator key string of a share partition (FindCoordinator key type SHARE).
pub fn coordinator_key(key: &ShareKey) -> String {
    format!(
        "{}:{}:{}",
        key.group_id,
        uuid_base64(&key.topic_id),
        key.partition
    )
}

/// Kafka writes topic ids in coordinator keys as URL-safe base64 without padding.
fn uuid_base64(id: &[u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for chunk in id.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

/// The `__share_group_state` partition of a coordinator key string.
pub fn partition_for(context: &BrokerContext, key: &str) -> i32 {
    let partitions = context
        .metadata
        .image()
        .topic_by_name(SHARE_STATE_TOPIC)
        .map_or(context.config.share.state_topic_num_partitions, |t| {
            i32::try_from(t.partitions.len()).unwrap_or(1)
        });
    let partitions = u32::try_from(partitions.max(1)).unwrap_or(1);
    i32::try_from(strom_group::coordinator_partition(key, partitions)).unwrap_or(0)
}

/// Creates `__share_group_state` through the controller if it does not exist (compacted,
/// `share.coordinator.state.topic.*`), then opens its logs. Returns whether it exists.
pub async fn ensure_state_topic(context: &BrokerContext) -> bool {
    if context
        .metadata
        .image()
        .topic_by_name(SHARE_STATE_TOPIC)
        .is_some()
    {
        return true;
    }
    let config = &context.config.share;
    let request = ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: SHARE_STATE_TOPIC.to_string(),
            num_partitions: config.state_topic_num_partitions,
            replication_factor: config.state_topic_replication_factor,
            assignments: Vec::new(),
            configs: vec![
                ("cleanup.policy".to_string(), Some("compact".to_string())),
                (
                    "compression.type".to_string(),
                    Some("uncompressed".to_string()),
                ),
                (
                    "min.insync.replicas".to_string(),
                    Some(config.state_topic_min_isr.to_string()),
                ),
            ],
        }],
        validate_only: false,
    });
    match context.metadata.submit(request).await {
        Ok(ControllerReply::CreateTopics(results)) => {
            for r in results.iter().filter_map(|r| r.error.as_ref()) {
                tracing::info!(error = %r.message, "creating {SHARE_STATE_TOPIC}");
            }
        }
        Ok(other) => tracing::warn!(?other, "unexpected reply creating {SHARE_STATE_TOPIC}"),
        Err(error) => tracing::warn!(%error, "cannot create {SHARE_STATE_TOPIC}"),
    }
    let exists = context
        .metadata
        .image()
        .topic_by_name(SHARE_STATE_TOPIC)
        .is_some();
    context.replicas.reconcile_latest(&context.metadata).await;
    exists
}

/// Kafka's error code for a coordinator's refusal.
pub fn error_code(error: StateError) -> ErrorCode {
    match error {
        StateError::FencedStateEpoch => ErrorCode::FENCED_STATE_EPOCH,
        StateError::FencedLeaderEpoch => ErrorCode::FENCED_LEADER_EPOCH,
        StateError::InvalidRequest => ErrorCode::INVALID_REQUEST,
        StateError::UnknownKey => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
    }
}

impl ShareStateStore {
    /// Runs `command` on the coordinator of `key`, appends the records it returns and waits
    /// until they are committed. `Err` carries Kafka's error code.
    pub async fn call<T>(
        &self,
        context: &BrokerContext,
        key: &ShareKey,
        command: impl FnOnce(&mut StateCoordinator) -> Result<(T, Vec<StateRecord>), StateError>,
    ) -> Result<T, ErrorCode> {
        if !ensure_state_topic(context).await {
            return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
        }
        let partition = partition_for(context, &coordinator_key(key));
        // Right after the topic is created (or its leader moved here) the replica may still
        // be opening: wait for it, boundedly, rather than fail the first share fetch.
        for _ in 0..LOAD_WAIT_ROUNDS {
            match leader(context, partition) {
                Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS) => {
                    tokio::time::sleep(Duration::from_millis(LOAD_WAIT_STEP_MS)).await;
                }
                _ => break,
            }
        }
        self.call_partition(context, partition, command).await
    }

    /// As [`Self::call`], on one `__share_group_state` partition.
    pub async fn call_partition<T>(
        &self,
        context: &BrokerContext,
        partition: i32,
        command: impl FnOnce(&mut StateCoordinator) -> Result<(T, Vec<StateRecord>), StateError>,
    ) -> Result<T, ErrorCode> {
        let shard = {
            let mut shards = self
                .shards
                .lock()
                .map_err(|_| ErrorCode::COORDINATOR_NOT_AVAILABLE)?;
            Arc::clone(shards.entry(partition).or_default())
        };
        let mut slot = shard.lock().await;
        let (log, leader_epoch) = match leader(context, partition) {
            Ok(found) => found,
            Err(code) => {
                *slot = None;
                return Err(code);
            }
        };
        let current = slot
            .as_ref()
            .is_some_and(|l| l.leader_epoch == leader_epoch && Arc::ptr_eq(&l.log, &log));
        if !current {
            *slot = None;
            let coordinator = load(context, &log).await?;
            *slot = Some(Loaded {
                coordinator,
                leader_epoch,
                log: Arc::clone(&log),
            });
        }
        let Some(loaded) = slot.as_mut() else {
            return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
        };
        let (answer, records) = command(&mut loaded.coordinator).map_err(error_code)?;
        if records.is_empty() {
            return Ok(answer);
        }
        let group_records: Vec<GroupRecord> = records
            .iter()
            .map(|r| {
                let (key, value) = encode(r);
                GroupRecord {
                    key: key.into(),
                    value: value.map(Into::into),
                }
            })
            .collect();
        let end = match append_records(context, &log, leader_epoch, &group_records, None).await {
            Ok(end) => end,
            Err(reason) => {
                tracing::warn!(partition, %reason, "cannot append share state; the coordinator reloads");
                *slot = None;
                return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
            }
        };
        if !wait_committed(context, &log, end).await {
            tracing::warn!(
                partition,
                end,
                "share state not committed in time; the coordinator reloads"
            );
            *slot = None;
            return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
        }
        Ok(answer)
    }

    /// The `__share_group_state` partitions this broker leads now (for group-wide calls).
    pub fn led_partitions(&self, context: &BrokerContext) -> Vec<i32> {
        let image = context.metadata.image();
        let Some(topic) = image.topic_by_name(SHARE_STATE_TOPIC) else {
            return Vec::new();
        };
        topic
            .partitions
            .iter()
            .filter(|(_, state)| state.leader == context.config.node_id)
            .map(|(p, _)| *p)
            .collect()
    }
}

/// The local leader replica of a `__share_group_state` partition and its leader epoch.
fn leader(context: &BrokerContext, partition: i32) -> Result<(Arc<Partition>, i32), ErrorCode> {
    let image = context.metadata.image();
    let topic = image
        .topic_by_name(SHARE_STATE_TOPIC)
        .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)?;
    let state = image
        .partition(topic.topic_id, partition)
        .ok_or(ErrorCode::NOT_COORDINATOR)?;
    if state.leader != context.config.node_id {
        return Err(ErrorCode::NOT_COORDINATOR);
    }
    let tp = TopicIdPartition {
        topic_id: topic.topic_id,
        partition,
    };
    match context.replicas.get(tp) {
        Some(log) if log.leader_epoch() == Some(state.leader_epoch) => {
            Ok((log, state.leader_epoch))
        }
        _ => Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS),
    }
}

/// Replays a partition's log into a coordinator.
async fn load(
    context: &BrokerContext,
    log: &Arc<Partition>,
) -> Result<StateCoordinator, ErrorCode> {
    let reading = Arc::clone(log);
    let read = tokio::task::spawn_blocking(move || read_records(&reading))
        .await
        .map_err(|_| ErrorCode::COORDINATOR_NOT_AVAILABLE)?;
    let (entries, end) = read.map_err(|reason| {
        tracing::error!(partition = log.tp.partition, %reason, "cannot load {SHARE_STATE_TOPIC}");
        ErrorCode::COORDINATOR_NOT_AVAILABLE
    })?;
    let config = StateConfig {
        snapshot_updates_max: context.config.share.snapshot_updates_max.max(1),
        ..StateConfig::default()
    };
    let mut coordinator = StateCoordinator::new(config);
    for entry in entries {
        // Only the share coordinator writes this topic, never transactionally.
        let LogEntry::Record(record) = entry else {
            continue;
        };
        match decode(&record.key, record.value.as_deref()) {
            Ok(decoded) => coordinator.replay(decoded),
            Err(error) => {
                tracing::error!(
                    partition = log.tp.partition,
                    %error,
                    "{SHARE_STATE_TOPIC} holds a record that does not decode; its share state is \
                     not served until the record is removed (delete the topic partition's bad \
                     record or the share groups concerned)"
                );
                return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
            }
        }
    }
    tracing::debug!(
        partition = log.tp.partition,
        end_offset = end,
        "share state loaded"
    );
    Ok(coordinator)
}

/// Waits (bounded) until the partition's high watermark reaches `end`.
async fn wait_committed(context: &BrokerContext, log: &Partition, end: i64) -> bool {
    let mut watermarks = context.replicas.subscribe_high_watermarks();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(COMMIT_TIMEOUT_MS);
    loop {
        watermarks.borrow_and_update();
        if log.log.high_watermark() >= end {
            return true;
        }
        tokio::select! {
            changed = watermarks.changed() => if changed.is_err() { return false; },
            _ = tokio::time::sleep_until(deadline) => return log.log.high_watermark() >= end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ids_are_url_safe_base64_without_padding() {
        // 16 zero bytes: 22 'A's, as Kafka's Uuid.toString of the zero id.
        assert_eq!(uuid_base64(&[0; 16]), "A".repeat(22));
        assert_eq!(uuid_base64(&[0xff; 16]), format!("{}w", "_".repeat(21)));
    }
}
