//! `strom server`: reads the configuration, runs the node until SIGTERM/SIGINT.
//!
//! For now the node is the metadata quorum member only; the broker joins it here later.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context};
use strom_raft::metadata::start_metadata_node;

use crate::properties;
use crate::server_config::ServerConfig;

/// Loads `file` (if any) and applies `overrides` (`key=value`, later wins), then builds
/// the typed config. Components added later parse the same properties and share the
/// unknown-key warning.
pub fn load_config(file: Option<&Path>, overrides: &[String]) -> anyhow::Result<ServerConfig> {
    let props = load_properties(file, overrides)?;
    let (config, unknown) = ServerConfig::from_properties(&props).map_err(|e| anyhow!(e))?;
    for key in unknown {
        tracing::warn!("unknown configuration {key} ignored");
    }
    Ok(config)
}

/// The properties of `file` (if any) with `overrides` applied.
pub fn load_properties(
    file: Option<&Path>,
    overrides: &[String],
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut props = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            properties::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?
        }
        None => BTreeMap::new(),
    };
    for item in overrides {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| anyhow!("--override {item:?} is not key=value"))?;
        props.insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok(props)
}

pub fn run(file: Option<&Path>, overrides: &[String]) -> anyhow::Result<()> {
    let config = load_config(file, overrides)?;
    let node_config = config.node_config().map_err(|e| anyhow!(e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let node = start_metadata_node(node_config.clone(), config.controller_config()).await?;
        let voters: Vec<String> = if node_config.voters.is_empty() {
            vec![format!("{}@{}", node.node_id(), node.local_addr())]
        } else {
            node_config.voters.iter().map(|(id, addr)| format!("{id}@{addr}")).collect()
        };
        println!(
            "strom node {} ready: metadata quorum member, controller listener {}, voters {}, metadata dir {}",
            node.node_id(),
            node.local_addr(),
            voters.join(","),
            node_config.data_dir.display()
        );
        std::io::stdout().flush().ok();
        let signal = wait_for_shutdown_signal().await?;
        tracing::info!("{signal} received, shutting down");
        node.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn wait_for_shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate =
        signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}
