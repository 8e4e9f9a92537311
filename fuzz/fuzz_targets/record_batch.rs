//! Fuzz target: batch iteration, validation, the record walk, rebuilding from kept records
//! and record decoding on arbitrary bytes, with small limits, must never panic; the walk
//! and the decoder must agree on every batch both accept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_records::{
    batches, records, retain_records, validate, validate_client_batch, walk_records,
    BatchBuilder, BatchHeader, DecodeLimits, Rebuild, Record, RecordInfo, RecordsError,
    ValidateLimits, WalkOptions,
};

const VALIDATE: ValidateLimits = ValidateLimits {
    batch_bytes_max: 64 * 1024,
};
const DECODE: DecodeLimits = DecodeLimits {
    decompressed_bytes_max: 64 * 1024,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        // Random bytes almost never carry a right CRC and length: fix both so that the
        // fuzzer reaches decompression and record decoding.
        let mut batch = rest.to_vec();
        seal(&mut batch);
        exercise(&batch);
    } else {
        exercise(rest);
    }
});

fn exercise(buf: &[u8]) {
    for item in batches(buf) {
        let Ok((header, range)) = item else { break };
        let Some(batch) = buf.get(range) else { break };
        assert_eq!(header.size_bytes(), batch.len());
        let validated = validate(
            batch,
            &ValidateLimits {
                batch_bytes_max: usize::MAX,
            },
        );
        assert_eq!(validated.ok(), Some(header));
        let decoded = records(batch, &DECODE);
        if let Ok(decoded) = &decoded {
            assert_eq!(decoded.len() as i64, i64::from(header.records_count));
            check_rebuild(&header, decoded.clone());
        }
        check_walk(batch, &header, decoded.ok());
    }
    let _ = validate(buf, &VALIDATE);
    let _ = validate_client_batch(buf, &VALIDATE);
    let _ = records(buf, &DECODE);
    let _ = walk_records(buf, &DECODE, WalkOptions::CLIENT, |_, _| Ok::<_, RecordsError>(()));
}

/// The walk sees what the decoder sees whenever it accepts a batch (the decoder also
/// accepts lengths below -1 as null, which the walk refuses), and a batch rebuilt from all
/// or none of its records is valid and decodes to those records.
fn check_walk(batch: &[u8], header: &BatchHeader, decoded: Option<Vec<Record>>) {
    let mut seen: Vec<(RecordInfo, Option<Vec<u8>>)> = Vec::new();
    let walked = walk_records(batch, &DECODE, WalkOptions::STORED.with_keys(true), |info, key| {
        seen.push((*info, key.map(<[u8]>::to_vec)));
        Ok::<_, RecordsError>(())
    });
    // The client rules only add refusals.
    let client = walk_records(batch, &DECODE, WalkOptions::CLIENT, |_, _| {
        Ok::<_, RecordsError>(())
    });
    if client.is_ok() {
        assert!(walked.is_ok());
    }
    let Ok(summary) = walked else { return };
    assert_eq!(summary.records as i64, i64::from(header.records_count));
    let Some(decoded) = decoded else {
        return;
    };
    assert_eq!(decoded.len(), seen.len());
    for (record, (info, key)) in decoded.iter().zip(&seen) {
        assert_eq!(record.offset_delta, info.offset_delta);
        assert_eq!(record.timestamp_delta, info.timestamp_delta);
        assert_eq!(record.key.as_deref(), key.as_deref());
        assert_eq!(record.key.as_ref().map(|k| k.len()), info.key_bytes);
        assert_eq!(record.value.as_ref().map(|v| v.len()), info.value_bytes);
        assert_eq!(record.headers.len(), info.header_count);
    }
    let unbounded = DecodeLimits {
        decompressed_bytes_max: usize::MAX,
    };
    let all = retain_records(batch, &DECODE, Rebuild::default(), |_| true)
        .expect("a walked batch rebuilds");
    assert_eq!(all.records_kept, decoded.len());
    assert_eq!(records(&all.batch, &unbounded).ok(), Some(decoded.clone()));
    // A delete horizon moves the base timestamp; every record keeps its absolute one
    // (where no arithmetic saturates).
    let horizon_ms = header.base_timestamp.saturating_add(12_345);
    let horizon = Rebuild {
        delete_horizon_ms: Some(horizon_ms),
    };
    let marked = retain_records(batch, &DECODE, horizon, |_| true).expect("a walked batch rebuilds");
    let marked_header = BatchHeader::parse(&marked.batch).expect("a rebuilt header");
    // (With no records the result is Kafka's empty header, whose base timestamp is -1.)
    if !decoded.is_empty() {
        assert_eq!(marked_header.base_timestamp, horizon_ms);
        assert!(marked_header.has_delete_horizon());
    }
    if let Ok(rebased) = records(&marked.batch, &unbounded) {
        assert_eq!(rebased.len(), decoded.len());
        for (after, before) in rebased.iter().zip(&decoded) {
            let exact = header
                .base_timestamp
                .checked_sub(horizon_ms)
                .and_then(|rebase| before.timestamp_delta.checked_add(rebase))
                .and_then(|delta| horizon_ms.checked_add(delta))
                .zip(header.base_timestamp.checked_add(before.timestamp_delta));
            if let Some((rebased_ms, original_ms)) = exact {
                assert_eq!(rebased_ms, original_ms);
                assert_eq!(after.timestamp_ms(&marked_header), before.timestamp_ms(header));
            }
        }
    }
    let none = retain_records(batch, &DECODE, Rebuild::default(), |_| false)
        .expect("a walked batch rebuilds");
    assert_eq!(none.records_kept, 0);
    let empty = validate(
        &none.batch,
        &ValidateLimits {
            batch_bytes_max: usize::MAX,
        },
    )
    .expect("an emptied batch is valid");
    assert_eq!(empty.records_count, 0);
    assert_eq!(empty.compression().ok(), Some(strom_records::Compression::None));
}

/// Decoded records re-encode (uncompressed) into a batch that decodes to the same records.
fn check_rebuild(header: &BatchHeader, decoded: Vec<Record>) {
    let mut builder = BatchBuilder::new(header.base_offset, header.base_timestamp)
        .last_offset_delta(header.last_offset_delta);
    for record in &decoded {
        builder.push(record.clone());
    }
    let Ok(rebuilt) = builder.build() else { return };
    let again = records(
        &rebuilt,
        &DecodeLimits {
            decompressed_bytes_max: usize::MAX,
        },
    );
    assert_eq!(again.ok(), Some(decoded));
}

/// Writes a consistent batch length and CRC into a buffer long enough for a header.
fn seal(batch: &mut [u8]) {
    if batch.len() < strom_records::BATCH_HEADER_BYTES {
        return;
    }
    let batch_length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
    batch[16] = strom_records::MAGIC_V2 as u8;
    let crc = crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Bitwise CRC-32C, so the fuzz crate needs no extra dependency.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
