//! Fuzz target: batch iteration, validation and record decoding on arbitrary bytes,
//! with small limits, must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_records::{
    batches, records, validate, BatchBuilder, BatchHeader, DecodeLimits, Record, ValidateLimits,
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
        if let Ok(decoded) = records(batch, &DECODE) {
            assert_eq!(decoded.len() as i64, i64::from(header.records_count));
            check_rebuild(&header, decoded);
        }
    }
    let _ = validate(buf, &VALIDATE);
    let _ = records(buf, &DECODE);
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
