//! Telling a torn tail from damage at open (`log/recover.rs`): damage in fsynced data, or
//! with intact batches after it, or in a segment that others follow, stops the open with
//! `LogError::Damaged` naming the file, the byte and the offsets around it, and changes no
//! file; restoring the bytes brings every record back. An interrupted write at the tail is
//! still cut. Truncation is crash-consistent: a power loss at any step leaves a prefix.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{batch, dir, open_sim, read_all};
use proptest::prelude::*;
use strom_log::checkpoint::{Checkpoint, Stored, CHECKPOINT_FILE};
use strom_log::fs::{FileSystem, SimFaults, SimFs};
use strom_log::{AppendOrigin, Durability, Log, LogConfig, LogError};
use strom_records::BatchHeader;

fn sync_config() -> LogConfig {
    LogConfig {
        durability: Durability::SyncOnCommit,
        ..LogConfig::test_min()
    }
}

/// One large active segment.
fn one_segment_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        segment_index_bytes: 1 << 16,
        ..sync_config()
    }
}

/// Every file of the partition directory with its bytes.
fn files(fs: &SimFs) -> BTreeMap<String, Vec<u8>> {
    let mut names = fs.list_dir(&dir()).unwrap();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let bytes = fs.contents(&dir().join(&name)).unwrap();
            (name, bytes)
        })
        .collect()
}

fn segment_path(base: i64) -> PathBuf {
    dir().join(format!("{base:020}.log"))
}

/// (position, header) of every batch in `bytes`.
fn spans(bytes: &[u8]) -> Vec<(u64, BatchHeader)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let h = BatchHeader::parse(&bytes[pos..]).unwrap();
        out.push((pos as u64, h));
        pos += h.size_bytes();
    }
    out
}

/// Appends `count` batches, each acknowledged the sync-on-commit way (fsynced).
fn write_synced(log: &Log, count: usize) -> Vec<Vec<u8>> {
    let mut written = Vec::new();
    for i in 0..count {
        let mut b = batch(1 + i % 3, 50 + (i * 31) % 200, i as i64);
        let info = log.append(&mut b, AppendOrigin::Client, 0).unwrap();
        log.sync_to(info.last_offset + 1).unwrap();
        written.push(b);
    }
    written
}

fn stored_recovery_point(fs: &SimFs) -> Option<i64> {
    match Checkpoint::read(fs, &dir()).unwrap() {
        Stored::Intact(c) => Some(c.recovery_point),
        _ => None,
    }
}

/// Opens `fs` expecting damage; checks the error names `path` and `position` and that no
/// file changed.
fn expect_damage(fs: &SimFs, config: LogConfig, path: &PathBuf, position: u64) -> LogError {
    let before = files(fs);
    let error = match open_sim(fs, config, 0) {
        Ok(log) => panic!(
            "a damaged log opened: {:?}, end {}",
            log.open_report(),
            log.log_end_offset()
        ),
        Err(error) => error,
    };
    match &error {
        LogError::Damaged {
            path: p,
            position: at,
            ..
        } => {
            assert_eq!(p, path, "{error}");
            assert_eq!(*at, position, "{error}");
        }
        other => panic!("expected damage, got {other}"),
    }
    assert_eq!(error.kafka_error_code(), 56);
    let text = error.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains(&format!("at byte {position}")), "{text}");
    assert!(text.contains("restore"), "{text}");
    assert_eq!(files(fs), before, "a file changed on damage");
    error
}

#[test]
fn flipped_bit_with_intact_batches_after_it_is_damage_and_changes_nothing() {
    let fs = SimFs::new();
    let log = open_sim(&fs, one_segment_config(), 0).unwrap();
    let written = write_synced(&log, 40);
    assert_eq!(log.segment_count(), 1);
    // kill -9: the page cache survives, the checkpoint still names the segment's base.
    let image = fs.crash(1);
    let path = segment_path(0);
    let good = image.contents(&path).unwrap();
    let batches = spans(&good);
    let (victim_at, victim) = batches[17];
    let mut bad = good.clone();
    // A bit of a record, inside the CRC-covered bytes.
    bad[(victim_at + 70) as usize] ^= 0x04;
    image.replace_contents(&path, bad);
    let error = expect_damage(&image, one_segment_config(), &path, victim_at);
    let LogError::Damaged {
        offset_before,
        offset_after,
        ..
    } = &error
    else {
        unreachable!()
    };
    assert_eq!(*offset_before, Some(victim.base_offset - 1));
    assert_eq!(*offset_after, Some(victim.next_offset()), "{error}");
    assert!(
        error.to_string().contains("not an interrupted write"),
        "{error}"
    );
    // Opening again finds the same damage (nothing was cut in between).
    expect_damage(&image, one_segment_config(), &path, victim_at);
    // The byte restored, every acknowledged record is there.
    image.replace_contents(&path, good);
    let log = open_sim(&image, one_segment_config(), 0).unwrap();
    let got: Vec<Vec<u8>> = read_all(&log).into_iter().map(|(_, b)| b).collect();
    assert_eq!(got, written);
}

#[test]
fn torn_active_tail_is_cut() {
    for keep in [1usize, 12, 60, 61, 62, 150] {
        let fs = SimFs::new();
        let log = open_sim(&fs, one_segment_config(), 0).unwrap();
        let written = write_synced(&log, 10);
        let image = fs.crash(1);
        let path = segment_path(0);
        let good = image.contents(&path).unwrap();
        // The first bytes of the next batch: a write cut short.
        let mut next = batch(3, 100, 99);
        strom_records::set_base_offset(&mut next, 100).unwrap();
        let mut torn = good.clone();
        torn.extend_from_slice(&next[..keep.min(next.len() - 1)]);
        image.replace_contents(&path, torn);
        let log = open_sim(&image, one_segment_config(), 0).unwrap();
        let report = log.open_report().clone();
        assert_eq!(report.truncated_segment, Some(0), "keep {keep}: {report:?}");
        assert_eq!(report.truncated_bytes as usize, keep.min(next.len() - 1));
        let got: Vec<Vec<u8>> = read_all(&log).into_iter().map(|(_, b)| b).collect();
        assert_eq!(got, written, "keep {keep}");
        assert_eq!(image.contents(&path).unwrap(), good);
    }
}

#[test]
fn flipped_bit_in_the_last_batch_above_the_recovery_point_is_cut_as_torn() {
    let fs = SimFs::new();
    let log = open_sim(&fs, one_segment_config(), 0).unwrap();
    let written = write_synced(&log, 12);
    let image = fs.crash(1);
    assert_eq!(stored_recovery_point(&image), Some(0));
    let path = segment_path(0);
    let mut bytes = image.contents(&path).unwrap();
    let (last_at, _) = *spans(&bytes).last().unwrap();
    bytes[(last_at + 40) as usize] ^= 0x01;
    image.replace_contents(&path, bytes);
    // Indistinguishable from an interrupted write of the last batch: cut.
    let log = open_sim(&image, one_segment_config(), 0).unwrap();
    assert_eq!(log.open_report().truncated_segment, Some(0));
    let got: Vec<Vec<u8>> = read_all(&log).into_iter().map(|(_, b)| b).collect();
    assert_eq!(got, written[..written.len() - 1]);
}

#[test]
fn damage_below_the_recovery_point_is_reported_even_at_the_tail() {
    // After a clean close the recovery point is the log end: all of it was fsynced.
    let fs = SimFs::new();
    let log = open_sim(&fs, one_segment_config(), 0).unwrap();
    write_synced(&log, 12);
    let end = log.log_end_offset();
    log.close().unwrap();
    assert_eq!(stored_recovery_point(&fs), Some(end));
    let path = segment_path(0);
    let good = fs.contents(&path).unwrap();
    let (last_at, _) = *spans(&good).last().unwrap();
    let mut bad = good.clone();
    bad[(last_at + 40) as usize] ^= 0x01;
    fs.replace_contents(&path, bad);
    let error = expect_damage(&fs, one_segment_config(), &path, last_at);
    assert!(error.to_string().contains("recovery point"), "{error}");
    fs.replace_contents(&path, good.clone());

    // The same after a crash, once the periodic checkpoint moved the recovery point up.
    let fs = SimFs::new();
    let log = open_sim(&fs, one_segment_config(), 0).unwrap();
    write_synced(&log, 12);
    assert!(log.checkpoint_recovery_point().unwrap());
    assert!(
        !log.checkpoint_recovery_point().unwrap(),
        "nothing new to record"
    );
    let point = stored_recovery_point(&fs).unwrap();
    assert_eq!(point, log.log_end_offset() - 1);
    let image = fs.crash(2);
    let mut bad = image.contents(&path).unwrap();
    let (last_at, last) = *spans(&bad).last().unwrap();
    // The last batch holds three offsets, so it reaches below the recovery point.
    assert!(last.base_offset < point);
    bad[(last_at + 40) as usize] ^= 0x01;
    image.replace_contents(&path, bad);
    expect_damage(&image, one_segment_config(), &path, last_at);
}

#[test]
fn log_ending_below_its_recovery_point_is_damage() {
    let fs = SimFs::new();
    let log = open_sim(&fs, one_segment_config(), 0).unwrap();
    write_synced(&log, 12);
    log.close().unwrap();
    let path = segment_path(0);
    let good = fs.contents(&path).unwrap();
    let (last_at, _) = *spans(&good).last().unwrap();
    // The file lost its last batch at a batch boundary, after a clean close.
    fs.replace_contents(&path, good[..last_at as usize].to_vec());
    let error = expect_damage(&fs, one_segment_config(), &path, last_at);
    assert!(error.to_string().contains("lost data it had"), "{error}");
}

/// A log of several synced segments, crashed; returns the image and the segments' bases.
fn several_segments(count: usize) -> (SimFs, Vec<i64>, Vec<Vec<u8>>) {
    let fs = SimFs::new();
    let log = open_sim(&fs, sync_config(), 0).unwrap();
    let written = write_synced(&log, count);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4, "{bases:?}");
    (fs.crash(3), bases, written)
}

#[test]
fn damage_in_a_segment_that_others_follow_is_reported() {
    // With a damaged checkpoint every segment is scanned and only the last may be torn.
    let (image, bases, written) = several_segments(40);
    image.replace_contents(&dir().join(CHECKPOINT_FILE), vec![0x5a; 28]);
    let victim = bases[1];
    let path = segment_path(victim);
    let good = image.contents(&path).unwrap();
    let batches = spans(&good);
    // The last batch of the segment: nothing intact follows it in the file.
    let (at, _) = *batches.last().unwrap();
    let mut bad = good.clone();
    bad[(at + 30) as usize] ^= 0x80;
    image.replace_contents(&path, bad);
    let error = expect_damage(&image, sync_config(), &path, at);
    assert!(
        error.to_string().contains("later segments follow"),
        "{error}"
    );
    image.replace_contents(&path, good);
    let log = open_sim(&image, sync_config(), 0).unwrap();
    let got: Vec<Vec<u8>> = read_all(&log).into_iter().map(|(_, b)| b).collect();
    assert_eq!(got, written);
}

/// A crash between a roll and its flush: the recovery point still lies in the segment the
/// roll closed, so that segment may hold an unsynced tail and the next one may exist.
fn roll_window(damage_last_batch: bool) {
    let (image, bases, written) = several_segments(40);
    let victim = bases[bases.len() - 2];
    Checkpoint {
        recovery_point: victim,
        log_start_offset: 0,
        clean_shutdown: false,
    }
    .write(&image, &dir())
    .unwrap();
    let path = segment_path(victim);
    let good = image.contents(&path).unwrap();
    let batches = spans(&good);
    let (at, header) = if damage_last_batch {
        *batches.last().unwrap()
    } else {
        batches[0]
    };
    let mut bad = good.clone();
    bad[(at + 30) as usize] ^= 0x80;
    image.replace_contents(&path, bad);
    if damage_last_batch {
        // An interrupted write of the closed segment's tail: cut, with the later segment.
        let log = open_sim(&image, sync_config(), 0).unwrap();
        let report = log.open_report().clone();
        assert_eq!(report.truncated_segment, Some(victim), "{report:?}");
        assert_eq!(report.segments_deleted, 1, "{report:?}");
        assert_eq!(log.log_end_offset(), header.base_offset);
        let got: Vec<Vec<u8>> = read_all(&log).into_iter().map(|(_, b)| b).collect();
        assert_eq!(got, written[..got.len()]);
    } else {
        let error = expect_damage(&image, sync_config(), &path, at);
        assert!(error.to_string().contains("follows at byte"), "{error}");
    }
}

#[test]
fn closed_segment_above_the_recovery_point_with_intact_batches_after_damage_is_reported() {
    roll_window(false);
}

#[test]
fn closed_segment_above_the_recovery_point_with_a_torn_tail_is_cut() {
    roll_window(true);
}

#[test]
fn gaps_between_segments_below_the_zone_are_left_alone() {
    // Compaction leaves offset gaps between synced segments: a log scanned from the first
    // segment (damaged checkpoint) keeps them, and deletes nothing.
    let (image, bases, _) = several_segments(40);
    image.replace_contents(&dir().join(CHECKPOINT_FILE), Vec::new());
    let victim = bases[1];
    let path = segment_path(victim);
    let good = image.contents(&path).unwrap();
    let (last_at, _) = *spans(&good).last().unwrap();
    image.replace_contents(&path, good[..last_at as usize].to_vec());
    let log = open_sim(&image, sync_config(), 0).unwrap();
    let report = log.open_report().clone();
    assert_eq!(report.truncated_segment, None, "{report:?}");
    assert_eq!(report.segments_deleted, 0);
    assert_eq!(log.segment_base_offsets(), bases);
}

#[test]
fn overlapping_segments_are_damage() {
    let (image, bases, _) = several_segments(40);
    image.replace_contents(&dir().join(CHECKPOINT_FILE), Vec::new());
    let victim = bases[1];
    let path = segment_path(victim);
    let mut bytes = image.contents(&path).unwrap();
    let (last_at, last) = *spans(&bytes).last().unwrap();
    // The base offset lies outside the CRC: the batch still checks out, 5 offsets later,
    // running past the next segment's base.
    strom_records::set_base_offset(&mut bytes[last_at as usize..], last.base_offset + 5).unwrap();
    image.replace_contents(&path, bytes);
    let error = expect_damage(
        &image,
        sync_config(),
        &path,
        image.contents(&path).unwrap().len() as u64,
    );
    assert!(error.to_string().contains("past offset"), "{error}");
}

#[test]
fn batch_with_a_valid_checksum_in_the_wrong_place_is_damage() {
    let fs = SimFs::new();
    let log = open_sim(&fs, one_segment_config(), 0).unwrap();
    write_synced(&log, 12);
    let image = fs.crash(1);
    let path = segment_path(0);
    let mut bytes = image.contents(&path).unwrap();
    let batches = spans(&bytes);
    let (at, header) = *batches.last().unwrap();
    // The last batch claims offsets the batches before it hold: its checksum still matches.
    strom_records::set_base_offset(&mut bytes[at as usize..], header.base_offset - 3).unwrap();
    image.replace_contents(&path, bytes);
    let error = expect_damage(&image, one_segment_config(), &path, at);
    assert!(error.to_string().contains("wrong place"), "{error}");
}

#[test]
fn clean_open_reads_only_the_tail_and_recovery_finds_damage_further_in() {
    let fs = SimFs::new();
    let log = open_sim(&fs, one_segment_config(), 0).unwrap();
    write_synced(&log, 20);
    log.close().unwrap();
    let path = segment_path(0);
    let mut bytes = fs.contents(&path).unwrap();
    let (at, _) = spans(&bytes)[5];
    bytes[(at + 25) as usize] ^= 0x10;
    fs.replace_contents(&path, bytes);
    // A clean open reads the checkpoint and the tail only (reads meet the damage later).
    let log = open_sim(&fs, one_segment_config(), 0).unwrap();
    assert!(log.open_report().clean);
    drop(log);
    // An unclean shutdown scans the segment: damage, and nothing changed.
    let Stored::Intact(checkpoint) = Checkpoint::read(&fs, &dir()).unwrap() else {
        panic!("checkpoint")
    };
    Checkpoint {
        clean_shutdown: false,
        ..checkpoint
    }
    .write(&fs, &dir())
    .unwrap();
    expect_damage(&fs, one_segment_config(), &path, at);
}

// ---------------------------------------------------------------------------------------
// Truncation under power loss.

/// Truncates a multi-segment log to the middle of its second segment under a power loss
/// at write or sync `n` (keeping the first `dir_ops` pending directory changes); after
/// recovery there is no damage, and the log is a prefix of the log before the truncation
/// holding at least every batch the truncation keeps.
fn truncation_crash(fault: SimFaults, dir_ops: usize, seed: u64) -> bool {
    let fs = SimFs::new();
    let log = open_sim(&fs, sync_config(), 0).unwrap();
    let written = write_synced(&log, 40);
    let bases = log.segment_base_offsets();
    let cut = bases[1] + 2;
    let kept = written
        .iter()
        .take_while(|b| BatchHeader::parse(b).unwrap().last_offset() < cut)
        .count();
    let (writes, syncs) = (fs.write_count(), fs.sync_count());
    fs.set_faults(SimFaults {
        power_loss_at_write: fault.power_loss_at_write.map(|n| n + writes),
        power_loss_at_sync: fault.power_loss_at_sync.map(|n| n + syncs),
        ..SimFaults::default()
    });
    let done = log.truncate_to(cut, 0).is_ok();
    let image = fs.crash_with_dir_ops(seed, dir_ops.min(fs.pending_dir_ops()));
    let context = format!("{fault:?} dir ops {dir_ops} seed {seed}");
    let log = open_sim(&image, sync_config(), 0).unwrap_or_else(|e| panic!("{context}: {e}"));
    let got: Vec<Vec<u8>> = read_all(&log).into_iter().map(|(_, b)| b).collect();
    assert!(got.len() >= kept, "{context}: {} < {kept}", got.len());
    assert_eq!(got, written[..got.len()], "{context}");
    if done {
        // The truncation returned before the power went: it is durable.
        assert_eq!(got.len(), kept, "{context}");
    }
    done
}

#[test]
fn power_loss_at_every_step_of_a_truncation_leaves_a_prefix() {
    let fs = SimFs::new();
    let log = open_sim(&fs, sync_config(), 0).unwrap();
    write_synced(&log, 40);
    let bases = log.segment_base_offsets();
    let (writes, syncs) = (fs.write_count(), fs.sync_count());
    log.truncate_to(bases[1] + 2, 0).unwrap();
    let (writes, syncs) = (fs.write_count() - writes, fs.sync_count() - syncs);
    assert!(syncs >= 4, "a directory fsync per removed segment: {syncs}");
    for n in 1..=writes + 1 {
        for dir_ops in [0, 1, 2, 3, usize::MAX] {
            let fault = SimFaults {
                power_loss_at_write: Some(n),
                ..SimFaults::default()
            };
            truncation_crash(fault, dir_ops, n);
        }
    }
    for n in 1..=syncs + 1 {
        for dir_ops in [0, 1, 2, 3, usize::MAX] {
            let fault = SimFaults {
                power_loss_at_sync: Some(n),
                ..SimFaults::default()
            };
            truncation_crash(fault, dir_ops, n * 31);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Property: a flipped bit in an acknowledged batch is never cut silently.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A bit flipped in the CRC-covered bytes, magic or length of any batch of a
    /// sync-on-commit log after a crash (a kill: the page cache survives): the open fails
    /// with damage naming that batch, unless the batch is the last one and lies wholly at
    /// or above the recovery point, where it is cut as an interrupted write; never is
    /// another batch lost.
    #[test]
    fn flipped_bit_is_damage_unless_it_is_the_torn_tail(
        count in 2usize..30,
        victim_pick in any::<prop::sample::Index>(),
        byte_pick in any::<prop::sample::Index>(),
        bit in 0u8..8,
        checkpoint_first in any::<bool>(),
    ) {
        let fs = SimFs::new();
        let log = open_sim(&fs, one_segment_config(), 0).unwrap();
        let written = write_synced(&log, count);
        if checkpoint_first {
            log.checkpoint_recovery_point().unwrap();
        }
        let image = fs.crash(5);
        let point = stored_recovery_point(&image).unwrap();
        let path = segment_path(0);
        let mut bytes = image.contents(&path).unwrap();
        let batches = spans(&bytes);
        let victim = victim_pick.index(batches.len());
        let (at, header) = batches[victim];
        // Length (8..12), magic (16), CRC and everything it covers (17..).
        let fields: Vec<u64> = (8..12).chain(16..header.size_bytes() as u64).collect();
        let byte = fields[byte_pick.index(fields.len())];
        bytes[(at + byte) as usize] ^= 1 << bit;
        image.replace_contents(&path, bytes);
        let torn = victim == batches.len() - 1 && header.base_offset >= point;
        let before = files(&image);
        match open_sim(&image, one_segment_config(), 0) {
            Ok(log) => {
                prop_assert!(torn, "opened over damage at batch {victim}: {:?}", log.open_report());
                let got: Vec<Vec<u8>> = read_all(&log).into_iter().map(|(_, b)| b).collect();
                prop_assert_eq!(&got[..], &written[..victim]);
            }
            Err(LogError::Damaged { path: p, position, .. }) => {
                prop_assert!(!torn, "a torn tail reported as damage");
                prop_assert_eq!(p, path);
                prop_assert_eq!(position, at);
                prop_assert_eq!(files(&image), before);
            }
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }
}
