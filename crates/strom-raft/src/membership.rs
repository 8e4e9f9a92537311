//! A quorum that changes (KIP-853's idea on openraft's membership): observers join as
//! learners, voters are added once caught up and removed, addresses are updated. Every
//! change runs on the leader (forwarded once from any member) as openraft's joint-consensus
//! membership change, so it is committed by the old and the new voters alike.
//!
//! Also the initial voters `strom storage format` writes for a dynamic quorum
//! (`--standalone`, `--initial-controllers`), read once when the node's log is first made.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::ChangeMembers;
use tokio::time::timeout;

use crate::controller_task::Controller;
use crate::node::RaftNode;
use crate::types::{Node, NodeId};
use crate::wire::{kind, MembershipChange, MembershipError, MembershipRequest, SubmitError};

/// The file holding the initial voters in the metadata log directory.
pub const INITIAL_VOTERS_FILE: &str = "initial-voters";

#[derive(serde::Serialize, serde::Deserialize)]
struct InitialVoters {
    voters: BTreeMap<NodeId, String>,
    /// The voters' directory ids where given (`--standalone`: this node's;
    /// `--initial-controllers id@host:port:directory-id`). Absent in files written before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    directory_ids: BTreeMap<NodeId, uuid::Uuid>,
}

/// Writes the voters a new quorum starts with (fsynced, with a checksum, replacing any).
pub fn write_initial_voters(dir: &Path, voters: &BTreeMap<NodeId, Node>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let body = serde_json::to_vec(&InitialVoters {
        voters: voters.iter().map(|(id, n)| (*id, n.addr.clone())).collect(),
        directory_ids: voters
            .iter()
            .filter_map(|(id, n)| Some((*id, n.directory_id?)))
            .collect(),
    })
    .map_err(std::io::Error::other)?;
    crate::fsutil::write_atomic(&dir.join(INITIAL_VOTERS_FILE), &body, true)
}

/// The initial voters written by `write_initial_voters`, if any.
pub fn read_initial_voters(dir: &Path) -> std::io::Result<Option<BTreeMap<NodeId, Node>>> {
    let Some(body) = crate::fsutil::read_atomic(&dir.join(INITIAL_VOTERS_FILE))? else {
        return Ok(None);
    };
    let voters: InitialVoters = serde_json::from_slice(&body).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", dir.join(INITIAL_VOTERS_FILE).display()),
        )
    })?;
    let directory_ids = voters.directory_ids;
    Ok(Some(
        voters
            .voters
            .into_iter()
            .map(|(id, addr)| {
                (
                    id,
                    Node {
                        addr,
                        directory_id: directory_ids.get(&id).copied(),
                    },
                )
            })
            .collect(),
    ))
}

type WriteError = RaftError<NodeId, ClientWriteError<NodeId, Node>>;

fn write_error(error: WriteError) -> MembershipError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            MembershipError::Submit(SubmitError::NotLeader {
                leader_id: f.leader_id,
                leader_addr: f.leader_node.map(|n| n.addr),
            })
        }
        // Another change is still being committed: retriable, as Kafka's REQUEST_TIMED_OUT.
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            e @ ChangeMembershipError::InProgress(_),
        )) => MembershipError::Submit(SubmitError::Unavailable(e.to_string())),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            MembershipError::Refused(e.to_string())
        }
        RaftError::Fatal(e) => MembershipError::Submit(SubmitError::Unavailable(e.to_string())),
    }
}

impl<K: Controller> RaftNode<K> {
    /// Makes `change` (on the leader; forwarded from any other member), retrying while the
    /// leader is unknown or another change is in flight, until `submit_timeout_ms`.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<(), MembershipError> {
        let deadline = tokio::time::Instant::now() + self.submit_timeout();
        let pause = Duration::from_millis(self.config().heartbeat_interval_ms.max(10));
        // Bounded in count as well as time.
        for _ in 0..1000 {
            match self.change_membership_with(change.clone(), false).await {
                Err(MembershipError::Submit(
                    e @ (SubmitError::NotLeader { .. } | SubmitError::Unavailable(_)),
                )) => {
                    if tokio::time::Instant::now() + pause >= deadline {
                        return Err(MembershipError::Submit(e));
                    }
                    tokio::time::sleep(pause).await;
                }
                other => return other,
            }
        }
        Err(MembershipError::Submit(SubmitError::Timeout {
            timeout_ms: self.config().submit_timeout_ms,
            cause: None,
        }))
    }

    pub(crate) async fn change_membership_with(
        &self,
        change: MembershipChange,
        forwarded: bool,
    ) -> Result<(), MembershipError> {
        match self.leader() {
            Some((leader, _)) if leader == self.node_id() => {
                let limit = self.submit_timeout();
                timeout(limit, self.change_here(change))
                    .await
                    .unwrap_or(Err(MembershipError::Submit(SubmitError::Timeout {
                        timeout_ms: self.config().submit_timeout_ms,
                        cause: None,
                    })))
            }
            Some((_, addr)) if !forwarded && !addr.is_empty() => {
                let request = MembershipRequest {
                    forwarded: true,
                    change,
                };
                self.forward::<_, Result<(), MembershipError>>(&addr, kind::MEMBERSHIP, &request)
                    .await?
            }
            other => Err(MembershipError::Submit(SubmitError::NotLeader {
                leader_id: other.as_ref().map(|(id, _)| *id),
                leader_addr: other.map(|(_, addr)| addr),
            })),
        }
    }

    /// The change, made by this leader. Members are matched on (node id, directory id) as
    /// Kafka's `VoterSet.isVoter` ([`Node::matches_directory`]); openraft keeps one member
    /// per node id, so a replaced controller (same id, new directory) joins only once its
    /// old incarnation is removed.
    async fn change_here(&self, change: MembershipChange) -> Result<(), MembershipError> {
        let raft = self.raft();
        let membership = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone();
        let is_voter = |id: NodeId| membership.voter_ids().any(|v| v == id);
        let member = |id: NodeId| membership.get_node(&id).cloned();
        let set_node =
            |id: NodeId, node: Node| ChangeMembers::SetNodes(BTreeMap::from([(id, node)]));
        // The voter (id, directory) a Remove/UpdateVoter names, as Kafka's VOTER_NOT_FOUND.
        let voter =
            |id: NodeId, directory_id: Option<uuid::Uuid>| -> Result<Node, MembershipError> {
                let node = member(id)
                    .filter(|_| is_voter(id))
                    .ok_or(MembershipError::VoterNotFound(id))?;
                match node.directory_id {
                    Some(known) if !node.matches_directory(directory_id) => {
                        Err(MembershipError::VoterDirectoryMismatch {
                            node_id: id,
                            known,
                            given: directory_id,
                        })
                    }
                    _ => Ok(node),
                }
            };
        match change {
            MembershipChange::Join {
                node_id,
                addr,
                directory_id,
            } => {
                let wanted = Node {
                    addr: addr.clone(),
                    directory_id,
                };
                let known = member(node_id);
                if is_voter(node_id) {
                    let known = known.unwrap_or_default();
                    let other_directory = matches!(
                        (known.directory_id, directory_id),
                        (Some(a), Some(b)) if a != b
                    );
                    if known.addr != addr || other_directory {
                        // A voter that lost its log must not vote again under its old id: it
                        // could vote twice in one term. Removing it first makes room.
                        return Err(MembershipError::Refused(format!(
                            "node {node_id} is a voter of the metadata quorum at {known}; this \
                             node (at {wanted}) is another replica of it: a controller that \
                             lost its metadata log rejoins after `remove-controller` of the old \
                             one, or under a new node.id"
                        )));
                    }
                    if known.directory_id.is_none() && directory_id.is_some() {
                        // The voter itself, recorded without its directory (a static voter or an
                        // older log): learn it.
                        return raft
                            .change_membership(set_node(node_id, wanted), true)
                            .await
                            .map(|_| ())
                            .map_err(write_error);
                    }
                    return Ok(());
                }
                match known {
                    Some(known) if known == wanted => Ok(()),
                    // A new address, or a new incarnation of the observer (its directory
                    // replaced): the member is updated in place.
                    Some(_) => raft
                        .change_membership(set_node(node_id, wanted), true)
                        .await
                        .map(|_| ())
                        .map_err(write_error),
                    None => raft
                        .add_learner(node_id, wanted, false)
                        .await
                        .map(|_| ())
                        .map_err(write_error),
                }
            }
            MembershipChange::AddVoter {
                node_id,
                addr,
                directory_id,
            } => {
                if is_voter(node_id) {
                    return Err(MembershipError::DuplicateVoter(node_id));
                }
                let known = member(node_id);
                let Some(observer) = known
                    .clone()
                    .or_else(|| addr.clone().map(|addr| Node { addr, directory_id }))
                else {
                    return Err(MembershipError::Refused(format!(
                        "node {node_id} is not an observer of the metadata quorum: start it \
                         (with controller.quorum.bootstrap.servers) before adding it"
                    )));
                };
                if let (Some(known), Some(given)) = (observer.directory_id, directory_id) {
                    if known != given {
                        return Err(MembershipError::Refused(format!(
                            "node {node_id} replicates as an observer with directory id {known}, \
                             not {given}: add the replica that is running (its directory.id)"
                        )));
                    }
                }
                let node = Node {
                    addr: addr.unwrap_or(observer.addr),
                    directory_id: observer.directory_id.or(directory_id),
                };
                if known.as_ref().is_some_and(|known| *known != node) {
                    raft.change_membership(set_node(node_id, node.clone()), true)
                        .await
                        .map_err(write_error)?;
                }
                // Blocks until the leader sees the learner at its log end (bounded by the
                // caller's timeout), so the new voter does not stall commits while it
                // catches up.
                raft.add_learner(node_id, node, true)
                    .await
                    .map_err(write_error)?;
                raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), true)
                    .await
                    .map(|_| ())
                    .map_err(write_error)
            }
            MembershipChange::RemoveVoter {
                node_id,
                directory_id,
            } => {
                voter(node_id, directory_id)?;
                // Not retained as a learner: a removed controller is usually gone (its disk
                // lost); one that runs on is no longer replicated to.
                raft.change_membership(
                    ChangeMembers::RemoveVoters(BTreeSet::from([node_id])),
                    false,
                )
                .await
                .map(|_| ())
                .map_err(write_error)
            }
            MembershipChange::UpdateVoter {
                node_id,
                addr,
                directory_id,
            } => {
                let known = voter(node_id, directory_id)?;
                if known.addr == addr {
                    return Ok(());
                }
                let node = Node { addr, ..known };
                raft.change_membership(set_node(node_id, node), true)
                    .await
                    .map(|_| ())
                    .map_err(write_error)
            }
        }
    }

    /// Asks the quorum, through each address of `join_addrs` in turn, to add this node as
    /// an observer at its advertised address, until one accepts or the node shuts down.
    /// Once taken in, it asks again whenever no leader has reached it for
    /// [`rejoin_after_ms`] (the leader drops an observer it cannot reach for
    /// `observer_session_timeout_ms`; a Join of a member already known changes nothing),
    /// until it is a voter itself.
    pub(crate) async fn join_quorum(self) {
        let config = self.config().clone();
        let addr = self.advertised_addr();
        let mut shutdown = self.shutdown_signal();
        let backoff = Duration::from_millis(config.heartbeat_interval_ms.clamp(50, 1000) * 4);
        let rejoin_after = rejoin_after_ms(&config);
        let change = MembershipChange::Join {
            node_id: config.node_id,
            addr: addr.clone(),
            directory_id: Some(self.directory_id()),
        };
        let request = MembershipRequest {
            forwarded: false,
            change,
        };
        let mut joined = false;
        // Until the node stops or is a voter: each round is bounded by the call timeouts.
        loop {
            if joined {
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                if self.is_voter() {
                    return;
                }
                let silent = self.since_leader_contact_ms();
                if silent < rejoin_after {
                    continue;
                }
                tracing::info!(
                    "node {} heard from no metadata quorum leader for {silent} ms: asking to \
                     be taken in again (an observer the leader could not reach is dropped)",
                    config.node_id
                );
                joined = false;
            }
            for target in config.join_addrs() {
                let result = tokio::select! {
                    result = self.forward::<_, Result<(), MembershipError>>(&target, kind::MEMBERSHIP, &request) => result,
                    _ = shutdown.changed() => return,
                };
                match result {
                    Ok(Ok(())) => {
                        tracing::info!(
                            "node {} joined the metadata quorum as an observer at {addr} (asked {target})",
                            config.node_id
                        );
                        // A fresh start for the silence count: the leader replicates from now.
                        self.note_leader_contact();
                        joined = true;
                        break;
                    }
                    // Another cluster's controller (or this node's storage is another
                    // cluster's): said once per REFUSAL_LOG_EVERY, as the join retries.
                    Ok(Err(
                        ref error @ MembershipError::Submit(SubmitError::InconsistentClusterId {
                            ..
                        }),
                    )) if !self.refusal_log_due(&format!("join at {target}")) => {
                        tracing::debug!("asking {target} to join the metadata quorum: {error}")
                    }
                    Ok(Err(error)) => {
                        tracing::warn!("asking {target} to join the metadata quorum: {error}")
                    }
                    Err(error) => {
                        tracing::debug!("asking {target} to join the metadata quorum: {error}")
                    }
                }
            }
            if !joined {
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }

    /// On the leader: drops observers (learners; voters are never touched) that have not
    /// acknowledged its replication for `observer_session_timeout_ms`, as Kafka's leader
    /// forgets observers that stop fetching. A stopped broker is then no longer retried
    /// with back-off, nor listed by DescribeQuorum; it is taken in again when it asks (at
    /// start, or when its leader falls silent). A new leader counts each observer's time
    /// from when it first sees it, so a leader change never drops a live observer.
    pub(crate) async fn expire_observers(self) {
        let timeout_ms =
            i64::try_from(self.config().observer_session_timeout_ms).unwrap_or(i64::MAX);
        let tick = Duration::from_millis(
            (self.config().observer_session_timeout_ms / 10).clamp(100, 10_000),
        );
        let mut shutdown = self.shutdown_signal();
        // Learner -> when this leader first saw it (this term).
        let mut seen: BTreeMap<NodeId, i64> = BTreeMap::new();
        let mut term = None;
        loop {
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                _ = shutdown.changed() => return,
            }
            let metrics = self.raft().metrics().borrow().clone();
            if metrics.current_leader != Some(self.node_id()) {
                seen.clear();
                term = None;
                continue;
            }
            if term != Some(metrics.current_term) {
                seen.clear();
                term = Some(metrics.current_term);
            }
            let now = crate::network::now_ms();
            let learners: BTreeSet<NodeId> = metrics
                .membership_config
                .membership()
                .learner_ids()
                .collect();
            seen.retain(|id, _| learners.contains(id));
            let expired: BTreeSet<NodeId> = learners
                .iter()
                .copied()
                .filter(|id| {
                    let first = *seen.entry(*id).or_insert(now);
                    let last = self.peer_times(*id).last_ack_ms.unwrap_or(first).max(first);
                    now.saturating_sub(last) > timeout_ms
                })
                .collect();
            if expired.is_empty() {
                continue;
            }
            let change = self
                .raft()
                .change_membership(ChangeMembers::RemoveNodes(expired.clone()), false);
            match timeout(self.submit_timeout(), change).await {
                Ok(Ok(_)) => {
                    tracing::info!(
                        "observers {expired:?} dropped from the metadata quorum: no \
                         acknowledgement for {timeout_ms} ms; each is taken in again when it asks"
                    );
                    for id in &expired {
                        seen.remove(id);
                    }
                }
                // Another change in flight, or leadership lost: tried again next tick.
                Ok(Err(error)) => tracing::debug!("dropping observers {expired:?}: {error}"),
                Err(_) => tracing::debug!("dropping observers {expired:?}: timed out"),
            }
        }
    }
}

/// How long an observer hears from no leader before it asks to be taken in again: a few
/// election timeouts (leaders heartbeat every `heartbeat_interval_ms`), at least a second.
pub(crate) fn rejoin_after_ms(config: &crate::config::NodeConfig) -> i64 {
    i64::try_from(config.election_timeout_max_ms.saturating_mul(5).max(1000)).unwrap_or(i64::MAX)
}
