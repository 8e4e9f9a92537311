//! Every record of a produced batch is validated, compressed or not, on every topic:
//! batches whose records lie about their structure are refused with Kafka's
//! INVALID_RECORD without `record_errors` (Kafka's record iterator throws; the message
//! names the record), and nothing of them is stored. Kafka's per-record rules refuse the
//! whole batch and list every record that broke them in `record_errors`: a record's own
//! timestamp out of range (INVALID_TIMESTAMP), a keyless record on a compacted topic
//! (INVALID_RECORD); a response lists at most 10,000.

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
    // (what lies, the second record's fields, records_count, trailing bytes, the record
    // the message names: -1 for none)
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
        (
            "bytes after the records",
            good(1, "bad"),
            2,
            b"\x00\x00",
            -1,
        ),
    ];
    let mut expected = Vec::new();
    for codec in [Compression::None, Compression::Zstd, Compression::Gzip] {
        for (what, second, count, trailing, named) in &cases {
            let batch = frame(&[good(0, "bad"), second.clone()], *count, trailing, codec);
            let response = produce(&mut client, "plain", batch).await;
            assert_eq!(response.error_code, 87, "{what} ({codec:?}): {response:?}");
            assert_eq!(response.base_offset, -1);
            assert!(
                response.record_errors.is_empty(),
                "{what} ({codec:?}): {response:?}"
            );
            // The message names the broken record (-1: none is, the batch is).
            let message = response.error_message.as_ref().map(|m| m.to_string());
            let mentions = |m: &str| *named < 0 || m.contains(&format!("record {named}"));
            assert!(
                message.as_deref().is_some_and(mentions),
                "{what} ({codec:?}): {message:?}"
            );
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

/// (batch_index, message) of each record error.
fn record_errors(response: &PartitionProduceResponse) -> Vec<(i32, String)> {
    response
        .record_errors
        .iter()
        .map(|e| {
            let message = e.batch_index_error_message.as_ref().map(|m| m.to_string());
            (e.batch_index, message.unwrap_or_default())
        })
        .collect()
}

#[tokio::test]
async fn record_rules_list_every_refused_record() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(
        &mut client,
        "compacted",
        &[
            ("cleanup.policy", "compact"),
            ("message.timestamp.before.max.ms", "60000"),
        ],
    )
    .await;
    create_topic(
        &mut client,
        "recent",
        &[("message.timestamp.before.max.ms", "60000")],
    )
    .await;
    let keyless_message =
        "Compacted topic cannot accept message without key in topic partition compacted-0.";
    for codec in [Compression::None, Compression::Lz4] {
        // 100 records, every tenth without a key (Kafka: 10 errors, the batch refused).
        let records: Vec<Fields> = (0..100)
            .map(|i| {
                let mut record = good(i, "v");
                if i % 10 == 3 {
                    record.key_length = Some(-1);
                    record.key.clear();
                }
                record
            })
            .collect();
        let batch = frame(&records, 100, b"", codec);
        let response = produce(&mut client, "compacted", batch.clone()).await;
        assert_eq!(response.error_code, 87, "{codec:?}: {response:?}");
        assert_eq!(response.base_offset, -1);
        let expected: Vec<(i32, String)> = (0..10)
            .map(|i| (i * 10 + 3, keyless_message.to_string()))
            .collect();
        assert_eq!(record_errors(&response), expected, "{codec:?}");
        let message = response.error_message.as_ref().map(|m| m.to_string());
        assert!(
            message.as_deref().is_some_and(|m| m.starts_with(
                "One or more records have been rejected due to 10 record errors in total"
            )),
            "{message:?}"
        );
        // The same batch is fine where keys are not required.
        assert_eq!(produce(&mut client, "recent", batch).await.error_code, 0);

        // Records 1 and 3 too old, record 2 without a key: the code is INVALID_TIMESTAMP
        // as soon as one timestamp is refused, and every record is listed.
        let mut old = good(1, "old");
        old.timestamp_delta = -3_600_000;
        let mut keyless = good(2, "v");
        keyless.key_length = Some(-1);
        keyless.key.clear();
        let mut older = good(3, "older");
        older.timestamp_delta = -7_200_000;
        let batch = frame(&[good(0, "new"), old, keyless, older], 4, b"", codec);
        let response = produce(&mut client, "compacted", batch.clone()).await;
        assert_eq!(response.error_code, 32, "{codec:?}: {response:?}");
        let listed = record_errors(&response);
        assert_eq!(
            listed.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(
            listed[0]
                .1
                .contains("of message with offset 1 is out of range"),
            "{listed:?}"
        );
        assert_eq!(listed[1].1, keyless_message);
        assert_eq!(
            response.error_message.as_ref().map(|m| m.to_string()),
            Some("One or more records have been rejected due to invalid timestamp".into())
        );
        let response = produce(&mut client, "recent", batch).await;
        assert_eq!(response.error_code, 32, "{codec:?}: {response:?}");
        assert_eq!(
            record_errors(&response)
                .iter()
                .map(|(i, _)| *i)
                .collect::<Vec<_>>(),
            vec![1, 3]
        );
    }
    assert!(stored_values(&mut client, "compacted").await.is_empty());
    assert_eq!(stored_values(&mut client, "recent").await.len(), 200);
    broker.broker.shutdown().await;
}

/// Two partitions, each refused for 6,000 keyless records: every record is counted in
/// each partition's message, and the response lists 10,000 in all (the first partition's
/// 6,000, then 4,000 of the second's).
#[tokio::test]
async fn a_response_lists_a_bounded_number_of_record_errors() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let configs = [
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("cleanup.policy"))
            .with_value(Some(StrBytes::from_static_str("compact"))),
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("max.message.bytes"))
            .with_value(Some(StrBytes::from_static_str("1048576"))),
    ];
    let created = client
        .send(
            7,
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name("wide"))
                .with_num_partitions(2)
                .with_replication_factor(1)
                .with_configs(configs.to_vec())]),
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
    let records: Vec<Fields> = (0..6000)
        .map(|i| {
            let mut record = good(i, "v");
            record.key_length = Some(-1);
            record.key.clear();
            record
        })
        .collect();
    let batch = Bytes::from(frame(&records, 6000, b"", Compression::Zstd));
    let partitions = (0..2)
        .map(|index| {
            PartitionProduceData::default()
                .with_index(index)
                .with_records(Some(batch.clone()))
        })
        .collect();
    let response = client
        .send(
            9,
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name("wide"))
                    .with_partition_data(partitions)]),
        )
        .await;
    let answers = &response.responses[0].partition_responses;
    let counts: Vec<usize> = answers.iter().map(|p| p.record_errors.len()).collect();
    assert_eq!(counts, vec![6000, 4000]);
    for answer in answers {
        assert_eq!(answer.error_code, 87);
        let message = answer.error_message.as_ref().map(|m| m.to_string());
        assert!(
            message.as_deref().is_some_and(|m| m.starts_with(
                "One or more records have been rejected due to 6000 record errors in total"
            )),
            "{message:?}"
        );
        assert!(answer
            .record_errors
            .iter()
            .enumerate()
            .all(|(i, e)| e.batch_index == i as i32));
    }
    broker.broker.shutdown().await;
}
