//! `strom configs describe|alter` for a topic (`--topic`) or a broker (`--broker`):
//! describe lists the configs set explicitly (all with `--all`); alter sets and deletes
//! keys incrementally, leaving the others as they are.

use serde::Serialize;
use strom_client::{Admin, AlterConfigOp, ConfigEntry, ConfigResource};

use super::args::{Common, ConfigTarget, ConfigsCommand};
use super::output::{self, Table};

#[derive(Debug, Serialize)]
struct ConfigView {
    name: String,
    value: Option<String>,
    source: &'static str,
    sensitive: bool,
    read_only: bool,
}

pub async fn run(common: &Common, command: ConfigsCommand) -> anyhow::Result<()> {
    let admin = Admin::new(super::client_config(common)?)?;
    let result = match command {
        ConfigsCommand::Describe { target, all } => describe(&admin, common, &target, all).await,
        ConfigsCommand::Alter {
            target,
            set,
            delete,
        } => alter(&admin, common, &target, &set, &delete).await,
    };
    admin.close().await;
    result
}

fn resource(target: &ConfigTarget) -> anyhow::Result<(ConfigResource, String)> {
    match (&target.topic, target.broker) {
        (Some(topic), None) => Ok((
            ConfigResource::Topic(topic.clone()),
            format!("topic {topic}"),
        )),
        (None, Some(id)) => Ok((ConfigResource::Broker(id), format!("broker {id}"))),
        // clap allows exactly one of the two.
        _ => anyhow::bail!("name one of --topic or --broker"),
    }
}

fn view(entry: ConfigEntry) -> ConfigView {
    ConfigView {
        source: entry.source.name(),
        name: entry.name,
        value: entry.value,
        sensitive: entry.is_sensitive,
        read_only: entry.read_only,
    }
}

async fn describe(
    admin: &Admin,
    common: &Common,
    target: &ConfigTarget,
    all: bool,
) -> anyhow::Result<()> {
    let (resource, what) = resource(target)?;
    let mut entries: Vec<ConfigView> = admin
        .describe_configs(&resource)
        .await?
        .into_iter()
        .filter(|e| all || !e.is_default())
        .map(view)
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    if common.json() {
        return output::print_json(&entries);
    }
    if entries.is_empty() {
        return output::print_line(&format!(
            "No configs set on {what} (all defaults; --all shows them)."
        ));
    }
    let mut table = Table::new(&["NAME", "VALUE", "SOURCE", "SENSITIVE", "READ-ONLY"]);
    for e in &entries {
        let value = match (&e.value, e.sensitive) {
            (_, true) => "(sensitive)".to_string(),
            (Some(v), false) => v.clone(),
            (None, false) => "(none)".to_string(),
        };
        table.row(vec![
            e.name.clone(),
            value,
            e.source.to_string(),
            e.sensitive.to_string(),
            e.read_only.to_string(),
        ]);
    }
    table.print()
}

async fn alter(
    admin: &Admin,
    common: &Common,
    target: &ConfigTarget,
    set: &[(String, String)],
    delete: &[String],
) -> anyhow::Result<()> {
    let (resource, what) = resource(target)?;
    let ops: Vec<AlterConfigOp> = set
        .iter()
        .map(|(k, v)| AlterConfigOp::Set(k.clone(), v.clone()))
        .chain(delete.iter().map(|k| AlterConfigOp::Delete(k.clone())))
        .collect();
    admin.alter_configs(&resource, &ops).await?;
    if common.json() {
        output::print_json(&serde_json::json!({
            "resource": what,
            "set": set.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "deleted": delete,
        }))
    } else {
        output::print_line(&format!("Completed updating config for {what}."))
    }
}
