//! Kafka's per-record validation errors: the records of one produced batch that Kafka's
//! `LogValidator` refuses one by one (a missing key on a compacted topic, a CreateTime
//! timestamp out of range, a LogAppendTime batch from a producer). The whole batch is
//! refused, and the Produce response names each refused record in `record_errors`
//! (`batch_index`, `batch_index_error_message`), from which librdkafka and the Java producer
//! fail exactly those records with INVALID_RECORD and the others as "part of a batch which had
//! invalid records".
//!
//! A batch whose structure is broken is not a per-record error: like Kafka's record
//! iterator, the walk stops at the first broken record and the batch is refused without
//! `record_errors` ([`strom_records::RecordsError::InvalidRecordAt`] still names the record
//! in the message).
//!
//! Bounds: a batch may hold millions of records (a few bytes each, within the 64 MiB
//! decompression budget), so at most [`RECORD_ERRORS_LISTED_MAX`] refused records are
//! listed; all of them are counted.

use std::fmt;

use crate::error::codes;

/// How many refused records of one batch are listed (the first ones, by position); the rest
/// are only counted. librdkafka's default `batch.num.messages` is 10,000, so a client's
/// batch is listed whole unless it was built to be larger.
pub const RECORD_ERRORS_LISTED_MAX: usize = 10_000;

/// Why one record was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordErrorReason {
    /// A record without a key on a compacted topic (INVALID_RECORD).
    NoKey,
    /// A CreateTime timestamp outside `[earliest_ms, latest_ms]`
    /// (`message.timestamp.before.max.ms`/`after.max.ms` around now; INVALID_TIMESTAMP).
    /// `offset` is the record's offset as the producer numbered it.
    TimestampOutOfRange {
        timestamp_ms: i64,
        offset: i64,
        earliest_ms: i64,
        latest_ms: i64,
    },
    /// A producer's batch marked LogAppendTime, which only a broker may set
    /// (INVALID_TIMESTAMP).
    LogAppendTimeFromProducer,
}

impl RecordErrorReason {
    pub fn is_timestamp(&self) -> bool {
        !matches!(self, RecordErrorReason::NoKey)
    }
}

/// One refused record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordError {
    /// Position in its batch, from 0 (Kafka's `batch_index`).
    pub record_index: usize,
    pub reason: RecordErrorReason,
}

impl RecordError {
    /// Kafka's `batch_index_error_message` for this record of partition `partition` (e.g.
    /// `orders-0`).
    pub fn message(&self, partition: &str) -> String {
        match self.reason {
            RecordErrorReason::NoKey => format!(
                "Compacted topic cannot accept message without key in topic partition \
                 {partition}."
            ),
            RecordErrorReason::TimestampOutOfRange {
                timestamp_ms,
                offset,
                earliest_ms,
                latest_ms,
            } => format!(
                "Timestamp {timestamp_ms} of message with offset {offset} is out of range. The \
                 timestamp should be within [{earliest_ms}, {latest_ms}]"
            ),
            RecordErrorReason::LogAppendTimeFromProducer => format!(
                "Invalid timestamp type in message {} of topic partition {partition}. Producer \
                 should not set timestamp type to LogAppendTime.",
                self.record_index
            ),
        }
    }
}

/// The refused records of one batch: all counted, the first [`RECORD_ERRORS_LISTED_MAX`]
/// listed in batch order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordErrors {
    listed: Vec<RecordError>,
    total: usize,
    timestamps: bool,
}

impl RecordErrors {
    pub fn push(&mut self, error: RecordError) {
        self.total = self.total.saturating_add(1);
        self.timestamps |= error.reason.is_timestamp();
        if self.listed.len() < RECORD_ERRORS_LISTED_MAX {
            self.listed.push(error);
        }
    }

    /// The first refused records, in batch order.
    pub fn listed(&self) -> &[RecordError] {
        &self.listed
    }

    /// How many records were refused.
    pub fn total(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Kafka's partition-level code: INVALID_TIMESTAMP when any record's timestamp was
    /// refused, else INVALID_RECORD.
    pub fn kafka_error_code(&self) -> i16 {
        if self.timestamps {
            codes::INVALID_TIMESTAMP
        } else {
            codes::INVALID_RECORD
        }
    }

    /// Kafka's partition-level `error_message` for partition `partition`.
    pub fn summary(&self, partition: &str) -> String {
        if self.timestamps {
            return "One or more records have been rejected due to invalid timestamp".into();
        }
        let first: Vec<String> = self
            .listed
            .iter()
            .take(3)
            .map(|e| {
                format!(
                    "RecordError(batchIndex={}, message='{}')",
                    e.record_index,
                    e.message(partition)
                )
            })
            .collect();
        format!(
            "One or more records have been rejected due to {} record errors in total, and only \
             showing the first three errors at most: [{}]",
            self.total,
            first.join(", ")
        )
    }
}

impl fmt::Display for RecordErrors {
    /// For logs: how many, and the first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} record(s) refused", self.total)?;
        if let Some(first) = self.listed.first() {
            write!(f, ", the first record {}: ", first.record_index)?;
            match first.reason {
                RecordErrorReason::NoKey => {
                    write!(
                        f,
                        "no key, which a compacted topic requires; give every record a key"
                    )
                }
                RecordErrorReason::TimestampOutOfRange {
                    timestamp_ms,
                    earliest_ms,
                    latest_ms,
                    ..
                } => write!(
                    f,
                    "timestamp {timestamp_ms} outside [{earliest_ms}, {latest_ms}] \
                     (message.timestamp.before.max.ms/after.max.ms)"
                ),
                RecordErrorReason::LogAppendTimeFromProducer => {
                    write!(f, "a producer's batch marked LogAppendTime")
                }
            }?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_key(record_index: usize) -> RecordError {
        RecordError {
            record_index,
            reason: RecordErrorReason::NoKey,
        }
    }

    #[test]
    fn lists_a_bounded_prefix_and_counts_all() {
        let mut errors = RecordErrors::default();
        assert!(errors.is_empty());
        for i in 0..RECORD_ERRORS_LISTED_MAX + 5 {
            errors.push(no_key(i * 2));
        }
        assert_eq!(errors.total(), RECORD_ERRORS_LISTED_MAX + 5);
        assert_eq!(errors.listed().len(), RECORD_ERRORS_LISTED_MAX);
        assert_eq!(errors.listed()[1].record_index, 2);
        assert_eq!(errors.kafka_error_code(), codes::INVALID_RECORD);
        let summary = errors.summary("t-0");
        assert!(
            summary.starts_with(
                "One or more records have been rejected due to 10005 record errors in total"
            ),
            "{summary}"
        );
        assert_eq!(summary.matches("RecordError(").count(), 3);
    }

    #[test]
    fn a_timestamp_error_sets_invalid_timestamp() {
        let mut errors = RecordErrors::default();
        errors.push(no_key(0));
        errors.push(RecordError {
            record_index: 1,
            reason: RecordErrorReason::TimestampOutOfRange {
                timestamp_ms: 5,
                offset: 1,
                earliest_ms: 10,
                latest_ms: 20,
            },
        });
        assert_eq!(errors.kafka_error_code(), codes::INVALID_TIMESTAMP);
        assert_eq!(
            errors.listed()[1].message("t-0"),
            "Timestamp 5 of message with offset 1 is out of range. The timestamp should be \
             within [10, 20]"
        );
        assert_eq!(
            errors.summary("t-0"),
            "One or more records have been rejected due to invalid timestamp"
        );
    }
}
