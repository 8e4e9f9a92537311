//! `strom transactions list|describe|abort`, after kafka-transactions.sh: list asks every
//! broker's coordinators, describe asks the id's coordinator, abort makes the coordinator
//! abort the id's ongoing transaction (fencing its producer).

use strom_client::{Admin, TransactionDescription};

use super::args::{Common, TransactionsCommand};
use super::output::{self, Table};

pub async fn run(common: &Common, command: TransactionsCommand) -> anyhow::Result<()> {
    let admin = Admin::new(super::client_config(common)?)?;
    let result = dispatch(&admin, common, command).await;
    admin.close().await;
    result
}

async fn dispatch(
    admin: &Admin,
    common: &Common,
    command: TransactionsCommand,
) -> anyhow::Result<()> {
    match command {
        TransactionsCommand::List {
            states,
            producer_ids,
        } => {
            let listed = admin.list_transactions(&states, &producer_ids).await?;
            if common.json() {
                let items: Vec<_> = listed
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "transactional_id": t.transactional_id,
                            "producer_id": t.producer_id,
                            "state": t.state,
                        })
                    })
                    .collect();
                return output::print_json(&items);
            }
            let mut table = Table::new(&["TRANSACTIONAL-ID", "PRODUCER-ID", "STATE"]);
            for t in &listed {
                table.row(vec![
                    t.transactional_id.clone(),
                    t.producer_id.to_string(),
                    t.state.clone(),
                ]);
            }
            table.print()
        }
        TransactionsCommand::Describe { transactional_ids } => {
            let mut described = Vec::with_capacity(transactional_ids.len());
            for id in &transactional_ids {
                described.push(admin.describe_transaction(id).await?);
            }
            show(common, &described)
        }
        TransactionsCommand::Abort { transactional_id } => {
            let after = admin.abort_transaction(&transactional_id).await?;
            if !common.json() {
                output::print_line(&format!(
                    "Aborted the ongoing transaction of {transactional_id}; its producer is fenced \
                     (epoch now {}).",
                    after.producer_epoch
                ))?;
                return Ok(());
            }
            show(common, &[after])
        }
    }
}

fn show(common: &Common, described: &[TransactionDescription]) -> anyhow::Result<()> {
    if common.json() {
        let items: Vec<_> = described
            .iter()
            .map(|d| {
                serde_json::json!({
                    "transactional_id": d.transactional_id,
                    "coordinator": d.coordinator,
                    "state": d.state,
                    "producer_id": d.producer_id,
                    "producer_epoch": d.producer_epoch,
                    "timeout_ms": d.timeout_ms,
                    "start_time_ms": d.start_time_ms,
                    "partitions": d.partitions.iter().map(|p| format!("{}-{}", p.topic, p.partition)).collect::<Vec<_>>(),
                })
            })
            .collect();
        return output::print_json(&items);
    }
    let mut table = Table::new(&[
        "COORDINATOR",
        "TRANSACTIONAL-ID",
        "PRODUCER-ID",
        "PRODUCER-EPOCH",
        "STATE",
        "TIMEOUT-MS",
        "START-TIME-MS",
        "PARTITIONS",
    ]);
    for d in described {
        let partitions: Vec<String> = d
            .partitions
            .iter()
            .map(|p| format!("{}-{}", p.topic, p.partition))
            .collect();
        table.row(vec![
            d.coordinator.to_string(),
            d.transactional_id.clone(),
            d.producer_id.to_string(),
            d.producer_epoch.to_string(),
            d.state.clone(),
            d.timeout_ms.to_string(),
            d.start_time_ms.to_string(),
            if partitions.is_empty() {
                "-".to_string()
            } else {
                partitions.join(",")
            },
        ]);
    }
    table.print()
}
