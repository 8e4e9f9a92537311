//! `strom cluster describe`: cluster id, controller and brokers.

use serde::Serialize;
use strom_client::Admin;

use super::args::{ClusterCommand, Common};
use super::output::{self, or_dash, Table};

#[derive(Debug, Serialize)]
struct ClusterView {
    cluster_id: Option<String>,
    controller_id: i32,
    brokers: Vec<BrokerView>,
}

#[derive(Debug, Serialize)]
struct BrokerView {
    id: i32,
    host: String,
    port: i32,
    rack: Option<String>,
}

pub async fn run(common: &Common, command: ClusterCommand) -> anyhow::Result<()> {
    let ClusterCommand::Describe = command;
    let admin = Admin::new(super::client_config(common)?)?;
    let described = admin.describe_cluster().await;
    admin.close().await;
    let d = described?;
    let mut brokers: Vec<BrokerView> = d
        .brokers
        .into_iter()
        .map(|b| BrokerView {
            id: b.id,
            host: b.host,
            port: b.port,
            rack: b.rack,
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    let view = ClusterView {
        cluster_id: d.cluster_id,
        controller_id: d.controller_id,
        brokers,
    };
    if common.json() {
        return output::print_json(&view);
    }
    let mut text = format!(
        "Cluster ID: {}\nController: {}\n",
        or_dash(view.cluster_id.clone()),
        if view.controller_id < 0 {
            "none".to_string()
        } else {
            view.controller_id.to_string()
        }
    );
    let mut table = Table::new(&["ID", "HOST", "PORT", "RACK"]);
    for b in &view.brokers {
        table.row(vec![
            b.id.to_string(),
            b.host.clone(),
            b.port.to_string(),
            or_dash(b.rack.clone()),
        ]);
    }
    text.push_str(&table.render());
    let mut out = output::Out::new();
    out.bytes(text.as_bytes())?;
    out.flush()
}
