//! Producer and consumer against the real `strom` binary.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Broker;
use strom_client::producer::partitioner::partition_for_key;
use strom_client::{
    Compression, Consumer, ConsumerRecord, Producer, ProducerRecord, TopicPartition,
};

/// Polls until `count` records arrived or 20 s passed.
async fn consume(consumer: &mut Consumer, count: usize) -> Vec<ConsumerRecord> {
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < count && start.elapsed() < Duration::from_secs(20) {
        out.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    out
}

fn text(b: &Option<Bytes>) -> String {
    String::from_utf8(b.clone().unwrap_or_default().to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_round_trips() {
    let broker = Broker::start(&[]);
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let topic = format!("c-{}", compression.name());
        broker.create_topic(&topic, 2).await;
        let mut config = broker.producer_config();
        config.compression = compression;
        let producer = Producer::new(config).unwrap();
        let mut futures = Vec::new();
        for i in 0..50 {
            let record = ProducerRecord::new(topic.clone(), format!("value-{i}"))
                .key(format!("key-{i}"))
                .header("h", Some(Bytes::from(format!("{i}"))));
            futures.push(producer.send(record).await.unwrap());
        }
        for f in futures {
            f.await.unwrap();
        }
        producer.close().await.unwrap();

        let mut consumer = Consumer::new(broker.consumer_config(None)).unwrap();
        let parts = vec![
            TopicPartition::new(&topic, 0),
            TopicPartition::new(&topic, 1),
        ];
        consumer.assign(parts.clone()).await.unwrap();
        consumer.seek_to_beginning(&parts).await.unwrap();
        let records = consume(&mut consumer, 50).await;
        assert_eq!(records.len(), 50, "{compression:?}");
        let mut seen = BTreeSet::new();
        for r in &records {
            let i: usize = text(&r.key).trim_start_matches("key-").parse().unwrap();
            assert_eq!(text(&r.value), format!("value-{i}"));
            assert_eq!(r.headers[0].key.as_ref(), b"h");
            assert_eq!(text(&r.headers[0].value), i.to_string());
            assert!(seen.insert(i), "duplicate {i}");
        }
        consumer.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_land_where_the_java_partitioner_puts_them() {
    let broker = Broker::start(&[]);
    broker.create_topic("keyed", 5).await;
    let producer = Producer::new(broker.producer_config()).unwrap();
    // Java: Utils.toPositive(Utils.murmur2("foobar".getBytes())) % 5 == 1358151166 % 5 == 1.
    assert_eq!(partition_for_key(b"foobar", 5), 1);
    let md = producer
        .send(ProducerRecord::new("keyed", "x").key("foobar"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(md.partition, 1);
    for i in 0..40 {
        let key = format!("user-{i}");
        let md = producer
            .send(ProducerRecord::new("keyed", "v").key(key.clone()))
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(md.partition, partition_for_key(key.as_bytes(), 5), "{key}");
    }
    // Keyless records stick to one partition per batch.
    let mut futures = Vec::new();
    for _ in 0..10 {
        futures.push(
            producer
                .send(ProducerRecord::new("keyed", "sticky"))
                .await
                .unwrap(),
        );
    }
    let mut partitions = BTreeSet::new();
    for f in futures {
        partitions.insert(f.await.unwrap().partition);
    }
    assert_eq!(partitions.len(), 1, "{partitions:?}");
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_write_each_record_once() {
    let broker = Broker::start(&[]);
    broker.create_topic("idem", 1).await;
    let producer = Producer::new(broker.producer_config()).unwrap();
    // The broker writes the first two requests but their answers are "lost": the
    // producer resends the same batches with the same sequence numbers.
    producer.drop_next_responses(2);
    let mut futures = Vec::new();
    for i in 0..20 {
        futures.push(
            producer
                .send(ProducerRecord::new("idem", format!("{i}")).partition(0))
                .await
                .unwrap(),
        );
        if i % 5 == 4 {
            producer.flush().await.unwrap();
        }
    }
    for f in futures {
        f.await.unwrap();
    }
    producer.close().await.unwrap();

    let mut consumer = Consumer::new(broker.consumer_config(None)).unwrap();
    let tp = TopicPartition::new("idem", 0);
    consumer.assign(vec![tp.clone()]).await.unwrap();
    consumer
        .seek_to_beginning(std::slice::from_ref(&tp))
        .await
        .unwrap();
    let records = consume(&mut consumer, 20).await;
    // Nothing beyond the 20 arrives either.
    let extra = consumer.poll(Duration::from_millis(300)).await.unwrap();
    let values: Vec<String> = records
        .iter()
        .chain(&extra)
        .map(|r| text(&r.value))
        .collect();
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(values, expected);
    assert_eq!(records.last().unwrap().offset, 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_then_resume_and_seek_by_timestamp() {
    let broker = Broker::start(&[]);
    broker.create_topic("resume", 1).await;
    let producer = Producer::new(broker.producer_config()).unwrap();
    for i in 0..10i64 {
        producer
            .send(
                ProducerRecord::new("resume", format!("{i}"))
                    .partition(0)
                    .timestamp_ms(2_000_000 + i * 10),
            )
            .await
            .unwrap();
    }
    producer.close().await.unwrap();
    let tp = TopicPartition::new("resume", 0);

    let mut config = broker.consumer_config(Some("resumers"));
    config.enable_auto_commit = false;
    config.max_poll_records = 4;
    let mut consumer = Consumer::new(config.clone()).unwrap();
    consumer.subscribe(vec!["resume".into()]).await.unwrap();
    let first = consume(&mut consumer, 4).await;
    assert_eq!(
        first.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    consumer.commit().await.unwrap();
    assert_eq!(
        consumer.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp].offset,
        4
    );
    consumer.close().await.unwrap();

    let mut consumer = Consumer::new(config.clone()).unwrap();
    consumer.subscribe(vec!["resume".into()]).await.unwrap();
    let next = consume(&mut consumer, 1).await;
    assert_eq!(next[0].offset, 4, "resumes at the committed offset");
    consumer.close().await.unwrap();

    let mut consumer = Consumer::new(broker.consumer_config(None)).unwrap();
    consumer.assign(vec![tp.clone()]).await.unwrap();
    consumer
        .seek_to_timestamp(std::slice::from_ref(&tp), 2_000_065)
        .await
        .unwrap();
    assert_eq!(consumer.position(&tp), Some(7));
    let records = consume(&mut consumer, 3).await;
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![7, 8, 9]
    );
    assert_eq!(records[0].timestamp_ms, 2_000_070);
    consumer
        .seek_to_timestamp(std::slice::from_ref(&tp), 9_000_000)
        .await
        .unwrap();
    assert_eq!(
        consumer.position(&tp),
        Some(10),
        "past the last timestamp: the end"
    );

    consumer.seek(&tp, 2).await.unwrap();
    consumer.pause(std::slice::from_ref(&tp));
    assert!(consumer
        .poll(Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    consumer.resume(std::slice::from_ref(&tp));
    let records = consume(&mut consumer, 1).await;
    assert_eq!(records[0].offset, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_group_members_split_the_partitions() {
    let broker = Broker::start(&[]);
    broker.create_topic("shared", 4).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, Vec<TopicPartition>, Vec<i64>)>(1024);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for id in 0..2 {
        let mut config = broker.consumer_config(Some("splitters"));
        config.auto_commit_interval_ms = 200;
        let (tx, stop) = (tx.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut consumer = Consumer::new(config).unwrap();
            consumer.subscribe(vec!["shared".into()]).await.unwrap();
            let start = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::SeqCst)
                && start.elapsed() < Duration::from_secs(60)
            {
                let records = consumer.poll(Duration::from_millis(100)).await.unwrap();
                let offsets = records
                    .iter()
                    .map(|r| r.partition as i64 * 1000 + r.offset)
                    .collect();
                if tx.send((id, consumer.assignment(), offsets)).await.is_err() {
                    break;
                }
            }
            consumer.close().await.unwrap();
        }));
        // Let the first member settle before the second joins.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(tx);

    let mut assignments: BTreeMap<usize, Vec<TopicPartition>> = BTreeMap::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(40) {
        let Some((id, assignment, _)) = rx.recv().await else {
            break;
        };
        assignments.insert(id, assignment);
        let sizes: Vec<usize> = assignments.values().map(Vec::len).collect();
        if sizes == vec![2, 2] {
            break;
        }
    }
    let all: BTreeSet<TopicPartition> = assignments.values().flatten().cloned().collect();
    assert_eq!(all.len(), 4, "{assignments:?}");
    assert_eq!(
        assignments.values().map(Vec::len).collect::<Vec<_>>(),
        vec![2, 2]
    );

    // Records on every partition are consumed once across the two members.
    let producer = Producer::new(broker.producer_config()).unwrap();
    for p in 0..4 {
        for i in 0..5 {
            producer
                .send(ProducerRecord::new("shared", format!("{p}-{i}")).partition(p))
                .await
                .unwrap();
        }
    }
    producer.close().await.unwrap();
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    let start = Instant::now();
    while seen.len() < 20 && start.elapsed() < Duration::from_secs(30) {
        let Some((id, _, offsets)) = rx.recv().await else {
            break;
        };
        for o in offsets {
            *seen.entry(o).or_default() += 1;
            let _ = id;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    while rx.recv().await.is_some() {}
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(seen.len(), 20, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reconnect_after_a_broker_restart() {
    let mut broker = Broker::start(&[]);
    broker.create_topic("restart", 1).await;
    let producer = Producer::new(broker.producer_config()).unwrap();
    let tp = TopicPartition::new("restart", 0);
    let mut consumer = Consumer::new(broker.consumer_config(None)).unwrap();
    consumer.assign(vec![tp.clone()]).await.unwrap();
    consumer
        .seek_to_beginning(std::slice::from_ref(&tp))
        .await
        .unwrap();
    for i in 0..5 {
        producer
            .send(ProducerRecord::new("restart", format!("{i}")).partition(0))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let before = consume(&mut consumer, 5).await;
    assert_eq!(before.len(), 5);

    broker.restart();

    for i in 5..10 {
        let md = producer
            .send(ProducerRecord::new("restart", format!("{i}")).partition(0))
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(md.offset, i);
    }
    producer.close().await.unwrap();
    let after = consume(&mut consumer, 5).await;
    let values: Vec<String> = after.iter().map(|r| text(&r.value)).collect();
    assert_eq!(values, vec!["5", "6", "7", "8", "9"]);
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_and_one_deliver() {
    let broker = Broker::start(&[]);
    broker.create_topic("acks", 1).await;
    for (acks, expect_offsets) in [
        (strom_client::Acks::None, false),
        (strom_client::Acks::Leader, true),
    ] {
        let mut config = broker.producer_config();
        config.acks = acks;
        config.enable_idempotence = false;
        let producer = Producer::new(config).unwrap();
        let mut futures = Vec::new();
        for i in 0..5 {
            futures.push(
                producer
                    .send(ProducerRecord::new("acks", format!("{acks:?}-{i}")).partition(0))
                    .await
                    .unwrap(),
            );
        }
        for f in futures {
            let md = f.await.unwrap();
            assert_eq!(md.offset >= 0, expect_offsets, "{acks:?}: {md:?}");
        }
        producer.close().await.unwrap();
    }
    let mut consumer = Consumer::new(broker.consumer_config(None)).unwrap();
    let tp = TopicPartition::new("acks", 0);
    consumer.assign(vec![tp.clone()]).await.unwrap();
    consumer
        .seek_to_beginning(std::slice::from_ref(&tp))
        .await
        .unwrap();
    let records = consume(&mut consumer, 10).await;
    assert_eq!(records.len(), 10);
    assert_eq!(text(&records[0].value), "None-0");
    assert_eq!(text(&records[9].value), "Leader-4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_follows_new_partitions_and_topics() {
    let broker = Broker::start(&[]);
    broker.create_topic("growing", 1).await;
    let mut config = broker.consumer_config(Some("followers"));
    config.client.metadata_max_age_ms = 300;
    let mut consumer = Consumer::new(config).unwrap();
    consumer
        .subscribe(vec!["growing".into(), "later".into()])
        .await
        .unwrap();
    let start = Instant::now();
    while consumer.assignment().len() != 1 && start.elapsed() < Duration::from_secs(20) {
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(
        consumer.assignment(),
        vec![TopicPartition::new("growing", 0)]
    );

    broker
        .admin()
        .create_partitions("growing", 2)
        .await
        .unwrap();
    broker.create_topic("later", 1).await;
    let start = Instant::now();
    while consumer.assignment().len() != 3 && start.elapsed() < Duration::from_secs(20) {
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(
        consumer.assignment(),
        vec![
            TopicPartition::new("growing", 0),
            TopicPartition::new("growing", 1),
            TopicPartition::new("later", 0),
        ]
    );
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_batches_arrive_once_and_in_order_per_partition() {
    let broker = Broker::start(&[]);
    broker.create_topic("bulk", 3).await;
    let mut config = broker.producer_config();
    config.compression = Compression::Lz4;
    let producer = Producer::new(config).unwrap();
    let started = Instant::now();
    let count = 20_000usize;
    let mut futures = std::collections::VecDeque::new();
    for i in 0..count {
        let record = ProducerRecord::new("bulk", format!("{i:08}")).key(format!("k{}", i % 97));
        futures.push_back(producer.send(record).await.unwrap());
        if futures.len() >= 5_000 {
            futures.pop_front().unwrap().await.unwrap();
        }
    }
    for f in futures {
        f.await.unwrap();
    }
    producer.close().await.unwrap();
    let produced = started.elapsed();

    let mut consumer = Consumer::new(broker.consumer_config(None)).unwrap();
    let parts: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new("bulk", p)).collect();
    consumer.assign(parts.clone()).await.unwrap();
    consumer.seek_to_beginning(&parts).await.unwrap();
    let started = Instant::now();
    let mut seen = vec![false; count];
    let mut last_per_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut received = 0;
    while received < count && started.elapsed() < Duration::from_secs(60) {
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let i: usize = text(&r.value).parse().unwrap();
            assert!(!seen[i], "duplicate {i}");
            seen[i] = true;
            received += 1;
            // Same key, same partition: order is kept.
            let key = text(&r.key);
            if let Some(prev) = last_per_key.insert(key.clone(), i) {
                assert!(prev < i, "{key}: {prev} before {i}");
            }
        }
    }
    assert_eq!(received, count);
    eprintln!(
        "produced {count} in {produced:?}, consumed in {:?}",
        started.elapsed()
    );
}

/// An assignor that gives every partition to the member whose user data sorts first and
/// tells each member, in its assignment's user data, how many members there were.
struct FirstTakesAll;

impl strom_client::consumer::assignor::GroupAssignor for FirstTakesAll {
    fn name(&self) -> &str {
        "first-takes-all"
    }

    fn user_data(&self) -> Option<Bytes> {
        Some(Bytes::from(std::process::id().to_string()))
    }

    fn assign(
        &self,
        members: &BTreeMap<String, strom_client::consumer::assignor::MemberSubscription>,
        counts: &BTreeMap<String, i32>,
    ) -> strom_client::Result<BTreeMap<String, strom_client::consumer::assignor::MemberAssignment>>
    {
        let first = members.keys().next().cloned().unwrap_or_default();
        Ok(members
            .iter()
            .map(|(m, sub)| {
                assert!(
                    sub.user_data.is_some(),
                    "subscription user data reaches the leader"
                );
                let partitions = if *m == first {
                    counts
                        .iter()
                        .flat_map(|(t, n)| (0..*n).map(move |p| TopicPartition::new(t, p)))
                        .collect()
                } else {
                    Vec::new()
                };
                let assignment = strom_client::consumer::assignor::MemberAssignment {
                    partitions,
                    user_data: Some(Bytes::from(format!("members={}", members.len()))),
                };
                (m.clone(), assignment)
            })
            .collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_assignor_and_manual_rejoin() {
    let broker = Broker::start(&[]);
    broker.create_topic("custom", 3).await;
    let new_member = || {
        let mut config = broker.consumer_config(Some("custom-group"));
        config.enable_auto_commit = false;
        let mut c = Consumer::new(config).unwrap();
        c.set_assignor(std::sync::Arc::new(FirstTakesAll)).unwrap();
        c.set_manual_rejoin(true);
        c
    };
    let mut a = new_member();
    a.subscribe(vec!["custom".into()]).await.unwrap();
    assert!(a.rebalance_due(), "never joined");
    assert!(a.poll(Duration::from_secs(5)).await.unwrap().is_empty());
    assert!(
        a.assignment().is_empty(),
        "manual rejoin: poll does not join"
    );
    let assigned = a.rejoin().await.unwrap();
    assert_eq!(assigned.len(), 3);
    assert!(!a.rebalance_due());
    assert_eq!(a.assignment_user_data().as_deref(), Some(&b"members=1"[..]));
    let (generation, member) = a.group_generation().unwrap();
    assert!(generation >= 1 && !member.is_empty());

    // A second member joins: `a` learns of the rebalance through its heartbeat, commits
    // while the group prepares it, then rejoins by hand.
    let mut b = new_member();
    b.subscribe(vec!["custom".into()]).await.unwrap();
    let joining = tokio::spawn(async move {
        let assigned = b.rejoin().await.unwrap();
        (b, assigned)
    });
    let start = Instant::now();
    while !a.rebalance_due() && start.elapsed() < Duration::from_secs(30) {
        a.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert!(a.rebalance_due(), "heartbeat saw the rebalance");
    let mut offsets = BTreeMap::new();
    offsets.insert(
        TopicPartition::new("custom", 0),
        strom_client::OffsetAndMetadata::new(0),
    );
    a.commit_offsets(&offsets).await.unwrap();
    let a_assigned = a.rejoin().await.unwrap();
    let (b, b_assigned) = joining.await.unwrap();
    assert_eq!(a_assigned.len() + b_assigned.len(), 3);
    assert!(a_assigned.is_empty() || b_assigned.is_empty());
    assert_eq!(a.assignment_user_data().as_deref(), Some(&b"members=2"[..]));
    assert_eq!(b.assignment_user_data().as_deref(), Some(&b"members=2"[..]));
    let description = broker.admin().describe_group("custom-group").await.unwrap();
    assert_eq!(description.protocol, "first-takes-all");
    a.close().await.unwrap();
    b.close().await.unwrap();
}
