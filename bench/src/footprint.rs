//! Footprint workloads: the broker's RSS with many idle partitions, and its start-up time
//! with many gigabytes of cleanly closed logs. Both need a broker this program starts.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord};
use serde::Serialize;

use crate::broker::{dir_bytes, Broker};
use crate::kafka::{base_config, create_topic, wait_for_leaders};
use crate::produce::{Pace, ProduceShared, ProducerSettings};
use crate::report::Counters;
use crate::workload::{broker_for, load_average, DataDir};
use crate::Args;

/// Free bytes the start-up fill leaves on the disk.
const DISK_RESERVE_BYTES: u64 = 8_000_000_000;
/// Partitions the start-up fill spreads its bytes over.
const STARTUP_PARTITIONS: i32 = 8;
/// Record size of the start-up fill.
const STARTUP_RECORD_BYTES: usize = 16 * 1024;
/// How long the idle broker is left alone before its RSS is read.
const IDLE_SETTLE: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize)]
struct IdleOutput {
    workload: &'static str,
    partitions: i32,
    load_average: String,
    rss_mb_empty: Option<f64>,
    rss_mb_idle: Option<f64>,
    rss_mb_idle_after_one_record_each: Option<f64>,
    peak_rss_mb: Option<f64>,
    create_seconds: f64,
}

fn rss_mb(broker: &Broker) -> Option<f64> {
    broker.sample().map(|s| s.rss_bytes as f64 / 1e6)
}

pub fn idle_partitions(args: &Args) -> anyhow::Result<serde_json::Value> {
    if args.strom_bin.is_none() {
        bail!("the idle-partitions workload starts its own broker: give --strom-bin");
    }
    let data = DataDir::new(args, "idle")?;
    let mut broker = broker_for(args, &data.path, Vec::new())?;
    std::thread::sleep(IDLE_SETTLE);
    let rss_empty = rss_mb(&broker);
    let started = Instant::now();
    let topic = "strom-bench-idle";
    create_topic(&broker.bootstrap, topic, args.idle_partitions)?;
    let create_seconds = started.elapsed().as_secs_f64();
    std::thread::sleep(IDLE_SETTLE);
    let rss_idle = rss_mb(&broker);
    touch_every_partition(&broker.bootstrap, topic, args.idle_partitions)?;
    std::thread::sleep(IDLE_SETTLE);
    let output = IdleOutput {
        workload: "idle-partitions",
        partitions: args.idle_partitions,
        load_average: load_average(),
        rss_mb_empty: rss_empty,
        rss_mb_idle: rss_idle,
        rss_mb_idle_after_one_record_each: rss_mb(&broker),
        peak_rss_mb: broker.sample().map(|s| s.peak_rss_bytes as f64 / 1e6),
        create_seconds,
    };
    broker.stop();
    if !args.json {
        let show = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.1} MB"));
        println!("idle-partitions | load average {}", output.load_average);
        println!(
            "broker RSS: {} with no topic; {} with {} idle partitions (created in {:.2} s); {} after one record in each; peak {}",
            show(output.rss_mb_empty),
            show(output.rss_mb_idle),
            output.partitions,
            output.create_seconds,
            show(output.rss_mb_idle_after_one_record_each),
            show(output.peak_rss_mb)
        );
    }
    Ok(serde_json::to_value(&output)?)
}

/// One small record into every partition, so that each has opened its files once.
fn touch_every_partition(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let producer: BaseProducer = base_config(bootstrap)
        .set("linger.ms", "5")
        .create()
        .context("cannot create a producer")?;
    for p in 0..partitions {
        let record: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic)
            .partition(p)
            .payload(b"idle".as_slice());
        if let Err((error, _)) = producer.send(record) {
            bail!("cannot send to partition {p}: {error}");
        }
        producer.poll(Duration::ZERO);
    }
    crate::kafka::flush(&producer, Duration::from_secs(60))
        .context("flushing one record per partition")
}

#[derive(Debug, Serialize)]
struct StartupOutput {
    workload: &'static str,
    load_average: String,
    log_bytes: u64,
    requested_bytes: u64,
    disk_limited: bool,
    fill_seconds: f64,
    clean_stop: bool,
    /// Spawn to the ready line, warm page cache.
    ready_ms: Vec<f64>,
    /// Spawn to every partition answering metadata with a leader and its end offsets.
    serving_ms: Vec<f64>,
    /// The same with the page cache dropped before the start (`--cold`).
    cold_ready_ms: Option<f64>,
    cold_serving_ms: Option<f64>,
    rss_mb_after_start: Option<f64>,
}

/// Bytes free for an unprivileged user on the file system of `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs is plain old data, for which all-zero bytes are a valid value.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stat` a valid out-pointer.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    (rc == 0).then(|| stat.f_bavail as u64 * stat.f_frsize as u64)
}

pub fn startup(args: &Args) -> anyhow::Result<serde_json::Value> {
    if args.strom_bin.is_none() {
        bail!("the startup workload starts its own broker: give --strom-bin");
    }
    let data = DataDir::new(args, "startup")?;
    let requested = args.startup_gb * 1_000_000_000;
    let free = free_bytes(&data.path).unwrap_or(0);
    let target = requested.min(free.saturating_sub(DISK_RESERVE_BYTES));
    if target < requested {
        eprintln!(
            "startup: the disk has {:.1} GB free: filling {:.1} GB instead of {:.1} GB",
            free as f64 / 1e9,
            target as f64 / 1e9,
            requested as f64 / 1e9
        );
    }
    let topic = "strom-bench-startup";
    let mut broker = broker_for(args, &data.path, Vec::new())?;
    create_topic(&broker.bootstrap, topic, STARTUP_PARTITIONS)?;
    let fill_started = Instant::now();
    fill(&broker.bootstrap, topic, target, args.quiet)?;
    let fill_seconds = fill_started.elapsed().as_secs_f64();
    let clean_stop = broker.stop();
    drop(broker);
    let log_bytes = dir_bytes(&data.path);
    let mut ready_ms = Vec::new();
    let mut serving_ms = Vec::new();
    let mut rss = None;
    for _ in 0..3 {
        let (ready, serving, broker) = timed_start(args, &data.path, topic)?;
        ready_ms.push(ready);
        serving_ms.push(serving);
        rss = rss_mb(&broker);
        let mut broker = broker;
        broker.stop();
    }
    let (mut cold_ready_ms, mut cold_serving_ms) = (None, None);
    if args.cold {
        // SAFETY: sync(2) has no preconditions.
        unsafe { libc::sync() };
        match std::fs::write("/proc/sys/vm/drop_caches", "3") {
            Ok(()) => {
                let (ready, serving, mut broker) = timed_start(args, &data.path, topic)?;
                cold_ready_ms = Some(ready);
                cold_serving_ms = Some(serving);
                broker.stop();
            }
            Err(error) => eprintln!("cannot drop the page cache: {error}"),
        }
    }
    let output = StartupOutput {
        workload: "startup",
        load_average: load_average(),
        log_bytes,
        requested_bytes: requested,
        disk_limited: target < requested,
        fill_seconds,
        clean_stop,
        ready_ms,
        serving_ms,
        cold_ready_ms,
        cold_serving_ms,
        rss_mb_after_start: rss,
    };
    if !args.json {
        println!(
            "startup | {:.2} GB of logs in {} partitions (filled in {:.1} s, clean stop: {}) | load average {}",
            output.log_bytes as f64 / 1e9,
            STARTUP_PARTITIONS,
            output.fill_seconds,
            output.clean_stop,
            output.load_average
        );
        let list = |v: &[f64]| {
            v.iter()
                .map(|ms| format!("{ms:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "start to ready line (ms): {}; start to every partition serving (ms): {}",
            list(&output.ready_ms),
            list(&output.serving_ms)
        );
        if let (Some(ready), Some(serving)) = (output.cold_ready_ms, output.cold_serving_ms) {
            println!("cold page cache: ready {ready:.1} ms, serving {serving:.1} ms");
        }
    }
    Ok(serde_json::to_value(&output)?)
}

/// Starts the broker on existing data; returns ms to the ready line and ms until every
/// partition of `topic` has a leader and answers a ListOffsets.
fn timed_start(args: &Args, data: &Path, topic: &str) -> anyhow::Result<(f64, f64, Broker)> {
    let broker = broker_for(args, data, Vec::new())?;
    let ready = broker.ready_after.unwrap_or_default();
    let started = Instant::now() - ready;
    wait_for_leaders(&broker.bootstrap, topic, STARTUP_PARTITIONS)?;
    let client: BaseConsumer = base_config(&broker.bootstrap).create()?;
    for p in 0..STARTUP_PARTITIONS {
        client
            .fetch_watermarks(topic, p, Duration::from_secs(30))
            .with_context(|| format!("end offsets of partition {p}"))?;
    }
    let serving = started.elapsed();
    Ok((
        ready.as_secs_f64() * 1e3,
        serving.as_secs_f64() * 1e3,
        broker,
    ))
}

/// Produces `bytes` of 16 KiB records over the topic's partitions, as fast as possible.
fn fill(bootstrap: &str, topic: &str, bytes: u64, quiet: bool) -> anyhow::Result<()> {
    let settings = ProducerSettings {
        bootstrap: bootstrap.to_string(),
        topic: topic.to_string(),
        partitions: STARTUP_PARTITIONS,
        record_bytes: STARTUP_RECORD_BYTES,
        acks: "1".into(),
        compression: "none".into(),
        linger_ms: 5,
        max_in_flight: None,
    };
    let counters = std::sync::Arc::new(Counters::default());
    let shared = std::sync::Arc::new(ProduceShared::new(std::sync::Arc::clone(&counters)));
    let _progress =
        crate::report::Progress::start("fill".into(), std::sync::Arc::clone(&counters), quiet);
    let records = bytes / STARTUP_RECORD_BYTES as u64;
    let halves = [records / 2, records - records / 2];
    let threads: Vec<_> = halves
        .iter()
        .enumerate()
        .map(|(i, &records)| {
            let settings = settings.clone();
            let shared = std::sync::Arc::clone(&shared);
            std::thread::spawn(move || {
                crate::produce::run_producer(
                    &settings,
                    Pace::Flat { records },
                    i as u64 + 1,
                    shared,
                )
            })
        })
        .collect();
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a fill thread panicked"))??;
    }
    Ok(())
}
