//! The leader's view of one partition: what each follower has, the high watermark, ISR
//! changes waiting for the controller, and whether an `acks=all` append is committed.
//!
//! Kafka's rules (`Partition`, `Replica`, KIP-497):
//! - A follower's log end offset is the offset of its last fetch (it fetches at its own
//!   log end; under sync-on-commit only once that is fsynced). Its last caught-up time moves
//!   when a fetch reaches the leader's log end offset, or the leader's log end offset as of
//!   its previous fetch.
//! - The high watermark is the smallest log end offset over the *maximal* ISR: the ISR the
//!   controller committed plus a member being added, so an ISR the controller has not
//!   committed is never used for an acknowledgement (a member being removed still counts
//!   until the removal commits). Caught-up, eligible replicas outside the ISR hold it back
//!   too, so that they can catch up and join. The leader's own part is its log end offset,
//!   or under sync-on-commit its durable offset. It never moves back.
//! - A follower joins (a proposal) once it has reached the high watermark and the start of
//!   the current leader epoch; an ISR member leaves when it has not been caught up for
//!   `replica.lag.time.max.ms`. One proposal at a time; its outcome is known only from a
//!   committed reply or a newer partition epoch in the metadata image. A lost reply is
//!   resent; a refusal for stale epochs waits for the image.

use std::collections::BTreeMap;

use crate::UNKNOWN_OFFSET;

/// A partition as the controller last committed it (from the metadata image).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    /// The leader epoch.
    pub leader_epoch: i32,
    /// Bumped by every change of the partition (ISR, leader, replicas).
    pub partition_epoch: i32,
    /// Every replica, in preference order.
    pub replicas: Vec<i32>,
    /// The in-sync replicas the controller committed.
    pub isr: Vec<i32>,
}

/// Brokers that may join an ISR (registered and unfenced), with their current broker epoch.
pub type EligibleBrokers = BTreeMap<i32, i64>;

/// The leader's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderConfig {
    /// `replica.lag.time.max.ms`: an ISR member not caught up for this long leaves.
    pub replica_lag_time_max_ms: i64,
    /// `strom.log.durability=sync-on-commit`: the leader counts only its durable offset.
    pub durable_only: bool,
}

/// What the leader knows of one follower (Kafka's `ReplicaState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaProgress {
    /// The follower's log end offset as of its last fetch ([`UNKNOWN_OFFSET`] before one).
    pub log_end_offset: i64,
    /// The follower's log start offset as of its last fetch.
    pub log_start_offset: i64,
    /// The leader's log end offset when the follower last fetched (the largest seen).
    pub last_fetch_leader_log_end_offset: i64,
    /// When the follower last fetched.
    pub last_fetch_time_ms: i64,
    /// When the follower was last caught up.
    pub last_caught_up_time_ms: i64,
    /// The broker epoch its fetches carried (Fetch v15+), if any.
    pub broker_epoch: Option<i64>,
}

impl ReplicaProgress {
    fn unknown(last_caught_up_time_ms: i64) -> ReplicaProgress {
        ReplicaProgress {
            log_end_offset: UNKNOWN_OFFSET,
            log_start_offset: UNKNOWN_OFFSET,
            last_fetch_leader_log_end_offset: UNKNOWN_OFFSET,
            last_fetch_time_ms: 0,
            last_caught_up_time_ms,
            broker_epoch: None,
        }
    }

    /// Kafka's `isCaughtUp`: at the leader's log end, or caught up recently enough.
    pub fn is_caught_up(&self, leader_log_end_offset: i64, now_ms: i64, lag_max_ms: i64) -> bool {
        self.log_end_offset == leader_log_end_offset
            || now_ms.saturating_sub(self.last_caught_up_time_ms) <= lag_max_ms
    }
}

/// One fetch from a follower, as the leader's state needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerFetch {
    /// The follower.
    pub replica_id: i32,
    /// Its fetch offset: its log end offset (its durable one under sync-on-commit).
    pub fetch_offset: i64,
    /// Its log start offset.
    pub log_start_offset: i64,
    /// Its broker epoch (Fetch v15+), if sent.
    pub broker_epoch: Option<i64>,
}

/// Why a follower's fetch does not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchRefusal {
    /// Not a replica of the partition (or the leader itself).
    NotReplica,
    /// Its broker epoch is older than one already seen (a previous incarnation).
    StaleBrokerEpoch,
    /// Its fetch offset is beyond the leader's log end offset.
    OffsetOutOfRange,
}

/// Whether an ISR change adds or removes members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsrChangeKind {
    /// One follower joins.
    Expand,
    /// Lagging followers leave.
    Shrink,
}

/// An ISR change for the controller (AlterPartition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterIsr {
    /// The leader epoch it is made in.
    pub leader_epoch: i32,
    /// The partition epoch it is based on.
    pub partition_epoch: i32,
    /// The ISR asked for.
    pub new_isr: Vec<i32>,
    /// Expand or shrink.
    pub kind: IsrChangeKind,
}

/// The controller's answer to an [`AlterIsr`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlterReply {
    /// Committed: the partition as it now is.
    Committed {
        /// Its leader epoch.
        leader_epoch: i32,
        /// Its partition epoch.
        partition_epoch: i32,
        /// Its ISR.
        isr: Vec<i32>,
    },
    /// Refused.
    Refused(AlterRefusal),
    /// No answer (timed out, quorum unavailable): it may or may not have been committed.
    Lost,
}

/// Why the controller refused an ISR change (Kafka's error codes, grouped by what the
/// leader does next).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlterRefusal {
    /// The controller is behind the leader's epochs: resend.
    NotController,
    /// The leader epoch is stale: wait for the image (a new leader is coming).
    FencedLeaderEpoch,
    /// The partition epoch is stale: wait for the image (it may hold this very change,
    /// committed by an earlier attempt whose answer was lost).
    InvalidUpdateVersion,
    /// Anything else (ineligible replica, invalid request): the epochs matched, so nothing
    /// was committed; drop the proposal.
    Other,
}

/// Whether an `acks=all` append is committed (Kafka's `checkEnoughReplicasReachOffset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckStatus {
    /// The high watermark is below the append's end.
    Waiting,
    /// Committed, with at least `min.insync.replicas` in the maximal ISR.
    Committed,
    /// Committed, but the ISR shrank below `min.insync.replicas` meanwhile.
    NotEnoughReplicasAfterAppend,
}

/// An `acks=all` append refused before it is written: the ISR is below
/// `min.insync.replicas` (Kafka's NOT_ENOUGH_REPLICAS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotEnoughReplicas {
    /// The committed ISR's size.
    pub isr_size: usize,
    /// The partition's `min.insync.replicas`.
    pub min_isr: usize,
}

/// Where a proposal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// To be sent (new, or its answer was lost).
    Unsent,
    /// Sent, no answer yet.
    InFlight,
    /// Refused for stale epochs: its fate shows in the image.
    AwaitingImage,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PendingIsr {
    kind: IsrChangeKind,
    new_isr: Vec<i32>,
    basis_partition_epoch: i32,
    delivery: Delivery,
}

/// The leader's replication state of one partition for one leader epoch. A new leader
/// epoch means a new `Leader` (or none: the broker follows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leader {
    local_id: i32,
    config: LeaderConfig,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    pending: Option<PendingIsr>,
    followers: BTreeMap<i32, ReplicaProgress>,
    eligible: EligibleBrokers,
    epoch_start_offset: i64,
    log_end_offset: i64,
    durable_offset: i64,
    high_watermark: i64,
}

impl Leader {
    /// Becomes leader of `view` at `log_end_offset` (where this leader epoch starts).
    /// `high_watermark` is what the broker knew (its checkpoint, or what it learned as a
    /// follower); it is capped at the log end. Followers start unknown; those in the ISR
    /// count as caught up now, so they are not dropped before they had a chance to fetch,
    /// and hold the high watermark where it is until they fetch (Kafka's
    /// `resetReplicaState`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        local_id: i32,
        view: &PartitionView,
        eligible: EligibleBrokers,
        config: LeaderConfig,
        log_end_offset: i64,
        durable_offset: i64,
        high_watermark: i64,
        now_ms: i64,
    ) -> Leader {
        let followers = view
            .replicas
            .iter()
            .filter(|id| **id != local_id)
            .map(|id| {
                let caught_up = if view.isr.contains(id) { now_ms } else { 0 };
                (*id, ReplicaProgress::unknown(caught_up))
            })
            .collect();
        let mut leader = Leader {
            local_id,
            config,
            leader_epoch: view.leader_epoch,
            partition_epoch: view.partition_epoch,
            replicas: view.replicas.clone(),
            isr: view.isr.clone(),
            pending: None,
            followers,
            eligible,
            epoch_start_offset: log_end_offset,
            log_end_offset,
            durable_offset,
            high_watermark: high_watermark.clamp(0, log_end_offset.max(0)),
        };
        leader.recompute(now_ms);
        leader
    }

    /// The leader epoch this state is for.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// The partition epoch of the committed ISR.
    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    /// The ISR the controller committed.
    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    /// The committed ISR plus a member being added.
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut maximal = self.isr.clone();
        if let Some(pending) = &self.pending {
            for id in &pending.new_isr {
                if !maximal.contains(id) {
                    maximal.push(*id);
                }
            }
        }
        maximal
    }

    /// Every record below this is on every member of the maximal ISR.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The log end offset when this leader epoch began.
    pub fn epoch_start_offset(&self) -> i64 {
        self.epoch_start_offset
    }

    /// Whether the high watermark reached the start of this leader epoch: only then is it
    /// at least every earlier leader's, so ListOffsets answers OFFSET_NOT_AVAILABLE until
    /// then (KIP-207) rather than an offset lower than a consumer may have seen.
    pub fn high_watermark_established(&self) -> bool {
        self.high_watermark >= self.epoch_start_offset
    }

    /// What the leader knows of `replica_id`.
    pub fn progress(&self, replica_id: i32) -> Option<&ReplicaProgress> {
        self.followers.get(&replica_id)
    }

    /// Whether an ISR change waits for the controller.
    pub fn has_pending_change(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether a proposal waits to be (re)sent ([`Leader::take_proposal`] would return it).
    pub fn has_unsent_proposal(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| p.delivery == Delivery::Unsent)
    }

    /// The leader's own log moved: its log end offset, and its durable offset (which counts
    /// instead under sync-on-commit). Whether the high watermark moved.
    pub fn on_local_end(&mut self, log_end_offset: i64, durable_offset: i64, now_ms: i64) -> bool {
        self.log_end_offset = log_end_offset;
        self.durable_offset = durable_offset;
        self.recompute(now_ms)
    }

    /// A follower fetched (after the caller checked that its last fetched epoch agrees with
    /// this log: see [`crate::diverging_epoch`]; a diverging fetch does not count). Updates
    /// its progress, may propose adding it to the ISR (see [`Leader::take_proposal`]), and
    /// says whether the high watermark moved.
    pub fn on_follower_fetch(
        &mut self,
        fetch: FollowerFetch,
        now_ms: i64,
    ) -> Result<bool, FetchRefusal> {
        if fetch.replica_id == self.local_id || !self.replicas.contains(&fetch.replica_id) {
            return Err(FetchRefusal::NotReplica);
        }
        if fetch.fetch_offset < 0 || fetch.fetch_offset > self.log_end_offset {
            return Err(FetchRefusal::OffsetOutOfRange);
        }
        let leader_end = self.log_end_offset;
        let progress = self
            .followers
            .entry(fetch.replica_id)
            .or_insert_with(|| ReplicaProgress::unknown(0));
        if let (Some(sent), Some(seen)) = (fetch.broker_epoch, progress.broker_epoch) {
            if sent < seen {
                return Err(FetchRefusal::StaleBrokerEpoch);
            }
        }
        let last_caught_up_time_ms = if fetch.fetch_offset >= leader_end {
            progress.last_caught_up_time_ms.max(now_ms)
        } else if fetch.fetch_offset >= progress.last_fetch_leader_log_end_offset {
            progress
                .last_caught_up_time_ms
                .max(progress.last_fetch_time_ms)
        } else {
            progress.last_caught_up_time_ms
        };
        *progress = ReplicaProgress {
            log_end_offset: fetch.fetch_offset,
            log_start_offset: fetch.log_start_offset,
            last_fetch_leader_log_end_offset: leader_end
                .max(progress.last_fetch_leader_log_end_offset),
            last_fetch_time_ms: now_ms,
            last_caught_up_time_ms,
            broker_epoch: fetch.broker_epoch.or(progress.broker_epoch),
        };
        self.maybe_expand(fetch.replica_id);
        Ok(self.recompute(now_ms))
    }

    /// Kafka's ISR expiration (run every `replica.lag.time.max.ms / 2`): proposes dropping
    /// the ISR members that have not been caught up for `replica.lag.time.max.ms`. Whether
    /// a proposal was made.
    pub fn tick(&mut self, now_ms: i64) -> bool {
        if self.pending.is_some() {
            return false;
        }
        let lag_max_ms = self.config.replica_lag_time_max_ms;
        let leader_end = self.log_end_offset;
        let out: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|id| *id != self.local_id)
            .filter(|id| {
                self.followers
                    .get(id)
                    .is_none_or(|p| !p.is_caught_up(leader_end, now_ms, lag_max_ms))
            })
            .collect();
        if out.is_empty() {
            return false;
        }
        let new_isr: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|id| !out.contains(id))
            .collect();
        self.pending = Some(PendingIsr {
            kind: IsrChangeKind::Shrink,
            new_isr,
            basis_partition_epoch: self.partition_epoch,
            delivery: Delivery::Unsent,
        });
        true
    }

    /// The proposal to send to the controller now, if one waits; it is then in flight
    /// until [`Leader::on_alter_reply`].
    pub fn take_proposal(&mut self) -> Option<AlterIsr> {
        let pending = self.pending.as_mut()?;
        if pending.delivery != Delivery::Unsent {
            return None;
        }
        pending.delivery = Delivery::InFlight;
        Some(AlterIsr {
            leader_epoch: self.leader_epoch,
            partition_epoch: pending.basis_partition_epoch,
            new_isr: pending.new_isr.clone(),
            kind: pending.kind,
        })
    }

    /// The controller answered `sent`. A committed answer newer than what the leader has
    /// becomes its committed ISR; an answer to anything but the proposal in flight is
    /// otherwise ignored. Whether the high watermark moved.
    pub fn on_alter_reply(&mut self, sent: &AlterIsr, reply: AlterReply, now_ms: i64) -> bool {
        let current = self.pending.as_ref().is_some_and(|p| {
            p.delivery == Delivery::InFlight
                && p.basis_partition_epoch == sent.partition_epoch
                && p.new_isr == sent.new_isr
                && sent.leader_epoch == self.leader_epoch
        });
        match reply {
            AlterReply::Committed {
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                if leader_epoch == self.leader_epoch && partition_epoch > self.partition_epoch {
                    self.adopt(partition_epoch, isr);
                }
            }
            AlterReply::Refused(refusal) if current => {
                if let Some(pending) = self.pending.as_mut() {
                    match refusal {
                        AlterRefusal::NotController => pending.delivery = Delivery::Unsent,
                        AlterRefusal::FencedLeaderEpoch | AlterRefusal::InvalidUpdateVersion => {
                            pending.delivery = Delivery::AwaitingImage
                        }
                        AlterRefusal::Other => self.pending = None,
                    }
                }
            }
            AlterReply::Lost if current => {
                if let Some(pending) = self.pending.as_mut() {
                    pending.delivery = Delivery::Unsent;
                }
            }
            AlterReply::Refused(_) | AlterReply::Lost => {}
        }
        self.recompute(now_ms)
    }

    /// A newer metadata image for the same leader epoch (the caller makes a new `Leader`
    /// for another epoch): a newer partition epoch replaces the committed ISR and settles
    /// any proposal based on an older one; the replica set and the eligible brokers are
    /// refreshed. Whether the high watermark moved.
    pub fn on_image(
        &mut self,
        view: &PartitionView,
        eligible: EligibleBrokers,
        now_ms: i64,
    ) -> bool {
        if view.leader_epoch != self.leader_epoch {
            return false;
        }
        self.eligible = eligible;
        if view.partition_epoch > self.partition_epoch {
            if view.replicas != self.replicas {
                self.replicas = view.replicas.clone();
                let local = self.local_id;
                self.followers
                    .retain(|id, _| view.replicas.contains(id) && *id != local);
                for id in &view.replicas {
                    if *id != local {
                        self.followers
                            .entry(*id)
                            .or_insert_with(|| ReplicaProgress::unknown(0));
                    }
                }
            }
            self.adopt(view.partition_epoch, view.isr.clone());
        }
        self.recompute(now_ms)
    }

    /// Kafka's check before an `acks=all` append: the committed ISR must have at least
    /// `min.insync.replicas` members.
    pub fn check_min_isr(&self, min_isr: usize) -> Result<(), NotEnoughReplicas> {
        if self.isr.len() < min_isr {
            return Err(NotEnoughReplicas {
                isr_size: self.isr.len(),
                min_isr,
            });
        }
        Ok(())
    }

    /// Whether an `acks=all` append ending before `required_offset` is committed.
    pub fn ack_status(&self, required_offset: i64, min_isr: usize) -> AckStatus {
        if self.high_watermark < required_offset {
            AckStatus::Waiting
        } else if self.maximal_isr().len() >= min_isr {
            AckStatus::Committed
        } else {
            AckStatus::NotEnoughReplicasAfterAppend
        }
    }

    fn adopt(&mut self, partition_epoch: i32, isr: Vec<i32>) {
        self.partition_epoch = partition_epoch;
        self.isr = isr;
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.basis_partition_epoch < partition_epoch)
        {
            self.pending = None;
        }
    }

    fn is_eligible(&self, replica_id: i32) -> bool {
        let Some(registered) = self.eligible.get(&replica_id) else {
            return false;
        };
        self.followers
            .get(&replica_id)
            .and_then(|p| p.broker_epoch)
            .is_none_or(|seen| seen == *registered)
    }

    /// Kafka's `maybeExpandIsr`: a follower outside the ISR that reached both the high
    /// watermark and the start of this leader epoch joins (once committed).
    fn maybe_expand(&mut self, replica_id: i32) {
        if self.pending.is_some() || self.isr.contains(&replica_id) || !self.is_eligible(replica_id)
        {
            return;
        }
        let Some(progress) = self.followers.get(&replica_id) else {
            return;
        };
        let end = progress.log_end_offset;
        if end < self.high_watermark || end < self.epoch_start_offset {
            return;
        }
        let mut new_isr = self.isr.clone();
        new_isr.push(replica_id);
        self.pending = Some(PendingIsr {
            kind: IsrChangeKind::Expand,
            new_isr,
            basis_partition_epoch: self.partition_epoch,
            delivery: Delivery::Unsent,
        });
    }

    /// Kafka's `maybeIncrementLeaderHW`.
    fn recompute(&mut self, now_ms: i64) -> bool {
        let mut candidate = if self.config.durable_only {
            self.durable_offset.min(self.log_end_offset)
        } else {
            self.log_end_offset
        };
        let maximal = self.maximal_isr();
        let lag_max_ms = self.config.replica_lag_time_max_ms;
        for (id, progress) in &self.followers {
            if progress.log_end_offset >= candidate {
                continue;
            }
            let joining = progress.is_caught_up(self.log_end_offset, now_ms, lag_max_ms)
                && self.is_eligible(*id);
            if maximal.contains(id) || joining {
                candidate = progress.log_end_offset;
            }
        }
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    //! Unit tests of the leader's state, and a property test against a simple model: random
    //! fetches, appends, fsyncs, ticks, controller answers and images, after each of which the
    //! high watermark is checked against what every maximal-ISR member reported.

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    const LAG_MS: i64 = 10_000;
    const T0: i64 = 1_000_000;

    fn view(
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
    ) -> PartitionView {
        PartitionView {
            leader_epoch,
            partition_epoch,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
        }
    }

    fn all_eligible(ids: &[i32]) -> EligibleBrokers {
        ids.iter().map(|id| (*id, 7)).collect()
    }

    fn config(durable_only: bool) -> LeaderConfig {
        LeaderConfig {
            replica_lag_time_max_ms: LAG_MS,
            durable_only,
        }
    }

    fn leader(isr: &[i32], log_end_offset: i64, high_watermark: i64) -> Leader {
        Leader::new(
            1,
            &view(5, 10, &[1, 2, 3], isr),
            all_eligible(&[1, 2, 3]),
            config(false),
            log_end_offset,
            log_end_offset,
            high_watermark,
            T0,
        )
    }

    fn fetch(replica_id: i32, fetch_offset: i64) -> FollowerFetch {
        FollowerFetch {
            replica_id,
            fetch_offset,
            log_start_offset: 0,
            broker_epoch: None,
        }
    }

    #[test]
    fn a_single_replica_is_its_own_high_watermark() {
        let mut l = Leader::new(
            1,
            &view(0, 0, &[1], &[1]),
            all_eligible(&[1]),
            config(false),
            7,
            0,
            3,
            T0,
        );
        assert_eq!(l.high_watermark(), 7);
        assert!(l.on_local_end(9, 0, T0));
        assert_eq!(l.high_watermark(), 9);
        assert_eq!(l.ack_status(9, 1), AckStatus::Committed);
        assert_eq!(l.ack_status(10, 1), AckStatus::Waiting);
        assert_eq!(l.ack_status(9, 2), AckStatus::NotEnoughReplicasAfterAppend);
        assert_eq!(
            l.check_min_isr(2),
            Err(NotEnoughReplicas {
                isr_size: 1,
                min_isr: 2
            })
        );
    }

    #[test]
    fn sync_on_commit_counts_the_durable_offset() {
        let mut l = Leader::new(
            1,
            &view(0, 0, &[1], &[1]),
            all_eligible(&[1]),
            config(true),
            10,
            4,
            0,
            T0,
        );
        assert_eq!(l.high_watermark(), 4);
        assert!(!l.on_local_end(12, 4, T0));
        assert!(l.on_local_end(12, 12, T0));
        assert_eq!(l.high_watermark(), 12);
    }

    #[test]
    fn the_high_watermark_waits_for_every_isr_member() {
        let mut l = leader(&[1, 2, 3], 10, 4);
        // Followers are unknown until they fetch: the high watermark stays.
        assert_eq!(l.high_watermark(), 4);
        assert!(!l.high_watermark_established());
        assert_eq!(l.on_follower_fetch(fetch(2, 8), T0), Ok(false));
        assert_eq!(l.on_follower_fetch(fetch(3, 6), T0), Ok(true));
        assert_eq!(l.high_watermark(), 6);
        assert_eq!(l.on_follower_fetch(fetch(3, 10), T0), Ok(true));
        assert_eq!(l.high_watermark(), 8);
        assert!(!l.high_watermark_established());
        assert_eq!(l.on_follower_fetch(fetch(2, 10), T0), Ok(true));
        assert_eq!(l.high_watermark(), 10);
        assert!(l.high_watermark_established());
        // A follower going back (it restarted) never moves the high watermark back.
        assert_eq!(l.on_follower_fetch(fetch(2, 3), T0), Ok(false));
        assert_eq!(l.high_watermark(), 10);
    }

    #[test]
    fn fetches_from_strangers_or_beyond_the_log_are_refused() {
        let mut l = leader(&[1, 2, 3], 10, 0);
        assert_eq!(
            l.on_follower_fetch(fetch(4, 1), T0),
            Err(FetchRefusal::NotReplica)
        );
        assert_eq!(
            l.on_follower_fetch(fetch(1, 1), T0),
            Err(FetchRefusal::NotReplica)
        );
        assert_eq!(
            l.on_follower_fetch(fetch(2, 11), T0),
            Err(FetchRefusal::OffsetOutOfRange)
        );
        let with_epoch = |epoch| FollowerFetch {
            broker_epoch: Some(epoch),
            ..fetch(2, 5)
        };
        assert!(l.on_follower_fetch(with_epoch(9), T0).is_ok());
        assert_eq!(
            l.on_follower_fetch(with_epoch(8), T0),
            Err(FetchRefusal::StaleBrokerEpoch)
        );
    }

    #[test]
    fn a_lagging_member_is_proposed_out_and_the_high_watermark_waits_for_the_commit() {
        let mut l = leader(&[1, 2, 3], 10, 0);
        l.on_follower_fetch(fetch(2, 10), T0).unwrap();
        l.on_follower_fetch(fetch(3, 2), T0).unwrap();
        assert_eq!(l.high_watermark(), 2);
        // Within the lag: nothing to do.
        assert!(!l.tick(T0 + LAG_MS));
        l.on_follower_fetch(fetch(2, 10), T0 + LAG_MS).unwrap();
        assert!(l.tick(T0 + LAG_MS + 1));
        let sent = l.take_proposal().unwrap();
        assert_eq!(sent.new_isr, vec![1, 2]);
        assert_eq!(sent.kind, IsrChangeKind::Shrink);
        assert_eq!(sent.partition_epoch, 10);
        assert_eq!(l.take_proposal(), None, "one in flight");
        // Until the controller commits, member 3 still counts.
        assert_eq!(l.high_watermark(), 2);
        let committed = AlterReply::Committed {
            leader_epoch: 5,
            partition_epoch: 11,
            isr: vec![1, 2],
        };
        assert!(l.on_alter_reply(&sent, committed, T0 + LAG_MS + 2));
        assert_eq!(l.high_watermark(), 10);
        assert_eq!(l.isr(), &[1, 2]);
        assert!(!l.has_pending_change());
    }

    #[test]
    fn a_caught_up_follower_joins_and_counts_while_the_change_is_pending() {
        let mut l = leader(&[1, 2], 10, 0);
        l.on_follower_fetch(fetch(2, 10), T0).unwrap();
        assert_eq!(l.high_watermark(), 10);
        l.on_local_end(20, 20, T0);
        assert_eq!(l.high_watermark(), 10);
        // Below the high watermark: not yet.
        l.on_follower_fetch(fetch(3, 8), T0).unwrap();
        assert!(!l.has_pending_change());
        // At the high watermark and past this epoch's start: proposed, and from now on it
        // holds the high watermark back.
        l.on_follower_fetch(fetch(3, 12), T0).unwrap();
        assert_eq!(l.maximal_isr(), vec![1, 2, 3]);
        l.on_follower_fetch(fetch(2, 20), T0).unwrap();
        assert_eq!(l.high_watermark(), 12);
        let sent = l.take_proposal().unwrap();
        assert_eq!(sent.new_isr, vec![1, 2, 3]);
        // Refused for an unrelated reason: dropped, and member 3 no longer counts once it
        // stops being caught up.
        l.on_alter_reply(&sent, AlterReply::Refused(AlterRefusal::Other), T0);
        assert!(!l.has_pending_change());
    }

    #[test]
    fn lost_answers_are_resent_and_stale_refusals_wait_for_the_image() {
        let mut l = leader(&[1, 2], 10, 0);
        l.on_follower_fetch(fetch(2, 10), T0).unwrap();
        l.on_follower_fetch(fetch(3, 10), T0).unwrap();
        let sent = l.take_proposal().unwrap();
        l.on_alter_reply(&sent, AlterReply::Lost, T0);
        let again = l.take_proposal().unwrap();
        assert_eq!(again, sent);
        // The first attempt had committed: the second is refused for a stale partition epoch.
        // The member keeps counting until the image says what happened.
        l.on_alter_reply(
            &again,
            AlterReply::Refused(AlterRefusal::InvalidUpdateVersion),
            T0,
        );
        assert!(l.has_pending_change());
        assert_eq!(l.take_proposal(), None);
        assert_eq!(l.maximal_isr(), vec![1, 2, 3]);
        // An image with the same partition epoch settles nothing.
        l.on_image(
            &view(5, 10, &[1, 2, 3], &[1, 2]),
            all_eligible(&[1, 2, 3]),
            T0,
        );
        assert!(l.has_pending_change());
        l.on_image(
            &view(5, 11, &[1, 2, 3], &[1, 2, 3]),
            all_eligible(&[1, 2, 3]),
            T0,
        );
        assert!(!l.has_pending_change());
        assert_eq!(l.isr(), &[1, 2, 3]);
        // An answer to something no longer in flight is ignored.
        l.on_alter_reply(&sent, AlterReply::Refused(AlterRefusal::Other), T0);
        assert_eq!(l.isr(), &[1, 2, 3]);
    }

    #[test]
    fn fenced_or_reincarnated_brokers_do_not_join() {
        let mut l = leader(&[1, 2], 10, 0);
        l.on_follower_fetch(fetch(2, 10), T0).unwrap();
        l.on_image(&view(5, 10, &[1, 2, 3], &[1, 2]), all_eligible(&[1, 2]), T0);
        l.on_follower_fetch(fetch(3, 10), T0).unwrap();
        assert!(!l.has_pending_change(), "fenced broker 3 joined");
        l.on_image(
            &view(5, 10, &[1, 2, 3], &[1, 2]),
            all_eligible(&[1, 2, 3]),
            T0,
        );
        let stale = FollowerFetch {
            broker_epoch: Some(6),
            ..fetch(3, 10)
        };
        l.on_follower_fetch(stale, T0).unwrap();
        assert!(!l.has_pending_change(), "a previous incarnation joined");
        let current = FollowerFetch {
            broker_epoch: Some(7),
            ..fetch(3, 10)
        };
        l.on_follower_fetch(current, T0).unwrap();
        assert!(l.has_pending_change());
    }

    #[test]
    fn a_follower_must_reach_the_start_of_the_leader_epoch_to_join() {
        // Became leader at 10 with a high watermark of 4.
        let mut l = leader(&[1], 10, 4);
        assert_eq!(l.high_watermark(), 10);
        let mut l2 = Leader::new(
            1,
            &view(5, 10, &[1, 2], &[1, 2]),
            all_eligible(&[1, 2]),
            config(false),
            10,
            10,
            4,
            T0,
        );
        l2.on_image(
            &view(5, 11, &[1, 2, 3], &[1, 2]),
            all_eligible(&[1, 2, 3]),
            T0,
        );
        l2.on_follower_fetch(fetch(3, 6), T0).unwrap();
        assert!(!l2.has_pending_change(), "joined below the epoch start");
        l.on_local_end(10, 10, T0);
    }

    /// One step of the property test.
    #[derive(Clone, Debug)]
    enum Op {
        Fetch { replica: i32, back: i64 },
        Append(i64),
        Fsync,
        Advance(i64),
        Tick,
        Send,
        Answer(u8),
        Image,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (2..=3i32, 0..6i64).prop_map(|(replica, back)| Op::Fetch { replica, back }),
            2 => (1..5i64).prop_map(Op::Append),
            1 => Just(Op::Fsync),
            1 => (0..8_000i64).prop_map(Op::Advance),
            1 => Just(Op::Tick),
            1 => Just(Op::Send),
            2 => (0..4u8).prop_map(Op::Answer),
            1 => Just(Op::Image),
        ]
    }

    /// The controller side of the model: the committed ISR and partition epoch, applying the
    /// checks Kafka's controller makes.
    struct Model {
        isr: Vec<i32>,
        partition_epoch: i32,
        in_flight: Option<AlterIsr>,
        /// Highest offset each replica ever reported.
        reported: BTreeMap<i32, i64>,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever happens, the high watermark never moves back, never passes the leader's own
        /// (durable) end, and whenever it moves every member of the maximal ISR has reported at
        /// least that far (or it was there when the leader started). Proposals always keep the
        /// leader and never add a member below the high watermark.
        #[test]
        fn the_high_watermark_is_covered_by_the_maximal_isr(
            durable_only in any::<bool>(),
            ops in proptest::collection::vec(op(), 1..120),
        ) {
            let start_hw = 3;
            let mut now = T0;
            let mut l = Leader::new(
                1,
                &view(5, 10, &[1, 2, 3], &[1, 2, 3]),
                all_eligible(&[1, 2, 3]),
                config(durable_only),
                5,
                5,
                start_hw,
                now,
            );
            let mut model = Model {
                isr: vec![1, 2, 3],
                partition_epoch: 10,
                in_flight: None,
                reported: BTreeMap::new(),
            };
            let (mut leo, mut durable) = (5i64, 5i64);
            let mut follower_leo: BTreeMap<i32, i64> = BTreeMap::new();
            for op in ops {
                let before = l.high_watermark();
                match op {
                    Op::Fetch { replica, back } => {
                        let known = follower_leo.get(&replica).copied().unwrap_or(0);
                        // Mostly forward to the leader's end, sometimes back (a restart).
                        let offset = if back == 0 { (known - 2).max(0) } else { (known + back).min(leo) };
                        follower_leo.insert(replica, offset);
                        if l.on_follower_fetch(fetch(replica, offset), now).is_ok() {
                            let best = model.reported.entry(replica).or_insert(offset);
                            *best = (*best).max(offset);
                        }
                    }
                    Op::Append(n) => {
                        leo += n;
                        l.on_local_end(leo, durable, now);
                    }
                    Op::Fsync => {
                        durable = leo;
                        l.on_local_end(leo, durable, now);
                    }
                    Op::Advance(ms) => now += ms,
                    Op::Tick => {
                        l.tick(now);
                    }
                    Op::Send => {
                        if model.in_flight.is_none() {
                            model.in_flight = l.take_proposal();
                            if let Some(sent) = &model.in_flight {
                                prop_assert!(sent.new_isr.contains(&1), "leader left out: {sent:?}");
                                if sent.kind == IsrChangeKind::Expand {
                                    let added = sent.new_isr.iter().find(|id| !model.isr.contains(id));
                                    if let Some(added) = added {
                                        // It reached the high watermark when proposed, and holds
                                        // it back since.
                                        let at = model.reported.get(added).copied().unwrap_or(-1);
                                        prop_assert!(at >= l.high_watermark(), "{added} joined at {at}");
                                    }
                                }
                            }
                        }
                    }
                    Op::Answer(kind) => {
                        let Some(sent) = model.in_flight.take() else { continue };
                        let reply = match kind {
                            0 | 1 if sent.partition_epoch == model.partition_epoch => {
                                model.isr = sent.new_isr.clone();
                                model.partition_epoch += 1;
                                AlterReply::Committed {
                                    leader_epoch: 5,
                                    partition_epoch: model.partition_epoch,
                                    isr: model.isr.clone(),
                                }
                            }
                            0 | 1 => AlterReply::Refused(AlterRefusal::InvalidUpdateVersion),
                            2 => {
                                // Committed, but the answer is lost; the image shows it later.
                                if sent.partition_epoch == model.partition_epoch {
                                    model.isr = sent.new_isr.clone();
                                    model.partition_epoch += 1;
                                }
                                AlterReply::Lost
                            }
                            _ => AlterReply::Lost,
                        };
                        l.on_alter_reply(&sent, reply, now);
                    }
                    Op::Image => {
                        // The image catches up with the controller.
                        let v = view(5, model.partition_epoch, &[1, 2, 3], &model.isr);
                        l.on_image(&v, all_eligible(&[1, 2, 3]), now);
                    }
                }
                let after = l.high_watermark();
                prop_assert!(after >= before, "moved back {before} -> {after}");
                let own = if durable_only { durable.min(leo) } else { leo };
                prop_assert!(after <= own.max(start_hw), "{after} above the leader's {own}");
                // The ISR the leader counts always includes what the controller committed.
                for id in &model.isr {
                    prop_assert!(l.maximal_isr().contains(id) || model.partition_epoch > l.partition_epoch(),
                        "committed member {id} not counted");
                }
                if after > before {
                    for id in l.maximal_isr() {
                        if id == 1 { continue; }
                        let reported = model.reported.get(&id).copied().unwrap_or(-1);
                        prop_assert!(reported >= after || after <= start_hw,
                            "hw {after} passed member {id} at {reported}");
                    }
                    // Members the controller committed, which the leader may not know of yet.
                    for id in &model.isr {
                        if *id == 1 { continue; }
                        let reported = model.reported.get(id).copied().unwrap_or(-1);
                        prop_assert!(reported >= after, "hw {after} passed committed member {id} at {reported}");
                    }
                }
            }
        }
    }
}
