//! `strom streams reset --application-id ID`: what Kafka's
//! `kafka-streams-application-reset` does, so a Strom Streams (or Kafka Streams)
//! application can reprocess its input from scratch: input topics' committed offsets go to
//! the earliest offset, intermediate topics' to the latest, and the application's internal
//! topics (`<id>-...-repartition`, `<id>-...-changelog`) are deleted with their committed
//! offsets. The group must have no active members. Local state stays: every instance must
//! delete its `<state.dir>/<application.id>` directory (`KafkaStreams::cleanup`).

use std::collections::BTreeMap;

use serde::Serialize;
use strom_client::{Admin, OffsetAndMetadata, OffsetSpec, TopicPartition};

use super::args::{Common, StreamsCommand};
use super::output::{self, Table};

#[derive(Debug, Serialize)]
struct Step {
    action: &'static str,
    topic: String,
    partition: Option<i32>,
    offset: Option<i64>,
}

/// Whether `topic` is one of `application_id`'s internal topics.
pub fn is_internal(application_id: &str, topic: &str) -> bool {
    topic
        .strip_prefix(application_id)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|rest| {
            !rest.is_empty() && (rest.ends_with("-repartition") || rest.ends_with("-changelog"))
        })
}

pub async fn run(common: &Common, command: StreamsCommand) -> anyhow::Result<()> {
    let StreamsCommand::Reset {
        application_id: app,
        input_topics,
        intermediate_topics,
        dry_run,
    } = command;
    let admin = Admin::new(super::client_config(common)?)?;
    let result = reset(
        &admin,
        common,
        &app,
        &input_topics,
        &intermediate_topics,
        dry_run,
    )
    .await;
    admin.close().await;
    result
}

async fn reset(
    admin: &Admin,
    common: &Common,
    app: &str,
    inputs: &[String],
    intermediates: &[String],
    dry_run: bool,
) -> anyhow::Result<()> {
    if let Ok(g) = admin.describe_group(app).await {
        if !g.members.is_empty() {
            anyhow::bail!(
                "application {app} is still running: group {app} has {} active member(s); stop every \
                 instance (or wait for session.timeout.ms) and run the reset again",
                g.members.len()
            );
        }
    }
    let mut steps = Vec::new();
    let mut offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = BTreeMap::new();
    for (topics, spec, action) in [
        (inputs, OffsetSpec::Earliest, "seek-to-earliest"),
        (intermediates, OffsetSpec::Latest, "seek-to-latest"),
    ] {
        for topic in topics {
            let partitions = admin.partitions_of(topic).await?;
            for (tp, o) in admin.list_offsets(&partitions, spec).await? {
                steps.push(Step {
                    action,
                    topic: tp.topic.clone(),
                    partition: Some(tp.partition),
                    offset: Some(o.offset),
                });
                offsets.insert(tp, OffsetAndMetadata::new(o.offset));
            }
        }
    }
    let internal: Vec<String> = admin
        .list_topics(false)
        .await?
        .into_iter()
        .filter(|t| is_internal(app, t))
        .collect();
    let committed = admin.list_group_offsets(app).await.unwrap_or_default();
    let forget: Vec<TopicPartition> = committed
        .keys()
        .filter(|tp| internal.contains(&tp.topic))
        .cloned()
        .collect();
    for t in &internal {
        steps.push(Step {
            action: "delete-topic",
            topic: t.clone(),
            partition: None,
            offset: None,
        });
    }
    if !dry_run {
        if !offsets.is_empty() {
            admin.alter_group_offsets(app, &offsets).await?;
        }
        if !forget.is_empty() {
            admin.delete_group_offsets(app, &forget).await?;
        }
        if !internal.is_empty() {
            for (topic, result) in admin.delete_topics(&internal).await? {
                result.map_err(|e| anyhow::anyhow!("deleting internal topic {topic}: {e}"))?;
            }
        }
    }
    if common.json() {
        return output::print_json(&steps);
    }
    let mut table = Table::new(&["ACTION", "TOPIC", "PARTITION", "OFFSET"]);
    for s in &steps {
        table.row(vec![
            s.action.to_string(),
            s.topic.clone(),
            output::or_dash(s.partition),
            output::or_dash(s.offset),
        ]);
    }
    table.print()?;
    if !common.quiet {
        if dry_run {
            eprintln!("Dry run: nothing changed. Run again without --dry-run to reset {app}.");
        } else {
            eprintln!(
                "Reset {app}: {} offset(s) moved, {} internal topic(s) deleted. Delete each \
                 instance's local state (<state.dir>/{app}, KafkaStreams::cleanup) before restarting.",
                offsets.len(),
                internal.len()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_topics_are_the_applications_repartition_and_changelog_topics() {
        assert!(is_internal("wc", "wc-counts-changelog"));
        assert!(is_internal("wc", "wc-counts-repartition"));
        assert!(!is_internal("wc", "wc-changelog"));
        assert!(!is_internal("wc", "wcx-counts-changelog"));
        assert!(!is_internal("wc", "lines"));
        assert!(!is_internal("wc", "wc-output"));
    }
}
