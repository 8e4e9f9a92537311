//! openraft's `RaftNetwork` over [`Conn`]: one reconnecting connection per peer. It also
//! keeps [`PeerClock`]: when each peer last acknowledged an AppendEntries and when it was last
//! caught up (DescribeQuorum's last fetch and last caught-up times; openraft keeps no times).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::conn::{CallError, Conn};
use crate::types::{Node, NodeId, TypeConfig};
use crate::wire::{kind, WireError};

/// When a peer last acknowledged AppendEntries, and when it last held every committed entry,
/// in wall-clock milliseconds (Kafka's `lastFetchTimestamp` and `lastCaughtUpTimestamp`; in
/// Raft the leader pushes where Kafka's followers fetch, so an acknowledgement stands for a
/// fetch). Written by the leader's replication, read by DescribeQuorum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerTimes {
    pub last_ack_ms: Option<i64>,
    pub last_caught_up_ms: Option<i64>,
}

/// [`PeerTimes`] per peer, shared by the peer clients and the node.
#[derive(Debug, Clone, Default)]
pub struct PeerClock(Arc<Mutex<BTreeMap<NodeId, PeerTimes>>>);

impl PeerClock {
    /// A successful AppendEntries to `peer`: it now holds every entry up to `matched`; it is
    /// caught up when that covers the leader's commit index sent with the request.
    fn acknowledged(&self, peer: NodeId, matched: Option<u64>, leader_commit: Option<u64>) {
        let now = now_ms();
        if let Ok(mut times) = self.0.lock() {
            let entry = times.entry(peer).or_default();
            entry.last_ack_ms = Some(now);
            if matched >= leader_commit {
                entry.last_caught_up_ms = Some(now);
            }
        }
    }

    /// The times of `peer` (none yet when it never acknowledged).
    pub fn times(&self, peer: NodeId) -> PeerTimes {
        self.0
            .lock()
            .map(|times| times.get(&peer).copied().unwrap_or_default())
            .unwrap_or_default()
    }
}

/// Wall-clock milliseconds since the Unix epoch (strom-records' clock).
pub use strom_records::now_ms;

/// Creates peer clients; every peer gets its own connection.
#[derive(Debug, Clone)]
pub struct NetworkFactory {
    pub frame_bytes_max: usize,
    pub connect_timeout: Duration,
    /// Pause before retrying an unreachable peer.
    pub unreachable_backoff: Duration,
    /// Where acknowledgements are timed.
    pub clock: PeerClock,
    /// This node's cluster id, sent with every RPC (`wire::Addressed`).
    pub cluster_id: Option<Arc<str>>,
    /// The controller listener's TLS and SASL, used for every peer connection.
    pub security: Arc<crate::security::SecurityContext>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            target,
            target_directory: node.directory_id,
            conn: Conn::new(
                node.addr.clone(),
                self.frame_bytes_max,
                self.connect_timeout,
                self.security.clone(),
            ),
            unreachable_backoff: self.unreachable_backoff,
            clock: self.clock.clone(),
            cluster_id: self.cluster_id.clone(),
        }
    }
}

#[derive(Debug)]
pub struct PeerClient {
    target: NodeId,
    /// The target replica's directory id as the membership records it; sent with every
    /// RPC (see `wire::Addressed`).
    target_directory: Option<uuid::Uuid>,
    conn: Conn,
    unreachable_backoff: Duration,
    clock: PeerClock,
    cluster_id: Option<Arc<str>>,
}

impl PeerClient {
    async fn rpc<Req, Resp, E>(
        &mut self,
        request_kind: u8,
        request: &Req,
        option: &RPCOption,
        entries: u64,
    ) -> Result<Resp, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let addressed = crate::wire::Addressed {
            rpc: request,
            to_directory: self.target_directory,
            cluster_id: self.cluster_id.as_deref(),
        };
        let answer: Result<Resp, RaftError<NodeId, E>> = self
            .conn
            .call(request_kind, &addressed, option.hard_ttl())
            .await
            .map_err(|e| match e {
                // Nothing was sent: ask openraft for a smaller batch instead of failing forever.
                CallError::Network {
                    source: WireError::FrameTooLarge { .. },
                    ..
                } if entries > 1 => {
                    RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(entries / 2))
                }
                CallError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                CallError::Network { .. } => RPCError::Network(NetworkError::new(&e)),
            })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let entries = rpc.entries.len() as u64;
        let last = rpc
            .entries
            .last()
            .map(|e| e.log_id.index)
            .or(rpc.prev_log_id.map(|id| id.index));
        let leader_commit = rpc.leader_commit.map(|id| id.index);
        let response = self
            .rpc(kind::APPEND_ENTRIES, &rpc, &option, entries)
            .await?;
        match &response {
            AppendEntriesResponse::Success => {
                self.clock.acknowledged(self.target, last, leader_commit)
            }
            AppendEntriesResponse::PartialSuccess(matched) => {
                self.clock
                    .acknowledged(self.target, matched.map(|id| id.index), leader_commit)
            }
            _ => {}
        }
        Ok(response)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc(kind::INSTALL_SNAPSHOT, &rpc, &option, 0).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.rpc(kind::VOTE, &rpc, &option, 0).await
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.unreachable_backoff))
    }
}
