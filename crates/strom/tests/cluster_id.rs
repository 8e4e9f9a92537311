//! A node whose storage was formatted for another cluster is refused by the quorum
//! (Kafka's INCONSISTENT_CLUSTER_ID): a controller of another cluster among the voters
//! neither votes nor replicates, a broker-only node of another cluster neither joins nor
//! registers, and both sides log both cluster ids and what to do. Real processes.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{data_dir, free_ports, node_overrides, read_image, register_broker, ServerProcess};
use strom_raft::QuorumClient;

const LIMIT: Duration = Duration::from_secs(30);
/// The default `cluster.id` (every node below that does not set one has it).
const QUORUM_ID: &str = "c3Ryb20tY2x1c3Rlci0x";
const OTHER_ID: &str = "b3RoZXItY2x1c3Rlci0x";
const THIRD_ID: &str = "dGhpcmQtY2x1c3Rlci0x";

/// Waits (bounded) until `process`'s log has a line containing every one of `needles`.
fn wait_for_line(process: &ServerProcess, name: &str, needles: &[&str]) -> String {
    let start = Instant::now();
    loop {
        let log = process.log();
        if let Some(line) = log
            .lines()
            .find(|line| needles.iter().all(|n| line.contains(n)))
        {
            return line.to_string();
        }
        assert!(
            start.elapsed() < LIMIT,
            "{name} logged no line with {needles:?}; its log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_formatted_for_another_cluster_are_refused_and_both_ids_are_logged() {
    let root = tempfile::tempdir().unwrap();
    let ports = free_ports(5);
    let addrs: BTreeMap<u64, String> = (1..=3u64)
        .map(|id| (id, format!("127.0.0.1:{}", ports[id as usize - 1])))
        .collect();
    let voters = addrs
        .iter()
        .map(|(id, a)| format!("{id}@{a}"))
        .collect::<Vec<_>>()
        .join(",");
    // Nodes 1 and 2 are cluster QUORUM_ID's; node 3, named among the voters, was formatted
    // for another cluster (its first start writes OTHER_ID into its meta.properties).
    let mut servers: BTreeMap<u64, ServerProcess> = BTreeMap::new();
    for (id, addr) in &addrs {
        let mut overrides = node_overrides(
            *id,
            ports[*id as usize - 1],
            &data_dir(root.path(), *id),
            &voters,
        );
        if *id == 3 {
            overrides.push(format!("cluster.id={OTHER_ID}"));
        }
        servers.insert(*id, ServerProcess::start_logged(&overrides, addr));
    }
    let meta = std::fs::read_to_string(data_dir(root.path(), 3).join("meta.properties")).unwrap();
    assert!(meta.contains(&format!("cluster.id={OTHER_ID}")), "{meta}");

    // Nodes 1 and 2 elect a leader between them and commit without node 3.
    let two: Vec<String> = [1u64, 2].iter().map(|id| addrs[id].clone()).collect();
    let client = QuorumClient::new(two.clone(), LIMIT);
    let start = Instant::now();
    let leader = loop {
        let mut seen = Vec::new();
        for addr in &two {
            seen.push(client.status_of(addr).await.ok().and_then(|s| s.leader_id));
        }
        if let [Some(a), Some(b)] = seen[..] {
            if a == b {
                break a;
            }
        }
        assert!(
            start.elapsed() < LIMIT,
            "no agreed leader of 1 and 2: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(leader == 1 || leader == 2, "leader {leader}");
    register_broker(&client).await;

    // Node 3 refuses the leader's raft messages (and so never learns a leader nor applies
    // anything); nodes 1 and 2 refuse node 3's vote requests. Each side names both ids.
    let refused_here = wait_for_line(
        &servers[&3],
        "node 3",
        &[
            "INCONSISTENT_CLUSTER_ID",
            "raft messages",
            QUORUM_ID,
            OTHER_ID,
            "strom storage format",
        ],
    );
    assert!(
        refused_here.contains(&format!("cluster.id={OTHER_ID}")),
        "node 3 names its own id as its meta.properties': {refused_here}"
    );
    let start = Instant::now();
    loop {
        let found = [1u64, 2].iter().any(|id| {
            servers[id].log().lines().any(|line| {
                line.contains("INCONSISTENT_CLUSTER_ID")
                    && line.contains(&format!("cluster {OTHER_ID}"))
                    && line.contains(&format!("cluster.id={QUORUM_ID}"))
            })
        });
        if found {
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "neither node 1 nor 2 logged refusing node 3:\n{}\n{}",
            servers[&1].log(),
            servers[&2].log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = client.status_of(&addrs[&3]).await.unwrap();
    assert_eq!(
        status.leader_id, None,
        "node 3 accepted a leader: {status:?}"
    );
    assert_eq!(
        status.last_applied_index, None,
        "node 3 applied entries: {status:?}"
    );
    // Its votes changed nothing: the leader of 1 and 2 is still the leader.
    for addr in &two {
        let status = client.status_of(addr).await.unwrap();
        assert_eq!(status.leader_id, Some(leader), "{addr}: {status:?}");
    }

    // A broker-only node of a third cluster asks 1 and 2 to take it in: refused, and it
    // logs the controller's id and its own; it is never an observer of the quorum.
    let broker_data = root.path().join("node-4");
    let broker = ServerProcess::spawn_logged(
        &[
            "node.id=4".to_string(),
            "process.roles=broker".to_string(),
            format!("listeners=PLAINTEXT://127.0.0.1:{}", ports[3]),
            "controller.listener.names=CONTROLLER".to_string(),
            format!("controller.quorum.bootstrap.servers={}", two.join(",")),
            format!("log.dirs={}", broker_data.display()),
            format!("cluster.id={THIRD_ID}"),
        ],
        &format!("127.0.0.1:{}", ports[3]),
    );
    let line = wait_for_line(
        &broker,
        "broker 4",
        &[
            "INCONSISTENT_CLUSTER_ID",
            "join the metadata quorum",
            QUORUM_ID,
            THIRD_ID,
        ],
    );
    assert!(
        line.contains(&format!("controller's cluster.id is {QUORUM_ID}"))
            && line.contains(&format!("meta.properties says {THIRD_ID}")),
        "{line}"
    );
    wait_for_line(
        &servers[&leader],
        "the leader",
        &["INCONSISTENT_CLUSTER_ID", "join", THIRD_ID, QUORUM_ID],
    );
    // Never registered: the image has broker 0 (registered above) and no broker 4.
    let image = read_image(&client).await;
    assert!(
        image.broker(4).is_none(),
        "broker 4 of another cluster registered"
    );
    assert!(
        image.broker(0).is_some(),
        "broker 0's registration is missing"
    );
    assert!(
        broker_alive_or_refused(&broker),
        "broker 4 crashed instead of logging"
    );
}

/// The refused broker is either still waiting (its registration retries) or exited with
/// the refusal in its log; never killed by a panic.
fn broker_alive_or_refused(broker: &ServerProcess) -> bool {
    !broker.log().contains("panicked")
}
