//! The broker over a real single-voter Raft metadata node: topics, topic ids and partition
//! data survive a restart of both, as `strom server` runs them.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{batch, values, Client};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_broker::{Broker, BrokerConfig, MetadataPort, QuorumMetadata};
use strom_meta::ControllerConfig;
use strom_raft::metadata::{start_metadata_node, MetadataNode};
use strom_raft::NodeConfig;
use strom_records::Compression;

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("durable"))
}

async fn start(dir: &std::path::Path) -> (MetadataNode, Broker) {
    let node_config = NodeConfig::test_min(
        1,
        "127.0.0.1:0".parse().unwrap(),
        dir.join("__cluster_metadata-0"),
    );
    let node = start_metadata_node(node_config, ControllerConfig::default())
        .await
        .unwrap();
    let port: Arc<dyn MetadataPort> = QuorumMetadata::new(node.clone());
    let mut config = BrokerConfig::test_min(dir);
    // Acknowledge only what is on disk.
    config.log_defaults.durability = strom_log::Durability::SyncOnCommit;
    let broker = Broker::start(config, port).await.unwrap();
    (node, broker)
}

async fn topic_id(client: &mut Client) -> (i16, uuid::Uuid, usize) {
    let response = client
        .send(
            12,
            MetadataRequest::default()
                .with_allow_auto_topic_creation(false)
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic()))
                ])),
        )
        .await;
    let t = &response.topics[0];
    (t.error_code, t.topic_id, t.partitions.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_data_survive_a_restart_with_the_raft_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let (node, broker) = start(dir.path()).await;
    let mut client = Client::connect(broker.local_addr()).await;
    let response = client
        .send(
            7,
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(topic())
                .with_num_partitions(2)
                .with_replication_factor(-1)]),
        )
        .await;
    assert_eq!(response.topics[0].error_code, 0);
    let (code, id, partitions) = topic_id(&mut client).await;
    assert_eq!((code, partitions), (0, 2));
    for i in 0..10 {
        let response = client
            .send(
                9,
                ProduceRequest::default()
                    .with_acks(-1)
                    .with_topic_data(vec![TopicProduceData::default()
                        .with_name(topic())
                        .with_partition_data(vec![PartitionProduceData::default()
                            .with_index(1)
                            .with_records(Some(Bytes::from(batch(
                                i * 5,
                                5,
                                Compression::Gzip,
                            ))))])]),
            )
            .await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    drop(client);
    broker.shutdown().await;
    node.shutdown().await;

    let (node, broker) = start(dir.path()).await;
    let mut client = Client::connect(broker.local_addr()).await;
    assert_eq!(topic_id(&mut client).await, (0, id, 2));
    let response = client
        .send(
            13,
            FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic_id(id)
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(1)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20)])]),
        )
        .await;
    let data = &response.responses[0].partitions[0];
    assert_eq!(data.error_code, 0);
    let expected: Vec<String> = (0..50).map(|i| format!("value-{i}")).collect();
    assert_eq!(values(data.records.as_ref().unwrap()), expected);
    drop(client);
    broker.shutdown().await;
    node.shutdown().await;
}
