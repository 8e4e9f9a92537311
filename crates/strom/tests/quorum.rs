//! Three `strom server` processes on 127.0.0.1 form a metadata quorum: one leader, commits
//! replicated, `kill -9` of the leader elects a new one without losing anything committed,
//! and with two of three down writes fail within a bound.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{
    create_topic, data_dir, error_code, free_ports, node_overrides, read_image, register_broker,
    ServerProcess, PARTITIONS,
};
use strom_raft::QuorumClient;
use uuid::Uuid;

const LIMIT: Duration = Duration::from_secs(20);

/// Waits (bounded) until every node in `addrs` reports the same leader, one of `addrs`.
async fn agreed_leader(client: &QuorumClient, addrs: &BTreeMap<u64, String>) -> u64 {
    let start = Instant::now();
    loop {
        let mut leaders = Vec::new();
        for addr in addrs.values() {
            leaders.push(client.status_of(addr).await.ok().and_then(|s| s.leader_id));
        }
        if let Some(Some(first)) = leaders.first() {
            if leaders.iter().all(|l| *l == Some(*first)) && addrs.contains_key(first) {
                return *first;
            }
        }
        assert!(start.elapsed() < LIMIT, "no agreed leader: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_all(
    client: &QuorumClient,
    names: impl Iterator<Item = String>,
    acked: &mut BTreeMap<String, Uuid>,
) {
    for name in names {
        let outcome = create_topic(client, &name).await.unwrap();
        assert_eq!(error_code(&outcome), None, "creating {name}");
        acked.insert(name, outcome.topic_id);
    }
}

async fn check_image(client: &QuorumClient, acked: &BTreeMap<String, Uuid>) {
    let image = read_image(client).await;
    for (name, id) in acked {
        let topic = image
            .topic_by_name(name)
            .unwrap_or_else(|| panic!("lost {name}"));
        assert_eq!(topic.topic_id, *id);
        assert_eq!(topic.partitions.len() as i32, PARTITIONS);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_elect_replicate_fail_over_and_refuse_without_quorum() {
    let root = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let addrs: BTreeMap<u64, String> = (1..=3u64)
        .map(|id| (id, format!("127.0.0.1:{}", ports[id as usize - 1])))
        .collect();
    let voters = addrs
        .iter()
        .map(|(id, a)| format!("{id}@{a}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut servers: BTreeMap<u64, ServerProcess> = addrs
        .iter()
        .map(|(id, addr)| {
            let overrides = node_overrides(
                *id,
                ports[*id as usize - 1],
                &data_dir(root.path(), *id),
                &voters,
            );
            (*id, ServerProcess::start(&overrides, addr))
        })
        .collect();
    let client = QuorumClient::new(addrs.values().cloned().collect(), LIMIT);

    let leader = agreed_leader(&client, &addrs).await;
    register_broker(&client).await;
    let mut acked = BTreeMap::new();
    create_all(&client, (0..10).map(|i| format!("before-{i}")), &mut acked).await;
    check_image(&client, &acked).await;
    // Every node applied the records (followers included).
    let start = Instant::now();
    for addr in addrs.values() {
        loop {
            let status = client.status_of(addr).await.unwrap();
            let leader_status = client.status_of(&addrs[&leader]).await.unwrap();
            if status.last_applied_index
                >= leader_status
                    .last_applied_index
                    .map(|i| i.saturating_sub(1))
            {
                break;
            }
            assert!(
                start.elapsed() < LIMIT,
                "{addr} does not catch up: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // kill -9 the leader: the other two elect a new leader and keep every committed record.
    servers.get_mut(&leader).unwrap().kill();
    let mut rest = addrs.clone();
    rest.remove(&leader);
    let started = Instant::now();
    let new_leader = agreed_leader(&client, &rest).await;
    assert_ne!(new_leader, leader);
    eprintln!(
        "leader {leader} killed; node {new_leader} elected after {:?}",
        started.elapsed()
    );
    check_image(&client, &acked).await;
    create_all(&client, (0..10).map(|i| format!("after-{i}")), &mut acked).await;
    check_image(&client, &acked).await;

    // Two of three down: a write fails (error or timeout) within the bound.
    let other = *rest.keys().find(|id| **id != new_leader).unwrap();
    servers.get_mut(&new_leader).unwrap().kill();
    let survivor = QuorumClient::new(vec![addrs[&other].clone()], Duration::from_secs(3));
    let started = Instant::now();
    let result = create_topic(&survivor, "no-quorum").await;
    assert!(result.is_err(), "write without quorum: {result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );

    // Bring one node back: the quorum (2 of 3) recovers with everything committed.
    let revived = new_leader;
    let overrides = node_overrides(
        revived,
        ports[revived as usize - 1],
        &data_dir(root.path(), revived),
        &voters,
    );
    servers.insert(revived, ServerProcess::start(&overrides, &addrs[&revived]));
    let mut pair = BTreeMap::new();
    pair.insert(revived, addrs[&revived].clone());
    pair.insert(other, addrs[&other].clone());
    agreed_leader(&client, &pair).await;
    check_image(&client, &acked).await;
    // The lone follower could not have appended it: only a leader appends, and it had no quorum.
    assert!(read_image(&client)
        .await
        .topic_by_name("no-quorum")
        .is_none());
    // Clean shutdown on SIGTERM.
    assert!(
        servers.get_mut(&other).unwrap().terminate(),
        "SIGTERM did not stop the node cleanly"
    );
}
