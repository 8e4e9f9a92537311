//! Errors of record decoding and of applying records to an image.

/// Why bytes could not be decoded or records could not be applied.
///
/// Every variant is reachable from untrusted input (a corrupt log entry or snapshot), so
/// callers must treat it as data, never as a reason to panic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("truncated input: needed {needed} more byte(s) at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("unsupported entry format version {0}")]
    UnsupportedFormat(u8),
    #[error("unknown metadata record type {0}")]
    UnknownRecordType(u16),
    #[error("unsupported version {version} of metadata record type {record_type}")]
    UnsupportedRecordVersion { record_type: u16, version: u8 },
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("record cannot be applied: {0}")]
    InvalidRecord(String),
}

impl MetaError {
    pub(crate) fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        MetaError::Malformed {
            what,
            detail: detail.into(),
        }
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        MetaError::InvalidRecord(detail.into())
    }
}
