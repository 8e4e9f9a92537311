//! Offset expiry (KIP-211) as Kafka 4.x's `OffsetMetadataManager.cleanupExpiredOffsets`:
//! tombstones for expired offsets, and for the metadata of Empty groups left without any.

use crate::admin::{offset_tombstone, write_group_tombstones};
use crate::coordinator::{Coordinator, Output};
use crate::group::{Group, GroupState};
use crate::records::OffsetCommitValue;
use crate::subscription::{group_subscriptions, CONSUMER_PROTOCOL_TYPE};

/// Which timestamp an offset's retention counts from (Kafka's `OffsetExpirationCondition`).
#[derive(Debug, Clone, Copy)]
enum Base {
    /// Since the group became Empty (or, with no state timestamp, since the commit).
    EmptySince(i64),
    /// Since the commit.
    Commit,
}

impl Coordinator {
    /// Expires offsets now (the tick calls this every `offsets_retention_check_interval_ms`).
    pub fn expire_offsets_now(&mut self, now_ms: i64) -> Output {
        let mut out = Output::default();
        self.expire_offsets(now_ms, &mut out);
        out
    }

    pub(crate) fn expire_offsets(&mut self, now_ms: i64, out: &mut Output) {
        let retention_ms = self.config.offsets_retention_ms;
        // Empty consumer groups that never committed an offset go at the same check.
        let bare: Vec<String> = self
            .consumer
            .group_ids()
            .filter(|id| !self.groups.contains_key(*id))
            .map(str::to_owned)
            .collect();
        for id in bare {
            if let Some(records) = self.consumer.delete_empty(&id) {
                tracing::info!(group = %id, "empty consumer group expired");
                out.records.extend(records);
            }
        }
        let bare_streams: Vec<String> = self
            .streams
            .groups()
            .map(|g| g.group_id.clone())
            .filter(|id| !self.groups.contains_key(id))
            .collect();
        for id in bare_streams {
            if let Some(records) = self.streams.delete_empty(&id) {
                tracing::info!(group = %id, "empty streams group expired");
                out.records.extend(records);
            }
        }
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in ids {
            let Some(group) = self.groups.get_mut(&id) else {
                continue;
            };
            let consumer_topics = self
                .consumer
                .subscribed_topics(&id)
                .or_else(|| self.streams.subscribed_topics(&id));
            if let Some(topics) = consumer_topics {
                // Kafka's `ConsumerGroup.offsetExpirationCondition`: from the commit, for
                // topics no member subscribes to; an empty group without offsets goes.
                let all_expired =
                    expire_offsets_of(group, &topics, Base::Commit, now_ms, retention_ms, out);
                if all_expired {
                    self.groups.remove(&id);
                    if let Some(records) = self.consumer.delete_empty(&id) {
                        tracing::info!(group = %id, "empty consumer group expired");
                        out.records.extend(records);
                    }
                    if let Some(records) = self.streams.delete_empty(&id) {
                        tracing::info!(group = %id, "empty streams group expired");
                        out.records.extend(records);
                    }
                }
                continue;
            }
            let all_expired = expire_group_offsets(group, now_ms, retention_ms, out);
            // Kafka's `maybeDeleteGroup`: an Empty group without offsets is forgotten. A
            // group that handed out member ids still expects those members back.
            if all_expired && group.state == GroupState::Empty && group.pending_members.is_empty() {
                if let Some(group) = self.groups.remove(&id) {
                    tracing::info!(group = %id, "empty group expired");
                    write_group_tombstones(&group, out);
                }
            }
        }
    }
}

/// Removes the group's expired offsets, writing tombstones; true when none is left.
fn expire_group_offsets(
    group: &mut Group,
    now_ms: i64,
    retention_ms: i64,
    out: &mut Output,
) -> bool {
    let Some(base) = expiration_base(group) else {
        return group.offsets.is_empty();
    };
    let subscribed = group_subscriptions(group).unwrap_or_default();
    expire_offsets_of(group, &subscribed, base, now_ms, retention_ms, out)
}

/// Expires the group's offsets of topics outside `subscribed`; true when none is left.
fn expire_offsets_of(
    group: &mut Group,
    subscribed: &std::collections::BTreeSet<String>,
    base: Base,
    now_ms: i64,
    retention_ms: i64,
    out: &mut Output,
) -> bool {
    let expired: Vec<(String, i32)> = group
        .offsets
        .iter()
        .filter(|((topic, _), _)| !subscribed.contains(topic))
        .filter(|(_, value)| is_expired(value, base, now_ms, retention_ms))
        .map(|(tp, _)| tp.clone())
        .collect();
    for (topic, partition) in expired {
        group.offsets.remove(&(topic.clone(), partition));
        out.record(offset_tombstone(&group.group_id, &topic, partition));
    }
    group.offsets.is_empty()
}

/// Kafka's `ClassicGroup.offsetExpirationCondition`; `None` means no offset expires.
fn expiration_base(group: &Group) -> Option<Base> {
    match group.protocol_type.as_deref() {
        // A simple (member-less) consumer: retention counts from each commit.
        None => Some(Base::Commit),
        Some(_) if group.state == GroupState::Empty => {
            Some(Base::EmptySince(group.state_timestamp_ms))
        }
        Some(CONSUMER_PROTOCOL_TYPE)
            if group.state == GroupState::Stable && group_subscriptions(group).is_some() =>
        {
            Some(Base::Commit)
        }
        Some(_) => None,
    }
}

/// Kafka's `OffsetExpirationConditionImpl.isOffsetExpired`: an explicit expire timestamp
/// (OffsetCommit v2-v4 retention) wins; otherwise retention after the base timestamp.
fn is_expired(value: &OffsetCommitValue, base: Base, now_ms: i64, retention_ms: i64) -> bool {
    if let Some(expire_ms) = value.expire_timestamp_ms {
        return now_ms >= expire_ms;
    }
    let base_ms = match base {
        // A group loaded from old metadata has no state timestamp (-1).
        Base::EmptySince(since_ms) if since_ms >= 0 => since_ms,
        Base::EmptySince(_) | Base::Commit => value.commit_timestamp_ms,
    };
    now_ms.saturating_sub(base_ms) >= retention_ms
}
