//! Transactional offset commits (TxnOffsetCommit): staged until the transaction's marker,
//! committed by COMMIT, dropped by ABORT, unstable for `require_stable` fetches meanwhile,
//! and rebuilt the same way from the log (transactional records, then the marker).

use strom_group::*;

fn txn_commit(producer_id: i64, epoch: i16, offset: i64) -> Command {
    Command::TxnOffsetCommit(TxnOffsetCommit {
        group_id: "g".into(),
        producer_id,
        producer_epoch: epoch,
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        offsets: vec![CommitOffset {
            topic: "t".into(),
            partition: 0,
            offset,
            leader_epoch: -1,
            metadata: String::new(),
        }],
    })
}

fn fetch(c: &mut Coordinator, require_stable: bool) -> (i64, ErrorCode) {
    let out = c.handle(
        99,
        Command::OffsetFetch(OffsetFetch {
            group_id: "g".into(),
            partitions: Some(vec![("t".into(), 0)]),
            require_stable,
            member_id: None,
            member_epoch: -1,
        }),
        0,
    );
    match &out.replies[0].response {
        Response::OffsetFetch(r) => (r.partitions[0].offset, r.partitions[0].error),
        other => panic!("{other:?}"),
    }
}

#[test]
fn staged_until_the_marker_then_committed_or_dropped() {
    let mut c = Coordinator::new(Config::default());
    let out = c.handle(1, txn_commit(7, 0, 10), 0);
    assert_eq!(out.transactional, Some((7, 0)));
    assert_eq!(out.records.len(), 1);
    assert!(
        matches!(&out.replies[0].response, Response::TxnOffsetCommit(r) if r[0].error == ErrorCode::None)
    );
    // Not visible yet; unstable for a read_committed consumer's fetch.
    assert_eq!(fetch(&mut c, false), (-1, ErrorCode::None));
    assert_eq!(fetch(&mut c, true), (-1, ErrorCode::UnstableOffsetCommit));
    c.handle(
        2,
        Command::TxnMarker {
            producer_id: 7,
            commit: true,
        },
        0,
    );
    assert_eq!(fetch(&mut c, true), (10, ErrorCode::None));
    // An aborted transaction leaves the committed offset as it was.
    c.handle(3, txn_commit(7, 0, 20), 0);
    c.handle(
        4,
        Command::TxnMarker {
            producer_id: 7,
            commit: false,
        },
        0,
    );
    assert_eq!(fetch(&mut c, true), (10, ErrorCode::None));
    // A marker of a producer with nothing staged changes nothing.
    c.handle(
        5,
        Command::TxnMarker {
            producer_id: 8,
            commit: true,
        },
        0,
    );
    assert_eq!(fetch(&mut c, true), (10, ErrorCode::None));
}

#[test]
fn older_epoch_is_fenced() {
    let mut c = Coordinator::new(Config::default());
    c.handle(1, txn_commit(7, 3, 10), 0);
    let out = c.handle(2, txn_commit(7, 2, 11), 0);
    assert!(out.records.is_empty());
    assert!(
        matches!(&out.replies[0].response, Response::TxnOffsetCommit(r) if r[0].error == ErrorCode::ProducerFenced)
    );
}

#[test]
fn load_replays_transactional_records_and_markers() {
    let mut c = Coordinator::new(Config::default());
    let committed = c.handle(1, txn_commit(7, 0, 10), 0).records;
    let aborted = c.handle(2, txn_commit(8, 0, 30), 0).records;
    let pending = c.handle(3, txn_commit(9, 0, 40), 0).records;
    let mut loaded = Coordinator::new(Config::default());
    loaded.load_txn_records(7, 0, &committed).unwrap();
    loaded.load_txn_records(8, 0, &aborted).unwrap();
    loaded.load_txn_records(9, 0, &pending).unwrap();
    loaded.txn_marker(8, false, 0);
    loaded.txn_marker(7, true, 0);
    assert_eq!(fetch(&mut loaded, false), (10, ErrorCode::None));
    // Producer 9's transaction is still open after the load.
    assert_eq!(
        fetch(&mut loaded, true),
        (-1, ErrorCode::UnstableOffsetCommit)
    );
    loaded.txn_marker(9, true, 0);
    assert_eq!(fetch(&mut loaded, true), (40, ErrorCode::None));
}
