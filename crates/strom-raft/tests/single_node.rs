//! A single-voter node over the toy state: commit, validation, restart, snapshot, lock.

mod toy;

use std::collections::BTreeMap;
use std::time::Duration;

use strom_raft::{QuorumClient, RaftNode, StartError, StateEvent, SubmitError};
use toy::{config, free_addrs, put, wait_leader, KvController, KvReply, KvRequest};

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_voter_commits_validates_and_restarts_from_snapshot_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let addrs = free_addrs(1);
    let node = RaftNode::start(config(1, &addrs, dir.path()), KvController)
        .await
        .unwrap();
    assert_eq!(wait_leader(&[&node], LIMIT).await, 1);
    let mut events = node.subscribe();

    // More entries than the snapshot interval (20), so a snapshot is taken and the log purged.
    for i in 0..45 {
        assert_eq!(
            node.submit(put(&format!("k{i}"), i)).await.unwrap(),
            KvReply::Written
        );
    }
    // Validation sees the latest state: the controller refuses a duplicate key.
    assert_eq!(
        node.submit(put("k3", 99)).await.unwrap(),
        KvReply::AlreadyPresent(3)
    );
    // An entry that does not apply is skipped and reported, and the log keeps going.
    assert!(matches!(
        node.submit(KvRequest::Broken).await,
        Err(SubmitError::Apply(_))
    ));
    assert_eq!(
        node.submit(put("after", 7)).await.unwrap(),
        KvReply::Written
    );

    let mut expected: BTreeMap<String, u64> = (0..45).map(|i| (format!("k{i}"), i)).collect();
    expected.insert("after".into(), 7);
    assert_eq!(*node.state().state.0, expected);
    let first = events.recv().await.unwrap();
    assert!(
        matches!(first, StateEvent::Applied { ref delta, .. } if delta.key == "k0"),
        "{first:?}"
    );

    // A second node on the same directory fails fast while the first runs.
    let mut other = config(1, &free_addrs(1), dir.path());
    other.listen_addr = free_addrs(1)[0];
    match RaftNode::start(other, KvController).await {
        Err(StartError::Lock(e)) => assert!(e.to_string().contains("in use"), "{e}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("second node on the same directory started"),
    }

    // Wait for the snapshot before restarting, so start-up replays snapshot + log.
    let start = std::time::Instant::now();
    while !dir.path().join("node-1/snapshot").exists() {
        assert!(start.elapsed() < LIMIT, "no snapshot taken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.shutdown().await;
    drop(node);

    // Another node id on this directory is refused: the vote and log are node 1's.
    let mut stranger = config(1, &addrs, dir.path());
    stranger.node_id = 2;
    stranger.voters.clear();
    match RaftNode::start(stranger, KvController).await {
        Err(StartError::WrongNode {
            stored: 1,
            configured: 2,
            ..
        }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("node 2 started on node 1's directory"),
    }

    let node = RaftNode::start(config(1, &addrs, dir.path()), KvController)
        .await
        .unwrap();
    wait_leader(&[&node], LIMIT).await;
    let (_, state) = node.read_state().await.unwrap();
    assert_eq!(*state.0, expected);
    assert_eq!(
        node.submit(put("k0", 5)).await.unwrap(),
        KvReply::AlreadyPresent(0)
    );

    // The same through the TCP client.
    let client = QuorumClient::new(vec![node.local_addr().to_string()], LIMIT);
    let reply: KvReply = client.submit(&put("remote", 1)).await.unwrap();
    assert_eq!(reply, KvReply::Written);
    let reply: KvReply = client.submit(&put("remote", 2)).await.unwrap();
    assert_eq!(reply, KvReply::AlreadyPresent(1));
    assert!(client
        .read_state()
        .await
        .unwrap()
        .last_applied_index
        .is_some());
    node.shutdown().await;
}
