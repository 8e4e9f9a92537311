//! Kafka RecordBatch v2 codec: the one place that knows the batch and record byte layout.
//!
//! No I/O, no async, no network types. The log validates and stores batches with
//! [`validate`] / [`batches`], and checks every record of a produced batch with
//! [`walk_records`] (streaming: nothing allocated per record or header); compaction walks
//! and rebuilds batches with [`walk_records`] and [`retain_records`]; clients decode with
//! [`records`] and encode with [`BatchBuilder`].

mod builder;
mod clock;
mod compression;
mod control;
mod decode;
mod error;
mod header;
mod iter;
mod record;
mod rewrite;
mod validate;
mod varint;
mod walk;

pub use builder::{
    empty_batch, frame_records_section, BatchBuilder, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID, NO_SEQUENCE, NO_TIMESTAMP,
};
pub use clock::now_ms;
pub use compression::decompress as decompress_bounded;
pub use control::{ControlRecordType, EndTransactionMarker};
pub use decode::{records, DecodeLimits};
pub use error::{codes, RecordsError};
pub use header::{BatchHeader, Compression, TimestampType, BATCH_HEADER_BYTES, MAGIC_V2};
pub use iter::{batch_frames, batches, BatchIter, BatchesError};
pub use record::{Header, Record};
pub use rewrite::{set_base_offset, set_log_append_time, set_partition_leader_epoch};
pub use validate::{validate, validate_client_batch, ValidateLimits};
pub use walk::{
    retain_records, walk_records, OffsetDeltas, Rebuild, RecordInfo, Retained, WalkOptions,
    WalkSummary, WINDOW_BYTES,
};
