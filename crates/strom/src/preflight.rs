//! Checks `strom server` makes before it creates anything on disk: every listener's port can
//! be bound, then every data directory is a directory this process can write in. Each
//! failure is one message naming the address or path, its config key, and what to do, so
//! a second node started by mistake (same ports) leaves nothing behind, and a bad
//! `log.dirs` is reported before the metadata log is half created.
//!
//! The port check binds and releases each address (std sets SO_REUSEADDR, so the real bind
//! right after succeeds); another process can still take a port in between, which the real
//! bind then reports.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::server_config::{resolve, ServerConfig};

/// The prefix of the file created and removed to prove a data directory is writable. The
/// process id follows it, so two processes checking one directory at once (one of them is
/// then refused by the directory lock) never remove each other's probe.
const WRITE_CHECK_FILE: &str = ".strom-write-check";

/// Runs every check; the first failure is the error, else the directories that passed (with
/// their keys), whose `meta.properties` start-up then reads. One of several `log.dirs` that
/// fails its check is not an error: as in Kafka, the broker starts with that directory offline (its
/// partitions reported offline, `strom_broker::log_dirs`), so long as the directory holding
/// the metadata log and at least one of `log.dirs` pass.
pub fn check(config: &ServerConfig) -> anyhow::Result<Vec<(&'static str, PathBuf)>> {
    check_ports(config)?;
    // The directory holding the metadata log: the node cannot start without it.
    let metadata_base = config
        .metadata_log_dir
        .clone()
        .or_else(|| config.log_dirs.first().cloned());
    let (mut usable, mut failed) = (Vec::new(), Vec::new());
    for (key, dir) in config.storage_dirs() {
        let required = metadata_base.as_ref() == Some(&dir);
        match check_dir(key, &dir) {
            Ok(()) => usable.push((key, dir)),
            Err(error) if required => return Err(error),
            Err(error) => failed.push(error),
        }
    }
    let mut failed = failed.into_iter();
    if let Some(first) = failed.next() {
        if !usable.iter().any(|(_, dir)| config.log_dirs.contains(dir)) {
            return Err(first);
        }
        for error in std::iter::once(first).chain(failed) {
            tracing::warn!(%error, "a log directory failed its start-up check; it stays offline");
        }
    }
    Ok(usable)
}

fn check_ports(config: &ServerConfig) -> anyhow::Result<()> {
    for listener in config.listeners.iter().filter(|l| l.port != 0) {
        let addr = resolve(&listener.host, listener.port).map_err(|e| {
            anyhow!(
                "listeners: {e} (listener {}): give a host name or address of this machine",
                listener.name
            )
        })?;
        if let Err(e) = TcpListener::bind(addr) {
            let advice = match e.kind() {
                ErrorKind::AddrInUse => {
                    "another process listens there (another strom server?): stop it, or give \
                     this node other ports in listeners"
                }
                ErrorKind::PermissionDenied => {
                    "ports below 1024 need privileges: choose a higher port in listeners"
                }
                _ => "give an address of this machine and a free port in listeners",
            };
            return Err(anyhow!(
                "cannot listen on {addr} (listener {} in listeners): {e}: {advice}",
                listener.name
            ));
        }
    }
    Ok(())
}

/// `dir` is (or can be created as) a directory this process can create files in.
fn check_dir(key: &str, dir: &Path) -> anyhow::Result<()> {
    let shown = dir.display();
    let other = format!("or set {key} to another directory");
    if dir.exists() && !dir.is_dir() {
        return Err(anyhow!(
            "{key} names {shown}, which is a file, not a directory: move the file away, {other}"
        ));
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        let advice = match e.kind() {
            ErrorKind::PermissionDenied => {
                format!("create it and give the user running strom write access to it, {other}")
            }
            ErrorKind::NotADirectory => {
                format!("a part of the path is a file, not a directory: {other}")
            }
            _ => other.clone(),
        };
        return Err(anyhow!("cannot create {shown} ({key}): {e}: {advice}"));
    }
    let probe = dir.join(format!("{WRITE_CHECK_FILE}.{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
    {
        Ok(file) => {
            drop(file);
            // The probe is this check's own empty file, created just above.
            std::fs::remove_file(&probe)
                .map_err(|e| anyhow!("cannot remove {} ({key}): {e}", probe.display()))?;
            Ok(())
        }
        Err(e) => Err(anyhow!(
            "cannot write in {shown} ({key}): {e}: give the user running strom write access \
             to it (and mount it read-write), {other}"
        )),
    }
}
