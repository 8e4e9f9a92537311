//! Deterministic tests of the coordinator's edges the model does not drive: KIP-360 retries
//! and fencing, epoch exhaustion, transaction timeouts, KIP-890 verification, id expiry and
//! the ListTransactions filters.

use std::collections::HashSet;

use strom_txn::*;

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t".to_string(), p)
}

fn config() -> Config {
    Config {
        max_timeout_ms: 60_000,
        transactional_id_expiration_ms: 100_000,
    }
}

fn init(c: &mut Coordinator, expected: Option<(i64, i16)>, fresh: i64, now: i64) -> InitPidResult {
    let mut fresh = Some(fresh);
    c.init_producer_id("tx", 10_000, expected, &mut fresh, now)
        .response
}

#[test]
fn timeout_bounds() {
    let mut c = Coordinator::new(config());
    for timeout in [0, -1, 60_001] {
        let mut fresh = Some(1);
        let out = c.init_producer_id("tx", timeout, None, &mut fresh, 0);
        assert_eq!(out.response.error, ErrorCode::InvalidTransactionTimeout);
        assert!(out.records.is_empty());
        assert_eq!(fresh, Some(1), "the fresh id is not taken by a refusal");
    }
}

#[test]
fn kip_360_retries_and_fencing() {
    let mut c = Coordinator::new(config());
    let first = init(&mut c, None, 5, 0);
    assert_eq!((first.producer_id, first.producer_epoch), (5, 0));
    // The producer asks for a bump with its current id and epoch.
    let bumped = init(&mut c, Some((5, 0)), 6, 1);
    assert_eq!(
        (bumped.error, bumped.producer_id, bumped.producer_epoch),
        (ErrorCode::None, 5, 1)
    );
    // Its retry (the answer was lost) gets the same answer, without another bump.
    let retried = init(&mut c, Some((5, 0)), 6, 2);
    assert_eq!((retried.producer_id, retried.producer_epoch), (5, 1));
    // Another producer id, or an older epoch, is fenced.
    assert_eq!(
        init(&mut c, Some((77, 1)), 6, 3).error,
        ErrorCode::ProducerFenced
    );
    let mut fresh = Some(6);
    let out = c.init_producer_id("tx", 10_000, Some((5, -5)), &mut fresh, 4);
    assert_eq!(out.response.error, ErrorCode::ProducerFenced);
}

#[test]
fn exhausted_epoch_moves_to_a_new_producer_id() {
    let mut c = Coordinator::new(config());
    let mut fresh = Some(5);
    let mut log = c
        .init_producer_id("tx", 10_000, None, &mut fresh, 0)
        .records;
    // Bump until the epoch is exhausted (Short.MaxValue - 1).
    let mut last = InitPidResult {
        error: ErrorCode::None,
        producer_id: 5,
        producer_epoch: 0,
    };
    for _ in 0..i16::MAX {
        let mut fresh = Some(9);
        let out = c.init_producer_id("tx", 10_000, None, &mut fresh, 1);
        last = out.response;
        log.extend(out.records);
        if last.producer_id != 5 {
            break;
        }
    }
    assert_eq!((last.producer_id, last.producer_epoch), (9, 0));
    // The old producer's KIP-360 retry with the exhausted epoch gets the new id back.
    let retried = init(&mut c, Some((5, i16::MAX - 1)), 10, 2);
    assert_eq!(
        (retried.error, retried.producer_id, retried.producer_epoch),
        (ErrorCode::None, 9, 0)
    );
    // The state reloads to the new id.
    let mut loaded = Coordinator::new(config());
    loaded
        .load(log.iter().map(|r| (r.key.as_ref(), r.value.as_deref())))
        .unwrap();
    assert_eq!(
        loaded.get("tx").map(|m| (m.producer_id, m.producer_epoch)),
        Some((9, 0))
    );
}

#[test]
fn timed_out_transaction_is_aborted_with_a_bumped_epoch() {
    let mut c = Coordinator::new(config());
    let pid = init(&mut c, None, 5, 0).producer_id;
    c.add_partitions("tx", pid, 0, &[tp(0), tp(1)], 1_000);
    // Not yet: 10 s after the start.
    assert!(c.tick(11_000).records.is_empty());
    let out = c.tick(11_001);
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.markers.len(), 1);
    let job = &out.markers[0];
    assert_eq!(
        (job.commit, job.producer_epoch, job.partitions.len()),
        (false, 1, 2)
    );
    // The producer (epoch 0) is fenced; the markers complete the abort.
    assert_eq!(
        c.end_txn("tx", pid, 0, true, 11_002).response.error,
        ErrorCode::ProducerFenced
    );
    c.markers_written(job, 11_003);
    assert_eq!(c.get("tx").map(|m| m.state), Some(TxnState::CompleteAbort));
}

#[test]
fn verification_answers_per_partition() {
    let mut c = Coordinator::new(config());
    let pid = init(&mut c, None, 5, 0).producer_id;
    // No transaction yet: nothing is in it.
    assert_eq!(
        c.verify_partitions("tx", pid, 0, &[tp(0)]),
        Ok(vec![(tp(0), ErrorCode::TransactionAbortable)])
    );
    c.add_partitions("tx", pid, 0, &[tp(0)], 1);
    assert_eq!(
        c.verify_partitions("tx", pid, 0, &[tp(0), tp(1)]),
        Ok(vec![
            (tp(0), ErrorCode::None),
            (tp(1), ErrorCode::TransactionAbortable)
        ])
    );
    assert_eq!(
        c.verify_partitions("tx", pid, 1, &[tp(0)]),
        Err(ErrorCode::ProducerFenced)
    );
    assert_eq!(
        c.verify_partitions("tx", pid + 1, 0, &[tp(0)]),
        Err(ErrorCode::InvalidProducerIdMapping)
    );
    assert_eq!(
        c.verify_partitions("nope", pid, 0, &[tp(0)]),
        Err(ErrorCode::InvalidProducerIdMapping)
    );
    // While the markers are written: retriable.
    let end = c.end_txn("tx", pid, 0, true, 2);
    assert_eq!(
        c.verify_partitions("tx", pid, 0, &[tp(0)]),
        Err(ErrorCode::ConcurrentTransactions)
    );
    c.markers_written(&end.markers[0], 3);
    assert_eq!(
        c.verify_partitions("tx", pid, 0, &[tp(0)]),
        Ok(vec![(tp(0), ErrorCode::TransactionAbortable)])
    );
}

#[test]
fn idle_ids_expire_with_a_tombstone_but_not_ongoing_ones() {
    let mut c = Coordinator::new(config());
    init(&mut c, None, 5, 0);
    let mut fresh = Some(6);
    c.init_producer_id("busy", 50_000, None, &mut fresh, 0);
    c.add_partitions("busy", 6, 0, &[tp(0)], 99_000);
    let out = c.tick(100_000);
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.records[0].value, None);
    assert_eq!(decode_key(&out.records[0].key).unwrap(), "tx");
    assert!(c.get("tx").is_none());
    assert!(c.get("busy").is_some());
}

#[test]
fn list_filters() {
    let mut c = Coordinator::new(config());
    let pid = init(&mut c, None, 5, 0).producer_id;
    let mut fresh = Some(6);
    c.init_producer_id("other", 10_000, None, &mut fresh, 0);
    c.add_partitions("tx", pid, 0, &[tp(0)], 1_000);
    let all = c.list(
        &ListFilter {
            min_duration_ms: -1,
            ..ListFilter::default()
        },
        2_000,
    );
    assert_eq!(all.len(), 2);
    let ongoing = c.list(
        &ListFilter {
            states: HashSet::from(["Ongoing".to_string()]),
            min_duration_ms: -1,
            ..ListFilter::default()
        },
        2_000,
    );
    assert_eq!(ongoing, vec![("tx".to_string(), 5, TxnState::Ongoing)]);
    let by_pid = c.list(
        &ListFilter {
            producer_ids: HashSet::from([6]),
            min_duration_ms: -1,
            ..ListFilter::default()
        },
        2_000,
    );
    assert_eq!(by_pid, vec![("other".to_string(), 6, TxnState::Empty)]);
    // KIP-994: running at least 500 ms at 2 s (started at 1 s) yes, 5 s no.
    assert_eq!(
        c.list(
            &ListFilter {
                min_duration_ms: 500,
                ..ListFilter::default()
            },
            2_000
        )
        .len(),
        1
    );
    assert!(c
        .list(
            &ListFilter {
                min_duration_ms: 5_000,
                ..ListFilter::default()
            },
            2_000
        )
        .is_empty());
}

#[test]
fn init_aborts_an_ongoing_transaction_first() {
    let mut c = Coordinator::new(config());
    let pid = init(&mut c, None, 5, 0).producer_id;
    c.add_partitions("tx", pid, 0, &[tp(3)], 1);
    let mut fresh = Some(6);
    let out = c.init_producer_id("tx", 10_000, None, &mut fresh, 2);
    assert_eq!(out.response.error, ErrorCode::ConcurrentTransactions);
    assert_eq!(out.markers.len(), 1);
    assert_eq!(
        (out.markers[0].commit, out.markers[0].producer_epoch),
        (false, 1)
    );
    assert_eq!(
        init(&mut c, None, 6, 3).error,
        ErrorCode::ConcurrentTransactions
    );
    c.markers_written(&out.markers[0], 4);
    let again = init(&mut c, None, 6, 5);
    assert_eq!(
        (again.error, again.producer_id, again.producer_epoch),
        (ErrorCode::None, pid, 2)
    );
}
