//! Replication with three real `strom server` processes on 127.0.0.1 (brokers and
//! metadata quorum members): an RF 3 topic with `min.insync.replicas=2` takes an `acks=all`
//! producer (strom-client, idempotent) while the partition's leader is killed with
//! `kill -9` and restarted, and then paused with SIGSTOP past its session and resumed; the
//! returning brokers rejoin the ISR (seen through Metadata), every acknowledged record is
//! read back at its offset, and after a clean stop the replicas' logs on disk agree (each
//! one a prefix of the longest). Once in page-cache mode, once under sync-on-commit, which
//! also shows `acks=all` refused with NOT_ENOUGH_REPLICAS below `min.insync.replicas`.
//!
//! A new leader also has its predecessor's transaction state (last stable offset, aborted
//! transactions), replayed from the batches it fetched.
//!
//! `STROM_REPLICATION_ROUNDS=<n>` repeats the fault rounds (results in docs/PERFORMANCE.md).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{free_ports, ServerProcess};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use strom_client::{
    Admin, AlterConfigOp, ClientConfig, ConfigResource, Consumer, ConsumerConfig, NewTopic,
    PartitionInfo, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};

const TOPIC: &str = "replicated";
const NODES: [i32; 3] = [1, 2, 3];
/// Bound on every wait for the cluster to reach a state.
const WAIT: Duration = Duration::from_secs(45);
/// The brokers' session (heartbeats every 500 ms).
const SESSION_MS: u64 = 4_500;
/// How long a fault waits for leadership to move before it gives up on that (on a
/// machine so loaded that the other brokers' heartbeats failed too, the faulted broker may
/// be the last ISR member: then no clean election can move leadership, by design).
const MOVE_WAIT: Duration = Duration::from_secs(25);

/// One node's configuration and process.
struct Node {
    overrides: Vec<String>,
    broker_addr: String,
    data: PathBuf,
    process: Option<ServerProcess>,
    paused: bool,
}

/// Three brokers that are also the metadata quorum.
struct Cluster {
    _root: tempfile::TempDir,
    nodes: BTreeMap<i32, Node>,
    bootstrap: String,
}

impl Cluster {
    fn start(extra: &[&str]) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let ports = free_ports(6);
        let voters = NODES
            .iter()
            .map(|id| format!("{id}@127.0.0.1:{}", ports[*id as usize + 2]))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = BTreeMap::new();
        for id in NODES {
            let broker_port = ports[id as usize - 1];
            let controller_port = ports[id as usize + 2];
            let data = root.path().join(format!("node-{id}"));
            let mut overrides = vec![
                format!("node.id={id}"),
                "process.roles=broker,controller".to_string(),
                format!(
                    "listeners=PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}"
                ),
                "controller.listener.names=CONTROLLER".to_string(),
                format!("controller.quorum.voters={voters}"),
                format!("log.dirs={}", data.display()),
                "controller.quorum.election.timeout.ms=500".to_string(),
                format!("broker.session.timeout.ms={SESSION_MS}"),
                "broker.heartbeat.interval.ms=500".to_string(),
                "replica.lag.time.max.ms=4000".to_string(),
                "replica.fetch.backoff.ms=200".to_string(),
                "replica.high.watermark.checkpoint.interval.ms=500".to_string(),
            ];
            overrides.extend(extra.iter().map(|s| s.to_string()));
            nodes.insert(
                id,
                Node {
                    overrides,
                    broker_addr: format!("127.0.0.1:{broker_port}"),
                    data,
                    process: None,
                    paused: false,
                },
            );
        }
        for node in nodes.values_mut() {
            node.process = Some(ServerProcess::spawn(&node.overrides, &node.broker_addr));
        }
        for node in nodes.values_mut() {
            if let Some(process) = node.process.as_mut() {
                process.wait_ready(Duration::from_secs(60));
            }
        }
        let bootstrap = nodes
            .values()
            .map(|n| n.broker_addr.clone())
            .collect::<Vec<_>>()
            .join(",");
        Cluster {
            _root: root,
            nodes,
            bootstrap,
        }
    }

    fn node(&mut self, id: i32) -> &mut Node {
        self.nodes.get_mut(&id).unwrap()
    }

    fn kill(&mut self, id: i32) {
        if let Some(mut process) = self.node(id).process.take() {
            process.kill();
        }
    }

    fn restart(&mut self, id: i32) {
        let node = self.node(id);
        let mut process = ServerProcess::spawn(&node.overrides, &node.broker_addr);
        process.wait_ready(Duration::from_secs(60));
        node.process = Some(process);
    }

    fn signal(&mut self, id: i32, name: &str) {
        let node = self.node(id);
        if let Some(process) = &node.process {
            process.signal(name);
            node.paused = name == "STOP";
        }
    }

    /// SIGTERM to every node (each waits for a clean exit, bounded).
    fn stop(&mut self) {
        for id in NODES {
            if let Some(mut process) = self.node(id).process.take() {
                process.terminate();
            }
        }
    }

    fn admin(&self) -> Admin {
        admin_of(&self.bootstrap)
    }
}

fn admin_of(bootstrap: &str) -> Admin {
    let mut config = ClientConfig::new(bootstrap);
    config.request_timeout_ms = 3_000;
    config.default_api_timeout_ms = 5_000;
    Admin::new(config).unwrap()
}

/// The partition as Metadata reports it, once every live broker reports the same (a
/// broker that just restarted may still answer from the image it had before).
async fn partition_state(cluster: &Cluster) -> Option<PartitionInfo> {
    let mut agreed: Option<PartitionInfo> = None;
    for node in cluster.nodes.values() {
        if node.process.is_none() || node.paused {
            continue;
        }
        let admin = admin_of(&node.broker_addr);
        let topics = admin.describe_topics(&[TOPIC.to_string()]).await;
        admin.close().await;
        let mut state = topics
            .ok()?
            .into_iter()
            .next()?
            .partitions
            .into_iter()
            .next()?;
        state.isr.sort_unstable();
        match &agreed {
            Some(other) if *other != state => return None,
            _ => agreed = Some(state),
        }
    }
    agreed
}

/// Polls the partition's metadata until `done` holds (bounded by [`WAIT`]).
async fn wait_for(
    cluster: &Cluster,
    what: &str,
    done: impl Fn(&PartitionInfo) -> bool,
) -> PartitionInfo {
    match wait_within(cluster, what, WAIT, done).await {
        Ok(state) => state,
        Err(last) => panic!("{what} did not happen within {WAIT:?}; last seen {last:?}"),
    }
}

/// Polls the partition's metadata until `done` holds or `limit` passes (then the last
/// state seen).
async fn wait_within(
    cluster: &Cluster,
    what: &str,
    limit: Duration,
    done: impl Fn(&PartitionInfo) -> bool,
) -> Result<PartitionInfo, Option<PartitionInfo>> {
    let start = Instant::now();
    let mut last = None;
    loop {
        if let Some(state) = partition_state(cluster).await {
            if done(&state) {
                eprintln!("{what}: {state:?} after {:?}", start.elapsed());
                return Ok(state);
            }
            last = Some(state);
        }
        if start.elapsed() >= limit {
            eprintln!("{what}: not within {limit:?}; last seen {last:?}");
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An `acks=all` producer running in the background, recording what was acknowledged.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeMap<i64, String>>>,
    failed: Arc<AtomicU64>,
    sender: tokio::task::JoinHandle<()>,
    waiter: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(bootstrap: &str) -> Load {
        let mut config = ProducerConfig::new(bootstrap);
        config.client.request_timeout_ms = 10_000;
        config.delivery_timeout_ms = 60_000;
        config.linger_ms = 2;
        let producer = Arc::new(Producer::new(config).unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let failed = Arc::new(AtomicU64::new(0));
        let (tx, mut rx) = tokio::sync::mpsc::channel(10_000);
        let sending = Arc::clone(&producer);
        let stopping = Arc::clone(&stop);
        let sender = tokio::spawn(async move {
            let mut next = 0u64;
            while !stopping.load(Ordering::Relaxed) {
                let value = format!("value-{next:08}");
                next += 1;
                let record = ProducerRecord::new(TOPIC, value.clone()).partition(0);
                match sending.send(record).await {
                    Ok(delivery) => {
                        if tx.send((value, delivery)).await.is_err() {
                            break;
                        }
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let _ = sending.flush().await;
            let _ = sending.close().await;
        });
        let recording = Arc::clone(&acked);
        let failing = Arc::clone(&failed);
        let waiter = tokio::spawn(async move {
            while let Some((value, delivery)) = rx.recv().await {
                match delivery.await {
                    Ok(meta) => {
                        let previous = recording.lock().unwrap().insert(meta.offset, value);
                        assert!(
                            previous.is_none(),
                            "two records acknowledged at {}",
                            meta.offset
                        );
                    }
                    Err(_) => {
                        failing.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        Load {
            stop,
            acked,
            failed,
            sender,
            waiter,
        }
    }

    fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits (bounded) until `more` records more are acknowledged: the producer found the
    /// current leader and the ISR confirms again.
    async fn wait_for_progress(&self, more: usize) {
        let target = self.acked_count() + more;
        let start = Instant::now();
        while self.acked_count() < target {
            assert!(
                start.elapsed() < WAIT,
                "acknowledgements stalled at {} (waiting for {target})",
                self.acked_count()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn finish(self) -> (BTreeMap<i64, String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(90), self.sender)
            .await
            .expect("producer stops")
            .unwrap();
        tokio::time::timeout(Duration::from_secs(90), self.waiter)
            .await
            .expect("deliveries resolve")
            .unwrap();
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        (acked, self.failed.load(Ordering::Relaxed))
    }
}

/// Reads the partition from the start up to `end` (bounded) and returns offset -> value.
async fn read_back(bootstrap: &str, end: i64) -> BTreeMap<i64, String> {
    let mut consumer = Consumer::new(ConsumerConfig::new(bootstrap)).unwrap();
    let tp = TopicPartition::new(TOPIC, 0);
    consumer.assign(vec![tp.clone()]).await.unwrap();
    consumer.seek_to_beginning(&[tp]).await.unwrap();
    let mut seen = BTreeMap::new();
    let start = Instant::now();
    while seen.keys().next_back().is_none_or(|last| *last < end) {
        assert!(
            start.elapsed() < WAIT,
            "read back only to {:?} of {end}",
            seen.keys().next_back()
        );
        for record in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            let value = String::from_utf8(record.value.unwrap_or_default().to_vec()).unwrap();
            seen.insert(record.offset, value);
        }
    }
    let _ = consumer.close().await;
    seen
}

/// Every acknowledged record is at its offset.
fn check_acked(acked: &BTreeMap<i64, String>, seen: &BTreeMap<i64, String>) {
    for (offset, value) in acked {
        assert_eq!(
            seen.get(offset),
            Some(value),
            "acknowledged {value} at offset {offset} is not there"
        );
    }
}

/// A replica's records as one byte stream: its segment files in offset order.
fn replica_bytes(data: &Path) -> Vec<u8> {
    let dir = data.join(format!("{TOPIC}-0"));
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    segments
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// After a clean stop the replicas agree: each one's records are a prefix of the longest
/// (a follower may stop before fetching the last batches, never with other ones).
fn check_replicas_agree(cluster: &Cluster) {
    let logs: Vec<(i32, Vec<u8>)> = cluster
        .nodes
        .iter()
        .map(|(id, node)| (*id, replica_bytes(&node.data)))
        .collect();
    let longest = logs.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
    let reference = logs.iter().find(|(_, b)| b.len() == longest).unwrap();
    for (id, bytes) in &logs {
        assert!(
            reference.1.starts_with(bytes),
            "replica {id} ({} bytes) differs from replica {} ({} bytes)",
            bytes.len(),
            reference.0,
            reference.1.len()
        );
        eprintln!("replica {id}: {} bytes", bytes.len());
    }
}

fn rounds() -> usize {
    std::env::var("STROM_REPLICATION_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// One round of faults against the partition's leader while `load` produces: kill -9 and
/// restart, then SIGSTOP past the session and SIGCONT; each time the old leader rejoins
/// the ISR.
async fn fault_round(cluster: &mut Cluster, load: &Load) {
    let state = wait_for(cluster, "a leader with a full ISR", |s| {
        s.leader > 0 && s.isr.len() == 3
    })
    .await;
    let killed = state.leader;
    load.wait_for_progress(200).await;
    eprintln!("kill -9 leader {killed}");
    cluster.kill(killed);
    wait_for(cluster, "a new leader", |s| {
        s.leader > 0 && s.leader != killed
    })
    .await;
    cluster.restart(killed);
    wait_for(cluster, "the killed leader back in the ISR", |s| {
        s.isr.contains(&killed) && s.leader > 0
    })
    .await;

    let state = wait_for(cluster, "a leader with a full ISR", |s| {
        s.leader > 0 && s.isr.len() == 3
    })
    .await;
    let paused = state.leader;
    load.wait_for_progress(200).await;
    eprintln!("SIGSTOP leader {paused}");
    cluster.signal(paused, "STOP");
    let _ = wait_within(
        cluster,
        "leadership away from the paused broker",
        MOVE_WAIT,
        |s| s.leader > 0 && s.leader != paused,
    )
    .await;
    cluster.signal(paused, "CONT");
    eprintln!("SIGCONT {paused}");
    wait_for(cluster, "the paused broker back in the ISR", |s| {
        s.isr.contains(&paused) && s.leader > 0
    })
    .await;
}

async fn acks_all_survives_faults(extra: &[&str]) -> Cluster {
    let mut cluster = Cluster::start(extra);
    let admin = cluster.admin();
    admin
        .create_topic(&NewTopic::new(TOPIC, 1, 3).config("min.insync.replicas", "2"))
        .await
        .unwrap();
    admin.close().await;
    wait_for(&cluster, "the topic with a full ISR", |s| {
        s.leader > 0 && s.isr.len() == 3
    })
    .await;
    let load = Load::start(&cluster.bootstrap);
    for _ in 0..rounds() {
        fault_round(&mut cluster, &load).await;
    }
    load.wait_for_progress(200).await;
    let (acked, failed) = load.finish().await;
    eprintln!("{} records acknowledged, {failed} failed", acked.len());
    assert!(acked.len() > 200, "too few acknowledged: {}", acked.len());
    let end = acked.keys().next_back().copied().unwrap_or(0);
    let seen = read_back(&cluster.bootstrap, end).await;
    check_acked(&acked, &seen);
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_loses_nothing_across_kill_pause_and_restart() {
    let mut cluster = acks_all_survives_faults(&[]).await;
    cluster.stop();
    check_replicas_agree(&cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_loses_nothing_under_sync_on_commit_and_refuses_below_min_isr() {
    let mut cluster = acks_all_survives_faults(&["strom.log.durability=sync-on-commit"]).await;
    // min.insync.replicas=3 with a broker down: acks=all is refused before the append,
    // acks=1 still goes through.
    let admin = cluster.admin();
    admin
        .alter_configs(
            &ConfigResource::Topic(TOPIC.to_string()),
            &[AlterConfigOp::Set(
                "min.insync.replicas".to_string(),
                "3".to_string(),
            )],
        )
        .await
        .unwrap();
    admin.close().await;
    let state = wait_for(&cluster, "a leader with a full ISR", |s| {
        s.leader > 0 && s.isr.len() == 3
    })
    .await;
    let down = *state.replicas.iter().find(|r| **r != state.leader).unwrap();
    cluster.kill(down);
    let state = wait_for(&cluster, "the ISR without the killed follower", |s| {
        s.leader > 0 && !s.isr.contains(&down)
    })
    .await;
    let leader_addr = cluster.nodes[&state.leader].broker_addr.clone();
    let start = Instant::now();
    let code = loop {
        let code = raw_produce(&leader_addr, -1);
        // The leader may not have applied the new min.insync.replicas or ISR yet.
        if code != 0 || start.elapsed() > WAIT {
            break code;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        code, 19,
        "acks=all below min.insync.replicas: NOT_ENOUGH_REPLICAS"
    );
    assert_eq!(raw_produce(&leader_addr, 1), 0, "acks=1 is not held back");
    cluster.restart(down);
    cluster.stop();
    check_replicas_agree(&cluster);
}

/// One Produce of one record to partition 0 at `addr`; the partition's error code.
fn raw_produce(addr: &str, acks: i16) -> i16 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut builder = strom_records::BatchBuilder::new(0, now);
    builder
        .append(now, None, Some(Bytes::from_static(b"raw")), vec![])
        .unwrap();
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(builder.build().unwrap().into()))])]);
    let response: ProduceResponse = send(addr, 9, request);
    response.responses[0].partition_responses[0].error_code
}

/// One request and its response over a fresh blocking connection.
fn send<R>(addr: &str, version: i16, body: R) -> R::Response
where
    R: Request + Encodable,
    R::Response: Decodable,
{
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let api = ApiKey::try_from(R::KEY).unwrap();
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("replication-test")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let mut framed = BytesMut::new();
    framed.put_i32(buf.len() as i32);
    framed.put_slice(&buf);
    stream.write_all(&framed).unwrap();
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).unwrap();
    let mut body = Bytes::from(body);
    ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
    let response = R::Response::decode(&mut body, version).unwrap();
    assert_eq!(body.remaining(), 0);
    response
}

/// A follower whose copy of the partition is damaged (a flipped byte with intact batches
/// after it, found by recovery after kill -9) keeps it offline and untouched, never copies
/// into it, never rejoins the ISR and so never becomes leader: when the leader is then
/// killed, leadership goes to the healthy replica, which holds every acknowledged record.
/// With its directory moved aside the broker copies the partition again and rejoins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_replica_stays_out_of_the_isr_and_never_leads() {
    let mut cluster = Cluster::start(&[]);
    let admin = cluster.admin();
    admin
        .create_topic(&NewTopic::new(TOPIC, 1, 3).config("min.insync.replicas", "2"))
        .await
        .unwrap();
    admin.close().await;
    let state = wait_for(&cluster, "the topic with a full ISR", |s| {
        s.leader > 0 && s.isr.len() == 3
    })
    .await;
    let load = Load::start(&cluster.bootstrap);
    load.wait_for_progress(300).await;
    let damaged = *state.replicas.iter().find(|r| **r != state.leader).unwrap();
    cluster.kill(damaged);
    let segment = cluster.nodes[&damaged]
        .data
        .join(format!("{TOPIC}-0"))
        .join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&segment).unwrap();
    assert!(
        bytes.len() > 1_000,
        "the follower copied too little to damage"
    );
    // Inside the first batch's records (past its 61-byte header): its CRC no longer
    // matches, and the intact batches after it make this damage, not a torn tail.
    bytes[64] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();
    cluster.restart(damaged);
    load.wait_for_progress(300).await;
    let state = wait_for(
        &cluster,
        "a leader and the ISR without the damaged replica",
        |s| s.leader > 0 && s.leader != damaged && !s.isr.contains(&damaged) && s.isr.len() == 2,
    )
    .await;
    // Long past replica.lag.time.max.ms: it is still out, and the load still commits.
    load.wait_for_progress(300).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = wait_for(&cluster, "the same ISR", |_| true).await;
    assert!(
        !after.isr.contains(&damaged),
        "a damaged replica rejoined the ISR: {after:?}"
    );
    let (acked, _) = load.finish().await;
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "the damaged segment was changed"
    );
    let killed = state.leader;
    cluster.kill(killed);
    let healthy = *state.isr.iter().find(|r| **r != killed).unwrap();
    let state = wait_for(&cluster, "a new leader", |s| {
        s.leader > 0 && s.leader != killed
    })
    .await;
    assert_eq!(state.leader, healthy, "leadership went to {state:?}");
    let end = acked.keys().next_back().copied().unwrap_or(0);
    let seen = read_back(&cluster.nodes[&healthy].broker_addr.clone(), end).await;
    check_acked(&acked, &seen);
    cluster.restart(killed);
    // The way out FORMATS.md gives: with the broker stopped, the damaged directory moved
    // aside (kept, not deleted); the broker copies the partition again and rejoins the ISR.
    cluster.kill(damaged);
    let dir = cluster.nodes[&damaged].data.join(format!("{TOPIC}-0"));
    let aside = cluster.nodes[&damaged]
        .data
        .join(format!("{TOPIC}-0.damaged"));
    std::fs::rename(&dir, &aside).unwrap();
    cluster.restart(damaged);
    wait_for(&cluster, "every replica in the ISR again", |s| {
        s.leader > 0 && s.isr.len() == 3
    })
    .await;
    assert_eq!(
        std::fs::read(aside.join(format!("{:020}.log", 0))).unwrap(),
        bytes
    );
    cluster.stop();
    check_replicas_agree(&cluster);
}

/// Produces one batch holding `value` with acks=all: transactional for `producer` (epoch 0,
/// sequence 0), plain without. Returns the error code.
fn txn_produce(addr: &str, producer: Option<i64>, value: &'static str) -> i16 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut builder = strom_records::BatchBuilder::new(0, now);
    if let Some(id) = producer {
        builder = builder.producer(id, 0, 0).transactional(true);
    }
    builder
        .append(
            now,
            None,
            Some(Bytes::from_static(value.as_bytes())),
            vec![],
        )
        .unwrap();
    // Transactional batches carry the request's transactional id (Kafka refuses them
    // without one); the cluster runs without KIP-890 verification, so they open
    // transactions no coordinator knows of.
    let request = ProduceRequest::default()
        .with_transactional_id(producer.map(|_| {
            kafka_protocol::messages::TransactionalId(StrBytes::from_static_str("raw-txn"))
        }))
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(builder.build().unwrap().into()))])]);
    let response: ProduceResponse = send(addr, 9, request);
    response.responses[0].partition_responses[0].error_code
}

/// A read_committed Fetch from offset 0: (error, high watermark, last stable offset,
/// aborted transactions as (producer id, first offset)).
fn committed_view(addr: &str) -> (i16, i64, i64, Vec<(i64, i64)>) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = send(addr, 12, request);
    let p = &response.responses[0].partitions[0];
    let aborted = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    (
        p.error_code,
        p.high_watermark,
        p.last_stable_offset,
        aborted,
    )
}

/// Followers replay the leader's transactional batches and markers into the same producer
/// state: once the leader is killed, the new leader answers read_committed fetches with the
/// same last stable offset (held by a transaction still open) and the same aborted
/// transaction, and a marker written to it ends the open one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_has_the_same_last_stable_offset_and_aborted_transactions() {
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    let marker = |addr: &str, producer_id: i64, commit: bool| -> i16 {
        let request =
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(ProducerId(producer_id))
                .with_transaction_result(commit)
                .with_topics(vec![WritableTxnMarkerTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                    .with_partition_indexes(vec![0])])]);
        let response: WriteTxnMarkersResponse = send(addr, 1, request);
        response.markers[0].topics[0].partitions[0].error_code
    };
    let mut cluster = Cluster::start(&["transaction.partition.verification.enable=false"]);
    let admin = cluster.admin();
    admin
        .create_topic(&NewTopic::new(TOPIC, 1, 3))
        .await
        .unwrap();
    admin.close().await;
    let state = wait_for(&cluster, "the topic with a full ISR", |s| {
        s.leader > 0 && s.isr.len() == 3
    })
    .await;
    let old = state.leader;
    let addr = cluster.node(old).broker_addr.clone();
    // a (0, producer 11), p (1), ABORT of 11 (2), o (3, producer 12, left open).
    // The metadata answer may come from a node that learned of the leadership before the
    // leader itself did: NOT_LEADER_OR_FOLLOWER (6) until it has, then the first append.
    let start = Instant::now();
    let mut first = txn_produce(&addr, Some(11), "a");
    while first == 6 && start.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(50)).await;
        first = txn_produce(&addr, Some(11), "a");
    }
    assert_eq!(first, 0);
    assert_eq!(txn_produce(&addr, None, "p"), 0);
    assert_eq!(marker(&addr, 11, false), 0);
    assert_eq!(txn_produce(&addr, Some(12), "o"), 0);
    let expected = (0, 4, 3, vec![(11, 0)]);
    assert_eq!(committed_view(&addr), expected);

    cluster.kill(old);
    let state = wait_for(&cluster, "a new leader", |s| {
        s.leader > 0 && s.leader != old
    })
    .await;
    let addr = cluster.node(state.leader).broker_addr.clone();
    let start = Instant::now();
    loop {
        let seen = committed_view(&addr);
        if seen == expected {
            break;
        }
        assert!(start.elapsed() < WAIT, "new leader answers {seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(marker(&addr, 12, true), 0);
    assert_eq!(committed_view(&addr), (0, 5, 5, vec![(11, 0)]));
}
