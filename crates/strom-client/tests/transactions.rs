//! The transactional producer against the real `strom` binary: committed records are
//! visible to read_committed readers, aborted ones never are, an open transaction holds
//! them back, a second producer with the same transactional.id fences the first, and
//! consumer offsets sent in a transaction commit (or abort) with it.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Broker;
use strom_client::{
    ClientError, Consumer, ConsumerRecord, OffsetAndMetadata, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};

fn text(b: &Option<Bytes>) -> String {
    String::from_utf8(b.clone().unwrap_or_default().to_vec()).unwrap()
}

fn txn_config(broker: &Broker, id: &str) -> ProducerConfig {
    let mut c = broker.producer_config();
    c.transactional_id = Some(id.to_string());
    c.transaction_timeout_ms = 30_000;
    c
}

/// A consumer of every partition of `topic` from the beginning.
async fn reader(broker: &Broker, topic: &str, partitions: i32, committed: bool) -> Consumer {
    let mut config = broker.consumer_config(None);
    config.isolation_read_committed = committed;
    let mut consumer = Consumer::new(config).unwrap();
    let parts: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    consumer.assign(parts.clone()).await.unwrap();
    consumer.seek_to_beginning(&parts).await.unwrap();
    consumer
}

/// Polls until `count` records arrived or `limit` passed, then a little longer to catch
/// records that should not be there.
async fn read(consumer: &mut Consumer, count: usize, limit: Duration) -> Vec<ConsumerRecord> {
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < count && start.elapsed() < limit {
        out.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(600) {
        out.extend(consumer.poll(Duration::from_millis(100)).await.unwrap());
    }
    out
}

fn values(records: &[ConsumerRecord]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(|r| text(&r.value)).collect();
    v.sort();
    v
}

async fn send_all(producer: &Producer, topic: &str, prefix: &str, count: usize) {
    for i in 0..count {
        let record = ProducerRecord::new(topic, format!("{prefix}-{i:02}")).key(format!("k{i}"));
        producer.send(record).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_records_are_visible_to_read_committed_and_aborted_ones_never() {
    let broker = Broker::start(&[]);
    broker.create_topic("txn-out", 3).await;
    let producer = Producer::new(txn_config(&broker, "tx-visibility")).unwrap();

    // Sends are refused outside a transaction.
    let err = producer
        .send(ProducerRecord::new("txn-out", "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::TransactionState(_)), "{err}");
    producer.init_transactions().await.unwrap();
    let err = producer
        .send(ProducerRecord::new("txn-out", "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::TransactionState(_)), "{err}");

    producer.begin_transaction().unwrap();
    send_all(&producer, "txn-out", "committed", 20).await;
    producer.commit_transaction().await.unwrap();

    producer.begin_transaction().unwrap();
    send_all(&producer, "txn-out", "aborted", 20).await;
    producer.flush().await.unwrap();
    producer.abort_transaction().await.unwrap();

    // An open transaction holds read_committed readers back (last stable offset).
    producer.begin_transaction().unwrap();
    send_all(&producer, "txn-out", "later", 10).await;
    producer.flush().await.unwrap();
    let mut committed = reader(&broker, "txn-out", 3, true).await;
    let seen = read(&mut committed, 20, Duration::from_secs(20)).await;
    let want: Vec<String> = (0..20).map(|i| format!("committed-{i:02}")).collect();
    assert_eq!(values(&seen), want, "before the third commit");
    let mut uncommitted = reader(&broker, "txn-out", 3, false).await;
    let all = read(&mut uncommitted, 50, Duration::from_secs(20)).await;
    assert_eq!(all.len(), 50, "read_uncommitted sees every record");
    uncommitted.close().await.unwrap();

    producer.commit_transaction().await.unwrap();
    let more = read(&mut committed, 10, Duration::from_secs(20)).await;
    let want: Vec<String> = (0..10).map(|i| format!("later-{i:02}")).collect();
    assert_eq!(values(&more), want, "after the third commit");
    assert!(
        seen.iter()
            .chain(&more)
            .all(|r| !text(&r.value).starts_with("aborted")),
        "aborted records are never read"
    );
    committed.close().await.unwrap();
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abortable_error_is_cleared_by_abort_with_an_epoch_bump() {
    let broker = Broker::start(&[]);
    broker.create_topic("abortable-out", 1).await;
    let mut config = txn_config(&broker, "tx-abortable");
    // No retries: a lost Produce response fails its batch for good.
    config.retries = 0;
    let producer = Producer::new(config).unwrap();
    producer.init_transactions().await.unwrap();
    let (pid, epoch) = producer.producer_identity().unwrap();

    producer.begin_transaction().unwrap();
    producer.drop_next_responses(1);
    let lost = producer
        .send(ProducerRecord::new("abortable-out", "lost"))
        .await
        .unwrap();
    assert!(
        lost.await.is_err(),
        "the batch whose response was lost fails"
    );
    // The transaction is abortable: commit and send refuse with the batch's error.
    let err = producer.commit_transaction().await.unwrap_err();
    assert!(!err.is_fatal_for_transaction(), "{err}");
    let refused = producer
        .send(ProducerRecord::new("abortable-out", "refused"))
        .await;
    assert!(refused.is_err());
    producer.abort_transaction().await.unwrap();
    // KIP-360: the same producer id with a bumped epoch, sequences from 0 again.
    let (pid_after, epoch_after) = producer.producer_identity().unwrap();
    assert_eq!(pid_after, pid);
    assert!(epoch_after > epoch, "epoch {epoch} -> {epoch_after}");

    producer.begin_transaction().unwrap();
    send_all(&producer, "abortable-out", "after", 5).await;
    producer.commit_transaction().await.unwrap();
    let mut committed = reader(&broker, "abortable-out", 1, true).await;
    let seen = read(&mut committed, 5, Duration::from_secs(20)).await;
    let want: Vec<String> = (0..5).map(|i| format!("after-{i:02}")).collect();
    assert_eq!(
        values(&seen),
        want,
        "the lost record was written, then aborted"
    );
    committed.close().await.unwrap();
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_producer_with_the_same_transactional_id_fences_the_first() {
    let broker = Broker::start(&[]);
    broker.create_topic("fence-out", 2).await;
    let zombie = Producer::new(txn_config(&broker, "tx-fence")).unwrap();
    zombie.init_transactions().await.unwrap();
    zombie.begin_transaction().unwrap();
    send_all(&zombie, "fence-out", "zombie", 5).await;
    zombie.flush().await.unwrap();

    // The new instance's InitProducerId bumps the epoch and aborts the open transaction.
    let fresh = Producer::new(txn_config(&broker, "tx-fence")).unwrap();
    fresh.init_transactions().await.unwrap();
    fresh.begin_transaction().unwrap();
    send_all(&fresh, "fence-out", "fresh", 5).await;
    fresh.commit_transaction().await.unwrap();

    let err = zombie.commit_transaction().await.unwrap_err();
    assert!(
        err.is_fatal_for_transaction(),
        "the zombie's commit fails fatally: {err}"
    );
    assert!(
        matches!(
            err.kafka_name(),
            Some("PRODUCER_FENCED" | "INVALID_PRODUCER_EPOCH")
        ),
        "{err}"
    );
    // Fatal: nothing more is accepted, not even an abort.
    assert!(zombie.abort_transaction().await.is_err());
    assert!(zombie.begin_transaction().is_err());
    let _ = zombie.close().await;

    let mut committed = reader(&broker, "fence-out", 2, true).await;
    let seen = read(&mut committed, 5, Duration::from_secs(20)).await;
    let want: Vec<String> = (0..5).map(|i| format!("fresh-{i:02}")).collect();
    assert_eq!(values(&seen), want);
    committed.close().await.unwrap();
    fresh.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_sent_in_a_transaction_commit_and_abort_with_it() {
    let broker = Broker::start(&[]);
    broker.create_topic("ctp-in", 2).await;
    broker.create_topic("ctp-out", 2).await;
    let plain = Producer::new(broker.producer_config()).unwrap();
    send_all(&plain, "ctp-in", "in", 30).await;
    plain.close().await.unwrap();

    let mut config = broker.consumer_config(Some("ctp-group"));
    config.enable_auto_commit = false;
    config.isolation_read_committed = true;
    let mut consumer = Consumer::new(config).unwrap();
    consumer.subscribe(vec!["ctp-in".into()]).await.unwrap();
    let input = read(&mut consumer, 30, Duration::from_secs(30)).await;
    assert_eq!(input.len(), 30);
    let group = consumer.group_metadata().unwrap();
    assert_eq!(group.group_id, "ctp-group");
    assert!(group.generation_id >= 1, "{group:?}");
    assert!(!group.member_id.is_empty());

    let producer = Producer::new(txn_config(&broker, "tx-ctp")).unwrap();
    producer.init_transactions().await.unwrap();
    let mut next: BTreeMap<TopicPartition, OffsetAndMetadata> = BTreeMap::new();
    for r in &input {
        next.insert(
            TopicPartition::new(r.topic.clone(), r.partition),
            OffsetAndMetadata::new(r.offset + 1),
        );
    }

    // Aborted: neither the output nor the offsets count.
    producer.begin_transaction().unwrap();
    send_all(&producer, "ctp-out", "aborted", 5).await;
    producer
        .send_offsets_to_transaction(&next, &group)
        .await
        .unwrap();
    producer.abort_transaction().await.unwrap();
    let parts = vec![
        TopicPartition::new("ctp-in", 0),
        TopicPartition::new("ctp-in", 1),
    ];
    let after_abort = consumer.committed(&parts).await.unwrap();
    assert!(
        after_abort.values().all(|o| o.offset < 0) || after_abort.is_empty(),
        "aborted offsets are not committed: {after_abort:?}"
    );

    // Committed: both become visible together.
    producer.begin_transaction().unwrap();
    for r in &input {
        producer
            .send(ProducerRecord::new(
                "ctp-out",
                format!("out-{}", text(&r.value)),
            ))
            .await
            .unwrap();
    }
    producer
        .send_offsets_to_transaction(&next, &group)
        .await
        .unwrap();
    producer.commit_transaction().await.unwrap();
    let start = Instant::now();
    loop {
        let committed = consumer.committed(&parts).await.unwrap();
        let got: BTreeMap<TopicPartition, i64> = committed
            .into_iter()
            .map(|(tp, o)| (tp, o.offset))
            .collect();
        let want: BTreeMap<TopicPartition, i64> =
            next.iter().map(|(tp, o)| (tp.clone(), o.offset)).collect();
        if got == want {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "committed offsets {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut out = reader(&broker, "ctp-out", 2, true).await;
    let seen = read(&mut out, 30, Duration::from_secs(20)).await;
    assert_eq!(seen.len(), 30);
    assert!(seen.iter().all(|r| text(&r.value).starts_with("out-in-")));

    // A stale generation is refused: the zombie's offsets never land.
    let mut stale = group.clone();
    stale.generation_id += 100;
    producer.begin_transaction().unwrap();
    let err = producer
        .send_offsets_to_transaction(&next, &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(err.kafka_name(), Some("ILLEGAL_GENERATION")),
        "{err}"
    );
    assert!(!err.is_fatal_for_transaction());
    producer.abort_transaction().await.unwrap();

    out.close().await.unwrap();
    consumer.close().await.unwrap();
    producer.close().await.unwrap();
}
