//! The share consumer (KIP-932) against the real `strom` binary: three members share a
//! one-partition topic and together get every record exactly once under ACCEPT; RELEASE
//! redelivers with a growing delivery count until the delivery count limit archives the
//! record; REJECT archives at once; a member that closes with records unacknowledged gives
//! them back at once; the share-partition start offset follows.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Broker;
use strom_client::{
    AcknowledgeType, Producer, ProducerRecord, ShareAcknowledgementMode, ShareConsumer,
    ShareConsumerConfig, ShareRecord, TopicPartition,
};

const DELIVERY_LIMIT: i16 = 3;
const BROKER_ARGS: [&str; 5] = [
    "group.share.min.heartbeat.interval.ms=500",
    "group.share.heartbeat.interval.ms=500",
    "group.share.delivery.count.limit=3",
    "share.coordinator.state.topic.num.partitions=1",
    "strom.log.durability=sync-on-commit",
];
const WAIT: Duration = Duration::from_secs(60);

fn share_config(
    broker: &Broker,
    group: &str,
    mode: ShareAcknowledgementMode,
) -> ShareConsumerConfig {
    let mut c = ShareConsumerConfig::new(&broker.bootstrap, group);
    c.client = broker.client_config();
    c.fetch_max_wait_ms = 200;
    c.acknowledgement_mode = mode;
    c
}

async fn produce(broker: &Broker, topic: &str, count: usize) {
    let producer = Producer::new(broker.producer_config()).unwrap();
    let mut futures = Vec::new();
    for i in 0..count {
        let record = ProducerRecord::new(topic, format!("v{i}")).partition(0);
        futures.push(producer.send(record).await.unwrap());
    }
    for f in futures {
        f.await.unwrap();
    }
    producer.close().await.unwrap();
}

/// Sets the group's start offset of partition 0 to 0, so records produced before the
/// members join are delivered (`share.auto.offset.reset` defaults to latest).
async fn start_at_zero(broker: &Broker, group: &str, topic: &str) {
    let offsets = BTreeMap::from([(TopicPartition::new(topic, 0), 0)]);
    let results = broker
        .admin()
        .alter_share_group_offsets(group, &offsets)
        .await
        .unwrap();
    assert_eq!(results.len(), 1);
    for (tp, r) in results {
        r.unwrap_or_else(|e| panic!("{tp}: {e}"));
    }
}

/// Polls until `count` records arrived or `WAIT` passed.
async fn poll_for(consumer: &mut ShareConsumer, count: usize) -> Vec<ShareRecord> {
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < count && start.elapsed() < WAIT {
        out.extend(consumer.poll(Duration::from_millis(300)).await.unwrap());
    }
    out
}

/// The group's share-partition start offset of partition 0, once it reaches `want`
/// (bounded wait), else the last one seen.
async fn start_offset(broker: &Broker, group: &str, topic: &str, want: i64) -> Option<i64> {
    let admin = broker.admin();
    let tp = TopicPartition::new(topic, 0);
    let mut last = None;
    for _ in 0..50 {
        last = admin
            .list_share_group_offsets(group)
            .await
            .unwrap()
            .get(&tp)
            .map(|s| s.start_offset);
        if last == Some(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_get_every_record_exactly_once_under_accept() {
    let broker = Broker::start(&BROKER_ARGS);
    let (topic, group) = ("queue", "workers");
    broker.create_topic(topic, 1).await;
    const N: usize = 300;
    produce(&broker, topic, N).await;
    start_at_zero(&broker, group, topic).await;

    let total = Arc::new(AtomicUsize::new(0));
    let mut members = Vec::new();
    for _ in 0..3 {
        let config = share_config(&broker, group, ShareAcknowledgementMode::Implicit);
        let total = total.clone();
        members.push(tokio::spawn(async move {
            let mut consumer = ShareConsumer::new(config).unwrap();
            consumer.subscribe(vec![topic.to_string()]).await.unwrap();
            let start = Instant::now();
            let mut got = Vec::new();
            while total.load(Ordering::SeqCst) < N && start.elapsed() < WAIT {
                let records = consumer.poll(Duration::from_millis(300)).await.unwrap();
                total.fetch_add(records.len(), Ordering::SeqCst);
                got.extend(
                    records
                        .into_iter()
                        .map(|r| (r.record.offset, r.delivery_count)),
                );
            }
            let errors = consumer.take_acknowledgement_errors();
            assert!(errors.is_empty(), "{errors:?}");
            let closed = consumer.close().await.unwrap();
            for (tp, r) in closed {
                r.unwrap_or_else(|e| panic!("acknowledging {tp} on close: {e}"));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for m in members {
        all.extend(m.await.unwrap());
    }
    all.sort();
    let offsets: Vec<i64> = all.iter().map(|(o, _)| *o).collect();
    assert_eq!(
        offsets,
        (0..N as i64).collect::<Vec<_>>(),
        "each record once"
    );
    assert!(all.iter().all(|(_, count)| *count == 1), "{all:?}");
    // Every record accepted: the start offset moved past all of them.
    assert_eq!(
        start_offset(&broker, group, topic, N as i64).await,
        Some(N as i64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_redelivers_until_the_limit_and_reject_archives() {
    let broker = Broker::start(&BROKER_ARGS);
    let (topic, group) = ("acks", "ackers");
    broker.create_topic(topic, 1).await;
    produce(&broker, topic, 4).await;
    start_at_zero(&broker, group, topic).await;

    let config = share_config(&broker, group, ShareAcknowledgementMode::Explicit);
    let mut consumer = ShareConsumer::new(config).unwrap();
    consumer.subscribe(vec![topic.to_string()]).await.unwrap();
    let first = poll_for(&mut consumer, 4).await;
    let firsts: Vec<(i64, i16)> = first
        .iter()
        .map(|r| (r.record.offset, r.delivery_count))
        .collect();
    assert_eq!(firsts, vec![(0, 1), (1, 1), (2, 1), (3, 1)]);
    // Explicit mode: no poll before every record is acknowledged.
    assert!(consumer.poll(Duration::from_millis(10)).await.is_err());
    let kinds = [
        AcknowledgeType::Accept,
        AcknowledgeType::Release,
        AcknowledgeType::Reject,
        AcknowledgeType::Release,
    ];
    for (r, kind) in first.iter().zip(kinds) {
        consumer.acknowledge(r, kind).unwrap();
    }
    // The first round goes in a ShareAcknowledge, the next ones ride on ShareFetch.
    let committed = consumer.commit_sync().await.unwrap();
    assert_eq!(committed.len(), 1, "{committed:?}");
    for (tp, r) in committed {
        r.unwrap_or_else(|e| panic!("{tp}: {e}"));
    }

    let mut deliveries: BTreeMap<i64, Vec<i16>> = BTreeMap::new();
    for r in &first {
        deliveries
            .entry(r.record.offset)
            .or_default()
            .push(r.delivery_count);
    }
    // Releases until the limit: 1 and 3 come back with counts 2 and 3, then are archived.
    let start = Instant::now();
    let mut quiet_since = Instant::now();
    while start.elapsed() < WAIT && quiet_since.elapsed() < Duration::from_secs(3) {
        let records = consumer.poll(Duration::from_millis(300)).await.unwrap();
        if !records.is_empty() {
            quiet_since = Instant::now();
        }
        for r in &records {
            deliveries
                .entry(r.record.offset)
                .or_default()
                .push(r.delivery_count);
            consumer.acknowledge(r, AcknowledgeType::Release).unwrap();
        }
    }
    let errors = consumer.take_acknowledgement_errors();
    assert!(errors.is_empty(), "{errors:?}");
    let limit: Vec<i16> = (1..=DELIVERY_LIMIT).collect();
    let expected = BTreeMap::from([(0, vec![1]), (1, limit.clone()), (2, vec![1]), (3, limit)]);
    assert_eq!(deliveries, expected);
    consumer.close().await.unwrap();
    // Accepted, rejected and archived after the limit: nothing is left before offset 4.
    assert_eq!(start_offset(&broker, group, topic, 4).await, Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_with_records_unacknowledged_gives_them_to_another_member() {
    let broker = Broker::start(&BROKER_ARGS);
    let (topic, group) = ("handover", "pair");
    broker.create_topic(topic, 1).await;
    produce(&broker, topic, 5).await;
    start_at_zero(&broker, group, topic).await;

    let mut first = ShareConsumer::new(share_config(
        &broker,
        group,
        ShareAcknowledgementMode::Explicit,
    ))
    .unwrap();
    first.subscribe(vec![topic.to_string()]).await.unwrap();
    let got = poll_for(&mut first, 5).await;
    assert_eq!(got.len(), 5);
    assert!(first.member_epoch() > 0);
    let results = first.close().await.unwrap();
    assert!(results.values().all(Result::is_ok), "{results:?}");

    let mut second = ShareConsumer::new(share_config(
        &broker,
        group,
        ShareAcknowledgementMode::Implicit,
    ))
    .unwrap();
    second.subscribe(vec![topic.to_string()]).await.unwrap();
    let again = poll_for(&mut second, 5).await;
    let seen: Vec<(i64, i16)> = again
        .iter()
        .map(|r| (r.record.offset, r.delivery_count))
        .collect();
    // Released on close without waiting for the lock; the next acquisition counts.
    assert_eq!(seen, (0..5).map(|o| (o, 2)).collect::<Vec<_>>());
    let values: Vec<String> = again
        .iter()
        .map(|r| String::from_utf8(r.record.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values, ["v0", "v1", "v2", "v3", "v4"]);
    second.close().await.unwrap();
    assert_eq!(start_offset(&broker, group, topic, 5).await, Some(5));
}
