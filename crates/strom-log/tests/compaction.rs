//! Compaction: latest record per key, tombstones after delete.retention.ms, offsets and
//! batch bounds kept, and a crash at any write or fsync leaves each segment as before or
//! as after.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{dir, open_sim, read_all};
use strom_log::fs::{SimFaults, SimFs};
use strom_log::{AppendOrigin, CleanupPolicy, CompactionLimits, Log, LogConfig};
use strom_records::{records, BatchBuilder, BatchHeader, Compression, DecodeLimits};

fn config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: 1000,
        ..LogConfig::test_min()
    }
}

/// One batch of `keys.len()` records; `None` values are tombstones.
fn keyed(keys: &[(u32, Option<u32>)], timestamp_ms: i64, compression: Compression) -> Vec<u8> {
    let mut b = BatchBuilder::new(0, timestamp_ms).compression(compression);
    for (key, value) in keys {
        let value = value.map(|v| format!("{v:0>200}").into_bytes().into());
        b.append(
            timestamp_ms,
            Some(format!("key-{key}").into_bytes().into()),
            value,
            Vec::new(),
        )
        .unwrap();
    }
    b.build().unwrap()
}

/// Every record of the log as (offset, key, value).
type Row = (i64, Vec<u8>, Option<Vec<u8>>);

fn rows(log: &Log) -> BTreeSet<Row> {
    let mut out = BTreeSet::new();
    for (_, batch) in read_all(log) {
        let header = BatchHeader::parse(&batch).unwrap();
        for r in records(&batch, &DecodeLimits::default()).unwrap() {
            out.insert((
                r.offset(&header),
                r.key.clone().unwrap().to_vec(),
                r.value.clone().map(|v| v.to_vec()),
            ));
        }
    }
    out
}

fn latest_per_key(rows: &BTreeSet<Row>) -> BTreeMap<Vec<u8>, Row> {
    let mut m = BTreeMap::new();
    for row in rows {
        m.insert(row.1.clone(), row.clone());
    }
    m
}

/// 60 batches over 6 keys, some with two records, a few tombstones, mixed compression.
fn fill(log: &Log) {
    for i in 0..60u32 {
        let compression = if i % 4 == 0 {
            Compression::Gzip
        } else {
            Compression::None
        };
        let mut keys = vec![(i % 6, Some(i))];
        if i % 5 == 0 {
            keys.push(((i + 1) % 6, if i % 10 == 0 { None } else { Some(i) }));
        }
        log.append(
            &mut keyed(&keys, i64::from(i), compression),
            AppendOrigin::Client,
            0,
        )
        .unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
}

#[test]
fn keeps_the_latest_record_per_key() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(), 0).unwrap();
    fill(&log);
    log.flush().unwrap();
    let before = rows(&log);
    let report = log.compact(100, &CompactionLimits::default()).unwrap();
    assert!(report.segments_cleaned >= 2, "{report:?}");
    assert!(report.records_removed > 0);
    assert!(report.bytes_after < report.bytes_before);
    let after = rows(&log);
    assert!(after.is_subset(&before));
    assert_eq!(
        latest_per_key(&after),
        latest_per_key(&before),
        "the latest per key stays"
    );
    // Below the active segment every key appears at most once.
    let active_base = *log.segment_base_offsets().last().unwrap();
    let mut seen = BTreeSet::new();
    for (offset, key, _) in after.iter().filter(|r| r.0 < active_base) {
        assert!(
            seen.insert(key.clone()),
            "key {key:?} twice below {active_base} (at {offset})"
        );
    }
    assert_eq!(log.log_end_offset(), 72, "offsets unchanged");
    // Reads at any offset still work (offsets removed by compaction read the next batch).
    for offset in 0..72 {
        let range = log.read(offset, 1, i64::MAX).unwrap().range.unwrap();
        assert!(range.next_offset > offset);
    }
    // Reopen (clean and after a crash) sees the compacted log.
    log.close().unwrap();
    let log = open_sim(&fs, config(), 0).unwrap();
    assert_eq!(rows(&log), after);
    let log = open_sim(&fs.crash(9), config(), 0).unwrap();
    assert_eq!(rows(&log), after);
    // A second pass has nothing left to do below the high watermark.
    log.set_high_watermark(log.log_end_offset());
    let again = log.compact(100, &CompactionLimits::default()).unwrap();
    assert_eq!(again.records_removed, 0, "{again:?}");
}

#[test]
fn tombstones_go_after_delete_retention() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(), 0).unwrap();
    fill(&log);
    let tombstones = |log: &Log| rows(log).iter().filter(|r| r.2.is_none()).count();
    let active_base = |log: &Log| *log.segment_base_offsets().last().unwrap();
    log.compact(100, &CompactionLimits::default()).unwrap();
    let kept = rows(&log)
        .iter()
        .filter(|r| r.2.is_none() && r.0 < active_base(&log))
        .count();
    assert!(kept > 0, "tombstones younger than delete.retention.ms stay");
    let report = log.compact(10_000, &CompactionLimits::default()).unwrap();
    assert!(report.tombstones_removed > 0, "{report:?}");
    let left = rows(&log)
        .iter()
        .filter(|r| r.2.is_none() && r.0 < active_base(&log))
        .count();
    assert_eq!(left, 0);
    assert!(
        tombstones(&log) <= 1,
        "only the active segment may still hold one"
    );
}

#[test]
fn small_key_map_cleans_a_prefix() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(), 0).unwrap();
    fill(&log);
    let limits = CompactionLimits {
        key_map_bytes_max: 300,
        ..CompactionLimits::default()
    };
    let report = log.compact(100, &limits).unwrap();
    assert!(report.segments_cleaned <= 1, "{report:?}");
    let report = log
        .compact(
            100,
            &CompactionLimits {
                key_map_bytes_max: 0,
                ..limits
            },
        )
        .unwrap();
    assert_eq!(report.segments_cleaned, 0);
}

#[test]
fn delete_policy_does_not_compact() {
    let fs = SimFs::new();
    let log = open_sim(&fs, LogConfig::test_min(), 0).unwrap();
    fill(&log);
    assert_eq!(
        log.compact(100, &CompactionLimits::default())
            .unwrap()
            .segments_cleaned,
        0
    );
}

/// Power loss at every write and every fsync of a compaction pass: after restart the
/// records are between "after" and "before", the latest per key is intact, the log valid.
#[test]
fn power_loss_during_compaction_is_before_or_after() {
    let base = SimFs::new();
    let log = open_sim(&base, config(), 0).unwrap();
    fill(&log);
    let before = rows(&log);
    log.close().unwrap();
    let fresh = || {
        let fs = base.crash(0);
        let log = open_sim(&fs, config(), 0).unwrap();
        log.set_high_watermark(log.log_end_offset());
        (fs, log)
    };
    let (fs, log) = fresh();
    let (w0, s0) = (fs.write_count(), fs.sync_count());
    log.compact(100, &CompactionLimits::default()).unwrap();
    let after = rows(&log);
    assert!(after.len() < before.len());
    let (writes, syncs) = (fs.write_count() - w0, fs.sync_count() - s0);
    let mut cases = Vec::new();
    for n in 1..=writes {
        cases.push(SimFaults {
            power_loss_at_write: Some(n),
            ..Default::default()
        });
    }
    for n in 1..=syncs {
        cases.push(SimFaults {
            power_loss_at_sync: Some(n),
            ..Default::default()
        });
    }
    for (i, faults) in cases.into_iter().enumerate() {
        let (fs, log) = fresh();
        let shift = |n: Option<u64>, by: u64| n.map(|n| n + by);
        fs.set_faults(SimFaults {
            power_loss_at_write: shift(faults.power_loss_at_write, fs.write_count()),
            power_loss_at_sync: shift(faults.power_loss_at_sync, fs.sync_count()),
            ..Default::default()
        });
        assert!(
            log.compact(100, &CompactionLimits::default()).is_err(),
            "case {i}: the fault hits"
        );
        let image = fs.crash(i as u64);
        let log = open_sim(&image, config(), 0).unwrap();
        let got = rows(&log);
        assert!(after.is_subset(&got), "case {i} {faults:?}: lost records");
        assert!(
            got.is_subset(&before),
            "case {i} {faults:?}: invented records"
        );
        assert_eq!(log.log_end_offset(), 72);
        let names = image_names(&image);
        assert!(
            !names
                .iter()
                .any(|n| n.ends_with(".swap") || n.ends_with(".cleaned")),
            "case {i}: leftovers {names:?}"
        );
    }
}

fn image_names(fs: &SimFs) -> Vec<String> {
    use strom_log::fs::FileSystem;
    fs.list_dir(&dir()).unwrap()
}
