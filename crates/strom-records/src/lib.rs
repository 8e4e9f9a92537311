//! Kafka RecordBatch v2 codec: the one place that knows the batch and record byte layout.
//!
//! No I/O, no async, no network types. The log validates and stores batches with
//! [`validate`] / [`batches`] without decompressing; compaction and clients decode with
//! [`records`] and encode with [`BatchBuilder`].

mod builder;
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

pub use builder::{
    empty_batch, BatchBuilder, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
    NO_SEQUENCE, NO_TIMESTAMP,
};
pub use control::{ControlRecordType, EndTransactionMarker};
pub use decode::{records, DecodeLimits};
pub use error::{codes, RecordsError};
pub use header::{BatchHeader, Compression, TimestampType, BATCH_HEADER_BYTES, MAGIC_V2};
pub use iter::{batch_frames, batches, BatchIter, BatchesError};
pub use record::{Header, Record};
pub use rewrite::{set_base_offset, set_log_append_time, set_partition_leader_epoch};
pub use validate::{validate, validate_client_batch, ValidateLimits};
