//! Crash test: stream topic creations to a real `strom server`, `kill -9` it mid-stream,
//! and check that every acknowledged creation survives with the same topic id and that no
//! topic is half-applied — through the dump tool on the dead node's files and through the
//! client API after restart.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    create_topic, dump_topics, error_code, free_ports, node_overrides, read_image, register_broker,
    ServerProcess, PARTITIONS,
};
use strom_raft::QuorumClient;
use uuid::Uuid;

const WRITERS: usize = 4;
const ACKS_BEFORE_KILL: usize = 24;

type Acked = Arc<Mutex<Vec<(String, Uuid)>>>;

/// One writer: creates topics until a request fails (the server died) or the bound is hit.
async fn writer(addr: String, prefix: String, acked: Acked) {
    let client = QuorumClient::new(vec![addr], Duration::from_secs(2));
    for i in 0..500 {
        let name = format!("{prefix}-{i}");
        match create_topic(&client, &name).await {
            Ok(outcome) => {
                assert_eq!(error_code(&outcome), None, "creating {name}");
                acked.lock().unwrap().push((name, outcome.topic_id));
            }
            Err(_) => return,
        }
    }
}

fn check_topics(found: &BTreeMap<String, (Uuid, i32)>, acked: &BTreeMap<String, Uuid>) {
    for (name, id) in acked {
        assert_eq!(
            found.get(name).map(|(id, _)| *id),
            Some(*id),
            "acknowledged topic {name} lost or changed"
        );
    }
    for (name, (_, partitions)) in found {
        assert_eq!(*partitions, PARTITIONS, "topic {name} is half-applied");
    }
}

async fn check_via_client(client: &QuorumClient, acked: &BTreeMap<String, Uuid>) {
    let image = read_image(client).await;
    let found: BTreeMap<String, (Uuid, i32)> = image
        .topics()
        .map(|t| (t.name.clone(), (t.topic_id, t.partitions.len() as i32)))
        .collect();
    check_topics(&found, acked);
}

/// A second server on a directory in use exits at once with a message naming the lock.
fn second_process_on_same_dir_fails_fast(data: &std::path::Path) {
    let port = free_ports(1)[0];
    let mut command = Command::new(env!("CARGO_BIN_EXE_strom"));
    command.arg("server");
    for o in node_overrides(1, port, data, "") {
        command.arg("--override").arg(o);
    }
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("second server on the same directory kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("in use by another process"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_topic_creations_survive_kill_9() {
    let root = tempfile::tempdir().unwrap();
    let port = free_ports(1)[0];
    let addr = format!("127.0.0.1:{port}");
    let overrides = node_overrides(1, port, root.path(), "");
    let client = QuorumClient::new(vec![addr.clone()], Duration::from_secs(10));
    let mut acked: BTreeMap<String, Uuid> = BTreeMap::new();

    for round in 0..3 {
        let mut server = ServerProcess::start(&overrides, &addr);
        if round == 0 {
            register_broker(&client).await;
            second_process_on_same_dir_fails_fast(root.path());
        }
        check_via_client(&client, &acked).await;

        let this_round: Acked = Arc::default();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                tokio::spawn(writer(
                    addr.clone(),
                    format!("r{round}-w{w}"),
                    this_round.clone(),
                ))
            })
            .collect();
        let start = Instant::now();
        while this_round.lock().unwrap().len() < ACKS_BEFORE_KILL {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "writers too slow"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill();
        for w in writers {
            tokio::time::timeout(Duration::from_secs(10), w)
                .await
                .unwrap()
                .unwrap();
        }
        let round_acks = this_round.lock().unwrap().len();
        acked.extend(this_round.lock().unwrap().drain(..));
        eprintln!("round {round}: {round_acks} creations acknowledged before kill -9");

        // The dead node's files, read as they are.
        check_topics(
            &dump_topics(&root.path().join("__cluster_metadata-0")),
            &acked,
        );
    }

    let _server = ServerProcess::start(&overrides, &addr);
    check_via_client(&client, &acked).await;
    let (name, id) = acked.iter().next().unwrap();
    let again = create_topic(&client, name).await.unwrap();
    assert_eq!(error_code(&again), Some(36), "re-creating {name} ({id})");
    assert!(acked.len() >= 3 * ACKS_BEFORE_KILL);
}
