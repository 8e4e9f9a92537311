//! The broker in-process on 127.0.0.1, driven by a minimal Kafka client.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{batch, values, Client, TestBroker};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_records::Compression;
use uuid::Uuid;

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

async fn create_topic(client: &mut Client, topic: &str, partitions: i32) -> Uuid {
    let response = client
        .send(
            7,
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(-1)]),
        )
        .await;
    let result = &response.topics[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    assert_eq!(result.num_partitions, partitions);
    result.topic_id
}

async fn produce(
    client: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    acks: i16,
    records: Vec<u8>,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    let response = client
        .send(
            version,
            ProduceRequest::default()
                .with_acks(acks)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name(topic))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::from(records)))])]),
        )
        .await;
    response.responses[0].partition_responses[0].clone()
}

fn fetch_request(topic: &str, topic_id: Uuid, offset: i64, wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_topic_id(topic_id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

async fn fetch(
    client: &mut Client,
    version: i16,
    request: FetchRequest,
) -> kafka_protocol::messages::fetch_response::PartitionData {
    let response = client.send(version, request).await;
    assert_eq!(response.error_code, 0);
    response.responses[0].partitions[0].clone()
}

async fn list_offset(client: &mut Client, topic: &str, timestamp: i64) -> (i16, i64) {
    let response = client
        .send(
            7,
            ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(timestamp)])]),
        )
        .await;
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.offset)
}

#[tokio::test]
async fn api_versions_advertises_what_is_served_and_falls_back_to_v0() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let response = client
        .send(
            3,
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("test"))
                .with_client_software_version(StrBytes::from_static_str("1.0")),
        )
        .await;
    assert_eq!(response.error_code, 0);
    let keys: Vec<(i16, i16, i16)> = response
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    assert!(keys.contains(&(0, 0, 13)), "{keys:?}");
    assert!(keys.contains(&(1, 4, 18)), "{keys:?}");
    assert!(keys.contains(&(3, 0, 13)), "{keys:?}");
    // A version the broker does not know: a v0 answer with UNSUPPORTED_VERSION.
    // Header v2 (flexible, as for any ApiVersions v3+): api key 18, version 99,
    // correlation id 77, client id "c", no tagged fields; no body.
    let frame = [0, 0, 0, 12, 0, 18, 0, 99, 0, 0, 0, 77, 0, 1, b'c', 0];
    tokio::io::AsyncWriteExt::write_all(&mut client.stream, &frame)
        .await
        .unwrap();
    let (correlation_id, mut body) = client.read_frame(ApiKey::ApiVersions, 0).await;
    assert_eq!(correlation_id, 77);
    let fallback =
        <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut body, 0).unwrap();
    assert_eq!(fallback.error_code, 35);
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn create_produce_fetch_and_list_offsets_round_trip() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let topic_id = create_topic(&mut client, "orders", 2).await;
    assert_ne!(topic_id, Uuid::nil());

    let metadata = client
        .send(
            12,
            MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name("orders")))
            ])),
        )
        .await;
    let topic = &metadata.topics[0];
    assert_eq!(topic.error_code, 0);
    assert_eq!(topic.topic_id, topic_id);
    assert_eq!(topic.partitions.len(), 2);
    assert_eq!(topic.partitions[0].leader_id.0, 1);
    assert_eq!(metadata.brokers[0].port as u16, broker.addr().port());

    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut expected = Vec::new();
    for (i, codec) in codecs.into_iter().enumerate() {
        let response = produce(&mut client, 9, "orders", 0, -1, batch(i * 3, 3, codec)).await;
        assert_eq!(
            response.error_code, 0,
            "{codec:?}: {:?}",
            response.error_message
        );
        assert_eq!(response.base_offset, (i * 3) as i64);
        expected.extend((i * 3..i * 3 + 3).map(|n| format!("value-{n}")));
    }

    // By name (v11) and by topic id (v13+) the same bytes come back.
    for version in [4, 11, 12, 13, 17] {
        let data = fetch(
            &mut client,
            version,
            fetch_request("orders", topic_id, 0, 0),
        )
        .await;
        assert_eq!(data.error_code, 0, "v{version}");
        assert_eq!(data.high_watermark, 15);
        assert_eq!(
            values(data.records.as_ref().unwrap()),
            expected,
            "v{version}"
        );
    }
    assert_eq!(list_offset(&mut client, "orders", -2).await, (0, 0));
    assert_eq!(list_offset(&mut client, "orders", -1).await, (0, 15));
    assert_eq!(list_offset(&mut client, "orders", 0).await, (0, 0));
    assert_eq!(
        list_offset(&mut client, "orders", common::now_ms() + 3_600_000).await,
        (0, -1)
    );
    let (code, max_ts_offset) = list_offset(&mut client, "orders", -3).await;
    assert_eq!(code, 0);
    assert!((0..15).contains(&max_ts_offset));
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn fetch_in_the_middle_of_a_batch_returns_the_whole_batch() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let topic_id = create_topic(&mut client, "t", 1).await;
    produce(&mut client, 9, "t", 0, 1, batch(0, 5, Compression::None)).await;
    let data = fetch(&mut client, 12, fetch_request("t", topic_id, 3, 0)).await;
    assert_eq!(values(data.records.as_ref().unwrap()).len(), 5);
    // Past the end: out of range, with the offsets to reset to.
    let data = fetch(&mut client, 12, fetch_request("t", topic_id, 6, 0)).await;
    assert_eq!(data.error_code, 1);
    assert_eq!(data.high_watermark, 5);
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn fetch_long_poll_is_woken_by_an_append_and_times_out_without_one() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let topic_id = create_topic(&mut client, "poll", 1).await;

    let started = Instant::now();
    let data = fetch(&mut client, 12, fetch_request("poll", topic_id, 0, 400)).await;
    let waited = started.elapsed();
    assert!(data.records.as_ref().unwrap().is_empty());
    assert!(waited >= Duration::from_millis(380), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");

    let addr = broker.addr();
    let producer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut other = Client::connect(addr).await;
        produce(&mut other, 9, "poll", 0, 1, batch(0, 1, Compression::None)).await
    });
    let started = Instant::now();
    let data = fetch(&mut client, 12, fetch_request("poll", topic_id, 0, 10_000)).await;
    assert_eq!(values(data.records.as_ref().unwrap()), vec!["value-0"]);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(producer.await.unwrap().error_code, 0);
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn metadata_auto_creates_topics_only_when_allowed() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let request = |allow: bool, topic: &str| {
        MetadataRequest::default()
            .with_allow_auto_topic_creation(allow)
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name(topic)))
            ]))
    };
    let response = client.send(9, request(false, "nope")).await;
    assert_eq!(response.topics[0].error_code, 3);
    let response = client.send(9, request(true, "auto")).await;
    assert_eq!(response.topics[0].error_code, 0);
    assert_eq!(response.topics[0].partitions.len(), 1);
    let response = client.send(9, request(true, "bad/name")).await;
    assert_eq!(response.topics[0].error_code, 17);
    // v0 with an empty list and v1+ with null both mean every topic.
    let all = client
        .send(0, MetadataRequest::default().with_topics(Some(vec![])))
        .await;
    assert_eq!(all.topics.len(), 1);
    let all = client
        .send(1, MetadataRequest::default().with_topics(None))
        .await;
    assert_eq!(all.topics.len(), 1);
    // The auto-created topic takes data at once.
    let response = produce(&mut client, 3, "auto", 0, 1, batch(0, 1, Compression::None)).await;
    assert_eq!(response.error_code, 0);
    broker.broker.shutdown().await;

    let broker = TestBroker::start_with(|c| c.auto_create_topics_enable = false).await;
    let mut client = broker.client().await;
    let response = client.send(9, request(true, "auto")).await;
    assert_eq!(response.topics[0].error_code, 3);
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn create_topics_validates_and_reports_configs() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let response = client
        .send(
            7,
            CreateTopicsRequest::default()
                .with_validate_only(true)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(name("checked"))
                    .with_num_partitions(3)
                    .with_replication_factor(1)
                    .with_configs(vec![CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("retention.ms"))
                        .with_value(Some(StrBytes::from_static_str("1000")))])]),
        )
        .await;
    let result = &response.topics[0];
    assert_eq!(result.error_code, 0);
    let configs = result.configs.as_ref().unwrap();
    let retention = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(retention.value.as_deref(), Some("1000"));
    // The broker's log.segment.bytes from its config is reported as a static broker config.
    let segment = configs
        .iter()
        .find(|c| c.name.as_str() == "segment.bytes")
        .unwrap();
    assert_eq!(segment.value.as_deref(), Some("65536"));
    assert_eq!(segment.config_source, 4);
    // validate_only created nothing.
    let all = client
        .send(12, MetadataRequest::default().with_topics(None))
        .await;
    assert!(all.topics.is_empty());

    create_topic(&mut client, "dup", 1).await;
    let response = client
        .send(
            7,
            CreateTopicsRequest::default().with_topics(vec![
                CreatableTopic::default()
                    .with_name(name("dup"))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
                CreatableTopic::default()
                    .with_name(name("bad name"))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]),
        )
        .await;
    assert_eq!(response.topics[0].error_code, 36);
    assert_eq!(response.topics[1].error_code, 17);
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn delete_topics_by_name_and_id_removes_the_logs() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "a", 1).await;
    let b_id = create_topic(&mut client, "b", 2).await;
    produce(&mut client, 9, "a", 0, 1, batch(0, 1, Compression::None)).await;
    let data_dir = broker.dir.path();
    assert!(data_dir.join("a-0").is_dir());
    assert!(data_dir.join("b-1").is_dir());

    let response = client
        .send(
            4,
            DeleteTopicsRequest::default().with_topic_names(vec![name("a"), name("missing")]),
        )
        .await;
    assert_eq!(response.responses[0].error_code, 0);
    assert_eq!(response.responses[1].error_code, 3);
    let response = client
        .send(
            6,
            DeleteTopicsRequest::default()
                .with_topics(vec![DeleteTopicState::default().with_topic_id(b_id)]),
        )
        .await;
    assert_eq!(response.responses[0].error_code, 0);
    assert_eq!(
        response.responses[0].name.as_ref().map(|n| n.0.as_str()),
        Some("b")
    );
    assert!(!data_dir.join("a-0").exists());
    assert!(!data_dir.join("b-1").exists());
    // A topic of the same name starts empty.
    create_topic(&mut client, "a", 1).await;
    assert_eq!(list_offset(&mut client, "a", -1).await, (0, 0));
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn produce_errors_are_per_partition() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "p", 1).await;
    let unknown = produce(&mut client, 9, "nope", 0, 1, batch(0, 1, Compression::None)).await;
    assert_eq!(unknown.error_code, 3);
    let bad_partition = produce(&mut client, 9, "p", 5, 1, batch(0, 1, Compression::None)).await;
    assert_eq!(bad_partition.error_code, 3);
    let bad_acks = produce(&mut client, 9, "p", 0, 2, batch(0, 1, Compression::None)).await;
    assert_eq!(bad_acks.error_code, 21);
    let mut corrupt = batch(0, 2, Compression::None);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let response = produce(&mut client, 9, "p", 0, 1, corrupt).await;
    assert_eq!(response.error_code, 2);
    let big = vec![b'x'; 2 << 20];
    let mut builder = strom_records::BatchBuilder::new(0, common::now_ms());
    builder
        .append(common::now_ms(), None, Some(Bytes::from(big)), vec![])
        .unwrap();
    let response = produce(&mut client, 9, "p", 0, 1, builder.build().unwrap()).await;
    assert_eq!(response.error_code, 10);
    // Nothing was appended by any of them.
    assert_eq!(list_offset(&mut client, "p", -1).await, (0, 0));
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn acks_zero_gets_no_response_and_order_is_kept() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "z", 1).await;
    for i in 0..3 {
        let request = ProduceRequest::default().with_acks(0).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name("z"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch(i, 1, Compression::None))))]),
        ]);
        client.send_only(9, &request).await;
    }
    // The next answer on the wire belongs to the request after the acks=0 ones.
    let (code, offset) = list_offset(&mut client, "z", -1).await;
    assert_eq!((code, offset), (0, 3));
    // A failed acks=0 produce closes the connection: the producer's only signal.
    let request =
        ProduceRequest::default()
            .with_acks(0)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name("no-such-topic"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch(0, 1, Compression::None))))])]);
    client.send_only(9, &request).await;
    assert!(client.is_closed().await);
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn bad_input_closes_only_that_connection() {
    let broker = TestBroker::start().await;
    let mut healthy = broker.client().await;
    create_topic(&mut healthy, "ok", 1).await;
    let cases: Vec<Vec<u8>> = vec![
        // Over socket.request.max.bytes.
        vec![0x7f, 0xff, 0xff, 0xff],
        // Negative size.
        vec![0xff, 0xff, 0xff, 0xfe],
        // Unknown API key 9999.
        vec![0, 0, 0, 8, 0x27, 0x0f, 0, 0, 0, 0, 0, 1],
        // Produce v2 (advertised, not served).
        vec![0, 0, 0, 10, 0, 0, 0, 2, 0, 0, 0, 1, 0xff, 0xff],
        // Metadata v1 with a body that claims 2^31-1 topics.
        vec![
            0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff,
        ],
    ];
    for bytes in cases {
        let mut bad = broker.client().await;
        tokio::io::AsyncWriteExt::write_all(&mut bad.stream, &bytes)
            .await
            .unwrap();
        assert!(bad.is_closed().await, "{bytes:?}");
    }
    // A truncated frame followed by the client hanging up.
    let mut truncated = broker.client().await;
    tokio::io::AsyncWriteExt::write_all(&mut truncated.stream, &[0, 0, 0, 100, 0, 3])
        .await
        .unwrap();
    drop(truncated);
    assert_eq!(list_offset(&mut healthy, "ok", -1).await, (0, 0));
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn restart_keeps_the_data_and_the_data_dir_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = std::sync::Arc::new(strom_broker::LocalMetadata::new(Default::default()));
    let config = strom_broker::BrokerConfig::test_min(dir.path());
    let port: std::sync::Arc<dyn strom_broker::MetadataPort> = metadata.clone();
    let broker = strom_broker::Broker::start(config.clone(), port.clone())
        .await
        .unwrap();
    let second = strom_broker::Broker::start(config.clone(), port.clone()).await;
    assert!(matches!(
        second,
        Err(strom_broker::StartError::LogDir { .. })
    ));
    let mut client = Client::connect(broker.local_addr()).await;
    let topic_id = create_topic(&mut client, "keep", 1).await;
    for i in 0..10 {
        let response = produce(
            &mut client,
            9,
            "keep",
            0,
            -1,
            batch(i * 10, 10, Compression::Lz4),
        )
        .await;
        assert_eq!(response.error_code, 0);
    }
    drop(client);
    broker.shutdown().await;
    metadata.restart_controller();

    let broker = strom_broker::Broker::start(config, port).await.unwrap();
    let mut client = Client::connect(broker.local_addr()).await;
    let mut offset = 0;
    let mut seen = Vec::new();
    for _ in 0..20 {
        let data = fetch(&mut client, 12, fetch_request("keep", topic_id, offset, 0)).await;
        let got = values(data.records.as_ref().unwrap());
        if got.is_empty() {
            break;
        }
        offset += got.len() as i64;
        seen.extend(got);
    }
    let expected: Vec<String> = (0..100).map(|i| format!("value-{i}")).collect();
    assert_eq!(seen, expected);
    broker.shutdown().await;
}

#[tokio::test]
async fn idempotent_produce_dedupes_refuses_gaps_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = std::sync::Arc::new(strom_broker::LocalMetadata::new(Default::default()));
    let config = strom_broker::BrokerConfig::test_min(dir.path());
    let port: std::sync::Arc<dyn strom_broker::MetadataPort> = metadata.clone();
    let broker = strom_broker::Broker::start(config.clone(), port.clone())
        .await
        .unwrap();
    let mut client = Client::connect(broker.local_addr()).await;
    create_topic(&mut client, "idem", 1).await;
    let init = client
        .send(
            4,
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    assert!(pid >= 0);
    let second = client
        .send(
            4,
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .await;
    assert_ne!(second.producer_id.0, pid);

    let first = common::producer_batch(pid, 0, 0, 3);
    assert_eq!(
        produce(&mut client, 9, "idem", 0, -1, first.clone())
            .await
            .base_offset,
        0
    );
    // The retry is answered with the original offset and appends nothing.
    let retry = produce(&mut client, 9, "idem", 0, -1, first).await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 0));
    let gap = produce(
        &mut client,
        9,
        "idem",
        0,
        -1,
        common::producer_batch(pid, 0, 5, 1),
    )
    .await;
    assert_eq!(gap.error_code, 45);
    let next = common::producer_batch(pid, 0, 3, 2);
    assert_eq!(
        produce(&mut client, 9, "idem", 0, -1, next.clone())
            .await
            .base_offset,
        3
    );
    assert_eq!(list_offset(&mut client, "idem", -1).await, (0, 5));
    drop(client);
    broker.shutdown().await;
    metadata.restart_controller();

    // After a restart the state comes back from the log.
    let broker = strom_broker::Broker::start(config, port).await.unwrap();
    let mut client = Client::connect(broker.local_addr()).await;
    let retry = produce(&mut client, 9, "idem", 0, -1, next).await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 3));
    assert_eq!(list_offset(&mut client, "idem", -1).await, (0, 5));
    let stale = produce(
        &mut client,
        9,
        "idem",
        0,
        -1,
        common::producer_batch(pid, 0, 1, 1),
    )
    .await;
    assert_eq!(stale.error_code, 45);
    broker.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_long_polls_and_stops_accepting() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let topic_id = create_topic(&mut client, "s", 1).await;
    let addr = broker.addr();
    let poll = tokio::spawn(async move {
        let started = Instant::now();
        let data = fetch(&mut client, 12, fetch_request("s", topic_id, 0, 4_000)).await;
        (started.elapsed(), data)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let TestBroker { broker, dir, .. } = broker;
    let stopping = Instant::now();
    broker.shutdown().await;
    assert!(stopping.elapsed() < Duration::from_secs(3));
    let (waited, data) = poll.await.unwrap();
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    // The controlled shutdown took the partition's leadership away first (there is no other
    // replica to lead it): the long poll ends with NOT_LEADER_OR_FOLLOWER, as a Kafka
    // broker's delayed fetch does when it stops leading.
    assert_eq!(data.error_code, 6);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    // The log was closed cleanly: the next open skips recovery.
    let checkpoint = std::fs::read(dir.path().join("s-0").join("strom-log.checkpoint")).unwrap();
    assert!(!checkpoint.is_empty());
}
