//! Index files that decode as plausible but name the wrong batches, found after a clean
//! shutdown: reads and timestamp lookups notice, rebuild the indexes from the segment and
//! answer as before the damage.

mod common;

use common::{batch, dir, open_sim, read_all};
use strom_log::fs::SimFs;
use strom_log::index::{OffsetEntry, TimeEntry};
use strom_log::{AppendOrigin, Log, LogConfig, TimestampOffset};

const BATCHES: i64 = 40;
const FIRST_TIMESTAMP_MS: i64 = 1_000;

/// Batch `i` holds offsets `3i..3i+3` with timestamps `1000 + 10i + 0..3`.
fn build(fs: &SimFs) -> Log {
    let log = open_sim(fs, LogConfig::test_min(), 0).unwrap();
    for i in 0..BATCHES {
        let ts = FIRST_TIMESTAMP_MS + 10 * i;
        log.append(&mut batch(3, 20, ts), AppendOrigin::Client, ts)
            .unwrap();
    }
    assert!(log.segment_count() > 1, "segment 0 must be inactive");
    log
}

fn offset_index(entries: &[(u32, u32)]) -> Vec<u8> {
    entries
        .iter()
        .flat_map(|&(relative_offset, position)| {
            OffsetEntry {
                relative_offset,
                position,
            }
            .encode()
        })
        .collect()
}

fn time_index(entries: &[(i64, u32)]) -> Vec<u8> {
    entries
        .iter()
        .flat_map(|&(timestamp_ms, relative_offset)| {
            TimeEntry {
                timestamp_ms,
                relative_offset,
            }
            .encode()
        })
        .collect()
}

fn timestamps_to_probe() -> Vec<i64> {
    (FIRST_TIMESTAMP_MS - 5..FIRST_TIMESTAMP_MS + 10 * BATCHES + 5)
        .step_by(3)
        .collect()
}

fn answers(log: &Log) -> Vec<Option<TimestampOffset>> {
    timestamps_to_probe()
        .into_iter()
        .map(|ts| log.offset_for_timestamp(ts).unwrap())
        .collect()
}

/// Replaces `name` (of a closed log) with `bytes` and reopens cleanly.
fn damage_and_reopen(fs: &SimFs, name: &str, bytes: Vec<u8>) -> Log {
    let path = dir().join(name);
    assert!(fs.replace_contents(&path, bytes.clone()));
    let log = open_sim(fs, LogConfig::test_min(), 0).unwrap();
    assert!(log.open_report().clean);
    assert_eq!(fs.contents(&path), Some(bytes), "open did not touch it");
    log
}

#[test]
fn wrong_offset_index_is_rebuilt_on_read() {
    let fs = SimFs::new();
    let log = build(&fs);
    let before = read_all(&log);
    let batch_1 = log.read(3, 10_000, i64::MAX).unwrap().range.unwrap();
    let expected = batch_1.read_bytes().unwrap();
    let bad = offset_index(&[(2, 7), (5, 300), (8, 1000)]);
    log.close().unwrap();
    let log = damage_and_reopen(&fs, "00000000000000000000.index", bad);

    for _ in 0..2 {
        let range = log.read(3, 10_000, i64::MAX).unwrap().range.unwrap();
        assert_eq!(range.first_offset, 3);
        assert_eq!(range.position, batch_1.position);
        assert_eq!(range.read_bytes().unwrap(), expected);
    }
    assert_eq!(read_all(&log), before);
    for offset in 0..3 * BATCHES {
        let range = log.read(offset, 1, i64::MAX).unwrap().range.unwrap();
        assert_eq!(range.first_offset, offset - offset % 3, "offset {offset}");
    }
    assert!(!log.is_failed());
}

#[test]
fn wrong_time_index_is_rebuilt_on_timestamp_lookup() {
    let fs = SimFs::new();
    let log = build(&fs);
    let expected = answers(&log);
    assert_eq!(
        log.offset_for_timestamp(FIRST_TIMESTAMP_MS + 30)
            .unwrap()
            .map(|t| t.offset),
        Some(9)
    );
    // Real timestamps, rising, but naming later offsets than the batches that carry them.
    let bad = time_index(&[(1_012, 20), (1_052, 35), (1_092, 50)]);
    log.close().unwrap();
    let log = damage_and_reopen(&fs, "00000000000000000000.timeindex", bad);

    assert_eq!(
        log.offset_for_timestamp(FIRST_TIMESTAMP_MS + 30).unwrap(),
        Some(TimestampOffset {
            timestamp_ms: FIRST_TIMESTAMP_MS + 30,
            offset: 9
        })
    );
    assert_eq!(answers(&log), expected);
    assert!(!log.is_failed());
}

#[test]
fn time_index_naming_offsets_past_the_segment_is_rebuilt() {
    let fs = SimFs::new();
    let log = build(&fs);
    let expected = answers(&log);
    let bad = time_index(&[(1_005, 500), (1_100, 600)]);
    log.close().unwrap();
    let log = damage_and_reopen(&fs, "00000000000000000000.timeindex", bad);
    assert_eq!(answers(&log), expected);
}

/// A wrong entry in the active segment's index: the rebuild also rewrites the writer's
/// index files, so appends, a close and a clean reopen keep them right.
#[test]
fn wrong_active_offset_index_is_rebuilt_and_rewritten() {
    let fs = SimFs::new();
    let log = open_sim(&fs, LogConfig::test_min(), 0).unwrap();
    for i in 0..12 {
        let ts = FIRST_TIMESTAMP_MS + 10 * i;
        log.append(&mut batch(3, 20, ts), AppendOrigin::Client, ts)
            .unwrap();
    }
    assert_eq!(log.segment_count(), 1);
    let before = read_all(&log);
    log.close().unwrap();
    let index_path = dir().join("00000000000000000000.index");
    let good = fs.contents(&index_path).unwrap();
    let last = good.len().checked_sub(8).expect("some index entries");
    // Keep the real last entry (open scans from it) and put wrong ones before it.
    let mut bad = offset_index(&[(2, 7), (5, 30)]);
    bad.extend_from_slice(&good[last..]);
    let log = damage_and_reopen(&fs, "00000000000000000000.index", bad);

    let range = log.read(3, 1, i64::MAX).unwrap().range.unwrap();
    assert_eq!(range.first_offset, 3);
    assert_eq!(
        fs.contents(&index_path),
        Some(good),
        "rewritten from the segment"
    );
    for i in 12..30 {
        let ts = FIRST_TIMESTAMP_MS + 10 * i;
        log.append(&mut batch(3, 20, ts), AppendOrigin::Client, ts)
            .unwrap();
    }
    let all = read_all(&log);
    assert_eq!(all[..before.len()], before[..]);
    log.close().unwrap();
    let log = open_sim(&fs, LogConfig::test_min(), 0).unwrap();
    assert!(log.open_report().clean);
    assert_eq!(read_all(&log), all);
}

/// Readers hit wrong entries in an inactive and in the active segment's index while a
/// writer appends and rolls: every answer is still right, and nothing fails.
#[test]
fn repairs_run_alongside_appends_and_readers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Barrier};

    let fs = SimFs::new();
    let log = build(&fs);
    let expected = answers(&log);
    let bases = log.segment_base_offsets();
    let active_base = *bases.last().unwrap();
    log.close().unwrap();
    let active_index = dir().join(format!("{active_base:020}.index"));
    let good = fs.contents(&active_index).unwrap();
    assert!(good.len() >= 8, "the active segment has an index entry");
    let last = &good[good.len() - 8..];
    assert!(u32::from_be_bytes(last[4..].try_into().unwrap()) > 1);
    let mut bad_active = offset_index(&[(0, 1)]);
    bad_active.extend_from_slice(last);
    assert!(fs.replace_contents(&active_index, bad_active));
    let bad = offset_index(&[(2, 7), (5, 300), (8, 1000)]);
    let log = Arc::new(damage_and_reopen(&fs, "00000000000000000000.index", bad));
    log.set_high_watermark(log.log_end_offset());

    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(4));
    let readers: Vec<_> = (0..3u64)
        .map(|seed| {
            let log = Arc::clone(&log);
            let done = Arc::clone(&done);
            let start = Arc::clone(&start);
            let expected = expected.clone();
            std::thread::spawn(move || {
                let mut rng = seed.wrapping_add(1);
                let mut reads = 0u64;
                start.wait();
                while (!done.load(Ordering::Acquire) || reads < 500) && reads < 20_000 {
                    rng = rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let end = log.high_watermark();
                    let offset = (rng >> 33) as i64 % end;
                    let range = log.read(offset, 1, end).unwrap().range.unwrap();
                    assert!(range.first_offset <= offset && offset < range.next_offset);
                    let probes = timestamps_to_probe();
                    let i = (rng >> 20) as usize % probes.len();
                    let found = log.offset_for_timestamp(probes[i]).unwrap();
                    match expected[i] {
                        Some(_) => assert_eq!(found, expected[i], "timestamp {}", probes[i]),
                        // Past the first 40 batches: the answer is in an appended one.
                        None => assert!(found.is_none_or(|f| f.offset >= 3 * BATCHES)),
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    start.wait();
    for i in BATCHES..BATCHES + 300 {
        let ts = FIRST_TIMESTAMP_MS + 10 * i;
        let info = log
            .append(&mut batch(3, 20, ts), AppendOrigin::Client, ts)
            .unwrap();
        log.set_high_watermark(info.last_offset + 1);
    }
    done.store(true, Ordering::Release);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
    assert!(!log.is_failed());
    let all = read_all(&log);
    assert_eq!(all.len(), (BATCHES + 300) as usize);
    Arc::try_unwrap(log).unwrap().close().unwrap();
    let log = open_sim(&fs, LogConfig::test_min(), 0).unwrap();
    assert_eq!(read_all(&log), all);
}

/// The active segment's time index names the wrong offset for the segment's max
/// timestamp: ListOffsets(MAX_TIMESTAMP) notices and answers from the rebuilt index.
#[test]
fn wrong_max_timestamp_offset_is_rebuilt() {
    let fs = SimFs::new();
    let log = build(&fs);
    let expected = log.max_timestamp().unwrap().unwrap();
    assert_eq!(expected.offset, 3 * BATCHES - 1);
    let expected_answers = answers(&log);
    let active_base = *log.segment_base_offsets().last().unwrap();
    log.close().unwrap();
    let name = format!("{active_base:020}.timeindex");
    let mut bytes = fs.contents(&dir().join(&name)).unwrap();
    let n = bytes.len();
    assert!(n >= 12);
    let earlier = if n >= 24 {
        bytes[n - 16..n - 12].to_vec()
    } else {
        vec![0; 4]
    };
    bytes[n - 4..].copy_from_slice(&earlier);
    let log = damage_and_reopen(&fs, &name, bytes);
    assert_eq!(log.max_timestamp().unwrap(), Some(expected));
    assert_eq!(answers(&log), expected_answers);
}
