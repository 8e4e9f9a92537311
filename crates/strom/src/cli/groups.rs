//! `strom groups list|describe|delete|delete-offsets|reset-offsets`, after
//! kafka-consumer-groups.sh:
//! describe shows each partition's committed offset, log end, lag and owner; resets are
//! planned (dry run, the default) or committed (`--execute`) only while the group is empty.
//! `list` shows every group's type (as kafka-groups.sh); share groups are described and
//! reset as kafka-share-groups.sh does (`share_groups.rs`); `delete` and `delete-offsets`
//! delete either kind's.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use strom_client::{
    Admin, GroupDescription, MemberDescription, OffsetAndMetadata, OffsetSpec, TopicPartition,
};

use super::args::{Common, GroupsCommand};
use super::output::{self, or_dash, Table};
use super::parse::TopicPartitions;
use super::progress::{self, Progress};
use super::reset::{self, PartitionState, ResetTo};
use super::share_groups;

pub async fn run(common: &Common, command: GroupsCommand) -> anyhow::Result<()> {
    let admin = Admin::new(super::client_config(common)?)?;
    let result = dispatch(&admin, common, command).await;
    admin.close().await;
    result
}

async fn dispatch(admin: &Admin, common: &Common, command: GroupsCommand) -> anyhow::Result<()> {
    match command {
        GroupsCommand::List => list(admin, common).await,
        GroupsCommand::Describe {
            groups,
            all_groups,
            members,
            state,
        } => {
            let groups = if all_groups {
                admin
                    .list_groups()
                    .await?
                    .into_iter()
                    .map(|g| g.group_id)
                    .collect()
            } else {
                groups
            };
            let view = if members {
                View::Members
            } else if state {
                View::State
            } else {
                View::Offsets
            };
            describe(admin, common, &groups, view).await
        }
        GroupsCommand::Delete { groups } => {
            let results = admin.delete_groups(&groups).await?;
            output::report_items(common.json(), "group", results, "Deleted", "", "")
        }
        GroupsCommand::DeleteOffsets { group, topic } => {
            match share_groups::describe_if_share(admin, &group).await? {
                Some(_) => share_groups::delete_offsets(admin, common, &group, &topic).await,
                None => delete_offsets(admin, common, &group, &topic).await,
            }
        }
        GroupsCommand::ResetOffsets {
            group,
            topic,
            all_topics,
            to_earliest,
            to_latest,
            to_offset,
            to_datetime,
            shift_by,
            dry_run: _,
            execute,
        } => {
            let to = if to_earliest {
                ResetTo::Earliest
            } else if to_latest {
                ResetTo::Latest
            } else if let Some(offset) = to_offset {
                ResetTo::Offset(offset)
            } else if let Some(ms) = to_datetime {
                ResetTo::Datetime(ms)
            } else if let Some(shift) = shift_by {
                ResetTo::ShiftBy(shift)
            } else {
                // clap's required group makes this unreachable; say so plainly if not.
                anyhow::bail!("choose one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by");
            };
            let scope = if all_topics { None } else { Some(topic) };
            match share_groups::describe_if_share(admin, &group).await? {
                Some(share) => {
                    share_groups::reset_offsets(admin, common, &share, scope, to, execute).await
                }
                None => reset_offsets(admin, common, &group, scope, to, execute).await,
            }
        }
    }
}

/// `groups delete-offsets` of a consumer group: its committed offsets of the partitions
/// named (OffsetDelete; refused for topics the group subscribes to).
async fn delete_offsets(
    admin: &Admin,
    common: &Common,
    group: &str,
    topics: &[TopicPartitions],
) -> anyhow::Result<()> {
    let partitions = selected_partitions(admin, topics).await?;
    admin.delete_group_offsets(group, &partitions).await?;
    let results = partitions
        .iter()
        .map(|tp| (tp.to_string(), Ok(())))
        .collect();
    output::report_items(common.json(), "the offset of", results, "Deleted", "", "")
}

async fn list(admin: &Admin, common: &Common) -> anyhow::Result<()> {
    let groups = admin.list_groups().await?;
    if common.json() {
        let items: Vec<_> = groups
            .iter()
            .map(|g| {
                serde_json::json!({
                    "group": g.group_id,
                    "type": g.group_type,
                    "protocol_type": g.protocol_type,
                    "state": g.state,
                })
            })
            .collect();
        return output::print_json(&items);
    }
    let mut table = Table::new(&["GROUP", "TYPE", "STATE", "PROTOCOL-TYPE"]);
    for g in &groups {
        table.row(vec![
            g.group_id.clone(),
            or_dash(Some(g.group_type.clone()).filter(|s| !s.is_empty())),
            or_dash(Some(g.state.clone()).filter(|s| !s.is_empty())),
            or_dash(Some(g.protocol_type.clone()).filter(|s| !s.is_empty())),
        ]);
    }
    table.print()
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum View {
    Offsets,
    Members,
    State,
}

/// One row of `groups describe`, as kafka-consumer-groups.sh --describe prints it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
struct OffsetRow {
    group: String,
    topic: String,
    partition: i32,
    current_offset: Option<i64>,
    log_end_offset: Option<i64>,
    lag: Option<i64>,
    consumer_id: Option<String>,
    host: Option<String>,
    client_id: Option<String>,
}

/// Kafka's GROUP_ID_NOT_FOUND.
const GROUP_ID_NOT_FOUND: i16 = 69;

/// Kafka reports a group that does not exist as state Dead.
fn check_exists(description: &GroupDescription) -> anyhow::Result<()> {
    if description.state == "Dead" {
        anyhow::bail!(
            "consumer group '{}' does not exist (GROUP_ID_NOT_FOUND)",
            description.group_id
        );
    }
    Ok(())
}

async fn describe(
    admin: &Admin,
    common: &Common,
    groups: &[String],
    view: View,
) -> anyhow::Result<()> {
    let mut descriptions = Vec::with_capacity(groups.len());
    let mut shares = Vec::new();
    for group in groups {
        if let Some(share) = share_groups::describe_if_share(admin, group).await? {
            shares.push(share);
            continue;
        }
        // Not a classic group (Dead, or GROUP_ID_NOT_FOUND): a KIP-1071 streams group
        // answers StreamsGroupDescribe.
        let description = match admin.describe_group(group).await {
            Ok(d) if d.state != "Dead" => d,
            Ok(d) => admin.describe_streams_group(group).await?.unwrap_or(d),
            Err(strom_client::ClientError::Broker {
                code: GROUP_ID_NOT_FOUND,
                ..
            }) => match admin.describe_streams_group(group).await? {
                Some(d) => d,
                None => {
                    anyhow::bail!("consumer group '{group}' does not exist (GROUP_ID_NOT_FOUND)")
                }
            },
            Err(e) => return Err(e.into()),
        };
        check_exists(&description)?;
        descriptions.push(description);
    }
    if !shares.is_empty() {
        share_groups::describe(admin, common, &shares, view).await?;
        if descriptions.is_empty() {
            return Ok(());
        }
    }
    match view {
        View::Offsets => {
            let mut rows = Vec::new();
            for d in &descriptions {
                rows.push(offset_rows(admin, d).await?);
            }
            print_offsets(common, &descriptions, &rows)
        }
        View::Members => print_members(common, &descriptions),
        View::State => print_state(common, &descriptions),
    }
}

async fn offset_rows(admin: &Admin, d: &GroupDescription) -> anyhow::Result<Vec<OffsetRow>> {
    let committed = admin.list_group_offsets(&d.group_id).await?;
    let owners: BTreeMap<&TopicPartition, &MemberDescription> = d
        .members
        .iter()
        .flat_map(|m| m.assignment.iter().map(move |tp| (tp, m)))
        .collect();
    let partitions: BTreeSet<TopicPartition> = committed
        .keys()
        .cloned()
        .chain(owners.keys().map(|tp| (*tp).clone()))
        .collect();
    let partitions: Vec<TopicPartition> = partitions.into_iter().collect();
    let ends = if partitions.is_empty() {
        BTreeMap::new()
    } else {
        admin.list_offsets(&partitions, OffsetSpec::Latest).await?
    };
    Ok(partitions
        .iter()
        .map(|tp| {
            let current = committed.get(tp).map(|o| o.offset).filter(|o| *o >= 0);
            let end = ends.get(tp).map(|o| o.offset);
            let owner = owners.get(tp);
            OffsetRow {
                group: d.group_id.clone(),
                topic: tp.topic.clone(),
                partition: tp.partition,
                current_offset: current,
                log_end_offset: end,
                lag: reset::lag(current, end),
                consumer_id: owner.map(|m| m.member_id.clone()),
                host: owner.map(|m| m.client_host.clone()),
                client_id: owner.map(|m| m.client_id.clone()),
            }
        })
        .collect())
}

fn print_offsets(
    common: &Common,
    descriptions: &[GroupDescription],
    rows: &[Vec<OffsetRow>],
) -> anyhow::Result<()> {
    if common.json() {
        let all: Vec<&OffsetRow> = rows.iter().flatten().collect();
        return output::print_json(&all);
    }
    let mut text = String::new();
    for (i, (d, rows)) in descriptions.iter().zip(rows).enumerate() {
        if i > 0 {
            text.push('\n');
        }
        if d.members.is_empty() {
            text.push_str(&format!(
                "Consumer group '{}' has no active members.\n",
                d.group_id
            ));
        }
        text.push_str(&offsets_table(rows).render());
    }
    let mut out = output::Out::new();
    out.bytes(text.as_bytes())?;
    out.flush()
}

fn offsets_table(rows: &[OffsetRow]) -> Table {
    let mut table = Table::new(&[
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for row in rows {
        table.row(vec![
            row.group.clone(),
            row.topic.clone(),
            row.partition.to_string(),
            or_dash(row.current_offset),
            or_dash(row.log_end_offset),
            or_dash(row.lag),
            or_dash(row.consumer_id.clone()),
            or_dash(row.host.clone()),
            or_dash(row.client_id.clone()),
        ]);
    }
    table
}

fn print_members(common: &Common, descriptions: &[GroupDescription]) -> anyhow::Result<()> {
    if common.json() {
        let items: Vec<_> = descriptions
            .iter()
            .flat_map(|d| {
                d.members.iter().map(|m| {
                    serde_json::json!({
                        "group": d.group_id,
                        "consumer_id": m.member_id,
                        "group_instance_id": m.group_instance_id,
                        "host": m.client_host,
                        "client_id": m.client_id,
                        "assignment": m.assignment.iter()
                            .map(|tp| serde_json::json!({"topic": tp.topic, "partition": tp.partition}))
                            .collect::<Vec<_>>(),
                    })
                })
            })
            .collect();
        return output::print_json(&items);
    }
    let mut table = Table::new(&["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]);
    for d in descriptions {
        for m in &d.members {
            table.row(vec![
                d.group_id.clone(),
                m.member_id.clone(),
                m.client_host.clone(),
                m.client_id.clone(),
                m.assignment.len().to_string(),
            ]);
        }
    }
    table.print()
}

fn print_state(common: &Common, descriptions: &[GroupDescription]) -> anyhow::Result<()> {
    if common.json() {
        let items: Vec<_> = descriptions
            .iter()
            .map(|d| {
                serde_json::json!({
                    "group": d.group_id,
                    "coordinator": d.coordinator,
                    "assignment_strategy": d.protocol,
                    "protocol_type": d.protocol_type,
                    "state": d.state,
                    "members": d.members.len(),
                })
            })
            .collect();
        return output::print_json(&items);
    }
    let mut table = Table::new(&[
        "GROUP",
        "COORDINATOR (ID)",
        "ASSIGNMENT-STRATEGY",
        "STATE",
        "#MEMBERS",
    ]);
    for d in descriptions {
        table.row(vec![
            d.group_id.clone(),
            d.coordinator.to_string(),
            or_dash(Some(d.protocol.clone()).filter(|p| !p.is_empty())),
            d.state.clone(),
            d.members.len().to_string(),
        ]);
    }
    table.print()
}

#[derive(Debug, Serialize)]
struct ResetPlan<'a> {
    group: Option<&'a str>,
    executed: bool,
    offsets: &'a [ResetRow],
}

/// One partition's planned reset.
#[derive(Debug, Serialize)]
pub(super) struct ResetRow {
    group: String,
    pub topic: String,
    pub partition: i32,
    previous_offset: Option<i64>,
    pub new_offset: i64,
}

async fn reset_offsets(
    admin: &Admin,
    common: &Common,
    group: &str,
    scope: Option<Vec<TopicPartitions>>,
    to: ResetTo,
    execute: bool,
) -> anyhow::Result<()> {
    // Like Kafka, a group that does not exist yet may get offsets: committing creates it.
    let state = match admin.describe_group(group).await {
        Ok(description) => description.state,
        Err(e) if e.kafka_name() == Some("GROUP_ID_NOT_FOUND") => "Dead".to_string(),
        Err(e) => return Err(e.into()),
    };
    if !matches!(state.as_str(), "Empty" | "Dead") {
        anyhow::bail!(
            "assignments can only be reset if the group '{group}' is inactive, but the current state is {state}"
        );
    }
    let committed = admin.list_group_offsets(group).await?;
    let partitions = match scope {
        Some(topics) => selected_partitions(admin, &topics).await?,
        None => committed.keys().cloned().collect(),
    };
    if partitions.is_empty() {
        anyhow::bail!(
            "group '{group}' has no committed offsets to reset; name topics with --topic"
        );
    }
    let rows = plan_reset(admin, common, group, &partitions, &committed, to).await?;
    if execute {
        let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = rows
            .iter()
            .map(|r| {
                (
                    TopicPartition::new(r.topic.clone(), r.partition),
                    OffsetAndMetadata::new(r.new_offset),
                )
            })
            .collect();
        admin.alter_group_offsets(group, &offsets).await?;
    }
    print_reset(common, execute, &rows)
}

/// The new offset of each partition (`current`: the committed offsets, or a share group's
/// start offsets).
pub(super) async fn plan_reset(
    admin: &Admin,
    common: &Common,
    group: &str,
    partitions: &[TopicPartition],
    current: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    to: ResetTo,
) -> anyhow::Result<Vec<ResetRow>> {
    let show = progress::wanted(common.quiet, common.json());
    let progress = Progress::items(show, Some(partitions.len() as u64), "planning");
    let states = partition_states(admin, partitions, current, to, &progress).await?;
    progress.finish();
    let mut rows = Vec::with_capacity(partitions.len());
    for (tp, state) in &states {
        let new_offset = reset::new_offset(to, state).map_err(|e| anyhow::anyhow!("{tp}: {e}"))?;
        rows.push(ResetRow {
            group: group.to_string(),
            topic: tp.topic.clone(),
            partition: tp.partition,
            previous_offset: state.committed,
            new_offset,
        });
    }
    Ok(rows)
}

pub(super) fn print_reset(common: &Common, execute: bool, rows: &[ResetRow]) -> anyhow::Result<()> {
    if common.json() {
        return output::print_json(&ResetPlan {
            group: rows.first().map(|r| r.group.as_str()),
            executed: execute,
            offsets: rows,
        });
    }
    let mut table = Table::new(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]);
    for r in rows {
        table.row(vec![
            r.group.clone(),
            r.topic.clone(),
            r.partition.to_string(),
            r.new_offset.to_string(),
        ]);
    }
    table.print()?;
    if !execute && !common.quiet {
        eprintln!("Dry run: nothing was committed; add --execute to commit these offsets.");
    }
    Ok(())
}

/// The partitions named by `--topic T` / `--topic T:0,1`, each checked to exist.
pub(super) async fn selected_partitions(
    admin: &Admin,
    topics: &[TopicPartitions],
) -> anyhow::Result<Vec<TopicPartition>> {
    let mut out = BTreeSet::new();
    for selection in topics {
        let all = admin.partitions_of(&selection.topic).await?;
        if selection.partitions.is_empty() {
            out.extend(all);
            continue;
        }
        for &p in &selection.partitions {
            let tp = TopicPartition::new(selection.topic.clone(), p);
            if !all.contains(&tp) {
                anyhow::bail!(
                    "topic {} has no partition {p} (it has {})",
                    selection.topic,
                    all.len()
                );
            }
            out.insert(tp);
        }
    }
    Ok(out.into_iter().collect())
}

/// Log range (and, for `--to-datetime`, the offset at that time) of every partition,
/// asked topic by topic so the progress bar moves.
async fn partition_states(
    admin: &Admin,
    partitions: &[TopicPartition],
    committed: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    to: ResetTo,
    progress: &Progress,
) -> anyhow::Result<BTreeMap<TopicPartition, PartitionState>> {
    let mut by_topic: BTreeMap<&str, Vec<TopicPartition>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.clone());
    }
    let mut states = BTreeMap::new();
    for chunk in by_topic.values() {
        let earliest = admin.list_offsets(chunk, OffsetSpec::Earliest).await?;
        let latest = admin.list_offsets(chunk, OffsetSpec::Latest).await?;
        let at_time = match to {
            ResetTo::Datetime(ms) => {
                Some(admin.list_offsets(chunk, OffsetSpec::Timestamp(ms)).await?)
            }
            _ => None,
        };
        for tp in chunk {
            let state = PartitionState {
                committed: committed.get(tp).map(|o| o.offset).filter(|o| *o >= 0),
                earliest: earliest.get(tp).map_or(0, |o| o.offset),
                latest: latest.get(tp).map_or(0, |o| o.offset),
                at_time: at_time
                    .as_ref()
                    .and_then(|m| m.get(tp))
                    .map(|o| o.offset)
                    .filter(|o| *o >= 0),
            };
            states.insert(tp.clone(), state);
        }
        progress.inc(chunk.len() as u64);
    }
    Ok(states)
}
