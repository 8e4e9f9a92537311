//! The share-partition state machine (KIP-932): which records of one topic partition a share
//! group has delivered, to whom, how often, and what the consumers said about them.
//!
//! One `SharePartition` exists per (share group, topic partition) on the partition's leader.
//! It is pure: the broker passes in the current time, the offsets it read from the log and the
//! acknowledgements it received, and asks the machine what to deliver and what to persist.
//!
//! Vocabulary, as Kafka's `SharePartition`:
//! - the **share-partition start offset** (SPSO): every record below it is done (acknowledged
//!   or archived) and forgotten; it only moves forward.
//! - the **in-flight records**: offsets from the SPSO up to the **share-partition end offset**
//!   (SPEO, the last offset ever acquired) with a state each: AVAILABLE (may be acquired),
//!   ACQUIRED (by one member until its lock expires), ACKNOWLEDGED (ACCEPT) and ARCHIVED
//!   (REJECT, a GAP, or the delivery count limit reached).
//! - the **delivery count** of a record counts its acquisitions; a record that would become
//!   AVAILABLE again at `delivery_count_limit` is ARCHIVED instead.
//!
//! Invariants (checked by the unit and property tests below):
//! - a record is ACQUIRED by at most one member, and only until its lock deadline;
//! - the delivery count of a record equals the number of times it was acquired;
//! - the SPSO never moves backwards, and every record below it is ACKNOWLEDGED or ARCHIVED;
//! - at most `record_locks_max` in-flight records are tracked (memory is bounded).
//!
//! Offsets inside `[SPSO, SPEO]` with no entry are gaps the log never held (a batch compacted
//! away or a control batch); they count as archived.

use std::collections::BTreeMap;

/// The delivery state of one in-flight record (Kafka's `RecordState`; the numbers are the
/// ones Kafka persists in `__share_group_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordState {
    Available,
    Acquired,
    Acknowledged,
    Archived,
}

impl RecordState {
    /// Kafka's persisted id (`RecordState.id`): 0 AVAILABLE, 1 ACQUIRED, 2 ACKNOWLEDGED,
    /// 4 ARCHIVED.
    pub fn id(self) -> u8 {
        match self {
            RecordState::Available => 0,
            RecordState::Acquired => 1,
            RecordState::Acknowledged => 2,
            RecordState::Archived => 4,
        }
    }

    pub fn from_id(id: u8) -> Option<RecordState> {
        match id {
            0 => Some(RecordState::Available),
            1 => Some(RecordState::Acquired),
            2 => Some(RecordState::Acknowledged),
            4 => Some(RecordState::Archived),
            _ => None,
        }
    }

    fn is_terminal(self) -> bool {
        matches!(self, RecordState::Acknowledged | RecordState::Archived)
    }
}

/// What a consumer says about a record it acquired (ShareFetch/ShareAcknowledge
/// `AcknowledgeTypes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckType {
    /// 0: the offset holds no record the consumer could use (compacted away, a control
    /// record); archived.
    Gap,
    /// 1: processed; acknowledged.
    Accept,
    /// 2: give it back for redelivery (archived at the delivery count limit).
    Release,
    /// 3: unprocessable; archived.
    Reject,
}

impl AckType {
    pub fn from_wire(value: i8) -> Option<AckType> {
        match value {
            0 => Some(AckType::Gap),
            1 => Some(AckType::Accept),
            2 => Some(AckType::Release),
            3 => Some(AckType::Reject),
            _ => None,
        }
    }
}

/// One acknowledgement range: `ack_types` holds either one type for the whole range or one
/// per offset (as Kafka's `AcknowledgementBatch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    pub ack_types: Vec<AckType>,
}

/// A range of records acquired by one fetch, all with the same delivery count
/// (ShareFetch's `AcquiredRecords`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquiredRange {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_count: u16,
}

/// A run of records with one persisted state and delivery count (the `StateBatches` of
/// `__share_group_state`). ACQUIRED is persisted as AVAILABLE: a lock does not survive the
/// leader that granted it, but the delivery count does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    pub state: RecordState,
    pub delivery_count: u16,
}

/// The limits of one share partition (from the group's `share.*` configs or the broker's
/// `group.share.*` defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionConfig {
    /// `share.record.lock.duration.ms` / `group.share.record.lock.duration.ms` (30000).
    pub lock_duration_ms: u64,
    /// `share.delivery.count.limit` / `group.share.delivery.count.limit` (5).
    pub delivery_count_limit: u16,
    /// `group.share.partition.max.record.locks` (2000): in-flight records tracked at once.
    pub record_locks_max: usize,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            lock_duration_ms: 30_000,
            delivery_count_limit: 5,
            record_locks_max: 2000,
        }
    }
}

/// Why an acknowledgement or a restore was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// Kafka's INVALID_RECORD_STATE (121): the record is not acquired by this member (never
    /// delivered to it, its lock expired, or already acknowledged).
    #[error("offset {offset} is not acquired by member {member}: its lock expired, it was acknowledged already, or it was never delivered to this member; fetch again")]
    InvalidRecordState { offset: i64, member: String },
    /// Kafka's INVALID_REQUEST: a malformed acknowledgement batch.
    #[error("invalid acknowledgement batch {first_offset}..={last_offset}: {reason}")]
    InvalidAckBatch {
        first_offset: i64,
        last_offset: i64,
        reason: &'static str,
    },
    /// Persisted state that cannot be this partition's (corrupt or foreign).
    #[error("persisted share state is invalid: {0}; the share partition stays unloaded until the state in __share_group_state is repaired or deleted")]
    InvalidPersistedState(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    state: RecordState,
    delivery_count: u16,
    /// The member holding the lock, while ACQUIRED.
    member: Option<String>,
    /// When the lock expires, while ACQUIRED.
    lock_deadline_ms: u64,
}

/// One share partition. See the module documentation.
#[derive(Debug, Clone)]
pub struct SharePartition {
    config: PartitionConfig,
    start_offset: i64,
    /// One past the highest offset ever taken in flight (SPEO + 1); equals `start_offset`
    /// when nothing is in flight.
    next_offset: i64,
    records: BTreeMap<i64, InFlight>,
    /// Bumped on every change that must be persisted before it is acknowledged to anyone
    /// (acknowledgements, releases, expiries, SPSO moves); acquisitions alone are not
    /// persisted (Kafka does not persist them either; a restart makes them AVAILABLE).
    changes: u64,
}

impl SharePartition {
    /// A share partition with nothing in flight, starting at `start_offset` (the offset
    /// `share.auto.offset.reset` picked, or the persisted SPSO).
    pub fn new(start_offset: i64, config: PartitionConfig) -> SharePartition {
        SharePartition {
            config,
            start_offset: start_offset.max(0),
            next_offset: start_offset.max(0),
            records: BTreeMap::new(),
            changes: 0,
        }
    }

    /// Rebuilds a share partition from its persisted state. Batches below `start_offset` are
    /// done and ignored; ACQUIRED comes back AVAILABLE (the lock died with the old leader)
    /// or ARCHIVED at the delivery count limit.
    pub fn restore(
        start_offset: i64,
        batches: &[StateBatch],
        config: PartitionConfig,
    ) -> Result<SharePartition, PartitionError> {
        if start_offset < 0 {
            return Err(PartitionError::InvalidPersistedState(format!(
                "negative start offset {start_offset}"
            )));
        }
        let mut partition = SharePartition::new(start_offset, config);
        // Persisted state was written by a partition that held at most `record_locks_max`
        // records; more are allowed for a lowered limit, up to a hard bound on the records
        // rebuilt (memory). The bound is on records, not on the span of offsets: gaps
        // between batches (compacted or aborted offsets never acquired) cost nothing, and a
        // partition evicted while idle must read its own state back whatever its gaps.
        let records_max = config.record_locks_max.max(1).saturating_mul(4) as i64;
        let mut restored: i64 = 0;
        for batch in batches {
            if batch.first_offset > batch.last_offset || batch.first_offset < 0 {
                return Err(PartitionError::InvalidPersistedState(format!(
                    "batch {}..={} is empty or negative",
                    batch.first_offset, batch.last_offset
                )));
            }
            let first = batch.first_offset.max(start_offset);
            if first > batch.last_offset {
                continue;
            }
            restored = restored.saturating_add((batch.last_offset - first).saturating_add(1));
            if restored > records_max {
                return Err(PartitionError::InvalidPersistedState(format!(
                    "more than {records_max} records in flight above start offset {start_offset} (at batch {}..={})",
                    batch.first_offset, batch.last_offset
                )));
            }
            let state = match batch.state {
                RecordState::Acquired | RecordState::Available => {
                    if batch.delivery_count >= config.delivery_count_limit {
                        RecordState::Archived
                    } else {
                        RecordState::Available
                    }
                }
                terminal => terminal,
            };
            for offset in first..=batch.last_offset {
                partition.records.insert(
                    offset,
                    InFlight {
                        state,
                        delivery_count: batch.delivery_count,
                        member: None,
                        lock_deadline_ms: 0,
                    },
                );
            }
            partition.next_offset = partition.next_offset.max(batch.last_offset + 1);
        }
        partition.advance_start();
        Ok(partition)
    }

    pub fn config(&self) -> PartitionConfig {
        self.config
    }

    /// Applies new limits (a group config change). Locks already granted keep their deadline.
    pub fn set_config(&mut self, config: PartitionConfig) {
        self.config = config;
    }

    /// The share-partition start offset (SPSO).
    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    /// The share-partition end offset (SPEO): the last offset in flight, or SPSO - 1 when
    /// nothing is (Kafka reports the SPSO then; callers use [`Self::next_offset`]).
    pub fn end_offset(&self) -> i64 {
        self.next_offset - 1
    }

    /// One past the highest offset taken in flight: where new records are read from.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// A counter bumped on every change that must be persisted.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Records tracked in flight (all states), bounded by `record_locks_max` for new ones.
    pub fn in_flight_count(&self) -> usize {
        self.records.len()
    }

    /// The state and delivery count of `offset`, if it is in flight.
    pub fn record(&self, offset: i64) -> Option<(RecordState, u16, Option<&str>)> {
        self.records
            .get(&offset)
            .map(|r| (r.state, r.delivery_count, r.member.as_deref()))
    }

    /// Where the broker should read the log from to acquire records: the lowest AVAILABLE
    /// offset, or else the next new offset if the lock bound leaves room. `None` means
    /// nothing can be acquired now (everything in flight is locked or the bound is reached).
    pub fn fetch_offset(&self) -> Option<i64> {
        if let Some((offset, _)) = self
            .records
            .iter()
            .find(|(_, r)| r.state == RecordState::Available)
        {
            return Some(*offset);
        }
        if self.records.len() < self.config.record_locks_max {
            Some(self.next_offset)
        } else {
            None
        }
    }

    /// Whether any record could be acquired if the log held records at and above
    /// [`Self::next_offset`] (used to decide whether a share fetch may wait).
    pub fn has_available(&self) -> bool {
        self.records
            .values()
            .any(|r| r.state == RecordState::Available)
    }

    /// Acquires for `member` up to `records_max` records among `log_ranges` (the offset
    /// ranges of the batches the broker read from the log, ascending, control batches left
    /// out): AVAILABLE in-flight records first as they come, then new records above the
    /// end offset while the lock bound allows. Offsets between ranges above the end offset
    /// are gaps the log does not hold; they are skipped. Returns the acquired ranges.
    pub fn acquire(
        &mut self,
        member: &str,
        log_ranges: &[(i64, i64)],
        records_max: usize,
        now_ms: u64,
    ) -> Vec<AcquiredRange> {
        let mut acquired: Vec<AcquiredRange> = Vec::new();
        let mut budget = records_max;
        let deadline = now_ms.saturating_add(self.config.lock_duration_ms);
        for &(first, last) in log_ranges {
            if budget == 0 {
                break;
            }
            let first = first.max(self.start_offset);
            if first > last {
                continue;
            }
            // In-flight part of the range: re-acquire what is AVAILABLE.
            let in_flight_last = last.min(self.next_offset - 1);
            if first <= in_flight_last {
                for (&offset, record) in self.records.range_mut(first..=in_flight_last) {
                    if budget == 0 {
                        break;
                    }
                    if record.state != RecordState::Available {
                        continue;
                    }
                    record.state = RecordState::Acquired;
                    record.delivery_count = record.delivery_count.saturating_add(1);
                    record.member = Some(member.to_string());
                    record.lock_deadline_ms = deadline;
                    push_acquired(&mut acquired, offset, record.delivery_count);
                    budget -= 1;
                }
            }
            // New part of the range: take records in flight, bounded by the lock limit.
            let mut offset = first.max(self.next_offset);
            while offset <= last && budget > 0 && self.records.len() < self.config.record_locks_max
            {
                self.records.insert(
                    offset,
                    InFlight {
                        state: RecordState::Acquired,
                        delivery_count: 1,
                        member: Some(member.to_string()),
                        lock_deadline_ms: deadline,
                    },
                );
                push_acquired(&mut acquired, offset, 1);
                self.next_offset = offset + 1;
                budget -= 1;
                offset += 1;
            }
        }
        acquired
    }

    /// Applies a member's acknowledgements, all or nothing, as Kafka's
    /// `SharePartition.acknowledge`: a range acknowledges the in-flight records it covers,
    /// and each of them must be ACQUIRED by `member`, else nothing changes and the first
    /// offending offset is reported (INVALID_RECORD_STATE). As Kafka's
    /// `fetchSubMapForAcknowledgementBatch`: a range wholly below the start offset (done
    /// already, no longer in flight) or with nothing in flight at all is INVALID_RECORD_STATE
    /// ("not found in the cache"); a range whose first or last offset is past the last
    /// record in flight is INVALID_REQUEST ("past acquired records"). Offsets of a range
    /// below the start offset, when it straddles it, and gaps the log never held are passed
    /// over. A range that covers no record in flight otherwise (it lies in a gap) is
    /// INVALID_REQUEST.
    /// Batches apply in order, so a record two batches name is no longer ACQUIRED for the
    /// second one (INVALID_RECORD_STATE, as Kafka's). The work is bounded by the records in
    /// flight, never by the ranges a client sends.
    pub fn acknowledge(
        &mut self,
        member: &str,
        batches: &[AckBatch],
    ) -> Result<(), PartitionError> {
        // The records as they were before each change: put back if a later batch fails.
        // Each record changes at most once (it is no longer ACQUIRED after), so this holds
        // at most the records in flight.
        let mut undo: Vec<(i64, InFlight)> = Vec::new();
        let limit = self.config.delivery_count_limit;
        for batch in batches {
            if let Err(error) = self.check_ack_batch(member, batch) {
                for (offset, record) in undo.into_iter().rev() {
                    self.records.insert(offset, record);
                }
                return Err(error);
            }
            let first = batch.first_offset.max(self.start_offset);
            for (&offset, record) in self.records.range_mut(first..=batch.last_offset) {
                undo.push((offset, record.clone()));
                record.member = None;
                record.lock_deadline_ms = 0;
                record.state = match ack_type_at(batch, offset) {
                    AckType::Accept => RecordState::Acknowledged,
                    AckType::Gap | AckType::Reject => RecordState::Archived,
                    AckType::Release => release_state(record.delivery_count, limit),
                };
            }
        }
        if !undo.is_empty() {
            self.changes += 1;
            self.advance_start();
        }
        Ok(())
    }

    fn check_ack_batch(&self, member: &str, batch: &AckBatch) -> Result<(), PartitionError> {
        let invalid = |reason| PartitionError::InvalidAckBatch {
            first_offset: batch.first_offset,
            last_offset: batch.last_offset,
            reason,
        };
        if batch.first_offset > batch.last_offset || batch.first_offset < 0 {
            return Err(invalid("the first offset is above the last or negative"));
        }
        // The span less one, which cannot overflow (0 <= first <= last).
        let span = batch.last_offset.abs_diff(batch.first_offset);
        let types = batch.ack_types.len() as u64;
        if types == 0 || (types != 1 && types.checked_sub(1) != Some(span)) {
            return Err(invalid(
                "needs one acknowledge type, or one per offset of the range",
            ));
        }
        // Not in flight any more (done already) or nothing in flight: Kafka's cache has no
        // batch at or below the range.
        let last_in_flight = match self.records.keys().next_back() {
            Some(&last) if batch.last_offset >= self.start_offset => last,
            _ => {
                return Err(PartitionError::InvalidRecordState {
                    offset: batch.first_offset,
                    member: member.to_string(),
                })
            }
        };
        if batch.first_offset > last_in_flight {
            return Err(invalid("the first offset is past the acquired records"));
        }
        if batch.last_offset > last_in_flight {
            return Err(invalid("the last offset is past the acquired records"));
        }
        let first = batch.first_offset.max(self.start_offset);
        let mut covered = false;
        for (&offset, record) in self.records.range(first..=batch.last_offset) {
            covered = true;
            if record.state != RecordState::Acquired || record.member.as_deref() != Some(member) {
                return Err(PartitionError::InvalidRecordState {
                    offset,
                    member: member.to_string(),
                });
            }
        }
        if !covered {
            return Err(invalid("no record in flight in the range"));
        }
        Ok(())
    }

    /// Releases every record `member` holds (its share session closed or it left the group):
    /// AVAILABLE again, or ARCHIVED at the delivery count limit. Returns how many.
    pub fn release_member(&mut self, member: &str) -> usize {
        let limit = self.config.delivery_count_limit;
        let mut released = 0;
        for record in self.records.values_mut() {
            if record.state == RecordState::Acquired && record.member.as_deref() == Some(member) {
                record.state = release_state(record.delivery_count, limit);
                record.member = None;
                record.lock_deadline_ms = 0;
                released += 1;
            }
        }
        if released > 0 {
            self.changes += 1;
            self.advance_start();
        }
        released
    }

    /// Expires every lock whose deadline is at or before `now_ms`: AVAILABLE again, or
    /// ARCHIVED at the delivery count limit. Returns how many.
    pub fn expire_locks(&mut self, now_ms: u64) -> usize {
        let limit = self.config.delivery_count_limit;
        let mut expired = 0;
        for record in self.records.values_mut() {
            if record.state == RecordState::Acquired && record.lock_deadline_ms <= now_ms {
                record.state = release_state(record.delivery_count, limit);
                record.member = None;
                record.lock_deadline_ms = 0;
                expired += 1;
            }
        }
        if expired > 0 {
            self.changes += 1;
            self.advance_start();
        }
        expired
    }

    /// Whether any record is ACQUIRED (its lock must still expire): such a share partition is
    /// never evicted from memory, since its locks exist nowhere else.
    pub fn has_acquired(&self) -> bool {
        self.records
            .values()
            .any(|r| r.state == RecordState::Acquired)
    }

    /// The earliest lock deadline, for the broker's timer.
    pub fn next_lock_deadline_ms(&self) -> Option<u64> {
        self.records
            .values()
            .filter(|r| r.state == RecordState::Acquired)
            .map(|r| r.lock_deadline_ms)
            .min()
    }

    /// The log no longer holds offsets below `log_start_offset` (retention, DeleteRecords):
    /// records there are gone and count as archived; the SPSO moves up to it.
    pub fn advance_to_log_start(&mut self, log_start_offset: i64) {
        if log_start_offset <= self.start_offset {
            return;
        }
        self.records = self.records.split_off(&log_start_offset);
        self.start_offset = log_start_offset;
        self.next_offset = self.next_offset.max(log_start_offset);
        self.changes += 1;
        self.advance_start();
    }

    /// Moves the end offset over `[first, last]`, offsets where the log holds nothing to
    /// deliver (control batches, batches of aborted transactions under read_committed), when
    /// the end offset has reached them: nothing there is ever acquired, and the SPSO may
    /// pass them once everything before is done. A range the end offset has not reached is
    /// left alone (records before it are still to be taken).
    pub fn skip_gap(&mut self, first: i64, last: i64) {
        if first > last || self.next_offset < first || self.next_offset > last {
            return;
        }
        self.next_offset = last + 1;
        self.changes += 1;
        self.advance_start();
    }

    /// Moves the SPSO to `offset` (AlterShareGroupOffsets on an empty group): everything in
    /// flight is forgotten and delivery starts afresh there. May move backwards: this is an
    /// explicit reset, not progress.
    pub fn reset_to(&mut self, offset: i64) {
        self.records.clear();
        self.start_offset = offset.max(0);
        self.next_offset = self.start_offset;
        self.changes += 1;
    }

    /// The state to persist: runs of equal (state, delivery count) over consecutive
    /// offsets, ACQUIRED written as AVAILABLE. Gaps (offsets without a record) are written
    /// as ARCHIVED so that the persisted end offset is exact.
    pub fn state_batches(&self) -> Vec<StateBatch> {
        let mut out: Vec<StateBatch> = Vec::new();
        for (&offset, record) in &self.records {
            let state = match record.state {
                RecordState::Acquired => RecordState::Available,
                other => other,
            };
            if let Some(last) = out.last_mut() {
                if last.last_offset + 1 == offset
                    && last.state == state
                    && last.delivery_count == record.delivery_count
                {
                    last.last_offset = offset;
                    continue;
                }
            }
            out.push(StateBatch {
                first_offset: offset,
                last_offset: offset,
                state,
                delivery_count: record.delivery_count,
            });
        }
        out
    }

    /// Moves the SPSO over the done prefix (ACKNOWLEDGED, ARCHIVED and gaps) and forgets it.
    fn advance_start(&mut self) {
        let new_start = self
            .records
            .iter()
            .find(|(_, r)| !r.state.is_terminal())
            .map(|(offset, _)| *offset)
            .unwrap_or(self.next_offset);
        if new_start > self.start_offset {
            self.records = self.records.split_off(&new_start);
            self.start_offset = new_start;
        }
    }
}

/// The acknowledge type of `offset` in `batch` (checked: one type, or one per offset).
fn ack_type_at(batch: &AckBatch, offset: i64) -> AckType {
    let index = if batch.ack_types.len() == 1 {
        0
    } else {
        usize::try_from(offset.saturating_sub(batch.first_offset)).unwrap_or(usize::MAX)
    };
    batch.ack_types.get(index).copied().unwrap_or(AckType::Gap)
}

fn release_state(delivery_count: u16, limit: u16) -> RecordState {
    if delivery_count >= limit {
        RecordState::Archived
    } else {
        RecordState::Available
    }
}

fn push_acquired(acquired: &mut Vec<AcquiredRange>, offset: i64, delivery_count: u16) {
    if let Some(last) = acquired.last_mut() {
        if last.last_offset + 1 == offset && last.delivery_count == delivery_count {
            last.last_offset = offset;
            return;
        }
    }
    acquired.push(AcquiredRange {
        first_offset: offset,
        last_offset: offset,
        delivery_count,
    });
}

#[cfg(test)]
mod tests;
