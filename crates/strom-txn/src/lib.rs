//! strom-txn: the transaction coordinator as a deterministic state machine.
//!
//! The broker turns InitProducerId (with a transactional id), AddPartitionsToTxn,
//! AddOffsetsToTxn, EndTxn, DescribeTransactions and ListTransactions into calls on a
//! [`Coordinator`] (one per `__transaction_state` partition it leads) with the current time.
//! Each call returns an [`Output`]: records to append to that partition, the response to
//! send *only after* those records are committed, and marker jobs ([`MarkerJob`]) to start
//! once they are committed. When every partition of a job has its marker, the broker calls
//! [`Coordinator::markers_written`], which completes the transaction (another record).
//! [`Coordinator::tick`] aborts timed-out transactions and expires idle transactional ids;
//! [`Coordinator::load`] rebuilds the state from the partition's records and returns the
//! marker jobs of transactions left in PrepareCommit/PrepareAbort (a coordinator that failed
//! over mid-commit: the new one finishes them).
//!
//! Pure code: no I/O, no async, no clock, no Kafka wire types.

mod coordinator;
mod records;
mod state;

pub use coordinator::{
    Config, Coordinator, DescribedTxn, EndTxnResult, ErrorCode, InitPidResult, ListFilter,
    MarkerJob, Output, TV0, TV2,
};
pub use records::{
    decode_key, decode_value, encode_key, encode_value, value_version, RecordError, TxnRecord,
    TxnValue,
};
pub use state::{TopicPartition, TxnMetadata, TxnState, NO_PRODUCER_EPOCH, NO_PRODUCER_ID};

/// The `__transaction_state` partition of a transactional id: Kafka's
/// `Utils.abs(transactionalId.hashCode) % partitions` (Java's String hash over UTF-16).
pub fn coordinator_partition(transactional_id: &str, partitions: u32) -> u32 {
    let mut hash: i32 = 0;
    for unit in transactional_id.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    // Kafka's Utils.abs maps i32::MIN to 0.
    let abs = if hash == i32::MIN {
        0
    } else {
        hash.unsigned_abs()
    };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn partition_matches_java_string_hash() {
        // "txn".hashCode() == 115_306 in Java; 115_306 % 50 == 6.
        assert_eq!(super::coordinator_partition("txn", 50), 6);
        assert_eq!(super::coordinator_partition("", 50), 0);
    }
}
