//! The shared core of every client: the metadata cache, one connection per broker, group
//! coordinator lookup, and retries with backoff.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use uuid::Uuid;

use crate::config::ClientConfig;
use crate::conn::{Connection, ConnectionOptions};
use crate::error::{ClientError, Result};
use crate::retry::{Backoff, RetryState};

/// A broker as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition's placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// -1 while no leader is known.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    /// Kafka's error code for the partition (0 = fine).
    pub error_code: i16,
}

/// One topic's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub is_internal: bool,
    /// Sorted by partition index.
    pub partitions: Vec<PartitionInfo>,
}

/// A snapshot of the cluster as the last Metadata response described it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Any reachable broker.
    Any,
    /// A broker by node id.
    Broker(i32),
    /// The coordinator of a consumer group.
    GroupCoordinator(String),
    /// The coordinator of a transactional id.
    TransactionCoordinator(String),
}

/// Shared by clones of Admin, Producer, Consumer built on one cluster.
pub(crate) struct Cluster {
    config: ClientConfig,
    options: ConnectionOptions,
    /// Keyed by broker id; bootstrap connections use negative keys (-1 - index).
    conns: tokio::sync::Mutex<HashMap<i32, Arc<Connection>>>,
    meta: RwLock<(ClusterMetadata, Option<Instant>)>,
    coordinators: Mutex<HashMap<String, i32>>,
}

impl Cluster {
    /// A cluster handle; nothing is connected until the first request.
    pub fn new(config: ClientConfig) -> Result<Arc<Cluster>> {
        if config.bootstrap_servers.is_empty() {
            return Err(ClientError::Config {
                key: "bootstrap.servers".into(),
                reason: "lists no server".into(),
            });
        }
        let options = ConnectionOptions {
            client_id: config.client_id.clone(),
            request_timeout_ms: config.request_timeout_ms,
            setup_timeout_ms: config.connection_setup_timeout_ms,
            frame_bytes_max: config.frame_bytes_max,
            security: config.security.clone(),
        };
        Ok(Arc::new(Cluster {
            config,
            options,
            conns: tokio::sync::Mutex::new(HashMap::new()),
            meta: RwLock::new((ClusterMetadata::default(), None)),
            coordinators: Mutex::new(HashMap::new()),
        }))
    }

    pub fn backoff(&self) -> Backoff {
        Backoff {
            base_ms: self.config.retry_backoff_ms,
            max_ms: self.config.retry_backoff_max_ms,
        }
    }

    /// A retry budget of `default.api.timeout.ms`.
    pub fn retry_state(&self) -> RetryState {
        RetryState::new(
            self.backoff(),
            u32::MAX,
            Duration::from_millis(self.config.default_api_timeout_ms),
        )
    }

    /// Runs `op` until it succeeds, fails with a non-retriable error, or the retry budget is
    /// spent; refreshes metadata or the coordinator when the error asks for it.
    pub async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut retry = self.retry_state();
        loop {
            let err = match op().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_retriable() {
                return Err(err);
            }
            if err.needs_metadata_refresh() {
                self.invalidate_metadata();
            }
            if err.needs_coordinator_refresh() {
                self.forget_coordinators();
            }
            let Some(delay) = retry.next_delay() else {
                return Err(err);
            };
            tracing::debug!(what, error = %err, attempt = retry.attempts(), "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends the request `build` makes for the negotiated version to `target`.
    pub async fn call<R: Request>(
        &self,
        target: &Target,
        build: impl FnOnce(i16) -> Result<R>,
    ) -> Result<R::Response> {
        let conn = self.connection(target).await?;
        self.call_on(conn, build).await
    }

    /// Like [`Self::call`] to any broker, without the coordinator or metadata lookups
    /// (which themselves use this).
    async fn call_any<R: Request>(
        &self,
        build: impl FnOnce(i16) -> Result<R>,
    ) -> Result<R::Response> {
        let conn = self.any_connection().await?;
        self.call_on(conn, build).await
    }

    /// Like [`Self::call`] with its own response timeout.
    pub async fn call_timeout<R: Request>(
        &self,
        target: &Target,
        timeout_ms: u64,
        build: impl FnOnce(i16) -> Result<R>,
    ) -> Result<R::Response> {
        let conn = self.connection(target).await?;
        self.call_on_timeout(conn, timeout_ms, build).await
    }

    async fn call_on<R: Request>(
        &self,
        conn: Arc<Connection>,
        build: impl FnOnce(i16) -> Result<R>,
    ) -> Result<R::Response> {
        self.call_on_timeout(conn, self.config.request_timeout_ms, build)
            .await
    }

    async fn call_on_timeout<R: Request>(
        &self,
        conn: Arc<Connection>,
        timeout_ms: u64,
        build: impl FnOnce(i16) -> Result<R>,
    ) -> Result<R::Response> {
        let version = conn.version_of::<R>()?;
        let request = build(version)?;
        let result = conn
            .send_version_timeout(&request, version, timeout_ms)
            .await;
        if let Err(e) = &result {
            if matches!(e, ClientError::Disconnected { .. } | ClientError::Io { .. }) {
                self.drop_connection(&conn).await;
            }
        }
        result
    }

    /// The negotiated version of `R` at `target` (connecting if needed).
    pub async fn version_at<R: Request>(&self, target: &Target) -> Result<i16> {
        self.connection(target).await?.version_of::<R>()
    }

    /// A live connection for `target`.
    pub async fn connection(&self, target: &Target) -> Result<Arc<Connection>> {
        match target {
            Target::Any => self.any_connection().await,
            Target::Broker(id) => self.broker_connection(*id).await,
            Target::GroupCoordinator(group) => {
                let id = self.coordinator(group).await?;
                self.broker_connection(id).await
            }
            Target::TransactionCoordinator(transactional_id) => {
                let id = self.txn_coordinator(transactional_id).await?;
                self.broker_connection(id).await
            }
        }
    }

    async fn broker_connection(&self, id: i32) -> Result<Arc<Connection>> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(&id).filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let addr = match self.broker(id) {
            Some(b) => b.addr(),
            None => {
                drop(conns);
                self.refresh_metadata(&[]).await?;
                conns = self.conns.lock().await;
                self.broker(id)
                    .map(|b| b.addr())
                    .ok_or_else(|| ClientError::Broker {
                        code: 8,
                        name: "BROKER_NOT_AVAILABLE",
                        message: Some(format!("broker {id} is not in the cluster metadata")),
                        context: "connect".into(),
                    })?
            }
        };
        // The bootstrap connection to this address serves as the broker's connection:
        // one connection per broker.
        let existing = conns
            .values()
            .find(|c| !c.is_closed() && c.addr() == addr)
            .cloned();
        let conn = match existing {
            Some(c) => c,
            None => Arc::new(Connection::connect(&addr, &self.options).await?),
        };
        conns.retain(|_, c| !Arc::ptr_eq(c, &conn));
        conns.insert(id, conn.clone());
        Ok(conn)
    }

    async fn any_connection(&self) -> Result<Arc<Connection>> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.values().find(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let known: Vec<(i32, String)> = self
            .read_meta()
            .brokers
            .values()
            .map(|b| (b.id, b.addr()))
            .collect();
        let bootstrap = self
            .config
            .bootstrap_servers
            .iter()
            .enumerate()
            .map(|(i, a)| (-1 - i32::try_from(i).unwrap_or(i32::MAX - 1), a.clone()));
        let mut last_error = None;
        let mut refused = None;
        for (key, addr) in known.into_iter().chain(bootstrap) {
            match Connection::connect(&addr, &self.options).await {
                Ok(c) => {
                    let c = Arc::new(c);
                    conns.insert(key, c.clone());
                    return Ok(c);
                }
                Err(e) => {
                    tracing::debug!(addr, error = %e, "broker unreachable");
                    if matches!(e, ClientError::Authentication(_)) {
                        refused = Some(e);
                    } else {
                        last_error = Some(e);
                    }
                }
            }
        }
        // A broker that refused our credentials: fatal, not retried (as Kafka's clients
        // treat an AuthenticationException).
        if let Some(refused) = refused {
            return Err(refused);
        }
        tracing::warn!(error = ?last_error, "no broker reachable");
        Err(ClientError::NoBrokerAvailable(
            self.config.bootstrap_servers.join(","),
        ))
    }

    async fn drop_connection(&self, conn: &Arc<Connection>) {
        let mut conns = self.conns.lock().await;
        conns.retain(|_, c| !Arc::ptr_eq(c, conn));
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.conns.lock().await.clear();
    }

    fn read_meta(&self) -> ClusterMetadata {
        self.meta.read().map(|m| m.0.clone()).unwrap_or_default()
    }

    fn broker(&self, id: i32) -> Option<BrokerInfo> {
        self.meta.read().ok()?.0.brokers.get(&id).cloned()
    }

    /// Marks the cache stale so the next lookup asks the cluster.
    pub fn invalidate_metadata(&self) {
        if let Ok(mut m) = self.meta.write() {
            m.1 = None;
        }
    }

    pub fn forget_coordinators(&self) {
        if let Ok(mut c) = self.coordinators.lock() {
            c.clear();
        }
    }

    /// Asks any broker for metadata of `topics` (all topics when empty) and merges it into
    /// the cache. Auto-creation is never requested here.
    pub async fn refresh_metadata(&self, topics: &[String]) -> Result<ClusterMetadata> {
        self.fetch_metadata(topics, false).await
    }

    /// Like [`Self::refresh_metadata`], optionally asking the broker to create missing
    /// topics (`allow_auto_topic_creation`, as the Java producer does).
    pub async fn fetch_metadata(
        &self,
        topics: &[String],
        auto_create: bool,
    ) -> Result<ClusterMetadata> {
        let response: MetadataResponse = self
            .call_any(|version| {
                let topics = if topics.is_empty() && version >= 1 {
                    None
                } else {
                    Some(
                        topics
                            .iter()
                            .map(|t| {
                                MetadataRequestTopic::default()
                                    .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                            })
                            .collect(),
                    )
                };
                Ok(MetadataRequest::default()
                    .with_topics(topics)
                    .with_allow_auto_topic_creation(auto_create))
            })
            .await?;
        Ok(self.merge_metadata(response, topics.is_empty()))
    }

    fn merge_metadata(&self, response: MetadataResponse, all_topics: bool) -> ClusterMetadata {
        let Ok(mut guard) = self.meta.write() else {
            return ClusterMetadata::default();
        };
        let (meta, refreshed) = &mut *guard;
        meta.cluster_id = response.cluster_id.map(|c| c.to_string());
        meta.controller_id = response.controller_id.0;
        meta.brokers = response
            .brokers
            .into_iter()
            .map(|b| {
                let info = BrokerInfo {
                    id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                };
                (info.id, info)
            })
            .collect();
        if all_topics {
            meta.topics.clear();
        }
        for t in response.topics {
            let Some(name) = t.name.map(|n| n.0.to_string()) else {
                continue;
            };
            if t.error_code != 0 {
                meta.topics.remove(&name);
                continue;
            }
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.into_iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.into_iter().map(|b| b.0).collect(),
                    offline_replicas: p.offline_replicas.into_iter().map(|b| b.0).collect(),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            meta.topics.insert(
                name.clone(),
                TopicInfo {
                    name,
                    id: t.topic_id,
                    is_internal: t.is_internal,
                    partitions,
                },
            );
        }
        *refreshed = Some(Instant::now());
        meta.clone()
    }

    fn fresh_topic(&self, topic: &str) -> Option<TopicInfo> {
        let guard = self.meta.read().ok()?;
        let (meta, refreshed) = &*guard;
        let max_age = Duration::from_millis(self.config.metadata_max_age_ms);
        refreshed.filter(|r| r.elapsed() < max_age)?;
        meta.topics.get(topic).cloned()
    }

    /// A topic's metadata, from the cache when fresh. `UNKNOWN_TOPIC_OR_PARTITION` when the
    /// cluster does not have it.
    pub async fn topic(&self, topic: &str, auto_create: bool) -> Result<TopicInfo> {
        if let Some(t) = self.fresh_topic(topic) {
            return Ok(t);
        }
        let meta = self
            .fetch_metadata(&[topic.to_string()], auto_create)
            .await?;
        meta.topics
            .get(topic)
            .cloned()
            .ok_or_else(|| unknown_topic(topic))
    }

    /// The leader of a partition (refreshing metadata when it is unknown).
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<i32> {
        let t = self.topic(topic, false).await?;
        let p = t
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| unknown_topic(&format!("{topic}-{partition}")))?;
        if p.leader < 0 {
            self.invalidate_metadata();
            return Err(
                ClientError::from_code(5, None, format!("{topic}-{partition}"))
                    .unwrap_or(ClientError::Closed),
            );
        }
        Ok(p.leader)
    }

    /// The coordinator of `group` (FindCoordinator, cached until an error clears it).
    pub async fn coordinator(&self, group: &str) -> Result<i32> {
        self.find_coordinator(group, 0, group.to_string()).await
    }

    /// The coordinator of a transactional id (FindCoordinator key type 1, cached as groups').
    pub async fn txn_coordinator(&self, transactional_id: &str) -> Result<i32> {
        self.find_coordinator(transactional_id, 1, format!("\u{0}txn:{transactional_id}"))
            .await
    }

    async fn find_coordinator(&self, key: &str, key_type: i8, cache_key: String) -> Result<i32> {
        let group = key;
        if let Some(id) = self
            .coordinators
            .lock()
            .ok()
            .and_then(|c| c.get(&cache_key).copied())
        {
            return Ok(id);
        }
        let response = self
            .call_any(|version| {
                let key = StrBytes::from_string(group.to_string());
                Ok(if version >= 4 {
                    FindCoordinatorRequest::default()
                        .with_key_type(key_type)
                        .with_coordinator_keys(vec![key])
                } else {
                    FindCoordinatorRequest::default()
                        .with_key_type(key_type)
                        .with_key(key)
                })
            })
            .await?;
        let (code, message, node, host, port) = match response.coordinators.first() {
            Some(c) => (
                c.error_code,
                c.error_message.as_ref().map(|m| m.to_string()),
                c.node_id,
                c.host.to_string(),
                c.port,
            ),
            None => (
                response.error_code,
                response.error_message.as_ref().map(|m| m.to_string()),
                response.node_id,
                response.host.to_string(),
                response.port,
            ),
        };
        let what = if key_type == 0 {
            "group"
        } else {
            "transactional id"
        };
        ClientError::check(code, message, format!("find coordinator of {what} {group}"))?;
        self.remember_broker(node, host, port);
        if let Ok(mut c) = self.coordinators.lock() {
            c.insert(cache_key, node.0);
        }
        Ok(node.0)
    }

    fn remember_broker(&self, node: BrokerId, host: String, port: i32) {
        if let Ok(mut m) = self.meta.write() {
            m.0.brokers.entry(node.0).or_insert(BrokerInfo {
                id: node.0,
                host,
                port,
                rack: None,
            });
        }
    }
}

pub(crate) fn unknown_topic(what: &str) -> ClientError {
    ClientError::UnknownTopic {
        what: what.to_string(),
    }
}

/// A `TopicName` from a `&str`.
pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A `StrBytes` from a `&str`.
pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}
