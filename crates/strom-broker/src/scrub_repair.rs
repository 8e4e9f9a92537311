//! Repair of damage the scrubber found (`scrubber.rs`'s `on_damage`), from an in-sync
//! replica: the damaged cold segment's offsets are fetched from the partition's leader and
//! the segment replaced through `Log::replace_cold_segment` (the copy is checked: CRCs, the
//! segment's exact offsets, this log's leader epochs; then swapped in as compaction swaps a
//! group of one: new files written and fsynced, renamed, directory fsynced).
//!
//! Which replica repairs from which:
//! - A follower repairs from its leader, when the leader is an active broker, in the ISR,
//!   has not reported its own replica offline, and the whole segment lies below this
//!   follower's high watermark (committed, so every ISR member holds exactly those
//!   batches). The copy is read as a consumer reads (replica id -1, below the leader's high
//!   watermark), so the leader's view of this follower's progress is untouched.
//! - A leader cannot repair from anyone while it leads: it gives up leadership first, by
//!   reporting its replica offline in its heartbeat (`ReplicaManager::offline_replicas`,
//!   KIP-858's path), but only when another in-sync replica can take over; the controller
//!   moves leadership there, this broker follows, and the next pass repairs it as a
//!   follower. Once repaired the report is withdrawn, and the replica rejoins the ISR
//!   through the new leader once caught up.
//! - Otherwise (no healthy in-sync replica has the range, or a copy fails its checks) the
//!   damage stays as it is and is reported again on every pass; nothing is cut or deleted.

use std::sync::Arc;

use bytes::Bytes;
use strom_log::{ColdSegment, ScrubDamage};
use strom_meta::{MetadataImage, TopicIdPartition};
use strom_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use strom_protocol::messages::{FetchRequest, TopicName};
use strom_protocol::StrBytes;
use strom_records::batch_frames;

use crate::partition::{Partition, Role};
use crate::peer::PeerConnection;
use crate::server::BrokerContext;

/// Fetch versions the copy is read with (topic ids from 13).
const FETCH_VERSION_MAX: i16 = 17;
/// Most fetch round trips one copy may take.
const FETCH_ROUNDS_MAX: usize = 10_000;

/// What became of one attempt.
#[derive(Debug)]
pub(crate) enum Repair {
    /// The segment was replaced by the leader's copy.
    Repaired { base_offset: i64, end_offset: i64 },
    /// This broker leads the partition: it reported its replica offline so that another
    /// in-sync replica takes over; the repair follows as a follower.
    GivingUpLeadership,
    /// Not now, and why (reported with the damage).
    NotNow(String),
}

/// Tries to repair `damage` in `partition` (see the module docs).
pub(crate) async fn repair(
    context: &BrokerContext,
    partition: &Arc<Partition>,
    damage: &ScrubDamage,
) -> Repair {
    let log = &partition.log;
    let Some(target) = log.cold_segment_at(damage.first_offset) else {
        return Repair::NotNow("the damaged segment is no longer a cold segment".into());
    };
    let image = context.metadata.image();
    let tp = partition.tp;
    let Some(state) = image.partition(tp.topic_id, tp.partition) else {
        return Repair::NotNow("the partition is not in the metadata".into());
    };
    let node_id = context.config.node_id;
    let healthy = |b: i32| {
        b != node_id
            && state.isr.contains(&b)
            && image.is_broker_active(b)
            && !image.is_replica_offline(b, tp)
    };
    match partition.role() {
        Role::Leader { .. } => {
            if !state.isr.iter().any(|b| healthy(*b)) {
                return Repair::NotNow(
                    "this broker leads the partition and no other in-sync replica could take over"
                        .into(),
                );
            }
            context.replicas.note_damaged_replica(tp);
            Repair::GivingUpLeadership
        }
        Role::Follower { leader, epoch } if leader >= 0 => {
            if !healthy(leader) {
                return Repair::NotNow(format!(
                    "the leader (broker {leader}) is not a healthy in-sync replica"
                ));
            }
            if target.end_offset > log.high_watermark() {
                return Repair::NotNow(format!(
                    "the segment ends at offset {}, above this replica's high watermark {}",
                    target.end_offset,
                    log.high_watermark()
                ));
            }
            match copy_from(context, &image, partition, leader, epoch, target).await {
                Ok(copy) => {
                    let replacing = Arc::clone(partition);
                    let replaced = tokio::task::spawn_blocking(move || {
                        replacing.log.replace_cold_segment(target, &copy)
                    })
                    .await;
                    match replaced {
                        Ok(Ok(done)) => {
                            context.replicas.clear_damaged_replica(tp);
                            Repair::Repaired {
                                base_offset: done.base_offset,
                                end_offset: done.end_offset,
                            }
                        }
                        Ok(Err(error)) => Repair::NotNow(error.to_string()),
                        Err(_) => Repair::NotNow("the broker is shutting down".into()),
                    }
                }
                Err(why) => Repair::NotNow(format!("copying from broker {leader}: {why}")),
            }
        }
        _ => Repair::NotNow("the partition has no leader".into()),
    }
}

/// The leader's batches for the offsets of `target`, read as a consumer reads them, whole
/// batches only, bounded in size by twice the local segment (plus one fetch).
async fn copy_from(
    context: &BrokerContext,
    image: &MetadataImage,
    partition: &Partition,
    leader: i32,
    epoch: i32,
    target: ColdSegment,
) -> Result<Vec<u8>, String> {
    let config = &context.config;
    let addr = crate::fetcher::inter_broker_addr(image, leader, config)?;
    let fetch_bytes = config.replica_fetch_max_bytes.max(1);
    let frame_max = usize::try_from(fetch_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1 << 20);
    let client_id = format!("strom-scrub-repair-{}", config.node_id);
    let mut conn = PeerConnection::connect(
        &addr,
        client_id,
        config.replica_socket_timeout_ms,
        frame_max,
        &config.listeners.inter_broker_client,
    )
    .await
    .map_err(|e| e.to_string())?;
    let version = conn
        .version_of::<FetchRequest>(FETCH_VERSION_MAX)
        .map_err(|e| e.to_string())?;
    let limit = target
        .size_bytes
        .saturating_mul(2)
        .saturating_add(fetch_bytes);
    let mut copy: Vec<u8> = Vec::new();
    let mut next = target.base_offset;
    for _ in 0..FETCH_ROUNDS_MAX {
        if next >= target.end_offset {
            return Ok(copy);
        }
        let request = fetch(partition, partition.tp, epoch, next, fetch_bytes);
        let response = conn
            .send(&request, version, config.replica_socket_timeout_ms)
            .await
            .map_err(|e| e.to_string())?;
        if response.error_code != 0 {
            return Err(format!("Fetch error {}", response.error_code));
        }
        let data = response
            .responses
            .into_iter()
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == partition.tp.partition)
            .ok_or_else(|| "no answer for the partition".to_string())?;
        if data.error_code != 0 {
            return Err(format!("Fetch error {} for the partition", data.error_code));
        }
        let records: Bytes = data.records.unwrap_or_default();
        let mut progressed = false;
        for frame in batch_frames(&records) {
            // A partial batch at the end of a response is fetched again next round.
            let Ok((header, range)) = frame else { break };
            if header.base_offset >= target.end_offset {
                next = target.end_offset;
                break;
            }
            copy.extend_from_slice(&records[range]);
            next = header.next_offset();
            progressed = true;
        }
        if copy.len() as u64 > limit {
            return Err(format!("the copy grew past {limit} bytes"));
        }
        if !progressed && next < target.end_offset {
            return Err(format!("no whole batch at offset {next}"));
        }
    }
    Err(format!("not done after {FETCH_ROUNDS_MAX} fetches"))
}

fn fetch(
    partition: &Partition,
    tp: TopicIdPartition,
    epoch: i32,
    offset: i64,
    max_bytes: u64,
) -> FetchRequest {
    let max = i32::try_from(max_bytes).unwrap_or(i32::MAX);
    let wanted = FetchPartition::default()
        .with_partition(tp.partition)
        .with_current_leader_epoch(epoch)
        .with_fetch_offset(offset)
        .with_last_fetched_epoch(-1)
        .with_log_start_offset(-1)
        .with_partition_max_bytes(max);
    let topic = FetchTopic::default()
        .with_topic(TopicName(StrBytes::from_string(partition.topic.clone())))
        .with_topic_id(tp.topic_id)
        .with_partitions(vec![wanted]);
    // A consumer's fetch (replica id -1, the default): below the leader's high watermark,
    // and no effect on what the leader knows of this follower.
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![topic])
}
