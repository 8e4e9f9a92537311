//! A running registry: the listeners bound, the store read to the end of the topic, the
//! leader election joined, the HTTP servers serving until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::RegistryConfig;
use crate::error::RegistryError;
use crate::http::{self, App};
use crate::kafka::KafkaStore;
use crate::leader::Leader;

/// How often startup checks whether a leader is known yet.
const LEADER_WAIT_POLL_MS: u64 = 100;

pub struct Registry {
    addrs: Vec<SocketAddr>,
    app: Arc<App>,
    stop: watch::Sender<bool>,
    servers: JoinSet<()>,
}

impl Registry {
    /// Binds the listeners, reads the schemas topic to its end, joins the election and
    /// waits (up to `kafkastore.init.timeout.ms`) until some process leads.
    pub async fn start(config: RegistryConfig) -> Result<Registry, RegistryError> {
        let mut listeners = Vec::new();
        for addr in &config.listeners {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| RegistryError::Listen {
                    addr: addr.to_string(),
                    source,
                })?;
            listeners.push(listener);
        }
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let port = addrs.first().map_or(0, SocketAddr::port);
        let own_url = format!("http://{}:{port}", config.host_name);
        let kafka = KafkaStore::start(&config).await?;
        let leader = Leader::start(&config, own_url).map_err(|source| RegistryError::Kafka {
            topic: config.topic.clone(),
            source,
        })?;
        let started = Instant::now();
        let init = Duration::from_millis(config.init_timeout_ms);
        // Settled means: this process leads, or another process does. A member that
        // holds the partition under this process's own URL while this process does not
        // lead is an earlier incarnation (killed with -9) whose session has not expired
        // yet; until the group drops it, writes sent here could not be made anywhere.
        let settled = |url: Option<String>| match url {
            Some(url) => leader.is_leader() || url != leader.own_url(),
            None => false,
        };
        while !settled(leader.leader_url(true).await) && started.elapsed() < init {
            tokio::time::sleep(Duration::from_millis(LEADER_WAIT_POLL_MS)).await;
        }
        if !settled(leader.leader_url(false).await) {
            tracing::warn!(group = %config.group_id, "no registry leader yet; writes answer 50004 until one is elected");
        }
        let app = Arc::new(App {
            kafka,
            leader,
            settings: config.settings.clone(),
            request_bytes_max: config.request_bytes_max,
            subjects_listed_max: config.subjects_listed_max,
            versions_listed_max: config.versions_listed_max,
            schemas_listed_max: config.schemas_listed_max,
            write_lock: tokio::sync::Mutex::new(()),
            // A write may wait three times for the store (catch up, append, read back).
            request_timeout: Duration::from_millis(config.store_timeout_ms.saturating_mul(4)),
        });
        let (stop, stopped) = watch::channel(false);
        let mut servers = JoinSet::new();
        for listener in listeners {
            let router = http::router(app.clone());
            let mut stopped = stopped.clone();
            servers.spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                if let Err(e) = axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!(error = %e, "the registry's HTTP server failed");
                }
            });
        }
        Ok(Registry {
            addrs,
            app,
            stop,
            servers,
        })
    }

    /// The bound listener addresses.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn is_leader(&self) -> bool {
        self.app.leader.is_leader()
    }

    /// Stops serving (requests in flight finish) and closes the Kafka clients.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.servers.join_next().await.is_some() {}
        self.app.leader.resign();
        if let Ok(app) = Arc::try_unwrap(self.app) {
            app.leader.close().await;
            app.kafka.close().await;
        }
    }
}
