//! The controller seam and the task that runs it: one request at a time on the leader, each
//! validated against the image that includes every committed entry, its reply released only
//! after its entry is committed and applied.

use std::fmt::Debug;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::timeout;

use crate::state::{Applied, ReplicatedState};
use crate::types::{Node, NodeId, Payload, Raft};
use crate::wire::SubmitError;

/// Turns requests into entries, like Kafka's QuorumController: validation only, no I/O.
pub trait Controller: Send + 'static {
    type State: ReplicatedState;
    type Request: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static;
    type Reply: Serialize + DeserializeOwned + Debug + Send + Sync + 'static;

    /// Validates `request` against `state`; returns the entry to commit (none when nothing
    /// changes, e.g. a validation error or `validate_only`) and the reply to send once it is
    /// committed. `now_ms` comes from a monotonic clock: only differences between calls mean
    /// anything (session timeouts), so a wall-clock jump cannot fence every broker.
    fn handle(
        &mut self,
        state: &Self::State,
        request: Self::Request,
        now_ms: i64,
    ) -> (Option<Vec<u8>>, Self::Reply);

    /// Called periodically on the leader (e.g. to expire broker sessions); returns an entry
    /// to commit, if any.
    fn tick(&mut self, _state: &Self::State, _now_ms: i64) -> Option<Vec<u8>> {
        None
    }

    /// Called once when this node starts leading a new term, before it handles a request or
    /// ticks in that term: state kept from an earlier term (e.g. when brokers were last
    /// heard from) is stale, as Kafka's controller resets it on becoming active.
    fn activate(&mut self, _state: &Self::State, _now_ms: i64) {}
}

pub(crate) type JobResult<K> = Result<<K as Controller>::Reply, SubmitError>;

pub(crate) struct Job<K: Controller> {
    pub request: K::Request,
    pub reply: oneshot::Sender<JobResult<K>>,
}

pub(crate) struct ControllerTask<K: Controller> {
    pub raft: Raft,
    pub state: watch::Receiver<Applied<K::State>>,
    pub controller: K,
    pub jobs: mpsc::Receiver<Job<K>>,
    pub submit_timeout: Duration,
    pub entry_bytes_max: usize,
    pub tick_interval: Duration,
    pub node_id: NodeId,
    pub shutdown: watch::Receiver<bool>,
    /// The term this node's controller was last activated in.
    pub active_term: Option<u64>,
}

impl<K: Controller> ControllerTask<K> {
    pub async fn run(mut self) {
        let mut ticks = tokio::time::interval(self.tick_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let job = tokio::select! {
                job = self.jobs.recv() => job,
                _ = ticks.tick() => {
                    self.tick().await;
                    continue;
                }
                _ = self.shutdown.changed() => None,
            };
            let Some(job) = job else { break };
            if job.reply.is_closed() {
                continue;
            }
            let result = match timeout(self.submit_timeout, self.handle(job.request)).await {
                Ok(result) => result,
                Err(_) => Err(SubmitError::Timeout {
                    timeout_ms: self.submit_timeout.as_millis() as u64,
                    cause: None,
                }),
            };
            // The caller may have given up; nothing to do then.
            let _ = job.reply.send(result);
        }
        tracing::debug!("controller task stopped");
    }

    /// Runs the controller's periodic work when this node leads; failures only get logged,
    /// the next tick tries again.
    async fn tick(&mut self) {
        if self.raft.metrics().borrow().current_leader != Some(self.node_id) {
            return;
        }
        let limit = self.submit_timeout;
        let work = async {
            self.raft
                .ensure_linearizable()
                .await
                .map_err(check_leader_error)?;
            let state = self.state.borrow().state.clone();
            self.activate_if_new_term(&state);
            if let Some(payload) = self.controller.tick(&state, now_ms()) {
                self.raft
                    .client_write(Payload(payload))
                    .await
                    .map_err(client_write_error)?;
            }
            Ok::<(), SubmitError>(())
        };
        match timeout(limit, work).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!("controller tick failed: {e}"),
            Err(_) => tracing::debug!("controller tick timed out"),
        }
    }

    /// Activates the controller when this node leads a term it has not led before (called
    /// after `ensure_linearizable` confirmed the leadership and the applied state).
    fn activate_if_new_term(&mut self, state: &K::State) {
        let term = self.raft.metrics().borrow().current_term;
        if self.active_term != Some(term) {
            self.active_term = Some(term);
            tracing::info!(term, "controller active");
            self.controller.activate(state, now_ms());
        }
    }

    async fn handle(&mut self, request: K::Request) -> JobResult<K> {
        // Waits until every entry committed before this point is applied locally, and fails
        // unless this node is still the leader: validation below sees the latest image.
        self.raft
            .ensure_linearizable()
            .await
            .map_err(check_leader_error)?;
        let state = self.state.borrow().state.clone();
        self.activate_if_new_term(&state);
        let (payload, reply) = self.controller.handle(&state, request, now_ms());
        if let Some(payload) = payload {
            if payload.len() > self.entry_bytes_max {
                return Err(SubmitError::BadRequest(format!(
                    "the request's records take {} bytes, more than the {} one entry may hold",
                    payload.len(),
                    self.entry_bytes_max
                )));
            }
            let response = self
                .raft
                .client_write(Payload(payload))
                .await
                .map_err(client_write_error)?;
            if let Some(error) = response.data.error {
                return Err(SubmitError::Apply(error));
            }
        }
        Ok(reply)
    }
}

/// Milliseconds on a monotonic clock that starts with the process.
fn now_ms() -> i64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX)
}

fn not_leader(leader_id: Option<NodeId>, leader_node: Option<Node>) -> SubmitError {
    SubmitError::NotLeader {
        leader_id,
        leader_addr: leader_node.map(|node| node.addr),
    }
}

fn check_leader_error(e: RaftError<NodeId, CheckIsLeaderError<NodeId, Node>>) -> SubmitError {
    match e {
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => {
            not_leader(f.leader_id, f.leader_node)
        }
        other => SubmitError::Unavailable(other.to_string()),
    }
}

fn client_write_error(e: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> SubmitError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            not_leader(f.leader_id, f.leader_node)
        }
        other => SubmitError::Unavailable(other.to_string()),
    }
}
