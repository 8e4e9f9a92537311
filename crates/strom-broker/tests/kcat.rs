//! Debian's kcat (librdkafka 2.0.2) against the in-process broker: produce keyed records
//! with headers under every codec, idempotently too, and consume them back byte for byte.
//! kcat must be installed (`apt-get install kcat`; CI's setup script installs it).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use common::TestBroker;

/// Runs kcat with `args`, feeding `input`; bounded by `timeout`. Returns stdout.
fn kcat(args: &[&str], input: &str) -> String {
    let mut child = Command::new("timeout")
        .arg("30")
        .arg("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat must be installed (apt-get install kcat)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_produces_and_consumes_every_codec() {
    let broker = TestBroker::start_with(|c| c.num_partitions = 3).await;
    let bootstrap = broker.addr().to_string();
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    let mut expected: Vec<String> = Vec::new();
    for codec in codecs {
        let lines: Vec<String> = (0..20)
            .map(|i| format!("key-{codec}-{i}\tvalue-{codec}-{i}"))
            .collect();
        let bootstrap = bootstrap.clone();
        let input = lines.join("\n") + "\n";
        tokio::task::spawn_blocking(move || {
            kcat(
                &[
                    "-b",
                    &bootstrap,
                    "-P",
                    "-t",
                    "kc",
                    "-K",
                    "\t",
                    "-z",
                    codec,
                    "-H",
                    &format!("codec={codec}"),
                    "-X",
                    "partitioner=murmur2_random",
                    "-X",
                    "enable.idempotence=true",
                ],
                &input,
            )
        })
        .await
        .unwrap();
        expected
            .extend((0..20).map(|i| format!("key-{codec}-{i}|value-{codec}-{i}|codec={codec}")));
    }
    let bootstrap_c = bootstrap.clone();
    let out = tokio::task::spawn_blocking(move || {
        kcat(
            &[
                "-b",
                &bootstrap_c,
                "-C",
                "-t",
                "kc",
                "-o",
                "beginning",
                "-e",
                "-f",
                "%p|%o|%k|%s|%h\n",
            ],
            "",
        )
    })
    .await
    .unwrap();
    // Per partition, offsets are dense from 0 and records keep the order they were sent.
    let mut by_partition: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for line in out.lines() {
        let mut parts = line.splitn(3, '|');
        let partition = parts.next().unwrap().to_string();
        let offset: i64 = parts.next().unwrap().parse().unwrap();
        by_partition
            .entry(partition)
            .or_default()
            .push((offset, parts.next().unwrap().to_string()));
    }
    let mut seen = Vec::new();
    for records in by_partition.values() {
        let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (0..records.len() as i64).collect::<Vec<_>>());
        let order: Vec<&String> = records.iter().map(|(_, r)| r).collect();
        let mut sorted_by_send = order.clone();
        sorted_by_send.sort_by_key(|r| expected.iter().position(|e| e == *r));
        assert_eq!(order, sorted_by_send, "order within a partition");
        seen.extend(records.iter().map(|(_, r)| r.clone()));
    }
    seen.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(seen, want);
    assert!(by_partition.len() > 1, "keys spread over partitions");

    // Metadata through kcat's own view.
    let list = tokio::task::spawn_blocking(move || kcat(&["-b", &bootstrap, "-L", "-t", "kc"], ""))
        .await
        .unwrap();
    assert!(list.contains("topic \"kc\" with 3 partitions"), "{list}");
    broker.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_batches_stay_compressed_under_every_codec() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.addr().to_string();
    let value = "a".repeat(1000);
    let input: String = (0..200).map(|i| format!("{i}{value}\n")).collect();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("c-{codec}");
        let (bootstrap, input, t) = (bootstrap.clone(), input.clone(), topic.clone());
        tokio::task::spawn_blocking(move || {
            kcat(&["-b", &bootstrap, "-P", "-t", &t, "-z", codec], &input)
        })
        .await
        .unwrap();
        let partition = broker
            .broker
            .context()
            .replicas
            .all()
            .into_iter()
            .find(|p| p.topic == topic)
            .unwrap();
        let stored = partition.log.size_bytes();
        // 200 kB of one repeated byte: any real codec stores a small fraction of it.
        assert!(stored < 40_000, "{codec}: {stored} bytes stored");
        assert_eq!(partition.log.log_end_offset(), 200, "{codec}");
    }
    broker.broker.shutdown().await;
}
