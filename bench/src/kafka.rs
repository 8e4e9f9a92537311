//! librdkafka plumbing shared by the workloads: client configs, topic creation and
//! deletion, waiting for leaders, and the record payload with its send-time stamp.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

/// How long topic creation and metadata waits may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of the send-time stamp at the start of each payload.
pub const STAMP_BYTES: usize = 8;

/// The clock every stamp is relative to (producers and consumers share this process).
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Nanoseconds since the origin.
pub fn now_ns() -> u64 {
    origin().elapsed().as_nanos() as u64
}

/// `instant` as nanoseconds since the origin (0 if before it).
pub fn instant_ns(instant: Instant) -> u64 {
    instant
        .checked_duration_since(origin())
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A payload template of `size_bytes`: the stamp (zero here) then filler that compresses
/// about as well as typical text (16 symbols from a pseudo-random sequence, ~2:1),
/// so that compression has work to do but does not reduce records to nothing.
pub fn payload_template(size_bytes: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut payload = vec![0u8; size_bytes.max(STAMP_BYTES)];
    for byte in payload.iter_mut().skip(STAMP_BYTES) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = b'a' + (state % 16) as u8;
    }
    payload
}

/// Writes `stamp_ns` into a payload made by [`payload_template`].
pub fn stamp(payload: &mut [u8], stamp_ns: u64) {
    if let Some(head) = payload.get_mut(..STAMP_BYTES) {
        head.copy_from_slice(&stamp_ns.to_le_bytes());
    }
}

/// The stamp of a payload, if it has one.
pub fn read_stamp(payload: &[u8]) -> Option<u64> {
    let head: [u8; STAMP_BYTES] = payload.get(..STAMP_BYTES)?.try_into().ok()?;
    Some(u64::from_le_bytes(head))
}

/// The base config every client gets.
pub fn base_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        // librdkafka's default is `localhost`-friendly dual stack; the broker listens on
        // 127.0.0.1 only.
        .set("broker.address.family", "v4")
        .set("log_level", "3");
    config
}

/// Waits until `producer` has delivered (or failed) everything it holds.
/// `Producer::flush` counts its timeout down by poll intervals, not by the clock, so it
/// gives up early while delivery reports keep arriving: this flushes against a real
/// deadline.
pub fn flush<C: ProducerContext>(
    producer: &BaseProducer<C>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match producer.flush(Duration::from_millis(100)) {
            Ok(()) => return Ok(()),
            Err(error) if Instant::now() >= deadline => return Err(error.into()),
            Err(_) => {}
        }
    }
}

/// Creates `topic` with `partitions` (replication factor 1) and waits until every
/// partition has a leader.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_config(bootstrap)
        .create()
        .context("cannot create an admin client")?;
    let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = futures_executor::block_on(admin.create_topics([&new_topic], &options))
        .context("CreateTopics failed")?;
    for result in results {
        if let Err((name, code)) = result {
            bail!("cannot create topic {name}: {code}");
        }
    }
    wait_for_leaders(bootstrap, topic, partitions)
}

/// The group id the consumers of this process use for `assign()` (never joined).
pub fn group_id() -> String {
    format!("strom-bench-{}", std::process::id())
}

/// Looks up the consumers' group coordinator once, before anything is measured: on a fresh
/// broker that creates the group coordinator's topic (`__consumer_offsets`, 50 partitions
/// in Kafka's default), a one-time cost that is not part of consuming.
pub fn warm_group_coordinator(bootstrap: &str, topic: &str) -> anyhow::Result<()> {
    let consumer: BaseConsumer = base_config(bootstrap)
        .set("group.id", group_id())
        .set("enable.auto.commit", "false")
        .create()
        .context("cannot create a consumer")?;
    let mut partitions = rdkafka::TopicPartitionList::new();
    partitions.add_partition(topic, 0);
    // Committed offsets come from the coordinator: an answer means it exists. While its
    // topic is being created the broker answers COORDINATOR_NOT_AVAILABLE: ask again.
    let deadline = Instant::now() + ADMIN_TIMEOUT;
    loop {
        match consumer.committed_offsets(partitions.clone(), Duration::from_secs(10)) {
            Ok(_) => return Ok(()),
            Err(error) if Instant::now() >= deadline => {
                return Err(error).context("looking up the group coordinator")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Deletes `topic` (best effort: a failure is reported, not fatal).
pub fn delete_topic(bootstrap: &str, topic: &str) {
    let admin: Result<AdminClient<DefaultClientContext>, _> = base_config(bootstrap).create();
    let Ok(admin) = admin else { return };
    let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
    if let Err(error) = futures_executor::block_on(admin.delete_topics(&[topic], &options)) {
        eprintln!("warning: cannot delete topic {topic}: {error}");
    }
}

/// Polls metadata until `topic` has `partitions` partitions, each with a leader.
pub fn wait_for_leaders(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    wait_for_leaders_within(bootstrap, topic, partitions, ADMIN_TIMEOUT)
}

/// [`wait_for_leaders`] with its own time limit.
pub fn wait_for_leaders_within(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> anyhow::Result<()> {
    let client: BaseConsumer = base_config(bootstrap)
        .create()
        .context("cannot create a metadata client")?;
    let deadline = Instant::now() + timeout;
    loop {
        let ready = client
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|metadata| {
                let t = metadata.topics().first()?;
                let ok = t.error().is_none()
                    && t.partitions().len() == partitions as usize
                    && t.partitions()
                        .iter()
                        .all(|p| p.leader() >= 0 && p.error().is_none());
                Some(ok)
            })
            .unwrap_or(false);
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(anyhow!("topic {topic} has no leaders after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Splits `0..partitions` into `consumers` nearly equal groups (round robin).
pub fn spread(partitions: i32, consumers: usize) -> Vec<Vec<i32>> {
    let mut groups = vec![Vec::new(); consumers.max(1)];
    for p in 0..partitions {
        let slot = p as usize % groups.len();
        if let Some(group) = groups.get_mut(slot) {
            group.push(p);
        }
    }
    groups
}
