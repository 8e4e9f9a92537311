//! Three `strom server` processes (broker and controller each) on 127.0.0.1: group
//! coordinators follow the leader of their `__consumer_offsets` partition (also across a
//! `kill -9`), Metadata and `strom topics describe` report offline replicas truthfully, a
//! SIGTERM moves every leadership away while the broker still serves (a producer sees only
//! retriable errors), and the leader rebalance brings preferred leaders back after a
//! restart. Records are not replicated yet, so these tests are about leadership,
//! coordination and reporting, not about data surviving a broker.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::kafka::KafkaClient;
use common::{free_ports, read_image, ServerProcess};
use kafka_protocol::messages::{FindCoordinatorRequest, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;
use strom_client::{
    Acks, Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, OffsetReset, Producer,
    ProducerConfig, ProducerRecord,
};
use strom_meta::{
    AlterPartitionItem, AlterPartitionRequest, ControllerReply, ControllerRequest, MetadataImage,
};
use strom_raft::metadata::MetadataReply;
use strom_raft::QuorumClient;

const NODES: [i32; 3] = [1, 2, 3];
/// Partitions of `__consumer_offsets` in these tests (few, so that loads are quick).
const OFFSETS_PARTITIONS: u32 = 3;
/// Bound on every wait for the cluster to reach a state.
const SETTLE: Duration = Duration::from_secs(30);

/// One node's addresses and data directory.
struct Node {
    kafka: String,
    controller: String,
    data: PathBuf,
}

/// Three nodes, each a broker and a voter of the metadata quorum.
struct Cluster {
    nodes: BTreeMap<i32, Node>,
    servers: BTreeMap<i32, ServerProcess>,
    extra: Vec<String>,
    _root: tempfile::TempDir,
}

impl Cluster {
    /// Starts every node, then waits until all three brokers are live.
    fn start(extra: &[&str]) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let ports = free_ports(6);
        let nodes: BTreeMap<i32, Node> = NODES
            .iter()
            .map(|id| {
                let i = (*id as usize - 1) * 2;
                let node = Node {
                    kafka: format!("127.0.0.1:{}", ports[i]),
                    controller: format!("127.0.0.1:{}", ports[i + 1]),
                    data: root.path().join(format!("node-{id}")),
                };
                (*id, node)
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            servers: BTreeMap::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _root: root,
        };
        for id in NODES {
            let server = ServerProcess::spawn(&cluster.overrides(id), &cluster.nodes[&id].kafka);
            cluster.servers.insert(id, server);
        }
        for server in cluster.servers.values_mut() {
            server.wait_ready(Duration::from_secs(60));
        }
        cluster.wait_for("all three brokers live", |meta, _| meta.brokers.len() == 3);
        cluster
    }

    fn overrides(&self, id: i32) -> Vec<String> {
        let node = &self.nodes[&id];
        let voters = self
            .nodes
            .iter()
            .map(|(id, n)| format!("{id}@{}", n.controller))
            .collect::<Vec<_>>()
            .join(",");
        let mut overrides = vec![
            format!("node.id={id}"),
            "process.roles=broker,controller".to_string(),
            format!(
                "listeners=PLAINTEXT://{},CONTROLLER://{}",
                node.kafka, node.controller
            ),
            "controller.listener.names=CONTROLLER".to_string(),
            format!("controller.quorum.voters={voters}"),
            format!("log.dirs={}", node.data.display()),
            "controller.quorum.election.timeout.ms=500".to_string(),
            "offsets.topic.replication.factor=3".to_string(),
            format!("offsets.topic.num.partitions={OFFSETS_PARTITIONS}"),
            "group.initial.rebalance.delay.ms=0".to_string(),
        ];
        overrides.extend(self.extra.iter().cloned());
        overrides
    }

    fn restart(&mut self, id: i32) {
        let server = ServerProcess::start(&self.overrides(id), &self.nodes[&id].kafka);
        self.servers.insert(id, server);
    }

    fn kafka(&self, id: i32) -> &str {
        &self.nodes[&id].kafka
    }

    fn quorum(&self) -> QuorumClient {
        let controllers = self.nodes.values().map(|n| n.controller.clone()).collect();
        QuorumClient::new(controllers, Duration::from_secs(10))
    }

    /// Metadata (v12, every topic) from the first live node that answers.
    fn metadata(&self) -> Option<(MetadataResponse, i32)> {
        for id in self.servers.keys() {
            let Ok(mut client) = KafkaClient::connect(self.kafka(*id)) else {
                continue;
            };
            if let Ok(response) = client.send(12, MetadataRequest::default().with_topics(None)) {
                return Some((response, *id));
            }
        }
        None
    }

    /// Polls Metadata (bounded by `SETTLE`) until `done` holds.
    fn wait_for(&self, what: &str, done: impl Fn(&View, i32) -> bool) -> View {
        let start = Instant::now();
        loop {
            if let Some((response, from)) = self.metadata() {
                let view = View::from(&response);
                if done(&view, from) {
                    return view;
                }
            }
            assert!(start.elapsed() < SETTLE, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A partition as Metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PartitionView {
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    offline: Vec<i32>,
}

/// What Metadata says: live brokers and every topic's partitions.
#[derive(Clone, Debug)]
struct View {
    brokers: Vec<i32>,
    topics: BTreeMap<String, BTreeMap<i32, PartitionView>>,
}

impl View {
    fn from(response: &MetadataResponse) -> View {
        let ids = |v: &[kafka_protocol::messages::BrokerId]| v.iter().map(|b| b.0).collect();
        View {
            brokers: response.brokers.iter().map(|b| b.node_id.0).collect(),
            topics: response
                .topics
                .iter()
                .filter_map(|t| {
                    let name = t.name.as_ref()?.0.to_string();
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            let view = PartitionView {
                                leader: p.leader_id.0,
                                replicas: ids(&p.replica_nodes),
                                isr: ids(&p.isr_nodes),
                                offline: ids(&p.offline_replicas),
                            };
                            (p.partition_index, view)
                        })
                        .collect();
                    Some((name, partitions))
                })
                .collect(),
        }
    }

    fn partitions(&self, topic: &str) -> &BTreeMap<i32, PartitionView> {
        self.topics
            .get(topic)
            .unwrap_or_else(|| panic!("no topic {topic} in {self:?}"))
    }

    fn leads_any(&self, broker: i32) -> bool {
        self.topics
            .values()
            .flat_map(|t| t.values())
            .any(|p| p.leader == broker)
    }
}

/// Kafka's `abs(groupId.hashCode) % partitions` (sign bit masked).
fn offsets_partition(group: &str) -> i32 {
    let hash = group.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    ((hash & 0x7fff_ffff) as u32 % OFFSETS_PARTITIONS) as i32
}

/// FindCoordinator (v3: one key) asked at `addr`: the node id, or the error code.
fn find_coordinator(addr: &str, group: &str) -> Result<i32, i16> {
    let mut client = KafkaClient::connect(addr).map_err(|_| -1i16)?;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(0);
    let response = client.send(3, request).map_err(|_| -1i16)?;
    if response.error_code == 0 {
        Ok(response.node_id.0)
    } else {
        Err(response.error_code)
    }
}

/// Asks every live node until all name the same coordinator; returns it.
fn agreed_coordinator(cluster: &Cluster, group: &str) -> i32 {
    let start = Instant::now();
    loop {
        let answers: Vec<Result<i32, i16>> = cluster
            .servers
            .keys()
            .map(|id| find_coordinator(cluster.kafka(*id), group))
            .collect();
        if let Some(Ok(first)) = answers.first() {
            if answers.iter().all(|a| a == &Ok(*first)) {
                return *first;
            }
        }
        assert!(
            start.elapsed() < SETTLE,
            "no agreed coordinator of {group}: {answers:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new(bootstrap);
    config.request_timeout_ms = 5_000;
    config.default_api_timeout_ms = 30_000;
    config.retry_backoff_ms = 100;
    config.retry_backoff_max_ms = 500;
    config.metadata_max_age_ms = 1_000;
    config
}

fn bootstrap(cluster: &Cluster) -> String {
    cluster
        .nodes
        .values()
        .map(|n| n.kafka.clone())
        .collect::<Vec<_>>()
        .join(",")
}

/// A producer that retries what Kafka calls retriable and fails on anything else.
/// Idempotence is off: a new leader knows nothing of a producer's sequence numbers while
/// records are not replicated.
fn producer(bootstrap: &str) -> Producer {
    let mut config = ProducerConfig::new(bootstrap);
    config.client = client_config(bootstrap);
    config.acks = Acks::All;
    config.enable_idempotence = false;
    config.linger_ms = 0;
    config.delivery_timeout_ms = 30_000;
    Producer::new(config).unwrap()
}

fn run_cli(args: &[&str]) -> (i32, String, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The partition rows of `strom topics describe`'s table: PARTITION LEADER REPLICAS ISR
/// OFFLINE (an empty last column is left out).
fn describe_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip_while(|l| !l.starts_with("PARTITION"))
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_follows_the_offsets_leader_across_kill_9_and_offline_replicas_are_reported() {
    let mut cluster = Cluster::start(&["broker.session.timeout.ms=6000"]);
    let all = bootstrap(&cluster);
    let admin = Admin::new(client_config(&all)).unwrap();
    admin
        .create_topic(&NewTopic::new("events", 3, 3))
        .await
        .unwrap();

    // Every node names the leader of the group's __consumer_offsets partition.
    let group = "billing";
    let partition = offsets_partition(group);
    let coordinator = agreed_coordinator(&cluster, group);
    let view = cluster.wait_for("__consumer_offsets", |v, _| {
        v.topics.contains_key("__consumer_offsets")
    });
    let offsets = view.partitions("__consumer_offsets");
    assert_eq!(offsets.len() as u32, OFFSETS_PARTITIONS);
    assert!(
        offsets.values().all(|p| p.replicas.len() == 3),
        "{offsets:?}"
    );
    assert_eq!(offsets[&partition].leader, coordinator);

    // A consumer group commits through that coordinator.
    let mut config = ConsumerConfig::new(&all);
    config.client = client_config(&all);
    config.group_id = Some(group.to_string());
    config.enable_auto_commit = false;
    config.auto_offset_reset = OffsetReset::Earliest;
    config.session_timeout_ms = 10_000;
    config.heartbeat_interval_ms = 500;
    let mut consumer = Consumer::new(config).unwrap();
    consumer
        .subscribe(vec!["events".to_string()])
        .await
        .unwrap();
    let producer = producer(&all);
    let send = |value: String| {
        let producer = producer.clone();
        async move {
            let record = ProducerRecord::new("events", Bytes::from(value)).partition(0);
            producer.send(record).await.unwrap().await.unwrap()
        }
    };
    send("before".to_string()).await;
    let got = poll_until(&mut consumer, |v| v == "before").await;
    assert!(got, "the group never consumed the first record");
    consumer.commit().await.unwrap();
    let committed = admin.list_group_offsets(group).await.unwrap();
    assert!(!committed.is_empty(), "no committed offsets");

    // kill -9 the coordinator: its partitions move once its session expires, and
    // FindCoordinator names the new leader of the group's partition.
    cluster.servers.get_mut(&coordinator).unwrap().kill();
    cluster.servers.remove(&coordinator);
    let view = cluster.wait_for("the coordinator's partitions to move", |v, _| {
        !v.brokers.contains(&coordinator) && !v.leads_any(coordinator)
    });
    let moved = agreed_coordinator(&cluster, group);
    assert_ne!(moved, coordinator);
    assert_eq!(
        view.partitions("__consumer_offsets")[&partition].leader,
        moved
    );
    // Every replica on the dead broker is reported offline, and it left the ISRs.
    for (topic, partitions) in &view.topics {
        for (index, p) in partitions {
            assert!(p.leader >= 0, "{topic}-{index} has no leader: {p:?}");
            assert_eq!(p.offline, vec![coordinator], "{topic}-{index}: {p:?}");
            assert!(!p.isr.contains(&coordinator), "{topic}-{index}: {p:?}");
        }
    }

    // The same consumer resumes with the new coordinator: it consumes what is produced now,
    // rejoins and commits there. (The new coordinator starts without the group: its
    // partition's records were not replicated yet, so the member's first commit or
    // heartbeat there is refused and it joins again.)
    send("after".to_string()).await;
    let got = poll_until(&mut consumer, |v| v == "after").await;
    assert!(got, "the group did not resume after the coordinator failed");
    let start = Instant::now();
    let mut refusals = Vec::new();
    loop {
        match consumer.commit().await {
            Ok(()) => break,
            Err(e) => refusals.push(e.to_string()),
        }
        assert!(
            start.elapsed() < SETTLE,
            "no commit at the new coordinator: {refusals:?}"
        );
        let _ = consumer.poll(Duration::from_millis(200)).await;
    }
    let described = admin.describe_group(group).await.unwrap();
    assert_eq!(described.coordinator, moved, "{described:?}");
    assert_eq!(described.members.len(), 1, "{described:?}");
    assert!(!admin.list_group_offsets(group).await.unwrap().is_empty());

    // `strom topics describe` from a survivor: the dead broker in the OFFLINE column; the
    // report filters pick the under-replicated partitions and find none unavailable.
    let survivor = *cluster.servers.keys().next().unwrap();
    let addr = cluster.kafka(survivor).to_string();
    let (code, out, err) = run_cli(&["topics", "describe", "events", "--bootstrap-server", &addr]);
    assert_eq!(code, 0, "{err}");
    let rows = describe_rows(&out);
    assert_eq!(rows.len(), 3, "{out}");
    for row in &rows {
        assert_eq!(row.len(), 5, "{out}");
        assert_eq!(row[4], coordinator.to_string(), "{out}");
        assert!(
            !row[3].split(',').any(|b| b == coordinator.to_string()),
            "{out}"
        );
    }
    let (code, out, err) = run_cli(&[
        "topics",
        "describe",
        "events",
        "--under-replicated-partitions",
        "--bootstrap-server",
        &addr,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("events")).count(),
        3,
        "{out}"
    );
    let (code, out, err) = run_cli(&[
        "topics",
        "describe",
        "--unavailable-partitions",
        "--bootstrap-server",
        &addr,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "only the header: {out}");
    consumer.close().await.unwrap();
    admin.close().await;
}

/// Polls until a record whose value satisfies `wanted` arrives (bounded).
async fn poll_until(consumer: &mut Consumer, wanted: impl Fn(&str) -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < SETTLE {
        if let Ok(records) = consumer.poll(Duration::from_millis(500)).await {
            if records.iter().any(|r| {
                r.value
                    .as_ref()
                    .is_some_and(|v| wanted(&String::from_utf8_lossy(v)))
            }) {
                return true;
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_moves_leadership_first_and_the_rebalance_brings_it_back() {
    // A session far longer than the test: only the controlled shutdown can move leaders.
    let mut cluster = Cluster::start(&[
        "broker.session.timeout.ms=60000",
        "leader.imbalance.check.interval.seconds=1",
    ]);
    let all = bootstrap(&cluster);
    let admin = Admin::new(client_config(&all)).unwrap();
    admin
        .create_topic(&NewTopic::new("rolling", 6, 3))
        .await
        .unwrap();
    let preferred = |v: &View| {
        v.topics.get("rolling").is_some_and(|t| {
            t.len() == 6
                && t.values()
                    .all(|p| p.replicas.first() == Some(&p.leader) && p.isr.len() == 3)
        })
    };
    cluster.wait_for("preferred leaders of rolling", |v, _| preferred(v));

    // A producer keeps writing to every partition throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicUsize::new(0));
    let producing = {
        let (stop, delivered) = (Arc::clone(&stop), Arc::clone(&delivered));
        let producer = producer(&all);
        tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let record = ProducerRecord::new("rolling", Bytes::from(format!("r{i}")))
                    .partition((i % 6) as i32);
                match producer.send(record).await {
                    Ok(future) => match future.await {
                        Ok(_) => {
                            delivered.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => failures.push(e.to_string()),
                    },
                    Err(e) => failures.push(e.to_string()),
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            failures
        })
    };
    wait_until("the producer to deliver", || {
        delivered.load(Ordering::SeqCst) >= 12
    })
    .await;

    // SIGTERM one broker and watch Metadata from the others while it shuts down.
    let victim = 2;
    let watcher = *cluster.nodes.keys().find(|id| **id != victim).unwrap();
    let view = cluster.wait_for("metadata", |_, _| true);
    assert!(
        view.leads_any(victim),
        "broker {victim} leads nothing to move"
    );
    cluster.servers[&victim].signal_terminate();
    let start = Instant::now();
    let mut moved_while_running = false;
    let status = loop {
        if let Some(status) = cluster.servers.get_mut(&victim).unwrap().exited() {
            break status;
        }
        if !moved_while_running {
            let mut client = KafkaClient::connect(cluster.kafka(watcher)).unwrap();
            let response = client
                .send(12, MetadataRequest::default().with_topics(None))
                .unwrap();
            let view = View::from(&response);
            // Checked again after the Metadata call: the process still ran when asked.
            if !view.leads_any(victim)
                && !view
                    .topics
                    .values()
                    .flat_map(|t| t.values())
                    .any(|p| p.isr.contains(&victim) && p.replicas.len() > 1)
            {
                moved_while_running = cluster.servers.get_mut(&victim).unwrap().exited().is_none();
                if !moved_while_running {
                    panic!("broker {victim} exited before its leaderships were seen moved");
                }
                eprintln!("leaderships moved {:?} after SIGTERM", start.elapsed());
            }
        }
        assert!(start.elapsed() < SETTLE, "broker {victim} did not stop");
        std::thread::sleep(Duration::from_millis(10));
    };
    eprintln!("broker {victim} exited {:?} after SIGTERM", start.elapsed());
    assert!(status.success(), "SIGTERM exit: {status:?}");
    assert!(
        moved_while_running,
        "leaderships of broker {victim} were not moved while it was still running"
    );
    cluster.servers.remove(&victim);
    let view = cluster.wait_for("the stopped broker fenced", |v, _| {
        !v.brokers.contains(&victim)
    });
    for p in view.partitions("rolling").values() {
        assert_ne!(p.leader, victim);
        assert!(p.leader >= 0, "{p:?}");
        assert_eq!(p.offline, vec![victim], "{p:?}");
    }
    // The producer carried on through the shutdown.
    let before = delivered.load(Ordering::SeqCst);
    wait_until("the producer to deliver after the shutdown", || {
        delivered.load(Ordering::SeqCst) >= before + 12
    })
    .await;

    // Back again: once it is in the ISRs again (the leader's AlterPartition when it has
    // caught up), the periodic rebalance gives it back its preferred leaderships.
    cluster.restart(victim);
    cluster.wait_for("the restarted broker live", |v, _| {
        v.brokers.contains(&victim)
    });
    rejoin_isrs(&cluster, victim).await;
    let view = cluster.wait_for("preferred leaders back", |v, _| preferred(v));
    assert!(view.leads_any(victim));

    stop.store(true, Ordering::SeqCst);
    let failures = producing.await.unwrap();
    assert!(
        failures.is_empty(),
        "the producer saw non-retriable errors: {failures:?}"
    );
    admin.close().await;
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < SETTLE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Puts `broker` back into the ISR of every partition it replicates, as each leader's
/// AlterPartition does once the follower has caught up. Until followers replicate, the
/// test sends that AlterPartition itself (the controller treats it as the leader's).
async fn rejoin_isrs(cluster: &Cluster, broker: i32) {
    let client = cluster.quorum();
    let start = Instant::now();
    loop {
        let image: MetadataImage = read_image(&client).await;
        let missing: Vec<_> = image
            .partitions()
            .filter(|(_, p)| p.replicas.contains(&broker) && !p.isr.contains(&broker))
            .filter(|(_, p)| p.has_leader())
            .map(|(tp, p)| (tp, p.clone()))
            .collect();
        if missing.is_empty() {
            return;
        }
        for (tp, p) in missing {
            let Some(leader_epoch) = image.broker(p.leader).map(|b| b.epoch) else {
                continue;
            };
            let mut new_isr = p.isr.clone();
            new_isr.push(broker);
            let request = ControllerRequest::AlterPartition(AlterPartitionRequest {
                broker_id: p.leader,
                broker_epoch: leader_epoch,
                partitions: vec![AlterPartitionItem {
                    topic_id: tp.topic_id,
                    partition: tp.partition,
                    leader_epoch: p.leader_epoch,
                    new_isr,
                    partition_epoch: p.partition_epoch,
                }],
            });
            // A concurrent change (the real leader's, or a fencing) only means another
            // round; errors other than "no quorum" are per partition in the reply.
            let reply: Result<MetadataReply, _> = client.submit(&request).await;
            if let Ok(Ok(ControllerReply::AlterPartition(results))) = reply {
                for result in results.iter().filter_map(|r| r.error.as_ref()) {
                    eprintln!("AlterPartition for {}: {result}", tp.partition);
                }
            }
        }
        assert!(
            start.elapsed() < SETTLE,
            "broker {broker} did not get back into the ISRs"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
