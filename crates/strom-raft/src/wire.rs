//! Frames and messages between controller processes and clients.
//!
//! A frame is `u32 big-endian length | body`, the body `u8 kind | JSON`. Lengths above
//! `frame_bytes_max` close the connection before anything is allocated for them. One request
//! is in flight per connection: a response frame answers the last request frame.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::types::{NodeId, Payload};

/// Message kinds (first body byte).
pub mod kind {
    pub const APPEND_ENTRIES: u8 = 1;
    pub const VOTE: u8 = 2;
    pub const INSTALL_SNAPSHOT: u8 = 3;
    pub const SUBMIT: u8 = 4;
    pub const READ_STATE: u8 = 5;
    pub const QUORUM_STATUS: u8 = 6;
    pub const DESCRIBE_QUORUM: u8 = 7;
    pub const MEMBERSHIP: u8 = 8;
    /// A SASL token, the first frames on a SASL listener (`security.rs`).
    pub const AUTHENTICATE: u8 = 9;
    /// A response frame (any request kind).
    pub const RESPONSE: u8 = 0x80;
    /// The answer to a request its sender's principal may not make (Kafka's
    /// CLUSTER_AUTHORIZATION_FAILED): a JSON string saying why; the connection is then
    /// closed (`security.rs`).
    pub const REFUSED: u8 = 0x81;
}

/// Errors reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("frame of {len} bytes exceeds the maximum {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The TLS handshake or the SASL exchange failed (`security.rs` says which and why).
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// The peer's authorizer refused the request (a [`kind::REFUSED`] answer; the text
    /// names the principal, the operation and what to change).
    #[error("{0}")]
    Unauthorized(String),
}

/// A raft RPC (AppendEntries, Vote, InstallSnapshot) addressed to one replica of its
/// target: `to_directory` is the directory id the sender's membership records for the
/// target (KIP-853's voter key). A node whose own directory id differs is another replica
/// of that node id (its storage was replaced) and refuses it, so it cannot vote or count
/// as the replica the quorum knows. The field sits beside the RPC's own fields, and is
/// left out when the membership records none, so a node that predates it ignores it.
///
/// `cluster_id` is the sender's (its storage's `cluster.id`, `NodeConfig::cluster_id`); a
/// node sends it with every request it makes of another member (raft RPCs, and forwarded
/// submits, reads, DescribeQuorum and membership changes, a broker's join and registration
/// among them). The receiver refuses a request whose cluster id differs from its own
/// (Kafka's INCONSISTENT_CLUSTER_ID). Left out when the sender has none.
#[derive(Serialize)]
pub(crate) struct Addressed<'a, T: Serialize> {
    #[serde(flatten)]
    pub rpc: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_directory: Option<uuid::Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<&'a str>,
}

/// The `to_directory` and `cluster_id` of an [`Addressed`] request, read on their own (the
/// request is decoded apart, without buffering it twice).
#[derive(Deserialize)]
pub(crate) struct AddressedTo {
    #[serde(default)]
    pub to_directory: Option<uuid::Uuid>,
    #[serde(default)]
    pub cluster_id: Option<String>,
}

/// Writes one frame of `kind` with `message` as JSON.
pub async fn write_frame<W, T>(
    writer: &mut W,
    kind: u8,
    message: &T,
    frame_bytes_max: usize,
) -> Result<(), WireError>
where
    W: AsyncWriteExt + Unpin,
    T: Serialize + ?Sized,
{
    let mut body = Vec::with_capacity(256);
    body.push(kind);
    serde_json::to_writer(&mut body, message).map_err(|e| WireError::Malformed(e.to_string()))?;
    if body.len() > frame_bytes_max {
        return Err(WireError::FrameTooLarge {
            len: body.len(),
            max: frame_bytes_max,
        });
    }
    let len = u32::try_from(body.len()).map_err(|_| WireError::FrameTooLarge {
        len: body.len(),
        max: frame_bytes_max,
    })?;
    writer.write_all(&len.to_be_bytes()).await?;
    writer.write_all(&body).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads one frame; `Ok(None)` on a clean end of stream before a frame starts.
pub async fn read_frame<R>(
    reader: &mut R,
    frame_bytes_max: usize,
) -> Result<Option<(u8, Vec<u8>)>, WireError>
where
    R: AsyncReadExt + Unpin,
{
    let mut len_bytes = [0u8; 4];
    match reader.read_exact(&mut len_bytes).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len > frame_bytes_max {
        return Err(WireError::FrameTooLarge {
            len,
            max: frame_bytes_max,
        });
    }
    if len == 0 {
        return Err(WireError::Malformed("empty frame".into()));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await?;
    let kind = body.first().copied().unwrap_or_default();
    body.remove(0);
    Ok(Some((kind, body)))
}

pub fn decode<T: DeserializeOwned>(json: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(json).map_err(|e| WireError::Malformed(e.to_string()))
}

/// A metadata request from a client, or forwarded by a follower.
#[derive(Debug, Serialize, Deserialize)]
pub struct SubmitRequest<R> {
    /// Set by a node that forwards; the receiver then answers instead of forwarding again.
    pub forwarded: bool,
    pub request: R,
}

/// Asks for the leader's state after all committed entries are applied.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadStateRequest {
    pub forwarded: bool,
}

/// The state as its snapshot encoding, and the index of the last entry in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateReply {
    pub last_applied_index: Option<u64>,
    pub state: Payload,
}

/// One node's view of the quorum (like `kafka-metadata-quorum describe --status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumStatus {
    pub node_id: NodeId,
    pub leader_id: Option<NodeId>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    pub voters: Vec<NodeId>,
}

/// Asks the leader to describe the quorum (Kafka's DescribeQuorum).
#[derive(Debug, Serialize, Deserialize)]
pub struct DescribeQuorumRequest {
    pub forwarded: bool,
}

/// The leader's view of the quorum, in Kafka's DescribeQuorum terms: offsets are log indexes
/// plus one (the next entry's), so an empty log ends at 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumDescription {
    pub leader_id: NodeId,
    /// The leader's term (Kafka's leader epoch).
    pub leader_epoch: u64,
    /// One past the last entry applied on the leader, hence committed.
    pub high_watermark: i64,
    pub voters: Vec<ReplicaProgress>,
    /// Members that replicate without a vote (openraft's learners).
    pub observers: Vec<ReplicaProgress>,
    /// Every member's controller address.
    pub addrs: Vec<(NodeId, String)>,
}

/// One member's progress as the leader sees it (-1 when not known yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaProgress {
    pub node_id: NodeId,
    /// The member's metadata directory id, when recorded (KIP-853's replica key).
    #[serde(default)]
    pub directory_id: Option<uuid::Uuid>,
    pub log_end_offset: i64,
    pub last_fetch_ms: i64,
    pub last_caught_up_ms: i64,
}

/// Why a metadata request got no reply from the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum SubmitError {
    /// Ask the leader instead (its address, when known).
    #[error("not the leader; leader is {leader_id:?} at {leader_addr:?}")]
    NotLeader {
        leader_id: Option<NodeId>,
        leader_addr: Option<String>,
    },
    /// The outcome is unknown: the records may still commit. `cause`: the last failure
    /// seen while retrying (a refused authentication, an unreachable node), if any; left
    /// out on the wire when there is none, and ignored by a node that predates it.
    #[error("timed out after {timeout_ms} ms{}", last_error(cause))]
    Timeout {
        timeout_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<String>,
    },
    #[error("controller queue is full")]
    Busy,
    #[error("metadata quorum unavailable: {0}")]
    Unavailable(String),
    /// The records committed but did not apply (a controller bug or a lost race).
    #[error("committed records did not apply: {0}")]
    Apply(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Kafka's INCONSISTENT_CLUSTER_ID: the request came from a node of another cluster
    /// (`sent`, its storage's cluster id) than the answering controller's (`quorum`).
    #[error(
        "INCONSISTENT_CLUSTER_ID: the controller's cluster.id is {quorum}, this node's \
         meta.properties says {sent}; a node takes part only in the cluster its storage was \
         formatted for. Point it at its own cluster's controllers, or (if it is meant to \
         join this one and holds nothing to keep) move its data directories aside and \
         format them with `strom storage format --cluster-id {quorum}`"
    )]
    InconsistentClusterId { quorum: String, sent: String },
}

/// `SubmitError::Timeout`'s cause as the end of its message.
fn last_error(cause: &Option<String>) -> String {
    cause
        .as_deref()
        .map_or(String::new(), |cause| format!("; last error: {cause}"))
}

/// A change of the quorum's membership (KIP-853's AddRaftVoter, RemoveRaftVoter,
/// UpdateRaftVoter, and an observer asking to be replicated to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add `node_id` as an observer (openraft learner) reached at `addr`, or record its new
    /// address or directory; a no-op when it is already a member with both. `directory_id`
    /// is the joining node's metadata directory (KIP-853's replica key).
    Join {
        node_id: NodeId,
        addr: String,
        #[serde(default)]
        directory_id: Option<uuid::Uuid>,
    },
    /// Make `node_id` a voter once it has caught up. An observer already known needs no
    /// address; `addr`, when given, replaces the one it joined with. `directory_id`, when
    /// given, must be the observer's (AddRaftVoter names the replica it means).
    AddVoter {
        node_id: NodeId,
        addr: Option<String>,
        #[serde(default)]
        directory_id: Option<uuid::Uuid>,
    },
    /// Take the voter (`node_id`, `directory_id`) out of the quorum (it stops being
    /// replicated to); matched as Kafka's `VoterSet.isVoter`
    /// ([`crate::types::Node::matches_directory`]).
    RemoveVoter {
        node_id: NodeId,
        #[serde(default)]
        directory_id: Option<uuid::Uuid>,
    },
    /// Record the voter (`node_id`, `directory_id`)'s new address.
    UpdateVoter {
        node_id: NodeId,
        addr: String,
        #[serde(default)]
        directory_id: Option<uuid::Uuid>,
    },
}

/// A membership change from a client, or forwarded by a member to the leader.
#[derive(Debug, Serialize, Deserialize)]
pub struct MembershipRequest {
    pub forwarded: bool,
    pub change: MembershipChange,
}

/// Why a membership change was not made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MembershipError {
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// Kafka's DUPLICATE_VOTER.
    #[error("node {0} is already a voter of the metadata quorum")]
    DuplicateVoter(NodeId),
    /// Kafka's VOTER_NOT_FOUND.
    #[error("node {0} is not a voter of the metadata quorum")]
    VoterNotFound(NodeId),
    /// Kafka's VOTER_NOT_FOUND too: the node id is a voter's, the directory id is not.
    #[error(
        "node {node_id} is a voter of the metadata quorum with directory id {known}, not \
         {given:?}: name the voter's directory id (kafka-metadata-quorum.sh describe \
         --replication shows it)"
    )]
    VoterDirectoryMismatch {
        node_id: NodeId,
        known: uuid::Uuid,
        given: Option<uuid::Uuid>,
    },
    /// Not possible in the quorum as it is (Kafka's INVALID_REQUEST); the message says why.
    #[error("{0}")]
    Refused(String),
}
