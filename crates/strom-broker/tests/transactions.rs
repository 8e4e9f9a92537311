//! The transaction coordinator over the wire, request by request (what the real clients in
//! tests/clients do not show one by one): FindCoordinator(TRANSACTION), InitProducerId
//! epochs and INVALID_TRANSACTION_TIMEOUT, KIP-890 part 1 (a transactional batch for a
//! partition not in the transaction is INVALID_TXN_STATE; AddPartitionsToTxn v4
//! `verify_only`), fencing errors by request version, EndTxn and its markers, and
//! Describe/ListTransactions; and transaction version 2 (KIP-890 part 2): Produce v12 adds
//! its partition, EndTxn v5 bumps the epoch and names it, the markers carry it.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{create_topic, now_ms, s, Client, TestBroker};
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, DescribeTransactionsRequest, EndTxnRequest, FindCoordinatorRequest,
    InitProducerIdRequest, ListOffsetsRequest, ListTransactionsRequest, ProduceRequest, ProducerId,
    TopicName, TransactionalId,
};
use strom_records::BatchBuilder;

const TOPIC: &str = "txn-wire";

fn txid(text: &str) -> TransactionalId {
    TransactionalId(s(text))
}

/// A transactional batch of `count` records.
fn txn_batch(producer_id: i64, epoch: i16, first_sequence: i32, count: usize) -> Vec<u8> {
    let now = now_ms();
    let mut builder = BatchBuilder::new(0, now)
        .producer(producer_id, epoch, first_sequence)
        .transactional(true);
    for i in 0..count {
        builder
            .append(now, None, Some(Bytes::from(format!("t-{i}"))), vec![])
            .unwrap();
    }
    builder.build().unwrap()
}

async fn produce(
    client: &mut Client,
    transactional_id: Option<&str>,
    partition: i32,
    records: Vec<u8>,
) -> i16 {
    produce_v(client, 9, transactional_id, partition, records).await
}

async fn produce_v(
    client: &mut Client,
    version: i16,
    transactional_id: Option<&str>,
    partition: i32,
    records: Vec<u8>,
) -> i16 {
    let response = client
        .send(
            version,
            ProduceRequest::default()
                .with_transactional_id(transactional_id.map(txid))
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(s(TOPIC)))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::from(records)))])]),
        )
        .await;
    response.responses[0].partition_responses[0].error_code
}

/// InitProducerId, retried (boundedly) while the coordinator is being created or loaded.
async fn init(client: &mut Client, id: &str, timeout_ms: i32, version: i16) -> (i16, i64, i16) {
    for _ in 0..600 {
        let r = client
            .send(
                version,
                InitProducerIdRequest::default()
                    .with_transactional_id(Some(txid(id)))
                    .with_transaction_timeout_ms(timeout_ms)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            )
            .await;
        // COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
        // CONCURRENT_TRANSACTIONS: retriable.
        if ![14, 15, 16, 51].contains(&r.error_code) {
            return (r.error_code, r.producer_id.0, r.producer_epoch);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("InitProducerId of {id} never answered");
}

async fn add_partitions(
    client: &mut Client,
    id: &str,
    pid: i64,
    epoch: i16,
    partitions: Vec<i32>,
) -> Vec<i16> {
    let r = client
        .send(
            3,
            AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txid(id))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(s(TOPIC)))
                    .with_partitions(partitions)]),
        )
        .await;
    r.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect()
}

async fn end_txn(
    client: &mut Client,
    version: i16,
    id: &str,
    pid: i64,
    epoch: i16,
    commit: bool,
) -> i16 {
    client
        .send(
            version,
            EndTxnRequest::default()
                .with_transactional_id(txid(id))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(commit),
        )
        .await
        .error_code
}

async fn log_end(client: &mut Client, partition: i32) -> i64 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let r = client
        .send(
            5,
            ListOffsetsRequest::default()
                .with_replica_id(kafka_protocol::messages::BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(s(TOPIC)))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(-1)])]),
        )
        .await;
    r.topics[0].partitions[0].offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_over_the_wire() {
    let broker = TestBroker::start_with(|c| {
        c.transactions.state_log_num_partitions = 3;
        c.transactions.max_timeout_ms = 60_000;
    })
    .await;
    let mut client = broker.client().await;
    create_topic(&mut client, TOPIC, 2).await;

    // FindCoordinator(TRANSACTION) names this broker (once the state topic is loaded).
    let mut found = None;
    for _ in 0..600 {
        let r = client
            .send(
                4,
                FindCoordinatorRequest::default()
                    .with_key_type(1)
                    .with_coordinator_keys(vec![s("tx-a")]),
            )
            .await;
        if r.coordinators[0].error_code == 0 {
            found = Some(r.coordinators[0].port);
            break;
        }
        assert_eq!(r.coordinators[0].error_code, 15, "{:?}", r.coordinators[0]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(found, Some(i32::from(broker.addr().port())));

    // A timeout above transaction.max.timeout.ms is refused; the id's epoch starts at 0.
    assert_eq!(init(&mut client, "tx-a", 60_001, 4).await.0, 50);
    let (code, pid, epoch) = init(&mut client, "tx-a", 10_000, 4).await;
    assert_eq!((code, epoch), (0, 0));
    // KIP-890 part 1: a transactional batch before AddPartitionsToTxn is refused...
    assert_eq!(
        produce(&mut client, Some("tx-a"), 0, txn_batch(pid, 0, 0, 2)).await,
        48
    );
    // ...and one without the request's transactional id is refused as Kafka does.
    assert_eq!(
        produce(&mut client, None, 0, txn_batch(pid, 0, 0, 2)).await,
        53
    );
    assert_eq!(
        add_partitions(&mut client, "tx-a", pid, 0, vec![0]).await,
        vec![0]
    );
    assert_eq!(
        produce(&mut client, Some("tx-a"), 0, txn_batch(pid, 0, 0, 2)).await,
        0
    );
    // Partition 1 is not in the transaction.
    assert_eq!(
        produce(&mut client, Some("tx-a"), 1, txn_batch(pid, 0, 0, 1)).await,
        48
    );

    // v4 verify_only, as a partition leader asks: partition 0 is in, 1 is not.
    let r = client
        .send(
            4,
            AddPartitionsToTxnRequest::default().with_transactions(vec![
                AddPartitionsToTxnTransaction::default()
                    .with_transactional_id(txid("tx-a"))
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(0)
                    .with_verify_only(true)
                    .with_topics(vec![AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(s(TOPIC)))
                        .with_partitions(vec![0, 1])]),
            ]),
        )
        .await;
    let codes: Vec<(i32, i16)> = r.results_by_transaction[0].topic_results[0]
        .results_by_partition
        .iter()
        .map(|p| (p.partition_index, p.partition_error_code))
        .collect();
    // Kafka's coordinator answers a partition not in the transaction TRANSACTION_ABORTABLE
    // (the leader maps it to INVALID_TXN_STATE for clients too old to know it).
    assert_eq!(codes, vec![(0, 0), (1, 120)]);
    // A topic named twice is answered once, its partitions in the order asked.
    let named_twice = |partitions: Vec<i32>| {
        AddPartitionsToTxnTopic::default()
            .with_name(TopicName(s(TOPIC)))
            .with_partitions(partitions)
    };
    let r = client
        .send(
            4,
            AddPartitionsToTxnRequest::default().with_transactions(vec![
                AddPartitionsToTxnTransaction::default()
                    .with_transactional_id(txid("tx-a"))
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(0)
                    .with_verify_only(true)
                    .with_topics(vec![named_twice(vec![1]), named_twice(vec![0, 1])]),
            ]),
        )
        .await;
    let topics = &r.results_by_transaction[0].topic_results;
    assert_eq!(topics.len(), 1);
    let codes: Vec<(i32, i16)> = topics[0]
        .results_by_partition
        .iter()
        .map(|p| (p.partition_index, p.partition_error_code))
        .collect();
    assert_eq!(codes, vec![(1, 120), (0, 0), (1, 120)]);

    // A stale epoch is PRODUCER_FENCED from EndTxn v2, INVALID_PRODUCER_EPOCH before.
    assert_eq!(end_txn(&mut client, 3, "tx-a", pid, 7, true).await, 90);
    assert_eq!(end_txn(&mut client, 1, "tx-a", pid, 7, true).await, 47);
    assert_eq!(end_txn(&mut client, 3, "tx-a", pid + 1, 0, true).await, 49);

    // Ongoing, with its partition, while open.
    let described = client
        .send(
            0,
            DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![txid("tx-a"), txid("tx-unknown")]),
        )
        .await;
    let d = &described.transaction_states[0];
    assert_eq!((d.error_code, d.transaction_state.as_str()), (0, "Ongoing"));
    assert_eq!(
        (d.producer_id.0, d.producer_epoch, d.transaction_timeout_ms),
        (pid, 0, 10_000)
    );
    assert_eq!(d.topics[0].partitions, vec![0]);
    assert_eq!(described.transaction_states[1].error_code, 105);

    // Commit: the marker follows the two records (offset 2), then CompleteCommit.
    assert_eq!(end_txn(&mut client, 3, "tx-a", pid, 0, true).await, 0);
    let mut state = String::new();
    for _ in 0..600 {
        let r = client
            .send(
                1,
                ListTransactionsRequest::default()
                    .with_state_filters(vec![s("CompleteCommit"), s("NoSuchState")])
                    .with_duration_filter(-1),
            )
            .await;
        assert_eq!(r.unknown_state_filters, vec![s("NoSuchState")]);
        if let Some(t) = r
            .transaction_states
            .iter()
            .find(|t| t.transactional_id.0.as_str() == "tx-a")
        {
            state = t.transaction_state.to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, "CompleteCommit");
    assert_eq!(log_end(&mut client, 0).await, 3);
    // The retried commit is answered NONE; an abort now is INVALID_TXN_STATE.
    assert_eq!(end_txn(&mut client, 3, "tx-a", pid, 0, true).await, 0);
    assert_eq!(end_txn(&mut client, 3, "tx-a", pid, 0, false).await, 48);
    // After the commit, a late batch of the finished transaction is refused (KIP-890).
    assert_eq!(
        produce(&mut client, Some("tx-a"), 0, txn_batch(pid, 0, 2, 1)).await,
        48
    );

    // A new InitProducerId bumps the epoch; the old epoch is fenced.
    let (code, pid2, epoch2) = init(&mut client, "tx-a", 10_000, 4).await;
    assert_eq!((code, pid2, epoch2), (0, pid, 1));
    assert_eq!(
        add_partitions(&mut client, "tx-a", pid, 0, vec![1]).await,
        vec![90]
    );
}

/// EndTxn v5: (error, producer id, producer epoch).
async fn end_txn_v5(
    client: &mut Client,
    id: &str,
    pid: i64,
    epoch: i16,
    commit: bool,
) -> (i16, i64, i16) {
    let r = client
        .send(
            5,
            EndTxnRequest::default()
                .with_transactional_id(txid(id))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(commit),
        )
        .await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// The log end offset of `partition` once it reaches `expected` (markers are written after
/// EndTxn answers).
async fn wait_log_end(client: &mut Client, partition: i32, expected: i64) -> i64 {
    let mut end = -1;
    for _ in 0..600 {
        end = log_end(client, partition).await;
        if end >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    end
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_version_2_over_the_wire() {
    let broker = TestBroker::start_with(|c| {
        c.transactions.state_log_num_partitions = 3;
    })
    .await;
    let mut client = broker.client().await;
    create_topic(&mut client, TOPIC, 2).await;
    // FindCoordinator(TRANSACTION) creates the state topic, as a client's first call does.
    for _ in 0..600 {
        let r = client
            .send(
                4,
                FindCoordinatorRequest::default()
                    .with_key_type(1)
                    .with_coordinator_keys(vec![s("tx-2")]),
            )
            .await;
        if r.coordinators[0].error_code == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, pid, epoch) = init(&mut client, "tx-2", 10_000, 5).await;
    assert_eq!((code, epoch), (0, 0));
    // Produce v12 from a version 2 producer: no AddPartitionsToTxn, the leader adds it.
    assert_eq!(
        produce_v(&mut client, 12, Some("tx-2"), 0, txn_batch(pid, 0, 0, 2)).await,
        0
    );
    let described = client
        .send(
            0,
            DescribeTransactionsRequest::default().with_transactional_ids(vec![txid("tx-2")]),
        )
        .await;
    let d = &described.transaction_states[0];
    assert_eq!(d.transaction_state.as_str(), "Ongoing");
    assert_eq!(d.topics[0].partitions, vec![0]);
    // EndTxn v5 names the bumped epoch; the marker (offset 2) is written with it.
    assert_eq!(
        end_txn_v5(&mut client, "tx-2", pid, 0, true).await,
        (0, pid, 1)
    );
    assert_eq!(wait_log_end(&mut client, 0, 3).await, 3);
    // A late batch of the ended transaction (the old epoch) is refused.
    assert_eq!(
        produce_v(&mut client, 12, Some("tx-2"), 0, txn_batch(pid, 0, 2, 1)).await,
        47
    );
    // The end's retry is answered with the epoch to continue with; an abort retried after
    // the commit is INVALID_TXN_STATE.
    assert_eq!(
        end_txn_v5(&mut client, "tx-2", pid, 0, true).await,
        (0, pid, 1)
    );
    assert_eq!(end_txn_v5(&mut client, "tx-2", pid, 0, false).await.0, 48);
    // The next transaction at the new epoch, its sequence from 0, then aborted.
    let mut code = -1;
    for _ in 0..600 {
        code = produce_v(&mut client, 12, Some("tx-2"), 1, txn_batch(pid, 1, 0, 1)).await;
        // NOT_ENOUGH_REPLICAS while the coordinator is busy: retriable.
        if code != 19 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(code, 0);
    assert_eq!(
        end_txn_v5(&mut client, "tx-2", pid, 1, false).await,
        (0, pid, 2)
    );
    assert_eq!(wait_log_end(&mut client, 1, 2).await, 2);
    // EndTxn v4 from this id now is a version 1 end: nothing open, INVALID_TXN_STATE.
    assert_eq!(end_txn(&mut client, 4, "tx-2", pid, 2, true).await, 48);
}
