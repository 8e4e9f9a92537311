//! The leader-epoch cache against Kafka's examples and against a model: a `Vec` holding the
//! epoch of every offset, from which where each epoch ends is read off directly.

use proptest::prelude::*;

use super::*;

fn entry(epoch: i32, start_offset: i64) -> EpochEntry {
    EpochEntry {
        epoch,
        start_offset,
    }
}

fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
    LeaderEpochCache::from_entries(entries.iter().map(|(e, s)| entry(*e, *s)).collect()).unwrap()
}

#[test]
fn assign_keeps_the_history_monotonic() {
    let mut c = LeaderEpochCache::default();
    assert!(c.assign(2, 0));
    assert!(!c.assign(2, 5), "same epoch later: nothing new");
    assert!(c.assign(4, 10));
    assert!(!c.assign(-1, 12), "batches without an epoch are ignored");
    assert_eq!(c.entries(), cache(&[(2, 0), (4, 10)]).entries());
    // A follower taking the leader's history: epoch 3 from 8 replaces what conflicts.
    assert!(c.assign(3, 8));
    assert_eq!(c.entries(), cache(&[(2, 0), (3, 8)]).entries());
    // An older start for the latest epoch moves it.
    assert!(c.assign(3, 6));
    assert_eq!(c.entries(), cache(&[(2, 0), (3, 6)]).entries());
}

#[test]
fn end_offsets_follow_kafka() {
    let c = cache(&[(1, 0), (3, 10), (6, 20)]);
    let check = |requested, expected: Option<(i32, i64)>| {
        let found = c
            .end_offset_for(requested, 30)
            .map(|e| (e.epoch, e.start_offset));
        assert_eq!(found, expected, "epoch {requested}");
    };
    check(-1, None);
    check(0, Some((0, 0)));
    check(1, Some((1, 10)));
    check(2, Some((1, 10)));
    check(3, Some((3, 20)));
    check(5, Some((3, 20)));
    check(6, Some((6, 30)));
    check(7, None);
    assert_eq!(LeaderEpochCache::default().end_offset_for(1, 5), None);
    assert_eq!(c.epoch_for_offset(15), Some(3));
    assert_eq!(c.epoch_for_offset(35), Some(6));
}

#[test]
fn truncation_from_either_end() {
    let mut c = cache(&[(1, 0), (3, 10), (6, 20)]);
    assert!(!c.truncate_from_end(21));
    assert!(c.truncate_from_end(20));
    assert_eq!(c.entries(), cache(&[(1, 0), (3, 10)]).entries());
    let mut c = cache(&[(1, 0), (3, 10), (6, 20)]);
    assert!(c.truncate_from_start(15));
    assert_eq!(c.entries(), cache(&[(3, 15), (6, 20)]).entries());
    assert!(!c.truncate_from_start(15));
    assert!(c.truncate_from_start(20));
    assert_eq!(c.entries(), cache(&[(6, 20)]).entries());
}

#[test]
fn the_file_round_trips_and_garbage_is_named() {
    let c = cache(&[(1, 0), (3, 10)]);
    assert_eq!(c.encode(), "0\n2\n1 0\n3 10\n");
    assert_eq!(LeaderEpochCache::decode(&c.encode()), Ok(c));
    for bad in [
        "",
        "1\n0\n",
        "0\n2\n1 0\n",
        "0\n1\n1 x\n",
        "0\n2\n3 10\n1 0\n",
        "0\n1\n1 0 7\n",
        "0\n1\n1 0\nextra\n",
        "0\n2\n1 5\n2 5\n",
        "0\n1\n-1 0\n",
    ] {
        assert!(LeaderEpochCache::decode(bad).is_err(), "{bad:?} accepted");
    }
}

/// One change to the model log.
#[derive(Clone, Debug)]
enum Op {
    /// Appends `count` records written by a leader of epoch `current + bump`.
    Append { bump: i32, count: i64 },
    /// Cuts the log at `offset` (clamped).
    Truncate(i64),
    /// Moves the log start to `offset` (clamped).
    Start(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3i32, 1..5i64).prop_map(|(bump, count)| Op::Append { bump, count }),
        1 => (0..40i64).prop_map(Op::Truncate),
        1 => (0..40i64).prop_map(Op::Start),
    ]
}

/// Where `requested` ended according to the epochs of the records themselves.
fn model_end(epochs: &[i32], start: usize, requested: i32) -> Option<(i32, i64)> {
    let live = epochs.get(start..).unwrap_or_default();
    let leo = epochs.len() as i64;
    if live.is_empty() || requested < 0 {
        return None;
    }
    let latest = *live.last()?;
    if requested > latest {
        return None;
    }
    if requested == latest {
        return Some((requested, leo));
    }
    let end = start + live.iter().position(|e| *e > requested)?;
    let floor = live.iter().filter(|e| **e <= requested).max().copied();
    Some((floor.unwrap_or(requested), end as i64))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A cache maintained the way the log maintains it (assign on each batch with a newer
    /// epoch, trimmed on truncation and when the log start moves) answers every epoch
    /// exactly as the records say, and survives its file format.
    #[test]
    fn the_cache_agrees_with_the_records(ops in proptest::collection::vec(op(), 1..60)) {
        let mut epochs: Vec<i32> = Vec::new();
        let mut start = 0usize;
        let mut current = 0i32;
        let mut c = LeaderEpochCache::default();
        for op in ops {
            match op {
                Op::Append { bump, count } => {
                    current += bump;
                    c.assign(current, epochs.len() as i64);
                    epochs.extend(std::iter::repeat_n(current, count as usize));
                }
                Op::Truncate(offset) => {
                    let offset = (offset as usize).clamp(start, epochs.len());
                    epochs.truncate(offset);
                    c.truncate_from_end(offset as i64);
                    current = epochs.last().copied().unwrap_or(current);
                }
                Op::Start(offset) => {
                    start = (offset as usize).clamp(start, epochs.len());
                    c.truncate_from_start(start as i64);
                }
            }
            let leo = epochs.len() as i64;
            for requested in -1..=current + 1 {
                let found = c.end_offset_for(requested, leo).map(|e| (e.epoch, e.start_offset));
                // Once every record is gone the cache may still know the latest epoch.
                if start < epochs.len() {
                    prop_assert_eq!(found, model_end(&epochs, start, requested),
                        "epoch {} of {:?} from {}: {:?}", requested, epochs, start, c);
                }
            }
            let decoded = LeaderEpochCache::decode(&c.encode());
            prop_assert_eq!(decoded, Ok(c.clone()));
        }
    }
}
