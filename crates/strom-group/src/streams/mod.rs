//! KIP-1071 streams groups (`group.protocol=streams`): the server-side task assignment
//! behind StreamsGroupHeartbeat and StreamsGroupDescribe, as a pure state machine next to
//! the classic and KIP-848 coordinators, in the same `__consumer_offsets` partitions.
//!
//! [`StreamsGroups::heartbeat`] takes a command (with the cluster's topics and the time)
//! and returns records plus the response; the caller appends the records durably before
//! it replies, and creates the internal topics the response lists. [`StreamsGroups::tick`]
//! fences members whose session or revocation deadline passed; [`StreamsGroups::replay`]
//! rebuilds state from [`StreamsRecord`]s at load. No I/O, no clock, no randomness, no
//! wire types.

mod assignor;
mod coordinator;
mod group;
mod reconcile;
mod records;
mod topology;
mod types;

pub use assignor::{assign, MemberSpec};
pub use coordinator::{StreamsGroups, LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH};
pub use group::{
    CurrentAssignment, MemberMetadata, MemberState, StreamsGroup, StreamsGroupState, StreamsMember,
};
pub use records::{GroupMetadata, StreamsRecord};
pub use topology::{configure, validate, Configured};
pub use types::{
    CopartitionGroup, DescribedStreamsGroup, DescribedStreamsMember, Endpoint, EndpointPartitions,
    NullTasks, Status, StatusCode, StreamsConfig, StreamsHeartbeat, StreamsHeartbeatResponse,
    Subtopology, Tasks, TasksTuple, TopicInfo, TopicToCreate, Topology,
};

/// `GroupType.STREAMS` in ListGroups, and the protocol type Kafka lists such groups with.
pub const STREAMS_GROUP_TYPE: &str = "streams";

#[cfg(test)]
mod tests;
