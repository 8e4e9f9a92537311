//! The openraft type configuration shared by storage, network and node.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Raft node ids are KRaft's `node.id` values.
pub type NodeId = u64;

/// A quorum member as the raft layer knows it: its controller listener address and, as
/// KIP-853's replica key, the directory id of its metadata log directory (`None` for
/// members recorded without one: static voters, and logs written before directory ids).
///
/// Stored as JSON in membership entries and snapshots; `directory_id` is left out when
/// `None`, so a member recorded before directory ids reads back unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<uuid::Uuid>,
}

impl Node {
    /// A member known by its address only.
    pub fn new(addr: impl Into<String>) -> Node {
        Node {
            addr: addr.into(),
            directory_id: None,
        }
    }

    /// Kafka's `VoterSet.isVoter(ReplicaKey)` on the directory id: a member recorded with a
    /// directory id is only the replica with that id (none given is no match); a member
    /// recorded without one matches any.
    pub fn matches_directory(&self, directory_id: Option<uuid::Uuid>) -> bool {
        match self.directory_id {
            Some(known) => directory_id == Some(known),
            None => true,
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.directory_id {
            Some(dir) => write!(f, "{} (directory {dir})", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

openraft::declare_raft_types!(
    /// Strom's raft types: opaque payload bytes in, an apply outcome out.
    pub TypeConfig:
        D = Payload,
        R = ApplyOutcome,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Entry = openraft::Entry<TypeConfig>;
pub type EntryPayload = openraft::EntryPayload<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Raft = openraft::Raft<TypeConfig>;

/// The bytes of one raft entry: for metadata, one `encode_records` batch applied atomically.
///
/// Serialized as a hex string so JSON frames stay about twice the payload, not four times.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Payload(pub Vec<u8>);

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.0.len())
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex_encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex_decode(&text)
            .map(Payload)
            .ok_or_else(|| serde::de::Error::custom("payload is not valid hex"))
    }
}

/// What applying one committed entry did; returned to the writer of that entry.
///
/// An entry that fails to apply is skipped identically on every node (they all hold the same
/// state), so a bad entry cannot wedge the log; the writer learns why.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApplyOutcome {
    /// `None` when the entry was applied, otherwise why it was skipped.
    pub error: Option<String>,
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

pub(crate) fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| Some((hex_value(*pair.first()?)? << 4) | hex_value(*pair.get(1)?)?))
        .collect()
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(hex_decode(&hex_encode(&bytes)), Some(bytes));
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("zz"), None);
    }

    #[test]
    fn members_recorded_before_directory_ids_read_back() {
        let old: Node = serde_json::from_str(r#"{"addr":"127.0.0.1:9093"}"#).unwrap();
        assert_eq!(old, Node::new("127.0.0.1:9093"));
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            r#"{"addr":"127.0.0.1:9093"}"#
        );
        let dir = uuid::Uuid::from_u128(7);
        let new = Node {
            directory_id: Some(dir),
            ..old.clone()
        };
        let text = serde_json::to_string(&new).unwrap();
        assert_eq!(serde_json::from_str::<Node>(&text).unwrap(), new);
        assert!(old.matches_directory(None) && old.matches_directory(Some(dir)));
        assert!(new.matches_directory(Some(dir)));
        assert!(
            !new.matches_directory(None) && !new.matches_directory(Some(uuid::Uuid::from_u128(8)))
        );
    }

    #[test]
    fn payload_serde_round_trip() {
        let payload = Payload(vec![0, 1, 0xfe, 0xff]);
        let json = serde_json::to_string(&payload).unwrap();
        assert_eq!(json, "\"0001feff\"");
        assert_eq!(serde_json::from_str::<Payload>(&json).unwrap(), payload);
    }
}
