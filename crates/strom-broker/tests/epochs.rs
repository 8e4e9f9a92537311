//! Leader epochs on one broker across restarts: each restart makes the broker leader of a
//! new epoch, the epoch cache records where each began, OffsetForLeaderEpoch answers from
//! it exactly (Kafka's `endOffsetFor`), the high-watermark checkpoint holds what was
//! committed, and a replica fetch from a broker that is not a replica is refused.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{batch, Client};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_broker::{Broker, BrokerConfig, LocalMetadata, MetadataPort};
use strom_log::HighWatermarks;
use strom_records::Compression;

const TOPIC: &str = "epochs";

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

async fn produce(client: &mut Client, first: usize, count: usize) {
    let response = client
        .send(
            9,
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name())
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch(
                            first,
                            count,
                            Compression::None,
                        ))))])]),
        )
        .await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
}

/// OffsetForLeaderEpoch v4 for `epoch`: (error, leader epoch, end offset).
async fn end_of(client: &mut Client, epoch: i32) -> (i16, i32, i64) {
    let response = client
        .send(
            4,
            OffsetForLeaderEpochRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![OffsetForLeaderTopic::default()
                    .with_topic(name())
                    .with_partitions(vec![OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(-1)
                        .with_leader_epoch(epoch)])]),
        )
        .await;
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

fn leader_epoch(metadata: &LocalMetadata) -> i32 {
    let image = metadata.image();
    let topic = image.topic_by_name(TOPIC).unwrap();
    topic.partitions[&0].leader_epoch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epochs_survive_restarts_and_answer_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = Arc::new(LocalMetadata::new(Default::default()));
    let config = BrokerConfig::test_min(dir.path());
    let port: Arc<dyn MetadataPort> = metadata.clone();
    let broker = Broker::start(config.clone(), port.clone()).await.unwrap();
    let mut client = Client::connect(broker.local_addr()).await;
    let created = client
        .send(
            7,
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name())
                .with_num_partitions(1)
                .with_replication_factor(-1)]),
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
    let topic_id = created.topics[0].topic_id;
    let first_epoch = leader_epoch(&metadata);
    produce(&mut client, 0, 10).await;
    assert_eq!(end_of(&mut client, first_epoch).await, (0, first_epoch, 10));
    drop(client);
    broker.shutdown().await;

    // The checkpoint holds the committed high watermark.
    let marks = HighWatermarks::read(&strom_log::fs::RealFs, dir.path())
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(marks.get((topic_id.as_u128(), 0)), Some(10));

    metadata.restart_controller();
    let broker = Broker::start(config, port).await.unwrap();
    let second_epoch = leader_epoch(&metadata);
    assert!(second_epoch > first_epoch, "a restart starts a new epoch");
    let mut client = Client::connect(broker.local_addr()).await;
    produce(&mut client, 10, 5).await;
    // The first epoch ended where the second began; anything in between answers with the
    // largest epoch below it; the current one ends at the log end; a future one is unknown.
    assert_eq!(end_of(&mut client, first_epoch).await, (0, first_epoch, 10));
    assert_eq!(
        end_of(&mut client, second_epoch - 1).await,
        (0, first_epoch, 10)
    );
    assert_eq!(
        end_of(&mut client, second_epoch).await,
        (0, second_epoch, 15)
    );
    assert_eq!(end_of(&mut client, second_epoch + 5).await, (0, -1, -1));
    let tp = strom_meta::TopicIdPartition {
        topic_id,
        partition: 0,
    };
    let partition = broker.context().replicas.get(tp).unwrap();
    let entries: Vec<(i32, i64)> = partition
        .log
        .epoch_entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect();
    assert_eq!(entries, vec![(first_epoch, 0), (second_epoch, 10)]);

    // A replica fetch from broker 7, which is no replica of the partition.
    let request = FetchRequest::default()
        .with_replica_state(ReplicaState::default().with_replica_id(BrokerId(7)))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_last_fetched_epoch(first_epoch)
                .with_partition_max_bytes(1 << 20)])]);
    let response = client.send(15, request).await;
    assert_eq!(response.responses[0].partitions[0].error_code, 6);
    broker.shutdown().await;
}
