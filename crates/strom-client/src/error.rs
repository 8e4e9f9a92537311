//! The one error type of the client: broker error codes by Kafka name, I/O, timeouts.

use strom_protocol::ErrorCode;

/// Everything a client call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The broker answered with a Kafka error code.
    #[error("{context}: {name} ({code}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        /// Kafka's numeric error code.
        code: i16,
        /// Kafka's name for the code (`UNKNOWN_TOPIC_OR_PARTITION`).
        name: &'static str,
        /// The broker's error message, when it sent one.
        message: Option<String>,
        /// What the client was doing (`create topic orders`).
        context: String,
    },
    /// The cluster's metadata has no such topic (or partition). Not retried by admin
    /// calls; the producer waits up to `max.block.ms` for auto-creation.
    #[error("UNKNOWN_TOPIC_OR_PARTITION (3): {what} does not exist")]
    UnknownTopic {
        /// The topic or `topic-partition`.
        what: String,
    },
    /// Connecting to or talking to a broker failed at the socket level.
    #[error("connection to {addr} failed: {reason}")]
    Io {
        /// `host:port` of the broker.
        addr: String,
        /// The operating system's error.
        reason: String,
    },
    /// The connection closed while a request was outstanding.
    #[error("connection to {addr} closed")]
    Disconnected {
        /// `host:port` of the broker.
        addr: String,
    },
    /// No response within the request timeout.
    #[error("{what} timed out after {timeout_ms} ms")]
    Timeout {
        /// The request or operation that timed out.
        what: String,
        /// The timeout that expired.
        timeout_ms: u64,
    },
    /// The broker does not serve a version of the API this client can speak.
    #[error("broker {addr} does not support {api} in any version this client speaks")]
    UnsupportedApi {
        /// `host:port` of the broker.
        addr: String,
        /// The API name (`Produce`).
        api: String,
    },
    /// TLS or SASL authentication was refused (wrong password, mechanism not enabled).
    /// Not retried: the same credentials fail the same way.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// The broker sent bytes this client cannot decode.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A configuration property is missing or invalid.
    #[error("invalid configuration {key}: {reason}")]
    Config {
        /// Kafka's property name (`linger.ms`).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The caller asked for something that cannot work (bad argument, unknown partition).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No bootstrap server could be reached.
    #[error("no broker reachable (bootstrap.servers = {0})")]
    NoBrokerAvailable(String),
    /// The producer's or consumer's buffer is full and stayed full for `max.block.ms`.
    #[error("buffer full for {max_block_ms} ms")]
    BufferFull {
        /// The configured wait.
        max_block_ms: u64,
    },
    /// The producer or consumer was closed.
    #[error("client closed")]
    Closed,
    /// A record batch could not be built or parsed.
    #[error("record batch: {0}")]
    Records(String),
    /// A transactional call made in the wrong state (Java's `IllegalStateException`):
    /// `send` outside a transaction, `begin_transaction` twice, anything after a fatal
    /// error.
    #[error("transaction state: {0}")]
    TransactionState(String),
}

/// Kafka's error codes whose cure is fresher metadata (the leader moved or is unknown).
const METADATA_CODES: [ErrorCode; 5] = [
    ErrorCode::NOT_LEADER_OR_FOLLOWER,
    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
    ErrorCode::LEADER_NOT_AVAILABLE,
    ErrorCode::FENCED_LEADER_EPOCH,
    ErrorCode::UNKNOWN_LEADER_EPOCH,
];

/// Kafka's error codes that mean "ask FindCoordinator again".
const COORDINATOR_CODES: [ErrorCode; 3] = [
    ErrorCode::NOT_COORDINATOR,
    ErrorCode::COORDINATOR_NOT_AVAILABLE,
    ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
];

/// Kafka's error codes that are fatal to a transactional producer.
const FATAL_TXN_CODES: [ErrorCode; 5] = [
    ErrorCode::PRODUCER_FENCED,
    ErrorCode::INVALID_PRODUCER_EPOCH,
    ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    ErrorCode::INVALID_TXN_STATE,
    ErrorCode::INVALID_PRODUCER_ID_MAPPING,
];

impl ClientError {
    /// A broker error for `code`; `None` when `code` is 0 (success).
    pub fn from_code(
        code: i16,
        message: Option<String>,
        context: impl Into<String>,
    ) -> Option<Self> {
        if code == 0 {
            return None;
        }
        Some(ClientError::Broker {
            code,
            name: ErrorCode(code).name().unwrap_or("UNKNOWN_ERROR_CODE"),
            message,
            context: context.into(),
        })
    }

    /// `Err` for a non-zero code, `Ok(())` for success.
    pub fn check(
        code: i16,
        message: Option<String>,
        context: impl Into<String>,
    ) -> Result<(), Self> {
        match Self::from_code(code, message, context) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Whether repeating the same call may succeed (Kafka's retriable errors, timeouts,
    /// dropped connections).
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => ErrorCode(*code).is_retriable(),
            ClientError::Io { .. }
            | ClientError::Disconnected { .. }
            | ClientError::Timeout { .. }
            | ClientError::NoBrokerAvailable(_) => true,
            _ => false,
        }
    }

    /// Whether the metadata cache should be refreshed before retrying.
    pub fn needs_metadata_refresh(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => METADATA_CODES.contains(&ErrorCode(*code)),
            ClientError::Io { .. } | ClientError::Disconnected { .. } => true,
            _ => false,
        }
    }

    /// Whether the group coordinator should be looked up again before retrying.
    pub fn needs_coordinator_refresh(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => COORDINATOR_CODES.contains(&ErrorCode(*code)),
            ClientError::Io { .. } | ClientError::Disconnected { .. } => true,
            _ => false,
        }
    }

    /// Whether this error ends a transactional producer for good, as Kafka's Java producer
    /// classifies it: fenced by a newer producer with the same `transactional.id`
    /// (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH), not authorised for the id, or a state
    /// the coordinator refuses. Everything else is abortable: abort the transaction and
    /// go on.
    pub fn is_fatal_for_transaction(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => FATAL_TXN_CODES.contains(&ErrorCode(*code)),
            ClientError::Authentication(_)
            | ClientError::UnsupportedApi { .. }
            | ClientError::Config { .. } => true,
            _ => false,
        }
    }

    /// Kafka's numeric error code when the broker sent one.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            ClientError::UnknownTopic { .. } => Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()),
            _ => None,
        }
    }

    /// Kafka's error name (`UNKNOWN_TOPIC_OR_PARTITION`) when the broker sent one.
    pub fn kafka_name(&self) -> Option<&'static str> {
        match self {
            ClientError::Broker { name, .. } => Some(name),
            ClientError::UnknownTopic { .. } => Some("UNKNOWN_TOPIC_OR_PARTITION"),
            _ => None,
        }
    }
}

impl From<strom_records::RecordsError> for ClientError {
    fn from(e: strom_records::RecordsError) -> Self {
        ClientError::Records(e.to_string())
    }
}

/// The client's result type.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_errors_carry_kafka_names_and_retriability() {
        let e = ClientError::from_code(3, None, "produce t-0").unwrap();
        assert_eq!(e.kafka_name(), Some("UNKNOWN_TOPIC_OR_PARTITION"));
        assert!(e.is_retriable());
        assert!(e.needs_metadata_refresh());
        assert_eq!(e.to_string(), "produce t-0: UNKNOWN_TOPIC_OR_PARTITION (3)");
        let e = ClientError::from_code(36, Some("exists".into()), "create topic t").unwrap();
        assert!(!e.is_retriable());
        assert_eq!(
            e.to_string(),
            "create topic t: TOPIC_ALREADY_EXISTS (36): exists"
        );
        assert!(ClientError::from_code(0, None, "x").is_none());
    }
}
