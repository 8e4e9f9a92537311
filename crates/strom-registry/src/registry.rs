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
use crate::security::{BasicAuth, TlsListener};
use strom_security::TlsServer;

/// How often startup checks whether a leader is known yet.
const LEADER_WAIT_POLL_MS: u64 = 100;

pub struct Registry {
    addrs: Vec<SocketAddr>,
    tls_flags: Vec<bool>,
    app: Arc<App>,
    stop: watch::Sender<bool>,
    servers: JoinSet<()>,
}

impl Registry {
    /// Binds the listeners, reads the schemas topic to its end, joins the election and
    /// waits (up to `kafkastore.init.timeout.ms`) until some process leads.
    pub async fn start(config: RegistryConfig) -> Result<Registry, RegistryError> {
        // TLS files are read and Basic's authenticator checked before anything is bound.
        let tls = match &config.tls {
            Some(settings) => Some(Arc::new(TlsServer::new(settings.clone()).map_err(|e| {
                RegistryError::Config {
                    key: e.key.clone(),
                    reason: format!("the https listeners: {}", e.reason),
                }
            })?)),
            None => None,
        };
        let basic = match (&config.basic_auth, &config.authenticator) {
            (false, _) => None,
            (true, Some(authenticator)) => Some(BasicAuth {
                authenticator: authenticator.clone(),
                realm: config.realm.clone(),
            }),
            (true, None) => {
                return Err(RegistryError::Config {
                    key: "authentication.method".into(),
                    reason: "BASIC needs a credentials check: the embedder supplies it (`strom \
                             server`: the broker's SASL users; `strom schema-registry`: SASL \
                             authentication to the cluster)"
                        .into(),
                })
            }
        };
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
        for (index, listener) in listeners.into_iter().enumerate() {
            let mut router = http::router(app.clone());
            if let Some(basic) = &basic {
                router = router.layer(axum::middleware::from_fn_with_state(
                    basic.clone(),
                    crate::security::basic,
                ));
            }
            let mut stopped = stopped.clone();
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            let served_tls = match (&tls, config.listener_tls.get(index)) {
                (Some(tls), Some(true)) => Some(Arc::clone(tls)),
                _ => None,
            };
            servers.spawn(async move {
                let served = match served_tls {
                    Some(tls) => {
                        axum::serve(TlsListener::new(listener, tls), router)
                            .with_graceful_shutdown(shutdown)
                            .await
                    }
                    None => {
                        axum::serve(listener, router)
                            .with_graceful_shutdown(shutdown)
                            .await
                    }
                };
                if let Err(e) = served {
                    tracing::error!(error = %e, "the registry's HTTP server failed");
                }
            });
        }
        Ok(Registry {
            addrs,
            tls_flags: config.listener_tls.clone(),
            app,
            stop,
            servers,
        })
    }

    /// The bound listener addresses.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The bound listeners as URLs (`https://` where TLS is served).
    pub fn urls(&self) -> Vec<String> {
        self.addrs
            .iter()
            .zip(self.tls_flags.iter().chain(std::iter::repeat(&false)))
            .map(|(a, tls)| format!("{}://{a}", if *tls { "https" } else { "http" }))
            .collect()
    }

    /// A way in to this registry's REST API from inside the process (the broker's console):
    /// its own router, the listener's authentication not applied.
    pub fn access(&self) -> crate::access::RegistryAccess {
        crate::access::RegistryAccess::InProcess {
            router: http::router(self.app.clone()),
            timeout: self.app.request_timeout,
        }
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
