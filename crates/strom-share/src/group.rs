//! The share group coordinator (KIP-932): membership of share groups through
//! ShareGroupHeartbeat and the server-side assignment of partitions to members, as a pure
//! state machine beside strom-group's consumer-group coordinator.
//!
//! [`ShareGroups`] holds the share groups of one `__consumer_offsets` partition.
//! [`ShareGroups::handle`] takes a [`ShareCommand`] with the time and returns the records
//! to append (Kafka's ShareGroup* record types 10-14) with the response; the caller appends
//! the records durably before it releases the response. [`ShareGroups::tick`] removes
//! members whose session expired; [`ShareGroups::replay`] rebuilds the groups from the
//! partition's records at load.
//!
//! Unlike consumer groups, a share group's partitions are not owned: several members may
//! read one partition (records are handed out one by one by the share partitions), so an
//! assignment takes effect at once, with no revocation step, and a member's epoch simply
//! follows the target assignment's epoch.
//!
//! No I/O, no async, no clock, no randomness, no Kafka wire types.

mod assignor;
mod coordinator;
mod records;
mod types;

#[cfg(test)]
mod tests;

pub use assignor::simple_assign;
pub use coordinator::{ShareGroups, LEAVE_GROUP_MEMBER_EPOCH};
pub use records::{ShareGroupRecord, StatePartitions};
pub use types::{
    DescribedShareGroup, DescribedShareMember, InitializeJob, ListedShareGroup, OffsetsToDelete,
    ShareCommand, ShareConfig, ShareError, ShareHeartbeat, ShareHeartbeatResponse, ShareResponse,
    StateToDelete, SHARE_GROUP_TYPE,
};
