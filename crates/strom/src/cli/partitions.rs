//! `strom partitions reassign|elect-leaders`: kafka-reassign-partitions.sh and
//! kafka-leader-election.sh on strom-client's Admin. Plans are Kafka's JSON
//! (`{"version":1,"partitions":[{"topic":..,"partition":..,"replicas":[..]}]}`), so a plan
//! written for Kafka's tools works here and the other way round. `--generate` proposes what
//! Kafka's does (`calculateAssignment`): each topic placed afresh over the allowed brokers
//! by the rule topic creation uses; `--minimal-moves` only replaces disallowed replicas.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use strom_client::{
    Admin, ClientError, ClusterMetadata, ElectionType, PartitionInfo, TopicInfo, TopicPartition,
};
use strom_meta::assign_replicas_to_brokers;

use super::args::{Common, ElectionKind, PartitionsCommand};
use super::output::{self, Out};
use super::progress::{self, Progress};

/// Kafka's reassignment JSON (`log_dirs` is accepted and ignored: replicas go to the
/// broker's own directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Plan {
    #[serde(default = "plan_version")]
    version: i32,
    partitions: Vec<PlanPartition>,
}

fn plan_version() -> i32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PlanPartition {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_dirs: Option<Vec<String>>,
}

/// kafka-reassign-partitions.sh's `--topics-to-move-json-file`.
#[derive(Debug, Deserialize)]
struct TopicsFile {
    #[serde(default = "plan_version")]
    #[allow(dead_code)]
    version: i32,
    topics: Vec<TopicsFileTopic>,
}

#[derive(Debug, Deserialize)]
struct TopicsFileTopic {
    topic: String,
}

/// What `--generate` was asked for.
struct Generate<'a> {
    broker_list: &'a [i32],
    exclude: &'a [i32],
    topics: &'a [String],
    rack_aware: bool,
    minimal_moves: bool,
}

/// kafka-leader-election.sh's `--path-to-json-file`.
#[derive(Debug, Deserialize)]
struct ElectionFile {
    partitions: Vec<ElectionPartition>,
}

#[derive(Debug, Deserialize)]
struct ElectionPartition {
    topic: String,
    partition: i32,
}

/// How often `--wait` polls the reassignments.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// A plan file larger than this is refused rather than read.
const PLAN_BYTES_MAX: u64 = 64 * 1024 * 1024;

pub async fn run(common: &Common, command: PartitionsCommand) -> anyhow::Result<()> {
    let admin = Admin::new(super::client_config(common)?)?;
    let result = match command {
        PartitionsCommand::Reassign {
            reassignment_json_file,
            verify,
            cancel,
            generate,
            broker_list,
            exclude_broker,
            mut topics,
            topics_to_move_json_file,
            disable_rack_aware,
            minimal_moves,
            wait,
            timeout_s,
        } => {
            let timeout = Duration::from_secs(timeout_s);
            if generate {
                if let Some(path) = topics_to_move_json_file {
                    let file: TopicsFile = read_json(&path, "topics file")?;
                    topics.extend(file.topics.into_iter().map(|t| t.topic));
                }
                let how = Generate {
                    broker_list: &broker_list,
                    exclude: &exclude_broker,
                    topics: &topics,
                    rack_aware: !disable_rack_aware,
                    minimal_moves,
                };
                generate_plan(common, &admin, how).await
            } else {
                let path = reassignment_json_file
                    .context("--reassignment-json-file is required without --generate")?;
                let plan = read_plan(&path)?;
                if verify {
                    verify_plan(common, &admin, &plan, wait, timeout).await
                } else if cancel {
                    cancel_plan(common, &admin, &plan).await
                } else {
                    execute_plan(common, &admin, &plan, wait, timeout).await
                }
            }
        }
        PartitionsCommand::ElectLeaders {
            election_type,
            topic,
            partition,
            all_topic_partitions,
            path_to_json_file,
        } => {
            elect(
                common,
                &admin,
                election_type,
                topic,
                partition,
                all_topic_partitions,
                path_to_json_file.as_deref(),
            )
            .await
        }
    };
    admin.close().await;
    result
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?
        .len();
    if size > PLAN_BYTES_MAX {
        bail!(
            "{what} {} is {size} bytes, more than the {PLAN_BYTES_MAX} this command reads",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{what} {} is not valid JSON of the expected shape",
            path.display()
        )
    })
}

fn read_plan(path: &Path) -> anyhow::Result<Plan> {
    let plan: Plan = read_json(path, "reassignment plan")?;
    if plan.version != 1 {
        bail!(
            "reassignment plan {}: version {} is not supported (only 1, as Kafka's tools write)",
            path.display(),
            plan.version
        );
    }
    let mut seen = BTreeSet::new();
    for p in &plan.partitions {
        if !seen.insert((p.topic.clone(), p.partition)) {
            bail!(
                "reassignment plan {} names {}-{} twice",
                path.display(),
                p.topic,
                p.partition
            );
        }
    }
    Ok(plan)
}

fn tp(p: &PlanPartition) -> TopicPartition {
    TopicPartition::new(p.topic.clone(), p.partition)
}

/// The plan's partitions as they are now (what Kafka prints for a rollback).
fn current_plan(meta: &ClusterMetadata, partitions: &[TopicPartition]) -> Plan {
    let partitions = partitions
        .iter()
        .filter_map(|tp| {
            let info = meta
                .topics
                .get(&tp.topic)?
                .partitions
                .iter()
                .find(|p| p.partition == tp.partition)?;
            Some(PlanPartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
                replicas: info.replicas.clone(),
                log_dirs: None,
            })
        })
        .collect();
    Plan {
        version: 1,
        partitions,
    }
}

fn plan_json(plan: &Plan) -> anyhow::Result<String> {
    Ok(serde_json::to_string(plan)?)
}

async fn execute_plan(
    common: &Common,
    admin: &Admin,
    plan: &Plan,
    wait: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let tps: Vec<TopicPartition> = plan.partitions.iter().map(tp).collect();
    let current = current_plan(&admin.metadata().await?, &tps);
    if !common.json() {
        let mut out = Out::new();
        out.line(&format!(
            "Current partition replica assignment\n\n{}\n\nSave this to use as the \
             --reassignment-json-file option during rollback",
            plan_json(&current)?
        ))?;
        out.flush()?;
    }
    let moves: Vec<(TopicPartition, Option<Vec<i32>>)> = plan
        .partitions
        .iter()
        .map(|p| (tp(p), Some(p.replicas.clone())))
        .collect();
    let results = admin.alter_partition_reassignments(&moves).await?;
    let failed = report_results(common, &results, "started partition reassignments", |_| {
        false
    })?;
    if failed > 0 {
        bail!(
            "{failed} of {} partition reassignment(s) failed",
            results.len()
        );
    }
    if wait {
        wait_for(common, admin, plan, timeout).await?;
        return verify_plan(common, admin, plan, false, timeout).await;
    }
    Ok(())
}

/// Prints per-partition outcomes; returns how many failed (`tolerated` errors excepted).
fn report_results(
    common: &Common,
    results: &[(TopicPartition, strom_client::Result<()>)],
    done: &str,
    tolerated: impl Fn(&ClientError) -> bool,
) -> anyhow::Result<usize> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for (tp, outcome) in results {
        match outcome {
            Ok(()) => ok.push(tp.to_string()),
            Err(e) if tolerated(e) => ok.push(tp.to_string()),
            Err(e) => errors.push((tp.to_string(), e.to_string())),
        }
    }
    if common.json() {
        #[derive(Serialize)]
        struct Outcome<'a> {
            partition: &'a str,
            error: Option<&'a str>,
        }
        let all: Vec<Outcome<'_>> = ok
            .iter()
            .map(|p| Outcome {
                partition: p,
                error: None,
            })
            .chain(errors.iter().map(|(p, e)| Outcome {
                partition: p,
                error: Some(e),
            }))
            .collect();
        output::print_json(&all)?;
    } else {
        let mut out = Out::new();
        if !ok.is_empty() {
            out.line(&format!("Successfully {done} for: {}", ok.join(",")))?;
        }
        for (p, e) in &errors {
            out.line(&format!("Error for {p}: {e}"))?;
        }
        out.flush()?;
    }
    Ok(errors.len())
}

async fn cancel_plan(common: &Common, admin: &Admin, plan: &Plan) -> anyhow::Result<()> {
    let moves: Vec<(TopicPartition, Option<Vec<i32>>)> =
        plan.partitions.iter().map(|p| (tp(p), None)).collect();
    let results = admin.alter_partition_reassignments(&moves).await?;
    let failed = report_results(
        common,
        &results,
        "cancelled partition reassignments",
        |e| matches!(e, ClientError::Broker { name, .. } if *name == "NO_REASSIGNMENT_IN_PROGRESS"),
    )?;
    if failed > 0 {
        bail!("{failed} of {} cancellation(s) failed", results.len());
    }
    Ok(())
}

/// Where each partition of the plan stands.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum State {
    Completed,
    InProgress,
    /// No reassignment, and the replicas are not the plan's.
    Differs,
    Unknown,
}

#[derive(Debug, Serialize)]
struct Verified {
    topic: String,
    partition: i32,
    state: State,
    replicas: Vec<i32>,
    target: Vec<i32>,
    adding_replicas: Vec<i32>,
    removing_replicas: Vec<i32>,
}

async fn check(admin: &Admin, plan: &Plan) -> anyhow::Result<Vec<Verified>> {
    let tps: Vec<TopicPartition> = plan.partitions.iter().map(tp).collect();
    let ongoing: BTreeMap<TopicPartition, strom_client::PartitionReassignment> = admin
        .list_partition_reassignments(Some(&tps))
        .await?
        .into_iter()
        .map(|r| (r.partition.clone(), r))
        .collect();
    let meta = admin.metadata().await?;
    Ok(plan
        .partitions
        .iter()
        .map(|p| {
            let current = meta
                .topics
                .get(&p.topic)
                .and_then(|t| t.partitions.iter().find(|i| i.partition == p.partition));
            let moving = ongoing.get(&tp(p));
            let state = match (moving, current) {
                (Some(_), _) => State::InProgress,
                (None, Some(c)) if c.replicas == p.replicas => State::Completed,
                (None, Some(_)) => State::Differs,
                (None, None) => State::Unknown,
            };
            Verified {
                topic: p.topic.clone(),
                partition: p.partition,
                state,
                replicas: moving
                    .map(|m| m.replicas.clone())
                    .or_else(|| current.map(|c| c.replicas.clone()))
                    .unwrap_or_default(),
                target: p.replicas.clone(),
                adding_replicas: moving
                    .map(|m| m.adding_replicas.clone())
                    .unwrap_or_default(),
                removing_replicas: moving
                    .map(|m| m.removing_replicas.clone())
                    .unwrap_or_default(),
            }
        })
        .collect())
}

/// Polls until no partition of the plan is still moving, with a bar of finished ones.
async fn wait_for(
    common: &Common,
    admin: &Admin,
    plan: &Plan,
    timeout: Duration,
) -> anyhow::Result<()> {
    let total = plan.partitions.len() as u64;
    let bar = if progress::wanted(common.quiet, common.json()) {
        Progress::items(true, Some(total), "partitions moved")
    } else {
        Progress::off()
    };
    let started = Instant::now();
    let mut last_note = Instant::now();
    loop {
        let states = check(admin, plan).await?;
        let moving: Vec<&Verified> = states
            .iter()
            .filter(|v| v.state == State::InProgress)
            .collect();
        bar.set_position(total - moving.len() as u64);
        if moving.is_empty() {
            bar.finish();
            return Ok(());
        }
        if let Some(first) = moving.first() {
            bar.set_note(format!(
                "{}-{} adding {:?}",
                first.topic, first.partition, first.adding_replicas
            ));
        }
        // Without a bar, a line every ten seconds says the command is alive.
        if !common.quiet && last_note.elapsed() >= Duration::from_secs(10) {
            bar.suspend(|| {
                eprintln!(
                    "strom: {} of {total} partition(s) still moving after {}s",
                    moving.len(),
                    started.elapsed().as_secs()
                )
            });
            last_note = Instant::now();
        }
        if started.elapsed() >= timeout {
            bail!(
                "{} partition(s) still moving after {}s (the reassignment goes on; check it with --verify)",
                moving.len(),
                timeout.as_secs()
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn verify_plan(
    common: &Common,
    admin: &Admin,
    plan: &Plan,
    wait: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    if wait {
        wait_for(common, admin, plan, timeout).await?;
    }
    let states = check(admin, plan).await?;
    if common.json() {
        output::print_json(&states)?;
    } else {
        let mut out = Out::new();
        out.line("Status of partition reassignment:")?;
        for v in &states {
            let line = match v.state {
                State::Completed => format!(
                    "Reassignment of partition {}-{} is completed.",
                    v.topic, v.partition
                ),
                State::InProgress => format!(
                    "Reassignment of partition {}-{} is still in progress (replicas {:?}, adding {:?}, removing {:?}).",
                    v.topic, v.partition, v.replicas, v.adding_replicas, v.removing_replicas
                ),
                State::Differs => format!(
                    "There is no active reassignment of partition {}-{}, but replica set is {:?} rather than {:?}.",
                    v.topic, v.partition, v.replicas, v.target
                ),
                State::Unknown => format!(
                    "Partition {}-{} does not exist.",
                    v.topic, v.partition
                ),
            };
            out.line(&line)?;
        }
        out.flush()?;
    }
    let unfinished = states
        .iter()
        .filter(|v| v.state != State::Completed)
        .count();
    if unfinished > 0 {
        bail!(
            "{unfinished} of {} partition(s) are not at their planned replicas",
            states.len()
        );
    }
    Ok(())
}

/// The replica lists of a plan that moves replicas off `excluded` brokers and brokers
/// outside `allowed`, onto allowed brokers. Each replaced replica keeps its position (so a
/// replaced preferred leader's successor becomes the preferred leader); its replacement is
/// the allowed broker not already a replica with the fewest replicas so far, preferring a
/// rack the partition does not use yet, then the lowest id. Deterministic.
fn plan_moves(
    partitions: &[(TopicPartition, Vec<i32>)],
    allowed: &BTreeMap<i32, Option<String>>,
    excluded: &BTreeSet<i32>,
) -> anyhow::Result<Vec<PlanPartition>> {
    let usable: Vec<i32> = allowed
        .keys()
        .copied()
        .filter(|b| !excluded.contains(b))
        .collect();
    if usable.is_empty() {
        bail!("no broker is left to move replicas onto");
    }
    let mut load: BTreeMap<i32, usize> = usable.iter().map(|b| (*b, 0)).collect();
    for (_, replicas) in partitions {
        for r in replicas {
            if let Some(n) = load.get_mut(r) {
                *n += 1;
            }
        }
    }
    let mut out = Vec::new();
    for (tp, replicas) in partitions {
        if replicas.iter().all(|r| load.contains_key(r)) {
            continue;
        }
        let mut target = replicas.clone();
        for slot in 0..target.len() {
            let Some(old) = target.get(slot).copied() else {
                continue;
            };
            if load.contains_key(&old) {
                continue;
            }
            let racks: BTreeSet<Option<String>> = target
                .iter()
                .filter(|r| load.contains_key(r))
                .map(|r| allowed.get(r).cloned().flatten())
                .collect();
            let choice = usable
                .iter()
                .copied()
                .filter(|b| !target.contains(b))
                .min_by_key(|b| {
                    let rack = allowed.get(b).cloned().flatten();
                    (racks.contains(&rack), load.get(b).copied().unwrap_or(0), *b)
                });
            let Some(new) = choice else {
                bail!(
                    "{tp} has {} replicas but only {} broker(s) are allowed",
                    replicas.len(),
                    usable.len()
                );
            };
            if let Some(entry) = target.get_mut(slot) {
                *entry = new;
            }
            *load.entry(new).or_default() += 1;
        }
        out.push(PlanPartition {
            topic: tp.topic.clone(),
            partition: tp.partition,
            replicas: target,
            log_dirs: None,
        });
    }
    Ok(out)
}

async fn generate_plan(common: &Common, admin: &Admin, how: Generate<'_>) -> anyhow::Result<()> {
    if how.broker_list.is_empty() && how.exclude.is_empty() {
        bail!("--generate needs --broker-list or --exclude-broker");
    }
    let mut listed = BTreeSet::new();
    if let Some(dup) = how.broker_list.iter().find(|b| !listed.insert(**b)) {
        bail!("Broker list contains duplicate entries: {dup}");
    }
    let mut named = BTreeSet::new();
    if let Some(dup) = how.topics.iter().find(|t| !named.insert(t.as_str())) {
        bail!("List of topics to reassign contains duplicate entries: {dup}");
    }
    let meta = admin.metadata().await?;
    for t in how.topics {
        if !meta.topics.contains_key(t) {
            bail!("topic {t} does not exist");
        }
    }
    let mut allowed: BTreeMap<i32, Option<String>> = meta
        .brokers
        .values()
        .map(|b| (b.id, b.rack.clone().filter(|_| how.rack_aware)))
        .collect();
    if !how.broker_list.is_empty() {
        for b in how.broker_list {
            if !allowed.contains_key(b) {
                bail!(
                    "broker {b} of --broker-list is not in the cluster's metadata (is it running?)"
                );
            }
        }
        allowed.retain(|b, _| how.broker_list.contains(b));
    }
    let excluded: BTreeSet<i32> = how.exclude.iter().copied().collect();
    let chosen: Vec<&TopicInfo> = meta
        .topics
        .values()
        .filter(|t| how.topics.is_empty() || how.topics.contains(&t.name))
        .collect();
    let (current, proposed) = if how.minimal_moves {
        let partitions: Vec<(TopicPartition, Vec<i32>)> = chosen
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        TopicPartition::new(t.name.clone(), p.partition),
                        p.replicas.clone(),
                    )
                })
            })
            .collect();
        let proposed = Plan {
            version: 1,
            partitions: plan_moves(&partitions, &allowed, &excluded)?,
        };
        let moved: Vec<TopicPartition> = proposed.partitions.iter().map(tp).collect();
        (current_plan(&meta, &moved), proposed)
    } else {
        allowed.retain(|b, _| !excluded.contains(b));
        if allowed.is_empty() {
            bail!("no broker is left to move replicas onto");
        }
        let brokers: Vec<(i32, Option<String>)> = allowed.into_iter().collect();
        let racked = brokers.iter().filter(|(_, r)| r.is_some()).count();
        if racked != 0 && racked != brokers.len() {
            bail!(
                "Not all brokers have rack information. Add --disable-rack-aware in command line \
                 to make replica assignment without rack information."
            );
        }
        kafka_assignment(&chosen, &brokers)?
    };
    if common.json() {
        return output::print_json(&proposed);
    }
    let mut out = Out::new();
    out.line(&format!(
        "Current partition replica assignment\n{}\n\nProposed partition reassignment configuration\n{}",
        plan_json(&current)?,
        plan_json(&proposed)?
    ))?;
    out.flush()
}

/// Kafka's `ReassignPartitionsCommand.calculateAssignment`: every partition of each topic
/// placed afresh over `brokers` with the replication factor of its first partition, by
/// the placement topic creation uses (`strom_meta::assign_replicas_to_brokers`, seeded
/// from the topic id as creation is, so an unchanged broker set proposes the placement the
/// topic was created with). Returns the current and proposed assignments, both with
/// Kafka's `"log_dirs":["any",..]`.
fn kafka_assignment(
    topics: &[&TopicInfo],
    brokers: &[(i32, Option<String>)],
) -> anyhow::Result<(Plan, Plan)> {
    let any = |replicas: &[i32]| Some(vec!["any".to_string(); replicas.len()]);
    let mut current = Vec::new();
    let mut proposed = Vec::new();
    for topic in topics {
        let mut partitions: Vec<&PartitionInfo> = topic.partitions.iter().collect();
        partitions.sort_by_key(|p| p.partition);
        let Some(first) = partitions.first() else {
            continue;
        };
        let count = partitions
            .iter()
            .map(|p| p.partition)
            .max()
            .map_or(0, |m| m.saturating_add(1));
        let bytes = topic.id.as_bytes();
        let seed = |range: std::ops::Range<usize>| {
            bytes.get(range).map_or(0, |b| {
                b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
            })
        };
        let placed = assign_replicas_to_brokers(
            brokers,
            0,
            count,
            first.replicas.len(),
            (seed(0..8), seed(8..16)),
        )
        .with_context(|| format!("cannot place the partitions of topic {}", topic.name))?;
        for p in partitions {
            let Some(replicas) = usize::try_from(p.partition)
                .ok()
                .and_then(|i| placed.get(i))
            else {
                continue;
            };
            current.push(PlanPartition {
                topic: topic.name.clone(),
                partition: p.partition,
                replicas: p.replicas.clone(),
                log_dirs: any(&p.replicas),
            });
            proposed.push(PlanPartition {
                topic: topic.name.clone(),
                partition: p.partition,
                replicas: replicas.clone(),
                log_dirs: any(replicas),
            });
        }
    }
    let plan = |partitions| Plan {
        version: 1,
        partitions,
    };
    Ok((plan(current), plan(proposed)))
}

async fn elect(
    common: &Common,
    admin: &Admin,
    kind: ElectionKind,
    topic: Option<String>,
    partition: Option<i32>,
    all: bool,
    file: Option<&Path>,
) -> anyhow::Result<()> {
    let partitions: Option<Vec<TopicPartition>> = if all {
        None
    } else if let Some(path) = file {
        let parsed: ElectionFile = read_json(path, "election file")?;
        Some(
            parsed
                .partitions
                .into_iter()
                .map(|p| TopicPartition::new(p.topic, p.partition))
                .collect(),
        )
    } else if let Some(topic) = topic {
        match partition {
            Some(p) => Some(vec![TopicPartition::new(topic, p)]),
            None => {
                let meta = admin.metadata().await?;
                let info = meta
                    .topics
                    .get(&topic)
                    .with_context(|| format!("topic {topic} does not exist"))?;
                Some(
                    info.partitions
                        .iter()
                        .map(|p| TopicPartition::new(topic.clone(), p.partition))
                        .collect(),
                )
            }
        }
    } else {
        bail!("name the partitions: --topic, --all-topic-partitions or --path-to-json-file");
    };
    let (election, name) = match kind {
        ElectionKind::Preferred => (ElectionType::Preferred, "PREFERRED"),
        ElectionKind::Unclean => (ElectionType::Unclean, "UNCLEAN"),
    };
    let results = admin.elect_leaders(election, partitions.as_deref()).await?;
    let not_needed = |e: &ClientError| matches!(e, ClientError::Broker { name, .. } if *name == "ELECTION_NOT_NEEDED");
    if !common.json() {
        let skipped: Vec<String> = results
            .iter()
            .filter(|(_, r)| r.as_ref().err().is_some_and(not_needed))
            .map(|(tp, _)| tp.to_string())
            .collect();
        if !skipped.is_empty() {
            let mut out = Out::new();
            out.line(&format!(
                "Valid replica already elected for partitions {}",
                skipped.join(", ")
            ))?;
            out.flush()?;
        }
    }
    let elected: Vec<(TopicPartition, strom_client::Result<()>)> = results
        .into_iter()
        .filter(|(_, r)| !r.as_ref().err().is_some_and(not_needed) || common.json())
        .collect();
    let failed = report_results(
        common,
        &elected,
        &format!("completed leader election ({name})"),
        not_needed,
    )?;
    if failed > 0 {
        bail!("{failed} leader election(s) failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition::new(t, p)
    }

    #[test]
    fn decommission_moves_only_replicas_of_the_excluded_broker_and_spreads_them() {
        let allowed: BTreeMap<i32, Option<String>> = [(1, None), (2, None), (3, None), (4, None)]
            .into_iter()
            .collect();
        let partitions = vec![
            (tp("t", 0), vec![1, 2, 3]),
            (tp("t", 1), vec![2, 3, 4]),
            (tp("t", 2), vec![3, 1, 2]),
            (tp("t", 3), vec![4, 1, 3]),
        ];
        let plan = plan_moves(&partitions, &allowed, &BTreeSet::from([1])).unwrap();
        let targets: Vec<(i32, Vec<i32>)> = plan
            .iter()
            .map(|p| (p.partition, p.replicas.clone()))
            .collect();
        assert_eq!(
            targets,
            vec![(0, vec![4, 2, 3]), (2, vec![3, 4, 2]), (3, vec![4, 2, 3])]
        );
    }

    #[test]
    fn racks_not_yet_used_come_first_and_too_few_brokers_is_an_error() {
        let allowed: BTreeMap<i32, Option<String>> = [
            (1, Some("a".into())),
            (2, Some("a".into())),
            (3, Some("b".into())),
            (4, Some("b".into())),
        ]
        .into_iter()
        .collect();
        let partitions = vec![(tp("t", 0), vec![1, 3])];
        let plan = plan_moves(&partitions, &allowed, &BTreeSet::from([1])).unwrap();
        assert_eq!(plan[0].replicas, vec![2, 3], "rack a is unused once 1 goes");
        let too_few = plan_moves(&partitions, &allowed, &BTreeSet::from([1, 2, 4]));
        assert!(too_few.is_err());
    }

    fn topic(name: &str, replicas: &[&[i32]]) -> TopicInfo {
        TopicInfo {
            name: name.to_string(),
            id: uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0fed_cba9_8765_4321),
            is_internal: false,
            partitions: replicas
                .iter()
                .enumerate()
                .map(|(i, r)| PartitionInfo {
                    partition: i as i32,
                    leader: r[0],
                    leader_epoch: 0,
                    replicas: r.to_vec(),
                    isr: r.to_vec(),
                    offline_replicas: Vec::new(),
                    error_code: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn generate_places_whole_topics_across_racks_with_kafka_log_dirs() {
        let brokers: Vec<(i32, Option<String>)> = (1..=6)
            .map(|b| (b, Some(format!("rack-{}", b % 3))))
            .collect();
        let t = topic("t", &[&[1, 2, 3][..]; 12]);
        let (current, proposed) = kafka_assignment(&[&t], &brokers).unwrap();
        assert_eq!(current.partitions.len(), 12);
        assert_eq!(proposed.partitions.len(), 12);
        let mut leaders = BTreeMap::new();
        for p in &proposed.partitions {
            assert_eq!(p.replicas.len(), 3, "{p:?}");
            let racks: BTreeSet<i32> = p.replicas.iter().map(|b| b % 3).collect();
            assert_eq!(racks.len(), 3, "one replica per rack: {p:?}");
            assert_eq!(p.log_dirs, Some(vec!["any".to_string(); 3]));
            *leaders.entry(p.replicas[0]).or_insert(0) += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2; 6]);
        // Racks fewer than the replication factor: every rack used, none twice before all are.
        let t4 = topic("t4", &[&[1, 2, 3, 4][..]; 6]);
        let (_, proposed) = kafka_assignment(&[&t4], &brokers).unwrap();
        for p in &proposed.partitions {
            let racks: BTreeSet<i32> = p.replicas[..3].iter().map(|b| b % 3).collect();
            assert_eq!(racks.len(), 3, "{p:?}");
        }
        // Too few brokers for the replication factor.
        assert!(kafka_assignment(&[&t4], &brokers[..3]).is_err());
    }

    #[test]
    fn kafka_plans_parse_and_print_back() {
        let text = r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[2,3,4],"log_dirs":["any","any","any"]}]}"#;
        let plan: Plan = serde_json::from_str(text).unwrap();
        assert_eq!(plan.partitions[0].replicas, vec![2, 3, 4]);
        assert_eq!(plan_json(&plan).unwrap(), text);
    }
}
