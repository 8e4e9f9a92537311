//! The scrubber on the simulated file system: cold segments verified within a byte budget,
//! damage (a flipped byte, an inflated length, a file cut short) found and located, nothing
//! ever written, and segments that change under a scrub not reported.

mod common;

use std::path::PathBuf;

use common::{batch, dir, open_sim};
use strom_log::fs::SimFs;
use strom_log::{
    AppendOrigin, Durability, Log, LogConfig, ScrubCursor, ScrubDamage, SCRUB_CHUNK_BYTES,
};
use strom_records::batch_frames;

fn config() -> LogConfig {
    LogConfig {
        durability: Durability::SyncOnCommit,
        ..LogConfig::test_min()
    }
}

/// A log of several segments, everything synced.
fn filled(fs: &SimFs) -> Log {
    let log = open_sim(fs, config(), 0).unwrap();
    for i in 0..40 {
        // Stamped with a leader epoch as a broker's appends are, so the log keeps a
        // leader-epoch-checkpoint and a clean open reads no old segment (without one, open
        // rebuilds the cache from every batch header and would meet the damage itself).
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

/// What a whole pass found.
#[derive(Debug, Default)]
struct Pass {
    bytes_read: u64,
    bytes_verified: u64,
    segments_done: Vec<i64>,
    damage: Vec<ScrubDamage>,
    steps: usize,
}

fn pass(log: &Log, budget_bytes: u64) -> Pass {
    let mut cursor = ScrubCursor::default();
    let mut out = Pass::default();
    for _ in 0..100_000 {
        let step = log.scrub_step(&mut cursor, budget_bytes).unwrap();
        assert!(
            step.bytes_read <= budget_bytes + SCRUB_CHUNK_BYTES as u64,
            "a step overspends by one chunk at most: {step:?}"
        );
        out.steps += 1;
        out.bytes_read += step.bytes_read;
        out.bytes_verified += step.bytes_verified;
        out.segments_done.extend(step.segment_done);
        out.damage.extend(step.damage);
        if step.pass_done {
            return out;
        }
    }
    panic!("the pass did not end");
}

/// (position, base offset, last offset, size) of each batch in a segment file.
fn batches_in(fs: &SimFs, base: i64) -> Vec<(u64, i64, i64, usize)> {
    let bytes = fs.contents(&segment_path(base)).unwrap();
    batch_frames(&bytes)
        .map(|item| {
            let (header, range) = item.unwrap();
            (
                range.start as u64,
                header.base_offset,
                header.last_offset(),
                range.len(),
            )
        })
        .collect()
}

fn edit(fs: &SimFs, base: i64, f: impl FnOnce(&mut Vec<u8>)) {
    let path = segment_path(base);
    let mut bytes = fs.contents(&path).unwrap();
    f(&mut bytes);
    assert!(fs.replace_contents(&path, bytes));
}

#[test]
fn a_clean_log_verifies_whole_within_the_budget_and_nothing_is_written() {
    let fs = SimFs::new();
    let log = filled(&fs);
    let bases = log.segment_base_offsets();
    let cold: Vec<i64> = bases[..bases.len() - 1].to_vec();
    let cold_bytes: u64 = cold
        .iter()
        .map(|b| fs.contents(&segment_path(*b)).unwrap().len() as u64)
        .sum();
    let (writes, syncs) = (fs.write_count(), fs.sync_count());
    let found = pass(&log, 700);
    assert!(found.damage.is_empty(), "{:?}", found.damage);
    assert_eq!(
        found.segments_done, cold,
        "every cold segment, the active one not"
    );
    assert_eq!(found.bytes_verified, cold_bytes);
    assert!(
        found.steps > cold.len() * 2,
        "small budgets take many steps"
    );
    assert_eq!((fs.write_count(), fs.sync_count()), (writes, syncs));
    // The next pass starts over.
    let again = pass(&log, 1 << 20);
    assert_eq!(again.segments_done, cold);
    assert!(again.damage.is_empty());
}

#[test]
fn unsynced_segments_are_not_scrubbed() {
    let fs = SimFs::new();
    let log = open_sim(
        &fs,
        LogConfig {
            durability: Durability::PageCache,
            ..LogConfig::test_min()
        },
        0,
    )
    .unwrap();
    for i in 0..40 {
        // Stamped with a leader epoch as a broker's appends are, so the log keeps a
        // leader-epoch-checkpoint and a clean open reads no old segment (without one, open
        // rebuilds the cache from every batch header and would meet the damage itself).
        let mut bytes = batch(3, 200, i);
        strom_records::set_partition_leader_epoch(&mut bytes, 0).unwrap();
        log.append(&mut bytes, AppendOrigin::Client, i).unwrap();
    }
    let durable = log.durable_offset();
    let found = pass(&log, 1 << 20);
    let bases = log.segment_base_offsets();
    for base in &found.segments_done {
        let next = bases.iter().find(|b| *b > base).unwrap();
        assert!(*next <= durable, "segment {base} is wholly durable");
    }
}

#[test]
fn a_flipped_payload_byte_is_reported_and_the_rest_verified() {
    let fs = SimFs::new();
    let log = filled(&fs);
    let bases = log.segment_base_offsets();
    let (position, first, last, size) = batches_in(&fs, bases[1])[1];
    edit(&fs, bases[1], |bytes| {
        bytes[position as usize + size - 5] ^= 0x20
    });
    let before = fs.contents(&segment_path(bases[1])).unwrap();
    let found = pass(&log, 1000);
    assert_eq!(found.damage.len(), 1, "{:?}", found.damage);
    let damage = &found.damage[0];
    assert_eq!(damage.path, segment_path(bases[1]));
    assert_eq!(damage.position, position);
    assert_eq!((damage.first_offset, damage.last_offset), (first, last));
    assert!(damage.reason.contains("CRC mismatch"), "{damage}");
    assert_eq!(found.segments_done.len(), bases.len() - 1);
    let cold_bytes: u64 = bases[..bases.len() - 1]
        .iter()
        .map(|b| fs.contents(&segment_path(*b)).unwrap().len() as u64)
        .sum();
    assert_eq!(found.bytes_verified, cold_bytes - size as u64);
    assert_eq!(
        fs.contents(&segment_path(bases[1])).unwrap(),
        before,
        "never repaired silently"
    );
    // Healthy offsets still read; the batch itself is served as it is (clients check CRCs).
    let info = log.read(bases[2], 1 << 20, i64::MAX).unwrap();
    assert_eq!(info.range.unwrap().first_offset, bases[2]);
}

#[test]
fn an_inflated_batch_length_is_reported_and_the_scrub_resumes_at_the_next_intact_batch() {
    let fs = SimFs::new();
    let log = filled(&fs);
    let bases = log.segment_base_offsets();
    let batches = batches_in(&fs, bases[0]);
    let (position, first, _, _) = batches[2];
    let (_, next, _, _) = batches[3];
    edit(&fs, bases[0], |bytes| {
        let at = position as usize + 8;
        let length = i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        bytes[at..at + 4].copy_from_slice(&(length + 100_000).to_be_bytes());
    });
    let found = pass(&log, 1 << 20);
    assert_eq!(found.damage.len(), 1, "{:?}", found.damage);
    let damage = &found.damage[0];
    assert_eq!(damage.position, position);
    assert_eq!(damage.first_offset, first);
    // The batch's own bytes are intact but its length cannot be trusted: the offsets up to
    // the next intact batch (found by the CRC-checked search recovery uses) are reported.
    assert_eq!(damage.last_offset, next - 1, "{damage}");
    assert!(damage.reason.contains("does not fit"), "{damage}");
    assert!(
        damage
            .reason
            .contains(&format!("resume at byte {}", batches[3].0)),
        "{damage}"
    );
    assert_eq!(found.segments_done.len(), bases.len() - 1);
}

#[test]
fn garbage_to_the_segments_end_is_reported_to_its_end() {
    let fs = SimFs::new();
    let log = filled(&fs);
    let bases = log.segment_base_offsets();
    let (position, first, _, _) = batches_in(&fs, bases[0])[2];
    edit(&fs, bases[0], |bytes| {
        for b in &mut bytes[position as usize + 8..] {
            *b = 0x5a;
        }
    });
    let found = pass(&log, 1 << 20);
    assert_eq!(found.damage.len(), 1, "{:?}", found.damage);
    let damage = &found.damage[0];
    assert_eq!((damage.position, damage.first_offset), (position, first));
    assert_eq!(damage.last_offset, bases[1] - 1, "up to the segment's end");
    assert!(
        damage.reason.contains("no intact batch follows"),
        "{damage}"
    );
    assert_eq!(found.segments_done.len(), bases.len() - 1);
}

#[test]
fn a_length_inflated_within_the_segment_is_caught_by_the_crc() {
    let fs = SimFs::new();
    let log = filled(&fs);
    let bases = log.segment_base_offsets();
    let batches = batches_in(&fs, bases[0]);
    let (position, first, _, _) = batches[1];
    edit(&fs, bases[0], |bytes| {
        let at = position as usize + 8;
        let length = i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        bytes[at..at + 4].copy_from_slice(&(length + 30).to_be_bytes());
    });
    let found = pass(&log, 1 << 20);
    let damage = found.damage.first().expect("damage found");
    assert_eq!(damage.position, position);
    assert_eq!(damage.first_offset, first);
    assert!(damage.reason.contains("CRC mismatch"), "{damage}");
    // The framing after it is lost too; the scrub finds the next intact batch and goes on
    // from there, so every later batch of the segment is verified.
    let (_, third, _, _) = batches[3];
    assert!(
        found.damage.iter().all(|d| d.last_offset < third),
        "{:?}",
        found.damage
    );
    assert_eq!(found.segments_done.len(), bases.len() - 1);
}

#[test]
fn a_segment_cut_short_while_open_is_reported() {
    let fs = SimFs::new();
    let log = filled(&fs);
    let bases = log.segment_base_offsets();
    let (position, first, _, _) = batches_in(&fs, bases[2])[1];
    edit(&fs, bases[2], |bytes| {
        bytes.truncate(position as usize + 30)
    });
    let found = pass(&log, 1 << 20);
    assert_eq!(found.damage.len(), 1, "{:?}", found.damage);
    let damage = &found.damage[0];
    assert_eq!(damage.path, segment_path(bases[2]));
    assert!(damage.reason.contains("cut short"), "{damage}");
    assert!(damage.first_offset <= first, "{damage}");
    assert_eq!(damage.last_offset, bases[3] - 1);
}

#[test]
fn segments_cut_short_between_stop_and_start_are_reported() {
    let fs = SimFs::new();
    let log = filled(&fs);
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    drop(log);
    // One cut at a batch boundary, one inside a batch.
    let (boundary, lost_from, _, _) = batches_in(&fs, bases[0])[3];
    edit(&fs, bases[0], |bytes| bytes.truncate(boundary as usize));
    let (inside, first, _, _) = batches_in(&fs, bases[1])[2];
    edit(&fs, bases[1], |bytes| bytes.truncate(inside as usize + 100));
    let log = open_sim(&fs, config(), 0).unwrap();
    assert!(
        log.open_report().clean,
        "a clean open does not read old segments"
    );
    let found = pass(&log, 1 << 20);
    assert_eq!(found.damage.len(), 2, "{:?}", found.damage);
    let missing = &found.damage[0];
    assert_eq!(missing.path, segment_path(bases[0]));
    assert_eq!(missing.position, boundary);
    assert_eq!(
        (missing.first_offset, missing.last_offset),
        (lost_from, bases[1] - 1)
    );
    assert!(missing.reason.contains("offsets are missing"), "{missing}");
    let torn = &found.damage[1];
    assert_eq!(torn.path, segment_path(bases[1]));
    assert_eq!(torn.position, inside);
    assert_eq!(torn.first_offset, first);
    assert!(torn.reason.contains("does not fit"), "{torn}");
}

#[test]
fn a_segment_truncated_under_the_scrub_is_not_reported() {
    let fs = SimFs::new();
    let log = filled(&fs);
    let bases = log.segment_base_offsets();
    let mut cursor = ScrubCursor::default();
    // Into the middle of the second segment.
    let mut steps = 0;
    while log.scrub_step(&mut cursor, 200).unwrap().segment_done != Some(bases[0]) {
        steps += 1;
        assert!(steps < 10_000);
    }
    log.scrub_step(&mut cursor, 200).unwrap();
    log.scrub_step(&mut cursor, 200).unwrap();
    // A follower-style truncation cuts it; the scrub must not call the cut damage.
    let (_, first, _, _) = batches_in(&fs, bases[1])[1];
    log.truncate_to(first, 0).unwrap();
    let mut damage = Vec::new();
    for _ in 0..10_000 {
        let step = log.scrub_step(&mut cursor, 200).unwrap();
        damage.extend(step.damage);
        if step.pass_done {
            break;
        }
    }
    assert!(damage.is_empty(), "{damage:?}");
}
