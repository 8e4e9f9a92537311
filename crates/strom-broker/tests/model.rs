//! A seeded random walk of produces and fetches against a `Vec` model of the log: every
//! fetch at any offset, with any byte limits, returns whole batches starting with the one
//! holding that offset, in order, never past the high watermark, and at least one batch.

mod common;

use bytes::Bytes;
use common::{Client, TestBroker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_records::Compression;

/// splitmix64: deterministic, so a failing seed replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("model"))
}

async fn fetch(
    client: &mut Client,
    offset: i64,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> (i16, Vec<u8>) {
    let response = client
        .send(
            12,
            FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_min_bytes(0)
                .with_max_bytes(max_bytes)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(topic())
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(partition_max_bytes)])]),
        )
        .await;
    let p = &response.responses[0].partitions[0];
    (p.error_code, p.records.clone().unwrap_or_default().to_vec())
}

#[tokio::test]
async fn fetches_match_a_model_of_the_log() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let response = client
        .send(
            7,
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(topic())
                .with_num_partitions(1)
                .with_replication_factor(1)
                // Small segments: fetches cross rolls.
                .with_configs(vec![
                    kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default(
                    )
                    .with_name(StrBytes::from_static_str("segment.bytes"))
                    .with_value(Some(StrBytes::from_static_str("4096"))),
                ])]),
        )
        .await;
    assert_eq!(response.topics[0].error_code, 0);
    let mut rng = Rng(0x5eed);
    // The model: each batch as (base offset, record count, value list).
    let mut batches: Vec<(i64, usize)> = Vec::new();
    let mut values: Vec<String> = Vec::new();
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Lz4,
        Compression::Zstd,
    ];
    for step in 0..300 {
        if rng.below(3) == 0 {
            let count = 1 + rng.below(20) as usize;
            let codec = codecs[rng.below(codecs.len() as u64) as usize];
            let first = values.len();
            let records = common::batch(first, count, codec);
            let response = client
                .send(
                    9,
                    ProduceRequest::default().with_acks(1).with_topic_data(vec![
                        TopicProduceData::default()
                            .with_name(topic())
                            .with_partition_data(vec![PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(Bytes::from(records)))]),
                    ]),
                )
                .await;
            let p = &response.responses[0].partition_responses[0];
            assert_eq!(
                (p.error_code, p.base_offset),
                (0, first as i64),
                "step {step}"
            );
            batches.push((first as i64, count));
            values.extend((first..first + count).map(|i| format!("value-{i}")));
            continue;
        }
        let end = values.len() as i64;
        let offset = rng.below(end as u64 + 2) as i64;
        let max_bytes = 1 + rng.below(4000) as i32;
        let partition_max_bytes = 1 + rng.below(4000) as i32;
        let (code, bytes) = fetch(&mut client, offset, max_bytes, partition_max_bytes).await;
        if offset > end {
            assert_eq!(code, 1, "step {step}: offset {offset} past end {end}");
            continue;
        }
        assert_eq!(code, 0, "step {step}");
        let got = common::values(&bytes);
        if offset == end {
            assert!(got.is_empty(), "step {step}");
            continue;
        }
        // Starts with the whole batch holding `offset`, continues in order.
        let (base, _) = batches
            .iter()
            .rev()
            .find(|(base, _)| *base <= offset)
            .copied()
            .unwrap();
        assert!(!got.is_empty(), "step {step}: at least one batch");
        let expected = &values[base as usize..base as usize + got.len()];
        assert_eq!(got, expected, "step {step}");
        // Only whole batches, and beyond the first only within the limits.
        let ends_at = base as usize + got.len();
        assert!(
            ends_at == values.len() || batches.iter().any(|(b, _)| *b as usize == ends_at),
            "step {step}: ends inside a batch"
        );
        let first_batch_bytes = strom_records::batches(&bytes)
            .next()
            .unwrap()
            .unwrap()
            .1
            .len();
        if bytes.len() > first_batch_bytes {
            assert!(
                bytes.len() <= max_bytes.min(partition_max_bytes) as usize,
                "step {step}"
            );
        }
    }
    assert!(values.len() > 100);
    let partition = broker.broker.context().replicas.all().pop().unwrap();
    assert!(
        partition.log.segment_count() > 3,
        "{}",
        partition.log.segment_count()
    );
    broker.broker.shutdown().await;
}
