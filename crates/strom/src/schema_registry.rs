//! `strom schema-registry`: runs the Schema Registry (crate strom-registry) from a
//! Confluent `schema-registry.properties` file until SIGTERM/SIGINT; and the hook that lets
//! `strom server` run the same registry in-process (`schema.registry.enable=true`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context};
use strom_registry::{config::KEYS, Registry, RegistryConfig};

use crate::server::{load_properties, ShutdownSignals};

/// The `strom server` key that runs the registry in-process.
pub const ENABLE_KEY: &str = "schema.registry.enable";
/// Registry keys in server.properties carry this prefix (`schema.registry.listeners=...`).
pub const PREFIX: &str = "schema.registry.";

pub fn run(file: Option<&Path>, overrides: &[String]) -> anyhow::Result<()> {
    let props = load_properties(file, overrides)?;
    for key in props.keys().filter(|k| !KEYS.contains(&k.as_str())) {
        tracing::warn!("unknown configuration {key} ignored");
    }
    let config = RegistryConfig::from_props(&props, None).map_err(|e| anyhow!(e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Installed before the ready line, so a SIGTERM right after it shuts down cleanly.
        let mut signals = ShutdownSignals::install()?;
        let registry = start(config).await?;
        let signal = signals.wait().await;
        tracing::info!("{signal} received, shutting down");
        registry.shutdown().await;
        Ok(())
    })
}

/// Starts a registry and prints its ready line.
pub async fn start(config: RegistryConfig) -> anyhow::Result<Registry> {
    let topic = config.topic.clone();
    let bootstrap = config.bootstrap_servers.clone();
    let registry = Registry::start(config)
        .await
        .map_err(|e| anyhow!(e).context("cannot start the schema registry"))?;
    let listeners: Vec<String> = registry.urls();
    println!(
        "strom schema registry ready: listening on {}, schemas in topic {topic} at {bootstrap}",
        listeners.join(",")
    );
    std::io::stdout().flush().ok();
    Ok(registry)
}

/// Whether a server.properties key belongs to the in-process registry.
pub fn is_registry_key(key: &str) -> bool {
    key == ENABLE_KEY || key.starts_with(PREFIX)
}

/// The in-process registry's config from server properties: `schema.registry.KEY=...`
/// sets the registry's `KEY` (and `schema.registry.group.id` keeps its own name);
/// `kafkastore.bootstrap.servers` defaults to the broker itself. `None` when not enabled.
pub fn server_registry_config(
    props: &BTreeMap<String, String>,
    broker: &str,
) -> anyhow::Result<Option<RegistryConfig>> {
    let enabled = props.get(ENABLE_KEY).map(|v| v.trim().to_ascii_lowercase());
    match enabled.as_deref() {
        None | Some("false") => return Ok(None),
        Some("true") => {}
        Some(other) => return Err(anyhow!("{ENABLE_KEY}={other:?}: expected true or false")),
    }
    let mut registry = BTreeMap::new();
    for (key, value) in props {
        if key == ENABLE_KEY {
            continue;
        }
        if KEYS.contains(&key.as_str()) && key.starts_with(PREFIX) {
            registry.insert(key.clone(), value.clone());
        } else if let Some(inner) = key.strip_prefix(PREFIX) {
            if KEYS.contains(&inner) {
                registry.insert(inner.to_string(), value.clone());
            } else {
                tracing::warn!("unknown configuration {key} ignored");
            }
        }
    }
    // An https:// registry listener in `strom server` takes the broker's own ssl.* keys
    // unless schema.registry.ssl.* names others.
    let https = registry
        .get("listeners")
        .is_some_and(|l| l.to_ascii_lowercase().contains("https://"));
    if https && !registry.keys().any(|k| k.starts_with("ssl.keystore.")) {
        for (key, value) in props {
            if key.starts_with("ssl.") && KEYS.contains(&key.as_str()) {
                registry.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }
    RegistryConfig::from_props(&registry, Some(broker))
        .map(Some)
        .map_err(|e| anyhow!(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_keys_map_to_registry_keys() {
        let props: BTreeMap<String, String> = [
            ("schema.registry.enable", "true"),
            ("schema.registry.listeners", "http://127.0.0.1:18081"),
            ("schema.registry.group.id", "g"),
            ("schema.registry.kafkastore.topic", "_s"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = server_registry_config(&props, "127.0.0.1:9092")
            .unwrap()
            .unwrap();
        assert_eq!(config.listeners[0].port(), 18081);
        assert_eq!(config.group_id, "g");
        assert_eq!(config.topic, "_s");
        assert_eq!(config.bootstrap_servers, "127.0.0.1:9092");
        assert!(server_registry_config(&BTreeMap::new(), "h:1")
            .unwrap()
            .is_none());
    }
}
