//! A toy replicated key-value state and controller for testing the raft layer generically.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use strom_raft::{Controller, NodeConfig, RaftNode, ReplicatedState};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv(pub Arc<BTreeMap<String, u64>>);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KvError(String);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Put {
    pub key: String,
    pub value: u64,
}

impl ReplicatedState for Kv {
    type Delta = Put;
    type Error = KvError;

    fn apply_payload(&self, payload: &[u8]) -> Result<(Self, Put), KvError> {
        let put: Put = serde_json::from_slice(payload).map_err(|e| KvError(e.to_string()))?;
        if put.key.is_empty() {
            return Err(KvError("empty key".into()));
        }
        let mut map = (*self.0).clone();
        map.insert(put.key.clone(), put.value);
        Ok((Kv(Arc::new(map)), put))
    }

    fn encode_snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&*self.0).unwrap_or_default()
    }

    fn decode_snapshot(bytes: &[u8]) -> Result<Self, KvError> {
        serde_json::from_slice(bytes)
            .map(|m| Kv(Arc::new(m)))
            .map_err(|e| KvError(e.to_string()))
    }
}

/// Requests: put a key unless present (validation against the latest state), or a raw
/// entry that fails to apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum KvRequest {
    PutIfAbsent(Put),
    Broken,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvReply {
    Written,
    AlreadyPresent(u64),
}

#[derive(Default)]
pub struct KvController;

impl Controller for KvController {
    type State = Kv;
    type Request = KvRequest;
    type Reply = KvReply;

    fn handle(
        &mut self,
        state: &Kv,
        request: KvRequest,
        _now_ms: i64,
    ) -> (Option<Vec<u8>>, KvReply) {
        match request {
            KvRequest::PutIfAbsent(put) => match state.0.get(&put.key) {
                Some(existing) => (None, KvReply::AlreadyPresent(*existing)),
                None => (serde_json::to_vec(&put).ok(), KvReply::Written),
            },
            KvRequest::Broken => (
                Some(b"{\"key\":\"\",\"value\":1}".to_vec()),
                KvReply::Written,
            ),
        }
    }
}

pub type KvNode = RaftNode<KvController>;

pub fn put(key: &str, value: u64) -> KvRequest {
    KvRequest::PutIfAbsent(Put {
        key: key.to_string(),
        value,
    })
}

/// Free ports on 127.0.0.1 (bind to 0, read, release).
pub fn free_addrs(count: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners.iter().map(|l| l.local_addr().unwrap()).collect()
}

pub fn config(node_id: u64, addrs: &[SocketAddr], dir: &Path) -> NodeConfig {
    let addr = addrs[(node_id - 1) as usize];
    let mut config = NodeConfig::test_min(node_id, addr, dir.join(format!("node-{node_id}")));
    if addrs.len() > 1 {
        config.voters = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| (i as u64 + 1, a.to_string()))
            .collect();
    }
    config
}

/// Waits (bounded) until one of `nodes` is leader and all of them agree on it.
pub async fn wait_leader(nodes: &[&KvNode], limit: Duration) -> u64 {
    let start = Instant::now();
    loop {
        let leaders: Vec<Option<u64>> =
            nodes.iter().map(|n| n.leader().map(|(id, _)| id)).collect();
        if let Some(Some(first)) = leaders.first() {
            if leaders.iter().all(|l| *l == Some(*first))
                && nodes.iter().any(|n| n.node_id() == *first)
            {
                return *first;
            }
        }
        assert!(
            start.elapsed() < limit,
            "no agreed leader within {limit:?}: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until `node` has applied state `expected`.
pub async fn wait_state(node: &KvNode, expected: &BTreeMap<String, u64>, limit: Duration) {
    let start = Instant::now();
    while *node.state().state.0 != *expected {
        assert!(
            start.elapsed() < limit,
            "node {} did not converge within {limit:?}: {:?}",
            node.node_id(),
            node.state().state.0
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
