//! Three `strom server` processes on 127.0.0.1 form a metadata quorum: one leader, commits
//! replicated, `kill -9` of the leader elects a new one without losing anything committed,
//! and with two of three down writes fail within a bound.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{
    create_topic, data_dir, dump_topics, error_code, free_ports, node_overrides, read_image,
    register_broker, start_expecting_exit, ServerProcess, PARTITIONS,
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

/// Three voters on free ports: their addresses, `controller.quorum.voters` and the
/// overrides of each.
fn three_voters(root: &std::path::Path) -> (BTreeMap<u64, String>, BTreeMap<u64, Vec<String>>) {
    let ports = free_ports(3);
    let addrs: BTreeMap<u64, String> = (1..=3u64)
        .map(|id| (id, format!("127.0.0.1:{}", ports[id as usize - 1])))
        .collect();
    let voters = addrs
        .iter()
        .map(|(id, a)| format!("{id}@{a}"))
        .collect::<Vec<_>>()
        .join(",");
    let overrides = (1..=3u64)
        .map(|id| {
            let port = ports[id as usize - 1];
            (id, node_overrides(id, port, &data_dir(root, id), &voters))
        })
        .collect();
    (addrs, overrides)
}

/// Waits (bounded) until the node at `addr` has applied everything the node at
/// `leader_addr` had applied when the wait began.
async fn caught_up(client: &QuorumClient, addr: &str, leader_addr: &str) {
    let target = client
        .status_of(leader_addr)
        .await
        .unwrap()
        .last_applied_index;
    let start = Instant::now();
    loop {
        let status = client.status_of(addr).await.ok();
        if status
            .as_ref()
            .is_some_and(|s| s.last_applied_index >= target)
        {
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{addr} does not catch up: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The operator's way out of a damaged metadata log in a quorum: the damaged voter refuses
/// to start; once the others have committed a change without it (so they hold every
/// committed entry), its `__cluster_metadata-0` is moved aside and it starts empty, copies
/// the log from the leader, and then holds every committed topic. (The leader still holds
/// its whole log here, since 1,000 entries are kept behind a snapshot, so the copy is by
/// entries; a leader that purged them sends its snapshot, openraft's path for any lagging
/// follower.) Needs openraft's `loosen-follower-log-revert`: without it the leader panics
/// when the voter's log goes backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_whose_damaged_log_is_moved_aside_is_rebuilt_from_the_others() {
    let root = tempfile::tempdir().unwrap();
    let (addrs, overrides) = three_voters(root.path());
    let mut servers: BTreeMap<u64, ServerProcess> = addrs
        .iter()
        .map(|(id, addr)| (*id, ServerProcess::start(&overrides[id], addr)))
        .collect();
    let client = QuorumClient::new(addrs.values().cloned().collect(), LIMIT);
    let leader = agreed_leader(&client, &addrs).await;
    register_broker(&client).await;
    let mut acked = BTreeMap::new();
    // More entries than the snapshot interval (25): snapshots are taken on every voter.
    create_all(&client, (0..40).map(|i| format!("before-{i}")), &mut acked).await;
    let damaged = *addrs.keys().find(|id| **id != leader).unwrap();
    caught_up(&client, &addrs[&damaged], &addrs[&leader]).await;
    servers.get_mut(&damaged).unwrap().kill();

    // A flipped bit in an entry with valid entries after it: the voter refuses to start.
    let meta = data_dir(root.path(), damaged).join("__cluster_metadata-0");
    let segment = std::fs::read_dir(&meta)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let scan = strom_raft::recovery::scan_segment(&bytes, 0, 1 << 24);
    let frames: Vec<u64> = scan.entries.iter().map(|(o, _)| *o).collect();
    assert!(frames.len() >= 3, "{} frames", frames.len());
    let victim = frames[frames.len() / 2] as usize;
    bytes[victim + 30] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    let (success, stderr) = start_expecting_exit(&overrides[&damaged], LIMIT);
    assert!(!success);
    assert!(stderr.contains(&segment.display().to_string()), "{stderr}");

    // The others still commit: each of them now holds every committed entry.
    create_all(
        &client,
        (0..10).map(|i| format!("while-down-{i}")),
        &mut acked,
    )
    .await;
    let aside = meta.with_file_name("__cluster_metadata-0.damaged");
    std::fs::rename(&meta, &aside).unwrap();
    let mut rebuilt = ServerProcess::start(&overrides[&damaged], &addrs[&damaged]);
    let leader = agreed_leader(&client, &addrs).await;
    caught_up(&client, &addrs[&damaged], &addrs[&leader]).await;
    create_all(&client, (0..5).map(|i| format!("after-{i}")), &mut acked).await;
    caught_up(&client, &addrs[&damaged], &addrs[&leader]).await;
    assert!(rebuilt.terminate(), "clean exit on SIGTERM");

    // The rebuilt voter's own files hold every acknowledged topic.
    let found = dump_topics(&meta);
    for (name, id) in &acked {
        assert_eq!(found.get(name).map(|(id, _)| *id), Some(*id), "{name} lost");
    }
    check_image(&client, &acked).await;
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
