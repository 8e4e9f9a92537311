//! Records, compression and control batches: known bytes, round trips and bounds.

use bytes::Bytes;
use proptest::prelude::*;
use strom_records::*;

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

/// Replaces the records section of `batch` and fixes length and CRC, so that a test can
/// feed arbitrary payloads to the decoder behind a valid header.
fn with_payload(batch: &[u8], payload: &[u8], records_count: i32) -> Vec<u8> {
    let mut out = batch[..BATCH_HEADER_BYTES].to_vec();
    out.extend_from_slice(payload);
    let batch_length = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[57..61].copy_from_slice(&records_count.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

fn empty_batch(codec: Compression) -> Vec<u8> {
    BatchBuilder::new(0, 0)
        .compression(codec)
        .last_offset_delta(1_000)
        .build()
        .unwrap()
}

/// The record `key=null, value="sdfdsf"` at deltas 0 as Kafka encodes it.
const SDFDSF_RECORD: &[u8] = b"\x18\x00\x00\x00\x01\x0csdfdsf\x00";

#[test]
fn snappy_fixture_from_a_java_producer() {
    // xerial-framed snappy bytes written by Kafka's Java client (kept as data in the
    // kafka-protocol crate's tests).
    let xerial: &[u8] = b"\x82\x53\x4e\x41\x50\x50\x59\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x0f\x0d\x30\x18\x00\x00\x00\x01\x0csdfdsf\x00";
    let batch = with_payload(&empty_batch(Compression::Snappy), xerial, 1);
    let decoded = records(&batch, &limits()).unwrap();
    assert_eq!(
        decoded,
        vec![Record::new(0, 0, None, Some(Bytes::from_static(b"sdfdsf")))]
    );

    // Our encoder produces the same framing for the same record.
    let mut builder = BatchBuilder::new(0, 0).compression(Compression::Snappy);
    builder.push(decoded[0].clone());
    let built = builder.build().unwrap();
    assert_eq!(&built[BATCH_HEADER_BYTES..], xerial);
}

#[test]
fn raw_snappy_is_accepted_on_read() {
    let raw: &[u8] = b"\r0\x18\0\0\0\x01\x0csdfdsf\0";
    let batch = with_payload(&empty_batch(Compression::Snappy), raw, 1);
    let decoded = records(&batch, &limits()).unwrap();
    assert_eq!(decoded[0].value.as_deref(), Some(&b"sdfdsf"[..]));
}

#[test]
fn lz4_frame_header_matches_kafka() {
    let mut builder = BatchBuilder::new(0, 0).compression(Compression::Lz4);
    builder.push(Record::new(0, 0, None, Some(Bytes::from_static(b"sdfdsf"))));
    let batch = builder.build().unwrap();
    // Magic 0x184D2204 (LE), FLG 0x60 (v1, independent blocks, no checksums), BD 0x40
    // (64 KiB), header checksum 0x82: what Kafka's Lz4BlockOutputStream writes.
    assert_eq!(
        &batch[BATCH_HEADER_BYTES..BATCH_HEADER_BYTES + 7],
        &[0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82]
    );
    // Ends with the 4-byte zero end mark and no content checksum.
    assert_eq!(&batch[batch.len() - 4..], &[0, 0, 0, 0]);
    let decoded = records(&batch, &limits()).unwrap();
    assert_eq!(decoded, builder.records());
}

#[test]
fn gzip_and_zstd_payloads_have_their_magic() {
    for (codec, magic) in [
        (Compression::Gzip, &[0x1f, 0x8b][..]),
        (Compression::Zstd, &[0x28, 0xb5, 0x2f, 0xfd][..]),
    ] {
        let mut builder = BatchBuilder::new(0, 0).compression(codec);
        builder.push(Record::new(0, 0, None, Some(Bytes::from_static(b"sdfdsf"))));
        let batch = builder.build().unwrap();
        assert!(batch[BATCH_HEADER_BYTES..].starts_with(magic), "{codec:?}");
        let header = validate(&batch, &ValidateLimits::default()).unwrap();
        assert_eq!(header.compression().unwrap(), codec);
        assert_eq!(records(&batch, &limits()).unwrap(), builder.records());
    }
}

#[test]
fn uncompressed_record_bytes_are_kafkas() {
    let mut builder = BatchBuilder::new(0, 0);
    builder.push(Record::new(0, 0, None, Some(Bytes::from_static(b"sdfdsf"))));
    let batch = builder.build().unwrap();
    assert_eq!(&batch[BATCH_HEADER_BYTES..], SDFDSF_RECORD);
}

#[test]
fn decompression_is_bounded_for_every_codec() {
    let big_value = Bytes::from(vec![0u8; 512 * 1024]);
    for codec in Compression::ALL {
        let mut builder = BatchBuilder::new(0, 0).compression(codec);
        builder.push(Record::new(0, 0, None, Some(big_value.clone())));
        let batch = builder.build().unwrap();
        let tight = DecodeLimits {
            decompressed_bytes_max: 64 * 1024,
        };
        let err = records(&batch, &tight).unwrap_err();
        assert!(
            matches!(
                err,
                RecordsError::DecompressedTooLarge { limit_bytes: 65536 }
            ),
            "{codec:?}: {err:?}"
        );
        let roomy = DecodeLimits {
            decompressed_bytes_max: 600 * 1024,
        };
        assert_eq!(
            records(&batch, &roomy).unwrap()[0].value,
            Some(big_value.clone())
        );
    }
}

#[test]
fn snappy_size_claims_are_checked_before_allocating() {
    // A raw snappy block claiming 2^32-1 bytes of output in a 5-byte varint.
    let claim: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    let batch = with_payload(&empty_batch(Compression::Snappy), claim, 1);
    let err = records(&batch, &limits()).unwrap_err();
    assert!(matches!(
        err,
        RecordsError::DecompressedTooLarge { .. } | RecordsError::Decompress { .. }
    ));
}

#[test]
fn record_count_claims_are_checked_against_bytes() {
    let base = empty_batch(Compression::None);
    // 100 records claimed, 7 bytes present: rejected by validation already.
    let batch = with_payload(&base, SDFDSF_RECORD, 100);
    assert!(validate(&batch, &ValidateLimits::default()).is_err());
    assert!(records(&batch, &limits()).is_err());
    // Compressed: the claim is checked after decompression.
    let mut builder = BatchBuilder::new(0, 0).compression(Compression::Gzip);
    builder.push(Record::new(0, 0, None, None));
    let gz = builder.build().unwrap();
    let payload = gz[BATCH_HEADER_BYTES..].to_vec();
    let lying = with_payload(&empty_batch(Compression::Gzip), &payload, 1_000);
    assert!(validate(&lying, &ValidateLimits::default()).is_ok());
    assert!(matches!(
        records(&lying, &limits()).unwrap_err(),
        RecordsError::Corrupt { .. }
    ));
    // Fewer records claimed than present: trailing bytes are an error too.
    let two = [SDFDSF_RECORD, SDFDSF_RECORD].concat();
    let batch = with_payload(&base, &two, 1);
    assert!(records(&batch, &limits()).is_err());
}

#[test]
fn damaged_records_are_errors() {
    let check = |payload: &[u8]| {
        let batch = with_payload(&empty_batch(Compression::None), payload, 1);
        let err = records(&batch, &limits()).unwrap_err();
        assert_eq!(err.kafka_error_code(), 2, "{payload:?}: {err:?}");
    };
    check(b"\x01\x00\x00\x00\x01\x0csdfdsf\x00"); // negative record length
    check(b"\x18\x00\x00\x00\x01\x0csdf"); // record shorter than its length
    check(b"\x18\x00\x00\x00\x01\x0esdfdsf\x00"); // value runs past the record
    check(b"\x18\x00\x00\x00\x01\x0asdfdsf\x00"); // value shorter: bytes left over
    check(b"\x18\x00\x00\x00\x01\x0csdfdsf\x01"); // negative header count
    check(b"\x18\x00\x00\x00\x01\x0csdfdsf\x7e"); // 63 headers in 0 bytes
    check(b"\x0e\x00\x00\x00\x01\x01\x02\x01\x00"); // null header key
}

#[test]
fn transaction_markers() {
    for commit in [true, false] {
        let marker = EndTransactionMarker {
            commit,
            coordinator_epoch: 17,
        };
        let batch = marker.to_batch(500, 1_000, 42, 3).unwrap();
        let header = validate(&batch, &ValidateLimits::default()).unwrap();
        assert!(header.is_control() && header.is_transactional());
        assert_eq!((header.producer_id, header.producer_epoch), (42, 3));
        assert_eq!(header.base_sequence, -1);
        assert_eq!((header.base_offset, header.records_count), (500, 1));
        let decoded = records(&batch, &limits()).unwrap();
        let expected_type = if commit {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        };
        assert_eq!(ControlRecordType::of(&decoded[0]).unwrap(), expected_type);
        assert_eq!(
            EndTransactionMarker::from_record(&decoded[0]).unwrap(),
            marker
        );
        // Key: version 0, type; value: version 0, coordinator epoch.
        let type_id = u8::from(commit);
        assert_eq!(decoded[0].key.as_deref(), Some(&[0, 0, 0, type_id][..]));
        assert_eq!(decoded[0].value.as_deref(), Some(&[0, 0, 0, 0, 0, 17][..]));
    }
    let other = Record::new(0, 0, Some(Bytes::from_static(&[0, 0, 0, 5])), None);
    assert_eq!(
        ControlRecordType::of(&other).unwrap(),
        ControlRecordType::Other(5)
    );
    assert!(EndTransactionMarker::from_record(&other).is_err());
    let short = Record::new(0, 0, Some(Bytes::from_static(&[0, 0, 0])), None);
    assert!(ControlRecordType::of(&short).is_err());
}

fn arb_bytes(len_max: usize) -> impl Strategy<Value = Option<Bytes>> {
    prop::option::of(prop::collection::vec(any::<u8>(), 0..len_max).prop_map(Bytes::from))
}

fn arb_record(offset_delta: i32) -> impl Strategy<Value = Record> {
    (
        any::<i8>(),
        -1_000_000i64..1_000_000,
        arb_bytes(40),
        arb_bytes(200),
        prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..10), arb_bytes(20)),
            0..3,
        ),
    )
        .prop_map(
            move |(attributes, timestamp_delta, key, value, headers)| Record {
                attributes,
                timestamp_delta,
                offset_delta,
                key,
                value,
                headers: headers
                    .into_iter()
                    .map(|(k, v)| Header::new(Bytes::from(k), v))
                    .collect(),
            },
        )
}

fn arb_records() -> impl Strategy<Value = Vec<Record>> {
    (0usize..12).prop_flat_map(|count| (0..count).map(|i| arb_record(i as i32)).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn build_validate_decode_round_trip(
        records_in in arb_records(),
        codec_index in 0usize..5,
        base_offset in 0i64..1 << 40,
        base_timestamp in 0i64..1 << 41,
        producer in prop::option::of((0i64..1 << 40, 0i16..100, 0i32..1 << 30)),
    ) {
        let codec = Compression::ALL[codec_index];
        let mut builder = BatchBuilder::new(base_offset, base_timestamp).compression(codec);
        if let Some((id, epoch, sequence)) = producer {
            builder = builder.producer(id, epoch, sequence);
        }
        for record in &records_in {
            builder.push(record.clone());
        }
        let batch = builder.build().unwrap();
        let header = validate(&batch, &ValidateLimits::default()).unwrap();
        prop_assert_eq!(header.compression().unwrap(), codec);
        prop_assert_eq!(header.records_count as usize, records_in.len());
        prop_assert_eq!(header.base_offset, base_offset);
        let decoded = records(&batch, &limits()).unwrap();
        prop_assert_eq!(&decoded, &records_in);
        let found: Vec<_> = batches(&batch).collect();
        prop_assert_eq!(found.len(), 1);
        prop_assert_eq!(found[0].as_ref().unwrap().1.clone(), 0..batch.len());
    }

    #[test]
    fn flipped_bytes_are_rejected_for_every_codec(
        records_in in arb_records(),
        codec_index in 0usize..5,
        position_seed in any::<usize>(),
        bit in 0u8..8,
    ) {
        let codec = Compression::ALL[codec_index];
        let mut builder = BatchBuilder::new(0, 0).compression(codec);
        for record in &records_in {
            builder.push(record.clone());
        }
        let mut batch = builder.build().unwrap();
        // Any byte from the CRC field on is covered by the CRC (or is the CRC).
        let index = 17 + position_seed % (batch.len() - 17);
        batch[index] ^= 1 << bit;
        prop_assert!(validate(&batch, &ValidateLimits::default()).is_err());
        prop_assert!(records(&batch, &limits()).is_err());
    }

    #[test]
    fn arbitrary_payloads_never_panic(
        payload in prop::collection::vec(any::<u8>(), 0..300),
        codec_index in 0usize..5,
        records_count in -2i32..20,
    ) {
        let codec = Compression::ALL[codec_index];
        let batch = with_payload(&empty_batch(codec), &payload, records_count);
        let small = DecodeLimits { decompressed_bytes_max: 4096 };
        if let Ok(decoded) = records(&batch, &small) {
            prop_assert_eq!(decoded.len() as i32, records_count);
        }
    }
}
