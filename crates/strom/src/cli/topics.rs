//! `strom topics create|list|describe|alter|delete`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use serde::Serialize;
use strom_client::{Admin, AlterConfigOp, ConfigResource, NewTopic, TopicInfo, TopicPartition};

use super::args::{Common, TopicsCommand};
use super::output::{self, Table};

/// One topic as `list` and `describe` print it.
#[derive(Debug, Serialize)]
struct TopicView {
    name: String,
    topic_id: String,
    internal: bool,
    partition_count: usize,
    replication_factor: usize,
    /// Configs set on the topic (not defaults); `describe` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    configs: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    partitions: Vec<PartitionView>,
}

#[derive(Debug, Serialize)]
struct PartitionView {
    partition: i32,
    /// -1 when the partition has no leader.
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    /// Replicas on brokers that are not live (Metadata v5+'s `offline_replicas`).
    offline_replicas: Vec<i32>,
    /// An ongoing reassignment's replicas being added and removed (ListPartitionReassignments,
    /// as kafka-topics.sh shows them); left out when none is in progress.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    adding_replicas: Vec<i32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    removing_replicas: Vec<i32>,
}

/// `--under-replicated-partitions` / `--unavailable-partitions`: which partitions to show
/// (kafka-topics.sh's report options; with one set, only matching partitions are shown
/// and topic summaries are left out).
#[derive(Debug, Default, Clone, Copy)]
struct Report {
    under_replicated: bool,
    unavailable: bool,
}

impl Report {
    fn any(self) -> bool {
        self.under_replicated || self.unavailable
    }

    /// Kafka's `isUnderReplicated` and `hasUnavailablePartitions`.
    fn shows(self, p: &PartitionView, live: &BTreeSet<i32>) -> bool {
        (self.under_replicated && p.isr.len() < p.replicas.len())
            || (self.unavailable && (p.leader < 0 || !live.contains(&p.leader)))
    }
}

impl TopicView {
    fn new(info: &TopicInfo, with_partitions: bool) -> TopicView {
        TopicView {
            name: info.name.clone(),
            topic_id: kafka_uuid(&info.id),
            internal: info.is_internal,
            partition_count: info.partitions.len(),
            replication_factor: info
                .partitions
                .iter()
                .map(|p| p.replicas.len())
                .max()
                .unwrap_or(0),
            configs: None,
            partitions: if with_partitions {
                info.partitions
                    .iter()
                    .map(|p| PartitionView {
                        partition: p.partition,
                        leader: p.leader,
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                        offline_replicas: p.offline_replicas.clone(),
                        adding_replicas: Vec::new(),
                        removing_replicas: Vec::new(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

pub async fn run(common: &Common, command: TopicsCommand) -> anyhow::Result<()> {
    let admin = Admin::new(super::client_config(common)?)?;
    let result = match command {
        TopicsCommand::Create {
            topics,
            partitions,
            replication_factor,
            config,
            if_not_exists,
            validate_only,
        } => {
            let request = CreateRequest {
                partitions,
                replication_factor,
                configs: config,
                if_not_exists,
                validate_only,
            };
            create(&admin, common, &topics, &request).await
        }
        TopicsCommand::List { exclude_internal } => list(&admin, common, exclude_internal).await,
        TopicsCommand::Describe {
            topics,
            exclude_internal,
            under_replicated,
            unavailable,
        } => {
            let report = Report {
                under_replicated,
                unavailable,
            };
            describe(&admin, common, &topics, exclude_internal, report).await
        }
        TopicsCommand::Alter {
            topic,
            partitions,
            config,
            delete_config,
        } => alter(&admin, common, &topic, partitions, &config, &delete_config).await,
        TopicsCommand::Delete { topics, if_exists } => {
            delete(&admin, common, &topics, if_exists).await
        }
    };
    admin.close().await;
    result
}

struct CreateRequest {
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    configs: Vec<(String, String)>,
    if_not_exists: bool,
    validate_only: bool,
}

fn sorted_topics(mut infos: Vec<TopicInfo>, exclude_internal: bool) -> Vec<TopicInfo> {
    infos.retain(|t| !(exclude_internal && t.is_internal));
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    infos
}

fn render_list(views: &[TopicView]) -> Table {
    let mut table = Table::new(&["TOPIC", "PARTITIONS", "REPLICATION-FACTOR", "TOPIC-ID"]);
    for view in views {
        table.row(vec![
            view.name.clone(),
            view.partition_count.to_string(),
            view.replication_factor.to_string(),
            view.topic_id.clone(),
        ]);
    }
    table
}

/// Kafka's describe layout: a summary line per topic, then its partitions as a table.
fn render_describe(views: &[TopicView]) -> String {
    let mut text = String::new();
    for (i, view) in views.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        let configs = view
            .configs
            .as_ref()
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        text.push_str(&format!(
            "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}\n",
            view.name, view.topic_id, view.partition_count, view.replication_factor, configs
        ));
        // The reassignment columns only while some partition is moving.
        let moving = view
            .partitions
            .iter()
            .any(|p| !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty());
        let mut headers = vec!["PARTITION", "LEADER", "REPLICAS", "ISR", "OFFLINE"];
        if moving {
            headers.extend(["ADDING", "REMOVING"]);
        }
        let mut table = Table::new(&headers);
        for p in &view.partitions {
            let mut row = partition_row(p);
            if moving {
                row.extend([join_ids(&p.adding_replicas), join_ids(&p.removing_replicas)]);
            }
            table.row(row);
        }
        text.push_str(&table.render());
    }
    text
}

/// Only the partitions a report option picked, one table across topics (kafka-topics.sh
/// prints the topic on each partition line then, and no summaries).
fn render_report(views: &[TopicView]) -> String {
    let mut table = Table::new(&["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "OFFLINE"]);
    for view in views {
        for p in &view.partitions {
            let mut row = vec![view.name.clone()];
            row.extend(partition_row(p));
            table.row(row);
        }
    }
    table.render()
}

fn partition_row(p: &PartitionView) -> Vec<String> {
    vec![
        p.partition.to_string(),
        if p.leader < 0 {
            "none".to_string()
        } else {
            p.leader.to_string()
        },
        join_ids(&p.replicas),
        join_ids(&p.isr),
        join_ids(&p.offline_replicas),
    ]
}

/// A topic id as Kafka prints it: URL-safe base64 without padding.
fn kafka_uuid(id: &uuid::Uuid) -> String {
    super::format::base64(id.as_bytes())
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

async fn create(
    admin: &Admin,
    common: &Common,
    topics: &[String],
    request: &CreateRequest,
) -> anyhow::Result<()> {
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|name| {
            let mut topic = NewTopic::new(
                name.clone(),
                request.partitions.unwrap_or(-1),
                request.replication_factor.unwrap_or(-1),
            );
            topic.configs = request.configs.clone();
            topic
        })
        .collect();
    let results = admin
        .create_topics(&new_topics, request.validate_only)
        .await?;
    let done = if request.validate_only {
        "Validated"
    } else {
        "Created"
    };
    let ignore = if request.if_not_exists {
        "TOPIC_ALREADY_EXISTS"
    } else {
        ""
    };
    output::report_items(
        common.json(),
        "topic",
        results,
        done,
        ignore,
        "Kept existing",
    )
}

async fn list(admin: &Admin, common: &Common, exclude_internal: bool) -> anyhow::Result<()> {
    let infos = sorted_topics(admin.describe_topics(&[]).await?, exclude_internal);
    let views: Vec<TopicView> = infos.iter().map(|t| TopicView::new(t, false)).collect();
    if common.json() {
        output::print_json(&views)
    } else {
        render_list(&views).print()
    }
}

async fn describe(
    admin: &Admin,
    common: &Common,
    topics: &[String],
    exclude_internal: bool,
    report: Report,
) -> anyhow::Result<()> {
    let infos = sorted_topics(admin.describe_topics(topics).await?, exclude_internal);
    if report.any() {
        // Kafka's live brokers: those DescribeCluster lists (unfenced).
        let live: BTreeSet<i32> = admin
            .describe_cluster()
            .await?
            .brokers
            .iter()
            .map(|b| b.id)
            .collect();
        let views: Vec<TopicView> = infos
            .iter()
            .map(|info| {
                let mut view = TopicView::new(info, true);
                view.partitions.retain(|p| report.shows(p, &live));
                view
            })
            .filter(|view| !view.partitions.is_empty())
            .collect();
        return if common.json() {
            output::print_json(&views)
        } else {
            let mut out = output::Out::new();
            out.bytes(render_report(&views).as_bytes())?;
            out.flush()
        };
    }
    // Best effort, as kafka-topics.sh: a broker without ListPartitionReassignments (before
    // Kafka 2.4) just shows no reassignments.
    let names: Vec<TopicPartition> = infos
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(t.name.clone(), p.partition))
        })
        .collect();
    let moving: BTreeMap<TopicPartition, (Vec<i32>, Vec<i32>)> = admin
        .list_partition_reassignments(Some(&names))
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.partition, (r.adding_replicas, r.removing_replicas)))
        .collect();
    let mut views = Vec::with_capacity(infos.len());
    for info in &infos {
        let mut view = TopicView::new(info, true);
        for p in &mut view.partitions {
            if let Some((adding, removing)) =
                moving.get(&TopicPartition::new(info.name.clone(), p.partition))
            {
                p.adding_replicas = adding.clone();
                p.removing_replicas = removing.clone();
            }
        }
        let entries = admin
            .describe_configs(&ConfigResource::Topic(info.name.clone()))
            .await
            .with_context(|| format!("cannot read the configs of topic {}", info.name))?;
        view.configs = Some(
            entries
                .into_iter()
                .filter(|e| !e.is_default())
                .map(|e| (e.name, e.value.unwrap_or_default()))
                .collect(),
        );
        views.push(view);
    }
    if common.json() {
        output::print_json(&views)
    } else {
        let mut out = output::Out::new();
        out.bytes(render_describe(&views).as_bytes())?;
        out.flush()
    }
}

async fn alter(
    admin: &Admin,
    common: &Common,
    topic: &str,
    partitions: Option<i32>,
    set: &[(String, String)],
    delete: &[String],
) -> anyhow::Result<()> {
    if let Some(total) = partitions {
        admin.create_partitions(topic, total).await?;
    }
    let ops: Vec<AlterConfigOp> = set
        .iter()
        .map(|(k, v)| AlterConfigOp::Set(k.clone(), v.clone()))
        .chain(delete.iter().map(|k| AlterConfigOp::Delete(k.clone())))
        .collect();
    if !ops.is_empty() {
        admin
            .alter_configs(&ConfigResource::Topic(topic.to_string()), &ops)
            .await?;
    }
    if common.json() {
        output::print_json(&serde_json::json!({
            "topic": topic,
            "partitions": partitions,
            "set": set.iter().cloned().collect::<BTreeMap<_, _>>(),
            "deleted": delete,
        }))
    } else {
        output::print_line(&format!("Altered topic {topic}."))
    }
}

async fn delete(
    admin: &Admin,
    common: &Common,
    topics: &[String],
    if_exists: bool,
) -> anyhow::Result<()> {
    let results = admin.delete_topics(topics).await?;
    let ignore = if if_exists {
        "UNKNOWN_TOPIC_OR_PARTITION"
    } else {
        ""
    };
    output::report_items(
        common.json(),
        "topic",
        results,
        "Deleted",
        ignore,
        "No such",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ids_print_like_kafka() {
        assert_eq!(kafka_uuid(&uuid::Uuid::nil()), "AAAAAAAAAAAAAAAAAAAAAA");
        let id = uuid::Uuid::from_bytes([0xfb; 16]);
        assert_eq!(kafka_uuid(&id), "-_v7-_v7-_v7-_v7-_v7-w");
    }

    #[test]
    fn describe_prints_a_summary_line_and_a_partition_table() {
        let view = TopicView {
            name: "t".into(),
            topic_id: "id".into(),
            internal: false,
            partition_count: 2,
            replication_factor: 1,
            configs: Some(BTreeMap::from([(
                "retention.ms".to_string(),
                "1".to_string(),
            )])),
            partitions: vec![
                PartitionView {
                    partition: 0,
                    leader: 1,
                    replicas: vec![1, 2],
                    isr: vec![1],
                    offline_replicas: vec![2],
                    adding_replicas: Vec::new(),
                    removing_replicas: Vec::new(),
                },
                PartitionView {
                    partition: 1,
                    leader: -1,
                    replicas: vec![2],
                    isr: vec![2],
                    offline_replicas: vec![2],
                    adding_replicas: Vec::new(),
                    removing_replicas: Vec::new(),
                },
            ],
        };
        assert_eq!(
            render_describe(std::slice::from_ref(&view)),
            "Topic: t\tTopicId: id\tPartitionCount: 2\tReplicationFactor: 1\tConfigs: retention.ms=1\n\
             PARTITION  LEADER  REPLICAS  ISR  OFFLINE\n\
             0          1       1,2       1    2\n\
             1          none    2         2    2\n"
        );
        let live = BTreeSet::from([1]);
        let under = Report {
            under_replicated: true,
            unavailable: false,
        };
        let unavailable = Report {
            under_replicated: false,
            unavailable: true,
        };
        let picked = |report: Report| -> Vec<i32> {
            view.partitions
                .iter()
                .filter(|p| report.shows(p, &live))
                .map(|p| p.partition)
                .collect()
        };
        assert_eq!(picked(under), vec![0]);
        assert_eq!(picked(unavailable), vec![1]);
        assert_eq!(picked(Report::default()), Vec::<i32>::new());
    }

    #[test]
    fn a_moving_partition_shows_adding_and_removing_replicas() {
        let view = TopicView {
            name: "t".into(),
            topic_id: "id".into(),
            internal: false,
            partition_count: 1,
            replication_factor: 3,
            configs: Some(BTreeMap::new()),
            partitions: vec![PartitionView {
                partition: 0,
                leader: 1,
                replicas: vec![4, 2, 3, 1],
                isr: vec![1, 2, 3],
                offline_replicas: Vec::new(),
                adding_replicas: vec![4],
                removing_replicas: vec![1],
            }],
        };
        assert_eq!(
            render_describe(std::slice::from_ref(&view)),
            "Topic: t\tTopicId: id\tPartitionCount: 1\tReplicationFactor: 3\tConfigs: \n\
             PARTITION  LEADER  REPLICAS  ISR    OFFLINE  ADDING  REMOVING\n\
             0          1       4,2,3,1   1,2,3           4       1\n"
        );
    }
}
