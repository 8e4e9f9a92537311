//! The log's error type and its mapping to Kafka error codes.

use std::path::{Path, PathBuf};

use strom_records::RecordsError;

use crate::record_errors::RecordErrors;

/// Kafka error codes the log's errors map to.
pub mod codes {
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const INVALID_TIMESTAMP: i16 = 32;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const INVALID_RECORD: i16 = 87;
}

/// Why a log operation failed.
#[derive(thiserror::Error, Debug)]
pub enum LogError {
    /// A batch in an append failed validation; `batch_index` counts from 0 in the request.
    #[error("batch {batch_index} rejected: {source}")]
    InvalidBatch {
        batch_index: usize,
        #[source]
        source: RecordsError,
    },
    #[error("an append must hold at least one batch")]
    EmptyAppend,
    #[error("append of {size_bytes} bytes exceeds {limit_bytes} bytes")]
    AppendTooLarge { size_bytes: u64, limit_bytes: u64 },
    /// A batch header's timestamp outside `message.timestamp.before.max.ms`/`after.max.ms`.
    #[error(
        "batch {batch_index} timestamp {timestamp_ms} is outside the accepted range around {now_ms} (message.timestamp.before.max.ms/after.max.ms)"
    )]
    InvalidTimestamp {
        batch_index: usize,
        timestamp_ms: i64,
        now_ms: i64,
    },
    /// Records of a batch refused by Kafka's per-record rules (a key on a compacted topic,
    /// each CreateTime timestamp in range): the whole batch is refused, and the Produce
    /// response lists the records (`record_errors`).
    #[error("batch {batch_index}: {errors}")]
    RecordsRejected {
        batch_index: usize,
        errors: RecordErrors,
    },
    /// A replicated batch does not follow the log end offset.
    #[error(
        "replicated batch at offset {base_offset} does not follow log end offset {log_end_offset}"
    )]
    UnexpectedAppendOffset {
        base_offset: i64,
        log_end_offset: i64,
    },
    /// A leader's batch of an epoch older than one already in the log.
    #[error(
        "batch of leader epoch {epoch} after epoch {latest}: this broker is no longer the leader"
    )]
    StaleLeaderEpoch { epoch: i32, latest: i32 },
    #[error("offset {offset} is outside the log's range {log_start_offset}..={log_end_offset}")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("{operation} {path}: {source}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Data on disk that recovery would have caught, met while serving a read.
    #[error("corrupt segment {path} at byte {position}: {reason}")]
    CorruptSegment {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// Damage found while opening a log that an interrupted write cannot explain (see
    /// `log/recover.rs`): the log does not open, and recovery cut, deleted and rewrote
    /// nothing.
    #[error(
        "damaged partition log file {path} at byte {position} ({}): {reason}. {}",
        around(*offset_before, *offset_after),
        damage_advice(path.parent().unwrap_or(path))
    )]
    Damaged {
        /// The damaged `.log` file.
        path: PathBuf,
        /// Where in it the damage starts (the first byte that is not an intact batch).
        position: u64,
        /// The last offset of the intact batch before the damage, if there is one.
        offset_before: Option<i64>,
        /// The first offset of an intact batch found after the damage, if there is one.
        offset_after: Option<i64>,
        /// What is wrong and why it cannot be an interrupted write.
        reason: String,
    },
    /// An earlier I/O failure (typically a failed fsync) failed the log: it takes no more
    /// writes and serves reads only below its durable offset; nothing is retried, the
    /// directory must be reopened (after the operator checks the disk).
    #[error("log {dir} takes no more writes after an earlier failure (reads continue below the last successful fsync; check the disk, then restart the broker): {reason}")]
    Failed { dir: PathBuf, reason: String },
    /// A write found the disk full: the log is read-only (reads go on) until
    /// [`crate::Log::try_resume`] finds space again.
    #[error("log {dir} is read-only because the disk is full; free space (or raise the quota) and appends resume without a restart: {reason}")]
    DiskFull { dir: PathBuf, reason: String },
    #[error("log {dir} is closed")]
    Closed { dir: PathBuf },
    #[error("invalid log config: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// A segment's `.txnindex` that does not fit its segment, found at open: the log does
    /// not open (as for [`LogError::Damaged`]), nothing is changed.
    #[error("{0}")]
    TxnIndex(#[from] crate::txn_index::TxnIndexError),
}

impl LogError {
    /// The Kafka error code a broker returns for this error.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            LogError::InvalidBatch { source, .. } => source.kafka_error_code(),
            LogError::EmptyAppend => codes::CORRUPT_MESSAGE,
            LogError::AppendTooLarge { .. } => codes::MESSAGE_TOO_LARGE,
            LogError::InvalidTimestamp { .. } => codes::INVALID_TIMESTAMP,
            LogError::RecordsRejected { errors, .. } => errors.kafka_error_code(),
            LogError::UnexpectedAppendOffset { .. } => codes::CORRUPT_MESSAGE,
            LogError::OffsetOutOfRange { .. } => codes::OFFSET_OUT_OF_RANGE,
            LogError::StaleLeaderEpoch { .. } => codes::NOT_LEADER_OR_FOLLOWER,
            LogError::Io { .. }
            | LogError::CorruptSegment { .. }
            | LogError::Damaged { .. }
            | LogError::Failed { .. }
            | LogError::DiskFull { .. }
            | LogError::Closed { .. }
            | LogError::Config(_)
            | LogError::TxnIndex(_) => codes::KAFKA_STORAGE_ERROR,
        }
    }

    /// Whether this is damage found at open ([`LogError::Damaged`], a damaged
    /// `.txnindex`): reopening finds it again until an operator acts on the directory.
    pub fn is_damage(&self) -> bool {
        matches!(self, LogError::Damaged { .. } | LogError::TxnIndex(_))
    }

    /// A *write* (not an fsync) failed for want of space (`ENOSPC`, `EDQUOT`), or the log is
    /// read-only for that reason. After such a write the durable state is known; after a
    /// failed fsync it is not, whatever the errno (ext4 may answer `ENOSPC` to an fsync when
    /// delayed allocation finds no room, and the data is then lost).
    pub fn is_space_error(&self) -> bool {
        match self {
            LogError::Io {
                operation, source, ..
            } => !operation.starts_with("fsync") && crate::fs::is_space_error(source),
            LogError::DiskFull { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> LogError {
        LogError::Io {
            operation,
            path: path.into(),
            source,
        }
    }
}

/// Where damage lies relative to the intact batches around it, for messages.
fn around(before: Option<i64>, after: Option<i64>) -> String {
    match (before, after) {
        (Some(b), Some(a)) => format!("after offset {b}, before offset {a}"),
        (Some(b), None) => format!("after offset {b}"),
        (None, Some(a)) => format!("at the start of the segment, before offset {a}"),
        (None, None) => "at the start of the segment".into(),
    }
}

/// What an operator can do about a damaged partition directory `dir` (docs/FORMATS.md, "A
/// damaged partition log"); ends every [`LogError::Damaged`] message.
pub fn damage_advice(dir: &Path) -> String {
    let shown = dir.display();
    format!(
        "Strom did not open this partition and cut or deleted nothing in {shown}: guessing \
         where the damage ends could lose acknowledged records. The broker keeps serving its other \
         partitions; clients get KAFKA_STORAGE_ERROR for this one. To recover: {}. Without \
         either, \"A damaged partition log\" in docs/FORMATS.md shows how to keep the records \
         before the damage",
        restore_advice(dir)
    )
}

/// How to get an intact copy of a damaged partition directory `dir` back (from an in-sync
/// replica, or a backup): shared by damage found at open ([`damage_advice`]) and by the
/// scrubber (`ScrubDamage::advice`).
pub fn restore_advice(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        "when other replicas of the partition are in sync (its ISR, e.g. `strom topics \
         describe`): stop Strom, move {dir} aside (rename it; keep it) and start Strom: the \
         broker copies the partition again from the leader. Otherwise stop Strom, restore \
         {dir} from a backup taken while Strom was stopped, and start Strom (records written \
         after the backup are lost)"
    )
}
