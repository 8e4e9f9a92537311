//! Record batches encoded by another Kafka client library (sarama's test vectors, kept
//! here as data): our decoder must read them and, where the framing is the same, our
//! encoder must reproduce them byte for byte.

use bytes::Bytes;
use strom_records::*;

/// Header fields shared by the fixtures: offset 0, epoch 0, producer 0/0/0, base
/// timestamp 1479847795000, max timestamp 0, one record.
fn header(batch_length: u8, crc: [u8; 4], codec: u8) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, batch_length, 0, 0, 0, 0, 2];
    out.extend_from_slice(&crc);
    out.extend_from_slice(&[0, codec, 0, 0, 0, 0]);
    out.extend_from_slice(&[0, 0, 1, 88, 141, 205, 89, 56]);
    out.extend_from_slice(&[0; 8 + 8 + 2 + 4]);
    out.extend_from_slice(&[0, 0, 0, 1]);
    out
}

/// The record every fixture holds, uncompressed.
const RECORD: &[u8] = &[
    40, 0, 10, 0, 8, 1, 2, 3, 4, 6, 5, 6, 7, 2, 6, 8, 9, 10, 4, 11, 12,
];

fn expected_record() -> Record {
    Record {
        attributes: 0,
        timestamp_delta: 5,
        offset_delta: 0,
        key: Some(Bytes::from_static(&[1, 2, 3, 4])),
        value: Some(Bytes::from_static(&[5, 6, 7])),
        headers: vec![Header::new(
            Bytes::from_static(&[8, 9, 10]),
            Some(Bytes::from_static(&[11, 12])),
        )],
    }
}

fn check(name: &str, batch: &[u8], codec: Compression) {
    let header =
        validate(batch, &ValidateLimits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(header.compression().unwrap(), codec, "{name}");
    assert_eq!(header.base_timestamp, 1_479_847_795_000, "{name}");
    let decoded = records(batch, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded, vec![expected_record()], "{name}");
    assert_eq!(
        decoded[0].timestamp_ms(&header),
        1_479_847_795_005,
        "{name}"
    );
}

fn rebuild(codec: Compression) -> Vec<u8> {
    let mut builder = BatchBuilder::new(0, 1_479_847_795_000)
        .compression(codec)
        .partition_leader_epoch(0)
        .producer(0, 0, 0)
        .max_timestamp(0);
    builder.push(expected_record());
    builder.build().unwrap()
}

#[test]
fn uncompressed_fixture() {
    let mut batch = header(70, [84, 121, 97, 253], 0);
    batch.extend_from_slice(RECORD);
    check("uncompressed", &batch, Compression::None);
    assert_eq!(rebuild(Compression::None), batch);
}

#[test]
fn gzip_fixture() {
    let mut batch = header(95, [231, 74, 206, 165], 1);
    batch.extend_from_slice(&[
        31, 139, 8, 0, 0, 9, 110, 136, 0, 255, 0, 21, 0, 234, 255, 40, 0, 10, 0, 8, 1, 2, 3, 4, 6,
        5, 6, 7, 2, 6, 8, 9, 10, 4, 11, 12, 3, 0, 173, 201, 88, 103, 21, 0, 0, 0,
    ]);
    check("gzip", &batch, Compression::Gzip);
}

#[test]
fn raw_snappy_fixture() {
    let mut batch = header(72, [21, 0, 159, 97], 2);
    batch.extend_from_slice(&[
        21, 80, 40, 0, 10, 0, 8, 1, 2, 3, 4, 6, 5, 6, 7, 2, 6, 8, 9, 10, 4, 11, 12,
    ]);
    check("raw snappy", &batch, Compression::Snappy);
}

#[test]
fn lz4_fixture_with_content_checksum_and_4mb_blocks() {
    let mut batch = header(89, [169, 74, 119, 197], 3);
    batch.extend_from_slice(&[
        4, 34, 77, 24, 100, 112, 185, 21, 0, 0, 128, 40, 0, 10, 0, 8, 1, 2, 3, 4, 6, 5, 6, 7, 2, 6,
        8, 9, 10, 4, 11, 12, 0, 0, 0, 0, 12, 59, 239, 146,
    ]);
    check("lz4", &batch, Compression::Lz4);
}

#[test]
fn empty_and_control_fixtures() {
    let mut empty = vec![
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 49, 0, 0, 0, 0, 2, 89, 95, 183, 221,
    ];
    empty.extend_from_slice(&[0; 40]);
    let header = validate(&empty, &ValidateLimits::default()).unwrap();
    assert_eq!(header.records_count, 0);
    assert!(records(&empty, &DecodeLimits::default())
        .unwrap()
        .is_empty());

    let mut control = vec![
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 49, 0, 0, 0, 0, 2, 81, 46, 67, 217,
    ];
    control.extend_from_slice(&[0, 32]);
    control.extend_from_slice(&[0; 38]);
    let header = validate(&control, &ValidateLimits::default()).unwrap();
    assert!(header.is_control());
}
