//! The share coordinator (KIP-932's share-group state persister, server side): the durable
//! state of every share partition, kept as records in the compacted internal topic
//! `__share_group_state`, as a pure state machine of the shape
//! `handle(command, now) -> (records to append, response)`.
//!
//! Each share partition (group, topic id, partition) has a key. Its state is a *snapshot*
//! (state epoch, leader epoch, start offset, state batches) and at most one live *update*
//! after it (leader epoch, start offset, the batches changed since the snapshot). An update
//! is cumulative: it holds every change since its snapshot, so the topic's compaction, which
//! keeps only the latest record of each key, loses nothing; an update of an older snapshot
//! epoch is stale and ignored. Every `snapshot_updates_max` writes produce a new snapshot
//! instead of an update, which bounds how large the cumulative update grows relative to the
//! state. (Kafka's updates carry only the batches of one write; Strom's records are shaped
//! like Kafka's but each is self-sufficient under compaction.)
//!
//! Ordering: the caller appends the returned records to the coordinator's partition and
//! releases the response only once they are durable (committed and fsynced as the broker's
//! coordinator appends are); the in-memory state is updated before, so a later command sees
//! it. If the append fails the caller drops this coordinator and reloads it from the log,
//! which can only hold less than memory did, never more than was answered.
//!
//! Fencing, as Kafka's `ShareCoordinatorShard`: a write or read with a state epoch below
//! the stored one is FENCED_STATE_EPOCH; with a leader epoch below the stored one,
//! FENCED_LEADER_EPOCH. Initialize bumps the state epoch (AlterShareGroupOffsets and a new
//! group use it), which fences writers of the old state.

use std::collections::{BTreeMap, HashMap};

use crate::partition::{RecordState, StateBatch};

/// A share partition's key in `__share_group_state` (and FindCoordinator key type SHARE:
/// `group:topicId:partition`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareKey {
    pub group_id: String,
    pub topic_id: [u8; 16],
    pub partition: i32,
}

/// The durable state of one share partition, as its records say: the latest snapshot and
/// the latest update written after it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    snapshot: SnapshotValue,
    /// Cumulative: every change since `snapshot` (see the module documentation).
    update: Option<UpdateValue>,
    updates_since_snapshot: u32,
}

impl Entry {
    fn state(&self) -> PartitionState {
        let mut state = PartitionState {
            snapshot_epoch: self.snapshot.snapshot_epoch,
            state_epoch: self.snapshot.state_epoch,
            leader_epoch: self.snapshot.leader_epoch,
            start_offset: self.snapshot.start_offset,
            create_timestamp_ms: self.snapshot.create_timestamp_ms,
            write_timestamp_ms: self.snapshot.write_timestamp_ms,
            batches: self.snapshot.batches.clone(),
        };
        if let Some(update) = &self.update {
            apply_update(&mut state, update);
        }
        state
    }
}

/// The durable state of one share partition (its snapshot with its update applied).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionState {
    pub snapshot_epoch: i32,
    pub state_epoch: i32,
    pub leader_epoch: i32,
    /// The share-partition start offset; -1 when not initialized to an offset.
    pub start_offset: i64,
    pub create_timestamp_ms: i64,
    pub write_timestamp_ms: i64,
    /// Non-overlapping, ascending, all at or above `start_offset`.
    pub batches: Vec<StateBatch>,
}
/// The errors the state RPCs answer with (mapped to Kafka codes by the broker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// FENCED_STATE_EPOCH (124).
    FencedStateEpoch,
    /// FENCED_LEADER_EPOCH (74).
    FencedLeaderEpoch,
    /// INVALID_REQUEST (42): malformed batches, too many batches.
    InvalidRequest,
    /// UNKNOWN_TOPIC_OR_PARTITION (3): no state for the key (Read/Write of an uninitialized
    /// share partition, as Kafka).
    UnknownKey,
}

/// A record of `__share_group_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRecord {
    Snapshot(ShareKey, SnapshotValue),
    Update(ShareKey, UpdateValue),
    /// A tombstone for the snapshot key (`snapshot == true`) or the update key.
    Tombstone {
        key: ShareKey,
        snapshot: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotValue {
    pub snapshot_epoch: i32,
    pub state_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
    pub create_timestamp_ms: i64,
    pub write_timestamp_ms: i64,
    pub batches: Vec<StateBatch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateValue {
    pub snapshot_epoch: i32,
    pub leader_epoch: i32,
    /// -1 when the start offset is not changed by this update.
    pub start_offset: i64,
    pub batches: Vec<StateBatch>,
}

/// Limits of the share coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateConfig {
    /// `share.coordinator.snapshot.update.records.per.snapshot` (500).
    pub snapshot_updates_max: u32,
    /// The most state batches a share partition may hold (a write that would exceed it is
    /// INVALID_REQUEST); Kafka bounds it through `group.share.partition.max.record.locks`.
    pub batches_max: usize,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            snapshot_updates_max: 500,
            batches_max: 20_000,
        }
    }
}

/// What a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    pub state_epoch: i32,
    pub start_offset: i64,
    pub batches: Vec<StateBatch>,
}

/// What a summary read returns (ReadShareGroupStateSummary, DescribeShareGroupOffsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub state_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
}

/// The share coordinator of one `__share_group_state` partition.
#[derive(Debug, Clone, Default)]
pub struct StateCoordinator {
    config: StateConfig,
    entries: HashMap<ShareKey, Entry>,
}

impl StateCoordinator {
    pub fn new(config: StateConfig) -> StateCoordinator {
        StateCoordinator {
            config,
            entries: HashMap::new(),
        }
    }

    /// Replays one record read from the log while loading; the commands below apply their
    /// own records through it too, so memory is always what the log says.
    pub fn replay(&mut self, record: StateRecord) {
        match record {
            StateRecord::Snapshot(key, snapshot) => {
                self.entries.insert(
                    key,
                    Entry {
                        snapshot,
                        update: None,
                        updates_since_snapshot: 0,
                    },
                );
            }
            StateRecord::Update(key, update) => {
                // An update of an older snapshot (compaction keeps the latest record of each
                // key, so a newer snapshot may come before it in the log) or of a deleted
                // key is stale and ignored.
                if let Some(entry) = self.entries.get_mut(&key) {
                    if update.snapshot_epoch == entry.snapshot.snapshot_epoch {
                        entry.update = Some(update);
                        entry.updates_since_snapshot += 1;
                    }
                }
            }
            StateRecord::Tombstone { key, snapshot } => {
                if snapshot {
                    self.entries.remove(&key);
                }
            }
        }
    }

    /// The state of `key`, if it has one.
    pub fn state(&self, key: &ShareKey) -> Option<PartitionState> {
        self.entries.get(key).map(Entry::state)
    }

    /// Every key of `group_id`, sorted (DeleteShareGroupState of a group, offsets listing).
    pub fn keys_of_group(&self, group_id: &str) -> Vec<ShareKey> {
        let mut keys: Vec<ShareKey> = self
            .entries
            .keys()
            .filter(|k| k.group_id == group_id)
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// Every key of the topic `topic_id`, of any group, sorted (a deleted topic's state is
    /// deleted with it).
    pub fn keys_of_topic(&self, topic_id: [u8; 16]) -> Vec<ShareKey> {
        let mut keys: Vec<ShareKey> = self
            .entries
            .keys()
            .filter(|k| k.topic_id == topic_id)
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// InitializeShareGroupState: a new state epoch and start offset, no batches. A state
    /// epoch at or below the stored one is FENCED_STATE_EPOCH.
    pub fn initialize(
        &mut self,
        key: &ShareKey,
        state_epoch: i32,
        start_offset: i64,
        now_ms: i64,
    ) -> Result<Vec<StateRecord>, StateError> {
        if start_offset < -1 {
            return Err(StateError::InvalidRequest);
        }
        let previous = self.state(key);
        if let Some(current) = &previous {
            if state_epoch <= current.state_epoch {
                return Err(StateError::FencedStateEpoch);
            }
        }
        let snapshot = SnapshotValue {
            snapshot_epoch: previous
                .as_ref()
                .map_or(0, |s| s.snapshot_epoch.wrapping_add(1)),
            state_epoch,
            leader_epoch: previous.as_ref().map_or(-1, |s| s.leader_epoch),
            start_offset,
            create_timestamp_ms: now_ms,
            write_timestamp_ms: now_ms,
            batches: Vec::new(),
        };
        let record = StateRecord::Snapshot(key.clone(), snapshot);
        self.replay(record.clone());
        Ok(vec![record])
    }

    /// ReadShareGroupState: the state as of now. A leader epoch above the stored one is
    /// recorded (a new partition leader read it; older leaders are fenced from then on),
    /// which needs a record; -1 reads without fencing.
    pub fn read(
        &mut self,
        key: &ShareKey,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<(ReadResult, Vec<StateRecord>), StateError> {
        let state = self.state(key).ok_or(StateError::UnknownKey)?;
        if leader_epoch != -1 && leader_epoch < state.leader_epoch {
            return Err(StateError::FencedLeaderEpoch);
        }
        let result = ReadResult {
            state_epoch: state.state_epoch,
            start_offset: state.start_offset,
            batches: state.batches,
        };
        let mut records = Vec::new();
        if leader_epoch > state.leader_epoch {
            records = self.record_for_write(key, leader_epoch, -1, &[], now_ms);
        }
        Ok((result, records))
    }

    /// ReadShareGroupStateSummary: no fencing, no records.
    pub fn summary(&self, key: &ShareKey) -> Result<Summary, StateError> {
        let state = self.state(key).ok_or(StateError::UnknownKey)?;
        Ok(Summary {
            state_epoch: state.state_epoch,
            leader_epoch: state.leader_epoch,
            start_offset: state.start_offset,
        })
    }

    /// WriteShareGroupState: merges `batches` over the stored ones (newer states win offset
    /// by offset), moves the start offset (unless -1) and drops what lies below it.
    pub fn write(
        &mut self,
        key: &ShareKey,
        state_epoch: i32,
        leader_epoch: i32,
        start_offset: i64,
        batches: &[StateBatch],
        now_ms: i64,
    ) -> Result<Vec<StateRecord>, StateError> {
        let mut state = self.state(key).ok_or(StateError::UnknownKey)?;
        if state_epoch < state.state_epoch {
            return Err(StateError::FencedStateEpoch);
        }
        if leader_epoch != -1 && leader_epoch < state.leader_epoch {
            return Err(StateError::FencedLeaderEpoch);
        }
        if start_offset < -1 || batches.len() > self.config.batches_max {
            return Err(StateError::InvalidRequest);
        }
        let mut previous_last = -1;
        for batch in batches {
            if batch.first_offset < 0
                || batch.first_offset > batch.last_offset
                || batch.first_offset <= previous_last
                || batch.state == RecordState::Acquired
            {
                return Err(StateError::InvalidRequest);
            }
            previous_last = batch.last_offset;
        }
        let snapshot_epoch = state.snapshot_epoch;
        apply_update(
            &mut state,
            &UpdateValue {
                snapshot_epoch,
                leader_epoch,
                start_offset,
                batches: batches.to_vec(),
            },
        );
        if state.batches.len() > self.config.batches_max {
            return Err(StateError::InvalidRequest);
        }
        Ok(self.record_for_write(key, leader_epoch, start_offset, batches, now_ms))
    }

    /// DeleteShareGroupState: tombstones for the key (the state is forgotten once they are
    /// durable and compaction removes the records). A key without state deletes nothing.
    pub fn delete(&mut self, key: &ShareKey) -> Vec<StateRecord> {
        if self.entries.remove(key).is_none() {
            return Vec::new();
        }
        vec![
            StateRecord::Tombstone {
                key: key.clone(),
                snapshot: false,
            },
            StateRecord::Tombstone {
                key: key.clone(),
                snapshot: true,
            },
        ]
    }

    /// The record one write produces, applied to memory: the cumulative update since the
    /// snapshot, or a whole new snapshot every `snapshot_updates_max` updates.
    fn record_for_write(
        &mut self,
        key: &ShareKey,
        leader_epoch: i32,
        start_offset: i64,
        batches: &[StateBatch],
        now_ms: i64,
    ) -> Vec<StateRecord> {
        let Some(entry) = self.entries.get(key) else {
            return Vec::new();
        };
        let previous = entry.update.clone().unwrap_or(UpdateValue {
            snapshot_epoch: entry.snapshot.snapshot_epoch,
            leader_epoch: -1,
            start_offset: -1,
            batches: Vec::new(),
        });
        let start = if start_offset != -1 {
            start_offset
        } else {
            previous.start_offset
        };
        let cumulative = UpdateValue {
            snapshot_epoch: entry.snapshot.snapshot_epoch,
            leader_epoch: previous.leader_epoch.max(leader_epoch),
            start_offset: start,
            batches: merge_batches(&previous.batches, batches, start),
        };
        let record = if entry.updates_since_snapshot + 1 >= self.config.snapshot_updates_max {
            let mut state = entry.state();
            apply_update(&mut state, &cumulative);
            StateRecord::Snapshot(
                key.clone(),
                SnapshotValue {
                    snapshot_epoch: state.snapshot_epoch.wrapping_add(1),
                    state_epoch: state.state_epoch,
                    leader_epoch: state.leader_epoch,
                    start_offset: state.start_offset,
                    create_timestamp_ms: state.create_timestamp_ms,
                    write_timestamp_ms: now_ms,
                    batches: state.batches,
                },
            )
        } else {
            StateRecord::Update(key.clone(), cumulative)
        };
        self.replay(record.clone());
        vec![record]
    }
}

/// Applies an update to a state: leader epoch, start offset, batches merged offset by offset
/// (the update's win), everything below the start offset dropped.
fn apply_update(state: &mut PartitionState, update: &UpdateValue) {
    if update.leader_epoch != -1 {
        state.leader_epoch = state.leader_epoch.max(update.leader_epoch);
    }
    if update.start_offset != -1 {
        state.start_offset = update.start_offset;
    }
    state.batches = merge_batches(&state.batches, &update.batches, state.start_offset);
}

/// Overlays `newer` on `older` (both ascending and non-overlapping within themselves),
/// drops offsets below `start_offset` and joins adjacent equal runs.
pub fn merge_batches(
    older: &[StateBatch],
    newer: &[StateBatch],
    start_offset: i64,
) -> Vec<StateBatch> {
    // Keyed by first offset; each value a whole batch. Newer batches cut older ones.
    let mut runs: BTreeMap<i64, StateBatch> = BTreeMap::new();
    for batch in older {
        runs.insert(batch.first_offset, *batch);
    }
    for batch in newer {
        // Cut every run that overlaps [first, last].
        let overlapping: Vec<StateBatch> = runs
            .range(..=batch.last_offset)
            .rev()
            .take_while(|(_, run)| run.last_offset >= batch.first_offset)
            .map(|(_, run)| *run)
            .collect();
        for run in overlapping {
            runs.remove(&run.first_offset);
            if run.first_offset < batch.first_offset {
                let left = StateBatch {
                    last_offset: batch.first_offset - 1,
                    ..run
                };
                runs.insert(left.first_offset, left);
            }
            if run.last_offset > batch.last_offset {
                let right = StateBatch {
                    first_offset: batch.last_offset + 1,
                    ..run
                };
                runs.insert(right.first_offset, right);
            }
        }
        runs.insert(batch.first_offset, *batch);
    }
    let mut out: Vec<StateBatch> = Vec::new();
    for (_, mut run) in runs {
        if start_offset >= 0 {
            if run.last_offset < start_offset {
                continue;
            }
            run.first_offset = run.first_offset.max(start_offset);
        }
        if let Some(last) = out.last_mut() {
            if last.last_offset + 1 == run.first_offset
                && last.state == run.state
                && last.delivery_count == run.delivery_count
            {
                last.last_offset = run.last_offset;
                continue;
            }
        }
        out.push(run);
    }
    out
}

pub mod codec;

#[cfg(test)]
mod tests;
