//! Producer threads: as fast as the client goes (a fixed number of records), or at a fixed
//! rate where each record carries its *intended* send time, so that a stalled broker shows
//! up as latency instead of as fewer samples (no coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;

use crate::kafka::{base_config, instant_ns, now_ns, payload_template, read_stamp, stamp};
use crate::report::{new_histogram, record_us, Counters, Latency};

/// How long a producer may take to deliver what it still holds at the end.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);
/// Sends between two non-blocking polls for delivery reports.
const SENDS_PER_POLL: u64 = 256;

/// Producer settings shared by every producer thread.
#[derive(Clone, Debug)]
pub struct ProducerSettings {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: i32,
    pub record_bytes: usize,
    pub acks: String,
    pub compression: String,
    pub linger_ms: u64,
    pub max_in_flight: Option<u32>,
}

/// What a producer thread sends: a count as fast as possible, or a rate for a duration.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    Flat { records: u64 },
    Rate { records_per_s: f64, until: Instant },
}

/// Figures every producer thread contributes to.
pub struct ProduceShared {
    pub counters: Arc<Counters>,
    /// Send to acknowledgement, microseconds.
    pub ack_latency: Latency,
    pub batch_bytes_avg: AtomicU64,
    pub batch_records_avg: AtomicU64,
    /// Records sent (acknowledged or not).
    pub sent: AtomicU64,
}

impl ProduceShared {
    pub fn new(counters: Arc<Counters>) -> ProduceShared {
        ProduceShared {
            counters,
            ack_latency: Latency::new(),
            batch_bytes_avg: AtomicU64::new(0),
            batch_records_avg: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        }
    }
}

struct Reports {
    shared: Arc<ProduceShared>,
    topic: String,
    histogram: Mutex<Histogram<u64>>,
}

impl ClientContext for Reports {
    fn stats(&self, statistics: Statistics) {
        if let Some(topic) = statistics.topics.get(&self.topic) {
            if topic.batchsize.avg > 0 {
                let avg = topic.batchsize.avg as u64;
                self.shared.batch_bytes_avg.store(avg, Ordering::Relaxed);
                let records = topic.batchcnt.avg.max(0) as u64;
                self.shared
                    .batch_records_avg
                    .store(records, Ordering::Relaxed);
            }
        }
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => {
                let payload = message.payload().unwrap_or_default();
                self.shared.counters.add(1, payload.len() as u64);
                if let Some(sent_ns) = read_stamp(payload) {
                    let latency_us = now_ns().saturating_sub(sent_ns) / 1000;
                    let mut histogram = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
                    record_us(&mut histogram, latency_us);
                }
            }
            Err((error, _)) => {
                let errors = self.shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                if errors < 5 {
                    eprintln!("delivery failed: {error}");
                }
            }
        }
    }
}

/// Runs one producer thread's share to the end (its records delivered or failed).
pub fn run_producer(
    settings: &ProducerSettings,
    pace: Pace,
    seed: u64,
    shared: Arc<ProduceShared>,
) -> anyhow::Result<()> {
    let context = Reports {
        shared: Arc::clone(&shared),
        topic: settings.topic.clone(),
        histogram: Mutex::new(new_histogram()),
    };
    let mut config = base_config(&settings.bootstrap);
    if let Some(max) = settings.max_in_flight {
        config.set("max.in.flight.requests.per.connection", max.to_string());
    }
    let producer: BaseProducer<Reports> = config
        .set("acks", &settings.acks)
        .set("compression.type", &settings.compression)
        .set("linger.ms", settings.linger_ms.to_string())
        .set("enable.idempotence", "false")
        .set("statistics.interval.ms", "200")
        .create_with_context(context)
        .context("cannot create a producer")?;
    let mut payload = payload_template(settings.record_bytes, seed);
    let mut partition = (seed % settings.partitions.max(1) as u64) as i32;
    let mut sent = 0u64;
    let started = Instant::now();
    loop {
        let stamp_ns = match pace {
            Pace::Flat { records } if sent >= records => break,
            Pace::Flat { .. } => now_ns(),
            Pace::Rate {
                records_per_s,
                until,
            } => {
                let intended = started + Duration::from_secs_f64(sent as f64 / records_per_s);
                if intended >= until {
                    break;
                }
                wait_until(&producer, intended);
                instant_ns(intended)
            }
        };
        stamp(&mut payload, stamp_ns);
        send(&producer, &settings.topic, partition, &payload);
        sent += 1;
        shared.sent.fetch_add(1, Ordering::Relaxed);
        // Spread records over the partitions evenly, whatever the client's partitioner.
        partition = (partition + 1) % settings.partitions.max(1);
        if sent.is_multiple_of(SENDS_PER_POLL) {
            producer.poll(Duration::ZERO);
        }
    }
    let flushed = crate::kafka::flush(&producer, FLUSH_TIMEOUT);
    let context = producer.context();
    shared
        .ack_latency
        .merge(&context.histogram.lock().unwrap_or_else(|e| e.into_inner()));
    flushed.context("flushing the producer")
}

/// Sends one record, waiting (and serving delivery reports) while the queue is full.
fn send(producer: &BaseProducer<Reports>, topic: &str, partition: i32, payload: &[u8]) {
    loop {
        let record: BaseRecord<'_, (), [u8]> =
            BaseRecord::to(topic).partition(partition).payload(payload);
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(1));
            }
            Err((error, _)) => {
                eprintln!("send failed: {error}");
                producer.poll(Duration::from_millis(10));
                return;
            }
        }
    }
}

/// Sleeps until `instant`, serving delivery reports meanwhile. Never spins: on 2 cores a
/// spinning client takes a core from the broker it measures. Sleeping late is fine: the
/// record still carries its intended time, so lateness shows up as latency.
fn wait_until(producer: &BaseProducer<Reports>, instant: Instant) {
    loop {
        let now = Instant::now();
        if now >= instant {
            return;
        }
        let left = instant - now;
        if left > Duration::from_millis(2) {
            producer.poll(left - Duration::from_millis(1));
        } else {
            std::thread::sleep(left);
        }
    }
}
