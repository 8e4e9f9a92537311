//! The controller listener: raft RPCs from peers, metadata requests from clients.
//!
//! Bounded: at most `connections_max` connections (others are closed at once), frames up to
//! `frame_bytes_max`, idle connections closed after `connection_idle_ms`. Every connection
//! is first secured as the controller listener says (`security.rs`: TLS, SASL); one that
//! fails is closed before any request of it is read. With an authorizer, each request is
//! then checked for the operation it needs ([`required_operation`]) before it is handled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use strom_meta::acl::AclOperation;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::timeout;

use crate::controller_task::Controller;
use crate::node::RaftNode;
use crate::types::{NodeId, TypeConfig};
use crate::wire::{
    self, kind, AddressedTo, DescribeQuorumRequest, MembershipChange, MembershipError,
    MembershipRequest, ReadStateRequest, SubmitError, SubmitRequest, WireError,
};

pub(crate) struct Server<K: Controller> {
    node: RaftNode<K>,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
}

impl<K: Controller> Server<K> {
    pub fn new(node: RaftNode<K>, listener: TcpListener, shutdown: watch::Receiver<bool>) -> Self {
        Server {
            node,
            listener,
            shutdown,
        }
    }

    pub async fn run(mut self) {
        let permits = Arc::new(Semaphore::new(self.node.config().connections_max));
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = self.shutdown.changed() => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("controller listener accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::warn!("refusing controller connection from {peer}: too many connections");
                continue;
            };
            let node = self.node.clone();
            let mut shutdown = self.shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    result = serve_connection(node, stream, peer) => {
                        if let Err(e) = result {
                            tracing::debug!("controller connection from {peer} closed: {e}");
                        }
                    }
                    _ = shutdown.changed() => {}
                }
                drop(permit);
            });
        }
    }
}

async fn serve_connection<K: Controller>(
    node: RaftNode<K>,
    stream: TcpStream,
    peer: SocketAddr,
) -> Result<(), WireError> {
    stream.set_nodelay(true)?;
    let (mut stream, principal) = node
        .security()
        .accept(stream, peer, |user, mechanism| {
            node.scram_credential(user, mechanism)
        })
        .await?;
    let frame_bytes_max = node.config().frame_bytes_max;
    let idle = Duration::from_millis(node.config().connection_idle_ms);
    loop {
        let frame = timeout(idle, wire::read_frame(&mut stream, frame_bytes_max))
            .await
            .map_err(|_| WireError::Timeout(idle))??;
        let Some((request_kind, body)) = frame else {
            return Ok(());
        };
        // Before anything else is looked at: an unauthorized peer learns nothing (not even
        // this node's cluster id). The refusal is answered, then the connection closed.
        let (operation, request) = required_operation(request_kind, &body);
        let checked = node.security().check_cluster(
            |settings, requester| node.authorize_cluster(settings, requester, operation),
            &principal,
            peer,
            operation,
            request,
        );
        if let Err(WireError::Unauthorized(reason)) = &checked {
            wire::write_frame(&mut stream, kind::REFUSED, reason, frame_bytes_max).await?;
        }
        checked?;
        let response = match refuse_other_cluster(&node, request_kind, &body, peer) {
            Some(refusal) => refusal?,
            None => dispatch(&node, request_kind, &body).await?,
        };
        wire::write_frame(&mut stream, kind::RESPONSE, &response, frame_bytes_max).await?;
    }
}

/// The operation on the CLUSTER resource a request needs, as Kafka's `ControllerApis`
/// checks the API it stands for, and that API's name for the log lines:
/// - raft RPCs (AppendEntries: Kafka's Fetch of the metadata log and BeginQuorumEpoch;
///   Vote; InstallSnapshot: FetchSnapshot) need CLUSTER_ACTION;
/// - a submit is a broker's registration, heartbeat, AlterPartition or producer-id block,
///   or an admin request a node forwards for a client it has authorized itself (Kafka's
///   Envelope): CLUSTER_ACTION; so is a read of the leader's state (a node catching up);
/// - a membership change forwarded by a node (Envelope), an observer's Join (Kafka's
///   observers just fetch) and UpdateRaftVoter: CLUSTER_ACTION; AddRaftVoter and
///   RemoveRaftVoter sent directly: ALTER;
/// - QuorumStatus and DescribeQuorum sent directly (`strom metadata status`): DESCRIBE;
///   DescribeQuorum forwarded by a node: CLUSTER_ACTION.
///
/// An undecodable body is judged as the strictest reading (CLUSTER_ACTION) and refused by
/// its handler if allowed.
fn required_operation(request_kind: u8, body: &[u8]) -> (AclOperation, &'static str) {
    match request_kind {
        kind::APPEND_ENTRIES => (AclOperation::ClusterAction, "AppendEntries"),
        kind::VOTE => (AclOperation::ClusterAction, "Vote"),
        kind::INSTALL_SNAPSHOT => (AclOperation::ClusterAction, "InstallSnapshot"),
        kind::SUBMIT => (AclOperation::ClusterAction, "a metadata request"),
        kind::READ_STATE => (AclOperation::ClusterAction, "ReadState"),
        kind::QUORUM_STATUS => (AclOperation::Describe, "QuorumStatus"),
        kind::DESCRIBE_QUORUM => match wire::decode::<DescribeQuorumRequest>(body) {
            Ok(DescribeQuorumRequest { forwarded: false }) => {
                (AclOperation::Describe, "DescribeQuorum")
            }
            _ => (AclOperation::ClusterAction, "a forwarded DescribeQuorum"),
        },
        kind::MEMBERSHIP => match wire::decode::<MembershipRequest>(body) {
            Ok(MembershipRequest {
                forwarded: false,
                change: MembershipChange::AddVoter { .. },
            }) => (AclOperation::Alter, "AddRaftVoter"),
            Ok(MembershipRequest {
                forwarded: false,
                change: MembershipChange::RemoveVoter { .. },
            }) => (AclOperation::Alter, "RemoveRaftVoter"),
            Ok(MembershipRequest {
                forwarded: false,
                change: MembershipChange::Join { .. },
            }) => (AclOperation::ClusterAction, "a Join as observer"),
            Ok(MembershipRequest {
                forwarded: false,
                change: MembershipChange::UpdateVoter { .. },
            }) => (AclOperation::ClusterAction, "UpdateRaftVoter"),
            _ => (AclOperation::ClusterAction, "a forwarded membership change"),
        },
        _ => (AclOperation::ClusterAction, "an unknown request"),
    }
}

/// Handles one request and returns its JSON response (a raw value, so kinds can differ).
async fn dispatch<K: Controller>(
    node: &RaftNode<K>,
    request_kind: u8,
    body: &[u8],
) -> Result<serde_json::Value, WireError> {
    let raft = node.raft();
    if matches!(
        request_kind,
        kind::APPEND_ENTRIES | kind::VOTE | kind::INSTALL_SNAPSHOT
    ) {
        check_addressed(node, body)?;
        if request_kind != kind::VOTE {
            node.note_leader_contact();
        }
    }
    match request_kind {
        kind::APPEND_ENTRIES => {
            let rpc: AppendEntriesRequest<TypeConfig> = wire::decode(body)?;
            to_value(&raft.append_entries(rpc).await)
        }
        kind::VOTE => {
            let rpc: VoteRequest<NodeId> = wire::decode(body)?;
            to_value(&raft.vote(rpc).await)
        }
        kind::INSTALL_SNAPSHOT => {
            let rpc: InstallSnapshotRequest<TypeConfig> = wire::decode(body)?;
            to_value(&raft.install_snapshot(rpc).await)
        }
        kind::SUBMIT => {
            let result = match wire::decode::<SubmitRequest<K::Request>>(body) {
                Ok(message) => node.submit_with(message.request, message.forwarded).await,
                Err(e) => Err(SubmitError::BadRequest(e.to_string())),
            };
            to_value(&result)
        }
        kind::READ_STATE => {
            let result = match wire::decode::<ReadStateRequest>(body) {
                Ok(message) => node.read_state_encoded(message.forwarded).await,
                Err(e) => Err(SubmitError::BadRequest(e.to_string())),
            };
            to_value(&result)
        }
        kind::QUORUM_STATUS => to_value(&node.quorum_status()),
        kind::DESCRIBE_QUORUM => {
            let result = match wire::decode::<DescribeQuorumRequest>(body) {
                Ok(message) => node.describe_quorum_with(message.forwarded).await,
                Err(e) => Err(SubmitError::BadRequest(e.to_string())),
            };
            to_value(&result)
        }
        kind::MEMBERSHIP => {
            let result = match wire::decode::<MembershipRequest>(body) {
                Ok(message) => {
                    node.change_membership_with(message.change, message.forwarded)
                        .await
                }
                Err(e) => Err(MembershipError::Submit(SubmitError::BadRequest(
                    e.to_string(),
                ))),
            };
            to_value(&result)
        }
        other => Err(WireError::Malformed(format!(
            "unknown request kind {other}"
        ))),
    }
}

/// Kafka's INCONSISTENT_CLUSTER_ID: a request that names a cluster id other than this
/// node's (`wire::Addressed`) is refused before it is looked at, so a node formatted for
/// another cluster can neither vote, replicate nor install a snapshot here, nor join the
/// quorum or register as a broker (its forwarded membership change and submit). Raft RPCs
/// are refused by closing the connection (the sender takes the peer for unreachable, as
/// for a wrong directory id); submits, reads, DescribeQuorum and membership changes get
/// `SubmitError::InconsistentClusterId`, which the sender logs. Both sides log both ids.
/// `None`: the request is not refused (no cluster id on either side, or the same).
fn refuse_other_cluster<K: Controller>(
    node: &RaftNode<K>,
    request_kind: u8,
    body: &[u8],
    peer: SocketAddr,
) -> Option<Result<serde_json::Value, WireError>> {
    let ours = node.cluster_id()?;
    if request_kind == kind::QUORUM_STATUS {
        return None;
    }
    // A body that is not an object is the handlers' to refuse as malformed.
    let theirs = wire::decode::<AddressedTo>(body).ok()?.cluster_id?;
    if theirs == ours {
        return None;
    }
    let what = match request_kind {
        kind::APPEND_ENTRIES | kind::VOTE | kind::INSTALL_SNAPSHOT => "raft messages",
        kind::MEMBERSHIP => "a request to join or change the metadata quorum",
        kind::SUBMIT => "a metadata request (a broker's registration or heartbeat among them)",
        _ => "a metadata read",
    };
    let line = format!(
        "refusing {what} from {peer}: it comes from a node of cluster {theirs}, but this \
         node's meta.properties says cluster.id={ours} (INCONSISTENT_CLUSTER_ID). Every node \
         of a cluster must be formatted with the same cluster id: if that node belongs to \
         another cluster, point it at that cluster's controllers; if it is meant to join \
         this one (and holds nothing to keep), move its data directories aside and run \
         `strom storage format --cluster-id {ours}` on it; if this node is the misplaced \
         one, do that here with --cluster-id {theirs}"
    );
    if node.refusal_log_due(&format!("{what} of {theirs}")) {
        tracing::warn!("{line}");
    } else {
        tracing::debug!("{line}");
    }
    let error = SubmitError::InconsistentClusterId {
        quorum: ours.to_string(),
        sent: theirs.clone(),
    };
    Some(match request_kind {
        kind::APPEND_ENTRIES | kind::VOTE | kind::INSTALL_SNAPSHOT => Err(WireError::Malformed(
            format!("from cluster {theirs}, this is cluster {ours}"),
        )),
        kind::MEMBERSHIP => to_value(&Err::<(), _>(MembershipError::Submit(error))),
        _ => to_value(&Err::<(), _>(error)),
    })
}

/// Refuses a raft RPC meant for another replica of this node id (`wire::Addressed`): the
/// connection is closed, which the sender's replication takes for an unreachable peer.
fn check_addressed<K: Controller>(node: &RaftNode<K>, body: &[u8]) -> Result<(), WireError> {
    let to: AddressedTo = wire::decode(body)?;
    match to.to_directory {
        Some(dir) if dir != node.directory_id() => {
            tracing::warn!(
                "refusing raft messages for node {}'s replica with directory id {dir}: this is \
                 directory {} (its storage was replaced). Remove the old replica from the \
                 quorum (remove-controller with --controller-directory-id {dir}); this one then \
                 joins as an observer",
                node.node_id(),
                node.directory_id()
            );
            Err(WireError::Malformed(format!(
                "addressed to directory {dir}, this is {}",
                node.directory_id()
            )))
        }
        _ => Ok(()),
    }
}

fn to_value<T: Serialize>(value: &T) -> Result<serde_json::Value, WireError> {
    serde_json::to_value(value).map_err(|e| WireError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(request_kind: u8, body: &str, expected: AclOperation) {
        assert_eq!(
            required_operation(request_kind, body.as_bytes()).0,
            expected,
            "kind {request_kind} {body}"
        );
    }

    #[test]
    fn each_request_needs_the_operation_kafka_checks() {
        use AclOperation::{Alter, ClusterAction, Describe};
        check(kind::APPEND_ENTRIES, "{}", ClusterAction);
        check(kind::VOTE, "{}", ClusterAction);
        check(kind::INSTALL_SNAPSHOT, "{}", ClusterAction);
        check(
            kind::SUBMIT,
            r#"{"forwarded":false,"request":1}"#,
            ClusterAction,
        );
        check(kind::READ_STATE, r#"{"forwarded":false}"#, ClusterAction);
        check(kind::QUORUM_STATUS, "null", Describe);
        check(kind::DESCRIBE_QUORUM, r#"{"forwarded":false}"#, Describe);
        check(
            kind::DESCRIBE_QUORUM,
            r#"{"forwarded":true}"#,
            ClusterAction,
        );
        let membership = |forwarded: bool, change: MembershipChange| {
            serde_json::to_string(&MembershipRequest { forwarded, change }).unwrap()
        };
        let add = MembershipChange::AddVoter {
            node_id: 4,
            addr: None,
            directory_id: None,
        };
        let remove = MembershipChange::RemoveVoter {
            node_id: 4,
            directory_id: None,
        };
        let join = MembershipChange::Join {
            node_id: 4,
            addr: "h:1".into(),
            directory_id: None,
        };
        let update = MembershipChange::UpdateVoter {
            node_id: 4,
            addr: "h:1".into(),
            directory_id: None,
        };
        check(kind::MEMBERSHIP, &membership(false, add.clone()), Alter);
        check(kind::MEMBERSHIP, &membership(false, remove.clone()), Alter);
        // Forwarded by a node that authorized its client (Kafka's Envelope).
        check(kind::MEMBERSHIP, &membership(true, add), ClusterAction);
        check(kind::MEMBERSHIP, &membership(true, remove), ClusterAction);
        check(kind::MEMBERSHIP, &membership(false, join), ClusterAction);
        check(kind::MEMBERSHIP, &membership(false, update), ClusterAction);
        // Undecodable or unknown: the strictest reading.
        check(kind::MEMBERSHIP, "not json", ClusterAction);
        check(kind::DESCRIBE_QUORUM, "[]", ClusterAction);
        check(0x7f, "{}", ClusterAction);
    }
}
