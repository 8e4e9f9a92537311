//! The connection's pipelining of sync-on-commit produce requests: requests sent back to
//! back on one connection are appended in arrival order, answered in order, and consumers
//! see only what was committed; other requests queued behind them keep their order too.

mod common;

use bytes::{Buf, Bytes};
use common::{batch, values, Client, TestBroker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use strom_log::Durability;
use strom_records::Compression;

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

fn produce_request(topic: &str, first: usize, count: usize) -> ProduceRequest {
    produce_to(topic, 0, first, count)
}

fn produce_to(topic: &str, partition: i32, first: usize, count: usize) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(batch(
                    first,
                    count,
                    Compression::None,
                ))))])])
}

async fn create_topic(client: &mut Client, topic: &str, partitions: i32) {
    let created = client
        .send(
            7,
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(-1)]),
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
}

fn fetch_request(topic: &str, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

#[tokio::test]
async fn pipelined_sync_on_commit_produces_are_answered_in_order() {
    let broker = TestBroker::start_with(|config| {
        config.log_defaults.durability = Durability::SyncOnCommit;
    })
    .await;
    assert!(broker.broker.context().config.sync_on_commit());
    let mut client = broker.client().await;
    create_topic(&mut client, "p", 1).await;

    // More requests than the pipeline holds, all written before any answer is read, with
    // a Fetch in the middle that must see the produces before it (and be answered in its
    // place).
    const PRODUCES: usize = strom_broker::connection::PIPELINE_DEPTH_MAX + 20;
    let mut sent = Vec::new();
    for i in 0..PRODUCES {
        if i == 20 {
            let id = client.send_only(11, &fetch_request("p", 0)).await;
            sent.push((ApiKey::Fetch, id));
        }
        let id = client.send_only(9, &produce_request("p", i * 3, 3)).await;
        sent.push((ApiKey::Produce, id));
    }
    let mut next_offset = 0i64;
    for (api, id) in sent {
        let version = if api == ApiKey::Fetch { 11 } else { 9 };
        let (correlation_id, mut body) = client.read_frame(api, version).await;
        assert_eq!(correlation_id, id, "answers come in request order");
        if api == ApiKey::Fetch {
            let response = FetchResponse::decode(&mut body, version).unwrap();
            let data = &response.responses[0].partitions[0];
            assert_eq!(data.error_code, 0);
            let seen = values(data.records.as_ref().unwrap());
            assert_eq!(
                seen.len(),
                60,
                "the 20 produces before the fetch are committed"
            );
            assert_eq!(data.high_watermark, 60);
            continue;
        }
        let response = ProduceResponse::decode(&mut body, version).unwrap();
        assert_eq!(body.remaining(), 0);
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0);
        assert_eq!(
            partition.base_offset, next_offset,
            "appended in arrival order"
        );
        next_offset += 3;
    }
    let fetched = client.send(11, fetch_request("p", 0)).await;
    let data = &fetched.responses[0].partitions[0];
    assert_eq!(data.high_watermark, (PRODUCES * 3) as i64);
    let expected: Vec<String> = (0..PRODUCES * 3).map(|n| format!("value-{n}")).collect();
    assert_eq!(values(data.records.as_ref().unwrap()), expected);
    broker.broker.shutdown().await;
}

/// The syncer's promise, seen from outside: with several connections producing pipelined
/// requests to several partitions at once, every answer arrives only once the partition's
/// log is durable and its high watermark past the answered records.
#[tokio::test]
async fn concurrent_sync_on_commit_answers_cover_only_durable_records() {
    let broker = TestBroker::start_with(|config| {
        config.log_defaults.durability = Durability::SyncOnCommit;
    })
    .await;
    let mut admin = broker.client().await;
    create_topic(&mut admin, "many", 3).await;
    let image = broker.broker.context().metadata.image();
    let topic_id = image.topic_by_name("many").unwrap().topic_id;

    const CONNECTIONS: usize = 4;
    const REQUESTS: usize = 40;
    let mut producers = Vec::new();
    for connection in 0..CONNECTIONS {
        let mut client = broker.client().await;
        let context = std::sync::Arc::clone(broker.broker.context());
        producers.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for i in 0..REQUESTS {
                let partition = ((connection + i) % 3) as i32;
                let id = client
                    .send_only(9, &produce_to("many", partition, i * 2, 2))
                    .await;
                sent.push((id, partition));
            }
            for (id, partition) in sent {
                let (correlation_id, mut body) = client.read_frame(ApiKey::Produce, 9).await;
                assert_eq!(correlation_id, id);
                let response = ProduceResponse::decode(&mut body, 9).unwrap();
                let answer = &response.responses[0].partition_responses[0];
                assert_eq!(answer.error_code, 0);
                let end = answer.base_offset + 2;
                let tp = strom_meta::TopicIdPartition {
                    topic_id,
                    partition,
                };
                let log = &context.replicas.get(tp).unwrap().log;
                assert!(log.durable_offset() >= end, "answered before its fsync");
                assert!(
                    log.high_watermark() >= end,
                    "answered before the high watermark"
                );
            }
        }));
    }
    for producer in producers {
        producer.await.unwrap();
    }
    let total: i64 = (0..3)
        .map(|partition| {
            let tp = strom_meta::TopicIdPartition {
                topic_id,
                partition,
            };
            broker
                .broker
                .context()
                .replicas
                .get(tp)
                .unwrap()
                .log
                .high_watermark()
        })
        .sum();
    assert_eq!(total, (CONNECTIONS * REQUESTS * 2) as i64);
    broker.broker.shutdown().await;
}
