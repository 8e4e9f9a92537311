//! Phase-1 behaviour of the batch codec: header parsing, validation, iteration, rewrites.

use bytes::Bytes;
use strom_records::*;

fn limits() -> ValidateLimits {
    ValidateLimits::default()
}

fn sample_batch(base_offset: i64, values: &[&str]) -> Vec<u8> {
    let mut builder = BatchBuilder::new(base_offset, 1_700_000_000_000);
    for (i, value) in values.iter().enumerate() {
        let key = Some(Bytes::from(format!("k{i}")));
        let value = Some(Bytes::copy_from_slice(value.as_bytes()));
        builder
            .append(1_700_000_000_000 + i as i64, key, value, Vec::new())
            .unwrap();
    }
    builder.build().unwrap()
}

/// Rewrites the stored CRC so that a test can reach the checks behind it.
fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn crc32c_is_castagnoli() {
    // The standard check value of CRC-32C.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

/// One record, key null, value "a", every field computed by hand from Kafka's layout.
#[test]
fn known_bytes_single_record() {
    let mut builder = BatchBuilder::new(0, 1000).producer(7, 1, 5);
    builder.push(Record::new(0, 0, None, Some(Bytes::from_static(b"a"))));
    let batch = builder.build().unwrap();
    let record: &[u8] = &[
        0x0e, // body length 7 (zig-zag)
        0x00, // attributes
        0x00, // timestamp delta 0
        0x00, // offset delta 0
        0x01, // key length -1
        0x02, b'a', // value length 1, "a"
        0x00, // no headers
    ];
    let mut expected = Vec::new();
    expected.extend_from_slice(&0i64.to_be_bytes()); // base offset
    expected.extend_from_slice(&(49i32 + 8).to_be_bytes()); // batch length
    expected.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    expected.push(2); // magic
    expected.extend_from_slice(&[0, 0, 0, 0]); // crc, filled below
    expected.extend_from_slice(&0i16.to_be_bytes()); // attributes
    expected.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    expected.extend_from_slice(&1000i64.to_be_bytes()); // base timestamp
    expected.extend_from_slice(&1000i64.to_be_bytes()); // max timestamp
    expected.extend_from_slice(&7i64.to_be_bytes()); // producer id
    expected.extend_from_slice(&1i16.to_be_bytes()); // producer epoch
    expected.extend_from_slice(&5i32.to_be_bytes()); // base sequence
    expected.extend_from_slice(&1i32.to_be_bytes()); // records count
    expected.extend_from_slice(record);
    fix_crc(&mut expected);
    assert_eq!(batch, expected);
    let header = validate(&batch, &limits()).unwrap();
    assert_eq!(header.size_bytes(), batch.len());
    assert_eq!(header.producer_id, 7);
    assert_eq!(header.last_sequence(), 5);
    assert!(header.has_producer_id());
}

#[test]
fn header_accessors() {
    let batch = sample_batch(100, &["a", "b", "c"]);
    let header = BatchHeader::parse(&batch).unwrap();
    assert_eq!(header.base_offset, 100);
    assert_eq!(header.last_offset_delta, 2);
    assert_eq!(header.last_offset(), 102);
    assert_eq!(header.next_offset(), 103);
    assert_eq!(header.records_count, 3);
    assert_eq!(header.magic, MAGIC_V2);
    assert_eq!(header.size_bytes(), batch.len());
    assert_eq!(header.compression().unwrap(), Compression::None);
    assert_eq!(header.timestamp_type(), TimestampType::CreateTime);
    assert_eq!(header.max_timestamp, 1_700_000_000_002);
    assert!(!header.is_transactional());
    assert!(!header.is_control());
    assert!(!header.has_producer_id());
    assert_eq!(header.last_sequence(), -1);
    assert_eq!(validate(&batch, &limits()).unwrap(), header);
}

#[test]
fn flags_round_trip() {
    let batch = BatchBuilder::new(0, 5)
        .producer(1, 2, 3)
        .transactional(true)
        .control(true)
        .partition_leader_epoch(9)
        .build()
        .unwrap();
    let header = validate(&batch, &limits()).unwrap();
    assert!(header.is_transactional() && header.is_control());
    assert_eq!(header.partition_leader_epoch, 9);
    assert_eq!((header.producer_epoch, header.base_sequence), (2, 3));
    assert_eq!(header.records_count, 0);
}

#[test]
fn parse_needs_61_bytes() {
    let batch = sample_batch(0, &["x"]);
    let err = BatchHeader::parse(&batch[..60]).unwrap_err();
    assert_eq!(
        err,
        RecordsError::Truncated {
            needed_bytes: 61,
            available_bytes: 60
        }
    );
}

#[test]
fn sequence_wraps_like_kafka() {
    let mut builder = BatchBuilder::new(0, 0).producer(1, 0, i32::MAX - 1);
    for _ in 0..4 {
        builder.append(0, None, None, Vec::new()).unwrap();
    }
    let header = validate(&builder.build().unwrap(), &limits()).unwrap();
    assert_eq!(header.last_sequence(), 1);
}

fn check_invalid(batch: &[u8], expected_code: i16, matches: fn(&RecordsError) -> bool) {
    let err = validate(batch, &limits()).unwrap_err();
    assert!(matches(&err), "unexpected error {err:?}");
    assert_eq!(err.kafka_error_code(), expected_code, "{err:?}");
}

#[test]
fn validate_rejects_bad_batches() {
    let good = sample_batch(0, &["a", "b"]);

    let mut longer = good.clone();
    longer.push(0);
    check_invalid(&longer, 2, |e| {
        matches!(e, RecordsError::LengthMismatch { .. })
    });
    check_invalid(&good[..good.len() - 1], 2, |e| {
        matches!(e, RecordsError::LengthMismatch { .. })
    });

    let mut short_length = good.clone();
    short_length[8..12].copy_from_slice(&48i32.to_be_bytes());
    check_invalid(&short_length, 2, |e| {
        matches!(e, RecordsError::InvalidBatchLength { batch_length: 48 })
    });

    let mut magic = good.clone();
    magic[16] = 1;
    check_invalid(&magic, 87, |e| {
        matches!(e, RecordsError::UnsupportedMagic { magic: 1 })
    });

    let mut crc = good.clone();
    crc[17] ^= 1;
    check_invalid(&crc, 2, |e| matches!(e, RecordsError::CrcMismatch { .. }));

    let mut codec = good.clone();
    codec[22] |= 0x07;
    fix_crc(&mut codec);
    check_invalid(&codec, 76, |e| {
        matches!(e, RecordsError::UnsupportedCompression { codec_id: 7 })
    });

    let mut count = good.clone();
    count[57..61].copy_from_slice(&3i32.to_be_bytes());
    fix_crc(&mut count);
    check_invalid(&count, 2, |e| matches!(e, RecordsError::Corrupt { .. }));

    let mut negative = good.clone();
    negative[57..61].copy_from_slice(&(-1i32).to_be_bytes());
    fix_crc(&mut negative);
    check_invalid(&negative, 2, |e| matches!(e, RecordsError::Corrupt { .. }));

    let mut overflow = good.clone();
    overflow[0..8].copy_from_slice(&i64::MAX.to_be_bytes());
    check_invalid(&overflow, 2, |e| matches!(e, RecordsError::Corrupt { .. }));

    let tight = ValidateLimits {
        batch_bytes_max: good.len() - 1,
    };
    let err = validate(&good, &tight).unwrap_err();
    assert_eq!(err.kafka_error_code(), 10);
    assert!(validate(
        &good,
        &ValidateLimits {
            batch_bytes_max: good.len()
        }
    )
    .is_ok());
}

#[test]
fn compacted_batches_with_fewer_records_are_valid() {
    let mut builder = BatchBuilder::new(10, 0).last_offset_delta(9);
    builder.push(Record::new(4, 0, None, None));
    let batch = builder.build().unwrap();
    let header = validate(&batch, &limits()).unwrap();
    assert_eq!((header.records_count, header.last_offset()), (1, 19));
    let empty = BatchBuilder::new(10, 0)
        .last_offset_delta(9)
        .build()
        .unwrap();
    let header = validate(&empty, &limits()).unwrap();
    assert_eq!((header.records_count, header.last_offset()), (0, 19));
    let err = validate_client_batch(&empty, &limits()).unwrap_err();
    assert_eq!(err.kafka_error_code(), 87);
}

#[test]
fn client_batch_rules() {
    let ok = sample_batch(0, &["a"]);
    assert!(validate_client_batch(&ok, &limits()).is_ok());
    let not_zero = sample_batch(5, &["a"]);
    assert_eq!(
        validate_client_batch(&not_zero, &limits())
            .unwrap_err()
            .kafka_error_code(),
        87
    );
    let mut control = BatchBuilder::new(0, 0).control(true);
    control.append(0, None, None, Vec::new()).unwrap();
    let control = control.build().unwrap();
    assert!(validate_client_batch(&control, &limits()).is_err());
    let mut no_sequence = BatchBuilder::new(0, 0).producer(3, 0, -1);
    no_sequence.append(0, None, None, Vec::new()).unwrap();
    assert!(validate_client_batch(&no_sequence.build().unwrap(), &limits()).is_err());
    let mut txn_without_pid = BatchBuilder::new(0, 0).transactional(true);
    txn_without_pid.append(0, None, None, Vec::new()).unwrap();
    assert!(validate_client_batch(&txn_without_pid.build().unwrap(), &limits()).is_err());
}

#[test]
fn iterate_concatenated_batches() {
    let a = sample_batch(0, &["a", "b"]);
    let b = sample_batch(2, &["c"]);
    let c = sample_batch(3, &["d", "e", "f"]);
    let buf = [a.clone(), b.clone(), c.clone()].concat();
    let found: Vec<_> = batches(&buf).map(|r| r.unwrap()).collect();
    assert_eq!(found.len(), 3);
    assert_eq!(found[0].1, 0..a.len());
    assert_eq!(found[1].1, a.len()..a.len() + b.len());
    assert_eq!(found[2].1.end, buf.len());
    assert_eq!(
        found.iter().map(|(h, _)| h.base_offset).collect::<Vec<_>>(),
        vec![0, 2, 3]
    );
    assert_eq!(batches(&[]).count(), 0);
}

#[test]
fn iteration_stops_at_a_truncated_tail() {
    let a = sample_batch(0, &["a"]);
    let b = sample_batch(1, &["b"]);
    let whole = [a.clone(), b.clone()].concat();
    for cut in a.len() + 1..whole.len() {
        let results: Vec<_> = batches(&whole[..cut]).collect();
        assert_eq!(results.len(), 2, "cut at {cut}");
        assert!(results[0].is_ok());
        let err = results[1].clone().unwrap_err();
        assert_eq!(err.valid_bytes, a.len());
        assert!(err.is_truncated_tail(), "cut at {cut}: {err:?}");
    }
}

#[test]
fn iteration_stops_at_a_corrupt_batch() {
    let a = sample_batch(0, &["a"]);
    let mut b = sample_batch(1, &["b"]);
    let c = sample_batch(2, &["c"]);
    let last = b.len() - 1;
    b[last] ^= 0xff;
    let buf = [a.clone(), b, c].concat();
    let results: Vec<_> = batches(&buf).collect();
    assert_eq!(results.len(), 2);
    let err = results[1].clone().unwrap_err();
    assert_eq!(err.valid_bytes, a.len());
    assert!(!err.is_truncated_tail());
    assert!(matches!(err.error, RecordsError::CrcMismatch { .. }));

    let mut zeros = a.clone();
    zeros.extend_from_slice(&[0u8; 100]);
    let err = batches(&zeros).nth(1).unwrap().unwrap_err();
    assert_eq!(err.valid_bytes, a.len());
    assert!(matches!(err.error, RecordsError::InvalidBatchLength { .. }));
}

#[test]
fn offset_and_epoch_rewrites_keep_the_crc() {
    let mut batch = sample_batch(0, &["a", "b"]);
    let crc_before = BatchHeader::parse(&batch).unwrap().crc;
    set_base_offset(&mut batch, 1234).unwrap();
    set_partition_leader_epoch(&mut batch, 42).unwrap();
    let header = validate(&batch, &limits()).unwrap();
    assert_eq!(header.base_offset, 1234);
    assert_eq!(header.last_offset(), 1235);
    assert_eq!(header.partition_leader_epoch, 42);
    assert_eq!(header.crc, crc_before);
    assert!(set_base_offset(&mut batch[..60], 1).is_err());
    assert!(set_partition_leader_epoch(&mut [], 1).is_err());
}

#[test]
fn log_append_time_rewrite() {
    let mut batch = sample_batch(0, &["a", "b"]);
    set_log_append_time(&mut batch, 1_800_000_000_000).unwrap();
    let header = validate(&batch, &limits()).unwrap();
    assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(header.max_timestamp, 1_800_000_000_000);
    assert_eq!(header.base_timestamp, 1_700_000_000_000);
    let err = set_log_append_time(&mut batch, -5).unwrap_err();
    assert_eq!(err.kafka_error_code(), 32);
    assert!(set_log_append_time(&mut batch[..10], 1).is_err());
    let mut longer = batch.clone();
    longer.push(0);
    assert!(matches!(
        set_log_append_time(&mut longer, 1),
        Err(RecordsError::LengthMismatch { .. })
    ));
}

#[test]
fn every_flipped_byte_in_crc_range_is_rejected() {
    let batch = sample_batch(0, &["alpha", "beta"]);
    for index in 17..batch.len() {
        for bit in [0x01u8, 0x80] {
            let mut damaged = batch.clone();
            damaged[index] ^= bit;
            assert!(
                validate(&damaged, &limits()).is_err(),
                "flip {bit:#x} at {index} accepted"
            );
            let first = batches(&damaged).next().unwrap();
            assert!(first.is_err(), "iterator accepted flip at {index}");
        }
    }
}

#[test]
fn uncompressed_records_round_trip() {
    let mut builder = BatchBuilder::new(0, 100);
    builder
        .append(
            105,
            Some(Bytes::from_static(b"key")),
            None,
            vec![Header::new("h", Some(Bytes::from_static(b"v")))],
        )
        .unwrap();
    builder
        .append(99, None, Some(Bytes::new()), Vec::new())
        .unwrap();
    let batch = builder.build().unwrap();
    let decoded = records(&batch, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded, builder.records());
    assert_eq!(decoded[0].timestamp_delta, 5);
    assert_eq!(decoded[1].timestamp_delta, -1);
    assert_eq!(decoded[0].headers[0].key_str(), Some("h"));
    let header = validate(&batch, &limits()).unwrap();
    assert_eq!(header.max_timestamp, 105);
}

#[test]
fn record_absolute_offsets_and_timestamps() {
    let mut builder = BatchBuilder::new(50, 1_000).delete_horizon(true);
    builder.append(1_010, None, None, Vec::new()).unwrap();
    builder.append(1_020, None, None, Vec::new()).unwrap();
    let mut batch = builder.build().unwrap();
    let header = validate(&batch, &limits()).unwrap();
    assert!(header.has_delete_horizon());
    let decoded = records(&batch, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded[1].offset(&header), 51);
    assert_eq!(decoded[1].timestamp_ms(&header), 1_020);
    set_log_append_time(&mut batch, 9_999).unwrap();
    let header = validate(&batch, &limits()).unwrap();
    assert_eq!(decoded[0].timestamp_ms(&header), 9_999);
}

/// Kafka's `writeEmptyHeader`, field by field from its layout: what compaction keeps of a
/// batch whose records are all gone, for a batch of every codec and timestamp type.
fn kafka_empty_header(h: &BatchHeader) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&h.base_offset.to_be_bytes());
    b.extend_from_slice(&49i32.to_be_bytes());
    b.extend_from_slice(&h.partition_leader_epoch.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]); // CRC, below
                                  // Codec none; timestamp type, transactional and control kept; no delete horizon.
    b.extend_from_slice(&(h.attributes & 0x38).to_be_bytes());
    b.extend_from_slice(&h.last_offset_delta.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&h.max_timestamp.to_be_bytes());
    b.extend_from_slice(&h.producer_id.to_be_bytes());
    b.extend_from_slice(&h.producer_epoch.to_be_bytes());
    b.extend_from_slice(&h.base_sequence.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    fix_crc(&mut b);
    b
}

#[test]
fn empty_batch_is_kafkas_uncompressed_empty_header() {
    for compression in Compression::ALL {
        for log_append in [false, true] {
            let mut builder = BatchBuilder::new(2004, 1_700_000_000_000)
                .compression(compression)
                .producer(42, 3, 17)
                .partition_leader_epoch(9)
                .delete_horizon(true);
            if log_append {
                builder = builder.log_append_time(1_700_000_000_500);
            }
            for i in 0..4 {
                builder
                    .append(
                        1_700_000_000_000 + i,
                        Some(Bytes::from(format!("k{i}"))),
                        Some(Bytes::from_static(b"v")),
                        Vec::new(),
                    )
                    .unwrap();
            }
            let original = builder.build().unwrap();
            let header = validate(&original, &limits()).unwrap();
            assert_eq!(header.compression().unwrap(), compression);
            let empty = empty_batch(&header).unwrap();
            assert_eq!(empty, kafka_empty_header(&header), "{compression:?}");
            assert_eq!(empty.len(), 61);
            let h = validate(&empty, &limits()).unwrap();
            assert_eq!(h.compression().unwrap(), Compression::None);
            assert_eq!((h.base_offset, h.last_offset()), (2004, 2007));
            assert_eq!(h.last_sequence(), header.last_sequence());
            assert_eq!(h.timestamp_type(), header.timestamp_type());
            assert!(!h.has_delete_horizon());
            assert!(records(&empty, &DecodeLimits::default())
                .unwrap()
                .is_empty());
        }
    }
}
