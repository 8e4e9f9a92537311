//! Repairing a damaged cold segment from another replica's copy (`Log::replace_cold_segment`,
//! the scrubber's repair): the copy is checked (CRCs, the segment's exact offsets, the
//! leader epochs of this log's epoch cache) and swapped in like a compaction group of one;
//! a refused copy changes nothing; a power loss at any write, fsync or directory change of
//! the swap leaves the damaged segment or the repaired one, never a missing offset.

mod common;

use std::path::PathBuf;

use common::{batch, dir, open_sim, read_all};
use strom_log::fs::{FileSystem, SimFaults, SimFs};
use strom_log::{AppendOrigin, ColdSegment, Durability, Log, LogConfig, ScrubCursor, ScrubDamage};
use strom_records::batch_frames;

fn config() -> LogConfig {
    LogConfig {
        durability: Durability::SyncOnCommit,
        ..LogConfig::test_min()
    }
}

/// The same log on any file system: the same batches, epoch 0, everything synced.
fn filled(fs: &SimFs) -> Log {
    let log = open_sim(fs, config(), 0).unwrap();
    for i in 0..40 {
        let mut bytes = batch(3, 200, i);
        strom_records::set_partition_leader_epoch(&mut bytes, 0).unwrap();
        log.append(&mut bytes, AppendOrigin::Client, i).unwrap();
    }
    log.flush().unwrap();
    assert!(log.segment_count() >= 4, "{}", log.segment_count());
    log
}

fn segment_path(base: i64) -> PathBuf {
    dir().join(format!("{base:020}.log"))
}

fn damage(log: &Log) -> Vec<ScrubDamage> {
    let mut cursor = ScrubCursor::default();
    let mut found = Vec::new();
    for _ in 0..100_000 {
        let step = log.scrub_step(&mut cursor, 1 << 20).unwrap();
        found.extend(step.damage);
        if step.pass_done {
            return found;
        }
    }
    panic!("the pass did not end");
}

/// A follower whose second segment has a flipped payload byte, the leader's intact copy
/// of that segment, and the segment's place.
fn damaged_follower() -> (SimFs, Log, Vec<u8>, ColdSegment) {
    let leader_fs = SimFs::new();
    let leader = filled(&leader_fs);
    let fs = SimFs::new();
    let log = filled(&fs);
    let base = log.segment_base_offsets()[1];
    let good = fs.contents(&segment_path(base)).unwrap();
    assert_eq!(leader_fs.contents(&segment_path(base)).unwrap(), good);
    let mut bad = good.clone();
    let last = bad.len() - 10;
    bad[last] ^= 0x01;
    assert!(fs.replace_contents(&segment_path(base), bad));
    let found = damage(&log);
    assert_eq!(found.len(), 1, "{found:?}");
    let target = log.cold_segment_at(found[0].first_offset).unwrap();
    assert_eq!(target.base_offset, base);
    drop(leader);
    (fs, log, good, target)
}

fn leftovers(fs: &SimFs) -> Vec<String> {
    fs.list_dir(&dir())
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".swap") || n.ends_with(".cleaned"))
        .collect()
}

#[test]
fn a_checked_copy_replaces_the_damaged_segment_and_the_log_reads_whole() {
    let (fs, log, good, target) = damaged_follower();
    let repair = log.replace_cold_segment(target, &good).unwrap();
    assert_eq!(repair.base_offset, target.base_offset);
    assert_eq!(repair.end_offset, target.end_offset);
    assert_eq!(repair.bytes_after, good.len() as u64);
    assert_eq!(
        fs.contents(&segment_path(target.base_offset)).unwrap(),
        good
    );
    assert!(damage(&log).is_empty());
    assert!(leftovers(&fs).is_empty(), "{:?}", leftovers(&fs));
    let records = read_all(&log);
    assert_eq!(records.len(), 40, "every batch reads");
    // Reopened, clean and after a crash, it is the repaired log.
    log.close().unwrap();
    let reopened = open_sim(&fs, config(), 0).unwrap();
    assert_eq!(read_all(&reopened), records);
    assert!(damage(&reopened).is_empty());
    let crashed = open_sim(&fs.crash(1), config(), 0).unwrap();
    assert_eq!(read_all(&crashed), records);
}

#[test]
fn copies_that_are_not_the_same_history_are_refused_and_nothing_changes() {
    let (fs, log, good, target) = damaged_follower();
    let damaged = fs.contents(&segment_path(target.base_offset)).unwrap();
    let frames: Vec<std::ops::Range<usize>> = batch_frames(&good).map(|f| f.unwrap().1).collect();
    let mut other_epoch = good.clone();
    strom_records::set_partition_leader_epoch(&mut other_epoch[frames[1].clone()], 7).unwrap();
    let mut bad_crc = good.clone();
    bad_crc[frames[0].end - 3] ^= 0x40;
    let short = good[..frames[frames.len() - 1].start].to_vec();
    let without_first = good[frames[1].start..].to_vec();
    let mut cut_inside = good.clone();
    cut_inside.truncate(good.len() - 5);
    let cases = [
        (
            "a batch of another leader epoch",
            other_epoch,
            "leader epoch 7",
        ),
        ("a damaged batch", bad_crc, "CRC"),
        ("a copy that ends early", short, "ends at offset"),
        (
            "a copy without the first batch",
            without_first,
            "starts at offset",
        ),
        (
            "a copy cut inside a batch",
            cut_inside,
            "ends inside a batch",
        ),
    ];
    let (writes, syncs) = (fs.write_count(), fs.sync_count());
    for (what, copy, why) in cases {
        let error = log
            .replace_cold_segment(target, &copy)
            .unwrap_err()
            .to_string();
        assert!(error.contains(why), "{what}: {error}");
        assert!(error.contains("cannot repair"), "{what}: {error}");
    }
    assert_eq!((fs.write_count(), fs.sync_count()), (writes, syncs));
    assert_eq!(
        fs.contents(&segment_path(target.base_offset)).unwrap(),
        damaged
    );
    // A segment that is not cold (the active one) is never replaced.
    let active = *log.segment_base_offsets().last().unwrap();
    assert!(log.cold_segment_at(active).is_none());
    let not_cold = ColdSegment {
        base_offset: active,
        end_offset: log.log_end_offset(),
        size_bytes: 0,
    };
    assert!(log.replace_cold_segment(not_cold, &good).is_err());
}

/// Power loss at every write and fsync of a repair, with every prefix of the directory
/// changes not yet synced surviving: after restart the segment is the damaged one or the
/// repaired one, every offset is there, and no `.cleaned` or `.swap` file is left.
#[test]
fn power_loss_during_a_repair_leaves_the_damaged_or_the_repaired_segment() {
    let (base_fs, log, good, target) = damaged_follower();
    let damaged = base_fs.contents(&segment_path(target.base_offset)).unwrap();
    log.close().unwrap();
    let fresh = || {
        let fs = base_fs.crash(0);
        let log = open_sim(&fs, config(), 0).unwrap();
        (fs, log)
    };
    let (fs, log) = fresh();
    let (w0, s0) = (fs.write_count(), fs.sync_count());
    log.replace_cold_segment(target, &good).unwrap();
    let (writes, syncs) = (fs.write_count() - w0, fs.sync_count() - s0);
    assert!(writes >= 3 && syncs >= 6, "{writes} writes, {syncs} fsyncs");
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
    let (mut old_seen, mut new_seen) = (0, 0);
    for (i, faults) in cases.into_iter().enumerate() {
        let (fs, log) = fresh();
        let shift = |n: Option<u64>, by: u64| n.map(|n| n + by);
        fs.set_faults(SimFaults {
            power_loss_at_write: shift(faults.power_loss_at_write, fs.write_count()),
            power_loss_at_sync: shift(faults.power_loss_at_sync, fs.sync_count()),
            ..Default::default()
        });
        let _ = log.replace_cold_segment(target, &good);
        for kept in 0..=fs.pending_dir_ops() {
            let image = fs.crash_with_dir_ops(i as u64, kept);
            let context = format!("case {i} {faults:?}, {kept} dir ops kept");
            let log = open_sim(&image, config(), 0).unwrap();
            let now = image.contents(&segment_path(target.base_offset)).unwrap();
            assert_eq!(log.log_end_offset(), 120, "{context}");
            if now == damaged {
                old_seen += 1;
                // Still damaged, as before the repair: the scrubber finds it again.
                assert_eq!(damage(&log).len(), 1, "{context}");
            } else {
                assert_eq!(now, good, "{context}");
                new_seen += 1;
                assert_eq!(read_all(&log).len(), 40, "{context}");
            }
            assert!(
                leftovers(&image).is_empty(),
                "{context}: {:?}",
                leftovers(&image)
            );
        }
    }
    assert!(
        old_seen > 0 && new_seen > 0,
        "{old_seen} old, {new_seen} new"
    );
}
