//! The registry's errors as Confluent's REST API reports them: an HTTP status and a body
//! `{"error_code": N, "message": "..."}` whose codes clients match on (40401 subject not
//! found, 42201 invalid schema, 409 incompatible, 50001 store error, ...).

use serde_json::json;

/// Confluent's error codes (`Errors.java` of its registry).
pub mod code {
    pub const SUBJECT_NOT_FOUND: u32 = 40401;
    pub const VERSION_NOT_FOUND: u32 = 40402;
    pub const SCHEMA_NOT_FOUND: u32 = 40403;
    pub const SUBJECT_SOFT_DELETED: u32 = 40404;
    pub const SUBJECT_NOT_SOFT_DELETED: u32 = 40405;
    pub const VERSION_SOFT_DELETED: u32 = 40406;
    pub const VERSION_NOT_SOFT_DELETED: u32 = 40407;
    pub const SUBJECT_COMPATIBILITY_NOT_CONFIGURED: u32 = 40408;
    pub const SUBJECT_MODE_NOT_CONFIGURED: u32 = 40409;
    /// Incompatible schema: HTTP 409 (Confluent's registry before 7.x put 409 itself here).
    pub const INCOMPATIBLE_SCHEMA: u32 = 40901;
    pub const INVALID_SCHEMA: u32 = 42201;
    pub const INVALID_VERSION: u32 = 42202;
    pub const INVALID_COMPATIBILITY_LEVEL: u32 = 42203;
    pub const INVALID_MODE: u32 = 42204;
    pub const OPERATION_NOT_PERMITTED: u32 = 42205;
    pub const REFERENCE_EXISTS: u32 = 42206;
    pub const ID_DOES_NOT_MATCH: u32 = 42207;
    pub const INVALID_SUBJECT: u32 = 42208;
    pub const SCHEMA_TOO_LARGE: u32 = 42209;
    pub const STORE: u32 = 50001;
    pub const OPERATION_TIMEOUT: u32 = 50002;
    pub const REQUEST_FORWARDING_FAILED: u32 = 50003;
    pub const UNKNOWN_LEADER: u32 = 50004;
}

/// One failed request: what the client gets back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (error code {error_code})")]
pub struct RestError {
    /// The HTTP status.
    pub status: u16,
    /// Confluent's error code.
    pub error_code: u32,
    pub message: String,
}

impl RestError {
    /// An error whose HTTP status is the first three digits of its code (40401 -> 404).
    pub fn new(error_code: u32, message: impl Into<String>) -> RestError {
        let status = if error_code >= 10_000 {
            error_code / 100
        } else {
            error_code
        };
        RestError {
            status: u16::try_from(status).unwrap_or(500),
            error_code,
            message: message.into(),
        }
    }

    /// A plain HTTP error (`{"error_code": 404, ...}`), as Confluent's REST layer gives for
    /// unknown paths, bad JSON and oversized bodies.
    pub fn http(status: u16, message: impl Into<String>) -> RestError {
        RestError {
            status,
            error_code: u32::from(status),
            message: message.into(),
        }
    }

    pub fn subject_not_found(subject: &str) -> RestError {
        RestError::new(
            code::SUBJECT_NOT_FOUND,
            format!("Subject '{subject}' not found."),
        )
    }

    pub fn version_not_found(version: impl std::fmt::Display) -> RestError {
        RestError::new(
            code::VERSION_NOT_FOUND,
            format!("Version {version} not found."),
        )
    }

    pub fn schema_not_found() -> RestError {
        RestError::new(code::SCHEMA_NOT_FOUND, "Schema not found")
    }

    pub fn schema_id_not_found(id: i32) -> RestError {
        RestError::new(code::SCHEMA_NOT_FOUND, format!("Schema {id} not found"))
    }

    pub fn invalid_schema(reason: impl std::fmt::Display) -> RestError {
        RestError::new(code::INVALID_SCHEMA, format!("Invalid schema: {reason}"))
    }

    pub fn invalid_version(version: &str) -> RestError {
        RestError::new(
            code::INVALID_VERSION,
            format!(
                "The specified version '{version}' is not a valid version id. Allowed values are \
                 between [1, 2^31-1] and the string \"latest\""
            ),
        )
    }

    pub fn store(message: impl std::fmt::Display) -> RestError {
        RestError::new(
            code::STORE,
            format!("Error in the backend data store: {message}"),
        )
    }

    pub fn timeout(message: impl std::fmt::Display) -> RestError {
        RestError::new(code::OPERATION_TIMEOUT, message.to_string())
    }

    pub fn not_permitted(message: impl Into<String>) -> RestError {
        RestError::new(code::OPERATION_NOT_PERMITTED, message)
    }

    pub fn incompatible(subject: &str, messages: &[String]) -> RestError {
        RestError::new(
            code::INCOMPATIBLE_SCHEMA,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject \
                 \"{subject}\", details: [{}]",
                messages.join(", ")
            ),
        )
    }

    /// The response body.
    pub fn body(&self) -> String {
        json!({"error_code": self.error_code, "message": self.message}).to_string()
    }
}

/// Why the registry could not start or keep running (not a request's error).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("configuration {key}: {reason}")]
    Config { key: String, reason: String },
    #[error("kafka store (topic {topic}): {source}")]
    Kafka {
        topic: String,
        #[source]
        source: strom_client::ClientError,
    },
    #[error("kafka store (topic {topic}): {reason}")]
    Store { topic: String, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_code() {
        assert_eq!(RestError::subject_not_found("a").status, 404);
        assert_eq!(RestError::invalid_schema("x").status, 422);
        assert_eq!(RestError::incompatible("s", &[]).status, 409);
        assert_eq!(RestError::store("x").status, 500);
        assert_eq!(
            RestError::subject_not_found("a").body(),
            r#"{"error_code":40401,"message":"Subject 'a' not found."}"#
        );
    }
}
