//! The pure part of compaction: the key map (latest offset per key) and rewriting one
//! batch without its superseded records and expired tombstones. No I/O here.
//!
//! Rewritten batches keep their base offset, last offset delta, max timestamp, producer
//! fields, attributes and compression; only the records inside change. Control and
//! transactional batches are kept whole (transaction cleanup is not implemented).

use std::collections::HashMap;

use strom_records::{
    records, BatchBuilder, BatchHeader, DecodeLimits, Record, RecordsError, TimestampType,
};

/// Bounds on one compaction pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionLimits {
    /// Memory for the key map (key bytes plus a fixed overhead per key); segments whose
    /// keys do not fit wait for the next pass.
    pub key_map_bytes_max: usize,
    /// Bound on one batch's decompressed records.
    pub decompressed_bytes_max: usize,
}

impl Default for CompactionLimits {
    fn default() -> Self {
        CompactionLimits {
            key_map_bytes_max: 128 * 1024 * 1024,
            decompressed_bytes_max: 64 * 1024 * 1024,
        }
    }
}

/// Bytes charged per key on top of its length (hash map entry, offset, allocation).
const KEY_OVERHEAD_BYTES: usize = 64;

/// Latest offset of every key seen.
#[derive(Debug, Default, Clone)]
pub struct KeyMap {
    offsets: HashMap<Vec<u8>, i64>,
    bytes: usize,
}

impl KeyMap {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.offsets.get(key).copied()
    }

    /// Records the keys of one batch (control batches carry no user keys).
    pub fn add_batch(&mut self, header: &BatchHeader, decoded: &[Record]) {
        if header.is_control() {
            return;
        }
        for record in decoded {
            if let Some(key) = &record.key {
                let offset = record.offset(header);
                match self.offsets.get_mut(key.as_ref()) {
                    Some(latest) => *latest = (*latest).max(offset),
                    None => {
                        self.bytes += key.len() + KEY_OVERHEAD_BYTES;
                        self.offsets.insert(key.to_vec(), offset);
                    }
                }
            }
        }
    }

    /// Adds all keys of `other` (a later part of the log).
    pub fn merge(&mut self, other: KeyMap) {
        for (key, offset) in other.offsets {
            match self.offsets.get_mut(&key) {
                Some(latest) => *latest = (*latest).max(offset),
                None => {
                    self.bytes += key.len() + KEY_OVERHEAD_BYTES;
                    self.offsets.insert(key, offset);
                }
            }
        }
    }
}

/// Decodes a batch's records for compaction.
pub fn decode(batch: &[u8], limits: &CompactionLimits) -> Result<Vec<Record>, RecordsError> {
    records(
        batch,
        &DecodeLimits {
            decompressed_bytes_max: limits.decompressed_bytes_max,
        },
    )
}

/// What happened to one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Cleaned {
    /// Nothing removed: copy the original bytes.
    Unchanged,
    /// Some records removed: the rewritten batch (possibly with no records left).
    Rewritten {
        batch: Vec<u8>,
        records_removed: usize,
        tombstones_removed: usize,
    },
}

/// Drops the records of `batch` that a later record with the same key supersedes, and
/// tombstones whose batch is older than `tombstone_horizon_ms`.
pub fn clean_batch(
    header: &BatchHeader,
    decoded: Vec<Record>,
    map: &KeyMap,
    tombstone_horizon_ms: i64,
) -> Result<Cleaned, RecordsError> {
    if header.is_control() || header.is_transactional() {
        return Ok(Cleaned::Unchanged);
    }
    let total = decoded.len();
    let mut tombstones_removed = 0;
    let kept: Vec<Record> = decoded
        .into_iter()
        .filter(|record| {
            let Some(key) = &record.key else { return true };
            let offset = record.offset(header);
            if map.latest(key).is_some_and(|latest| latest > offset) {
                return false;
            }
            if record.value.is_none() && header.max_timestamp < tombstone_horizon_ms {
                tombstones_removed += 1;
                return false;
            }
            true
        })
        .collect();
    if kept.len() == total {
        return Ok(Cleaned::Unchanged);
    }
    let records_removed = total - kept.len();
    let mut builder = BatchBuilder::new(header.base_offset, header.base_timestamp)
        .partition_leader_epoch(header.partition_leader_epoch)
        .producer(
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
        )
        .compression(header.compression()?)
        .delete_horizon(header.has_delete_horizon())
        .last_offset_delta(header.last_offset_delta);
    builder = match header.timestamp_type() {
        TimestampType::LogAppendTime => builder.log_append_time(header.max_timestamp),
        TimestampType::CreateTime => builder.max_timestamp(header.max_timestamp),
    };
    for record in kept {
        builder.push(record);
    }
    Ok(Cleaned::Rewritten {
        batch: builder.build()?,
        records_removed,
        tombstones_removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_records::{validate, Compression, ValidateLimits};

    fn batch(base: i64, keys: &[(&str, Option<&str>)], compression: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(base, 1000).compression(compression);
        for (key, value) in keys {
            b.append(
                1000,
                Some(key.as_bytes().to_vec().into()),
                value.map(|v| v.as_bytes().to_vec().into()),
                Vec::new(),
            )
            .unwrap();
        }
        b.build().unwrap()
    }

    #[test]
    fn keeps_latest_per_key_and_batch_bounds() {
        for compression in [Compression::None, Compression::Gzip] {
            let first = batch(
                10,
                &[("a", Some("1")), ("b", Some("1")), ("a", Some("2"))],
                compression,
            );
            let second = batch(13, &[("b", None), ("c", Some("1"))], compression);
            let limits = CompactionLimits::default();
            let mut map = KeyMap::default();
            for bytes in [&first, &second] {
                let h = BatchHeader::parse(bytes).unwrap();
                map.add_batch(&h, &decode(bytes, &limits).unwrap());
            }
            assert_eq!(map.latest(b"a"), Some(12));
            assert_eq!(map.latest(b"b"), Some(13));
            let h = BatchHeader::parse(&first).unwrap();
            let cleaned = clean_batch(&h, decode(&first, &limits).unwrap(), &map, 0).unwrap();
            let Cleaned::Rewritten {
                batch,
                records_removed,
                ..
            } = cleaned
            else {
                panic!("rewritten")
            };
            assert_eq!(records_removed, 2);
            let nh = validate(&batch, &ValidateLimits::default()).unwrap();
            assert_eq!(
                (nh.base_offset, nh.last_offset(), nh.max_timestamp),
                (10, 12, h.max_timestamp)
            );
            assert_eq!(nh.compression().unwrap(), compression);
            let left = decode(&batch, &limits).unwrap();
            assert_eq!(left.len(), 1);
            assert_eq!(left[0].offset(&nh), 12);
            // The tombstone for b survives until the horizon passes its batch.
            let h2 = BatchHeader::parse(&second).unwrap();
            let kept = clean_batch(&h2, decode(&second, &limits).unwrap(), &map, 0).unwrap();
            assert_eq!(kept, Cleaned::Unchanged);
            let dropped = clean_batch(&h2, decode(&second, &limits).unwrap(), &map, 5000).unwrap();
            let Cleaned::Rewritten {
                tombstones_removed,
                batch,
                ..
            } = dropped
            else {
                panic!("rewritten")
            };
            assert_eq!(tombstones_removed, 1);
            assert_eq!(BatchHeader::parse(&batch).unwrap().last_offset(), 14);
        }
    }
}
