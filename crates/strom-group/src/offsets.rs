//! OffsetCommit (generation-checked for members, simple commits for member-less groups)
//! and OffsetFetch.

use crate::coordinator::{validate_member, Coordinator, Output, RequestId};
use crate::error::ErrorCode;
use crate::group::{Group, GroupState};
use crate::records::{GroupRecord, OffsetCommitKey, OffsetCommitValue};
use crate::types::{
    FetchedOffset, OffsetCommit, OffsetFetch, OffsetFetchResponse, PartitionResult, Response,
};

/// Topic names are int16-length strings in the offset commit key.
const TOPIC_BYTES_MAX: usize = i16::MAX as usize;

impl Coordinator {
    pub(crate) fn commit(
        &mut self,
        request_id: RequestId,
        c: OffsetCommit,
        now_ms: i64,
        out: &mut Output,
    ) {
        let error = match self.validate_commit(&c, now_ms) {
            Ok(()) => ErrorCode::None,
            Err(e) => e,
        };
        // Kafka 4.x: an explicit retention sets a per-offset expire time (value version 1).
        let expire_timestamp_ms =
            (c.retention_time_ms >= 0).then(|| now_ms.saturating_add(c.retention_time_ms));
        let mut results = Vec::with_capacity(c.offsets.len());
        for o in &c.offsets {
            let partition_error = match error {
                ErrorCode::None => {
                    self.commit_one(&c.group_id, o, expire_timestamp_ms, now_ms, out)
                }
                e => e,
            };
            results.push(PartitionResult {
                topic: o.topic.clone(),
                partition: o.partition,
                error: partition_error,
            });
        }
        out.reply(request_id, Response::OffsetCommit(results));
    }

    /// Kafka's `ClassicGroup.validateOffsetCommit` (or `ConsumerGroup`'s for a KIP-848
    /// group); creates the group for a simple commit.
    fn validate_commit(&mut self, c: &OffsetCommit, now_ms: i64) -> Result<(), ErrorCode> {
        if c.group_id.is_empty() || c.group_id.len() > TOPIC_BYTES_MAX {
            return Err(ErrorCode::InvalidGroupId);
        }
        if self.consumer.group(&c.group_id).is_some() {
            // `unknown_group_not_found` is set exactly for OffsetCommit v9+.
            let api_version = if c.unknown_group_not_found { 9 } else { 8 };
            self.consumer
                .validate_offset_commit(&c.group_id, &c.member_id, c.generation_id, api_version)
                .map_err(|e| e.code)?;
            // The consumer group's offsets live in a member-less entry of the same id.
            self.groups
                .entry(c.group_id.clone())
                .or_insert_with(|| Group::new(&c.group_id, now_ms));
            return Ok(());
        }
        let Some(group) = self.groups.get_mut(&c.group_id) else {
            if c.generation_id < 0 {
                let group = Group::new(&c.group_id, now_ms);
                self.groups.insert(c.group_id.clone(), group);
                return Ok(());
            }
            if c.unknown_group_not_found {
                return Err(ErrorCode::GroupIdNotFound);
            }
            return Err(ErrorCode::IllegalGeneration);
        };
        if group.state == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        if c.generation_id < 0 && group.state == GroupState::Empty {
            return Ok(());
        }
        if c.generation_id >= 0 || !c.member_id.is_empty() || c.group_instance_id.is_some() {
            validate_member(group, &c.member_id, c.group_instance_id.as_deref())?;
            if c.generation_id != group.generation_id {
                return Err(ErrorCode::IllegalGeneration);
            }
        } else if group.state != GroupState::Empty {
            return Err(ErrorCode::UnknownMemberId);
        }
        if group.state == GroupState::CompletingRebalance {
            return Err(ErrorCode::RebalanceInProgress);
        }
        if let Some(m) = group.members.get_mut(&c.member_id) {
            m.last_heartbeat_ms = now_ms;
        }
        Ok(())
    }

    fn commit_one(
        &mut self,
        group_id: &str,
        o: &crate::types::CommitOffset,
        expire_timestamp_ms: Option<i64>,
        now_ms: i64,
        out: &mut Output,
    ) -> ErrorCode {
        if o.metadata.len() > self.config.offset_metadata_max_bytes {
            return ErrorCode::OffsetMetadataTooLarge;
        }
        if o.topic.is_empty() || o.topic.len() > TOPIC_BYTES_MAX {
            return ErrorCode::InvalidRequest;
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return ErrorCode::CoordinatorNotAvailable;
        };
        let key = OffsetCommitKey {
            group: group_id.to_owned(),
            topic: o.topic.clone(),
            partition: o.partition,
        };
        let value = OffsetCommitValue {
            offset: o.offset,
            leader_epoch: o.leader_epoch,
            metadata: o.metadata.clone(),
            commit_timestamp_ms: now_ms,
            expire_timestamp_ms,
        };
        match GroupRecord::offset_commit(&key, Some(&value)) {
            Ok(record) => {
                out.records.push(record);
                group.offsets.insert((key.topic, key.partition), value);
                ErrorCode::None
            }
            Err(e) => {
                tracing::warn!(error = %e, "offset commit not encodable");
                ErrorCode::InvalidRequest
            }
        }
    }

    pub(crate) fn fetch(&self, c: &OffsetFetch) -> OffsetFetchResponse {
        let checked = self.consumer.validate_offset_fetch(
            &c.group_id,
            c.member_id.as_deref(),
            c.member_epoch,
        );
        if let Err(e) = checked {
            return OffsetFetchResponse {
                error: e.code,
                partitions: Vec::new(),
            };
        }
        let group = self.groups.get(&c.group_id);
        let partitions = match &c.partitions {
            Some(wanted) => wanted
                .iter()
                .map(|(topic, partition)| {
                    let committed = group.and_then(|g| g.offsets.get(&(topic.clone(), *partition)));
                    fetched(topic, *partition, committed)
                })
                .collect(),
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|((topic, partition), v)| fetched(topic, *partition, Some(v)))
                        .collect()
                })
                .unwrap_or_default(),
        };
        OffsetFetchResponse {
            error: ErrorCode::None,
            partitions,
        }
    }
}

fn fetched(topic: &str, partition: i32, committed: Option<&OffsetCommitValue>) -> FetchedOffset {
    FetchedOffset {
        topic: topic.to_owned(),
        partition,
        offset: committed.map_or(-1, |v| v.offset),
        leader_epoch: committed.map_or(-1, |v| v.leader_epoch),
        metadata: committed.map(|v| v.metadata.clone()).unwrap_or_default(),
        error: ErrorCode::None,
    }
}
