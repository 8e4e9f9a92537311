//! Kafka error codes the coordinator answers with, and the typed error of record decoding.

/// The subset of Kafka's error codes a group coordinator returns; `code()` is the wire value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    None,
    OffsetMetadataTooLarge,
    CoordinatorNotAvailable,
    IllegalGeneration,
    InconsistentGroupProtocol,
    InvalidGroupId,
    UnknownMemberId,
    InvalidSessionTimeout,
    RebalanceInProgress,
    MemberIdRequired,
    GroupMaxSizeReached,
    FencedInstanceId,
    InvalidRequest,
    GroupIdNotFound,
    NonEmptyGroup,
    GroupSubscribedToTopic,
    /// Retriable: the partition's groups are still being read from the log.
    CoordinatorLoadInProgress,
    /// Set by the broker when a group's records could not be appended (not by the state
    /// machine): the client rediscovers the coordinator and retries.
    NotCoordinator,
    UnknownServerError,
    UnsupportedVersion,
    /// KIP-848: the member's epoch is not the coordinator's; it must rejoin with epoch 0.
    FencedMemberEpoch,
    UnreleasedInstanceId,
    UnsupportedAssignor,
    /// KIP-848 offset commit/fetch with an epoch that is not the member's current one.
    StaleMemberEpoch,
    InvalidRegularExpression,
    /// KIP-447: OffsetFetch with `require_stable` on a partition with transactional
    /// offsets not yet committed or aborted (retriable).
    UnstableOffsetCommit,
    /// TxnOffsetCommit from an epoch older than the one the group saw (as Kafka answers).
    ProducerFenced,
    /// KIP-1071: a streams topology that cannot be right (a changelog topic with a
    /// partition count, duplicate subtopology ids, a copartition index out of range).
    StreamsInvalidTopology,
    /// KIP-1071: the topology epoch a member sent is not one the group accepts.
    StreamsInvalidTopologyEpoch,
    /// KIP-1071: the member's topology epoch is older than the group's.
    StreamsTopologyFenced,
}

impl ErrorCode {
    /// The numeric code Kafka puts on the wire.
    pub fn code(self) -> i16 {
        match self {
            ErrorCode::None => 0,
            ErrorCode::OffsetMetadataTooLarge => 12,
            ErrorCode::CoordinatorNotAvailable => 15,
            ErrorCode::IllegalGeneration => 22,
            ErrorCode::InconsistentGroupProtocol => 23,
            ErrorCode::InvalidGroupId => 24,
            ErrorCode::UnknownMemberId => 25,
            ErrorCode::InvalidSessionTimeout => 26,
            ErrorCode::RebalanceInProgress => 27,
            ErrorCode::MemberIdRequired => 79,
            ErrorCode::GroupMaxSizeReached => 81,
            ErrorCode::FencedInstanceId => 82,
            ErrorCode::InvalidRequest => 42,
            ErrorCode::NotCoordinator => 16,
            ErrorCode::UnknownServerError => -1,
            ErrorCode::UnsupportedVersion => 35,
            ErrorCode::FencedMemberEpoch => 110,
            ErrorCode::UnreleasedInstanceId => 111,
            ErrorCode::UnsupportedAssignor => 112,
            ErrorCode::StaleMemberEpoch => 113,
            ErrorCode::InvalidRegularExpression => 128,
            ErrorCode::UnstableOffsetCommit => 88,
            ErrorCode::ProducerFenced => 90,
            ErrorCode::GroupIdNotFound => 69,
            ErrorCode::NonEmptyGroup => 68,
            ErrorCode::GroupSubscribedToTopic => 86,
            ErrorCode::CoordinatorLoadInProgress => 14,
            ErrorCode::StreamsInvalidTopology => 130,
            ErrorCode::StreamsInvalidTopologyEpoch => 131,
            ErrorCode::StreamsTopologyFenced => 132,
        }
    }
}

/// A `__consumer_offsets` record that cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record truncated: needed {needed_bytes} more bytes while reading {field}")]
    Truncated {
        field: &'static str,
        needed_bytes: usize,
    },
    #[error("invalid length {length} for {field}")]
    InvalidLength { field: &'static str, length: i64 },
    #[error("field {field} is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion { what: &'static str, version: i16 },
    #[error("{trailing_bytes} unexpected bytes after {what}")]
    TrailingBytes {
        what: &'static str,
        trailing_bytes: usize,
    },
    #[error("string field {field} is {length} bytes, longer than the 32767 a record allows")]
    StringTooLong { field: &'static str, length: usize },
}
