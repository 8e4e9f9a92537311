//! Admin APIs in-process: configs, partitions, records, cluster and log-dir descriptions.

mod common;

use bytes::Bytes;
use common::{batch, Client, TestBroker};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_records::Compression;

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

async fn create(client: &mut Client, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let response = client
        .send(
            7,
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(-1)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(s(k))
                                .with_value(Some(s(v)))
                        })
                        .collect(),
                )]),
        )
        .await;
    assert_eq!(response.topics[0].error_code, 0);
}

async fn produce(client: &mut Client, topic: &str, partition: i32, records: Vec<u8>) -> i16 {
    let response = client
        .send(
            9,
            ProduceRequest::default()
                .with_acks(-1)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name(topic))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::from(records)))])]),
        )
        .await;
    response.responses[0].partition_responses[0].error_code
}

async fn describe_topic_configs(
    client: &mut Client,
    topic: &str,
) -> Vec<describe_configs_response::DescribeConfigsResourceResult> {
    let response = client
        .send(
            4,
            DescribeConfigsRequest::default()
                .with_include_synonyms(true)
                .with_include_documentation(true)
                .with_resources(vec![DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(topic))
                    .with_configuration_keys(None)]),
        )
        .await;
    assert_eq!(response.results[0].error_code, 0);
    response.results[0].configs.clone()
}

fn find<'a>(
    configs: &'a [describe_configs_response::DescribeConfigsResourceResult],
    key: &str,
) -> &'a describe_configs_response::DescribeConfigsResourceResult {
    configs.iter().find(|c| c.name.as_str() == key).unwrap()
}

#[tokio::test]
async fn describe_and_alter_configs() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "c", 1, &[("retention.ms", "1000")]).await;
    let configs = describe_topic_configs(&mut client, "c").await;
    assert_eq!(
        configs.len(),
        strom_meta::config_defs::topic_config_defs().len()
    );
    let retention = find(&configs, "retention.ms");
    assert_eq!(
        (retention.value.as_deref(), retention.config_source),
        (Some("1000"), 1)
    );
    assert!(retention.synonyms.len() >= 2);
    let segment = find(&configs, "segment.bytes");
    assert_eq!(
        (segment.value.as_deref(), segment.config_source),
        (Some("65536"), 4)
    );
    let policy = find(&configs, "cleanup.policy");
    assert_eq!(
        (policy.value.as_deref(), policy.config_source),
        (Some("delete"), 5)
    );
    assert!(policy.documentation.is_some());

    // Incremental: set one key, delete another; the open log picks the change up.
    let response = client
        .send(
            1,
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("c"))
                    .with_configs(vec![
                        AlterableConfig::default()
                            .with_name(s("max.message.bytes"))
                            .with_config_operation(0)
                            .with_value(Some(s("4096"))),
                        AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_config_operation(1)
                            .with_value(None),
                    ]),
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("missing"))
                    .with_configs(vec![AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_config_operation(0)
                        .with_value(Some(s("1")))]),
            ]),
        )
        .await;
    assert_eq!(
        response.responses[0].error_code, 0,
        "{:?}",
        response.responses[0].error_message
    );
    assert_eq!(response.responses[1].error_code, 3);
    let configs = describe_topic_configs(&mut client, "c").await;
    assert_eq!(
        find(&configs, "max.message.bytes").value.as_deref(),
        Some("4096")
    );
    assert_eq!(find(&configs, "retention.ms").config_source, 5);
    let big = vec![b'x'; 8000];
    let mut builder = strom_records::BatchBuilder::new(0, common::now_ms());
    builder
        .append(common::now_ms(), None, Some(Bytes::from(big)), vec![])
        .unwrap();
    assert_eq!(
        produce(&mut client, "c", 0, builder.build().unwrap()).await,
        10
    );

    // Legacy AlterConfigs replaces the whole set of overrides.
    let response = client
        .send(
            2,
            AlterConfigsRequest::default().with_resources(vec![
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("c"))
                    .with_configs(vec![alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("7000")))]),
            ]),
        )
        .await;
    assert_eq!(response.responses[0].error_code, 0);
    let configs = describe_topic_configs(&mut client, "c").await;
    assert_eq!(
        find(&configs, "retention.ms").value.as_deref(),
        Some("7000")
    );
    assert_eq!(find(&configs, "max.message.bytes").config_source, 5);

    // The broker resource lists the broker's keys.
    let response = client
        .send(
            4,
            DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s("1"))
                    .with_configuration_keys(None),
            ]),
        )
        .await;
    let configs = &response.results[0].configs;
    assert_eq!(find(configs, "num.partitions").value.as_deref(), Some("1"));
    assert_eq!(find(configs, "log.segment.bytes").config_source, 4);
    broker.broker.shutdown().await;
}

/// A reconcile with an image older than one already applied used to delete the partitions
/// created in between (directory and data included): the metadata watcher took its image,
/// then waited for the CreateTopics handler's reconcile with a newer one.
#[tokio::test]
async fn partitions_stay_hosted_while_topics_are_created_back_to_back() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    for i in 0..40 {
        // Two creates back to back: the watcher still working on the first image is what
        // raced the second create's own reconcile.
        let topics = [format!("burst-{i}"), format!("burst-{i}-b")];
        for topic in &topics {
            create(&mut client, topic, 2, &[]).await;
        }
        for topic in &topics {
            for partition in 0..2 {
                let error = produce(
                    &mut client,
                    topic,
                    partition,
                    batch(0, 1, Compression::None),
                );
                assert_eq!(
                    error.await,
                    0,
                    "{topic}-{partition} is writable once CreateTopics answered"
                );
            }
        }
    }
    // Every earlier topic still has its record: no partition was deleted and recreated.
    for i in 0..40 {
        let dir = broker.dir.path().join(format!("burst-{i}-0"));
        let bytes: u64 = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert!(bytes > 0, "{} lost its data", dir.display());
    }
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn create_partitions_and_delete_records() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "grow", 1, &[]).await;
    let response = client
        .send(
            3,
            CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name("grow"))
                .with_count(3)
                .with_assignments(None)]),
        )
        .await;
    assert_eq!(
        response.results[0].error_code, 0,
        "{:?}",
        response.results[0].error_message
    );
    assert!(broker.dir.path().join("grow-2").is_dir());
    assert_eq!(
        produce(&mut client, "grow", 2, batch(0, 1, Compression::None)).await,
        0
    );
    let response = client
        .send(
            3,
            CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name("grow"))
                .with_count(2)
                .with_assignments(None)]),
        )
        .await;
    assert_eq!(response.results[0].error_code, 37);

    for i in 0..4 {
        assert_eq!(
            produce(&mut client, "grow", 0, batch(i * 5, 5, Compression::None)).await,
            0
        );
    }
    let delete = |offset: i64| {
        DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
            .with_name(name("grow"))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])])
    };
    let response = client.send(2, delete(7)).await;
    let p = &response.topics[0].partitions[0];
    assert_eq!((p.error_code, p.low_watermark), (0, 7));
    let response = client.send(2, delete(99)).await;
    assert_eq!(response.topics[0].partitions[0].error_code, 1);
    let response = client
        .send(
            7,
            ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
                .with_name(name("grow"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-2)])]),
        )
        .await;
    assert_eq!(response.topics[0].partitions[0].offset, 7);
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn cluster_log_dirs_topic_partitions_elections_and_epochs() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "a", 3, &[]).await;
    create(&mut client, "b", 2, &[]).await;
    assert_eq!(
        produce(&mut client, "a", 1, batch(0, 3, Compression::None)).await,
        0
    );

    let cluster = client
        .send(1, DescribeClusterRequest::default().with_endpoint_type(1))
        .await;
    assert_eq!(cluster.error_code, 0);
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(cluster.brokers[0].port as u16, broker.addr().port());

    let dirs = client
        .send(4, DescribeLogDirsRequest::default().with_topics(None))
        .await;
    let result = &dirs.results[0];
    assert_eq!(result.topics.len(), 2);
    let a = result
        .topics
        .iter()
        .find(|t| t.name.0.as_str() == "a")
        .unwrap();
    assert_eq!(a.partitions.len(), 3);
    assert!(a.partitions.iter().any(|p| p.partition_size > 0));
    // A current replica's lag is Kafka's max(high watermark - log end, 0); the volume's
    // sizes are known (v4+).
    assert!(a.partitions.iter().all(|p| p.offset_lag == 0));
    assert!(result.total_bytes > 0 && result.usable_bytes > 0);
    assert!(result.usable_bytes <= result.total_bytes);

    // Pagination: two partitions per page over a (3) and b (2).
    let mut cursor = None;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let response = client
            .send(
                0,
                DescribeTopicPartitionsRequest::default()
                    .with_topics(vec![])
                    .with_response_partition_limit(2)
                    .with_cursor(cursor.clone()),
            )
            .await;
        for t in &response.topics {
            for p in &t.partitions {
                assert_eq!(p.leader_id.0, 1);
                assert!(p.offline_replicas.is_empty(), "{p:?}");
                seen.push((t.name.as_ref().unwrap().0.to_string(), p.partition_index));
            }
        }
        cursor = response.next_cursor.map(|c| {
            describe_topic_partitions_request::Cursor::default()
                .with_topic_name(c.topic_name)
                .with_partition_index(c.partition_index)
        });
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<(String, i32)> = [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)]
        .iter()
        .map(|(t, p)| (t.to_string(), *p))
        .collect();
    assert_eq!(seen, expected);
    let response = client
        .send(
            0,
            DescribeTopicPartitionsRequest::default()
                .with_topics(vec![TopicRequest::default().with_name(name("nope"))])
                .with_response_partition_limit(10),
        )
        .await;
    assert_eq!(response.topics[0].error_code, 3);

    let response = client
        .send(
            2,
            ElectLeadersRequest::default().with_topic_partitions(Some(vec![
                TopicPartitions::default()
                    .with_topic(name("a"))
                    .with_partitions(vec![0, 9]),
            ])),
        )
        .await;
    let results = &response.replica_election_results[0].partition_result;
    assert_eq!((results[0].error_code, results[1].error_code), (84, 3));

    let response = client
        .send(
            4,
            OffsetForLeaderEpochRequest::default().with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(name("a"))
                    .with_partitions(vec![
                        OffsetForLeaderPartition::default()
                            .with_partition(1)
                            .with_current_leader_epoch(-1)
                            .with_leader_epoch(0),
                        OffsetForLeaderPartition::default()
                            .with_partition(1)
                            .with_current_leader_epoch(999)
                            .with_leader_epoch(0),
                    ]),
            ]),
        )
        .await;
    let partitions = &response.topics[0].partitions;
    assert_eq!((partitions[0].error_code, partitions[0].end_offset), (0, 3));
    assert_eq!(partitions[1].error_code, 75);
    broker.broker.shutdown().await;
}

async fn earliest(client: &mut Client, topic: &str) -> i64 {
    let response = client
        .send(
            7,
            ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-2)])]),
        )
        .await;
    response.topics[0].partitions[0].offset
}

#[tokio::test]
async fn retention_and_compaction_run_in_the_background() {
    let broker = TestBroker::start_with(|c| {
        c.log_retention_check_interval_ms = 1;
        c.log_cleaner_backoff_ms = 1;
    })
    .await;
    let mut client = broker.client().await;
    create(
        &mut client,
        "old",
        1,
        &[("segment.bytes", "1024"), ("retention.ms", "200")],
    )
    .await;
    create(
        &mut client,
        "keyed",
        1,
        &[("segment.bytes", "1024"), ("cleanup.policy", "compact")],
    )
    .await;
    for i in 0..20 {
        assert_eq!(
            produce(&mut client, "old", 0, batch(i * 3, 3, Compression::None)).await,
            0
        );
        // The same key over and over: compaction keeps the latest.
        let now = common::now_ms();
        let mut builder = strom_records::BatchBuilder::new(0, now);
        builder
            .append(
                now,
                Some(Bytes::from_static(b"k")),
                Some(Bytes::from(format!("v{i}"))),
                vec![],
            )
            .unwrap();
        assert_eq!(
            produce(&mut client, "keyed", 0, builder.build().unwrap()).await,
            0
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let start = earliest(&mut client, "old").await;
        let partition = broker
            .broker
            .context()
            .replicas
            .all()
            .into_iter()
            .find(|p| p.topic == "keyed")
            .unwrap();
        let keyed_bytes = partition.log.size_bytes();
        if start > 0 && keyed_bytes < 20 * 70 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "start {start}, keyed {keyed_bytes} bytes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    broker.broker.shutdown().await;
}
