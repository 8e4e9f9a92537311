//! The runtime in-process against the real broker: two instances with a standby replica
//! each, interactive queries (local stores and which host holds a key), metrics, a global
//! table joined by key, a windowed store, failover to the standby, and exactly_once_v2's
//! process id kept in the state directory.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Broker;
use strom_client::{Producer, ProducerConfig, ProducerRecord};
use strom_streams::*;

const LIMIT: Duration = Duration::from_secs(60);

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn topology() -> Topology {
    let b = StreamsBuilder::new();
    let regions = b.global_table(
        "regions",
        Consumed::with(s(), s()),
        Materialized::as_store("regions"),
    );
    let events = b.stream("events", Consumed::with(s(), s()));
    events
        .group_by_key(Grouped::default())
        .count(Materialized::as_store("event-counts"));
    events
        .group_by_key(Grouped::default())
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(
            3600,
        )))
        .count(Materialized::as_store("per-hour"));
    events
        .left_join_global(
            &regions,
            |k, _| k.clone(),
            |v, r| format!("{v}@{}", r.map_or("?", String::as_str)),
        )
        .to("out", Produced::with(s(), s()));
    b.build().unwrap()
}

fn config(broker: &Broker, dir: &std::path::Path, host: &str) -> StreamsConfig {
    let mut c = StreamsConfig::new("rt-app", &broker.bootstrap);
    c.commit_interval_ms = 100;
    c.num_standby_replicas = 1;
    c.state_dir = dir.to_path_buf();
    c.application_server = Some(host.to_string());
    c.set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .set("linger.ms", "5");
    c
}

async fn produce(broker: &Broker, topic: &str, records: &[(String, String)]) {
    let mut config = ProducerConfig::new(&broker.bootstrap);
    config.client = broker.client();
    let producer = Producer::new(config).unwrap();
    let mut futures = Vec::new();
    for (k, v) in records {
        futures.push(
            producer
                .send(ProducerRecord::new(topic, v.clone()).key(k.clone()))
                .await
                .unwrap(),
        );
    }
    for f in futures {
        f.await.unwrap();
    }
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standbys_queries_metrics_globals_and_failover() {
    let broker = Broker::start();
    broker.create_topic("events", 2).await;
    broker.create_topic("regions", 1).await;
    broker.create_topic("out", 1).await;
    produce(&broker, "regions", &[("k1".into(), "eu".into())]).await;
    let dirs = tempfile::tempdir().unwrap();
    let one =
        KafkaStreams::new(topology(), config(&broker, &dirs.path().join("1"), "one:1")).unwrap();
    let two =
        KafkaStreams::new(topology(), config(&broker, &dirs.path().join("2"), "two:1")).unwrap();
    assert!(one.describe().contains("Sub-topology: 0"));
    assert_eq!(one.state(), StreamsState::Created);
    // Every state change of instance two, as its listener is told (new, old).
    let changes = Arc::new(Mutex::new(Vec::new()));
    let log = changes.clone();
    two.set_state_listener(move |new, old| log.lock().unwrap().push((new, old)))
        .unwrap();
    one.start().await.unwrap();
    two.start().await.unwrap();
    assert!(
        two.set_state_listener(|_, _| {}).is_err(),
        "a listener is set before start only"
    );
    one.wait_until_running(LIMIT).await.unwrap();
    two.wait_until_running(LIMIT).await.unwrap();

    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let mut records = Vec::new();
    for round in 0..3 {
        for k in &keys {
            records.push((k.clone(), format!("e{round}")));
        }
    }
    produce(&broker, "events", &records).await;

    // Every key is counted on the instance the assignment says, and only there.
    let by_host: BTreeMap<&str, &KafkaStreams> =
        [("one:1", &one), ("two:1", &two)].into_iter().collect();
    let start = Instant::now();
    'wait: loop {
        assert!(start.elapsed() < LIMIT, "counts never reached 3");
        tokio::time::sleep(Duration::from_millis(100)).await;
        for k in &keys {
            let meta = one.query_metadata_for_key("event-counts", k, &s()).unwrap();
            let Some(host) = meta.active_host.as_deref() else {
                continue 'wait;
            };
            let owner = by_host[host];
            let Ok(store) = owner.store::<String, i64>("event-counts") else {
                continue 'wait;
            };
            if store.get(k).unwrap() != Some(3) {
                continue 'wait;
            }
            let other = if host == "one:1" { &two } else { &one };
            assert_eq!(
                other
                    .store::<String, i64>("event-counts")
                    .unwrap()
                    .get(k)
                    .unwrap(),
                None
            );
            assert_eq!(meta.standby_hosts.len(), 1, "{meta:?}");
            assert_ne!(meta.standby_hosts[0], host);
        }
        break;
    }
    let hour = one
        .window_store::<String, i64>("per-hour")
        .unwrap()
        .all()
        .unwrap();
    let hour2 = two
        .window_store::<String, i64>("per-hour")
        .unwrap()
        .all()
        .unwrap();
    assert_eq!(hour.len() + hour2.len(), 10);
    assert!(hour.iter().chain(hour2.iter()).all(|(_, _, c)| *c == 3));
    assert_eq!(
        one.store::<String, String>("regions")
            .unwrap()
            .get(&"k1".into())
            .unwrap()
            .as_deref(),
        Some("eu")
    );

    // Metrics: everything processed once; each instance keeps a standby of the other's state.
    let start = Instant::now();
    loop {
        let (m1, m2) = (one.metrics(), two.metrics());
        let entries = |m: &Metrics| m.store_entries.get("event-counts").copied().unwrap_or(0);
        if m1.records_processed + m2.records_processed == 30
            && !m1.standby_tasks.is_empty()
            && !m2.standby_tasks.is_empty()
            && m1.records_restored > 0
            && m2.records_restored > 0
            && entries(&m1) + entries(&m2) == 10
            && m1.lag.values().chain(m2.lag.values()).all(|l| *l == 0)
            && !m1.lag.is_empty()
        {
            break;
        }
        assert!(start.elapsed() < LIMIT, "metrics: {m1:?} {m2:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The joined output saw the global table.
    let mut reader = broker.reader("out").await;
    let mut out = Vec::new();
    let start = Instant::now();
    while out.len() < 30 && start.elapsed() < LIMIT {
        out.extend(reader.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(out.len(), 30);
    let value = |r: &strom_client::ConsumerRecord| {
        String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()
    };
    assert!(out
        .iter()
        .filter(|r| r.key.as_deref() == Some(&b"k1"[..]))
        .all(|r| value(r).ends_with("@eu")));
    assert!(out
        .iter()
        .filter(|r| r.key.as_deref() == Some(&b"k2"[..]))
        .all(|r| value(r).ends_with("@?")));

    // Failover: instance one leaves; two takes every task, from its standbys.
    one.close().await.unwrap();
    assert_eq!(one.state(), StreamsState::NotRunning);
    let start = Instant::now();
    loop {
        let m = two.metrics();
        if m.active_tasks.len() == 2
            && m.standby_tasks.is_empty()
            && two.state() == StreamsState::Running
        {
            let store = two.store::<String, i64>("event-counts").unwrap();
            if keys.iter().all(|k| store.get(k).ok().flatten() == Some(3)) {
                break;
            }
        }
        assert!(start.elapsed() < LIMIT, "no failover: {:?}", two.metrics());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    two.close().await.unwrap();
    // Each change once and in order: every change starts where the previous one ended.
    let changes = changes.lock().unwrap().clone();
    use StreamsState::*;
    assert_eq!(
        changes.first(),
        Some(&(Rebalancing, Created)),
        "{changes:?}"
    );
    for pair in changes.windows(2) {
        assert_eq!(pair[1].1, pair[0].0, "a change not reported: {changes:?}");
    }
    // The failover was a rebalance after running.
    assert!(
        changes.contains(&(Rebalancing, Running)),
        "failover not reported: {changes:?}"
    );
    assert_eq!(
        changes[changes.len() - 2..],
        [(PendingShutdown, Running), (NotRunning, PendingShutdown)],
        "{changes:?}"
    );
}

#[test]
fn exactly_once_v2_keeps_its_process_id_in_the_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StreamsConfig::new("eos", "127.0.0.1:1");
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnceV2;
    config.state_dir = dir.path().to_path_buf();
    let _streams = KafkaStreams::new(topology(), config.clone()).unwrap();
    let file = dir.path().join("eos").join(".process-id");
    let first = std::fs::read_to_string(&file).unwrap();
    assert_eq!(first.trim().len(), 36, "a UUID: {first:?}");
    let _again = KafkaStreams::new(topology(), config).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), first);
}
