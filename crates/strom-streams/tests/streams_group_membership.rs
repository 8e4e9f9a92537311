//! Two in-process instances in a KIP-1071 streams group (`group.protocol=streams`) against
//! the real broker: an uncaught error answered with SHUTDOWN_APPLICATION on one instance
//! stops both (the broker relays the request as a group status), and a static member
//! (`group.instance.id`) closed and restarted within the session timeout gets its tasks
//! back while the other instance keeps its own without a rebalance.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Broker;
use strom_client::{Producer, ProducerConfig, ProducerRecord};
use strom_streams::*;

const LIMIT: Duration = Duration::from_secs(60);

/// A broker whose streams groups heartbeat every 300 ms; a member's session lasts 15 s, long
/// enough for an in-process restart.
fn broker() -> Broker {
    Broker::start_with(&[
        "group.streams.min.session.timeout.ms=1000",
        "group.streams.session.timeout.ms=15000",
        "group.streams.min.heartbeat.interval.ms=100",
        "group.streams.heartbeat.interval.ms=300",
    ])
}

/// Reads `in` with 8-byte big-endian longs as values: any other value cannot be
/// deserialized and, with the default `LogAndFailExceptionHandler`, fails the thread.
fn topology() -> Topology {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .map_values(|v: &i64| v.to_string())
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    b.build().unwrap()
}

fn config(broker: &Broker, app: &str, dir: &std::path::Path) -> StreamsConfig {
    let mut c = StreamsConfig::new(app, &broker.bootstrap);
    c.group_protocol = GroupProtocol::Streams;
    c.commit_interval_ms = 100;
    c.state_dir = dir.to_path_buf();
    c.set("linger.ms", "5");
    c
}

async fn produce(broker: &Broker, topic: &str, records: &[(String, Vec<u8>)]) {
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

async fn wait_state(streams: &KafkaStreams, want: StreamsState, what: &str) {
    let start = Instant::now();
    while streams.state() != want {
        assert!(
            start.elapsed() < LIMIT,
            "{what}: state {:?}, not {want:?}",
            streams.state()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `streams` runs exactly `n` active tasks and returns them.
async fn wait_tasks(streams: &KafkaStreams, n: usize, what: &str) -> BTreeSet<TaskId> {
    let start = Instant::now();
    loop {
        let tasks: BTreeSet<TaskId> = streams.metrics().active_tasks.into_iter().collect();
        if tasks.len() == n && streams.state() == StreamsState::Running {
            return tasks;
        }
        assert!(start.elapsed() < LIMIT, "{what}: tasks {tasks:?}, not {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_application_from_one_instance_stops_every_instance() {
    let broker = broker();
    broker.create_topic("in", 2).await;
    broker.create_topic("out", 1).await;
    let dirs = tempfile::tempdir().unwrap();
    let app = "sd-app";
    let calls = Arc::new(AtomicUsize::new(0));
    let mut instances = Vec::new();
    for name in ["a", "b"] {
        let streams =
            KafkaStreams::new(topology(), config(&broker, app, &dirs.path().join(name))).unwrap();
        let seen = calls.clone();
        streams
            .set_uncaught_exception_handler(move |_| {
                seen.fetch_add(1, Ordering::SeqCst);
                StreamThreadExceptionResponse::ShutdownApplication
            })
            .unwrap();
        streams.start().await.unwrap();
        instances.push(streams);
    }
    for s in &instances {
        s.wait_until_running(LIMIT).await.unwrap();
    }
    let _ = wait_tasks(&instances[0], 1, "a").await;
    let _ = wait_tasks(&instances[1], 1, "b").await;
    // A good record, then one that cannot be deserialized as a long.
    produce(
        &broker,
        "in",
        &[
            ("k".into(), 7i64.to_be_bytes().to_vec()),
            ("k".into(), b"poison".to_vec()),
        ],
    )
    .await;
    for (s, name) in instances.iter().zip(["a", "b"]) {
        wait_state(s, StreamsState::Error, name).await;
    }
    // The instance that read the poison asked (its handler ran, once); the other stopped
    // because the group told it to, not because of the record.
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one thread failed");
    let errors: Vec<StreamsError> = instances.iter().map(|s| s.error().unwrap()).collect();
    let shut: Vec<&StreamsError> = errors
        .iter()
        .filter(|e| matches!(e, StreamsError::ApplicationShutdown(_)))
        .collect();
    assert_eq!(shut.len(), 1, "{errors:?}");
    assert!(
        shut[0]
            .to_string()
            .contains("requested to shutdown by member"),
        "{}",
        shut[0]
    );
    for s in &instances {
        assert!(s.close().await.is_err(), "closed with the error");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarted_within_the_session_gets_its_tasks_back() {
    let broker = broker();
    broker.create_topic("in", 4).await;
    broker.create_topic("out", 1).await;
    let dirs = tempfile::tempdir().unwrap();
    let app = "static-app";
    let static_config = |name: &str| {
        let mut c = config(&broker, app, &dirs.path().join(name));
        c.group_instance_id = Some(format!("inst-{name}"));
        c.client_tags.insert("zone".into(), format!("zone-{name}"));
        c
    };
    let a = KafkaStreams::new(topology(), static_config("a")).unwrap();
    let a_changes = Arc::new(Mutex::new(Vec::new()));
    let log = a_changes.clone();
    a.set_state_listener(move |new, old| log.lock().unwrap().push((new, old)))
        .unwrap();
    let b = KafkaStreams::new(topology(), static_config("b")).unwrap();
    a.start().await.unwrap();
    b.start().await.unwrap();
    let a_tasks = wait_tasks(&a, 2, "a").await;
    let b_tasks = wait_tasks(&b, 2, "b").await;
    assert!(a_tasks.is_disjoint(&b_tasks));
    let admin = broker.admin();
    let described = admin.describe_streams_group(app).await.unwrap().unwrap();
    let instances: BTreeSet<Option<String>> = described
        .members
        .iter()
        .map(|m| m.group_instance_id.clone())
        .collect();
    assert_eq!(
        instances,
        BTreeSet::from([Some("inst-a-1".into()), Some("inst-b-1".into())]),
        "thread 1 of each instance is <group.instance.id>-1"
    );

    // b closes (a static leave: epoch -2) and comes back on the same state directory.
    a_changes.lock().unwrap().clear();
    b.close().await.unwrap();
    // While b is away its tasks wait for it: a keeps running its own and takes none.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during: BTreeSet<TaskId> = a.metrics().active_tasks.into_iter().collect();
    assert_eq!(during, a_tasks, "a took none of the away member's tasks");
    let b2 = KafkaStreams::new(topology(), static_config("b")).unwrap();
    b2.start().await.unwrap();
    let b2_tasks = wait_tasks(&b2, 2, "b restarted").await;
    assert_eq!(b2_tasks, b_tasks, "the static member got its tasks back");
    let after: BTreeSet<TaskId> = a.metrics().active_tasks.into_iter().collect();
    assert_eq!(after, a_tasks, "a's tasks did not move");
    assert_eq!(a.state(), StreamsState::Running);
    assert_eq!(
        *a_changes.lock().unwrap(),
        Vec::new(),
        "a went through no rebalance while b restarted"
    );
    let described = admin.describe_streams_group(app).await.unwrap().unwrap();
    assert_eq!(described.members.len(), 2, "one member per instance");

    // Records still flow through both.
    produce(
        &broker,
        "in",
        &(0..20)
            .map(|i| (format!("k{i}"), (i as i64).to_be_bytes().to_vec()))
            .collect::<Vec<_>>(),
    )
    .await;
    let start = Instant::now();
    while a.metrics().records_processed + b2.metrics().records_processed < 20 {
        assert!(start.elapsed() < LIMIT, "records not processed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.close().await.unwrap();
    b2.close().await.unwrap();
}
