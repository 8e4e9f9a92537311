//! Commands the broker maps from Kafka requests, and the responses it maps back.

use bytes::Bytes;

use crate::error::ErrorCode;
use crate::group::Protocol;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    JoinGroup(JoinGroup),
    SyncGroup(SyncGroup),
    Heartbeat(Heartbeat),
    LeaveGroup(LeaveGroup),
    OffsetCommit(OffsetCommit),
    OffsetFetch(OffsetFetch),
    DescribeGroup(DescribeGroup),
    ListGroups(ListGroups),
    DeleteGroup(DeleteGroup),
    OffsetDelete(OffsetDelete),
    /// KIP-848 ConsumerGroupHeartbeat.
    ConsumerGroupHeartbeat(crate::consumer::ConsumerHeartbeat),
    /// KIP-848 ConsumerGroupDescribe of one group.
    ConsumerGroupDescribe(String),
    /// KIP-1071 StreamsGroupHeartbeat.
    StreamsGroupHeartbeat(crate::streams::StreamsHeartbeat),
    /// KIP-1071 StreamsGroupDescribe of one group.
    StreamsGroupDescribe(String),
    /// TxnOffsetCommit: offsets staged for a producer's transaction, written now as
    /// transactional records and visible once its COMMIT marker is written.
    TxnOffsetCommit(TxnOffsetCommit),
    /// A COMMIT or ABORT marker of `producer_id` was written to this partition: its
    /// staged offsets become committed, or are dropped (no record: the marker is the record).
    TxnMarker {
        producer_id: i64,
        commit: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    JoinGroup(JoinGroupResponse),
    SyncGroup(SyncGroupResponse),
    Heartbeat(ErrorCode),
    LeaveGroup(LeaveGroupResponse),
    OffsetCommit(Vec<PartitionResult>),
    OffsetFetch(OffsetFetchResponse),
    DescribeGroup(DescribedGroup),
    ListGroups(ListGroupsResponse),
    DeleteGroup(ErrorCode),
    OffsetDelete(OffsetDeleteResponse),
    ConsumerGroupHeartbeat(crate::consumer::ConsumerHeartbeatResponse),
    ConsumerGroupDescribe(crate::consumer::DescribedGroup),
    StreamsGroupHeartbeat(crate::streams::StreamsHeartbeatResponse),
    StreamsGroupDescribe(crate::streams::DescribedStreamsGroup),
    TxnOffsetCommit(Vec<PartitionResult>),
    TxnMarker,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroup {
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+ (KIP-394): a new dynamic member first gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// JoinGroup v9+ (KIP-814): a static leader rejoining a Stable group gets the members
    /// with `skip_assignment` instead of an empty list.
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupResponse {
    pub error: ErrorCode,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only: every member's metadata for the chosen protocol.
    pub members: Vec<JoinGroupMember>,
    /// KIP-814: the leader must not compute a new assignment (static leader rejoin).
    pub skip_assignment: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroup {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// SyncGroup v5+; `None` skips the check.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// Only the leader sends assignments.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupResponse {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroup {
    pub group_id: String,
    /// v0-v2 carry one member; v3+ a batch.
    pub members: Vec<LeavingMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeavingMember {
    /// May be empty when `group_instance_id` names the member.
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupResponse {
    pub error: ErrorCode,
    pub members: Vec<(LeavingMember, ErrorCode)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    pub group_id: String,
    /// -1 for a simple (non-member) commit.
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// OffsetCommit v2-v4 `retention_time_ms`; -1 (the default, and all later versions)
    /// uses `offsets.retention.minutes`.
    pub retention_time_ms: i64,
    /// OffsetCommit v9+: a member commit (generation >= 0) to a group that does not exist
    /// is GROUP_ID_NOT_FOUND; older versions answer ILLEGAL_GENERATION (Kafka 4.x
    /// `OffsetMetadataManager.validateOffsetCommit`).
    pub unknown_group_not_found: bool,
    pub offsets: Vec<CommitOffset>,
}

/// TxnOffsetCommit of a transactional producer (KIP-447 member fields when it is a member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOffsetCommit {
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// -1 when the producer does not say (TxnOffsetCommit before v3).
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub offsets: Vec<CommitOffset>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResult {
    pub topic: String,
    pub partition: i32,
    pub error: ErrorCode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetch {
    pub group_id: String,
    /// `None` fetches every committed offset of the group.
    pub partitions: Option<Vec<(String, i32)>>,
    /// OffsetFetch v7+ (KIP-447): answer UNSTABLE_OFFSET_COMMIT for partitions with pending
    /// transactional offsets (staged by TxnOffsetCommit, not yet resolved by a marker).
    pub require_stable: bool,
    /// OffsetFetch v9+ (KIP-848): the fetching member of a consumer group and its epoch;
    /// `None` / -1 for a fetch from outside the group (admin tools, classic members).
    pub member_id: Option<String>,
    pub member_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchResponse {
    pub error: ErrorCode,
    pub partitions: Vec<FetchedOffset>,
}

/// `offset == -1` means nothing committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub error: ErrorCode,
}

/// DescribeGroups for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeGroup {
    pub group_id: String,
}

/// Kafka's `DescribedGroup`: an unknown group is GROUP_ID_NOT_FOUND in state `Dead` (the
/// broker maps that to a plain `Dead` group for DescribeGroups before v6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub error: ErrorCode,
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    /// The chosen protocol while Stable, empty otherwise (as Kafka).
    pub protocol_data: String,
    pub members: Vec<DescribedMember>,
}

/// Metadata and assignment are filled only while the group is Stable (as Kafka).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: bytes::Bytes,
    pub assignment: bytes::Bytes,
}

/// ListGroups filters; an empty filter matches everything. Compared case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListGroups {
    pub states: Vec<String>,
    pub types: Vec<String>,
}

/// `error` is set by the broker (e.g. a partition still loading), never by the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListGroupsResponse {
    pub error: ErrorCode,
    pub groups: Vec<ListedGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    /// Always "classic" for groups of this coordinator.
    pub group_type: String,
}

/// DeleteGroups for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteGroup {
    pub group_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDelete {
    pub group_id: String,
    pub partitions: Vec<(String, i32)>,
}

/// `error` is the whole-group error; partition errors are meaningful only when it is NONE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDeleteResponse {
    pub error: ErrorCode,
    pub partitions: Vec<PartitionResult>,
}
