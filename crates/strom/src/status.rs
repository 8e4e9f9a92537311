//! `strom metadata status`: each controller's view of the metadata quorum (like
//! `kafka-metadata-quorum describe --status`).

use std::time::Duration;

use anyhow::Context;
use strom_raft::QuorumClient;

pub fn run(bootstrap: &str) -> anyhow::Result<()> {
    let addrs: Vec<String> = bootstrap
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let client = QuorumClient::new(addrs.clone(), Duration::from_secs(5));
        for addr in &addrs {
            match client.status_of(addr).await {
                Ok(s) => println!(
                    "{addr}: node {} leader {} term {} last-log-index {} applied-index {} voters {:?}",
                    s.node_id,
                    s.leader_id.map_or("none".to_string(), |id| id.to_string()),
                    s.term,
                    s.last_log_index.map_or("none".to_string(), |i| i.to_string()),
                    s.last_applied_index.map_or("none".to_string(), |i| i.to_string()),
                    s.voters
                ),
                Err(e) => println!("{addr}: unreachable: {e}"),
            }
        }
    });
    Ok(())
}
