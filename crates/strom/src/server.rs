//! `strom server`: reads the configuration, runs the node until SIGTERM/SIGINT: the
//! metadata quorum member and, when `process.roles` includes `broker`, the Kafka broker
//! beside it. Shutdown stops the broker first (it still needs the quorum to say goodbye),
//! then the quorum member.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context};
use strom_broker::{Broker, BrokerConfig, QuorumMetadata};
use strom_raft::metadata::start_metadata_node;

use crate::properties;
use crate::server_config::ServerConfig;

/// Loads `file` (if any) and applies `overrides` (`key=value`, later wins), checks every
/// value once against strom-broker's table of keys (one parser, one error format), then
/// builds the typed configs of the quorum member and (when it runs) the broker from it. A
/// key the table does not know (nor the in-process schema registry) is a warning.
pub fn load_config(
    file: Option<&Path>,
    overrides: &[String],
) -> anyhow::Result<(ServerConfig, Option<BrokerConfig>)> {
    let props = load_properties(file, overrides)?;
    let unknown = strom_broker::config_keys::check(&props)?;
    let config = ServerConfig::from_properties(&props)?;
    let broker = if config.runs_broker() {
        let (broker, _) = BrokerConfig::from_props(&props)?;
        Some(broker)
    } else {
        None
    };
    for key in unknown
        .iter()
        .filter(|k| !crate::schema_registry::is_registry_key(k))
    {
        tracing::warn!("unknown configuration {key} ignored");
    }
    Ok((config, broker))
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

pub fn run(file: Option<&Path>, overrides: &[String], add_scram: &[String]) -> anyhow::Result<()> {
    let (config, broker_config) = load_config(file, overrides)?;
    let add_scram = add_scram
        .iter()
        .map(|text| crate::scram_bootstrap::parse(text))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let props = load_properties(file, overrides)?;
    let mut node_config = config.node_config().map_err(|e| anyhow!(e))?;
    // The quorum replica's directory id is the one `strom storage format` wrote into the
    // metadata directory's meta.properties, when it ran (else the raft node makes one).
    node_config.directory_id = config
        .metadata_dir()
        .parent()
        .and_then(crate::storage::read_directory_id);
    // Before anything is created on disk: a port in use or an unwritable dir must not
    // leave a half-created metadata log behind.
    let usable_dirs = crate::preflight::check(&config)?;
    // Every usable data directory's meta.properties agrees with the others and the config
    // (or the node is formatted now, on its first start); the broker reports the cluster
    // id they hold. A directory that failed the preflight stays offline, unread (as Kafka
    // leaves a failed directory out of its meta.properties checks).
    let cluster_id = crate::storage::check_at_start(&config, &usable_dirs)?;
    // Sent with every request to another quorum member and compared by each receiver:
    // a node formatted for another cluster is refused (INCONSISTENT_CLUSTER_ID).
    node_config.cluster_id = Some(cluster_id.clone());
    let broker_config = broker_config.map(|broker| BrokerConfig {
        cluster_id,
        ..broker
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Installed before the ready line: a SIGTERM sent as soon as it appears must find
        // them, or it would kill the process without a clean shutdown.
        let mut signals = ShutdownSignals::install()?;
        let node = start_metadata_node(node_config.clone(), config.controller_config()).await?;
        let broker = match broker_config {
            Some(broker_config) => {
                let metadata = QuorumMetadata::new(node.clone());
                match Broker::start(broker_config, metadata).await {
                    Ok(broker) => {
                        // Before the ready line: clients may use these users at once.
                        if let Err(error) = crate::scram_bootstrap::apply(&broker, &add_scram).await
                        {
                            stop(Some(broker), &node).await;
                            return Err(error);
                        }
                        Some(broker)
                    }
                    Err(error) => {
                        node.shutdown().await;
                        return Err(anyhow!(error).context("cannot start the broker"));
                    }
                }
            }
            None => None,
        };
        // A controller-only node serves metrics and health on `strom.http.listeners` (the
        // same key, default and bounds as a broker's listener); a broker serves them itself.
        let controller_http = if broker.is_none() {
            let started = match strom_broker::metrics::MetricsConfig::from_props(&props) {
                Ok(metrics) => {
                    let status_node = node.clone();
                    let status: strom_broker::controller_http::StatusFn =
                        std::sync::Arc::new(move || status_node.quorum_status());
                    // HTTP Basic's users: the controller listener's PLAIN users and the
                    // SCRAM credentials of this node's metadata log replica.
                    let image_node = node.clone();
                    let users = strom_broker::controller_http::ControllerUsers {
                        plain: config
                            .quorum_security
                            .sasl
                            .as_ref()
                            .map(|s| s.plain_users.clone())
                            .unwrap_or_default(),
                        image: std::sync::Arc::new(move || image_node.state().state),
                        // Checked with every key at start-up (`load_config`).
                        failed_delay_ms: strom_broker::config_keys::Props::new(&props)
                            .int("connection.failed.authentication.delay.ms")
                            .unwrap_or_default(),
                    };
                    strom_broker::controller_http::ControllerHttp::start(
                        &metrics,
                        status,
                        Some(users),
                    )
                    .await
                    .map_err(|e| anyhow!(e))
                }
                Err(e) => Err(anyhow!(e)),
            };
            match started {
                Ok(http) => http,
                Err(error) => {
                    node.shutdown().await;
                    return Err(error.context("cannot start the controller's HTTP listener"));
                }
            }
        } else {
            None
        };
        // The in-process schema registry (schema.registry.enable=true): a Kafka client of
        // this broker, started once the broker serves and stopped before it.
        let registry_config = broker.as_ref().map(|broker| {
            let advertised = &broker.context().advertised;
            let address = format!("{}:{}", advertised.host, advertised.port);
            crate::schema_registry::server_registry_config(&props, &address)
        });
        let registry = match registry_config {
            Some(Ok(Some(mut registry_config))) => {
                // authentication.method=BASIC checks the broker's own SASL users.
                if let Some(broker) = &broker {
                    registry_config.authenticator = Some(strom_registry::security::Authenticator(
                        broker.credentials_checker(),
                    ));
                }
                match crate::schema_registry::start(registry_config).await {
                    Ok(registry) => {
                        // The console reads and writes schemas through it, in-process.
                        if let Some(broker) = &broker {
                            broker.set_schema_registry(registry.access());
                        }
                        Some(registry)
                    }
                    Err(error) => {
                        stop(broker, &node).await;
                        return Err(error);
                    }
                }
            }
            Some(Err(error)) => {
                stop(broker, &node).await;
                return Err(error);
            }
            _ => None,
        };
        let voters: Vec<String> = if node_config.joins() {
            let known = node.quorum_status().voters;
            known.iter().map(|id| id.to_string()).collect()
        } else if node_config.voters.is_empty() {
            vec![format!("{}@{}", node.node_id(), node.local_addr())]
        } else {
            node_config
                .voters
                .iter()
                .map(|(id, addr)| format!("{id}@{addr}"))
                .collect()
        };
        let serving = match &broker {
            Some(broker) => {
                let advertised = &broker.context().advertised;
                let scheme = if broker.http_tls() { "https" } else { "http" };
                let http = match broker.http_addr() {
                    Some(addr) => format!("{scheme}://{addr} (metrics, health), "),
                    None => String::new(),
                };
                format!(
                    "broker listening on {} (advertised {}:{}), {http}",
                    broker.local_addr(),
                    advertised.host,
                    advertised.port
                )
            }
            None => match &controller_http {
                Some(http) => format!("http://{} (metrics, health), ", http.local_addr()),
                None => String::new(),
            },
        };
        let member = if config.runs_controller() {
            format!(
                "metadata quorum member, controller listener {}",
                node.local_addr()
            )
        } else {
            format!(
                "metadata quorum observer, replicated at {}",
                node.advertised_addr()
            )
        };
        let voters = if voters.is_empty() {
            "not known yet (joining)".to_string()
        } else {
            voters.join(",")
        };
        println!(
            "strom node {} ready: {serving}{member}, voters {voters}, metadata dir {}",
            node.node_id(),
            node_config.data_dir.display()
        );
        std::io::stdout().flush().ok();
        let signal = signals.wait().await;
        tracing::info!("{signal} received, shutting down");
        if let Some(registry) = registry {
            registry.shutdown().await;
        }
        if let Some(broker) = broker {
            broker.shutdown().await;
        }
        if let Some(http) = controller_http {
            http.shutdown().await;
        }
        node.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn stop(broker: Option<Broker>, node: &strom_raft::metadata::MetadataNode) {
    if let Some(broker) = broker {
        broker.shutdown().await;
    }
    node.shutdown().await;
}

/// SIGTERM and SIGINT handlers.
pub(crate) struct ShutdownSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    pub(crate) fn install() -> anyhow::Result<ShutdownSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ShutdownSignals {
            terminate: signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?,
            interrupt: signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?,
        })
    }

    /// The name of the first signal received.
    pub(crate) async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}
