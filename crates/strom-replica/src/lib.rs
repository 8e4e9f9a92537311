//! strom-replica: the decisions of partition replication, as Kafka makes them, without any
//! I/O. A leader tracks what each follower has (from the offsets its fetches name), moves
//! the high watermark, proposes ISR changes for the controller (KIP-497 AlterPartition, one
//! pending at a time) and answers whether an `acks=all` append is committed; a follower
//! decides where to truncate when the leader reports a diverging epoch (KIP-101, KIP-279,
//! KIP-320).
//!
//! No I/O, no async, no clock (every call takes `now_ms`), no randomness, no Kafka wire
//! types. The broker (`strom-broker`'s `partition.rs` and `fetcher.rs`) feeds it what it
//! sees and carries out what it returns; the seeded simulation in `tests/sim/` drives the
//! same code through crashes, message loss and elections.
//!
//! Start at [`Leader`] (`leader.rs`), then `follower.rs` ([`truncation_on_divergence`],
//! [`diverging_epoch`]).

mod follower;
mod leader;

pub use follower::{diverging_epoch, follower_high_watermark, truncation_on_divergence};
pub use leader::{
    AckStatus, AlterIsr, AlterRefusal, AlterReply, EligibleBrokers, FetchRefusal, FollowerFetch,
    IsrChangeKind, Leader, LeaderConfig, NotEnoughReplicas, PartitionView, ReplicaProgress,
};

/// An offset nobody reported yet (Kafka's `UnifiedLog.UnknownOffset`).
pub const UNKNOWN_OFFSET: i64 = -1;
/// No epoch (Kafka's `UNDEFINED_EPOCH`).
pub const UNDEFINED_EPOCH: i32 = -1;

/// Where a leader epoch ends: the epoch found (the largest known at or below the one asked
/// for) and the first offset after it, as OffsetForLeaderEpoch and a Fetch's diverging
/// epoch report it. `(-1, -1)` is Kafka's "undefined".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEndOffset {
    /// The epoch.
    pub epoch: i32,
    /// The offset after its last record.
    pub end_offset: i64,
}

impl EpochEndOffset {
    /// Kafka's undefined answer (no epoch known).
    pub const UNDEFINED: EpochEndOffset = EpochEndOffset {
        epoch: UNDEFINED_EPOCH,
        end_offset: UNKNOWN_OFFSET,
    };
}

/// Where a follower cuts its log, and whether that settles the divergence (`false`: the
/// follower did not know the leader's epoch; it cut to its own end of the largest earlier
/// epoch and must ask again with its new last epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// Every record at or after this offset goes.
    pub offset: i64,
    /// Whether the follower's log now agrees with the leader's.
    pub complete: bool,
}
