//! Helpers for tests against the real `strom` binary: a broker process, word count
//! instances as separate processes (the example binary), producing lines and reading the
//! latest count per word.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, OffsetSpec, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};

// The helpers every crate's tests had copied, under the names this module gave them.
pub use strom_test_support::strom_bin;
use strom_test_support::{free_port, profile_dir, spawn_lines, workspace_binary as binary};

pub fn wordcount_bin() -> PathBuf {
    binary(
        &profile_dir().join("examples").join("wordcount"),
        &["build", "-p", "strom-streams", "--example", "wordcount"],
    )
}

/// A `strom server` on a free port; killed when dropped.
pub struct Broker {
    child: Child,
    pub bootstrap: String,
    _data: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// A broker with more `--override`s.
    pub fn start_with(extra: &[&str]) -> Broker {
        let data = tempfile::tempdir().unwrap();
        let (port, controller) = (free_port(), free_port());
        let mut command = Command::new(strom_bin());
        command.arg("server");
        for o in [
            format!("listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}"),
            format!("log.dirs={}", data.path().display()),
            "controller.quorum.election.timeout.ms=300".to_string(),
            "group.initial.rebalance.delay.ms=0".to_string(),
        ]
        .into_iter()
        .chain(extra.iter().map(|s| s.to_string()))
        {
            command.arg("--override").arg(o);
        }
        command.env(
            "RUST_LOG",
            std::env::var("STREAMS_TEST_BROKER_LOG").unwrap_or_else(|_| "warn,openraft=off".into()),
        );
        let (mut child, rx) = spawn_lines(command);
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => assert!(line.contains("ready"), "unexpected first line {line:?}"),
            Err(e) => {
                let _ = child.kill();
                panic!("strom server did not get ready: {e}");
            }
        }
        Broker {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
            _data: data,
        }
    }

    pub fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new(&self.bootstrap);
        c.request_timeout_ms = 10_000;
        c.default_api_timeout_ms = 30_000;
        c.retry_backoff_ms = 50;
        c
    }

    pub fn admin(&self) -> Admin {
        Admin::new(self.client()).unwrap()
    }

    pub async fn create_topic(&self, name: &str, partitions: i32) {
        let admin = self.admin();
        admin
            .create_topic(&NewTopic::new(name, partitions, 1))
            .await
            .unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(t) = admin.describe_topics(&[name.to_string()]).await {
                if t[0].partitions.len() == partitions as usize
                    && t[0].partitions.iter().all(|p| p.leader >= 0)
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("topic {name} has no leaders");
    }

    /// Produces lines (null keys) and waits for every acknowledgement.
    pub async fn produce_lines(&self, topic: &str, lines: &[String]) {
        let mut config = ProducerConfig::new(&self.bootstrap);
        config.client = self.client();
        let producer = Producer::new(config).unwrap();
        let mut futures = Vec::new();
        for l in lines {
            futures.push(
                producer
                    .send(ProducerRecord::new(topic, l.clone()))
                    .await
                    .unwrap(),
            );
        }
        for f in futures {
            f.await.unwrap();
        }
        producer.close().await.unwrap();
    }

    /// A consumer of every partition of `topic` from the beginning (no group).
    pub async fn reader(&self, topic: &str) -> Consumer {
        self.reader_isolated(topic, false).await
    }

    /// Like [`Broker::reader`], with isolation level read_committed when `committed`.
    pub async fn reader_isolated(&self, topic: &str, committed: bool) -> Consumer {
        let mut config = ConsumerConfig::new(&self.bootstrap);
        config.client = self.client();
        config.isolation_read_committed = committed;
        config.fetch_max_wait_ms = 100;
        let mut consumer = Consumer::new(config).unwrap();
        let parts = self.admin().partitions_of(topic).await.unwrap();
        consumer.assign(parts.clone()).await.unwrap();
        consumer.seek_to_beginning(&parts).await.unwrap();
        consumer
    }

    /// Whether the group's committed offsets reached the end of every partition of `topics`.
    pub async fn group_caught_up(&self, group: &str, topics: &[&str]) -> bool {
        let admin = self.admin();
        let Ok(committed) = admin.list_group_offsets(group).await else {
            return false;
        };
        for t in topics {
            let Ok(parts) = admin.partitions_of(t).await else {
                return false;
            };
            let Ok(ends) = admin.list_offsets(&parts, OffsetSpec::Latest).await else {
                return false;
            };
            for (tp, end) in ends {
                let at = committed.get(&tp).map_or(0, |o| o.offset);
                if end.offset > 0 && at < end.offset {
                    return false;
                }
            }
        }
        true
    }
}

/// Word counts as the output topic shows them: every value seen per word, in order.
#[derive(Default, Debug)]
pub struct Counts {
    pub seen: BTreeMap<String, Vec<u64>>,
}

impl Counts {
    pub async fn read_more(&mut self, consumer: &mut Consumer) {
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let word = String::from_utf8(r.key.unwrap_or_default().to_vec()).unwrap();
            let count: u64 = String::from_utf8(r.value.unwrap_or_default().to_vec())
                .unwrap()
                .parse()
                .unwrap();
            self.seen.entry(word).or_default().push(count);
        }
    }

    pub fn latest(&self) -> BTreeMap<String, u64> {
        self.seen
            .iter()
            .filter_map(|(w, v)| v.last().map(|c| (w.clone(), *c)))
            .collect()
    }

    /// Reads until the latest counts equal `expected` (bounded).
    pub async fn wait_for(
        &mut self,
        consumer: &mut Consumer,
        expected: &BTreeMap<String, u64>,
        limit: Duration,
    ) {
        let start = Instant::now();
        while self.latest() != *expected {
            assert!(
                start.elapsed() < limit,
                "counts after {limit:?}: {:?}\nexpected {:?}",
                self.latest(),
                expected
            );
            self.read_more(consumer).await;
        }
    }
}

/// `count` lines of words from a small vocabulary; adds their word counts to `expected`.
pub fn lines(from: usize, count: usize, expected: &mut BTreeMap<String, u64>) -> Vec<String> {
    let mut out = Vec::new();
    for i in from..from + count {
        let line = format!("W{} w{} Common", i % 13, (i * 7) % 11);
        for w in line.split_whitespace() {
            *expected.entry(w.to_lowercase()).or_default() += 1;
        }
        out.push(line);
    }
    out
}

/// One word count instance (a separate process); SIGKILLed when dropped.
pub struct Instance {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub state_dir: PathBuf,
}

impl Instance {
    pub fn start(
        broker: &Broker,
        app: &str,
        input: &str,
        output: &str,
        state_dir: &Path,
    ) -> Instance {
        let common = [
            "--commit-interval-ms",
            "200",
            "-c",
            "session.timeout.ms=6000",
            "-c",
            "heartbeat.interval.ms=300",
            "-c",
            "linger.ms=5",
        ];
        Instance::start_args(broker, app, input, output, state_dir, &common)
    }

    /// An instance with exactly these extra command-line arguments.
    pub fn start_args(
        broker: &Broker,
        app: &str,
        input: &str,
        output: &str,
        state_dir: &Path,
        extra: &[&str],
    ) -> Instance {
        let mut command = Command::new(wordcount_bin());
        command
            .args([
                "--bootstrap-server",
                &broker.bootstrap,
                "--input",
                input,
                "--output",
                output,
            ])
            .args(["--application-id", app])
            .arg("--state-dir")
            .arg(state_dir)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("STREAMS_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            );
        let (child, lines) = spawn_lines(command);
        Instance {
            child,
            lines,
            state_dir: state_dir.to_path_buf(),
        }
    }

    /// Waits (bounded) for the `running` line.
    pub fn wait_running(&mut self, limit: Duration) {
        match self.lines.recv_timeout(limit) {
            Ok(line) => assert!(line.contains("running"), "unexpected line {line:?}"),
            Err(e) => panic!("word count instance did not start running within {limit:?}: {e}"),
        }
    }

    /// Waits (bounded) until the instance reports a rebalance (`rebalancing`) and then
    /// `running` again: it rejoined the group and restored what it was given.
    pub fn wait_rebalanced(&mut self, limit: Duration) {
        let start = Instant::now();
        let mut rebalanced = false;
        loop {
            let left = limit.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.ends_with("rebalancing") => rebalanced = true,
                Ok(line) if rebalanced && line.ends_with("running") => return,
                Ok(_) => continue,
                Err(e) => {
                    panic!("the instance did not rebalance and run again within {limit:?}: {e}")
                }
            }
        }
    }

    /// Drops the lines the instance printed so far.
    pub fn skip_lines(&mut self) {
        while self.lines.try_recv().is_ok() {}
    }

    /// SIGSTOP: the process freezes (no heartbeats, no commits) until [`Instance::resume`].
    pub fn pause(&mut self) {
        let status = Command::new("kill")
            .args(["-STOP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -STOP failed");
    }

    /// SIGCONT after [`Instance::pause`].
    pub fn resume(&mut self) {
        let status = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -CONT failed");
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, like `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and a bounded wait for a clean exit; whether it exited with success.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        false
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn topic_partitions(topic: &str, n: i32) -> Vec<TopicPartition> {
    (0..n).map(|p| TopicPartition::new(topic, p)).collect()
}
