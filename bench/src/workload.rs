//! The traffic workloads (produce, consume, end to end): start or reach the broker, create
//! the topic, run producer and consumer threads, take the broker's CPU time and peak RSS
//! around the measured part, then measure the limits and compare.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use serde::Serialize;

use crate::broker::{Broker, Launch, ProcSample};
use crate::consume::{run_consumer, ConsumeShared, Mode};
use crate::kafka::{
    create_topic, delete_topic, now_ns, spread, wait_for_leaders_within, warm_group_coordinator,
};
use crate::limits::{self, Limits};
use crate::produce::{run_producer, Pace, ProduceShared, ProducerSettings};
use crate::report::{Counters, Progress, WorkloadResult};
use crate::{Args, Workload};

/// How long consumers may take beyond the producers (and a drain may take in all).
const CONSUME_GRACE: Duration = Duration::from_secs(30);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);
/// The batch size the disk limits use when the client reported none.
const DEFAULT_BATCH_BYTES: u64 = 64 * 1024;

/// Everything one run reports.
#[derive(Debug, Serialize)]
pub struct RunOutput {
    pub workload: String,
    pub settings: Settings,
    pub load_average_before: String,
    pub load_average_after: String,
    pub results: Vec<WorkloadResult>,
    pub limits: Option<Limits>,
}

/// The run's parameters, echoed into the output.
#[derive(Debug, Serialize)]
pub struct Settings {
    pub broker: String,
    pub durability: String,
    pub record_bytes: usize,
    pub partitions: i32,
    pub producers: u64,
    pub consumers: u64,
    pub acks: String,
    pub compression: String,
    pub linger_ms: u64,
    pub max_in_flight: Option<u32>,
    pub rate: Option<u64>,
}

/// A data directory for a started broker, removed on drop unless kept.
pub struct DataDir {
    pub path: PathBuf,
    keep: bool,
}

impl DataDir {
    pub fn new(args: &Args, tag: &str) -> anyhow::Result<DataDir> {
        let path = match &args.data_dir {
            Some(dir) => dir.join(format!("{tag}-{}", std::process::id())),
            None => std::env::current_dir()?
                .join(format!("strom-bench-data-{tag}-{}", std::process::id())),
        };
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(DataDir {
            path,
            keep: args.keep_data,
        })
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Starts the broker of `args` (or names the existing one), with its data in `data`.
pub fn broker_for(args: &Args, data: &Path, extra: Vec<String>) -> anyhow::Result<Broker> {
    match (&args.strom_bin, &args.bootstrap) {
        (Some(bin), _) => Broker::start(&Launch {
            strom_bin: bin.clone(),
            data_dir: data.join("broker"),
            durability: args.durability.clone(),
            extra,
        }),
        (None, Some(bootstrap)) => Ok(Broker::existing(bootstrap.clone(), args.broker_pid)),
        (None, None) => Err(anyhow!("no broker given")),
    }
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// librdkafka's own default unless given.
fn linger_ms(args: &Args) -> u64 {
    args.linger_ms.unwrap_or(5)
}

pub fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    let load_before = load_average();
    let data = DataDir::new(args, "run")?;
    let mut broker = broker_for(args, &data.path, Vec::new())?;
    let topic = match &args.topic {
        Some(topic) => {
            let exists = Duration::from_secs(2);
            if wait_for_leaders_within(&broker.bootstrap, topic, args.partitions, exists).is_err() {
                create_topic(&broker.bootstrap, topic, args.partitions)?;
            }
            topic.clone()
        }
        None => {
            let topic = format!("strom-bench-{}-{}", std::process::id(), now_ns());
            create_topic(&broker.bootstrap, &topic, args.partitions)?;
            topic
        }
    };
    if args.workload != Workload::Produce {
        warm_group_coordinator(&broker.bootstrap, &topic)?;
    }
    let settings = ProducerSettings {
        bootstrap: broker.bootstrap.clone(),
        topic: topic.clone(),
        partitions: args.partitions,
        record_bytes: args.record_bytes,
        acks: args.acks.clone(),
        compression: args.compression.clone(),
        linger_ms: linger_ms(args),
        max_in_flight: args.max_in_flight,
    };
    let mut results = Vec::new();
    match args.workload {
        Workload::Produce => results.push(produce(args, &broker, &settings, "produce")?),
        Workload::Consume => {
            if !args.no_fill {
                results.push(produce(args, &broker, &settings, "fill")?);
            }
            results.push(consume(args, &broker, &topic)?);
        }
        Workload::E2e => results.push(end_to_end(args, &broker, &settings)?),
        Workload::IdlePartitions | Workload::Startup => {}
    }
    let limits = (!args.no_limits).then(|| {
        let batch_bytes = results
            .iter()
            .find_map(|r| r.produce_batch_bytes_avg)
            .filter(|b| *b > 0)
            .unwrap_or(DEFAULT_BATCH_BYTES);
        let total = results.iter().map(|r| r.bytes).max().unwrap_or(0);
        limits::measure(&data.path, batch_bytes, total.max(64 << 20))
    });
    if let Some(limits) = &limits {
        compare(args, &mut results, limits);
    }
    if args.bootstrap.is_some() && args.topic.is_none() {
        delete_topic(&broker.bootstrap, &topic);
    }
    broker.stop();
    let output = RunOutput {
        workload: format!("{:?}", args.workload).to_lowercase(),
        settings: Settings {
            broker: args
                .strom_bin
                .as_ref()
                .map_or_else(|| broker.bootstrap.clone(), |b| b.display().to_string()),
            durability: args.durability.clone(),
            record_bytes: args.record_bytes,
            partitions: args.partitions,
            producers: args.producers,
            consumers: args.consumers,
            acks: args.acks.clone(),
            compression: args.compression.clone(),
            linger_ms: linger_ms(args),
            max_in_flight: args.max_in_flight,
            rate: (args.workload == Workload::E2e).then_some(args.rate),
        },
        load_average_before: load_before,
        load_average_after: load_average(),
        results,
        limits,
    };
    if !args.json {
        print_run(&output);
    }
    Ok(serde_json::to_value(&output)?)
}

fn print_run(output: &RunOutput) {
    let s = &output.settings;
    println!(
        "{} | {} | {} B records, {} partitions, {} producers, {} consumers, acks={}, compression={}, linger.ms={}{}",
        output.workload,
        s.durability,
        s.record_bytes,
        s.partitions,
        s.producers,
        s.consumers,
        s.acks,
        s.compression,
        s.linger_ms,
        s.rate.map_or(String::new(), |r| format!(", {r} rec/s"))
    );
    println!(
        "load average {} -> {}",
        output.load_average_before, output.load_average_after
    );
    for result in &output.results {
        result.print();
    }
    if let Some(limits) = &output.limits {
        limits.print();
    }
}

/// Each throughput figure against the limit that bounds it.
fn compare(args: &Args, results: &mut [WorkloadResult], limits: &Limits) {
    let sync = args.durability == "sync-on-commit";
    for result in results {
        let (name, limit) = match result.name.as_str() {
            "consume" => ("tcp loopback", limits.tcp_loopback_mb_per_s),
            "e2e" => (
                "offered rate",
                Some(args.rate as f64 * args.record_bytes as f64 / 1e6),
            ),
            _ if sync => ("write+fdatasync per batch", limits.write_fsync_mb_per_s),
            _ => ("write (page cache)", limits.write_mb_per_s),
        };
        if let Some(limit) = limit {
            result.compare(name, limit);
        }
    }
}

/// Runs `f` with the broker's CPU time and peak RSS taken around it.
fn measured<F>(broker: &Broker, result: &mut WorkloadResult, f: F) -> anyhow::Result<()>
where
    F: FnOnce(&mut WorkloadResult) -> anyhow::Result<()>,
{
    broker.reset_peak_rss();
    let client_before = ProcSample::read(std::process::id());
    let before = broker.sample();
    let started = Instant::now();
    f(result)?;
    result.seconds = started.elapsed().as_secs_f64();
    let after = broker.sample();
    if let (Some(b), Some(a)) = (client_before, ProcSample::read(std::process::id())) {
        result.client_cpu_s = Some(a.cpu_s - b.cpu_s);
    }
    if let (Some(before), Some(after)) = (before, after) {
        apply_samples(result, before, after);
    }
    result.finish();
    Ok(())
}

fn apply_samples(result: &mut WorkloadResult, before: ProcSample, after: ProcSample) {
    result.broker_cpu_s = Some(after.cpu_s - before.cpu_s);
    result.broker_peak_rss_mb = Some(after.peak_rss_bytes as f64 / 1e6);
}

fn produce(
    args: &Args,
    broker: &Broker,
    settings: &ProducerSettings,
    name: &str,
) -> anyhow::Result<WorkloadResult> {
    let total_records = (args.total_mb * 1_000_000 / args.record_bytes as u64).max(1);
    let counters = Arc::new(Counters::default());
    let shared = Arc::new(ProduceShared::new(Arc::clone(&counters)));
    let mut result = WorkloadResult {
        name: name.to_string(),
        ..WorkloadResult::default()
    };
    measured(broker, &mut result, |result| {
        let _progress = Progress::start(name.to_string(), Arc::clone(&counters), args.quiet);
        let share = total_records / args.producers;
        let threads: Vec<_> = (0..args.producers)
            .map(|i| {
                let records = if i == 0 {
                    total_records - share * (args.producers - 1)
                } else {
                    share
                };
                spawn_producer(settings, Pace::Flat { records }, i, &shared)
            })
            .collect();
        join_all(threads)?;
        result.records = counters.records.load(Ordering::Relaxed);
        result.bytes = counters.bytes.load(Ordering::Relaxed);
        result.errors = counters.errors.load(Ordering::Relaxed);
        Ok(())
    })?;
    result.latency = shared.ack_latency.summary();
    result.produce_batch_bytes_avg = Some(shared.batch_bytes_avg.load(Ordering::Relaxed));
    result.produce_batch_records_avg = Some(shared.batch_records_avg.load(Ordering::Relaxed));
    Ok(result)
}

fn spawn_producer(
    settings: &ProducerSettings,
    pace: Pace,
    index: u64,
    shared: &Arc<ProduceShared>,
) -> std::thread::JoinHandle<anyhow::Result<()>> {
    let settings = settings.clone();
    let shared = Arc::clone(shared);
    std::thread::spawn(move || run_producer(&settings, pace, index + 1, shared))
}

fn join_all(threads: Vec<std::thread::JoinHandle<anyhow::Result<()>>>) -> anyhow::Result<()> {
    let mut first_error = None;
    for thread in threads {
        let outcome = thread
            .join()
            .map_err(|_| anyhow!("a worker thread panicked"))
            .and_then(|r| r);
        if let Err(error) = outcome {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn consume_shared(counters: &Arc<Counters>, timeout: Duration) -> Arc<ConsumeShared> {
    Arc::new(ConsumeShared {
        counters: Arc::clone(counters),
        latency: crate::report::Latency::new(),
        ready: AtomicU64::new(0),
        measure_from_ns: AtomicU64::new(u64::MAX),
        stop: AtomicBool::new(false),
        deadline: Instant::now() + timeout,
    })
}

fn spawn_consumers(
    args: &Args,
    bootstrap: &str,
    topic: &str,
    mode: Mode,
    shared: &Arc<ConsumeShared>,
) -> Vec<std::thread::JoinHandle<anyhow::Result<()>>> {
    spread(args.partitions, args.consumers as usize)
        .into_iter()
        .map(|partitions| {
            let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
            let shared = Arc::clone(shared);
            std::thread::spawn(move || run_consumer(&bootstrap, &topic, &partitions, mode, shared))
        })
        .collect()
}

fn consume(args: &Args, broker: &Broker, topic: &str) -> anyhow::Result<WorkloadResult> {
    let counters = Arc::new(Counters::default());
    let shared = consume_shared(&counters, DRAIN_TIMEOUT);
    let mut result = WorkloadResult {
        name: "consume".to_string(),
        ..WorkloadResult::default()
    };
    measured(broker, &mut result, |result| {
        let _progress = Progress::start("consume".into(), Arc::clone(&counters), args.quiet);
        let threads = spawn_consumers(args, &broker.bootstrap, topic, Mode::Drain, &shared);
        join_all(threads)?;
        result.records = counters.records.load(Ordering::Relaxed);
        result.bytes = counters.bytes.load(Ordering::Relaxed);
        result.errors = counters.errors.load(Ordering::Relaxed);
        Ok(())
    })?;
    Ok(result)
}

fn end_to_end(
    args: &Args,
    broker: &Broker,
    settings: &ProducerSettings,
) -> anyhow::Result<WorkloadResult> {
    let counters = Arc::new(Counters::default());
    let produced = Arc::new(Counters::default());
    let wait = Duration::from_secs(args.warmup_s + args.duration_s) + CONSUME_GRACE;
    let shared = consume_shared(&counters, wait + Duration::from_secs(60));
    let mut result = WorkloadResult {
        name: "e2e".to_string(),
        ..WorkloadResult::default()
    };
    let consumers = spawn_consumers(
        args,
        &broker.bootstrap,
        &settings.topic,
        Mode::Latency,
        &shared,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.ready.load(Ordering::Relaxed) < args.consumers && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first fetches at the log end are in flight once every consumer has polled.
    std::thread::sleep(Duration::from_millis(500));
    let produce_shared = Arc::new(ProduceShared::new(Arc::clone(&produced)));
    measured(broker, &mut result, |result| {
        let _progress = Progress::start("e2e".into(), Arc::clone(&counters), args.quiet);
        let start = Instant::now();
        let measure_from = start + Duration::from_secs(args.warmup_s);
        shared
            .measure_from_ns
            .store(crate::kafka::instant_ns(measure_from), Ordering::Relaxed);
        let until = measure_from + Duration::from_secs(args.duration_s);
        let per_producer = args.rate as f64 / args.producers as f64;
        let producers: Vec<_> = (0..args.producers)
            .map(|i| {
                let pace = Pace::Rate {
                    records_per_s: per_producer,
                    until,
                };
                spawn_producer(settings, pace, i, &produce_shared)
            })
            .collect();
        join_all(producers)?;
        let sent = produce_shared.sent.load(Ordering::Relaxed);
        let grace = Instant::now() + CONSUME_GRACE;
        while counters.records.load(Ordering::Relaxed) < sent && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(10));
        }
        shared.stop.store(true, Ordering::Relaxed);
        join_all(consumers)?;
        result.records = counters.records.load(Ordering::Relaxed);
        result.bytes = counters.bytes.load(Ordering::Relaxed);
        result.errors =
            counters.errors.load(Ordering::Relaxed) + produced.errors.load(Ordering::Relaxed);
        if result.records < sent {
            eprintln!("e2e: consumed {} of {sent} records sent", result.records);
        }
        Ok(())
    })?;
    result.latency = shared.latency.summary();
    result.produce_batch_bytes_avg = Some(produce_shared.batch_bytes_avg.load(Ordering::Relaxed));
    result.produce_batch_records_avg =
        Some(produce_shared.batch_records_avg.load(Ordering::Relaxed));
    Ok(result)
}
