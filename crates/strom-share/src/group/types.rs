//! Inputs and outputs of the share group coordinator: its settings, the commands mapped
//! from ShareGroupHeartbeat, ShareGroupDescribe, ListGroups and DeleteGroups, and their
//! responses.

use std::collections::BTreeSet;
use std::sync::Arc;

use strom_group::consumer::{Assignment, TopicId, Topics};
use strom_group::ErrorCode;

/// The group type and protocol type Kafka reports for share groups (ListGroups,
/// DescribeGroups).
pub const SHARE_GROUP_TYPE: &str = "share";

/// Broker settings of share groups (Kafka's `group.share.*` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareConfig {
    /// `group.share.session.timeout.ms`
    pub session_timeout_ms: i32,
    /// `group.share.heartbeat.interval.ms`
    pub heartbeat_interval_ms: i32,
    /// `group.share.max.size`
    pub max_size: usize,
    /// `group.share.initialize.retry.interval.ms`: how long share partitions stay
    /// initializing (their InitializeShareGroupState sent, its outcome not recorded) before
    /// a heartbeat asks for them again.
    pub initialize_retry_interval_ms: i64,
}

impl Default for ShareConfig {
    fn default() -> Self {
        ShareConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: 200,
            initialize_retry_interval_ms: 30_000,
        }
    }
}

/// Share partitions whose durable state the broker is to initialize through the persister
/// (InitializeShareGroupState at `state_epoch` with start offset -1, so that the share
/// partition resolves `share.auto.offset.reset` at its first fetch, as Kafka), reporting
/// the outcome with [`ShareCommand::Initialized`] / [`ShareCommand::Uninitialized`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitializeJob {
    pub group_id: String,
    pub state_epoch: i32,
    pub partitions: Assignment,
}

/// Per topic of a DeleteShareGroupOffsets: the partitions whose state to delete, `None`
/// when the group has none recorded for it.
pub type OffsetsToDelete = Vec<(TopicId, Option<BTreeSet<i32>>)>;

/// The share partitions whose state a deletion is to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateToDelete {
    /// As the group's state partition metadata (record type 15) lists them.
    Partitions(Assignment),
    /// The group has no such record (state written by a Strom before it kept one): every
    /// partition of the topics concerned may have state.
    Unrecorded,
}

/// ShareGroupHeartbeat (v1), with the connection's client id and host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareHeartbeat {
    pub group_id: String,
    /// Chosen by the client (a UUID) from version 1 on.
    pub member_id: String,
    /// 0 joins, -1 leaves, otherwise the epoch the coordinator last gave the member.
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    /// `None` when unchanged since the last heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
    /// The cluster's topics now (ids, names, partition counts).
    pub topics: Arc<Topics>,
    /// The group's `share.session.timeout.ms` config, `None` for the broker's.
    pub session_timeout_ms: Option<i32>,
    /// The group's `share.heartbeat.interval.ms` config, `None` for the broker's.
    pub heartbeat_interval_ms: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareHeartbeatResponse {
    pub error: Option<ShareError>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Sent when the member joins and whenever its assigned partitions change.
    pub assignment: Option<Assignment>,
    /// Share partitions to initialize (taken by the runtime, never sent to the member).
    pub initialize: Option<InitializeJob>,
}

impl ShareHeartbeatResponse {
    pub fn error(error: ShareError) -> Self {
        ShareHeartbeatResponse {
            error: Some(error),
            member_id: None,
            member_epoch: 0,
            heartbeat_interval_ms: 0,
            assignment: None,
            initialize: None,
        }
    }
}

/// A Kafka error with its message, as the share group responses carry both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareError {
    pub code: ErrorCode,
    pub message: String,
}

impl ShareError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ShareError {
            code,
            message: message.into(),
        }
    }
}

/// ShareGroupDescribe (v1) for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedShareGroup {
    pub group_id: String,
    pub error: Option<ShareError>,
    /// "Empty" or "Stable" ("Dead" with an error).
    pub state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// Kafka's share groups have one assignor, "simple".
    pub assignor_name: String,
    pub members: Vec<DescribedShareMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedShareMember {
    pub member_id: String,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: BTreeSet<String>,
    pub assignment: Assignment,
}

/// One share group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedShareGroup {
    pub group_id: String,
    /// "Empty" or "Stable".
    pub state: String,
}

/// A command for the share groups of one `__consumer_offsets` partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareCommand {
    Heartbeat(ShareHeartbeat),
    /// ShareGroupDescribe of these groups, naming topics from this view.
    Describe {
        group_ids: Vec<String>,
        topics: Arc<Topics>,
    },
    /// ListGroups: every share group of the partition.
    List,
    /// DeleteGroups of one group: only an empty share group is deleted (after
    /// [`ShareCommand::PrepareDelete`] and the state deletes it named).
    Delete(String),
    /// DeleteGroups, first step: an empty share group's share partitions move to deleting
    /// (record type 15) and are named for the persister's DeleteShareGroupState.
    PrepareDelete(String),
    /// DeleteShareGroupOffsets, first step: these topics' initialized share partitions move
    /// to deleting and are named for DeleteShareGroupState; `topics` names them.
    PrepareDeleteOffsets {
        group_id: String,
        topic_ids: Vec<TopicId>,
        topics: Arc<Topics>,
    },
    /// DeleteShareGroupOffsets, last step: the state of these topics is deleted.
    DeletedOffsets {
        group_id: String,
        topic_ids: Vec<TopicId>,
    },
    /// The persister initialized these share partitions (after a heartbeat's
    /// [`InitializeJob`], or AlterShareGroupOffsets); `topics` names them.
    Initialized {
        group_id: String,
        partitions: Assignment,
        topics: Arc<Topics>,
        /// An [`InitializeJob`]'s answer: only partitions still initializing move (a job
        /// that finishes after DeleteGroups, or after its partitions moved to deleting,
        /// records nothing). False for AlterShareGroupOffsets, which records what it wrote.
        job: bool,
    },
    /// The persister failed to initialize these: the next heartbeat asks again.
    Uninitialized {
        group_id: String,
        partitions: Assignment,
    },
    /// The share partitions with initialized state (DescribeShareGroupOffsets of all).
    StatePartitions(String),
    /// Whether AlterShareGroupOffsets (`create`) or DeleteShareGroupOffsets may change
    /// `group_id`'s offsets, as Kafka 4.2's group coordinator decides: a group with members
    /// is NON_EMPTY_GROUP; an unknown id is GROUP_ID_NOT_FOUND for a delete, and for an
    /// alter becomes an empty share group (KAFKA-19662: offsets may be set before the group
    /// is first used) once the altered partitions are recorded (`Initialized`). The group
    /// coordinator refuses an id of another group type before this (GROUP_ID_NOT_FOUND).
    OffsetsAdmin {
        group_id: String,
        create: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareResponse {
    Heartbeat(ShareHeartbeatResponse),
    Describe(Vec<DescribedShareGroup>),
    List(Vec<ListedShareGroup>),
    /// `Ok(true)`: deleted; `Ok(false)`: no share group of that id (the caller asks the
    /// consumer-group coordinator); `Err`: a share group that cannot be deleted.
    Delete(Result<bool, ErrorCode>),
    /// `Ok(None)`: no share group of that id; `Ok(Some)`: the state to delete.
    PrepareDelete(Result<Option<StateToDelete>, ErrorCode>),
    /// Per topic asked for: the partitions whose state to delete, `None` when the group has
    /// none recorded (UNKNOWN_TOPIC_OR_PARTITION).
    PrepareDeleteOffsets(Result<OffsetsToDelete, ErrorCode>),
    /// `None`: the group has no state partition metadata record.
    StatePartitions(Option<Assignment>),
    /// A command that only records (Initialized, Uninitialized, DeletedOffsets).
    Done(Result<(), ErrorCode>),
    /// [`ShareCommand::OffsetsAdmin`]: the refusal, with Kafka's message.
    OffsetsAdmin(Result<(), ShareError>),
}

impl ShareResponse {
    /// The same kind of response carrying a whole-request error (the coordinator is not
    /// here, a write timed out).
    pub fn with_error(&self, code: ErrorCode) -> ShareResponse {
        match self {
            ShareResponse::Heartbeat(_) => ShareResponse::Heartbeat(ShareHeartbeatResponse::error(
                ShareError::new(code, String::new()),
            )),
            ShareResponse::Describe(groups) => ShareResponse::Describe(
                groups
                    .iter()
                    .map(|g| DescribedShareGroup::error(&g.group_id, code, ""))
                    .collect(),
            ),
            ShareResponse::List(_) => ShareResponse::List(Vec::new()),
            ShareResponse::Delete(_) => ShareResponse::Delete(Err(code)),
            ShareResponse::PrepareDelete(_) => ShareResponse::PrepareDelete(Err(code)),
            ShareResponse::PrepareDeleteOffsets(_) => {
                ShareResponse::PrepareDeleteOffsets(Err(code))
            }
            ShareResponse::StatePartitions(_) | ShareResponse::Done(_) => {
                ShareResponse::Done(Err(code))
            }
            ShareResponse::OffsetsAdmin(_) => {
                ShareResponse::OffsetsAdmin(Err(ShareError::new(code, String::new())))
            }
        }
    }
}

impl DescribedShareGroup {
    pub fn error(group_id: &str, code: ErrorCode, message: &str) -> Self {
        DescribedShareGroup {
            group_id: group_id.to_owned(),
            error: Some(ShareError::new(code, message)),
            state: "Dead".to_owned(),
            group_epoch: -1,
            assignment_epoch: -1,
            assignor_name: String::new(),
            members: Vec::new(),
        }
    }
}
