//! Every record of a produced batch is validated, compressed or not, on every topic:
//! batches whose records lie about their structure are refused with Kafka's
//! INVALID_RECORD, `record_errors` naming the record, and nothing of them is stored; a
//! record's own timestamp out of range is INVALID_TIMESTAMP, a keyless record on a
//! compacted topic INVALID_RECORD, each naming the record.

mod common;

use bytes::Bytes;
use common::{now_ms, values, Client, TestBroker};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_records::{frame_records_section, BatchHeader, Compression, MAGIC_V2};

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

async fn create_topic(client: &mut Client, topic: &str, configs: &[(&str, &str)]) {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect();
    let response = client
        .send(
            7,
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(configs)]),
        )
        .await;
    assert_eq!(response.topics[0].error_code, 0);
}

async fn produce(client: &mut Client, topic: &str, batch: Vec<u8>) -> PartitionProduceResponse {
    let response = client
        .send(
            9,
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name(topic))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch)))])]),
        )
        .await;
    response.responses[0].partition_responses[0].clone()
}

async fn stored_values(client: &mut Client, topic: &str) -> Vec<String> {
    let response = client
        .send(
            12,
            FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(name(topic))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20)])]),
        )
        .await;
    let data = &response.responses[0].partitions[0];
    assert_eq!(data.error_code, 0);
    values(&data.records.clone().unwrap_or_default())
}

fn varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// A record's fields as written, each free to lie.
#[derive(Clone)]
struct Fields {
    timestamp_delta: i64,
    offset_delta: i64,
    key_length: Option<i64>,
    key: Vec<u8>,
    value: Vec<u8>,
    header_count: i64,
    /// Added to the true body length.
    length_error: i64,
}

fn good(offset_delta: i64, value: &str) -> Fields {
    Fields {
        timestamp_delta: 0,
        offset_delta,
        key_length: None,
        key: b"key".to_vec(),
        value: value.as_bytes().to_vec(),
        header_count: 0,
        length_error: 0,
    }
}

fn encode(f: &Fields) -> Vec<u8> {
    let mut body = vec![0u8];
    varint(&mut body, f.timestamp_delta);
    varint(&mut body, f.offset_delta);
    varint(&mut body, f.key_length.unwrap_or(f.key.len() as i64));
    body.extend_from_slice(&f.key);
    varint(&mut body, f.value.len() as i64);
    body.extend_from_slice(&f.value);
    varint(&mut body, f.header_count);
    let mut out = Vec::new();
    varint(&mut out, body.len() as i64 + f.length_error);
    out.extend_from_slice(&body);
    out
}

fn frame(records: &[Fields], records_count: i32, trailing: &[u8], codec: Compression) -> Vec<u8> {
    let mut section: Vec<u8> = records.iter().flat_map(encode).collect();
    section.extend_from_slice(trailing);
    let now = now_ms();
    let template = BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: -1,
        magic: MAGIC_V2,
        crc: 0,
        attributes: 0,
        last_offset_delta: records_count - 1,
        base_timestamp: now,
        max_timestamp: now,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records_count,
    };
    frame_records_section(&template, codec, &section).unwrap()
}

#[tokio::test]
async fn lying_records_are_refused_naming_the_record_and_never_stored() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "plain", &[]).await;
    // (what lies, the second record's fields, records_count, trailing bytes, record named)
    let lie = |f: fn(&mut Fields)| {
        let mut fields = good(1, "bad");
        f(&mut fields);
        fields
    };
    let cases: Vec<(&str, Fields, i32, &[u8], i32)> = vec![
        (
            "header count 2^31-1",
            lie(|f| f.header_count = i64::from(i32::MAX)),
            2,
            b"",
            1,
        ),
        ("header count -5", lie(|f| f.header_count = -5), 2, b"", 1),
        ("key length -5", lie(|f| f.key_length = Some(-5)), 2, b"", 1),
        (
            "record length one too long",
            lie(|f| f.length_error = 1),
            2,
            b"",
            1,
        ),
        (
            "record length negative",
            lie(|f| f.length_error = -1000),
            2,
            b"",
            1,
        ),
        (
            "offset delta 5 at position 1",
            lie(|f| f.offset_delta = 5),
            2,
            b"",
            1,
        ),
        ("three records claimed", good(1, "bad"), 3, b"", 2),
        ("bytes after the records", good(1, "bad"), 2, b"\x00\x00", 0),
    ];
    let mut expected = Vec::new();
    for codec in [Compression::None, Compression::Zstd, Compression::Gzip] {
        for (what, second, count, trailing, named) in &cases {
            let batch = frame(&[good(0, "bad"), second.clone()], *count, trailing, codec);
            let response = produce(&mut client, "plain", batch).await;
            assert_eq!(response.error_code, 87, "{what} ({codec:?}): {response:?}");
            assert_eq!(response.base_offset, -1);
            assert_eq!(
                response.record_errors.len(),
                1,
                "{what} ({codec:?}): {response:?}"
            );
            assert_eq!(
                response.record_errors[0].batch_index, *named,
                "{what} ({codec:?})"
            );
            assert!(response.error_message.is_some());
        }
        let value = format!("good-{codec:?}");
        let response = produce(
            &mut client,
            "plain",
            frame(&[good(0, &value), good(1, &value)], 2, b"", codec),
        )
        .await;
        assert_eq!(response.error_code, 0, "{codec:?}: {response:?}");
        expected.extend([value.clone(), value]);
    }
    assert_eq!(stored_values(&mut client, "plain").await, expected);
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn record_rules_name_the_record() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "compacted", &[("cleanup.policy", "compact")]).await;
    create_topic(
        &mut client,
        "recent",
        &[("message.timestamp.before.max.ms", "60000")],
    )
    .await;
    for codec in [Compression::None, Compression::Lz4] {
        let mut keyless = good(2, "v");
        keyless.key_length = Some(-1);
        keyless.key.clear();
        let batch = frame(&[good(0, "v"), good(1, "v"), keyless], 3, b"", codec);
        let response = produce(&mut client, "compacted", batch.clone()).await;
        assert_eq!(response.error_code, 87, "{codec:?}: {response:?}");
        assert_eq!(response.record_errors[0].batch_index, 2);
        // The same batch is fine where keys are not required.
        assert_eq!(produce(&mut client, "recent", batch).await.error_code, 0);

        let mut old = good(1, "old");
        old.timestamp_delta = -3_600_000;
        let batch = frame(&[good(0, "new"), old], 2, b"", codec);
        let response = produce(&mut client, "recent", batch).await;
        assert_eq!(response.error_code, 32, "{codec:?}: {response:?}");
        assert_eq!(response.record_errors[0].batch_index, 1);
    }
    assert!(stored_values(&mut client, "compacted").await.is_empty());
    assert_eq!(stored_values(&mut client, "recent").await.len(), 6);
    broker.broker.shutdown().await;
}
