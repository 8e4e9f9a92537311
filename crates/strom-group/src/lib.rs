//! strom-group: the classic (pre-KIP-848) consumer-group coordinator as a state machine.
//!
//! The broker turns JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit and
//! OffsetFetch requests into [`Command`]s and feeds them to [`Coordinator::handle`] with the
//! current time. Each call returns an [`Output`]: records to append to the
//! `__consumer_offsets` partition that owns the group, and replies to release *only after*
//! those records are durable. Replies may belong to earlier requests (a JoinGroup waits for
//! the rebalance), so every command carries a caller-chosen [`RequestId`].
//! [`Coordinator::tick`] fires timers (session expiry, rebalance deadlines) and
//! [`Coordinator::load`] rebuilds state from the partition's records at start-up.
//!
//! Pure code: no I/O, no async, no clock, no randomness, no Kafka wire types.

mod admin;
pub mod consumer;
mod coordinator;
mod error;
mod expiry;
mod group;
mod heartbeat;
mod join;
mod member_epoch;
mod offsets;
mod partition;
mod records;
pub mod streams;
mod subscription;
mod sync;
mod types;

pub use admin::CLASSIC_GROUP_TYPE;
pub use coordinator::{Config, Coordinator, Output, Reply, RequestId};
pub use error::{ErrorCode, RecordError};
pub use group::{GroupState, GroupSummary, MemberSummary, Protocol};
pub use partition::{coordinator_partition, java_string_hash};
pub use records::{
    GroupMetadataKey, GroupMetadataValue, GroupRecord, MemberMetadata, OffsetCommitKey,
    OffsetCommitValue, RecordKey,
};
pub use subscription::subscribed_topics;
pub use types::*;
