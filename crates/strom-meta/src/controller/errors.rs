//! Kafka error codes the controller answers with, per item or for a whole request.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The Kafka error codes the controller produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    UnknownServerError,
    UnknownTopicOrPartition,
    InvalidTopicException,
    TopicAlreadyExists,
    InvalidPartitions,
    InvalidReplicationFactor,
    InvalidReplicaAssignment,
    InvalidConfig,
    NotController,
    InvalidRequest,
    PolicyViolation,
    TopicDeletionDisabled,
    FencedLeaderEpoch,
    StaleBrokerEpoch,
    UnknownTopicId,
    DuplicateBrokerRegistration,
    BrokerIdNotRegistered,
    IneligibleReplica,
    InvalidUpdateVersion,
    PreferredLeaderNotAvailable,
    EligibleLeadersNotAvailable,
    ElectionNotNeeded,
    UnsupportedSaslMechanism,
    ResourceNotFound,
    DuplicateResource,
    UnacceptableCredential,
    NoReassignmentInProgress,
    DelegationTokenNotFound,
    DelegationTokenOwnerMismatch,
    DelegationTokenExpired,
    InvalidPrincipalType,
}

impl ErrorCode {
    /// The code on the wire.
    pub fn code(self) -> i16 {
        match self {
            ErrorCode::UnknownServerError => -1,
            ErrorCode::UnknownTopicOrPartition => 3,
            ErrorCode::InvalidTopicException => 17,
            ErrorCode::TopicAlreadyExists => 36,
            ErrorCode::InvalidPartitions => 37,
            ErrorCode::InvalidReplicationFactor => 38,
            ErrorCode::InvalidReplicaAssignment => 39,
            ErrorCode::InvalidConfig => 40,
            ErrorCode::NotController => 41,
            ErrorCode::InvalidRequest => 42,
            ErrorCode::PolicyViolation => 44,
            ErrorCode::TopicDeletionDisabled => 73,
            ErrorCode::FencedLeaderEpoch => 74,
            ErrorCode::StaleBrokerEpoch => 77,
            ErrorCode::UnknownTopicId => 100,
            ErrorCode::DuplicateBrokerRegistration => 101,
            ErrorCode::BrokerIdNotRegistered => 102,
            ErrorCode::IneligibleReplica => 107,
            ErrorCode::InvalidUpdateVersion => 95,
            ErrorCode::PreferredLeaderNotAvailable => 80,
            ErrorCode::EligibleLeadersNotAvailable => 83,
            ErrorCode::ElectionNotNeeded => 84,
            ErrorCode::UnsupportedSaslMechanism => 33,
            ErrorCode::ResourceNotFound => 91,
            ErrorCode::DuplicateResource => 92,
            ErrorCode::UnacceptableCredential => 93,
            ErrorCode::NoReassignmentInProgress => 85,
            ErrorCode::DelegationTokenNotFound => 62,
            ErrorCode::DelegationTokenOwnerMismatch => 63,
            ErrorCode::DelegationTokenExpired => 66,
            ErrorCode::InvalidPrincipalType => 67,
        }
    }
}

/// A Kafka error code with the message a real broker would put next to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} ({}): {}",
            self.code,
            self.code.code(),
            self.message
        )
    }
}

/// A request refused as a whole (its response has one top-level error code).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ControllerError(pub ApiError);

impl ControllerError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ControllerError(ApiError::new(code, message))
    }

    pub fn code(&self) -> ErrorCode {
        self.0.code
    }
}

impl From<ApiError> for ControllerError {
    fn from(e: ApiError) -> Self {
        ControllerError(e)
    }
}
