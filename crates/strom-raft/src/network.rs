//! openraft's `RaftNetwork` over [`Conn`]: one reconnecting connection per peer.

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

/// Creates peer clients; every peer gets its own connection.
#[derive(Debug, Clone)]
pub struct NetworkFactory {
    pub frame_bytes_max: usize,
    pub connect_timeout: Duration,
    /// Pause before retrying an unreachable peer.
    pub unreachable_backoff: Duration,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            target,
            conn: Conn::new(
                node.addr.clone(),
                self.frame_bytes_max,
                self.connect_timeout,
            ),
            unreachable_backoff: self.unreachable_backoff,
        }
    }
}

#[derive(Debug)]
pub struct PeerClient {
    target: NodeId,
    conn: Conn,
    unreachable_backoff: Duration,
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
        let answer: Result<Resp, RaftError<NodeId, E>> = self
            .conn
            .call(request_kind, request, option.hard_ttl())
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
        self.rpc(kind::APPEND_ENTRIES, &rpc, &option, entries).await
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
