//! `strom-bench`: throughput, latency and footprint of a Kafka-compatible broker, driven
//! through librdkafka. It starts a Strom broker itself (`--strom-bin`) or drives an
//! existing one (`--bootstrap`), runs one workload, measures the machine's limits in the
//! same run and prints every figure beside its limit (or JSON with `--json`).

mod broker;
mod consume;
mod footprint;
mod kafka;
mod limits;
mod produce;
mod report;
mod workload;

use std::path::PathBuf;

use std::io::Write;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Producers send `--total-mb` as fast as the client goes.
    Produce,
    /// Fill a topic with `--total-mb`, then consumers read it from the beginning.
    Consume,
    /// Producers at `--rate` records/s for `--duration-s`; consumers measure latency.
    E2e,
    /// Broker RSS with `--idle-partitions` partitions and no traffic.
    IdlePartitions,
    /// Broker start-up time with `--startup-gb` of cleanly closed logs.
    Startup,
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "strom-bench",
    about = "Benchmark a Kafka-compatible broker through librdkafka"
)]
pub struct Args {
    #[arg(long, value_enum, default_value = "produce")]
    pub workload: Workload,
    /// Start this `strom` binary as the broker (a fresh data directory per run).
    #[arg(long, conflicts_with = "bootstrap")]
    pub strom_bin: Option<PathBuf>,
    /// Drive an existing broker instead.
    #[arg(long)]
    pub bootstrap: Option<String>,
    /// The existing broker's process id, for its CPU time and RSS.
    #[arg(long, requires = "bootstrap")]
    pub broker_pid: Option<u32>,
    /// `strom.log.durability` of a started broker: page-cache or sync-on-commit.
    #[arg(long, default_value = "page-cache")]
    pub durability: String,
    /// Where a started broker keeps its data (and where the disk limits write); removed
    /// after the run unless `--keep-data`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long)]
    pub keep_data: bool,
    /// Payload bytes per record (100, 1024, 16384...).
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=8))]
    pub producers: u64,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=8))]
    pub consumers: u64,
    /// `acks`: 0, 1 or all.
    #[arg(long, default_value = "1")]
    pub acks: String,
    /// `compression.type`: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// `linger.ms` of the producers (default 5, librdkafka's).
    #[arg(long)]
    pub linger_ms: Option<u64>,
    /// `max.in.flight.requests.per.connection` of the producers (librdkafka's default:
    /// 1000000).
    #[arg(long)]
    pub max_in_flight: Option<u32>,
    /// Payload megabytes (10^6) to produce (produce) or fill and read (consume).
    #[arg(long, default_value_t = 1000)]
    pub total_mb: u64,
    /// Records per second, all producers together (e2e).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Measured seconds (e2e), after the warm-up.
    #[arg(long, default_value_t = 20)]
    pub duration_s: u64,
    /// Seconds at the rate before latency is recorded (e2e).
    #[arg(long, default_value_t = 3)]
    pub warmup_s: u64,
    /// Use this topic (created when missing) instead of a fresh one per run.
    #[arg(long)]
    pub topic: Option<String>,
    /// consume: read what the topic holds instead of filling it first.
    #[arg(long, requires = "topic")]
    pub no_fill: bool,
    /// Partitions for the idle-partitions workload.
    #[arg(long, default_value_t = 1000)]
    pub idle_partitions: i32,
    /// Gigabytes (10^9) of log for the start-up workload (capped by free disk).
    #[arg(long, default_value_t = 10)]
    pub startup_gb: u64,
    /// Also time a start-up with the page cache dropped (needs root).
    #[arg(long)]
    pub cold: bool,
    /// Skip measuring the machine's limits.
    #[arg(long)]
    pub no_limits: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also append the JSON object as one line to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("strom-bench: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    if args.strom_bin.is_none() && args.bootstrap.is_none() {
        bail!("give --strom-bin PATH (start a broker) or --bootstrap HOST:PORT");
    }
    if !matches!(args.durability.as_str(), "page-cache" | "sync-on-commit") {
        bail!("--durability must be page-cache or sync-on-commit");
    }
    if args.partitions < 1 || args.record_bytes < kafka::STAMP_BYTES {
        bail!("--partitions must be at least 1 and --record-bytes at least 8");
    }
    let output = match args.workload {
        Workload::Produce | Workload::Consume | Workload::E2e => workload::run(args)?,
        Workload::IdlePartitions => footprint::idle_partitions(args)?,
        Workload::Startup => footprint::startup(args)?,
    };
    let line = serde_json::to_string(&output)?;
    if args.json {
        println!("{line}");
    }
    if let Some(path) = &args.json_out {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        writeln!(file, "{line}")?;
    }
    Ok(())
}
