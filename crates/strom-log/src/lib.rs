//! strom-log: a partition's log on disk. Segments of RecordBatch v2 bytes exactly as
//! producers sent them, Kafka's sparse offset and time indexes, append with validation and
//! offset assignment, reads as file ranges, recovery after a crash, retention, truncation,
//! compaction. The byte layouts are in `docs/FORMATS.md`.
//!
//! Synchronous, knows nothing of the network or of Kafka request types. All disk access
//! goes through the [`fs::FileSystem`] seam; time is passed in (`now_ms`), never read.
//! Start reading at [`Log`] (`log/mod.rs`).

pub mod checkpoint;
pub mod compaction;
pub mod config;
pub mod error;
pub mod fs;
pub mod handles;
pub mod high_watermarks;
pub mod index;
pub mod leader_epoch;
mod log;
pub mod record_errors;
pub mod segment;
mod small_file;
pub mod txn;
pub mod txn_index;

pub use compaction::CompactionLimits;
pub use config::{CleanupPolicy, ConfigError, Durability, LogConfig, MessageTimestampType};
pub use error::LogError;
pub use handles::HandleCache;
pub use high_watermarks::HighWatermarks;
pub use leader_epoch::{EpochEntry, LeaderEpochCache};
pub use log::{
    decompressing_walks_max, frame_snapshot, unframe_snapshot, AppendInfo, AppendOrigin,
    ColdSegment, CompactionReport, FileRange, Health, Log, OpenReport, ReadInfo, RecordsCheck,
    RetentionReport, ScrubBudget, ScrubCursor, ScrubDamage, ScrubStep, SegmentRepair,
    TimestampOffset, TruncateReport, Unflushed, SCRUB_CHUNK_BYTES, SNAPSHOT_SUFFIX,
};
pub use record_errors::{RecordError, RecordErrorReason, RecordErrors, RECORD_ERRORS_LISTED_MAX};
pub use txn::{
    AbortedTxn, MarkerRefusal, Reader as SnapshotReader, Transactions, TRANSACTION_VERSION_2,
};
