//! exactly_once_v2 with real processes: two word count instances, one killed with SIGKILL
//! and restarted again and again while input is produced. A read_committed reader of the
//! output must see, for every word, the counts 1, 2, ..., n exactly once: no duplicate
//! (a re-processed record whose first output was committed) and no gap (a record whose
//! count was lost). And an instance frozen (SIGSTOP) past its session and transaction
//! timeouts is fenced, then resumed: it rejoins instead of stopping, and the output stays
//! exactly-once.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{lines, Broker, Counts, Instance};

const LIMIT: Duration = Duration::from_secs(60);
/// Kills of the victim instance (bounded, each followed by a restart).
const KILLS: usize = 5;
const LINES_PER_ROUND: usize = 60;

fn start(broker: &Broker, dir: &std::path::Path) -> Instance {
    // The command line of the issue, plus short group timeouts so a killed member leaves
    // the group in about two seconds.
    Instance::start_args(
        broker,
        "wc-eos",
        "lines",
        "counts",
        dir,
        &[
            "--processing-guarantee",
            "exactly_once_v2",
            "-c",
            "session.timeout.ms=2000",
            "-c",
            "heartbeat.interval.ms=300",
            "-c",
            "linger.ms=5",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_exactly_once_survives_repeated_kill_9() {
    let broker = Broker::start_with(&[
        "group.min.session.timeout.ms=1000",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000",
    ]);
    broker.create_topic("lines", 4).await;
    broker.create_topic("counts", 2).await;
    let dirs = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (dirs.path().join("a"), dirs.path().join("b"));
    let mut steady = start(&broker, &dir_a);
    let mut victim = start(&broker, &dir_b);
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
        // Let the instances get into the batch (some of it committed, some in an open
        // transaction) before the kill; reading output meanwhile is the wait.
        let until = Instant::now() + Duration::from_millis(300 + 200 * kill as u64);
        while Instant::now() < until {
            counts.read_more(&mut reader).await;
        }
        victim.kill();
        victim = start(&broker, &dir_b);
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
    for (word, seen) in &counts.seen {
        let want: Vec<u64> = (1..=expected[word]).collect();
        assert_eq!(seen, &want, "counts of {word}: no duplicates, no gaps");
    }
    assert_eq!(
        counts.seen.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    assert!(steady.terminate(), "clean shutdown");
    assert!(victim.terminate(), "clean shutdown");
}

/// Kafka Streams' TaskMigratedException handling: an instance frozen longer than
/// `session.timeout.ms` (the group gives its tasks to the other instance) and longer than
/// `transaction.timeout.ms` (the coordinator aborts its open transaction and bumps its
/// producer epoch) finds on resuming that its producer is fenced and its member unknown.
/// It must close its tasks dirty, re-initialise the producer and rejoin: after two such
/// rounds the other instance is killed and the resumed one alone must finish the input,
/// every count exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_instance_rejoins_and_output_stays_exactly_once() {
    let broker = Broker::start_with(&[
        "group.min.session.timeout.ms=1000",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=500",
    ]);
    broker.create_topic("lines", 4).await;
    broker.create_topic("counts", 2).await;
    let dirs = tempfile::tempdir().unwrap();
    let start = |dir: &std::path::Path| {
        Instance::start_args(
            &broker,
            "wc-fenced",
            "lines",
            "counts",
            dir,
            &[
                "--processing-guarantee",
                "exactly_once_v2",
                "-c",
                "session.timeout.ms=2000",
                "-c",
                "heartbeat.interval.ms=300",
                "-c",
                "linger.ms=5",
                "-c",
                "producer.transaction.timeout.ms=2500",
            ],
        )
    };
    let mut steady = start(&dirs.path().join("a"));
    let mut victim = start(&dirs.path().join("b"));
    steady.wait_running(LIMIT);
    victim.wait_running(LIMIT);

    let mut expected = BTreeMap::new();
    let mut reader = broker.reader_isolated("counts", true).await;
    let mut counts = Counts::default();
    let mut next = 0;
    let read_for = |ms: u64| Instant::now() + Duration::from_millis(ms);
    for round in 0..2 {
        // Four producers: four sticky partitions, likely some of the victim's.
        for _ in 0..4 {
            broker
                .produce_lines("lines", &lines(next, LINES_PER_ROUND / 4, &mut expected))
                .await;
            next += LINES_PER_ROUND / 4;
        }
        // Round 0 freezes the victim between transactions (its member is unknown when it
        // resumes); round 1 at once, most likely inside a transaction that the coordinator
        // aborts meanwhile (its producer is fenced when it resumes).
        let until = read_for(if round == 0 { 400 } else { 0 });
        while Instant::now() < until {
            counts.read_more(&mut reader).await;
        }
        victim.pause();
        victim.skip_lines();
        broker
            .produce_lines("lines", &lines(next, LINES_PER_ROUND, &mut expected))
            .await;
        next += LINES_PER_ROUND;
        // The steady instance takes the frozen one's tasks once its session expires and
        // its open transaction is aborted: every count so far arrives meanwhile.
        counts.wait_for(&mut reader, &expected, LIMIT).await;
        // Past both timeouts for sure before resuming.
        let until = read_for(3000);
        while Instant::now() < until {
            counts.read_more(&mut reader).await;
        }
        steady.skip_lines();
        victim.resume();
        // It rejoins (and restores what it is given) instead of stopping: it reports a
        // rebalance, then running again.
        victim.wait_rebalanced(LIMIT);
        assert!(
            victim.alive(),
            "the fenced instance stopped instead of rejoining"
        );
        // The other instance settles too (it gives tasks back) before the next round.
        steady.wait_rebalanced(LIMIT);
    }
    // The resumed instance must be a working member again: alone, it finishes the input.
    steady.kill();
    broker
        .produce_lines("lines", &lines(next, LINES_PER_ROUND, &mut expected))
        .await;
    counts.wait_for(&mut reader, &expected, LIMIT).await;
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(1) {
        counts.read_more(&mut reader).await;
    }
    for (word, seen) in &counts.seen {
        let want: Vec<u64> = (1..=expected[word]).collect();
        assert_eq!(seen, &want, "counts of {word}: no duplicates, no gaps");
    }
    assert!(victim.terminate(), "clean shutdown after rejoining");
}
