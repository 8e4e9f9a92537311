//! A running raft node: storage, transport server, openraft core and the controller task,
//! started from a [`NodeConfig`]; the API the broker and tools use.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::SnapshotPolicy;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::config::{ConfigError, NodeConfig};
use crate::conn::Conn;
use crate::controller_task::{Controller, ControllerTask, Job};
use crate::durable_log::{DurableLog, LogError};
use crate::fsutil::DirLock;
use crate::log_store::LogStore;
use crate::network::{now_ms, NetworkFactory, PeerClock};
use crate::security::SecurityContext;
use crate::server::Server;
use crate::state::{Applied, ReplicatedState, StateEvent};
use crate::state_machine::StateMachineStore;
use crate::types::{Node, NodeId, Raft};
use crate::wire::{
    kind, DescribeQuorumRequest, QuorumDescription, QuorumStatus, ReadStateRequest,
    ReplicaProgress, StateReply, SubmitError, SubmitRequest,
};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid raft configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Lock(std::io::Error),
    #[error("cannot read or write the node identity file: {0}")]
    Identity(std::io::Error),
    #[error("cannot read the bootstrap SCRAM users: {0}")]
    Bootstrap(std::io::Error),
    #[error(
        "node identity file {} is damaged: {reason}. It records which node.id owns this \
         directory; if you are sure that the directory belongs to node.id {configured}, \
         remove the file and restart (it is written again)",
        path.display()
    )]
    IdentityDamaged {
        path: std::path::PathBuf,
        reason: String,
        configured: NodeId,
    },
    #[error("data directory {dir} belongs to node {stored}, not to node.id {configured}")]
    WrongNode {
        dir: std::path::PathBuf,
        stored: NodeId,
        configured: NodeId,
    },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("cannot load the snapshot: {0}")]
    Snapshot(String),
    #[error(
        "metadata snapshot damaged: {reason}. {}",
        crate::recovery::recovery_advice(dir)
    )]
    SnapshotDamaged {
        dir: std::path::PathBuf,
        reason: String,
    },
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("raft failed to start: {0}")]
    Raft(String),
}

/// A raft node serving controller `K`. Cloning shares the node. Stop it with
/// [`RaftNode::shutdown`]: its own tasks hold clones, so dropping handles does not stop it.
pub struct RaftNode<K: Controller> {
    inner: Arc<Inner<K>>,
}

impl<K: Controller> Clone for RaftNode<K> {
    fn clone(&self) -> Self {
        RaftNode {
            inner: self.inner.clone(),
        }
    }
}

type Delta<K> = <<K as Controller>::State as ReplicatedState>::Delta;

struct Inner<K: Controller> {
    config: NodeConfig,
    raft: Raft,
    state: watch::Receiver<Applied<K::State>>,
    events: broadcast::Sender<StateEvent<Delta<K>>>,
    jobs: mpsc::Sender<Job<K>>,
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Released by `shutdown`, once raft no longer writes, so a restart can take it at once.
    lock: Mutex<Option<DirLock>>,
    /// When each peer last acknowledged replication (DescribeQuorum's times).
    clock: PeerClock,
    /// This node's metadata directory id (the node file's).
    directory_id: uuid::Uuid,
    /// When a leader last sent this node entries or a heartbeat (wall-clock ms; the start
    /// time until then): an observer that hears nothing asks to be taken in again.
    last_leader_contact_ms: std::sync::atomic::AtomicI64,
    /// When a refusal of another cluster's request was last logged at warn level, by what
    /// was refused (a misconfigured node retries every few hundred milliseconds: one line
    /// per kind per `REFUSAL_LOG_EVERY` is enough). Bounded: cleared past 64 kinds.
    refusal_logged: Mutex<BTreeMap<String, std::time::Instant>>,
    /// The controller listener's TLS and SASL, for the listener and every connection this
    /// node makes to another member.
    security: Arc<SecurityContext>,
}

/// How often a repeated refusal of another cluster's node is logged at warn level.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

impl<K: Controller> RaftNode<K> {
    /// Opens the data directory (locking it), replays snapshot + log, starts listening and
    /// joins (or, on first start, initializes) the quorum named by the configured voters.
    pub async fn start(config: NodeConfig, controller: K) -> Result<RaftNode<K>, StartError> {
        config.validate()?;
        // Key and trust stores are read now: a bad one fails start-up naming its key.
        let security = Arc::new(SecurityContext::new(config.security.clone())?);
        let lock = DirLock::acquire(&config.data_dir).map_err(StartError::Lock)?;
        let directory_id = check_node_identity(&config)?;
        // The snapshot first: its last entry counts as committed when the log is checked.
        let (sm, channels) =
            StateMachineStore::<K::State>::open(&config.data_dir, config.events_capacity).map_err(
                |e| match e.kind() {
                    std::io::ErrorKind::InvalidData => StartError::SnapshotDamaged {
                        dir: config.data_dir.clone(),
                        reason: e.to_string(),
                    },
                    _ => StartError::Snapshot(e.to_string()),
                },
            )?;
        let snapshot_last = channels.state.borrow().last_applied;
        let (log, report) =
            DurableLog::open_after_snapshot(&config.data_dir, config.log, snapshot_last, true)?;
        tracing::info!(
            "raft log {}: {} entries in {} segments, last {:?}, {} torn bytes cut",
            config.data_dir.display(),
            log.entry_count(),
            report.segments,
            log.last_log_id(),
            report.torn_bytes_cut
        );
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.listen_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.listen_addr,
            source,
        })?;
        let clock = PeerClock::default();
        // Created before raft: storage writes waiting for disk space give up on shutdown.
        let (shutdown, shutdown_rx) = watch::channel(false);
        let log = LogStore::new(log).with_shutdown(shutdown_rx.clone());
        let sm = sm.with_shutdown(shutdown_rx.clone());
        let raft = start_raft(&config, log, sm, clock.clone(), security.clone()).await?;
        let (jobs_tx, jobs_rx) = mpsc::channel(config.submit_queue_max);
        let task = ControllerTask {
            raft: raft.clone(),
            state: channels.state.clone(),
            controller,
            jobs: jobs_rx,
            submit_timeout: Duration::from_millis(config.submit_timeout_ms),
            entry_bytes_max: config.entry_bytes_max(),
            tick_interval: Duration::from_millis(config.controller_tick_ms),
            node_id: config.node_id,
            shutdown: shutdown_rx.clone(),
            active_term: None,
        };
        let controller_handle = tokio::spawn(task.run());
        let node = RaftNode {
            inner: Arc::new(Inner {
                config,
                raft,
                state: channels.state,
                events: channels.events,
                jobs: jobs_tx,
                local_addr,
                shutdown,
                tasks: Mutex::new(vec![controller_handle]),
                lock: Mutex::new(Some(lock)),
                clock,
                directory_id,
                last_leader_contact_ms: std::sync::atomic::AtomicI64::new(now_ms()),
                refusal_logged: Mutex::new(BTreeMap::new()),
                security,
            }),
        };
        let server = Server::new(node.clone(), listener, shutdown_rx);
        node.track(tokio::spawn(server.run()));
        node.initialize_if_new().await?;
        node.warn_on_voter_mismatch();
        if node.config().joins() && !node.is_voter() {
            node.track(tokio::spawn(node.clone().join_quorum()));
        }
        node.track(tokio::spawn(node.clone().expire_observers()));
        if !node.config().bootstrap_scram.is_empty() {
            node.track(tokio::spawn(node.clone().retire_bootstrap_scram()));
        }
        Ok(node)
    }

    /// Once this node's applied state has seen a SCRAM record, retires its bootstrap SCRAM
    /// file (`bootstrap_scram.rs`), but only once a stored snapshot covers that record:
    /// snapshots are fsynced before they count and are loaded first at start-up, so after
    /// any crash the node's image holds the mark from its first moment, before it needs
    /// credentials (the commit hint is not durable, so a replay could stop short of the
    /// record, and a node that had retired its file would then refuse its peers' logins
    /// and never catch up). A snapshot is asked for (openraft builds one unless one is
    /// being built) and asked again every 10 s until one covers the record; then the
    /// rename, fsynced. If that fails the file stays, and is ignored anyway while the
    /// applied state holds the mark; the next start tries again.
    async fn retire_bootstrap_scram(self) {
        let mut state = self.inner.state.clone();
        let marked_at = match state.wait_for(|a| a.state.scram_ever_written()).await {
            Ok(applied) => applied.last_applied.map(|id| id.index),
            Err(_) => return,
        };
        let mut metrics = self.inner.raft.metrics();
        loop {
            let covered = |snapshot: Option<u64>| snapshot >= marked_at;
            if covered(metrics.borrow().snapshot.map(|id| id.index)) {
                break;
            }
            if self.inner.raft.trigger().snapshot().await.is_err() {
                return; // shut down, or a fatal storage error (reported by openraft)
            }
            let waited = tokio::time::timeout(
                Duration::from_secs(10),
                metrics.wait_for(|m| covered(m.snapshot.map(|id| id.index))),
            )
            .await;
            if let Ok(Err(_)) = waited {
                return; // shut down
            }
        }
        let dir = self.inner.config.data_dir.clone();
        let retired =
            tokio::task::spawn_blocking(move || crate::bootstrap_scram::retire(&dir)).await;
        let dir = self.inner.config.data_dir.display();
        match retired {
            Ok(Ok(true)) => tracing::info!(
                "the metadata log holds SCRAM credentials: this node's bootstrap SCRAM users \
                 (strom storage format --add-scram) are retired, {dir}/{} renamed to {}",
                crate::bootstrap_scram::BOOTSTRAP_SCRAM_FILE,
                crate::bootstrap_scram::BOOTSTRAP_SCRAM_APPLIED_FILE
            ),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(
                "cannot retire the bootstrap SCRAM file in {dir} (it no longer counts while \
                 this node runs; the next start tries again): {e}"
            ),
            Err(e) => tracing::warn!("retiring the bootstrap SCRAM file in {dir} failed: {e}"),
        }
    }

    /// Voters are fixed when the log is created (as KRaft's static quorum); a later change
    /// of `controller.quorum.voters` does not reconfigure the quorum, so say so.
    fn warn_on_voter_mismatch(&self) {
        let config = &self.inner.config;
        if config.voters.is_empty() {
            return;
        }
        let metrics = self.inner.raft.metrics().borrow().clone();
        let in_log: Vec<NodeId> = metrics.membership_config.membership().voter_ids().collect();
        let configured: Vec<NodeId> = config.voters.keys().copied().collect();
        if !in_log.is_empty() && in_log != configured {
            tracing::warn!(
                "configured voters {configured:?} differ from the quorum in the log {in_log:?}; \
                 the log's quorum stays in force"
            );
        }
    }

    fn track(&self, handle: JoinHandle<()>) {
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(handle);
        }
    }

    /// A leader's AppendEntries or InstallSnapshot reached this node.
    pub(crate) fn note_leader_contact(&self) {
        self.inner
            .last_leader_contact_ms
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Milliseconds since a leader last reached this node (since start when none has).
    pub(crate) fn since_leader_contact_ms(&self) -> i64 {
        now_ms().saturating_sub(
            self.inner
                .last_leader_contact_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// When `peer` last acknowledged this leader's replication.
    pub(crate) fn peer_times(&self, peer: NodeId) -> crate::network::PeerTimes {
        self.inner.clock.times(peer)
    }

    /// Whether the membership this node knows has it as a voter.
    pub(crate) fn is_voter(&self) -> bool {
        let metrics = self.inner.raft.metrics().borrow().clone();
        let voter = metrics
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == self.node_id());
        voter
    }

    /// The address other members reach this node at.
    pub fn advertised_addr(&self) -> String {
        match &self.inner.config.advertised_host {
            Some(host) if host.contains(':') => {
                format!("[{host}]:{}", self.inner.local_addr.port())
            }
            Some(host) => format!("{host}:{}", self.inner.local_addr.port()),
            None => self.inner.local_addr.to_string(),
        }
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// On first start every voter writes the same initial membership, as KRaft's static
    /// voters (or the initial voters `strom storage format` wrote, for a dynamic quorum); a
    /// node that already has a log keeps the membership it has, and a node that joins (an
    /// observer, or a controller formatted without initial controllers) writes none.
    async fn initialize_if_new(&self) -> Result<(), StartError> {
        let raft = &self.inner.raft;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        let config = &self.inner.config;
        let formatted = crate::membership::read_initial_voters(&config.data_dir)
            .map_err(|e| StartError::Raft(format!("cannot read the initial voters: {e}")))?;
        // Static voters carry no directory ids (every voter must write the same membership,
        // and none knows the others'; Kafka's static quorum has none either); formatted
        // initial voters carry those `strom storage format` was given.
        let members: BTreeMap<NodeId, Node> = if config.observer {
            return Ok(());
        } else if !config.voters.is_empty() {
            config
                .voters
                .iter()
                .map(|(id, addr)| (*id, Node::new(addr.clone())))
                .collect()
        } else if let Some(formatted) = formatted {
            formatted
        } else if config.joins() {
            return Ok(());
        } else {
            // A lone voter records the address it really bound (the configured port may be 0)
            // and its directory.
            BTreeMap::from([(
                config.node_id,
                Node {
                    addr: self.inner.local_addr.to_string(),
                    directory_id: Some(self.inner.directory_id),
                },
            )])
        };
        if let Err(e) = raft.initialize(members).await {
            // Another voter may have initialized us first through replication.
            tracing::info!("raft initialize skipped: {e}");
        }
        Ok(())
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.config.node_id
    }

    /// This node's metadata directory id (KIP-853's replica key with the node id).
    pub fn directory_id(&self) -> uuid::Uuid {
        self.inner.directory_id
    }

    /// This node's cluster id (its storage's), when it has one.
    pub fn cluster_id(&self) -> Option<&str> {
        self.inner.config.cluster_id.as_deref()
    }

    /// Whether a repeated warning (a refusal of another cluster's node, `what` saying
    /// which refusal and whose) is due now: at most one per `what` per
    /// `REFUSAL_LOG_EVERY`; the others go to debug.
    pub(crate) fn refusal_log_due(&self, what: &str) -> bool {
        let Ok(mut logged) = self.inner.refusal_logged.lock() else {
            return true;
        };
        let now = std::time::Instant::now();
        match logged.get(what) {
            Some(at) if now.duration_since(*at) < REFUSAL_LOG_EVERY => false,
            _ => {
                if logged.len() >= 64 {
                    logged.clear();
                }
                logged.insert(what.to_string(), now);
                true
            }
        }
    }

    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// The controller listener's security in force (the listener's and this node's
    /// outgoing connections').
    pub fn security(&self) -> &Arc<SecurityContext> {
        &self.inner.security
    }

    /// The StandardAuthorizer's decision on the CLUSTER resource over the ACLs of this
    /// node's applied state (the quorum listener's authorizer, `security.rs`).
    pub fn authorize_cluster(
        &self,
        settings: &strom_meta::acl::AuthorizerSettings,
        requester: strom_meta::acl::Requester<'_>,
        operation: strom_meta::acl::AclOperation,
    ) -> strom_meta::acl::Decision {
        self.inner
            .state
            .borrow()
            .state
            .authorize_cluster(settings, requester, operation)
    }

    /// The SCRAM credential the controller listener checks `user` against: the applied
    /// image's once any SCRAM record reached it (credentials deleted since included), else
    /// this node's bootstrap users (`bootstrap_scram.rs`: a new quorum authenticates before
    /// any entry arrives; none once the file is retired).
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: strom_security::ScramMechanism,
    ) -> Option<strom_security::ScramCredential> {
        {
            let applied = self.inner.state.borrow();
            if applied.state.scram_ever_written() {
                return applied.state.scram_credential(user, mechanism);
            }
        }
        self.inner
            .config
            .bootstrap_scram
            .iter()
            .find(|b| b.mechanism == mechanism && b.user == user)
            .map(|b| b.credential.clone())
    }

    /// The address the controller listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// The locally applied state (may trail the leader; see [`RaftNode::read_state`]).
    pub fn state(&self) -> Applied<K::State> {
        self.inner.state.borrow().clone()
    }

    pub fn watch_state(&self) -> watch::Receiver<Applied<K::State>> {
        self.inner.state.clone()
    }

    /// Deltas in log order, from now on. After `Lagged` or `Reset`, resync from the state.
    pub fn subscribe(&self) -> broadcast::Receiver<StateEvent<Delta<K>>> {
        self.inner.events.subscribe()
    }

    /// The state and the deltas after it, without a gap: subscribes first, then reads the
    /// state, so events whose `log_id` is at or below `last_applied` are already included in
    /// the state and must be skipped by the consumer.
    pub fn subscribe_with_state(
        &self,
    ) -> (Applied<K::State>, broadcast::Receiver<StateEvent<Delta<K>>>) {
        let events = self.inner.events.subscribe();
        (self.state(), events)
    }

    /// The current leader as this node knows it, with its controller address.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.inner.raft.metrics().borrow().clone();
        let leader = metrics.current_leader?;
        let addr = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|node| node.addr.clone())
            .unwrap_or_default();
        Some((leader, addr))
    }

    /// This node's view of the quorum.
    pub fn quorum_status(&self) -> QuorumStatus {
        let metrics = self.inner.raft.metrics().borrow().clone();
        QuorumStatus {
            node_id: self.node_id(),
            leader_id: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index,
            last_applied_index: metrics.last_applied.map(|id| id.index),
            voters: metrics.membership_config.membership().voter_ids().collect(),
        }
    }

    pub(crate) fn submit_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.config.submit_timeout_ms)
    }

    /// Submits a request to the controller: run here when this node leads, else forwarded
    /// once to the leader. Returns after the request's entry is committed and applied.
    ///
    /// While there is no leader (an election) or leadership moves, it retries until
    /// `submit_timeout_ms`; like Kafka's NOT_CONTROLLER, a retried request may have been
    /// applied by a leader that lost its leadership (CreateTopics then answers
    /// TOPIC_ALREADY_EXISTS), so other errors are returned as they are.
    pub async fn submit(&self, request: K::Request) -> Result<K::Reply, SubmitError> {
        let deadline = tokio::time::Instant::now() + self.submit_timeout();
        let pause = Duration::from_millis(self.inner.config.heartbeat_interval_ms.max(10));
        // Bounded in count as well as time.
        for _ in 0..1000 {
            match self.submit_with(request.clone(), false).await {
                Err(e @ SubmitError::NotLeader { .. }) => {
                    if tokio::time::Instant::now() + pause >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(pause).await;
                }
                other => return other,
            }
        }
        Err(SubmitError::Timeout {
            timeout_ms: self.inner.config.submit_timeout_ms,
            cause: None,
        })
    }

    pub(crate) async fn submit_with(
        &self,
        request: K::Request,
        forwarded: bool,
    ) -> Result<K::Reply, SubmitError> {
        match self.leader() {
            Some((leader, _)) if leader == self.node_id() => self.submit_local(request).await,
            Some((leader_id, addr)) if !forwarded && !addr.is_empty() => {
                let message = SubmitRequest {
                    forwarded: true,
                    request,
                };
                // A leader that stops answering (paused, partitioned) would hold the call for
                // the whole submit timeout, longer than a broker's session: once this node
                // sees another leader (or none), the call is abandoned and `submit` retries
                // there. As with any retry, the abandoned request may still be applied.
                let mut metrics = self.inner.raft.metrics();
                let moved = async {
                    let _ = metrics
                        .wait_for(|m| m.current_leader != Some(leader_id))
                        .await;
                };
                tokio::select! {
                    result = self.forward(&addr, kind::SUBMIT, &message) => result.map_err(|e| {
                        tracing::debug!("forwarding to leader {leader_id} at {addr} failed: {e}");
                        e
                    })?,
                    () = moved => {
                        tracing::debug!("leader {leader_id} replaced while a forwarded request was in flight; retrying");
                        Err(SubmitError::NotLeader { leader_id: None, leader_addr: None })
                    }
                }
            }
            other => Err(SubmitError::NotLeader {
                leader_id: other.as_ref().map(|(id, _)| *id),
                leader_addr: other.map(|(_, addr)| addr),
            }),
        }
    }

    async fn submit_local(&self, request: K::Request) -> Result<K::Reply, SubmitError> {
        let (reply, receive) = oneshot::channel();
        self.inner
            .jobs
            .try_send(Job { request, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SubmitError::Busy,
                mpsc::error::TrySendError::Closed(_) => {
                    SubmitError::Unavailable("node is shutting down".into())
                }
            })?;
        let limit = self.submit_timeout();
        match timeout(limit, receive).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SubmitError::Unavailable("controller stopped".into())),
            Err(_) => Err(SubmitError::Timeout {
                timeout_ms: limit.as_millis() as u64,
                cause: None,
            }),
        }
    }

    pub(crate) async fn forward<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        addr: &str,
        request_kind: u8,
        request: &Req,
    ) -> Result<Resp, SubmitError> {
        let mut conn = Conn::new(
            addr.to_string(),
            self.inner.config.frame_bytes_max,
            Duration::from_millis(self.inner.config.connect_timeout_ms),
            self.inner.security.clone(),
        );
        // With this node's cluster id (`wire::Addressed`): the receiver refuses a request
        // from another cluster's node.
        let addressed = crate::wire::Addressed {
            rpc: request,
            to_directory: None,
            cluster_id: self.inner.config.cluster_id.as_deref(),
        };
        conn.call(request_kind, &addressed, self.submit_timeout())
            .await
            .map_err(|e| SubmitError::Unavailable(e.to_string()))
    }

    /// The leader's state once every entry committed so far is applied (a linearizable read),
    /// as snapshot bytes; forwarded once to the leader from a follower.
    pub(crate) async fn read_state_encoded(
        &self,
        forwarded: bool,
    ) -> Result<StateReply, SubmitError> {
        match self.leader() {
            Some((leader, _)) if leader == self.node_id() => {
                let raft = &self.inner.raft;
                timeout(self.submit_timeout(), raft.ensure_linearizable())
                    .await
                    .map_err(|_| SubmitError::Timeout {
                        timeout_ms: self.inner.config.submit_timeout_ms,
                        cause: None,
                    })?
                    .map_err(|e| match e.forward_to_leader() {
                        Some(f) => SubmitError::NotLeader {
                            leader_id: f.leader_id,
                            leader_addr: f.leader_node.as_ref().map(|n| n.addr.clone()),
                        },
                        None => SubmitError::Unavailable(e.to_string()),
                    })?;
                let applied = self.state();
                Ok(StateReply {
                    last_applied_index: applied.last_applied.map(|id| id.index),
                    state: crate::types::Payload(applied.state.encode_snapshot()),
                })
            }
            Some((_, addr)) if !forwarded && !addr.is_empty() => {
                self.forward(
                    &addr,
                    kind::READ_STATE,
                    &ReadStateRequest { forwarded: true },
                )
                .await?
            }
            other => Err(SubmitError::NotLeader {
                leader_id: other.as_ref().map(|(id, _)| *id),
                leader_addr: other.map(|(_, addr)| addr),
            }),
        }
    }

    /// The quorum as its leader sees it (Kafka's DescribeQuorum): asked of the leader, as
    /// Kafka forwards DescribeQuorum to the active controller.
    pub async fn describe_quorum(&self) -> Result<QuorumDescription, SubmitError> {
        self.describe_quorum_with(false).await
    }

    /// `describe_quorum`, answered here when this node leads, else forwarded once.
    pub(crate) async fn describe_quorum_with(
        &self,
        forwarded: bool,
    ) -> Result<QuorumDescription, SubmitError> {
        match self.leader() {
            Some((leader, _)) if leader == self.node_id() => Ok(self.describe_here(leader)),
            Some((_, addr)) if !forwarded && !addr.is_empty() => {
                self.forward(
                    &addr,
                    kind::DESCRIBE_QUORUM,
                    &DescribeQuorumRequest { forwarded: true },
                )
                .await?
            }
            other => Err(SubmitError::NotLeader {
                leader_id: other.as_ref().map(|(id, _)| *id),
                leader_addr: other.map(|(_, addr)| addr),
            }),
        }
    }

    /// This leader's view: its own log end, each member's matched entry (openraft's
    /// replication metrics) and the times `PeerClock` recorded. As in Kafka, the leader
    /// reports itself as fetched and caught up now.
    fn describe_here(&self, leader: NodeId) -> QuorumDescription {
        let metrics = self.inner.raft.metrics().borrow().clone();
        let now = now_ms();
        let next = |index: Option<u64>| {
            index.map_or(-1, |i| {
                i64::try_from(i.saturating_add(1)).unwrap_or(i64::MAX)
            })
        };
        let replication = metrics.replication.clone().unwrap_or_default();
        let membership = metrics.membership_config.membership();
        let progress = |id: NodeId| {
            let directory_id = membership.get_node(&id).and_then(|n| n.directory_id);
            if id == leader {
                return ReplicaProgress {
                    node_id: id,
                    directory_id,
                    log_end_offset: next(metrics.last_log_index).max(0),
                    last_fetch_ms: now,
                    last_caught_up_ms: now,
                };
            }
            let times = self.inner.clock.times(id);
            ReplicaProgress {
                node_id: id,
                directory_id,
                log_end_offset: next(replication.get(&id).copied().flatten().map(|l| l.index)),
                last_fetch_ms: times.last_ack_ms.unwrap_or(-1),
                last_caught_up_ms: times.last_caught_up_ms.unwrap_or(-1),
            }
        };
        QuorumDescription {
            leader_id: leader,
            leader_epoch: metrics.current_term,
            high_watermark: next(metrics.last_applied.map(|id| id.index)).max(0),
            voters: membership.voter_ids().map(progress).collect(),
            observers: membership.learner_ids().map(progress).collect(),
            addrs: membership
                .nodes()
                .map(|(id, node)| (*id, node.addr.clone()))
                .collect(),
        }
    }

    /// A linearizable read of the state (see `read_state_encoded`).
    pub async fn read_state(&self) -> Result<(Option<u64>, K::State), SubmitError> {
        let reply = self.read_state_encoded(false).await?;
        let state = K::State::decode_snapshot(&reply.state.0)
            .map_err(|e| SubmitError::Unavailable(e.to_string()))?;
        Ok((reply.last_applied_index, state))
    }

    /// Stops the server, the controller and raft. Idempotent.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
        let tasks: Vec<JoinHandle<()>> = match self.inner.tasks.lock() {
            Ok(mut tasks) => tasks.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        if let Ok(mut lock) = self.inner.lock.lock() {
            lock.take();
        }
    }
}

/// The file that ties a data directory to one node id, like Kafka's `meta.properties`.
const NODE_FILE: &str = "node";

#[derive(serde::Serialize, serde::Deserialize)]
struct NodeIdentity {
    node_id: NodeId,
    /// KIP-853's directory id of this metadata log directory: made when the file is first
    /// written (from `NodeConfig::directory_id`, else random) and never changed, so a
    /// replica whose directory is lost and made anew is another replica of the node id.
    /// Files written before directory ids get one at the next start.
    #[serde(default)]
    directory_id: Option<uuid::Uuid>,
}

/// Refuses to start node B on node A's directory: its vote and log would be someone else's.
/// Returns the directory's id.
fn check_node_identity(config: &NodeConfig) -> Result<uuid::Uuid, StartError> {
    let path = config.data_dir.join(NODE_FILE);
    let damaged = |reason: String| StartError::IdentityDamaged {
        path: path.clone(),
        reason,
        configured: config.node_id,
    };
    let stored = match crate::fsutil::read_atomic(&path) {
        Ok(stored) => stored,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(damaged(e.to_string()))
        }
        Err(e) => return Err(StartError::Identity(e)),
    };
    match stored {
        Some(body) => {
            let identity: NodeIdentity = serde_json::from_slice(&body)
                .map_err(|e| damaged(format!("its checksum matches but it does not parse: {e}")))?;
            if identity.node_id != config.node_id {
                return Err(StartError::WrongNode {
                    dir: config.data_dir.clone(),
                    stored: identity.node_id,
                    configured: config.node_id,
                });
            }
            match identity.directory_id {
                Some(id) => {
                    if config.directory_id.is_some_and(|given| given != id) {
                        tracing::warn!(
                            "{} records directory id {id}, not the {:?} given: the recorded one \
                             stays (it is this replica's identity in the quorum)",
                            path.display(),
                            config.directory_id
                        );
                    }
                    Ok(id)
                }
                None => write_identity(&path, config),
            }
        }
        None => write_identity(&path, config),
    }
}

/// Writes the node file with this node's id and a directory id (the configured one, else
/// a random one); returns the directory id.
fn write_identity(path: &std::path::Path, config: &NodeConfig) -> Result<uuid::Uuid, StartError> {
    let directory_id = config.directory_id.unwrap_or_else(uuid::Uuid::new_v4);
    let body = serde_json::to_vec(&NodeIdentity {
        node_id: config.node_id,
        directory_id: Some(directory_id),
    })
    .map_err(|e| StartError::Identity(std::io::Error::other(e)))?;
    // fsync (inside write_atomic): the identity must be durable before any vote is.
    crate::fsutil::write_atomic(path, &body, true).map_err(StartError::Identity)?;
    Ok(directory_id)
}

async fn start_raft<S: ReplicatedState>(
    config: &NodeConfig,
    log: LogStore,
    sm: StateMachineStore<S>,
    clock: PeerClock,
    security: Arc<SecurityContext>,
) -> Result<Raft, StartError> {
    let raft_config = openraft::Config {
        cluster_name: "strom-metadata".into(),
        election_timeout_min: config.election_timeout_min_ms,
        election_timeout_max: config.election_timeout_max_ms,
        heartbeat_interval: config.heartbeat_interval_ms,
        install_snapshot_timeout: config.submit_timeout_ms.max(1000),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_entries_interval),
        max_in_snapshot_log_to_keep: config.snapshot_entries_kept,
        // Chunks travel as JSON arrays of numbers (up to 4 bytes per byte) in one frame.
        snapshot_max_chunk_size: (config.frame_bytes_max / 5) as u64,
        ..Default::default()
    }
    .validate()
    .map_err(|e| StartError::Raft(e.to_string()))?;
    let network = NetworkFactory {
        frame_bytes_max: config.frame_bytes_max,
        connect_timeout: Duration::from_millis(config.connect_timeout_ms),
        unreachable_backoff: Duration::from_millis(config.heartbeat_interval_ms * 2),
        clock,
        cluster_id: config.cluster_id.as_deref().map(Arc::from),
        security,
    };
    Raft::new(config.node_id, Arc::new(raft_config), network, log, sm)
        .await
        .map_err(|e| StartError::Raft(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_file_ties_the_directory_to_one_node_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig::single(3, "127.0.0.1:0".parse().unwrap(), dir.path().into());
        check_node_identity(&config).unwrap();
        check_node_identity(&config).unwrap();
        let other = NodeConfig::single(4, "127.0.0.1:0".parse().unwrap(), dir.path().into());
        assert!(matches!(
            check_node_identity(&other),
            Err(StartError::WrongNode { stored: 3, .. })
        ));
        let path = dir.path().join(NODE_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x02;
        std::fs::write(&path, &bytes).unwrap();
        let err = check_node_identity(&config).unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, StartError::IdentityDamaged { .. }),
            "{message}"
        );
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("checksum"), "{message}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "the damaged file was replaced"
        );
    }
}
