//! The share group side of `strom groups` (as kafka-share-groups.sh): `describe` prints,
//! per partition with share state or assigned, the share-partition start offset and the
//! lag (the log end offset minus the start offset: an upper bound, since records past the
//! start offset that were already acknowledged still count; Kafka 4.2's coordinator
//! subtracts them), `--members` and `--state` as for consumer groups; `reset-offsets` plans
//! or sets the share-partition start offsets while the group has no members.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use strom_client::{
    Admin, ClientError, OffsetAndMetadata, OffsetSpec, ShareGroupDescription, TopicPartition,
};

use super::args::Common;
use super::groups::{self, View};
use super::output::{self, or_dash, Table};
use super::parse::TopicPartitions;
use super::reset::{self, ResetTo};

/// The group's share group description, or `None` when no share group has that id (it
/// may be a consumer group, or no group).
pub async fn describe_if_share(
    admin: &Admin,
    group: &str,
) -> anyhow::Result<Option<ShareGroupDescription>> {
    match admin.describe_share_group(group).await {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kafka_name() == Some("GROUP_ID_NOT_FOUND") => Ok(None),
        // A broker without share groups has none to describe.
        Err(ClientError::UnsupportedApi { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `groups delete-offsets` of a share group (kafka-share-groups.sh --delete-offsets): the
/// group's share state of whole topics, deleted; refused while the group has members.
pub async fn delete_offsets(
    admin: &Admin,
    common: &Common,
    group: &str,
    topics: &[TopicPartitions],
) -> anyhow::Result<()> {
    if let Some(t) = topics.iter().find(|t| !t.partitions.is_empty()) {
        anyhow::bail!(
            "a share group's offsets are deleted for whole topics (as kafka-share-groups.sh does): name --topic {} without partitions",
            t.topic
        );
    }
    let names: Vec<String> = topics.iter().map(|t| t.topic.clone()).collect();
    let results = admin.delete_share_group_offsets(group, &names).await?;
    output::report_items(
        common.json(),
        "the share state of",
        results,
        "Deleted",
        "",
        "",
    )
}

/// One row of a share group's `describe`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
struct ShareOffsetRow {
    group: String,
    topic: String,
    partition: i32,
    leader_epoch: Option<i32>,
    start_offset: Option<i64>,
    log_end_offset: Option<i64>,
    lag: Option<i64>,
}

pub async fn describe(
    admin: &Admin,
    common: &Common,
    descriptions: &[ShareGroupDescription],
    view: View,
) -> anyhow::Result<()> {
    match view {
        View::Offsets => {
            let mut rows = Vec::new();
            for d in descriptions {
                rows.push(offset_rows(admin, d).await?);
            }
            print_offsets(common, descriptions, &rows)
        }
        View::Members => print_members(common, descriptions),
        View::State => print_state(common, descriptions),
    }
}

async fn offset_rows(
    admin: &Admin,
    d: &ShareGroupDescription,
) -> anyhow::Result<Vec<ShareOffsetRow>> {
    let state = admin.list_share_group_offsets(&d.group_id).await?;
    let partitions: BTreeSet<TopicPartition> = state
        .keys()
        .cloned()
        .chain(d.members.iter().flat_map(|m| m.assignment.iter().cloned()))
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
            let s = state.get(tp).filter(|s| s.start_offset >= 0);
            let start = s.map(|s| s.start_offset);
            let end = ends.get(tp).map(|o| o.offset);
            ShareOffsetRow {
                group: d.group_id.clone(),
                topic: tp.topic.clone(),
                partition: tp.partition,
                leader_epoch: s.map(|s| s.leader_epoch).filter(|e| *e >= 0),
                start_offset: start,
                log_end_offset: end,
                lag: reset::lag(start, end),
            }
        })
        .collect())
}

fn print_offsets(
    common: &Common,
    descriptions: &[ShareGroupDescription],
    rows: &[Vec<ShareOffsetRow>],
) -> anyhow::Result<()> {
    if common.json() {
        let all: Vec<&ShareOffsetRow> = rows.iter().flatten().collect();
        return output::print_json(&all);
    }
    let mut text = String::new();
    for (i, (d, rows)) in descriptions.iter().zip(rows).enumerate() {
        if i > 0 {
            text.push('\n');
        }
        if d.members.is_empty() {
            text.push_str(&format!(
                "Share group '{}' has no active members.\n",
                d.group_id
            ));
        }
        let mut table = Table::new(&[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "LEADER-EPOCH",
            "START-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
        ]);
        for row in rows {
            table.row(vec![
                row.group.clone(),
                row.topic.clone(),
                row.partition.to_string(),
                or_dash(row.leader_epoch),
                or_dash(row.start_offset),
                or_dash(row.log_end_offset),
                or_dash(row.lag),
            ]);
        }
        text.push_str(&table.render());
    }
    let mut out = output::Out::new();
    out.bytes(text.as_bytes())?;
    out.flush()
}

fn print_members(common: &Common, descriptions: &[ShareGroupDescription]) -> anyhow::Result<()> {
    let assignment = |tps: &[TopicPartition]| -> String {
        tps.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    if common.json() {
        let items: Vec<_> = descriptions
            .iter()
            .flat_map(|d| {
                d.members.iter().map(|m| {
                    serde_json::json!({
                        "group": d.group_id,
                        "consumer_id": m.member_id,
                        "member_epoch": m.member_epoch,
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
    let mut table = Table::new(&[
        "GROUP",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
        "#PARTITIONS",
        "ASSIGNMENT",
    ]);
    for d in descriptions {
        for m in &d.members {
            table.row(vec![
                d.group_id.clone(),
                m.member_id.clone(),
                m.client_host.clone(),
                m.client_id.clone(),
                m.assignment.len().to_string(),
                or_dash(Some(assignment(&m.assignment)).filter(|a| !a.is_empty())),
            ]);
        }
    }
    table.print()
}

fn print_state(common: &Common, descriptions: &[ShareGroupDescription]) -> anyhow::Result<()> {
    if common.json() {
        let items: Vec<_> = descriptions
            .iter()
            .map(|d| {
                serde_json::json!({
                    "group": d.group_id,
                    "type": "Share",
                    "coordinator": d.coordinator,
                    "assignor": d.assignor,
                    "state": d.state,
                    "group_epoch": d.group_epoch,
                    "assignment_epoch": d.assignment_epoch,
                    "members": d.members.len(),
                })
            })
            .collect();
        return output::print_json(&items);
    }
    let mut table = Table::new(&[
        "GROUP",
        "COORDINATOR (ID)",
        "STATE",
        "GROUP-EPOCH",
        "ASSIGNMENT-EPOCH",
        "#MEMBERS",
    ]);
    for d in descriptions {
        table.row(vec![
            d.group_id.clone(),
            d.coordinator.to_string(),
            d.state.clone(),
            d.group_epoch.to_string(),
            d.assignment_epoch.to_string(),
            d.members.len().to_string(),
        ]);
    }
    table.print()
}

/// `groups reset-offsets` of a share group: new share-partition start offsets, planned or
/// (`--execute`) set with AlterShareGroupOffsets. `--shift-by` moves the start offset.
pub async fn reset_offsets(
    admin: &Admin,
    common: &Common,
    description: &ShareGroupDescription,
    scope: Option<Vec<TopicPartitions>>,
    to: ResetTo,
    execute: bool,
) -> anyhow::Result<()> {
    let group = description.group_id.as_str();
    if !description.members.is_empty() {
        anyhow::bail!(
            "share group '{group}' is not empty ({} members, state {}): offsets can only be reset while it has no members",
            description.members.len(),
            description.state
        );
    }
    let state = admin.list_share_group_offsets(group).await?;
    // The start offset plays the part of a consumer group's committed offset.
    let current: BTreeMap<TopicPartition, OffsetAndMetadata> = state
        .iter()
        .filter(|(_, s)| s.start_offset >= 0)
        .map(|(tp, s)| (tp.clone(), OffsetAndMetadata::new(s.start_offset)))
        .collect();
    let partitions = match scope {
        Some(topics) => groups::selected_partitions(admin, &topics).await?,
        None => state.keys().cloned().collect(),
    };
    if partitions.is_empty() {
        anyhow::bail!(
            "share group '{group}' has no share state to reset; name topics with --topic"
        );
    }
    let rows = groups::plan_reset(admin, common, group, &partitions, &current, to).await?;
    if execute {
        let offsets: BTreeMap<TopicPartition, i64> = rows
            .iter()
            .map(|r| {
                (
                    TopicPartition::new(r.topic.clone(), r.partition),
                    r.new_offset,
                )
            })
            .collect();
        for (tp, result) in admin.alter_share_group_offsets(group, &offsets).await? {
            result.map_err(|e| anyhow::anyhow!("cannot reset the start offset of {tp}: {e}"))?;
        }
    }
    groups::print_reset(common, execute, &rows)
}
