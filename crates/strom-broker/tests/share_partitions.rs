//! Share partitions through the wire (ShareFetch and ShareAcknowledge v1, raw protocol):
//! acquisition, acknowledgement, redelivery, the delivery count limit, lock expiry, share
//! sessions and their errors, bad input, and durable state across a restart.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{batch, create_topic, s, values, Client, TestBroker};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatchAck,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic, ForgottenTopic,
};
use kafka_protocol::messages::{
    GroupId, ProduceRequest, ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest,
    ShareFetchResponse, TopicName,
};
use strom_broker::{Broker, BrokerConfig, MetadataPort};
use strom_records::Compression;
use uuid::Uuid;

const GROUP: &str = "sg";
const LOCK_MS: u64 = 600;
const ACCEPT: i8 = 1;
const RELEASE: i8 = 2;
const REJECT: i8 = 3;

fn edit(config: &mut BrokerConfig) {
    config.share.record_lock_duration_ms = LOCK_MS;
    config.share.delivery_count_limit = 3;
    config.share.state_topic_num_partitions = 2;
}

fn config(dir: &std::path::Path) -> BrokerConfig {
    let mut config = BrokerConfig::test_min(dir);
    edit(&mut config);
    config
}

async fn start() -> TestBroker {
    TestBroker::start_with(edit).await
}

async fn produce(client: &mut Client, topic: &str, first: usize, count: usize) {
    let response = client
        .send(
            9,
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch(
                            first,
                            count,
                            Compression::None,
                        ))))])]),
        )
        .await;
    let code = response.responses[0].partition_responses[0].error_code;
    assert_eq!(code, 0);
}

/// A one-partition topic whose share state for [`GROUP`] is initialized (start offset -1:
/// `share.auto.offset.reset`), as the group coordinator does before it assigns a partition
/// (these tests fetch without joining the group).
async fn share_topic(client: &mut Client, name: &str) -> Uuid {
    use kafka_protocol::messages::initialize_share_group_state_request as init;
    let topic = create_topic(client, name, 1).await;
    let response = client
        .send(
            0,
            kafka_protocol::messages::InitializeShareGroupStateRequest::default()
                .with_group_id(s(GROUP))
                .with_topics(vec![init::InitializeStateData::default()
                    .with_topic_id(topic)
                    .with_partitions(vec![init::PartitionData::default()
                        .with_partition(0)
                        .with_state_epoch(0)
                        .with_start_offset(-1)])]),
        )
        .await;
    assert_eq!(
        response.results[0].partitions[0].error_code, 0,
        "{response:?}"
    );
    topic
}

/// AlterShareGroupOffsets of `group`: partition 0 of `topic` to start at `start_offset`.
fn alter_offsets(
    group: &str,
    topic: &str,
    start_offset: i64,
) -> kafka_protocol::messages::AlterShareGroupOffsetsRequest {
    use kafka_protocol::messages::alter_share_group_offsets_request::{
        AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
    };
    kafka_protocol::messages::AlterShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(vec![AlterShareGroupOffsetsRequestTopic::default()
            .with_topic_name(TopicName(s(topic)))
            .with_partitions(vec![
                AlterShareGroupOffsetsRequestPartition::default()
                    .with_partition_index(0)
                    .with_start_offset(start_offset),
            ])])
}

/// DeleteShareGroupOffsets of `group`'s state of `topic`.
fn delete_offsets(
    group: &str,
    topic: &str,
) -> kafka_protocol::messages::DeleteShareGroupOffsetsRequest {
    use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
    kafka_protocol::messages::DeleteShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(vec![
            DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(TopicName(s(topic)))
        ])
}

type Acks = Vec<(i64, i64, Vec<i8>)>;

struct Fetch<'a> {
    member: &'a str,
    epoch: i32,
    topic: Uuid,
    acks: Acks,
    max_records: i32,
    wait_ms: i32,
    forget: bool,
}

impl<'a> Fetch<'a> {
    fn new(member: &'a str, epoch: i32, topic: Uuid) -> Fetch<'a> {
        Fetch {
            member,
            epoch,
            topic,
            acks: Vec::new(),
            max_records: 100,
            wait_ms: 3000,
            forget: false,
        }
    }

    async fn send(self, client: &mut Client) -> ShareFetchResponse {
        let partition = FetchPartition::default()
            .with_partition_index(0)
            .with_acknowledgement_batches(
                self.acks
                    .iter()
                    .map(|(f, l, t)| {
                        AcknowledgementBatch::default()
                            .with_first_offset(*f)
                            .with_last_offset(*l)
                            .with_acknowledge_types(t.clone())
                    })
                    .collect(),
            );
        let mut request = ShareFetchRequest::default()
            .with_group_id(Some(GroupId(s(GROUP))))
            .with_member_id(Some(s(self.member)))
            .with_share_session_epoch(self.epoch)
            .with_max_wait_ms(self.wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_max_records(self.max_records)
            .with_batch_size(self.max_records);
        if self.forget {
            request = request.with_forgotten_topics_data(vec![ForgottenTopic::default()
                .with_topic_id(self.topic)
                .with_partitions(vec![0])]);
        } else {
            request = request.with_topics(vec![FetchTopic::default()
                .with_topic_id(self.topic)
                .with_partitions(vec![partition])]);
        }
        client.send(1, request).await
    }
}

async fn acknowledge(
    client: &mut Client,
    member: &str,
    epoch: i32,
    topic: Uuid,
    acks: Acks,
) -> ShareAcknowledgeResponse {
    client
        .send(
            1,
            ShareAcknowledgeRequest::default()
                .with_group_id(Some(GroupId(s(GROUP))))
                .with_member_id(Some(s(member)))
                .with_share_session_epoch(epoch)
                .with_topics(vec![AcknowledgeTopic::default()
                    .with_topic_id(topic)
                    .with_partitions(vec![AcknowledgePartition::default()
                        .with_partition_index(0)
                        .with_acknowledgement_batches(
                            acks.iter()
                                .map(|(f, l, t)| {
                                    AckBatchAck::default()
                                        .with_first_offset(*f)
                                        .with_last_offset(*l)
                                        .with_acknowledge_types(t.clone())
                                })
                                .collect(),
                        )])]),
        )
        .await
}

/// (first, last, delivery count) of every acquired range, and the values of the records
/// the client keeps (those inside the ranges).
fn acquired(response: &ShareFetchResponse) -> (Vec<(i64, i64, i16)>, Vec<String>) {
    assert_eq!(response.error_code, 0, "{response:?}");
    let mut ranges = Vec::new();
    let mut kept = Vec::new();
    for p in response.responses.iter().flat_map(|t| &t.partitions) {
        assert_eq!(p.error_code, 0, "{p:?}");
        for r in &p.acquired_records {
            ranges.push((r.first_offset, r.last_offset, r.delivery_count));
        }
        let records = p.records.clone().unwrap_or_default();
        // `values` walks batches in order; the records are value-N for offset N here.
        for v in values(&records) {
            let offset: i64 = v.trim_start_matches("value-").parse().unwrap();
            if ranges.iter().any(|(f, l, _)| (*f..=*l).contains(&offset)) {
                kept.push(v);
            }
        }
    }
    (ranges, kept)
}

fn ack_error(response: &ShareFetchResponse) -> i16 {
    response.responses[0].partitions[0].acknowledge_error_code
}

#[tokio::test]
async fn acquire_acknowledge_redeliver_and_archive() {
    let broker = start().await;
    let mut client = broker.client().await;
    let topic = share_topic(&mut client, "q").await;

    // The first fetch creates the share partition at the end of the log (latest).
    let first = Fetch {
        wait_ms: 0,
        ..Fetch::new("m1", 0, topic)
    }
    .send(&mut client)
    .await;
    assert_eq!(acquired(&first).0, vec![]);
    produce(&mut client, "q", 0, 10).await;

    let got = Fetch {
        max_records: 4,
        ..Fetch::new("m1", 1, topic)
    }
    .send(&mut client)
    .await;
    let (ranges, kept) = acquired(&got);
    assert_eq!(ranges, vec![(0, 3, 1)]);
    assert_eq!(kept, vec!["value-0", "value-1", "value-2", "value-3"]);
    assert_eq!(got.acquisition_lock_timeout_ms, LOCK_MS as i32);

    // A second member gets the rest, never what m1 holds.
    let got = Fetch::new("m2", 0, topic).send(&mut client).await;
    assert_eq!(acquired(&got).0, vec![(4, 9, 1)]);

    // m1: ACCEPT 0-1, RELEASE 2, REJECT 3.
    let acked = acknowledge(
        &mut client,
        "m1",
        2,
        topic,
        vec![(0, 3, vec![ACCEPT, ACCEPT, RELEASE, REJECT])],
    )
    .await;
    assert_eq!(acked.error_code, 0);
    assert_eq!(acked.responses[0].partitions[0].error_code, 0);

    // m2 accepts its records in its next fetch and gets the released one, delivered twice.
    let got = Fetch {
        acks: vec![(4, 9, vec![ACCEPT])],
        ..Fetch::new("m2", 1, topic)
    }
    .send(&mut client)
    .await;
    assert_eq!(ack_error(&got), 0);
    assert_eq!(acquired(&got).0, vec![(2, 2, 2)]);

    // m2 sits on it: after the lock duration m1 gets it (third delivery).
    let got = Fetch::new("m1", 3, topic).send(&mut client).await;
    assert_eq!(acquired(&got).0, vec![(2, 2, 3)]);
    // m2's acknowledgement comes too late: INVALID_RECORD_STATE.
    let late = acknowledge(&mut client, "m2", 2, topic, vec![(2, 2, vec![ACCEPT])]).await;
    assert_eq!(late.responses[0].partitions[0].error_code, 121);

    // Released at the delivery count limit (3): archived, never delivered again.
    let acked = acknowledge(&mut client, "m1", 4, topic, vec![(2, 2, vec![RELEASE])]).await;
    assert_eq!(acked.responses[0].partitions[0].error_code, 0);
    let got = Fetch {
        wait_ms: LOCK_MS as i32 * 2,
        ..Fetch::new("m1", 5, topic)
    }
    .send(&mut client)
    .await;
    assert_eq!(acquired(&got).0, vec![]);
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn sessions_and_bad_input_get_kafkas_errors() {
    let broker = start().await;
    let mut client = broker.client().await;
    let topic = share_topic(&mut client, "q").await;
    let opened = Fetch {
        wait_ms: 0,
        ..Fetch::new("m1", 0, topic)
    }
    .send(&mut client)
    .await;
    assert_eq!(opened.error_code, 0);

    // Wrong epoch, unknown session, acknowledgements when opening a session.
    let wrong = Fetch::new("m1", 7, topic).send(&mut client).await;
    assert_eq!(wrong.error_code, 123);
    let unknown = Fetch::new("nobody", 3, topic).send(&mut client).await;
    assert_eq!(unknown.error_code, 122);
    let opening_with_acks = Fetch {
        acks: vec![(0, 0, vec![ACCEPT])],
        ..Fetch::new("m9", 0, topic)
    }
    .send(&mut client)
    .await;
    assert_eq!(opening_with_acks.error_code, 42);
    let ack_zero = acknowledge(&mut client, "m1", 0, topic, vec![(0, 0, vec![ACCEPT])]).await;
    assert_eq!(ack_zero.error_code, 123);
    let ack_unknown = acknowledge(&mut client, "nobody", 1, topic, vec![]).await;
    assert_eq!(ack_unknown.error_code, 122);

    // Acknowledging what the member does not hold, a bad type, an absurd range.
    produce(&mut client, "q", 0, 3).await;
    let got = Fetch::new("m1", 1, topic).send(&mut client).await;
    assert_eq!(acquired(&got).0, vec![(0, 2, 1)]);
    // Past the last record in flight: Kafka's "batch record not found" (INVALID_REQUEST).
    let not_held = acknowledge(&mut client, "m1", 2, topic, vec![(5, 5, vec![ACCEPT])]).await;
    assert_eq!(not_held.responses[0].partitions[0].error_code, 42);
    let bad_type = acknowledge(&mut client, "m1", 3, topic, vec![(0, 0, vec![9])]).await;
    assert_eq!(bad_type.responses[0].partitions[0].error_code, 42);
    // A huge range with one type per offset it cannot carry.
    let huge = acknowledge(
        &mut client,
        "m1",
        4,
        topic,
        vec![(0, i64::MAX - 1, vec![ACCEPT, ACCEPT])],
    )
    .await;
    assert_eq!(huge.responses[0].partitions[0].error_code, 42);
    let inverted = acknowledge(&mut client, "m1", 5, topic, vec![(2, 0, vec![ACCEPT])]).await;
    assert_eq!(inverted.responses[0].partitions[0].error_code, 42);
    // Another member acknowledging them: INVALID_RECORD_STATE.
    let other = Fetch {
        wait_ms: 0,
        ..Fetch::new("m9", 0, topic)
    }
    .send(&mut client)
    .await;
    assert_eq!(acquired(&other).0, vec![], "{other:?}");
    let not_theirs = acknowledge(&mut client, "m9", 1, topic, vec![(0, 0, vec![ACCEPT])]).await;
    assert_eq!(not_theirs.responses[0].partitions[0].error_code, 121);
    // Nothing was applied by the refused acknowledgements: they still hold. A range past
    // the last record in flight is refused whole (Kafka's "past acquired records").
    let past = acknowledge(
        &mut client,
        "m1",
        6,
        topic,
        vec![(0, i64::MAX - 1, vec![ACCEPT])],
    )
    .await;
    assert_eq!(past.responses[0].partitions[0].error_code, 42);
    let ok = acknowledge(&mut client, "m1", 7, topic, vec![(0, 2, vec![ACCEPT])]).await;
    assert_eq!(ok.responses[0].partitions[0].error_code, 0);

    // An unknown topic id is a per-partition error.
    let unknown_topic = Fetch::new("m2", 0, Uuid::from_u128(77))
        .send(&mut client)
        .await;
    assert_eq!(unknown_topic.error_code, 0);
    assert_eq!(unknown_topic.responses[0].partitions[0].error_code, 100);
    // Forgetting the partition leaves nothing to fetch; the session goes on.
    let forgot = Fetch {
        forget: true,
        wait_ms: 100,
        ..Fetch::new("m2", 1, Uuid::from_u128(77))
    }
    .send(&mut client)
    .await;
    assert_eq!(forgot.error_code, 0);
    assert!(forgot.responses.is_empty(), "{forgot:?}");

    // The broker still serves after all of it.
    let closed = Fetch {
        wait_ms: 0,
        ..Fetch::new("m1", -1, topic)
    }
    .send(&mut client)
    .await;
    assert_eq!(closed.error_code, 0);
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn closing_a_session_releases_its_records_at_once() {
    let broker = start().await;
    let mut client = broker.client().await;
    let topic = share_topic(&mut client, "q").await;
    Fetch {
        wait_ms: 0,
        ..Fetch::new("m1", 0, topic)
    }
    .send(&mut client)
    .await;
    produce(&mut client, "q", 0, 5).await;
    let got = Fetch::new("m1", 1, topic).send(&mut client).await;
    assert_eq!(acquired(&got).0, vec![(0, 4, 1)]);
    // Close with an acknowledgement of the first two (epoch -1 fetches nothing).
    let closed = Fetch {
        acks: vec![(0, 1, vec![ACCEPT])],
        ..Fetch::new("m1", -1, topic)
    }
    .send(&mut client)
    .await;
    assert_eq!(ack_error(&closed), 0);
    assert!(closed.responses[0].partitions[0]
        .acquired_records
        .is_empty());
    // Long before the lock would expire, m2 gets the rest.
    let started = Instant::now();
    let got = Fetch::new("m2", 0, topic).send(&mut client).await;
    assert_eq!(acquired(&got).0, vec![(2, 4, 2)]);
    assert!(started.elapsed() < Duration::from_millis(LOCK_MS));
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn acknowledged_records_stay_acknowledged_across_a_restart() {
    let broker = start().await;
    let mut client = broker.client().await;
    let topic = share_topic(&mut client, "q").await;
    Fetch {
        wait_ms: 0,
        ..Fetch::new("m1", 0, topic)
    }
    .send(&mut client)
    .await;
    produce(&mut client, "q", 0, 6).await;
    let got = Fetch::new("m1", 1, topic).send(&mut client).await;
    assert_eq!(acquired(&got).0, vec![(0, 5, 1)]);
    let acked = acknowledge(
        &mut client,
        "m1",
        2,
        topic,
        vec![(0, 3, vec![ACCEPT, REJECT, ACCEPT, RELEASE])],
    )
    .await;
    assert_eq!(acked.responses[0].partitions[0].error_code, 0);

    // Restart on the same directory and quorum.
    let TestBroker {
        broker,
        metadata,
        dir,
    } = broker;
    drop(client);
    broker.shutdown().await;
    let port: Arc<dyn MetadataPort> = metadata.clone();
    let broker = Broker::start(config(dir.path()), port).await.unwrap();
    let mut client = Client::connect(broker.local_addr()).await;

    // Only the released record and the ones still acquired come back, each with the
    // delivery count it had plus this delivery; 0-2 are done for good.
    let got = Fetch::new("m1", 0, topic).send(&mut client).await;
    let (ranges, kept) = acquired(&got);
    assert_eq!(ranges, vec![(3, 5, 2)]);
    assert_eq!(kept, vec!["value-3", "value-4", "value-5"]);
    let acked = acknowledge(&mut client, "m1", 1, topic, vec![(3, 5, vec![ACCEPT])]).await;
    assert_eq!(acked.responses[0].partitions[0].error_code, 0);
    produce(&mut client, "q", 6, 1).await;
    let got = Fetch::new("m1", 2, topic).send(&mut client).await;
    assert_eq!(acquired(&got).0, vec![(6, 6, 1)]);
    broker.shutdown().await;
}

#[tokio::test]
async fn share_group_offsets_describe_alter_delete_and_find_coordinator() {
    use kafka_protocol::messages::describe_share_group_offsets_request::{
        DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
    };
    use kafka_protocol::messages::{DescribeShareGroupOffsetsRequest, FindCoordinatorRequest};

    let broker = start().await;
    let mut client = broker.client().await;
    let topic = share_topic(&mut client, "q").await;
    Fetch {
        wait_ms: 0,
        ..Fetch::new("m1", 0, topic)
    }
    .send(&mut client)
    .await;
    produce(&mut client, "q", 0, 8).await;
    let got = Fetch {
        max_records: 5,
        ..Fetch::new("m1", 1, topic)
    }
    .send(&mut client)
    .await;
    assert_eq!(acquired(&got).0, vec![(0, 4, 1)]);
    let acked = acknowledge(&mut client, "m1", 2, topic, vec![(0, 4, vec![ACCEPT])]).await;
    assert_eq!(acked.responses[0].partitions[0].error_code, 0);

    let describe = |topics: Option<Vec<DescribeShareGroupOffsetsRequestTopic>>| {
        DescribeShareGroupOffsetsRequest::default().with_groups(vec![
            DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(GroupId(s(GROUP)))
                .with_topics(topics),
        ])
    };
    let all = client.send(0, describe(None)).await;
    let p = &all.groups[0].topics[0].partitions[0];
    assert_eq!(all.groups[0].topics[0].topic_id, topic);
    assert_eq!(all.groups[0].topics[0].topic_name.0.as_str(), "q");
    assert_eq!((p.partition_index, p.start_offset, p.error_code), (0, 5, 0));
    let named = client
        .send(
            0,
            describe(Some(vec![
                DescribeShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(TopicName(s("q")))
                    .with_partitions(vec![0]),
                DescribeShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(TopicName(s("nope")))
                    .with_partitions(vec![0]),
            ])),
        )
        .await;
    assert_eq!(named.groups[0].topics[0].partitions[0].start_offset, 5);
    assert_eq!(named.groups[0].topics[1].partitions[0].error_code, 3);

    // Alter: the share partition starts afresh at offset 1 (a new state epoch).
    let altered = client.send(0, alter_offsets(GROUP, "q", 1)).await;
    assert_eq!(altered.error_code, 0);
    assert_eq!(altered.responses[0].partitions[0].error_code, 0);
    let got = Fetch {
        max_records: 2,
        ..Fetch::new("m1", 3, topic)
    }
    .send(&mut client)
    .await;
    assert_eq!(acquired(&got).0, vec![(1, 2, 1)]);

    // Delete: no state left; the next fetch starts at the end (latest).
    let deleted = client.send(0, delete_offsets(GROUP, "q")).await;
    assert_eq!(deleted.error_code, 0);
    assert_eq!(deleted.responses[0].error_code, 0);
    let all = client.send(0, describe(None)).await;
    assert!(all.groups[0].topics.is_empty(), "{all:?}");

    // FindCoordinator(SHARE) names this broker for a well-formed key, refuses a bad one.
    let key = format!("{GROUP}:{}:0", "AAAAAAAAAAAAAAAAAAAAAA");
    let found = client
        .send(
            4,
            FindCoordinatorRequest::default()
                .with_key_type(2)
                .with_coordinator_keys(vec![s(&key), s("no-colons")]),
        )
        .await;
    assert_eq!(found.coordinators[0].error_code, 0, "{found:?}");
    assert_eq!(found.coordinators[0].port, i32::from(broker.addr().port()));
    assert_eq!(found.coordinators[1].error_code, 42);
    broker.broker.shutdown().await;
}

#[tokio::test]
async fn share_coordinator_rpcs_initialize_write_read_delete_with_fencing() {
    use kafka_protocol::messages::{
        delete_share_group_state_request as del, initialize_share_group_state_request as init,
        read_share_group_state_request as read, read_share_group_state_summary_request as sum,
        write_share_group_state_request as write, DeleteShareGroupStateRequest,
        InitializeShareGroupStateRequest, ReadShareGroupStateRequest,
        ReadShareGroupStateSummaryRequest, WriteShareGroupStateRequest,
    };
    let broker = start().await;
    let mut client = broker.client().await;
    let topic = Uuid::from_u128(0x1234);
    let init_at = |epoch: i32, start: i64| {
        InitializeShareGroupStateRequest::default()
            .with_group_id(s("g1"))
            .with_topics(vec![init::InitializeStateData::default()
                .with_topic_id(topic)
                .with_partitions(vec![init::PartitionData::default()
                    .with_partition(3)
                    .with_state_epoch(epoch)
                    .with_start_offset(start)])])
    };
    let write_at = |epoch: i32, batches: Vec<(i64, i64, i8, i16)>| {
        WriteShareGroupStateRequest::default()
            .with_group_id(s("g1"))
            .with_topics(vec![write::WriteStateData::default()
                .with_topic_id(topic)
                .with_partitions(vec![write::PartitionData::default()
                    .with_partition(3)
                    .with_state_epoch(epoch)
                    .with_leader_epoch(0)
                    .with_start_offset(12)
                    .with_state_batches(
                        batches
                            .into_iter()
                            .map(|(f, l, st, d)| {
                                write::StateBatch::default()
                                    .with_first_offset(f)
                                    .with_last_offset(l)
                                    .with_delivery_state(st)
                                    .with_delivery_count(d)
                            })
                            .collect(),
                    )])])
    };
    let read_now = ReadShareGroupStateRequest::default()
        .with_group_id(s("g1"))
        .with_topics(vec![read::ReadStateData::default()
            .with_topic_id(topic)
            .with_partitions(vec![read::PartitionData::default()
                .with_partition(3)
                .with_leader_epoch(0)])]);

    let unknown = client.send(0, read_now.clone()).await;
    assert_eq!(unknown.results[0].partitions[0].error_code, 3);
    let done = client.send(0, init_at(1, 10)).await;
    assert_eq!(done.results[0].partitions[0].error_code, 0);
    let fenced = client.send(0, init_at(1, 10)).await;
    assert_eq!(fenced.results[0].partitions[0].error_code, 124);
    let written = client
        .send(0, write_at(1, vec![(12, 14, 0, 2), (15, 15, 2, 1)]))
        .await;
    assert_eq!(written.results[0].partitions[0].error_code, 0);
    let bad_state = client.send(0, write_at(1, vec![(16, 16, 3, 1)])).await;
    assert_eq!(bad_state.results[0].partitions[0].error_code, 42);
    let old_epoch = client.send(0, write_at(0, vec![])).await;
    assert_eq!(old_epoch.results[0].partitions[0].error_code, 124);

    let state = client.send(0, read_now.clone()).await;
    let p = &state.results[0].partitions[0];
    assert_eq!((p.error_code, p.state_epoch, p.start_offset), (0, 1, 12));
    let batches: Vec<(i64, i64, i8, i16)> = p
        .state_batches
        .iter()
        .map(|b| {
            (
                b.first_offset,
                b.last_offset,
                b.delivery_state,
                b.delivery_count,
            )
        })
        .collect();
    assert_eq!(batches, vec![(12, 14, 0, 2), (15, 15, 2, 1)]);
    let summary = client
        .send(
            0,
            ReadShareGroupStateSummaryRequest::default()
                .with_group_id(s("g1"))
                .with_topics(vec![sum::ReadStateSummaryData::default()
                    .with_topic_id(topic)
                    .with_partitions(vec![
                        sum::PartitionData::default().with_partition(3)
                    ])]),
        )
        .await;
    let p = &summary.results[0].partitions[0];
    assert_eq!((p.error_code, p.state_epoch, p.start_offset), (0, 1, 12));

    let deleted = client
        .send(
            0,
            DeleteShareGroupStateRequest::default()
                .with_group_id(s("g1"))
                .with_topics(vec![del::DeleteStateData::default()
                    .with_topic_id(topic)
                    .with_partitions(vec![
                        del::PartitionData::default().with_partition(3)
                    ])]),
        )
        .await;
    assert_eq!(deleted.results[0].partitions[0].error_code, 0);
    let gone = client.send(0, read_now).await;
    assert_eq!(gone.results[0].partitions[0].error_code, 3);
    broker.broker.shutdown().await;
}

/// `strom.share.partitions.max` and `strom.share.partition.idle.ms`: a share partition with
/// acquired records stays in memory however idle, and a fetch of another one is refused
/// while it fills the bound; once acknowledged it is evicted (least recently used first) to
/// make room, and read again from its durable state on its next fetch (acknowledged records
/// stay acknowledged, released ones keep their delivery count); idle ones leave memory.
#[tokio::test]
async fn share_partitions_are_bounded_and_idle_ones_leave_memory_but_never_with_locks() {
    let broker = TestBroker::start_with(|config| {
        edit(config);
        config.share.record_lock_duration_ms = 5_000;
        config.share.partitions_max = 1;
        config.share.partition_idle_ms = 200;
    })
    .await;
    let mut client = broker.client().await;
    let q1 = share_topic(&mut client, "q1").await;
    let q2 = share_topic(&mut client, "q2").await;
    let shares = &broker.broker.context().shares;

    let opened = Fetch {
        wait_ms: 0,
        ..Fetch::new("m1", 0, q1)
    }
    .send(&mut client)
    .await;
    assert_eq!(acquired(&opened).0, vec![]);
    produce(&mut client, "q1", 0, 5).await;
    let got = Fetch::new("m1", 1, q1).send(&mut client).await;
    assert_eq!(acquired(&got).0, vec![(0, 4, 1)]);

    // Past the idle period and several sweeps: q1 holds locks, so it stays.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(shares.hosted_count(), 1);
    let refused = Fetch {
        wait_ms: 0,
        ..Fetch::new("m2", 0, q2)
    }
    .send(&mut client)
    .await;
    assert_eq!(refused.error_code, 0, "{refused:?}");
    assert_eq!(refused.responses[0].partitions[0].error_code, -1);
    assert_eq!(shares.hosted_count(), 1);

    let acked = acknowledge(
        &mut client,
        "m1",
        2,
        q1,
        vec![(0, 4, vec![ACCEPT, ACCEPT, ACCEPT, RELEASE, RELEASE])],
    )
    .await;
    assert_eq!(acked.responses[0].partitions[0].error_code, 0);
    // Nothing acquired now: q1 makes room for q2.
    let got = Fetch {
        wait_ms: 0,
        ..Fetch::new("m2", 1, q2)
    }
    .send(&mut client)
    .await;
    assert_eq!(acquired(&got).0, vec![]);
    assert_eq!(shares.hosted_count(), 1);

    // q1 comes back from its durable state (q2 makes room): the released records only,
    // delivered a second time.
    let got = Fetch::new("m1", 3, q1).send(&mut client).await;
    let (ranges, kept) = acquired(&got);
    assert_eq!(ranges, vec![(3, 4, 2)]);
    assert_eq!(kept, vec!["value-3", "value-4"]);
    let acked = acknowledge(&mut client, "m1", 4, q1, vec![(3, 4, vec![ACCEPT])]).await;
    assert_eq!(acked.responses[0].partitions[0].error_code, 0);

    // Nothing acquired, nothing used: it leaves memory.
    let deadline = Instant::now() + Duration::from_secs(10);
    while shares.hosted_count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shares.hosted_count(), 0);
    // And everything acknowledged stays so.
    let got = Fetch {
        wait_ms: 300,
        ..Fetch::new("m1", 5, q1)
    }
    .send(&mut client)
    .await;
    assert_eq!(acquired(&got).0, vec![]);
    broker.broker.shutdown().await;
}

/// A deleted topic's share state leaves `__share_group_state` (every group's) and its share
/// partitions leave memory; another topic's state stays.
#[tokio::test]
async fn deleting_a_topic_deletes_its_share_state() {
    use kafka_protocol::messages::{
        read_share_group_state_summary_request as sum, DeleteTopicsRequest,
        ReadShareGroupStateSummaryRequest,
    };
    let broker = start().await;
    let mut client = broker.client().await;
    let doomed = share_topic(&mut client, "doomed").await;
    let kept = share_topic(&mut client, "kept").await;
    let opened = Fetch {
        wait_ms: 0,
        ..Fetch::new("m1", 0, doomed)
    }
    .send(&mut client)
    .await;
    assert_eq!(acquired(&opened).0, vec![]);
    produce(&mut client, "doomed", 0, 3).await;
    let got = Fetch::new("m1", 1, doomed).send(&mut client).await;
    assert_eq!(acquired(&got).0, vec![(0, 2, 1)]);
    assert_eq!(broker.broker.context().shares.hosted_count(), 1);

    let summary = |topic: Uuid| {
        ReadShareGroupStateSummaryRequest::default()
            .with_group_id(s(GROUP))
            .with_topics(vec![sum::ReadStateSummaryData::default()
                .with_topic_id(topic)
                .with_partitions(vec![
                    sum::PartitionData::default().with_partition(0)
                ])])
    };
    let before = client.send(0, summary(doomed)).await;
    assert_eq!(before.results[0].partitions[0].error_code, 0);

    let deleted = client
        .send(
            4,
            DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("doomed"))]),
        )
        .await;
    assert_eq!(deleted.responses[0].error_code, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut code = 0;
    while Instant::now() < deadline {
        code = client.send(0, summary(doomed)).await.results[0].partitions[0].error_code;
        if code != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(code, 3, "the deleted topic's share state is still there");
    assert_eq!(broker.broker.context().shares.hosted_count(), 0);
    let other = client.send(0, summary(kept)).await;
    assert_eq!(other.results[0].partitions[0].error_code, 0);
    broker.broker.shutdown().await;
}

/// Alter/DeleteShareGroupOffsets refusals as Kafka 4.2's group coordinator answers them: the
/// id of a consumer group is GROUP_ID_NOT_FOUND ("is not a share group", nothing written),
/// an unknown id is GROUP_ID_NOT_FOUND for a delete and becomes an empty share group for an
/// alter (listed as such, its offsets deletable), NON_EMPTY_GROUP in Kafka's words.
#[tokio::test]
async fn share_group_offsets_admin_refusals_match_kafka() {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{
        AlterShareGroupOffsetsResponse, DeleteShareGroupOffsetsResponse, ListGroupsRequest,
        OffsetCommitRequest,
    };

    /// Coordinator not ready yet (loading, or `__consumer_offsets` being created): asked
    /// again, boundedly.
    const NOT_READY: [i16; 3] = [14, 15, 16];
    async fn alter(client: &mut Client, group: &str) -> AlterShareGroupOffsetsResponse {
        for _ in 0..1_500 {
            let response = client.send(0, alter_offsets(group, "q", 0)).await;
            if !NOT_READY.contains(&response.error_code) {
                return response;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the coordinator of {group} never became ready");
    }
    async fn delete(client: &mut Client, group: &str) -> DeleteShareGroupOffsetsResponse {
        for _ in 0..1_500 {
            let response = client.send(0, delete_offsets(group, "q")).await;
            if !NOT_READY.contains(&response.error_code) {
                return response;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the coordinator of {group} never became ready");
    }

    let broker = start().await;
    let mut client = broker.client().await;
    share_topic(&mut client, "q").await;
    // A consumer group that only committed an offset (generation -1, as an admin does).
    let found = client
        .send(
            3,
            kafka_protocol::messages::FindCoordinatorRequest::default().with_key(s("cg")),
        )
        .await;
    assert_eq!(found.error_code, 0, "{found:?}");
    common::wait_loaded(&mut client, "cg").await;
    let committed = client
        .send(
            8,
            OffsetCommitRequest::default()
                .with_group_id(GroupId(s("cg")))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(s(""))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("q")))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1)
                        .with_committed_leader_epoch(-1)])]),
        )
        .await;
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);

    let refused = alter(&mut client, "cg").await;
    assert_eq!(refused.error_code, 69, "{refused:?}");
    assert_eq!(
        refused.error_message.as_ref().map(|m| m.as_str()),
        Some("Group cg is not a share group.")
    );
    assert!(refused.responses.is_empty());
    let refused = delete(&mut client, "cg").await;
    assert_eq!(refused.error_code, 69, "{refused:?}");

    let unknown = delete(&mut client, "nobody").await;
    assert_eq!(unknown.error_code, 69, "{unknown:?}");
    assert_eq!(
        unknown.error_message.as_ref().map(|m| m.as_str()),
        Some("Group nobody not found.")
    );

    // Alter makes the share group (Kafka 4.2): listed as an empty share group.
    let made = alter(&mut client, "fresh").await;
    assert_eq!(made.error_code, 0, "{made:?}");
    assert_eq!(made.responses[0].partitions[0].error_code, 0);
    let listed = client.send(5, ListGroupsRequest::default()).await;
    let fresh = listed
        .groups
        .iter()
        .find(|g| g.group_id.0.as_str() == "fresh")
        .unwrap_or_else(|| panic!("fresh not listed: {listed:?}"));
    assert_eq!(
        (fresh.group_type.as_str(), fresh.group_state.as_str()),
        ("share", "Empty")
    );
    let cg = listed
        .groups
        .iter()
        .find(|g| g.group_id.0.as_str() == "cg")
        .unwrap_or_else(|| panic!("cg not listed: {listed:?}"));
    assert_ne!(cg.group_type.as_str(), "share");
    let deleted = delete(&mut client, "fresh").await;
    assert_eq!(deleted.error_code, 0, "{deleted:?}");
    assert_eq!(deleted.responses[0].error_code, 0, "{deleted:?}");
    broker.broker.shutdown().await;
}
