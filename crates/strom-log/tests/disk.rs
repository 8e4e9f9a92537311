//! Disk trouble on the simulated file system: a full disk makes the log read-only (reads go
//! on) and writes resume once space returns, whatever write found the disk full; a failed
//! fsync (any errno, `ENOSPC` included) is never retried, and a failed log serves only what
//! lies below its last successful fsync.

mod common;

use common::{batch, dir, open_sim, read_all};
use strom_log::fs::{SimFaults, SimFs};
use strom_log::{AppendOrigin, Durability, Health, Log, LogConfig, LogError};

fn config(durability: Durability) -> LogConfig {
    LogConfig {
        durability,
        ..LogConfig::test_min()
    }
}

/// One append, acknowledged as the broker would: at once in page-cache mode, after
/// `sync_to` under sync-on-commit. Returns the offsets it took.
fn acked_append(log: &Log, durability: Durability, now_ms: i64) -> Result<(i64, i64), LogError> {
    let info = log.append(&mut batch(3, 150, now_ms), AppendOrigin::Client, now_ms)?;
    if durability == Durability::SyncOnCommit {
        log.sync_to(info.last_offset + 1)?;
    }
    Ok((info.first_offset, info.last_offset))
}

/// Every offset of `log` from 0, in order, each batch whole and valid.
fn offsets(log: &Log) -> Vec<i64> {
    let mut out = Vec::new();
    for (base, bytes) in read_all(log) {
        let records = strom_records::records(&bytes, &Default::default()).unwrap();
        for i in 0..records.len() as i64 {
            out.push(base + i);
        }
    }
    out
}

/// Fills the disk with `room_bytes` left, appends until an append is refused, checks the
/// read-only log, frees space, resumes, appends more, and checks that every acknowledged
/// record is there, in the open log, after a clean reopen, and after a power loss.
fn fill_and_resume(durability: Durability, room_bytes: u64) {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(durability), 0).unwrap();
    let mut acked = Vec::new();
    let mut now_ms = 0;
    for _ in 0..6 {
        acked.push(acked_append(&log, durability, now_ms).unwrap());
    }
    log.flush().unwrap();
    fs.set_capacity(Some(fs.used_bytes() + room_bytes));
    let mut refusal = None;
    for _ in 0..200 {
        now_ms += 10;
        match acked_append(&log, durability, now_ms) {
            Ok(offsets) => acked.push(offsets),
            Err(error) => {
                refusal = Some(error);
                break;
            }
        }
    }
    let refusal = refusal.expect("the disk fills up");
    assert!(refusal.is_space_error(), "room {room_bytes}: {refusal}");
    assert_eq!(refusal.kafka_error_code(), 56);
    assert_eq!(log.health(), Health::DiskFull, "room {room_bytes}");
    let expected: Vec<i64> = acked.iter().flat_map(|(a, b)| *a..=*b).collect();
    assert_eq!(
        offsets(&log),
        expected,
        "reads go on while the disk is full"
    );
    assert_eq!(log.log_end_offset(), expected.len() as i64);
    let err = log
        .append(&mut batch(1, 10, now_ms), AppendOrigin::Client, now_ms)
        .unwrap_err();
    assert!(matches!(err, LogError::DiskFull { .. }), "{err}");
    assert_eq!(err.kafka_error_code(), 56);
    log.flush().unwrap();

    // The first check arms the backoff; space returns; a later check resumes.
    assert!(!log.try_resume(now_ms).unwrap());
    fs.set_capacity(None);
    assert!(!log.try_resume(now_ms + 1).unwrap(), "backoff not over yet");
    now_ms += 60_000;
    assert!(log.try_resume(now_ms).unwrap(), "room {room_bytes}");
    assert_eq!(log.health(), Health::Writable);
    for _ in 0..8 {
        now_ms += 10;
        acked.push(acked_append(&log, durability, now_ms).unwrap());
    }
    let expected: Vec<i64> = acked.iter().flat_map(|(a, b)| *a..=*b).collect();
    assert_eq!(offsets(&log), expected, "room {room_bytes}");

    // After a power loss every acknowledged record is back (page-cache mode acknowledges
    // before the fsync, so flush first there, as a clean shutdown would).
    if durability == Durability::PageCache {
        log.flush().unwrap();
    }
    let crashed = fs.crash(room_bytes);
    drop(log);
    let log = open_sim(&crashed, config(durability), now_ms).unwrap();
    assert_eq!(offsets(&log), expected, "room {room_bytes} after a crash");
    // Nothing the failed writes left survives a clean close: the next open finds the
    // active segment's tail whole.
    log.close().unwrap();
    let log = open_sim(&crashed, config(durability), now_ms).unwrap();
    assert!(log.open_report().clean, "{:?}", log.open_report());
    assert_eq!(offsets(&log), expected);
}

#[test]
fn a_full_disk_makes_the_log_read_only_until_space_returns_page_cache() {
    // Each room size makes a different write find the disk full: the segment's data, an
    // index preallocation or entry, a roll's new files, the checkpoint of a roll's flush.
    for room_bytes in (0..3000).step_by(37) {
        fill_and_resume(Durability::PageCache, room_bytes);
    }
}

#[test]
fn a_full_disk_makes_the_log_read_only_until_space_returns_sync_on_commit() {
    for room_bytes in (0..3000).step_by(41) {
        fill_and_resume(Durability::SyncOnCommit, room_bytes);
    }
}

#[test]
fn a_failed_write_leaves_no_bytes_behind_once_resumed() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(Durability::PageCache), 0).unwrap();
    for i in 0..3 {
        log.append(&mut batch(2, 100, i), AppendOrigin::Client, i)
            .unwrap();
    }
    let path = dir().join("00000000000000000000.log");
    let good = fs.contents(&path).unwrap();
    // Room for half a batch: a short write lands, then ENOSPC.
    fs.set_capacity(Some(fs.used_bytes() + 100));
    let err = log
        .append(&mut batch(2, 100, 5), AppendOrigin::Client, 5)
        .unwrap_err();
    assert!(err.is_space_error(), "{err}");
    let torn = fs.contents(&path).unwrap();
    assert!(torn.len() > good.len(), "the failed write left bytes");
    assert_eq!(&torn[..good.len()], &good[..]);
    assert_eq!(read_all(&log).len(), 3);
    fs.set_capacity(None);
    log.try_resume(10).unwrap();
    assert!(log.try_resume(100_000).unwrap());
    assert_eq!(
        fs.contents(&path).unwrap(),
        good,
        "cut back to the last batch"
    );
    let info = log
        .append(&mut batch(2, 100, 6), AppendOrigin::Client, 6)
        .unwrap();
    assert_eq!(info.first_offset, 6);
    assert_eq!(offsets(&log), (0..8).collect::<Vec<_>>());
}

#[test]
fn enospc_on_an_index_write_rebuilds_the_indexes_on_resume() {
    let fs = SimFs::new();
    let cfg = LogConfig {
        index_interval_bytes: 1,
        ..config(Durability::PageCache)
    };
    let log = open_sim(&fs, cfg.clone(), 0).unwrap();
    for i in 0..2 {
        log.append(&mut batch(2, 100, i), AppendOrigin::Client, i)
            .unwrap();
    }
    // The next append's data write is write n+1; its index entries follow.
    fs.set_faults(SimFaults {
        enospc_write_at: Some(fs.write_count() + 2),
        ..SimFaults::default()
    });
    let err = log
        .append(&mut batch(2, 100, 3), AppendOrigin::Client, 3)
        .unwrap_err();
    assert!(err.is_space_error(), "{err}");
    assert_eq!(log.log_end_offset(), 4, "the batch is not published");
    assert_eq!(offsets(&log), (0..4).collect::<Vec<_>>());
    fs.set_faults(SimFaults::default());
    log.try_resume(0).unwrap();
    assert!(log.try_resume(60_000).unwrap());
    for i in 0..6 {
        log.append(&mut batch(2, 100, 10 + i), AppendOrigin::Client, 10 + i)
            .unwrap();
    }
    assert_eq!(offsets(&log), (0..16).collect::<Vec<_>>());
    // Lookups through the rebuilt indexes find every batch.
    for offset in 0..16 {
        let info = log.read(offset, 1, i64::MAX).unwrap();
        let range = info.range.unwrap();
        assert!(range.first_offset <= offset && offset < range.next_offset);
    }
    log.close().unwrap();
    let log = open_sim(&fs, cfg, 0).unwrap();
    assert!(log.open_report().clean);
    assert_eq!(offsets(&log), (0..16).collect::<Vec<_>>());
}

#[test]
fn a_full_disk_on_the_first_append_after_a_clean_open() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(Durability::PageCache), 0).unwrap();
    log.append(&mut batch(2, 100, 0), AppendOrigin::Client, 0)
        .unwrap();
    log.close().unwrap();
    let log = open_sim(&fs, config(Durability::PageCache), 0).unwrap();
    // The first change clears the clean flag in the checkpoint first: that write fails.
    fs.set_faults(SimFaults {
        enospc_write_at: Some(fs.write_count() + 1),
        ..SimFaults::default()
    });
    let err = log
        .append(&mut batch(2, 100, 1), AppendOrigin::Client, 1)
        .unwrap_err();
    assert!(err.is_space_error(), "{err}");
    assert_eq!(log.health(), Health::DiskFull);
    assert_eq!(offsets(&log), vec![0, 1]);
    fs.set_faults(SimFaults::default());
    log.try_resume(0).unwrap();
    assert!(log.try_resume(60_000).unwrap());
    log.append(&mut batch(2, 100, 2), AppendOrigin::Client, 2)
        .unwrap();
    log.flush().unwrap();
    let crashed = fs.crash(7);
    let log = open_sim(&crashed, config(Durability::PageCache), 0).unwrap();
    assert!(!log.open_report().clean, "the clean flag was cleared");
    assert_eq!(offsets(&log), vec![0, 1, 2, 3]);
}

#[test]
fn resume_backs_off_while_the_disk_stays_full() {
    let fs = SimFs::new();
    let cfg = config(Durability::PageCache);
    let log = open_sim(&fs, cfg, 0).unwrap();
    log.append(&mut batch(2, 100, 0), AppendOrigin::Client, 0)
        .unwrap();
    let checks = |fs: &SimFs| fs.space_check_count();
    fs.set_capacity(Some(fs.used_bytes()));
    assert!(log
        .append(&mut batch(2, 100, 1), AppendOrigin::Client, 1)
        .unwrap_err()
        .is_space_error());
    let mut attempts = Vec::new();
    let mut before = checks(&fs);
    for now_ms in (0..40_000).step_by(100) {
        log.try_resume(now_ms).unwrap();
        assert_eq!(log.health(), Health::DiskFull);
        if checks(&fs) != before {
            attempts.push(now_ms);
            before = checks(&fs);
        }
    }
    assert!(attempts.len() >= 3, "{attempts:?}");
    let gaps: Vec<i64> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "growing: {gaps:?}");
    assert!(gaps.iter().all(|g| *g <= 16_100), "bounded: {gaps:?}");
    fs.set_capacity(None);
    let mut resumed = false;
    for now_ms in (40_000..60_000).step_by(100) {
        if log.try_resume(now_ms).unwrap() {
            resumed = true;
            break;
        }
    }
    assert!(resumed, "within the largest backoff once space is back");
    assert_eq!(offsets(&log), vec![0, 1]);
}

#[test]
fn a_failed_fsync_is_never_retried_and_reads_stop_at_the_durable_offset() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(Durability::SyncOnCommit), 0).unwrap();
    for i in 0..4 {
        let info = log
            .append(&mut batch(2, 100, i), AppendOrigin::Client, i)
            .unwrap();
        log.sync_to(info.last_offset + 1).unwrap();
    }
    let durable = log.durable_offset();
    assert_eq!(durable, 8);
    log.append(&mut batch(2, 100, 9), AppendOrigin::Client, 9)
        .unwrap();
    fs.set_faults(SimFaults {
        fail_sync_at: Some(fs.sync_count() + 1),
        ..SimFaults::default()
    });
    assert!(log.sync_to(10).is_err());
    assert!(log.is_failed());
    assert_eq!(log.health(), Health::Failed);
    let syncs = fs.sync_count();
    fs.set_faults(SimFaults::default());
    // Nothing tries the fsync again: not a commit, an append, a resume or a close.
    assert!(log.sync_to(10).is_err());
    assert!(log.flush().is_err());
    assert!(log
        .append(&mut batch(1, 10, 10), AppendOrigin::Client, 10)
        .is_err());
    assert!(log.try_resume(1_000_000).is_err());
    assert!(log.close().is_err());
    assert_eq!(fs.sync_count(), syncs, "no fsync after the failed one");
    // What the last successful fsync covered is still served; what lies above is not.
    let mut offset = 0;
    while offset < durable {
        let info = log.read(offset, 1000, i64::MAX).unwrap();
        let range = info.range.unwrap();
        assert!(range.next_offset <= durable);
        offset = range.next_offset;
    }
    let err = log.read(durable, 1000, i64::MAX).unwrap_err();
    assert!(matches!(err, LogError::Failed { .. }), "{err}");
    assert_eq!(err.kafka_error_code(), 56);
}

#[test]
fn enospc_from_fsync_is_a_failed_fsync() {
    // ext4 may report ENOSPC from fsync when delayed allocation finds no room; the dirty
    // data is then lost, so it is a failed fsync like any other, not a full disk to wait
    // out.
    let fs = SimFs::new();
    let log = open_sim(&fs, config(Durability::SyncOnCommit), 0).unwrap();
    let info = log
        .append(&mut batch(2, 100, 0), AppendOrigin::Client, 0)
        .unwrap();
    log.sync_to(info.last_offset + 1).unwrap();
    log.append(&mut batch(2, 100, 1), AppendOrigin::Client, 1)
        .unwrap();
    fs.set_faults(SimFaults {
        enospc_sync_at: Some(fs.sync_count() + 1),
        ..SimFaults::default()
    });
    let err = log.sync_to(4).unwrap_err();
    assert!(!err.is_space_error(), "{err}");
    assert_eq!(log.health(), Health::Failed);
    fs.set_faults(SimFaults::default());
    assert!(log.try_resume(1_000_000).is_err());
    assert!(log
        .append(&mut batch(1, 10, 2), AppendOrigin::Client, 2)
        .is_err());
    assert_eq!(read_all_below(&log, 2), vec![0, 1]);
}

/// Offsets readable from 0 up to `end`.
fn read_all_below(log: &Log, end: i64) -> Vec<i64> {
    let info = log.read(0, 1 << 20, end).unwrap();
    let bytes = info.range.unwrap().read_bytes().unwrap();
    let mut out = Vec::new();
    for item in strom_records::batches(&bytes) {
        let (header, _) = item.unwrap();
        out.extend(header.base_offset..=header.last_offset());
    }
    out
}
