//! Helpers that several crates' integration tests had each copied: free ports on
//! 127.0.0.1, the workspace's `strom` binary (built once if missing), a child process's
//! stdout as a channel of lines, and the wall clock in milliseconds.
//!
//! A dev-dependency only: like the tests that use it, it fails by panicking (the hygiene
//! test exempts it from the rule for library code).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

/// A port free on 127.0.0.1 when asked (another process may take it before it is bound).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `count` distinct free ports (all held open until every one is picked).
pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// `target/<profile>` of the running test binary (`target/<profile>/deps/<test>`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The workspace binary at `path`, built with `cargo <build>` into this target dir when it
/// is missing.
pub fn workspace_binary(path: &Path, build: &[&str]) -> PathBuf {
    if !path.exists() {
        let target_dir = profile_dir().parent().unwrap().to_path_buf();
        let status = Command::new(env!("CARGO"))
            .args(build)
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo {build:?} failed");
    }
    path.to_path_buf()
}

/// `$STROM_BIN`, else the `strom` binary next to this test's target dir (built once if
/// missing).
pub fn strom_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("STROM_BIN") {
        return PathBuf::from(p);
    }
    workspace_binary(&profile_dir().join("strom"), &["build", "-p", "strom"])
}

/// Spawns `command` with stdout piped (stderr as the command sets it, else inherited);
/// returns the child and a channel of its stdout lines, read by a thread until the pipe
/// closes.
pub fn spawn_lines(mut command: Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = command.stdout(Stdio::piped()).spawn().expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
