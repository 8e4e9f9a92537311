//! The leader's background duties of replication: sending ISR changes to the controller
//! (AlterPartition, KIP-497), the ISR expiration check, and the high-watermark checkpoint.
//!
//! AlterPartition: partitions with a proposal queue up (`Signals::alter`); the task sends
//! every queued proposal in one request, one request at a time (each partition has at most
//! one proposal in flight: strom-replica's pending state). A committed answer becomes the
//! partition's ISR at once (the image brings the same); a lost one (timeout, quorum
//! unavailable) is resent after a pause, because it may have been committed; a refusal for
//! stale epochs waits for the image. The metadata image stays the truth: reconcile applies
//! every newer partition epoch.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use strom_meta::{
    AlterPartitionItem, AlterPartitionRequest, AlterPartitionResult, ControllerReply,
    ControllerRequest, ErrorCode, TopicIdPartition,
};
use strom_replica::{AlterRefusal, AlterReply};
use tokio::sync::mpsc;

use crate::metadata::{now_ms, MetadataError};
use crate::server::BrokerContext;

/// How long an AlterPartition may take before its answer counts as lost.
const ALTER_TIMEOUT_MS: u64 = 10_000;
/// The pause before a lost or not-yet-accepted proposal is sent again.
const ALTER_RETRY_MS: u64 = 500;
/// Proposals sent in one AlterPartition request, at most.
const ALTER_BATCH_MAX: usize = 1_000;

/// Sends ISR proposals to the controller as they queue up.
pub(crate) async fn alter_partitions(
    context: Arc<BrokerContext>,
    mut queue: mpsc::Receiver<TopicIdPartition>,
) {
    let mut retry: BTreeSet<TopicIdPartition> = BTreeSet::new();
    loop {
        let mut wanted = std::mem::take(&mut retry);
        if wanted.is_empty() {
            match queue.recv().await {
                Some(tp) => {
                    wanted.insert(tp);
                }
                None => return,
            }
        }
        while wanted.len() < ALTER_BATCH_MAX {
            match queue.try_recv() {
                Ok(tp) => {
                    wanted.insert(tp);
                }
                Err(_) => break,
            }
        }
        let mut sent = Vec::new();
        for tp in wanted {
            let Some(partition) = context.replicas.get(tp) else {
                continue;
            };
            if let Some(proposal) = partition.take_proposal() {
                sent.push((partition, proposal));
            }
        }
        if sent.is_empty() {
            continue;
        }
        let items = sent
            .iter()
            .map(|(partition, proposal)| AlterPartitionItem {
                topic_id: partition.tp.topic_id,
                partition: partition.tp.partition,
                leader_epoch: proposal.leader_epoch,
                new_isr: proposal.new_isr.clone(),
                partition_epoch: proposal.partition_epoch,
            })
            .collect();
        let request = ControllerRequest::AlterPartition(AlterPartitionRequest {
            broker_id: context.config.node_id,
            broker_epoch: context.replicas.broker_epoch(),
            partitions: items,
        });
        let limit = Duration::from_millis(ALTER_TIMEOUT_MS);
        let answer = tokio::time::timeout(limit, context.metadata.submit(request)).await;
        let now = now_ms();
        let results = match answer {
            Ok(Ok(ControllerReply::AlterPartition(results))) => Some(results),
            Ok(Err(MetadataError::Refused(error))) => {
                tracing::info!(%error, "AlterPartition refused");
                let refusal = refusal_of(error.code);
                for (partition, proposal) in &sent {
                    partition.on_alter_reply(proposal, AlterReply::Refused(refusal), now);
                }
                None
            }
            Ok(Ok(_)) | Ok(Err(MetadataError::Unavailable(_))) | Err(_) => {
                tracing::info!("AlterPartition got no answer; resending");
                for (partition, proposal) in &sent {
                    partition.on_alter_reply(proposal, AlterReply::Lost, now);
                }
                None
            }
        };
        for (partition, proposal) in &sent {
            let reply = results
                .as_ref()
                .and_then(|results| {
                    results.iter().find(|r| {
                        r.topic_id == partition.tp.topic_id && r.partition == partition.tp.partition
                    })
                })
                .map(alter_reply);
            match reply {
                Some(reply) => {
                    tracing::info!(topic = %partition.topic, partition = partition.tp.partition,
                        new_isr = ?proposal.new_isr, ?reply, "AlterPartition answered");
                    partition.on_alter_reply(proposal, reply, now);
                }
                None if results.is_some() => {
                    partition.on_alter_reply(proposal, AlterReply::Lost, now);
                }
                None => {}
            }
            if partition.has_unsent_proposal() {
                retry.insert(partition.tp);
            }
        }
        if !retry.is_empty() {
            tokio::time::sleep(Duration::from_millis(ALTER_RETRY_MS)).await;
        }
    }
}

/// The controller's answer for one partition.
fn alter_reply(result: &AlterPartitionResult) -> AlterReply {
    match &result.error {
        None => AlterReply::Committed {
            leader_epoch: result.leader_epoch,
            partition_epoch: result.partition_epoch,
            isr: result.isr.clone(),
        },
        Some(error) => AlterReply::Refused(refusal_of(error.code)),
    }
}

fn refusal_of(code: ErrorCode) -> AlterRefusal {
    match code {
        ErrorCode::NotController => AlterRefusal::NotController,
        ErrorCode::FencedLeaderEpoch => AlterRefusal::FencedLeaderEpoch,
        ErrorCode::InvalidUpdateVersion => AlterRefusal::InvalidUpdateVersion,
        _ => AlterRefusal::Other,
    }
}

/// Kafka's ISR expiration: every `replica.lag.time.max.ms / 2`, leaders propose dropping
/// followers that have not been caught up for `replica.lag.time.max.ms`.
pub(crate) async fn expire_isr(context: Arc<BrokerContext>) {
    let period = u64::try_from(context.config.replica_lag_time_max_ms / 2)
        .unwrap_or(1)
        .max(1);
    let mut interval = tokio::time::interval(Duration::from_millis(period));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = now_ms();
        for partition in context.replicas.all() {
            partition.tick(now);
        }
    }
}

/// Writes the high-watermark checkpoint every
/// `replica.high.watermark.checkpoint.interval.ms` (and shutdown writes it once more).
pub(crate) async fn checkpoint_high_watermarks(context: Arc<BrokerContext>) {
    let period =
        Duration::from_millis(context.config.replica_high_watermark_checkpoint_interval_ms);
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let replicas = Arc::clone(&context.replicas);
        let _ = tokio::task::spawn_blocking(move || replicas.checkpoint_high_watermarks()).await;
    }
}
