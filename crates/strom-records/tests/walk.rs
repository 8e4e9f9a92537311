//! The record walk against a simple model: a record is a list of fields that this file
//! encodes itself (zig-zag varints, Kafka's layout), so that every field can be made to lie
//! on its own. Valid batches of every codec are accepted and seen as the model says; every
//! single-field lie is refused with Kafka's error code (INVALID_RECORD, 87) naming the
//! record; rebuilding a batch from some of its records keeps exactly those records.

use bytes::Bytes;
use proptest::prelude::*;
use strom_records::*;

const INVALID_RECORD: i16 = 87;

/// One record as the model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Model {
    attributes: u8,
    timestamp_delta: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// One field of one record made to lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lie {
    /// The length varint says this many bytes more (or fewer) than the fields take.
    LengthDelta(i32),
    /// The length varint is this (negative) value.
    Length(i32),
    /// The offset delta is not the record's position.
    OffsetDelta(i32),
    KeyLength(i32),
    ValueLength(i32),
    /// The header count is this value.
    HeaderCount(i32),
    /// The header count is one more than the headers present.
    OneHeaderMore,
    /// The header count is one less than the headers present (needs a header).
    OneHeaderLess,
    /// The first header's key length (needs a header).
    HeaderKeyLength(i32),
    /// The first header's value length (needs a header).
    HeaderValueLength(i32),
    /// The timestamp delta encoded in 11 bytes.
    OverlongTimestamp,
    /// The offset delta encoded in 6 bytes.
    OverlongOffsetDelta,
}

fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_unsigned(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

fn put_varlong(out: &mut Vec<u8>, value: i64) {
    put_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_unsigned(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &Option<Vec<u8>>, lie: Option<i32>) {
    match (bytes, lie) {
        (_, Some(len)) => {
            put_varint(out, len);
            if let Some(b) = bytes {
                out.extend_from_slice(b);
            }
        }
        (None, None) => put_varint(out, -1),
        (Some(b), None) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// Encodes record `index` of a batch, with `lie` applied.
fn encode(model: &Model, index: usize, lie: Option<Lie>) -> Vec<u8> {
    let mut body = vec![model.attributes];
    if lie == Some(Lie::OverlongTimestamp) {
        body.extend_from_slice(&[0x80; 10]);
        body.push(0x00);
    } else {
        put_varlong(&mut body, model.timestamp_delta);
    }
    match lie {
        Some(Lie::OffsetDelta(delta)) => put_varint(&mut body, delta),
        Some(Lie::OverlongOffsetDelta) => {
            body.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00])
        }
        _ => put_varint(&mut body, index as i32),
    }
    let key_lie = match lie {
        Some(Lie::KeyLength(len)) => Some(len),
        _ => None,
    };
    put_bytes(&mut body, &model.key, key_lie);
    let value_lie = match lie {
        Some(Lie::ValueLength(len)) => Some(len),
        _ => None,
    };
    put_bytes(&mut body, &model.value, value_lie);
    let count = model.headers.len() as i32;
    let count = match lie {
        Some(Lie::HeaderCount(c)) => c,
        Some(Lie::OneHeaderMore) => count + 1,
        Some(Lie::OneHeaderLess) => count - 1,
        _ => count,
    };
    put_varint(&mut body, count);
    for (i, (key, value)) in model.headers.iter().enumerate() {
        let key_lie = match lie {
            Some(Lie::HeaderKeyLength(len)) if i == 0 => Some(len),
            _ => None,
        };
        put_bytes(&mut body, &Some(key.clone()), key_lie);
        let value_lie = match lie {
            Some(Lie::HeaderValueLength(len)) if i == 0 => Some(len),
            _ => None,
        };
        put_bytes(&mut body, value, value_lie);
    }
    let length = match lie {
        Some(Lie::LengthDelta(delta)) => body.len() as i32 + delta,
        Some(Lie::Length(len)) => len,
        _ => body.len() as i32,
    };
    let mut out = Vec::new();
    put_varint(&mut out, length);
    out.extend_from_slice(&body);
    out
}

fn template(records_count: i32) -> BatchHeader {
    BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: -1,
        magic: MAGIC_V2,
        crc: 0,
        attributes: 0,
        last_offset_delta: records_count - 1,
        base_timestamp: 1_700_000_000_000,
        max_timestamp: 1_700_000_000_000,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records_count,
    }
}

/// The batch of `models`, the record at `lie_at` lying.
fn batch(models: &[Model], codec: Compression, lie: Option<(usize, Lie)>) -> Vec<u8> {
    let mut section = Vec::new();
    for (i, model) in models.iter().enumerate() {
        let lie = lie.filter(|(at, _)| *at == i).map(|(_, l)| l);
        section.extend_from_slice(&encode(model, i, lie));
    }
    frame_records_section(&template(models.len() as i32), codec, &section).unwrap()
}

/// What a walk handed its visitor: each record's fields and key.
type Seen = Vec<(RecordInfo, Option<Vec<u8>>)>;

fn walk(batch: &[u8], options: WalkOptions) -> Result<Seen, RecordsError> {
    let mut seen = Vec::new();
    walk_records(batch, &DecodeLimits::default(), options, |info, key| {
        seen.push((*info, key.map(<[u8]>::to_vec)));
        Ok::<_, RecordsError>(())
    })?;
    Ok(seen)
}

fn arb_bytes(len_max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..len_max)
}

fn arb_model() -> impl Strategy<Value = Model> {
    (
        any::<u8>(),
        prop_oneof![Just(0i64), -1_000_000i64..1_000_000, any::<i64>()],
        prop::option::of(arb_bytes(40)),
        prop::option::of(arb_bytes(300)),
        prop::collection::vec((arb_bytes(12), prop::option::of(arb_bytes(20))), 0..4),
    )
        .prop_map(|(attributes, timestamp_delta, key, value, headers)| Model {
            attributes,
            timestamp_delta,
            key,
            value,
            headers,
        })
}

fn arb_codec() -> impl Strategy<Value = Compression> {
    prop::sample::select(Compression::ALL.to_vec())
}

/// Every lie that applies to `model`, with values that can never be read as valid.
fn lies(model: &Model) -> Vec<Lie> {
    let mut out = vec![
        Lie::LengthDelta(1),
        Lie::LengthDelta(-1),
        Lie::LengthDelta(1000),
        Lie::Length(-1),
        Lie::Length(-5),
        Lie::Length(i32::MIN),
        Lie::OffsetDelta(-1),
        Lie::OffsetDelta(7),
        Lie::OffsetDelta(i32::MAX),
        Lie::KeyLength(-2),
        Lie::KeyLength(-5),
        Lie::KeyLength(i32::MIN),
        Lie::KeyLength(i32::MAX),
        Lie::ValueLength(-2),
        Lie::ValueLength(i32::MIN),
        Lie::ValueLength(i32::MAX),
        Lie::HeaderCount(-1),
        Lie::HeaderCount(-5),
        Lie::HeaderCount(i32::MIN),
        Lie::HeaderCount(i32::MAX),
        Lie::OneHeaderMore,
        Lie::OverlongTimestamp,
        Lie::OverlongOffsetDelta,
    ];
    if !model.headers.is_empty() {
        out.extend([
            Lie::OneHeaderLess,
            Lie::HeaderKeyLength(-1),
            Lie::HeaderKeyLength(-7),
            Lie::HeaderKeyLength(i32::MAX),
            Lie::HeaderValueLength(-2),
            Lie::HeaderValueLength(i32::MAX),
        ]);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn valid_batches_are_walked_as_the_model_says(
        models in prop::collection::vec(arb_model(), 1..6),
        codec in arb_codec(),
    ) {
        let bytes = batch(&models, codec, None);
        let seen = walk(&bytes, WalkOptions::CLIENT.with_keys(true)).unwrap();
        prop_assert_eq!(seen.len(), models.len());
        for (i, ((info, key), model)) in seen.iter().zip(&models).enumerate() {
            prop_assert_eq!(info.index, i);
            prop_assert_eq!(info.offset_delta, i as i32);
            prop_assert_eq!(info.attributes as u8, model.attributes);
            prop_assert_eq!(info.timestamp_delta, model.timestamp_delta);
            prop_assert_eq!(info.key_bytes, model.key.as_ref().map(Vec::len));
            prop_assert_eq!(info.value_bytes, model.value.as_ref().map(Vec::len));
            prop_assert_eq!(info.header_count, model.headers.len());
            prop_assert_eq!(info.size_bytes, encode(model, i, None).len());
            prop_assert_eq!(key, &model.key);
        }
        // Without keys asked for, none are handed over.
        let seen = walk(&bytes, WalkOptions::CLIENT).unwrap();
        prop_assert!(seen.iter().all(|(_, key)| key.is_none()));
        // The materialising decoder agrees.
        let decoded = records(&bytes, &DecodeLimits::default()).unwrap();
        prop_assert_eq!(decoded.len(), models.len());
        for (record, model) in decoded.iter().zip(&models) {
            prop_assert_eq!(record.key.as_deref(), model.key.as_deref());
            prop_assert_eq!(record.headers.len(), model.headers.len());
        }
    }

    #[test]
    fn every_single_field_lie_is_refused(
        models in prop::collection::vec(arb_model(), 1..4),
        codec in arb_codec(),
        pick in any::<prop::sample::Index>(),
    ) {
        let at = pick.index(models.len());
        for lie in lies(&models[at]) {
            let bytes = batch(&models, codec, Some((at, lie)));
            let err = walk(&bytes, WalkOptions::CLIENT).unwrap_err();
            prop_assert_eq!(err.kafka_error_code(), INVALID_RECORD, "{:?}: {:?}", lie, err);
            match err {
                RecordsError::InvalidRecordAt { record_index, .. } => {
                    prop_assert_eq!(record_index, at, "{:?}", lie)
                }
                other => prop_assert!(false, "{:?} gave {:?}", lie, other),
            }
        }
    }

    #[test]
    fn stored_batches_may_have_any_offset_deltas(
        models in prop::collection::vec(arb_model(), 1..4),
        codec in arb_codec(),
        delta in any::<i32>(),
    ) {
        let at = models.len() - 1;
        let bytes = batch(&models, codec, Some((at, Lie::OffsetDelta(delta))));
        let seen = walk(&bytes, WalkOptions::STORED).unwrap();
        prop_assert_eq!(seen[at].0.offset_delta, delta);
    }

    #[test]
    fn record_counts_must_match_the_records(
        models in prop::collection::vec(arb_model(), 1..4),
        codec in arb_codec(),
        more in any::<bool>(),
    ) {
        let mut section = Vec::new();
        for (i, model) in models.iter().enumerate() {
            section.extend_from_slice(&encode(model, i, None));
        }
        let n = models.len() as i32;
        let claimed = if more { n + 1 } else { n - 1 };
        let bytes = frame_records_section(&template(claimed), codec, &section).unwrap();
        let err = walk(&bytes, WalkOptions::CLIENT).unwrap_err();
        prop_assert_eq!(err.kafka_error_code(), INVALID_RECORD);
        if more {
            let expected = RecordsError::InvalidRecordAt {
                record_index: models.len(),
                reason: "fewer records than the batch's record count",
            };
            prop_assert_eq!(err, expected);
        } else {
            let is_trailing = matches!(err, RecordsError::InvalidRecord { .. });
            prop_assert!(is_trailing);
        }
    }

    #[test]
    fn truncated_records_are_refused(
        models in prop::collection::vec(arb_model(), 1..4),
        codec in arb_codec(),
        cut in 1usize..8,
    ) {
        let mut section = Vec::new();
        for (i, model) in models.iter().enumerate() {
            section.extend_from_slice(&encode(model, i, None));
        }
        section.truncate(section.len().saturating_sub(cut));
        let bytes = frame_records_section(&template(models.len() as i32), codec, &section).unwrap();
        let err = walk(&bytes, WalkOptions::CLIENT).unwrap_err();
        prop_assert_eq!(err.kafka_error_code(), INVALID_RECORD);
        let is_last = matches!(err, RecordsError::InvalidRecordAt { record_index, .. } if record_index == models.len() - 1);
        prop_assert!(is_last, "{:?}", err);
    }

    #[test]
    fn retained_records_are_exactly_the_kept_ones(
        models in prop::collection::vec(arb_model(), 1..8),
        codec in arb_codec(),
        mask in any::<u8>(),
    ) {
        let mut builder = BatchBuilder::new(40, 1_000).compression(codec).last_offset_delta(20);
        for (i, model) in models.iter().enumerate() {
            builder.push(Record {
                attributes: model.attributes as i8,
                timestamp_delta: model.timestamp_delta,
                offset_delta: 2 * i as i32,
                key: model.key.clone().map(Bytes::from),
                value: model.value.clone().map(Bytes::from),
                headers: model
                    .headers
                    .iter()
                    .map(|(k, v)| Header::new(Bytes::from(k.clone()), v.clone().map(Bytes::from)))
                    .collect(),
            });
        }
        let original = builder.build().unwrap();
        let keep = |i: usize| mask & (1 << i) != 0;
        let limits = DecodeLimits::default();
        let retained = retain_records(&original, &limits, Rebuild::default(), keep).unwrap();
        let header = validate(&retained.batch, &ValidateLimits { batch_bytes_max: usize::MAX }).unwrap();
        let before = BatchHeader::parse(&original).unwrap();
        let expected: Vec<Record> = records(&original, &limits)
            .unwrap()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .map(|(_, r)| r)
            .collect();
        prop_assert_eq!(retained.records_kept, expected.len());
        if expected.is_empty() {
            prop_assert_eq!(&retained.batch, &empty_batch(&before).unwrap());
            return Ok(());
        }
        prop_assert_eq!(header.records_count as usize, expected.len());
        prop_assert_eq!(
            (header.base_offset, header.last_offset_delta, header.base_timestamp, header.max_timestamp),
            (before.base_offset, before.last_offset_delta, before.base_timestamp, before.max_timestamp)
        );
        prop_assert_eq!(header.compression().unwrap(), codec);
        prop_assert_eq!(records(&retained.batch, &limits).unwrap(), expected.clone());
        walk(&retained.batch, WalkOptions::STORED).unwrap();

        // With a delete horizon: the base timestamp holds it, the bit is set, and every kept
        // record keeps its absolute timestamp and all else.
        let horizon = 1_000_000;
        let rebuild = Rebuild { delete_horizon_ms: Some(horizon) };
        let marked = retain_records(&original, &limits, rebuild, keep).unwrap();
        let h = validate(&marked.batch, &ValidateLimits { batch_bytes_max: usize::MAX }).unwrap();
        prop_assert!(h.has_delete_horizon());
        prop_assert_eq!(h.base_timestamp, horizon);
        prop_assert_eq!(h.compression().unwrap(), codec);
        let rebased = records(&marked.batch, &limits).unwrap();
        prop_assert_eq!(rebased.len(), expected.len());
        for (after, before_record) in rebased.iter().zip(&expected) {
            prop_assert_eq!(after.timestamp_ms(&h), before_record.timestamp_ms(&before));
            prop_assert_eq!(
                (&after.key, &after.value, &after.headers, after.offset_delta),
                (&before_record.key, &before_record.value, &before_record.headers, before_record.offset_delta)
            );
        }
    }
}

#[test]
fn lying_header_counts_from_the_probe() {
    // A header count of 2^31-1 and of -5 (the broker stored both before): INVALID_RECORD.
    let model = Model {
        attributes: 0,
        timestamp_delta: 0,
        key: Some(b"k".to_vec()),
        value: Some(b"v".to_vec()),
        headers: Vec::new(),
    };
    for codec in Compression::ALL {
        for count in [i32::MAX, -5] {
            let bytes = batch(
                std::slice::from_ref(&model),
                codec,
                Some((0, Lie::HeaderCount(count))),
            );
            let err = walk(&bytes, WalkOptions::CLIENT).unwrap_err();
            assert_eq!(
                err.kafka_error_code(),
                INVALID_RECORD,
                "{codec:?} {count}: {err:?}"
            );
        }
    }
}

#[test]
fn decompression_budget_bounds_the_walk() {
    let model = Model {
        attributes: 0,
        timestamp_delta: 0,
        key: None,
        value: Some(vec![7; 200_000]),
        headers: Vec::new(),
    };
    for codec in Compression::ALL
        .into_iter()
        .filter(|c| *c != Compression::None)
    {
        let bytes = batch(std::slice::from_ref(&model), codec, None);
        let tight = DecodeLimits {
            decompressed_bytes_max: 100_000,
        };
        let err = walk_records(&bytes, &tight, WalkOptions::CLIENT, |_, _| {
            Ok::<_, RecordsError>(())
        })
        .unwrap_err();
        assert_eq!(
            err,
            RecordsError::DecompressedTooLarge {
                limit_bytes: 100_000
            },
            "{codec:?}"
        );
        assert_eq!(err.kafka_error_code(), 10);
        let summary = walk_records(
            &bytes,
            &DecodeLimits::default(),
            WalkOptions::CLIENT,
            |_, _| Ok::<_, RecordsError>(()),
        )
        .unwrap();
        assert_eq!(summary.records, 1);
        assert_eq!(summary.plain_bytes, encode(&model, 0, None).len());
    }
}

#[test]
fn damaged_compressed_streams_are_invalid_records() {
    let model = Model {
        attributes: 0,
        timestamp_delta: 0,
        key: Some(b"key".to_vec()),
        value: Some(vec![1; 5_000]),
        headers: vec![(b"h".to_vec(), None)],
    };
    for codec in Compression::ALL
        .into_iter()
        .filter(|c| *c != Compression::None)
    {
        let good = batch(std::slice::from_ref(&model), codec, None);
        for cut in [1, 5, 20] {
            let payload = &good[BATCH_HEADER_BYTES..good.len() - cut];
            let header = BatchHeader::parse(&good).unwrap();
            let mut damaged = good[..BATCH_HEADER_BYTES].to_vec();
            damaged.extend_from_slice(payload);
            let length = (damaged.len() - 12) as i32;
            damaged[8..12].copy_from_slice(&length.to_be_bytes());
            assert_eq!(header.records_count, 1);
            let result = walk(&damaged, WalkOptions::CLIENT);
            if codec == Compression::Lz4 && cut == 1 {
                // lz4_flex ends a frame at a partial end mark: the records are whole.
                assert!(result.is_ok(), "{result:?}");
                continue;
            }
            let err = result.unwrap_err();
            assert_eq!(
                err.kafka_error_code(),
                INVALID_RECORD,
                "{codec:?} cut {cut}: {err:?}"
            );
        }
    }
}

#[test]
fn visitor_errors_end_the_walk() {
    let models = vec![
        Model {
            attributes: 0,
            timestamp_delta: 0,
            key: None,
            value: None,
            headers: Vec::new(),
        };
        3
    ];
    let bytes = batch(&models, Compression::Gzip, None);
    let mut visited = 0;
    let result = walk_records(
        &bytes,
        &DecodeLimits::default(),
        WalkOptions::CLIENT,
        |info, _| {
            visited += 1;
            if info.index == 1 {
                return Err(RecordsError::InvalidRecord { reason: "stop" });
            }
            Ok(())
        },
    );
    assert_eq!(result, Err(RecordsError::InvalidRecord { reason: "stop" }));
    assert_eq!(visited, 2);
}
