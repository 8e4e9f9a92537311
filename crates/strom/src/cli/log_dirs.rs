//! `strom log-dirs` (Kafka's `kafka-log-dirs.sh --describe`, and the log-dir moves of
//! `kafka-reassign-partitions.sh`): describe brokers' log directories, move a replica into
//! another directory of its broker.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde::Serialize;
use strom_client::{Admin, LogDirDescription};

use super::args::{Common, LogDirsCommand};
use super::output::{self, Table};
use super::progress::{self, Progress};

/// How often `move --wait` asks where the replica is.
const WAIT_POLL_MS: u64 = 500;

#[derive(Debug, Serialize)]
struct DirView {
    broker: i32,
    path: String,
    error: Option<String>,
    total_bytes: i64,
    usable_bytes: i64,
    replicas: Vec<ReplicaView>,
}

#[derive(Debug, Serialize)]
struct ReplicaView {
    topic: String,
    partition: i32,
    size_bytes: i64,
    offset_lag: i64,
    is_future: bool,
}

fn view(d: LogDirDescription) -> DirView {
    DirView {
        broker: d.broker,
        path: d.path,
        error: d.error,
        total_bytes: d.total_bytes,
        usable_bytes: d.usable_bytes,
        replicas: d
            .replicas
            .into_iter()
            .map(|r| ReplicaView {
                topic: r.topic,
                partition: r.partition,
                size_bytes: r.size_bytes,
                offset_lag: r.offset_lag,
                is_future: r.is_future,
            })
            .collect(),
    }
}

pub async fn run(common: &Common, command: LogDirsCommand) -> anyhow::Result<()> {
    let admin = Admin::new(super::client_config(common)?)?;
    let result = match command {
        LogDirsCommand::Describe {
            broker_list,
            topic_list,
        } => describe(common, &admin, &broker_list, &topic_list).await,
        LogDirsCommand::Move {
            topic,
            partition,
            broker,
            dir,
            wait,
            timeout_s,
        } => {
            let target = Move {
                topic,
                partition,
                broker,
                dir,
            };
            move_replica(common, &admin, target, wait.then_some(timeout_s)).await
        }
    };
    admin.close().await;
    result
}

async fn describe(
    common: &Common,
    admin: &Admin,
    brokers: &[i32],
    topics: &[String],
) -> anyhow::Result<()> {
    let dirs: Vec<DirView> = admin
        .describe_log_dirs(brokers, topics)
        .await?
        .into_iter()
        .map(view)
        .collect();
    if common.json() {
        return output::print_json(&dirs);
    }
    let mut table = Table::new(&[
        "BROKER", "LOG DIR", "STATE", "TOTAL", "USABLE", "REPLICAS", "SIZE",
    ]);
    for d in &dirs {
        let size: i64 = d.replicas.iter().map(|r| r.size_bytes.max(0)).sum();
        let futures = d.replicas.iter().filter(|r| r.is_future).count();
        table.row(vec![
            d.broker.to_string(),
            d.path.clone(),
            d.error.clone().unwrap_or_else(|| "online".into()),
            bytes(d.total_bytes),
            bytes(d.usable_bytes),
            if futures > 0 {
                format!("{} ({futures} moving in)", d.replicas.len() - futures)
            } else {
                d.replicas.len().to_string()
            },
            bytes(size),
        ]);
    }
    table.print()
}

/// Bytes as a person reads them; `-` for -1 (unknown).
fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 0 {
        return "-".into();
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

struct Move {
    topic: String,
    partition: i32,
    broker: Option<i32>,
    dir: String,
}

async fn move_replica(
    common: &Common,
    admin: &Admin,
    target: Move,
    wait_s: Option<u64>,
) -> anyhow::Result<()> {
    let broker = match target.broker {
        Some(id) => id,
        None => {
            let brokers: Vec<i32> = admin.metadata().await?.brokers.keys().copied().collect();
            match brokers.as_slice() {
                [only] => *only,
                _ => bail!(
                    "the cluster has brokers {brokers:?}: say whose replica moves with --broker"
                ),
            }
        }
    };
    let (topic, partition) = (target.topic.as_str(), target.partition);
    admin
        .alter_replica_log_dir(broker, topic, partition, &target.dir)
        .await?;
    let Some(timeout_s) = wait_s else {
        return output::print_line(&format!(
            "Moving {topic}-{partition} on broker {broker} to {} (strom log-dirs describe \
             shows it as a future replica until it is there).",
            target.dir
        ));
    };
    let bar = Progress::items(
        progress::wanted(common.quiet, common.json()),
        None,
        "offsets behind",
    );
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    let topics = [topic.to_string()];
    loop {
        let dirs = admin.describe_log_dirs(&[broker], &topics).await?;
        let mut future_lag = None;
        let mut current = None;
        for d in &dirs {
            for r in d.replicas.iter().filter(|r| r.partition == partition) {
                if r.is_future {
                    future_lag = Some(r.offset_lag);
                } else {
                    current = Some(d.path.clone());
                }
            }
        }
        if let (None, Some(path)) = (future_lag, &current) {
            bar.finish();
            if common.json() {
                return output::print_json(&serde_json::json!({
                    "topic": topic, "partition": partition, "broker": broker, "log_dir": path,
                }));
            }
            return output::print_line(&format!(
                "{topic}-{partition} on broker {broker} is in {path}."
            ));
        }
        if let Some(lag) = future_lag {
            bar.set_position(u64::try_from(lag).unwrap_or(0));
        }
        if Instant::now() >= deadline {
            bar.finish();
            return Err(anyhow!(
                "{topic}-{partition} on broker {broker} is not in {} after {timeout_s} s \
                 (still {}): the move goes on; check with strom log-dirs describe",
                target.dir,
                future_lag.map_or("not found".to_string(), |l| format!("{l} offsets behind"))
            ));
        }
        tokio::time::sleep(Duration::from_millis(WAIT_POLL_MS)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn sizes_read_as_people_read_them() {
        for (n, want) in [
            (-1, "-"),
            (0, "0 B"),
            (1023, "1023 B"),
            (1536, "1.5 KiB"),
            (5 * 1024 * 1024 * 1024, "5.0 GiB"),
        ] {
            assert_eq!(bytes(n), want);
        }
    }
}
