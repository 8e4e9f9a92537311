//! The broker under test: a `strom server` this program starts (and stops), or an existing
//! broker given by address and, optionally, its process id for CPU and memory figures.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

/// How long a started broker may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a SIGTERM may take to stop the broker before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// How to start a Strom broker.
#[derive(Clone, Debug)]
pub struct Launch {
    pub strom_bin: PathBuf,
    pub data_dir: PathBuf,
    /// `strom.log.durability`: `page-cache` or `sync-on-commit`.
    pub durability: String,
    /// Further `key=value` overrides.
    pub extra: Vec<String>,
}

/// A running broker.
pub struct Broker {
    pub bootstrap: String,
    /// The broker's process id, when known (started here or given).
    pub pid: Option<u32>,
    child: Option<Child>,
    /// Time from spawning the process to its ready line (started brokers only).
    pub ready_after: Option<Duration>,
}

impl Broker {
    /// An existing broker.
    pub fn existing(bootstrap: String, pid: Option<u32>) -> Broker {
        Broker {
            bootstrap,
            pid,
            child: None,
            ready_after: None,
        }
    }

    /// Starts `strom server` on a free loopback port and waits for its ready line.
    pub fn start(launch: &Launch) -> anyhow::Result<Broker> {
        let port = free_port()?;
        std::fs::create_dir_all(&launch.data_dir)
            .with_context(|| format!("cannot create {}", launch.data_dir.display()))?;
        let mut command = Command::new(&launch.strom_bin);
        command.arg("server");
        let overrides = [
            format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
            format!("log.dirs={}", launch.data_dir.display()),
            format!("strom.log.durability={}", launch.durability),
            "controller.quorum.election.timeout.ms=300".to_string(),
        ];
        for item in overrides.iter().chain(&launch.extra) {
            command.arg("--override").arg(item);
        }
        command
            .env("RUST_LOG", "warn,openraft=off")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", launch.strom_bin.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout from the broker"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut broker = Broker {
            bootstrap: format!("127.0.0.1:{port}"),
            pid: Some(child.id()),
            child: Some(child),
            ready_after: None,
        };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) if line.contains("ready") => {
                broker.ready_after = Some(started.elapsed());
                Ok(broker)
            }
            Ok(line) => {
                broker.kill();
                bail!("unexpected first line from the broker: {line:?}")
            }
            Err(error) => {
                broker.kill();
                bail!("the broker did not get ready: {error}")
            }
        }
    }

    /// SIGTERM and wait for a clean exit (the logs are closed cleanly); kills after a
    /// timeout. Returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        // SAFETY: kill(2) on the process id of a child we have not reaped yet.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// CPU time and memory now (None without a process id or /proc).
    pub fn sample(&self) -> Option<ProcSample> {
        self.pid.and_then(ProcSample::read)
    }

    /// Resets the peak RSS (`VmHWM`) so that the next workload reports its own peak.
    pub fn reset_peak_rss(&self) {
        if let Some(pid) = self.pid {
            // Needs to own the process or be root; a failure only means the peak is
            // the process's lifetime peak.
            let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// One reading of a process's counters.
#[derive(Clone, Copy, Debug)]
pub struct ProcSample {
    /// utime + stime, seconds.
    pub cpu_s: f64,
    /// `VmRSS`, bytes.
    pub rss_bytes: u64,
    /// `VmHWM` (peak RSS since start or the last reset), bytes.
    pub peak_rss_bytes: u64,
}

impl ProcSample {
    pub fn read(pid: u32) -> Option<ProcSample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces: fields are counted after its closing paren.
        let rest = stat.get(stat.rfind(')')? + 1..)?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat(5), i.e. 12 and 13 after the name.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        Some(ProcSample {
            cpu_s: (utime + stime) as f64 / ticks,
            rss_bytes: status_kib(&status, "VmRSS:")? * 1024,
            peak_rss_bytes: status_kib(&status, "VmHWM:")? * 1024,
        })
    }
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.get(key.len()..)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Bytes used under `dir` (regular files, recursively).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
