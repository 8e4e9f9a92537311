//! `strom metadata status`: each controller's view of the metadata quorum (like
//! `kafka-metadata-quorum describe --status`), over the controller listener. With
//! `--command-config FILE` (as `kafka-metadata-quorum.sh`) it connects with that file's
//! client security keys (`security.protocol`, `ssl.*`, `sasl.*`), read by strom-client as
//! for every other `strom` command; a controller with an authorizer then checks DESCRIBE on
//! the cluster for that principal.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context};
use strom_client::config::ClientSecurity;
use strom_client::Properties;
use strom_raft::{QuorumClient, SecurityContext};

pub fn run(bootstrap: &str, command_config: Option<&Path>) -> anyhow::Result<()> {
    let addrs: Vec<String> = bootstrap
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    let security = security(command_config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let client =
            QuorumClient::new(addrs.clone(), Duration::from_secs(5)).with_security(security);
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

/// The connection's security from the client properties of `command_config` (plaintext
/// without one). Keys it does not use are warned about, as the client commands do.
fn security(command_config: Option<&Path>) -> anyhow::Result<SecurityContext> {
    let Some(path) = command_config else {
        return Ok(SecurityContext::connecting(None, None));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("cannot read --command-config {}: {e}", path.display()))?;
    let mut props = Properties::parse(&text)
        .map_err(|e| anyhow!("--command-config {}: {e}", path.display()))?;
    let security = ClientSecurity::from_properties(&mut props)
        .map_err(|e| anyhow!("--command-config {}: {e}", path.display()))?;
    for key in props.unused() {
        eprintln!("strom: warning: client property {key} is not used by this command");
    }
    Ok(SecurityContext::connecting(security.tls, security.sasl))
}
