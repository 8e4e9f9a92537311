//! The seeded simulation of a replicated partition: three replicas, the real controller,
//! producers with `acks=all` and `min.insync.replicas=2`, consumers, and a network and
//! processes that fail, and partition reassignments (moves between the nodes, replication
//! factor 2 or 3, cancels; removed replicas delete their logs) (see `world.rs`), checked at
//! every step (`checker.rs`).
//!
//! Each seed is one run: even seeds in page-cache mode (a crash is `kill -9`: written data
//! survives in the page cache), odd seeds under sync-on-commit (a crash is a power loss:
//! only fsynced data survives). CI runs `STROM_SIM_SEEDS` seeds (200 by default) from
//! `STROM_SIM_SEED_START` (1); `STROM_SIM_SEED=<n>` replays one seed, `STROM_SIM_TRACE=1`
//! prints every event of it. A failing seed prints the command that replays it.

mod checker;
mod node;
mod rng;
mod world;

use world::{Broken, Durability, Params, Stats, World};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn params(seed: u64, broken: Option<Broken>, power_loss: bool) -> Params {
    Params {
        durability: if seed % 2 == 0 {
            Durability::PageCache
        } else {
            Durability::SyncOnCommit
        },
        fault_ms: 8_000,
        heal_ms: 6_000,
        drop_per_mille: 20,
        duplicate_per_mille: 10,
        delay_max_ms: 15,
        broken,
        power_loss,
    }
}

/// Runs one seed; the violation (with the replay command) if any.
fn run_seed(seed: u64, broken: Option<Broken>) -> Result<Stats, String> {
    run_with(params(seed, broken, false), seed)
}

fn run_with(params: Params, seed: u64) -> Result<Stats, String> {
    let trace = env_u64("STROM_SIM_TRACE").is_some_and(|t| t > 0);
    let mut world = World::new(seed, params, trace);
    match world.run() {
        Ok(()) => Ok(world.stats),
        Err(violation) => Err(format!(
            "seed {seed} ({:?}): {violation}\n  stats: {:?}\n  replay: STROM_SIM_SEED={seed} cargo test -p strom-replica --test sim",
            params.durability, world.stats
        )),
    }
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = env_u64("STROM_SIM_SEED") {
        return vec![seed];
    }
    let start = env_u64("STROM_SIM_SEED_START").unwrap_or(1);
    let count = env_u64("STROM_SIM_SEEDS").unwrap_or(200);
    (start..start + count).collect()
}

/// Every seed keeps every invariant, and between them they exercise what they should:
/// crashes, leader changes, truncations, and many acknowledged records.
#[test]
fn replication_keeps_every_acknowledged_record() {
    let mut total = Stats::default();
    let mut failures = Vec::new();
    let seeds = seeds();
    for seed in &seeds {
        match run_seed(*seed, None) {
            Ok(stats) => {
                total.events += stats.events;
                total.crashes += stats.crashes;
                total.pauses += stats.pauses;
                total.isolations += stats.isolations;
                total.reassignments += stats.reassignments;
                total.replica_deletions += stats.replica_deletions;
                total.leader_changes += stats.leader_changes;
                total.truncations += stats.truncations;
                total.produced += stats.produced;
                total.acked += stats.acked;
                total.consumed += stats.consumed;
            }
            Err(failure) => failures.push(failure),
        }
    }
    eprintln!("{} seeds: {total:?}", seeds.len());
    if std::env::var("STROM_SIM_VERBOSE").is_ok() {
        for seed in &seeds {
            eprintln!("seed {seed}: {:?}", run_seed(*seed, None));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    if seeds.len() >= 20 {
        assert!(
            total.acked > seeds.len() as u64 * 50,
            "too little acknowledged: {total:?}"
        );
        assert!(
            total.truncations > 0 && total.leader_changes > seeds.len() as u64,
            "{total:?}"
        );
        assert!(
            total.reassignments > seeds.len() as u64 && total.replica_deletions > 0,
            "reassignments must move the partition and delete removed replicas: {total:?}"
        );
    }
}

/// The checker is not vacuous: brokers broken in ways Kafka's history knows lose or
/// diverge acknowledged records under these faults, and the checker says so.
#[test]
fn the_checker_catches_broken_replication() {
    for broken in [Broken::AckOnAppend, Broken::NoLastFetchedEpoch] {
        let caught = (1..=60u64)
            .filter(|seed| run_seed(*seed, Some(broken)).is_err())
            .count();
        eprintln!("{broken:?}: caught by {caught} of 60 seeds");
        assert!(caught > 0, "no seed caught {broken:?}");
    }
}

/// What page-cache mode does not promise: when a crash is a power loss, acknowledged
/// records can go, as in Kafka, once the last in-sync replica loses what it had not
/// flushed (the simulation's page-cache mode never flushes, as Kafka's default flush
/// settings between segment rolls; the first anomaly seen is usually a new leader's log
/// shorter than what consumers were told). The same faults under sync-on-commit lose
/// nothing (every odd seed of the main test).
#[test]
fn page_cache_mode_does_not_survive_power_loss() {
    let lost = (1..=200u64)
        .filter(|seed| seed % 2 == 0)
        .filter_map(|seed| run_with(params(seed, None, true), seed).err())
        .inspect(|failure| {
            if std::env::var("STROM_SIM_VERBOSE").is_ok() {
                eprintln!("{failure}");
            }
        })
        .count();
    eprintln!("page-cache seeds with power losses that lost acknowledged records: {lost} of 100");
    assert!(
        lost > 0,
        "power loss never lost anything in page-cache mode: the faults are too mild"
    );
}
