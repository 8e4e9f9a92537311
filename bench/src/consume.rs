//! Consumer threads: each is assigned its share of the partitions (no group, so no
//! rebalance noise), reads from the beginning or the end, counts what it reads and, for
//! end-to-end runs, records each record's latency from its stamped send time.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::{base_config, now_ns, read_stamp};
use crate::report::{new_histogram, record_us, Counters, Latency};

/// The longest one poll waits.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// Where consumers start and when they stop.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// From the beginning, until every assigned partition reports its end.
    Drain,
    /// From the end, recording latency of records stamped at or after
    /// [`ConsumeShared::measure_from_ns`], until told to stop.
    Latency,
}

/// State shared by the consumer threads and the thread that started them.
pub struct ConsumeShared {
    pub counters: Arc<Counters>,
    pub latency: Latency,
    /// Consumers that have their assignment and have fetched once.
    pub ready: AtomicU64,
    /// Stamps before this are warm-up: not recorded.
    pub measure_from_ns: AtomicU64,
    /// Set to stop latency consumers.
    pub stop: AtomicBool,
    /// Time by which to give up.
    pub deadline: Instant,
}

/// Runs one consumer thread over `partitions`.
pub fn run_consumer(
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
    mode: Mode,
    shared: Arc<ConsumeShared>,
) -> anyhow::Result<()> {
    if partitions.is_empty() {
        shared.ready.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let consumer: BaseConsumer = base_config(bootstrap)
        // librdkafka wants a group for assign(); it is never joined (no subscribe) and
        // nothing is committed.
        .set("group.id", crate::kafka::group_id())
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .context("cannot create a consumer")?;
    let start = match mode {
        Mode::Drain => Offset::Beginning,
        Mode::Latency => Offset::End,
    };
    let mut assignment = TopicPartitionList::new();
    for &p in partitions {
        assignment
            .add_partition_offset(topic, p, start)
            .context("building the assignment")?;
    }
    consumer.assign(&assignment).context("assign")?;
    let mut histogram = new_histogram();
    let mut at_end: HashSet<i32> = HashSet::new();
    let mut signalled_ready = false;
    let mut records = 0u64;
    let mut bytes = 0u64;
    loop {
        if Instant::now() >= shared.deadline {
            eprintln!("consumer gave up at its deadline");
            break;
        }
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let polled = consumer.poll(POLL_TIMEOUT);
        if !signalled_ready {
            // One poll round trip: the assignment is in place and fetching started.
            signalled_ready = true;
            shared.ready.fetch_add(1, Ordering::Relaxed);
        }
        match polled {
            None => {
                shared.counters.add(records, bytes);
                (records, bytes) = (0, 0);
            }
            Some(Ok(message)) => {
                let payload = message.payload().unwrap_or_default();
                records += 1;
                bytes += payload.len() as u64;
                if let (Mode::Latency, Some(sent_ns)) = (mode, read_stamp(payload)) {
                    if sent_ns >= shared.measure_from_ns.load(Ordering::Relaxed) {
                        record_us(&mut histogram, now_ns().saturating_sub(sent_ns) / 1000);
                    }
                }
                if records.is_multiple_of(1024) {
                    shared.counters.add(records, bytes);
                    (records, bytes) = (0, 0);
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
                if matches!(mode, Mode::Drain) && at_end.len() >= partitions.len() {
                    break;
                }
            }
            Some(Err(error)) => {
                let errors = shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                if errors < 5 {
                    eprintln!("consume error: {error}");
                }
            }
        }
    }
    shared.counters.add(records, bytes);
    shared.latency.merge(&histogram);
    Ok(())
}
