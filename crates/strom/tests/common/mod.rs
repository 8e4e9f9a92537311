//! Helpers for tests that run the real `strom` binary: a process guard that kills on drop,
//! free ports, and metadata client calls.

#![allow(dead_code)]

pub mod kafka;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use strom_meta::MetadataImage;
use strom_meta::{
    BrokerHeartbeatRequest, ControllerReply, ControllerRequest, CreatableTopic, CreateTopicResult,
    CreateTopicsRequest, RegisterBrokerRequest,
};
use strom_raft::metadata::MetadataReply;
use strom_raft::{QuorumClient, SubmitError};
use uuid::Uuid;

/// A running `strom server`; killed (SIGKILL) and reaped when dropped.
pub struct ServerProcess {
    child: Option<Child>,
    pub addr: String,
    /// Its stderr lines so far, when started with [`ServerProcess::start_logged`].
    log: Option<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
    /// Its stdout lines, until the ready line has been read.
    lines: Option<mpsc::Receiver<String>>,
}

/// `strom server` with `overrides`.
fn server_command(overrides: &[String]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strom"));
    command.arg("server");
    for o in overrides {
        command.arg("--override").arg(o);
    }
    // openraft logs every refused connection to a killed peer as an error; keep tests quiet.
    command.env(
        "RUST_LOG",
        std::env::var("STROM_TEST_LOG").unwrap_or_else(|_| "warn,openraft=off".into()),
    );
    command
}

/// Runs `strom server` with `overrides` that must fail to start: waits (bounded by `limit`)
/// for it to exit and returns whether it succeeded and its stderr.
pub fn start_expecting_exit(overrides: &[String], limit: Duration) -> (bool, String) {
    let mut child = server_command(overrides)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strom");
    let stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "strom server still running after {limit:?}: {}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.success(), reader.join().unwrap())
}

impl ServerProcess {
    /// Starts `strom server` with `overrides` and waits (bounded) for its ready line.
    pub fn start(overrides: &[String], addr: &str) -> ServerProcess {
        let mut process = Self::spawn_with(overrides, addr, false);
        process.wait_ready(Duration::from_secs(20));
        process
    }

    /// [`ServerProcess::start`], keeping its stderr lines for [`ServerProcess::log`].
    pub fn start_logged(overrides: &[String], addr: &str) -> ServerProcess {
        let mut process = Self::spawn_with(overrides, addr, true);
        process.wait_ready(Duration::from_secs(20));
        process
    }

    /// Starts `strom server` without waiting: a node of a multi-node cluster is ready only
    /// once a quorum runs, so every node must be started before any is waited for
    /// ([`ServerProcess::wait_ready`]).
    pub fn spawn(overrides: &[String], addr: &str) -> ServerProcess {
        Self::spawn_with(overrides, addr, false)
    }

    /// [`ServerProcess::spawn`], keeping its stderr lines for [`ServerProcess::log`].
    pub fn spawn_logged(overrides: &[String], addr: &str) -> ServerProcess {
        Self::spawn_with(overrides, addr, true)
    }

    /// Waits (at most `limit`) for the ready line.
    pub fn wait_ready(&mut self, limit: Duration) {
        let Some(lines) = self.lines.take() else {
            return;
        };
        match lines.recv_timeout(limit) {
            Ok(line) => assert!(line.contains("ready"), "unexpected first line {line:?}"),
            Err(e) => {
                self.kill();
                panic!("strom server did not get ready: {e}");
            }
        }
    }

    /// Sends a signal by name (`STOP`, `CONT`, ...) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(child.id().to_string())
                .status()
                .expect("kill(1)");
            assert!(status.success(), "kill -{name} failed");
        }
    }

    /// Sends SIGTERM without waiting for the exit.
    pub fn signal_terminate(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
    }

    /// The exit status once the process has exited (reaping it), `None` while it runs.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    /// Its stderr so far (empty unless started with [`ServerProcess::start_logged`]).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .map(|lines| lines.lock().unwrap().join("\n"))
            .unwrap_or_default()
    }

    fn spawn_with(overrides: &[String], addr: &str, logged: bool) -> ServerProcess {
        let stderr = if logged {
            Stdio::piped()
        } else {
            Stdio::inherit()
        };
        let mut command = server_command(overrides);
        command.stderr(stderr);
        let (mut child, rx) = strom_test_support::spawn_lines(command);
        let log = child.stderr.take().map(|stderr| {
            let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let sink = std::sync::Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("{line}");
                    sink.lock().unwrap().push(line);
                }
            });
            lines
        });
        ServerProcess {
            child: Some(child),
            addr: addr.to_string(),
            log,
            lines: Some(rx),
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, like `kill -9`, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the `strom` CLI (bounded by `timeout 60`); returns its stdout, failing on an error.
pub fn strom_cli(args: &[&str]) -> String {
    let output = Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .output()
        .expect("run strom");
    assert!(
        output.status.success(),
        "strom {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs kcat (bounded by `timeout 60`) with `input` on stdin; returns its stdout.
pub fn kcat(args: &[&str], input: &str) -> String {
    let mut child = Command::new("timeout")
        .arg("60")
        .arg("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat must be installed (apt-get install kcat)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kcat {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Overrides for a broker and quorum member on `port` with its data in `data`.
pub fn broker_overrides(port: u16, data: &Path, extra: &[&str]) -> Vec<String> {
    let mut overrides = vec![
        format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
        format!("log.dirs={}", data.display()),
        "controller.quorum.election.timeout.ms=300".to_string(),
    ];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    overrides
}

/// Every file under `dir` (recursively) with its bytes, for before/after comparisons.
pub fn files_under(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    files
}

/// Parses `topic NAME ID partitions N` lines of `strom metadata dump DIR`: the topics in a
/// (stopped) node's metadata files, with their ids and partition counts.
pub fn dump_topics(dir: &Path) -> std::collections::BTreeMap<String, (Uuid, i32)> {
    let output = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["metadata", "dump"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "dump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("topic "))
        .map(|rest| {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            assert_eq!(fields.len(), 4, "dump line {rest:?}");
            (
                fields[0].to_string(),
                (fields[1].parse().unwrap(), fields[3].parse().unwrap()),
            )
        })
        .collect()
}

/// `count` distinct free ports (the helper shared with other crates' tests).
pub use strom_test_support::free_ports;

/// Overrides for one node; `voters` empty means a single voter.
pub fn node_overrides(node_id: u64, port: u16, data: &Path, voters: &str) -> Vec<String> {
    let mut overrides = vec![
        format!("node.id={node_id}"),
        // Quorum tests drive the controller directly; no broker runs beside it.
        "process.roles=controller".to_string(),
        format!("listeners=CONTROLLER://127.0.0.1:{port}"),
        format!("log.dirs={}", data.display()),
        "controller.quorum.election.timeout.ms=300".to_string(),
        "request.timeout.ms=5000".to_string(),
        "strom.metadata.snapshot.interval.entries=25".to_string(),
        // The tests send one heartbeat only; a slow CI machine must not fence the broker.
        "broker.session.timeout.ms=120000".to_string(),
    ];
    if !voters.is_empty() {
        overrides.push(format!("controller.quorum.voters={voters}"));
    }
    overrides
}

pub fn data_dir(root: &Path, node_id: u64) -> PathBuf {
    root.join(format!("node-{node_id}"))
}

/// Registers broker 0 and unfences it with a heartbeat, so topics can be placed.
pub async fn register_broker(client: &QuorumClient) {
    let register = ControllerRequest::RegisterBroker(RegisterBrokerRequest {
        broker_id: 0,
        incarnation_id: Uuid::new_v4(),
        endpoints: Vec::new(),
        rack: None,
    });
    let reply: MetadataReply = client.submit(&register).await.expect("register broker");
    let Ok(ControllerReply::RegisterBroker { broker_epoch }) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    let heartbeat = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id: 0,
        broker_epoch,
        want_fence: false,
        want_shutdown: false,
        offline_replicas: Vec::new(),
    });
    let reply: MetadataReply = client.submit(&heartbeat).await.expect("heartbeat");
    assert!(
        matches!(&reply, Ok(ControllerReply::BrokerHeartbeat(r)) if !r.is_fenced),
        "{reply:?}"
    );
}

pub const PARTITIONS: i32 = 3;

/// Creates one topic; `Err` only when the quorum gave no answer.
pub async fn create_topic(
    client: &QuorumClient,
    name: &str,
) -> Result<CreateTopicResult, SubmitError> {
    let request = ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: vec![CreatableTopic {
            num_partitions: PARTITIONS,
            replication_factor: 1,
            ..CreatableTopic::named(name)
        }],
        validate_only: false,
    });
    let reply: MetadataReply = client.submit(&request).await?;
    match reply {
        Ok(ControllerReply::CreateTopics(mut results)) if results.len() == 1 => {
            Ok(results.remove(0))
        }
        other => panic!("unexpected reply {other:?}"),
    }
}

/// Kafka's numeric code of an item's error, if any.
pub fn error_code(result: &CreateTopicResult) -> Option<i16> {
    result.error.as_ref().map(|e| e.code.code())
}

/// The leader's image after everything committed (a linearizable read).
pub async fn read_image(client: &QuorumClient) -> MetadataImage {
    let reply = client.read_state().await.expect("read state");
    MetadataImage::decode_snapshot(&reply.state.0).expect("decode image")
}
