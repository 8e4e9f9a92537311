//! The word count example with `--group-protocol streams` (KIP-1071: the broker assigns
//! the tasks through StreamsGroupHeartbeat and creates the internal topics) as separate
//! processes against the real `strom` broker, in the scenarios `cluster.rs` and `eos.rs`
//! run over the classic protocol: two then three instances (tasks and their state move,
//! counts stay exact), an instance killed with SIGKILL restored from the changelog, and
//! exactly_once_v2 with repeated kills (no duplicate, no gap).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{lines, Broker, Counts, Instance};

const LIMIT: Duration = Duration::from_secs(60);
/// Kills of the victim instance in the exactly-once test (each followed by a restart).
const KILLS: usize = 4;
const LINES_PER_ROUND: usize = 60;

/// A broker whose streams groups notice a dead member in three seconds and assign at once.
fn broker() -> Broker {
    Broker::start_with(&[
        "group.streams.min.session.timeout.ms=1000",
        "group.streams.session.timeout.ms=3000",
        "group.streams.min.heartbeat.interval.ms=100",
        "group.streams.heartbeat.interval.ms=300",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000",
    ])
}

fn start(broker: &Broker, app: &str, dir: &Path, exactly_once: bool) -> Instance {
    let mut args = vec![
        "--group-protocol",
        "streams",
        "-c",
        "linger.ms=5",
        "--commit-interval-ms",
    ];
    if exactly_once {
        args.extend(["100", "--processing-guarantee", "exactly_once_v2"]);
    } else {
        args.push("200");
    }
    Instance::start_args(broker, app, "lines", "counts", dir, &args)
}

/// Every word's counts are 1, 2, ..., n: nothing counted twice, nothing lost.
fn assert_exact(counts: &Counts, expected: &BTreeMap<String, u64>) {
    for (word, seen) in &counts.seen {
        let want: Vec<u64> = (1..=expected[word]).collect();
        assert_eq!(seen, &want, "counts of {word}");
    }
    assert_eq!(
        counts.seen.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
}

async fn wait_committed(broker: &Broker, app: &str) {
    let repartition = format!("{app}-counts-repartition");
    let start = Instant::now();
    while !broker
        .group_caught_up(app, &["lines", repartition.as_str()])
        .await
    {
        assert!(start.elapsed() < LIMIT, "offsets never committed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_protocol_word_count_scales_from_two_to_three_instances() {
    let broker = broker();
    broker.create_topic("lines", 6).await;
    broker.create_topic("counts", 3).await;
    let dirs = tempfile::tempdir().unwrap();
    let mut a = start(&broker, "wcs-scale", &dirs.path().join("a"), false);
    let mut b = start(&broker, "wcs-scale", &dirs.path().join("b"), false);
    a.wait_running(LIMIT);
    b.wait_running(LIMIT);

    let mut expected = BTreeMap::new();
    broker
        .produce_lines("lines", &lines(0, 400, &mut expected))
        .await;
    let mut reader = broker.reader("counts").await;
    let mut counts = Counts::default();
    counts.wait_for(&mut reader, &expected, LIMIT).await;
    // The broker made the internal topics (the library does not under this protocol).
    let topics = broker.admin().list_topics(false).await.unwrap();
    for t in ["wcs-scale-counts-repartition", "wcs-scale-counts-changelog"] {
        assert!(topics.contains(&t.to_string()), "{t} not in {topics:?}");
    }

    // A third instance joins: both others give up tasks (they go through a rebalance),
    // and the new one runs tasks with their state restored from the changelogs.
    a.skip_lines();
    b.skip_lines();
    let mut c = start(&broker, "wcs-scale", &dirs.path().join("c"), false);
    c.wait_running(LIMIT);
    a.wait_rebalanced(LIMIT);
    b.wait_rebalanced(LIMIT);
    broker
        .produce_lines("lines", &lines(400, 400, &mut expected))
        .await;
    counts.wait_for(&mut reader, &expected, LIMIT).await;
    assert_exact(&counts, &expected);
    let c_tasks = std::fs::read_dir(dirs.path().join("c").join("wcs-scale"))
        .unwrap()
        .count();
    assert!(c_tasks > 0, "the third instance runs tasks");
    for i in [&mut a, &mut b, &mut c] {
        assert!(i.terminate(), "clean shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_protocol_killed_instance_restores_from_the_changelog() {
    let broker = broker();
    broker.create_topic("lines", 3).await;
    broker.create_topic("counts", 3).await;
    let dirs = tempfile::tempdir().unwrap();
    let mut expected = BTreeMap::new();
    let mut reader = broker.reader("counts").await;
    let mut counts = Counts::default();
    let app = "wcs-kill";

    let mut first = start(&broker, app, &dirs.path().join("first"), false);
    first.wait_running(LIMIT);
    broker
        .produce_lines("lines", &lines(0, 300, &mut expected))
        .await;
    counts.wait_for(&mut reader, &expected, LIMIT).await;
    wait_committed(&broker, app).await;
    first.kill();

    // On an empty state directory: the broker hands the dead member's tasks over once its
    // session expires, and the counts come back from the changelog.
    let empty = dirs.path().join("second");
    let mut second = start(&broker, app, &empty, false);
    second.wait_running(LIMIT);
    broker
        .produce_lines("lines", &lines(300, 300, &mut expected))
        .await;
    counts.wait_for(&mut reader, &expected, LIMIT).await;
    wait_committed(&broker, app).await;
    second.kill();

    // The same directory again: the checkpoint and the store file are reused.
    assert!(empty.join(app).join("1_0").join(".checkpoint").is_file());
    let mut third = start(&broker, app, &empty, false);
    third.wait_running(LIMIT);
    broker
        .produce_lines("lines", &lines(600, 300, &mut expected))
        .await;
    counts.wait_for(&mut reader, &expected, LIMIT).await;
    assert_exact(&counts, &expected);
    assert!(third.terminate());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_protocol_exactly_once_survives_repeated_kill_9() {
    let broker = broker();
    broker.create_topic("lines", 4).await;
    broker.create_topic("counts", 2).await;
    let dirs = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (dirs.path().join("a"), dirs.path().join("b"));
    let app = "wcs-eos";
    let mut steady = start(&broker, app, &dir_a, true);
    let mut victim = start(&broker, app, &dir_b, true);
    steady.wait_running(LIMIT);
    victim.wait_running(LIMIT);

    let mut expected = BTreeMap::new();
    let mut reader = broker.reader_isolated("counts", true).await;
    let mut counts = Counts::default();
    let mut next = 0;
    for kill in 0..KILLS {
        broker
            .produce_lines("lines", &lines(next, LINES_PER_ROUND, &mut expected))
            .await;
        next += LINES_PER_ROUND;
        // Into the batch (some of it committed, some in an open transaction) before the
        // kill; reading output meanwhile is the wait.
        let until = Instant::now() + Duration::from_millis(300 + 200 * kill as u64);
        while Instant::now() < until {
            counts.read_more(&mut reader).await;
        }
        victim.kill();
        victim = start(&broker, app, &dir_b, true);
        victim.wait_running(LIMIT);
    }
    broker
        .produce_lines("lines", &lines(next, LINES_PER_ROUND, &mut expected))
        .await;
    counts.wait_for(&mut reader, &expected, LIMIT).await;
    // A little longer: a duplicate arriving late must fail too.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(1) {
        counts.read_more(&mut reader).await;
    }
    assert_exact(&counts, &expected);
    assert!(steady.terminate(), "clean shutdown");
    assert!(victim.terminate(), "clean shutdown");
}
