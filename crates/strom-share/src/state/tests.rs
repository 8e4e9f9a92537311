//! Tests of the share coordinator: commands, fencing, merging, the record codec, and that
//! replaying the log (whole or compacted) rebuilds exactly the state in memory.
// Compiled only under #[cfg(test)] (declared so in state.rs): unwrapping is fine here.

use super::codec::{decode, encode};
use super::*;
use proptest::prelude::*;

fn key(partition: i32) -> ShareKey {
    ShareKey {
        group_id: "g".into(),
        topic_id: [7; 16],
        partition,
    }
}

fn batch(first: i64, last: i64, state: RecordState, delivery_count: u16) -> StateBatch {
    StateBatch {
        first_offset: first,
        last_offset: last,
        state,
        delivery_count,
    }
}

use RecordState::{Acknowledged as Ack, Archived as Arch, Available as Av};

#[test]
fn initialize_write_read_and_fencing() {
    let mut c = StateCoordinator::new(StateConfig::default());
    assert_eq!(c.read(&key(0), 0, 0), Err(StateError::UnknownKey));
    assert_eq!(
        c.write(&key(0), 0, 0, 0, &[], 0),
        Err(StateError::UnknownKey)
    );
    c.initialize(&key(0), 1, 10, 5).unwrap();
    assert_eq!(
        c.initialize(&key(0), 1, 10, 5),
        Err(StateError::FencedStateEpoch)
    );
    let (read, records) = c.read(&key(0), 3, 6).unwrap();
    assert_eq!((read.state_epoch, read.start_offset), (1, 10));
    assert_eq!(records.len(), 1, "a higher leader epoch is recorded");
    assert_eq!(c.read(&key(0), 2, 7), Err(StateError::FencedLeaderEpoch));
    c.write(
        &key(0),
        1,
        3,
        12,
        &[batch(12, 20, Av, 1), batch(21, 21, Ack, 1)],
        8,
    )
    .unwrap();
    assert_eq!(
        c.write(&key(0), 0, 3, 12, &[], 9),
        Err(StateError::FencedStateEpoch)
    );
    assert_eq!(
        c.write(&key(0), 1, 2, 12, &[], 9),
        Err(StateError::FencedLeaderEpoch)
    );
    c.write(&key(0), 1, 3, 14, &[batch(14, 15, Ack, 1)], 9)
        .unwrap();
    let (read, _) = c.read(&key(0), 3, 10).unwrap();
    assert_eq!(read.start_offset, 14);
    assert_eq!(
        read.batches,
        vec![
            batch(14, 15, Ack, 1),
            batch(16, 20, Av, 1),
            batch(21, 21, Ack, 1)
        ]
    );
    let summary = c.summary(&key(0)).unwrap();
    assert_eq!(
        (
            summary.state_epoch,
            summary.leader_epoch,
            summary.start_offset
        ),
        (1, 3, 14)
    );
    // A new state epoch (offsets reset) fences the old writers and clears the batches.
    c.initialize(&key(0), 2, 0, 11).unwrap();
    assert_eq!(
        c.write(&key(0), 1, 3, 1, &[], 12),
        Err(StateError::FencedStateEpoch)
    );
    let (read, _) = c.read(&key(0), 3, 12).unwrap();
    assert_eq!(
        (read.state_epoch, read.start_offset, read.batches.len()),
        (2, 0, 0)
    );
}

#[test]
fn bad_writes_are_invalid_request() {
    let mut c = StateCoordinator::new(StateConfig {
        snapshot_updates_max: 10,
        batches_max: 3,
    });
    c.initialize(&key(0), 1, 0, 0).unwrap();
    for bad in [
        vec![batch(5, 4, Av, 1)],
        vec![batch(-1, 4, Av, 1)],
        vec![batch(0, 4, RecordState::Acquired, 1)],
        vec![batch(0, 4, Av, 1), batch(3, 6, Av, 1)],
        vec![
            batch(0, 0, Av, 1),
            batch(2, 2, Av, 1),
            batch(4, 4, Av, 1),
            batch(6, 6, Av, 1),
        ],
    ] {
        assert_eq!(
            c.write(&key(0), 1, 0, -1, &bad, 0),
            Err(StateError::InvalidRequest)
        );
    }
    // The merged state is bounded too.
    c.write(
        &key(0),
        1,
        0,
        -1,
        &[batch(0, 0, Av, 1), batch(2, 2, Av, 1)],
        0,
    )
    .unwrap();
    assert_eq!(
        c.write(
            &key(0),
            1,
            0,
            -1,
            &[batch(4, 4, Av, 1), batch(6, 6, Av, 1)],
            0
        ),
        Err(StateError::InvalidRequest)
    );
}

#[test]
fn delete_forgets_the_key_and_writes_tombstones() {
    let mut c = StateCoordinator::new(StateConfig::default());
    c.initialize(&key(0), 1, 0, 0).unwrap();
    c.initialize(&key(1), 1, 0, 0).unwrap();
    assert_eq!(c.keys_of_group("g"), vec![key(0), key(1)]);
    let records = c.delete(&key(0));
    assert_eq!(records.len(), 2);
    assert!(c.state(&key(0)).is_none());
    assert!(c.delete(&key(0)).is_empty());
    let mut replayed = StateCoordinator::new(StateConfig::default());
    for r in records {
        replayed.replay(r);
    }
    assert!(replayed.state(&key(0)).is_none());
}

#[test]
fn keys_of_topic_names_every_group_of_that_topic_only() {
    let mut c = StateCoordinator::new(StateConfig::default());
    let other_group = ShareKey {
        group_id: "h".into(),
        ..key(0)
    };
    let other_topic = ShareKey {
        topic_id: [8; 16],
        ..key(0)
    };
    for k in [&key(1), &key(0), &other_group, &other_topic] {
        c.initialize(k, 1, 0, 0).unwrap();
    }
    assert_eq!(c.keys_of_topic([7; 16]), vec![key(0), key(1), other_group]);
    assert_eq!(c.keys_of_topic([8; 16]), vec![other_topic.clone()]);
    assert!(c.keys_of_topic([9; 16]).is_empty());
    for k in c.keys_of_topic([7; 16]) {
        assert_eq!(c.delete(&k).len(), 2);
    }
    assert!(c.keys_of_topic([7; 16]).is_empty());
    assert_eq!(c.keys_of_group("g"), vec![other_topic]);
}

#[test]
fn merge_cuts_older_runs() {
    let older = [batch(0, 9, Av, 1), batch(10, 19, Ack, 2)];
    let newer = [batch(5, 12, Arch, 3)];
    assert_eq!(
        merge_batches(&older, &newer, -1),
        vec![
            batch(0, 4, Av, 1),
            batch(5, 12, Arch, 3),
            batch(13, 19, Ack, 2)
        ]
    );
    assert_eq!(
        merge_batches(&older, &newer, 7),
        vec![batch(7, 12, Arch, 3), batch(13, 19, Ack, 2)]
    );
    // Equal neighbours join.
    assert_eq!(
        merge_batches(&[batch(0, 4, Av, 1)], &[batch(5, 9, Av, 1)], -1),
        vec![batch(0, 9, Av, 1)]
    );
}

#[test]
fn codec_round_trips_every_record_kind() {
    let records = [
        StateRecord::Snapshot(
            key(3),
            SnapshotValue {
                snapshot_epoch: 4,
                state_epoch: 2,
                leader_epoch: 9,
                start_offset: 100,
                create_timestamp_ms: 1,
                write_timestamp_ms: 2,
                batches: vec![batch(100, 120, Av, 2), batch(121, 121, Arch, 5)],
            },
        ),
        StateRecord::Update(
            key(3),
            UpdateValue {
                snapshot_epoch: 4,
                leader_epoch: 9,
                start_offset: -1,
                batches: vec![batch(130, 131, Ack, 1)],
            },
        ),
        StateRecord::Tombstone {
            key: key(3),
            snapshot: true,
        },
        StateRecord::Tombstone {
            key: key(3),
            snapshot: false,
        },
    ];
    for record in records {
        let (k, v) = encode(&record);
        assert_eq!(decode(&k, v.as_deref()), Ok(record));
    }
}

#[test]
fn codec_refuses_damaged_records() {
    let record = StateRecord::Update(
        key(0),
        UpdateValue {
            snapshot_epoch: 0,
            leader_epoch: 0,
            start_offset: 0,
            batches: vec![batch(0, 1, Av, 1)],
        },
    );
    let (k, v) = encode(&record);
    let v = v.unwrap();
    for cut in 0..v.len() {
        assert!(decode(&k, Some(&v[..cut])).is_err(), "cut at {cut}");
    }
    let mut extra = v.clone();
    extra.push(0);
    assert!(decode(&k, Some(&extra)).is_err());
    // A batch count far beyond the bytes present is refused before allocating.
    let mut huge = v[..18].to_vec();
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(decode(&k, Some(&huge)).is_err());
    let mut bad_state = v.clone();
    bad_state[18 + 1 + 16] = 3;
    assert!(decode(&k, Some(&bad_state)).is_err());
    let mut bad_kind = k.clone();
    bad_kind[1] = 9;
    assert!(decode(&bad_kind, Some(&v)).is_err());
}

#[derive(Debug, Clone)]
enum Op {
    Write(i32, i64, Vec<(i64, i64, u8, u16)>),
    Read(i32),
    Initialize(i32, i64),
    Delete(i32),
}

fn op() -> impl Strategy<Value = Op> {
    let batches =
        proptest::collection::vec((0..60i64, 0..6i64, 0..3u8, 1..6u16), 0..5).prop_map(|v| {
            // Make them ascending and non-overlapping.
            let mut out = Vec::new();
            let mut next = 0;
            for (gap, len, state, count) in v {
                let first = next + gap % 10;
                out.push((first, first + len, state, count));
                next = first + len + 1;
            }
            out
        });
    prop_oneof![
        6 => (0..2i32, -1..30i64, batches).prop_map(|(p, s, b)| Op::Write(p, s, b)),
        1 => (0..2i32).prop_map(Op::Read),
        1 => (0..2i32, 0..20i64).prop_map(|(p, s)| Op::Initialize(p, s)),
        1 => (0..2i32).prop_map(Op::Delete),
    ]
}

fn state_of(kind: u8) -> RecordState {
    match kind {
        0 => Av,
        1 => Ack,
        _ => Arch,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    /// Replaying the whole log, or only what compaction keeps (the latest record of each
    /// key), rebuilds the state the coordinator answered from.
    #[test]
    fn replay_of_the_log_or_its_compaction_equals_memory(
        ops in proptest::collection::vec(op(), 1..60),
        snapshot_updates_max in 1..6u32,
    ) {
        let config = StateConfig { snapshot_updates_max, batches_max: 1000 };
        let mut c = StateCoordinator::new(config);
        let mut log: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        let mut epochs = [0i32; 2];
        for (now, op) in ops.iter().enumerate() {
            let now = now as i64;
            let records = match op {
                Op::Write(p, start, batches) => {
                    let batches: Vec<StateBatch> = batches
                        .iter()
                        .map(|&(f, l, s, d)| batch(f, l, state_of(s), d))
                        .collect();
                    c.write(&key(*p), epochs[*p as usize], 0, *start, &batches, now).unwrap_or_default()
                }
                Op::Read(p) => c.read(&key(*p), 0, now).map(|(_, r)| r).unwrap_or_default(),
                Op::Initialize(p, start) => {
                    epochs[*p as usize] += 1;
                    c.initialize(&key(*p), epochs[*p as usize], *start, now).unwrap_or_default()
                }
                Op::Delete(p) => c.delete(&key(*p)),
            };
            for r in &records {
                log.push(encode(r));
            }
        }
        let mut whole = StateCoordinator::new(config);
        for (k, v) in &log {
            whole.replay(decode(k, v.as_deref()).map_err(|e| TestCaseError::fail(e.to_string()))?);
        }
        // Compaction: keep the last record of each key, in log order.
        let mut compacted = StateCoordinator::new(config);
        for (i, (k, v)) in log.iter().enumerate() {
            if log[i + 1..].iter().any(|(later, _)| later == k) {
                continue;
            }
            compacted.replay(decode(k, v.as_deref()).map_err(|e| TestCaseError::fail(e.to_string()))?);
        }
        for p in 0..2 {
            let expected = c.state(&key(p)).map(|s| (s.state_epoch, s.leader_epoch, s.start_offset, s.batches));
            let from_whole = whole.state(&key(p)).map(|s| (s.state_epoch, s.leader_epoch, s.start_offset, s.batches));
            let from_compacted = compacted.state(&key(p)).map(|s| (s.state_epoch, s.leader_epoch, s.start_offset, s.batches));
            prop_assert_eq!(&from_whole, &expected);
            prop_assert_eq!(&from_compacted, &expected);
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        k in proptest::collection::vec(any::<u8>(), 0..40),
        v in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80)),
    ) {
        let _ = decode(&k, v.as_deref());
    }
}
