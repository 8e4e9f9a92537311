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

#[test]
fn keyless_records_are_refused_on_compacted_topics_only() {
    let batch = keyed_batch(
        &[Some("a"), None, None],
        &[NOW_MS, NOW_MS, NOW_MS],
        Compression::Lz4,
    );
    let normal = open_sim(&SimFs::new(), config(CleanupPolicy::Delete), 0).unwrap();
    assert!(normal.check_client_records(&batch, NOW_MS, true).is_ok());
    let compacted = open_sim(&SimFs::new(), config(CleanupPolicy::Compact), 0).unwrap();
    let err = compacted
        .check_client_records(&batch, NOW_MS, true)
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::KeylessRecord {
                batch_index: 0,
                record_index: 1
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.kafka_error_code(), 87);
    assert_eq!(err.record_index(), Some(1));
}

#[test]
fn each_record_timestamp_is_checked_and_wins_over_a_missing_key() {
    let log = open_sim(&SimFs::new(), config(CleanupPolicy::Compact), 0).unwrap();
    // The header's base and max timestamps are in range; record 2's is not.
    let mut b = BatchBuilder::new(0, NOW_MS).compression(Compression::Gzip);
    b.push(strom_records::Record::new(0, 0, None, None));
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
    assert!(
        matches!(
            err,
            LogError::InvalidTimestamp {
                batch_index: 0,
                record_index: Some(2),
                timestamp_ms,
                ..
            } if timestamp_ms == NOW_MS - 120_000
        ),
        "{err:?}"
    );
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
            assert_eq!(err.record_index(), Some(0));
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
