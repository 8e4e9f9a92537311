//! Starting and stopping a broker: bind the listener, open the partition logs, register with
//! the controller, accept connections, and on shutdown first move leadership away
//! (controlled shutdown, while still serving), then stop accepting, let in-flight requests
//! finish, and flush and close every log.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strom_meta::{
    BrokerHeartbeatRequest, ControllerReply, ControllerRequest, Endpoint, RegisterBrokerRequest,
};
use strom_protocol::ApiVersionTable;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::authn::ListenerRuntime;
use crate::config::{BrokerConfig, Listener};
use crate::limits::ConnectionLimits;
use crate::metadata::{now_ms, MetadataError, MetadataPort};
use crate::replicas::ReplicaManager;

/// Why a broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A log directory is locked by another broker.
    #[error("log dir {dir}: {reason}")]
    LogDir {
        /// The directory.
        dir: String,
        /// What went wrong.
        reason: String,
    },
    /// The listener cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Registration with the controller failed.
    #[error("broker registration failed: {0}")]
    Register(MetadataError),
    /// A listener's TLS key, certificates or trust store could not be loaded.
    #[error("{0}")]
    Tls(String),
    /// A config value that can only be checked at start-up (a host to resolve).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// This node could not catch up with the committed metadata.
    #[error(
        "cannot catch up with the committed metadata ({0}); partition directories are \
         only opened or moved aside once it has"
    )]
    CatchUp(MetadataError),
    /// The log directories cannot be used (a partition in two of them, or none online).
    #[error(transparent)]
    LogDirs(#[from] crate::log_dirs::LogDirsError),
}

/// How long shutdown waits for connections to finish their in-flight request.
const SHUTDOWN_DRAIN_MS: u64 = 10_000;
/// How long shutdown waits for jobs spawned outside its task set before it unlocks the
/// log directories anyway.
const SHUTDOWN_JOBS_MS: u64 = 1_000;
/// How long registration is retried while a previous session of this broker id is live.
const REGISTER_RETRY_MS: u64 = 30_000;
/// How long a registration or heartbeat may take before it is retried.
const CONTROLLER_CALL_TIMEOUT_MS: u64 = 10_000;
/// How often a broker in controlled shutdown asks the controller whether it may stop.
const CONTROLLED_SHUTDOWN_HEARTBEAT_MS: u64 = 100;
/// The longest a broker waits for the controller to let it stop (leadership moved away)
/// before it stops anyway: without a reachable quorum nothing can move, and waiting longer
/// only delays the restart.
const CONTROLLED_SHUTDOWN_MAX_MS: u64 = 5_000;

/// What every handler can reach.
pub struct BrokerContext {
    /// The validated config.
    pub config: Arc<BrokerConfig>,
    /// The metadata quorum.
    pub metadata: Arc<dyn MetadataPort>,
    /// The hosted partitions.
    pub replicas: Arc<ReplicaManager>,
    /// The APIs and versions served.
    pub api_versions: ApiVersionTable,
    /// The advertised inter-broker listener, with the real port when the configured one was 0.
    pub advertised: Listener,
    /// Every advertised listener, with real ports: a client is told the endpoints of the
    /// listener it came in on.
    pub advertised_listeners: Vec<Listener>,
    /// Set once the broker is shutting down (long polls end early).
    pub shutdown: watch::Receiver<bool>,
    /// This broker's epoch from its registration (shared with the replica manager).
    pub broker_epoch: Arc<AtomicI64>,
    /// The producer ids this broker may hand out (a block from the controller).
    pub producer_ids: tokio::sync::Mutex<ProducerIdBlock>,
    /// The classic group coordinator task (`groups.rs`).
    pub groups: crate::groups::GroupHandle,
    /// The transaction coordinator task (`txns.rs`).
    pub txns: crate::txns::TxnHandle,
    /// Share partitions and share sessions (`share_partitions.rs`).
    pub shares: crate::share_partitions::ShareManager,
    /// The share coordinator's state over `__share_group_state` (`share_state.rs`).
    pub share_state: crate::share_state::ShareStateStore,
    /// Connection admission, the request-bytes budget and limit warnings (`limits.rs`).
    pub limits: Arc<ConnectionLimits>,
    /// What the broker records for `/metrics` and the health checks (`metrics/`).
    pub metrics: Arc<crate::metrics::BrokerMetrics>,
    /// Client quota rates (`quotas.rs`).
    pub quotas: Arc<crate::quotas::QuotaManager>,
    /// Connection creation rates (`conn_rate.rs`).
    pub connection_rates: crate::conn_rate::ConnectionRates,
    /// The delegation tokens' SCRAM credentials, computed as their images arrive.
    pub token_credentials: crate::tokens::TokenCredentials,
}

/// A range of producer ids allocated to this broker: `next..end` are still free.
#[derive(Debug, Default)]
pub struct ProducerIdBlock {
    /// The next id to hand out.
    pub next: i64,
    /// One past the last id of the block.
    pub end: i64,
}

impl BrokerContext {
    /// The advertised listener named `name` (a connection's own listener), else the
    /// inter-broker one.
    pub fn advertised_for(&self, name: &str) -> &Listener {
        self.advertised_listeners
            .iter()
            .find(|l| l.name == name)
            .unwrap_or(&self.advertised)
    }

    /// The advertised listener of the request being handled (Kafka answers Metadata,
    /// FindCoordinator and DescribeCluster with the endpoints of the listener the request
    /// came in on); the inter-broker one outside a request.
    pub fn advertised_here(&self) -> &Listener {
        match crate::principal::current_listener() {
            Some(name) => self.advertised_for(&name),
            None => &self.advertised,
        }
    }
}

impl std::fmt::Debug for BrokerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerContext")
            .field("advertised", &self.advertised)
            .finish_non_exhaustive()
    }
}

/// The APIs this broker serves, at Kafka 4.1's version ranges.
pub fn served_api_versions() -> ApiVersionTable {
    ApiVersionTable::new(crate::handlers::SERVED_APIS.iter().copied())
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    context: Arc<BrokerContext>,
    /// Where the inter-broker listener is bound.
    local_addr: SocketAddr,
    /// Where each listener is bound, by name.
    local_addrs: Vec<(String, SocketAddr)>,
    /// Where the HTTP listener (metrics, health) is bound, if it runs.
    http_addr: Option<SocketAddr>,
    /// The HTTP listener's security and the console's schema registry.
    http_shared: Arc<crate::http::HttpShared>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// The periodic heartbeat, stopped when controlled shutdown takes over heartbeating.
    heartbeats: tokio::task::AbortHandle,
    connections_done: tokio::sync::oneshot::Receiver<()>,
}

impl Broker {
    /// Starts a broker: data dir lock, listener, logs, registration, accept loop.
    pub async fn start(
        config: BrokerConfig,
        metadata: Arc<dyn MetadataPort>,
    ) -> Result<Broker, StartError> {
        strom_metrics::process::mark_start();
        let config = Arc::new(config);
        let overrides = crate::limits::resolve_overrides(&config).await?;
        let limits = Arc::new(ConnectionLimits::new(&config, overrides));
        // Every log directory locked, identified and scanned (`log_dirs.rs`); one that
        // cannot be is offline from the start, and no directory online fails start-up.
        let dirs = match crate::log_dirs::LogDirs::open(
            &config.log_dirs,
            &config.cluster_id,
            config.node_id,
        ) {
            Ok(dirs) => Arc::new(dirs),
            Err(crate::log_dirs::LogDirsError::InUse { dir }) => {
                return Err(StartError::LogDir {
                    dir: dir.display().to_string(),
                    reason: "is in use by another broker (.lock is held)".to_string(),
                })
            }
            Err(error) => return Err(error.into()),
        };
        // Every listener is bound (and its TLS files read) before anything is registered,
        // so that a taken port or a bad key fails start-up at once, naming it.
        let mut bound = Vec::new();
        for served in &config.listeners.served {
            let runtime =
                ListenerRuntime::new(served, config.listeners.failed_authentication_delay_ms)
                    .map_err(|e| StartError::Tls(e.to_string()))?;
            let address = served.listener.bind_address();
            let listener =
                TcpListener::bind(&address)
                    .await
                    .map_err(|source| StartError::Bind {
                        address: address.clone(),
                        source,
                    })?;
            let local = listener.local_addr().map_err(|source| StartError::Bind {
                address: address.clone(),
                source,
            })?;
            bound.push((listener, Arc::new(runtime), local));
        }
        let local_addrs: Vec<(String, SocketAddr)> = bound
            .iter()
            .map(|(_, runtime, local)| (runtime.name.clone(), *local))
            .collect();
        let Some(local_addr) = local_addrs
            .iter()
            .find(|(name, _)| *name == config.inter_broker_listener_name)
            .map(|(_, addr)| *addr)
        else {
            return Err(StartError::Tls(format!(
                "inter.broker.listener.name {} is not bound",
                config.inter_broker_listener_name
            )));
        };
        // The HTTP listener is bound before anything is registered, so that a taken port
        // fails start-up at once with its key named.
        let http_shared = crate::http::HttpShared::new(&config.metrics)?;
        let http_listener = match &config.metrics.http_listener {
            Some(http) => {
                crate::http::bind(
                    http,
                    config.metrics.http_listener_set,
                    config.metrics.http_authentication,
                )
                .await?
            }
            None => None,
        };
        let http_addr = http_listener.as_ref().and_then(|l| l.local_addr().ok());
        let advertised_listeners: Vec<Listener> = config
            .listeners
            .advertised
            .iter()
            .map(|listener| {
                let mut advertised = listener.clone();
                if advertised.port == 0 {
                    if let Some((_, local)) = local_addrs.iter().find(|(n, _)| *n == listener.name)
                    {
                        advertised.port = local.port();
                    }
                }
                if advertised.host.is_empty() || advertised.host == "0.0.0.0" {
                    advertised.host = "127.0.0.1".to_string();
                }
                advertised
            })
            .collect();
        let advertised = advertised_listeners
            .iter()
            .find(|l| l.name == config.inter_broker_listener_name)
            .cloned()
            .unwrap_or_else(|| config.advertised_listener.clone());
        let broker_epoch = Arc::new(AtomicI64::new(-1));
        let replicas = Arc::new(ReplicaManager::new(
            Arc::clone(&config),
            Arc::clone(&broker_epoch),
            dirs,
        ));
        let (shutdown, shutdown_rx) = watch::channel(false);
        replicas.fetchers.start(
            Arc::clone(&metadata),
            Arc::clone(&broker_epoch),
            shutdown_rx.clone(),
        );
        let (groups, group_inbox) = crate::groups::GroupHandle::new();
        let (txns, txn_inbox) = crate::txns::TxnHandle::new();
        let context = Arc::new(BrokerContext {
            config: Arc::clone(&config),
            metadata: Arc::clone(&metadata),
            replicas: Arc::clone(&replicas),
            api_versions: served_api_versions(),
            advertised,
            advertised_listeners,
            shutdown: shutdown_rx,
            broker_epoch,
            producer_ids: tokio::sync::Mutex::new(ProducerIdBlock::default()),
            groups,
            txns,
            shares: crate::share_partitions::ShareManager::default(),
            share_state: crate::share_state::ShareStateStore::default(),
            limits: Arc::clone(&limits),
            metrics: Arc::new(crate::metrics::BrokerMetrics::new(config.metrics.clone())),
            quotas: Arc::new(crate::quotas::QuotaManager::new(config.quotas.clone())),
            connection_rates: crate::conn_rate::ConnectionRates::new(
                config.quotas.clone(),
                config.node_id,
                &config.listeners.inter_broker_listener_name,
                config.listeners.served.len(),
            ),
            token_credentials: crate::tokens::TokenCredentials::default(),
        });
        context
            .token_credentials
            .sync(&config.tokens, &context.metadata.image());
        if let Some(http_listener) = http_listener {
            // Serves from now on (readiness says "start-up in progress" until the end of
            // start); stops when shutdown begins or the broker is dropped.
            let mut stop = context.shutdown.clone();
            tokio::spawn(crate::http::serve(
                http_listener,
                Arc::clone(&context),
                Arc::clone(&http_shared),
                async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                },
            ));
        }
        // Roles come from an image that holds this registration (which reflects what the
        // controller did about this broker's previous incarnation): reconcile runs after it.
        register(&context).await?;
        // The partition directories are matched against an image that holds everything
        // committed, never against an older one: an older image lacks topics whose data is
        // on disk, and directories would be moved aside (or claimed wrongly) for it.
        let image = catch_up(&context).await?;
        let sweeping = Arc::clone(&replicas);
        let _ = tokio::task::spawn_blocking(move || sweeping.sweep_orphans(&image)).await;
        replicas.reconcile_latest(&metadata).await;
        // Moves between log directories a restart interrupted go on from their copies.
        crate::replica_move::resume_pending(&replicas, &metadata);
        // Replicas found damaged (or otherwise unopenable) are reported at once (KIP-858),
        // so the controller moves their leadership now rather than at the next tick.
        if !replicas.offline_replicas().is_empty() {
            if let Err(error) = send_heartbeat(&context, false).await {
                tracing::warn!(%error, "reporting offline replicas failed; the next heartbeat retries");
            }
        }

        let mut tasks = JoinSet::new();
        tasks.spawn(follow_metadata(Arc::clone(&context)));
        let heartbeats = tasks.spawn(heartbeat(Arc::clone(&context)));
        tasks.spawn(maintain(Arc::clone(&context)));
        tasks.spawn(crate::scrubber::run(Arc::clone(&context)));
        tasks.spawn(crate::groups::run(Arc::clone(&context), group_inbox));
        tasks.spawn(crate::txns::run(Arc::clone(&context), txn_inbox));
        tasks.spawn(crate::share_partitions::run(Arc::clone(&context)));
        tasks.spawn(limits.report_loop());
        if let Some(queue) = replicas.take_alter_receiver() {
            tasks.spawn(crate::replication::alter_partitions(
                Arc::clone(&context),
                queue,
            ));
        }
        tasks.spawn(crate::replication::expire_isr(Arc::clone(&context)));
        tasks.spawn(crate::replication::checkpoint_high_watermarks(Arc::clone(
            &context,
        )));
        let (done_tx, connections_done) = tokio::sync::oneshot::channel();
        tasks.spawn(accept_all(bound, Arc::clone(&context), done_tx));
        context.metrics.health.set_started();
        tracing::info!(%local_addr, advertised = ?context.advertised, node_id = config.node_id,
            ?http_addr, "broker ready");
        Ok(Broker {
            context,
            local_addr,
            local_addrs,
            http_addr,
            http_shared,
            shutdown,
            tasks,
            heartbeats,
            connections_done,
        })
    }

    /// The address the inter-broker listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the listener `name` is bound to.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.local_addrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, addr)| *addr)
    }

    /// The address the HTTP listener (metrics, health) is bound to, if it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Whether the HTTP listener serves TLS (`https://`).
    pub fn http_tls(&self) -> bool {
        self.http_shared.tls.is_some()
    }

    /// Checks a user name and password against the broker's SASL users (PLAIN JAAS users,
    /// SCRAM credentials), as the HTTP listener's Basic authentication does; blocking.
    pub fn credentials_checker(&self) -> crate::http_auth::CredentialsChecker {
        let gate = crate::http_auth::Gate {
            context: Arc::clone(&self.context),
            security: Arc::clone(&self.http_shared.security),
        };
        Arc::new(move |user, password| crate::http_auth::verify(&gate, user, password))
    }

    /// Points the console at a schema registry (the in-process one, once started).
    pub fn set_schema_registry(&self, access: strom_registry::access::RegistryAccess) {
        self.http_shared.set_registry(access);
    }

    /// The shared context (for tests and the binary).
    pub fn context(&self) -> &Arc<BrokerContext> {
        &self.context
    }

    /// Clean shutdown, in Kafka's order: a controlled shutdown first, while the broker
    /// still serves (the controller moves every leadership it holds to another ISR member
    /// and takes it out of the ISRs; requests for partitions it no longer leads answer
    /// NOT_LEADER_OR_FOLLOWER, which clients retry against the new leader), until the
    /// controller lets it go or `CONTROLLED_SHUTDOWN_MAX_MS` passes; then stop accepting,
    /// let every connection finish its in-flight request (long polls end early), stop the
    /// fetchers, checkpoint the high watermarks, and flush and close every log.
    pub async fn shutdown(mut self) {
        // Readiness turns false first, so orchestrators stop routing here while the
        // controlled shutdown moves leadership away.
        self.context.metrics.health.set_stopping();
        self.heartbeats.abort();
        controlled_shutdown(&self.context).await;
        self.shutdown.send_replace(true);
        let drain = Duration::from_millis(SHUTDOWN_DRAIN_MS);
        if tokio::time::timeout(drain, &mut self.connections_done)
            .await
            .is_err()
        {
            tracing::warn!("connections still busy after the drain timeout; closing anyway");
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let replicas = Arc::clone(&self.context.replicas);
        let _ = tokio::task::spawn_blocking(move || replicas.close_all()).await;
        // Jobs spawned outside `tasks` (share-state initialization, marker writes, member
        // releases) and the HTTP listener hold the context until they finish: they are given
        // a moment (no long-lived clone of the context may exist, or every shutdown waits
        // it out). Blocking jobs an aborted task was waiting on (a maintenance or compaction
        // pass, a high-watermark checkpoint, a reconcile, a replica move's swap) hold the
        // replica manager and write into the log directories: with every log closed they
        // end soon, and are waited for longer. Then the directories are unlocked, so a
        // broker restarted in this process (the tests do) can lock them; a process exits
        // right after in production.
        let context = &self.context;
        wait_while(|| Arc::strong_count(context) > 1, SHUTDOWN_JOBS_MS).await;
        let replicas_busy = || Arc::strong_count(&context.replicas) > 1;
        wait_while(replicas_busy, SHUTDOWN_DRAIN_MS).await;
        if replicas_busy() {
            tracing::warn!(
                "blocking jobs still use the log directories {SHUTDOWN_DRAIN_MS} ms after \
                 shutdown began; unlocking them anyway"
            );
        }
        self.context.replicas.log_dirs().release_locks();
        tracing::info!("broker stopped");
    }
}

/// Polls `busy` every 20 ms until it is false or `ms` have passed.
async fn wait_while(busy: impl Fn() -> bool, ms: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    while busy() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// RegisterBroker, then a heartbeat that asks to be unfenced (Kafka's broker lifecycle).
async fn register(context: &BrokerContext) -> Result<(), StartError> {
    let config = &context.config;
    let request = ControllerRequest::RegisterBroker(RegisterBrokerRequest {
        broker_id: config.node_id,
        incarnation_id: uuid::Uuid::new_v4(),
        endpoints: context
            .advertised_listeners
            .iter()
            .map(|listener| Endpoint {
                listener_name: listener.name.clone(),
                host: listener.host.clone(),
                port: listener.port,
                security_protocol: config
                    .listeners
                    .served
                    .iter()
                    .find(|s| s.listener.name == listener.name)
                    .map_or(0, |s| s.protocol.id()),
            })
            .collect(),
        rack: config.rack.clone(),
    });
    let reply = register_with_retry(context, request).await?;
    let ControllerReply::RegisterBroker { broker_epoch } = reply else {
        return Err(StartError::Register(MetadataError::Unavailable(format!(
            "unexpected reply {reply:?}"
        ))));
    };
    context.broker_epoch.store(broker_epoch, Ordering::Release);
    send_heartbeat(context, false)
        .await
        .map_err(StartError::Register)?;
    Ok(())
}

/// The committed image once this node has applied it (bounded like registration).
async fn catch_up(context: &BrokerContext) -> Result<strom_meta::MetadataImage, StartError> {
    let limit = Duration::from_millis(REGISTER_RETRY_MS);
    match tokio::time::timeout(limit, context.metadata.caught_up_image()).await {
        Ok(result) => result.map_err(StartError::CatchUp),
        Err(_) => Err(StartError::CatchUp(MetadataError::Unavailable(format!(
            "not caught up after {REGISTER_RETRY_MS} ms"
        )))),
    }
}

/// Registration waits for the quorum: a node that just started may not have a leader yet,
/// and a restarted broker may find its previous incarnation's session still live on a
/// controller that outlived it (Kafka's broker keeps retrying until that session expires).
async fn register_with_retry(
    context: &BrokerContext,
    request: ControllerRequest,
) -> Result<ControllerReply, StartError> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(REGISTER_RETRY_MS);
    loop {
        let result = call_controller(context, request.clone()).await;
        let retriable = match &result {
            Err(MetadataError::Refused(error)) => {
                error.code == strom_meta::ErrorCode::DuplicateBrokerRegistration
            }
            Err(MetadataError::Unavailable(_)) => true,
            Ok(_) => false,
        };
        if !retriable || tokio::time::Instant::now() >= deadline {
            return result.map_err(StartError::Register);
        }
        if let Err(error) = &result {
            tracing::info!(%error, "broker registration not accepted yet; retrying");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn call_controller(
    context: &BrokerContext,
    request: ControllerRequest,
) -> Result<ControllerReply, MetadataError> {
    let limit = Duration::from_millis(CONTROLLER_CALL_TIMEOUT_MS);
    match tokio::time::timeout(limit, context.metadata.submit(request)).await {
        Ok(result) => result,
        Err(_) => Err(MetadataError::Unavailable(
            "controller call timed out".into(),
        )),
    }
}

async fn send_heartbeat(
    context: &BrokerContext,
    want_shutdown: bool,
) -> Result<ControllerReply, MetadataError> {
    let request = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id: context.config.node_id,
        broker_epoch: context.broker_epoch.load(Ordering::Acquire),
        want_fence: false,
        want_shutdown,
        offline_replicas: context
            .replicas
            .offline_replicas()
            .into_iter()
            .map(|tp| (tp.topic_id, tp.partition))
            .collect(),
    });
    call_controller(context, request).await
}

async fn heartbeat(context: Arc<BrokerContext>) {
    // `broker.heartbeat.interval.ms` (Kafka's 2 s against a 9 s session by default).
    let period = Duration::from_millis(context.config.broker_heartbeat_interval_ms);
    let mut interval = tokio::time::interval(period);
    loop {
        interval.tick().await;
        if let Err(error) = send_heartbeat(&context, false).await {
            tracing::warn!(%error, "broker heartbeat failed");
        }
    }
}

/// Asks to shut down until the controller says so: the first such heartbeat puts the
/// broker in controlled shutdown and moves its leaderships away (committed before the
/// reply), a later one, once it leads nothing, fences it and grants the shutdown. Bounded
/// by `CONTROLLED_SHUTDOWN_MAX_MS`.
async fn controlled_shutdown(context: &BrokerContext) {
    let asking = async {
        loop {
            match send_heartbeat(context, true).await {
                Ok(ControllerReply::BrokerHeartbeat(reply)) if reply.should_shutdown => {
                    tracing::info!("controlled shutdown granted");
                    return;
                }
                Ok(_) => tracing::debug!("controlled shutdown in progress"),
                Err(error) => tracing::warn!(%error, "controlled shutdown heartbeat failed"),
            }
            tokio::time::sleep(Duration::from_millis(CONTROLLED_SHUTDOWN_HEARTBEAT_MS)).await;
        }
    };
    let limit = Duration::from_millis(CONTROLLED_SHUTDOWN_MAX_MS);
    if tokio::time::timeout(limit, asking).await.is_err() {
        tracing::warn!(
            "the controller did not approve the controlled shutdown within {} ms; stopping anyway",
            CONTROLLED_SHUTDOWN_MAX_MS
        );
    }
}

/// Opens and deletes logs as committed images arrive.
async fn follow_metadata(context: Arc<BrokerContext>) {
    let mut images = context.metadata.watch();
    while images.changed().await.is_ok() {
        let image = images.borrow_and_update().clone();
        // A few PBKDF2 runs when tokens are created: rare, and bounded by the token count.
        context
            .token_credentials
            .sync(&context.config.tokens, &image);
        context.replicas.reconcile_latest(&context.metadata).await;
        // Deleted topics stop being exposed and free their metric series.
        context.metrics.forget_topics(&image);
    }
}

/// How often the cheap log duties run (the `flush.ms` check, expired file removal).
const MAINTENANCE_TICK_MS: u64 = 1_000;

/// How often partitions whose log could not be opened are tried again.
const REOPEN_RETRY_MS: u64 = 5_000;

/// Periodic log duties: every tick the cheap ones, retention every
/// `log.retention.check.interval.ms`, compaction every `log.cleaner.backoff.ms`, the
/// recovery-point checkpoint every `log.flush.offset.checkpoint.interval.ms`.
async fn maintain(context: Arc<BrokerContext>) {
    let mut interval = tokio::time::interval(Duration::from_millis(MAINTENANCE_TICK_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = tokio::time::Instant::now();
    let (mut last_retention, mut last_compaction, mut last_checkpoint, mut last_reopen) =
        (started, started, started, started);
    let mut last_producer_expiry = started;
    let producer_expiry_every = Duration::from_millis(
        context
            .config
            .transactions
            .producer_id_expiration_check_interval_ms,
    );
    let producer_expiration_ms = context.config.transactions.producer_id_expiration_ms;
    let retention_every = Duration::from_millis(context.config.log_retention_check_interval_ms);
    let compaction_every = Duration::from_millis(context.config.log_cleaner_backoff_ms);
    let checkpoint_every =
        Duration::from_millis(context.config.log_flush_offset_checkpoint_interval_ms);
    loop {
        interval.tick().await;
        let now = tokio::time::Instant::now();
        let due = |last: tokio::time::Instant, every: Duration| now.duration_since(last) >= every;
        let retention = due(last_retention, retention_every);
        let compaction = due(last_compaction, compaction_every);
        let checkpoint = due(last_checkpoint, checkpoint_every);
        if retention {
            last_retention = now;
        }
        if compaction {
            last_compaction = now;
        }
        if checkpoint {
            last_checkpoint = now;
        }
        let producer_expiry = due(last_producer_expiry, producer_expiry_every);
        if producer_expiry {
            last_producer_expiry = now;
        }
        let replicas = Arc::clone(&context.replicas);
        let online_dirs = tokio::task::spawn_blocking(move || {
            if producer_expiry {
                replicas.expire_producers(now_ms(), producer_expiration_ms);
            }
            replicas.maintain(now_ms(), retention, compaction, checkpoint);
            // A log that failed (write or fsync) takes its whole directory offline
            // (KIP-858); the next heartbeat reports its replicas offline.
            replicas.fail_dirs_of_failed_logs()
        })
        .await
        .unwrap_or(1);
        if online_dirs == 0 {
            // Kafka halts when its last log directory fails: nothing can be served, and a
            // stopped broker is fenced at once, so leadership moves to other brokers.
            tracing::error!(failed = %context.replicas.log_dirs().failures(),
                "every log directory has failed; the broker stops (exit status 1). Repair the disks and restart it");
            std::process::exit(1);
        }
        // Logs that could not be opened (a full disk, say; not damage) are tried again.
        if now.duration_since(last_reopen) >= Duration::from_millis(REOPEN_RETRY_MS)
            && context.replicas.has_offline()
        {
            last_reopen = now;
            context.replicas.reconcile_latest(&context.metadata).await;
        }
    }
}

/// Accepts connections until shutdown. Each is admitted or closed at once by
/// `ConnectionLimits::admit` (per-address limits, `max.connections`), so the listener's
/// queue never backs up behind a full broker.
/// Accepts on every listener until shutdown; `done` fires once every connection is over.
async fn accept_all(
    bound: Vec<(TcpListener, Arc<ListenerRuntime>, SocketAddr)>,
    context: Arc<BrokerContext>,
    done: tokio::sync::oneshot::Sender<()>,
) {
    let mut loops = JoinSet::new();
    for (listener, runtime, _) in bound {
        loops.spawn(accept_loop(listener, runtime, Arc::clone(&context)));
    }
    while loops.join_next().await.is_some() {}
    let _ = done.send(());
}

async fn accept_loop(
    listener: TcpListener,
    runtime: Arc<ListenerRuntime>,
    context: Arc<BrokerContext>,
) {
    let mut shutdown = context.shutdown.clone();
    let mut connections = JoinSet::new();
    // Dynamic listener.name.<name>.ssl.* values applied so far (`dynamic_tls.rs`).
    let mut applied_tls = crate::dynamic_tls::Applied::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        while connections.try_join_next().is_some() {}
        match accepted {
            Ok((stream, peer)) => {
                // Refused: the stream is dropped, which closes it before a byte is read.
                let Some(slot) = context.limits.admit(peer) else {
                    context.metrics.connections.refused.inc();
                    continue;
                };
                // KIP-612: over the connection creation rate, this connection and the
                // listener wait (the next clients queue in the kernel's backlog).
                let delay = context
                    .connection_rates
                    .record(&context.metadata.image(), &runtime.name);
                if !delay.is_zero() {
                    context.metrics.connections.creation_throttled.inc();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.wait_for(|stop| *stop) => break,
                    }
                }
                // KIP-612 per IP: over its address's `connection_creation_rate`, the
                // connection is not served; it is closed after the throttle time, as Kafka's
                // acceptor does (the slot stays taken until then, so `max.connections`
                // bounds the sockets held), and the acceptor goes on meanwhile.
                if let Some(throttle) = context.connection_rates.record_ip(
                    &context.metadata.image(),
                    &runtime.name,
                    peer.ip(),
                ) {
                    context.metrics.connections.ip_throttled.inc();
                    tracing::debug!(%peer, ?throttle, listener = %runtime.name,
                        "connection_creation_rate of this address exceeded; closing the connection after the throttle");
                    let mut stop = shutdown.clone();
                    connections.spawn(async move {
                        let _held = (stream, slot);
                        tokio::select! {
                            _ = tokio::time::sleep(throttle) => {}
                            _ = stop.wait_for(|stop| *stop) => {}
                        }
                    });
                    continue;
                }
                // Counted as Kafka's processors count: a connection throttled by its
                // address above never reaches one.
                context.metrics.connections.created.inc();
                applied_tls.refresh(&context, &runtime);
                let context = Arc::clone(&context);
                connections.spawn(crate::connection::serve(
                    stream,
                    peer,
                    context,
                    slot,
                    Arc::clone(&runtime),
                ));
            }
            Err(error) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}
