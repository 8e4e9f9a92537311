//! The log's leader-epoch cache and follower appends: epochs start where batches of a newer
//! epoch land or where a broker becomes leader, answer where an epoch ended, are trimmed by
//! truncation, survive a reopen, are rebuilt (and reported) when the file is damaged or
//! missing, and after any power loss never lack an epoch the data holds. Followers copy a
//! leader's batches with their offsets and epochs, and start over past a leader's log start.

mod common;

use common::{batch, dir, open_sim, read_all};
use strom_log::fs::{FileSystem, SimFs};
use strom_log::leader_epoch::LEADER_EPOCH_FILE;
use strom_log::{EpochEntry, Log, LogConfig, LogError, Unflushed};
use strom_records::batches;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    }
}

/// Appends a leader's batch of `records` records in `epoch` (blocking).
fn lead(log: &Log, epoch: i32, records: usize) -> i64 {
    let bytes = batch(records, 20, 1_000);
    match log.append_shared(&bytes, epoch, 1_000, true).unwrap() {
        Unflushed::Appended { info, .. } => info.last_offset + 1,
        Unflushed::WouldBlock => unreachable!("a blocking append never declines"),
    }
}

fn entries(log: &Log) -> Vec<(i32, i64)> {
    log.epoch_entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

fn end_for(log: &Log, epoch: i32) -> Option<(i32, i64)> {
    log.end_offset_for_epoch(epoch)
        .map(|e: EpochEntry| (e.epoch, e.start_offset))
}

/// The leader's whole log as bytes, batch by batch.
fn bytes_from(log: &Log, offset: i64) -> Vec<u8> {
    read_all(log)
        .into_iter()
        .filter(|(base, _)| *base >= offset)
        .flat_map(|(_, bytes)| bytes)
        .collect()
}

#[test]
fn epochs_start_with_their_first_batch_or_a_new_leader() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(), 0).unwrap();
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(end_for(&log, 0), None);
    lead(&log, 0, 3);
    lead(&log, 0, 2);
    assert_eq!(entries(&log), vec![(0, 0)]);
    // A new leader starts its epoch at the log end even before writing.
    log.assign_leader_epoch(2).unwrap();
    assert_eq!(entries(&log), vec![(0, 0), (2, 5)]);
    lead(&log, 2, 4);
    // A non-blocking append of a newer epoch declines: it must write the cache first.
    let newer = batch(1, 20, 1_000);
    assert_eq!(
        log.append_shared(&newer, 5, 1_000, false).unwrap(),
        Unflushed::WouldBlock
    );
    assert_eq!(log.log_end_offset(), 9);
    lead(&log, 5, 1);
    assert_eq!(entries(&log), vec![(0, 0), (2, 5), (5, 9)]);
    assert_eq!(end_for(&log, 0), Some((0, 5)));
    assert_eq!(end_for(&log, 1), Some((0, 5)));
    assert_eq!(end_for(&log, 3), Some((2, 9)));
    assert_eq!(end_for(&log, 5), Some((5, 10)));
    assert_eq!(end_for(&log, 6), None);
    // A stale leader cannot write an older epoch.
    let stale = log.append_shared(&newer, 2, 1_000, true);
    assert!(
        matches!(
            stale,
            Err(LogError::StaleLeaderEpoch {
                epoch: 2,
                latest: 5
            })
        ),
        "{stale:?}"
    );
    // The cache survives a clean reopen and a crash.
    log.close().unwrap();
    let log = open_sim(&fs, config(), 0).unwrap();
    assert_eq!(entries(&log), vec![(0, 0), (2, 5), (5, 9)]);
    assert_eq!(log.open_report().epochs_rebuilt, None);
    let crashed = fs.crash(3);
    let log = open_sim(&crashed, config(), 0).unwrap();
    assert_eq!(entries(&log).first(), Some(&(0, 0)));
    assert_eq!(log.open_report().epochs_rebuilt, None);
}

#[test]
fn truncation_trims_the_epochs_it_removes() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(), 0).unwrap();
    lead(&log, 1, 5);
    lead(&log, 3, 5);
    log.assign_leader_epoch(4).unwrap();
    assert_eq!(entries(&log), vec![(1, 0), (3, 5), (4, 10)]);
    // Nothing to cut, but the epoch begun at the end goes.
    log.truncate_to(10, 0).unwrap();
    assert_eq!(entries(&log), vec![(1, 0), (3, 5)]);
    log.truncate_to(7, 0).unwrap();
    // The whole batch holding 7 goes.
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(entries(&log), vec![(1, 0)]);
    assert_eq!(end_for(&log, 3), None);
    assert_eq!(end_for(&log, 1), Some((1, 5)));
    let crashed = fs.crash(11);
    let log = open_sim(&crashed, config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(entries(&log), vec![(1, 0)]);
}

#[test]
fn a_follower_copies_offsets_and_epochs_and_refuses_gaps() {
    let leader_fs = SimFs::new();
    let leader = open_sim(&leader_fs, config(), 0).unwrap();
    for epoch in [0, 0, 2, 2, 7] {
        lead(&leader, epoch, 3);
    }
    let follower_fs = SimFs::new();
    let follower = open_sim(&follower_fs, config(), 0).unwrap();
    let all = bytes_from(&leader, 0);
    let first_len = batches(&all).next().unwrap().unwrap().1.end;
    // Not at the log end: refused, nothing written.
    let gap = follower.append_replicated(&all[first_len..], 0);
    assert!(
        matches!(
            gap,
            Err(LogError::UnexpectedAppendOffset {
                base_offset: 3,
                log_end_offset: 0
            })
        ),
        "{gap:?}"
    );
    follower.append_replicated(&all[..first_len], 0).unwrap();
    let info = follower.append_replicated(&all[first_len..], 0).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (3, 14));
    assert_eq!(read_all(&follower), read_all(&leader));
    assert_eq!(entries(&follower), entries(&leader));
    assert_eq!(entries(&follower), vec![(0, 0), (2, 6), (7, 12)]);
    // Again from the start: refused (an overlap is not an append).
    assert!(follower.append_replicated(&all, 0).is_err());
}

#[test]
fn a_damaged_or_missing_cache_is_reported_and_rebuilt_from_the_batches() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(), 0).unwrap();
    lead(&log, 1, 4);
    lead(&log, 2, 4);
    lead(&log, 6, 4);
    log.close().unwrap();
    let path = dir().join(LEADER_EPOCH_FILE);
    let original = fs.contents(&path).unwrap();
    for (what, damaged) in [
        ("garbage", b"not a cache".to_vec()),
        // Well-formed but wrong: epoch 2 does not start at 5.
        ("wrong", b"0\n3\n1 0\n2 5\n6 8\n".to_vec()),
    ] {
        assert!(fs.replace_contents(&path, damaged), "{what}");
        let log = open_sim(&fs, config(), 0).unwrap();
        let reason = log.open_report().epochs_rebuilt.clone();
        assert!(reason.is_some(), "{what}: not reported");
        assert_eq!(entries(&log), vec![(1, 0), (2, 4), (6, 8)], "{what}");
        log.close().unwrap();
        assert_eq!(fs.contents(&path).unwrap(), original, "{what}: rewritten");
    }
    fs.remove(&path).unwrap();
    let log = open_sim(&fs, config(), 0).unwrap();
    assert!(log.open_report().epochs_rebuilt.is_some());
    assert_eq!(entries(&log), vec![(1, 0), (2, 4), (6, 8)]);
}

#[test]
fn a_follower_behind_its_leaders_start_starts_over_there() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(), 0).unwrap();
    for _ in 0..40 {
        lead(&log, 3, 5);
    }
    assert!(log.segment_count() > 2);
    log.truncate_fully_and_start_at(1_000, 0).unwrap();
    assert_eq!(log.log_start_offset(), 1_000);
    assert_eq!(log.log_end_offset(), 1_000);
    assert_eq!(log.high_watermark(), 1_000);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(entries(&log), vec![]);
    // It takes the leader's batches from there.
    let leader_fs = SimFs::new();
    let leader = open_sim(&leader_fs, config(), 0).unwrap();
    leader.truncate_fully_and_start_at(1_000, 0).unwrap();
    lead(&leader, 4, 3);
    log.append_replicated(&bytes_from(&leader, 0), 0).unwrap();
    assert_eq!(log.log_end_offset(), 1_003);
    assert_eq!(entries(&log), vec![(4, 1_000)]);
    // Durable: a crash right after keeps the new start and nothing below it.
    let crashed = fs.crash(5);
    let log = open_sim(&crashed, config(), 0).unwrap();
    assert_eq!(log.log_start_offset(), 1_000);
    assert!(log.log_end_offset() >= 1_000);
}

/// A tiny deterministic generator for the power-loss runs.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Power lost at every possible moment of a history of leader appends, new epochs and
/// follower-style truncations: on restart the cache never lacks an epoch the data holds
/// (the open never has to rebuild it) and agrees with the batch headers.
#[test]
fn after_any_power_loss_the_cache_covers_the_data() {
    for seed in 1..=60u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let fs = SimFs::new();
        let log = open_sim(&fs, config(), 0).unwrap();
        let mut epoch = 0;
        let steps = 10 + rng.below(30);
        for _ in 0..steps {
            match rng.below(6) {
                0 => {
                    epoch += 1;
                    log.assign_leader_epoch(epoch).unwrap();
                }
                1 => {
                    let end = log.log_end_offset();
                    let to = end - rng.below(end as u64 + 1) as i64;
                    log.truncate_to(to.max(log.log_start_offset()), 0).unwrap();
                    epoch = log.latest_epoch().unwrap_or(0).max(epoch);
                }
                2 => log.flush().unwrap(),
                _ => {
                    if rng.below(3) == 0 {
                        epoch += 1;
                    }
                    lead(&log, epoch, 1 + rng.below(4) as usize);
                }
            }
        }
        let crashed = fs.crash(seed);
        let reopened = open_sim(&crashed, config(), 0).unwrap();
        assert_eq!(
            reopened.open_report().epochs_rebuilt,
            None,
            "seed {seed}: cache lacked an epoch of the data"
        );
        // Every batch's epoch is the one the cache names for its offset.
        let cache: Vec<(i32, i64)> = entries(&reopened);
        for (base, bytes) in read_all(&reopened) {
            let (header, _) = batches(&bytes).next().unwrap().unwrap();
            let named = cache
                .iter()
                .rev()
                .find(|(_, start)| *start <= base)
                .map(|(e, _)| *e);
            assert_eq!(
                named,
                Some(header.partition_leader_epoch),
                "seed {seed}: batch at {base}, cache {cache:?}"
            );
        }
    }
}

/// Recovery's cut and the epoch cache agree: a torn last batch that began a new epoch is cut
/// at open, and so is that epoch's entry (written durably before the batch), without the
/// open having to rebuild the cache; the next leader's entry starts at the recovered end.
#[test]
fn a_torn_tail_cut_at_open_takes_its_epoch_with_it() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config(), 0).unwrap();
    lead(&log, 1, 3);
    lead(&log, 1, 2);
    let end_of_one = log.log_end_offset();
    lead(&log, 2, 4);
    log.flush().unwrap();
    assert_eq!(entries(&log), vec![(1, 0), (2, end_of_one)]);
    let image = fs.crash(0);
    // The last batch (epoch 2) loses its last bytes; the checkpoint is unclean with its
    // recovery point at the start of the epoch-1 data, so this is a torn tail, not damage.
    let path = dir().join(format!("{:020}.log", 0));
    let mut bytes = image.contents(&path).unwrap();
    bytes.truncate(bytes.len() - 7);
    assert!(image.replace_contents(&path, bytes));
    let checkpoint = strom_log::checkpoint::Checkpoint {
        recovery_point: 0,
        log_start_offset: 0,
        clean_shutdown: false,
    };
    checkpoint.write(&image, &dir()).unwrap();
    let reopened = open_sim(&image, config(), 0).unwrap();
    assert_eq!(reopened.open_report().truncated_segment, Some(0));
    assert_eq!(reopened.log_end_offset(), end_of_one);
    assert_eq!(reopened.open_report().epochs_rebuilt, None);
    assert_eq!(entries(&reopened), vec![(1, 0)]);
    assert_eq!(reopened.latest_epoch(), Some(1));
    // Epoch 1 runs to the recovered end; epoch 2 is unknown again (as in Kafka's cache).
    assert_eq!(end_for(&reopened, 1), Some((1, end_of_one)));
    assert_eq!(end_for(&reopened, 2), None);
    // The trimmed cache was written back: a second open (after another crash) agrees.
    drop(reopened);
    let again = open_sim(&image.crash(1), config(), 0).unwrap();
    assert_eq!(again.open_report().epochs_rebuilt, None);
    assert_eq!(entries(&again), vec![(1, 0)]);
    lead(&again, 3, 1);
    assert_eq!(entries(&again), vec![(1, 0), (3, end_of_one)]);
}
