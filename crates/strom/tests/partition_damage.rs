//! A damaged partition log on the real binary: a sync-on-commit broker killed with
//! `kill -9`, a byte flipped in the middle of one topic's active segment, and a restart.
//! The broker starts and serves every other partition; the damaged one stays offline
//! (fetchers get KAFKA_STORAGE_ERROR; it is reported to the controller, which leaves it
//! without a leader, so producers time out), the ERROR line names the file and no
//! byte of it changes. Once the byte is restored every acknowledged record comes back.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{broker_overrides, files_under, free_ports, kcat, strom_cli, ServerProcess};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use strom_records::BatchHeader;

const RECORDS: usize = 2_000;
const KAFKA_STORAGE_ERROR: i16 = 56;

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

/// Produces `records` with acks=all; kcat fails unless every one is acknowledged.
fn produce_acked(addr: &str, topic: &str, records: &[String]) {
    kcat(
        &["-b", addr, "-P", "-t", topic, "-X", "acks=all"],
        &(records.join("\n") + "\n"),
    );
}

/// The newest `.log` file of a partition directory: its active segment.
fn active_segment(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a segment")
}

/// Start positions of the batches of a segment file.
fn batch_positions(bytes: &[u8]) -> Vec<usize> {
    let mut positions = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        positions.push(at);
        at += BatchHeader::parse(&bytes[at..]).unwrap().size_bytes();
    }
    positions
}

/// One Fetch (v12, by topic name) of partition 0 from offset 0; returns its error code.
fn fetch_error(addr: &str, topic: &str) -> i16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let version = 12;
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let api = ApiKey::Fetch;
    let header = RequestHeader::default()
        .with_request_api_key(FetchRequest::KEY)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("strom-test")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    request.encode(&mut buf, version).unwrap();
    let mut framed = BytesMut::new();
    framed.put_i32(buf.len() as i32);
    framed.put_slice(&buf);
    stream.write_all(&framed).unwrap();
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).unwrap();
    let mut body = Bytes::from(body);
    ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
    let response = FetchResponse::decode(&mut body, version).unwrap();
    assert_eq!(body.remaining(), 0);
    response.responses[0].partitions[0].error_code
}

/// Runs kcat producing one record to `topic` with a short delivery timeout; returns whether
/// it succeeded and its stderr.
fn try_produce(addr: &str, topic: &str) -> (bool, String) {
    let mut child = Command::new("timeout")
        .arg("60")
        .arg("kcat")
        .args([
            "-b",
            addr,
            "-P",
            "-t",
            topic,
            "-X",
            "acks=all",
            "-X",
            "message.timeout.ms=4000",
            // librdkafka retries a storage error until the timeout; its debug output shows
            // the broker's answer.
            "-d",
            "msg",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat must be installed (apt-get install kcat)");
    child.stdin.take().unwrap().write_all(b"late\n").unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Polls `server`'s stderr (bounded) until it holds a line with all of `needles`.
fn wait_for_log_line(server: &ServerProcess, needles: &[&str]) -> String {
    let started = Instant::now();
    loop {
        let log = server.log();
        if let Some(line) = log
            .lines()
            .find(|line| needles.iter().all(|n| line.contains(n)))
        {
            return line.to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no log line with {needles:?} in:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn flipped_byte_in_an_active_segment_takes_only_that_partition_offline() {
    let data = tempfile::tempdir().unwrap();
    let port = free_ports(1)[0];
    let addr = format!("127.0.0.1:{port}");
    let overrides = broker_overrides(port, data.path(), &["strom.log.durability=sync-on-commit"]);
    let mut server = ServerProcess::start(&overrides, &addr);
    for topic in ["victim", "intact"] {
        strom_cli(&["topics", "create", topic, "--partitions", "1", "-b", &addr]);
    }
    let records =
        |topic: &str| -> Vec<String> { (0..RECORDS).map(|i| format!("{topic}-{i}")).collect() };
    // In several rounds, so that the segment holds many batches.
    for round in records("victim").chunks(RECORDS / 8) {
        produce_acked(&addr, "victim", round);
    }
    produce_acked(&addr, "intact", &records("intact"));
    server.kill();

    let victim_dir = data.path().join("victim-0");
    let segment = active_segment(&victim_dir);
    let good = std::fs::read(&segment).unwrap();
    let positions = batch_positions(&good);
    assert!(positions.len() >= 4, "batches {}", positions.len());
    let middle = positions[positions.len() / 2];
    let mut bad = good.clone();
    // A byte the CRC covers (past the 61-byte header), in the middle of the segment.
    bad[middle + 70] ^= 0x20;
    std::fs::write(&segment, &bad).unwrap();
    let before = files_under(&victim_dir);

    let server = ServerProcess::start_logged(&overrides, &addr);
    assert_eq!(consume_all(&addr, "intact"), records("intact"));
    let line = wait_for_log_line(&server, &["ERROR", "victim", "damaged partition log file"]);
    assert!(line.contains(&segment.display().to_string()), "{line}");
    assert!(line.contains(&format!("at byte {middle}")), "{line}");
    assert!(line.contains("restore"), "{line}");
    assert_eq!(fetch_error(&addr, "victim"), KAFKA_STORAGE_ERROR);
    assert_eq!(fetch_error(&addr, "intact"), 0);
    let (produced, stderr) = try_produce(&addr, "victim");
    assert!(
        !produced,
        "produce to an offline partition succeeded: {stderr}"
    );
    // The broker reported the replica offline, and with no other replica the controller
    // left the partition without a leader (Kafka's answer for a replica in an offline log
    // directory): librdkafka waits for a leader until the message times out. Before the
    // report reached the controller it got KAFKA_STORAGE_ERROR (librdkafka's text below),
    // which it retries as Kafka's clients do.
    assert!(
        stderr.contains("Disk error when trying to access log file")
            || stderr.contains("Message timed out"),
        "{stderr}"
    );
    // The broker still serves the rest.
    produce_acked(&addr, "intact", &["after".to_string()]);
    assert_eq!(
        files_under(&victim_dir),
        before,
        "the damaged partition was touched"
    );
    drop(server);

    std::fs::write(&segment, &good).unwrap();
    let _server = ServerProcess::start(&overrides, &addr);
    assert_eq!(consume_all(&addr, "victim"), records("victim"));
    let mut intact = records("intact");
    intact.push("after".to_string());
    assert_eq!(consume_all(&addr, "intact"), intact);
}
