//! `strom schema-registry`: runs the Schema Registry (crate strom-registry) from a
//! Confluent `schema-registry.properties` file until SIGTERM/SIGINT; and the hook that lets
//! `strom server` run the same registry in-process (`schema.registry.enable=true`).
//!
//! Basic authentication (`authentication.method=BASIC`) takes the same users in both: the
//! in-process registry asks its broker; the standalone one asks the cluster, by
//! authenticating to it with SASL as the Basic user (one connection and a DescribeCluster
//! per request, bounded by a 10 s timeout), so PLAIN JAAS users and SCRAM users of the
//! metadata log are accepted exactly as the brokers accept them, and the broker's failed
//! authentication delay, metrics and audit line apply. `strom.authentication.kafka.<key>`
//! are the Kafka client keys of that check (`bootstrap.servers`, default
//! `kafkastore.bootstrap.servers`; `security.protocol`, default `SASL_PLAINTEXT`;
//! `sasl.mechanism`, default `PLAIN,SCRAM-SHA-256`: a comma-separated list tried in order
//! until one accepts the user, as the in-process registry accepts PLAIN and SCRAM users
//! alike; the `ssl.*` keys for `SASL_SSL`).

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
    for key in props
        .keys()
        .filter(|k| !KEYS.contains(&k.as_str()) && !k.starts_with(AUTH_CLIENT_PREFIX))
    {
        tracing::warn!("unknown configuration {key} ignored");
    }
    let mut config = RegistryConfig::from_props(&props, None).map_err(|e| anyhow!(e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Installed before the ready line, so a SIGTERM right after it shuts down cleanly.
        let mut signals = ShutdownSignals::install()?;
        if config.basic_auth {
            config.authenticator = Some(cluster_authenticator(&props, &config.bootstrap_servers)?);
        }
        let registry = start(config).await?;
        let signal = signals.wait().await;
        tracing::info!("{signal} received, shutting down");
        registry.shutdown().await;
        Ok(())
    })
}

/// The prefix of the Kafka client keys the standalone registry checks Basic users with.
pub const AUTH_CLIENT_PREFIX: &str = "strom.authentication.kafka.";
/// The bound on one credentials check against the cluster.
const AUTH_CHECK_TIMEOUT_MS: u64 = 10_000;

/// Basic credentials checked by SASL authentication to the cluster (see the module's doc).
/// The client keys are checked now, so a bad one stops start-up naming it. Must be called
/// within the runtime: checks run on its blocking pool and drive the client on it.
fn cluster_authenticator(
    props: &BTreeMap<String, String>,
    kafkastore: &str,
) -> anyhow::Result<strom_registry::security::Authenticator> {
    let mut client = strom_client::Properties::new();
    client
        .set("bootstrap.servers", kafkastore)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "PLAIN,SCRAM-SHA-256");
    for (key, value) in props {
        if let Some(inner) = key.strip_prefix(AUTH_CLIENT_PREFIX) {
            client.set(inner, value.trim());
        }
    }
    let protocol = client
        .get("security.protocol")
        .unwrap_or_default()
        .to_ascii_uppercase();
    if !protocol.starts_with("SASL_") {
        return Err(anyhow!(
            "{AUTH_CLIENT_PREFIX}security.protocol={protocol}: Basic users are checked by SASL \
             authentication to the cluster, so it must be SASL_PLAINTEXT or SASL_SSL"
        ));
    }
    let mechanisms: Vec<String> = client
        .get("sasl.mechanism")
        .unwrap_or_default()
        .split(',')
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    let build = move |user: &str, password: &str, mechanism: &str| {
        let mut p = client.clone();
        p.set("sasl.username", user).set("sasl.password", password);
        p.set("sasl.mechanism", mechanism);
        p.set("client.id", "strom-schema-registry-auth");
        p.set("default.api.timeout.ms", AUTH_CHECK_TIMEOUT_MS.to_string());
        p.set("request.timeout.ms", AUTH_CHECK_TIMEOUT_MS.to_string());
        p.set(
            "socket.connection.setup.timeout.ms",
            AUTH_CHECK_TIMEOUT_MS.to_string(),
        );
        strom_client::ClientConfig::from_properties(&mut p)
    };
    if mechanisms.is_empty() {
        return Err(anyhow!("{AUTH_CLIENT_PREFIX}sasl.mechanism: empty"));
    }
    // The keys are checked once now, with a placeholder user.
    for mechanism in &mechanisms {
        build("check", "check", mechanism).map_err(|e| anyhow!("{AUTH_CLIENT_PREFIX}*: {e}"))?;
    }
    // Called on the blocking pool (strom_registry::security::basic), never on a runtime
    // worker, so blocking on the runtime's handle is allowed.
    let handle = tokio::runtime::Handle::current();
    Ok(strom_registry::security::Authenticator(
        std::sync::Arc::new(move |user: &str, password: &str| {
            for mechanism in &mechanisms {
                let Ok(config) = build(user, password, mechanism) else {
                    return false;
                };
                let check = async {
                    let admin = strom_client::Admin::new(config)?;
                    admin.describe_cluster().await
                };
                let timeout = std::time::Duration::from_millis(AUTH_CHECK_TIMEOUT_MS);
                match handle.block_on(tokio::time::timeout(timeout, check)) {
                    Ok(Ok(_)) => return true,
                    Ok(Err(strom_client::ClientError::Authentication(reason))) => {
                        tracing::debug!(user, mechanism, %reason, "the cluster refused the Basic user");
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(user, mechanism, %error,
                            "cannot check Basic credentials against the cluster; refusing the request");
                        return false;
                    }
                    Err(_) => {
                        tracing::warn!(
                            user,
                            mechanism,
                            "checking Basic credentials against the cluster timed out"
                        );
                        return false;
                    }
                }
            }
            false
        }),
    )
    // A burst of requests checks the cluster once; a changed password stops working within
    // strom_registry::security::CHECK_CACHE_TTL.
    .cached())
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
