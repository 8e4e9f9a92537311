//! The one error type of Strom Streams.

use strom_client::ClientError;

/// Everything building a topology, processing records or running an application can fail
/// with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StreamsError {
    /// A Kafka client call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A record could not be serialized or deserialized.
    #[error("serde of {what}: {reason}")]
    Serde {
        /// Topic, store or operator whose bytes did not convert.
        what: String,
        reason: String,
    },
    /// The topology is not valid (a missing serde, an unknown store, two topics that
    /// must be co-partitioned but are not).
    #[error("topology: {0}")]
    Topology(String),
    /// A state store failed.
    #[error("state store {store}: {reason}")]
    Store { store: String, reason: String },
    /// A configuration value is missing or invalid.
    #[error("invalid configuration {key}: {reason}")]
    Config { key: String, reason: String },
    /// Something this build cannot do yet.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Local file I/O (state directory, checkpoint files) failed.
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    /// User code in an operator reported an error.
    #[error("processor {node}: {reason}")]
    Processing { node: String, reason: String },
    /// The application is not running (not started, closed or failed).
    #[error("application is {0}")]
    NotRunning(String),
    /// Source topics of the topology do not exist (Kafka Streams'
    /// `MissingSourceTopicException`): the streams group reported them missing for longer
    /// than `max.poll.interval.ms`. Create them, then start the application again.
    #[error("missing source topics: {0}")]
    MissingSourceTopics(String),
    /// The streams group asked every instance of the application to shut down (an
    /// instance requested it; KIP-1071's SHUTDOWN_APPLICATION status).
    #[error("the streams group asked the application to shut down: {0}")]
    ApplicationShutdown(String),
    /// A state store was asked for that this instance does not host (yet).
    #[error("store {0} is not available on this instance (not hosted, restoring or rebalancing)")]
    StoreUnavailable(String),
}

impl StreamsError {
    pub(crate) fn store(store: &str, reason: impl std::fmt::Display) -> Self {
        StreamsError::Store {
            store: store.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        StreamsError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }

    pub(crate) fn config(key: &str, reason: impl std::fmt::Display) -> Self {
        StreamsError::Config {
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Strom Streams' result type.
pub type Result<T, E = StreamsError> = std::result::Result<T, E>;
