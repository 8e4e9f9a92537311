//! KIP-848 consumer groups (`group.protocol=consumer`): the server-side assignment
//! protocol behind ConsumerGroupHeartbeat and ConsumerGroupDescribe, as a pure state
//! machine next to the classic coordinator.
//!
//! [`ConsumerGroups::heartbeat`] takes a command (with the cluster's [`Topics`] and the
//! time) and returns `__consumer_offsets` records plus the response; the caller appends
//! the records durably before it replies. [`ConsumerGroups::tick`] fences members whose
//! session or revocation deadline passed; [`ConsumerGroups::replay`] rebuilds state from
//! [`ConsumerRecord`]s at load. No I/O, no clock, no randomness, no wire types.

mod assignor;
mod bridge;
pub mod codec;
mod coordinator;
mod group;
mod member;
mod reconcile;
mod records;
mod subscription;
mod types;

pub use assignor::{
    range as range_assign, uniform as uniform_assign, AssignmentSpec, RANGE, UNIFORM,
};
pub use bridge::CONSUMER_GROUP_TYPE;
pub(crate) use bridge::{
    before_classic_join, delete as delete_group, describe as describe_group,
    heartbeat as bridge_heartbeat, list as list_groups,
};
pub use coordinator::{ConsumerGroups, LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH};
pub use group::{ConsumerGroup, ConsumerGroupState, TopicMetadata};
pub use member::{CurrentAssignment, Member, MemberState, Subscription};
pub use records::ConsumerRecord;
pub use types::{
    Assignment, ConsumerConfig, ConsumerError, ConsumerErrorCode, ConsumerHeartbeat,
    ConsumerHeartbeatResponse, DescribedGroup, DescribedMember, TopicId, TopicInfo, Topics,
};

#[cfg(test)]
mod tests;
