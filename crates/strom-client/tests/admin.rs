//! Admin round trips against the real `strom` binary.

mod common;

use std::collections::BTreeMap;

use common::Broker;
use strom_client::{
    AlterConfigOp, ConfigResource, NewTopic, OffsetAndMetadata, OffsetSpec, Producer,
    ProducerRecord, TopicPartition,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_lifecycle_configs_and_cluster() {
    let broker = Broker::start(&[]);
    let admin = broker.admin();

    let cluster = admin.describe_cluster().await.unwrap();
    assert_eq!(cluster.brokers.len(), 1);
    assert!(cluster.cluster_id.is_some());

    admin
        .create_topic(&NewTopic::new("orders", 2, 1).config("retention.ms", "3600000"))
        .await
        .unwrap();
    let err = admin
        .create_topic(&NewTopic::new("orders", 2, 1))
        .await
        .unwrap_err();
    assert_eq!(err.kafka_name(), Some("TOPIC_ALREADY_EXISTS"), "{err}");

    assert!(admin
        .list_topics(false)
        .await
        .unwrap()
        .contains(&"orders".to_string()));
    let described = admin
        .describe_topics(&["orders".to_string()])
        .await
        .unwrap();
    assert_eq!(described[0].partitions.len(), 2);
    let missing = admin
        .describe_topics(&["nope".to_string()])
        .await
        .unwrap_err();
    assert_eq!(missing.kafka_name(), Some("UNKNOWN_TOPIC_OR_PARTITION"));

    admin.create_partitions("orders", 4).await.unwrap();
    let described = admin
        .describe_topics(&["orders".to_string()])
        .await
        .unwrap();
    assert_eq!(described[0].partitions.len(), 4);

    let topic = ConfigResource::Topic("orders".into());
    let configs = admin.describe_configs(&topic).await.unwrap();
    let retention = configs.iter().find(|c| c.name == "retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert!(!retention.is_default());
    admin
        .alter_configs(
            &topic,
            &[AlterConfigOp::Set("retention.ms".into(), "7200000".into())],
        )
        .await
        .unwrap();
    let configs = admin.describe_configs(&topic).await.unwrap();
    let retention = configs.iter().find(|c| c.name == "retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("7200000"));
    admin
        .alter_configs(&topic, &[AlterConfigOp::Delete("retention.ms".into())])
        .await
        .unwrap();
    let configs = admin.describe_configs(&topic).await.unwrap();
    assert!(configs
        .iter()
        .find(|c| c.name == "retention.ms")
        .unwrap()
        .is_default());
    let broker_configs = admin
        .describe_configs(&ConfigResource::Broker(cluster.brokers[0].id))
        .await
        .unwrap();
    assert!(!broker_configs.is_empty());

    admin.delete_topic("orders").await.unwrap();
    let err = admin.delete_topic("orders").await.unwrap_err();
    assert_eq!(
        err.kafka_name(),
        Some("UNKNOWN_TOPIC_OR_PARTITION"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_records_and_group_offsets() {
    let broker = Broker::start(&[]);
    let admin = broker.admin();
    broker.create_topic("events", 1).await;
    let producer = Producer::new(broker.producer_config()).unwrap();
    let mut futures = Vec::new();
    for i in 0..10i64 {
        let record = ProducerRecord::new("events", format!("v{i}"))
            .partition(0)
            .timestamp_ms(1_000_000 + i * 1_000);
        futures.push(producer.send(record).await.unwrap());
    }
    for (i, f) in futures.into_iter().enumerate() {
        let md = f.await.unwrap();
        assert_eq!(md.offset, i as i64);
    }
    producer.close().await.unwrap();

    let tp = TopicPartition::new("events", 0);
    let parts = [tp.clone()];
    let earliest = admin
        .list_offsets(&parts, OffsetSpec::Earliest)
        .await
        .unwrap();
    let latest = admin
        .list_offsets(&parts, OffsetSpec::Latest)
        .await
        .unwrap();
    let by_time = admin
        .list_offsets(&parts, OffsetSpec::Timestamp(1_004_500))
        .await
        .unwrap();
    assert_eq!(earliest[&tp].offset, 0);
    assert_eq!(latest[&tp].offset, 10);
    assert_eq!(by_time[&tp].offset, 5);

    let low = admin
        .delete_records(&BTreeMap::from([(tp.clone(), 3)]))
        .await
        .unwrap();
    assert_eq!(low[&tp], 3);
    let earliest = admin
        .list_offsets(&parts, OffsetSpec::Earliest)
        .await
        .unwrap();
    assert_eq!(earliest[&tp].offset, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_offsets_reset_list_describe_delete() {
    let broker = Broker::start(&[]);
    let admin = broker.admin();
    broker.create_topic("events", 1).await;
    let tp = TopicPartition::new("events", 0);
    let parts = [tp.clone()];
    let offsets = BTreeMap::from([(tp.clone(), OffsetAndMetadata::new(7))]);
    admin
        .alter_group_offsets("reset-group", &offsets)
        .await
        .unwrap();
    let committed = admin.list_group_offsets("reset-group").await.unwrap();
    assert_eq!(committed[&tp].offset, 7);
    let groups = admin.list_groups().await.unwrap();
    assert!(
        groups.iter().any(|g| g.group_id == "reset-group"),
        "{groups:?}"
    );
    let described = admin.describe_group("reset-group").await.unwrap();
    assert!(described.members.is_empty());

    admin
        .delete_group_offsets("reset-group", &parts)
        .await
        .unwrap();
    assert!(admin
        .list_group_offsets("reset-group")
        .await
        .unwrap()
        .is_empty());
    let deleted = admin
        .delete_groups(&["reset-group".to_string()])
        .await
        .unwrap();
    assert!(deleted[0].1.is_ok(), "{deleted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_a_live_group_and_refuse_to_delete_it() {
    let broker = Broker::start(&[]);
    let admin = broker.admin();
    broker.create_topic("live", 2).await;
    let mut consumer =
        strom_client::Consumer::new(broker.consumer_config(Some("live-group"))).unwrap();
    consumer.subscribe(vec!["live".into()]).await.unwrap();
    let start = std::time::Instant::now();
    while consumer.assignment().len() != 2 && start.elapsed() < std::time::Duration::from_secs(20) {
        consumer
            .poll(std::time::Duration::from_millis(100))
            .await
            .unwrap();
    }
    let described = admin.describe_group("live-group").await.unwrap();
    assert_eq!(described.state, "Stable");
    assert_eq!(described.protocol_type, "consumer");
    assert_eq!(described.protocol, "range");
    assert_eq!(described.members.len(), 1);
    assert_eq!(
        described.members[0].assignment,
        vec![
            TopicPartition::new("live", 0),
            TopicPartition::new("live", 1)
        ]
    );
    let listed = admin.list_groups().await.unwrap();
    let live = listed.iter().find(|g| g.group_id == "live-group").unwrap();
    assert_eq!(live.protocol_type, "consumer");
    let deleted = admin
        .delete_groups(&["live-group".to_string()])
        .await
        .unwrap();
    let err = deleted[0].1.as_ref().unwrap_err();
    assert_eq!(err.kafka_name(), Some("NON_EMPTY_GROUP"), "{err}");
    consumer.close().await.unwrap();
    let deleted = admin
        .delete_groups(&["live-group".to_string()])
        .await
        .unwrap();
    assert!(deleted[0].1.is_ok(), "{deleted:?}");
}
