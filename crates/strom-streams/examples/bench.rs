//! Measures the word count and windowed examples against a running broker (the figures in
//! docs/PERFORMANCE.md): throughput with 1 or more instances over pre-loaded input, and
//! end-to-end latency of the word count at a fixed input rate. Starts the example
//! binaries that sit next to this one (build them with `--examples`).
//!
//! ```text
//! cargo build --release -p strom-streams --examples
//! target/release/examples/bench --bootstrap-server 127.0.0.1:9092 --kind wordcount --instances 2 --records 200000
//! target/release/examples/bench --bootstrap-server 127.0.0.1:9092 --kind latency --rate 2000 --seconds 20
//! ```

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Parser;
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, OffsetSpec, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    bootstrap_server: String,
    /// `wordcount`, `windowed` (throughput) or `latency` (word count end to end).
    #[arg(long)]
    kind: String,
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Input records (throughput runs).
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    /// Input lines per second (latency run).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Length of the latency run.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Producer `linger.ms` of the instances (Kafka Streams' default is 100).
    #[arg(long, default_value_t = 100)]
    linger_ms: u64,
    #[arg(long, default_value_t = 6)]
    partitions: i32,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct Instances(Vec<Child>);

impl Drop for Instances {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

fn start(
    args: &Args,
    example: &str,
    app: &str,
    input: &str,
    output: &str,
    dir: &std::path::Path,
) -> anyhow::Result<Instances> {
    let exe = std::env::current_exe()?;
    let bin: PathBuf = exe.parent().context("no parent")?.join(example);
    let mut children = Vec::new();
    let mut lines = Vec::new();
    for i in 0..args.instances {
        let mut c = Command::new(&bin);
        c.args([
            "--bootstrap-server",
            &args.bootstrap_server,
            "--input",
            input,
            "--output",
            output,
            "--application-id",
            app,
        ])
        .arg("--state-dir")
        .arg(dir.join(format!("i{i}")))
        .args([
            "-c",
            &format!("linger.ms={}", args.linger_ms),
            "-c",
            "session.timeout.ms=10000",
            "-c",
            "heartbeat.interval.ms=500",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        if example == "windowed" {
            c.args(["--window-ms", "1000", "--grace-ms", "0"]);
        }
        let mut child = c
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        lines.push(BufReader::new(child.stdout.take().context("stdout")?));
        children.push(child);
    }
    let instances = Instances(children);
    for l in &mut lines {
        let mut s = String::new();
        l.read_line(&mut s)?;
        if !s.contains("running") {
            bail!("an instance did not start: {s:?}");
        }
    }
    Ok(instances)
}

async fn committed_total(admin: &Admin, group: &str, topic: &str) -> i64 {
    let Ok(c) = admin.list_group_offsets(group).await else {
        return 0;
    };
    c.iter()
        .filter(|(tp, _)| tp.topic == topic)
        .map(|(_, o)| o.offset)
        .sum()
}

async fn end_total(admin: &Admin, topic: &str) -> anyhow::Result<i64> {
    let parts = admin.partitions_of(topic).await?;
    Ok(admin
        .list_offsets(&parts, OffsetSpec::Latest)
        .await?
        .values()
        .map(|o| o.offset)
        .sum())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let (input, output, app) = (
        format!("bench-in-{run}"),
        format!("bench-out-{run}"),
        format!("bench-{}-{run}", args.kind),
    );
    let client = ClientConfig::new(&args.bootstrap_server);
    let admin = Admin::new(client.clone())?;
    for t in [&input, &output] {
        admin
            .create_topic(&NewTopic::new(t.clone(), args.partitions, 1))
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut pc = ProducerConfig::new(&args.bootstrap_server);
    pc.linger_ms = 5;
    pc.batch_bytes = 262_144;
    let producer = Producer::new(pc)?;
    let dir = tempfile::tempdir()?;
    match args.kind.as_str() {
        "wordcount" | "windowed" => {
            let base = now_ms() - 3_600_000;
            let mut futures = Vec::new();
            for i in 0..args.records {
                let record = if args.kind == "wordcount" {
                    let line: Vec<String> = (0..8)
                        .map(|j| format!("w{}", (i * 7 + j * 131) % 1000))
                        .collect();
                    ProducerRecord::new(input.clone(), line.join(" "))
                } else {
                    ProducerRecord::new(input.clone(), "x")
                        .key(format!("k{}", i % 1000))
                        .timestamp_ms(base + i as i64)
                };
                futures.push(producer.send(record).await?);
                if futures.len() >= 50_000 {
                    for f in futures.drain(..) {
                        f.await?;
                    }
                }
            }
            for f in futures {
                f.await?;
            }
            let example = if args.kind == "wordcount" {
                "wordcount"
            } else {
                "windowed"
            };
            let spawned = Instant::now();
            let instances = start(&args, example, &app, &input, &output, dir.path())?;
            let started = Instant::now();
            let repartition = if args.kind == "wordcount" {
                format!("{app}-counts-repartition")
            } else {
                String::new()
            };
            let limit = Duration::from_secs(600);
            loop {
                let done_in = committed_total(&admin, &app, &input).await >= args.records as i64;
                let done_rep = repartition.is_empty() || {
                    let end = end_total(&admin, &repartition).await.unwrap_or(i64::MAX);
                    end > 0 && committed_total(&admin, &app, &repartition).await >= end
                };
                if done_in && done_rep {
                    break;
                }
                if started.elapsed() > limit {
                    bail!("not done after {limit:?}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let secs = started.elapsed().as_secs_f64();
            let words = if args.kind == "wordcount" {
                args.records * 8
            } else {
                args.records
            };
            println!(
                "{}: {} instance(s), {} input records ({} {}): {:.1} s after start-up ({:.1} s to running) -> {:.0} input records/s, {:.0} {}/s",
                args.kind,
                args.instances,
                args.records,
                words,
                if args.kind == "wordcount" { "words" } else { "records" },
                secs,
                (started - spawned).as_secs_f64(),
                args.records as f64 / secs,
                words as f64 / secs,
                if args.kind == "wordcount" { "words" } else { "records" },
            );
            drop(instances);
        }
        "latency" => {
            let instances = start(&args, "wordcount", &app, &input, &output, dir.path())?;
            let mut cc = ConsumerConfig::new(&args.bootstrap_server);
            cc.fetch_max_wait_ms = 10;
            let mut consumer = Consumer::new(cc)?;
            let parts: Vec<TopicPartition> = (0..args.partitions)
                .map(|p| TopicPartition::new(output.clone(), p))
                .collect();
            consumer.assign(parts.clone()).await?;
            consumer.seek_to_end(&parts).await?;
            let reader = tokio::spawn(async move {
                let mut lat = Vec::new();
                let stop = Instant::now() + Duration::from_secs(args.seconds + 5);
                while Instant::now() < stop {
                    for r in consumer
                        .poll(Duration::from_millis(50))
                        .await
                        .unwrap_or_default()
                    {
                        lat.push(now_ms() - r.timestamp_ms);
                    }
                }
                lat
            });
            let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed() < Duration::from_secs(args.seconds) {
                let due = start + interval.mul_f64(sent as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
                let line = format!(
                    "w{} w{} w{}",
                    sent % 500,
                    (sent * 7) % 500,
                    (sent * 13) % 500
                );
                // Delivery is awaited by the flush below.
                drop(
                    producer
                        .send(ProducerRecord::new(input.clone(), line).timestamp_ms(now_ms()))
                        .await?,
                );
                sent += 1;
            }
            producer.flush().await?;
            let mut lat = reader.await?;
            lat.sort_unstable();
            let pct = |p: f64| {
                lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                    .copied()
                    .unwrap_or(-1)
            };
            println!(
                "latency: {} lines/s for {} s, linger.ms={}: {} outputs, p50 {} ms, p99 {} ms, max {} ms",
                args.rate,
                args.seconds,
                args.linger_ms,
                lat.len(),
                pct(0.5),
                pct(0.99),
                lat.last().copied().unwrap_or(-1)
            );
            drop(instances);
        }
        other => bail!("--kind {other}: wordcount, windowed or latency"),
    }
    producer.close().await?;
    Ok(())
}
