//! Append, read, lookups, rolls, error codes and clean reopen on the simulated file system
//! and on a real directory.

mod common;

use std::sync::Arc;

use common::{batch, dir, open_in, open_sim, read_all};
use strom_log::fs::{FileSystem, RealFs, SimFs};
use strom_log::{
    AppendOrigin, Durability, LogConfig, LogError, MessageTimestampType, TimestampOffset, Unflushed,
};
use strom_records::{BatchBuilder, BatchHeader};

#[test]
fn append_assigns_offsets_and_reads_back() {
    let fs = SimFs::new();
    let log = open_sim(&fs, LogConfig::test_min(), 0).unwrap();
    let mut originals = Vec::new();
    for i in 0..5 {
        let mut b = batch(3, 10, 1000 + i);
        let info = log.append(&mut b, AppendOrigin::Client, 1000).unwrap();
        assert_eq!(info.first_offset, i * 3);
        assert_eq!(info.last_offset, i * 3 + 2);
        assert_eq!(info.log_append_time_ms, -1);
        originals.push(b);
    }
    assert_eq!(log.log_end_offset(), 15);
    let all = read_all(&log);
    assert_eq!(all.len(), 5);
    for (i, (base, bytes)) in all.iter().enumerate() {
        assert_eq!(*base, i as i64 * 3);
        assert_eq!(bytes, &originals[i], "stored bytes are the rewritten input");
    }
    // A read from the middle of a batch starts at that batch.
    let info = log.read(4, 1, i64::MAX).unwrap();
    let range = info.range.unwrap();
    assert_eq!(range.first_offset, 3);
    assert_eq!(
        range.next_offset, 6,
        "at least one whole batch even over the byte budget"
    );
    // Reads stop below max_offset (the high watermark).
    let info = log.read(0, 1 << 20, 7).unwrap();
    assert_eq!(info.range.unwrap().next_offset, 6);
    assert!(
        log.read(6, 1 << 20, 7).unwrap().range.is_none(),
        "batch 6..9 ends past max"
    );
    assert!(log.read(15, 100, i64::MAX).unwrap().range.is_none());
    let err = log.read(16, 100, i64::MAX).unwrap_err();
    assert_eq!(err.kafka_error_code(), 1);
}

#[test]
fn timestamp_lookups() {
    let fs = SimFs::new();
    let log = open_sim(&fs, LogConfig::test_min(), 0).unwrap();
    assert_eq!(log.max_timestamp().unwrap(), None);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    // Timestamps 100.., 200.., 150.. (not monotonic), 400..: 2 records each.
    for ts in [100, 200, 150, 400] {
        log.append(&mut batch(2, 600, ts), AppendOrigin::Client, 500)
            .unwrap();
    }
    let lookup = |t| log.offset_for_timestamp(t).unwrap().map(|r| r.offset);
    assert_eq!(lookup(0), Some(0));
    assert_eq!(lookup(101), Some(1));
    assert_eq!(lookup(102), Some(2));
    assert_eq!(lookup(201), Some(3), "record level inside the batch");
    assert_eq!(lookup(202), Some(6));
    assert_eq!(lookup(402), None);
    assert_eq!(
        log.max_timestamp().unwrap(),
        Some(TimestampOffset {
            timestamp_ms: 401,
            offset: 7
        }),
        "the record with the max timestamp"
    );
    // The max timestamp in the middle of a batch: its record, not the batch's last offset.
    let mut b = BatchBuilder::new(0, 500);
    for ts in [500, 900, 700] {
        b.append(ts, None, Some(b"v".to_vec().into()), Vec::new())
            .unwrap();
    }
    log.append(&mut b.build().unwrap(), AppendOrigin::Client, 500)
        .unwrap();
    assert_eq!(
        log.max_timestamp().unwrap(),
        Some(TimestampOffset {
            timestamp_ms: 900,
            offset: 9
        })
    );
    assert_eq!(log.offset_for_timestamp(600).unwrap().unwrap().offset, 9);
}

#[test]
fn log_append_time_rewrites_timestamps() {
    let fs = SimFs::new();
    let config = LogConfig {
        message_timestamp_type: MessageTimestampType::LogAppendTime,
        ..LogConfig::test_min()
    };
    let log = open_sim(&fs, config, 0).unwrap();
    let mut b = batch(2, 5, 1);
    let info = log.append(&mut b, AppendOrigin::Client, 777).unwrap();
    assert_eq!(info.log_append_time_ms, 777);
    let stored = &read_all(&log)[0].1;
    let header = BatchHeader::parse(stored).unwrap();
    assert_eq!(header.max_timestamp, 777);
    strom_records::validate(stored, &Default::default()).expect("CRC recomputed");
}

#[test]
fn invalid_batches_map_to_kafka_codes() {
    let fs = SimFs::new();
    let config = LogConfig {
        message_timestamp_before_max_ms: 1000,
        message_timestamp_after_max_ms: 1000,
        ..LogConfig::test_min()
    };
    let log = open_sim(&fs, config, 0).unwrap();
    let now = 10_000;
    let check = |mut bytes: Vec<u8>, code: i16| {
        let err = log
            .append(&mut bytes, AppendOrigin::Client, now)
            .unwrap_err();
        assert_eq!(err.kafka_error_code(), code, "{err}");
    };
    let mut corrupt = batch(1, 10, now);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    check(corrupt, 2);
    check(batch(1, 3000, now), 10);
    check(batch(1, 10, now - 5000), 32);
    check(batch(1, 10, now + 5000), 32);
    check(BatchBuilder::new(5, now).tap_one().build().unwrap(), 87);
    let mut truncated = batch(1, 10, now);
    truncated.truncate(40);
    check(truncated, 2);
    check(Vec::new(), 2);
    assert_eq!(log.log_end_offset(), 0, "nothing was appended");
    // Coordinators may write control batches and keep working after client errors.
    let mut control = BatchBuilder::new(0, now)
        .control(true)
        .tap_one()
        .build()
        .unwrap();
    log.append(&mut control, AppendOrigin::Coordinator, now)
        .unwrap();
    assert_eq!(log.log_end_offset(), 1);
}

trait TapOne {
    fn tap_one(self) -> Self;
}

impl TapOne for BatchBuilder {
    fn tap_one(mut self) -> Self {
        self.append(10_000, None, Some(b"v".to_vec().into()), Vec::new())
            .unwrap();
        self
    }
}

#[test]
fn replication_keeps_offsets() {
    let fs = SimFs::new();
    let log = open_sim(&fs, LogConfig::test_min(), 0).unwrap();
    let mut b = BatchBuilder::new(0, 5).tap_one().build().unwrap();
    log.append(&mut b, AppendOrigin::Replication, 0).unwrap();
    // A follower copies a leader's log batch for batch: a gap means it is out of step.
    let mut gap = BatchBuilder::new(10, 5).tap_one().build().unwrap();
    assert!(matches!(
        log.append(&mut gap, AppendOrigin::Replication, 0),
        Err(LogError::UnexpectedAppendOffset {
            base_offset: 10,
            log_end_offset: 1
        })
    ));
    let mut next = BatchBuilder::new(1, 5).tap_one().build().unwrap();
    let info = log.append(&mut next, AppendOrigin::Replication, 0).unwrap();
    assert_eq!(info.first_offset, 1);
    assert_eq!(log.log_end_offset(), 2);
    let mut behind = BatchBuilder::new(0, 5).tap_one().build().unwrap();
    assert!(log
        .append(&mut behind, AppendOrigin::Replication, 0)
        .is_err());
    let info = log.read(1, 100, i64::MAX).unwrap();
    assert_eq!(info.range.unwrap().first_offset, 1);
}

#[test]
fn rolls_by_size_index_and_time() {
    let fs = SimFs::new();
    let log = open_sim(&fs, LogConfig::test_min(), 0).unwrap();
    for _ in 0..20 {
        log.append(&mut batch(1, 500, 0), AppendOrigin::Client, 0)
            .unwrap();
    }
    assert!(
        log.segment_count() >= 3,
        "segment.bytes=4096 rolls: {}",
        log.segment_count()
    );
    for base in log.segment_base_offsets() {
        let name = format!("{base:020}.log");
        let len = fs.contents(&dir().join(&name)).unwrap().len();
        assert!(len <= 4096, "{name} has {len} bytes");
    }
    // Rolled segments have trimmed indexes.
    let first_index = fs
        .contents(&dir().join(format!("{:020}.index", 0)))
        .unwrap();
    assert_eq!(first_index.len() % 8, 0);
    assert!(first_index.len() < 96);
    assert_eq!(read_all(&log).len(), 20);

    // Index fullness: tiny batches, interval 0, 12 entries per offset index max.
    let fs = SimFs::new();
    let config = LogConfig {
        index_interval_bytes: 0,
        segment_index_bytes: 96,
        ..LogConfig::test_min()
    };
    let log = open_sim(&fs, config, 0).unwrap();
    for _ in 0..30 {
        log.append(&mut batch(1, 1, 0), AppendOrigin::Client, 0)
            .unwrap();
    }
    assert!(
        log.segment_count() >= 3,
        "index fullness rolls: {}",
        log.segment_count()
    );
    assert_eq!(read_all(&log).len(), 30);

    // segment.ms counts from the first batch's timestamp.
    let fs = SimFs::new();
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::test_min()
    };
    let log = open_sim(&fs, config, 0).unwrap();
    log.append(&mut batch(1, 1, 0), AppendOrigin::Client, 0)
        .unwrap();
    log.append(&mut batch(1, 1, 1000), AppendOrigin::Client, 1000)
        .unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&mut batch(1, 1, 1001), AppendOrigin::Client, 1001)
        .unwrap();
    assert_eq!(log.segment_count(), 2);
}

#[test]
fn batch_headers_from_an_offset_across_segments() {
    let fs = SimFs::new();
    let log = open_sim(&fs, LogConfig::test_min(), 0).unwrap();
    for _ in 0..20 {
        log.append(&mut batch(2, 500, 0), AppendOrigin::Client, 0)
            .unwrap();
    }
    assert!(log.segment_count() >= 3, "segment.bytes=4096 rolls");
    let check = |from: i64, expected: Vec<i64>| {
        let mut seen = Vec::new();
        log.for_each_batch_header(from, |h| seen.push(h.base_offset))
            .unwrap();
        assert_eq!(seen, expected, "from {from}");
    };
    check(0, (0..20).map(|i| i * 2).collect());
    // From the middle of a batch: that batch first.
    check(7, (3..20).map(|i| i * 2).collect());
    // From a segment boundary on.
    let last_base = *log.segment_base_offsets().last().unwrap();
    check(last_base, (last_base / 2..20).map(|i| i * 2).collect());
    check(40, Vec::new());
    // Below the log start offset: from the log start.
    log.set_high_watermark(log.log_end_offset());
    log.delete_records_before(10, 0).unwrap();
    let mut first = None;
    log.for_each_batch_header(0, |h| {
        first.get_or_insert(h.base_offset);
    })
    .unwrap();
    assert_eq!(first, Some(10), "starts at the log start");
}

#[test]
fn clean_close_reopens_without_scanning() {
    let fs = SimFs::new();
    let log = open_sim(&fs, LogConfig::test_min(), 0).unwrap();
    for i in 0..40 {
        log.append(&mut batch(2, 200, i), AppendOrigin::Client, 0)
            .unwrap();
    }
    let before = read_all(&log);
    let segments = log.segment_count();
    log.close().unwrap();
    assert_eq!(
        log.append(&mut batch(1, 1, 0), AppendOrigin::Client, 0)
            .unwrap_err()
            .kafka_error_code(),
        56
    );
    let log = open_sim(&fs, LogConfig::test_min(), 0).unwrap();
    let report = log.open_report().clone();
    assert!(report.clean, "{report:?}");
    assert_eq!(report.segments_scanned, 0);
    assert_eq!(log.log_end_offset(), 80);
    assert_eq!(log.segment_count(), segments);
    assert_eq!(read_all(&log), before);
    assert_eq!(log.max_timestamp().unwrap().unwrap().timestamp_ms, 40);
    // Appending after a clean open continues the offsets and the indexes.
    log.append(&mut batch(1, 1, 50), AppendOrigin::Client, 0)
        .unwrap();
    assert_eq!(log.log_end_offset(), 81);
    assert_eq!(read_all(&log).len(), 41);
    // A crash after that reopens unclean, and finds everything that was synced.
    log.flush().unwrap();
    let fs2 = fs.crash(7);
    let log = open_sim(&fs2, LogConfig::test_min(), 0).unwrap();
    assert!(!log.open_report().clean);
    assert_eq!(log.log_end_offset(), 81);
}

#[test]
fn sync_on_commit_group_commit() {
    let fs = SimFs::new();
    let config = LogConfig {
        durability: Durability::SyncOnCommit,
        ..LogConfig::test_min()
    };
    let log = Arc::new(open_sim(&fs, config, 0).unwrap());
    let syncs_before = fs.sync_count();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for _ in 0..10 {
                    let info = log
                        .append(&mut batch(1, 10, 0), AppendOrigin::Client, 0)
                        .unwrap();
                    log.sync_to(info.last_offset + 1).unwrap();
                    assert!(log.durable_offset() > info.last_offset);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(log.durable_offset(), 40);
    let syncs = fs.sync_count() - syncs_before;
    assert!(
        syncs <= 40 + 10,
        "at most one fsync per commit plus roll overhead: {syncs}"
    );
}

#[test]
fn failed_fsync_latches_the_log() {
    let fs = SimFs::new();
    let config = LogConfig {
        durability: Durability::SyncOnCommit,
        ..LogConfig::test_min()
    };
    let log = open_sim(&fs, config, 0).unwrap();
    log.append(&mut batch(1, 10, 0), AppendOrigin::Client, 0)
        .unwrap();
    fs.set_faults(strom_log::fs::SimFaults {
        fail_sync_at: Some(fs.sync_count() + 1),
        ..Default::default()
    });
    assert!(log.sync_to(1).is_err());
    assert!(log.is_failed());
    // Never retried: every later operation fails, even though the next fsync would work.
    let err = log.sync_to(1).unwrap_err();
    assert_eq!(err.kafka_error_code(), 56);
    assert!(log
        .append(&mut batch(1, 10, 0), AppendOrigin::Client, 0)
        .is_err());
    assert!(log.read(0, 100, i64::MAX).is_err());
    assert!(log.close().is_err());
}

#[test]
fn real_file_system_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let fs: Arc<dyn FileSystem> = Arc::new(RealFs);
    let log = open_in(Arc::clone(&fs), &dir, LogConfig::test_min());
    for i in 0..30 {
        log.append(&mut batch(2, 100, i), AppendOrigin::Client, 0)
            .unwrap();
    }
    let info = log.read(0, 1 << 20, i64::MAX).unwrap();
    let range = info.range.unwrap();
    assert!(range.std_file().is_some(), "a real fd for sendfile");
    let before = read_all(&log);
    log.close().unwrap();
    let log = open_in(fs, &dir, LogConfig::test_min());
    assert!(log.open_report().clean);
    assert_eq!(read_all(&log), before);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.contains(&"00000000000000000000.log".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"00000000000000000000.timeindex".to_string()));
    assert!(names.contains(&"strom-log.checkpoint".to_string()));
}

#[test]
fn truncate_to_removes_the_tail_durably() {
    let fs = SimFs::new();
    let log = open_sim(&fs, LogConfig::test_min(), 0).unwrap();
    let mut written = Vec::new();
    for i in 0..30 {
        let mut b = batch(2, 300, i);
        log.append(&mut b, AppendOrigin::Client, 0).unwrap();
        written.push(b);
    }
    assert!(log.segment_count() > 2);
    log.set_high_watermark(60);
    // Offset 21 is inside batch 20..21: the whole batch goes.
    let report = log.truncate_to(21, 0).unwrap();
    assert_eq!(report.log_end_offset, 20);
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(log.high_watermark(), 20);
    let got: Vec<Vec<u8>> = read_all(&log).into_iter().map(|(_, b)| b).collect();
    assert_eq!(got, written[..10].to_vec());
    // Appends continue from there, and a crash keeps the truncation.
    let mut b = batch(1, 10, 99);
    assert_eq!(
        log.append(&mut b, AppendOrigin::Client, 0)
            .unwrap()
            .first_offset,
        20
    );
    log.flush().unwrap();
    let image = fs.crash(5);
    let log = open_sim(&image, LogConfig::test_min(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 21);
    let got: Vec<Vec<u8>> = read_all(&log).into_iter().map(|(_, b)| b).collect();
    assert_eq!(&got[..10], &written[..10]);
    assert_eq!(got[10], b);
    // Truncating to the start empties the log but keeps it usable.
    log.truncate_to(0, 0).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    assert!(read_all(&log).is_empty());
    log.append(&mut batch(1, 10, 0), AppendOrigin::Client, 0)
        .unwrap();
    assert_eq!(log.log_end_offset(), 1);
}

#[test]
fn retention_by_time_and_size_and_delete_records() {
    let fs = SimFs::new();
    let config = LogConfig {
        retention_ms: 1000,
        ..LogConfig::test_min()
    };
    let log = open_sim(&fs, config, 0).unwrap();
    for i in 0..30 {
        log.append(&mut batch(1, 500, i * 100), AppendOrigin::Client, i * 100)
            .unwrap();
    }
    let segments = log.segment_count();
    assert!(segments >= 4);
    // Nothing above the high watermark is deleted.
    let report = log.apply_retention(100_000).unwrap();
    assert_eq!(report.segments_deleted, 0);
    log.set_high_watermark(30);
    let report = log.apply_retention(2_500).unwrap();
    assert!(report.segments_deleted >= 1, "{report:?}");
    let start = log.log_start_offset();
    assert_eq!(start, log.segment_base_offsets()[0]);
    assert!(log.offset_for_timestamp(0).unwrap().unwrap().offset >= start);
    let err = log.read(0, 100, i64::MAX).unwrap_err();
    assert_eq!(err.kafka_error_code(), 1);
    // Files went to .deleted and, with no delay, away.
    assert!(fs
        .contents(&dir().join("00000000000000000000.log"))
        .is_none());
    assert!(fs
        .contents(&dir().join("00000000000000000000.log.deleted"))
        .is_none());
    let report = log.apply_retention(1_000_000).unwrap();
    assert_eq!(
        log.segment_count(),
        1,
        "all but the active segment: {report:?}"
    );

    // retention.bytes keeps at least that many bytes.
    let fs = SimFs::new();
    let config = LogConfig {
        retention_bytes: 5000,
        ..LogConfig::test_min()
    };
    let log = open_sim(&fs, config, 0).unwrap();
    for _ in 0..30 {
        log.append(&mut batch(1, 500, 0), AppendOrigin::Client, 0)
            .unwrap();
    }
    log.set_high_watermark(30);
    log.apply_retention(0).unwrap();
    assert!(
        log.size_bytes() >= 5000 && log.size_bytes() < 5000 + 4096,
        "{}",
        log.size_bytes()
    );

    // DeleteRecords moves the start mid-segment, durably.
    let before = log.log_start_offset();
    let start = log.delete_records_before(25, 0).unwrap();
    assert_eq!(start, 25);
    assert!(log.log_start_offset() > before);
    assert!(
        log.delete_records_before(31, 0).is_err(),
        "beyond the high watermark"
    );
    let info = log.read(25, 1, i64::MAX).unwrap();
    assert_eq!(info.range.unwrap().first_offset, 25);
    log.flush().unwrap();
    let image = fs.crash(1);
    let log = open_sim(&image, LogConfig::test_min(), 0).unwrap();
    assert_eq!(log.log_start_offset(), 25);
    assert_eq!(log.log_end_offset(), 30);
}

#[test]
fn file_delete_delay_keeps_files_for_readers() {
    let fs = SimFs::new();
    let config = LogConfig {
        retention_ms: 10,
        file_delete_delay_ms: 60_000,
        ..LogConfig::test_min()
    };
    let log = open_sim(&fs, config.clone(), 0).unwrap();
    for i in 0..20 {
        log.append(&mut batch(1, 500, i), AppendOrigin::Client, 0)
            .unwrap();
    }
    log.set_high_watermark(20);
    let range = log.read(0, 100, i64::MAX).unwrap().range.unwrap();
    log.apply_retention(1000).unwrap();
    assert!(log.log_start_offset() > 0);
    // The reader's range still reads the deleted segment.
    assert_eq!(range.read_bytes().unwrap().len() as u64, range.len_bytes);
    assert!(fs
        .contents(&dir().join("00000000000000000000.log.deleted"))
        .is_some());
    log.maintain(1000 + 60_000).unwrap();
    assert!(fs
        .contents(&dir().join("00000000000000000000.log.deleted"))
        .is_none());
    // A crash with .deleted files pending: the next open removes them.
    let log2 = open_sim(&fs.crash(2), config, 0);
    assert!(log2.is_ok());
}

#[test]
fn many_partitions_share_a_bounded_handle_cache() {
    let fs = SimFs::new();
    let shared: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let cache = Arc::new(strom_log::HandleCache::new(Arc::clone(&shared), 4));
    let logs: Vec<strom_log::Log> = (0..50)
        .map(|p| {
            let dir = std::path::PathBuf::from(format!("/data/t-{p}"));
            let log =
                strom_log::Log::open(&dir, LogConfig::test_min(), Arc::clone(&cache), 0).unwrap();
            for i in 0..12 {
                log.append(&mut batch(1, 500, i), AppendOrigin::Client, 0)
                    .unwrap();
            }
            assert!(log.segment_count() > 1);
            log
        })
        .collect();
    for log in &logs {
        // Offset 0 lives in an inactive segment, read through the shared cache.
        let range = log.read(0, 100, i64::MAX).unwrap().range.unwrap();
        assert_eq!(range.first_offset, 0);
        assert!(cache.cached_count() <= 4);
    }
    for log in &logs {
        log.close().unwrap();
    }
    drop(logs);
    drop(cache);
    assert_eq!(fs.open_handle_count(), 0, "closed logs hold no files");
    // Reopening is lazy: an idle log holds no open file at all.
    let cache = Arc::new(strom_log::HandleCache::new(Arc::clone(&shared), 4));
    let logs: Vec<strom_log::Log> = (0..50)
        .map(|p| {
            let dir = std::path::PathBuf::from(format!("/data/t-{p}"));
            strom_log::Log::open(&dir, LogConfig::test_min(), Arc::clone(&cache), 0).unwrap()
        })
        .collect();
    assert!(logs
        .iter()
        .all(|l| l.open_report().clean && l.open_report().segments_scanned == 0));
    assert_eq!(fs.open_handle_count(), 0, "50 idle logs, no open files");
    assert_eq!(read_all(&logs[7]).len(), 12);
    assert!(
        fs.open_handle_count() <= 4,
        "reads go through the bounded cache"
    );
    // Appending opens the active segment's three files for that log only.
    logs[3]
        .append(&mut batch(1, 10, 0), AppendOrigin::Client, 0)
        .unwrap();
    assert!(fs.open_handle_count() <= 4 + 3);
}

#[test]
fn unflushed_appends_never_sync_and_say_what_is_owed() {
    let fs = SimFs::new();
    let log = open_sim(&fs, LogConfig::test_min(), 0).unwrap();
    let mut first = batch(2, 10, 1000);
    log.append(&mut first, AppendOrigin::Client, 1000).unwrap();
    log.close().unwrap();
    let log = open_sim(&fs, LogConfig::test_min(), 0).unwrap();
    // The first append after opening a cleanly closed log must mark it unclean on disk (an
    // fsync): the non-blocking variant refuses it and leaves the log untouched.
    let syncs = fs.sync_count();
    let mut second = batch(2, 10, 1000);
    let outcome = log.append_shared(&second, -1, 1000, false).unwrap();
    assert_eq!(outcome, Unflushed::WouldBlock);
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(fs.sync_count(), syncs);
    log.append(&mut second, AppendOrigin::Client, 1000).unwrap();
    // From here on it appends without a single fsync until a roll makes one due.
    let syncs = fs.sync_count();
    let mut next_offset = 4;
    let mut rolled_at = None;
    for i in 0..64 {
        let b = batch(2, 200, 1000 + i);
        match log.append_shared(&b, -1, 1000, false).unwrap() {
            Unflushed::Appended { info, flush_due } => {
                assert_eq!(info.first_offset, next_offset);
                next_offset = info.last_offset + 1;
                if flush_due {
                    rolled_at = Some(info.first_offset);
                    break;
                }
            }
            Unflushed::WouldBlock => panic!("a marked log never refuses"),
        }
        assert_eq!(fs.sync_count(), syncs, "no fsync before a roll");
    }
    let rolled_at = rolled_at.expect("4 KiB segments roll within 64 appends");
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.segment_base_offsets()[1], rolled_at);
    assert_eq!(
        fs.sync_count(),
        syncs,
        "the roll's fsync is left to the caller"
    );
    log.flush_after_append(1000).unwrap();
    assert!(fs.sync_count() > syncs);
    assert_eq!(log.durable_offset(), next_offset);
    assert_eq!(read_all(&log).len(), next_offset as usize / 2);
}

/// Shared appends write the caller's batch untouched from where it lies: what is stored is
/// the batch with the base offset and leader epoch stamped into the log's own copy of the
/// header, on the simulated and on the real file system (one `pwritev` there).
#[test]
fn shared_appends_store_the_batch_without_touching_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = SimFs::new();
    let logs = [
        open_sim(&sim, LogConfig::test_min(), 0).unwrap(),
        open_in(
            Arc::new(RealFs),
            &tmp.path().join("t-0"),
            LogConfig::test_min(),
        ),
    ];
    for log in &logs {
        // Becoming leader of epoch 7 records it (durably) first, so that appends in that
        // epoch never have to block.
        log.assign_leader_epoch(7).unwrap();
        let mut expected = Vec::new();
        for i in 0..12i64 {
            let original = batch(3, 150, 1000 + i);
            let shared = original.clone();
            let outcome = log.append_shared(&shared, 7, 1000, false).unwrap();
            let Unflushed::Appended { info, flush_due } = outcome else {
                panic!("a fresh log is marked unclean already");
            };
            assert_eq!(shared, original, "the caller's bytes are not modified");
            assert_eq!(info.first_offset, i * 3);
            if flush_due {
                log.flush_after_append(1000).unwrap();
            }
            let mut stored = original;
            strom_records::set_base_offset(&mut stored, i * 3).unwrap();
            strom_records::set_partition_leader_epoch(&mut stored, 7).unwrap();
            expected.push((i * 3, stored));
        }
        assert!(log.segment_count() > 1, "rolls happened on the way");
        let all = read_all(log);
        assert_eq!(all, expected);
        for (_, stored) in &all {
            strom_records::validate(stored, &Default::default()).expect("CRC still valid");
            assert_eq!(
                BatchHeader::parse(stored).unwrap().partition_leader_epoch,
                7
            );
        }
        // A damaged batch is refused and nothing is written.
        let mut damaged = batch(1, 10, 5000);
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        let err = log.append_shared(&damaged, 7, 5000, true).unwrap_err();
        assert_eq!(err.kafka_error_code(), 2);
        assert_eq!(log.log_end_offset(), 36);
    }
}

/// Under LogAppendTime the CRC-covered timestamp changes: the log falls back to a copy it
/// rewrites, and still leaves the caller's bytes alone.
#[test]
fn shared_appends_under_log_append_time_copy() {
    let fs = SimFs::new();
    let config = LogConfig {
        message_timestamp_type: MessageTimestampType::LogAppendTime,
        ..LogConfig::test_min()
    };
    let log = open_sim(&fs, config, 0).unwrap();
    let original = batch(2, 5, 1);
    let outcome = log.append_shared(&original, 3, 777, true).unwrap();
    let Unflushed::Appended { info, .. } = outcome else {
        panic!("a blocking append never declines");
    };
    assert_eq!(info.log_append_time_ms, 777);
    assert_eq!(original, batch(2, 5, 1));
    let stored = &read_all(&log)[0].1;
    let header = BatchHeader::parse(stored).unwrap();
    assert_eq!(header.max_timestamp, 777);
    assert_eq!(header.partition_leader_epoch, 3);
    strom_records::validate(stored, &Default::default()).expect("CRC recomputed");
}
