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
use openraft::{BasicNode, ChangeMembers};
use tokio::time::timeout;

use crate::controller_task::Controller;
use crate::node::RaftNode;
use crate::types::NodeId;
use crate::wire::{kind, MembershipChange, MembershipError, MembershipRequest, SubmitError};

/// The file holding the initial voters in the metadata log directory.
pub const INITIAL_VOTERS_FILE: &str = "initial-voters";

#[derive(serde::Serialize, serde::Deserialize)]
struct InitialVoters {
    voters: BTreeMap<NodeId, String>,
}

/// Writes the voters a new quorum starts with (fsynced, with a checksum, replacing any).
pub fn write_initial_voters(dir: &Path, voters: &BTreeMap<NodeId, String>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let body = serde_json::to_vec(&InitialVoters {
        voters: voters.clone(),
    })
    .map_err(std::io::Error::other)?;
    crate::fsutil::write_atomic(&dir.join(INITIAL_VOTERS_FILE), &body, true)
}

/// The initial voters written by `write_initial_voters`, if any.
pub fn read_initial_voters(dir: &Path) -> std::io::Result<Option<BTreeMap<NodeId, String>>> {
    let Some(body) = crate::fsutil::read_atomic(&dir.join(INITIAL_VOTERS_FILE))? else {
        return Ok(None);
    };
    let voters: InitialVoters = serde_json::from_slice(&body).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", dir.join(INITIAL_VOTERS_FILE).display()),
        )
    })?;
    Ok(Some(voters.voters))
}

type WriteError = RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>;

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

    /// The change, made by this leader.
    async fn change_here(&self, change: MembershipChange) -> Result<(), MembershipError> {
        let raft = self.raft();
        let membership = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone();
        let is_voter = |id: NodeId| membership.voter_ids().any(|v| v == id);
        let addr_of = |id: NodeId| membership.get_node(&id).map(|n| n.addr.clone());
        let set_addr = |id: NodeId, addr: String| {
            ChangeMembers::SetNodes(BTreeMap::from([(id, BasicNode { addr })]))
        };
        match change {
            MembershipChange::Join { node_id, addr } => {
                if is_voter(node_id) && addr_of(node_id).as_deref() != Some(&addr) {
                    // A voter that lost its log must not vote again under its old id: it
                    // could vote twice in one term. Removing it first makes it an observer.
                    return Err(MembershipError::Refused(format!(
                        "node {node_id} is a voter of the metadata quorum at {}; a controller \
                         that lost its metadata log rejoins after `remove-controller` or under \
                         a new node.id",
                        addr_of(node_id).unwrap_or_default()
                    )));
                }
                match addr_of(node_id) {
                    Some(known) if known == addr => Ok(()),
                    Some(_) => raft
                        .change_membership(set_addr(node_id, addr), true)
                        .await
                        .map(|_| ())
                        .map_err(write_error),
                    None => raft
                        .add_learner(node_id, BasicNode { addr }, false)
                        .await
                        .map(|_| ())
                        .map_err(write_error),
                }
            }
            MembershipChange::AddVoter { node_id, addr } => {
                if is_voter(node_id) {
                    return Err(MembershipError::DuplicateVoter(node_id));
                }
                let addr = match (addr, addr_of(node_id)) {
                    (Some(addr), _) => addr,
                    (None, Some(known)) => known,
                    (None, None) => {
                        return Err(MembershipError::Refused(format!(
                            "node {node_id} is not an observer of the metadata quorum: start it \
                             (with controller.quorum.bootstrap.servers) before adding it"
                        )))
                    }
                };
                if addr_of(node_id).is_some_and(|known| known != addr) {
                    raft.change_membership(set_addr(node_id, addr.clone()), true)
                        .await
                        .map_err(write_error)?;
                }
                // Blocks until the leader sees the learner at its log end (bounded by the
                // caller's timeout), so the new voter does not stall commits while it
                // catches up.
                raft.add_learner(node_id, BasicNode { addr }, true)
                    .await
                    .map_err(write_error)?;
                raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), true)
                    .await
                    .map(|_| ())
                    .map_err(write_error)
            }
            MembershipChange::RemoveVoter { node_id } => {
                if !is_voter(node_id) {
                    return Err(MembershipError::VoterNotFound(node_id));
                }
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
            MembershipChange::UpdateVoter { node_id, addr } => {
                if !is_voter(node_id) {
                    return Err(MembershipError::VoterNotFound(node_id));
                }
                if addr_of(node_id).as_deref() == Some(&addr) {
                    return Ok(());
                }
                raft.change_membership(set_addr(node_id, addr), true)
                    .await
                    .map(|_| ())
                    .map_err(write_error)
            }
        }
    }

    /// Asks the quorum, through each address of `join_addrs` in turn, to add this node as
    /// an observer at its advertised address, until one accepts or the node shuts down.
    pub(crate) async fn join_quorum(self) {
        let config = self.config().clone();
        let addr = self.advertised_addr();
        let mut shutdown = self.shutdown_signal();
        let backoff = Duration::from_millis(config.heartbeat_interval_ms.clamp(50, 1000) * 4);
        let change = MembershipChange::Join {
            node_id: config.node_id,
            addr: addr.clone(),
        };
        let request = MembershipRequest {
            forwarded: false,
            change,
        };
        // Until it is taken in or the node stops: each round is bounded by the call timeouts.
        loop {
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
                        return;
                    }
                    Ok(Err(error)) => {
                        tracing::warn!("asking {target} to join the metadata quorum: {error}")
                    }
                    Err(error) => {
                        tracing::debug!("asking {target} to join the metadata quorum: {error}")
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
