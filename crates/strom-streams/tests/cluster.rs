//! The word count example as separate processes against the real `strom` broker: scaling
//! from two to three instances moves tasks and their state and the counts stay exact;
//! an instance killed with SIGKILL and restarted (on an empty state directory, then on
//! its own) restores its store from the changelog.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{lines, Broker, Counts, Instance};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_scales_from_two_to_three_instances_with_exact_counts() {
    let broker = Broker::start();
    broker.create_topic("lines", 6).await;
    broker.create_topic("counts", 3).await;
    let dirs = tempfile::tempdir().unwrap();
    let mut a = Instance::start(
        &broker,
        "wc-scale",
        "lines",
        "counts",
        &dirs.path().join("a"),
    );
    let mut b = Instance::start(
        &broker,
        "wc-scale",
        "lines",
        "counts",
        &dirs.path().join("b"),
    );
    a.wait_running(LIMIT);
    b.wait_running(LIMIT);

    let mut expected = BTreeMap::new();
    let first = lines(0, 400, &mut expected);
    broker.produce_lines("lines", &first).await;
    let mut reader = broker.reader("counts").await;
    let mut counts = Counts::default();
    counts.wait_for(&mut reader, &expected, LIMIT).await;

    // A third instance joins: the group rebalances, tasks (and their counts) move.
    let mut c = Instance::start(
        &broker,
        "wc-scale",
        "lines",
        "counts",
        &dirs.path().join("c"),
    );
    c.wait_running(LIMIT);
    let admin = broker.admin();
    let start = Instant::now();
    loop {
        let g = admin.describe_group("wc-scale").await.unwrap();
        if g.members.len() == 3
            && g.members.iter().all(|m| !m.assignment.is_empty())
            && g.state == "Stable"
        {
            assert_eq!(g.protocol, "stream");
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "group never settled on three members: {g:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = lines(400, 400, &mut expected);
    broker.produce_lines("lines", &second).await;
    counts.wait_for(&mut reader, &expected, LIMIT).await;

    // Exactly once per input word across the rebalance: each word's counts are 1..=n.
    for (word, seen) in &counts.seen {
        let want: Vec<u64> = (1..=expected[word]).collect();
        assert_eq!(seen, &want, "counts of {word}");
    }
    // The new instance has state: its task directories hold store files.
    let c_tasks = std::fs::read_dir(dirs.path().join("c").join("wc-scale"))
        .unwrap()
        .count();
    assert!(c_tasks > 0, "the third instance runs tasks");
    for i in [&mut a, &mut b, &mut c] {
        assert!(i.terminate(), "clean shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_restores_its_store_from_the_changelog() {
    let broker = Broker::start();
    broker.create_topic("lines", 3).await;
    broker.create_topic("counts", 3).await;
    let dirs = tempfile::tempdir().unwrap();
    let mut expected = BTreeMap::new();
    let mut reader = broker.reader("counts").await;
    let mut counts = Counts::default();

    let mut first = Instance::start(
        &broker,
        "wc-kill",
        "lines",
        "counts",
        &dirs.path().join("first"),
    );
    first.wait_running(LIMIT);
    broker
        .produce_lines("lines", &lines(0, 300, &mut expected))
        .await;
    counts.wait_for(&mut reader, &expected, LIMIT).await;
    let start = Instant::now();
    while !broker
        .group_caught_up("wc-kill", &["lines", "wc-kill-counts-repartition"])
        .await
    {
        assert!(start.elapsed() < LIMIT, "offsets never committed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill();

    // A new instance on an empty state directory: the counts come back from the changelog.
    let empty = dirs.path().join("second");
    let mut second = Instance::start(&broker, "wc-kill", "lines", "counts", &empty);
    second.wait_running(LIMIT);
    broker
        .produce_lines("lines", &lines(300, 300, &mut expected))
        .await;
    counts.wait_for(&mut reader, &expected, LIMIT).await;
    let start = Instant::now();
    while !broker
        .group_caught_up("wc-kill", &["lines", "wc-kill-counts-repartition"])
        .await
    {
        assert!(start.elapsed() < LIMIT, "offsets never committed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    second.kill();

    // The same directory again: the checkpoint and the store file are reused.
    assert!(empty
        .join("wc-kill")
        .join("1_0")
        .join(".checkpoint")
        .is_file());
    let mut third = Instance::start(&broker, "wc-kill", "lines", "counts", &empty);
    third.wait_running(LIMIT);
    broker
        .produce_lines("lines", &lines(600, 300, &mut expected))
        .await;
    counts.wait_for(&mut reader, &expected, LIMIT).await;
    for (word, seen) in &counts.seen {
        let want: Vec<u64> = (1..=expected[word]).collect();
        assert_eq!(seen, &want, "counts of {word}");
    }
    assert!(third.terminate());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_reset_reprocesses_the_input_from_scratch() {
    let broker = Broker::start();
    broker.create_topic("lines", 2).await;
    broker.create_topic("counts", 2).await;
    let dirs = tempfile::tempdir().unwrap();
    let mut expected = BTreeMap::new();
    let mut reader = broker.reader("counts").await;
    let mut counts = Counts::default();
    let mut first = Instance::start(
        &broker,
        "wc-reset",
        "lines",
        "counts",
        &dirs.path().join("a"),
    );
    first.wait_running(LIMIT);
    broker
        .produce_lines("lines", &lines(0, 100, &mut expected))
        .await;
    counts.wait_for(&mut reader, &expected, LIMIT).await;

    let reset = |extra: &[&str]| {
        let mut args = vec![
            "streams",
            "reset",
            "--application-id",
            "wc-reset",
            "--input-topics",
            "lines",
        ];
        args.extend_from_slice(extra);
        std::process::Command::new(common::strom_bin())
            .args(&args)
            .args(["--bootstrap-server", &broker.bootstrap])
            .output()
            .unwrap()
    };
    let running = reset(&[]);
    assert!(!running.status.success());
    assert!(
        String::from_utf8_lossy(&running.stderr).contains("still running"),
        "{running:?}"
    );
    assert!(first.terminate());

    let plan = reset(&["--dry-run"]);
    assert!(plan.status.success(), "{plan:?}");
    assert!(String::from_utf8_lossy(&plan.stdout).contains("wc-reset-counts-changelog"));
    assert!(broker
        .admin()
        .list_topics(false)
        .await
        .unwrap()
        .contains(&"wc-reset-counts-changelog".to_string()));
    let done = reset(&[]);
    assert!(done.status.success(), "{done:?}");
    let topics = broker.admin().list_topics(false).await.unwrap();
    assert!(
        topics.iter().all(|t| !t.starts_with("wc-reset-")),
        "{topics:?}"
    );

    // From scratch (fresh state): every word is counted again from 1.
    let mut again = Instance::start(
        &broker,
        "wc-reset",
        "lines",
        "counts",
        &dirs.path().join("b"),
    );
    again.wait_running(LIMIT);
    let start = Instant::now();
    loop {
        counts.read_more(&mut reader).await;
        let done = expected
            .iter()
            .all(|(w, n)| counts.seen.get(w).is_some_and(|s| s.len() as u64 == 2 * n));
        if done {
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "not reprocessed: {:?}",
            counts.seen
        );
    }
    for (word, seen) in &counts.seen {
        let once: Vec<u64> = (1..=expected[word]).collect();
        assert_eq!(seen, &[once.clone(), once].concat(), "counts of {word}");
    }
    assert!(again.terminate());
}
