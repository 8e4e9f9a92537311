//! `meta.properties` at start-up, run as processes: a first start formats every data
//! directory; later starts refuse directories that disagree with each other or with the
//! configuration (node.id, cluster.id), or that are not formatted while others are, each
//! naming the file, the key and both values, and create nothing.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{free_ports, start_expecting_exit, ServerProcess};

const LIMIT: Duration = Duration::from_secs(60);
/// `cluster.id`'s default (docs/CONFIG.md).
const DEFAULT_CLUSTER_ID: &str = "c3Ryb20tY2x1c3Rlci0x";

fn overrides(ports: &[u16], log_dirs: &[&Path], extra: &[&str]) -> Vec<String> {
    let dirs: Vec<String> = log_dirs.iter().map(|d| d.display().to_string()).collect();
    let mut all = vec![
        format!(
            "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
            ports[0], ports[1]
        ),
        format!("log.dirs={}", dirs.join(",")),
        "controller.quorum.election.timeout.ms=300".to_string(),
        "strom.http.listeners=".to_string(),
    ];
    all.extend(extra.iter().map(|s| s.to_string()));
    all
}

/// The `key=value` lines of `dir/meta.properties`.
fn meta(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let text = std::fs::read_to_string(dir.join("meta.properties")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Starts, waits for the ready line, stops with SIGTERM.
fn start_and_stop(overrides: &[String], port: u16) {
    let mut server = ServerProcess::start(overrides, &format!("127.0.0.1:{port}"));
    assert!(server.terminate(), "strom server did not stop cleanly");
}

#[test]
fn a_first_start_formats_every_directory_and_later_starts_check_them() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, metadata) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("metadata"),
    );
    let ports = free_ports(2);
    let metadata_key = format!("metadata.log.dir={}", metadata.display());
    let node = overrides(&ports, &[&a, &b], &[&metadata_key]);
    start_and_stop(&node, ports[0]);
    let mut directory_ids = std::collections::BTreeSet::new();
    for dir in [&a, &b, &metadata] {
        let meta = meta(dir);
        assert_eq!(meta["cluster.id"], DEFAULT_CLUSTER_ID, "{}", dir.display());
        assert_eq!(meta["node.id"], "1");
        assert_eq!(meta["version"], "1");
        directory_ids.insert(meta["directory.id"].clone());
    }
    assert_eq!(directory_ids.len(), 3, "each directory has its own id");
    // A second start reads them and leaves them as they are.
    let before = std::fs::read(a.join("meta.properties")).unwrap();
    start_and_stop(&node, ports[0]);
    assert_eq!(std::fs::read(a.join("meta.properties")).unwrap(), before);

    // Another node id on these directories: refused, naming the file and both values.
    let other_node = overrides(&ports, &[&a, &b], &[&metadata_key, "node.id=2"]);
    let (ok, stderr) = start_expecting_exit(&other_node, LIMIT);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "{} says node.id=1, but the configuration says node.id=2",
            metadata.join("meta.properties").display()
        )),
        "{stderr}"
    );
    // A cluster.id in the configuration that is not the directories'.
    let other_cluster = overrides(&ports, &[&a, &b], &[&metadata_key, "cluster.id=other"]);
    let (ok, stderr) = start_expecting_exit(&other_cluster, LIMIT);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "says cluster.id={DEFAULT_CLUSTER_ID}, but the configuration says cluster.id=other"
        )),
        "{stderr}"
    );
    // A new, unformatted directory beside formatted ones: refused as in Kafka, nothing made.
    let c = root.path().join("c");
    let grown = overrides(&ports, &[&a, &b, &c], &[&metadata_key]);
    let (ok, stderr) = start_expecting_exit(&grown, LIMIT);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("no meta.properties in {} (log.dirs)", c.display()))
            && stderr.contains("--ignore-formatted"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(&c).unwrap().count(), 0);
    // Two directories of different clusters.
    let text = std::fs::read_to_string(b.join("meta.properties")).unwrap();
    std::fs::write(
        b.join("meta.properties"),
        text.replace(DEFAULT_CLUSTER_ID, "AAAAAAAAAAAAAAAAAAAAAA"),
    )
    .unwrap();
    let (ok, stderr) = start_expecting_exit(&node, LIMIT);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "{} says cluster.id=AAAAAAAAAAAAAAAAAAAAAA, but",
            b.join("meta.properties").display()
        )) && stderr.contains(&format!("says cluster.id={DEFAULT_CLUSTER_ID}")),
        "{stderr}"
    );
    // A damaged file is reported, never rewritten.
    std::fs::write(b.join("meta.properties"), "cluster.id=x\nnode.id=1\n").unwrap();
    let (ok, stderr) = start_expecting_exit(&node, LIMIT);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "{}: version is missing, expected 1",
            b.join("meta.properties").display()
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(b.join("meta.properties")).unwrap(),
        "cluster.id=x\nnode.id=1\n"
    );
}

#[test]
fn a_formatted_node_starts_with_its_cluster_id_and_format_checks_the_config() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let ports = free_ports(2);
    let config = root.path().join("server.properties");
    std::fs::write(
        &config,
        format!(
            "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}\nlog.dirs={}\n",
            ports[0],
            ports[1],
            data.display()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let id = common::strom_cli(&["storage", "random-uuid"]);
    let id = id.trim();
    // A cluster.id key that contradicts --cluster-id is refused before anything is written.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["storage", "format", "--config", &config, "--cluster-id", id])
        .args(["--override", "cluster.id=other"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "--cluster-id {id} differs from cluster.id=other in the configuration"
        )),
        "{stderr}"
    );
    assert!(!data.join("meta.properties").exists());
    common::strom_cli(&["storage", "format", "--config", &config, "--cluster-id", id]);
    let node = overrides(&ports, &[&data], &[]);
    let addr = format!("127.0.0.1:{}", ports[0]);
    let mut server = ServerProcess::start(&node, &addr);
    // DescribeCluster reports the formatted id, not the key's default.
    let described = common::strom_cli(&[
        "cluster",
        "describe",
        "--bootstrap-server",
        &addr,
        "--output",
        "json",
    ]);
    let described: serde_json::Value = serde_json::from_str(&described).unwrap();
    assert_eq!(described["cluster_id"], id, "{described}");
    assert!(server.terminate());
    assert_eq!(meta(&data)["cluster.id"], id);
}

#[test]
fn two_fresh_starts_at_once_on_one_data_dir_leave_one_running_and_one_whole_format() {
    // Rounds, each on fresh directories: which process wins varies; each round must end
    // with one process serving, the other stopped naming the directory in use, and every
    // directory formatted once (one directory id, the cluster id, the node id).
    for round in 0..3 {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        // One call: four distinct ports (two calls could hand out the same ones).
        let four = free_ports(4);
        let ports = [four[..2].to_vec(), four[2..].to_vec()];
        let mut servers: Vec<ServerProcess> = ports
            .iter()
            .map(|p| {
                ServerProcess::spawn_logged(
                    &overrides(p, &[&a, &b], &[]),
                    &format!("127.0.0.1:{}", p[0]),
                )
            })
            .collect();
        let started = std::time::Instant::now();
        let loser = loop {
            if let Some(i) = (0..2).find(|i| servers[*i].exited().is_some()) {
                break i;
            }
            assert!(
                started.elapsed() < LIMIT,
                "round {round}: both processes still run on one data dir:\n{}\n{}",
                servers[0].log(),
                servers[1].log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let winner = 1 - loser;
        servers[winner].wait_ready(LIMIT);
        let log = servers[loser].log();
        assert!(
            log.contains("in use by another"),
            "round {round}: the refused start does not say the directory is in use:\n{log}"
        );
        for dir in [&a, &b] {
            let text = std::fs::read_to_string(dir.join("meta.properties")).unwrap();
            assert_eq!(text.matches("directory.id=").count(), 1, "{text}");
            let m = meta(dir);
            assert_eq!(m["cluster.id"], DEFAULT_CLUSTER_ID, "{text}");
            assert_eq!(m["version"], "1", "{text}");
            assert!(!dir.join("meta.properties.tmp").exists());
        }
        assert!(
            servers[winner].terminate(),
            "round {round}: the winner did not stop cleanly"
        );
    }
}
