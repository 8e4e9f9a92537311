//! Three voters in one process over real TCP on 127.0.0.1: election, forwarding, leader loss,
//! quorum loss, and a lagging follower caught up by snapshot.

mod toy;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strom_raft::{QuorumClient, RaftNode, SubmitError};
use toy::{config, free_addrs, put, wait_leader, wait_state, KvController, KvNode, KvReply};

const LIMIT: Duration = Duration::from_secs(15);

async fn start(id: u64, addrs: &[std::net::SocketAddr], dir: &std::path::Path) -> KvNode {
    RaftNode::start(config(id, addrs, dir), KvController)
        .await
        .unwrap()
}

fn expected(range: std::ops::Range<u64>) -> BTreeMap<String, u64> {
    range.map(|i| (format!("k{i}"), i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_of_three_survives_leader_loss_and_refuses_writes_without_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let addrs = free_addrs(3);
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start(id, &addrs, dir.path()).await);
    }
    let all: Vec<&KvNode> = nodes.iter().collect();
    let leader = wait_leader(&all, LIMIT).await;

    // Submitting through a follower forwards to the leader.
    let follower = nodes.iter().find(|n| n.node_id() != leader).unwrap();
    for i in 0..10 {
        assert_eq!(
            follower.submit(put(&format!("k{i}"), i)).await.unwrap(),
            KvReply::Written
        );
    }
    for node in &nodes {
        wait_state(node, &expected(0..10), LIMIT).await;
    }

    // Lose the leader: the other two elect a new one and keep everything committed.
    let old = nodes.iter().position(|n| n.node_id() == leader).unwrap();
    let old_node = nodes.remove(old);
    old_node.shutdown().await;
    let rest: Vec<&KvNode> = nodes.iter().collect();
    let new_leader = wait_leader(&rest, LIMIT).await;
    assert_ne!(new_leader, leader);
    let client = QuorumClient::new(addrs.iter().map(|a| a.to_string()).collect(), LIMIT);
    for i in 10..20 {
        let reply: KvReply = client.submit(&put(&format!("k{i}"), i)).await.unwrap();
        assert_eq!(reply, KvReply::Written);
    }
    for node in &nodes {
        wait_state(node, &expected(0..20), LIMIT).await;
    }

    // Lose a second node: no quorum, writes fail within the bound instead of hanging.
    let second = nodes.pop().unwrap();
    second.shutdown().await;
    let mut short = QuorumClient::new(
        addrs.iter().map(|a| a.to_string()).collect(),
        Duration::from_secs(3),
    );
    short.retry_backoff = Duration::from_millis(50);
    let started = Instant::now();
    let result: Result<KvReply, SubmitError> = short.submit(&put("lost", 1)).await;
    assert!(
        result.is_err(),
        "write without quorum succeeded: {result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    let survivor = nodes.pop().unwrap();
    assert!(!survivor.state().state.0.contains_key("lost"));
    survivor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_by_snapshot_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let addrs = free_addrs(3);
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start(id, &addrs, dir.path()).await);
    }
    let all: Vec<&KvNode> = nodes.iter().collect();
    let leader = wait_leader(&all, LIMIT).await;
    let lagging_id = (1..=3).find(|id| *id != leader).unwrap();
    let lagging = nodes.remove(
        nodes
            .iter()
            .position(|n| n.node_id() == lagging_id)
            .unwrap(),
    );
    lagging.shutdown().await;
    drop(lagging);

    // Far more than the snapshot interval (20) plus the kept tail (5): the log is purged.
    let leader_node = nodes.iter().find(|n| n.node_id() == leader).unwrap();
    for i in 0..60 {
        assert_eq!(
            leader_node.submit(put(&format!("k{i}"), i)).await.unwrap(),
            KvReply::Written
        );
    }
    let lagging = start(lagging_id, &addrs, dir.path()).await;
    wait_state(&lagging, &expected(0..60), LIMIT).await;
    assert!(dir
        .path()
        .join(format!("node-{lagging_id}/snapshot"))
        .exists());
    lagging.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_by_log_splits_batches_that_exceed_the_frame_limit() {
    let dir = tempfile::tempdir().unwrap();
    let addrs = free_addrs(3);
    let small_frames = |id: u64| {
        let mut config = config(id, &addrs, dir.path());
        config.frame_bytes_max = 64 * 1024;
        // Keep the whole log so the follower catches up by entries, not by snapshot.
        config.snapshot_entries_interval = 10_000;
        config
    };
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(
            RaftNode::start(small_frames(id), KvController)
                .await
                .unwrap(),
        );
    }
    let all: Vec<&KvNode> = nodes.iter().collect();
    let leader = wait_leader(&all, LIMIT).await;
    let lagging_id = (1..=3).find(|id| *id != leader).unwrap();
    let lagging = nodes.remove(
        nodes
            .iter()
            .position(|n| n.node_id() == lagging_id)
            .unwrap(),
    );
    lagging.shutdown().await;
    drop(lagging);

    // 40 entries of ~10 KiB on the wire each: far more than one 64 KiB frame.
    let leader_node = nodes.iter().find(|n| n.node_id() == leader).unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..40u64 {
        let key = format!("{i:04}-{}", "x".repeat(5000));
        assert_eq!(
            leader_node.submit(put(&key, i)).await.unwrap(),
            KvReply::Written
        );
        expected.insert(key, i);
    }
    let lagging = RaftNode::start(small_frames(lagging_id), KvController)
        .await
        .unwrap();
    wait_state(&lagging, &expected, LIMIT).await;
    assert!(!dir
        .path()
        .join(format!("node-{lagging_id}/snapshot"))
        .exists());
    lagging.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_quorum_is_the_leaders_view_from_any_node() {
    let dir = tempfile::tempdir().unwrap();
    let addrs = free_addrs(3);
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start(id, &addrs, dir.path()).await);
    }
    let all: Vec<&KvNode> = nodes.iter().collect();
    let leader = wait_leader(&all, LIMIT).await;
    for i in 0..5 {
        nodes[0].submit(put(&format!("k{i}"), i)).await.unwrap();
    }
    let follower = nodes.iter().find(|n| n.node_id() != leader).unwrap();
    let started_ms = strom_raft::network::now_ms();
    // Asked of a follower, answered by the leader; polled until every follower acknowledged
    // the last entry (replication is asynchronous), within the bound.
    let deadline = Instant::now() + LIMIT;
    let quorum = loop {
        let quorum = follower.describe_quorum().await.unwrap();
        let caught_up = quorum
            .voters
            .iter()
            .all(|v| v.log_end_offset == quorum.high_watermark && v.last_caught_up_ms > 0);
        if caught_up {
            break quorum;
        }
        assert!(Instant::now() < deadline, "never caught up: {quorum:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(quorum.leader_id, leader);
    assert!(quorum.leader_epoch >= 1, "{quorum:?}");
    let mut ids: Vec<u64> = quorum.voters.iter().map(|v| v.node_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3]);
    assert!(quorum.observers.is_empty());
    // Five entries and the leader's own (membership, blank) entries.
    assert!(quorum.high_watermark >= 5, "{quorum:?}");
    for v in &quorum.voters {
        assert!(v.last_fetch_ms >= v.last_caught_up_ms, "{v:?}");
        assert!(v.last_fetch_ms > 0 && v.last_fetch_ms <= strom_raft::network::now_ms());
    }
    assert_eq!(quorum.addrs.len(), 3);

    // A stopped follower stops acknowledging: its fetch time stays behind the others'.
    let stopped = nodes.iter().position(|n| n.node_id() != leader).unwrap();
    let stopped_id = nodes[stopped].node_id();
    nodes.remove(stopped).shutdown().await;
    let leader_node = nodes.iter().find(|n| n.node_id() == leader).unwrap();
    let deadline = Instant::now() + LIMIT;
    loop {
        let quorum = leader_node.describe_quorum().await.unwrap();
        let fetch = |id: u64| {
            quorum
                .voters
                .iter()
                .find(|v| v.node_id == id)
                .map(|v| v.last_fetch_ms)
                .unwrap()
        };
        let live = nodes
            .iter()
            .map(|n| n.node_id())
            .find(|id| *id != leader)
            .unwrap();
        // Heartbeats keep the live follower's time moving; the stopped one's is frozen.
        if fetch(live) > fetch(stopped_id) + 200 {
            assert!(fetch(stopped_id) >= started_ms - 60_000);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fetch times did not diverge: {quorum:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for node in &nodes {
        node.shutdown().await;
    }
}
