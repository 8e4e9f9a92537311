//! A share session with one broker, as Kafka's `ShareSessionHandler` keeps it: epoch 0
//! opens it with every partition wanted from that broker, each later ShareFetch or
//! ShareAcknowledge sends the next epoch (wrapping from `i32::MAX` to 1) with the partitions
//! added and forgotten since; -1 closes it. A session error from the broker
//! (SHARE_SESSION_NOT_FOUND, INVALID_SHARE_SESSION_EPOCH) or a lost connection starts a new
//! one. Acknowledgements ride on a ShareFetch only within an open session (Kafka refuses
//! them at epoch 0). Pure state: no I/O.

use std::collections::BTreeSet;

use uuid::Uuid;

/// A share partition as the share RPCs address it: topic id and partition.
pub(crate) type PartitionKey = (Uuid, i32);

/// The wire value of an acknowledgement: 0 gap (no record at the offset), 1 accept,
/// 2 release, 3 reject.
pub(crate) type AckWire = i8;
pub(crate) const ACK_GAP: AckWire = 0;

/// Offsets `first..=last` of one partition acknowledged with one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct AckRange {
    pub first: i64,
    pub last: i64,
    pub kind: AckWire,
}

/// Sorts and merges a partition's acknowledgements into as few ranges as possible
/// (neighbouring ranges of one type join). A range overlapping an earlier one is dropped:
/// an offset is acknowledged once.
pub(crate) fn merge(mut ranges: Vec<AckRange>) -> Vec<AckRange> {
    ranges.sort();
    let mut out: Vec<AckRange> = Vec::with_capacity(ranges.len());
    for r in ranges.into_iter().filter(|r| r.first <= r.last) {
        match out.last_mut() {
            Some(prev) if r.first <= prev.last => {
                tracing::debug!(
                    ?r,
                    ?prev,
                    "acknowledgement overlaps an earlier one; dropped"
                );
            }
            Some(prev) if prev.kind == r.kind && prev.last.checked_add(1) == Some(r.first) => {
                prev.last = r.last;
            }
            _ => out.push(r),
        }
    }
    out
}

/// The epoch after `epoch` (Kafka's `ShareRequestMetadata.nextEpoch`).
pub(crate) fn next_epoch(epoch: i32) -> i32 {
    match epoch.checked_add(1) {
        Some(next) if next > 0 => next,
        _ => 1,
    }
}

/// What one ShareFetch to the session's broker carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub epoch: i32,
    /// Partitions named in `topics`: all wanted ones at epoch 0, the added ones after.
    pub listed: Vec<PartitionKey>,
    pub forgotten: Vec<PartitionKey>,
}

impl Plan {
    /// Whether acknowledgements may ride on this request.
    pub fn carries_acks(&self) -> bool {
        self.epoch > 0
    }
}

/// The client's side of one share session.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// The epoch of the next request; 0 while no session is open.
    epoch: i32,
    /// The partitions the broker's session holds.
    partitions: BTreeSet<PartitionKey>,
}

impl Session {
    pub fn is_open(&self) -> bool {
        self.epoch > 0
    }

    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// Whether a ShareFetch is worth sending: something is wanted, or the session still
    /// holds partitions that are not.
    pub fn needed(&self, wanted: &BTreeSet<PartitionKey>) -> bool {
        !wanted.is_empty() || !self.partitions.is_empty()
    }

    /// The next ShareFetch for `wanted` partitions of this broker.
    pub fn plan(&self, wanted: &BTreeSet<PartitionKey>) -> Plan {
        if !self.is_open() {
            return Plan {
                epoch: 0,
                listed: wanted.iter().copied().collect(),
                forgotten: Vec::new(),
            };
        }
        Plan {
            epoch: self.epoch,
            listed: wanted.difference(&self.partitions).copied().collect(),
            forgotten: self.partitions.difference(wanted).copied().collect(),
        }
    }

    /// The broker accepted `plan`'s ShareFetch.
    pub fn fetched(&mut self, plan: &Plan) {
        if plan.epoch == 0 {
            self.partitions = plan.listed.iter().copied().collect();
        } else {
            self.partitions.extend(plan.listed.iter().copied());
            for p in &plan.forgotten {
                self.partitions.remove(p);
            }
        }
        self.epoch = next_epoch(plan.epoch);
    }

    /// The broker accepted a ShareAcknowledge at the current epoch.
    pub fn acknowledged(&mut self) {
        self.epoch = next_epoch(self.epoch);
    }

    /// The session is gone (a session error, a lost connection, or closed): the next
    /// request opens a new one.
    pub fn reset(&mut self) {
        self.epoch = 0;
        self.partitions.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> PartitionKey {
        (Uuid::from_u128(7), p)
    }

    fn set(ps: &[i32]) -> BTreeSet<PartitionKey> {
        ps.iter().map(|p| key(*p)).collect()
    }

    #[test]
    fn a_session_opens_at_epoch_zero_then_sends_only_changes() {
        let mut s = Session::default();
        let plan = s.plan(&set(&[0, 1]));
        assert_eq!(plan.epoch, 0);
        assert!(!plan.carries_acks());
        assert_eq!(plan.listed, vec![key(0), key(1)]);
        s.fetched(&plan);
        assert_eq!(s.epoch(), 1);

        let same = s.plan(&set(&[0, 1]));
        assert_eq!(
            (same.epoch, same.listed.len(), same.forgotten.len()),
            (1, 0, 0)
        );
        assert!(same.carries_acks());
        s.fetched(&same);

        let changed = s.plan(&set(&[1, 2]));
        assert_eq!(changed.epoch, 2);
        assert_eq!(changed.listed, vec![key(2)]);
        assert_eq!(changed.forgotten, vec![key(0)]);
        s.fetched(&changed);
        let steady = s.plan(&set(&[1, 2]));
        assert!(steady.listed.is_empty() && steady.forgotten.is_empty());
        s.acknowledged();
        assert_eq!(s.epoch(), 4);

        s.reset();
        assert_eq!(s.plan(&set(&[1])).epoch, 0);
        assert!(!s.needed(&BTreeSet::new()));
    }

    #[test]
    fn epochs_wrap_to_one() {
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(0), 1);
        assert_eq!(next_epoch(41), 42);
    }

    #[test]
    fn acknowledgements_merge_by_type_and_overlaps_are_dropped() {
        let r = |first, last, kind| AckRange { first, last, kind };
        let merged = merge(vec![
            r(5, 5, 1),
            r(0, 2, 1),
            r(3, 4, 1),
            r(6, 6, 2),
            r(6, 9, 1),
            r(10, 10, 2),
            r(12, 11, 1),
        ]);
        assert_eq!(merged, vec![r(0, 5, 1), r(6, 6, 2), r(10, 10, 2)]);
    }
}
