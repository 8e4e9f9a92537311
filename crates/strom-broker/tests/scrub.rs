//! The scrubber in a running broker: its counters move as cold segments are verified, a
//! flipped byte in an old segment is counted as damage within a bounded time, and healthy
//! ranges are still served.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{batch, values, Client, TestBroker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_broker::ScrubCounts;
use strom_records::Compression;
use uuid::Uuid;

const TOPIC: &str = "scrubbed";
const LIMIT: Duration = Duration::from_secs(30);

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

async fn create_topic(client: &mut Client) -> Uuid {
    let response = client
        .send(
            7,
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name(TOPIC))
                .with_num_partitions(1)
                .with_replication_factor(-1)]),
        )
        .await;
    assert_eq!(response.topics[0].error_code, 0);
    response.topics[0].topic_id
}

async fn produce(client: &mut Client, records: Vec<u8>) -> i64 {
    let response = client
        .send(
            9,
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name(TOPIC))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(records)))])]),
        )
        .await;
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 0);
    partition.base_offset
}

async fn fetch_values(client: &mut Client, topic_id: Uuid, offset: i64) -> Vec<String> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(TOPIC))
            .with_topic_id(topic_id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let response = client.send(12, request).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    values(partition.records.as_ref().unwrap())
}

/// The partition's segment files, oldest first.
fn segments(broker: &TestBroker) -> Vec<PathBuf> {
    let dir = broker.dir.path().join(format!("{TOPIC}-0"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

async fn wait_for(
    broker: &TestBroker,
    what: &str,
    done: impl Fn(&ScrubCounts) -> bool,
) -> ScrubCounts {
    let start = Instant::now();
    loop {
        let counts = broker.broker.context().replicas.scrub_counts();
        if done(&counts) {
            return counts;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{what} within {LIMIT:?}: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrubber_counts_verified_segments_and_damage() {
    let broker = TestBroker::start_with(|c| {
        c.scrub_bytes_per_sec = 64 * 1024 * 1024;
        c.scrub_interval_ms = 100;
    })
    .await;
    let mut client = broker.client().await;
    let topic_id = create_topic(&mut client).await;
    let mut bases = Vec::new();
    for i in 0..60 {
        bases.push(produce(&mut client, batch(i * 100, 100, Compression::None)).await);
    }
    let files = segments(&broker);
    assert!(files.len() >= 4, "{files:?}");
    let cold_bytes: u64 = files[..files.len() - 1]
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    let before = broker.broker.context().replicas.scrub_counts();
    let counts = wait_for(&broker, "a pass over the cold segments", |c| {
        c.passes_completed >= before.passes_completed + 2
    })
    .await;
    assert!(
        counts.segments_scrubbed >= (files.len() - 1) as u64,
        "{counts:?}"
    );
    assert!(
        counts.bytes_verified >= cold_bytes,
        "{counts:?} vs {cold_bytes}"
    );
    assert_eq!(counts.damaged_batches, 0);

    // A flipped payload byte in the second segment.
    let mut bytes = std::fs::read(&files[1]).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&files[1], &bytes).unwrap();
    let counts = wait_for(&broker, "the damage found", |c| c.damaged_batches >= 1).await;
    assert!(counts.damaged_batches >= 1);
    // Counted with damage found at open, and the partition stays online.
    let damage = broker.broker.context().replicas.damage_counts();
    assert!(damage.reports >= 1, "{damage:?}");
    assert_eq!(damage.partitions_offline_damaged, 0, "{damage:?}");
    // Healthy ranges are still served: the fourth segment's first records and the tail.
    let fourth: i64 = files[3]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let got = fetch_values(&mut client, topic_id, fourth).await;
    assert_eq!(got.first(), Some(&format!("value-{fourth}")));
    let last = *bases.last().unwrap();
    let got = fetch_values(&mut client, topic_id, last).await;
    assert_eq!(got.first(), Some(&format!("value-{last}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_rate_disables_the_scrubber() {
    let broker = TestBroker::start_with(|c| {
        c.scrub_bytes_per_sec = 0;
        c.scrub_interval_ms = 10;
    })
    .await;
    let mut client = broker.client().await;
    create_topic(&mut client).await;
    for i in 0..30 {
        produce(&mut client, batch(i * 100, 100, Compression::None)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        broker.broker.context().replicas.scrub_counts(),
        ScrubCounts::default()
    );
}
