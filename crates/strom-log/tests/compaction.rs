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

/// Kafka's `DefaultRecordBatch.writeEmptyHeader` for the batch `h`, field by field from
/// its layout: uncompressed, base timestamp -1, no delete horizon, offsets, max timestamp
/// and producer fields kept.
fn kafka_empty_header(h: &BatchHeader) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&h.base_offset.to_be_bytes());
    b.extend_from_slice(&49i32.to_be_bytes());
    b.extend_from_slice(&h.partition_leader_epoch.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&(h.attributes & 0x38).to_be_bytes());
    b.extend_from_slice(&h.last_offset_delta.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&h.max_timestamp.to_be_bytes());
    b.extend_from_slice(&h.producer_id.to_be_bytes());
    b.extend_from_slice(&h.producer_epoch.to_be_bytes());
    b.extend_from_slice(&h.base_sequence.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Each segment's batches as stored: (segment base, batch bytes), oldest first.
fn segment_batches(fs: &SimFs, log: &Log) -> Vec<(i64, Vec<Vec<u8>>)> {
    log.segment_base_offsets()
        .into_iter()
        .map(|base| {
            let bytes = fs.contents(&dir().join(format!("{base:020}.log"))).unwrap();
            let batches = strom_records::batches(&bytes)
                .map(|item| bytes[item.unwrap().1].to_vec())
                .collect();
            (base, batches)
        })
        .collect()
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// 48 batches of three records over four keys (whole batches get superseded), in
/// `compression`. Batches 0..16 come from idempotent producer 7 (recent), 16..24 from
/// producer 9 (older than `producer.id.expiration.ms` at `now`), the rest from no producer.
fn fill_overwrites(log: &Log, compression: Compression, now: i64) {
    for i in 0..48i64 {
        let (producer, ts) = match i {
            0..16 => (Some((7, i)), now - 1000 + i),
            16..24 => (Some((9, i - 16)), now - 2 * DAY_MS + i),
            _ => (None, now - 1000 + i),
        };
        let mut b = BatchBuilder::new(0, ts).compression(compression);
        if let Some((id, batch_index)) = producer {
            b = b.producer(id, 0, (batch_index * 3) as i32);
        }
        for k in 0..3 {
            b.append(
                ts,
                Some(format!("key-{}", (i + k) % 4).into_bytes().into()),
                Some(format!("{i:0>300}").into_bytes().into()),
                Vec::new(),
            )
            .unwrap();
        }
        log.append(&mut b.build().unwrap(), AppendOrigin::Client, 0)
            .unwrap();
    }
    log.flush().unwrap();
    log.set_high_watermark(log.log_end_offset());
}

/// A batch whose records all went is dropped, or kept as the 61-byte uncompressed header
/// Kafka writes (never an empty compressed payload, which librdkafka cannot read): when it
/// ends its segment, or is the last batch of an idempotent producer not yet expired.
#[test]
fn emptied_batches_are_kafkas_uncompressed_empty_header() {
    let now = 10 * DAY_MS;
    for compression in Compression::ALL {
        let fs = SimFs::new();
        let log = open_sim(&fs, config(), 0).unwrap();
        fill_overwrites(&log, compression, now);
        let before = rows(&log);
        let originals: BTreeMap<i64, Vec<u8>> = read_all(&log).into_iter().collect();
        let last_of_7 = originals
            .values()
            .map(|b| BatchHeader::parse(b).unwrap())
            .filter(|h| h.producer_id == 7)
            .map(|h| h.base_offset)
            .max()
            .unwrap();
        let last_of_9 = 16 * 3 + 7 * 3;
        for pass in 0..2 {
            let report = log.compact(now, &CompactionLimits::default()).unwrap();
            assert!(pass > 0 || report.segments_cleaned > 0, "{compression:?}");
            let after = rows(&log);
            assert_eq!(latest_per_key(&after), latest_per_key(&before));
            let segments = segment_batches(&fs, &log);
            let active = segments.len() - 1;
            let (mut empties, mut kept_for_7, mut empty_of_compressed) = (0, false, 0);
            for (s, (base, batches)) in segments.iter().enumerate() {
                for (i, batch) in batches.iter().enumerate() {
                    let h = BatchHeader::parse(batch).unwrap();
                    let original = BatchHeader::parse(&originals[&h.base_offset]).unwrap();
                    if h.records_count > 0 {
                        assert_eq!(h.compression().unwrap(), compression);
                        continue;
                    }
                    assert_ne!(s, active, "the active segment is never cleaned");
                    assert_eq!(
                        batch,
                        &kafka_empty_header(&original),
                        "{compression:?} at {base}"
                    );
                    assert_eq!(batch.len(), 61);
                    empties += 1;
                    empty_of_compressed +=
                        usize::from(original.compression().unwrap() != Compression::None);
                    let last_in_segment = i == batches.len() - 1;
                    kept_for_7 |= h.base_offset == last_of_7;
                    assert!(
                        last_in_segment || h.base_offset == last_of_7,
                        "{compression:?}: empty batch at {} kept for no reason",
                        h.base_offset
                    );
                    assert!(
                        h.base_offset != last_of_9 || last_in_segment,
                        "expired producer"
                    );
                }
            }
            assert!(
                empties > 0,
                "{compression:?}: whole batches were compacted away"
            );
            if compression != Compression::None {
                assert!(empty_of_compressed > 0);
            }
            assert!(
                kept_for_7,
                "{compression:?} pass {pass}: producer 7's last batch"
            );
        }
        // Clients read it all: every batch decodes, offsets up to the end.
        assert_eq!(log.log_end_offset(), 144);
        log.close().unwrap();
        let log = open_sim(&fs.crash(3), config(), 0).unwrap();
        assert_eq!(latest_per_key(&rows(&log)), latest_per_key(&before));
    }
}

fn tiny_config(segment_index_bytes: u64) -> LogConfig {
    LogConfig {
        segment_index_bytes,
        ..config()
    }
}

/// Batches `fill_tiny` appends, three offsets each.
const TINY_BATCHES: u32 = 120;

/// 120 uncompressed batches of three records over four keys: over 20 segments, each
/// compacted by the first pass down to its last batch.
fn fill_tiny(log: &Log) {
    for i in 0..TINY_BATCHES {
        let keys: Vec<(u32, Option<u32>)> = (0..3).map(|k| ((i + k) % 4, Some(i))).collect();
        log.append(
            &mut keyed(&keys, i64::from(i), Compression::None),
            AppendOrigin::Client,
            0,
        )
        .unwrap();
    }
    log.flush().unwrap();
    log.set_high_watermark(log.log_end_offset());
}

/// Segment bases and, per segment, the offsets it covers: each ends where the next starts.
fn check_segments(log: &Log) {
    let bases = log.segment_base_offsets();
    for pair in bases.windows(2) {
        let (base, next) = (pair[0], pair[1]);
        let info = log
            .read(base.max(log.log_start_offset()), 1, i64::MAX)
            .unwrap();
        let range = info.range.unwrap();
        assert!(range.first_offset >= base && range.first_offset < next);
    }
}

#[test]
fn small_segments_are_merged() {
    for (index_bytes, most) in [(4096, 3), (8 * 12, 5)] {
        let fs = SimFs::new();
        let log = open_sim(&fs, tiny_config(index_bytes), 0).unwrap();
        fill_tiny(&log);
        let before = rows(&log);
        let segments = log.segment_count();
        assert!(segments >= 20, "{segments}");
        let first = log.compact(1000, &CompactionLimits::default()).unwrap();
        assert_eq!(
            first.segments_merged, 0,
            "full segments do not group: {first:?}"
        );
        assert_eq!(log.segment_count(), segments);
        let cleaned = rows(&log);
        let second = log.compact(1000, &CompactionLimits::default()).unwrap();
        assert!(second.segments_merged >= segments - most, "{second:?}");
        assert!(
            log.segment_count() <= most,
            "{} segments",
            log.segment_count()
        );
        assert_eq!(rows(&log), cleaned, "merging removes nothing more");
        assert_eq!(latest_per_key(&cleaned), latest_per_key(&before));
        assert_eq!(log.log_end_offset(), 3 * i64::from(TINY_BATCHES));
        check_segments(&log);
        // Index bounds: a merged segment's time index fits segment.index.bytes.
        for (base, batches) in segment_batches(&fs, &log) {
            let time_index = fs
                .contents(&dir().join(format!("{base:020}.timeindex")))
                .unwrap();
            assert!(time_index.len() as u64 <= index_bytes, "{base}");
            assert!(!batches.is_empty());
        }
        for offset in 0..3 * i64::from(TINY_BATCHES) {
            let range = log.read(offset, 1, i64::MAX).unwrap().range.unwrap();
            assert!(range.next_offset > offset);
        }
        let bases = log.segment_base_offsets();
        log.close().unwrap();
        let reopened = open_sim(&fs, tiny_config(index_bytes), 0).unwrap();
        assert_eq!(reopened.segment_base_offsets(), bases);
        assert_eq!(rows(&reopened), cleaned);
        let log = open_sim(&fs.crash(5), tiny_config(index_bytes), 0).unwrap();
        assert_eq!(log.segment_base_offsets(), bases);
        assert_eq!(rows(&log), cleaned);
    }
}

/// Power loss at every write and fsync of a pass that merges segments, with every prefix
/// of the directory changes not yet synced surviving too (every rename of the swap): after
/// restart the segments are exactly the old set or the new one, records between the two.
#[test]
fn power_loss_during_a_merging_swap_is_old_set_or_new_set() {
    let config = tiny_config(4096);
    let base = SimFs::new();
    let log = open_sim(&base, config.clone(), 0).unwrap();
    fill_tiny(&log);
    log.compact(1000, &CompactionLimits::default()).unwrap();
    let old_bases = log.segment_base_offsets();
    let before = rows(&log);
    log.close().unwrap();
    let fresh = || {
        let fs = base.crash(0);
        let log = open_sim(&fs, config.clone(), 0).unwrap();
        log.set_high_watermark(log.log_end_offset());
        (fs, log)
    };
    let (fs, log) = fresh();
    let (w0, s0) = (fs.write_count(), fs.sync_count());
    let report = log.compact(1000, &CompactionLimits::default()).unwrap();
    assert!(report.segments_merged > 10, "{report:?}");
    let new_bases = log.segment_base_offsets();
    let after = rows(&log);
    assert_eq!(after, before);
    let (writes, syncs) = (fs.write_count() - w0, fs.sync_count() - s0);
    let mut cases = Vec::new();
    for n in 1..=writes {
        cases.push(SimFaults {
            power_loss_at_write: Some(n),
            ..Default::default()
        });
    }
    for n in 1..=syncs + 1 {
        cases.push(SimFaults {
            power_loss_at_sync: Some(n),
            ..Default::default()
        });
    }
    let (mut old_seen, mut new_seen) = (0, 0);
    for (i, faults) in cases.into_iter().enumerate() {
        let (fs, log) = fresh();
        let shift = |n: Option<u64>, by: u64| n.map(|n| n + by);
        fs.set_faults(SimFaults {
            power_loss_at_write: shift(faults.power_loss_at_write, fs.write_count()),
            power_loss_at_sync: shift(faults.power_loss_at_sync, fs.sync_count()),
            ..Default::default()
        });
        let result = log.compact(1000, &CompactionLimits::default());
        assert!(
            result.is_err() || faults.power_loss_at_sync == Some(syncs + 1),
            "case {i}: the fault hits"
        );
        for kept in 0..=fs.pending_dir_ops() {
            let image = fs.crash_with_dir_ops(i as u64, kept);
            let log = open_sim(&image, config.clone(), 0).unwrap();
            let bases = log.segment_base_offsets();
            let context = format!("case {i} {faults:?}, {kept} dir ops kept");
            if bases == old_bases {
                old_seen += 1;
            } else {
                assert_eq!(bases, new_bases, "{context}");
                new_seen += 1;
            }
            assert_eq!(rows(&log), before, "{context}");
            assert_eq!(
                log.log_end_offset(),
                3 * i64::from(TINY_BATCHES),
                "{context}"
            );
            check_segments(&log);
            let names = image_names(&image);
            assert!(
                !names.iter().any(|n| n.ends_with(".swap")
                    || n.ends_with(".cleaned")
                    || n.ends_with(".deleted")),
                "{context}: leftovers {names:?}"
            );
            // The recovered log cleans on to the new set.
            log.set_high_watermark(log.log_end_offset());
            log.compact(1000, &CompactionLimits::default()).unwrap();
            assert_eq!(log.segment_base_offsets(), new_bases, "{context}");
        }
    }
    assert!(old_seen > 0 && new_seen > 0, "{old_seen} {new_seen}");
}

/// A crash after the commit point leaves the merge to the next open; power loss at every
/// write and fsync of that open (and every prefix of its directory changes) still ends,
/// one open later, in the new set.
#[test]
fn power_loss_while_open_completes_a_merge() {
    let config = tiny_config(4096);
    let base = SimFs::new();
    let log = open_sim(&base, config.clone(), 0).unwrap();
    fill_tiny(&log);
    log.compact(1000, &CompactionLimits::default()).unwrap();
    let before = rows(&log);
    log.close().unwrap();
    // Find the commit point: the fsync after `B.log.swap` appears.
    let mut committed = None;
    for n in 1..200 {
        let fs = base.crash(0);
        let log = open_sim(&fs, config.clone(), 0).unwrap();
        log.set_high_watermark(log.log_end_offset());
        fs.set_faults(SimFaults {
            power_loss_at_sync: Some(fs.sync_count() + n),
            ..Default::default()
        });
        let _ = log.compact(1000, &CompactionLimits::default());
        let image = fs.crash(0);
        if image_names(&image).iter().any(|n| n.ends_with(".log.swap")) {
            committed = Some(image);
            break;
        }
    }
    let committed = committed.expect("a crash point after the commit");
    let new_bases = {
        let log = open_sim(&committed.crash(0), config.clone(), 0).unwrap();
        assert_eq!(rows(&log), before);
        log.segment_base_offsets()
    };
    assert!(new_bases.len() < 5, "{new_bases:?}");
    let probe = committed.crash(0);
    let (w0, s0) = (probe.write_count(), probe.sync_count());
    open_sim(&probe, config.clone(), 0).unwrap();
    let (writes, syncs) = (probe.write_count() - w0, probe.sync_count() - s0);
    for (i, faults) in (1..=writes)
        .map(|n| SimFaults {
            power_loss_at_write: Some(n),
            ..Default::default()
        })
        .chain((1..=syncs).map(|n| SimFaults {
            power_loss_at_sync: Some(n),
            ..Default::default()
        }))
        .enumerate()
    {
        let fs = committed.crash(0);
        fs.set_faults(faults);
        assert!(open_sim(&fs, config.clone(), 0).is_err(), "case {i}");
        for kept in 0..=fs.pending_dir_ops() {
            let log = open_sim(&fs.crash_with_dir_ops(i as u64, kept), config.clone(), 0).unwrap();
            assert_eq!(
                log.segment_base_offsets(),
                new_bases,
                "case {i} {faults:?} kept {kept}"
            );
            assert_eq!(rows(&log), before, "case {i}");
        }
    }
}

/// `min.compaction.lag.ms` keeps segments holding records younger than the lag (and every
/// later one) uncleaned; with no lag, timestamps play no part (as in Kafka), so batches
/// stamped in the future do not hold compaction back.
#[test]
fn min_compaction_lag() {
    // fill(): batch i (timestamp i) holds one record, two when i % 5 == 0.
    let first_offset = |batch: i64| {
        (0..batch)
            .map(|i| if i % 5 == 0 { 2 } else { 1 })
            .sum::<i64>()
    };
    let fs = SimFs::new();
    let lagged = LogConfig {
        min_compaction_lag_ms: 30,
        ..config()
    };
    let log = open_sim(&fs, lagged, 0).unwrap();
    fill(&log);
    let before = rows(&log);
    let report = log.compact(50, &CompactionLimits::default()).unwrap();
    assert!(report.records_removed > 0, "{report:?}");
    let after = rows(&log);
    let young = first_offset(21);
    let kept_young: BTreeSet<Row> = before.iter().filter(|r| r.0 >= young).cloned().collect();
    assert!(
        kept_young.is_subset(&after),
        "records younger than the lag stay"
    );
    assert!(
        before.iter().filter(|r| r.0 < young).count()
            > after.iter().filter(|r| r.0 < young).count()
    );

    let fs = SimFs::new();
    let log = open_sim(&fs, config(), 0).unwrap();
    for i in 0..60u32 {
        let keys = [(i % 6, Some(i))];
        let future = 1_000_000_000_000 + i64::from(i);
        log.append(
            &mut keyed(&keys, future, Compression::None),
            AppendOrigin::Client,
            0,
        )
        .unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
    let report = log.compact(100, &CompactionLimits::default()).unwrap();
    assert!(report.records_removed > 0, "{report:?}");
}

/// A transactional batch of producer `producer_id` with one record per key.
fn txn_keyed(producer_id: i64, keys: &[u32], timestamp_ms: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(0, timestamp_ms)
        .producer(producer_id, 0, 0)
        .transactional(true);
    for key in keys {
        b.append(
            timestamp_ms,
            Some(format!("key-{key}").into_bytes().into()),
            Some(format!("txn-{producer_id}").into_bytes().into()),
            Vec::new(),
        )
        .unwrap();
    }
    b.build().unwrap()
}

fn end_marker(producer_id: i64, commit: bool, timestamp_ms: i64) -> Vec<u8> {
    strom_records::EndTransactionMarker {
        commit,
        coordinator_epoch: 0,
    }
    .to_batch(0, timestamp_ms, producer_id, 0)
    .unwrap()
}

/// Base offsets of the control batches still holding a marker record.
fn markers_left(log: &Log) -> Vec<i64> {
    read_all(log)
        .into_iter()
        .filter(|(_, batch)| {
            let h = BatchHeader::parse(batch).unwrap();
            h.is_control() && h.records_count > 0
        })
        .map(|(offset, _)| offset)
        .collect()
}

/// KIP-534 for COMMIT and ABORT markers on a real log: a committed transaction's records
/// all superseded and an aborted one's removed in one pass, the next pass gives their
/// markers a delete horizon, and one at or after the horizon removes them, but only below
/// every producer snapshot; the ABORT marker goes with its `.txnindex` entry, never one
/// without the other. A committed transaction with a record left keeps its marker.
#[test]
fn markers_go_after_their_transactions_and_the_delete_horizon() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(), 0).unwrap();
    let append = |bytes: Vec<u8>| {
        let mut bytes = bytes;
        log.append(&mut bytes, AppendOrigin::Coordinator, 0)
            .unwrap()
            .first_offset
    };
    // 1 commits key 0 (superseded below), 2 aborts key 1, 3 commits key 2 (stays).
    append(txn_keyed(1, &[0], 10));
    let commit_1 = append(end_marker(1, true, 10));
    append(txn_keyed(2, &[1], 10));
    let abort_2 = append(end_marker(2, false, 10));
    // Its `.txnindex` entry, as the broker writes it after the marker's append.
    let aborted_2 = strom_log::AbortedTxn {
        producer_id: 2,
        first_offset: abort_2 - 1,
        last_offset: abort_2,
        last_stable_offset: abort_2 + 1,
    };
    log.append_txn_index(aborted_2).unwrap();
    append(txn_keyed(3, &[2], 10));
    let commit_3 = append(end_marker(3, true, 10));
    // Plain records: key 0 again, then enough to roll the transactions out of the active
    // segment.
    for i in 0..20u32 {
        append(keyed(
            &[(if i == 0 { 0 } else { 10 + i }, Some(i))],
            10,
            Compression::None,
        ));
    }
    log.set_high_watermark(log.log_end_offset());
    log.flush().unwrap();
    assert!(
        *log.segment_base_offsets().last().unwrap() > commit_3,
        "the markers are out of the active segment"
    );
    let all = [commit_1, abort_2, commit_3];
    assert_eq!(markers_left(&log), all);

    // A snapshot at the log end (as the broker writes after a roll): every marker below it.
    let snapshot_at = log.log_end_offset();
    log.write_producer_snapshot(snapshot_at, &strom_log::frame_snapshot(snapshot_at, b""))
        .unwrap();
    // Pass 1 removes the aborted record and the superseded one; every marker saw its data.
    let report = log.compact(100, &CompactionLimits::default()).unwrap();
    assert!(report.records_removed >= 2, "{report:?}");
    assert_eq!(markers_left(&log), all);
    // The aborted records went, the marker and its entry stay: the data goes first.
    let end = log.log_end_offset();
    assert_eq!(all_txn_entries(&log), [aborted_2]);
    assert_eq!(log.aborted_between(0, end).unwrap(), [aborted_2]);
    // Pass 2 sets the horizon (100 + delete.retention.ms) of producers 1's and 2's markers;
    // pass 3, before it, changes nothing.
    log.compact(100, &CompactionLimits::default()).unwrap();
    log.compact(1099, &CompactionLimits::default()).unwrap();
    assert_eq!(markers_left(&log), all);
    assert_eq!(all_txn_entries(&log), [aborted_2]);
    // A snapshot at producer 1's marker (not above it) holds both removals back.
    log.write_producer_snapshot(commit_1, &strom_log::frame_snapshot(commit_1, b""))
        .unwrap();
    log.compact(1100, &CompactionLimits::default()).unwrap();
    assert_eq!(markers_left(&log), all);
    // One at producer 2's ABORT marker lets producer 1's COMMIT marker go, not it: the
    // ABORT marker and its entry stay.
    log.remove_producer_snapshots_above(commit_1 - 1).unwrap();
    log.write_producer_snapshot(abort_2, &strom_log::frame_snapshot(abort_2, b""))
        .unwrap();
    log.compact(1100, &CompactionLimits::default()).unwrap();
    assert_eq!(markers_left(&log), [abort_2, commit_3]);
    assert_eq!(all_txn_entries(&log), [aborted_2]);
    assert_eq!(log.aborted_between(0, end).unwrap(), [aborted_2]);
    // Without it, producer 2's ABORT marker goes too, and its `.txnindex` entry with it;
    // producer 3's stays (its record is left).
    log.remove_producer_snapshots_above(abort_2 - 1).unwrap();
    log.write_producer_snapshot(snapshot_at, &strom_log::frame_snapshot(snapshot_at, b""))
        .unwrap();
    log.compact(1100, &CompactionLimits::default()).unwrap();
    assert_eq!(markers_left(&log), [commit_3]);
    let kept: Vec<(i64, Vec<u8>)> = rows(&log)
        .into_iter()
        .filter(|r| r.1 == b"key-1" || r.1 == b"key-2")
        .map(|r| (r.0, r.2.unwrap()))
        .collect();
    assert_eq!(kept, [(commit_3 - 1, b"txn-3".to_vec())]);
    assert_eq!(all_txn_entries(&log), []);
    assert_eq!(log.aborted_between(0, end).unwrap(), []);
    // The log reopens (after a crash too) with the same content, and the same index where
    // recovery did not scan (what it scanned, the broker rebuilds).
    let before = read_all(&log);
    drop(log);
    let log = open_sim(&fs.crash(7), config(), 2000).unwrap();
    assert_eq!(read_all(&log), before);
    if log
        .txn_index_rebuild_from()
        .is_none_or(|from| from > commit_3)
    {
        assert_eq!(all_txn_entries(&log), []);
        assert_eq!(log.aborted_between(0, end).unwrap(), []);
    }
}

/// Every `.txnindex` entry of the log, in segment order.
fn all_txn_entries(log: &Log) -> Vec<strom_log::AbortedTxn> {
    log.segment_base_offsets()
        .into_iter()
        .flat_map(|base| log.txn_index_entries(base).unwrap())
        .collect()
}

/// Producer 1 aborts key 1 (its entry handed to the log), producer 2 commits key 2, then
/// plain records roll both out of the active segment; two passes remove the aborted
/// record and set the delete horizon (1100) of the ABORT marker. Returns the entry.
fn aborted_marker_with_horizon(log: &Log) -> strom_log::AbortedTxn {
    let aborted = abort_txn(log, 1, 1, 10);
    append_as_coordinator(log, txn_keyed(2, &[2], 10));
    append_as_coordinator(log, end_marker(2, true, 10));
    roll_out(log, 10, 10);
    log.compact(100, &CompactionLimits::default()).unwrap();
    log.compact(100, &CompactionLimits::default()).unwrap();
    assert!(markers_left(log).contains(&aborted.last_offset));
    assert_eq!(all_txn_entries(log), [aborted]);
    aborted
}

/// Appends `bytes` as a coordinator (the broker's markers); returns its first offset.
fn append_as_coordinator(log: &Log, mut bytes: Vec<u8>) -> i64 {
    log.append(&mut bytes, AppendOrigin::Coordinator, 0)
        .unwrap()
        .first_offset
}

/// Producer `producer_id` writes `key` in a transaction at `timestamp_ms` and aborts it;
/// its `.txnindex` entry is handed to the log as the broker does after the marker's
/// append. Returns the entry.
fn abort_txn(log: &Log, producer_id: i64, key: u32, timestamp_ms: i64) -> strom_log::AbortedTxn {
    let first_offset = append_as_coordinator(log, txn_keyed(producer_id, &[key], timestamp_ms));
    let abort = append_as_coordinator(log, end_marker(producer_id, false, timestamp_ms));
    let aborted = strom_log::AbortedTxn {
        producer_id,
        first_offset,
        last_offset: abort,
        last_stable_offset: abort + 1,
    };
    log.append_txn_index(aborted).unwrap();
    aborted
}

/// Twenty plain records with keys from `first_key` at `timestamp_ms`, enough to roll what
/// came before out of the active segment; then all of it is committed and flushed.
fn roll_out(log: &Log, first_key: u32, timestamp_ms: i64) {
    for i in 0..20u32 {
        append_as_coordinator(
            log,
            keyed(&[(first_key + i, Some(i))], timestamp_ms, Compression::None),
        );
    }
    log.set_high_watermark(log.log_end_offset());
    log.flush().unwrap();
}

/// Two aborted transactions whose ABORT markers reach their delete horizons at different
/// times: the pass that removes the first marker drops its `.txnindex` entry and keeps the
/// second's (its marker stays), and the pass that removes the second drops that one too;
/// every other batch's entries are untouched (a COMMIT marker removed drops nothing).
#[test]
fn a_pass_drops_only_the_entries_of_the_abort_markers_it_removes() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(), 0).unwrap();
    // Producer 1's ABORT marker: no data left and a horizon of 1100 after two passes.
    let first = aborted_marker_with_horizon(&log);
    // Producer 3 aborts later: its data is still there when the first marker goes.
    let second = abort_txn(&log, 3, 3, 500);
    let abort = second.last_offset;
    roll_out(&log, 40, 500);
    assert!(*log.segment_base_offsets().last().unwrap() > abort);
    let end = log.log_end_offset();
    assert_eq!(all_txn_entries(&log), [first, second]);
    // At the first horizon: the first marker goes with its entry; producer 3's data goes,
    // its marker and entry stay (the data goes first).
    let report = log.compact(1100, &CompactionLimits::default()).unwrap();
    assert!(report.records_removed >= 1, "{report:?}");
    let left = markers_left(&log);
    assert!(!left.contains(&first.last_offset), "{left:?}");
    assert!(left.contains(&abort), "{left:?}");
    assert_eq!(all_txn_entries(&log), [second]);
    assert_eq!(log.aborted_between(0, end).unwrap(), [second]);
    // The next pass sets the second marker's horizon (1100 + delete.retention.ms), one
    // before it changes nothing, one at it removes the marker and its entry.
    log.compact(1100, &CompactionLimits::default()).unwrap();
    log.compact(2099, &CompactionLimits::default()).unwrap();
    assert!(markers_left(&log).contains(&abort));
    assert_eq!(all_txn_entries(&log), [second]);
    log.compact(2100, &CompactionLimits::default()).unwrap();
    let left = markers_left(&log);
    assert!(!left.contains(&abort), "{left:?}");
    assert_eq!(all_txn_entries(&log), []);
    assert_eq!(log.aborted_between(0, end).unwrap(), []);
}

/// Power loss at every write and fsync of the pass that removes an ABORT marker, with
/// every prefix of its directory changes: the log reopens with the marker and its
/// `.txnindex` entry, or with neither (the cleaned segment's index is written and fsynced
/// before the swap's commit point, and swapped with it).
#[test]
fn power_loss_while_an_abort_marker_goes_keeps_it_with_its_entry() {
    let base = SimFs::new();
    let log = open_sim(&base, config(), 0).unwrap();
    let aborted = aborted_marker_with_horizon(&log);
    log.close().unwrap();
    let fresh = || {
        let fs = base.crash(0);
        let log = open_sim(&fs, config(), 0).unwrap();
        log.set_high_watermark(log.log_end_offset());
        (fs, log)
    };
    let (fs, log) = fresh();
    let (w0, s0) = (fs.write_count(), fs.sync_count());
    log.compact(1100, &CompactionLimits::default()).unwrap();
    assert!(!markers_left(&log).contains(&aborted.last_offset));
    assert_eq!(all_txn_entries(&log), []);
    let after = read_all(&log);
    let (writes, syncs) = (fs.write_count() - w0, fs.sync_count() - s0);
    let cases: Vec<SimFaults> = (1..=writes)
        .map(|n| SimFaults {
            power_loss_at_write: Some(n),
            ..Default::default()
        })
        .chain((1..=syncs + 1).map(|n| SimFaults {
            power_loss_at_sync: Some(n),
            ..Default::default()
        }))
        .collect();
    let (mut kept_seen, mut gone_seen) = (0, 0);
    for (i, faults) in cases.into_iter().enumerate() {
        let (fs, log) = fresh();
        let shift = |n: Option<u64>, by: u64| n.map(|n| n + by);
        fs.set_faults(SimFaults {
            power_loss_at_write: shift(faults.power_loss_at_write, fs.write_count()),
            power_loss_at_sync: shift(faults.power_loss_at_sync, fs.sync_count()),
            ..Default::default()
        });
        let _ = log.compact(1100, &CompactionLimits::default());
        for kept in 0..=fs.pending_dir_ops() {
            let image = fs.crash_with_dir_ops(i as u64, kept);
            let log = open_sim(&image, config(), 0).unwrap();
            let context = format!("case {i} {faults:?}, {kept} dir ops kept");
            assert!(
                log.txn_index_rebuild_from()
                    .is_none_or(|from| from > aborted.last_offset),
                "{context}: the cleaned segments are below the recovery point"
            );
            let entries = all_txn_entries(&log);
            if markers_left(&log).contains(&aborted.last_offset) {
                assert_eq!(entries, [aborted], "{context}");
                kept_seen += 1;
            } else {
                assert_eq!(entries, [], "{context}");
                assert_eq!(read_all(&log), after, "{context}");
                gone_seen += 1;
            }
        }
    }
    assert!(kept_seen > 0 && gone_seen > 0, "{kept_seen} {gone_seen}");
}
