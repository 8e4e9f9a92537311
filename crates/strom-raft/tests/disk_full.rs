//! The raft log on a real full disk (a small tmpfs; mounting needs root, as the tests have
//! in CI: a failed mount fails the test). A write that finds the disk full leaves the log
//! writable and its files whole, the store waits for space instead of reporting a storage
//! error (which stops openraft's core), and a node stalled on a full disk carries on, without
//! a restart, once space is freed.

mod toy;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use openraft::storage::RaftLogStorage;
use openraft::{CommittedLeaderId, EntryPayload};
use strom_raft::durable_log::{DurableLog, LogConfig, LogError};
use strom_raft::log_store::LogStore;
use strom_raft::types::{Entry, LogId, Payload, Vote};
use strom_raft::RaftNode;
use toy::{config, free_addrs, put, wait_leader, KvController, KvReply};

/// A tmpfs mounted on a temporary directory; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            output.status.success(),
            "cannot mount a tmpfs on {} (these tests need root, as in CI): {}",
            dir.path().display(),
            String::from_utf8_lossy(&output.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a filler file until the file system is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = File::create(&path).unwrap();
        let chunk = vec![0xaa_u8; 4096];
        for _ in 0..1_000_000 {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn entry(index: u64, bytes: usize) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Payload(vec![(index % 251) as u8; bytes])),
    }
}

fn indexes(log: &DurableLog) -> Vec<u64> {
    log.entries(..).iter().map(|e| e.log_id.index).collect()
}

#[test]
fn a_write_that_finds_the_disk_full_leaves_the_log_whole_and_writable() {
    let tmpfs = Tmpfs::mount("256k");
    let dir = tmpfs.path().join("meta");
    let config = LogConfig {
        segment_bytes: 16 * 1024,
        entry_bytes_max: 64 * 1024,
    };
    let mut log = DurableLog::open(&dir, config).unwrap().0;
    for index in 0..10 {
        log.append(vec![entry(index, 700)]).unwrap();
    }
    let filler = tmpfs.fill();
    let mut next = 10;
    let mut refusal = None;
    for _ in 0..1000 {
        match log.append(vec![entry(next, 700)]) {
            Ok(()) => next += 1,
            Err(error) => {
                refusal = Some(error);
                break;
            }
        }
    }
    let refusal = refusal.expect("the disk fills up");
    assert!(matches!(refusal, LogError::DiskFull { .. }), "{refusal}");
    // Still writable: the same append fails the same way, not as a failed log.
    let again = log.append(vec![entry(next, 700)]).unwrap_err();
    assert!(matches!(again, LogError::DiskFull { .. }), "{again}");
    let vote = log.save_vote(&Vote::new(2, 1)).unwrap_err();
    assert!(matches!(vote, LogError::DiskFull { .. }), "{vote}");
    // The commit point is a hint: not written, not an error.
    log.save_committed(Some(LogId::new(CommittedLeaderId::new(1, 1), 3)))
        .unwrap();
    assert_eq!(indexes(&log), (0..next).collect::<Vec<_>>());
    // On disk the partial frame was cut: a reader finds whole frames only.
    let (on_disk, report) = DurableLog::open_read_only(&dir, config).unwrap();
    assert_eq!(report.torn_bytes_cut, 0, "the failed write left nothing");
    assert_eq!(indexes(&on_disk), (0..next).collect::<Vec<_>>());

    fs::remove_file(filler).unwrap();
    let written = next;
    for _ in 0..20 {
        log.append(vec![entry(next, 700)]).unwrap();
        next += 1;
    }
    log.save_vote(&Vote::new(2, 1)).unwrap();
    drop(log);
    let (log, report) = DurableLog::open(&dir, config).unwrap();
    assert_eq!(report.torn_bytes_cut, 0);
    assert!(next > written);
    assert_eq!(indexes(&log), (0..next).collect::<Vec<_>>());
    assert_eq!(log.vote(), Some(Vote::new(2, 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_waits_for_space_and_gives_up_on_shutdown() {
    let tmpfs = Tmpfs::mount("128k");
    let dir = tmpfs.path().join("meta");
    let log = DurableLog::open(&dir, LogConfig::default()).unwrap().0;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut store = LogStore::new(log).with_shutdown(stop_rx);
    let filler = tmpfs.fill();
    let mut voting = store.clone();
    let vote = Vote::new(3, 1);
    let waiting = tokio::spawn(async move { voting.save_vote(&vote).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the vote waits for space");
    fs::remove_file(&filler).unwrap();
    let saved = tokio::time::timeout(Duration::from_secs(15), waiting)
        .await
        .expect("the vote is saved once space is back")
        .unwrap();
    assert!(saved.is_ok(), "{saved:?}");
    assert_eq!(store.read_vote().await.unwrap(), Some(vote));

    // Full again, and the node shuts down while a write waits: it gives up with an error.
    let _filler = tmpfs.fill();
    let mut voting = store.clone();
    let waiting = tokio::spawn(async move { voting.save_vote(&Vote::new(4, 1)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    stop.send_replace(true);
    let given_up = tokio::time::timeout(Duration::from_secs(15), waiting)
        .await
        .expect("shutdown ends the wait")
        .unwrap();
    assert!(given_up.is_err());
    assert_eq!(
        store.read_vote().await.unwrap(),
        Some(vote),
        "the old vote stands"
    );
}

/// A toy key long enough that a few puts need a new page of the log's file.
fn key(i: u64) -> String {
    format!("k{i}-{}", "x".repeat(300))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_a_full_disk_carries_on_once_space_is_freed() {
    let tmpfs = Tmpfs::mount("1m");
    let addrs = free_addrs(1);
    let node = RaftNode::start(config(1, &addrs, tmpfs.path()), KvController)
        .await
        .unwrap();
    let limit = Duration::from_secs(15);
    assert_eq!(wait_leader(&[&node], limit).await, 1);
    for i in 0..5 {
        assert_eq!(
            node.submit(put(&key(i), i)).await.unwrap(),
            KvReply::Written
        );
    }
    let filler = tmpfs.fill();
    // Writes go on while they fit in pages the files hold already (past the snapshot
    // interval of 20, so a snapshot may wait for space too), then one stalls.
    let mut submitted = Vec::new();
    let mut stalled = false;
    for i in 5..100u64 {
        submitted.push(key(i));
        let attempt =
            tokio::time::timeout(Duration::from_millis(1500), node.submit(put(&key(i), i)));
        if attempt.await.is_err() {
            stalled = true;
            break;
        }
    }
    assert!(stalled, "a put stalls on the full disk");
    let running = node.raft().metrics().borrow().running_state.clone();
    assert!(running.is_ok(), "the raft core still runs: {running:?}");
    fs::remove_file(filler).unwrap();
    // Every submitted put commits (the stalled one too), and new ones go through.
    let start = Instant::now();
    loop {
        let state = node.state().state;
        if submitted.iter().all(|k| state.0.contains_key(k)) {
            break;
        }
        assert!(
            start.elapsed() < limit,
            "puts stalled on the full disk did not commit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let next = 5 + submitted.len() as u64;
    for i in next..next + 30 {
        let reply = tokio::time::timeout(limit, node.submit(put(&key(i), i)))
            .await
            .expect("writes resume")
            .unwrap();
        assert_eq!(reply, KvReply::Written);
    }
    node.shutdown().await;
    // Restart from what is on disk: everything is there.
    let node = RaftNode::start(config(1, &addrs, tmpfs.path()), KvController)
        .await
        .unwrap();
    assert_eq!(wait_leader(&[&node], limit).await, 1);
    let state = node.state().state;
    for i in 0..next + 30 {
        assert!(state.0.contains_key(&key(i)), "put {i} after a restart");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_waits_for_space_instead_of_failing() {
    use openraft::storage::RaftStateMachine;
    use openraft::RaftSnapshotBuilder;
    use strom_raft::state_machine::StateMachineStore;

    let tmpfs = Tmpfs::mount("128k");
    let dir = tmpfs.path().join("meta");
    fs::create_dir_all(&dir).unwrap();
    let (mut store, _channels) = StateMachineStore::<toy::Kv>::open(&dir, 16).unwrap();
    let entries: Vec<Entry> = (0..30u64)
        .map(|index| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Payload(
                serde_json::to_vec(&toy::Put {
                    key: key(index),
                    value: index,
                })
                .unwrap(),
            )),
        })
        .collect();
    store.apply(entries).await.unwrap();
    let filler = tmpfs.fill();
    let mut builder = store.get_snapshot_builder().await;
    let building = tokio::spawn(async move { builder.build_snapshot().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!building.is_finished(), "the snapshot waits for space");
    assert!(!dir.join("snapshot").exists());
    fs::remove_file(filler).unwrap();
    let snapshot = tokio::time::timeout(Duration::from_secs(15), building)
        .await
        .expect("the snapshot is written once space is back")
        .unwrap()
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id.map(|id| id.index), Some(29));
    let (reopened, _) = StateMachineStore::<toy::Kv>::open(&dir, 16).unwrap();
    let mut reopened = reopened;
    let (applied, _) = reopened.applied_state().await.unwrap();
    assert_eq!(applied.map(|id| id.index), Some(29));
}
