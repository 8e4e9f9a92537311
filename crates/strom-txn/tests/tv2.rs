//! Transaction version 2 (KIP-890 part 2) in the coordinator: the epoch bumped at every
//! end with the markers carrying it, Kafka's retry table for EndTxn, the empty abort, the
//! producer id rollover at epoch overflow, fences of a version 2 transaction, and the
//! state surviving a reload from the v1 records.

use strom_txn::*;

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t".to_string(), p)
}

fn coordinator() -> Coordinator {
    Coordinator::new(Config {
        max_timeout_ms: 60_000,
        transactional_id_expiration_ms: 100_000,
    })
}

/// The records so far, replayed into a new coordinator (a failover).
fn reload(log: &[TxnRecord]) -> (Coordinator, Vec<MarkerJob>) {
    let mut c = coordinator();
    let jobs = c
        .load(log.iter().map(|r| (r.key.as_ref(), r.value.as_deref())))
        .unwrap();
    (c, jobs)
}

fn end(c: &mut Coordinator, pid: i64, epoch: i16, commit: bool, now: i64) -> Output<EndTxnResult> {
    c.end_txn_tv("tx", pid, epoch, commit, TV2, &mut None, now)
}

#[test]
fn every_end_bumps_the_epoch_and_the_markers_carry_it() {
    let mut c = coordinator();
    let mut log = Vec::new();
    let init = c.init_producer_id("tx", 10_000, None, &mut Some(7), 0);
    log.extend(init.records);
    let add = c.add_partitions_tv("tx", 7, 0, &[tp(0), tp(1)], TV2, 1);
    assert_eq!(add.response, ErrorCode::None);
    log.extend(add.records);
    let out = end(&mut c, 7, 0, true, 2);
    assert_eq!(
        (
            out.response.error,
            out.response.producer_id,
            out.response.producer_epoch
        ),
        (ErrorCode::None, 7, 1),
        "EndTxn v5 answers the epoch the producer continues with"
    );
    assert_eq!(out.markers.len(), 1);
    assert_eq!(
        out.markers[0].producer_epoch, 1,
        "markers carry the bumped epoch"
    );
    assert_eq!(out.markers[0].partitions, vec![tp(0), tp(1)]);
    log.extend(out.records);
    // The next transaction waits for the markers (its epoch is already the new one).
    assert_eq!(
        c.add_partitions_tv("tx", 7, 1, &[tp(0)], TV2, 3).response,
        ErrorCode::ConcurrentTransactions
    );
    // A retry of the end (the answer was lost) while the markers are written.
    assert_eq!(
        end(&mut c, 7, 0, true, 3).response.error,
        ErrorCode::ConcurrentTransactions
    );
    // A failover mid-commit hands out the same job, bumped epoch included.
    let (mut failed_over, jobs) = reload(&log);
    assert_eq!(jobs, out.markers);
    let done = failed_over.markers_written(&jobs[0], 4);
    assert_eq!(done.records.len(), 1);
    log.extend(done.records);
    let meta = failed_over.get("tx").unwrap();
    assert_eq!(
        (
            meta.state,
            meta.producer_epoch,
            meta.last_producer_epoch,
            meta.client_tv
        ),
        (TxnState::CompleteCommit, 1, NO_PRODUCER_EPOCH, TV2)
    );
    let mut c = failed_over;
    // Kafka's table for a completed commit: the retry is answered with the current epoch,
    // an abort retried after a commit is INVALID_TXN_STATE, a commit at the current epoch
    // (no transaction open) too, an older epoch is fenced.
    let retried = end(&mut c, 7, 0, true, 5).response;
    assert_eq!(
        (retried.error, retried.producer_id, retried.producer_epoch),
        (ErrorCode::None, 7, 1)
    );
    assert_eq!(
        end(&mut c, 7, 0, false, 5).response.error,
        ErrorCode::InvalidTxnState
    );
    assert_eq!(
        end(&mut c, 7, 1, true, 5).response.error,
        ErrorCode::InvalidTxnState
    );
    let fenced = end(&mut c, 7, -1, true, 5).response;
    assert_eq!(
        (fenced.error, fenced.producer_id, fenced.producer_epoch),
        (ErrorCode::ProducerFenced, -1, -1)
    );
    assert_eq!(
        end(&mut c, 8, 1, true, 5).response.error,
        ErrorCode::InvalidProducerIdMapping
    );
    // The next transaction at the new epoch; the old epoch is fenced everywhere.
    assert_eq!(
        c.add_partitions_tv("tx", 7, 0, &[tp(0)], TV2, 6).response,
        ErrorCode::ProducerFenced
    );
    assert_eq!(
        c.add_partitions_tv("tx", 7, 1, &[tp(2)], TV2, 6).response,
        ErrorCode::None
    );
    let abort = end(&mut c, 7, 1, false, 7);
    assert_eq!(abort.response.producer_epoch, 2);
    assert_eq!(abort.markers[0].producer_epoch, 2);
    assert!(!abort.markers[0].commit);
}

#[test]
fn an_abort_with_nothing_open_bumps_the_epoch_without_markers() {
    let mut c = coordinator();
    c.init_producer_id("tx", 10_000, None, &mut Some(3), 0);
    assert_eq!(
        end(&mut c, 3, 0, true, 1).response.error,
        ErrorCode::InvalidTxnState
    );
    let out = end(&mut c, 3, 0, false, 1);
    assert_eq!(
        (out.response.error, out.response.producer_epoch),
        (ErrorCode::None, 1)
    );
    assert_eq!(out.markers.len(), 1);
    assert!(out.markers[0].partitions.is_empty());
    let meta = c.get("tx").unwrap();
    assert_eq!((meta.state, meta.start_ms), (TxnState::PrepareAbort, 1));
    c.markers_written(&out.markers[0], 2);
    // A completed abort: its retry is answered, an abort at the current epoch bumps again.
    assert_eq!(end(&mut c, 3, 0, false, 3).response.producer_epoch, 1);
    assert_eq!(
        end(&mut c, 3, 0, true, 3).response.error,
        ErrorCode::InvalidTxnState
    );
    assert_eq!(end(&mut c, 3, 1, false, 3).response.producer_epoch, 2);
}

#[test]
fn an_exhausted_epoch_rolls_over_to_the_next_producer_id_at_completion() {
    let mut c = coordinator();
    let mut log = Vec::new();
    log.extend(
        c.init_producer_id("tx", 10_000, None, &mut Some(5), 0)
            .records,
    );
    // Transactions until the epoch is exhausted (MAX - 1), one bump each.
    let mut epoch = 0i16;
    while epoch < i16::MAX - 1 {
        c.add_partitions_tv("tx", 5, epoch, &[tp(0)], TV2, 1);
        let out = end(&mut c, 5, epoch, true, 1);
        assert_eq!(out.response.error, ErrorCode::None);
        c.markers_written(&out.markers[0], 1);
        epoch = out.response.producer_epoch;
    }
    let add = c.add_partitions_tv("tx", 5, epoch, &[tp(0)], TV2, 2);
    log.extend(add.records);
    // The end needs a new id: without one the coordinator cannot answer yet.
    assert_eq!(
        end(&mut c, 5, epoch, true, 2).response.error,
        ErrorCode::CoordinatorNotAvailable
    );
    let mut fresh = Some(9);
    let out = c.end_txn_tv("tx", 5, epoch, true, TV2, &mut fresh, 3);
    assert_eq!(fresh, None);
    assert_eq!(
        (
            out.response.error,
            out.response.producer_id,
            out.response.producer_epoch
        ),
        (ErrorCode::None, 9, 0),
        "the answer names the next producer id at epoch 0"
    );
    assert_eq!(
        (out.markers[0].producer_id, out.markers[0].producer_epoch),
        (5, i16::MAX),
        "the markers are the old id's, at the last epoch"
    );
    log.extend(out.records);
    let meta = c.get("tx").unwrap();
    assert_eq!((meta.producer_id, meta.next_producer_id), (5, 9));
    // NextProducerId is persisted: a failover completes to the same id.
    let (mut c, jobs) = reload(&log);
    assert_eq!(c.get("tx").unwrap().next_producer_id, 9);
    log.extend(c.markers_written(&jobs[0], 4).records);
    let meta = c.get("tx").unwrap();
    assert_eq!(
        (
            meta.producer_id,
            meta.producer_epoch,
            meta.previous_producer_id,
            meta.next_producer_id
        ),
        (9, 0, 5, NO_PRODUCER_ID)
    );
    // The retry of the overflowing end (old id, epoch MAX - 1) is answered with the new id.
    let retried = end(&mut c, 5, i16::MAX - 1, true, 5).response;
    assert_eq!(
        (retried.error, retried.producer_id, retried.producer_epoch),
        (ErrorCode::None, 9, 0)
    );
    let (reloaded, _) = reload(&log);
    assert_eq!(
        reloaded.get("tx"),
        c.get("tx")
            .map(|m| {
                let mut m = m.clone();
                m.last_producer_epoch = NO_PRODUCER_EPOCH;
                m
            })
            .as_ref()
    );
    assert_eq!(
        c.add_partitions_tv("tx", 9, 0, &[tp(0)], TV2, 6).response,
        ErrorCode::None
    );
}

#[test]
fn a_fenced_version_2_transaction_is_aborted_above_the_fence() {
    let mut c = coordinator();
    c.init_producer_id("tx", 1_000, None, &mut Some(4), 0);
    c.add_partitions_tv("tx", 4, 0, &[tp(0)], TV2, 10);
    // Past its timeout: Kafka fences (epoch 1) and aborts through the TV2 end (epoch 2).
    let out = c.tick(2_000);
    assert_eq!(out.markers.len(), 1);
    assert_eq!(out.markers[0].producer_epoch, 2);
    c.markers_written(&out.markers[0], 2_001);
    // The zombie's end: its epoch is neither current nor a retry's.
    assert_eq!(
        end(&mut c, 4, 0, true, 2_002).response.error,
        ErrorCode::ProducerFenced
    );
    // A TV1 transaction keeps the single bump.
    c.add_partitions("tx", 4, 2, &[tp(0)], 3_000);
    let out = c.tick(5_000);
    assert_eq!(out.markers[0].producer_epoch, 3);
}

#[test]
fn version_1_clients_keep_their_epoch_across_ends() {
    let mut c = coordinator();
    c.init_producer_id("tx", 10_000, None, &mut Some(2), 0);
    c.add_partitions("tx", 2, 0, &[tp(0)], 1);
    let out = c.end_txn("tx", 2, 0, true, 2);
    assert_eq!(out.response.producer_epoch, 0);
    assert_eq!(out.markers[0].producer_epoch, 0);
    let value = out.records[0].value.as_deref().unwrap();
    assert_eq!(
        &value[..2],
        &value_version(TV2).to_be_bytes(),
        "values are written as v1 at level 2"
    );
    let decoded = decode_value(value).unwrap();
    assert_eq!(decoded.client_tv, TV0);
}

#[test]
fn the_finalized_level_applies_to_transactions_that_start_after_it() {
    let mut c = coordinator();
    c.init_producer_id("tx", 10_000, None, &mut Some(5), 0);
    // A transaction under way at version 2 keeps its rules across a downgrade.
    c.add_partitions_tv("tx", 5, 0, &[tp(0)], TV2, 1);
    c.set_transaction_version(1);
    c.add_partitions_tv("tx", 5, 0, &[tp(1)], TV2, 2);
    let out = end(&mut c, 5, 0, true, 3);
    assert_eq!(out.response.producer_epoch, 1, "begun at 2: bumped");
    assert_eq!(out.markers[0].producer_epoch, 1);
    c.markers_written(&out.markers[0], 4);
    // Its retry is still recognised after the downgrade.
    assert_eq!(end(&mut c, 5, 0, true, 5).response.error, ErrorCode::None);
    // The next one starts at level 1, even from a client that still asks at 2: no bump,
    // and the answer carries the epoch it continues with.
    c.add_partitions_tv("tx", 5, 1, &[tp(0)], TV2, 6);
    let out = end(&mut c, 5, 1, false, 7);
    assert_eq!(
        (out.response.error, out.response.producer_epoch),
        (ErrorCode::None, 1)
    );
    assert_eq!(out.markers[0].producer_epoch, 1, "no bump at level 1");
    c.markers_written(&out.markers[0], 8);
    // A version 1 client works as before.
    c.add_partitions("tx", 5, 1, &[tp(2)], 9);
    let out = c.end_txn("tx", 5, 1, true, 10);
    assert_eq!(
        (out.response.error, out.markers[0].producer_epoch),
        (ErrorCode::None, 1)
    );
    c.markers_written(&out.markers[0], 11);
    // Upgraded again: the next transaction of a version 2 client bumps again.
    c.set_transaction_version(TV2);
    c.add_partitions_tv("tx", 5, 1, &[tp(0)], TV2, 12);
    let out = end(&mut c, 5, 1, true, 13);
    assert_eq!(out.response.producer_epoch, 2);
}
