//! strom-share: share groups (KIP-932, "queues for Kafka") as pure state machines.
//!
//! Three parts, each driven by the broker with the current time passed in (no I/O, no async,
//! no clock, no Kafka wire types), in the style of `strom-group` and `strom-txn`:
//! - [`partition`]: a share partition on the partition leader: the share-partition start and
//!   end offsets, in-flight records and their states (AVAILABLE, ACQUIRED, ACKNOWLEDGED,
//!   ARCHIVED), delivery counts and acquisition locks.
//! - [`group`]: the share group coordinator: membership through ShareGroupHeartbeat and the
//!   server-side assignment of partitions to members (several members per partition).
//! - [`state`]: the share coordinator: the durable share-partition state kept in
//!   `__share_group_state` (snapshot and update records) behind Initialize/Read/Write/Delete
//!   ShareGroupState and ReadShareGroupStateSummary.

pub mod group;
pub mod partition;
pub mod state;
