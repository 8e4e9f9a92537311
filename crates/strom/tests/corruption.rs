//! Damaged metadata files at start-up, on the real binary: a flipped bit in a committed
//! metadata entry (or in the vote or snapshot file) stops `strom server` with a message
//! naming the file and byte, and no partition data is touched; once the bit is restored
//! every record is there. A torn tail (an interrupted last write) is still cut and start-up
//! goes on.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    broker_overrides, files_under, free_ports, kcat, node_overrides, register_broker,
    start_expecting_exit, strom_cli, ServerProcess,
};
use strom_raft::recovery::scan_segment;
use strom_raft::QuorumClient;

const RECORDS: usize = 3_000;
/// How long a start-up that must fail may take.
const EXIT_LIMIT: Duration = Duration::from_secs(20);

fn metadata_dir(data: &Path) -> PathBuf {
    data.join("__cluster_metadata-0")
}

fn first_segment(data: &Path) -> PathBuf {
    metadata_dir(data).join("00000000000000000000.seg")
}

/// Every record value of `topic`, read by kcat from the beginning.
fn consume_all(addr: &str, topic: &str) -> Vec<String> {
    kcat(
        &[
            "-b",
            addr,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-f",
            "%s\n",
        ],
        "",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// The byte offset of a frame in the first metadata segment whose entry mentions `needle`,
/// and how many entries follow it.
fn entry_mentioning(data: &Path, needle: &[u8]) -> (u64, usize) {
    let bytes = std::fs::read(first_segment(data)).unwrap();
    let scan = scan_segment(&bytes, 0, 1 << 24);
    assert!(
        scan.bad.is_none(),
        "the segment is intact before the test damages it"
    );
    let frames: Vec<u64> = scan.entries.iter().map(|(offset, _)| *offset).collect();
    let position = frames
        .iter()
        .enumerate()
        .find(|(i, start)| {
            let end = frames.get(i + 1).copied().unwrap_or(bytes.len() as u64);
            bytes[**start as usize..end as usize]
                .windows(needle.len())
                .any(|w| w == needle)
        })
        .map(|(i, _)| i)
        .expect("an entry mentions the topic");
    (frames[position], frames.len() - position - 1)
}

#[derive(Clone, Copy, Debug)]
enum Stop {
    Kill,
    Term,
}

fn stop(server: &mut ServerProcess, how: Stop) {
    match how {
        Stop::Kill => server.kill(),
        Stop::Term => assert!(server.terminate(), "clean exit on SIGTERM"),
    }
}

fn flipped_committed_entry_stops_start_up_and_keeps_the_partition(how: Stop) {
    let data = tempfile::tempdir().unwrap();
    let port = free_ports(1)[0];
    let addr = format!("127.0.0.1:{port}");
    let overrides = broker_overrides(port, data.path(), &[]);
    let mut server = ServerProcess::start(&overrides, &addr);
    strom_cli(&[
        "topics",
        "create",
        "victim",
        "--partitions",
        "1",
        "-b",
        &addr,
    ]);
    let records: Vec<String> = (0..RECORDS).map(|i| format!("record-{i}")).collect();
    kcat(
        &["-b", &addr, "-P", "-t", "victim", "-X", "acks=all"],
        &(records.join("\n") + "\n"),
    );
    assert_eq!(consume_all(&addr, "victim"), records);
    // Later metadata entries, so that the damaged one has valid entries after it.
    strom_cli(&[
        "topics",
        "create",
        "later",
        "--partitions",
        "1",
        "-b",
        &addr,
    ]);
    stop(&mut server, how);

    let partition = data.path().join("victim-0");
    let before = files_under(&partition);
    let (frame, after) = entry_mentioning(data.path(), b"victim");
    assert!(after > 0, "entries follow the damaged one");
    let segment = first_segment(data.path());
    let good = std::fs::read(&segment).unwrap();
    let mut bad = good.clone();
    // A bit in the entry's body (past the 8-byte frame header and the entry's index).
    bad[frame as usize + 20] ^= 0x08;
    std::fs::write(&segment, &bad).unwrap();

    let started = Instant::now();
    let (success, stderr) = start_expecting_exit(&overrides, EXIT_LIMIT);
    eprintln!(
        "{how:?}: start-up on a damaged entry ended after {:?}",
        started.elapsed()
    );
    assert!(!success, "start-up on a damaged metadata log succeeded");
    assert!(stderr.contains(&segment.display().to_string()), "{stderr}");
    assert!(
        stderr.contains(&format!("at byte {frame} (entry")),
        "{stderr}"
    );
    assert!(stderr.contains("restore"), "{stderr}");
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bad,
        "the damaged file was changed"
    );
    assert_eq!(files_under(&partition), before, "the partition was touched");
    let names: Vec<String> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.ends_with("-stray") && !n.ends_with("-delete")),
        "{names:?}"
    );

    std::fs::write(&segment, &good).unwrap();
    let _server = ServerProcess::start(&overrides, &addr);
    assert_eq!(consume_all(&addr, "victim"), records);
}

#[test]
fn flipped_bit_in_a_committed_metadata_entry_after_kill_9_stops_start_up() {
    flipped_committed_entry_stops_start_up_and_keeps_the_partition(Stop::Kill);
}

#[test]
fn flipped_bit_in_a_committed_metadata_entry_after_sigterm_stops_start_up() {
    flipped_committed_entry_stops_start_up_and_keeps_the_partition(Stop::Term);
}

#[test]
fn torn_tail_of_the_metadata_log_is_cut_and_start_up_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let port = free_ports(1)[0];
    let addr = format!("127.0.0.1:{port}");
    let overrides = broker_overrides(port, data.path(), &[]);
    let mut server = ServerProcess::start(&overrides, &addr);
    strom_cli(&["topics", "create", "kept", "--partitions", "1", "-b", &addr]);
    kcat(&["-b", &addr, "-P", "-t", "kept"], "a\nb\nc\n");
    server.kill();

    // An interrupted write of the next entry: the first half of a frame.
    let segment = first_segment(data.path());
    let good = std::fs::read(&segment).unwrap();
    let scan = scan_segment(&good, 0, 1 << 24);
    let (_, last) = scan.entries.last().unwrap();
    let mut next = last.clone();
    next.log_id.index += 1;
    let mut frame = Vec::new();
    strom_raft::entry_codec::encode_entry(&next, &mut frame).unwrap();
    let mut torn = good.clone();
    torn.extend_from_slice(&frame[..frame.len() / 2]);
    std::fs::write(&segment, &torn).unwrap();

    let server = ServerProcess::start_logged(&overrides, &addr);
    assert_eq!(consume_all(&addr, "kept"), ["a", "b", "c"]);
    let log = server.log();
    assert!(log.contains("torn tail"), "{log}");
    // The half frame is gone: what follows the old entries are whole new ones.
    let now = std::fs::read(&segment).unwrap();
    assert!(now.starts_with(&good));
    let scan = scan_segment(&now, 0, 1 << 24);
    assert!(scan.bad.is_none(), "{:?}", scan.bad);
    assert_eq!(scan.valid_len, now.len() as u64);
}

/// The snapshot and vote files of a controller that has taken a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bits_in_the_vote_and_snapshot_files_stop_start_up() {
    let root = tempfile::tempdir().unwrap();
    let port = free_ports(1)[0];
    let addr = format!("127.0.0.1:{port}");
    // Snapshots every 25 entries.
    let overrides = node_overrides(1, port, root.path(), "");
    let mut server = ServerProcess::start(&overrides, &addr);
    let client = QuorumClient::new(vec![addr.clone()], Duration::from_secs(10));
    register_broker(&client).await;
    let dir = metadata_dir(root.path());
    let started = Instant::now();
    let mut created = 0;
    while !dir.join("snapshot").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no snapshot taken"
        );
        let name = format!("t{created}");
        let outcome = common::create_topic(&client, &name).await.unwrap();
        assert_eq!(common::error_code(&outcome), None);
        created += 1;
    }
    assert!(server.terminate(), "clean exit on SIGTERM");

    for name in ["snapshot", "vote"] {
        let path = dir.join(name);
        let good = std::fs::read(&path).unwrap();
        let mut bad = good.clone();
        let middle = bad.len() / 2;
        bad[middle] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let (success, stderr) = start_expecting_exit(&overrides, EXIT_LIMIT);
        assert!(!success, "start-up with a damaged {name} succeeded");
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
        assert!(stderr.contains("checksum"), "{stderr}");
        assert!(stderr.contains("restore"), "{stderr}");
        std::fs::write(&path, &good).unwrap();
    }
    let _server = ServerProcess::start(&overrides, &addr);
    let image = common::read_image(&client).await;
    assert_eq!(image.topic_count(), created);
}
