//! `Log::check_client_records`: the record walk of a produced batch with Kafka's
//! per-record rules, the error (and record index) each refusal carries, and that a caller
//! that may not block is never made to decompress.

mod common;

use common::open_sim;
use strom_log::fs::SimFs;
use strom_log::{CleanupPolicy, LogConfig, LogError, RecordsCheck};
use strom_records::{frame_records_section, BatchBuilder, BatchHeader, Compression};

const NOW_MS: i64 = 1_700_000_000_000;

fn keyed_batch(keys: &[Option<&str>], timestamps_ms: &[i64], codec: Compression) -> Vec<u8> {
    let mut b = BatchBuilder::new(0, NOW_MS).compression(codec);
    for (key, timestamp_ms) in keys.iter().zip(timestamps_ms) {
        b.append(
            *timestamp_ms,
            key.map(|k| k.as_bytes().to_vec().into()),
            Some(b"value".to_vec().into()),
            Vec::new(),
        )
        .unwrap();
    }
    b.build().unwrap()
}

fn config(policy: CleanupPolicy) -> LogConfig {
    LogConfig {
        cleanup_policy: policy,
        message_timestamp_before_max_ms: 60_000,
        message_timestamp_after_max_ms: 60_000,
        max_message_bytes: 1 << 20,
        ..LogConfig::test_min()
    }
}

#[test]
fn valid_batches_pass_and_compressed_ones_wait_for_a_blocking_caller() {
    let log = open_sim(&SimFs::new(), config(CleanupPolicy::Delete), 0).unwrap();
    for codec in Compression::ALL {
        let batch = keyed_batch(&[Some("a"), None], &[NOW_MS, NOW_MS + 1], codec);
        assert_eq!(
            log.check_client_records(&batch, NOW_MS, true).unwrap(),
            RecordsCheck::Checked
        );
        let expected = if codec == Compression::None {
            RecordsCheck::Checked
        } else {
            RecordsCheck::WouldBlock
        };
        assert_eq!(
            log.check_client_records(&batch, NOW_MS, false).unwrap(),
            expected,
            "{codec:?}"
        );
    }
}

/// The record errors of a refusal, as (record index, timestamp refused?).
fn listed(err: &LogError) -> Vec<(usize, bool)> {
    match err {
        LogError::RecordsRejected {
            batch_index: 0,
            errors,
        } => errors
            .listed()
            .iter()
            .map(|e| (e.record_index, e.reason.is_timestamp()))
            .collect(),
        other => panic!("not a per-record refusal: {other:?}"),
    }
}

#[test]
fn keyless_records_are_refused_on_compacted_topics_only_and_each_is_listed() {
    for codec in [Compression::None, Compression::Lz4] {
        let batch = keyed_batch(&[Some("a"), None, Some("b"), None], &[NOW_MS; 4], codec);
        let normal = open_sim(&SimFs::new(), config(CleanupPolicy::Delete), 0).unwrap();
        assert!(normal.check_client_records(&batch, NOW_MS, true).is_ok());
        let compacted = open_sim(&SimFs::new(), config(CleanupPolicy::Compact), 0).unwrap();
        let err = compacted
            .check_client_records(&batch, NOW_MS, true)
            .unwrap_err();
        assert_eq!(listed(&err), vec![(1, false), (3, false)], "{codec:?}");
        assert_eq!(err.kafka_error_code(), 87);
        let LogError::RecordsRejected { errors, .. } = &err else {
            unreachable!()
        };
        assert_eq!(
            errors.listed()[0].message("t-0"),
            "Compacted topic cannot accept message without key in topic partition t-0."
        );
        assert!(
            errors
                .summary("t-0")
                .starts_with("One or more records have been rejected due to 2 record errors"),
            "{}",
            errors.summary("t-0")
        );
    }
}

/// A batch of more keyless records than are listed: all are counted, the first
/// `RECORD_ERRORS_LISTED_MAX` listed.
#[test]
fn a_batch_of_many_keyless_records_lists_a_bounded_prefix() {
    let count = strom_log::RECORD_ERRORS_LISTED_MAX + 1000;
    let keys = vec![None; count];
    let batch = keyed_batch(&keys, &vec![NOW_MS; count], Compression::Zstd);
    let compacted = open_sim(&SimFs::new(), config(CleanupPolicy::Compact), 0).unwrap();
    let err = compacted
        .check_client_records(&batch, NOW_MS, true)
        .unwrap_err();
    let LogError::RecordsRejected { errors, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(errors.total(), count);
    assert_eq!(errors.listed().len(), strom_log::RECORD_ERRORS_LISTED_MAX);
    assert!(errors
        .listed()
        .iter()
        .enumerate()
        .all(|(i, e)| e.record_index == i));
}

#[test]
fn each_record_timestamp_is_checked_and_a_timestamp_error_sets_the_code() {
    let log = open_sim(&SimFs::new(), config(CleanupPolicy::Compact), 0).unwrap();
    // The header's base and max timestamps are in range; record 2's is not, record 0 has
    // no key (Kafka checks the key first: record 0 is refused for its key only).
    let mut b = BatchBuilder::new(0, NOW_MS).compression(Compression::Gzip);
    b.push(strom_records::Record::new(0, -120_000, None, None));
    b.push(strom_records::Record::new(
        1,
        10,
        Some(b"k".to_vec().into()),
        None,
    ));
    b.push(strom_records::Record::new(
        2,
        -120_000,
        Some(b"k".to_vec().into()),
        None,
    ));
    let batch = b.build().unwrap();
    let header = BatchHeader::parse(&batch).unwrap();
    assert_eq!(
        (header.base_timestamp, header.max_timestamp),
        (NOW_MS, NOW_MS + 10)
    );
    let err = log.check_client_records(&batch, NOW_MS, true).unwrap_err();
    assert_eq!(listed(&err), vec![(0, false), (2, true)]);
    let LogError::RecordsRejected { errors, .. } = &err else {
        unreachable!()
    };
    assert_eq!(
        errors.listed()[1].message("t-0"),
        format!(
            "Timestamp {} of message with offset 2 is out of range. The timestamp should be \
             within [{}, {}]",
            NOW_MS - 120_000,
            NOW_MS - 60_000,
            NOW_MS + 60_000
        )
    );
    assert_eq!(err.kafka_error_code(), 32);
}

/// Only a broker sets LogAppendTime: Kafka refuses each record of a producer's batch so
/// marked, unless the topic takes CreateTime and the batch carries a timestamp.
#[test]
fn a_producer_batch_marked_log_append_time_is_refused_on_log_append_time_topics() {
    let mut b = BatchBuilder::new(0, NOW_MS).log_append_time(NOW_MS);
    for i in 0..2 {
        b.append(NOW_MS + i, Some(b"k".to_vec().into()), None, Vec::new())
            .unwrap();
    }
    let batch = b.build().unwrap();
    let create_time = open_sim(&SimFs::new(), config(CleanupPolicy::Delete), 0).unwrap();
    assert!(create_time
        .check_client_records(&batch, NOW_MS, true)
        .is_ok());
    let log_append_time = open_sim(
        &SimFs::new(),
        LogConfig {
            message_timestamp_type: strom_log::MessageTimestampType::LogAppendTime,
            ..config(CleanupPolicy::Delete)
        },
        0,
    )
    .unwrap();
    let err = log_append_time
        .check_client_records(&batch, NOW_MS, true)
        .unwrap_err();
    assert_eq!(listed(&err), vec![(0, true), (1, true)]);
    assert_eq!(err.kafka_error_code(), 32);
}

/// Record 0 of an uncompressed batch whose header count is `header_count`, then framed.
fn lying_header_count(header_count: i32, codec: Compression) -> Vec<u8> {
    // attributes, timestamp delta 0, offset delta 0, key "k", value null, header count.
    let mut body = vec![0u8, 0, 0, 2, b'k', 1];
    let mut zigzag = ((header_count << 1) ^ (header_count >> 31)) as u32;
    while zigzag >= 0x80 {
        body.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    body.push(zigzag as u8);
    let mut section = vec![(body.len() as u8) << 1];
    section.extend_from_slice(&body);
    let template = BatchHeader::parse(&keyed_batch(&[Some("k")], &[NOW_MS], codec)).unwrap();
    frame_records_section(&template, codec, &section).unwrap()
}

#[test]
fn structural_lies_are_invalid_records_unless_the_header_is_wrong_first() {
    let log = open_sim(&SimFs::new(), config(CleanupPolicy::Delete), 0).unwrap();
    for codec in Compression::ALL {
        for count in [i32::MAX, -5] {
            let batch = lying_header_count(count, codec);
            let err = log.check_client_records(&batch, NOW_MS, true).unwrap_err();
            assert_eq!(err.kafka_error_code(), 87, "{codec:?} {count}: {err}");
            // A broken structure stops the walk and names no record in `record_errors`
            // (Kafka's iterator throws); the message names it.
            assert!(
                matches!(
                    err,
                    LogError::InvalidBatch {
                        source: strom_records::RecordsError::InvalidRecordAt {
                            record_index: 0,
                            ..
                        },
                        ..
                    }
                ),
                "{err:?}"
            );
            // With a wrong CRC as well, Kafka's first check answers: CORRUPT_MESSAGE.
            let mut damaged = batch.clone();
            damaged[17] ^= 0xff;
            let err = log
                .check_client_records(&damaged, NOW_MS, true)
                .unwrap_err();
            assert_eq!(err.kafka_error_code(), 2, "{codec:?} {count}: {err}");
        }
    }
}

#[test]
fn broken_framing_is_left_to_the_append() {
    let log = open_sim(&SimFs::new(), config(CleanupPolicy::Delete), 0).unwrap();
    let batch = keyed_batch(&[Some("a")], &[NOW_MS], Compression::None);
    assert_eq!(
        log.check_client_records(&batch[..batch.len() - 3], NOW_MS, false)
            .unwrap(),
        RecordsCheck::Checked
    );
}
