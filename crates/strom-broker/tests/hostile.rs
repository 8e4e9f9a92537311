//! Requests that decode but carry hostile values: extreme offsets, sizes, counts and
//! epochs. Each gets a Kafka error (or an empty answer), never a crash, and the broker
//! keeps serving.

mod common;

use bytes::Bytes;
use common::{batch, TestBroker};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_topic_partitions_request::Cursor;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_records::Compression;

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

#[tokio::test]
async fn hostile_values_get_errors_not_crashes() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let response = client
        .send(
            7,
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name("h"))
                .with_num_partitions(1)
                .with_replication_factor(1)]),
        )
        .await;
    assert_eq!(response.topics[0].error_code, 0);
    let response = client
        .send(
            7,
            CreateTopicsRequest::default().with_topics(vec![
                CreatableTopic::default()
                    .with_name(name("huge"))
                    .with_num_partitions(i32::MAX)
                    .with_replication_factor(1),
                CreatableTopic::default()
                    .with_name(name("neg"))
                    .with_num_partitions(-7)
                    .with_replication_factor(i16::MAX),
                CreatableTopic::default()
                    .with_name(name(&"x".repeat(300)))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]),
        )
        .await;
    assert!(
        response.topics.iter().all(|t| t.error_code != 0),
        "{response:?}"
    );

    for (partition, offset, max_bytes) in [
        (-1, 0, 100),
        (i32::MAX, 0, 100),
        (0, i64::MIN, 100),
        (0, i64::MAX, 100),
        (0, 0, i32::MIN),
        (0, 0, i32::MAX),
    ] {
        let response = client
            .send(
                12,
                FetchRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_max_wait_ms(i32::MAX)
                    .with_min_bytes(i32::MIN)
                    .with_max_bytes(max_bytes)
                    .with_session_epoch(-1)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic(name("h"))
                        .with_partitions(vec![FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_current_leader_epoch(i32::MIN)
                            .with_partition_max_bytes(max_bytes)])]),
            )
            .await;
        assert_eq!(response.responses.len(), 1);
    }
    for timestamp in [i64::MIN, -5, -4, i64::MAX] {
        let response = client
            .send(
                7,
                ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
                    .with_name(name("h"))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_current_leader_epoch(i32::MAX)
                        .with_timestamp(timestamp)])]),
            )
            .await;
        assert_eq!(response.topics[0].partitions.len(), 1);
    }
    for offset in [i64::MIN, -2, i64::MAX] {
        let response = client
            .send(
                2,
                DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(name("h"))
                    .with_partitions(vec![DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(offset)])]),
            )
            .await;
        assert_ne!(response.topics[0].partitions[0].error_code, 0, "{offset}");
    }
    let response = client
        .send(
            3,
            CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name("h"))
                .with_count(i32::MAX)
                .with_assignments(None)]),
        )
        .await;
    assert_ne!(response.results[0].error_code, 0);
    let response = client
        .send(
            0,
            DescribeTopicPartitionsRequest::default()
                .with_response_partition_limit(i32::MIN)
                .with_cursor(Some(
                    Cursor::default()
                        .with_topic_name(name("h"))
                        .with_partition_index(i32::MIN),
                )),
        )
        .await;
    assert_eq!(response.topics.len(), 1);
    // An empty or garbage records field.
    for records in [
        None,
        Some(Bytes::new()),
        Some(Bytes::from_static(&[0xff; 70])),
    ] {
        let response = client
            .send(
                9,
                ProduceRequest::default().with_acks(1).with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(name("h"))
                        .with_partition_data(vec![PartitionProduceData::default()
                            .with_index(0)
                            .with_records(records)]),
                ]),
            )
            .await;
        assert_ne!(response.responses[0].partition_responses[0].error_code, 0);
    }
    // Two batches in one partition's records are refused whole (Kafka allows one).
    let mut two = batch(0, 1, Compression::None);
    two.extend(batch(1, 1, Compression::None));
    let response = client
        .send(
            9,
            ProduceRequest::default().with_acks(1).with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(name("h"))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(two)))]),
            ]),
        )
        .await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 87);
    // A keyless record on a compacted topic is INVALID_RECORD; keyed ones are fine.
    let response = client
        .send(
            7,
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name("compacted"))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(vec![
                    kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default(
                    )
                    .with_name(StrBytes::from_static_str("cleanup.policy"))
                    .with_value(Some(StrBytes::from_static_str("compact"))),
                ])]),
        )
        .await;
    assert_eq!(response.topics[0].error_code, 0);
    let now = common::now_ms();
    let mut keyless = strom_records::BatchBuilder::new(0, now).compression(Compression::Gzip);
    keyless
        .append(
            now,
            Some(Bytes::from_static(b"k")),
            Some(Bytes::from_static(b"v")),
            vec![],
        )
        .unwrap();
    keyless
        .append(now, None, Some(Bytes::from_static(b"v")), vec![])
        .unwrap();
    for (records, expected) in [
        (keyless.build().unwrap(), 87),
        (batch(0, 3, Compression::Lz4), 0),
    ] {
        let response = client
            .send(
                9,
                ProduceRequest::default().with_acks(1).with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(name("compacted"))
                        .with_partition_data(vec![PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(Bytes::from(records)))]),
                ]),
            )
            .await;
        assert_eq!(
            response.responses[0].partition_responses[0].error_code,
            expected
        );
    }
    // Still serving, nothing was appended.
    let response = client
        .send(
            7,
            ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
                .with_name(name("h"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)])]),
        )
        .await;
    assert_eq!(response.topics[0].partitions[0].offset, 0);
    broker.broker.shutdown().await;
}
