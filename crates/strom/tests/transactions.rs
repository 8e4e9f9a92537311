//! Transactions on the partition log, against the real binary, without a transaction
//! coordinator: transactional batches are produced with a raw protocol client, markers are
//! written with WriteTxnMarkers (as the coordinator does), and a real read_committed client
//! (kcat, librdkafka) reads. An open transaction holds back read_committed readers (the
//! last stable offset) but not read_uncommitted ones; aborted records are skipped, committed
//! ones seen; Kafka's marker checks answer as Kafka does; after `kill -9` and a restart the
//! aborted list and the LSO are the same (rebuilt from the log), after a clean restart too
//! (from the producer snapshot), and with a damaged snapshot (reported, rebuilt from the log).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::kafka::KafkaClient;
use common::{broker_overrides, free_ports, kcat, strom_cli, ServerProcess};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_records::BatchBuilder;
use strom_test_support::now_ms;

const TOPIC: &str = "txn-log";
const INVALID_PRODUCER_EPOCH: i16 = 47;
const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

/// One batch of `values`: plain (`producer` None) or transactional for (id, epoch, seq).
fn batch(values: &[&str], producer: Option<(i64, i16, i32)>) -> Bytes {
    let now = now_ms();
    let mut builder = BatchBuilder::new(0, now);
    if let Some((id, epoch, sequence)) = producer {
        builder = builder.producer(id, epoch, sequence).transactional(true);
    }
    for value in values {
        builder
            .append(now, None, Some(Bytes::from(value.to_string())), Vec::new())
            .unwrap();
    }
    Bytes::from(builder.build().unwrap())
}

/// Produces one batch with acks=all; asserts it was accepted.
fn produce(client: &mut KafkaClient, records: Bytes) {
    let code = produce_as(client, 9, "raw-test", records);
    assert_eq!(code, 0, "produce");
}

/// Produces one batch at `version` for `transactional_id`; the partition's error code.
fn produce_as(
    client: &mut KafkaClient,
    version: i16,
    transactional_id: &str,
    records: Bytes,
) -> i16 {
    let request = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(
            transactional_id.to_string(),
        ))))
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(TOPIC))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let response = client.send(version, request).unwrap();
    response.responses[0].partition_responses[0].error_code
}

/// WriteTxnMarkers v1 for one producer on `partitions` of the topic; the error codes.
fn write_marker(
    client: &mut KafkaClient,
    producer: (i64, i16),
    commit: bool,
    coordinator_epoch: i32,
    partitions: &[i32],
) -> Vec<i16> {
    write_marker_at(
        client,
        (1, 0),
        producer,
        commit,
        coordinator_epoch,
        partitions,
    )
}

/// WriteTxnMarkers at (request version, the marker's transaction version); the error codes.
fn write_marker_at(
    client: &mut KafkaClient,
    (version, transaction_version): (i16, i8),
    producer: (i64, i16),
    commit: bool,
    coordinator_epoch: i32,
    partitions: &[i32],
) -> Vec<i16> {
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_transaction_result(commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_transaction_version(transaction_version)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(name(TOPIC))
                .with_partition_indexes(partitions.to_vec())])]);
    let response = client.send(version, request).unwrap();
    assert_eq!(response.markers.len(), 1);
    assert_eq!(response.markers[0].producer_id.0, producer.0);
    response.markers[0].topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// What a read_committed Fetch (v12) from offset 0 reports: (high watermark, last stable
/// offset, aborted transactions as (producer id, first offset)).
fn fetch_committed(client: &mut KafkaClient) -> (i64, i64, Vec<(i64, i64)>) {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response = client.send(12, request).unwrap();
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let aborted = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    (p.high_watermark, p.last_stable_offset, aborted)
}

/// ListOffsets LATEST (v7) under `isolation_level`.
fn latest(client: &mut KafkaClient, isolation_level: i8) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(TOPIC))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let response = client.send(7, request).unwrap();
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

/// DescribeProducers: (producer id, epoch, current transaction start offset) of partition 0.
fn producers(client: &mut KafkaClient) -> Vec<(i64, i32, i64)> {
    let request = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(name(TOPIC))
            .with_partition_indexes(vec![0]),
    ]);
    let response = client.send(0, request).unwrap();
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let mut found: Vec<_> = p
        .active_producers
        .iter()
        .map(|s| {
            (
                s.producer_id.0,
                s.producer_epoch,
                s.current_txn_start_offset,
            )
        })
        .collect();
    found.sort();
    found
}

/// Every value kcat (librdkafka) reads from the beginning to the end of the partition
/// under `isolation` (for read_committed the end is the last stable offset).
fn consume(addr: &str, isolation: &str) -> Vec<String> {
    let isolation = format!("isolation.level={isolation}");
    kcat(
        &[
            "-b",
            addr,
            "-C",
            "-t",
            TOPIC,
            "-o",
            "beginning",
            "-e",
            "-f",
            "%s\n",
            "-X",
            &isolation,
        ],
        "",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// Connects, retrying while a restarted broker loads its partitions.
fn connect(addr: &str) -> KafkaClient {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match KafkaClient::connect(addr) {
            Ok(client) => return client,
            Err(error) if std::time::Instant::now() > deadline => panic!("connect: {error}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Polls (bounded) until the partition is led again after a restart: a read_committed
/// Fetch answers without error.
fn wait_led(addr: &str) -> KafkaClient {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut client = connect(addr);
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_bytes(1024)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name(TOPIC))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_partition_max_bytes(1024)])]);
        if let Ok(response) = client.send(12, request) {
            let p = &response.responses[0].partitions[0];
            if p.error_code == 0 && p.high_watermark >= 0 {
                return client;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "partition not led again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A broker of its own with `extra` overrides and `TOPIC` (one partition) created: its data
/// directory (kept alive by the caller), address, overrides and process.
fn start_with_topic(extra: &[&str]) -> (tempfile::TempDir, String, Vec<String>, ServerProcess) {
    let data = tempfile::tempdir().unwrap();
    let port = free_ports(1)[0];
    let addr = format!("127.0.0.1:{port}");
    let overrides = broker_overrides(port, data.path(), extra);
    let server = ServerProcess::start(&overrides, &addr);
    strom_cli(&["topics", "create", TOPIC, "--partitions", "1", "-b", &addr]);
    (data, addr, overrides, server)
}

/// Transactions opened by hand, without a coordinator: KIP-890 verification off.
const NO_VERIFICATION: &str = "transaction.partition.verification.enable=false";

#[test]
fn read_committed_sees_only_committed_records_across_kill_9() {
    let (data, addr, overrides, mut server) = start_with_topic(&[NO_VERIFICATION]);
    let mut client = connect(&addr);

    // Offsets: p0 0, a1 a2 1-2 (producer 1000, open), p1 3.
    produce(&mut client, batch(&["p0"], None));
    produce(&mut client, batch(&["a1", "a2"], Some((1000, 0, 0))));
    produce(&mut client, batch(&["p1"], None));
    // An open transaction holds read_committed back at its first offset, not
    // read_uncommitted.
    assert_eq!(consume(&addr, "read_committed"), ["p0"]);
    assert_eq!(consume(&addr, "read_uncommitted"), ["p0", "a1", "a2", "p1"]);
    assert_eq!(fetch_committed(&mut client), (4, 1, vec![]));
    assert_eq!(latest(&mut client, 1), 1);
    assert_eq!(latest(&mut client, 0), 4);
    assert_eq!(producers(&mut client), [(1000, 0, 1)]);

    // ABORT at 4. Then Kafka's checks: an older coordinator epoch is fenced, an unknown
    // partition is named.
    assert_eq!(write_marker(&mut client, (1000, 0), false, 5, &[0]), [0]);
    assert_eq!(
        write_marker(&mut client, (1000, 0), false, 4, &[0, 7]),
        [TRANSACTION_COORDINATOR_FENCED, UNKNOWN_TOPIC_OR_PARTITION]
    );
    assert_eq!(fetch_committed(&mut client), (5, 5, vec![(1000, 1)]));
    assert_eq!(consume(&addr, "read_committed"), ["p0", "p1"]);

    // Producer 2000 (epoch 3) commits c1 c2 (5-6, marker 7); a marker of its older epoch
    // is INVALID_PRODUCER_EPOCH.
    produce(&mut client, batch(&["c1", "c2"], Some((2000, 3, 0))));
    assert_eq!(
        write_marker(&mut client, (2000, 2), true, 5, &[0]),
        [INVALID_PRODUCER_EPOCH]
    );
    assert_eq!(write_marker(&mut client, (2000, 3), true, 5, &[0]), [0]);
    // Producer 3000 leaves o1 (8) open; p2 (9) after it.
    produce(&mut client, batch(&["o1"], Some((3000, 0, 0))));
    produce(&mut client, batch(&["p2"], None));
    let committed = ["p0", "p1", "c1", "c2"];
    assert_eq!(consume(&addr, "read_committed"), committed);
    assert_eq!(
        consume(&addr, "read_uncommitted"),
        ["p0", "a1", "a2", "p1", "c1", "c2", "o1", "p2"]
    );
    assert_eq!(fetch_committed(&mut client), (10, 8, vec![(1000, 1)]));
    drop(client);

    // kill -9 and restart: the aborted list, the open transaction and the LSO are back.
    server.kill();
    let _server = ServerProcess::start(&overrides, &addr);
    let mut client = wait_led(&addr);
    assert_eq!(fetch_committed(&mut client), (10, 8, vec![(1000, 1)]));
    assert_eq!(latest(&mut client, 1), 8);
    assert_eq!(consume(&addr, "read_committed"), committed);
    assert_eq!(
        producers(&mut client),
        [(1000, 0, -1), (2000, 3, -1), (3000, 0, 8)]
    );

    // The open transaction aborts after the restart: o1 is skipped, p2 is seen.
    assert_eq!(write_marker(&mut client, (3000, 0), false, 5, &[0]), [0]);
    assert_eq!(
        fetch_committed(&mut client),
        (11, 11, vec![(1000, 1), (3000, 8)])
    );
    assert_eq!(
        consume(&addr, "read_committed"),
        ["p0", "p1", "c1", "c2", "p2"]
    );
    let expected = (11, 11, vec![(1000, 1), (3000, 8)]);
    drop(client);

    // A clean shutdown leaves a producer snapshot at the log end; the restart uses it.
    drop(_server);
    let mut server = ServerProcess::start(&overrides, &addr);
    assert!(server.terminate(), "clean shutdown");
    let partition_dir = data.path().join(format!("{TOPIC}-0"));
    let snapshot = partition_dir.join(format!("{:020}.snapshot", 11));
    assert!(
        snapshot.exists(),
        "no snapshot at the log end after a clean shutdown"
    );
    let server = ServerProcess::start_logged(&overrides, &addr);
    let mut client = wait_led(&addr);
    assert_eq!(fetch_committed(&mut client), expected);
    assert!(!server.log().contains("producer snapshot damaged"));
    drop(client);
    drop(server);

    // A damaged snapshot is reported and not used: the state is rebuilt from the log.
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&snapshot, &bytes).unwrap();
    let server = ServerProcess::start_logged(&overrides, &addr);
    let mut client = wait_led(&addr);
    assert_eq!(fetch_committed(&mut client), expected);
    assert_eq!(
        consume(&addr, "read_committed"),
        ["p0", "p1", "c1", "c2", "p2"]
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.log().contains("producer snapshot damaged") {
        assert!(
            std::time::Instant::now() < deadline,
            "damage not reported: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// KIP-1228: WriteTxnMarkers v2 names the marker's transaction version, and the leader
/// checks the marker's producer epoch by it, as Kafka 4.2's `ProducerAppendInfo`: at
/// version 2 the coordinator bumped the epoch for this end, so a marker not newer than the
/// producer's epoch is INVALID_PRODUCER_EPOCH, except the retry of a marker already written
/// (nothing open: written again, ending nothing); below 2 (and in v1 requests) a marker at
/// the data's epoch is accepted. ApiVersions advertises WriteTxnMarkers 1-2.
#[test]
fn version_2_markers_are_checked_by_their_transaction_version() {
    let (_data, addr, _, _server) = start_with_topic(&[NO_VERIFICATION]);
    let mut client = connect(&addr);
    let versions = client
        .send(2, ApiVersionsRequest::default())
        .unwrap()
        .api_keys
        .into_iter()
        .find(|k| k.api_key == ApiKey::WriteTxnMarkers as i16)
        .map(|k| (k.min_version, k.max_version));
    assert_eq!(versions, Some((1, 2)));
    const V2_TV2: (i16, i8) = (2, 2);

    // Producer 4000 opens a transaction at epoch 3 (t1, offset 0).
    produce(&mut client, batch(&["t1"], Some((4000, 3, 0))));
    // Version 2: the data's epoch and older are refused; nothing is written.
    for epoch in [2, 3] {
        assert_eq!(
            write_marker_at(&mut client, V2_TV2, (4000, epoch), true, 1, &[0]),
            [INVALID_PRODUCER_EPOCH],
            "epoch {epoch}"
        );
    }
    assert_eq!(fetch_committed(&mut client), (1, 0, vec![]));
    // The bumped epoch commits (marker at 1).
    assert_eq!(
        write_marker_at(&mut client, V2_TV2, (4000, 4), true, 1, &[0]),
        [0]
    );
    assert_eq!(fetch_committed(&mut client), (2, 2, vec![]));
    // Its retry (a lost response, a reloaded coordinator) is written again and ends nothing.
    assert_eq!(
        write_marker_at(&mut client, V2_TV2, (4000, 4), true, 1, &[0]),
        [0]
    );
    assert_eq!(fetch_committed(&mut client), (3, 3, vec![]));
    assert_eq!(producers(&mut client), [(4000, 4, -1)]);

    // The next transaction at the bumped epoch (t2, offset 3): a late marker of the ended
    // one, at that same epoch, would end it and is refused at version 2.
    produce(&mut client, batch(&["t2"], Some((4000, 4, 0))));
    assert_eq!(
        write_marker_at(&mut client, V2_TV2, (4000, 4), false, 1, &[0]),
        [INVALID_PRODUCER_EPOCH]
    );
    assert_eq!(fetch_committed(&mut client), (4, 3, vec![]));
    // Below version 2, the data's epoch is what a marker carries: the same marker with
    // transaction version 0 or 1 (v2), or in a v1 request, is accepted; an older one not.
    assert_eq!(
        write_marker_at(&mut client, (2, 1), (4000, 3), false, 1, &[0]),
        [INVALID_PRODUCER_EPOCH]
    );
    assert_eq!(
        write_marker_at(&mut client, (2, 0), (4000, 4), false, 1, &[0]),
        [0]
    );
    assert_eq!(fetch_committed(&mut client), (5, 5, vec![(4000, 3)]));
    produce(&mut client, batch(&["t3"], Some((4000, 4, 1))));
    assert_eq!(write_marker(&mut client, (4000, 4), true, 1, &[0]), [0]);
    assert_eq!(fetch_committed(&mut client), (7, 7, vec![(4000, 3)]));
    assert_eq!(consume(&addr, "read_committed"), ["t1", "t3"]);
}

/// KIP-890 part 1 with the coordinator: a transactional batch for a partition that is not
/// in the producer's transaction is refused before it is appended, with Kafka's code for
/// the client's Produce version: TRANSACTION_ABORTABLE (120) from v11 (the client can abort
/// and go on), INVALID_TXN_STATE (48) before; once AddPartitionsToTxn added it, accepted.
#[test]
fn an_unverified_batch_is_transaction_abortable_for_clients_that_know_it() {
    const TRANSACTION_ABORTABLE: i16 = 120;
    const INVALID_TXN_STATE: i16 = 48;
    let (_data, addr, _, _server) = start_with_topic(&[]);
    let mut client = connect(&addr);
    let txid = "abortable-test";
    // FindCoordinator creates `__transaction_state`; InitProducerId is retried (bounded)
    // while its partition loads.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (producer_id, epoch) = loop {
        let find = FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![StrBytes::from_static_str(txid)]);
        let found = client.send(4, find).unwrap();
        let init = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str(txid))))
            .with_transaction_timeout_ms(60_000);
        let answer = client.send(4, init).unwrap();
        if found.coordinators[0].error_code == 0 && answer.error_code == 0 {
            break (answer.producer_id.0, answer.producer_epoch);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no coordinator: {found:?} {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let first = || batch(&["x"], Some((producer_id, epoch, 0)));
    // No AddPartitionsToTxn: the coordinator says the partition is not in the transaction.
    assert_eq!(
        produce_as(&mut client, 10, txid, first()),
        INVALID_TXN_STATE
    );
    assert_eq!(
        produce_as(&mut client, 11, txid, first()),
        TRANSACTION_ABORTABLE
    );
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_static_str(txid)))
        .with_v3_and_below_producer_id(ProducerId(producer_id))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(name(TOPIC))
                .with_partitions(vec![0]),
        ]);
    let added = client.send(3, add).unwrap();
    let code = added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code;
    assert_eq!(code, 0, "{added:?}");
    assert_eq!(produce_as(&mut client, 11, txid, first()), 0);
    // Nothing was appended by the refused batches: the one record is at offset 0.
    assert_eq!(latest(&mut client, 0), 1);
}
