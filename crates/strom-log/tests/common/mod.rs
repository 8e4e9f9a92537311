//! Helpers shared by the integration tests: batch construction, opening logs on the
//! simulated file system, reading a whole log back.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strom_log::fs::{FileSystem, SimFs};
use strom_log::{HandleCache, Log, LogConfig};
use strom_records::{batches, BatchBuilder};

pub fn dir() -> PathBuf {
    PathBuf::from("/data/topic-0")
}

/// A client batch of `records` records with `value_bytes`-byte values at `timestamp_ms`.
pub fn batch(records: usize, value_bytes: usize, timestamp_ms: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(0, timestamp_ms);
    for i in 0..records {
        let value = vec![(i % 251) as u8; value_bytes];
        b.append(
            timestamp_ms + i as i64,
            Some(format!("k{i}").into_bytes().into()),
            Some(value.into()),
            Vec::new(),
        )
        .unwrap();
    }
    b.build().unwrap()
}

pub fn open_sim(fs: &SimFs, config: LogConfig, now_ms: i64) -> Result<Log, strom_log::LogError> {
    let fs: Arc<dyn FileSystem> = Arc::new(fs.clone());
    Log::open(&dir(), config, Arc::new(HandleCache::new(fs, 16)), now_ms)
}

pub fn open_in(fs: Arc<dyn FileSystem>, dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config, Arc::new(HandleCache::new(fs, 16)), 0).unwrap()
}

/// Every batch of the log from its start, read in chunks through `Log::read`, checked to
/// be contiguous whole batches; returns (base offset, bytes) per batch.
pub fn read_all(log: &Log) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    for _ in 0..100_000 {
        if offset >= end {
            break;
        }
        let info = log.read(offset, 3000, i64::MAX).unwrap();
        let range = info.range.expect("data below the log end offset");
        let bytes = range.read_bytes().unwrap();
        let mut next = offset;
        for item in batches(&bytes) {
            let (header, r) = item.expect("whole valid batches");
            out.push((header.base_offset, bytes[r].to_vec()));
            next = header.next_offset();
        }
        assert_eq!(next, range.next_offset);
        assert!(next > offset, "reads make progress");
        offset = next;
    }
    assert_eq!(offset, end, "read up to the log end offset");
    out
}
