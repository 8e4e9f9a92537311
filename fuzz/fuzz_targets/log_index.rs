//! Fuzz target: loading and using a partition log's index files must never panic on
//! arbitrary bytes. Two modes, picked by the first byte:
//! - decode: `OffsetIndex::decode` / `TimeIndex::decode` on raw bytes with fuzzed limits;
//!   an index that decodes must re-encode to the same bytes and answer lookups like a
//!   linear scan;
//! - directory: a small real log is written on the simulated file system (batch shapes from
//!   the input), closed cleanly or crashed, then its `.index`, `.timeindex`, `.log` and
//!   checkpoint files are damaged as the input says; the log is reopened, read end to end,
//!   searched by timestamp, appended to, closed and reopened. Errors are fine, panics and
//!   hangs are not.
#![no_main]

use std::path::PathBuf;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strom_log::checkpoint::{Checkpoint, CHECKPOINT_FILE};
use strom_log::fs::{FileSystem, SimFs};
use strom_log::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use strom_log::{AppendOrigin, HandleCache, Log, LogConfig};
use strom_records::{batches, BatchBuilder};

/// Reads the fuzz input front to back; past its end every read yields zeros.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.data.split_first() else {
            return 0;
        };
        self.data = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
    fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input { data };
    if input.byte() & 1 == 0 {
        decode_indexes(&mut input);
    } else {
        damaged_directory(&mut input);
    }
});

// ---------------------------------------------------------------------------------------
// Mode 1: the index decoders on raw bytes.

fn decode_indexes(input: &mut Input<'_>) {
    let entries_max = usize::from(input.u16());
    let segment_bytes = u64::from(input.u32());
    let rest = input.rest();
    let split = usize::from(rest.first().copied().unwrap_or(0)) * 12;
    let (offset_bytes, time_bytes) = rest.split_at(split.min(rest.len()));
    if let Ok(index) = OffsetIndex::decode(offset_bytes, entries_max, segment_bytes) {
        check_offset_index(index, offset_bytes, entries_max, segment_bytes);
    }
    if let Ok(index) = TimeIndex::decode(time_bytes, entries_max) {
        check_time_index(index, time_bytes, entries_max);
    }
}

fn check_offset_index(mut index: OffsetIndex, bytes: &[u8], entries_max: usize, seg: u64) {
    assert!(index.len() <= entries_max);
    assert_eq!(index.encode(), bytes, "decode then encode is lossless");
    let entries = index.entries().to_vec();
    let mut probes = vec![0u32, u32::MAX];
    for e in &entries {
        assert!(u64::from(e.position) < seg);
        probes.extend([
            e.relative_offset.wrapping_sub(1),
            e.relative_offset,
            e.relative_offset.wrapping_add(1),
        ]);
    }
    for probe in probes {
        let expected = entries
            .iter()
            .rev()
            .find(|e| e.relative_offset <= probe)
            .map_or(0, |e| e.position);
        assert_eq!(index.lookup(probe), expected, "floor lookup of {probe}");
    }
    if let Some(last) = index.last() {
        let next = OffsetEntry {
            relative_offset: last.relative_offset.saturating_add(1),
            position: last.position.saturating_add(1),
        };
        let _ = index.push(next);
    }
}

fn check_time_index(mut index: TimeIndex, bytes: &[u8], entries_max: usize) {
    assert!(index.len() <= entries_max);
    assert_eq!(index.encode(), bytes, "decode then encode is lossless");
    let entries = index.entries().to_vec();
    let mut probes = vec![i64::MIN, -1, 0, i64::MAX];
    for e in &entries {
        probes.extend([
            e.timestamp_ms.saturating_sub(1),
            e.timestamp_ms,
            e.timestamp_ms.saturating_add(1),
        ]);
    }
    for probe in probes {
        let expected = entries
            .iter()
            .rev()
            .find(|e| e.timestamp_ms <= probe)
            .copied();
        assert_eq!(index.lookup(probe), expected, "floor lookup of {probe}");
    }
    let _ = index.is_full();
    if let Some(last) = index.last() {
        let next = TimeEntry {
            timestamp_ms: last.timestamp_ms.saturating_add(1),
            relative_offset: last.relative_offset,
        };
        let _ = index.push(next, true);
    }
}

// ---------------------------------------------------------------------------------------
// Mode 2: a log directory with damaged files.

fn dir() -> PathBuf {
    PathBuf::from("/fuzz/topic-0")
}

/// Small limits so that a few batches roll segments and fill indexes.
fn config(input: &mut Input<'_>) -> LogConfig {
    let base = LogConfig::test_min();
    let flags = input.byte();
    LogConfig {
        // Sometimes reopen with other index limits than the files were written with.
        segment_index_bytes: if flags & 1 == 1 {
            24 + u64::from(flags >> 1) * 4
        } else {
            base.segment_index_bytes
        },
        index_interval_bytes: 64 + u64::from(flags >> 4) * 64,
        ..base
    }
}

fn open(fs: &SimFs, config: LogConfig) -> Result<Log, strom_log::LogError> {
    let fs: Arc<dyn FileSystem> = Arc::new(fs.clone());
    Log::open(&dir(), config, Arc::new(HandleCache::new(fs, 4)), 0)
}

/// xorshift64: batch shapes come from a seed so that short inputs still build long logs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 24) as u8
    }
}

fn batch(rng: &mut Rng, timestamp_ms: i64) -> Vec<u8> {
    let shape = rng.byte();
    let records = 1 + usize::from(shape & 3);
    let value_bytes = usize::from(rng.byte()) * 2;
    let mut builder = BatchBuilder::new(0, timestamp_ms);
    for i in 0..records {
        let value = vec![i as u8; value_bytes];
        // Records may go back in time inside a batch, as producers allow.
        let ts = timestamp_ms + i64::from(shape >> 2) - 32;
        if builder
            .append(
                ts,
                Some(vec![i as u8].into()),
                Some(value.into()),
                Vec::new(),
            )
            .is_err()
        {
            break;
        }
    }
    builder.build().unwrap_or_default()
}

/// Writes the starting log: up to 63 batches through the real append path, shaped by a
/// seeded generator.
fn write_log(fs: &SimFs, input: &mut Input<'_>) -> Option<()> {
    let log = open(fs, LogConfig::test_min()).ok()?;
    let n = input.byte() % 64;
    let mut rng = Rng(u64::from(input.u16()) << 16 | 0x9E37);
    let mut timestamp_ms = 1_000;
    for _ in 0..n {
        timestamp_ms += i64::from(rng.byte() % 16);
        let mut b = batch(&mut rng, timestamp_ms);
        if b.is_empty() {
            continue;
        }
        let _ = log.append(&mut b, AppendOrigin::Client, timestamp_ms);
    }
    if input.byte() & 1 == 1 {
        log.close().ok()?;
    }
    Some(())
}

/// The files of the log directory, sorted, for picking one by number.
fn files(fs: &SimFs) -> Vec<PathBuf> {
    let mut names = fs.list_dir(&dir()).unwrap_or_default();
    names.sort();
    names.into_iter().map(|n| dir().join(n)).collect()
}

/// One damage step chosen by the input.
fn damage(fs: &SimFs, input: &mut Input<'_>) {
    let files = files(fs);
    let op = input.byte();
    if op % 8 == 7 {
        // A well-formed checkpoint with chosen values (a bad one is just ignored).
        let checkpoint = Checkpoint {
            recovery_point: i64::from(input.u16() as i16),
            log_start_offset: i64::from(input.u16() as i16),
            clean_shutdown: input.byte() & 1 == 1,
        };
        let path = dir().join(CHECKPOINT_FILE);
        if !fs.replace_contents(&path, checkpoint.encode().to_vec()) {
            if let Ok(file) = fs.create(&path) {
                let _ = strom_log::fs::write_all_at(file.as_ref(), 0, &checkpoint.encode());
            }
        }
        return;
    }
    // Index files most of the time: that is what this target is about.
    let pick = usize::from(input.byte());
    let candidates: Vec<&PathBuf> = if op & 0x80 == 0 {
        files
            .iter()
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "index" || e == "timeindex")
            })
            .collect()
    } else {
        files.iter().collect()
    };
    let Some(path) = candidates.get(pick % candidates.len().max(1)) else {
        return;
    };
    let Some(mut contents) = fs.contents(path) else {
        return;
    };
    let position = usize::from(input.u16());
    let len = usize::from(input.byte());
    match op % 8 {
        0 | 1 => {
            // Overwrite a stretch with input bytes.
            let bytes = input.take(len);
            let end = position.saturating_add(bytes.len());
            if contents.len() < end {
                contents.resize(end.min(1 << 16), 0);
            }
            for (i, b) in bytes.iter().enumerate() {
                if let Some(slot) = contents.get_mut(position + i) {
                    *slot = *b;
                }
            }
        }
        2 => contents.truncate(position % (contents.len() + 1)),
        3 => contents.extend_from_slice(input.take(len)),
        4 => {
            // Flip bits in one byte.
            let mask = input.byte() | 1;
            let at = position % contents.len().max(1);
            if let Some(slot) = contents.get_mut(at) {
                *slot ^= mask;
            }
        }
        5 => contents = input.take(len).to_vec(),
        _ => {
            // A plausible entry appended: increasing, but pointing wherever it says.
            contents.extend_from_slice(input.take(if op & 1 == 0 { 8 } else { 12 }));
        }
    }
    fs.replace_contents(path, contents);
}

fn damaged_directory(input: &mut Input<'_>) {
    let fs = SimFs::new();
    if write_log(&fs, input).is_none() {
        return;
    }
    let fs = if input.byte() & 1 == 1 {
        fs.crash(u64::from(input.u32()))
    } else {
        fs
    };
    for _ in 0..input.byte() % 6 {
        damage(&fs, input);
    }
    let config = config(input);
    let Ok(log) = open(&fs, config.clone()) else {
        return;
    };
    exercise(&log, input);
    let mut b = batch(&mut Rng(u64::from(input.u16()) | 1), 5_000);
    if !b.is_empty() && log.append(&mut b, AppendOrigin::Client, 5_000).is_ok() {
        exercise(&log, input);
    }
    if log.close().is_err() {
        return;
    }
    drop(log);
    if let Ok(log) = open(&fs, config) {
        exercise(&log, input);
    }
}

/// Reads everything from the log start (bounded) and asks timestamp questions.
fn exercise(log: &Log, input: &mut Input<'_>) {
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    for _ in 0..256 {
        if offset >= end {
            break;
        }
        let max_bytes = 1 + u64::from(input.u16());
        let Ok(info) = log.read(offset, max_bytes, i64::MAX) else {
            break;
        };
        let Some(range) = info.range else { break };
        let Ok(bytes) = range.read_bytes() else { break };
        for item in batches(&bytes) {
            if item.is_err() {
                break;
            }
        }
        if range.next_offset <= offset {
            break;
        }
        offset = range.next_offset;
    }
    for timestamp_ms in [
        i64::MIN,
        -1,
        0,
        1_000,
        1_010,
        i64::from(input.u16()),
        i64::MAX,
    ] {
        let _ = log.offset_for_timestamp(timestamp_ms);
    }
    let probe = log.log_start_offset() + i64::from(input.u16() % 512);
    let _ = log.read(probe, 1, i64::MAX);
}
