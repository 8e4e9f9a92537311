//! Test helpers: run the real `strom` binary as a single-node broker on a free port.

#![allow(dead_code)]

use std::process::{Child, Command};
use std::time::Duration;

use strom_client::{Admin, ClientConfig, ConsumerConfig, NewTopic, ProducerConfig};
// The helpers every crate's tests had copied (names kept: `strom_bin`, `free_port`).
use strom_test_support::{free_port, spawn_lines, strom_bin};

/// A running `strom server`; killed when dropped.
pub struct Broker {
    child: Child,
    pub bootstrap: String,
    port: u16,
    extra: Vec<String>,
    data: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(port: u16, data: &std::path::Path, extra: &[String]) -> Child {
    let mut command = Command::new(strom_bin());
    command.arg("server");
    let mut overrides = vec![
        format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
        format!("log.dirs={}", data.display()),
        "controller.quorum.election.timeout.ms=300".to_string(),
    ];
    overrides.extend(extra.iter().cloned());
    for o in &overrides {
        command.arg("--override").arg(o);
    }
    command.env("RUST_LOG", "warn,openraft=off");
    let (mut child, rx) = spawn_lines(command);
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) => assert!(line.contains("ready"), "unexpected first line {line:?}"),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strom server did not get ready: {e}");
        }
    }
    child
}

impl Broker {
    /// Starts a broker with `extra` overrides and waits (bounded) for its ready line.
    pub fn start(extra: &[&str]) -> Broker {
        // STROM_CLIENT_LOG=debug shows the client's own logs.
        if let Ok(filter) = std::env::var("STROM_CLIENT_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = spawn(port, data.path(), &extra);
        Broker {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
            port,
            extra,
            data,
        }
    }

    /// Kills the broker (SIGKILL) and starts it again on the same port and data.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self.port, self.data.path(), &self.extra);
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(&self.bootstrap);
        c.request_timeout_ms = 10_000;
        c.default_api_timeout_ms = 20_000;
        c.retry_backoff_ms = 50;
        c.retry_backoff_max_ms = 500;
        c
    }

    pub fn admin(&self) -> Admin {
        Admin::new(self.client_config()).unwrap()
    }

    pub fn producer_config(&self) -> ProducerConfig {
        let mut c = ProducerConfig::new(&self.bootstrap);
        c.client = self.client_config();
        c.max_block_ms = 20_000;
        c.delivery_timeout_ms = 30_000;
        c
    }

    pub fn consumer_config(&self, group: Option<&str>) -> ConsumerConfig {
        let mut c = ConsumerConfig::new(&self.bootstrap);
        c.client = self.client_config();
        c.group_id = group.map(str::to_string);
        c.auto_offset_reset = strom_client::OffsetReset::Earliest;
        c.fetch_max_wait_ms = 100;
        c.session_timeout_ms = 10_000;
        c.heartbeat_interval_ms = 500;
        c
    }

    /// Creates a topic and waits (bounded) until its leaders are known.
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        let admin = self.admin();
        admin
            .create_topic(&NewTopic::new(name, partitions, 1))
            .await
            .unwrap();
        for _ in 0..100 {
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
}
