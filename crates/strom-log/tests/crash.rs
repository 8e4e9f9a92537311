//! Simulated power loss at every write and every fsync of a workload, then recovery: all
//! data reported durable is present, the log is valid, and it is a prefix of what was
//! written. Also: damage (flipped bytes, cut tails) in the last segment, damaged indexes.

mod common;

use common::{batch, dir, open_sim, read_all};
use strom_log::fs::{SimFaults, SimFs};
use strom_log::{AppendOrigin, Durability, Log, LogConfig};
use strom_records::BatchHeader;

fn config(durability: Durability) -> LogConfig {
    LogConfig {
        durability,
        flush_messages: 7,
        ..LogConfig::test_min()
    }
}

/// Appends until the file system dies or `batches` are written. Returns every batch whose
/// bytes may have reached the files (rewritten in place) and the durable offset last
/// reported.
fn workload(log: &Log, durability: Durability, batches: usize) -> (Vec<Vec<u8>>, i64) {
    let mut attempted = Vec::new();
    let mut durable = log.durable_offset();
    for i in 0..batches {
        let mut b = batch(1 + i % 3, 40 + (i * 37) % 400, i as i64);
        let result = log.append(&mut b, AppendOrigin::Client, i as i64);
        // The bytes were rewritten before the write, so a failed append may still have
        // left the whole batch on disk: it counts as attempted either way.
        attempted.push(b);
        let Ok(info) = result else { break };
        if durability == Durability::SyncOnCommit
            && i % 2 == 0
            && log.sync_to(info.last_offset + 1).is_err()
        {
            break;
        }
        durable = durable.max(log.durable_offset());
    }
    (attempted, durable)
}

/// Reopens the crashed image and checks it against what was written.
fn check_recovered(
    fs: &SimFs,
    durability: Durability,
    attempted: &[Vec<u8>],
    durable: i64,
    context: &str,
) {
    let log =
        open_sim(fs, config(durability), 0).unwrap_or_else(|e| panic!("{context}: reopen: {e}"));
    assert!(
        log.log_end_offset() >= durable,
        "{context}: lost durable data: end {} < durable {durable}",
        log.log_end_offset()
    );
    let recovered = read_all(&log);
    assert!(
        recovered.len() <= attempted.len(),
        "{context}: more batches than written"
    );
    for (i, (base, bytes)) in recovered.iter().enumerate() {
        let expected = &attempted[i];
        assert_eq!(bytes, expected, "{context}: batch {i} at {base} differs");
    }
    // The log is usable: append and read again.
    let end = log.log_end_offset();
    log.append(&mut batch(1, 10, 0), AppendOrigin::Client, 0)
        .unwrap();
    assert_eq!(log.log_end_offset(), end + 1);
    log.close().unwrap();
}

fn power_loss_sweep(durability: Durability, by_sync: bool) {
    // Count the operations of a fault-free run to bound the sweep.
    let fs = SimFs::new();
    let log = open_sim(&fs, config(durability), 0).unwrap();
    let ops_before = if by_sync {
        fs.sync_count()
    } else {
        fs.write_count()
    };
    workload(&log, durability, 60);
    let total = if by_sync {
        fs.sync_count()
    } else {
        fs.write_count()
    } - ops_before;
    assert!(total > 10, "the workload does I/O");
    for n in 1..=total {
        let fs = SimFs::new();
        let log = open_sim(&fs, config(durability), 0).unwrap();
        let base = if by_sync {
            fs.sync_count()
        } else {
            fs.write_count()
        };
        let at = Some(base + n);
        fs.set_faults(if by_sync {
            SimFaults {
                power_loss_at_sync: at,
                ..Default::default()
            }
        } else {
            SimFaults {
                power_loss_at_write: at,
                ..Default::default()
            }
        });
        let (attempted, durable) = workload(&log, durability, 60);
        // Directory changes since the last directory fsync may have been written back too
        // (a new segment surviving while the one its roll closed lost its unsynced tail).
        let pending = fs.pending_dir_ops();
        for (seed, dir_ops) in [
            (n, 0),
            (n * 7919 + 1, pending / 2),
            (n * 104_729 + 3, pending),
        ] {
            let restarted = fs.crash_with_dir_ops(seed, dir_ops);
            let context = format!(
                "{durability:?} power loss at {} {n} seed {seed} dir ops {dir_ops}/{pending}",
                if by_sync { "sync" } else { "write" }
            );
            check_recovered(&restarted, durability, &attempted, durable, &context);
        }
    }
}

#[test]
fn power_loss_at_every_write_sync_on_commit() {
    power_loss_sweep(Durability::SyncOnCommit, false);
}

#[test]
fn power_loss_at_every_sync_sync_on_commit() {
    power_loss_sweep(Durability::SyncOnCommit, true);
}

#[test]
fn power_loss_at_every_write_page_cache() {
    power_loss_sweep(Durability::PageCache, false);
}

#[test]
fn power_loss_at_every_sync_page_cache() {
    power_loss_sweep(Durability::PageCache, true);
}

#[test]
fn power_loss_during_recovery() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(Durability::SyncOnCommit), 0).unwrap();
    let (attempted, _) = workload(&log, Durability::SyncOnCommit, 30);
    let durable = log.durable_offset();
    let crashed = fs.crash(3);
    for n in 1..20 {
        let copy = crashed.crash(n);
        copy.set_faults(SimFaults {
            power_loss_at_write: Some(copy.write_count() + n),
            ..Default::default()
        });
        let _ = open_sim(&copy, config(Durability::SyncOnCommit), 0);
        let again = copy.crash(n + 100);
        check_recovered(
            &again,
            Durability::SyncOnCommit,
            &attempted,
            durable,
            &format!("recovery crash {n}"),
        );
    }
}

#[test]
fn short_writes_are_completed() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(Durability::SyncOnCommit), 0).unwrap();
    let mut expected = Vec::new();
    for i in 0..20u64 {
        fs.set_faults(SimFaults {
            short_write_at: Some(fs.write_count() + 1 + i % 2),
            ..Default::default()
        });
        let mut b = batch(2, 100, 0);
        log.append(&mut b, AppendOrigin::Client, 0).unwrap();
        expected.push(b);
    }
    let got: Vec<Vec<u8>> = read_all(&log).into_iter().map(|(_, b)| b).collect();
    assert_eq!(got, expected);
}

/// What [`damaged`] returns.
type Damaged = (
    Result<Log, strom_log::LogError>,
    Vec<Vec<u8>>,
    Vec<(u64, u64)>,
    i64,
);

/// A log of several segments, all synced, crashed (so unclean) with `damage` applied to
/// the last segment file; returns the result of reopening it, the batches written, the
/// (position, size) of each batch of the last segment and the stored recovery point.
fn damaged(damage: impl FnOnce(&mut Vec<u8>, &[(u64, u64)])) -> Damaged {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(Durability::PageCache), 0).unwrap();
    let mut written = Vec::new();
    for i in 0..25 {
        let mut b = batch(1 + i % 2, 300, i as i64);
        log.append(&mut b, AppendOrigin::Client, 0).unwrap();
        written.push(b);
    }
    log.flush().unwrap();
    let last_base = *log.segment_base_offsets().last().unwrap();
    assert!(log.segment_count() > 1);
    let image = fs.crash(0);
    let point = match strom_log::checkpoint::Checkpoint::read(&image, &dir()).unwrap() {
        strom_log::checkpoint::Stored::Intact(c) => c.recovery_point,
        other => panic!("{other:?}"),
    };
    let path = dir().join(format!("{last_base:020}.log"));
    let mut bytes = image.contents(&path).unwrap();
    // (position, size) of each batch in the last segment.
    let mut spans = Vec::new();
    let mut pos = 0u64;
    while (pos as usize) < bytes.len() {
        let h = BatchHeader::parse(&bytes[pos as usize..]).unwrap();
        spans.push((pos, h.size_bytes() as u64));
        pos += h.size_bytes() as u64;
    }
    damage(&mut bytes, &spans);
    image.replace_contents(&path, bytes);
    (
        open_sim(&image, config(Durability::PageCache), 0),
        written,
        spans,
        point,
    )
}

/// A flipped byte in the last segment: damage (the open fails, naming the batch) when
/// intact batches follow it or it lies below the recovery point; otherwise it cannot be
/// told from an interrupted write of the last batch, which is cut.
#[test]
fn flipped_byte_in_last_segment_is_damage_unless_it_can_be_a_torn_tail() {
    let (mut damage, mut torn) = (0, 0);
    for choice in 0..24u64 {
        let mut hit = (0usize, 0u64);
        let (opened, written, spans, point) = damaged(|bytes, spans| {
            // Mostly the last batch, so that both outcomes are seen.
            let i = if choice % 3 == 0 {
                spans.len() - 1
            } else {
                (choice as usize * 7) % spans.len()
            };
            let (pos, size) = spans[i];
            // Inside the magic, CRC or CRC-covered bytes (offset, length and leader epoch
            // are outside the CRC, as in Kafka).
            let at = pos + 16 + (choice * 13) % (size - 16);
            bytes[at as usize] ^= 1 << (choice % 8);
            hit = (i, at);
        });
        let before_last = written.len() - spans.len();
        let base = BatchHeader::parse(&written[before_last + hit.0])
            .unwrap()
            .base_offset;
        let can_be_torn = hit.0 == spans.len() - 1 && base >= point;
        match opened {
            Ok(log) => {
                assert!(
                    can_be_torn,
                    "choice {choice} hit {hit:?}: opened over damage"
                );
                torn += 1;
                let report = log.open_report().clone();
                assert!(!report.clean);
                assert!(
                    report.truncated_segment.is_some(),
                    "choice {choice}: {report:?}"
                );
                let recovered = read_all(&log);
                assert_eq!(
                    recovered.len(),
                    before_last + hit.0,
                    "choice {choice} hit {hit:?}"
                );
                for (i, (_, b)) in recovered.iter().enumerate() {
                    assert_eq!(b, &written[i]);
                }
            }
            Err(strom_log::LogError::Damaged { position, .. }) => {
                assert!(
                    !can_be_torn,
                    "choice {choice} hit {hit:?}: a torn tail reported as damage"
                );
                damage += 1;
                assert_eq!(position, spans[hit.0].0, "choice {choice}");
            }
            Err(other) => panic!("choice {choice}: {other}"),
        }
    }
    assert!(damage > 0 && torn > 0, "damage {damage} torn {torn}");
}

#[test]
fn cut_tail_in_last_segment_keeps_whole_batches() {
    for cut in [1u64, 7, 60, 61, 62, 300, 301] {
        let (log, written, spans, _) = damaged(|bytes, _| {
            let len = bytes.len() as u64;
            bytes.truncate((len - cut.min(len)) as usize);
        });
        let log = log.unwrap();
        let recovered = read_all(&log);
        let last_len: u64 = spans.iter().map(|s| s.1).sum();
        let kept = spans
            .iter()
            .scan(0u64, |acc, s| {
                *acc += s.1;
                Some(*acc)
            })
            .filter(|end| *end <= last_len - cut)
            .count();
        assert_eq!(
            recovered.len(),
            written.len() - spans.len() + kept,
            "cut {cut}"
        );
        for (i, (_, b)) in recovered.iter().enumerate() {
            assert_eq!(b, &written[i]);
        }
    }
}

#[test]
fn damaged_index_of_an_old_segment_is_rebuilt() {
    let fs = SimFs::new();
    let log = open_sim(&fs, LogConfig::test_min(), 0).unwrap();
    for i in 0..30 {
        log.append(&mut batch(1, 300, i), AppendOrigin::Client, 0)
            .unwrap();
    }
    let before = read_all(&log);
    log.close().unwrap();
    for name in [
        "00000000000000000000.index",
        "00000000000000000000.timeindex",
    ] {
        assert!(fs.replace_contents(&dir().join(name), vec![0xAB; 13]));
    }
    let log = open_sim(&fs, LogConfig::test_min(), 0).unwrap();
    assert!(log.open_report().clean);
    assert_eq!(read_all(&log), before);
    assert_eq!(log.offset_for_timestamp(2).unwrap().unwrap().offset, 2);
}

/// Appends, truncates, deletes from the front and appends again, under a power loss at
/// every write and sync; after recovery the log is a prefix of what the surviving
/// operations describe and holds everything reported durable.
#[test]
fn power_loss_around_truncation_and_delete_records() {
    let run = |faults: Option<SimFaults>| -> (SimFs, Vec<Vec<u8>>, i64, u64, u64) {
        let fs = SimFs::new();
        let log = open_sim(&fs, config(Durability::SyncOnCommit), 0).unwrap();
        let (writes, syncs) = (fs.write_count(), fs.sync_count());
        if let Some(mut f) = faults {
            f.power_loss_at_write = f.power_loss_at_write.map(|n| n + writes);
            f.power_loss_at_sync = f.power_loss_at_sync.map(|n| n + syncs);
            fs.set_faults(f);
        }
        let (mut attempted, mut durable) = workload(&log, Durability::SyncOnCommit, 20);
        let cut = log.log_end_offset() / 2;
        if log.truncate_to(cut, 0).is_ok() {
            let end = log.log_end_offset();
            attempted.retain(|b| BatchHeader::parse(b).unwrap().last_offset() < end);
            durable = log.durable_offset();
            log.set_high_watermark(end);
            if log.delete_records_before(end / 2, 0).is_ok() {
                let (more, d) = workload(&log, Durability::SyncOnCommit, 10);
                attempted.extend(more);
                durable = d;
            }
        } else {
            // A truncation cut short may already have removed the batch holding `cut`
            // and everything after it.
            let cut_batch_base = attempted
                .iter()
                .map(|b| BatchHeader::parse(b).unwrap())
                .find(|h| h.last_offset() >= cut)
                .map_or(cut, |h| h.base_offset);
            durable = durable.min(cut_batch_base);
        }
        let counts = (fs.write_count() - writes, fs.sync_count() - syncs);
        (fs, attempted, durable, counts.0, counts.1)
    };
    let (_, _, _, writes, syncs) = run(None);
    for n in 1..=writes {
        let (fs, attempted, durable, _, _) = run(Some(SimFaults {
            power_loss_at_write: Some(n),
            ..Default::default()
        }));
        let image = fs.crash(n);
        check_prefix(&image, &attempted, durable, &format!("write {n}"));
    }
    for n in 1..=syncs {
        let (fs, attempted, durable, _, _) = run(Some(SimFaults {
            power_loss_at_sync: Some(n),
            ..Default::default()
        }));
        let image = fs.crash(n);
        check_prefix(&image, &attempted, durable, &format!("sync {n}"));
    }
}

/// Like `check_recovered`, but the batches read back start at the log start offset.
fn check_prefix(fs: &SimFs, attempted: &[Vec<u8>], durable: i64, context: &str) {
    let log = open_sim(fs, config(Durability::SyncOnCommit), 0)
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    assert!(
        log.log_end_offset() >= durable,
        "{context}: end {} < durable {durable}",
        log.log_end_offset()
    );
    let recovered = read_all(&log);
    let first = recovered.first().map(|(b, _)| *b);
    let skip = attempted
        .iter()
        .position(|b| Some(BatchHeader::parse(b).unwrap().base_offset) == first)
        .unwrap_or(0);
    let bases: Vec<i64> = recovered.iter().map(|(b, _)| *b).collect();
    let want: Vec<i64> = attempted
        .iter()
        .map(|b| BatchHeader::parse(b).unwrap().base_offset)
        .collect();
    for (i, (base, bytes)) in recovered.iter().enumerate() {
        assert!(
            Some(bytes) == attempted.get(skip + i),
            "{context}: batch at {base}: {bases:?} vs {want:?}, start {} segments {:?} report {:?}",
            log.log_start_offset(),
            log.segment_base_offsets(),
            log.open_report()
        );
    }
}

#[test]
fn segment_missing_its_tail_drops_later_segments() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(Durability::PageCache), 0).unwrap();
    let mut written = Vec::new();
    for i in 0..25 {
        let mut b = batch(1, 300, i);
        log.append(&mut b, AppendOrigin::Client, 0).unwrap();
        written.push(b);
    }
    log.flush().unwrap();
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3);
    let image = fs.crash(0);
    // Drop the last batch of the second-to-last segment (a clean batch boundary), and make
    // the checkpoint unclean with a recovery point before it.
    let victim = bases[bases.len() - 2];
    let path = dir().join(format!("{victim:020}.log"));
    let mut bytes = image.contents(&path).unwrap();
    let mut pos = 0;
    let mut last_start = 0;
    while pos < bytes.len() {
        last_start = pos;
        pos += BatchHeader::parse(&bytes[pos..]).unwrap().size_bytes();
    }
    bytes.truncate(last_start);
    image.replace_contents(&path, bytes);
    let checkpoint = strom_log::checkpoint::Checkpoint {
        recovery_point: victim,
        log_start_offset: 0,
        clean_shutdown: false,
    };
    checkpoint.write(&image, &dir()).unwrap();
    let log = open_sim(&image, config(Durability::PageCache), 0).unwrap();
    let report = log.open_report().clone();
    assert_eq!(report.truncated_segment, Some(victim), "{report:?}");
    assert_eq!(report.segments_deleted, 1);
    let recovered = read_all(&log);
    assert_eq!(log.log_end_offset(), recovered.len() as i64);
    for (i, (base, b)) in recovered.iter().enumerate() {
        assert_eq!(*base, i as i64);
        assert_eq!(b, &written[i]);
    }
}

/// A checkpoint that is not an intact checkpoint (here: a clean close's checkpoint whose
/// bytes were replaced) is reported and ignored: every segment is recovered from the
/// first, the log start offset comes from the first segment, and every record is there.
#[test]
fn garbage_checkpoint_is_reported_and_the_whole_log_recovered() {
    let path = dir().join(strom_log::checkpoint::CHECKPOINT_FILE);
    let garbage: [&[u8]; 3] = [&[0x5a; 28], b"not a checkpoint", &[]];
    for bytes in garbage {
        let fs = SimFs::new();
        let log = open_sim(&fs, config(Durability::PageCache), 0).unwrap();
        let mut written = Vec::new();
        for i in 0..25 {
            let mut b = batch(1, 300, i);
            log.append(&mut b, AppendOrigin::Client, 0).unwrap();
            written.push(b);
        }
        let segments = log.segment_base_offsets().len();
        assert!(segments >= 3);
        log.close().unwrap();
        let image = fs.crash(0);
        assert!(image.contents(&path).is_some());
        image.replace_contents(&path, bytes.to_vec());
        let log = open_sim(&image, config(Durability::PageCache), 0).unwrap();
        let report = log.open_report().clone();
        assert!(report.checkpoint_damage.is_some(), "{report:?}");
        assert!(
            !report.clean,
            "a damaged checkpoint cannot say the shutdown was clean"
        );
        assert_eq!(report.segments_scanned, segments, "{report:?}");
        assert_eq!(log.log_start_offset(), 0);
        let recovered = read_all(&log);
        assert_eq!(recovered.len(), written.len());
        for (i, (base, b)) in recovered.iter().enumerate() {
            assert_eq!(*base, i as i64);
            assert_eq!(b, &written[i]);
        }
        // A new, intact checkpoint replaced it.
        let fresh = image.contents(&path).unwrap();
        assert!(strom_log::checkpoint::Checkpoint::decode(&fresh).is_some());
    }
}
