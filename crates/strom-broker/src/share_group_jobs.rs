//! The share group coordinator's calls on durable share state (Kafka's
//! `GroupCoordinatorService.persisterInitialize` and the persister deletes of DeleteGroups
//! and DeleteShareGroupOffsets), made through `share_persister.rs` wherever the state
//! partition is led.
//!
//! Initialization: a ShareGroupHeartbeat that records share partitions as initializing
//! hands their [`InitializeJob`] to [`initialize`], which runs beside the coordinator task.
//! Each partition's state is read first (ReadShareGroupStateSummary): state that exists
//! already (written by a Strom before the group coordinator recorded it, or by an
//! initialization whose outcome was lost in a failover, or by AlterShareGroupOffsets) is
//! kept and counted as initialized, so an initialization never overwrites state. Otherwise
//! InitializeShareGroupState at the group epoch with start offset -1 (the share partition
//! resolves `share.auto.offset.reset` at its first fetch, as Kafka). The outcome is then
//! recorded by the group's coordinator (`ShareCommand::Initialized` / `Uninitialized`);
//! failures are logged and asked for again by the group's next heartbeat.

use std::collections::BTreeSet;
use std::sync::Arc;

use strom_group::consumer::{Assignment, TopicId};
use strom_protocol::ErrorCode;
use strom_share::group::{InitializeJob, ShareCommand, ShareResponse};
use strom_share::state::ShareKey;

use crate::server::BrokerContext;

fn key(group_id: &str, topic: TopicId, partition: i32) -> ShareKey {
    ShareKey {
        group_id: group_id.to_owned(),
        topic_id: topic.0,
        partition,
    }
}

/// Initializes the state of `job`'s share partitions and records the outcome at the
/// group's coordinator (`__consumer_offsets` partition `offsets_partition`).
pub async fn initialize(context: Arc<BrokerContext>, offsets_partition: i32, job: InitializeJob) {
    let mut done = Assignment::new();
    let mut failed = Assignment::new();
    for (topic, partitions) in &job.partitions {
        for partition in partitions {
            let key = key(&job.group_id, *topic, *partition);
            match initialize_one(&context, &key, job.state_epoch).await {
                Ok(()) => done.entry(*topic).or_default().insert(*partition),
                Err(code) => {
                    tracing::warn!(
                        group = %job.group_id, topic = %uuid::Uuid::from_bytes(topic.0),
                        partition, %code,
                        "share state not initialized; the group's next heartbeat asks again"
                    );
                    failed.entry(*topic).or_default().insert(*partition)
                }
            };
        }
    }
    let topics = crate::handlers::share_topics(&context);
    let group_id = job.group_id;
    if !done.is_empty() {
        let command = ShareCommand::Initialized {
            group_id: group_id.clone(),
            partitions: done,
            topics,
            job: true,
        };
        record(&context, offsets_partition, &group_id, command).await;
    }
    if !failed.is_empty() {
        let command = ShareCommand::Uninitialized {
            group_id: group_id.clone(),
            partitions: failed,
        };
        record(&context, offsets_partition, &group_id, command).await;
    }
}

/// One share partition: kept when it has state, else initialized at `state_epoch`.
async fn initialize_one(
    context: &BrokerContext,
    key: &ShareKey,
    state_epoch: i32,
) -> Result<(), ErrorCode> {
    if crate::share_persister::summary(context, key)
        .await?
        .is_some()
    {
        return Ok(());
    }
    match crate::share_persister::initialize(context, key, state_epoch, -1).await {
        // Someone else initialized it between the two calls: it has state now.
        Err(code) if code == ErrorCode::FENCED_STATE_EPOCH => Ok(()),
        other => other,
    }
}

/// Sends a recording command to the group's coordinator; a coordinator that moved or
/// failed leaves the partitions initializing, asked for again after the retry interval.
async fn record(
    context: &BrokerContext,
    offsets_partition: i32,
    group_id: &str,
    command: ShareCommand,
) {
    match context.groups.call_share(offsets_partition, command).await {
        Some(ShareResponse::Done(Ok(()))) => {}
        other => tracing::info!(
            group = group_id,
            ?other,
            "share state initialization outcome not recorded; asked for again later"
        ),
    }
}

/// Deletes the state of `group_id`'s share partitions `partitions` wherever it lives, after
/// dropping the ones hosted here; the first error, if any (the rest are still tried).
pub async fn delete(
    context: &BrokerContext,
    group_id: &str,
    partitions: &Assignment,
) -> Result<(), ErrorCode> {
    let mut result = Ok(());
    for (topic, ps) in partitions {
        let deleted = context
            .shares
            .delete_partitions(context, group_id, uuid::Uuid::from_bytes(topic.0), ps)
            .await;
        if result.is_ok() {
            result = deleted;
        }
    }
    result
}

/// Every partition of `topic` as the metadata has it now.
pub fn all_partitions(context: &BrokerContext, topic: uuid::Uuid) -> BTreeSet<i32> {
    context
        .metadata
        .image()
        .topic_by_id(topic)
        .map(|t| t.partitions.keys().copied().collect())
        .unwrap_or_default()
}
