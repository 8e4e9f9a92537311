//! OffsetCommit (generation-checked for members, simple commits for member-less groups)
//! and OffsetFetch.

use crate::coordinator::{validate_member, Coordinator, Output, RequestId};
use crate::error::ErrorCode;
use crate::error::RecordError;
use crate::group::{Group, GroupState};
use crate::records::{
    GroupRecord, OffsetCommitKey, OffsetCommitValue, RecordKey, STRING_BYTES_MAX,
};
use crate::types::{
    FetchedOffset, OffsetCommit, OffsetFetch, OffsetFetchResponse, PartitionResult, Response,
    TxnOffsetCommit,
};

/// The offsets one transactional producer staged (TxnOffsetCommit), by group, topic and
/// partition, until its transaction's marker.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PendingTxnOffsets {
    pub(crate) producer_epoch: i16,
    pub(crate) offsets: std::collections::BTreeMap<(String, String, i32), OffsetCommitValue>,
}

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

    /// TxnOffsetCommit: validated as an OffsetCommit (KIP-447: a member's generation is
    /// checked when the producer sends it; a producer outside any group commits as a simple
    /// commit), written as records of the producer's transaction and staged until its
    /// marker ([`Coordinator::txn_marker`]); OffsetFetch does not return them before.
    pub(crate) fn txn_commit(
        &mut self,
        request_id: RequestId,
        c: TxnOffsetCommit,
        now_ms: i64,
        out: &mut Output,
    ) {
        let fenced = self
            .pending_txn_offsets
            .get(&c.producer_id)
            .is_some_and(|p| p.producer_epoch > c.producer_epoch);
        let as_commit = OffsetCommit {
            group_id: c.group_id.clone(),
            generation_id: c.generation_id,
            member_id: c.member_id.clone(),
            group_instance_id: c.group_instance_id.clone(),
            retention_time_ms: -1,
            unknown_group_not_found: true,
            offsets: Vec::new(),
        };
        let error = if fenced {
            ErrorCode::ProducerFenced
        } else if c.generation_id < 0 && c.member_id.is_empty() {
            // A producer that names no member: a simple commit, whatever the group's state.
            if c.group_id.is_empty() || c.group_id.len() > STRING_BYTES_MAX {
                ErrorCode::InvalidGroupId
            } else {
                self.groups
                    .entry(c.group_id.clone())
                    .or_insert_with(|| Group::new(&c.group_id, now_ms));
                ErrorCode::None
            }
        } else {
            match self.validate_commit(&as_commit, now_ms) {
                Ok(()) => ErrorCode::None,
                Err(e) => e,
            }
        };
        let mut results = Vec::with_capacity(c.offsets.len());
        for o in &c.offsets {
            let partition_error = match error {
                ErrorCode::None => self.stage_one(&c, o, now_ms, out),
                e => e,
            };
            results.push(PartitionResult {
                topic: o.topic.clone(),
                partition: o.partition,
                error: partition_error,
            });
        }
        if !out.records.is_empty() {
            out.transactional = Some((c.producer_id, c.producer_epoch));
        }
        out.reply(request_id, Response::TxnOffsetCommit(results));
    }

    fn stage_one(
        &mut self,
        c: &TxnOffsetCommit,
        o: &crate::types::CommitOffset,
        now_ms: i64,
        out: &mut Output,
    ) -> ErrorCode {
        if o.metadata.len() > self.config.offset_metadata_max_bytes {
            return ErrorCode::OffsetMetadataTooLarge;
        }
        if o.topic.is_empty() || o.topic.len() > STRING_BYTES_MAX {
            return ErrorCode::InvalidRequest;
        }
        let key = OffsetCommitKey {
            group: c.group_id.clone(),
            topic: o.topic.clone(),
            partition: o.partition,
        };
        let value = OffsetCommitValue {
            offset: o.offset,
            leader_epoch: o.leader_epoch,
            metadata: o.metadata.clone(),
            commit_timestamp_ms: now_ms,
            expire_timestamp_ms: None,
        };
        match GroupRecord::offset_commit(&key, Some(&value)) {
            Ok(record) => {
                out.records.push(record);
                let pending = self.pending_txn_offsets.entry(c.producer_id).or_default();
                pending.producer_epoch = c.producer_epoch;
                pending
                    .offsets
                    .insert((key.group, key.topic, key.partition), value);
                ErrorCode::None
            }
            Err(e) => {
                tracing::warn!(error = %e, "transactional offset commit not encodable");
                ErrorCode::InvalidRequest
            }
        }
    }

    /// A COMMIT marker of `producer_id` makes its staged offsets committed (each group's
    /// latest); an ABORT drops them. Also how loading replays a marker.
    pub fn txn_marker(&mut self, producer_id: i64, commit: bool, now_ms: i64) {
        let Some(pending) = self.pending_txn_offsets.remove(&producer_id) else {
            return;
        };
        if !commit {
            return;
        }
        for ((group_id, topic, partition), value) in pending.offsets {
            self.groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(&group_id, now_ms))
                .offsets
                .insert((topic, partition), value);
        }
    }

    /// Loading: the records of a transactional batch of `producer_id` are staged as its
    /// TxnOffsetCommit staged them (only offset commits are written transactionally).
    pub fn load_txn_records<'a>(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        records: impl IntoIterator<Item = &'a GroupRecord>,
    ) -> Result<(), RecordError> {
        for record in records {
            let Some(RecordKey::OffsetCommit(k)) = RecordKey::decode(&record.key)? else {
                continue;
            };
            let pending = self.pending_txn_offsets.entry(producer_id).or_default();
            pending.producer_epoch = producer_epoch;
            match &record.value {
                Some(v) => {
                    let value = OffsetCommitValue::decode(v)?;
                    pending
                        .offsets
                        .insert((k.group, k.topic, k.partition), value);
                }
                None => {
                    pending.offsets.remove(&(k.group, k.topic, k.partition));
                }
            }
        }
        Ok(())
    }

    /// Whether a transaction staged an offset for this group's partition (KIP-447).
    fn unstable(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let key = (group_id.to_owned(), topic.to_owned(), partition);
        self.pending_txn_offsets
            .values()
            .any(|p| p.offsets.contains_key(&key))
    }

    /// Kafka's `ClassicGroup.validateOffsetCommit` (or `ConsumerGroup`'s for a KIP-848
    /// group); creates the group for a simple commit.
    fn validate_commit(&mut self, c: &OffsetCommit, now_ms: i64) -> Result<(), ErrorCode> {
        if c.group_id.is_empty() || c.group_id.len() > STRING_BYTES_MAX {
            return Err(ErrorCode::InvalidGroupId);
        }
        if self.streams.group(&c.group_id).is_some() {
            self.streams
                .validate_offset_commit(&c.group_id, &c.member_id, c.generation_id)
                .map_err(|e| e.code)?;
            // The streams group's offsets live in a member-less entry of the same id.
            self.groups
                .entry(c.group_id.clone())
                .or_insert_with(|| Group::new(&c.group_id, now_ms));
            return Ok(());
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
        if o.topic.is_empty() || o.topic.len() > STRING_BYTES_MAX {
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
        let checked = if self.streams.group(&c.group_id).is_some() {
            self.streams
                .validate_offset_fetch(&c.group_id, c.member_id.as_deref(), c.member_epoch)
        } else {
            self.consumer
                .validate_offset_fetch(&c.group_id, c.member_id.as_deref(), c.member_epoch)
        };
        if let Err(e) = checked {
            return OffsetFetchResponse {
                error: e.code,
                partitions: Vec::new(),
            };
        }
        let group = self.groups.get(&c.group_id);
        let partitions: Vec<FetchedOffset> = match &c.partitions {
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
        let partitions = if c.require_stable && !self.pending_txn_offsets.is_empty() {
            partitions
                .into_iter()
                .map(|mut p| {
                    if self.unstable(&c.group_id, &p.topic, p.partition) {
                        p.offset = -1;
                        p.error = ErrorCode::UnstableOffsetCommit;
                    }
                    p
                })
                .collect()
        } else {
            partitions
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
